//! Command-line flags and `SLOTGATE_*` environment variables.
//!
//! clap fills [`Cli`] from argv and the environment (a flag beats its variable); every field
//! is an `Option` so that [`super::build`] can tell "not given" from "given" and fall back to
//! the config file, then the default. Values stay text here, so that a bad flag is reported
//! together with every other problem, in the same words as the same mistake in the file.
//! The defaults in the help texts are the ones [`super::build`] applies.

use std::path::PathBuf;

use clap::Parser;

use super::Secret;

/// slotgate: a cluster-aware Redis proxy.
///
/// Clients talk to slotgate as to one standalone Redis server; slotgate routes every command
/// to the cluster node that owns its keys.
///
/// Every setting can come from a flag, its SLOTGATE_* environment variable or the TOML file
/// named by --config; the first of those that is set wins, else the default applies. An
/// empty environment variable counts as unset. See docs/configuration.md.
#[derive(Clone, Debug, Default, Parser)]
#[command(name = "slotgate", version)]
pub struct Cli {
    /// TOML config file; flags and environment variables override its keys.
    #[arg(long, env = "SLOTGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address clients connect to [default: 127.0.0.1:6380].
    #[arg(long, env = "SLOTGATE_LISTEN", value_name = "IP:PORT")]
    pub listen: Option<String>,

    /// Address told to cluster-mode clients (CLUSTER SLOTS, CLUSTER SHARDS). Set it to the
    /// pod IP or Service name when listening on 0.0.0.0 [default: the listen address, with
    /// 127.0.0.1 or ::1 for an unspecified IP].
    #[arg(long, env = "SLOTGATE_ANNOUNCE", value_name = "HOST:PORT")]
    pub announce: Option<String>,

    /// Address of the admin HTTP listener (/metrics, /healthz, /readyz, /topology, POST
    /// /reload); unset = no admin listener [default: none].
    #[arg(long, env = "SLOTGATE_ADMIN_LISTEN", value_name = "IP:PORT")]
    pub admin_listen: Option<String>,

    /// Bearer token the admin page and its JSON API (/, /api/topology, /topology, POST
    /// /reload) require; probes and /metrics stay open. Prefer admin-token-file
    /// [default: none, the admin listener is open].
    #[arg(
        long,
        env = "SLOTGATE_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<Secret>,

    /// File holding the admin token (one trailing newline is ignored), e.g. a mounted
    /// Kubernetes Secret; re-read on reload [default: none].
    #[arg(long, env = "SLOTGATE_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<String>,

    /// What the backend is: cluster (a Redis Cluster), sentinel (a primary and replicas
    /// managed by Redis Sentinel) or standalone (a primary and replicas, roles learned from
    /// ROLE); needs a restart to change [default: cluster].
    #[arg(
        long,
        env = "SLOTGATE_MODE",
        value_name = "cluster|sentinel|standalone"
    )]
    pub mode: Option<String>,

    /// Nodes to discover the topology from, comma separated; DNS names are re-resolved
    /// forever (standalone: a name expands to every address it has) [required in cluster
    /// and standalone mode].
    #[arg(
        long,
        env = "SLOTGATE_SEEDS",
        value_name = "HOST:PORT,...",
        value_delimiter = ','
    )]
    pub seeds: Option<Vec<String>>,

    /// Sentinel mode: the Sentinels to ask, comma separated host:port; DNS names are
    /// re-resolved forever [required with --mode sentinel].
    #[arg(
        long,
        env = "SLOTGATE_SENTINELS",
        value_name = "HOST:PORT,...",
        value_delimiter = ','
    )]
    pub sentinels: Option<Vec<String>>,

    /// Sentinel mode: the name the Sentinels monitor the primary under (sentinel monitor
    /// <name> ...); needs a restart to change [required with --mode sentinel].
    #[arg(long, env = "SLOTGATE_MASTER_NAME", value_name = "NAME")]
    pub master_name: Option<String>,

    /// Sentinel mode: user slotgate authenticates as on the Sentinels (AUTH user
    /// password); needs sentinel-password or sentinel-password-file [default: none].
    #[arg(long, env = "SLOTGATE_SENTINEL_USERNAME", value_name = "NAME")]
    pub sentinel_username: Option<String>,

    /// Sentinel mode: password for the Sentinels (separate from backend-password); prefer
    /// sentinel-password-file, since flags show in `ps` [default: none].
    #[arg(
        long,
        env = "SLOTGATE_SENTINEL_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub sentinel_password: Option<Secret>,

    /// Sentinel mode: file holding the Sentinels' password (one trailing newline is
    /// ignored); re-read on reload [default: none].
    #[arg(long, env = "SLOTGATE_SENTINEL_PASSWORD_FILE", value_name = "FILE")]
    pub sentinel_password_file: Option<String>,

    /// Worker threads, 1 to 1024 [default: number of CPUs].
    #[arg(long, env = "SLOTGATE_THREADS", value_name = "N")]
    pub threads: Option<String>,

    /// Log filter: a level (trace, debug, info, warn, error, off) or tracing directives
    /// such as "info,slotgate::topology=debug" [default: info].
    #[arg(long, env = "SLOTGATE_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,

    /// `RUST_LOG` as the process found it (set by `main`, not a flag): the log filter when
    /// `log-level` is set nowhere, so a Rust user's habit works and an explicit
    /// `log-level` still wins.
    #[arg(skip)]
    pub rust_log: Option<String>,

    /// Log format: human or json [default: human].
    #[arg(long, env = "SLOTGATE_LOG_FORMAT", value_name = "human|json")]
    pub log_format: Option<String>,

    /// Time allowed to open a connection to a cluster node [default: 1s].
    #[arg(
        long,
        env = "SLOTGATE_BACKEND_CONNECT_TIMEOUT",
        value_name = "DURATION"
    )]
    pub backend_connect_timeout: Option<String>,

    /// Time a cluster node has to answer a command, more than 0 [default: 5s].
    #[arg(long, env = "SLOTGATE_BACKEND_REPLY_TIMEOUT", value_name = "DURATION")]
    pub backend_reply_timeout: Option<String>,

    /// User name slotgate authenticates as on every cluster node connection (AUTH user
    /// password); needs backend-password or backend-password-file [default: none].
    #[arg(long, env = "SLOTGATE_BACKEND_USER", value_name = "NAME")]
    pub backend_user: Option<String>,

    /// Password slotgate authenticates with on every cluster node connection; prefer
    /// backend-password-file, since flags show in `ps` [default: none].
    #[arg(
        long,
        env = "SLOTGATE_BACKEND_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub backend_password: Option<Secret>,

    /// File holding the cluster nodes' password (one trailing newline is ignored), e.g. a
    /// mounted Kubernetes Secret; re-read on reload [default: none].
    #[arg(long, env = "SLOTGATE_BACKEND_PASSWORD_FILE", value_name = "FILE")]
    pub backend_password_file: Option<String>,

    /// Close a client idle for this many seconds; 0 = never, as in redis.conf [default: 0].
    #[arg(long, env = "SLOTGATE_TIMEOUT", value_name = "SECONDS")]
    pub timeout: Option<String>,

    /// Most client connections at once, as in redis.conf [default: 10000].
    #[arg(long, env = "SLOTGATE_MAXCLIENTS", value_name = "N")]
    pub maxclients: Option<String>,

    /// Largest bulk string a client may send, 1mb to 2gb [default: 512mb].
    #[arg(long, env = "SLOTGATE_PROTO_MAX_BULK_LEN", value_name = "SIZE")]
    pub proto_max_bulk_len: Option<String>,

    /// Most unanswered request bytes buffered per client, more than proto-max-bulk-len
    /// [default: 1gb].
    #[arg(long, env = "SLOTGATE_CLIENT_QUERY_BUFFER_LIMIT", value_name = "SIZE")]
    pub client_query_buffer_limit: Option<String>,

    /// Reply bytes a client may leave unread before it is disconnected, per class as in
    /// redis.conf: "<normal|pubsub> <hard> <soft> <soft-seconds> ..."; classes not named
    /// keep their defaults [default: "normal 0 0 0 pubsub 32mb 8mb 60"].
    #[arg(
        long,
        env = "SLOTGATE_CLIENT_OUTPUT_BUFFER_LIMIT",
        value_name = "CLASS HARD SOFT SECONDS"
    )]
    pub client_output_buffer_limit: Option<String>,

    /// Most arguments in one request, command name included [default: 1048576].
    #[arg(long, env = "SLOTGATE_MAX_REQUEST_ARGS", value_name = "N")]
    pub max_request_args: Option<String>,

    /// Deepest nesting accepted in a reply, 1 to 4096 [default: 128].
    #[arg(long, env = "SLOTGATE_MAX_REPLY_DEPTH", value_name = "N")]
    pub max_reply_depth: Option<String>,

    /// Commands read from one client but not yet answered; reading pauses at this many
    /// [default: 1024].
    #[arg(long, env = "SLOTGATE_MAX_INFLIGHT_PER_CLIENT", value_name = "N")]
    pub max_inflight_per_client: Option<String>,

    /// Password of the default user: clients must AUTH with it first, as in redis.conf;
    /// prefer requirepass-file, since flags show in `ps` [default: none, no AUTH needed].
    #[arg(
        long,
        env = "SLOTGATE_REQUIREPASS",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub requirepass: Option<Secret>,

    /// File holding requirepass (one trailing newline is ignored), e.g. a mounted
    /// Kubernetes Secret; re-read on reload [default: none].
    #[arg(long, env = "SLOTGATE_REQUIREPASS_FILE", value_name = "FILE")]
    pub requirepass_file: Option<String>,

    /// A user in Redis ACL syntax, "alice on >password ~cache:* +@read"; repeat the flag
    /// for more users; in the variable one user per line [default: none].
    #[arg(
        long,
        env = "SLOTGATE_USERS",
        value_name = "NAME RULES",
        value_delimiter = '\n',
        hide_env_values = true
    )]
    pub users: Option<Vec<Secret>>,

    /// File of users as in a Redis ACL file, one "user alice on >password ..." per line;
    /// re-read on reload [default: none].
    #[arg(long, env = "SLOTGATE_USERS_FILE", value_name = "FILE")]
    pub users_file: Option<String>,

    /// Let FLUSHALL and FLUSHDB through (they empty every node of the cluster): true or
    /// false; the flag alone means true [default: false].
    #[arg(
        long,
        env = "SLOTGATE_ENABLE_FLUSH_COMMANDS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub enable_flush_commands: Option<String>,

    /// Let DEBUG through: true or false; the flag alone means true [default: false].
    #[arg(
        long,
        env = "SLOTGATE_ENABLE_DEBUG_COMMAND",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub enable_debug_command: Option<String>,

    /// Port of a TLS listener on the IP of --listen, next to the plain one; unset = no
    /// TLS listener [default: none].
    #[arg(long, env = "SLOTGATE_TLS_PORT", value_name = "PORT")]
    pub tls_port: Option<String>,

    /// PEM certificate chain of the TLS listener (leaf first); required with --tls-port;
    /// re-read on reload.
    #[arg(long, env = "SLOTGATE_TLS_CERT_FILE", value_name = "FILE")]
    pub tls_cert_file: Option<String>,

    /// PEM private key of the TLS listener; required with --tls-port; re-read on reload.
    #[arg(long, env = "SLOTGATE_TLS_KEY_FILE", value_name = "FILE")]
    pub tls_key_file: Option<String>,

    /// PEM CA bundle that client certificates must chain to [default: none].
    #[arg(long, env = "SLOTGATE_TLS_CA_CERT_FILE", value_name = "FILE")]
    pub tls_ca_cert_file: Option<String>,

    /// Client certificates on the TLS listener: yes (required), optional or no [default:
    /// yes with --tls-ca-cert-file, else no].
    #[arg(
        long,
        env = "SLOTGATE_TLS_AUTH_CLIENTS",
        value_name = "yes|optional|no"
    )]
    pub tls_auth_clients: Option<String>,

    /// TLS versions offered, space separated [default: "TLSv1.2 TLSv1.3"].
    #[arg(long, env = "SLOTGATE_TLS_PROTOCOLS", value_name = "VERSIONS")]
    pub tls_protocols: Option<String>,

    /// Connect to the nodes over TLS (their tls-port): true or false; the flag alone
    /// means true [default: false].
    #[arg(
        long,
        env = "SLOTGATE_BACKEND_TLS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub backend_tls: Option<String>,

    /// PEM CA bundle the nodes' certificates must chain to [default: the system's roots].
    #[arg(long, env = "SLOTGATE_BACKEND_TLS_CA_CERT_FILE", value_name = "FILE")]
    pub backend_tls_ca_cert_file: Option<String>,

    /// PEM client certificate presented to the nodes (with --backend-tls-key-file), for
    /// nodes with tls-auth-clients yes [default: none].
    #[arg(long, env = "SLOTGATE_BACKEND_TLS_CERT_FILE", value_name = "FILE")]
    pub backend_tls_cert_file: Option<String>,

    /// PEM private key of --backend-tls-cert-file [default: none].
    #[arg(long, env = "SLOTGATE_BACKEND_TLS_KEY_FILE", value_name = "FILE")]
    pub backend_tls_key_file: Option<String>,

    /// Name to verify every node's certificate against and send as SNI, instead of the
    /// hostname or IP each node announces [default: the announced host].
    #[arg(long, env = "SLOTGATE_BACKEND_TLS_SERVER_NAME", value_name = "NAME")]
    pub backend_tls_server_name: Option<String>,

    /// Time between two periodic topology refreshes [default: 5s].
    #[arg(
        long,
        env = "SLOTGATE_TOPOLOGY_REFRESH_INTERVAL",
        value_name = "DURATION"
    )]
    pub topology_refresh_interval: Option<String>,

    /// Least time between two refreshes of any cause, e.g. a burst of MOVED [default: 100ms].
    #[arg(
        long,
        env = "SLOTGATE_TOPOLOGY_REFRESH_MIN_INTERVAL",
        value_name = "DURATION"
    )]
    pub topology_refresh_min_interval: Option<String>,

    /// MOVED/ASK redirections followed for one command, 1 to 64 [default: 5].
    #[arg(long, env = "SLOTGATE_MAX_REDIRECTS", value_name = "N")]
    pub max_redirects: Option<String>,

    /// How long a command that surely did not execute is held and retried during a
    /// failover (TRYAGAIN, CLUSTERDOWN, LOADING, refused connection); 0 = no retry
    /// [default: 10s].
    #[arg(long, env = "SLOTGATE_RETRY_DEADLINE", value_name = "DURATION")]
    pub retry_deadline: Option<String>,

    /// Which nodes serve reads (commands flagged readonly): primary, primary-preferred,
    /// replica, replica-preferred, nearest or any; writes, scripts, transactions,
    /// blocking commands and pub/sub always go to the primary [default: primary].
    #[arg(long, env = "SLOTGATE_READ_FROM", value_name = "POLICY")]
    pub read_from: Option<String>,

    /// How far behind its primary a replica may be and still serve reads: a time (since
    /// its last acknowledgement), a size (replication bytes behind), both, or none
    /// [default: "2s 16mb"].
    #[arg(long, env = "SLOTGATE_REPLICA_MAX_LAG", value_name = "LIMITS")]
    pub replica_max_lag: Option<String>,

    /// How often every node's replication state and round trip are probed while reads
    /// may go to replicas; a replica that does not answer within it stops serving reads
    /// [default: 1s].
    #[arg(long, env = "SLOTGATE_REPLICA_CHECK_INTERVAL", value_name = "DURATION")]
    pub replica_check_interval: Option<String>,

    /// off, or session: a client that wrote a slot reads it from the primary until a
    /// replica is known to have caught up with that write [default: off].
    #[arg(long, env = "SLOTGATE_READ_YOUR_WRITES", value_name = "off|session")]
    pub read_your_writes: Option<String>,

    /// DNS server used instead of /etc/resolv.conf, an IP with optional port (53)
    /// [default: from /etc/resolv.conf].
    #[arg(long, env = "SLOTGATE_DNS_SERVER", value_name = "IP[:PORT]")]
    pub dns_server: Option<String>,

    /// On SIGTERM/SIGINT, how long open client connections get to finish what they sent
    /// before the process exits anyway [default: 10s].
    #[arg(long, env = "SLOTGATE_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,

    /// Commands slower than this many microseconds go to SLOWLOG; negative disables, 0
    /// logs every command, as in redis.conf [default: 10000].
    #[arg(
        long,
        env = "SLOTGATE_SLOWLOG_LOG_SLOWER_THAN",
        value_name = "MICROSECONDS",
        allow_hyphen_values = true
    )]
    pub slowlog_log_slower_than: Option<String>,

    /// Most entries SLOWLOG keeps, as in redis.conf [default: 128].
    #[arg(long, env = "SLOTGATE_SLOWLOG_MAX_LEN", value_name = "N")]
    pub slowlog_max_len: Option<String>,
}

/// Forgets the flags and variables of the keys named in `$names`, for the fields listed.
/// Every key a section can set must be listed: [`super::keys::BACKEND_SIDE`] and
/// [`super::keys::LISTENER_SIDE`] (a unit test checks that none is missing).
macro_rules! forget {
    ($cli:ident, $names:ident; $($field:ident),* $(,)?) => {
        for name in $names {
            match name.as_str() {
                $(n if n == stringify!($field).replace('_', "-") => $cli.$field = None,)*
                _ => return Err(name.clone()),
            }
        }
    };
}

impl Cli {
    /// This command line without the values of the keys in `names` (TOML spellings): a key
    /// set in a `[backends.NAME]` or `[[listeners]]` section wins over the top-level value,
    /// whether the file, a flag or a variable gave that. `Err` names a key that cannot be
    /// forgotten (not a section key).
    pub(super) fn without(&self, names: &[String]) -> Result<Cli, String> {
        let mut cli = self.clone();
        forget!(cli, names;
            mode, seeds, sentinels, master_name, sentinel_username, sentinel_password,
            sentinel_password_file, backend_connect_timeout, backend_reply_timeout,
            backend_user, backend_password, backend_password_file, max_reply_depth,
            backend_tls, backend_tls_ca_cert_file, backend_tls_cert_file, backend_tls_key_file,
            backend_tls_server_name, topology_refresh_interval, topology_refresh_min_interval,
            max_redirects, retry_deadline, read_from, replica_max_lag, replica_check_interval,
            read_your_writes,
            listen, announce, timeout, maxclients, proto_max_bulk_len,
            client_query_buffer_limit, client_output_buffer_limit, max_request_args,
            max_inflight_per_client, requirepass, requirepass_file, users, users_file,
            enable_flush_commands, enable_debug_command, tls_port, tls_cert_file,
            tls_key_file, tls_ca_cert_file, tls_auth_clients, tls_protocols,
        );
        Ok(cli)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::super::keys;
    use super::*;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    /// Every key has a flag and variable spelled as in `keys`, so errors name them right.
    #[test]
    fn flags_and_env_match_the_key_table() {
        let command = Cli::command();
        for key in keys::ALL {
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_long() == key.flag.strip_prefix("--"))
                .unwrap_or_else(|| panic!("no flag {}", key.flag));
            assert_eq!(arg.get_env().and_then(|env| env.to_str()), Some(key.env));
        }
        let config = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some("config"))
            .unwrap();
        assert_eq!(
            config.get_env().and_then(|env| env.to_str()),
            Some(keys::CONFIG_ENV)
        );
        // --config and one flag per key (clap adds --help and --version later): nothing
        // that the key table, and so the docs, would miss.
        assert_eq!(command.get_arguments().count(), keys::ALL.len() + 1);
    }

    /// `--help` shows the variables of secret keys but never their values.
    #[test]
    fn secret_values_stay_out_of_help_and_debug() {
        let command = Cli::command();
        for key in [
            keys::REQUIREPASS,
            keys::USERS,
            keys::BACKEND_PASSWORD,
            keys::SENTINEL_PASSWORD,
        ] {
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_long() == key.flag.strip_prefix("--"))
                .unwrap();
            assert!(arg.is_hide_env_values_set(), "{}", key.name);
        }
        let cli = Cli::try_parse_from([
            "slotgate",
            "--requirepass",
            "hunter2",
            "--backend-password",
            "hunter3",
            "--sentinel-password",
            "hunter5",
            "--users",
            "alice on >hunter4",
        ])
        .unwrap();
        let debug = format!("{cli:?}");
        for secret in ["hunter2", "hunter3", "hunter4", "hunter5"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }

    /// Every section key can be forgotten, so a section value always beats a flag.
    #[test]
    fn every_section_key_can_be_forgotten() {
        let cli =
            Cli::try_parse_from(["slotgate", "--listen", "127.0.0.1:1", "--seeds", "a:1"]).unwrap();
        for key in super::super::keys::BACKEND_SIDE
            .iter()
            .chain(super::super::keys::LISTENER_SIDE)
        {
            assert!(cli.without(&[key.name.to_owned()]).is_ok(), "{}", key.name);
        }
        let forgot = cli.without(&["listen".to_owned()]).unwrap();
        assert_eq!(forgot.listen, None);
        assert_eq!(forgot.seeds, Some(vec!["a:1".to_owned()]));
        assert!(cli.without(&["threads".to_owned()]).is_err());
    }

    #[test]
    fn boolean_flags_take_an_optional_value() {
        let cli = Cli::try_parse_from([
            "slotgate",
            "--enable-flush-commands",
            "--enable-debug-command",
            "false",
        ])
        .unwrap();
        assert_eq!(cli.enable_flush_commands.as_deref(), Some("true"));
        assert_eq!(cli.enable_debug_command.as_deref(), Some("false"));
        let users = Cli::try_parse_from(["slotgate", "--users", "a on", "--users", "b off"])
            .unwrap()
            .users
            .unwrap();
        let users: Vec<&str> = users.iter().map(Secret::expose).collect();
        assert_eq!(users, ["a on", "b off"]);
    }
}
