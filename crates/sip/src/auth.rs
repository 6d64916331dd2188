//! SIP digest authentication (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).
//!
//! Self-contained on purpose: it works on header *values* (`&str`) and plain
//! data, so it does not depend on the message model. No clock reads and no
//! RNG: callers pass `now` (unix seconds) and random bytes in.
//!
//! Server flow:
//! 1. No credentials (or [`AuthParseError::UnsupportedScheme`]): send
//!    [`Verifier::challenges`] in 401/407.
//! 2. Otherwise [`Credentials::parse`], look up the user's HA1 for
//!    `creds.algorithm` (see [`ha1`]), then [`Verifier::check`] and act on the
//!    [`AuthOutcome`].
//!
//! Only `qop=auth` and no-qop (RFC 2069 style) are supported; `auth-int` and
//! the `-sess` algorithms are rejected as unsupported.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;

use hmac::digest::generic_array::GenericArray;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Longest Authorization / WWW-Authenticate value accepted, in bytes. Real
/// digest headers are a few hundred bytes.
pub const MAX_HEADER_VALUE_LEN: usize = 8192;
/// Longest single parameter value (raw, before unescaping), in bytes.
pub const MAX_PARAM_VALUE_LEN: usize = 1024;
/// Most parameters accepted in one header value.
pub const MAX_PARAMS: usize = 32;

/// Errors from parsing credentials or challenges. Carries no input text so it
/// is always safe to log (the input may hold a digest response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthParseError {
    /// Scheme is not `Digest`: ignore these credentials and challenge
    /// (RFC 4475 regaut01).
    #[error("authentication scheme is not Digest")]
    UnsupportedScheme,
    #[error("malformed authentication parameters")]
    Malformed,
    #[error("header value too long")]
    TooLong,
    #[error("parameter value too long")]
    ValueTooLong,
    #[error("too many parameters")]
    TooManyParams,
    #[error("duplicate parameter")]
    DuplicateParam,
    #[error("missing required parameter `{0}`")]
    MissingParam(&'static str),
    /// Unknown algorithm, including the `-sess` variants.
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    /// Unknown qop, or (client side) a challenge offering only `auth-int`.
    #[error("unsupported qop")]
    UnsupportedQop,
    /// `nc` is not exactly 8 lowercase hex digits (RFC 2617 `8LHEX`).
    #[error("bad nonce count")]
    BadNonceCount,
}

// ---------------------------------------------------------------------------
// Algorithms, hashing, hex
// ---------------------------------------------------------------------------

/// Digest hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// Parses `MD5` / `SHA-256` case-insensitively. Everything else, including
    /// `MD5-sess`, `SHA-256-sess` and `SHA-512-256`, is unsupported.
    pub fn parse(s: &str) -> Result<Self, AuthParseError> {
        if s.eq_ignore_ascii_case("MD5") {
            Ok(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Ok(Algorithm::Sha256)
        } else {
            Err(AuthParseError::UnsupportedAlgorithm)
        }
    }

    /// Canonical name as sent on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Digest length in bytes.
    pub const fn output_len(self) -> usize {
        match self {
            Algorithm::Md5 => 16,
            Algorithm::Sha256 => 32,
        }
    }

    /// Digest length in hex characters (length of HA1 and `response`).
    pub const fn hex_len(self) -> usize {
        self.output_len() * 2
    }
}

/// Fixed-size digest output; avoids heap allocation on the verify path.
#[derive(Clone, Copy)]
struct DigestOut {
    buf: [u8; 32],
    len: usize,
}

impl DigestOut {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Lowercase hex into a stack buffer (RFC 2617 hashes hex text, not bytes).
    fn hex(&self) -> ([u8; 64], usize) {
        let mut out = [0u8; 64];
        hex_into(self.as_bytes(), &mut out);
        (out, self.len * 2)
    }
}

enum Hasher {
    Md5(Md5),
    Sha256(Sha256),
}

impl Hasher {
    fn new(alg: Algorithm) -> Self {
        match alg {
            Algorithm::Md5 => Hasher::Md5(Md5::new()),
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => Digest::update(h, data),
            Hasher::Sha256(h) => Digest::update(h, data),
        }
    }

    /// Feeds `parts` joined by ':' (the digest field separator).
    fn update_joined(&mut self, parts: &[&[u8]]) {
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                self.update(b":");
            }
            self.update(p);
        }
    }

    fn finish(self) -> DigestOut {
        let mut buf = [0u8; 32];
        let len = match self {
            Hasher::Md5(h) => {
                buf[..16].copy_from_slice(&h.finalize());
                16
            }
            Hasher::Sha256(h) => {
                buf.copy_from_slice(&h.finalize());
                32
            }
        };
        DigestOut { buf, len }
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes lowercase hex of `bytes` into the start of `out`
/// (`out.len() >= 2 * bytes.len()`; extra input is ignored, never panics).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = HEX_DIGITS[usize::from(b >> 4)];
        pair[1] = HEX_DIGITS[usize::from(b & 0x0f)];
    }
}

/// Lowercase hex encoding.
pub fn hex_encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        s.push(char::from(HEX_DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn hex_nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex (either case) into `out`. Returns false unless `s` is exactly
/// `2 * out.len()` hex digits; `out` content is unspecified on failure.
pub fn hex_decode(s: &str, out: &mut [u8]) -> bool {
    let s = s.as_bytes();
    if s.len() != out.len() * 2 {
        return false;
    }
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        match (hex_nibble(pair[0]), hex_nibble(pair[1])) {
            (Some(h), Some(l)) => *o = (h << 4) | l,
            _ => return false,
        }
    }
    true
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// HA1 = H(user ":" realm ":" password), lowercase hex. Stores may keep this
/// instead of the password (one per algorithm, since it is realm-bound).
pub fn ha1(alg: Algorithm, user: &str, realm: &str, password: &str) -> String {
    let mut h = Hasher::new(alg);
    h.update_joined(&[user.as_bytes(), realm.as_bytes(), password.as_bytes()]);
    let (buf, len) = h.finish().hex();
    buf[..len].iter().map(|&b| char::from(b)).collect()
}

/// `qop=auth` inputs to the response hash.
struct QopInput<'b> {
    nc: &'b [u8],
    cnonce: &'b str,
}

/// request-digest per RFC 2617 §3.2.2.1 (qop=auth or no qop).
fn compute_response(
    alg: Algorithm,
    ha1_hex: &[u8],
    nonce: &str,
    qop: Option<QopInput<'_>>,
    method: &str,
    uri: &str,
) -> DigestOut {
    let mut h2 = Hasher::new(alg);
    h2.update_joined(&[method.as_bytes(), uri.as_bytes()]);
    let (ha2, ha2_len) = h2.finish().hex();
    let ha2 = &ha2[..ha2_len];

    let mut h = Hasher::new(alg);
    match qop {
        Some(q) => h.update_joined(&[
            ha1_hex,
            nonce.as_bytes(),
            q.nc,
            q.cnonce.as_bytes(),
            b"auth",
            ha2,
        ]),
        None => h.update_joined(&[ha1_hex, nonce.as_bytes(), ha2]),
    }
    h.finish()
}

/// nc as sent on the wire: 8 lowercase hex digits.
fn nc_text(nc: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    hex_into(&nc.to_be_bytes(), &mut out);
    out
}

// ---------------------------------------------------------------------------
// Parameter lexer (shared by credentials and challenges)
// ---------------------------------------------------------------------------

fn is_ws(b: u8) -> bool {
    // CR/LF included so folded (CRLF SP) values that were not unfolded still
    // parse; a bare CR/LF cannot survive the message parser anyway.
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

fn skip_ws(b: &[u8], mut pos: usize) -> usize {
    while pos < b.len() && is_ws(b[pos]) {
        pos += 1;
    }
    pos
}

/// Iterates `name=value` pairs after the `Digest` scheme token. Enforces the
/// parameter count cap, value length cap and duplicate rejection.
struct ParamLexer<'a> {
    s: &'a str,
    pos: usize,
    seen: [&'a str; MAX_PARAMS],
    count: usize,
}

impl<'a> ParamLexer<'a> {
    /// Checks the scheme is `Digest` and positions after it.
    fn digest(value: &'a str) -> Result<Self, AuthParseError> {
        if value.len() > MAX_HEADER_VALUE_LEN {
            return Err(AuthParseError::TooLong);
        }
        let b = value.as_bytes();
        let start = skip_ws(b, 0);
        let mut pos = start;
        while pos < b.len() && is_token_byte(b[pos]) {
            pos += 1;
        }
        let scheme = value.get(start..pos).ok_or(AuthParseError::Malformed)?;
        if scheme.is_empty() {
            return Err(AuthParseError::Malformed);
        }
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(AuthParseError::UnsupportedScheme);
        }
        // The scheme must be followed by LWS (or nothing).
        if pos < b.len() && !is_ws(b[pos]) {
            return Err(AuthParseError::Malformed);
        }
        Ok(ParamLexer {
            s: value,
            pos,
            seen: [""; MAX_PARAMS],
            count: 0,
        })
    }

    fn token(&mut self) -> Result<&'a str, AuthParseError> {
        let b = self.s.as_bytes();
        let start = self.pos;
        while self.pos < b.len() && is_token_byte(b[self.pos]) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(AuthParseError::Malformed);
        }
        if self.pos - start > MAX_PARAM_VALUE_LEN {
            return Err(AuthParseError::ValueTooLong);
        }
        self.s.get(start..self.pos).ok_or(AuthParseError::Malformed)
    }

    /// quoted-string with backslash escapes; borrowed unless it has escapes.
    /// Control characters (other than HTAB) are rejected, escaped or not, so
    /// nothing we later echo can smuggle CR/LF.
    fn quoted(&mut self) -> Result<Cow<'a, str>, AuthParseError> {
        let b = self.s.as_bytes();
        let start = self.pos + 1; // after the opening quote
        let mut i = start;
        let mut seg_start = start;
        let mut owned: Option<String> = None;
        loop {
            if i - start > MAX_PARAM_VALUE_LEN {
                return Err(AuthParseError::ValueTooLong);
            }
            let Some(&c) = b.get(i) else {
                return Err(AuthParseError::Malformed); // unterminated
            };
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = b.get(i + 1) else {
                        return Err(AuthParseError::Malformed);
                    };
                    // quoted-pair is ASCII only (RFC 3261 §25.1).
                    if !(e == b'\t' || (0x20..0x7f).contains(&e)) {
                        return Err(AuthParseError::Malformed);
                    }
                    let seg = self.s.get(seg_start..i).ok_or(AuthParseError::Malformed)?;
                    let o = owned.get_or_insert_with(String::new);
                    o.push_str(seg);
                    o.push(char::from(e));
                    i += 2;
                    seg_start = i;
                }
                c if (c < 0x20 && c != b'\t') || c == 0x7f => {
                    return Err(AuthParseError::Malformed);
                }
                _ => i += 1,
            }
        }
        let tail = self.s.get(seg_start..i).ok_or(AuthParseError::Malformed)?;
        self.pos = i + 1;
        Ok(match owned {
            Some(mut o) => {
                o.push_str(tail);
                Cow::Owned(o)
            }
            None => Cow::Borrowed(tail),
        })
    }

    fn next_param(&mut self) -> Result<Option<(&'a str, Cow<'a, str>)>, AuthParseError> {
        let b = self.s.as_bytes();
        self.pos = skip_ws(b, self.pos);
        if self.pos == b.len() {
            return Ok(None);
        }
        if self.count > 0 {
            if b[self.pos] != b',' {
                return Err(AuthParseError::Malformed);
            }
            self.pos = skip_ws(b, self.pos + 1);
            if self.pos == b.len() {
                return Err(AuthParseError::Malformed); // trailing comma
            }
        }
        if self.count == MAX_PARAMS {
            return Err(AuthParseError::TooManyParams);
        }
        let name = self.token()?;
        self.pos = skip_ws(b, self.pos);
        if b.get(self.pos) != Some(&b'=') {
            return Err(AuthParseError::Malformed);
        }
        self.pos = skip_ws(b, self.pos + 1);
        // Any parameter may be quoted or a token: some UAs quote `algorithm`
        // or `qop`; the grammar difference carries no meaning for us.
        let value = if b.get(self.pos) == Some(&b'"') {
            self.quoted()?
        } else {
            Cow::Borrowed(self.token()?)
        };
        if self.seen[..self.count]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(name))
        {
            return Err(AuthParseError::DuplicateParam);
        }
        self.seen[self.count] = name;
        self.count += 1;
        Ok(Some((name, value)))
    }
}

// ---------------------------------------------------------------------------
// Credentials (Authorization / Proxy-Authorization)
// ---------------------------------------------------------------------------

/// Quality of protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    Auth,
    /// Parsed so it can be reported, but never verified (needs the body).
    AuthInt,
}

impl Qop {
    pub fn parse(s: &str) -> Result<Self, AuthParseError> {
        if s.eq_ignore_ascii_case("auth") {
            Ok(Qop::Auth)
        } else if s.eq_ignore_ascii_case("auth-int") {
            Ok(Qop::AuthInt)
        } else {
            Err(AuthParseError::UnsupportedQop)
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

/// Digest credentials from one Authorization / Proxy-Authorization value.
/// Values are unescaped; borrowed from the input when no escapes were present.
/// Debug redacts `response`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    pub username: Cow<'a, str>,
    pub realm: Cow<'a, str>,
    pub nonce: Cow<'a, str>,
    /// digest-uri as the client hashed it (may differ from the Request-URI).
    pub uri: Cow<'a, str>,
    /// Hex request-digest (secret-equivalent for replay; never log).
    pub response: Cow<'a, str>,
    /// Defaults to MD5 when absent (RFC 2617).
    pub algorithm: Algorithm,
    pub cnonce: Option<Cow<'a, str>>,
    pub opaque: Option<Cow<'a, str>>,
    pub qop: Option<Qop>,
    /// Present whenever `qop` is (enforced by the parser).
    pub nc: Option<u32>,
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("nonce", &self.nonce)
            .field("uri", &self.uri)
            .field("response", &"<redacted>")
            .field("algorithm", &self.algorithm)
            .field("cnonce", &self.cnonce)
            .field("opaque", &self.opaque)
            .field("qop", &self.qop)
            .field("nc", &self.nc)
            .finish()
    }
}

fn parse_nc(v: &str) -> Result<u32, AuthParseError> {
    // RFC 2617/3261: nc-value = 8LHEX. Lowercase only, because the client
    // hashed the exact text and we re-format it from the number.
    if v.len() != 8 || !is_lower_hex(v) {
        return Err(AuthParseError::BadNonceCount);
    }
    let mut bytes = [0u8; 4];
    if !hex_decode(v, &mut bytes) {
        return Err(AuthParseError::BadNonceCount);
    }
    Ok(u32::from_be_bytes(bytes))
}

impl<'a> Credentials<'a> {
    /// Parses one credentials value. Scheme other than `Digest` gives
    /// [`AuthParseError::UnsupportedScheme`]. `userhash` and unknown
    /// auth-params are ignored (they still count toward [`MAX_PARAMS`]).
    pub fn parse(value: &'a str) -> Result<Self, AuthParseError> {
        let mut lx = ParamLexer::digest(value)?;
        let mut username = None;
        let mut realm = None;
        let mut nonce = None;
        let mut uri = None;
        let mut response = None;
        let mut algorithm = None;
        let mut cnonce = None;
        let mut opaque = None;
        let mut qop = None;
        let mut nc = None;
        while let Some((name, v)) = lx.next_param()? {
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            if is("username") {
                username = Some(v);
            } else if is("realm") {
                realm = Some(v);
            } else if is("nonce") {
                nonce = Some(v);
            } else if is("uri") {
                uri = Some(v);
            } else if is("response") {
                response = Some(v);
            } else if is("algorithm") {
                algorithm = Some(Algorithm::parse(&v)?);
            } else if is("cnonce") {
                cnonce = Some(v);
            } else if is("opaque") {
                opaque = Some(v);
            } else if is("qop") {
                qop = Some(Qop::parse(&v)?);
            } else if is("nc") {
                nc = Some(parse_nc(&v)?);
            }
        }
        let creds = Credentials {
            username: username.ok_or(AuthParseError::MissingParam("username"))?,
            realm: realm.ok_or(AuthParseError::MissingParam("realm"))?,
            nonce: nonce.ok_or(AuthParseError::MissingParam("nonce"))?,
            uri: uri.ok_or(AuthParseError::MissingParam("uri"))?,
            response: response.ok_or(AuthParseError::MissingParam("response"))?,
            algorithm: algorithm.unwrap_or(Algorithm::Md5),
            cnonce,
            opaque,
            qop,
            nc,
        };
        if creds.qop.is_some() {
            // RFC 2617 §3.2.2: cnonce and nc MUST accompany qop.
            if creds.cnonce.is_none() {
                return Err(AuthParseError::MissingParam("cnonce"));
            }
            if creds.nc.is_none() {
                return Err(AuthParseError::MissingParam("nc"));
            }
        }
        Ok(creds)
    }
}

// ---------------------------------------------------------------------------
// Challenges (WWW-Authenticate / Proxy-Authenticate)
// ---------------------------------------------------------------------------

/// qop options offered by a challenge. Both false = no qop (RFC 2069 style).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QopOptions {
    pub auth: bool,
    pub auth_int: bool,
}

/// A parsed digest challenge (client side and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge<'a> {
    pub realm: Cow<'a, str>,
    pub nonce: Cow<'a, str>,
    pub algorithm: Algorithm,
    pub qop: QopOptions,
    pub opaque: Option<Cow<'a, str>>,
    pub stale: bool,
}

impl<'a> Challenge<'a> {
    /// Parses one challenge value. Unknown qop options, `domain` and unknown
    /// auth-params are ignored; an unsupported algorithm is an error so a
    /// client can skip to the next challenge (RFC 8760 §2.4).
    pub fn parse(value: &'a str) -> Result<Self, AuthParseError> {
        let mut lx = ParamLexer::digest(value)?;
        let mut realm = None;
        let mut nonce = None;
        let mut algorithm = None;
        let mut qop = QopOptions::default();
        let mut opaque = None;
        let mut stale = false;
        while let Some((name, v)) = lx.next_param()? {
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            if is("realm") {
                realm = Some(v);
            } else if is("nonce") {
                nonce = Some(v);
            } else if is("algorithm") {
                algorithm = Some(Algorithm::parse(&v)?);
            } else if is("qop") {
                for opt in v
                    .split(',')
                    .map(|o| o.trim_matches(|c: char| c == ' ' || c == '\t'))
                {
                    if opt.eq_ignore_ascii_case("auth") {
                        qop.auth = true;
                    } else if opt.eq_ignore_ascii_case("auth-int") {
                        qop.auth_int = true;
                    }
                }
            } else if is("opaque") {
                opaque = Some(v);
            } else if is("stale") {
                stale = v.eq_ignore_ascii_case("true");
            }
        }
        Ok(Challenge {
            realm: realm.ok_or(AuthParseError::MissingParam("realm"))?,
            nonce: nonce.ok_or(AuthParseError::MissingParam("nonce"))?,
            algorithm: algorithm.unwrap_or(Algorithm::Md5),
            qop,
            opaque,
            stale,
        })
    }
}

/// Appends `s` as a quoted-string. `"` and `\` are escaped; control characters
/// (other than HTAB) are dropped since they cannot appear in a header line —
/// configuration (realm) should be validated before it gets here.
fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    // Nonces, realms and user names need no escaping: copy them whole.
    if !s
        .bytes()
        .any(|c| c == b'"' || c == b'\\' || (c.is_ascii_control() && c != b'\t'))
    {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c != '\t' && c.is_ascii_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Builds a WWW-Authenticate / Proxy-Authenticate value, always offering
/// `qop="auth"`. Output depends only on the arguments, so a known and an
/// unknown user get byte-identical challenges (anti-enumeration). Format:
/// `Digest realm="R", nonce="N", algorithm=A, qop="auth"[, opaque="O"][, stale=true]`.
pub fn challenge(
    alg: Algorithm,
    realm: &str,
    nonce: &str,
    stale: bool,
    opaque: Option<&str>,
) -> String {
    let mut out = String::with_capacity(64 + realm.len() + nonce.len());
    out.push_str("Digest realm=");
    push_quoted(&mut out, realm);
    out.push_str(", nonce=");
    push_quoted(&mut out, nonce);
    out.push_str(", algorithm=");
    out.push_str(alg.as_str());
    out.push_str(", qop=\"auth\"");
    if let Some(o) = opaque {
        out.push_str(", opaque=");
        push_quoted(&mut out, o);
    }
    if stale {
        out.push_str(", stale=true");
    }
    out
}

/// Builds an Authorization value answering `challenge` (client side). Uses
/// `qop=auth` when offered, else RFC 2069 style without cnonce/nc. Errors with
/// [`AuthParseError::UnsupportedQop`] if only `auth-int` is offered.
pub fn client_authorization(
    challenge: &Challenge<'_>,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, AuthParseError> {
    let use_qop = if challenge.qop.auth {
        true
    } else if challenge.qop.auth_int {
        return Err(AuthParseError::UnsupportedQop);
    } else {
        false
    };
    let alg = challenge.algorithm;
    let ha1_hex = ha1(alg, user, &challenge.realm, password);
    let nc_buf = nc_text(nc);
    let qop_in = use_qop.then_some(QopInput {
        nc: &nc_buf,
        cnonce,
    });
    let resp = compute_response(
        alg,
        ha1_hex.as_bytes(),
        &challenge.nonce,
        qop_in,
        method,
        uri,
    );

    let mut out = String::with_capacity(256);
    out.push_str("Digest username=");
    push_quoted(&mut out, user);
    out.push_str(", realm=");
    push_quoted(&mut out, &challenge.realm);
    out.push_str(", nonce=");
    push_quoted(&mut out, &challenge.nonce);
    out.push_str(", uri=");
    push_quoted(&mut out, uri);
    out.push_str(", response=\"");
    out.push_str(&hex_encode(resp.as_bytes()));
    out.push_str("\", algorithm=");
    out.push_str(alg.as_str());
    if use_qop {
        out.push_str(", qop=auth, nc=");
        out.extend(nc_buf.iter().map(|&b| char::from(b)));
        out.push_str(", cnonce=");
        push_quoted(&mut out, cnonce);
    }
    if let Some(o) = &challenge.opaque {
        out.push_str(", opaque=");
        push_quoted(&mut out, o);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Nonces
// ---------------------------------------------------------------------------

/// Result of [`NonceGen::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Valid {
        issued_at: u64,
    },
    /// Our MAC, but older than the lifetime: re-challenge with `stale=true`.
    Stale,
    /// Bad format, wrong MAC, or issued in the future beyond the skew.
    Invalid,
}

/// Length of an issued nonce in characters.
pub const NONCE_LEN: usize = 64;
const NONCE_BODY_LEN: usize = 16;
const NONCE_MAC_LEN: usize = 16;
/// Domain separation so the secret's MACs cannot be confused with other uses.
const NONCE_DOMAIN: &[u8] = b"hardline digest nonce v1";

/// Stateless nonce issuer/validator.
///
/// Nonce format (64 lowercase hex chars):
/// `hex(timestamp: u64 BE ‖ salt: [u8; 8] ‖ tag)` where
/// `tag = HMAC-SHA256(secret, "hardline digest nonce v1" ‖ timestamp ‖ salt)[..16]`.
/// Not bound to realm or algorithm: both are covered by the response hash
/// (realm via HA1) and checked by [`Verifier`] policy.
#[derive(Clone)]
pub struct NonceGen {
    /// HMAC keyed with the secret, the domain string already absorbed: each
    /// tag clones it, so the key's pad blocks are not hashed per nonce.
    keyed: Hmac<Sha256>,
    lifetime: u64,
    max_skew: u64,
}

impl fmt::Debug for NonceGen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceGen")
            .field("key", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .field("max_skew", &self.max_skew)
            .finish()
    }
}

impl NonceGen {
    /// Default nonce lifetime in seconds.
    pub const DEFAULT_LIFETIME: u64 = 300;
    /// Default tolerance for nonces stamped in the future (clock steps between
    /// cluster nodes sharing a secret).
    pub const DEFAULT_MAX_SKEW: u64 = 5;

    /// `secret`: 32 random bytes, shared by every node that must accept the
    /// others' nonces; rotating it invalidates outstanding nonces.
    pub fn new(secret: [u8; 32]) -> Self {
        // The secret zero-padded to the SHA-256 block size; HMAC pads short
        // keys the same way, so this equals HMAC keyed with the 32-byte
        // secret but lets us use the infallible constructor.
        let mut key = [0u8; 64];
        key[..32].copy_from_slice(&secret);
        let mut keyed = <Hmac<Sha256> as KeyInit>::new(&GenericArray::from(key));
        Mac::update(&mut keyed, NONCE_DOMAIN);
        NonceGen {
            keyed,
            lifetime: Self::DEFAULT_LIFETIME,
            max_skew: Self::DEFAULT_MAX_SKEW,
        }
    }

    pub fn with_lifetime(mut self, secs: u64) -> Self {
        self.lifetime = secs;
        self
    }

    pub fn with_max_skew(mut self, secs: u64) -> Self {
        self.max_skew = secs;
        self
    }

    pub fn lifetime(&self) -> u64 {
        self.lifetime
    }

    fn tag(&self, body: &[u8]) -> [u8; NONCE_MAC_LEN] {
        let mut mac = self.keyed.clone();
        Mac::update(&mut mac, body);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; NONCE_MAC_LEN];
        out.copy_from_slice(&full[..NONCE_MAC_LEN]);
        out
    }

    /// Issues a nonce for `now`; `salt` must be fresh random bytes.
    pub fn issue(&self, now: u64, salt: [u8; 8]) -> String {
        let mut raw = [0u8; NONCE_BODY_LEN + NONCE_MAC_LEN];
        raw[..8].copy_from_slice(&now.to_be_bytes());
        raw[8..NONCE_BODY_LEN].copy_from_slice(&salt);
        let tag = self.tag(&raw[..NONCE_BODY_LEN]);
        raw[NONCE_BODY_LEN..].copy_from_slice(&tag);
        hex_encode(&raw)
    }

    /// Validates a nonce we issued. Constant-time tag comparison.
    pub fn check(&self, nonce: &str, now: u64) -> NonceCheck {
        // Lowercase only: we issue lowercase, and one canonical spelling per
        // nonce keeps replay tracking keyed correctly.
        if nonce.len() != NONCE_LEN || !is_lower_hex(nonce) {
            return NonceCheck::Invalid;
        }
        let mut raw = [0u8; NONCE_BODY_LEN + NONCE_MAC_LEN];
        if !hex_decode(nonce, &mut raw) {
            return NonceCheck::Invalid;
        }
        let (body, tag) = raw.split_at(NONCE_BODY_LEN);
        let expected = self.tag(body);
        if !bool::from(expected.as_slice().ct_eq(tag)) {
            return NonceCheck::Invalid;
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&body[..8]);
        let issued_at = u64::from_be_bytes(ts);
        if issued_at > now.saturating_add(self.max_skew) {
            return NonceCheck::Invalid;
        }
        if now.saturating_sub(issued_at) > self.lifetime {
            return NonceCheck::Stale;
        }
        NonceCheck::Valid { issued_at }
    }
}

/// Replay tracking of `nc` per nonce with bounded memory.
///
/// Holds at most `capacity` nonces (FIFO eviction of the first-seen). Keys are
/// a 16-byte SHA-256 prefix of the nonce, so memory per entry is fixed
/// whatever the nonce length. Entries are only recorded after the response
/// verified (see [`Verifier::check`]), so unauthenticated traffic cannot
/// evict anything.
///
/// To stop an evicted nonce from being replayed from nc 1, the newest
/// `issued_at` ever evicted is remembered; an unknown nonce issued at or
/// before it is refused (the client just gets a fresh challenge).
///
/// Nonces used without qop (RFC 2069 style) have no nc and are not tracked:
/// they may be reused until stale, i.e. the replay window is the nonce
/// lifetime. [`Policy::allow_no_qop`] forbids them outright.
#[derive(Debug)]
pub struct NonceCounter {
    capacity: usize,
    map: HashMap<[u8; 16], NcEntry>,
    order: VecDeque<[u8; 16]>,
    evicted_floor: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct NcEntry {
    last_nc: u32,
    issued_at: u64,
}

impl NonceCounter {
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// `capacity` is clamped to at least 1.
    pub fn new(capacity: usize) -> Self {
        NonceCounter {
            capacity: capacity.max(1),
            map: HashMap::new(),
            order: VecDeque::new(),
            evicted_floor: None,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn key(nonce: &str) -> [u8; 16] {
        let d = Sha256::digest(nonce.as_bytes());
        let mut k = [0u8; 16];
        k.copy_from_slice(&d[..16]);
        k
    }

    /// True only if `nc` is strictly greater than every nc seen with `nonce`
    /// (so nc 0 is never accepted); records it when true. `issued_at` comes
    /// from [`NonceCheck::Valid`].
    pub fn check_and_record(&mut self, nonce: &str, issued_at: u64, nc: u32) -> bool {
        let key = Self::key(nonce);
        if let Some(e) = self.map.get_mut(&key) {
            if nc > e.last_nc {
                e.last_nc = nc;
                return true;
            }
            return false;
        }
        if nc == 0 || self.evicted_floor.is_some_and(|f| issued_at <= f) {
            return false;
        }
        while self.map.len() >= self.capacity {
            let Some(old) = self.order.pop_front() else {
                break; // map and order are kept in step; defensive only
            };
            if let Some(e) = self.map.remove(&old) {
                let f = self.evicted_floor.get_or_insert(e.issued_at);
                *f = (*f).max(e.issued_at);
            }
        }
        self.map.insert(
            key,
            NcEntry {
                last_nc: nc,
                issued_at,
            },
        );
        self.order.push_back(key);
        true
    }
}

// ---------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------

/// Checks `creds.response` against `ha1` (lowercase or uppercase hex HA1 for
/// `creds.algorithm`). Uses `creds.uri` as hashed by the client. Constant-time
/// comparison. False for `qop=auth-int`, malformed HA1 or response.
pub fn verify(creds: &Credentials<'_>, method: &str, ha1: &str) -> bool {
    let alg = creds.algorithm;
    let hex_len = alg.hex_len();
    if ha1.len() != hex_len {
        return false;
    }
    // HA1 is hashed as lowercase hex text (RFC 2617); normalise on the stack.
    let mut ha1_lc = [0u8; 64];
    for (o, b) in ha1_lc.iter_mut().zip(ha1.bytes()) {
        if !b.is_ascii_hexdigit() {
            return false;
        }
        *o = b.to_ascii_lowercase();
    }
    let qop = match creds.qop {
        None => None,
        Some(Qop::AuthInt) => return false,
        Some(Qop::Auth) => Some(()),
    };
    let nc_buf = nc_text(creds.nc.unwrap_or(0));
    let qop_in = match (qop, &creds.cnonce, creds.nc) {
        (None, _, _) => None,
        (Some(()), Some(cnonce), Some(_)) => Some(QopInput {
            nc: &nc_buf,
            cnonce,
        }),
        // Parser guarantees these; a hand-built value without them fails.
        (Some(()), _, _) => return false,
    };
    let expected = compute_response(
        alg,
        &ha1_lc[..hex_len],
        &creds.nonce,
        qop_in,
        method,
        &creds.uri,
    );
    let mut got = [0u8; 32];
    if !hex_decode(&creds.response, &mut got[..alg.output_len()]) {
        return false;
    }
    bool::from(expected.as_bytes().ct_eq(&got[..alg.output_len()]))
}

/// Why credentials were refused as unsupported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsupportedReason {
    /// Algorithm disabled by [`Policy`].
    Algorithm,
    /// `qop=auth-int`.
    QopAuthInt,
    /// No qop (RFC 2069 style) while [`Policy::allow_no_qop`] is false.
    QopRequired,
}

/// Outcome of [`Verifier::check`]. Everything but `Ok` → 401/407 with a fresh
/// challenge; `Stale` → that challenge carries `stale=true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Authenticated. `qop_absent`: RFC 2069-style answer whose nonce may be
    /// replayed until it goes stale.
    Ok {
        qop_absent: bool,
    },
    /// Correct response but expired nonce.
    Stale,
    /// Nonce not ours (bad MAC/format) or from the future.
    BadNonce,
    /// Correct response but nc not increasing for this nonce.
    Replay,
    /// `realm` differs from the one we challenged with.
    WrongRealm,
    /// Wrong password, unknown user, or malformed response.
    BadResponse,
    Unsupported(UnsupportedReason),
}

/// Server policy for [`Verifier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub allow_md5: bool,
    pub allow_sha256: bool,
    /// Accept RFC 2069-style answers (no qop/nc/cnonce). Their nonce can be
    /// replayed within its lifetime, so hardened deployments turn this off.
    pub allow_no_qop: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow_md5: true,
            allow_sha256: true,
            allow_no_qop: true,
        }
    }
}

impl Policy {
    pub fn allows(&self, alg: Algorithm) -> bool {
        match alg {
            Algorithm::Md5 => self.allow_md5,
            Algorithm::Sha256 => self.allow_sha256,
        }
    }
}

/// Combines nonce validation, policy, response and replay checks.
/// Debug is safe: the nonce secret is redacted.
#[derive(Debug, Clone)]
pub struct Verifier {
    nonces: NonceGen,
    policy: Policy,
}

impl Verifier {
    pub fn new(nonces: NonceGen, policy: Policy) -> Self {
        Verifier { nonces, policy }
    }

    pub fn nonces(&self) -> &NonceGen {
        &self.nonces
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Allowed algorithms in preference order (SHA-256 first, RFC 8760 §2.4).
    pub fn algorithms(&self) -> impl Iterator<Item = Algorithm> + '_ {
        [Algorithm::Sha256, Algorithm::Md5]
            .into_iter()
            .filter(|a| self.policy.allows(*a))
    }

    /// One challenge value per allowed algorithm, preferred first, sharing one
    /// fresh nonce; send each as its own WWW-/Proxy-Authenticate header.
    pub fn challenges(&self, realm: &str, now: u64, salt: [u8; 8], stale: bool) -> Vec<String> {
        let nonce = self.nonces.issue(now, salt);
        self.algorithms()
            .map(|a| challenge(a, realm, &nonce, stale, None))
            .collect()
    }

    /// Full server-side check. `realm` is the realm we challenge with; `ha1`
    /// is the user's HA1 for `creds.algorithm`, or `None` for an unknown user
    /// (a dummy hash is still computed so timing does not reveal which).
    ///
    /// Order: policy, realm, nonce MAC, response, staleness, replay. The
    /// response is checked before staleness (RFC 2617: only say stale when
    /// the digest was valid) and before nc is recorded, so forged requests
    /// cannot burn a legitimate client's nc or evict counter entries.
    pub fn check(
        &self,
        creds: &Credentials<'_>,
        method: &str,
        realm: &str,
        ha1: Option<&str>,
        now: u64,
        counter: &mut NonceCounter,
    ) -> AuthOutcome {
        if !self.policy.allows(creds.algorithm) {
            return AuthOutcome::Unsupported(UnsupportedReason::Algorithm);
        }
        match creds.qop {
            Some(Qop::AuthInt) => return AuthOutcome::Unsupported(UnsupportedReason::QopAuthInt),
            None if !self.policy.allow_no_qop => {
                return AuthOutcome::Unsupported(UnsupportedReason::QopRequired)
            }
            _ => {}
        }
        if creds.realm != realm {
            return AuthOutcome::WrongRealm;
        }
        let (issued_at, stale) = match self.nonces.check(&creds.nonce, now) {
            NonceCheck::Invalid => return AuthOutcome::BadNonce,
            NonceCheck::Stale => (0, true),
            NonceCheck::Valid { issued_at } => (issued_at, false),
        };
        let ok = match ha1 {
            Some(h) => verify(creds, method, h),
            None => {
                const DUMMY: &str =
                    "0000000000000000000000000000000000000000000000000000000000000000";
                let _ = verify(creds, method, &DUMMY[..creds.algorithm.hex_len()]);
                false
            }
        };
        if !ok {
            return AuthOutcome::BadResponse;
        }
        if stale {
            return AuthOutcome::Stale;
        }
        match (creds.qop, creds.nc) {
            (Some(_), Some(nc)) => {
                if !counter.check_and_record(&creds.nonce, issued_at, nc) {
                    return AuthOutcome::Replay;
                }
                AuthOutcome::Ok { qop_absent: false }
            }
            _ => AuthOutcome::Ok { qop_absent: true },
        }
    }
}

// ---------------------------------------------------------------------------
// digest-uri policy
// ---------------------------------------------------------------------------

/// Iterates bytes with `%XX` escapes decoded; a malformed escape is literal.
fn pct_decoded(s: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let c = *s.get(i)?;
        if c == b'%' {
            if let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex_nibble),
                s.get(i + 2).copied().and_then(hex_nibble),
            ) {
                i += 3;
                return Some((h << 4) | l);
            }
        }
        i += 1;
        Some(c)
    })
}

fn eq_decoded(a: &[u8], b: &[u8], case_insensitive: bool) -> bool {
    let norm = |c: u8| {
        if case_insensitive {
            c.to_ascii_lowercase()
        } else {
            c
        }
    };
    pct_decoded(a).map(norm).eq(pct_decoded(b).map(norm))
}

/// Policy helper: does the credentials' digest-uri name the Request-URI?
/// Light normalisation without a URI parser: surrounding whitespace and `<>`
/// ignored, `%XX` decoded, scheme and host part (everything after `@`,
/// including port and params) case-insensitive, user part case-sensitive.
/// Parameter order is significant, so this can give false negatives; it is
/// an opt-in strictness check (SIPp, for one, hashes `sip:host:port`).
pub fn uri_matches_request(creds_uri: &str, request_uri: &str) -> bool {
    fn split(u: &str) -> Option<(&str, Option<&str>, &str)> {
        let u = u.trim();
        let u = u
            .strip_prefix('<')
            .and_then(|x| x.strip_suffix('>'))
            .unwrap_or(u);
        let (scheme, rest) = u.split_once(':')?;
        match rest.split_once('@') {
            Some((user, host)) => Some((scheme, Some(user), host)),
            None => Some((scheme, None, rest)),
        }
    }
    let (Some((sa, ua, ha)), Some((sb, ub, hb))) = (split(creds_uri), split(request_uri)) else {
        return false;
    };
    if !sa.eq_ignore_ascii_case(sb) {
        return false;
    }
    let users_eq = match (ua, ub) {
        (None, None) => true,
        (Some(a), Some(b)) => eq_decoded(a.as_bytes(), b.as_bytes(), false),
        _ => false,
    };
    users_eq && eq_decoded(ha.as_bytes(), hb.as_bytes(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC2617_AUTH: &str = r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;

    const RFC7616_SHA256: &str = r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;

    const SECRET: [u8; 32] = [7u8; 32];
    const REALM: &str = "example.test";

    #[test]
    fn rfc2617_example() {
        assert_eq!(
            ha1(
                Algorithm::Md5,
                "Mufasa",
                "testrealm@host.com",
                "Circle Of Life"
            ),
            "939e7578ed9e3c518a452acee763bce9"
        );
        let c = Credentials::parse(RFC2617_AUTH).unwrap();
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.qop, Some(Qop::Auth));
        assert_eq!(c.nc, Some(1));
        assert!(matches!(c.username, Cow::Borrowed(_)));
        let h = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert!(verify(&c, "GET", &h));
        assert!(verify(&c, "GET", &h.to_ascii_uppercase()));
        assert!(!verify(&c, "POST", &h));
        let wrong = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "circle of life",
        );
        assert!(!verify(&c, "GET", &wrong));
    }

    #[test]
    fn rfc7616_sha256_example() {
        let c = Credentials::parse(RFC7616_SHA256).unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
        let h = ha1(
            Algorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        assert!(verify(&c, "GET", &h));
        // Uppercase response hex is accepted too.
        let mut upper = c.clone();
        upper.response = Cow::Owned(c.response.to_ascii_uppercase());
        assert!(verify(&upper, "GET", &h));
        // An MD5 HA1 has the wrong length for SHA-256.
        let md5 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        assert!(!verify(&c, "GET", &md5));
    }

    #[test]
    fn rfc7616_md5_example() {
        let v = RFC7616_SHA256
            .replace("algorithm=SHA-256", "algorithm=MD5")
            .replace(
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
                "8ca523f5e9506fed4657c9700eebdbec",
            );
        let c = Credentials::parse(&v).unwrap();
        let h = ha1(
            Algorithm::Md5,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        assert!(verify(&c, "GET", &h));
    }

    #[test]
    fn algorithm_parsing() {
        assert_eq!(Algorithm::parse("md5"), Ok(Algorithm::Md5));
        assert_eq!(Algorithm::parse("sha-256"), Ok(Algorithm::Sha256));
        for bad in ["MD5-sess", "SHA-256-sess", "SHA-512-256", "", "SHA256"] {
            assert_eq!(
                Algorithm::parse(bad),
                Err(AuthParseError::UnsupportedAlgorithm)
            );
        }
        let v = RFC2617_AUTH.replace("qop=auth,", "algorithm=MD5-sess, qop=auth,");
        assert_eq!(
            Credentials::parse(&v),
            Err(AuthParseError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn hex_helpers() {
        assert_eq!(hex_encode(&[0x00, 0xab, 0xff]), "00abff");
        let mut out = [0u8; 3];
        assert!(hex_decode("00ABff", &mut out));
        assert_eq!(out, [0x00, 0xab, 0xff]);
        assert!(!hex_decode("00abf", &mut out));
        assert!(!hex_decode("00abfg", &mut out));
        assert!(!hex_decode("00abffff", &mut out));
    }

    #[test]
    fn parse_escapes_and_tokens() {
        let v = r#"dIgEsT  USERNAME = "a\"b\\c" ,realm="r",nonce=abc,uri="sip:x@y",response="00", nc="00000002", qop="auth", cnonce="c""#;
        let c = Credentials::parse(v).unwrap();
        assert_eq!(c.username, "a\"b\\c");
        assert!(matches!(c.username, Cow::Owned(_)));
        assert_eq!(c.nonce, "abc");
        assert!(matches!(c.realm, Cow::Borrowed("r")));
        assert_eq!(c.nc, Some(2));
        // Non-ASCII UTF-8 in quoted strings passes through.
        let c = Credentials::parse(
            "Digest username=\"j\u{f6}rg\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\"",
        )
        .unwrap();
        assert_eq!(c.username, "j\u{f6}rg");
        assert_eq!(c.qop, None);
        assert_eq!(c.algorithm, Algorithm::Md5);
    }

    #[test]
    fn parse_rejections() {
        use AuthParseError::*;
        let base = r#"username="u", realm="r", nonce="n", uri="sip:a", response="00""#;
        let ok = format!("Digest {base}");
        assert!(Credentials::parse(&ok).is_ok());
        let cases: Vec<(String, AuthParseError)> = vec![
            ("Basic dXNlcjpwYXNz".into(), UnsupportedScheme),
            (
                "NoOneKnowsThisScheme opaque-data=here".into(),
                UnsupportedScheme,
            ),
            ("".into(), Malformed),
            ("   ".into(), Malformed),
            ("\"Digest\" x=y".into(), Malformed),
            ("Digest".into(), MissingParam("username")),
            (format!("Digest {base}, username=\"v\""), DuplicateParam),
            (format!("Digest {base}, Realm=\"v\""), DuplicateParam),
            (format!("Digest {base}, foo=1, foo=2"), DuplicateParam),
            (format!("Digest {base},"), Malformed),
            (format!("Digest {base},, a=b"), Malformed),
            (format!("Digest {base} a=b"), Malformed),
            (format!("Digest {base}, a="), Malformed),
            (format!("Digest {base}, a"), Malformed),
            (format!("Digest {base}, a=\"unterminated"), Malformed),
            (format!("Digest {base}, a=\"x\\"), Malformed),
            (format!("Digest {base}, a=\"x\ry\""), Malformed),
            (format!("Digest {base}, a=\"x\\\ny\""), Malformed),
            (format!("Digest {base}, a=sip:x"), Malformed),
            (format!("Digest {base}, qop=auth"), MissingParam("cnonce")),
            (
                format!("Digest {base}, qop=auth, cnonce=\"c\""),
                MissingParam("nc"),
            ),
            (format!("Digest {base}, qop=bogus"), UnsupportedQop),
            (format!("Digest {base}, nc=1"), BadNonceCount),
            (format!("Digest {base}, nc=0000000A"), BadNonceCount),
            (format!("Digest {base}, nc=000000001"), BadNonceCount),
            (format!("Digest {base}, nc=0000000g"), BadNonceCount),
            (
                "Digest realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\"".into(),
                MissingParam("username"),
            ),
            (
                "Digest username=\"u\", realm=\"r\", nonce=\"n\", response=\"x\"".into(),
                MissingParam("uri"),
            ),
            (
                "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\"".into(),
                MissingParam("response"),
            ),
            (
                format!(
                    "Digest {base}, x=\"{}\"",
                    "a".repeat(MAX_PARAM_VALUE_LEN + 1)
                ),
                ValueTooLong,
            ),
            (
                format!("Digest {base}, x={}", "a".repeat(MAX_PARAM_VALUE_LEN + 1)),
                ValueTooLong,
            ),
            (
                format!("Digest {base}, x=\"{}\"", "a".repeat(MAX_HEADER_VALUE_LEN)),
                TooLong,
            ),
            (
                format!(
                    "Digest {base}{}",
                    (0..MAX_PARAMS - 4)
                        .map(|i| format!(", p{i}=v"))
                        .collect::<String>()
                ),
                TooManyParams,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Credentials::parse(&input), Err(want), "input: {input:?}");
        }
        // Exactly MAX_PARAMS is fine; value of exactly MAX_PARAM_VALUE_LEN too.
        let at_cap = format!(
            "Digest {base}{}",
            (0..MAX_PARAMS - 5)
                .map(|i| format!(", p{i}=v"))
                .collect::<String>()
        );
        assert!(Credentials::parse(&at_cap).is_ok());
        let long = format!("Digest {base}, x=\"{}\"", "a".repeat(MAX_PARAM_VALUE_LEN));
        assert!(Credentials::parse(&long).is_ok());
        // userhash is ignored.
        assert!(Credentials::parse(&format!("Digest {base}, userhash=true")).is_ok());
    }

    #[test]
    fn parse_never_panics_on_mutations() {
        // Every truncation and every single-byte substitution with interesting
        // bytes: must return (Ok or Err), never panic.
        let src = RFC2617_AUTH.as_bytes();
        let subs = [
            b'"', b'\\', b',', b'=', b' ', b'\r', 0u8, 0x7f, b'a', 0xc3, 0xff,
        ];
        for cut in 0..=src.len() {
            if let Ok(s) = std::str::from_utf8(&src[..cut]) {
                let _ = Credentials::parse(s);
                let _ = Challenge::parse(s);
            }
        }
        let mut parsed = 0;
        for i in 0..src.len() {
            for &s in &subs {
                let mut m = src.to_vec();
                m[i] = s;
                if let Ok(s) = std::str::from_utf8(&m) {
                    if Credentials::parse(s).is_ok() {
                        parsed += 1;
                    }
                    let _ = Challenge::parse(s);
                }
            }
        }
        // Some mutations (inside quoted values) must still parse.
        assert!(parsed > 0);
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = Credentials::parse(RFC2617_AUTH).unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("6629fae4"), "{d}");
        assert!(d.contains("Mufasa"));
        let g = NonceGen::new([0xab; 32]);
        let d = format!("{g:?}");
        assert!(
            !d.contains("171") && !d.contains("ab, ab") && !d.contains("abab"),
            "{d}"
        );
        let v = Verifier::new(g, Policy::default());
        assert!(format!("{v:?}").contains("<redacted>"));
        // Errors never carry input.
        let e = Credentials::parse(&RFC2617_AUTH.replace("qop=auth", "qop=zzz")).unwrap_err();
        assert!(!format!("{e:?} {e}").contains("6629fae4"));
    }

    #[test]
    fn hmac_padded_key_equals_plain_key() {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&SECRET).unwrap();
        Mac::update(&mut m, NONCE_DOMAIN);
        Mac::update(&mut m, &[1u8; 16]);
        let plain = m.finalize().into_bytes();
        let g = NonceGen::new(SECRET);
        assert_eq!(g.tag(&[1u8; 16]), plain[..16]);
    }

    #[test]
    fn nonce_lifecycle() {
        let g = NonceGen::new(SECRET);
        let now = 1_700_000_000;
        let n = g.issue(now, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(n.len(), NONCE_LEN);
        assert!(n.starts_with(&hex_encode(&now.to_be_bytes())));
        assert_eq!(g.check(&n, now), NonceCheck::Valid { issued_at: now });
        assert_eq!(g.check(&n, now + 300), NonceCheck::Valid { issued_at: now });
        assert_eq!(g.check(&n, now + 301), NonceCheck::Stale);
        // Within skew ahead is fine, beyond is not.
        assert_eq!(g.check(&n, now - 5), NonceCheck::Valid { issued_at: now });
        assert_eq!(g.check(&n, now - 6), NonceCheck::Invalid);
        let short = g.clone().with_lifetime(10);
        assert_eq!(short.lifetime(), 10);
        assert_eq!(short.check(&n, now + 11), NonceCheck::Stale);
        let no_skew = g.clone().with_max_skew(0);
        assert_eq!(no_skew.check(&n, now - 1), NonceCheck::Invalid);
        // Different salt → different nonce; other secret → invalid.
        assert_ne!(n, g.issue(now, [0; 8]));
        assert_eq!(NonceGen::new([8; 32]).check(&n, now), NonceCheck::Invalid);
    }

    #[test]
    fn nonce_tampering_invalid() {
        let g = NonceGen::new(SECRET);
        let now = 1_000_000;
        let n = g.issue(now, [9; 8]);
        // Flip each hex char: timestamp, salt or tag change must all fail.
        for i in 0..n.len() {
            let mut b = n.clone().into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let t = String::from_utf8(b).unwrap();
            assert_eq!(g.check(&t, now), NonceCheck::Invalid, "pos {i}");
        }
        assert_eq!(g.check(&n.to_ascii_uppercase(), now), NonceCheck::Invalid);
        assert_eq!(g.check(&n[..63], now), NonceCheck::Invalid);
        assert_eq!(g.check(&format!("{n}0"), now), NonceCheck::Invalid);
        assert_eq!(g.check("", now), NonceCheck::Invalid);
        assert_eq!(g.check(&"z".repeat(64), now), NonceCheck::Invalid);
        // Forged future timestamp with a made-up tag.
        let forged = format!("{}{}", hex_encode(&u64::MAX.to_be_bytes()), &n[16..]);
        assert_eq!(g.check(&forged, now), NonceCheck::Invalid);
        // Genuine nonce stamped far in the future (e.g. node clock ahead).
        let fut = g.issue(now + 3600, [9; 8]);
        assert_eq!(g.check(&fut, now), NonceCheck::Invalid);
        // Extreme values must not overflow.
        let max = g.issue(u64::MAX, [0; 8]);
        assert_eq!(
            g.check(&max, u64::MAX),
            NonceCheck::Valid {
                issued_at: u64::MAX
            }
        );
        assert_eq!(g.check(&max, 0), NonceCheck::Invalid);
    }

    #[test]
    fn nonce_counter_replay() {
        let mut c = NonceCounter::new(10);
        assert!(c.is_empty());
        assert!(!c.check_and_record("a", 100, 0));
        assert!(c.check_and_record("a", 100, 1));
        assert!(!c.check_and_record("a", 100, 1));
        assert!(c.check_and_record("a", 100, 2));
        assert!(c.check_and_record("a", 100, 5));
        assert!(!c.check_and_record("a", 100, 4));
        assert!(!c.check_and_record("a", 100, 5));
        // Other nonces are independent; first use may start above 1.
        assert!(c.check_and_record("b", 100, 3));
        assert!(c.check_and_record("a", 100, u32::MAX));
        assert!(!c.check_and_record("a", 100, u32::MAX));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn nonce_counter_capacity_bound() {
        let cap = 64;
        let mut c = NonceCounter::new(cap);
        assert_eq!(c.capacity(), cap);
        for i in 0..1000u64 {
            assert!(c.check_and_record(&format!("n{i}"), i, 1));
            assert!(c.len() <= cap);
            assert!(c.order.len() <= cap);
        }
        assert_eq!(c.len(), cap);
        // Recent nonces are still tracked.
        assert!(!c.check_and_record("n999", 999, 1));
        assert!(c.check_and_record("n999", 999, 2));
        // An evicted nonce cannot be replayed from nc 1 …
        assert!(!c.check_and_record("n0", 0, 1));
        assert!(!c.check_and_record("n900", 900, 7));
        // … while a nonce issued after the newest evicted one is accepted.
        assert!(c.check_and_record("fresh", 2000, 1));
        assert_eq!(c.len(), cap);
        assert_eq!(NonceCounter::new(0).capacity(), 1);
    }

    fn verifier() -> Verifier {
        Verifier::new(NonceGen::new(SECRET), Policy::default())
    }

    fn fresh_auth(v: &Verifier, alg: Algorithm, now: u64, nc: u32) -> (String, String) {
        let nonce = v.nonces().issue(now, [3; 8]);
        let ch = challenge(alg, REALM, &nonce, false, None);
        let parsed = Challenge::parse(&ch).unwrap();
        let auth = client_authorization(
            &parsed,
            "REGISTER",
            "sip:example.test",
            "alice",
            "s3cret",
            "deadbeef",
            nc,
        )
        .unwrap();
        (auth, ha1(alg, "alice", REALM, "s3cret"))
    }

    #[test]
    fn client_round_trip_both_algorithms() {
        let v = verifier();
        let now = 50_000;
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let (auth, h) = fresh_auth(&v, alg, now, 1);
            let c = Credentials::parse(&auth).unwrap();
            assert_eq!(c.algorithm, alg);
            assert_eq!(c.qop, Some(Qop::Auth));
            assert_eq!(c.nc, Some(1));
            assert_eq!(c.response.len(), alg.hex_len());
            assert!(verify(&c, "REGISTER", &h));
            assert!(!verify(&c, "INVITE", &h));
            let mut ctr = NonceCounter::new(16);
            assert_eq!(
                v.check(&c, "REGISTER", REALM, Some(&h), now + 1, &mut ctr),
                AuthOutcome::Ok { qop_absent: false }
            );
            assert_eq!(
                v.check(&c, "REGISTER", REALM, Some(&h), now + 2, &mut ctr),
                AuthOutcome::Replay
            );
        }
    }

    #[test]
    fn client_escapes_and_opaque_round_trip() {
        let ch = Challenge::parse(
            r#"Digest realm="we \"quote\"", nonce="abc", opaque="op\\aque", qop="auth-int, auth", algorithm=sha-256, stale=TRUE, domain="sip:x""#,
        )
        .unwrap();
        assert_eq!(ch.realm, "we \"quote\"");
        assert_eq!(ch.opaque.as_deref(), Some("op\\aque"));
        assert_eq!(
            ch.qop,
            QopOptions {
                auth: true,
                auth_int: true
            }
        );
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        assert!(ch.stale);
        let auth =
            client_authorization(&ch, "INVITE", "sip:b@c", "a\"b", "pw", "cn", 0x1a).unwrap();
        assert!(auth.contains("nc=0000001a"), "{auth}");
        let c = Credentials::parse(&auth).unwrap();
        assert_eq!(c.username, "a\"b");
        assert_eq!(c.realm, "we \"quote\"");
        assert_eq!(c.opaque.as_deref(), Some("op\\aque"));
        assert_eq!(c.nc, Some(0x1a));
        assert!(verify(
            &c,
            "INVITE",
            &ha1(Algorithm::Sha256, "a\"b", "we \"quote\"", "pw")
        ));
    }

    #[test]
    fn client_without_qop_and_auth_int_only() {
        let ch = Challenge::parse(r#"Digest realm="r", nonce="n""#).unwrap();
        assert_eq!(ch.qop, QopOptions::default());
        assert!(!ch.stale);
        let auth = client_authorization(&ch, "REGISTER", "sip:r", "u", "p", "c", 1).unwrap();
        assert!(!auth.contains("qop") && !auth.contains("cnonce") && !auth.contains("nc="));
        let c = Credentials::parse(&auth).unwrap();
        assert!(verify(&c, "REGISTER", &ha1(Algorithm::Md5, "u", "r", "p")));
        let ch = Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-int""#).unwrap();
        assert_eq!(
            client_authorization(&ch, "REGISTER", "sip:r", "u", "p", "c", 1),
            Err(AuthParseError::UnsupportedQop)
        );
        assert_eq!(
            Challenge::parse(r#"Digest nonce="n""#),
            Err(AuthParseError::MissingParam("realm"))
        );
        assert_eq!(
            Challenge::parse(r#"Digest realm="r""#),
            Err(AuthParseError::MissingParam("nonce"))
        );
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=MD5-sess"#),
            Err(AuthParseError::UnsupportedAlgorithm)
        );
        assert_eq!(
            Challenge::parse("Basic realm=\"r\""),
            Err(AuthParseError::UnsupportedScheme)
        );
    }

    #[test]
    fn challenge_formatting() {
        let a = challenge(Algorithm::Md5, REALM, "abc", false, None);
        assert_eq!(
            a,
            r#"Digest realm="example.test", nonce="abc", algorithm=MD5, qop="auth""#
        );
        assert_eq!(a, challenge(Algorithm::Md5, REALM, "abc", false, None));
        assert_eq!(
            challenge(Algorithm::Sha256, "r\"\\\r\nx", "abc", true, Some("o")),
            r#"Digest realm="r\"\\x", nonce="abc", algorithm=SHA-256, qop="auth", opaque="o", stale=true"#
        );
        // Same inputs → same bytes, regardless of who asked (anti-enumeration).
        let v = verifier();
        let one = v.challenges(REALM, 42, [5; 8], false);
        let two = v.challenges(REALM, 42, [5; 8], false);
        assert_eq!(one, two);
        assert_eq!(one.len(), 2);
        assert!(one[0].contains("algorithm=SHA-256") && one[1].contains("algorithm=MD5"));
        let parsed = Challenge::parse(&one[0]).unwrap();
        assert_eq!(parsed.nonce, Challenge::parse(&one[1]).unwrap().nonce);
        assert_eq!(
            v.nonces().check(&parsed.nonce, 42),
            NonceCheck::Valid { issued_at: 42 }
        );
        let stale = v.challenges(REALM, 42, [5; 8], true);
        assert!(stale.iter().all(|c| c.ends_with(", stale=true")));
        let md5_only = Verifier::new(
            NonceGen::new(SECRET),
            Policy {
                allow_sha256: false,
                ..Policy::default()
            },
        );
        assert_eq!(md5_only.challenges(REALM, 42, [5; 8], false).len(), 1);
    }

    #[test]
    fn verifier_outcomes() {
        let v = verifier();
        let now = 10_000;
        let (auth, h) = fresh_auth(&v, Algorithm::Sha256, now, 1);
        let c = Credentials::parse(&auth).unwrap();
        let mut ctr = NonceCounter::new(16);

        // Wrong password / unknown user → BadResponse, and no nc is burnt.
        let wrong = ha1(Algorithm::Sha256, "alice", REALM, "nope");
        assert_eq!(
            v.check(&c, "REGISTER", REALM, Some(&wrong), now, &mut ctr),
            AuthOutcome::BadResponse
        );
        assert_eq!(
            v.check(&c, "REGISTER", REALM, None, now, &mut ctr),
            AuthOutcome::BadResponse
        );
        assert!(ctr.is_empty());
        assert_eq!(
            v.check(&c, "REGISTER", "other.test", Some(&h), now, &mut ctr),
            AuthOutcome::WrongRealm
        );

        // Stale only when the response is right; wrong response on a stale nonce is BadResponse.
        let later = now + NonceGen::DEFAULT_LIFETIME + 1;
        assert_eq!(
            v.check(&c, "REGISTER", REALM, Some(&h), later, &mut ctr),
            AuthOutcome::Stale
        );
        assert_eq!(
            v.check(&c, "REGISTER", REALM, Some(&wrong), later, &mut ctr),
            AuthOutcome::BadResponse
        );

        // Nonce not ours.
        let mut forged = c.clone();
        forged.nonce = Cow::Owned(NonceGen::new([1; 32]).issue(now, [3; 8]));
        assert_eq!(
            v.check(&forged, "REGISTER", REALM, Some(&h), now, &mut ctr),
            AuthOutcome::BadNonce
        );

        assert_eq!(
            v.check(&c, "REGISTER", REALM, Some(&h), now, &mut ctr),
            AuthOutcome::Ok { qop_absent: false }
        );
        assert_eq!(
            v.check(&c, "REGISTER", REALM, Some(&h), now, &mut ctr),
            AuthOutcome::Replay
        );
        // Next nc on the same nonce is fine.
        let (auth2, _) = fresh_auth(&v, Algorithm::Sha256, now, 2);
        let c2 = Credentials::parse(&auth2).unwrap();
        assert_eq!(c2.nonce, c.nonce);
        assert_eq!(
            v.check(&c2, "REGISTER", REALM, Some(&h), now, &mut ctr),
            AuthOutcome::Ok { qop_absent: false }
        );

        // auth-int is refused before anything else.
        let mut ai = c.clone();
        ai.qop = Some(Qop::AuthInt);
        assert!(!verify(&ai, "REGISTER", &h));
        assert_eq!(
            v.check(&ai, "REGISTER", REALM, Some(&h), now, &mut ctr),
            AuthOutcome::Unsupported(UnsupportedReason::QopAuthInt)
        );
        // Disabled algorithm.
        let sha_off = Verifier::new(
            NonceGen::new(SECRET),
            Policy {
                allow_sha256: false,
                ..Policy::default()
            },
        );
        assert_eq!(
            sha_off.check(&c, "REGISTER", REALM, Some(&h), now, &mut ctr),
            AuthOutcome::Unsupported(UnsupportedReason::Algorithm)
        );
    }

    #[test]
    fn verifier_no_qop_policy() {
        let v = verifier();
        let now = 777;
        let nonce = v.nonces().issue(now, [1; 8]);
        let ch_text = format!(r#"Digest realm="{REALM}", nonce="{nonce}""#);
        let ch = Challenge::parse(&ch_text).unwrap();
        let auth =
            client_authorization(&ch, "REGISTER", "sip:example.test", "bob", "pw", "x", 1).unwrap();
        let c = Credentials::parse(&auth).unwrap();
        let h = ha1(Algorithm::Md5, "bob", REALM, "pw");
        let mut ctr = NonceCounter::new(4);
        // Reusable until stale (documented replay window), nothing tracked.
        for _ in 0..3 {
            assert_eq!(
                v.check(&c, "REGISTER", REALM, Some(&h), now, &mut ctr),
                AuthOutcome::Ok { qop_absent: true }
            );
        }
        assert!(ctr.is_empty());
        assert_eq!(
            v.check(&c, "REGISTER", REALM, Some(&h), now + 1000, &mut ctr),
            AuthOutcome::Stale
        );
        let strict = Verifier::new(
            NonceGen::new(SECRET),
            Policy {
                allow_no_qop: false,
                ..Policy::default()
            },
        );
        assert_eq!(
            strict.check(&c, "REGISTER", REALM, Some(&h), now, &mut ctr),
            AuthOutcome::Unsupported(UnsupportedReason::QopRequired)
        );
    }

    #[test]
    fn verify_rejects_malformed_inputs() {
        let c = Credentials::parse(RFC2617_AUTH).unwrap();
        let h = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert!(!verify(&c, "GET", ""));
        assert!(!verify(&c, "GET", &h[..31]));
        assert!(!verify(&c, "GET", &format!("{}z", &h[..31])));
        let mut r = c.clone();
        r.response = Cow::Borrowed("6629fae49393a05397450978507c4ef");
        assert!(!verify(&r, "GET", &h));
        r.response = Cow::Borrowed("6629fae49393a05397450978507c4ef1ff");
        assert!(!verify(&r, "GET", &h));
        r.response = Cow::Borrowed("6629fae49393a05397450978507c4efx");
        assert!(!verify(&r, "GET", &h));
        let mut no_cnonce = c.clone();
        no_cnonce.cnonce = None;
        assert!(!verify(&no_cnonce, "GET", &h));
        // The uri hashed is the one in the credentials, not something else.
        let mut other_uri = c.clone();
        other_uri.uri = Cow::Borrowed("/dir/other.html");
        assert!(!verify(&other_uri, "GET", &h));
    }

    #[test]
    fn uri_policy_helper() {
        assert!(uri_matches_request(
            "sip:alice@Example.COM",
            "sip:alice@example.com"
        ));
        assert!(uri_matches_request(
            " <SIP:alice@example.com:5060;Transport=UDP> ",
            "sip:alice@example.com:5060;transport=udp"
        ));
        assert!(uri_matches_request(
            "sip:%61lice@example.com",
            "sip:alice@example.com"
        ));
        assert!(!uri_matches_request(
            "sip:Alice@example.com",
            "sip:alice@example.com"
        ));
        assert!(!uri_matches_request(
            "sips:alice@example.com",
            "sip:alice@example.com"
        ));
        // SIPp style digest uri vs Request-URI.
        assert!(!uri_matches_request(
            "sip:192.0.2.1:5060",
            "sip:service@192.0.2.1:5060"
        ));
        assert!(uri_matches_request(
            "sip:192.0.2.1:5060",
            "sip:192.0.2.1:5060"
        ));
        assert!(!uri_matches_request(
            "sip:example.com",
            "sip:example.com:5060"
        ));
        assert!(!uri_matches_request("garbage", "garbage"));
        assert!(uri_matches_request("sip:a%zz", "sip:a%zz"));
    }
}
