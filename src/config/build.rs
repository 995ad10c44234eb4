//! Merging and checking: ([`Cli`], [`RawConfig`]) in, a validated [`Config`] or every
//! [`Problem`] out.
//!
//! For each key the first value set wins: flag, then environment variable (clap has already
//! chosen between those two), then file, then the default. The chosen value is parsed and
//! range-checked; a bad value records a problem and the checks go on, so one run reports
//! everything. Checks between two keys run only when both values are themselves valid, so a
//! typo is never reported a second time as a confusing conflict.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

mod mode;
mod reads;
mod sections;
mod tls;

pub use sections::build;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use super::HostPort;
use super::Secret;
use super::cli::Cli;
use super::error::{Origin, Problem};
use super::keys::{self, Key};
use super::raw::{RawConfig, Scalar};
use super::units::{self, GB, MB};
use super::{Config, LogFormat};
use crate::acl::{self, PasswordHash, User};

pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 6380);
pub const DEFAULT_LOG_LEVEL: &str = "info";
pub const DEFAULT_BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_BACKEND_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_MAXCLIENTS: u64 = 10_000;
pub const DEFAULT_PROTO_MAX_BULK_LEN: u64 = 512 * MB;
pub const DEFAULT_CLIENT_QUERY_BUFFER_LIMIT: u64 = GB;
pub const DEFAULT_MAX_REQUEST_ARGS: u64 = 1024 * 1024;
pub const DEFAULT_MAX_REPLY_DEPTH: u64 = 128;
pub const DEFAULT_MAX_INFLIGHT_PER_CLIENT: u64 = 1024;
pub const DEFAULT_TOPOLOGY_REFRESH_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_TOPOLOGY_REFRESH_MIN_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_MAX_REDIRECTS: u64 = 5;
pub const DEFAULT_RETRY_DEADLINE: Duration = Duration::from_secs(10);
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Redis's default for `slowlog-log-slower-than`, in microseconds.
pub const DEFAULT_SLOWLOG_LOG_SLOWER_THAN: i64 = 10_000;
/// Redis's default for `slowlog-max-len`.
pub const DEFAULT_SLOWLOG_MAX_LEN: u64 = 128;

const THREADS: RangeInclusive<u64> = 1..=1024;
/// Redis's own bounds for `maxclients` (an unsigned int, at least 1).
const MAXCLIENTS: RangeInclusive<u64> = 1..=u32::MAX as u64;
/// Redis refuses a multibulk count above INT_MAX.
const MAX_REQUEST_ARGS: RangeInclusive<u64> = 1..=i32::MAX as u64;
const MAX_REPLY_DEPTH: RangeInclusive<u64> = 1..=4096;
const MAX_INFLIGHT_PER_CLIENT: RangeInclusive<u64> = 1..=1024 * 1024;
/// Each entry holds up to 32 arguments of 128 bytes: a million entries is ~4 GB already.
const SLOWLOG_MAX_LEN: RangeInclusive<u64> = 0..=1_000_000;
/// At least one, because MOVED/ASK must never reach a client.
const MAX_REDIRECTS: RangeInclusive<u64> = 1..=64;
/// Redis's minimum for `proto-max-bulk-len` (smaller values break its own replication).
const MIN_BULK_LEN: u64 = MB;
/// Frames are indexed with `u32` offsets; a 2gb bulk plus its header still fits.
const MAX_BULK_LEN: u64 = 2 * GB;
/// Redis's minimum for `client-query-buffer-limit`.
const MIN_QUERY_BUFFER: u64 = MB;
/// One buffered request is one frame, indexed with `u32` offsets.
const MAX_QUERY_BUFFER: u64 = u32::MAX as u64;
/// Longer than any sensible wait, and far from the overflow of `Instant + Duration`.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// Port of a DNS server given as a bare IP.
const DNS_PORT: u16 = 53;

/// A value and where it came from.
struct Sourced<T> {
    value: T,
    origin: Origin,
}

/// The number of CPUs, within the accepted range.
pub fn default_threads() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.min(*THREADS.end() as usize)
}

/// Merges `cli` over `raw` and checks every key: one view, without sections
/// ([`sections::build`] runs it once per backend and listener).
fn build_view(cli: &Cli, mut raw: RawConfig) -> Result<Config, Vec<Problem>> {
    let mut c = Checker::default();
    let mut tls_inputs = tls::TlsInputs::take(cli, &mut raw);
    let backend = c.backend_keys(cli, &mut raw);
    let reads = c.read_settings(cli, &mut raw);
    let listen = c.check(
        keys::LISTEN,
        pick_text(&cli.listen, raw.listen),
        DEFAULT_LISTEN,
        parse_listen,
    );
    let announce_input = pick_text(&cli.announce, raw.announce);
    let announce = match announce_input {
        Some(_) => c.check(keys::ANNOUNCE, announce_input, None, |text| {
            parse_host_port(&text).map(Some)
        }),
        // Derived from listen: only known when listen itself is valid.
        None => listen.map(|_| None),
    };
    let admin_input = pick_text(&cli.admin_listen, raw.admin_listen);
    let admin_origin = origin_of(&admin_input);
    let admin_listen = c.check(keys::ADMIN_LISTEN, admin_input, None, parse_admin_listen);
    let admin_token_file_input = pick_text(&cli.admin_token_file, raw.admin_token_file);
    let admin_token_file = file_path(&admin_token_file_input);
    let admin_token = c.secret(
        (
            keys::ADMIN_TOKEN,
            pick_secret(&cli.admin_token, raw.admin_token),
        ),
        (keys::ADMIN_TOKEN_FILE, admin_token_file_input),
    );
    let threads = c.check(
        keys::THREADS,
        pick_scalar(&cli.threads, raw.threads),
        default_threads() as u64,
        |v| integer(v, THREADS),
    );
    // log-level (flag, SLOTGATE_LOG_LEVEL, file) wins; else RUST_LOG; else the default.
    let log_level = match pick_text(&cli.log_level, raw.log_level) {
        Some(input) => c.check(
            keys::LOG_LEVEL,
            Some(input),
            DEFAULT_LOG_LEVEL.to_owned(),
            parse_log_level,
        ),
        None => c.check(
            keys::LOG_LEVEL,
            cli_text(&cli.rust_log).map(|text| Sourced::new(text, Origin::CommandLine)),
            DEFAULT_LOG_LEVEL.to_owned(),
            |text| parse_log_level(text).map_err(|why| format!("from RUST_LOG: {why}")),
        ),
    };
    let log_format = c.check(
        keys::LOG_FORMAT,
        pick_text(&cli.log_format, raw.log_format),
        LogFormat::Human,
        |text| LogFormat::from_str(text.trim()),
    );
    let backend_connect_timeout = c.check(
        keys::BACKEND_CONNECT_TIMEOUT,
        pick_scalar(&cli.backend_connect_timeout, raw.backend_connect_timeout),
        DEFAULT_BACKEND_CONNECT_TIMEOUT,
        |v| positive(duration(v)?),
    );
    let backend_reply_timeout = c.check(
        keys::BACKEND_REPLY_TIMEOUT,
        pick_scalar(&cli.backend_reply_timeout, raw.backend_reply_timeout),
        DEFAULT_BACKEND_REPLY_TIMEOUT,
        |v| positive(duration(v)?),
    );
    let timeout = c.check(
        keys::TIMEOUT,
        pick_scalar(&cli.timeout, raw.timeout),
        Duration::ZERO,
        seconds,
    );
    let maxclients = c.check(
        keys::MAXCLIENTS,
        pick_scalar(&cli.maxclients, raw.maxclients),
        DEFAULT_MAXCLIENTS,
        |v| integer(v, MAXCLIENTS),
    );
    let bulk_input = pick_scalar(&cli.proto_max_bulk_len, raw.proto_max_bulk_len);
    let bulk_origin = origin_of(&bulk_input);
    let proto_max_bulk_len = c.check(
        keys::PROTO_MAX_BULK_LEN,
        bulk_input,
        DEFAULT_PROTO_MAX_BULK_LEN,
        |v| {
            let bytes = size(v)?;
            at_least(bytes, MIN_BULK_LEN, "as in Redis")?;
            at_most(
                bytes,
                MAX_BULK_LEN,
                "request frames are indexed with 32-bit offsets",
            )
        },
    );
    let query_input = pick_scalar(
        &cli.client_query_buffer_limit,
        raw.client_query_buffer_limit,
    );
    let query_origin = origin_of(&query_input);
    let client_query_buffer_limit = c.check(
        keys::CLIENT_QUERY_BUFFER_LIMIT,
        query_input,
        DEFAULT_CLIENT_QUERY_BUFFER_LIMIT,
        |v| {
            let bytes = size(v)?;
            at_least(bytes, MIN_QUERY_BUFFER, "as in Redis")?;
            at_most(
                bytes,
                MAX_QUERY_BUFFER,
                "request frames are indexed with 32-bit offsets",
            )
        },
    );
    let max_request_args = c.check(
        keys::MAX_REQUEST_ARGS,
        pick_scalar(&cli.max_request_args, raw.max_request_args),
        DEFAULT_MAX_REQUEST_ARGS,
        |v| integer(v, MAX_REQUEST_ARGS),
    );
    let max_reply_depth = c.check(
        keys::MAX_REPLY_DEPTH,
        pick_scalar(&cli.max_reply_depth, raw.max_reply_depth),
        DEFAULT_MAX_REPLY_DEPTH,
        |v| integer(v, MAX_REPLY_DEPTH),
    );
    let max_inflight_per_client = c.check(
        keys::MAX_INFLIGHT_PER_CLIENT,
        pick_scalar(&cli.max_inflight_per_client, raw.max_inflight_per_client),
        DEFAULT_MAX_INFLIGHT_PER_CLIENT,
        |v| integer(v, MAX_INFLIGHT_PER_CLIENT),
    );
    let backend_user_input = pick_text(&cli.backend_user, raw.backend_user);
    let backend_user_origin = origin_of(&backend_user_input);
    let backend_user = c.check(keys::BACKEND_USER, backend_user_input, None, |text| {
        parse_user_name(&text).map(Some)
    });
    let backend_password_file_input =
        pick_text(&cli.backend_password_file, raw.backend_password_file);
    let backend_password_file = file_path(&backend_password_file_input);
    let backend_password = c.secret(
        (
            keys::BACKEND_PASSWORD,
            pick_secret(&cli.backend_password, raw.backend_password),
        ),
        (keys::BACKEND_PASSWORD_FILE, backend_password_file_input),
    );
    if let (Some(Some(_)), Some(None)) = (&backend_user, &backend_password) {
        c.report(
            keys::BACKEND_USER,
            backend_user_origin,
            "needs backend-password or backend-password-file: AUTH takes a user and a password",
        );
    }
    let requirepass_file_input = pick_text(&cli.requirepass_file, raw.requirepass_file);
    let requirepass_file = file_path(&requirepass_file_input);
    let requirepass = c
        .secret(
            (
                keys::REQUIREPASS,
                pick_secret(&cli.requirepass, raw.requirepass),
            ),
            (keys::REQUIREPASS_FILE, requirepass_file_input),
        )
        // Hashed at once; the plaintext goes no further.
        .map(|secret| secret.map(|s| PasswordHash::of(s.expose().as_bytes())));
    let users_file_input = pick_text(&cli.users_file, raw.users_file);
    let users_file = file_path(&users_file_input);
    let users = c.users(
        pick_secret_list(&cli.users, raw.users),
        users_file_input,
        requirepass.flatten(),
    );
    let enable_flush_commands = c.check(
        keys::ENABLE_FLUSH_COMMANDS,
        pick_bool(&cli.enable_flush_commands, raw.enable_flush_commands),
        false,
        |text| parse_bool(&text),
    );
    let enable_debug_command = c.check(
        keys::ENABLE_DEBUG_COMMAND,
        pick_bool(&cli.enable_debug_command, raw.enable_debug_command),
        false,
        |text| parse_bool(&text),
    );
    let refresh_input = pick_scalar(
        &cli.topology_refresh_interval,
        raw.topology_refresh_interval,
    );
    let refresh_origin = origin_of(&refresh_input);
    let topology_refresh_interval = c.check(
        keys::TOPOLOGY_REFRESH_INTERVAL,
        refresh_input,
        DEFAULT_TOPOLOGY_REFRESH_INTERVAL,
        |v| positive(duration(v)?),
    );
    let floor_input = pick_scalar(
        &cli.topology_refresh_min_interval,
        raw.topology_refresh_min_interval,
    );
    let floor_origin = origin_of(&floor_input);
    let topology_refresh_min_interval = c.check(
        keys::TOPOLOGY_REFRESH_MIN_INTERVAL,
        floor_input,
        DEFAULT_TOPOLOGY_REFRESH_MIN_INTERVAL,
        |v| {
            positive(duration(v)?).map_err(|why| {
                format!("{why}: without a floor, a burst of MOVED replies would refresh once each")
            })
        },
    );
    let max_redirects = c.check(
        keys::MAX_REDIRECTS,
        pick_scalar(&cli.max_redirects, raw.max_redirects),
        DEFAULT_MAX_REDIRECTS,
        |v| integer(v, MAX_REDIRECTS),
    );
    let retry_deadline = c.check(
        keys::RETRY_DEADLINE,
        pick_scalar(&cli.retry_deadline, raw.retry_deadline),
        DEFAULT_RETRY_DEADLINE,
        duration,
    );
    let dns_server = c.check(
        keys::DNS_SERVER,
        pick_text(&cli.dns_server, raw.dns_server),
        None,
        |text| parse_dns_server(&text).map(Some),
    );
    let shutdown_timeout = c.check(
        keys::SHUTDOWN_TIMEOUT,
        pick_scalar(&cli.shutdown_timeout, raw.shutdown_timeout),
        DEFAULT_SHUTDOWN_TIMEOUT,
        duration,
    );
    let slowlog_log_slower_than = c.check(
        keys::SLOWLOG_LOG_SLOWER_THAN,
        pick_scalar(&cli.slowlog_log_slower_than, raw.slowlog_log_slower_than),
        DEFAULT_SLOWLOG_LOG_SLOWER_THAN,
        signed_integer,
    );
    let slowlog_max_len = c.check(
        keys::SLOWLOG_MAX_LEN,
        pick_scalar(&cli.slowlog_max_len, raw.slowlog_max_len),
        DEFAULT_SLOWLOG_MAX_LEN,
        |v| integer(v, SLOWLOG_MAX_LEN),
    );

    let client_output_buffer_limit = c.output_limits(&mut tls_inputs);
    let tls = c.listener_tls(&mut tls_inputs, listen, admin_listen.flatten());
    let backend_tls = c.backend_tls(&mut tls_inputs);

    if let (Some(listen), Some(Some(admin))) = (listen, admin_listen) {
        c.admin_apart_from_listen(listen, Sourced::new(admin, admin_origin));
    }
    if let (Some(bulk), Some(query)) = (proto_max_bulk_len, client_query_buffer_limit) {
        c.query_buffer_holds_bulk(
            Sourced::new(bulk, bulk_origin),
            Sourced::new(query, query_origin),
        );
    }
    if let (Some(interval), Some(floor)) =
        (topology_refresh_interval, topology_refresh_min_interval)
    {
        c.floor_below_interval(
            Sourced::new(interval, refresh_origin),
            Sourced::new(floor, floor_origin),
        );
    }

    // Every `None` above recorded a problem, so this only assembles when all is valid.
    let config = (|| {
        let listen = listen?;
        let backend = backend?;
        Some(Config {
            listen,
            announce: announce?.unwrap_or_else(|| default_announce(listen)),
            admin_listen: admin_listen?,
            admin_token: admin_token?,
            admin_token_file,
            mode: backend.mode,
            seeds: backend.seeds,
            sentinels: backend.sentinels,
            master_name: backend.master_name,
            sentinel_username: backend.sentinel_username,
            sentinel_password: backend.sentinel_password,
            sentinel_password_file: backend.sentinel_password_file,
            threads: to_usize(threads?),
            log_level: log_level?,
            log_format: log_format?,
            backend_connect_timeout: backend_connect_timeout?,
            backend_reply_timeout: backend_reply_timeout?,
            backend_user: backend_user?,
            backend_password: backend_password?,
            backend_password_file,
            timeout: timeout?,
            maxclients: to_usize(maxclients?),
            proto_max_bulk_len: to_usize(proto_max_bulk_len?),
            client_query_buffer_limit: to_usize(client_query_buffer_limit?),
            client_output_buffer_limit: client_output_buffer_limit?,
            max_request_args: to_usize(max_request_args?),
            max_reply_depth: to_usize(max_reply_depth?),
            max_inflight_per_client: to_usize(max_inflight_per_client?),
            requirepass: requirepass?,
            requirepass_file,
            users: users?,
            users_file,
            enable_flush_commands: enable_flush_commands?,
            enable_debug_command: enable_debug_command?,
            tls: tls?,
            backend_tls: backend_tls?,
            topology_refresh_interval: topology_refresh_interval?,
            topology_refresh_min_interval: topology_refresh_min_interval?,
            max_redirects: u32::try_from(max_redirects?).ok()?,
            retry_deadline: retry_deadline?,
            reads: reads?,
            dns_server: dns_server?,
            shutdown_timeout: shutdown_timeout?,
            slowlog_log_slower_than: slowlog_log_slower_than?,
            slowlog_max_len: to_usize(slowlog_max_len?),
            config_file: cli.config.clone(),
            backends: Vec::new(),
            listeners: Vec::new(),
        })
    })();
    match config {
        Some(config) if c.problems.is_empty() => Ok(config),
        _ => {
            debug_assert!(
                !c.problems.is_empty(),
                "a value was dropped without a problem"
            );
            Err(c.problems)
        }
    }
}

/// The address cluster-mode clients are told when `announce` is unset: the listen address,
/// except that "every interface" is no address to connect to, so loopback stands in (pods
/// must set `announce` to their IP or Service name).
pub fn default_announce(listen: SocketAddr) -> HostPort {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    HostPort::from(SocketAddr::new(ip, listen.port()))
}

/// Every limit is far below `usize::MAX` on 64-bit targets; saturate rather than wrap on
/// smaller ones.
fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

impl<T> Sourced<T> {
    fn new(value: T, origin: Origin) -> Self {
        Self { value, origin }
    }
}

fn origin_of<T>(input: &Option<Sourced<T>>) -> Origin {
    input.as_ref().map_or(Origin::Default, |s| s.origin)
}

/// A flag/env text, treating blank as unset (an empty variable in a pod spec means "unset").
fn cli_text(cli: &Option<String>) -> Option<String> {
    cli.as_ref().filter(|text| !text.trim().is_empty()).cloned()
}

fn pick_text(cli: &Option<String>, file: Option<String>) -> Option<Sourced<String>> {
    match cli_text(cli) {
        Some(value) => Some(Sourced::new(value, Origin::CommandLine)),
        None => file.map(|value| Sourced::new(value, Origin::File)),
    }
}

fn pick_scalar(cli: &Option<String>, file: Option<Scalar>) -> Option<Sourced<Scalar>> {
    match cli_text(cli) {
        Some(text) => Some(Sourced::new(Scalar::Text(text), Origin::CommandLine)),
        None => file.map(|value| Sourced::new(value, Origin::File)),
    }
}

fn pick_secret(cli: &Option<Secret>, file: Option<Secret>) -> Option<Sourced<Secret>> {
    match cli.as_ref().filter(|secret| !secret.is_blank()) {
        Some(secret) => Some(Sourced::new(secret.clone(), Origin::CommandLine)),
        None => file.map(|secret| Sourced::new(secret, Origin::File)),
    }
}

fn pick_secret_list(
    cli: &Option<Vec<Secret>>,
    file: Option<Vec<Secret>>,
) -> Option<Sourced<Vec<Secret>>> {
    let cli = cli
        .as_ref()
        .filter(|list| list.iter().any(|entry| !entry.is_blank()));
    match cli {
        Some(list) => Some(Sourced::new(list.clone(), Origin::CommandLine)),
        None => file.map(|list| Sourced::new(list, Origin::File)),
    }
}

/// The path a `-file` key names, as given (trimmed).
fn file_path(input: &Option<Sourced<String>>) -> Option<PathBuf> {
    input.as_ref().map(|s| PathBuf::from(s.value.trim()))
}

/// A boolean as text: the flag's or variable's own, or the file's TOML boolean.
fn pick_bool(cli: &Option<String>, file: Option<bool>) -> Option<Sourced<String>> {
    pick_text(cli, file.map(|value| value.to_string()))
}

fn pick_list(cli: &Option<Vec<String>>, file: Option<Vec<String>>) -> Option<Sourced<Vec<String>>> {
    let cli = cli
        .as_ref()
        .filter(|list| list.iter().any(|entry| !entry.trim().is_empty()));
    match cli {
        Some(list) => Some(Sourced::new(list.clone(), Origin::CommandLine)),
        None => file.map(|list| Sourced::new(list, Origin::File)),
    }
}

/// Collects problems; every check returns `None` exactly when it recorded one.
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn report(&mut self, key: Key, origin: Origin, message: impl Into<String>) {
        self.problems.push(Problem {
            key,
            origin,
            message: message.into(),
            section: None,
        });
    }

    /// Parses a set value with `parse`, or takes `default` when nothing set the key.
    fn check<I, T>(
        &mut self,
        key: Key,
        input: Option<Sourced<I>>,
        default: T,
        parse: impl FnOnce(I) -> Result<T, String>,
    ) -> Option<T> {
        let Some(Sourced { value, origin }) = input else {
            return Some(default);
        };
        parse(value)
            .map_err(|message| self.report(key, origin, message))
            .ok()
    }

    /// Seeds are required; each bad entry is its own problem.
    /// A secret given directly or as a file (`requirepass` / `requirepass-file`, ...): at
    /// most one of the two; a file is read, with one trailing newline dropped. Never
    /// quotes the secret. `Some(None)` when neither is set.
    fn secret(
        &mut self,
        (key, value): (Key, Option<Sourced<Secret>>),
        (file_key, file): (Key, Option<Sourced<String>>),
    ) -> Option<Option<Secret>> {
        match (value, file) {
            (None, None) => Some(None),
            (Some(_), Some(file)) => {
                let message = format!(
                    "set only one of {} and {}: both give the same password",
                    key.name, file_key.name
                );
                self.report(file_key, file.origin, message);
                None
            }
            (Some(Sourced { value, origin }), None) => {
                if value.is_blank() {
                    let message = "empty: remove the key for no password (an empty password                                    is refused rather than taken as none)";
                    self.report(key, origin, message);
                    return None;
                }
                Some(Some(value))
            }
            (None, Some(Sourced { value, origin })) => match read_secret_file(&value) {
                Ok(secret) => Some(Some(secret)),
                Err(message) => {
                    self.report(file_key, origin, message);
                    None
                }
            },
        }
    }

    /// `users` entries, then `users-file` lines, parsed into users (passwords hashed). Each
    /// bad entry or line is its own problem; a user defined twice is a problem on the
    /// second definition's key.
    fn users(
        &mut self,
        lines: Option<Sourced<Vec<Secret>>>,
        file: Option<Sourced<String>>,
        requirepass: Option<PasswordHash>,
    ) -> Option<Vec<User>> {
        let before = self.problems.len();
        let mut users: Vec<(User, Key, Origin)> = Vec::new();
        if let Some(Sourced { value, origin }) = lines {
            for (index, line) in value.iter().enumerate() {
                if line.is_blank() {
                    continue;
                }
                match acl::parse_user(line.expose(), requirepass) {
                    Ok(user) => users.push((user, keys::USERS, origin)),
                    Err(e) => {
                        let message = format!("entry {}: {e}", index + 1);
                        self.report(keys::USERS, origin, message);
                    }
                }
            }
        }
        if let Some(Sourced { value, origin }) = file {
            let path = value.trim();
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let (parsed, problems) = acl::parse_acl_file(&text, requirepass);
                    for problem in problems {
                        self.report(keys::USERS_FILE, origin, format!("{path}: {problem}"));
                    }
                    users.extend(
                        parsed
                            .into_iter()
                            .map(|user| (user, keys::USERS_FILE, origin)),
                    );
                }
                Err(e) => {
                    self.report(keys::USERS_FILE, origin, format!("cannot read {path}: {e}"));
                }
            }
        }
        let mut unique: Vec<User> = Vec::with_capacity(users.len());
        for (user, key, origin) in users {
            if unique.iter().any(|u| u.name() == user.name()) {
                let message = format!(
                    "user `{}` is defined twice (in users and users-file together)",
                    user.name()
                );
                self.report(key, origin, message);
            } else {
                unique.push(user);
            }
        }
        (self.problems.len() == before).then_some(unique)
    }

    /// A request carrying one argument of the largest allowed size, plus its framing, must
    /// fit in the query buffer, or that argument could never be sent.
    fn query_buffer_holds_bulk(&mut self, bulk: Sourced<u64>, query: Sourced<u64>) {
        if query.value > bulk.value {
            return;
        }
        let describe = |s: &Sourced<u64>| match s.origin {
            Origin::Default => format!("default {}", units::format_size(s.value)),
            _ => units::format_size(s.value),
        };
        // Blame the key the user set; if both were set, the buffer limit.
        if query.origin == Origin::Default && bulk.origin != Origin::Default {
            let message = format!(
                "{} must be less than client-query-buffer-limit ({}), so that a request \
                 carrying the largest argument fits in the query buffer; raise \
                 client-query-buffer-limit too",
                describe(&bulk),
                describe(&query),
            );
            self.report(keys::PROTO_MAX_BULK_LEN, bulk.origin, message);
        } else {
            let message = format!(
                "{} must be greater than proto-max-bulk-len ({}), so that a request \
                 carrying the largest argument fits in the query buffer",
                describe(&query),
                describe(&bulk),
            );
            self.report(keys::CLIENT_QUERY_BUFFER_LIMIT, query.origin, message);
        }
    }

    /// The admin listener cannot share the client listener's socket address.
    fn admin_apart_from_listen(&mut self, listen: SocketAddr, admin: Sourced<SocketAddr>) {
        let overlaps = listen.ip() == admin.value.ip()
            || listen.ip().is_unspecified()
            || admin.value.ip().is_unspecified();
        if listen.port() == admin.value.port() && overlaps {
            let message = format!(
                "{} collides with listen ({listen}): the admin listener needs a port of its own, e.g. 9121",
                admin.value
            );
            self.report(keys::ADMIN_LISTEN, admin.origin, message);
        }
    }

    fn floor_below_interval(&mut self, interval: Sourced<Duration>, floor: Sourced<Duration>) {
        if floor.value <= interval.value {
            return;
        }
        let (key, origin) = if floor.origin == Origin::Default {
            (keys::TOPOLOGY_REFRESH_INTERVAL, interval.origin)
        } else {
            (keys::TOPOLOGY_REFRESH_MIN_INTERVAL, floor.origin)
        };
        let message = format!(
            "topology-refresh-min-interval ({}) must not exceed topology-refresh-interval ({})",
            units::format_duration(floor.value),
            units::format_duration(interval.value),
        );
        self.report(key, origin, message);
    }
}

/// A whole number within `range`, from a TOML integer or text.
fn integer(value: Scalar, range: RangeInclusive<u64>) -> Result<u64, String> {
    let number = match value {
        Scalar::Int(n) => u64::try_from(n).map_err(|_| out_of_range(&n, &range))?,
        Scalar::Text(text) => parse_whole(&text)?,
    };
    if range.contains(&number) {
        Ok(number)
    } else {
        Err(out_of_range(&number, &range))
    }
}

fn out_of_range(number: &dyn std::fmt::Display, range: &RangeInclusive<u64>) -> String {
    format!(
        "must be from {} to {}, got {number}",
        range.start(),
        range.end()
    )
}

/// A whole number that may be negative (`slowlog-log-slower-than`), from a TOML integer or text.
fn signed_integer(value: Scalar) -> Result<i64, String> {
    match value {
        Scalar::Int(n) => Ok(n),
        Scalar::Text(text) => {
            let trimmed = text.trim();
            let digits = trimmed.strip_prefix('-').unwrap_or(trimmed);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{text:?} is not a whole number"));
            }
            trimmed
                .parse()
                .map_err(|_| format!("{text:?} is out of range"))
        }
    }
}

/// Digits only, so "+5", "5.0" and "5k" are refused with the value quoted.
fn parse_whole(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a whole number"));
    }
    trimmed
        .parse()
        .map_err(|_| format!("{text:?} is too large"))
}

/// Bytes from a TOML integer or a redis.conf size text.
fn size(value: Scalar) -> Result<u64, String> {
    match value {
        Scalar::Int(n) => u64::try_from(n).map_err(|_| format!("{n} must not be negative")),
        Scalar::Text(text) => {
            units::parse_size(text.trim()).map_err(|why| format!("{text:?} is not a size: {why}"))
        }
    }
}

fn at_least(bytes: u64, min: u64, why: &str) -> Result<u64, String> {
    if bytes >= min {
        return Ok(bytes);
    }
    Err(format!(
        "{} is below the minimum of {} ({why})",
        units::format_size(bytes),
        units::format_size(min)
    ))
}

fn at_most(bytes: u64, max: u64, why: &str) -> Result<u64, String> {
    if bytes <= max {
        return Ok(bytes);
    }
    Err(format!(
        "{} is above the maximum of {} ({why})",
        units::format_size(bytes),
        units::format_size(max)
    ))
}

/// A duration with units, at most [`MAX_DURATION`]. A bare TOML integer is refused, since
/// `5` could mean seconds or milliseconds; only `0` needs no unit.
fn duration(value: Scalar) -> Result<Duration, String> {
    let parsed = match value {
        Scalar::Int(0) => Duration::ZERO,
        Scalar::Int(n) => return Err(format!("{n} has no unit; write \"{n}s\" or \"{n}ms\"")),
        Scalar::Text(text) => units::parse_duration(text.trim())
            .map_err(|why| format!("{text:?} is not a duration: {why}"))?,
    };
    at_most_a_year(parsed)
}

fn at_most_a_year(duration: Duration) -> Result<Duration, String> {
    if duration <= MAX_DURATION {
        return Ok(duration);
    }
    Err(format!(
        "{} is longer than the maximum of a year ({})",
        units::format_duration(duration),
        units::format_duration(MAX_DURATION)
    ))
}

fn positive(duration: Duration) -> Result<Duration, String> {
    if duration.is_zero() {
        return Err("must be more than 0".to_owned());
    }
    Ok(duration)
}

/// redis.conf's `timeout`: whole seconds, 0 = never.
fn seconds(value: Scalar) -> Result<Duration, String> {
    let secs = match value {
        Scalar::Int(n) => u64::try_from(n).map_err(|_| format!("{n} must not be negative"))?,
        Scalar::Text(text) => parse_whole(&text).map_err(|why| {
            format!("{why}: timeout counts whole seconds as in redis.conf, e.g. 300")
        })?,
    };
    at_most_a_year(Duration::from_secs(secs))
}

/// A secret from a file (a mounted Kubernetes Secret): the whole content but one trailing
/// newline (`\n` or `\r\n`), as `kubectl create secret --from-file` or `echo` leave it.
fn read_secret_file(path: &str) -> Result<Secret, String> {
    let path = path.trim();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if text.is_empty() {
        return Err(format!("{path} is empty"));
    }
    Ok(Secret::new(text))
}

/// A Redis user name for backend AUTH: one word.
fn parse_user_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{text:?} is not a user name: one word, no spaces"));
    }
    Ok(name.to_owned())
}

/// `true`/`false`, also `yes`/`no` as in redis.conf, any case.
fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => Err(format!("{text:?} is not a boolean: use true or false")),
    }
}

/// An IP and port to bind; a host name is refused because binding needs an address.
fn parse_listen(text: String) -> Result<SocketAddr, String> {
    let trimmed = text.trim();
    if let Ok(addr) = trimmed.parse::<SocketAddr>() {
        if addr.port() == 0 {
            // Every worker binds its own SO_REUSEPORT socket: port 0 would give each one a
            // different random port, and clients could not be told which.
            return Err(
                "port 0 is not allowed: every worker thread would get its own random port"
                    .to_owned(),
            );
        }
        return Ok(addr);
    }
    Err(match trimmed.parse::<HostPort>() {
        Ok(_) => format!(
            "{text:?} is not IP:port: a host name cannot be listened on; \
             use 0.0.0.0 or [::] for every interface"
        ),
        Err(why) => format!("{text:?} is not IP:port ({why})"),
    })
}

/// The admin listener's address: an IP and port like `listen`, or `off` for none.
fn parse_admin_listen(text: String) -> Result<Option<SocketAddr>, String> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("off") || trimmed.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match trimmed.parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => Err(
            "port 0 is not allowed: probes and scrapers need a known port, e.g. 9121".to_owned(),
        ),
        Ok(addr) => Ok(Some(addr)),
        Err(_) => Err(format!(
            "{text:?} is not IP:port (or off): e.g. 0.0.0.0:9121 for every interface"
        )),
    }
}

fn parse_host_port(text: &str) -> Result<HostPort, String> {
    text.trim()
        .parse()
        .map_err(|why| format!("{text:?} is not host:port ({why})"))
}

/// An IP with an optional port, 53 by default. A name is refused: the resolver cannot be
/// found by resolving.
fn parse_dns_server(text: &str) -> Result<HostPort, String> {
    let trimmed = text.trim();
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(HostPort::from(SocketAddr::new(ip, DNS_PORT)));
    }
    let server = parse_host_port(text)?;
    if server.ip().is_none() {
        return Err(format!(
            "{text:?}: the host must be an IP address, since the DNS server cannot be found \
             through DNS"
        ));
    }
    Ok(server)
}

/// A tracing `EnvFilter`. A bare word that is not a level is refused even though
/// `EnvFilter` would take it as a target name: `warning` or `notice`, natural to a Redis
/// user, would otherwise silence every log line.
fn parse_log_level(text: String) -> Result<String, String> {
    let filter = text.trim();
    if filter.is_empty() {
        return Err("empty; use e.g. \"info\" or \"info,slotgate::topology=debug\"".to_owned());
    }
    for directive in filter.split(',').map(str::trim) {
        let bare_word = !directive.is_empty()
            && !directive.contains(['=', '[', ':'])
            && directive.parse::<LevelFilter>().is_err();
        if bare_word {
            return Err(format!(
                "{directive:?} is not a level: use trace, debug, info, warn, error or off \
                 (Redis's notice and verbose are info and debug, warning is warn), or \
                 target=level such as slotgate=debug"
            ));
        }
    }
    EnvFilter::builder()
        .parse(filter)
        .map(|_| filter.to_owned())
        .map_err(|why| format!("{text:?} is not a valid log filter: {why}"))
}
