//! What the shield reads in a parsed request: scanner signatures and the
//! facts the heuristics count (target user, raw-IP addressing).

use memchr::memmem::Finder;
use sip::header::HeaderName;
use sip::message::Message;
use sip::method::Method;
use sip::uri::{Host, Uri};

/// Known scanners and attack tools, as they name themselves in User-Agent,
/// From/To/Contact or SDP (lowercase substrings).
pub const SIGNATURES: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "vaxsipuseragent",
    "sundayddr",
    "iwar",
    "sip-scan",
    "sipscan",
    "pplsip",
    "sivus",
    "siparmyknife",
    "sipsploit",
    "voipbuster-scan",
];

/// Compiled signatures: one SIMD substring search each over one buffer.
pub(crate) struct Signatures {
    finders: Vec<(Finder<'static>, String)>,
}

/// How much of each field and of the body is looked at (bounded work).
const FIELD_MAX: usize = 256;
const BODY_MAX: usize = 1024;

impl Signatures {
    pub(crate) fn new(extra: &[String]) -> Signatures {
        let finders = SIGNATURES
            .iter()
            .map(|s| s.to_string())
            .chain(extra.iter().map(|s| s.to_ascii_lowercase()))
            .filter(|s| !s.is_empty())
            .map(|s| (Finder::new(s.as_bytes()).into_owned(), s))
            .collect();
        Signatures { finders }
    }

    /// The signature `msg` carries, if any.
    pub(crate) fn find(&self, msg: &Message) -> Option<&str> {
        let mut text: Vec<u8> = Vec::with_capacity(512);
        let mut add = |s: &str| {
            let b = &s.as_bytes()[..s.len().min(FIELD_MAX)];
            text.extend(b.iter().map(u8::to_ascii_lowercase));
            text.push(b'\n');
        };
        for name in [HeaderName::UserAgent, HeaderName::From, HeaderName::To] {
            if let Some(v) = msg.header(name) {
                add(v);
            }
        }
        if let Some(v) = msg.header_values(HeaderName::Contact).next() {
            add(v);
        }
        let body = msg.body();
        if !body.is_empty()
            && msg
                .content_type()
                .is_some_and(|c| c.trim().to_ascii_lowercase().starts_with("application/sdp"))
        {
            text.extend(
                body[..body.len().min(BODY_MAX)]
                    .iter()
                    .map(u8::to_ascii_lowercase),
            );
        }
        self.finders
            .iter()
            .find(|(f, _)| f.find(&text).is_some())
            .map(|(_, s)| s.as_str())
    }
}

/// The user a request is aimed at: the To user of a REGISTER, the
/// Request-URI user of anything else.
pub(crate) fn target_user(msg: &Message) -> Option<String> {
    let user = if msg.method() == Some(&Method::Register) {
        msg.to()?.uri.user_decoded()
    } else {
        msg.request_uri()?.user_decoded()
    };
    user.map(|u| u.chars().take(64).collect())
}

/// Whether the Request-URI names an IP address while the server's domain
/// is a name: scanners sweep addresses, phones are configured with the
/// domain.
pub(crate) fn addressed_to_raw_ip(msg: &Message, domain_is_name: bool) -> bool {
    domain_is_name
        && matches!(
            msg.request_uri(),
            Some(Uri::Sip(u)) if matches!(u.host, Host::Ipv4(_) | Host::Ipv6(_))
        )
}

/// Whether the request carries credentials of any kind.
pub(crate) fn has_credentials(msg: &Message) -> bool {
    msg.header(HeaderName::Authorization).is_some()
        || msg.header(HeaderName::ProxyAuthorization).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(s: &str) -> Message {
        sip::parse::parse_datagram(
            Bytes::from(s.replace('\n', "\r\n")),
            &sip::Limits::default(),
        )
        .unwrap()
    }

    const SVMAP: &str = "OPTIONS sip:100@192.0.2.1 SIP/2.0\nVia: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-1;rport\nMax-Forwards: 70\nTo: \"sipvicious\"<sip:100@1.1.1.1>\nFrom: \"sipvicious\"<sip:100@1.1.1.1>;tag=6533\nUser-Agent: friendly-scanner\nCall-ID: 1@x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n";

    #[test]
    fn finds_scanners_and_spares_phones() {
        let s = Signatures::new(&["EvilTool".to_string()]);
        assert_eq!(s.find(&msg(SVMAP)), Some("friendly-scanner"));
        let renamed = SVMAP.replace("friendly-scanner", "Yealink SIP-T46S");
        assert_eq!(
            s.find(&msg(&renamed)),
            Some("sipvicious"),
            "From still names it"
        );
        let clean = renamed.replace("sipvicious", "Alice");
        assert_eq!(s.find(&msg(&clean)), None);
        let extra = clean.replace("Yealink SIP-T46S", "eviltool/2");
        assert_eq!(s.find(&msg(&extra)), Some("eviltool"));
        let sdp = "v=0\no=sundayddr 1 1 IN IP4 1.2.3.4\ns=-\n";
        let with_sdp = clean
            .replace("OPTIONS sip", "INVITE sip")
            .replace("1 OPTIONS", "1 INVITE")
            .replace(
                "Content-Length: 0\n\n",
                &format!(
                    "Content-Type: application/sdp\nContent-Length: {}\n\n{}",
                    sdp.len() + 3,
                    sdp.replace('\n', "\r\n")
                ),
            );
        assert_eq!(s.find(&msg(&with_sdp)), Some("sundayddr"));
    }

    #[test]
    fn targets_and_raw_ip() {
        let m = msg(SVMAP);
        assert_eq!(target_user(&m).as_deref(), Some("100"));
        assert!(addressed_to_raw_ip(&m, true));
        assert!(!addressed_to_raw_ip(&m, false));
        assert!(!has_credentials(&m));
        let reg = msg("REGISTER sip:example.test SIP/2.0\nVia: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK-2\nTo: <sip:1000@example.test>\nFrom: <sip:1000@example.test>;tag=1\nCall-ID: 2@x\nCSeq: 1 REGISTER\nAuthorization: Digest username=\"1000\"\nContent-Length: 0\n\n");
        assert_eq!(target_user(&reg).as_deref(), Some("1000"));
        assert!(!addressed_to_raw_ip(&reg, true));
        assert!(has_credentials(&reg));
    }
}
