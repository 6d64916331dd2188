//! Failed-authentication tracking: per source with fail2ban's semantics
//! (`maxretry` wrong credentials within `findtime`), per (source, user)
//! behind a shared NAT, and per account against distributed guessing.
//!
//! Only wrong credentials are counted: a request without credentials is a
//! normal challenge, and a stale or forged nonce is not a guess. Failures
//! need a real round trip (a nonce we issued), so spoofed traffic cannot
//! fill these tables; they are bounded all the same.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

use crate::config::{AccountConfig, AuthConfig};
use crate::net::SourceKey;

/// Most sources, accounts and (source, user) blocks tracked at once.
const MAX_TRACKED: usize = 65_536;
/// Users remembered per failing source.
const USERS_PER_SOURCE: usize = 16;
/// Known sources remembered per account.
const KNOWN_PER_ACCOUNT: usize = 16;

#[derive(Default)]
struct SourceFails {
    /// Unix seconds of recent failures, oldest first.
    times: VecDeque<u64>,
    /// Recent failures per user (hash of the name), for NAT sources.
    users: Vec<(u64, VecDeque<u64>, String)>,
    last: u64,
}

/// What a failure led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailOutcome {
    /// Below every threshold.
    Counted,
    /// The source reached `maxretry` (or `nat_maxretry`): ban it.
    BanSource { failures: usize, users: Vec<String> },
    /// A shared NAT: only this user is blocked from this source.
    BlockUser { failures: usize, until: u64 },
}

#[derive(Default)]
struct Account {
    /// (time, source) of recent failures.
    fails: VecDeque<(u64, SourceKey)>,
    throttled_until: u64,
    /// Sources the account authenticated from, with the last time.
    known: Vec<(SourceKey, u64)>,
    last: u64,
}

pub(crate) struct AuthFails {
    sources: HashMap<SourceKey, SourceFails>,
    blocked: HashMap<(SourceKey, u64), u64>,
    accounts: HashMap<String, Account>,
    hasher: std::collections::hash_map::RandomState,
}

fn prune(q: &mut VecDeque<u64>, since: u64) {
    while q.front().is_some_and(|&t| t < since) {
        q.pop_front();
    }
}

/// Removes the least recently active entry when `map` is full.
fn make_room<K: Clone + Eq + Hash, V>(map: &mut HashMap<K, V>, last: impl Fn(&V) -> u64) {
    if map.len() >= MAX_TRACKED {
        if let Some(k) = map
            .iter()
            .min_by_key(|(_, v)| last(v))
            .map(|(k, _)| k.clone())
        {
            map.remove(&k);
        }
    }
}

impl AuthFails {
    pub(crate) fn new() -> Self {
        AuthFails {
            sources: HashMap::new(),
            blocked: HashMap::new(),
            accounts: HashMap::new(),
            hasher: Default::default(),
        }
    }

    fn user_hash(&self, user: &str) -> u64 {
        self.hasher.hash_one(user)
    }

    /// Records a wrong credential from `src` for `user`. `nat`: the source
    /// authenticated successfully within the NAT window.
    pub(crate) fn failure(
        &mut self,
        cfg: &AuthConfig,
        src: SourceKey,
        user: &str,
        nat: bool,
        now: u64,
    ) -> FailOutcome {
        let since = now.saturating_sub(cfg.findtime_secs);
        let uh = self.user_hash(user);
        if !self.sources.contains_key(&src) {
            make_room(&mut self.sources, |v| v.last);
        }
        let st = self.sources.entry(src).or_default();
        st.last = now;
        prune(&mut st.times, since);
        st.times.push_back(now);
        let cap = cfg.maxretry.max(cfg.nat_maxretry).max(1) as usize;
        while st.times.len() > cap {
            st.times.pop_front();
        }
        for (_, q, _) in st.users.iter_mut() {
            prune(q, since);
        }
        st.users.retain(|(_, q, _)| !q.is_empty());
        let per_user = match st.users.iter().position(|(h, _, _)| *h == uh) {
            Some(i) => i,
            None => {
                if st.users.len() >= USERS_PER_SOURCE {
                    st.users.remove(0);
                }
                st.users
                    .push((uh, VecDeque::new(), user.chars().take(64).collect()));
                st.users.len() - 1
            }
        };
        let q = &mut st.users[per_user].1;
        q.push_back(now);
        while q.len() > cap {
            q.pop_front();
        }
        let user_fails = q.len();
        let total = st.times.len();
        let users: Vec<String> = st.users.iter().map(|(_, _, n)| n.clone()).collect();
        if !nat {
            if total >= cfg.maxretry as usize {
                return FailOutcome::BanSource {
                    failures: total,
                    users,
                };
            }
            return FailOutcome::Counted;
        }
        // A shared NAT: the source goes only when failures reach the NAT
        // threshold across more than one user (a guesser trying accounts
        // from inside the office); one failing phone blocks only itself.
        if total >= cfg.nat_maxretry as usize && users.len() > 1 {
            return FailOutcome::BanSource {
                failures: total,
                users,
            };
        }
        if user_fails >= cfg.maxretry as usize {
            let until = now.saturating_add(cfg.bantime_secs);
            if !self.blocked.contains_key(&(src, uh)) {
                make_room(&mut self.blocked, |&u| u);
            }
            self.blocked.insert((src, uh), until);
            return FailOutcome::BlockUser {
                failures: user_fails,
                until,
            };
        }
        FailOutcome::Counted
    }

    /// Records a wrong credential against a known account; returns the end
    /// of a throttle that starts now.
    pub(crate) fn account_failure(
        &mut self,
        cfg: &AccountConfig,
        src: SourceKey,
        user: &str,
        now: u64,
    ) -> Option<(u64, usize, usize)> {
        if !self.accounts.contains_key(user) {
            make_room(&mut self.accounts, |a| a.last);
        }
        let a = self.accounts.entry(user.to_string()).or_default();
        a.last = now;
        let since = now.saturating_sub(cfg.window_secs);
        while a.fails.front().is_some_and(|&(t, _)| t < since) {
            a.fails.pop_front();
        }
        a.fails.push_back((now, src));
        let cap = (cfg.max_failures as usize).max(1) * 4;
        while a.fails.len() > cap {
            a.fails.pop_front();
        }
        let mut sources: Vec<SourceKey> = a.fails.iter().map(|&(_, s)| s).collect();
        sources.sort_unstable();
        sources.dedup();
        if a.throttled_until <= now
            && a.fails.len() >= cfg.max_failures as usize
            && sources.len() >= cfg.min_sources as usize
        {
            a.throttled_until = now.saturating_add(cfg.throttle_secs);
            return Some((a.throttled_until, a.fails.len(), sources.len()));
        }
        None
    }

    /// A successful authentication: the source becomes known to the account.
    pub(crate) fn success(&mut self, src: SourceKey, user: &str, now: u64) {
        let uh = self.user_hash(user);
        self.blocked.remove(&(src, uh));
        if let Some(st) = self.sources.get_mut(&src) {
            for (h, q, _) in st.users.iter_mut() {
                if *h == uh {
                    q.clear();
                }
            }
        }
        if !self.accounts.contains_key(user) {
            make_room(&mut self.accounts, |a| a.last);
        }
        let a = self.accounts.entry(user.to_string()).or_default();
        a.last = now;
        match a.known.iter_mut().find(|(s, _)| *s == src) {
            Some(k) => k.1 = now,
            None => {
                if a.known.len() >= KNOWN_PER_ACCOUNT {
                    if let Some(i) = (0..a.known.len()).min_by_key(|&i| a.known[i].1) {
                        a.known.remove(i);
                    }
                }
                a.known.push((src, now));
            }
        }
    }

    /// Whether `user` may authenticate from `src` now: not blocked for that
    /// source, and the account not throttled, or `src` a source it
    /// authenticated from recently.
    pub(crate) fn allowed(
        &self,
        cfg: &AccountConfig,
        src: SourceKey,
        user: &str,
        now: u64,
    ) -> bool {
        if self
            .blocked
            .get(&(src, self.user_hash(user)))
            .is_some_and(|&until| until > now)
        {
            return false;
        }
        match self.accounts.get(user) {
            Some(a) if a.throttled_until > now => a
                .known
                .iter()
                .any(|&(s, t)| s == src && t.saturating_add(cfg.known_source_secs) > now),
            _ => true,
        }
    }

    /// Until when `user` is throttled, if it is.
    pub(crate) fn throttled(&self, user: &str, now: u64) -> Option<u64> {
        self.accounts
            .get(user)
            .map(|a| a.throttled_until)
            .filter(|&u| u > now)
    }

    /// Failures of `src` within `findtime` (for `ban explain`).
    pub(crate) fn recent(&self, cfg: &AuthConfig, src: SourceKey, now: u64) -> usize {
        let since = now.saturating_sub(cfg.findtime_secs);
        self.sources
            .get(&src)
            .map_or(0, |s| s.times.iter().filter(|&&t| t >= since).count())
    }

    /// Drops state older than every window.
    pub(crate) fn expire(&mut self, auth: &AuthConfig, acct: &AccountConfig, now: u64) {
        let src_since = now.saturating_sub(auth.findtime_secs);
        self.sources.retain(|_, s| s.last >= src_since);
        self.blocked.retain(|_, &mut until| until > now);
        let keep = acct.window_secs.max(acct.known_source_secs);
        self.accounts
            .retain(|_, a| a.throttled_until > now || a.last.saturating_add(keep) > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ShieldConfig;

    #[test]
    fn fail2ban_semantics() {
        let cfg = ShieldConfig::default().auth;
        let mut f = AuthFails::new();
        let s = SourceKey::V4(1);
        // A slow guesser: one failure every 100 s still reaches maxretry
        // within findtime (600 s).
        for i in 0..4 {
            assert_eq!(
                f.failure(&cfg, s, "1000", false, 100 * i),
                FailOutcome::Counted
            );
        }
        assert!(matches!(
            f.failure(&cfg, s, "1000", false, 400),
            FailOutcome::BanSource { failures: 5, .. }
        ));
        // Slower than findtime: never five within the window.
        let t = SourceKey::V4(2);
        for i in 0..20 {
            assert_eq!(
                f.failure(&cfg, t, "1000", false, 10_000 + 200 * i),
                FailOutcome::Counted
            );
        }
    }

    #[test]
    fn shared_nat_blocks_the_user_not_the_office() {
        let cfg = ShieldConfig::default().auth;
        let mut f = AuthFails::new();
        let office = SourceKey::V4(9);
        let mut blocked = false;
        for i in 0..50 {
            match f.failure(&cfg, office, "1007", true, 1000 + i) {
                FailOutcome::BanSource { .. } => panic!("one phone got the office banned"),
                FailOutcome::BlockUser { .. } => blocked = true,
                FailOutcome::Counted => {}
            }
        }
        assert!(blocked);
        let acct = ShieldConfig::default().account;
        assert!(!f.allowed(&acct, office, "1007", 1100));
        assert!(
            f.allowed(&acct, office, "1008", 1100),
            "neighbours unaffected"
        );
        // A guesser inside the office trying many accounts is banned.
        let mut banned = false;
        for i in 0..40 {
            if let FailOutcome::BanSource { .. } =
                f.failure(&cfg, office, &format!("u{}", i % 8), true, 1200 + i)
            {
                banned = true;
            }
        }
        assert!(banned);
        // Fixing the phone's password clears its block.
        f.success(office, "1007", 1300);
        assert!(f.allowed(&acct, office, "1007", 1301));
    }

    #[test]
    fn distributed_guessing_throttles_unknown_sources_only() {
        let acct = ShieldConfig::default().account;
        let mut f = AuthFails::new();
        let home = SourceKey::V4(100);
        f.success(home, "1000", 10);
        let mut throttled = None;
        for src in 0..10u32 {
            for g in 0..3u64 {
                if let Some(t) = f.account_failure(&acct, SourceKey::V4(src), "1000", 20 + g) {
                    throttled.get_or_insert(t);
                }
            }
        }
        let (until, fails, sources) = throttled.expect("throttled");
        assert!(fails >= 10 && sources >= 3);
        assert!(!f.allowed(&acct, SourceKey::V4(5), "1000", 30));
        assert!(
            !f.allowed(&acct, SourceKey::V4(999), "1000", 30),
            "a new source"
        );
        assert!(
            f.allowed(&acct, home, "1000", 30),
            "the real user keeps working"
        );
        assert!(
            f.allowed(&acct, SourceKey::V4(5), "1001", 30),
            "other accounts"
        );
        assert!(f.allowed(&acct, SourceKey::V4(5), "1000", until));
        assert_eq!(f.throttled("1000", 30), Some(until));
    }

    #[test]
    fn bounded() {
        let cfg = ShieldConfig::default();
        let mut f = AuthFails::new();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            f.failure(&cfg.auth, SourceKey::V4(i), "x", false, u64::from(i));
            f.account_failure(
                &cfg.account,
                SourceKey::V4(i),
                &format!("a{i}"),
                u64::from(i),
            );
        }
        assert!(f.sources.len() <= MAX_TRACKED);
        assert!(f.accounts.len() <= MAX_TRACKED);
        f.expire(&cfg.auth, &cfg.account, u64::from(u32::MAX));
        assert!(f.sources.is_empty());
    }
}
