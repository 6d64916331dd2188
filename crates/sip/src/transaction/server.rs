//! Server transactions: INVITE (RFC 3261 §17.2.1 + RFC 6026) and non-INVITE
//! (§17.2.2).

use std::time::Instant;

use bytes::Bytes;

use super::{
    check_status, Io, Remnant, RemnantKind, Retransmit, Slot, Timers, Transaction, TxError, TxEvent,
};

/// Server transaction states. `Confirmed` and `Accepted` only occur for
/// INVITE, `Trying` only for non-INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerState {
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    /// RFC 6026: a 2xx was sent; INVITE retransmissions are absorbed and the
    /// TU may still pass (retransmitted or forked) 2xx responses through.
    Accepted,
    Terminated,
}

impl ServerState {
    fn name(self) -> &'static str {
        match self {
            Self::Trying => "Trying",
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Confirmed => "Confirmed",
            Self::Accepted => "Accepted",
            Self::Terminated => "Terminated",
        }
    }
}

/// An INVITE or non-INVITE server transaction.
#[derive(Debug)]
pub struct ServerTransaction {
    invite: bool,
    reliable: bool,
    timers: Timers,
    state: ServerState,
    /// Most recent provisional or final response, resent on request
    /// retransmissions and by Timer G.
    last_response: Option<Bytes>,
    last_status: Option<u16>,
    io: Io,
}

impl ServerTransaction {
    /// Create the transaction for a newly received request. INVITE starts in
    /// Proceeding, non-INVITE in Trying; no timers run until a response.
    pub fn new(is_invite: bool, reliable: bool, timers: Timers, _now: Instant) -> Self {
        Self {
            invite: is_invite,
            reliable,
            timers,
            state: if is_invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            last_response: None,
            last_status: None,
            io: Io::default(),
        }
    }

    pub fn state(&self) -> ServerState {
        self.state
    }

    pub fn is_invite(&self) -> bool {
        self.invite
    }

    pub fn is_reliable(&self) -> bool {
        self.reliable
    }

    /// Status of the most recent response sent through this transaction.
    pub fn last_status(&self) -> Option<u16> {
        self.last_status
    }

    /// Whether a final response was already sent (a CANCEL arriving now gets
    /// its 200 but no 487 is due: RFC 3261 §9.2).
    pub fn has_final(&self) -> bool {
        self.last_status.is_some_and(|s| s >= 200)
    }

    /// A retransmission of the request that created this transaction arrived.
    /// Returns `true` when the transaction absorbed it (resending the last
    /// response where §17.2 says so); `false` once Terminated, in which case
    /// the caller treats the request as unmatched.
    #[must_use]
    pub fn on_request(&mut self, _now: Instant) -> bool {
        match self.state {
            ServerState::Proceeding | ServerState::Completed => {
                if let Some(resp) = &self.last_response {
                    self.io.transmits.push_back(resp.clone());
                }
                true
            }
            // Trying: nothing to resend yet. Confirmed: only ACKs matter.
            // Accepted: RFC 6026 forbids passing it up and the 2xx is
            // retransmitted end-to-end by the UAS, not by us.
            ServerState::Trying | ServerState::Confirmed | ServerState::Accepted => true,
            ServerState::Terminated => false,
        }
    }

    /// An ACK matched this (INVITE) transaction. Returns `true` when
    /// absorbed: the ACK for a non-2xx final. Returns `false` when the caller
    /// must pass it to the TU: the ACK for a 2xx (Accepted) is end-to-end and
    /// a proxy forwards it; also for non-INVITE or Terminated transactions.
    #[must_use]
    pub fn on_ack(&mut self, now: Instant) -> bool {
        if !self.invite {
            return false;
        }
        match self.state {
            ServerState::Completed => {
                self.io.clear_timers();
                self.io.linger = Some(now + self.timers.i(self.reliable));
                self.state = ServerState::Confirmed;
                true
            }
            ServerState::Confirmed => true,
            // An ACK before any final response is bogus; drop it.
            ServerState::Proceeding | ServerState::Trying => true,
            ServerState::Accepted | ServerState::Terminated => false,
        }
    }

    /// Send `response` (already printed, status `status`) through the
    /// transaction: queues the transmission, stores it for retransmission and
    /// performs the state transition.
    ///
    /// INVITE: 1xx stays in Proceeding; 2xx → Accepted (Timer L), and further
    /// 2xx are allowed there; 300–699 → Completed (Timer G on unreliable
    /// transports, Timer H). Non-INVITE: 1xx → Proceeding; 200–699 →
    /// Completed (Timer J). Anything else is an error and sends nothing.
    pub fn send_response(
        &mut self,
        status: u16,
        response: Bytes,
        now: Instant,
    ) -> Result<(), TxError> {
        check_status(status)?;
        use ServerState::*;
        match (self.invite, self.state, status) {
            (true, Proceeding, 100..=199) => {}
            (true, Proceeding, 200..=299) => {
                self.state = Accepted;
                self.io.linger = Some(now + self.timers.l());
            }
            (true, Accepted, 200..=299) => {}
            (true, Proceeding, _) => {
                self.state = Completed;
                if !self.reliable {
                    self.io.retransmit = Some(Retransmit {
                        at: now + self.timers.g(0),
                        attempt: 0,
                    });
                }
                self.io.timeout = Some(now + self.timers.h());
            }
            (false, Trying | Proceeding, 100..=199) => self.state = Proceeding,
            (false, Trying | Proceeding, _) => {
                self.state = Completed;
                self.io.linger = Some(now + self.timers.j(self.reliable));
            }
            (_, state, _) => return Err(TxError::InvalidState(state.name())),
        }
        self.io.transmits.push_back(response.clone());
        self.last_response = Some(response);
        self.last_status = Some(status);
        Ok(())
    }

    /// The transport failed to send a response (§17.2.4).
    pub fn on_transport_error(&mut self, _now: Instant) {
        if self.state != ServerState::Terminated {
            self.io.events.push_back(TxEvent::TransportError);
            self.terminate();
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.io.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.io.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.io.next_deadline()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((slot, retransmit)) = self.io.take_due(now) {
            match slot {
                Slot::Timeout => {
                    // Timer H: the ACK never came.
                    self.io.events.push_back(TxEvent::Timeout);
                    self.terminate();
                }
                Slot::Linger => self.terminate(),
                Slot::Retransmit => {
                    // Timer G.
                    let (Some(r), Some(resp)) = (retransmit, &self.last_response) else {
                        continue;
                    };
                    self.io.transmits.push_back(resp.clone());
                    let attempt = r.attempt.saturating_add(1);
                    self.io.retransmit = Some(Retransmit {
                        at: now + self.timers.g(attempt),
                        attempt,
                    });
                }
            }
        }
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ServerState::Terminated
    }

    /// Once only the linger timer is left (Accepted, Confirmed, or a
    /// non-INVITE Completed) and the queues are drained, what the rest of
    /// its life needs; the caller may then drop the transaction for it.
    pub fn remnant(&self) -> Option<Remnant> {
        let until = self.io.only_lingering()?;
        let (kind, resend) = match (self.invite, self.state) {
            (true, ServerState::Accepted) => (RemnantKind::ServerAccepted, None),
            (true, ServerState::Confirmed) => (RemnantKind::ServerConfirmed, None),
            (false, ServerState::Completed) => {
                (RemnantKind::ServerCompleted, self.last_response.clone())
            }
            _ => return None,
        };
        Some(Remnant::new(kind, until, resend))
    }

    fn terminate(&mut self) {
        self.io.clear_timers();
        self.state = ServerState::Terminated;
        self.io.events.push_back(TxEvent::Terminated);
    }
}

impl Transaction for ServerTransaction {
    fn poll_transmit(&mut self) -> Option<Bytes> {
        ServerTransaction::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<TxEvent> {
        ServerTransaction::poll_event(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        ServerTransaction::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        ServerTransaction::handle_timeout(self, now)
    }
    fn is_terminated(&self) -> bool {
        ServerTransaction::is_terminated(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn drain(tx: &mut ServerTransaction) -> Vec<Bytes> {
        std::iter::from_fn(|| tx.poll_transmit()).collect()
    }

    fn events(tx: &mut ServerTransaction) -> Vec<TxEvent> {
        std::iter::from_fn(|| tx.poll_event()).collect()
    }

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    fn invite(reliable: bool, t0: Instant) -> ServerTransaction {
        ServerTransaction::new(true, reliable, Timers::default(), t0)
    }

    fn non_invite(reliable: bool, t0: Instant) -> ServerTransaction {
        ServerTransaction::new(false, reliable, Timers::default(), t0)
    }

    #[test]
    fn invite_proceeding_resends_last_provisional() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        assert_eq!(tx.state(), ServerState::Proceeding);
        assert_eq!(tx.poll_timeout(), None);
        // Retransmission before any response: absorbed silently.
        assert!(tx.on_request(t0));
        assert!(drain(&mut tx).is_empty());
        tx.send_response(100, b("100"), t0).unwrap();
        tx.send_response(180, b("180"), t0).unwrap();
        assert_eq!(drain(&mut tx), vec![b("100"), b("180")]);
        assert!(tx.on_request(t0 + ms(500)));
        assert_eq!(drain(&mut tx), vec![b("180")]);
        assert_eq!(tx.state(), ServerState::Proceeding);
        // Provisionals are never retransmitted by timer.
        assert_eq!(tx.poll_timeout(), None);
        assert!(!tx.has_final());
    }

    #[test]
    fn invite_non_2xx_timer_g_schedule_and_timer_h() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        tx.send_response(486, b("486"), t0).unwrap();
        assert_eq!(tx.state(), ServerState::Completed);
        assert!(tx.has_final());
        assert_eq!(drain(&mut tx), vec![b("486")]);
        let mut sends = Vec::new();
        while let Some(at) = tx.poll_timeout() {
            tx.handle_timeout(at);
            for r in drain(&mut tx) {
                assert_eq!(r, b("486"));
                sends.push((at - t0).as_millis());
            }
        }
        // G: 0.5, 1, 2, 4, 4, ... s (capped at T2); H at 32 s.
        assert_eq!(
            sends,
            vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert!(tx.is_terminated());
        assert_eq!(events(&mut tx), vec![TxEvent::Timeout, TxEvent::Terminated]);
        assert!(!tx.on_request(t0 + secs(33)));
    }

    #[test]
    fn invite_completed_resends_final_on_request_and_rejects_more_responses() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        tx.send_response(180, b("180"), t0).unwrap();
        tx.send_response(404, b("404"), t0).unwrap();
        drain(&mut tx);
        assert!(tx.on_request(t0 + ms(100)));
        assert_eq!(drain(&mut tx), vec![b("404")]);
        assert_eq!(
            tx.send_response(200, b("200"), t0),
            Err(TxError::InvalidState("Completed"))
        );
        assert!(drain(&mut tx).is_empty());
    }

    #[test]
    fn invite_ack_confirms_then_timer_i_terminates() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        tx.send_response(503, b("503"), t0).unwrap();
        drain(&mut tx);
        let t1 = t0 + ms(200);
        assert!(tx.on_ack(t1));
        assert_eq!(tx.state(), ServerState::Confirmed);
        // G and H stopped; only I = T4 remains.
        assert_eq!(tx.poll_timeout(), Some(t1 + secs(5)));
        // ACK and INVITE retransmissions are absorbed without resending.
        assert!(tx.on_ack(t1 + ms(10)));
        assert!(tx.on_request(t1 + ms(20)));
        assert!(drain(&mut tx).is_empty());
        tx.handle_timeout(t1 + ms(4999));
        assert_eq!(tx.state(), ServerState::Confirmed);
        tx.handle_timeout(t1 + secs(5));
        assert!(tx.is_terminated());
        assert!(drain(&mut tx).is_empty());
        assert_eq!(events(&mut tx), vec![TxEvent::Terminated]);
        assert!(!tx.on_ack(t1 + secs(6)));
    }

    #[test]
    fn invite_reliable_no_g_and_zero_i() {
        let t0 = Instant::now();
        let mut tx = invite(true, t0);
        tx.send_response(480, b("480"), t0).unwrap();
        drain(&mut tx);
        // Only Timer H runs.
        assert_eq!(tx.poll_timeout(), Some(t0 + secs(32)));
        tx.handle_timeout(t0 + secs(10));
        assert!(drain(&mut tx).is_empty());
        let t1 = t0 + secs(11);
        assert!(tx.on_ack(t1));
        assert_eq!(tx.poll_timeout(), Some(t1));
        tx.handle_timeout(t1);
        assert!(tx.is_terminated());
        assert_eq!(events(&mut tx), vec![TxEvent::Terminated]);
    }

    #[test]
    fn late_timeout_wins_over_timer_g() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        tx.send_response(486, b("486"), t0).unwrap();
        drain(&mut tx);
        tx.handle_timeout(t0 + secs(40));
        assert!(drain(&mut tx).is_empty());
        assert_eq!(events(&mut tx), vec![TxEvent::Timeout, TxEvent::Terminated]);
    }

    #[test]
    fn invite_reliable_timer_h() {
        let t0 = Instant::now();
        let mut tx = invite(true, t0);
        tx.send_response(480, b("480"), t0).unwrap();
        tx.handle_timeout(t0 + secs(32));
        assert_eq!(events(&mut tx), vec![TxEvent::Timeout, TxEvent::Terminated]);
    }

    #[test]
    fn invite_2xx_accepted_per_rfc6026() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        tx.send_response(180, b("180"), t0).unwrap();
        let t1 = t0 + ms(300);
        tx.send_response(200, b("200"), t1).unwrap();
        assert_eq!(tx.state(), ServerState::Accepted);
        assert_eq!(drain(&mut tx), vec![b("180"), b("200")]);
        // INVITE retransmissions are absorbed without a resend.
        assert!(tx.on_request(t1 + ms(500)));
        assert!(drain(&mut tx).is_empty());
        // The ACK for a 2xx belongs to the TU.
        assert!(!tx.on_ack(t1 + ms(600)));
        assert_eq!(tx.state(), ServerState::Accepted);
        // 2xx retransmissions (or other forks' 2xx) from the TU pass through.
        tx.send_response(200, b("200 again"), t1 + ms(700)).unwrap();
        assert_eq!(drain(&mut tx), vec![b("200 again")]);
        assert_eq!(
            tx.send_response(486, b("486"), t1),
            Err(TxError::InvalidState("Accepted"))
        );
        assert_eq!(
            tx.send_response(180, b("180"), t1),
            Err(TxError::InvalidState("Accepted"))
        );
        // No timer-driven 2xx retransmission; Timer L = 64·T1.
        assert_eq!(tx.poll_timeout(), Some(t1 + secs(32)));
        tx.handle_timeout(t1 + ms(31_999));
        assert!(drain(&mut tx).is_empty());
        tx.handle_timeout(t1 + secs(32));
        assert!(tx.is_terminated());
        assert_eq!(events(&mut tx), vec![TxEvent::Terminated]);
        assert!(tx.send_response(200, b("200"), t1 + secs(33)).is_err());
    }

    #[test]
    fn invalid_status_rejected() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        assert_eq!(
            tx.send_response(99, b("x"), t0),
            Err(TxError::InvalidStatus(99))
        );
        assert_eq!(
            tx.send_response(700, b("x"), t0),
            Err(TxError::InvalidStatus(700))
        );
        assert!(drain(&mut tx).is_empty());
        assert_eq!(tx.state(), ServerState::Proceeding);
    }

    #[test]
    fn ack_before_final_is_dropped() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        assert!(tx.on_ack(t0));
        assert_eq!(tx.state(), ServerState::Proceeding);
    }

    #[test]
    fn non_invite_trying_proceeding_completed_timer_j() {
        let t0 = Instant::now();
        let mut tx = non_invite(false, t0);
        assert_eq!(tx.state(), ServerState::Trying);
        assert!(tx.on_request(t0));
        assert!(drain(&mut tx).is_empty());
        tx.send_response(100, b("100"), t0).unwrap();
        assert_eq!(tx.state(), ServerState::Proceeding);
        assert!(tx.on_request(t0 + ms(500)));
        assert_eq!(drain(&mut tx), vec![b("100"), b("100")]);
        let t1 = t0 + ms(800);
        tx.send_response(200, b("200"), t1).unwrap();
        assert_eq!(tx.state(), ServerState::Completed);
        assert_eq!(drain(&mut tx), vec![b("200")]);
        assert!(tx.on_request(t1 + ms(1)));
        assert_eq!(drain(&mut tx), vec![b("200")]);
        assert!(tx.send_response(500, b("500"), t1).is_err());
        // No timer-driven response retransmission, J = 64·T1.
        assert_eq!(tx.poll_timeout(), Some(t1 + secs(32)));
        tx.handle_timeout(t1 + ms(31_999));
        assert!(drain(&mut tx).is_empty());
        tx.handle_timeout(t1 + secs(32));
        assert!(tx.is_terminated());
        assert_eq!(events(&mut tx), vec![TxEvent::Terminated]);
        assert!(!tx.on_request(t1 + secs(33)));
    }

    #[test]
    fn non_invite_final_from_trying_and_zero_j_on_reliable() {
        let t0 = Instant::now();
        let mut tx = non_invite(true, t0);
        tx.send_response(404, b("404"), t0).unwrap();
        assert_eq!(tx.state(), ServerState::Completed);
        assert_eq!(tx.poll_timeout(), Some(t0));
        tx.handle_timeout(t0);
        assert!(tx.is_terminated());
        assert_eq!(drain(&mut tx), vec![b("404")]);
    }

    #[test]
    fn non_invite_ignores_ack() {
        let t0 = Instant::now();
        let mut tx = non_invite(false, t0);
        tx.send_response(404, b("404"), t0).unwrap();
        assert!(!tx.on_ack(t0));
        assert_eq!(tx.state(), ServerState::Completed);
    }

    #[test]
    fn transport_error_terminates() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        tx.send_response(500, b("500"), t0).unwrap();
        tx.on_transport_error(t0 + ms(1));
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(
            events(&mut tx),
            vec![TxEvent::TransportError, TxEvent::Terminated]
        );
        tx.on_transport_error(t0 + ms(2));
        assert!(events(&mut tx).is_empty());
    }
}
