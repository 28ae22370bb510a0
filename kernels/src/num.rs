//! Scalar numerics shared by every format, written to give the same bits as the C they mirror
//! (ggml compiled for baseline x86-64: plain f32 operations, no fused multiply-add, no
//! reassociation; numpy for the converter's float conversions).
//!
//! There are exactly two f32 → f16 conversions, because the two programs gq reproduces differ
//! in one corner (NaN payloads) and both are observable in files:
//! - [`f16_ggml`]: ggml's `GGML_FP32_TO_FP16` as `ggml-quants.c` uses it for block scales
//!   (every NaN becomes the quiet NaN 0x7e00 with the input's sign);
//! - [`f16_numpy`]: numpy's `astype(float16)`, which `convert_hf_to_gguf.py` uses for F16
//!   tensors and for Q8_0 scales (a NaN keeps the top ten bits of its payload).
//!
//! Both round finite values to nearest even and overflow to infinity, so they agree on every
//! non-NaN input.

/// Elements per block of the 32-element types (Q4_0 … Q8_1).
pub const QK: usize = 32;
/// Elements per super-block of the k-quants (ggml's `QK_K`).
pub const QK_K: usize = 256;

/// Below this absolute maximum a group counts as all zero (ggml's `GROUP_MAX_EPS`).
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `GGML_FP32_TO_FP16` (scalar path of ggml-quants.c): round to nearest even, overflow
/// to infinity, every NaN becomes the quiet NaN 0x7e00 with the input's sign. Little-endian
/// bytes.
#[inline]
pub fn f16_ggml(x: f32) -> [u8; 2] {
    let bits = if x.is_nan() {
        ((x.to_bits() >> 16) as u16 & 0x8000) | 0x7e00
    } else {
        half::f16::from_f32(x).to_bits()
    };
    bits.to_le_bytes()
}

/// numpy's `np.float32(x).astype(np.float16)`: round to nearest even, overflow to infinity;
/// a NaN keeps its sign and the top ten bits of its payload (bit 0 forced when they are zero,
/// so it stays a NaN). Little-endian bytes.
#[inline]
pub fn f16_numpy(x: f32) -> [u8; 2] {
    let bits = if x.is_nan() {
        let u = x.to_bits();
        let mut h = ((u >> 16) as u16 & 0x8000) | 0x7c00 | ((u & 0x007f_ffff) >> 13) as u16;
        if h & 0x03ff == 0 {
            h |= 1;
        }
        h
    } else {
        half::f16::from_f32(x).to_bits()
    };
    bits.to_le_bytes()
}

/// An f16 given as little-endian bytes, as f32 (exact).
#[inline(always)]
pub fn f16_to_f32(b: [u8; 2]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes(b)).to_f32()
}

/// The f16 at `b[at..at + 2]` as f32 (exact).
#[inline(always)]
pub(crate) fn f16_at(b: &[u8], at: usize) -> f32 {
    f16_to_f32([b[at], b[at + 1]])
}

/// Writes `x` as ggml's f16 ([`f16_ggml`]) at `b[at..at + 2]` and returns the value read back.
#[inline]
pub(crate) fn put_f16(b: &mut [u8], at: usize, x: f32) -> f32 {
    b[at..at + 2].copy_from_slice(&f16_ggml(x));
    f16_at(b, at)
}

/// One f32 as BF16 bits, as ggml's `GGML_FP32_TO_BF16` (and gguf-py): round to nearest, ties
/// to even; a NaN stays a NaN with its quiet bit forced.
#[inline]
pub fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// BF16 bits as f32 (exact: the 16 bits become the high half).
#[inline(always)]
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// ggml's `nearest_int`: adds 1.5·2²³ so that the FPU rounds half to even, then reads the
/// integer back from the mantissa bits. Exact for |x| ≤ 2²²; beyond that it returns the same
/// (meaningless but deterministic) value as the C code, whose range assert is compiled out.
#[inline(always)]
pub(crate) fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// C's `(int)x` for an f32 as x86-64 compiles it (`cvttss2si`): truncation toward zero, and
/// 0x8000_0000 for NaN or out-of-range values. Narrower C casts keep the low bits of this.
#[inline]
pub(crate) fn trunc_i32(x: f32) -> i32 {
    if x.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&x) {
        i32::MIN
    } else {
        x as i32
    }
}

/// The f32 at element `i` of little-endian f32 bytes.
#[inline(always)]
pub(crate) fn f32_at(a: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]])
}

/// `Σ_i x(i)` for `i < n`, the portable float dot products' order: eight partial sums (element
/// `i` goes to sum `i mod 8`) over the whole chunks of eight, combined pairwise as
/// `((s0+s4)+(s1+s5))+((s2+s6)+(s3+s7))`, then the remaining `n mod 8` terms added in element
/// order. A single running sum over a long row loses ~√8 times more to rounding; with fewer
/// than eight terms this is the plain element-order sum. Same order as
/// [`crate::f32rows::dot_ref`].
#[inline(always)]
pub(crate) fn sum8(n: usize, x: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += x(8 * c + l);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for i in 8 * chunks..n {
        s += x(i);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum8_order_and_error() {
        // Fewer than eight terms: the element-order sum (the SIMD kernels' tails rely on it).
        let x = [1e8f32, 1.0, -1e8, 1.0, 0.5, 3.0, -2.25];
        for n in 0..x.len() {
            let mut s = 0f32;
            for v in &x[..n] {
                s += v;
            }
            assert_eq!(sum8(n, |i| x[i]).to_bits(), s.to_bits(), "n={n}");
        }
        // Sixteen terms: lanes, then the pairwise combination.
        let y: Vec<f32> = (0..19).map(|i| (i as f32 * 0.37).sin()).collect();
        let l: Vec<f32> = (0..8).map(|k| y[k] + y[k + 8]).collect();
        let want = ((l[0] + l[4]) + (l[1] + l[5]))
            + ((l[2] + l[6]) + (l[3] + l[7]))
            + y[16]
            + y[17]
            + y[18];
        assert_eq!(sum8(19, |i| y[i]).to_bits(), want.to_bits());
        // A long row of positive terms: within (n/8 + 11)·2⁻²⁴·Σ of the exact sum, where a single
        // running sum drifts far beyond it.
        let n = 1 << 16;
        let z: Vec<f32> = (0..n).map(|i| 1.0 + (i % 7) as f32 * 0.1).collect();
        let exact: f64 = z.iter().map(|&v| v as f64).sum();
        let bound = (n as f64 / 8.0 + 11.0) * 2f64.powi(-24) * exact;
        let got = sum8(n, |i| z[i]) as f64;
        assert!(
            (got - exact).abs() <= bound,
            "{got} vs {exact}, bound {bound}"
        );
        let serial = z.iter().fold(0f32, |s, v| s + v) as f64;
        assert!((serial - exact).abs() > (got - exact).abs());
    }

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-2.4999), -2);
        assert_eq!(nearest_int(4_194_303.0), 4_194_303);
        assert_eq!(nearest_int(-0.0), 0);
    }

    #[test]
    fn f16_matches_ggml_rules() {
        assert_eq!(f16_ggml(1.0), [0x00, 0x3c]);
        assert_eq!(f16_ggml(65520.0), [0x00, 0x7c]); // rounds up to infinity
        assert_eq!(f16_ggml(-0.0), [0x00, 0x80]);
        assert_eq!(f16_ggml(f32::NAN), [0x00, 0x7e]);
        assert_eq!(f16_ggml(-f32::from_bits(0x7fc1_2345)), [0x00, 0xfe]);
        // Halfway between the two smallest subnormals: ties to even (zero).
        assert_eq!(f16_ggml(2.0f32.powi(-25)), [0x00, 0x00]);
        assert_eq!(f16_ggml(3.0 * 2.0f32.powi(-25)), [0x02, 0x00]);
    }

    #[test]
    fn f16_matches_numpy_rules() {
        // numpy: np.float32 bits 0x7fc12345 → float16 bits 0x7e09; signalling 0x7f810000 →
        // 0x7c08 (not quieted); 0x7f800001 → 0x7c01 (payload too small, kept a NaN).
        assert_eq!(
            f16_numpy(f32::from_bits(0x7fc1_2345)),
            0x7e09u16.to_le_bytes()
        );
        assert_eq!(
            f16_numpy(f32::from_bits(0x7f81_0000)),
            0x7c08u16.to_le_bytes()
        );
        assert_eq!(
            f16_numpy(f32::from_bits(0x7f80_0001)),
            0x7c01u16.to_le_bytes()
        );
        assert_eq!(
            f16_numpy(f32::from_bits(0xffc0_0000)),
            0xfe00u16.to_le_bytes()
        );
        for x in [
            0.0f32,
            -1.5,
            65504.0,
            65520.0,
            6.1035156e-5,
            3.0 * 2.0f32.powi(-25),
        ] {
            assert_eq!(f16_numpy(x), f16_ggml(x));
        }
    }

    #[test]
    fn bf16_rounding_matches_ggml_rules() {
        // Exactly halfway between two bf16 values: ties to even.
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        // Signalling NaN becomes quiet.
        assert_eq!(f32_to_bf16(f32::from_bits(0x7f80_0001)), 0x7fc0);
        assert_eq!(f32_to_bf16(f32::INFINITY), 0x7f80);
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
    }

    #[test]
    fn truncation_like_cvttss2si() {
        assert_eq!(trunc_i32(8.99), 8);
        assert_eq!(trunc_i32(-0.7), 0);
        assert_eq!(trunc_i32(f32::NAN), i32::MIN);
        assert_eq!(trunc_i32(3e9), i32::MIN);
        assert_eq!(trunc_i32(f32::NEG_INFINITY), i32::MIN);
    }
}
