//! Every open client connection, across workers: `CLIENT LIST` and `CLIENT KILL`.
//!
//! The server registers each accepted connection ([`ClientRegistry::register`]) and keeps
//! the returned [`ClientGuard`] for the life of the session; dropping the guard removes
//! the entry. The map is sharded by worker, so registering takes only the accepting
//! worker's mutex, once per connection. While a client runs, its session updates its
//! [`ClientEntry`] with relaxed atomic stores ([`ClientEntry::touch`] per command: no lock,
//! no allocation); names and library info change rarely and are swapped whole.
//!
//! `CLIENT KILL` fires the entry's [`ClientEntry::kill_token`]; the server's task for that
//! connection drops the session at once, which closes its socket.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use rustc_hash::FxHashMap;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::CommandId;

/// No command seen yet (`cmd=NULL` in `CLIENT LIST`).
const NO_COMMAND: u16 = u16::MAX;

/// One worker's clients, by id.
type Shard = Mutex<FxHashMap<u64, Arc<ClientEntry>>>;

/// The registry; see the module docs.
#[derive(Debug)]
pub struct ClientRegistry {
    shards: Box<[Shard]>,
}

/// One client connection as `CLIENT LIST` shows it.
#[derive(Debug)]
pub struct ClientEntry {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The listener it connected to (`CLIENT LIST` on a listener shows its own clients).
    pub listener: Arc<str>,
    pub connected_at: Instant,
    /// Milliseconds after `connected_at` of the last command.
    last_active_ms: AtomicU64,
    last_command: AtomicU16,
    /// RESP version, 2 or 3.
    protocol: AtomicU8,
    name: ArcSwapOption<Bytes>,
    lib_name: ArcSwapOption<Bytes>,
    lib_ver: ArcSwapOption<Bytes>,
    kill: CancellationToken,
    /// Buffered bytes as the session last reported them ([`ClientEntry::set_buffers`]).
    qbuf: AtomicU64,
    omem: AtomicU64,
    tot_mem: AtomicU64,
}

/// Keeps a connection registered; dropping it unregisters.
#[derive(Debug)]
pub struct ClientGuard {
    registry: Arc<ClientRegistry>,
    shard: usize,
    entry: Arc<ClientEntry>,
}

impl ClientRegistry {
    /// A registry with one shard per worker thread.
    pub fn new(workers: usize) -> Self {
        Self {
            shards: (0..workers.max(1)).map(|_| Mutex::default()).collect(),
        }
    }

    /// Registers connection `id` accepted by worker `worker`.
    pub fn register(
        self: &Arc<Self>,
        worker: usize,
        id: u64,
        peer: SocketAddr,
        local: SocketAddr,
        listener: Arc<str>,
    ) -> ClientGuard {
        let entry = Arc::new(ClientEntry {
            id,
            peer,
            local,
            listener,
            connected_at: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            qbuf: AtomicU64::new(0),
            omem: AtomicU64::new(0),
            tot_mem: AtomicU64::new(0),
            last_command: AtomicU16::new(NO_COMMAND),
            protocol: AtomicU8::new(2),
            name: ArcSwapOption::empty(),
            lib_name: ArcSwapOption::empty(),
            lib_ver: ArcSwapOption::empty(),
            kill: CancellationToken::new(),
        });
        let shard = worker % self.shards.len();
        lock(&self.shards[shard]).insert(id, entry.clone());
        ClientGuard {
            registry: self.clone(),
            shard,
            entry,
        }
    }

    /// The entry of connection `id`, if it is open.
    pub fn get(&self, id: u64) -> Option<Arc<ClientEntry>> {
        self.shards
            .iter()
            .find_map(|shard| lock(shard).get(&id).cloned())
    }

    /// Every open connection, by id.
    pub fn all(&self) -> Vec<Arc<ClientEntry>> {
        let mut all: Vec<Arc<ClientEntry>> = self
            .shards
            .iter()
            .flat_map(|shard| lock(shard).values().cloned().collect::<Vec<_>>())
            .collect();
        all.sort_by_key(|e| e.id);
        all
    }

    /// Number of registered connections.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ClientGuard {
    pub fn entry(&self) -> &Arc<ClientEntry> {
        &self.entry
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        lock(&self.registry.shards[self.shard]).remove(&self.entry.id);
    }
}

impl ClientEntry {
    /// Records what the session holds for the client (`CLIENT LIST` `qbuf`, `omem`,
    /// `tot-mem`): request bytes read but not yet scanned, reply bytes being written, and
    /// their sum with the requests in flight. Relaxed stores by the client's own session.
    #[inline]
    pub fn set_buffers(&self, qbuf: usize, omem: usize, total: usize) {
        self.qbuf.store(qbuf as u64, Ordering::Relaxed);
        self.omem.store(omem as u64, Ordering::Relaxed);
        self.tot_mem.store(total as u64, Ordering::Relaxed);
    }

    /// Records that the client sent command `command` at `now`. Called by the client's
    /// own session, once per command: two relaxed stores.
    #[inline]
    pub fn touch(&self, command: CommandId, now: Instant) {
        let ms = now.saturating_duration_since(self.connected_at).as_millis() as u64;
        self.last_active_ms.store(ms, Ordering::Relaxed);
        self.last_command.store(command.0, Ordering::Relaxed);
    }

    pub fn set_name(&self, name: Option<&[u8]>) {
        self.name
            .store(name.map(|n| Arc::new(Bytes::copy_from_slice(n))));
    }

    pub fn set_lib_name(&self, value: Option<&[u8]>) {
        self.lib_name
            .store(value.map(|n| Arc::new(Bytes::copy_from_slice(n))));
    }

    pub fn set_lib_ver(&self, value: Option<&[u8]>) {
        self.lib_ver
            .store(value.map(|n| Arc::new(Bytes::copy_from_slice(n))));
    }

    /// The RESP version the client speaks (2 or 3).
    pub fn set_protocol(&self, version: u8) {
        self.protocol.store(version, Ordering::Relaxed);
    }

    pub fn name(&self) -> Option<Bytes> {
        self.name.load_full().map(|n| (*n).clone())
    }

    /// The last command's name, `None` before the first.
    pub fn last_command(&self) -> Option<CommandId> {
        match self.last_command.load(Ordering::Relaxed) {
            NO_COMMAND => None,
            id => Some(CommandId(id)),
        }
    }

    /// Fired by `CLIENT KILL`. The connection's task closes it.
    pub fn kill_token(&self) -> &CancellationToken {
        &self.kill
    }

    pub fn kill(&self) {
        self.kill.cancel();
    }

    /// Seconds since the connection opened, at `now`.
    pub fn age(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.connected_at).as_secs()
    }

    /// Seconds since the last command (or the connection) at `now`.
    pub fn idle(&self, now: Instant) -> u64 {
        let active = self.last_active_ms.load(Ordering::Relaxed);
        let age_ms = now.saturating_duration_since(self.connected_at).as_millis() as u64;
        age_ms.saturating_sub(active) / 1000
    }

    /// This client's `CLIENT LIST` line (with the trailing newline). `cmd` overrides the
    /// last command's name (Redis shows `client|list` for the caller itself).
    pub fn line(&self, now: Instant, cmd: Option<&str>) -> String {
        let load = |value: &ArcSwapOption<Bytes>| value.load_full();
        let name = load(&self.name);
        let lib_name = load(&self.lib_name);
        let lib_ver = load(&self.lib_ver);
        let last = self.last_command().map(CommandId::name);
        ClientLine {
            id: self.id,
            addr: self.peer,
            laddr: self.local,
            name: name.as_deref().map_or(&[][..], |b| b.as_ref()),
            age: self.age(now),
            idle: self.idle(now),
            cmd: cmd.or(last).unwrap_or("NULL"),
            resp: self.protocol.load(Ordering::Relaxed),
            lib_name: lib_name.as_deref().map_or(&[][..], |b| b.as_ref()),
            lib_ver: lib_ver.as_deref().map_or(&[][..], |b| b.as_ref()),
            qbuf: self.qbuf.load(Ordering::Relaxed),
            omem: self.omem.load(Ordering::Relaxed),
            tot_mem: self.tot_mem.load(Ordering::Relaxed),
        }
        .format()
    }
}

/// The fields slotgate knows of a client line; the rest are Redis's neutral values.
#[derive(Debug)]
pub struct ClientLine<'a> {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub name: &'a [u8],
    pub age: u64,
    pub idle: u64,
    pub cmd: &'a str,
    pub resp: u8,
    pub lib_name: &'a [u8],
    pub lib_ver: &'a [u8],
    /// Bytes held for the client (see [`ClientEntry::set_buffers`]).
    pub qbuf: u64,
    pub omem: u64,
    pub tot_mem: u64,
}

impl ClientLine<'_> {
    /// One line in Redis 7's `CLIENT LIST` / `CLIENT INFO` format, newline included.
    pub fn format(&self) -> String {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        format!(
            "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}\n",
            self.id,
            self.addr,
            self.laddr,
            text(self.name),
            self.age,
            self.idle,
            self.qbuf,
            self.omem,
            self.tot_mem,
            self.cmd,
            self.resp,
            text(self.lib_name),
            text(self.lib_ver),
        )
    }
}

/// A poisoned registry mutex still holds a valid map.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::command_id;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn register_list_and_unregister() {
        let registry = Arc::new(ClientRegistry::new(2));
        let a = registry.register(0, 7, addr(1000), addr(6380), "default".into());
        let b = registry.register(1, 3, addr(1001), addr(6380), "default".into());
        assert_eq!(registry.len(), 2);
        let ids: Vec<u64> = registry.all().iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![3, 7]);
        assert!(registry.get(7).is_some());

        let start = a.entry().connected_at;
        let at = |secs| start + std::time::Duration::from_secs(secs);
        a.entry().touch(command_id("get"), at(5));
        a.entry().set_name(Some(b"worker-a"));
        a.entry().set_protocol(3);
        let line = a.entry().line(at(7), None);
        assert!(
            line.starts_with(
                "id=7 addr=127.0.0.1:1000 laddr=127.0.0.1:6380 fd=-1 name=worker-a age=7 idle=2 "
            ),
            "{line}"
        );
        assert!(line.contains(" cmd=get "), "{line}");
        assert!(line.contains(" resp=3 "), "{line}");
        assert!(line.ends_with("lib-name= lib-ver=\n"), "{line}");
        let fresh = b.entry().line(
            b.entry().connected_at + std::time::Duration::from_secs(7),
            None,
        );
        assert!(fresh.contains(" cmd=NULL "), "{fresh}");
        assert!(fresh.contains(" idle=7 "), "{fresh}");
        let own = a.entry().line(at(7), Some("client|list"));
        assert!(own.contains(" cmd=client|list "), "{own}");

        let token = a.entry().kill_token().clone();
        registry.get(7).unwrap().kill();
        assert!(token.is_cancelled());

        drop(a);
        assert_eq!(registry.len(), 1);
        assert!(registry.get(7).is_none());
        drop(b);
        assert!(registry.is_empty());
    }
}
