//! Announcements: G.711 WAV files read once at start, played in 20 ms
//! frames. Accepted: 8 kHz mono, µ-law (format 7), A-law (format 6) or
//! 16-bit linear PCM (format 1); other files name what is wrong with them.

/// Longest announcement kept in memory (both G.711 encodings: 16 KB/s).
pub const MAX_SECONDS: usize = 300;
/// Samples per 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;

/// A recording in both G.711 encodings, so either can be played.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    ulaw: Vec<u8>,
    alaw: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WavError {
    NotRiff,
    NoFormat,
    NoData,
    Unsupported(String),
    TooLong,
}

impl std::fmt::Display for WavError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WavError::NotRiff => f.write_str("not a RIFF/WAVE file"),
            WavError::NoFormat => f.write_str("no fmt chunk"),
            WavError::NoData => f.write_str("no data chunk"),
            WavError::Unsupported(what) => write!(
                f,
                "{what}; convert it with: sox IN.wav -r 8000 -c 1 -e u-law OUT.wav"
            ),
            WavError::TooLong => write!(f, "longer than {MAX_SECONDS} s"),
        }
    }
}

impl Audio {
    /// Reads a WAV file's bytes.
    pub fn from_wav(b: &[u8]) -> Result<Audio, WavError> {
        if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
            return Err(WavError::NotRiff);
        }
        let mut pos = 12;
        let mut fmt: Option<(u16, u16, u32, u16)> = None;
        let mut data: Option<&[u8]> = None;
        while pos + 8 <= b.len() {
            let id = &b[pos..pos + 4];
            let len = u32::from_le_bytes([b[pos + 4], b[pos + 5], b[pos + 6], b[pos + 7]]) as usize;
            let body_start = pos + 8;
            let body_end = body_start.saturating_add(len).min(b.len());
            let body = &b[body_start..body_end];
            match id {
                b"fmt " if body.len() >= 16 => {
                    let u16at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
                    let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                    fmt = Some((u16at(0), u16at(2), rate, u16at(14)));
                }
                b"data" => data = Some(body),
                _ => {}
            }
            // Chunks are word-aligned.
            pos = body_start.saturating_add(len).saturating_add(len & 1);
        }
        let (format, channels, rate, bits) = fmt.ok_or(WavError::NoFormat)?;
        let data = data.ok_or(WavError::NoData)?;
        if channels != 1 || rate != 8000 {
            return Err(WavError::Unsupported(format!(
                "{channels} channel(s) at {rate} Hz (8000 Hz mono needed)"
            )));
        }
        let linear: Vec<i16> = match (format, bits) {
            (7, 8) => data.iter().map(|&u| ulaw_decode(u)).collect(),
            (6, 8) => data.iter().map(|&a| alaw_decode(a)).collect(),
            (1, 16) => data
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect(),
            _ => {
                return Err(WavError::Unsupported(format!(
                    "WAV format {format} with {bits} bits per sample (G.711 or 16-bit PCM needed)"
                )))
            }
        };
        if linear.len() > MAX_SECONDS * 8000 {
            return Err(WavError::TooLong);
        }
        // A G.711 file plays bit-exact in its own encoding.
        Ok(Audio {
            ulaw: match format {
                7 => data.to_vec(),
                _ => linear.iter().map(|&s| ulaw_encode(s)).collect(),
            },
            alaw: match format {
                6 => data.to_vec(),
                _ => linear.iter().map(|&s| alaw_encode(s)).collect(),
            },
        })
    }

    /// Frame `i` (20 ms), A-law or µ-law; `None` past the end.
    pub fn frame(&self, i: usize, alaw: bool) -> Option<&[u8]> {
        let all = if alaw { &self.alaw } else { &self.ulaw };
        let start = i.checked_mul(FRAME)?;
        if start >= all.len() {
            return None;
        }
        Some(&all[start..(start + FRAME).min(all.len())])
    }

    pub fn frames(&self) -> usize {
        self.ulaw.len().div_ceil(FRAME)
    }
}

/// G.711 µ-law from 16-bit linear (the reference segment algorithm).
pub fn ulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let exponent = (7 - (s as u32).leading_zeros().saturating_sub(17).min(7)) as i32;
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

pub fn ulaw_decode(u: u8) -> i16 {
    let u = !u;
    let sign = u & 0x80;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0f);
    let s = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -s } else { s }) as i16
}

/// G.711 A-law from 16-bit linear.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample) >> 3; // 13-bit magnitude
    let sign = if s >= 0 {
        0xd5
    } else {
        s = -s - 1;
        0x55
    };
    let s = s.min(0x0fff);
    let v = if s < 32 {
        (s >> 1) as u8
    } else {
        let seg = 31 - (s as u32).leading_zeros() - 4; // 1..=7
        ((seg as u8) << 4) | ((s >> seg) & 0x0f) as u8
    };
    v ^ sign
}

pub fn alaw_decode(a: u8) -> i16 {
    let a = a ^ 0x55;
    let seg = i32::from((a >> 4) & 0x07);
    let mut t = i32::from(a & 0x0f) << 4;
    t = match seg {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (seg - 1),
    };
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A WAV file of `data` in `format` (7: µ-law, 6: A-law, 1: PCM).
    pub(crate) fn wav(format: u16, bits: u16, rate: u32, channels: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&format.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * u32::from(bits / 8)).to_le_bytes());
        v.extend_from_slice(&(bits / 8).to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn g711_round_trips_within_its_quantisation() {
        for s in (-32768i32..32768).step_by(7) {
            let s = s as i16;
            let u = ulaw_decode(ulaw_encode(s));
            let a = alaw_decode(alaw_encode(s));
            // Quantisation error grows with the segment: within 1/16 of the
            // value, plus the smallest step.
            let tol = |x: i16| (i32::from(x).abs() / 16 + 40) as i16;
            assert!(
                (i32::from(u) - i32::from(s)).abs() <= i32::from(tol(s)),
                "ulaw {s} -> {u}"
            );
            assert!(
                (i32::from(a) - i32::from(s)).abs() <= i32::from(tol(s)),
                "alaw {s} -> {a}"
            );
        }
        // Known code points (ITU-T G.711 tables): silence.
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(alaw_encode(0), 0xd5);
        for c in 0..=255u8 {
            assert_eq!(
                ulaw_encode(ulaw_decode(c)),
                if c == 0x7f { 0xff } else { c }
            );
            assert_eq!(alaw_encode(alaw_decode(c)), c);
        }
    }

    #[test]
    fn reads_g711_and_pcm_and_frames_them() {
        let ulaw: Vec<u8> = (0..400).map(|i| (i % 256) as u8).collect();
        let a = Audio::from_wav(&wav(7, 8, 8000, 1, &ulaw)).unwrap();
        assert_eq!(a.frames(), 3);
        assert_eq!(a.frame(0, false).unwrap(), &ulaw[..160]);
        assert_eq!(a.frame(2, false).unwrap().len(), 80);
        assert!(a.frame(3, false).is_none());
        let pcm: Vec<u8> = (0..320i16).flat_map(|i| (i * 50).to_le_bytes()).collect();
        let p = Audio::from_wav(&wav(1, 16, 8000, 1, &pcm)).unwrap();
        assert_eq!(p.frames(), 2);
        assert_eq!(p.frame(0, true).unwrap()[1], alaw_encode(50));
    }

    #[test]
    fn refuses_what_it_cannot_play_and_says_why() {
        assert_eq!(Audio::from_wav(b"hello"), Err(WavError::NotRiff));
        let e = Audio::from_wav(&wav(1, 16, 16000, 1, &[0; 10])).unwrap_err();
        assert!(e.to_string().contains("16000 Hz"), "{e}");
        let e = Audio::from_wav(&wav(3, 32, 8000, 1, &[0; 8])).unwrap_err();
        assert!(e.to_string().contains("format 3"), "{e}");
        // Truncations never panic.
        let good = wav(7, 8, 8000, 1, &[1; 200]);
        for n in 0..good.len() {
            let _ = Audio::from_wav(&good[..n]);
        }
    }
}
