//! Header names and typed header values (RFC 3261 §20, §25.1).
//!
//! Typed values borrow from the message and are parsed on demand; the
//! message parser calls the same functions to validate the few headers it
//! must check eagerly.

use std::fmt;

use crate::method::{is_token_byte, Method, MethodError};
use crate::scan::{run, ByteClass};
use crate::uri::{
    decoded_eq, host_chars, is_lws, parse_port, token_ok, trim_lws, Host, Params, Uri, UriError,
};

/// Why a header value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("empty value")]
    Empty,
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    #[error("display name is neither a token list nor quoted")]
    BadDisplayName,
    #[error("malformed addr-spec")]
    BadAddrSpec,
    #[error("bad URI: {0}")]
    Uri(#[from] UriError),
    #[error("malformed parameter")]
    BadParam,
    #[error("malformed Via")]
    BadVia,
    #[error("malformed CSeq")]
    BadCSeq,
    #[error("not a number")]
    BadNumber,
    #[error("number out of range")]
    OutOfRange,
    #[error("bad method: {0}")]
    BadMethod(#[from] MethodError),
    #[error("unexpected trailing text")]
    Trailing,
}

macro_rules! known_headers {
    ($( $var:ident = $name:literal, $lower:literal, $compact:expr, $list:expr; )*) => {
        /// A header name. Known headers (full or compact form, any case)
        /// parse to their variant; anything else is `Other`, compared
        /// case-insensitively. Build names with [`HeaderName::parse`].
        #[derive(Debug, Clone, Copy)]
        pub enum HeaderName<'a> {
            $( $var, )*
            Other(&'a str),
        }

        const KNOWN: &[(HeaderName<'static>, &str, Option<u8>, bool)] = &[
            $( (HeaderName::$var, $name, $compact, $list), )*
        ];

        /// Lowercase full names, indexed by id.
        const LOWER: &[&[u8]] = &[ $( $lower, )* ];

        /// Compact forms, indexed by id.
        const COMPACTS: &[Option<u8>] = &[ $( $compact, )* ];

        impl<'a> HeaderName<'a> {
            /// Index into the known table; `u8::MAX` for `Other`.
            pub(crate) const fn id(&self) -> u8 {
                let mut _i = 0u8;
                $(
                    if let HeaderName::$var = self { return _i; }
                    _i += 1;
                )*
                u8::MAX
            }
        }
    };
}

known_headers! {
    Accept = "Accept", b"accept", None, true;
    AcceptEncoding = "Accept-Encoding", b"accept-encoding", None, true;
    AcceptLanguage = "Accept-Language", b"accept-language", None, true;
    AlertInfo = "Alert-Info", b"alert-info", None, true;
    Allow = "Allow", b"allow", None, true;
    AllowEvents = "Allow-Events", b"allow-events", Some(b'u'), true;
    AuthenticationInfo = "Authentication-Info", b"authentication-info", None, false;
    Authorization = "Authorization", b"authorization", None, false;
    CallId = "Call-ID", b"call-id", Some(b'i'), false;
    CallInfo = "Call-Info", b"call-info", None, true;
    Contact = "Contact", b"contact", Some(b'm'), true;
    ContentDisposition = "Content-Disposition", b"content-disposition", None, false;
    ContentEncoding = "Content-Encoding", b"content-encoding", Some(b'e'), true;
    ContentLanguage = "Content-Language", b"content-language", None, true;
    ContentLength = "Content-Length", b"content-length", Some(b'l'), false;
    ContentType = "Content-Type", b"content-type", Some(b'c'), false;
    CSeq = "CSeq", b"cseq", None, false;
    Date = "Date", b"date", None, false;
    ErrorInfo = "Error-Info", b"error-info", None, true;
    Event = "Event", b"event", Some(b'o'), false;
    Expires = "Expires", b"expires", None, false;
    From = "From", b"from", Some(b'f'), false;
    InReplyTo = "In-Reply-To", b"in-reply-to", None, true;
    MaxForwards = "Max-Forwards", b"max-forwards", None, false;
    MimeVersion = "MIME-Version", b"mime-version", None, false;
    MinExpires = "Min-Expires", b"min-expires", None, false;
    MinSe = "Min-SE", b"min-se", None, false;
    Organization = "Organization", b"organization", None, false;
    Path = "Path", b"path", None, true;
    Priority = "Priority", b"priority", None, false;
    ProxyAuthenticate = "Proxy-Authenticate", b"proxy-authenticate", None, false;
    ProxyAuthorization = "Proxy-Authorization", b"proxy-authorization", None, false;
    ProxyRequire = "Proxy-Require", b"proxy-require", None, true;
    RAck = "RAck", b"rack", None, false;
    RecordRoute = "Record-Route", b"record-route", None, true;
    ReferTo = "Refer-To", b"refer-to", Some(b'r'), false;
    ReferredBy = "Referred-By", b"referred-by", Some(b'b'), false;
    ReplyTo = "Reply-To", b"reply-to", None, false;
    Require = "Require", b"require", None, true;
    RetryAfter = "Retry-After", b"retry-after", None, false;
    Route = "Route", b"route", None, true;
    RSeq = "RSeq", b"rseq", None, false;
    Server = "Server", b"server", None, false;
    ServiceRoute = "Service-Route", b"service-route", None, true;
    SessionExpires = "Session-Expires", b"session-expires", Some(b'x'), false;
    Subject = "Subject", b"subject", Some(b's'), false;
    SubscriptionState = "Subscription-State", b"subscription-state", None, false;
    Supported = "Supported", b"supported", Some(b'k'), true;
    Timestamp = "Timestamp", b"timestamp", None, false;
    To = "To", b"to", Some(b't'), false;
    Unsupported = "Unsupported", b"unsupported", None, true;
    UserAgent = "User-Agent", b"user-agent", None, false;
    Via = "Via", b"via", Some(b'v'), true;
    Warning = "Warning", b"warning", None, true;
    WwwAuthenticate = "WWW-Authenticate", b"www-authenticate", None, false;
}

/// Multiplier of [`name_slot`], found offline so that the known names
/// land in distinct slots (the table below fails the build otherwise).
const NAME_MUL: u64 = 0x183b_12e8_6e59_b7d7;

/// Every byte with the ASCII case bit set: folds letters to lowercase (and
/// a few other bytes onto each other, which only the key compare tells
/// apart).
const FOLD: u64 = 0x2020_2020_2020_2020;

/// Slot of a name in [`NAME_TABLE`] from its first two loads (see
/// [`name_loads`]) and length: one multiply, no probing.
#[inline(always)]
const fn name_slot(w0: u64, w1: u64, len: usize) -> usize {
    let x = ((w0 | FOLD) ^ (w1 | FOLD).rotate_left(29)).wrapping_add(len as u64);
    (x.wrapping_mul(NAME_MUL) >> 56) as usize
}

/// Header ids by [`name_slot`] of their lowercase full name (`u8::MAX`:
/// empty). Built at compile time; a collision fails the build.
static NAME_TABLE: [u8; 256] = {
    let mut t = [u8::MAX; 256];
    let mut id = 0;
    while id < LOWER.len() {
        let k = &NAME_KEYS[id];
        let h = name_slot(k.word[0], k.word[1], LOWER[id].len());
        assert!(t[h] == u8::MAX, "NAME_MUL: two header names share a slot");
        t[h] = id as u8;
        id += 1;
    }
    t
};

/// Which bytes a name of `len` (2..=24) is compared by: up to three
/// (offset, width) little-endian loads that together cover every byte
/// (they may overlap, and a width of 0 is an unused slot).
const fn name_loads(len: usize) -> [(usize, usize); 3] {
    if len >= 8 {
        let third = if len > 16 { 8 } else { 0 };
        [(0, 8), (len - 8, 8), (8, third)]
    } else if len >= 4 {
        [(0, 4), (len - 4, 4), (0, 0)]
    } else {
        [(0, 2), (len - 2, 2), (0, 0)]
    }
}

/// A known name as words to compare loads against, with the `0x20` case
/// bit set in `fold` wherever the name has a lowercase letter.
#[derive(Clone, Copy)]
struct NameKey {
    word: [u64; 3],
    fold: [u64; 3],
    len: usize,
}

static NAME_KEYS: [NameKey; LOWER.len()] = {
    let mut keys = [NameKey {
        word: [0; 3],
        fold: [0; 3],
        len: 0,
    }; LOWER.len()];
    let mut id = 0;
    while id < LOWER.len() {
        let name = LOWER[id];
        let loads = name_loads(name.len());
        keys[id].len = name.len();
        let mut j = 0;
        while j < 3 {
            let (at, n) = loads[j];
            let mut k = 0;
            while k < n {
                let c = name[at + k];
                keys[id].word[j] |= (c as u64) << (8 * k);
                if c.is_ascii_lowercase() {
                    keys[id].fold[j] |= 0x20 << (8 * k);
                }
                k += 1;
            }
            j += 1;
        }
        id += 1;
    }
    keys
};

#[inline]
fn load(b: &[u8], at: usize, n: usize) -> u64 {
    match n {
        8 => b
            .get(at..at + 8)
            .and_then(|w| w.try_into().ok())
            .map_or(0, u64::from_le_bytes),
        4 => b
            .get(at..at + 4)
            .and_then(|w| w.try_into().ok())
            .map_or(0, |w| u64::from(u32::from_le_bytes(w))),
        2 => b
            .get(at..at + 2)
            .and_then(|w| w.try_into().ok())
            .map_or(0, |w| u64::from(u16::from_le_bytes(w))),
        _ => 0,
    }
}

/// Header ids by compact-form byte, either case (`u8::MAX`: none).
static COMPACT_TABLE: [u8; 256] = {
    let mut t = [u8::MAX; 256];
    let mut id = 0;
    while id < COMPACTS.len() {
        if let Some(c) = COMPACTS[id] {
            t[c as usize] = id as u8;
            t[c.to_ascii_uppercase() as usize] = id as u8;
        }
        id += 1;
    }
    t
};

/// `HeaderName::id()` of a wire name (full or compact form, any case);
/// `u8::MAX` when unknown. This runs for every header line of every
/// message, so it is a table lookup plus a few word compares: `x | 0x20 ==
/// l` holds exactly for `x` in `{l, l - 32}` when `l` is a lowercase letter,
/// which is `eq_ignore_ascii_case` against the lowercase name.
#[inline]
pub(crate) fn name_id(b: &[u8]) -> u8 {
    match b.len() {
        0 => u8::MAX,
        1 => COMPACT_TABLE[b[0] as usize],
        // No known name is longer.
        len @ 2..=24 => {
            let [(a0, n0), (a1, n1), (a2, n2)] = name_loads(len);
            let got = [load(b, a0, n0), load(b, a1, n1), load(b, a2, n2)];
            let id = NAME_TABLE[name_slot(got[0], got[1], len)];
            match NAME_KEYS.get(id as usize) {
                Some(key)
                    if key.len == len
                        && (got[0] | key.fold[0]) == key.word[0]
                        && (got[1] | key.fold[1]) == key.word[1]
                        && (got[2] | key.fold[2]) == key.word[2] =>
                {
                    id
                }
                _ => u8::MAX,
            }
        }
        _ => u8::MAX,
    }
}

/// `decoded_eq(n, want, true)` for a `want` that is lowercase with no `%`
/// (the parameter names the parser looks up), cheaply in the common cases.
#[inline]
pub(crate) fn param_name_is(n: &str, want: &str) -> bool {
    use std::cmp::Ordering;
    match n.len().cmp(&want.len()) {
        // Decoding never lengthens.
        Ordering::Less => false,
        // Equal lengths: any `%` would either shrink the decoded name or
        // stay a literal `%` that `want` lacks, so only a plain match counts.
        Ordering::Equal => n.eq_ignore_ascii_case(want),
        // A byte loop: names are short, and this runs for every parameter of
        // the top Via (a `str::contains` call costs more than the loop).
        Ordering::Greater => n.bytes().any(|c| c == b'%') && decoded_eq(n, want, true),
    }
}

impl<'a> HeaderName<'a> {
    /// Maps a wire name (full or compact form, any case) to a header name.
    /// Does not validate: the message parser checks names are tokens.
    pub fn parse(name: &'a str) -> HeaderName<'a> {
        HeaderName::from_id(name_id(name.as_bytes())).unwrap_or(HeaderName::Other(name))
    }

    pub(crate) fn from_id(id: u8) -> Option<HeaderName<'static>> {
        KNOWN.get(id as usize).map(|k| k.0)
    }

    /// Canonical full name (`Other` returns its text).
    pub fn as_str(&self) -> &'a str {
        match self {
            HeaderName::Other(s) => s,
            k => KNOWN[k.id() as usize].1,
        }
    }

    /// Compact form (RFC 3261 §7.3.3 and extensions), if any.
    pub fn compact(&self) -> Option<char> {
        match self {
            HeaderName::Other(_) => None,
            k => KNOWN[k.id() as usize].2.map(char::from),
        }
    }

    /// Whether the header is a comma-separated list whose values may be
    /// split (and combined across lines). Unknown headers are not split,
    /// because their commas may be content (dates, challenges, ...).
    pub fn is_list(&self) -> bool {
        match self {
            HeaderName::Other(_) => false,
            k => KNOWN[k.id() as usize].3,
        }
    }

    /// Headers that must appear at most once with one value.
    pub fn is_single(&self) -> bool {
        matches!(
            self,
            HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::MaxForwards
                | HeaderName::ContentLength
                | HeaderName::ContentType
        )
    }

    /// An `Other` holding a known name is turned into the known variant.
    pub(crate) fn normalized(self) -> HeaderName<'a> {
        match self {
            HeaderName::Other(s) => HeaderName::parse(s),
            k => k,
        }
    }
}

impl PartialEq for HeaderName<'_> {
    fn eq(&self, other: &HeaderName<'_>) -> bool {
        match (self.normalized(), other.normalized()) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a.id() == b.id(),
        }
    }
}
impl Eq for HeaderName<'_> {}

impl fmt::Display for HeaderName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Splits a header value on top-level commas (outside quotes and `<>`),
/// yielding trimmed pieces, empty ones included (typed parsers reject them).
#[derive(Debug, Clone)]
pub struct ValueSplit<'a> {
    rest: Option<&'a str>,
}

impl<'a> ValueSplit<'a> {
    pub fn new(v: &'a str) -> Self {
        ValueSplit { rest: Some(v) }
    }
}

pub(crate) fn top_level_comma(b: &[u8]) -> Option<usize> {
    // Fast paths: no comma at all (the usual case), or a comma with no
    // quote or `<` before it, which is at top level.
    let comma = crate::uri::find_byte(b',', b)?;
    if !b[..comma].iter().any(|&c| c == b'"' || c == b'<') {
        return Some(comma);
    }
    let mut i = 0;
    let mut inq = false;
    let mut angle = false;
    while i < b.len() {
        let c = b[i];
        if inq {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                inq = false;
            }
        } else {
            match c {
                b'"' => inq = true,
                b'<' => angle = true,
                b'>' => angle = false,
                b',' if !angle => return Some(i),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

impl<'a> Iterator for ValueSplit<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        match top_level_comma(s.as_bytes()) {
            Some(i) => {
                self.rest = Some(&s[i + 1..]);
                Some(trim_lws(&s[..i]))
            }
            None => {
                self.rest = None;
                Some(trim_lws(s))
            }
        }
    }
}

/// Index just past the closing quote of the quoted string starting at `s[0]`.
fn quoted_end(s: &[u8]) -> Result<usize, HeaderError> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Ok(i + 1),
            b'\\' => match s.get(i + 1) {
                Some(b'\r' | b'\n') | None => return Err(HeaderError::UnterminatedQuote),
                Some(_) => i += 2,
            },
            b'\t' | b' ' => i += 1,
            c if c < 0x20 || c == 0x7f => return Err(HeaderError::UnterminatedQuote),
            _ => i += 1,
        }
    }
    Err(HeaderError::UnterminatedQuote)
}

/// Validates a generic header parameter list (`*( SEMI generic-param )`);
/// `s` must be empty/LWS or start (after LWS) with `;`. Also returns, in the
/// same pass, the first occurrence of each of `names` (same matching as
/// [`Params::get`]), so hot callers need not iterate the list again.
pub(crate) fn header_params_find<'a>(
    s: &'a str,
    names: &[&str],
    found: &mut [Option<Option<&'a str>>],
) -> Result<Params<'a>, HeaderError> {
    let t = trim_lws(s);
    if t.is_empty() {
        return Ok(Params(""));
    }
    if !t.starts_with(';') {
        return Err(HeaderError::Trailing);
    }
    // One left-to-right scan. Each piece is `LWS token LWS [= LWS value]
    // LWS` up to the next unquoted `;`; anything else is BadParam, checked
    // name first, then value, piece by piece (the order of the errors of a
    // split-then-check implementation).
    let b = t.as_bytes();
    let mut i = 1;
    loop {
        let ns = run(b, i, &LWS);
        let ne = run(b, ns, &crate::method::TOKEN);
        if ne == ns {
            return Err(HeaderError::BadParam);
        }
        i = run(b, ne, &LWS);
        let mut value = None;
        if b.get(i) == Some(&b'=') {
            let vs = run(b, i + 1, &LWS);
            let ve = if b.get(vs) == Some(&b'"') {
                vs + quoted_end(&b[vs..])?
            } else {
                let ve = run(b, vs, &PARAM_VALUE);
                if ve == vs {
                    return Err(HeaderError::BadParam);
                }
                ve
            };
            value = Some(&t[vs..ve]);
            i = run(b, ve, &LWS);
        }
        match b.get(i) {
            None | Some(b';') => {}
            Some(_) => return Err(HeaderError::BadParam),
        }
        let name = &t[ns..ne];
        for (want, slot) in names.iter().zip(found.iter_mut()) {
            if slot.is_none() && param_name_is(name, want) {
                *slot = Some(value);
            }
        }
        if i == b.len() {
            return Ok(Params(t));
        }
        i += 1;
    }
}

/// `t` plus the bytes [`is_lws`] takes for LWS.
const fn with_lws(mut t: [bool; 256]) -> [bool; 256] {
    t[b' ' as usize] = true;
    t[b'\t' as usize] = true;
    t[b'\r' as usize] = true;
    t[b'\n' as usize] = true;
    t
}

/// Display-name bytes of the token-list form.
static TOKEN_OR_LWS: ByteClass = ByteClass::new(with_lws(crate::method::byte_table(b"-.!%*_+`'~")));

/// Display-name bytes of the plain form: token words and spaces.
static TOKEN_OR_SP: ByteClass = ByteClass::new({
    let mut t = crate::method::byte_table(b"-.!%*_+`'~");
    t[b' ' as usize] = true;
    t
});

/// ASCII bytes that may run inside `<...>` before the `>` (no LWS).
static ADDR_SPEC: ByteClass = ByteClass::new({
    let mut t = [false; 256];
    let mut c = 0;
    while c < 128 {
        t[c] = !matches!(c as u8, b'>' | b' ' | b'\t' | b'\r' | b'\n');
        c += 1;
    }
    t
});

/// LWS as [`is_lws`] sees it.
static LWS: ByteClass = ByteClass::new(with_lws([false; 256]));

/// A plain parameter name against a lowercase one, in either case.
#[inline]
fn name_is(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len() && crate::scan::starts_with_folded(name, lower)
}

/// Header parameters as phones write them: `*(";" token ["=" value])` with
/// no LWS, no quotes, no empty value and no escape in a name (which might
/// decode to a name the caller looks for). Calls `each` with every name and
/// value; `None` (from here or from `each`) means "not plain", for the
/// general path to decide.
fn plain_params<'a>(
    s: &'a str,
    mut each: impl FnMut(&[u8], Option<&'a str>) -> Option<()>,
) -> Option<()> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b';' {
            return None;
        }
        let ns = i + 1;
        // A name stopped by `%` is escaped: not plain.
        let ne = run(b, ns, &TOKEN_UNESCAPED);
        i = ne;
        let mut value = None;
        if b.get(i) == Some(&b'=') {
            let vs = i + 1;
            i = run(b, vs, &PARAM_VALUE);
            value = Some(&s[vs..i]);
        }
        if ne == ns || value == Some("") || b.get(ne) == Some(&b'%') {
            return None;
        }
        each(&b[ns..ne], value)?;
    }
    Some(())
}

/// Token bytes but `%`.
static TOKEN_UNESCAPED: ByteClass = ByteClass::new(crate::method::byte_table(b"-.!*_+`'~"));

/// Unquoted parameter value bytes: token plus the IPv6 reference characters.
static PARAM_VALUE: ByteClass = ByteClass::new(crate::method::byte_table(b"-.!%*_+`'~[]:"));

/// Strict unsigned decimal (digits only, surrounding LWS allowed).
pub fn parse_u32(s: &str) -> Result<u32, HeaderError> {
    let t = trim_lws(s);
    if t.is_empty() {
        return Err(HeaderError::BadNumber);
    }
    // One pass: a non-digit anywhere is BadNumber (whatever the length);
    // more than 10 significant digits (leading zeros are allowed) or a value
    // past u32 is OutOfRange.
    let mut v: u64 = 0;
    let mut significant = 0usize;
    for &c in t.as_bytes() {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return Err(HeaderError::BadNumber);
        }
        if significant > 0 || d != 0 {
            significant += 1;
            if significant <= 10 {
                v = v * 10 + u64::from(d);
            }
        }
    }
    if significant > 10 {
        return Err(HeaderError::OutOfRange);
    }
    u32::try_from(v).map_err(|_| HeaderError::OutOfRange)
}

/// `CSeq: <seq> <method>`; seq must be below 2^31 (RFC 3261 §8.1.1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(s: &str) -> Result<CSeq, HeaderError> {
        match CSeq::parse_plain(s) {
            Some(c) => Ok(c),
            None => CSeq::parse_general(s),
        }
    }

    /// `<digits> <METHOD>` as every phone writes it, in one pass; `None`
    /// leaves anything else (LWS, long numbers) to [`CSeq::parse_general`],
    /// which accepts whatever this does, alike (tested).
    fn parse_plain(s: &str) -> Option<CSeq> {
        let b = s.as_bytes();
        // At most 9 digits, so the number stays below 2^31.
        let mut seq = 0u32;
        let mut digits = 0;
        while let Some(d) = b
            .get(digits)
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|d| *d <= 9)
        {
            if digits == 9 {
                return None;
            }
            seq = seq * 10 + u32::from(d);
            digits += 1;
        }
        if digits == 0 || b.get(digits) != Some(&b' ') {
            return None;
        }
        let m = &b[digits + 1..];
        let method = match Method::known(m) {
            Some(known) => known,
            None if m.is_empty() || run(m, 0, &crate::method::TOKEN) != m.len() => return None,
            None => Method::parse_token(m)?,
        };
        Some(CSeq { seq, method })
    }

    fn parse_general(s: &str) -> Result<CSeq, HeaderError> {
        let t = trim_lws(s);
        let split = t.bytes().position(is_lws).ok_or(HeaderError::BadCSeq)?;
        let seq = parse_u32(&t[..split])?;
        if seq >= 1 << 31 {
            return Err(HeaderError::OutOfRange);
        }
        let method = Method::parse(trim_lws(&t[split..]))?;
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// Usually `SIP`.
    pub protocol_name: &'a str,
    /// Usually `2.0`.
    pub protocol_version: &'a str,
    /// `UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or any token.
    pub transport: &'a str,
    pub host: Host<'a>,
    pub port: Option<u16>,
    pub params: Params<'a>,
}

/// Splits `s` at the first `/` of a `token SWS "/" SWS` sequence.
fn slash_part(s: &str) -> Result<(&str, &str), HeaderError> {
    let slash = crate::uri::find_byte(b'/', s.as_bytes()).ok_or(HeaderError::BadVia)?;
    let tok = trim_lws(&s[..slash]);
    if !token_ok(tok) {
        return Err(HeaderError::BadVia);
    }
    Ok((tok, &s[slash + 1..]))
}

impl<'a> Via<'a> {
    pub fn parse(s: &'a str) -> Result<Via<'a>, HeaderError> {
        Via::parse_with_branch(s).map(|(v, _)| v)
    }

    /// Validates a Via value and returns its branch: the parser's check of
    /// the top Via, which needs nothing else from it.
    pub(crate) fn check_branch(s: &'a str) -> Result<Option<&'a str>, HeaderError> {
        Via::parse_with_branch(s).map(|(_, b)| b)
    }

    /// [`Via::parse`] that also returns [`Via::branch`], found while the
    /// parameters are validated.
    #[inline(always)]
    pub(crate) fn parse_with_branch(s: &'a str) -> Result<(Via<'a>, Option<&'a str>), HeaderError> {
        if let Some(v) = Via::parse_plain(s) {
            return Ok(v);
        }
        Via::parse_general(s)
    }

    /// The Via every phone sends, in one pass: `SIP/2.0/<token> <host>[:port]`
    /// then `;name[=value]` parameters, no LWS inside, no quotes, no
    /// escapes, no IPv6 reference. Anything else is `None`, left to
    /// [`Via::parse_general`]; what this accepts, that accepts alike
    /// (tested on mutated input).
    #[inline(always)]
    fn parse_plain(s: &'a str) -> Option<(Via<'a>, Option<&'a str>)> {
        let b = s.as_bytes();
        if !crate::scan::starts_with_folded(b, b"sip/2.0/") {
            return None;
        }
        let tend = run(b, 8, &crate::method::TOKEN);
        if tend == 8 || b.get(tend) != Some(&b' ') {
            return None;
        }
        let hs = tend + 1;
        let mut i = run(b, hs, &crate::uri::HOST);
        let host = Host::parse_checked(&s[hs..i]).ok()?;
        let mut port = None;
        if b.get(i) == Some(&b':') {
            let ps = i + 1;
            i = ps + b[ps..].iter().take_while(|c| c.is_ascii_digit()).count();
            port = Some(parse_port(&s[ps..i]).ok()?);
        }
        let params = &s[i..];
        let (mut branch, mut rport) = (None, false);
        plain_params(params, |name, value| {
            if name_is(name, b"branch") {
                if branch.is_none() {
                    branch = Some(value.filter(|v| token_ok(v))?);
                }
            } else if name_is(name, b"rport") {
                if !rport {
                    rport = true;
                    if let Some(v) = value {
                        parse_port(v).ok()?;
                    }
                }
            } else if name_is(name, b"ttl") {
                // Rare: its range check is left to the general path.
                return None;
            }
            Some(())
        })?;
        let via = Via {
            protocol_name: &s[..3],
            protocol_version: &s[4..7],
            transport: &s[8..tend],
            host,
            port,
            params: Params(params),
        };
        Some((via, branch))
    }

    fn parse_general(s: &'a str) -> Result<(Via<'a>, Option<&'a str>), HeaderError> {
        // The usual `SIP/2.0/` (any case) needs no splitting.
        let (protocol_name, protocol_version, r) = match s.get(..8) {
            Some(p) if p.eq_ignore_ascii_case("SIP/2.0/") => (&s[..3], &s[4..7], &s[8..]),
            _ => {
                let (name, r) = slash_part(s)?;
                let (version, r) = slash_part(r)?;
                (name, version, r)
            }
        };
        let r = trim_lws(r);
        let tend = r
            .bytes()
            .position(|c| !is_token_byte(c))
            .ok_or(HeaderError::BadVia)?;
        let transport = &r[..tend];
        let r = &r[tend..];
        if transport.is_empty() || !r.bytes().next().is_some_and(is_lws) {
            return Err(HeaderError::BadVia);
        }
        let r = trim_lws(r);
        let rb = r.as_bytes();
        let (hend, host) = if rb.first() == Some(&b'[') {
            let e = crate::uri::find_byte(b']', rb).ok_or(HeaderError::BadVia)? + 1;
            (e, Host::parse(&r[..e])?)
        } else {
            // One scan finds the end and checks the characters: the host
            // runs to `:`, `;` or LWS, and holds only host characters.
            let e = host_chars(rb);
            if rb
                .get(e)
                .is_some_and(|&c| !matches!(c, b':' | b';') && !is_lws(c))
            {
                return Err(UriError::BadHost.into());
            }
            (e, Host::parse_checked(&r[..e])?)
        };
        let mut r = r[hend..].trim_start_matches(|c: char| c.is_ascii() && is_lws(c as u8));
        let mut port = None;
        if let Some(p) = r.strip_prefix(':') {
            let p = trim_lws_start(p);
            let pend = p
                .bytes()
                .position(|c| !c.is_ascii_digit())
                .unwrap_or(p.len());
            port = Some(parse_port(&p[..pend]).map_err(|_| HeaderError::BadVia)?);
            r = &p[pend..];
        }
        // One pass validates the list and finds the first ttl, rport and
        // branch (what `Params::get` would return for each).
        let mut found = [None; 3];
        let params = header_params_find(r, &["ttl", "rport", "branch"], &mut found)?;
        let [ttl, rport, branch] = found;
        if let Some(t) = ttl {
            t.ok_or(HeaderError::BadParam)
                .and_then(parse_u32)
                .ok()
                .filter(|v| *v <= 255)
                .ok_or(HeaderError::BadParam)?;
        }
        if let Some(Some(rp)) = rport {
            parse_port(rp).map_err(|_| HeaderError::BadParam)?;
        }
        if branch.is_some_and(|b| b.is_none_or(|b| !token_ok(b))) {
            return Err(HeaderError::BadParam);
        }
        let via = Via {
            protocol_name,
            protocol_version,
            transport,
            host,
            port,
            params,
        };
        Ok((via, branch.flatten()))
    }

    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }
    /// Whether the branch carries the RFC 3261 magic cookie; when not, the
    /// transaction must be matched the RFC 2543 way.
    pub fn has_magic_cookie(&self) -> bool {
        // The bare cookie carries no uniqueness (RFC 4475 badbranch).
        self.branch()
            .is_some_and(|b| b.len() > 7 && b.starts_with("z9hG4bK"))
    }
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }
    /// `None`: absent; `Some(None)`: present without value (a request for
    /// the source port, RFC 3581); `Some(Some(p))`: filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| parse_port(p).ok()))
    }
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(|t| parse_u32(t).ok())
            .and_then(|t| u8::try_from(t).ok())
    }
}

impl fmt::Display for Via<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{} {}",
            self.protocol_name, self.protocol_version, self.transport, self.host
        )?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        for (n, v) in self.params.iter() {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

fn trim_lws_start(s: &str) -> &str {
    s.trim_start_matches(|c: char| c.is_ascii() && is_lws(c as u8))
}

/// The first `tag` value among plain parameters (`Some(None)`: no tag);
/// `None` when the parameters are not plain.
fn plain_tag(s: &str) -> Option<Option<&str>> {
    let mut tag = None;
    plain_params(s, |name, value| {
        if tag.is_none() && name_is(name, b"tag") {
            tag = Some(value);
        }
        Some(())
    })?;
    Some(tag.flatten())
}

/// The parameters after a name-addr and the first `tag` among them: plain
/// ones in one pass, anything else by [`header_params_find`] (the two agree;
/// tested).
fn tagged_params(s: &str) -> Result<(Params<'_>, Option<&str>), HeaderError> {
    if let Some(tag) = plain_tag(s) {
        return Ok((Params(s), tag));
    }
    let mut found = [None];
    let params = header_params_find(s, &["tag"], &mut found)?;
    Ok((params, found[0].flatten()))
}

/// `[display-name] <addr-spec> *(;param)` or a bare `addr-spec *(;param)`.
/// For the bare form the `;params` belong to the header, never to the URI
/// (RFC 3261 §20, RFC 4475 regbadct).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Token list or the inside of the quoted string (escapes kept raw).
    pub display_name: Option<&'a str>,
    pub uri: Uri<'a>,
    pub params: Params<'a>,
    /// Whether the URI was in `<>` (print it back that way).
    pub bracketed: bool,
}

impl<'a> NameAddr<'a> {
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>, HeaderError> {
        NameAddr::parse_bounded(s, crate::Limits::default().max_uri_bytes)
    }

    pub fn parse_bounded(s: &'a str, max_uri: usize) -> Result<NameAddr<'a>, HeaderError> {
        NameAddr::parse_tagged(s, max_uri).map(|(n, _)| n)
    }

    /// Validates a From or To value and returns its tag: the parser's
    /// check, which needs nothing else from it.
    pub(crate) fn check_tagged(s: &'a str, max_uri: usize) -> Result<Option<&'a str>, HeaderError> {
        match NameAddr::check_plain(s, max_uri) {
            Some(tag) => Ok(tag),
            None => NameAddr::parse_tagged(s, max_uri).map(|(_, t)| t),
        }
    }

    /// [`NameAddr::check_tagged`] for what phones write, in one pass and
    /// building nothing: `[token words ]<plain SIP URI>` and plain
    /// parameters. `None` leaves anything else (quoted names, the bare
    /// form, LWS, other schemes, errors) to [`NameAddr::parse_tagged`],
    /// which agrees with whatever this accepts (tested).
    fn check_plain(s: &'a str, max_uri: usize) -> Option<Option<&'a str>> {
        let b = s.as_bytes();
        let lt = match b.first()? {
            b'<' => 0,
            c if is_lws(*c) => return None,
            _ => run(b, 0, &TOKEN_OR_SP),
        };
        if b.get(lt) != Some(&b'<') {
            return None;
        }
        let gt = lt + 1 + crate::scan::find_byte(b'>', &b[lt + 1..])?;
        let uri = &s[lt + 1..gt];
        if uri.len() > max_uri || !crate::uri::SipUri::is_plain(uri) {
            return None;
        }
        plain_tag(&s[gt + 1..])
    }

    /// [`NameAddr::parse_bounded`] that also returns [`NameAddr::tag`],
    /// found while the parameters are validated.
    #[inline(always)]
    pub(crate) fn parse_tagged(
        s: &'a str,
        max_uri: usize,
    ) -> Result<(NameAddr<'a>, Option<&'a str>), HeaderError> {
        let s = trim_lws(s);
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(HeaderError::Empty);
        }
        let (display_name, lt) = if b[0] == b'"' {
            let end = quoted_end(b)?;
            let after = end + (b[end..].iter().take_while(|c| is_lws(**c)).count());
            if b.get(after) != Some(&b'<') {
                return Err(HeaderError::BadDisplayName);
            }
            (Some(&s[1..end - 1]), Some(after))
        } else {
            match crate::uri::find_byte(b'<', b) {
                Some(lt) => {
                    let dn = trim_lws(&s[..lt]);
                    // A token list: every byte a token byte or LWS between
                    // words.
                    if run(dn.as_bytes(), 0, &TOKEN_OR_LWS) != dn.len() {
                        return Err(HeaderError::BadDisplayName);
                    }
                    ((!dn.is_empty()).then_some(dn), Some(lt))
                }
                None => (None, None),
            }
        };
        if let Some(lt) = lt {
            let inner_start = lt + 1;
            // The addr-spec runs to the first `>` and holds no LWS: one scan
            // for either (both failures are BadAddrSpec).
            let mut gt = run(b, inner_start, &ADDR_SPEC);
            if b.get(gt).is_some_and(|&c| c >= 0x80) {
                // The class is ASCII only; past a UTF-8 byte, go on bytewise.
                gt += b[gt..]
                    .iter()
                    .position(|&c| c == b'>' || is_lws(c))
                    .unwrap_or(b.len() - gt);
            }
            if b.get(gt) != Some(&b'>') {
                return Err(HeaderError::BadAddrSpec);
            }
            let addr = &s[inner_start..gt];
            let uri = Uri::parse_bounded(addr, max_uri)?;
            let (params, tag) = tagged_params(&s[gt + 1..])?;
            let n = NameAddr {
                display_name,
                uri,
                params,
                bracketed: true,
            };
            return Ok((n, tag));
        }
        let end = b
            .iter()
            .position(|&c| c == b';' || is_lws(c))
            .unwrap_or(b.len());
        let uri = Uri::parse_bounded(&s[..end], max_uri)?;
        let (params, tag) = tagged_params(&s[end..])?;
        let n = NameAddr {
            display_name: None,
            uri,
            params,
            bracketed: false,
        };
        Ok((n, tag))
    }

    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }

    /// `expires` parameter (Contact).
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        match self.params.get("expires") {
            None => Ok(None),
            Some(None) => Err(HeaderError::BadParam),
            Some(Some(v)) => parse_u32(v).map(Some),
        }
    }

    /// `q` parameter in thousandths (`q=0.5` → 500), RFC 3261 `qvalue`.
    pub fn q(&self) -> Result<Option<u16>, HeaderError> {
        let Some(v) = self.params.get("q") else {
            return Ok(None);
        };
        let v = v.ok_or(HeaderError::BadParam)?;
        let (int, frac) = v.split_once('.').unwrap_or((v, ""));
        if frac.len() > 3 || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return Err(HeaderError::BadParam);
        }
        let mut f = 0u16;
        for (i, c) in frac.bytes().enumerate() {
            f += u16::from(c - b'0') * [100, 10, 1][i];
        }
        match int {
            "0" => Ok(Some(f)),
            "1" if f == 0 => Ok(Some(1000)),
            _ => Err(HeaderError::BadParam),
        }
    }
}

impl fmt::Display for NameAddr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = self.display_name {
            if d.bytes().all(|c| is_token_byte(c) || c == b' ') {
                write!(f, "{d} ")?;
            } else {
                write!(f, "\"{d}\" ")?;
            }
        }
        if self.bracketed || self.display_name.is_some() {
            write!(f, "<{}>", self.uri)?;
        } else {
            write!(f, "{}", self.uri)?;
        }
        f.write_str(self.params.as_str())
    }
}

/// One Contact value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (REGISTER remove-all).
    Star,
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    pub fn parse(s: &'a str) -> Result<Contact<'a>, HeaderError> {
        Contact::parse_bounded(s, crate::Limits::default().max_uri_bytes)
    }

    pub fn parse_bounded(s: &'a str, max_uri: usize) -> Result<Contact<'a>, HeaderError> {
        if trim_lws(s) == "*" {
            return Ok(Contact::Star);
        }
        NameAddr::parse_bounded(s, max_uri).map(Contact::Addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random edits of `seeds`: what a one-pass fast path must agree on
    /// with the general parser it stands in front of.
    fn mutants(seeds: &[&str], n: usize) -> Vec<String> {
        let alphabet: &[u8] = b" \t;:=,/.%[]\"<>@0123456789aAzZ-_\x01\x7f";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as usize
        };
        (0..n)
            .map(|i| {
                let mut m = seeds[i % seeds.len()].as_bytes().to_vec();
                for _ in 0..1 + rnd() % 3 {
                    let p = rnd() % (m.len() + 1);
                    let c = alphabet[rnd() % alphabet.len()];
                    match rnd() % 3 {
                        0 if p < m.len() => m[p] = c,
                        1 if p < m.len() => {
                            m.remove(p);
                        }
                        _ => m.insert(p, c),
                    }
                }
                String::from_utf8_lossy(&m).into_owned()
            })
            .collect()
    }

    /// Runs `check` on mutants of `seeds`; it returns `None` when the fast
    /// path declined, and asserts agreement when it accepted. The fast path
    /// must really be taken, or the comparison proves nothing.
    fn agree(seeds: &[&str], n: usize, mut check: impl FnMut(&str) -> Option<()>) {
        let ms = mutants(seeds, n);
        let fast = ms.iter().filter(|m| check(m).is_some()).count();
        assert!(fast > n / 4, "fast path took {fast} of {n}");
    }

    #[test]
    fn one_pass_paths_agree_with_the_general_parsers() {
        let vias = [
            "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport",
            "SIP/2.0/TCP 192.0.2.1;rport=5060;received=192.0.2.9;branch=z9hG4bKx",
            "sip/2.0/tls h.example;ttl=5;BRANCH=z9hG4bKab;maddr=239.1.1.1",
        ];
        agree(&vias, 200_000, |m| {
            let v = Via::parse_plain(m)?;
            assert_eq!(Via::parse_general(m), Ok(v), "{m:?}");
            Some(())
        });
        let uris = [
            "sip:bob@biloxi.example.com",
            "sips:alice@192.0.2.4:5061;transport=tls;lr",
            "sip:registrar.example.com;maddr=239.255.255.1",
            "SIP:carol@h:5060",
        ];
        agree(&uris, 200_000, |m| {
            let u = crate::uri::SipUri::parse_plain(m)?;
            assert_eq!(Uri::parse_general(m), Ok(Uri::Sip(u)), "{m:?}");
            Some(())
        });
        let params = [
            ";tag=1928301774",
            ";tag=a;x=y;TAG=b",
            ";expires=60;q=0.5",
            "",
        ];
        agree(&params, 200_000, |m| {
            let mut tag = None;
            plain_params(m, |name, value| {
                if tag.is_none() && name.eq_ignore_ascii_case(b"tag") {
                    tag = Some(value);
                }
                Some(())
            })?;
            let mut found = [None];
            assert_eq!(
                header_params_find(m, &["tag"], &mut found),
                Ok(Params(m)),
                "{m:?}"
            );
            assert_eq!(found[0], tag, "{m:?}");
            Some(())
        });
        let name_addrs = [
            "Alice <sip:alice@atlanta.example.com>;tag=1928301774",
            "<sip:bob@192.0.2.4:5060;transport=udp>",
            "Bob Smith <sips:bob@biloxi.example.com>;tag=a;x=y",
            "\"Quoted\" <sip:q@h>;tag=z",
        ];
        for (seeds, cap) in [
            (&name_addrs[..], 64),
            // URIs of 28 and 29 bytes against a cap of 30: the length
            // check decides some of the mutants.
            (&name_addrs[..1], 30),
            (&name_addrs[2..3], 30),
        ] {
            agree(seeds, 100_000, |m| {
                let t = NameAddr::check_plain(m, cap)?;
                assert_eq!(
                    NameAddr::parse_tagged(m, cap).map(|(_, t)| t),
                    Ok(t),
                    "{m:?}"
                );
                Some(())
            });
        }
        let cseqs = ["314159 INVITE", "1 REGISTER", "2147483647 FOO", "007 BYE"];
        agree(&cseqs, 100_000, |m| {
            let c = CSeq::parse_plain(m)?;
            assert_eq!(CSeq::parse_general(m), Ok(c), "{m:?}");
            Some(())
        });
    }

    #[test]
    fn names_and_compact_forms() {
        for (s, h) in [
            ("i", HeaderName::CallId),
            ("M", HeaderName::Contact),
            ("e", HeaderName::ContentEncoding),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("f", HeaderName::From),
            ("s", HeaderName::Subject),
            ("k", HeaderName::Supported),
            ("t", HeaderName::To),
            ("v", HeaderName::Via),
            ("o", HeaderName::Event),
            ("u", HeaderName::AllowEvents),
            ("r", HeaderName::ReferTo),
            ("b", HeaderName::ReferredBy),
            ("x", HeaderName::SessionExpires),
            ("MaX-fOrWaRdS", HeaderName::MaxForwards),
            ("cseq", HeaderName::CSeq),
            ("WWW-Authenticate", HeaderName::WwwAuthenticate),
        ] {
            assert_eq!(HeaderName::parse(s), h, "{s}");
            assert_eq!(HeaderName::parse(s).id(), h.id());
        }
        assert_eq!(HeaderName::Via.compact(), Some('v'));
        assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
        assert_eq!(HeaderName::parse("X-Foo"), HeaderName::Other("x-foo"));
        assert_eq!(HeaderName::Other("via"), HeaderName::Via);
        assert_ne!(HeaderName::parse("C%6Fntact"), HeaderName::Contact);
        assert!(HeaderName::Via.is_list());
        assert!(!HeaderName::Other("Date").is_list());
        for k in KNOWN {
            assert_eq!(HeaderName::parse(k.1).id(), k.0.id());
            assert_eq!(HeaderName::from_id(k.0.id()).unwrap().id(), k.0.id());
        }
    }

    #[test]
    fn name_lookup_matches_a_plain_case_insensitive_compare() {
        // Every one-byte change of every known name (and its upper-case
        // form) must resolve exactly as a linear eq_ignore_ascii_case scan.
        let reference = |b: &[u8]| -> u8 {
            if b.len() == 1 {
                let c = b[0].to_ascii_lowercase();
                return COMPACTS
                    .iter()
                    .position(|k| *k == Some(c))
                    .map_or(u8::MAX, |i| i as u8);
            }
            LOWER
                .iter()
                .position(|n| n.eq_ignore_ascii_case(b))
                .map_or(u8::MAX, |i| i as u8)
        };
        for name in LOWER {
            for base in [name.to_vec(), name.to_ascii_uppercase()] {
                assert_eq!(name_id(&base), reference(&base));
                for i in 0..base.len() {
                    for c in 0..=255u8 {
                        let mut v = base.clone();
                        v[i] = c;
                        assert_eq!(name_id(&v), reference(&v), "{v:?}");
                    }
                }
            }
        }
        for c in 0..=255u8 {
            assert_eq!(name_id(&[c]), reference(&[c]));
        }
        assert_eq!(name_id(b""), u8::MAX);
        assert_eq!(name_id(&[b'a'; 30]), u8::MAX);
    }

    #[test]
    fn split_respects_quotes_and_angles() {
        let v: Vec<_> = ValueSplit::new(r#""a, \"b" <sip:x@y;p=1,2>;q=1 , <sip:z@w>,,"#).collect();
        assert_eq!(v, [r#""a, \"b" <sip:x@y;p=1,2>;q=1"#, "<sip:z@w>", "", ""]);
    }

    #[test]
    fn via_variants() {
        let v = Via::parse("SIP  /   2.0   /UDP    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(
            (v.protocol_name, v.protocol_version, v.transport),
            ("SIP", "2.0", "UDP")
        );
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.has_magic_cookie());
        let v = Via::parse("SIP/2.0/TCP [2001:db8::9]:5070 ; branch = z9hG4bK1;rport;received=192.0.2.1;ttl=16;maddr=224.2.0.1").unwrap();
        assert_eq!(v.host, Host::Ipv6("2001:db8::9".parse().unwrap()));
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("192.0.2.1"));
        assert_eq!(v.ttl(), Some(16));
        assert_eq!(v.maddr(), Some("224.2.0.1"));
        assert!(v.has_magic_cookie());
        let v = Via::parse("SIP/2.0/UDP h:5060;rport=1234").unwrap();
        assert_eq!(v.rport(), Some(Some(1234)));
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/2.0/UDP",
            "SIP/2.0 host",
            "SIP/2.0/UDP host;ttl=300",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP host;branch",
            "SIP/2.0/UDP host junk",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad}");
        }
        let v = Via::parse("SIP/2.0/TLS a.example.com:5061;branch=z9hG4bKx;rport").unwrap();
        assert_eq!(Via::parse(&v.to_string()).unwrap(), v);
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(n.display_name, Some(r#"J Rosenberg \\\""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name, Some("caller"));
        let n = NameAddr::parse("sip:user@example.com;tag=1;expires=60").unwrap();
        assert!(!n.bracketed);
        assert_eq!(n.tag(), Some("1"));
        assert_eq!(n.expires(), Ok(Some(60)));
        assert!(n.uri.as_sip().unwrap().params.is_empty());
        let n = NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").unwrap();
        assert_eq!(
            n.uri.as_sip().unwrap().headers,
            Some("Route=%3Csip:sip.example.com%3E")
        );
        let n = NameAddr::parse("<sip:a@b;lr>;q=0.33").unwrap();
        assert_eq!(n.q(), Ok(Some(330)));
        assert!(n.uri.as_sip().unwrap().lr());
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "<sip:a@b>;;;;",
            "<sip:a@b",
            "",
            "\"x\" sip:a@b",
            "<sip:a@b> junk",
        ] {
            assert!(NameAddr::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Contact::parse(" * "), Ok(Contact::Star));
    }

    /// The straightforward definition `parse_u32` must agree with.
    fn parse_u32_reference(s: &str) -> Result<u32, HeaderError> {
        let t = trim_lws(s);
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
            return Err(HeaderError::BadNumber);
        }
        let digits = t.trim_start_matches('0');
        if digits.len() > 10 {
            return Err(HeaderError::OutOfRange);
        }
        digits
            .bytes()
            .try_fold(0u64, |acc, c| Ok(acc * 10 + u64::from(c - b'0')))
            .and_then(|v| u32::try_from(v).map_err(|_| HeaderError::OutOfRange))
    }

    #[test]
    fn parse_u32_agrees_with_its_definition() {
        let alphabet = b"0123456789 x-";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 16) as usize;
            let s: String = (0..len)
                .map(|i| {
                    let r = (x >> (i * 4 % 60)) as usize;
                    // Mostly digits, sometimes a zero run or junk.
                    alphabet[if r.is_multiple_of(7) {
                        r % alphabet.len()
                    } else {
                        r % 10
                    }] as char
                })
                .collect();
            assert_eq!(parse_u32(&s), parse_u32_reference(&s), "{s:?}");
        }
        for s in [
            "",
            " ",
            "0",
            "00000000000000000001",
            "4294967295",
            "04294967296",
            "99999999999",
        ] {
            assert_eq!(parse_u32(s), parse_u32_reference(s), "{s:?}");
        }
    }

    #[test]
    fn scalars_and_cseq() {
        assert_eq!(parse_u32("0068"), Ok(68));
        assert_eq!(parse_u32("4294967295"), Ok(u32::MAX));
        assert_eq!(parse_u32("4294967296"), Err(HeaderError::OutOfRange));
        assert_eq!(parse_u32("-1"), Err(HeaderError::BadNumber));
        assert!(parse_u32(&"9".repeat(100)).is_err());
        let c = CSeq::parse("0009   INVITE").unwrap();
        assert_eq!((c.seq, c.method), (9, Method::Invite));
        assert_eq!(
            CSeq::parse("2147483648 INVITE"),
            Err(HeaderError::OutOfRange)
        );
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("1").is_err());
        assert!(CSeq::parse("1 IN VITE").is_err());
    }
}
