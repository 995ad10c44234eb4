//! Where a request goes.
//!
//! [`route`] looks at a scanned request and decides: answer it inside slotgate
//! ([`Route::Local`]), forward it to the primary of one slot ([`Route::Slot`]) or to any
//! primary ([`Route::AnyPrimary`]), or refuse it with a clear error ([`Route::Error`]) while
//! the connection stays usable. Key positions come from the [`CommandTable`]; the slot is
//! the one all keys share, or the request is `CROSSSLOT`, exactly as Redis Cluster answers.

use std::borrow::Cow;

use crate::commands::{CommandFlags, CommandTable};
use crate::resp::ArgView;
use crate::slot::key_slot;

/// Commands slotgate answers itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Local {
    Ping,
    Echo,
    Quit,
    Select,
    Hello,
    Auth,
    Reset,
    Client,
    Cluster,
    Info,
    /// `READONLY`, `READWRITE`, `ASKING`: cluster-client courtesies that need no action,
    /// since slotgate itself follows redirects and reads from primaries.
    Ok,
}

/// The routing decision for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Local(Local),
    Slot(u16),
    AnyPrimary,
    /// A full error line without the leading `-`, e.g. `CROSSSLOT Keys ...`.
    Error(Cow<'static, str>),
}

pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// Longest command name matched by the local tables below.
const MAX_LOCAL_NAME: usize = 16;

/// Decides where `args` goes. `args[0]` is the command name.
pub fn route(table: &CommandTable, args: &ArgView<'_>) -> Route {
    let Some(name) = args.get(0) else {
        return Route::Error(Cow::Borrowed("ERR empty command"));
    };
    let mut lower = [0u8; MAX_LOCAL_NAME];
    if name.len() <= MAX_LOCAL_NAME {
        let lower = &mut lower[..name.len()];
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        if let Some(route) = route_by_name(lower, args) {
            return route;
        }
    }
    let Some(spec) = table.lookup(args) else {
        return Route::Error(Cow::Owned(unknown_command(args)));
    };
    if !spec.arity_ok(args.len()) {
        return Route::Error(Cow::Owned(format!(
            "ERR wrong number of arguments for '{}' command",
            spec.name
        )));
    }
    if spec.flags.contains(CommandFlags::BLOCKING)
        && blocks(&lower[..name.len().min(MAX_LOCAL_NAME)], args)
    {
        return Route::Error(Cow::Owned(format!(
            "ERR slotgate does not support blocking command '{}' yet: it would stall a connection shared with other clients",
            spec.name
        )));
    }
    let mut slot: Option<u16> = None;
    let mut crossed = false;
    let found = spec.for_each_key(args, |index| {
        let Some(key) = args.get(index) else { return };
        let this = key_slot(key);
        match slot {
            None => slot = Some(this),
            Some(s) if s != this => crossed = true,
            Some(_) => {}
        }
    });
    match (found, crossed, slot) {
        // Malformed key arguments: let a server produce its own, exact error.
        (Err(_), _, _) => Route::AnyPrimary,
        (Ok(()), true, _) => Route::Error(Cow::Borrowed(CROSSSLOT)),
        (Ok(()), false, Some(slot)) => Route::Slot(slot),
        (Ok(()), false, None) => Route::AnyPrimary,
    }
}

/// XREAD and XREADGROUP only block with a BLOCK argument; every other command flagged
/// blocking always may.
fn blocks(lower_name: &[u8], args: &ArgView<'_>) -> bool {
    match lower_name {
        b"xread" | b"xreadgroup" => args
            .iter()
            .skip(1)
            .any(|a| a.eq_ignore_ascii_case(b"block")),
        _ => true,
    }
}

/// Routes decided by the command name alone: local commands and deliberate refusals.
fn route_by_name(lower: &[u8], args: &ArgView<'_>) -> Option<Route> {
    let local = |l| Some(Route::Local(l));
    match lower {
        b"ping" => local(Local::Ping),
        b"echo" => local(Local::Echo),
        b"quit" => local(Local::Quit),
        b"select" => local(Local::Select),
        b"hello" => local(Local::Hello),
        b"auth" => local(Local::Auth),
        b"reset" => local(Local::Reset),
        b"client" => local(Local::Client),
        b"info" => local(Local::Info),
        b"readonly" | b"readwrite" | b"asking" => local(Local::Ok),
        b"cluster" => Some(route_cluster(args)),
        b"wait" | b"waitaof" => refuse(
            "ERR slotgate does not support WAIT/WAITAOF yet: replication acknowledgement is per node connection",
        ),
        b"multi" | b"exec" | b"discard" | b"watch" | b"unwatch" => refuse(
            "ERR slotgate does not support transactions yet: MULTI/EXEC/WATCH need a connection pinned to one node",
        ),
        b"subscribe" | b"psubscribe" | b"unsubscribe" | b"punsubscribe" | b"ssubscribe"
        | b"sunsubscribe" => refuse(
            "ERR slotgate does not support subscriptions yet: they need a dedicated connection",
        ),
        b"monitor" => {
            refuse("ERR slotgate does not support MONITOR: it would mirror one node only")
        }
        b"keys" | b"scan" | b"dbsize" | b"randomkey" | b"flushall" | b"flushdb" | b"script"
        | b"function" | b"pubsub" | b"slowlog" | b"latency" | b"config" | b"save" | b"bgsave"
        | b"bgrewriteaof" | b"lastsave" | b"memory" | b"swapdb" | b"move" => {
            route_node_wide(lower, args)
        }
        b"shutdown" | b"debug" | b"failover" | b"replicaof" | b"slaveof" | b"sync" | b"psync"
        | b"module" | b"acl" | b"migrate" | b"restore-asking" => {
            Some(Route::Error(Cow::Owned(format!(
                "ERR slotgate refuses '{}': it administers a single node; run it on the nodes directly",
                String::from_utf8_lossy(lower)
            ))))
        }
        _ => None,
    }
}

fn refuse(message: &'static str) -> Option<Route> {
    Some(Route::Error(Cow::Borrowed(message)))
}

/// Commands whose answer depends on every node. Until they fan out, refuse them rather
/// than answer for one node only; `MEMORY USAGE key` is keyed, so it routes normally.
fn route_node_wide(lower: &[u8], args: &ArgView<'_>) -> Option<Route> {
    if lower == b"memory"
        && args
            .get(1)
            .is_some_and(|s| s.eq_ignore_ascii_case(b"usage"))
    {
        return None;
    }
    if lower == b"swapdb" || lower == b"move" {
        return refuse("ERR slotgate refuses SWAPDB and MOVE: Redis Cluster has database 0 only");
    }
    Some(Route::Error(Cow::Owned(format!(
        "ERR slotgate does not support '{}' yet: its answer spans every node of the cluster",
        String::from_utf8_lossy(lower)
    ))))
}

/// `CLUSTER` subcommands: describe slotgate itself, route slot queries, refuse administration.
fn route_cluster(args: &ArgView<'_>) -> Route {
    let Some(sub) = args.get(1) else {
        return Route::Error(Cow::Borrowed(
            "ERR wrong number of arguments for 'cluster' command",
        ));
    };
    let sub = sub.to_ascii_lowercase();
    match sub.as_slice() {
        b"info" | b"slots" | b"shards" | b"nodes" | b"myid" | b"myshardid" | b"keyslot"
        | b"help" => Route::Local(Local::Cluster),
        b"countkeysinslot" | b"getkeysinslot" => match args
            .get(2)
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|&s| usize::from(s) < crate::slot::SLOT_COUNT)
        {
            Some(slot) => Route::Slot(slot),
            None => Route::Error(Cow::Borrowed("ERR Invalid slot")),
        },
        _ => Route::Error(Cow::Owned(format!(
            "ERR slotgate does not forward 'CLUSTER {}': cluster administration goes to the nodes directly",
            String::from_utf8_lossy(&sub).to_uppercase()
        ))),
    }
}

/// Redis's own wording for an unknown command.
fn unknown_command(args: &ArgView<'_>) -> String {
    let name = String::from_utf8_lossy(args.get(0).unwrap_or_default());
    let name: String = name.chars().take(128).collect();
    let mut message = format!("ERR unknown command '{name}', with args beginning with: ");
    for arg in args.iter().skip(1) {
        let arg = String::from_utf8_lossy(arg);
        message.push('\'');
        message.extend(arg.chars().take(128));
        message.push_str("' ");
        if message.len() > 512 {
            break;
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Range;

    /// Builds a frame and argument ranges from plain strings.
    fn request(parts: &[&str]) -> (Vec<u8>, Vec<Range<u32>>) {
        let mut frame = Vec::new();
        let mut ranges = Vec::new();
        for part in parts {
            let start = frame.len() as u32;
            frame.extend_from_slice(part.as_bytes());
            ranges.push(start..frame.len() as u32);
        }
        (frame, ranges)
    }

    fn route_of(parts: &[&str]) -> Route {
        let (frame, ranges) = request(parts);
        route(&CommandTable::builtin(), &ArgView::new(&frame, &ranges))
    }

    #[test]
    fn single_key_commands_route_by_slot() {
        assert_eq!(route_of(&["GET", "foo"]), Route::Slot(12182));
        assert_eq!(route_of(&["set", "bar", "v"]), Route::Slot(5061));
    }

    #[test]
    fn multi_key_commands_need_one_slot() {
        assert_eq!(
            route_of(&["MGET", "{u}a", "{u}b"]),
            Route::Slot(key_slot(b"u"))
        );
        assert_eq!(
            route_of(&["MGET", "foo", "bar"]),
            Route::Error(Cow::Borrowed(CROSSSLOT))
        );
        assert_eq!(
            route_of(&["MSET", "foo", "1", "bar", "2"]),
            Route::Error(Cow::Borrowed(CROSSSLOT))
        );
    }

    #[test]
    fn local_and_keyless_commands() {
        assert_eq!(route_of(&["PING"]), Route::Local(Local::Ping));
        assert_eq!(
            route_of(&["cluster", "slots"]),
            Route::Local(Local::Cluster)
        );
        assert_eq!(
            route_of(&["CLUSTER", "COUNTKEYSINSLOT", "42"]),
            Route::Slot(42)
        );
        assert_eq!(route_of(&["TIME"]), Route::AnyPrimary);
        assert_eq!(route_of(&["MEMORY", "USAGE", "foo"]), Route::Slot(12182));
    }

    #[test]
    fn refusals_and_errors_name_the_command() {
        let Route::Error(e) = route_of(&["NOSUCH", "a"]) else {
            panic!()
        };
        assert_eq!(
            e,
            "ERR unknown command 'NOSUCH', with args beginning with: 'a' "
        );
        let Route::Error(e) = route_of(&["GET"]) else {
            panic!()
        };
        assert_eq!(e, "ERR wrong number of arguments for 'get' command");
        let Route::Error(e) = route_of(&["BLPOP", "a", "0"]) else {
            panic!()
        };
        assert!(e.contains("blpop"), "{e}");
        let Route::Error(e) = route_of(&["CLUSTER", "FAILOVER"]) else {
            panic!()
        };
        assert!(e.contains("CLUSTER FAILOVER"), "{e}");
        let Route::Error(e) = route_of(&["KEYS", "*"]) else {
            panic!()
        };
        assert!(e.contains("keys"), "{e}");
        assert_eq!(
            route_of(&["XREAD", "STREAMS", "s", "0"]),
            Route::Slot(key_slot(b"s"))
        );
        assert!(matches!(
            route_of(&["XREAD", "BLOCK", "0", "STREAMS", "s", "0"]),
            Route::Error(_)
        ));
    }
}
