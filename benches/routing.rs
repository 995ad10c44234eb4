//! Per-command routing costs: CRC16 slot hashing of keys (plain and hash-tagged), and the
//! router's whole decision for one scanned request (local-name check, command-table lookup,
//! arity check, key extraction, slot of every key).
//!
//! Data flow mirrors the session: a request's RESP bytes are scanned once, outside the timed
//! closure, into argument ranges; the timed closure runs `router::route` on the resulting
//! [`ArgView`] against the built-in command table, exactly what a session does per request.
//! Throughput is the request's wire size, so the figures compare with `benches/resp.rs`.
//! Run with `cargo bench --bench routing` (`-- --quick` for a fast pass).

use std::hint::black_box;
use std::ops::Range;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use slotgate::commands::CommandTable;
use slotgate::resp::ArgView;
use slotgate::resp::scan::{RequestScanner, ScanLimits, Scanned};
use slotgate::router::{Route, route};
use slotgate::slot::key_slot;

/// A RESP array of bulk strings, as a client sends it.
fn request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A scanned request: its bytes and each argument's range inside them.
struct Scanned1 {
    name: &'static str,
    frame: Vec<u8>,
    ranges: Vec<Range<u32>>,
}

fn scanned(name: &'static str, args: &[&[u8]]) -> Scanned1 {
    let frame = request(args);
    let mut ranges = Vec::new();
    let mut scanner = RequestScanner::new(ScanLimits::default());
    match scanner.scan(&frame, &mut ranges) {
        Ok(Some(Scanned::Request { len })) => assert_eq!(len, frame.len()),
        other => panic!("{name}: the scanner did not return one whole request: {other:?}"),
    }
    Scanned1 {
        name,
        frame,
        ranges,
    }
}

fn bench_slot(c: &mut Criterion) {
    let keys: [(&str, &[u8]); 4] = [
        ("short_key", b"key:000000012345"),
        ("tagged_key", b"{user1000}.following"),
        ("tag_at_end", b"session:0123456789:{user1000}"),
        ("long_key_256", &[b'k'; 256]),
    ];
    let mut group = c.benchmark_group("slot");
    for (name, key) in keys {
        group.throughput(Throughput::Bytes(key.len() as u64));
        group.bench_function(name, |b| b.iter(|| key_slot(black_box(key))));
    }
    group.finish();
}

fn bench_route(c: &mut Criterion) {
    let table = CommandTable::builtin();
    let mget_keys: Vec<Vec<u8>> = (0..10)
        .map(|i| format!("{{user1000}}:key:{i:06}").into_bytes())
        .collect();
    let mut mget_args: Vec<&[u8]> = vec![b"MGET"];
    mget_args.extend(mget_keys.iter().map(Vec::as_slice));
    let mget_split_keys: Vec<Vec<u8>> = (0..10)
        .map(|i| format!("key:{i:012}").into_bytes())
        .collect();
    let mut mget_split_args: Vec<&[u8]> = vec![b"MGET"];
    mget_split_args.extend(mget_split_keys.iter().map(Vec::as_slice));
    let script: &[u8] = b"return redis.call('GET', KEYS[1])";
    let inputs = [
        scanned("get", &[b"GET", b"key:000000012345"]),
        scanned("set", &[b"SET", b"key:000000012345", b"xxx"]),
        scanned("get_lowercase", &[b"get", b"key:000000012345"]),
        scanned("mget_10_one_slot", &mget_args),
        scanned("mget_10_split", &mget_split_args),
        scanned("eval_1_key", &[b"EVAL", script, b"1", b"key:000000012345"]),
        scanned("ping_local", &[b"PING"]),
    ];

    let mut group = c.benchmark_group("route");
    for input in &inputs {
        let args = ArgView::new(&input.frame, &input.ranges);
        // The decision itself is checked once, outside the timing, so a routing change that
        // turns one of these into an error does not go unnoticed as a "speed-up".
        let decided = route(&table, &args);
        let expected_split = input.name == "mget_10_split";
        match (&decided, input.name) {
            (Route::Local(_), "ping_local") => {}
            (Route::Split(_), _) if expected_split => {}
            (Route::Slot(_), _) if !expected_split && input.name != "ping_local" => {}
            _ => panic!("{}: unexpected route {decided:?}", input.name),
        }
        group.throughput(Throughput::Bytes(input.frame.len() as u64));
        group.bench_function(input.name, |b| {
            b.iter(|| route(black_box(&table), black_box(&args)))
        });
    }
    group.finish();

    // Scan + route: the full per-request CPU before the backend, for the common commands.
    let mut group = c.benchmark_group("scan_route");
    let mut scanner = RequestScanner::new(ScanLimits::default());
    let mut ranges = Vec::with_capacity(16);
    for input in inputs.iter().filter(|i| matches!(i.name, "get" | "set")) {
        group.throughput(Throughput::Bytes(input.frame.len() as u64));
        group.bench_function(input.name, |b| {
            b.iter(|| {
                let frame = black_box(input.frame.as_slice());
                let _ = scanner.scan(frame, &mut ranges);
                route(&table, &ArgView::new(frame, &ranges))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_slot, bench_route);
criterion_main!(benches);
