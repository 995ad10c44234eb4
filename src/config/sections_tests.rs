//! Tests of `[backends.NAME]` and `[[listeners]]`: which view gets which value, and every
//! problem reported once under the path where it was written.

use clap::Parser;

use super::*;

const TWO: &str = r#"
timeout = 30
backend-connect-timeout = "2s"

[backends.orders]
seeds = ["10.0.0.1:6379"]
retry-deadline = "3s"

[backends.sessions]
mode = "sentinel"
sentinels = ["10.0.1.1:26379"]
master-name = "sessions"
backend-connect-timeout = "500ms"

[[listeners]]
listen = "127.0.0.1:6380"
backend = "orders"
maxclients = 7

[[listeners]]
listen = "127.0.0.1:6381"
backend = "sessions"
requirepass = "s3cret"
"#;

fn load(cli: &Cli, toml: &str) -> Result<Config, ConfigError> {
    Config::from_parts(cli, Some(toml))
}

fn paths(result: Result<Config, ConfigError>) -> Vec<String> {
    match result {
        Err(ConfigError::Invalid(problems)) => problems.iter().map(Problem::path).collect(),
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn each_view_takes_its_sections_over_the_top_level() {
    let config = load(&Cli::default(), TWO).unwrap();
    let names: Vec<&str> = config.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["orders", "sessions"]);
    let [orders, sessions] = [&config.listeners[0], &config.listeners[1]];
    assert_eq!((orders.name.as_str(), orders.backend), ("orders", 0));
    assert_eq!((sessions.name.as_str(), sessions.backend), ("sessions", 1));
    // Listener keys: its own entry, else the top level.
    assert_eq!(orders.config.maxclients, 7);
    assert_eq!(sessions.config.maxclients, 10_000);
    assert_eq!(orders.config.timeout, Duration::from_secs(30));
    assert_eq!(sessions.config.timeout, Duration::from_secs(30));
    assert!(orders.config.requirepass.is_none());
    assert!(sessions.config.requirepass.is_some());
    // Backend keys: its backend's table, else the top level, in the listener's view too.
    assert_eq!(orders.config.retry_deadline, Duration::from_secs(3));
    assert_eq!(sessions.config.retry_deadline, Duration::from_secs(10));
    assert_eq!(sessions.config.mode, Mode::Sentinel);
    let backend = &config.backends[1].config;
    assert_eq!(backend.backend_connect_timeout, Duration::from_millis(500));
    assert_eq!(
        config.backends[0].config.backend_connect_timeout,
        Duration::from_secs(2)
    );
    assert_eq!(backend.master_name.as_deref(), Some("sessions"));
    assert!(config.backends.iter().all(|b| b.required));
}

/// A section is written for its listener or backend: it wins over a flag, which stays the
/// default of the others.
#[test]
fn a_section_wins_over_a_flag() {
    let cli =
        Cli::try_parse_from(["slotgate", "--maxclients", "5", "--seeds", "10.9.9.9:1"]).unwrap();
    let config = load(&cli, TWO).unwrap();
    assert_eq!(config.listeners[0].config.maxclients, 7);
    assert_eq!(config.listeners[1].config.maxclients, 5);
    assert_eq!(
        config.backends[0].config.seeds,
        vec![HostPort::new("10.0.0.1", 6379)]
    );
}

#[test]
fn flat_keys_are_one_default_listener_on_one_default_backend() {
    let cli = Cli::try_parse_from(["slotgate", "--seeds", "10.0.0.1:6379"]).unwrap();
    let config = load(&cli, "maxclients = 9\n").unwrap();
    assert_eq!(config.backends.len(), 1);
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.backends[0].name, "default");
    assert_eq!(config.listeners[0].name, "default");
    assert_eq!(config.listeners[0].config.maxclients, 9);
    assert_eq!(*config.listeners[0].config, config.view());
}

/// Every problem at once, each under the path where it was written (or belongs).
#[test]
fn every_problem_is_named_by_its_path() {
    let toml = r#"
threads = 0

[backends.orders]
seeds = ["10.0.0.1:6379"]
listen = "127.0.0.1:7000"
seedz = ["x"]

[backends.sessions]
mode = "sentinel"

[[listeners]]
listen = "127.0.0.1:6380"
backend = "orders"

[[listeners]]
listen = "not an address"
backend = "sessions"

[[listeners]]
listen = "127.0.0.1:6390"
backend = "nope"

[[listeners]]
listen = "127.0.0.1:6380"
backend = "orders"
name = "orders-2"
maxclients = "lots"
"#;
    let found = paths(load(&Cli::default(), toml));
    for want in [
        "threads",
        "backends.orders.listen",
        "backends.orders.seedz",
        "backends.sessions.sentinels",
        "backends.sessions.master-name",
        "listeners[1].listen",
        "listeners[2].backend",
        "listeners[3].maxclients",
    ] {
        assert!(
            found.iter().any(|p| p == want),
            "{want} missing from {found:#?}"
        );
    }
    // A top-level problem is one problem, not one per view.
    assert_eq!(
        found.iter().filter(|p| *p == "threads").count(),
        1,
        "{found:#?}"
    );
}

#[test]
fn listeners_must_be_told_apart() {
    let toml = r#"
[backends.a]
seeds = ["10.0.0.1:6379"]
[backends.b]
seeds = ["10.0.0.2:6379"]

[[listeners]]
listen = "0.0.0.0:6380"
backend = "a"
[[listeners]]
listen = "127.0.0.1:6380"
backend = "b"
[[listeners]]
listen = "127.0.0.1:6382"
backend = "a"
[[listeners]]
listen = "127.0.0.1:6383"
"#;
    let found = paths(load(&Cli::default(), toml));
    assert!(
        found.contains(&"listeners[1].listen".to_owned()),
        "{found:#?}"
    );
    // Backend `a` has two listeners now: each needs a name.
    assert!(
        found.contains(&"listeners[0].name".to_owned()),
        "{found:#?}"
    );
    assert!(
        found.contains(&"listeners[3].backend".to_owned()),
        "{found:#?}"
    );
}

#[test]
fn section_problems_name_no_flag_and_quote_no_secret() {
    let toml = r#"
[backends.a]
seeds = ["10.0.0.1:6379"]
backend-password = 8675309

[[listeners]]
listen = "127.0.0.1:6380"
requirepass = ["hunter2"]
"#;
    let error = load(&Cli::default(), toml).unwrap_err().to_string();
    assert!(
        error.contains("key `backends.a.backend-password`"),
        "{error}"
    );
    assert!(error.contains("key `listeners[0].requirepass`"), "{error}");
    assert!(
        !error.contains("8675309") && !error.contains("hunter2"),
        "{error}"
    );
    assert!(!error.contains("--requirepass"), "{error}");
}

/// The Kubernetes example is a valid config: its only problems are the Secret files, which
/// exist only in a pod.
#[test]
fn the_kubernetes_example_is_valid_but_for_its_secret_files() {
    const EXAMPLE: &str = include_str!("../../k8s/multi-db/slotgate.toml");
    let found = match load(&Cli::default(), EXAMPLE) {
        Err(ConfigError::Invalid(problems)) => problems,
        other => panic!("expected only the missing secret files, got {other:?}"),
    };
    assert_eq!(found.len(), 3, "{found:#?}");
    for problem in &found {
        assert_eq!(problem.key, keys::REQUIREPASS_FILE, "{found:#?}");
        assert!(problem.message.contains("cannot read"), "{found:#?}");
    }
    let paths: Vec<String> = found.iter().map(Problem::path).collect();
    assert_eq!(
        paths,
        [
            "listeners[0].requirepass-file",
            "listeners[1].requirepass-file",
            "listeners[2].requirepass-file"
        ]
    );
}
