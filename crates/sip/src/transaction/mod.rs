//! RFC 3261 §17 transaction state machines (with the RFC 6026 "Accepted"
//! states), transaction keys, and a bounded table with a timer queue.
//!
//! Sans-IO in the style of quinn-proto: nothing here reads a clock, opens a
//! socket or spawns a thread. The caller passes `Instant`s in and pulls work
//! out with `poll_transmit`, `poll_event`, `poll_timeout` and
//! `handle_timeout`. Messages are opaque, already-printed [`Bytes`](bytes::Bytes); this
//! module deliberately does not depend on the parser so it can be reasoned
//! about (and tested) on its own.
//!
//! Driving loop, per transaction:
//!
//! 1. feed input (`on_response` / `on_request` / `on_ack` / `send_response`);
//! 2. drain `poll_transmit()` to the transport and `poll_event()` to the TU;
//! 3. arm a timer for `poll_timeout()` and call `handle_timeout(now)` when it
//!    expires (then drain again);
//! 4. drop the transaction once `is_terminated()` and its queues are empty.
//!
//! [`TransactionTable`] does steps 3–4 bookkeeping for many transactions.
//!
//! CANCEL (RFC 3261 §9.1): a proxy cancels a pending INVITE branch by sending
//! CANCEL as its own non-INVITE [`ClientTransaction`] with the same branch as
//! the INVITE (its [`ClientKey`] differs by method). CANCEL must not be sent
//! before a provisional response arrived; see
//! [`ClientTransaction::can_cancel`]. Timer C (§16.6 step 11) is a proxy
//! (TU) timer and is not part of these machines. ACK is never a transaction:
//! the ACK for a non-2xx is owned by the INVITE client transaction
//! ([`ClientTransaction::set_ack`]); the ACK for a 2xx is end-to-end.
//!
//! The 100 Trying an INVITE server transaction should send when the TU will
//! not answer within 200 ms (§17.2.1) is left to the core: a proxy sends it
//! immediately with [`ServerTransaction::send_response`].

mod client;
mod key;
mod linger;
mod server;
mod table;

use std::time::{Duration, Instant};

pub use client::{ClientState, ClientTransaction, ResponseAction};
pub use key::{is_rfc3261_branch, new_branch, ClientKey, ServerKey, MAGIC_COOKIE};
pub use linger::{LingerTable, Remnant, RemnantKind};
pub use server::{ServerState, ServerTransaction};
pub use table::{oversized, TableError, TimerQueue, TransactionTable, TxRef};

/// Base timer values (RFC 3261 §17.1.1.1, Table 4). The lettered timers are
/// derived from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses.
    pub t2: Duration,
    /// Maximum duration a message stays in the network.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Retransmission timers restart immediately after firing; a zero interval
/// (T1 = 0 from a bad config) would make `handle_timeout` spin forever.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Upper bound applied to T1, T2 and T4 so that `Instant + timer` cannot
/// overflow (and panic) whatever the configuration says.
const MAX_BASE: Duration = Duration::from_secs(3600);

impl Timers {
    fn t1(&self) -> Duration {
        self.t1.clamp(MIN_INTERVAL, MAX_BASE)
    }

    fn t2(&self) -> Duration {
        self.t2.clamp(MIN_INTERVAL, MAX_BASE)
    }

    fn t4(&self) -> Duration {
        self.t4.min(MAX_BASE)
    }

    fn t1_times_64(&self) -> Duration {
        self.t1() * 64
    }

    /// `2^attempt · T1`, capped at `64·T1`: no retransmission is ever
    /// scheduled past Timer B/F/H anyway, and the cap keeps it finite.
    fn doubled(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(6)).unwrap_or(64);
        self.t1() * factor
    }

    /// Timer A before retransmission number `attempt + 1`: `2^attempt · T1`,
    /// not capped by T2 (only by Timer B).
    pub fn a(&self, attempt: u32) -> Duration {
        self.doubled(attempt)
    }

    /// Timer B: INVITE client transaction timeout, `64·T1`.
    pub fn b(&self) -> Duration {
        self.t1_times_64()
    }

    /// Timer D: wait for response retransmissions after a non-2xx final.
    /// RFC 3261 says "> 32 s" for unreliable transports; it must also cover
    /// the server's Timer H window (`64·T1`) if T1 was raised.
    pub fn d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            Duration::from_secs(32).max(self.t1_times_64())
        }
    }

    /// Timer E before retransmission number `attempt + 1`:
    /// `min(2^attempt · T1, T2)`.
    pub fn e(&self, attempt: u32) -> Duration {
        self.doubled(attempt).min(self.t2())
    }

    /// Timer F: non-INVITE client transaction timeout, `64·T1`.
    pub fn f(&self) -> Duration {
        self.t1_times_64()
    }

    /// Timer G before retransmission number `attempt + 1`:
    /// `min(2^attempt · T1, T2)`.
    pub fn g(&self, attempt: u32) -> Duration {
        self.e(attempt)
    }

    /// Timer H: wait for ACK, `64·T1`.
    pub fn h(&self) -> Duration {
        self.t1_times_64()
    }

    /// Timer I: absorb ACK retransmissions, T4 (0 on reliable transports).
    pub fn i(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t4()
        }
    }

    /// Timer J: absorb non-INVITE request retransmissions, `64·T1`
    /// (0 on reliable transports).
    pub fn j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1_times_64()
        }
    }

    /// Timer K: absorb non-INVITE response retransmissions, T4
    /// (0 on reliable transports).
    pub fn k(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t4()
        }
    }

    /// Timer L (RFC 6026): INVITE server lingers in Accepted, `64·T1`.
    pub fn l(&self) -> Duration {
        self.t1_times_64()
    }

    /// Timer M (RFC 6026): INVITE client lingers in Accepted, `64·T1`.
    pub fn m(&self) -> Duration {
        self.t1_times_64()
    }
}

/// Something the transaction user must learn about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxEvent {
    /// Timer B or F (client: no final response; a proxy answers upstream with
    /// 408) or Timer H (INVITE server: the ACK never came).
    Timeout,
    /// The transport reported a send failure (RFC 3261 §17.1.4 / §17.2.4).
    TransportError,
    /// The transaction reached Terminated; emitted exactly once, after any
    /// `Timeout` / `TransportError` that caused it.
    Terminated,
}

/// Misuse of a transaction by its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("status code {0} is outside 100..=699")]
    InvalidStatus(u16),
    #[error("operation not allowed in transaction state {0}")]
    InvalidState(&'static str),
}

/// Common interface so [`TransactionTable`] can drive both kinds.
pub trait Transaction {
    /// Next message to hand to the transport.
    fn poll_transmit(&mut self) -> Option<bytes::Bytes>;
    /// Next event for the transaction user.
    fn poll_event(&mut self) -> Option<TxEvent>;
    /// Earliest instant at which `handle_timeout` has work to do.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Fire every timer due at or before `now`.
    fn handle_timeout(&mut self, now: Instant);
    fn is_terminated(&self) -> bool;
}

fn check_status(status: u16) -> Result<(), TxError> {
    if (100..=699).contains(&status) {
        Ok(())
    } else {
        Err(TxError::InvalidStatus(status))
    }
}

/// A retransmission timer (A, E or G) and how many times it has fired.
#[derive(Debug, Clone, Copy)]
struct Retransmit {
    at: Instant,
    attempt: u32,
}

/// Which timer slot is due. When several are due (a late `handle_timeout`),
/// they fire in this order whatever their deadlines: once the transaction
/// has timed out or finished, retransmitting is pointless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// B, F or H: the transaction failed.
    Timeout,
    /// D, I, J, K, L or M: the normal end of a transaction.
    Linger,
    /// A, E or G.
    Retransmit,
}

/// The at most three timers any machine runs at once, plus the output queues.
#[derive(Debug, Default)]
struct Io {
    retransmit: Option<Retransmit>,
    timeout: Option<Instant>,
    linger: Option<Instant>,
    transmits: std::collections::VecDeque<bytes::Bytes>,
    events: std::collections::VecDeque<TxEvent>,
}

impl Io {
    fn next_deadline(&self) -> Option<Instant> {
        [self.timeout, self.linger, self.retransmit.map(|r| r.at)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Highest-priority due slot, removed so the handler re-arms it
    /// explicitly.
    fn take_due(&mut self, now: Instant) -> Option<(Slot, Option<Retransmit>)> {
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        let slot = if due(self.timeout) {
            Slot::Timeout
        } else if due(self.linger) {
            Slot::Linger
        } else if due(self.retransmit.map(|r| r.at)) {
            Slot::Retransmit
        } else {
            return None;
        };
        match slot {
            Slot::Timeout => self.timeout = None,
            Slot::Linger => self.linger = None,
            Slot::Retransmit => return Some((slot, self.retransmit.take())),
        }
        Some((slot, None))
    }

    /// The linger deadline, when that is all that is left: no timer but
    /// the linger runs and nothing waits to be sent or reported.
    fn only_lingering(&self) -> Option<Instant> {
        if self.retransmit.is_some()
            || self.timeout.is_some()
            || !self.transmits.is_empty()
            || !self.events.is_empty()
        {
            return None;
        }
        self.linger
    }

    fn clear_timers(&mut self) {
        self.retransmit = None;
        self.timeout = None;
        self.linger = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn default_timer_values_match_table_4() {
        let t = Timers::default();
        assert_eq!((t.t1, t.t2, t.t4), (ms(500), ms(4000), ms(5000)));
        for d in [t.b(), t.f(), t.h(), t.j(false), t.l(), t.m()] {
            assert_eq!(d, ms(32_000));
        }
        assert_eq!(t.d(false), ms(32_000));
        assert_eq!((t.i(false), t.k(false)), (ms(5000), ms(5000)));
        for d in [t.d(true), t.i(true), t.j(true), t.k(true)] {
            assert_eq!(d, Duration::ZERO);
        }
        let a: Vec<_> = (0..7).map(|n| t.a(n).as_millis()).collect();
        assert_eq!(a, vec![500, 1000, 2000, 4000, 8000, 16000, 32000]);
        let e: Vec<_> = (0..6).map(|n| t.e(n).as_millis()).collect();
        assert_eq!(e, vec![500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(t.g(5), t.e(5));
        // Huge attempt counts and configs stay finite rather than overflow.
        assert_eq!(t.a(1000), t.b());
        let huge = Timers {
            t1: Duration::MAX,
            t2: Duration::MAX,
            t4: Duration::MAX,
        };
        let now = Instant::now();
        let _ = now + huge.a(u32::MAX) + huge.d(false) + huge.k(false) + huge.e(40);
    }

    #[test]
    fn timer_d_covers_raised_t1() {
        let t = Timers {
            t1: ms(1000),
            ..Timers::default()
        };
        assert_eq!(t.d(false), ms(64_000));
        assert_eq!(t.b(), ms(64_000));
    }
}
