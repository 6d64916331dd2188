//! RTP/RTCP parsing and the stream statistics on arbitrary packets: never a
//! panic, and the counters stay consistent (lost never above expected).
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::rtp::{is_rtcp, parse_rtcp, parse_rtp};
use media::stats::{RttEstimator, StreamStats};

fuzz_target!(|data: &[u8]| {
    let mut stats = StreamStats::default();
    let mut rtt = RttEstimator::default();
    // The input is a sequence of packets, each prefixed by its length byte
    // and a time step byte.
    let mut rest = data;
    let mut t = 0u64;
    while let [len, step, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (pkt, more) = tail.split_at(n);
        rest = more;
        t += u64::from(*step) * 1000;
        if is_rtcp(pkt) {
            if let Ok(r) = parse_rtcp(pkt) {
                if let Some(sr) = r.sr {
                    rtt.on_sr(sr.ntp, t);
                }
                for b in r.report_blocks() {
                    let _ = rtt.on_report(b.lsr, b.dlsr, t);
                }
            }
        } else if let Ok(h) = parse_rtp(pkt) {
            assert!(h.header_len + h.payload_len <= pkt.len());
            let _ = stats.on_rtp(&h, t, 8000);
        }
    }
    assert!(stats.lost() <= stats.expected());
    assert!((0.0..=100.0).contains(&stats.loss_pct()));
    assert!(stats.burst_ratio() >= 1.0);
    assert!(stats.jitter_ms() >= 0.0);
});
