//! Process wiring: worker threads, listeners, the admin listener, the topology refresher,
//! signals, reload and graceful shutdown.
//!
//! [`run`] starts the admin listener (so probes answer "starting" at once), loads the
//! first slot map, then starts `threads` workers. Each worker is a current-thread tokio
//! runtime with a `LocalSet`, its own `SO_REUSEPORT` listener on the same address (the
//! kernel spreads connections over them; with `tls-port`, a second one for TLS, whose
//! clients are handshaken inside their session task) and its own backend connections. The calling
//! thread keeps the refresher and the admin listener and waits for signals:
//!
//! ```text
//!  SIGHUP ─────────────► reload::Reloader (config re-read, validated, swapped)
//!  SIGTERM / SIGINT ───► ProxyState::draining fires ─► /readyz 503
//!                          ├─ every worker closes its listener (no new clients)
//!                          ├─ every session answers what it already received, then
//!                          │  closes once idle (sessions select on `draining`)
//!                          └─ each worker's TaskTracker empties ─► its thread ends
//!                        exit when all threads ended, at `shutdown-timeout`, or at once
//!                        on a second stop signal
//! ```

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::{debug, error, info, warn};

use crate::admin;
use crate::config::{Cli, Config};
use crate::metrics::WorkerStats;
use crate::reload::{LogFilterHandle, Reloader};
use crate::session;
use crate::state::ProxyState;
use crate::transport::Stream;
use crate::upstream::WorkerUpstream;
use crate::upstream::refresher::{Refresher, initial_load};
use crate::worker::Worker;

/// How long startup waits for a first slot map before opening the listeners anyway.
const INITIAL_LOAD_LIMIT: Duration = Duration::from_secs(5);
/// How long a client on the TLS port has to finish its handshake: a connection that never
/// does must not hold a `maxclients` slot.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} (admin-listen): {source}")]
    Admin {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start worker thread {index}: {source}")]
    Thread {
        index: usize,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// What [`run`] needs besides the config, for reloads.
#[derive(Default)]
pub struct RunOptions {
    /// The parsed command line: a reload runs `Config::load` on it again. Without it,
    /// SIGHUP and `POST /reload` are refused.
    pub cli: Option<Cli>,
    /// Applies a reloaded `log-level` to the running subscriber.
    pub log_filter: Option<LogFilterHandle>,
}

/// Runs the proxy until SIGINT or SIGTERM, then drains (see the module docs).
pub async fn run(config: Config, options: RunOptions) -> Result<(), StartError> {
    let state = Arc::new(ProxyState::new(config));
    let mut signals = Signals::new().map_err(StartError::Signals)?;
    let shutdown = CancellationToken::new();
    let reloader = Arc::new(Reloader::new(
        state.clone(),
        options.cli,
        options.log_filter,
    ));
    let admin_task = match state.config().admin_listen {
        Some(addr) => {
            let listener = admin::bind(addr)
                .await
                .map_err(|source| StartError::Admin { addr, source })?;
            Some(admin::serve(
                listener,
                state.clone(),
                reloader.clone(),
                shutdown.clone(),
            ))
        }
        None => None,
    };

    // One refresher per upstream, all on this thread.
    let mut refreshers: Vec<Refresher> = state
        .upstreams
        .iter()
        .map(|upstream| Refresher::new(upstream.clone(), state.metrics.clone()))
        .collect();
    {
        let load = async {
            for refresher in &mut refreshers {
                initial_load(refresher, INITIAL_LOAD_LIMIT).await;
            }
        };
        tokio::pin!(load);
        loop {
            tokio::select! {
                () = &mut load => break,
                signal = signals.recv() => match signal {
                    Signal::Reload => {
                        let _ = reloader.reload("SIGHUP");
                    }
                    Signal::Stop(name) => {
                        info!(signal = name, "stop signal during startup; exiting");
                        shutdown.cancel();
                        return Ok(());
                    }
                },
            }
        }
    }
    for upstream in &state.upstreams {
        if !upstream.topology.load().is_complete() {
            warn!(
                upstream = %upstream.name,
                "starting without a complete slot map; commands for unserved slots wait for one"
            );
        }
    }

    let config = state.config_arc();
    let tls_addr = config
        .tls
        .as_ref()
        .map(|tls| SocketAddr::new(config.listen.ip(), tls.port));
    // Today's flat config: one listener (plain, and TLS with `tls-port`) bound to the one
    // upstream.
    let bindings = [Binding {
        plain: config.listen,
        tls: tls_addr,
        upstream: 0,
    }];
    let listeners = (0..config.threads)
        .map(|_| {
            bindings
                .iter()
                .map(|binding| {
                    Ok(Listeners {
                        plain: bind(binding.plain)?,
                        tls: binding.tls.map(bind).transpose()?,
                        upstream: binding.upstream,
                    })
                })
                .collect::<Result<Vec<_>, StartError>>()
        })
        .collect::<Result<Vec<_>, StartError>>()?;
    let workers = TaskTracker::new();
    let mut threads = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let state = state.clone();
        let token = workers.token();
        let handle = std::thread::Builder::new()
            .name(format!("slotgate-worker-{index}"))
            .spawn(move || run_worker(state, index, listener, token))
            .map_err(|source| StartError::Thread { index, source })?;
        threads.push(handle);
    }
    workers.close();
    state.serving.store(true, Ordering::Relaxed);
    match tls_addr {
        Some(tls) => {
            info!(listen = %config.listen, tls_listen = %tls, threads = config.threads, "slotgate is serving");
        }
        None => info!(listen = %config.listen, threads = config.threads, "slotgate is serving"),
    }
    drop(config);
    let refresher_tasks: Vec<_> = refreshers
        .into_iter()
        .map(|refresher| tokio::spawn(refresher.run(shutdown.clone())))
        .collect();
    // One replica probe per upstream; each idles while its policy reads from primaries.
    for upstream in &state.upstreams {
        tokio::spawn(crate::upstream::read_probe::run(
            upstream.clone(),
            shutdown.clone(),
        ));
    }

    let first = loop {
        match signals.recv().await {
            Signal::Reload => {
                let _ = reloader.reload("SIGHUP");
            }
            Signal::Stop(name) => break name,
        }
    };
    let drained = drain(&state, &workers, &mut signals, &reloader, first).await;
    shutdown.cancel();
    for task in refresher_tasks {
        task.abort();
    }
    if let Some(task) = admin_task {
        task.abort();
    }
    if drained {
        for thread in threads {
            let _ = thread.join();
        }
    }
    info!("slotgate stopped");
    Ok(())
}

/// Fires `draining` and waits until every worker is done, `shutdown-timeout` passes or a
/// second stop signal arrives. Returns true when every connection closed by itself.
async fn drain(
    state: &ProxyState,
    workers: &TaskTracker,
    signals: &mut Signals,
    reloader: &Reloader,
    signal: &'static str,
) -> bool {
    let timeout = state.config().shutdown_timeout;
    info!(
        signal,
        open_connections = state.clients.load(Ordering::Relaxed),
        shutdown_timeout = ?timeout,
        "draining: readiness is off, listeners close, received commands are answered; \
         a second signal exits at once"
    );
    state.draining.cancel();
    let deadline = Instant::now() + timeout;
    loop {
        tokio::select! {
            () = workers.wait() => {
                info!("drained: every client connection closed");
                return true;
            }
            () = sleep_until(deadline) => {
                warn!(
                    open_connections = state.clients.load(Ordering::Relaxed),
                    "shutdown-timeout reached with client connections still open; exiting anyway"
                );
                return false;
            }
            signal = signals.recv() => match signal {
                Signal::Stop(name) => {
                    warn!(
                        signal = name,
                        open_connections = state.clients.load(Ordering::Relaxed),
                        "second stop signal: exiting now"
                    );
                    return false;
                }
                Signal::Reload => {
                    let _ = reloader.reload("SIGHUP");
                }
            },
        }
    }
}

/// A listening socket with `SO_REUSEPORT`, so every worker can have its own.
fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, StartError> {
    let fail = |source| StartError::Listen { addr, source };
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
        .map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    #[cfg(unix)]
    socket.set_reuse_port(true).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(1024).map_err(fail)?;
    Ok(socket.into())
}

/// A listener and the upstream its clients are served by.
struct Binding {
    plain: SocketAddr,
    /// The TLS port of the same listener (`tls-port`).
    tls: Option<SocketAddr>,
    /// Index into [`ProxyState::upstreams`].
    upstream: usize,
}

/// One worker's listening sockets for one [`Binding`]: the plain port and, with
/// `tls-port`, the TLS one.
struct Listeners {
    plain: std::net::TcpListener,
    tls: Option<std::net::TcpListener>,
    upstream: usize,
}

/// Accepts on an optional listener; never completes without one.
async fn accept_on(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// One worker thread: accepts on every listener until `draining` fires, then waits for
/// its sessions. `_token` keeps the main thread's tracker open until this thread is done.
fn run_worker(
    state: Arc<ProxyState>,
    index: usize,
    listeners: Vec<Listeners>,
    _token: TaskTrackerToken,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            error!(worker = index, error = %e, "cannot build the worker runtime");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let worker = Rc::new(Worker::new(state, index));
        for upstream in &worker.upstreams {
            tokio::task::spawn_local(upstream.clone().follow_read_health());
        }
        let sessions = TaskTracker::new();
        let accepting = TaskTracker::new();
        for listeners in listeners {
            let upstream = worker.upstreams[listeners.upstream].clone();
            let accept = accept_loop(listeners, worker.clone(), upstream, index, sessions.clone());
            accepting.spawn_local(accept);
        }
        accepting.close();
        accepting.wait().await;
        sessions.close();
        debug!(
            worker = index,
            sessions = sessions.len(),
            "listeners closed; waiting for sessions to finish"
        );
        sessions.wait().await;
        debug!(worker = index, "worker drained");
    });
}

/// Accepts on one listener's sockets until `draining` fires; its clients are served by
/// `upstream`. Returning closes the sockets.
async fn accept_loop(
    listeners: Listeners,
    worker: Rc<Worker>,
    upstream: Rc<WorkerUpstream>,
    index: usize,
    sessions: TaskTracker,
) {
    let registered = TcpListener::from_std(listeners.plain).and_then(|plain| {
        let tls = listeners.tls.map(TcpListener::from_std).transpose()?;
        Ok((plain, tls))
    });
    let (listener, tls_listener) = match registered {
        Ok(pair) => pair,
        Err(e) => {
            error!(worker = index, error = %e, "cannot register the listeners");
            return;
        }
    };
    let draining = worker.state.draining.clone();
    loop {
        tokio::select! {
            biased;
            () = draining.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(stream, peer, false, &worker, &upstream, index, &sessions),
                Err(e) => accept_failed(index, &e).await,
            },
            accepted = accept_on(tls_listener.as_ref()) => match accepted {
                Ok((stream, peer)) => admit(stream, peer, true, &worker, &upstream, index, &sessions),
                Err(e) => accept_failed(index, &e).await,
            },
        }
    }
}

/// EMFILE and friends: back off briefly instead of spinning.
async fn accept_failed(index: usize, error: &std::io::Error) {
    warn!(worker = index, error = %error, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Starts a session for a new client (after its TLS handshake on the TLS port), served by
/// its listener's `upstream`, or turns it away when `maxclients` is reached.
fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    tls: bool,
    worker: &Rc<Worker>,
    upstream: &Rc<WorkerUpstream>,
    index: usize,
    sessions: &TaskTracker,
) {
    let state = &worker.state;
    let stats = &worker.stats;
    let maxclients = state.config().maxclients;
    if state.clients.fetch_add(1, Ordering::Relaxed) >= maxclients {
        state.clients.fetch_sub(1, Ordering::Relaxed);
        WorkerStats::bump(&stats.connections_rejected);
        if tls {
            // No plain-text error can reach a TLS client before its handshake: just close.
            return;
        }
        sessions.spawn_local(async move {
            let mut stream = stream;
            let _ = stream
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
        });
        return;
    }
    WorkerStats::bump(&stats.connections_accepted);
    WorkerStats::bump(&stats.connections_current);
    let id = state.next_client_id.fetch_add(1, Ordering::Relaxed);
    let local = stream.local_addr().unwrap_or(peer);
    let registration = state.client_list.register(index, id, peer, local);
    let worker = worker.clone();
    let upstream = upstream.clone();
    sessions.spawn_local(async move {
        let killed = registration.entry().kill_token().clone();
        let serve = async {
            let stream = if tls {
                match handshake(stream, &worker).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        WorkerStats::bump(&worker.stats.tls_handshake_failures);
                        debug!(client = id, %peer, error = %e, "TLS handshake failed");
                        return;
                    }
                }
            } else {
                Stream::Plain(stream)
            };
            session::serve(stream, peer, worker.clone(), upstream, id).await;
        };
        tokio::select! {
            () = serve => {}
            // Dropping the session closes its socket; replies still due are abandoned.
            () = killed.cancelled() => debug!(client = id, %peer, "client killed (CLIENT KILL)"),
        }
        drop(registration);
        worker.state.clients.fetch_sub(1, Ordering::Relaxed);
        WorkerStats::drop_one(&worker.stats.connections_current);
    });
}

/// The server side of a TLS handshake, with the certificate in force now.
async fn handshake(stream: TcpStream, worker: &Worker) -> std::io::Result<Stream> {
    let acceptor = worker
        .state
        .tls
        .acceptor()
        .ok_or_else(|| std::io::Error::other("the TLS listener has no certificate loaded"))?;
    let accepted = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"))??;
    Ok(Stream::Tls(Box::new(accepted.into())))
}

/// A signal the main thread acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signal {
    /// SIGTERM or SIGINT: drain, or exit now if already draining.
    Stop(&'static str),
    /// SIGHUP: reload the config.
    Reload,
}

/// The process's signal handlers, installed once at start.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> std::io::Result<Self> {
        Ok(Self {})
    }

    #[cfg(unix)]
    async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop("SIGTERM"),
            _ = self.int.recv() => Signal::Stop("SIGINT"),
            _ = self.hup.recv() => Signal::Reload,
        }
    }

    #[cfg(not(unix))]
    async fn recv(&mut self) -> Signal {
        let _ = tokio::signal::ctrl_c().await;
        Signal::Stop("ctrl-c")
    }
}
