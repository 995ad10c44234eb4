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
use crate::listener::{Listener, Sockets};
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
        .upstreams()
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
    for upstream in state.upstreams().iter() {
        if !upstream.topology.load().is_complete() {
            warn!(
                upstream = %upstream.name,
                "starting without a complete slot map; commands for unserved slots wait for one"
            );
        }
    }

    let config = state.config_arc();
    // Every listener in force, bound once per worker; a reload sends later ones through
    // the workers' inboxes.
    let listeners = state.listeners();
    let mut sockets: Vec<Vec<Sockets>> = (0..config.threads).map(|_| Vec::new()).collect();
    for listener in listeners.iter() {
        let bound = crate::listener::bind_all(listener, config.threads).map_err(|e| {
            StartError::Listen {
                addr: e.addr,
                source: e.source,
            }
        })?;
        for (worker, socket) in sockets.iter_mut().zip(bound) {
            worker.push(socket);
        }
    }
    let workers = TaskTracker::new();
    let mut threads = Vec::new();
    let mut inboxes = Vec::new();
    for (index, initial) in sockets.into_iter().enumerate() {
        let state = state.clone();
        let token = workers.token();
        let (sender, inbox) = tokio::sync::mpsc::unbounded_channel();
        inboxes.push(sender);
        let handle = std::thread::Builder::new()
            .name(format!("slotgate-worker-{index}"))
            .spawn(move || run_worker(state, index, initial, inbox, token))
            .map_err(|source| StartError::Thread { index, source })?;
        threads.push(handle);
    }
    state.inboxes.set(inboxes);
    workers.close();
    state.serving.store(true, Ordering::Relaxed);
    for listener in listeners.iter() {
        let view = listener.config();
        match &view.tls {
            Some(tls) => {
                info!(listener = %listener.name, backend = %listener.upstream.name, listen = %view.listen, tls_port = tls.port, threads = config.threads, "slotgate is serving");
            }
            None => {
                info!(listener = %listener.name, backend = %listener.upstream.name, listen = %view.listen, threads = config.threads, "slotgate is serving");
            }
        }
    }
    drop(config);
    let refresher_tasks: Vec<_> = refreshers
        .into_iter()
        .map(|refresher| refresher.spawn(shutdown.clone()))
        .collect();

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

/// Accepts on an optional listener; never completes without one.
async fn accept_on(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// One worker thread: accepts on every listener (those in force at start, and those a
/// reload sends to `inbox`) until `draining` fires, then waits for its sessions. `_token`
/// keeps the main thread's tracker open until this thread is done.
fn run_worker(
    state: Arc<ProxyState>,
    index: usize,
    initial: Vec<Sockets>,
    mut inbox: tokio::sync::mpsc::UnboundedReceiver<Sockets>,
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
        let sessions = TaskTracker::new();
        let accepting = TaskTracker::new();
        for sockets in initial {
            accepting.spawn_local(accept_loop(sockets, worker.clone(), index, sessions.clone()));
        }
        // Listeners added by a reload arrive here. A task of its own, not a branch of this
        // future: the LocalSet polls its main future at every wake-up of any task, and a
        // token check there costs every request a lock.
        let adder = {
            let worker = worker.clone();
            let accepting = accepting.clone();
            let sessions = sessions.clone();
            async move {
                let draining = worker.draining.clone();
                loop {
                    tokio::select! {
                        biased;
                        () = draining.cancelled() => break,
                        added = inbox.recv() => match added {
                            Some(sockets) => {
                                worker.forget_unused_upstreams();
                                let accept = accept_loop(sockets, worker.clone(), index, sessions.clone());
                                accepting.spawn_local(accept);
                            }
                            None => break,
                        },
                    }
                }
            }
        };
        accepting.spawn_local(adder);
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

/// Accepts on one listener's sockets until it stops (removed by a reload, or draining);
/// its clients are served by its upstream. Returning closes the sockets; its sessions
/// drain on the same signal.
async fn accept_loop(sockets: Sockets, worker: Rc<Worker>, index: usize, sessions: TaskTracker) {
    let Sockets {
        listener,
        plain,
        tls,
    } = sockets;
    let registered = TcpListener::from_std(plain).and_then(|plain| {
        let tls = tls.map(TcpListener::from_std).transpose()?;
        Ok((plain, tls))
    });
    let (plain, tls_listener) = match registered {
        Ok(pair) => pair,
        Err(e) => {
            error!(worker = index, listener = %listener.name, error = %e, "cannot register the listeners");
            return;
        }
    };
    let upstream = worker.upstream_for(&listener.upstream);
    // This thread's own token: its sessions wait on it, not on one every thread shares.
    let stop = listener.stop.child_token();
    let bound = Bound {
        listener,
        upstream,
        stop,
    };
    loop {
        tokio::select! {
            biased;
            () = bound.stop.cancelled() => break,
            accepted = plain.accept() => match accepted {
                Ok((stream, peer)) => admit(stream, peer, false, &worker, &bound, index, &sessions),
                Err(e) => accept_failed(index, &e).await,
            },
            accepted = accept_on(tls_listener.as_ref()) => match accepted {
                Ok((stream, peer)) => admit(stream, peer, true, &worker, &bound, index, &sessions),
                Err(e) => accept_failed(index, &e).await,
            },
        }
    }
    if !worker.state.is_draining() {
        info!(worker = index, listener = %bound.listener.name, "listener removed: no new clients; its sessions drain");
    }
}

/// One listener as one worker serves it.
struct Bound {
    listener: Arc<Listener>,
    upstream: Rc<WorkerUpstream>,
    stop: CancellationToken,
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
    bound: &Bound,
    index: usize,
    sessions: &TaskTracker,
) {
    let state = &worker.state;
    let stats = &worker.stats;
    let listener = &bound.listener;
    let maxclients = listener.config().maxclients;
    if listener.clients.fetch_add(1, Ordering::Relaxed) >= maxclients {
        listener.clients.fetch_sub(1, Ordering::Relaxed);
        listener.rejected.fetch_add(1, Ordering::Relaxed);
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
    state.clients.fetch_add(1, Ordering::Relaxed);
    listener.accepted.fetch_add(1, Ordering::Relaxed);
    WorkerStats::bump(&stats.connections_accepted);
    WorkerStats::bump(&stats.connections_current);
    let id = state.next_client_id.fetch_add(1, Ordering::Relaxed);
    let local = stream.local_addr().unwrap_or(peer);
    let name: Arc<str> = Arc::from(listener.name.as_str());
    let registration = state.client_list.register(index, id, peer, local, name);
    let worker = worker.clone();
    let upstream = bound.upstream.clone();
    let listener = listener.clone();
    let stop = bound.stop.clone();
    sessions.spawn_local(async move {
        let killed = registration.entry().kill_token().clone();
        let serve = async {
            let stream = if tls {
                match handshake(stream, &listener).await {
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
            let bound = session::Bound {
                listener: listener.clone(),
                upstream,
                stop,
            };
            session::serve(stream, peer, worker.clone(), bound, id).await;
        };
        tokio::select! {
            () = serve => {}
            // Dropping the session closes its socket; replies still due are abandoned.
            () = killed.cancelled() => debug!(client = id, %peer, "client killed (CLIENT KILL)"),
        }
        drop(registration);
        listener.clients.fetch_sub(1, Ordering::Relaxed);
        worker.state.clients.fetch_sub(1, Ordering::Relaxed);
        WorkerStats::drop_one(&worker.stats.connections_current);
    });
}

/// The server side of a TLS handshake, with the certificate in force now.
async fn handshake(stream: TcpStream, listener: &Listener) -> std::io::Result<Stream> {
    let acceptor = listener
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
