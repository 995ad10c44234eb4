//! One-shot control-plane requests to a cluster node.
//!
//! Discovery (`CLUSTER SHARDS`, `CLUSTER INFO`) and command-table learning (`COMMAND`) are
//! rare and their replies are structured, so they use a short-lived RESP2 connection and the
//! `redis-protocol` decoder instead of the multiplexed hot-path connections in [`crate::backend`].

use std::time::Duration;

use bytes::{Buf, BytesMut};
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;
use tokio::io::AsyncReadExt;
use tokio::time::timeout;

use crate::dns::Dns;
use crate::resp::encode::encode_command;
use crate::topology::Endpoint;
use crate::transport::Stream;

/// Why a control-plane request failed. Every variant names the node it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("connecting to {0} timed out")]
    ConnectTimeout(Endpoint),
    #[error("connecting to {endpoint} failed: {reason}")]
    Connect { endpoint: Endpoint, reason: String },
    #[error("{0} did not answer in time")]
    ReplyTimeout(Endpoint),
    #[error("i/o with {endpoint} failed: {source}")]
    Io {
        endpoint: Endpoint,
        source: std::io::Error,
    },
    #[error("{0} closed the connection before replying")]
    Closed(Endpoint),
    #[error("{endpoint} sent an unparsable reply: {reason}")]
    Protocol { endpoint: Endpoint, reason: String },
    #[error("{endpoint} answered with an error: {message}")]
    Server { endpoint: Endpoint, message: String },
}

/// Limits and credentials for one control-plane exchange.
#[derive(Clone, Debug)]
pub struct ControlTimeouts {
    pub connect: Duration,
    pub reply: Duration,
    /// Sent as `AUTH` first when the nodes require a password.
    pub auth: Option<Credentials>,
    /// Speak TLS to the nodes (`backend-tls`).
    pub tls: Option<std::sync::Arc<crate::tls::Connector>>,
}

/// How slotgate authenticates to the nodes (`backend-user`, `backend-password`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: Option<String>,
    pub password: crate::config::Secret,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password: this may end up in a log line.
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// From the config, when a backend password is set.
    pub fn from_config(config: &crate::config::Config) -> Option<Credentials> {
        config
            .backend_password
            .as_ref()
            .map(|password| Credentials {
                user: config.backend_user.clone(),
                password: password.clone(),
            })
    }

    /// `AUTH [user] password` as a command.
    pub fn auth_command(&self) -> Vec<&[u8]> {
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(user) = &self.user {
            args.push(user.as_bytes());
        }
        args.push(self.password.expose().as_bytes());
        args
    }

    /// `HELLO 3 AUTH user password` (the user is `default` when only a password is set).
    pub fn hello3_command(&self) -> Vec<&[u8]> {
        let user = self.user.as_deref().unwrap_or("default");
        vec![
            b"HELLO",
            b"3",
            b"AUTH",
            user.as_bytes(),
            self.password.expose().as_bytes(),
        ]
    }
}

/// Sends one command to `endpoint` on a fresh connection and returns its decoded reply.
/// A Redis error reply becomes [`ControlError::Server`].
pub async fn request(
    dns: &Dns,
    endpoint: &Endpoint,
    args: &[&[u8]],
    limits: ControlTimeouts,
) -> Result<OwnedFrame, ControlError> {
    let mut replies = request_many(dns, endpoint, &[args], limits).await?;
    replies
        .pop()
        .unwrap_or_else(|| Err(ControlError::Closed(endpoint.clone())))
}

/// Sends several commands in one write on a fresh connection and returns each reply in
/// order (one round trip). Each Redis error reply becomes its own [`ControlError::Server`].
pub async fn request_many(
    dns: &Dns,
    endpoint: &Endpoint,
    commands: &[&[&[u8]]],
    limits: ControlTimeouts,
) -> Result<Vec<Result<OwnedFrame, ControlError>>, ControlError> {
    let connect = crate::transport::connect(dns, endpoint, limits.tls.as_deref());
    let mut stream = timeout(limits.connect, connect)
        .await
        .map_err(|_| ControlError::ConnectTimeout(endpoint.clone()))?
        .map_err(|reason| ControlError::Connect {
            endpoint: endpoint.clone(),
            reason,
        })?;
    // Control replies are small and latency matters more than batching here.
    let _ = stream.tcp().set_nodelay(true);
    let mut out = BytesMut::new();
    if let Some(auth) = &limits.auth {
        encode_command(&mut out, &auth.auth_command());
    }
    for args in commands {
        encode_command(&mut out, args);
    }
    let exchange = async {
        stream
            .write_all_flushed(&out)
            .await
            .map_err(|source| ControlError::Io {
                endpoint: endpoint.clone(),
                source,
            })?;
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut replies = Vec::with_capacity(commands.len());
        if limits.auth.is_some()
            && let OwnedFrame::Error(message) = read_frame(&mut stream, &mut buf, endpoint).await?
        {
            // The node's own words (WRONGPASS ...) never contain the password.
            return Err(ControlError::Server {
                endpoint: endpoint.clone(),
                message: format!("authentication failed: {message}"),
            });
        }
        for _ in commands {
            let frame = read_frame(&mut stream, &mut buf, endpoint).await?;
            replies.push(match frame {
                OwnedFrame::Error(message) => Err(ControlError::Server {
                    endpoint: endpoint.clone(),
                    message,
                }),
                frame => Ok(frame),
            });
        }
        Ok(replies)
    };
    timeout(limits.reply, exchange)
        .await
        .map_err(|_| ControlError::ReplyTimeout(endpoint.clone()))?
}

/// Reads one frame, leaving any bytes after it in `buf` for the next call.
async fn read_frame(
    stream: &mut Stream,
    buf: &mut BytesMut,
    endpoint: &Endpoint,
) -> Result<OwnedFrame, ControlError> {
    loop {
        match decode(buf) {
            Ok(Some((frame, used))) => {
                buf.advance(used);
                return Ok(frame);
            }
            Ok(None) => {}
            Err(e) => {
                return Err(ControlError::Protocol {
                    endpoint: endpoint.clone(),
                    reason: e.to_string(),
                });
            }
        }
        let n = stream
            .read_buf(buf)
            .await
            .map_err(|source| ControlError::Io {
                endpoint: endpoint.clone(),
                source,
            })?;
        if n == 0 {
            return Err(ControlError::Closed(endpoint.clone()));
        }
    }
}
