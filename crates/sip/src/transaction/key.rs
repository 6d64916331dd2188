//! Transaction matching keys (RFC 3261 §17.1.3, §17.2.3) and branch helpers.
//!
//! Keys are owned plain data built from strings the caller extracted from a
//! parsed message, so this module does not depend on the parser.

use std::fmt::Write as _;

/// The RFC 3261 branch prefix (§8.1.1.7). Case-sensitive.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Whether `branch` carries the RFC 3261 magic cookie and so can be used for
/// §17.2.3 matching. A bare cookie carries no uniqueness; such requests fall
/// back to RFC 2543 matching.
pub fn is_rfc3261_branch(branch: &str) -> bool {
    branch.len() > MAGIC_COOKIE.len() && branch.starts_with(MAGIC_COOKIE)
}

/// A new RFC 3261 branch: the cookie, 16 hex digits of caller-supplied
/// `entropy` (random per process/boot), then 16 hex digits of a bijective mix
/// of `counter`. The fixed widths keep distinct (entropy, counter) pairs
/// distinct; mixing hides the request rate a raw counter would leak.
pub fn new_branch(entropy: u64, counter: u64) -> String {
    let mut s = String::with_capacity(MAGIC_COOKIE.len() + 32);
    s.push_str(MAGIC_COOKIE);
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "{entropy:016x}{:016x}",
        splitmix64(counter.wrapping_add(entropy))
    );
    s
}

/// SplitMix64 finaliser: a bijection on u64, so unique counters stay unique.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// ACK belongs to the INVITE transaction it acknowledges (§17.2.3).
fn tx_method(method: &str) -> String {
    if method == "ACK" {
        "INVITE".to_owned()
    } else {
        method.to_owned()
    }
}

/// Matches responses to client transactions (§17.1.3): the top Via branch
/// and the CSeq method (CANCEL shares the INVITE's branch). Both compared
/// case-sensitively, as the RFC requires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub branch: String,
    pub method: String,
}

impl ClientKey {
    pub fn new(branch: &str, method: &str) -> Self {
        Self {
            branch: branch.to_owned(),
            method: method.to_owned(),
        }
    }
}

/// Matches requests to server transactions (§17.2.3).
///
/// The method stored is the transaction's: an ACK's key carries `INVITE` so
/// it finds the INVITE transaction it acknowledges. A CANCEL is its own
/// transaction; [`ServerKey::cancel_target`] gives the key of the INVITE it
/// cancels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerKey {
    /// Branch with the magic cookie: branch (case-sensitive), sent-by
    /// (lower-cased: hosts are case-insensitive) and method.
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: String,
    },
    /// Fallback for RFC 2543 peers (no magic cookie).
    ///
    /// The To tag is deliberately not part of the key: the ACK for a final
    /// response carries the tag the response added, which the INVITE lacked,
    /// so including it would stop ACKs from matching. Within one server the
    /// remaining fields already identify the transaction, and an ACK for a
    /// 2xx that matches is handed back to the TU by the Accepted state.
    Rfc2543 {
        request_uri: String,
        from_tag: String,
        call_id: String,
        cseq: u32,
        top_via: String,
        method: String,
    },
}

impl ServerKey {
    /// Key for a request whose top Via branch passes [`is_rfc3261_branch`].
    /// `sent_by` is the top Via's `host[:port]`.
    pub fn rfc3261(branch: &str, sent_by: &str, method: &str) -> Self {
        Self::Rfc3261 {
            branch: branch.to_owned(),
            sent_by: sent_by.trim().to_ascii_lowercase(),
            method: tx_method(method),
        }
    }

    /// Key for a request without an RFC 3261 branch. `top_via` should be the
    /// canonical printed top Via value (so whitespace and case of the
    /// original do not matter); `from_tag` is empty when absent.
    pub fn rfc2543(
        request_uri: &str,
        from_tag: &str,
        call_id: &str,
        cseq: u32,
        top_via: &str,
        method: &str,
    ) -> Self {
        Self::Rfc2543 {
            request_uri: request_uri.to_owned(),
            from_tag: from_tag.to_owned(),
            call_id: call_id.to_owned(),
            cseq,
            top_via: top_via.trim().to_owned(),
            method: tx_method(method),
        }
    }

    /// The transaction's method (`INVITE` for an ACK's key).
    pub fn method(&self) -> &str {
        match self {
            Self::Rfc3261 { method, .. } | Self::Rfc2543 { method, .. } => method,
        }
    }

    /// For a CANCEL's key, the key of the INVITE server transaction it
    /// targets (RFC 3261 §9.2: same branch and sent-by, or for RFC 2543 the
    /// same Request-URI, From tag, Call-ID, CSeq number and top Via).
    /// `None` for any other method.
    pub fn cancel_target(&self) -> Option<ServerKey> {
        if self.method() != "CANCEL" {
            return None;
        }
        let mut key = self.clone();
        match &mut key {
            Self::Rfc3261 { method, .. } | Self::Rfc2543 { method, .. } => {
                *method = "INVITE".to_owned();
            }
        }
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn branch_detection() {
        assert!(is_rfc3261_branch("z9hG4bK776asdhds"));
        assert!(!is_rfc3261_branch("z9hG4bK"));
        assert!(!is_rfc3261_branch("Z9HG4BK776asdhds"));
        assert!(!is_rfc3261_branch("776asdhds"));
        assert!(!is_rfc3261_branch(""));
    }

    #[test]
    fn new_branches_are_rfc3261_hex_and_unique() {
        let a = new_branch(0xdead_beef, 0);
        assert!(is_rfc3261_branch(&a));
        assert_eq!(a.len(), MAGIC_COOKIE.len() + 32);
        assert!(a[MAGIC_COOKIE.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let set: HashSet<String> = (0..10_000).map(|c| new_branch(42, c)).collect();
        assert_eq!(set.len(), 10_000);
        assert_ne!(new_branch(1, 5), new_branch(2, 5));
        assert_eq!(new_branch(7, 9), new_branch(7, 9));
    }

    #[test]
    fn ack_matches_invite_server_key() {
        let invite = ServerKey::rfc3261("z9hG4bKabc", "Host.Example.COM:5060", "INVITE");
        let ack = ServerKey::rfc3261("z9hG4bKabc", "host.example.com:5060", "ACK");
        assert_eq!(invite, ack);
        assert_eq!(ack.method(), "INVITE");
        let set: HashSet<ServerKey> = [invite].into_iter().collect();
        assert!(set.contains(&ack));
    }

    #[test]
    fn rfc3261_key_distinguishes_branch_case_sent_by_and_method() {
        let k = ServerKey::rfc3261("z9hG4bKabc", "a.example", "INVITE");
        assert_ne!(k, ServerKey::rfc3261("z9hG4bKABC", "a.example", "INVITE"));
        assert_ne!(k, ServerKey::rfc3261("z9hG4bKabc", "b.example", "INVITE"));
        assert_ne!(
            k,
            ServerKey::rfc3261("z9hG4bKabc", "a.example:5070", "INVITE")
        );
        assert_ne!(k, ServerKey::rfc3261("z9hG4bKabc", "a.example", "BYE"));
        assert_ne!(k, ServerKey::rfc3261("z9hG4bKabc", "a.example", "CANCEL"));
    }

    #[test]
    fn cancel_finds_its_invite() {
        let invite = ServerKey::rfc3261("z9hG4bKx", "10.0.0.1:5060", "INVITE");
        let cancel = ServerKey::rfc3261("z9hG4bKx", "10.0.0.1:5060", "CANCEL");
        assert_ne!(invite, cancel);
        assert_eq!(cancel.cancel_target(), Some(invite.clone()));
        assert_eq!(invite.cancel_target(), None);
        let other = ServerKey::rfc3261("z9hG4bKy", "10.0.0.1:5060", "CANCEL");
        assert_ne!(other.cancel_target(), Some(invite));
    }

    #[test]
    fn rfc2543_keys() {
        let via = "SIP/2.0/UDP 10.0.0.1:5060";
        let invite = ServerKey::rfc2543("sip:bob@b.example", "ft", "cid", 7, via, "INVITE");
        let ack = ServerKey::rfc2543("sip:bob@b.example", "ft", "cid", 7, via, "ACK");
        let cancel = ServerKey::rfc2543("sip:bob@b.example", "ft", "cid", 7, via, "CANCEL");
        assert_eq!(invite, ack);
        assert_ne!(invite, cancel);
        assert_eq!(cancel.cancel_target(), Some(invite.clone()));
        assert_ne!(
            invite,
            ServerKey::rfc2543("sip:bob@b.example", "ft", "cid", 8, via, "INVITE")
        );
        assert_ne!(
            invite,
            ServerKey::rfc2543("sip:bob@b.example", "other", "cid", 7, via, "INVITE")
        );
        assert_ne!(
            invite,
            ServerKey::rfc2543("sip:bob@b.example", "ft", "cid2", 7, via, "INVITE")
        );
        assert_ne!(
            invite,
            ServerKey::rfc2543("sip:carol@b.example", "ft", "cid", 7, via, "INVITE")
        );
        assert_ne!(
            invite,
            ServerKey::rfc2543(
                "sip:bob@b.example",
                "ft",
                "cid",
                7,
                "SIP/2.0/UDP h",
                "INVITE"
            )
        );
        // A key of one flavour never equals the other.
        assert_ne!(
            invite,
            ServerKey::rfc3261("z9hG4bKx", "10.0.0.1:5060", "INVITE")
        );
    }

    #[test]
    fn client_key_separates_invite_and_cancel() {
        let invite = ClientKey::new("z9hG4bK1", "INVITE");
        let cancel = ClientKey::new("z9hG4bK1", "CANCEL");
        assert_ne!(invite, cancel);
        assert_eq!(invite, ClientKey::new("z9hG4bK1", "INVITE"));
        assert_ne!(invite, ClientKey::new("z9hg4bk1", "INVITE"));
    }
}
