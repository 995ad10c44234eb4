//! Redis ACL rule lines in, [`User`]s out: the `users` and `users-file` settings.
//!
//! [`crate::config`] calls [`parse_user`] on each `users` entry (`alice on >secret ~cache:*
//! +@read`) and [`parse_acl_file`] on the `users-file` text (`user alice on ...` lines, as
//! in a Redis ACL file), while it validates the configuration, so that a bad rule is
//! reported with every other problem and passwords are hashed before the config exists.
//! Rules apply left to right like `ACL SETUSER`; later rules override earlier ones.
//!
//! Errors name the user and the rule, except where the rule may be a secret: password
//! rules are shown as `>(redacted)` and so on, and an unknown bare word (a password whose
//! `>` was forgotten, say) only by its position.

use std::sync::OnceLock;

use crate::commands::CommandTable;

use super::user::{CommandRule, KeyPattern, PasswordHash, Target, User};

/// Redis 7's ACL categories (`ACL CAT`), without the `@`.
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// A rule that cannot be applied, or a line that is not a user definition. `Display`
/// never shows a password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", user_label(user), rule_label(rule))]
pub struct RuleError {
    /// The user the line defines, when it names one.
    pub user: Option<String>,
    /// The rule as it may be shown (passwords redacted), with its position.
    pub rule: Option<String>,
    pub message: String,
}

fn user_label(user: &Option<String>) -> String {
    match user {
        Some(user) => format!("user `{user}`"),
        None => "user definition".to_owned(),
    }
}

fn rule_label(rule: &Option<String>) -> String {
    match rule {
        Some(rule) => format!(", {rule}"),
        None => String::new(),
    }
}

/// The built-in command table, for checking that `+cmd` names a command.
fn builtin() -> &'static CommandTable {
    static TABLE: OnceLock<CommandTable> = OnceLock::new();
    TABLE.get_or_init(CommandTable::builtin)
}

/// One user from `<name> <rule> <rule> ...` (a `users` entry; a `users-file` line without
/// its leading `user`). A new user starts as Redis creates one (`off`, nothing allowed);
/// `default` starts as Redis' default user (`on nopass ~* +@all`, or with `requirepass`'s
/// password instead of `nopass`) and the rules change it from there.
pub fn parse_user(line: &str, requirepass: Option<PasswordHash>) -> Result<User, RuleError> {
    let mut tokens = line.split_ascii_whitespace();
    let Some(name) = tokens.next() else {
        return Err(RuleError {
            user: None,
            rule: None,
            message: "empty: expected a user name followed by rules, e.g. \
                      \"alice on >password ~cache:* +@read\""
                .to_owned(),
        });
    };
    check_name(name)?;
    let mut user = if name == "default" {
        User::default_user(requirepass)
    } else {
        User::new(name)
    };
    for (position, rule) in tokens.enumerate() {
        apply(&mut user, rule).map_err(|message| RuleError {
            user: Some(name.to_owned()),
            rule: Some(shown_rule(rule, position + 1)),
            message,
        })?;
    }
    Ok(user)
}

/// Users from the text of an ACL file: `user <name> <rules...>` per line; blank lines and
/// lines starting with `#` are skipped. Returns the users and every problem, each message
/// starting with its line number.
pub fn parse_acl_file(text: &str, requirepass: Option<PasswordHash>) -> (Vec<User>, Vec<String>) {
    let mut users = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let rest = match trimmed.split_once(|c: char| c.is_ascii_whitespace()) {
            Some(("user", rest)) => rest,
            _ => {
                // The line is not shown: it may hold a password.
                problems.push(format!(
                    "line {number}: expected `user <name> <rules...>` (as in a Redis ACL file)"
                ));
                continue;
            }
        };
        match parse_user(rest, requirepass) {
            Ok(user) => users.push(user),
            Err(e) => problems.push(format!("line {number}: {e}")),
        }
    }
    (users, problems)
}

/// A user name must be one word that does not look like a rule (a line that forgot the
/// name would otherwise make a password the name, and print it in errors).
fn check_name(name: &str) -> Result<(), RuleError> {
    let error = |message: String| RuleError {
        user: None,
        rule: None,
        message,
    };
    if name.starts_with([
        '>', '<', '#', '!', '~', '%', '&', '+', '-', '@', '(', '"', '\'',
    ]) {
        return Err(error(
            "the line must start with the user name; it starts with a rule (not shown, in \
             case it is a password)"
                .to_owned(),
        ));
    }
    if name == "user" {
        return Err(error(
            "`users` entries start with the user name, without the `user` keyword of ACL \
             files (that form is for users-file)"
                .to_owned(),
        ));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(error(
            "the user name contains control characters".to_owned(),
        ));
    }
    Ok(())
}

/// How a rule may appear in an error: secrets redacted, bare words not shown at all.
fn shown_rule(rule: &str, position: usize) -> String {
    match rule.as_bytes()[0] {
        b'>' | b'<' | b'#' | b'!' => format!("rule {position} `{}(redacted)`", &rule[..1]),
        b'+' | b'-' | b'~' | b'%' | b'&' | b'(' => format!("rule {position} `{rule}`"),
        _ if is_keyword(rule) => format!("rule {position} `{rule}`"),
        _ => format!("rule {position} (not shown, in case it is a password)"),
    }
}

const KEYWORDS: &[&str] = &[
    "on",
    "off",
    "nopass",
    "resetpass",
    "allkeys",
    "resetkeys",
    "allcommands",
    "nocommands",
    "reset",
    "allchannels",
    "resetchannels",
    "sanitize-payload",
    "skip-sanitize-payload",
    "clearselectors",
];

fn is_keyword(rule: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(rule))
}

/// Applies one rule to `user`, as `ACL SETUSER` would.
fn apply(user: &mut User, rule: &str) -> Result<(), String> {
    if is_keyword(rule) {
        let keyword = rule.to_ascii_lowercase();
        if keyword == "resetchannels" {
            return Err(channels_unsupported());
        }
        apply_keyword(user, &keyword);
        return Ok(());
    }
    let first_len = rule.chars().next().map_or(0, char::len_utf8);
    let (first, rest) = rule.split_at(first_len);
    match first {
        ">" => {
            if rest.is_empty() {
                return Err(
                    "an empty password; write `nopass` for a user without password".to_owned(),
                );
            }
            add_password(user, PasswordHash::of(rest.as_bytes()));
            Ok(())
        }
        "<" => remove_password(user, &PasswordHash::of(rest.as_bytes())),
        "#" => {
            add_password(user, parse_hash(rest)?);
            Ok(())
        }
        "!" => remove_password(user, &parse_hash(rest)?),
        "~" => add_pattern(user, rest, true, true),
        "%" => {
            let Some((flags, pattern)) = rest.split_once('~') else {
                return Err("expected %R~<pattern>, %W~<pattern> or %RW~<pattern>".to_owned());
            };
            let (mut read, mut write) = (false, false);
            for flag in flags.chars() {
                match flag {
                    'R' | 'r' => read = true,
                    'W' | 'w' => write = true,
                    _ => return Err(format!("unknown key permission {flag:?}: use R, W or RW")),
                }
            }
            if !read && !write {
                return Err("expected %R~<pattern>, %W~<pattern> or %RW~<pattern>".to_owned());
            }
            add_pattern(user, pattern, read, write)
        }
        "&" if rest == "*" => Ok(()),
        "&" => Err(channels_unsupported()),
        "+" | "-" => {
            let command_rule = parse_command_rule(first == "+", rest)?;
            push_command_rule(user, command_rule);
            Ok(())
        }
        "(" => Err(
            "selectors `(...)` are not supported: give the user one set of rules, or define \
             another user"
                .to_owned(),
        ),
        "\"" | "'" => Err(
            "quoted rules are not supported: rules are separated by spaces; give a password \
             with spaces as #<sha256 hex>"
                .to_owned(),
        ),
        _ => Err(
            "not an ACL rule (passwords start with `>`, hashes with `#`, key patterns with \
             `~`, commands with `+` or `-`)"
                .to_owned(),
        ),
    }
}

fn channels_unsupported() -> String {
    "slotgate does not restrict pub/sub channels (every user may use every channel): only \
     `&*` and `allchannels` are accepted; forbid pub/sub with -@pubsub"
        .to_owned()
}

fn apply_keyword(user: &mut User, keyword: &str) {
    match keyword {
        "on" => user.enabled = true,
        "off" => user.enabled = false,
        "nopass" => {
            user.nopass = true;
            user.passwords.clear();
        }
        "resetpass" => {
            user.nopass = false;
            user.passwords.clear();
        }
        "allkeys" => {
            user.all_keys = true;
            user.key_patterns.clear();
        }
        "resetkeys" => {
            user.all_keys = false;
            user.key_patterns.clear();
        }
        "allcommands" => push_command_rule(user, all(true)),
        "nocommands" => push_command_rule(user, all(false)),
        "reset" => {
            let name = std::mem::take(&mut user.name);
            *user = User::new(&name);
        }
        // Channels are not restricted, payload sanitizing is the server's business (the
        // backend user's), and there are no selectors to clear.
        "allchannels" | "sanitize-payload" | "skip-sanitize-payload" | "clearselectors" => {}
        _ => unreachable!("every keyword is handled"),
    }
}

fn all(allow: bool) -> CommandRule {
    CommandRule {
        allow,
        target: Target::All,
    }
}

fn add_password(user: &mut User, hash: PasswordHash) {
    user.nopass = false;
    if !user.passwords.contains(&hash) {
        user.passwords.push(hash);
    }
}

fn remove_password(user: &mut User, hash: &PasswordHash) -> Result<(), String> {
    let before = user.passwords.len();
    user.passwords.retain(|stored| stored != hash);
    if user.passwords.len() == before {
        return Err("removes a password the user does not have".to_owned());
    }
    Ok(())
}

fn parse_hash(hex: &str) -> Result<PasswordHash, String> {
    PasswordHash::from_hex(hex).ok_or_else(|| {
        "not a SHA-256 hash: expected 64 hex digits (e.g. from `echo -n password | \
         sha256sum`)"
            .to_owned()
    })
}

fn add_pattern(user: &mut User, pattern: &str, read: bool, write: bool) -> Result<(), String> {
    if user.all_keys {
        // Redis refuses this too: the pattern would have no effect.
        return Err(
            "a key pattern after `allkeys` (or `~*`) has no effect; write `resetkeys` first"
                .to_owned(),
        );
    }
    if pattern == "*" && read && write {
        user.all_keys = true;
        user.key_patterns.clear();
        return Ok(());
    }
    let entry = KeyPattern {
        pattern: pattern.as_bytes().into(),
        read,
        write,
    };
    if !user.key_patterns.contains(&entry) {
        user.key_patterns.push(entry);
    }
    Ok(())
}

/// `+@all` and `-@all` override everything before them, which is then dropped.
fn push_command_rule(user: &mut User, rule: CommandRule) {
    if rule.target == Target::All {
        user.commands.clear();
    }
    user.commands.push(rule);
}

/// The part after `+` or `-`: `@category`, `command` or `command|subcommand`.
fn parse_command_rule(allow: bool, what: &str) -> Result<CommandRule, String> {
    let lower = what.to_ascii_lowercase();
    if let Some(category) = lower.strip_prefix('@') {
        if category == "all" {
            return Ok(all(allow));
        }
        if !CATEGORIES.contains(&category) {
            return Err(format!(
                "unknown category `@{category}`; the categories are @all, @{}",
                CATEGORIES.join(", @")
            ));
        }
        return Ok(CommandRule {
            allow,
            target: Target::Category(lower.into()),
        });
    }
    if lower.is_empty() {
        return Err("names no command".to_owned());
    }
    let table = builtin();
    // Module commands ("json.get") are unknown to the built-in table; take them on trust.
    let module = lower.contains('.');
    match lower.split_once('|') {
        Some((container, sub)) => {
            if sub.is_empty() || sub.contains('|') {
                return Err("expected command|subcommand".to_owned());
            }
            if !module {
                let Some(spec) = table.get(container) else {
                    return Err(format!("unknown command `{container}`"));
                };
                if !spec.has_subcommands() {
                    return Err(format!(
                        "`{container}` has no subcommands (rules on a command's first \
                         argument, such as +select|0, are not supported)"
                    ));
                }
                if spec.subcommand(sub.as_bytes()).is_none() {
                    return Err(format!("`{container}` has no subcommand `{sub}`"));
                }
            }
            Ok(CommandRule {
                allow,
                target: Target::Subcommand(lower.into()),
            })
        }
        None => {
            if !module && table.get(&lower).is_none() {
                return Err(format!(
                    "unknown command `{lower}` (module commands, named with a dot such as \
                     json.get, are accepted as written)"
                ));
            }
            Ok(CommandRule {
                allow,
                target: Target::Command(lower.into()),
            })
        }
    }
}
