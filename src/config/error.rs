//! What can go wrong while loading the configuration, said so the operator can fix it.
//!
//! Every variant is the operator's fault (a file, a flag or a variable) and none is cured by
//! retrying as is. [`ConfigError::Invalid`] carries every [`Problem`] found in one pass, so a
//! bad deployment is fixed in one round trip rather than one error per restart.
//!
//! Messages may quote values, except for secret keys (`requirepass`, `users`,
//! `backend-password` and their files' contents): those report only what is wrong, never
//! the value ([`super::Secret`], `acl::RuleError`).

use std::fmt;
use std::path::PathBuf;

use super::keys::Key;

/// Why [`super::Config::load`] or [`super::Config::from_parts`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML, has a key we do not know, or a value of the wrong type.
    /// `line` and `column` are 1-based (0 when the parser gave no position).
    #[error("{}: line {line}, column {column}: {message}", file_label(path))]
    Toml {
        path: Option<PathBuf>,
        line: usize,
        column: usize,
        message: String,
        /// The unknown key, when that is the problem.
        unknown_key: Option<String>,
    },
    /// Values that parse but are not acceptable, each naming its key.
    #[error("{}", list_problems(.0))]
    Invalid(Vec<Problem>),
}

/// Where the value a problem is about came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A flag or its environment variable (clap has merged the two by now).
    CommandLine,
    /// The config file.
    File,
    /// Nothing set it: the default, or nothing at all for a required key.
    Default,
}

/// One unacceptable setting: which key, why, and where its value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: Key,
    pub origin: Origin,
    pub message: String,
    /// The section the key was written in (or belongs in, for a required key):
    /// `backends.sessions`, `listeners[1]`; `None` for a top-level key, a flag or a variable.
    pub section: Option<String>,
}

impl Problem {
    /// The key as the user finds it: `threads`, `backends.sessions.sentinels`,
    /// `listeners[1].listen`.
    pub fn path(&self) -> String {
        match &self.section {
            // An unknown key has no `Key`: its name ends the section path already.
            Some(section) if self.key.name.is_empty() => section.clone(),
            Some(section) => format!("{section}.{}", self.key.name),
            None => self.key.name.to_owned(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::CommandLine => "set by flag or environment",
            Origin::File => "set in the config file",
            Origin::Default => "not set",
        })
    }
}

impl fmt::Display for Problem {
    /// `key `threads`: must be from 1 to 1024, got 0 (set in the config file; flag
    /// --threads, env SLOTGATE_THREADS)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Key { name, flag, env } = self.key;
        if self.section.is_some() {
            // A section key has no flag or variable of its own.
            let path = self.path();
            return write!(f, "key `{path}`: {} ({})", self.message, self.origin);
        }
        if flag.is_empty() {
            return write!(f, "key `{name}`: {} ({})", self.message, self.origin);
        }
        write!(
            f,
            "key `{name}`: {} ({}; flag {flag}, env {env})",
            self.message, self.origin
        )
    }
}

fn file_label(path: &Option<PathBuf>) -> String {
    match path {
        Some(path) => format!("config file {}", path.display()),
        None => "config".to_owned(),
    }
}

fn list_problems(problems: &[Problem]) -> String {
    let count = problems.len();
    let plural = if count == 1 { "" } else { "s" };
    let mut text = format!("invalid configuration, {count} problem{plural}:");
    for problem in problems {
        text.push_str("\n  ");
        text.push_str(&problem.to_string());
    }
    text
}
