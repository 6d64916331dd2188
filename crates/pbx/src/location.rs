//! The location service: contacts registered per user, in memory, mirrored
//! to the store by the registrar (group commit) and loaded back on start.

use crate::io::{parse_transport_addr, Flow};
use std::collections::HashMap;
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub contact: String,
    pub expires_at: u64,
    pub call_id: String,
    pub cseq: u32,
    /// q in thousandths (RFC 3261 q-value); 1000 when absent.
    pub q: u16,
    /// Where the REGISTER came from: NATed phones are reached through it.
    pub source: Flow,
    /// Route to `source` rather than to the Contact URI: the phone is
    /// behind NAT (Via differs from the source) or on a stream connection.
    pub use_source: bool,
    pub instance: Option<String>,
    pub updated_at: u64,
}

#[derive(Default)]
pub struct Location {
    by_user: HashMap<String, Vec<Binding>>,
    count: usize,
}

impl Location {
    pub fn count(&self) -> usize {
        self.count
    }

    /// Live bindings of `user`, highest q first (RFC 3261 §16.6: ordered).
    pub fn lookup(&self, user: &str, now: u64) -> Vec<&Binding> {
        let mut v: Vec<&Binding> = self
            .by_user
            .get(user)
            .map(|b| b.iter().filter(|b| b.expires_at > now).collect())
            .unwrap_or_default();
        v.sort_by_key(|b| std::cmp::Reverse(b.q));
        v
    }

    pub fn get(&self, user: &str) -> &[Binding] {
        self.by_user.get(user).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// Replaces the bindings of `user`; returns the previous ones (undo).
    pub fn replace(&mut self, user: &str, bindings: Vec<Binding>) -> Vec<Binding> {
        let old = if bindings.is_empty() {
            self.by_user.remove(user).unwrap_or_default()
        } else {
            self.by_user
                .insert(user.to_string(), bindings)
                .unwrap_or_default()
        };
        self.recount();
        old
    }

    pub fn retain_users(&mut self, keep: impl Fn(&str) -> bool) {
        self.by_user.retain(|u, _| keep(u));
        self.recount();
    }

    fn recount(&mut self) {
        self.count = self.by_user.values().map(|v| v.len()).sum();
    }

    /// Drops expired bindings; returns how many.
    pub fn expire(&mut self, now: u64) -> usize {
        let before = self.count;
        self.by_user.retain(|_, v| {
            v.retain(|b| b.expires_at > now);
            !v.is_empty()
        });
        self.recount();
        before - self.count
    }

    /// The binding whose Contact is `uri` (an in-dialog request to a
    /// registered phone goes through its flow when it is behind NAT).
    pub fn find_contact(&self, uri: &str, now: u64) -> Option<&Binding> {
        self.by_user
            .values()
            .flatten()
            .find(|b| b.expires_at > now && contact_uri_eq(&b.contact, uri))
    }

    pub fn from_store(&mut self, rows: Vec<store::Binding>) {
        for r in rows {
            let Some((transport, remote)) = parse_transport_addr(&r.source) else {
                continue;
            };
            let (local_str, nat) = match r.local.strip_suffix(";nat") {
                Some(l) => (l, true),
                None => (r.local.as_str(), false),
            };
            let local = parse_transport_addr(local_str)
                .map(|(_, a)| a)
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            let b = Binding {
                contact: r.contact,
                expires_at: r.expires_at.max(0) as u64,
                call_id: r.call_id,
                cseq: r.cseq,
                q: r.q
                    .map(|q| (q.clamp(0.0, 1.0) * 1000.0).round() as u16)
                    .unwrap_or(1000),
                source: Flow {
                    transport,
                    local,
                    remote,
                },
                use_source: nat,
                instance: r.instance,
                updated_at: r.updated_at.max(0) as u64,
            };
            self.by_user.entry(r.aor).or_default().push(b);
        }
        self.recount();
    }
}

pub fn to_store(user: &str, b: &Binding) -> store::Binding {
    store::Binding {
        aor: user.to_string(),
        contact: b.contact.clone(),
        expires_at: b.expires_at as i64,
        call_id: b.call_id.clone(),
        cseq: b.cseq,
        q: Some(b.q as f32 / 1000.0),
        source: b.source.remote_string(),
        // The NAT decision travels with the listener string so it survives
        // a restart without a schema change.
        local: if b.use_source {
            format!("{};nat", b.source.local_string())
        } else {
            b.source.local_string()
        },
        instance: b.instance.clone(),
        updated_at: b.updated_at as i64,
    }
}

/// Contact URIs compare per RFC 3261 §19.1.4 where they parse, else as text.
pub fn contact_uri_eq(a: &str, b: &str) -> bool {
    match (sip::uri::Uri::parse(a), sip::uri::Uri::parse(b)) {
        (Ok(x), Ok(y)) => x.equivalent(&y),
        _ => a.eq_ignore_ascii_case(b),
    }
}
