//! What is left of a transaction once only its linger timer runs (Timers D,
//! I, J, K, L and M), and a bounded table of such remnants.
//!
//! After its final response a transaction changes no more state: for up to
//! 32 s over UDP it only absorbs retransmissions, answers them with what it
//! last sent, or lets a retransmitted 2xx through. A full transaction keeps
//! its timers, queues and messages for that time; at thousands of calls per
//! second that lingering state dominates memory. A [`Remnant`] keeps what the
//! rest of the linger needs: its kind, its deadline and at most one message
//! to resend.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::marker::PhantomData;
use std::time::Instant;

use bytes::Bytes;

use super::ResponseAction;

/// Which lingering state a remnant stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemnantKind {
    /// INVITE server, Accepted (RFC 6026 Timer L): INVITE retransmissions
    /// are absorbed; the TU may still send 2xx responses through.
    ServerAccepted,
    /// INVITE server, Confirmed (Timer I): ACK retransmissions absorbed.
    ServerConfirmed,
    /// Non-INVITE server, Completed (Timer J): a retransmitted request gets
    /// the final response again.
    ServerCompleted,
    /// INVITE client, Accepted (RFC 6026 Timer M): retransmitted 2xx go up
    /// to the TU, anything else is absorbed.
    ClientAccepted,
    /// INVITE client, Completed (Timer D): a retransmitted non-2xx final
    /// gets the ACK again.
    ClientCompleted,
    /// Non-INVITE client, Completed (Timer K): responses absorbed.
    ClientNonInviteCompleted,
}

/// A lingering transaction reduced to what its remaining time needs.
#[derive(Debug, Clone)]
pub struct Remnant {
    kind: RemnantKind,
    until: Instant,
    resend: Option<Bytes>,
}

impl Remnant {
    pub(crate) fn new(kind: RemnantKind, until: Instant, resend: Option<Bytes>) -> Self {
        Self {
            kind,
            until,
            resend,
        }
    }

    fn resend_len(&self) -> usize {
        self.resend.as_ref().map_or(0, Bytes::len)
    }

    pub fn kind(&self) -> RemnantKind {
        self.kind
    }

    /// When the transaction terminates.
    pub fn until(&self) -> Instant {
        self.until
    }

    /// A retransmission of the request matched this (server) remnant. It is
    /// always absorbed; the returned message, if any, goes back to the peer.
    pub fn on_request(&self) -> Option<Bytes> {
        match self.kind {
            RemnantKind::ServerCompleted => self.resend.clone(),
            _ => None,
        }
    }

    /// An ACK matched this (server) remnant. `true`: absorbed (the ACK of a
    /// non-2xx final). `false`: the TU must have it; the ACK for a 2xx is
    /// end-to-end and a proxy forwards it.
    pub fn on_ack(&self) -> bool {
        self.kind == RemnantKind::ServerConfirmed
    }

    /// Whether the TU may still send a 2xx through this (server) remnant:
    /// further 2xx of a forked INVITE (RFC 6026 §7.1).
    pub fn passes_2xx(&self) -> bool {
        self.kind == RemnantKind::ServerAccepted
    }

    /// A response matched this (client) remnant: what to do with it, and a
    /// message to send back (the ACK again, for a retransmitted non-2xx).
    pub fn on_response(&self, status: u16) -> (ResponseAction, Option<Bytes>) {
        let two = (200..=299).contains(&status);
        match self.kind {
            // A proxy forwards every 2xx to an INVITE (§16.7 step 5), also
            // one after a non-2xx final from a forking proxy downstream.
            RemnantKind::ClientAccepted | RemnantKind::ClientCompleted if two => {
                (ResponseAction::Deliver, None)
            }
            RemnantKind::ClientCompleted if (300..=699).contains(&status) => {
                (ResponseAction::Absorb, self.resend.clone())
            }
            _ => (ResponseAction::Absorb, None),
        }
    }
}

/// Hashes of keys are already uniformly distributed (keyed SipHash), so the
/// map needs no second hash.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are ever hashed; fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Deadlines kept in a few FIFO queues, each in deadline order. Remnants of
/// one kind linger for one fixed time, so each arrives due later than the
/// one before it: appending keeps a queue sorted, and expiry pops from the
/// fronts, walking memory in order. (A binary heap of a hundred thousand
/// remnants costs a cache miss per level on every pop.)
#[derive(Default)]
struct Deadlines {
    queues: Vec<VecDeque<(Instant, u64)>>,
}

/// More distinct linger times than any configuration produces (Timers D, I,
/// J, K, L and M take at most three values per transport).
const MAX_QUEUES: usize = 8;

impl Deadlines {
    /// Records `h` due at `at`; returns the deadline actually recorded. That
    /// is `at` unless every queue already ends later and no new queue may be
    /// opened; then it joins the queue that ends first, at its end (lingering
    /// a little longer is harmless).
    fn push(&mut self, at: Instant, h: u64) -> Instant {
        // The queue ending latest but not after `at` keeps queues tight.
        let mut fit: Option<(usize, Option<Instant>)> = None;
        for (i, q) in self.queues.iter().enumerate() {
            let back = q.back().map(|&(b, _)| b);
            if back.is_none_or(|b| b <= at) && fit.is_none_or(|(_, fb)| back > fb) {
                fit = Some((i, back));
            }
        }
        if let Some((i, _)) = fit {
            self.queues[i].push_back((at, h));
            return at;
        }
        if self.queues.len() < MAX_QUEUES {
            self.queues.push(VecDeque::from([(at, h)]));
            return at;
        }
        let (i, end) = self
            .queues
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.back().map(|&(b, _)| (i, b)))
            .min_by_key(|&(_, b)| b)
            .unwrap_or((0, at));
        self.queues[i].push_back((end, h));
        end
    }

    /// The queue whose front is due first, and that front.
    fn first(&self) -> Option<(usize, Instant, u64)> {
        self.queues
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.front().map(|&(at, h)| (i, at, h)))
            .min_by_key(|&(_, at, _)| at)
    }

    fn pop(&mut self, queue: usize) {
        if let Some(q) = self.queues.get_mut(queue) {
            q.pop_front();
        }
    }

    fn len(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    fn shrink(&mut self) {
        self.queues.retain(|q| !q.is_empty());
        for q in &mut self.queues {
            if super::oversized(q.capacity(), q.len()) {
                q.shrink_to(2 * q.len());
            }
        }
    }
}

/// Remnants by transaction key, with their deadlines, bounded.
///
/// Keys are stored as a 64-bit SipHash under a per-process random key: a
/// fraction of the memory of the key strings, and an attacker who cannot
/// read the hash key cannot aim a collision (the chance of an accidental
/// one is about n / 2^64 per lookup). When the table is full, the remnant
/// closest to its end makes room: under overload the window in which
/// retransmissions are absorbed shrinks, new calls are never refused.
pub struct LingerTable<K, F> {
    keys: RandomState,
    map: HashMap<u64, (Remnant, F), BuildHasherDefault<PassThrough>>,
    /// Deadlines; entries whose remnant was replaced or evicted are skipped
    /// when they surface.
    deadlines: Deadlines,
    max: usize,
    /// Bytes of messages kept to resend, and their cap: a peer that answers
    /// with large responses must not make the remnants hold gigabytes.
    bytes: usize,
    max_bytes: usize,
    _key: PhantomData<fn(&K)>,
}

impl<K, F> std::fmt::Debug for LingerTable<K, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LingerTable")
            .field("len", &self.map.len())
            .field("deadlines", &self.deadlines.len())
            .field("max", &self.max)
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl<K: Hash, F> LingerTable<K, F> {
    /// A table holding at most `max` remnants (at least one) and at most
    /// `max_bytes` of messages to resend.
    pub fn new(max: usize, max_bytes: usize) -> Self {
        Self {
            keys: RandomState::new(),
            map: HashMap::default(),
            deadlines: Deadlines::default(),
            max: max.max(1),
            bytes: 0,
            max_bytes,
            _key: PhantomData,
        }
    }

    /// Bytes of messages kept to resend.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn hash(&self, key: &K) -> u64 {
        self.keys.hash_one(key)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Changes the bounds; smaller ones take effect as remnants are added.
    pub fn set_max(&mut self, max: usize, max_bytes: usize) {
        self.max = max.max(1);
        self.max_bytes = max_bytes;
    }

    /// Keeps `remnant` (and the caller's `flow`, where to resend) under
    /// `key`, replacing any remnant already there. Returns `true` when
    /// another remnant was evicted to make room.
    pub fn insert(&mut self, key: &K, mut remnant: Remnant, flow: F) -> bool {
        let h = self.hash(key);
        if remnant.resend_len() > self.max_bytes {
            // Alone over the budget: keep the remnant, not the message (a
            // retransmission is then absorbed without an answer).
            remnant.resend = None;
        }
        if let Some((old, _)) = self.map.remove(&h) {
            self.bytes -= old.resend_len();
        }
        let mut evicted = false;
        while self.map.len() >= self.max || self.bytes + remnant.resend_len() > self.max_bytes {
            if !self.evict_earliest() {
                break;
            }
            evicted = true;
        }
        remnant.until = self.deadlines.push(remnant.until, h);
        self.bytes += remnant.resend_len();
        self.map.insert(h, (remnant, flow));
        self.maybe_compact();
        evicted
    }

    pub fn get(&self, key: &K) -> Option<(&Remnant, &F)> {
        self.map.get(&self.hash(key)).map(|(r, f)| (r, f))
    }

    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(&self.hash(key))
    }

    /// Earliest deadline of a live remnant.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.skip_stale().map(|(_, at, _)| at)
    }

    /// Drops up to `budget` remnants whose time is over; returns how many.
    pub fn expire(&mut self, now: Instant, budget: usize) -> usize {
        let mut n = 0;
        while n < budget {
            match self.skip_stale() {
                Some((q, at, h)) if at <= now => {
                    self.deadlines.pop(q);
                    self.remove(h);
                    n += 1;
                }
                _ => break,
            }
        }
        n
    }

    /// Gives back the capacity a burst left behind.
    pub fn shrink(&mut self) {
        if super::oversized(self.map.capacity(), self.map.len()) {
            self.map.shrink_to(2 * self.map.len());
        }
        self.maybe_compact();
        self.deadlines.shrink();
    }

    fn is_live(&self, at: Instant, h: u64) -> bool {
        self.map.get(&h).is_some_and(|(r, _)| r.until == at)
    }

    /// Drops stale fronts; returns the live front due first.
    fn skip_stale(&mut self) -> Option<(usize, Instant, u64)> {
        loop {
            let (q, at, h) = self.deadlines.first()?;
            if self.is_live(at, h) {
                return Some((q, at, h));
            }
            self.deadlines.pop(q);
        }
    }

    fn evict_earliest(&mut self) -> bool {
        match self.skip_stale() {
            Some((q, _, h)) => {
                self.deadlines.pop(q);
                self.remove(h)
            }
            None => false,
        }
    }

    fn remove(&mut self, h: u64) -> bool {
        match self.map.remove(&h) {
            Some((r, _)) => {
                self.bytes -= r.resend_len();
                true
            }
            None => false,
        }
    }

    /// Rebuilds the deadlines from live entries once stale ones outnumber
    /// them, so replacing remnants cannot grow the queues without bound.
    fn maybe_compact(&mut self) {
        if self.deadlines.len() > 2 * self.map.len() + 64 {
            let mut live: Vec<(Instant, u64)> =
                self.map.iter().map(|(&h, (r, _))| (r.until, h)).collect();
            live.sort_unstable();
            self.deadlines = Deadlines {
                queues: vec![live.into()],
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn rem(kind: RemnantKind, until: Instant, resend: Option<&'static str>) -> Remnant {
        Remnant::new(
            kind,
            until,
            resend.map(|s| Bytes::from_static(s.as_bytes())),
        )
    }

    #[test]
    fn server_remnants_absorb_and_resend_as_their_state_did() {
        let t = Instant::now();
        let done = rem(RemnantKind::ServerCompleted, t, Some("200 bye"));
        assert_eq!(done.on_request().as_deref(), Some(&b"200 bye"[..]));
        assert!(!done.on_ack());
        let acc = rem(RemnantKind::ServerAccepted, t, None);
        assert_eq!(acc.on_request(), None);
        assert!(!acc.on_ack(), "the ACK of a 2xx goes to the TU");
        assert!(acc.passes_2xx());
        let conf = rem(RemnantKind::ServerConfirmed, t, None);
        assert!(conf.on_ack());
        assert!(!conf.passes_2xx());
    }

    #[test]
    fn client_remnants_pass_2xx_and_resend_the_ack() {
        let t = Instant::now();
        let acc = rem(RemnantKind::ClientAccepted, t, None);
        assert_eq!(acc.on_response(200), (ResponseAction::Deliver, None));
        assert_eq!(acc.on_response(486), (ResponseAction::Absorb, None));
        assert_eq!(acc.on_response(180), (ResponseAction::Absorb, None));
        let comp = rem(RemnantKind::ClientCompleted, t, Some("ACK"));
        let (a, b) = comp.on_response(486);
        assert_eq!(a, ResponseAction::Absorb);
        assert_eq!(b.as_deref(), Some(&b"ACK"[..]));
        assert_eq!(comp.on_response(200), (ResponseAction::Deliver, None));
        let ni = rem(RemnantKind::ClientNonInviteCompleted, t, None);
        assert_eq!(ni.on_response(200), (ResponseAction::Absorb, None));
    }

    #[test]
    fn transactions_become_remnants_once_only_their_linger_is_left() {
        use crate::transaction::{ClientTransaction, ServerTransaction, Timers};
        let t = Instant::now();
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let drain_s = |tx: &mut ServerTransaction| while tx.poll_transmit().is_some() {};
        let drain_c = |tx: &mut ClientTransaction| while tx.poll_transmit().is_some() {};

        // Non-INVITE server: Completed, Timer J, resends its final.
        let mut tx = ServerTransaction::new(false, false, Timers::default(), t);
        assert!(tx.remnant().is_none(), "Trying is not lingering");
        tx.send_response(200, b("200 bye"), t).unwrap();
        assert!(tx.remnant().is_none(), "the 200 is not sent yet");
        drain_s(&mut tx);
        let r = tx.remnant().unwrap();
        assert_eq!(r.kind(), RemnantKind::ServerCompleted);
        assert_eq!(r.until(), t + secs(32));
        assert_eq!(r.on_request(), Some(b("200 bye")));

        // INVITE server, non-2xx: Timer G still runs until the ACK.
        let mut tx = ServerTransaction::new(true, false, Timers::default(), t);
        tx.send_response(486, b("486"), t).unwrap();
        drain_s(&mut tx);
        assert!(tx.remnant().is_none());
        assert!(tx.on_ack(t + secs(1)));
        let r = tx.remnant().unwrap();
        assert_eq!(r.kind(), RemnantKind::ServerConfirmed);
        assert_eq!(r.until(), t + secs(6));

        // INVITE server, 2xx: Accepted for Timer L, also over TCP.
        let mut tx = ServerTransaction::new(true, true, Timers::default(), t);
        tx.send_response(200, b("200"), t).unwrap();
        drain_s(&mut tx);
        let r = tx.remnant().unwrap();
        assert_eq!(
            (r.kind(), r.until()),
            (RemnantKind::ServerAccepted, t + secs(32))
        );

        // INVITE client, 2xx: Accepted for Timer M.
        let mut tx = ClientTransaction::new(true, b("INVITE"), false, Timers::default(), t);
        assert!(tx.remnant().is_none(), "Calling runs Timers A and B");
        drain_c(&mut tx);
        assert_eq!(tx.on_response(200, t), ResponseAction::Deliver);
        assert_eq!(tx.remnant().unwrap().kind(), RemnantKind::ClientAccepted);

        // INVITE client, non-2xx: only once the ACK is set (and sent).
        let mut tx = ClientTransaction::new(true, b("INVITE"), false, Timers::default(), t);
        drain_c(&mut tx);
        assert_eq!(tx.on_response(486, t), ResponseAction::DeliverAndAck);
        assert!(tx.remnant().is_none());
        tx.set_ack(b("ACK")).unwrap();
        assert!(tx.remnant().is_none());
        drain_c(&mut tx);
        let r = tx.remnant().unwrap();
        assert_eq!(r.kind(), RemnantKind::ClientCompleted);
        assert_eq!(r.on_response(486).1, Some(b("ACK")));

        // Non-INVITE client: Completed for Timer K (zero over TCP).
        let mut tx = ClientTransaction::new(false, b("BYE"), true, Timers::default(), t);
        drain_c(&mut tx);
        assert_eq!(tx.on_response(200, t), ResponseAction::Deliver);
        let r = tx.remnant().unwrap();
        assert_eq!(
            (r.kind(), r.until()),
            (RemnantKind::ClientNonInviteCompleted, t)
        );
    }

    #[test]
    fn table_expires_in_deadline_order() {
        let t = Instant::now();
        let mut tab: LingerTable<&str, u8> = LingerTable::new(10, 1 << 20);
        tab.insert(
            &"a",
            rem(RemnantKind::ServerConfirmed, t + secs(5), None),
            1,
        );
        tab.insert(
            &"b",
            rem(RemnantKind::ServerAccepted, t + secs(32), None),
            2,
        );
        assert_eq!(tab.len(), 2);
        assert_eq!(tab.next_deadline(), Some(t + secs(5)));
        assert_eq!(tab.get(&"b").map(|(_, f)| *f), Some(2));
        assert!(tab.get(&"c").is_none());
        assert_eq!(tab.expire(t + secs(4), 100), 0);
        assert_eq!(tab.expire(t + secs(5), 100), 1);
        assert!(!tab.contains(&"a"));
        assert!(tab.contains(&"b"));
        assert_eq!(tab.next_deadline(), Some(t + secs(32)));
        assert_eq!(tab.expire(t + secs(40), 100), 1);
        assert!(tab.is_empty());
        assert_eq!(tab.next_deadline(), None);
    }

    #[test]
    fn replacing_moves_the_deadline() {
        let t = Instant::now();
        let mut tab: LingerTable<&str, u8> = LingerTable::new(10, 1 << 20);
        tab.insert(
            &"a",
            rem(RemnantKind::ServerConfirmed, t + secs(5), None),
            1,
        );
        tab.insert(
            &"a",
            rem(RemnantKind::ServerCompleted, t + secs(32), None),
            2,
        );
        assert_eq!(tab.len(), 1);
        // The old deadline is stale and must not end the new remnant.
        assert_eq!(tab.next_deadline(), Some(t + secs(32)));
        assert_eq!(tab.expire(t + secs(10), 100), 0);
        assert_eq!(
            tab.get(&"a").map(|(r, _)| r.kind()),
            Some(RemnantKind::ServerCompleted)
        );
    }

    #[test]
    fn full_table_evicts_the_remnant_closest_to_its_end() {
        let t = Instant::now();
        let mut tab: LingerTable<u32, ()> = LingerTable::new(3, 1 << 20);
        for (k, s) in [(1, 30), (2, 10), (3, 20)] {
            assert!(!tab.insert(&k, rem(RemnantKind::ServerAccepted, t + secs(s), None), ()));
        }
        assert!(tab.insert(&4, rem(RemnantKind::ServerAccepted, t + secs(32), None), ()));
        assert_eq!(tab.len(), 3);
        assert!(!tab.contains(&2), "the earliest deadline went first");
        assert!(tab.contains(&1) && tab.contains(&3) && tab.contains(&4));
        // Replacing an existing key never evicts.
        assert!(!tab.insert(&4, rem(RemnantKind::ServerAccepted, t + secs(33), None), ()));
        assert_eq!(tab.len(), 3);
    }

    #[test]
    fn deadlines_out_of_order_never_expire_early() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut tab: LingerTable<u32, ()> = LingerTable::new(1000, 1 << 20);
        let mut asked = Vec::new();
        // Two linger times interleaved (32 s and 5 s), then more distinct
        // orders than there are queues (descending deadlines).
        for i in 0..20u32 {
            let d = if i % 2 == 0 { 32_000 } else { 5_000 } + u64::from(i);
            asked.push((i, d));
        }
        for i in 0..20u32 {
            asked.push((100 + i, 100_000 - 1000 * u64::from(i)));
        }
        for &(k, d) in &asked {
            tab.insert(&k, rem(RemnantKind::ServerAccepted, t + ms(d), None), ());
        }
        assert_eq!(tab.len(), 40);
        let mut last = t;
        while let Some(at) = tab.next_deadline() {
            assert!(at >= last, "deadlines come out in order");
            last = at;
            tab.expire(at, usize::MAX);
            for &(k, d) in &asked {
                if t + ms(d) > at {
                    assert!(tab.contains(&k), "{k} expired before {d} ms");
                }
            }
        }
        assert!(tab.is_empty());
    }

    #[test]
    fn messages_kept_to_resend_stay_within_the_byte_budget() {
        let t = Instant::now();
        let big = |n: usize| {
            Remnant::new(
                RemnantKind::ServerCompleted,
                t + secs(32),
                Some(Bytes::from(vec![b'x'; n])),
            )
        };
        let mut tab: LingerTable<u32, ()> = LingerTable::new(1000, 10_000);
        for k in 0..10u32 {
            tab.insert(&k, big(3_000), ());
            assert!(tab.bytes() <= 10_000, "{}", tab.bytes());
        }
        // Three fit; the older ones made way.
        assert_eq!(tab.len(), 3);
        assert!(tab.contains(&9) && !tab.contains(&0));
        // A message larger than the whole budget: the remnant stays, the
        // message does not.
        tab.insert(&100, big(20_000), ());
        let (r, _) = tab.get(&100).unwrap();
        assert_eq!(r.on_request(), None);
        // Replacing and expiring give the bytes back.
        tab.insert(&9, big(1_000), ());
        tab.expire(t + secs(40), usize::MAX);
        assert!(tab.is_empty());
        assert_eq!(tab.bytes(), 0);
    }

    /// Random inserts, replacements and expiries with the linger times a
    /// server has (a few fixed durations, a clock that only moves forward),
    /// checked against a plain map: a remnant is there exactly until its
    /// deadline, and a lookup finds the latest one.
    #[test]
    fn agrees_with_a_plain_map() {
        let t0 = Instant::now();
        let mut tab: LingerTable<u32, u64> = LingerTable::new(100_000, 1 << 30);
        let mut model: HashMap<u32, (Duration, u64)> = HashMap::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut now = Duration::ZERO;
        for step in 0..50_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 10 {
                0..=6 => {
                    let key = (x >> 8) as u32 % 2_000;
                    let linger = [secs(32), secs(5), Duration::ZERO][(x >> 20) as usize % 3];
                    let until = now + linger;
                    let r = rem(RemnantKind::ServerCompleted, t0 + until, None);
                    assert!(!tab.insert(&key, r, step), "nothing to evict here");
                    model.insert(key, (until, step));
                }
                7..=8 => now += Duration::from_millis((x >> 12) % 3_000),
                _ => {
                    tab.expire(t0 + now, usize::MAX);
                    model.retain(|_, (until, _)| *until > now);
                    assert_eq!(tab.len(), model.len(), "step {step}");
                    for (k, (_, flow)) in &model {
                        assert_eq!(tab.get(k).map(|(_, f)| *f), Some(*flow), "key {k}");
                    }
                }
            }
        }
    }

    #[test]
    fn churn_keeps_the_deadlines_bounded() {
        let t = Instant::now();
        let mut tab: LingerTable<u32, ()> = LingerTable::new(1000, 1 << 20);
        for i in 0..100_000u64 {
            let until = t + Duration::from_millis(i);
            tab.insert(&7, rem(RemnantKind::ServerAccepted, until, None), ());
        }
        assert_eq!(tab.len(), 1);
        assert!(tab.deadlines.len() <= 2 * tab.map.len() + 65);
        for i in 0..50_000u32 {
            tab.insert(&i, rem(RemnantKind::ServerAccepted, t + secs(1), None), ());
        }
        assert_eq!(tab.len(), 1000);
        tab.expire(t + secs(1000), usize::MAX);
        assert!(tab.is_empty());
        tab.shrink();
        assert!(tab.map.capacity() <= 64 + 16);
    }
}
