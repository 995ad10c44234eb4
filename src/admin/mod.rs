//! The admin HTTP listener (`admin-listen`): metrics, probes, topology page, reload.
//!
//! ```text
//!  GET  /metrics       ─► metrics::render (OpenMetrics text, summed over workers at scrape)
//!  GET  /healthz       ─► 200 while the process runs; never asks a backend
//!  GET  /readyz        ─► ProxyState::readiness: 200 ready, 503 starting/degraded/draining
//!  GET  /              ─► page: the live topology page (HTML, compiled in)
//!  GET  /page.css|.js  ─► page: its style and script
//!  GET  /api/topology  ─► api::json: what the page shows, for scripts too
//!  GET  /topology      ─► topology::json of the slot map in force
//!  POST /reload        ─► reload::Reloader (same as SIGHUP); 200 applied, 400 refused
//! ```
//!
//! With `admin-token` set, `/`, `/api/topology`, `/topology` and `/reload` need the token
//! ([`auth`]); probes and `/metrics` never do.
//!
//! Served by hyper (HTTP/1.1) on the main runtime, beside the refresher, never on a
//! worker: a slow scrape cannot delay a client command. It starts before the first slot
//! map loads (so probes see "starting") and stops only when the process exits, so
//! `/readyz` answers 503 throughout a drain.

mod api;
mod auth;
mod metrics;
mod page;
mod sentinel_metrics;
mod topology;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::reload::{ReloadError, Reloader};
use crate::state::{ProxyState, Readiness};

pub use topology::json as topology_json;

/// What the request handlers share.
struct Admin {
    state: Arc<ProxyState>,
    registry: Registry,
    reloader: Arc<Reloader>,
    /// Samples for the windowed rates of `/api/topology`.
    sampler: api::Sampler,
}

/// Binds the admin listener. Separate from [`serve`] so that a bad address fails startup.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves admin requests on `listener` until `shutdown` fires.
pub fn serve(
    listener: TcpListener,
    state: Arc<ProxyState>,
    reloader: Arc<Reloader>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let admin = Arc::new(Admin {
        registry: metrics::registry(state.clone()),
        state,
        reloader,
        sampler: api::Sampler::default(),
    });
    if let Ok(addr) = listener.local_addr() {
        info!(admin = %addr, "admin listener ready: / /api/topology /metrics /healthz /readyz /topology POST /reload");
    }
    tokio::spawn(async move {
        let connections = tokio_util::task::TaskTracker::new();
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        warn!(error = %e, "admin accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let admin = admin.clone();
            let shutdown = shutdown.clone();
            connections.spawn(async move {
                let service = service_fn(move |request| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.handle(request)) }
                });
                let connection =
                    http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    result = connection => if let Err(e) = result {
                        debug!(%peer, error = %e, "admin connection ended with an error");
                    },
                    _ = shutdown.cancelled() => {}
                }
            });
        }
        connections.close();
    })
}

impl Admin {
    fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        let method = request.method();
        let get = method == Method::GET || method == Method::HEAD;
        if matches!(path, "/" | "/api/topology" | "/topology" | "/reload") {
            let config = self.state.config();
            match auth::check(config.admin_token.as_ref(), &request) {
                auth::Access::Granted => {}
                auth::Access::Login => {
                    let token = config.admin_token.as_ref().map(auth::login_cookie);
                    return page::login_redirect(token.unwrap_or_default());
                }
                auth::Access::Denied if path == "/" && get => return page::login_form(),
                auth::Access::Denied => return unauthorized(),
            }
        }
        match path {
            "/metrics" if get => {
                let body = metrics::render(&self.registry);
                respond(StatusCode::OK, metrics::CONTENT_TYPE, body)
            }
            "/healthz" if get => text(StatusCode::OK, "ok\n".to_owned()),
            "/readyz" if get => {
                let readiness = self.state.readiness();
                let status = if readiness == Readiness::Ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                let mut body = format!("{}\n", readiness.describe());
                // Which backends hold it back, by name (only the `required` ones count).
                for name in self.state.not_ready() {
                    body.push_str(&format!("backend {name}: not ready\n"));
                }
                for upstream in self.state.upstreams().iter() {
                    if let Some(note) = upstream.sentinel.readiness_note() {
                        body.push_str(&note);
                    }
                }
                text(status, body)
            }
            "/topology" if get => respond(
                StatusCode::OK,
                "application/json",
                topology::json(&self.state).to_string(),
            ),
            "/api/topology" if get => {
                let mut response = respond(
                    StatusCode::OK,
                    "application/json",
                    api::json(&self.state, &self.sampler).to_string(),
                );
                response
                    .headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            "/reload" if method == Method::POST => self.reload(),
            "/" if get => page::index(),
            "/page.css" if get => page::asset(page::CSS, "text/css; charset=utf-8"),
            "/page.js" if get => page::asset(page::JS, "text/javascript; charset=utf-8"),
            "/metrics" | "/healthz" | "/readyz" | "/topology" | "/api/topology" | "/"
            | "/page.css" | "/page.js" => not_allowed("GET, HEAD"),
            "/reload" => not_allowed("POST"),
            _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
        }
    }

    fn reload(&self) -> Response<Full<Bytes>> {
        let (status, body) = match self.reloader.reload("POST /reload") {
            Ok(report) => (
                StatusCode::OK,
                serde_json::json!({
                    "result": "applied",
                    "applied": report.applied,
                    "ignored_need_restart": report.ignored,
                }),
            ),
            Err(ReloadError::Unavailable) => (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"result": "refused", "error": ReloadError::Unavailable.to_string()}),
            ),
            Err(ReloadError::Listen(e)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                serde_json::json!({"result": "refused", "problems": [{"key": "listen", "problem": e}]}),
            ),
            Err(ReloadError::Users(e)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                serde_json::json!({"result": "refused", "problems": [{"key": "users", "problem": e}]}),
            ),
            Err(ReloadError::Config(e)) => {
                let problems: Vec<serde_json::Value> = match &e {
                    crate::config::ConfigError::Invalid(problems) => problems
                        .iter()
                        .map(|p| serde_json::json!({"key": p.path(), "problem": p.to_string()}))
                        .collect(),
                    other => vec![serde_json::json!({"problem": other.to_string()})],
                };
                (
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"result": "refused", "problems": problems}),
                )
            }
        };
        respond(status, "application/json", format!("{body}\n"))
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body)
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = respond(
        StatusCode::UNAUTHORIZED,
        "application/json",
        "{\"error\":\"this admin listener needs its admin-token: Authorization: Bearer <token>\"}\n"
            .to_owned(),
    );
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed\n".to_owned(),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}
