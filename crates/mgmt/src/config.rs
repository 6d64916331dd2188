//! The typed configuration model and its validation.
//!
//! The file is parsed into a `toml::Table` and walked by a small validating
//! reader instead of `#[serde(deny_unknown_fields)]`: serde stops at the
//! first problem, while an operator wants every problem, each with its key
//! path, in one go. Every key the reader consumes is removed from its table,
//! so whatever is left over is an unknown key (typos are errors, not silently
//! ignored settings).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use toml::{Table, Value};

pub use sip::Limits;

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

/// The whole validated configuration. Only ever constructed by
/// [`Config::parse`] / [`Config::load`], so every value in it has passed
/// validation, including the cross-field checks.
#[derive(Debug, Clone)]
pub struct Config {
    pub sip: SipConfig,
    pub storage: StorageConfig,
    pub registrar: RegistrarConfig,
    /// Parser and connection limits; `[limits]` overrides `Limits::default()`.
    pub limits: Limits,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub shield: ShieldSection,
    pub media: MediaSection,
    /// `[firewall]`, with the SIP listeners and the relay range filled in
    /// from `[sip]` and `[media]`.
    pub firewall: shield::firewall::FirewallConfig,
    pub extensions: Vec<ExtensionConfig>,
}

/// `[media]`: the RTP relay, call records and the media applications.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaSection {
    /// Anchor the RTP of every call (NAT traversal, statistics, MOS).
    pub enabled: bool,
    pub relay: media::RelayConfig,
    /// The relay's address in SDP; `None`: the address of the SIP
    /// listener the call came in on.
    pub address: Option<IpAddr>,
    /// Numbers answered by the echo test.
    pub echo: Vec<String>,
    pub announcements: Vec<Announcement>,
    /// Call records kept (the oldest go first).
    pub cdr_keep: u64,
}

/// `[[media.announcements]]`: a number that plays a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub number: String,
    /// Resolved against the config file's directory.
    pub file: PathBuf,
    /// Play it again and again; false: once, then hang up.
    pub looped: bool,
}

/// `[shield]`: the intrusion-prevention settings, plus where the country
/// blocklists come from (read at start-up, see `blocked_countries`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShieldSection {
    pub config: shield::ShieldConfig,
    /// Two-letter country codes whose `<cc>.zone` files (ipdeny format,
    /// IPv4 and IPv6 prefixes) are blocked; lowercase.
    pub blocked_countries: Vec<String>,
    /// Directory of the zone files, resolved against the config file's.
    pub zone_dir: PathBuf,
    /// Host names in `shield.trusted` (providers): resolved at start and
    /// every few minutes; a failed lookup keeps the last addresses.
    pub trusted_hosts: Vec<String>,
    /// Program given each incident report (JSON) on its standard input.
    pub notify_command: Option<PathBuf>,
    /// `http://` URL each incident report (JSON) is POSTed to.
    pub notify_url: Option<String>,
}

impl ShieldSection {
    /// The zone file of each blocked country, in order.
    pub fn zone_files(&self) -> Vec<PathBuf> {
        self.blocked_countries
            .iter()
            .map(|cc| self.zone_dir.join(format!("{cc}.zone")))
            .collect()
    }
}

/// `[sip]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipConfig {
    /// At least one, no duplicates.
    pub listen: Vec<Listen>,
    /// SIP domain, also the digest realm. A bare host: no scheme, no port.
    pub domain: String,
    /// Challenges are offered in this order; at least one, no duplicates.
    pub auth_algorithms: Vec<DigestAlgorithm>,
    /// Whether the digest `uri` parameter must equal the Request-URI.
    pub strict_digest_uri: bool,
    pub nonce_lifetime_secs: u64,
    /// Whether to send a Server / User-Agent header (off: no fingerprinting).
    pub server_header: bool,
    /// RFC 3261 timer T1 (RTT estimate).
    pub t1_ms: u64,
    /// RFC 3261 timer T2 (maximum retransmit interval); `t2_ms >= t1_ms`.
    pub t2_ms: u64,
    /// RFC 3261 timer T4 (maximum time a message stays in the network).
    pub t4_ms: u64,
}

impl SipConfig {
    pub fn nonce_lifetime(&self) -> Duration {
        Duration::from_secs(self.nonce_lifetime_secs)
    }
    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.t1_ms)
    }
    pub fn t2(&self) -> Duration {
        Duration::from_millis(self.t2_ms)
    }
    pub fn t4(&self) -> Duration {
        Duration::from_millis(self.t4_ms)
    }
}

/// One `sip.listen` entry: `"udp:HOST:PORT"` or `"tcp:HOST:PORT"`, with an
/// IPv4 address or a bracketed IPv6 address as HOST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Listen {
    pub transport: Transport,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Listen {
    /// The same form the config file uses, so it round-trips.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

/// Why a `sip.listen` entry was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenParseError {
    #[error("expected \"udp:HOST:PORT\" or \"tcp:HOST:PORT\", got {0:?}")]
    Format(String),
    #[error("unsupported transport {0:?} (expected udp or tcp)")]
    UnsupportedTransport(String),
    #[error(
        "expected an IP address and port after \"{transport}:\" \
         (e.g. \"{transport}:127.0.0.1:5060\" or \"{transport}:[::1]:5060\"), got {addr:?}"
    )]
    Address { transport: Transport, addr: String },
}

impl FromStr for Listen {
    type Err = ListenParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((transport, addr)) = s.split_once(':') else {
            return Err(ListenParseError::Format(clip(s)));
        };
        let transport = if transport.eq_ignore_ascii_case("udp") {
            Transport::Udp
        } else if transport.eq_ignore_ascii_case("tcp") {
            Transport::Tcp
        } else if !transport.is_empty() && transport.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(ListenParseError::UnsupportedTransport(clip(transport)));
        } else {
            return Err(ListenParseError::Format(clip(s)));
        };
        // Host names are refused on purpose: a bind address must be an IP,
        // and resolving names at startup would make binding depend on DNS.
        let addr = addr
            .parse::<SocketAddr>()
            .map_err(|_| ListenParseError::Address {
                transport,
                addr: clip(addr),
            })?;
        Ok(Listen { transport, addr })
    }
}

/// Digest algorithms a challenge can offer (RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    Md5,
    Sha256,
}

impl DigestAlgorithm {
    /// The token used in the config file and in the `algorithm=` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// SQLite database file. Already resolved against the config file's
    /// directory when it was relative.
    pub path: PathBuf,
}

/// `[registrar]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Shorter requested expirations get 423 Interval Too Brief.
    pub min_expires: u32,
    /// Longer requested expirations are shortened to this.
    pub max_expires: u32,
    /// Used when a REGISTER carries no expiration at all.
    pub default_expires: u32,
    /// Bindings kept per address-of-record.
    pub max_contacts_per_user: u32,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts_per_user: 10,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Must be set to listen on a non-loopback address: metrics reveal
    /// traffic patterns and should not be reachable by accident.
    pub allow_remote: bool,
}

impl MetricsConfig {
    /// The address to serve `/metrics` on, or `None` when disabled.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.enabled.then_some(self.listen)
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9099),
            allow_remote: false,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogConfig {
    pub level: LogLevel,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// Lower-case name, as accepted by `tracing` level filters.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Only text for now: JSON output would need `tracing-subscriber`'s `json`
/// feature (and serde_json) in the binary. The key exists so adding JSON
/// later does not change the file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
}

/// One `[[extensions]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionConfig {
    /// A SIP user token; unique across extensions (compared case-sensitively,
    /// like the user part of a SIP URI).
    pub user: String,
    pub credential: Credential,
}

/// How an extension authenticates. HA1 = H(user ":" realm ":" password) with
/// realm = `sip.domain`, so changing the domain invalidates stored HA1s.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Password(String),
    /// Lower-case hex. Each algorithm in `sip.auth_algorithms` has its HA1
    /// here (validated), because the challenge must not depend on the user.
    Ha1 {
        md5: Option<String>,
        sha256: Option<String>,
    },
}

impl fmt::Debug for Credential {
    /// Redacted: a password, and equally an HA1 (which is password-equivalent
    /// for digest authentication), must never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const R: &str = "<redacted>";
        match self {
            Credential::Password(_) => f.debug_tuple("Password").field(&R).finish(),
            Credential::Ha1 { md5, sha256 } => f
                .debug_struct("Ha1")
                .field("md5", &md5.as_ref().map(|_| R))
                .field("sha256", &sha256.as_ref().map(|_| R))
                .finish(),
        }
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Key path such as `sip.listen[1]` or `extensions[2].password`; for a
    /// TOML syntax error `line L, column C`; for an unreadable file its path.
    pub path: String,
    pub message: String,
}

/// Every problem found, in file-section order. `Display` lists one per line,
/// meant to be shown to the operator as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", join_lines(.errors))]
pub struct ConfigErrors {
    /// Never empty.
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// Process exit code for an invalid configuration (sysexits-like:
    /// distinct from 1 = runtime failure).
    pub const EXIT_CODE: u8 = 2;

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }
}

fn join_lines(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

impl Config {
    /// Reads and validates the file at `path`; a relative `storage.path` is
    /// resolved against the file's directory (made absolute, so a later
    /// change of working directory does not move the database).
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigErrors> {
        let path = path.as_ref();
        let io_err = |e: std::io::Error| ConfigErrors {
            errors: vec![ConfigError {
                path: path.display().to_string(),
                message: format!("cannot read config file: {e}"),
            }],
        };
        let text = std::fs::read_to_string(path).map_err(io_err)?;
        let abs = std::path::absolute(path).map_err(io_err)?;
        let base = abs.parent().unwrap_or(Path::new("/"));
        Config::parse(&text, base)
    }

    /// Validates `text`; relative paths are resolved against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
        let table: Table = text.parse().map_err(|e: toml::de::Error| {
            let path = match e.span() {
                Some(span) => line_col(text, span.start),
                None => "config".to_owned(),
            };
            ConfigErrors {
                errors: vec![ConfigError {
                    path,
                    message: format!("TOML syntax error: {}", e.message().trim_end()),
                }],
            }
        })?;
        let mut errs = Errors::default();
        let config = read_config(table, base_dir, &mut errs);
        if errs.0.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors { errors: errs.0 })
        }
    }
}

fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("line {line}, column {column}")
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn read_config(table: Table, base_dir: &Path, errs: &mut Errors) -> Config {
    let mut top = Section::new(String::new(), table);

    let sip = read_sip(top.section(errs, "sip", true), errs);
    let storage = read_storage(top.section(errs, "storage", false), base_dir, errs);
    let registrar = read_registrar(top.section(errs, "registrar", false), errs);
    let limits = read_limits(top.section(errs, "limits", false), errs);
    let metrics = read_metrics(top.section(errs, "metrics", false), errs);
    let log = read_log(top.section(errs, "log", false), errs);
    let shield = read_shield(top.section(errs, "shield", false), base_dir, errs);
    let media = read_media(top.section(errs, "media", false), base_dir, errs);
    let mut firewall = read_firewall(top.section(errs, "firewall", false), errs);
    firewall.sip = sip
        .listen
        .iter()
        .flatten()
        .map(|l| {
            let proto = match l.transport {
                Transport::Udp => shield::firewall::Proto::Udp,
                Transport::Tcp => shield::firewall::Proto::Tcp,
            };
            (proto, l.addr.port())
        })
        .collect();
    firewall.rtp = media.enabled.then_some(media.relay.port_range);
    let extensions = read_extensions(&mut top, sip.auth_algorithms.as_deref(), errs);

    // A TCP SIP listener and the metrics endpoint on the same socket address
    // would fail at bind time with a less helpful message; catch it here.
    if let (Some(listen), Some(m)) = (&sip.listen, &metrics) {
        if m.enabled && m.listen.port() != 0 {
            for (i, l) in listen.iter().enumerate() {
                if l.transport == Transport::Tcp && sockets_overlap(l.addr, m.listen) {
                    errs.push(
                        "metrics.listen",
                        format!("conflicts with sip.listen[{i}] ({l})"),
                    );
                }
            }
        }
    }
    top.finish(errs);

    // When errors were recorded the placeholders below are never seen:
    // `Config::parse` returns the errors instead.
    Config {
        sip: SipConfig {
            listen: sip.listen.unwrap_or_default(),
            domain: sip.domain.unwrap_or_default(),
            auth_algorithms: sip.auth_algorithms.unwrap_or_default(),
            strict_digest_uri: sip.strict_digest_uri,
            nonce_lifetime_secs: sip.nonce_lifetime_secs,
            server_header: sip.server_header,
            t1_ms: sip.t1_ms,
            t2_ms: sip.t2_ms,
            t4_ms: sip.t4_ms,
        },
        storage,
        registrar,
        limits,
        metrics: metrics.unwrap_or_default(),
        log,
        shield,
        media,
        firewall,
        extensions,
    }
}

/// Whether two TCP binds would collide: same port, and the same IP or a
/// wildcard on either side (`[::]` is dual-stack by default on Linux, so it
/// collides with IPv4 addresses too).
fn sockets_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// `[sip]` as read; `None` where the value was missing or invalid (an error
/// was recorded), so cross-field checks can skip it.
struct SipRead {
    listen: Option<Vec<Listen>>,
    domain: Option<String>,
    auth_algorithms: Option<Vec<DigestAlgorithm>>,
    strict_digest_uri: bool,
    nonce_lifetime_secs: u64,
    server_header: bool,
    t1_ms: u64,
    t2_ms: u64,
    t4_ms: u64,
}

fn read_sip(mut sec: Section, errs: &mut Errors) -> SipRead {
    let listen = sec
        .required_array(errs, "listen")
        .and_then(|(path, items)| {
            let before = errs.len();
            if items.is_empty() {
                errs.push(&path, "at least one listen address is required");
            }
            let mut seen: HashMap<Listen, usize> = HashMap::new();
            let mut out = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                let ipath = format!("{path}[{i}]");
                let Some(s) = expect_str(errs, &ipath, item) else {
                    continue;
                };
                match s.parse::<Listen>() {
                    Ok(l) => {
                        if let Some(first) = seen.get(&l) {
                            errs.push(&ipath, format!("duplicate of {path}[{first}] ({l})"));
                        } else {
                            seen.insert(l, i);
                            out.push(l);
                        }
                    }
                    Err(e) => errs.push(&ipath, e.to_string()),
                }
            }
            (errs.len() == before).then_some(out)
        });

    let domain = sec
        .required_str(errs, "domain")
        .and_then(|(path, d)| match check_host(&d) {
            Ok(()) => Some(d),
            Err(m) => {
                errs.push(&path, m);
                None
            }
        });

    let auth_algorithms = match sec.array(errs, "auth_algorithms") {
        Absent::Missing => Some(vec![DigestAlgorithm::Md5, DigestAlgorithm::Sha256]),
        Absent::Invalid => None,
        Absent::Present((path, items)) => {
            let before = errs.len();
            if items.is_empty() {
                errs.push(&path, "at least one algorithm is required (MD5, SHA-256)");
            }
            let mut out: Vec<DigestAlgorithm> = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                let ipath = format!("{path}[{i}]");
                let Some(s) = expect_str(errs, &ipath, item) else {
                    continue;
                };
                let alg = if s.eq_ignore_ascii_case("MD5") {
                    DigestAlgorithm::Md5
                } else if s.eq_ignore_ascii_case("SHA-256") {
                    DigestAlgorithm::Sha256
                } else {
                    errs.push(
                        &ipath,
                        format!(
                            "unsupported algorithm {:?} (supported: MD5, SHA-256)",
                            clip(&s)
                        ),
                    );
                    continue;
                };
                if out.contains(&alg) {
                    errs.push(&ipath, format!("duplicate algorithm {alg}"));
                } else {
                    out.push(alg);
                }
            }
            (errs.len() == before).then_some(out)
        }
    };

    let strict_digest_uri = sec.boolean(errs, "strict_digest_uri", false);
    let nonce_lifetime_secs = sec.uint(errs, "nonce_lifetime_secs", 10, 3600, 300);
    let server_header = sec.boolean(errs, "server_header", false);
    let t1 = sec.uint_opt(errs, "t1_ms", 10, 10_000, 500);
    let t2 = sec.uint_opt(errs, "t2_ms", 100, 60_000, 4000);
    let t4 = sec.uint(errs, "t4_ms", 100, 60_000, 5000);
    if let (Some(t1), Some(t2)) = (t1, t2) {
        if t2 < t1 {
            errs.push(
                &sec.key_path("t2_ms"),
                format!("must be at least sip.t1_ms ({t1}), got {t2}"),
            );
        }
    }
    sec.finish(errs);
    SipRead {
        listen,
        domain,
        auth_algorithms,
        strict_digest_uri,
        nonce_lifetime_secs,
        server_header,
        t1_ms: t1.unwrap_or(500),
        t2_ms: t2.unwrap_or(4000),
        t4_ms: t4,
    }
}

fn read_storage(mut sec: Section, base_dir: &Path, errs: &mut Errors) -> StorageConfig {
    let path = match sec.string(errs, "path") {
        Absent::Missing => PathBuf::from("hardline.db"),
        Absent::Invalid => PathBuf::new(),
        Absent::Present((kp, p)) => {
            if p.is_empty() {
                errs.push(&kp, "must not be empty");
            } else if p.contains('\0') {
                errs.push(&kp, "must not contain NUL characters");
            }
            PathBuf::from(p)
        }
    };
    sec.finish(errs);
    StorageConfig {
        path: base_dir.join(path),
    }
}

fn read_registrar(mut sec: Section, errs: &mut Errors) -> RegistrarConfig {
    let d = RegistrarConfig::default();
    let min = sec.uint_opt(errs, "min_expires", 1, 86_400, d.min_expires);
    let max = sec.uint_opt(errs, "max_expires", 1, 604_800, d.max_expires);
    let def = sec.uint_opt(errs, "default_expires", 1, 604_800, d.default_expires);
    let max_contacts = sec.uint(
        errs,
        "max_contacts_per_user",
        1,
        1000,
        d.max_contacts_per_user,
    );
    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            errs.push(
                &sec.key_path("min_expires"),
                format!("must not exceed registrar.max_expires ({max}), got {min}"),
            );
        } else if let Some(def) = def {
            if def < min || def > max {
                errs.push(
                    &sec.key_path("default_expires"),
                    format!(
                        "must be between registrar.min_expires ({min}) and \
                         registrar.max_expires ({max}), got {def}"
                    ),
                );
            }
        }
    }
    sec.finish(errs);
    RegistrarConfig {
        min_expires: min.unwrap_or(d.min_expires),
        max_expires: max.unwrap_or(d.max_expires),
        default_expires: def.unwrap_or(d.default_expires),
        max_contacts_per_user: max_contacts,
    }
}

/// Declares the `[limits]` keys (one per field of `sip::Limits`, same name)
/// with their accepted range. Field types are whatever `sip` chose; values
/// are converted with `TryFrom<i64>`.
macro_rules! limits_schema {
    ($($field:ident: $min:literal ..= $max:literal),* $(,)?) => {
        /// Keys accepted under `[limits]`; each is the field of
        /// `sip::Limits` of the same name.
        pub const LIMIT_KEYS: &[&str] = &[$(stringify!($field)),*];

        /// Reads `[limits]`; `false` in the second slot when any value was
        /// rejected (so cross-field checks are skipped).
        fn read_limit_values(sec: &mut Section, errs: &mut Errors) -> (Limits, bool) {
            let mut limits = Limits::default();
            let mut ok = true;
            $(
                match sec.int(errs, stringify!($field), $min, $max) {
                    Absent::Missing => {}
                    Absent::Invalid => ok = false,
                    Absent::Present((path, v)) => match v.try_into() {
                        Ok(v) => limits.$field = v,
                        Err(_) => {
                            ok = false;
                            errs.push(&path, "value does not fit this platform");
                        }
                    },
                }
            )*
            (limits, ok)
        }

        /// Every limit as `(key, value)`, for cross-checks and tests.
        pub(crate) fn limit_values(l: &Limits) -> Vec<(&'static str, u64)> {
            vec![$((stringify!($field), u64::try_from(l.$field).unwrap_or(u64::MAX))),*]
        }
    };
}

limits_schema! {
    max_message_bytes: 512..=1_048_576,
    max_headers: 1..=1000,
    max_header_bytes: 64..=65_536,
    max_body_bytes: 1..=1_048_576,
    max_via: 1..=100,
    max_route: 1..=100,
    max_contacts: 1..=100,
    max_uri_bytes: 32..=8192,
    max_connections: 1..=1_000_000,
    max_connections_per_source: 1..=100_000,
    stream_idle_timeout_secs: 1..=86_400,
    max_udp_inflight: 1..=1_000_000,
    max_transactions: 1..=10_000_000,
    max_lingering: 1..=10_000_000,
    max_lingering_bytes: 65_536..=17_179_869_184,
}

fn read_limits(mut sec: Section, errs: &mut Errors) -> Limits {
    let (limits, ok) = read_limit_values(&mut sec, errs);
    if ok {
        let v: HashMap<&str, u64> = limit_values(&limits).into_iter().collect();
        // (smaller, larger): the first must fit inside the second.
        for (small, large) in [
            ("max_header_bytes", "max_message_bytes"),
            ("max_body_bytes", "max_message_bytes"),
            ("max_uri_bytes", "max_header_bytes"),
            ("max_connections_per_source", "max_connections"),
        ] {
            if let (Some(&s), Some(&l)) = (v.get(small), v.get(large)) {
                if s > l {
                    errs.push(
                        &sec.key_path(small),
                        format!("must not exceed limits.{large} ({l}), got {s}"),
                    );
                }
            }
        }
    }
    sec.finish(errs);
    limits
}

fn read_metrics(mut sec: Section, errs: &mut Errors) -> Option<MetricsConfig> {
    let d = MetricsConfig::default();
    let enabled = sec.boolean_opt(errs, "enabled", d.enabled);
    let allow_remote = sec.boolean_opt(errs, "allow_remote", d.allow_remote);
    let listen = match sec.string(errs, "listen") {
        Absent::Missing => Some(d.listen),
        Absent::Invalid => None,
        Absent::Present((path, s)) => match s.parse::<SocketAddr>() {
            Ok(a) => {
                let loopback = a.ip().to_canonical().is_loopback();
                if !loopback && allow_remote == Some(false) && enabled == Some(true) {
                    errs.push(
                        &path,
                        format!(
                            "{a} is not a loopback address; set metrics.allow_remote = true \
                             to expose metrics beyond this host"
                        ),
                    );
                }
                Some(a)
            }
            Err(_) => {
                errs.push(
                    &path,
                    format!(
                        "expected an IP address and port like \"127.0.0.1:9099\" or \
                         \"[::1]:9099\", got {:?}",
                        clip(&s)
                    ),
                );
                None
            }
        },
    };
    sec.finish(errs);
    Some(MetricsConfig {
        enabled: enabled?,
        listen: listen?,
        allow_remote: allow_remote?,
    })
}

fn read_log(mut sec: Section, errs: &mut Errors) -> LogConfig {
    let level = match sec.string(errs, "level") {
        Absent::Present((path, s)) => match s.to_ascii_lowercase().as_str() {
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => {
                errs.push(
                    &path,
                    format!(
                        "expected one of \"error\", \"warn\", \"info\", \"debug\", \"trace\", got {:?}",
                        clip(&s)
                    ),
                );
                LogLevel::default()
            }
        },
        _ => LogLevel::default(),
    };
    let format = match sec.string(errs, "format") {
        Absent::Present((path, s)) if s != "text" => {
            let why = if s == "json" {
                "JSON logging is not supported by this build; use \"text\"".to_owned()
            } else {
                format!("expected \"text\", got {:?}", clip(&s))
            };
            errs.push(&path, why);
            LogFormat::Text
        }
        _ => LogFormat::Text,
    };
    sec.finish(errs);
    LogConfig { level, format }
}

/// A list of CIDR prefixes (or addresses) under `key`.
fn read_cidrs(sec: &mut Section, errs: &mut Errors, key: &'static str) -> Vec<shield::Cidr> {
    let mut out = Vec::new();
    if let Absent::Present((path, items)) = sec.array(errs, key) {
        for (i, item) in items.into_iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            if let Some(s) = expect_str(errs, &ipath, item) {
                match s.parse::<shield::Cidr>() {
                    Ok(c) => out.push(c),
                    Err(e) => errs.push(&ipath, e.to_string()),
                }
            }
        }
    }
    out
}

fn read_shield(mut sec: Section, base_dir: &Path, errs: &mut Errors) -> ShieldSection {
    let d = shield::ShieldConfig::default();
    let enabled = sec.boolean(errs, "enabled", d.enabled);
    let kernel = sec.boolean(errs, "kernel", d.kernel);
    let mut trusted_hosts = Vec::new();
    let mut trusted = Vec::new();
    if let Absent::Present((path, items)) = sec.array(errs, "trusted") {
        for (i, item) in items.into_iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            let Some(s) = expect_str(errs, &ipath, item) else {
                continue;
            };
            match s.parse::<shield::Cidr>() {
                Ok(c) => trusted.push(c),
                Err(e) => {
                    let looks_like_address = s.contains('/')
                        || s.contains(':')
                        || s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
                    if !looks_like_address && check_host(&s).is_ok() {
                        trusted_hosts.push(s.to_ascii_lowercase());
                    } else if looks_like_address {
                        errs.push(&ipath, e.to_string());
                    } else {
                        errs.push(
                            &ipath,
                            format!(
                                "expected an address, a CIDR prefix or a host name, got {:?}",
                                clip(&s)
                            ),
                        );
                    }
                }
            }
        }
    }
    let blocklist = read_cidrs(&mut sec, errs, "blocklist");
    let mut blocked_countries = Vec::new();
    if let Absent::Present((path, items)) = sec.array(errs, "blocked_countries") {
        for (i, item) in items.into_iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            if let Some(cc) = expect_str(errs, &ipath, item) {
                if cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_alphabetic()) {
                    let cc = cc.to_ascii_lowercase();
                    if !blocked_countries.contains(&cc) {
                        blocked_countries.push(cc);
                    }
                } else {
                    errs.push(
                        &ipath,
                        format!(
                            "expected a two-letter country code like \"cn\", got {:?}",
                            clip(&cc)
                        ),
                    );
                }
            }
        }
    }
    let zone_dir = match sec.string(errs, "zone_dir") {
        Absent::Present((path, p)) => {
            if p.is_empty() || p.contains('\0') {
                errs.push(&path, "must be a directory path");
            }
            base_dir.join(p)
        }
        _ => base_dir.join("zones"),
    };
    let notify_command = match sec.string(errs, "notify_command") {
        Absent::Present((path, p)) => {
            if p.is_empty() || p.contains('\0') || p.contains(char::is_whitespace) {
                errs.push(
                    &path,
                    "a program path without arguments (wrap arguments in a script)",
                );
            }
            Some(base_dir.join(p))
        }
        _ => None,
    };
    let notify_url = match sec.string(errs, "notify_url") {
        Absent::Present((path, u)) => {
            if u.starts_with("https://") {
                errs.push(
                    &path,
                    "https is not built in; set shield.notify_command to a script that posts with curl",
                );
            } else if !u.starts_with("http://") || u.len() <= "http://".len() {
                errs.push(
                    &path,
                    format!("expected an http:// URL, got {:?}", clip(&u)),
                );
            }
            Some(u)
        }
        _ => None,
    };
    let bantime_secs = sec.uint(errs, "bantime_secs", 1, 31_536_000, d.bantime_secs);
    let bantime_factor = sec.uint(errs, "bantime_factor", 1, 100, d.bantime_factor);
    let bantime_max_secs = sec.uint(errs, "bantime_max_secs", 1, 31_536_000, d.bantime_max_secs);
    let recidive_secs = sec.uint(errs, "recidive_secs", 0, 31_536_000, d.recidive_secs);
    let max_bans = sec.uint(errs, "max_bans", 16, 10_000_000, d.max_bans as u64) as usize;
    let sources = sec.uint(errs, "sources", 64, 16_777_216, d.sources as u64) as usize;
    if bantime_max_secs < bantime_secs {
        errs.push(
            &sec.key_path("bantime_max_secs"),
            format!(
                "must not be below shield.bantime_secs ({bantime_secs}), got {bantime_max_secs}"
            ),
        );
    }

    let mut f = sec.section(errs, "flood", false);
    let flood = shield::config::FloodConfig {
        packet_rate: f.uint(errs, "packet_rate", 1, 1_000_000, d.flood.packet_rate),
        packet_burst: f.uint(errs, "packet_burst", 1, 1_000_000, d.flood.packet_burst),
        register_per_min: match f.int(errs, "register_per_min", 1, 10_000_000) {
            Absent::Present((_, v)) => Some(v as u32),
            _ => None,
        },
        invite_per_min: match f.int(errs, "invite_per_min", 1, 10_000_000) {
            Absent::Present((_, v)) => Some(v as u32),
            _ => None,
        },
        nat_factor: f.uint(errs, "nat_factor", 1, 1000, d.flood.nat_factor),
    };
    f.finish(errs);

    let mut a = sec.section(errs, "auth", false);
    let auth = shield::config::AuthConfig {
        maxretry: a.uint(errs, "maxretry", 1, 1000, d.auth.maxretry),
        findtime_secs: a.uint(errs, "findtime_secs", 1, 31_536_000, d.auth.findtime_secs),
        bantime_secs: a.uint(errs, "bantime_secs", 1, 31_536_000, d.auth.bantime_secs),
        nat_window_secs: a.uint(
            errs,
            "nat_window_secs",
            0,
            31_536_000,
            d.auth.nat_window_secs,
        ),
        nat_maxretry: a.uint(errs, "nat_maxretry", 1, 10_000, d.auth.nat_maxretry),
    };
    if auth.nat_maxretry < auth.maxretry {
        errs.push(
            &a.key_path("nat_maxretry"),
            format!(
                "must not be below shield.auth.maxretry ({}), got {}",
                auth.maxretry, auth.nat_maxretry
            ),
        );
    }
    a.finish(errs);

    let mut c = sec.section(errs, "account", false);
    let account = shield::config::AccountConfig {
        max_failures: c.uint(errs, "max_failures", 1, 100_000, d.account.max_failures),
        min_sources: c.uint(errs, "min_sources", 1, 1000, d.account.min_sources),
        window_secs: c.uint(errs, "window_secs", 1, 31_536_000, d.account.window_secs),
        throttle_secs: c.uint(
            errs,
            "throttle_secs",
            1,
            31_536_000,
            d.account.throttle_secs,
        ),
        known_source_secs: c.uint(
            errs,
            "known_source_secs",
            60,
            31_536_000,
            d.account.known_source_secs,
        ),
    };
    c.finish(errs);

    let mut sc = sec.section(errs, "scan", false);
    let signatures = sc.boolean(errs, "signatures", d.scan.signatures);
    let mut extra_signatures = Vec::new();
    if let Absent::Present((path, items)) = sc.array(errs, "extra_signatures") {
        for (i, item) in items.into_iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            if let Some(sig) = expect_str(errs, &ipath, item) {
                if sig.trim().len() < 3 || sig.len() > 64 {
                    errs.push(
                        &ipath,
                        "a signature is 3 to 64 characters (matched anywhere, case-insensitively)",
                    );
                } else {
                    extra_signatures.push(sig.trim().to_string());
                }
            }
        }
    }
    let scan = shield::config::ScanConfig {
        signatures,
        extra_signatures,
        // The distinct-user set has 128 slots: counts past 64 lose accuracy.
        distinct_users: sc.uint(errs, "distinct_users", 2, 64, d.scan.distinct_users),
        options_per_min: sc.uint(
            errs,
            "options_per_min",
            1,
            1_000_000,
            d.scan.options_per_min,
        ),
        raw_ip_per_min: sc.uint(errs, "raw_ip_per_min", 1, 1_000_000, d.scan.raw_ip_per_min),
    };
    sc.finish(errs);

    let mut cl = sec.section(errs, "calls", false);
    let mut public_aliases = Vec::new();
    if let Some((path, v)) = cl.take("public_aliases") {
        match v {
            Value::Table(t) => {
                for (alias, ext) in t {
                    let apath = format!("{path}.{alias}");
                    if let Err(m) = check_user(&alias) {
                        errs.push(&apath, format!("alias: {m}"));
                        continue;
                    }
                    if let Some(ext) = expect_str(errs, &apath, ext) {
                        match check_user(&ext) {
                            Ok(()) => public_aliases.push((alias, ext)),
                            Err(m) => errs.push(&apath, format!("extension: {m}")),
                        }
                    }
                }
            }
            other => errs.push(
                &path,
                format!(
                    "expected a table of alias = \"extension\", got {}",
                    type_name(&other)
                ),
            ),
        }
    }
    let calls = shield::config::CallsConfig {
        max_concurrent: cl.uint(errs, "max_concurrent", 1, 10_000, d.calls.max_concurrent),
        per_minute: cl.uint(errs, "per_minute", 1, 100_000, d.calls.per_minute),
        max_duration_secs: cl.uint(
            errs,
            "max_duration_secs",
            60,
            604_800,
            d.calls.max_duration_secs,
        ),
        public_aliases,
    };
    cl.finish(errs);
    sec.finish(errs);
    ShieldSection {
        config: shield::ShieldConfig {
            enabled,
            kernel,
            trusted,
            blocklist,
            flood,
            auth,
            account,
            scan,
            calls,
            bantime_secs,
            bantime_factor,
            bantime_max_secs,
            recidive_secs,
            max_bans,
            sources,
        },
        blocked_countries,
        zone_dir,
        trusted_hosts,
        notify_command,
        notify_url,
    }
}

fn read_media(mut sec: Section, base_dir: &Path, errs: &mut Errors) -> MediaSection {
    let d = media::RelayConfig::default();
    let enabled = sec.boolean(errs, "enabled", true);
    let mut port_range = d.port_range;
    if let Absent::Present((path, items)) = sec.array(errs, "port_range") {
        let ports: Vec<Option<i64>> = items.iter().map(|v| v.as_integer()).collect();
        match ports.as_slice() {
            [Some(lo), Some(hi)] if (1024..=65534).contains(lo) && (1025..=65535).contains(hi) && hi - lo >= 3 => {
                port_range = (*lo as u16, *hi as u16);
            }
            _ => errs.push(
                &path,
                "expected [first, last]: two ports within 1024..=65535, at least 4 apart (RTP on even ports, RTCP on the next)",
            ),
        }
    }
    let address = match sec.string(errs, "address") {
        Absent::Present((path, a)) => match a.parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => Some(ip),
            _ => {
                errs.push(
                    &path,
                    format!(
                        "expected the IP address phones reach the relay at, got {:?}",
                        clip(&a)
                    ),
                );
                None
            }
        },
        _ => None,
    };
    let timeout = sec.uint(errs, "timeout_secs", 5u64, 86_400, d.timeout.as_secs());
    let hold_timeout = sec.uint(
        errs,
        "hold_timeout_secs",
        5u64,
        604_800,
        d.hold_timeout.as_secs(),
    );
    let pairs = media::RelayConfig {
        port_range,
        ..d.clone()
    }
    .pairs();
    let max_sessions = sec.uint(
        errs,
        "max_calls",
        1u64,
        1_000_000,
        (pairs / 2).min(d.max_sessions) as u64,
    ) as usize;
    let max_sessions_per_source = sec.uint(
        errs,
        "max_calls_per_source",
        1u64,
        1_000_000,
        d.max_sessions_per_source as u64,
    ) as usize;
    let g711_plc = sec.boolean(errs, "g711_plc", d.g711_plc);
    let mos_threshold = match sec.take("mos_threshold") {
        None => d.mos_threshold,
        Some((_, toml::Value::Float(f))) if (1.0..=4.5).contains(&f) => f,
        Some((_, toml::Value::Integer(i))) if (1..=4).contains(&i) => i as f64,
        Some((path, _)) => {
            errs.push(&path, "expected a MOS between 1.0 and 4.5");
            d.mos_threshold
        }
    };
    let cdr_keep = sec.uint(errs, "cdr_keep", 100u64, 100_000_000, 100_000);
    let mut numbers: Vec<String> = Vec::new();
    let mut number = |errs: &mut Errors, path: &str, n: String| -> Option<String> {
        if n.is_empty()
            || n.len() > 32
            || !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"*#+-_.".contains(&b))
        {
            errs.push(
                path,
                format!(
                    "expected a dialable number like \"*43\", got {:?}",
                    clip(&n)
                ),
            );
            return None;
        }
        if numbers.contains(&n) {
            errs.push(path, format!("{n:?} is used twice in [media]"));
            return None;
        }
        numbers.push(n.clone());
        Some(n)
    };
    let mut echo = Vec::new();
    match sec.array(errs, "echo") {
        Absent::Present((path, items)) => {
            for (i, item) in items.into_iter().enumerate() {
                let ipath = format!("{path}[{i}]");
                if let Some(n) = expect_str(errs, &ipath, item) {
                    if let Some(n) = number(errs, &ipath, n) {
                        echo.push(n);
                    }
                }
            }
        }
        Absent::Missing => echo.push(number(errs, "media.echo", "*43".into()).unwrap_or_default()),
        Absent::Invalid => {}
    }
    let mut announcements = Vec::new();
    if let Absent::Present((path, items)) = sec.array(errs, "announcements") {
        for (i, item) in items.into_iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            let toml::Value::Table(t) = item else {
                errs.push(&ipath, "expected a table with number, file and loop");
                continue;
            };
            let mut a = Section::new(ipath.clone(), t);
            let n = a.required_str(errs, "number");
            let f = a.required_str(errs, "file");
            let looped = a.boolean(errs, "loop", false);
            a.finish(errs);
            if let (Some((npath, n)), Some((fpath, f))) = (n, f) {
                if f.is_empty() || f.contains('\0') {
                    errs.push(&fpath, "must be a path to a G.711 WAV file");
                    continue;
                }
                if let Some(number) = number(errs, &npath, n) {
                    announcements.push(Announcement {
                        number,
                        file: base_dir.join(f),
                        looped,
                    });
                }
            }
        }
    }
    sec.finish(errs);
    MediaSection {
        enabled,
        relay: media::RelayConfig {
            port_range,
            timeout: std::time::Duration::from_secs(timeout),
            hold_timeout: std::time::Duration::from_secs(hold_timeout),
            max_sessions,
            max_sessions_per_source,
            g711_plc,
            mos_threshold,
            ..d
        },
        address,
        echo,
        announcements,
        cdr_keep,
    }
}

fn read_firewall(mut sec: Section, errs: &mut Errors) -> shield::firewall::FirewallConfig {
    let d = shield::firewall::FirewallConfig::default();
    let admin = read_cidrs(&mut sec, errs, "admin");
    let ssh_port = sec.uint(errs, "ssh_port", 1u16, 65535, d.ssh_port);
    let ssh_from = read_cidrs(&mut sec, errs, "ssh_from");
    let sip_rate = sec.uint(errs, "sip_rate", 1u32, 1_000_000, d.sip_rate);
    let sip_burst = sec.uint(errs, "sip_burst", 1u32, 1_000_000, d.sip_burst);
    let mut web_ports = Vec::new();
    if let Absent::Present((path, items)) = sec.array(errs, "web_ports") {
        for (i, v) in items.iter().enumerate() {
            match v.as_integer() {
                Some(p) if (1..=65535).contains(&p) => web_ports.push(p as u16),
                _ => errs.push(&format!("{path}[{i}]"), "expected a TCP port, 1..=65535"),
            }
        }
    }
    let web_from = read_cidrs(&mut sec, errs, "web_from");
    let web_new_per_min = sec.uint(errs, "web_new_per_min", 1u32, 100_000, d.web_new_per_min);
    let icmp_rate = sec.uint(errs, "icmp_rate", 1u32, 10_000, d.icmp_rate);
    let icmp_burst = sec.uint(errs, "icmp_burst", 1u32, 10_000, d.icmp_burst);
    let antispoof = read_cidrs(&mut sec, errs, "antispoof");
    let providers = read_cidrs(&mut sec, errs, "providers");
    let ipv6 = sec.boolean(errs, "ipv6", d.ipv6);
    let outbound = match sec.string(errs, "outbound") {
        Absent::Present((path, v)) => match v.as_str() {
            "open" => shield::firewall::Outbound::Open,
            "restricted" => shield::firewall::Outbound::Restricted,
            other => {
                errs.push(
                    &path,
                    format!("expected \"open\" or \"restricted\", got {:?}", clip(other)),
                );
                d.outbound
            }
        },
        _ => d.outbound,
    };
    let log_rate = sec.uint(errs, "log_rate", 1u32, 10_000, d.log_rate);
    sec.finish(errs);
    shield::firewall::FirewallConfig {
        admin,
        ssh_port,
        ssh_from,
        sip_rate,
        sip_burst,
        web_ports,
        web_from,
        web_new_per_min,
        icmp_rate,
        icmp_burst,
        antispoof,
        providers,
        ipv6,
        outbound,
        log_rate,
        ..d
    }
}

fn read_extensions(
    top: &mut Section,
    algorithms: Option<&[DigestAlgorithm]>,
    errs: &mut Errors,
) -> Vec<ExtensionConfig> {
    let (path, items) = match top.array(errs, "extensions") {
        Absent::Present(p) => p,
        _ => return Vec::new(),
    };
    let mut out = Vec::with_capacity(items.len());
    let mut users: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.into_iter().enumerate() {
        let epath = format!("{path}[{i}]");
        let Value::Table(t) = item else {
            errs.push(
                &epath,
                format!(
                    "expected a table ([[extensions]] entry), got {}",
                    type_name(&item)
                ),
            );
            continue;
        };
        let mut sec = Section::new(epath.clone(), t);
        let user = sec.required_str(errs, "user").and_then(|(upath, u)| {
            if let Err(m) = check_user(&u) {
                errs.push(&upath, m);
                return None;
            }
            if let Some(first) = users.get(&u) {
                errs.push(
                    &upath,
                    format!("duplicate user {u:?} (first defined in {path}[{first}])"),
                );
                return None;
            }
            users.insert(u.clone(), i);
            Some(u)
        });

        let password = match sec.string(errs, "password") {
            Absent::Present((ppath, p)) => {
                if let Err(m) = check_password(&p) {
                    errs.push(&ppath, m);
                }
                Absent::Present(p)
            }
            Absent::Missing => Absent::Missing,
            Absent::Invalid => Absent::Invalid,
        };
        let md5 = read_ha1(&mut sec, errs, "ha1_md5", 32);
        let sha256 = read_ha1(&mut sec, errs, "ha1_sha256", 64);
        sec.finish(errs);

        let any_ha1 = !matches!(md5, Absent::Missing) || !matches!(sha256, Absent::Missing);
        let credential = match password {
            Absent::Present(_) if any_ha1 => {
                errs.push(
                    &epath,
                    "give either password or ha1_md5/ha1_sha256, not both",
                );
                None
            }
            Absent::Present(p) => Some(Credential::Password(p)),
            Absent::Invalid => None,
            Absent::Missing if !any_ha1 => {
                errs.push(
                    &epath,
                    "missing credential: set password, or ha1_md5 and/or ha1_sha256",
                );
                None
            }
            Absent::Missing => match (md5, sha256) {
                (Absent::Invalid, _) | (_, Absent::Invalid) => None,
                (md5, sha256) => {
                    let (md5, sha256) = (md5.present(), sha256.present());
                    // The challenge must not depend on the user (no user
                    // enumeration), so every user needs every offered HA1.
                    for (alg, have, key) in [
                        (DigestAlgorithm::Md5, md5.is_some(), "ha1_md5"),
                        (DigestAlgorithm::Sha256, sha256.is_some(), "ha1_sha256"),
                    ] {
                        if !have && algorithms.is_some_and(|a| a.contains(&alg)) {
                            errs.push(
                                &epath,
                                format!("{key} missing while sip.auth_algorithms includes {alg}"),
                            );
                        }
                    }
                    Some(Credential::Ha1 { md5, sha256 })
                }
            },
        };
        if let (Some(user), Some(credential)) = (user, credential) {
            out.push(ExtensionConfig { user, credential });
        }
    }
    out
}

/// An HA1 in hex, normalised to lower case.
fn read_ha1(sec: &mut Section, errs: &mut Errors, key: &'static str, len: usize) -> Absent<String> {
    match sec.string(errs, key) {
        Absent::Present((path, h)) => {
            if h.len() == len && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                Absent::Present(h.to_ascii_lowercase())
            } else {
                // The value is not echoed: it is password-equivalent.
                errs.push(&path, format!("expected {len} hex digits"));
                Absent::Invalid
            }
        }
        Absent::Missing => Absent::Missing,
        Absent::Invalid => Absent::Invalid,
    }
}

// ---------------------------------------------------------------------------
// Value checks
// ---------------------------------------------------------------------------

const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_CHARS: usize = 256;
const MAX_USER_CHARS: usize = 64;

/// Never echoes the password.
fn check_password(p: &str) -> Result<(), String> {
    let n = p.chars().count();
    if n < MIN_PASSWORD_CHARS {
        Err(format!("too short (min {MIN_PASSWORD_CHARS} chars)"))
    } else if n > MAX_PASSWORD_CHARS {
        Err(format!("too long (max {MAX_PASSWORD_CHARS} chars)"))
    } else if p.chars().any(char::is_control) {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(())
    }
}

/// RFC 3261 `user`: unreserved / user-unreserved characters. Escapes (`%HH`)
/// are refused so that one user has exactly one spelling.
fn check_user(u: &str) -> Result<(), String> {
    const EXTRA: &str = "-_.!~*'()&=+$,;?/";
    if u.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if u.len() > MAX_USER_CHARS
        || !u
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || EXTRA.contains(c))
    {
        return Err(format!(
            "{:?} is not a valid SIP user (letters, digits and {EXTRA} only, \
             at most {MAX_USER_CHARS} chars)",
            clip(u)
        ));
    }
    Ok(())
}

/// A bare host as in RFC 3261 `host`: host name, IPv4 address or bracketed
/// IPv6 reference. No scheme, no port, no user part.
fn check_host(h: &str) -> Result<(), String> {
    if h.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let lower = h.to_ascii_lowercase();
    if h.contains("://") || lower.starts_with("sip:") || lower.starts_with("sips:") {
        return Err(format!(
            "must be a bare host without a scheme, got {:?}",
            clip(h)
        ));
    }
    if h.contains('@') {
        return Err(format!(
            "must be a bare host without a user part, got {:?}",
            clip(h)
        ));
    }
    if let Some(inner) = h.strip_prefix('[') {
        return match inner.split_once(']') {
            Some((ip, "")) if ip.parse::<Ipv6Addr>().is_ok() => Ok(()),
            Some((ip, rest)) if ip.parse::<Ipv6Addr>().is_ok() && rest.starts_with(':') => {
                Err(format!("must not include a port, got {:?}", clip(h)))
            }
            _ => Err(format!("not a valid IPv6 reference: {:?}", clip(h))),
        };
    }
    if let Some((host, port)) = h.rsplit_once(':') {
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.contains(':') {
            return Err(format!("must not include a port, got {:?}", clip(h)));
        }
        return Err(format!(
            "not a valid host (IPv6 addresses must be in brackets), got {:?}",
            clip(h)
        ));
    }
    if h.parse::<Ipv4Addr>().is_ok() {
        return Ok(());
    }
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let labels: Vec<&str> = h.split('.').collect();
    let top_ok = labels
        .last()
        .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()));
    if h.len() <= 253 && labels.iter().all(|l| valid_label(l)) && top_ok {
        Ok(())
    } else {
        Err(format!("not a valid host name, got {:?}", clip(h)))
    }
}

/// Bounds how much of an operator-supplied value is echoed back.
fn clip(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut c: String = s.chars().take(MAX).collect();
        c.push('…');
        c
    }
}

// ---------------------------------------------------------------------------
// The validating reader
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(ConfigError {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Result of looking up an optional key.
enum Absent<T> {
    Missing,
    /// Present but rejected; the error is already recorded.
    Invalid,
    Present(T),
}

impl<T> Absent<T> {
    fn present(self) -> Option<T> {
        match self {
            Absent::Present(v) => Some(v),
            _ => None,
        }
    }
}

/// A table being consumed. Keys are removed as they are read; whatever is
/// left at [`Section::finish`] is reported as unknown.
struct Section {
    path: String,
    table: Table,
    /// Keys this section asked for, for "did you mean" hints.
    known: Vec<&'static str>,
    /// The section itself was missing or not a table (already reported), so
    /// its required keys are not reported again one by one.
    absent: bool,
}

impl Section {
    fn new(path: String, table: Table) -> Self {
        Section {
            path,
            table,
            known: Vec::new(),
            absent: false,
        }
    }

    fn key_path(&self, key: &str) -> String {
        let key = if !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            key.to_owned()
        } else {
            // Quote keys that are not TOML bare keys, so the path is unambiguous.
            Value::String(key.to_owned()).to_string()
        };
        if self.path.is_empty() {
            key
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn take(&mut self, key: &'static str) -> Option<(String, Value)> {
        self.known.push(key);
        let v = self.table.remove(key)?;
        Some((self.key_path(key), v))
    }

    /// A sub-table. A missing optional section reads as empty, so all its
    /// keys take their defaults; a missing required one is reported.
    fn section(&mut self, errs: &mut Errors, key: &'static str, required: bool) -> Section {
        let path = self.key_path(key);
        match self.take(key) {
            Some((_, Value::Table(t))) => Section::new(path, t),
            Some((_, v)) => {
                errs.push(
                    &path,
                    format!("expected a table ([{key}]), got {}", type_name(&v)),
                );
                Section {
                    absent: true,
                    ..Section::new(path, Table::new())
                }
            }
            None => {
                if required {
                    errs.push(&path, format!("missing required section [{key}]"));
                }
                Section {
                    absent: true,
                    ..Section::new(path, Table::new())
                }
            }
        }
    }

    fn string(&mut self, errs: &mut Errors, key: &'static str) -> Absent<(String, String)> {
        match self.take(key) {
            None => Absent::Missing,
            Some((path, v)) => match expect_str(errs, &path, v) {
                Some(s) => Absent::Present((path, s)),
                None => Absent::Invalid,
            },
        }
    }

    fn required_str(&mut self, errs: &mut Errors, key: &'static str) -> Option<(String, String)> {
        match self.string(errs, key) {
            Absent::Present(p) => Some(p),
            Absent::Invalid => None,
            Absent::Missing => {
                if !self.absent {
                    errs.push(&self.key_path(key), "missing required key");
                }
                None
            }
        }
    }

    fn array(&mut self, errs: &mut Errors, key: &'static str) -> Absent<(String, Vec<Value>)> {
        match self.take(key) {
            None => Absent::Missing,
            Some((path, Value::Array(a))) => Absent::Present((path, a)),
            Some((path, v)) => {
                errs.push(&path, format!("expected an array, got {}", type_name(&v)));
                Absent::Invalid
            }
        }
    }

    fn required_array(
        &mut self,
        errs: &mut Errors,
        key: &'static str,
    ) -> Option<(String, Vec<Value>)> {
        match self.array(errs, key) {
            Absent::Present(p) => Some(p),
            Absent::Invalid => None,
            Absent::Missing => {
                if !self.absent {
                    errs.push(&self.key_path(key), "missing required key");
                }
                None
            }
        }
    }

    /// `None` when present but not a boolean (error recorded).
    fn boolean_opt(&mut self, errs: &mut Errors, key: &'static str, default: bool) -> Option<bool> {
        match self.take(key) {
            None => Some(default),
            Some((_, Value::Boolean(b))) => Some(b),
            Some((path, v)) => {
                errs.push(&path, format!("expected a boolean, got {}", type_name(&v)));
                None
            }
        }
    }

    fn boolean(&mut self, errs: &mut Errors, key: &'static str, default: bool) -> bool {
        self.boolean_opt(errs, key, default).unwrap_or(default)
    }

    /// An integer in `min..=max`.
    fn int(
        &mut self,
        errs: &mut Errors,
        key: &'static str,
        min: i64,
        max: i64,
    ) -> Absent<(String, i64)> {
        match self.take(key) {
            None => Absent::Missing,
            Some((path, Value::Integer(i))) if (min..=max).contains(&i) => {
                Absent::Present((path, i))
            }
            Some((path, Value::Integer(i))) => {
                errs.push(&path, format!("must be between {min} and {max}, got {i}"));
                Absent::Invalid
            }
            Some((path, v)) => {
                errs.push(&path, format!("expected an integer, got {}", type_name(&v)));
                Absent::Invalid
            }
        }
    }

    /// An unsigned integer in `min..=max`, `default` when absent, `None` when
    /// invalid (error recorded).
    fn uint_opt<T>(
        &mut self,
        errs: &mut Errors,
        key: &'static str,
        min: T,
        max: T,
        default: T,
    ) -> Option<T>
    where
        T: Copy + TryFrom<i64> + Into<u64>,
    {
        let (lo, hi) = (min.into(), max.into());
        // Bounds used here are far below i64::MAX; saturate to be safe.
        let to_i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        match self.int(errs, key, to_i(lo), to_i(hi)) {
            Absent::Missing => Some(default),
            Absent::Invalid => None,
            Absent::Present((_, v)) => T::try_from(v).ok(),
        }
    }

    fn uint<T>(&mut self, errs: &mut Errors, key: &'static str, min: T, max: T, default: T) -> T
    where
        T: Copy + TryFrom<i64> + Into<u64>,
    {
        self.uint_opt(errs, key, min, max, default)
            .unwrap_or(default)
    }

    /// Reports every key that no reader asked for.
    fn finish(self, errs: &mut Errors) {
        for key in self.table.keys() {
            let hint = suggest(key, &self.known)
                .map(|k| format!(" (did you mean {k:?}?)"))
                .unwrap_or_default();
            errs.push(&self.key_path(key), format!("unknown key{hint}"));
        }
    }
}

fn expect_str(errs: &mut Errors, path: &str, v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        // Only the type is named, never the value: it may be a secret.
        other => {
            errs.push(
                path,
                format!("expected a string, got {}", type_name(&other)),
            );
            None
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// The closest known key within edit distance 2, if any.
fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(&key.to_ascii_lowercase(), k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------
// Generated and example files
// ---------------------------------------------------------------------------

/// The config file written on first start. `extensions` are
/// `(user, ha1_md5, ha1_sha256)`, HA1s in hex computed with realm = `domain`;
/// the passwords themselves are never written. The result is only valid if
/// the inputs are (the caller should `Config::parse` it before writing).
pub fn default_config_text<U, M, S>(
    domain: &str,
    listen: &[Listen],
    storage_path: &str,
    extensions: &[(U, M, S)],
) -> String
where
    U: AsRef<str>,
    M: AsRef<str>,
    S: AsRef<str>,
{
    let q = |s: &str| Value::String(s.to_owned()).to_string();
    let listen = listen
        .iter()
        .map(|l| q(&l.to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = format!(
        "# hardline configuration, generated on first start.\n\
         # Every key not set here takes its secure default; the shipped example\n\
         # configuration documents all of them. Unknown keys are rejected.\n\
         \n\
         [sip]\n\
         # Transports: udp or tcp; IPv6 as \"udp:[::1]:5060\".\n\
         listen = [{listen}]\n\
         # SIP domain, also the digest realm. Changing it invalidates the HA1s below.\n\
         domain = {domain}\n\
         \n\
         [storage]\n\
         # SQLite file; a relative path is relative to this file's directory.\n\
         path = {storage}\n",
        domain = q(domain),
        storage = q(storage_path),
    );
    if !extensions.is_empty() {
        out.push_str(
            "\n# The passwords were printed once when this file was generated; only\n\
             # their digest hashes, HA1 = H(user:realm:password), are kept here.\n",
        );
    }
    for (user, md5, sha256) in extensions {
        out.push_str(&format!(
            "\n[[extensions]]\nuser = {}\nha1_md5 = {}\nha1_sha256 = {}\n",
            q(user.as_ref()),
            q(md5.as_ref()),
            q(sha256.as_ref()),
        ));
    }
    out
}

/// A fully commented example documenting every key. Shipped with the binary
/// and referenced by the README; a test keeps it parseable.
pub const EXAMPLE_CONFIG: &str = r#"# hardline example configuration.
#
# One TOML file. Unknown keys are errors (a typo never silently falls back
# to a default), and every problem is reported at once with its key path.
# Only [sip] listen and domain are required; everything else shown here with
# its default value is optional.

[sip]
# Addresses to receive SIP on: "udp:IP:PORT" or "tcp:IP:PORT"; IPv6 in
# brackets, e.g. "udp:[::1]:5060". IP addresses only (no host names). At
# least one; duplicates are rejected.
listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]

# The SIP domain this server is registrar for; also the digest realm. A bare
# host name or IP address: no scheme, no port. Changing it invalidates every
# stored HA1, since the realm is part of the hash.
domain = "example.test"

# Digest algorithms challenged, in this order (one WWW-Authenticate per
# algorithm). Allowed: "MD5", "SHA-256". MD5 is listed first by default
# because many phones only look at the first challenge and only know MD5.
# Every extension must have a credential for every algorithm listed, because
# the challenge never depends on the user (no user enumeration).
auth_algorithms = ["MD5", "SHA-256"]

# Whether the digest "uri" parameter must equal the Request-URI exactly.
# Off by default because SIPp 3.6 and some phones put the target host there
# instead; the response is still bound to the method, nonce and credentials.
strict_digest_uri = false

# How long a nonce is accepted, in seconds (10..=3600).
nonce_lifetime_secs = 300

# Whether to send a Server / User-Agent header. Off: do not advertise the
# software to scanners.
server_header = false

# RFC 3261 transaction timers in milliseconds. T1: RTT estimate (10..=10000);
# T2: maximum retransmit interval (100..=60000, at least T1); T4: maximum
# time a message stays in the network (100..=60000).
t1_ms = 500
t2_ms = 4000
t4_ms = 5000

[storage]
# SQLite database file. A relative path is relative to the directory of
# this configuration file, not the working directory.
path = "hardline.db"

[registrar]
# Requested expirations below this get "423 Interval Too Brief" (1..=86400).
min_expires = 60
# Longer requested expirations are shortened to this (1..=604800).
max_expires = 3600
# Used when a REGISTER gives no expiration; min <= default <= max.
default_expires = 3600
# Bindings (contacts) kept per user (1..=1000).
max_contacts_per_user = 10

[limits]
# Hard limits on what peers may send. Each key overrides the built-in
# default, which is what the commented values show. All positive integers.
# max_message_bytes = 65535          # whole message, 512..=1048576
# max_headers = 96                   # header lines per message, 1..=1000
# max_header_bytes = 8192            # one header line, 64..=65536
# max_body_bytes = 32768             # message body, 1..=1048576
# max_via = 64                       # Via values per message, 1..=100
# max_route = 32                     # Route (and Record-Route) values, 1..=100
# max_contacts = 16                  # Contact values per message, 1..=100
# max_uri_bytes = 2048               # one URI, 32..=8192
# max_connections = 4096             # open TCP connections, 1..=1000000
# max_connections_per_source = 32    # open TCP connections per source IP, 1..=100000
# stream_idle_timeout_secs = 30      # idle TCP connection lifetime, 1..=86400
# max_udp_inflight = 1024            # queued datagrams (then dropped), 1..=1000000
# max_transactions = 65536           # live transactions, 1..=10000000
# max_lingering = 65536              # finished transactions absorbing retransmissions, per side; 1..=10000000
# max_lingering_bytes = 16777216     # responses they keep to resend, per side; 65536..=17179869184

[metrics]
# Prometheus / OpenMetrics endpoint at http://LISTEN/metrics.
enabled = true
listen = "127.0.0.1:9099"
# A non-loopback listen address is refused unless this is true: metrics
# reveal traffic patterns.
allow_remote = false

[log]
# error | warn | info | debug | trace
level = "info"
# Only "text" is supported.
format = "text"

[shield]
# Intrusion prevention, on by default. false turns every protection off.
enabled = true
# Bans go into nftables sets (table inet hardline) so banned sources cost
# nothing; needs root. false keeps them in-process (still no reply), e.g.
# when another tool owns the host's nftables.
kernel = true
# Addresses, prefixes or host names never rate-limited or banned (load
# generators, offices, providers). A trusted address overrides a ban at
# once. Host names are resolved at start and every 5 minutes; a failed
# lookup keeps the last known addresses and never stops the server.
trusted = []
# Addresses or prefixes always dropped, without a ban record.
blocklist = []
# Countries whose traffic is dropped: two-letter codes; each needs a
# "<cc>.zone" file (ipdeny format, one prefix per line) in zone_dir. An
# unreadable zone file stops start-up, naming the file.
blocked_countries = []
# Relative to this file's directory.
zone_dir = "zones"
# Incident reports (JSON: bans with rule and evidence, users blocked behind
# a NAT, throttled accounts), at most one per 10 s, events in between
# gathered: piped to a program (a path, relative to this file; no
# arguments) and/or POSTed to an http:// URL. Unset: none.
# notify_command = "notify-admin.sh"
# notify_url = "http://127.0.0.1:8080/hardline"
# Ban length for floods, scanners and enumeration, in seconds. A source
# banned again within recidive_secs gets bantime_factor times the previous
# ban, up to bantime_max_secs.
bantime_secs = 3600
bantime_factor = 4
bantime_max_secs = 604800
recidive_secs = 604800
# Most bans held at once (a few hundred bytes each; past it the ban
# closest to its end makes room), and slots of the fixed per-source table
# (about 150 bytes each, allocated as used; a spoofed flood cannot grow it).
max_bans = 20000
sources = 16384

[shield.flood]
# Per source, before parsing: packets (or TCP messages) per second
# sustained, and how many at once. More bans the source.
packet_rate = 10
packet_burst = 60
# REGISTER and INVITE requests per source per minute. Unset: scaled by the
# number of extensions (REGISTER 20 + 4 per extension, INVITE 20 + 2).
# register_per_min = 100
# invite_per_min = 60
# A source with a successful authentication within shield.auth.nat_window_secs
# (an office NAT) gets these limits times nat_factor.
nat_factor = 10

[shield.auth]
# fail2ban semantics, counted in the server (no log in between): maxretry
# wrong credentials within findtime_secs ban the source for bantime_secs
# (longer for repeat offenders). A challenge without credentials never
# counts.
maxretry = 5
findtime_secs = 600
bantime_secs = 3600
# Behind a shared NAT (a source that authenticated within nat_window_secs)
# one failing phone blocks only its own user from that source; the source
# is banned at nat_maxretry failures across several users.
nat_window_secs = 3600
nat_maxretry = 20

[shield.account]
# Distributed guessing: max_failures wrong credentials for one account
# within window_secs from at least min_sources sources throttle it for
# throttle_secs: it then authenticates only from sources it registered
# from within known_source_secs, so its real user keeps working.
max_failures = 10
min_sources = 3
window_secs = 600
throttle_secs = 3600
known_source_secs = 604800

[shield.scan]
# Ban on a known scanner signature (friendly-scanner, sipvicious, sipcli,
# VaxSIPUserAgent, sundayddr, iWar, sip-scan, pplsip, ...) in User-Agent,
# From/To/Contact or SDP, without replying.
signatures = true
# More signatures: case-insensitive substrings, 3 to 64 characters.
extra_signatures = []
# From one source that has not authenticated, per minute: distinct users
# asked for (2..=64), OPTIONS requests, and requests addressed to the raw
# IP instead of the domain. More bans the source.
distinct_users = 30
options_per_min = 30
raw_ip_per_min = 30

[shield.calls]
# Toll-fraud brakes per extension: calls in progress at once and calls
# started per minute (refused with 403 Call Limit Reached, logged). A call
# whose BYE never passed is forgotten after max_duration_secs.
max_concurrent = 4
per_minute = 10
max_duration_secs = 14400
# The only targets callable without authentication, from callers that do
# not claim to be ours (public SIP URI calling): alias = "extension". None
# by default; e.g. public_aliases = { sales = "1000" }.
public_aliases = {}

[media]
# Every call's RTP goes through hardline: phones behind NAT get two-way
# audio, and each stream is measured (loss, jitter, bursts, round trip,
# E-model MOS per direction, stored with the call record). false: media
# flows between the phones directly and records have no statistics.
enabled = true
# Relay ports (RTP on even ports, RTCP on the next): each call takes two
# pairs per media stream. Open this range in the firewall.
port_range = [10000, 20000]
# The relay's address in SDP, when phones reach it at another address than
# the SIP listener's (a public address in front of NAT). Unset: the SIP
# listener's address.
# address = "203.0.113.10"
# An answered call with no RTP in any direction for timeout_secs ends with
# a BYE to both sides (record: media_timeout); hold_timeout_secs applies to
# calls on hold.
timeout_secs = 60
hold_timeout_secs = 3600
# Calls relayed at once: in total (default: what the port range holds, at
# most 2000) and per signalling source (trusted sources exempt).
# max_calls = 2000
max_calls_per_source = 64
# Phones conceal lost G.711 packets (ITU-T G.113: Bpl 25.1; false: 4.3).
g711_plc = true
# A direction whose MOS falls below this raises a quality event (log,
# metric, and the shield's notify_command / notify_url).
mos_threshold = 3.6
# Call records kept; the oldest go first.
cdr_keep = 100000
# Numbers answered by the echo test (authenticated callers only).
echo = ["*43"]
# Recordings played on a number: G.711 WAV (8 kHz mono µ-law or A-law, or
# 16-bit PCM), relative to this file's directory; loop = false hangs up
# at the end.
# [[media.announcements]]
# number = "*44"
# file = "sounds/welcome.wav"
# loop = false

[firewall]
# The host firewall `hardline firewall render` writes (nftables, whitelist
# first, in the shield's table). Administrators get full access; SSH is
# open to them and to ssh_from. A firewall without any of them is refused:
# it would lock everyone out.
admin = []
ssh_port = 22
ssh_from = []
# New SIP packets (UDP) or connections (TCP) per source per second, in the
# kernel in front of the shield; VoIP providers (addresses or prefixes) are
# exempt.
sip_rate = 50
sip_burst = 100
providers = []
# Web and API ports (TCP), open to web_from (empty: anyone), with new
# connections per source per minute limited.
web_ports = []
web_from = []
web_new_per_min = 60
# Pings per second and burst; sources dropped as forged; IPv6 under the
# same policy (false: dropped); outbound "open" or "restricted" (replies,
# DNS, NTP, SIP and RTP only); dropped packets logged per second.
icmp_rate = 1
icmp_burst = 3
antispoof = []
ipv6 = true
outbound = "open"
log_rate = 5

# One [[extensions]] table per user. "user" is a SIP user token, unique.
# Credentials: either "password" (at least 12 characters), or the digest
# hashes HA1 = H(user ":" domain ":" password) as hex: "ha1_md5" (32 hex
# digits) and/or "ha1_sha256" (64 hex digits), one for each algorithm in
# sip.auth_algorithms. Never both a password and hashes.
[[extensions]]
user = "1000"
password = "a-long-secret"

[[extensions]]
user = "1001"
# Hashes of the password "another-long-secret" for domain "example.test".
ha1_md5 = "5ad22bd8114062cceeb2122677afe222"
ha1_sha256 = "71e5e01916ee9400358aa0328273cfafec50060ed7fecde4061d57c69b5b1d7d"
"#;

#[cfg(test)]
mod tests;
