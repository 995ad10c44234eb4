//! The slotgate binary under test: [`Slotgate`].
//!
//! Spawns the binary Cargo built for this test run (`CARGO_BIN_EXE_slotgate`) with
//! `--listen 127.0.0.1:<free port> --seeds <seeds>` plus the test's extra arguments,
//! `RUST_LOG=debug` (or the caller's `RUST_LOG`), and stdout/stderr appended to
//! `slotgate.log` in a temp dir. Ready means the port answered `PING` with `+PONG`.
//!
//! The spawn, readiness, SIGTERM-then-SIGKILL and PING helpers below are shared with the
//! other slotgate fixtures (`super::tls::TlsSlotgate`, `super::ops::OpsProxy`).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, log_tail, send_signal, temp_dir};

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const SPAWN_ATTEMPTS: usize = 5;
/// How long a SIGTERM'ed slotgate gets to exit on its own before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);

/// A running slotgate process. SIGTERM, then SIGKILL after a grace period, on drop.
pub struct Slotgate {
    pub addr: SocketAddr,
    pub port: u16,
    child: Option<Child>,
    pid: u32,
    log_path: PathBuf,
    /// Declared last: the process is gone before its log dir is removed.
    tmp: tempfile::TempDir,
}

/// Path of the binary under test. `option_env!` rather than `env!`, so the test crates still
/// compile while the binary target does not exist yet.
pub fn slotgate_bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_slotgate") {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "CARGO_BIN_EXE_slotgate is not set: the crate has no `slotgate` binary target \
             (src/main.rs) yet, so there is nothing to test"
        ),
    }
}

impl Slotgate {
    /// Starts slotgate in front of `seeds` (`"host:port,host:port"`) with `extra_args`
    /// appended, and waits (10 s) until it answers PING. Panics with the log tail otherwise.
    pub fn start(seeds: &str, extra_args: &[&str]) -> Slotgate {
        let tmp = temp_dir("slotgate-proxy-");
        let log_path = tmp.path().join("slotgate.log");
        let mut failures = Vec::new();
        for attempt in 1..=SPAWN_ATTEMPTS {
            let port = free_port();
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let listen = addr.to_string();
            let mut cmd = Command::new(slotgate_bin());
            cmd.args(["--listen", &listen, "--seeds", seeds])
                .args(extra_args);
            let (mut child, log_start) = spawn_logged(
                cmd,
                &log_path,
                &format!("attempt {attempt}, --listen {listen}"),
            );
            let ready =
                wait_ready(
                    &mut child,
                    &log_path,
                    log_start,
                    READY_TIMEOUT,
                    || match ping_reply(addr)? {
                        reply if reply == "+PONG\r\n" => Ok(()),
                        reply => Err(format!("PING answered {reply:?}")),
                    },
                );
            match ready {
                Ok(()) => {
                    return Slotgate {
                        addr,
                        port,
                        pid: child.id(),
                        child: Some(child),
                        log_path,
                        tmp,
                    };
                }
                Err((why, bind_race)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if !bind_race {
                        panic!(
                            "slotgate --listen {listen} --seeds {seeds} {extra_args:?} did not \
                             start: {why}\nlog tail ({}):\n{}",
                            log_path.display(),
                            log_tail(&log_path, 40)
                        );
                    }
                    failures.push(format!("port {port}: {why}"));
                }
            }
        }
        panic!(
            "slotgate did not start after {SPAWN_ATTEMPTS} attempts (port races?):\n{}\nlog:\n{}",
            failures.join("\n"),
            log_tail(&log_path, 40)
        );
    }

    /// Everything slotgate has logged so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// Path of the log file.
    pub fn log_path(&self) -> PathBuf {
        self.log_path.clone()
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The temp dir holding `slotgate.log`; a test may put config files here.
    pub fn dir(&self) -> &std::path::Path {
        self.tmp.path()
    }

    /// `Some(status)` once the process has exited (and is reaped).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Sends SIGTERM and waits up to `timeout` for a graceful exit. Returns the exit status,
    /// or `None` if it was still running (it is then killed with SIGKILL).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        terminate(self.child.take()?, timeout)
    }

    /// SIGKILL and reap. Idempotent.
    pub fn kill(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

impl Drop for Slotgate {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[fixture] slotgate :{} (pid {}) log tail:\n{}",
                self.port,
                self.pid,
                log_tail(&self.log_path, 60)
            );
        }
        self.terminate(TERM_GRACE);
    }
}

/// Appends `=== fixture: <note> ===` to the log at `log_path`, then spawns `cmd` (the
/// slotgate binary and its arguments) with `RUST_LOG=debug` (or the caller's `RUST_LOG`),
/// `RUST_BACKTRACE=1` and stdout/stderr appended to that log. Returns the child and the log
/// offset where its output starts, so an earlier attempt's bind error is not taken for its.
pub(super) fn spawn_logged(mut cmd: Command, log_path: &Path, note: &str) -> (Child, u64) {
    let log = File::options()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("open slotgate.log");
    let _ = writeln!(&log, "=== fixture: {note} ===");
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let log2 = log.try_clone().expect("clone slotgate.log handle");
    let child = cmd
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()),
        )
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", slotgate_bin().display()));
    (child, log_start)
}

/// Polls `ready` until it says `Ok`. `Err((why, bind_race))` when `child` exits first or
/// `timeout` passes: the caller retries with other ports only when the process died because
/// a port was taken (its log since `log_start` says so).
pub(super) fn wait_ready(
    child: &mut Child,
    log_path: &Path,
    log_start: u64,
    timeout: Duration,
    mut ready: impl FnMut() -> Result<(), String>,
) -> Result<(), (String, bool)> {
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read(log_path).unwrap_or_default();
            let ours = String::from_utf8_lossy(log.get(log_start as usize..).unwrap_or_default());
            let bind_race = ours.contains("Address already in use") || ours.contains("AddrInUse");
            return Err((format!("exited early with {status}"), bind_race));
        }
        match ready() {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        if Instant::now() >= deadline {
            return Err((
                format!("not ready within {timeout:?} (last: {last})"),
                false,
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Sends SIGTERM to `child` (by its own PID) and waits up to `timeout` for it to exit.
/// Returns the exit status, or `None` if it was still running (it is then SIGKILLed).
pub(super) fn terminate(mut child: Child, timeout: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    send_signal(child.id(), "TERM");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// SIGKILLs the child in `slot`, if any, and reaps it. Idempotent.
pub(super) fn kill_and_reap(slot: &mut Option<Child>) {
    if let Some(mut child) = slot.take() {
        // kill() is SIGKILL to this exact child; it fails only if the child is already
        // reaped, which wait() covers.
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// One `PING` on a fresh plain connection; the reply's first line (`+PONG\r\n`,
/// `-NOAUTH ...`), or why there is none.
pub(super) fn ping_reply(addr: SocketAddr) -> Result<String, String> {
    let timeout = Duration::from_millis(500);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"*1\r\n$4\r\nPING\r\n")
        .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while !reply.ends_with(b"\r\n") {
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("connection closed after {reply:?}"));
        }
        reply.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}
