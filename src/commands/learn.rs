//! Learns the command table from a backend node: [`learn`] asks for `COMMAND` on a control
//! connection, and the rest of this file builds the table from the reply.
//!
//! Input: the reply decoded as RESP2 by `redis-protocol` (control plane, not the hot path).
//! Each entry is `[name, arity, flags, first, last, step, acl_categories, tips, key_specs,
//! subcommands]`; Redis 6 stops after the ACL categories and Redis 5 after step. Output: a
//! [`CommandTable`] that starts as the built-in table and is overwritten entry by entry, so
//! whatever the reply lacks (renamed commands, subcommands of old servers) stays built-in.

use redis_protocol::resp2::types::OwnedFrame;

use super::CommandTable;
use super::spec::{BeginSearch, CommandFlags, CommandSpec, FindKeys, KeySpec, KeySpecFlags};
use crate::connector::NodeConnector;
use crate::control::{self, ControlError};
use crate::dns::Dns;
use crate::endpoint::Endpoint;

/// The backend's `COMMAND` reply could not be turned into a command table. The backend is at
/// fault (or speaks a dialect this version does not know); asking another node may help,
/// and the built-in table remains usable meanwhile.
#[derive(Debug, thiserror::Error)]
pub enum CommandTableError {
    /// The backend answered `COMMAND` with an error (ACL denial, LOADING ...).
    #[error("backend answered COMMAND with an error: {0}")]
    ErrorReply(String),
    /// Some element of the reply does not have the shape `COMMAND` documents.
    #[error("unexpected COMMAND reply at {at}: expected {expected}")]
    Unexpected {
        /// Where in the reply, e.g. `entry 12 ("zadd") key spec 0 find_keys`.
        at: String,
        /// What was expected there.
        expected: &'static str,
    },
}

/// Why learning the command table from a node failed.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// The node could not be asked (connection, timeout, error reply): ask again later.
    #[error(transparent)]
    Request(#[from] ControlError),
    /// The node answered with a reply that is not a usable table.
    #[error(transparent)]
    Reply(#[from] CommandTableError),
}

/// Asks `endpoint` for `COMMAND` and builds the table from its reply.
pub(super) async fn learn(
    dns: &Dns,
    endpoint: &Endpoint,
    connector: &NodeConnector,
) -> Result<CommandTable, LearnError> {
    let reply = control::request(dns, endpoint, &[b"COMMAND"], connector).await?;
    Ok(CommandTable::from_command_reply(&reply)?)
}

fn unexpected(at: &str, expected: &'static str) -> CommandTableError {
    CommandTableError::Unexpected {
        at: at.to_owned(),
        expected,
    }
}

pub(super) fn from_command_reply(
    reply: &OwnedFrame,
    mut table: CommandTable,
) -> Result<CommandTable, CommandTableError> {
    let entries = match reply {
        OwnedFrame::Array(entries) => entries,
        OwnedFrame::Error(e) => return Err(CommandTableError::ErrorReply(e.clone())),
        _ => return Err(unexpected("the reply", "an array of command entries")),
    };
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("entry {i}");
        let name = entry_name(entry, &at)?;
        let fallback = table.remove(&name);
        let spec = parse_entry(entry, &format!("{at} ({name:?})"), fallback)?;
        table.insert(spec);
    }
    Ok(table)
}

/// The lowercase name of a command entry, read first so that the built-in spec of the same
/// name can serve as fallback.
fn entry_name(entry: &OwnedFrame, at: &str) -> Result<String, CommandTableError> {
    match entry {
        OwnedFrame::Array(items) => match items.first() {
            Some(name) => Ok(string(name, &format!("{at} name"))?.to_ascii_lowercase()),
            None => Err(unexpected(at, "a non-empty command entry")),
        },
        _ => Err(unexpected(at, "a command entry array")),
    }
}

/// One command (or subcommand) entry. `fallback` is the built-in spec of the same name: its
/// key positions stand in when the entry has none for a movable-key command, and its
/// subcommands stay when the entry does not list them.
fn parse_entry(
    entry: &OwnedFrame,
    at: &str,
    fallback: Option<CommandSpec>,
) -> Result<CommandSpec, CommandTableError> {
    let items = array(entry, at)?;
    if items.len() < 6 {
        return Err(unexpected(
            at,
            "at least 6 elements (name, arity, flags, first, last, step)",
        ));
    }
    let name = string(&items[0], &format!("{at} name"))?.to_ascii_lowercase();
    let arity = i32::try_from(integer(&items[1], &format!("{at} arity"))?)
        .map_err(|_| unexpected(&format!("{at} arity"), "an arity within i32"))?;
    let mut flags = CommandFlags::empty();
    for flag in array(&items[2], &format!("{at} flags"))? {
        // Flags newer than this build are ignored: they cannot change routing we know of.
        if let Some(f) = CommandFlags::from_name(string(flag, &format!("{at} flags"))?) {
            flags |= f;
        }
    }
    let first = integer(&items[3], &format!("{at} first key"))?;
    let last = integer(&items[4], &format!("{at} last key"))?;
    let step = integer(&items[5], &format!("{at} key step"))?;
    let acl_categories = match items.get(6) {
        Some(cats) => array(cats, &format!("{at} ACL categories"))?
            .iter()
            .map(|c| string(c, &format!("{at} ACL categories")).map(Box::from))
            .collect::<Result<Vec<_>, _>>()?,
        None => fallback
            .as_ref()
            .map(|f| f.acl_categories.clone())
            .unwrap_or_default(),
    };

    let key_specs = match items.get(8) {
        Some(specs) => array(specs, &format!("{at} key specs"))?
            .iter()
            .enumerate()
            .map(|(i, s)| parse_key_spec(s, &format!("{at} key spec {i}")))
            .collect::<Result<Vec<_>, _>>()?,
        // A pre-7 server: first/last/step cannot describe movable keys (EVAL, ZUNIONSTORE,
        // XREAD ...), so those come from the built-in table when it has the command.
        None => match &fallback {
            Some(builtin) if flags.contains(CommandFlags::MOVABLEKEYS) => {
                builtin.key_specs.to_vec()
            }
            _ => KeySpec::from_legacy(first, last, step)
                .into_iter()
                .collect(),
        },
    };

    let mut spec = CommandSpec::new(&name, arity, flags, acl_categories, key_specs);
    let mut builtin_subs = fallback.map(|f| f.subcommands).unwrap_or_default();
    if let Some(subs) = items.get(9) {
        for (i, sub) in array(subs, &format!("{at} subcommands"))?
            .iter()
            .enumerate()
        {
            let sub_at = format!("{at} subcommand {i}");
            let sub_name = entry_name(sub, &sub_at)?;
            let short = sub_name.split_once('|').map_or(&*sub_name, |(_, s)| s);
            let sub_fallback = builtin_subs.remove(short.as_bytes());
            let sub = parse_entry(sub, &format!("{sub_at} ({sub_name:?})"), sub_fallback)?;
            spec.insert_subcommand(sub);
        }
    }
    for (_, sub) in builtin_subs {
        spec.insert_subcommand(sub);
    }
    Ok(spec)
}

/// One key spec: a flat map with "flags", "begin_search", "find_keys" (and "notes").
fn parse_key_spec(frame: &OwnedFrame, at: &str) -> Result<KeySpec, CommandTableError> {
    let map = array(frame, at)?;
    let mut flags = KeySpecFlags::empty();
    if let Some(list) = map_get(map, "flags", at)? {
        for flag in array(list, &format!("{at} flags"))? {
            if let Some(f) = KeySpecFlags::from_name(string(flag, &format!("{at} flags"))?) {
                flags = flags | f;
            }
        }
    }

    let bs_at = format!("{at} begin_search");
    let bs = map_get(map, "begin_search", at)?.ok_or_else(|| unexpected(at, "begin_search"))?;
    let (bs_type, bs_spec) = typed_spec(bs, &bs_at)?;
    let begin_search = match bs_type.as_str() {
        "index" => {
            let index = spec_int(bs_spec, "index", &bs_at)?;
            if index == 0 {
                return Err(unexpected(
                    &bs_at,
                    "an index other than 0 (the command name)",
                ));
            }
            BeginSearch::Index(index)
        }
        "keyword" => {
            let keyword = map_get(bs_spec, "keyword", &bs_at)?
                .ok_or_else(|| unexpected(&bs_at, "a keyword"))?;
            let keyword = string(keyword, &format!("{bs_at} keyword"))?;
            if keyword.is_empty() {
                return Err(unexpected(&bs_at, "a non-empty keyword"));
            }
            BeginSearch::Keyword {
                keyword: keyword.to_ascii_lowercase().into_bytes().into_boxed_slice(),
                startfrom: spec_int(bs_spec, "startfrom", &bs_at)?,
            }
        }
        // "unknown", or a type newer than this build: contributes no keys.
        _ => BeginSearch::Unknown,
    };

    let fk_at = format!("{at} find_keys");
    let fk = map_get(map, "find_keys", at)?.ok_or_else(|| unexpected(at, "find_keys"))?;
    let (fk_type, fk_spec) = typed_spec(fk, &fk_at)?;
    let find_keys = match fk_type.as_str() {
        "range" => {
            let limit = spec_int(fk_spec, "limit", &fk_at)?;
            if limit < 0 {
                return Err(unexpected(&fk_at, "a non-negative limit"));
            }
            FindKeys::Range {
                lastkey: spec_int(fk_spec, "lastkey", &fk_at)?,
                keystep: positive_step(spec_int(fk_spec, "keystep", &fk_at)?, &fk_at)?,
                limit,
            }
        }
        "keynum" => {
            let keynumidx = spec_int(fk_spec, "keynumidx", &fk_at)?;
            let firstkey = spec_int(fk_spec, "firstkey", &fk_at)?;
            if keynumidx < 0 || firstkey < 0 {
                return Err(unexpected(&fk_at, "non-negative keynumidx and firstkey"));
            }
            FindKeys::Keynum {
                keynumidx,
                firstkey,
                keystep: positive_step(spec_int(fk_spec, "keystep", &fk_at)?, &fk_at)?,
            }
        }
        _ => FindKeys::Unknown,
    };
    Ok(KeySpec {
        begin_search,
        find_keys,
        flags,
    })
}

fn positive_step(step: i32, at: &str) -> Result<i32, CommandTableError> {
    if step < 1 {
        return Err(unexpected(at, "a keystep of at least 1"));
    }
    Ok(step)
}

/// `["type", T, "spec", [...]]` -> (lowercase T, the spec map). The spec map may be absent
/// or empty for type "unknown".
fn typed_spec<'a>(
    frame: &'a OwnedFrame,
    at: &str,
) -> Result<(String, &'a [OwnedFrame]), CommandTableError> {
    let map = array(frame, at)?;
    let ty = map_get(map, "type", at)?.ok_or_else(|| unexpected(at, "a type"))?;
    let ty = string(ty, &format!("{at} type"))?.to_ascii_lowercase();
    let spec = match map_get(map, "spec", at)? {
        Some(spec) => array(spec, &format!("{at} spec"))?,
        None => &[],
    };
    Ok((ty, spec))
}

fn spec_int(map: &[OwnedFrame], key: &str, at: &str) -> Result<i32, CommandTableError> {
    let at = format!("{at} {key}");
    let value = map_get(map, key, &at)?.ok_or_else(|| unexpected(&at, "this field"))?;
    i32::try_from(integer(value, &at)?).map_err(|_| unexpected(&at, "an integer within i32"))
}

/// The value after `key` in a flat RESP2 map (`[k1, v1, k2, v2 ...]`).
fn map_get<'a>(
    map: &'a [OwnedFrame],
    key: &str,
    at: &str,
) -> Result<Option<&'a OwnedFrame>, CommandTableError> {
    if !map.len().is_multiple_of(2) {
        return Err(unexpected(at, "a map (an even number of elements)"));
    }
    for pair in map.chunks_exact(2) {
        if string(&pair[0], at)?.eq_ignore_ascii_case(key) {
            return Ok(Some(&pair[1]));
        }
    }
    Ok(None)
}

fn array<'a>(frame: &'a OwnedFrame, at: &str) -> Result<&'a [OwnedFrame], CommandTableError> {
    match frame {
        OwnedFrame::Array(items) => Ok(items),
        _ => Err(unexpected(at, "an array")),
    }
}

fn string<'a>(frame: &'a OwnedFrame, at: &str) -> Result<&'a str, CommandTableError> {
    match frame {
        OwnedFrame::BulkString(b) | OwnedFrame::SimpleString(b) => {
            std::str::from_utf8(b).map_err(|_| unexpected(at, "a UTF-8 string"))
        }
        _ => Err(unexpected(at, "a string")),
    }
}

fn integer(frame: &OwnedFrame, at: &str) -> Result<i64, CommandTableError> {
    match frame {
        OwnedFrame::Integer(i) => Ok(*i),
        _ => Err(unexpected(at, "an integer")),
    }
}
