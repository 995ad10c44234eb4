//! Oracle test for the command table against a real redis-server.
//!
//! A plain `redis-server` ([`common::RedisNode`]) answers `COMMAND`; the reply, decoded with
//! `redis-protocol`, builds a [`CommandTable`]. Then, for a few hundred sample requests that
//! cover every key-carrying command and every key spec shape, the key arguments slotgate finds
//! must be exactly what `COMMAND GETKEYS` returns. The same samples run through the built-in
//! table and through a table learned from a Redis 6-shaped reply (no key specs, no
//! subcommands), and the built-in table must agree with the server on arity and on the
//! write/readonly/blocking flags of every command. Disagreements are reported together, with
//! the server's entry printed as a built-in table line ready to paste.
//!
//! Run with `--nocapture` to see the figures.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::ops::Range;
use std::time::Duration;

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;
use slotgate::commands::{
    BeginSearch, CommandFlags, CommandSpec, CommandTable, FindKeys, KeyError, KeySpec, KeySpecFlags,
};
use slotgate::resp::ArgView;

use common::RedisNode;

/// Sample requests, one per line, arguments separated by spaces (`""` is an empty argument).
/// Every command with keys appears at least once (the test checks); variants exercise
/// keywords, numkeys, options, and malformed requests the router must not misroute.
const SAMPLES: &str = r#"
append k v
bitcount k
bitcount k 0 -1 BYTE
bitfield k GET u8 0 SET u8 0 1
bitfield_ro k GET u8 0
bitop AND dst k1 k2 k3
bitop NOT dst k
bitpos k 1 0 -1
decr k
decrby k 5
get k
GET k
getbit k 7
getdel k
getex k PERSIST
getex k EX 10
getrange k 0 5
getset k v
incr k
incrby k 2
incrbyfloat k 1.5
lcs k1 k2
lcs k1 k2 IDX MINMATCHLEN 4 WITHMATCHLEN
mget k1 k2 k3
mset k1 v1
mset k1 v1 k2 v2 k3 v3
msetnx k1 v1 k2 v2
psetex k 100 v
set k v
set k v NX GET EX 5
setbit k 7 1
setex k 10 v
setnx k v
setrange k 0 v
strlen k
substr k 0 1
copy src dst
copy src dst DB 0 REPLACE
del k
del k1 k2 k3
dump k
exists k
exists k1 k2
expire k 10
expire k 10 NX
expireat k 1000
expiretime k
migrate 127.0.0.1 1 k 0 1000
migrate 127.0.0.1 1 k 0 1000 COPY REPLACE
migrate 127.0.0.1 1 "" 0 1000 KEYS k1 k2 k3
migrate 127.0.0.1 1 "" 0 1000 COPY AUTH pw KEYS k1 k2
migrate 127.0.0.1 1 "" 0 1000 AUTH keys KEYS k1
migrate 127.0.0.1 1 "" 0 1000 AUTH2 keys keys KEYS k1 keys
migrate 127.0.0.1 1 "" 0 1000 KEYS keys k1
migrate 127.0.0.1 1 k 0 1000 KEYS k1 k2
move k 1
object encoding k
OBJECT ENCODING k
object freq k
object idletime k
object refcount k
object help
persist k
pexpire k 100
pexpire k 100 XX
pexpireat k 1000
pexpiretime k
pttl k
rename k1 k2
renamenx k1 k2
restore k 0 payload
restore k 0 payload REPLACE ABSTTL
restore-asking k 0 payload
sort k
sort k ALPHA DESC
sort k STORE dst
sort k BY w_* LIMIT 0 10 GET # GET o_* ALPHA DESC STORE dst
sort k GET store
sort k BY store
sort k LIMIT store store
sort k STORE d1 STORE d2
sort k STORE
sort_ro k
sort_ro k BY w_* GET # ALPHA
touch k
touch k1 k2
ttl k
type k
unlink k
unlink k1 k2
blmove src dst LEFT RIGHT 0
blmpop 0 1 k LEFT
blmpop 0 2 k1 k2 LEFT COUNT 2
blpop k 0
blpop k1 k2 k3 0
brpop k 1.5
brpoplpush src dst 0
lindex k 0
linsert k BEFORE p v
llen k
lmove src dst LEFT LEFT
lmpop 1 k LEFT COUNT 3
lmpop 2 k1 k2 RIGHT
lpop k
lpop k 2
lpos k v RANK 1
lpush k a b
lpushx k a
lrange k 0 -1
lrem k 0 v
lset k 0 v
ltrim k 0 1
rpop k
rpoplpush src dst
rpush k a
rpushx k a
sadd k m1 m2
scard k
sdiff k
sdiff k1 k2
sdiffstore dst k1 k2
sinter k1 k2 k3
sintercard 1 k
sintercard 2 k1 k2 LIMIT 1
sinterstore dst k1
sismember k m
smembers k
smismember k m1 m2
smove src dst m
spop k
spop k 2
srandmember k -3
srem k m
sscan k 0 MATCH * COUNT 10
sunion k1 k2
sunionstore dst k1 k2
bzmpop 0 1 k MIN
bzmpop 0 2 k1 k2 MAX COUNT 3
bzpopmax k1 k2 0
bzpopmin k 0
zadd k 1 a
zadd k NX 1 a 2 b
zcard k
zcount k 0 10
zdiff 1 k
zdiff 2 k1 k2 WITHSCORES
zdiffstore dst 2 k1 k2
zincrby k 1 m
zinter 1 k
zinter 3 k1 k2 k3 WEIGHTS 1 2 3 AGGREGATE SUM
zintercard 2 k1 k2 LIMIT 10
zinterstore dst 2 k1 k2
zinterstore dst 1 k WEIGHTS 2
zlexcount k - +
zmpop 1 k MIN
zmpop 2 k1 k2 MAX COUNT 2
zmscore k a b
zpopmax k 2
zpopmin k
zrandmember k 2 WITHSCORES
zrange k 0 -1 WITHSCORES
zrange k (1 5 BYSCORE REV LIMIT 0 1
zrangebylex k - +
zrangebyscore k 0 10
zrangestore dst src 0 -1
zrank k m
zrem k a b
zremrangebylex k - +
zremrangebyrank k 0 1
zremrangebyscore k 0 1
zrevrange k 0 -1
zrevrangebylex k + -
zrevrangebyscore k 10 0
zrevrank k m
zscan k 0
zscore k m
zunion 2 k1 k2
zunion 1 k WITHSCORES
zunionstore dst 3 k1 k2 k3 AGGREGATE MAX
zunionstore dst 1 k
hdel k f1 f2
hexists k f
hget k f
hgetall k
hincrby k f 1
hincrbyfloat k f 1.5
hkeys k
hlen k
hmget k f1 f2
hmset k f v
hrandfield k 2
hscan k 0
hset k f1 v1 f2 v2
hsetnx k f v
hstrlen k f
hvals k
xack s g 1-0 2-0
xadd s * f v
xadd s MAXLEN ~ 100 * f v
xautoclaim s g c 10 0-0 COUNT 5
xclaim s g c 10 1-0 2-0
xdel s 1-0
xgroup create s g $ MKSTREAM
XGROUP CREATE s g $
xgroup createconsumer s g c
xgroup delconsumer s g c
xgroup destroy s g
xgroup setid s g 0
xgroup help
xinfo consumers s g
xinfo groups s
xinfo stream s
xinfo stream s FULL COUNT 5
xinfo help
xlen s
xpending s g
xpending s g - + 10
xrange s - +
xread STREAMS s 0
xread STREAMS s1 s2 0 0
xread COUNT 1 BLOCK 0 STREAMS s 0
xread count 1 streams streams $
xread STREAMS s1 s2 s3 0 0 0
xreadgroup GROUP g c STREAMS s >
xreadgroup GROUP g c COUNT 1 NOACK STREAMS s1 s2 > 0
xreadgroup GROUP streams c STREAMS streams >
xrevrange s + -
xsetid s 1-0
xtrim s MAXLEN 10
pfadd k
pfadd k a b
pfcount k
pfcount k1 k2
pfdebug getreg k
pfmerge dst
pfmerge dst k1 k2
geoadd k 13.36 38.11 a
geodist k a b km
geohash k a b
geopos k a
georadius k 15 37 200 km
georadius k 15 37 200 km WITHDIST
georadius k 15 37 200 km STORE dst
georadius k 15 37 200 km STOREDIST dst
georadius k 15 37 200 km STORE d1 STOREDIST d2
georadius_ro k 15 37 200 km
georadiusbymember k m 100 km
georadiusbymember k m 100 km STORE dst
georadiusbymember_ro k m 100 km
geosearch k FROMMEMBER m BYRADIUS 1 km
geosearchstore dst src FROMLONLAT 15 37 BYBOX 400 400 km
geosearchstore dst src FROMMEMBER m BYRADIUS 1 km STOREDIST
eval s 0
eval s 1 k
eval s 2 k1 k2 a1
eval_ro s 1 k
eval_ro s 0 a
evalsha sha 1 k a
evalsha sha 0
evalsha_ro sha 2 k1 k2
fcall f 0
fcall f 2 k1 k2
fcall_ro f 1 k a
spublish ch m
ssubscribe ch
ssubscribe ch1 ch2
sunsubscribe
sunsubscribe ch1
sunsubscribe ch1 ch2
watch k
watch k1 k2
memory usage k
memory usage k SAMPLES 5
memory stats
memory doctor
publish ch m
subscribe ch
psubscribe p*
unsubscribe
punsubscribe
pubsub channels
pubsub shardchannels
pubsub numsub ch
multi
exec
discard
unwatch
ping
echo x
info
dbsize
keys *
scan 0 MATCH * COUNT 10
randomkey
flushdb
time
lastsave
select 0
client list
client setname x
client id
cluster info
cluster keyslot k
cluster getkeysinslot 0 10
cluster countkeysinslot 0
config get maxmemory
command count
command info get
script load x
script exists sha
function list
function stats
slowlog get
latency latest
acl whoami
module list
wait 0 0
hello 3
auth pw
swapdb 0 1
lolwut
role
readonly
readwrite
asking
eval s abc k
eval s -1 k
eval s 3 k1 k2
zunionstore dst 0 k
zunionstore dst x k
zunion 3 k1 k2
zinter 0 k
lmpop 0 k LEFT
blmpop 0 3 k1 k2 LEFT
sintercard x k
xread COUNT 1 BLOCK 0
xread COUNT 1 STREAMS s
xreadgroup GROUP g c COUNT 1 s >
"#;

/// Samples where `COMMAND GETKEYS` answers "Invalid arguments" although the command is valid
/// and names a key: Redis evaluates an empty open-ended key list (PFMERGE without sources) as
/// out of bounds. slotgate routes by the key that is there.
const GETKEYS_GAPS: &[(&str, &[&str])] = &[("pfmerge dst", &["dst"])];

/// The sample lines, split into arguments.
fn samples() -> Vec<Vec<Vec<u8>>> {
    SAMPLES
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split_ascii_whitespace()
                .map(|w| {
                    if w == "\"\"" {
                        Vec::new()
                    } else {
                        w.as_bytes().to_vec()
                    }
                })
                .collect()
        })
        .collect()
}

/// One request laid out like the scanner's output: the argument bytes and their ranges.
struct Request {
    frame: Vec<u8>,
    ranges: Vec<Range<u32>>,
}

impl Request {
    fn new(args: &[Vec<u8>]) -> Request {
        let mut frame = Vec::new();
        let mut ranges = Vec::new();
        for arg in args {
            let start = frame.len() as u32;
            frame.extend_from_slice(arg);
            ranges.push(start..frame.len() as u32);
        }
        Request { frame, ranges }
    }

    fn view(&self) -> ArgView<'_> {
        ArgView::new(&self.frame, &self.ranges)
    }
}

/// A blocking RESP2 connection: the request encoded by hand, the reply decoded by
/// `redis-protocol`.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn connect(node: &RedisNode) -> Conn {
        let stream = TcpStream::connect(node.addr).expect("connect to redis-server");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    fn call(&mut self, args: &[&[u8]]) -> OwnedFrame {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            req.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            req.extend_from_slice(arg);
            req.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&req).expect("write request");
        loop {
            if let Some((frame, used)) = decode(&self.buf).expect("valid RESP2 reply") {
                self.buf.drain(..used);
                return frame;
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk).expect("read reply");
            assert!(n > 0, "redis-server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Starts a server and fetches its `COMMAND` reply.
fn server_and_command_reply() -> (RedisNode, Conn, OwnedFrame) {
    let node = RedisNode::standalone();
    let mut conn = Conn::connect(&node);
    let reply = conn.call(&[b"COMMAND"]);
    (node, conn, reply)
}

/// What `COMMAND GETKEYS` says about a request.
#[derive(Debug)]
enum Oracle {
    Keys(Vec<Vec<u8>>),
    /// An error ("no key arguments", "Invalid arguments" ...) or an empty list.
    NoKeys(String),
}

fn getkeys(conn: &mut Conn, args: &[Vec<u8>]) -> Oracle {
    if args.len() < 2 {
        // GETKEYS needs an argument after the name; without one there is no key anyway.
        return Oracle::NoKeys("(command name only)".into());
    }
    let mut req: Vec<&[u8]> = vec![b"COMMAND", b"GETKEYS"];
    req.extend(args.iter().map(Vec::as_slice));
    match conn.call(&req) {
        OwnedFrame::Array(keys) if keys.is_empty() => Oracle::NoKeys("(empty array)".into()),
        OwnedFrame::Array(keys) => Oracle::Keys(
            keys.into_iter()
                .map(|k| match k {
                    OwnedFrame::BulkString(b) => b,
                    other => panic!("GETKEYS returned {other:?}"),
                })
                .collect(),
        ),
        OwnedFrame::Error(e) => Oracle::NoKeys(e),
        other => panic!("GETKEYS returned {other:?}"),
    }
}

/// Keys GETKEYS does not report: shard channels (key specs flagged NOT_KEY), which Redis
/// Cluster nevertheless routes by, and the [`GETKEYS_GAPS`].
fn known_keys(args: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    let line = show(args);
    if let Some((_, keys)) = GETKEYS_GAPS.iter().find(|(sample, _)| *sample == line) {
        return Some(keys.iter().map(|k| k.as_bytes().to_vec()).collect());
    }
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    match name.as_str() {
        "spublish" => Some(args[1..2].to_vec()),
        "ssubscribe" | "sunsubscribe" => Some(args[1..].to_vec()),
        _ => None,
    }
}

/// The key arguments found in a request, or why there are none.
type FoundKeys = Result<Vec<Vec<u8>>, KeyError>;

/// The spec name and key arguments `table` finds in `args`.
fn our_keys(table: &CommandTable, args: &[Vec<u8>]) -> Option<(String, FoundKeys)> {
    let req = Request::new(args);
    let view = req.view();
    let spec = table.lookup(&view)?;
    let mut idx = Vec::new();
    let keys = spec
        .for_each_key(&view, |i| idx.push(i))
        .map(|()| idx.iter().map(|&i| args[i].clone()).collect());
    Some((spec.name.to_string(), keys))
}

fn show(args: &[Vec<u8>]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() {
                "\"\"".to_string()
            } else {
                String::from_utf8_lossy(a).into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn show_keys(keys: &FoundKeys) -> String {
    match keys {
        Ok(keys) => format!("Ok([{}])", show(keys)),
        Err(e) => format!("Err({e:?})"),
    }
}

/// `None` when `table` agrees with the oracle on `args`, else a description.
fn check(table: &CommandTable, args: &[Vec<u8>], oracle: &Oracle) -> Option<String> {
    let Some((name, ours)) = our_keys(table, args) else {
        return Some(format!("{}: unknown command", show(args)));
    };
    let ok = match (known_keys(args), oracle) {
        (Some(channels), _) => ours.as_ref() == Ok(&channels),
        (None, Oracle::Keys(expected)) => ours.as_ref() == Ok(expected),
        // A request GETKEYS finds no key in: finding none, or calling it malformed, is fine.
        (None, Oracle::NoKeys(_)) => ours.as_ref().map_or(true, Vec::is_empty),
    };
    (!ok).then(|| {
        format!(
            "{} ({name}): ours {} / GETKEYS {oracle:?}",
            show(args),
            show_keys(&ours)
        )
    })
}

/// The names of every command and subcommand in a `COMMAND` reply.
fn reply_names(reply: &OwnedFrame) -> BTreeSet<String> {
    fn walk(entries: &[OwnedFrame], out: &mut BTreeSet<String>) {
        for entry in entries {
            let OwnedFrame::Array(items) = entry else {
                panic!("entry {entry:?}")
            };
            let OwnedFrame::BulkString(name) = &items[0] else {
                panic!("name {:?}", items[0])
            };
            out.insert(String::from_utf8_lossy(name).to_ascii_lowercase());
            if let Some(OwnedFrame::Array(subs)) = items.get(9) {
                walk(subs, out);
            }
        }
    }
    let OwnedFrame::Array(entries) = reply else {
        panic!("COMMAND reply {reply:?}")
    };
    let mut out = BTreeSet::new();
    walk(entries, &mut out);
    out
}

/// The reply as a Redis 6 server would shape it: no tips, key specs or subcommands.
fn legacy_reply(reply: &OwnedFrame) -> OwnedFrame {
    let OwnedFrame::Array(entries) = reply else {
        panic!("COMMAND reply {reply:?}")
    };
    OwnedFrame::Array(
        entries
            .iter()
            .map(|e| match e {
                OwnedFrame::Array(items) => OwnedFrame::Array(items[..7].to_vec()),
                other => other.clone(),
            })
            .collect(),
    )
}

/// `spec` as a line of the built-in table (src/commands/builtin.rs).
fn builtin_line(spec: &CommandSpec) -> String {
    fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
        let joined = items.collect::<Vec<_>>().join(",");
        if joined.is_empty() {
            "-".into()
        } else {
            joined
        }
    }
    fn key_spec(ks: &KeySpec) -> String {
        let begin = match &ks.begin_search {
            BeginSearch::Index(i) => format!("i{i}"),
            BeginSearch::Keyword { keyword, startfrom } => format!(
                "kw:{}:{startfrom}",
                String::from_utf8_lossy(keyword).to_ascii_uppercase()
            ),
            BeginSearch::Unknown => "?".into(),
        };
        let find = match ks.find_keys {
            FindKeys::Range {
                lastkey,
                keystep,
                limit,
            } => format!("r{lastkey},{keystep},{limit}"),
            FindKeys::Keynum {
                keynumidx,
                firstkey,
                keystep,
            } => format!("n{keynumidx},{firstkey},{keystep}"),
            FindKeys::Unknown => "?".into(),
        };
        format!("{begin}/{find}/{}", list(ks.flags.names()))
    }
    let mut line = format!(
        "{} {} {} {}",
        spec.name,
        spec.arity,
        list(spec.flags.names()),
        list(spec.acl_categories.iter().map(|c| &**c))
    );
    for ks in spec.key_specs() {
        line.push(' ');
        line.push_str(&key_spec(ks));
    }
    line
}

#[test]
fn key_positions_match_command_getkeys() {
    let (_node, mut conn, reply) = server_and_command_reply();
    let learned = CommandTable::from_command_reply(&reply).expect("learn COMMAND reply");
    let legacy = CommandTable::from_command_reply(&legacy_reply(&reply))
        .expect("learn Redis 6-shaped reply");
    let builtin = CommandTable::builtin();
    let samples = samples();

    let mut failures = Vec::new();
    let mut covered = BTreeSet::new();
    let mut with_keys = 0;
    for args in &samples {
        let oracle = getkeys(&mut conn, args);
        if let Oracle::NoKeys(e) = &oracle {
            // A sample GETKEYS rejects for arity is a broken sample, not a finding.
            assert!(!e.contains("number of arguments"), "{}: {e}", show(args));
        }
        if matches!(oracle, Oracle::Keys(_)) || known_keys(args).is_some() {
            with_keys += 1;
        }
        if let Some((name, _)) = our_keys(&learned, args) {
            covered.insert(name);
        }
        for (table_name, table) in [
            ("learned", &learned),
            ("builtin", &builtin),
            ("legacy", &legacy),
        ] {
            if let Some(f) = check(table, args, &oracle) {
                failures.push(format!("[{table_name}] {f}"));
            }
        }
    }

    // Every key-carrying command and subcommand the server knows has a sample.
    let mut uncovered = Vec::new();
    for spec in learned
        .iter()
        .flat_map(|s| std::iter::once(s).chain(s.subcommands()))
    {
        if spec.has_keys()
            && !covered.contains(&*spec.name)
            && reply_names(&reply).contains(&*spec.name)
        {
            uncovered.push(spec.name.to_string());
        }
    }

    println!(
        "command_keys: {} samples ({} with keys) over {} commands/subcommands, compared \
         against COMMAND GETKEYS for the learned, built-in and Redis 6-shaped tables; \
         {} mismatches",
        samples.len(),
        with_keys,
        covered.len(),
        failures.len()
    );
    assert!(
        uncovered.is_empty(),
        "commands with keys but no sample: {uncovered:?}"
    );
    assert!(
        failures.is_empty(),
        "key mismatches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn builtin_agrees_with_server_metadata() {
    let (_node, _conn, reply) = server_and_command_reply();
    let learned = CommandTable::from_command_reply(&reply).expect("learn COMMAND reply");
    let builtin = CommandTable::builtin();
    let on_server = reply_names(&reply);
    let routing_flags = [
        ("write", CommandFlags::WRITE),
        ("readonly", CommandFlags::READONLY),
        ("blocking", CommandFlags::BLOCKING),
    ];

    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for name in &on_server {
        let server = learned
            .get(name)
            .expect("learned table has every reported command");
        let Some(ours) = builtin.get(name) else {
            failures.push(format!(
                "{name}: missing from the built-in table\n    {}",
                builtin_line(server)
            ));
            continue;
        };
        let mut problems = Vec::new();
        if ours.arity != server.arity {
            problems.push(format!("arity {} vs server {}", ours.arity, server.arity));
        }
        for (flag_name, flag) in routing_flags {
            if ours.flags.contains(flag) != server.flags.contains(flag) {
                problems.push(format!("flag {flag_name}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{name}: {}\n    {}",
                problems.join(", "),
                builtin_line(server)
            ));
        } else if builtin_line(ours) != builtin_line(server) {
            // Other flags, ACL categories or key spec details: worth knowing, not wrong routing
            // (key positions are checked by `key_positions_match_command_getkeys`).
            notes.push(format!(
                "{name}:\n    ours   {}\n    server {}",
                builtin_line(ours),
                builtin_line(server)
            ));
        }
    }
    let mut not_on_server = Vec::new();
    for spec in builtin
        .iter()
        .flat_map(|s| std::iter::once(s).chain(s.subcommands()))
    {
        if !on_server.contains(&*spec.name) {
            not_on_server.push(spec.name.to_string());
        }
    }
    not_on_server.sort();

    println!(
        "command_keys: built-in table vs server: {} commands/subcommands compared, {} differ in \
         arity or write/readonly/blocking, {} differ in other details; built-in only (newer \
         than this server): {not_on_server:?}",
        on_server.len(),
        failures.len(),
        notes.len()
    );
    for note in &notes {
        println!("  detail difference {note}");
    }
    assert!(
        failures.is_empty(),
        "built-in table disagrees with the server:\n{}",
        failures.join("\n")
    );
}

// --- The hot path does not allocate -------------------------------------------------------

/// Counts this thread's allocations, so the check below is not disturbed by other tests.
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: allocations during thread teardown must not panic.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn lookup_and_key_extraction_do_not_allocate() {
    let table = CommandTable::builtin();
    let requests: Vec<Request> = samples().iter().map(|a| Request::new(a)).collect();
    let mut found = 0usize;
    let mut errors = 0usize;
    let before = ALLOCATIONS.with(Cell::get);
    for req in &requests {
        let view = req.view();
        let spec = table
            .lookup(&view)
            .expect("every sample is a known command");
        match spec.for_each_key(&view, |i| found += i) {
            Ok(()) => {}
            Err(_) => errors += 1,
        }
    }
    let allocations = ALLOCATIONS.with(Cell::get) - before;
    assert_eq!(allocations, 0, "lookup/for_each_key allocated");
    assert!(found > 0 && errors > 0);
    // Keep the flags API honest too: reading flags is a copy.
    assert!(
        table
            .get("get")
            .unwrap()
            .flags
            .contains(CommandFlags::READONLY)
    );
    assert!(KeySpecFlags::from_name("not_key").is_some());
}
