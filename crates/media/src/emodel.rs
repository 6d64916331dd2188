//! The E-model speech-quality score (ITU-T G.107, simplified as network
//! monitors use it): R = 93.2 − Id − Ie,eff + A, and MOS from R.
//!
//! - Id, the delay impairment, after Cole and Rosenbluth:
//!   Id = 0.024·Ta + 0.11·(Ta − 177.3)·H(Ta − 177.3).
//! - Ie,eff, the equipment impairment under loss (G.107 §7.6):
//!   Ie,eff = Ie + (95 − Ie)·Ppl / (Ppl / BurstR + Bpl), with Ie and Bpl of
//!   the codec from ITU-T G.113 Appendix I.
//! - Ta, the mouth-to-ear delay, is what this module is given or builds
//!   with [`mouth_to_ear_ms`]: the one-way network delay (RTT / 2) plus the
//!   packetisation time plus a jitter-buffer allowance of twice the
//!   interarrival jitter (a buffer sized to absorb the jitter it sees).
//! - MOS = 1 + 0.035·R + R·(R − 60)·(100 − R)·7·10⁻⁶, clamped to [1, 4.5].
//!
//! A codec without ITU narrowband constants is [`Score::Unrated`], never a
//! made-up 4.5; without a round-trip time the score covers what the
//! listener hears (loss, jitter, packetisation) and says so
//! (`listening_only`).

/// Codec constants from ITU-T G.113 Appendix I.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecConstants {
    /// Equipment impairment without loss.
    pub ie: f64,
    /// Packet-loss robustness.
    pub bpl: f64,
}

/// The codecs G.113 Appendix I rates, by SDP encoding name (any case) and
/// whether the receiver conceals lost packets (PLC): G.711 with PLC 0/25.1,
/// without 0/4.3; G.729A with VAD 11/19.0; G.723.1 at 6.3 kbit/s with VAD
/// 15/16.1; GSM-EFR 5/10. Anything else has no constants.
pub fn codec_constants(encoding: &str, plc: bool) -> Option<CodecConstants> {
    let c = |ie, bpl| Some(CodecConstants { ie, bpl });
    match encoding.to_ascii_uppercase().as_str() {
        "PCMU" | "PCMA" | "G711" | "G.711" if plc => c(0.0, 25.1),
        "PCMU" | "PCMA" | "G711" | "G.711" => c(0.0, 4.3),
        "G729" | "G729A" | "G.729" | "G.729A" => c(11.0, 19.0),
        "G723" | "G.723" | "G.723.1" => c(15.0, 16.1),
        "GSM-EFR" | "GSMEFR" => c(5.0, 10.0),
        _ => None,
    }
}

/// Mouth-to-ear delay (ms): one-way network delay + packetisation + a
/// jitter buffer of twice the interarrival jitter.
pub fn mouth_to_ear_ms(one_way_ms: f64, packetisation_ms: f64, jitter_ms: f64) -> f64 {
    one_way_ms.max(0.0) + packetisation_ms.max(0.0) + 2.0 * jitter_ms.max(0.0)
}

/// Delay impairment Id (Cole–Rosenbluth) for a mouth-to-ear delay `ta_ms`.
pub fn delay_impairment(ta_ms: f64) -> f64 {
    let ta = ta_ms.max(0.0);
    let knee = if ta > 177.3 { 0.11 * (ta - 177.3) } else { 0.0 };
    0.024 * ta + knee
}

/// Effective equipment impairment for `loss_pct` (0..=100) lost packets
/// with burst ratio `burst_ratio` (1 for random loss, more for bursts).
pub fn effective_equipment_impairment(c: CodecConstants, loss_pct: f64, burst_ratio: f64) -> f64 {
    let ppl = loss_pct.clamp(0.0, 100.0);
    let burst = burst_ratio.max(1.0);
    c.ie + (95.0 - c.ie) * ppl / (ppl / burst + c.bpl)
}

/// R from its impairments and the advantage factor `a`.
pub fn r_factor(id: f64, ie_eff: f64, a: f64) -> f64 {
    93.2 - id - ie_eff + a
}

/// MOS (conversational quality estimate) from R, within [1, 4.5].
pub fn mos(r: f64) -> f64 {
    if r <= 0.0 {
        return 1.0;
    }
    if r >= 100.0 {
        return 4.5;
    }
    (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6).clamp(1.0, 4.5)
}

/// What a stream measured, for its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Lost packets, per cent of expected.
    pub loss_pct: f64,
    /// Burst ratio of the losses (1: random).
    pub burst_ratio: f64,
    /// Interarrival jitter, ms.
    pub jitter_ms: f64,
    /// Packetisation time (ptime), ms.
    pub packetisation_ms: f64,
    /// Round-trip time from RTCP, ms; `None` when none was measured.
    pub rtt_ms: Option<f64>,
}

/// The score of one direction of a call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Score {
    Rated {
        r: f64,
        mos: f64,
        /// No round-trip time: the delay term has no network delay in it.
        listening_only: bool,
    },
    /// A codec without ITU narrowband constants.
    Unrated,
}

/// The score of a stream carrying a codec with constants `codec`.
pub fn score(codec: Option<CodecConstants>, m: &Measured) -> Score {
    let Some(c) = codec else {
        return Score::Unrated;
    };
    let one_way = m.rtt_ms.map_or(0.0, |rtt| rtt / 2.0);
    let ta = mouth_to_ear_ms(one_way, m.packetisation_ms, m.jitter_ms);
    let r = r_factor(
        delay_impairment(ta),
        effective_equipment_impairment(c, m.loss_pct, m.burst_ratio),
        0.0,
    );
    Score::Rated {
        r,
        mos: mos(r),
        listening_only: m.rtt_ms.is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// The 25 vectors of `../shared/quality` (simplified-model columns),
    /// Ta built as they build it: delay + twice the jitter.
    #[test]
    fn shared_vectors() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/quality/emodel-vectors.json"
        );
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("the E-model vectors are expected at {path}: {e}"));
        let vectors: serde_json::Value = serde_json::from_str(&text).unwrap();
        let vectors = vectors.as_array().unwrap();
        assert_eq!(vectors.len(), 25);
        for v in vectors {
            let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
            let id = v["id"].as_u64().unwrap();
            let c = CodecConstants {
                ie: f("Ie"),
                bpl: f("Bpl"),
            };
            let ta = mouth_to_ear_ms(f("delay_ms"), 0.0, f("jitter_ms"));
            assert!(close(ta, f("Ta_ms"), 1e-9), "#{id} Ta");
            let d = delay_impairment(ta);
            assert!(close(d, f("Id_cr"), 1e-3), "#{id} Id {d}");
            let ie = effective_equipment_impairment(c, f("loss_pct"), f("burst_r"));
            assert!(close(ie, f("Ie_eff"), 1e-3), "#{id} Ie,eff {ie}");
            let r = r_factor(d, ie, f("A"));
            assert!(close(r, f("R_simpl"), 1e-3), "#{id} R {r}");
            assert!(close(mos(r), f("MOS_simpl"), 1e-3), "#{id} MOS {}", mos(r));
            // The codec table agrees with the vector's constants.
            let name = v["codec"].as_str().unwrap();
            let (enc, plc) = match name {
                "G.711" => ("PCMU", false),
                "G.711+PLC" => ("PCMA", true),
                "G.729A+VAD" => ("G729", false),
                "G.723.1+VAD" => ("G723", false),
                "GSM-EFR" => ("GSM-EFR", false),
                other => panic!("codec {other}"),
            };
            assert_eq!(codec_constants(enc, plc), Some(c), "#{id} {name}");
        }
    }

    /// The published values the issue names.
    #[test]
    fn published_values() {
        assert!(close(r_factor(0.0, 0.0, 0.0), 93.2, 1e-9));
        assert!(close(mos(93.2), 4.41, 0.005));
        let g711plc = codec_constants("PCMU", true).unwrap();
        let r = r_factor(
            delay_impairment(100.0),
            effective_equipment_impairment(g711plc, 2.0, 1.0),
            0.0,
        );
        assert!(close(r, 83.79, 0.01) && close(mos(r), 4.16, 0.005), "{r}");
        let g729 = codec_constants("G729", false).unwrap();
        let r = r_factor(
            delay_impairment(100.0),
            effective_equipment_impairment(g729, 2.0, 1.0),
            0.0,
        );
        assert!(close(r, 71.80, 0.01), "{r}");
        let g711 = codec_constants("PCMA", false).unwrap();
        let r = r_factor(
            delay_impairment(60.0),
            effective_equipment_impairment(g711, 5.0, 1.0),
            0.0,
        );
        assert!(close(r, 40.68, 0.01), "{r}");
    }

    /// More loss, burstier loss or more delay never raise the MOS.
    #[test]
    fn mos_never_rises_with_worse_conditions() {
        for (enc, plc) in [
            ("PCMU", true),
            ("PCMU", false),
            ("G729", false),
            ("G723", false),
            ("GSM-EFR", false),
        ] {
            let c = codec_constants(enc, plc).unwrap();
            let at = |loss: f64, burst: f64, ta: f64| {
                mos(r_factor(
                    delay_impairment(ta),
                    effective_equipment_impairment(c, loss, burst),
                    0.0,
                ))
            };
            let mut loss = 0.0;
            while loss <= 100.0 {
                let mut burst = 1.0;
                while burst <= 8.0 {
                    let mut ta = 0.0;
                    while ta <= 800.0 {
                        let m = at(loss, burst, ta);
                        assert!((1.0..=4.5).contains(&m));
                        assert!(at(loss + 0.5, burst, ta) <= m + 1e-12, "{enc} loss {loss}");
                        assert!(
                            at(loss, burst + 0.5, ta) <= m + 1e-12,
                            "{enc} burst {burst}"
                        );
                        assert!(at(loss, burst, ta + 5.0) <= m + 1e-12, "{enc} Ta {ta}");
                        ta += 25.0;
                    }
                    burst += 0.5;
                }
                loss += 2.5;
            }
        }
    }

    #[test]
    fn unrated_codecs_and_listening_only_scores() {
        let m = Measured {
            loss_pct: 34.0,
            burst_ratio: 1.0,
            jitter_ms: 5.0,
            packetisation_ms: 20.0,
            rtt_ms: None,
        };
        // No constants for Opus or G.722: unrated, never 4.5.
        assert_eq!(codec_constants("opus", true), None);
        assert_eq!(score(codec_constants("G722", true), &m), Score::Unrated);
        // 34 % loss on G.711 is bad, whatever one relay once said.
        match score(codec_constants("PCMU", true), &m) {
            Score::Rated {
                mos,
                listening_only,
                ..
            } => {
                assert!(mos < 2.5, "{mos}");
                assert!(listening_only);
            }
            Score::Unrated => panic!("G.711 is rated"),
        }
        let with_rtt = Measured {
            rtt_ms: Some(300.0),
            ..m
        };
        match score(codec_constants("PCMU", true), &with_rtt) {
            Score::Rated { listening_only, .. } => assert!(!listening_only),
            Score::Unrated => panic!(),
        }
    }
}
