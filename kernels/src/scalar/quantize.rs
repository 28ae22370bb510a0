//! Reference activation quantizers: ggml's `quantize_row_q8_0_ref`, `quantize_row_q8_1_ref`
//! and `quantize_row_q8_K_ref`, operation for operation.

use crate::blocks::*;

/// f32 to ggml's f16 bits: round to nearest even (the `half` crate matches F16C here).
#[inline(always)]
pub(crate) fn f16_bytes(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_bits().to_le_bytes()
}

/// C's `roundf` then a cast to i8 (values are within ±127 for finite input).
#[inline(always)]
fn round_i8(x: f32) -> i8 {
    x.round() as i8
}

/// Scale of a 32-element block: `(amax / 127, 1 / d or 0)`.
#[inline(always)]
fn q8_scale(x: &[f32]) -> (f32, f32) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    (d, if d != 0.0 { 1.0 / d } else { 0.0 })
}

/// Quantizes `x` (a multiple of 32 long) to Q8_0 blocks in `dst`.
pub fn q8_0(x: &[f32], dst: &mut [u8]) {
    for (y, x) in as_blocks_mut::<BlockQ8_0>(dst)
        .iter_mut()
        .zip(x.chunks_exact(QK))
    {
        let (d, id) = q8_scale(x);
        y.d = f16_bytes(d);
        for (q, &v) in y.qs.iter_mut().zip(x) {
            *q = round_i8(v * id);
        }
    }
}

/// Quantizes `x` to Q8_1 blocks (Q8_0 plus the f16 of `Σq · d`).
pub fn q8_1(x: &[f32], dst: &mut [u8]) {
    for (y, x) in as_blocks_mut::<BlockQ8_1>(dst)
        .iter_mut()
        .zip(x.chunks_exact(QK))
    {
        let (d, id) = q8_scale(x);
        y.d = f16_bytes(d);
        let mut sum = 0i32;
        for (q, &v) in y.qs.iter_mut().zip(x) {
            *q = round_i8(v * id);
            sum += *q as i32;
        }
        y.s = f16_bytes(sum as f32 * d);
    }
}

/// ggml's `nearest_int`: round half to even through the 1.5·2²³ trick (exact for |x| ≤ 2²²).
#[inline(always)]
pub(crate) fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// Quantizes `x` (a multiple of 256 long) to Q8_K blocks: scale `−max/127` where `max` is the
/// first element of largest magnitude, quants rounded half to even, and the 16 group sums.
/// An all-zero block gets scale 0 and zero quants and sums (ggml leaves its sums unwritten).
pub fn q8_k(x: &[f32], dst: &mut [u8]) {
    for (y, x) in as_blocks_mut::<BlockQ8K>(dst)
        .iter_mut()
        .zip(x.chunks_exact(QK_K))
    {
        let mut amax = 0f32;
        let mut max = 0f32;
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            y.d = 0f32.to_le_bytes();
            y.qs = [0; QK_K];
            y.bsums = [[0; 2]; QK_K / 16];
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in y.qs.iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for j in 0..QK_K / 16 {
            let s: i32 = y.qs[16 * j..16 * j + 16].iter().map(|&q| q as i32).sum();
            y.bsums[j] = (s as i16).to_le_bytes();
        }
        y.d = (1.0 / iscale).to_le_bytes();
    }
}

/// One f32 as BF16 bits, as ggml's `GGML_FP32_TO_BF16`: round to nearest, ties to even; NaN
/// stays NaN (quiet bit forced).
#[inline]
pub fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// f32 activations → BF16 (little-endian, 2 bytes each), as ggml's `ggml_fp32_to_bf16_row_ref`.
pub fn bf16(x: &[f32], dst: &mut [u8]) {
    for (v, d) in x.iter().zip(dst.chunks_exact_mut(2)) {
        d.copy_from_slice(&f32_to_bf16(*v).to_le_bytes());
    }
}
