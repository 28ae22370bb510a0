//! Reference dot products of one weight row with one activation row, the way ggml computes
//! them: the activation row is quantized (Q8_0, Q8_1 or Q8_K, see
//! [`crate::QType::vec_dot_type`]), each block's integer dot product is exact, and the
//! per-block float terms are summed in block order. Float weights take f32 activations and sum
//! `w·x` in element order (no fused multiply-add).
//!
//! Weights and activations are whole rows of bytes of the same length in elements; `a` for
//! the float types holds little-endian f32.

use super::dequant::q6k_value;
use crate::blocks::*;

#[inline(always)]
fn f32_at(a: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]])
}

/// F32 weights · f32 activations.
pub fn f32_f32(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for i in 0..w.len() / 4 {
        s += f32_at(w, i) * f32_at(a, i);
    }
    s
}

/// F16 weights · f32 activations.
pub fn f16_f32(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for i in 0..w.len() / 2 {
        let v = half::f16::from_bits(u16::from_le_bytes([w[2 * i], w[2 * i + 1]])).to_f32();
        s += v * f32_at(a, i);
    }
    s
}

/// BF16 weights · f32 activations.
pub fn bf16_f32(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for i in 0..w.len() / 2 {
        let v = f32::from_bits((u16::from_le_bytes([w[2 * i], w[2 * i + 1]]) as u32) << 16);
        s += v * f32_at(a, i);
    }
    s
}

/// BF16 weights · BF16 activations (the reference for the `vdpbf16ps` path): every product of
/// two BF16 values is exact in f32; summed in element order.
pub fn bf16_bf16(w: &[u8], a: &[u8]) -> f32 {
    let bf = |b: &[u8], i: usize| {
        f32::from_bits((u16::from_le_bytes([b[2 * i], b[2 * i + 1]]) as u32) << 16)
    };
    let mut s = 0f32;
    for i in 0..w.len() / 2 {
        s += bf(w, i) * bf(a, i);
    }
    s
}

/// Q4_0 · Q8_0.
pub fn q4_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ4_0>(w)
        .iter()
        .zip(as_blocks::<BlockQ8_0>(a))
    {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            sumi += ((x.qs[j] & 0x0f) as i32 - 8) * y.qs[j] as i32;
            sumi += ((x.qs[j] >> 4) as i32 - 8) * y.qs[j + QK / 2] as i32;
        }
        s += (x.d() * y.d()) * sumi as f32;
    }
    s
}

/// Q4_1 · Q8_1.
pub fn q4_1_q8_1(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ4_1>(w)
        .iter()
        .zip(as_blocks::<BlockQ8_1>(a))
    {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            sumi += (x.qs[j] & 0x0f) as i32 * y.qs[j] as i32;
            sumi += (x.qs[j] >> 4) as i32 * y.qs[j + QK / 2] as i32;
        }
        s += (x.d() * y.d()) * sumi as f32 + x.m() * y.s();
    }
    s
}

#[inline(always)]
fn q5_values(qs: &[u8; 16], qh: [u8; 4], j: usize) -> (i32, i32) {
    let h = u32::from_le_bytes(qh);
    let lo = (qs[j] & 0x0f) as i32 | (((h >> j) & 1) << 4) as i32;
    let hi = (qs[j] >> 4) as i32 | (((h >> (j + 16)) & 1) << 4) as i32;
    (lo, hi)
}

/// Q5_0 · Q8_0.
pub fn q5_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ5_0>(w)
        .iter()
        .zip(as_blocks::<BlockQ8_0>(a))
    {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let (lo, hi) = q5_values(&x.qs, x.qh, j);
            sumi += (lo - 16) * y.qs[j] as i32 + (hi - 16) * y.qs[j + QK / 2] as i32;
        }
        s += (x.d() * y.d()) * sumi as f32;
    }
    s
}

/// Q5_1 · Q8_1.
pub fn q5_1_q8_1(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ5_1>(w)
        .iter()
        .zip(as_blocks::<BlockQ8_1>(a))
    {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let (lo, hi) = q5_values(&x.qs, x.qh, j);
            sumi += lo * y.qs[j] as i32 + hi * y.qs[j + QK / 2] as i32;
        }
        s += (x.d() * y.d()) * sumi as f32 + x.m() * y.s();
    }
    s
}

/// Q8_0 · Q8_0.
pub fn q8_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ8_0>(w)
        .iter()
        .zip(as_blocks::<BlockQ8_0>(a))
    {
        let sumi: i32 =
            x.qs.iter()
                .zip(&y.qs)
                .map(|(&p, &q)| p as i32 * q as i32)
                .sum();
        s += (x.d() * y.d()) * sumi as f32;
    }
    s
}

/// Q2_K · Q8_K.
pub fn q2_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ2K>(w)
        .iter()
        .zip(as_blocks::<BlockQ8K>(a))
    {
        let mut isum = 0i32;
        let mut summs = 0i32;
        for g in 0..16 {
            let mut gs = 0i32;
            for i in 16 * g..16 * g + 16 {
                let (h, sh, l) = (i / 128, (i % 128) / 32, i % 32);
                let q = ((x.qs[32 * h + l] >> (2 * sh)) & 3) as i32;
                gs += q * y.qs[i] as i32;
            }
            isum += (x.scales[g] & 0x0f) as i32 * gs;
            summs += (x.scales[g] >> 4) as i32 * y.bsum(g) as i32;
        }
        let yd = y.d();
        s += (yd * x.d()) * isum as f32 - (yd * x.dmin()) * summs as f32;
    }
    s
}

/// Q3_K · Q8_K.
pub fn q3_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ3K>(w)
        .iter()
        .zip(as_blocks::<BlockQ8K>(a))
    {
        let sc = q3k_scales(&x.scales);
        let mut isum = 0i32;
        for (g, &scale) in sc.iter().enumerate() {
            let mut gs = 0i32;
            for i in 16 * g..16 * g + 16 {
                let (h, sh, l) = (i / 128, (i % 128) / 32, i % 32);
                let low = ((x.qs[32 * h + l] >> (2 * sh)) & 3) as i32;
                let high = (x.hmask[l] >> (4 * h + sh)) & 1;
                gs += (low - if high != 0 { 0 } else { 4 }) * y.qs[i] as i32;
            }
            isum += scale as i32 * gs;
        }
        s += (x.d() * y.d()) * isum as f32;
    }
    s
}

/// Shared body of Q4_K and Q5_K: `q(i)` gives the unsigned quant of element i.
#[inline(always)]
fn k45(scales: &[u8; 12], y: &BlockQ8K, q: impl Fn(usize) -> i32) -> (i32, i32) {
    let (sc, mn) = kquant_scales_mins(scales);
    let mut isum = 0i32;
    let mut summs = 0i32;
    for g in 0..8 {
        let gs: i32 = (32 * g..32 * g + 32).map(|i| q(i) * y.qs[i] as i32).sum();
        isum += sc[g] as i32 * gs;
        summs += mn[g] as i32 * (y.bsum(2 * g) as i32 + y.bsum(2 * g + 1) as i32);
    }
    (isum, summs)
}

/// Q4_K · Q8_K.
pub fn q4_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ4K>(w)
        .iter()
        .zip(as_blocks::<BlockQ8K>(a))
    {
        let (isum, summs) = k45(&x.scales, y, |i| {
            let b = x.qs[32 * (i / 64) + i % 32];
            (if i % 64 < 32 { b & 0x0f } else { b >> 4 }) as i32
        });
        let yd = y.d();
        s += (x.d() * yd) * isum as f32 - (x.dmin() * yd) * summs as f32;
    }
    s
}

/// Q5_K · Q8_K.
pub fn q5_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ5K>(w)
        .iter()
        .zip(as_blocks::<BlockQ8K>(a))
    {
        let (isum, summs) = k45(&x.scales, y, |i| {
            let b = x.qs[32 * (i / 64) + i % 32];
            let lo = if i % 64 < 32 { b & 0x0f } else { b >> 4 };
            let hi = (x.qh[i % 32] >> (i / 32)) & 1;
            (lo | (hi << 4)) as i32
        });
        let yd = y.d();
        s += (x.d() * yd) * isum as f32 - (x.dmin() * yd) * summs as f32;
    }
    s
}

/// Q6_K · Q8_K.
pub fn q6_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ6K>(w)
        .iter()
        .zip(as_blocks::<BlockQ8K>(a))
    {
        let mut isum = 0i32;
        for g in 0..16 {
            let gs: i32 = (16 * g..16 * g + 16)
                .map(|i| q6k_value(x, i) * y.qs[i] as i32)
                .sum();
            isum += x.scales[g] as i32 * gs;
        }
        s += (x.d() * y.d()) * isum as f32;
    }
    s
}
