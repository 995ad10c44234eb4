//! One-shot control-plane requests to a cluster node.
//!
//! Discovery (`CLUSTER SHARDS`, `CLUSTER SLOTS`) and command-table learning (`COMMAND`) are
//! rare and their replies are structured, so they use a short-lived RESP2 connection and the
//! `redis-protocol` decoder instead of the multiplexed hot-path connections in [`crate::backend`].

use std::time::Duration;

use bytes::BytesMut;
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::resp::encode::encode_command;
use crate::topology::Endpoint;

/// Why a control-plane request failed. Every variant names the node it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("connecting to {0} timed out")]
    ConnectTimeout(Endpoint),
    #[error("connecting to {endpoint} failed: {source}")]
    Connect {
        endpoint: Endpoint,
        source: std::io::Error,
    },
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

/// Limits for one control-plane exchange.
#[derive(Clone, Copy, Debug)]
pub struct ControlTimeouts {
    pub connect: Duration,
    pub reply: Duration,
}

/// Sends one command to `endpoint` on a fresh connection and returns its decoded reply.
/// A Redis error reply becomes [`ControlError::Server`].
pub async fn request(
    endpoint: &Endpoint,
    args: &[&[u8]],
    limits: ControlTimeouts,
) -> Result<OwnedFrame, ControlError> {
    let mut stream = connect(endpoint, limits.connect).await?;
    let mut out = BytesMut::new();
    encode_command(&mut out, args);
    let exchange = async {
        stream
            .write_all(&out)
            .await
            .map_err(|source| ControlError::Io {
                endpoint: endpoint.clone(),
                source,
            })?;
        read_frame(&mut stream, endpoint).await
    };
    let frame = timeout(limits.reply, exchange)
        .await
        .map_err(|_| ControlError::ReplyTimeout(endpoint.clone()))??;
    match frame {
        OwnedFrame::Error(message) => Err(ControlError::Server {
            endpoint: endpoint.clone(),
            message,
        }),
        frame => Ok(frame),
    }
}

async fn connect(endpoint: &Endpoint, limit: Duration) -> Result<TcpStream, ControlError> {
    let attempt = TcpStream::connect((&*endpoint.host, endpoint.port));
    let stream = timeout(limit, attempt)
        .await
        .map_err(|_| ControlError::ConnectTimeout(endpoint.clone()))?
        .map_err(|source| ControlError::Connect {
            endpoint: endpoint.clone(),
            source,
        })?;
    // Control replies are small and latency matters more than batching here.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

async fn read_frame(
    stream: &mut TcpStream,
    endpoint: &Endpoint,
) -> Result<OwnedFrame, ControlError> {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        match decode(&buf) {
            Ok(Some((frame, _))) => return Ok(frame),
            Ok(None) => {}
            Err(e) => {
                return Err(ControlError::Protocol {
                    endpoint: endpoint.clone(),
                    reason: e.to_string(),
                });
            }
        }
        let n = stream
            .read_buf(&mut buf)
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
