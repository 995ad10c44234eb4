//! Live reload through SIGHUP and `POST /reload`.
//!
//! - A limit (`maxclients`) changes under traffic: no connection is dropped, no command
//!   fails, and the new limit is enforced at once.
//! - A config that fails validation is refused with every problem named by key, and the
//!   running config stays; a key that needs a restart is reported and ignored.
//! - `log-level` applies without a restart.
//! - New `seeds` lead slotgate to a cluster it could not find at start.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::ops::{OpsProxy, eventually, metric};
use common::{RedisCluster, RespConn, free_port};

fn seeds_toml(cluster: &RedisCluster) -> String {
    let list: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("\"{}\"", n.addr))
        .collect();
    format!("seeds = [{}]\n", list.join(", "))
}

/// A client doing SET/GET in a loop on one connection until stopped; returns its error
/// messages (none expected).
struct Traffic {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    thread: JoinHandle<Vec<String>>,
}

impl Traffic {
    fn start(addr: std::net::SocketAddr, id: usize) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let (stop2, ops2) = (stop.clone(), ops.clone());
        let thread = std::thread::spawn(move || {
            let mut conn = RespConn::connect(addr);
            let mut errors = Vec::new();
            let mut i = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                let key = format!("reload:{id}:{}", i % 100);
                let value = i.to_string();
                match conn.try_read_reply_after(&["SET", &key, &value]) {
                    Ok(reply) if reply == b"+OK\r\n" => {}
                    Ok(reply) => errors.push(format!("SET: {}", String::from_utf8_lossy(&reply))),
                    Err(e) => {
                        errors.push(format!("SET: {e}"));
                        break;
                    }
                }
                let want = format!("${}\r\n{value}\r\n", value.len());
                match conn.try_read_reply_after(&["GET", &key]) {
                    Ok(reply) if reply == want.as_bytes() => {}
                    Ok(reply) => errors.push(format!("GET: {}", String::from_utf8_lossy(&reply))),
                    Err(e) => {
                        errors.push(format!("GET: {e}"));
                        break;
                    }
                }
                i += 1;
                ops2.store(i, Ordering::Relaxed);
            }
            // Still connected and working at the end.
            if let Err(e) = conn.try_read_reply_after(&["PING"]) {
                errors.push(format!("final PING: {e}"));
            }
            errors
        });
        Traffic { stop, ops, thread }
    }

    fn ops(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("traffic thread")
    }
}

/// `RespConn::cmd_str` that reports failures instead of panicking.
trait TryCmd {
    fn try_read_reply_after(&mut self, args: &[&str]) -> Result<Vec<u8>, String>;
}

impl TryCmd for RespConn {
    fn try_read_reply_after(&mut self, args: &[&str]) -> Result<Vec<u8>, String> {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        use std::io::Write;
        let mut stream = self.stream();
        stream
            .write_all(&common::extra::encode(&bytes))
            .map_err(|e| e.to_string())?;
        self.try_read_reply()
    }
}

fn wait_ops(traffic: &[Traffic], at_least: u64) {
    eventually(
        "every traffic client makes progress",
        Duration::from_secs(15),
        || traffic.iter().all(|t| t.ops() >= at_least),
    );
}

#[test]
fn a_limit_changes_under_traffic_without_dropping_a_connection() {
    let cluster = RedisCluster::start(3, 0);
    let seeds = seeds_toml(&cluster);
    let proxy = OpsProxy::start_with_config(
        &format!("{seeds}maxclients = 100\nlog-level = \"info\"\nthreads = 2\n"),
        &[],
    );
    proxy.wait_readyz(200, Duration::from_secs(15));
    let traffic: Vec<Traffic> = (0..4).map(|i| Traffic::start(proxy.addr, i)).collect();
    wait_ops(&traffic, 50);

    // SIGHUP: lower maxclients to 6 and turn on debug logging.
    proxy.write_config(&format!(
        "{seeds}maxclients = 6\nlog-level = \"debug\"\nthreads = 2\nslowlog-max-len = 5\n"
    ));
    proxy.signal("HUP");
    eventually("maxclients 6 is in force", Duration::from_secs(5), || {
        metric(&proxy.metrics(), "slotgate_client_connections_max") == Some(6.0)
    });
    let progress = traffic.iter().map(Traffic::ops).max().unwrap();
    wait_ops(&traffic, progress + 50);
    // Four traffic connections plus two: full. The seventh is turned away.
    let mut fifth = RespConn::connect(proxy.addr);
    let mut sixth = RespConn::connect(proxy.addr);
    assert_eq!(fifth.cmd_str(&["PING"]), b"+PONG\r\n");
    assert_eq!(sixth.cmd_str(&["PING"]), b"+PONG\r\n");
    let info = String::from_utf8_lossy(&fifth.cmd_str(&["INFO", "clients"])).into_owned();
    assert!(info.contains("maxclients:6\r\n"), "{info}");
    let mut seventh = RespConn::connect(proxy.addr);
    assert_eq!(
        seventh.read_to_close(),
        b"-ERR max number of clients reached\r\n"
    );
    drop((fifth, sixth, seventh));

    // POST /reload with invalid values: refused whole, every problem named by key.
    proxy.write_config(&format!(
        "{seeds}maxclients = 0\nproto-max-bulk-len = \"1k\"\nlog-level = \"debug\"\nthreads = 2\n"
    ));
    let refused = proxy.post("/reload");
    assert_eq!(refused.status, 400, "{refused:?}");
    let body = refused.json();
    assert_eq!(body["result"], "refused");
    let keys: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"maxclients") && keys.contains(&"proto-max-bulk-len"),
        "{body}"
    );
    let log = proxy.log();
    assert!(log.contains("config reload refused"), "{log}");
    assert!(log.contains("key `maxclients`"), "{log}");
    assert!(log.contains("key `proto-max-bulk-len`"), "{log}");
    assert_eq!(
        metric(&proxy.metrics(), "slotgate_client_connections_max"),
        Some(6.0),
        "the running config stays"
    );

    // An unknown key is refused too, naming it.
    proxy.write_config(&format!("{seeds}max-clients = 5\n"));
    let refused = proxy.post("/reload");
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(refused.body.contains("max-clients"), "{}", refused.body);

    // A valid change plus one that needs a restart: the first applies, the second is
    // reported and ignored.
    proxy.write_config(&format!(
        "{seeds}maxclients = 50\nlog-level = \"debug\"\nthreads = 3\n"
    ));
    let applied = proxy.post("/reload");
    assert_eq!(applied.status, 200, "{applied:?}");
    let body = applied.json();
    assert_eq!(body["result"], "applied");
    assert!(
        body["applied"]
            .as_array()
            .unwrap()
            .contains(&"maxclients".into()),
        "{body}"
    );
    assert_eq!(body["ignored_need_restart"], serde_json::json!(["threads"]));
    assert!(
        proxy
            .log()
            .contains("`threads` changed but needs a restart")
    );
    assert_eq!(
        metric(&proxy.metrics(), "slotgate_client_connections_max"),
        Some(50.0)
    );

    let progress = traffic.iter().map(Traffic::ops).max().unwrap();
    wait_ops(&traffic, progress + 50);
    for (i, t) in traffic.into_iter().enumerate() {
        let errors = t.finish();
        assert!(errors.is_empty(), "traffic client {i}: {errors:?}");
    }
    let text = proxy.metrics();
    assert_eq!(
        metric(&text, "slotgate_config_reloads_total{result=\"ok\"}"),
        Some(2.0)
    );
    assert_eq!(
        metric(&text, "slotgate_config_reloads_total{result=\"failed\"}"),
        Some(2.0)
    );

    // log-level applied live: no DEBUG line before the first reload, some after.
    let mut proxy = proxy;
    proxy.signal("TERM");
    proxy.wait_exit(Duration::from_secs(10)).expect("exit");
    let log = proxy.log();
    let reloaded = log.find("config reloaded").expect("a reload line");
    assert!(!log[..reloaded].contains("DEBUG"), "{}", &log[..reloaded]);
    assert!(log[reloaded..].contains("DEBUG"), "{}", &log[reloaded..]);
}

#[test]
fn reloaded_seeds_lead_to_the_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let nowhere = free_port();
    let proxy = OpsProxy::start_with_config(
        &format!("seeds = [\"127.0.0.1:{nowhere}\"]\ntopology-refresh-interval = \"500ms\"\n"),
        &[],
    );
    let body = proxy.wait_readyz(503, Duration::from_secs(5));
    assert!(body.starts_with("not ready"), "{body}");
    let doc = proxy.get("/topology").json();
    assert_eq!(doc["complete"], false, "{doc:#}");

    proxy.write_config(&format!(
        "{}topology-refresh-interval = \"500ms\"\n",
        seeds_toml(&cluster)
    ));
    proxy.signal("HUP");
    proxy.wait_readyz(200, Duration::from_secs(15));
    let mut conn = RespConn::connect(proxy.addr);
    assert_eq!(conn.cmd_str(&["SET", "found", "yes"]), b"+OK\r\n");
    assert_eq!(conn.cmd_str(&["GET", "found"]), b"$3\r\nyes\r\n");
    assert!(proxy.log().contains("seed list changed by a config reload"));
}
