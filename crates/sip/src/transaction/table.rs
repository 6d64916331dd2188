//! A bounded transaction table and the timer queue it uses to find the next
//! deadline without scanning every transaction.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::ops::{Deref, DerefMut};
use std::time::Instant;

use super::Transaction;

/// Whether a collection holding `len` items in room for `capacity` should
/// shrink (to twice its length): after a burst has given way to quiet. One
/// rule for every table that grows under load.
pub fn oversized(capacity: usize, len: usize) -> bool {
    capacity > 4 * len + 64
}

struct Entry<K> {
    at: Instant,
    seq: u64,
    key: K,
}

// Ordered by (deadline, insertion order) only, so `K` needs no `Ord` and
// equal deadlines pop first-scheduled first.
impl<K> PartialEq for Entry<K> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<K> Eq for Entry<K> {}
impl<K> PartialOrd for Entry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Entry<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Deadlines for many keys: a min-heap with lazy deletion. Rescheduling or
/// cancelling only updates the live map; stale heap entries are skipped when
/// they surface and compacted away when they outnumber live ones.
pub struct TimerQueue<K> {
    heap: BinaryHeap<Reverse<Entry<K>>>,
    /// Live deadline per key and the sequence number of its heap entry.
    live: HashMap<K, (u64, Instant)>,
    next_seq: u64,
}

impl<K> std::fmt::Debug for TimerQueue<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerQueue")
            .field("live", &self.live.len())
            .field("heap", &self.heap.len())
            .finish()
    }
}

impl<K: Hash + Eq + Clone> Default for TimerQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone> TimerQueue<K> {
    pub fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            live: HashMap::new(),
            next_seq: 0,
        }
    }

    /// Set (or move) `key`'s single deadline to `at`.
    pub fn schedule(&mut self, key: K, at: Instant) {
        if self.live.get(&key).is_some_and(|&(_, cur)| cur == at) {
            // Unchanged: avoid piling up duplicate heap entries.
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.live.insert(key.clone(), (seq, at));
        self.heap.push(Reverse(Entry { at, seq, key }));
        self.maybe_compact();
    }

    /// Remove `key`'s deadline; returns whether it had one.
    pub fn cancel(&mut self, key: &K) -> bool {
        let had = self.live.remove(key).is_some();
        self.maybe_compact();
        had
    }

    /// `key`'s current deadline.
    pub fn deadline(&self, key: &K) -> Option<Instant> {
        self.live.get(key).map(|&(_, at)| at)
    }

    /// Earliest live deadline (drops stale entries it finds on top).
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.skip_stale();
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Remove and return a key whose deadline is at or before `now`, earliest
    /// first. Call repeatedly until `None`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<K> {
        self.skip_stale();
        if self.heap.peek()?.0.at > now {
            return None;
        }
        let Reverse(e) = self.heap.pop()?;
        self.live.remove(&e.key);
        Some(e.key)
    }

    /// Gives back the capacity a burst left behind (stale entries are
    /// already compacted as they pile up).
    pub fn shrink(&mut self) {
        self.maybe_compact();
        if oversized(self.heap.capacity(), self.heap.len()) {
            self.heap.shrink_to(2 * self.heap.len());
        }
        if oversized(self.live.capacity(), self.live.len()) {
            self.live.shrink_to(2 * self.live.len());
        }
    }

    /// Number of keys with a live deadline.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    fn is_live(&self, e: &Entry<K>) -> bool {
        self.live.get(&e.key).is_some_and(|&(seq, _)| seq == e.seq)
    }

    fn skip_stale(&mut self) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if self.is_live(top) {
                break;
            }
            self.heap.pop();
        }
    }

    /// Bound the heap to O(live) so a key rescheduled forever cannot grow it.
    fn maybe_compact(&mut self) {
        if self.heap.len() > 2 * self.live.len() + 64 {
            let live = &self.live;
            self.heap
                .retain(|Reverse(e)| live.get(&e.key).is_some_and(|&(seq, _)| seq == e.seq));
        }
    }
}

/// Why [`TransactionTable::insert`] refused a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// `max_transactions` reached; the core should answer 503.
    #[error("transaction table full")]
    Full,
    /// A live transaction already has this key (a retransmission the caller
    /// should have matched first).
    #[error("transaction key already present")]
    Duplicate,
}

/// Bounded map of transactions plus a [`TimerQueue`] over their
/// `poll_timeout()`s. Every mutable access goes through [`TxRef`], which
/// re-reads the transaction's deadline when dropped, so the queue cannot go
/// out of date.
///
/// ```text
/// while let Some(key) = table.pop_expired(now) {
///     let mut tx = table.get_mut(&key).unwrap();
///     // drain tx.poll_transmit() / tx.poll_event()
///     if tx.is_terminated() { drop(tx); table.remove(&key); }
/// }
/// // then sleep until table.next_deadline()
/// ```
pub struct TransactionTable<K, T> {
    txs: HashMap<K, T>,
    timers: TimerQueue<K>,
    max: usize,
}

impl<K, T> std::fmt::Debug for TransactionTable<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionTable")
            .field("len", &self.txs.len())
            .field("max", &self.max)
            .field("timers", &self.timers)
            .finish()
    }
}

impl<K: Hash + Eq + Clone, T: Transaction> TransactionTable<K, T> {
    pub fn new(max_transactions: usize) -> Self {
        Self {
            txs: HashMap::new(),
            timers: TimerQueue::new(),
            max: max_transactions,
        }
    }

    pub fn max_transactions(&self) -> usize {
        self.max
    }

    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.txs.len() >= self.max
    }

    pub fn contains(&self, key: &K) -> bool {
        self.txs.contains_key(key)
    }

    /// Add a transaction and schedule its first deadline. The transaction is
    /// dropped on error (it has not been driven yet, so nothing is lost but
    /// its queued first transmit; the caller answers 503 instead).
    pub fn insert(&mut self, key: K, tx: T) -> Result<TxRef<'_, K, T>, TableError> {
        if self.txs.contains_key(&key) {
            return Err(TableError::Duplicate);
        }
        if self.is_full() {
            return Err(TableError::Full);
        }
        let tx = self.txs.entry(key.clone()).or_insert(tx);
        Ok(TxRef {
            key,
            tx,
            timers: &mut self.timers,
        })
    }

    pub fn get(&self, key: &K) -> Option<&T> {
        self.txs.get(key)
    }

    /// Mutable access; the deadline is rescheduled when the guard drops.
    pub fn get_mut(&mut self, key: &K) -> Option<TxRef<'_, K, T>> {
        let tx = self.txs.get_mut(key)?;
        Some(TxRef {
            key: key.clone(),
            tx,
            timers: &mut self.timers,
        })
    }

    pub fn remove(&mut self, key: &K) -> Option<T> {
        self.timers.cancel(key);
        self.txs.remove(key)
    }

    /// When the core should next call [`Self::pop_expired`].
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Run `handle_timeout(now)` on the next transaction whose deadline has
    /// passed and return its key so the caller can drain it (and remove it
    /// if terminated). Call repeatedly until `None`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<K> {
        while let Some(key) = self.timers.pop_expired(now) {
            if let Some(tx) = self.txs.get_mut(&key) {
                tx.handle_timeout(now);
                if let Some(at) = tx.poll_timeout() {
                    self.timers.schedule(key.clone(), at);
                }
                return Some(key);
            }
        }
        None
    }

    /// Keys of all terminated transactions (e.g. for a periodic sweep of
    /// ones the caller forgot to remove).
    pub fn terminated_keys(&self) -> Vec<K> {
        self.txs
            .iter()
            .filter(|(_, tx)| tx.is_terminated())
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// Mutable handle to a transaction in a [`TransactionTable`]; re-syncs the
/// timer queue with `poll_timeout()` on drop.
pub struct TxRef<'a, K: Hash + Eq + Clone, T: Transaction> {
    key: K,
    tx: &'a mut T,
    timers: &'a mut TimerQueue<K>,
}

impl<K: Hash + Eq + Clone, T: Transaction> TxRef<'_, K, T> {
    pub fn key(&self) -> &K {
        &self.key
    }
}

impl<K: Hash + Eq + Clone, T: Transaction> Deref for TxRef<'_, K, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.tx
    }
}

impl<K: Hash + Eq + Clone, T: Transaction> DerefMut for TxRef<'_, K, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.tx
    }
}

impl<K: Hash + Eq + Clone, T: Transaction> Drop for TxRef<'_, K, T> {
    fn drop(&mut self) {
        match self.tx.poll_timeout() {
            Some(at) => self.timers.schedule(self.key.clone(), at),
            None => {
                self.timers.cancel(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ClientTransaction, ServerTransaction, Timers, TxEvent};
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn timer_queue_orders_by_deadline_then_fifo() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        q.schedule("c", t0 + ms(30));
        q.schedule("a", t0 + ms(10));
        q.schedule("b", t0 + ms(20));
        q.schedule("a2", t0 + ms(10));
        assert_eq!(q.len(), 4);
        assert_eq!(q.next_deadline(), Some(t0 + ms(10)));
        assert_eq!(q.pop_expired(t0 + ms(5)), None);
        assert_eq!(q.pop_expired(t0 + ms(25)), Some("a"));
        assert_eq!(q.pop_expired(t0 + ms(25)), Some("a2"));
        assert_eq!(q.pop_expired(t0 + ms(25)), Some("b"));
        assert_eq!(q.pop_expired(t0 + ms(25)), None);
        assert_eq!(q.next_deadline(), Some(t0 + ms(30)));
        assert_eq!(q.pop_expired(t0 + ms(30)), Some("c"));
        assert!(q.is_empty());
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn timer_queue_lazy_deletion_on_reschedule_and_cancel() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        q.schedule(1u32, t0 + ms(10));
        q.schedule(2u32, t0 + ms(20));
        q.schedule(1u32, t0 + ms(30)); // moved later: old entry is stale
        assert_eq!(q.deadline(&1), Some(t0 + ms(30)));
        assert_eq!(q.len(), 2);
        assert_eq!(q.next_deadline(), Some(t0 + ms(20)));
        assert!(q.cancel(&2));
        assert!(!q.cancel(&2));
        assert_eq!(q.pop_expired(t0 + ms(25)), None);
        assert_eq!(q.next_deadline(), Some(t0 + ms(30)));
        q.schedule(1u32, t0 + ms(5)); // moved earlier
        assert_eq!(q.pop_expired(t0 + ms(5)), Some(1));
        // The stale 30 ms entry must not resurrect the key.
        assert_eq!(q.pop_expired(t0 + ms(100)), None);
        assert!(q.is_empty());
    }

    #[test]
    fn timer_queue_heap_stays_bounded() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        for i in 0..10_000u64 {
            q.schedule(i % 3, t0 + ms(i));
        }
        assert_eq!(q.len(), 3);
        assert!(q.heap.len() <= 2 * 3 + 64 + 1);
        // Same deadline again adds nothing.
        let before = q.heap.len();
        q.schedule(0, q.deadline(&0).unwrap());
        assert_eq!(q.heap.len(), before);
    }

    #[test]
    fn table_is_bounded_and_rejects_duplicates() {
        let t0 = Instant::now();
        let mut table: TransactionTable<u32, ServerTransaction> = TransactionTable::new(2);
        let mk = || ServerTransaction::new(false, false, Timers::default(), t0);
        table.insert(1, mk()).unwrap();
        assert_eq!(table.insert(1, mk()).err(), Some(TableError::Duplicate));
        table.insert(2, mk()).unwrap();
        assert!(table.is_full());
        assert_eq!(table.insert(3, mk()).err(), Some(TableError::Full));
        assert!(table.remove(&1).is_some());
        table.insert(3, mk()).unwrap();
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn table_tracks_deadlines_through_guard() {
        let t0 = Instant::now();
        let mut table: TransactionTable<&str, ClientTransaction> = TransactionTable::new(10);
        let tx = ClientTransaction::new(false, Bytes::new(), false, Timers::default(), t0);
        table
            .insert("opt", tx)
            .unwrap()
            .poll_transmit()
            .expect("first send queued");
        let tx = ClientTransaction::new(true, Bytes::new(), true, Timers::default(), t0);
        table.insert("inv", tx).unwrap();
        // Timer E of "opt" first.
        assert_eq!(table.next_deadline(), Some(t0 + ms(500)));
        assert_eq!(table.pop_expired(t0 + ms(500)), Some("opt"));
        assert_eq!(table.pop_expired(t0 + ms(500)), None);
        assert!(table.get_mut(&"opt").unwrap().poll_transmit().is_some());
        assert_eq!(table.next_deadline(), Some(t0 + ms(1500)));
        // A final response over a reliable transport moves "inv"'s deadline
        // earlier (Timer D = 0); the guard must reschedule it.
        {
            let mut inv = table.get_mut(&"inv").unwrap();
            let _ = inv.on_response(486, t0 + ms(600));
        }
        assert_eq!(table.next_deadline(), Some(t0 + ms(600)));
        assert_eq!(table.pop_expired(t0 + ms(600)), Some("inv"));
        assert!(table.get(&"inv").unwrap().is_terminated());
        assert_eq!(table.terminated_keys(), vec!["inv"]);
        assert_eq!(
            table.get_mut(&"inv").unwrap().poll_event(),
            Some(TxEvent::Terminated)
        );
        table.remove(&"inv");
        assert_eq!(table.next_deadline(), Some(t0 + ms(1500)));
        // "opt" is on an unreliable transport: Timer K = T4.
        {
            let mut opt = table.get_mut(&"opt").unwrap();
            let _ = opt.on_response(200, t0 + ms(700));
        }
        assert_eq!(table.next_deadline(), Some(t0 + ms(5700)));
        assert_eq!(table.pop_expired(t0 + ms(5700)), Some("opt"));
        assert!(table.get(&"opt").unwrap().is_terminated());
        assert_eq!(table.next_deadline(), None);
    }
}
