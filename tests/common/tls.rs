//! Fixtures for the TLS tests (`tests/security_tls.rs`).
//!
//! - [`TestPki`]: a throw-away certificate authority made in-process with `rcgen`, which
//!   issues server certificates (DNS and/or IP SANs) and client certificates and writes them
//!   as PEM files (`ca.crt`, `<name>.crt`, `<name>.key`) into a directory. A second,
//!   unrelated CA ([`TestPki::unrelated`]) provides "wrong CA" certificates.
//! - [`TlsCli`]: `redis-cli --tls --cacert ... [--cert --key] [-a ...]` against any port,
//!   returning exit status, stdout and stderr ([`CliOutput`]); every run has a deadline, so a
//!   server that never finishes a handshake fails the test instead of hanging it.
//! - [`TlsRedisCluster`]: like [`super::RedisCluster`], but every node is TLS-only (`port 0`,
//!   `tls-port`, `tls-cluster yes`, `tls-replication yes`, `tls-auth-clients yes`) and
//!   password-protected (`requirepass` + `masterauth`). Created with
//!   `redis-cli --tls ... --cluster create` and queried only through `redis-cli --tls`.
//!   Its nodes implement [`super::cluster::ClusterMember`], so "formed", "slots agree",
//!   primaries, replicas and slot owners are the plain cluster's own functions.
//! - [`TlsSlotgate`]: the slotgate binary with a TOML config file, a plain `--listen` port, a
//!   `--tls-port` and an `--admin-listen` port (for `/readyz` and `POST /reload`).
//! - [`tls_connect`]: a small blocking rustls client that reports the negotiated protocol
//!   version and the server's leaf certificate, or the handshake error as text
//!   ([`TlsConn`] then speaks raw RESP like [`super::RespConn`], reading replies with the
//!   same [`super::read_frame`]).
//!
//! Process handling (spawn, readiness, SIGTERM/SIGKILL, log tails) is the plain fixtures'
//! (`super::node`, `super::proxy`); this module adds only what TLS needs.
//!
//! Data flow: a test makes a PKI (files in a temp dir) -> the cluster and slotgate are
//! started with those paths -> the test talks to them over loopback TLS (redis-cli for
//! OpenSSL's view, [`TlsConn`] for rustls' view and for exact protocol facts) -> on drop
//! every child is killed by its own PID and the temp dirs are removed. On a panic the
//! fixtures print their log tails, as the plain fixtures do.
//!
//! Facts about Redis 7.0 TLS that shape this module (and that slotgate must live with):
//! - with `tls-cluster yes` the cluster bus listens on `tls-port + 10000`, so
//!   [`super::free_port`], which reserves port and port+10000, is right for the TLS port;
//! - a node presents its `tls-cert-file` as its *client* certificate on the cluster bus and
//!   on replication links, and its peers check it with `tls-auth-clients yes`: node
//!   certificates therefore carry both the serverAuth and the clientAuth key usage;
//! - `redis-cli` (hiredis) checks the chain but not the host name, so it can talk to nodes
//!   whose certificate names only `redis.test`; rustls (and slotgate) check both;
//! - on a TLS-only node `CLUSTER SHARDS` reports `tls-port` and no `port` field, and
//!   `CLUSTER SLOTS` / `CLUSTER NODES` report the TLS port;
//! - a replica shows `health loading` in `CLUSTER SHARDS` until its replication offset is
//!   non-zero, i.e. in a fresh cluster until the first write.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, RootCertStore, StreamOwned};

use super::cluster::{
    ClusterMember, NodeLine, is_formed, majority_owner, primaries_among, replicas_among,
    slot_owners_by, slots_agree, wait_promoted,
};
use super::node::{base_server_args, info_field, spawn_redis_server, wait_serving_pid};
use super::ops::{HttpReply, try_http};
use super::proxy::{kill_and_reap, ping_reply, slotgate_bin, spawn_logged, terminate, wait_ready};
use super::{
    free_port, key_slot, log_tail, read_frame, redis_cli_path, send_signal, temp_dir, wait_for,
};

pub use rustls::SupportedProtocolVersion;
pub use rustls::version::{TLS12, TLS13};

/// Both versions slotgate accepts by default, 1.3 preferred (what a modern client offers).
pub const BOTH_VERSIONS: &[&SupportedProtocolVersion] = &[&TLS13, &TLS12];
/// A client that speaks only TLS 1.2.
pub const ONLY_TLS12: &[&SupportedProtocolVersion] = &[&TLS12];
/// A client that speaks only TLS 1.3.
pub const ONLY_TLS13: &[&SupportedProtocolVersion] = &[&TLS13];

/// Connect, handshake and read timeouts of [`TlsConn`].
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Every `redis-cli` run is killed after this long (a handshake that never completes).
const CLI_TIMEOUT: Duration = Duration::from_secs(20);
/// `redis-cli --cluster create` waits for the cluster to join, polling once a second.
const CREATE_TIMEOUT: Duration = Duration::from_secs(90);
/// A fresh TLS redis-server answering `INFO server`.
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Creating and converging the cluster (node timeout 2 s).
const FORM_TIMEOUT: Duration = Duration::from_secs(90);
/// Each poll spawns one redis-cli per node; slower than the plain fixture's 100 ms, to leave
/// the 2-core CI box to the servers.
const POLL: Duration = Duration::from_millis(200);
/// slotgate: the listeners open after the first slot map, or after 5 s without one.
const SLOTGATE_READY_TIMEOUT: Duration = Duration::from_secs(20);
const SPAWN_ATTEMPTS: usize = 5;
/// How long a SIGTERM'ed slotgate gets before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------
// PKI
// ---------------------------------------------------------------------------------------

/// A certificate and its private key as PEM files, plus the certificate's DER (to compare
/// with what a TLS peer presents).
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// The certificate's common name (also the file stem when the PKI wrote it).
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: Vec<u8>,
}

/// A test certificate authority; see the module docs.
pub struct TestPki {
    dir: PathBuf,
    /// `<dir>/ca.crt`: the CA certificate, the trust anchor for clients and servers.
    pub ca: PathBuf,
    pub ca_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    /// Set by [`TestPki::temporary`]: the PKI owns its temp dir.
    _tmp: Option<tempfile::TempDir>,
}

impl TestPki {
    /// A new CA named `ca_name` (its CN); `dir` is created if needed and receives `ca.crt`.
    /// The CA's key stays in memory: nothing but this fixture can issue certificates.
    pub fn new(dir: &Path, ca_name: &str) -> TestPki {
        std::fs::create_dir_all(dir).expect("create the PKI dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, ca_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("generate the CA key");
        let cert = params.self_signed(&key).expect("self-sign the CA");
        let ca = dir.join("ca.crt");
        write_atomically(&ca, cert.pem().as_bytes());
        TestPki {
            dir: dir.to_path_buf(),
            ca,
            ca_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
            _tmp: None,
        }
    }

    /// [`TestPki::new`] in a fresh temp dir that lives as long as the PKI (kept with
    /// `SLOTGATE_KEEP_TEST_DIRS=1`, like every fixture dir).
    pub fn temporary(ca_name: &str) -> TestPki {
        let tmp = temp_dir("slotgate-pki-");
        let mut pki = TestPki::new(tmp.path(), ca_name);
        pki._tmp = Some(tmp);
        pki
    }

    /// A second CA that shares nothing with this one, in `<dir>/<subdir>`: certificates it
    /// issues must be refused by anyone trusting only `self`. Its files live in `self`'s
    /// dir, so keep `self` alive as long as they are needed.
    pub fn unrelated(&self, subdir: &str, ca_name: &str) -> TestPki {
        TestPki::new(&self.dir.join(subdir), ca_name)
    }

    /// The directory holding the PEM files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A server certificate for `sans` (each an IP address like `127.0.0.1` or a DNS name),
    /// CN `name`, written to `<name>.crt` / `<name>.key`. It carries the clientAuth usage
    /// too, because a Redis node presents its server certificate as its client certificate
    /// on the cluster bus and replication links.
    pub fn server_cert(&self, name: &str, sans: &[&str]) -> CertFiles {
        self.issue(
            name,
            sans,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    /// A client certificate (no SANs, clientAuth only), CN `name`, written to
    /// `<name>.crt` / `<name>.key`.
    pub fn client_cert(&self, name: &str) -> CertFiles {
        self.issue(name, &[], vec![ExtendedKeyUsagePurpose::ClientAuth])
    }

    fn issue(&self, name: &str, sans: &[&str], usages: Vec<ExtendedKeyUsagePurpose>) -> CertFiles {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans)
            .unwrap_or_else(|e| panic!("certificate params for {name}: {e}"));
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
        params.use_authority_key_identifier_extension = true;
        // A fresh key per certificate: rcgen derives the serial from it, so a re-issued
        // certificate always differs from the old one in serial, key and DER.
        let key = KeyPair::generate().expect("generate a leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| panic!("sign the certificate for {name}: {e}"));
        let files = CertFiles {
            name: name.to_string(),
            cert: self.dir.join(format!("{name}.crt")),
            key: self.dir.join(format!("{name}.key")),
            der: cert.der().to_vec(),
        };
        write_atomically(&files.key, key.serialize_pem().as_bytes());
        write_atomically(&files.cert, cert.pem().as_bytes());
        files
    }
}

/// Overwrites `target`'s certificate and key files with `with`'s contents (each file by an
/// atomic rename, so a reader sees the old file or the new one, never half of one), as a
/// certificate rotation (cert-manager, a mounted Secret) does. Returns `target`'s paths
/// with `with`'s name and DER, i.e. what the files now hold.
pub fn replace_cert_files(target: &CertFiles, with: &CertFiles) -> CertFiles {
    let key = std::fs::read(&with.key).expect("read the new key");
    let cert = std::fs::read(&with.cert).expect("read the new certificate");
    write_atomically(&target.key, &key);
    write_atomically(&target.cert, &cert);
    CertFiles {
        name: with.name.clone(),
        cert: target.cert.clone(),
        key: target.key.clone(),
        der: with.der.clone(),
    }
}

/// Writes `path` through a temp file in the same dir and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, bytes).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
}

/// `"<path>"` as a TOML basic string, for config files that name PEM files.
pub fn toml_path(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

// ---------------------------------------------------------------------------------------
// redis-cli --tls
// ---------------------------------------------------------------------------------------

/// What one `redis-cli` run printed. redis-cli prints error replies (`NOAUTH ...`,
/// `MOVED ...`) on stdout with exit status 0; a failed connection or handshake exits 1 with
/// the reason on stderr.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The run hit [`CLI_TIMEOUT`] and was killed.
    pub timed_out: bool,
}

impl CliOutput {
    pub fn success(&self) -> bool {
        self.status.success() && !self.timed_out
    }

    /// stdout without surrounding whitespace.
    pub fn text(&self) -> &str {
        self.stdout.trim()
    }
}

/// How to run `redis-cli --tls` against one endpoint.
#[derive(Clone, Debug)]
pub struct TlsCli {
    pub port: u16,
    pub ca: PathBuf,
    /// `--cert` / `--key`, for servers that require a client certificate.
    pub client: Option<(PathBuf, PathBuf)>,
    /// `-a <password> --no-auth-warning`.
    pub password: Option<String>,
}

impl TlsCli {
    /// `redis-cli -h 127.0.0.1 -p <port> --tls --cacert <ca>`: no client certificate, no
    /// password.
    pub fn new(port: u16, ca: &Path) -> TlsCli {
        TlsCli {
            port,
            ca: ca.to_path_buf(),
            client: None,
            password: None,
        }
    }

    /// Presents `files` as the client certificate.
    pub fn with_cert(mut self, files: &CertFiles) -> TlsCli {
        self.client = Some((files.cert.clone(), files.key.clone()));
        self
    }

    /// Authenticates with `-a <password>`.
    pub fn with_password(mut self, password: &str) -> TlsCli {
        self.password = Some(password.to_string());
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(redis_cli_path());
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "--tls"])
            .arg("--cacert")
            .arg(&self.ca);
        if let Some((cert, key)) = &self.client {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if let Some(password) = &self.password {
            cmd.args(["-a", password, "--no-auth-warning"]);
        }
        cmd
    }

    /// Runs `redis-cli ... <args>` with no stdin.
    pub fn run(&self, args: &[&str]) -> CliOutput {
        let mut cmd = self.command();
        cmd.args(args);
        run_with_deadline(cmd, None, CLI_TIMEOUT)
    }

    /// Runs `redis-cli ... <args>` with `input` on stdin (one command per line, or RESP
    /// with `--pipe`).
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> CliOutput {
        let mut cmd = self.command();
        cmd.args(args);
        run_with_deadline(cmd, Some(input), CLI_TIMEOUT)
    }

    /// [`TlsCli::run`] with a longer deadline (`--cluster create`).
    fn run_for(&self, args: &[&str], timeout: Duration) -> CliOutput {
        let mut cmd = self.command();
        cmd.args(args);
        run_with_deadline(cmd, None, timeout)
    }
}

/// Runs `cmd`, feeding `input` from a thread (redis-cli answers while it reads, so a large
/// input would otherwise fill both pipes and deadlock) and killing the child (our own PID)
/// if it outlives `timeout`.
fn run_with_deadline(mut cmd: Command, input: Option<&[u8]>, timeout: Duration) -> CliOutput {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", redis_cli_path().display()));
    let writer = input.map(|bytes| {
        let mut stdin = child.stdin.take().expect("redis-cli stdin");
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        })
    });
    let stdout = drain(child.stdout.take().expect("redis-cli stdout"));
    let stderr = drain(child.stderr.take().expect("redis-cli stderr"));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for redis-cli") {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("reap redis-cli");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let stdout = stdout.join().unwrap_or_default();
    let mut stderr = stderr.join().unwrap_or_default();
    if timed_out {
        stderr.push_str(&format!("\n[fixture] redis-cli killed after {timeout:?}"));
    }
    CliOutput {
        status,
        stdout,
        stderr,
        timed_out,
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

// ---------------------------------------------------------------------------------------
// rustls client
// ---------------------------------------------------------------------------------------

/// A blocking TLS connection speaking raw RESP, with what the handshake settled.
pub struct TlsConn {
    stream: StreamOwned<ClientConnection, TcpStream>,
    /// `TLSv1_2` or `TLSv1_3`.
    pub version: ProtocolVersion,
    /// DER of the certificate the server presented (its leaf).
    pub peer_leaf: Vec<u8>,
    /// Bytes read but not yet returned as a reply.
    buf: Vec<u8>,
}

/// Connects to `addr` over TLS, trusting only the CA in `ca`, verifying the server's
/// certificate for `server_name` (an IP like `127.0.0.1` or a DNS name; also sent as SNI
/// when it is a DNS name), offering only `versions`, and presenting `client_cert` if given.
/// `Err` holds the connect or handshake error as text (e.g. `invalid peer certificate:
/// UnknownIssuer`, `received fatal alert: ProtocolVersion`).
///
/// In TLS 1.3 the client finishes its handshake before the server has judged the client
/// certificate, so a refused certificate shows up only on the first read: use
/// [`tls_connect_and_ping`] to know whether the server really accepted the client.
pub fn tls_connect(
    addr: SocketAddr,
    ca: &Path,
    client_cert: Option<&CertFiles>,
    server_name: &str,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<TlsConn, String> {
    let config = client_config(ca, client_cert, versions)?;
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| format!("server name {server_name:?}: {e}"))?;
    let mut conn = ClientConnection::new(Arc::new(config), name)
        .map_err(|e| format!("TLS client for {addr}: {e}"))?;
    let mut sock = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    sock.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    sock.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        match conn.complete_io(&mut sock) {
            Ok((0, 0)) => {
                return Err(format!(
                    "TLS handshake with {addr}: connection closed by the server"
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(format!("TLS handshake with {addr}: {e}")),
        }
    }
    let version = conn
        .protocol_version()
        .ok_or_else(|| format!("TLS handshake with {addr}: no protocol version"))?;
    let peer_leaf = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.to_vec())
        .ok_or_else(|| format!("TLS handshake with {addr}: no server certificate"))?;
    Ok(TlsConn {
        stream: StreamOwned::new(conn, sock),
        version,
        peer_leaf,
        buf: Vec::new(),
    })
}

/// [`tls_connect`], then one `PING`: `Ok` only if the server answered it with any RESP reply
/// (`+PONG`, or `-NOAUTH` when a password is required), i.e. the server accepted this
/// client's TLS session, client certificate included.
pub fn tls_connect_and_ping(
    addr: SocketAddr,
    ca: &Path,
    client_cert: Option<&CertFiles>,
    server_name: &str,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<TlsConn, String> {
    let mut conn = tls_connect(addr, ca, client_cert, server_name, versions)?;
    let reply = conn.try_cmd(&["PING"])?;
    if reply == "+PONG\r\n" || reply.starts_with("-NOAUTH") {
        Ok(conn)
    } else {
        Err(format!("PING over TLS answered {reply:?}"))
    }
}

fn client_config(
    ca: &Path,
    client_cert: Option<&CertFiles>,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).map_err(|e| format!("read {}: {e}", ca.display()))?
    {
        let cert = cert.map_err(|e| format!("parse {}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("trust {}: {e}", ca.display()))?;
    }
    // An explicit provider: the process-wide default is not set in test binaries.
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .map_err(|e| format!("TLS versions {versions:?}: {e}"))?
            .with_root_certificates(roots);
    match client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some(files) => {
            let chain = CertificateDer::pem_file_iter(&files.cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("read {}: {e}", files.cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(&files.key)
                .map_err(|e| format!("read {}: {e}", files.key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate {}: {e}", files.name))
        }
    }
}

impl TlsConn {
    /// Sends `args` as one RESP command and returns the raw reply as text; an I/O or TLS
    /// failure (timeout, close, alert) is `Err`.
    pub fn try_cmd(&mut self, args: &[&str]) -> Result<String, String> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.stream
            .write_all(&super::encode_command(&args))
            .and_then(|()| self.stream.flush())
            .map_err(|e| format!("write over TLS: {e}"))?;
        self.read_reply()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }

    /// [`TlsConn::try_cmd`], panicking on failure.
    pub fn cmd(&mut self, args: &[&str]) -> String {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("{args:?} over TLS: {e}"))
    }

    /// Changes the read timeout (5 s by default).
    pub fn set_read_timeout(&self, timeout: Duration) {
        self.stream
            .sock
            .set_read_timeout(Some(timeout))
            .expect("set the read timeout");
    }

    /// Writes `bytes` as they are (a pipeline, say) and flushes them.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .expect("write over TLS");
    }

    /// The next reply's raw bytes; an I/O or TLS failure is `Err`.
    pub fn read_reply(&mut self) -> Result<Vec<u8>, String> {
        read_frame(&mut self.stream, &mut self.buf)
    }

    /// True once the server has closed the connection (with or without a TLS
    /// `close_notify`) before `timeout`, with no further byte sent.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        self.set_read_timeout(timeout);
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------
// TLS-only Redis Cluster
// ---------------------------------------------------------------------------------------

/// How to build a [`TlsRedisCluster`].
#[derive(Clone, Debug)]
pub struct TlsClusterOptions {
    /// At least 3: the cluster is made with `redis-cli --cluster create`.
    pub primaries: usize,
    pub replicas_per_primary: usize,
    /// SANs of the certificate every node presents.
    pub server_sans: Vec<String>,
    /// `requirepass` and `masterauth` of every node.
    pub password: String,
}

impl Default for TlsClusterOptions {
    fn default() -> Self {
        TlsClusterOptions {
            primaries: 3,
            replicas_per_primary: 1,
            server_sans: vec!["127.0.0.1".into(), "redis.test".into()],
            password: "n0de-s3cret".into(),
        }
    }
}

/// What every node's command line needs for TLS and AUTH.
#[derive(Clone, Debug)]
struct NodeTls {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    password: String,
    /// How the fixture itself talks to a node (CA, test client cert, password).
    client: CertFiles,
}

/// One TLS-only, password-protected, cluster-enabled `redis-server` child on 127.0.0.1.
/// Killed (SIGKILL, its own PID) and reaped on drop.
pub struct TlsRedisNode {
    pub addr: SocketAddr,
    /// The TLS port (the only one it listens on; the bus is port + 10000).
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    pid: u32,
    cli: TlsCli,
}

impl TlsRedisNode {
    /// Picks a free port and starts a node on it in `<parent>/node-<port>`; on an early exit
    /// (typically a bind race with another process) tries again with another port.
    fn spawn(parent: &Path, tls: &NodeTls) -> TlsRedisNode {
        let mut failures = Vec::new();
        for _ in 0..SPAWN_ATTEMPTS {
            let port = free_port();
            let dir = parent.join(format!("node-{port}"));
            std::fs::create_dir_all(&dir).expect("create the node dir");
            let child = spawn_tls_server(port, &dir, tls);
            let mut node = TlsRedisNode {
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                port,
                pid: child.id(),
                child: Some(child),
                dir,
                cli: TlsCli::new(port, &tls.ca)
                    .with_cert(&tls.client)
                    .with_password(&tls.password),
            };
            match node.wait_ready() {
                Ok(()) => return node,
                Err(why) => {
                    node.stop();
                    // A half-written nodes.conf must not leak into the next attempt.
                    let _ = std::fs::remove_dir_all(&node.dir);
                    failures.push(format!("port {port}: {why}"));
                }
            }
        }
        panic!(
            "TLS redis-server did not start after {SPAWN_ATTEMPTS} attempts:\n{}",
            failures.join("\n---\n")
        );
    }

    /// Waits until the node answers `INFO server` over TLS with our child's PID, so a
    /// foreign server that grabbed the port is never mistaken for ours.
    fn wait_ready(&mut self) -> Result<(), String> {
        let mut child = self.child.take().expect("waiting on a stopped node");
        let result = wait_serving_pid(
            &mut child,
            self.port,
            &self.log_path(),
            NODE_READY_TIMEOUT,
            || self.try_cli(&["INFO", "server"]),
        );
        self.child = Some(child);
        result
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// Kills the server with SIGKILL and reaps it. Idempotent.
    pub fn stop(&mut self) {
        kill_and_reap(&mut self.child);
    }

    /// True while the process runs.
    pub fn is_live(&self) -> bool {
        self.child.is_some() && !matches!(super::process_state(self.pid), None | Some('Z' | 'X'))
    }

    /// How to reach this node with redis-cli: CA, the test client certificate, password.
    pub fn tls_cli(&self) -> &TlsCli {
        &self.cli
    }

    /// `redis-cli --tls ... -a <password> -p <port> <args...>`, stdout trimmed. Error
    /// replies (`MOVED ...`, `ERR ...`) are returned as text; panics only if redis-cli
    /// itself fails (no server, refused handshake).
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|e| panic!("redis-cli --tls -p {} {args:?}: {e}", self.port))
    }

    /// [`TlsRedisNode::cli`], with a redis-cli failure as `Err`.
    pub fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let out = self.cli.run(args);
        if out.success() {
            Ok(out.text().to_string())
        } else {
            Err(format!(
                "port {}: redis-cli exited with {}: {}{}",
                self.port,
                out.status,
                out.stdout.trim(),
                out.stderr.trim()
            ))
        }
    }

    /// Runs redis-cli with `input` on stdin (one command per line) and returns stdout.
    pub fn cli_stdin(&self, args: &[&str], input: &[u8]) -> String {
        let out = self.cli.run_stdin(args, input);
        assert!(
            out.success(),
            "redis-cli --tls -p {} {args:?} with stdin failed ({}): {}{}",
            self.port,
            out.status,
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// `CLUSTER MYID`.
    pub fn node_id(&self) -> String {
        self.cli(&["CLUSTER", "MYID"])
    }

    /// `CLUSTER NODES`, parsed.
    pub fn cluster_nodes(&self) -> Result<Vec<NodeLine>, String> {
        super::cluster_nodes(self)
    }

    /// `name:` of `INFO <section>`.
    pub fn info(&self, section: &str, name: &str) -> Option<String> {
        let info = self.try_cli(&["INFO", section]).ok()?;
        info_field(&info, name)
    }
}

/// Lets the shared topology checks in `super::cluster` ask this node through redis-cli.
impl ClusterMember for TlsRedisNode {
    fn port(&self) -> u16 {
        self.port
    }

    fn ask(&self, args: &[&str]) -> Result<String, String> {
        self.try_cli(args)
    }
}

impl Drop for TlsRedisNode {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!(
                "[fixture] TLS redis-server :{} (pid {}) log tail:\n{}",
                self.port,
                self.pid,
                log_tail(&self.log_path(), 15)
            );
        }
        self.stop();
    }
}

/// Spawns a TLS-only cluster node, the whole config on the command line, output to
/// `dir/redis.log`.
fn spawn_tls_server(port: u16, dir: &Path, tls: &NodeTls) -> Child {
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let mut args: Vec<(&str, String)> = vec![
        // No plain listener at all: anything that reaches the node speaks TLS.
        ("--port", "0".into()),
        ("--tls-port", port.to_string()),
    ];
    args.extend(base_server_args(dir, true));
    args.extend([
        ("--tls-cert-file", path(&tls.cert)),
        ("--tls-key-file", path(&tls.key)),
        ("--tls-ca-cert-file", path(&tls.ca)),
        // Redis' default, spelled out: every client needs a certificate from our CA.
        ("--tls-auth-clients", "yes".into()),
        ("--tls-cluster", "yes".into()),
        ("--tls-replication", "yes".into()),
        ("--requirepass", tls.password.clone()),
        ("--masterauth", tls.password.clone()),
    ]);
    spawn_redis_server(dir, &args)
}

/// A TLS-only, AUTH-protected Redis Cluster of child processes, with its own PKI; see the
/// module docs. Every node is killed on drop.
pub struct TlsRedisCluster {
    /// All nodes in creation order; roles change, so ask [`TlsRedisCluster::primaries`].
    /// Declared before `tmp` so the processes die before their dirs are removed.
    pub nodes: Vec<TlsRedisNode>,
    /// The CA every node, client certificate and server certificate here comes from.
    pub pki: TestPki,
    /// The certificate every node presents (SANs from [`TlsClusterOptions::server_sans`]).
    pub node_cert: CertFiles,
    /// A client certificate for slotgate's connections to the nodes
    /// (`backend-tls-cert-file` / `backend-tls-key-file`).
    pub slotgate_client: CertFiles,
    /// A client certificate for the tests' own connections to the nodes.
    pub test_client: CertFiles,
    /// `requirepass` / `masterauth` of every node.
    pub password: String,
    pub options: TlsClusterOptions,
    tmp: tempfile::TempDir,
}

impl TlsRedisCluster {
    /// Makes the PKI, starts `primaries * (1 + replicas)` TLS nodes, creates the cluster
    /// with `redis-cli --tls --cluster create` and waits until it is fully formed: every
    /// node says `cluster_state:ok`, all agree on one topology covering all 16384 slots,
    /// nobody is flagged `fail`/`handshake`, and every replica's link is up.
    pub fn start(options: TlsClusterOptions) -> TlsRedisCluster {
        assert!(
            options.primaries >= 3,
            "redis-cli --cluster create needs at least 3 primaries"
        );
        let tmp = temp_dir("slotgate-tls-cluster-");
        let pki = TestPki::new(&tmp.path().join("pki"), "slotgate test CA");
        let sans: Vec<&str> = options.server_sans.iter().map(String::as_str).collect();
        let node_cert = pki.server_cert("redis-node", &sans);
        let slotgate_client = pki.client_cert("slotgate-backend");
        let test_client = pki.client_cert("test-client");
        let tls = NodeTls {
            cert: node_cert.cert.clone(),
            key: node_cert.key.clone(),
            ca: pki.ca.clone(),
            password: options.password.clone(),
            client: test_client.clone(),
        };
        let total = options.primaries * (1 + options.replicas_per_primary);
        let nodes = (0..total)
            .map(|_| TlsRedisNode::spawn(tmp.path(), &tls))
            .collect();
        let cluster = TlsRedisCluster {
            nodes,
            pki,
            node_cert,
            slotgate_client,
            test_client,
            password: options.password.clone(),
            options,
            tmp,
        };
        cluster.create();
        cluster.wait_formed();
        cluster
    }

    fn create(&self) {
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(self.nodes.iter().map(|n| n.addr.to_string()));
        args.extend([
            "--cluster-replicas".into(),
            self.options.replicas_per_primary.to_string(),
            "--cluster-yes".into(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.nodes[0].tls_cli().run_for(&args, CREATE_TIMEOUT);
        let text = format!("{}{}", out.stdout, out.stderr);
        let _ = std::fs::write(self.tmp.path().join("cluster-create.log"), &text);
        assert!(
            out.success() && !text.contains("[ERR]"),
            "redis-cli --tls --cluster create failed ({}):\n{text}",
            out.status
        );
    }

    fn wait_formed(&self) {
        wait_for("the TLS cluster to form", FORM_TIMEOUT, POLL, |last| {
            is_formed(&self.nodes, last)
        });
    }

    /// `"127.0.0.1:p1,127.0.0.1:p2,..."`: every node's TLS port, in creation order.
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `ca.crt` of the cluster's PKI.
    pub fn ca(&self) -> &Path {
        &self.pki.ca
    }

    /// The name a verifying TLS client should check the nodes' certificate against:
    /// `127.0.0.1` when it is a SAN, else the first SAN.
    pub fn server_name(&self) -> &str {
        self.options
            .server_sans
            .iter()
            .find(|s| *s == "127.0.0.1")
            .or_else(|| self.options.server_sans.first())
            .expect("node certificates have at least one SAN")
    }

    /// The nodes that run (not stopped).
    pub fn live_nodes(&self) -> impl Iterator<Item = &TlsRedisNode> {
        self.nodes.iter().filter(|n| n.is_live())
    }

    /// The live nodes that call themselves primary, ordered by the lowest slot they own.
    pub fn primaries(&self) -> Vec<&TlsRedisNode> {
        primaries_among(self.live_nodes())
    }

    /// The live nodes that are currently replicas of `primary`.
    pub fn replicas_of(&self, primary: &TlsRedisNode) -> Vec<&TlsRedisNode> {
        replicas_among(self.live_nodes(), &primary.node_id())
    }

    /// Owner port of every slot (index = slot), as one live node's `CLUSTER NODES` says.
    /// Panics if a slot has no owner.
    pub fn slot_owners(&self) -> Vec<u16> {
        slot_owners_by(self.live_nodes().next().expect("a live node"))
    }

    /// The node that currently owns `slot`: the majority answer of the live nodes.
    pub fn node_for_slot(&self, slot: u16) -> &TlsRedisNode {
        self.node_by_port(majority_owner(self.live_nodes(), slot))
    }

    /// The node that currently owns `key`'s slot.
    pub fn node_for_key(&self, key: &str) -> &TlsRedisNode {
        self.node_for_slot(key_slot(key.as_bytes()))
    }

    /// The node listening on `port`.
    pub fn node_by_port(&self, port: u16) -> &TlsRedisNode {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node of this cluster listens on port {port}"))
    }

    /// Waits until every live node reports `cluster_state:ok`, they agree on the owner of
    /// every slot, and every owner is live. Panics after `timeout`.
    pub fn wait_ok(&self, timeout: Duration) {
        wait_for("TLS cluster_state:ok everywhere", timeout, POLL, |last| {
            let live: Vec<&TlsRedisNode> = self.live_nodes().collect();
            slots_agree(&live, last)
        });
    }

    /// Planned failover: `CLUSTER FAILOVER` on `replica` (over TLS), then waits until it is
    /// a primary with slots and the cluster is ok again.
    pub fn failover(&self, replica: &TlsRedisNode) {
        let reply = replica.cli(&["CLUSTER", "FAILOVER"]);
        assert_eq!(reply, "OK", "CLUSTER FAILOVER on port {}", replica.port);
        wait_promoted(replica, POLL);
        self.wait_ok(Duration::from_secs(30));
    }

    /// The cluster's temp dir (PKI, node subdirs, `cluster-create.log`).
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

// ---------------------------------------------------------------------------------------
// slotgate with a TLS listener
// ---------------------------------------------------------------------------------------

/// A slotgate process started from a TOML config, with a plain port, an optional TLS port
/// and an admin port. SIGTERM, then SIGKILL after a grace period, on drop.
pub struct TlsSlotgate {
    /// The plain `listen` address.
    pub addr: SocketAddr,
    /// `127.0.0.1:<tls-port>`, when started with one.
    pub tls: Option<SocketAddr>,
    /// `admin-listen`: `/readyz`, `POST /reload`.
    pub admin: SocketAddr,
    child: Option<Child>,
    pid: u32,
    log_path: PathBuf,
    config_path: PathBuf,
    /// Declared last: the process is gone before its dir is removed.
    tmp: tempfile::TempDir,
}

impl TlsSlotgate {
    /// Starts slotgate with `--listen`, `--tls-port`, `--admin-listen` (all free ports on
    /// 127.0.0.1), `--seeds <seeds>` and `--config <dir>/slotgate.toml` holding `toml`, which
    /// must name the TLS certificate and key. Returns once the plain port answers PING
    /// (`+PONG` or `-NOAUTH`) and the TLS port accepts connections; the listeners open after
    /// the first slot map or after 5 s without one, so call [`TlsSlotgate::wait_ready`] for
    /// a complete slot map.
    pub fn start(seeds: &str, toml: &str) -> TlsSlotgate {
        TlsSlotgate::start_inner(seeds, toml, true)
    }

    /// [`TlsSlotgate::start`] without `--tls-port`: only the plain listener (backend TLS
    /// tests).
    pub fn start_without_tls_port(seeds: &str, toml: &str) -> TlsSlotgate {
        TlsSlotgate::start_inner(seeds, toml, false)
    }

    fn start_inner(seeds: &str, toml: &str, with_tls: bool) -> TlsSlotgate {
        let tmp = temp_dir("slotgate-tls-");
        let config_path = tmp.path().join("slotgate.toml");
        std::fs::write(&config_path, toml).expect("write slotgate.toml");
        let log_path = tmp.path().join("slotgate.log");
        let mut failures = Vec::new();
        for attempt in 1..=SPAWN_ATTEMPTS {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
            let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
            let tls = with_tls.then(|| SocketAddr::from((Ipv4Addr::LOCALHOST, free_port())));
            let mut cmd = Command::new(slotgate_bin());
            cmd.args(["--listen", &addr.to_string()])
                .args(["--admin-listen", &admin.to_string()])
                .args(["--seeds", seeds])
                .arg("--config")
                .arg(&config_path);
            if let Some(tls) = tls {
                cmd.args(["--tls-port", &tls.port().to_string()]);
            }
            let note = format!(
                "attempt {attempt}, --listen {addr} --tls-port {tls:?} --admin-listen {admin}"
            );
            let (mut child, log_start) = spawn_logged(cmd, &log_path, &note);
            let ready = wait_ready(
                &mut child,
                &log_path,
                log_start,
                SLOTGATE_READY_TIMEOUT,
                || listening(addr, tls),
            );
            match ready {
                Ok(()) => {
                    return TlsSlotgate {
                        addr,
                        tls,
                        admin,
                        pid: child.id(),
                        child: Some(child),
                        log_path,
                        config_path,
                        tmp,
                    };
                }
                Err((why, bind_race)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if !bind_race {
                        panic!(
                            "slotgate did not start: {why}\nconfig:\n{toml}\nlog tail:\n{}",
                            log_tail(&log_path, 40)
                        );
                    }
                    failures.push(format!("attempt {attempt}: {why}"));
                }
            }
        }
        panic!(
            "slotgate did not start after {SPAWN_ATTEMPTS} attempts (port races?):\n{}\nlog:\n{}",
            failures.join("\n"),
            log_tail(&log_path, 40)
        );
    }

    /// The TLS listener's address; panics if started without one.
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls
            .expect("this slotgate was started without --tls-port")
    }

    /// `GET /readyz` on the admin port.
    pub fn readyz(&self) -> Result<HttpReply, String> {
        try_http(self.admin, "GET", "/readyz")
    }

    /// Waits until `/readyz` answers 200: slotgate has a complete slot map and every primary
    /// answered its last discovery round (over TLS, for a TLS backend).
    pub fn wait_ready(&self, timeout: Duration) {
        wait_for(
            "slotgate /readyz to answer 200",
            timeout,
            POLL,
            |last| match self.readyz() {
                Ok(reply) if reply.status == 200 => Some(()),
                Ok(reply) => {
                    *last = format!("{} {}", reply.status, reply.body.trim());
                    None
                }
                Err(e) => {
                    *last = e;
                    None
                }
            },
        );
    }

    /// Sends SIGHUP (reload) to this slotgate's PID.
    pub fn sighup(&self) {
        send_signal(self.pid, "HUP");
    }

    /// `POST /reload` on the admin port.
    pub fn post_reload(&self) -> HttpReply {
        try_http(self.admin, "POST", "/reload").unwrap_or_else(|e| panic!("POST /reload: {e}"))
    }

    /// Overwrites the config file (for a reload).
    pub fn write_config(&self, toml: &str) {
        std::fs::write(&self.config_path, toml).expect("rewrite slotgate.toml");
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything slotgate has logged so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// The temp dir holding the config and the log.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// `Some(status)` once the process has exited (and is reaped).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// SIGKILL and reap. Idempotent.
    pub fn kill(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

impl Drop for TlsSlotgate {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[fixture] slotgate :{} tls {:?} (pid {}) log tail:\n{}",
                self.addr.port(),
                self.tls,
                self.pid,
                log_tail(&self.log_path, 60)
            );
        }
        if let Some(child) = self.child.take() {
            terminate(child, TERM_GRACE);
        }
    }
}

/// Ready for [`TlsSlotgate`]: the plain port answers PING (`+PONG`, or `-NOAUTH` with a
/// password) and the TLS port, if any, accepts connections.
fn listening(addr: SocketAddr, tls: Option<SocketAddr>) -> Result<(), String> {
    match ping_reply(addr)? {
        reply if reply == "+PONG\r\n" || reply.starts_with("-NOAUTH") => {}
        reply => return Err(format!("PING answered {reply:?}")),
    }
    match tls {
        None => Ok(()),
        Some(tls) => TcpStream::connect_timeout(&tls, IO_TIMEOUT)
            .map(drop)
            .map_err(|e| format!("plain port ready, TLS port {tls}: {e}")),
    }
}
