//! Byte scans of the parser's hot path, a block at a time instead of a byte
//! at a time: where the lines of a head end and whether it holds any byte
//! above ASCII (64 bytes per step: SSE2 on x86_64, portable SWAR
//! elsewhere), and how far a run of bytes of one class goes (16 bytes per
//! step with SSSE3, else a table loop).

/// A set of ASCII bytes, as a lookup table and as the two 16-byte nibble
/// tables of the SSSE3 membership test: byte `x` is a member iff
/// `lo[x & 15] & hi[x >> 4] != 0`, where `hi[h]` is the bit `1 << h` for the
/// eight ASCII rows and 0 above, and `lo[l]` has bit `h` set iff `h * 16 + l`
/// is a member. Any ASCII set fits, exactly.
pub(crate) struct ByteClass {
    member: [bool; 256],
    lo: [u8; 16],
    hi: [u8; 16],
}

impl ByteClass {
    /// Panics at compile time (these are built in statics) if `member`
    /// holds a byte above ASCII, which the nibble tables cannot express.
    pub(crate) const fn new(member: [bool; 256]) -> ByteClass {
        let mut lo = [0u8; 16];
        let mut hi = [0u8; 16];
        let mut c = 0;
        while c < 256 {
            if member[c] {
                assert!(c < 128, "a ByteClass holds ASCII bytes only");
                lo[c & 15] |= 1 << (c >> 4);
            }
            c += 1;
        }
        let mut h = 0;
        while h < 8 {
            hi[h] = 1 << h;
            h += 1;
        }
        ByteClass { member, lo, hi }
    }

    #[inline]
    pub(crate) fn contains(&self, c: u8) -> bool {
        self.member[c as usize]
    }
}

/// Whether `b` starts with `lower` (at most 8 bytes, ASCII), letters in
/// either case: one word compare. `x | 0x20 == l` holds exactly for `x` in
/// `{l, l - 32}` when `l` is a lowercase letter, so only letters fold.
#[inline]
pub(crate) fn starts_with_folded(b: &[u8], lower: &[u8]) -> bool {
    let n = lower.len();
    if n > 8 || b.len() < n {
        return false;
    }
    let (mut want, mut fold) = (0u64, 0u64);
    for (k, &c) in lower.iter().enumerate() {
        want |= u64::from(c) << (8 * k);
        if c.is_ascii_lowercase() {
            fold |= 0x20 << (8 * k);
        }
    }
    let mut got = [0u8; 8];
    got[..n].copy_from_slice(&b[..n]);
    (u64::from_le_bytes(got) | fold) == want
}

/// First `needle` in `hay`. Header lines and values are mostly under 64
/// bytes, where a 16-byte compare (SSE2) or an 8-byte one (SWAR) beats
/// memchr's call and setup; longer input goes on with memchr.
#[inline]
pub(crate) fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if hay.len() >= 16 {
        return find_byte_sse2(needle, hay);
    }
    find_byte_swar(needle, hay)
}

#[cfg(target_arch = "x86_64")]
fn find_byte_sse2(needle: u8, hay: &[u8]) -> Option<usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    // Bits of the 16 bytes at `at` equal to `needle`.
    let hits = |at: usize| -> u32 {
        // SAFETY: SSE2 is part of the x86_64 baseline; callers keep
        // `at + 16 <= hay.len()` and the load needs no alignment.
        unsafe {
            let v = _mm_loadu_si128(hay.as_ptr().add(at).cast::<__m128i>());
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(needle as i8))) as u32
        }
    };
    let mut i = 0;
    while i < 64 && i + 16 <= hay.len() {
        let m = hits(i);
        if m != 0 {
            return Some(i + m.trailing_zeros() as usize);
        }
        i += 16;
    }
    if i < 64 {
        // Under 16 bytes left: the last 16 of `hay`, minus those checked.
        let last = hay.len() - 16;
        let m = hits(last) >> (i - last);
        return (m != 0).then(|| i + m.trailing_zeros() as usize);
    }
    memchr::memchr(needle, &hay[i..]).map(|p| i + p)
}

fn find_byte_swar(needle: u8, hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(needle);
    let mut i = 0;
    while i < 64 {
        let Some(w) = hay.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) else {
            return hay[i..].iter().position(|&c| c == needle).map(|p| i + p);
        };
        // The "has zero byte" test on `w ^ pattern`: the lowest flagged byte
        // is exactly the first match (borrows only flag bytes above it).
        let x = u64::from_le_bytes(w) ^ pattern;
        let t = x.wrapping_sub(LO) & !x & HI;
        if t != 0 {
            return Some(i + (t.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr::memchr(needle, &hay[i..]).map(|p| i + p)
}

/// The end of the run of `class` bytes in `b` that starts at `i` (`i`
/// itself when `b[i]` is not a member or `i` is past the end).
#[inline]
pub(crate) fn run(b: &[u8], i: usize, class: &ByteClass) -> usize {
    #[cfg(target_arch = "x86_64")]
    if b.len() >= 16 && i < b.len() && std::arch::is_x86_feature_detected!("ssse3") {
        // SAFETY: the CPU has SSSE3 (checked just above).
        return unsafe { run_ssse3(b, i, class) };
    }
    run_scalar(b, i, class)
}

fn run_scalar(b: &[u8], i: usize, class: &ByteClass) -> usize {
    match b.get(i..) {
        Some(r) => {
            i + r
                .iter()
                .position(|&c| !class.contains(c))
                .unwrap_or(r.len())
        }
        None => i,
    }
}

/// [`run`] 16 bytes per step; `b` holds at least 16 bytes and `i < b.len()`.
/// The last step loads the final 16 bytes of `b` (overlapping what was
/// already checked) so no load reaches past the slice.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
unsafe fn run_ssse3(b: &[u8], mut i: usize, class: &ByteClass) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        _mm_setzero_si128, _mm_shuffle_epi8, _mm_srli_epi16,
    };
    // Bits of the 16 bytes at `at` that are not members.
    let outside = |at: usize| -> u32 {
        // SAFETY: callers keep `at + 16 <= b.len()`; the loads need no
        // alignment and SSSE3 is enabled for this function.
        unsafe {
            let lo = _mm_loadu_si128(class.lo.as_ptr().cast::<__m128i>());
            let hi = _mm_loadu_si128(class.hi.as_ptr().cast::<__m128i>());
            let low4 = _mm_set1_epi8(0x0f);
            let v = _mm_loadu_si128(b.as_ptr().add(at).cast::<__m128i>());
            let l = _mm_shuffle_epi8(lo, _mm_and_si128(v, low4));
            let h = _mm_shuffle_epi8(hi, _mm_and_si128(_mm_srli_epi16(v, 4), low4));
            let hit = _mm_and_si128(l, h);
            _mm_movemask_epi8(_mm_cmpeq_epi8(hit, _mm_setzero_si128())) as u32
        }
    };
    while i + 16 <= b.len() {
        let out = outside(i);
        if out != 0 {
            return i + out.trailing_zeros() as usize;
        }
        i += 16;
    }
    if i >= b.len() {
        return b.len();
    }
    let last = b.len() - 16;
    let out = outside(last) >> (i - last);
    if out != 0 {
        i + out.trailing_zeros() as usize
    } else {
        b.len()
    }
}

/// Bits of one 64-byte block: `lf` where the byte is `\n`, `high` where it
/// is 0x80 or above. Bytes past the end of the buffer count as neither.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
struct Block {
    lf: u64,
    high: u64,
}

/// The `\n` positions of a buffer, in order, from a start offset on; it also
/// remembers whether any scanned byte was non-ASCII, so a head of plain
/// ASCII needs no UTF-8 validation.
pub(crate) struct LineEnds<'a> {
    b: &'a [u8],
    /// Offset of the current block.
    base: usize,
    /// LF bits of the current block not yet returned.
    lf: u64,
    /// Non-ASCII bits of the current block, from the start offset on.
    high: u64,
    /// Whether a block before the current one had a non-ASCII byte.
    high_before: bool,
}

impl<'a> LineEnds<'a> {
    pub(crate) fn new(b: &'a [u8], from: usize) -> Self {
        let base = from & !63;
        let blk = block(b, base);
        let keep = !0u64 << (from - base);
        LineEnds {
            b,
            base,
            lf: blk.lf & keep,
            high: blk.high & keep,
            high_before: false,
        }
    }

    /// Whether any byte from the start offset up to and including `end`,
    /// the position [`Iterator::next`] returned last, is above ASCII.
    pub(crate) fn non_ascii_through(&self, end: usize) -> bool {
        if self.high_before {
            return true;
        }
        let Some(off) = end.checked_sub(self.base) else {
            return false;
        };
        let upto = if off >= 63 { !0u64 } else { (2u64 << off) - 1 };
        self.high & upto != 0
    }
}

impl Iterator for LineEnds<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.lf == 0 {
            if self.base + 64 >= self.b.len() {
                return None;
            }
            self.high_before |= self.high != 0;
            self.base += 64;
            let blk = block(self.b, self.base);
            self.lf = blk.lf;
            self.high = blk.high;
        }
        let i = self.lf.trailing_zeros() as usize;
        self.lf &= self.lf - 1;
        Some(self.base + i)
    }
}

#[inline]
fn block(b: &[u8], base: usize) -> Block {
    match b.get(base..base + 64) {
        Some(w) => block64(w.try_into().unwrap_or(&[0; 64])),
        None => {
            let mut w = [0u8; 64];
            let tail = b.get(base..).unwrap_or(&[]);
            w[..tail.len()].copy_from_slice(tail);
            block64(&w)
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn block64(w: &[u8; 64]) -> Block {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86_64 baseline.
    let nl = unsafe { _mm_set1_epi8(b'\n' as i8) };
    let mut lf = 0u64;
    let mut high = 0u64;
    for k in 0..4 {
        // SAFETY: SSE2 is part of the x86_64 baseline; `w` holds 64 bytes,
        // so the 16 at `16 * k` are in bounds, and the load needs no
        // alignment.
        let (eq, hi) = unsafe {
            let v = _mm_loadu_si128(w.as_ptr().add(16 * k).cast::<__m128i>());
            (
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)) as u32 as u64,
                _mm_movemask_epi8(v) as u32 as u64,
            )
        };
        lf |= eq << (16 * k);
        high |= hi << (16 * k);
    }
    Block { lf, high }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn block64(w: &[u8; 64]) -> Block {
    block64_swar(w)
}

/// Portable version: eight bytes per word, exact per-byte flags.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn block64_swar(w: &[u8; 64]) -> Block {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const NL: u64 = 0x0a0a_0a0a_0a0a_0a0a;
    // Gathers the top bit of each byte into the low 8 bits, byte 0 first.
    fn gather(x: u64) -> u64 {
        ((x >> 7) & 0x0101_0101_0101_0101).wrapping_mul(0x0102_0408_1020_4080) >> 56
    }
    let mut lf = 0u64;
    let mut high = 0u64;
    for (k, c) in w.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        let y = x ^ NL;
        // Exact zero-byte test (no borrow between bytes): a byte of `y` is
        // zero iff neither its low seven bits nor its top bit are set.
        let nonzero = ((y & LOW7).wrapping_add(LOW7) | y) & !LOW7;
        lf |= gather(!nonzero & !LOW7) << (8 * k);
        high |= gather(x & !LOW7) << (8 * k);
    }
    Block { lf, high }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(b: &[u8], from: usize) -> Vec<usize> {
        (from..b.len()).filter(|&i| b[i] == b'\n').collect()
    }

    fn rnd_bytes(seed: &mut u64, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                // Mostly LF, CR and ASCII, some high bytes.
                match *seed % 11 {
                    0 => b'\n',
                    1 => b'\r',
                    2 => 0x80 | (*seed >> 8) as u8,
                    _ => b'a' + ((*seed >> 8) % 26) as u8,
                }
            })
            .collect()
    }

    #[test]
    fn line_ends_and_ascii_match_a_byte_loop() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for n in 0..300 {
            let mut b = rnd_bytes(&mut seed, n);
            if n % 3 == 0 {
                // Long ASCII-only runs too.
                b.iter_mut().for_each(|c| *c &= 0x7f);
            }
            for from in [0, n / 3, n.saturating_sub(1)] {
                let from = from.min(n);
                let mut it = LineEnds::new(&b, from);
                let mut got = Vec::new();
                while let Some(p) = it.next() {
                    assert_eq!(
                        it.non_ascii_through(p),
                        b[from..=p].iter().any(|&c| c >= 0x80),
                        "n={n} from={from} p={p}"
                    );
                    got.push(p);
                }
                assert_eq!(got, reference(&b, from), "n={n} from={from}");
            }
        }
    }

    #[test]
    fn folded_prefix_is_eq_ignore_ascii_case() {
        for lower in [&b"sip/2.0/"[..], b"sip:", b"sips:"] {
            let n = lower.len();
            for at in 0..n {
                for c in 0..=255u8 {
                    let mut b = lower.to_vec();
                    b[at] = c;
                    b.push(b'x');
                    assert_eq!(
                        starts_with_folded(&b, lower),
                        b[..n].eq_ignore_ascii_case(lower),
                        "{b:?}"
                    );
                }
            }
            assert!(!starts_with_folded(&lower[..n - 1], lower));
        }
    }

    #[test]
    fn find_byte_matches_position() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        for n in 0..200 {
            let b = rnd_bytes(&mut seed, n);
            for needle in [b'\n', b'\r', b'a', 0x80, b'z'] {
                let want = b.iter().position(|&c| c == needle);
                assert_eq!(find_byte(needle, &b), want, "n={n}");
                assert_eq!(find_byte_swar(needle, &b), want, "n={n}");
            }
        }
        // One needle at every place (or none) in haystacks of every length
        // around the 16-byte steps and the hand-over to memchr at 64.
        for n in 0..300usize {
            for at in (0..=n).step_by(7).chain([n.saturating_sub(1), n]) {
                let mut b = vec![b'x'; n];
                if at < n {
                    b[at] = b':';
                }
                let want = (at < n).then_some(at);
                assert_eq!(find_byte(b':', &b), want, "n={n} at={at}");
                assert_eq!(find_byte_swar(b':', &b), want, "n={n} at={at}");
            }
        }
    }

    #[test]
    fn class_runs_match_the_table() {
        static CLASSES: [&ByteClass; 3] = [
            &crate::method::TOKEN,
            &crate::uri::HOST,
            &crate::parse::CALL_ID,
        ];
        // Every byte value, alone and inside runs of every length and
        // offset, against the plain table loop.
        for class in CLASSES {
            for c in 0..=255u8 {
                let mut b = [b'a'; 40];
                for at in 0..40 {
                    b[at] = c;
                    for i in [0, 1, 7, 15, 16, 17, 24, 39, 40, 41] {
                        for len in [1, 15, 16, 17, 31, 33, 40] {
                            let s = &b[..len];
                            assert_eq!(run(s, i, class), run_scalar(s, i, class));
                        }
                    }
                    b[at] = b'a';
                }
            }
        }
    }

    #[test]
    fn swar_and_simd_blocks_agree() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let b = rnd_bytes(&mut seed, 64);
            let w: &[u8; 64] = b.as_slice().try_into().unwrap();
            assert_eq!(block64(w), block64_swar(w));
        }
    }
}
