//! Digest credentials and challenges from hostile header values: never a
//! panic, and whatever parses must verify without one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::auth::{verify, Algorithm, Challenge, Credentials, NonceCounter, NonceGen, Policy, Verifier};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Credentials::parse(s) {
        let ha1 = sip::auth::ha1(c.algorithm, &c.username, &c.realm, "password");
        let _ = verify(&c, "REGISTER", &ha1);
        let v = Verifier::new(NonceGen::new([7; 32]), Policy::default());
        let mut counter = NonceCounter::new(16);
        let _ = v.check(&c, "INVITE", "example.test", Some(&ha1), 1_800_000_000, &mut counter);
        let _ = v.check(&c, "INVITE", "example.test", None, 1_800_000_000, &mut counter);
        let _ = sip::auth::uri_matches_request(&c.uri, s);
    }
    if let Ok(ch) = Challenge::parse(s) {
        let _ = sip::auth::client_authorization(&ch, "REGISTER", "sip:example.test", "u", "p", "c", 1);
        let _ = Algorithm::parse(ch.algorithm.as_str());
    }
    let _ = NonceGen::new([1; 32]).check(s, 1_800_000_000);
});
