//! Bounded label values for per-command metrics: [`CommandId`], [`Family`], [`CommandOutcome`].
//!
//! A `command` label must not take whatever name a client sends (that would let clients
//! create unbounded series), so every core Redis command has a fixed index in [`COMMANDS`]
//! and everything else (module commands, unknown names) counts as [`CommandId::OTHER`].
//! The index is looked up once, when a command table is built ([`command_id`]); the hot path
//! carries the `u16` and indexes fixed arrays. Latency histograms are kept per [`Family`]
//! (the command's Redis ACL category: string, hash, ...), a dozen series rather than hundreds.

use std::fmt;

/// Index of a command in [`COMMANDS`]; [`CommandId::OTHER`] for every other name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(pub u16);

impl CommandId {
    /// Every command not in [`COMMANDS`].
    pub const OTHER: CommandId = CommandId(COMMANDS.len() as u16);
    /// How many ids exist, [`CommandId::OTHER`] included: the length of per-command arrays.
    pub const COUNT: usize = COMMANDS.len() + 1;

    /// The lowercase command name, or `"other"`.
    pub fn name(self) -> &'static str {
        COMMANDS
            .get(usize::from(self.0))
            .map_or("other", |(name, _)| name)
    }

    /// The family whose latency histogram this command feeds.
    pub fn family(self) -> Family {
        COMMANDS
            .get(usize::from(self.0))
            .map_or(Family::Other, |&(_, family)| family)
    }

    /// Position in per-command arrays (always `< COUNT`).
    #[inline]
    pub fn index(self) -> usize {
        usize::from(self.0).min(Self::COUNT - 1)
    }
}

impl Default for CommandId {
    fn default() -> Self {
        Self::OTHER
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The id of `lowercase_name`; [`CommandId::OTHER`] when it is not a core command.
/// Meant to be called once per command when a command table is built, and the result
/// stored in the command's spec.
pub fn command_id(lowercase_name: &str) -> CommandId {
    match COMMANDS.binary_search_by(|(name, _)| (*name).cmp(lowercase_name)) {
        Ok(index) => CommandId(index as u16),
        Err(_) => CommandId::OTHER,
    }
}

/// [`command_id`] for a name as a client sent it (any case), without allocating: for
/// commands that never reach the command table (answered locally, refused early).
pub fn command_id_ignore_case(name: &[u8]) -> CommandId {
    const LONGEST: usize = 32;
    if name.len() > LONGEST {
        return CommandId::OTHER;
    }
    let mut lower = [0u8; LONGEST];
    let lower = &mut lower[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    match std::str::from_utf8(lower) {
        Ok(text) => command_id(text),
        Err(_) => CommandId::OTHER,
    }
}

/// A command's family: its main Redis ACL category. Bounded label of the latency histograms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    String,
    Hash,
    List,
    Set,
    SortedSet,
    Stream,
    Bitmap,
    HyperLogLog,
    Geo,
    PubSub,
    Scripting,
    Transaction,
    Connection,
    Keyspace,
    Server,
    Other,
}

impl Family {
    pub const ALL: [Family; 16] = [
        Family::String,
        Family::Hash,
        Family::List,
        Family::Set,
        Family::SortedSet,
        Family::Stream,
        Family::Bitmap,
        Family::HyperLogLog,
        Family::Geo,
        Family::PubSub,
        Family::Scripting,
        Family::Transaction,
        Family::Connection,
        Family::Keyspace,
        Family::Server,
        Family::Other,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// The label value: Redis's ACL category name without `@`.
    pub fn label(self) -> &'static str {
        match self {
            Family::String => "string",
            Family::Hash => "hash",
            Family::List => "list",
            Family::Set => "set",
            Family::SortedSet => "sortedset",
            Family::Stream => "stream",
            Family::Bitmap => "bitmap",
            Family::HyperLogLog => "hyperloglog",
            Family::Geo => "geo",
            Family::PubSub => "pubsub",
            Family::Scripting => "scripting",
            Family::Transaction => "transaction",
            Family::Connection => "connection",
            Family::Keyspace => "keyspace",
            Family::Server => "server",
            Family::Other => "other",
        }
    }

    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How one client command ended, as the client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandOutcome {
    /// A reply that is not an error.
    Ok,
    /// An error reply produced by Redis (WRONGTYPE, a script error, ...) or by a local
    /// command's own checks (wrong arity of PING): the client's request was at fault.
    Error,
    /// Refused by slotgate before reaching a node: unknown command, CROSSSLOT, an
    /// unsupported command, a protocol error.
    Rejected,
    /// slotgate could not get an answer: backend connection failure or timeout (outcome
    /// unknown or not executed), too many redirects, retry deadline exceeded.
    Failed,
}

impl CommandOutcome {
    pub const ALL: [CommandOutcome; 4] = [
        CommandOutcome::Ok,
        CommandOutcome::Error,
        CommandOutcome::Rejected,
        CommandOutcome::Failed,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn label(self) -> &'static str {
        match self {
            CommandOutcome::Ok => "ok",
            CommandOutcome::Error => "error",
            CommandOutcome::Rejected => "rejected",
            CommandOutcome::Failed => "failed",
        }
    }

    /// `Ok` or `Error` from the first byte of a reply a node sent (`-` and RESP3's `!` are
    /// errors). For replies slotgate makes up itself the caller knows better.
    #[inline]
    pub fn of_reply(reply: &[u8]) -> CommandOutcome {
        match reply.first() {
            Some(b'-' | b'!') => CommandOutcome::Error,
            _ => CommandOutcome::Ok,
        }
    }

    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}

use Family as F;

/// The core Redis commands (7.x and the newer hash-field ones), sorted by name for binary
/// search, each with its [`Family`]. Adding a name here adds a label value; never remove one
/// casually, dashboards may use it.
pub const COMMANDS: &[(&str, Family)] = &[
    ("acl", F::Server),
    ("append", F::String),
    ("asking", F::Connection),
    ("auth", F::Connection),
    ("bgrewriteaof", F::Server),
    ("bgsave", F::Server),
    ("bitcount", F::Bitmap),
    ("bitfield", F::Bitmap),
    ("bitfield_ro", F::Bitmap),
    ("bitop", F::Bitmap),
    ("bitpos", F::Bitmap),
    ("blmove", F::List),
    ("blmpop", F::List),
    ("blpop", F::List),
    ("brpop", F::List),
    ("brpoplpush", F::List),
    ("bzmpop", F::SortedSet),
    ("bzpopmax", F::SortedSet),
    ("bzpopmin", F::SortedSet),
    ("client", F::Connection),
    ("cluster", F::Server),
    ("command", F::Server),
    ("config", F::Server),
    ("copy", F::Keyspace),
    ("dbsize", F::Server),
    ("debug", F::Server),
    ("decr", F::String),
    ("decrby", F::String),
    ("del", F::Keyspace),
    ("discard", F::Transaction),
    ("dump", F::Keyspace),
    ("echo", F::Connection),
    ("eval", F::Scripting),
    ("eval_ro", F::Scripting),
    ("evalsha", F::Scripting),
    ("evalsha_ro", F::Scripting),
    ("exec", F::Transaction),
    ("exists", F::Keyspace),
    ("expire", F::Keyspace),
    ("expireat", F::Keyspace),
    ("expiretime", F::Keyspace),
    ("failover", F::Server),
    ("fcall", F::Scripting),
    ("fcall_ro", F::Scripting),
    ("flushall", F::Keyspace),
    ("flushdb", F::Keyspace),
    ("function", F::Scripting),
    ("geoadd", F::Geo),
    ("geodist", F::Geo),
    ("geohash", F::Geo),
    ("geopos", F::Geo),
    ("georadius", F::Geo),
    ("georadius_ro", F::Geo),
    ("georadiusbymember", F::Geo),
    ("georadiusbymember_ro", F::Geo),
    ("geosearch", F::Geo),
    ("geosearchstore", F::Geo),
    ("get", F::String),
    ("getbit", F::Bitmap),
    ("getdel", F::String),
    ("getex", F::String),
    ("getrange", F::String),
    ("getset", F::String),
    ("hdel", F::Hash),
    ("hello", F::Connection),
    ("hexists", F::Hash),
    ("hexpire", F::Hash),
    ("hexpireat", F::Hash),
    ("hexpiretime", F::Hash),
    ("hget", F::Hash),
    ("hgetall", F::Hash),
    ("hgetdel", F::Hash),
    ("hgetex", F::Hash),
    ("hincrby", F::Hash),
    ("hincrbyfloat", F::Hash),
    ("hkeys", F::Hash),
    ("hlen", F::Hash),
    ("hmget", F::Hash),
    ("hmset", F::Hash),
    ("hpersist", F::Hash),
    ("hpexpire", F::Hash),
    ("hpexpireat", F::Hash),
    ("hpexpiretime", F::Hash),
    ("hpttl", F::Hash),
    ("hrandfield", F::Hash),
    ("hscan", F::Hash),
    ("hset", F::Hash),
    ("hsetex", F::Hash),
    ("hsetnx", F::Hash),
    ("hstrlen", F::Hash),
    ("httl", F::Hash),
    ("hvals", F::Hash),
    ("incr", F::String),
    ("incrby", F::String),
    ("incrbyfloat", F::String),
    ("info", F::Server),
    ("keys", F::Keyspace),
    ("lastsave", F::Server),
    ("latency", F::Server),
    ("lcs", F::String),
    ("lindex", F::List),
    ("linsert", F::List),
    ("llen", F::List),
    ("lmove", F::List),
    ("lmpop", F::List),
    ("lolwut", F::Server),
    ("lpop", F::List),
    ("lpos", F::List),
    ("lpush", F::List),
    ("lpushx", F::List),
    ("lrange", F::List),
    ("lrem", F::List),
    ("lset", F::List),
    ("ltrim", F::List),
    ("memory", F::Server),
    ("mget", F::String),
    ("migrate", F::Keyspace),
    ("module", F::Server),
    ("monitor", F::Server),
    ("move", F::Keyspace),
    ("mset", F::String),
    ("msetnx", F::String),
    ("multi", F::Transaction),
    ("object", F::Server),
    ("persist", F::Keyspace),
    ("pexpire", F::Keyspace),
    ("pexpireat", F::Keyspace),
    ("pexpiretime", F::Keyspace),
    ("pfadd", F::HyperLogLog),
    ("pfcount", F::HyperLogLog),
    ("pfdebug", F::HyperLogLog),
    ("pfmerge", F::HyperLogLog),
    ("pfselftest", F::HyperLogLog),
    ("ping", F::Connection),
    ("psetex", F::String),
    ("psubscribe", F::PubSub),
    ("psync", F::Server),
    ("pttl", F::Keyspace),
    ("publish", F::PubSub),
    ("pubsub", F::PubSub),
    ("punsubscribe", F::PubSub),
    ("quit", F::Connection),
    ("randomkey", F::Keyspace),
    ("readonly", F::Connection),
    ("readwrite", F::Connection),
    ("rename", F::Keyspace),
    ("renamenx", F::Keyspace),
    ("replconf", F::Server),
    ("replicaof", F::Server),
    ("reset", F::Connection),
    ("restore", F::Keyspace),
    ("restore-asking", F::Keyspace),
    ("role", F::Server),
    ("rpop", F::List),
    ("rpoplpush", F::List),
    ("rpush", F::List),
    ("rpushx", F::List),
    ("sadd", F::Set),
    ("save", F::Server),
    ("scan", F::Keyspace),
    ("scard", F::Set),
    ("script", F::Scripting),
    ("sdiff", F::Set),
    ("sdiffstore", F::Set),
    ("select", F::Connection),
    ("set", F::String),
    ("setbit", F::Bitmap),
    ("setex", F::String),
    ("setnx", F::String),
    ("setrange", F::String),
    ("shutdown", F::Server),
    ("sinter", F::Set),
    ("sintercard", F::Set),
    ("sinterstore", F::Set),
    ("sismember", F::Set),
    ("slaveof", F::Server),
    ("slowlog", F::Server),
    ("smembers", F::Set),
    ("smismember", F::Set),
    ("smove", F::Set),
    ("sort", F::Keyspace),
    ("sort_ro", F::Keyspace),
    ("spop", F::Set),
    ("spublish", F::PubSub),
    ("srandmember", F::Set),
    ("srem", F::Set),
    ("sscan", F::Set),
    ("ssubscribe", F::PubSub),
    ("strlen", F::String),
    ("subscribe", F::PubSub),
    ("substr", F::String),
    ("sunion", F::Set),
    ("sunionstore", F::Set),
    ("sunsubscribe", F::PubSub),
    ("swapdb", F::Keyspace),
    ("sync", F::Server),
    ("time", F::Server),
    ("touch", F::Keyspace),
    ("ttl", F::Keyspace),
    ("type", F::Keyspace),
    ("unlink", F::Keyspace),
    ("unsubscribe", F::PubSub),
    ("unwatch", F::Transaction),
    ("wait", F::Server),
    ("waitaof", F::Server),
    ("watch", F::Transaction),
    ("xack", F::Stream),
    ("xadd", F::Stream),
    ("xautoclaim", F::Stream),
    ("xclaim", F::Stream),
    ("xdel", F::Stream),
    ("xgroup", F::Stream),
    ("xinfo", F::Stream),
    ("xlen", F::Stream),
    ("xpending", F::Stream),
    ("xrange", F::Stream),
    ("xread", F::Stream),
    ("xreadgroup", F::Stream),
    ("xrevrange", F::Stream),
    ("xsetid", F::Stream),
    ("xtrim", F::Stream),
    ("zadd", F::SortedSet),
    ("zcard", F::SortedSet),
    ("zcount", F::SortedSet),
    ("zdiff", F::SortedSet),
    ("zdiffstore", F::SortedSet),
    ("zincrby", F::SortedSet),
    ("zinter", F::SortedSet),
    ("zintercard", F::SortedSet),
    ("zinterstore", F::SortedSet),
    ("zlexcount", F::SortedSet),
    ("zmpop", F::SortedSet),
    ("zmscore", F::SortedSet),
    ("zpopmax", F::SortedSet),
    ("zpopmin", F::SortedSet),
    ("zrandmember", F::SortedSet),
    ("zrange", F::SortedSet),
    ("zrangebylex", F::SortedSet),
    ("zrangebyscore", F::SortedSet),
    ("zrangestore", F::SortedSet),
    ("zrank", F::SortedSet),
    ("zrem", F::SortedSet),
    ("zremrangebylex", F::SortedSet),
    ("zremrangebyrank", F::SortedSet),
    ("zremrangebyscore", F::SortedSet),
    ("zrevrange", F::SortedSet),
    ("zrevrangebylex", F::SortedSet),
    ("zrevrangebyscore", F::SortedSet),
    ("zrevrank", F::SortedSet),
    ("zscan", F::SortedSet),
    ("zscore", F::SortedSet),
    ("zunion", F::SortedSet),
    ("zunionstore", F::SortedSet),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_lowercase() {
        for pair in COMMANDS.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
        for (name, _) in COMMANDS {
            assert_eq!(*name, name.to_ascii_lowercase());
            assert_ne!(*name, "other");
        }
        assert!(COMMANDS.len() < usize::from(u16::MAX));
    }

    #[test]
    fn lookups() {
        let get = command_id("get");
        assert_eq!(get.name(), "get");
        assert_eq!(get.family(), Family::String);
        assert_eq!(command_id("hset").family(), Family::Hash);
        assert_eq!(command_id("zadd").family(), Family::SortedSet);
        assert_eq!(command_id("no-such-command"), CommandId::OTHER);
        assert_eq!(CommandId::OTHER.name(), "other");
        assert_eq!(CommandId::OTHER.family(), Family::Other);
        assert_eq!(CommandId::OTHER.index(), CommandId::COUNT - 1);
        assert_eq!(command_id_ignore_case(b"GeT"), get);
        assert_eq!(command_id_ignore_case(&[b'x'; 100]), CommandId::OTHER);
        assert_eq!(command_id_ignore_case(b"\xff\xfe"), CommandId::OTHER);
        for (i, family) in Family::ALL.iter().enumerate() {
            assert_eq!(family.index(), i);
        }
        for (i, outcome) in CommandOutcome::ALL.iter().enumerate() {
            assert_eq!(outcome.index(), i);
        }
    }

    #[test]
    fn outcome_of_reply() {
        assert_eq!(CommandOutcome::of_reply(b"+OK\r\n"), CommandOutcome::Ok);
        assert_eq!(
            CommandOutcome::of_reply(b"-WRONGTYPE x\r\n"),
            CommandOutcome::Error
        );
        assert_eq!(
            CommandOutcome::of_reply(b"!3\r\nerr\r\n"),
            CommandOutcome::Error
        );
        assert_eq!(CommandOutcome::of_reply(b""), CommandOutcome::Ok);
    }
}
