//! Real client programs through slotgate.
//!
//! - redis-py 8 (`tests/clients/redis_py_check.py`), both as a standalone client (RESP3
//!   through `HELLO 3`) and as a cluster client, reads back keys written with `redis-cli`
//!   and writes its own. redis-py missing or older than 8 fails the test with the install
//!   hint: it is never skipped.
//! - `redis-benchmark -t set,get -P 16` completes without an error, and its random keys land
//!   on every primary.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::extra::redis_cli_stdin;
use common::{RedisCluster, Slotgate};

const PY_HINT: &str = "the core client tests need redis-py 8: `pip install 'redis>=8'` \
     (or run scripts/test.sh, which installs what the tests need)";

/// `python3`, or `$PYTHON` when set (to test another interpreter).
fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Fails the test, loudly, unless redis-py 8 or later is importable.
fn require_redis_py() {
    let out = Command::new(python())
        .args([
            "-c",
            "import redis, sys; print(redis.__version__); \
             sys.exit(0 if int(redis.__version__.split('.')[0]) >= 8 else 3)",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}` ({e}): {PY_HINT}", python()));
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{PY_HINT}. Found: {} ({} says: {})",
        if version.is_empty() {
            "no redis-py"
        } else {
            &version
        },
        python(),
        stderr.trim().lines().last().unwrap_or_default()
    );
}

#[test]
fn redis_py_8_reads_and_writes_through_slotgate_standalone_and_cluster() {
    require_redis_py();
    let cluster = RedisCluster::start(3, 0);
    let sg = Slotgate::start(&cluster.seeds(), &[]);

    const KEYS: usize = 2000;
    let prefix = "pycheck";
    let mut script = String::new();
    for i in 0..KEYS {
        script.push_str(&format!("SET {prefix}:{i} v{i}\n"));
    }
    let out = redis_cli_stdin(sg.port, &[], script.as_bytes());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| *l == "OK").count(),
        KEYS,
        "redis-cli SETs through slotgate: {}",
        stdout.lines().find(|l| *l != "OK").unwrap_or_default()
    );
    let sizes = cluster.dbsize_by_node();
    assert!(
        sizes.iter().all(|&(_, n)| n > 0),
        "DBSIZE by node: {sizes:?}"
    );

    let check = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/redis_py_check.py");
    let out = Command::new(python())
        .arg(&check)
        .args(["--port", &sg.port.to_string()])
        .args(["--keys", &KEYS.to_string()])
        .args(["--prefix", prefix])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", check.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(2),
        "redis_py_check.py says redis-py 8 is missing: {stderr}\n{PY_HINT}"
    );
    assert!(
        out.status.success(),
        "redis_py_check.py --port {} --keys {KEYS} --prefix {prefix} failed ({}).\n\
         stderr:\n{stderr}\nsummary:\n{stdout}",
        sg.port,
        out.status
    );
    assert!(
        stdout.contains("\"verified_keys\": 2000"),
        "the check verified the keys: {stdout}"
    );
}

#[test]
fn redis_benchmark_set_get_pipelined_completes_without_errors() {
    let cluster = RedisCluster::start(3, 0);
    let sg = Slotgate::start(&cluster.seeds(), &[]);
    let benchmark = common::redis_cli_path().with_file_name("redis-benchmark");
    assert!(
        benchmark.is_file(),
        "{} not found: install redis-tools (it ships redis-benchmark)",
        benchmark.display()
    );
    let out = Command::new(&benchmark)
        .args(["-h", "127.0.0.1", "-p", &sg.port.to_string()])
        .args(["-t", "set,get", "-P", "16", "-n", "100000", "-q"])
        // Random keys, so that they spread over the slots (without -r every request uses
        // the one key `key:__rand_int__`).
        .args(["-r", "100000"])
        .stdin(Stdio::null())
        .output()
        .expect("run redis-benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "redis-benchmark exited with {} (it exits at the first error reply).\n\
         stdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    // Progress lines are overwritten with \r; the final ones end with \n.
    let lines: Vec<&str> = stdout
        .split(['\r', '\n'])
        .chain(stderr.split(['\r', '\n']))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let errors: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("ERR") || l.to_lowercase().contains("error"))
        .collect();
    assert!(
        errors.is_empty(),
        "redis-benchmark reported errors: {errors:?}"
    );
    for test in ["SET", "GET"] {
        let done = lines
            .iter()
            .find(|l| l.starts_with(&format!("{test}: ")) && l.contains(" requests per second"));
        assert!(
            done.is_some_and(|l| !l.contains("rps=")),
            "no final `{test}: N requests per second` line in:\n{stdout}"
        );
    }
    let sizes = cluster.dbsize_by_node();
    for &(port, n) in &sizes {
        assert!(
            n > 1000,
            "primary {port} got {n} keys from redis-benchmark: {sizes:?}"
        );
    }
    let sum: u64 = sizes.iter().map(|&(_, n)| n).sum();
    assert!(sum <= 100_000, "at most 100000 distinct keys: {sizes:?}");
}
