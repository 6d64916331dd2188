//! The ban ledger: who is banned, by which rule, on what evidence, until
//! when; and how often a source was banned before, so repeat offenders get
//! longer bans. Times are Unix seconds: bans are stored and survive
//! restarts.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use crate::net::SourceKey;

/// Why a source was banned. Also the bounded label set of the ban metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// By an operator (`hardline ban add`).
    Manual,
    /// Packets per second above the flood limit.
    Flood,
    /// REGISTER requests per minute above the limit.
    RegisterFlood,
    /// INVITE requests per minute above the limit.
    InviteFlood,
    /// A known scanner's signature.
    Scanner,
    /// Requests for many distinct users without authenticating.
    Enumeration,
    /// Many OPTIONS without authenticating.
    OptionsSweep,
    /// Many requests addressed to the raw IP instead of the domain.
    RawIp,
    /// Wrong credentials, `maxretry` within `findtime`.
    AuthFailure,
}

impl Rule {
    pub const ALL: [Rule; 9] = [
        Rule::Manual,
        Rule::Flood,
        Rule::RegisterFlood,
        Rule::InviteFlood,
        Rule::Scanner,
        Rule::Enumeration,
        Rule::OptionsSweep,
        Rule::RawIp,
        Rule::AuthFailure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Manual => "manual",
            Rule::Flood => "flood",
            Rule::RegisterFlood => "register_flood",
            Rule::InviteFlood => "invite_flood",
            Rule::Scanner => "scanner",
            Rule::Enumeration => "enumeration",
            Rule::OptionsSweep => "options_sweep",
            Rule::RawIp => "raw_ip",
            Rule::AuthFailure => "auth_failure",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ban, with what `hardline ban explain` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    pub source: SourceKey,
    pub rule: Rule,
    /// What was seen: counters against their thresholds, sample values.
    pub evidence: String,
    /// Unix seconds.
    pub since: u64,
    /// Unix seconds; `None`: until removed by an operator.
    pub until: Option<u64>,
    /// 1 for a first ban; counts up for repeat offenders.
    pub offense: u32,
}

impl Ban {
    pub fn active(&self, now: u64) -> bool {
        self.until.is_none_or(|u| u > now)
    }

    /// Seconds left, `None` for a ban without end.
    pub fn remaining(&self, now: u64) -> Option<u64> {
        self.until.map(|u| u.saturating_sub(now))
    }
}

/// How long the `offense`-th ban lasts: `base * factor^(offense-1)`,
/// capped at `max`.
pub fn ban_secs(base: u64, factor: u32, max: u64, offense: u32) -> u64 {
    let mut secs = base;
    for _ in 1..offense {
        secs = secs.saturating_mul(u64::from(factor.max(1)));
        if secs >= max {
            return max;
        }
    }
    secs.min(max)
}

/// Bans in force, bounded; plus the offense history of recently banned
/// sources.
pub struct Ledger {
    bans: HashMap<SourceKey, Ban>,
    /// (until, source) of every ban with an end, for expiry in order.
    ends: BTreeSet<(u64, SourceKey)>,
    /// Offense count and end of the last ban (counted for `recidive`
    /// seconds after it).
    history: HashMap<SourceKey, (u32, u64)>,
    max: usize,
}

impl Ledger {
    pub fn new(max: usize) -> Ledger {
        Ledger {
            bans: HashMap::new(),
            ends: BTreeSet::new(),
            history: HashMap::new(),
            max: max.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.bans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bans.is_empty()
    }

    pub fn get(&self, key: SourceKey) -> Option<&Ban> {
        self.bans.get(&key)
    }

    pub fn is_banned(&self, key: SourceKey, now: u64) -> bool {
        self.bans.get(&key).is_some_and(|b| b.active(now))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Ban> {
        self.bans.values()
    }

    /// The next moment a ban ends.
    pub fn next_end(&self) -> Option<u64> {
        self.ends.first().map(|(u, _)| *u)
    }

    /// How many times `key` was banned within the recidive window.
    pub fn offenses(&self, key: SourceKey, now: u64, recidive: u64) -> u32 {
        match self.history.get(&key) {
            Some(&(n, end)) if end.saturating_add(recidive) > now => n,
            _ => 0,
        }
    }

    /// Puts `ban` in force (replacing any ban of the same source) and
    /// returns the ban evicted to stay within the bound, if any.
    pub fn insert(&mut self, ban: Ban) -> Option<Ban> {
        let key = ban.source;
        self.remove(key);
        let mut evicted = None;
        if self.bans.len() >= self.max {
            // The ban closest to its end goes; bans without end only when
            // every ban is one.
            let victim = match self.ends.first() {
                Some(&(_, k)) => Some(k),
                None => self.bans.keys().next().copied(),
            };
            evicted = victim.and_then(|k| self.remove(k));
        }
        self.history
            .insert(key, (ban.offense, ban.until.unwrap_or(u64::MAX)));
        if let Some(u) = ban.until {
            self.ends.insert((u, key));
        }
        self.bans.insert(key, ban);
        if self.history.len() > self.max.saturating_mul(2) {
            self.prune_history();
        }
        evicted
    }

    pub fn remove(&mut self, key: SourceKey) -> Option<Ban> {
        let ban = self.bans.remove(&key)?;
        if let Some(u) = ban.until {
            self.ends.remove(&(u, key));
        }
        Some(ban)
    }

    /// Takes out the bans that ended at or before `now`.
    pub fn expire(&mut self, now: u64) -> Vec<Ban> {
        let mut out = Vec::new();
        while let Some(&(u, k)) = self.ends.first() {
            if u > now {
                break;
            }
            self.ends.pop_first();
            if let Some(b) = self.bans.remove(&k) {
                out.push(b);
            }
        }
        out
    }

    /// Forgets the offense history whose window ended (and, if still too
    /// large, the oldest).
    fn prune_history(&mut self) {
        let mut ends: Vec<u64> = self.history.values().map(|&(_, e)| e).collect();
        ends.sort_unstable();
        let cut = ends[ends.len() - self.max];
        self.history.retain(|_, &mut (_, e)| e >= cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(k: u32, until: Option<u64>) -> Ban {
        Ban {
            source: SourceKey::V4(k),
            rule: Rule::Flood,
            evidence: String::new(),
            since: 0,
            until,
            offense: 1,
        }
    }

    #[test]
    fn growth_is_capped() {
        assert_eq!(ban_secs(3600, 4, 604_800, 1), 3600);
        assert_eq!(ban_secs(3600, 4, 604_800, 2), 14_400);
        assert_eq!(ban_secs(3600, 4, 604_800, 3), 57_600);
        assert_eq!(ban_secs(3600, 4, 604_800, 5), 604_800);
        assert_eq!(ban_secs(3600, 4, 604_800, u32::MAX), 604_800);
        assert_eq!(ban_secs(10, 0, 100, 3), 10, "factor 0 is taken as 1");
    }

    #[test]
    fn expiry_in_order_and_bounded() {
        let mut l = Ledger::new(3);
        assert!(l.insert(ban(1, Some(30))).is_none());
        assert!(l.insert(ban(2, Some(10))).is_none());
        assert!(l.insert(ban(3, None)).is_none());
        // Full: the one closest to its end makes room.
        let ev = l.insert(ban(4, Some(20))).unwrap();
        assert_eq!(ev.source, SourceKey::V4(2));
        assert_eq!(l.len(), 3);
        assert_eq!(l.next_end(), Some(20));
        assert!(l.is_banned(SourceKey::V4(4), 19));
        let gone: Vec<_> = l.expire(25).into_iter().map(|b| b.source).collect();
        assert_eq!(gone, vec![SourceKey::V4(4)]);
        assert!(!l.is_banned(SourceKey::V4(4), 19));
        assert!(l.is_banned(SourceKey::V4(3), u64::MAX - 1), "no end");
        assert_eq!(l.expire(1000).len(), 1);
        assert_eq!(l.len(), 1);
        // Re-banning replaces, and the history remembers the offense.
        let mut b = ban(1, Some(2000));
        b.offense = 2;
        l.insert(b);
        assert_eq!(l.offenses(SourceKey::V4(1), 5000, 7000), 2);
        assert_eq!(l.offenses(SourceKey::V4(1), 9000, 7000), 0);
        assert!(l.remove(SourceKey::V4(1)).is_some());
        assert_eq!(l.next_end(), None);
    }

    #[test]
    fn rules_round_trip() {
        for r in Rule::ALL {
            assert_eq!(Rule::parse(r.as_str()), Some(r));
        }
    }
}
