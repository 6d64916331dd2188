//! RTP and RTCP packet views (RFC 3550) and rtcp-mux demultiplexing
//! (RFC 5761). Parsing only reads: nothing is copied but the few fixed
//! fields a relay needs, nothing allocates, and no input can panic.

/// Why a packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketError {
    /// Shorter than the fixed header.
    TooShort,
    /// Version is not 2.
    BadVersion,
    /// The CSRC list runs past the end of the packet.
    BadCsrc,
    /// The header extension runs past the end of the packet.
    BadExtension,
    /// Padding count of 0 or larger than what it pads.
    BadPadding,
    /// RTCP: the sub-packet lengths do not add up to the packet.
    BadLength,
    /// RTCP: the first sub-packet is neither SR nor RR.
    FirstNotReport,
    /// RTCP: the padding bit on a sub-packet other than the last.
    MisplacedPadding,
    /// RTCP: the SR/RR is too short for its sender info and report count.
    BadReportCount,
}

impl PacketError {
    /// A short label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::BadVersion => "bad_version",
            Self::BadCsrc => "bad_csrc",
            Self::BadExtension => "bad_extension",
            Self::BadPadding => "bad_padding",
            Self::BadLength => "bad_length",
            Self::FirstNotReport => "first_not_report",
            Self::MisplacedPadding => "misplaced_padding",
            Self::BadReportCount => "bad_report_count",
        }
    }
}

impl std::fmt::Display for PacketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for PacketError {}

/// RTCP packet types (RFC 3550 §12.1).
pub const RTCP_SR: u8 = 200;
pub const RTCP_RR: u8 = 201;
pub const RTCP_SDES: u8 = 202;
pub const RTCP_BYE: u8 = 203;
pub const RTCP_APP: u8 = 204;

/// RFC 5761 §4: with rtcp-mux, RTCP is told from RTP by the second octet,
/// which is the RTCP packet type, or for RTP the marker bit and payload
/// type; 192–223 is RTCP (RTP payload types 64–95 are not used then).
/// Only the demultiplexing: the parsers check the rest.
pub fn is_rtcp(pkt: &[u8]) -> bool {
    matches!(pkt.get(1), Some(192..=223))
}

/// The fixed fields of an RTP packet and where its payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Fixed header + CSRCs + extension: where the payload starts.
    pub header_len: usize,
    /// Payload bytes, padding excluded.
    pub payload_len: usize,
}

impl RtpHeader {
    /// The payload's byte range in the packet this header was parsed from.
    pub fn payload_range(&self) -> std::ops::Range<usize> {
        self.header_len..self.header_len + self.payload_len
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes(s.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(s.try_into().ok()?))
}

/// Parses and checks an RTP packet (RFC 3550 §5.1): version 2, and the
/// CSRC list, the header extension and the padding all inside the packet.
pub fn parse_rtp(pkt: &[u8]) -> Result<RtpHeader, PacketError> {
    let (Some(&b0), Some(&b1), Some(seq), Some(timestamp), Some(ssrc)) = (
        pkt.first(),
        pkt.get(1),
        be16(pkt, 2),
        be32(pkt, 4),
        be32(pkt, 8),
    ) else {
        return Err(PacketError::TooShort);
    };
    if b0 >> 6 != 2 {
        return Err(PacketError::BadVersion);
    }
    let len = pkt.len();
    let mut off = 12 + 4 * usize::from(b0 & 0x0f);
    if off > len {
        return Err(PacketError::BadCsrc);
    }
    if b0 & 0x10 != 0 {
        // 16-bit profile word, then the length in 32-bit words after it.
        let words = be16(pkt, off + 2).ok_or(PacketError::BadExtension)?;
        off += 4 + 4 * usize::from(words);
        if off > len {
            return Err(PacketError::BadExtension);
        }
    }
    let mut end = len;
    if b0 & 0x20 != 0 {
        // The last octet counts the padding, itself included.
        let pad = usize::from(pkt.last().copied().unwrap_or(0));
        if pad == 0 || pad > len - off {
            return Err(PacketError::BadPadding);
        }
        end -= pad;
    }
    Ok(RtpHeader {
        marker: b1 & 0x80 != 0,
        payload_type: b1 & 0x7f,
        seq,
        timestamp,
        ssrc,
        header_len: off,
        payload_len: end - off,
    })
}

/// Writes a 12-byte RTP header: version 2, no padding, extension or CSRC.
pub fn write_rtp_header(buf: &mut [u8; 12], marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) {
    buf[0] = 0x80;
    buf[1] = (u8::from(marker) << 7) | (pt & 0x7f);
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// The sender info of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp (32.32 fixed point seconds since 1900).
    pub ntp: u64,
    pub rtp_ts: u32,
    pub packets: u32,
    pub octets: u32,
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed: duplicates can make it < 0).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR; 0 if none.
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

/// RC is 5 bits.
pub const MAX_REPORT_BLOCKS: usize = 31;

/// What a relay needs from a compound RTCP packet: the first SR/RR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtcp {
    /// SSRC of the SR/RR sender.
    pub sender_ssrc: u32,
    /// Present when the first packet is an SR.
    pub sr: Option<SenderInfo>,
    /// The compound packet holds a BYE.
    pub bye: bool,
    blocks: [ReportBlock; MAX_REPORT_BLOCKS],
    n_blocks: u8,
}

impl Rtcp {
    /// The report blocks of the first SR/RR.
    pub fn report_blocks(&self) -> &[ReportBlock] {
        &self.blocks[..usize::from(self.n_blocks).min(MAX_REPORT_BLOCKS)]
    }
}

/// The middle 32 bits of an NTP timestamp, as LSR carries it.
pub fn ntp_middle32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Parses and checks a compound RTCP packet as RFC 3550 A.2 does: every
/// sub-packet version 2, their lengths exactly filling the packet, the
/// first an SR or RR; padding only on the last sub-packet (A.2 checks the
/// first; a padded middle packet would be as wrong), its count inside it.
pub fn parse_rtcp(pkt: &[u8]) -> Result<Rtcp, PacketError> {
    if pkt.len() < 8 {
        return Err(PacketError::TooShort);
    }
    let mut out = Rtcp {
        sender_ssrc: 0,
        sr: None,
        bye: false,
        blocks: [ReportBlock::default(); MAX_REPORT_BLOCKS],
        n_blocks: 0,
    };
    let mut off = 0usize;
    let mut first = true;
    while off < pkt.len() {
        let (Some(&b0), Some(&pt), Some(words)) =
            (pkt.get(off), pkt.get(off + 1), be16(pkt, off + 2))
        else {
            return Err(PacketError::BadLength);
        };
        if b0 >> 6 != 2 {
            return Err(PacketError::BadVersion);
        }
        // The length is in 32-bit words minus one, header included.
        let size = (usize::from(words) + 1) * 4;
        let end = off.checked_add(size).ok_or(PacketError::BadLength)?;
        if end > pkt.len() {
            return Err(PacketError::BadLength);
        }
        let mut body_end = end;
        if b0 & 0x20 != 0 {
            if end != pkt.len() {
                return Err(PacketError::MisplacedPadding);
            }
            let pad = usize::from(pkt.get(end - 1).copied().unwrap_or(0));
            if pad == 0 || pad > size - 4 {
                return Err(PacketError::BadPadding);
            }
            body_end -= pad;
        }
        if first {
            if pt != RTCP_SR && pt != RTCP_RR {
                return Err(PacketError::FirstNotReport);
            }
            let rc = usize::from(b0 & 0x1f);
            let sub = pkt.get(off..body_end).ok_or(PacketError::BadLength)?;
            read_report(&mut out, sub, pt == RTCP_SR, rc)?;
            first = false;
        } else if pt == RTCP_BYE {
            out.bye = true;
        }
        off = end;
    }
    Ok(out)
}

/// Reads the SR/RR `sub` (header included, padding excluded).
fn read_report(out: &mut Rtcp, sub: &[u8], is_sr: bool, rc: usize) -> Result<(), PacketError> {
    let blocks_at = if is_sr { 28 } else { 8 };
    // Bytes after the blocks are allowed: profile-specific extensions.
    if sub.len() < blocks_at + 24 * rc {
        return Err(PacketError::BadReportCount);
    }
    let short = PacketError::BadReportCount;
    out.sender_ssrc = be32(sub, 4).ok_or(short)?;
    if is_sr {
        out.sr = Some(SenderInfo {
            ntp: be64(sub, 8).ok_or(short)?,
            rtp_ts: be32(sub, 16).ok_or(short)?,
            packets: be32(sub, 20).ok_or(short)?,
            octets: be32(sub, 24).ok_or(short)?,
        });
    }
    for (i, slot) in out.blocks.iter_mut().take(rc).enumerate() {
        let at = blocks_at + 24 * i;
        let lost = be32(sub, at + 4).ok_or(short)?;
        *slot = ReportBlock {
            ssrc: be32(sub, at).ok_or(short)?,
            fraction_lost: (lost >> 24) as u8,
            // Sign-extend the low 24 bits.
            cumulative_lost: ((lost << 8) as i32) >> 8,
            highest_seq: be32(sub, at + 8).ok_or(short)?,
            jitter: be32(sub, at + 12).ok_or(short)?,
            lsr: be32(sub, at + 16).ok_or(short)?,
            dlsr: be32(sub, at + 20).ok_or(short)?,
        };
    }
    out.n_blocks = rc.min(MAX_REPORT_BLOCKS) as u8;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An RTP packet: header, `csrc` CSRCs, an extension of `ext_words`
    /// words when given, `payload` bytes and `pad` padding bytes.
    pub(crate) fn rtp(csrc: u8, ext_words: Option<u16>, payload: usize, pad: u8) -> Vec<u8> {
        let mut h = [0u8; 12];
        write_rtp_header(&mut h, true, 0, 7, 160, 0xdead_beef);
        let mut p = h.to_vec();
        p[0] |= csrc & 0x0f;
        for i in 0..csrc {
            p.extend_from_slice(&u32::from(i).to_be_bytes());
        }
        if let Some(w) = ext_words {
            p[0] |= 0x10;
            p.extend_from_slice(&[0xbe, 0xde]);
            p.extend_from_slice(&w.to_be_bytes());
            p.extend(std::iter::repeat_n(0u8, 4 * usize::from(w)));
        }
        p.extend(std::iter::repeat_n(0x55u8, payload));
        if pad > 0 {
            p[0] |= 0x20;
            p.extend(std::iter::repeat_n(0u8, usize::from(pad - 1)));
            p.push(pad);
        }
        p
    }

    pub(crate) fn block(ssrc: u32, lost: u32, lsr: u32, dlsr: u32) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [ssrc, lost, 0x0001_0010, 42, lsr, dlsr] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        b
    }

    /// An SR (when `ntp` is given) or RR with report blocks.
    pub(crate) fn report(ssrc: u32, ntp: Option<u64>, blocks: &[Vec<u8>]) -> Vec<u8> {
        let pt = if ntp.is_some() { RTCP_SR } else { RTCP_RR };
        let mut p = vec![0x80 | blocks.len() as u8, pt, 0, 0];
        p.extend_from_slice(&ssrc.to_be_bytes());
        if let Some(ntp) = ntp {
            p.extend_from_slice(&ntp.to_be_bytes());
            for w in [8000u32, 50, 8000] {
                p.extend_from_slice(&w.to_be_bytes());
            }
        }
        for b in blocks {
            p.extend_from_slice(b);
        }
        set_len(&mut p);
        p
    }

    fn set_len(p: &mut [u8]) {
        let words = (p.len() / 4 - 1) as u16;
        p[2..4].copy_from_slice(&words.to_be_bytes());
    }

    fn sdes(ssrc: u32) -> Vec<u8> {
        // One chunk: SSRC, CNAME "ab", END, padded to a word.
        let mut p = vec![0x81, RTCP_SDES, 0, 0];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[1, 2, b'a', b'b', 0, 0, 0, 0]);
        set_len(&mut p);
        p
    }

    fn bye(ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x81, RTCP_BYE, 0, 1];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p
    }

    #[test]
    fn rtp_plain_and_with_options() {
        let h = parse_rtp(&rtp(0, None, 160, 0)).unwrap();
        assert_eq!(
            h,
            RtpHeader {
                marker: true,
                payload_type: 0,
                seq: 7,
                timestamp: 160,
                ssrc: 0xdead_beef,
                header_len: 12,
                payload_len: 160,
            }
        );
        let p = rtp(2, Some(3), 20, 4);
        let h = parse_rtp(&p).unwrap();
        assert_eq!((h.header_len, h.payload_len), (12 + 8 + 4 + 12, 20));
        assert!(p[h.payload_range()].iter().all(|&b| b == 0x55));
        // Empty payload, all-padding, extension of 0 words: all valid.
        assert_eq!(parse_rtp(&rtp(0, Some(0), 0, 1)).unwrap().payload_len, 0);
        assert_eq!(parse_rtp(&rtp(15, None, 0, 0)).unwrap().header_len, 72);
    }

    #[test]
    fn rtp_malformed_rejected() {
        assert_eq!(parse_rtp(&[]), Err(PacketError::TooShort));
        assert_eq!(parse_rtp(&[0x80; 11]), Err(PacketError::TooShort));
        let mut p = rtp(0, None, 10, 0);
        p[0] = (p[0] & 0x3f) | 0x40;
        assert_eq!(parse_rtp(&p), Err(PacketError::BadVersion));
        p[0] &= 0x3f;
        assert_eq!(parse_rtp(&p), Err(PacketError::BadVersion));
        // CSRC count 3 with two CSRCs' worth of bytes.
        let mut p = rtp(0, None, 8, 0);
        p[0] |= 3;
        assert_eq!(parse_rtp(&p), Err(PacketError::BadCsrc));
        // Extension header cut short, and extension longer than the packet.
        let mut p = rtp(0, None, 2, 0);
        p[0] |= 0x10;
        assert_eq!(parse_rtp(&p), Err(PacketError::BadExtension));
        let mut p = rtp(0, Some(1), 0, 0);
        p[15] = 2;
        assert_eq!(parse_rtp(&p), Err(PacketError::BadExtension));
        // Padding of 0, and padding longer than the payload.
        let mut p = rtp(0, None, 4, 0);
        p[0] |= 0x20;
        p[15] = 0;
        assert_eq!(parse_rtp(&p), Err(PacketError::BadPadding));
        p[15] = 5;
        assert_eq!(parse_rtp(&p), Err(PacketError::BadPadding));
        p[15] = 4;
        assert_eq!(parse_rtp(&p).unwrap().payload_len, 0);
        // Padding may not eat into the extension.
        let mut p = rtp(0, Some(1), 0, 0);
        p[0] |= 0x20;
        let last = p.len() - 1;
        p[last] = 1;
        assert_eq!(parse_rtp(&p), Err(PacketError::BadPadding));
    }

    #[test]
    fn rtcp_sr_with_sdes_and_bye() {
        let ntp = 0xe8f1_2345_6789_abcd_u64;
        let lost = (25u32 << 24) | 0x00ff_fffe; // fraction 25, cumulative -2
        let mut p = report(0x1111, Some(ntp), &[block(0x2222, lost, 0xabcd, 0x18000)]);
        p.extend(sdes(0x1111));
        let r = parse_rtcp(&p).unwrap();
        assert_eq!(r.sender_ssrc, 0x1111);
        assert_eq!(
            r.sr,
            Some(SenderInfo {
                ntp,
                rtp_ts: 8000,
                packets: 50,
                octets: 8000
            })
        );
        assert!(!r.bye);
        assert_eq!(
            r.report_blocks(),
            &[ReportBlock {
                ssrc: 0x2222,
                fraction_lost: 25,
                cumulative_lost: -2,
                highest_seq: 0x0001_0010,
                jitter: 42,
                lsr: 0xabcd,
                dlsr: 0x18000,
            }]
        );
        assert_eq!(ntp_middle32(ntp), 0x2345_6789);
        // RR with no blocks, then SDES and BYE.
        let mut p = report(0x3333, None, &[]);
        p.extend(sdes(0x3333));
        p.extend(bye(0x3333));
        let r = parse_rtcp(&p).unwrap();
        assert_eq!((r.sender_ssrc, r.sr, r.bye), (0x3333, None, true));
        assert!(r.report_blocks().is_empty());
        // 31 blocks: the most RC can say.
        let blocks: Vec<_> = (0..31).map(|i| block(i, 0, 0, 0)).collect();
        let r = parse_rtcp(&report(1, None, &blocks)).unwrap();
        assert_eq!(r.report_blocks().len(), 31);
        assert_eq!(r.report_blocks()[30].ssrc, 30);
    }

    #[test]
    fn rtcp_compound_validation() {
        // First packet not SR/RR.
        let mut p = sdes(1);
        p.extend(report(1, None, &[]));
        assert_eq!(parse_rtcp(&p), Err(PacketError::FirstNotReport));
        // Length running past the end; lengths not meeting the next
        // header; trailing bytes.
        let mut p = report(1, Some(5), &[]);
        p[3] += 1;
        assert_eq!(parse_rtcp(&p), Err(PacketError::BadLength));
        let mut p = report(1, Some(5), &[]);
        p.extend(sdes(1));
        let good = p.clone();
        p[3] -= 1;
        assert!(parse_rtcp(&p).is_err());
        p[3] += 2;
        assert!(parse_rtcp(&p).is_err());
        let mut p = good.clone();
        p.extend_from_slice(&[0x80, 0]);
        assert_eq!(parse_rtcp(&p), Err(PacketError::BadLength));
        // A second sub-packet of another version.
        let mut p = good.clone();
        p[28] = 0x41;
        assert_eq!(parse_rtcp(&p), Err(PacketError::BadVersion));
        // Padding on the first of two: refused; on the last: fine.
        let mut p = good.clone();
        p[0] |= 0x20;
        assert_eq!(parse_rtcp(&p), Err(PacketError::MisplacedPadding));
        let mut p = report(1, None, &[]);
        let mut s = sdes(1);
        s[0] |= 0x20;
        s.extend_from_slice(&[0, 0, 0, 4]);
        set_len(&mut s);
        p.extend(s);
        assert!(parse_rtcp(&p).is_ok());
        let last = p.len() - 1;
        p[last] = 0;
        assert_eq!(parse_rtcp(&p), Err(PacketError::BadPadding));
        p[last] = 17;
        assert_eq!(parse_rtcp(&p), Err(PacketError::BadPadding));
        // RC of 2 with one block.
        let mut p = report(1, None, &[block(2, 0, 0, 0)]);
        p[0] += 1;
        assert_eq!(parse_rtcp(&p), Err(PacketError::BadReportCount));
        // A padded lone RR whose padding would hide its block.
        let mut p = report(1, None, &[block(2, 0, 0, 0)]);
        p[0] |= 0x20;
        p.extend_from_slice(&[0, 0, 0, 4]);
        set_len(&mut p);
        assert_eq!(parse_rtcp(&p).unwrap().report_blocks().len(), 1);
        let last = p.len() - 1;
        p[last] = 8;
        assert_eq!(parse_rtcp(&p), Err(PacketError::BadReportCount));
        assert_eq!(parse_rtcp(&[0x80, 201, 0, 0]), Err(PacketError::TooShort));
    }

    #[test]
    fn rtcp_mux_demux() {
        for pt in [RTCP_SR, RTCP_RR, RTCP_SDES, RTCP_BYE, RTCP_APP, 205, 206] {
            assert!(is_rtcp(&[0x80, pt, 0, 0]), "{pt}");
        }
        assert!(is_rtcp(&report(1, None, &[])));
        assert!(!is_rtcp(&rtp(0, None, 10, 0)));
        // RTP payload types 0..=63 and 96..=127, marker set or not.
        for b1 in (0u8..64).chain(96..128).flat_map(|pt| [pt, pt | 0x80]) {
            assert!(!is_rtcp(&[0x80, b1]), "{b1}");
        }
        assert!(!is_rtcp(&[]) && !is_rtcp(&[0x80]));
    }

    /// A deterministic xorshift64 for fuzz-style tests without dependencies.
    pub(crate) struct XorShift(pub u64);

    impl XorShift {
        pub(crate) fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
    }

    #[test]
    fn no_panic_on_truncations_and_noise() {
        let mut rr = report(9, None, &[block(3, 1, 2, 3)]);
        rr.extend(sdes(9));
        rr.extend(bye(9));
        let valid = [
            rtp(0, None, 160, 0),
            rtp(3, Some(2), 17, 3),
            report(7, Some(1 << 40), &[block(1, 2, 3, 4), block(5, 6, 7, 8)]),
            rr,
        ];
        for v in &valid {
            for n in 0..=v.len() {
                let _ = parse_rtp(&v[..n]);
                let _ = parse_rtcp(&v[..n]);
                let _ = is_rtcp(&v[..n]);
            }
        }
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut buf = [0u8; 256];
        for round in 0..50_000 {
            let n = (rng.next_u64() % 256) as usize;
            for b in &mut buf[..n] {
                *b = rng.next_u64() as u8;
            }
            // Half the time, make it look like version 2 to get deeper.
            if round % 2 == 0 && n > 0 {
                buf[0] = (buf[0] & 0x3f) | 0x80;
            }
            let _ = parse_rtp(&buf[..n]);
            let _ = parse_rtcp(&buf[..n]);
            // And bit flips of valid packets.
            let v = &valid[round % valid.len()];
            let mut m = v.clone();
            let i = (rng.next_u64() as usize) % m.len();
            m[i] ^= 1 << (rng.next_u64() % 8);
            if let Ok(h) = parse_rtp(&m) {
                assert!(h.payload_range().end <= m.len());
            }
            if let Ok(r) = parse_rtcp(&m) {
                assert!(r.report_blocks().len() <= MAX_REPORT_BLOCKS);
            }
        }
    }
}
