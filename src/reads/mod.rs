//! Reads from replicas: the policy (`read-from`), the limits that make a replica
//! eligible (`replica-max-lag`), and read-your-writes.
//!
//! ```text
//! config   read-from, replica-max-lag, replica-check-interval, read-your-writes  -> ReadSettings
//! probe    every replica-check-interval: INFO replication on every node          -> ReadHealth
//!            (crate::upstream::read_probe)
//!            (Upstream::reads, an ArcSwap snapshot like the topology)
//! router   command flags: readonly or not                                         -> ReadIntent
//! session  intent + the connection's policy (READONLY/READWRITE) + its own writes -> ReadFrom
//! worker   WorkerUpstream::resolve(target, ReadFrom, ...)                         -> one node
//!            (choose::Candidates: the eligible nodes per shard, cached per snapshot)
//! ```
//!
//! A replica serves reads only while the last probe found it healthy: it answered within
//! the check interval, is linked to its primary, is not loading, and is within
//! `replica-max-lag` of the primary. Everything that is not a read by the command table's
//! `readonly` flag, and everything in a transaction, goes to the primary whatever the
//! policy (docs/discovery.md, "Reads from replicas").

pub mod choose;
pub mod health;

pub use crate::config::read_settings::{
    DEFAULT_CHECK_INTERVAL, MaxLag, ReadFrom, ReadSettings, ReadYourWrites,
};
