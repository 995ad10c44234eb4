//! Unit tests of the ACL module: every rule, rule order, passwords and hashing, the
//! per-request check against the built-in command table, ACL files, refusals, redaction.

use std::ops::Range;
use std::sync::OnceLock;

use sha2::Digest;

use super::*;
use crate::commands::{CommandSpec, CommandTable};
use crate::config::{Config, HostPort};
use crate::resp::ArgView;

fn table() -> &'static CommandTable {
    static TABLE: OnceLock<CommandTable> = OnceLock::new();
    TABLE.get_or_init(CommandTable::builtin)
}

/// A request as the session sees it: frame bytes and argument ranges.
struct Request {
    frame: Vec<u8>,
    ranges: Vec<Range<u32>>,
}

impl Request {
    fn new(args: &[&str]) -> Request {
        let mut frame = Vec::new();
        let mut ranges = Vec::new();
        for arg in args {
            let start = frame.len() as u32;
            frame.extend_from_slice(arg.as_bytes());
            ranges.push(start..frame.len() as u32);
        }
        Request { frame, ranges }
    }

    fn view(&self) -> ArgView<'_> {
        ArgView::new(&self.frame, &self.ranges)
    }
}

/// `user.check` on `args`, with the spec and key indexes the router would find.
fn check(user: &User, args: &[&str]) -> Option<NoPerm> {
    let request = Request::new(args);
    let view = request.view();
    let spec: &CommandSpec = table()
        .lookup(&view)
        .unwrap_or_else(|| panic!("unknown command {args:?}"));
    let mut keys = Vec::new();
    spec.for_each_key(&view, |i| keys.push(i))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    user.check(spec, &view, &keys)
}

#[track_caller]
fn allowed(user: &User, args: &[&str]) {
    if let Some(refusal) = check(user, args) {
        panic!("{args:?} refused for {user:?}: {refusal}");
    }
}

#[track_caller]
fn command_refused(user: &User, args: &[&str]) {
    match check(user, args) {
        Some(NoPerm::Command { .. }) => {}
        other => panic!("{args:?} for {user:?}: expected a command refusal, got {other:?}"),
    }
}

#[track_caller]
fn key_refused(user: &User, args: &[&str]) {
    match check(user, args) {
        Some(NoPerm::Key { .. }) => {}
        other => panic!("{args:?} for {user:?}: expected a key refusal, got {other:?}"),
    }
}

#[track_caller]
fn user(line: &str) -> User {
    parse_user(line, None).unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[track_caller]
fn rule_error(line: &str) -> String {
    match parse_user(line, None) {
        Ok(user) => panic!("{line}: expected an error, got {user:?}"),
        Err(e) => e.to_string(),
    }
}

fn config_with(users: &[&str], requirepass: Option<&str>) -> Config {
    let mut config = Config::with_seeds(vec![HostPort::new("10.0.0.1", 6379)]);
    config.requirepass = requirepass.map(|p| PasswordHash::of(p.as_bytes()));
    config.users = users
        .iter()
        .map(|line| parse_user(line, config.requirepass).unwrap())
        .collect();
    config
}

fn users(lines: &[&str], requirepass: Option<&str>) -> Users {
    let config = config_with(lines, requirepass);
    Users::from_config(&config.users, config.requirepass).unwrap()
}

// --- Rules -------------------------------------------------------------------------------

#[test]
fn a_new_user_is_off_with_nothing_allowed() {
    let u = user("alice");
    assert_eq!(u.name(), "alice");
    assert!(!u.is_enabled() && !u.is_nopass());
    command_refused(&u, &["GET", "k"]);
    command_refused(&u, &["PING"]);
}

#[test]
fn on_off_toggle_and_the_last_wins() {
    assert!(user("a on").is_enabled());
    assert!(!user("a on off").is_enabled());
    assert!(user("a off on").is_enabled());
    assert!(user("a ON").is_enabled(), "keywords are case-insensitive");
}

#[test]
fn password_rules() {
    let u = user("a >one >two");
    assert!(u.password_matches(&PasswordHash::of(b"one")));
    assert!(u.password_matches(&PasswordHash::of(b"two")));
    assert!(!u.password_matches(&PasswordHash::of(b"three")));

    let removed = user("a >one >two <one");
    assert!(!removed.password_matches(&PasswordHash::of(b"one")));
    assert!(removed.password_matches(&PasswordHash::of(b"two")));

    // # and ! take SHA-256 hashes, in either case.
    let hash = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"; // "password"
    let hashed = user(&format!("a #{hash}"));
    assert!(hashed.password_matches(&PasswordHash::of(b"password")));
    let upper = user(&format!("a #{}", hash.to_uppercase()));
    assert_eq!(upper.passwords, hashed.passwords);
    let unhashed = user(&format!("a >password !{hash} >x"));
    assert!(!unhashed.password_matches(&PasswordHash::of(b"password")));

    // nopass accepts anything and forgets passwords; a new password ends nopass.
    let nopass = user("a >one nopass");
    assert!(nopass.is_nopass() && nopass.passwords.is_empty());
    assert!(nopass.password_matches(&PasswordHash::of(b"whatever")));
    assert!(!user("a nopass >one").is_nopass());
    // resetpass: no password and not nopass, so nothing authenticates.
    let reset = user("a nopass >one resetpass");
    assert!(!reset.is_nopass() && reset.passwords.is_empty());
    assert!(!reset.password_matches(&PasswordHash::of(b"one")));
    // The same password twice is kept once.
    assert_eq!(user("a >x >x").passwords.len(), 1);
}

#[test]
fn password_hashing_is_sha256() {
    assert_eq!(
        PasswordHash::of(b"password"),
        PasswordHash::from_hex("5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8")
            .unwrap()
    );
    assert_eq!(
        PasswordHash::of(b""),
        PasswordHash::from_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            .unwrap()
    );
    assert!(PasswordHash::from_hex("abc").is_none());
    assert!(PasswordHash::from_hex(&"g".repeat(64)).is_none());
    assert!(PasswordHash::of(b"a").ct_eq(&PasswordHash::of(b"a")));
    assert!(!PasswordHash::of(b"a").ct_eq(&PasswordHash::of(b"b")));
}

#[test]
fn key_pattern_rules() {
    let u = user("a on ~cache:* ~user:? +@all");
    allowed(&u, &["GET", "cache:1"]);
    allowed(&u, &["SET", "user:7", "v"]);
    key_refused(&u, &["GET", "user:77"]);
    key_refused(&u, &["GET", "other"]);
    // Every key of the request must match.
    allowed(&u, &["MSET", "cache:1", "a", "user:2", "b"]);
    key_refused(&u, &["MSET", "cache:1", "a", "secret", "b"]);
    key_refused(&u, &["MGET", "cache:1", "secret"]);
    // Commands without keys need no key permission.
    allowed(&u, &["PING"]);
    allowed(&u, &["DBSIZE"]);

    let all = user("a on allkeys +@all");
    allowed(&all, &["GET", "anything"]);
    assert!(all.all_keys);
    assert!(user("a ~*").all_keys, "~* is allkeys");

    let reset = user("a on allkeys resetkeys ~x +@all");
    key_refused(&reset, &["GET", "y"]);
    allowed(&reset, &["GET", "x"]);
    let none = user("a on ~x resetkeys +@all");
    key_refused(&none, &["GET", "x"]);
}

#[test]
fn read_and_write_key_patterns() {
    let u = user("a on %R~ro:* %W~wo:* %RW~rw:* +@all");
    allowed(&u, &["GET", "ro:1"]);
    allowed(&u, &["EXISTS", "ro:1"]);
    key_refused(&u, &["DEL", "ro:1"]);
    key_refused(&u, &["LPUSH", "ro:1", "x"]);

    allowed(&u, &["LPUSH", "wo:1", "x"]);
    allowed(&u, &["DEL", "wo:1"]);
    key_refused(&u, &["GET", "wo:1"]);
    // SET may return the old value (GET option): it needs read access too here.
    key_refused(&u, &["SET", "wo:1", "v"]);

    allowed(&u, &["GET", "rw:1"]);
    allowed(&u, &["SET", "rw:1", "v"]);
    // A command that reads one key and writes another needs both on each.
    key_refused(&u, &["LMOVE", "ro:1", "wo:1", "LEFT", "LEFT"]);
    allowed(&u, &["LMOVE", "rw:1", "rw:2", "LEFT", "LEFT"]);

    assert!(rule_error("a %X~k").contains("unknown key permission"));
    assert!(rule_error("a %~k").contains("expected %R~"));
    assert!(rule_error("a %Rk").contains("expected %R~"));
    // %R~* is not allkeys.
    assert!(!user("a %R~*").all_keys);
}

#[test]
fn a_pattern_after_allkeys_is_refused_like_redis() {
    let error = rule_error("a allkeys ~x");
    assert!(error.contains("resetkeys"), "{error}");
    assert!(rule_error("a ~* %R~x").contains("after `allkeys`"));
}

#[test]
fn command_rules() {
    let u = user("a on allkeys +get +CONFIG|GET +@hash");
    allowed(&u, &["GET", "k"]);
    command_refused(&u, &["SET", "k", "v"]);
    allowed(&u, &["config", "get", "maxmemory"]);
    command_refused(&u, &["CONFIG", "SET", "maxmemory", "1"]);
    allowed(&u, &["HSET", "h", "f", "v"]);
    allowed(&u, &["HGET", "h", "f"]);

    let container = user("a on allkeys +config");
    allowed(&container, &["CONFIG", "GET", "x"]);
    allowed(&container, &["CONFIG", "SET", "x", "y"]);
    // An unknown subcommand is judged as its container.
    allowed(&container, &["CONFIG", "NOSUCH"]);

    let minus = user("a on allkeys +@all -get -config|set");
    command_refused(&minus, &["GET", "k"]);
    command_refused(&minus, &["CONFIG", "SET", "x", "y"]);
    allowed(&minus, &["CONFIG", "GET", "x"]);
    allowed(&minus, &["SET", "k", "v"]);

    let categories = user("a on allkeys +@read -@string");
    allowed(&categories, &["HGET", "h", "f"]);
    command_refused(&categories, &["GET", "k"]);
    command_refused(&categories, &["HSET", "h", "f", "v"]);

    let all = user("a on allkeys allcommands");
    allowed(&all, &["FLUSHALL"]);
    assert!(all.is_unrestricted());
    let none = user("a on allkeys allcommands nocommands");
    command_refused(&none, &["GET", "k"]);
    let plus_all = user("a on allkeys +@ALL");
    assert!(plus_all.is_unrestricted());
    assert!(!user("a on allkeys +@all -get").is_unrestricted());
    assert!(!user("a on ~x +@all").is_unrestricted());
}

#[test]
fn later_rules_override_earlier_ones() {
    let deny_last = user("a on allkeys +@all -@dangerous");
    command_refused(&deny_last, &["FLUSHALL"]);
    command_refused(&deny_last, &["KEYS", "*"]);
    allowed(&deny_last, &["GET", "k"]);

    let allow_last = user("a on allkeys -@dangerous +@all");
    allowed(&allow_last, &["FLUSHALL"]);

    let get_back = user("a on allkeys -@all +get");
    allowed(&get_back, &["GET", "k"]);
    command_refused(&get_back, &["SET", "k", "v"]);

    let get_gone = user("a on allkeys +get -@all");
    command_refused(&get_gone, &["GET", "k"]);
    assert_eq!(get_gone.commands.len(), 1, "rules before -@all are dropped");

    let category_then_command = user("a on allkeys +@string -get");
    command_refused(&category_then_command, &["GET", "k"]);
    allowed(&category_then_command, &["SET", "k", "v"]);
    let command_then_category = user("a on allkeys -get +@string");
    allowed(&command_then_category, &["GET", "k"]);

    let sub_then_container = user("a on allkeys +config|get -config");
    command_refused(&sub_then_container, &["CONFIG", "GET", "x"]);
    let container_then_sub = user("a on allkeys -config +config|get");
    allowed(&container_then_sub, &["CONFIG", "GET", "x"]);
    command_refused(&container_then_sub, &["CONFIG", "SET", "x", "y"]);
}

#[test]
fn reset_starts_over() {
    let u = user("a on >pw nopass allkeys +@all reset");
    assert_eq!(u, User::new("a"));
    let again = user("a on >pw reset on >new ~k +get");
    assert!(again.is_enabled());
    assert!(!again.password_matches(&PasswordHash::of(b"pw")));
    assert!(again.password_matches(&PasswordHash::of(b"new")));
    allowed(&again, &["GET", "k"]);
}

#[test]
fn no_auth_commands_are_always_allowed() {
    let u = user("a on nocommands");
    allowed(&u, &["AUTH", "a", "pw"]);
    allowed(&u, &["HELLO", "3"]);
    command_refused(&u, &["PING"]);
}

#[test]
fn shard_channels_are_not_keys() {
    let u = user("a on ~cache:* +@all");
    allowed(&u, &["SPUBLISH", "channel", "message"]);
    allowed(&u, &["PUBLISH", "channel", "message"]);
}

#[test]
fn module_commands_are_taken_on_trust() {
    let u = user("a on allkeys +json.get -ft.search +json.debug|memory");
    assert_eq!(u.commands.len(), 3);
}

#[test]
fn channel_rules() {
    // Accepted: channels are not restricted anyway.
    user("a &* allchannels");
    let error = rule_error("a &news:*");
    assert!(
        error.contains("does not restrict pub/sub channels"),
        "{error}"
    );
    assert!(rule_error("a resetchannels").contains("-@pubsub"));
}

#[test]
fn accepted_no_op_rules() {
    let u = user("a on sanitize-payload skip-sanitize-payload clearselectors");
    assert!(u.is_enabled());
}

#[test]
fn rule_errors_name_the_user_and_the_rule() {
    assert_eq!(
        rule_error("alice on +gte"),
        "user `alice`, rule 2 `+gte`: unknown command `gte` (module commands, named with a \
         dot such as json.get, are accepted as written)"
    );
    let category = rule_error("alice +@reads");
    assert!(
        category.starts_with("user `alice`, rule 1 `+@reads`: unknown category `@reads`"),
        "{category}"
    );
    assert!(category.contains("@read, @write"), "{category}");
    assert!(rule_error("a +get|x").contains("`get` has no subcommands"));
    assert!(rule_error("a +select|0").contains("first argument"));
    assert!(rule_error("a +config|nosuch").contains("no subcommand `nosuch`"));
    assert!(rule_error("a +config|").contains("expected command|subcommand"));
    assert!(rule_error("a +").contains("names no command"));
    assert!(rule_error("a (~x +get)").contains("selectors"));
    assert!(rule_error("a \">pass word\"").contains("quoted rules"));
    assert!(rule_error("a >").contains("empty password"));
    assert!(rule_error("").contains("empty"));
    assert!(rule_error("user alice on").contains("without the `user` keyword"));
}

#[test]
fn rule_errors_never_show_passwords() {
    for (line, secret) in [
        ("alice on <hunter2", "hunter2"),
        ("alice on #hunter2", "hunter2"),
        ("alice on !hunter2", "hunter2"),
        ("alice on hunter2", "hunter2"),
        (">hunter2 on ~* +@all", "hunter2"),
        ("alice on >hunter2 +nosuch", "hunter2"),
        ("alice on >hunter2 é", "hunter2"),
    ] {
        let error = rule_error(line);
        assert!(!error.contains(secret), "{line}: {error}");
    }
    assert_eq!(
        rule_error("alice on hunter2"),
        "user `alice`, rule 2 (not shown, in case it is a password): not an ACL rule \
         (passwords start with `>`, hashes with `#`, key patterns with `~`, commands with `+` \
         or `-`)"
    );
    assert_eq!(
        rule_error("alice <hunter2"),
        "user `alice`, rule 1 `<(redacted)`: removes a password the user does not have"
    );
    assert!(rule_error("alice #abc").contains("rule 1 `#(redacted)`: not a SHA-256 hash"));
}

#[test]
fn debug_output_never_shows_passwords_or_hashes() {
    let u = user("alice on >hunter2 ~cache:* %R~ro:* +@read -get");
    let debug = format!("{u:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    // Neither the hash's hex (as a #rule would give it) nor its bytes.
    let digest: [u8; 32] = sha2::Sha256::digest(b"hunter2").into();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!debug.contains(&hex) && !debug.contains(&format!("{digest:?}")));
    assert!(debug.contains("1 (redacted)"), "{debug}");
    assert!(debug.contains("+@read") && debug.contains("-get") && debug.contains("%R~ro:*"));
    assert_eq!(
        format!("{:?}", PasswordHash::of(b"x")),
        "PasswordHash(redacted)"
    );

    let config = config_with(&["alice on >hunter2 +@all"], Some("hunter3"));
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("hunter3"),
        "{debug}"
    );
    let all = Users::from_config(&config.users, config.requirepass).unwrap();
    let debug = format!("{all:?}");
    assert!(!debug.contains("hunter"), "{debug}");
    assert!(
        debug.contains("alice") && debug.contains("default"),
        "{debug}"
    );
}

// --- ACL files --------------------------------------------------------------------------

#[test]
fn acl_files_hold_one_user_per_line() {
    let text = "\
# slotgate users
user alice on >a ~cache:* +@read

  user bob on #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 allkeys allcommands
\tuser\tci on nopass ~* +get +set\r
";
    let (parsed, problems) = parse_acl_file(text, None);
    assert!(problems.is_empty(), "{problems:?}");
    let names: Vec<&str> = parsed.iter().map(User::name).collect();
    assert_eq!(names, ["alice", "bob", "ci"]);
    assert!(parsed[1].password_matches(&PasswordHash::of(b"password")));
    assert!(parsed[2].is_nopass());
}

#[test]
fn acl_file_problems_give_line_numbers_and_no_secrets() {
    let text = "user alice on >ok\nalice on >hunter2\nuser bob on +nosuch\nuser\n";
    let (parsed, problems) = parse_acl_file(text, None);
    assert_eq!(parsed.len(), 1);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with("line 2: expected `user <name> <rules...>`"));
    assert!(problems[1].starts_with("line 3: user `bob`, rule 2 `+nosuch`"));
    assert!(problems[2].starts_with("line 4: expected"));
    assert!(problems.iter().all(|p| !p.contains("hunter2")));
}

// --- Users and authentication -------------------------------------------------------------

#[test]
fn without_requirepass_no_auth_is_needed() {
    let all = users(&[], None);
    assert!(!all.auth_required());
    let default = all.default_user().unwrap();
    assert_eq!(default.name(), "default");
    assert!(default.is_unrestricted());
    // AUTH <password> with no password configured: Redis' own error.
    assert_eq!(
        all.authenticate(None, b"anything").unwrap_err(),
        AuthError::NoPasswordConfigured
    );
    // AUTH default <anything> succeeds on a nopass default user, as in Redis.
    assert!(all.authenticate(Some(b"default"), b"anything").is_ok());
    assert_eq!(all.auth_failures(), 0);
    assert_eq!(all.len(), 1);
}

#[test]
fn requirepass_protects_the_default_user() {
    let all = users(&[], Some("s3cret"));
    assert!(all.auth_required());
    assert!(all.default_user().is_none());
    assert_eq!(all.authenticate(None, b"s3cret").unwrap().name(), "default");
    assert_eq!(
        all.authenticate(Some(b"default"), b"s3cret")
            .unwrap()
            .name(),
        "default"
    );
    assert_eq!(
        all.authenticate(None, b"wrong").unwrap_err(),
        AuthError::WrongPass
    );
    assert_eq!(all.auth_failures(), 1);
}

#[test]
fn named_users_authenticate() {
    let all = users(
        &[
            "alice on >a1 >a2 ~cache:* +@read",
            "bob off >b",
            "ci on nopass ~* +get",
            "dave on",
        ],
        Some("s3cret"),
    );
    assert_eq!(
        all.authenticate(Some(b"alice"), b"a1").unwrap().name(),
        "alice"
    );
    assert!(all.authenticate(Some(b"alice"), b"a2").is_ok());
    let wrong = [
        (Some(b"alice".as_slice()), b"a3".as_slice()),
        (Some(b"alice"), b"s3cret"),
        (Some(b"ALICE"), b"a1"),
        (Some(b"bob"), b"b"),
        (Some(b"nobody"), b"a1"),
        (Some(b"dave"), b""),
    ];
    for (name, password) in wrong {
        assert_eq!(
            all.authenticate(name, password).unwrap_err(),
            AuthError::WrongPass,
            "{name:?}"
        );
    }
    assert_eq!(all.auth_failures(), wrong.len() as u64);
    assert!(all.authenticate(Some(b"ci"), b"anything").is_ok());
    assert_eq!(all.user("alice").unwrap().name(), "alice");
    assert!(all.user("nobody").is_none());
    assert_eq!(all.len(), 5);
}

#[test]
fn error_texts_are_redis_texts() {
    assert_eq!(
        AuthError::WrongPass.to_string(),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        AuthError::NoPasswordConfigured.to_string(),
        "ERR AUTH <password> called without any password configured for the default user. \
         Are you sure your configuration is correct?"
    );
    // NOPERM texts as redis-server 7.0.15 answers them (tests/security_auth.rs compares with
    // the running server).
    let alice = user("alice on ~cache:* +get");
    assert_eq!(
        check(&alice, &["FLUSHALL"]).unwrap().to_string(),
        "NOPERM this user has no permissions to run the 'flushall' command"
    );
    assert_eq!(
        check(&alice, &["config", "set", "a", "b"])
            .unwrap()
            .to_string(),
        "NOPERM this user has no permissions to run the 'config|set' command"
    );
    let refusal = check(&alice, &["GET", "secret"]).unwrap();
    assert_eq!(
        refusal.to_string(),
        "NOPERM this user has no permissions to access one of the keys used as arguments"
    );
    assert_eq!(
        refusal,
        NoPerm::Key {
            user: "alice".into(),
            key: b"secret".as_slice().into()
        }
    );
}

#[test]
fn a_default_user_line_starts_from_requirepass() {
    // Rules on `default` apply on top of Redis' default user with requirepass's password.
    let config = config_with(&["default -flushall"], Some("s3cret"));
    let all = Users::from_config(&config.users, config.requirepass).unwrap();
    assert!(all.auth_required());
    let default = all.authenticate(None, b"s3cret").unwrap();
    command_refused(&default, &["FLUSHALL"]);
    allowed(&default, &["GET", "k"]);

    // `default off`: nobody gets in as default, so every client must AUTH as someone.
    let off = users(&["default off", "alice on >a +@all ~*"], None);
    assert!(off.auth_required());
    assert!(off.default_user().is_none());
    assert_eq!(
        off.authenticate(Some(b"default"), b"x").unwrap_err(),
        AuthError::WrongPass
    );

    // `default resetpass >new` replaces requirepass.
    let replaced = users(&["default resetpass >new"], Some("old"));
    assert!(replaced.authenticate(None, b"new").is_ok());
    assert!(replaced.authenticate(None, b"old").is_err());
}

#[test]
fn duplicate_users_are_refused() {
    let mut config = config_with(&["alice on"], None);
    config.users.push(user("alice off"));
    assert_eq!(
        Users::from_config(&config.users, config.requirepass).unwrap_err(),
        AclError::DuplicateUser("alice".into())
    );
}

#[test]
fn the_failure_counter_survives_a_reload() {
    let old = users(&[], Some("a"));
    assert!(old.authenticate(None, b"b").is_err());
    let mut new = users(&[], Some("b"));
    new.keep_counters_from(&old);
    assert!(new.authenticate(None, b"a").is_err());
    assert_eq!(new.auth_failures(), 2);
    assert_eq!(old.auth_failures(), 2);
}

// --- Dangerous commands -------------------------------------------------------------------

#[test]
fn flush_and_debug_are_refused_by_default() {
    let mut config = config_with(&[], None);
    assert_eq!(
        dangerous_refusal(
            b"flushall",
            None,
            config.enable_flush_commands,
            config.enable_debug_command
        ),
        Some(
            "ERR slotgate refuses FLUSHALL by default: set enable-flush-commands = true to allow it"
        )
    );
    assert_eq!(
        dangerous_refusal(
            b"flushdb",
            Some(b"async"),
            config.enable_flush_commands,
            config.enable_debug_command
        ),
        Some(
            "ERR slotgate refuses FLUSHDB by default: set enable-flush-commands = true to allow it"
        )
    );
    assert_eq!(
        dangerous_refusal(
            b"debug",
            Some(b"sleep"),
            config.enable_flush_commands,
            config.enable_debug_command
        ),
        Some("ERR slotgate refuses DEBUG by default: set enable-debug-command = true to allow it")
    );
    for allowed in [
        &b"get"[..],
        b"keys",
        b"script",
        b"function",
        b"shutdown",
        b"config",
    ] {
        assert_eq!(
            dangerous_refusal(
                allowed,
                Some(b"flush"),
                config.enable_flush_commands,
                config.enable_debug_command
            ),
            None,
            "{allowed:?}"
        );
    }
    config.enable_flush_commands = true;
    assert_eq!(
        dangerous_refusal(
            b"flushall",
            None,
            config.enable_flush_commands,
            config.enable_debug_command
        ),
        None
    );
    assert_eq!(
        dangerous_refusal(
            b"flushdb",
            None,
            config.enable_flush_commands,
            config.enable_debug_command
        ),
        None
    );
    assert!(
        dangerous_refusal(
            b"debug",
            None,
            config.enable_flush_commands,
            config.enable_debug_command
        )
        .is_some()
    );
    config.enable_debug_command = true;
    assert_eq!(
        dangerous_refusal(
            b"debug",
            None,
            config.enable_flush_commands,
            config.enable_debug_command
        ),
        None
    );
}

// --- The command table --------------------------------------------------------------------

/// Every category the built-in table uses is one a rule can name.
#[test]
fn the_categories_cover_the_builtin_table() {
    for spec in table().iter() {
        for sub in std::iter::once(spec).chain(spec.subcommands()) {
            for category in &sub.acl_categories {
                let name = category.strip_prefix('@').unwrap_or(category);
                assert!(
                    CATEGORIES.contains(&name),
                    "{}: unknown category {category}",
                    sub.name
                );
            }
        }
    }
}

/// Categories are compared with the spec's own list, so a learned table's (backend)
/// categories decide, whatever the built-in table says.
#[test]
fn categories_come_from_the_spec_in_use() {
    use crate::commands::CommandFlags;
    let u = user("a on allkeys +@read");
    let learned = CommandSpec::new(
        "mymodule.get",
        2,
        CommandFlags::READONLY,
        vec!["@read".into(), "@fast".into()],
        Vec::new(),
    );
    let request = Request::new(&["mymodule.get", "k"]);
    assert_eq!(u.check(&learned, &request.view(), &[]), None);
    let recategorized = CommandSpec::new(
        "mymodule.get",
        2,
        CommandFlags::READONLY,
        vec!["@WRITE".into()],
        Vec::new(),
    );
    assert!(u.check(&recategorized, &request.view(), &[]).is_some());
}
