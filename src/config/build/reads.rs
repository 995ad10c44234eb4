//! Checks for the read keys: `read-from`, `replica-max-lag`, `replica-check-interval` and
//! `read-your-writes` ([`crate::reads`]).

use super::super::cli::Cli;
use super::super::keys;
use super::super::raw::RawConfig;
use super::super::read_settings::{
    DEFAULT_CHECK_INTERVAL, MaxLag, ReadFrom, ReadSettings, ReadYourWrites,
};
use super::{Checker, duration, pick_scalar, pick_text, positive};

impl Checker {
    /// The read settings, taken out of `raw`; `None` when one of them is invalid (each
    /// problem is recorded under its key).
    pub(super) fn read_settings(&mut self, cli: &Cli, raw: &mut RawConfig) -> Option<ReadSettings> {
        let read_from = self.check(
            keys::READ_FROM,
            pick_text(&cli.read_from, raw.read_from.take()),
            ReadFrom::Primary,
            |text| text.parse(),
        );
        let max_lag = self.check(
            keys::REPLICA_MAX_LAG,
            pick_text(&cli.replica_max_lag, raw.replica_max_lag.take()),
            MaxLag::default(),
            |text| MaxLag::parse(&text).map_err(|why| format!("{text:?}: {why}")),
        );
        let check_interval = self.check(
            keys::REPLICA_CHECK_INTERVAL,
            pick_scalar(
                &cli.replica_check_interval,
                raw.replica_check_interval.take(),
            ),
            DEFAULT_CHECK_INTERVAL,
            |v| {
                positive(duration(v)?).map_err(|why| {
                    format!("{why}: replicas must be probed to know which may serve reads")
                })
            },
        );
        let read_your_writes = self.check(
            keys::READ_YOUR_WRITES,
            pick_text(&cli.read_your_writes, raw.read_your_writes.take()),
            ReadYourWrites::Off,
            |text| text.parse(),
        );
        Some(ReadSettings {
            read_from: read_from?,
            max_lag: max_lag?,
            check_interval: check_interval?,
            read_your_writes: read_your_writes?,
        })
    }
}
