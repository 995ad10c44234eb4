//! Opening a connection to a node: the one handshake every connection slotgate makes to a
//! backend node goes through, data path ([`crate::backend`]) and control plane
//! ([`crate::control`]) alike.
//!
//! ```text
//! NodeConnector::open(dns, endpoint, protocol)
//!   transport::connect        TCP, or TLS verified against Endpoint::tls_name   (connect timeout)
//!   handshake                 RESP3: HELLO 3 [AUTH user pass]; RESP2: AUTH [user] pass,
//!                             or nothing without credentials                    (reply timeout)
//!                             then READONLY on a cluster replica read connection
//!   -> transport::Stream, ready for commands
//! ```
//!
//! The settings come from the backend's config (`backend-connect-timeout`,
//! `backend-reply-timeout`, `backend-user`/`backend-password`, `backend-tls`); whoever owns
//! the backend builds a new `NodeConnector` when a reload changes them, and every new
//! connection takes the one in force.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::time::timeout;

use crate::dns::Dns;
use crate::endpoint::Endpoint;
use crate::resp::encode::{Protocol, encode_command};
use crate::resp::walk::{ReplyKind, ReplyWalker};
use crate::secret::Secret;
use crate::transport::Stream;

/// How slotgate authenticates to the nodes (`backend-user`, `backend-password`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: Option<String>,
    pub password: Secret,
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

/// Everything needed to open a connection to a node of one backend and make it ready for
/// commands; see the module docs.
#[derive(Clone, Debug)]
pub struct NodeConnector {
    pub connect_timeout: Duration,
    /// Bounds the handshake; connections time their replies with it too
    /// (`backend-reply-timeout`).
    pub reply_timeout: Duration,
    /// Sent in the handshake when the nodes require a password.
    pub auth: Option<Credentials>,
    /// Speak TLS to the nodes (`backend-tls`).
    pub tls: Option<Arc<crate::tls::Connector>>,
    /// Reply limits for the connections' reply walkers: nesting depth and bulk length.
    pub max_reply_depth: usize,
    pub max_bulk_len: usize,
    /// Send `READONLY` after the handshake: a cluster replica then serves reads of its
    /// primary's slots instead of redirecting them ([`crate::reads`]).
    pub readonly: bool,
}

/// Why a connection could not be opened. The node is the caller's to name.
#[derive(Debug)]
pub enum ConnectError {
    /// TCP (or the TLS handshake) did not complete within the connect timeout.
    ConnectTimeout,
    /// TCP or TLS failed: refused, unreachable, certificate rejected ...
    Connect(String),
    /// The node refused the handshake; its error reply, trimmed (`-WRONGPASS ...`).
    Refused(String),
    /// The handshake did not complete within the reply timeout.
    HandshakeTimeout,
    /// I/O failed or the reply was malformed during the handshake.
    Handshake(String),
}

impl NodeConnector {
    /// A connection to `endpoint` speaking `protocol`, authenticated, ready for commands.
    pub async fn open(
        &self,
        dns: &Dns,
        endpoint: &Endpoint,
        protocol: Protocol,
    ) -> Result<Stream, ConnectError> {
        let attempt = crate::transport::connect(dns, endpoint, self.tls.as_deref());
        let mut stream = timeout(self.connect_timeout, attempt)
            .await
            .map_err(|_| ConnectError::ConnectTimeout)?
            .map_err(ConnectError::Connect)?;
        // Replies must reach RESP3 clients untouched, so such a connection speaks RESP3;
        // credentials (taken from the connector in force, so a reload rotates them)
        // travel in the same handshake.
        let command = match (protocol, &self.auth) {
            (Protocol::Resp3, Some(auth)) => Some(auth.hello3_command()),
            (Protocol::Resp3, None) => Some(vec![&b"HELLO"[..], b"3"]),
            (Protocol::Resp2, Some(auth)) => Some(auth.auth_command()),
            (Protocol::Resp2, None) => None,
        };
        if let Some(command) = command {
            timeout(self.reply_timeout, self.handshake(&mut stream, &command))
                .await
                .map_err(|_| ConnectError::HandshakeTimeout)??;
        }
        if self.readonly {
            timeout(
                self.reply_timeout,
                self.handshake(&mut stream, &[b"READONLY"]),
            )
            .await
            .map_err(|_| ConnectError::HandshakeTimeout)??;
        }
        Ok(stream)
    }

    /// Sends one command before the connection is used and checks it did not fail.
    async fn handshake(&self, stream: &mut Stream, command: &[&[u8]]) -> Result<(), ConnectError> {
        let mut out = BytesMut::new();
        encode_command(&mut out, command);
        stream
            .write_all_flushed(&out)
            .await
            .map_err(|e| ConnectError::Handshake(e.to_string()))?;
        let mut buf = BytesMut::with_capacity(1024);
        let mut walker =
            ReplyWalker::new(self.max_reply_depth).with_max_bulk_len(self.max_bulk_len);
        loop {
            if stream
                .read_buf(&mut buf)
                .await
                .map_err(|e| ConnectError::Handshake(e.to_string()))?
                == 0
            {
                return Err(ConnectError::Handshake("closed during handshake".into()));
            }
            match walker.walk(&buf) {
                Ok(Some(w)) if matches!(w.kind, ReplyKind::Error | ReplyKind::BlobError) => {
                    let text = String::from_utf8_lossy(&buf[..w.len]).trim().to_owned();
                    return Err(ConnectError::Refused(text));
                }
                Ok(Some(_)) => return Ok(()),
                Ok(None) => {}
                Err(e) => return Err(ConnectError::Handshake(format!("handshake reply: {e}"))),
            }
        }
    }
}
