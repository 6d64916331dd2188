//! Per-stream statistics as RFC 3550 defines them: sequence validation and
//! extended sequence numbers (A.1), expected and lost packets (A.3),
//! interarrival jitter (A.8), the round-trip time from SR/RR (§6.4.1),
//! and the burst ratio of the losses (two-state model, ITU-T G.113 /
//! RFC 3611 §4.7.2). Sans-IO: arrival times are passed in, in µs of any
//! monotonic clock. Every structure is of fixed size.

use crate::rtp::{ntp_middle32, RtpHeader};

/// A.1: a gap of up to this many packets is loss, not a restart.
pub const MAX_DROPOUT: u16 = 3000;
/// A.1: a packet up to this far behind the highest is reordering.
pub const MAX_MISORDER: u16 = 100;
/// A.1: sequential packets needed before a source is valid.
pub const MIN_SEQUENTIAL: u32 = 2;
/// Extended sequence numbers remembered behind the highest, to tell
/// duplicates and to settle loss runs for the burst ratio. A power of two.
pub const WINDOW: u64 = 1024;

const WORDS: usize = (WINDOW / 64) as usize;

/// What to do with an RTP packet, and whether it counted.
///
/// Forward everything but [`Accept::Rejected`]: duplicates and late
/// packets are harmless to the receiver (its jitter buffer drops them) but
/// count in neither `packets()` nor the jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// New (in order, after a gap, or reordered within `MAX_MISORDER`):
    /// counted.
    Fresh,
    /// Before the source is valid (A.1 probation): not counted.
    Probation,
    /// Already received: counted in `duplicates()` only.
    Duplicate,
    /// Behind the highest by `MAX_MISORDER` or more but within `WINDOW`,
    /// or older than the first counted packet: counted in `late()` only.
    Late,
    /// Drop it: counted in `rejected()` only.
    Rejected(Reject),
}

impl Accept {
    /// Whether a relay should pass the packet on.
    pub fn forward(&self) -> bool {
        !matches!(self, Accept::Rejected(_))
    }
}

/// Why a packet was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// A.1's "very large jump" (ahead by `MAX_DROPOUT` or more, or behind
    /// by `WINDOW` or more), not yet confirmed by the next packet.
    SeqJump,
    /// Another SSRC than the stream's, not yet confirmed by the next packet.
    SsrcChange,
}

impl Reject {
    /// A short label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reject::SeqJump => "seq_jump",
            Reject::SsrcChange => "ssrc_change",
        }
    }
}

/// Two-state (Gilbert) loss model counts over the sequence space in order.
#[derive(Debug, Clone, Copy, Default)]
struct Gilbert {
    /// State of the previous sequence number (true: received).
    prev: Option<bool>,
    /// Steps out of the received state, and those to lost.
    from_recv: u64,
    recv_to_lost: u64,
    /// Steps out of the lost state, and those to received.
    from_lost: u64,
    lost_to_recv: u64,
}

impl Gilbert {
    fn step(&mut self, received: bool) {
        match (self.prev, received) {
            (Some(true), r) => {
                self.from_recv += 1;
                self.recv_to_lost += u64::from(!r);
            }
            (Some(false), r) => {
                self.from_lost += 1;
                self.lost_to_recv += u64::from(r);
            }
            (None, _) => {}
        }
        self.prev = Some(received);
    }

    /// `n` lost in a row, in O(1).
    fn lost_run(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.step(false);
        // The remaining n - 1 are steps lost → lost.
        self.from_lost += n - 1;
    }

    /// BurstR = 1 / (p + q), at least 1; 1 without loss.
    fn burst_ratio(&self) -> f64 {
        if self.recv_to_lost == 0 || self.from_recv == 0 {
            return 1.0;
        }
        let p = self.recv_to_lost as f64 / self.from_recv as f64;
        // Every loss run is followed by a received packet (the highest
        // sequence number always is one), so from_lost > 0 here.
        let q = if self.from_lost == 0 {
            0.0
        } else {
            self.lost_to_recv as f64 / self.from_lost as f64
        };
        (1.0 / (p + q)).max(1.0)
    }
}

/// Statistics of one RTP stream (one direction of one leg), fed the
/// packets that parsed, in arrival order.
#[derive(Debug, Clone)]
pub struct StreamStats {
    started: bool,
    ssrc: u32,
    /// A.1 probation: packets still needed; 0 once valid.
    probation: u32,
    max_seq: u16,
    /// A.1 `bad_seq`, with the SSRC it must come from.
    bad: Option<(u32, u16)>,
    /// Wraps of the sequence number, times 65536.
    cycles: u64,
    /// Extended sequence numbers of this segment (since validation or
    /// the last resync): the first counted and the highest.
    base: u64,
    ext_max: u64,
    seg_received: u64,
    /// Expected and received of the segments before a resync.
    prior_expected: u64,
    prior_received: u64,
    /// Received bits of extended sequence numbers (ext_max - WINDOW, ext_max].
    bits: [u64; WORDS],
    /// Loss model of the sequence numbers that left the window.
    gilbert: Gilbert,
    bytes: u64,
    duplicates: u64,
    late: u64,
    rejected: u64,
    resyncs: u64,
    /// A.8 jitter, in timestamp units of `clock_rate`.
    jitter: f64,
    clock_rate: u32,
    /// The previous packet's relative transit: whole timestamp units
    /// (mod 2^32) and the fraction.
    transit: Option<(u32, f64)>,
    last_pt: Option<u8>,
}

impl Default for StreamStats {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamStats {
    pub const fn new() -> Self {
        StreamStats {
            started: false,
            ssrc: 0,
            probation: 0,
            max_seq: 0,
            bad: None,
            cycles: 0,
            base: 0,
            ext_max: 0,
            seg_received: 0,
            prior_expected: 0,
            prior_received: 0,
            bits: [0; WORDS],
            gilbert: Gilbert {
                prev: None,
                from_recv: 0,
                recv_to_lost: 0,
                from_lost: 0,
                lost_to_recv: 0,
            },
            bytes: 0,
            duplicates: 0,
            late: 0,
            rejected: 0,
            resyncs: 0,
            jitter: 0.0,
            clock_rate: 0,
            transit: None,
            last_pt: None,
        }
    }

    /// Takes one parsed RTP packet that arrived at `arrival_us` (µs, any
    /// monotonic clock) and whose payload type has clock rate `clock_rate`
    /// (Hz; 0 if unknown: no jitter is computed then).
    pub fn on_rtp(&mut self, h: &RtpHeader, arrival_us: u64, clock_rate: u32) -> Accept {
        let seq = h.seq;
        if !self.started || (self.probation > 0 && h.ssrc != self.ssrc) {
            // A.1: init_seq, max_seq = seq - 1, probation = MIN_SEQUENTIAL.
            // A source that never became valid is just replaced.
            self.started = true;
            self.ssrc = h.ssrc;
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        if h.ssrc != self.ssrc {
            // Like A.1's jump: a new source must send two packets in a row
            // before it replaces this one, so stray or injected packets
            // from other SSRCs neither pass nor disturb the counts.
            if self.bad == Some((h.ssrc, seq)) {
                return self.resync(h, arrival_us, clock_rate);
            }
            self.bad = Some((h.ssrc, seq.wrapping_add(1)));
            self.rejected += 1;
            return Accept::Rejected(Reject::SsrcChange);
        }
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.begin_segment(seq);
                    self.count(h, arrival_us, clock_rate);
                    return Accept::Fresh;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            self.last_pt = Some(h.payload_type);
            return Accept::Probation;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta == 0 {
            // A.1 would count it; it is the highest one again.
            return self.duplicate(h);
        }
        if udelta < MAX_DROPOUT {
            // In order, with a permissible gap.
            if seq < self.max_seq {
                self.cycles += 1 << 16;
            }
            self.max_seq = seq;
            self.advance(self.cycles + u64::from(seq));
            self.count(h, arrival_us, clock_rate);
            return Accept::Fresh;
        }
        let behind = 0x1_0000 - u64::from(udelta);
        if behind < u64::from(MAX_MISORDER) {
            // Reordered: count it once.
            let Some(ext) = self.ext_max.checked_sub(behind).filter(|&e| e >= self.base) else {
                self.last_pt = Some(h.payload_type);
                self.late += 1;
                return Accept::Late;
            };
            if self.bit(ext) {
                return self.duplicate(h);
            }
            self.set_bit(ext);
            self.count(h, arrival_us, clock_rate);
            return Accept::Fresh;
        }
        if behind < WINDOW {
            // A.1 counts this as a jump; a packet this late is more likely
            // delayed than a restart, and a delayed burst of them must not
            // resync the stream onto old numbers. Pass it, don't count it.
            self.last_pt = Some(h.payload_type);
            self.late += 1;
            return Accept::Late;
        }
        // A very large jump: resync if the previous packet announced this
        // one (the source restarted), else remember it and drop.
        if self.bad == Some((h.ssrc, seq)) {
            return self.resync(h, arrival_us, clock_rate);
        }
        self.bad = Some((h.ssrc, seq.wrapping_add(1)));
        self.rejected += 1;
        Accept::Rejected(Reject::SeqJump)
    }

    fn duplicate(&mut self, h: &RtpHeader) -> Accept {
        self.last_pt = Some(h.payload_type);
        self.duplicates += 1;
        Accept::Duplicate
    }

    /// A.1 init_seq, keeping the totals: a new segment starts at `seq`.
    fn begin_segment(&mut self, seq: u16) {
        self.max_seq = seq;
        self.bad = None;
        self.cycles = 0;
        self.base = u64::from(seq);
        self.ext_max = self.base;
        self.seg_received = 0;
        self.bits = [0; WORDS];
        self.set_bit(self.base);
    }

    fn resync(&mut self, h: &RtpHeader, arrival_us: u64, clock_rate: u32) -> Accept {
        // Settle the old segment; the loss model has no step across it.
        let lo = self.window_low();
        for e in lo..=self.ext_max {
            let r = self.bit(e);
            self.gilbert.step(r);
        }
        self.gilbert.prev = None;
        self.prior_expected += self.ext_max - self.base + 1;
        self.prior_received += self.seg_received;
        self.ssrc = h.ssrc;
        self.resyncs += 1;
        // The timestamps restart too: no transit difference across it.
        self.transit = None;
        self.begin_segment(h.seq);
        self.count(h, arrival_us, clock_rate);
        Accept::Fresh
    }

    /// The lowest extended sequence number still in the window.
    fn window_low(&self) -> u64 {
        (self.ext_max + 1).saturating_sub(WINDOW).max(self.base)
    }

    /// Moves the highest to `new_max`, settling what leaves the window
    /// into the loss model in sequence order.
    fn advance(&mut self, new_max: u64) {
        let old_max = self.ext_max;
        let leaving_end = (new_max + 1).saturating_sub(WINDOW);
        for e in self.window_low()..leaving_end.min(old_max + 1) {
            let r = self.bit(e);
            self.gilbert.step(r);
            self.clear_bit(e);
        }
        // A gap wider than the window: never seen, all lost.
        self.gilbert
            .lost_run(leaving_end.saturating_sub(old_max + 1));
        self.ext_max = new_max;
        self.set_bit(new_max);
    }

    fn bit(&self, e: u64) -> bool {
        let i = (e % WINDOW) as usize;
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_bit(&mut self, e: u64) {
        let i = (e % WINDOW) as usize;
        self.bits[i / 64] |= 1 << (i % 64);
    }

    fn clear_bit(&mut self, e: u64) {
        let i = (e % WINDOW) as usize;
        self.bits[i / 64] &= !(1 << (i % 64));
    }

    fn count(&mut self, h: &RtpHeader, arrival_us: u64, clock_rate: u32) {
        self.seg_received += 1;
        self.bytes += h.payload_len as u64;
        self.last_pt = Some(h.payload_type);
        self.update_jitter(h.timestamp, arrival_us, clock_rate);
    }

    /// A.8: D = (Rj - Ri) - (Sj - Si) in timestamp units, J += (|D| - J)/16.
    fn update_jitter(&mut self, ts: u32, arrival_us: u64, clock_rate: u32) {
        if clock_rate == 0 {
            return;
        }
        if clock_rate != self.clock_rate {
            // A codec change: keep J in the new units, start transit over.
            if self.clock_rate != 0 {
                self.jitter *= f64::from(clock_rate) / f64::from(self.clock_rate);
            }
            self.clock_rate = clock_rate;
            self.transit = None;
        }
        // Integer arithmetic: µs since an epoch times 48 kHz overflows
        // f64's 53 bits. Only the transit difference matters, so the whole
        // units are taken mod 2^32 like the timestamps.
        let units = u128::from(arrival_us) * u128::from(clock_rate);
        let whole = (units / 1_000_000) as u32;
        let frac = (units % 1_000_000) as f64 / 1e6;
        let transit = (whole.wrapping_sub(ts), frac);
        if let Some((pw, pf)) = self.transit {
            let d = f64::from(transit.0.wrapping_sub(pw) as i32) + (transit.1 - pf);
            self.jitter += (d.abs() - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }

    /// The SSRC of the stream (0 before the first packet).
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Whether the source passed probation.
    pub fn valid(&self) -> bool {
        self.started && self.probation == 0
    }

    /// Packets received and counted, each sequence number once.
    pub fn packets(&self) -> u64 {
        self.prior_received + self.seg_received
    }

    /// Payload bytes of the counted packets.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// A.3: extended highest - base + 1, summed over resyncs.
    pub fn expected(&self) -> u64 {
        let seg = if self.valid() {
            self.ext_max - self.base + 1
        } else {
            0
        };
        self.prior_expected + seg
    }

    /// Expected - received. Duplicates and late packets are not counted
    /// as received, so this never goes negative as A.3's can.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.packets())
    }

    /// Lost, per cent of expected; 0 when nothing was expected.
    pub fn loss_pct(&self) -> f64 {
        match self.expected() {
            0 => 0.0,
            e => 100.0 * self.lost() as f64 / e as f64,
        }
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    pub fn late(&self) -> u64 {
        self.late
    }

    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Times the stream restarted (new SSRC or a confirmed jump).
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// A.8 interarrival jitter, ms.
    pub fn jitter_ms(&self) -> f64 {
        if self.clock_rate == 0 {
            return 0.0;
        }
        self.jitter / f64::from(self.clock_rate) * 1000.0
    }

    /// Burst ratio of the losses: 1 for random loss (or none), more for
    /// bursts. Sequence numbers still in the window count as they stand,
    /// the missing ones as lost, as in `lost()`.
    pub fn burst_ratio(&self) -> f64 {
        let mut g = self.gilbert;
        if self.valid() {
            for e in self.window_low()..=self.ext_max {
                g.step(self.bit(e));
            }
        }
        g.burst_ratio()
    }

    /// Payload type of the last packet passed on.
    pub fn last_payload_type(&self) -> Option<u8> {
        self.last_pt
    }
}

/// SRs remembered for matching the LSR of the reports coming back.
const RTT_RING: usize = 8;
/// Round trips longer than this are taken for mismatches.
const RTT_MAX_US: f64 = 10_000_000.0;
/// DLSR is in 1/65536 s.
const DLSR_UNIT_US: f64 = 1e6 / 65536.0;

/// Round-trip time between the relay and one endpoint (RFC 3550 §6.4.1):
/// the relay notes when it forwards an SR toward the endpoint, and when a
/// report block from the endpoint names that SR (LSR) and the time it held
/// it (DLSR), RTT = (arrival of the report - arrival of the SR) - DLSR.
#[derive(Debug, Clone, Default)]
pub struct RttEstimator {
    /// (middle 32 bits of the SR's NTP time, arrival µs); LSR 0 is "none".
    ring: [(u32, u64); RTT_RING],
    next: usize,
    last_ms: Option<f64>,
    smoothed_ms: Option<f64>,
    samples: u64,
}

impl RttEstimator {
    pub fn new() -> Self {
        Self::default()
    }

    /// An SR with NTP time `ntp` was forwarded toward the endpoint at
    /// `arrival_us` (the clock of [`StreamStats::on_rtp`]).
    pub fn on_sr(&mut self, ntp: u64, arrival_us: u64) {
        let mid = ntp_middle32(ntp);
        // LSR 0 means "no SR"; and a repeated SR keeps its first arrival.
        if mid == 0 || self.ring.iter().any(|&(m, _)| m == mid) {
            return;
        }
        self.ring[self.next] = (mid, arrival_us);
        self.next = (self.next + 1) % RTT_RING;
    }

    /// A report block with `lsr` and `dlsr` came back from the endpoint at
    /// `arrival_us`. Returns the RTT in ms when it names a known SR and
    /// gives a plausible value.
    pub fn on_report(&mut self, lsr: u32, dlsr: u32, arrival_us: u64) -> Option<f64> {
        if lsr == 0 {
            return None;
        }
        let &(_, sent) = self.ring.iter().find(|&&(m, _)| m == lsr)?;
        let held = arrival_us.checked_sub(sent)? as f64;
        let mut rtt = held - f64::from(dlsr) * DLSR_UNIT_US;
        // DLSR is rounded to 1/65536 s: a round trip shorter than that
        // may come out just below zero.
        if (-DLSR_UNIT_US..0.0).contains(&rtt) {
            rtt = 0.0;
        }
        if !(0.0..=RTT_MAX_US).contains(&rtt) {
            return None;
        }
        let ms = rtt / 1000.0;
        self.last_ms = Some(ms);
        // RFC 6298's SRTT gain of 1/8.
        self.smoothed_ms = Some(self.smoothed_ms.map_or(ms, |s| s + (ms - s) / 8.0));
        self.samples += 1;
        Some(ms)
    }

    /// The latest RTT, ms.
    pub fn last_ms(&self) -> Option<f64> {
        self.last_ms
    }

    /// The smoothed RTT (EWMA, gain 1/8), ms.
    pub fn smoothed_ms(&self) -> Option<f64> {
        self.smoothed_ms
    }

    /// RTT samples taken.
    pub fn samples(&self) -> u64 {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::tests::XorShift;

    const SSRC: u32 = 0x1234_5678;

    fn hdr(seq: u16, ts: u32) -> RtpHeader {
        RtpHeader {
            marker: false,
            payload_type: 0,
            seq,
            timestamp: ts,
            ssrc: SSRC,
            header_len: 12,
            payload_len: 160,
        }
    }

    /// Feeds `seqs` as 20 ms G.711 packets arriving exactly on time.
    fn feed(s: &mut StreamStats, seqs: impl IntoIterator<Item = u16>) -> Vec<Accept> {
        seqs.into_iter()
            .map(|q| {
                let n = u64::from(q);
                s.on_rtp(&hdr(q, (n * 160) as u32), n * 20_000, 8000)
            })
            .collect()
    }

    #[test]
    fn in_order_stream() {
        let mut s = StreamStats::new();
        let r = feed(&mut s, 100..600);
        // A.1: the first packet is probation, the second validates.
        assert_eq!(r[0], Accept::Probation);
        assert!(r[1..].iter().all(|&a| a == Accept::Fresh));
        assert_eq!((s.packets(), s.expected(), s.lost()), (499, 499, 0));
        assert_eq!(s.bytes(), 499 * 160);
        assert_eq!(s.loss_pct(), 0.0);
        assert_eq!(s.jitter_ms(), 0.0);
        assert_eq!(s.burst_ratio(), 1.0);
        assert_eq!(s.last_payload_type(), Some(0));
        assert_eq!((s.duplicates(), s.late(), s.rejected()), (0, 0, 0));
    }

    #[test]
    fn wrap_around() {
        let mut s = StreamStats::new();
        let seqs: Vec<u16> = (65530..=65535).chain(0..=5).collect();
        feed(&mut s, seqs);
        assert_eq!((s.packets(), s.expected(), s.lost()), (11, 11, 0));
        // Reordered across the wrap.
        let mut s = StreamStats::new();
        let r = feed(&mut s, [65533, 65534, 0, 65535, 1, 3]);
        assert!(r[1..].iter().all(|&a| a == Accept::Fresh), "{r:?}");
        assert_eq!((s.packets(), s.expected(), s.lost()), (5, 6, 1));
        assert_eq!(s.ext_max, 65536 + 3);
    }

    #[test]
    fn reordering_counted_once() {
        let mut s = StreamStats::new();
        let r = feed(&mut s, [1, 2, 3, 5, 4, 6, 9, 8, 7, 10, 8]);
        assert_eq!(r[4], Accept::Fresh);
        assert_eq!(r[10], Accept::Duplicate);
        assert_eq!((s.packets(), s.expected(), s.lost()), (9, 9, 0));
        assert_eq!(s.duplicates(), 1);
        assert_eq!(s.burst_ratio(), 1.0);
    }

    #[test]
    fn duplicate_does_not_hide_loss() {
        let mut s = StreamStats::new();
        let r = feed(&mut s, [1, 2, 2, 4]);
        assert_eq!(
            r,
            [
                Accept::Probation,
                Accept::Fresh,
                Accept::Duplicate,
                Accept::Fresh
            ]
        );
        // 2..=4 expected, 2 and 4 received: 3 lost even with 2 twice.
        assert_eq!(
            (s.expected(), s.packets(), s.lost(), s.duplicates()),
            (3, 2, 1, 1)
        );
        assert!((s.loss_pct() - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.bytes(), 320);
    }

    #[test]
    fn late_packets_not_counted() {
        let mut s = StreamStats::new();
        let seqs: Vec<u16> = (1..=300).filter(|&q| q != 150).collect();
        feed(&mut s, seqs);
        assert_eq!(s.lost(), 1);
        // 150 behind: too late to count, passed on, the loss stays.
        assert_eq!(feed(&mut s, [150]), [Accept::Late]);
        assert!(Accept::Late.forward());
        assert_eq!((s.lost(), s.late()), (1, 1));
        // Two late ones in a row do not resync the stream onto them.
        assert_eq!(feed(&mut s, [151, 152]), [Accept::Late, Accept::Late]);
        assert_eq!(feed(&mut s, [301]), [Accept::Fresh]);
        assert_eq!((s.resyncs(), s.expected(), s.lost()), (0, 300, 1));
        // Older than the window: a jump.
        assert_eq!(feed(&mut s, [60_000]), [Accept::Rejected(Reject::SeqJump)]);
        // Older than the first counted packet.
        let mut s = StreamStats::new();
        assert_eq!(feed(&mut s, [10, 11, 12, 9]).last(), Some(&Accept::Late));
    }

    #[test]
    fn absurd_jump_rejected_then_resync() {
        let mut s = StreamStats::new();
        feed(&mut s, 1..=10);
        let r = feed(&mut s, [20_000]);
        assert_eq!(r, [Accept::Rejected(Reject::SeqJump)]);
        assert!(!r[0].forward());
        assert_eq!(Reject::SeqJump.as_str(), "seq_jump");
        // A lone jump changes nothing; the stream goes on.
        assert_eq!(feed(&mut s, [11]), [Accept::Fresh]);
        assert_eq!((s.expected(), s.lost(), s.rejected()), (10, 0, 1));
        // Two in a row: the source restarted.
        let r = feed(&mut s, [40_000, 40_001, 40_002, 40_004]);
        assert_eq!(
            r,
            [
                Accept::Rejected(Reject::SeqJump),
                Accept::Fresh,
                Accept::Fresh,
                Accept::Fresh
            ]
        );
        assert_eq!(s.resyncs(), 1);
        // 2..=11, then 40001..=40004 with 40003 lost.
        assert_eq!((s.expected(), s.packets(), s.lost()), (14, 13, 1));
        // A gap below MAX_DROPOUT is loss, not a jump.
        assert_eq!(feed(&mut s, [42_000]), [Accept::Fresh]);
        assert_eq!(s.lost(), 1 + 1995);
    }

    #[test]
    fn ssrc_change_needs_two_packets() {
        let mut s = StreamStats::new();
        feed(&mut s, 1..=5);
        let other = |seq| RtpHeader {
            ssrc: 99,
            ..hdr(seq, 0)
        };
        assert_eq!(
            s.on_rtp(&other(500), 0, 8000),
            Accept::Rejected(Reject::SsrcChange)
        );
        assert_eq!(feed(&mut s, [6]), [Accept::Fresh]);
        assert_eq!(
            s.on_rtp(&other(700), 0, 8000),
            Accept::Rejected(Reject::SsrcChange)
        );
        assert_eq!(s.on_rtp(&other(701), 0, 8000), Accept::Fresh);
        assert_eq!((s.ssrc(), s.resyncs()), (99, 1));
        // The old source is now the stranger.
        assert_eq!(feed(&mut s, [7]), [Accept::Rejected(Reject::SsrcChange)]);
        assert_eq!((s.expected(), s.lost()), (6, 0));
    }

    #[test]
    fn known_jitter() {
        // 8 kHz, 20 ms packets; packet 2 arrives 10 ms late.
        let mut s = StreamStats::new();
        for (seq, arrival_ms) in [(0u64, 0u64), (1, 20), (2, 50), (3, 60), (4, 80)] {
            let a = s.on_rtp(
                &hdr(seq as u16, (seq * 160) as u32),
                arrival_ms * 1000,
                8000,
            );
            assert_ne!(a, Accept::Rejected(Reject::SeqJump));
        }
        // Packet 0 is probation; transits from packet 1: 0, 80, 0, 0 units.
        // D = 80: J = 80/16 = 5; D = -80: J = 5 + 75/16 = 9.6875;
        // D = 0: J = 9.6875 * 15/16 = 9.08203125 units = 1.13525390625 ms.
        assert!((s.jitter - 9.082_031_25).abs() < 1e-9, "{}", s.jitter);
        assert!((s.jitter_ms() - 1.135_253_906_25).abs() < 1e-9);
        // Sub-unit arrival times count: 48 kHz, 1 µs resolution, an epoch
        // far away (µs since 1970 times 48000 overflows 2^64).
        let mut s = StreamStats::new();
        let t0 = 1_750_000_000_000_000u64;
        for (seq, late_us) in [(0u64, 0u64), (1, 0), (2, 10), (3, 0)] {
            s.on_rtp(
                &hdr(seq as u16, (seq * 960) as u32),
                t0 + seq * 20_000 + late_us,
                48_000,
            );
        }
        // D = 0.48, then -0.48 units: J = 0.03, then 0.03 + 0.45/16.
        let want = 0.03 + 0.45 / 16.0;
        assert!((s.jitter - want).abs() < 1e-9, "{}", s.jitter);
    }

    #[test]
    fn jitter_skips_duplicates_and_rejected() {
        let mut s = StreamStats::new();
        feed(&mut s, 0..10);
        // A duplicate and a jump, both wildly off in time.
        s.on_rtp(&hdr(9, 9 * 160), 5_000_000, 8000);
        s.on_rtp(&hdr(30_000, 0), 7_000_000, 8000);
        feed(&mut s, 10..20);
        assert_eq!(s.jitter_ms(), 0.0);
    }

    /// Feeds `n` packets from seq 1, dropping those `lost` says.
    fn with_loss(n: u16, lost: impl Fn(u16) -> bool) -> StreamStats {
        let mut s = StreamStats::new();
        feed(&mut s, (1..=n).filter(|&q| q < 3 || !lost(q)));
        s
    }

    #[test]
    fn burst_ratio_random_and_bursty() {
        // Every 10th lost: p = 1/9, q = 1, 1/(p+q) = 0.9 → 1.
        let s = with_loss(5002, |q| q % 10 == 0);
        assert_eq!(s.lost(), 500);
        assert_eq!(s.burst_ratio(), 1.0);
        // Runs of 5 lost after 45 received: p = 1/45, q = 1/5, BurstR 4.5.
        // Base is seq 2; seqs 2..=46 received, 47..=51 lost, and so on,
        // ending with a received run. 4000 packets cross the window many
        // times, so both settled and pending counts are exercised.
        let s = with_loss(4002, |q| (q - 2) % 50 >= 45);
        assert_eq!(s.lost(), 80 * 5);
        assert!((s.burst_ratio() - 4.5).abs() < 1e-9, "{}", s.burst_ratio());
        // The same, reordered inside the window, and with duplicates.
        let mut s = StreamStats::new();
        let mut seqs: Vec<u16> = (1..=4002u16)
            .filter(|&q| q < 3 || (q - 2) % 50 < 45)
            .collect();
        for c in seqs.chunks_mut(7).skip(1) {
            c.reverse();
        }
        let dups: Vec<u16> = seqs.iter().copied().step_by(13).skip(1).collect();
        for (i, q) in seqs.iter().enumerate() {
            feed(&mut s, [*q]);
            if i % 13 == 0 && i > 0 {
                feed(&mut s, [dups[i / 13 - 1]]);
            }
        }
        assert_eq!(s.lost(), 400);
        assert!((s.burst_ratio() - 4.5).abs() < 1e-9, "{}", s.burst_ratio());
        // A loss gap wider than the window settles as one run.
        let s = with_loss(3000, |q| (100..=1600).contains(&q));
        assert_eq!(s.lost(), 1501);
        // 2..=99 received (97 steps from received), one run of 1501,
        // then 1601..=3000: p = 1/(97 + 1400 - 1 + 1), q = 1/1501.
        let p = 1.0 / 1497.0;
        let q = 1.0 / 1501.0;
        assert!(
            (s.burst_ratio() - 1.0 / (p + q)).abs() < 1e-6,
            "{}",
            s.burst_ratio()
        );
    }

    #[test]
    fn rtt_from_sr_and_rr() {
        let mut r = RttEstimator::new();
        let ntp = 0x0000_1234_5678_0000_u64;
        r.on_sr(ntp, 1_000_000);
        assert_eq!(r.last_ms(), None);
        // The endpoint held the SR 250 ms; the report came 330 ms after.
        let dlsr = 65536 / 4;
        let got = r.on_report(ntp_middle32(ntp), dlsr, 1_330_000).unwrap();
        assert!((got - 80.0).abs() < 1e-9, "{got}");
        // A later report about the same SR, held longer: another sample.
        let got = r
            .on_report(ntp_middle32(ntp), 65536 / 2, 1_600_000)
            .unwrap();
        assert!((got - 100.0).abs() < 1e-9);
        assert_eq!(r.last_ms(), Some(got));
        assert!((r.smoothed_ms().unwrap() - 82.5).abs() < 1e-9);
        // LSR 0, unknown LSR, negative and absurd values are ignored.
        assert_eq!(r.on_report(0, 0, 2_000_000), None);
        assert_eq!(r.on_report(0xdead, 0, 2_000_000), None);
        assert_eq!(r.on_report(ntp_middle32(ntp), 65536, 1_500_000), None);
        assert_eq!(r.on_report(ntp_middle32(ntp), 0, 20_000_000), None);
        assert_eq!(r.on_report(ntp_middle32(ntp), 0, 500_000), None);
        assert_eq!(r.samples(), 2);
        // Within a DLSR unit below zero: a LAN round trip, 0.
        r.on_sr(ntp + (1 << 16), 3_000_000);
        assert_eq!(
            r.on_report(ntp_middle32(ntp) + 1, 65536, 3_999_990),
            Some(0.0)
        );
        // The ring forgets the oldest of more than 8 SRs.
        for i in 2..10u64 {
            r.on_sr(ntp + (i << 16), 4_000_000 + i);
        }
        assert_eq!(r.on_report(ntp_middle32(ntp), 0, 5_000_000), None);
        assert!(r.on_report(ntp_middle32(ntp) + 9, 0, 5_000_000).is_some());
    }

    #[test]
    fn no_panic_on_arbitrary_sequences() {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let mut s = StreamStats::new();
        let mut seq = 0u16;
        let mut t = 0u64;
        for _ in 0..200_000 {
            let x = rng.next_u64();
            seq = match x % 8 {
                0 => x as u16 >> 3,
                1 => seq.wrapping_sub((x >> 8) as u16 % 2000),
                2 => seq.wrapping_add((x >> 8) as u16 % 5000),
                _ => seq.wrapping_add(1),
            };
            t = t.wrapping_add((x >> 20) % 40_000);
            let h = RtpHeader {
                ssrc: if x.is_multiple_of(97) { 7 } else { SSRC },
                timestamp: (x >> 32) as u32,
                ..hdr(seq, 0)
            };
            s.on_rtp(&h, t, [0, 8000, 48_000][(x % 3) as usize]);
            assert!(s.packets() <= s.expected());
            if x.is_multiple_of(64) {
                assert!(s.burst_ratio() >= 1.0 && s.jitter_ms().is_finite());
            }
        }
        assert!(s.packets() > 0 && s.resyncs() > 0);
    }
}
