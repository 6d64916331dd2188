//! The host firewall, rendered from the configuration as one nftables
//! script: whitelist first (policy drop), in the same `inet hardline` table
//! as the shield's ban sets. Sans-IO: this module only writes text; the
//! runtime checks it with `nft -c` and applies it atomically with `nft -f`.
//!
//! The script first makes the objects the firewall owns exist and empties
//! them (`add` is idempotent, `flush` empties), then declares them with
//! their elements and rules: applying it replaces the previous firewall in
//! one transaction and leaves the shield's bans (their sets are not
//! flushed) in place.

use crate::enforce::{SET_V4, SET_V6, TABLE};
use crate::net::Cidr;
use std::fmt::Write as _;
use std::net::IpAddr;

/// A listening port: UDP or TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// Outgoing traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outbound {
    /// Anything may go out (the usual host policy).
    #[default]
    Open,
    /// Only replies, DNS, NTP and the server's own SIP and RTP.
    Restricted,
}

/// The `[firewall]` section, plus what the rest of the configuration says
/// about listeners and the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallConfig {
    /// Full access from these.
    pub admin: Vec<Cidr>,
    pub ssh_port: u16,
    /// Who may reach SSH besides the admins; empty: the admins only.
    pub ssh_from: Vec<Cidr>,
    /// SIP listeners (from `sip.listen`).
    pub sip: Vec<(Proto, u16)>,
    /// New SIP packets (UDP) or connections (TCP) per source per second,
    /// and burst, counted in the kernel before the shield sees them.
    pub sip_rate: u32,
    pub sip_burst: u32,
    /// The relay's port range (from `media.port_range`); `None`: no relay.
    pub rtp: Option<(u16, u16)>,
    /// Web and API ports (TCP), and who may reach them (empty: anyone).
    pub web_ports: Vec<u16>,
    pub web_from: Vec<Cidr>,
    /// New TCP connections per source per minute to the web ports.
    pub web_new_per_min: u32,
    /// Pings per second and burst.
    pub icmp_rate: u32,
    pub icmp_burst: u32,
    /// Sources that can only be forged on this interface: dropped.
    pub antispoof: Vec<Cidr>,
    /// VoIP providers: their SIP is not rate-limited here.
    pub providers: Vec<Cidr>,
    /// IPv6 under the same policy; `false`: dropped entirely.
    pub ipv6: bool,
    pub outbound: Outbound,
    /// Dropped packets logged, per second.
    pub log_rate: u32,
}

impl Default for FirewallConfig {
    fn default() -> Self {
        FirewallConfig {
            admin: Vec::new(),
            ssh_port: 22,
            ssh_from: Vec::new(),
            sip: vec![(Proto::Udp, 5060), (Proto::Tcp, 5060)],
            sip_rate: 50,
            sip_burst: 100,
            rtp: Some((10000, 20000)),
            web_ports: Vec::new(),
            web_from: Vec::new(),
            web_new_per_min: 60,
            icmp_rate: 1,
            icmp_burst: 3,
            antispoof: Vec::new(),
            providers: Vec::new(),
            ipv6: true,
            outbound: Outbound::Open,
            log_rate: 5,
        }
    }
}

/// Why no safe ruleset could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallError {
    /// Nobody could reach SSH: every admin would be locked out.
    Lockout,
    /// An admin or SSH source is also in the anti-spoofing list.
    AdminSpoofed(Cidr),
}

impl std::fmt::Display for FirewallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FirewallError::Lockout => f.write_str(
                "firewall.admin and firewall.ssh_from are both empty: nobody could reach SSH \
                 (port firewall.ssh_port) and every administrator would be locked out; list \
                 your own address in firewall.admin",
            ),
            FirewallError::AdminSpoofed(c) => write!(
                f,
                "{c} is both an administrator (firewall.admin/ssh_from) and in \
                 firewall.antispoof: its packets would be dropped; remove it from one of them"
            ),
        }
    }
}

/// Names of the firewall's own objects in the table.
pub const INPUT: &str = "firewall_in";
pub const OUTPUT: &str = "firewall_out";

/// Sets the firewall owns: name, address family, what they hold.
struct SetDef {
    name: &'static str,
    v6: bool,
    what: &'static str,
}

const fn pair(name4: &'static str, name6: &'static str, what: &'static str) -> [SetDef; 2] {
    [
        SetDef {
            name: name4,
            v6: false,
            what,
        },
        SetDef {
            name: name6,
            v6: true,
            what,
        },
    ]
}

/// The firewall's address sets, in rendering order.
const SETS: [[SetDef; 2]; 5] = [
    pair("admin4", "admin6", "administrators: full access"),
    pair("ssh4", "ssh6", "may reach SSH"),
    pair("web4", "web6", "may reach the web and API ports"),
    pair(
        "providers4",
        "providers6",
        "VoIP providers: SIP not rate-limited",
    ),
    pair(
        "antispoof4",
        "antispoof6",
        "sources that cannot be genuine here",
    ),
];

/// Per-source rate meters (dynamic sets the rules fill).
const METERS: [(&str, bool); 4] = [
    ("sip_rate4", false),
    ("sip_rate6", true),
    ("web_new4", false),
    ("web_new6", true),
];

/// The whole ruleset, or why it would not be safe.
pub fn render(c: &FirewallConfig) -> Result<String, FirewallError> {
    if c.admin.is_empty() && c.ssh_from.is_empty() {
        return Err(FirewallError::Lockout);
    }
    for a in c.admin.iter().chain(&c.ssh_from) {
        if c.antispoof.iter().any(|s| overlaps(s, a)) {
            return Err(FirewallError::AdminSpoofed(*a));
        }
    }
    let elements = |name: &str| -> Vec<Cidr> {
        match name {
            "admin" => c.admin.clone(),
            "ssh" => c.ssh_from.clone(),
            "web" => c.web_from.clone(),
            "providers" => c.providers.clone(),
            _ => c.antispoof.clone(),
        }
    };
    let mut o = String::new();
    o.push_str(
        "# The host firewall of hardline (`hardline firewall render`): whitelist first,\n\
         # policy drop. Generated from the configuration; edit that, not this.\n\
         # Its objects are made to exist and emptied first, so applying the script\n\
         # replaces the previous firewall in one transaction; the shield's ban sets\n\
         # (ban4, ban6, chain shield) are left as they are.\n",
    );
    // The shield's sets and chain, as the shield itself installs them
    // (idempotent; ban elements are kept).
    o.push_str(&crate::enforce::ruleset());
    for s in SETS.iter().flatten() {
        let _ = writeln!(
            o,
            "add set inet {TABLE} {} {{ type {}; flags interval; }}",
            s.name,
            addr_type(s.v6)
        );
        let _ = writeln!(o, "flush set inet {TABLE} {}", s.name);
    }
    for (m, v6) in METERS {
        let _ = writeln!(
            o,
            "add set inet {TABLE} {m} {{ type {}; flags dynamic,timeout; timeout 1m; size 65536; }}",
            addr_type(v6)
        );
    }
    let _ = writeln!(
        o,
        "add chain inet {TABLE} {INPUT} {{ type filter hook input priority filter; policy drop; }}"
    );
    let _ = writeln!(o, "flush chain inet {TABLE} {INPUT}");
    let out_policy = match c.outbound {
        Outbound::Open => "accept",
        Outbound::Restricted => "drop",
    };
    let _ = writeln!(
        o,
        "add chain inet {TABLE} {OUTPUT} {{ type filter hook output priority filter; policy {out_policy}; }}"
    );
    let _ = writeln!(o, "flush chain inet {TABLE} {OUTPUT}");
    o.push('\n');
    let _ = writeln!(o, "table inet {TABLE} {{");
    for s in SETS.iter().flatten() {
        let prefix = s.name.trim_end_matches(['4', '6']);
        let els: Vec<String> = elements(prefix)
            .iter()
            .filter(|e| e.addr().is_ipv6() == s.v6)
            .map(|e| e.to_string())
            .collect();
        let _ = write!(
            o,
            "    set {} {{\n        type {}; flags interval;\n        comment \"{}\";\n",
            s.name,
            addr_type(s.v6),
            s.what
        );
        if !els.is_empty() {
            let _ = writeln!(o, "        elements = {{ {} }}", els.join(", "));
        }
        o.push_str("    }\n");
    }
    o.push('\n');
    let _ = writeln!(
        o,
        "    chain {INPUT} {{\n        type filter hook input priority filter; policy drop;"
    );
    let mut rule = |r: &str, why: &str| {
        let _ = writeln!(o, "        {r} comment \"{why}\"");
    };
    rule("iif \"lo\" accept", "loopback: the host talking to itself");
    if !c.ipv6 {
        rule(
            "meta nfproto ipv6 counter drop",
            "IPv6 is off (firewall.ipv6 = false)",
        );
    }
    rule(
        "ct state invalid counter drop",
        "packets no connection explains",
    );
    rule(
        "ct state established,related accept",
        "replies and related traffic of allowed connections",
    );
    rule(
        "tcp flags & (fin|syn|rst|ack) != syn ct state new counter reject with tcp reset",
        "a new TCP connection must start with SYN",
    );
    rule(
        "ip saddr @antispoof4 counter drop",
        "anti-spoofing: sources that cannot be genuine here",
    );
    rule(
        "ip6 saddr @antispoof6 counter drop",
        "anti-spoofing: sources that cannot be genuine here",
    );
    rule("ip saddr @admin4 accept", "administrators: full access");
    rule("ip6 saddr @admin6 accept", "administrators: full access");
    // Bans come after the admins, who are never banned: the shield's own
    // chain (priority filter - 10) drops banned sources before this one.
    rule(
        &format!("ip saddr @{SET_V4} counter drop"),
        "banned by the shield",
    );
    rule(
        &format!("ip6 saddr & ffff:ffff:ffff:ffff:: @{SET_V6} counter drop"),
        "banned by the shield",
    );
    let ssh = c.ssh_port;
    rule(
        &format!("tcp dport {ssh} ip saddr @ssh4 accept"),
        "SSH from firewall.ssh_from",
    );
    rule(
        &format!("tcp dport {ssh} ip6 saddr @ssh6 accept"),
        "SSH from firewall.ssh_from",
    );
    for proto in [Proto::Udp, Proto::Tcp] {
        let ports: Vec<u16> = c
            .sip
            .iter()
            .filter(|(p, _)| *p == proto)
            .map(|(_, port)| *port)
            .collect();
        if ports.is_empty() {
            continue;
        }
        let (p, set) = (proto.as_str(), port_set(&ports));
        rule(
            &format!("{p} dport {set} ip saddr @providers4 accept"),
            "SIP from VoIP providers",
        );
        rule(
            &format!("{p} dport {set} ip6 saddr @providers6 accept"),
            "SIP from VoIP providers",
        );
        // UDP: every packet counts; TCP: new connections (the server's
        // shield limits the messages inside them).
        let new = if proto == Proto::Tcp {
            " ct state new"
        } else {
            ""
        };
        let (rate, burst) = (c.sip_rate, c.sip_burst);
        rule(
            &format!("{p} dport {set}{new} add @sip_rate4 {{ ip saddr limit rate over {rate}/second burst {burst} packets }} counter drop"),
            "SIP: per-source rate in the kernel, in front of the shield",
        );
        rule(
            &format!("{p} dport {set}{new} add @sip_rate6 {{ ip6 saddr limit rate over {rate}/second burst {burst} packets }} counter drop"),
            "SIP: per-source rate in the kernel, in front of the shield",
        );
        rule(&format!("{p} dport {set} accept"), "SIP");
    }
    if let Some((lo, hi)) = c.rtp {
        rule(
            &format!("udp dport {lo}-{hi} accept"),
            "RTP and RTCP relay ports (media.port_range)",
        );
    }
    if !c.web_ports.is_empty() {
        let set = port_set(&c.web_ports);
        let n = c.web_new_per_min;
        rule(
            &format!("tcp dport {set} ct state new add @web_new4 {{ ip saddr limit rate over {n}/minute burst {n} packets }} counter drop"),
            "web and API: new connections per source",
        );
        rule(
            &format!("tcp dport {set} ct state new add @web_new6 {{ ip6 saddr limit rate over {n}/minute burst {n} packets }} counter drop"),
            "web and API: new connections per source",
        );
        rule(
            &format!("tcp dport {set} tcp option maxseg size 1-535 counter drop"),
            "web and API: an MSS no real client sends (resource exhaustion)",
        );
        if c.web_from.is_empty() {
            rule(&format!("tcp dport {set} accept"), "web and API: anyone");
        } else {
            rule(
                &format!("tcp dport {set} ip saddr @web4 accept"),
                "web and API from firewall.web_from",
            );
            rule(
                &format!("tcp dport {set} ip6 saddr @web6 accept"),
                "web and API from firewall.web_from",
            );
        }
    }
    let (ir, ib) = (c.icmp_rate, c.icmp_burst);
    rule(
        &format!("icmp type echo-request limit rate {ir}/second burst {ib} packets accept"),
        "ping, limited",
    );
    rule(
        "icmp type { destination-unreachable, time-exceeded, parameter-problem } accept",
        "ICMP errors (path MTU discovery)",
    );
    if c.ipv6 {
        rule(
            &format!("icmpv6 type echo-request limit rate {ir}/second burst {ib} packets accept"),
            "ping, limited",
        );
        rule(
            "icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept",
            "ICMPv6 errors and neighbour discovery (IPv6 needs them)",
        );
    }
    rule(
        &format!(
            "limit rate {}/second log prefix \"hardline-fw drop: \" level info",
            c.log_rate
        ),
        "log a few of the dropped packets",
    );
    rule("counter drop", "everything else");
    o.push_str("    }\n\n");
    let _ = writeln!(
        o,
        "    chain {OUTPUT} {{\n        type filter hook output priority filter; policy {out_policy};"
    );
    if c.outbound == Outbound::Restricted {
        let mut rule = |r: &str, why: &str| {
            let _ = writeln!(o, "        {r} comment \"{why}\"");
        };
        rule("oif \"lo\" accept", "loopback");
        rule(
            "ct state established,related accept",
            "replies to allowed incoming traffic",
        );
        rule("meta l4proto { tcp, udp } th dport 53 accept", "DNS");
        rule("udp dport 123 accept", "NTP");
        let sip: Vec<u16> = c.sip.iter().map(|(_, p)| *p).collect();
        if !sip.is_empty() {
            rule(
                &format!(
                    "meta l4proto {{ tcp, udp }} th sport {} accept",
                    port_set(&sip)
                ),
                "SIP from our listeners",
            );
        }
        if let Some((lo, hi)) = c.rtp {
            rule(&format!("udp sport {lo}-{hi} accept"), "RTP from the relay");
        }
        rule("icmp type echo-reply accept", "answers to pings");
        rule("icmpv6 type { echo-reply, nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept", "IPv6 needs them");
        rule(
            &format!(
                "limit rate {}/second log prefix \"hardline-fw out: \" level info",
                c.log_rate
            ),
            "log a few of the refused packets",
        );
        rule(
            "counter drop",
            "everything else (firewall.outbound is restricted)",
        );
    }
    o.push_str("    }\n}\n");
    Ok(o)
}

fn addr_type(v6: bool) -> &'static str {
    if v6 {
        "ipv6_addr"
    } else {
        "ipv4_addr"
    }
}

/// `5060` or `{ 5060, 5061 }`.
fn port_set(ports: &[u16]) -> String {
    let mut p: Vec<u16> = ports.to_vec();
    p.sort_unstable();
    p.dedup();
    if p.len() == 1 {
        p[0].to_string()
    } else {
        let list: Vec<String> = p.iter().map(u16::to_string).collect();
        format!("{{ {} }}", list.join(", "))
    }
}

/// Whether two prefixes share an address.
fn overlaps(a: &Cidr, b: &Cidr) -> bool {
    let shorter = a.len().min(b.len());
    match (a.addr(), b.addr()) {
        (IpAddr::V4(x), IpAddr::V4(y)) => {
            let m = u32::MAX.checked_shl(32 - u32::from(shorter)).unwrap_or(0);
            u32::from(x) & m == u32::from(y) & m
        }
        (IpAddr::V6(x), IpAddr::V6(y)) => {
            let m = u128::MAX.checked_shl(128 - u32::from(shorter)).unwrap_or(0);
            u128::from(x) & m == u128::from(y) & m
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn cfg() -> FirewallConfig {
        FirewallConfig {
            admin: vec![cidr("198.51.100.7/32"), cidr("2001:db8::/64")],
            ..Default::default()
        }
    }

    #[test]
    fn a_config_that_locks_everyone_out_is_refused() {
        let c = FirewallConfig::default();
        let e = render(&c).unwrap_err();
        assert_eq!(e, FirewallError::Lockout);
        assert!(e.to_string().contains("firewall.admin"));
        // SSH from a list without admins is fine.
        let c = FirewallConfig {
            ssh_from: vec![cidr("192.0.2.0/24")],
            ..Default::default()
        };
        assert!(render(&c).is_ok());
        // An admin inside the anti-spoofing list would be dropped.
        let c = FirewallConfig {
            antispoof: vec![cidr("198.51.100.0/24")],
            ..cfg()
        };
        assert_eq!(
            render(&c),
            Err(FirewallError::AdminSpoofed(cidr("198.51.100.7/32")))
        );
    }

    #[test]
    fn the_ruleset_is_whitelist_first_and_every_rule_says_why() {
        let r = render(&cfg()).unwrap();
        // Comments cannot hold quotes.
        for l in r.lines().filter(|l| l.contains("comment \"")) {
            let c = &l[l.find("comment \"").unwrap() + 9..];
            assert_eq!(c.matches('"').count(), 1, "{l}");
        }
        assert!(r.contains("policy drop;"));
        assert!(
            r.contains("elements = { 198.51.100.7 }")
                || r.contains("elements = { 198.51.100.7/32 }"),
            "{r}"
        );
        assert!(r.contains("elements = { 2001:db8::/64 }"), "{r}");
        let rules: Vec<&str> = r
            .lines()
            .map(str::trim)
            .filter(|l| {
                l.starts_with("iif ")
                    || l.starts_with("ip")
                    || l.starts_with("tcp ")
                    || l.starts_with("udp ")
                    || l.starts_with("ct ")
                    || l.starts_with("icmp")
                    || l.starts_with("limit ")
                    || l.starts_with("counter ")
                    || l.starts_with("meta ")
            })
            .collect();
        assert!(rules.len() > 15);
        for l in &rules {
            assert!(l.contains(" comment \""), "rule without a reason: {l}");
        }
        // The order that matters: loopback, state, admins, bans, services,
        // then the cleanup.
        let at = |s: &str| r.find(s).unwrap_or_else(|| panic!("{s} missing:\n{r}"));
        assert!(at("iif \"lo\" accept") < at("ct state invalid"));
        assert!(at("ct state established,related accept") < at("ip saddr @admin4"));
        let ban = "ip saddr @ban4 counter drop comment \"banned by the shield\"";
        assert!(at("ip saddr @admin4") < at(ban));
        assert!(at(ban) < at("udp dport 5060 accept"));
        assert!(
            at("udp dport 10000-20000 accept") < at("counter drop comment \"everything else\"")
        );
        // The shield's sets are used, never emptied.
        assert!(!r.contains("flush set inet hardline ban4"));
        assert!(r.contains("flush chain inet hardline firewall_in"));
        // IPv6 on: neighbour discovery passes.
        assert!(r.contains("nd-neighbor-solicit"));
    }

    #[test]
    fn options_change_what_they_say() {
        let c = FirewallConfig {
            ipv6: false,
            outbound: Outbound::Restricted,
            web_ports: vec![443, 8443],
            web_from: vec![cidr("203.0.113.0/24")],
            sip: vec![(Proto::Udp, 5060), (Proto::Tcp, 5061), (Proto::Udp, 5062)],
            rtp: None,
            ..cfg()
        };
        let r = render(&c).unwrap();
        assert!(r.contains("meta nfproto ipv6 counter drop"));
        assert!(!r.contains("icmpv6 type echo-request"));
        assert!(r.contains("udp dport { 5060, 5062 } accept"));
        assert!(r.contains("tcp dport 5061 accept"));
        assert!(r.contains("tcp dport { 443, 8443 } ip saddr @web4 accept"));
        assert!(r.contains("elements = { 203.0.113.0/24 }"));
        assert!(!r.contains("10000-20000"));
        assert!(r.contains("type filter hook output priority filter; policy drop;"));
        assert!(r.contains("th dport 53 accept"));
    }

    #[test]
    fn prefixes_overlap_when_they_share_an_address() {
        assert!(overlaps(&cidr("10.0.0.0/8"), &cidr("10.1.2.3/32")));
        assert!(!overlaps(&cidr("10.0.0.0/8"), &cidr("11.0.0.0/8")));
        assert!(overlaps(&cidr("0.0.0.0/0"), &cidr("192.0.2.1/32")));
        assert!(overlaps(&cidr("2001:db8::/32"), &cidr("2001:db8:1::/48")));
        assert!(!overlaps(&cidr("2001:db8::/32"), &cidr("10.0.0.0/8")));
    }
}
