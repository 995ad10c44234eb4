//! Live reload: SIGHUP and the admin listener's `POST /reload`.
//!
//! ```text
//!  SIGHUP / POST /reload ─► Reloader::reload ─► Config::load(original Cli)   (file re-read,
//!                                               │                             flags/env kept)
//!                               invalid ◄───────┤ every problem logged by key; nothing changes
//!                                               ▼
//!                          keys that need a restart: kept as running, change logged
//!                                               ▼
//!                          ProxyState::set_config (ArcSwap) ─► readers see it on next use
//!                          log filter handle, SlowLog::configure
//! ```
//!
//! Both triggers run on the main runtime's thread, so reloads never overlap. Nothing here
//! touches a client connection: sessions, the refresher and the accept loops read the
//! config through [`ProxyState::config`] when they use a value.

use std::sync::Arc;

use tracing::{error, info, warn};

use crate::config::{
    BackendConfig, Cli, Config, ConfigError, DEFAULT_SECTION, ListenerConfig, keys,
};
use crate::listener::Listener;
use crate::state::ProxyState;
use crate::upstream::Upstream;
use crate::upstream::refresher::Refresher;

/// Applies a new `log-level` filter (a validated `EnvFilter` directive string).
pub type LogFilterHandle = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Re-reads and applies the config; see the module docs.
pub struct Reloader {
    state: Arc<ProxyState>,
    /// The command line the process started with; `None` when embedded without one.
    cli: Option<Cli>,
    log_filter: Option<LogFilterHandle>,
}

/// What a successful reload did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Keys whose new value is in force (`backends.orders.seeds` for a section's key;
    /// `listeners.cache (added)` and `(removed)` for whole sections).
    pub applied: Vec<String>,
    /// Keys that changed in the file but need a restart; their running value stays.
    pub ignored: Vec<String>,
}

impl ReloadReport {
    /// Adds `other`'s keys that pass `keep`, under `section` when given.
    fn extend(
        &mut self,
        other: &ReloadReport,
        section: Option<String>,
        keep: impl Fn(&str) -> bool,
    ) {
        let name = |key: &String| match &section {
            Some(section) => format!("{section}.{key}"),
            None => key.clone(),
        };
        self.applied
            .extend(other.applied.iter().filter(|k| keep(k)).map(name));
        self.ignored
            .extend(other.ignored.iter().filter(|k| keep(k)).map(name));
    }
}

/// Why a reload was refused; the running config stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The process was started without a command line to reload from (embedding, tests).
    #[error("reload is not available: slotgate was started without a command line")]
    Unavailable,
    /// The file could not be read or a value is invalid: the operator's to fix.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The users do not form a valid set (a name defined twice).
    #[error("invalid users: {0}")]
    Users(String),
    /// A new listener's port cannot be listened on.
    #[error("{0}")]
    Listen(String),
}

impl Reloader {
    pub fn new(
        state: Arc<ProxyState>,
        cli: Option<Cli>,
        log_filter: Option<LogFilterHandle>,
    ) -> Self {
        Self {
            state,
            cli,
            log_filter,
        }
    }

    /// Reloads now; `cause` names the trigger in logs ("SIGHUP", "POST /reload").
    pub fn reload(&self, cause: &str) -> Result<ReloadReport, ReloadError> {
        let result = self.try_reload(cause);
        self.state.metrics.record_reload(result.is_ok());
        result
    }

    fn try_reload(&self, cause: &str) -> Result<ReloadReport, ReloadError> {
        let cli = self.cli.as_ref().ok_or(ReloadError::Unavailable)?;
        let file = cli
            .config
            .as_ref()
            .map_or_else(|| "no config file".to_owned(), |p| p.display().to_string());
        let loaded = match Config::load(cli) {
            Ok(config) => config,
            Err(e) => {
                log_refusal(cause, &file, &e);
                return Err(e.into());
            }
        };
        let running = self.state.config_arc();
        let plan = self.plan(&running, loaded).map_err(|e| {
            error!(cause, file = %file, error = %e, "config reload refused; the running config stays in force");
            e
        })?;
        let report = plan.report.clone();
        if report.applied.is_empty() && report.ignored.is_empty() {
            info!(cause, file = %file, "config reloaded; nothing changed");
            return Ok(report);
        }
        for key in &report.ignored {
            warn!(
                cause,
                key = key.as_str(),
                "config reload: `{key}` changed but needs a restart; keeping the running value"
            );
        }
        let next = &plan.top;
        if let Some(apply) = &self.log_filter
            && next.log_level != running.log_level
            && let Err(e) = apply(&next.log_level)
        {
            warn!(cause, error = %e, "config reload: cannot apply the new log-level");
        }
        if next.slowlog_log_slower_than != running.slowlog_log_slower_than
            || next.slowlog_max_len != running.slowlog_max_len
        {
            self.state
                .slowlog
                .configure(next.slowlog_log_slower_than, next.slowlog_max_len);
        }
        self.commit(plan);
        info!(cause, file = %file, applied = ?report.applied, ignored = ?report.ignored, "config reloaded");
        Ok(report)
    }

    /// Works out everything a reload changes, without changing anything yet: the merged
    /// views, the users of every listener, the sockets of new listeners. Any failure
    /// refuses the whole reload.
    fn plan(&self, running: &Config, loaded: Config) -> Result<Plan, ReloadError> {
        let (top, top_report) = merge(&running.view(), loaded.view());
        let flat = is_flat(running) && is_flat(&loaded);
        let mut report = ReloadReport::default();
        if flat {
            report = top_report;
        } else {
            report.extend(&top_report, None, |key| {
                !keys::BACKEND_SIDE
                    .iter()
                    .chain(keys::LISTENER_SIDE)
                    .any(|k| k.name == key)
            });
        }
        let prefix = |kind: &str, name: &str| (!flat).then(|| format!("{kind}.{name}"));

        // Backends: the same name keeps its Upstream (connections, caches, scripts).
        let running_upstreams = self.state.upstreams();
        let mut backends = Vec::new();
        for backend in &loaded.backends {
            let kept = running
                .backends
                .iter()
                .find(|b| b.name == backend.name)
                .zip(running_upstreams.iter().find(|u| u.name == backend.name));
            match kept {
                Some((old, upstream)) => {
                    let (view, mut section) = merge(&old.config, backend.config.view());
                    if !flat {
                        section.applied.retain(|key| is_backend_key(key));
                        section.ignored.retain(|key| is_backend_key(key));
                        if old.required != backend.required {
                            section.applied.push("required".to_owned());
                        }
                        report.extend(&section, prefix("backends", &backend.name), |_| true);
                    }
                    backends.push(PlannedBackend {
                        config: BackendConfig {
                            config: Arc::new(view),
                            ..backend.clone()
                        },
                        upstream: upstream.clone(),
                        added: false,
                        old: Some(old.config.clone()),
                    });
                }
                None => {
                    report
                        .applied
                        .push(format!("backends.{} (added)", backend.name));
                    backends.push(PlannedBackend {
                        upstream: Arc::new(Upstream::from_backend(backend)),
                        config: backend.clone(),
                        added: true,
                        old: None,
                    });
                }
            }
        }
        for old in &running.backends {
            if !loaded.backends.iter().any(|b| b.name == old.name) {
                report
                    .applied
                    .push(format!("backends.{} (removed)", old.name));
            }
        }

        // Listeners: the same name keeps its Listener; a new name is bound now.
        let running_listeners = self.state.listeners();
        let mut listeners = Vec::new();
        for section in &loaded.listeners {
            let upstream = backends[section.backend].upstream.clone();
            let backend_view = &backends[section.backend].config.config;
            // Same name, same backend: the same listener (its clients stay). Another backend
            // is another listener under the old name: the old one drains, a new one starts.
            let same_name = running_listeners
                .iter()
                .find(|l| l.name == section.name && !l.is_stopped());
            let kept = same_name.filter(|l| Arc::ptr_eq(&l.upstream, &upstream));
            if same_name.is_some() && kept.is_none() {
                report.applied.push(format!(
                    "listeners.{} (moved to backend {})",
                    section.name, upstream.name
                ));
            }
            let planned = match kept {
                Some(listener) => {
                    let old = listener.config_arc();
                    let (mut view, mut changes) = merge(&old, section.config.view());
                    // Its backend's keys follow the backend's merge (mode kept, ...).
                    copy_backend_keys(&mut view, backend_view);
                    if !flat {
                        changes.applied.retain(|key| is_listener_key(key));
                        changes.ignored.retain(|key| is_listener_key(key));
                        report.extend(&changes, prefix("listeners", &section.name), |_| true);
                    }
                    let users = users_for(&old, &view, listener)?;
                    PlannedListener {
                        listener: listener.clone(),
                        config: Arc::new(view),
                        users,
                        sockets: Vec::new(),
                    }
                }
                None => {
                    report
                        .applied
                        .push(format!("listeners.{} (added)", section.name));
                    let mut view = section.config.view();
                    copy_backend_keys(&mut view, backend_view);
                    let config = ListenerConfig {
                        config: Arc::new(view),
                        ..section.clone()
                    };
                    let listener = Arc::new(Listener::new(&config, upstream, &self.state.draining));
                    let sockets = self
                        .state
                        .inboxes
                        .bind(&listener)
                        .map_err(|e| ReloadError::Listen(e.to_string()))?;
                    PlannedListener {
                        listener,
                        config: config.config,
                        users: None,
                        sockets,
                    }
                }
            };
            listeners.push(planned);
        }
        let mut removed = Vec::new();
        for old in running_listeners.iter() {
            if !loaded.listeners.iter().any(|l| l.name == old.name) {
                report
                    .applied
                    .push(format!("listeners.{} (removed)", old.name));
            }
            if !listeners.iter().any(|p| Arc::ptr_eq(&p.listener, old)) {
                removed.push(old.clone());
            }
        }
        let retired: Vec<Arc<Upstream>> = running_upstreams
            .iter()
            .filter(|u| !backends.iter().any(|b| Arc::ptr_eq(&b.upstream, u)))
            .cloned()
            .collect();
        let top = Config {
            backends: backends.iter().map(|b| b.config.clone()).collect(),
            listeners: loaded
                .listeners
                .iter()
                .zip(&listeners)
                .map(|(section, planned)| ListenerConfig {
                    config: planned.config.clone(),
                    ..section.clone()
                })
                .collect(),
            ..top
        };
        Ok(Plan {
            top,
            report,
            backends,
            listeners,
            removed,
            retired,
        })
    }

    /// Applies a plan: new objects first, then the swap, then the removals, so a client of
    /// a listener that stays never notices.
    fn commit(&self, plan: Plan) {
        for backend in &plan.backends {
            let upstream = &backend.upstream;
            upstream.set_required(backend.config.required);
            match &backend.old {
                Some(old) => {
                    let next = &backend.config.config;
                    upstream.reconfigure(old, next);
                    if old.seeds != next.seeds || old.sentinels != next.sentinels {
                        // The refresher picks the new addresses up at its next round; soon.
                        upstream.request_refresh();
                    }
                }
                None if backend.added => {
                    let refresher = Refresher::new(upstream.clone(), self.state.metrics.clone());
                    refresher.spawn(upstream.stop.clone());
                    upstream.request_refresh();
                }
                None => {}
            }
        }
        let mut listeners = Vec::new();
        for planned in plan.listeners {
            let listener = planned.listener;
            if let Some(users) = planned.users {
                listener.set_users(users);
            }
            listener.set_config(planned.config);
            self.state.inboxes.send(planned.sockets);
            listeners.push(listener);
        }
        let upstreams = plan.backends.iter().map(|b| b.upstream.clone()).collect();
        self.state.set_sections(upstreams, listeners);
        for listener in plan.removed {
            // Accepting stops on every worker; its sessions answer what they received and
            // close once idle, as in a drain.
            listener.stop.cancel();
        }
        for upstream in plan.retired {
            upstream.stop.cancel();
        }
        self.state.set_config(plan.top);
    }
}

/// What a reload will do; see [`Reloader::plan`].
struct Plan {
    top: Config,
    report: ReloadReport,
    backends: Vec<PlannedBackend>,
    listeners: Vec<PlannedListener>,
    removed: Vec<Arc<Listener>>,
    retired: Vec<Arc<Upstream>>,
}

struct PlannedBackend {
    config: BackendConfig,
    upstream: Arc<Upstream>,
    added: bool,
    /// Its running view, when it stays.
    old: Option<Arc<Config>>,
}

struct PlannedListener {
    listener: Arc<Listener>,
    config: Arc<Config>,
    /// New users, when they changed.
    users: Option<crate::acl::Users>,
    /// One per worker, for a new listener.
    sockets: Vec<crate::listener::Sockets>,
}

/// True for a config of the flat keys only: one `default` listener on one `default`
/// backend, reported without section paths as before sections existed.
fn is_flat(config: &Config) -> bool {
    let (backends, listeners) = config.sections();
    backends.len() == 1
        && listeners.len() == 1
        && backends[0].name == DEFAULT_SECTION
        && listeners[0].name == DEFAULT_SECTION
}

fn is_backend_key(name: &str) -> bool {
    keys::BACKEND_SIDE.iter().any(|key| key.name == name)
}

fn is_listener_key(name: &str) -> bool {
    keys::LISTENER_SIDE
        .iter()
        .chain(keys::LISTENER_OVERRIDES)
        .any(|key| key.name == name)
}

/// A listener's view holds its backend's keys too (sessions read `retry-deadline`,
/// `max-redirects` there): take them from the backend's merged view. Keys a listener may
/// override ([`keys::LISTENER_OVERRIDES`]) are not copied: the listener's own merge holds
/// them already.
fn copy_backend_keys(view: &mut Config, backend: &Config) {
    view.mode = backend.mode;
    view.seeds.clone_from(&backend.seeds);
    view.sentinels.clone_from(&backend.sentinels);
    view.master_name.clone_from(&backend.master_name);
    view.backend_connect_timeout = backend.backend_connect_timeout;
    view.backend_reply_timeout = backend.backend_reply_timeout;
    view.max_reply_depth = backend.max_reply_depth;
    view.topology_refresh_interval = backend.topology_refresh_interval;
    view.topology_refresh_min_interval = backend.topology_refresh_min_interval;
    view.max_redirects = backend.max_redirects;
    view.retry_deadline = backend.retry_deadline;
}

/// The listener's new users, when they changed; refused as a whole when invalid.
fn users_for(
    old: &Config,
    next: &Config,
    listener: &Listener,
) -> Result<Option<crate::acl::Users>, ReloadError> {
    if next.requirepass == old.requirepass && next.users == old.users {
        return Ok(None);
    }
    // Refuse the whole reload rather than fall back to anything looser.
    let mut users = crate::acl::Users::from_config(&next.users, next.requirepass)
        .map_err(|e| ReloadError::Users(e.to_string()))?;
    users.keep_counters_from(&listener.users.load());
    Ok(Some(users))
}

/// Logs a refused reload: one line per problem, each naming its key.
fn log_refusal(cause: &str, file: &str, error: &ConfigError) {
    match error {
        ConfigError::Invalid(problems) => {
            for problem in problems {
                error!(
                    cause,
                    file,
                    key = problem.key.name,
                    "config reload refused: {problem}"
                );
            }
            error!(
                cause,
                file,
                problems = problems.len(),
                keys = ?problems.iter().map(|p| p.key.name).collect::<Vec<_>>(),
                "config reload refused; the running config stays in force"
            );
        }
        ConfigError::Toml { unknown_key, .. } => error!(
            cause,
            file,
            key = unknown_key.as_deref().unwrap_or(""),
            "config reload refused: {error}; the running config stays in force"
        ),
        ConfigError::Io { .. } => error!(
            cause,
            file, "config reload refused: {error}; the running config stays in force"
        ),
    }
}

/// The TLS part of [`merge`]. The listener's port needs a restart (listeners are bound at
/// start), and so does turning TLS on or off on either side (the backend side decides which
/// port of every node is dialled); certificates, keys, CAs and options apply to the next
/// handshake.
fn merge_tls(running: &Config, next: &mut Config, report: &mut ReloadReport) {
    match (&running.tls, &mut next.tls) {
        (Some(old), Some(new)) => {
            let changes = [
                (old.port != new.port, "tls-port"),
                (old.cert != new.cert, "tls-cert-file"),
                (old.key != new.key, "tls-key-file"),
                (old.ca != new.ca, "tls-ca-cert-file"),
                (old.client_auth != new.client_auth, "tls-auth-clients"),
                (old.versions != new.versions, "tls-protocols"),
            ];
            for (changed, key) in changes {
                match (changed, key) {
                    (false, _) => {}
                    (true, "tls-port") => report.ignored.push(key.to_owned()),
                    (true, _) => report.applied.push(key.to_owned()),
                }
            }
            new.port = old.port;
        }
        (old, new) if old != new => {
            report.ignored.push("tls-port".to_owned());
            new.clone_from(old);
        }
        _ => {}
    }
    match (&running.backend_tls, &mut next.backend_tls) {
        (Some(old), Some(new)) => {
            let old_pair = old.client_cert.as_ref();
            let new_pair = new.client_cert.as_ref();
            let changes = [
                (old.ca != new.ca, "backend-tls-ca-cert-file"),
                (
                    old_pair.map(|p| &p.0) != new_pair.map(|p| &p.0),
                    "backend-tls-cert-file",
                ),
                (
                    old_pair.map(|p| &p.1) != new_pair.map(|p| &p.1),
                    "backend-tls-key-file",
                ),
                (
                    old.server_name != new.server_name,
                    "backend-tls-server-name",
                ),
            ];
            for (changed, key) in changes {
                if changed {
                    report.applied.push(key.to_owned());
                }
            }
        }
        (old, new) if old != new => {
            report.ignored.push("backend-tls".to_owned());
            new.clone_from(old);
        }
        _ => {}
    }
}

/// The config to run after a reload: `loaded`, except for the keys that need a restart,
/// which keep their running values. Also lists which keys changed.
pub fn merge(running: &Config, loaded: Config) -> (Config, ReloadReport) {
    let mut report = ReloadReport::default();
    let mut next = loaded;
    macro_rules! restart_only {
        ($($field:ident => $key:literal),* $(,)?) => {$(
            if next.$field != running.$field {
                report.ignored.push($key.to_owned());
                next.$field = running.$field.clone();
            }
        )*};
    }
    macro_rules! live {
        ($($field:ident => $key:literal),* $(,)?) => {$(
            if next.$field != running.$field {
                report.applied.push($key.to_owned());
            }
        )*};
    }
    if next.mode != running.mode {
        // The keys of one mode mean nothing in another: keep the running backend whole.
        report.ignored.push("mode".to_owned());
        next.mode = running.mode;
        next.seeds = running.seeds.clone();
        next.sentinels = running.sentinels.clone();
        next.master_name = running.master_name.clone();
        next.sentinel_username = running.sentinel_username.clone();
        next.sentinel_password = running.sentinel_password.clone();
        next.sentinel_password_file = running.sentinel_password_file.clone();
    }
    restart_only! {
        listen => "listen",
        announce => "announce",
        threads => "threads",
        admin_listen => "admin-listen",
        log_format => "log-format",
        dns_server => "dns-server",
        // Which Sentinel group: another group is another backend, not a setting of this
        // one (its connections, caches and scripts would all be wrong). `mode` likewise,
        // above.
        master_name => "master-name",
    }
    live! {
        seeds => "seeds",
        sentinels => "sentinels",
        sentinel_username => "sentinel-username",
        sentinel_password => "sentinel-password",
        sentinel_password_file => "sentinel-password-file",
        log_level => "log-level",
        backend_connect_timeout => "backend-connect-timeout",
        backend_reply_timeout => "backend-reply-timeout",
        timeout => "timeout",
        maxclients => "maxclients",
        proto_max_bulk_len => "proto-max-bulk-len",
        client_query_buffer_limit => "client-query-buffer-limit",
        client_output_buffer_limit => "client-output-buffer-limit",
        max_request_args => "max-request-args",
        max_reply_depth => "max-reply-depth",
        max_inflight_per_client => "max-inflight-per-client",
        topology_refresh_interval => "topology-refresh-interval",
        topology_refresh_min_interval => "topology-refresh-min-interval",
        max_redirects => "max-redirects",
        retry_deadline => "retry-deadline",
        shutdown_timeout => "shutdown-timeout",
        slowlog_log_slower_than => "slowlog-log-slower-than",
        slowlog_max_len => "slowlog-max-len",
        requirepass => "requirepass",
        requirepass_file => "requirepass-file",
        users => "users",
        users_file => "users-file",
        enable_flush_commands => "enable-flush-commands",
        enable_debug_command => "enable-debug-command",
        backend_user => "backend-user",
        backend_password => "backend-password",
        backend_password_file => "backend-password-file",
        admin_token => "admin-token",
        admin_token_file => "admin-token-file",
    }
    let (was, now) = (&running.reads, &next.reads);
    for (changed, key) in [
        (was.read_from != now.read_from, "read-from"),
        (was.max_lag != now.max_lag, "replica-max-lag"),
        (
            was.check_interval != now.check_interval,
            "replica-check-interval",
        ),
        (
            was.read_your_writes != now.read_your_writes,
            "read-your-writes",
        ),
    ] {
        if changed {
            report.applied.push(key.to_owned());
        }
    }
    merge_tls(running, &mut next, &mut report);
    // Not a setting: which file the values came from.
    next.config_file = running.config_file.clone();
    (next, report)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::HostPort;

    fn base() -> Config {
        Config::with_seeds(vec![HostPort::new("10.0.0.1", 6379)])
    }

    #[test]
    fn merge_keeps_restart_keys_and_reports_changes() {
        let running = base();
        let mut loaded = base();
        loaded.maxclients = 5;
        loaded.listen = "127.0.0.1:7777".parse().unwrap();
        loaded.threads = running.threads + 1;
        loaded.seeds = vec![HostPort::new("10.0.0.2", 6379)];
        loaded.slowlog_max_len = 1;
        let (next, report) = merge(&running, loaded);
        assert_eq!(next.maxclients, 5);
        assert_eq!(next.seeds, vec![HostPort::new("10.0.0.2", 6379)]);
        assert_eq!(next.listen, running.listen);
        assert_eq!(next.threads, running.threads);
        assert_eq!(
            report.applied,
            vec!["seeds", "maxclients", "slowlog-max-len"]
        );
        assert_eq!(report.ignored, vec!["listen", "threads"]);
    }

    /// Every field of `Config` is classified: a new key must be added to `merge`.
    #[test]
    fn merge_knows_every_key() {
        let running = base();
        let count = crate::config::keys::ALL.len();
        // One change per key, through the key table, proves merge names each one.
        let mut loaded = base();
        loaded.listen = "127.0.0.1:1".parse().unwrap();
        loaded.announce = HostPort::new("h", 1);
        loaded.admin_listen = Some("127.0.0.1:2".parse().unwrap());
        loaded.seeds = vec![];
        loaded.threads += 1;
        loaded.log_level = "debug".into();
        loaded.log_format = crate::config::LogFormat::Json;
        loaded.backend_connect_timeout += Duration::from_secs(1);
        loaded.backend_reply_timeout += Duration::from_secs(1);
        loaded.timeout += Duration::from_secs(1);
        loaded.maxclients += 1;
        loaded.proto_max_bulk_len += 1;
        loaded.client_query_buffer_limit += 1;
        loaded.max_request_args += 1;
        loaded.max_reply_depth += 1;
        loaded.max_inflight_per_client += 1;
        loaded.topology_refresh_interval += Duration::from_secs(1);
        loaded.topology_refresh_min_interval += Duration::from_secs(1);
        loaded.max_redirects += 1;
        loaded.retry_deadline += Duration::from_secs(1);
        loaded.reads.read_from = crate::reads::ReadFrom::Replica;
        loaded.reads.max_lag.bytes = None;
        loaded.reads.check_interval += Duration::from_secs(1);
        loaded.reads.read_your_writes = crate::reads::ReadYourWrites::Session;
        loaded.dns_server = Some(HostPort::new("10.0.0.53", 53));
        loaded.shutdown_timeout += Duration::from_secs(1);
        loaded.slowlog_log_slower_than += 1;
        loaded.slowlog_max_len += 1;
        loaded.requirepass = Some(crate::acl::PasswordHash::of(b"pw"));
        loaded.requirepass_file = Some("/run/secrets/pw".into());
        loaded.users = vec![crate::acl::User::new("alice")];
        loaded.users_file = Some("/run/secrets/users".into());
        loaded.enable_flush_commands = true;
        loaded.enable_debug_command = true;
        loaded.backend_user = Some("proxy".into());
        loaded.backend_password = Some(crate::config::Secret::new("pw"));
        loaded.backend_password_file = Some("/run/secrets/backend".into());
        loaded.admin_token = Some(crate::config::Secret::new("token"));
        loaded.admin_token_file = Some("/run/secrets/admin-token".into());
        loaded.sentinels = vec![HostPort::new("10.0.0.9", 26379)];
        loaded.master_name = Some("mymaster".into());
        loaded.sentinel_username = Some("watcher".into());
        loaded.sentinel_password = Some(crate::config::Secret::new("spw"));
        loaded.sentinel_password_file = Some("/run/secrets/sentinel".into());
        loaded.client_output_buffer_limit.normal.hard = 1;
        // TLS on at both ends, every TLS setting changed; `tls-port` and `backend-tls`
        // changes are each reported by their own case below.
        let pem = |path: &str| crate::tls::PemFile {
            path: path.into(),
            contents: path.as_bytes().to_vec(),
        };
        let listener = |tag: &str, port| crate::tls::ListenerTls {
            port,
            cert: pem(&format!("{tag}.crt")),
            key: pem(&format!("{tag}.key")),
            ca: Some(pem(&format!("{tag}-ca.crt"))),
            client_auth: crate::tls::ClientAuth::Required,
            versions: crate::tls::TlsVersions::BOTH,
        };
        let backend = |tag: &str| crate::tls::BackendTls {
            ca: Some(pem(&format!("{tag}-ca.crt"))),
            client_cert: Some((pem(&format!("{tag}.crt")), pem(&format!("{tag}.key")))),
            server_name: Some(format!("{tag}.example")),
        };
        let mut running = running;
        running.tls = Some(listener("old", 6443));
        running.backend_tls = None;
        let mut new_listener = listener("new", 6444);
        new_listener.client_auth = crate::tls::ClientAuth::Optional;
        new_listener.versions.tls12 = false;
        loaded.tls = Some(new_listener);
        loaded.backend_tls = Some(backend("new"));
        let (next, report) = merge(&running, loaded.clone());
        assert_eq!(
            next.tls.as_ref().unwrap().port,
            6443,
            "the port needs a restart"
        );
        assert_eq!(
            next.backend_tls, None,
            "turning backend TLS on needs a restart"
        );
        let mut named: Vec<String> = report
            .applied
            .iter()
            .chain(&report.ignored)
            .cloned()
            .collect();
        running.backend_tls = Some(backend("old"));
        let (next, report) = merge(&running, loaded);
        assert_eq!(next.backend_tls, Some(backend("new")));
        named.extend(
            report
                .applied
                .iter()
                .filter(|k| k.starts_with("backend-tls-"))
                .cloned(),
        );
        // A new mode is reported alone: every backend key keeps its running value.
        let mut other_mode = base();
        other_mode.mode = crate::config::Mode::Standalone;
        other_mode.seeds = vec![HostPort::new("10.0.0.3", 6379)];
        let (next, report) = merge(&base(), other_mode);
        assert_eq!(report.ignored, vec!["mode"]);
        assert_eq!((next.mode, &next.seeds), (base().mode, &base().seeds));
        named.extend(report.ignored);
        named.sort_unstable();
        named.dedup();
        let mut keys: Vec<&str> = crate::config::keys::ALL.iter().map(|k| k.name).collect();
        keys.sort_unstable();
        assert_eq!(named, keys);
        assert_eq!(named.len(), count);
    }

    #[test]
    fn reload_without_a_command_line_is_refused() {
        let state = Arc::new(ProxyState::new(base()));
        let reloader = Reloader::new(state.clone(), None, None);
        assert!(matches!(
            reloader.reload("test"),
            Err(ReloadError::Unavailable)
        ));
        assert_eq!(state.metrics.reloads(false), 1);
    }

    #[test]
    fn reload_applies_a_valid_file_and_refuses_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slotgate.toml");
        std::fs::write(&path, "seeds = [\"10.0.0.1:6379\"]\n").unwrap();
        let cli = Cli {
            config: Some(path.clone()),
            ..Cli::default()
        };
        let config = Config::load(&cli).unwrap();
        let state = Arc::new(ProxyState::new(config));
        let applied_levels = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let levels = applied_levels.clone();
        let handle: LogFilterHandle = Arc::new(move |level: &str| {
            levels.lock().unwrap().push(level.to_owned());
            Ok(())
        });
        let reloader = Reloader::new(state.clone(), Some(cli), Some(handle));

        std::fs::write(
            &path,
            "seeds = [\"10.0.0.1:6379\"]\nmaxclients = 7\nlog-level = \"debug\"\nslowlog-max-len = 3\nlisten = \"127.0.0.1:7000\"\n",
        )
        .unwrap();
        let report = reloader.reload("test").unwrap();
        assert_eq!(
            report.applied,
            vec!["log-level", "maxclients", "slowlog-max-len"]
        );
        assert_eq!(
            report.ignored,
            vec!["listen", "announce"],
            "announce follows listen"
        );
        assert_eq!(state.config().maxclients, 7);
        assert_eq!(state.config().listen, "127.0.0.1:6380".parse().unwrap());
        assert_eq!(*applied_levels.lock().unwrap(), vec!["debug".to_owned()]);

        std::fs::write(&path, "seeds = [\"10.0.0.1:6379\"]\nmaxclients = 0\n").unwrap();
        let error = reloader.reload("test").unwrap_err();
        assert!(error.to_string().contains("maxclients"), "{error}");
        assert_eq!(state.config().maxclients, 7, "the running config stays");
        assert_eq!(state.metrics.reloads(true), 1);
        assert_eq!(state.metrics.reloads(false), 1);
    }
}
