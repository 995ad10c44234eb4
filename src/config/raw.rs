//! The config file as written: TOML text in, [`RawConfig`] out.
//!
//! Only the shape is checked here (known keys, strings vs numbers); every value stays close
//! to its text so that [`super::build`] checks file and flag values with the same code and
//! reports all their problems at once. An unknown key is refused outright: a typo such as
//! `max-clients` must not silently leave the default in force.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::Secret;
use super::error::ConfigError;
use super::keys;

/// One TOML document; every key optional, spelled as in [`super::keys`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawConfig {
    pub listen: Option<String>,
    pub announce: Option<String>,
    pub admin_listen: Option<String>,
    pub admin_token: Option<Secret>,
    pub admin_token_file: Option<String>,
    pub mode: Option<String>,
    pub seeds: Option<Vec<String>>,
    pub sentinels: Option<Vec<String>>,
    pub master_name: Option<String>,
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<Secret>,
    pub sentinel_password_file: Option<String>,
    pub threads: Option<Scalar>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    pub backend_connect_timeout: Option<Scalar>,
    pub backend_reply_timeout: Option<Scalar>,
    pub backend_user: Option<String>,
    pub backend_password: Option<Secret>,
    pub backend_password_file: Option<String>,
    pub timeout: Option<Scalar>,
    pub maxclients: Option<Scalar>,
    pub proto_max_bulk_len: Option<Scalar>,
    pub client_query_buffer_limit: Option<Scalar>,
    pub client_output_buffer_limit: Option<String>,
    pub max_request_args: Option<Scalar>,
    pub max_reply_depth: Option<Scalar>,
    pub max_inflight_per_client: Option<Scalar>,
    pub requirepass: Option<Secret>,
    pub requirepass_file: Option<String>,
    pub users: Option<Vec<Secret>>,
    pub users_file: Option<String>,
    pub enable_flush_commands: Option<bool>,
    pub enable_debug_command: Option<bool>,
    pub tls_port: Option<Scalar>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub tls_ca_cert_file: Option<String>,
    pub tls_auth_clients: Option<String>,
    pub tls_protocols: Option<String>,
    pub backend_tls: Option<bool>,
    pub backend_tls_ca_cert_file: Option<String>,
    pub backend_tls_cert_file: Option<String>,
    pub backend_tls_key_file: Option<String>,
    pub backend_tls_server_name: Option<String>,
    pub topology_refresh_interval: Option<Scalar>,
    pub topology_refresh_min_interval: Option<Scalar>,
    pub max_redirects: Option<Scalar>,
    pub retry_deadline: Option<Scalar>,
    pub read_from: Option<String>,
    pub replica_max_lag: Option<String>,
    pub replica_check_interval: Option<Scalar>,
    pub read_your_writes: Option<String>,
    pub dns_server: Option<String>,
    pub shutdown_timeout: Option<Scalar>,
    pub slowlog_log_slower_than: Option<Scalar>,
    pub slowlog_max_len: Option<Scalar>,
    /// `[backends.NAME]` tables, by name; checked key by key in [`super::build`] (see
    /// [`section`]), so their values stay TOML here.
    pub backends: Option<BTreeMap<String, RawTable>>,
    /// `[[listeners]]` entries, in file order; like `backends`.
    pub listeners: Option<Vec<RawTable>>,
    /// The top-level keys as TOML (sections removed), which every section view starts from.
    #[serde(skip)]
    pub table: RawTable,
}

/// A TOML table whose `Debug` shows its key names only: its values may be secrets.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct RawTable(pub toml::Table);

impl fmt::Debug for RawTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A number or size or duration as written: a TOML integer (`maxclients = 10000`) or a
/// string (`proto-max-bulk-len = "512mb"`). Flags and variables always arrive as `Text`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scalar {
    Int(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// Hand-written rather than `#[serde(untagged)]`, whose error ("data did not match any
/// variant") would not tell the user what to write.
struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string such as \"512mb\" or \"5s\"")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Scalar, E> {
        i64::try_from(value)
            .map(Scalar::Int)
            .map_err(|_| E::custom("integer too large"))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(value.to_owned()))
    }
}

/// Parses a whole config file. `path` only labels the error.
pub fn parse(text: &str, path: Option<&Path>) -> Result<RawConfig, ConfigError> {
    let mut raw: RawConfig =
        toml::from_str(text).map_err(|error| toml_error(&error, text, path))?;
    // Parsed once more untyped, so a section view can lay its keys over the top-level ones.
    let mut table: toml::Table =
        toml::from_str(text).map_err(|error| toml_error(&error, text, path))?;
    table.remove("backends");
    table.remove("listeners");
    raw.table = RawTable(table);
    Ok(raw)
}

/// A section's table typed as a [`RawConfig`]: `Err` is a message without the value (a
/// secret of the wrong type is not quoted, as in [`parse`]).
pub fn section(table: toml::Table) -> Result<RawConfig, String> {
    RawConfig::deserialize(toml::Value::Table(table)).map_err(|error| {
        let message = error.message().trim_end().to_owned();
        match unknown_field(&message) {
            Some(name) => unknown_key_message(name),
            None => message,
        }
    })
}

/// The known key nearest to `name` (a typo), for section keys checked by name.
pub fn suggestion(name: &str) -> String {
    unknown_key_message(name)
}

/// Turns a toml error into [`ConfigError::Toml`]: line and column instead of the crate's
/// source excerpt (which would quote the line, and one day that line may hold a password),
/// and for an unknown key its name and the closest known key instead of the list of all.
fn toml_error(error: &toml::de::Error, text: &str, path: Option<&Path>) -> ConfigError {
    let (line, column) = match error.span() {
        Some(span) => line_column(text, span.start),
        None => (0, 0),
    };
    let unknown_key = unknown_field(error.message()).map(str::to_owned);
    let message = match &unknown_key {
        Some(name) => unknown_key_message(name),
        None => error.message().trim_end().to_owned(),
    };
    ConfigError::Toml {
        path: path.map(Path::to_path_buf),
        line,
        column,
        message,
        unknown_key,
    }
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The key named by serde's "unknown field `x`, expected one of ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(name, _)| name)
}

fn unknown_key_message(name: &str) -> String {
    match closest_key(name) {
        Some(known) => format!("unknown key `{name}` (did you mean `{known}`?)"),
        None => format!("unknown key `{name}` (docs/configuration.md lists every key)"),
    }
}

/// The known key nearest to `name`, if near enough to be a typo (`max-clients`,
/// `proto_max_bulk_len`, `seed`).
fn closest_key(name: &str) -> Option<&'static str> {
    let normalized = name.replace('_', "-").to_ascii_lowercase();
    keys::ALL
        .iter()
        .map(|key| (edit_distance(&normalized, key.name), key.name))
        .filter(|&(distance, _)| distance <= 2)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance; key names are short ASCII, so bytes will do.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml_failure(text: &str) -> (usize, usize, String, Option<String>) {
        match parse(text, None) {
            Err(ConfigError::Toml {
                line,
                column,
                message,
                unknown_key,
                ..
            }) => (line, column, message, unknown_key),
            other => panic!("expected a toml error, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let raw = parse("", None).unwrap();
        assert!(raw.listen.is_none() && raw.seeds.is_none() && raw.threads.is_none());
    }

    #[test]
    fn scalars_take_integers_and_strings() {
        let raw = parse("maxclients = 7\nproto-max-bulk-len = \"2mb\"\n", None).unwrap();
        assert_eq!(raw.maxclients, Some(Scalar::Int(7)));
        assert_eq!(raw.proto_max_bulk_len, Some(Scalar::Text("2mb".into())));
    }

    #[test]
    fn unknown_key_is_named_with_position_and_suggestion() {
        let (line, column, message, unknown) =
            toml_failure("listen = \"127.0.0.1:1\"\nmax-clients = 5\n");
        assert_eq!((line, column), (2, 1));
        assert_eq!(unknown.as_deref(), Some("max-clients"));
        assert_eq!(
            message,
            "unknown key `max-clients` (did you mean `maxclients`?)"
        );

        let (_, _, message, _) = toml_failure("proto_max_bulk_len = 1\n");
        assert!(
            message.contains("did you mean `proto-max-bulk-len`"),
            "{message}"
        );

        let (_, _, message, unknown) = toml_failure("masterauth = \"hunter2\"\n");
        assert_eq!(unknown.as_deref(), Some("masterauth"));
        assert!(message.contains("docs/configuration.md"), "{message}");
        assert!(!message.contains("hunter2"));
    }

    #[test]
    fn wrong_types_and_syntax_point_at_the_value() {
        let (line, column, message, _) = toml_failure("\n\nthreads = 1.5\n");
        assert_eq!((line, column), (3, 11));
        assert!(message.contains("an integer or a string"), "{message}");

        let (line, _, message, _) = toml_failure("seeds = \"a:1\"\n");
        assert_eq!(line, 1);
        assert!(
            message.contains("sequence") || message.contains("array"),
            "{message}"
        );

        let (line, _, _, unknown) = toml_failure("listen = \n");
        assert_eq!((line, unknown), (1, None));
    }

    /// A secret of the wrong type is refused without quoting it (serde's own message would:
    /// "invalid type: integer `8675309`").
    #[test]
    fn secrets_of_the_wrong_type_are_not_quoted() {
        for toml in [
            "requirepass = 8675309\n",
            "backend-password = 8675309.5\n",
            "users = [8675309]\n",
            "requirepass = [\"8675309\"]\n",
        ] {
            let (line, _, message, _) = toml_failure(toml);
            assert_eq!(line, 1, "{toml}");
            assert!(!message.contains("8675309"), "{toml}: {message}");
            assert!(message.contains("must be a string"), "{toml}: {message}");
        }
        let raw = parse("requirepass = \"s3cret\"\nusers = [\"a on\"]\n", None).unwrap();
        assert_eq!(raw.requirepass.as_ref().map(Secret::expose), Some("s3cret"));
        assert!(!format!("{raw:?}").contains("s3cret"));
    }

    #[test]
    fn booleans_are_toml_booleans() {
        let raw = parse("enable-flush-commands = true\n", None).unwrap();
        assert_eq!(raw.enable_flush_commands, Some(true));
        let (_, _, message, _) = toml_failure("enable-debug-command = \"yes\"\n");
        assert!(message.contains("bool"), "{message}");
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("a\nbé c", 6), (2, 4));
        assert_eq!(line_column("", 0), (1, 1));
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("seed", "seeds"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("timeout", "timeout"), 0);
        assert_eq!(closest_key("seed"), Some("seeds"));
        assert_eq!(closest_key("completely-unrelated"), None);
    }
}
