//! TLS end to end: slotgate's TLS listener in front of clients, and TLS towards a TLS-only,
//! password-protected Redis Cluster behind it, over real sockets and real certificates.
//!
//! - acceptance: `redis-cli --tls -a <password>` through slotgate's `tls-port` writes 300
//!   keys (one `--pipe` stream) that land on all three primaries of a TLS-only AUTH cluster
//!   (`backend-tls`, backend CA, backend client certificate, `backend-password`), reads them
//!   back, gets NOAUTH without the password; the plain `listen` port serves at the same time;
//! - client certificates: with `tls-ca-cert-file`, `tls-auth-clients` defaults to `yes` (no
//!   certificate or one from another CA is refused); `optional` verifies a certificate only
//!   when one is presented; `no` does not ask;
//! - versions: TLS 1.2 and 1.3 by default (the rustls client reports what was negotiated);
//!   `tls-protocols` refuses versions it does not list;
//! - reload: new certificate files are picked up on SIGHUP and on `POST /reload` by new
//!   connections, established connections keep working, and a broken certificate on reload
//!   is refused with the running one kept;
//! - backend verification: a node certificate from another CA, or one that does not name
//!   the address slotgate dials, is refused (nothing served, the log says why), and
//!   `backend-tls-server-name` verifies nodes by a DNS name instead;
//! - failover: a planned `CLUSTER FAILOVER` of one shard over TLS costs no client error, on
//!   the plain and on the TLS port, and loses no acknowledged write.
//!
//! `tls_cluster_fixture_forms_and_serves` checks the TLS fixtures themselves against Redis,
//! without slotgate, so a fixture problem is never mistaken for a slotgate one.
//!
//! Clients: `redis-cli --tls` (OpenSSL, what operators use) and `common::tls::TlsConn`
//! (rustls, which reports the negotiated version and the server's certificate).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::load::{Load, LoadOptions};
use common::tls::{
    BOTH_VERSIONS, CertFiles, ONLY_TLS12, ONLY_TLS13, TestPki, TlsCli, TlsClusterOptions, TlsConn,
    TlsRedisCluster, TlsSlotgate, replace_cert_files, tls_connect, tls_connect_and_ping, toml_path,
};
use common::{RedisCluster, RespConn, encode_command, key_slot, wait_for_test};
use rustls::ProtocolVersion;

/// slotgate's own `requirepass` in the acceptance test (the nodes have another one).
const GATE_PASSWORD: &str = "g4te-s3cret";
const NOAUTH: &str = "-NOAUTH Authentication required.\r\n";
/// A topology discovered over TLS from six nodes on a busy 2-core box.
const READY: Duration = Duration::from_secs(30);

/// `tls-cert-file` / `tls-key-file` for slotgate's TLS listener.
fn listener_toml(cert: &CertFiles) -> String {
    format!(
        "tls-cert-file = {}\ntls-key-file = {}\n",
        toml_path(&cert.cert),
        toml_path(&cert.key)
    )
}

/// TLS towards `cluster`'s nodes: verified against `ca`, presenting the cluster's slotgate
/// client certificate, authenticating with the nodes' password.
fn backend_toml(cluster: &TlsRedisCluster, ca: &Path) -> String {
    format!(
        "backend-tls = true\nbackend-tls-ca-cert-file = {}\nbackend-tls-cert-file = {}\n\
         backend-tls-key-file = {}\nbackend-password = {:?}\n",
        toml_path(ca),
        toml_path(&cluster.slotgate_client.cert),
        toml_path(&cluster.slotgate_client.key),
        cluster.password
    )
}

/// Certificates for the client-facing tests (b, c, d): slotgate's server certificate for
/// 127.0.0.1, a client certificate from the same CA, and one from an unrelated CA.
/// Declare it before the slotgate that reads its files.
struct Front {
    pki: TestPki,
    server: CertFiles,
    client: CertFiles,
    intruder: CertFiles,
    _wrong: TestPki,
}

impl Front {
    fn new() -> Front {
        let pki = TestPki::temporary("slotgate test CA");
        let wrong = pki.unrelated("wrong-ca", "unrelated CA");
        Front {
            server: pki.server_cert("slotgate", &["127.0.0.1"]),
            client: pki.client_cert("app"),
            intruder: wrong.client_cert("intruder"),
            pki,
            _wrong: wrong,
        }
    }

    /// [`tls_connect_and_ping`] to `addr` as 127.0.0.1, trusting this CA.
    fn connect(
        &self,
        addr: SocketAddr,
        cert: Option<&CertFiles>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<TlsConn, String> {
        tls_connect_and_ping(addr, &self.pki.ca, cert, "127.0.0.1", versions)
    }
}

/// Asserts that the TLS session was refused by the server, not that nothing listened.
fn assert_refused(result: Result<TlsConn, String>, what: &str) {
    match result {
        Ok(conn) => panic!(
            "{what}: the server accepted the client ({:?}); it must refuse it",
            conn.version
        ),
        Err(e) => assert!(
            !e.starts_with("connect "),
            "{what}: the TCP connection itself failed, so nothing was tested: {e}"
        ),
    }
}

fn accepted(result: Result<TlsConn, String>, what: &str) -> TlsConn {
    result.unwrap_or_else(|e| panic!("{what}: refused: {e}"))
}

/// The value of `key` read straight from the TLS node owning it (`""` when missing).
fn on_tls_cluster(cluster: &TlsRedisCluster, key: &str) -> String {
    cluster.node_for_key(key).cli(&["GET", key])
}

/// Asserts that slotgate does not serve: `/readyz` is not 200, and a SET through the plain
/// port gets no `+OK` (an error reply, or nothing within 5 s) and never reaches the node.
fn assert_not_served(sg: &TlsSlotgate, cluster: &TlsRedisCluster, key: &str) {
    let ready = sg.readyz();
    assert!(
        ready.as_ref().map_or(true, |r| r.status != 200),
        "slotgate says it is ready: {ready:?}"
    );
    let mut conn = RespConn::connect(sg.addr);
    conn.set_read_timeout(Duration::from_secs(5));
    conn.send_raw(&encode_command(&[b"SET", key.as_bytes(), b"x"]));
    if let Ok(reply) = conn.try_read_reply() {
        assert!(
            reply.starts_with(b"-"),
            "SET through a slotgate that cannot verify its backends answered {:?}",
            String::from_utf8_lossy(&reply)
        );
    }
    assert_eq!(
        cluster.node_for_key(key).cli(&["EXISTS", key]),
        "0",
        "{key} reached the cluster"
    );
}

/// Waits until slotgate logs, at WARN or ERROR level, a line about a certificate.
fn wait_for_certificate_complaint(sg: &TlsSlotgate) {
    wait_for_test(
        "slotgate to log a certificate problem at WARN/ERROR",
        Duration::from_secs(15),
        || {
            sg.log().lines().any(|line| {
                let lower = line.to_ascii_lowercase();
                (line.contains("WARN") || line.contains("ERROR")) && lower.contains("certificate")
            })
        },
    );
}

// ---------------------------------------------------------------------------------------
// The fixture itself
// ---------------------------------------------------------------------------------------

#[test]
fn tls_cluster_fixture_forms_and_serves() {
    let cluster = TlsRedisCluster::start(TlsClusterOptions::default());
    assert_eq!(cluster.nodes.len(), 6);
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3, "3 primaries");
    for primary in &primaries {
        assert_eq!(cluster.replicas_of(primary).len(), 1, "one replica each");
    }

    // redis-cli -c over TLS follows MOVED from any node, replicas included.
    assert_eq!(
        cluster.nodes[0].cli(&["-c", "SET", "fixture:k", "v1"]),
        "OK"
    );
    let owner = cluster.node_for_key("fixture:k");
    assert_eq!(owner.cli(&["GET", "fixture:k"]), "v1");
    for node in &cluster.nodes {
        assert_eq!(
            node.cli(&["-c", "GET", "fixture:k"]),
            "v1",
            "via {}",
            node.port
        );
    }

    // TLS-only, client certificate and password required.
    let no_cert = TlsCli::new(owner.port, cluster.ca())
        .with_password(&cluster.password)
        .run(&["PING"]);
    assert!(
        !no_cert.success(),
        "a node accepted a client without a certificate: {no_cert:?}"
    );
    let no_password = TlsCli::new(owner.port, cluster.ca())
        .with_cert(&cluster.test_client)
        .run(&["PING"]);
    assert_eq!(no_password.text(), "NOAUTH Authentication required.");

    // What a TLS-only node reports: only `tls-port` in CLUSTER SHARDS, the TLS port in
    // CLUSTER SLOTS (slotgate's discovery depends on both).
    let shards = owner.cli(&["CLUSTER", "SHARDS"]);
    let fields: Vec<&str> = shards.lines().map(str::trim).collect();
    assert!(fields.contains(&"tls-port"), "{shards}");
    assert!(!fields.contains(&"port"), "{shards}");
    let slots = owner.cli(&["CLUSTER", "SLOTS"]);
    assert!(
        slots.lines().any(|l| l.trim() == owner.port.to_string()),
        "{slots}"
    );

    // `--pipe` with `-a` over TLS, as the acceptance test writes: one slot, one node.
    let tag = "{fx}";
    let mut input = Vec::new();
    for i in 0..10 {
        let key = format!("{tag}:{i}");
        input.extend(encode_command(&[b"SET", key.as_bytes(), b"p"]));
    }
    let tag_owner = cluster.node_for_slot(key_slot(tag.as_bytes()));
    let piped = tag_owner.tls_cli().run_stdin(&["--pipe"], &input);
    assert!(
        piped.success() && piped.stdout.contains("errors: 0, replies: 10"),
        "{piped:?}"
    );
    assert_eq!(tag_owner.cli(&["GET", "{fx}:9"]), "p");

    // The rustls helper against Redis' OpenSSL: both versions, the node's certificate.
    for (versions, want) in [
        (ONLY_TLS12, ProtocolVersion::TLSv1_2),
        (ONLY_TLS13, ProtocolVersion::TLSv1_3),
        (BOTH_VERSIONS, ProtocolVersion::TLSv1_3),
    ] {
        let mut conn = accepted(
            tls_connect_and_ping(
                owner.addr,
                cluster.ca(),
                Some(&cluster.test_client),
                cluster.server_name(),
                versions,
            ),
            "rustls client to a node",
        );
        assert_eq!(conn.version, want);
        assert_eq!(
            conn.peer_leaf, cluster.node_cert.der,
            "the node's certificate"
        );
        assert_eq!(conn.cmd(&["GET", "fixture:k"]), NOAUTH);
        assert_eq!(conn.cmd(&["AUTH", &cluster.password]), "+OK\r\n");
        assert_eq!(conn.cmd(&["GET", "fixture:k"]), "$2\r\nv1\r\n");
    }
    // slotgate's backend client certificate is one the nodes accept.
    accepted(
        tls_connect_and_ping(
            owner.addr,
            cluster.ca(),
            Some(&cluster.slotgate_client),
            cluster.server_name(),
            BOTH_VERSIONS,
        ),
        "the slotgate backend certificate",
    );
    // The helper's refusals: a server from another CA, a client from another CA, a name the
    // certificate does not carry.
    let wrong = cluster.pki.unrelated("wrong-ca", "unrelated CA");
    let err = tls_connect(
        owner.addr,
        &wrong.ca,
        Some(&cluster.test_client),
        "127.0.0.1",
        BOTH_VERSIONS,
    )
    .err()
    .expect("a node certificate from another CA must fail verification");
    assert!(err.contains("certificate"), "{err}");
    let intruder = wrong.client_cert("intruder");
    for versions in [ONLY_TLS12, ONLY_TLS13] {
        assert_refused(
            tls_connect_and_ping(
                owner.addr,
                cluster.ca(),
                Some(&intruder),
                "127.0.0.1",
                versions,
            ),
            "a client certificate from another CA, at a node",
        );
    }
    let err = tls_connect(
        owner.addr,
        cluster.ca(),
        Some(&cluster.test_client),
        "other.test",
        BOTH_VERSIONS,
    )
    .err()
    .expect("a name the node certificate lacks must fail verification");
    assert!(err.contains("certificate"), "{err}");

    // The failover helper: the replica takes the shard over TLS, the data follows.
    let shard_primary = cluster.node_for_key("fixture:k");
    let replica = cluster.replicas_of(shard_primary)[0];
    let replica_port = replica.port;
    cluster.failover(replica);
    assert_eq!(cluster.node_for_key("fixture:k").port, replica_port);
    assert_eq!(on_tls_cluster(&cluster, "fixture:k"), "v1");
}

// ---------------------------------------------------------------------------------------
// a. Acceptance
// ---------------------------------------------------------------------------------------

#[test]
fn acceptance_redis_cli_over_tls_through_slotgate_to_a_tls_only_auth_cluster() {
    let cluster = TlsRedisCluster::start(TlsClusterOptions::default());
    let front = cluster.pki.server_cert("slotgate", &["127.0.0.1"]);
    let toml = format!(
        "requirepass = {GATE_PASSWORD:?}\n{}{}",
        listener_toml(&front),
        backend_toml(&cluster, cluster.ca())
    );
    let sg = TlsSlotgate::start(&cluster.seeds(), &toml);
    sg.wait_ready(READY);
    let anonymous = TlsCli::new(sg.tls_addr().port(), cluster.ca());
    let cli = anonymous.clone().with_password(GATE_PASSWORD);

    // Without the password: the TLS session works, the command is refused.
    let refused = anonymous.run(&["SET", "acc:noauth", "x"]);
    assert!(
        refused.success(),
        "redis-cli --tls to slotgate failed: {refused:?}"
    );
    assert_eq!(refused.text(), "NOAUTH Authentication required.");
    let wrong = TlsCli::new(sg.tls_addr().port(), cluster.ca())
        .with_password("not-it")
        .run(&["GET", "acc:noauth"]);
    assert!(
        wrong.stdout.contains("WRONGPASS") || wrong.stderr.contains("WRONGPASS"),
        "{wrong:?}"
    );
    assert_eq!(on_tls_cluster(&cluster, "acc:noauth"), "");

    // 300 SETs in one pipelined TLS stream.
    let keys: Vec<String> = (0..300).map(|i| format!("acc:{i}")).collect();
    let value = |i: usize| format!("value-{i}");
    let mut input = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        input.extend(encode_command(&[
            b"SET",
            key.as_bytes(),
            value(i).as_bytes(),
        ]));
    }
    let piped = cli.run_stdin(&["--pipe"], &input);
    assert!(
        piped.success() && piped.stdout.contains("errors: 0, replies: 300"),
        "redis-cli --tls --pipe through slotgate: {piped:?}"
    );

    // They landed on all three primaries, each key on its owner (read over TLS directly).
    let owners = cluster.slot_owners();
    let mut by_owner: HashMap<u16, Vec<usize>> = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        let owner = owners[usize::from(key_slot(key.as_bytes()))];
        by_owner.entry(owner).or_default().push(i);
    }
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3);
    let mut total = 0;
    for primary in &primaries {
        let dbsize: usize = primary.cli(&["DBSIZE"]).parse().expect("DBSIZE");
        let mine = by_owner.get(&primary.port).cloned().unwrap_or_default();
        assert!(dbsize > 0, "primary {} got no key", primary.port);
        assert_eq!(dbsize, mine.len(), "keys on primary {}", primary.port);
        let gets: String = mine.iter().map(|&i| format!("GET {}\n", keys[i])).collect();
        let got = primary.cli_stdin(&[], gets.as_bytes());
        let want: Vec<String> = mine.iter().map(|&i| value(i)).collect();
        assert_eq!(
            got.lines().collect::<Vec<_>>(),
            want,
            "values on {}",
            primary.port
        );
        total += dbsize;
    }
    assert_eq!(total, 300);

    // Read back through slotgate over TLS.
    let gets: String = keys.iter().map(|k| format!("GET {k}\n")).collect();
    let read = cli.run_stdin(&[], gets.as_bytes());
    assert!(read.success(), "{read:?}");
    let want: Vec<String> = (0..300).map(value).collect();
    assert_eq!(read.stdout.lines().collect::<Vec<_>>(), want);

    // The plain port of the same slotgate serves at the same time, with the same password.
    let mut tls = accepted(
        tls_connect_and_ping(
            sg.tls_addr(),
            cluster.ca(),
            None,
            "127.0.0.1",
            BOTH_VERSIONS,
        ),
        "rustls client to slotgate",
    );
    assert_eq!(
        tls.peer_leaf, front.der,
        "slotgate presents its tls-cert-file"
    );
    let mut plain = RespConn::connect(sg.addr);
    assert_eq!(
        common::extra::text(&plain.cmd_str(&["GET", "acc:0"])),
        NOAUTH
    );
    assert_eq!(tls.cmd(&["GET", "acc:0"]), NOAUTH);
    assert_eq!(
        common::extra::text(&plain.cmd_str(&["AUTH", GATE_PASSWORD])),
        "+OK\r\n"
    );
    assert_eq!(tls.cmd(&["AUTH", GATE_PASSWORD]), "+OK\r\n");
    for i in 0..20 {
        let (via_plain, via_tls) = (format!("acc:plain:{i}"), format!("acc:tls:{i}"));
        assert_eq!(
            common::extra::text(&plain.cmd_str(&["SET", &via_plain, "p"])),
            "+OK\r\n"
        );
        assert_eq!(tls.cmd(&["SET", &via_tls, "t"]), "+OK\r\n");
        assert_eq!(tls.cmd(&["GET", &via_plain]), "$1\r\np\r\n");
        assert_eq!(
            common::extra::text(&plain.cmd_str(&["GET", &via_tls])),
            "$1\r\nt\r\n"
        );
    }
    assert_eq!(on_tls_cluster(&cluster, "acc:plain:7"), "p");
    assert_eq!(on_tls_cluster(&cluster, "acc:tls:7"), "t");
    assert!(
        !sg.log().contains(&cluster.password) && !sg.log().contains(GATE_PASSWORD),
        "a password reached the log"
    );
}

// ---------------------------------------------------------------------------------------
// b. Client certificates
// ---------------------------------------------------------------------------------------

#[test]
fn client_certificates_are_required_by_default_when_a_ca_is_set() {
    let cluster = RedisCluster::start(3, 0);
    let front = Front::new();
    let toml = format!(
        "{}tls-ca-cert-file = {}\n",
        listener_toml(&front.server),
        toml_path(&front.pki.ca)
    );
    let sg = TlsSlotgate::start(&cluster.seeds(), &toml);
    let addr = sg.tls_addr();
    // TLS 1.2 refuses inside the handshake, TLS 1.3 after it: check both.
    for versions in [ONLY_TLS12, ONLY_TLS13] {
        assert_refused(
            front.connect(addr, None, versions),
            &format!("no client certificate, {versions:?}"),
        );
        assert_refused(
            front.connect(addr, Some(&front.intruder), versions),
            &format!("a client certificate from another CA, {versions:?}"),
        );
        let mut conn = accepted(
            front.connect(addr, Some(&front.client), versions),
            "a client certificate from the CA",
        );
        assert_eq!(conn.cmd(&["SET", "cert:k", "v"]), "+OK\r\n");
        assert_eq!(conn.cmd(&["GET", "cert:k"]), "$1\r\nv\r\n");
    }
    assert_eq!(
        cluster
            .node_for_slot(key_slot(b"cert:k"))
            .cmd(&["GET", "cert:k"]),
        "v"
    );

    // OpenSSL's client: refused without a certificate, served with one.
    let cli = TlsCli::new(addr.port(), &front.pki.ca);
    let without = cli.run(&["PING"]);
    assert_ne!(without.text(), "PONG", "{without:?}");
    let with = cli.clone().with_cert(&front.client).run(&["PING"]);
    assert_eq!(with.text(), "PONG", "{with:?}");

    // The plain listener is not affected by the TLS settings.
    let mut plain = RespConn::connect(sg.addr);
    assert_eq!(common::extra::text(&plain.cmd_str(&["PING"])), "+PONG\r\n");
}

#[test]
fn optional_client_certificates_are_verified_only_when_presented() {
    let cluster = RedisCluster::start(3, 0);
    let front = Front::new();
    let with_mode = |mode: &str| {
        format!(
            "{}tls-ca-cert-file = {}\ntls-auth-clients = {mode:?}\n",
            listener_toml(&front.server),
            toml_path(&front.pki.ca)
        )
    };

    let sg = TlsSlotgate::start(&cluster.seeds(), &with_mode("optional"));
    let addr = sg.tls_addr();
    for versions in [ONLY_TLS12, ONLY_TLS13] {
        let mut anonymous = accepted(
            front.connect(addr, None, versions),
            "optional: no certificate",
        );
        assert_eq!(anonymous.cmd(&["SET", "opt:k", "1"]), "+OK\r\n");
        accepted(
            front.connect(addr, Some(&front.client), versions),
            "optional: a certificate from the CA",
        );
        assert_refused(
            front.connect(addr, Some(&front.intruder), versions),
            &format!("optional: a certificate from another CA, {versions:?}"),
        );
    }
    drop(sg);

    // "no": the CA is configured but no certificate is asked for, so none is judged.
    let sg = TlsSlotgate::start(&cluster.seeds(), &with_mode("no"));
    let addr = sg.tls_addr();
    for versions in [ONLY_TLS12, ONLY_TLS13] {
        accepted(front.connect(addr, None, versions), "no: no certificate");
        accepted(
            front.connect(addr, Some(&front.intruder), versions),
            "no: a certificate from another CA (not requested)",
        );
    }
}

// ---------------------------------------------------------------------------------------
// c. Protocol versions
// ---------------------------------------------------------------------------------------

#[test]
fn tls12_and_tls13_are_both_accepted_by_default() {
    let cluster = RedisCluster::start(3, 0);
    let front = Front::new();
    let sg = TlsSlotgate::start(&cluster.seeds(), &listener_toml(&front.server));
    let addr = sg.tls_addr();
    for (versions, want) in [
        (ONLY_TLS12, ProtocolVersion::TLSv1_2),
        (ONLY_TLS13, ProtocolVersion::TLSv1_3),
        (BOTH_VERSIONS, ProtocolVersion::TLSv1_3),
    ] {
        let mut conn = accepted(front.connect(addr, None, versions), "default versions");
        assert_eq!(conn.version, want, "client offering {versions:?}");
        assert_eq!(conn.peer_leaf, front.server.der);
        assert_eq!(conn.cmd(&["SET", "ver:k", "1"]), "+OK\r\n");
    }
    // Without tls-ca-cert-file nobody is asked for a certificate: one is simply not sent.
    accepted(
        front.connect(addr, Some(&front.intruder), BOTH_VERSIONS),
        "no CA configured, client sends nothing",
    );
}

#[test]
fn tls_protocols_refuses_the_versions_it_does_not_list() {
    let cluster = RedisCluster::start(3, 0);
    let front = Front::new();
    let only = |protocols: &str| {
        format!(
            "{}tls-protocols = {protocols:?}\n",
            listener_toml(&front.server)
        )
    };

    let sg = TlsSlotgate::start(&cluster.seeds(), &only("TLSv1.3"));
    let addr = sg.tls_addr();
    assert_refused(
        front.connect(addr, None, ONLY_TLS12),
        "TLSv1.3 only: a 1.2 client",
    );
    let conn = accepted(front.connect(addr, None, BOTH_VERSIONS), "TLSv1.3 only");
    assert_eq!(conn.version, ProtocolVersion::TLSv1_3);
    let cli = TlsCli::new(addr.port(), &front.pki.ca).run(&["PING"]);
    assert_eq!(cli.text(), "PONG", "redis-cli over TLS 1.3: {cli:?}");
    drop(sg);

    let sg = TlsSlotgate::start(&cluster.seeds(), &only("TLSv1.2"));
    let addr = sg.tls_addr();
    assert_refused(
        front.connect(addr, None, ONLY_TLS13),
        "TLSv1.2 only: a 1.3 client",
    );
    let conn = accepted(front.connect(addr, None, BOTH_VERSIONS), "TLSv1.2 only");
    assert_eq!(conn.version, ProtocolVersion::TLSv1_2);
}

// ---------------------------------------------------------------------------------------
// d. Certificate reload
// ---------------------------------------------------------------------------------------

/// The leaf certificate a new TLS connection to `addr` gets, if the handshake succeeds.
fn leaf_of_new_connection(front: &Front, addr: SocketAddr) -> Option<Vec<u8>> {
    tls_connect(addr, &front.pki.ca, None, "127.0.0.1", BOTH_VERSIONS)
        .ok()
        .map(|conn| conn.peer_leaf)
}

#[test]
fn reload_serves_new_certificates_to_new_connections_and_keeps_old_ones() {
    let cluster = RedisCluster::start(3, 0);
    let front = Front::new();
    let sg = TlsSlotgate::start(&cluster.seeds(), &listener_toml(&front.server));
    let addr = sg.tls_addr();
    let mut before = accepted(
        front.connect(addr, None, BOTH_VERSIONS),
        "first certificate",
    );
    assert_eq!(before.peer_leaf, front.server.der);
    assert_eq!(before.cmd(&["SET", "reload:k", "1"]), "+OK\r\n");

    // Rotation 1, as cert-manager does it: new files in place, then SIGHUP.
    let renewed = replace_cert_files(
        &front.server,
        &front.pki.server_cert("slotgate-renewed", &["127.0.0.1"]),
    );
    assert_ne!(renewed.der, front.server.der);
    sg.sighup();
    wait_for_test(
        "a new connection to get the renewed certificate after SIGHUP",
        Duration::from_secs(10),
        || leaf_of_new_connection(&front, addr).as_deref() == Some(&renewed.der[..]),
    );
    assert_eq!(
        before.cmd(&["PING"]),
        "+PONG\r\n",
        "a connection from before the reload"
    );
    assert_eq!(before.cmd(&["GET", "reload:k"]), "$1\r\n1\r\n");
    let mut middle = accepted(
        front.connect(addr, None, BOTH_VERSIONS),
        "renewed certificate",
    );

    // Rotation 2 through the admin endpoint.
    let third = replace_cert_files(
        &front.server,
        &front.pki.server_cert("slotgate-third", &["127.0.0.1"]),
    );
    let reply = sg.post_reload();
    assert_eq!(reply.status, 200, "POST /reload: {reply:?}");
    wait_for_test(
        "a new connection to get the third certificate after POST /reload",
        Duration::from_secs(10),
        || leaf_of_new_connection(&front, addr).as_deref() == Some(&third.der[..]),
    );
    assert_eq!(before.cmd(&["INCR", "reload:k"]), ":2\r\n");
    assert_eq!(middle.cmd(&["INCR", "reload:k"]), ":3\r\n");
}

#[test]
fn a_broken_certificate_on_reload_is_refused_and_the_running_one_kept() {
    let cluster = RedisCluster::start(3, 0);
    let front = Front::new();
    let mut sg = TlsSlotgate::start(&cluster.seeds(), &listener_toml(&front.server));
    let addr = sg.tls_addr();
    let mut before = accepted(
        front.connect(addr, None, BOTH_VERSIONS),
        "first certificate",
    );

    std::fs::write(&front.server.cert, "-----BEGIN CERTIFICATE-----\nbroken\n")
        .expect("break the certificate file");
    let reply = sg.post_reload();
    assert_eq!(
        reply.status, 400,
        "POST /reload with a broken certificate: {reply:?}"
    );
    assert!(reply.body.contains("tls-cert-file"), "{reply:?}");
    assert!(
        sg.try_wait().is_none(),
        "slotgate exited on a broken certificate"
    );
    assert_eq!(
        leaf_of_new_connection(&front, addr).as_deref(),
        Some(&front.server.der[..]),
        "new connections must still get the running certificate"
    );
    assert_eq!(before.cmd(&["PING"]), "+PONG\r\n");

    // Fixed files are picked up by the next reload.
    let fixed = replace_cert_files(
        &front.server,
        &front.pki.server_cert("slotgate-fixed", &["127.0.0.1"]),
    );
    let reply = sg.post_reload();
    assert_eq!(reply.status, 200, "POST /reload with good files: {reply:?}");
    wait_for_test(
        "the fixed certificate to be served",
        Duration::from_secs(10),
        || leaf_of_new_connection(&front, addr).as_deref() == Some(&fixed.der[..]),
    );
}

// ---------------------------------------------------------------------------------------
// e. Backend verification
// ---------------------------------------------------------------------------------------

#[test]
fn backend_certificates_from_another_ca_are_refused() {
    let cluster = TlsRedisCluster::start(TlsClusterOptions {
        replicas_per_primary: 0,
        ..TlsClusterOptions::default()
    });
    let wrong = cluster.pki.unrelated("wrong-ca", "unrelated CA");
    let sg =
        TlsSlotgate::start_without_tls_port(&cluster.seeds(), &backend_toml(&cluster, &wrong.ca));
    assert_not_served(&sg, &cluster, "wrongca:k");
    wait_for_certificate_complaint(&sg);
    assert_not_served(&sg, &cluster, "wrongca:k2");
}

#[test]
fn backends_are_verified_by_ip_unless_backend_tls_server_name_is_set() {
    // The nodes' certificate names only redis.test; they announce 127.0.0.1.
    let cluster = TlsRedisCluster::start(TlsClusterOptions {
        replicas_per_primary: 0,
        server_sans: vec!["redis.test".into()],
        ..TlsClusterOptions::default()
    });
    let by_ip = TlsSlotgate::start_without_tls_port(
        &cluster.seeds(),
        &backend_toml(&cluster, cluster.ca()),
    );
    assert_not_served(&by_ip, &cluster, "byip:k");
    wait_for_certificate_complaint(&by_ip);
    drop(by_ip);

    let toml = format!(
        "{}backend-tls-server-name = \"redis.test\"\n",
        backend_toml(&cluster, cluster.ca())
    );
    let by_name = TlsSlotgate::start_without_tls_port(&cluster.seeds(), &toml);
    by_name.wait_ready(READY);
    let mut conn = RespConn::connect(by_name.addr);
    let mut owners = Vec::new();
    for i in 0..30 {
        let key = format!("byname:{i}");
        assert_eq!(
            common::extra::text(&conn.cmd_str(&["SET", &key, "v"])),
            "+OK\r\n",
            "{key}"
        );
        assert_eq!(on_tls_cluster(&cluster, &key), "v", "{key} on its node");
        owners.push(cluster.node_for_key(&key).port);
    }
    owners.sort_unstable();
    owners.dedup();
    assert_eq!(owners.len(), 3, "30 keys reach every primary");
}

/// Nodes that announce hostnames (`cluster-announce-hostname`, preferred endpoint type
/// `hostname`) are dialled by name, resolved through slotgate's DNS server, and each is
/// verified against its own name: the certificate names `*.test.local` only, so neither
/// an IP nor a fixed server name would pass.
#[test]
fn nodes_announcing_hostnames_are_verified_against_their_names() {
    let cluster = TlsRedisCluster::start(TlsClusterOptions {
        replicas_per_primary: 0,
        server_sans: vec!["*.test.local".into()],
        ..TlsClusterOptions::default()
    });
    let dns = common::dns::DnsServer::start();
    let names: Vec<String> = (0..cluster.nodes.len())
        .map(|i| format!("node{i}.test.local"))
        .collect();
    for (node, name) in cluster.nodes.iter().zip(&names) {
        dns.set(name, &[std::net::Ipv4Addr::LOCALHOST]);
        node.cli(&["CONFIG", "SET", "cluster-announce-hostname", name]);
        node.cli(&[
            "CONFIG",
            "SET",
            "cluster-preferred-endpoint-type",
            "hostname",
        ]);
    }
    // Gossip spreads the names: wait until every node reports every other by name.
    wait_for_test("every node to announce its hostname", READY, || {
        cluster.nodes.iter().all(|node| {
            let shards = node.cli(&["CLUSTER", "SHARDS"]);
            names.iter().all(|name| shards.contains(name.as_str()))
        })
    });
    let toml = format!(
        "{}dns-server = {:?}\n",
        backend_toml(&cluster, cluster.ca()),
        dns.server_arg()
    );
    // Seeds by name too, as a headless Service's name would be: an IP seed would be
    // verified against its IP, which this certificate does not name.
    let seeds: Vec<String> = cluster
        .nodes
        .iter()
        .zip(&names)
        .map(|(node, name)| format!("{name}:{}", node.port))
        .collect();
    let sg = TlsSlotgate::start_without_tls_port(&seeds.join(","), &toml);
    sg.wait_ready(READY);
    let mut conn = RespConn::connect(sg.addr);
    let mut owners = Vec::new();
    for i in 0..30 {
        let key = format!("byhost:{i}");
        let reply = conn.cmd_str(&["SET", &key, "v"]);
        assert_eq!(
            common::extra::text(&reply),
            "+OK\r\n",
            "{key}\n{}",
            sg.log()
        );
        assert_eq!(on_tls_cluster(&cluster, &key), "v", "{key} on its node");
        owners.push(cluster.node_for_key(&key).port);
    }
    owners.sort_unstable();
    owners.dedup();
    assert_eq!(owners.len(), 3, "30 keys reach every primary");
    for name in &names {
        assert!(
            dns.queries_for(name) > 0,
            "slotgate must have dialled {name} by name\n{}",
            dns.log()
        );
    }
}

// ---------------------------------------------------------------------------------------
// f. Failover over TLS
// ---------------------------------------------------------------------------------------

/// One client on slotgate's TLS port, INCR-ing one key until stopped: acks, errors, and
/// the I/O failures after which the INCR may have run.
struct TlsIncr {
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
    thread: JoinHandle<(u64, Vec<String>)>,
}

impl TlsIncr {
    fn start(addr: SocketAddr, ca: &Path, key: &str) -> TlsIncr {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicU64::new(0));
        let (stop2, acks2, ca, key) = (
            stop.clone(),
            acks.clone(),
            ca.to_path_buf(),
            key.to_string(),
        );
        let thread = std::thread::spawn(move || {
            let connect = || {
                tls_connect(addr, &ca, None, "127.0.0.1", BOTH_VERSIONS).inspect(|conn| {
                    // Longer than slotgate holds a command through a failover.
                    conn.set_read_timeout(Duration::from_secs(15));
                })
            };
            let mut conn = connect().unwrap_or_else(|e| panic!("TLS client: {e}"));
            let (mut maybe, mut errors) = (0u64, Vec::new());
            while !stop2.load(Ordering::Relaxed) {
                match conn.try_cmd(&["INCR", &key]) {
                    Ok(reply) if reply.starts_with(':') => {
                        acks2.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(reply) => errors.push(format!("INCR {key}: {reply:?}")),
                    Err(e) => {
                        maybe += 1;
                        errors.push(format!("INCR {key}: {e}"));
                        match connect() {
                            Ok(fresh) => conn = fresh,
                            Err(e) => {
                                errors.push(format!("reconnect: {e}"));
                                break;
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (maybe, errors)
        });
        TlsIncr { stop, acks, thread }
    }

    fn acks(&self) -> u64 {
        self.acks.load(Ordering::Relaxed)
    }

    /// Stops the client: (acks, maybe-executed, errors).
    fn stop(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let (maybe, errors) = self.thread.join().expect("the TLS client panicked");
        (self.acks.load(Ordering::Relaxed), maybe, errors)
    }
}

#[test]
fn planned_failover_over_tls_has_no_client_errors_and_loses_no_write() {
    let cluster = TlsRedisCluster::start(TlsClusterOptions::default());
    let front = cluster.pki.server_cert("slotgate", &["127.0.0.1"]);
    let toml = format!(
        "{}{}",
        listener_toml(&front),
        backend_toml(&cluster, cluster.ca())
    );
    let sg = TlsSlotgate::start(&cluster.seeds(), &toml);
    sg.wait_ready(READY);

    let shard = cluster.primaries()[1];
    let (shard_port, replica) = (shard.port, cluster.replicas_of(shard)[0]);
    let owners = cluster.slot_owners();
    let owner_of = |key: &String| owners[usize::from(key_slot(key.as_bytes()))];
    // Two keys on the shard that fails over, one on each of the others, for the plain
    // clients; one more on the failing shard for the TLS client.
    let candidates: Vec<String> = (0..1000).map(|i| format!("fo:{i}")).collect();
    let mut keys: Vec<String> = candidates
        .iter()
        .filter(|k| owner_of(k) == shard_port)
        .take(3)
        .cloned()
        .collect();
    let tls_key = keys.pop().expect("keys on the failing shard");
    for primary in cluster.primaries() {
        if primary.port != shard_port {
            let key = candidates.iter().find(|k| owner_of(k) == primary.port);
            keys.push(key.expect("a key on every shard").clone());
        }
    }

    let load = Load::start(
        sg.addr,
        &keys,
        LoadOptions {
            pace: Duration::from_millis(5),
            check_reads: true,
            ..LoadOptions::default()
        },
    );
    let tls_client = TlsIncr::start(sg.tls_addr(), cluster.ca(), &tls_key);
    assert!(
        load.wait_all_acked_since(Instant::now(), Duration::from_secs(10))
            .is_some(),
        "the load did not get going"
    );
    wait_for_test(
        "the TLS client to get going",
        Duration::from_secs(10),
        || tls_client.acks() > 0,
    );

    cluster.failover(replica);
    let after = Instant::now();
    let tls_acks_at_failover = tls_client.acks();
    let caught_up = load.wait_all_acked_since(after, Duration::from_secs(15));
    wait_for_test(
        "the TLS client to keep writing after the failover",
        Duration::from_secs(15),
        // About a second of traffic on the new primary, where a late topology problem shows.
        || tls_client.acks() > tls_acks_at_failover + 100,
    );
    let report = load.stop();
    let (tls_acks, tls_maybe, tls_errors) = tls_client.stop();

    assert!(
        caught_up.is_some(),
        "not every key was written after the failover:\n{}",
        report.error_lines(30)
    );
    assert!(
        report.errors().is_empty(),
        "{} client error(s) on the plain port during a planned failover over TLS (want 0):\n{}",
        report.errors().len(),
        report.error_lines(30)
    );
    assert!(
        tls_errors.is_empty(),
        "client errors on the TLS port during a planned failover (want 0):\n{}",
        tls_errors.join("\n")
    );
    assert!(
        report.stale_reads().is_empty(),
        "stale reads: {:?}",
        report.stale_reads()
    );
    let read = |key: &str| -> Result<Option<i64>, String> {
        let text = cluster.node_for_key(key).try_cli(&["GET", key])?;
        if text.is_empty() {
            Ok(None)
        } else {
            text.parse().map(Some).map_err(|e| format!("{text:?}: {e}"))
        }
    };
    report.audit(read).assert_clean("planned failover over TLS");
    let tls_value = read(&tls_key)
        .expect("read the TLS client's key")
        .unwrap_or(0);
    assert!(
        tls_acks as i64 <= tls_value && tls_value <= (tls_acks + tls_maybe) as i64,
        "TLS client's key: value {tls_value}, acks {tls_acks}, maybe-executed {tls_maybe}"
    );
    // The shard's keys now live on the promoted replica, reached over TLS.
    assert_eq!(cluster.node_for_key(&tls_key).port, replica.port);
}

/// SIGTERM while a TLS client's pipeline is in flight: slotgate answers every command it
/// received, then closes the connection and exits 0 (the drain reads TLS records the
/// kernel holds even when no readiness event has been seen yet).
#[test]
fn draining_answers_every_command_a_tls_client_sent_then_exits() {
    let cluster = TlsRedisCluster::start(TlsClusterOptions::default());
    let front = cluster.pki.server_cert("slotgate", &["127.0.0.1"]);
    let toml = format!(
        "{}{}shutdown-timeout = \"20s\"\n",
        listener_toml(&front),
        backend_toml(&cluster, cluster.ca())
    );
    let mut sg = TlsSlotgate::start(&cluster.seeds(), &toml);
    sg.wait_ready(READY);
    let mut conn = tls_connect(
        sg.tls_addr(),
        cluster.ca(),
        None,
        "127.0.0.1",
        BOTH_VERSIONS,
    )
    .expect("TLS connection to slotgate");
    const COMMANDS: usize = 2000;
    const KEYS: usize = 50;
    let mut pipeline = Vec::new();
    for i in 0..COMMANDS {
        let key = format!("drain:{}", i % KEYS);
        pipeline.extend(encode_command(&[b"INCR", key.as_bytes()]));
    }
    conn.send_raw(&pipeline);
    common::ops::signal_pid(sg.pid(), "TERM");
    for i in 0..COMMANDS {
        let reply = conn
            .read_reply()
            .unwrap_or_else(|e| panic!("reply #{i} after SIGTERM: {e}\n{}", sg.log()));
        assert!(
            reply.starts_with(b":"),
            "reply #{i}: {}",
            String::from_utf8_lossy(&reply)
        );
    }
    assert!(
        conn.closed_within(Duration::from_secs(10)),
        "the drained connection must be closed"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = sg.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "slotgate did not exit\n{}",
            sg.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}\n{}", sg.log());
    // Every INCR ran exactly once: the counters on the nodes add up to the commands sent.
    let total: usize = (0..KEYS)
        .map(|k| {
            let key = format!("drain:{k}");
            let value = cluster.node_for_key(&key).cli(&["GET", &key]);
            value
                .trim()
                .parse::<usize>()
                .unwrap_or_else(|_| panic!("{key} = {value:?}"))
        })
        .sum();
    assert_eq!(total, COMMANDS);
}
