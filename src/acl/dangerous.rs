//! Commands refused by default, whoever the user: [`dangerous_refusal`].
//!
//! A session asks before routing a request; a refusal is an `-ERR` naming the config key
//! that lifts it, and the connection stays usable. Bitnami's Redis charts disable FLUSHALL
//! and FLUSHDB by default for the same reason: behind a proxy one mistyped command empties
//! every node of the cluster at once. Commands that administer a single node (SHUTDOWN,
//! CONFIG SET/REWRITE/RESETSTAT, CLUSTER writes, MIGRATE ...) are not here: the router
//! refuses them outright, with no key to enable them. Commands Redis allows by default
//! (KEYS, SCRIPT FLUSH, FUNCTION FLUSH ...) stay allowed unless an ACL rule says otherwise.

const FLUSHALL: &str =
    "ERR slotgate refuses FLUSHALL by default: set enable-flush-commands = true to allow it";
const FLUSHDB: &str =
    "ERR slotgate refuses FLUSHDB by default: set enable-flush-commands = true to allow it";
const DEBUG: &str =
    "ERR slotgate refuses DEBUG by default: set enable-debug-command = true to allow it";

/// The error text (without the leading `-`) for a command refused unless enabled
/// (`enable-flush-commands`, `enable-debug-command`), `None` when it may go on to the
/// router. `lowercase_name` is the command name in lowercase, `sub` its first argument
/// (the subcommand of a container), if any. Never allocates.
pub fn dangerous_refusal(
    lowercase_name: &[u8],
    sub: Option<&[u8]>,
    enable_flush_commands: bool,
    enable_debug_command: bool,
) -> Option<&'static str> {
    let _ = sub; // No subcommand is refused on its own yet.
    match lowercase_name {
        b"flushall" if !enable_flush_commands => Some(FLUSHALL),
        b"flushdb" if !enable_flush_commands => Some(FLUSHDB),
        b"debug" if !enable_debug_command => Some(DEBUG),
        _ => None,
    }
}
