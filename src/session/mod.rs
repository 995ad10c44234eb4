//! One client connection, from its first byte to its close.
//!
//! The session reads requests ([`RequestScanner`]), routes each ([`crate::router`]),
//! answers local ones at once and forwards the rest to a backend, recording every request
//! in its [`ReplyQueue`] so replies go back in request order. It follows `MOVED` and `ASK`,
//! retries requests that surely did not run, and turns failures into clear errors. Reading
//! pauses while `max-inflight-per-client` requests are unanswered (backpressure), and an
//! idle connection holds no buffers.

mod config_get;
mod db;
mod local;
mod pubsub;
pub mod queue;
mod reads;
pub mod scan_cursor;
mod split;
mod tx;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::time::{Instant, sleep_until};
use tracing::{debug, warn};

use local::After;
pub use local::{COMPAT_REDIS_VERSION, ClientState};
use queue::{Channel, Entry, EntryState, ReplyQueue, Target};

use crate::backend::{Failure, Mode, NodeConn, Outcome, ReplySink, Request};
use crate::commands::CommandTable;
use crate::config::OutputLimit;
use crate::endpoint::Endpoint;
use crate::listener::Listener;
use crate::metrics::{CommandId, CommandOutcome, WorkerStats};
use crate::reads::choose::ReadRequest;
use crate::resp::ArgView;
use crate::resp::encode;
use crate::resp::scan::{RequestScanner, ScanLimits, Scanned};
use crate::router::{Local, ReadIntent, Route, route_one_shard, route_with_id};
use crate::transport::Stream;
use crate::upstream::{self, ReadResolved, Use, WorkerUpstream};
use crate::worker::Worker;
use tokio_util::sync::CancellationToken;

/// While draining, a client with nothing pending is closed after this long without a byte.
/// Well above TCP's minimum retransmission and zero-window probe timer (200 ms on Linux):
/// bytes a client has already written can wait that long in its kernel after our receive
/// window was full (backpressure), and closing before they arrive would drop commands the
/// client believes sent (`tests/ops_drain.rs` lost 1,538 of 20,000 that way at 200 ms).
const DRAIN_QUIET: Duration = Duration::from_secs(1);
/// The read size of a new or idle client.
const MIN_READ: usize = 4 * 1024;
/// The largest single read, reached by clients that keep the buffer full.
const MAX_READ: usize = 64 * 1024;
/// Buffers above this size are released once empty, so one large request does not pin
/// memory for the connection's lifetime.
const KEEP_BUFFER: usize = 64 * 1024;
/// Replies above this size are written uncopied.
const COPY_LIMIT: usize = 16 * 1024;
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// What a session is bound to for its whole life: the listener the client connected to
/// (its limits, users, announce address), that listener's upstream on this thread (every
/// request of the session is served there) and the token that fires when the listener is
/// removed or the process drains.
pub struct Bound {
    pub listener: Arc<Listener>,
    pub upstream: Rc<WorkerUpstream>,
    pub stop: CancellationToken,
}

/// Serves one client until it disconnects, sends QUIT or breaks the protocol.
pub async fn serve(
    mut stream: Stream,
    peer: SocketAddr,
    worker: Rc<Worker>,
    bound: Bound,
    id: u64,
) {
    let Bound {
        listener,
        upstream,
        stop,
    } = bound;
    let _ = stream.tcp().set_nodelay(true);
    let local = stream.tcp().local_addr().unwrap_or(peer);
    let config = listener.config();
    let limits = ScanLimits {
        max_bulk_len: config.proto_max_bulk_len,
        max_args: config.max_request_args,
        ..ScanLimits::default()
    };
    // Read before the users, so a reload in between is seen at the first request.
    let users_epoch = listener.users_epoch();
    // The shape decides the semantics once per session, not once per request.
    let one_shard = upstream.upstream.shape.is_one_shard();
    let router: Router = if one_shard {
        route_one_shard
    } else {
        route_with_id
    };
    let mut session = Session {
        users_epoch,
        router,
        one_shard,
        db: RefCell::default(),
        data_channel: Cell::new(Channel::Shared),
        queue: Rc::new(ReplyQueue::default()),
        client: ClientState {
            id,
            protocol: encode::Protocol::Resp2,
            name: None,
            lib_name: None,
            lib_ver: None,
            peer,
            local,
            connected_at: Instant::now(),
            user: listener.users.load().default_user(),
            reads_from_primary: false,
        },
        scanner: RequestScanner::new(limits),
        args: Vec::new(),
        read_buf: BytesMut::new(),
        write_buf: BytesMut::new(),
        chunks: Vec::new(),
        attention: Vec::new(),
        due: Vec::new(),
        tx: None,
        pinned: None,
        subs: pubsub::Subscriptions::default(),
        dedicated: RefCell::default(),
        reading: true,
        closing: false,
        me: worker.state.client_list.get(id),
        buffered_reported: 0,
        last_slot: None,
        write_marks: RefCell::default(),
        key_scratch: RefCell::default(),
        backlog: false,
        read_hint: MIN_READ,
        over_soft_limit_since: None,
        worker,
        up: upstream,
        listener,
        stop,
    };
    if let Err(e) = session.run(&mut stream).await {
        debug!(client = id, %peer, error = %e, "client connection ended with an error");
    }
}

impl Drop for Session {
    /// Runs however the session ends, `CLIENT KILL` (the task dropped) included:
    /// blocked commands, watches and subscriptions die with their client, as on a direct
    /// connection, and late replies are discarded.
    fn drop(&mut self) {
        self.queue.close();
        for backend in self.dedicated.borrow().iter() {
            backend.close();
        }
        if let Some(pinned) = self.pinned.take() {
            pinned.backend.close();
        }
        self.close_db();
        self.subs.close_all();
        self.worker
            .stats
            .metrics
            .update_buffered(&mut self.buffered_reported, 0);
    }
}

/// Decides where a request goes: [`route_with_id`] for a cluster, [`route_one_shard`] for
/// a backend of one shard.
type Router = fn(&CommandTable, &ArgView<'_>) -> (Route, CommandId, ReadIntent);

struct Session {
    worker: Rc<Worker>,
    /// The router of the upstream's shape.
    router: Router,
    /// The upstream is one shard owning every slot (Sentinel, standalone).
    one_shard: bool,
    /// The database selected with `SELECT` (one-shard backends only; [`db`]).
    db: RefCell<Option<db::Database>>,
    /// Where requests that need no connection of their own go: the shared connections,
    /// or the selected database's ([`Channel::Db`]).
    data_channel: Cell<Channel>,
    /// This worker's side of the session's upstream: its topology, command table and
    /// connections. Every request resolves its node through it.
    up: Rc<WorkerUpstream>,
    queue: Rc<ReplyQueue>,
    client: ClientState,
    scanner: RequestScanner,
    args: Vec<Range<u32>>,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// Reply bytes to write, in order (reused between flushes).
    chunks: Vec<Bytes>,
    attention: Vec<(u64, Outcome)>,
    due: Vec<u64>,
    /// False once the client closed its side, broke the protocol or sent QUIT.
    reading: bool,
    /// True once a final reply was written: the connection closes now.
    closing: bool,
    /// The transaction being queued, between MULTI and EXEC/DISCARD.
    tx: Option<tx::Transaction>,
    /// The connection WATCH pinned, until EXEC, DISCARD or UNWATCH.
    pinned: Option<tx::Pinned>,
    /// Subscription connections and what they carry.
    subs: pubsub::Subscriptions,
    /// Single-use connections of blocking commands still running.
    dedicated: RefCell<Vec<Rc<NodeConn>>>,
    /// This client in the process-wide registry (`CLIENT LIST`).
    me: Option<std::sync::Arc<crate::clients::ClientEntry>>,
    /// The read buffer holds requests not yet dispatched for want of room in flight.
    backlog: bool,
    /// Key positions of the current request, for permission checks (reused).
    key_scratch: RefCell<Vec<usize>>,
    /// Read-your-writes: this client's writes not yet known to be on the replicas.
    write_marks: reads::Marks,
    /// The slot of the last keyed command: where `WAIT` looks for this client's writes.
    last_slot: Option<u16>,
    /// What this session last added to the buffered-bytes gauge.
    buffered_reported: usize,
    /// How much to read next: grows while reads fill the buffer, back to [`MIN_READ`]
    /// when the client goes idle.
    read_hint: usize,
    /// Since when the unread output has been over the soft `client-output-buffer-limit`.
    over_soft_limit_since: Option<Instant>,
    /// [`Listener::users_epoch`] when `client.user` was last looked up.
    users_epoch: u64,
    /// The listener the client connected to: its limits and users.
    listener: Arc<Listener>,
    /// Fires when that listener is removed or the process drains: the session drains.
    stop: CancellationToken,
}

impl Session {
    /// Disconnects a client that leaves more replies unread than its class allows, as
    /// Redis does (it logs the same event).
    fn output_limit_reached(&mut self, class: &str) {
        WorkerStats::bump(&self.worker.stats.output_limit_disconnects);
        warn!(
            client = self.client.id,
            peer = %self.client.peer,
            class,
            "client reads too slowly: client-output-buffer-limit reached; disconnecting"
        );
        self.reading = false;
        self.closing = true;
    }

    async fn run(&mut self, stream: &mut Stream) -> std::io::Result<()> {
        let idle_timeout = self.listener.config().timeout;
        let max_inflight = self.listener.config().max_inflight_per_client;
        let mut last_activity = Instant::now();
        // Stands in for the deadline of a disabled select branch (never polled), so the
        // loop does not read the clock three times per turn.
        let never = last_activity + Duration::from_secs(86_400 * 365);
        let draining = self.stop.clone();
        // Read once, then kept by the select branch below: a token check takes a lock.
        let mut drain_started = draining.is_cancelled();
        let mut drain_quiet_since: Option<Instant> = None;
        loop {
            self.process_requests();
            self.settle_attention();
            self.handle_pushes();
            self.resubscribe_due();
            self.flush(stream).await?;
            self.report_buffers(0);
            let mut drain_deadline = None;
            if drain_started && self.reading && self.queue.is_empty() {
                // Draining: answer what the client already sent, then close once it has
                // been quiet for a moment (bytes still in flight on the network count as
                // sent).
                self.read_buf.reserve(self.read_hint);
                match stream.read_now(&mut self.read_buf).await? {
                    Some(0) => return Ok(()),
                    Some(_) => {
                        drain_quiet_since = None;
                        continue;
                    }
                    None => {
                        let since = *drain_quiet_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= DRAIN_QUIET {
                            self.reading = false;
                        } else {
                            drain_deadline = Some(since + DRAIN_QUIET);
                        }
                    }
                }
            }
            if self.closing || (!self.reading && self.queue.is_empty()) {
                return Ok(());
            }
            if !self.subs.out.is_empty() && self.queue.is_empty() {
                // More relayed frames than one flush writes: keep writing.
                continue;
            }
            if self.backlog && self.reading && self.queue.len() < max_inflight {
                // The flush made room in flight for requests still waiting in the buffer:
                // dispatch them now (no further outcome may come to wake this session).
                continue;
            }
            // Backpressure: no new bytes while complete requests wait for room in flight.
            let can_read = self.reading && self.queue.len() < max_inflight && !self.backlog;
            let waiting_on_us = !self.queue.is_empty() || !self.subs.out.is_empty();
            let idle = !waiting_on_us && self.read_buf.is_empty();
            if self.read_buf.is_empty() && !self.backlog && self.read_buf.capacity() > 0 {
                // Nothing left to scan: 10k idle clients must hold (almost) no buffer.
                stream.release_read_buf(&mut self.read_buf, &self.worker.reads, idle, MIN_READ);
            }
            if idle {
                self.read_hint = MIN_READ;
            }
            let next_retry = self.queue.next_retry();
            // Subscribers are never idle: they wait for messages, as in Redis.
            // Like Redis, a client that stopped mid-request is idle too: otherwise one byte
            // per connection would hold `maxclients` slots forever.
            let idle_deadline = (!waiting_on_us && !idle_timeout.is_zero() && !self.subs.active())
                .then(|| last_activity + idle_timeout);
            let resubscribe_at = self.subs.resubscribe_at();
            let wake_at = [drain_deadline, next_retry, resubscribe_at, idle_deadline]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                biased;
                read = stream.read_some(&mut self.read_buf, self.read_hint, &self.worker.reads), if can_read => {
                    match read? {
                        // The client left: like Redis, drop what it still waits for (a
                        // blocked command must not take data nobody will read).
                        (0, _) => return Ok(()),
                        (n, filled) => {
                            self.worker.stats.metrics.record_client_read(n);
                            // Draining: the quiet period starts again after every byte.
                            drain_quiet_since = None;
                            if filled {
                                // The client sends faster than we read: read more at once.
                                self.read_hint = (self.read_hint * 2).min(MAX_READ);
                            }
                            if !idle_timeout.is_zero() {
                                last_activity = Instant::now();
                            }
                        }
                    }
                }
                _ = self.queue.changed() => {}
                () = draining.cancelled(), if !drain_started => drain_started = true,
                // One timer for every deadline (a retry, a re-subscription, the drain's quiet
                // period, the idle timeout): each is re-checked where it is handled.
                _ = sleep_until(wake_at.unwrap_or(never)), if wake_at.is_some() => {
                    let now = Instant::now();
                    if next_retry.is_some_and(|at| at <= now) {
                        self.run_due_retries();
                    }
                    if idle_deadline.is_some_and(|at| at <= now) {
                        debug!(client = self.client.id, "closing idle client");
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Scans and dispatches every complete request in the read buffer, up to the
    /// in-flight limit.
    fn process_requests(&mut self) {
        if self.read_buf.is_empty() || !self.reading {
            return;
        }
        let config = self.listener.config();
        // One clock read per batch of requests: their latency starts here.
        let read_at = Instant::now();
        let max_inflight = config.max_inflight_per_client;
        let query_limit = config.client_query_buffer_limit;
        self.backlog = false;
        while self.reading && !self.read_buf.is_empty() {
            if self.queue.len() >= max_inflight {
                // Requests stay unread in the buffer until replies make room.
                self.backlog = true;
                return;
            }
            let frame = match self.scanner.scan(&self.read_buf, &mut self.args) {
                Ok(None) => {
                    if self.read_buf.len() > query_limit {
                        self.protocol_error("Protocol error: query buffer limit exceeded (client-query-buffer-limit)");
                    }
                    return;
                }
                Ok(Some(Scanned::Empty { len })) => {
                    self.read_buf.advance(len);
                    continue;
                }
                Ok(Some(Scanned::Request { len })) => self.read_buf.split_to(len).freeze(),
                Ok(Some(Scanned::Inline { len, frame })) => {
                    self.read_buf.advance(len);
                    frame
                }
                Err(e) => {
                    self.protocol_error(e.message());
                    return;
                }
            };
            self.handle(frame, read_at);
        }
    }

    /// Answers with `-ERR message`, then closes, as Redis does on a protocol error.
    fn protocol_error(&mut self, message: &str) {
        WorkerStats::bump(&self.worker.stats.protocol_errors);
        let mut out = BytesMut::new();
        encode::error(&mut out, &format!("ERR {message}"));
        let mut entry = Entry::ready(out.freeze(), true);
        entry.outcome = Some(CommandOutcome::Rejected);
        self.queue.push(entry);
        self.reading = false;
        self.read_buf = BytesMut::new();
    }

    /// Routes one request and either answers it or sends it on.
    fn handle(&mut self, frame: Bytes, read_at: Instant) {
        WorkerStats::bump(&self.worker.stats.commands);
        if !self.recheck_user() {
            return;
        }
        let args = ArgView::new(&frame, &self.args);
        let router = self.router;
        let (route, command, intent) = self.up.with_commands(|table| router(table, &args));
        self.queue.stamp(command, read_at);
        let route = match self.access(route, &args) {
            Ok(route) => route,
            Err(message) => {
                WorkerStats::bump(&self.worker.stats.commands_rejected);
                return self.reply_rejected(&message);
            }
        };
        if let Some(me) = &self.me {
            me.touch(command, read_at);
        }
        if self.client.protocol == encode::Protocol::Resp2
            && self.subs.active()
            && !matches!(
                route,
                Route::PubSub(_) | Route::Local(Local::Ping | Local::Quit | Local::Reset)
            )
        {
            // RESP2 has no room for other replies in a subscription stream.
            let name = String::from_utf8_lossy(args.get(0).unwrap_or_default()).to_lowercase();
            return self.reply_rejected(&format!(
                "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
            ));
        }
        if self.tx.is_some() && !matches!(route, Route::Transaction(_)) {
            self.queue_in_transaction(frame, route);
            return;
        }
        let target = match route {
            Route::Slot(slot) => Target::Slot(slot),
            Route::AnyPrimary => Target::AnyPrimary,
            Route::Local(Local::Ping)
                if self.client.protocol == encode::Protocol::Resp2 && self.subs.active() =>
            {
                // A subscribed RESP2 client's PING is answered in the subscription stream.
                if let Some(global) = self.subs_global() {
                    return self.send_push(&global, frame);
                }
                Target::AnyPrimary
            }
            Route::Local(Local::Info) if local::info_wants_keyspace(&args) => {
                // slotgate's sections, then the keyspace summed over every primary.
                WorkerStats::bump(&self.worker.stats.commands_local);
                let text = local::info_text(&args, &self.worker.state, &self.listener);
                let merge = crate::router::Merge::InfoWithKeyspace {
                    local: Bytes::from(text),
                };
                let mut request = BytesMut::new();
                encode::encode_command(&mut request, &[b"INFO", b"keyspace"]);
                return self.fanout(request.freeze(), merge, ReadIntent::Primary);
            }
            Route::Local(Local::Select) if self.one_shard && self.select_db(&frame, &args) => {
                return;
            }
            Route::Local(cmd) => {
                WorkerStats::bump(&self.worker.stats.commands_local);
                if cmd == Local::Reset {
                    self.leave_db();
                    // RESET leaves transactions, watches and subscriptions, as in Redis.
                    self.tx = None;
                    if let Some(pinned) = self.pinned.take() {
                        pinned.backend.close_when_idle();
                    }
                    self.subs.close_all();
                }
                let mut out = BytesMut::new();
                let after = local::execute(
                    cmd,
                    &args,
                    &mut self.client,
                    &self.worker.state,
                    &self.listener,
                    &mut out,
                );
                if after == After::Close {
                    self.reading = false;
                }
                self.queue
                    .push(Entry::ready(out.freeze(), after == After::Close));
                return;
            }
            Route::Error(message) => {
                WorkerStats::bump(&self.worker.stats.commands_rejected);
                self.reply_rejected(&message);
                return;
            }
            Route::Split(kind) => return self.split(&frame, kind, intent),
            Route::Fanout(merge) => {
                if args
                    .get(0)
                    .is_some_and(|n| n.eq_ignore_ascii_case(b"script"))
                    && let Some(sub) = args.get(1)
                {
                    if sub.eq_ignore_ascii_case(b"load")
                        && let Some(body) = args.get(2)
                    {
                        self.up.upstream.scripts.remember(body);
                    } else if sub.eq_ignore_ascii_case(b"flush") {
                        self.up.upstream.scripts.clear();
                    }
                }
                return self.fanout(frame, merge, intent);
            }
            Route::Scan => return self.scan(&frame),
            Route::Blocking(None) => return self.wait(frame),
            Route::Blocking(slot) => {
                let target = slot.map_or(Target::AnyPrimary, Target::Slot);
                // Held for as long as the command blocks: a copy of its own, so it does not
                // pin a shared read chunk (crate::read_pool) for that long.
                let frame = Bytes::copy_from_slice(&frame);
                let mut entry = Entry::forwarded(frame, target);
                entry.channel = Channel::Dedicated;
                if intent == ReadIntent::Primary {
                    entry.write_mark = self.mark_write(reads::Marked::of(target));
                }
                let seq = self.queue.push(entry);
                self.dispatch(seq, None);
                return;
            }
            Route::Transaction(command) => return self.transaction(command, frame),
            Route::PubSub(command) => return self.pubsub(command, frame),
        };
        if let Target::Slot(slot) = target {
            self.last_slot = Some(slot);
        }
        let mut entry = Entry::forwarded(frame, target);
        entry.intent = intent;
        entry.channel = self.data_channel.get();
        if intent == ReadIntent::Primary {
            entry.write_mark = self.mark_write(reads::Marked::of(target));
        }
        let seq = self.queue.push(entry);
        self.dispatch(seq, None);
    }

    /// `WAIT numreplicas timeout`: counts the replicas that have this client's writes.
    ///
    /// Redis measures that from the connection's own last write, but this client's writes
    /// went over a shared connection and WAIT must not block one. So WAIT runs on a
    /// connection of its own to the node of the client's last keyed command, right after a
    /// tiny write there (a key that expires in 1 ms): the node replicates in order, so
    /// replicas that acknowledge that write also hold every earlier one.
    fn wait(&mut self, frame: Bytes) {
        let slot = self.last_slot;
        let tag = crate::slot::tag_for_slot(slot.unwrap_or(0));
        let key = format!("__slotgate:wait:{{{tag}}}");
        let mut request = BytesMut::new();
        encode::encode_command(&mut request, &[b"SET", key.as_bytes(), b"", b"PX", b"1"]);
        request.extend_from_slice(&frame);
        let target = Target::Slot(slot.unwrap_or(0));
        let mut entry = Entry::forwarded(request.freeze(), target);
        entry.channel = Channel::Dedicated;
        entry.swallow = 1;
        let seq = self.queue.push(entry);
        self.dispatch(seq, None);
    }

    /// Answers the current request with `-message`.
    fn reply_error(&self, message: &str) {
        let mut out = BytesMut::new();
        encode::error(&mut out, message);
        self.queue.push(Entry::ready(out.freeze(), false));
    }

    /// After a reload replaced the users, looks this client's user up again by name: a
    /// user still `on` carries on under its new rules; one removed or turned `off` loses
    /// the connection at this request, which is answered with an error and not run
    /// (docs/security.md). False when the connection is closing.
    fn recheck_user(&mut self) -> bool {
        let epoch = self.listener.users_epoch();
        if epoch == self.users_epoch {
            return true;
        }
        self.users_epoch = epoch;
        let Some(current) = &self.client.user else {
            return true;
        };
        let name = current.name().to_owned();
        match self.listener.users.load().user(&name) {
            Some(user) if user.is_enabled() => {
                self.client.user = Some(user);
                true
            }
            _ => {
                self.client.user = None;
                warn!(
                    client = self.client.id,
                    peer = %self.client.peer,
                    user = %name,
                    "user removed or disabled by a config reload; closing its connection"
                );
                let mut out = BytesMut::new();
                encode::error(
                    &mut out,
                    &format!(
                        "ERR user '{name}' was removed or disabled by a config reload; \
                         connection closed"
                    ),
                );
                let mut entry = Entry::ready(out.freeze(), true);
                entry.outcome = Some(CommandOutcome::Rejected);
                self.queue.push(entry);
                self.reading = false;
                self.read_buf = BytesMut::new();
                false
            }
        }
    }

    /// Who may run what, in Redis's order: unknown commands and arity errors first (they
    /// are already `Route::Error`), then `NOAUTH`, the commands refused by default
    /// (`enable-flush-commands`, `enable-debug-command`), then the user's `NOPERM`.
    fn access(&self, route: Route, args: &ArgView<'_>) -> Result<Route, String> {
        let name = args.get(0).unwrap_or_default();
        let debug = name.eq_ignore_ascii_case(b"debug");
        if matches!(route, Route::Error(_)) && !debug {
            // Unknown commands and arity errors come before authentication; slotgate's own
            // refusals (CROSSSLOT, CONFIG SET, ...) come after it, like a command's failure.
            let well_formed = self.up.with_commands(|table| {
                table
                    .lookup(args)
                    .is_some_and(|spec| spec.arity_ok(args.len()))
            });
            if !well_formed {
                return Ok(route);
            }
        }
        let Some(user) = &self.client.user else {
            return match route {
                Route::Local(Local::Auth | Local::Hello | Local::Quit | Local::Reset) => Ok(route),
                _ => Err("NOAUTH Authentication required.".to_owned()),
            };
        };
        if debug || name.eq_ignore_ascii_case(b"flushall") || name.eq_ignore_ascii_case(b"flushdb")
        {
            let config = self.listener.config();
            let lower = name.to_ascii_lowercase();
            if let Some(refusal) = crate::acl::dangerous_refusal(
                &lower,
                args.get(1),
                config.enable_flush_commands,
                config.enable_debug_command,
            ) {
                return Err(refusal.to_owned());
            }
        }
        // DEBUG, once enabled, acts on one node (DEBUG SLEEP, DEBUG OBJECT key ...).
        let route = if debug { Route::AnyPrimary } else { route };
        if user.is_unrestricted() {
            return Ok(route);
        }
        let denied = self.up.with_commands(|table| {
            let spec = table.lookup(args)?;
            let mut keys = self.key_scratch.borrow_mut();
            keys.clear();
            let _ = spec.for_each_key(args, |index| keys.push(index));
            user.check(spec, args, &keys)
                .map(|refusal| refusal.to_string())
        });
        match denied {
            Some(message) => Err(message),
            None => Ok(route),
        }
    }

    /// Answers the current request with `-message`: refused by slotgate itself.
    fn reply_rejected(&self, message: &str) {
        let mut out = BytesMut::new();
        encode::error(&mut out, message);
        let mut entry = Entry::ready(out.freeze(), false);
        entry.outcome = Some(CommandOutcome::Rejected);
        self.queue.push(entry);
    }

    /// Answers the current request with `+text`.
    fn reply_simple(&self, text: &str) {
        let mut out = BytesMut::new();
        encode::simple(&mut out, text);
        self.queue.push(Entry::ready(out.freeze(), false));
    }

    /// Sends request `seq` on its channel to the node serving its target, or to
    /// `redirect` when following a `MOVED`/`ASK` (with `ASKING` first for the latter).
    fn dispatch(&self, seq: u64, redirect: Option<(Endpoint, bool)>) {
        let attempt = self.queue.update(seq, |e| {
            let tag = match e.role {
                queue::Role::Scan { tag, .. } => Some(tag),
                _ => None,
            };
            Some((
                e.frame.clone()?,
                e.target,
                e.intent,
                e.channel,
                e.swallow,
                tag,
            ))
        });
        let Some(Some((frame, target, intent, channel, swallow, scan_tag))) = attempt else {
            return;
        };
        let asking = redirect.as_ref().is_some_and(|&(_, asking)| asking);
        let to = match &redirect {
            Some((node, _)) => upstream::Target::Node(node),
            None => match target {
                Target::Slot(slot) => upstream::Target::Slot(slot),
                Target::AnyPrimary => upstream::Target::AnyShard,
            },
        };
        let protocol = self.client.protocol;
        let sink: Rc<dyn ReplySink> = self.queue.clone();
        let request = Request {
            sink,
            seq,
            frame,
            asking,
            swallow,
        };
        // A connection in the selected database passes requests through its gate, which
        // holds them while a `SELECT` there is unanswered ([`db`]).
        // A redirect names its node (the slot's owner, which serves it), not a policy.
        let read = if redirect.is_none() {
            self.read_request(intent, target, channel, scan_tag)
                .or_else(|| {
                    // A SCAN page on the primary still names it in the cursor, so a page
                    // that meets another primary (a failover) starts that shard over.
                    scan_tag
                        .filter(|_| channel == Channel::Shared)
                        .map(|tag| ReadRequest {
                            policy: crate::reads::ReadFrom::Primary,
                            written_at: None,
                            tag: Some(tag),
                        })
                })
        } else {
            None
        };
        let (conn, gate) = match (channel, read) {
            (Channel::Shared, Some(read)) => match self.up.resolve_read(to, read, protocol) {
                ReadResolved::Conn { conn, replica, tag } => {
                    self.queue.update(seq, |e| {
                        e.read_on = replica.then(|| queue::ReadOn(conn.clone()));
                        if let queue::Role::Scan {
                            tag: scanned_on, ..
                        } = &mut e.role
                        {
                            *scanned_on = tag;
                        }
                    });
                    (Some(conn), None)
                }
                ReadResolved::Unserved => (None, None),
                ReadResolved::NoReplica => return self.no_replica(seq, target),
            },
            (Channel::Shared, None) => (self.up.resolve(to, intent, Use::Shared, protocol), None),
            (Channel::Dedicated, _) => {
                let conn = self
                    .up
                    .resolve(to, intent, Use::Own(Mode::SingleUse), protocol);
                if let Some(conn) = &conn {
                    let mut dedicated = self.dedicated.borrow_mut();
                    dedicated.retain(|b| !b.is_broken());
                    dedicated.push(conn.clone());
                }
                if let Some(conn) = &conn
                    && self.data_channel.get() == Channel::Db
                {
                    // In another database: the database's gate decides when it may go.
                    if let Err(request) = self.send_on_db(request, Some(conn.clone())) {
                        self.unserved(request);
                    }
                    return;
                }
                (conn, None)
            }
            // The watch lives on that connection: it serves the request wherever it goes.
            (Channel::Pinned, _) => match &self.pinned {
                Some(p) => {
                    self.end_pinned_if_primary_changed(p);
                    (Some(p.backend.clone()), p.gate.clone())
                }
                None => (None, None),
            },
            (Channel::Db, _) => match self.send_on_db(request, None) {
                Ok(()) => return,
                Err(request) => return self.unserved(request),
            },
        };
        match (conn, gate) {
            (Some(conn), Some(gate)) => gate.send(&conn, request),
            (Some(conn), None) => conn.send(request),
            (None, _) => self.unserved(request),
        }
    }

    /// `read-from = replica` and no replica of the target's shard may serve reads.
    fn no_replica(&self, seq: u64, target: Target) {
        let what = match target {
            Target::Slot(slot) => format!("slot {slot}"),
            Target::AnyPrimary => "this command".to_owned(),
        };
        let mut out = BytesMut::new();
        encode::error(
            &mut out,
            &format!(
                "ERR slotgate: no replica is eligible for reads of {what} (read-from = \
                 replica); the command was not executed"
            ),
        );
        self.fail(seq, out.freeze());
    }

    /// A read sent to a replica by the read policy failed there without an answer (not
    /// sent, no reply, loading, not linked): a read changes nothing, so it may run again.
    /// That replica leaves this worker's choices until the next probe, and the read goes
    /// where the policy now says, at once. False when `seq` was not such a read.
    fn read_elsewhere(&self, seq: u64, outcome: &Outcome) -> bool {
        if !matches!(
            outcome,
            Outcome::NotSent(_) | Outcome::Unknown(_) | Outcome::NotPrimary(_) | Outcome::NotNow(_)
        ) {
            return false;
        }
        let Some(Some(replica)) = self.queue.update(seq, |e| e.read_on.take()) else {
            return false;
        };
        WorkerStats::bump(&self.worker.stats.retries);
        self.up.avoid_for_reads(replica.0.endpoint());
        self.dispatch(seq, None);
        true
    }

    /// No node serves this slot in the current map (in a backend without slots: no
    /// single primary is known): wait for a better one.
    fn unserved(&self, request: Request) {
        self.up.upstream.request_refresh();
        request.sink.complete(
            request.seq,
            Outcome::NotNow(self.up.upstream.unserved_reply()),
        );
    }

    /// Acts on outcomes that are not plain replies: redirects, retries, failures.
    fn settle_attention(&mut self) {
        if !self.queue.needs_attention() {
            return;
        }
        let mut attention = std::mem::take(&mut self.attention);
        self.queue.take_attention(&mut attention);
        for (seq, outcome) in attention.drain(..) {
            self.settle(seq, outcome);
        }
        self.attention = attention;
    }

    fn settle(&self, seq: u64, outcome: Outcome) {
        let stats = &self.worker.stats;
        let upstream = &self.up.upstream;
        let pinned = self.queue.update(seq, |e| e.channel == Channel::Pinned) == Some(true);
        if pinned
            && !matches!(
                outcome,
                Outcome::Reply(_) | Outcome::Unknown(_) | Outcome::NoScript(_)
            )
        {
            // WATCH state lives on the pinned connection: another node cannot take over.
            // The client is told to retry: the map must be refreshed for that retry to
            // reach the slot's new owner, as for any other MOVED or lost connection.
            if matches!(outcome, Outcome::Moved { .. } | Outcome::NotSent(_)) {
                upstream.request_refresh();
            }
            let reply = tx::pinned_moved_reply(&outcome);
            return self.finish(seq, reply);
        }
        if self.read_elsewhere(seq, &outcome) {
            return;
        }
        match outcome {
            Outcome::Reply(reply) => self.finish(seq, reply),
            Outcome::Moved { slot, to } => {
                WorkerStats::bump(&stats.redirects_moved);
                upstream.note_moved();
                self.redirect(seq, slot, to, false);
            }
            Outcome::Ask { slot, to } => {
                WorkerStats::bump(&stats.redirects_ask);
                self.redirect(seq, slot, to, true);
            }
            Outcome::NotNow(error) => self.retry_or_fail(seq, error),
            Outcome::NotPrimary(error) => {
                // A switchover or failover: re-read the topology now, retry there.
                upstream.request_refresh();
                self.retry_or_fail(seq, error);
            }
            Outcome::NoScript(error) => self.load_script_and_retry(seq, error),
            Outcome::NotSent(failure) => {
                upstream.request_refresh();
                let error = failure_reply(&failure, false);
                self.retry_or_fail(seq, error);
            }
            Outcome::Unknown(failure) => {
                WorkerStats::bump(&stats.backend_errors);
                self.fail(seq, failure_reply(&failure, true));
            }
        }
    }

    /// `NOSCRIPT` for an `EVALSHA` of a script loaded through slotgate: load it on that
    /// node and run the `EVALSHA` again, in one write. Anything else gets the error.
    fn load_script_and_retry(&self, seq: u64, error: Bytes) {
        let body = self
            .queue
            .update(seq, |entry| {
                let frame = entry.frame.as_ref()?;
                if entry.swallow != 0 {
                    return None;
                }
                let sha = evalsha_sha(frame)?;
                self.up.upstream.scripts.get(&sha)
            })
            .flatten();
        let Some(body) = body else {
            return self.finish(seq, error);
        };
        let retried = self.queue.update(seq, |entry| {
            let frame = entry.frame.take()?;
            let mut out = BytesMut::new();
            encode::encode_command(&mut out, &[b"SCRIPT", b"LOAD", &body]);
            out.extend_from_slice(&frame);
            entry.frame = Some(out.freeze());
            entry.swallow = 1;
            Some(())
        });
        match retried {
            Some(Some(())) => self.dispatch(seq, None),
            _ => self.finish(seq, error),
        }
    }

    /// Answers `seq` with `reply`, an error slotgate gives for want of a node's answer.
    fn fail(&self, seq: u64, reply: Bytes) {
        self.queue
            .update(seq, |entry| entry.outcome = Some(CommandOutcome::Failed));
        self.finish(seq, reply);
    }

    fn finish(&self, seq: u64, reply: Bytes) {
        self.queue.update(seq, |entry| {
            entry.state = EntryState::Ready(reply);
        });
    }

    fn redirect(&self, seq: u64, slot: u16, to: Endpoint, asking: bool) {
        let max = self.listener.config().max_redirects;
        let next = self.queue.update(seq, |entry| {
            entry.hops = entry.hops.saturating_add(1);
            if u32::from(entry.hops) > max {
                let message =
                    format!("ERR slotgate: too many redirects for slot {slot} (last to {to})");
                let mut out = BytesMut::new();
                encode::error(&mut out, &message);
                entry.outcome = Some(CommandOutcome::Failed);
                entry.state = EntryState::Ready(out.freeze());
                return None;
            }
            entry.frame.as_ref().map(|_| ())
        });
        if let Some(Some(())) = next {
            self.dispatch(seq, Some((to, asking)));
        }
    }

    /// Schedules another attempt for a request known not to have run, or gives up with
    /// `error` once `retry-deadline` has passed.
    fn retry_or_fail(&self, seq: u64, error: Bytes) {
        let now = Instant::now();
        let deadline = self.listener.config().retry_deadline;
        let stats = &self.worker.stats;
        let mut retry_at = None;
        self.queue.update(seq, |entry| {
            let give_up_at = *entry.retry_deadline.get_or_insert(now + deadline);
            if now >= give_up_at {
                entry.outcome = Some(CommandOutcome::Failed);
                entry.state = EntryState::Ready(error);
                return;
            }
            WorkerStats::bump(&stats.retries);
            let backoff = FIRST_BACKOFF
                .saturating_mul(1 << entry.retries.min(8))
                .min(MAX_BACKOFF);
            entry.retries += 1;
            let at = (now + backoff).min(give_up_at);
            entry.state = EntryState::RetryAt(at);
            retry_at = Some(at);
        });
        if let Some(at) = retry_at {
            self.queue.note_retry(at);
        }
    }

    fn run_due_retries(&mut self) {
        let mut due = std::mem::take(&mut self.due);
        self.queue.take_due_retries(Instant::now(), &mut due);
        for seq in due.drain(..) {
            self.dispatch(seq, None);
        }
        self.due = due;
    }

    /// Reports what the session holds for its client to the `slotgate_buffered_bytes`
    /// gauge and to `CLIENT LIST` (`qbuf`, `omem`, `tot-mem`): request bytes read but not
    /// yet scanned, requests in flight (kept until answered, for retries), reply bytes
    /// `writing` to the socket and relayed pub/sub frames waiting behind them.
    fn report_buffers(&mut self, writing: usize) {
        let qbuf = self.read_buf.len();
        let omem = writing + self.subs.out_bytes;
        let total = qbuf + self.queue.request_bytes() + omem;
        self.worker
            .stats
            .metrics
            .update_buffered(&mut self.buffered_reported, total);
        if let Some(me) = &self.me {
            me.set_buffers(qbuf, omem, total);
        }
    }

    /// Writes every reply that is ready, in order.
    async fn flush(&mut self, stream: &mut Stream) -> std::io::Result<()> {
        let mut chunks = std::mem::take(&mut self.chunks);
        let write_buf = &mut self.write_buf;
        let metrics = &self.worker.stats.metrics;
        let state = &self.worker.state;
        let marks = &self.write_marks;
        let (peer, name) = (self.client.peer, self.client.name.as_deref());
        // One clock read per flush, and only when a reply leaves.
        let mut now: Option<Instant> = None;
        let close = self.queue.pop_ready(self.client.protocol, |reply, entry| {
            if let Some(mark) = entry.write_mark {
                let now = *now.get_or_insert_with(Instant::now);
                marks.borrow_mut().answered(mark, now.into_std());
            }
            if let Some(started) = entry.started {
                let now = *now.get_or_insert_with(Instant::now);
                let latency = now.saturating_duration_since(started);
                let outcome = entry
                    .outcome
                    .unwrap_or_else(|| CommandOutcome::of_reply(&reply));
                metrics.record_command(entry.command, outcome, latency);
                if let Some(frame) = &entry.frame {
                    state.slowlog.observe_frame(latency, frame, peer, name);
                }
            }
            if reply.len() > COPY_LIMIT {
                if !write_buf.is_empty() {
                    chunks.push(write_buf.split().freeze());
                }
                chunks.push(reply);
            } else {
                write_buf.extend_from_slice(&reply);
            }
        });
        // Relayed subscription frames go out once every earlier reply has.
        if self.queue.is_empty() {
            while let Some(frame) = self.subs.out.pop_front() {
                self.subs.out_bytes -= frame.len();
                write_buf.extend_from_slice(&frame);
                if write_buf.len() > KEEP_BUFFER {
                    break;
                }
            }
            self.queue.set_relay_backlog(self.subs.out_bytes);
        }
        if !write_buf.is_empty() {
            chunks.push(write_buf.split().freeze());
        }
        let written: usize = chunks.iter().map(Bytes::len).sum();
        if written > 0 {
            // While this write waits for the client, its bytes are held for it too.
            self.report_buffers(written);
        }
        let limits = self.listener.config().client_output_buffer_limit;
        self.queue.set_relay_limit(limits.pubsub.hard);
        let (class, limit) = if self.subs.active() {
            ("pubsub", limits.pubsub)
        } else {
            ("normal", limits.normal)
        };
        let result = if limit == OutputLimit::NONE {
            async {
                for chunk in &chunks {
                    stream.write_all_flushed(chunk).await?;
                }
                Ok(())
            }
            .await
        } else {
            let queue = self.queue.clone();
            let watch = OutputWatch {
                queue: &queue,
                limit,
                over_soft_since: &mut self.over_soft_limit_since,
            };
            watch.write(stream, &chunks).await
        };
        let limit_reached =
            matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::OutOfMemory);
        if written > 0 {
            self.worker.stats.metrics.record_client_write(written);
        }
        chunks.clear();
        self.chunks = chunks;
        if self.write_buf.capacity() > KEEP_BUFFER {
            self.write_buf = BytesMut::new();
        }
        if close {
            self.closing = true;
        }
        if limit_reached {
            self.output_limit_reached(class);
        }
        result
    }
}

/// The SHA argument of an `EVALSHA`/`EVALSHA_RO` request frame.
fn evalsha_sha(frame: &[u8]) -> Option<Vec<u8>> {
    let mut scanner = RequestScanner::new(ScanLimits::default());
    let mut args = Vec::new();
    let Ok(Some(Scanned::Request { .. })) = scanner.scan(frame, &mut args) else {
        return None;
    };
    let view = ArgView::new(frame, &args);
    let name = view.get(0)?;
    if !(name.eq_ignore_ascii_case(b"evalsha") || name.eq_ignore_ascii_case(b"evalsha_ro")) {
        return None;
    }
    view.get(1).map(<[u8]>::to_vec)
}

/// Writes replies while watching `client-output-buffer-limit`: a client that stops
/// reading leaves the write waiting, and meanwhile replies pile up in its queue. The
/// pending total is checked when a write cannot finish at once, then every time a reply
/// arrives (and every second, for the soft limit).
struct OutputWatch<'a> {
    queue: &'a ReplyQueue,
    limit: OutputLimit,
    over_soft_since: &'a mut Option<Instant>,
}

impl OutputWatch<'_> {
    /// Writes `chunks`; `ErrorKind::OutOfMemory` when the limit was reached first.
    async fn write(self, stream: &mut Stream, chunks: &[Bytes]) -> std::io::Result<()> {
        let mut unwritten: usize = chunks.iter().map(Bytes::len).sum();
        for chunk in chunks {
            let write = stream.write_all_flushed(chunk);
            tokio::pin!(write);
            let mut blocked = false;
            loop {
                tokio::select! {
                    biased;
                    written = &mut write => {
                        written?;
                        break;
                    }
                    // The write could not finish at once: the client is behind, check now.
                    () = std::future::ready(()), if !blocked => blocked = true,
                    () = self.queue.changed() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)), if self.limit.soft > 0 => {}
                }
                let pending = unwritten + self.queue.ready_bytes() + self.queue.relay_pending();
                if self.queue.relay_overflowed()
                    || self
                        .limit
                        .exceeded(pending, self.over_soft_since, Instant::now())
                {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::OutOfMemory,
                        "client-output-buffer-limit reached",
                    ));
                }
            }
            unwritten -= chunk.len();
        }
        Ok(())
    }
}

/// The error a client gets for a backend failure. `maybe_ran` says whether the command
/// may have executed, which the client must know to decide whether to retry.
fn failure_reply(failure: &Failure, maybe_ran: bool) -> Bytes {
    let mut out = BytesMut::new();
    let message = if maybe_ran {
        format!(
            "ERR slotgate: {}; the command was sent and may have been executed",
            failure.describe()
        )
    } else {
        format!(
            "ERR slotgate: {}; the command was not executed",
            failure.describe()
        )
    };
    encode::error(&mut out, &message);
    out.freeze()
}
