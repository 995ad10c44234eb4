//! slotgate: a cluster-aware Redis proxy.
//!
//! Clients speak to slotgate as if it were one standalone Redis server. Each request is
//! scanned ([`resp::scan`]), looked up in the command table ([`commands`]), routed to the
//! node owning its hash slot ([`router`], [`topology`]) over a multiplexed backend
//! connection ([`backend`]), and its reply is handed back to the client in request order
//! ([`session`]). [`server`] wires worker threads ([`worker`]), listeners and the topology
//! refresher. [`admin`], [`metrics`], [`slowlog`], [`clients`] and [`reload`] make it
//! observable and operable (`docs/operations.md`). `docs/architecture.md` draws the whole
//! picture.

pub mod acl;
pub mod admin;
pub mod backend;
pub mod clients;
pub mod clock;
pub mod commands;
pub mod config;
pub mod connector;
pub mod control;
pub mod dns;
pub mod endpoint;
pub mod listener;
pub mod metrics;
pub mod net;
pub mod read_pool;
pub mod reads;
pub mod reload;
pub mod resp;
pub mod router;
pub mod scripts;
pub mod secret;
pub mod server;
pub mod session;
pub mod slot;
pub mod slowlog;
pub mod state;
pub mod tls;
pub mod topology;
pub mod transport;
pub mod upstream;
pub mod wake;
pub mod worker;
