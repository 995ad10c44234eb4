//! One user's permissions and the per-request check: [`User`], [`NoPerm`], [`PasswordHash`].
//!
//! A [`User`] is built once from config rule lines ([`super::rules`]) and shared as an
//! `Arc` by every session authenticated as it. For every request the session calls
//! [`User::check`] with the command's [`CommandSpec`] (from the command table: the
//! backend-reported one once learned, so its ACL categories are the cluster's) and the key
//! indexes the router found; `None` lets the request through, `Some(NoPerm)` is the error
//! the client gets. The allowed path does not allocate.
//!
//! Command rules keep their order: the last rule that names a command (by name, container,
//! category, or all) decides, which is what Redis' per-command bitmap amounts to when each
//! rule sets or clears bits in order. Evaluating the rules against the spec at request time,
//! rather than resolving categories to commands at load, means categories always come from
//! the table in use, including commands learned from the cluster after start.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::commands::{CommandFlags, CommandSpec, KeySpecFlags};
use crate::resp::ArgView;

use super::glob::glob_match;

/// SHA-256 of a password. Passwords are hashed as soon as they are read and the plaintext
/// is dropped; this is all slotgate keeps. `Debug` never shows it (an unsalted hash of a
/// weak password is as good as the password).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PasswordHash([u8; 32]);

impl PasswordHash {
    /// The hash of `password` (the bytes as sent by `AUTH`).
    pub fn of(password: &[u8]) -> PasswordHash {
        PasswordHash(Sha256::digest(password).into())
    }

    /// 64 hex digits (either case), as in a `#<hash>` rule or `ACL GETUSER` output.
    pub fn from_hex(hex: &str) -> Option<PasswordHash> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let high = hex_digit(pair[0])?;
            let low = hex_digit(pair[1])?;
            out[i] = high << 4 | low;
        }
        Some(PasswordHash(out))
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &PasswordHash) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(redacted)")
    }
}

/// What a command rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// `+@all`, `allcommands`, `-@all`, `nocommands`.
    All,
    /// A top-level command (lowercase) and every subcommand of it: `+config`.
    Command(Box<str>),
    /// One subcommand, lowercase "container|sub": `+config|get`.
    Subcommand(Box<str>),
    /// A category, lowercase with its `@`: `+@read`.
    Category(Box<str>),
}

/// One `+...` or `-...` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CommandRule {
    pub(crate) allow: bool,
    pub(crate) target: Target,
}

impl CommandRule {
    /// `Some(allow)` when this rule names `spec`, `None` when it says nothing about it.
    fn decides(&self, spec: &CommandSpec) -> Option<bool> {
        let applies = match &self.target {
            Target::All => true,
            Target::Command(name) => {
                let full = &*spec.name;
                full == &**name
                    || (full.len() > name.len()
                        && full.as_bytes()[name.len()] == b'|'
                        && full.starts_with(&**name))
            }
            Target::Subcommand(name) => *spec.name == **name,
            Target::Category(category) => spec
                .acl_categories
                .iter()
                .any(|c| c.eq_ignore_ascii_case(category)),
        };
        applies.then_some(self.allow)
    }
}

impl fmt::Display for CommandRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.allow { '+' } else { '-' };
        match &self.target {
            Target::All => write!(f, "{sign}@all"),
            Target::Command(name) | Target::Subcommand(name) | Target::Category(name) => {
                write!(f, "{sign}{name}")
            }
        }
    }
}

/// A `~pattern` (read and write), `%R~pattern` or `%W~pattern` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyPattern {
    pub(crate) pattern: Box<[u8]>,
    pub(crate) read: bool,
    pub(crate) write: bool,
}

/// One user: name, whether it may log in, password hashes, command and key rules.
///
/// Built by [`super::parse_user`] (config) or [`User::default_user`]; compare with
/// [`super::Users`], which owns the set.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub(crate) name: Box<str>,
    pub(crate) enabled: bool,
    /// `nopass`: any password (or none, for the default user) authenticates.
    pub(crate) nopass: bool,
    pub(crate) passwords: Vec<PasswordHash>,
    /// In rule order; everything before the last `+@all`/`-@all` is dropped (it cannot
    /// decide anything any more).
    pub(crate) commands: Vec<CommandRule>,
    /// `allkeys` / `~*`: every key, read and write.
    pub(crate) all_keys: bool,
    pub(crate) key_patterns: Vec<KeyPattern>,
}

/// Why a user may not run a request. `Display` is Redis' error text without the leading
/// `-`, in the wording of Redis 7.0, the version slotgate reports (`INFO`, `HELLO`); Redis
/// 7.2 words them "User alice has no permissions ..." and "No permissions to access a key".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoPerm {
    /// The command (Redis' full name: "flushall", "config|get") is not allowed. `user` is
    /// for logs: Redis 7.0 does not name it.
    #[error("NOPERM this user has no permissions to run the '{command}' command")]
    Command { user: Box<str>, command: Box<str> },
    /// A key is outside the user's patterns. Like Redis, the reply does not name the key;
    /// `key` is the first refused one, for logs.
    #[error("NOPERM this user has no permissions to access one of the keys used as arguments")]
    Key { user: Box<str>, key: Box<[u8]> },
}

impl User {
    /// A user as Redis creates one: `off`, no password, no keys, no commands.
    pub fn new(name: &str) -> User {
        User {
            name: name.into(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            commands: Vec::new(),
            all_keys: false,
            key_patterns: Vec::new(),
        }
    }

    /// Redis' `default` user: `on nopass ~* &* +@all`, or with `requirepass` set, the same
    /// with that password instead of `nopass`.
    pub fn default_user(requirepass: Option<PasswordHash>) -> User {
        User {
            name: "default".into(),
            enabled: true,
            nopass: requirepass.is_none(),
            passwords: requirepass.into_iter().collect(),
            commands: vec![CommandRule {
                allow: true,
                target: Target::All,
            }],
            all_keys: true,
            key_patterns: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `on`: the user may authenticate.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// `nopass`: any password authenticates (the default user then needs no AUTH).
    pub fn is_nopass(&self) -> bool {
        self.nopass
    }

    /// Every command on every key (`+@all` last among command rules, and `allkeys`):
    /// [`User::check`] always answers `None`, so a session may skip calling it.
    pub fn is_unrestricted(&self) -> bool {
        self.all_keys
            && matches!(
                self.commands.as_slice(),
                [CommandRule {
                    allow: true,
                    target: Target::All
                }]
            )
    }

    /// True when `password` (already hashed) is one of this user's, compared in constant
    /// time against every stored hash; or when the user is `nopass`. Ignores `on`/`off`.
    pub(crate) fn password_matches(&self, hash: &PasswordHash) -> bool {
        let mut found = subtle::Choice::from(0);
        for stored in &self.passwords {
            found |= stored.0.ct_eq(&hash.0);
        }
        self.nopass || bool::from(found)
    }

    /// `None` when this user may run the request; `Some(NoPerm)` otherwise.
    ///
    /// `spec` is the command's spec as the table looked it up (a subcommand's own spec,
    /// named "object|encoding", when there is one); `key_indexes` the argument indexes the
    /// router found keys at. First the command (commands flagged `no_auth`, such as AUTH
    /// and HELLO, are always allowed, as in Redis), then each key against the key patterns
    /// with Redis' glob rules. `%R~`/`%W~` patterns grant a key when the command needs only
    /// that access, judged from its key specs over all keys at once (a command that reads
    /// one key and writes another needs both on each: stricter than Redis, never looser).
    /// Shard channels (SPUBLISH, SSUBSCRIBE) are channels, not keys: not checked.
    /// Allocates only to build the refusal.
    pub fn check(
        &self,
        spec: &CommandSpec,
        args: &ArgView<'_>,
        key_indexes: &[usize],
    ) -> Option<NoPerm> {
        if !self.may_run(spec) {
            return Some(NoPerm::Command {
                user: self.name.clone(),
                command: spec.name.clone(),
            });
        }
        if self.all_keys || key_indexes.is_empty() {
            return None;
        }
        let specs = spec.key_specs();
        if !specs.is_empty()
            && specs
                .iter()
                .all(|s| s.flags.contains(KeySpecFlags::NOT_KEY))
        {
            return None;
        }
        let (read, write) = needed_access(spec);
        for &index in key_indexes {
            let Some(key) = args.get(index) else {
                continue;
            };
            if !self.may_access(key, read, write) {
                return Some(NoPerm::Key {
                    user: self.name.clone(),
                    key: key.into(),
                });
            }
        }
        None
    }

    /// The command rule verdict: the last rule naming the command decides; none = denied.
    fn may_run(&self, spec: &CommandSpec) -> bool {
        if spec.flags.contains(CommandFlags::NO_AUTH) {
            return true;
        }
        self.commands
            .iter()
            .rev()
            .find_map(|rule| rule.decides(spec))
            .unwrap_or(false)
    }

    fn may_access(&self, key: &[u8], read: bool, write: bool) -> bool {
        self.all_keys
            || self
                .key_patterns
                .iter()
                .any(|p| (p.read || !read) && (p.write || !write) && glob_match(&p.pattern, key))
    }
}

/// The access a command needs on its keys, as Redis derives it from key spec flags
/// (`ACCESS` reads; `INSERT`, `DELETE`, `UPDATE` write), over every key spec.
fn needed_access(spec: &CommandSpec) -> (bool, bool) {
    let mut read = false;
    let mut write = false;
    for key_spec in spec.key_specs() {
        let flags = key_spec.flags;
        read |= flags.contains(KeySpecFlags::ACCESS);
        write |= flags.contains(KeySpecFlags::INSERT)
            || flags.contains(KeySpecFlags::DELETE)
            || flags.contains(KeySpecFlags::UPDATE);
    }
    (read, write)
}

impl fmt::Debug for User {
    /// Everything but the password hashes, which are only counted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let commands: Vec<String> = self.commands.iter().map(|r| r.to_string()).collect();
        let keys: Vec<String> = self
            .key_patterns
            .iter()
            .map(|p| {
                let prefix = match (p.read, p.write) {
                    (true, true) => "~",
                    (true, false) => "%R~",
                    _ => "%W~",
                };
                format!("{prefix}{}", String::from_utf8_lossy(&p.pattern))
            })
            .collect();
        f.debug_struct("User")
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("nopass", &self.nopass)
            .field(
                "passwords",
                &format_args!("{} (redacted)", self.passwords.len()),
            )
            .field("commands", &commands)
            .field("all_keys", &self.all_keys)
            .field("key_patterns", &keys)
            .finish()
    }
}
