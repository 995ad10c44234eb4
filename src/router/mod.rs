//! Where a request goes.
//!
//! [`route`] looks at a scanned request and decides: answer it inside slotgate
//! ([`Route::Local`]), forward it to the primary of one slot ([`Route::Slot`]) or to any
//! primary ([`Route::AnyPrimary`]), or refuse it with a clear error ([`Route::Error`]) while
//! the connection stays usable. Key positions come from the [`CommandTable`]; the slot is
//! the one all keys share, or the request is `CROSSSLOT`, exactly as Redis Cluster answers.
//! A request that becomes several (split by slot, fanned out to every primary) carries its
//! [`Merge`] policy: how the sub-replies combine is part of the routing decision.

pub mod merge;

use std::borrow::Cow;

use crate::commands::{CommandFlags, CommandTable};
use crate::metrics::{CommandId, command_id_ignore_case};
use crate::resp::ArgView;
use crate::slot::key_slot;

pub use merge::Merge;

/// Which node of a shard may serve a request. Comes from the command's flags in the
/// command table ([`ReadIntent::of`]); the session applies the read policy to a `Read`
/// and the upstream's resolver turns that into a node ([`crate::reads`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadIntent {
    /// The shard's primary: writes, and everything not flagged `readonly`.
    #[default]
    Primary,
    /// A read (`readonly`, not `write`): may go where the read policy says.
    Read,
}

impl ReadIntent {
    /// The intent of a command with these flags, as the nodes' command table gives them.
    pub fn of(flags: CommandFlags) -> ReadIntent {
        if flags.contains(CommandFlags::READONLY) && !flags.contains(CommandFlags::WRITE) {
            ReadIntent::Read
        } else {
            ReadIntent::Primary
        }
    }
}

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
    /// `CONFIG GET`: slotgate's own settings.
    ConfigGet,
    /// `SLOWLOG GET/LEN/RESET`: slotgate's own slow log (end-to-end latency).
    Slowlog,
    /// `ASKING`: a cluster-client courtesy that needs no action, since slotgate itself
    /// follows redirects.
    Ok,
    /// `READONLY`: this connection's reads follow the read policy again (the default).
    ReadOnly,
    /// `READWRITE`: this connection's reads go to primaries.
    ReadWrite,
}

/// Multi-key commands that may be split by slot, and how their parts combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitKind {
    /// MGET: values merged back in the client's key order.
    Mget,
    /// MSET: key-value pairs split; +OK when every part is.
    Mset,
    /// DEL, UNLINK, EXISTS, TOUCH: counts summed.
    CountKeys,
}

/// Transaction commands, which change the session's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxCommand {
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
}

/// Subscription commands, each served on a subscription connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PubSubCommand {
    Subscribe,
    PSubscribe,
    Unsubscribe,
    PUnsubscribe,
    /// Shard channels of one slot (`None`: no channel given).
    SSubscribe(Option<u16>),
    SUnsubscribe(Option<u16>),
}

/// The routing decision for one request.
#[derive(Debug)]
pub enum Route {
    Local(Local),
    Slot(u16),
    AnyPrimary,
    /// Keys in several slots: send one part per slot and merge.
    Split(SplitKind),
    /// Send to every primary and merge the replies.
    Fanout(Merge),
    /// SCAN over every primary in turn, with one client-visible cursor.
    Scan,
    /// A command that may block: a dedicated connection, so no other client waits.
    /// `None` for keyless ones (WAIT).
    Blocking(Option<u16>),
    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH.
    Transaction(TxCommand),
    /// (P|S)SUBSCRIBE and (P|S)UNSUBSCRIBE.
    PubSub(PubSubCommand),
    /// A full error line without the leading `-`, e.g. `CROSSSLOT Keys ...`.
    Error(Cow<'static, str>),
}

pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// Longest command name matched by the local tables below.
const MAX_LOCAL_NAME: usize = 16;

/// Decides where `args` goes. `args[0]` is the command name.
pub fn route(table: &CommandTable, args: &ArgView<'_>) -> Route {
    route_with_id(table, args).0
}

/// [`route`], plus the command's metrics label (from its spec when the command table
/// decided, else looked up by name: local and refused commands) and its read intent.
pub fn route_with_id(table: &CommandTable, args: &ArgView<'_>) -> (Route, CommandId, ReadIntent) {
    decide_with_id(table, args, false)
}

fn decide_with_id(
    table: &CommandTable,
    args: &ArgView<'_>,
    one_shard: bool,
) -> (Route, CommandId, ReadIntent) {
    let mut found = None;
    let route = decide(table, args, &mut found, one_shard);
    let (id, intent) = found.unwrap_or_else(|| {
        let id = command_id_ignore_case(args.get(0).unwrap_or_default());
        // Routed by name before the table was asked: SCAN, KEYS, DBSIZE, RANDOMKEY are
        // reads by their flags too, and go by the read policy.
        let intent = match route {
            Route::Scan | Route::Fanout(_) => table
                .lookup(args)
                .map_or(ReadIntent::Primary, |spec| ReadIntent::of(spec.flags)),
            _ => ReadIntent::Primary,
        };
        (id, intent)
    });
    (route, id, intent)
}

/// The slot a backend of one shard is addressed with (its shard owns every slot): every
/// keyed command gets this one, so keys never cross slots, a transaction's commands all
/// share it, and a WATCH fits any of them.
pub const ONE_SHARD_SLOT: u16 = 0;

/// [`route_with_id`] for a backend of one shard (Sentinel, standalone): there are no slots
/// to split on, so a request goes whole to the one primary, as to a single Redis. Multi-key
/// commands, scripts and transactions over keys of any slots pass (no `CROSSSLOT`, no
/// split: MSET stays atomic); `KEYS`, `DBSIZE`, `RANDOMKEY`, `SWAPDB`, `MOVE`, `MEMORY`,
/// `LATENCY` pass through untouched (answers are the node's own). `SCAN` keeps its
/// cursor rewriting, which names the node a scan runs on, so that reads from replicas
/// never continue one node's cursor on another.
/// `SCRIPT LOAD`/`FLUSH` keep their fan-out, which also keeps slotgate's script cache.
/// The session chooses this router once, from its upstream's shape.
pub fn route_one_shard(table: &CommandTable, args: &ArgView<'_>) -> (Route, CommandId, ReadIntent) {
    let (route, id, intent) = decide_with_id(table, args, true);
    let route = match route {
        Route::Slot(_) => Route::Slot(ONE_SHARD_SLOT),
        Route::Blocking(Some(_)) => Route::Blocking(Some(ONE_SHARD_SLOT)),
        Route::Fanout(merge) => {
            let script = args
                .get(0)
                .is_some_and(|name| name.eq_ignore_ascii_case(b"script"));
            if script {
                Route::Fanout(merge)
            } else {
                Route::AnyPrimary
            }
        }
        Route::Error(message) => one_shard_refusal(message, args),
        other => other,
    };
    (route, id, intent)
}

/// What becomes of a cluster refusal on a backend of one shard: the commands Redis
/// Cluster lacks (other databases, one node's introspection) pass.
fn one_shard_refusal(message: Cow<'static, str>, args: &ArgView<'_>) -> Route {
    let name = args.get(0).unwrap_or_default().to_ascii_lowercase();
    match name.as_slice() {
        b"move" => Route::Slot(ONE_SHARD_SLOT),
        b"swapdb" | b"latency" | b"memory" => Route::AnyPrimary,
        _ => Route::Error(message),
    }
}

/// The route; `found` gets the command's id and read intent when its spec was found.
/// With `one_shard`, keys in several slots are no reason to split or refuse: one shard
/// owns them all.
fn decide(
    table: &CommandTable,
    args: &ArgView<'_>,
    found: &mut Option<(CommandId, ReadIntent)>,
    one_shard: bool,
) -> Route {
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
    *found = Some((spec.id, ReadIntent::of(spec.flags)));
    if !spec.arity_ok(args.len()) {
        return Route::Error(Cow::Owned(format!(
            "ERR wrong number of arguments for '{}' command",
            spec.name
        )));
    }
    let lower = &lower[..name.len().min(MAX_LOCAL_NAME)];
    let blocking = spec.flags.contains(CommandFlags::BLOCKING) && blocks(lower, args);
    let mut slot: Option<u16> = None;
    let mut crossed = false;
    let found = spec.for_each_key(args, |index| {
        let Some(key) = args.get(index) else { return };
        let this = key_slot(key);
        match slot {
            None => slot = Some(this),
            Some(s) if s != this => crossed = !one_shard,
            Some(_) => {}
        }
    });
    match (found, crossed, slot) {
        // Malformed key arguments: let a server produce its own, exact error.
        (Err(_), _, _) => Route::AnyPrimary,
        (Ok(()), true, _) => match split_kind(lower) {
            Some(kind) => Route::Split(kind),
            None => Route::Error(Cow::Borrowed(CROSSSLOT)),
        },
        (Ok(()), false, slot) if blocking => Route::Blocking(slot),
        (Ok(()), false, Some(slot)) => Route::Slot(slot),
        (Ok(()), false, None) => Route::AnyPrimary,
    }
}

/// Multi-key commands that are safe to split: each key is independent, so running the
/// parts separately gives the same result (MSET loses only its atomicity across slots,
/// which Redis Cluster never offered).
fn split_kind(lower_name: &[u8]) -> Option<SplitKind> {
    match lower_name {
        b"mget" => Some(SplitKind::Mget),
        b"mset" => Some(SplitKind::Mset),
        b"del" | b"unlink" | b"exists" | b"touch" => Some(SplitKind::CountKeys),
        _ => None,
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
        b"readonly" => local(Local::ReadOnly),
        b"readwrite" => local(Local::ReadWrite),
        b"asking" => local(Local::Ok),
        b"cluster" => Some(route_cluster(args)),
        b"wait" => Some(Route::Blocking(None)),
        b"waitaof" => {
            refuse("ERR slotgate does not support WAITAOF: it reports on one node's persistence")
        }
        b"multi" => Some(Route::Transaction(TxCommand::Multi)),
        b"exec" => Some(Route::Transaction(TxCommand::Exec)),
        b"discard" => Some(Route::Transaction(TxCommand::Discard)),
        b"watch" => Some(Route::Transaction(TxCommand::Watch)),
        b"unwatch" => Some(Route::Transaction(TxCommand::Unwatch)),
        b"subscribe" => Some(Route::PubSub(PubSubCommand::Subscribe)),
        b"psubscribe" => Some(Route::PubSub(PubSubCommand::PSubscribe)),
        b"unsubscribe" => Some(Route::PubSub(PubSubCommand::Unsubscribe)),
        b"punsubscribe" => Some(Route::PubSub(PubSubCommand::PUnsubscribe)),
        b"ssubscribe" | b"sunsubscribe" => Some(route_shard_channels(lower, args)),
        b"monitor" => refuse("ERR slotgate refuses MONITOR: it would mirror one node only"),
        b"scan" => Some(Route::Scan),
        b"keys" => fanout(Merge::ConcatArrays),
        b"dbsize" => fanout(Merge::SumIntegers),
        b"randomkey" => fanout(Merge::FirstNonNull),
        b"flushall" | b"flushdb" => fanout(Merge::AllOk),
        b"script" => route_script(args),
        // Every node relays PUBLISH to the whole cluster; one node per channel keeps one
        // publisher's messages in order.
        b"publish" if args.len() == 3 => {
            Some(Route::Slot(key_slot(args.get(1).unwrap_or_default())))
        }
        b"function" => route_function(args),
        b"pubsub" => route_pubsub(args),
        b"save" | b"bgsave" | b"bgrewriteaof" | b"lastsave" => {
            Some(Route::Error(Cow::Owned(format!(
                "ERR slotgate refuses '{}': each node persists on its own; run it on the nodes",
                String::from_utf8_lossy(lower)
            ))))
        }
        b"config" if args.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"get")) => {
            local(Local::ConfigGet)
        }
        b"config" => refuse(
            "ERR slotgate refuses CONFIG SET/REWRITE/RESETSTAT: it would change one node only; slotgate's own settings change by reload",
        ),
        b"slowlog" => local(Local::Slowlog),
        b"latency" | b"memory" | b"swapdb" | b"move" => route_node_wide(lower, args),
        b"shutdown" | b"debug" | b"failover" | b"replicaof" | b"slaveof" | b"sync" | b"psync"
        | b"module" | b"acl" | b"migrate" | b"restore-asking" | b"replconf" => {
            Some(Route::Error(Cow::Owned(format!(
                "ERR slotgate refuses '{}': it administers a single node; run it on the nodes directly",
                String::from_utf8_lossy(lower)
            ))))
        }
        _ => None,
    }
}

/// Shard channels are keys: all of one command's channels must share a slot.
fn route_shard_channels(lower: &[u8], args: &ArgView<'_>) -> Route {
    let mut slots = args.iter().skip(1).map(key_slot);
    let first = slots.next();
    if let Some(first) = first
        && slots.any(|s| s != first)
    {
        return Route::Error(Cow::Borrowed(CROSSSLOT));
    }
    match lower {
        b"ssubscribe" if first.is_none() => Route::Error(Cow::Borrowed(
            "ERR wrong number of arguments for 'ssubscribe' command",
        )),
        b"ssubscribe" => Route::PubSub(PubSubCommand::SSubscribe(first)),
        _ => Route::PubSub(PubSubCommand::SUnsubscribe(first)),
    }
}

fn refuse(message: &'static str) -> Option<Route> {
    Some(Route::Error(Cow::Borrowed(message)))
}

fn fanout(merge: Merge) -> Option<Route> {
    Some(Route::Fanout(merge))
}

fn subcommand(args: &ArgView<'_>) -> Vec<u8> {
    args.get(1)
        .map(<[u8]>::to_ascii_lowercase)
        .unwrap_or_default()
}

/// Scripts live in each node's cache: changes go to every primary, answered once.
fn route_script(args: &ArgView<'_>) -> Option<Route> {
    match subcommand(args).as_slice() {
        b"load" => fanout(Merge::AllEqual),
        b"exists" => fanout(Merge::AllOfIntegerArrays),
        b"flush" => fanout(Merge::AllOk),
        b"kill" => refuse(
            "ERR slotgate refuses SCRIPT KILL: a running script lives on one node; kill it there",
        ),
        b"debug" => refuse(
            "ERR slotgate refuses SCRIPT DEBUG: it would change a node connection shared with other clients",
        ),
        _ => Some(Route::AnyPrimary),
    }
}

/// Functions are loaded on every primary, so any primary can describe them.
fn route_function(args: &ArgView<'_>) -> Option<Route> {
    match subcommand(args).as_slice() {
        b"load" => fanout(Merge::AllEqual),
        b"delete" | b"flush" | b"restore" => fanout(Merge::AllOk),
        b"list" | b"dump" => fanout(Merge::First),
        b"kill" | b"stats" => refuse(
            "ERR slotgate refuses FUNCTION KILL/STATS: a running function lives on one node; ask it there",
        ),
        _ => Some(Route::AnyPrimary),
    }
}

/// Channel introspection sums or unites what every primary knows.
fn route_pubsub(args: &ArgView<'_>) -> Option<Route> {
    match subcommand(args).as_slice() {
        b"channels" | b"shardchannels" => fanout(Merge::UnionArrays),
        b"numsub" | b"shardnumsub" => fanout(Merge::SumPairs),
        b"numpat" => fanout(Merge::SumIntegers),
        _ => Some(Route::AnyPrimary),
    }
}

/// Node administration and introspection that would describe one node only. `MEMORY
/// USAGE key` is keyed, so it routes normally.
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
        "ERR slotgate does not support '{}' yet: its answer would describe a single node of the cluster",
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

    fn error_of(parts: &[&str]) -> String {
        match route_of(parts) {
            Route::Error(e) => e.into_owned(),
            other => panic!("{parts:?} routed to {other:?}, expected an error"),
        }
    }

    fn one_shard_route_of(parts: &[&str]) -> Route {
        let (frame, ranges) = request(parts);
        route_one_shard(&CommandTable::builtin(), &ArgView::new(&frame, &ranges)).0
    }

    #[test]
    fn one_shard_backends_take_requests_whole() {
        let slot0 = |parts: &[&str]| {
            assert!(
                matches!(one_shard_route_of(parts), Route::Slot(ONE_SHARD_SLOT)),
                "{parts:?}: {:?}",
                one_shard_route_of(parts)
            );
        };
        slot0(&["GET", "a"]);
        slot0(&["MSET", "a", "1", "b", "2"]);
        slot0(&["MGET", "a", "b", "c"]);
        slot0(&["RENAME", "a", "b"]);
        slot0(&["EVAL", "return 1", "2", "a", "b"]);
        slot0(&["MOVE", "a", "1"]);
        assert!(matches!(
            one_shard_route_of(&["BLPOP", "a", "b", "0"]),
            Route::Blocking(Some(ONE_SHARD_SLOT))
        ));
        // SCAN keeps its cursor, which names the node scanned (reads from replicas).
        assert!(matches!(one_shard_route_of(&["SCAN", "0"]), Route::Scan));
        for keyless in [&["KEYS", "*"][..], &["DBSIZE"], &["SWAPDB", "0", "1"]] {
            assert!(
                matches!(one_shard_route_of(keyless), Route::AnyPrimary),
                "{keyless:?}"
            );
        }
        assert!(matches!(
            one_shard_route_of(&["SCRIPT", "LOAD", "return 1"]),
            Route::Fanout(_)
        ));
        assert!(matches!(
            one_shard_route_of(&["SSUBSCRIBE", "a", "b"]),
            Route::Error(_)
        ));
        assert!(matches!(one_shard_route_of(&["MONITOR"]), Route::Error(_)));
        // The cluster router is unchanged.
        assert!(matches!(
            route_of(&["MSET", "a", "1", "b", "2"]),
            Route::Split(_)
        ));
        assert!(matches!(route_of(&["SWAPDB", "0", "1"]), Route::Error(_)));
    }

    #[test]
    fn single_key_commands_route_by_slot() {
        assert!(matches!(route_of(&["GET", "foo"]), Route::Slot(12182)));
        assert!(matches!(route_of(&["set", "bar", "v"]), Route::Slot(5061)));
    }

    #[test]
    fn multi_key_commands_split_or_need_one_slot() {
        let tagged = key_slot(b"u");
        assert!(matches!(route_of(&["MGET", "{u}a", "{u}b"]), Route::Slot(s) if s == tagged));
        assert!(matches!(
            route_of(&["MGET", "foo", "bar"]),
            Route::Split(SplitKind::Mget)
        ));
        assert!(matches!(
            route_of(&["MSET", "foo", "1", "bar", "2"]),
            Route::Split(SplitKind::Mset)
        ));
        assert!(matches!(
            route_of(&["DEL", "foo", "bar"]),
            Route::Split(SplitKind::CountKeys)
        ));
        assert_eq!(error_of(&["MSETNX", "foo", "1", "bar", "2"]), CROSSSLOT);
        assert_eq!(error_of(&["RENAME", "foo", "bar"]), CROSSSLOT);
        assert_eq!(error_of(&["SUNIONSTORE", "d", "foo", "bar"]), CROSSSLOT);
    }

    #[test]
    fn local_keyless_and_fanout_commands() {
        assert!(matches!(route_of(&["PING"]), Route::Local(Local::Ping)));
        assert!(matches!(
            route_of(&["cluster", "slots"]),
            Route::Local(Local::Cluster)
        ));
        assert!(matches!(
            route_of(&["CLUSTER", "COUNTKEYSINSLOT", "42"]),
            Route::Slot(42)
        ));
        assert!(matches!(route_of(&["TIME"]), Route::AnyPrimary));
        assert!(matches!(
            route_of(&["MEMORY", "USAGE", "foo"]),
            Route::Slot(12182)
        ));
        assert!(matches!(
            route_of(&["KEYS", "*"]),
            Route::Fanout(Merge::ConcatArrays)
        ));
        assert!(matches!(
            route_of(&["DBSIZE"]),
            Route::Fanout(Merge::SumIntegers)
        ));
        assert!(matches!(
            route_of(&["SCRIPT", "LOAD", "return 1"]),
            Route::Fanout(Merge::AllEqual)
        ));
        assert!(matches!(
            route_of(&["pubsub", "numsub", "c"]),
            Route::Fanout(Merge::SumPairs)
        ));
        assert!(matches!(route_of(&["scan", "0"]), Route::Scan));
        assert!(matches!(
            route_of(&["MULTI"]),
            Route::Transaction(TxCommand::Multi)
        ));
    }

    #[test]
    fn blocking_commands_get_their_own_route() {
        assert!(matches!(
            route_of(&["BLPOP", "a", "0"]),
            Route::Blocking(Some(_))
        ));
        assert!(matches!(
            route_of(&["WAIT", "1", "0"]),
            Route::Blocking(None)
        ));
        assert!(matches!(
            route_of(&["XREAD", "STREAMS", "s", "0"]),
            Route::Slot(_)
        ));
        assert!(matches!(
            route_of(&["XREAD", "BLOCK", "0", "STREAMS", "s", "0"]),
            Route::Blocking(Some(_))
        ));
    }

    #[test]
    fn refusals_and_errors_name_the_command() {
        assert_eq!(
            error_of(&["NOSUCH", "a"]),
            "ERR unknown command 'NOSUCH', with args beginning with: 'a' "
        );
        assert_eq!(
            error_of(&["GET"]),
            "ERR wrong number of arguments for 'get' command"
        );
        assert!(error_of(&["CLUSTER", "FAILOVER"]).contains("CLUSTER FAILOVER"));
        assert!(error_of(&["SWAPDB", "0", "1"]).contains("SWAPDB"));
        assert!(error_of(&["MONITOR"]).contains("MONITOR"));
        assert!(error_of(&["SHUTDOWN"]).contains("shutdown"));
    }
}
