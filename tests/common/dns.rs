//! A real DNS server the test controls: [`DnsServer`], a `dnsmasq` child process.
//!
//! dnsmasq listens on 127.0.0.1 on a free port (UDP and TCP), reads no `/etc/resolv.conf`,
//! no `/etc/hosts` and no config file, forwards nothing, and answers only from a hosts
//! *directory* in its temp dir: one file per name, which dnsmasq re-reads through inotify
//! whenever it changes. Every answer carries TTL 1 s (`--local-ttl=1`) and its cache is off,
//! so a record change is visible to the next query. Names must lie under `test.local`
//! (`--local=/test.local/`): an unknown name there is `NXDOMAIN`, answered locally.
//!
//! Data flow: test -> [`DnsServer::set`] writes `<hostsdir>/<name>` (written next to the dir
//! and renamed in, so dnsmasq never reads half a file) -> inotify -> dnsmasq reloads ->
//! `set` returns only once a real query ([`DnsServer::resolve`], a tiny UDP client written
//! here, no `dig` needed) answers exactly the new addresses. slotgate is pointed at
//! [`DnsServer::server_arg`] with `--dns-server`. Queries are logged (`--log-queries`) to
//! `dnsmasq.log`, so a test can check which names slotgate looked up.
//!
//! The child is killed by its own PID on drop. A missing dnsmasq panics with install
//! instructions (`apt-get install dnsmasq-base`): a missing tool must fail the run, never
//! skip the test.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use super::{free_port, log_tail, temp_dir, wait_for};

/// The zone every test name must belong to.
pub const ZONE: &str = "test.local";
/// How long dnsmasq may take to start answering.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a record change may take to show in answers (inotify is near-instant).
const UPDATE_TIMEOUT: Duration = Duration::from_secs(5);
const SPAWN_ATTEMPTS: usize = 5;

const INSTALL_HINT: &str = "the topology tests need a real DNS server: install it with \
     `sudo apt-get install -y dnsmasq-base` (Debian/Ubuntu) or run `scripts/test.sh`, or point \
     $DNSMASQ at the binary";

/// A dnsmasq process answering for names under [`ZONE`] from files the test writes.
pub struct DnsServer {
    pub addr: SocketAddr,
    pub port: u16,
    child: Option<Child>,
    pid: u32,
    hosts_dir: PathBuf,
    log_path: PathBuf,
    /// Queries this fixture sent itself ([`DnsServer::resolve`]), per name: `set` waits on
    /// one, so the log alone cannot tell whether slotgate looked a name up.
    own_queries: Mutex<HashMap<String, usize>>,
    /// Declared last: the process dies before its dir is removed.
    tmp: tempfile::TempDir,
}

impl DnsServer {
    /// Starts dnsmasq on 127.0.0.1:<free port> and waits until it answers a query.
    pub fn start() -> DnsServer {
        let bin = dnsmasq_path();
        let tmp = temp_dir("slotgate-dns-");
        // dnsmasq started as root drops to `nobody`, which must still read the hosts files.
        set_mode(tmp.path(), 0o755);
        let hosts_dir = tmp.path().join("hosts.d");
        std::fs::create_dir_all(&hosts_dir).expect("create the hosts dir");
        set_mode(&hosts_dir, 0o755);
        let log_path = tmp.path().join("dnsmasq.log");
        let mut failures = Vec::new();
        for _ in 0..SPAWN_ATTEMPTS {
            let port = free_port();
            if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
                failures.push(format!("port {port}: UDP port taken"));
                continue;
            }
            let log = File::options()
                .create(true)
                .append(true)
                .open(&log_path)
                .expect("open dnsmasq.log");
            let log2 = log.try_clone().expect("clone dnsmasq.log handle");
            let mut child = Command::new(&bin)
                .arg("--keep-in-foreground")
                .arg("--conf-file=/dev/null")
                .arg("--no-resolv")
                .arg("--no-hosts")
                .arg("--no-poll")
                .arg("--bind-interfaces")
                .arg("--listen-address=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg(format!("--hostsdir={}", hosts_dir.display()))
                .arg(format!("--local=/{ZONE}/"))
                .arg("--local-ttl=1")
                .arg("--cache-size=0")
                .arg("--pid-file=")
                .arg("--log-facility=-")
                .arg("--log-queries")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}; {INSTALL_HINT}", bin.display()));
            match wait_ready(&mut child, port, &log_path) {
                Ok(()) => {
                    return DnsServer {
                        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                        port,
                        pid: child.id(),
                        child: Some(child),
                        hosts_dir,
                        log_path,
                        own_queries: Mutex::default(),
                        tmp,
                    };
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    failures.push(format!("port {port}: {why}"));
                }
            }
        }
        panic!(
            "dnsmasq did not start after {SPAWN_ATTEMPTS} attempts:\n{}\nlog:\n{}",
            failures.join("\n"),
            log_tail(&log_path, 30)
        );
    }

    /// `127.0.0.1:<port>`, the value for slotgate's `--dns-server`.
    pub fn server_arg(&self) -> String {
        self.addr.to_string()
    }

    /// Makes `name` resolve to exactly `addrs` (A records, TTL 1 s); an empty slice removes
    /// the name (NXDOMAIN). Returns once a query answers exactly that.
    pub fn set(&self, name: &str, addrs: &[Ipv4Addr]) {
        assert!(
            name.ends_with(&format!(".{ZONE}")),
            "DNS test names must be under {ZONE}, got {name}"
        );
        let mut text = String::new();
        for addr in addrs {
            assert!(addr.is_loopback(), "tests use 127.0.0.0/8 only, got {addr}");
            text.push_str(&format!("{addr} {name}\n"));
        }
        // Write beside the watched dir, then rename in: dnsmasq sees one complete file.
        let staged = self.tmp.path().join(format!(".{name}.staged"));
        std::fs::write(&staged, text).expect("write a staged hosts file");
        set_mode(&staged, 0o644);
        std::fs::rename(&staged, self.hosts_dir.join(name)).expect("rename the hosts file in");
        let want: BTreeSet<Ipv4Addr> = addrs.iter().copied().collect();
        wait_for(
            &format!("dnsmasq to answer {name} -> {want:?}"),
            UPDATE_TIMEOUT,
            Duration::from_millis(10),
            |last| match self.resolve(name) {
                Ok(got) => {
                    let got: BTreeSet<Ipv4Addr> = got.into_iter().collect();
                    *last = format!("{got:?}");
                    (got == want).then_some(())
                }
                Err(e) => {
                    *last = e;
                    None
                }
            },
        );
    }

    /// Removes `name`: queries answer NXDOMAIN.
    pub fn remove(&self, name: &str) {
        self.set(name, &[]);
    }

    /// Asks the server for the A records of `name` over UDP. `Ok(empty)` for NXDOMAIN or no
    /// data; `Err` for no answer or a failure code.
    pub fn resolve(&self, name: &str) -> Result<Vec<Ipv4Addr>, String> {
        *self
            .own_queries
            .lock()
            .unwrap()
            .entry(name.to_owned())
            .or_default() += 1;
        query_a(self.addr, name)
    }

    /// Everything dnsmasq logged so far (one line per query with `--log-queries`).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// How many A or AAAA queries for `name` the server has received.
    pub fn queries_for(&self, name: &str) -> usize {
        let a = format!("query[A] {name} ");
        let aaaa = format!("query[AAAA] {name} ");
        self.log()
            .lines()
            .filter(|l| l.contains(&a) || l.contains(&aaaa))
            .count()
    }

    /// Queries for `name` that did not come from this fixture (slotgate's lookups).
    pub fn queries_by_others_for(&self, name: &str) -> usize {
        let own = self.own_queries.lock().unwrap().get(name).copied();
        self.queries_for(name).saturating_sub(own.unwrap_or(0))
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL to this exact child, then reap it.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until the child answers a query (NXDOMAIN for a name nobody set is an answer).
fn wait_ready(child: &mut Child, port: u16, log_path: &Path) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "dnsmasq exited early ({status}); log:\n{}",
                log_tail(log_path, 20)
            ));
        }
        let probe = query_a(addr, &format!("fixture-probe.{ZONE}"));
        if probe.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("no DNS answer within {READY_TIMEOUT:?}: {probe:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[fixture] dnsmasq :{} (pid {}) log tail:\n{}",
                self.port,
                self.pid,
                log_tail(&self.log_path, 12)
            );
        }
        self.kill();
    }
}

/// `$DNSMASQ`, else `dnsmasq` on PATH or in the sbin dirs (often not on a user's PATH).
fn dnsmasq_path() -> PathBuf {
    if let Some(path) = std::env::var_os("DNSMASQ") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "$DNSMASQ points to {}, which is not a file",
            path.display()
        );
        return path;
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let fallbacks = ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from);
    std::env::split_paths(&path_var)
        .chain(fallbacks)
        .map(|dir| dir.join("dnsmasq"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`dnsmasq` was not found on PATH or in /usr/sbin: {INSTALL_HINT}")
        })
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// One DNS query for the A records of `name` to `server` over UDP (RFC 1035 wire format).
pub fn query_a(server: SocketAddr, name: &str) -> Result<Vec<Ipv4Addr>, String> {
    static NEXT_ID: AtomicU16 = AtomicU16::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed) ^ (std::process::id() as u16);
    let mut packet = Vec::with_capacity(64);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0x01, 0x00]); // standard query, recursion desired
    packet.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // 1 question
    for label in name.trim_end_matches('.').split('.') {
        assert!(!label.is_empty() && label.len() < 64, "bad DNS name {name}");
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&[0, 1, 0, 1]); // type A, class IN
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    socket.send_to(&packet, server).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    loop {
        let (n, _) = socket
            .recv_from(&mut buf)
            .map_err(|e| format!("no answer from {server}: {e}"))?;
        let reply = &buf[..n];
        if reply.len() < 12 || reply[..2] != id.to_be_bytes() {
            continue; // not ours
        }
        return parse_a_answer(reply);
    }
}

fn parse_a_answer(reply: &[u8]) -> Result<Vec<Ipv4Addr>, String> {
    let rcode = reply[3] & 0x0f;
    match rcode {
        0 => {}
        3 => return Ok(Vec::new()), // NXDOMAIN
        other => return Err(format!("DNS rcode {other}")),
    }
    let qdcount = u16::from_be_bytes([reply[4], reply[5]]);
    let ancount = u16::from_be_bytes([reply[6], reply[7]]);
    let mut pos = 12;
    let skip_name = |mut pos: usize| -> Result<usize, String> {
        loop {
            let len = *reply.get(pos).ok_or("truncated name")?;
            if len & 0xc0 == 0xc0 {
                return Ok(pos + 2);
            }
            if len == 0 {
                return Ok(pos + 1);
            }
            pos += 1 + usize::from(len);
        }
    };
    for _ in 0..qdcount {
        pos = skip_name(pos)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..ancount {
        pos = skip_name(pos)?;
        let header = reply.get(pos..pos + 10).ok_or("truncated answer")?;
        let rtype = u16::from_be_bytes([header[0], header[1]]);
        let rdlen = usize::from(u16::from_be_bytes([header[8], header[9]]));
        let rdata = reply
            .get(pos + 10..pos + 10 + rdlen)
            .ok_or("truncated rdata")?;
        if rtype == 1 && rdlen == 4 {
            out.push(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]));
        }
        pos += 10 + rdlen;
    }
    Ok(out)
}
