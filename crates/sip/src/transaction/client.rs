//! Client transactions: INVITE (RFC 3261 §17.1.1 + RFC 6026) and non-INVITE
//! (§17.1.2).

use std::time::Instant;

use bytes::Bytes;

use super::{Io, Remnant, RemnantKind, Retransmit, Slot, Timers, Transaction, TxError, TxEvent};

/// Client transaction states. `Calling` and `Accepted` only occur for INVITE,
/// `Trying` only for non-INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    /// RFC 6026: a 2xx was received; further 2xx are still passed up.
    Accepted,
    Terminated,
}

impl ClientState {
    fn name(self) -> &'static str {
        match self {
            Self::Calling => "Calling",
            Self::Trying => "Trying",
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Accepted => "Accepted",
            Self::Terminated => "Terminated",
        }
    }
}

/// What the caller must do with a response it fed to
/// [`ClientTransaction::on_response`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseAction {
    /// Pass the response up to the TU.
    Deliver,
    /// Pass the response up, and build the ACK for this non-2xx final
    /// response (RFC 3261 §17.1.1.3) and hand it to
    /// [`ClientTransaction::set_ack`].
    DeliverAndAck,
    /// Retransmission or stray: drop it (any ACK resend is already queued).
    Absorb,
}

/// An INVITE or non-INVITE client transaction.
#[derive(Debug)]
pub struct ClientTransaction {
    invite: bool,
    reliable: bool,
    timers: Timers,
    state: ClientState,
    request: Bytes,
    /// The caller was told to build an ACK (non-2xx final to INVITE).
    ack_requested: bool,
    ack: Option<Bytes>,
    last_status: Option<u16>,
    io: Io,
}

impl ClientTransaction {
    /// Start a transaction for `request` (already printed, with its top Via
    /// branch). Queues the first transmission and arms Timer A/E (unreliable
    /// transports only) and Timer B/F. Do not create one for ACK.
    pub fn new(
        is_invite: bool,
        request: Bytes,
        reliable: bool,
        timers: Timers,
        now: Instant,
    ) -> Self {
        let mut io = Io::default();
        io.transmits.push_back(request.clone());
        if !reliable {
            let first = if is_invite { timers.a(0) } else { timers.e(0) };
            io.retransmit = Some(Retransmit {
                at: now + first,
                attempt: 0,
            });
        }
        io.timeout = Some(now + if is_invite { timers.b() } else { timers.f() });
        Self {
            invite: is_invite,
            reliable,
            timers,
            state: if is_invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            request,
            ack_requested: false,
            ack: None,
            last_status: None,
            io,
        }
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    pub fn is_invite(&self) -> bool {
        self.invite
    }

    pub fn is_reliable(&self) -> bool {
        self.reliable
    }

    /// The request this transaction sends (e.g. to derive a CANCEL from).
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// Status of the most recent response delivered to the TU.
    pub fn last_status(&self) -> Option<u16> {
        self.last_status
    }

    /// Whether the TU may now send a CANCEL for this transaction: an INVITE
    /// that has seen a provisional but no final response (RFC 3261 §9.1).
    /// Before the first provisional, the TU must wait (and give up via
    /// Timer B if none comes); after a final response there is nothing to
    /// cancel.
    pub fn can_cancel(&self) -> bool {
        self.invite && self.state == ClientState::Proceeding
    }

    /// Feed a response matched to this transaction (by [`super::ClientKey`]).
    /// Statuses outside 100..=699 are absorbed.
    pub fn on_response(&mut self, status: u16, now: Instant) -> ResponseAction {
        if !(100..=699).contains(&status) {
            return ResponseAction::Absorb;
        }
        if self.invite {
            self.on_invite_response(status, now)
        } else {
            self.on_non_invite_response(status, now)
        }
    }

    fn on_invite_response(&mut self, status: u16, now: Instant) -> ResponseAction {
        use ClientState::*;
        match (self.state, status) {
            (Calling | Proceeding, 100..=199) => {
                // §17.1.1.2: no more retransmissions, and Timer B only
                // applies in Calling; Timer C is the proxy's business.
                self.io.clear_timers();
                self.state = Proceeding;
                self.deliver(status)
            }
            (Calling | Proceeding, 200..=299) => {
                self.io.clear_timers();
                self.io.linger = Some(now + self.timers.m());
                self.state = Accepted;
                self.deliver(status)
            }
            (Calling | Proceeding, _) => {
                self.io.clear_timers();
                self.io.linger = Some(now + self.timers.d(self.reliable));
                self.state = Completed;
                self.ack_requested = true;
                self.last_status = Some(status);
                ResponseAction::DeliverAndAck
            }
            (Completed, 300..=699) => {
                // Retransmitted final: our ACK was lost, send it again.
                if let Some(ack) = &self.ack {
                    self.io.transmits.push_back(ack.clone());
                }
                ResponseAction::Absorb
            }
            // A 2xx after a non-2xx final can only come from a forking
            // proxy downstream; a proxy must forward every 2xx (§16.7 step 5),
            // so it goes up without affecting this transaction.
            (Completed | Accepted, 200..=299) => self.deliver(status),
            _ => ResponseAction::Absorb,
        }
    }

    fn on_non_invite_response(&mut self, status: u16, now: Instant) -> ResponseAction {
        use ClientState::*;
        match (self.state, status) {
            (Trying | Proceeding, 100..=199) => {
                // Timer E keeps running; it is reset to T2 when it next fires.
                self.state = Proceeding;
                self.deliver(status)
            }
            (Trying | Proceeding, _) => {
                self.io.clear_timers();
                self.io.linger = Some(now + self.timers.k(self.reliable));
                self.state = Completed;
                self.deliver(status)
            }
            _ => ResponseAction::Absorb,
        }
    }

    fn deliver(&mut self, status: u16) -> ResponseAction {
        self.last_status = Some(status);
        ResponseAction::Deliver
    }

    /// Provide the ACK requested by [`ResponseAction::DeliverAndAck`]. It is
    /// sent now and resent for each retransmitted final response while in
    /// Completed. Allowed once, and also after Timer D already terminated
    /// the transaction (D is zero on reliable transports), so the ACK is
    /// never lost to call ordering.
    pub fn set_ack(&mut self, ack: Bytes) -> Result<(), TxError> {
        if !self.ack_requested {
            return Err(TxError::InvalidState(self.state.name()));
        }
        if self.ack.is_some() {
            return Err(TxError::InvalidState("Completed (ACK already set)"));
        }
        self.io.transmits.push_back(ack.clone());
        self.ack = Some(ack);
        Ok(())
    }

    /// The transport failed to send the request or ACK (§17.1.4).
    pub fn on_transport_error(&mut self, _now: Instant) {
        if self.state != ClientState::Terminated {
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
                    // Timer B / F.
                    self.io.events.push_back(TxEvent::Timeout);
                    self.terminate();
                }
                Slot::Linger => self.terminate(),
                Slot::Retransmit => {
                    let Some(r) = retransmit else { continue };
                    self.io.transmits.push_back(self.request.clone());
                    let attempt = r.attempt.saturating_add(1);
                    let interval = match (self.invite, self.state) {
                        (true, _) => self.timers.a(attempt),
                        // §17.1.2.2: in Proceeding, E is reset to T2.
                        (false, ClientState::Proceeding) => self.timers.t2(),
                        (false, _) => self.timers.e(attempt),
                    };
                    self.io.retransmit = Some(Retransmit {
                        at: now + interval,
                        attempt,
                    });
                }
            }
        }
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ClientState::Terminated
    }

    /// Once only the linger timer is left (Accepted, or Completed with its
    /// ACK set) and the queues are drained, what the rest of its life needs;
    /// the caller may then drop the transaction for it.
    pub fn remnant(&self) -> Option<Remnant> {
        let until = self.io.only_lingering()?;
        let (kind, resend) = match (self.invite, self.state) {
            (true, ClientState::Accepted) => (RemnantKind::ClientAccepted, None),
            // Until the TU hands over the ACK there is nothing to resend.
            (true, ClientState::Completed) => {
                (RemnantKind::ClientCompleted, Some(self.ack.clone()?))
            }
            (false, ClientState::Completed) => (RemnantKind::ClientNonInviteCompleted, None),
            _ => return None,
        };
        Some(Remnant::new(kind, until, resend))
    }

    fn terminate(&mut self) {
        self.io.clear_timers();
        self.state = ClientState::Terminated;
        self.io.events.push_back(TxEvent::Terminated);
    }
}

impl Transaction for ClientTransaction {
    fn poll_transmit(&mut self) -> Option<Bytes> {
        ClientTransaction::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<TxEvent> {
        ClientTransaction::poll_event(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        ClientTransaction::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        ClientTransaction::handle_timeout(self, now)
    }
    fn is_terminated(&self) -> bool {
        ClientTransaction::is_terminated(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(tx: &mut ClientTransaction) -> Vec<Bytes> {
        std::iter::from_fn(|| tx.poll_transmit()).collect()
    }

    fn events(tx: &mut ClientTransaction) -> Vec<TxEvent> {
        std::iter::from_fn(|| tx.poll_event()).collect()
    }

    /// Run the transaction by following `poll_timeout` until `end`, returning
    /// the offsets (ms from `base`) at which the request was retransmitted.
    fn run_until(tx: &mut ClientTransaction, base: Instant, end: Instant) -> Vec<u128> {
        let mut sends = Vec::new();
        while let Some(at) = tx.poll_timeout() {
            if at > end {
                break;
            }
            tx.handle_timeout(at);
            for _ in drain(tx) {
                sends.push((at - base).as_millis());
            }
        }
        sends
    }

    const REQ: &[u8] = b"INVITE sip:x SIP/2.0\r\n\r\n";

    #[test]
    fn invite_calling_retransmits_doubling_without_cap_until_b() {
        let t0 = Instant::now();
        let mut tx =
            ClientTransaction::new(true, Bytes::from_static(REQ), false, Timers::default(), t0);
        assert_eq!(tx.state(), ClientState::Calling);
        assert_eq!(drain(&mut tx), vec![Bytes::from_static(REQ)]);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(500)));
        let sends = run_until(&mut tx, t0, t0 + Duration::from_secs(100));
        // 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s: intervals 0.5..16 s, uncapped by T2.
        assert_eq!(sends, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(tx.state(), ClientState::Terminated);
        assert_eq!(events(&mut tx), vec![TxEvent::Timeout, TxEvent::Terminated]);
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn timer_b_fires_at_64_t1() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(true, Bytes::new(), true, Timers::default(), t0);
        drain(&mut tx);
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        tx.handle_timeout(t0 + ms(31_999));
        assert_eq!(tx.state(), ClientState::Calling);
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert!(tx.is_terminated());
        assert_eq!(events(&mut tx), vec![TxEvent::Timeout, TxEvent::Terminated]);
    }

    #[test]
    fn invite_reliable_has_no_retransmissions() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(true, Bytes::new(), true, Timers::default(), t0);
        assert_eq!(drain(&mut tx).len(), 1);
        let sends = run_until(&mut tx, t0, t0 + Duration::from_secs(100));
        assert!(sends.is_empty());
        assert_eq!(events(&mut tx), vec![TxEvent::Timeout, TxEvent::Terminated]);
    }

    #[test]
    fn invite_provisional_stops_retransmission_and_timer_b() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(true, Bytes::new(), false, Timers::default(), t0);
        drain(&mut tx);
        assert!(!tx.can_cancel());
        assert_eq!(tx.on_response(180, t0 + ms(100)), ResponseAction::Deliver);
        assert_eq!(tx.state(), ClientState::Proceeding);
        assert!(tx.can_cancel());
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.on_response(183, t0 + ms(200)), ResponseAction::Deliver);
        assert_eq!(tx.last_status(), Some(183));
        tx.handle_timeout(t0 + Duration::from_secs(600));
        assert_eq!(tx.state(), ClientState::Proceeding);
        assert!(drain(&mut tx).is_empty());
        assert!(events(&mut tx).is_empty());
    }

    #[test]
    fn invite_non_2xx_acks_and_resends_ack_on_retransmitted_final() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(true, Bytes::new(), false, Timers::default(), t0);
        drain(&mut tx);
        assert_eq!(tx.on_response(100, t0), ResponseAction::Deliver);
        let t1 = t0 + ms(1000);
        assert_eq!(tx.on_response(486, t1), ResponseAction::DeliverAndAck);
        assert_eq!(tx.state(), ClientState::Completed);
        assert!(!tx.can_cancel());
        let ack = Bytes::from_static(b"ACK");
        tx.set_ack(ack.clone()).unwrap();
        assert_eq!(drain(&mut tx), vec![ack.clone()]);
        assert!(tx.set_ack(ack.clone()).is_err());
        // Retransmitted finals are absorbed and answered with the stored ACK.
        assert_eq!(tx.on_response(486, t1 + ms(500)), ResponseAction::Absorb);
        assert_eq!(drain(&mut tx), vec![ack.clone()]);
        assert_eq!(tx.on_response(486, t1 + ms(1500)), ResponseAction::Absorb);
        assert_eq!(drain(&mut tx), vec![ack]);
        // Late provisionals are absorbed without an ACK.
        assert_eq!(tx.on_response(180, t1 + ms(1600)), ResponseAction::Absorb);
        assert!(drain(&mut tx).is_empty());
        // Timer D = 32 s.
        assert_eq!(tx.poll_timeout(), Some(t1 + Duration::from_secs(32)));
        tx.handle_timeout(t1 + Duration::from_secs(32));
        assert!(tx.is_terminated());
        assert_eq!(events(&mut tx), vec![TxEvent::Terminated]);
        assert_eq!(tx.on_response(486, t1 + ms(40_000)), ResponseAction::Absorb);
        assert!(drain(&mut tx).is_empty());
    }

    #[test]
    fn invite_final_in_calling_also_asks_for_ack() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(true, Bytes::new(), false, Timers::default(), t0);
        drain(&mut tx);
        assert_eq!(
            tx.on_response(603, t0 + ms(10)),
            ResponseAction::DeliverAndAck
        );
        assert_eq!(tx.last_status(), Some(603));
        // Retransmitted final before the caller set the ACK: nothing to send.
        assert_eq!(tx.on_response(603, t0 + ms(20)), ResponseAction::Absorb);
        assert!(drain(&mut tx).is_empty());
        // No request retransmission after the final.
        tx.handle_timeout(t0 + Duration::from_secs(5));
        assert!(drain(&mut tx).is_empty());
    }

    #[test]
    fn invite_reliable_timer_d_is_zero_and_ack_still_accepted() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(true, Bytes::new(), true, Timers::default(), t0);
        drain(&mut tx);
        let t1 = t0 + ms(300);
        assert_eq!(tx.on_response(404, t1), ResponseAction::DeliverAndAck);
        assert_eq!(tx.poll_timeout(), Some(t1));
        tx.handle_timeout(t1);
        assert!(tx.is_terminated());
        tx.set_ack(Bytes::from_static(b"ACK")).unwrap();
        assert_eq!(drain(&mut tx), vec![Bytes::from_static(b"ACK")]);
    }

    #[test]
    fn set_ack_without_request_is_rejected() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(true, Bytes::new(), false, Timers::default(), t0);
        assert_eq!(
            tx.set_ack(Bytes::new()),
            Err(TxError::InvalidState("Calling"))
        );
        assert_eq!(tx.on_response(200, t0), ResponseAction::Deliver);
        assert!(tx.set_ack(Bytes::new()).is_err());
    }

    #[test]
    fn invite_2xx_enters_accepted_and_delivers_retransmitted_2xx() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(true, Bytes::new(), false, Timers::default(), t0);
        drain(&mut tx);
        let t1 = t0 + ms(700);
        assert_eq!(tx.on_response(200, t1), ResponseAction::Deliver);
        assert_eq!(tx.state(), ClientState::Accepted);
        // RFC 6026: every 2xx goes up (a proxy forwards them), no ACK here.
        assert_eq!(tx.on_response(200, t1 + ms(500)), ResponseAction::Deliver);
        assert_eq!(tx.on_response(202, t1 + ms(600)), ResponseAction::Deliver);
        assert_eq!(tx.on_response(180, t1 + ms(700)), ResponseAction::Absorb);
        assert_eq!(tx.on_response(500, t1 + ms(800)), ResponseAction::Absorb);
        assert!(drain(&mut tx).is_empty());
        // No request retransmissions; Timer M = 64·T1.
        assert_eq!(tx.poll_timeout(), Some(t1 + Duration::from_secs(32)));
        tx.handle_timeout(t1 + ms(31_999));
        assert_eq!(tx.state(), ClientState::Accepted);
        assert!(drain(&mut tx).is_empty());
        tx.handle_timeout(t1 + Duration::from_secs(32));
        assert!(tx.is_terminated());
        assert_eq!(events(&mut tx), vec![TxEvent::Terminated]);
    }

    #[test]
    fn invite_2xx_after_provisional_enters_accepted() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(true, Bytes::new(), true, Timers::default(), t0);
        assert_eq!(tx.on_response(180, t0), ResponseAction::Deliver);
        assert_eq!(tx.on_response(200, t0), ResponseAction::Deliver);
        assert_eq!(tx.state(), ClientState::Accepted);
        // Accepted lasts 64·T1 even on reliable transports (RFC 6026 Timer M).
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    }

    #[test]
    fn invite_2xx_in_completed_is_delivered_without_state_change() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(true, Bytes::new(), false, Timers::default(), t0);
        assert_eq!(tx.on_response(487, t0), ResponseAction::DeliverAndAck);
        assert_eq!(tx.on_response(200, t0), ResponseAction::Deliver);
        assert_eq!(tx.state(), ClientState::Completed);
    }

    #[test]
    fn invalid_status_is_absorbed() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(false, Bytes::new(), false, Timers::default(), t0);
        assert_eq!(tx.on_response(99, t0), ResponseAction::Absorb);
        assert_eq!(tx.on_response(700, t0), ResponseAction::Absorb);
        assert_eq!(tx.state(), ClientState::Trying);
    }

    #[test]
    fn non_invite_trying_retransmits_capped_at_t2_until_f() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(
            false,
            Bytes::from_static(b"OPTIONS"),
            false,
            Timers::default(),
            t0,
        );
        assert_eq!(tx.state(), ClientState::Trying);
        assert_eq!(drain(&mut tx).len(), 1);
        let sends = run_until(&mut tx, t0, t0 + Duration::from_secs(100));
        // Intervals 0.5, 1, 2, 4, 4, 4, ... s; Timer F at 32 s.
        assert_eq!(
            sends,
            vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert!(tx.is_terminated());
        assert_eq!(events(&mut tx), vec![TxEvent::Timeout, TxEvent::Terminated]);
    }

    #[test]
    fn non_invite_proceeding_retransmits_every_t2_and_f_still_applies() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(false, Bytes::new(), false, Timers::default(), t0);
        drain(&mut tx);
        assert_eq!(tx.on_response(100, t0 + ms(100)), ResponseAction::Deliver);
        assert_eq!(tx.state(), ClientState::Proceeding);
        let sends = run_until(&mut tx, t0, t0 + Duration::from_secs(100));
        // E was armed at 0.5 s and fires there, then every T2.
        assert_eq!(
            sends,
            vec![500, 4500, 8500, 12500, 16500, 20500, 24500, 28500]
        );
        assert_eq!(events(&mut tx), vec![TxEvent::Timeout, TxEvent::Terminated]);
    }

    #[test]
    fn non_invite_final_completes_with_timer_k_and_absorbs_retransmissions() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(false, Bytes::new(), false, Timers::default(), t0);
        drain(&mut tx);
        assert_eq!(tx.on_response(180, t0 + ms(10)), ResponseAction::Deliver);
        let t1 = t0 + ms(600);
        assert_eq!(tx.on_response(407, t1), ResponseAction::Deliver);
        assert_eq!(tx.state(), ClientState::Completed);
        assert_eq!(tx.on_response(407, t1 + ms(1)), ResponseAction::Absorb);
        assert_eq!(tx.on_response(200, t1 + ms(2)), ResponseAction::Absorb);
        assert!(drain(&mut tx).is_empty());
        assert_eq!(tx.poll_timeout(), Some(t1 + Duration::from_secs(5)));
        tx.handle_timeout(t1 + Duration::from_secs(5));
        assert!(tx.is_terminated());
        assert!(drain(&mut tx).is_empty());
        assert_eq!(events(&mut tx), vec![TxEvent::Terminated]);
    }

    #[test]
    fn non_invite_reliable_no_retransmissions_and_zero_k() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(false, Bytes::new(), true, Timers::default(), t0);
        assert_eq!(drain(&mut tx).len(), 1);
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        let t1 = t0 + ms(50);
        assert_eq!(tx.on_response(200, t1), ResponseAction::Deliver);
        assert_eq!(tx.poll_timeout(), Some(t1));
        tx.handle_timeout(t1);
        assert!(tx.is_terminated());
    }

    #[test]
    fn transport_error_terminates_once() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(true, Bytes::new(), false, Timers::default(), t0);
        tx.on_transport_error(t0);
        tx.on_transport_error(t0);
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(
            events(&mut tx),
            vec![TxEvent::TransportError, TxEvent::Terminated]
        );
    }

    #[test]
    fn late_handle_timeout_does_not_burst_retransmissions() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(false, Bytes::new(), false, Timers::default(), t0);
        drain(&mut tx);
        // Called 10 s late: one retransmission, then rescheduled from `now`.
        tx.handle_timeout(t0 + Duration::from_secs(10));
        assert_eq!(drain(&mut tx).len(), 1);
        assert_eq!(
            tx.poll_timeout(),
            Some(t0 + Duration::from_secs(10) + ms(1000))
        );
        // Called after F: the timeout wins and nothing is retransmitted.
        tx.handle_timeout(t0 + Duration::from_secs(40));
        assert!(drain(&mut tx).is_empty());
        assert_eq!(events(&mut tx), vec![TxEvent::Timeout, TxEvent::Terminated]);
    }

    #[test]
    fn zero_t1_does_not_spin() {
        let t0 = Instant::now();
        let timers = Timers {
            t1: Duration::ZERO,
            ..Timers::default()
        };
        let mut tx = ClientTransaction::new(true, Bytes::new(), false, timers, t0);
        drain(&mut tx);
        tx.handle_timeout(t0 + ms(10));
        assert!(!drain(&mut tx).is_empty());
        assert!(tx.poll_timeout().unwrap() > t0 + ms(10));
    }
}
