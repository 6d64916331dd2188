//! URI parse + Display round trip: anything accepted prints to a URI that
//! parses to an equal, equivalent value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::uri::Uri;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(u) = Uri::parse(s) else {
        return;
    };
    let printed = u.to_string();
    let again =
        Uri::parse(&printed).unwrap_or_else(|e| panic!("{s:?} printed as {printed:?}: {e:?}"));
    assert!(u.equivalent(&again), "{s:?} vs {printed:?}");
    assert!(again.equivalent(&u), "{s:?} vs {printed:?}");
    assert_eq!(printed, again.to_string());
    if let Some(sip) = u.as_sip() {
        let _ = (sip.lr(), sip.transport(), sip.maddr(), sip.user_param());
        let _ = sip.header_pairs().count();
        let _ = sip.params.iter().count();
    }
});
