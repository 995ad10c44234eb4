//! Unit tests for the command table: lookup, arity, key extraction over the built-in table,
//! and learning from hand-made `COMMAND` replies. `tests/command_keys.rs` checks the same
//! against a live redis-server.

use std::ops::Range;

use redis_protocol::resp2::types::OwnedFrame;

use super::*;

/// Runs `f` on an [`ArgView`] of the whitespace-separated `line` (`""` = empty argument).
fn with_args<R>(line: &str, f: impl FnOnce(&ArgView<'_>) -> R) -> R {
    let mut frame = Vec::new();
    let mut ranges: Vec<Range<u32>> = Vec::new();
    for word in line.split_ascii_whitespace() {
        let word = if word == "\"\"" { "" } else { word };
        let start = frame.len() as u32;
        frame.extend_from_slice(word.as_bytes());
        ranges.push(start..frame.len() as u32);
    }
    f(&ArgView::new(&frame, &ranges))
}

/// The spec name and key arguments `table` finds for `line`.
fn keys_in(table: &CommandTable, line: &str) -> (String, Result<Vec<String>, KeyError>) {
    with_args(line, |args| {
        let spec = table
            .lookup(args)
            .unwrap_or_else(|| panic!("no spec for {line:?}"));
        let mut idx = Vec::new();
        let res = spec.for_each_key(args, |i| idx.push(i)).map(|()| {
            idx.iter()
                .map(|&i| String::from_utf8(args.get(i).unwrap().to_vec()).unwrap())
                .collect()
        });
        (spec.name.to_string(), res)
    })
}

/// Asserts the built-in table finds exactly `expected` keys in `line`.
#[track_caller]
fn assert_keys(line: &str, expected: &[&str]) {
    let (name, keys) = keys_in(&CommandTable::builtin(), line);
    assert_eq!(
        keys,
        Ok(expected.iter().map(|s| s.to_string()).collect()),
        "{line:?} ({name})"
    );
}

#[track_caller]
fn assert_key_error(line: &str, expected: KeyError) {
    let (name, keys) = keys_in(&CommandTable::builtin(), line);
    assert_eq!(keys, Err(expected), "{line:?} ({name})");
}

#[test]
fn builtin_parses_and_covers_core_commands() {
    let table = CommandTable::builtin();
    assert!(table.len() >= 240, "only {} commands", table.len());
    for name in [
        "get",
        "set",
        "mset",
        "del",
        "lpush",
        "blmpop",
        "sadd",
        "zadd",
        "zunionstore",
        "hset",
        "xadd",
        "xreadgroup",
        "pfmerge",
        "geosearchstore",
        "bitop",
        "eval",
        "fcall_ro",
        "spublish",
        "ssubscribe",
        "multi",
        "exec",
        "watch",
        "ping",
        "hello",
        "info",
        "sort",
        "migrate",
        "waitaof",
        "hexpire",
    ] {
        assert!(table.get(name).is_some(), "{name} missing");
    }
    for container in [
        "client", "cluster", "config", "command", "object", "memory", "xinfo", "xgroup", "script",
        "function", "pubsub", "slowlog", "latency", "acl", "module",
    ] {
        let spec = table.get(container).unwrap();
        assert!(spec.has_subcommands(), "{container} has no subcommands");
        for sub in spec.subcommands() {
            assert!(
                sub.name.starts_with(&format!("{container}|")),
                "{}",
                sub.name
            );
        }
    }
    assert_eq!(table.iter().count(), table.len());
    assert!(!table.is_empty());
}

#[test]
fn lookup_is_case_insensitive() {
    let table = CommandTable::builtin();
    for line in ["get k", "GET k", "GeT k", "gET k"] {
        let spec = with_args(line, |a| table.lookup(a).map(|s| s.name.clone()));
        assert_eq!(spec.as_deref(), Some("get"), "{line}");
    }
    assert!(with_args("nosuchcommand k", |a| table.lookup(a).is_none()));
    assert!(with_args(&"x".repeat(300), |a| table.lookup(a).is_none()));
    assert!(with_args("", |a| table.lookup(a).is_none()));
    assert_eq!(
        table.get("GEORADIUS_RO").unwrap().name.as_ref(),
        "georadius_ro"
    );
    assert_eq!(
        table.get("Object|Encoding").unwrap().name.as_ref(),
        "object|encoding"
    );
}

#[test]
fn lookup_picks_subcommands() {
    let table = CommandTable::builtin();
    let name = |line: &str| with_args(line, |a| table.lookup(a).unwrap().name.to_string());
    assert_eq!(name("OBJECT ENCODING k"), "object|encoding");
    assert_eq!(name("object Freq k"), "object|freq");
    assert_eq!(name("client LIST"), "client|list");
    assert_eq!(name("CLUSTER shards"), "cluster|shards");
    assert_eq!(name("config get maxmemory"), "config|get");
    assert_eq!(name("xinfo stream s"), "xinfo|stream");
    assert_eq!(name("XGROUP CREATE s g $"), "xgroup|create");
    assert_eq!(name("memory usage k"), "memory|usage");
    assert_eq!(name("client no-touch on"), "client|no-touch");
    // Unknown or missing subcommand: the container, so the server reports the error.
    assert_eq!(name("object nosuch k"), "object");
    assert_eq!(name("object"), "object");
    assert_eq!(name(&format!("client {}", "y".repeat(100))), "client");
    // Only containers look at args[1].
    assert_eq!(name("get encoding"), "get");
}

#[test]
fn arity() {
    let table = CommandTable::builtin();
    let get = table.get("get").unwrap();
    assert_eq!(get.arity, 2);
    assert!(get.arity_ok(2));
    assert!(!get.arity_ok(1));
    assert!(!get.arity_ok(3));
    let mset = table.get("mset").unwrap();
    assert_eq!(mset.arity, -3);
    assert!(!mset.arity_ok(2));
    assert!(mset.arity_ok(3));
    assert!(mset.arity_ok(99));
    assert_eq!(table.get("object|encoding").unwrap().arity, 3);
    assert_eq!(table.get("xreadgroup").unwrap().arity, -7);
    assert_eq!(table.get("ping").unwrap().arity, -1);
    assert!(table.get("ping").unwrap().arity_ok(1));
}

#[test]
fn flags_and_categories() {
    let table = CommandTable::builtin();
    let get = table.get("get").unwrap();
    assert!(
        get.flags
            .contains(CommandFlags::READONLY | CommandFlags::FAST)
    );
    assert!(!get.flags.contains(CommandFlags::WRITE));
    assert_eq!(
        get.acl_categories,
        vec![Box::<str>::from("@read"), "@string".into(), "@fast".into()]
    );
    let blpop = table.get("blpop").unwrap();
    assert!(
        blpop
            .flags
            .contains(CommandFlags::WRITE | CommandFlags::BLOCKING)
    );
    assert!(
        table
            .get("eval")
            .unwrap()
            .flags
            .contains(CommandFlags::MOVABLEKEYS)
    );
    assert!(
        table
            .get("flushall")
            .unwrap()
            .acl_categories
            .iter()
            .any(|c| &**c == "@dangerous")
    );
    assert!(
        table
            .get("subscribe")
            .unwrap()
            .flags
            .contains(CommandFlags::PUBSUB)
    );
    assert!(
        table
            .get("hello")
            .unwrap()
            .flags
            .contains(CommandFlags::NO_AUTH)
    );
    assert_eq!(CommandFlags::from_name("WRITE"), Some(CommandFlags::WRITE));
    assert_eq!(CommandFlags::from_name("no_such_flag"), None);
    let names: Vec<_> = (CommandFlags::WRITE | CommandFlags::DENYOOM)
        .names()
        .collect();
    assert_eq!(names, ["write", "denyoom"]);
}

#[test]
fn single_and_multi_key_commands() {
    assert_keys("GET k", &["k"]);
    assert_keys("set k v EX 10 GET", &["k"]);
    assert_keys("MSET a 1 b 2 c 3", &["a", "b", "c"]);
    assert_keys("MGET a b c", &["a", "b", "c"]);
    assert_keys("DEL a b", &["a", "b"]);
    assert_keys("LMOVE src dst LEFT RIGHT", &["src", "dst"]);
    assert_keys("BLMOVE src dst LEFT RIGHT 0", &["src", "dst"]);
    assert_keys("BLPOP a b c 0", &["a", "b", "c"]);
    assert_keys("BITOP AND dst a b", &["dst", "a", "b"]);
    assert_keys("BITOP NOT dst a", &["dst", "a"]);
    assert_keys("COPY src dst REPLACE", &["src", "dst"]);
    assert_keys("LCS a b LEN", &["a", "b"]);
    assert_keys("SUNIONSTORE d a b", &["d", "a", "b"]);
    assert_keys("PFMERGE d", &["d"]);
    assert_keys(
        "GEOSEARCHSTORE dst src FROMMEMBER m BYRADIUS 1 km",
        &["dst", "src"],
    );
    assert_keys("RENAME a b", &["a", "b"]);
    assert_keys("PING", &[]);
    assert_keys("INFO server", &[]);
}

#[test]
fn numkeys_commands() {
    assert_keys("EVAL script 2 k1 k2 a1 a2", &["k1", "k2"]);
    assert_keys("EVAL script 0", &[]);
    assert_keys("EVAL script 0 a1", &[]);
    assert_keys("evalsha_ro sha 1 k", &["k"]);
    assert_keys("FCALL f 2 k1 k2", &["k1", "k2"]);
    assert_keys("ZUNIONSTORE dst 2 a b WEIGHTS 1 2", &["dst", "a", "b"]);
    assert_keys("ZINTER 2 a b WITHSCORES", &["a", "b"]);
    assert_keys("ZDIFFSTORE dst 1 a", &["dst", "a"]);
    assert_keys("SINTERCARD 2 a b LIMIT 5", &["a", "b"]);
    assert_keys("LMPOP 2 a b LEFT COUNT 2", &["a", "b"]);
    assert_keys("BLMPOP 0.5 2 a b RIGHT", &["a", "b"]);
    assert_keys("BZMPOP 1 1 z MIN", &["z"]);
    assert_keys("ZMPOP 1 z MAX", &["z"]);
}

#[test]
fn malformed_numkeys() {
    assert_key_error("EVAL script abc k", KeyError::NumkeysNotInteger);
    assert_key_error("EVAL script -1 k", KeyError::NumkeysNotInteger);
    assert_key_error("EVAL script 01 k", KeyError::NumkeysNotInteger);
    assert_key_error("EVAL script +1 k", KeyError::NumkeysNotInteger);
    assert_key_error(
        "EVAL script 99999999999999999999 k",
        KeyError::NumkeysNotInteger,
    );
    assert_key_error("EVAL script 3 k1 k2", KeyError::NumkeysOutOfRange);
    assert_key_error(
        "EVAL script 9223372036854775807 k",
        KeyError::NumkeysOutOfRange,
    );
    assert_key_error("ZUNIONSTORE dst 0 a", KeyError::NumkeysOutOfRange);
    assert_key_error("ZUNIONSTORE dst x a", KeyError::NumkeysNotInteger);
    assert_key_error("LMPOP 0 LEFT", KeyError::NumkeysOutOfRange);
    assert_key_error("ZINTER", KeyError::TooFewArguments);
    assert_key_error("GET", KeyError::TooFewArguments);
    assert_key_error("LMOVE src", KeyError::TooFewArguments);
}

#[test]
fn streams() {
    assert_keys("XREAD STREAMS a b 0 0", &["a", "b"]);
    assert_keys("XREAD COUNT 10 BLOCK 0 STREAMS a 0", &["a"]);
    assert_keys("xread count 1 streams streams $", &["streams"]);
    assert_keys(
        "XREADGROUP GROUP g c COUNT 1 STREAMS s1 s2 > >",
        &["s1", "s2"],
    );
    assert_keys("XREADGROUP GROUP g c NOACK STREAMS s >", &["s"]);
    assert_key_error("XREAD COUNT 10 BLOCK 0", KeyError::KeywordMissing);
    // A keyword in the last position has no key after it.
    assert_key_error("XREAD COUNT 10 STREAMS", KeyError::KeywordMissing);
    assert_keys("XADD s * f v", &["s"]);
    assert_keys("XINFO STREAM s FULL", &["s"]);
    assert_keys("XINFO GROUPS s", &["s"]);
    assert_keys("XGROUP CREATE s g $ MKSTREAM", &["s"]);
    assert_keys("XGROUP DESTROY s g", &["s"]);
    assert_keys("XINFO HELP", &[]);
}

#[test]
fn subcommand_keys() {
    assert_keys("OBJECT ENCODING k", &["k"]);
    assert_keys("object idletime k", &["k"]);
    assert_keys("MEMORY USAGE k SAMPLES 5", &["k"]);
    assert_keys("MEMORY STATS", &[]);
    assert_keys("CLIENT LIST", &[]);
    assert_keys("CLUSTER KEYSLOT k", &[]);
    assert_keys("COMMAND GETKEYS get k", &[]);
    assert_keys("SCRIPT LOAD x", &[]);
}

#[test]
fn sort_store() {
    assert_keys("SORT k", &["k"]);
    assert_keys("SORT k STORE dst", &["k", "dst"]);
    assert_keys(
        "SORT k BY w_* LIMIT 0 10 GET # GET o_* DESC ALPHA STORE dst",
        &["k", "dst"],
    );
    // Arguments of GET/BY/LIMIT are not options, even when spelled "store".
    assert_keys("SORT k GET store", &["k"]);
    assert_keys("SORT k BY store GET store", &["k"]);
    assert_keys("SORT k LIMIT store store", &["k"]);
    // The last STORE wins, as in SORT itself.
    assert_keys("SORT k STORE d1 STORE d2", &["k", "d2"]);
    assert_keys("SORT k STORE", &["k"]);
    assert_keys("SORT_RO k BY w_* GET #", &["k"]);
}

#[test]
fn migrate() {
    assert_keys("MIGRATE host 6379 k 0 5000", &["k"]);
    assert_keys("MIGRATE host 6379 k 0 5000 COPY REPLACE", &["k"]);
    assert_keys("MIGRATE host 6379 \"\" 0 5000 KEYS a b c", &["a", "b", "c"]);
    assert_keys(
        "MIGRATE host 6379 \"\" 0 5000 COPY AUTH keys KEYS a",
        &["a"],
    );
    assert_keys(
        "MIGRATE host 6379 \"\" 0 5000 AUTH2 keys keys KEYS a b",
        &["a", "b"],
    );
    // KEYS with a non-empty key argument is a syntax error.
    assert_key_error("MIGRATE host 6379 k 0 5000 KEYS a b", KeyError::Syntax);
    assert_key_error("MIGRATE host 6379", KeyError::TooFewArguments);
}

#[test]
fn keyword_specs() {
    assert_keys("GEORADIUS g 0 0 1 km STORE dst", &["g", "dst"]);
    assert_keys("GEORADIUS g 0 0 1 km STOREDIST dst", &["g", "dst"]);
    assert_keys("GEORADIUS g 0 0 1 km WITHDIST", &["g"]);
    assert_keys("GEORADIUSBYMEMBER g m 1 km STORE dst", &["g", "dst"]);
    assert_keys(
        "GEORADIUS g 0 0 1 km STORE d1 STOREDIST d2",
        &["g", "d1", "d2"],
    );
}

#[test]
fn pubsub_channels_route_like_keys() {
    assert_keys("SPUBLISH ch msg", &["ch"]);
    assert_keys("SSUBSCRIBE a b", &["a", "b"]);
    assert_keys("SUNSUBSCRIBE a", &["a"]);
    assert_keys("SUNSUBSCRIBE", &[]);
    assert_keys("PUBLISH ch msg", &[]);
    assert_keys("SUBSCRIBE a b", &[]);
}

/// A RESP2 bulk string.
fn b(s: &str) -> OwnedFrame {
    OwnedFrame::BulkString(s.as_bytes().to_vec())
}

fn st(s: &str) -> OwnedFrame {
    OwnedFrame::SimpleString(s.as_bytes().to_vec())
}

fn int(i: i64) -> OwnedFrame {
    OwnedFrame::Integer(i)
}

fn arr(items: Vec<OwnedFrame>) -> OwnedFrame {
    OwnedFrame::Array(items)
}

/// A Redis 7 key spec frame.
fn spec7(flags: &[&str], begin: OwnedFrame, find: OwnedFrame) -> OwnedFrame {
    arr(vec![
        b("flags"),
        arr(flags.iter().map(|f| st(f)).collect()),
        b("begin_search"),
        begin,
        b("find_keys"),
        find,
    ])
}

fn index(i: i64) -> OwnedFrame {
    arr(vec![
        b("type"),
        b("index"),
        b("spec"),
        arr(vec![b("index"), int(i)]),
    ])
}

fn range(lastkey: i64, keystep: i64, limit: i64) -> OwnedFrame {
    arr(vec![
        b("type"),
        b("range"),
        b("spec"),
        arr(vec![
            b("lastkey"),
            int(lastkey),
            b("keystep"),
            int(keystep),
            b("limit"),
            int(limit),
        ]),
    ])
}

/// A Redis 7 command entry.
fn entry7(
    name: &str,
    arity: i64,
    flags: &[&str],
    specs: Vec<OwnedFrame>,
    subs: Vec<OwnedFrame>,
) -> OwnedFrame {
    arr(vec![
        b(name),
        int(arity),
        arr(flags.iter().map(|f| st(f)).collect()),
        int(0),
        int(0),
        int(0),
        arr(vec![st("@slow")]),
        arr(vec![]),
        arr(specs),
        arr(subs),
    ])
}

#[test]
fn learns_redis7_entries_and_keeps_builtin_rest() {
    let reply = arr(vec![
        // A module command the built-in table cannot know.
        entry7(
            "MOD.MULTI",
            -2,
            &["write", "some_future_flag"],
            vec![spec7(&["RW"], index(1), range(-1, 2, 0))],
            vec![],
        ),
        // A container whose reply lists only one subcommand.
        entry7(
            "object",
            -2,
            &[],
            vec![],
            vec![entry7(
                "object|encoding",
                3,
                &["readonly"],
                vec![spec7(&["RO"], index(2), range(0, 1, 0))],
                vec![],
            )],
        ),
    ]);
    let table = CommandTable::from_command_reply(&reply).unwrap();
    let (name, keys) = keys_in(&table, "mod.multi a 1 b 2");
    assert_eq!(name, "mod.multi");
    assert_eq!(keys, Ok(vec!["a".to_string(), "b".to_string()]));
    assert!(
        table
            .get("mod.multi")
            .unwrap()
            .flags
            .contains(CommandFlags::WRITE)
    );
    assert_eq!(
        table.get("mod.multi").unwrap().acl_categories,
        vec![Box::<str>::from("@slow")]
    );
    // Everything else stays built-in.
    assert_eq!(table.len(), CommandTable::builtin().len() + 1);
    assert_eq!(
        keys_in(&table, "ZUNIONSTORE d 1 a").1,
        Ok(vec!["d".into(), "a".into()])
    );
    assert_eq!(keys_in(&table, "OBJECT ENCODING k").1, Ok(vec!["k".into()]));
    assert_eq!(keys_in(&table, "OBJECT FREQ k").0, "object|freq");
    // Names longer than any built-in one are found after learning them.
    let long = format!("mod.{}", "x".repeat(80));
    let reply = arr(vec![entry7(
        &long,
        2,
        &[],
        vec![spec7(&[], index(1), range(0, 1, 0))],
        vec![],
    )]);
    let table = CommandTable::from_command_reply(&reply).unwrap();
    assert_eq!(
        keys_in(&table, &format!("{} k", long.to_uppercase())).1,
        Ok(vec!["k".into()])
    );
}

/// A Redis 6 entry: name, arity, flags, first, last, step, ACL categories.
fn entry6(name: &str, arity: i64, flags: &[&str], first: i64, last: i64, step: i64) -> OwnedFrame {
    arr(vec![
        b(name),
        int(arity),
        arr(flags.iter().map(|f| st(f)).collect()),
        int(first),
        int(last),
        int(step),
        arr(vec![st("@slow")]),
    ])
}

#[test]
fn learns_legacy_entries() {
    let reply = arr(vec![
        entry6("mset", -3, &["write", "denyoom"], 1, -1, 2),
        entry6("eval", -3, &["noscript", "movablekeys"], 0, 0, 0),
        entry6("georadius", -6, &["write", "movablekeys"], 1, 1, 1),
        entry6("object", -2, &["readonly"], 2, 2, 1),
        entry6("legacy.mod", -2, &["write"], 2, -2, 1),
        // Redis 5: no ACL categories.
        arr(vec![
            b("get"),
            int(2),
            arr(vec![st("readonly")]),
            int(1),
            int(1),
            int(1),
        ]),
    ]);
    let table = CommandTable::from_command_reply(&reply).unwrap();
    let keys = |line| keys_in(&table, line).1.unwrap();
    assert_eq!(keys("MSET a 1 b 2"), ["a", "b"]);
    // Movable keys come from the built-in specs.
    assert_eq!(keys("EVAL s 2 k1 k2 x"), ["k1", "k2"]);
    assert_eq!(keys("GEORADIUS g 0 0 1 km STORE d"), ["g", "d"]);
    // Old servers do not list subcommands: the built-in ones stay.
    assert_eq!(keys_in(&table, "OBJECT ENCODING k").0, "object|encoding");
    assert_eq!(keys("OBJECT ENCODING k"), ["k"]);
    assert_eq!(keys("legacy.mod x a b c y"), ["a", "b", "c"]);
    assert_eq!(keys("GET k"), ["k"]);
    // Redis 5 lists no ACL categories: the built-in ones stay.
    assert_eq!(table.get("get").unwrap().acl_categories.len(), 3);
}

#[test]
fn reply_errors_say_what_is_wrong() {
    let err = CommandTable::from_command_reply(&OwnedFrame::Error("NOPERM no".into())).unwrap_err();
    assert!(
        matches!(err, CommandTableError::ErrorReply(ref e) if e == "NOPERM no"),
        "{err}"
    );

    let err = CommandTable::from_command_reply(&b("x")).unwrap_err();
    assert!(err.to_string().contains("array"), "{err}");

    let reply = arr(vec![
        entry6("get", 2, &[], 1, 1, 1),
        arr(vec![b("set"), b("two")]),
    ]);
    let err = CommandTable::from_command_reply(&reply)
        .unwrap_err()
        .to_string();
    assert!(err.contains("entry 1") && err.contains("\"set\""), "{err}");

    let reply = arr(vec![arr(vec![
        b("set"),
        b("-3"),
        arr(vec![]),
        int(1),
        int(1),
        int(1),
    ])]);
    let err = CommandTable::from_command_reply(&reply)
        .unwrap_err()
        .to_string();
    assert!(err.contains("arity") && err.contains("integer"), "{err}");

    let bad_step = entry7(
        "x",
        2,
        &[],
        vec![spec7(&[], index(1), range(0, 0, 0))],
        vec![],
    );
    let err = CommandTable::from_command_reply(&arr(vec![bad_step]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key spec 0") && err.contains("keystep"),
        "{err}"
    );
}

#[test]
fn unknown_spec_types_yield_what_can_be_found() {
    let unknown = arr(vec![b("type"), b("unknown"), b("spec"), arr(vec![])]);
    let future = arr(vec![
        b("type"),
        b("regex"),
        b("spec"),
        arr(vec![b("pattern"), b(".*")]),
    ]);
    let reply = arr(vec![entry7(
        "mod.cmd",
        -2,
        &["movablekeys"],
        vec![
            spec7(&["RO"], index(1), range(0, 1, 0)),
            spec7(&["RO"], unknown.clone(), unknown),
            spec7(&["RO"], future.clone(), future),
        ],
        vec![],
    )]);
    let table = CommandTable::from_command_reply(&reply).unwrap();
    assert_eq!(keys_in(&table, "mod.cmd a b c").1, Ok(vec!["a".into()]));
}

#[test]
fn builtin_line_parser_rejects_garbage() {
    let mut table = CommandTable::empty();
    for bad in [
        "get",
        "get two - -",
        "get 2 nosuchflag -",
        "get 2 - - i1/r0,1",
        "get 2 - - x1/r0,1,0/RO",
        "get 2 - - i1/r0,1,0/NOPE",
        "orphan|sub 2 - -",
    ] {
        assert!(builtin::parse_line(&mut table, bad).is_err(), "{bad}");
    }
    builtin::parse_line(&mut table, "# comment").unwrap();
    builtin::parse_line(&mut table, "get 2 readonly @read i1/r0,1,0/RO").unwrap();
    assert_eq!(table.len(), 1);
}

#[test]
fn keyword_search_directions() {
    let mut table = CommandTable::empty();
    for line in [
        "mod.back -2 - - kw:KEYS:-2/r-1,1,0/RW",
        "mod.fwd -2 - - kw:KEYS:2/r0,1,0/RW",
        "mod.zero -2 - - kw:KEYS:0/r0,1,0/RW",
        "mod.neg -2 - - i-2/r0,1,0/RW",
    ] {
        builtin::parse_line(&mut table, line).unwrap();
    }
    let keys = |line| keys_in(&table, line).1;
    let ok = |keys: &[&str]| Ok(keys.iter().map(|k| k.to_string()).collect::<Vec<_>>());
    // Backward from argc-2: the last KEYS before the end wins, index 1 is never checked.
    assert_eq!(keys("mod.back a KEYS k1 k2"), ok(&["k1", "k2"]));
    assert_eq!(keys("mod.back KEYS KEYS k1"), ok(&["k1"]));
    assert_eq!(keys("mod.back KEYS k1"), Err(KeyError::KeywordMissing));
    // Forward from startfrom, never the last argument (no key could follow).
    assert_eq!(keys("mod.fwd KEYS x KEYS k"), ok(&["k"]));
    assert_eq!(keys("mod.fwd a b KEYS"), Err(KeyError::KeywordMissing));
    assert_eq!(keys("mod.zero KEYS k"), Err(KeyError::KeywordMissing));
    // A negative index counts from the end.
    assert_eq!(keys("mod.neg a b c"), ok(&["b"]));
    assert_eq!(keys("mod.neg"), Err(KeyError::TooFewArguments));
}
