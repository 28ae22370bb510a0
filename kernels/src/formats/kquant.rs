//! What the k-quants (Q2_K … Q6_K, super-blocks of 256) share: the 2-bit level packing of
//! Q2_K / Q3_K and the packed 6-bit scales of Q3_K and Q4_K / Q5_K. Each type's own file
//! holds the rest.
//!
//! Each type has two quantizers, as in ggml:
//! - `quantize_row_ref` (`quantize_row_q4_K_ref` …), what `ggml_quantize_chunk` (and so
//!   llama-quantize) runs when there is no importance matrix;
//! - `quantize_row_impl` (`quantize_row_q4_K_impl` …), what it runs with an importance row: a
//!   weighted search whose weights come from the imatrix and the super-block's variance.
//!
//! Both have a vector path ([`crate::vector`]) that gives the same bytes.

#![allow(clippy::needless_range_loop)] // index arithmetic mirrors the bit layouts

use crate::num::QK_K;

/// Packs 256 two-bit levels as Q2_K / Q3_K do: byte `32·h + l` holds elements
/// `128·h + l + 32·s` in bits `2s..2s+2`.
#[inline]
pub(super) fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8]) {
    let qs: &mut [u8; QK_K / 4] = qs.try_into().unwrap();
    for h in 0..QK_K / 128 {
        for i in 0..32 {
            let at = 128 * h + i;
            qs[32 * h + i] = l[at] | (l[at + 32] << 2) | (l[at + 64] << 4) | (l[at + 96] << 6);
        }
    }
}

/// The two-bit level of element `128·h + 32·s + i` (`s` = shift / 2) from [`pack_2bit`]'s layout.
pub(super) fn level_2bit(qs: &[u8], h: usize, s: usize, i: usize) -> u8 {
    (qs[32 * h + i] >> (2 * s)) & 3
}

/// Unpacks the 8 six-bit scales and 8 six-bit mins of Q4_K / Q5_K (`scales[12]`).
#[inline(always)]
pub fn kquant_scales_mins(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..4 {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 0x0f) | ((s[j] >> 6) << 4);
        mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
    }
    (sc, mn)
}

/// [`kquant_scales_mins`] computed in 64-bit integer registers, as two little-endian words:
/// bytes 0..4 of `.0` are scales 0..4 and bytes 4..8 mins 0..4; `.1` holds scales 4..8 and
/// mins 4..8 the same way. (SIMD kernels move them to vector registers with one `vmovq` each,
/// with no byte stores to reload.)
#[inline(always)]
pub fn kquant_scales_mins_words(s: &[u8; 12]) -> (u64, u64) {
    let lo8 = u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
    let hi4 = u32::from_le_bytes([s[8], s[9], s[10], s[11]]) as u64;
    let lo = lo8 & 0x3f3f_3f3f_3f3f_3f3f;
    let t = hi4 | (hi4 >> 4) << 32;
    let hi = (t & 0x0f0f_0f0f_0f0f_0f0f) | ((lo8 >> 2) & 0x3030_3030_3030_3030);
    (lo, hi)
}

/// Unpacks the 16 six-bit scales of Q3_K, already offset by −32: scale j has its low nibble
/// in byte `j mod 8` (low half for j < 8, high half after) and its top two bits in byte
/// `8 + j mod 4`, bits `2·(j / 4)`.
#[inline(always)]
pub fn q3k_scales(s: &[u8; 12]) -> [i8; 16] {
    let words = q3k_scale_words(s);
    let mut out = [0i8; 16];
    for (k, w) in words.iter().enumerate() {
        for (j, b) in w.to_le_bytes().into_iter().enumerate() {
            out[8 * k + j] = b as i8 - 32;
        }
    }
    out
}

/// The 16 six-bit scales of Q3_K as in [`q3k_scales`] but **without** the −32 offset, as two
/// little-endian words of 8 bytes (scales 0..8, 8..16), computed in integer registers (SIMD
/// kernels move them to a vector register without reloading byte stores).
#[inline(always)]
pub fn q3k_scale_words(s: &[u8; 12]) -> [u64; 2] {
    let u = |k: usize| u32::from_le_bytes([s[4 * k], s[4 * k + 1], s[4 * k + 2], s[4 * k + 3]]);
    let (a0, a1, t) = (u(0), u(1), u(2));
    const LO: u32 = 0x0f0f_0f0f;
    const HI: u32 = 0x0303_0303;
    let w = [
        (a0 & LO) | ((t & HI) << 4),
        (a1 & LO) | (((t >> 2) & HI) << 4),
        ((a0 >> 4) & LO) | (((t >> 4) & HI) << 4),
        ((a1 >> 4) & LO) | (((t >> 6) & HI) << 4),
    ];
    [
        w[0] as u64 | (w[1] as u64) << 32,
        w[2] as u64 | (w[3] as u64) << 32,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{format, Format};
    use crate::types::GgmlType;

    /// Deterministic pseudo-random values (splitmix64) in [-1, 1).
    pub(crate) fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn all() -> [&'static Format; 5] {
        [
            GgmlType::Q2_K,
            GgmlType::Q3_K,
            GgmlType::Q4_K,
            GgmlType::Q5_K,
            GgmlType::Q6_K,
        ]
        .map(|t| format(t).unwrap())
    }

    fn round_trip(f: &Format, x: &[f32], w: Option<&[f32]>) -> Vec<f32> {
        let mut b = vec![0xa5u8; f.ty().row_bytes(x.len()).unwrap()];
        f.quantize_row_imatrix(x, w, &mut b);
        let mut y = vec![0f32; x.len()];
        f.dequantize_row(&b, &mut y);
        y
    }

    /// Root mean square error relative to the root mean square of `x`.
    fn rel_rmse(x: &[f32], y: &[f32]) -> f32 {
        let e: f32 = x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum();
        let s: f32 = x.iter().map(|a| a * a).sum();
        (e / s).sqrt()
    }

    /// Rough error budgets for uniform noise: about half a step of each type's grid.
    fn budget(f: &Format) -> f32 {
        [0.45, 0.25, 0.12, 0.06, 0.03][f.ty().id() as usize - 10]
    }

    #[test]
    fn zero_super_block_dequantizes_to_zero() {
        for f in all() {
            for w in [None, Some(&[1.0f32; QK_K][..])] {
                let y = round_trip(f, &[0.0; QK_K], w);
                assert!(y.iter().all(|&v| v == 0.0), "{}", f.ty());
            }
        }
    }

    #[test]
    fn one_super_block_row_is_close() {
        let x = noise(QK_K, 1);
        let w: Vec<f32> = noise(QK_K, 2).iter().map(|v| v.abs() + 0.1).collect();
        for f in all() {
            for wt in [None, Some(&w[..])] {
                let e = rel_rmse(&x, &round_trip(f, &x, wt));
                assert!(e < budget(f), "{} weighted={}: {e}", f.ty(), wt.is_some());
            }
        }
    }

    #[test]
    fn negative_and_huge_values() {
        // All negative: the affine types need a min, the symmetric ones a negative max.
        let neg: Vec<f32> = noise(QK_K, 3).iter().map(|v| -1.5 - v).collect();
        for f in all() {
            let e = rel_rmse(&neg, &round_trip(f, &neg, None));
            assert!(e < budget(f), "{}: {e}", f.ty());
        }
        // One huge value in one sub-block: it survives, other sub-blocks keep their scales.
        let mut x = noise(2 * QK_K, 4);
        x[300] = 3.0e4;
        for f in all() {
            let y = round_trip(f, &x, None);
            assert!(
                (y[300] - 3.0e4).abs() < 3.0e4 * 0.1,
                "{}: {}",
                f.ty(),
                y[300]
            );
            let e = rel_rmse(&x[..QK_K], &y[..QK_K]);
            assert!(e < budget(f), "{}: first super-block {e}", f.ty());
        }
    }

    #[test]
    fn block_sizes_match_ggml_types() {
        for f in all() {
            assert_eq!(f.ty().block_size(), QK_K);
        }
    }

    #[test]
    fn scales_mins_words_match_the_byte_unpacking() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut s = [0u8; 12];
            for b in s.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let (sc, mn) = kquant_scales_mins(&s);
            let (lo, hi) = kquant_scales_mins_words(&s);
            let (lo, hi) = (lo.to_le_bytes(), hi.to_le_bytes());
            assert_eq!(
                sc,
                [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]],
                "{s:?}"
            );
            assert_eq!(
                mn,
                [lo[4], lo[5], lo[6], lo[7], hi[4], hi[5], hi[6], hi[7]],
                "{s:?}"
            );
        }
    }

    #[test]
    fn q3k_scales_match_the_bit_layout() {
        let mut s = [0u8; 12];
        let mut x = 0x1234_5678_9abc_def0u64;
        for round in 0..200 {
            for b in &mut s {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if round == 0 {
                s = [0xff; 12];
            }
            let got = q3k_scales(&s);
            for j in 0..16 {
                let low = if j < 8 { s[j] & 0x0f } else { s[j - 8] >> 4 };
                let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
                assert_eq!(got[j], (low | (high << 4)) as i8 - 32, "scale {j} of {s:?}");
            }
        }
    }

    #[test]
    fn k45_scales_match_the_bit_layout() {
        let s: [u8; 12] = [
            0xc1, 0x82, 0x43, 0x04, 0xc5, 0x86, 0x47, 0x08, 0x9a, 0xbc, 0xde, 0xf0,
        ];
        let (sc, mn) = kquant_scales_mins(&s);
        assert_eq!(sc[0], 0x01);
        assert_eq!(mn[0], 0x05);
        // j = 4: low nibble of byte 8, top bits of byte 0; min: high nibble of byte 8, top bits of byte 4.
        assert_eq!(sc[4], 0x0a | (3 << 4));
        assert_eq!(mn[4], 0x09 | (3 << 4));
    }
}
