//! The RTP/RTCP relay, sans-IO: which relay ports a call's media uses, whom
//! each port accepts packets from (symmetric latching), where an accepted
//! packet goes, the statistics of every stream, and when a call's media has
//! gone silent. The runtime owns the sockets (through [`Ports`]) and feeds
//! every datagram to [`Relay::on_packet`], which says where to send it.
//!
//! A call is a session of up to `max_streams` streams (one per SDP media
//! section); each stream has two legs, the caller's and the callee's, and
//! each leg a relay port pair (RTP on an even port, RTCP on the next). The
//! SDP a side receives names the ports of its own leg: what the caller
//! sends to the caller leg's port leaves from the callee leg's port.

use crate::emodel::{self, Measured, Score};
use crate::rtp::{self, PacketError};
use crate::sdp::{self, Direction, Sdp, SdpLimits};
use crate::stats::{Accept, RttEstimator, StreamStats};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Opens and closes relay ports: the runtime binds sockets, tests count.
pub trait Ports {
    /// Binds `port` (RTP) and `port + 1` (RTCP); false when either is taken
    /// (by another program: the relay then tries another pair).
    fn open(&mut self, port: u16) -> bool;
    /// Closes the pair opened at `port`.
    fn close(&mut self, port: u16);
}

impl<P: Ports + ?Sized> Ports for Box<P> {
    fn open(&mut self, port: u16) -> bool {
        (**self).open(port)
    }

    fn close(&mut self, port: u16) {
        (**self).close(port)
    }
}

/// The relay's settings (`[media]` in the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct RelayConfig {
    /// First and last port of the relay range (RTP on even ports).
    pub port_range: (u16, u16),
    /// An answered call with no RTP in any direction for this long ends.
    pub timeout: Duration,
    /// The same for a call on hold (a stream sendonly, recvonly or inactive).
    pub hold_timeout: Duration,
    /// Calls relayed at once.
    pub max_sessions: usize,
    /// Calls relayed at once for one signalling source (trusted sources are
    /// exempt), so one source cannot take every port.
    pub max_sessions_per_source: usize,
    /// Media sections anchored per call; further ones are refused.
    pub max_streams: usize,
    /// A latched source silent this long may be replaced by another allowed
    /// one (a phone whose NAT mapping changed).
    pub relatch_after: Duration,
    /// Receivers conceal lost G.711 packets (G.113: Bpl 25.1, else 4.3).
    pub g711_plc: bool,
    /// A stream whose running MOS falls below this raises a quality event.
    pub mos_threshold: f64,
}

impl RelayConfig {
    /// The first RTP port: the range's first even port.
    pub fn first_port(&self) -> u16 {
        self.port_range.0 + (self.port_range.0 & 1)
    }

    /// Port pairs the range holds (each call takes two per stream).
    pub fn pairs(&self) -> usize {
        let (base, hi) = (self.first_port(), self.port_range.1);
        if hi > base {
            usize::from((hi - base).div_ceil(2))
        } else {
            0
        }
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            port_range: (10000, 20000),
            timeout: Duration::from_secs(60),
            hold_timeout: Duration::from_secs(3600),
            max_sessions: 2000,
            max_sessions_per_source: 64,
            max_streams: 4,
            relatch_after: Duration::from_secs(2),
            g711_plc: true,
            mos_threshold: 3.6,
        }
    }
}

/// Why media could not be anchored; the SIP side answers with the status.
#[derive(Debug, Clone, PartialEq)]
pub enum RelayError {
    /// Every relay port pair is in use (503).
    NoPorts,
    /// `max_sessions` calls are relayed already (503).
    Full,
    /// The caller's source has `max_sessions_per_source` calls (503).
    PerSource,
    /// More media sections than `max_streams` (488).
    TooManyStreams,
    /// The session is gone (481).
    NoSession,
    /// The SDP cannot be parsed (488).
    BadSdp(sdp::SdpError),
}

impl core::fmt::Display for RelayError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RelayError::NoPorts => f.write_str("no free relay port pair in media.port_range"),
            RelayError::Full => f.write_str("media.max_calls calls are relayed already"),
            RelayError::PerSource => {
                f.write_str("this source relays media.max_calls_per_source calls already")
            }
            RelayError::TooManyStreams => {
                f.write_str("more media sections than the relay anchors per call")
            }
            RelayError::NoSession => f.write_str("no such media session"),
            RelayError::BadSdp(e) => write!(f, "unparsable SDP: {e:?}"),
        }
    }
}

impl RelayError {
    /// The SIP status a request refused for this reason gets.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            RelayError::NoPorts | RelayError::Full | RelayError::PerSource => {
                (503, "Service Unavailable")
            }
            RelayError::TooManyStreams | RelayError::BadSdp(_) => (488, "Not Acceptable Here"),
            RelayError::NoSession => (481, "Call/Transaction Does Not Exist"),
        }
    }
}

/// One side of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Caller = 0,
    Callee = 1,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Caller => "caller",
            Side::Callee => "callee",
        }
    }
}

/// What a call's media does besides bridging two sides.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Caller and callee talk to each other.
    Bridge,
    /// The caller hears itself (echo test): only the caller leg exists.
    Echo,
    /// The caller hears a G.711 recording; `looped` plays it forever.
    Player {
        audio: std::sync::Arc<crate::wav::Audio>,
        looped: bool,
    },
}

pub type SessionId = u64;

/// Why a packet was not relayed (a metric label each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Drop {
    /// Not a port of any call.
    NoSession,
    /// From an address the leg did not latch onto or allow.
    Stranger,
    /// Malformed RTP or RTCP.
    Malformed(PacketError),
    /// A sequence jump RFC 3550 A.1 does not believe.
    AbsurdSequence,
    /// The other side's address is not known yet (no answer).
    NoDestination,
    /// A player or echo leg: the packet was consumed, not forwarded.
    Consumed,
}

impl Drop {
    pub fn as_str(&self) -> &'static str {
        match self {
            Drop::NoSession => "no_session",
            Drop::Stranger => "stranger",
            Drop::Malformed(e) => e.as_str(),
            Drop::AbsurdSequence => "absurd_sequence",
            Drop::NoDestination => "no_destination",
            Drop::Consumed => "consumed",
        }
    }
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the same bytes from relay port `from` to `to`.
    Forward {
        from: u16,
        to: SocketAddr,
    },
    Drop(Drop),
}

/// Something the SIP side must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// No RTP for the configured time: end the call (BYE both sides).
    MediaTimeout(SessionId),
    /// A stream's running MOS fell below the threshold (once per call).
    Quality {
        session: SessionId,
        side: Side,
        mos: f64,
    },
    /// A player finished a recording played once: end the call.
    PlayerDone(SessionId),
}

/// Totals since start, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub rtcp_packets: u64,
    pub drops_no_session: u64,
    pub drops_stranger: u64,
    pub drops_malformed: u64,
    pub drops_absurd: u64,
    pub drops_no_destination: u64,
    pub quality_events: u64,
    pub media_timeouts: u64,
}

/// How one endpoint described its media for one stream.
#[derive(Debug, Clone, Default)]
struct Endpoint {
    rtp: Option<SocketAddr>,
    rtcp: Option<SocketAddr>,
    mux: bool,
    /// The address its signalling came from: behind NAT, its media comes
    /// from there too (any port).
    signalling: Option<IpAddr>,
}

struct Leg {
    /// Our RTP port for this leg (RTCP: `port + 1`); 0 when not opened.
    port: u16,
    want: Endpoint,
    /// Where this leg's RTP and RTCP really come from (and go back to).
    rtp_peer: Option<SocketAddr>,
    rtcp_peer: Option<SocketAddr>,
    last_rtp: Option<Instant>,
    last_rtcp: Option<Instant>,
    /// What arrives from this leg's endpoint.
    stats: StreamStats,
    /// Round trip between the relay and this leg's endpoint.
    rtt: RttEstimator,
    ptime_ms: u32,
}

impl Leg {
    fn new(port: u16) -> Leg {
        Leg {
            port,
            want: Endpoint::default(),
            rtp_peer: None,
            rtcp_peer: None,
            last_rtp: None,
            last_rtcp: None,
            stats: StreamStats::default(),
            rtt: RttEstimator::default(),
            ptime_ms: 20,
        }
    }

    /// Whether `src` may speak for this leg, latching onto it if so.
    fn admit(&mut self, src: SocketAddr, rtcp: bool, now: Instant, relatch: Duration) -> bool {
        let (peer, last) = if rtcp {
            (self.rtcp_peer, self.last_rtcp)
        } else {
            (self.rtp_peer, self.last_rtp)
        };
        if peer == Some(src) {
            return true;
        }
        let declared = if rtcp {
            self.want.rtcp.or(self.want.rtp.map(next_port))
        } else {
            self.want.rtp
        };
        let allowed = declared == Some(src)
            || self.want.signalling == Some(src.ip())
            || declared.is_some_and(|d| d.ip() == src.ip());
        if !allowed {
            return false;
        }
        // The declared address always wins (it is what the endpoint says
        // after a re-INVITE); another allowed source only takes over from a
        // latched one that went quiet.
        let quiet = last.is_none_or(|t| now.saturating_duration_since(t) >= relatch);
        if peer.is_some() && declared != Some(src) && !quiet {
            return false;
        }
        if rtcp {
            self.rtcp_peer = Some(src);
        } else {
            self.rtp_peer = Some(src);
        }
        true
    }

    /// Where RTP (or RTCP) for this leg's endpoint goes.
    fn destination(&self, rtcp: bool) -> Option<SocketAddr> {
        if rtcp && !self.want.mux {
            self.rtcp_peer
                .or(self.want.rtcp)
                .or(self.rtp_peer.map(next_port))
                .or(self.want.rtp.map(next_port))
        } else {
            self.rtp_peer.or(self.want.rtp)
        }
    }
}

fn next_port(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip(), a.port().wrapping_add(1))
}

struct Stream {
    legs: [Leg; 2],
    /// The negotiated codec (first payload type of the answer, else the
    /// offer): encoding name and clock rate.
    codec: Option<(String, u32)>,
    held: bool,
    /// A quality event was raised for this direction.
    reported: [bool; 2],
}

struct Session {
    mode: Mode,
    source: IpAddr,
    exempt: bool,
    streams: Vec<Stream>,
    /// Set when the call is answered: from then on silence ends it.
    answered: Option<Instant>,
    /// Player position: next frame index and when it is due.
    player: Option<PlayerState>,
    /// The media timeout was reported (once; the SIP side releases).
    timed_out: bool,
}

struct PlayerState {
    frame: usize,
    due: Instant,
    seq: u16,
    ts: u32,
    ssrc: u32,
}

/// Where a port belongs.
#[derive(Debug, Clone, Copy)]
struct Slot {
    session: SessionId,
    stream: u8,
    side: Side,
}

/// The relay: sessions, ports, counters.
pub struct Relay<P: Ports> {
    cfg: RelayConfig,
    ports: P,
    /// One entry per port pair of the range.
    slots: Vec<Option<Slot>>,
    /// Pairs that failed to open (taken by another program), skipped.
    taken: Vec<bool>,
    free: usize,
    base: u16,
    sessions: HashMap<SessionId, Session>,
    per_source: HashMap<IpAddr, usize>,
    next_id: SessionId,
    rng: u64,
    events: std::collections::VecDeque<Event>,
    transmits: std::collections::VecDeque<(u16, SocketAddr, Vec<u8>)>,
    counters: Counters,
    next_check: Option<Instant>,
    /// Sessions with a player, and when the next of their frames is due
    /// (kept apart so the packet loop's timer query costs nothing).
    players: Vec<SessionId>,
    next_play: Option<Instant>,
    epoch: Option<Instant>,
}

/// How often timeouts and the running MOS are checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Packets a direction needs before its running MOS means anything (5 s of
/// 20 ms packets).
const MIN_PACKETS_FOR_QUALITY: u64 = 250;

impl<P: Ports> Relay<P> {
    pub fn new(cfg: RelayConfig, ports: P, seed: u64) -> Relay<P> {
        let (base, pairs) = (cfg.first_port(), cfg.pairs());
        Relay {
            cfg,
            ports,
            slots: vec![None; pairs],
            taken: vec![false; pairs],
            free: pairs,
            base,
            sessions: HashMap::new(),
            per_source: HashMap::new(),
            next_id: 1,
            rng: seed | 1,
            events: Default::default(),
            transmits: Default::default(),
            counters: Counters::default(),
            next_check: None,
            players: Vec::new(),
            next_play: None,
            epoch: None,
        }
    }

    pub fn config(&self) -> &RelayConfig {
        &self.cfg
    }

    /// New settings; a changed port range applies to new calls only when
    /// the old one is unused, so it takes effect at restart.
    pub fn reconfigure(&mut self, mut cfg: RelayConfig) {
        cfg.port_range = self.cfg.port_range;
        self.cfg = cfg;
    }

    pub fn ports(&self) -> &P {
        &self.ports
    }

    pub fn ports_mut(&mut self) -> &mut P {
        &mut self.ports
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Port pairs not in use.
    pub fn free_pairs(&self) -> usize {
        self.free
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A new call whose signalling comes from `source`.
    pub fn create(
        &mut self,
        now: Instant,
        source: IpAddr,
        exempt: bool,
        mode: Mode,
    ) -> Result<SessionId, RelayError> {
        if self.sessions.len() >= self.cfg.max_sessions {
            return Err(RelayError::Full);
        }
        if !exempt
            && self.per_source.get(&source).copied().unwrap_or(0)
                >= self.cfg.max_sessions_per_source
        {
            return Err(RelayError::PerSource);
        }
        self.epoch.get_or_insert(now);
        let id = self.next_id;
        self.next_id += 1;
        if !exempt {
            *self.per_source.entry(source).or_default() += 1;
        }
        self.sessions.insert(
            id,
            Session {
                mode,
                source,
                exempt,
                streams: Vec::new(),
                answered: None,
                player: None,
                timed_out: false,
            },
        );
        if self.next_check.is_none() {
            self.next_check = Some(now + CHECK_EVERY);
        }
        Ok(id)
    }

    /// Picks a free pair at random (ports are not predictable to an
    /// injector) and opens it.
    fn allocate(&mut self, slot: Slot) -> Result<u16, RelayError> {
        let n = self.slots.len();
        if n == 0 || self.free == 0 {
            return Err(RelayError::NoPorts);
        }
        let start = (self.random() % n as u64) as usize;
        for k in 0..n {
            let i = (start + k) % n;
            if self.slots[i].is_some() || self.taken[i] {
                continue;
            }
            let port = self.base + 2 * i as u16;
            if self.ports.open(port) {
                self.slots[i] = Some(slot);
                self.free -= 1;
                return Ok(port);
            }
            // Held by another program: skip it from now on.
            self.taken[i] = true;
            self.free -= 1;
        }
        Err(RelayError::NoPorts)
    }

    fn release_port(&mut self, port: u16) {
        if port < self.base {
            return;
        }
        let i = usize::from((port - self.base) / 2);
        if let Some(s) = self.slots.get_mut(i) {
            if s.take().is_some() {
                self.free += 1;
                self.ports.close(port);
            }
        }
    }

    fn slot_of(&self, port: u16) -> Option<(Slot, bool)> {
        if port < self.base {
            return None;
        }
        let off = port - self.base;
        let s = (*self.slots.get(usize::from(off / 2))?)?;
        Some((s, off & 1 == 1))
    }

    /// Makes sure stream `index` of `id` has its two port pairs (one only,
    /// the caller's, for echo and player calls).
    fn ensure_stream(&mut self, id: SessionId, index: usize) -> Result<(), RelayError> {
        let (have, bridged) = match self.sessions.get(&id) {
            Some(s) => (s.streams.len(), matches!(s.mode, Mode::Bridge)),
            None => return Err(RelayError::NoSession),
        };
        if index >= self.cfg.max_streams {
            return Err(RelayError::TooManyStreams);
        }
        for i in have..=index {
            let caller = self.allocate(Slot {
                session: id,
                stream: i as u8,
                side: Side::Caller,
            })?;
            let callee = if bridged {
                match self.allocate(Slot {
                    session: id,
                    stream: i as u8,
                    side: Side::Callee,
                }) {
                    Ok(p) => p,
                    Err(e) => {
                        self.release_port(caller);
                        return Err(e);
                    }
                }
            } else {
                0
            };
            if let Some(s) = self.sessions.get_mut(&id) {
                s.streams.push(Stream {
                    legs: [Leg::new(caller), Leg::new(callee)],
                    codec: None,
                    held: false,
                    reported: [false; 2],
                });
            }
        }
        Ok(())
    }

    /// The relay port of `side` for stream `index`.
    pub fn port(&self, id: SessionId, index: usize, side: Side) -> Option<u16> {
        let p = self.sessions.get(&id)?.streams.get(index)?.legs[side as usize].port;
        (p != 0).then_some(p)
    }

    /// An SDP sent by `from` (whose signalling came from `signalling`):
    /// learns that side's media addresses and returns the SDP for the other
    /// side, pointing at the other side's relay ports on `relay_ip`. For
    /// echo and player calls the answer is ours: see [`Relay::answer`].
    pub fn rewrite(
        &mut self,
        id: SessionId,
        from: Side,
        signalling: IpAddr,
        body: &[u8],
        relay_ip: IpAddr,
    ) -> Result<Vec<u8>, RelayError> {
        let limits = SdpLimits::default();
        let parsed = Sdp::parse(body, &limits).map_err(RelayError::BadSdp)?;
        let mut ports = Vec::with_capacity(parsed.media().len());
        for (i, m) in parsed.media().iter().enumerate() {
            if m.port == 0 {
                ports.push(None);
                continue;
            }
            self.ensure_stream(id, i)?;
            self.learn(id, i, from, signalling, &parsed);
            ports.push(self.port(id, i, from.other()));
        }
        Ok(parsed.rewrite(relay_ip, &ports))
    }

    /// What `side` described in `parsed` for stream `i`.
    fn learn(&mut self, id: SessionId, i: usize, side: Side, signalling: IpAddr, parsed: &Sdp<'_>) {
        let m = &parsed.media()[i];
        let codec = parsed.codec(i).map(|(n, r)| (n.to_string(), r));
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(st) = s.streams.get_mut(i) else {
            return;
        };
        let leg = &mut st.legs[side as usize];
        let rtp = m.addr.map(|a| SocketAddr::new(a, m.port));
        let rtcp = match m.rtcp {
            Some((port, addr)) => addr.or(m.addr).map(|a| SocketAddr::new(a, port)),
            None => None,
        };
        // A new declared address releases the latch: the endpoint moved.
        if leg.want.rtp != rtp {
            leg.rtp_peer = None;
            leg.rtcp_peer = None;
        }
        leg.want = Endpoint {
            rtp,
            rtcp,
            mux: m.rtcp_mux,
            signalling: Some(signalling),
        };
        leg.ptime_ms = m.ptime_ms.unwrap_or(20).clamp(5, 200);
        st.held = m.direction != Direction::SendRecv || m.hold_addr;
        // The answer's codec is the one in use; an offer's first codec is
        // the best guess until the answer comes.
        if codec.is_some() {
            st.codec = codec;
        }
    }

    /// Our own answer for an echo or player call: the caller's offer is
    /// learnt and answered with the first codec we can play (PCMU or PCMA
    /// for a player; any for echo). `None` when nothing fits.
    pub fn answer(
        &mut self,
        id: SessionId,
        signalling: IpAddr,
        offer: &[u8],
        relay_ip: IpAddr,
        session_version: u64,
    ) -> Result<Option<Vec<u8>>, RelayError> {
        let limits = SdpLimits::default();
        let parsed = Sdp::parse(offer, &limits).map_err(RelayError::BadSdp)?;
        let player = match self.sessions.get(&id) {
            Some(s) => matches!(s.mode, Mode::Player { .. }),
            None => return Err(RelayError::NoSession),
        };
        let Some((i, m)) = parsed
            .media()
            .iter()
            .enumerate()
            .find(|(_, m)| m.port != 0 && m.kind.eq_ignore_ascii_case("audio"))
        else {
            return Ok(None);
        };
        // The codec: for a player one we can encode; for echo the first one.
        let pt = if player {
            m.payload_types
                .iter()
                .copied()
                .find(|&pt| pt == 0 || pt == 8)
        } else {
            m.payload_types.first().copied()
        };
        let Some(pt) = pt else {
            return Ok(None);
        };
        self.ensure_stream(id, i)?;
        self.learn(id, i, Side::Caller, signalling, &parsed);
        let (name, rate) = rtpmap_of(&parsed, i, pt);
        let port = self.port(id, i, Side::Caller).unwrap_or(0);
        if let Some(st) = self
            .sessions
            .get_mut(&id)
            .and_then(|s| s.streams.get_mut(i))
        {
            st.codec = Some((name.clone(), rate));
        }
        let ip = match relay_ip {
            IpAddr::V4(a) => format!("IN IP4 {a}"),
            IpAddr::V6(a) => format!("IN IP6 {a}"),
        };
        let mut out = format!(
            "v=0\r\no=hardline {session_version} {session_version} {ip}\r\ns=hardline\r\nc={ip}\r\nt=0 0\r\n"
        );
        for (k, other) in parsed.media().iter().enumerate() {
            if k == i {
                out.push_str(&format!(
                    "m=audio {port} {} {pt}\r\na=rtpmap:{pt} {name}/{rate}\r\na=ptime:20\r\na=sendrecv\r\n",
                    other.proto
                ));
            } else {
                // Every other section is refused (RFC 3264 §6).
                let fmt = other.payload_types.first().copied().unwrap_or(0);
                out.push_str(&format!("m={} 0 {} {fmt}\r\n", other.kind, other.proto));
            }
        }
        Ok(Some(out.into_bytes()))
    }

    /// The call was answered: from now on silence ends it, and a player
    /// starts.
    pub fn answered(&mut self, id: SessionId, now: Instant) {
        let seed = self.random();
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if s.answered.is_none() {
            s.answered = Some(now);
            if matches!(s.mode, Mode::Player { .. }) {
                s.player = Some(PlayerState {
                    frame: 0,
                    due: now,
                    seq: seed as u16,
                    ts: (seed >> 16) as u32,
                    ssrc: (seed >> 32) as u32,
                });
                self.players.push(id);
                self.next_play = Some(now);
            }
        }
    }

    /// Ends a call: its ports close and its final report is returned.
    pub fn release(&mut self, id: SessionId) -> Option<Report> {
        let report = self.report(id)?;
        let s = self.sessions.remove(&id)?;
        self.players.retain(|&p| p != id);
        if !s.exempt {
            if let Some(n) = self.per_source.get_mut(&s.source) {
                *n -= 1;
                if *n == 0 {
                    self.per_source.remove(&s.source);
                }
            }
        }
        for st in &s.streams {
            for leg in &st.legs {
                if leg.port != 0 {
                    self.release_port(leg.port);
                }
            }
        }
        if self.sessions.is_empty() {
            self.next_check = None;
            self.sessions.shrink_to(64);
            self.per_source.shrink_to(64);
        }
        Some(report)
    }

    // ----- the packet path --------------------------------------------------

    /// A datagram arrived on relay port `local` from `src`.
    pub fn on_packet(&mut self, now: Instant, local: u16, src: SocketAddr, pkt: &[u8]) -> Verdict {
        let v = self.classify(now, local, src, pkt);
        match v {
            Verdict::Forward { .. } => {
                self.counters.packets += 1;
                self.counters.bytes += pkt.len() as u64;
            }
            Verdict::Drop(d) => match d {
                Drop::NoSession => self.counters.drops_no_session += 1,
                Drop::Stranger => self.counters.drops_stranger += 1,
                Drop::Malformed(_) => self.counters.drops_malformed += 1,
                Drop::AbsurdSequence => self.counters.drops_absurd += 1,
                Drop::NoDestination => self.counters.drops_no_destination += 1,
                Drop::Consumed => {}
            },
        }
        v
    }

    fn classify(&mut self, now: Instant, local: u16, src: SocketAddr, pkt: &[u8]) -> Verdict {
        let Some((slot, rtcp_port)) = self.slot_of(local) else {
            return Verdict::Drop(Drop::NoSession);
        };
        let arrival_us = self
            .epoch
            .map_or(0, |e| now.saturating_duration_since(e).as_micros() as u64);
        let relatch = self.cfg.relatch_after;
        let Some(s) = self.sessions.get_mut(&slot.session) else {
            return Verdict::Drop(Drop::NoSession);
        };
        let mode_echo = matches!(s.mode, Mode::Echo);
        let bridged = matches!(s.mode, Mode::Bridge);
        let Some(st) = s.streams.get_mut(usize::from(slot.stream)) else {
            return Verdict::Drop(Drop::NoSession);
        };
        let rtcp = rtcp_port || rtp::is_rtcp(pkt);
        let side = slot.side as usize;
        let clock = st.codec.as_ref().map_or(8000, |c| c.1.max(1));
        // Validate before latching: garbage never claims a leg.
        let header = if rtcp {
            match rtp::parse_rtcp(pkt) {
                Ok(r) => Err(r),
                Err(e) => return Verdict::Drop(Drop::Malformed(e)),
            }
        } else {
            match rtp::parse_rtp(pkt) {
                Ok(h) => Ok(h),
                Err(e) => return Verdict::Drop(Drop::Malformed(e)),
            }
        };
        if !st.legs[side].admit(src, rtcp, now, relatch) {
            return Verdict::Drop(Drop::Stranger);
        }
        match &header {
            Ok(h) => {
                if let Accept::Rejected(_) = st.legs[side].stats.on_rtp(h, arrival_us, clock) {
                    return Verdict::Drop(Drop::AbsurdSequence);
                }
                st.legs[side].last_rtp = Some(now);
            }
            Err(r) => {
                st.legs[side].last_rtcp = Some(now);
                // Reports about what we forwarded to this side time the
                // round trip relay <-> this side.
                for b in r.report_blocks() {
                    st.legs[side].rtt.on_report(b.lsr, b.dlsr, arrival_us);
                }
            }
        }
        if !bridged {
            if mode_echo {
                // Echo: straight back to where it came from, same port.
                return Verdict::Forward {
                    from: local,
                    to: src,
                };
            }
            return Verdict::Drop(Drop::Consumed);
        }
        let out = &mut st.legs[1 - side];
        let Some(to) = out.destination(rtcp) else {
            return Verdict::Drop(Drop::NoDestination);
        };
        if let Err(r) = &header {
            // An SR going out to the other side: its reply (LSR) comes back
            // on that side.
            if let Some(sr) = r.sr {
                out.rtt.on_sr(sr.ntp, arrival_us);
            }
        }
        let from = if rtcp && !out.want.mux {
            out.port + 1
        } else {
            out.port
        };
        Verdict::Forward { from, to }
    }

    // ----- timers -----------------------------------------------------------

    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.next_check, self.next_play) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_play.is_some_and(|d| d <= now) {
            self.play(now);
        }
        if self.next_check.is_none_or(|c| c > now) {
            return;
        }
        self.next_check = (!self.sessions.is_empty()).then(|| now + CHECK_EVERY);
        let threshold = self.cfg.mos_threshold;
        let plc = self.cfg.g711_plc;
        let mut events = Vec::new();
        for (&id, s) in self.sessions.iter_mut() {
            let Some(answered) = s.answered.filter(|_| !s.timed_out) else {
                continue;
            };
            let held = s.streams.iter().any(|st| st.held);
            let limit = if held {
                self.cfg.hold_timeout
            } else {
                self.cfg.timeout
            };
            let last = s
                .streams
                .iter()
                .flat_map(|st| st.legs.iter())
                .filter_map(|l| l.last_rtp.max(l.last_rtcp))
                .max()
                .map_or(answered, |t| t.max(answered));
            // Players send; what they hear does not keep them alive, so a
            // looped announcement ends only when the caller goes silent.
            if now.saturating_duration_since(last) >= limit {
                s.timed_out = true;
                events.push(Event::MediaTimeout(id));
                continue;
            }
            for st in s.streams.iter_mut() {
                for side in [Side::Caller, Side::Callee] {
                    let k = side as usize;
                    if st.reported[k] || st.legs[k].stats.packets() < MIN_PACKETS_FOR_QUALITY {
                        continue;
                    }
                    let sc = stream_score(st, side, plc);
                    if let Score::Rated { mos, .. } = sc {
                        if mos < threshold {
                            st.reported[k] = true;
                            events.push(Event::Quality {
                                session: id,
                                side,
                                mos,
                            });
                        }
                    }
                }
            }
        }
        for e in events {
            match e {
                Event::MediaTimeout(_) => self.counters.media_timeouts += 1,
                Event::Quality { .. } => self.counters.quality_events += 1,
                Event::PlayerDone(_) => {}
            }
            self.events.push_back(e);
        }
    }

    /// Sends the player frames that are due (at most a second's worth per
    /// call, so a stalled loop catches up without a burst).
    fn play(&mut self, now: Instant) {
        let mut done = Vec::new();
        let mut next: Option<Instant> = None;
        for &id in &self.players {
            let Some(s) = self.sessions.get_mut(&id) else {
                continue;
            };
            let (Some(p), Mode::Player { audio, looped }) = (s.player.as_mut(), &s.mode) else {
                continue;
            };
            let Some(st) = s.streams.first() else {
                continue;
            };
            let leg = &st.legs[0];
            let Some(to) = leg.destination(false) else {
                // Nowhere to send yet (the caller has not spoken): wait.
                p.due = now + Duration::from_millis(20);
                next = Some(next.map_or(p.due, |n| n.min(p.due)));
                continue;
            };
            let pt = match st.codec.as_ref().map(|c| c.0.to_ascii_uppercase()) {
                Some(c) if c == "PCMA" => 8u8,
                _ => 0u8,
            };
            let mut sent = 0;
            while p.due <= now && sent < 50 {
                let Some(frame) = audio.frame(p.frame, pt == 8) else {
                    if *looped && p.frame > 0 {
                        p.frame = 0;
                        continue;
                    }
                    done.push(id);
                    s.player = None;
                    break;
                };
                let mut pkt = vec![0u8; 12 + frame.len()];
                let mut hdr = [0u8; 12];
                rtp::write_rtp_header(&mut hdr, p.frame == 0, pt, p.seq, p.ts, p.ssrc);
                pkt[..12].copy_from_slice(&hdr);
                pkt[12..].copy_from_slice(frame);
                self.transmits.push_back((leg.port, to, pkt));
                p.frame += 1;
                p.seq = p.seq.wrapping_add(1);
                p.ts = p.ts.wrapping_add(frame.len() as u32);
                p.due += Duration::from_millis(20);
                sent += 1;
            }
            if let Some(p) = s.player.as_mut() {
                if p.due + Duration::from_secs(1) < now {
                    p.due = now;
                }
                next = Some(next.map_or(p.due, |n| n.min(p.due)));
            }
        }
        self.players.retain(|id| !done.contains(id));
        self.next_play = next;
        for id in done {
            self.events.push_back(Event::PlayerDone(id));
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Packets the relay itself sends (the player): from port, to, bytes.
    pub fn poll_transmit(&mut self) -> Option<(u16, SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    // ----- reports ----------------------------------------------------------

    /// The statistics and scores of a call so far.
    pub fn report(&self, id: SessionId) -> Option<Report> {
        let s = self.sessions.get(&id)?;
        let plc = self.cfg.g711_plc;
        let mut streams = Vec::new();
        for (i, st) in s.streams.iter().enumerate() {
            let sides: &[Side] = if matches!(s.mode, Mode::Bridge) {
                &[Side::Caller, Side::Callee]
            } else {
                &[Side::Caller]
            };
            for &side in sides {
                let leg = &st.legs[side as usize];
                let stats = &leg.stats;
                streams.push(StreamReport {
                    index: i,
                    side,
                    relay_port: leg.port,
                    peer: leg.rtp_peer,
                    codec: st.codec.as_ref().map(|c| c.0.clone()),
                    clock_rate: st.codec.as_ref().map_or(8000, |c| c.1),
                    ptime_ms: leg.ptime_ms,
                    packets: stats.packets(),
                    bytes: stats.bytes(),
                    expected: stats.expected(),
                    lost: stats.lost(),
                    loss_pct: stats.loss_pct(),
                    duplicates: stats.duplicates(),
                    jitter_ms: stats.jitter_ms(),
                    burst_ratio: stats.burst_ratio(),
                    rtt_ms: st.path_rtt(),
                    score: stream_score(st, side, plc),
                });
            }
        }
        Some(Report { streams })
    }
}

impl Stream {
    /// The round trip between the two endpoints through the relay: the sum
    /// of both legs' (the relay sees each from its side). Echo and player
    /// calls have one leg (no callee port): the caller's own round trip to
    /// the relay is the path.
    fn path_rtt(&self) -> Option<f64> {
        let a = self.legs[0].rtt.smoothed_ms();
        if self.legs[1].port == 0 {
            return a;
        }
        Some(a? + self.legs[1].rtt.smoothed_ms()?)
    }
}

fn stream_score(st: &Stream, side: Side, plc: bool) -> Score {
    let leg = &st.legs[side as usize];
    let codec = st
        .codec
        .as_ref()
        .and_then(|(name, _)| emodel::codec_constants(name, plc));
    emodel::score(
        codec,
        &Measured {
            loss_pct: leg.stats.loss_pct(),
            burst_ratio: leg.stats.burst_ratio(),
            jitter_ms: leg.stats.jitter_ms(),
            packetisation_ms: f64::from(leg.ptime_ms),
            rtt_ms: st.path_rtt(),
        },
    )
}

/// Encoding name and clock rate of payload type `pt` in media section `i`.
fn rtpmap_of(sdp: &Sdp<'_>, i: usize, pt: u8) -> (String, u32) {
    if let Some(m) = sdp.media().get(i) {
        if let Some((_, name, rate)) = m.rtpmap.iter().find(|(p, _, _)| *p == pt) {
            return (name.clone(), *rate);
        }
    }
    match pt {
        0 => ("PCMU".into(), 8000),
        8 => ("PCMA".into(), 8000),
        3 => ("GSM".into(), 8000),
        4 => ("G723".into(), 8000),
        9 => ("G722".into(), 8000),
        18 => ("G729".into(), 8000),
        _ => ("unknown".into(), 8000),
    }
}

/// A call's statistics: one entry per stream and direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub streams: Vec<StreamReport>,
}

/// What the relay received from one side on one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamReport {
    /// The media section.
    pub index: usize,
    /// The side that sent it (caller: the caller-to-callee direction).
    pub side: Side,
    /// Our RTP port for that side, and where its RTP really comes from.
    pub relay_port: u16,
    pub peer: Option<SocketAddr>,
    pub codec: Option<String>,
    pub clock_rate: u32,
    pub ptime_ms: u32,
    pub packets: u64,
    pub bytes: u64,
    pub expected: u64,
    pub lost: u64,
    pub loss_pct: f64,
    pub duplicates: u64,
    pub jitter_ms: f64,
    pub burst_ratio: f64,
    /// End-to-end round trip through the relay, when RTCP gave both legs'.
    pub rtt_ms: Option<f64>,
    pub score: Score,
}

impl Report {
    /// The lowest MOS of the call (the worse direction), if any was rated.
    pub fn worst_mos(&self) -> Option<f64> {
        self.streams
            .iter()
            .filter(|s| s.packets > 0)
            .filter_map(|s| match s.score {
                Score::Rated { mos, .. } => Some(mos),
                Score::Unrated => None,
            })
            .reduce(f64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::tests::{block, report};
    use std::collections::BTreeSet;

    /// Ports that open unless listed as taken, and remember what is open.
    #[derive(Default)]
    struct FakePorts {
        open: BTreeSet<u16>,
        taken: BTreeSet<u16>,
    }

    impl Ports for FakePorts {
        fn open(&mut self, port: u16) -> bool {
            if self.taken.contains(&port) {
                return false;
            }
            assert!(self.open.insert(port), "port {port} opened twice");
            true
        }
        fn close(&mut self, port: u16) {
            assert!(self.open.remove(&port), "port {port} closed but not open");
        }
    }

    const RELAY: &str = "192.0.2.1";

    fn relay(range: (u16, u16)) -> Relay<FakePorts> {
        let cfg = RelayConfig {
            port_range: range,
            ..Default::default()
        };
        Relay::new(cfg, FakePorts::default(), 7)
    }

    fn sdp(ip: &str, port: u16, extra: &str) -> Vec<u8> {
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n{extra}"
        )
        .into_bytes()
    }

    fn rtp(seq: u16, ts: u32) -> Vec<u8> {
        let mut h = [0u8; 12];
        crate::rtp::write_rtp_header(&mut h, false, 0, seq, ts, 0x1234);
        let mut p = h.to_vec();
        p.extend_from_slice(&[0xff; 160]);
        p
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A call between 192.0.2.10 (caller) and 198.51.100.20 (callee),
    /// answered at `t0`; the caller and callee leg ports.
    fn call(
        r: &mut Relay<FakePorts>,
        t0: Instant,
        caller_sdp: &[u8],
        callee_sdp: &[u8],
    ) -> (SessionId, u16, u16) {
        let id = r.create(t0, ip("192.0.2.10"), false, Mode::Bridge).unwrap();
        let offer = r
            .rewrite(id, Side::Caller, ip("192.0.2.10"), caller_sdp, ip(RELAY))
            .unwrap();
        let answer = r
            .rewrite(id, Side::Callee, ip("198.51.100.20"), callee_sdp, ip(RELAY))
            .unwrap();
        let a = r.port(id, 0, Side::Caller).unwrap();
        let b = r.port(id, 0, Side::Callee).unwrap();
        // The callee is told the callee leg's port, the caller the caller's.
        let offer = String::from_utf8(offer).unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(offer.contains(&format!("m=audio {b} ")), "{offer}");
        assert!(offer.contains(&format!("c=IN IP4 {RELAY}")), "{offer}");
        assert!(answer.contains(&format!("m=audio {a} ")), "{answer}");
        r.answered(id, t0);
        (id, a, b)
    }

    #[test]
    fn relays_both_ways_between_the_declared_addresses() {
        let mut r = relay((10000, 10099));
        let t0 = Instant::now();
        let (id, a, b) = call(
            &mut r,
            t0,
            &sdp("192.0.2.10", 4000, ""),
            &sdp("198.51.100.20", 5000, ""),
        );
        assert_eq!(a % 2, 0);
        assert_eq!(b % 2, 0);
        assert_eq!(r.ports().open, BTreeSet::from([a, b]));
        for i in 0..100u16 {
            let t = t0 + Duration::from_millis(20 * u64::from(i));
            assert_eq!(
                r.on_packet(t, a, addr("192.0.2.10:4000"), &rtp(i, 160 * u32::from(i))),
                Verdict::Forward {
                    from: b,
                    to: addr("198.51.100.20:5000")
                }
            );
            assert_eq!(
                r.on_packet(
                    t,
                    b,
                    addr("198.51.100.20:5000"),
                    &rtp(i, 160 * u32::from(i))
                ),
                Verdict::Forward {
                    from: a,
                    to: addr("192.0.2.10:4000")
                }
            );
        }
        let rep = r.report(id).unwrap();
        assert_eq!(rep.streams.len(), 2);
        for s in &rep.streams {
            assert_eq!(s.lost, 0);
            assert_eq!(s.codec.as_deref(), Some("PCMU"));
            assert!(s.packets >= 99, "{s:?}");
            // No RTCP: listening quality only, G.711 without loss.
            match s.score {
                Score::Rated {
                    mos,
                    listening_only,
                    ..
                } => {
                    assert!(listening_only);
                    assert!(mos > 4.3, "{mos}");
                }
                Score::Unrated => panic!("G.711 is rated"),
            }
        }
        assert_eq!(r.counters().packets, 200);
        let fin = r.release(id).unwrap();
        assert_eq!(fin.streams.len(), 2);
        assert!(r.ports().open.is_empty(), "ports closed at release");
        assert_eq!(r.free_pairs(), 50);
        assert_eq!(
            r.on_packet(t0, a, addr("192.0.2.10:4000"), &rtp(200, 0)),
            Verdict::Drop(Drop::NoSession)
        );
    }

    #[test]
    fn latches_onto_a_natted_phone_and_drops_strangers() {
        let mut r = relay((10000, 10099));
        let t0 = Instant::now();
        // The caller's SDP names its private address; its packets come from
        // the address its signalling came from, another port.
        let (_, a, b) = call(
            &mut r,
            t0,
            &sdp("10.0.0.5", 4000, ""),
            &sdp("198.51.100.20", 5000, ""),
        );
        let nat = addr("192.0.2.10:61000");
        // Before the caller spoke, the callee's audio goes to the SDP address.
        assert_eq!(
            r.on_packet(t0, b, addr("198.51.100.20:5000"), &rtp(1, 0)),
            Verdict::Forward {
                from: a,
                to: addr("10.0.0.5:4000")
            }
        );
        assert!(matches!(
            r.on_packet(t0, a, nat, &rtp(1, 0)),
            Verdict::Forward { .. }
        ));
        // Now it goes where the caller really is.
        assert_eq!(
            r.on_packet(t0, b, addr("198.51.100.20:5000"), &rtp(2, 160)),
            Verdict::Forward { from: a, to: nat }
        );
        // A stranger on either port is dropped and counted; so is another
        // port of the caller's address while the latched one is active.
        let before = r.counters().drops_stranger;
        for (port, src) in [
            (a, "203.0.113.66:4000"),
            (b, "203.0.113.66:5000"),
            (a, "192.0.2.10:62000"),
        ] {
            assert_eq!(
                r.on_packet(t0, port, addr(src), &rtp(3, 320)),
                Verdict::Drop(Drop::Stranger),
                "{src} on {port}"
            );
        }
        assert_eq!(r.counters().drops_stranger, before + 3);
        // The NAT mapping changed and the old one fell silent: re-latch.
        let later = t0 + Duration::from_secs(3);
        let moved = addr("192.0.2.10:62000");
        assert!(matches!(
            r.on_packet(later, a, moved, &rtp(4, 480)),
            Verdict::Forward { .. }
        ));
        assert_eq!(
            r.on_packet(later, b, addr("198.51.100.20:5000"), &rtp(5, 640)),
            Verdict::Forward { from: a, to: moved }
        );
    }

    #[test]
    fn bad_packets_are_counted_and_never_latch() {
        let mut r = relay((10000, 10099));
        let t0 = Instant::now();
        let (id, a, _) = call(
            &mut r,
            t0,
            &sdp("10.0.0.5", 4000, ""),
            &sdp("198.51.100.20", 5000, ""),
        );
        let src = addr("192.0.2.10:61000");
        let mut v1 = rtp(1, 0);
        v1[0] = 0x40;
        for p in [&rtp(1, 0)[..5], &v1[..]] {
            assert!(matches!(
                r.on_packet(t0, a, src, p),
                Verdict::Drop(Drop::Malformed(_))
            ));
        }
        assert_eq!(r.counters().drops_malformed, 2);
        // Valid packets, then an absurd jump: dropped, not in the stats.
        for i in 0..10u16 {
            r.on_packet(t0, a, src, &rtp(i, 160 * u32::from(i)));
        }
        assert_eq!(
            r.on_packet(t0, a, src, &rtp(40_000, 0)),
            Verdict::Drop(Drop::AbsurdSequence)
        );
        let rep = r.report(id).unwrap();
        assert_eq!(rep.streams[0].lost, 0);
        assert_eq!(r.counters().drops_absurd, 1);
    }

    #[test]
    fn nothing_goes_out_before_the_other_side_is_known() {
        let mut r = relay((10000, 10099));
        let t0 = Instant::now();
        let id = r.create(t0, ip("192.0.2.10"), false, Mode::Bridge).unwrap();
        r.rewrite(
            id,
            Side::Caller,
            ip("192.0.2.10"),
            &sdp("192.0.2.10", 4000, ""),
            ip(RELAY),
        )
        .unwrap();
        let a = r.port(id, 0, Side::Caller).unwrap();
        assert_eq!(
            r.on_packet(t0, a, addr("192.0.2.10:4000"), &rtp(1, 0)),
            Verdict::Drop(Drop::NoDestination)
        );
    }

    #[test]
    fn rtcp_goes_port_plus_one_or_muxed_and_times_the_round_trip() {
        let mut r = relay((10000, 10099));
        let t0 = Instant::now();
        let (id, a, b) = call(
            &mut r,
            t0,
            &sdp("192.0.2.10", 4000, ""),
            &sdp("198.51.100.20", 5000, ""),
        );
        // An SR from the callee (RTCP port) goes to the caller's RTCP port
        // from ours; the caller's RR naming it comes back 30 ms later with
        // 10 ms of DLSR: the caller leg's round trip is 20 ms.
        let ntp: u64 = 0x1122_3344_5566_7788;
        let sr = report(0x2222, Some(ntp), &[]);
        assert_eq!(
            r.on_packet(t0, b + 1, addr("198.51.100.20:5001"), &sr),
            Verdict::Forward {
                from: a + 1,
                to: addr("192.0.2.10:4001")
            }
        );
        let lsr = crate::rtp::ntp_middle32(ntp);
        let dlsr = 655; // 10 ms in 1/65536 s
        let rr = report(0x1111, None, &[block(0x2222, 0, lsr, dlsr)]);
        let t1 = t0 + Duration::from_millis(30);
        assert!(matches!(
            r.on_packet(t1, a + 1, addr("192.0.2.10:4001"), &rr),
            Verdict::Forward { .. }
        ));
        // And the other leg the same way: 40 ms.
        let sr2 = report(0x1111, Some(ntp + (1 << 32)), &[]);
        r.on_packet(t1, a + 1, addr("192.0.2.10:4001"), &sr2);
        let rr2 = report(
            0x2222,
            None,
            &[block(
                0x1111,
                0,
                crate::rtp::ntp_middle32(ntp + (1 << 32)),
                0,
            )],
        );
        r.on_packet(
            t1 + Duration::from_millis(40),
            b + 1,
            addr("198.51.100.20:5001"),
            &rr2,
        );
        let rep = r.report(id).unwrap();
        let rtt = rep.streams[0].rtt_ms.expect("both legs timed");
        assert!((rtt - 60.0).abs() < 0.5, "{rtt}");
        // With rtcp-mux on both sides, RTCP arrives on and leaves from the
        // RTP ports.
        let mut r = relay((10000, 10099));
        let (_, a, b) = call(
            &mut r,
            t0,
            &sdp("192.0.2.10", 4000, "a=rtcp-mux\r\n"),
            &sdp("198.51.100.20", 5000, "a=rtcp-mux\r\n"),
        );
        assert_eq!(
            r.on_packet(t0, b, addr("198.51.100.20:5000"), &sr),
            Verdict::Forward {
                from: a,
                to: addr("192.0.2.10:4000")
            }
        );
    }

    #[test]
    fn silence_ends_an_answered_call_and_hold_waits_longer() {
        let mut r = relay((10000, 10099));
        let t0 = Instant::now();
        // Ringing: no timeout however long.
        let ringing = r.create(t0, ip("192.0.2.30"), false, Mode::Bridge).unwrap();
        r.rewrite(
            ringing,
            Side::Caller,
            ip("192.0.2.30"),
            &sdp("192.0.2.30", 4000, ""),
            ip(RELAY),
        )
        .unwrap();
        let (id, a, _) = call(
            &mut r,
            t0,
            &sdp("192.0.2.10", 4000, ""),
            &sdp("198.51.100.20", 5000, ""),
        );
        let (held, _, _) = call(
            &mut r,
            t0,
            &sdp("192.0.2.11", 4000, "a=sendonly\r\n"),
            &sdp("198.51.100.21", 5000, "a=recvonly\r\n"),
        );
        r.on_packet(
            t0 + Duration::from_secs(30),
            a,
            addr("192.0.2.10:4000"),
            &rtp(1, 0),
        );
        for s in 1..=95 {
            let t = t0 + Duration::from_secs(s);
            if r.poll_timeout().is_some_and(|d| d <= t) {
                r.handle_timeout(t);
            }
        }
        let events: Vec<Event> = std::iter::from_fn(|| r.poll_event()).collect();
        assert_eq!(events, vec![Event::MediaTimeout(id)]);
        assert_eq!(r.counters().media_timeouts, 1);
        let _ = (held, ringing);
    }

    #[test]
    fn ports_are_bounded_per_call_per_source_and_in_total() {
        // 8 pairs: 4 calls of one stream.
        let mut r = relay((10000, 10015));
        r.cfg.max_sessions_per_source = 2;
        let t0 = Instant::now();
        let src = ip("192.0.2.10");
        let offer = sdp("192.0.2.10", 4000, "");
        let mut ids = Vec::new();
        for _ in 0..2 {
            let id = r.create(t0, src, false, Mode::Bridge).unwrap();
            r.rewrite(id, Side::Caller, src, &offer, ip(RELAY)).unwrap();
            ids.push(id);
        }
        assert_eq!(
            r.create(t0, src, false, Mode::Bridge),
            Err(RelayError::PerSource)
        );
        // Exempt (trusted) sources are not counted per source.
        for _ in 0..2 {
            let id = r.create(t0, src, true, Mode::Bridge).unwrap();
            r.rewrite(id, Side::Caller, src, &offer, ip(RELAY)).unwrap();
            ids.push(id);
        }
        assert_eq!(r.free_pairs(), 0);
        let id = r.create(t0, src, true, Mode::Bridge).unwrap();
        assert_eq!(
            r.rewrite(id, Side::Caller, src, &offer, ip(RELAY)),
            Err(RelayError::NoPorts)
        );
        r.release(id);
        // Five media sections when four are allowed: refused, 488.
        r.release(ids.pop().unwrap());
        let id = r.create(t0, src, true, Mode::Bridge).unwrap();
        let five = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n{}",
            "m=audio 4000 RTP/AVP 0\r\n".repeat(5)
        );
        let e = r
            .rewrite(id, Side::Caller, src, five.as_bytes(), ip(RELAY))
            .unwrap_err();
        assert!(
            matches!(e, RelayError::NoPorts | RelayError::TooManyStreams),
            "{e:?}"
        );
        // Unparsable SDP: 488.
        let e = r
            .rewrite(id, Side::Caller, src, b"hello", ip(RELAY))
            .unwrap_err();
        assert_eq!(e.status().0, 488);
        for id in ids {
            r.release(id);
        }
        r.release(id);
        assert!(r.ports().open.is_empty());
        assert_eq!(r.free_pairs(), 8);
        // A pair another program holds is skipped, not fatal.
        let mut r = relay((10000, 10005));
        r.ports_mut().taken.insert(10000);
        let id = r.create(t0, src, false, Mode::Bridge).unwrap();
        r.rewrite(id, Side::Caller, src, &offer, ip(RELAY)).unwrap();
        let mut got = [
            r.port(id, 0, Side::Caller).unwrap(),
            r.port(id, 0, Side::Callee).unwrap(),
        ];
        got.sort();
        assert_eq!(got, [10002, 10004]);
    }

    #[test]
    fn echo_sends_back_and_the_player_plays_then_hangs_up() {
        let mut r = relay((10000, 10099));
        let t0 = Instant::now();
        let id = r.create(t0, ip("192.0.2.10"), false, Mode::Echo).unwrap();
        let ans = r
            .answer(
                id,
                ip("192.0.2.10"),
                &sdp("192.0.2.10", 4000, ""),
                ip(RELAY),
                1,
            )
            .unwrap()
            .unwrap();
        let a = r.port(id, 0, Side::Caller).unwrap();
        let text = String::from_utf8(ans).unwrap();
        assert!(text.contains(&format!("m=audio {a} RTP/AVP 0")), "{text}");
        r.answered(id, t0);
        let src = addr("192.0.2.10:4000");
        assert_eq!(
            r.on_packet(t0, a, src, &rtp(1, 0)),
            Verdict::Forward { from: a, to: src }
        );
        // Player: 3 frames of µ-law, played once.
        let wav = crate::wav::tests::wav(7, 8, 8000, 1, &[0x55u8; 480]);
        let audio = std::sync::Arc::new(crate::wav::Audio::from_wav(&wav).unwrap());
        let p = r
            .create(
                t0,
                ip("192.0.2.10"),
                false,
                Mode::Player {
                    audio,
                    looped: false,
                },
            )
            .unwrap();
        // The caller offers G.729 and PCMA: PCMA is what we can play.
        let offer = b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4002 RTP/AVP 18 8\r\n";
        let ans = r
            .answer(p, ip("192.0.2.10"), offer, ip(RELAY), 1)
            .unwrap()
            .unwrap();
        assert!(String::from_utf8(ans)
            .unwrap()
            .contains("a=rtpmap:8 PCMA/8000"));
        let pp = r.port(p, 0, Side::Caller).unwrap();
        r.answered(p, t0);
        let mut sent = Vec::new();
        for ms in (0..200).step_by(10) {
            let t = t0 + Duration::from_millis(ms);
            if r.poll_timeout().is_some_and(|d| d <= t) {
                r.handle_timeout(t);
            }
            while let Some(x) = r.poll_transmit() {
                sent.push(x);
            }
        }
        assert_eq!(sent.len(), 3);
        for (i, (from, to, pkt)) in sent.iter().enumerate() {
            assert_eq!(*from, pp);
            assert_eq!(*to, addr("192.0.2.10:4002"));
            let h = crate::rtp::parse_rtp(pkt).unwrap();
            assert_eq!(h.payload_type, 8);
            assert_eq!(h.payload_len, 160);
            assert_eq!(
                h.seq,
                crate::rtp::parse_rtp(&sent[0].2)
                    .unwrap()
                    .seq
                    .wrapping_add(i as u16)
            );
        }
        let events: Vec<Event> = std::iter::from_fn(|| r.poll_event()).collect();
        assert!(events.contains(&Event::PlayerDone(p)), "{events:?}");
        // Looped: past the end it starts again, and never hangs up.
        let l = r
            .create(
                t0,
                ip("192.0.2.10"),
                false,
                Mode::Player {
                    audio: std::sync::Arc::new(crate::wav::Audio::from_wav(&wav).unwrap()),
                    looped: true,
                },
            )
            .unwrap();
        let offer = b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4004 RTP/AVP 0\r\n";
        r.answer(l, ip("192.0.2.10"), offer, ip(RELAY), 1)
            .unwrap()
            .unwrap();
        r.answered(l, t0);
        let mut looped = 0;
        for ms in (0..200).step_by(10) {
            let t = t0 + Duration::from_millis(ms);
            if r.poll_timeout().is_some_and(|d| d <= t) {
                r.handle_timeout(t);
            }
            while let Some((_, to, _)) = r.poll_transmit() {
                if to == addr("192.0.2.10:4004") {
                    looped += 1;
                }
            }
        }
        assert_eq!(looped, 10, "20 ms frames over 200 ms, wrapping after 3");
        assert!(!std::iter::from_fn(|| r.poll_event()).any(|e| e == Event::PlayerDone(l)));
        // A codec the player cannot encode: no answer.
        let q = r
            .create(
                t0,
                ip("192.0.2.10"),
                false,
                Mode::Player {
                    audio: std::sync::Arc::new(crate::wav::Audio::from_wav(&wav).unwrap()),
                    looped: true,
                },
            )
            .unwrap();
        let g729 = b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4002 RTP/AVP 18\r\n";
        assert_eq!(r.answer(q, ip("192.0.2.10"), g729, ip(RELAY), 1), Ok(None));
    }

    #[test]
    fn a_lossy_stream_scores_what_the_e_model_says() {
        let mut r = relay((10000, 10099));
        let t0 = Instant::now();
        let (id, a, _) = call(
            &mut r,
            t0,
            &sdp("192.0.2.10", 4000, ""),
            &sdp("198.51.100.20", 5000, ""),
        );
        // Every 20th packet lost: 5 %.
        for i in 0..2001u16 {
            if i % 20 == 10 {
                continue;
            }
            let t = t0 + Duration::from_millis(20 * u64::from(i));
            r.on_packet(t, a, addr("192.0.2.10:4000"), &rtp(i, 160 * u32::from(i)));
        }
        let s = &r.report(id).unwrap().streams[0];
        assert!((s.loss_pct - 5.0).abs() < 0.1, "{}", s.loss_pct);
        let expect = emodel::score(
            emodel::codec_constants("PCMU", true),
            &Measured {
                loss_pct: s.loss_pct,
                burst_ratio: s.burst_ratio,
                jitter_ms: s.jitter_ms,
                packetisation_ms: 20.0,
                rtt_ms: None,
            },
        );
        assert_eq!(s.score, expect);
        let Score::Rated { mos, .. } = s.score else {
            panic!()
        };
        assert!(mos < 4.0 && mos > 3.0, "{mos}");
    }
}
#[cfg(test)]
mod captured {
    //! RTCP captured from two baresip 1.0 phones calling through the relay
    //! (tshark on loopback): the relay must time both legs from them.
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    struct AnyPorts;
    impl Ports for AnyPorts {
        fn open(&mut self, _: u16) -> bool {
            true
        }
        fn close(&mut self, _: u16) {}
    }

    #[test]
    fn baresip_sender_reports_time_both_legs() {
        // A's SR at 5.000 s, B's SR (with a block for A's) 1.5 ms later,
        // then the same 5 s on with blocks for each other's.
        let a1 = hex("81c8000cca742cb4eead70c01ff477350001161c000000fa00009c40e334374100000000000060090000000a000000000000000081ca000bca742cb401237369703a31303031406578616d706c652e746573743b7472616e73706f72743d756470000000");
        let b1 = hex("81c8000ce3343741eead70c02057afea0001213c000000fa00009c40ca742cb40000000000006b6e0000000c70c01ff40000004181ca0007e334374101157369703a31303030406578616d706c652e7465737400");
        let a2 = hex("81c8000cca742cb4eead70c51feaa2a00001b274000001f400013880e334374100000000000061030000000a70c020570004ff7c81ca000bca742cb401237369703a31303031406578616d706c652e746573743b7472616e73706f72743d756470000000");
        let b2 = hex("81c8000ce3343741eead70c520665e020001bd9c000001f400013880ca742cb40000000000006c690000000b70c51fea0000008381ca0007e334374101157369703a31303030406578616d706c652e7465737400");
        let mut r = Relay::new(RelayConfig::default(), AnyPorts, 1);
        let t0 = Instant::now();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let id = r.create(t0, ip, false, Mode::Bridge).unwrap();
        let sdp = |p: u16| {
            format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {p} RTP/AVP 0\r\n")
                .into_bytes()
        };
        r.rewrite(id, Side::Caller, ip, &sdp(31208), ip).unwrap();
        r.rewrite(id, Side::Callee, ip, &sdp(34394), ip).unwrap();
        let pa = r.port(id, 0, Side::Caller).unwrap() + 1;
        let pb = r.port(id, 0, Side::Callee).unwrap() + 1;
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:31209".parse().unwrap(),
            "127.0.0.1:34395".parse().unwrap(),
        );
        let us = |n: u64| t0 + Duration::from_micros(n);
        for (t, port, src, pkt) in [
            (0, pa, a, &a1),
            (1_490, pb, b, &b1),
            (4_999_855, pa, a, &a2),
            (5_001_700, pb, b, &b2),
        ] {
            assert!(matches!(
                r.on_packet(us(t), port, src, pkt),
                Verdict::Forward { .. }
            ));
        }
        let rep = r.report(id).unwrap();
        let rtt = rep.streams[0].rtt_ms.expect("both legs timed");
        // 0.37 ms on A's leg, 0.51 ms on B's: loopback.
        assert!((rtt - 0.877).abs() < 0.05, "{rtt}");
        assert!(matches!(
            rep.streams[0].score,
            Score::Rated {
                listening_only: false,
                ..
            }
        ));
    }
}
