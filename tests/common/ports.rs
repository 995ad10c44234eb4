//! Free loopback ports for test processes.
//!
//! A port comes from 20000..22700 so that it and its Redis Cluster bus port (+10000) both
//! stay below the kernel's ephemeral range (32768+), where outgoing connections would
//! otherwise steal them. Three guards keep parallel tests apart:
//! 1. a process-wide set: this process never hands out the same port twice;
//! 2. an advisory `flock` on `$TMPDIR/slotgate-test-ports/<port>.lock`, held until the
//!    process exits: other test processes (nextest runs one per test) skip the port, and the
//!    kernel drops the lock when the process dies, so a crash leaves nothing stale;
//! 3. a bind probe of the port and port+10000: nothing else on the machine uses them now.
//!
//! Something outside our control can still grab a port between the probe and the spawn, so
//! the starters also retry on a bind failure with a new port.

use std::collections::HashSet;
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

const FIRST: u16 = 20000;
const END: u16 = 22700;
const BUS_OFFSET: u16 = 10000;

/// Ports handed out by this process, and the lock files that reserve them machine-wide.
static TAKEN: Mutex<Option<(HashSet<u16>, Vec<File>)>> = Mutex::new(None);

/// A random port in 20000..22700 whose port and port+10000 can both be bound on 127.0.0.1
/// right now, and which no other cooperating test process holds.
pub fn free_port() -> u16 {
    let lock_dir = std::env::temp_dir().join("slotgate-test-ports");
    std::fs::create_dir_all(&lock_dir).expect("create the port lock dir");
    let mut taken = TAKEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (ports, locks) = taken.get_or_insert_with(Default::default);
    let random = RandomState::new();
    for attempt in 0u64..5000 {
        let span = u64::from(END - FIRST);
        let port = FIRST + (random.hash_one((std::process::id(), attempt)) % span) as u16;
        if ports.contains(&port) {
            continue;
        }
        let lock_path = lock_dir.join(format!("{port}.lock"));
        let Ok(file) = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
        else {
            continue;
        };
        if file.try_lock().is_err() {
            continue; // another test process holds it
        }
        if can_bind(port) && can_bind(port + BUS_OFFSET) {
            ports.insert(port);
            locks.push(file); // keep the lock for the rest of the process
            return port;
        }
    }
    panic!("no free port pair in {FIRST}..{END} (+{BUS_OFFSET}) after 5000 tries");
}

fn can_bind(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}
