//! Records exchanged with the store.

use crate::StoreError;

/// A user (extension). Only HA1 digests are stored, never passwords.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub username: String,
    /// hex MD5(username:realm:password)
    pub ha1_md5: String,
    /// hex SHA-256(username:realm:password)
    pub ha1_sha256: String,
    pub display_name: Option<String>,
    /// unix seconds
    pub created_at: i64,
}

/// One registered contact of an address-of-record. Unique per (aor, contact).
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The username the contact is registered for.
    pub aor: String,
    /// The Contact URI as sent.
    pub contact: String,
    /// unix seconds; the binding is expired once `expires_at <= now`.
    pub expires_at: i64,
    pub call_id: String,
    pub cseq: u32,
    /// Contact q-value in 0.0..=1.0, kept with 3 decimals (RFC 3261 grammar).
    pub q: Option<f32>,
    /// Where the REGISTER came from, e.g. "udp:203.0.113.5:5060".
    pub source: String,
    /// Listener it came in on.
    pub local: String,
    /// +sip.instance, if any.
    pub instance: Option<String>,
    /// unix seconds
    pub updated_at: i64,
}

impl Binding {
    /// q as an exact integer in thousandths: floats compare badly and the
    /// SIP grammar allows at most three decimals anyway.
    pub(crate) fn q_milli(&self) -> Result<Option<i64>, StoreError> {
        match self.q {
            None => Ok(None),
            Some(q) if q.is_finite() && (0.0..=1.0).contains(&q) => {
                Ok(Some((f64::from(q) * 1000.0).round() as i64))
            }
            Some(q) => Err(StoreError::Invalid(format!(
                "q value {q} out of range 0..1 for contact {}",
                self.contact
            ))),
        }
    }
}

pub(crate) fn q_from_milli(milli: i64) -> f32 {
    milli as f32 / 1000.0
}

/// One change in a registration batch, see [`crate::Store::apply`].
#[derive(Debug, Clone, PartialEq)]
pub enum RegOp {
    /// Insert or replace the binding (aor, contact).
    Upsert(Binding),
    /// Remove one binding; absent is not an error.
    Remove { aor: String, contact: String },
    /// Remove every binding of the AoR (`Contact: *`).
    RemoveAll { aor: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_q(q: Option<f32>) -> Binding {
        Binding {
            aor: "a".into(),
            contact: "sip:a@h".into(),
            expires_at: 0,
            call_id: "c".into(),
            cseq: 1,
            q,
            source: "s".into(),
            local: "l".into(),
            instance: None,
            updated_at: 0,
        }
    }

    #[test]
    fn q_three_decimals_round_trip_exactly() {
        for milli in 0..=1000 {
            let q = milli as f32 / 1000.0;
            let stored = with_q(Some(q)).q_milli().unwrap().unwrap();
            assert_eq!(stored, i64::from(milli));
            assert_eq!(q_from_milli(stored), q);
        }
        assert_eq!(with_q(None).q_milli().unwrap(), None);
    }

    #[test]
    fn q_out_of_range_rejected() {
        for q in [-0.001, 1.001, f32::NAN, f32::INFINITY] {
            assert!(matches!(
                with_q(Some(q)).q_milli(),
                Err(StoreError::Invalid(_))
            ));
        }
    }
}
