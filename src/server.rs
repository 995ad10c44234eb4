//! Process wiring: worker threads, listeners, the topology refresher and shutdown.
//!
//! [`run`] loads the first slot map, then starts `threads` workers. Each worker is a
//! current-thread tokio runtime with a `LocalSet`, its own `SO_REUSEPORT` listener on the
//! same address (the kernel spreads connections over them) and its own backend
//! connections. The calling thread keeps the refresher and waits for a stop signal.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::session;
use crate::state::{ProxyState, WorkerStats};
use crate::topology::refresher::{Refresher, initial_load};
use crate::worker::Worker;

/// How long startup waits for a first slot map before opening the listeners anyway.
const INITIAL_LOAD_LIMIT: Duration = Duration::from_secs(5);

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start worker thread {index}: {source}")]
    Thread {
        index: usize,
        source: std::io::Error,
    },
}

/// Runs the proxy until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), StartError> {
    let state = Arc::new(ProxyState::new(config));
    let shutdown = CancellationToken::new();
    let mut refresher = Refresher::new(state.clone());
    initial_load(&mut refresher, INITIAL_LOAD_LIMIT).await;
    if !state.topology.load().is_complete() {
        warn!("starting without a complete slot map; commands for unserved slots wait for one");
    }
    let listeners = (0..state.config.threads)
        .map(|_| bind(state.config.listen))
        .collect::<Result<Vec<_>, _>>()?;
    let mut threads = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let state = state.clone();
        let shutdown = shutdown.clone();
        let handle = std::thread::Builder::new()
            .name(format!("slotgate-worker-{index}"))
            .spawn(move || run_worker(state, index, listener, shutdown))
            .map_err(|source| StartError::Thread { index, source })?;
        threads.push(handle);
    }
    info!(listen = %state.config.listen, threads = state.config.threads, "slotgate is serving");
    let refresher_task = tokio::spawn(refresher.run(shutdown.clone()));
    wait_for_signal().await;
    info!("stop signal received; shutting down");
    shutdown.cancel();
    let _ = refresher_task.await;
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
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

fn run_worker(
    state: Arc<ProxyState>,
    index: usize,
    listener: std::net::TcpListener,
    shutdown: CancellationToken,
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
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                error!(worker = index, error = %e, "cannot register the listener");
                return;
            }
        };
        let worker = Rc::new(Worker::new(state, index));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => admit(stream, peer, &worker),
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        warn!(worker = index, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    });
}

/// Starts a session for a new client, or turns it away when `maxclients` is reached.
fn admit(stream: TcpStream, peer: SocketAddr, worker: &Rc<Worker>) {
    let state = &worker.state;
    let stats = &worker.stats;
    if state.clients.fetch_add(1, Ordering::Relaxed) >= state.config.maxclients {
        state.clients.fetch_sub(1, Ordering::Relaxed);
        WorkerStats::bump(&stats.connections_rejected);
        tokio::task::spawn_local(async move {
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
    let worker = worker.clone();
    tokio::task::spawn_local(async move {
        session::serve(stream, peer, worker.clone(), id).await;
        worker.state.clients.fetch_sub(1, Ordering::Relaxed);
        WorkerStats::drop_one(&worker.stats.connections_current);
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
