//! One-shot control-plane requests to a cluster node.
//!
//! Discovery (`CLUSTER SHARDS`, `CLUSTER INFO`) and command-table learning (`COMMAND`) are
//! rare and their replies are structured, so they use a short-lived RESP2 connection (opened
//! by the same [`NodeConnector`] as the data path's) and the `redis-protocol` decoder
//! instead of the multiplexed hot-path connections in [`crate::backend`].

use bytes::{Buf, BytesMut};
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;
use tokio::io::AsyncReadExt;
use tokio::time::timeout;

use crate::connector::{ConnectError, NodeConnector};
use crate::dns::Dns;
use crate::endpoint::Endpoint;
use crate::resp::encode::{Protocol, encode_command};
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

/// Sends one command to `endpoint` on a fresh connection and returns its decoded reply.
/// A Redis error reply becomes [`ControlError::Server`].
pub async fn request(
    dns: &Dns,
    endpoint: &Endpoint,
    args: &[&[u8]],
    connector: &NodeConnector,
) -> Result<OwnedFrame, ControlError> {
    let mut replies = request_many(dns, endpoint, &[args], connector).await?;
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
    connector: &NodeConnector,
) -> Result<Vec<Result<OwnedFrame, ControlError>>, ControlError> {
    let mut stream = connector
        .open(dns, endpoint, Protocol::Resp2)
        .await
        .map_err(|e| match e {
            ConnectError::ConnectTimeout => ControlError::ConnectTimeout(endpoint.clone()),
            ConnectError::Connect(reason) | ConnectError::Handshake(reason) => {
                ControlError::Connect {
                    endpoint: endpoint.clone(),
                    reason,
                }
            }
            // The node's own words (WRONGPASS ...) never contain the password.
            ConnectError::Refused(text) => ControlError::Server {
                endpoint: endpoint.clone(),
                message: format!(
                    "authentication failed: {}",
                    text.strip_prefix('-').unwrap_or(&text)
                ),
            },
            ConnectError::HandshakeTimeout => ControlError::ReplyTimeout(endpoint.clone()),
        })?;
    // Control replies are small and latency matters more than batching here.
    let _ = stream.tcp().set_nodelay(true);
    let mut out = BytesMut::new();
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
    timeout(connector.reply_timeout, exchange)
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
