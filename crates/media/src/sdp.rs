//! SDP (RFC 8866, formerly RFC 4566) parsing and rewriting for the RTP
//! relay, sans-IO: [`Sdp::parse`] gives a bounded view over the body,
//! [`Sdp::rewrite`] points the media at the relay the way rtpengine and
//! Kamailio's rtpproxy module do.
//!
//! Parsing never panics and never allocates beyond [`SdpLimits`]: the body
//! length, the line count and the m= count are checked before anything is
//! stored, and per section at most [`MAX_PAYLOAD_TYPES`] payload types and
//! [`MAX_RTPMAPS`] a=rtpmap entries are kept.
//!
//! What is validated: only what the relay acts on. `v=0` first, every line
//! `<lowercase letter>=…` without NUL or stray CR (a receiver splitting on a
//! bare CR would read a line we never checked), m= lines (port, payload
//! types of RTP profiles), c= lines and a=rtcp. Hints the relay can do
//! without (a=ptime, a=rtpmap) are ignored when malformed and, like every
//! line not rewritten, kept verbatim. Where a line may only appear once
//! (c=, a=rtcp, a direction, a=ptime, a=rtpmap per payload type) the first
//! one counts.
//!
//! A host name in c= is rejected (`Malformed("c= host name")`): the relay
//! cannot latch to a name, resolving one on the call-setup path is I/O this
//! crate does not do, and resolving names an attacker picked is a
//! reflection risk; UAs send addresses in practice, so the caller answers
//! 488 to the rare one that does not.
//!
//! Rewrite policy (see [`Sdp::rewrite`] for the details):
//! - o= stays as is: the session version belongs to the UA, and the rewrite
//!   is deterministic, so a retransmitted offer yields identical bytes.
//! - a=rtcp is rewritten, not removed, like rtpengine: to the relay RTP port
//!   under a=rtcp-mux (RFC 5761), else to the relay port + 1.
//! - ICE attributes are removed: the relay's address is the only candidate,
//!   and stale candidates would let the peers bypass (or fail around) it.
//! - Hold: a zero address with an explicit a=sendonly/recvonly/inactive gets
//!   the relay address (the direction keeps the hold, media such as music on
//!   hold flows through the relay); a zero address with no such attribute
//!   (RFC 2543 hold) is the only hold signal, so it stays a zero address
//!   (in the relay's family, as rtpengine does) with the relay port.
//! - Multicast TTL and m= port-count suffixes are dropped on rewritten
//!   sections: the relay anchors one unicast port pair.
//! - a=fingerprint, a=setup, a=crypto, a=ssrc, b=, a=group and the rest
//!   stay verbatim; whether the relay can carry a proto (e.g. TCP/MSRP) or a
//!   BUNDLE group is the caller's call, made by passing `None` as the port.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Payload types kept per m= line; further ones are validated, not stored.
pub const MAX_PAYLOAD_TYPES: usize = 32;
/// a=rtpmap entries kept per media section.
pub const MAX_RTPMAPS: usize = 32;
/// Packetisation time without a=ptime: RFC 3551 §4.2's default for the
/// audio codecs a SIP server meets.
pub const DEFAULT_PTIME_MS: u32 = 20;
/// a=ptime values above this are ignored as nonsense (and would overflow
/// sample arithmetic at 48 kHz in callers).
const MAX_PTIME_MS: u32 = 1000;

const WS: [char; 2] = [' ', '\t'];

/// Bounds on what [`Sdp::parse`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdpLimits {
    /// Body length in bytes.
    pub max_len: usize,
    /// Non-empty lines.
    pub max_lines: usize,
    /// m= sections.
    pub max_media: usize,
}

impl Default for SdpLimits {
    /// 16 KiB, 256 lines, 8 media sections: a browser's audio+video offer
    /// with candidates is about 6 KiB and 150 lines.
    fn default() -> Self {
        SdpLimits {
            max_len: 16 * 1024,
            max_lines: 256,
            max_media: 8,
        }
    }
}

/// Why a body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpError {
    TooLong,
    TooManyLines,
    TooManyMedia,
    NotUtf8,
    /// What was wrong, for logs.
    Malformed(&'static str),
    /// An enabled media section with no c= at media or session level.
    NoConnection,
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdpError::TooLong => f.write_str("SDP body too long"),
            SdpError::TooManyLines => f.write_str("too many SDP lines"),
            SdpError::TooManyMedia => f.write_str("too many SDP media sections"),
            SdpError::NotUtf8 => f.write_str("SDP body is not UTF-8"),
            SdpError::Malformed(what) => write!(f, "malformed SDP: {what}"),
            SdpError::NoConnection => f.write_str("SDP media section without a connection address"),
        }
    }
}

impl std::error::Error for SdpError {}

/// Media direction (RFC 8866 §6.7): media level, else session level, else
/// sendrecv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The attribute name (`sendrecv`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attr(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(name))
    }
}

/// One m= section as the relay sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDesc {
    /// "audio", "video", "image", ...
    pub kind: String,
    /// RTP port; 0 is a disabled (rejected) stream.
    pub port: u16,
    /// "RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", "udptl", ...
    pub proto: String,
    /// The m= line's formats, for RTP profiles only (others' formats are
    /// not payload types), at most [`MAX_PAYLOAD_TYPES`], in offer order.
    pub payload_types: Vec<u8>,
    /// Effective connection address (media-level c= over session-level);
    /// `None` for a zero address (see `hold_addr`) and for a disabled
    /// section without any c=.
    pub addr: Option<IpAddr>,
    /// The effective c= address was 0.0.0.0 or :: (RFC 2543 hold).
    pub hold_addr: bool,
    /// a=rtcp (RFC 3605): port and, if given, address as written (may be a
    /// zero address, as in WebRTC's `a=rtcp:9 IN IP4 0.0.0.0`).
    pub rtcp: Option<(u16, Option<IpAddr>)>,
    /// a=rtcp-mux (RFC 5761).
    pub rtcp_mux: bool,
    pub direction: Direction,
    /// a=ptime, whole milliseconds (a fraction is dropped), 1..=1000.
    pub ptime_ms: Option<u32>,
    /// a=rtpmap: payload type, encoding name, clock rate; at most
    /// [`MAX_RTPMAPS`], first per payload type.
    pub rtpmap: Vec<(u8, String, u32)>,
}

impl MediaDesc {
    /// Port not 0.
    pub fn is_enabled(&self) -> bool {
        self.port != 0
    }

    /// Encoding name and clock rate of payload type `pt`: its a=rtpmap,
    /// else the RFC 3551 static assignment.
    pub fn codec_of(&self, pt: u8) -> Option<(&str, u32)> {
        self.rtpmap
            .iter()
            .find(|(p, ..)| *p == pt)
            .map(|(_, name, rate)| (name.as_str(), *rate))
            .or_else(|| static_payload_type(pt))
    }
}

/// RFC 3551 §6 static payload types: encoding name and clock rate.
pub fn static_payload_type(pt: u8) -> Option<(&'static str, u32)> {
    Some(match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        5 => ("DVI4", 8000),
        6 => ("DVI4", 16000),
        7 => ("LPC", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        10 | 11 => ("L16", 44100),
        12 => ("QCELP", 8000),
        13 => ("CN", 8000),
        14 => ("MPA", 90000),
        15 => ("G728", 8000),
        16 => ("DVI4", 11025),
        17 => ("DVI4", 22050),
        18 => ("G729", 8000),
        25 => ("CelB", 90000),
        26 => ("JPEG", 90000),
        28 => ("nv", 90000),
        31 => ("H261", 90000),
        32 => ("MPV", 90000),
        33 => ("MP2T", 90000),
        34 => ("H263", 90000),
        _ => return None,
    })
}

/// Where a media section sits in `Sdp::lines`.
#[derive(Debug, Clone)]
struct Section {
    /// Index of the m= line.
    m_line: usize,
    /// One past the section's last line.
    end: usize,
    /// Byte range of the port field (with any `/count`) in the m= line.
    port_span: (usize, usize),
    /// The section has its own c=.
    has_c: bool,
}

/// A parsed SDP body: a view over the original text plus what the relay
/// needs of each media section.
#[derive(Debug, Clone)]
pub struct Sdp<'a> {
    /// Non-empty lines without their line ending.
    lines: Vec<&'a str>,
    media: Vec<MediaDesc>,
    sections: Vec<Section>,
    body_len: usize,
}

/// A media section being parsed.
struct Pending {
    desc: MediaDesc,
    section: Section,
    conn: Option<IpAddr>,
    dir: Option<Direction>,
}

#[derive(Default)]
struct Session {
    conn: Option<IpAddr>,
    dir: Option<Direction>,
}

impl<'a> Sdp<'a> {
    /// Parses `body` within `limits`. Accepts CRLF and bare LF line endings
    /// and skips empty lines.
    pub fn parse(body: &'a [u8], limits: &SdpLimits) -> Result<Sdp<'a>, SdpError> {
        if body.len() > limits.max_len {
            return Err(SdpError::TooLong);
        }
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        let mut lines: Vec<&'a str> = Vec::new();
        let mut media = Vec::new();
        let mut sections = Vec::new();
        let mut session = Session::default();
        let mut cur: Option<Pending> = None;

        for raw in text.split('\n') {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            if lines.len() >= limits.max_lines {
                return Err(SdpError::TooManyLines);
            }
            let b = line.as_bytes();
            if b.len() < 2 || !b[0].is_ascii_lowercase() || b[1] != b'=' {
                return Err(SdpError::Malformed("line syntax"));
            }
            if b.iter().any(|&c| c == b'\r' || c == 0) {
                return Err(SdpError::Malformed("control character in line"));
            }
            if lines.is_empty() && line.trim_end_matches(WS) != "v=0" {
                return Err(SdpError::Malformed("first line not v=0"));
            }
            let index = lines.len();
            lines.push(line);
            let value = &line[2..];
            match (b[0], cur.as_mut()) {
                (b'm', _) => {
                    if let Some(done) = cur.take() {
                        finish(done, index, &session, &mut media, &mut sections)?;
                    }
                    if media.len() >= limits.max_media {
                        return Err(SdpError::TooManyMedia);
                    }
                    cur = Some(parse_m(value, index)?);
                }
                (b'c', Some(p)) => {
                    let ip = parse_conn(value)?;
                    p.conn.get_or_insert(ip);
                    p.section.has_c = true;
                }
                (b'c', None) => {
                    let ip = parse_conn(value)?;
                    session.conn.get_or_insert(ip);
                }
                (b'a', Some(p)) => media_attr(p, value)?,
                (b'a', None) => {
                    let (name, val) = split_attr(value);
                    if let Some(d) = val.is_none().then(|| Direction::from_attr(name)).flatten() {
                        session.dir.get_or_insert(d);
                    }
                }
                _ => {}
            }
        }
        if lines.is_empty() {
            return Err(SdpError::Malformed("first line not v=0"));
        }
        if let Some(done) = cur.take() {
            finish(done, lines.len(), &session, &mut media, &mut sections)?;
        }
        Ok(Sdp {
            lines,
            media,
            sections,
            body_len: body.len(),
        })
    }

    /// The media sections in order.
    pub fn media(&self) -> &[MediaDesc] {
        &self.media
    }

    /// The codec of section `media_index`'s first (preferred) payload type:
    /// encoding name and clock rate, from its a=rtpmap or, failing that, the
    /// RFC 3551 static assignments. `None` for an unknown section, a non-RTP
    /// section, or a dynamic payload type without a=rtpmap.
    pub fn codec(&self, media_index: usize) -> Option<(&str, u32)> {
        let m = self.media.get(media_index)?;
        m.codec_of(*m.payload_types.first()?)
    }

    /// Section `media_index`'s a=ptime, else [`DEFAULT_PTIME_MS`].
    pub fn ptime_or_default(&self, media_index: usize) -> u32 {
        self.media
            .get(media_index)
            .and_then(|m| m.ptime_ms)
            .unwrap_or(DEFAULT_PTIME_MS)
    }

    /// The body rewritten to anchor media at the relay address `relay`:
    /// section `i` gets RTP port `ports[i]` (missing entries count as
    /// `None`, extra ones are ignored). `None` leaves a section as it is,
    /// and so do disabled sections (port 0) whatever `ports` says.
    ///
    /// In each rewritten section: the m= port; the first media-level c= (a
    /// further one, only meaningful for multicast, is dropped), or a c=
    /// added after m=/i= when the section relies on a session-level c= that
    /// cannot be pointed at the relay; the first a=rtcp becomes
    /// `a=rtcp:<port>` under rtcp-mux, else `a=rtcp:<port + 1>`, with the
    /// relay address if the original named one (dropped if port + 1
    /// overflows or the port is 0); ICE attributes removed. Hold: see the
    /// module documentation.
    ///
    /// The session-level c= is pointed at the relay when every enabled
    /// section relying on it is rewritten to the same address (so a plain
    /// offer stays plain); otherwise it is kept for the sections left
    /// alone. Session-level ICE attributes are removed when no enabled
    /// section is left alone. Everything else is kept verbatim, lines end
    /// in CRLF, and empty lines are dropped.
    pub fn rewrite(&self, relay: IpAddr, ports: &[Option<u16>]) -> Vec<u8> {
        // A zero address in the relay's family, for RFC 2543 holds.
        let zero = match relay {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let targets: Vec<Option<(u16, IpAddr)>> = self
            .media
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let port = ports.get(i).copied().flatten()?;
                if !m.is_enabled() {
                    return None;
                }
                let rfc2543_hold = m.hold_addr && m.direction == Direction::SendRecv;
                Some((port, if rfc2543_hold { zero } else { relay }))
            })
            .collect();
        let any_rewritten = targets.iter().any(Option::is_some);
        let any_left_alone = self
            .media
            .iter()
            .zip(&targets)
            .any(|(m, t)| m.is_enabled() && t.is_none());

        // The address the session-level c= can take: the one shared by all
        // enabled sections relying on it, if they are all rewritten.
        let mut users = self
            .media
            .iter()
            .zip(&self.sections)
            .zip(&targets)
            .filter(|((m, s), _)| m.is_enabled() && !s.has_c)
            .map(|(_, t)| t.map(|(_, addr)| addr));
        let session_target = match users.next() {
            None => any_rewritten.then_some(relay),
            Some(first) => {
                if users.all(|a| a == first) {
                    first
                } else {
                    None
                }
            }
        };
        let strip_session_ice = any_rewritten && !any_left_alone;

        let mut out = String::with_capacity(self.body_len + 64 * (1 + self.media.len()));
        let first_m = self.sections.first().map_or(self.lines.len(), |s| s.m_line);
        let mut session_c_done = false;
        for &line in &self.lines[..first_m] {
            if line.starts_with("c=") {
                if let Some(addr) = session_target {
                    if !session_c_done {
                        push_c(&mut out, addr);
                        session_c_done = true;
                    }
                    continue;
                }
            } else if strip_session_ice && line.strip_prefix("a=").is_some_and(is_ice_attr) {
                continue;
            }
            push_line(&mut out, line);
        }

        for ((sec, m), target) in self.sections.iter().zip(&self.media).zip(&targets) {
            let lines = &self.lines[sec.m_line..sec.end];
            let Some((port, addr)) = *target else {
                for &line in lines {
                    push_line(&mut out, line);
                }
                continue;
            };
            let m_line = lines[0];
            let (start, end) = sec.port_span;
            let _ = write!(out, "{}{port}{}\r\n", &m_line[..start], &m_line[end..]);

            let mut need_c = !sec.has_c && session_target != Some(addr);
            let mut c_done = false;
            let mut rtcp_done = false;
            for &line in &lines[1..] {
                // c= goes after i= (RFC 8866 §5 field order).
                if need_c && !line.starts_with("i=") {
                    push_c(&mut out, addr);
                    need_c = false;
                }
                if line.starts_with("c=") {
                    if !c_done {
                        push_c(&mut out, addr);
                        c_done = true;
                    }
                    continue;
                }
                if let Some(attr) = line.strip_prefix("a=") {
                    if is_ice_attr(attr) {
                        continue;
                    }
                    if split_attr(attr).0.eq_ignore_ascii_case("rtcp") {
                        if !rtcp_done {
                            rtcp_done = true;
                            push_rtcp(&mut out, m, port, addr);
                        }
                        continue;
                    }
                }
                push_line(&mut out, line);
            }
            if need_c {
                push_c(&mut out, addr);
            }
        }
        out.into_bytes()
    }
}

/// Closes media section `p`, which ends before line `end`.
fn finish(
    mut p: Pending,
    end: usize,
    session: &Session,
    media: &mut Vec<MediaDesc>,
    sections: &mut Vec<Section>,
) -> Result<(), SdpError> {
    match p.conn.or(session.conn) {
        Some(ip) if ip.is_unspecified() => p.desc.hold_addr = true,
        Some(ip) => p.desc.addr = Some(ip),
        // A rejected stream needs no address to be understood.
        None if p.desc.port == 0 => {}
        None => return Err(SdpError::NoConnection),
    }
    p.desc.direction = p.dir.or(session.dir).unwrap_or_default();
    p.section.end = end;
    media.push(p.desc);
    sections.push(p.section);
    Ok(())
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...` (value after `m=`).
fn parse_m(value: &str, index: usize) -> Result<Pending, SdpError> {
    const BAD: SdpError = SdpError::Malformed("m= line");
    let mut f = fields(value);
    let (_, kind) = f.next().ok_or(BAD)?;
    let (port_at, port_field) = f.next().ok_or(BAD)?;
    let (_, proto) = f.next().ok_or(BAD)?;
    let (port, count) = match port_field.split_once('/') {
        Some((p, c)) => (p, Some(c)),
        None => (port_field, None),
    };
    let port: u16 = num(port).ok_or(SdpError::Malformed("m= port"))?;
    if let Some(c) = count {
        num::<u16>(c)
            .filter(|&n| n > 0)
            .ok_or(SdpError::Malformed("m= port count"))?;
    }
    // Formats are payload types only under RTP profiles (RFC 8866 §5.14).
    let rtp = proto
        .as_bytes()
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"RTP/"));
    let mut payload_types = Vec::new();
    let mut formats = 0usize;
    for (_, fmt) in f {
        formats += 1;
        if rtp {
            let pt = num::<u8>(fmt)
                .filter(|&pt| pt <= 127)
                .ok_or(SdpError::Malformed("m= payload type"))?;
            if payload_types.len() < MAX_PAYLOAD_TYPES {
                payload_types.push(pt);
            }
        }
    }
    // Tolerated on rejected streams, which some UAs write without formats.
    if formats == 0 && port != 0 {
        return Err(SdpError::Malformed("m= without formats"));
    }
    let start = 2 + port_at;
    Ok(Pending {
        desc: MediaDesc {
            kind: kind.to_string(),
            port,
            proto: proto.to_string(),
            payload_types,
            addr: None,
            hold_addr: false,
            rtcp: None,
            rtcp_mux: false,
            direction: Direction::SendRecv,
            ptime_ms: None,
            rtpmap: Vec::new(),
        },
        section: Section {
            m_line: index,
            end: index + 1,
            port_span: (start, start + port_field.len()),
            has_c: false,
        },
        conn: None,
        dir: None,
    })
}

/// A media-level a= line (value after `a=`).
fn media_attr(p: &mut Pending, value: &str) -> Result<(), SdpError> {
    let (name, val) = split_attr(value);
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    match val {
        None if is("rtcp-mux") => p.desc.rtcp_mux = true,
        None => {
            if let Some(d) = Direction::from_attr(name) {
                p.dir.get_or_insert(d);
            }
        }
        Some(v) if is("rtcp") => {
            let rtcp = parse_rtcp(v)?;
            p.desc.rtcp.get_or_insert(rtcp);
        }
        Some(v) if is("ptime") => {
            if p.desc.ptime_ms.is_none() {
                p.desc.ptime_ms = parse_ptime(v);
            }
        }
        Some(v) if is("rtpmap") => {
            if let Some(entry) = parse_rtpmap(v) {
                let known = p.desc.rtpmap.iter().any(|(pt, ..)| *pt == entry.0);
                if !known && p.desc.rtpmap.len() < MAX_RTPMAPS {
                    p.desc.rtpmap.push(entry);
                }
            }
        }
        Some(_) => {}
    }
    Ok(())
}

/// `<nettype> <addrtype> <address>[/<ttl>[/<count>]]` (value after `c=`),
/// the address as written (zero addresses included).
fn parse_conn(value: &str) -> Result<IpAddr, SdpError> {
    let mut f = fields(value).map(|(_, s)| s);
    let (Some(net), Some(family), Some(addr), None) = (f.next(), f.next(), f.next(), f.next())
    else {
        return Err(SdpError::Malformed("c= line"));
    };
    if !net.eq_ignore_ascii_case("IN") {
        return Err(SdpError::Malformed("c= network type"));
    }
    // Multicast TTL and address count: tolerated, not used.
    let mut parts = addr.split('/');
    let host = parts.next().unwrap_or_default();
    for (i, suffix) in parts.enumerate() {
        if i >= 2 || num::<u32>(suffix).is_none() {
            return Err(SdpError::Malformed("c= address suffix"));
        }
    }
    let ip = if family.eq_ignore_ascii_case("IP4") {
        host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else if family.eq_ignore_ascii_case("IP6") {
        host.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        return Err(SdpError::Malformed("c= address type"));
    };
    ip.ok_or(if is_host_name(host) {
        SdpError::Malformed("c= host name")
    } else {
        SdpError::Malformed("c= address")
    })
}

/// A plausible DNS name, to tell "a name we refuse" from garbage in logs.
fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes().any(|b| b.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `<port> [<nettype> <addrtype> <address>]` (RFC 3605).
fn parse_rtcp(v: &str) -> Result<(u16, Option<IpAddr>), SdpError> {
    let v = v.trim_matches(WS);
    let (port, rest) = match v.split_once(' ') {
        Some((p, rest)) => (p, Some(rest)),
        None => (v, None),
    };
    let port = num(port).ok_or(SdpError::Malformed("a=rtcp port"))?;
    let addr = match rest {
        Some(r) => Some(parse_conn(r).map_err(|_| SdpError::Malformed("a=rtcp address"))?),
        None => None,
    };
    Ok((port, addr))
}

fn parse_ptime(v: &str) -> Option<u32> {
    let v = v.trim_matches(WS);
    let whole = v.split_once('.').map_or(v, |(w, _)| w);
    num(whole).filter(|ms| (1..=MAX_PTIME_MS).contains(ms))
}

/// `<payload type> <encoding name>/<clock rate>[/<parameters>]`.
fn parse_rtpmap(v: &str) -> Option<(u8, String, u32)> {
    let (pt, encoding) = v.trim_matches(WS).split_once(' ')?;
    let pt = num::<u8>(pt).filter(|&pt| pt <= 127)?;
    let mut parts = encoding.trim_matches(WS).split('/');
    let name = parts.next().filter(|n| !n.is_empty())?;
    let rate = parts.next().and_then(num::<u32>).filter(|&r| r > 0)?;
    Some((pt, name.to_string(), rate))
}

/// Attribute name and value (`None` for a flag attribute).
fn split_attr(attr: &str) -> (&str, Option<&str>) {
    match attr.split_once(':') {
        Some((name, value)) => (name, Some(value)),
        None => (attr.trim_end_matches(WS), None),
    }
}

/// ICE attributes (RFC 8839), meaningless once the relay is in the path.
fn is_ice_attr(attr: &str) -> bool {
    const ICE: [&str; 9] = [
        "candidate",
        "remote-candidates",
        "end-of-candidates",
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "ice-lite",
        "ice-mismatch",
        "ice-pacing",
    ];
    let name = split_attr(attr).0;
    ICE.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Space-separated fields with their byte offsets (repeated spaces
/// tolerated).
fn fields(s: &str) -> impl Iterator<Item = (usize, &str)> {
    s.split(' ')
        .scan(0usize, |at, f| {
            let start = *at;
            *at += f.len() + 1;
            Some((start, f))
        })
        .filter(|(_, f)| !f.is_empty())
}

/// A decimal number: digits only (`str::parse` would take a leading `+`).
fn num<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn family(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push_str("\r\n");
}

fn push_c(out: &mut String, addr: IpAddr) {
    let _ = write!(out, "c=IN {} {addr}\r\n", family(addr));
}

fn push_rtcp(out: &mut String, m: &MediaDesc, port: u16, addr: IpAddr) {
    let rtcp_port = if m.rtcp_mux {
        Some(port)
    } else {
        port.checked_add(1)
    };
    // Without a usable port the default (RTP port + 1) is the best left.
    let Some(rtcp_port) = rtcp_port.filter(|_| port != 0) else {
        return;
    };
    let _ = write!(out, "a=rtcp:{rtcp_port}");
    if matches!(m.rtcp, Some((_, Some(_)))) {
        let _ = write!(out, " IN {} {addr}", family(addr));
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
    const RELAY6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1));

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn parse(s: &str) -> Result<Sdp<'_>, SdpError> {
        Sdp::parse(s.as_bytes(), &SdpLimits::default())
    }

    fn rewrite(s: &str, relay: IpAddr, ports: &[Option<u16>]) -> String {
        let sdp = parse(s).unwrap();
        String::from_utf8(sdp.rewrite(relay, ports)).unwrap()
    }

    /// `lines` joined with CRLF, each terminated.
    fn crlf(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{l}\r\n")).collect()
    }

    const SIPP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    const SIPP_RELAYED: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 203.0.113.10\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    fn baresip() -> String {
        crlf(&[
            "v=0",
            "o=- 1855193498 2010963556 IN IP4 192.168.1.20",
            "s=-",
            "c=IN IP4 192.168.1.20",
            "t=0 0",
            "a=tool:baresip 3.10.1",
            "m=audio 10468 RTP/AVP 96 97 9 0 8 101",
            "b=AS:93",
            "a=rtpmap:96 opus/48000/2",
            "a=fmtp:96 stereo=1;sprop-stereo=1",
            "a=rtpmap:97 G7221/16000",
            "a=fmtp:97 bitrate=32000",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=rtcp:10468",
            "a=rtcp-mux",
            "a=ptime:20",
            "a=sendrecv",
            "a=label:1",
            "a=ssrc:3056271426 cname:c2f3a1b0-8d6e-4b1a-9c53-5e0f4f1a7d11",
            "a=ice-ufrag:Xs7b",
            "a=ice-pwd:4d2a0c71d1a1c5e0b6f5f9b2",
            "a=candidate:1 1 UDP 2113932031 192.168.1.20 10468 typ host",
            "a=candidate:2 1 UDP 1677724415 198.51.100.7 10468 typ srflx raddr 192.168.1.20 rport 10468",
            "a=end-of-candidates",
        ])
    }

    fn webrtc() -> String {
        crlf(&[
            "v=0",
            "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE 0",
            "a=extmap-allow-mixed",
            "a=msid-semantic: WMS stream",
            "a=ice-options:trickle",
            "m=audio 54400 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
            "c=IN IP4 198.51.100.33",
            "a=rtcp:9 IN IP4 0.0.0.0",
            "a=candidate:1467250027 1 udp 2122260223 192.168.0.196 54400 typ host generation 0",
            "a=candidate:842163049 1 udp 1686052607 198.51.100.33 54400 typ srflx raddr 192.168.0.196 rport 54400 generation 0",
            "a=ice-ufrag:EsAw",
            "a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1",
            "a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F",
            "a=setup:actpass",
            "a=mid:0",
            "a=sendrecv",
            "a=msid:stream track",
            "a=rtcp-mux",
            "a=rtpmap:111 opus/48000/2",
            "a=rtcp-fb:111 transport-cc",
            "a=fmtp:111 minptime=10;useinbandfec=1",
            "a=rtpmap:63 red/48000/2",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:13 CN/8000",
            "a=rtpmap:110 telephone-event/48000",
            "a=rtpmap:126 telephone-event/8000",
            "a=ssrc:1001 cname:abc",
        ])
    }

    fn ipv6() -> String {
        crlf(&[
            "v=0",
            "o=alice 2890844526 2890844526 IN IP6 2001:db8::10",
            "s=-",
            "c=IN IP6 2001:db8::10",
            "t=0 0",
            "m=audio 49170 RTP/SAVP 8 101",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=rtcp:49171 IN IP6 2001:db8::10",
        ])
    }

    fn hold_sendonly() -> String {
        crlf(&[
            "v=0",
            "o=bob 1 2 IN IP4 192.0.2.5",
            "s=-",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "m=audio 7000 RTP/AVP 0",
            "a=sendonly",
        ])
    }

    fn hold_rfc2543() -> String {
        crlf(&[
            "v=0",
            "o=bob 1 3 IN IP4 192.0.2.5",
            "s=-",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "m=audio 7000 RTP/AVP 0",
        ])
    }

    fn disabled_video() -> String {
        crlf(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.7",
            "s=-",
            "c=IN IP4 192.0.2.7",
            "t=0 0",
            "m=audio 7078 RTP/AVP 0 8",
            "a=rtpmap:0 PCMU/8000",
            "m=video 0 RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
        ])
    }

    fn mixed_c() -> String {
        crlf(&[
            "v=0",
            "o=- 7 7 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0",
            "c=IN IP4 192.0.2.2",
            "m=video 4002 RTP/AVP 31",
        ])
    }

    fn two_audio() -> String {
        crlf(&[
            "v=0",
            "o=- 9 9 IN IP4 192.0.2.9",
            "s=-",
            "c=IN IP4 192.0.2.9",
            "t=0 0",
            "m=audio 5000 RTP/AVP 18 101",
            "i=main",
            "a=rtpmap:101 telephone-event/8000",
            "a=ptime:30",
            "m=audio 5002 RTP/AVP 3",
            "a=recvonly",
        ])
    }

    fn t38() -> String {
        crlf(&[
            "v=0",
            "o=- 3 3 IN IP4 192.0.2.3",
            "s=-",
            "c=IN IP4 192.0.2.3/127",
            "t=0 0",
            "m=image 6000/2 udptl t38",
            "a=T38FaxVersion:0",
        ])
    }

    fn samples() -> Vec<String> {
        vec![
            SIPP.to_string(),
            baresip(),
            webrtc(),
            ipv6(),
            hold_sendonly(),
            hold_rfc2543(),
            disabled_video(),
            mixed_c(),
            two_audio(),
            t38(),
            SIPP.replace("\r\n", "\n"),
        ]
    }

    /// parse(rewrite(x)) sees the relay where `ports` asked for it.
    fn assert_relayed(out: &str, relay: IpAddr, ports: &[Option<u16>]) {
        let sdp = parse(out).unwrap();
        for (i, m) in sdp.media().iter().enumerate() {
            if let Some(Some(p)) = ports.get(i) {
                if m.port != 0 && !m.hold_addr {
                    assert_eq!((m.port, m.addr), (*p, Some(relay)), "section {i}");
                }
            }
        }
    }

    #[test]
    fn sdp_sipp_offer() {
        let sdp = parse(SIPP).unwrap();
        let m = &sdp.media()[0];
        assert_eq!(
            (m.kind.as_str(), m.port, m.proto.as_str()),
            ("audio", 6000, "RTP/AVP")
        );
        assert_eq!(m.payload_types, [0]);
        assert_eq!(m.addr, Some(ip("127.0.0.1")));
        assert!(!m.hold_addr && !m.rtcp_mux && m.rtcp.is_none());
        assert_eq!(m.direction, Direction::SendRecv);
        assert_eq!(sdp.codec(0), Some(("PCMU", 8000)));
        assert_eq!(sdp.codec(1), None);
        assert_eq!(sdp.ptime_or_default(0), 20);

        let out = rewrite(SIPP, RELAY, &[Some(30000)]);
        assert_eq!(out, SIPP_RELAYED);
        assert_relayed(&out, RELAY, &[Some(30000)]);
        // Deterministic: a retransmission rewrites to the same bytes.
        assert_eq!(out, rewrite(SIPP, RELAY, &[Some(30000)]));
        // Nothing asked, nothing changed.
        assert_eq!(rewrite(SIPP, RELAY, &[None]), SIPP);
        assert_eq!(rewrite(SIPP, RELAY, &[]), SIPP);
    }

    #[test]
    fn sdp_bare_lf() {
        let lf = SIPP.replace("\r\n", "\n");
        let sdp = parse(&lf).unwrap();
        assert_eq!(sdp.media()[0].addr, Some(ip("127.0.0.1")));
        assert_eq!(rewrite(&lf, RELAY, &[Some(30000)]), SIPP_RELAYED);
        // Empty lines and a missing final line ending are tolerated too.
        let sloppy = "v=0\n\no=user1 53655765 2353687637 IN IP4 127.0.0.1\ns=-\r\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 6000 RTP/AVP 0\na=rtpmap:0 PCMU/8000";
        assert_eq!(rewrite(sloppy, RELAY, &[Some(30000)]), SIPP_RELAYED);
    }

    #[test]
    fn sdp_baresip_offer() {
        let body = baresip();
        let sdp = parse(&body).unwrap();
        let m = &sdp.media()[0];
        assert_eq!(m.payload_types, [96, 97, 9, 0, 8, 101]);
        assert!(m.rtcp_mux);
        assert_eq!(m.rtcp, Some((10468, None)));
        assert_eq!(m.ptime_ms, Some(20));
        assert_eq!(m.direction, Direction::SendRecv);
        assert_eq!(m.rtpmap.len(), 6);
        assert_eq!(sdp.codec(0), Some(("opus", 48000)));
        assert_eq!(m.codec_of(101), Some(("telephone-event", 8000)));
        assert_eq!(m.codec_of(18), Some(("G729", 8000)));

        let out = rewrite(&body, RELAY, &[Some(30000)]);
        let want = crlf(&[
            "v=0",
            "o=- 1855193498 2010963556 IN IP4 192.168.1.20",
            "s=-",
            "c=IN IP4 203.0.113.10",
            "t=0 0",
            "a=tool:baresip 3.10.1",
            "m=audio 30000 RTP/AVP 96 97 9 0 8 101",
            "b=AS:93",
            "a=rtpmap:96 opus/48000/2",
            "a=fmtp:96 stereo=1;sprop-stereo=1",
            "a=rtpmap:97 G7221/16000",
            "a=fmtp:97 bitrate=32000",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=rtcp:30000",
            "a=rtcp-mux",
            "a=ptime:20",
            "a=sendrecv",
            "a=label:1",
            "a=ssrc:3056271426 cname:c2f3a1b0-8d6e-4b1a-9c53-5e0f4f1a7d11",
        ]);
        assert_eq!(out, want);
        assert_relayed(&out, RELAY, &[Some(30000)]);
        assert_eq!(parse(&out).unwrap().media()[0].rtcp, Some((30000, None)));
    }

    #[test]
    fn sdp_webrtc_offer() {
        let body = webrtc();
        let sdp = parse(&body).unwrap();
        let m = &sdp.media()[0];
        assert_eq!(m.proto, "UDP/TLS/RTP/SAVPF");
        assert_eq!(m.addr, Some(ip("198.51.100.33")));
        assert_eq!(m.rtcp, Some((9, Some(ip("0.0.0.0")))));
        assert!(m.rtcp_mux);
        assert_eq!(m.payload_types, [111, 63, 9, 0, 8, 13, 110, 126]);
        assert_eq!(sdp.codec(0), Some(("opus", 48000)));

        let out = rewrite(&body, RELAY, &[Some(30000)]);
        let want = crlf(&[
            "v=0",
            "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE 0",
            "a=extmap-allow-mixed",
            "a=msid-semantic: WMS stream",
            "m=audio 30000 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
            "c=IN IP4 203.0.113.10",
            "a=rtcp:30000 IN IP4 203.0.113.10",
            "a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F",
            "a=setup:actpass",
            "a=mid:0",
            "a=sendrecv",
            "a=msid:stream track",
            "a=rtcp-mux",
            "a=rtpmap:111 opus/48000/2",
            "a=rtcp-fb:111 transport-cc",
            "a=fmtp:111 minptime=10;useinbandfec=1",
            "a=rtpmap:63 red/48000/2",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:13 CN/8000",
            "a=rtpmap:110 telephone-event/48000",
            "a=rtpmap:126 telephone-event/8000",
            "a=ssrc:1001 cname:abc",
        ]);
        assert_eq!(out, want);
        assert_relayed(&out, RELAY, &[Some(30000)]);
        assert!(!out.contains("candidate") && !out.contains("ice-"));
    }

    #[test]
    fn sdp_ipv6() {
        let body = ipv6();
        let sdp = parse(&body).unwrap();
        let m = &sdp.media()[0];
        assert_eq!(m.addr, Some(ip("2001:db8::10")));
        assert_eq!(m.rtcp, Some((49171, Some(ip("2001:db8::10")))));
        assert_eq!(sdp.codec(0), Some(("PCMA", 8000)));

        let out = rewrite(&body, RELAY6, &[Some(40000)]);
        let want = crlf(&[
            "v=0",
            "o=alice 2890844526 2890844526 IN IP6 2001:db8::10",
            "s=-",
            "c=IN IP6 2001:db8:ffff::1",
            "t=0 0",
            "m=audio 40000 RTP/SAVP 8 101",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=rtcp:40001 IN IP6 2001:db8:ffff::1",
        ]);
        assert_eq!(out, want);
        assert_relayed(&out, RELAY6, &[Some(40000)]);

        // Family bridging: an IPv4 relay in front of an IPv6 UA.
        let out4 = rewrite(&body, RELAY, &[Some(40000)]);
        assert!(out4.contains("\r\nc=IN IP4 203.0.113.10\r\n"));
        assert!(out4.contains("\r\na=rtcp:40001 IN IP4 203.0.113.10\r\n"));
        assert_relayed(&out4, RELAY, &[Some(40000)]);
    }

    #[test]
    fn sdp_hold_with_direction_goes_through_relay() {
        let body = hold_sendonly();
        let sdp = parse(&body).unwrap();
        let m = &sdp.media()[0];
        assert_eq!((m.addr, m.hold_addr), (None, true));
        assert_eq!(m.direction, Direction::SendOnly);

        let out = rewrite(&body, RELAY, &[Some(30000)]);
        let want = crlf(&[
            "v=0",
            "o=bob 1 2 IN IP4 192.0.2.5",
            "s=-",
            "c=IN IP4 203.0.113.10",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0",
            "a=sendonly",
        ]);
        assert_eq!(out, want);
        assert_relayed(&out, RELAY, &[Some(30000)]);
    }

    #[test]
    fn sdp_rfc2543_hold_keeps_zero_address() {
        let body = hold_rfc2543();
        let out = rewrite(&body, RELAY, &[Some(30000)]);
        let want = crlf(&[
            "v=0",
            "o=bob 1 3 IN IP4 192.0.2.5",
            "s=-",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0",
        ]);
        assert_eq!(out, want);
        let re = parse(&out).unwrap();
        let m = &re.media()[0];
        assert_eq!((m.port, m.addr, m.hold_addr), (30000, None, true));
        // The zero address follows the relay's family.
        let out6 = rewrite(&body, RELAY6, &[Some(30000)]);
        assert!(out6.contains("\r\nc=IN IP6 ::\r\n"));
    }

    #[test]
    fn sdp_inactive_with_real_address() {
        let body = SIPP.replace("a=rtpmap:0 PCMU/8000\r\n", "a=inactive\r\n");
        let m = parse(&body).unwrap().media()[0].clone();
        assert_eq!((m.direction, m.hold_addr), (Direction::Inactive, false));
        let out = rewrite(&body, RELAY, &[Some(30000)]);
        assert!(out.ends_with("m=audio 30000 RTP/AVP 0\r\na=inactive\r\n"));
        assert_relayed(&out, RELAY, &[Some(30000)]);
    }

    #[test]
    fn sdp_session_direction_inherited() {
        let body = SIPP.replace("t=0 0\r\n", "t=0 0\r\na=recvonly\r\n");
        assert_eq!(
            parse(&body).unwrap().media()[0].direction,
            Direction::RecvOnly
        );
        let body = body.replace("a=rtpmap:0 PCMU/8000\r\n", "a=sendrecv\r\n");
        assert_eq!(
            parse(&body).unwrap().media()[0].direction,
            Direction::SendRecv
        );
    }

    #[test]
    fn sdp_disabled_video_untouched() {
        let body = disabled_video();
        let sdp = parse(&body).unwrap();
        assert_eq!(sdp.media().len(), 2);
        assert!(!sdp.media()[1].is_enabled());
        assert_eq!(sdp.codec(1), Some(("H264", 90000)));

        let out = rewrite(&body, RELAY, &[Some(30000), Some(30002)]);
        let want = crlf(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.7",
            "s=-",
            "c=IN IP4 203.0.113.10",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0 8",
            "a=rtpmap:0 PCMU/8000",
            "m=video 0 RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
        ]);
        assert_eq!(out, want);
        assert_relayed(&out, RELAY, &[Some(30000)]);
        // A rejected stream without any c= is fine; an enabled one is not.
        let no_c = "v=0\r\ns=-\r\nm=video 0 RTP/AVP\r\n";
        assert!(parse(no_c).unwrap().media()[0].addr.is_none());
        assert_eq!(
            parse("v=0\r\ns=-\r\nm=audio 9 RTP/AVP 0\r\n").err(),
            Some(SdpError::NoConnection)
        );
    }

    #[test]
    fn sdp_session_and_media_level_c() {
        let body = mixed_c();
        let sdp = parse(&body).unwrap();
        assert_eq!(sdp.media()[0].addr, Some(ip("192.0.2.2")));
        assert_eq!(sdp.media()[1].addr, Some(ip("192.0.2.1")));

        // Both relayed: session c= and media c= both point at the relay.
        let out = rewrite(&body, RELAY, &[Some(30000), Some(30002)]);
        let want = crlf(&[
            "v=0",
            "o=- 7 7 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 203.0.113.10",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0",
            "c=IN IP4 203.0.113.10",
            "m=video 30002 RTP/AVP 31",
        ]);
        assert_eq!(out, want);

        // Video (on the session c=) left alone: the session c= stays.
        let out = rewrite(&body, RELAY, &[Some(30000), None]);
        let want = crlf(&[
            "v=0",
            "o=- 7 7 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0",
            "c=IN IP4 203.0.113.10",
            "m=video 4002 RTP/AVP 31",
        ]);
        assert_eq!(out, want);
        let re = parse(&out).unwrap();
        assert_eq!(re.media()[1].addr, Some(ip("192.0.2.1")));

        // Audio (own c=) left alone: the session c= can move.
        let out = rewrite(&body, RELAY, &[None, Some(30002)]);
        let want = crlf(&[
            "v=0",
            "o=- 7 7 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 203.0.113.10",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0",
            "c=IN IP4 192.0.2.2",
            "m=video 30002 RTP/AVP 31",
        ]);
        assert_eq!(out, want);
        assert_relayed(&out, RELAY, &[None, Some(30002)]);
    }

    #[test]
    fn sdp_multiple_audio_sections() {
        let body = two_audio();
        let sdp = parse(&body).unwrap();
        assert_eq!(sdp.media().len(), 2);
        assert_eq!(sdp.codec(0), Some(("G729", 8000)));
        assert_eq!(sdp.codec(1), Some(("GSM", 8000)));
        assert_eq!(sdp.ptime_or_default(0), 30);
        assert_eq!(sdp.ptime_or_default(1), 20);
        assert_eq!(sdp.media()[1].direction, Direction::RecvOnly);

        let out = rewrite(&body, RELAY, &[Some(30000), Some(30002)]);
        let want = crlf(&[
            "v=0",
            "o=- 9 9 IN IP4 192.0.2.9",
            "s=-",
            "c=IN IP4 203.0.113.10",
            "t=0 0",
            "m=audio 30000 RTP/AVP 18 101",
            "i=main",
            "a=rtpmap:101 telephone-event/8000",
            "a=ptime:30",
            "m=audio 30002 RTP/AVP 3",
            "a=recvonly",
        ]);
        assert_eq!(out, want);
        assert_relayed(&out, RELAY, &[Some(30000), Some(30002)]);

        // Only the first relayed: it gets its own c=, after i=.
        let out = rewrite(&body, RELAY, &[Some(30000)]);
        let want = crlf(&[
            "v=0",
            "o=- 9 9 IN IP4 192.0.2.9",
            "s=-",
            "c=IN IP4 192.0.2.9",
            "t=0 0",
            "m=audio 30000 RTP/AVP 18 101",
            "i=main",
            "c=IN IP4 203.0.113.10",
            "a=rtpmap:101 telephone-event/8000",
            "a=ptime:30",
            "m=audio 5002 RTP/AVP 3",
            "a=recvonly",
        ]);
        assert_eq!(out, want);
        assert_relayed(&out, RELAY, &[Some(30000)]);
    }

    #[test]
    fn sdp_multicast_ttl_and_non_rtp() {
        let body = t38();
        let sdp = parse(&body).unwrap();
        let m = &sdp.media()[0];
        assert_eq!(
            (m.kind.as_str(), m.port, m.proto.as_str()),
            ("image", 6000, "udptl")
        );
        assert!(m.payload_types.is_empty());
        assert_eq!(m.addr, Some(ip("192.0.2.3")));
        assert_eq!(sdp.codec(0), None);
        let out = rewrite(&body, RELAY, &[Some(30000)]);
        let want = crlf(&[
            "v=0",
            "o=- 3 3 IN IP4 192.0.2.3",
            "s=-",
            "c=IN IP4 203.0.113.10",
            "t=0 0",
            "m=image 30000 udptl t38",
            "a=T38FaxVersion:0",
        ]);
        assert_eq!(out, want);
        let v6 = "v=0\r\ns=-\r\nc=IN IP6 ff15::101/3\r\nm=audio 5 RTP/AVP 0\r\n";
        assert_eq!(parse(v6).unwrap().media()[0].addr, Some(ip("ff15::101")));
    }

    #[test]
    fn sdp_rtcp_without_mux_is_port_plus_one() {
        let body = SIPP.replace(
            "a=rtpmap:0 PCMU/8000\r\n",
            "a=rtcp:6001\r\na=rtcp:7001\r\na=rtpmap:0 PCMU/8000\r\n",
        );
        assert_eq!(parse(&body).unwrap().media()[0].rtcp, Some((6001, None)));
        let out = rewrite(&body, RELAY, &[Some(30000)]);
        assert!(
            out.ends_with("m=audio 30000 RTP/AVP 0\r\na=rtcp:30001\r\na=rtpmap:0 PCMU/8000\r\n")
        );
        // No room for port + 1: fall back to the default by dropping it.
        let out = rewrite(&body, RELAY, &[Some(65535)]);
        assert!(out.ends_with("m=audio 65535 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"));
    }

    #[test]
    fn sdp_caps() {
        let mut body = String::from("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 5 RTP/AVP");
        for pt in 0..100 {
            body.push_str(&format!(" {pt}"));
        }
        body.push_str("\r\n");
        for pt in 0..100 {
            body.push_str(&format!("a=rtpmap:{pt} X{pt}/8000\r\n"));
        }
        let limits = SdpLimits {
            max_lines: 1000,
            ..SdpLimits::default()
        };
        let sdp = Sdp::parse(body.as_bytes(), &limits).unwrap();
        assert_eq!(sdp.media()[0].payload_types.len(), MAX_PAYLOAD_TYPES);
        assert_eq!(sdp.media()[0].rtpmap.len(), MAX_RTPMAPS);
    }

    #[test]
    fn sdp_bad_input() {
        let limits = SdpLimits::default();
        let err = |s: &str| parse(s).err();
        let malformed = |s: &str| matches!(parse(s), Err(SdpError::Malformed(_)));

        assert!(malformed(""));
        assert!(malformed("\r\n\r\n"));
        assert!(malformed("o=- 1 1 IN IP4 192.0.2.1\r\nv=0\r\n"));
        assert!(malformed("v=1\r\n"));
        assert!(malformed("V=0\r\n"));
        assert!(malformed("v=0\r\nhello\r\n"));
        assert!(malformed("v=0\r\n=x\r\n"));
        assert!(malformed("v=0\r\na=x\0y\r\n"));
        assert!(malformed("v=0\r\na=x\ry\r\n"));
        assert_eq!(
            err("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 99999 RTP/AVP 0\r\n"),
            Some(SdpError::Malformed("m= port"))
        );
        for m in [
            "m=audio +5 RTP/AVP 0",
            "m=audio -1 RTP/AVP 0",
            "m=audio x RTP/AVP 0",
            "m=audio 5/0 RTP/AVP 0",
            "m=audio 5 RTP/AVP 128",
            "m=audio 5 RTP/AVP PCMU",
            "m=audio 5 RTP/AVP",
            "m=audio 5",
            "m=audio",
        ] {
            let body = format!("v=0\r\nc=IN IP4 192.0.2.1\r\n{m}\r\n");
            assert!(malformed(&body), "{m}");
        }
        for c in [
            "c=IN IP4 pbx.example.com",
            "c=IN IP4 300.1.1.1",
            "c=IN IP4 ::1",
            "c=IN IP6 192.0.2.1",
            "c=IN IP5 192.0.2.1",
            "c=ATM NSAP 47.0005",
            "c=IN IP4",
            "c=IN IP4 192.0.2.1 extra",
            "c=IN IP4 224.2.1.1/127/3/9",
            "c=IN IP4 224.2.1.1/x",
        ] {
            let body = format!("v=0\r\n{c}\r\nm=audio 5 RTP/AVP 0\r\n");
            assert!(malformed(&body), "{c}");
        }
        assert_eq!(
            err("v=0\r\nc=IN IP4 pbx.example.com\r\n"),
            Some(SdpError::Malformed("c= host name"))
        );
        for a in ["a=rtcp:99999", "a=rtcp:", "a=rtcp:5 IN IP4 nowhere"] {
            let body = format!("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 5 RTP/AVP 0\r\n{a}\r\n");
            assert!(malformed(&body), "{a}");
        }
        // Advisory attributes that are malformed are ignored, not fatal.
        let body =
            "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 5 RTP/AVP 0\r\na=ptime:abc\r\na=rtpmap:0\r\n";
        let sdp = parse(body).unwrap();
        assert_eq!(
            (sdp.media()[0].ptime_ms, sdp.media()[0].rtpmap.len()),
            (None, 0)
        );

        assert_eq!(
            Sdp::parse(b"v=0\r\ns=\xff\xfe\r\n", &limits).err(),
            Some(SdpError::NotUtf8)
        );
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert!(Sdp::parse(&garbage, &limits).is_err());

        let mut many_m = String::from("v=0\r\nc=IN IP4 192.0.2.1\r\n");
        for i in 0..1000 {
            many_m.push_str(&format!("m=audio {} RTP/AVP 0\r\n", 2000 + 2 * i));
        }
        let big = SdpLimits {
            max_len: 1 << 20,
            max_lines: 1 << 20,
            max_media: 8,
        };
        assert_eq!(
            Sdp::parse(many_m.as_bytes(), &big).err(),
            Some(SdpError::TooManyMedia)
        );
        assert_eq!(
            Sdp::parse(many_m.as_bytes(), &limits).err(),
            Some(SdpError::TooLong)
        );
        let many_lines = format!("v=0\r\n{}", "a=x\r\n".repeat(300));
        assert_eq!(err(&many_lines), Some(SdpError::TooManyLines));
        let huge = format!("v=0\r\ns={}\r\n", "x".repeat(20_000));
        assert_eq!(err(&huge), Some(SdpError::TooLong));
    }

    /// Whatever parses must rewrite to something that parses again with
    /// the relay in place.
    fn check(body: &[u8]) -> bool {
        let Ok(sdp) = Sdp::parse(body, &SdpLimits::default()) else {
            return false;
        };
        let ports: Vec<Option<u16>> = (0..sdp.media().len())
            .map(|i| (i % 3 != 2).then_some(20000 + 2 * i as u16))
            .collect();
        for m in 0..sdp.media().len() + 1 {
            let _ = (sdp.codec(m), sdp.ptime_or_default(m));
        }
        let out = sdp.rewrite(RELAY, &ports);
        let roomy = SdpLimits {
            max_len: 1 << 20,
            max_lines: 1 << 20,
            max_media: 64,
        };
        let again = Sdp::parse(&out, &roomy).expect("rewrite output parses");
        assert_eq!(again.media().len(), sdp.media().len());
        for (i, (a, b)) in sdp.media().iter().zip(again.media()).enumerate() {
            match ports[i] {
                Some(p) if a.is_enabled() => {
                    assert_eq!(b.port, p);
                    if !b.hold_addr {
                        assert_eq!(b.addr, Some(RELAY));
                    }
                }
                // Left alone, still where it was.
                _ if a.is_enabled() => assert_eq!((a.port, a.addr), (b.port, b.addr)),
                // Disabled: may have followed the session c= to the relay.
                _ => assert_eq!(b.port, 0),
            }
        }
        true
    }

    #[test]
    fn sdp_truncations_never_panic() {
        for s in samples() {
            let b = s.as_bytes();
            let parsed = (0..=b.len()).filter(|&n| check(&b[..n])).count();
            // Cuts at line ends and inside attributes still parse, so the
            // rewrite path is exercised too.
            assert!(parsed > 10, "{parsed}");
        }
    }

    #[test]
    fn sdp_mutations_never_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        const ALPHABET: &[u8] = b"0123456789 /:=.\r\n\0acmvIPN46-\xff";
        for s in samples() {
            let mut parsed = 0;
            for _ in 0..3000 {
                let mut b = s.clone().into_bytes();
                for _ in 0..1 + next() % 4 {
                    let at = (next() % b.len() as u64) as usize;
                    let r = next();
                    match r % 4 {
                        0 => b[at] = r as u8,
                        1 => b[at] = ALPHABET[(r >> 8) as usize % ALPHABET.len()],
                        2 => {
                            b.remove(at);
                        }
                        _ => b.insert(at, ALPHABET[(r >> 8) as usize % ALPHABET.len()]),
                    }
                }
                parsed += usize::from(check(&b));
            }
            assert!(parsed > 300, "{parsed}");
        }
    }
}
