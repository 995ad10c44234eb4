//! Commands slotgate answers itself, without asking a node.
//!
//! Connection state (`HELLO`, `SELECT`, `CLIENT SETNAME`, ...) belongs to the client's
//! session, since backend connections are shared; `INFO` describes the proxy; and the
//! `CLUSTER` family describes slotgate as a one-node cluster owning all 16384 slots at its
//! announced address, so cluster-mode clients pointed at slotgate route everything here.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use crate::resp::ArgView;
use crate::resp::encode::{self, Protocol};
use crate::router::Local;
use crate::slot::key_slot;
use crate::state::{ProxyState, WorkerStats};

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
        Local::Hello => hello(args, client, out),
        Local::Auth => auth(args, out),
        Local::Reset => {
            client.protocol = Protocol::Resp2;
            client.name = None;
            encode::simple(out, "RESET");
        }
        Local::Ok => encode::simple(out, "OK"),
        Local::Client => client_command(args, client, state, out),
        Local::Info => info(args, client, state, out),
        Local::Cluster => cluster(args, state, out, proto),
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
fn auth(args: &ArgView<'_>, out: &mut BytesMut) {
    match args.len() {
        2 => encode::error(
            out,
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ),
        3 if args.get(1).is_some_and(|u| u == b"default") => encode::simple(out, "OK"),
        3 => encode::error(
            out,
            "WRONGPASS invalid username-password pair or user is disabled.",
        ),
        _ => encode::error(out, "ERR syntax error"),
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`.
fn hello(args: &ArgView<'_>, client: &mut ClientState, out: &mut BytesMut) {
    let mut protocol = client.protocol;
    let mut name = None;
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
            if args.get(i + 1) != Some(b"default") {
                return encode::error(
                    out,
                    "WRONGPASS invalid username-password pair or user is disabled.",
                );
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
    out: &mut BytesMut,
) {
    let Some(sub) = args.get(1) else {
        return wrong_arity(out, "client");
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
                return encode::error(
                    out,
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            client.name = (!name.is_empty()).then(|| Bytes::copy_from_slice(name));
            encode::simple(out, "OK");
        }
        (b"setinfo", 4) => {
            let attr = args.get(2).unwrap_or_default().to_ascii_lowercase();
            let value = args.get(3).unwrap_or_default();
            if !valid_client_name(value) && !value.is_empty() {
                return encode::error(
                    out,
                    "ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.",
                );
            }
            let value = (!value.is_empty()).then(|| Bytes::copy_from_slice(value));
            match attr.as_slice() {
                b"lib-name" => client.lib_name = value,
                b"lib-ver" => client.lib_ver = value,
                _ => {
                    let attr = String::from_utf8_lossy(&attr);
                    return encode::error(out, &format!("ERR Unrecognized option '{attr}'"));
                }
            }
            encode::simple(out, "OK");
        }
        (b"info", 2) => {
            let line = client_info_line(client, state);
            encode::text(out, line.as_bytes(), client.protocol);
        }
        (b"tracking", _) => encode::error(
            out,
            "ERR slotgate does not support CLIENT TRACKING: invalidations cannot be routed back through shared node connections",
        ),
        (b"id" | b"getname" | b"setname" | b"setinfo" | b"info", _) => {
            let sub = String::from_utf8_lossy(&sub);
            wrong_arity(out, &format!("client|{sub}"));
        }
        _ => {
            let sub = String::from_utf8_lossy(&sub).to_uppercase();
            encode::error(
                out,
                &format!(
                    "ERR slotgate does not support 'CLIENT {sub}': client state is kept per proxy connection and only ID, GETNAME, SETNAME, SETINFO and INFO are served"
                ),
            );
        }
    }
}

/// One `CLIENT INFO` line, in Redis's field format.
fn client_info_line(client: &ClientState, state: &ProxyState) -> String {
    let text = |b: &Option<Bytes>| {
        b.as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    let _ = state;
    format!(
        "id={} addr={} laddr={} fd=-1 name={} age={} idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=client|info user=default redir=-1 resp={} lib-name={} lib-ver={}\n",
        client.id,
        client.peer,
        client.local,
        text(&client.name),
        client.connected_at.elapsed().as_secs(),
        client.protocol.version(),
        text(&client.lib_name),
        text(&client.lib_ver),
    )
}

/// `INFO [section ...]`: slotgate's own sections in Redis's `field:value` format.
fn info(args: &ArgView<'_>, client: &ClientState, state: &ProxyState, out: &mut BytesMut) {
    let wanted: Vec<String> = args
        .iter()
        .skip(1)
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|s| matches!(s.as_str(), "all" | "everything" | "default"));
    let want = |section: &str| all || wanted.iter().any(|s| s == section);
    let mut text = String::new();
    let total = |c: fn(&WorkerStats) -> &std::sync::atomic::AtomicU64| state.total(c);
    if want("server") {
        text.push_str(&format!(
            "# Server\r\nredis_version:{COMPAT_REDIS_VERSION}\r\nredis_mode:standalone\r\nslotgate_version:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nio_threads_active:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            state.config.listen.port(),
            state.started.elapsed().as_secs(),
            state.config.threads,
        ));
    }
    if want("clients") {
        text.push_str(&format!(
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n",
            total(|w| &w.connections_current),
            state.config.maxclients,
        ));
    }
    if want("persistence") {
        // Clients such as ioredis wait for `loading:0` before sending commands.
        text.push_str("# Persistence\r\nloading:0\r\n\r\n");
    }
    if want("stats") {
        text.push_str(&format!(
            "# Stats\r\ntotal_connections_received:{}\r\nrejected_connections:{}\r\ntotal_commands_processed:{}\r\n\r\n",
            total(|w| &w.connections_accepted),
            total(|w| &w.connections_rejected),
            total(|w| &w.commands),
        ));
    }
    if want("proxy") {
        let topo = state.topology.load();
        text.push_str(&format!(
            "# Proxy\r\nthreads:{}\r\nready:{}\r\nslot_map_generation:{}\r\nslot_map_epoch:{}\r\nlast_refresh_unix_ms:{}\r\nslots_covered:{}\r\nshards:{}\r\ncommands_local:{}\r\ncommands_rejected:{}\r\nredirects_moved:{}\r\nredirects_ask:{}\r\nretries:{}\r\nbackend_errors:{}\r\nprotocol_errors:{}\r\ncommand_table_size:{}\r\n\r\n",
            state.config.threads,
            u8::from(state.ready.load(std::sync::atomic::Ordering::Relaxed)),
            topo.generation,
            topo.epoch,
            state.last_refresh_unix_ms.load(std::sync::atomic::Ordering::Relaxed),
            topo.covered_slots(),
            topo.shards().len(),
            total(|w| &w.commands_local),
            total(|w| &w.commands_rejected),
            total(|w| &w.redirects_moved),
            total(|w| &w.redirects_ask),
            total(|w| &w.retries),
            total(|w| &w.backend_errors),
            total(|w| &w.protocol_errors),
            state.commands.load().len(),
        ));
    }
    if want("cluster") {
        text.push_str("# Cluster\r\ncluster_enabled:0\r\n\r\n");
    }
    encode::text(out, text.trim_end().as_bytes(), client.protocol);
}

/// The `CLUSTER` emulation: a one-node cluster at the announced address.
fn cluster(args: &ArgView<'_>, state: &ProxyState, out: &mut BytesMut, proto: Protocol) {
    let sub = args.get(1).unwrap_or_default().to_ascii_lowercase();
    let host = &state.config.announce.host;
    let port = i64::from(state.config.announce.port);
    let id = state.node_id.as_bytes();
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
                state.node_id, state.config.announce
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
