//! A live reshard under load loses and duplicates nothing, and clients never see a redirect.
//!
//! Two load threads run `INCR` through slotgate on counters spread over the slots, with 50+
//! counters (hash tags) in each of two slots that get migrated: one pipelines a round over
//! every counter at a time, the other sends one command at a time. Each thread counts the
//! increments acknowledged per key and checks every reply is exactly the previous count + 1.
//! Meanwhile slot 1 moves from primary A to B, then slot 2 from B back to A, key batches at
//! a time with pauses so that `ASK` happens mid-migration and `MOVED` after it. When the
//! load stops, every counter read directly from the node that owns it now must equal its
//! acknowledged count, the clients must have seen no error, and slotgate's `INFO proxy`
//! must show that it did follow both kinds of redirect.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::extra::{encode, slot_owners, slotgate_info, tag_for_slot, text};
use common::{RedisCluster, RespConn, Slotgate, key_slot};

/// What one load thread saw.
#[derive(Default)]
struct Load {
    acked: HashMap<String, i64>,
    errors: Vec<String>,
    rounds: u64,
}

impl Load {
    /// Checks one INCR reply for `key` and counts it.
    fn record(&mut self, key: &str, reply: Result<Vec<u8>, String>) {
        let reply = match reply {
            Ok(reply) => text(&reply),
            Err(e) => {
                self.errors.push(format!("INCR {key}: no reply: {e}"));
                return;
            }
        };
        let count = self.acked.entry(key.to_string()).or_default();
        match reply
            .strip_prefix(':')
            .and_then(|r| r.trim_end().parse::<i64>().ok())
        {
            Some(n) if n == *count + 1 => *count = n,
            Some(n) => {
                // Still acknowledged: the stored value is what the node says now.
                self.errors.push(format!(
                    "INCR {key} answered {n} after {} acknowledged increments",
                    *count
                ));
                *count = n;
            }
            None => self
                .errors
                .push(format!("INCR {key} answered {:?}", reply.trim_end())),
        }
    }
}

/// Pipelines one INCR per key, round after round, until `stop`.
fn pipelined_load(addr: SocketAddr, keys: Vec<String>, stop: Arc<AtomicBool>) -> JoinHandle<Load> {
    std::thread::spawn(move || {
        let mut conn = RespConn::connect(addr);
        conn.set_read_timeout(Duration::from_secs(20));
        let mut load = Load::default();
        let mut round = Vec::new();
        for key in &keys {
            round.extend(encode(&[b"INCR", key.as_bytes()]));
        }
        while !stop.load(Ordering::SeqCst) && load.errors.len() < 20 {
            conn.send_raw(&round);
            for key in &keys {
                let reply = conn.try_read_reply();
                let broken = reply.is_err();
                load.record(key, reply);
                if broken {
                    return load;
                }
            }
            load.rounds += 1;
        }
        load
    })
}

/// One INCR at a time over `keys`, until `stop`.
fn single_load(addr: SocketAddr, keys: Vec<String>, stop: Arc<AtomicBool>) -> JoinHandle<Load> {
    std::thread::spawn(move || {
        let mut conn = RespConn::connect(addr);
        conn.set_read_timeout(Duration::from_secs(20));
        let mut load = Load::default();
        while !stop.load(Ordering::SeqCst) && load.errors.len() < 20 {
            for key in &keys {
                conn.send_raw(&encode(&[b"INCR", key.as_bytes()]));
                let reply = conn.try_read_reply();
                let broken = reply.is_err();
                load.record(key, reply);
                if broken {
                    return load;
                }
            }
            load.rounds += 1;
        }
        load
    })
}

#[test]
fn live_reshard_under_incr_load_loses_nothing_and_hides_redirects() {
    let cluster = RedisCluster::start(3, 0);
    let sg = Slotgate::start(&cluster.seeds(), &[]);
    let owners = slot_owners(&cluster);
    let primaries = cluster.primaries();
    let (a, b) = (primaries[0], primaries[1]);

    // Slot 1 on A moves to B; slot 2 on B moves to A.
    let slot1 = (0..16384u16)
        .find(|&s| owners[usize::from(s)] == a.port && s > 100)
        .unwrap();
    let slot2 = (0..16384u16)
        .find(|&s| owners[usize::from(s)] == b.port && s > 6000)
        .unwrap();
    let (tag1, tag2) = (tag_for_slot(slot1), tag_for_slot(slot2));

    let mut pipelined_keys: Vec<String> = Vec::new();
    for i in 0..50 {
        pipelined_keys.push(format!("{{{tag1}}}:p{i}"));
        pipelined_keys.push(format!("{{{tag2}}}:p{i}"));
    }
    pipelined_keys.extend((0..100).map(|i| format!("spread:{i}")));
    let single_keys: Vec<String> = (0..10)
        .flat_map(|i| [format!("{{{tag1}}}:s{i}"), format!("{{{tag2}}}:s{i}")])
        .chain((0..10).map(|i| format!("spread-single:{i}")))
        .collect();
    assert!(
        pipelined_keys
            .iter()
            .chain(&single_keys)
            .map(|k| owners[usize::from(key_slot(k.as_bytes()))])
            .collect::<std::collections::HashSet<_>>()
            .len()
            == 3,
        "counters on every primary"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let pipelined = pipelined_load(sg.addr, pipelined_keys.clone(), stop.clone());
    let single = single_load(sg.addr, single_keys.clone(), stop.clone());

    // Let the counters exist before the slots move, so every batch has keys to migrate.
    common::wait_for_test(
        "the counters to be written",
        Duration::from_secs(20),
        || {
            let n: u64 = a.query(&["CLUSTER", "COUNTKEYSINSLOT", &slot1.to_string()]);
            let m: u64 = b.query(&["CLUSTER", "COUNTKEYSINSLOT", &slot2.to_string()]);
            n == 60 && m == 60
        },
    );
    let pause = Duration::from_millis(150);
    cluster.migrate_slot(slot1, a, b, 6, pause);
    cluster.migrate_slot(slot2, b, a, 6, pause);
    // Load on after the moves too, so commands meet the old owner's MOVED: wait until both
    // loads have written to the moved slots on their new owners again.
    let counter = |node: &common::RedisNode, key: &str| -> u64 {
        node.query::<Option<u64>>(&["GET", key]).unwrap_or(0)
    };
    let moved: Vec<(&common::RedisNode, String)> = vec![
        (b, format!("{{{tag1}}}:p0")),
        (b, format!("{{{tag1}}}:s0")),
        (a, format!("{{{tag2}}}:p0")),
        (a, format!("{{{tag2}}}:s0")),
    ];
    let after_move: Vec<u64> = moved.iter().map(|(n, k)| counter(n, k)).collect();
    common::wait_for_test(
        "the loads to write on the new owners",
        Duration::from_secs(30),
        || {
            moved
                .iter()
                .zip(&after_move)
                .all(|((n, k), &then)| counter(n, k) > then)
        },
    );
    stop.store(true, Ordering::SeqCst);
    let pipelined = pipelined.join().expect("pipelined load thread");
    let single = single.join().expect("single load thread");

    let errors: Vec<&String> = pipelined.errors.iter().chain(&single.errors).collect();
    assert!(
        errors.is_empty(),
        "clients saw {} errors during the reshard (first ones): {:#?}",
        errors.len(),
        &errors[..errors.len().min(10)]
    );
    assert!(
        pipelined.rounds >= 3 && single.rounds >= 3,
        "the load kept running through the migration: {} pipelined rounds, {} single rounds",
        pipelined.rounds,
        single.rounds
    );

    // The moves happened, and every count is exactly what the clients were told.
    let owners_now = slot_owners(&cluster);
    assert_eq!(
        owners_now[usize::from(slot1)],
        b.port,
        "slot {slot1} now on B"
    );
    assert_eq!(
        owners_now[usize::from(slot2)],
        a.port,
        "slot {slot2} now on A"
    );
    let mut wrong = Vec::new();
    for load in [&pipelined, &single] {
        for (key, &acked) in &load.acked {
            let owner = cluster.node_by_port(owners_now[usize::from(key_slot(key.as_bytes()))]);
            let stored: Option<i64> = owner.query(&["GET", key]);
            if stored.unwrap_or(0) != acked {
                wrong.push(format!(
                    "{key}: {acked} acknowledged, {stored:?} on its owner {}",
                    owner.port
                ));
            }
        }
    }
    assert_eq!(
        pipelined.acked.len() + single.acked.len(),
        pipelined_keys.len() + single_keys.len()
    );
    assert!(
        wrong.is_empty(),
        "counters lost or duplicated increments ({} keys): {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );

    // slotgate did follow redirects for the clients.
    let moved: u64 = slotgate_info(sg.addr, "proxy", "redirects_moved")
        .parse()
        .unwrap();
    let ask: u64 = slotgate_info(sg.addr, "proxy", "redirects_ask")
        .parse()
        .unwrap();
    eprintln!(
        "reshard: {} pipelined rounds, {} single rounds, redirects_moved:{moved} redirects_ask:{ask}",
        pipelined.rounds, single.rounds
    );
    assert!(
        moved > 0,
        "INFO proxy redirects_moved:{moved}: no MOVED was followed"
    );
    assert!(
        ask > 0,
        "INFO proxy redirects_ask:{ask}: no ASK was followed"
    );
}
