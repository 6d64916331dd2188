//! Registrar (RFC 3261 §10.3) and the digest authentication both the
//! registrar and the proxy use. Unauthenticated requests are challenged
//! before anything about the target is looked at, so a known and an unknown
//! user get the same answer.

use crate::core::{Core, PendingRegister, StoreBatch};
use crate::io::{Flow, Now};
use crate::location::{self, Binding};
use crate::route;
use sip::auth::{AuthOutcome, Credentials};
use sip::header::{Contact, HeaderName};
use sip::message::Message;
use sip::transaction::ServerKey;
use store::RegOp;

pub(crate) enum Auth {
    Ok(String),
    Challenge {
        stale: bool,
    },
    /// Valid credentials whose nonce count was already used: a replay, or a
    /// retransmission of a request we answered and forgot (see `register`).
    Replayed(String),
}

impl Auth {
    /// For a refusal: whether the challenge says `stale=true`.
    pub(crate) fn stale(&self) -> bool {
        matches!(self, Auth::Challenge { stale: true })
    }
}

impl Core {
    /// Checks every credential line for our realm (RFC 3261 §22.3: a request
    /// may carry several); unknown schemes are ignored (RFC 4475 regaut01).
    /// Outcomes go to the shield: a wrong credential counts against the
    /// source and the account, a success marks the source as known; an
    /// account the shield holds back from `ip` is answered like a wrong
    /// password (after the same digest work, so no timing tells).
    pub(crate) fn authenticate(
        &mut self,
        now: Now,
        ip: std::net::IpAddr,
        msg: &Message,
        proxy: bool,
    ) -> Auth {
        let name = if proxy {
            HeaderName::ProxyAuthorization
        } else {
            HeaderName::Authorization
        };
        let method = msg
            .method()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let ruri = msg.request_uri_str().unwrap_or("").to_string();
        let mut stale = false;
        for value in msg.header_values(name) {
            let Ok(creds) = Credentials::parse(value) else {
                continue;
            };
            if creds.realm != self.cfg.domain.as_str() {
                continue;
            }
            if self.cfg.strict_digest_uri && !sip::auth::uri_matches_request(&creds.uri, &ruri) {
                self.metrics.auth("uri_mismatch");
                continue;
            }
            let ha1 = self
                .users
                .get(creds.username.as_ref())
                .map(|u| match creds.algorithm {
                    sip::auth::Algorithm::Md5 => u.ha1_md5.clone(),
                    sip::auth::Algorithm::Sha256 => u.ha1_sha256.clone(),
                });
            let outcome = self.verifier.check(
                &creds,
                &method,
                &self.cfg.domain,
                ha1.as_deref().filter(|h| !h.is_empty()),
                now.unix,
                &mut self.nonce_counter,
            );
            let known = ha1.is_some();
            match outcome {
                // Not counted as a failure: a phone whose password was fixed
                // while it was blocked must not prolong its own block.
                AuthOutcome::Ok { .. } if !self.shield.auth_allowed(now, ip, &creds.username) => {
                    self.metrics.auth("held_back");
                }
                AuthOutcome::Ok { .. } => {
                    self.metrics.auth("ok");
                    self.shield.auth_ok(now, ip, &creds.username);
                    return Auth::Ok(creds.username.into_owned());
                }
                AuthOutcome::Stale => {
                    self.metrics.auth("stale");
                    stale = true;
                }
                AuthOutcome::BadResponse => {
                    self.metrics.auth("bad_credentials");
                    self.shield.auth_failed(now, ip, &creds.username, known);
                }
                AuthOutcome::BadNonce => self.metrics.auth("bad_nonce"),
                AuthOutcome::Replay => {
                    self.metrics.auth("replay");
                    return Auth::Replayed(creds.username.into_owned());
                }
                AuthOutcome::WrongRealm => self.metrics.auth("wrong_realm"),
                AuthOutcome::Unsupported(_) => self.metrics.auth("unsupported"),
            }
        }
        Auth::Challenge { stale }
    }

    /// One challenge per configured algorithm, in the configured order,
    /// sharing one fresh nonce; identical for every user.
    pub(crate) fn challenge_headers(
        &mut self,
        now: Now,
        proxy: bool,
        stale: bool,
    ) -> Vec<(HeaderName<'static>, String)> {
        let salt = self.random().to_be_bytes();
        let nonce = self.verifier.nonces().issue(now.unix, salt);
        let name = if proxy {
            HeaderName::ProxyAuthenticate
        } else {
            HeaderName::WwwAuthenticate
        };
        self.cfg
            .auth_algorithms
            .iter()
            .map(|a| {
                (
                    name,
                    sip::auth::challenge(*a, &self.cfg.domain, &nonce, stale, None),
                )
            })
            .collect()
    }

    pub(crate) fn register(&mut self, now: Now, flow: Flow, key: ServerKey, msg: Message) {
        let user = match self.authenticate(now, flow.remote.ip(), &msg, false) {
            Auth::Ok(u) => u,
            Auth::Replayed(u) if self.is_register_retransmission(&u, &msg, now) => {
                // Registrations are answered and forgotten (no Timer J
                // state); a retransmission whose 200 got lost finds the
                // bindings it created and gets them listed again, with
                // nothing changed. A replayed capture achieves the same.
                let bindings = self.live_bindings(&u, now);
                let resp = self.ok_response(&msg, &bindings, now);
                self.metrics.register("retransmission");
                return self.answer_and_forget(&key, 200, resp);
            }
            refused => {
                let h = self.challenge_headers(now, false, refused.stale());
                self.metrics.register("challenged");
                return self.reply_stateless(&key, &msg, 401, "Unauthorized", &h);
            }
        };
        // Users register their own address of record only.
        let aor = match msg.to() {
            Some(to) => {
                let ours = match &to.uri {
                    sip::uri::Uri::Sip(u) => route::is_our_host(&self.cfg, &u.host, u.port),
                    _ => false,
                };
                if !ours {
                    return self.reply(now, &key, &msg, 403, "Forbidden", &[]);
                }
                to.uri.user_decoded()
            }
            None => return self.reply(now, &key, &msg, 400, "Bad To", &[]),
        };
        if aor.as_deref() != Some(user.as_str()) {
            self.metrics.register("forbidden");
            return self.reply(now, &key, &msg, 403, "Forbidden", &[]);
        }
        let contacts: Vec<Contact<'_>> = match msg.contacts().collect::<Result<Vec<_>, _>>() {
            Ok(c) => c,
            Err(_) => return self.reply(now, &key, &msg, 400, "Bad Contact", &[]),
        };
        let call_id = msg.call_id().to_string();
        let cseq = msg.cseq().seq;
        let header_expires = msg.expires();
        let mut bindings = self.live_bindings(&user, now);
        let mut ops = Vec::new();

        if contacts.is_empty() {
            // A query: list the bindings, store nothing.
            let resp = self.ok_response(&msg, &bindings, now);
            return self.answer_and_forget(&key, 200, resp);
        }
        let star = contacts.iter().any(|c| matches!(c, Contact::Star));
        if star {
            if contacts.len() != 1 || header_expires != Some(0) {
                return self.reply(now, &key, &msg, 400, "Invalid Contact *", &[]);
            }
            bindings.retain(|b| {
                let keep = b.call_id == call_id && b.cseq >= cseq;
                if !keep {
                    ops.push(RegOp::Remove {
                        aor: user.clone(),
                        contact: b.contact.clone(),
                    });
                }
                keep
            });
        } else {
            let nat = behind_nat(&msg, &flow);
            for c in &contacts {
                let Contact::Addr(na) = c else { continue };
                let uri = na.uri.to_string();
                let expires = match na.expires() {
                    Ok(Some(e)) => e,
                    Ok(None) => header_expires.unwrap_or(self.cfg.default_expires),
                    Err(_) => return self.reply(now, &key, &msg, 400, "Bad Contact expires", &[]),
                };
                if expires != 0 && expires < self.cfg.min_expires {
                    let min = self.cfg.min_expires.to_string();
                    self.metrics.register("interval_too_brief");
                    return self.reply(
                        now,
                        &key,
                        &msg,
                        423,
                        "Interval Too Brief",
                        &[(HeaderName::MinExpires, min)],
                    );
                }
                let expires = expires.min(self.cfg.max_expires);
                let existing = bindings
                    .iter()
                    .position(|b| location::contact_uri_eq(&b.contact, &uri));
                if let Some(i) = existing {
                    if bindings[i].call_id == call_id && bindings[i].cseq >= cseq {
                        // RFC 3261 §10.3 step 7: an out-of-order update fails.
                        return self.reply(now, &key, &msg, 500, "Out of order CSeq", &[]);
                    }
                }
                if expires == 0 {
                    if let Some(i) = existing {
                        let b = bindings.remove(i);
                        ops.push(RegOp::Remove {
                            aor: user.clone(),
                            contact: b.contact,
                        });
                    }
                    continue;
                }
                let q = na.q().ok().flatten().unwrap_or(1000);
                let instance = na
                    .params
                    .get("+sip.instance")
                    .flatten()
                    .map(|s| s.trim_matches('"').to_string());
                let ob = na.uri.as_sip().is_some_and(|s| s.params.contains("ob"));
                let b = Binding {
                    contact: uri.clone(),
                    expires_at: now.unix + expires as u64,
                    call_id: call_id.clone(),
                    cseq,
                    q,
                    source: flow,
                    use_source: nat || ob || route::resolve(&na.uri).is_none(),
                    instance,
                    updated_at: now.unix,
                };
                match existing {
                    Some(i) => bindings[i] = b.clone(),
                    None => bindings.push(b.clone()),
                }
                ops.push(RegOp::Upsert(location::to_store(&user, &b)));
            }
            // Over the cap the oldest bindings give way: a phone that moved
            // networks must not be locked out by its own stale contacts.
            if bindings.len() > self.cfg.max_contacts {
                bindings.sort_by_key(|b| std::cmp::Reverse(b.updated_at));
                for b in bindings.drain(self.cfg.max_contacts..) {
                    ops.push(RegOp::Remove {
                        aor: user.clone(),
                        contact: b.contact,
                    });
                }
            }
        }
        let ok_response = self.ok_response(&msg, &bindings, now);
        if ops.is_empty() {
            self.metrics.register("ok");
            return self.answer_and_forget(&key, 200, ok_response);
        }
        let fail_response = self.response(
            &msg,
            500,
            "Server Internal Error",
            &[(HeaderName::RetryAfter, "5".to_string())],
        );
        let undo = self.location.replace(&user, bindings);
        self.metrics
            .registrations_active
            .set(self.location.count() as i64);
        let id = self.new_id();
        self.pending.insert(
            id,
            PendingRegister {
                key,
                ok_response,
                fail_response,
                user,
                undo,
            },
        );
        self.store_out.push_back(StoreBatch { id, ops });
    }

    /// The unexpired bindings of `user`, in stored order.
    fn live_bindings(&self, user: &str, now: Now) -> Vec<Binding> {
        self.location
            .get(user)
            .iter()
            .filter(|b| b.expires_at > now.unix)
            .cloned()
            .collect()
    }

    /// A REGISTER with the Call-ID and CSeq of a live binding of `user`
    /// is the request that created it, sent again.
    fn is_register_retransmission(&self, user: &str, msg: &Message, now: Now) -> bool {
        let call_id = msg.call_id();
        let cseq = msg.cseq().seq;
        self.location
            .get(user)
            .iter()
            .any(|b| b.expires_at > now.unix && b.call_id == call_id && b.cseq == cseq)
    }

    fn ok_response(&mut self, msg: &Message, bindings: &[Binding], now: Now) -> bytes::Bytes {
        let mut extra: Vec<(HeaderName<'static>, String)> = bindings
            .iter()
            .map(|b| {
                (
                    HeaderName::Contact,
                    format!(
                        "<{}>;expires={}",
                        b.contact,
                        b.expires_at.saturating_sub(now.unix)
                    ),
                )
            })
            .collect();
        extra.push((HeaderName::Date, http_date(now.unix)));
        self.response(msg, 200, "OK", &extra)
    }
}

/// RFC 3581-style NAT detection: the top Via names another address than the
/// packet came from, so the Contact is probably unreachable.
fn behind_nat(msg: &Message, flow: &Flow) -> bool {
    let Some(via) = msg.top_via() else {
        return true;
    };
    let ip = match via.host {
        sip::uri::Host::Ipv4(a) => std::net::IpAddr::V4(a),
        sip::uri::Host::Ipv6(a) => std::net::IpAddr::V6(a),
        sip::uri::Host::Domain(_) => return true,
    };
    let port = via.port.unwrap_or(5060);
    ip != flow.remote.ip() || port != flow.remote.port()
}

/// RFC 1123 date for the Date header of REGISTER responses.
pub(crate) fn http_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(mo - 1) as usize],
        y,
        h,
        m,
        s
    )
}

#[cfg(test)]
mod tests {
    use super::http_date;

    #[test]
    fn date_formats_like_rfc1123() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
