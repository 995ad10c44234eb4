//! Client authentication and authorization: who may connect, and what each user may run.
//!
//! ```text
//!  config: requirepass / requirepass-file ─┐  (hashed with SHA-256 while the config is
//!          users / users-file (ACL rules) ─┴─► validated; plaintext dropped there)
//!                                              │ rules::parse_user, rules::parse_acl_file
//!                                              ▼
//!  Config { requirepass, users } ──► Users::from_config ──► Users (Arc inside; cheap clone)
//!                                                             │
//!  session: AUTH [user] pass, HELLO .. AUTH user pass ──► Users::authenticate ─► Arc<User>
//!           (no AUTH yet: Users::default_user, or -NOAUTH when Users::auth_required)
//!  session: every request ──► User::check(spec, args, key indexes) ─► None | Some(NoPerm)
//!           every request ──► dangerous_refusal(name, sub, enabled..) ─► None | Some(-ERR text)
//! ```
//!
//! Semantics follow Redis 6/7 ACLs for the rules slotgate supports (docs/security.md lists
//! them): the `default` user is `on nopass ~* +@all` unless `requirepass` gives it a
//! password; other users start `off` with nothing allowed; rules apply in order. Pub/sub
//! channels are not restricted (only `&*`/`allchannels` are accepted); selectors are refused.
//! These are slotgate's own users: the cluster nodes see the backend credentials
//! (`backend-user`, `backend-password`), whoever the client is.

mod dangerous;
mod glob;
mod rules;
mod user;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap;
use tracing::{debug, trace};

pub use dangerous::dangerous_refusal;
pub use glob::glob_match;
pub use rules::{CATEGORIES, RuleError, parse_acl_file, parse_user};
pub use user::{NoPerm, PasswordHash, User};

/// Why [`Users::from_config`] failed: the configuration's fault (a config built by
/// [`crate::config::Config::load`] has passed these checks already).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// Two definitions of one user.
    #[error("user `{0}` is defined twice")]
    DuplicateUser(String),
}

/// Why `AUTH` or `HELLO ... AUTH` failed: the client's fault. `Display` is Redis' error
/// text without the leading `-`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Unknown user, wrong password, or the user is `off`; Redis does not say which.
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    /// `AUTH <password>` (no user name) while the default user is `nopass`: Redis answers
    /// this rather than accepting any password.
    #[error(
        "ERR AUTH <password> called without any password configured for the default user. \
         Are you sure your configuration is correct?"
    )]
    NoPasswordConfigured,
}

/// Every user slotgate knows, built from the config; clones share it.
#[derive(Clone)]
pub struct Users {
    inner: Arc<Inner>,
    /// Failed authentications, for metrics; [`Users::keep_counters_from`] carries it over
    /// a reload.
    failures: Arc<AtomicU64>,
}

struct Inner {
    by_name: FxHashMap<Box<[u8]>, Arc<User>>,
    default: Arc<User>,
}

impl Users {
    /// From the config's `users` (already parsed and hashed while the config was
    /// validated) and `requirepass` (the `default` user's password, unless `users` defines
    /// `default`, whose rules then start from that password).
    pub fn from_config(
        users: &[User],
        requirepass: Option<PasswordHash>,
    ) -> Result<Users, AclError> {
        let mut by_name: FxHashMap<Box<[u8]>, Arc<User>> = FxHashMap::default();
        for user in users {
            let key: Box<[u8]> = user.name().as_bytes().into();
            if by_name.contains_key(&key) {
                return Err(AclError::DuplicateUser(user.name().to_owned()));
            }
            by_name.insert(key, Arc::new(user.clone()));
        }
        let default = by_name
            .entry(b"default".as_slice().into())
            .or_insert_with(|| Arc::new(User::default_user(requirepass)))
            .clone();
        Ok(Users {
            inner: Arc::new(Inner { by_name, default }),
            failures: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Nobody can log in: what slotgate falls back to if the users cannot be built, so a
    /// broken user list fails closed, never open.
    pub fn locked() -> Users {
        // A new user is off until a rule turns it on.
        let default = Arc::new(User::new("default"));
        let mut by_name = FxHashMap::default();
        by_name.insert(b"default".as_slice().into(), default.clone());
        Users {
            inner: Arc::new(Inner { by_name, default }),
            failures: Arc::new(AtomicU64::new(0)),
        }
    }

    /// True when a new connection must authenticate before anything else (`-NOAUTH`): the
    /// default user has a password, or is `off`.
    pub fn auth_required(&self) -> bool {
        let default = &self.inner.default;
        !(default.is_enabled() && default.is_nopass())
    }

    /// The user a new connection starts as: `Some(default)` when it needs no password.
    pub fn default_user(&self) -> Option<Arc<User>> {
        (!self.auth_required()).then(|| self.inner.default.clone())
    }

    /// `AUTH <password>` (`username` `None`: the default user) and `AUTH <user> <password>`
    /// or `HELLO ... AUTH <user> <password>`. The password is hashed and compared in
    /// constant time with every hash the user has; an unknown user costs the same hash.
    /// A failure is counted ([`Users::auth_failures`]) and says nothing of why.
    pub fn authenticate(
        &self,
        username: Option<&[u8]>,
        password: &[u8],
    ) -> Result<Arc<User>, AuthError> {
        let name = match username {
            Some(name) => name,
            None if self.inner.default.is_nopass() => {
                return Err(AuthError::NoPasswordConfigured);
            }
            None => b"default".as_slice(),
        };
        let hash = PasswordHash::of(password);
        // A name is logged only when it is a configured user's: a client that swapped its
        // arguments would otherwise put its password in the log.
        match self.inner.by_name.get(name) {
            Some(user) if user.is_enabled() && user.password_matches(&hash) => {
                trace!(user = user.name(), "authenticated");
                Ok(user.clone())
            }
            known => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                debug!(
                    user = known.map_or("(not a configured user)", |user| user.name()),
                    "authentication failed"
                );
                Err(AuthError::WrongPass)
            }
        }
    }

    /// Failed `AUTH`/`HELLO AUTH` attempts since start (relaxed; for metrics).
    pub fn auth_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Shares `previous`'s failure counter, so that a reload does not reset the metric.
    pub fn keep_counters_from(&mut self, previous: &Users) {
        self.failures = previous.failures.clone();
    }

    /// The user called `name`, e.g. to re-check a session's user after a reload (Redis
    /// disconnects clients of a user that was deleted or turned `off`).
    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.inner.by_name.get(name.as_bytes()).cloned()
    }

    /// Number of users, `default` included.
    pub fn len(&self) -> usize {
        self.inner.by_name.len()
    }

    /// Never true: there is always a `default` user.
    pub fn is_empty(&self) -> bool {
        self.inner.by_name.is_empty()
    }
}

impl fmt::Debug for Users {
    /// User names only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.inner.by_name.values().map(|u| u.name()).collect();
        names.sort_unstable();
        f.debug_struct("Users")
            .field("users", &names)
            .field("auth_required", &self.auth_required())
            .field("auth_failures", &self.auth_failures())
            .finish()
    }
}

#[cfg(test)]
mod tests;
