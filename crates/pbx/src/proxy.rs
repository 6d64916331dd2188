//! Stateful proxy (RFC 3261 §16): authenticate local callers, fork to every
//! contact of the target, pick the best final response, cancel the losers,
//! relay in-dialog requests along the route set we record-routed.

use crate::core::{Core, TimerKey, TIMER_C};
use crate::io::{Flow, Now};
use crate::registrar::Auth;
use crate::route;
use bytes::Bytes;
use sip::header::HeaderName;
use sip::message::{Message, RequestBuilder};
use sip::method::Method;
use sip::transaction::{ClientKey, ResponseAction, ServerKey};
use tracing::{debug, warn};

pub(crate) const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK, SUBSCRIBE, NOTIFY, REFER, MESSAGE";

pub(crate) struct Branch {
    pub key: ClientKey,
    /// The request as forwarded on this branch (for its CANCEL and ACK).
    pub request: Message,
    pub flow: Flow,
    pub provisional: bool,
    pub final_code: Option<u16>,
    pub cancel_wanted: bool,
    pub cancel_sent: bool,
    pub gone: bool,
}

/// The response context of one forwarded request (§16.7).
pub(crate) struct ProxyCtx {
    pub server: ServerKey,
    pub invite: bool,
    pub branches: Vec<Branch>,
    /// Best final response so far: its code and the response (None when we
    /// synthesised it, e.g. a branch timed out).
    pub best: Option<(u16, Option<Message>)>,
    pub final_sent: bool,
    pub cancelled: bool,
    pub server_gone: bool,
    /// The Call-ID of a call counted against its caller's limits, ended
    /// here when the INVITE fails.
    pub limited_call: Option<String>,
    /// The Call-ID of an initial INVITE (a call with a record).
    pub call: Option<String>,
}

/// RFC 3261 §16.7 step 6: 6xx first, then the lowest class; 503 is never
/// passed upstream as such.
fn better(new: u16, old: u16) -> bool {
    let rank = |c: u16| -> (u16, u16) {
        match c / 100 {
            6 => (0, c),
            2 => (1, c),
            _ => (2 + c / 100, c),
        }
    };
    rank(new) < rank(old)
}

impl Core {
    /// An out-of-dialog request for a local user: authenticate the caller,
    /// then fork to the user's contacts.
    pub(crate) fn proxy_to_user(&mut self, now: Now, flow: Flow, key: ServerKey, mut msg: Message) {
        // A public alias may be called without authentication, from a
        // caller that does not claim to be one of ours (public SIP URI
        // calling); it reaches that one extension and nothing else.
        let alias = route::ruri_user(&msg).and_then(|u| self.public_alias(&u));
        let anonymous = alias.is_some()
            && msg.header(HeaderName::ProxyAuthorization).is_none()
            && !self.caller_claims_local(&msg);
        let caller = if anonymous {
            None
        } else {
            match self.authenticate(now, flow.remote.ip(), &msg, true) {
                Auth::Ok(u) => Some(u),
                // A reused nonce count on an INVITE is never a retransmission
                // (the INVITE transaction absorbs those): challenge again.
                refused => {
                    let h = self.challenge_headers(now, true, refused.stale());
                    return self.reply_stateless(
                        &key,
                        &msg,
                        407,
                        "Proxy Authentication Required",
                        &h,
                    );
                }
            }
        };
        if let Some(caller) = &caller {
            // The identity shown to the callee must be the one that
            // authenticated.
            let from_ok = msg.from().is_some_and(|f| {
                f.uri.user_decoded().as_deref() == Some(caller.as_str())
                    && match &f.uri {
                        sip::uri::Uri::Sip(u) => route::is_our_host(&self.cfg, &u.host, u.port),
                        _ => false,
                    }
            });
            if !from_ok {
                self.metrics.drop_reason("from_mismatch");
                return self.reply(now, &key, &msg, 403, "Forbidden", &[]);
            }
        }
        // Numbers the PBX answers itself (echo test, announcements), for
        // our own users only.
        if caller.is_some() && msg.method() == Some(&Method::Invite) && msg.to_tag().is_none() {
            if let Some(app) = route::ruri_user(&msg).and_then(|u| self.app_for(&u)) {
                let exempt = self.shield.is_trusted(flow.remote.ip());
                strip_our_credentials(&mut msg, &self.cfg.domain);
                return self.app_answer(now, flow, key, msg, app, exempt);
            }
        }
        let Some(target) = alias.or_else(|| route::ruri_user(&msg)) else {
            return self.reply(now, &key, &msg, 404, "Not Found", &[]);
        };
        if !self.users.contains_key(&target) {
            return self.reply(now, &key, &msg, 404, "Not Found", &[]);
        }
        let targets: Vec<(Option<String>, Flow)> = self
            .location
            .lookup(&target, now.unix)
            .into_iter()
            .filter_map(|b| self.binding_flow(b).map(|f| (Some(b.contact.clone()), f)))
            .collect();
        if targets.is_empty() {
            return self.reply(now, &key, &msg, 480, "Temporarily Unavailable", &[]);
        }
        let invite = msg.method() == Some(&Method::Invite);
        // Toll-fraud brake: calls per extension at once and per minute
        // (trusted sources, such as a load generator, are exempt).
        let mut limited_call = None;
        let limited = invite && self.shield.enabled() && !self.shield.is_trusted(flow.remote.ip());
        if let (true, Some(caller)) = (limited, &caller) {
            let call_id = msg.call_id().to_string();
            let limits = &self.cfg.shield.calls;
            if let Err(r) = self.calls.start(limits, caller, &call_id, now.unix) {
                let why = match r {
                    crate::calls::Refused::Concurrent(n) => format!("{n} calls in progress"),
                    crate::calls::Refused::PerMinute(n) => format!("{n} calls within 60 s"),
                };
                warn!(user = %caller, source = %flow.remote, limit = %why, "call refused: per-extension call limit (shield.calls)");
                self.metrics.drop_reason("call_limit");
                return self.reply(now, &key, &msg, 403, "Call Limit Reached", &[]);
            }
            limited_call = Some(call_id);
        }
        // Our own credentials are consumed here, never passed downstream.
        strip_our_credentials(&mut msg, &self.cfg.domain);
        let rr = matches!(
            msg.method(),
            Some(Method::Invite | Method::Subscribe | Method::Refer)
        );
        let new_call = invite && msg.to_tag().is_none();
        if new_call {
            // Media anchored toward the callee's listener (every target is
            // reached from the same one per address family).
            let toward = targets[0].1.local.ip();
            let exempt = self.shield.is_trusted(flow.remote.ip());
            if let Err((code, reason)) = self.call_begin(now, flow, toward, exempt, &mut msg) {
                if let Some(id) = &limited_call {
                    self.calls.end(id);
                }
                self.call_refused(now, flow, &msg, code);
                return self.reply(now, &key, &msg, code, reason, &[]);
            }
        }
        if invite {
            self.metrics.calls_proxied.inc();
        }
        let call_id = msg.call_id().to_string();
        let ctx = self.forward(now, flow, key, msg, targets, rr);
        if new_call {
            match ctx.and_then(|id| self.contexts.get_mut(&id)) {
                Some(c) if !c.final_sent => c.call = Some(call_id),
                Some(_) => {}
                None => self.call_failed(now, &call_id, 500, false),
            }
        }
        if let Some(call_id) = limited_call {
            // The call is counted until the context ends it; one that
            // ended (or never started) already is ended here.
            match ctx.and_then(|id| self.contexts.get_mut(&id)) {
                Some(c) if !c.final_sent => c.limited_call = Some(call_id),
                _ => self.calls.end(&call_id),
            }
        }
    }

    /// The extension a public alias names.
    fn public_alias(&self, user: &str) -> Option<String> {
        self.cfg
            .shield
            .calls
            .public_aliases
            .iter()
            .find(|(a, _)| a == user)
            .map(|(_, ext)| ext.clone())
    }

    /// Whether the From names a user of our domain (who must authenticate).
    fn caller_claims_local(&self, msg: &Message) -> bool {
        msg.from().is_none_or(|f| match &f.uri {
            sip::uri::Uri::Sip(u) => route::is_our_host(&self.cfg, &u.host, u.port),
            _ => false,
        })
    }

    fn binding_flow(&self, b: &crate::location::Binding) -> Option<Flow> {
        if b.use_source {
            return Some(b.source);
        }
        self.uri_flow(&b.contact)
    }

    /// The flow towards a SIP URI with an IP-literal host (no DNS yet).
    fn uri_flow(&self, uri_text: &str) -> Option<Flow> {
        let uri = sip::uri::Uri::parse(uri_text).ok()?;
        let (transport, remote) = route::resolve(&uri)?;
        let local = route::local_for(&self.cfg, transport, remote)?;
        Some(Flow {
            transport,
            local,
            remote,
        })
    }

    /// An in-dialog request we record-routed: relay it to the next hop.
    pub(crate) fn proxy_in_dialog(
        &mut self,
        now: Now,
        flow: Flow,
        key: ServerKey,
        mut msg: Message,
    ) {
        let Some(out) = self.next_hop(&msg, now) else {
            return self.reply(now, &key, &msg, 404, "Not Found", &[]);
        };
        if let Err((code, reason)) = self.call_request(now, flow, out.local.ip(), &mut msg) {
            return self.reply(now, &key, &msg, code, reason, &[]);
        }
        if msg.method() == Some(&Method::Bye) {
            self.calls.end(msg.call_id());
        }
        self.forward(now, flow, key, msg, vec![(None, out)], false);
    }

    /// The next hop of a routed request: the first Route, else the
    /// Request-URI; a registered contact is reached through its flow.
    fn next_hop(&self, msg: &Message, now: Now) -> Option<Flow> {
        let first_route = msg
            .header_values(HeaderName::Route)
            .next()
            .map(str::to_string);
        let uri_text = match &first_route {
            Some(r) => sip::header::NameAddr::parse(r).ok()?.uri.to_string(),
            None => msg.request_uri_str()?.to_string(),
        };
        if let Some(b) = self.location.find_contact(&uri_text, now.unix) {
            if let Some(f) = self.binding_flow(b) {
                return Some(f);
            }
        }
        self.uri_flow(&uri_text)
    }

    /// ACK for a 2xx: no transaction, relayed along the route set.
    pub(crate) fn proxy_ack(&mut self, now: Now, flow: Flow, mut msg: Message) {
        match route::consume_own_routes(&self.cfg, &mut msg) {
            Ok(route::OwnRoutes::Dialog) => {}
            _ => {
                self.metrics.drop_reason("stray_ack");
                return;
            }
        }
        let Some(out) = self.next_hop(&msg, now) else {
            self.metrics.drop_reason("ack_unroutable");
            return;
        };
        let mf = msg.max_forwards().unwrap_or(70);
        if mf == 0 {
            return;
        }
        // An answer in the ACK (delayed offer) is anchored like any other;
        // an ACK cannot be refused, so one that cannot be passes as is.
        let _ = self.call_request(now, flow, out.local.ip(), &mut msg);
        let branch = route::new_branch(&msg, self.random());
        if msg
            .set_header(HeaderName::MaxForwards, &(mf - 1).to_string())
            .is_err()
            || msg
                .push_header_front(HeaderName::Via, &our_via(out, &branch))
                .is_err()
        {
            self.metrics.drop_reason("edit_failed");
            return;
        }
        self.transmit(out, msg.to_bytes());
    }

    fn forward(
        &mut self,
        now: Now,
        inbound: Flow,
        key: ServerKey,
        mut msg: Message,
        targets: Vec<(Option<String>, Flow)>,
        record_route: bool,
    ) -> Option<u64> {
        let invite = msg.method() == Some(&Method::Invite);
        let method = msg
            .method()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        if invite {
            self.reply(now, &key, &msg, 100, "Trying", &[]);
        }
        let mf = msg.max_forwards().unwrap_or(70);
        mark_received(&mut msg, inbound);
        let call_id = msg.call_id().to_string();
        let mut ctx = ProxyCtx {
            server: key.clone(),
            invite,
            branches: Vec::new(),
            best: None,
            final_sent: false,
            cancelled: false,
            server_gone: false,
            limited_call: None,
            call: None,
        };
        let mut clients = Vec::new();
        for (ruri, out) in targets {
            let branch = route::new_branch(&msg, self.random());
            let Some(m) = self.branch_request(
                &msg,
                ruri.as_deref(),
                mf,
                record_route,
                &call_id,
                inbound,
                out,
                &branch,
            ) else {
                self.metrics.drop_reason("edit_failed");
                continue;
            };
            let bytes = m.to_bytes();
            let ckey = ClientKey::new(&branch, &method);
            ctx.branches.push(Branch {
                key: ckey.clone(),
                request: m,
                flow: out,
                provisional: false,
                final_code: None,
                cancel_wanted: false,
                cancel_sent: false,
                gone: false,
            });
            clients.push((ckey, bytes, out));
        }
        if ctx.branches.is_empty() {
            self.reply(now, &key, &msg, 500, "Server Internal Error", &[]);
            return None;
        }
        let id = self.new_context(ctx);
        if let Some(e) = self.servers.get_mut(&key) {
            e.ctx = Some(id);
            if invite {
                e.request = Some(msg);
            }
        }
        if invite {
            self.timers
                .schedule(TimerKey::TimerC(id), now.mono + TIMER_C);
        }
        for (ckey, bytes, out) in clients {
            self.start_client(now, ckey, invite, bytes, out, Some(id));
        }
        Some(id)
    }

    // ----- responses from downstream ----------------------------------------

    pub(crate) fn on_response(&mut self, now: Now, flow: Flow, msg: Message) {
        let Some(code) = msg.status() else {
            return;
        };
        let Some(via) = msg.top_via() else {
            self.metrics.drop_reason("response_no_via");
            return;
        };
        if !route::is_our_host(&self.cfg, &via.host, via.port) {
            // RFC 3261 §18.1.2: a response whose top Via is not ours is
            // discarded (RFC 4475 bcast: never amplify).
            self.metrics.drop_reason("response_not_ours");
            return;
        }
        let cseq = msg.cseq().clone();
        let ckey = ClientKey::new(via.branch().unwrap_or(""), cseq.method.as_str());
        let two_to_invite = cseq.method == Method::Invite && (200..300).contains(&code);
        let Some(e) = self.clients.get_mut(&ckey) else {
            if let Some((r, f)) = self.client_linger.get(&ckey) {
                // After the final: absorbed, the ACK resent for a
                // retransmitted non-2xx, a 2xx relayed by its Via.
                let (action, resend) = r.on_response(code);
                let f = *f;
                if let Some(ack) = resend {
                    self.transmit(f, ack);
                }
                if action == ResponseAction::Deliver && two_to_invite {
                    self.forward_stateless_response(now, flow, msg);
                }
            } else if two_to_invite {
                self.forward_stateless_response(now, flow, msg);
            } else {
                self.metrics.drop_reason("stray_response");
            }
            return;
        };
        let action = e.tx.on_response(code, now.mono);
        let ctx = e.ctx;
        match action {
            ResponseAction::Absorb => {
                self.drive_client(now, &ckey);
                return;
            }
            ResponseAction::DeliverAndAck => {
                if let Some(ack) = ctx.and_then(|c| self.ack_for(c, &ckey, &msg)) {
                    if let Some(e) = self.clients.get_mut(&ckey) {
                        let _ = e.tx.set_ack(ack);
                    }
                }
            }
            ResponseAction::Deliver => {}
        }
        // The context learns of the response before the transaction may be
        // reduced to a remnant, which can end the context.
        if let Some(c) = ctx {
            self.branch_response(now, c, &ckey, flow, msg, code);
        }
        self.drive_client(now, &ckey);
    }

    /// The request as sent on one branch (§16.6 steps 1-8).
    #[allow(clippy::too_many_arguments)]
    fn branch_request(
        &self,
        msg: &Message,
        ruri: Option<&str>,
        mf: u32,
        record_route: bool,
        call_id: &str,
        inbound: Flow,
        out: Flow,
        branch: &str,
    ) -> Option<Message> {
        let mut m = msg.clone();
        if let Some(r) = ruri {
            m.set_request_uri(r).ok()?;
        }
        m.set_header(HeaderName::MaxForwards, &mf.saturating_sub(1).to_string())
            .ok()?;
        if record_route {
            let inb = route::record_route(&self.cfg, call_id, inbound.transport, inbound.local);
            let outb = route::record_route(&self.cfg, call_id, out.transport, out.local);
            // Two entries when the call crosses interfaces or transports.
            if inb != outb {
                m.push_header_front(HeaderName::RecordRoute, &inb).ok()?;
            }
            m.push_header_front(HeaderName::RecordRoute, &outb).ok()?;
        }
        m.push_header_front(HeaderName::Via, &our_via(out, branch))
            .ok()?;
        Some(m)
    }

    fn forward_stateless_response(&mut self, now: Now, src: Flow, mut msg: Message) {
        let _ = msg.remove_first(HeaderName::Via);
        let Some(via) = msg.top_via() else {
            return;
        };
        let Some((transport, remote)) = route::via_destination(&via) else {
            return;
        };
        let Some(local) = route::local_for(&self.cfg, transport, remote) else {
            return;
        };
        let flow = Flow {
            transport,
            local,
            remote,
        };
        self.call_response(now, src, local.ip(), &mut msg);
        self.metrics
            .response(msg.status().unwrap_or(0), "forwarded");
        self.transmit(flow, msg.to_bytes());
    }

    fn branch_index(&self, ctx: u64, key: &ClientKey) -> Option<usize> {
        self.contexts
            .get(&ctx)?
            .branches
            .iter()
            .position(|b| &b.key == key)
    }

    fn branch_response(
        &mut self,
        now: Now,
        ctx_id: u64,
        key: &ClientKey,
        src: Flow,
        mut msg: Message,
        code: u16,
    ) {
        let Some(i) = self.branch_index(ctx_id, key) else {
            return;
        };
        if code < 200 {
            let (send_cancel, server, forward) = {
                let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
                    return;
                };
                let b = &mut ctx.branches[i];
                b.provisional = true;
                let send_cancel = b.cancel_wanted && !b.cancel_sent;
                (
                    send_cancel,
                    ctx.server.clone(),
                    code > 100 && !ctx.final_sent,
                )
            };
            if send_cancel {
                self.send_cancel(now, ctx_id, i);
            }
            if code > 100 {
                // Timer C restarts on every provisional (§16.7 step 2).
                self.timers
                    .schedule(TimerKey::TimerC(ctx_id), now.mono + TIMER_C);
            }
            if forward {
                let _ = msg.remove_first(HeaderName::Via);
                let toward = self.server_local_ip(&server, src);
                self.call_response(now, src, toward, &mut msg);
                let bytes = msg.to_bytes();
                self.send_on_server(now, &server, code, bytes, "forwarded");
            }
            return;
        }
        let server = {
            let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
                return;
            };
            ctx.branches[i].final_code = Some(code);
            ctx.server.clone()
        };
        if (200..300).contains(&code) {
            let _ = msg.remove_first(HeaderName::Via);
            let toward = self.server_local_ip(&server, src);
            self.call_response(now, src, toward, &mut msg);
            let bytes = msg.to_bytes();
            self.send_on_server(now, &server, code, bytes, "forwarded");
            let invite = match self.contexts.get_mut(&ctx_id) {
                Some(ctx) => {
                    ctx.final_sent = true;
                    ctx.invite
                }
                None => false,
            };
            if invite {
                self.cancel_pending(now, ctx_id);
            }
            return;
        }
        let six = code >= 600;
        if let Some(ctx) = self.contexts.get_mut(&ctx_id) {
            if !ctx.final_sent && ctx.best.as_ref().is_none_or(|(c, _)| better(code, *c)) {
                ctx.best = Some((code, Some(msg)));
            }
        }
        if six {
            self.cancel_pending(now, ctx_id);
        }
        self.maybe_finish(now, ctx_id);
    }

    /// A branch ended without a response (timeout, transport error).
    pub(crate) fn branch_failed(&mut self, now: Now, ctx_id: u64, key: &ClientKey, code: u16) {
        let Some(i) = self.branch_index(ctx_id, key) else {
            return;
        };
        if let Some(ctx) = self.contexts.get_mut(&ctx_id) {
            if ctx.branches[i].final_code.is_some() {
                return;
            }
            ctx.branches[i].final_code = Some(code);
            if !ctx.final_sent && ctx.best.as_ref().is_none_or(|(c, _)| better(code, *c)) {
                ctx.best = Some((code, None));
            }
        }
        self.maybe_finish(now, ctx_id);
    }

    /// Sends the best response upstream once every branch has answered.
    fn maybe_finish(&mut self, now: Now, ctx_id: u64) {
        let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
            return;
        };
        if ctx.final_sent || ctx.branches.iter().any(|b| b.final_code.is_none()) {
            return;
        }
        ctx.final_sent = true;
        let server = ctx.server.clone();
        let cancelled = ctx.cancelled;
        let best = ctx.best.take();
        // Every branch failed: the call never started.
        if let Some(id) = ctx.limited_call.take() {
            self.calls.end(&id);
        }
        let call = ctx.call.take();
        self.timers.cancel(&TimerKey::TimerC(ctx_id));
        let sent = match best {
            Some((code, Some(mut resp))) if code != 503 => {
                let _ = resp.remove_first(HeaderName::Via);
                let bytes = resp.to_bytes();
                self.send_on_server(now, &server, code, bytes, "forwarded");
                code
            }
            other => {
                let (code, reason) = match other.map(|(c, _)| c) {
                    _ if cancelled => (487, "Request Terminated"),
                    Some(503) => (500, "Server Internal Error"),
                    Some(408) | None => (408, "Request Timeout"),
                    Some(_) => (500, "Server Internal Error"),
                };
                let req = self.servers.get(&server).and_then(|e| e.request.clone());
                if let Some(req) = req {
                    self.reply(now, &server, &req, code, reason, &[]);
                }
                code
            }
        };
        if let Some(call_id) = call {
            self.call_failed(now, &call_id, sent, cancelled);
        }
    }

    fn cancel_pending(&mut self, now: Now, ctx_id: u64) {
        let idx: Vec<usize> = match self.contexts.get_mut(&ctx_id) {
            Some(ctx) => ctx
                .branches
                .iter_mut()
                .enumerate()
                .filter(|(_, b)| b.final_code.is_none() && !b.cancel_sent)
                .map(|(i, b)| {
                    b.cancel_wanted = true;
                    i
                })
                .collect(),
            None => return,
        };
        for i in idx {
            let can = self
                .contexts
                .get(&ctx_id)
                .map(|c| &c.branches[i])
                .and_then(|b| self.clients.get(&b.key))
                .is_some_and(|e| e.tx.can_cancel());
            if can {
                self.send_cancel(now, ctx_id, i);
            }
        }
    }

    /// CANCEL for one branch (§9.1): same Request-URI, Call-ID, From, To,
    /// CSeq number and top Via as the request it cancels.
    fn send_cancel(&mut self, now: Now, ctx_id: u64, i: usize) {
        let Some(b) = self
            .contexts
            .get_mut(&ctx_id)
            .and_then(|c| c.branches.get_mut(i))
        else {
            return;
        };
        b.cancel_sent = true;
        let Some(bytes) = build_like(&b.request, Method::Cancel, None) else {
            return;
        };
        let key = ClientKey::new(&b.key.branch, "CANCEL");
        let flow = b.flow;
        self.start_client(now, key, false, bytes, flow, None);
    }

    /// The ACK for a non-2xx final response on a branch (§17.1.1.3).
    fn ack_for(&self, ctx_id: u64, key: &ClientKey, resp: &Message) -> Option<Bytes> {
        let i = self.branch_index(ctx_id, key)?;
        let b = &self.contexts.get(&ctx_id)?.branches[i];
        let to = resp.header(HeaderName::To)?.to_string();
        build_like(&b.request, Method::Ack, Some(&to))
    }

    pub(crate) fn on_cancel(&mut self, now: Now, key: &ServerKey, msg: &Message) {
        let target = key.cancel_target();
        let ctx = target.as_ref().and_then(|t| match self.servers.get(t) {
            Some(e) => Some(e.ctx),
            // Answered already: the CANCEL gets its 200 and changes nothing.
            None => self.server_linger.contains(t).then_some(None),
        });
        match ctx {
            None => self.reply(now, key, msg, 481, "Call/Transaction Does Not Exist", &[]),
            Some(c) => {
                self.reply(now, key, msg, 200, "OK", &[]);
                self.call_cancelled(msg.call_id());
                if let Some(id) = c {
                    if let Some(ctx) = self.contexts.get_mut(&id) {
                        ctx.cancelled = true;
                    }
                    self.cancel_pending(now, id);
                    // Branches that never rang cannot be cancelled (§9.1):
                    // they count as terminated for the caller.
                    let silent: Vec<ClientKey> = self
                        .contexts
                        .get(&id)
                        .map(|ctx| {
                            ctx.branches
                                .iter()
                                .filter(|b| b.final_code.is_none() && !b.provisional)
                                .map(|b| b.key.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    for k in silent {
                        self.branch_failed(now, id, &k, 487);
                    }
                }
            }
        }
    }

    pub(crate) fn timer_c(&mut self, now: Now, id: u64) {
        debug!(ctx = id, "timer C fired");
        let keys: Vec<(ClientKey, bool)> = match self.contexts.get(&id) {
            Some(c) => c
                .branches
                .iter()
                .filter(|b| b.final_code.is_none())
                .map(|b| (b.key.clone(), b.provisional))
                .collect(),
            None => return,
        };
        self.cancel_pending(now, id);
        for (k, provisional) in keys {
            if !provisional {
                self.branch_failed(now, id, &k, 408);
            }
        }
    }

    pub(crate) fn context_branch_gone(&mut self, ctx_id: u64, key: &ClientKey) {
        let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
            return;
        };
        if let Some(b) = ctx.branches.iter_mut().find(|b| &b.key == key) {
            b.gone = true;
        }
        if ctx.server_gone && ctx.branches.iter().all(|b| b.gone) {
            self.contexts.remove(&ctx_id);
            self.timers.cancel(&TimerKey::TimerC(ctx_id));
        }
    }

    pub(crate) fn context_server_gone(&mut self, ctx_id: u64) {
        let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
            return;
        };
        ctx.server_gone = true;
        if ctx.branches.iter().all(|b| b.gone) {
            self.contexts.remove(&ctx_id);
            self.timers.cancel(&TimerKey::TimerC(ctx_id));
        }
    }
}

impl Core {
    /// The local address of the listener a server transaction's requester
    /// reached (where responses go back from).
    fn server_local_ip(&self, key: &ServerKey, fallback: Flow) -> std::net::IpAddr {
        self.servers
            .get(key)
            .map_or(fallback.local.ip(), |e| e.flow.local.ip())
    }
}

pub(crate) fn our_via(out: Flow, branch: &str) -> String {
    let host = match out.local.ip() {
        std::net::IpAddr::V4(a) => a.to_string(),
        std::net::IpAddr::V6(a) => format!("[{a}]"),
    };
    format!(
        "SIP/2.0/{} {}:{};branch={};rport",
        out.transport.via_token(),
        host,
        out.local.port(),
        branch
    )
}

/// RFC 3581 / §18.2.1: record where the request really came from in its top
/// Via, so responses relayed statelessly find the way back.
fn mark_received(msg: &mut Message, inbound: Flow) {
    let Some(top) = msg
        .header_values(HeaderName::Via)
        .next()
        .map(str::to_string)
    else {
        return;
    };
    let Ok(via) = sip::header::Via::parse(&top) else {
        return;
    };
    let ip = inbound.remote.ip().to_string();
    let mut v = top.trim().to_string();
    if via.rport() == Some(None) {
        v = replace_valueless_param(&v, "rport", &inbound.remote.port().to_string());
    }
    let same_host = route::host_str(&via.host).trim_matches(['[', ']']) == ip;
    if !same_host && via.received().is_none() {
        v.push_str(";received=");
        v.push_str(&ip);
    }
    if v != top.trim() {
        let mut edited = msg.clone();
        if edited.remove_first(HeaderName::Via).is_ok()
            && edited.push_header_front(HeaderName::Via, &v).is_ok()
        {
            *msg = edited;
        }
    }
}

fn replace_valueless_param(v: &str, name: &str, value: &str) -> String {
    let mut out = String::with_capacity(v.len() + value.len() + 1);
    for (i, part) in v.split(';').enumerate() {
        if i > 0 {
            out.push(';');
        }
        if i > 0 && part.trim().eq_ignore_ascii_case(name) {
            out.push_str(name);
            out.push('=');
            out.push_str(value);
        } else {
            out.push_str(part);
        }
    }
    out
}

/// CANCEL or ACK built from the request it refers to.
fn build_like(req: &Message, method: Method, to: Option<&str>) -> Option<Bytes> {
    let cseq = req.cseq();
    let mut b = RequestBuilder::new(method.clone(), req.request_uri_str()?);
    b = b.header(HeaderName::Via, req.header_values(HeaderName::Via).next()?);
    for r in req.header_values(HeaderName::Route) {
        b = b.header(HeaderName::Route, r);
    }
    b = b
        .header(HeaderName::MaxForwards, "70")
        .header(HeaderName::From, req.header(HeaderName::From)?)
        .header(HeaderName::To, to.or(req.header(HeaderName::To))?)
        .header(HeaderName::CallId, req.call_id())
        .header(
            HeaderName::CSeq,
            &format!("{} {}", cseq.seq, method.as_str()),
        );
    b.build().ok()
}

/// Removes the Proxy-Authorization lines addressed to our realm.
fn strip_our_credentials(msg: &mut Message, realm: &str) {
    let lines: Vec<String> = msg
        .header_values(HeaderName::ProxyAuthorization)
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        return;
    }
    let _ = msg.remove_all(HeaderName::ProxyAuthorization);
    for l in lines {
        let ours = sip::auth::Credentials::parse(&l).is_ok_and(|c| c.realm == realm);
        if !ours {
            let _ = msg.append_header(HeaderName::ProxyAuthorization, &l);
        }
    }
}
