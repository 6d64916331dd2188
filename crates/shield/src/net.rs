//! Addresses as the shield sees them: the source key it counts and bans by,
//! CIDR prefixes, compiled prefix sets, and ipdeny-style zone files.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::str::FromStr;

/// The unit the shield counts and bans: an IPv4 address, or an IPv6 /64.
/// A /64 is one subscriber's network (RFC 6177): an attacker holds all of
/// it, so counting single IPv6 addresses would let it rotate through 2^64
/// of them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum SourceKey {
    V4(u32),
    /// The upper 64 bits of the address.
    V6(u64),
}

impl SourceKey {
    /// The key of a packet's source address (IPv4-mapped IPv6 counts as
    /// IPv4, as a dual-stack socket reports IPv4 peers).
    pub fn of(ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(v4) => SourceKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey::V4(u32::from(v4)),
                None => SourceKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }

    /// The first address the key covers.
    pub fn addr(self) -> IpAddr {
        match self {
            SourceKey::V4(a) => IpAddr::V4(Ipv4Addr::from(a)),
            SourceKey::V6(p) => IpAddr::V6(Ipv6Addr::from(u128::from(p) << 64)),
        }
    }

    /// The key as a prefix: `/32` or `/64`.
    pub fn cidr(self) -> Cidr {
        match self {
            SourceKey::V4(_) => Cidr {
                addr: self.addr(),
                len: 32,
            },
            SourceKey::V6(_) => Cidr {
                addr: self.addr(),
                len: 64,
            },
        }
    }
}

impl fmt::Display for SourceKey {
    /// `192.0.2.7` or `2001:db8:1:2::/64`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceKey::V4(_) => write!(f, "{}", self.addr()),
            SourceKey::V6(_) => write!(f, "{}/64", self.addr()),
        }
    }
}

impl FromStr for SourceKey {
    type Err = CidrError;

    /// An address (IPv6 taken to its /64), or `PREFIX/64` for IPv6.
    fn from_str(s: &str) -> Result<SourceKey, CidrError> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(SourceKey::of(ip));
        }
        let c: Cidr = s.parse()?;
        match (c.addr, c.len) {
            (IpAddr::V4(a), 32) => Ok(SourceKey::V4(u32::from(a))),
            (IpAddr::V6(_), 64) => Ok(SourceKey::of(c.addr)),
            _ => Err(CidrError::NotASource(s.chars().take(64).collect())),
        }
    }
}

/// Why an address or prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IP address or ADDRESS/LENGTH prefix")]
    Syntax(String),
    #[error("prefix length {len} is too long for {addr} (at most {max})")]
    Length { addr: IpAddr, len: u8, max: u8 },
    #[error("{given} has bits set past the prefix length; did you mean {fixed}?")]
    HostBits { given: String, fixed: String },
    #[error("{0:?} is neither an IPv4 address nor an IPv6 /64")]
    NotASource(String),
}

/// An IPv4 or IPv6 prefix, `ADDRESS/LENGTH` (a bare address is a host).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn len(&self) -> u8 {
        self.len
    }

    /// A prefix of length 0 is the whole address family, never "empty".
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Parses like `FromStr` but clears bits past the prefix length instead
    /// of refusing them (zone files from third parties).
    pub fn parse_lenient(s: &str) -> Result<Cidr, CidrError> {
        let (addr, len) = split(s)?;
        Ok(Cidr::masked(addr, len))
    }

    fn masked(addr: IpAddr, len: u8) -> Cidr {
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(len))),
        };
        Cidr { addr, len }
    }

    /// Whether `ip` is inside the prefix (IPv4-mapped IPv6 as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, unmap(ip)) {
            (IpAddr::V4(p), IpAddr::V4(a)) => u32::from(a) & mask32(self.len) == u32::from(p),
            (IpAddr::V6(p), IpAddr::V6(a)) => u128::from(a) & mask128(self.len) == u128::from(p),
            _ => false,
        }
    }

    /// The inclusive range of addresses, as integers of the family.
    fn range(&self) -> Range {
        match self.addr {
            IpAddr::V4(a) => {
                let lo = u32::from(a);
                Range::V4(lo, lo | !mask32(self.len))
            }
            IpAddr::V6(a) => {
                let lo = u128::from(a);
                Range::V6(lo, lo | !mask128(self.len))
            }
        }
    }
}

enum Range {
    V4(u32, u32),
    V6(u128, u128),
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn mask32(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

fn split(s: &str) -> Result<(IpAddr, u8), CidrError> {
    let s = s.trim();
    let syntax = || CidrError::Syntax(s.chars().take(64).collect());
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = a.parse().map_err(|_| syntax())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match l {
        None => max,
        Some(l) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|c| c.is_ascii_digit()) => {
            l.parse::<u8>().map_err(|_| syntax())?
        }
        Some(_) => return Err(syntax()),
    };
    if len > max {
        return Err(CidrError::Length { addr, len, max });
    }
    Ok((addr, len))
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// Strict: bits past the prefix length are an error (a typo such as
    /// `192.0.2.1/24` names a different set than the operator thinks).
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (addr, len) = split(s)?;
        let c = Cidr::masked(addr, len);
        if c.addr != addr {
            return Err(CidrError::HostBits {
                given: s.trim().to_string(),
                fixed: c.to_string(),
            });
        }
        Ok(c)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.len == host {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

/// A set of prefixes compiled for lookup: sorted, merged, non-overlapping
/// address ranges per family, searched by bisection. It answers exactly
/// what a prefix trie would (is the address under any of the prefixes) in
/// O(log n), with 8 or 32 bytes per range instead of a node per prefix bit,
/// which matters with country lists of thousands of prefixes on a router.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefixSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl PrefixSet {
    pub fn new<'a>(prefixes: impl IntoIterator<Item = &'a Cidr>) -> PrefixSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for c in prefixes {
            match c.range() {
                Range::V4(lo, hi) => v4.push((lo, hi)),
                Range::V6(lo, hi) => v6.push((lo, hi)),
            }
        }
        PrefixSet {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match unmap(ip) {
            IpAddr::V4(a) => covered(&self.v4, u32::from(a)),
            IpAddr::V6(a) => covered(&self.v6, u128::from(a)),
        }
    }

    /// Whether the whole key (an address, or an IPv6 /64) is inside.
    pub fn covers(&self, key: SourceKey) -> bool {
        match key {
            SourceKey::V4(a) => covered(&self.v4, a),
            SourceKey::V6(p) => {
                let lo = u128::from(p) << 64;
                let i = self.v6.partition_point(|r| r.1 < lo);
                self.v6
                    .get(i)
                    .is_some_and(|r| r.0 <= lo && r.1 >= lo | u128::from(u64::MAX))
            }
        }
    }

    /// Whether a ban or trust decision about the whole key follows this
    /// set: the key is covered, or its first address is in it.
    pub fn matches_source(&self, key: SourceKey) -> bool {
        self.covers(key) || self.contains(key.addr())
    }

    /// Number of merged ranges (IPv4 plus IPv6).
    pub fn ranges(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges() == 0
    }
}

fn merge<T: Ord + Copy + num::Step>(mut v: Vec<(T, T)>) -> Vec<(T, T)> {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if T::touches(last.1, lo) => {
                if hi > last.1 {
                    last.1 = hi;
                }
            }
            _ => out.push((lo, hi)),
        }
    }
    out.shrink_to_fit();
    out
}

fn covered<T: Ord + Copy>(v: &[(T, T)], x: T) -> bool {
    let i = v.partition_point(|r| r.1 < x);
    v.get(i).is_some_and(|r| r.0 <= x)
}

mod num {
    /// Whether a range ending at `end` and one starting at `start` (sorted)
    /// overlap or are adjacent, so they merge.
    pub trait Step {
        fn touches(end: Self, start: Self) -> bool;
    }
    impl Step for u32 {
        fn touches(end: u32, start: u32) -> bool {
            end == u32::MAX || start <= end + 1
        }
    }
    impl Step for u128 {
        fn touches(end: u128, start: u128) -> bool {
            end == u128::MAX || start <= end + 1
        }
    }
}

/// Why a zone file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("cannot read zone file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("zone file {path}, line {line}: {error}")]
    Line {
        path: String,
        line: usize,
        error: CidrError,
    },
}

/// Reads an ipdeny-style zone file: one prefix per line; blank lines and
/// `#` comments ignored; host bits past the length cleared.
pub fn load_zone(path: &Path) -> Result<Vec<Cidr>, ZoneError> {
    let text = std::fs::read_to_string(path).map_err(|source| ZoneError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_zone(&text).map_err(|(line, error)| ZoneError::Line {
        path: path.display().to_string(),
        line,
        error,
    })
}

/// [`load_zone`] of text already read; the error carries the line number.
pub fn parse_zone(text: &str) -> Result<Vec<Cidr>, (usize, CidrError)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        out.push(Cidr::parse_lenient(line).map_err(|e| (i + 1, e))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parsing_is_strict_and_names_the_fix() {
        assert_eq!(
            "192.0.2.0/24".parse::<Cidr>().unwrap().to_string(),
            "192.0.2.0/24"
        );
        assert_eq!("192.0.2.7".parse::<Cidr>().unwrap().len(), 32);
        assert_eq!("2001:db8::/32".parse::<Cidr>().unwrap().len(), 32);
        match "192.0.2.1/24".parse::<Cidr>() {
            Err(CidrError::HostBits { fixed, .. }) => assert_eq!(fixed, "192.0.2.0/24"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::Length { .. })
        ));
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/x",
            "10.0.0/8",
            "host.example",
            "1.2.3.4/008x",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(
            Cidr::parse_lenient("192.0.2.1/24").unwrap().to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().to_string(),
            "0.0.0.0/0"
        );
    }

    #[test]
    fn cidr_contains() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains(ip("10.1.255.255")));
        assert!(!c.contains(ip("10.2.0.0")));
        assert!(c.contains(ip("::ffff:10.1.2.3")), "mapped IPv4");
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(ip("255.255.255.255")));
        assert!(!any.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
    }

    /// The compiled set against the plain prefix list, on random addresses
    /// and on every range edge.
    #[test]
    fn prefix_set_agrees_with_the_prefixes() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..50 {
            let mut cidrs = Vec::new();
            for _ in 0..(1 + round * 3) {
                let len = (rnd() % 33) as u8;
                let a = Ipv4Addr::from((rnd() as u32) & 0xff0f_ffff);
                cidrs.push(Cidr::masked(IpAddr::V4(a), len.max(4)));
                let len6 = (rnd() % 129) as u8;
                let a6 =
                    Ipv6Addr::from((u128::from(rnd()) << 64 | u128::from(rnd())) & !(0xf << 120));
                cidrs.push(Cidr::masked(IpAddr::V6(a6), len6.max(8)));
            }
            let set = PrefixSet::new(&cidrs);
            let naive = |a: IpAddr| cidrs.iter().any(|c| c.contains(a));
            let mut probes: Vec<IpAddr> = Vec::new();
            for c in &cidrs {
                match c.range() {
                    Range::V4(lo, hi) => {
                        for v in [lo.wrapping_sub(1), lo, hi, hi.wrapping_add(1)] {
                            probes.push(IpAddr::V4(Ipv4Addr::from(v)));
                        }
                    }
                    Range::V6(lo, hi) => {
                        for v in [lo.wrapping_sub(1), lo, hi, hi.wrapping_add(1)] {
                            probes.push(IpAddr::V6(Ipv6Addr::from(v)));
                        }
                    }
                }
            }
            for _ in 0..200 {
                probes.push(IpAddr::V4(Ipv4Addr::from(rnd() as u32)));
                probes.push(IpAddr::V6(Ipv6Addr::from(u128::from(rnd()) << 64)));
            }
            for p in probes {
                assert_eq!(set.contains(p), naive(p), "{p} in {cidrs:?}");
            }
        }
    }

    #[test]
    fn prefix_set_covers_whole_v6_sources() {
        let set = PrefixSet::new(&[
            "2001:db8:0:1::/64".parse().unwrap(),
            "2001:db8:0:2::/65".parse().unwrap(),
        ]);
        assert!(set.covers(SourceKey::of(ip("2001:db8:0:1::5"))));
        assert!(
            !set.covers(SourceKey::of(ip("2001:db8:0:2::5"))),
            "only half of that /64"
        );
        assert!(set.contains(ip("2001:db8:0:2::5")));
    }

    #[test]
    fn source_keys() {
        assert_eq!(
            SourceKey::of(ip("::ffff:192.0.2.9")),
            SourceKey::of(ip("192.0.2.9"))
        );
        let a = SourceKey::of(ip("2001:db8:1:2:aaaa::1"));
        assert_eq!(a, SourceKey::of(ip("2001:db8:1:2:bbbb::9")));
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!("2001:db8:1:2::/64".parse::<SourceKey>().unwrap(), a);
        assert_eq!("2001:db8:1:2::77".parse::<SourceKey>().unwrap(), a);
        assert_eq!(
            "192.0.2.9".parse::<SourceKey>().unwrap().to_string(),
            "192.0.2.9"
        );
        assert!("192.0.2.0/24".parse::<SourceKey>().is_err());
        assert_eq!(a.cidr().to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn zone_files() {
        let z = parse_zone("# cn\n1.0.1.0/24\n\n1.0.2.0/23  # two\n2001:250::/35\n").unwrap();
        assert_eq!(z.len(), 3);
        assert_eq!(parse_zone("1.0.1.0/24\nnot-a-prefix\n").unwrap_err().0, 2);
        let dir = std::env::temp_dir().join(format!("shield-zone-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("xx.zone");
        std::fs::write(&p, "203.0.113.0/24\n").unwrap();
        assert_eq!(load_zone(&p).unwrap().len(), 1);
        let err = load_zone(&dir.join("missing.zone"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.zone"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
