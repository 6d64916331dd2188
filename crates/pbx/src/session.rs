//! Calls as the PBX sees them: the media anchored in the relay (every SDP
//! offer and answer rewritten to relay ports, in INVITE, responses, ACK,
//! re-INVITE and UPDATE), the call's life from INVITE to BYE, the call
//! record written at its end, teardown when the media goes silent, and the
//! media applications (echo test, announcements) answered by the PBX itself.

use crate::core::{Core, TimerKey};
use crate::io::{Flow, Now};
use bytes::Bytes;
use media::relay::{Event as MediaEvent, Mode, RelayError, Report, SessionId, Side};
use sip::header::HeaderName;
use sip::message::{Message, RequestBuilder};
use sip::method::Method;
use sip::transaction::ClientKey;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// The relay, shared by the SIP core (which opens, rewrites and closes
/// sessions) and the media loop (which forwards packets): lock order is
/// core, then relay; the media loop takes the relay lock alone.
pub type SharedRelay = Arc<Mutex<media::Relay<Box<dyn media::Ports + Send>>>>;

/// What the core takes from `[media]`.
#[derive(Debug, Clone, Default)]
pub struct MediaConfig {
    pub enabled: bool,
    /// The relay's address in SDP; `None`: our SIP listener's address.
    pub address: Option<IpAddr>,
    /// Numbers answered by the echo test.
    pub echo: Vec<String>,
    /// Number, recording, looped.
    pub announcements: Vec<(String, Arc<media::wav::Audio>, bool)>,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Answered,
    Busy,
    NoAnswer,
    Cancelled,
    /// Refused or failed with the final status in the record.
    Failed,
    /// No RTP for `media.timeout_secs`: hardline hung up both sides.
    MediaTimeout,
    /// Still up after `shield.calls.max_duration_secs`: hung up.
    MaxDuration,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::Busy => "busy",
            Disposition::NoAnswer => "no_answer",
            Disposition::Cancelled => "cancelled",
            Disposition::Failed => "failed",
            Disposition::MediaTimeout => "media_timeout",
            Disposition::MaxDuration => "max_duration",
        }
    }
}

/// A finished call, for the store.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub caller_source: String,
    pub callee_target: String,
    /// Unix milliseconds.
    pub started_ms: u64,
    pub answered_ms: Option<u64>,
    pub ended_ms: u64,
    pub disposition: Disposition,
    pub status: Option<u16>,
    pub codec: Option<String>,
    /// The relay's statistics; `None` when the media was not anchored.
    pub report: Option<Report>,
}

/// A call in progress, for `hardline calls`.
#[derive(Debug, Clone)]
pub struct LiveCall {
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub started_ms: u64,
    pub answered_ms: Option<u64>,
    pub codec: Option<String>,
    pub report: Option<Report>,
}

/// A call the PBX answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum App {
    Echo,
    Player,
}

pub(crate) struct Call {
    pub media: Option<SessionId>,
    pub app: Option<App>,
    pub caller_tag: String,
    pub callee_tag: Option<String>,
    /// The From of the INVITE and the To of the answer, as sent.
    pub caller_from: String,
    pub callee_to: Option<String>,
    pub from_uri: String,
    pub to_uri: String,
    pub caller_flow: Flow,
    pub callee_flow: Option<Flow>,
    pub caller_contact: Option<String>,
    pub callee_contact: Option<String>,
    /// Highest CSeq each side used, so our BYE on its behalf is newer.
    pub caller_cseq: u32,
    pub callee_cseq: u32,
    pub invite_cseq: u32,
    pub started_ms: u64,
    pub answered_ms: Option<u64>,
    pub answered_mono: Option<Instant>,
    /// The 2xx we sent as a UAS (apps), retransmitted until the ACK.
    pub ok: Option<(Bytes, Duration, Instant)>,
    pub cancelled: bool,
}

impl Call {
    /// A call as its INVITE, from `inbound`, starts it: ringing, the callee
    /// not known yet.
    fn from_invite(
        msg: &Message,
        inbound: Flow,
        media: Option<SessionId>,
        started_ms: u64,
    ) -> Call {
        let (from_uri, to_uri) = uris(msg);
        Call {
            media,
            app: None,
            caller_tag: msg.from_tag().unwrap_or("").to_string(),
            callee_tag: None,
            caller_from: msg.header(HeaderName::From).unwrap_or("").to_string(),
            callee_to: None,
            from_uri,
            to_uri,
            caller_flow: inbound,
            callee_flow: None,
            caller_contact: first_contact(msg),
            callee_contact: None,
            caller_cseq: msg.cseq().seq,
            callee_cseq: 0,
            invite_cseq: msg.cseq().seq,
            started_ms,
            answered_ms: None,
            answered_mono: None,
            ok: None,
            cancelled: false,
        }
    }
}

/// The From and To URIs of a request, as the record shows them.
fn uris(msg: &Message) -> (String, String) {
    (
        msg.from().map(|f| f.uri.to_string()).unwrap_or_default(),
        msg.to().map(|t| t.uri.to_string()).unwrap_or_default(),
    )
}

/// Calls tracked at once beyond the relay's sessions (calls whose media is
/// not anchored still get a record).
const MAX_CALLS: usize = 100_000;

impl Core {
    /// A call starts being tracked.
    fn call_insert(&mut self, call_id: String, call: Call) {
        self.live.insert(call_id, call);
        self.metrics.calls_active.set(self.live.len() as i64);
    }

    /// Wall-clock milliseconds: the monotonic clock anchored to the
    /// wall-clock seconds. Each reading of whole seconds is a lower bound
    /// of the true time, so the anchor moves up to it whenever the estimate
    /// falls behind (it converges on the true sub-second phase), and jumps
    /// back only on a clock step.
    pub(crate) fn unix_ms(&mut self, now: Now) -> u64 {
        let floor = now.unix * 1000;
        let (mono, ms) = *self.clock.get_or_insert((now.mono, floor));
        let est = ms + now.mono.saturating_duration_since(mono).as_millis() as u64;
        if est < floor || est >= floor + 2000 {
            self.clock = Some((now.mono, floor));
            return floor;
        }
        est
    }

    fn relay_ip(&self, local: IpAddr) -> IpAddr {
        self.cfg.media.address.unwrap_or(local)
    }

    /// An initial INVITE about to be forwarded: the call starts, its media
    /// is anchored and the offer (if any) rewritten. `Err`: the answer to
    /// give instead.
    pub(crate) fn call_begin(
        &mut self,
        now: Now,
        inbound: Flow,
        toward: IpAddr,
        exempt: bool,
        msg: &mut Message,
    ) -> Result<(), (u16, &'static str)> {
        let call_id = msg.call_id().to_string();
        if self.live.contains_key(&call_id) || self.live.len() >= MAX_CALLS {
            // A second INVITE with a live Call-ID is a loop or a forgery;
            // the table is bounded either way.
            return Err((503, "Service Unavailable"));
        }
        let media = match (&self.relay, self.cfg.media.enabled) {
            (Some(r), true) => {
                let mut relay = r.lock().map_err(|_| (500, "Server Internal Error"))?;
                let id = relay
                    .create(now.mono, inbound.remote.ip(), exempt, Mode::Bridge)
                    .map_err(|e| {
                        warn!(call_id = %call_id, source = %inbound.remote, error = %e, "media not anchored");
                        e.status()
                    })?;
                if has_sdp(msg) {
                    let ip = self.relay_ip(toward);
                    match relay.rewrite(id, Side::Caller, inbound.remote.ip(), msg.body(), ip) {
                        Ok(body) => {
                            if msg
                                .set_body(Some("application/sdp"), Bytes::from(body))
                                .is_err()
                            {
                                relay.release(id);
                                return Err((500, "Server Internal Error"));
                            }
                        }
                        Err(e) => {
                            relay.release(id);
                            self.metrics.drop_reason("bad_sdp");
                            return Err(e.status());
                        }
                    }
                }
                Some(id)
            }
            _ => None,
        };
        let started_ms = self.unix_ms(now);
        let call = Call::from_invite(msg, inbound, media, started_ms);
        self.call_insert(call_id, call);
        Ok(())
    }

    /// A call refused before it started (its media could not be anchored):
    /// recorded as failed with the status it got.
    pub(crate) fn call_refused(&mut self, now: Now, inbound: Flow, msg: &Message, code: u16) {
        let at = self.unix_ms(now);
        let (from, to) = uris(msg);
        self.call_out.push_back(CallRecord {
            call_id: msg.call_id().to_string(),
            from,
            to,
            caller_source: inbound.remote_string(),
            callee_target: String::new(),
            started_ms: at,
            answered_ms: None,
            ended_ms: at,
            disposition: Disposition::Failed,
            status: Some(code),
            codec: None,
            report: None,
        });
    }

    /// Rewrites the SDP of a message sent by `from` within call `call_id`
    /// for the other side, reached through a listener on `toward`.
    fn call_sdp(
        &mut self,
        call_id: &str,
        from: Side,
        signalling: IpAddr,
        toward: IpAddr,
        msg: &mut Message,
    ) -> Result<(), RelayError> {
        if !has_sdp(msg) {
            return Ok(());
        }
        let Some(id) = self.live.get(call_id).and_then(|c| c.media) else {
            return Ok(());
        };
        let Some(relay) = self.relay.clone() else {
            return Ok(());
        };
        let ip = self.relay_ip(toward);
        let body = {
            let Ok(mut r) = relay.lock() else {
                return Err(RelayError::NoSession);
            };
            r.rewrite(id, from, signalling, msg.body(), ip)?
        };
        let _ = msg.set_body(Some("application/sdp"), Bytes::from(body));
        Ok(())
    }

    /// A response on its way to the requester (`toward` its listener),
    /// received from `src`: its SDP is rewritten, and a 2xx to the INVITE
    /// answers the call.
    pub(crate) fn call_response(&mut self, now: Now, src: Flow, toward: IpAddr, msg: &mut Message) {
        let call_id = msg.call_id().to_string();
        let Some(call) = self.live.get(&call_id) else {
            return;
        };
        let code = msg.status().unwrap_or(0);
        let from_caller = msg.from_tag() == Some(call.caller_tag.as_str());
        let sender = if from_caller {
            Side::Callee
        } else {
            Side::Caller
        };
        let initial = from_caller
            && msg.cseq().method == Method::Invite
            && msg.cseq().seq == call.invite_cseq;
        if (101..300).contains(&code) {
            if let Err(e) = self.call_sdp(&call_id, sender, src.remote.ip(), toward, msg) {
                // The answer cannot be anchored: it passes unchanged, the
                // call may lack audio but is not broken by us.
                warn!(call_id = %call_id, error = %e, "SDP in response not rewritten");
            }
        }
        if initial && (200..300).contains(&code) {
            let at = self.unix_ms(now);
            let Some(call) = self.live.get_mut(&call_id) else {
                return;
            };
            if call.answered_ms.is_none() {
                call.answered_ms = Some(at);
                call.answered_mono = Some(now.mono);
                call.callee_tag = msg.to_tag().map(str::to_string);
                call.callee_to = msg.header(HeaderName::To).map(str::to_string);
                call.callee_contact = first_contact(msg);
                call.callee_flow = Some(src);
                if let (Some(id), Some(r)) = (call.media, &self.relay) {
                    if let Ok(mut r) = r.lock() {
                        r.answered(id, now.mono);
                    }
                }
            }
        }
    }

    /// The final answer to the INVITE was a failure (sent upstream): the
    /// call ends without having started.
    pub(crate) fn call_failed(&mut self, now: Now, call_id: &str, code: u16, cancelled: bool) {
        let answered = self
            .live
            .get(call_id)
            .is_none_or(|c| c.answered_ms.is_some());
        if answered {
            return;
        }
        let cancelled = cancelled || self.live.get(call_id).is_some_and(|c| c.cancelled);
        let disposition = match code {
            _ if cancelled => Disposition::Cancelled,
            486 | 600 => Disposition::Busy,
            408 | 480 => Disposition::NoAnswer,
            _ => Disposition::Failed,
        };
        let status = (disposition == Disposition::Failed).then_some(code);
        self.call_end(now, call_id, disposition, status);
    }

    /// A CANCEL for the call's INVITE came in.
    pub(crate) fn call_cancelled(&mut self, call_id: &str) {
        if let Some(c) = self.live.get_mut(call_id) {
            c.cancelled = true;
        }
    }

    /// An in-dialog request (or the ACK of a 2xx) passing through from
    /// `src` towards `out`: SDP rewritten, CSeq noted, BYE ends the call.
    /// `Err`: the offer cannot be anchored (488 for the sender).
    pub(crate) fn call_request(
        &mut self,
        now: Now,
        src: Flow,
        toward: IpAddr,
        msg: &mut Message,
    ) -> Result<(), (u16, &'static str)> {
        let call_id = msg.call_id().to_string();
        let Some(call) = self.live.get_mut(&call_id) else {
            return Ok(());
        };
        let sender = if msg.from_tag() == Some(call.caller_tag.as_str()) {
            Side::Caller
        } else {
            Side::Callee
        };
        let method = msg.method().cloned();
        if method != Some(Method::Ack) {
            let seq = msg.cseq().seq;
            match sender {
                Side::Caller => call.caller_cseq = call.caller_cseq.max(seq),
                Side::Callee => call.callee_cseq = call.callee_cseq.max(seq),
            }
        }
        match method {
            Some(Method::Bye) => {
                self.call_end(now, &call_id, Disposition::Answered, None);
                Ok(())
            }
            Some(Method::Invite | Method::Update | Method::Ack | Method::Prack) => self
                .call_sdp(&call_id, sender, src.remote.ip(), toward, msg)
                .map_err(|e| {
                    warn!(call_id = %call_id, error = %e, "offer not anchored");
                    self.metrics.drop_reason("bad_sdp");
                    e.status()
                }),
            _ => Ok(()),
        }
    }

    /// The call is over: its media released and its record queued.
    pub(crate) fn call_end(
        &mut self,
        now: Now,
        call_id: &str,
        disposition: Disposition,
        status: Option<u16>,
    ) {
        let Some(call) = self.live.remove(call_id) else {
            return;
        };
        self.metrics.calls_active.set(self.live.len() as i64);
        self.timers.cancel(&TimerKey::App(call_id.to_string()));
        let report = match (call.media, &self.relay) {
            (Some(id), Some(r)) => r.lock().ok().and_then(|mut r| r.release(id)),
            _ => None,
        };
        if let Some(rep) = &report {
            for s in rep.streams.iter().filter(|s| s.packets > 0) {
                if let media::emodel::Score::Rated { mos, .. } = s.score {
                    self.metrics.mos.observe(mos);
                }
            }
        }
        let codec = report
            .as_ref()
            .and_then(|r| r.streams.iter().find_map(|s| s.codec.clone()));
        let ended_ms = self.unix_ms(now);
        let record = CallRecord {
            call_id: call_id.to_string(),
            from: call.from_uri,
            to: call.to_uri,
            caller_source: call.caller_flow.remote_string(),
            callee_target: call
                .callee_flow
                .map(|f| f.remote_string())
                .unwrap_or_default(),
            started_ms: call.started_ms,
            answered_ms: call.answered_ms,
            ended_ms,
            disposition,
            status,
            codec,
            report,
        };
        debug!(
            call_id = %record.call_id,
            from = %record.from,
            to = %record.to,
            disposition = disposition.as_str(),
            secs = record.answered_ms.map_or(0, |a| ended_ms.saturating_sub(a) / 1000),
            mos = record.report.as_ref().and_then(|r| r.worst_mos()).map(|m| format!("{m:.2}")).unwrap_or_else(|| "-".into()),
            "call ended"
        );
        self.call_out.push_back(record);
    }

    /// Records of ended calls, for the store.
    pub fn poll_call_record(&mut self) -> Option<CallRecord> {
        self.call_out.pop_front()
    }

    /// Quality events for the notification hook: (call-id, from, to, side,
    /// MOS).
    pub fn poll_quality(&mut self) -> Option<QualityEvent> {
        self.quality_out.pop_front()
    }

    /// Calls in progress with their running statistics.
    pub fn live_calls(&self) -> Vec<LiveCall> {
        let relay = self.relay.as_ref().and_then(|r| r.lock().ok());
        let mut out: Vec<LiveCall> = self
            .live
            .iter()
            .map(|(id, c)| {
                let report = match (&relay, c.media) {
                    (Some(r), Some(m)) => r.report(m),
                    _ => None,
                };
                LiveCall {
                    call_id: id.clone(),
                    from: c.from_uri.clone(),
                    to: c.to_uri.clone(),
                    started_ms: c.started_ms,
                    answered_ms: c.answered_ms,
                    codec: report
                        .as_ref()
                        .and_then(|r| r.streams.iter().find_map(|s| s.codec.clone())),
                    report,
                }
            })
            .collect();
        out.sort_by_key(|c| c.started_ms);
        out
    }

    /// Something the relay noticed.
    pub fn media_event(&mut self, now: Now, ev: MediaEvent) {
        let session = match &ev {
            MediaEvent::MediaTimeout(s) | MediaEvent::PlayerDone(s) => *s,
            MediaEvent::Quality { session, .. } => *session,
        };
        let Some(call_id) = self
            .live
            .iter()
            .find(|(_, c)| c.media == Some(session))
            .map(|(k, _)| k.clone())
        else {
            // The call ended meanwhile; make sure the session did too.
            if let Some(r) = &self.relay {
                if let Ok(mut r) = r.lock() {
                    r.release(session);
                }
            }
            return;
        };
        match ev {
            MediaEvent::MediaTimeout(_) => {
                warn!(call_id = %call_id, "no RTP for media.timeout_secs: hanging up both sides");
                self.metrics.media_timeouts.inc();
                self.hang_up(now, &call_id, Disposition::MediaTimeout);
            }
            MediaEvent::PlayerDone(_) => self.hang_up(now, &call_id, Disposition::Answered),
            MediaEvent::Quality { side, mos, .. } => {
                let Some(c) = self.live.get(&call_id) else {
                    return;
                };
                warn!(call_id = %call_id, from = %c.from_uri, to = %c.to_uri, direction = direction(side), mos = format!("{mos:.2}"), "call quality below media.mos_threshold");
                self.metrics.quality_events.inc();
                let q = QualityEvent {
                    call_id: call_id.clone(),
                    from: c.from_uri.clone(),
                    to: c.to_uri.clone(),
                    direction: direction(side),
                    mos,
                };
                if self.quality_out.len() < 1024 {
                    self.quality_out.push_back(q);
                }
            }
        }
    }

    /// Calls up longer than the toll-fraud limit end (checked every few
    /// seconds).
    pub(crate) fn calls_expire(&mut self, now: Now) {
        let max = Duration::from_secs(self.cfg.shield.calls.max_duration_secs);
        let old: Vec<String> = self
            .live
            .iter()
            .filter(|(_, c)| {
                c.answered_mono
                    .is_some_and(|a| now.mono.saturating_duration_since(a) > max)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for id in old {
            warn!(call_id = %id, "call longer than shield.calls.max_duration_secs: hanging up");
            self.hang_up(now, &id, Disposition::MaxDuration);
        }
    }

    /// BYE to both sides (to the caller only for app calls), then the
    /// record.
    fn hang_up(&mut self, now: Now, call_id: &str, why: Disposition) {
        let Some(c) = self.live.get(call_id) else {
            return;
        };
        let mut byes = Vec::new();
        // To the caller, on behalf of the callee (or of ourselves).
        if let (Some(contact), Some(to)) = (&c.caller_contact, &c.callee_to) {
            byes.push((
                contact.clone(),
                to.clone(),
                c.caller_from.clone(),
                c.callee_cseq.saturating_add(1).max(1),
                c.caller_flow,
            ));
        }
        // To the callee, on behalf of the caller.
        if let (Some(contact), Some(to), Some(flow), None) =
            (&c.callee_contact, &c.callee_to, c.callee_flow, c.app)
        {
            byes.push((
                contact.clone(),
                c.caller_from.clone(),
                to.clone(),
                c.caller_cseq.saturating_add(1),
                flow,
            ));
        }
        for (ruri, from, to, cseq, flow) in byes {
            let branch = format!("z9hG4bK{:016x}", self.random());
            let via = crate::proxy::our_via(flow, &branch);
            let built = RequestBuilder::new(Method::Bye, &ruri)
                .header(HeaderName::Via, &via)
                .header(HeaderName::MaxForwards, "70")
                .header(HeaderName::From, &from)
                .header(HeaderName::To, &to)
                .header(HeaderName::CallId, call_id)
                .header(HeaderName::CSeq, &format!("{cseq} BYE"))
                .build();
            match built {
                Ok(bytes) => {
                    let key = ClientKey::new(&branch, "BYE");
                    self.start_client(now, key, false, bytes, flow, None);
                }
                Err(e) => warn!(call_id, error = %e, "cannot build BYE"),
            }
        }
        self.calls.end(call_id);
        self.call_end(now, call_id, why, None);
    }

    /// Shutdown: answered calls are hung up (their media stops with us),
    /// ringing ones recorded as failed; every call gets its record.
    pub fn end_all_calls(&mut self, now: Now) {
        let ids: Vec<(String, bool)> = self
            .live
            .iter()
            .map(|(k, c)| (k.clone(), c.answered_ms.is_some()))
            .collect();
        for (id, answered) in ids {
            if answered {
                self.hang_up(now, &id, Disposition::Answered);
            } else {
                self.call_end(now, &id, Disposition::Failed, Some(503));
            }
        }
    }

    // ----- calls the PBX answers itself -------------------------------------

    /// The app a number reaches, if any.
    pub(crate) fn app_for(&self, user: &str) -> Option<(App, Option<usize>)> {
        if self.cfg.media.echo.iter().any(|n| n == user) {
            return Some((App::Echo, None));
        }
        self.cfg
            .media
            .announcements
            .iter()
            .position(|(n, _, _)| n == user)
            .map(|i| (App::Player, Some(i)))
    }

    /// An authenticated INVITE for an app number: answered at once with
    /// our SDP.
    pub(crate) fn app_answer(
        &mut self,
        now: Now,
        flow: Flow,
        key: sip::transaction::ServerKey,
        msg: Message,
        app: (App, Option<usize>),
        exempt: bool,
    ) {
        let call_id = msg.call_id().to_string();
        let Some(relay) = self.relay.clone().filter(|_| self.cfg.media.enabled) else {
            return self.reply(now, &key, &msg, 480, "Temporarily Unavailable", &[]);
        };
        if self.live.contains_key(&call_id) || self.live.len() >= MAX_CALLS {
            return self.reply(now, &key, &msg, 503, "Service Unavailable", &[]);
        }
        if !has_sdp(&msg) {
            // We answer offers; we do not make them.
            return self.reply(now, &key, &msg, 488, "Not Acceptable Here", &[]);
        }
        let mode = match app {
            (App::Echo, _) => Mode::Echo,
            (App::Player, Some(i)) => {
                let (_, audio, looped) = &self.cfg.media.announcements[i];
                Mode::Player {
                    audio: audio.clone(),
                    looped: *looped,
                }
            }
            (App::Player, None) => Mode::Echo,
        };
        let ip = self.relay_ip(flow.local.ip());
        let version = now.unix;
        let answer = {
            let Ok(mut r) = relay.lock() else {
                return self.reply(now, &key, &msg, 500, "Server Internal Error", &[]);
            };
            let id = match r.create(now.mono, flow.remote.ip(), exempt, mode) {
                Ok(id) => id,
                Err(e) => {
                    let (code, reason) = e.status();
                    drop(r);
                    return self.reply(now, &key, &msg, code, reason, &[]);
                }
            };
            match r.answer(id, flow.remote.ip(), msg.body(), ip, version) {
                Ok(Some(sdp)) => {
                    r.answered(id, now.mono);
                    Ok((id, sdp))
                }
                Ok(None) => {
                    r.release(id);
                    Err((488, "Not Acceptable Here"))
                }
                Err(e) => {
                    r.release(id);
                    Err(e.status())
                }
            }
        };
        let (id, sdp) = match answer {
            Ok(a) => a,
            Err((code, reason)) => return self.reply(now, &key, &msg, code, reason, &[]),
        };
        let tag = self.new_tag();
        let user = crate::route::ruri_user(&msg).unwrap_or_default();
        let host = match flow.local.ip() {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        let contact = format!(
            "<sip:{}@{host}:{};transport={}>",
            // App numbers are [A-Za-z0-9*#+-_.]; '#' is not a user character.
            user.replace('#', "%23"),
            flow.local.port(),
            flow.transport.param()
        );
        let built = Message::response_to(&msg, 200, "OK")
            .to_tag(&tag)
            .header(HeaderName::Contact, &contact)
            .header(HeaderName::Allow, crate::proxy::ALLOW)
            .body("application/sdp", Bytes::from(sdp))
            .build();
        let Ok(ok) = built else {
            if let Ok(mut r) = relay.lock() {
                r.release(id);
            }
            return self.reply(now, &key, &msg, 500, "Server Internal Error", &[]);
        };
        let at = self.unix_ms(now);
        let to_hdr = msg
            .header(HeaderName::To)
            .map(|t| format!("{t};tag={tag}"))
            .unwrap_or_default();
        let t1 = self.cfg.timers.t1;
        // We are the callee: answered at once, our tag and To.
        let mut call = Call::from_invite(&msg, flow, Some(id), at);
        call.app = Some(app.0);
        call.callee_tag = Some(tag);
        call.callee_to = Some(to_hdr);
        call.answered_ms = Some(at);
        call.answered_mono = Some(now.mono);
        call.ok = (!flow.transport.is_reliable()).then(|| (ok.clone(), t1, now.mono + 64 * t1));
        self.call_insert(call_id.clone(), call);
        self.metrics.calls_proxied.inc();
        self.send_on_server(now, &key, 200, ok, "sent");
        if !flow.transport.is_reliable() {
            self.timers.schedule(TimerKey::App(call_id), now.mono + t1);
        }
    }

    /// Retransmits an app call's 2xx until its ACK (RFC 3261 §13.3.1.4).
    pub(crate) fn app_retransmit(&mut self, now: Now, call_id: String) {
        let t2 = self.cfg.timers.t2;
        let Some(c) = self.live.get_mut(&call_id) else {
            return;
        };
        let flow = c.caller_flow;
        let Some((bytes, interval, until)) = c.ok.as_mut() else {
            return;
        };
        if now.mono >= *until {
            // No ACK: the call is not confirmed; hang up (§13.3.1.4).
            c.ok = None;
            self.hang_up(now, &call_id, Disposition::Failed);
            return;
        }
        let bytes = bytes.clone();
        *interval = (*interval * 2).min(t2);
        let next = now.mono + *interval;
        self.transmit(flow, bytes);
        self.timers.schedule(TimerKey::App(call_id), next);
    }

    /// A request within an app call (its R-URI is our Contact). `true`
    /// when it was one.
    pub(crate) fn app_in_dialog(
        &mut self,
        now: Now,
        key: &sip::transaction::ServerKey,
        msg: &Message,
    ) -> bool {
        let call_id = msg.call_id();
        let Some(c) = self.live.get_mut(call_id) else {
            return false;
        };
        if c.app.is_none() || msg.to_tag() != c.callee_tag.as_deref() {
            return false;
        }
        match msg.method() {
            Some(Method::Ack) => {
                c.ok = None;
                let id = call_id.to_string();
                self.timers.cancel(&TimerKey::App(id));
            }
            Some(Method::Bye) => {
                let id = call_id.to_string();
                self.reply(now, key, msg, 200, "OK", &[]);
                self.call_end(now, &id, Disposition::Answered, None);
            }
            Some(Method::Invite | Method::Update) if has_sdp(msg) => {
                // A re-offer (hold, codec change): our answer stays, the
                // caller's new address is learnt.
                let (id, flow) = (c.media, c.caller_flow);
                let answer = match (id, &self.relay) {
                    (Some(id), Some(r)) => r.lock().ok().and_then(|mut r| {
                        r.answer(
                            id,
                            flow.remote.ip(),
                            msg.body(),
                            self.cfg.media.address.unwrap_or(flow.local.ip()),
                            now.unix,
                        )
                        .ok()
                        .flatten()
                    }),
                    _ => None,
                };
                match answer {
                    Some(sdp) => {
                        let built = Message::response_to(msg, 200, "OK")
                            .body("application/sdp", Bytes::from(sdp))
                            .build();
                        match built {
                            Ok(b) => self.send_on_server(now, key, 200, b, "sent"),
                            Err(_) => self.reply(now, key, msg, 500, "Server Internal Error", &[]),
                        }
                    }
                    None => self.reply(now, key, msg, 488, "Not Acceptable Here", &[]),
                }
            }
            _ => self.reply(now, key, msg, 200, "OK", &[]),
        }
        true
    }
}

/// A call whose quality fell below the threshold.
#[derive(Debug, Clone)]
pub struct QualityEvent {
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub direction: &'static str,
    pub mos: f64,
}

/// The direction a side's packets travel.
pub fn direction(side: Side) -> &'static str {
    match side {
        Side::Caller => "caller_to_callee",
        Side::Callee => "callee_to_caller",
    }
}

fn has_sdp(msg: &Message) -> bool {
    !msg.body().is_empty()
        && msg.content_type().is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/sdp"))
        })
}

fn first_contact(msg: &Message) -> Option<String> {
    match msg.contacts().next()? {
        Ok(sip::header::Contact::Addr(na)) => Some(na.uri.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    //! A call through the sans-IO core with its media anchored: the SDP of
    //! every offer and answer (INVITE, 200, re-INVITE, UPDATE) names the
    //! relay, the record comes out at the BYE, the ports close.
    use super::*;
    use crate::core::{Core, CoreConfig};
    use crate::io::Transport;
    use media::{Ports, Relay, RelayConfig};
    use std::collections::BTreeSet;
    use std::net::SocketAddr;

    #[derive(Default)]
    struct CountingPorts(Arc<Mutex<BTreeSet<u16>>>);
    impl Ports for CountingPorts {
        fn open(&mut self, port: u16) -> bool {
            self.0.lock().unwrap().insert(port)
        }
        fn close(&mut self, port: u16) {
            self.0.lock().unwrap().remove(&port);
        }
    }

    const US: &str = "192.0.2.1:5060";
    const CALLER: &str = "198.51.100.7:5060";
    const CALLEE: &str = "203.0.113.9:5062";

    fn now() -> Now {
        Now {
            mono: Instant::now(),
            unix: 1_800_000_000,
        }
    }

    fn setup() -> (Core, Arc<Mutex<BTreeSet<u16>>>) {
        let mut cfg = CoreConfig::new(
            "example.test",
            vec![(Transport::Udp, US.parse().unwrap())],
            [7; 32],
        );
        // An anonymous caller may reach 2000 as "sales": no digest needed.
        cfg.shield.calls.public_aliases = vec![("sales".into(), "2000".into())];
        let user = store::UserRecord {
            username: "2000".into(),
            ha1_md5: "0".repeat(32),
            ha1_sha256: "0".repeat(64),
            display_name: None,
            created_at: 0,
        };
        let binding = store::Binding {
            aor: "2000".into(),
            contact: format!("sip:2000@{CALLEE}"),
            expires_at: 1_900_000_000,
            call_id: "reg".into(),
            cseq: 1,
            q: None,
            source: format!("udp:{CALLEE}"),
            local: format!("udp:{US}"),
            instance: None,
            updated_at: 0,
        };
        let mut core = Core::new(
            cfg,
            vec![user],
            vec![binding],
            now(),
            1,
            Arc::new(crate::Metrics::unregistered()),
        );
        let open = Arc::new(Mutex::new(BTreeSet::new()));
        let relay = Relay::new(
            RelayConfig::default(),
            Box::new(CountingPorts(open.clone())) as Box<dyn Ports + Send>,
            3,
        );
        core.set_relay(Arc::new(Mutex::new(relay)));
        (core, open)
    }

    fn flow(remote: &str) -> Flow {
        Flow {
            transport: Transport::Udp,
            local: US.parse().unwrap(),
            remote: remote.parse().unwrap(),
        }
    }

    fn sdp(ip: &str, port: u16, extra: &str) -> String {
        format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n{extra}")
    }

    fn with_body(head: &str, body: &str) -> Bytes {
        let ct = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        Bytes::from(format!(
            "{head}{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    /// Everything the core sent, as (destination, message).
    fn sent(core: &mut Core) -> Vec<(SocketAddr, Message)> {
        std::iter::from_fn(|| core.poll_transmit())
            .map(|t| {
                let m = sip::parse::parse_datagram(t.data, &sip::Limits::default()).unwrap();
                (t.flow.remote, m)
            })
            .collect()
    }

    fn find<'a>(
        out: &'a [(SocketAddr, Message)],
        to: &str,
        pred: impl Fn(&Message) -> bool,
    ) -> &'a Message {
        out.iter()
            .find(|(a, m)| a.to_string() == to && pred(m))
            .map(|(_, m)| m)
            .unwrap_or_else(|| {
                panic!(
                    "nothing for {to} in {:#?}",
                    out.iter()
                        .map(|(a, m)| (a, String::from_utf8_lossy(&m.to_bytes()).into_owned()))
                        .collect::<Vec<_>>()
                )
            })
    }

    /// The relay port an SDP names (after checking it names the relay).
    fn relay_port(m: &Message) -> u16 {
        let body = String::from_utf8_lossy(m.body()).into_owned();
        assert!(body.contains("c=IN IP4 192.0.2.1\r\n"), "{body}");
        let port = body
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|l| l.split(' ').next())
            .and_then(|p| p.parse().ok())
            .unwrap();
        assert!((10000..=20000).contains(&port), "{body}");
        port
    }

    #[test]
    fn offers_and_answers_in_invite_reinvite_and_update_name_the_relay() {
        let (mut core, open) = setup();
        let t = now();
        let invite = with_body(
            &format!("INVITE sip:sales@example.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKa1\r\nMax-Forwards: 70\r\nFrom: <sip:bob@remote.example>;tag=c1\r\nTo: <sip:sales@example.test>\r\nCall-ID: call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@{CALLER}>\r\n"),
            &sdp("198.51.100.7", 4000, ""),
        );
        core.handle_input(t, flow(CALLER), invite);
        let out = sent(&mut core);
        let fwd = find(&out, CALLEE, |m| m.method() == Some(&Method::Invite));
        let callee_port = relay_port(fwd);
        let rr: Vec<String> = fwd
            .header_values(HeaderName::RecordRoute)
            .map(str::to_string)
            .collect();
        let via: Vec<String> = fwd
            .header_values(HeaderName::Via)
            .map(str::to_string)
            .collect();
        assert_eq!(open.lock().unwrap().len(), 2, "a pair per leg");
        // The callee answers.
        let mut ok = String::from("SIP/2.0 200 OK\r\n");
        for v in &via {
            ok.push_str(&format!("Via: {v}\r\n"));
        }
        for r in &rr {
            ok.push_str(&format!("Record-Route: {r}\r\n"));
        }
        ok.push_str(&format!("From: <sip:bob@remote.example>;tag=c1\r\nTo: <sip:sales@example.test>;tag=e1\r\nCall-ID: call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:2000@{CALLEE}>\r\n"));
        core.handle_input(
            t,
            flow(CALLEE),
            with_body(&ok, &sdp("203.0.113.9", 5000, "")),
        );
        let out = sent(&mut core);
        let ok_up = find(&out, CALLER, |m| m.status() == Some(200));
        let caller_port = relay_port(ok_up);
        assert_ne!(caller_port, callee_port);
        let routes: Vec<String> = ok_up
            .header_values(HeaderName::RecordRoute)
            .map(str::to_string)
            .collect();
        let live = core.live_calls();
        assert_eq!(live.len(), 1);
        assert!(live[0].answered_ms.is_some());
        // In-dialog requests from the caller carry the route set.
        let indialog = |method: &str, seq: u32, branch: &str| {
            let mut h = format!("{method} sip:2000@{CALLEE} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\n");
            for r in routes.iter().rev() {
                h.push_str(&format!("Route: {r}\r\n"));
            }
            h.push_str(&format!("From: <sip:bob@remote.example>;tag=c1\r\nTo: <sip:sales@example.test>;tag=e1\r\nCall-ID: call-1\r\nCSeq: {seq} {method}\r\nContact: <sip:bob@{CALLER}>\r\n"));
            h
        };
        core.handle_input(t, flow(CALLER), with_body(&indialog("ACK", 1, "ack1"), ""));
        let out = sent(&mut core);
        find(&out, CALLEE, |m| m.method() == Some(&Method::Ack));
        // Hold: a re-INVITE with a new port and sendonly; the callee is
        // told the same relay port, the hold kept.
        core.handle_input(
            t,
            flow(CALLER),
            with_body(
                &indialog("INVITE", 2, "re1"),
                &sdp("198.51.100.7", 4100, "a=sendonly\r\n"),
            ),
        );
        let out = sent(&mut core);
        let re = find(&out, CALLEE, |m| m.method() == Some(&Method::Invite));
        assert_eq!(relay_port(re), callee_port);
        assert!(String::from_utf8_lossy(re.body()).contains("a=sendonly"));
        let via: Vec<String> = re
            .header_values(HeaderName::Via)
            .map(str::to_string)
            .collect();
        let mut ok2 = String::from("SIP/2.0 200 OK\r\n");
        for v in &via {
            ok2.push_str(&format!("Via: {v}\r\n"));
        }
        ok2.push_str("From: <sip:bob@remote.example>;tag=c1\r\nTo: <sip:sales@example.test>;tag=e1\r\nCall-ID: call-1\r\nCSeq: 2 INVITE\r\n");
        core.handle_input(
            t,
            flow(CALLEE),
            with_body(&ok2, &sdp("203.0.113.9", 5000, "a=recvonly\r\n")),
        );
        let out = sent(&mut core);
        assert_eq!(
            relay_port(find(&out, CALLER, |m| m.status() == Some(200))),
            caller_port
        );
        // An UPDATE from the caller is rewritten too.
        core.handle_input(
            t,
            flow(CALLER),
            with_body(
                &indialog("UPDATE", 3, "up1"),
                &sdp("198.51.100.7", 4200, ""),
            ),
        );
        let out = sent(&mut core);
        let up = find(&out, CALLEE, |m| m.method() == Some(&Method::Update));
        assert_eq!(relay_port(up), callee_port);
        // An unparsable re-offer is refused with 488 and goes nowhere.
        core.handle_input(
            t,
            flow(CALLER),
            with_body(&indialog("INVITE", 4, "re2"), "v=0\r\nm=audio x\r\n"),
        );
        let out = sent(&mut core);
        find(&out, CALLER, |m| m.status() == Some(488));
        assert!(!out
            .iter()
            .any(|(a, m)| a.to_string() == CALLEE && m.cseq().seq == 4));
        // BYE: the call ends, its record comes out, its ports close.
        core.handle_input(t, flow(CALLER), with_body(&indialog("BYE", 5, "bye1"), ""));
        let out = sent(&mut core);
        find(&out, CALLEE, |m| m.method() == Some(&Method::Bye));
        let rec = core.poll_call_record().expect("a record");
        assert_eq!(rec.disposition, Disposition::Answered);
        assert_eq!(rec.call_id, "call-1");
        assert_eq!(rec.caller_source, format!("udp:{CALLER}"));
        assert_eq!(rec.callee_target, format!("udp:{CALLEE}"));
        assert_eq!(rec.report.map(|r| r.streams.len()), Some(2));
        assert!(open.lock().unwrap().is_empty(), "ports closed");
        assert!(core.live_calls().is_empty());
    }

    #[test]
    fn a_busy_callee_gives_a_busy_record_and_frees_the_ports() {
        let (mut core, open) = setup();
        let t = now();
        let invite = with_body(
            &format!("INVITE sip:sales@example.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKb1\r\nMax-Forwards: 70\r\nFrom: <sip:bob@remote.example>;tag=c2\r\nTo: <sip:sales@example.test>\r\nCall-ID: call-2\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@{CALLER}>\r\n"),
            &sdp("198.51.100.7", 4000, ""),
        );
        core.handle_input(t, flow(CALLER), invite);
        let out = sent(&mut core);
        let fwd = find(&out, CALLEE, |m| m.method() == Some(&Method::Invite));
        let mut busy = String::from("SIP/2.0 486 Busy Here\r\n");
        for v in fwd.header_values(HeaderName::Via) {
            busy.push_str(&format!("Via: {v}\r\n"));
        }
        busy.push_str("From: <sip:bob@remote.example>;tag=c2\r\nTo: <sip:sales@example.test>;tag=e2\r\nCall-ID: call-2\r\nCSeq: 1 INVITE\r\n");
        core.handle_input(t, flow(CALLEE), with_body(&busy, ""));
        let out = sent(&mut core);
        find(&out, CALLER, |m| m.status() == Some(486));
        let rec = core.poll_call_record().expect("a record");
        assert_eq!(rec.disposition, Disposition::Busy);
        assert!(open.lock().unwrap().is_empty());
    }
}
