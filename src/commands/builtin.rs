//! The built-in command table: every core Redis 7 command, for when no backend has answered
//! `COMMAND` yet.
//!
//! The table is text in the shape of `COMMAND` output, one command per line, parsed once at
//! start into a [`CommandTable`]. It was generated from the `COMMAND` reply of Redis 7.0.15
//! and extended by hand with the 7.2/7.4 additions at the end; `tests/command_keys.rs`
//! checks it against a live server's reply and prints a corrected line for any command
//! where the two disagree, so keeping it current is copy and paste.
//!
//! Line format (`#` starts a comment line):
//!
//! ```text
//! name arity flags acl_categories [key_spec ...]
//! ```
//!
//! - `flags`, `acl_categories`: comma-separated, `-` for none.
//! - `key_spec`: `begin/find/flags` where `begin` is `i<index>`, `kw:<KEYWORD>:<startfrom>` or
//!   `?` (unknown), and `find` is `r<lastkey>,<keystep>,<limit>` (range),
//!   `n<keynumidx>,<firstkey>,<keystep>` (keynum) or `?` (unknown).
//! - A subcommand is named `container|sub` and follows its container.

use super::CommandTable;
use super::spec::{BeginSearch, CommandFlags, CommandSpec, FindKeys, KeySpec, KeySpecFlags};

/// Parses [`REDIS_7_0`] and [`NEWER`] into a table. The text is ours, so a parse failure is
/// a bug in this file, caught by the unit tests.
pub(super) fn table() -> CommandTable {
    let mut table = CommandTable::empty();
    for (n, line) in REDIS_7_0.lines().chain(NEWER.lines()).enumerate() {
        if let Err(e) = parse_line(&mut table, line) {
            panic!("built-in command table line {n} {line:?}: {e}");
        }
    }
    table
}

/// Adds one line's command to `table`; blank and comment lines add nothing.
pub(super) fn parse_line(table: &mut CommandTable, line: &str) -> Result<(), String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(());
    }
    let mut fields = line.split_ascii_whitespace();
    let mut next = |what: &str| fields.next().ok_or_else(|| format!("missing {what}"));
    let name = next("name")?;
    let arity: i32 = next("arity")?.parse().map_err(|e| format!("arity: {e}"))?;
    let mut flags = CommandFlags::empty();
    for f in list(next("flags")?) {
        flags |= CommandFlags::from_name(f).ok_or_else(|| format!("unknown flag {f:?}"))?;
    }
    let acl = list(next("ACL categories")?).map(Box::from).collect();
    let key_specs = fields.map(key_spec).collect::<Result<Vec<_>, _>>()?;
    let spec = CommandSpec::new(name, arity, flags, acl, key_specs);
    match name.split_once('|') {
        Some((container, _)) => table
            .get_mut(container)
            .ok_or_else(|| format!("container {container:?} not defined before {name:?}"))?
            .insert_subcommand(spec),
        None => table.insert(spec),
    }
    Ok(())
}

/// A comma-separated list, `-` meaning empty.
fn list(field: &str) -> impl Iterator<Item = &str> {
    field.split(',').filter(|f| !f.is_empty() && *f != "-")
}

/// `begin/find/flags`, see the module header.
fn key_spec(field: &str) -> Result<KeySpec, String> {
    let mut parts = field.split('/');
    let (Some(begin), Some(find), Some(flag_list), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("key spec {field:?} is not begin/find/flags"));
    };
    let int = |s: &str| s.parse::<i32>().map_err(|e| format!("{field:?}: {e}"));
    let begin_search = if begin == "?" {
        BeginSearch::Unknown
    } else if let Some(index) = begin.strip_prefix('i') {
        BeginSearch::Index(int(index)?)
    } else if let Some(kw) = begin.strip_prefix("kw:") {
        let (keyword, startfrom) = kw
            .rsplit_once(':')
            .ok_or_else(|| format!("{field:?}: keyword without startfrom"))?;
        BeginSearch::Keyword {
            keyword: keyword.to_ascii_lowercase().into_bytes().into_boxed_slice(),
            startfrom: int(startfrom)?,
        }
    } else {
        return Err(format!("{field:?}: unknown begin_search {begin:?}"));
    };
    let three = |s: &str| -> Result<[i32; 3], String> {
        let v = s.split(',').map(int).collect::<Result<Vec<_>, _>>()?;
        v.try_into()
            .map_err(|_| format!("{field:?}: expected three numbers"))
    };
    let find_keys = if find == "?" {
        FindKeys::Unknown
    } else if let Some(r) = find.strip_prefix('r') {
        let [lastkey, keystep, limit] = three(r)?;
        FindKeys::Range {
            lastkey,
            keystep,
            limit,
        }
    } else if let Some(n) = find.strip_prefix('n') {
        let [keynumidx, firstkey, keystep] = three(n)?;
        FindKeys::Keynum {
            keynumidx,
            firstkey,
            keystep,
        }
    } else {
        return Err(format!("{field:?}: unknown find_keys {find:?}"));
    };
    let mut flags = KeySpecFlags::empty();
    for f in list(flag_list) {
        flags =
            flags | KeySpecFlags::from_name(f).ok_or_else(|| format!("unknown key flag {f:?}"))?;
    }
    Ok(KeySpec {
        begin_search,
        find_keys,
        flags,
    })
}

/// `COMMAND` of Redis 7.0.15, every command and subcommand.
const REDIS_7_0: &str = "
acl -2 - @slow
  acl|cat -2 noscript,loading,stale @slow
  acl|deluser -3 admin,noscript,loading,stale @admin,@slow,@dangerous
  acl|dryrun -4 admin,noscript,loading,stale @admin,@slow,@dangerous
  acl|genpass -2 noscript,loading,stale @slow
  acl|getuser 3 admin,noscript,loading,stale @admin,@slow,@dangerous
  acl|help 2 loading,stale @slow
  acl|list 2 admin,noscript,loading,stale @admin,@slow,@dangerous
  acl|load 2 admin,noscript,loading,stale @admin,@slow,@dangerous
  acl|log -2 admin,noscript,loading,stale @admin,@slow,@dangerous
  acl|save 2 admin,noscript,loading,stale @admin,@slow,@dangerous
  acl|setuser -3 admin,noscript,loading,stale @admin,@slow,@dangerous
  acl|users 2 admin,noscript,loading,stale @admin,@slow,@dangerous
  acl|whoami 2 noscript,loading,stale @slow
append 3 write,denyoom,fast @write,@string,@fast i1/r0,1,0/RW,insert
asking 1 fast @fast,@connection
auth -2 noscript,loading,stale,fast,no_auth,allow_busy @fast,@connection
bgrewriteaof 1 admin,noscript,no_async_loading @admin,@slow,@dangerous
bgsave -1 admin,noscript,no_async_loading @admin,@slow,@dangerous
bitcount -2 readonly @read,@bitmap,@slow i1/r0,1,0/RO,access
bitfield -2 write,denyoom @write,@bitmap,@slow i1/r0,1,0/RW,access,update,variable_flags
bitfield_ro -2 readonly,fast @read,@bitmap,@fast i1/r0,1,0/RO,access
bitop -4 write,denyoom @write,@bitmap,@slow i2/r0,1,0/OW,update i3/r-1,1,0/RO,access
bitpos -3 readonly @read,@bitmap,@slow i1/r0,1,0/RO,access
blmove 6 write,denyoom,noscript,blocking @write,@list,@slow,@blocking i1/r0,1,0/RW,access,delete i2/r0,1,0/RW,insert
blmpop -5 write,blocking,movablekeys @write,@list,@slow,@blocking i2/n0,1,1/RW,access,delete
blpop -3 write,noscript,blocking @write,@list,@slow,@blocking i1/r-2,1,0/RW,access,delete
brpop -3 write,noscript,blocking @write,@list,@slow,@blocking i1/r-2,1,0/RW,access,delete
brpoplpush 4 write,denyoom,noscript,blocking @write,@list,@slow,@blocking i1/r0,1,0/RW,access,delete i2/r0,1,0/RW,insert
bzmpop -5 write,blocking,movablekeys @write,@sortedset,@slow,@blocking i2/n0,1,1/RW,access,delete
bzpopmax -3 write,noscript,blocking,fast @write,@sortedset,@fast,@blocking i1/r-2,1,0/RW,access,delete
bzpopmin -3 write,noscript,blocking,fast @write,@sortedset,@fast,@blocking i1/r-2,1,0/RW,access,delete
client -2 - @slow
  client|caching 3 noscript,loading,stale @slow,@connection
  client|getname 2 noscript,loading,stale @slow,@connection
  client|getredir 2 noscript,loading,stale @slow,@connection
  client|help 2 loading,stale @slow,@connection
  client|id 2 noscript,loading,stale @slow,@connection
  client|info 2 noscript,loading,stale @slow,@connection
  client|kill -3 admin,noscript,loading,stale @admin,@slow,@dangerous,@connection
  client|list -2 admin,noscript,loading,stale @admin,@slow,@dangerous,@connection
  client|no-evict 3 admin,noscript,loading,stale @admin,@slow,@dangerous,@connection
  client|pause -3 admin,noscript,loading,stale @admin,@slow,@dangerous,@connection
  client|reply 3 noscript,loading,stale @slow,@connection
  client|setname 3 noscript,loading,stale @slow,@connection
  client|tracking -3 noscript,loading,stale @slow,@connection
  client|trackinginfo 2 noscript,loading,stale @slow,@connection
  client|unblock -3 admin,noscript,loading,stale @admin,@slow,@dangerous,@connection
  client|unpause 2 admin,noscript,loading,stale @admin,@slow,@dangerous,@connection
cluster -2 - @slow
  cluster|addslots -3 admin,stale,no_async_loading @admin,@slow,@dangerous
  cluster|addslotsrange -4 admin,stale,no_async_loading @admin,@slow,@dangerous
  cluster|bumpepoch 2 admin,stale,no_async_loading @admin,@slow,@dangerous
  cluster|count-failure-reports 3 admin,stale @admin,@slow,@dangerous
  cluster|countkeysinslot 3 stale @slow
  cluster|delslots -3 admin,stale,no_async_loading @admin,@slow,@dangerous
  cluster|delslotsrange -4 admin,stale,no_async_loading @admin,@slow,@dangerous
  cluster|failover -2 admin,stale,no_async_loading @admin,@slow,@dangerous
  cluster|flushslots 2 admin,stale,no_async_loading @admin,@slow,@dangerous
  cluster|forget 3 admin,stale,no_async_loading @admin,@slow,@dangerous
  cluster|getkeysinslot 4 stale @slow
  cluster|help 2 loading,stale @slow
  cluster|info 2 stale @slow
  cluster|keyslot 3 stale @slow
  cluster|links 2 stale @slow
  cluster|meet -4 admin,stale,no_async_loading @admin,@slow,@dangerous
  cluster|myid 2 stale @slow
  cluster|nodes 2 stale @slow
  cluster|replicas 3 admin,stale @admin,@slow,@dangerous
  cluster|replicate 3 admin,stale,no_async_loading @admin,@slow,@dangerous
  cluster|reset -2 admin,noscript,stale @admin,@slow,@dangerous
  cluster|saveconfig 2 admin,stale,no_async_loading @admin,@slow,@dangerous
  cluster|set-config-epoch 3 admin,stale,no_async_loading @admin,@slow,@dangerous
  cluster|setslot -4 admin,stale,no_async_loading @admin,@slow,@dangerous
  cluster|shards 2 stale @slow
  cluster|slaves 3 admin,stale @admin,@slow,@dangerous
  cluster|slots 2 stale @slow
command -1 loading,stale @slow,@connection
  command|count 2 loading,stale @slow,@connection
  command|docs -2 loading,stale @slow,@connection
  command|getkeys -4 loading,stale @slow,@connection
  command|getkeysandflags -4 loading,stale @slow,@connection
  command|help 2 loading,stale @slow,@connection
  command|info -2 loading,stale @slow,@connection
  command|list -2 loading,stale @slow,@connection
config -2 - @slow
  config|get -3 admin,noscript,loading,stale @admin,@slow,@dangerous
  config|help 2 loading,stale @slow
  config|resetstat 2 admin,noscript,loading,stale @admin,@slow,@dangerous
  config|rewrite 2 admin,noscript,loading,stale @admin,@slow,@dangerous
  config|set -4 admin,noscript,loading,stale @admin,@slow,@dangerous
copy -3 write,denyoom @keyspace,@write,@slow i1/r0,1,0/RO,access i2/r0,1,0/OW,update
dbsize 1 readonly,fast @keyspace,@read,@fast
debug -2 admin,noscript,loading,stale @admin,@slow,@dangerous
decr 2 write,denyoom,fast @write,@string,@fast i1/r0,1,0/RW,access,update
decrby 3 write,denyoom,fast @write,@string,@fast i1/r0,1,0/RW,access,update
del -2 write @keyspace,@write,@slow i1/r-1,1,0/RM,delete
discard 1 noscript,loading,stale,fast,allow_busy @fast,@transaction
dump 2 readonly @keyspace,@read,@slow i1/r0,1,0/RO,access
echo 2 loading,stale,fast @fast,@connection
eval -3 noscript,stale,skip_monitor,no_mandatory_keys,movablekeys @slow,@scripting i2/n0,1,1/RW,access,update
eval_ro -3 readonly,noscript,stale,skip_monitor,no_mandatory_keys,movablekeys @slow,@scripting i2/n0,1,1/RO,access
evalsha -3 noscript,stale,skip_monitor,no_mandatory_keys,movablekeys @slow,@scripting i2/n0,1,1/RW,access,update
evalsha_ro -3 readonly,noscript,stale,skip_monitor,no_mandatory_keys,movablekeys @slow,@scripting i2/n0,1,1/RO,access
exec 1 noscript,loading,stale,skip_slowlog @slow,@transaction
exists -2 readonly,fast @keyspace,@read,@fast i1/r-1,1,0/RO
expire -3 write,fast @keyspace,@write,@fast i1/r0,1,0/RW,update
expireat -3 write,fast @keyspace,@write,@fast i1/r0,1,0/RW,update
expiretime 2 readonly,fast @keyspace,@read,@fast i1/r0,1,0/RO,access
failover -1 admin,noscript,stale @admin,@slow,@dangerous
fcall -3 noscript,stale,skip_monitor,no_mandatory_keys,movablekeys @slow,@scripting i2/n0,1,1/RW,access,update
fcall_ro -3 readonly,noscript,stale,skip_monitor,no_mandatory_keys,movablekeys @slow,@scripting i2/n0,1,1/RO,access
flushall -1 write @keyspace,@write,@slow,@dangerous
flushdb -1 write @keyspace,@write,@slow,@dangerous
function -2 - @slow
  function|delete 3 write,noscript @write,@slow,@scripting
  function|dump 2 noscript @slow,@scripting
  function|flush -2 write,noscript @write,@slow,@scripting
  function|help 2 loading,stale @slow,@scripting
  function|kill 2 noscript,allow_busy @slow,@scripting
  function|list -2 noscript @slow,@scripting
  function|load -3 write,denyoom,noscript @write,@slow,@scripting
  function|restore -3 write,denyoom,noscript @write,@slow,@scripting
  function|stats 2 noscript,allow_busy @slow,@scripting
geoadd -5 write,denyoom @write,@geo,@slow i1/r0,1,0/RW,update
geodist -4 readonly @read,@geo,@slow i1/r0,1,0/RO,access
geohash -2 readonly @read,@geo,@slow i1/r0,1,0/RO,access
geopos -2 readonly @read,@geo,@slow i1/r0,1,0/RO,access
georadius -6 write,denyoom,movablekeys @write,@geo,@slow i1/r0,1,0/RO,access kw:STORE:6/r0,1,0/OW,update kw:STOREDIST:6/r0,1,0/OW,update
georadius_ro -6 readonly @read,@geo,@slow i1/r0,1,0/RO,access
georadiusbymember -5 write,denyoom,movablekeys @write,@geo,@slow i1/r0,1,0/RO,access kw:STORE:5/r0,1,0/OW,update kw:STOREDIST:5/r0,1,0/OW,update
georadiusbymember_ro -5 readonly @read,@geo,@slow i1/r0,1,0/RO,access
geosearch -7 readonly @read,@geo,@slow i1/r0,1,0/RO,access
geosearchstore -8 write,denyoom @write,@geo,@slow i1/r0,1,0/OW,update i2/r0,1,0/RO,access
get 2 readonly,fast @read,@string,@fast i1/r0,1,0/RO,access
getbit 3 readonly,fast @read,@bitmap,@fast i1/r0,1,0/RO,access
getdel 2 write,fast @write,@string,@fast i1/r0,1,0/RW,access,delete
getex -2 write,fast @write,@string,@fast i1/r0,1,0/RW,access,update
getrange 4 readonly @read,@string,@slow i1/r0,1,0/RO,access
getset 3 write,denyoom,fast @write,@string,@fast i1/r0,1,0/RW,access,update
hdel -3 write,fast @write,@hash,@fast i1/r0,1,0/RW,delete
hello -1 noscript,loading,stale,fast,no_auth,allow_busy @fast,@connection
hexists 3 readonly,fast @read,@hash,@fast i1/r0,1,0/RO
hget 3 readonly,fast @read,@hash,@fast i1/r0,1,0/RO,access
hgetall 2 readonly @read,@hash,@slow i1/r0,1,0/RO,access
hincrby 4 write,denyoom,fast @write,@hash,@fast i1/r0,1,0/RW,access,update
hincrbyfloat 4 write,denyoom,fast @write,@hash,@fast i1/r0,1,0/RW,access,update
hkeys 2 readonly @read,@hash,@slow i1/r0,1,0/RO,access
hlen 2 readonly,fast @read,@hash,@fast i1/r0,1,0/RO
hmget -3 readonly,fast @read,@hash,@fast i1/r0,1,0/RO,access
hmset -4 write,denyoom,fast @write,@hash,@fast i1/r0,1,0/RW,update
hrandfield -2 readonly @read,@hash,@slow i1/r0,1,0/RO,access
hscan -3 readonly @read,@hash,@slow i1/r0,1,0/RO,access
hset -4 write,denyoom,fast @write,@hash,@fast i1/r0,1,0/RW,update
hsetnx 4 write,denyoom,fast @write,@hash,@fast i1/r0,1,0/RW,insert
hstrlen 3 readonly,fast @read,@hash,@fast i1/r0,1,0/RO
hvals 2 readonly @read,@hash,@slow i1/r0,1,0/RO,access
incr 2 write,denyoom,fast @write,@string,@fast i1/r0,1,0/RW,access,update
incrby 3 write,denyoom,fast @write,@string,@fast i1/r0,1,0/RW,access,update
incrbyfloat 3 write,denyoom,fast @write,@string,@fast i1/r0,1,0/RW,access,update
info -1 loading,stale @slow,@dangerous
keys 2 readonly @keyspace,@read,@slow,@dangerous
lastsave 1 loading,stale,fast @admin,@fast,@dangerous
latency -2 - @slow
  latency|doctor 2 admin,noscript,loading,stale @admin,@slow,@dangerous
  latency|graph 3 admin,noscript,loading,stale @admin,@slow,@dangerous
  latency|help 2 loading,stale @slow
  latency|histogram -2 admin,noscript,loading,stale @admin,@slow,@dangerous
  latency|history 3 admin,noscript,loading,stale @admin,@slow,@dangerous
  latency|latest 2 admin,noscript,loading,stale @admin,@slow,@dangerous
  latency|reset -2 admin,noscript,loading,stale @admin,@slow,@dangerous
lcs -3 readonly @read,@string,@slow i1/r1,1,0/RO,access
lindex 3 readonly @read,@list,@slow i1/r0,1,0/RO,access
linsert 5 write,denyoom @write,@list,@slow i1/r0,1,0/RW,insert
llen 2 readonly,fast @read,@list,@fast i1/r0,1,0/RO
lmove 5 write,denyoom @write,@list,@slow i1/r0,1,0/RW,access,delete i2/r0,1,0/RW,insert
lmpop -4 write,movablekeys @write,@list,@slow i1/n0,1,1/RW,access,delete
lolwut -1 readonly,fast @read,@fast
lpop -2 write,fast @write,@list,@fast i1/r0,1,0/RW,access,delete
lpos -3 readonly @read,@list,@slow i1/r0,1,0/RO,access
lpush -3 write,denyoom,fast @write,@list,@fast i1/r0,1,0/RW,insert
lpushx -3 write,denyoom,fast @write,@list,@fast i1/r0,1,0/RW,insert
lrange 4 readonly @read,@list,@slow i1/r0,1,0/RO,access
lrem 4 write @write,@list,@slow i1/r0,1,0/RW,delete
lset 4 write,denyoom @write,@list,@slow i1/r0,1,0/RW,update
ltrim 4 write @write,@list,@slow i1/r0,1,0/RW,delete
memory -2 - @slow
  memory|doctor 2 - @slow
  memory|help 2 loading,stale @slow
  memory|malloc-stats 2 - @slow
  memory|purge 2 - @slow
  memory|stats 2 - @slow
  memory|usage -3 readonly @read,@slow i2/r0,1,0/RO
mget -2 readonly,fast @read,@string,@fast i1/r-1,1,0/RO,access
migrate -6 write,movablekeys @keyspace,@write,@slow,@dangerous i3/r0,1,0/RW,access,delete kw:KEYS:-2/r-1,1,0/RW,access,delete,incomplete
module -2 - @slow
  module|help 2 loading,stale @slow
  module|list 2 admin,noscript @admin,@slow,@dangerous
  module|load -3 admin,noscript,no_async_loading @admin,@slow,@dangerous
  module|loadex -3 admin,noscript,no_async_loading @admin,@slow,@dangerous
  module|unload 3 admin,noscript,no_async_loading @admin,@slow,@dangerous
monitor 1 admin,noscript,loading,stale @admin,@slow,@dangerous
move 3 write,fast @keyspace,@write,@fast i1/r0,1,0/RW,access,update
mset -3 write,denyoom @write,@string,@slow i1/r-1,2,0/OW,update
msetnx -3 write,denyoom @write,@string,@slow i1/r-1,2,0/OW,insert
multi 1 noscript,loading,stale,fast,allow_busy @fast,@transaction
object -2 - @slow
  object|encoding 3 readonly @keyspace,@read,@slow i2/r0,1,0/RO
  object|freq 3 readonly @keyspace,@read,@slow i2/r0,1,0/RO
  object|help 2 loading,stale @keyspace,@slow
  object|idletime 3 readonly @keyspace,@read,@slow i2/r0,1,0/RO
  object|refcount 3 readonly @keyspace,@read,@slow i2/r0,1,0/RO
persist 2 write,fast @keyspace,@write,@fast i1/r0,1,0/RW,update
pexpire -3 write,fast @keyspace,@write,@fast i1/r0,1,0/RW,update
pexpireat -3 write,fast @keyspace,@write,@fast i1/r0,1,0/RW,update
pexpiretime 2 readonly,fast @keyspace,@read,@fast i1/r0,1,0/RO,access
pfadd -2 write,denyoom,fast @write,@hyperloglog,@fast i1/r0,1,0/RW,insert
pfcount -2 readonly @read,@hyperloglog,@slow i1/r-1,1,0/RW,access
pfdebug 3 write,denyoom,admin @write,@hyperloglog,@admin,@slow,@dangerous i2/r0,1,0/RW,access
pfmerge -2 write,denyoom @write,@hyperloglog,@slow i1/r0,1,0/RW,access,insert i2/r-1,1,0/RO,access
pfselftest 1 admin @hyperloglog,@admin,@slow,@dangerous
ping -1 fast @fast,@connection
psetex 4 write,denyoom @write,@string,@slow i1/r0,1,0/OW,update
psubscribe -2 pubsub,noscript,loading,stale @pubsub,@slow
psync -3 admin,noscript,no_async_loading,no_multi @admin,@slow,@dangerous
pttl 2 readonly,fast @keyspace,@read,@fast i1/r0,1,0/RO,access
publish 3 pubsub,loading,stale,fast @pubsub,@fast
pubsub -2 - @slow
  pubsub|channels -2 pubsub,loading,stale @pubsub,@slow
  pubsub|help 2 loading,stale @slow
  pubsub|numpat 2 pubsub,loading,stale @pubsub,@slow
  pubsub|numsub -2 pubsub,loading,stale @pubsub,@slow
  pubsub|shardchannels -2 pubsub,loading,stale @pubsub,@slow
  pubsub|shardnumsub -2 pubsub,loading,stale @pubsub,@slow
punsubscribe -1 pubsub,noscript,loading,stale @pubsub,@slow
quit -1 noscript,loading,stale,fast,no_auth,allow_busy @fast,@connection
randomkey 1 readonly @keyspace,@read,@slow
readonly 1 loading,stale,fast @fast,@connection
readwrite 1 loading,stale,fast @fast,@connection
rename 3 write @keyspace,@write,@slow i1/r0,1,0/RW,access,delete i2/r0,1,0/OW,update
renamenx 3 write,fast @keyspace,@write,@fast i1/r0,1,0/RW,access,delete i2/r0,1,0/OW,insert
replconf -1 admin,noscript,loading,stale,allow_busy @admin,@slow,@dangerous
replicaof 3 admin,noscript,stale,no_async_loading @admin,@slow,@dangerous
reset 1 noscript,loading,stale,fast,no_auth,allow_busy @fast,@connection
restore -4 write,denyoom @keyspace,@write,@slow,@dangerous i1/r0,1,0/OW,update
restore-asking -4 write,denyoom,asking @keyspace,@write,@slow,@dangerous i1/r0,1,0/OW,update
role 1 noscript,loading,stale,fast @admin,@fast,@dangerous
rpop -2 write,fast @write,@list,@fast i1/r0,1,0/RW,access,delete
rpoplpush 3 write,denyoom @write,@list,@slow i1/r0,1,0/RW,access,delete i2/r0,1,0/RW,insert
rpush -3 write,denyoom,fast @write,@list,@fast i1/r0,1,0/RW,insert
rpushx -3 write,denyoom,fast @write,@list,@fast i1/r0,1,0/RW,insert
sadd -3 write,denyoom,fast @write,@set,@fast i1/r0,1,0/RW,insert
save 1 admin,noscript,no_async_loading,no_multi @admin,@slow,@dangerous
scan -2 readonly @keyspace,@read,@slow
scard 2 readonly,fast @read,@set,@fast i1/r0,1,0/RO
script -2 - @slow
  script|debug 3 noscript @slow,@scripting
  script|exists -3 noscript @slow,@scripting
  script|flush -2 noscript @slow,@scripting
  script|help 2 loading,stale @slow,@scripting
  script|kill 2 noscript,allow_busy @slow,@scripting
  script|load 3 noscript,stale @slow,@scripting
sdiff -2 readonly @read,@set,@slow i1/r-1,1,0/RO,access
sdiffstore -3 write,denyoom @write,@set,@slow i1/r0,1,0/OW,update i2/r-1,1,0/RO,access
select 2 loading,stale,fast @fast,@connection
set -3 write,denyoom @write,@string,@slow i1/r0,1,0/RW,access,update,variable_flags
setbit 4 write,denyoom @write,@bitmap,@slow i1/r0,1,0/RW,access,update
setex 4 write,denyoom @write,@string,@slow i1/r0,1,0/OW,update
setnx 3 write,denyoom,fast @write,@string,@fast i1/r0,1,0/OW,insert
setrange 4 write,denyoom @write,@string,@slow i1/r0,1,0/RW,update
shutdown -1 admin,noscript,loading,stale,no_multi,allow_busy @admin,@slow,@dangerous
sinter -2 readonly @read,@set,@slow i1/r-1,1,0/RO,access
sintercard -3 readonly,movablekeys @read,@set,@slow i1/n0,1,1/RO,access
sinterstore -3 write,denyoom @write,@set,@slow i1/r0,1,0/RW,update i2/r-1,1,0/RO,access
sismember 3 readonly,fast @read,@set,@fast i1/r0,1,0/RO
slaveof 3 admin,noscript,stale,no_async_loading @admin,@slow,@dangerous
slowlog -2 - @slow
  slowlog|get -2 admin,loading,stale @admin,@slow,@dangerous
  slowlog|help 2 loading,stale @slow
  slowlog|len 2 admin,loading,stale @admin,@slow,@dangerous
  slowlog|reset 2 admin,loading,stale @admin,@slow,@dangerous
smembers 2 readonly @read,@set,@slow i1/r0,1,0/RO,access
smismember -3 readonly,fast @read,@set,@fast i1/r0,1,0/RO,access
smove 4 write,fast @write,@set,@fast i1/r0,1,0/RW,access,delete i2/r0,1,0/RW,insert
sort -2 write,denyoom,movablekeys @write,@set,@sortedset,@list,@slow,@dangerous i1/r0,1,0/RO,access ?/?/RO,access ?/?/OW,update
sort_ro -2 readonly,movablekeys @read,@set,@sortedset,@list,@slow,@dangerous i1/r0,1,0/RO,access ?/?/RO,access
spop -2 write,fast @write,@set,@fast i1/r0,1,0/RW,access,delete
spublish 3 pubsub,loading,stale,fast @pubsub,@fast i1/r0,1,0/not_key
srandmember -2 readonly @read,@set,@slow i1/r0,1,0/RO,access
srem -3 write,fast @write,@set,@fast i1/r0,1,0/RW,delete
sscan -3 readonly @read,@set,@slow i1/r0,1,0/RO,access
ssubscribe -2 pubsub,noscript,loading,stale @pubsub,@slow i1/r-1,1,0/not_key
strlen 2 readonly,fast @read,@string,@fast i1/r0,1,0/RO
subscribe -2 pubsub,noscript,loading,stale @pubsub,@slow
substr 4 readonly @read,@string,@slow i1/r0,1,0/RO,access
sunion -2 readonly @read,@set,@slow i1/r-1,1,0/RO,access
sunionstore -3 write,denyoom @write,@set,@slow i1/r0,1,0/OW,update i2/r-1,1,0/RO,access
sunsubscribe -1 pubsub,noscript,loading,stale @pubsub,@slow i1/r-1,1,0/not_key
swapdb 3 write,fast @keyspace,@write,@fast,@dangerous
sync 1 admin,noscript,no_async_loading,no_multi @admin,@slow,@dangerous
time 1 loading,stale,fast @fast
touch -2 readonly,fast @keyspace,@read,@fast i1/r-1,1,0/RO
ttl 2 readonly,fast @keyspace,@read,@fast i1/r0,1,0/RO,access
type 2 readonly,fast @keyspace,@read,@fast i1/r0,1,0/RO
unlink -2 write,fast @keyspace,@write,@fast i1/r-1,1,0/RM,delete
unsubscribe -1 pubsub,noscript,loading,stale @pubsub,@slow
unwatch 1 noscript,loading,stale,fast,allow_busy @fast,@transaction
wait 3 noscript @slow,@connection
watch -2 noscript,loading,stale,fast,allow_busy @fast,@transaction i1/r-1,1,0/RO
xack -4 write,fast @write,@stream,@fast i1/r0,1,0/RW,update
xadd -5 write,denyoom,fast @write,@stream,@fast i1/r0,1,0/RW,update
xautoclaim -6 write,fast @write,@stream,@fast i1/r0,1,0/RW,delete
xclaim -6 write,fast @write,@stream,@fast i1/r0,1,0/RW,update
xdel -3 write,fast @write,@stream,@fast i1/r0,1,0/RW,delete
xgroup -2 - @slow
  xgroup|create -5 write,denyoom @write,@stream,@slow i2/r0,1,0/RW,insert
  xgroup|createconsumer 5 write,denyoom @write,@stream,@slow i2/r0,1,0/RW,insert
  xgroup|delconsumer 5 write @write,@stream,@slow i2/r0,1,0/RW,delete
  xgroup|destroy 4 write @write,@stream,@slow i2/r0,1,0/RW,delete
  xgroup|help 2 loading,stale @stream,@slow
  xgroup|setid -5 write @write,@stream,@slow i2/r0,1,0/RW,update
xinfo -2 - @slow
  xinfo|consumers 4 readonly @read,@stream,@slow i2/r0,1,0/RO,access
  xinfo|groups 3 readonly @read,@stream,@slow i2/r0,1,0/RO,access
  xinfo|help 2 loading,stale @stream,@slow
  xinfo|stream -3 readonly @read,@stream,@slow i2/r0,1,0/RO,access
xlen 2 readonly,fast @read,@stream,@fast i1/r0,1,0/RO
xpending -3 readonly @read,@stream,@slow i1/r0,1,0/RO,access
xrange -4 readonly @read,@stream,@slow i1/r0,1,0/RO,access
xread -4 readonly,blocking,movablekeys @read,@stream,@slow,@blocking kw:STREAMS:1/r-1,1,2/RO,access
xreadgroup -7 write,blocking,movablekeys @write,@stream,@slow,@blocking kw:STREAMS:4/r-1,1,2/RO,access
xrevrange -4 readonly @read,@stream,@slow i1/r0,1,0/RO,access
xsetid -3 write,denyoom,fast @write,@stream,@fast i1/r0,1,0/RW,update
xtrim -4 write @write,@stream,@slow i1/r0,1,0/RW,delete
zadd -4 write,denyoom,fast @write,@sortedset,@fast i1/r0,1,0/RW,update
zcard 2 readonly,fast @read,@sortedset,@fast i1/r0,1,0/RO
zcount 4 readonly,fast @read,@sortedset,@fast i1/r0,1,0/RO,access
zdiff -3 readonly,movablekeys @read,@sortedset,@slow i1/n0,1,1/RO,access
zdiffstore -4 write,denyoom,movablekeys @write,@sortedset,@slow i1/r0,1,0/OW,update i2/n0,1,1/RO,access
zincrby 4 write,denyoom,fast @write,@sortedset,@fast i1/r0,1,0/RW,access,update
zinter -3 readonly,movablekeys @read,@sortedset,@slow i1/n0,1,1/RO,access
zintercard -3 readonly,movablekeys @read,@sortedset,@slow i1/n0,1,1/RO,access
zinterstore -4 write,denyoom,movablekeys @write,@sortedset,@slow i1/r0,1,0/OW,update i2/n0,1,1/RO,access
zlexcount 4 readonly,fast @read,@sortedset,@fast i1/r0,1,0/RO,access
zmpop -4 write,movablekeys @write,@sortedset,@slow i1/n0,1,1/RW,access,delete
zmscore -3 readonly,fast @read,@sortedset,@fast i1/r0,1,0/RO,access
zpopmax -2 write,fast @write,@sortedset,@fast i1/r0,1,0/RW,access,delete
zpopmin -2 write,fast @write,@sortedset,@fast i1/r0,1,0/RW,access,delete
zrandmember -2 readonly @read,@sortedset,@slow i1/r0,1,0/RO,access
zrange -4 readonly @read,@sortedset,@slow i1/r0,1,0/RO,access
zrangebylex -4 readonly @read,@sortedset,@slow i1/r0,1,0/RO,access
zrangebyscore -4 readonly @read,@sortedset,@slow i1/r0,1,0/RO,access
zrangestore -5 write,denyoom @write,@sortedset,@slow i1/r0,1,0/OW,update i2/r0,1,0/RO,access
zrank 3 readonly,fast @read,@sortedset,@fast i1/r0,1,0/RO,access
zrem -3 write,fast @write,@sortedset,@fast i1/r0,1,0/RW,delete
zremrangebylex 4 write @write,@sortedset,@slow i1/r0,1,0/RW,delete
zremrangebyrank 4 write @write,@sortedset,@slow i1/r0,1,0/RW,delete
zremrangebyscore 4 write @write,@sortedset,@slow i1/r0,1,0/RW,delete
zrevrange -4 readonly @read,@sortedset,@slow i1/r0,1,0/RO,access
zrevrangebylex -4 readonly @read,@sortedset,@slow i1/r0,1,0/RO,access
zrevrangebyscore -4 readonly @read,@sortedset,@slow i1/r0,1,0/RO,access
zrevrank 3 readonly,fast @read,@sortedset,@fast i1/r0,1,0/RO,access
zscan -3 readonly @read,@sortedset,@slow i1/r0,1,0/RO,access
zscore 3 readonly,fast @read,@sortedset,@fast i1/r0,1,0/RO,access
zunion -3 readonly,movablekeys @read,@sortedset,@slow i1/n0,1,1/RO,access
zunionstore -4 write,denyoom,movablekeys @write,@sortedset,@slow i1/r0,1,0/OW,update i2/n0,1,1/RO,access
";

/// Commands added after 7.0 (7.2: WAITAOF, CLIENT NO-TOUCH/SETINFO, CLUSTER MYSHARDID;
/// 7.4: hash field expiration), so that clients using them route before a backend answers.
const NEWER: &str = "
waitaof 4 noscript @slow,@connection
client|no-touch 3 noscript,loading,stale @slow,@connection
client|setinfo 4 noscript,loading,stale @slow,@connection
cluster|myshardid 2 stale @slow
hexpire -6 write,denyoom,fast @write,@hash,@fast i1/r0,1,0/RW,update
hexpireat -6 write,denyoom,fast @write,@hash,@fast i1/r0,1,0/RW,update
hpexpire -6 write,denyoom,fast @write,@hash,@fast i1/r0,1,0/RW,update
hpexpireat -6 write,denyoom,fast @write,@hash,@fast i1/r0,1,0/RW,update
hexpiretime -5 readonly,fast @read,@hash,@fast i1/r0,1,0/RO,access
hpexpiretime -5 readonly,fast @read,@hash,@fast i1/r0,1,0/RO,access
httl -5 readonly,fast @read,@hash,@fast i1/r0,1,0/RO,access
hpttl -5 readonly,fast @read,@hash,@fast i1/r0,1,0/RO,access
hpersist -5 write,fast @write,@hash,@fast i1/r0,1,0/RW,update
";
