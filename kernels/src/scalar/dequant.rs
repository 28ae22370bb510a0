//! Reference dequantizers: the arithmetic of ggml's `dequantize_row_*`, operation for operation
//! (plain f32 multiplies and adds, no fused multiply-add), so results are bit-identical to ggml
//! and to gguf-py.

#![allow(clippy::needless_range_loop)] // index arithmetic mirrors the bit layouts

use crate::blocks::*;

/// F32 bytes (little-endian) to f32.
pub fn f32_row(src: &[u8], dst: &mut [f32]) {
    for (o, b) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// F16 to f32 (exact).
pub fn f16_row(src: &[u8], dst: &mut [f32]) {
    for (o, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *o = half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
    }
}

/// BF16 to f32 (exact: the 16 bits become the high half).
pub fn bf16_row(src: &[u8], dst: &mut [f32]) {
    for (o, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *o = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
    }
}

/// Q4_0.
pub fn q4_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ4_0>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = b.d();
        for j in 0..QK / 2 {
            y[j] = ((b.qs[j] & 0x0f) as i32 - 8) as f32 * d;
            y[j + QK / 2] = ((b.qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// Q4_1.
pub fn q4_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ4_1>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let (d, m) = (b.d(), b.m());
        for j in 0..QK / 2 {
            y[j] = (b.qs[j] & 0x0f) as f32 * d + m;
            y[j + QK / 2] = (b.qs[j] >> 4) as f32 * d + m;
        }
    }
}

#[inline(always)]
fn q5_high(qh: [u8; 4], j: usize) -> (u8, u8) {
    let h = u32::from_le_bytes(qh);
    (((h >> j) & 1) as u8 * 16, ((h >> (j + 16)) & 1) as u8 * 16)
}

/// Q5_0.
pub fn q5_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ5_0>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = b.d();
        for j in 0..QK / 2 {
            let (h0, h1) = q5_high(b.qh, j);
            y[j] = (((b.qs[j] & 0x0f) | h0) as i32 - 16) as f32 * d;
            y[j + QK / 2] = (((b.qs[j] >> 4) | h1) as i32 - 16) as f32 * d;
        }
    }
}

/// Q5_1.
pub fn q5_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ5_1>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let (d, m) = (b.d(), b.m());
        for j in 0..QK / 2 {
            let (h0, h1) = q5_high(b.qh, j);
            y[j] = ((b.qs[j] & 0x0f) | h0) as f32 * d + m;
            y[j + QK / 2] = ((b.qs[j] >> 4) | h1) as f32 * d + m;
        }
    }
}

/// Q8_0.
pub fn q8_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ8_0>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = b.d();
        for (o, &q) in y.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}

/// Q8_1 (the sum field is not needed).
pub fn q8_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ8_1>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = b.d();
        for (o, &q) in y.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}

/// Q2_K.
pub fn q2_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ2K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let (d, dmin) = (b.d(), b.dmin());
        for i in 0..QK_K {
            // Element i: half h, shift s, byte l; group of 16 is i / 16.
            let (h, s, l) = (i / 128, (i % 128) / 32, i % 32);
            let sc = b.scales[i / 16];
            let q = (b.qs[32 * h + l] >> (2 * s)) & 3;
            let dl = d * (sc & 0x0f) as f32;
            let ml = dmin * (sc >> 4) as f32;
            y[i] = dl * q as f32 - ml;
        }
    }
}

/// Q3_K.
pub fn q3_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ3K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = b.d();
        let sc = q3k_scales(&b.scales);
        for i in 0..QK_K {
            let (h, s, l) = (i / 128, (i % 128) / 32, i % 32);
            let low = ((b.qs[32 * h + l] >> (2 * s)) & 3) as i32;
            let high = (b.hmask[l] >> (4 * h + s)) & 1;
            let q = low - if high != 0 { 0 } else { 4 };
            let dl = d * sc[i / 16] as f32;
            y[i] = dl * q as f32;
        }
    }
}

/// Q4_K.
pub fn q4_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ4K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let (d, dmin) = (b.d(), b.dmin());
        let (sc, mn) = kquant_scales_mins(&b.scales);
        for j in 0..4 {
            let (d1, m1) = (d * sc[2 * j] as f32, dmin * mn[2 * j] as f32);
            let (d2, m2) = (d * sc[2 * j + 1] as f32, dmin * mn[2 * j + 1] as f32);
            for l in 0..32 {
                let q = b.qs[32 * j + l];
                y[64 * j + l] = d1 * (q & 0x0f) as f32 - m1;
                y[64 * j + 32 + l] = d2 * (q >> 4) as f32 - m2;
            }
        }
    }
}

/// Q5_K.
pub fn q5_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ5K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let (d, dmin) = (b.d(), b.dmin());
        let (sc, mn) = kquant_scales_mins(&b.scales);
        for j in 0..4 {
            let (d1, m1) = (d * sc[2 * j] as f32, dmin * mn[2 * j] as f32);
            let (d2, m2) = (d * sc[2 * j + 1] as f32, dmin * mn[2 * j + 1] as f32);
            for l in 0..32 {
                let q = b.qs[32 * j + l];
                let h = b.qh[l] >> (2 * j);
                let q1 = (q & 0x0f) + (h & 1) * 16;
                let q2 = (q >> 4) + ((h >> 1) & 1) * 16;
                y[64 * j + l] = d1 * q1 as f32 - m1;
                y[64 * j + 32 + l] = d2 * q2 as f32 - m2;
            }
        }
    }
}

/// The i8 value (−32..32) of Q6_K element `i` of a block.
#[inline(always)]
pub(crate) fn q6k_value(b: &BlockQ6K, i: usize) -> i32 {
    let (h, k, l) = (i / 128, (i % 128) / 32, i % 32);
    let ql = b.ql[64 * h + 32 * (k & 1) + l];
    let low = if k < 2 { ql & 0x0f } else { ql >> 4 };
    let high = (b.qh[32 * h + l] >> (2 * k)) & 3;
    (low | (high << 4)) as i32 - 32
}

/// Q6_K.
pub fn q6_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ6K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = b.d();
        for (i, o) in y.iter_mut().enumerate() {
            *o = d * b.scales[i / 16] as f32 * q6k_value(b, i) as f32;
        }
    }
}

/// Q8_K.
pub fn q8_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ8K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = b.d();
        for (o, &q) in y.iter_mut().zip(&b.qs) {
            *o = d * q as f32;
        }
    }
}
