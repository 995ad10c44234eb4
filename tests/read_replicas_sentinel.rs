//! Reading from replicas in Sentinel mode (issue 16): a primary with two replicas watched by
//! three real Sentinels (`common::sentinel`), slotgate in front of the Sentinels only
//! (`--mode sentinel --sentinels ... --master-name mymaster`) with its admin listener.
//!
//! The group is one shard owning every key, so the shared checks of `common::reads` (the
//! same ones `tests/read_replicas.rs` runs against a cluster) apply unchanged; where each
//! command ran is read from every node's `INFO commandstats`.
//!
//! - `replica_policy_*`: under `--read-from replica` 2000 GETs run on the replicas only,
//!   SETs on the primary; `slotgate_node_reads_total` per node equals the node's GET count;
//!   `/topology` shows `read_from`, `role`, `readable`, lag and read share per node.
//! - `mget_*`, `full_scan_*`: MGET and every SCAN page run on replicas; a full SCAN
//!   returns exactly the keys written and stays on one replica.
//! - `scripts_*`: EVAL (even read-only), MULTI/GET/EXEC, WATCH and BLPOP on the primary;
//!   EVAL_RO on a replica.
//! - `readwrite_*`: `READWRITE` moves one connection's reads to the primary, `READONLY` back.
//! - `other_policies_*`: default, `primary-preferred`, `nearest`, `any`.
//! - `replica_preferred_*`: a SIGSTOPped replica, and one with its replication link cut,
//!   are dropped from reads within 10 s with no client error, and come back.
//! - `no_replica_left_*`: both replicas killed: `replica` answers `no replica is eligible`,
//!   `replica-preferred` reads from the primary.
//! - `read_your_writes_*`: `session` sees no stale read and returns to replicas once writes
//!   stop; `off` shows a stale read (so the test can fail).
//! - `sentinel_failover_*`: `SENTINEL FAILOVER` under a GET load with `replica-preferred`:
//!   no error; afterwards the promoted node gets no GET under `replica`.
//!
//! Every test runs in nextest's serial `topology` group (`.config/nextest.toml`) and takes
//! `common::topology::serial()` under `cargo test`.

mod common;

use std::time::{Duration, Instant};

use common::reads::{
    self, Backend, ReadLoad, node_view, start_proxy, topology, wait_replicas_readable, write_keys,
};
use common::sentinel::{MASTER_NAME, SentinelGroup};
use common::topology::serial;

/// One primary, two replicas, three Sentinels.
fn group() -> SentinelGroup {
    SentinelGroup::start(2, 3)
}

#[test]
fn replica_policy_sends_gets_to_replicas_sets_to_the_primary_and_counts_them() {
    let _serial = serial();
    let group = group();
    reads::scenario_get_load_lands_on_replicas(Backend::Sentinel(&group));
}

#[test]
fn mget_is_served_by_replicas() {
    let _serial = serial();
    let group = group();
    reads::scenario_mget_parts_land_on_replicas(Backend::Sentinel(&group));
}

#[test]
fn full_scan_returns_every_key_and_runs_on_one_replica() {
    let _serial = serial();
    let group = group();
    reads::scenario_full_scan_runs_on_replicas(Backend::Sentinel(&group));
}

#[test]
fn scripts_transactions_watch_and_blocking_commands_go_to_the_primary_eval_ro_to_a_replica() {
    let _serial = serial();
    let group = group();
    reads::scenario_scripts_transactions_and_blocking_go_to_primaries(Backend::Sentinel(&group));
}

#[test]
fn readwrite_and_readonly_switch_one_connections_routing() {
    let _serial = serial();
    let group = group();
    reads::scenario_readwrite_and_readonly_switch_a_connection(Backend::Sentinel(&group));
}

#[test]
fn other_policies_primary_preferred_nearest_and_any_route_reads_to_known_nodes() {
    let _serial = serial();
    let group = group();
    reads::scenario_other_policies(Backend::Sentinel(&group));
}

#[test]
fn replica_preferred_drops_a_stopped_replica_without_client_errors() {
    let _serial = serial();
    let group = group();
    reads::scenario_stopped_replica_is_dropped_without_errors(Backend::Sentinel(&group));
}

#[test]
fn replica_preferred_drops_a_replica_with_its_link_cut_without_client_errors() {
    let _serial = serial();
    let group = group();
    reads::scenario_replica_with_cut_link_is_dropped(Backend::Sentinel(&group));
}

#[test]
fn no_replica_left_errors_under_replica_and_falls_back_under_replica_preferred() {
    let _serial = serial();
    let mut group = group();
    let keys = reads::keys("orphan", 200);
    let (strict, preferred, primary, replicas) = {
        let backend = Backend::Sentinel(&group);
        let strict = start_proxy(backend, &["--read-from", "replica"]);
        let preferred = start_proxy(backend, &["--read-from", "replica-preferred"]);
        write_keys(strict.addr, &keys);
        backend.wait_replicas_synced();
        wait_replicas_readable(&strict, backend);
        wait_replicas_readable(&preferred, backend);
        let shard = &backend.shards()[0];
        (strict, preferred, shard.primary.port, shard.replica_ports())
    };
    for port in replicas {
        group.node_mut(&format!("127.0.0.1:{port}")).stop();
    }
    reads::scenario_no_eligible_replica(
        Backend::Sentinel(&group),
        &[primary],
        &strict,
        &preferred,
        &keys,
    );
}

#[test]
fn read_your_writes_session_never_reads_stale_and_returns_to_replicas() {
    let _serial = serial();
    let group = group();
    reads::scenario_read_your_writes_session(Backend::Sentinel(&group));
}

#[test]
fn read_your_writes_off_reads_stale_values() {
    let _serial = serial();
    let group = group();
    reads::scenario_read_your_writes_off_can_read_stale(Backend::Sentinel(&group));
}

#[test]
fn sentinel_failover_under_replica_preferred_has_no_errors_and_the_new_primary_gets_no_replica_reads()
 {
    let _serial = serial();
    let group = group();
    let backend = Backend::Sentinel(&group);
    let preferred = start_proxy(backend, &["--read-from", "replica-preferred"]);
    let strict = start_proxy(backend, &["--read-from", "replica"]);
    let keys = reads::keys("failover", 300);
    write_keys(preferred.addr, &keys);
    backend.wait_replicas_synced();
    wait_replicas_readable(&preferred, backend);
    wait_replicas_readable(&strict, backend);
    let old = group.agreed_primary().expect("the Sentinels agree");

    let load = ReadLoad::start(preferred.addr, &keys, 3);
    load.wait_more(300, "the GET load to run before the failover");
    let started = Instant::now();
    let answer: String = group.sentinels[0]
        .try_query(&["SENTINEL", "FAILOVER", MASTER_NAME])
        .expect("SENTINEL FAILOVER");
    assert_eq!(answer, "OK");
    let new = group.wait_new_primary(&old, Duration::from_secs(60));
    println!(
        "SENTINEL FAILOVER {old} -> {new} agreed after {:?}",
        started.elapsed()
    );
    let promoted = group.node(&new);
    let demoted = group.node(&old);
    common::wait_for_test(
        "slotgate (replica-preferred) to show the swapped roles in /topology",
        Duration::from_secs(60),
        || {
            let doc = topology(&preferred);
            doc["shards"][0]["primary"]["address"] == new.as_str()
                && node_view(&doc, promoted.port).is_some_and(|v| v["role"] == "primary")
                && node_view(&doc, demoted.port)
                    .is_some_and(|v| v["role"] == "replica" && v["readable"] == true)
        },
    );
    load.wait_more(600, "the GET load to go on after the failover");
    let report = load.stop();
    assert!(
        report.errors.is_empty(),
        "{} client errors during SENTINEL FAILOVER {old} -> {new} under replica-preferred:\n{}",
        report.errors.len(),
        report.error_lines(20)
    );

    backend.wait_replicas_synced();
    reads::assert_new_primary_gets_no_replica_reads(backend, &strict, promoted, &keys);
}
