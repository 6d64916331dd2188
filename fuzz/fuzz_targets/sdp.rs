//! SDP parse + relay rewrite: never a panic; whatever parses is rewritten
//! to text that parses again and points every relayed section at the relay.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::sdp::{Sdp, SdpLimits};
use std::net::{IpAddr, Ipv4Addr};

fuzz_target!(|data: &[u8]| {
    let limits = SdpLimits::default();
    let Ok(sdp) = Sdp::parse(data, &limits) else {
        return;
    };
    for i in 0..sdp.media().len() {
        let _ = (sdp.codec(i), sdp.ptime_or_default(i));
    }
    let relay = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let ports: Vec<Option<u16>> = sdp
        .media()
        .iter()
        .enumerate()
        .map(|(i, m)| (m.port != 0).then_some(20000 + 2 * i as u16))
        .collect();
    let out = sdp.rewrite(relay, &ports);
    let again = Sdp::parse(&out, &SdpLimits { max_len: usize::MAX, ..limits })
        .unwrap_or_else(|e| panic!("rewrite of {:?} does not parse: {e:?}", String::from_utf8_lossy(data)));
    assert_eq!(again.media().len(), sdp.media().len());
    for (m, p) in again.media().iter().zip(&ports) {
        if let Some(p) = p {
            assert_eq!(m.port, *p);
        }
    }
});
