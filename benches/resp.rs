//! Hot-path parsing costs: the request scanner on typical client traffic and the reply walker
//! on typical backend replies, with `redis-protocol` decoding the same bytes as a reference.
//!
//! Inputs are built once, outside the timed closures; throughput is reported in bytes so
//! small and large inputs compare. Run with `cargo bench --bench resp` (`-- --quick` for a
//! fast pass).

use std::hint::black_box;
use std::ops::Range;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use slotgate::resp::scan::{RequestScanner, ScanLimits, Scanned};
use slotgate::resp::walk::ReplyWalker;

fn request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn bulk(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// Scans every request in `buf`, as a session does with one read full of pipelined commands.
fn scan_all(scanner: &mut RequestScanner, buf: &[u8], args: &mut Vec<Range<u32>>) -> usize {
    let mut offset = 0;
    while let Ok(Some(scanned)) = scanner.scan(&buf[offset..], args) {
        offset += match scanned {
            Scanned::Request { len } | Scanned::Inline { len, .. } | Scanned::Empty { len } => len,
        };
    }
    offset
}

fn bench_scan(c: &mut Criterion) {
    let set = request(&[b"SET", b"key:000123", b"value-of-some-length"]);
    let get = request(&[b"GET", b"key:000123"]);
    let pipeline: Vec<u8> = (0..100)
        .flat_map(|i| {
            let key = format!("key:{i:06}").into_bytes();
            if i % 2 == 0 {
                request(&[b"SET", &key, b"value-of-some-length"])
            } else {
                request(&[b"GET", &key])
            }
        })
        .collect();

    let mut group = c.benchmark_group("scan");
    let mut scanner = RequestScanner::new(ScanLimits::default());
    let mut args = Vec::with_capacity(16);
    // One call per command, as when a read holds exactly one request.
    for (name, input) in [("set", &set), ("get", &get)] {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| scanner.scan(black_box(input), &mut args))
        });
    }
    // A read full of pipelined commands: scan until the buffer is used up.
    group.throughput(Throughput::Bytes(pipeline.len() as u64));
    group.bench_function("pipeline_100", |b| {
        b.iter(|| scan_all(&mut scanner, black_box(&pipeline), &mut args))
    });
    // Reference point: the general-purpose decoder the design measured against.
    group.throughput(Throughput::Bytes(set.len() as u64));
    group.bench_function("set_redis_protocol", |b| {
        b.iter(|| redis_protocol::resp2::decode::decode(black_box(&set)))
    });
    group.finish();
}

fn bench_walk(c: &mut Criterion) {
    let ok = b"+OK\r\n".to_vec();
    let mut bulk_100 = Vec::new();
    bulk(&mut bulk_100, &[b'x'; 100]);
    let mut array_100 = b"*100\r\n".to_vec();
    for i in 0..100 {
        bulk(&mut array_100, format!("value-{i:014}").as_bytes());
    }

    let mut group = c.benchmark_group("walk");
    let mut walker = ReplyWalker::new(128);
    for (name, input) in [
        ("ok", &ok),
        ("bulk_100", &bulk_100),
        ("array_100_bulks", &array_100),
    ] {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| b.iter(|| walker.walk(black_box(input))));
    }
    group.throughput(Throughput::Bytes(array_100.len() as u64));
    group.bench_function("array_100_bulks_redis_protocol", |b| {
        b.iter(|| redis_protocol::resp2::decode::decode(black_box(&array_100)))
    });
    group.finish();
}

criterion_group!(benches, bench_scan, bench_walk);
criterion_main!(benches);
