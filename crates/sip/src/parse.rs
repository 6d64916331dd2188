//! Wire parser: datagram parsing, stream framing, and best-effort error
//! replies. Only what every caller needs is validated eagerly (start line,
//! framing, mandatory headers, scalars, top Via, From/To, value counts); the
//! rest (Contact included) is parsed on demand by the typed accessors.

use bytes::{Bytes, BytesMut};

use crate::header::{
    name_id, parse_u32, top_level_comma, CSeq, HeaderError, HeaderName, NameAddr, Via,
};
use crate::limits::Limits;
use crate::message::{offset_span, push_u32, Body, Hdr, Message, Span, StartLine};
use crate::method::{is_token_byte, Method};
use crate::scan::{run, ByteClass, LineEnds};
use crate::uri::{find_byte, trim_lws, Uri, UriError};

/// What is wrong with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("Message Too Large")]
    TooLarge,
    #[error("Body Too Large")]
    BodyTooLarge,
    #[error("Malformed Start Line")]
    BadStartLine,
    #[error("Version Not Supported")]
    BadVersion,
    #[error("Bad Request-URI")]
    BadRequestUri(UriError),
    #[error("Bad Status Code")]
    BadStatusCode,
    #[error("Invalid UTF-8")]
    NotUtf8,
    #[error("Malformed Header Line")]
    BadHeaderLine,
    #[error("Too Many Headers")]
    TooManyHeaders,
    #[error("Header Too Long")]
    HeaderTooLong,
    #[error("Truncated Message")]
    Truncated,
    #[error("Missing {0}")]
    MissingHeader(HeaderName<'static>),
    #[error("Duplicate {0}")]
    DuplicateHeader(HeaderName<'static>),
    #[error("Invalid {0}")]
    InvalidHeader(HeaderName<'static>, HeaderError),
    #[error("Too Many {0} Values")]
    TooManyValues(HeaderName<'static>),
    #[error("CSeq Method Mismatch")]
    CSeqMethodMismatch,
    #[error("Content-Length Exceeds Message")]
    BodyShorterThanContentLength,
    #[error("Missing Content-Length")]
    MissingContentLength,
    #[error("Data After Body")]
    TrailingData,
}

impl ErrorKind {
    /// Status a server answers a request with.
    pub fn status(&self) -> u16 {
        match self {
            ErrorKind::BadVersion => 505,
            ErrorKind::TooLarge | ErrorKind::BodyTooLarge => 413,
            _ => 400,
        }
    }
}

/// A message that could not be parsed. The variant says whether it should
/// be answered ([`ParseError::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A broken request: answer with `status()` if `error_response` can.
    #[error("bad request: {0}")]
    Request(ErrorKind),
    /// A broken response: discard silently.
    #[error("bad response: {0}")]
    Response(ErrorKind),
    /// Not SIP at all (or an unknown protocol): discard silently.
    #[error("not a SIP message")]
    NotSip,
    /// Only CR/LF bytes (a keep-alive), not an error on the wire.
    #[error("keep-alive")]
    KeepAlive,
}

impl ParseError {
    /// `Some(400 | 413 | 505)` for a request that deserves an answer,
    /// `None` for responses and non-SIP input (silence).
    pub fn status(&self) -> Option<u16> {
        match self {
            ParseError::Request(k) => Some(k.status()),
            _ => None,
        }
    }

    pub fn kind(&self) -> Option<&ErrorKind> {
        match self {
            ParseError::Request(k) | ParseError::Response(k) => Some(k),
            _ => None,
        }
    }
}

/// Parses one message from a UDP datagram. Bytes after Content-Length are
/// ignored; a Content-Length larger than the datagram is an error; without
/// Content-Length the rest of the datagram is the body. Leading CR/LF bytes
/// are skipped; a datagram of only CR/LF is [`ParseError::KeepAlive`].
pub fn parse_datagram(buf: Bytes, limits: &Limits) -> Result<Message, ParseError> {
    parse(buf, limits, false)
}

/// Parses a message framed by [`frame_stream`]: Content-Length is required
/// and must match the framed length exactly.
pub fn parse_stream_message(buf: Bytes, limits: &Limits) -> Result<Message, ParseError> {
    parse(buf, limits, true)
}

/// Whether a frame returned by [`frame_stream`] is only CR/LF keep-alive
/// bytes (RFC 5626 CRLFCRLF ping; answer CRLF if it has 4 bytes or more).
pub fn is_keepalive(frame: &[u8]) -> bool {
    !frame.is_empty() && frame.iter().all(|c| matches!(c, b'\r' | b'\n'))
}

fn leading_crlf(b: &[u8]) -> usize {
    b.iter().take_while(|c| matches!(c, b'\r' | b'\n')).count()
}

fn looks_like_response(b: &[u8]) -> bool {
    b.len() >= 4 && b[..4].eq_ignore_ascii_case(b"SIP/")
}

/// Frames the first message in a stream buffer (TCP/TLS).
///
/// * `Ok(Some(n))`: the first `n` bytes are one unit. If the buffer starts
///   with CR/LF, that unit is the run of CR/LF keep-alive bytes (check with
///   [`is_keepalive`], then drop them); otherwise it is one complete message
///   for [`parse_stream_message`].
/// * `Ok(None)`: incomplete, read more (incomplete is not invalid).
/// * `Err(_)`: the stream cannot be framed (caps exceeded, Content-Length
///   missing, duplicated or invalid): answer if `status()` says so, then close.
pub fn frame_stream(buf: &[u8], limits: &Limits) -> Result<Option<usize>, ParseError> {
    let crlf = leading_crlf(buf);
    if crlf > 0 {
        return Ok(Some(crlf));
    }
    let is_resp = looks_like_response(buf);
    let err = |k| {
        if is_resp {
            ParseError::Response(k)
        } else {
            ParseError::Request(k)
        }
    };
    let window = &buf[..buf.len().min(limits.max_message_bytes)];
    let Some(head_end) = memchr::memmem::find(window, b"\r\n\r\n") else {
        if buf.len() >= limits.max_message_bytes {
            return Err(err(ErrorKind::TooLarge));
        }
        // Refuse early when what we have already breaks a cap, so a peer
        // cannot hold a buffer open with an endless header line.
        let mut lines = 0usize;
        for line in window.split(|c| *c == b'\n') {
            lines += 1;
            if line.len() > limits.max_header_bytes {
                return Err(err(ErrorKind::HeaderTooLong));
            }
        }
        if lines > limits.max_headers + 1 {
            return Err(err(ErrorKind::TooManyHeaders));
        }
        return Ok(None);
    };
    let body_start = head_end + 4;
    let first_nl = memchr::memchr(b'\n', window).unwrap_or(0);
    let mut cl: Option<u32> = None;
    let mut pos = first_nl + 1;
    let mut cur_is_cl = false;
    let mut cl_text_start = 0usize;
    let mut cl_text_end = 0usize;
    let mut lines = 0usize;
    // Scan header lines for Content-Length (possibly folded).
    let finish_cl = |cl: &mut Option<u32>, s: usize, e: usize| -> Result<(), ParseError> {
        if cl.is_some() {
            return Err(err(ErrorKind::DuplicateHeader(HeaderName::ContentLength)));
        }
        let text = std::str::from_utf8(&buf[s..e]).map_err(|_| err(ErrorKind::NotUtf8))?;
        let text: String = text.replace(['\r', '\n'], " ");
        let v = parse_u32(&text)
            .map_err(|e| err(ErrorKind::InvalidHeader(HeaderName::ContentLength, e)))?;
        *cl = Some(v);
        Ok(())
    };
    while pos < body_start - 2 {
        let nl = match memchr::memchr(b'\n', &buf[pos..body_start]) {
            Some(n) => pos + n,
            None => break,
        };
        let line = &buf[pos..nl.saturating_sub(1).max(pos)];
        lines += 1;
        if lines > limits.max_headers {
            return Err(err(ErrorKind::TooManyHeaders));
        }
        if line.len() > limits.max_header_bytes {
            return Err(err(ErrorKind::HeaderTooLong));
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if cur_is_cl {
                cl_text_end = pos + line.len();
            }
        } else {
            if cur_is_cl {
                finish_cl(&mut cl, cl_text_start, cl_text_end)?;
            }
            cur_is_cl = false;
            if let Some(colon) = memchr::memchr(b':', line) {
                let name = trim_ws_end(&line[..colon]);
                if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
                    cur_is_cl = true;
                    cl_text_start = pos + colon + 1;
                    cl_text_end = pos + line.len();
                }
            }
        }
        pos = nl + 1;
    }
    if cur_is_cl {
        finish_cl(&mut cl, cl_text_start, cl_text_end)?;
    }
    let cl = cl.ok_or_else(|| err(ErrorKind::MissingContentLength))? as usize;
    if cl > limits.max_body_bytes {
        return Err(err(ErrorKind::BodyTooLarge));
    }
    let total = body_start + cl;
    if total > limits.max_message_bytes {
        return Err(err(ErrorKind::TooLarge));
    }
    Ok((buf.len() >= total).then_some(total))
}

/// Call-ID bytes: `word` of RFC 3261 §25.1 (token plus these separators).
pub(crate) static CALL_ID: ByteClass =
    ByteClass::new(crate::method::byte_table(b"-.!%*_+`'~()<>:\\\"/[]?{}@"));

#[inline(always)]
fn trim_ws_end(b: &[u8]) -> &[u8] {
    // SP and HTAB are below `!`: one compare clears the usual case.
    if b.last().is_none_or(|&c| c > b' ') {
        return b;
    }
    let mut e = b.len();
    while e > 0 && matches!(b[e - 1], b' ' | b'\t') {
        e -= 1;
    }
    &b[..e]
}

/// The span of `b[s..e]` without the SP/HTAB around it.
#[inline(always)]
fn trimmed(b: &[u8], mut s: usize, mut e: usize) -> Span {
    // The usual `Name: value`: one SP before the value, none after.
    if s + 1 < e && b[s] == b' ' && b[s + 1] > b' ' && b[e - 1] > b' ' {
        return Span::wire(s + 1, e);
    }
    while s < e && is_lws_byte(b[s]) {
        s += 1;
    }
    while e > s && is_lws_byte(b[e - 1]) {
        e -= 1;
    }
    Span::wire(s, e)
}

fn is_lws_byte(c: u8) -> bool {
    matches!(c, b' ' | b'\t')
}

/// Parses the start line `b[s..e]` (CRLF excluded).
/// `ascii`: the scan found no byte above ASCII in the line.
fn start_line(
    b: &[u8],
    s: usize,
    e: usize,
    ascii: bool,
    limits: &Limits,
) -> Result<StartLine, ParseError> {
    let line = &b[s..e];
    if looks_like_response(line) {
        let bad = ParseError::Response;
        if line.len() < 8 || !line[..8].eq_ignore_ascii_case(b"SIP/2.0 ") {
            return Err(if line.len() > 4 && line[4].is_ascii_digit() {
                bad(ErrorKind::BadVersion)
            } else {
                bad(ErrorKind::BadStartLine)
            });
        }
        let rest = &line[8..];
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits != 3 || !(rest.len() == 3 || rest[3] == b' ') {
            return Err(bad(ErrorKind::BadStatusCode));
        }
        let code = rest[..3]
            .iter()
            .fold(0u16, |a, c| a * 10 + u16::from(c - b'0'));
        if !(100..=699).contains(&code) {
            return Err(bad(ErrorKind::BadStatusCode));
        }
        let rs = (s + 12).min(e);
        if b[rs..e]
            .iter()
            .any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f)
        {
            return Err(bad(ErrorKind::BadStartLine));
        }
        return Ok(StartLine::Response {
            code,
            reason: Span::wire(rs, e),
        });
    }
    let bad = ParseError::Request;
    // Classify by the last word first: only a line ending in `SIP/...` is a
    // SIP request we answer; anything else (HTTP, garbage) is dropped.
    let trimmed = trim_ws_end(line);
    let last_sp = memchr::memrchr(b' ', trimmed).ok_or(ParseError::NotSip)?;
    let last = &trimmed[last_sp + 1..];
    if last.len() < 4 || !last[..4].eq_ignore_ascii_case(b"SIP/") {
        return Err(ParseError::NotSip);
    }
    let sp1 = find_byte(b' ', line).ok_or(ParseError::NotSip)?;
    // A token is ASCII, so checking it first makes the UTF-8 check moot;
    // the method itself is built last, as before.
    let method = &line[..sp1];
    let known = Method::known(method);
    if known.is_none() && (method.is_empty() || !method.iter().all(|&c| is_token_byte(c))) {
        return Err(ParseError::NotSip);
    }
    let rest = &line[sp1 + 1..];
    let sp2 = find_byte(b' ', rest).ok_or_else(|| bad(ErrorKind::BadStartLine))?;
    let uri_b = &rest[..sp2];
    let version = &rest[sp2 + 1..];
    // Exactly one SP between elements and none trailing (RFC 4475 lwsstart,
    // lwsruri, trws).
    if version.len() < 4 || !version[..4].eq_ignore_ascii_case(b"SIP/") || version.contains(&b' ') {
        return Err(bad(ErrorKind::BadStartLine));
    }
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        let v = &version[4..];
        let well_formed = v.iter().all(|c| c.is_ascii_digit() || *c == b'.')
            && v.iter().filter(|c| **c == b'.').count() == 1
            && v.first().is_some_and(u8::is_ascii_digit)
            && v.last().is_some_and(u8::is_ascii_digit);
        return Err(bad(if well_formed {
            ErrorKind::BadVersion
        } else {
            ErrorKind::BadStartLine
        }));
    }
    if uri_b.is_empty() {
        return Err(bad(ErrorKind::BadStartLine));
    }
    let uri_s = if ascii {
        // SAFETY: ASCII bytes (the caller's scan saw none above 0x7f).
        unsafe { std::str::from_utf8_unchecked(uri_b) }
    } else {
        std::str::from_utf8(uri_b).map_err(|_| bad(ErrorKind::BadRequestUri(UriError::BadChar)))?
    };
    if uri_s.starts_with('<') {
        return Err(bad(ErrorKind::BadRequestUri(UriError::BadChar)));
    }
    // A plain SIP URI (no `?headers`, nothing to refuse) need not be built.
    let plain = uri_s.len() <= limits.max_uri_bytes && crate::uri::SipUri::is_plain(uri_s);
    if !plain {
        match Uri::parse_bounded(uri_s, limits.max_uri_bytes) {
            Ok(Uri::Sip(u)) if u.headers.is_some() => {
                return Err(bad(ErrorKind::BadRequestUri(UriError::BadHeaders)))
            }
            Ok(_) => {}
            Err(e) => return Err(bad(ErrorKind::BadRequestUri(e))),
        }
    }
    let method = match known {
        Some(m) => m,
        None => Method::parse_token(method).ok_or(ParseError::NotSip)?,
    };
    let us = s + sp1 + 1;
    Ok(StartLine::Request {
        method,
        uri: Span::wire(us, us + uri_b.len()),
    })
}

fn parse(buf: Bytes, limits: &Limits, stream: bool) -> Result<Message, ParseError> {
    let b: &[u8] = &buf;
    let skip = leading_crlf(b);
    if skip == b.len() {
        return Err(ParseError::KeepAlive);
    }
    let is_resp = looks_like_response(&b[skip..]);
    let err = |k| {
        if is_resp {
            ParseError::Response(k)
        } else {
            ParseError::Request(k)
        }
    };
    if b.len() > limits.max_message_bytes {
        return Err(err(ErrorKind::TooLarge));
    }
    // Start line.
    let mut ends = LineEnds::new(b, skip);
    let nl = ends.next().ok_or_else(|| err(ErrorKind::Truncated))?;
    let mut last_nl = nl;
    if nl == skip || b[nl - 1] != b'\r' {
        return Err(err(ErrorKind::BadStartLine));
    }
    if nl - 1 - skip > limits.max_uri_bytes + limits.max_header_bytes {
        return Err(err(ErrorKind::HeaderTooLong));
    }
    let start = start_line(b, skip, nl - 1, !ends.non_ascii_through(nl), limits)?;

    // Header index: one pass, spans only.
    let mut headers: Vec<Hdr> = Vec::with_capacity(20);
    let mut pos = nl + 1;
    let mut folded = false;
    let mut line_start = pos;
    let (head_end, body_start) = loop {
        if pos >= b.len() {
            // A datagram whose last header line is complete but lacks the
            // empty line: tolerate it as "no body" (stream framing never
            // produces this).
            if !stream && pos == b.len() {
                break (pos, pos);
            }
            return Err(err(ErrorKind::Truncated));
        }
        let Some(nl) = ends.next() else {
            return Err(err(ErrorKind::Truncated));
        };
        last_nl = nl;
        if nl == pos || b[nl - 1] != b'\r' {
            return Err(err(ErrorKind::BadHeaderLine));
        }
        let end = nl - 1;
        if end == pos {
            break (pos, nl + 1);
        }
        if is_lws_byte(b[pos]) {
            let Some(last) = headers.last_mut() else {
                return Err(err(ErrorKind::BadHeaderLine));
            };
            // Trimmed again once the folds are spaces (below).
            last.value.end = end as u32;
            folded = true;
        } else {
            // `token *(SP / HTAB) ":"`. A known name is a token, so only
            // unknown names are checked byte by byte.
            let line = &b[pos..end];
            let Some(colon) = find_byte(b':', line) else {
                return Err(err(ErrorKind::BadHeaderLine));
            };
            let name = trim_ws_end(&line[..colon]);
            let id = name_id(name);
            if id == u8::MAX && (name.is_empty() || !name.iter().all(|&c| is_token_byte(c))) {
                return Err(err(ErrorKind::BadHeaderLine));
            }
            let name_len = name.len();
            if headers.len() == limits.max_headers {
                return Err(err(ErrorKind::TooManyHeaders));
            }
            line_start = pos;
            headers.push(Hdr {
                id,
                name: Span::wire(pos, pos + name_len),
                value: trimmed(b, pos + colon + 1, end),
            });
        }
        if end - line_start > limits.max_header_bytes {
            return Err(err(ErrorKind::HeaderTooLong));
        }
        pos = nl + 1;
    };
    let non_ascii = ends.non_ascii_through(last_nl);
    // Replace each folding CRLF by two spaces: offsets stay valid and every
    // value becomes a single line.
    let buf = if folded {
        let mut m = BytesMut::from(b);
        let mut i = nl + 1;
        while i + 2 < head_end {
            if m[i] == b'\r' && m[i + 1] == b'\n' && is_lws_byte(m[i + 2]) {
                m[i] = b' ';
                m[i + 1] = b' ';
            }
            i += 1;
        }
        m.freeze()
    } else {
        buf
    };
    let b: &[u8] = &buf;
    // Folding only rewrote ASCII, so validating afterwards is equivalent;
    // a head the scan saw no byte above ASCII in needs no validation.
    let head = if non_ascii {
        std::str::from_utf8(&b[..head_end]).map_err(|_| err(ErrorKind::NotUtf8))?
    } else {
        // SAFETY: every byte of `b[..head_end]` (all before or at `last_nl`,
        // leading CR/LF included) is ASCII, hence valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(&b[..head_end]) }
    };
    if folded {
        // Folded values end on their last continuation line: trim anew.
        for h in &mut headers {
            h.value = trimmed(b, h.value.start as usize, h.value.end as usize);
        }
    }
    let text = |sp: Span| -> &str {
        let (s, e) = (sp.start as usize, sp.end as usize);
        if non_ascii || s > e || e > head.len() {
            // Spans are on ASCII boundaries of the validated head.
            return head.get(s..e).unwrap_or("");
        }
        // SAFETY: in bounds (checked above), and an all-ASCII head has a
        // char boundary at every index.
        unsafe { head.get_unchecked(s..e) }
    };

    // Duplicates, counts and the positions of the headers checked eagerly.
    // The value of the first line of each eagerly checked header.
    let mut first: [Option<Span>; 9] = [None; 9];
    const CALLID: usize = 0;
    const FROM: usize = 1;
    const TO: usize = 2;
    const CSEQ: usize = 3;
    const MAXF: usize = 4;
    const CLEN: usize = 5;
    const CTYPE: usize = 6;
    const VIA: usize = 7;
    const EXPIRES: usize = 8;
    const CALLID_ID: u8 = HeaderName::CallId.id();
    const FROM_ID: u8 = HeaderName::From.id();
    const TO_ID: u8 = HeaderName::To.id();
    const CSEQ_ID: u8 = HeaderName::CSeq.id();
    const MAXF_ID: u8 = HeaderName::MaxForwards.id();
    const CLEN_ID: u8 = HeaderName::ContentLength.id();
    const CTYPE_ID: u8 = HeaderName::ContentType.id();
    const VIA_ID: u8 = HeaderName::Via.id();
    const EXPIRES_ID: u8 = HeaderName::Expires.id();
    const CONTACT_ID: u8 = HeaderName::Contact.id();
    const ROUTE_ID: u8 = HeaderName::Route.id();
    const RR_ID: u8 = HeaderName::RecordRoute.id();
    let (mut n_via, mut n_contact, mut n_route, mut n_rr) = (0usize, 0usize, 0usize, 0usize);
    // Values in a header line, and where the first one ends (its first
    // top-level comma), so the top Via is not searched for twice.
    let split_values = |v: &str| {
        let mut n = 1;
        let mut r = v;
        let mut first_end = None;
        while let Some(c) = top_level_comma(r.as_bytes()) {
            if n == 1 {
                first_end = Some(c);
            }
            n += 1;
            r = &r[c + 1..];
        }
        (n, first_end)
    };
    let count_values = |v: &str| split_values(v).0;
    let mut top_via_end = None;
    for h in &headers {
        let slot = match h.id {
            CALLID_ID => CALLID,
            FROM_ID => FROM,
            TO_ID => TO,
            CSEQ_ID => CSEQ,
            MAXF_ID => MAXF,
            CLEN_ID => CLEN,
            CTYPE_ID => CTYPE,
            VIA_ID => {
                let (n, first_end) = split_values(text(h.value));
                if n_via == 0 {
                    top_via_end = first_end;
                }
                n_via += n;
                if n_via > limits.max_via {
                    return Err(err(ErrorKind::TooManyValues(HeaderName::Via)));
                }
                VIA
            }
            EXPIRES_ID => EXPIRES,
            CONTACT_ID => {
                // Counted here, parsed where used (`Message::contacts`, whose
                // errors the registrar answers with 400): a proxy forwards
                // the Contact of other requests untouched.
                n_contact += count_values(text(h.value));
                if n_contact > limits.max_contacts {
                    return Err(err(ErrorKind::TooManyValues(HeaderName::Contact)));
                }
                continue;
            }
            x @ (ROUTE_ID | RR_ID) => {
                let n = if x == ROUTE_ID {
                    &mut n_route
                } else {
                    &mut n_rr
                };
                *n += count_values(text(h.value));
                if *n > limits.max_route {
                    let name = HeaderName::from_id(x).unwrap_or(HeaderName::Route);
                    return Err(err(ErrorKind::TooManyValues(name)));
                }
                continue;
            }
            _ => continue,
        };
        if first[slot].is_some() {
            if slot != VIA && slot != EXPIRES {
                let name = HeaderName::from_id(h.id).unwrap_or(HeaderName::Via);
                return Err(err(ErrorKind::DuplicateHeader(name)));
            }
        } else {
            first[slot] = Some(h.value);
        }
    }
    let get = |slot: usize, name: HeaderName<'static>| -> Result<&str, ParseError> {
        first[slot]
            .map(text)
            .ok_or_else(|| err(ErrorKind::MissingHeader(name)))
    };
    let invalid = |name: HeaderName<'static>| move |e| err(ErrorKind::InvalidHeader(name, e));

    let call_id = get(CALLID, HeaderName::CallId)?;
    let call_id_span = first[CALLID].unwrap_or(Span::wire(0, 0));
    if call_id.is_empty() || run(call_id.as_bytes(), 0, &CALL_ID) != call_id.len() {
        return Err(err(ErrorKind::InvalidHeader(
            HeaderName::CallId,
            HeaderError::BadNumber,
        )));
    }
    let from = get(FROM, HeaderName::From)?;
    let from_tag =
        NameAddr::check_tagged(from, limits.max_uri_bytes).map_err(invalid(HeaderName::From))?;
    let from_tag = from_tag.and_then(|t| offset_span(head, t, false));
    let to = get(TO, HeaderName::To)?;
    let to_tag =
        NameAddr::check_tagged(to, limits.max_uri_bytes).map_err(invalid(HeaderName::To))?;
    let to_tag = to_tag.and_then(|t| offset_span(head, t, false));
    let cseq = CSeq::parse(get(CSEQ, HeaderName::CSeq)?).map_err(invalid(HeaderName::CSeq))?;
    let top_via = get(VIA, HeaderName::Via)?;
    let top_via = trim_lws(top_via_end.map_or(top_via, |e| &top_via[..e]));
    let branch = Via::check_branch(top_via).map_err(invalid(HeaderName::Via))?;
    let branch = branch.and_then(|b| offset_span(head, b, false));
    let mut max_forwards = None;
    if let Ok(mf) = get(MAXF, HeaderName::MaxForwards) {
        let v = parse_u32(mf).map_err(invalid(HeaderName::MaxForwards))?;
        if v > 255 {
            return Err(err(ErrorKind::InvalidHeader(
                HeaderName::MaxForwards,
                HeaderError::OutOfRange,
            )));
        }
        max_forwards = Some(v as u8);
    }
    if let Ok(ex) = get(EXPIRES, HeaderName::Expires) {
        parse_u32(ex).map_err(invalid(HeaderName::Expires))?;
    }
    if let StartLine::Request { method, .. } = &start {
        if *method != cseq.method {
            return Err(err(ErrorKind::CSeqMethodMismatch));
        }
    }

    // Body framing.
    let cl = match get(CLEN, HeaderName::ContentLength) {
        Ok(v) => Some(parse_u32(v).map_err(invalid(HeaderName::ContentLength))? as usize),
        Err(_) => None,
    };
    let avail = b.len() - body_start;
    let body_len = match (cl, stream) {
        (Some(cl), _) if cl > avail => return Err(err(ErrorKind::BodyShorterThanContentLength)),
        (Some(cl), true) if cl < avail => return Err(err(ErrorKind::TrailingData)),
        (Some(cl), _) => cl,
        (None, true) => return Err(err(ErrorKind::MissingContentLength)),
        (None, false) => avail,
    };
    if body_len > limits.max_body_bytes {
        return Err(err(ErrorKind::BodyTooLarge));
    }
    let body = Body::Wire(body_start as u32, (body_start + body_len) as u32);
    Ok(Message {
        buf,
        head_len: head_end,
        extra: String::new(),
        start,
        headers,
        body,
        cseq,
        from_tag,
        to_tag,
        branch,
        call_id: call_id_span,
        max_forwards,
        limits: limits.clone(),
    })
}

/// Builds the stateless reply to a request that failed to parse (400, 413
/// or 505), copying the raw Via, From, To, Call-ID and CSeq lines that can
/// be found. Bounded work; `None` when the error must not be answered or no
/// Via was found (there is nowhere to send it).
pub fn error_response(buf: &[u8], err: &ParseError, limits: &Limits) -> Option<Bytes> {
    let ParseError::Request(kind) = err else {
        return None;
    };
    let buf = &buf[..buf.len().min(limits.max_message_bytes)];
    let skip = leading_crlf(buf);
    let first_nl = memchr::memchr(b'\n', &buf[skip..])? + skip;
    let mut vias: Vec<&[u8]> = Vec::new();
    let mut from: Option<&[u8]> = None;
    let mut to: Option<&[u8]> = None;
    let mut call_id: Option<&[u8]> = None;
    let mut cseq: Option<&[u8]> = None;
    let mut pos = first_nl + 1;
    let mut lines = 0;
    while pos < buf.len() && lines <= limits.max_headers {
        lines += 1;
        let nl = memchr::memchr(b'\n', &buf[pos..]).map_or(buf.len(), |n| pos + n);
        let mut line = &buf[pos..nl];
        pos = nl + 1;
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        if line.is_empty() {
            break;
        }
        // Folded continuations and odd lines are skipped: best effort only.
        if line.len() > limits.max_header_bytes
            || is_lws_byte(line[0])
            || line.iter().any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f)
            || std::str::from_utf8(line).is_err()
        {
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(trim_ws_end(&line[..colon])) else {
            continue;
        };
        let value = trim_ascii(&line[colon + 1..]);
        match HeaderName::parse(name) {
            HeaderName::Via if vias.len() < limits.max_via => vias.push(value),
            HeaderName::From => {
                from.get_or_insert(value);
            }
            HeaderName::To => {
                to.get_or_insert(value);
            }
            HeaderName::CallId => {
                call_id.get_or_insert(value);
            }
            HeaderName::CSeq => {
                cseq.get_or_insert(value);
            }
            _ => {}
        }
    }
    if vias.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"SIP/2.0 ");
    push_u32(&mut out, u32::from(kind.status()));
    out.push(b' ');
    out.extend_from_slice(kind.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for v in vias {
        push_line(&mut out, b"Via", v);
    }
    if let Some(f) = from {
        push_line(&mut out, b"From", f);
    }
    if let Some(t) = to {
        out.extend_from_slice(b"To: ");
        out.extend_from_slice(t);
        if memchr::memmem::find(t, b"tag=").is_none() {
            // A stateless reply still needs a To tag (RFC 3261 §8.2.6.2);
            // derive it from the request so retransmissions get the same one.
            out.extend_from_slice(b";tag=hl");
            let mut h: u32 = 0x811c_9dc5;
            for &c in call_id
                .unwrap_or(b"")
                .iter()
                .chain(buf.get(skip..first_nl).unwrap_or(b""))
            {
                h = (h ^ u32::from(c)).wrapping_mul(0x0100_0193);
            }
            out.extend_from_slice(format!("{h:08x}").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    if let Some(c) = call_id {
        push_line(&mut out, b"Call-ID", c);
    }
    if let Some(c) = cseq {
        push_line(&mut out, b"CSeq", c);
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Some(Bytes::from(out))
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let s = b.iter().take_while(|c| is_lws_byte(**c)).count();
    trim_ws_end(&b[s..])
}

fn push_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::Contact;

    const REG: &str = "REGISTER sip:example.com SIP/2.0\r\n\
v: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKabc;rport\r\n\
Max-Forwards: 70\r\n\
t: <sip:bob@example.com>\r\n\
f: \"Bob\" <sip:bob@example.com>;tag=456\r\n\
i: reg-1@host\r\n\
CSeq: 2 REGISTER\r\n\
m: <sip:bob@[2001:db8::1]:5060>;expires=60;q=0.7, sip:bob@192.0.2.4\r\n\
l: 0\r\n\r\n";

    fn parse_str(s: &str) -> Result<Message, ParseError> {
        parse_datagram(Bytes::copy_from_slice(s.as_bytes()), &Limits::default())
    }

    #[test]
    fn compact_forms_and_ipv6() {
        let m = parse_str(REG).unwrap();
        assert_eq!(m.call_id(), "reg-1@host");
        assert_eq!(m.from_tag(), Some("456"));
        assert_eq!(m.to_tag(), None);
        let v = m.top_via().unwrap();
        assert_eq!(
            v.host,
            crate::uri::Host::Ipv6("2001:db8::1".parse().unwrap())
        );
        assert_eq!(v.rport(), Some(None));
        let c: Vec<_> = m.contacts().map(Result::unwrap).collect();
        assert_eq!(c.len(), 2);
        let Contact::Addr(first) = c[0] else { panic!() };
        assert_eq!(first.expires(), Ok(Some(60)));
        assert_eq!(first.q(), Ok(Some(700)));
        assert_eq!(m.header_count(HeaderName::Contact), 1);
        assert_eq!(m.header(HeaderName::parse("Content-Length")), Some("0"));
    }

    #[test]
    fn contacts_are_counted_at_parse_and_validated_where_used() {
        // A malformed Contact does not fail the message (a proxy forwards it
        // untouched); the accessor reports it to whoever needs it.
        let s = REG.replace("sip:bob@192.0.2.4", "sip:bob@192.0.2.4 junk");
        let m = parse_str(&s).unwrap();
        let c: Vec<_> = m.contacts().collect();
        assert!(c[0].is_ok());
        assert!(c[1].is_err(), "{:?}", c[1]);
        // The count is still capped at parse time.
        let many = vec!["<sip:a@h>"; 17].join(", ");
        let s = REG.replace(
            "<sip:bob@[2001:db8::1]:5060>;expires=60;q=0.7, sip:bob@192.0.2.4",
            &many,
        );
        assert_eq!(
            parse_str(&s).unwrap_err(),
            ParseError::Request(ErrorKind::TooManyValues(HeaderName::Contact))
        );
    }

    #[test]
    fn folding_is_normalised() {
        let s = REG.replace(
            "CSeq: 2 REGISTER",
            "CSeq: 2\r\n  REGISTER\r\nSubject: a\r\n\tb",
        );
        let m = parse_str(&s).unwrap();
        assert_eq!(m.cseq().seq, 2);
        assert!(!m.header(HeaderName::Subject).unwrap().contains('\n'));
        let again = parse_datagram(m.to_bytes(), &Limits::default()).unwrap();
        assert_eq!(
            again.header(HeaderName::Subject),
            m.header(HeaderName::Subject)
        );
    }

    #[test]
    fn round_trip_keeps_everything() {
        let m = parse_str(REG).unwrap();
        let out = m.to_bytes();
        assert_eq!(&out[..], REG.as_bytes());
        let m2 = parse_datagram(out, &Limits::default()).unwrap();
        assert_eq!(m2.cseq(), m.cseq());
        assert_eq!(m2.header_values(HeaderName::Contact).count(), 2);
    }

    #[test]
    fn datagram_framing() {
        // No Content-Length on UDP: the rest is the body.
        let s = REG.replace("l: 0\r\n", "");
        let m = parse_str(&(s + "hello")).unwrap();
        assert_eq!(m.body(), b"hello");
        // Bytes after Content-Length are ignored.
        let m = parse_str(&format!("{REG}junk")).unwrap();
        assert_eq!(m.body(), b"");
        let printed = m.to_bytes();
        assert!(printed.ends_with(b"l: 0\r\n\r\n"));
        // Content-Length beyond the datagram.
        let e = parse_str(&REG.replace("l: 0", "l: 10")).unwrap_err();
        assert_eq!(
            e,
            ParseError::Request(ErrorKind::BodyShorterThanContentLength)
        );
        assert_eq!(parse_str("\r\n\r\n").unwrap_err(), ParseError::KeepAlive);
        assert_eq!(
            parse_str("GET / HTTP/1.1\r\n\r\n").unwrap_err(),
            ParseError::NotSip
        );
        assert_eq!(parse_str("").unwrap_err(), ParseError::KeepAlive);
        // A datagram missing only the final empty line is tolerated.
        assert!(parse_str(REG.strip_suffix("\r\n").unwrap()).is_ok());
    }

    #[test]
    fn strict_rejections() {
        let cases: &[(&str, &str)] = &[
            (
                "REGISTER sip:example.com SIP/2.0",
                "REGISTER sip:example.com SIP/3.0",
            ),
            ("Max-Forwards: 70", "Max-Forwards: 256"),
            ("Max-Forwards: 70", "Max-Forwards: 70\r\nMax-Forwards: 70"),
            ("CSeq: 2 REGISTER", "CSeq: 2 INVITE"),
            ("CSeq: 2 REGISTER", "CSeq: 2147483648 REGISTER"),
            ("l: 0", "l: 0\r\nExpires: 4294967296"),
            ("l: 0", "l: -1"),
            ("i: reg-1@host\r\n", ""),
            ("REGISTER sip:example.com", "REGISTER <sip:example.com>"),
            ("Max-Forwards: 70", "Max-Forwards 70"),
            ("Max-Forwards: 70", "Bad Name: 70"),
            ("l: 0\r\n\r\n", "l: 0"),
        ];
        for (from, to) in cases {
            let s = REG.replacen(from, to, 1);
            let e = parse_str(&s).expect_err(to);
            let want = if to.contains("SIP/3.0") { 505 } else { 400 };
            assert_eq!(e.status(), Some(want), "{to}: {e:?}");
            let reply = error_response(s.as_bytes(), &e, &Limits::default()).unwrap();
            let text = std::str::from_utf8(&reply).unwrap();
            assert!(text.starts_with(&format!("SIP/2.0 {want} ")), "{text}");
            assert!(text.contains("Via: SIP/2.0/UDP [2001:db8::1]"), "{text}");
            assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
        }
        let e = parse_str(&REG.replacen("i: reg-1@host\r\n", "", 1)).unwrap_err();
        assert_eq!(e.to_string(), "bad request: Missing Call-ID");
        let reply = error_response(
            REG.replacen("i: reg-1@host\r\n", "", 1).as_bytes(),
            &e,
            &Limits::default(),
        )
        .unwrap();
        assert!(reply.starts_with(b"SIP/2.0 400 Missing Call-ID\r\n"));
        // Responses are never answered.
        let resp = "SIP/2.0 999 Nope\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\n";
        let e = parse_str(resp).unwrap_err();
        assert_eq!(e.status(), None);
        assert!(error_response(resp.as_bytes(), &e, &Limits::default()).is_none());
    }

    #[test]
    fn limits_are_enforced() {
        let l = Limits {
            max_headers: 5,
            ..Limits::default()
        };
        assert_eq!(
            parse_datagram(Bytes::from_static(REG.as_bytes()), &l).unwrap_err(),
            ParseError::Request(ErrorKind::TooManyHeaders)
        );
        let l = Limits {
            max_contacts: 1,
            ..Limits::default()
        };
        assert!(parse_datagram(Bytes::from_static(REG.as_bytes()), &l).is_err());
        let l = Limits {
            max_message_bytes: 100,
            ..Limits::default()
        };
        assert_eq!(
            parse_datagram(Bytes::from_static(REG.as_bytes()), &l)
                .unwrap_err()
                .status(),
            Some(413)
        );
        let long = REG.replace("Max-Forwards: 70", &format!("X: {}", "a".repeat(9000)));
        assert_eq!(
            parse_str(&long).unwrap_err(),
            ParseError::Request(ErrorKind::HeaderTooLong)
        );
    }

    #[test]
    fn stream_framing() {
        let l = Limits::default();
        let msg = REG.replace("l: 0", "l: 5") + "hello";
        let two = format!("\r\n\r\n{msg}{msg}");
        let b = two.as_bytes();
        assert_eq!(frame_stream(b, &l), Ok(Some(4)));
        assert!(is_keepalive(&b[..4]));
        let rest = &b[4..];
        let n = frame_stream(rest, &l).unwrap().unwrap();
        assert_eq!(n, msg.len());
        let m = parse_stream_message(Bytes::copy_from_slice(&rest[..n]), &l).unwrap();
        assert_eq!(m.body(), b"hello");
        // Every strict prefix is incomplete, never an error.
        for cut in 0..msg.len() {
            assert_eq!(
                frame_stream(&msg.as_bytes()[..cut], &l),
                Ok(None),
                "cut {cut}"
            );
        }
        let no_cl = REG.replace("l: 0\r\n", "");
        assert_eq!(
            frame_stream(no_cl.as_bytes(), &l),
            Err(ParseError::Request(ErrorKind::MissingContentLength))
        );
        let two_cl = REG.replace("l: 0", "l: 0\r\nContent-Length: 0");
        assert!(frame_stream(two_cl.as_bytes(), &l).is_err());
        let folded = REG.replace("l: 0", "Content-Length:\r\n 5") + "hello";
        assert_eq!(frame_stream(folded.as_bytes(), &l), Ok(Some(folded.len())));
        let endless = format!("INVITE sip:a@b SIP/2.0\r\nX: {}", "a".repeat(10_000));
        assert!(frame_stream(endless.as_bytes(), &l).is_err());
        assert!(parse_stream_message(Bytes::copy_from_slice(no_cl.as_bytes()), &l).is_err());
    }
}
