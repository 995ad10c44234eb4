//! Configuration: every tunable, where it comes from, and the checks it passes.
//!
//! ```text
//!  argv --flag ───┐
//!                 ├─ clap ──► cli::Cli ───────────────┐  (flag > env)
//!  SLOTGATE_* env ┘                                   │
//!                                                     ├─► build::build ──► Config
//!  --config FILE ─► raw::parse ─► raw::RawConfig ─────┘   (> file > default) │
//!                   (TOML, unknown keys refused)                            └─► ConfigError::Invalid
//!                                                                               (every problem at once)
//! ```
//!
//! Secret files named by `requirepass-file`, `backend-password-file`,
//! `sentinel-password-file` and `users-file`, and
//! the TLS certificate and key files, are read by `build` too, so a reload re-reads them; passwords and ACL rules are hashed and
//! parsed there by [`crate::acl`], so `Config` never holds a client password in clear.
//!
//! [`Config`] is plain data handed to the server at start and swapped whole on a reload
//! (`crate::reload`: the same pipeline runs again on the same [`Cli`], so flags and
//! environment variables keep winning over the file).
//! `docs/configuration.md` is the reference for users; `config/slotgate.toml` is the
//! commented example, and a test checks that it yields the defaults it states.

mod build;
mod cli;
mod error;
pub mod keys;
mod output_limit;
mod raw;
pub mod read_settings;
pub mod units;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use crate::endpoint::{HostPort, HostPortError};
pub use crate::secret::Secret;
pub use cli::Cli;
pub use error::{ConfigError, Origin, Problem};
pub use keys::Key;
pub use output_limit::{OutputBufferLimits, OutputLimit};

use crate::acl::{PasswordHash, User};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event, for terminals.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "human" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            _ => Err(format!("{text:?} is not a log format: use human or json")),
        }
    }
}

/// What kind of backend slotgate fronts (`mode`); fixed for the life of the process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// A Redis Cluster, discovered from `seeds` with `CLUSTER SHARDS`.
    #[default]
    Cluster,
    /// A primary with replicas managed by Redis Sentinel (`sentinels`, `master-name`).
    Sentinel,
    /// A primary with replicas and no Sentinel: `seeds` lists the nodes, `ROLE` tells
    /// which is the primary.
    Standalone,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Cluster => "cluster",
            Mode::Sentinel => "sentinel",
            Mode::Standalone => "standalone",
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "cluster" => Ok(Self::Cluster),
            "sentinel" => Ok(Self::Sentinel),
            "standalone" => Ok(Self::Standalone),
            _ => Err(format!(
                "{text:?} is not a mode: use cluster, sentinel or standalone"
            )),
        }
    }
}

/// The validated configuration. Every value has passed its checks; see
/// `docs/configuration.md` for each key's meaning, units and default. `Debug` shows no
/// secret: passwords are [`Secret`]s or [`PasswordHash`]es, both printed as redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Address the client listeners bind (`listen`, default 127.0.0.1:6380); never port 0.
    pub listen: SocketAddr,
    /// Address cluster-mode clients are told (CLUSTER SLOTS, CLUSTER SHARDS and the
    /// like). Defaults to `listen`, with loopback in place of an unspecified IP.
    pub announce: HostPort,
    /// Address of the admin HTTP listener (`/metrics`, `/healthz`, `/readyz`, `/topology`,
    /// `POST /reload`); `None` (the default) runs none. Never port 0.
    pub admin_listen: Option<SocketAddr>,
    /// Token the admin page and JSON API require (`admin-token`, or the file named by
    /// `admin-token-file`); `None`: open. Never empty.
    pub admin_token: Option<Secret>,
    /// The `admin-token-file` the token was read from, if any (re-read on reload).
    pub admin_token_file: Option<PathBuf>,
    /// What the backend is (`mode`, default cluster); restart-only.
    pub mode: Mode,
    /// Nodes the topology is discovered from; never empty in cluster and standalone mode,
    /// always empty in sentinel mode; no duplicates.
    pub seeds: Vec<HostPort>,
    /// The Sentinels to ask (`sentinels`); non-empty exactly in sentinel mode.
    pub sentinels: Vec<HostPort>,
    /// The primary's name at the Sentinels (`master-name`); set exactly in sentinel mode.
    pub master_name: Option<String>,
    /// User slotgate authenticates as on the Sentinels; when set, `sentinel_password` is.
    pub sentinel_username: Option<String>,
    /// Password for the Sentinels, from `sentinel-password` or `sentinel-password-file`.
    pub sentinel_password: Option<Secret>,
    /// The `sentinel-password-file` the password was read from, if any (re-read on reload).
    pub sentinel_password_file: Option<PathBuf>,
    /// Worker threads, 1..=1024 (default: available parallelism).
    pub threads: usize,
    /// A valid `tracing_subscriber::EnvFilter` directive string (default "info").
    pub log_level: String,
    pub log_format: LogFormat,
    /// Time allowed to open a backend connection; more than zero.
    pub backend_connect_timeout: Duration,
    /// Time a backend has to answer one command; more than zero.
    pub backend_reply_timeout: Duration,
    /// User slotgate authenticates as on every backend connection (`AUTH user password`);
    /// when set, `backend_password` is set too. `None`: `AUTH password` (the nodes'
    /// default user) when a password is set, else no AUTH.
    pub backend_user: Option<String>,
    /// Password for backend connections, from `backend-password` or the file named by
    /// `backend-password-file` (one trailing newline dropped); never empty.
    pub backend_password: Option<Secret>,
    /// The `backend-password-file` the password was read from, if any (re-read on reload).
    pub backend_password_file: Option<PathBuf>,
    /// Idle client timeout; `Duration::ZERO` means never.
    pub timeout: Duration,
    /// Most client connections at once; at least 1.
    pub maxclients: usize,
    /// Largest bulk string accepted from a client, 1mb..=2gb.
    pub proto_max_bulk_len: usize,
    /// Most request bytes buffered per client; 1mb..=4gb-1 and above `proto_max_bulk_len`.
    pub client_query_buffer_limit: usize,
    /// Most arguments in one request, command name included.
    pub max_request_args: usize,
    /// Deepest reply nesting accepted from a backend, 1..=4096.
    pub max_reply_depth: usize,
    /// Unwritten reply bytes a client may hold, per class (`client-output-buffer-limit`).
    pub client_output_buffer_limit: OutputBufferLimits,
    /// Commands read from one client but not yet answered; reading pauses at this count.
    pub max_inflight_per_client: usize,
    /// SHA-256 of the default user's password (`requirepass` or the file named by
    /// `requirepass-file`); `None`: the default user is `nopass` unless `users` says
    /// otherwise. The plaintext is not kept.
    pub requirepass: Option<PasswordHash>,
    /// The `requirepass-file` the password was read from, if any (re-read on reload).
    pub requirepass_file: Option<PathBuf>,
    /// Users from `users` then `users-file`, rules applied and passwords hashed; names are
    /// unique. A `default` entry, if any, already includes `requirepass`.
    /// [`crate::acl::Users::from_config`] turns these into the users sessions check.
    pub users: Vec<User>,
    /// The `users-file` some of `users` were read from, if any (re-read on reload).
    pub users_file: Option<PathBuf>,
    /// Let FLUSHALL/FLUSHDB through (default false: refused, naming this key).
    pub enable_flush_commands: bool,
    /// Let DEBUG through (default false: refused, naming this key).
    pub enable_debug_command: bool,
    /// The TLS listener (`tls-port` and friends), files already read and checked.
    pub tls: Option<crate::tls::ListenerTls>,
    /// TLS toward the nodes (`backend-tls` and friends), files already read and checked.
    pub backend_tls: Option<crate::tls::BackendTls>,
    /// Period of the background topology refresh; more than zero.
    pub topology_refresh_interval: Duration,
    /// Least time between two refreshes of any cause; more than zero, at most the interval.
    pub topology_refresh_min_interval: Duration,
    /// MOVED/ASK hops followed per command, 1..=64.
    pub max_redirects: u32,
    /// How long a command known not to have executed is held and retried during a failover;
    /// zero disables retrying.
    pub retry_deadline: Duration,
    /// Which nodes serve reads and when a replica may (`read-from`, `replica-max-lag`,
    /// `replica-check-interval`, `read-your-writes`).
    pub reads: read_settings::ReadSettings,
    /// DNS server to use instead of /etc/resolv.conf; its host is always an IP.
    pub dns_server: Option<HostPort>,
    /// After SIGTERM/SIGINT, how long client connections get to finish what they sent
    /// before the process exits anyway; zero exits once the listeners are closed.
    pub shutdown_timeout: Duration,
    /// `SLOWLOG` threshold in microseconds, as in redis.conf: negative disables the slow
    /// log, 0 logs every command.
    pub slowlog_log_slower_than: i64,
    /// Most `SLOWLOG` entries kept, 0..=1000000.
    pub slowlog_max_len: usize,
    /// The `--config` file these values were read from, if any (for reload).
    pub config_file: Option<PathBuf>,
    /// Every backend (`[backends.NAME]`, by name; or `default` from the flat keys). Empty
    /// in a section's own view, and in a `Config` made by hand ([`Config::with_seeds`]):
    /// [`Config::sections`] then derives the flat pair.
    pub backends: Vec<BackendConfig>,
    /// Every listener (`[[listeners]]`, in file order; or `default` from the flat keys).
    /// Empty like `backends`.
    pub listeners: Vec<ListenerConfig>,
}

/// One backend: its name and its settings (the top-level keys with its section's over
/// them). Only the backend-side keys of `config` ([`keys::BACKEND_SIDE`]) are its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendConfig {
    /// `orders` for `[backends.orders]`; `default` for the flat keys. A metric label.
    pub name: String,
    /// Whether `/readyz` waits for it (`required`, default true).
    pub required: bool,
    pub config: Arc<Config>,
}

/// One listener: its name, its backend and its settings (the top-level keys, its
/// backend's section and its own entry over them): everything a session reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    /// `name`, or its backend's name when that backend has no other listener. A metric label.
    pub name: String,
    /// Index into [`Config::backends`].
    pub backend: usize,
    pub config: Arc<Config>,
}

impl Config {
    /// Reads the file named by `cli.config` (if any), merges it under the flags and
    /// environment variables, and validates the result.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let text = match &cli.config {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        Self::from_parts(cli, text.as_deref())
    }

    /// Same as [`Config::load`] from an already-read TOML text (tests, reload). `cli.config`
    /// only labels errors and fills [`Config::config_file`]; it is not read.
    pub fn from_parts(cli: &Cli, toml_text: Option<&str>) -> Result<Config, ConfigError> {
        let raw = match toml_text {
            Some(text) => raw::parse(text, cli.config.as_deref())?,
            None => raw::RawConfig::default(),
        };
        build::build(cli, raw).map_err(ConfigError::Invalid)
    }

    /// Every default, with the given seeds and no config file: for tests and embedding.
    /// `seeds` should not be empty; unlike [`Config::load`] this does not check.
    pub fn with_seeds(seeds: Vec<HostPort>) -> Config {
        let listen = build::DEFAULT_LISTEN;
        Config {
            listen,
            announce: build::default_announce(listen),
            admin_listen: None,
            admin_token: None,
            admin_token_file: None,
            mode: Mode::Cluster,
            seeds,
            sentinels: Vec::new(),
            master_name: None,
            sentinel_username: None,
            sentinel_password: None,
            sentinel_password_file: None,
            threads: build::default_threads(),
            log_level: build::DEFAULT_LOG_LEVEL.to_owned(),
            log_format: LogFormat::Human,
            backend_connect_timeout: build::DEFAULT_BACKEND_CONNECT_TIMEOUT,
            backend_reply_timeout: build::DEFAULT_BACKEND_REPLY_TIMEOUT,
            backend_user: None,
            backend_password: None,
            backend_password_file: None,
            timeout: Duration::ZERO,
            maxclients: build::DEFAULT_MAXCLIENTS as usize,
            proto_max_bulk_len: build::DEFAULT_PROTO_MAX_BULK_LEN as usize,
            client_query_buffer_limit: build::DEFAULT_CLIENT_QUERY_BUFFER_LIMIT as usize,
            max_request_args: build::DEFAULT_MAX_REQUEST_ARGS as usize,
            max_reply_depth: build::DEFAULT_MAX_REPLY_DEPTH as usize,
            max_inflight_per_client: build::DEFAULT_MAX_INFLIGHT_PER_CLIENT as usize,
            client_output_buffer_limit: OutputBufferLimits::default(),
            requirepass: None,
            requirepass_file: None,
            users: Vec::new(),
            users_file: None,
            enable_flush_commands: false,
            enable_debug_command: false,
            tls: None,
            backend_tls: None,
            topology_refresh_interval: build::DEFAULT_TOPOLOGY_REFRESH_INTERVAL,
            topology_refresh_min_interval: build::DEFAULT_TOPOLOGY_REFRESH_MIN_INTERVAL,
            max_redirects: build::DEFAULT_MAX_REDIRECTS as u32,
            retry_deadline: build::DEFAULT_RETRY_DEADLINE,
            reads: read_settings::ReadSettings::defaults(),
            dns_server: None,
            shutdown_timeout: build::DEFAULT_SHUTDOWN_TIMEOUT,
            slowlog_log_slower_than: build::DEFAULT_SLOWLOG_LOG_SLOWER_THAN,
            slowlog_max_len: build::DEFAULT_SLOWLOG_MAX_LEN as usize,
            config_file: None,
            backends: Vec::new(),
            listeners: Vec::new(),
        }
    }

    /// The backends and listeners to run: the configured ones, or, for a `Config` without
    /// sections (made by hand), one `default` listener bound to one `default` backend, both
    /// with this config's values.
    pub fn sections(&self) -> (Vec<BackendConfig>, Vec<ListenerConfig>) {
        if !self.listeners.is_empty() {
            return (self.backends.clone(), self.listeners.clone());
        }
        let view = Arc::new(self.view());
        let backend = BackendConfig {
            name: DEFAULT_SECTION.to_owned(),
            required: true,
            config: view.clone(),
        };
        let listener = ListenerConfig {
            name: DEFAULT_SECTION.to_owned(),
            backend: 0,
            config: view,
        };
        (vec![backend], vec![listener])
    }

    /// This config without its sections: what one section's view looks like.
    pub fn view(&self) -> Config {
        Config {
            backends: Vec::new(),
            listeners: Vec::new(),
            ..self.clone()
        }
    }
}

/// The name of the backend and the listener the flat keys describe.
pub const DEFAULT_SECTION: &str = "default";

#[cfg(test)]
mod sections_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
