//! One command's description and the key extraction that runs on every request.
//!
//! A [`CommandSpec`] comes from the backend's `COMMAND` reply (`learn.rs`) or from the
//! built-in table (`builtin.rs`); the router asks it for arity ([`CommandSpec::arity_ok`]),
//! flags and key positions ([`CommandSpec::for_each_key`]) of each scanned request
//! ([`ArgView`]). Key positions follow Redis 7 key specifications exactly as `db.c`
//! (`getKeysUsingKeySpecs`) evaluates them, so slotgate hashes the same arguments Redis
//! Cluster does; SORT and MIGRATE, whose specs Redis itself marks unknown or incomplete,
//! use the same hand-written extraction as Redis' `sortGetKeys`/`migrateGetKeys`.
//!
//! Nothing in [`CommandSpec::for_each_key`] allocates: it runs once per request.

use rustc_hash::FxHashMap;

use crate::resp::ArgView;

/// Command flags as `COMMAND` reports them (element 3), one bit each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct CommandFlags(u32);

impl CommandFlags {
    pub const WRITE: Self = Self(1 << 0);
    pub const READONLY: Self = Self(1 << 1);
    pub const DENYOOM: Self = Self(1 << 2);
    pub const MODULE: Self = Self(1 << 3);
    pub const ADMIN: Self = Self(1 << 4);
    pub const PUBSUB: Self = Self(1 << 5);
    pub const NOSCRIPT: Self = Self(1 << 6);
    pub const BLOCKING: Self = Self(1 << 7);
    pub const LOADING: Self = Self(1 << 8);
    pub const STALE: Self = Self(1 << 9);
    pub const SKIP_MONITOR: Self = Self(1 << 10);
    pub const SKIP_SLOWLOG: Self = Self(1 << 11);
    pub const ASKING: Self = Self(1 << 12);
    pub const FAST: Self = Self(1 << 13);
    pub const NO_AUTH: Self = Self(1 << 14);
    pub const MAY_REPLICATE: Self = Self(1 << 15);
    pub const NO_MANDATORY_KEYS: Self = Self(1 << 16);
    pub const NO_ASYNC_LOADING: Self = Self(1 << 17);
    pub const NO_MULTI: Self = Self(1 << 18);
    pub const MOVABLEKEYS: Self = Self(1 << 19);
    pub const ALLOW_BUSY: Self = Self(1 << 20);
    pub const MODULE_NO_CLUSTER: Self = Self(1 << 21);
    /// Redis 6 and older only ("random", "sort_for_script"); Redis 7 moved these to tips.
    pub const RANDOM: Self = Self(1 << 22);
    pub const SORT_FOR_SCRIPT: Self = Self(1 << 23);

    /// Every name `COMMAND` uses, paired with its flag.
    const NAMES: [(&'static str, Self); 24] = [
        ("write", Self::WRITE),
        ("readonly", Self::READONLY),
        ("denyoom", Self::DENYOOM),
        ("module", Self::MODULE),
        ("admin", Self::ADMIN),
        ("pubsub", Self::PUBSUB),
        ("noscript", Self::NOSCRIPT),
        ("blocking", Self::BLOCKING),
        ("loading", Self::LOADING),
        ("stale", Self::STALE),
        ("skip_monitor", Self::SKIP_MONITOR),
        ("skip_slowlog", Self::SKIP_SLOWLOG),
        ("asking", Self::ASKING),
        ("fast", Self::FAST),
        ("no_auth", Self::NO_AUTH),
        ("may_replicate", Self::MAY_REPLICATE),
        ("no_mandatory_keys", Self::NO_MANDATORY_KEYS),
        ("no_async_loading", Self::NO_ASYNC_LOADING),
        ("no_multi", Self::NO_MULTI),
        ("movablekeys", Self::MOVABLEKEYS),
        ("allow_busy", Self::ALLOW_BUSY),
        ("module_no_cluster", Self::MODULE_NO_CLUSTER),
        ("random", Self::RANDOM),
        ("sort_for_script", Self::SORT_FOR_SCRIPT),
    ];

    /// No flag set.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// The raw bit set.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// True when every flag of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when at least one flag of `other` is set in `self`.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Both sets of flags.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The flag `COMMAND` calls `name` (ASCII case-insensitive), `None` for names this
    /// version does not know (newer servers add flags; they are ignored, not errors).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, f)| f)
    }

    /// The `COMMAND` names of the flags set, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .iter()
            .filter(move |(_, f)| self.contains(*f))
            .map(|&(n, _)| n)
    }
}

impl std::ops::BitOr for CommandFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl std::ops::BitOrAssign for CommandFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        *self = self.union(rhs);
    }
}

/// Key spec flags (`COMMAND` key spec "flags"): how the command uses the key, plus the
/// three that change extraction (`NOT_KEY`, `INCOMPLETE`, `VARIABLE_FLAGS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct KeySpecFlags(u16);

impl KeySpecFlags {
    pub const RO: Self = Self(1 << 0);
    pub const RW: Self = Self(1 << 1);
    pub const OW: Self = Self(1 << 2);
    pub const RM: Self = Self(1 << 3);
    pub const ACCESS: Self = Self(1 << 4);
    pub const UPDATE: Self = Self(1 << 5);
    pub const INSERT: Self = Self(1 << 6);
    pub const DELETE: Self = Self(1 << 7);
    /// The argument is not a key but hashes like one (SPUBLISH's shard channel).
    pub const NOT_KEY: Self = Self(1 << 8);
    /// The spec may miss keys; Redis then uses the command's own key function.
    pub const INCOMPLETE: Self = Self(1 << 9);
    /// The key flags depend on other arguments (SET ... GET).
    pub const VARIABLE_FLAGS: Self = Self(1 << 10);

    const NAMES: [(&'static str, Self); 11] = [
        ("RO", Self::RO),
        ("RW", Self::RW),
        ("OW", Self::OW),
        ("RM", Self::RM),
        ("access", Self::ACCESS),
        ("update", Self::UPDATE),
        ("insert", Self::INSERT),
        ("delete", Self::DELETE),
        ("not_key", Self::NOT_KEY),
        ("incomplete", Self::INCOMPLETE),
        ("variable_flags", Self::VARIABLE_FLAGS),
    ];

    pub const fn empty() -> Self {
        Self(0)
    }

    pub const fn bits(self) -> u16 {
        self.0
    }

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The flag `COMMAND` calls `name` (ASCII case-insensitive); `None` when unknown.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, f)| f)
    }

    /// The `COMMAND` names of the flags set, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .iter()
            .filter(move |(_, f)| self.contains(*f))
            .map(|&(n, _)| n)
    }
}

impl std::ops::BitOr for KeySpecFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

/// Where the search for keys starts (key spec "begin_search").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BeginSearch {
    /// At this argument index; negative counts from the end (-1 = last argument).
    Index(i32),
    /// Just after `keyword` (stored lowercase; matched ASCII case-insensitively). A positive
    /// `startfrom` searches forward from that index, a negative one backward from
    /// `argc + startfrom`.
    Keyword { keyword: Box<[u8]>, startfrom: i32 },
    /// A type this version cannot evaluate ("unknown", or one newer than Redis 7): the spec
    /// contributes no keys.
    Unknown,
}

/// Which arguments from the begin index are keys (key spec "find_keys").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindKeys {
    /// Keys from the begin index through `lastkey` (relative to the begin index when >= 0;
    /// when negative, -1 is the last argument, -2 the one before...), every `keystep`
    /// arguments. With `lastkey == -1`, a `limit` of N > 1 keeps only the first 1/N of the
    /// remaining arguments (XREAD's STREAMS k1 k2 id1 id2).
    Range {
        lastkey: i32,
        keystep: i32,
        limit: i32,
    },
    /// The argument at `keynumidx` (relative to the begin index) holds the key count; keys
    /// start at `firstkey` (relative to the begin index), every `keystep` arguments.
    Keynum {
        keynumidx: i32,
        firstkey: i32,
        keystep: i32,
    },
    /// Not evaluable here: the spec contributes no keys.
    Unknown,
}

/// One Redis 7 key specification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpec {
    pub begin_search: BeginSearch,
    pub find_keys: FindKeys,
    pub flags: KeySpecFlags,
}

impl KeySpec {
    /// The spec equivalent of legacy `first/last/step` (Redis 6 and older), or `None` when
    /// the command declares no key (`first == 0`) or the triple is inconsistent.
    pub fn from_legacy(first: i64, last: i64, step: i64) -> Option<KeySpec> {
        if first <= 0 || (last >= 0 && last < first) {
            return None;
        }
        let first = i32::try_from(first).ok()?;
        let last = i32::try_from(last).ok()?;
        Some(KeySpec {
            begin_search: BeginSearch::Index(first),
            find_keys: FindKeys::Range {
                lastkey: if last >= 0 { last - first } else { last },
                keystep: i32::try_from(step).ok()?.max(1),
                limit: 0,
            },
            flags: KeySpecFlags::empty(),
        })
    }
}

/// Why the key positions of a request could not be determined. The request is malformed;
/// a server will produce the client's error for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The numkeys argument is not a non-negative integer.
    #[error("numkeys is not a non-negative integer")]
    NumkeysNotInteger,
    /// numkeys says more keys than there are arguments, or 0 where keys are mandatory.
    #[error("numkeys is out of range")]
    NumkeysOutOfRange,
    /// A fixed key position (or the numkeys argument) lies past the last argument.
    #[error("too few arguments for the command's key positions")]
    TooFewArguments,
    /// The keyword that precedes the keys (XREAD's STREAMS) is missing, so the request
    /// names no key although the command needs one.
    #[error("the keyword preceding the keys is missing")]
    KeywordMissing,
    /// Options that contradict each other where keys are named (MIGRATE with both a key and
    /// KEYS).
    #[error("contradictory key arguments")]
    Syntax,
}

/// How a command's keys are found: its key specs, or for the two core commands whose specs
/// Redis itself leaves incomplete, Redis' own extraction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyExtractor {
    Specs,
    /// SORT: the sorted key, and the key after the last STORE (BY/GET patterns are not keys
    /// of the request: they derive from the sorted key's content).
    Sort,
    /// MIGRATE: argument 3, or every argument after KEYS when argument 3 is empty.
    Migrate,
}

impl KeyExtractor {
    /// The extractor for a top-level command name (lowercase).
    pub(crate) fn for_name(name: &str) -> Self {
        match name {
            "sort" => Self::Sort,
            "migrate" => Self::Migrate,
            _ => Self::Specs,
        }
    }
}

/// Everything the router needs to know about one command (or one subcommand, named like
/// Redis 7 does: "object|encoding").
#[derive(Clone, Debug)]
pub struct CommandSpec {
    /// Lowercase; subcommands "container|sub".
    pub name: Box<str>,
    /// The metrics label of this command (its container's, for a subcommand).
    pub id: crate::metrics::CommandId,
    /// Redis convention: N = exactly N arguments (name included), -N = at least N.
    pub arity: i32,
    pub flags: CommandFlags,
    /// ACL categories, e.g. "@read", "@write", "@dangerous".
    pub acl_categories: Vec<Box<str>>,
    pub(crate) key_specs: Box<[KeySpec]>,
    pub(crate) extractor: KeyExtractor,
    /// Keyed by the lowercase subcommand name alone ("encoding").
    pub(crate) subcommands: FxHashMap<Box<[u8]>, CommandSpec>,
    /// Longest subcommand name, to reject longer ones before hashing.
    pub(crate) max_subcommand_len: usize,
}

impl CommandSpec {
    /// A spec with the extractor its name calls for and no subcommands.
    pub fn new(
        name: &str,
        arity: i32,
        flags: CommandFlags,
        acl_categories: Vec<Box<str>>,
        key_specs: Vec<KeySpec>,
    ) -> CommandSpec {
        let name = name.to_ascii_lowercase();
        // Subcommands count under their container ("object|encoding" -> "object").
        let id = crate::metrics::command_id(name.split('|').next().unwrap_or(&name));
        CommandSpec {
            id,
            extractor: KeyExtractor::for_name(&name),
            name: name.into_boxed_str(),
            arity,
            flags,
            acl_categories,
            key_specs: key_specs.into_boxed_slice(),
            subcommands: FxHashMap::default(),
            max_subcommand_len: 0,
        }
    }

    /// True when a request of `argc` arguments (command name included) satisfies the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let arity = self.arity.unsigned_abs() as usize;
        match self.arity {
            0 => true,
            a if a > 0 => argc == arity,
            _ => argc >= arity,
        }
    }

    /// The key specs in `COMMAND` order.
    pub fn key_specs(&self) -> &[KeySpec] {
        &self.key_specs
    }

    /// True when some request of this command names a key (or a key-like argument such as
    /// a shard channel).
    pub fn has_keys(&self) -> bool {
        self.extractor != KeyExtractor::Specs || !self.key_specs.is_empty()
    }

    /// True for container commands (CLIENT, OBJECT, XINFO ...).
    pub fn has_subcommands(&self) -> bool {
        !self.subcommands.is_empty()
    }

    /// The subcommands of a container, in no particular order.
    pub fn subcommands(&self) -> impl Iterator<Item = &CommandSpec> {
        self.subcommands.values()
    }

    /// The subcommand called `name` (ASCII case-insensitive, without the container prefix).
    pub fn subcommand(&self, name: &[u8]) -> Option<&CommandSpec> {
        find_ignore_case(&self.subcommands, self.max_subcommand_len, name)
    }

    /// Adds or replaces a subcommand; its name must be "container|sub".
    pub(crate) fn insert_subcommand(&mut self, sub: CommandSpec) {
        let short = match sub.name.split_once('|') {
            Some((_, short)) => short,
            None => &sub.name,
        };
        let key: Box<[u8]> = short.as_bytes().into();
        self.max_subcommand_len = self.max_subcommand_len.max(key.len());
        self.subcommands.insert(key, sub);
    }

    /// Calls `f(index)` for every argument index holding a key, in key spec order (the
    /// order of `COMMAND GETKEYS`). Key specs flagged `NOT_KEY` count too: Redis Cluster
    /// routes SPUBLISH/SSUBSCRIBE by their shard channel.
    ///
    /// `Err` means the request is malformed for key extraction; `f` may already have been
    /// called for keys before the malformed part, and those indexes must be discarded.
    pub fn for_each_key(
        &self,
        args: &ArgView<'_>,
        mut f: impl FnMut(usize),
    ) -> Result<(), KeyError> {
        match self.extractor {
            KeyExtractor::Specs => self.keys_from_specs(args, &mut f),
            KeyExtractor::Sort => sort_keys(args, &mut f),
            KeyExtractor::Migrate => migrate_keys(args, &mut f),
        }
    }

    /// `getKeysUsingKeySpecs` from Redis' db.c (with `NOT_KEY` specs included), except:
    /// - an empty open-ended list (PFMERGE dst, SUNSUBSCRIBE) is no key, not an error;
    /// - specs of unknown type contribute nothing instead of failing the whole request;
    /// - numkeys 0 is fine for `no_mandatory_keys` commands (EVAL), where Redis falls back
    ///   to the command's own key function to the same effect;
    /// - a request whose only keys follow a missing keyword (XREAD without STREAMS) is an
    ///   error, as `COMMAND GETKEYS` reports it;
    /// - keynum `keystep` spaces keys apart (Redis only ever uses 1 there).
    fn keys_from_specs(
        &self,
        args: &ArgView<'_>,
        f: &mut impl FnMut(usize),
    ) -> Result<(), KeyError> {
        let argc = args.len();
        let mut found_any = false;
        let mut keyword_missing = false;
        for spec in self.key_specs.iter() {
            let first = match &spec.begin_search {
                BeginSearch::Index(pos) if *pos >= 0 => *pos as usize,
                BeginSearch::Index(pos) => match argc.checked_sub(pos.unsigned_abs() as usize) {
                    Some(p) if p >= 1 => p,
                    _ => return Err(KeyError::TooFewArguments),
                },
                BeginSearch::Keyword { keyword, startfrom } => {
                    match find_keyword(args, keyword, *startfrom) {
                        Some(i) => i + 1,
                        None => {
                            keyword_missing = true;
                            continue;
                        }
                    }
                }
                BeginSearch::Unknown => continue,
            };
            let (first, last, step) = match spec.find_keys {
                FindKeys::Range {
                    lastkey,
                    keystep,
                    limit,
                } => {
                    if lastkey >= 0 {
                        let last = first + lastkey as usize;
                        if last >= argc {
                            return Err(KeyError::TooFewArguments);
                        }
                        (first, last, keystep)
                    } else {
                        // An open-ended list; an empty one is legal (the arity check, not
                        // key extraction, decides whether the command accepts it).
                        if first >= argc {
                            continue;
                        }
                        let back = lastkey.unsigned_abs() as usize;
                        let end = if limit > 1 {
                            // Redis: first + (argc - first) / limit + lastkey.
                            (first + (argc - first) / limit as usize).checked_sub(back)
                        } else {
                            argc.checked_sub(back)
                        };
                        match end {
                            Some(last) if last >= first => (first, last, keystep),
                            _ => continue,
                        }
                    }
                }
                FindKeys::Keynum {
                    keynumidx,
                    firstkey,
                    keystep,
                } => {
                    let numkeys_at = first + keynumidx as usize;
                    let Some(numkeys) = args.get(numkeys_at) else {
                        return Err(KeyError::TooFewArguments);
                    };
                    let numkeys = parse_numkeys(numkeys).ok_or(KeyError::NumkeysNotInteger)?;
                    if numkeys == 0 {
                        // EVAL/FCALL accept no keys; for ZUNIONSTORE and friends Redis
                        // rejects numkeys 0, and so does COMMAND GETKEYS.
                        if self.flags.contains(CommandFlags::NO_MANDATORY_KEYS) {
                            continue;
                        }
                        return Err(KeyError::NumkeysOutOfRange);
                    }
                    // numkeys counts keys, each `keystep` arguments apart (Redis' own code
                    // only ever uses keystep 1 here, where both readings agree).
                    let first = first + firstkey as usize;
                    let last = (numkeys - 1)
                        .checked_mul(keystep as u64)
                        .and_then(|span| span.checked_add(first as u64))
                        .filter(|&last| last < argc as u64)
                        .ok_or(KeyError::NumkeysOutOfRange)?;
                    (first, last as usize, keystep)
                }
                FindKeys::Unknown => continue,
            };
            let step = step.max(1) as usize;
            let mut i = first;
            while i <= last {
                f(i);
                i += step;
            }
            found_any = true;
        }
        if keyword_missing && !found_any && !self.flags.contains(CommandFlags::NO_MANDATORY_KEYS) {
            return Err(KeyError::KeywordMissing);
        }
        Ok(())
    }
}

/// Index of `keyword` per Redis' keyword search: forward from `startfrom` up to the
/// second-to-last argument (a key must follow), or backward from `argc + startfrom` down
/// to index 2.
fn find_keyword(args: &ArgView<'_>, keyword: &[u8], startfrom: i32) -> Option<usize> {
    let argc = args.len();
    let matches = |i: usize| args.get(i).is_some_and(|a| a.eq_ignore_ascii_case(keyword));
    if startfrom > 0 {
        (startfrom as usize..argc.saturating_sub(1)).find(|&i| matches(i))
    } else if startfrom == 0 {
        // Redis starts such a search at argc and finds nothing.
        None
    } else {
        let start = argc.checked_sub(startfrom.unsigned_abs() as usize)?;
        (2..=start).rev().find(|&i| i < argc && matches(i))
    }
}

/// A numkeys argument as Redis' `string2ll` accepts it, when non-negative: digits only, no
/// sign, no leading zero (except "0" itself), no overflow.
fn parse_numkeys(arg: &[u8]) -> Option<u64> {
    if arg.is_empty() || arg.len() > 19 || (arg.len() > 1 && arg[0] == b'0') {
        return None;
    }
    let mut n: u64 = 0;
    for &b in arg {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    // 19 digits fit in u64; Redis' limit is i64.
    (n <= i64::MAX as u64).then_some(n)
}

/// Redis' `sortGetKeys`: the sorted key, then the key after the last STORE. Options with
/// arguments are skipped so that "GET store" or "BY store" is not taken for STORE.
fn sort_keys(args: &ArgView<'_>, f: &mut impl FnMut(usize)) -> Result<(), KeyError> {
    let argc = args.len();
    if argc < 2 {
        return Err(KeyError::TooFewArguments);
    }
    f(1);
    let mut store = None;
    let mut i = 2;
    while i < argc {
        let arg = args.get(i).unwrap_or_default();
        if arg.eq_ignore_ascii_case(b"limit") {
            i += 2;
        } else if arg.eq_ignore_ascii_case(b"get") || arg.eq_ignore_ascii_case(b"by") {
            i += 1;
        } else if arg.eq_ignore_ascii_case(b"store") && i + 1 < argc {
            // SORT itself honours the last STORE when several are given.
            store = Some(i + 1);
        }
        i += 1;
    }
    if let Some(store) = store {
        f(store);
    }
    Ok(())
}

/// Redis' `migrateGetKeys`: argument 3, or with an empty argument 3, every argument after
/// the KEYS option (searched from index 6, skipping AUTH/AUTH2 credentials that could spell
/// "keys"). A non-empty argument 3 together with KEYS is a syntax error.
fn migrate_keys(args: &ArgView<'_>, f: &mut impl FnMut(usize)) -> Result<(), KeyError> {
    let argc = args.len();
    let Some(key) = args.get(3) else {
        return Err(KeyError::TooFewArguments);
    };
    let mut first = 3;
    let mut num = 1;
    let mut i = 6;
    while i < argc {
        let arg = args.get(i).unwrap_or_default();
        if arg.eq_ignore_ascii_case(b"keys") {
            if !key.is_empty() {
                // Both a key and KEYS: MIGRATE answers a syntax error.
                return Err(KeyError::Syntax);
            }
            first = i + 1;
            num = argc - first;
            break;
        } else if arg.eq_ignore_ascii_case(b"auth") {
            i += 1;
        } else if arg.eq_ignore_ascii_case(b"auth2") {
            i += 2;
        }
        i += 1;
    }
    for k in first..first + num {
        f(k);
    }
    Ok(())
}

/// Length of the stack buffer names are lowercased into; longer names (only ever module
/// commands) fall back to a case-insensitive scan.
const NAME_BUF_LEN: usize = 64;

/// `map[lowercase(name)]` without allocating. Names longer than `max_len` (the longest key)
/// cannot match and are rejected before hashing.
pub(crate) fn find_ignore_case<'m>(
    map: &'m FxHashMap<Box<[u8]>, CommandSpec>,
    max_len: usize,
    name: &[u8],
) -> Option<&'m CommandSpec> {
    if name.len() > max_len {
        return None;
    }
    if name.len() <= NAME_BUF_LEN {
        let mut buf = [0u8; NAME_BUF_LEN];
        let lower = &mut buf[..name.len()];
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        map.get(&*lower)
    } else {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}
