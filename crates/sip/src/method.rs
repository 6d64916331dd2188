//! SIP request methods (RFC 3261 §7.1, §25.1 `Method`).

use std::fmt;
use std::str::FromStr;

use crate::scan::ByteClass;

/// Why a method name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MethodError {
    #[error("empty method")]
    Empty,
    #[error("method is not an RFC 3261 token")]
    NotToken,
}

/// A request method. Method names are case-sensitive (RFC 3261 §7.1), so
/// `invite` is an extension method, not INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    /// Any other token; validated, so it is safe to print back on the wire.
    Extension(Box<str>),
}

/// Builds a byte-class table: ASCII alphanumerics plus `extra`.
pub(crate) const fn byte_table(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric();
        c += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

pub(crate) static TOKEN: ByteClass = ByteClass::new(byte_table(b"-.!%*_+`'~"));

/// RFC 3261 `token` character (table lookup: this is on the hot path).
#[inline]
pub(crate) fn is_token_byte(b: u8) -> bool {
    TOKEN.contains(b)
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

impl Method {
    /// Parses a method token (case-sensitive).
    pub fn parse(s: &str) -> Result<Method, MethodError> {
        Ok(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            "" => return Err(MethodError::Empty),
            other if is_token(other) => Method::Extension(other.into()),
            _ => return Err(MethodError::NotToken),
        })
    }

    /// The method named by `b` when it is one of the known ones: these are
    /// tokens, so a match needs no token check.
    pub(crate) fn known(b: &[u8]) -> Option<Method> {
        Some(match b {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"INFO" => Method::Info,
            b"UPDATE" => Method::Update,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"PUBLISH" => Method::Publish,
            _ => return None,
        })
    }

    /// [`Method::parse`] of bytes already checked to be a token (so ASCII):
    /// the parser's path, with no UTF-8 check for the known methods.
    pub(crate) fn parse_token(b: &[u8]) -> Option<Method> {
        Method::known(b).or_else(|| {
            std::str::from_utf8(b)
                .ok()
                .and_then(|s| Method::parse(s).ok())
        })
    }

    /// The method as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(s) => s,
        }
    }
}

impl FromStr for Method {
    type Err = MethodError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::parse(s)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_extension() {
        assert_eq!(Method::parse("INVITE").unwrap(), Method::Invite);
        assert_eq!(Method::parse("PUBLISH").unwrap().as_str(), "PUBLISH");
        let m = Method::parse("!interesting-Method0123456789_*+`.%indeed'~").unwrap();
        assert_eq!(m.as_str(), "!interesting-Method0123456789_*+`.%indeed'~");
        // Case-sensitive: lowercase is an extension, not INVITE.
        assert_eq!(
            Method::parse("invite").unwrap(),
            Method::Extension("invite".into())
        );
        assert_eq!(Method::parse(""), Err(MethodError::Empty));
        assert_eq!(Method::parse("IN VITE"), Err(MethodError::NotToken));
        assert_eq!(Method::parse("A:B"), Err(MethodError::NotToken));
        assert_eq!("BYE".parse::<Method>().unwrap(), Method::Bye);
    }
}
