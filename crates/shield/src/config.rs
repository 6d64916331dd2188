//! The shield's settings, with the defaults every install gets. `mgmt`
//! reads them from `[shield]`; every field has a default, so an empty
//! section (or none) is a fully protected server.

use crate::net::Cidr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShieldConfig {
    /// `false` turns every protection off (admission, policy, bans).
    pub enabled: bool,
    /// Copy bans into the kernel (nftables sets); `false` keeps them
    /// in-process only (another tool owns the host's nftables).
    pub kernel: bool,
    /// Never rate-limited, never banned; a trusted address overrides a ban.
    pub trusted: Vec<Cidr>,
    /// Always dropped, without a ban record.
    pub blocklist: Vec<Cidr>,
    pub flood: FloodConfig,
    pub auth: AuthConfig,
    pub account: AccountConfig,
    pub scan: ScanConfig,
    pub calls: CallsConfig,
    /// Base ban time for flood, scanner and enumeration bans.
    pub bantime_secs: u64,
    /// Each further ban of the same source within `recidive_secs` lasts
    /// `bantime_factor` times longer, up to `bantime_max_secs`.
    pub bantime_factor: u32,
    pub bantime_max_secs: u64,
    pub recidive_secs: u64,
    /// Most bans held at once; past it the one closest to expiry goes. A
    /// ban with its evidence is a few hundred bytes: 20 000 stay within a
    /// router's memory.
    pub max_bans: usize,
    /// Slots of the per-source table (fixed: a spoofed flood cannot grow it).
    pub sources: usize,
}

/// Per-source flood limits, checked before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloodConfig {
    /// Sustained packets (or TCP messages) per second from one source.
    pub packet_rate: u32,
    /// Packets a source may send at once above the sustained rate.
    pub packet_burst: u32,
    /// REGISTER requests per source per 60 s; `None`: scaled by the number
    /// of extensions (see [`FloodConfig::register_limit`]).
    pub register_per_min: Option<u32>,
    /// INVITE requests per source per 60 s; `None`: scaled likewise.
    pub invite_per_min: Option<u32>,
    /// A source that authenticated recently (an office NAT) gets the rate,
    /// burst and per-minute limits times this.
    pub nat_factor: u32,
}

impl FloodConfig {
    /// A phone sends two REGISTERs per refresh (challenge, then credentials);
    /// an office behind one address holds several phones. 20 + 4 per
    /// extension in 60 s covers every phone of the site re-registering at
    /// once, twice over.
    pub fn register_limit(&self, extensions: usize) -> u32 {
        self.register_per_min
            .unwrap_or_else(|| 20u32.saturating_add(4u32.saturating_mul(extensions as u32)))
    }

    /// Two INVITEs per call (challenge, then credentials): 20 + 2 per
    /// extension in 60 s.
    pub fn invite_limit(&self, extensions: usize) -> u32 {
        self.invite_per_min
            .unwrap_or_else(|| 20u32.saturating_add(2u32.saturating_mul(extensions as u32)))
    }
}

/// Failed-authentication banning (fail2ban's maxretry / findtime / bantime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Wrong credentials from one source within `findtime_secs` that ban it.
    pub maxretry: u32,
    pub findtime_secs: u64,
    /// First ban; repeat offenders get longer ones (see `bantime_factor`).
    pub bantime_secs: u64,
    /// A source with a successful authentication within this window counts
    /// as a shared NAT: failures there block the failing user from that
    /// source (not the source), and the source is banned only when failures
    /// reach `nat_maxretry` across several users.
    pub nat_window_secs: u64,
    pub nat_maxretry: u32,
}

/// Distributed guessing against one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountConfig {
    /// Wrong credentials for one account within `window_secs`, from at
    /// least `min_sources` sources, that throttle it.
    pub max_failures: u32,
    pub min_sources: u32,
    pub window_secs: u64,
    /// While throttled, the account authenticates only from the sources it
    /// registered from within `known_source_secs`.
    pub throttle_secs: u64,
    pub known_source_secs: u64,
}

/// Scanner detection after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanConfig {
    /// Ban on a known scanner signature (User-Agent, From/To/Contact, SDP).
    pub signatures: bool,
    /// Extra signatures (case-insensitive substrings), added to the built-in
    /// ones.
    pub extra_signatures: Vec<String>,
    /// Distinct target users from one unauthenticated source within 60 s
    /// that count as enumeration.
    pub distinct_users: u32,
    /// OPTIONS requests from one unauthenticated source within 60 s.
    pub options_per_min: u32,
    /// Requests without credentials addressed to the server's raw IP
    /// (instead of its domain) from one unauthenticated source within 60 s.
    pub raw_ip_per_min: u32,
}

/// Toll-fraud brakes on calls (the proxy applies them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallsConfig {
    /// Calls one extension may have in progress (ringing or answered).
    pub max_concurrent: u32,
    /// Calls one extension may start per 60 s.
    pub per_minute: u32,
    /// A call whose BYE was never seen is forgotten after this long.
    pub max_duration_secs: u64,
    /// `(alias, extension)`: the only targets callable without
    /// authentication (public SIP URI calling). None by default.
    pub public_aliases: Vec<(String, String)>,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            max_concurrent: 4,
            per_minute: 10,
            max_duration_secs: 4 * 3600,
            public_aliases: Vec::new(),
        }
    }
}

impl Default for ShieldConfig {
    fn default() -> Self {
        ShieldConfig {
            enabled: true,
            kernel: true,
            trusted: Vec::new(),
            blocklist: Vec::new(),
            flood: FloodConfig {
                packet_rate: 10,
                packet_burst: 60,
                register_per_min: None,
                invite_per_min: None,
                nat_factor: 10,
            },
            auth: AuthConfig {
                maxretry: 5,
                findtime_secs: 600,
                bantime_secs: 3600,
                nat_window_secs: 3600,
                nat_maxretry: 20,
            },
            account: AccountConfig {
                max_failures: 10,
                min_sources: 3,
                window_secs: 600,
                throttle_secs: 3600,
                known_source_secs: 7 * 86_400,
            },
            scan: ScanConfig {
                signatures: true,
                extra_signatures: Vec::new(),
                distinct_users: 30,
                options_per_min: 30,
                raw_ip_per_min: 30,
            },
            calls: CallsConfig::default(),
            bantime_secs: 3600,
            bantime_factor: 4,
            bantime_max_secs: 7 * 86_400,
            recidive_secs: 7 * 86_400,
            max_bans: 20_000,
            sources: 16_384,
        }
    }
}
