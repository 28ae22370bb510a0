//! NEON kernels (aarch64): dot products for every weight type (F32, F16, BF16 with f32
//! activations; Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K … Q6_K with their quantized activations).
//!
//! No aarch64 standard library can be installed on the build machines, so these kernels are
//! written against [`intrin`], which re-exports `core::arch::aarch64` on aarch64 and implements
//! the same intrinsics lane by lane in plain Rust elsewhere: the same source is compiled and
//! tested against the scalar reference on x86 (`kernels/tests/neon_portable.rs`), and would run
//! natively on aarch64. [`table`] puts them in the `Isa::Neon` dispatch table (selected on
//! aarch64; the aarch64 build itself has never been compiled here); see docs/kernels.md.
//!
//! Arithmetic as on x86: the integer part of each block is exact (8-bit products summed in
//! i32 with a `vmull_s8` / `vpaddlq_s16` / `vpaddq_s32` emulation of SDOT, since `vdotq_s32` is
//! not a stable intrinsic), floats accumulate in 4-lane fused multiply-adds. F16 is widened
//! with integer operations (exact for every f16, including subnormals, infinities and NaN)
//! because the `vcvt_f32_f16` intrinsic is not stable either.
//!
//! Every function is `unsafe`: rows must be whole blocks of the same length (as
//! [`crate::Kernels::vec_dot`] checks), and on aarch64 the CPU must have NEON (always true).

#![allow(unused_unsafe)] // the intrinsics are safe functions on aarch64, `unsafe` here
#![allow(clippy::needless_range_loop)] // scale arrays indexed in step with block layouts

pub mod intrin;

use crate::blocks::{kquant_scales_mins, q3k_scales};
use crate::dispatch::{DotFn, Kernels};
use crate::isa::Isa;
use crate::GgmlType;
use core::ptr::read_unaligned as rd;
use intrin::*;

/// `acc + Σ_{4 bytes} a·b` per i32 lane: SDOT built from baseline NEON.
#[inline(always)]
unsafe fn dot_s8(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let lo = vpaddlq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    let hi = vpaddlq_s16(vmull_s8(vget_high_s8(a), vget_high_s8(b)));
    vaddq_s32(acc, vpaddq_s32(lo, hi))
}

/// Four f16 (as u32 lanes holding the bits) → f32, exactly.
#[inline(always)]
unsafe fn f16_to_f32x4(h: uint32x4_t) -> float32x4_t {
    let sign = vshlq_n_u32::<16>(vandq_u32(h, vdupq_n_u32(0x8000)));
    let nm = vshlq_n_u32::<13>(vandq_u32(h, vdupq_n_u32(0x7fff)));
    // Exponent and mantissa moved into f32 position, scaled by 2^(127−15): exact for normal
    // and subnormal f16.
    let f = vmulq_f32(
        vreinterpretq_f32_u32(nm),
        vdupq_n_f32(f32::from_bits(0x7780_0000)),
    );
    let inf_nan = vceqq_u32(vandq_u32(h, vdupq_n_u32(0x7c00)), vdupq_n_u32(0x7c00));
    let v = vbslq_u32(
        inf_nan,
        vorrq_u32(nm, vdupq_n_u32(0x7f80_0000)),
        vreinterpretq_u32_f32(f),
    );
    vreinterpretq_f32_u32(vorrq_u32(v, sign))
}

/// Scalar f16 → f32 (block scales).
#[inline(always)]
fn f16(p: *const u8) -> f32 {
    // SAFETY: callers pass a pointer to two readable bytes inside a block.
    half::f16::from_bits(unsafe { rd(p.cast::<u16>()) }).to_f32()
}

/// Float weights · f32 activations with 4 accumulators of 4 lanes; `load(p, i)` gives weight
/// elements `i .. i + 4` as f32.
#[inline(always)]
unsafe fn float_dot(
    n: usize,
    a: &[u8],
    load: impl Fn(usize) -> float32x4_t,
    scalar_w: impl Fn(usize) -> f32,
) -> f32 {
    let ap = a.as_ptr().cast::<f32>();
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= n {
        for (k, c) in acc.iter_mut().enumerate() {
            let j = i + 4 * k;
            *c = vfmaq_f32(*c, load(j), vld1q_f32(ap.add(j)));
        }
        i += 16;
    }
    while i + 4 <= n {
        acc[0] = vfmaq_f32(acc[0], load(i), vld1q_f32(ap.add(i)));
        i += 4;
    }
    let v = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
    let mut s = vaddvq_f32(v);
    for j in i..n {
        s += scalar_w(j) * rd(ap.add(j));
    }
    s
}

/// F32 weights · f32 activations.
///
/// # Safety
/// `a.len() == w.len()`, a multiple of 4.
pub unsafe fn dot_f32(w: &[u8], a: &[u8]) -> f32 {
    let wp = w.as_ptr().cast::<f32>();
    float_dot(w.len() / 4, a, |j| vld1q_f32(wp.add(j)), |j| rd(wp.add(j)))
}

/// F16 weights · f32 activations.
///
/// # Safety
/// `a.len() == 2·w.len()`, `w.len()` even.
pub unsafe fn dot_f16(w: &[u8], a: &[u8]) -> f32 {
    let wp = w.as_ptr().cast::<u16>();
    let load = |j: usize| {
        let v = vmovl_u16(vget_low_u16(vld1q_u16_4(wp.add(j))));
        f16_to_f32x4(v)
    };
    float_dot(w.len() / 2, a, load, |j| f16(wp.add(j).cast()))
}

/// BF16 weights · f32 activations.
///
/// # Safety
/// `a.len() == 2·w.len()`, `w.len()` even.
pub unsafe fn dot_bf16(w: &[u8], a: &[u8]) -> f32 {
    let wp = w.as_ptr().cast::<u16>();
    let load = |j: usize| {
        let v = vmovl_u16(vget_low_u16(vld1q_u16_4(wp.add(j))));
        vreinterpretq_f32_u32(vshlq_n_u32::<16>(v))
    };
    let scalar = |j: usize| f32::from_bits((rd(wp.add(j)) as u32) << 16);
    float_dot(w.len() / 2, a, load, scalar)
}

/// 4 u16 at `p` in the low half of a `uint16x8_t` (reads only 8 bytes).
#[inline(always)]
unsafe fn vld1q_u16_4(p: *const u16) -> uint16x8_t {
    let mut b = [0u16; 8];
    b[..4].copy_from_slice(&rd(p.cast::<[u16; 4]>()));
    vld1q_u16(b.as_ptr())
}

/// Q8_0 · Q8_0: 32 products per block in two emulated SDOTs, block term `(d_w·d_a)·Σ`
/// accumulated lane-wise (4 lanes, two accumulators).
///
/// # Safety
/// `w` and `a` are whole Q8_0 blocks, as many of each.
pub unsafe fn dot_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let nb = w.len() / 34;
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); 2];
    for i in 0..nb {
        let (x, y) = (wp.add(34 * i), ap.add(34 * i));
        let mut p = vdupq_n_s32(0);
        p = dot_s8(p, vld1q_s8(x.add(2).cast()), vld1q_s8(y.add(2).cast()));
        p = dot_s8(p, vld1q_s8(x.add(18).cast()), vld1q_s8(y.add(18).cast()));
        let d = vdupq_n_f32(f16(x) * f16(y));
        acc[i & 1] = vfmaq_f32(acc[i & 1], vcvtq_f32_s32(p), d);
    }
    vaddvq_f32(vaddq_f32(acc[0], acc[1]))
}

/// Q4_K · Q8_K: per 64 elements, 32 bytes of nibbles (low → sub-block 2j, high → 2j + 1)
/// against the activations in emulated SDOTs; the 6-bit scales weight each sub-block sum in
/// i32 and the mins meet the Q8_K block sums, as in the scalar reference.
///
/// # Safety
/// `w` are whole Q4_K blocks and `a` as many Q8_K blocks.
pub unsafe fn dot_q4_k(w: &[u8], a: &[u8]) -> f32 {
    let nb = w.len() / 144;
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let m4 = vdupq_n_u8(0x0f);
    let mut acc = vdupq_n_f32(0.0);
    let mut accm = 0f32;
    for i in 0..nb {
        let (x, y) = (wp.add(144 * i), ap.add(292 * i));
        let (sc, mn) = kquant_scales_mins(&rd(x.add(4).cast::<[u8; 12]>()));
        let mut summs = 0i32;
        for j in 0..8 {
            let b = |k: usize| rd(y.add(260 + 2 * k).cast::<i16>()) as i32;
            summs += mn[j] as i32 * (b(2 * j) + b(2 * j + 1));
        }
        let yq = y.add(4);
        let mut sumi = vdupq_n_s32(0);
        for j in 0..4 {
            let (mut lo, mut hi) = (vdupq_n_s32(0), vdupq_n_s32(0));
            for h in 0..2 {
                let q = vld1q_u8(x.add(16 + 32 * j + 16 * h));
                let ql = vreinterpretq_s8_u8(vandq_u8(q, m4));
                let qh = vreinterpretq_s8_u8(vshrq_n_u8::<4>(q));
                lo = dot_s8(lo, ql, vld1q_s8(yq.add(64 * j + 16 * h).cast()));
                hi = dot_s8(hi, qh, vld1q_s8(yq.add(64 * j + 32 + 16 * h).cast()));
            }
            let s_lo = vdupq_n_s32(sc[2 * j] as i32);
            let s_hi = vdupq_n_s32(sc[2 * j + 1] as i32);
            sumi = vaddq_s32(sumi, vaddq_s32(mul_s32(lo, s_lo), mul_s32(hi, s_hi)));
        }
        let yd = rd(y.cast::<f32>());
        acc = vfmaq_f32(acc, vcvtq_f32_s32(sumi), vdupq_n_f32(f16(x) * yd));
        accm += (f16(x.add(2)) * yd) * summs as f32;
    }
    vaddvq_f32(acc) - accm
}

/// Lane-wise i32 multiply (small operands: 6-bit scale × sub-block sum, no overflow).
#[inline(always)]
unsafe fn mul_s32(a: int32x4_t, b: int32x4_t) -> int32x4_t {
    vmulq_s32(a, b)
}

/// The fifth bits of 16 elements of a Q5_0 / Q5_1 block: bit `j` of the little-endian u32 `qh`
/// for elements `base + j` (`base` 0 or 16, i.e. bytes `qh[base/8]`, `qh[base/8 + 1]`), as
/// `0x10` or `0` per byte.
#[inline(always)]
unsafe fn q5_high(qh: *const u8, base: usize) -> uint8x16_t {
    const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let b = vcombine_u8(
        vdup_n_u8(*qh.add(base / 8)),
        vdup_n_u8(*qh.add(base / 8 + 1)),
    );
    vandq_u8(vtstq_u8(b, vld1q_u8(BITS.as_ptr())), vdupq_n_u8(0x10))
}

/// Shared loop of the 32-element types: `quants(x)` gives the block's 32 weight quants as two
/// i8 vectors (elements 0..16, 16..32), `qoff` / `yoff` the offsets of the activation quants,
/// `dw(x)` the weight scale; `min(x, y)` the block's additive term (Q4_1 / Q5_1), summed apart
/// in block order as the scalar reference does.
#[inline(always)]
unsafe fn dot_32(
    w: &[u8],
    a: &[u8],
    (wb, ab, yoff): (usize, usize, usize),
    quants: impl Fn(*const u8) -> (int8x16_t, int8x16_t),
    min: impl Fn(*const u8, *const u8) -> f32,
) -> f32 {
    let nb = w.len() / wb;
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); 2];
    let mut summ = 0f32;
    for i in 0..nb {
        let (x, y) = (wp.add(wb * i), ap.add(ab * i));
        let (lo, hi) = quants(x);
        let mut p = vdupq_n_s32(0);
        p = dot_s8(p, lo, vld1q_s8(y.add(yoff).cast()));
        p = dot_s8(p, hi, vld1q_s8(y.add(yoff + 16).cast()));
        let d = vdupq_n_f32(f16(x) * f16(y));
        acc[i & 1] = vfmaq_f32(acc[i & 1], vcvtq_f32_s32(p), d);
        summ += min(x, y);
    }
    vaddvq_f32(vaddq_f32(acc[0], acc[1])) + summ
}

/// Low and high nibbles of 16 bytes at `q` as two u8 vectors.
#[inline(always)]
unsafe fn nibbles(q: *const u8) -> (uint8x16_t, uint8x16_t) {
    let v = vld1q_u8(q);
    (vandq_u8(v, vdupq_n_u8(0x0f)), vshrq_n_u8::<4>(v))
}

/// `v − k` as i8 lanes (`v` holds small unsigned quants).
#[inline(always)]
unsafe fn offset(v: uint8x16_t, k: i8) -> int8x16_t {
    vsubq_s8(vreinterpretq_s8_u8(v), vdupq_n_s8(k))
}

/// Q4_0 · Q8_0: nibbles − 8 against the activations in two emulated SDOTs per block.
///
/// # Safety
/// `w` are whole Q4_0 blocks and `a` as many Q8_0 blocks.
pub unsafe fn dot_q4_0(w: &[u8], a: &[u8]) -> f32 {
    let quants = |x: *const u8| {
        let (lo, hi) = nibbles(x.add(2));
        (offset(lo, 8), offset(hi, 8))
    };
    dot_32(w, a, (18, 34, 2), quants, |_, _| 0.0)
}

/// Q4_1 · Q8_1: unsigned nibbles; the block term `m·s` is summed apart.
///
/// # Safety
/// `w` are whole Q4_1 blocks and `a` as many Q8_1 blocks.
pub unsafe fn dot_q4_1(w: &[u8], a: &[u8]) -> f32 {
    let quants = |x: *const u8| {
        let (lo, hi) = nibbles(x.add(4));
        (vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi))
    };
    dot_32(w, a, (20, 36, 4), quants, |x, y| {
        f16(x.add(2)) * f16(y.add(2))
    })
}

/// Q5_0 · Q8_0: nibbles with their fifth bits (CMTST against a bit mask), − 16.
///
/// # Safety
/// `w` are whole Q5_0 blocks and `a` as many Q8_0 blocks.
pub unsafe fn dot_q5_0(w: &[u8], a: &[u8]) -> f32 {
    let quants = |x: *const u8| {
        let (lo, hi) = nibbles(x.add(6));
        let lo = vorrq_u8(lo, q5_high(x.add(2), 0));
        let hi = vorrq_u8(hi, q5_high(x.add(2), 16));
        (offset(lo, 16), offset(hi, 16))
    };
    dot_32(w, a, (22, 34, 2), quants, |_, _| 0.0)
}

/// Q5_1 · Q8_1: unsigned 5-bit quants; the block term `m·s` is summed apart.
///
/// # Safety
/// `w` are whole Q5_1 blocks and `a` as many Q8_1 blocks.
pub unsafe fn dot_q5_1(w: &[u8], a: &[u8]) -> f32 {
    let quants = |x: *const u8| {
        let (lo, hi) = nibbles(x.add(8));
        let lo = vorrq_u8(lo, q5_high(x.add(4), 0));
        let hi = vorrq_u8(hi, q5_high(x.add(4), 16));
        (vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi))
    };
    dot_32(w, a, (24, 36, 4), quants, |x, y| {
        f16(x.add(2)) * f16(y.add(2))
    })
}

/// `v >> s` (u8 lanes) for the shifts the 2-bit layouts use, `s` in {0, 2, 4, 6}.
#[inline(always)]
unsafe fn shr2(v: uint8x16_t, s: usize) -> uint8x16_t {
    match s {
        0 => v,
        2 => vshrq_n_u8::<2>(v),
        4 => vshrq_n_u8::<4>(v),
        _ => vshrq_n_u8::<6>(v),
    }
}

/// The k-quant tail of a super-block: `sumi` (i32 lanes, already scaled per group) times
/// `d·yd` into `acc`.
#[inline(always)]
unsafe fn kq_acc(acc: float32x4_t, sumi: int32x4_t, d: f32) -> float32x4_t {
    vfmaq_f32(acc, vcvtq_f32_s32(sumi), vdupq_n_f32(d))
}

/// Q6_K · Q8_K: per 16 elements (one scale group) 16 bytes of low nibbles and 16 of high-bit
/// pairs are merged into 6-bit quants − 32, dotted with the activations in an emulated SDOT
/// and weighted by the group's i8 scale in i32.
///
/// # Safety
/// `w` are whole Q6_K blocks and `a` as many Q8_K blocks.
pub unsafe fn dot_q6_k(w: &[u8], a: &[u8]) -> f32 {
    let nb = w.len() / 210;
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let mut acc = vdupq_n_f32(0.0);
    for i in 0..nb {
        let (x, y) = (wp.add(210 * i), ap.add(292 * i));
        let (ql, qh, sc, yq) = (x, x.add(128), x.add(192).cast::<i8>(), y.add(4));
        let mut sumi = vdupq_n_s32(0);
        for h in 0..2 {
            for lh in 0..2 {
                let hb = vld1q_u8(qh.add(32 * h + 16 * lh));
                for k in 0..4 {
                    let l = vld1q_u8(ql.add(64 * h + 32 * (k & 1) + 16 * lh));
                    let low = if k < 2 {
                        vandq_u8(l, vdupq_n_u8(0x0f))
                    } else {
                        vshrq_n_u8::<4>(l)
                    };
                    let high = vshlq_n_u8::<4>(vandq_u8(shr2(hb, 2 * k), vdupq_n_u8(3)));
                    let q = offset(vorrq_u8(low, high), 32);
                    let e = 128 * h + 32 * k + 16 * lh;
                    let p = dot_s8(vdupq_n_s32(0), q, vld1q_s8(yq.add(e).cast()));
                    sumi = vaddq_s32(sumi, mul_s32(p, vdupq_n_s32(*sc.add(e / 16) as i32)));
                }
            }
        }
        acc = kq_acc(acc, sumi, f16(x.add(208)) * rd(y.cast::<f32>()));
    }
    vaddvq_f32(acc)
}

/// Q5_K · Q8_K: Q4_K's nibbles with their fifth bits (CMTST of `qh` against bit `g` of
/// group g); scales and mins as in Q4_K.
///
/// # Safety
/// `w` are whole Q5_K blocks and `a` as many Q8_K blocks.
pub unsafe fn dot_q5_k(w: &[u8], a: &[u8]) -> f32 {
    let nb = w.len() / 176;
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let mut acc = vdupq_n_f32(0.0);
    let mut accm = 0f32;
    for i in 0..nb {
        let (x, y) = (wp.add(176 * i), ap.add(292 * i));
        let (sc, mn) = kquant_scales_mins(&rd(x.add(4).cast::<[u8; 12]>()));
        let mut summs = 0i32;
        for j in 0..8 {
            let b = |k: usize| rd(y.add(260 + 2 * k).cast::<i16>()) as i32;
            summs += mn[j] as i32 * (b(2 * j) + b(2 * j + 1));
        }
        let (qh, qs, yq) = (x.add(16), x.add(48), y.add(4));
        let fifth =
            |hb: uint8x16_t, g: usize| vandq_u8(vtstq_u8(hb, vdupq_n_u8(1 << g)), vdupq_n_u8(0x10));
        let mut sumi = vdupq_n_s32(0);
        for j in 0..4 {
            let (mut lo, mut hi) = (vdupq_n_s32(0), vdupq_n_s32(0));
            for h in 0..2 {
                let hb = vld1q_u8(qh.add(16 * h));
                let (ql, qu) = nibbles(qs.add(32 * j + 16 * h));
                let ql = vreinterpretq_s8_u8(vorrq_u8(ql, fifth(hb, 2 * j)));
                let qu = vreinterpretq_s8_u8(vorrq_u8(qu, fifth(hb, 2 * j + 1)));
                lo = dot_s8(lo, ql, vld1q_s8(yq.add(64 * j + 16 * h).cast()));
                hi = dot_s8(hi, qu, vld1q_s8(yq.add(64 * j + 32 + 16 * h).cast()));
            }
            let s_lo = vdupq_n_s32(sc[2 * j] as i32);
            let s_hi = vdupq_n_s32(sc[2 * j + 1] as i32);
            sumi = vaddq_s32(sumi, vaddq_s32(mul_s32(lo, s_lo), mul_s32(hi, s_hi)));
        }
        let yd = rd(y.cast::<f32>());
        acc = kq_acc(acc, sumi, f16(x) * yd);
        accm += (f16(x.add(2)) * yd) * summs as f32;
    }
    vaddvq_f32(acc) - accm
}

/// Q2_K · Q8_K: 2-bit quants (byte `32h + l`, bits `2s..2s+2`) per 16-element group against
/// the activations, weighted by the low nibble of the group's scale byte; the high nibbles
/// (mins) meet the Q8_K block sums.
///
/// # Safety
/// `w` are whole Q2_K blocks and `a` as many Q8_K blocks.
pub unsafe fn dot_q2_k(w: &[u8], a: &[u8]) -> f32 {
    let nb = w.len() / 84;
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let mut acc = vdupq_n_f32(0.0);
    let mut accm = 0f32;
    for i in 0..nb {
        let (x, y) = (wp.add(84 * i), ap.add(292 * i));
        let (scales, qs, yq) = (x, x.add(16), y.add(4));
        let mut summs = 0i32;
        for g in 0..16 {
            summs += (*scales.add(g) >> 4) as i32 * rd(y.add(260 + 2 * g).cast::<i16>()) as i32;
        }
        let mut sumi = vdupq_n_s32(0);
        for h in 0..2 {
            for lh in 0..2 {
                let b = vld1q_u8(qs.add(32 * h + 16 * lh));
                for s in 0..4 {
                    let q = vreinterpretq_s8_u8(vandq_u8(shr2(b, 2 * s), vdupq_n_u8(3)));
                    let e = 128 * h + 32 * s + 16 * lh;
                    let p = dot_s8(vdupq_n_s32(0), q, vld1q_s8(yq.add(e).cast()));
                    let scale = (*scales.add(e / 16) & 0x0f) as i32;
                    sumi = vaddq_s32(sumi, mul_s32(p, vdupq_n_s32(scale)));
                }
            }
        }
        let yd = rd(y.cast::<f32>());
        acc = kq_acc(acc, sumi, yd * f16(x.add(80)));
        accm += (yd * f16(x.add(82))) * summs as f32;
    }
    vaddvq_f32(acc) - accm
}

/// Q3_K · Q8_K: Q2_K's 2-bit layout, minus 4 where the `hmask` bit (bit `4h + s` of byte l,
/// tested with CMTST) is clear, weighted by the unpacked 6-bit scales − 32.
///
/// # Safety
/// `w` are whole Q3_K blocks and `a` as many Q8_K blocks.
pub unsafe fn dot_q3_k(w: &[u8], a: &[u8]) -> f32 {
    let nb = w.len() / 110;
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let mut acc = vdupq_n_f32(0.0);
    for i in 0..nb {
        let (x, y) = (wp.add(110 * i), ap.add(292 * i));
        let (hmask, qs, yq) = (x, x.add(32), y.add(4));
        let sc = q3k_scales(&rd(x.add(96).cast::<[u8; 12]>()));
        let mut sumi = vdupq_n_s32(0);
        for h in 0..2 {
            for lh in 0..2 {
                let b = vld1q_u8(qs.add(32 * h + 16 * lh));
                let hm = vld1q_u8(hmask.add(16 * lh));
                for s in 0..4 {
                    let low = vandq_u8(shr2(b, 2 * s), vdupq_n_u8(3));
                    let set = vtstq_u8(hm, vdupq_n_u8(1 << (4 * h + s)));
                    let q = offset(vorrq_u8(low, vandq_u8(set, vdupq_n_u8(4))), 4);
                    let e = 128 * h + 32 * s + 16 * lh;
                    let p = dot_s8(vdupq_n_s32(0), q, vld1q_s8(yq.add(e).cast()));
                    sumi = vaddq_s32(sumi, mul_s32(p, vdupq_n_s32(sc[e / 16] as i32)));
                }
            }
        }
        acc = kq_acc(acc, sumi, f16(x.add(108)) * rd(y.cast::<f32>()));
    }
    vaddvq_f32(acc)
}

/// The NEON kernel table: the scalar table with every weight type's dot product replaced by
/// the NEON one (dequantizers, activation quantizers and BF16 × BF16 stay scalar). On aarch64
/// this is what `kernels_for(Isa::Neon)` holds; elsewhere the same table runs on the portable
/// intrinsics (slow; only for testing the table itself).
pub fn table() -> Kernels {
    macro_rules! safe {
        ($($f:ident),*) => {
            [$({
                fn g(w: &[u8], a: &[u8]) -> f32 {
                    // SAFETY: the table's callers (`Kernels::vec_dot`, the GEMV / GEMM) check
                    // that `w` and `a` are whole rows of the same length; NEON is baseline on
                    // aarch64, and elsewhere the intrinsics are plain Rust.
                    unsafe { $f(w, a) }
                }
                g as DotFn
            }),*]
        };
    }
    let fns = safe!(
        dot_f32, dot_f16, dot_bf16, dot_q4_0, dot_q4_1, dot_q5_0, dot_q5_1, dot_q8_0, dot_q2_k,
        dot_q3_k, dot_q4_k, dot_q5_k, dot_q6_k
    );
    // In the order of `GgmlType::WEIGHTS`.
    let types = GgmlType::WEIGHTS;
    let mut k = Kernels::scalar_table();
    k.isa = Isa::Neon;
    for (t, f) in types.into_iter().zip(fns) {
        k.dot[t.index()] = Some(f);
    }
    k
}
