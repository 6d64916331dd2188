//! The security decisions of hardline, sans-IO like `sip`: the clock is
//! passed in and decisions and events are pulled out.
//!
//! - Admission before parsing ([`Shield::admit`], per datagram, message and
//!   connection): trusted sources pass, banned and blocklisted ones are
//!   dropped, and a per-source packet rate in a fixed-size table bans
//!   floods.
//! - Policy after parsing ([`Shield::inspect`]): scanner signatures,
//!   REGISTER/INVITE rates, and the heuristics that survive a changed
//!   User-Agent (many distinct users, OPTIONS sweeps, raw-IP addressing).
//! - Failed authentication ([`Shield::auth_failed`]): fail2ban semantics
//!   per source, shared-NAT awareness, distributed guessing per account.
//! - The ban ledger, whose changes come out as [`Event`]s for the kernel
//!   (see [`enforce`]), the store, logs and notifications.

pub mod config;
pub mod enforce;
pub mod firewall;
pub mod ledger;
pub mod net;

mod authfail;
mod policy;
mod table;

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::Instant;

use sip::message::Message;
use sip::method::Method;

pub use config::ShieldConfig;
pub use ledger::{Ban, Rule};
pub use net::{Cidr, PrefixSet, SourceKey};
pub use policy::SIGNATURES;

use authfail::{AuthFails, FailOutcome};
use ledger::Ledger;
use table::{SourceTable, Worth};

/// The two clock readings the sans-IO parts need: monotonic for rates and
/// timers, wall-clock seconds for what is stored (bans, registrations).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub unix: u64,
}

/// Why a packet or request is dropped (without a reply). Also the bounded
/// label set of the drop metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The source is banned.
    Banned,
    /// The source is on the blocklist or in a blocked country.
    Blocklist,
    /// This packet or request got the source banned.
    Rule(Rule),
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Banned => "banned",
            DropReason::Blocklist => "blocklist",
            DropReason::Rule(r) => r.as_str(),
        }
    }
}

/// The shield's answer about a packet or a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Pass,
    /// A trusted source: passes every check, never counted.
    Trusted,
    Drop(DropReason),
}

impl Decision {
    pub fn is_drop(self) -> bool {
        matches!(self, Decision::Drop(_))
    }
}

/// Why a ban ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unban {
    Expired,
    /// `hardline ban remove`.
    Operator,
    /// The address became trusted.
    Trusted,
    /// Made room in a full ledger.
    Evicted,
}

/// What the runtime acts on: kernel sets, the store, logs, notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Banned(Ban),
    Unbanned {
        ban: Ban,
        why: Unban,
    },
    /// Behind a shared NAT, one user failed `maxretry` times: that user is
    /// refused from that source until `until`, the source stays.
    UserBlocked {
        source: SourceKey,
        user: String,
        failures: usize,
        until: u64,
    },
    /// Distributed guessing: the account authenticates only from its known
    /// sources until `until`.
    AccountThrottled {
        user: String,
        failures: usize,
        sources: usize,
        until: u64,
    },
}

/// Why an operator's request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShieldError {
    #[error("{0} is trusted (shield.trusted or `hardline trust`); remove it from there to ban it")]
    Trusted(SourceKey),
}

/// A fixed 60-second counting window.
#[derive(Default, Clone, Copy)]
struct Window {
    start: u64,
    count: u32,
}

impl Window {
    fn hit(&mut self, now: u64) -> u32 {
        if now >= self.start.saturating_add(60) || self.count == 0 {
            self.start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count
    }

    fn current(&self, now: u64) -> u32 {
        if now >= self.start.saturating_add(60) {
            0
        } else {
            self.count
        }
    }
}

/// Per-source state of the admission table.
#[derive(Default)]
struct SourceState {
    /// Milliseconds since the shield's epoch; 0 for a new entry.
    seen_ms: u64,
    /// Token bucket of packets, in thousandths.
    tokens: u64,
    register: Window,
    invite: Window,
    options: Window,
    raw_ip: Window,
    /// Distinct target users in the current window: a 128-bit set of
    /// hashes, counted by [`distinct_estimate`].
    users_start: u64,
    users: u128,
    /// Unix seconds of the last successful authentication (0: never).
    auth_ok: u64,
}

impl SourceState {
    /// Whether the source authenticated within `window` seconds before
    /// `now`: a shared NAT (an office) gets the higher limits.
    fn authenticated_within(&self, window: u64, now: u64) -> bool {
        self.auth_ok != 0 && self.auth_ok.saturating_add(window) > now
    }
}

impl Worth for SourceState {
    fn worth(&self) -> (u8, u64) {
        let w = if self.auth_ok != 0 {
            2
        } else if self.users != 0 || self.register.count > 0 {
            1
        } else {
            0
        };
        (w, self.seen_ms)
    }
}

/// FNV-1a of a user name: no secret needed, the 128-bit set it indexes only
/// bounds what is counted.
fn user_hash(user: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in user.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// How many distinct users set the bits of `set` (linear counting: a user
/// sets one of 128 bits, so collisions hide some; this corrects for them,
/// within a few per cent at the thresholds used).
fn distinct_estimate(set: u128) -> u32 {
    let k = f64::from(set.count_ones());
    if k >= 128.0 {
        return u32::MAX;
    }
    (-128.0 * (1.0 - k / 128.0).ln()).round() as u32
}

/// Counters for `hardline ban explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub source: SourceKey,
    pub ban: Option<Ban>,
    pub trusted: bool,
    pub blocklisted: bool,
    /// Earlier bans within the recidive window (the next one is longer).
    pub offenses: u32,
    /// Wrong credentials within `findtime`.
    pub auth_failures: usize,
    pub register_last_min: u32,
    pub invite_last_min: u32,
    pub options_last_min: u32,
    pub distinct_users_last_min: u32,
    /// Unix seconds of the last successful authentication.
    pub last_auth_ok: Option<u64>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "source: {}", self.source)?;
        match &self.ban {
            Some(b) => {
                writeln!(f, "banned: yes, rule {} (offense {})", b.rule, b.offense)?;
                writeln!(f, "evidence: {}", b.evidence)?;
                writeln!(f, "since: {} (unix)", b.since)?;
                match b.until {
                    Some(u) => writeln!(f, "until: {u} (unix)")?,
                    None => writeln!(f, "until: removed by an operator")?,
                }
            }
            None => writeln!(f, "banned: no")?,
        }
        writeln!(f, "trusted: {}", if self.trusted { "yes" } else { "no" })?;
        writeln!(
            f,
            "blocklisted: {}",
            if self.blocklisted { "yes" } else { "no" }
        )?;
        writeln!(f, "earlier bans (recidive window): {}", self.offenses)?;
        writeln!(f, "wrong credentials (findtime): {}", self.auth_failures)?;
        writeln!(
            f,
            "last minute: {} REGISTER, {} INVITE, {} OPTIONS, {} distinct users",
            self.register_last_min,
            self.invite_last_min,
            self.options_last_min,
            self.distinct_users_last_min
        )?;
        match self.last_auth_ok {
            Some(t) => write!(f, "last successful authentication: {t} (unix)"),
            None => write!(f, "last successful authentication: never seen"),
        }
    }
}

pub struct Shield {
    cfg: ShieldConfig,
    epoch: Instant,
    trusted: PrefixSet,
    /// Added at run time (`hardline trust add`), on top of `cfg.trusted`.
    extra_trusted: Vec<Cidr>,
    blocked: PrefixSet,
    sources: SourceTable<SourceState>,
    ledger: Ledger,
    fails: AuthFails,
    signatures: policy::Signatures,
    extensions: usize,
    domain_is_name: bool,
    events: VecDeque<Event>,
    next_sweep: u64,
}

/// Most events held for the runtime; past it the oldest go (the runtime
/// drains them after every input, so this only bounds a stalled runtime).
const MAX_EVENTS: usize = 4096;

impl Shield {
    /// `blocked_extra`: prefixes of blocked countries (zone files read by
    /// the caller). `domain`: the SIP domain, to tell raw-IP addressing.
    pub fn new(cfg: ShieldConfig, blocked_extra: &[Cidr], domain: &str, now: Now) -> Shield {
        let sources = SourceTable::new(cfg.sources);
        let ledger = Ledger::new(cfg.max_bans);
        let mut s = Shield {
            trusted: PrefixSet::default(),
            extra_trusted: Vec::new(),
            blocked: PrefixSet::default(),
            sources,
            ledger,
            fails: AuthFails::new(),
            signatures: policy::Signatures::new(&[]),
            extensions: 0,
            domain_is_name: true,
            events: VecDeque::new(),
            next_sweep: now.unix,
            epoch: now.mono,
            cfg,
        };
        s.apply(blocked_extra, domain);
        s
    }

    /// A reloaded configuration; bans, counters and history stay.
    pub fn reconfigure(
        &mut self,
        cfg: ShieldConfig,
        blocked_extra: &[Cidr],
        domain: &str,
        now: Now,
    ) {
        self.cfg = cfg;
        self.apply(blocked_extra, domain);
        self.lift_trusted(now);
    }

    fn apply(&mut self, blocked_extra: &[Cidr], domain: &str) {
        self.trusted = PrefixSet::new(self.cfg.trusted.iter().chain(&self.extra_trusted));
        self.blocked = PrefixSet::new(self.cfg.blocklist.iter().chain(blocked_extra));
        self.signatures = policy::Signatures::new(&self.cfg.scan.extra_signatures);
        self.domain_is_name = domain.trim_matches(['[', ']']).parse::<IpAddr>().is_err();
    }

    pub fn config(&self) -> &ShieldConfig {
        &self.cfg
    }

    pub fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// The number of extensions, which scales the REGISTER/INVITE limits.
    pub fn set_extensions(&mut self, n: usize) {
        self.extensions = n;
    }

    /// Replaces the run-time trusted list; bans it covers are lifted.
    pub fn set_extra_trusted(&mut self, cidrs: Vec<Cidr>, now: Now) {
        self.extra_trusted = cidrs;
        self.trusted = PrefixSet::new(self.cfg.trusted.iter().chain(&self.extra_trusted));
        self.lift_trusted(now);
    }

    fn lift_trusted(&mut self, _now: Now) {
        let covered: Vec<SourceKey> = self
            .ledger
            .iter()
            .map(|b| b.source)
            .filter(|k| self.trusted.matches_source(*k))
            .collect();
        for k in covered {
            if let Some(ban) = self.ledger.remove(k) {
                self.push(Event::Unbanned {
                    ban,
                    why: Unban::Trusted,
                });
            }
        }
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.contains(ip)
    }

    fn push(&mut self, e: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn ms(&self, now: Now) -> u64 {
        (now.mono.saturating_duration_since(self.epoch).as_millis() as u64).max(1)
    }

    /// Admission of one datagram, stream message or new connection from
    /// `ip`, before any parsing.
    pub fn admit(&mut self, now: Now, ip: IpAddr) -> Decision {
        if !self.cfg.enabled {
            return Decision::Pass;
        }
        if self.trusted.contains(ip) {
            return Decision::Trusted;
        }
        let key = SourceKey::of(ip);
        if self.ledger.is_banned(key, now.unix) {
            return Decision::Drop(DropReason::Banned);
        }
        if self.blocked.contains(ip) {
            return Decision::Drop(DropReason::Blocklist);
        }
        let ms = self.ms(now);
        let f = &self.cfg.flood;
        let (mut rate, mut burst) = (u64::from(f.packet_rate), u64::from(f.packet_burst.max(1)));
        let nat_window = self.cfg.auth.nat_window_secs;
        let nat_factor = u64::from(f.nat_factor.max(1));
        let st = self.sources.entry(key);
        if st.authenticated_within(nat_window, now.unix) {
            rate = rate.saturating_mul(nat_factor);
            burst = burst.saturating_mul(nat_factor);
        }
        let cap = burst.saturating_mul(1000);
        if st.seen_ms == 0 {
            st.tokens = cap;
        } else {
            let elapsed = ms.saturating_sub(st.seen_ms);
            st.tokens = st
                .tokens
                .saturating_add(elapsed.saturating_mul(rate))
                .min(cap);
        }
        st.seen_ms = ms;
        if st.tokens < 1000 {
            let evidence = format!(
                "more than {burst} packets at once or {rate}/s sustained (flood.packet_rate {}, packet_burst {}{})",
                f.packet_rate,
                f.packet_burst,
                if rate > u64::from(f.packet_rate) { ", raised for a source that authenticated" } else { "" }
            );
            self.ban(now, key, Rule::Flood, evidence);
            return Decision::Drop(DropReason::Rule(Rule::Flood));
        }
        st.tokens -= 1000;
        Decision::Pass
    }

    /// Policy for a parsed request from `ip` (responses pass).
    pub fn inspect(&mut self, now: Now, ip: IpAddr, msg: &Message) -> Decision {
        if !self.cfg.enabled {
            return Decision::Pass;
        }
        if self.trusted.contains(ip) {
            return Decision::Trusted;
        }
        let Some(method) = msg.method() else {
            return Decision::Pass;
        };
        let key = SourceKey::of(ip);
        if self.ledger.is_banned(key, now.unix) {
            return Decision::Drop(DropReason::Banned);
        }
        let in_dialog = msg.to_tag().is_some();
        if !in_dialog && self.cfg.scan.signatures {
            if let Some(sig) = self.signatures.find(msg) {
                let evidence = format!("scanner signature \"{sig}\" in a {method} request");
                self.ban(now, key, Rule::Scanner, evidence);
                return Decision::Drop(DropReason::Rule(Rule::Scanner));
            }
        }
        if in_dialog {
            return Decision::Pass;
        }
        let t = now.unix;
        let ext = self.extensions;
        let nat_factor = self.cfg.flood.nat_factor.max(1);
        let st = self.sources.entry(key);
        let nat = st.authenticated_within(self.cfg.auth.nat_window_secs, t);
        let scale = |limit: u32| {
            if nat {
                limit.saturating_mul(nat_factor)
            } else {
                limit
            }
        };
        let mut verdict: Option<(Rule, String)> = None;
        match method {
            Method::Register => {
                let n = st.register.hit(t);
                let limit = scale(self.cfg.flood.register_limit(ext));
                if n > limit {
                    verdict = Some((
                        Rule::RegisterFlood,
                        format!("{n} REGISTER within 60 s (limit {limit})"),
                    ));
                }
            }
            Method::Invite => {
                let n = st.invite.hit(t);
                let limit = scale(self.cfg.flood.invite_limit(ext));
                if n > limit {
                    verdict = Some((
                        Rule::InviteFlood,
                        format!("{n} INVITE within 60 s (limit {limit})"),
                    ));
                }
            }
            Method::Options if !nat => {
                let n = st.options.hit(t);
                let limit = self.cfg.scan.options_per_min;
                if n > limit {
                    verdict = Some((
                        Rule::OptionsSweep,
                        format!("{n} OPTIONS within 60 s from a source that never authenticated (limit {limit})"),
                    ));
                }
            }
            _ => {}
        }
        if verdict.is_none() && !nat && !policy::has_credentials(msg) {
            if policy::addressed_to_raw_ip(msg, self.domain_is_name) {
                let n = st.raw_ip.hit(t);
                let limit = self.cfg.scan.raw_ip_per_min;
                if n > limit {
                    verdict = Some((
                        Rule::RawIp,
                        format!("{n} requests without credentials addressed to the raw IP within 60 s (limit {limit})"),
                    ));
                }
            }
            if let Some(user) = policy::target_user(msg) {
                if t >= st.users_start.saturating_add(60) {
                    st.users_start = t;
                    st.users = 0;
                }
                st.users |= 1u128 << (user_hash(&user) & 127);
                let n = distinct_estimate(st.users);
                let limit = self.cfg.scan.distinct_users;
                if verdict.is_none() && n > limit {
                    verdict = Some((
                        Rule::Enumeration,
                        format!("about {n} distinct users asked for within 60 s without credentials (limit {limit}), the last \"{user}\""),
                    ));
                }
            }
        }
        match verdict {
            Some((rule, evidence)) => {
                self.ban(now, key, rule, evidence);
                Decision::Drop(DropReason::Rule(rule))
            }
            None => Decision::Pass,
        }
    }

    /// Whether `user` may authenticate from `ip` now. When not, the caller
    /// answers exactly as to a wrong password (no sign of the throttle).
    pub fn auth_allowed(&self, now: Now, ip: IpAddr, user: &str) -> bool {
        !self.cfg.enabled
            || self.trusted.contains(ip)
            || self
                .fails
                .allowed(&self.cfg.account, SourceKey::of(ip), user, now.unix)
    }

    /// A wrong credential (not a missing one, not a stale nonce) from `ip`
    /// for `user`; `known_account`: the user exists.
    pub fn auth_failed(&mut self, now: Now, ip: IpAddr, user: &str, known_account: bool) {
        if !self.cfg.enabled || self.trusted.contains(ip) {
            return;
        }
        let key = SourceKey::of(ip);
        let t = now.unix;
        let window = self.cfg.auth.nat_window_secs;
        let nat = self
            .sources
            .get(key)
            .is_some_and(|st| st.authenticated_within(window, t));
        match self.fails.failure(&self.cfg.auth, key, user, nat, t) {
            FailOutcome::BanSource { failures, users } => {
                let evidence = format!(
                    "{failures} wrong credentials within {} s (maxretry {}{}), users {}",
                    self.cfg.auth.findtime_secs,
                    if nat {
                        self.cfg.auth.nat_maxretry
                    } else {
                        self.cfg.auth.maxretry
                    },
                    if nat { ", shared NAT" } else { "" },
                    users.join(", ")
                );
                self.ban(now, key, Rule::AuthFailure, evidence);
            }
            FailOutcome::BlockUser { failures, until } => self.push(Event::UserBlocked {
                source: key,
                user: user.chars().take(64).collect(),
                failures,
                until,
            }),
            FailOutcome::Counted => {}
        }
        if known_account {
            if let Some((until, failures, sources)) =
                self.fails.account_failure(&self.cfg.account, key, user, t)
            {
                self.push(Event::AccountThrottled {
                    user: user.chars().take(64).collect(),
                    failures,
                    sources,
                    until,
                });
            }
        }
    }

    /// A successful authentication of `user` from `ip`.
    pub fn auth_ok(&mut self, now: Now, ip: IpAddr, user: &str) {
        if !self.cfg.enabled {
            return;
        }
        let key = SourceKey::of(ip);
        self.sources.entry(key).auth_ok = now.unix.max(1);
        self.fails.success(key, user, now.unix);
    }

    fn ban(&mut self, now: Now, key: SourceKey, rule: Rule, evidence: String) -> Ban {
        let offense = self.ledger.offenses(key, now.unix, self.cfg.recidive_secs) + 1;
        let base = if rule == Rule::AuthFailure {
            self.cfg.auth.bantime_secs
        } else {
            self.cfg.bantime_secs
        };
        let secs = ledger::ban_secs(
            base,
            self.cfg.bantime_factor,
            self.cfg.bantime_max_secs,
            offense,
        );
        let ban = Ban {
            source: key,
            rule,
            evidence,
            since: now.unix,
            until: Some(now.unix.saturating_add(secs)),
            offense,
        };
        self.record(ban.clone());
        ban
    }

    fn record(&mut self, ban: Ban) {
        if let Some(ev) = self.ledger.insert(ban.clone()) {
            self.push(Event::Unbanned {
                ban: ev,
                why: Unban::Evicted,
            });
        }
        self.push(Event::Banned(ban));
    }

    /// An operator's ban (`hardline ban add`); `secs: None` lasts until
    /// removed.
    pub fn ban_manual(
        &mut self,
        now: Now,
        key: SourceKey,
        reason: &str,
        secs: Option<u64>,
    ) -> Result<Ban, ShieldError> {
        if self.trusted.matches_source(key) {
            return Err(ShieldError::Trusted(key));
        }
        let offense = self.ledger.offenses(key, now.unix, self.cfg.recidive_secs) + 1;
        let ban = Ban {
            source: key,
            rule: Rule::Manual,
            evidence: if reason.is_empty() {
                "banned by an operator".to_string()
            } else {
                format!(
                    "banned by an operator: {}",
                    reason.chars().take(200).collect::<String>()
                )
            },
            since: now.unix,
            until: secs.map(|s| now.unix.saturating_add(s)),
            offense,
        };
        self.record(ban.clone());
        Ok(ban)
    }

    /// Lifts a ban (`hardline ban remove`).
    pub fn unban(&mut self, key: SourceKey) -> Option<Ban> {
        let ban = self.ledger.remove(key)?;
        self.push(Event::Unbanned {
            ban: ban.clone(),
            why: Unban::Operator,
        });
        Some(ban)
    }

    /// Bans read back from the store at start-up: those still in force and
    /// not trusted are restored (without events: the caller loads the
    /// kernel from [`Shield::bans`]).
    pub fn restore(&mut self, now: Now, bans: impl IntoIterator<Item = Ban>) -> usize {
        let mut n = 0;
        for b in bans {
            if b.active(now.unix) && !self.trusted.matches_source(b.source) {
                self.ledger.insert(b);
                n += 1;
            }
        }
        n
    }

    pub fn bans(&self) -> impl Iterator<Item = &Ban> {
        self.ledger.iter()
    }

    pub fn ban_count(&self) -> usize {
        self.ledger.len()
    }

    pub fn explain(&self, now: Now, key: SourceKey) -> Explanation {
        let st = self.sources.get(key);
        let t = now.unix;
        Explanation {
            source: key,
            ban: self.ledger.get(key).filter(|b| b.active(t)).cloned(),
            trusted: self.trusted.matches_source(key),
            blocklisted: self.blocked.matches_source(key),
            offenses: self.ledger.offenses(key, t, self.cfg.recidive_secs),
            auth_failures: self.fails.recent(&self.cfg.auth, key, t),
            register_last_min: st.map_or(0, |s| s.register.current(t)),
            invite_last_min: st.map_or(0, |s| s.invite.current(t)),
            options_last_min: st.map_or(0, |s| s.options.current(t)),
            distinct_users_last_min: st
                .filter(|s| t < s.users_start.saturating_add(60))
                .map_or(0, |s| distinct_estimate(s.users)),
            last_auth_ok: st.map(|s| s.auth_ok).filter(|&a| a != 0),
        }
    }

    /// Until when `user` is throttled against distributed guessing.
    pub fn account_throttled(&self, now: Now, user: &str) -> Option<u64> {
        self.fails.throttled(user, now.unix)
    }

    /// The next Unix second at which [`Shield::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<u64> {
        let sweep = Some(self.next_sweep);
        match self.ledger.next_end() {
            Some(e) => sweep.map(|s| s.min(e)),
            None => sweep,
        }
    }

    /// Ends bans that ran out; forgets stale counters once a minute.
    pub fn handle_timeout(&mut self, now: Now) {
        for ban in self.ledger.expire(now.unix) {
            self.push(Event::Unbanned {
                ban,
                why: Unban::Expired,
            });
        }
        if now.unix >= self.next_sweep {
            self.next_sweep = now.unix + 60;
            self.fails
                .expire(&self.cfg.auth, &self.cfg.account, now.unix);
        }
    }

    /// Sources in the admission table, and its fixed capacity.
    pub fn table_usage(&self) -> (usize, usize) {
        (self.sources.len(), self.sources.capacity())
    }
}

#[cfg(test)]
mod tests;
