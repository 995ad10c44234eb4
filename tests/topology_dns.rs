//! DNS-driven topology scenarios of issue 3: pods that all move, and clusters that announce
//! hostnames.
//!
//! Same setting as `tests/topology_failover.rs`: a dnsmasq answering for
//! `redis-headless.test.local`, a 3x1 pod-style cluster on 127.0.0.11..16 (one port),
//! slotgate seeded only with the headless name, a steady INCR load through slotgate audited
//! against the cluster afterwards.
//!
//! 3. `full_restart_*`: every node shut down (SIGTERM, like a StatefulSet rollout), started
//!    again on 127.0.0.21..26 with its old `nodes.conf` and data (`cluster-announce-ip` and
//!    `bind-source-addr` the new alias), re-met with `CLUSTER MEET`, the headless name
//!    pointed at the new addresses. Every known IP is dead; only DNS knows the new ones.
//!    slotgate must serve every shard again within 1 s of the cluster being ok.
//! 4. `hostname_*`: nodes announce `node-N.test.local` (`cluster-announce-hostname`,
//!    `cluster-preferred-endpoint-type hostname`), resolvable only through the dnsmasq:
//!    reads and writes on every shard work through slotgate, before and after a failover.
//!
//! Figures are printed (`--nocapture`) and appended to `target/topology-figures.jsonl`.

mod common;

use std::time::{Duration, Instant};

use common::load::{Load, LoadOptions, Reply, call_once, record_figure};
use common::pods::{MOVED_ALIAS, PodOptions};
use common::topology::{HEADLESS, TopologyEnv, audit_and_record, ms, ms_between, serial};
use common::{key_slot, wait_for_test};

/// The DNS fixture itself: several A records, updates seen at once, removal is NXDOMAIN,
/// TTL 1 s (checked by slotgate's resolver in the scenarios, here by the answers).
#[test]
fn dns_fixture_serves_and_updates_records() {
    use common::dns::DnsServer;
    use common::pods::alias;
    let dns = DnsServer::start();
    let name = "fixture-check.test.local";
    assert_eq!(dns.resolve(name), Ok(vec![]), "unknown names are NXDOMAIN");
    dns.set(name, &[alias(11), alias(12), alias(13)]);
    let mut got = dns.resolve(name).unwrap();
    got.sort();
    assert_eq!(got, vec![alias(11), alias(12), alias(13)]);
    dns.set(name, &[alias(21)]);
    assert_eq!(dns.resolve(name), Ok(vec![alias(21)]));
    dns.remove(name);
    assert_eq!(dns.resolve(name), Ok(vec![]));
    assert!(
        dns.queries_for(name) >= 4,
        "queries are logged:\n{}",
        dns.log()
    );
}

#[test]
fn full_restart_on_new_addresses_is_found_through_dns_within_1s_of_cluster_ok() {
    let _serial = serial();
    let scenario = "full_restart_new_ips";
    let mut env = TopologyEnv::start(
        scenario,
        // Generous, so no node is failed over while the others are still coming back.
        PodOptions {
            node_timeout: Duration::from_secs(5),
            ..PodOptions::default()
        },
        &[],
    );
    let old_ips = env.cluster.ips();
    let load = Load::start(
        env.addr(),
        &env.keys,
        LoadOptions {
            pace: Duration::from_millis(5),
            ..LoadOptions::default()
        },
    );
    // Every key served before the restart (a condition, not a fixed warm-up sleep).
    load.wait_all_acked_since(Instant::now(), Duration::from_secs(30))
        .expect("the load to write every key");

    let t_stop = Instant::now();
    env.cluster.stop_all();
    let t_stopped = Instant::now();
    // The pods are gone: so are their records.
    env.dns.remove(HEADLESS);
    env.cluster.start_all_at(MOVED_ALIAS);
    let new_ips = env.cluster.ips();
    println!("restarted: {old_ips:?} -> {new_ips:?}");
    assert!(
        new_ips.iter().all(|ip| !old_ips.contains(ip)),
        "the pods must all have moved"
    );
    env.sync_dns();
    let t_dns = Instant::now();
    env.cluster.meet_all();
    let t_ok = env.cluster.wait_ok(Duration::from_secs(40));
    let all_back = load.wait_all_acked_since(t_stopped, Duration::from_secs(20));
    // Run on a second past the cluster being ok on every key, so late errors are seen.
    let _ = load.wait_all_acked_since(t_ok + Duration::from_secs(1), Duration::from_secs(30));
    let report = load.stop();

    let first_back = report
        .keys
        .iter()
        .filter_map(|k| {
            k.oks
                .iter()
                .find(|op| op.sent >= t_stopped)
                .map(|op| op.done)
        })
        .min();
    record_figure(scenario, "graceful_stop_ms", ms(t_stopped - t_stop), "ms");
    record_figure(
        scenario,
        "dns_updated_to_cluster_ok_ms",
        ms_between(t_dns, t_ok),
        "ms",
    );
    record_figure(
        scenario,
        "outage_stop_to_cluster_ok_ms",
        ms(t_ok - t_stopped),
        "ms",
    );
    if let Some(t) = first_back {
        record_figure(
            scenario,
            "first_success_after_cluster_ok_ms",
            ms_between(t_ok, t),
            "ms",
        );
    }
    if let Some(t) = all_back {
        record_figure(
            scenario,
            "all_shards_serving_after_cluster_ok_ms",
            ms_between(t_ok, t),
            "ms",
        );
    }
    let errors = report.errors();
    record_figure(scenario, "client_errors", errors.len() as f64, "errors");
    println!("errors:\n{}", report.error_lines(20));

    let Some(all_back) = all_back else {
        panic!(
            "[{scenario}] slotgate did not serve every shard within 20 s of the restart on new \
             addresses (cluster ok at +{:.3}s); errors:\n{}\nslotgate:\n{}",
            (t_ok - report.t0).as_secs_f64(),
            report.error_lines(30),
            env.log_excerpt(&["dns", "DNS", "resolv", "refresh", HEADLESS])
        );
    };
    assert!(
        all_back <= t_ok + Duration::from_secs(1),
        "[{scenario}] slotgate served every shard again {} ms after the cluster was ok \
         (allowed 1000 ms); first success {:?} ms; errors:\n{}\nslotgate:\n{}",
        ms_between(t_ok, all_back),
        first_back.map(|t| ms_between(t_ok, t)),
        report.error_lines(30),
        env.log_excerpt(&["dns", "DNS", "resolv", "refresh", HEADLESS])
    );
    audit_and_record(&env, scenario, &report);
}

#[test]
fn hostname_only_cluster_serves_every_shard_before_and_after_a_failover() {
    let _serial = serial();
    let scenario = "hostname_endpoints";
    let env = TopologyEnv::start(
        scenario,
        PodOptions {
            hostnames: Some("test.local".into()),
            ..PodOptions::default()
        },
        &[],
    );
    // The fixture really is in hostname mode: a redirect names a host, not an IP.
    let key = &env.keys[0];
    let owner = env.cluster.owner_of(key_slot(key.as_bytes()));
    let other = env
        .cluster
        .primaries()
        .into_iter()
        .find(|p| p.index != owner.index);
    let moved = other
        .expect("another primary")
        .try_query::<String>(&["GET", key])
        .expect_err("a non-owner must redirect");
    assert!(
        moved.contains(".test.local:"),
        "the cluster does not announce hostnames: {moved}"
    );

    // Reads and writes on every shard, one connection per command.
    let check_all_shards = |label: &str| {
        for key in &env.keys {
            let probe = format!("{key}:probe:{{{key}}}");
            let value = format!("{label}-{key}");
            let set = call_once(env.addr(), &["SET", &probe, &value]);
            assert_eq!(
                set,
                Ok(Reply::Status("OK".into())),
                "[{scenario}] {label}: SET {probe} through slotgate\nslotgate:\n{}",
                env.log_excerpt(&[".test.local"])
            );
            let get = call_once(env.addr(), &["GET", &probe]);
            assert_eq!(
                get,
                Ok(Reply::Bulk(Some(value.clone().into_bytes()))),
                "[{scenario}] {label}: GET {probe} through slotgate\nslotgate:\n{}",
                env.log_excerpt(&[".test.local"])
            );
            let direct: Option<String> = env
                .cluster
                .owner_of(key_slot(probe.as_bytes()))
                .query(&["GET", &probe]);
            assert_eq!(
                direct.as_deref(),
                Some(value.as_str()),
                "{probe} on the cluster"
            );
        }
    };
    check_all_shards("before");

    let load = Load::start(
        env.addr(),
        &env.keys,
        LoadOptions {
            check_reads: true,
            ..LoadOptions::default()
        },
    );
    load.wait_all_acked_since(Instant::now(), Duration::from_secs(30))
        .expect("the load to write every key");
    env.cluster.wait_replicas_ready(Duration::from_secs(30));
    let primary = env.cluster.primaries()[0];
    let replica = env.cluster.replicas_of(primary)[0];
    println!(
        "failover: {} ({}) takes over from {} ({})",
        replica.hostname().unwrap_or("?"),
        replica.endpoint(),
        primary.hostname().unwrap_or("?"),
        primary.endpoint()
    );
    let t_ok = env.cluster.failover(replica);
    let caught_up = load.wait_all_acked_since(t_ok, Duration::from_secs(10));
    // Run on a second past the failover on every key, so late errors are seen.
    let _ = load.wait_all_acked_since(t_ok + Duration::from_secs(1), Duration::from_secs(30));
    let report = load.stop();
    check_all_shards("after");

    let errors = report.errors();
    let stale = report.stale_reads();
    // Discovery asks every node of the map in force, replicas included, by the name it
    // announces. A replica that is not `online` yet (syncing, as the old primary is after
    // the failover) is left out of the map, so first wait until slotgate's map holds all
    // six nodes; its next rounds then look every name up. Generous bounds: a resync and a
    // refresh round take well under a second here; these are for a loaded machine.
    wait_for_test(
        "slotgate's map to hold 3 primaries and 3 replicas",
        Duration::from_secs(30),
        || {
            call_once(env.addr(), &["INFO", "topology"])
                .ok()
                .and_then(|reply| reply.text())
                .is_some_and(|info| info.contains("primaries:3") && info.contains("replicas:3"))
        },
    );
    let hostnames: Vec<&str> = env
        .cluster
        .nodes
        .iter()
        .filter_map(|p| p.hostname())
        .collect();
    let names_queried = || -> Vec<(String, usize)> {
        hostnames
            .iter()
            .map(|h| (h.to_string(), env.dns.queries_by_others_for(h)))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while names_queried().iter().any(|(_, n)| *n == 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let names_queried = names_queried();
    record_figure(
        scenario,
        "client_errors_during_failover",
        errors.len() as f64,
        "errors",
    );
    record_figure(scenario, "stale_reads", stale.len() as f64, "reads");
    record_figure(
        scenario,
        "announced_hostnames_looked_up",
        names_queried.iter().filter(|(_, n)| *n > 0).count() as f64,
        "names",
    );
    if let Some(t) = caught_up {
        record_figure(
            scenario,
            "all_shards_written_after_failover_ms",
            ms_between(t_ok, t),
            "ms",
        );
    }
    println!("DNS queries per announced name: {names_queried:?}");

    // Discovery asks every known node, replicas included, and knows them only by the names
    // they announce: each of the six names must have been looked up (by slotgate: the
    // fixture's own queries, made when it publishes a record, are not counted).
    assert_eq!(names_queried.len(), 6, "six nodes announce a hostname");
    let never: Vec<&String> = names_queried
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(h, _)| h)
        .collect();
    assert!(
        never.is_empty(),
        "[{scenario}] slotgate never looked up the announced hostname(s) {never:?} in DNS \
         ({names_queried:?}): it must connect to the announced names, not to addresses it \
         found elsewhere"
    );
    assert!(
        caught_up.is_some(),
        "[{scenario}] not every shard was written after the failover; errors:\n{}\nslotgate:\n{}",
        report.error_lines(30),
        env.log_excerpt(&[".test.local", "MOVED"])
    );
    assert!(
        errors.is_empty(),
        "[{scenario}] {} client error(s) around a planned failover (want 0):\n{}\nslotgate:\n{}",
        errors.len(),
        report.error_lines(30),
        env.log_excerpt(&[".test.local", "MOVED"])
    );
    assert!(
        stale.is_empty(),
        "[{scenario}] stale reads: {:?}",
        stale.iter().take(10).collect::<Vec<_>>()
    );
    audit_and_record(&env, scenario, &report);
}
