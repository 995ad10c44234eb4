//! The command table: what each Redis command is, and where its keys are.
//!
//! Data flow: at start, a backend's `COMMAND` reply (decoded by `redis-protocol` as RESP2)
//! goes through [`CommandTable::from_command_reply`] (`learn.rs`); until a backend answers,
//! [`CommandTable::builtin`] (`builtin.rs`, the core Redis 7 commands) stands in. For every
//! scanned request the router calls [`CommandTable::lookup`] on its [`ArgView`] and then
//! [`CommandSpec::arity_ok`], [`CommandSpec::flags`] and [`CommandSpec::for_each_key`]
//! (`spec.rs`) to pick a route. Lookup and key extraction never allocate.
//!
//! Learning from the cluster means module commands and commands newer than this build route
//! correctly; the built-in table keeps slotgate useful while no node is reachable, and
//! supplies key positions that pre-7 servers cannot describe (movable-key commands).

mod builtin;
mod learn;
mod spec;

use rustc_hash::FxHashMap;

use crate::resp::ArgView;

pub use learn::{CommandTableError, LearnError};
pub use spec::{BeginSearch, CommandFlags, CommandSpec, FindKeys, KeyError, KeySpec, KeySpecFlags};

/// Every command the proxy knows, keyed by lowercase name.
#[derive(Clone, Debug)]
pub struct CommandTable {
    commands: FxHashMap<Box<[u8]>, CommandSpec>,
    /// Longest command name: longer request names are unknown without hashing them.
    max_name_len: usize,
}

impl CommandTable {
    /// An empty table (tests build tables by hand with [`CommandTable::insert`]).
    pub fn empty() -> CommandTable {
        CommandTable {
            commands: FxHashMap::default(),
            max_name_len: 0,
        }
    }

    /// The fallback table for when no backend is reachable: every core Redis 7 command
    /// with its arity, flags, ACL categories, key specs and subcommands.
    pub fn builtin() -> CommandTable {
        builtin::table()
    }

    /// Learns the table from `endpoint`'s `COMMAND` reply, over a control connection.
    pub async fn learn(
        dns: &crate::dns::Dns,
        endpoint: &crate::endpoint::Endpoint,
        connector: &crate::connector::NodeConnector,
    ) -> Result<CommandTable, LearnError> {
        learn::learn(dns, endpoint, connector).await
    }

    /// Builds the table from a backend's `COMMAND` reply decoded as RESP2. Redis 7 entries
    /// carry key specs (element 8) and subcommands (element 9); older servers only name,
    /// arity, flags and first/last/step, so their movable-key commands take key positions
    /// from the built-in table. Commands (and subcommands) the reply lacks but the built-in
    /// table has are kept from the built-in table.
    pub fn from_command_reply(
        reply: &redis_protocol::resp2::types::OwnedFrame,
    ) -> Result<CommandTable, CommandTableError> {
        learn::from_command_reply(reply, CommandTable::builtin())
    }

    /// The spec for this request: ASCII case-insensitive on `args[0]`; for a container
    /// command, the subcommand named by `args[1]` when it exists, else the container's own
    /// spec (the server then answers the unknown subcommand itself).
    pub fn lookup(&self, args: &ArgView<'_>) -> Option<&CommandSpec> {
        let name = args.get(0)?;
        let spec = spec::find_ignore_case(&self.commands, self.max_name_len, name)?;
        if !spec.has_subcommands() {
            return Some(spec);
        }
        Some(
            args.get(1)
                .and_then(|sub| spec.subcommand(sub))
                .unwrap_or(spec),
        )
    }

    /// The spec called `name`, ASCII case-insensitive; "container|sub" names a subcommand.
    /// For configuration and tests; requests go through [`CommandTable::lookup`].
    pub fn get(&self, name: &str) -> Option<&CommandSpec> {
        match name.split_once('|') {
            Some((container, sub)) => self.get(container)?.subcommand(sub.as_bytes()),
            None => spec::find_ignore_case(&self.commands, self.max_name_len, name.as_bytes()),
        }
    }

    /// Adds a top-level command, replacing any command of the same name (with its
    /// subcommands).
    pub fn insert(&mut self, spec: CommandSpec) {
        let key: Box<[u8]> = spec.name.as_bytes().into();
        self.max_name_len = self.max_name_len.max(key.len());
        self.commands.insert(key, spec);
    }

    /// Number of top-level commands.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// The top-level commands, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &CommandSpec> {
        self.commands.values()
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut CommandSpec> {
        self.commands.get_mut(name.as_bytes())
    }

    fn remove(&mut self, name: &str) -> Option<CommandSpec> {
        self.commands.remove(name.as_bytes())
    }
}

#[cfg(test)]
mod tests;
