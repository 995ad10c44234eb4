//! Checks for `mode` and the keys that only mean something in one mode: `seeds` (cluster,
//! standalone), `sentinels`, `master-name` and the `sentinel-*` credentials (sentinel).
//!
//! A key set for another mode is a problem naming that key, not a silent no-op: an
//! operator who sets `sentinels` and forgets `mode = "sentinel"` must hear about it.

use std::path::PathBuf;

use super::super::cli::Cli;
use super::super::error::Origin;
use super::super::keys::{self, Key};
use super::super::raw::RawConfig;
use super::super::{HostPort, Mode, Secret};
use super::{
    Checker, Sourced, file_path, origin_of, parse_user_name, pick_list, pick_secret, pick_text,
};

/// What `mode` and its keys describe, once valid.
pub struct BackendKeys {
    pub mode: Mode,
    pub seeds: Vec<HostPort>,
    pub sentinels: Vec<HostPort>,
    pub master_name: Option<String>,
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<Secret>,
    pub sentinel_password_file: Option<PathBuf>,
}

impl Checker {
    /// `mode` and the keys that depend on it, taken out of `raw`.
    pub(super) fn backend_keys(&mut self, cli: &Cli, raw: &mut RawConfig) -> Option<BackendKeys> {
        let before = self.problems.len();
        let mode_input = pick_text(&cli.mode, raw.mode.take());
        let mode = self.check(keys::MODE, mode_input, Mode::Cluster, |text| {
            text.parse::<Mode>()
        });
        let seeds = pick_list(&cli.seeds, raw.seeds.take());
        let sentinels = pick_list(&cli.sentinels, raw.sentinels.take());
        let master_name = pick_text(&cli.master_name, raw.master_name.take());
        let username = pick_text(&cli.sentinel_username, raw.sentinel_username.take());
        let username_origin = origin_of(&username);
        let password = pick_secret(&cli.sentinel_password, raw.sentinel_password.take());
        let password_file = pick_text(
            &cli.sentinel_password_file,
            raw.sentinel_password_file.take(),
        );
        // Without a valid mode, which keys belong is unknown: check only their values.
        let mode = mode?;
        let mut keys = BackendKeys {
            mode,
            seeds: Vec::new(),
            sentinels: Vec::new(),
            master_name: None,
            sentinel_username: None,
            sentinel_password: None,
            sentinel_password_file: file_path(&password_file),
        };
        if mode == Mode::Sentinel {
            if let Some(seeds) = &seeds {
                self.report(
                    keys::SEEDS,
                    seeds.origin,
                    "not used with mode sentinel: the Sentinels name the nodes; list the \
                     Sentinels in sentinels",
                );
            }
            keys.sentinels = self
                .host_ports(
                    keys::SENTINELS,
                    sentinels,
                    "required with mode sentinel: list at least one Sentinel as host:port, \
                     e.g. --sentinels redis-sentinel-headless.ns.svc:26379",
                )
                .unwrap_or_default();
            keys.master_name = match master_name {
                None => {
                    self.report(
                        keys::MASTER_NAME,
                        Origin::Default,
                        "required with mode sentinel: the name in the Sentinels' \
                         `sentinel monitor <name> ...`, e.g. mymaster",
                    );
                    None
                }
                Some(Sourced { value, origin }) => match parse_user_name(&value) {
                    Ok(name) => Some(name),
                    Err(_) => {
                        let message =
                            format!("{value:?} is not a master name: one word, no spaces");
                        self.report(keys::MASTER_NAME, origin, message);
                        None
                    }
                },
            };
            keys.sentinel_username = match username {
                None => None,
                Some(Sourced { value, origin }) => match parse_user_name(&value) {
                    Ok(name) => Some(name),
                    Err(why) => {
                        self.report(keys::SENTINEL_USERNAME, origin, why);
                        None
                    }
                },
            };
            keys.sentinel_password = self
                .secret(
                    (keys::SENTINEL_PASSWORD, password),
                    (keys::SENTINEL_PASSWORD_FILE, password_file),
                )
                .flatten();
            if keys.sentinel_username.is_some() && keys.sentinel_password.is_none() {
                self.report(
                    keys::SENTINEL_USERNAME,
                    username_origin,
                    "needs sentinel-password or sentinel-password-file: AUTH takes a user \
                     and a password",
                );
            }
        } else {
            let why = format!(
                "only means something with mode sentinel (mode is {})",
                mode.name()
            );
            let others: [(Key, Option<Origin>); 5] = [
                (keys::SENTINELS, sentinels.as_ref().map(|s| s.origin)),
                (keys::MASTER_NAME, master_name.as_ref().map(|s| s.origin)),
                (keys::SENTINEL_USERNAME, username.as_ref().map(|s| s.origin)),
                (keys::SENTINEL_PASSWORD, password.as_ref().map(|s| s.origin)),
                (
                    keys::SENTINEL_PASSWORD_FILE,
                    password_file.as_ref().map(|s| s.origin),
                ),
            ];
            for (key, origin) in others {
                if let Some(origin) = origin {
                    self.report(key, origin, why.clone());
                }
            }
            keys.sentinel_password_file = None;
            let required = match mode {
                Mode::Standalone => {
                    "required with mode standalone: list the primary and its replicas as \
                     host:port (a DNS name expands to all its addresses), e.g. --seeds \
                     redis-master.ns.svc:6379,redis-replicas.ns.svc:6379"
                }
                _ => {
                    "required: list at least one cluster node as host:port, e.g. \
                     --seeds redis-headless.ns.svc:6379"
                }
            };
            keys.seeds = self
                .host_ports(keys::SEEDS, seeds, required)
                .unwrap_or_default();
        }
        (self.problems.len() == before).then_some(keys)
    }

    /// A list of `host:port` entries (`seeds`, `sentinels`), duplicates dropped; every bad
    /// entry is its own problem.
    fn host_ports(
        &mut self,
        key: Key,
        input: Option<Sourced<Vec<String>>>,
        required: &str,
    ) -> Option<Vec<HostPort>> {
        let Some(Sourced { value, origin }) = input else {
            self.report(key, Origin::Default, required);
            return None;
        };
        if value.is_empty() {
            self.report(key, origin, "must list at least one host:port");
            return None;
        }
        let mut list: Vec<HostPort> = Vec::with_capacity(value.len());
        let mut all_valid = true;
        for entry in &value {
            match entry.trim().parse::<HostPort>() {
                // A repeated entry would only be asked twice; drop it quietly.
                Ok(address) if list.contains(&address) => {}
                Ok(address) => list.push(address),
                Err(why) => {
                    all_valid = false;
                    let message = format!("entry {entry:?} is not host:port ({why})");
                    self.report(key, origin, message);
                }
            }
        }
        all_valid.then_some(list)
    }
}
