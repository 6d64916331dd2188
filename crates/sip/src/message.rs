//! An owned SIP message: the wire bytes plus an index of spans into them.
//!
//! The type has no lifetime so a proxy can keep it in a transaction; typed
//! views borrow from it on demand. Edits never rewrite the untouched bytes:
//! new or changed values live in a side buffer and the header index points
//! there instead.

use std::fmt::Write as _;

use bytes::Bytes;

use crate::header::{parse_u32, CSeq, Contact, HeaderError, HeaderName, NameAddr, ValueSplit, Via};
use crate::limits::Limits;
use crate::method::{is_token, Method};
use crate::parse::{parse_datagram, ParseError};
use crate::uri::{trim_lws, Uri, UriError};

/// A byte range either in the wire buffer or in the edit buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u32,
    pub end: u32,
    pub extra: bool,
}

impl Span {
    pub(crate) fn wire(start: usize, end: usize) -> Span {
        // Messages are capped far below 4 GiB by `Limits`, so offsets fit.
        Span {
            start: start as u32,
            end: end as u32,
            extra: false,
        }
    }
}

/// One header line of the index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hdr {
    /// `HeaderName::id()`; `u8::MAX` for unknown names.
    pub id: u8,
    pub name: Span,
    /// Trimmed value; folding already replaced by spaces.
    pub value: Span,
}

#[derive(Debug, Clone)]
pub(crate) enum StartLine {
    Request { method: Method, uri: Span },
    Response { code: u16, reason: Span },
}

/// Why an edit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("invalid header name")]
    BadName,
    #[error("header value contains CR, LF or NUL")]
    BadValue,
    #[error("invalid {name} value: {error}")]
    Invalid {
        name: &'static str,
        error: HeaderError,
    },
    #[error("invalid URI: {0}")]
    Uri(#[from] UriError),
    #[error("{0} is mandatory and cannot be removed")]
    Mandatory(&'static str),
    #[error("Content-Length is computed when printing and cannot be edited")]
    ContentLength,
    #[error("not a request")]
    NotRequest,
    #[error("header or URI longer than the configured limit")]
    TooLong,
}

/// A parsed SIP request or response.
#[derive(Debug, Clone)]
pub struct Message {
    pub(crate) buf: Bytes,
    /// `buf[..head_len]` (start line + headers) was validated as UTF-8.
    pub(crate) head_len: usize,
    pub(crate) extra: String,
    pub(crate) start: StartLine,
    pub(crate) headers: Vec<Hdr>,
    /// The body: a range of `buf` as parsed (no second reference to count
    /// on the hot path), or bytes set by an edit.
    pub(crate) body: Body,
    pub(crate) cseq: CSeq,
    /// Hot-path values located once by the parser (and after edits) so the
    /// transaction layer does not re-parse From/To/Via on every lookup.
    pub(crate) from_tag: Option<Span>,
    pub(crate) to_tag: Option<Span>,
    pub(crate) branch: Option<Span>,
    pub(crate) call_id: Span,
    pub(crate) max_forwards: Option<u8>,
    pub(crate) limits: Limits,
}

#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// `buf[start..end]`.
    Wire(u32, u32),
    Own(Bytes),
}

/// The span of `sub` inside `base`, when `sub` is a sub-slice of it.
pub(crate) fn offset_span(base: &str, sub: &str, extra: bool) -> Option<Span> {
    let b = base.as_ptr() as usize;
    let p = sub.as_ptr() as usize;
    (p >= b && p + sub.len() <= b + base.len()).then(|| Span {
        start: (p - b) as u32,
        end: (p - b + sub.len()) as u32,
        extra,
    })
}

fn value_ok(v: &str) -> bool {
    !v.bytes().any(|c| matches!(c, b'\r' | b'\n' | 0))
}

impl Message {
    fn head(&self) -> &str {
        let head = &self.buf[..self.head_len];
        // SAFETY: the parser validated `buf[..head_len]` with
        // `std::str::from_utf8` before building the message, and `Bytes`
        // is immutable, so the bytes are still valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(head) }
    }

    pub(crate) fn text(&self, sp: Span) -> &str {
        let r = sp.start as usize..sp.end as usize;
        let s = if sp.extra {
            self.extra.get(r)
        } else {
            self.head().get(r)
        };
        // Spans are built on ASCII delimiters, so `get` always succeeds;
        // an empty string is the panic-free fallback.
        s.unwrap_or("")
    }

    fn push_extra(&mut self, v: &str) -> Span {
        let start = self.extra.len();
        self.extra.push_str(v);
        Span {
            start: start as u32,
            end: self.extra.len() as u32,
            extra: true,
        }
    }

    fn matches(&self, h: &Hdr, name: &HeaderName<'_>) -> bool {
        match name {
            HeaderName::Other(n) => h.id == u8::MAX && self.text(h.name).eq_ignore_ascii_case(n),
            k => h.id == k.id(),
        }
    }

    // ---- start line -------------------------------------------------------

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// Raw Request-URI text.
    pub fn request_uri_str(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(self.text(*uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// Parsed Request-URI (validated at parse time, so `Some` for requests).
    pub fn request_uri(&self) -> Option<Uri<'_>> {
        self.request_uri_str()
            .and_then(|u| Uri::parse_bounded(u, self.limits.max_uri_bytes).ok())
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(self.text(*reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// Always `SIP/2.0`: other versions are rejected by the parser.
    pub fn version(&self) -> &'static str {
        "SIP/2.0"
    }

    // ---- raw header access --------------------------------------------------

    /// First line's value of `name`, trimmed (folding already normalised to
    /// spaces). For list headers this is the whole first line.
    pub fn header(&self, name: HeaderName<'_>) -> Option<&str> {
        let name = name.normalized();
        self.headers
            .iter()
            .find(|h| self.matches(h, &name))
            .map(|h| self.text(h.value))
    }

    /// All values of `name` in order. List headers (see
    /// [`HeaderName::is_list`]) are split on top-level commas across all
    /// their lines, empty elements skipped; other headers yield each line.
    pub fn header_values<'s, 'n: 's>(
        &'s self,
        name: HeaderName<'n>,
    ) -> impl Iterator<Item = &'s str> + 's {
        // Covariance: shorten the name's lifetime to the message borrow.
        let name: HeaderName<'s> = name.normalized();
        let split = name.is_list();
        let (id, other) = match name {
            HeaderName::Other(n) => (u8::MAX, Some(n)),
            k => (k.id(), None),
        };
        self.headers
            .iter()
            .filter(move |h| {
                h.id == id && other.is_none_or(|o| self.text(h.name).eq_ignore_ascii_case(o))
            })
            .flat_map(move |h| {
                let v = self.text(h.value);
                let (a, b) = if split {
                    (Some(ValueSplit::new(v)), None)
                } else {
                    (None, Some(std::iter::once(v)))
                };
                a.into_iter().flatten().chain(b.into_iter().flatten())
            })
            .filter(|v| !v.is_empty())
    }

    /// All header lines `(name, value)` in wire order; the name as written
    /// on the wire is available through [`HeaderName::Other`] for unknown
    /// headers and [`Message::raw_headers`] for all.
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName<'_>, &str)> + '_ {
        self.headers.iter().map(|h| {
            let name = HeaderName::from_id(h.id).unwrap_or(HeaderName::Other(self.text(h.name)));
            (name, self.text(h.value))
        })
    }

    /// Header lines with the names exactly as on the wire.
    pub fn raw_headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.headers
            .iter()
            .map(|h| (self.text(h.name), self.text(h.value)))
    }

    /// Number of header lines named `name`.
    pub fn header_count(&self, name: HeaderName<'_>) -> usize {
        let name = name.normalized();
        self.headers
            .iter()
            .filter(|h| self.matches(h, &name))
            .count()
    }

    // ---- typed shortcuts ----------------------------------------------------

    /// Call-ID (mandatory, validated at parse time).
    pub fn call_id(&self) -> &str {
        self.text(self.call_id)
    }

    /// CSeq (mandatory, validated at parse time).
    pub fn cseq(&self) -> &CSeq {
        &self.cseq
    }

    fn name_addr(&self, name: HeaderName<'_>) -> Option<NameAddr<'_>> {
        self.header(name)
            .and_then(|v| NameAddr::parse_bounded(v, self.limits.max_uri_bytes).ok())
    }

    /// From (validated at parse time, so `Some` unless edited away).
    pub fn from(&self) -> Option<NameAddr<'_>> {
        self.name_addr(HeaderName::From)
    }

    pub fn to(&self) -> Option<NameAddr<'_>> {
        self.name_addr(HeaderName::To)
    }

    /// From tag (cached at parse time).
    pub fn from_tag(&self) -> Option<&str> {
        self.from_tag.map(|s| self.text(s))
    }

    /// To tag (cached at parse time).
    pub fn to_tag(&self) -> Option<&str> {
        self.to_tag.map(|s| self.text(s))
    }

    /// Branch of the topmost Via (cached at parse time).
    pub fn top_via_branch(&self) -> Option<&str> {
        self.branch.map(|s| self.text(s))
    }

    fn locate(&self, sub: &str) -> Option<Span> {
        offset_span(self.head(), sub, false).or_else(|| offset_span(&self.extra, sub, true))
    }

    /// Recomputes the cached values after an edit.
    fn refresh_cache(&mut self) {
        self.from_tag = self
            .from()
            .and_then(|n| n.tag())
            .and_then(|t| self.locate(t));
        self.to_tag = self.to().and_then(|n| n.tag()).and_then(|t| self.locate(t));
        self.branch = self
            .top_via()
            .and_then(|v| v.branch())
            .and_then(|b| self.locate(b));
        if let Some(c) = self
            .header(HeaderName::CSeq)
            .and_then(|v| CSeq::parse(v).ok())
        {
            self.cseq = c;
        }
        self.call_id = self
            .header(HeaderName::CallId)
            .and_then(|v| self.locate(v))
            .unwrap_or(Span::wire(0, 0));
        self.max_forwards = self
            .header(HeaderName::MaxForwards)
            .and_then(|v| parse_u32(v).ok())
            .and_then(|v| u8::try_from(v).ok());
    }

    /// Topmost Via value (validated at parse time).
    pub fn top_via(&self) -> Option<Via<'_>> {
        self.header_values(HeaderName::Via)
            .next()
            .and_then(|v| Via::parse(v).ok())
    }

    /// Every Via value, top first; values below the top one are parsed here
    /// for the first time.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, HeaderError>> + '_ {
        self.header_values(HeaderName::Via).map(Via::parse)
    }

    /// Max-Forwards (validated 0..=255 at parse time); `None` when absent.
    pub fn max_forwards(&self) -> Option<u32> {
        self.max_forwards.map(u32::from)
    }

    /// Expires header (validated to fit u32 at parse time).
    pub fn expires(&self) -> Option<u32> {
        self.header(HeaderName::Expires)
            .and_then(|v| parse_u32(v).ok())
    }

    /// Contact values (validated at parse time, bounded by
    /// `Limits::max_contacts`).
    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'_>, HeaderError>> + '_ {
        let max = self.limits.max_uri_bytes;
        self.header_values(HeaderName::Contact)
            .map(move |v| Contact::parse_bounded(v, max))
    }

    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, HeaderError>> + '_ {
        let max = self.limits.max_uri_bytes;
        self.header_values(HeaderName::Route)
            .map(move |v| NameAddr::parse_bounded(v, max))
    }

    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, HeaderError>> + '_ {
        let max = self.limits.max_uri_bytes;
        self.header_values(HeaderName::RecordRoute)
            .map(move |v| NameAddr::parse_bounded(v, max))
    }

    /// Content-Type value as written (media type and parameters).
    pub fn content_type(&self) -> Option<&str> {
        self.header(HeaderName::ContentType)
    }

    pub fn body(&self) -> &[u8] {
        match &self.body {
            Body::Wire(s, e) => &self.buf[*s as usize..*e as usize],
            Body::Own(b) => b,
        }
    }

    /// The body as a shared `Bytes` (no copy).
    pub fn body_bytes(&self) -> Bytes {
        match &self.body {
            Body::Wire(s, e) => self.buf.slice(*s as usize..*e as usize),
            Body::Own(b) => b.clone(),
        }
    }

    /// The limits the message was parsed with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    // ---- edits --------------------------------------------------------------

    fn check_edit(&self, name: HeaderName<'_>, value: &str) -> Result<(), EditError> {
        if let HeaderName::Other(n) = name {
            if !is_token(n) {
                return Err(EditError::BadName);
            }
        }
        if !value_ok(value) {
            return Err(EditError::BadValue);
        }
        if value.len() > self.limits.max_header_bytes {
            return Err(EditError::TooLong);
        }
        let max = self.limits.max_uri_bytes;
        let invalid = |error| EditError::Invalid {
            name: name.as_str_static(),
            error,
        };
        match name {
            HeaderName::ContentLength => return Err(EditError::ContentLength),
            HeaderName::Via => {
                for v in ValueSplit::new(value) {
                    Via::parse(v).map_err(invalid)?;
                }
            }
            HeaderName::From | HeaderName::To => {
                NameAddr::parse_bounded(value, max).map_err(invalid)?;
            }
            HeaderName::Route | HeaderName::RecordRoute => {
                for v in ValueSplit::new(value) {
                    NameAddr::parse_bounded(v, max).map_err(invalid)?;
                }
            }
            HeaderName::Contact => {
                for v in ValueSplit::new(value) {
                    Contact::parse_bounded(v, max).map_err(invalid)?;
                }
            }
            HeaderName::CSeq => {
                let c = CSeq::parse(value).map_err(invalid)?;
                if self.method().is_some_and(|m| *m != c.method) {
                    return Err(invalid(HeaderError::BadCSeq));
                }
            }
            HeaderName::MaxForwards if parse_u32(value).map_err(invalid)? > 255 => {
                return Err(invalid(HeaderError::OutOfRange));
            }
            HeaderName::Expires => {
                parse_u32(value).map_err(invalid)?;
            }
            HeaderName::CallId if trim_lws(value).is_empty() => {
                return Err(invalid(HeaderError::Empty));
            }
            _ => {}
        }
        Ok(())
    }

    fn new_hdr(&mut self, name: HeaderName<'_>, value: &str) -> Hdr {
        let id = name.id();
        let name_span = self.push_extra(name.as_str());
        let value_span = self.push_extra(trim_lws(value));
        Hdr {
            id,
            name: name_span,
            value: value_span,
        }
    }

    fn after_edit(&mut self, name: HeaderName<'_>) {
        if matches!(
            name,
            HeaderName::CSeq
                | HeaderName::From
                | HeaderName::To
                | HeaderName::Via
                | HeaderName::CallId
                | HeaderName::MaxForwards
        ) {
            self.refresh_cache();
        }
    }

    /// Replaces the Request-URI (validated, no `?headers` allowed).
    pub fn set_request_uri(&mut self, uri: &str) -> Result<(), EditError> {
        if !self.is_request() {
            return Err(EditError::NotRequest);
        }
        match Uri::parse_bounded(uri, self.limits.max_uri_bytes)? {
            Uri::Sip(s) if s.headers.is_some() => return Err(EditError::Uri(UriError::BadHeaders)),
            _ => {}
        }
        let sp = self.push_extra(uri);
        if let StartLine::Request { uri, .. } = &mut self.start {
            *uri = sp;
        }
        Ok(())
    }

    /// Inserts a header line before the first line of the same name, or
    /// first among all headers when there is none (a proxy's new Via or
    /// Record-Route goes on top this way).
    pub fn push_header_front(
        &mut self,
        name: HeaderName<'_>,
        value: &str,
    ) -> Result<(), EditError> {
        let name = name.normalized();
        self.check_edit(name, value)?;
        self.check_single(name)?;
        let pos = self
            .headers
            .iter()
            .position(|h| self.matches(h, &name))
            .unwrap_or(0);
        let h = self.new_hdr(name, value);
        self.headers.insert(pos, h);
        self.after_edit(name);
        Ok(())
    }

    /// Appends a header line after all others.
    pub fn append_header(&mut self, name: HeaderName<'_>, value: &str) -> Result<(), EditError> {
        let name = name.normalized();
        self.check_edit(name, value)?;
        self.check_single(name)?;
        let h = self.new_hdr(name, value);
        self.headers.push(h);
        self.after_edit(name);
        Ok(())
    }

    fn check_single(&self, name: HeaderName<'_>) -> Result<(), EditError> {
        if name.is_single() && self.header_count(name) > 0 {
            // Adding would create a duplicate the parser itself rejects;
            // use `set_header` instead.
            return Err(EditError::Invalid {
                name: name.as_str_static(),
                error: HeaderError::Trailing,
            });
        }
        Ok(())
    }

    /// Replaces every line of `name` by one line with `value`, at the
    /// position of the first one (appended when absent).
    pub fn set_header(&mut self, name: HeaderName<'_>, value: &str) -> Result<(), EditError> {
        let name = name.normalized();
        self.check_edit(name, value)?;
        let h = self.new_hdr(name, value);
        match self.headers.iter().position(|x| self.matches(x, &name)) {
            Some(pos) => {
                self.headers[pos] = h;
                let mut i = pos + 1;
                while i < self.headers.len() {
                    if self.matches(&self.headers[i], &name) {
                        self.headers.remove(i);
                    } else {
                        i += 1;
                    }
                }
            }
            None => self.headers.push(h),
        }
        self.after_edit(name);
        Ok(())
    }

    fn removable(name: HeaderName<'_>) -> Result<(), EditError> {
        match name {
            HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::CSeq => {
                Err(EditError::Mandatory(name.as_str_static()))
            }
            HeaderName::ContentLength => Err(EditError::ContentLength),
            _ => Ok(()),
        }
    }

    /// Removes the first value of `name`: for list headers (Via, Route, ...)
    /// only the first comma-separated value of the first line, otherwise
    /// the first line. Returns whether something was removed.
    pub fn remove_first(&mut self, name: HeaderName<'_>) -> Result<bool, EditError> {
        let name = name.normalized();
        Self::removable(name)?;
        let Some(pos) = self.headers.iter().position(|h| self.matches(h, &name)) else {
            return Ok(false);
        };
        let h = self.headers[pos];
        if name.is_list() {
            let v = self.text(h.value);
            if let Some(c) = crate::header::top_level_comma(v.as_bytes()) {
                let rest = &v[c + 1..];
                let skip = c + 1 + (rest.len() - rest.trim_start().len());
                if skip < v.len() {
                    self.headers[pos].value.start = h.value.start + skip as u32;
                    self.after_edit(name);
                    return Ok(true);
                }
            }
        }
        self.headers.remove(pos);
        self.after_edit(name);
        Ok(true)
    }

    /// Removes every line of `name`; returns how many lines went.
    pub fn remove_all(&mut self, name: HeaderName<'_>) -> Result<usize, EditError> {
        let name = name.normalized();
        Self::removable(name)?;
        let before = self.headers.len();
        let mut keep = std::mem::take(&mut self.headers);
        keep.retain(|h| !self.matches(h, &name));
        self.headers = keep;
        self.after_edit(name);
        Ok(before - self.headers.len())
    }

    /// Replaces the body and its Content-Type (`None` removes Content-Type).
    pub fn set_body(&mut self, content_type: Option<&str>, body: Bytes) -> Result<(), EditError> {
        match content_type {
            Some(ct) => self.set_header(HeaderName::ContentType, ct)?,
            None => {
                self.remove_all(HeaderName::ContentType)?;
            }
        }
        self.body = Body::Own(body);
        Ok(())
    }

    // ---- printing -----------------------------------------------------------

    /// Prints the message: one `Name: value` line per header (names as on
    /// the wire, folding normalised), Content-Length always present and
    /// exact, at the position of the original one.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let body = self.body();
        out.reserve(self.head_len + self.extra.len() + body.len() + 32);
        match &self.start {
            StartLine::Request { method, uri } => {
                out.extend_from_slice(method.as_str().as_bytes());
                out.push(b' ');
                out.extend_from_slice(self.text(*uri).as_bytes());
                out.extend_from_slice(b" SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                out.extend_from_slice(b"SIP/2.0 ");
                push_u32(out, u32::from(*code));
                out.push(b' ');
                out.extend_from_slice(self.text(*reason).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        let cl_id = HeaderName::ContentLength.id();
        let mut cl_done = false;
        for h in &self.headers {
            out.extend_from_slice(self.text(h.name).as_bytes());
            out.extend_from_slice(b": ");
            if h.id == cl_id {
                if cl_done {
                    // Remove the name we just wrote: only one Content-Length.
                    out.truncate(out.len() - self.text(h.name).len() - 2);
                    continue;
                }
                cl_done = true;
                push_u32(out, body.len() as u32);
            } else {
                out.extend_from_slice(self.text(h.value).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        if !cl_done {
            out.extend_from_slice(b"Content-Length: ");
            push_u32(out, body.len() as u32);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut v = Vec::new();
        self.write_to(&mut v);
        Bytes::from(v)
    }

    // ---- builders -----------------------------------------------------------

    /// Starts a response to `req` (see [`ResponseBuilder`]).
    pub fn response_to<'a>(req: &'a Message, code: u16, reason: &'a str) -> ResponseBuilder<'a> {
        ResponseBuilder {
            req,
            code,
            reason,
            to_tag: None,
            copy_record_route: false,
            extra: Vec::new(),
            body: None,
            error: None,
        }
    }
}

impl HeaderName<'_> {
    /// Name for error messages (`Other` names are not kept in errors).
    pub(crate) fn as_str_static(&self) -> &'static str {
        match self {
            HeaderName::Other(_) => "extension header",
            k => HeaderName::from_id(k.id()).map_or("header", |s| s.as_str()),
        }
    }
}

pub(crate) fn push_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(decimal(v, &mut [0; 10]).as_bytes());
}

/// `v` in decimal, written into `buf`: for hot paths where `Display` and
/// its formatting machinery cost more than the text.
pub fn decimal(mut v: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// Why a builder could not produce a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("status code outside 100..=699")]
    BadStatus,
    #[error("reason phrase contains CR, LF or NUL")]
    BadReason,
    #[error("invalid header name")]
    BadName,
    #[error("header value contains CR, LF or NUL")]
    BadValue,
    #[error("invalid tag")]
    BadTag,
    #[error("invalid Request-URI: {0}")]
    BadUri(UriError),
    #[error("Content-Length is computed by the builder")]
    ContentLength,
    #[error("the request being answered is a response")]
    NotRequest,
    #[error("built message does not parse: {0}")]
    Parse(ParseError),
}

fn push_header_line(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Checks a builder header and renders it into `out`.
fn add_header(out: &mut Vec<u8>, name: HeaderName<'_>, value: &str) -> Result<(), BuildError> {
    let name = name.normalized();
    if let HeaderName::Other(n) = name {
        if !is_token(n) {
            return Err(BuildError::BadName);
        }
    }
    if matches!(name, HeaderName::ContentLength) {
        return Err(BuildError::ContentLength);
    }
    if !value_ok(value) {
        return Err(BuildError::BadValue);
    }
    push_header_line(out, name.as_str(), trim_lws(value));
    Ok(())
}

/// Builds a response: copies every Via line, From, To, Call-ID and CSeq of
/// the request (RFC 3261 §8.2.6.2), optionally a To tag, extra headers and
/// a body. `build()` is the fast path straight to bytes.
#[derive(Debug)]
pub struct ResponseBuilder<'a> {
    req: &'a Message,
    code: u16,
    reason: &'a str,
    to_tag: Option<&'a str>,
    copy_record_route: bool,
    extra: Vec<u8>,
    body: Option<(&'a str, Bytes)>,
    error: Option<BuildError>,
}

impl<'a> ResponseBuilder<'a> {
    /// Adds `;tag=` to To unless the request's To already has one.
    pub fn to_tag(mut self, tag: &'a str) -> Self {
        if !crate::uri::token_ok(tag) {
            self.error.get_or_insert(BuildError::BadTag);
        }
        self.to_tag = Some(tag);
        self
    }

    /// Copies the Record-Route lines (UAS answering a dialog-creating request).
    pub fn copy_record_route(mut self) -> Self {
        self.copy_record_route = true;
        self
    }

    /// Adds a header line (Content-Length is refused: it is computed).
    pub fn header(mut self, name: HeaderName<'_>, value: &str) -> Self {
        if let Err(e) = add_header(&mut self.extra, name, value) {
            self.error.get_or_insert(e);
        }
        self
    }

    pub fn body(mut self, content_type: &'a str, body: Bytes) -> Self {
        if !value_ok(content_type) {
            self.error.get_or_insert(BuildError::BadValue);
        }
        self.body = Some((content_type, body));
        self
    }

    pub fn build(self) -> Result<Bytes, BuildError> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(Bytes::from(out))
    }

    /// Builds and re-parses into a [`Message`].
    pub fn build_message(self) -> Result<Message, BuildError> {
        let limits = self.req.limits.clone();
        let bytes = self.build()?;
        parse_datagram(bytes, &limits).map_err(BuildError::Parse)
    }

    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), BuildError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !(100..=699).contains(&self.code) {
            return Err(BuildError::BadStatus);
        }
        if !value_ok(self.reason) {
            return Err(BuildError::BadReason);
        }
        let req = self.req;
        if !req.is_request() {
            return Err(BuildError::NotRequest);
        }
        out.reserve(
            256 + req.head_len / 2 + self.extra.len() + self.body.as_ref().map_or(0, |b| b.1.len()),
        );
        out.extend_from_slice(b"SIP/2.0 ");
        push_u32(out, u32::from(self.code));
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        let (via, from, to, call_id, cseq, rr) = (
            HeaderName::Via.id(),
            HeaderName::From.id(),
            HeaderName::To.id(),
            HeaderName::CallId.id(),
            HeaderName::CSeq.id(),
            HeaderName::RecordRoute.id(),
        );
        for h in &req.headers {
            let v = req.text(h.value);
            if h.id == via {
                push_header_line(out, "Via", v);
            } else if h.id == rr && self.copy_record_route {
                push_header_line(out, "Record-Route", v);
            }
        }
        for h in &req.headers {
            let v = req.text(h.value);
            if h.id == from {
                push_header_line(out, "From", v);
            } else if h.id == to {
                out.extend_from_slice(b"To: ");
                out.extend_from_slice(v.as_bytes());
                if let Some(tag) = self.to_tag {
                    if req.to_tag().is_none() {
                        out.extend_from_slice(b";tag=");
                        out.extend_from_slice(tag.as_bytes());
                    }
                }
                out.extend_from_slice(b"\r\n");
            } else if h.id == call_id {
                push_header_line(out, "Call-ID", v);
            } else if h.id == cseq {
                push_header_line(out, "CSeq", v);
            }
        }
        out.extend_from_slice(&self.extra);
        let len = match &self.body {
            Some((ct, b)) => {
                push_header_line(out, "Content-Type", ct);
                b.len()
            }
            None => 0,
        };
        out.extend_from_slice(b"Content-Length: ");
        push_u32(out, len as u32);
        out.extend_from_slice(b"\r\n\r\n");
        if let Some((_, b)) = &self.body {
            out.extend_from_slice(b);
        }
        Ok(())
    }
}

/// Builds a request from scratch (a proxy's CANCEL/ACK, test clients).
/// Headers are printed in the order added; Content-Length is computed.
#[derive(Debug)]
pub struct RequestBuilder {
    method: Method,
    uri: String,
    headers: Vec<u8>,
    body: Option<Bytes>,
    error: Option<BuildError>,
}

impl RequestBuilder {
    pub fn new(method: Method, uri: &str) -> Self {
        let error = match Uri::parse(uri) {
            Ok(Uri::Sip(s)) if s.headers.is_some() => {
                Some(BuildError::BadUri(UriError::BadHeaders))
            }
            Ok(_) => None,
            Err(e) => Some(BuildError::BadUri(e)),
        };
        RequestBuilder {
            method,
            uri: uri.to_owned(),
            headers: Vec::with_capacity(256),
            body: None,
            error,
        }
    }

    pub fn header(mut self, name: HeaderName<'_>, value: &str) -> Self {
        if let Err(e) = add_header(&mut self.headers, name, value) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Sets the body and adds its Content-Type.
    pub fn body(self, content_type: &str, body: Bytes) -> Self {
        let mut s = self.header(HeaderName::ContentType, content_type);
        s.body = Some(body);
        s
    }

    pub fn build(self) -> Result<Bytes, BuildError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let blen = self.body.as_ref().map_or(0, |b| b.len());
        let mut out = Vec::with_capacity(self.uri.len() + self.headers.len() + blen + 64);
        let _ = write!(Wrap(&mut out), "{} {} SIP/2.0\r\n", self.method, self.uri);
        out.extend_from_slice(&self.headers);
        out.extend_from_slice(b"Content-Length: ");
        push_u32(&mut out, blen as u32);
        out.extend_from_slice(b"\r\n\r\n");
        if let Some(b) = &self.body {
            out.extend_from_slice(b);
        }
        Ok(Bytes::from(out))
    }

    /// Builds and parses (so the usual mandatory-header checks apply).
    pub fn build_message(self, limits: &Limits) -> Result<Message, BuildError> {
        let bytes = self.build()?;
        parse_datagram(bytes, limits).map_err(BuildError::Parse)
    }
}

struct Wrap<'a>(&'a mut Vec<u8>);
impl std::fmt::Write for Wrap<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::Contact;

    const INV: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds, SIP/2.0/UDP p2.example.com;branch=z9hG4bK2\r\n\
Via: SIP/2.0/TCP p3.example.com;branch=z9hG4bK3\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

    fn inv() -> Message {
        parse_datagram(Bytes::from_static(INV.as_bytes()), &Limits::default()).unwrap()
    }

    #[test]
    fn accessors() {
        let m = inv();
        assert!(m.is_request());
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(
            m.request_uri().unwrap().to_string(),
            "sip:bob@biloxi.example.com"
        );
        assert_eq!(m.version(), "SIP/2.0");
        assert_eq!(m.status(), None);
        assert_eq!(m.cseq().seq, 314159);
        assert_eq!(m.max_forwards(), Some(70));
        assert_eq!(m.from().unwrap().display_name, Some("Alice"));
        assert_eq!(m.from_tag(), Some("1928301774"));
        assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK776asdhds"));
        let branches: Vec<_> = m.vias().map(|v| v.unwrap().branch().unwrap()).collect();
        assert_eq!(branches, ["z9hG4bK776asdhds", "z9hG4bK2", "z9hG4bK3"]);
        assert_eq!(m.routes().count(), 2);
        assert_eq!(m.record_routes().count(), 0);
        // Non-list headers are never split on commas.
        assert_eq!(m.header_values(HeaderName::Date).count(), 1);
        assert_eq!(m.header_values(HeaderName::Other("date")).count(), 1);
        assert_eq!(m.content_type(), Some("application/sdp"));
        assert_eq!(m.body(), b"v=0\n");
        assert_eq!(m.headers().count(), 11);
        assert_eq!(m.headers().next().unwrap().0, HeaderName::Via);
    }

    #[test]
    fn proxy_edits() {
        let mut m = inv();
        m.push_header_front(
            HeaderName::Via,
            "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp",
        )
        .unwrap();
        m.push_header_front(HeaderName::RecordRoute, "<sip:proxy.example.com;lr>")
            .unwrap();
        assert!(m.remove_first(HeaderName::Route).unwrap());
        m.set_header(HeaderName::MaxForwards, "69").unwrap();
        // Cached values follow the edits.
        assert_eq!(m.max_forwards(), Some(69));
        let call_id = m.call_id().to_string();
        m.set_header(HeaderName::CallId, "new-call@example.com")
            .unwrap();
        assert_eq!(m.call_id(), "new-call@example.com");
        m.set_header(HeaderName::CallId, &call_id).unwrap();
        assert_eq!(m.top_via_branch(), Some("z9hG4bKp"));
        m.set_header(HeaderName::To, "Bob <sip:bob@biloxi.example.com>;tag=xyz")
            .unwrap();
        assert_eq!(m.to_tag(), Some("xyz"));
        m.set_request_uri("sip:bob@192.0.2.4:5062").unwrap();
        m.append_header(HeaderName::parse("X-Trace"), "1").unwrap();
        assert!(m.push_header_front(HeaderName::Via, "garbage").is_err());
        assert!(m
            .append_header(HeaderName::Other("X-Bad"), "a\r\nInjected: 1")
            .is_err());
        assert!(m.append_header(HeaderName::CallId, "dup").is_err());
        assert!(m.remove_all(HeaderName::CallId).is_err());
        assert!(m.set_request_uri("sip:a@b?x=y").is_err());

        let out = m.to_bytes();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with(
            "INVITE sip:bob@192.0.2.4:5062 SIP/2.0\r\nRecord-Route: <sip:proxy.example.com;lr>\r\nVia: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp\r\nVia: SIP/2.0/UDP pc33"
        ), "{text}");
        // Untouched lines are byte-identical.
        assert!(text.contains("\r\nDate: Sat, 13 Nov 2010 23:29:00 GMT\r\n"));
        let again = parse_datagram(out, &Limits::default()).unwrap();
        assert_eq!(again.max_forwards(), Some(69));
        assert_eq!(again.top_via().unwrap().branch(), Some("z9hG4bKp"));
        assert_eq!(again.vias().count(), 4);
        let routes: Vec<_> = again.routes().map(|r| r.unwrap().uri.to_string()).collect();
        assert_eq!(routes, ["sip:p2.example.com;lr"]);
        assert_eq!(again.header(HeaderName::parse("x-trace")), Some("1"));
        assert_eq!(again.body(), b"v=0\n");

        // Response path: pop our Via value by value.
        let mut r = again;
        assert!(r.remove_first(HeaderName::Via).unwrap());
        assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bK776asdhds"));
        assert!(r.remove_first(HeaderName::Via).unwrap());
        assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bK2"));
        assert_eq!(r.top_via_branch(), Some("z9hG4bK2"));
        assert_eq!(r.remove_all(HeaderName::Via).unwrap(), 2);
        assert!(r.top_via().is_none());
        assert!(r.top_via_branch().is_none());
    }

    #[test]
    fn body_edit_recomputes_length() {
        let mut m = inv();
        m.set_body(Some("text/plain"), Bytes::from_static(b"hello world"))
            .unwrap();
        let again = parse_datagram(m.to_bytes(), &Limits::default()).unwrap();
        assert_eq!(again.body(), b"hello world");
        assert_eq!(again.header(HeaderName::ContentLength), Some("11"));
        assert_eq!(again.content_type(), Some("text/plain"));
        m.set_body(None, Bytes::new()).unwrap();
        let again = parse_datagram(m.to_bytes(), &Limits::default()).unwrap();
        assert_eq!(again.content_type(), None);
        assert!(m.set_header(HeaderName::ContentLength, "3").is_err());
    }

    #[test]
    fn response_builder() {
        let m = inv();
        let b = Message::response_to(&m, 407, "Proxy Authentication Required")
            .to_tag("abc")
            .header(
                HeaderName::ProxyAuthenticate,
                "Digest realm=\"x\", nonce=\"y\"",
            )
            .build()
            .unwrap();
        let r = parse_datagram(b.clone(), &Limits::default()).unwrap();
        assert_eq!(r.status(), Some(407));
        assert_eq!(r.reason(), Some("Proxy Authentication Required"));
        assert_eq!(r.to_tag(), Some("abc"));
        assert_eq!(r.from_tag(), m.from_tag());
        assert_eq!(r.call_id(), m.call_id());
        assert_eq!(r.cseq(), m.cseq());
        assert_eq!(r.vias().count(), 3);
        assert_eq!(r.header_count(HeaderName::Via), 2);
        assert_eq!(r.header(HeaderName::ContentLength), Some("0"));
        let r = Message::response_to(&m, 200, "OK")
            .to_tag("t")
            .body("application/sdp", Bytes::from_static(b"v=0\r\n"))
            .build_message()
            .unwrap();
        assert_eq!(r.body(), b"v=0\r\n");
        assert!(Message::response_to(&m, 99, "x").build().is_err());
        assert!(Message::response_to(&m, 200, "x\r\n").build().is_err());
        assert!(Message::response_to(&m, 200, "x")
            .header(HeaderName::ContentLength, "1")
            .build()
            .is_err());
        assert!(Message::response_to(&r, 200, "x").build().is_err());
    }

    #[test]
    fn request_builder() {
        let b = RequestBuilder::new(Method::Cancel, "sip:bob@biloxi.example.com")
            .header(HeaderName::Via, "SIP/2.0/UDP p.example.com;branch=z9hG4bK1")
            .header(HeaderName::MaxForwards, "70")
            .header(HeaderName::From, "<sip:a@b>;tag=1")
            .header(HeaderName::To, "<sip:c@d>")
            .header(HeaderName::CallId, "x@y")
            .header(HeaderName::CSeq, "1 CANCEL")
            .header(HeaderName::Contact, "<sip:a@192.0.2.1>")
            .build_message(&Limits::default())
            .unwrap();
        assert_eq!(b.method(), Some(&Method::Cancel));
        assert!(matches!(b.contacts().next(), Some(Ok(Contact::Addr(_)))));
        assert!(RequestBuilder::new(Method::Invite, "sip:a b")
            .build()
            .is_err());
        assert!(RequestBuilder::new(Method::Invite, "sip:a@b")
            .header(HeaderName::Other("Bad Name"), "v")
            .build()
            .is_err());
    }
}
