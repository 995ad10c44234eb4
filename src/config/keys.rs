//! The name of every setting in its three spellings: TOML key, flag and environment variable.
//!
//! [`super::build`] attaches a [`Key`] to every problem it reports, so an error names the
//! key the way the user wrote it wherever it came from. The clap attributes in
//! [`super::cli`] must spell flags and variables the same way: a unit test checks them
//! against this table, and the example file and reference doc against it too.
//!
//! Keys take redis.conf names where Redis has the same setting (`timeout`, `maxclients`,
//! `proto-max-bulk-len`, `client-query-buffer-limit`, `slowlog-log-slower-than`,
//! `slowlog-max-len`, `requirepass`, `client-output-buffer-limit`, the `tls-*` keys), kebab-case otherwise. Secret keys (`requirepass`,
//! `users`, `backend-password`, `sentinel-password`, `admin-token`) each have a `-file` twin for mounted Kubernetes Secrets, and
//! their values never appear in errors, `--help` or `Debug` output ([`super::Secret`]). Never add a key
//! named `port` or `service-*`: Kubernetes injects `SLOTGATE_PORT` and
//! `SLOTGATE_SERVICE_HOST` into pods when a Service is called `slotgate`.

/// One setting's spellings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// As written in the TOML file, e.g. `proto-max-bulk-len`.
    pub name: &'static str,
    /// The command-line flag, e.g. `--proto-max-bulk-len`.
    pub flag: &'static str,
    /// The environment variable, e.g. `SLOTGATE_PROTO_MAX_BULK_LEN`.
    pub env: &'static str,
}

macro_rules! keys {
    ($($ident:ident = $name:literal, $env:literal;)*) => {
        $(pub const $ident: Key = Key {
            name: $name,
            flag: concat!("--", $name),
            env: concat!("SLOTGATE_", $env),
        };)*
        /// Every key in reference-doc order (`--config` is not a key: it names the file).
        pub const ALL: &[Key] = &[$($ident),*];
    };
}

keys! {
    LISTEN = "listen", "LISTEN";
    ANNOUNCE = "announce", "ANNOUNCE";
    ADMIN_LISTEN = "admin-listen", "ADMIN_LISTEN";
    ADMIN_TOKEN = "admin-token", "ADMIN_TOKEN";
    ADMIN_TOKEN_FILE = "admin-token-file", "ADMIN_TOKEN_FILE";
    MODE = "mode", "MODE";
    SEEDS = "seeds", "SEEDS";
    SENTINELS = "sentinels", "SENTINELS";
    MASTER_NAME = "master-name", "MASTER_NAME";
    SENTINEL_USERNAME = "sentinel-username", "SENTINEL_USERNAME";
    SENTINEL_PASSWORD = "sentinel-password", "SENTINEL_PASSWORD";
    SENTINEL_PASSWORD_FILE = "sentinel-password-file", "SENTINEL_PASSWORD_FILE";
    THREADS = "threads", "THREADS";
    LOG_LEVEL = "log-level", "LOG_LEVEL";
    LOG_FORMAT = "log-format", "LOG_FORMAT";
    BACKEND_CONNECT_TIMEOUT = "backend-connect-timeout", "BACKEND_CONNECT_TIMEOUT";
    BACKEND_REPLY_TIMEOUT = "backend-reply-timeout", "BACKEND_REPLY_TIMEOUT";
    BACKEND_USER = "backend-user", "BACKEND_USER";
    BACKEND_PASSWORD = "backend-password", "BACKEND_PASSWORD";
    BACKEND_PASSWORD_FILE = "backend-password-file", "BACKEND_PASSWORD_FILE";
    TIMEOUT = "timeout", "TIMEOUT";
    MAXCLIENTS = "maxclients", "MAXCLIENTS";
    PROTO_MAX_BULK_LEN = "proto-max-bulk-len", "PROTO_MAX_BULK_LEN";
    CLIENT_QUERY_BUFFER_LIMIT = "client-query-buffer-limit", "CLIENT_QUERY_BUFFER_LIMIT";
    CLIENT_OUTPUT_BUFFER_LIMIT = "client-output-buffer-limit", "CLIENT_OUTPUT_BUFFER_LIMIT";
    MAX_REQUEST_ARGS = "max-request-args", "MAX_REQUEST_ARGS";
    MAX_REPLY_DEPTH = "max-reply-depth", "MAX_REPLY_DEPTH";
    MAX_INFLIGHT_PER_CLIENT = "max-inflight-per-client", "MAX_INFLIGHT_PER_CLIENT";
    REQUIREPASS = "requirepass", "REQUIREPASS";
    REQUIREPASS_FILE = "requirepass-file", "REQUIREPASS_FILE";
    USERS = "users", "USERS";
    USERS_FILE = "users-file", "USERS_FILE";
    ENABLE_FLUSH_COMMANDS = "enable-flush-commands", "ENABLE_FLUSH_COMMANDS";
    ENABLE_DEBUG_COMMAND = "enable-debug-command", "ENABLE_DEBUG_COMMAND";
    TLS_PORT = "tls-port", "TLS_PORT";
    TLS_CERT_FILE = "tls-cert-file", "TLS_CERT_FILE";
    TLS_KEY_FILE = "tls-key-file", "TLS_KEY_FILE";
    TLS_CA_CERT_FILE = "tls-ca-cert-file", "TLS_CA_CERT_FILE";
    TLS_AUTH_CLIENTS = "tls-auth-clients", "TLS_AUTH_CLIENTS";
    TLS_PROTOCOLS = "tls-protocols", "TLS_PROTOCOLS";
    BACKEND_TLS = "backend-tls", "BACKEND_TLS";
    BACKEND_TLS_CA_CERT_FILE = "backend-tls-ca-cert-file", "BACKEND_TLS_CA_CERT_FILE";
    BACKEND_TLS_CERT_FILE = "backend-tls-cert-file", "BACKEND_TLS_CERT_FILE";
    BACKEND_TLS_KEY_FILE = "backend-tls-key-file", "BACKEND_TLS_KEY_FILE";
    BACKEND_TLS_SERVER_NAME = "backend-tls-server-name", "BACKEND_TLS_SERVER_NAME";
    TOPOLOGY_REFRESH_INTERVAL = "topology-refresh-interval", "TOPOLOGY_REFRESH_INTERVAL";
    TOPOLOGY_REFRESH_MIN_INTERVAL = "topology-refresh-min-interval", "TOPOLOGY_REFRESH_MIN_INTERVAL";
    MAX_REDIRECTS = "max-redirects", "MAX_REDIRECTS";
    RETRY_DEADLINE = "retry-deadline", "RETRY_DEADLINE";
    READ_FROM = "read-from", "READ_FROM";
    REPLICA_MAX_LAG = "replica-max-lag", "REPLICA_MAX_LAG";
    REPLICA_CHECK_INTERVAL = "replica-check-interval", "REPLICA_CHECK_INTERVAL";
    READ_YOUR_WRITES = "read-your-writes", "READ_YOUR_WRITES";
    DNS_SERVER = "dns-server", "DNS_SERVER";
    SHUTDOWN_TIMEOUT = "shutdown-timeout", "SHUTDOWN_TIMEOUT";
    SLOWLOG_LOG_SLOWER_THAN = "slowlog-log-slower-than", "SLOWLOG_LOG_SLOWER_THAN";
    SLOWLOG_MAX_LEN = "slowlog-max-len", "SLOWLOG_MAX_LEN";
}

/// Keys a `[backends.NAME]` table takes: everything about one backend and the way to its
/// nodes. The default of each is the top-level key.
pub const BACKEND_SIDE: &[Key] = &[
    MODE,
    SEEDS,
    SENTINELS,
    MASTER_NAME,
    SENTINEL_USERNAME,
    SENTINEL_PASSWORD,
    SENTINEL_PASSWORD_FILE,
    BACKEND_CONNECT_TIMEOUT,
    BACKEND_REPLY_TIMEOUT,
    BACKEND_USER,
    BACKEND_PASSWORD,
    BACKEND_PASSWORD_FILE,
    MAX_REPLY_DEPTH,
    BACKEND_TLS,
    BACKEND_TLS_CA_CERT_FILE,
    BACKEND_TLS_CERT_FILE,
    BACKEND_TLS_KEY_FILE,
    BACKEND_TLS_SERVER_NAME,
    TOPOLOGY_REFRESH_INTERVAL,
    TOPOLOGY_REFRESH_MIN_INTERVAL,
    MAX_REDIRECTS,
    RETRY_DEADLINE,
    READ_FROM,
    REPLICA_MAX_LAG,
    REPLICA_CHECK_INTERVAL,
    READ_YOUR_WRITES,
];

/// Keys a `[[listeners]]` entry takes: everything about the clients of one port. The
/// default of each is the top-level key (for an override of a backend key, its backend's
/// value: [`LISTENER_OVERRIDES`]).
pub const LISTENER_SIDE: &[Key] = &[
    LISTEN,
    ANNOUNCE,
    TIMEOUT,
    MAXCLIENTS,
    PROTO_MAX_BULK_LEN,
    CLIENT_QUERY_BUFFER_LIMIT,
    CLIENT_OUTPUT_BUFFER_LIMIT,
    MAX_REQUEST_ARGS,
    MAX_INFLIGHT_PER_CLIENT,
    REQUIREPASS,
    REQUIREPASS_FILE,
    USERS,
    USERS_FILE,
    ENABLE_FLUSH_COMMANDS,
    ENABLE_DEBUG_COMMAND,
    TLS_PORT,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    TLS_CA_CERT_FILE,
    TLS_AUTH_CLIENTS,
    TLS_PROTOCOLS,
    // A backend key a listener may override: its clients' reads.
    READ_FROM,
];

/// Backend keys a `[[listeners]]` entry may set for its own clients (in both lists).
pub const LISTENER_OVERRIDES: &[Key] = &[READ_FROM];

/// Keys that exist only inside a section (no flag, no variable, no top-level spelling).
pub const REQUIRED: Key = section_only("required");
/// A listener's name (metric label, logs, reload identity).
pub const NAME: Key = section_only("name");
/// The backend a listener is bound to.
pub const BACKEND: Key = section_only("backend");
/// The `[[listeners]]` array itself.
pub const LISTENERS: Key = section_only("listeners");
/// The `[backends]` table itself.
pub const BACKENDS: Key = section_only("backends");

const fn section_only(name: &'static str) -> Key {
    Key {
        name,
        flag: "",
        env: "",
    }
}

/// The key spelled `name`, if it is one of [`ALL`].
pub fn by_name(name: &str) -> Option<Key> {
    ALL.iter().copied().find(|key| key.name == name)
}

/// The environment variable naming the config file (`--config`).
pub const CONFIG_ENV: &str = "SLOTGATE_CONFIG";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_derive_from_the_name() {
        for key in ALL {
            assert_eq!(key.flag, format!("--{}", key.name));
            let env = format!("SLOTGATE_{}", key.name.replace('-', "_").to_uppercase());
            assert_eq!(key.env, env);
            assert!(!key.name.starts_with("port") && !key.name.starts_with("service"));
        }
    }

    /// A key is backend-side, listener-side or process-wide, never two of those.
    #[test]
    fn sides_do_not_overlap() {
        for key in BACKEND_SIDE {
            assert!(
                !LISTENER_SIDE.contains(key) || LISTENER_OVERRIDES.contains(key),
                "{} is on both sides",
                key.name
            );
            assert!(ALL.contains(key));
        }
        assert!(LISTENER_SIDE.iter().all(|key| ALL.contains(key)));
        assert!(
            LISTENER_OVERRIDES
                .iter()
                .all(|key| BACKEND_SIDE.contains(key))
        );
    }
}
