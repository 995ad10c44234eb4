//! Commands slotgate answers itself, without asking a node.
//!
//! Connection state (`HELLO`, `SELECT`, `CLIENT SETNAME`, ...) belongs to the client's
//! session, since backend connections are shared (changes are mirrored into the shared
//! [`crate::clients::ClientRegistry`] so `CLIENT LIST` shows them); `INFO`, `SLOWLOG` and
//! `CLIENT LIST`/`KILL` describe the proxy from [`ProxyState`] (counters summed over
//! workers, the slow log, the client registry); and the `CLUSTER` family describes
//! slotgate as a one-node cluster owning all 16384 slots at its announced address, so
//! cluster-mode clients pointed at slotgate route everything here.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use crate::clients::{ClientEntry, ClientLine};
use crate::listener::Listener;
use crate::metrics::{CommandId, CommandOutcome, WorkerStats};
use crate::resp::ArgView;
use crate::resp::encode::{self, Protocol};
use crate::router::Local;
use crate::slot::key_slot;
use crate::state::ProxyState;

/// The Redis version slotgate claims in `HELLO` and `INFO`: the command set it serves.
pub const COMPAT_REDIS_VERSION: &str = "7.0.0";

/// Per-client state that would live on the server in a direct connection.
#[derive(Debug)]
pub struct ClientState {
    pub id: u64,
    pub protocol: Protocol,
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub connected_at: Instant,
    /// The authenticated user; `None` until AUTH when a password is required.
    pub user: Option<std::sync::Arc<crate::acl::User>>,
    /// `READWRITE` was sent: reads go to primaries whatever the read policy, until
    /// `READONLY` or `RESET` ([`crate::reads`]).
    pub reads_from_primary: bool,
}

/// What the session must do after a local command.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    Continue,
    Close,
}

/// Runs local command `cmd`, appending its reply to `out`.
pub fn execute(
    cmd: Local,
    args: &ArgView<'_>,
    client: &mut ClientState,
    state: &ProxyState,
    listener: &Listener,
    out: &mut BytesMut,
) -> After {
    let proto = client.protocol;
    match cmd {
        Local::Ping => match args.len() {
            1 => encode::simple(out, "PONG"),
            2 => encode::bulk(out, args.get(1).unwrap_or_default()),
            _ => wrong_arity(out, "ping"),
        },
        Local::Echo => match args.get(1) {
            Some(message) if args.len() == 2 => encode::bulk(out, message),
            _ => wrong_arity(out, "echo"),
        },
        Local::Quit => {
            encode::simple(out, "OK");
            return After::Close;
        }
        Local::Select => select(args, out),
        Local::Hello => {
            hello(args, client, listener, out);
            mirror_to_registry(client, state);
        }
        Local::Auth => auth(args, client, listener, out),
        Local::Reset => {
            client.protocol = Protocol::Resp2;
            client.name = None;
            client.reads_from_primary = false;
            mirror_to_registry(client, state);
            encode::simple(out, "RESET");
        }
        Local::Ok => encode::simple(out, "OK"),
        Local::ReadOnly | Local::ReadWrite => {
            client.reads_from_primary = cmd == Local::ReadWrite;
            encode::simple(out, "OK");
        }
        Local::Slowlog => slowlog(args, state, out),
        Local::ConfigGet => {
            let patterns: Vec<&[u8]> = args.iter().skip(2).collect();
            super::config_get::config_get(&patterns, &listener.config(), proto, out);
        }
        Local::Client => return client_command(args, client, state, listener, out),
        Local::Info => info(args, client, state, listener, out),
        Local::Cluster => cluster(args, listener, out, proto),
    }
    After::Continue
}

fn wrong_arity(out: &mut BytesMut, name: &str) {
    encode::error(
        out,
        &format!("ERR wrong number of arguments for '{name}' command"),
    );
}

fn select(args: &ArgView<'_>, out: &mut BytesMut) {
    match args.get(1) {
        Some(b"0") if args.len() == 2 => encode::simple(out, "OK"),
        Some(index) if args.len() == 2 => match std::str::from_utf8(index)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            Some(_) => encode::error(out, "ERR SELECT is not allowed in cluster mode"),
            None => encode::error(out, "ERR value is not an integer or out of range"),
        },
        _ => wrong_arity(out, "select"),
    }
}

/// Without configured users, every client is the default user with no password; Redis
/// answers `AUTH` in that case exactly like this.
/// `AUTH password` (the default user) or `AUTH username password`. The arguments are
/// never logged.
fn auth(args: &ArgView<'_>, client: &mut ClientState, listener: &Listener, out: &mut BytesMut) {
    let (user, password) = match (args.len(), args.get(1), args.get(2)) {
        (2, Some(password), _) => (None, password),
        (3, Some(user), Some(password)) => (Some(user), password),
        _ => return encode::error(out, "ERR syntax error"),
    };
    match listener.users.load().authenticate(user, password) {
        Ok(user) => {
            client.user = Some(user);
            encode::simple(out, "OK");
        }
        Err(e) => encode::error(out, &e.to_string()),
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`.
fn hello(args: &ArgView<'_>, client: &mut ClientState, listener: &Listener, out: &mut BytesMut) {
    let mut protocol = client.protocol;
    let mut name = None;
    let mut user = None;
    if let Some(version) = args.get(1) {
        match std::str::from_utf8(version)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
        {
            Some(2) => protocol = Protocol::Resp2,
            Some(3) => protocol = Protocol::Resp3,
            Some(_) => return encode::error(out, "NOPROTO unsupported protocol version"),
            None => {
                return encode::error(
                    out,
                    "ERR Protocol version is not an integer or out of range",
                );
            }
        }
    }
    let mut i = 2;
    while let Some(option) = args.get(i) {
        if option.eq_ignore_ascii_case(b"auth") && args.len() > i + 2 {
            let (username, password) = (args.get(i + 1), args.get(i + 2).unwrap_or_default());
            match listener.users.load().authenticate(username, password) {
                Ok(authenticated) => user = Some(authenticated),
                Err(e) => return encode::error(out, &e.to_string()),
            }
            i += 3;
        } else if option.eq_ignore_ascii_case(b"setname") && args.len() > i + 1 {
            let candidate = args.get(i + 1).unwrap_or_default();
            if !valid_client_name(candidate) {
                return encode::error(
                    out,
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            name = Some(Bytes::copy_from_slice(candidate));
            i += 2;
        } else {
            let option = String::from_utf8_lossy(option);
            return encode::error(out, &format!("ERR Syntax error in HELLO option '{option}'"));
        }
    }
    if user.is_none() && client.user.is_none() {
        return encode::error(
            out,
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
    }
    if user.is_some() {
        client.user = user;
    }
    client.protocol = protocol;
    if name.is_some() {
        client.name = name;
    }
    encode::map_header(out, 7, protocol);
    encode::bulk(out, b"server");
    encode::bulk(out, b"redis");
    encode::bulk(out, b"version");
    encode::bulk(out, COMPAT_REDIS_VERSION.as_bytes());
    encode::bulk(out, b"proto");
    encode::integer(out, protocol.version());
    encode::bulk(out, b"id");
    encode::integer(out, client.id as i64);
    encode::bulk(out, b"mode");
    encode::bulk(out, b"standalone");
    encode::bulk(out, b"role");
    encode::bulk(out, b"master");
    encode::bulk(out, b"modules");
    encode::array_header(out, 0);
}

/// Redis accepts names of printable ASCII without spaces.
fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn client_command(
    args: &ArgView<'_>,
    client: &mut ClientState,
    state: &ProxyState,
    listener: &Listener,
    out: &mut BytesMut,
) -> After {
    let Some(sub) = args.get(1) else {
        wrong_arity(out, "client");
        return After::Continue;
    };
    let sub = sub.to_ascii_lowercase();
    match (sub.as_slice(), args.len()) {
        (b"id", 2) => encode::integer(out, client.id as i64),
        (b"getname", 2) => match &client.name {
            Some(name) => encode::bulk(out, name),
            None => encode::null(out, client.protocol),
        },
        (b"setname", 3) => {
            let name = args.get(2).unwrap_or_default();
            if !valid_client_name(name) {
                encode::error(
                    out,
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
                return After::Continue;
            }
            client.name = (!name.is_empty()).then(|| Bytes::copy_from_slice(name));
            mirror_to_registry(client, state);
            encode::simple(out, "OK");
        }
        (b"setinfo", 4) => {
            let attr = args.get(2).unwrap_or_default().to_ascii_lowercase();
            let value = args.get(3).unwrap_or_default();
            if !valid_client_name(value) && !value.is_empty() {
                encode::error(
                    out,
                    "ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.",
                );
                return After::Continue;
            }
            let value = (!value.is_empty()).then(|| Bytes::copy_from_slice(value));
            match attr.as_slice() {
                b"lib-name" => client.lib_name = value,
                b"lib-ver" => client.lib_ver = value,
                _ => {
                    let attr = String::from_utf8_lossy(&attr);
                    encode::error(out, &format!("ERR Unrecognized option '{attr}'"));
                    return After::Continue;
                }
            }
            mirror_to_registry(client, state);
            encode::simple(out, "OK");
        }
        (b"info", 2) => {
            let line = client_info_line(client);
            encode::text(out, line.as_bytes(), client.protocol);
        }
        (b"list", _) => client_list(args, client, state, listener, out),
        (b"kill", 3..) => return client_kill(args, client, state, listener, out),
        (b"tracking", _) => encode::error(
            out,
            "ERR slotgate does not support CLIENT TRACKING: invalidations cannot be routed back through shared node connections",
        ),
        (b"id" | b"getname" | b"setname" | b"setinfo" | b"info" | b"kill", _) => {
            let sub = String::from_utf8_lossy(&sub);
            wrong_arity(out, &format!("client|{sub}"));
        }
        _ => {
            let sub = String::from_utf8_lossy(&sub).to_uppercase();
            encode::error(
                out,
                &format!(
                    "ERR slotgate does not support 'CLIENT {sub}': client state is kept per proxy connection and only ID, GETNAME, SETNAME, SETINFO, INFO, LIST and KILL are served"
                ),
            );
        }
    }
    After::Continue
}

/// Copies what `CLIENT LIST` shows of this client into the shared registry (after a
/// change of name, library or protocol: rare, so a lookup is fine).
fn mirror_to_registry(client: &ClientState, state: &ProxyState) {
    if let Some(entry) = state.client_list.get(client.id) {
        entry.set_name(client.name.as_deref());
        entry.set_lib_name(client.lib_name.as_deref());
        entry.set_lib_ver(client.lib_ver.as_deref());
        entry.set_protocol(client.protocol.version() as u8);
    }
}

/// `CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id [id ...]]`: every client of
/// the caller's listener on every worker, by id.
fn client_list(
    args: &ArgView<'_>,
    client: &ClientState,
    state: &ProxyState,
    listener: &Listener,
    out: &mut BytesMut,
) {
    let mut ids: Option<Vec<u64>> = None;
    let mut i = 2;
    while let Some(option) = args.get(i) {
        if option.eq_ignore_ascii_case(b"type") && args.len() == i + 2 {
            let kind = args.get(i + 1).unwrap_or_default().to_ascii_lowercase();
            match kind.as_slice() {
                // Every slotgate client is a normal one; pub/sub and replication
                // connections are not kept by slotgate.
                b"normal" => {}
                b"master" | b"replica" | b"slave" | b"pubsub" => ids = Some(Vec::new()),
                _ => {
                    let kind = String::from_utf8_lossy(&kind);
                    return encode::error(out, &format!("ERR Unknown client type '{kind}'"));
                }
            }
            i += 2;
        } else if option.eq_ignore_ascii_case(b"id") && args.len() > i + 1 {
            let mut list = Vec::new();
            for raw in args.iter().skip(i + 1) {
                match parse_u64(raw) {
                    Some(id) if id > 0 => list.push(id),
                    _ => return encode::error(out, "ERR Invalid client ID"),
                }
            }
            ids = Some(list);
            i = args.len();
        } else {
            return encode::error(out, "ERR syntax error");
        }
    }
    let now = Instant::now();
    let mut text = String::new();
    for entry in state.client_list.all() {
        if ids.as_ref().is_some_and(|ids| !ids.contains(&entry.id))
            || *entry.listener != *listener.name
        {
            continue;
        }
        let cmd = (entry.id == client.id).then_some("client|list");
        text.push_str(&entry.line(now, cmd));
    }
    encode::text(out, text.as_bytes(), client.protocol);
}

/// `CLIENT KILL ip:port` (answers `+OK`) or `CLIENT KILL <filter> <value> ...` (answers
/// the number killed) with the filters ID, ADDR, LADDR, TYPE, USER, SKIPME and MAXAGE.
/// Killing the caller itself closes its connection after the reply.
fn client_kill(
    args: &ArgView<'_>,
    client: &ClientState,
    state: &ProxyState,
    listener: &Listener,
    out: &mut BytesMut,
) -> After {
    let now = Instant::now();
    // A listener's clients can reach only its own clients, like separate servers.
    let mut entries = state.client_list.all();
    entries.retain(|entry| *entry.listener == *listener.name);
    if args.len() == 3 {
        let addr = String::from_utf8_lossy(args.get(2).unwrap_or_default()).into_owned();
        return match entries.iter().find(|e| e.peer.to_string() == addr) {
            Some(entry) => {
                encode::simple(out, "OK");
                kill(entry, client)
            }
            None => {
                encode::error(out, "ERR No such client");
                After::Continue
            }
        };
    }
    if !args.len().is_multiple_of(2) {
        encode::error(out, "ERR syntax error");
        return After::Continue;
    }
    let mut filters: Vec<Filter> = Vec::new();
    let mut skip_me = true;
    let mut i = 2;
    while let (Some(name), Some(value)) = (args.get(i), args.get(i + 1)) {
        let name = name.to_ascii_lowercase();
        let text = String::from_utf8_lossy(value).into_owned();
        match name.as_slice() {
            b"id" => match parse_u64(value) {
                Some(id) if id > 0 => filters.push(Box::new(move |e| e.id == id)),
                _ => {
                    encode::error(out, "ERR client-id should be greater than 0");
                    return After::Continue;
                }
            },
            b"addr" => filters.push(Box::new(move |e| e.peer.to_string() == text)),
            b"laddr" => filters.push(Box::new(move |e| e.local.to_string() == text)),
            b"type" => match text.to_ascii_lowercase().as_str() {
                "normal" => {}
                "master" | "replica" | "slave" | "pubsub" => filters.push(Box::new(|_| false)),
                _ => {
                    encode::error(out, &format!("ERR Unknown client type '{text}'"));
                    return After::Continue;
                }
            },
            b"user" => {
                let default = text == "default";
                filters.push(Box::new(move |_| default));
            }
            b"skipme" => match text.to_ascii_lowercase().as_str() {
                "yes" => skip_me = true,
                "no" => skip_me = false,
                _ => {
                    encode::error(out, "ERR syntax error");
                    return After::Continue;
                }
            },
            b"maxage" => match parse_u64(value) {
                Some(max) => filters.push(Box::new(move |e| e.age(now) >= max)),
                None => {
                    encode::error(out, "ERR syntax error");
                    return After::Continue;
                }
            },
            _ => {
                encode::error(out, "ERR syntax error");
                return After::Continue;
            }
        }
        i += 2;
    }
    let mut after = After::Continue;
    let mut killed = 0;
    for entry in &entries {
        if skip_me && entry.id == client.id {
            continue;
        }
        if filters.iter().all(|f| f(entry)) {
            killed += 1;
            if kill(entry, client) == After::Close {
                after = After::Close;
            }
        }
    }
    encode::integer(out, killed);
    after
}

/// One `CLIENT KILL` filter.
type Filter = Box<dyn Fn(&ClientEntry) -> bool>;

/// Kills `entry`; the caller itself is closed by its own session after the reply instead.
fn kill(entry: &ClientEntry, client: &ClientState) -> After {
    if entry.id == client.id {
        After::Close
    } else {
        entry.kill();
        After::Continue
    }
}

fn parse_u64(raw: &[u8]) -> Option<u64> {
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// One `CLIENT INFO` line, in Redis's field format.
fn client_info_line(client: &ClientState) -> String {
    let text = |b: &Option<Bytes>| b.as_deref().unwrap_or_default().to_vec();
    let (name, lib_name, lib_ver) = (
        text(&client.name),
        text(&client.lib_name),
        text(&client.lib_ver),
    );
    ClientLine {
        id: client.id,
        addr: client.peer,
        laddr: client.local,
        name: &name,
        age: client.connected_at.elapsed().as_secs(),
        idle: 0,
        cmd: "client|info",
        resp: client.protocol.version() as u8,
        lib_name: &lib_name,
        lib_ver: &lib_ver,
        // Not tracked for the caller's own line: CLIENT LIST shows the figures.
        qbuf: 0,
        omem: 0,
        tot_mem: 0,
    }
    .format()
}

/// `SLOWLOG GET [count] | LEN | RESET | HELP`, over the slow log shared by all workers.
/// Entries are `[id, unix time, microseconds, [args...], client addr, client name]`,
/// as in Redis 7.
pub fn slowlog(args: &ArgView<'_>, state: &ProxyState, out: &mut BytesMut) {
    let sub = args.get(1).unwrap_or_default().to_ascii_lowercase();
    match (sub.as_slice(), args.len()) {
        (b"get", 2 | 3) => {
            let count = match args.get(2) {
                None => Some(10),
                Some(raw) => match std::str::from_utf8(raw)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                {
                    Some(-1) => None,
                    Some(n) if n >= 0 => Some(n as usize),
                    _ => {
                        return encode::error(
                            out,
                            "ERR count should be greater than or equal to -1",
                        );
                    }
                },
            };
            let entries = state.slowlog.get(count);
            encode::array_header(out, entries.len());
            for entry in entries {
                encode::array_header(out, 6);
                encode::integer(out, entry.id as i64);
                encode::integer(out, entry.unix_secs as i64);
                encode::integer(out, i64::try_from(entry.duration_us).unwrap_or(i64::MAX));
                encode::array_header(out, entry.args.len());
                for arg in &entry.args {
                    encode::bulk(out, arg);
                }
                encode::bulk(out, entry.client_addr.as_bytes());
                encode::bulk(out, &entry.client_name);
            }
        }
        (b"len", 2) => encode::integer(out, state.slowlog.len() as i64),
        (b"reset", 2) => {
            state.slowlog.reset();
            encode::simple(out, "OK");
        }
        (b"help", 2) => {
            let lines = [
                "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
                "HELP",
                "    Print this help.",
            ];
            encode::array_header(out, lines.len());
            for line in lines {
                encode::simple(out, line);
            }
        }
        (b"get" | b"len" | b"reset" | b"help", _) => {
            let sub = String::from_utf8_lossy(&sub);
            wrong_arity(out, &format!("slowlog|{sub}"));
        }
        (b"", _) => wrong_arity(out, "slowlog"),
        _ => {
            let sub = String::from_utf8_lossy(args.get(1).unwrap_or_default()).into_owned();
            encode::error(
                out,
                &format!("ERR unknown subcommand '{sub}'. Try SLOWLOG HELP."),
            );
        }
    }
}

/// `INFO [section ...]`: slotgate's own sections in Redis's `field:value` format.
///
/// Redis's sections where they make sense for a proxy (server, clients, persistence, stats,
/// replication, commandstats, cluster) and slotgate's own (proxy, topology); there is no
/// keyspace section, since slotgate holds no keys. `commandstats` is only in `all`,
/// `everything` or when named, as in Redis.
fn info(
    args: &ArgView<'_>,
    client: &ClientState,
    state: &ProxyState,
    listener: &Listener,
    out: &mut BytesMut,
) {
    let text = info_text(args, state, listener);
    encode::text(out, text.trim_end().as_bytes(), client.protocol);
}

/// True when `INFO args` asks for the keyspace section (the default does).
pub fn info_wants_keyspace(args: &ArgView<'_>) -> bool {
    args.len() == 1
        || args.iter().skip(1).any(|s| {
            ["keyspace", "default", "all", "everything"]
                .iter()
                .any(|name| s.eq_ignore_ascii_case(name.as_bytes()))
        })
}

/// The `INFO` text: process-wide sections from `state`, the client and topology ones from
/// the session's `listener` and its upstream.
pub fn info_text(args: &ArgView<'_>, state: &ProxyState, listener: &Listener) -> String {
    let upstream = &*listener.upstream;
    use std::fmt::Write;
    use std::sync::atomic::Ordering;

    let wanted: Vec<String> = args
        .iter()
        .skip(1)
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    let everything = wanted
        .iter()
        .any(|s| matches!(s.as_str(), "all" | "everything"));
    let default = wanted.is_empty() || everything || wanted.iter().any(|s| s == "default");
    let want = |section: &str| default || wanted.iter().any(|s| s == section);
    let config = listener.config();
    let mut text = String::new();
    let total = |c: fn(&WorkerStats) -> &std::sync::atomic::AtomicU64| state.total(c);
    let metric_sum = |f: fn(&crate::metrics::WorkerMetrics) -> u64| -> u64 {
        state.workers.iter().map(|w| f(&w.metrics)).sum()
    };
    let uptime = state.started.elapsed().as_secs();
    // `write!` to a String cannot fail.
    if want("server") {
        let _ = write!(
            text,
            "# Server\r\nredis_version:{COMPAT_REDIS_VERSION}\r\nredis_mode:standalone\r\nslotgate_version:{}\r\nslotgate_mode:{}\r\nslotgate_listener:{}\r\nslotgate_backend:{}\r\nos:{} {}\r\narch_bits:{}\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nio_threads_active:{}\r\nconfig_file:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            upstream.shape.name(),
            listener.name,
            upstream.name,
            std::env::consts::OS,
            std::env::consts::ARCH,
            usize::BITS,
            std::process::id(),
            listener.node_id,
            config.listen.port(),
            crate::clock::unix_ms() * 1000,
            uptime / 86_400,
            config.threads,
            config
                .config_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        );
    }
    if want("clients") {
        let _ = write!(
            text,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\ntracking_clients:0\r\nbuffered_bytes:{}\r\n\r\n",
            listener.clients.load(Ordering::Relaxed),
            config.maxclients,
            metric_sum(|m| m.buffered()),
        );
    }
    if want("persistence") {
        // Clients such as ioredis wait for `loading:0` before sending commands.
        text.push_str("# Persistence\r\nloading:0\r\nasync_loading:0\r\n\r\n");
    }
    if want("stats") {
        let mut errors = 0;
        for index in 0..CommandId::COUNT {
            let id = CommandId(index as u16);
            for outcome in [
                CommandOutcome::Error,
                CommandOutcome::Rejected,
                CommandOutcome::Failed,
            ] {
                errors += state
                    .workers
                    .iter()
                    .map(|w| w.metrics.calls(id, outcome))
                    .sum::<u64>();
            }
        }
        let _ = write!(
            text,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\ntotal_error_replies:{errors}\r\nslowlog_len:{}\r\n\r\n",
            total(|w| &w.connections_accepted),
            total(|w| &w.commands),
            metric_sum(|m| m.client_bytes_in()),
            metric_sum(|m| m.client_bytes_out()),
            total(|w| &w.connections_rejected),
            state.slowlog.len(),
        );
    }
    if want("replication") {
        text.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n");
    }
    let topo = upstream.topology.load();
    if want("proxy") {
        let _ = write!(
            text,
            "# Proxy\r\nthreads:{}\r\nready:{}\r\nreadiness:{}\r\ndraining:{}\r\nslot_map_generation:{}\r\nslot_map_epoch:{}\r\nlast_refresh_unix_ms:{}\r\nslots_covered:{}\r\nshards:{}\r\ncommands_local:{}\r\ncommands_rejected:{}\r\nredirects_moved:{}\r\nredirects_ask:{}\r\nretries:{}\r\nbackend_errors:{}\r\nprotocol_errors:{}\r\ncommand_table_size:{}\r\nconfig_reloads:{}\r\nconfig_reloads_failed:{}\r\n\r\n",
            config.threads,
            u8::from(upstream.ready.load(Ordering::Relaxed)),
            match state.readiness() {
                crate::state::Readiness::Starting => "starting",
                crate::state::Readiness::Draining => "draining",
                crate::state::Readiness::Degraded => "degraded",
                crate::state::Readiness::Ready => "ready",
            },
            u8::from(state.is_draining()),
            topo.generation,
            topo.epoch,
            upstream.last_refresh_unix_ms.load(Ordering::Relaxed),
            topo.covered_slots(),
            topo.shards().len(),
            total(|w| &w.commands_local),
            total(|w| &w.commands_rejected),
            total(|w| &w.redirects_moved),
            total(|w| &w.redirects_ask),
            total(|w| &w.retries),
            total(|w| &w.backend_errors),
            total(|w| &w.protocol_errors),
            upstream.commands.load().len(),
            state.metrics.reloads(true),
            state.metrics.reloads(false),
        );
    }
    if want("topology") {
        let replicas: usize = topo.shards().iter().map(|s| s.replicas.len()).sum();
        let _ = write!(
            text,
            "# Topology\r\ncomplete:{}\r\nepoch:{}\r\ngeneration:{}\r\nsource:{}\r\nprimaries:{}\r\nreplicas:{replicas}\r\n",
            u8::from(topo.is_complete()),
            topo.epoch,
            topo.generation,
            topo.source
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            topo.shards().len(),
        );
        for (index, shard) in topo.shards().iter().enumerate() {
            let slots: Vec<String> = topo
                .ranges_of(index)
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            let replicas: Vec<String> = shard
                .replicas
                .iter()
                .map(|r| r.endpoint.to_string())
                .collect();
            let _ = write!(
                text,
                "shard{index}:primary={},id={},replicas={},slots={}\r\n",
                shard.primary.endpoint,
                shard.primary.id,
                replicas.join("|"),
                slots.join("|"),
            );
        }
        text.push_str("\r\n");
    }
    if want("sentinel")
        && let Some(section) = upstream.sentinel.info_section()
    {
        text.push_str(&section);
    }
    if everything || wanted.iter().any(|s| s == "commandstats") {
        text.push_str("# Commandstats\r\n");
        for index in 0..CommandId::COUNT {
            let id = CommandId(index as u16);
            let count = |outcome| -> u64 {
                state
                    .workers
                    .iter()
                    .map(|w| w.metrics.calls(id, outcome))
                    .sum()
            };
            let (ok, error, rejected, failed) = (
                count(CommandOutcome::Ok),
                count(CommandOutcome::Error),
                count(CommandOutcome::Rejected),
                count(CommandOutcome::Failed),
            );
            let calls = ok + error + failed;
            if calls + rejected == 0 {
                continue;
            }
            let usec: u64 = state.workers.iter().map(|w| w.metrics.usec(id)).sum();
            let per_call = if calls + rejected == 0 {
                0.0
            } else {
                usec as f64 / (calls + rejected) as f64
            };
            let _ = write!(
                text,
                "cmdstat_{}:calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls={rejected},failed_calls={}\r\n",
                id.name(),
                error + failed,
            );
        }
        text.push_str("\r\n");
    }
    if want("cluster") {
        text.push_str("# Cluster\r\ncluster_enabled:0\r\n\r\n");
    }
    text
}

/// The `CLUSTER` emulation: a one-node cluster at the announced address.
fn cluster(args: &ArgView<'_>, listener: &Listener, out: &mut BytesMut, proto: Protocol) {
    let sub = args.get(1).unwrap_or_default().to_ascii_lowercase();
    let config = listener.config();
    let host = &config.announce.host;
    let port = i64::from(config.announce.port);
    let id = listener.node_id.as_bytes();
    match sub.as_slice() {
        b"info" => {
            let text = "cluster_enabled:1\r\ncluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:1\r\ncluster_size:1\r\ncluster_current_epoch:1\r\ncluster_my_epoch:1\r\n";
            encode::text(out, text.as_bytes(), proto);
        }
        b"myid" | b"myshardid" => encode::bulk(out, id),
        b"keyslot" => match (args.get(2), args.len()) {
            (Some(key), 3) => encode::integer(out, i64::from(key_slot(key))),
            _ => wrong_arity(out, "cluster|keyslot"),
        },
        b"slots" => {
            encode::array_header(out, 1);
            encode::array_header(out, 3);
            encode::integer(out, 0);
            encode::integer(out, 16383);
            encode::array_header(out, 4);
            encode::bulk(out, host.as_bytes());
            encode::integer(out, port);
            encode::bulk(out, id);
            encode::map_header(out, 0, proto);
        }
        b"shards" => {
            encode::array_header(out, 1);
            encode::map_header(out, 2, proto);
            encode::bulk(out, b"slots");
            encode::array_header(out, 2);
            encode::integer(out, 0);
            encode::integer(out, 16383);
            encode::bulk(out, b"nodes");
            encode::array_header(out, 1);
            encode::map_header(out, 7, proto);
            encode::bulk(out, b"id");
            encode::bulk(out, id);
            encode::bulk(out, b"port");
            encode::integer(out, port);
            encode::bulk(out, b"ip");
            encode::bulk(out, host.as_bytes());
            encode::bulk(out, b"endpoint");
            encode::bulk(out, host.as_bytes());
            encode::bulk(out, b"role");
            encode::bulk(out, b"master");
            encode::bulk(out, b"replication-offset");
            encode::integer(out, 0);
            encode::bulk(out, b"health");
            encode::bulk(out, b"online");
        }
        b"nodes" => {
            let line = format!(
                "{} {}@0 myself,master - 0 0 1 connected 0-16383\n",
                listener.node_id, config.announce
            );
            encode::text(out, line.as_bytes(), proto);
        }
        b"help" => {
            let lines: &[&[u8]] = &[
                b"CLUSTER <subcommand> as answered by slotgate, a one-node view of the cluster:",
                b"INFO, SLOTS, SHARDS, NODES, MYID, MYSHARDID, KEYSLOT <key>, COUNTKEYSINSLOT <slot>, GETKEYSINSLOT <slot> <count>",
            ];
            encode::array_header(out, lines.len());
            for line in lines {
                encode::simple(out, &String::from_utf8_lossy(line));
            }
        }
        _ => encode::error(out, "ERR unknown CLUSTER subcommand for slotgate"),
    }
}
