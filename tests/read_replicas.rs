//! Reading from replicas in cluster mode (issue 16), against a real 3-primary Redis Cluster
//! with one replica each and slotgate (with its admin listener) in front of it.
//!
//! Where each command ran is read from every node's `INFO commandstats` (deltas around the
//! traffic), never from slotgate; the shared checks live in `common::reads` and run the
//! same way against a Sentinel group in `tests/read_replicas_sentinel.rs`.
//!
//! - `replica_policy_*`: under `--read-from replica` 2000 GETs over all slots run on the
//!   replicas only (per shard exactly its keys' GETs), SETs on primaries;
//!   `slotgate_node_reads_total` per node equals the node's GET count; `/topology` shows
//!   `read_from`, `role`, `readable`, lag and read share per node.
//! - `mget_*`, `full_scan_*`: MGET parts and every SCAN page run on replicas; a full SCAN
//!   returns exactly the keys written, each shard scanned on one node.
//! - `scripts_*`: EVAL (even read-only), MULTI/GET/EXEC, WATCH and BLPOP run on the key's
//!   primary; EVAL_RO on its replica.
//! - `readwrite_*`: `READWRITE` moves one connection's reads to primaries, `READONLY` back.
//! - `other_policies_*`: default, `primary-preferred`, `nearest`, `any`.
//! - `replica_preferred_*`: a SIGSTOPped replica, and one with its replication link cut,
//!   are dropped from reads within 10 s with no client error, and come back.
//! - `a_shard_without_replica_*`: its only replica killed: `replica` answers
//!   `no replica is eligible` for that shard only; `replica-preferred` falls back.
//! - `read_your_writes_*`: `session` sees no stale read in 4000 SET/GET rounds and returns to
//!   replicas once writes stop; `off` shows a stale read (so the test can fail).
//! - `failover_*`: `CLUSTER FAILOVER` under a GET load with `replica-preferred`: no error;
//!   afterwards the promoted node gets no GET under `replica`.
//! - `moved_*`: a slot migrated away: the replica's MOVED is followed, no error.
//! - `toml_*`, `invalid_*`: the settings as TOML keys, and bad values refused by name.
//!
//! Every test runs in nextest's serial `topology` group (`.config/nextest.toml`) and takes
//! `common::topology::serial()` under `cargo test`: they SIGSTOP, kill and fail over nodes.

mod common;

use std::time::{Duration, Instant};

use common::RedisCluster;
use common::key_slot;
use common::ops::OpsProxy;
use common::reads::{
    self, Backend, Calls, ReadLoad, client, get_expect, node_view, start_proxy, sum_over, topology,
    wait_replicas_readable, write_keys,
};
use common::topology::serial;

fn cluster() -> RedisCluster {
    RedisCluster::start(3, 1)
}

#[test]
fn replica_policy_sends_gets_to_replicas_sets_to_primaries_and_counts_them() {
    let _serial = serial();
    let cluster = cluster();
    reads::scenario_get_load_lands_on_replicas(Backend::Cluster(&cluster));
}

#[test]
fn mget_parts_are_served_by_replicas() {
    let _serial = serial();
    let cluster = cluster();
    reads::scenario_mget_parts_land_on_replicas(Backend::Cluster(&cluster));
}

#[test]
fn full_scan_returns_every_key_and_runs_on_one_replica_per_shard() {
    let _serial = serial();
    let cluster = cluster();
    reads::scenario_full_scan_runs_on_replicas(Backend::Cluster(&cluster));
}

#[test]
fn scripts_transactions_watch_and_blocking_commands_go_to_primaries_eval_ro_to_a_replica() {
    let _serial = serial();
    let cluster = cluster();
    reads::scenario_scripts_transactions_and_blocking_go_to_primaries(Backend::Cluster(&cluster));
}

#[test]
fn readwrite_and_readonly_switch_one_connections_routing() {
    let _serial = serial();
    let cluster = cluster();
    reads::scenario_readwrite_and_readonly_switch_a_connection(Backend::Cluster(&cluster));
}

#[test]
fn other_policies_primary_preferred_nearest_and_any_route_reads_to_the_keys_shard() {
    let _serial = serial();
    let cluster = cluster();
    reads::scenario_other_policies(Backend::Cluster(&cluster));
}

#[test]
fn replica_preferred_drops_a_stopped_replica_without_client_errors() {
    let _serial = serial();
    let cluster = cluster();
    reads::scenario_stopped_replica_is_dropped_without_errors(Backend::Cluster(&cluster));
}

#[test]
fn replica_preferred_drops_a_replica_with_its_link_cut_without_client_errors() {
    let _serial = serial();
    let cluster = cluster();
    reads::scenario_replica_with_cut_link_is_dropped(Backend::Cluster(&cluster));
}

#[test]
fn a_shard_without_replica_errors_under_replica_and_falls_back_under_replica_preferred() {
    let _serial = serial();
    let mut cluster = cluster();
    let keys = reads::keys("orphan", 300);
    let (strict, preferred, orphaned) = {
        let backend = Backend::Cluster(&cluster);
        let strict = start_proxy(backend, &["--read-from", "replica"]);
        let preferred = start_proxy(backend, &["--read-from", "replica-preferred"]);
        write_keys(strict.addr, &keys);
        backend.wait_replicas_synced();
        wait_replicas_readable(&strict, backend);
        wait_replicas_readable(&preferred, backend);
        let shard = &backend.shards()[0];
        (
            strict,
            preferred,
            (shard.primary.port, shard.replicas[0].port),
        )
    };
    let (primary, replica) = orphaned;
    let index = cluster.node_index(replica);
    cluster.nodes[index].stop();
    reads::scenario_no_eligible_replica(
        Backend::Cluster(&cluster),
        &[primary],
        &strict,
        &preferred,
        &keys,
    );
}

#[test]
fn read_your_writes_session_never_reads_stale_and_returns_to_replicas() {
    let _serial = serial();
    let cluster = cluster();
    reads::scenario_read_your_writes_session(Backend::Cluster(&cluster));
}

#[test]
fn read_your_writes_off_reads_stale_values() {
    let _serial = serial();
    let cluster = cluster();
    reads::scenario_read_your_writes_off_can_read_stale(Backend::Cluster(&cluster));
}

#[test]
fn failover_under_replica_preferred_has_no_errors_and_the_new_primary_gets_no_replica_reads() {
    let _serial = serial();
    let cluster = cluster();
    let backend = Backend::Cluster(&cluster);
    let preferred = start_proxy(backend, &["--read-from", "replica-preferred"]);
    let strict = start_proxy(backend, &["--read-from", "replica"]);
    let keys = reads::keys("failover", 300);
    write_keys(preferred.addr, &keys);
    backend.wait_replicas_synced();
    wait_replicas_readable(&preferred, backend);
    wait_replicas_readable(&strict, backend);
    let shard = &backend.shards()[0];
    let (old_primary, promoted) = (shard.primary, shard.replicas[0]);

    let load = ReadLoad::start(preferred.addr, &keys, 3);
    load.wait_more(300, "the GET load to run before the failover");
    let started = Instant::now();
    cluster.failover(promoted);
    println!(
        "CLUSTER FAILOVER of {} took {:?}",
        promoted.port,
        started.elapsed()
    );
    common::wait_for_test(
        "slotgate (replica-preferred) to show the swapped roles in /topology",
        reads::SETTLE,
        || {
            let doc = topology(&preferred);
            node_view(&doc, promoted.port).is_some_and(|v| v["role"] == "primary")
                && node_view(&doc, old_primary.port)
                    .is_some_and(|v| v["role"] == "replica" && v["readable"] == true)
        },
    );
    load.wait_more(600, "the GET load to go on after the failover");
    let report = load.stop();
    assert!(
        report.errors.is_empty(),
        "{} client errors while failing over {} -> {} under replica-preferred:\n{}",
        report.errors.len(),
        old_primary.port,
        promoted.port,
        report.error_lines(20)
    );

    backend.wait_replicas_synced();
    reads::assert_new_primary_gets_no_replica_reads(backend, &strict, promoted, &keys);
}

#[test]
fn moved_from_a_replica_after_a_migration_is_followed_without_error() {
    let _serial = serial();
    let cluster = cluster();
    let backend = Backend::Cluster(&cluster);
    let proxy = start_proxy(backend, &["--read-from", "replica"]);
    let shards = backend.shards();
    let (from, to) = (&shards[0], &shards[1]);
    let key = (0..)
        .map(|i| format!("moving:{i}"))
        .find(|k| cluster.node_for_slot(key_slot(k.as_bytes())).port == from.primary.port)
        .expect("a key on the first shard");
    let slot = key_slot(key.as_bytes());
    write_keys(proxy.addr, std::slice::from_ref(&key));
    backend.wait_replicas_synced();
    wait_replicas_readable(&proxy, backend);
    let mut conn = client(proxy.addr);
    let gets = Calls::take(&from.replicas, "get");
    get_expect(&mut conn, &key);
    assert_eq!(
        sum_over(&gets.deltas(), &from.replica_ports()),
        1,
        "before the migration the GET runs on the replica of {}",
        from.primary.port
    );

    cluster.migrate_slot(slot, from.primary, to.primary, 100, Duration::ZERO);
    backend.wait_replicas_synced();
    // slotgate's map still names the old shard: its replica answers MOVED, slotgate must
    // refresh and retry, and the client sees the value.
    get_expect(&mut conn, &key);

    // Once refreshed, reads of the slot go to the new shard's replica, never the old shard.
    let nodes: Vec<_> = cluster.live_nodes().collect();
    common::wait_for_test(
        &format!(
            "GETs of slot {slot} to land on the replica of {}",
            to.primary.port
        ),
        reads::SETTLE,
        || {
            let gets = Calls::take(&to.replicas, "get");
            get_expect(&mut conn, &key);
            sum_over(&gets.deltas(), &to.replica_ports()) == 1
        },
    );
    let gets = Calls::take(&nodes, "get");
    for _ in 0..50 {
        get_expect(&mut conn, &key);
    }
    let deltas = gets.deltas();
    assert_eq!(
        sum_over(&deltas, &to.replica_ports()),
        50,
        "after the refresh every GET of slot {slot} runs on the replica of {} (GET calls per \
         port: {deltas:?})",
        to.primary.port
    );
}

#[test]
fn toml_keys_configure_the_read_policy() {
    let _serial = serial();
    let cluster = cluster();
    let backend = Backend::Cluster(&cluster);
    let toml = "read-from = \"replica\"\nreplica-max-lag = \"2s 16mb\"\n\
                replica-check-interval = \"1s\"\nread-your-writes = \"off\"\n";
    let proxy = OpsProxy::start_with_config(toml, &["--seeds", &cluster.seeds()]);
    assert_eq!(
        topology(&proxy)["read_from"],
        "replica",
        "read-from from TOML"
    );
    let keys = reads::keys("toml", 200);
    write_keys(proxy.addr, &keys);
    backend.wait_replicas_synced();
    wait_replicas_readable(&proxy, backend);
    let nodes: Vec<_> = cluster.live_nodes().collect();
    let gets = Calls::take(&nodes, "get");
    reads::get_all(proxy.addr, &keys);
    let deltas = gets.deltas();
    assert_eq!(
        (
            sum_over(&deltas, &backend.primary_ports()),
            sum_over(&deltas, &backend.replica_ports())
        ),
        (0, keys.len() as u64),
        "read-from = \"replica\" in TOML sends GETs to replicas (GET calls per port: {deltas:?})"
    );
}

/// Runs slotgate with `args` (it must exit on its own within 10 s) and returns its status
/// and output.
fn run_to_exit(args: &[&str]) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("slotgate.log");
    let log = std::fs::File::create(&log_path).expect("create the log");
    let listen = format!("127.0.0.1:{}", common::free_port());
    let mut child = std::process::Command::new(common::slotgate_bin())
        .args(["--listen", &listen, "--seeds", "127.0.0.1:1"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("clone the log handle"))
        .stderr(log)
        .spawn()
        .expect("spawn slotgate");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "slotgate {args:?} is still running after 10 s: the value was accepted; log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        std::fs::read_to_string(&log_path).unwrap_or_default(),
    )
}

#[test]
fn invalid_read_settings_are_refused_naming_the_key_and_the_value() {
    for (args, key, value) in [
        (["--read-from", "sideways"], "read-from", "sideways"),
        (
            ["--replica-max-lag", "2 parsecs"],
            "replica-max-lag",
            "parsecs",
        ),
        (
            ["--replica-check-interval", "often"],
            "replica-check-interval",
            "often",
        ),
        (
            ["--read-your-writes", "always"],
            "read-your-writes",
            "always",
        ),
    ] {
        let (status, out) = run_to_exit(&args);
        assert!(!status.success(), "{args:?} was accepted: {out}");
        assert!(
            out.contains(key) && out.contains(value),
            "the error for {args:?} must name the key `{key}` and the value `{value}`: {out}"
        );
    }
    // The valid choices are listed for a bad policy.
    let (_, out) = run_to_exit(&["--read-from", "sideways"]);
    assert!(
        out.contains("replica-preferred") && out.contains("nearest"),
        "the error for a bad --read-from lists the valid policies: {out}"
    );
}

/// `read-from` set on a backend is every listener's default, and a listener may override
/// it for its own clients: two listeners on one cluster, one inheriting `replica` from the
/// backend, the other setting `primary`; each one's GETs land where its own policy says.
#[test]
fn a_listener_inherits_its_backends_read_policy_or_overrides_it() {
    let _serial = serial();
    let cluster = cluster();
    let backend = Backend::Cluster(&cluster);
    let primary_port = common::free_port();
    let seeds: Vec<String> = cluster
        .seeds()
        .split(',')
        .map(|s| format!("\"{s}\""))
        .collect();
    let toml = format!(
        "[backends.orders]\nseeds = [{}]\nread-from = \"replica\"\n\n\
         [[listeners]]\nname = \"readers\"\nbackend = \"orders\"\n\n\
         [[listeners]]\nname = \"writers\"\nlisten = \"127.0.0.1:{primary_port}\"\n\
         backend = \"orders\"\n\
         read-from = \"primary\"\n",
        seeds.join(", ")
    );
    let proxy = OpsProxy::start_with_config(&toml, &[]);
    let keys = reads::keys("override", 300);
    write_keys(proxy.addr, &keys);
    backend.wait_replicas_synced();
    wait_replicas_readable(&proxy, backend);
    let nodes: Vec<_> = cluster.live_nodes().collect();
    let where_gets_ran = |addr| {
        let gets = Calls::take(&nodes, "get");
        reads::get_all(addr, &keys);
        let deltas = gets.deltas();
        (
            sum_over(&deltas, &backend.primary_ports()),
            sum_over(&deltas, &backend.replica_ports()),
        )
    };
    let n = keys.len() as u64;
    assert_eq!(
        where_gets_ran(proxy.addr),
        (0, n),
        "the listener without read-from takes its backend's (replica): (primaries, replicas)"
    );
    let primary_listener = std::net::SocketAddr::from(([127, 0, 0, 1], primary_port));
    assert_eq!(
        where_gets_ran(primary_listener),
        (n, 0),
        "the listener with read-from = primary reads from primaries: (primaries, replicas)"
    );
}
