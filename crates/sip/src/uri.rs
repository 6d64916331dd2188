//! URIs (RFC 3261 §19.1, RFC 3966 `tel:`), borrowed from the message buffer.
//!
//! Parsing validates the grammar once; accessors then only slice. Escapes are
//! kept as on the wire (so printing is lossless) and decoded only when
//! comparing.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::scan::{run, ByteClass};

/// Why a URI was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("empty URI")]
    Empty,
    #[error("URI longer than the configured limit")]
    TooLong,
    #[error("invalid URI scheme")]
    BadScheme,
    #[error("invalid character in URI")]
    BadChar,
    #[error("invalid user part")]
    BadUser,
    #[error("invalid password")]
    BadPassword,
    #[error("invalid host")]
    BadHost,
    #[error("invalid port")]
    BadPort,
    #[error("invalid URI parameter")]
    BadParam,
    #[error("invalid URI headers")]
    BadHeaders,
    #[error("invalid %-escape")]
    BadEscape,
    #[error("invalid telephone number")]
    BadNumber,
}

/// Host part of a SIP URI or Via sent-by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A domain name as written (compare case-insensitively).
    Domain(&'a str),
    Ipv4(Ipv4Addr),
    /// Written as an IPv6 reference `[..]`.
    Ipv6(Ipv6Addr),
}

impl Host<'_> {
    /// Parses a host (domain, IPv4, or bracketed IPv6 reference).
    pub fn parse(s: &str) -> Result<Host<'_>, UriError> {
        let b = s.as_bytes();
        if b.first() == Some(&b'[') {
            let inner = s
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .ok_or(UriError::BadHost)?;
            return inner
                .parse::<Ipv6Addr>()
                .map(Host::Ipv6)
                .map_err(|_| UriError::BadHost);
        }
        if host_chars(b) != b.len() {
            return Err(UriError::BadHost);
        }
        Host::parse_checked(s)
    }

    /// `s` is known to hold only host characters (see [`host_chars`]).
    pub(crate) fn parse_checked(s: &str) -> Result<Host<'_>, UriError> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > 255 {
            return Err(UriError::BadHost);
        }
        if b.iter().all(|c| c.is_ascii_digit() || *c == b'.') {
            // All digits and dots can only be an IPv4 address: a domain's top
            // label must start with a letter.
            return s
                .parse::<Ipv4Addr>()
                .map(Host::Ipv4)
                .map_err(|_| UriError::BadHost);
        }
        Ok(Host::Domain(s))
    }

    /// RFC 3261 comparison: domains case-insensitively, addresses by value.
    pub fn equivalent(&self, other: &Host<'_>) -> bool {
        match (self, other) {
            (Host::Domain(a), Host::Domain(b)) => a
                .trim_end_matches('.')
                .eq_ignore_ascii_case(b.trim_end_matches('.')),
            (Host::Ipv4(a), Host::Ipv4(b)) => a == b,
            (Host::Ipv6(a), Host::Ipv6(b)) => a == b,
            _ => false,
        }
    }
}

impl Host<'_> {
    /// Appends the host in the form it compares by: a domain in lower case,
    /// an address as canonical text (IPv6 in brackets). By hand for
    /// domains and IPv4, since registrations and routing do this per
    /// message and the formatting machinery costs more than the text.
    pub fn push_lower(&self, out: &mut String) {
        match self {
            Host::Domain(d) => out.extend(d.chars().map(|c| c.to_ascii_lowercase())),
            Host::Ipv4(a) => {
                for (i, o) in a.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push('.');
                    }
                    out.push_str(crate::message::decimal(u32::from(o), &mut [0; 10]));
                }
            }
            Host::Ipv6(a) => {
                use std::fmt::Write;
                let _ = write!(out, "[{a}]");
            }
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A `;name[=value]` list, raw as on the wire (leading `;` included, or empty).
/// Validated at parse time, so iteration cannot fail; it skips empty pieces.
/// Header parameters may contain quoted strings, which the splitter respects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a>(pub(crate) &'a str);

impl<'a> Params<'a> {
    /// The raw text, starting with `;` when not empty.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Iterates `(name, value)`; names and values are trimmed of LWS, quoted
    /// values keep their quotes.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter { rest: self.0 }
    }

    /// `Some(None)` for a present flag parameter, `Some(Some(v))` with a value.
    /// Names compare case-insensitively, escapes decoded (RFC 3261 §19.1.4).
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| decoded_eq(n, name, true))
            .map(|(_, v)| v)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Iterator over [`Params`].
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let s = self.rest.strip_prefix(';').unwrap_or(self.rest);
            let end = find_unquoted(s, b';').unwrap_or(s.len());
            let piece = &s[..end];
            self.rest = &s[end..];
            let piece = trim_lws(piece);
            if piece.is_empty() {
                continue;
            }
            return Some(match find_byte(b'=', piece.as_bytes()) {
                Some(eq) => (trim_lws(&piece[..eq]), Some(trim_lws(&piece[eq + 1..]))),
                None => (piece, None),
            });
        }
    }
}

/// Position of the first `needle` outside double quotes (honouring `\` escapes).
pub(crate) fn find_unquoted(s: &str, needle: u8) -> Option<usize> {
    let b = s.as_bytes();
    // Fast path: the first `needle` is the answer when no quote precedes it.
    let first = b.iter().position(|&c| c == needle || c == b'"')?;
    if b[first] == needle {
        return Some(first);
    }
    let mut i = 0;
    let mut inq = false;
    while i < b.len() {
        let c = b[i];
        if inq {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                inq = false;
            }
        } else if c == b'"' {
            inq = true;
        } else if c == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

pub(crate) static HOST: ByteClass = ByteClass::new(crate::method::byte_table(b"-._"));

pub(crate) use crate::scan::find_byte;

/// Length of the leading run of domain/IPv4 characters (alnum, `-._`).
#[inline]
pub(crate) fn host_chars(b: &[u8]) -> usize {
    run(b, 0, &HOST)
}

#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    // Folding was normalised to spaces by the parser; CR/LF are still treated
    // as whitespace so values built elsewhere stay tolerated.
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(crate) fn trim_lws(s: &str) -> &str {
    let b = s.as_bytes();
    // Values reach here trimmed already, mostly: then nothing to slice.
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) if !is_lws(f) && !is_lws(l) => return s,
        (None, _) => return s,
        _ => {}
    }
    let mut i = 0;
    let mut j = b.len();
    while i < j && is_lws(b[i]) {
        i += 1;
    }
    while j > i && is_lws(b[j - 1]) {
        j -= 1;
    }
    // i and j sit next to ASCII bytes, so they are char boundaries.
    s.get(i..j).unwrap_or("")
}

fn hexval(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` lazily; malformed escapes are passed through literally.
struct Decoded<'a> {
    b: &'a [u8],
    i: usize,
}

impl Iterator for Decoded<'_> {
    type Item = u8;
    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        if c == b'%' {
            if let (Some(h), Some(l)) = (
                self.b.get(self.i + 1).copied().and_then(hexval),
                self.b.get(self.i + 2).copied().and_then(hexval),
            ) {
                self.i += 3;
                return Some(h << 4 | l);
            }
        }
        self.i += 1;
        Some(c)
    }
}

/// The bytes of `s` with `%XX` escapes decoded (malformed ones passed
/// through literally), as [`decoded_eq`] compares them.
pub fn decoded(s: &str) -> impl Iterator<Item = u8> + '_ {
    Decoded {
        b: s.as_bytes(),
        i: 0,
    }
}

/// Compares two strings after decoding `%XX` escapes, optionally ignoring
/// ASCII case.
pub fn decoded_eq(a: &str, b: &str, ignore_case: bool) -> bool {
    // Raw equality implies decoded equality ('%' only matches '%', and hex
    // digits that differ only in case decode to the same byte).
    let raw_eq = if ignore_case {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    };
    // Without escapes the raw comparison is the whole answer (a byte loop:
    // these strings are short, so it beats a memchr call).
    if raw_eq || !(a.bytes().any(|c| c == b'%') || b.bytes().any(|c| c == b'%')) {
        return raw_eq;
    }
    let mut x = decoded(a);
    let mut y = decoded(b);
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(p), Some(q)) => {
                let eq = if ignore_case {
                    p.eq_ignore_ascii_case(&q)
                } else {
                    p == q
                };
                if !eq {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

use crate::method::byte_table;

// RFC 3261 character classes: `unreserved` plus each part's extras.
static USER: ByteClass = ByteClass::new(byte_table(b"-_.!~*'()&=+$,;?/"));
static PASSWORD: ByteClass = ByteClass::new(byte_table(b"-_.!~*'()&=+$,"));
static PARAM: ByteClass = ByteClass::new(byte_table(b"-_.!~*'()[]/:&+$"));
static HEADER: ByteClass = ByteClass::new(byte_table(b"-_.!~*'()[]/?:+$"));

/// Checks every byte is in `table` or is a well-formed `%XX` escape.
fn check_escaped(s: &str, table: &ByteClass, err: UriError) -> Result<(), UriError> {
    let b = s.as_bytes();
    match b.get(escaped_run(b, 0, table)?) {
        None => Ok(()),
        Some(_) => Err(err),
    }
}

fn validate_uri_params(s: &str) -> Result<(), UriError> {
    // `s` starts with ';'. URI parameters carry no LWS and no quotes, so one
    // left-to-right scan checks every `name[=value]` piece; errors come out
    // in the same order as checking each piece's name, then its value.
    let b = s.as_bytes();
    let mut i = 1;
    loop {
        // Name: non-empty, PARAM characters or escapes, up to `=`, `;` or end.
        let start = i;
        i = escaped_run(b, i, &PARAM)?;
        if i == start {
            return Err(UriError::BadParam);
        }
        if b.get(i) == Some(&b'=') {
            i += 1;
            let vstart = i;
            i = escaped_run(b, i, &PARAM)?;
            if i == vstart {
                return Err(UriError::BadParam);
            }
        }
        match b.get(i) {
            None => return Ok(()),
            Some(b';') => i += 1,
            Some(_) => return Err(UriError::BadParam),
        }
    }
}

/// Index of the first byte at or after `i` that is neither in `table` nor
/// part of a `%XX` escape; a malformed escape is an error.
fn escaped_run(b: &[u8], mut i: usize, table: &ByteClass) -> Result<usize, UriError> {
    loop {
        i = run(b, i, table);
        if b.get(i) != Some(&b'%') {
            return Ok(i);
        }
        match (
            b.get(i + 1).copied().and_then(hexval),
            b.get(i + 2).copied().and_then(hexval),
        ) {
            (Some(_), Some(_)) => i += 3,
            _ => return Err(UriError::BadEscape),
        }
    }
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    pub secure: bool,
    /// User part with escapes kept raw.
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub host: Host<'a>,
    pub port: Option<u16>,
    pub params: Params<'a>,
    /// Raw text after `?`, without the `?`.
    pub headers: Option<&'a str>,
}

impl<'a> SipUri<'a> {
    /// `transport` parameter value, if any.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }
    /// Loose routing flag (`;lr`).
    pub fn lr(&self) -> bool {
        self.params.contains("lr")
    }
    /// `user` parameter (e.g. `phone`).
    pub fn user_param(&self) -> Option<&'a str> {
        self.params.get("user").flatten()
    }
    /// Compares the user part with `other` after decoding escapes
    /// (case-sensitive, RFC 3261 §19.1.4).
    pub fn user_eq(&self, other: &str) -> bool {
        self.user.is_some_and(|u| decoded_eq(u, other, false))
    }
    /// Iterates the `?name=value&...` headers (raw, escapes kept).
    pub fn header_pairs(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.headers
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.find('=') {
                Some(eq) => (&p[..eq], &p[eq + 1..]),
                None => (p, ""),
            })
    }

    fn equivalent(&self, o: &SipUri<'_>) -> bool {
        if self.secure != o.secure
            || self.port != o.port
            || !self.host.equivalent(&o.host)
            || !opt_eq(self.user, o.user, false)
            || !opt_eq(self.password, o.password, false)
        {
            return false;
        }
        // These parameters must match when present in either URI; any other
        // parameter only when present in both (RFC 3261 §19.1.4).
        for special in ["user", "ttl", "method", "maddr", "transport"] {
            match (self.params.get(special), o.params.get(special)) {
                (None, None) => {}
                (Some(a), Some(b)) => {
                    if !opt_eq(a, b, true) {
                        return false;
                    }
                }
                _ => return false,
            }
        }
        for (n, _) in self.params.iter() {
            // First occurrence wins on both sides, so a URI with a repeated
            // parameter still equals itself.
            if let (Some(v), Some(w)) = (self.params.get(n), o.params.get(n)) {
                if !opt_eq(v, w, true) {
                    return false;
                }
            }
        }
        let hdr_subset = |a: &SipUri<'_>, b: &SipUri<'_>| {
            a.header_pairs().all(|(n, v)| {
                b.header_pairs()
                    .any(|(m, w)| decoded_eq(n, m, true) && decoded_eq(v, w, false))
            })
        };
        hdr_subset(self, o) && hdr_subset(o, self)
    }
}

fn opt_eq(a: Option<&str>, b: Option<&str>, ci: bool) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => decoded_eq(x, y, ci),
        _ => false,
    }
}

/// A `tel:` URI (RFC 3966), kept mostly opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelUri<'a> {
    pub number: &'a str,
    pub params: Params<'a>,
}

/// Any URI a SIP message may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uri<'a> {
    Sip(SipUri<'a>),
    Tel(TelUri<'a>),
    /// Unknown or non-SIP absolute URI, kept opaque (the server decides about
    /// 416 Unsupported URI Scheme, not the parser).
    Other {
        scheme: &'a str,
        rest: &'a str,
    },
}

impl<'a> Uri<'a> {
    /// Parses with the default URI length cap (2048 bytes).
    pub fn parse(s: &'a str) -> Result<Uri<'a>, UriError> {
        Uri::parse_bounded(s, crate::Limits::default().max_uri_bytes)
    }

    /// Parses a URI of at most `max_len` bytes. No LWS is allowed anywhere.
    #[inline]
    pub fn parse_bounded(s: &'a str, max_len: usize) -> Result<Uri<'a>, UriError> {
        if s.is_empty() {
            return Err(UriError::Empty);
        }
        if s.len() > max_len {
            return Err(UriError::TooLong);
        }
        if let Some(u) = SipUri::parse_plain(s) {
            return Ok(Uri::Sip(u));
        }
        Uri::parse_general(s)
    }

    /// [`Uri::parse_bounded`] after the emptiness and length checks.
    pub(crate) fn parse_general(s: &'a str) -> Result<Uri<'a>, UriError> {
        let colon = find_byte(b':', s.as_bytes()).ok_or(UriError::BadScheme)?;
        let scheme = &s[..colon];
        let rest = &s[colon + 1..];
        let sb = scheme.as_bytes();
        if sb.is_empty()
            || !sb[0].is_ascii_alphabetic()
            || !sb
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        {
            return Err(UriError::BadScheme);
        }
        if scheme.eq_ignore_ascii_case("sip") {
            parse_sip(rest, false).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            parse_sip(rest, true).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            parse_tel(rest).map(Uri::Tel)
        } else {
            if rest.is_empty()
                || !rest
                    .bytes()
                    .all(|c| c > b' ' && c != 0x7f && !matches!(c, b'<' | b'>' | b'"'))
            {
                return Err(UriError::BadChar);
            }
            Ok(Uri::Other { scheme, rest })
        }
    }

    /// The scheme, lowercase for the known ones.
    pub fn scheme(&self) -> &'a str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Tel(_) => "tel",
            Uri::Other { scheme, .. } => scheme,
        }
    }

    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The user part with `%XX` escapes decoded, or a `tel:` URI's number:
    /// the name users are known by.
    pub fn user_decoded(&self) -> Option<String> {
        match self {
            Uri::Sip(u) => u
                .user
                .map(|s| String::from_utf8_lossy(&decoded(s).collect::<Vec<u8>>()).into_owned()),
            Uri::Tel(t) => Some(t.number.to_string()),
            Uri::Other { .. } => None,
        }
    }

    /// URI comparison per RFC 3261 §19.1.4 (SIP/SIPS); `tel:` compares the
    /// number and parameters after decoding; other schemes compare the scheme
    /// case-insensitively and the rest exactly.
    pub fn equivalent(&self, other: &Uri<'_>) -> bool {
        match (self, other) {
            (Uri::Sip(a), Uri::Sip(b)) => a.equivalent(b),
            (Uri::Tel(a), Uri::Tel(b)) => {
                decoded_eq(a.number, b.number, true) && tel_params_eq(&a.params, &b.params)
            }
            (
                Uri::Other { scheme: s, rest: r },
                Uri::Other {
                    scheme: s2,
                    rest: r2,
                },
            ) => s.eq_ignore_ascii_case(s2) && r == r2,
            _ => false,
        }
    }
}

/// The same parameters in any order, each matched once: a name may repeat
/// with different values, so a lookup by name alone is not enough.
fn tel_params_eq(a: &Params<'_>, b: &Params<'_>) -> bool {
    let theirs: Vec<(&str, Option<&str>)> = b.iter().collect();
    let mut used = vec![false; theirs.len()];
    let mut mine = 0;
    for (n, v) in a.iter() {
        mine += 1;
        let hit = theirs
            .iter()
            .enumerate()
            .position(|(i, (m, w))| !used[i] && decoded_eq(n, m, true) && opt_eq(v, *w, true));
        match hit {
            Some(i) => used[i] = true,
            None => return false,
        }
    }
    mine == theirs.len()
}

impl<'a> SipUri<'a> {
    /// Whether `s` is a SIP URI of the plain form [`SipUri::parse_plain`]
    /// takes, without building it: the parser's check of the URIs it only
    /// validates.
    pub(crate) fn is_plain(s: &'a str) -> bool {
        SipUri::parse_plain(s).is_some()
    }

    /// The SIP URI phones write, in one pass: `sip:` or `sips:` (any case),
    /// an optional user of plain user characters and `@`, a domain or IPv4
    /// host, an optional port and `;name[=value]` parameters. Anything else
    /// (escapes, a password, IPv6, `?headers`, errors) is `None`, left to
    /// [`Uri::parse_general`], which accepts what this does, alike (tested).
    #[inline(always)]
    pub(crate) fn parse_plain(s: &'a str) -> Option<SipUri<'a>> {
        let b = s.as_bytes();
        let (secure, mut i) = if b.len() < 5 {
            return None;
        } else if crate::scan::starts_with_folded(b, b"sip:") {
            (false, 4)
        } else if crate::scan::starts_with_folded(b, b"sips:") {
            (true, 5)
        } else {
            return None;
        };
        // USER holds neither `@` nor `:` nor `%`: a run that stops at `@`
        // ends the user part; one that stops anywhere else before the end
        // might be a password or an escape.
        let u = run(b, i, &USER);
        let user = match b.get(u) {
            Some(b'@') if u > i => {
                let user = &s[i..u];
                i = u + 1;
                Some(user)
            }
            None => None,
            Some(_) if find_byte(b'@', &b[i..]).is_none() => None,
            Some(_) => return None,
        };
        let h = run(b, i, &HOST);
        let host = Host::parse_checked(&s[i..h]).ok()?;
        i = h;
        let mut port = None;
        if b.get(i) == Some(&b':') {
            let p = i + 1 + b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            port = Some(parse_port(&s[i + 1..p]).ok()?);
            i = p;
        }
        let params = &s[i..];
        if !params.is_empty() {
            // PARAM holds no `?`: `?headers` fail here and go the long way.
            if b[i] != b';' || validate_uri_params(params).is_err() {
                return None;
            }
        }
        Some(SipUri {
            secure,
            user,
            password: None,
            host,
            port,
            params: Params(params),
            headers: None,
        })
    }
}

fn parse_sip(rest: &str, secure: bool) -> Result<SipUri<'_>, UriError> {
    let (userinfo, hostpart) = match find_byte(b'@', rest.as_bytes()) {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        Some(ui) => {
            let (u, p) = match find_byte(b':', ui.as_bytes()) {
                Some(c) => (&ui[..c], Some(&ui[c + 1..])),
                None => (ui, None),
            };
            if u.is_empty() {
                return Err(UriError::BadUser);
            }
            check_escaped(u, &USER, UriError::BadUser)?;
            if let Some(p) = p {
                check_escaped(p, &PASSWORD, UriError::BadPassword)?;
            }
            (Some(u), p)
        }
        None => (None, None),
    };
    let hb = hostpart.as_bytes();
    let (host_end, host) = if hb.first() == Some(&b'[') {
        let e = find_byte(b']', hb).ok_or(UriError::BadHost)? + 1;
        (e, Host::parse(&hostpart[..e])?)
    } else {
        // One scan both finds the end and checks the characters: anything
        // but a host character must be one of the delimiters `:;?`.
        let e = host_chars(hb);
        if e < hb.len() && !matches!(hb[e], b':' | b';' | b'?') {
            return Err(UriError::BadHost);
        }
        (e, Host::parse_checked(&hostpart[..e])?)
    };
    let mut r = &hostpart[host_end..];
    let mut port = None;
    if let Some(p) = r.strip_prefix(':') {
        let end = p
            .bytes()
            .position(|c| c == b';' || c == b'?')
            .unwrap_or(p.len());
        port = Some(parse_port(&p[..end])?);
        r = &p[end..];
    }
    let (pstr, headers) = match find_byte(b'?', r.as_bytes()) {
        Some(q) => (&r[..q], Some(&r[q + 1..])),
        None => (r, None),
    };
    if !pstr.is_empty() {
        if !pstr.starts_with(';') {
            return Err(UriError::BadHost);
        }
        validate_uri_params(pstr)?;
    }
    if let Some(h) = headers {
        for pair in h.split('&') {
            let (n, v) = pair.split_once('=').ok_or(UriError::BadHeaders)?;
            if n.is_empty() {
                return Err(UriError::BadHeaders);
            }
            check_escaped(n, &HEADER, UriError::BadHeaders)?;
            check_escaped(v, &HEADER, UriError::BadHeaders)?;
        }
    }
    Ok(SipUri {
        secure,
        user,
        password,
        host,
        port,
        params: Params(pstr),
        headers,
    })
}

pub(crate) fn parse_port(s: &str) -> Result<u16, UriError> {
    if s.is_empty() || s.len() > 5 {
        return Err(UriError::BadPort);
    }
    // At most five digits fit a u32, so one fold checks and converts.
    let mut v = 0u32;
    for c in s.bytes() {
        if !c.is_ascii_digit() {
            return Err(UriError::BadPort);
        }
        v = v * 10 + u32::from(c - b'0');
    }
    u16::try_from(v).map_err(|_| UriError::BadPort)
}

fn parse_tel(rest: &str) -> Result<TelUri<'_>, UriError> {
    let end = rest.find(';').unwrap_or(rest.len());
    let number = &rest[..end];
    if number.is_empty()
        || !number.bytes().all(|c| {
            c.is_ascii_hexdigit() || matches!(c, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
        })
    {
        return Err(UriError::BadNumber);
    }
    let pstr = &rest[end..];
    if !pstr.is_empty() {
        validate_uri_params(pstr)?;
    }
    Ok(TelUri {
        number,
        params: Params(pstr),
    })
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Tel(t) => write!(f, "tel:{}{}", t.number, t.params.0),
            Uri::Other { scheme, rest } => write!(f, "{scheme}:{rest}"),
        }
    }
}

impl fmt::Display for SipUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = self.user {
            f.write_str(u)?;
            if let Some(p) = self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        f.write_str(self.params.0)?;
        if let Some(h) = self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

/// True when `s` is a token (RFC 3261), re-exported for header code.
pub(crate) fn token_ok(s: &str) -> bool {
    !s.is_empty() && run(s.as_bytes(), 0, &crate::method::TOKEN) == s.len()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tel_with_repeated_params_equals_itself() {
        // Found by the fuzzer: a repeated name with different values.
        let u = Uri::parse("tEL:);++=++;++=++(h:5:").unwrap();
        let printed = u.to_string();
        let again = Uri::parse(&printed).unwrap();
        assert!(u.equivalent(&again) && again.equivalent(&u));
        let a = Uri::parse("tel:+1;a=1;a=2").unwrap();
        let b = Uri::parse("tel:+1;a=2;a=1").unwrap();
        let c = Uri::parse("tel:+1;a=1;a=1").unwrap();
        assert!(a.equivalent(&b));
        assert!(!a.equivalent(&c));
    }

    use super::*;

    fn sip(s: &str) -> SipUri<'_> {
        match Uri::parse(s).unwrap() {
            Uri::Sip(u) => u,
            other => panic!("not sip: {other:?}"),
        }
    }

    #[test]
    fn decoded_users() {
        let user = |s: &str| Uri::parse(s).unwrap().user_decoded();
        assert_eq!(user("sip:1%30%30%30@example.test").as_deref(), Some("1000"));
        assert_eq!(user("sip:example.test"), None);
        assert_eq!(
            user("tel:+1-201-555-0123").as_deref(),
            Some("+1-201-555-0123")
        );
        assert_eq!(user("urn:service:sos"), None);
    }

    #[test]
    fn parts() {
        let u = sip("sips:alice:pw@Example.COM:5061;transport=tls;lr?subject=x&h=y");
        assert!(u.secure);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("pw"));
        assert_eq!(u.host, Host::Domain("Example.COM"));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport(), Some("tls"));
        assert!(u.lr());
        assert_eq!(u.headers, Some("subject=x&h=y"));
        assert_eq!(u.header_pairs().count(), 2);
        let u = sip("sip:[2001:db8::1]:5060;maddr=239.255.255.1");
        assert_eq!(u.host, Host::Ipv6("2001:db8::1".parse().unwrap()));
        assert_eq!(u.maddr(), Some("239.255.255.1"));
        let u = sip("sip:192.0.2.1");
        assert_eq!(u.host, Host::Ipv4("192.0.2.1".parse().unwrap()));
        assert_eq!(u.user, None);
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "sip:",
            "sip:user@",
            "sip:a b@c",
            "sip:host:99999",
            "sip:host:",
            "sip:[::1",
            "sip:1.2.3",
            "sip:host;",
            "sip:host;=x",
            "sip:us%zzer@host",
            "sip:user@host?noequals",
            "1sip:x",
            "tel:",
            "foo:",
            "foo:a<b",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(
            Uri::parse_bounded("sip:aaaaaaaaaa@b", 8),
            Err(UriError::TooLong)
        );
    }

    #[test]
    fn unusual_but_legal() {
        let u = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
        assert_eq!(
            u.user,
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password,
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert!(matches!(
            Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent").unwrap(),
            Uri::Other {
                scheme: "nobodyKnowsThisScheme",
                ..
            }
        ));
        let t = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(t.scheme(), "tel");
    }

    #[test]
    fn escapes_compare_equal() {
        let a = Uri::parse("sip:%75se%72@example.com").unwrap();
        let b = Uri::parse("sip:user@EXAMPLE.com").unwrap();
        assert!(a.equivalent(&b));
        let a =
            Uri::parse("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31").unwrap();
        // `%25%34%31` decodes to the three characters `%41`.
        let b = Uri::parse("sip:caller@host5.example.net;lr;name=value%2541").unwrap();
        assert!(a.equivalent(&b));
        assert!(a.as_sip().unwrap().lr());
        assert!(a.as_sip().unwrap().user_eq("caller"));
        // %00 is a legal escape and is not a terminator.
        let n = sip("sip:null-%00-null@example.com");
        assert_eq!(n.user, Some("null-%00-null"));
        assert!(!n.user_eq("null-"));
    }

    #[test]
    fn rfc3261_comparison_rules() {
        let eq = |a: &str, b: &str| Uri::parse(a).unwrap().equivalent(&Uri::parse(b).unwrap());
        assert!(eq(
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp"
        ));
        assert!(eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(eq(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"
        ));
        assert!(!eq(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP"
        ));
        assert!(!eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
        assert!(!eq(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com;transport=udp"
        ));
        assert!(!eq(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off"
        ));
        assert!(!eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com?Subject=next%20meeting"
        ));
        assert!(!eq("sip:a@b", "sips:a@b"));
        assert!(eq("sip:[::1]", "sip:[0:0::1]"));
        // Repeated parameter: still reflexive (fuzz finding).
        let dup = "sip:h;a=1;a=2";
        assert!(eq(dup, dup));
    }

    #[test]
    fn display_round_trip() {
        for s in [
            "sip:alice@example.com",
            "sips:a:b@[2001:db8::1]:5061;lr;transport=tcp?x=y",
            "tel:+1-201-555-0123;phone-context=x",
            "im:user@example.com",
        ] {
            let u = Uri::parse(s).unwrap();
            let printed = u.to_string();
            assert_eq!(printed, s);
            assert_eq!(Uri::parse(&printed).unwrap(), u);
        }
    }
}
