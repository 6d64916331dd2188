//! The server core: one owner of all SIP state, driven sans-IO. Requests go
//! through the request-init checks (Kamailio's REQINIT order: framing and
//! parse, Max-Forwards, URI scheme, Proxy-Require, loops), then transaction
//! matching, then the registrar or the proxy.

use crate::io::{Flow, Now, Transmit, Transport};
use crate::location::{self, Location};
use crate::metrics::Metrics;
use crate::proxy::ProxyCtx;
use crate::route;
use bytes::Bytes;
use sip::auth::{Algorithm, NonceCounter, NonceGen, Policy, Verifier};
use sip::header::HeaderName;
use sip::message::Message;
use sip::method::Method;
use sip::transaction::{
    ClientKey, ClientTransaction, LingerTable, ServerKey, ServerTransaction, TimerQueue, Timers,
    TxEvent,
};
use sip::Limits;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{RegOp, UserRecord};
use tracing::{debug, warn};

/// Everything the core takes from the configuration.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub domain: String,
    pub local_addrs: Vec<(Transport, SocketAddr)>,
    /// Challenge order (MD5 first by default: many phones and SIPp 3.6 read
    /// only the first challenge).
    pub auth_algorithms: Vec<Algorithm>,
    pub strict_digest_uri: bool,
    pub nonce_lifetime_secs: u64,
    pub server_header: bool,
    pub timers: Timers,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub max_contacts: usize,
    pub limits: Limits,
    pub secret: [u8; 32],
    pub shield: shield::ShieldConfig,
    /// Prefixes of the blocked countries (zone files read by the runtime).
    pub shield_zones: Arc<Vec<shield::Cidr>>,
    /// The relay and the media applications.
    pub media: crate::session::MediaConfig,
}

impl CoreConfig {
    /// A core for `domain` on `local_addrs` with the settings of the
    /// embedded configuration (MD5 then SHA-256 challenges, 300 s nonces,
    /// RFC timers, registrations of 60-3600 s, 10 contacts per user,
    /// default limits). The binary maps its config file instead (see
    /// `hardline::setup::core_config`); tests and benchmarks start here.
    pub fn new(
        domain: &str,
        local_addrs: Vec<(Transport, SocketAddr)>,
        secret: [u8; 32],
    ) -> CoreConfig {
        CoreConfig {
            domain: domain.to_string(),
            local_addrs,
            auth_algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
            strict_digest_uri: false,
            nonce_lifetime_secs: 300,
            server_header: false,
            timers: Default::default(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 10,
            limits: Limits::default(),
            secret,
            shield: shield::ShieldConfig::default(),
            shield_zones: Arc::new(Vec::new()),
            media: crate::session::MediaConfig {
                enabled: true,
                ..Default::default()
            },
        }
    }
}

/// Registrations to persist; the core answers the REGISTERs in it once the
/// runtime reports the batch stored (group commit).
#[derive(Debug, Clone)]
pub struct StoreBatch {
    pub id: u64,
    pub ops: Vec<RegOp>,
}

/// A REGISTER whose bindings wait for the store.
pub(crate) struct PendingRegister {
    pub key: ServerKey,
    pub ok_response: Bytes,
    pub fail_response: Bytes,
    pub user: String,
    pub undo: Vec<location::Binding>,
}

pub(crate) struct ServerEntry {
    pub tx: ServerTransaction,
    pub flow: Flow,
    pub ctx: Option<u64>,
    /// The request, kept for INVITEs so a CANCEL or Timer C can answer it.
    pub request: Option<Message>,
}

pub(crate) struct ClientEntry {
    pub tx: ClientTransaction,
    pub flow: Flow,
    pub ctx: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TimerKey {
    Server(ServerKey),
    Client(ClientKey),
    /// Timer C of a proxied INVITE (RFC 3261 §16.6 step 11).
    TimerC(u64),
    /// Periodic expiry of registrations.
    Expire,
    /// Retransmission of the 2xx of a call we answered (by Call-ID).
    App(String),
}

pub struct Core {
    pub(crate) cfg: CoreConfig,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) users: HashMap<String, UserRecord>,
    pub(crate) location: Location,
    pub(crate) verifier: Verifier,
    pub(crate) nonce_counter: NonceCounter,
    // Boxed: an entry is several hundred bytes, and a table of tens of
    // thousands of inline entries stalls the thread for milliseconds each
    // time it grows.
    pub(crate) servers: HashMap<ServerKey, Box<ServerEntry>>,
    pub(crate) clients: HashMap<ClientKey, Box<ClientEntry>>,
    /// Transactions past their final response, kept compact for the rest
    /// of their linger (up to 32 s over UDP) to absorb retransmissions.
    pub(crate) server_linger: LingerTable<ServerKey, Flow>,
    pub(crate) client_linger: LingerTable<ClientKey, Flow>,
    pub(crate) contexts: HashMap<u64, ProxyCtx>,
    pub(crate) timers: TimerQueue<TimerKey>,
    pub(crate) out: VecDeque<Transmit>,
    pub(crate) store_out: VecDeque<StoreBatch>,
    pub(crate) pending: HashMap<u64, PendingRegister>,
    rng: u64,
    /// Keys of the hash behind stateless To tags (random per process).
    tag_keys: std::collections::hash_map::RandomState,
    pub(crate) next_id: u64,
    /// Admission, policy and bans (see the `shield` crate).
    pub(crate) shield: shield::Shield,
    /// Calls in progress per extension (toll-fraud limits).
    pub(crate) calls: crate::calls::CallLimits,
    /// The media relay, when the runtime runs one.
    pub(crate) relay: Option<crate::session::SharedRelay>,
    /// Calls in progress, by Call-ID.
    pub(crate) live: HashMap<String, crate::session::Call>,
    pub(crate) call_out: VecDeque<crate::session::CallRecord>,
    pub(crate) quality_out: VecDeque<crate::session::QualityEvent>,
    /// Monotonic instant and wall-clock milliseconds it corresponds to.
    pub(crate) clock: Option<(Instant, u64)>,
}

const EXPIRE_EVERY: Duration = Duration::from_secs(5);
/// How long past its end a remnant may wait to be dropped (see
/// `poll_timeout`).
const LINGER_SLACK: Duration = Duration::from_secs(1);
/// Timer C: how long a proxied INVITE may ring (RFC 3261: > 3 minutes).
pub(crate) const TIMER_C: Duration = Duration::from_secs(185);

impl Core {
    pub fn new(
        cfg: CoreConfig,
        users: Vec<UserRecord>,
        bindings: Vec<store::Binding>,
        now: Now,
        seed: u64,
        metrics: Arc<Metrics>,
    ) -> Core {
        let verifier = make_verifier(&cfg);
        let mut location = Location::default();
        location.from_store(bindings);
        location.expire(now.unix);
        metrics.registrations_active.set(location.count() as i64);
        let mut timers = TimerQueue::new();
        timers.schedule(TimerKey::Expire, now.mono + EXPIRE_EVERY);
        let (max_lingering, max_lingering_bytes) =
            (cfg.limits.max_lingering, cfg.limits.max_lingering_bytes);
        let mut shield =
            shield::Shield::new(cfg.shield.clone(), &cfg.shield_zones, &cfg.domain, now);
        shield.set_extensions(users.len());
        Core {
            shield,
            calls: Default::default(),
            relay: None,
            live: HashMap::new(),
            call_out: VecDeque::new(),
            quality_out: VecDeque::new(),
            clock: None,
            nonce_counter: NonceCounter::new(cfg.limits.max_transactions.max(1024) * 4),
            cfg,
            metrics,
            users: users.into_iter().map(|u| (u.username.clone(), u)).collect(),
            location,
            verifier,
            servers: HashMap::new(),
            clients: HashMap::new(),
            server_linger: LingerTable::new(max_lingering, max_lingering_bytes),
            client_linger: LingerTable::new(max_lingering, max_lingering_bytes),
            contexts: HashMap::new(),
            timers,
            out: VecDeque::new(),
            store_out: VecDeque::new(),
            pending: HashMap::new(),
            rng: seed | 1,
            tag_keys: std::collections::hash_map::RandomState::new(),
            next_id: 1,
        }
    }

    /// Anchors the media of calls in `relay` (shared with the media loop).
    pub fn set_relay(&mut self, relay: crate::session::SharedRelay) {
        self.relay = Some(relay);
    }

    pub fn local_addrs(&self) -> &[(Transport, SocketAddr)] {
        &self.cfg.local_addrs
    }

    pub fn set_users(&mut self, users: Vec<UserRecord>) {
        self.users = users.into_iter().map(|u| (u.username.clone(), u)).collect();
        self.shield.set_extensions(self.users.len());
        // Bindings of removed users go with them.
        let users = &self.users;
        self.location.retain_users(|u| users.contains_key(u));
        self.metrics
            .registrations_active
            .set(self.location.count() as i64);
    }

    pub fn reconfigure(&mut self, now: Now, mut cfg: CoreConfig) {
        // Listeners are bound once; keep the ones we have.
        cfg.local_addrs = self.cfg.local_addrs.clone();
        self.shield
            .reconfigure(cfg.shield.clone(), &cfg.shield_zones, &cfg.domain, now);
        self.verifier = make_verifier(&cfg);
        let (n, bytes) = (cfg.limits.max_lingering, cfg.limits.max_lingering_bytes);
        self.server_linger.set_max(n, bytes);
        self.client_linger.set_max(n, bytes);
        self.cfg = cfg;
    }

    pub fn registrations(&self, user: &str, now: u64) -> Vec<location::Binding> {
        self.location
            .lookup(user, now)
            .into_iter()
            .cloned()
            .collect()
    }

    // ----- pulling work out -------------------------------------------------

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_store(&mut self) -> Option<StoreBatch> {
        self.store_out.pop_front()
    }

    /// Bans imposed and lifted, throttles: for the kernel, the store, logs
    /// and notifications.
    pub fn poll_shield_event(&mut self) -> Option<shield::Event> {
        let e = self.shield.poll_event()?;
        if let shield::Event::Banned(b) = &e {
            self.metrics.shield_ban(b.rule.as_str());
        }
        self.metrics
            .shield_bans_active
            .set(self.shield.ban_count() as i64);
        Some(e)
    }

    /// The shield, for operators' requests (bans, trust, explain).
    pub fn shield(&mut self) -> &mut shield::Shield {
        &mut self.shield
    }

    /// Admission of a new TCP connection from `remote`.
    pub fn admit_connection(&mut self, now: Now, remote: SocketAddr) -> bool {
        match self.shield.admit(now, remote.ip()) {
            shield::Decision::Drop(r) => {
                self.metrics.shield_drop(r.as_str());
                false
            }
            _ => true,
        }
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Remnants may linger a little past their time (the RFC timers are
        // minimums), so their ends are gathered: one wake-up per second
        // instead of one per remnant, thousands per second after a burst.
        let linger = |d: Option<Instant>| d.map(|d| d + LINGER_SLACK);
        [
            self.timers.next_deadline(),
            linger(self.server_linger.next_deadline()),
            linger(self.client_linger.next_deadline()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----- random identifiers ----------------------------------------------

    /// xorshift64*: identifiers must be unique, not secret (nonces carry a
    /// MAC keyed by the persistent secret).
    pub(crate) fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn new_tag(&mut self) -> String {
        format!("{:016x}", self.random())
    }

    pub(crate) fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    // ----- input ------------------------------------------------------------

    pub fn handle_input(&mut self, now: Now, flow: Flow, data: Bytes) {
        // Admission before parsing: a banned, blocklisted or flooding source
        // costs a table lookup and gets no reply.
        let trusted = match self.shield.admit(now, flow.remote.ip()) {
            shield::Decision::Drop(r) => {
                self.metrics.shield_drop(r.as_str());
                return;
            }
            d => d == shield::Decision::Trusted,
        };
        let msg = match sip::parse::parse_datagram(data.clone(), &self.cfg.limits) {
            Ok(m) => m,
            Err(sip::parse::ParseError::KeepAlive) => return,
            Err(e) => {
                self.metrics.drop_reason("parse_error");
                debug!(remote = %flow.remote, error = %e, "unparsable message");
                if let Some(resp) = sip::parse::error_response(&data, &e, &self.cfg.limits) {
                    if let Some(code) = e.status() {
                        self.metrics.response(code, "sent");
                    }
                    self.transmit(flow, resp);
                }
                return;
            }
        };
        if msg.is_request() {
            if !trusted {
                if let shield::Decision::Drop(r) = self.shield.inspect(now, flow.remote.ip(), &msg)
                {
                    self.metrics.shield_drop(r.as_str());
                    return;
                }
            }
            self.on_request(now, flow, msg);
        } else {
            self.on_response(now, flow, msg);
        }
        self.set_transaction_gauge();
    }

    pub fn transport_error(&mut self, now: Now, flow: Flow) {
        let keys: Vec<ClientKey> = self
            .clients
            .iter()
            .filter(|(_, e)| e.flow.remote == flow.remote && e.flow.transport == flow.transport)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            if let Some(e) = self.clients.get_mut(&k) {
                e.tx.on_transport_error(now.mono);
            }
            self.drive_client(now, &k);
        }
    }

    pub(crate) fn transmit(&mut self, flow: Flow, data: Bytes) {
        self.out.push_back(Transmit { flow, data });
    }

    fn on_request(&mut self, now: Now, flow: Flow, msg: Message) {
        let Some(method) = msg.method().cloned() else {
            return;
        };
        self.metrics.request(&method);
        let Some(key) = server_key(&msg) else {
            self.metrics.drop_reason("no_via");
            return;
        };
        if method == Method::Ack {
            if let Some(e) = self.servers.get_mut(&key) {
                if e.tx.on_ack(now.mono) {
                    self.drive_server(now, &key);
                    return;
                }
            } else if self
                .server_linger
                .get(&key)
                .is_some_and(|(r, _)| r.on_ack())
            {
                return;
            }
            // The ACK of a 2xx we sent ourselves (echo, announcements).
            if self.app_in_dialog(now, &key, &msg) {
                return;
            }
            // The ACK of a stateless non-2xx answer (a 407 challenge) ends
            // here; RFC 3261 §8.2.7: a stateless UAS ignores ACK.
            if msg.to_tag().is_some_and(|t| t == self.stateless_tag(&msg)) {
                return;
            }
            // ACK for a 2xx: end to end, routed statelessly.
            self.proxy_ack(now, flow, msg);
            return;
        }
        if let Some(e) = self.servers.get_mut(&key) {
            if e.tx.on_request(now.mono) {
                self.drive_server(now, &key);
                return;
            }
        } else if let Some((r, f)) = self.server_linger.get(&key) {
            // A retransmission after the final response: absorbed, and a
            // non-INVITE gets its final again (§17.2.2).
            if let Some(resend) = r.on_request() {
                let f = *f;
                self.transmit(f, resend);
            }
            return;
        }
        if self.servers.len() >= self.cfg.limits.max_transactions {
            self.metrics.drop_reason("transaction_limit");
            let resp = self.response(
                &msg,
                503,
                "Service Unavailable",
                &[(HeaderName::RetryAfter, "5".into())],
            );
            self.metrics.response(503, "sent");
            self.transmit(flow, resp);
            return;
        }
        let tx = ServerTransaction::new(
            method == Method::Invite,
            flow.transport.is_reliable(),
            self.cfg.timers,
            now.mono,
        );
        self.metrics.transaction_created();
        self.servers.insert(
            key.clone(),
            Box::new(ServerEntry {
                tx,
                flow,
                ctx: None,
                request: None,
            }),
        );
        if method == Method::Cancel {
            self.on_cancel(now, &key, &msg);
            return;
        }
        self.on_new_request(now, flow, key, msg);
    }

    /// Request-init checks, then the registrar, local answers or the proxy.
    fn on_new_request(&mut self, now: Now, flow: Flow, key: ServerKey, mut msg: Message) {
        let method = msg.method().cloned().unwrap_or(Method::Options);
        let for_us = route::request_uri_is_local(&self.cfg, &msg);
        // Max-Forwards 0: 483, except an OPTIONS aimed at the server itself.
        if msg.max_forwards() == Some(0)
            && !(method == Method::Options && for_us && route::ruri_user(&msg).is_none())
        {
            return self.reply_stateless(&key, &msg, 483, "Too Many Hops", &[]);
        }
        match msg.request_uri().map(|u| u.scheme().to_ascii_lowercase()) {
            Some(s) if s == "sip" || s == "sips" || s == "tel" => {}
            _ => return self.reply_stateless(&key, &msg, 416, "Unsupported URI Scheme", &[]),
        }
        let proxy_require: Vec<String> = msg
            .header_values(HeaderName::ProxyRequire)
            .map(|s| s.to_string())
            .collect();
        if !proxy_require.is_empty() {
            let unsupported = proxy_require.join(", ");
            return self.reply_stateless(
                &key,
                &msg,
                420,
                "Bad Extension",
                &[(HeaderName::Unsupported, unsupported)],
            );
        }
        if route::is_loop(&self.cfg, &msg) {
            return self.reply_stateless(&key, &msg, 482, "Loop Detected", &[]);
        }
        // Loose routing: take our own Route entries off; in-dialog requests
        // are relayed only when our Record-Route MAC proves we put them there.
        let routed = match route::consume_own_routes(&self.cfg, &mut msg) {
            Ok(r) => r,
            Err(()) => {
                self.metrics.drop_reason("forged_route");
                return self.reply_stateless(&key, &msg, 403, "Forbidden", &[]);
            }
        };
        if routed == route::OwnRoutes::Dialog {
            return self.proxy_in_dialog(now, flow, key, msg);
        }
        // A request within a call we answered ourselves.
        if msg.to_tag().is_some() && self.app_in_dialog(now, &key, &msg) {
            return;
        }
        if msg.header(HeaderName::Route).is_some() {
            // A pre-loaded route to somewhere else: we are not a relay.
            return self.reply_stateless(&key, &msg, 403, "Relaying Denied", &[]);
        }
        if !for_us {
            return self.reply_stateless(&key, &msg, 403, "Relaying Denied", &[]);
        }
        // Requests we answer ourselves (as a UA) must not Require anything:
        // we support no extensions yet (RFC 3261 §8.2.2.3).
        let no_user = route::ruri_user(&msg).is_none();
        if method == Method::Register || (no_user && method == Method::Options) {
            if let Some(unsupported) = unsupported_requires(&msg) {
                let extra = [(HeaderName::Unsupported, unsupported)];
                return self.reply_stateless(&key, &msg, 420, "Bad Extension", &extra);
            }
        }
        if method == Method::Register {
            return self.register(now, flow, key, msg);
        }
        if no_user {
            return match method {
                Method::Options => {
                    let extra = [
                        (HeaderName::Allow, crate::proxy::ALLOW.to_string()),
                        (HeaderName::Accept, "application/sdp".to_string()),
                    ];
                    self.reply_stateless(&key, &msg, 200, "OK", &extra)
                }
                _ => self.reply_stateless(&key, &msg, 404, "Not Found", &[]),
            };
        }
        self.proxy_to_user(now, flow, key, msg);
    }

    // ----- responses we generate -------------------------------------------

    /// A response to `req`, with a To tag when the request had none.
    pub(crate) fn response(
        &mut self,
        req: &Message,
        code: u16,
        reason: &str,
        extra: &[(HeaderName<'static>, String)],
    ) -> Bytes {
        let tag = (code > 100 && req.to_tag().is_none()).then(|| self.new_tag());
        self.build_response(req, code, reason, extra, tag)
    }

    /// The response to `req`; `to_tag` is added to a To without one.
    fn build_response(
        &self,
        req: &Message,
        code: u16,
        reason: &str,
        extra: &[(HeaderName<'static>, String)],
        to_tag: Option<String>,
    ) -> Bytes {
        let mut b = Message::response_to(req, code, reason);
        if let Some(tag) = &to_tag {
            b = b.to_tag(tag);
        }
        for (n, v) in extra {
            b = b.header(*n, v);
        }
        if self.cfg.server_header {
            b = b.header(
                HeaderName::Server,
                concat!("hardline/", env!("CARGO_PKG_VERSION")),
            );
        }
        b.build().unwrap_or_else(|e| {
            warn!(code, error = %e, "cannot build response");
            Bytes::new()
        })
    }

    /// Answers `req` without keeping transaction state (RFC 3261 §8.2.7):
    /// the server transaction created for it is dropped and a retransmitted
    /// request is simply answered again. Used for challenges and request-init
    /// refusals, the answers to unauthenticated traffic, so that a flood of
    /// it costs no memory beyond the datagram (RFC 3261 §26.3.2.4).
    pub(crate) fn reply_stateless(
        &mut self,
        key: &ServerKey,
        req: &Message,
        code: u16,
        reason: &str,
        extra: &[(HeaderName<'static>, String)],
    ) {
        if !self.servers.contains_key(key) {
            return;
        }
        let tag = req.to_tag().is_none().then(|| self.stateless_tag(req));
        let bytes = self.build_response(req, code, reason, extra, tag);
        self.answer_and_forget(key, code, bytes);
    }

    /// Sends the final answer of a server transaction and drops it at once.
    /// For REGISTER: the registrar recognises a retransmission by the
    /// bindings it left (Call-ID and CSeq), so no Timer J state (32 s over
    /// UDP) is kept per registration; at thousands of registrations per
    /// second that state would dominate memory.
    pub(crate) fn answer_and_forget(&mut self, key: &ServerKey, code: u16, bytes: Bytes) {
        let Some(e) = self.servers.remove(key) else {
            return;
        };
        self.metrics.response(code, "sent");
        self.transmit(e.flow, bytes);
    }

    /// The To tag of a stateless response: the same for every retransmission
    /// of a request (§8.2.7), so the ACK of a stateless non-2xx answer to an
    /// INVITE is recognised and absorbed.
    pub(crate) fn stateless_tag(&self, req: &Message) -> String {
        let h = self
            .tag_keys
            .hash_one((req.call_id(), req.from_tag(), req.top_via_branch()));
        format!("{h:016x}")
    }

    /// Answers through the server transaction `key`.
    pub(crate) fn reply(
        &mut self,
        now: Now,
        key: &ServerKey,
        req: &Message,
        code: u16,
        reason: &str,
        extra: &[(HeaderName<'static>, String)],
    ) {
        let bytes = self.response(req, code, reason, extra);
        self.send_on_server(now, key, code, bytes, "sent");
    }

    pub(crate) fn send_on_server(
        &mut self,
        now: Now,
        key: &ServerKey,
        code: u16,
        bytes: Bytes,
        origin: &'static str,
    ) {
        let Some(e) = self.servers.get_mut(key) else {
            // Further 2xx of a forked INVITE pass through its Accepted
            // remnant (RFC 6026 §7.1).
            if let Some((r, f)) = self.server_linger.get(key) {
                if r.passes_2xx() && (200..300).contains(&code) {
                    let f = *f;
                    self.metrics.response(code, origin);
                    self.transmit(f, bytes);
                }
            }
            return;
        };
        if code >= 200 {
            // The request was kept to answer a CANCEL or Timer C; once a
            // final is out it is dead weight for the 32 s the transaction
            // still lingers.
            e.request = None;
        }
        match e.tx.send_response(code, bytes, now.mono) {
            Ok(()) => self.metrics.response(code, origin),
            Err(err) => debug!(code, error = %err, "response not allowed in transaction state"),
        }
        self.drive_server(now, key);
    }

    // ----- driving transactions ---------------------------------------------

    pub(crate) fn drive_server(&mut self, now: Now, key: &ServerKey) {
        let Some(e) = self.servers.get_mut(key) else {
            return;
        };
        let flow = e.flow;
        let mut sends = Vec::new();
        while let Some(b) = e.tx.poll_transmit() {
            sends.push(b);
        }
        let mut terminated = false;
        while let Some(ev) = e.tx.poll_event() {
            match ev {
                TxEvent::Timeout => self.metrics.drop_reason("ack_timeout"),
                TxEvent::TransportError => self.metrics.drop_reason("transport_error"),
                TxEvent::Terminated => terminated = true,
            }
        }
        let deadline = e.tx.poll_timeout();
        let remnant = if terminated { None } else { e.tx.remnant() };
        let ctx = e.ctx;
        for b in sends {
            self.transmit(flow, b);
        }
        if terminated || remnant.is_some() {
            self.servers.remove(key);
            self.timers.cancel(&TimerKey::Server(key.clone()));
            if let Some(r) = remnant.filter(|r| r.until() > now.mono) {
                if self.server_linger.insert(key, r, flow) {
                    self.metrics.transactions_evicted.inc();
                }
            }
            if let Some(c) = ctx {
                self.context_server_gone(c);
            }
        } else if let Some(d) = deadline {
            self.timers.schedule(TimerKey::Server(key.clone()), d);
        }
    }

    pub(crate) fn drive_client(&mut self, now: Now, key: &ClientKey) {
        let Some(e) = self.clients.get_mut(key) else {
            return;
        };
        let flow = e.flow;
        let mut sends = Vec::new();
        while let Some(b) = e.tx.poll_transmit() {
            sends.push(b);
        }
        let mut events = Vec::new();
        while let Some(ev) = e.tx.poll_event() {
            events.push(ev);
        }
        let deadline = e.tx.poll_timeout();
        let mut remnant = e.tx.remnant();
        let ctx = e.ctx;
        for b in sends {
            self.transmit(flow, b);
        }
        let mut terminated = false;
        for ev in events {
            match ev {
                TxEvent::Timeout => {
                    if let Some(c) = ctx {
                        self.branch_failed(now, c, key, 408);
                    }
                }
                TxEvent::TransportError => {
                    if let Some(c) = ctx {
                        self.branch_failed(now, c, key, 503);
                    }
                }
                TxEvent::Terminated => terminated = true,
            }
        }
        if terminated {
            remnant = None;
        }
        if terminated || remnant.is_some() {
            self.clients.remove(key);
            self.timers.cancel(&TimerKey::Client(key.clone()));
            if let Some(r) = remnant.filter(|r| r.until() > now.mono) {
                if self.client_linger.insert(key, r, flow) {
                    self.metrics.transactions_evicted.inc();
                }
            }
            if let Some(c) = ctx {
                self.context_branch_gone(c, key);
            }
        } else if let Some(d) = deadline {
            self.timers.schedule(TimerKey::Client(key.clone()), d);
        }
    }

    pub fn handle_timeout(&mut self, now: Now) {
        // Bounded per call so one wake-up cannot monopolise the core.
        self.server_linger.expire(now.mono, 10_000);
        self.client_linger.expire(now.mono, 10_000);
        for _ in 0..10_000 {
            let Some(k) = self.timers.pop_expired(now.mono) else {
                break;
            };
            match k {
                TimerKey::Server(key) => {
                    if let Some(e) = self.servers.get_mut(&key) {
                        e.tx.handle_timeout(now.mono);
                    }
                    self.drive_server(now, &key);
                }
                TimerKey::Client(key) => {
                    if let Some(e) = self.clients.get_mut(&key) {
                        e.tx.handle_timeout(now.mono);
                    }
                    self.drive_client(now, &key);
                }
                TimerKey::TimerC(id) => self.timer_c(now, id),
                TimerKey::App(call_id) => self.app_retransmit(now, call_id),
                TimerKey::Expire => {
                    self.shield.handle_timeout(now);
                    self.calls.expire(&self.cfg.shield.calls, now.unix);
                    self.calls_expire(now);
                    self.shrink_tables();
                    let n = self.location.expire(now.unix);
                    if n > 0 {
                        debug!(expired = n, "registrations expired");
                        self.metrics
                            .registrations_active
                            .set(self.location.count() as i64);
                    }
                    self.timers
                        .schedule(TimerKey::Expire, now.mono + EXPIRE_EVERY);
                }
            }
        }
        self.set_transaction_gauge();
    }

    fn set_transaction_gauge(&self) {
        self.metrics
            .transactions_active
            .set((self.servers.len() + self.clients.len()) as i64);
        self.metrics
            .transactions_lingering
            .set((self.server_linger.len() + self.client_linger.len()) as i64);
    }

    /// Hash tables keep the capacity of their busiest moment; after a burst
    /// gives way to quiet, that memory goes back (checked every few seconds).
    fn shrink_tables(&mut self) {
        fn shrink<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>) {
            if sip::transaction::oversized(m.capacity(), m.len()) {
                m.shrink_to(2 * m.len());
            }
        }
        shrink(&mut self.servers);
        shrink(&mut self.clients);
        shrink(&mut self.contexts);
        shrink(&mut self.pending);
        shrink(&mut self.live);
        self.timers.shrink();
        self.server_linger.shrink();
        self.client_linger.shrink();
    }

    // ----- store results ----------------------------------------------------

    pub fn store_done(&mut self, _now: Now, id: u64, ok: bool) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        if ok {
            self.metrics.register("ok");
            self.answer_and_forget(&p.key, 200, p.ok_response);
        } else {
            // Nothing half-done: the in-memory bindings go back to what the
            // store still holds, and the phone retries after Retry-After.
            warn!(user = %p.user, "registration not stored; answering 500");
            self.location.replace(&p.user, p.undo);
            self.metrics.register("store_failed");
            self.answer_and_forget(&p.key, 500, p.fail_response);
        }
        self.metrics
            .registrations_active
            .set(self.location.count() as i64);
    }

    /// Sends `request` (printed, with our Via) to `flow` through a new
    /// client transaction, in the response context `ctx`.
    pub(crate) fn start_client(
        &mut self,
        now: Now,
        key: ClientKey,
        invite: bool,
        request: Bytes,
        flow: Flow,
        ctx: Option<u64>,
    ) {
        let reliable = flow.transport.is_reliable();
        let tx = ClientTransaction::new(invite, request, reliable, self.cfg.timers, now.mono);
        self.metrics.transaction_created();
        self.clients
            .insert(key.clone(), Box::new(ClientEntry { tx, flow, ctx }));
        self.drive_client(now, &key);
    }

    pub(crate) fn new_context(&mut self, ctx: ProxyCtx) -> u64 {
        let id = self.new_id();
        self.contexts.insert(id, ctx);
        id
    }
}

fn make_verifier(cfg: &CoreConfig) -> Verifier {
    let nonces = NonceGen::new(cfg.secret).with_lifetime(cfg.nonce_lifetime_secs);
    let policy = Policy {
        allow_md5: cfg.auth_algorithms.contains(&Algorithm::Md5),
        allow_sha256: cfg.auth_algorithms.contains(&Algorithm::Sha256),
        allow_no_qop: false,
    };
    Verifier::new(nonces, policy)
}

/// The server transaction key of a request (RFC 3261 §17.2.3, with the
/// RFC 2543 fallback for branches without the magic cookie).
pub(crate) fn server_key(msg: &Message) -> Option<ServerKey> {
    let via = msg.top_via()?;
    let method = msg.method()?.as_str().to_string();
    let sent_by = match via.port {
        Some(p) => format!("{}:{}", route::host_str(&via.host), p),
        None => route::host_str(&via.host),
    };
    match via.branch() {
        Some(b) if sip::transaction::is_rfc3261_branch(b) => {
            Some(ServerKey::rfc3261(b, &sent_by, &method))
        }
        _ => {
            let cseq = msg.cseq().clone();
            let from_tag = msg
                .from()
                .and_then(|f| f.tag().map(|t| t.to_string()))
                .unwrap_or_default();
            let top = msg.header_values(HeaderName::Via).next().unwrap_or("");
            Some(ServerKey::rfc2543(
                msg.request_uri_str().unwrap_or(""),
                &from_tag,
                msg.call_id(),
                cseq.seq,
                top,
                &method,
            ))
        }
    }
}

/// Option tags in Require that we do not support (we support none yet).
fn unsupported_requires(msg: &Message) -> Option<String> {
    let v: Vec<&str> = msg.header_values(HeaderName::Require).collect();
    if v.is_empty() {
        None
    } else {
        Some(v.join(", "))
    }
}
