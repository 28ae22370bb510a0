//! Scalar numerics shared by the block quantizers, written to give the same bits as ggml's C
//! (compiled for baseline x86-64: plain f32 operations, no fused multiply-add, no reassociation).

use half::f16;

/// Super-block size of the k-quants (ggml's `QK_K`).
pub(crate) const QK_K: usize = 256;

/// Below this absolute maximum a group counts as all zero (ggml's `GROUP_MAX_EPS`).
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: adds 1.5·2²³ so that the FPU rounds half to even, then reads the
/// integer back from the mantissa bits. Exact for |x| ≤ 2²²; beyond that it returns the same
/// (meaningless but deterministic) value as the C code, whose range assert is compiled out.
#[inline]
pub(crate) fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// ggml's `GGML_FP32_TO_FP16` as little-endian bytes: round to nearest even, overflow to
/// infinity, and every NaN becomes the quiet NaN 0x7e00 with the input's sign.
#[inline]
pub(crate) fn f16_bytes(x: f32) -> [u8; 2] {
    let bits = if x.is_nan() {
        ((x.to_bits() >> 16) as u16 & 0x8000) | 0x7e00
    } else {
        f16::from_f32(x).to_bits()
    };
    bits.to_le_bytes()
}

/// ggml's `GGML_FP16_TO_FP32` of two little-endian bytes (exact).
#[inline]
pub(crate) fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Writes `x` as ggml's f16 at `b[at..at + 2]` and returns the value read back.
#[inline]
pub(crate) fn put_f16(b: &mut [u8], at: usize, x: f32) -> f32 {
    b[at..at + 2].copy_from_slice(&f16_bytes(x));
    f16_at(b, at)
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(f16_bytes(1.0), [0x00, 0x3c]);
        assert_eq!(f16_bytes(65520.0), [0x00, 0x7c]); // rounds up to infinity
        assert_eq!(f16_bytes(-0.0), [0x00, 0x80]);
        assert_eq!(f16_bytes(f32::NAN), [0x00, 0x7e]);
        assert_eq!(f16_bytes(-f32::from_bits(0x7fc1_2345)), [0x00, 0xfe]);
        // Halfway between the two smallest subnormals: ties to even (zero).
        assert_eq!(f16_bytes(2.0f32.powi(-25)), [0x00, 0x00]);
        assert_eq!(f16_bytes(3.0 * 2.0f32.powi(-25)), [0x02, 0x00]);
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
