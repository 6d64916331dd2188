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
    /// Users holding a binding per [`contact_key`] of its Contact, one entry
    /// per binding: in-dialog requests find their target's binding without
    /// comparing the Request-URI with every registered contact.
    by_contact: HashMap<String, Vec<String>>,
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
        for b in &bindings {
            self.index_add(user, &b.contact);
        }
        self.count += bindings.len();
        let old = if bindings.is_empty() {
            self.by_user.remove(user).unwrap_or_default()
        } else {
            self.by_user
                .insert(user.to_string(), bindings)
                .unwrap_or_default()
        };
        for b in &old {
            self.index_remove(user, &b.contact);
        }
        self.count -= old.len();
        old
    }

    pub fn retain_users(&mut self, keep: impl Fn(&str) -> bool) {
        self.by_user.retain(|u, _| keep(u));
        self.rebuild();
    }

    fn rebuild(&mut self) {
        self.count = self.by_user.values().map(|v| v.len()).sum();
        let mut index: HashMap<String, Vec<String>> = HashMap::new();
        for (user, bindings) in &self.by_user {
            for b in bindings {
                index
                    .entry(contact_key(&b.contact))
                    .or_default()
                    .push(user.clone());
            }
        }
        self.by_contact = index;
    }

    /// One index entry for a binding of `user` with Contact `contact`.
    fn index_add(&mut self, user: &str, contact: &str) {
        self.by_contact
            .entry(contact_key(contact))
            .or_default()
            .push(user.to_string());
    }

    fn index_remove(&mut self, user: &str, contact: &str) {
        let key = contact_key(contact);
        if let Some(users) = self.by_contact.get_mut(&key) {
            if let Some(i) = users.iter().position(|u| u == user) {
                users.swap_remove(i);
            }
            if users.is_empty() {
                self.by_contact.remove(&key);
            }
        }
    }

    /// Drops expired bindings; returns how many.
    pub fn expire(&mut self, now: u64) -> usize {
        // (user, contact) of each expired binding, to take out of the index.
        let mut gone: Vec<(String, String)> = Vec::new();
        self.by_user.retain(|u, v| {
            v.retain_mut(|b| {
                let live = b.expires_at > now;
                if !live {
                    gone.push((u.clone(), std::mem::take(&mut b.contact)));
                }
                live
            });
            !v.is_empty()
        });
        for (u, contact) in &gone {
            self.index_remove(u, contact);
        }
        self.count -= gone.len();
        gone.len()
    }

    /// The binding whose Contact is `uri` (an in-dialog request to a
    /// registered phone goes through its flow when it is behind NAT).
    pub fn find_contact(&self, uri: &str, now: u64) -> Option<&Binding> {
        let users = self.by_contact.get(&contact_key(uri))?;
        users.iter().find_map(|u| {
            self.get(u)
                .iter()
                .find(|b| b.expires_at > now && contact_uri_eq(&b.contact, uri))
        })
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
        self.rebuild();
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

/// An index key equal for every pair of URIs [`contact_uri_eq`] calls equal
/// (it may also be equal for some that are not: candidates are compared in
/// full): the user part with escapes decoded, the host in lower case, the
/// port. Text that does not parse as a SIP URI is keyed by its lower case.
pub fn contact_key(uri: &str) -> String {
    match sip::uri::Uri::parse(uri) {
        Ok(sip::uri::Uri::Sip(s)) => {
            let mut key = String::with_capacity(uri.len());
            if let Some(user) = s.user {
                // Decoded as `contact_uri_eq` compares users.
                key.extend(sip::uri::decoded(user).map(char::from));
            }
            key.push('@');
            s.host.push_lower(&mut key);
            if let Some(p) = s.port {
                key.push(':');
                key.push_str(sip::message::decimal(u32::from(p), &mut [0; 10]));
            }
            key
        }
        _ => uri.to_ascii_lowercase(),
    }
}

/// Contact URIs compare per RFC 3261 §19.1.4 where they parse, else as text.
pub fn contact_uri_eq(a: &str, b: &str) -> bool {
    match (sip::uri::Uri::parse(a), sip::uri::Uri::parse(b)) {
        (Ok(x), Ok(y)) => x.equivalent(&y),
        _ => a.eq_ignore_ascii_case(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Transport;

    #[test]
    fn contact_keys_fold_what_uri_comparison_folds() {
        for (uri, key) in [
            (
                "sip:Alice@192.0.2.4:5060;transport=udp",
                "Alice@192.0.2.4:5060",
            ),
            ("sip:al%69ce@PC.Example.COM", "alice@pc.example.com"),
            ("sips:bob@[2001:db8::1]:5061", "bob@[2001:db8::1]:5061"),
            ("sip:10.0.0.255:65535", "@10.0.0.255:65535"),
            ("sip:0.0.0.0:0", "@0.0.0.0:0"),
            ("<not a uri>", "<not a uri>"),
        ] {
            assert_eq!(contact_key(uri), key, "{uri}");
        }
    }

    fn binding(contact: &str, expires_at: u64) -> Binding {
        let a: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        Binding {
            contact: contact.into(),
            expires_at,
            call_id: "c".into(),
            cseq: 1,
            q: 1000,
            source: Flow {
                transport: Transport::Udp,
                local: a,
                remote: a,
            },
            use_source: false,
            instance: None,
            updated_at: 0,
        }
    }

    #[test]
    fn find_contact_uses_uri_equivalence() {
        let mut l = Location::default();
        l.replace(
            "1000",
            vec![binding(
                "sip:alice%41@Phone.Example:5070;transport=udp",
                100,
            )],
        );
        l.replace("1001", vec![binding("sip:bob@phone.example:5070", 100)]);
        assert_eq!(l.count(), 2);
        // Escaped and unescaped user, host case: the same contact.
        let b = l.find_contact("sip:aliceA@PHONE.example:5070;transport=UDP", 50);
        assert_eq!(
            b.map(|b| b.contact.as_str()),
            Some("sip:alice%41@Phone.Example:5070;transport=udp")
        );
        // A different port or a transport mismatch is another contact.
        assert!(l
            .find_contact("sip:aliceA@phone.example:5071", 50)
            .is_none());
        assert!(l
            .find_contact("sip:aliceA@phone.example:5070;transport=tcp", 50)
            .is_none());
        // Expired bindings are not found.
        assert!(l.find_contact("sip:bob@phone.example:5070", 100).is_none());
    }

    #[test]
    fn index_follows_replace_expire_and_removal() {
        let mut l = Location::default();
        l.replace(
            "1000",
            vec![binding("sip:a@h1", 10), binding("sip:b@h2", 100)],
        );
        assert!(l.find_contact("sip:a@h1", 5).is_some());
        let old = l.replace("1000", vec![binding("sip:b@h2", 100)]);
        assert_eq!(old.len(), 2);
        assert_eq!(l.count(), 1);
        assert!(l.find_contact("sip:a@h1", 5).is_none());
        assert!(l.find_contact("sip:b@h2", 5).is_some());
        l.replace("2000", vec![binding("sip:b@h2", 20)]);
        assert_eq!(l.expire(50), 1);
        assert_eq!(l.count(), 1);
        assert_eq!(l.by_contact.get("b@h2").map(Vec::len), Some(1));
        l.replace("1000", vec![]);
        assert_eq!(l.count(), 0);
        assert!(l.by_contact.is_empty());
        assert!(l.find_contact("sip:b@h2", 5).is_none());
    }
}
