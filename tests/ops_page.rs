//! The admin page's JSON API (`/api/topology`) and its `admin-token`, against real clusters.
//!
//! - Every documented field is there: readiness and its reason, the mode, the slot bar's
//!   runs covering all 16384 slots, per node role, IP, health and since when, replication
//!   offset and lag, connections, in-flight commands, windowed rates and p99, errors by
//!   kind; open migrations (`CLUSTER SETSLOT ... MIGRATING/IMPORTING`, read from the
//!   nodes' `CLUSTER NODES`); the event ring (map loaded, slots moved, failover).
//! - The other event kinds, each from a real cause: a seed name's DNS answer changing
//!   (dnsmasq), a MOVED storm (a slot moved behind slotgate's back while a pipeline reads
//!   it between two rare rounds), a replica leaving the map (killed, so no longer
//!   `online`) and joining it again (restarted).
//! - `/`, `/api/topology`, `/topology` and `POST /reload` need the token when one is set
//!   (bearer, or the cookie the login form sets); probes and `/metrics` stay open.
//! - Neither the backend password nor the admin token appears in any page, API, metric or
//!   log line.
//!
//! - In sentinel and standalone mode: one shard owning every slot, roles and offsets from
//!   `ROLE`, and (sentinel) the real Sentinels' status the page's Sentinel section draws.
//!
//! The browser test of the page itself is `tests/ops_page_browser.rs`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::ops::{OpsProxy, eventually};
use common::security::require_password_on_nodes;
use common::{RedisCluster, RedisNode, RespConn, wait_for_test};
use serde_json::{Value, json};

/// Generous liveness bound for anything that waits on a discovery round (the refresher
/// runs every second in these tests; the machine may be loaded by other builds).
const ROUND_BOUND: Duration = Duration::from_secs(30);

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One request, no redirect followed, with `headers`.
fn http(admin: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("http://{admin}{path}");
    let response = match method {
        "GET" => {
            let mut request = agent.get(&url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.call()
        }
        "POST" => {
            let mut request = agent.post(&url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.send_empty()
        }
        other => panic!("unsupported method {other}"),
    };
    let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    Reply {
        status: response.status().as_u16(),
        headers,
        body: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

fn api(proxy: &OpsProxy) -> Value {
    let reply = http(proxy.admin, "GET", "/api/topology", &[]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// Every node object of the first upstream, with its shard index.
fn nodes(doc: &Value) -> Vec<(usize, Value)> {
    let mut all = Vec::new();
    for (i, shard) in doc["upstreams"][0]["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .enumerate()
    {
        all.push((i, shard["primary"].clone()));
        for replica in shard["replicas"].as_array().expect("replicas") {
            all.push((i, replica.clone()));
        }
    }
    all
}

fn event_kinds(doc: &Value) -> Vec<String> {
    doc["upstreams"][0]["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn api_topology_describes_every_node_migrations_and_events() {
    let cluster = RedisCluster::start(3, 1);
    let proxy = OpsProxy::start(&[
        "--seeds",
        &cluster.seeds(),
        "--topology-refresh-interval",
        "1s",
    ]);
    proxy.wait_readyz(200, ROUND_BOUND);

    let mut conn = RespConn::connect(proxy.addr);
    for i in 0..300 {
        let key = format!("page-key-{i}");
        assert_eq!(conn.cmd_str(&["SET", &key, "v"]), b"+OK\r\n");
    }
    eventually("every node has its details", ROUND_BOUND, || {
        let doc = api(&proxy);
        let all = nodes(&doc);
        all.len() == 6
            && all.iter().all(|(_, n)| {
                n["replication_offset"].is_i64()
                    && n["ip"] == "127.0.0.1"
                    && n["health"] == "online"
            })
    });
    // Rates need a window: two samples at least a second apart.
    std::thread::sleep(Duration::from_millis(1100));
    for i in 0..300 {
        assert_eq!(
            conn.cmd_str(&["GET", &format!("page-key-{i}")]),
            b"$1\r\nv\r\n"
        );
    }
    let doc = api(&proxy);
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["ready"], true);
    assert_eq!(doc["readiness"], "ready");
    assert_eq!(doc["readiness_reason"], "ready");
    assert!(
        doc["window_seconds"].as_f64().is_some_and(|w| w >= 1.0),
        "{doc}"
    );
    assert!(
        doc["proxy"]["commands_per_second"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{doc}"
    );
    assert!(
        doc["proxy"]["p99_ms"].as_f64().is_some_and(|p| p > 0.0),
        "{doc}"
    );
    assert!(
        doc["proxy"]["client_connections"].as_u64() >= Some(1),
        "{doc}"
    );
    let upstream = &doc["upstreams"][0];
    assert_eq!(upstream["name"], "default");
    assert_eq!(upstream["mode"], "cluster");
    assert_eq!(upstream["slots_covered"], 16384);

    // The slot bar's runs tile 0..=16383 and agree with each shard's ranges.
    let runs = upstream["slot_owners"].as_array().expect("slot_owners");
    let mut next = 0;
    for run in runs {
        let (start, end, shard) = (
            run[0].as_i64().unwrap(),
            run[1].as_i64().unwrap(),
            run[2].as_i64().unwrap(),
        );
        assert_eq!(start, next, "runs are contiguous: {runs:?}");
        assert!(shard >= 0, "every slot is served: {runs:?}");
        let ranges = &upstream["shards"][shard as usize]["slots"];
        assert!(
            ranges
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r[0].as_i64() <= Some(start) && r[1].as_i64() >= Some(end)),
            "run {run} lies in shard {shard}'s ranges {ranges}"
        );
        next = end + 1;
    }
    assert_eq!(next, 16384);

    let mut primaries_with_traffic = 0;
    for (shard, node) in nodes(&doc) {
        let address = node["address"].as_str().unwrap().to_owned();
        let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
        let real = cluster.node_by_port(port);
        let is_primary = cluster.primaries().iter().any(|p| p.port == port);
        assert_eq!(
            node["role"],
            if is_primary { "primary" } else { "replica" },
            "{node}"
        );
        assert_eq!(node["id"], real.node_id(), "{node}");
        assert_eq!(node["cluster_health"], "online", "{node}");
        assert!(
            node["health_since"]
                .as_str()
                .is_some_and(|s| s.ends_with('Z')),
            "{node}"
        );
        for kind in ["connect", "timeout", "closed", "protocol"] {
            assert_eq!(node["errors"][kind], 0, "{node}");
        }
        assert_eq!(
            node["in_flight"], 0,
            "nothing is in flight between commands: {node}"
        );
        if is_primary {
            assert!(node["replication_lag_bytes"].is_null(), "{node}");
            if node["connections"].as_u64() >= Some(1)
                && node["requests_per_second"]
                    .as_f64()
                    .is_some_and(|r| r > 0.0)
                && node["p99_ms"].as_f64().is_some_and(|p| p > 0.0)
            {
                primaries_with_traffic += 1;
            }
        } else {
            assert!(
                node["replication_lag_bytes"]
                    .as_i64()
                    .is_some_and(|l| l >= 0),
                "{node}"
            );
            assert!(
                node["replication_offset"].as_i64() > Some(0),
                "a replica of shard {shard} that received 300 SETs has an offset: {node}"
            );
        }
    }
    assert_eq!(
        primaries_with_traffic, 3,
        "GETs reached every primary: {doc}"
    );
    assert_eq!(
        event_kinds(&doc).last().map(String::as_str),
        Some("map_loaded"),
        "{doc}"
    );

    // /topology stays what it was.
    let topology = http(proxy.admin, "GET", "/topology", &[]).json();
    assert_eq!(topology["shards"].as_array().map(Vec::len), Some(3));
    assert!(
        topology["shards"][0]["primary"]
            .get("connections")
            .is_none()
    );

    // An open migration shows on both sides.
    let slot = 100u16;
    let from = cluster.node_for_slot(slot);
    let to = cluster
        .primaries()
        .into_iter()
        .find(|p| p.port != from.port)
        .unwrap();
    let slot_s = slot.to_string();
    to.query::<()>(&["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", &from.node_id()]);
    from.query::<()>(&["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", &to.node_id()]);
    let from_addr = format!("127.0.0.1:{}", from.port);
    let to_addr = format!("127.0.0.1:{}", to.port);
    eventually("the migration of slot 100 is reported", ROUND_BOUND, || {
        let doc = api(&proxy);
        let migrations = doc["upstreams"][0]["migrations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let has = |state: &str, node: &str| {
            migrations
                .iter()
                .any(|m| m["slot"] == slot && m["state"] == state && m["node"] == node)
        };
        has("migrating", &from_addr) && has("importing", &to_addr)
    });
    let set_node = ["CLUSTER", "SETSLOT", &slot_s, "NODE", &to.node_id()];
    to.query::<()>(&set_node);
    from.query::<()>(&set_node);
    for primary in cluster.primaries() {
        if primary.port != to.port && primary.port != from.port {
            primary.query::<()>(&set_node);
        }
    }
    eventually(
        "the move of slot 100 is an event and the migration is closed",
        ROUND_BOUND,
        || {
            let doc = api(&proxy);
            let upstream = &doc["upstreams"][0];
            upstream["migrations"].as_array().is_some_and(Vec::is_empty)
                && upstream["events"].as_array().unwrap().iter().any(|e| {
                    e["kind"] == "slots_moved"
                        && e["message"] == format!("1 slot moved from {from_addr} to {to_addr}")
                })
        },
    );

    // A failover is an event, and the roles swap.
    let primary = cluster.primaries()[0];
    let replica = cluster.replicas_of(primary)[0];
    let (old, new) = (
        format!("127.0.0.1:{}", primary.port),
        format!("127.0.0.1:{}", replica.port),
    );
    cluster.failover(replica);
    eventually("the failover is an event", ROUND_BOUND, || {
        let doc = api(&proxy);
        let roles: Vec<(String, String)> = nodes(&doc)
            .into_iter()
            .map(|(_, n)| {
                (
                    n["address"].as_str().unwrap().to_owned(),
                    n["role"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        roles.contains(&(new.clone(), "primary".to_owned()))
            && roles.contains(&(old.clone(), "replica".to_owned()))
            && doc["upstreams"][0]["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| {
                    e["kind"] == "failover"
                        && e["message"] == format!("{new} took over as primary from {old}")
                })
    });
}

#[test]
fn admin_token_guards_page_and_api_not_probes_and_no_secret_shows() {
    const NODE_PASSWORD: &str = "n0de-pa55-Zq9";
    const TOKEN: &str = "adm1n-t0ken/Xy+7";
    let cluster = RedisCluster::start(3, 0);
    require_password_on_nodes(&cluster, NODE_PASSWORD);
    let proxy = OpsProxy::start(&[
        "--seeds",
        &cluster.seeds(),
        "--backend-password",
        NODE_PASSWORD,
        "--admin-token",
        TOKEN,
    ]);
    proxy.wait_readyz(200, ROUND_BOUND);
    let admin = proxy.admin;
    let bearer = format!("Bearer {TOKEN}");

    for path in ["/api/topology", "/topology"] {
        let denied = http(admin, "GET", path, &[]);
        assert_eq!(denied.status, 401, "{path}: {}", denied.body);
        assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
        let wrong = http(
            admin,
            "GET",
            path,
            &[("Authorization", "Bearer adm1n-t0ken")],
        );
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
        let granted = http(admin, "GET", path, &[("Authorization", &bearer)]);
        assert_eq!(granted.status, 200, "{path}: {}", granted.body);
    }
    let reload = http(admin, "POST", "/reload", &[]);
    assert_eq!(reload.status, 401, "POST /reload without the token");
    let reload = http(admin, "POST", "/reload", &[("Authorization", &bearer)]);
    assert_eq!(reload.status, 200, "POST /reload with it: {}", reload.body);

    // The page: a login form without the token; ?token= sets a cookie and redirects.
    let form = http(admin, "GET", "/", &[]);
    assert_eq!(form.status, 401);
    assert!(
        form.body.contains("<form") && form.body.contains("name=\"token\""),
        "{}",
        form.body
    );
    assert!(
        !form.body.contains("page.js"),
        "the page itself is not served"
    );
    let wrong = http(admin, "GET", "/?token=nope", &[]);
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    let login = http(admin, "GET", "/?token=adm1n-t0ken%2FXy%2B7", &[]);
    assert_eq!(login.status, 303, "{}", login.body);
    assert_eq!(login.header("location"), Some("./"));
    let cookie = login.header("set-cookie").expect("a cookie").to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie_pair = cookie.split(';').next().unwrap().to_owned();
    let page = http(admin, "GET", "/", &[("Cookie", &cookie_pair)]);
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<script src=\"page.js\"></script>"),
        "{}",
        page.body
    );
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let doc = http(admin, "GET", "/api/topology", &[("Cookie", &cookie_pair)]);
    assert_eq!(doc.status, 200, "the cookie opens the API too");

    // Probes, metrics and the static assets need no token.
    for path in ["/healthz", "/readyz", "/metrics", "/page.js", "/page.css"] {
        assert_eq!(http(admin, "GET", path, &[]).status, 200, "{path}");
    }

    // No secret anywhere.
    let mut seen = vec![
        form.body,
        page.body,
        doc.body,
        http(admin, "GET", "/topology", &[("Authorization", &bearer)]).body,
        http(admin, "GET", "/metrics", &[]).body,
        http(admin, "GET", "/page.js", &[]).body,
        proxy.log(),
    ];
    seen.extend(
        login
            .headers
            .iter()
            .filter(|(n, _)| n != "set-cookie")
            .map(|(_, v)| v.clone()),
    );
    for text in &seen {
        assert!(
            !text.contains(NODE_PASSWORD),
            "the backend password leaked: {text}"
        );
        assert!(
            !text.contains(TOKEN) && !text.contains("adm1n-t0ken"),
            "the admin token leaked: {text}"
        );
    }
}

/// Generous liveness bound for discovery to settle: 2 shared cores.
const SETTLE: Duration = Duration::from_secs(30);

/// Waits until `/api/topology` shows one shard, `primary` its primary with `replicas`
/// replicas whose offsets came from `ROLE`; returns that document.
fn wait_one_shard(proxy: &OpsProxy, primary: &str, replicas: usize) -> Value {
    let mut doc = Value::Null;
    // Liveness bound: a few discovery rounds on a loaded 2-core box.
    wait_for_test("the page's API to show the one shard", SETTLE, || {
        doc = api(proxy);
        let shard = &doc["upstreams"][0]["shards"][0];
        shard["primary"]["address"] == primary
            && shard["replicas"].as_array().map_or(0, Vec::len) == replicas
            && nodes(&doc)
                .iter()
                .all(|(_, n)| n["replication_offset"].is_i64())
    });
    doc
}

/// What every shape without slots shows: one shard owning all 16384 slots, roles from ROLE.
fn assert_one_shard_owning_every_slot(doc: &Value, mode: &str, primary: &str) {
    let upstream = &doc["upstreams"][0];
    assert_eq!(upstream["mode"], mode, "{upstream:#}");
    assert_eq!(
        upstream["slot_owners"],
        json!([[0, 16383, 0]]),
        "{upstream:#}"
    );
    assert_eq!(upstream["shards"].as_array().map(Vec::len), Some(1));
    for (_, node) in nodes(doc) {
        let expected = if node["address"] == primary {
            "primary"
        } else {
            "replica"
        };
        assert_eq!(node["role"], expected, "{node:#}");
        assert_eq!(node["cluster_health"], "online", "{node:#}");
        assert!(node["replication_lag_bytes"].is_i64() || expected == "primary");
    }
    assert_eq!(doc["readiness"], "ready", "{doc:#}");
}

#[test]
fn api_topology_in_sentinel_mode_shows_the_shard_and_the_real_sentinel_status() {
    let group = common::sentinel::SentinelGroup::start(2, 3);
    let primary = group.agreed_primary().expect("the Sentinels agree");
    let proxy = OpsProxy::start(&[
        "--mode",
        "sentinel",
        "--sentinels",
        &group.sentinel_list(),
        "--master-name",
        common::sentinel::MASTER_NAME,
        "--threads",
        "1",
    ]);
    let doc = wait_one_shard(&proxy, &primary, 2);
    assert_one_shard_owning_every_slot(&doc, "sentinel", &primary);
    // The fields the page's Sentinel section reads (page.js `sentinels`), from the real
    // Sentinels: every one reachable and naming the primary they agree on.
    let status = &doc["upstreams"][0]["sentinel"];
    assert_eq!(status["master_name"], common::sentinel::MASTER_NAME);
    let peers = status["sentinels"].as_array().expect("sentinels");
    let mut addresses: Vec<String> = peers
        .iter()
        .map(|p| p["address"].as_str().unwrap_or_default().to_owned())
        .collect();
    addresses.sort();
    let mut expected: Vec<String> = group
        .sentinel_list()
        .split(',')
        .map(str::to_owned)
        .collect();
    expected.sort();
    assert_eq!(addresses, expected, "{status:#}");
    for peer in peers {
        assert_eq!(peer["reachable"], true, "{peer:#}");
        assert_eq!(peer["says"], primary.as_str(), "{peer:#}");
    }
    assert_eq!(status["primary"], primary.as_str(), "{status:#}");
}

#[test]
fn api_topology_in_standalone_mode_shows_one_shard_with_roles_from_role() {
    let primary = RedisNode::standalone();
    let replica = RedisNode::standalone();
    let primary_addr = format!("127.0.0.1:{}", primary.port);
    replica.query::<String>(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]);
    let seeds = format!("127.0.0.1:{},{primary_addr}", replica.port);
    let proxy = OpsProxy::start(&["--mode", "standalone", "--seeds", &seeds, "--threads", "1"]);
    let doc = wait_one_shard(&proxy, &primary_addr, 1);
    assert_one_shard_owning_every_slot(&doc, "standalone", &primary_addr);
    assert!(doc["upstreams"][0]["sentinel"].is_null(), "{doc:#}");
}

/// The events of the first upstream as `(kind, message)`.
fn events(doc: &Value) -> Vec<(String, String)> {
    doc["upstreams"][0]["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().to_owned(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Whether the first upstream has an event of `kind` whose message satisfies `message`,
/// with a time.
fn has_event(doc: &Value, kind: &str, message: impl Fn(&str) -> bool) -> bool {
    doc["upstreams"][0]["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| {
            e["kind"] == kind
                && e["at_unix_ms"].is_u64()
                && message(e["message"].as_str().unwrap_or_default())
        })
}

#[test]
fn api_topology_reports_a_seed_name_whose_dns_answer_changed() {
    use common::dns::DnsServer;
    use std::net::Ipv4Addr;

    let cluster = RedisCluster::start(3, 0);
    let dns = DnsServer::start();
    let name = "seeds.ops-page.test.local";
    dns.set(name, &[Ipv4Addr::LOCALHOST]);
    let port = cluster.primaries()[0].port;
    let seed = format!("{name}:{port}");
    let proxy = OpsProxy::start(&[
        "--seeds",
        &seed,
        "--dns-server",
        &dns.server_arg(),
        "--topology-refresh-interval",
        "1s",
    ]);
    proxy.wait_readyz(200, ROUND_BOUND);
    assert!(
        !has_event(&api(&proxy), "dns_changed", |_| true),
        "the first answer is no change: {:?}",
        events(&api(&proxy))
    );

    // A second address joins the answer (nothing listens there: only the answer matters).
    // The answer's TTL is 1 s, so slotgate looks the name up again within seconds;
    // ROUND_BOUND leaves room for a loaded machine.
    dns.set(name, &[Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 0, 0, 2)]);
    eventually(
        "the DNS change is an event naming the name",
        ROUND_BOUND,
        || {
            has_event(&api(&proxy), "dns_changed", |m| {
                m == format!(
                    "{name} now resolves to 127.0.0.1:{port}, 127.0.0.2:{port} (was 127.0.0.1:{port})"
                )
            })
        },
    );
}

#[test]
fn api_topology_reports_a_moved_storm() {
    use common::extra::{slotgate_info, tag_for_slot};

    // Rounds are rare: every 60 s, and never within 20 s of the previous one (the first
    // round of the loop is 20 s after start at the earliest), so the MOVED replies of a
    // stale map pile up between two rounds.
    let cluster = RedisCluster::start(3, 0);
    let proxy = OpsProxy::start(&[
        "--seeds",
        &cluster.seeds(),
        "--topology-refresh-interval",
        "60s",
        "--topology-refresh-min-interval",
        "20s",
    ]);
    proxy.wait_readyz(200, ROUND_BOUND);

    // Move slot 200 between primaries on every node, behind slotgate's back.
    let slot: u16 = 200;
    let from = cluster.node_for_slot(slot);
    let to = cluster
        .primaries()
        .into_iter()
        .find(|p| p.port != from.port)
        .unwrap();
    let set_node = [
        "CLUSTER",
        "SETSLOT",
        &slot.to_string(),
        "NODE",
        &to.node_id(),
    ];
    to.query::<()>(&set_node);
    for primary in cluster.primaries() {
        if primary.port != to.port {
            primary.query::<()>(&set_node);
        }
    }

    // One pipeline of 300 reads of that slot: each goes to the old owner under the stale
    // map, meets MOVED and is followed to the new owner.
    let tag = tag_for_slot(slot);
    let mut conn = RespConn::connect(proxy.addr);
    let mut pipeline = Vec::new();
    for i in 0..300 {
        let key = format!("{{{tag}}}storm-{i}");
        pipeline.extend(common::extra::encode(&[b"GET", key.as_bytes()]));
    }
    conn.send_raw(&pipeline);
    for _ in 0..300 {
        assert_eq!(conn.read_reply(), b"$-1\r\n");
    }
    let moved: u64 = slotgate_info(proxy.addr, "proxy", "redirects_moved")
        .parse()
        .unwrap();
    assert!(
        moved >= 100,
        "the reads met only {moved} MOVED: a round ran in between"
    );

    // The round after the floor counts them: 20 s plus room for a loaded machine.
    eventually(
        "the MOVED storm is an event",
        Duration::from_secs(20) + ROUND_BOUND,
        || {
            has_event(&api(&proxy), "moved_storm", |m| {
                m.strip_suffix(" MOVED replies since the previous discovery round")
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n >= 100)
            })
        },
    );
}

#[test]
fn api_topology_reports_a_replica_leaving_and_joining_the_map() {
    let mut cluster = RedisCluster::start(3, 1);
    let proxy = OpsProxy::start(&[
        "--seeds",
        &cluster.seeds(),
        "--topology-refresh-interval",
        "1s",
    ]);
    proxy.wait_readyz(200, ROUND_BOUND);
    eventually("slotgate sees all six nodes", ROUND_BOUND, || {
        nodes(&api(&proxy)).len() == 6
    });
    let primary = cluster.primaries()[0].port;
    let replica = cluster.replicas_of(cluster.node_by_port(primary))[0].port;
    let index = cluster.node_index(replica);
    let address = format!("127.0.0.1:{replica}");

    // A dead replica is no longer `online` in CLUSTER SHARDS once the cluster marks it
    // failed (after cluster-node-timeout), so it leaves the map. ROUND_BOUND covers the
    // timeout plus a round on a loaded machine.
    cluster.nodes[index].stop();
    eventually("the replica leaving is an event", ROUND_BOUND, || {
        has_event(&api(&proxy), "node_removed", |m| {
            m == format!("{address} left the slot map")
        })
    });

    // Restarted, it rejoins as a replica once the cluster sees it online again.
    cluster.nodes[index].restart();
    eventually("the replica joining is an event", ROUND_BOUND, || {
        has_event(&api(&proxy), "node_added", |m| {
            m == format!("{address} joined as a replica")
        })
    });
}
