//! Tests of the whole pipeline: defaults, precedence, every validation rule, error text,
//! and the example file and reference doc against the key table.

use std::process::Command;

use clap::Parser;

use super::*;

const EXAMPLE: &str = include_str!("../../config/slotgate.toml");
const REFERENCE: &str = include_str!("../../docs/configuration.md");

fn cli_with_seeds(seeds: &[&str]) -> Cli {
    Cli {
        seeds: Some(seeds.iter().map(|s| s.to_string()).collect()),
        ..Cli::default()
    }
}

fn seeds(list: &[&str]) -> Vec<HostPort> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// Builds from a TOML snippet plus one seed on the command line.
fn from_toml(toml: &str) -> Result<Config, ConfigError> {
    Config::from_parts(&cli_with_seeds(&["10.0.0.1:6379"]), Some(toml))
}

fn problems(result: Result<Config, ConfigError>) -> Vec<Problem> {
    match result {
        Err(ConfigError::Invalid(problems)) => problems,
        other => panic!("expected invalid configuration, got {other:?}"),
    }
}

/// Asserts that `toml` yields exactly one problem, on `key`, whose message contains `text`.
#[track_caller]
fn assert_problem(toml: &str, key: &str, text: &str) {
    let found = problems(from_toml(toml));
    assert_eq!(found.len(), 1, "{toml}: {found:#?}");
    assert_eq!(found[0].key.name, key, "{toml}: {found:#?}");
    assert!(
        found[0].message.contains(text),
        "{toml}: {:?} lacks {text:?}",
        found[0].message
    );
}

#[track_caller]
fn assert_valid(toml: &str) -> Config {
    from_toml(toml).unwrap_or_else(|e| panic!("{toml}: {e}"))
}

#[test]
fn defaults() {
    let config = Config::from_parts(&cli_with_seeds(&["10.0.0.1:6379"]), None).unwrap();
    assert_eq!(config.view(), Config::with_seeds(seeds(&["10.0.0.1:6379"])));
    assert_eq!(config.listen, "127.0.0.1:6380".parse().unwrap());
    assert_eq!(config.announce, HostPort::new("127.0.0.1", 6380));
    assert_eq!(
        config.threads,
        std::thread::available_parallelism()
            .unwrap()
            .get()
            .min(1024)
    );
    assert_eq!(config.log_level, "info");
    assert_eq!(config.log_format, LogFormat::Human);
    assert_eq!(config.backend_connect_timeout, Duration::from_secs(1));
    assert_eq!(config.backend_reply_timeout, Duration::from_secs(5));
    assert_eq!(config.timeout, Duration::ZERO);
    assert_eq!(config.maxclients, 10_000);
    assert_eq!(config.proto_max_bulk_len, 512 * 1024 * 1024);
    assert_eq!(config.client_query_buffer_limit, 1024 * 1024 * 1024);
    assert_eq!(config.max_request_args, 1_048_576);
    assert_eq!(config.max_reply_depth, 128);
    assert_eq!(config.max_inflight_per_client, 1024);
    assert_eq!(config.topology_refresh_interval, Duration::from_secs(5));
    assert_eq!(
        config.topology_refresh_min_interval,
        Duration::from_millis(100)
    );
    assert_eq!(config.max_redirects, 5);
    assert_eq!(config.retry_deadline, Duration::from_secs(10));
    assert_eq!(config.dns_server, None);
    assert_eq!(config.admin_listen, None);
    assert_eq!(config.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(config.slowlog_log_slower_than, 10_000);
    assert_eq!(config.slowlog_max_len, 128);
    assert_eq!(config.requirepass, None);
    assert!(config.users.is_empty());
    assert!(!config.enable_flush_commands);
    assert!(!config.enable_debug_command);
    assert_eq!(config.backend_user, None);
    assert_eq!(config.backend_password, None);
    assert_eq!(config.requirepass_file, None);
    assert_eq!(config.users_file, None);
    assert_eq!(config.backend_password_file, None);
    assert_eq!(config.config_file, None);
}

#[test]
fn seeds_are_required() {
    let found = problems(Config::from_parts(&Cli::default(), None));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key, keys::SEEDS);
    assert_eq!(found[0].origin, Origin::Default);
    assert!(found[0].message.starts_with("required"));
}

#[test]
fn file_values_are_used() {
    let toml = r#"
        listen = "0.0.0.0:7000"
        seeds = ["redis-0.redis:6379", "[fd00::2]:6379"]
        threads = 3
        log-level = "warn,slotgate::topology=debug"
        log-format = "json"
        backend-connect-timeout = "250ms"
        backend-reply-timeout = "1m30s"
        timeout = 300
        maxclients = 20
        proto-max-bulk-len = "1mb"
        client-query-buffer-limit = 2097152
        max-request-args = "100"
        max-reply-depth = 4096
        max-inflight-per-client = 1
        topology-refresh-interval = "1h"
        topology-refresh-min-interval = "1.5s"
        max-redirects = 64
        retry-deadline = 0
        dns-server = "10.96.0.10"
        admin-listen = "0.0.0.0:9121"
        shutdown-timeout = "30s"
        slowlog-log-slower-than = -1
        slowlog-max-len = 1000
    "#;
    let config = Config::from_parts(&Cli::default(), Some(toml)).unwrap();
    assert_eq!(config.listen, "0.0.0.0:7000".parse().unwrap());
    assert_eq!(config.announce, HostPort::new("127.0.0.1", 7000));
    assert_eq!(
        config.seeds,
        seeds(&["redis-0.redis:6379", "[fd00::2]:6379"])
    );
    assert_eq!(config.threads, 3);
    assert_eq!(config.log_level, "warn,slotgate::topology=debug");
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.backend_connect_timeout, Duration::from_millis(250));
    assert_eq!(config.backend_reply_timeout, Duration::from_secs(90));
    assert_eq!(config.timeout, Duration::from_secs(300));
    assert_eq!(config.maxclients, 20);
    assert_eq!(config.proto_max_bulk_len, 1024 * 1024);
    assert_eq!(config.client_query_buffer_limit, 2 * 1024 * 1024);
    assert_eq!(config.max_request_args, 100);
    assert_eq!(config.max_reply_depth, 4096);
    assert_eq!(config.max_inflight_per_client, 1);
    assert_eq!(config.topology_refresh_interval, Duration::from_secs(3600));
    assert_eq!(
        config.topology_refresh_min_interval,
        Duration::from_millis(1500)
    );
    assert_eq!(config.max_redirects, 64);
    assert_eq!(config.retry_deadline, Duration::ZERO);
    assert_eq!(config.dns_server, Some(HostPort::new("10.96.0.10", 53)));
    assert_eq!(config.admin_listen, Some("0.0.0.0:9121".parse().unwrap()));
    assert_eq!(config.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(config.slowlog_log_slower_than, -1);
    assert_eq!(config.slowlog_max_len, 1000);
}

#[test]
fn flags_override_the_file() {
    let toml = r#"
        seeds = ["file:1"]
        maxclients = 100
        proto-max-bulk-len = "2mb"
        log-format = "json"
        timeout = 5
    "#;
    let cli = Cli {
        seeds: Some(vec!["flag:1".into(), "flag:2".into()]),
        maxclients: Some("200".into()),
        log_format: Some("human".into()),
        // Blank counts as unset, so the file's value stays.
        timeout: Some("  ".into()),
        ..Cli::default()
    };
    let config = Config::from_parts(&cli, Some(toml)).unwrap();
    assert_eq!(config.seeds, seeds(&["flag:1", "flag:2"]));
    assert_eq!(config.maxclients, 200);
    assert_eq!(config.log_format, LogFormat::Human);
    assert_eq!(config.proto_max_bulk_len, 2 * 1024 * 1024);
    assert_eq!(config.timeout, Duration::from_secs(5));
}

#[test]
fn command_line_parsing() {
    let cli = Cli::try_parse_from([
        "slotgate",
        "--seeds",
        "a:1, b:2",
        "--seeds",
        "c:3",
        "--threads",
        "2",
        "--proto-max-bulk-len",
        "64MB",
        "--client-query-buffer-limit",
        "100mb",
        "--retry-deadline",
        "2s",
        "--announce",
        "[::1]:6380",
    ])
    .unwrap();
    let config = Config::from_parts(&cli, None).unwrap();
    assert_eq!(config.seeds, seeds(&["a:1", "b:2", "c:3"]));
    assert_eq!(config.threads, 2);
    assert_eq!(config.proto_max_bulk_len, 64 * 1024 * 1024);
    assert_eq!(config.client_query_buffer_limit, 100 * 1024 * 1024);
    assert_eq!(config.retry_deadline, Duration::from_secs(2));
    assert_eq!(config.announce, HostPort::new("::1", 6380));
}

/// Set in the child process only: marks the run that reads the environment.
const CHILD_MARK: &str = "SLOTGATE_CONFIG_TESTS_CHILD";

/// Runs in a child process with a prepared environment (see
/// `environment_sits_between_flags_and_file`); a plain test run skips it. Setting variables
/// in this process instead would race with every other test that reads the environment.
#[test]
fn environment_precedence_child() {
    if std::env::var_os(CHILD_MARK).is_none() {
        return;
    }
    let cli = Cli::try_parse_from(["slotgate", "--maxclients", "400"]).unwrap();
    let toml = r#"
        maxclients = 100
        max-redirects = 3
        timeout = 9
        log-level = "debug"
    "#;
    let config = Config::from_parts(&cli, Some(toml)).unwrap();
    assert_eq!(config.maxclients, 400, "flag beats env");
    assert_eq!(config.max_redirects, 7, "env beats file");
    assert_eq!(config.timeout, Duration::from_secs(9), "file beats default");
    assert_eq!(config.log_level, "debug", "empty env counts as unset");
    assert_eq!(
        config.seeds,
        seeds(&["a:1", "b:2"]),
        "env lists split on commas"
    );
    assert_eq!(
        config.proto_max_bulk_len,
        2 * 1024 * 1024,
        "env sizes take units"
    );
    let names: Vec<&str> = config.users.iter().map(|u| u.name()).collect();
    assert_eq!(names, ["alice", "bob"], "env users: one per line");
    assert_eq!(
        config.requirepass,
        Some(crate::acl::PasswordHash::of(b"env pass")),
        "env secrets are taken whole"
    );

    let bad = Cli::try_parse_from(["slotgate", "--threads", "0"]).unwrap();
    let found = problems(Config::from_parts(&bad, None));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].key, keys::THREADS);
    assert_eq!(found[0].origin, Origin::CommandLine);
}

#[test]
fn environment_sits_between_flags_and_file() {
    let mut child = Command::new(std::env::current_exe().unwrap());
    child.args([
        "--exact",
        "config::tests::environment_precedence_child",
        "--test-threads=1",
    ]);
    // Start from a clean slate: the developer's own SLOTGATE_* must not leak in.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SLOTGATE_") {
            child.env_remove(name);
        }
    }
    child
        .env(CHILD_MARK, "1")
        .env("SLOTGATE_MAXCLIENTS", "300")
        .env("SLOTGATE_MAX_REDIRECTS", "7")
        .env("SLOTGATE_SEEDS", "a:1,b:2")
        .env("SLOTGATE_LOG_LEVEL", "")
        .env("SLOTGATE_PROTO_MAX_BULK_LEN", "2mb")
        .env(
            "SLOTGATE_USERS",
            "alice on >a ~* +@all\nbob on nopass +get\n",
        )
        .env("SLOTGATE_REQUIREPASS", "env pass");
    let output = child.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn announce_defaults_follow_listen() {
    let v4 = assert_valid(r#"listen = "0.0.0.0:7001""#);
    assert_eq!(v4.announce, HostPort::new("127.0.0.1", 7001));
    let v6 = assert_valid(r#"listen = "[::]:7002""#);
    assert_eq!(v6.announce, HostPort::new("::1", 7002));
    let specific = assert_valid(r#"listen = "[fd00::5]:7003""#);
    assert_eq!(specific.announce, HostPort::new("fd00::5", 7003));
    let explicit = assert_valid(
        r#"listen = "0.0.0.0:6380"
        announce = "slotgate.ns.svc:6380""#,
    );
    assert_eq!(explicit.announce, HostPort::new("slotgate.ns.svc", 6380));
}

#[test]
fn network_rules() {
    assert_problem(
        r#"listen = "localhost:6380""#,
        "listen",
        "host name cannot be listened on",
    );
    assert_problem(r#"listen = "1.2.3.4""#, "listen", "missing port");
    assert_problem(
        r#"listen = "127.0.0.1:0""#,
        "listen",
        "port 0 is not allowed",
    );
    assert_problem(r#"announce = "[::1]""#, "announce", "missing port");
    assert_problem(r#"announce = "a:0""#, "announce", "port \"0\"");
    assert_problem(
        r#"dns-server = "dns.local:53""#,
        "dns-server",
        "must be an IP address",
    );
    assert_problem(
        r#"dns-server = "fd00::1:53:x""#,
        "dns-server",
        "not host:port",
    );
    let v6 = assert_valid(r#"dns-server = "[fd00::1]:5353""#);
    assert_eq!(v6.dns_server, Some(HostPort::new("fd00::1", 5353)));
    let bare_v6 = assert_valid(r#"dns-server = "fd00::1""#);
    assert_eq!(bare_v6.dns_server, Some(HostPort::new("fd00::1", 53)));
}

#[test]
fn seed_rules() {
    let empty = problems(Config::from_parts(&Cli::default(), Some("seeds = []")));
    assert_eq!(empty.len(), 1);
    assert!(empty[0].message.contains("at least one"));

    let bad = problems(Config::from_parts(
        &Cli::default(),
        Some(r#"seeds = ["foo", "ok:1", "::1:6379", ""]"#),
    ));
    let messages: Vec<&str> = bad.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "entry \"foo\" is not host:port (missing port)",
            "entry \"::1:6379\" is not host:port (an IPv6 address needs brackets, e.g. [::1]:6379)",
            "entry \"\" is not host:port (empty)",
        ]
    );
    assert!(
        bad.iter()
            .all(|p| p.key == keys::SEEDS && p.origin == Origin::File)
    );

    let deduplicated = Config::from_parts(
        &Cli::default(),
        Some(r#"seeds = ["a:1", " a:1 ", "[::1]:2", "[0::1]:2"]"#),
    )
    .unwrap();
    assert_eq!(deduplicated.seeds, seeds(&["a:1", "[::1]:2"]));
}

#[test]
fn integer_rules() {
    assert_problem("threads = 0", "threads", "must be from 1 to 1024, got 0");
    assert_problem("threads = 1025", "threads", "got 1025");
    assert_problem(
        r#"threads = "four""#,
        "threads",
        "\"four\" is not a whole number",
    );
    assert_problem("threads = -2", "threads", "got -2");
    assert_problem("maxclients = 0", "maxclients", "from 1 to");
    assert_problem("max-request-args = 0", "max-request-args", "from 1 to");
    assert_problem("max-reply-depth = 0", "max-reply-depth", "from 1 to 4096");
    assert_problem("max-reply-depth = 4097", "max-reply-depth", "got 4097");
    assert_problem(
        "max-inflight-per-client = 0",
        "max-inflight-per-client",
        "from 1",
    );
    assert_problem("max-redirects = 0", "max-redirects", "from 1 to 64");
    assert_problem("max-redirects = 65", "max-redirects", "got 65");
    assert_problem(
        r#"max-redirects = "5k""#,
        "max-redirects",
        "not a whole number",
    );
    assert_problem(
        r#"max-request-args = "99999999999999999999""#,
        "max-request-args",
        "too large",
    );
}

#[test]
fn size_rules() {
    assert_problem(
        "proto-max-bulk-len = 100",
        "proto-max-bulk-len",
        "100 bytes is below the minimum of 1mb (as in Redis)",
    );
    assert_problem(
        r#"proto-max-bulk-len = "3gb""#,
        "proto-max-bulk-len",
        "3gb is above the maximum of 2gb",
    );
    assert_problem(
        r#"proto-max-bulk-len = "12xb""#,
        "proto-max-bulk-len",
        "\"12xb\" is not a size: unknown unit \"xb\"",
    );
    assert_problem("proto-max-bulk-len = -1", "proto-max-bulk-len", "negative");
    assert_problem(
        r#"client-query-buffer-limit = "1k""#,
        "client-query-buffer-limit",
        "below the minimum of 1mb",
    );
    assert_problem(
        r#"client-query-buffer-limit = "4gb""#,
        "client-query-buffer-limit",
        "above the maximum",
    );
    let largest = assert_valid(
        r#"proto-max-bulk-len = "2gb"
        client-query-buffer-limit = 4294967295"#,
    );
    assert_eq!(largest.client_query_buffer_limit, u32::MAX as usize);
}

#[test]
fn query_buffer_must_exceed_bulk_len() {
    // The user raised the bulk length alone: blame it, and name the default it hit.
    assert_problem(
        r#"proto-max-bulk-len = "1gb""#,
        "proto-max-bulk-len",
        "1gb must be less than client-query-buffer-limit (default 1gb)",
    );
    // The user lowered the buffer alone: blame the buffer.
    assert_problem(
        r#"client-query-buffer-limit = "100mb""#,
        "client-query-buffer-limit",
        "100mb must be greater than proto-max-bulk-len (default 512mb)",
    );
    // Both set: the buffer limit is blamed.
    assert_problem(
        r#"proto-max-bulk-len = "8mb"
        client-query-buffer-limit = "8mb""#,
        "client-query-buffer-limit",
        "must be greater than proto-max-bulk-len (8mb)",
    );
    // A bad bulk length is reported once, not again as a conflict.
    assert_problem(
        r#"proto-max-bulk-len = "lots"
        client-query-buffer-limit = "2mb""#,
        "proto-max-bulk-len",
        "not a size",
    );
}

#[test]
fn duration_rules() {
    assert_problem(
        r#"backend-connect-timeout = "0s""#,
        "backend-connect-timeout",
        "must be more than 0",
    );
    assert_problem(
        "backend-connect-timeout = 5",
        "backend-connect-timeout",
        "5 has no unit; write \"5s\" or \"5ms\"",
    );
    assert_problem(
        r#"backend-reply-timeout = "5x""#,
        "backend-reply-timeout",
        "\"5x\" is not a duration: unknown unit \"x\"",
    );
    assert_problem(
        "backend-reply-timeout = 0",
        "backend-reply-timeout",
        "more than 0",
    );
    assert_problem(
        r#"topology-refresh-interval = "0ms""#,
        "topology-refresh-interval",
        "more than 0",
    );
    assert_problem(
        r#"topology-refresh-min-interval = "0s""#,
        "topology-refresh-min-interval",
        "burst of MOVED",
    );
    assert_problem(
        r#"topology-refresh-min-interval = "10s""#,
        "topology-refresh-min-interval",
        "(10s) must not exceed topology-refresh-interval (5s)",
    );
    assert_problem(
        r#"topology-refresh-interval = "50ms""#,
        "topology-refresh-interval",
        "(100ms) must not exceed topology-refresh-interval (50ms)",
    );
    assert_problem(r#"retry-deadline = "-1s""#, "retry-deadline", "negative");
    assert_problem(
        r#"retry-deadline = "9000h""#,
        "retry-deadline",
        "longer than",
    );
    assert_eq!(
        assert_valid(r#"retry-deadline = "0s""#).retry_deadline,
        Duration::ZERO
    );
}

#[test]
fn timeout_counts_seconds_like_redis() {
    assert_eq!(assert_valid("timeout = 0").timeout, Duration::ZERO);
    assert_eq!(
        assert_valid(r#"timeout = "60""#).timeout,
        Duration::from_secs(60)
    );
    assert_problem("timeout = -1", "timeout", "must not be negative");
    assert_problem(
        r#"timeout = "5m""#,
        "timeout",
        "whole seconds as in redis.conf",
    );
    assert_problem("timeout = 99999999999", "timeout", "longer than");
}

#[test]
fn log_rules() {
    assert_problem(r#"log-format = "xml""#, "log-format", "use human or json");
    assert_eq!(
        assert_valid(r#"log-format = "JSON""#).log_format,
        LogFormat::Json
    );
    assert_problem(r#"log-level = "warning""#, "log-level", "warning is warn");
    assert_problem(
        r#"log-level = "info,notice""#,
        "log-level",
        "\"notice\" is not a level",
    );
    assert_problem(r#"log-level = """#, "log-level", "empty");
    assert_problem(
        r#"log-level = "slotgate=loud""#,
        "log-level",
        "not a valid log filter",
    );
    for ok in [
        "trace",
        "OFF",
        "info,slotgate=debug",
        "slotgate::topology=trace",
        "warn,",
    ] {
        assert_eq!(assert_valid(&format!("log-level = {ok:?}")).log_level, ok);
    }
}

#[test]
fn rust_log_applies_only_where_log_level_is_set_nowhere() {
    let with_rust_log = |rust_log: &str| Cli {
        rust_log: Some(rust_log.into()),
        ..cli_with_seeds(&["a:1"])
    };
    let built = |cli: &Cli, toml: Option<&str>| Config::from_parts(cli, toml).unwrap().log_level;
    assert_eq!(built(&with_rust_log("debug"), None), "debug");
    assert_eq!(
        built(&with_rust_log("warn,slotgate::backend=trace"), None),
        "warn,slotgate::backend=trace"
    );
    // An empty RUST_LOG is unset, like an empty SLOTGATE_* variable.
    assert_eq!(built(&with_rust_log(""), None), "info");
    // log-level wins, from the file and from the flag (or SLOTGATE_LOG_LEVEL).
    assert_eq!(
        built(&with_rust_log("debug"), Some("log-level = \"warn\"")),
        "warn"
    );
    let flag = Cli {
        log_level: Some("error".into()),
        ..with_rust_log("trace")
    };
    assert_eq!(built(&flag, None), "error");
    // A bad RUST_LOG is refused like a bad log-level, and says where it came from.
    let error = Config::from_parts(&with_rust_log("warning"), None).unwrap_err();
    assert!(error.to_string().contains("from RUST_LOG"), "{error}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let toml = r#"
        seeds = ["nope"]
        maxclients = 0
        backend-reply-timeout = "soon"
        proto-max-bulk-len = "1k"
    "#;
    let cli = Cli {
        threads: Some("many".into()),
        ..Cli::default()
    };
    let error = Config::from_parts(&cli, Some(toml)).unwrap_err();
    let text = error.to_string();
    let ConfigError::Invalid(found) = error else {
        panic!("{text}");
    };
    let keys: Vec<&str> = found.iter().map(|p| p.key.name).collect();
    assert_eq!(
        keys,
        [
            "seeds",
            "threads",
            "backend-reply-timeout",
            "maxclients",
            "proto-max-bulk-len"
        ]
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "invalid configuration, 5 problems:");
    assert_eq!(lines.len(), 6);
    assert!(lines[1..].iter().all(|line| line.starts_with("  key `")));
    assert_eq!(
        lines[2],
        "  key `threads`: \"many\" is not a whole number (set by flag or environment; \
         flag --threads, env SLOTGATE_THREADS)"
    );
    assert_eq!(
        lines[5],
        "  key `proto-max-bulk-len`: 1000 bytes is below the minimum of 1mb (as in Redis) \
         (set in the config file; flag --proto-max-bulk-len, env SLOTGATE_PROTO_MAX_BULK_LEN)"
    );
}

#[test]
fn unknown_key_is_an_error() {
    let error = from_toml("seeds = [\"a:1\"]\nmax_redirects = 3\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "config: line 2, column 1: unknown key `max_redirects` (did you mean `max-redirects`?)"
    );
    let ConfigError::Toml { unknown_key, .. } = error else {
        panic!("{error:?}");
    };
    assert_eq!(unknown_key.as_deref(), Some("max_redirects"));
}

#[test]
fn load_reads_the_named_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slotgate.toml");
    std::fs::write(&path, "seeds = [\"a:1\"]\nmaxclients = 42\n").unwrap();
    let cli = Cli {
        config: Some(path.clone()),
        ..Cli::default()
    };
    let config = Config::load(&cli).unwrap();
    assert_eq!(config.maxclients, 42);
    assert_eq!(config.config_file, Some(path.clone()));

    std::fs::write(&path, "seeds = [\"a:1\"]\nbogus = 1\n").unwrap();
    let message = Config::load(&cli).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("config file {}: line 2, column 1", path.display())),
        "{message}"
    );

    let missing = Cli {
        config: Some(dir.path().join("missing.toml")),
        ..Cli::default()
    };
    let error = Config::load(&missing).unwrap_err();
    assert!(matches!(error, ConfigError::Io { .. }), "{error:?}");
    assert!(error.to_string().contains("missing.toml"));
}

#[test]
fn example_file_states_the_defaults() {
    let config = Config::from_parts(&Cli::default(), Some(EXAMPLE)).unwrap();
    let expected = Config::with_seeds(seeds(&["redis-headless.default.svc.cluster.local:6379"]));
    assert_eq!(config.view(), expected);
}

#[test]
fn example_file_shows_every_key() {
    for key in keys::ALL {
        let active = format!("\n{} = ", key.name);
        let commented = format!("\n# {} = ", key.name);
        assert!(
            EXAMPLE.contains(&active) || EXAMPLE.contains(&commented),
            "config/slotgate.toml lacks `{}`",
            key.name
        );
    }
}

#[test]
fn reference_doc_names_every_key_flag_and_variable() {
    for key in keys::ALL {
        for spelling in [key.name, key.flag, key.env] {
            assert!(
                REFERENCE.contains(&format!("`{spelling}`")),
                "docs/configuration.md lacks `{spelling}`"
            );
        }
    }
    assert!(REFERENCE.contains(keys::CONFIG_ENV));
}

#[test]
fn admin_listen_rules() {
    assert_eq!(
        assert_valid(r#"admin-listen = "127.0.0.1:9121""#).admin_listen,
        Some("127.0.0.1:9121".parse().unwrap())
    );
    assert_eq!(assert_valid(r#"admin-listen = "off""#).admin_listen, None);
    assert_problem(r#"admin-listen = "127.0.0.1:0""#, "admin-listen", "port 0");
    assert_problem(
        r#"admin-listen = "localhost:9121""#,
        "admin-listen",
        "is not IP:port",
    );
    // The default listen address is 127.0.0.1:6380.
    assert_problem(
        r#"admin-listen = "0.0.0.0:6380""#,
        "admin-listen",
        "collides with listen",
    );
    assert_valid(r#"admin-listen = "127.0.0.2:6380""#);
    let cli = Cli {
        admin_listen: Some("127.0.0.1:9999".into()),
        ..cli_with_seeds(&["a:1"])
    };
    let config = Config::from_parts(&cli, Some(r#"admin-listen = "127.0.0.1:9121""#)).unwrap();
    assert_eq!(config.admin_listen, Some("127.0.0.1:9999".parse().unwrap()));
}

#[test]
fn shutdown_and_slowlog_rules() {
    assert_eq!(
        assert_valid(r#"shutdown-timeout = "0s""#).shutdown_timeout,
        Duration::ZERO
    );
    assert_problem("shutdown-timeout = 5", "shutdown-timeout", "has no unit");
    assert_eq!(
        assert_valid("slowlog-log-slower-than = 0").slowlog_log_slower_than,
        0
    );
    assert_eq!(
        assert_valid(r#"slowlog-log-slower-than = "-5""#).slowlog_log_slower_than,
        -5
    );
    assert_problem(
        r#"slowlog-log-slower-than = "10ms""#,
        "slowlog-log-slower-than",
        "not a whole number",
    );
    assert_eq!(assert_valid("slowlog-max-len = 0").slowlog_max_len, 0);
    assert_problem(
        "slowlog-max-len = 1000001",
        "slowlog-max-len",
        "must be from 0 to 1000000",
    );
    assert_problem("slowlog-max-len = -1", "slowlog-max-len", "must be from 0");
    let cli = Cli {
        slowlog_log_slower_than: Some("-1".into()),
        ..cli_with_seeds(&["a:1"])
    };
    assert_eq!(
        Config::from_parts(&cli, None)
            .unwrap()
            .slowlog_log_slower_than,
        -1
    );
}

#[test]
fn negative_slowlog_threshold_parses_as_a_flag() {
    let cli = Cli::try_parse_from([
        "slotgate",
        "--seeds",
        "a:1",
        "--slowlog-log-slower-than",
        "-1",
    ])
    .unwrap();
    assert_eq!(cli.slowlog_log_slower_than.as_deref(), Some("-1"));
}

// --- Security keys ------------------------------------------------------------------------

/// Writes `content` to a new file in `dir` and returns its path as text.
fn write_file(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

#[test]
fn requirepass_is_hashed() {
    let config = assert_valid(r#"requirepass = "s3cret""#);
    assert_eq!(
        config.requirepass,
        Some(crate::acl::PasswordHash::of(b"s3cret"))
    );
    let cli = Cli {
        requirepass: Some("fromflag".into()),
        ..cli_with_seeds(&["a:1"])
    };
    let config = Config::from_parts(&cli, Some(r#"requirepass = "fromfile""#)).unwrap();
    assert_eq!(
        config.requirepass,
        Some(crate::acl::PasswordHash::of(b"fromflag"))
    );
    // A blank flag or variable counts as unset; an empty value in the file is refused.
    let blank = Cli {
        requirepass: Some("  ".into()),
        ..cli_with_seeds(&["a:1"])
    };
    assert_eq!(Config::from_parts(&blank, None).unwrap().requirepass, None);
    assert_problem(r#"requirepass = """#, "requirepass", "empty");
}

#[test]
fn password_files_lose_one_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    for (content, password) in [
        ("s3cret\n", "s3cret"),
        ("s3cret\r\n", "s3cret"),
        ("s3cret", "s3cret"),
        ("s3cret\n\n", "s3cret\n"),
        (" spaced out \n", " spaced out "),
    ] {
        let path = write_file(&dir, "pass", content);
        let config = assert_valid(&format!("requirepass-file = {path:?}"));
        assert_eq!(
            config.requirepass,
            Some(crate::acl::PasswordHash::of(password.as_bytes())),
            "{content:?}"
        );
        assert_eq!(config.requirepass_file, Some(path.clone().into()));
        let config = assert_valid(&format!("backend-password-file = {path:?}"));
        assert_eq!(
            config.backend_password.as_ref().map(Secret::expose),
            Some(password),
            "{content:?}"
        );
        assert_eq!(config.backend_password_file, Some(path.clone().into()));
    }
    let empty = write_file(&dir, "empty", "\n");
    assert_problem(
        &format!("requirepass-file = {empty:?}"),
        "requirepass-file",
        "is empty",
    );
    let missing = dir.path().join("missing").display().to_string();
    assert_problem(
        &format!("backend-password-file = {missing:?}"),
        "backend-password-file",
        "cannot read",
    );
}

#[test]
fn a_password_and_its_file_are_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(&dir, "pass", "x\n");
    assert_problem(
        &format!("requirepass = \"hunter2\"\nrequirepass-file = {path:?}"),
        "requirepass-file",
        "set only one of requirepass and requirepass-file",
    );
    assert_problem(
        &format!("backend-password = \"hunter2\"\nbackend-password-file = {path:?}"),
        "backend-password-file",
        "set only one of backend-password and backend-password-file",
    );
}

#[test]
fn backend_credentials() {
    let config = assert_valid(
        r#"backend-user = "slotgate"
        backend-password = "hunter2""#,
    );
    assert_eq!(config.backend_user.as_deref(), Some("slotgate"));
    assert_eq!(
        config.backend_password.as_ref().map(Secret::expose),
        Some("hunter2")
    );
    let password_only = assert_valid(r#"backend-password = "hunter2""#);
    assert_eq!(password_only.backend_user, None);
    assert_problem(
        r#"backend-user = "slotgate""#,
        "backend-user",
        "needs backend-password or backend-password-file",
    );
    assert_problem(
        r#"backend-user = "two words"
        backend-password = "x""#,
        "backend-user",
        "not a user name",
    );
    assert_problem(r#"backend-password = """#, "backend-password", "empty");
}

#[test]
fn users_from_the_array_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        &dir,
        "users.acl",
        "# ACL file\nuser bob on #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 allkeys allcommands\n",
    );
    let config = assert_valid(&format!(
        r#"requirepass = "s3cret"
        users = ["alice on >a ~cache:* +@read", "ci on nopass ~* +get +set", "default -flushall"]
        users-file = {file:?}"#
    ));
    let names: Vec<&str> = config.users.iter().map(|u| u.name()).collect();
    assert_eq!(names, ["alice", "ci", "default", "bob"]);
    assert_eq!(config.users_file, Some(file.clone().into()));
    let users = crate::acl::Users::from_config(&config.users, config.requirepass).unwrap();
    assert!(users.authenticate(Some(b"bob"), b"password").is_ok());
    assert!(users.authenticate(Some(b"alice"), b"a").is_ok());
    // The default user's line started from requirepass.
    assert!(users.authenticate(None, b"s3cret").is_ok());

    // Flags: one user per flag (or per line of the variable), over the file's array.
    let cli = Cli {
        users: Some(vec!["carol on >c +@all ~*".into(), "".into()]),
        ..cli_with_seeds(&["a:1"])
    };
    let config = Config::from_parts(&cli, Some(r#"users = ["alice on"]"#)).unwrap();
    let names: Vec<&str> = config.users.iter().map(|u| u.name()).collect();
    assert_eq!(names, ["carol"]);
}

#[test]
fn user_problems_name_the_entry_and_hide_passwords() {
    let found = problems(from_toml(
        r#"users = ["alice on >hunter2 +nosuch", "bob on hunter2", "carol on"]"#,
    ));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found.iter().all(|p| p.key == keys::USERS));
    assert_eq!(
        found[0].message,
        "entry 1: user `alice`, rule 3 `+nosuch`: unknown command `nosuch` (module commands, \
         named with a dot such as json.get, are accepted as written)"
    );
    assert!(
        found[1]
            .message
            .starts_with("entry 2: user `bob`, rule 2 (not shown")
    );
    let text = ConfigError::Invalid(found).to_string();
    assert!(!text.contains("hunter2"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "users.acl", "user alice on\nuser dave on <hunter2\n");
    let found = problems(from_toml(&format!(
        r#"users = ["alice off"]
        users-file = {file:?}"#
    )));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[0].key, keys::USERS_FILE);
    assert!(
        found[0].message.ends_with(
            "line 2: user `dave`, rule 2 `<(redacted)`: removes a password the user does not have"
        ),
        "{}",
        found[0].message
    );
    assert_eq!(found[1].key, keys::USERS_FILE);
    assert_eq!(
        found[1].message,
        "user `alice` is defined twice (in users and users-file together)"
    );
    assert_problem(
        &format!(
            "users-file = {:?}",
            dir.path().join("nope").display().to_string()
        ),
        "users-file",
        "cannot read",
    );
}

#[test]
fn config_debug_redacts_secrets() {
    let config = assert_valid(
        r#"requirepass = "hunter2"
        users = ["alice on >hunter3 +@all ~*"]
        backend-user = "slotgate"
        backend-password = "hunter4""#,
    );
    let debug = format!("{config:?}");
    for secret in ["hunter2", "hunter3", "hunter4"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    assert!(debug.contains("(redacted)"), "{debug}");
    assert!(debug.contains("slotgate"), "{debug}");
}

#[test]
fn dangerous_command_switches() {
    let config = assert_valid(
        "enable-flush-commands = true
        enable-debug-command = false",
    );
    assert!(config.enable_flush_commands && !config.enable_debug_command);
    for (text, value) in [
        ("true", true),
        ("YES", true),
        ("false", false),
        ("no", false),
    ] {
        let cli = Cli {
            enable_debug_command: Some(text.into()),
            ..cli_with_seeds(&["a:1"])
        };
        let config = Config::from_parts(&cli, Some("enable-debug-command = true")).unwrap();
        assert_eq!(config.enable_debug_command, value, "{text}");
    }
    let cli = Cli {
        enable_flush_commands: Some("maybe".into()),
        ..cli_with_seeds(&["a:1"])
    };
    let found = problems(Config::from_parts(&cli, None));
    assert_eq!(found[0].key, keys::ENABLE_FLUSH_COMMANDS);
    assert!(found[0].message.contains("not a boolean"));
}

#[test]
fn mode_and_its_keys() {
    use crate::config::Mode;
    assert_eq!(assert_valid("").mode, Mode::Cluster);
    let standalone = assert_valid(r#"mode = "standalone""#);
    assert_eq!(standalone.mode, Mode::Standalone);
    assert_eq!(standalone.seeds, seeds(&["10.0.0.1:6379"]));
    assert_problem(
        r#"mode = "replicated""#,
        "mode",
        "cluster, sentinel or standalone",
    );
    // Keys of sentinel mode are an error in any other mode, each naming itself.
    let found = problems(from_toml(
        r#"
        mode = "standalone"
        sentinels = ["s:26379"]
        master-name = "mymaster"
        sentinel-username = "u"
        sentinel-password = "hunter2"
        "#,
    ));
    let named: Vec<&str> = found.iter().map(|p| p.key.name).collect();
    assert_eq!(
        named,
        vec![
            "sentinels",
            "master-name",
            "sentinel-username",
            "sentinel-password"
        ]
    );
    assert!(
        found[0]
            .message
            .contains("mode sentinel (mode is standalone)")
    );
    for problem in &found {
        assert!(!problem.to_string().contains("hunter2"), "{problem}");
    }
    // Seeds stay required in standalone mode.
    let found = problems(Config::from_parts(
        &Cli {
            mode: Some("standalone".into()),
            ..Cli::default()
        },
        None,
    ));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key, keys::SEEDS);
    assert!(found[0].message.contains("required with mode standalone"));
}

#[test]
fn sentinel_mode_reports_every_missing_key() {
    let found = problems(Config::from_parts(
        &Cli {
            mode: Some("sentinel".into()),
            seeds: Some(vec!["10.0.0.1:6379".into()]),
            sentinel_username: Some("u".into()),
            ..Cli::default()
        },
        None,
    ));
    let named: Vec<&str> = found.iter().map(|p| p.key.name).collect();
    assert_eq!(
        named,
        vec!["seeds", "sentinels", "master-name", "sentinel-username",],
        "{found:#?}"
    );
    assert!(found[1].message.starts_with("required with mode sentinel"));
    assert!(found[3].message.contains("needs sentinel-password"));
}
