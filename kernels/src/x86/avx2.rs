//! AVX2 + FMA + F16C kernels (256-bit).
//!
//! Integer parts follow the scalar reference exactly: quants are widened to u8 × i8 pairs with
//! `vpmaddubsw` (no saturation is possible for the value ranges involved: weights are unsigned
//! nibbles or offset 5/6-bit values, activations i8), group scales are applied with
//! `vpmaddwd`, and each block's integer sums are exact i32. Only the float accumulation across
//! blocks differs from the scalar order (8 lanes with fused multiply-add).
//!
//! Every function here is `unsafe`: callers must make sure the CPU has AVX2, FMA and F16C, and
//! that the slices have the lengths the row sizes imply (the safe wrappers in
//! [`super`] check both).

use crate::blocks::{QK, QK_K};
use core::arch::x86_64::*;
use core::ptr::read_unaligned as rd;

// ---------------------------------------------------------------------------------------
// Helpers

static PF: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(usize::MAX);
static PF_FLOAT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(usize::MAX);

/// The AVX2 quantized dot products' default prefetch distance. On the Zen 3 machine (AMD EPYC,
/// AVX2 only) the hardware prefetchers alone left the GEMVs of DRAM-resident rows 15–35 %
/// below what the same kernels reach with a software prefetch 2–4 KiB ahead
/// (`examples/pf_sweep.rs`, docs/kernels.md "AVX2 GEMV on Zen 3").
pub const DEFAULT_PREFETCH: usize = 3072;

/// The float (F32, F16, BF16) dot products' default prefetch distance: F32 lost 5–10 % at
/// 3 KiB and gained nothing at 1 KiB; F16 and BF16 gain most at 1–2 KiB.
pub const DEFAULT_PREFETCH_FLOAT: usize = 1024;

/// `cell`, or on first use `var` from the environment, or `default`.
#[inline]
fn knob(cell: &std::sync::atomic::AtomicUsize, var: &str, default: usize) -> usize {
    use std::sync::atomic::Ordering::Relaxed;
    let v = cell.load(Relaxed);
    if v != usize::MAX {
        return v;
    }
    let d = std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default);
    cell.store(d, Relaxed);
    d
}

/// Bytes ahead of the weight stream that the AVX2 quantized dot products prefetch (0: none):
/// [`DEFAULT_PREFETCH`], or `GQ_AVX2_PF`, or what [`set_prefetch_distance`] set.
#[inline]
pub fn prefetch_distance() -> usize {
    knob(&PF, "GQ_AVX2_PF", DEFAULT_PREFETCH)
}

/// The same for the float dot products: [`DEFAULT_PREFETCH_FLOAT`], or `GQ_AVX2_PF_FLOAT`, or
/// what [`set_prefetch_distance`] set.
#[inline]
pub fn prefetch_distance_float() -> usize {
    knob(&PF_FLOAT, "GQ_AVX2_PF_FLOAT", DEFAULT_PREFETCH_FLOAT)
}

/// Sets both prefetch distances in bytes (0: none); for benches that sweep them.
pub fn set_prefetch_distance(bytes: usize) {
    PF.store(bytes, std::sync::atomic::Ordering::Relaxed);
    PF_FLOAT.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// The first prefetch target of a row at `wp` (or one that never comes when prefetch is off).
#[inline(always)]
fn pf_start(wp: *const u8, pd: usize) -> *const u8 {
    if pd == 0 {
        usize::MAX as *const u8
    } else {
        wp.wrapping_add(pd)
    }
}

/// Prefetches the lines from `*next` up to `upto`, advancing `*next` (hints never fault).
#[inline(always)]
unsafe fn pf_to(next: &mut *const u8, upto: *const u8) {
    while (*next as usize) < upto as usize {
        _mm_prefetch::<_MM_HINT_T0>((*next).cast());
        *next = next.wrapping_add(64);
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// The two f16 at `p` and `p + 2` (4 bytes read) as lanes 0 and 1 (lanes 2, 3 zero).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f16x2(p: *const u8) -> __m128 {
    let v: u32 = rd(p.cast::<u32>());
    let out: __m128;
    // SAFETY: two register-only instructions (SSE2 `vmovd`, which zeroes the upper lanes, and
    // F16C `vcvtph2ps`, both available under this function's target features); no memory,
    // stack or flags are touched. Written as asm because LLVM otherwise narrows the load to a
    // 16-bit insert into whatever register is live (often an accumulator), serializing blocks.
    unsafe {
        core::arch::asm!(
            "vmovd {x}, {v:e}",
            "vcvtph2ps {x}, {x}",
            v = in(reg) v,
            x = out(xmm_reg) out,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// The f16 at `p`; reads `p .. p + 4` (callers guarantee two more bytes in the block).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f16_at(p: *const u8) -> f32 {
    _mm_cvtss_f32(f16x2(p))
}

/// The f16 at `p`; reads `p − 2 .. p + 2` (for fields at the end of a block).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f16_end(p: *const u8) -> f32 {
    _mm_cvtss_f32(_mm_movehdup_ps(f16x2(p.sub(2))))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn ld(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p.cast())
}

/// Σ of 4 products per i32 lane: `x` (i8, |x| ≤ 127) times `y` (i8, |y| ≤ 127).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_i8(x: __m256i, y: __m256i) -> __m256i {
    let p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    _mm256_madd_epi16(p, _mm256_set1_epi16(1))
}

/// Σ of 4 products per i32 lane: `x` unsigned (≤ 127) times `y` (i8).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_u8(x: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1))
}

/// The 16 nibbles of a 32-element block: element j (low nibbles) then j + 16 (high).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles32(p: *const u8) -> __m256i {
    // Both halves hold the 16 bytes; the high half's dwords shift right by 4, so that each
    // byte's low nibble is its high one (the bits shifted in from the next byte are masked).
    let q = _mm256_broadcastsi128_si256(_mm_loadu_si128(p.cast()));
    let v = _mm256_srlv_epi32(q, _mm256_set_epi32(4, 4, 4, 4, 0, 0, 0, 0));
    _mm256_and_si256(v, _mm256_set1_epi8(0x0f))
}

/// 0x10 in byte j where bit j of the 32-bit `qh` is set.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn fifth_bits(qh: u32) -> __m256i {
    let v = _mm256_set1_epi32(qh as i32);
    let shuf = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let t = _mm256_and_si256(_mm256_shuffle_epi8(v, shuf), bit);
    _mm256_and_si256(_mm256_cmpeq_epi8(t, bit), _mm256_set1_epi8(0x10))
}

/// Shuffle mask that turns 8 i16 (repeated in both 128-bit lanes) into i16 `lo` in the low
/// lane and i16 `hi` in the high lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pick16(lo: usize, hi: usize) -> __m256i {
    let a = (2 * lo as i16) | ((2 * lo as i16 + 1) << 8);
    let b = (2 * hi as i16) | ((2 * hi as i16 + 1) << 8);
    _mm256_set_m128i(_mm_set1_epi16(b), _mm_set1_epi16(a))
}

// ---------------------------------------------------------------------------------------
// Float weights · f32 activations

macro_rules! float_dot {
    ($name:ident, $esz:expr, $load8:ident, $scalar:path) => {
        /// Dot product with f32 activations (8 lanes × 4 accumulators, fused multiply-add).
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(crate) unsafe fn $name(w: &[u8], a: &[u8]) -> f32 {
            let n = w.len() / $esz;
            let (wp, ap) = (w.as_ptr(), a.as_ptr().cast::<f32>());
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut i = 0;
            let pd = prefetch_distance_float();
            let mut nx = pf_start(wp, pd);
            while i + 32 <= n {
                pf_to(&mut nx, wp.wrapping_add($esz * (i + 32) + pd));
                for (k, c) in acc.iter_mut().enumerate() {
                    let j = i + 8 * k;
                    *c = _mm256_fmadd_ps($load8(wp.add($esz * j)), _mm256_loadu_ps(ap.add(j)), *c);
                }
                i += 32;
            }
            while i + 8 <= n {
                acc[0] =
                    _mm256_fmadd_ps($load8(wp.add($esz * i)), _mm256_loadu_ps(ap.add(i)), acc[0]);
                i += 8;
            }
            let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            hsum(v) + $scalar(&w[$esz * i..], &a[4 * i..])
        }
    };
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_f32(p: *const u8) -> __m256 {
    _mm256_loadu_ps(p.cast())
}
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_f16(p: *const u8) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
}
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_bf16(p: *const u8) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(
        _mm_loadu_si128(p.cast()),
    )))
}

float_dot!(dot_f32, 4, load_f32, crate::formats::f32::dot);
float_dot!(dot_f16, 2, load_f16, crate::formats::f16::dot);
float_dot!(dot_bf16, 2, load_bf16, crate::formats::bf16::dot);

macro_rules! float_dot2 {
    ($name:ident, $esz:expr, $load8:ident, $scalar:path) => {
        /// Two weight rows with the same f32 activations: each activation vector is loaded once
        /// for both rows (the F32 activation of a long row does not fit in L1). Each result is
        /// bit-identical to the one-row dot product's (same accumulators, same order).
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(crate) unsafe fn $name(w0: &[u8], w1: &[u8], a: &[u8]) -> [f32; 2] {
            let n = w0.len() / $esz;
            let (p0, p1, ap) = (w0.as_ptr(), w1.as_ptr(), a.as_ptr().cast::<f32>());
            let mut c0 = [_mm256_setzero_ps(); 4];
            let mut c1 = [_mm256_setzero_ps(); 4];
            let mut i = 0;
            let pd = prefetch_distance_float();
            let (mut n0, mut n1) = (pf_start(p0, pd), pf_start(p1, pd));
            while i + 32 <= n {
                pf_to(&mut n0, p0.wrapping_add($esz * (i + 32) + pd));
                pf_to(&mut n1, p1.wrapping_add($esz * (i + 32) + pd));
                for k in 0..4 {
                    let j = i + 8 * k;
                    let x = _mm256_loadu_ps(ap.add(j));
                    c0[k] = _mm256_fmadd_ps($load8(p0.add($esz * j)), x, c0[k]);
                    c1[k] = _mm256_fmadd_ps($load8(p1.add($esz * j)), x, c1[k]);
                }
                i += 32;
            }
            while i + 8 <= n {
                let x = _mm256_loadu_ps(ap.add(i));
                c0[0] = _mm256_fmadd_ps($load8(p0.add($esz * i)), x, c0[0]);
                c1[0] = _mm256_fmadd_ps($load8(p1.add($esz * i)), x, c1[0]);
                i += 8;
            }
            let r = |c: [__m256; 4]| {
                hsum(_mm256_add_ps(
                    _mm256_add_ps(c[0], c[1]),
                    _mm256_add_ps(c[2], c[3]),
                ))
            };
            let t = &a[4 * i..];
            [
                r(c0) + $scalar(&w0[$esz * i..], t),
                r(c1) + $scalar(&w1[$esz * i..], t),
            ]
        }
    };
}

float_dot2!(dot2_f32, 4, load_f32, crate::formats::f32::dot);
float_dot2!(dot2_f16, 2, load_f16, crate::formats::f16::dot);
float_dot2!(dot2_bf16, 2, load_bf16, crate::formats::bf16::dot);

// ---------------------------------------------------------------------------------------
// 32-element blocks

/// Eight f16 at `p + k·stride` (k = 0..8) as f32 lanes (gathered in integer registers: one
/// conversion for eight blocks).
#[inline(always)]
unsafe fn f16x8(p: *const u8, stride: usize) -> __m256 {
    let g = |k: usize| rd(p.add(k * stride).cast::<u16>()) as u64;
    let lo = g(0) | g(1) << 16 | g(2) << 32 | g(3) << 48;
    let hi = g(4) | g(5) << 16 | g(6) << 32 | g(7) << 48;
    _mm256_cvtph_ps(_mm_insert_epi64::<1>(
        _mm_cvtsi64_si128(lo as i64),
        hi as i64,
    ))
}

/// Lane k of the result = the sum of the 8 i32 lanes of `v[k]` (exact). A transpose by
/// blends (any vector pipe) and in-lane shuffles: `vphaddd` is two uops on one pipe of Zen 3,
/// the pipe the multiplies need.
#[inline(always)]
unsafe fn hsum8x8(v: &[__m256i; 8]) -> __m256i {
    // Lane 2i: a[2i] + a[2i+1]; lane 2i+1: b[2i] + b[2i+1].
    let pairs = |a: __m256i, b: __m256i| {
        let x = _mm256_blend_epi32::<0b1010_1010>(a, b);
        let y = _mm256_blend_epi32::<0b0101_0101>(a, b);
        _mm256_add_epi32(x, _mm256_shuffle_epi32::<0b1011_0001>(y))
    };
    // Lanes 4g, 4g+1 from `a`'s two pair sums of group g, lanes 4g+2, 4g+3 from `b`'s.
    let quads = |a: __m256i, b: __m256i| {
        let x = _mm256_blend_epi32::<0b1100_1100>(a, b);
        let y = _mm256_blend_epi32::<0b0011_0011>(a, b);
        _mm256_add_epi32(x, _mm256_shuffle_epi32::<0b0100_1110>(y))
    };
    // Per 128-bit half: lanes 0..4 of v[0..4] (low) and lanes 4..8 of v[0..4] (high).
    let b0 = quads(pairs(v[0], v[1]), pairs(v[2], v[3]));
    let b1 = quads(pairs(v[4], v[5]), pairs(v[6], v[7]));
    let lo = _mm256_permute2x128_si256::<0x20>(b0, b1);
    let hi = _mm256_permute2x128_si256::<0x31>(b0, b1);
    _mm256_add_epi32(lo, hi)
}

/// The sum of the 8 i32 lanes of `v` (exact).
#[inline(always)]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// The dot product of rows of 32-element blocks (`$wb` weight bytes, `$ab` activation bytes per
/// block, both starting with the f16 scale): `$int(x, y)` gives a block's integer products as
/// 8 i32 lanes. Eight blocks at a time, each block's integer sum is reduced exactly and the
/// eight sums are scaled by one vector of `d_w·d_a` (eight f16 of each side converted at once);
/// with `$min`, each block also adds `m_w·s_a` (the f16 at byte 2 of both blocks: Q4_1 / Q5_1
/// with Q8_1). Blocks past the last multiple of 8 are added one at a time.
macro_rules! eight_blocks {
    ($w:expr, $a:expr, $wb:expr, $ab:expr, $int:ident, $min:expr) => {{
        let nb = $w.len() / $wb;
        let (wp, ap) = ($w.as_ptr(), $a.as_ptr());
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        let pd = prefetch_distance();
        let mut nx = pf_start(wp, pd);
        while i + 8 <= nb {
            pf_to(&mut nx, wp.wrapping_add($wb * (i + 8) + pd));
            let (x, y) = (wp.add($wb * i), ap.add($ab * i));
            let mut p = [_mm256_setzero_si256(); 8];
            for (k, pk) in p.iter_mut().enumerate() {
                *pk = $int(x.add($wb * k), y.add($ab * k));
            }
            let d = _mm256_mul_ps(f16x8(x, $wb), f16x8(y, $ab));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hsum8x8(&p)), d, acc);
            if $min {
                acc = _mm256_fmadd_ps(f16x8(x.add(2), $wb), f16x8(y.add(2), $ab), acc);
            }
            i += 8;
        }
        let mut tail = 0f32;
        while i < nb {
            let (x, y) = (wp.add($wb * i), ap.add($ab * i));
            tail += f16_at(x) * f16_at(y) * hsum_i32($int(x, y)) as f32;
            if $min {
                tail += f16_at(x.add(2)) * f16_at(y.add(2));
            }
            i += 1;
        }
        hsum(acc) + tail
    }};
}

#[inline(always)]
unsafe fn int_q8_0(x: *const u8, y: *const u8) -> __m256i {
    dot_i8(ld(x.add(2)), ld(y.add(2)))
}

#[inline(always)]
unsafe fn int_q4_0(x: *const u8, y: *const u8) -> __m256i {
    let q = _mm256_sub_epi8(nibbles32(x.add(2)), _mm256_set1_epi8(8));
    dot_i8(q, ld(y.add(2)))
}

#[inline(always)]
unsafe fn int_q4_1(x: *const u8, y: *const u8) -> __m256i {
    dot_u8(nibbles32(x.add(4)), ld(y.add(4)))
}

#[inline(always)]
unsafe fn int_q5_0(x: *const u8, y: *const u8) -> __m256i {
    let q = _mm256_or_si256(nibbles32(x.add(6)), fifth_bits(rd(x.add(2).cast::<u32>())));
    dot_i8(_mm256_sub_epi8(q, _mm256_set1_epi8(16)), ld(y.add(2)))
}

#[inline(always)]
unsafe fn int_q5_1(x: *const u8, y: *const u8) -> __m256i {
    let q = _mm256_or_si256(nibbles32(x.add(8)), fifth_bits(rd(x.add(4).cast::<u32>())));
    dot_u8(q, ld(y.add(4)))
}

/// Q8_0 · Q8_0.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q8_0(w: &[u8], a: &[u8]) -> f32 {
    eight_blocks!(w, a, 34, 34, int_q8_0, false)
}

/// Q4_0 · Q8_0.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q4_0(w: &[u8], a: &[u8]) -> f32 {
    eight_blocks!(w, a, 18, 34, int_q4_0, false)
}

/// Q4_1 · Q8_1.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q4_1(w: &[u8], a: &[u8]) -> f32 {
    eight_blocks!(w, a, 20, 36, int_q4_1, true)
}

/// Q5_0 · Q8_0.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q5_0(w: &[u8], a: &[u8]) -> f32 {
    eight_blocks!(w, a, 22, 34, int_q5_0, false)
}

/// Q5_1 · Q8_1.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q5_1(w: &[u8], a: &[u8]) -> f32 {
    eight_blocks!(w, a, 24, 36, int_q5_1, true)
}

// ---------------------------------------------------------------------------------------
// k-quants · Q8_K. Q8_K layout: d (f32) at 0, qs at 4, bsums (16 × i16) at 260.

const Q8K: usize = 292;

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8k_d(y: *const u8) -> f32 {
    rd(y.cast::<f32>())
}

/// Q2_K · Q8_K.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q2_k(w: &[u8], a: &[u8]) -> f32 {
    let nb = w.len() / 84;
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let m3 = _mm256_set1_epi8(3);
    let mut acc = _mm256_setzero_ps();
    let pd = prefetch_distance();
    let mut nx = pf_start(wp, pd);
    for i in 0..nb {
        pf_to(&mut nx, wp.wrapping_add(84 * (i + 1) + pd));
        let (x, y) = (wp.add(84 * i), ap.add(Q8K * i));
        let sc = _mm_loadu_si128(x.cast());
        let lo16 = _mm256_cvtepu8_epi16(_mm_and_si128(sc, _mm_set1_epi8(0x0f)));
        let mn16 =
            _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(sc), _mm_set1_epi8(0x0f)));
        let summs = _mm256_madd_epi16(ld(y.add(260)), mn16);
        // Scales as i16, repeated in both lanes, for the pair shuffles.
        let s_a = _mm256_permute2x128_si256::<0x00>(lo16, lo16);
        let s_b = _mm256_permute2x128_si256::<0x11>(lo16, lo16);
        let mut sumi = _mm256_setzero_si256();
        for h in 0..2 {
            let q = ld(x.add(16 + 32 * h));
            let s = if h == 0 { s_a } else { s_b };
            for sh in 0..4 {
                let v = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * sh as i32)), m3);
                let p = _mm256_maddubs_epi16(v, ld(y.add(4 + 128 * h + 32 * sh)));
                let scl = _mm256_shuffle_epi8(s, pick16(2 * sh, 2 * sh + 1));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scl));
            }
        }
        let yd = q8k_d(y);
        let d = _mm256_set1_ps(yd * f16_at(x.add(80)));
        let dmin = _mm256_set1_ps(yd * f16_end(x.add(82)));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        acc = _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(summs), acc);
    }
    hsum(acc)
}

/// Q3_K · Q8_K: quants taken as `low | 4·hbit` (0..8) and the −4 folded into the group sums.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q3_k(w: &[u8], a: &[u8]) -> f32 {
    let nb = w.len() / 110;
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let m3 = _mm256_set1_epi8(3);
    let m4 = _mm256_set1_epi8(4);
    let mut acc = 0f32;
    let pd = prefetch_distance();
    let mut nx = pf_start(wp, pd);
    for i in 0..nb {
        pf_to(&mut nx, wp.wrapping_add(110 * (i + 1) + pd));
        let (x, y) = (wp.add(110 * i), ap.add(Q8K * i));
        let [w0, w1] = crate::blocks::q3k_scale_words(&rd(x.add(96).cast::<[u8; 12]>()));
        let sc = _mm_insert_epi64::<1>(_mm_cvtsi64_si128(w0 as i64), w1 as i64);
        let sc = _mm_sub_epi8(sc, _mm_set1_epi8(32));
        let sc16 = _mm256_cvtepi8_epi16(sc);
        let corr = _mm256_madd_epi16(ld(y.add(260)), sc16);
        let s_a = _mm256_permute2x128_si256::<0x00>(sc16, sc16);
        let s_b = _mm256_permute2x128_si256::<0x11>(sc16, sc16);
        let hm = ld(x);
        let mut sumi = _mm256_setzero_si256();
        for h in 0..2 {
            let q = ld(x.add(32 + 32 * h));
            let s = if h == 0 { s_a } else { s_b };
            for sh in 0..4 {
                let cnt = _mm_cvtsi32_si128(2 * sh as i32);
                let low = _mm256_and_si256(_mm256_srl_epi16(q, cnt), m3);
                // Bit j = 4h + sh of each byte of `hm`, moved to bit 2 by one shift.
                let j = 4 * h + sh;
                let hs = match j {
                    0 => _mm256_slli_epi16::<2>(hm),
                    1 => _mm256_slli_epi16::<1>(hm),
                    _ => _mm256_srl_epi16(hm, _mm_cvtsi32_si128(j as i32 - 2)),
                };
                let hb = _mm256_and_si256(hs, m4);
                let v = _mm256_or_si256(low, hb);
                let p = _mm256_maddubs_epi16(v, ld(y.add(4 + 128 * h + 32 * sh)));
                let scl = _mm256_shuffle_epi8(s, pick16(2 * sh, 2 * sh + 1));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scl));
            }
        }
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32::<2>(corr));
        // Lane k holds groups' +4 offsets but only groups 2k, 2k+1's correction: the lanes are
        // summed as integers (exact) before the one float step, as the scalar reference does
        // (in f32 lanes the cancelling parts swamped the result: a fuzz finding,
        // fuzz/regressions/vec_dot/q3k-avx2-lanes-cancel-in-f32).
        let d = f16_end(x.add(108)) * q8k_d(y);
        acc += d * hsum_i32(sumi) as f32;
    }
    acc
}

/// The Q4_K/Q5_K scales and mins of the 12 bytes at `p` (16 bytes read), unpacked in vector
/// registers: both 128-bit lanes hold scales 0..4, mins 0..4, scales 4..8, mins 4..8 (one byte
/// each, 0..64), from which [`K45_PICK`] and [`K45_MINS`] pick i16 lanes by `vpshufb`. The low
/// lane gathers the low bits (`s[0..8] & 63`, `s[8..12] & 15`, `s[8..12] >> 4`), the high lane
/// the top two bits of scales and mins 4..8 (`(s[0..8] >> 2) & 0x30`); one lane swap and an
/// or join them (no general-purpose registers, no transfers).
#[inline(always)]
unsafe fn k45_scales(p: *const u8) -> __m256i {
    let v = _mm256_broadcastsi128_si256(_mm_loadu_si128(p.cast()));
    let z = -128i8;
    let t = _mm256_shuffle_epi8(
        v,
        _mm256_setr_epi8(
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 8, 9, 10, 11, //
            z, z, z, z, z, z, z, z, 0, 1, 2, 3, 4, 5, 6, 7,
        ),
    );
    let t = _mm256_srlv_epi32(t, _mm256_setr_epi32(0, 0, 0, 4, 0, 0, 2, 2));
    let t = _mm256_and_si256(
        t,
        _mm256_setr_epi64x(
            0x3f3f_3f3f_3f3f_3f3f,
            0x0f0f_0f0f_0f0f_0f0f,
            0,
            0x3030_3030_3030_3030,
        ),
    );
    _mm256_or_si256(t, _mm256_permute2x128_si256::<0x01>(t, t))
}

/// `vpshufb` masks over [`k45_scales`]' bytes: mask g puts scale g (0..8) in every i16 lane.
const K45_PICK: [[u8; 32]; 8] = {
    let mut m = [[0x80u8; 32]; 8];
    let mut g = 0;
    while g < 8 {
        let b = if g < 4 { g } else { g + 4 } as u8;
        let mut k = 0;
        while k < 32 {
            m[g][k] = b;
            k += 2;
        }
        g += 1;
    }
    m
};

/// `vpshufb` mask over [`k45_scales`]' bytes: i16 lanes 2k and 2k + 1 get min k (the mins of
/// the Q8_K block's 16 sums of 16).
const K45_MINS: [u8; 32] = {
    let mut m = [0x80u8; 32];
    let mut k = 0;
    while k < 8 {
        let b = if k < 4 { 4 + k } else { 8 + k } as u8;
        m[4 * k] = b;
        m[4 * k + 2] = b;
        k += 1;
    }
    m
};

/// A 32-byte `vpshufb` mask.
#[inline(always)]
unsafe fn mask32(m: &[u8; 32]) -> __m256i {
    _mm256_loadu_si256(m.as_ptr().cast())
}

/// 32-byte aligned `vpshufb` masks (no mask load splits a cache line).
#[repr(C, align(32))]
struct Masks<const N: usize>([[u8; 32]; N]);

/// [`K45_PICK`] then [`K45_MINS`] in one table.
static K45_MASKS: Masks<9> = {
    let mut t = [[0u8; 32]; 9];
    let mut g = 0;
    while g < 8 {
        t[g] = K45_PICK[g];
        g += 1;
    }
    t[8] = K45_MINS;
    Masks(t)
};

/// The address of [`K45_MASKS`], hidden from the optimizer: with the masks as known constants
/// LLVM rebuilds each splat from a 2-byte `vpbroadcastw` (a shuffle uop, on the pipes the
/// scale picks and nibble shifts already fill); through an opaque pointer each mask stays a
/// 32-byte memory operand of its `vpshufb` (a load, no extra shuffle).
#[inline(always)]
fn k45_masks() -> *const [u8; 32] {
    core::hint::black_box(K45_MASKS.0.as_ptr())
}

/// `yd·d` and `yd·dmin` in all lanes, for the f16 pair (d, dmin) at `p` and the Q8_K block's
/// f32 scale `yd` at `yd`: the pair is broadcast by a load (no general-purpose register),
/// converted once and multiplied once (even lanes `yd·d`, odd lanes `yd·dmin`: the same f32
/// products as the scalar form), then the even and odd lanes are duplicated.
#[inline(always)]
unsafe fn k45_dmin(p: *const u8, yd: *const u8) -> (__m256, __m256) {
    let pair = _mm_set1_epi32(rd(p.cast::<i32>()));
    let dm = _mm256_mul_ps(_mm256_set1_ps(rd(yd.cast::<f32>())), _mm256_cvtph_ps(pair));
    (_mm256_moveldup_ps(dm), _mm256_movehdup_ps(dm))
}

/// One Q4_K block · one Q8_K block added to `acc`, with the block's scales `sc` already
/// unpacked by [`k45_scales`] and the masks `t` of [`k45_masks`].
#[inline(always)]
unsafe fn step_q4_k(
    x: *const u8,
    y: *const u8,
    acc: __m256,
    sc: __m256i,
    t: *const [u8; 32],
) -> __m256 {
    let m4 = _mm256_set1_epi8(0x0f);
    let summs = _mm256_madd_epi16(ld(y.add(260)), _mm256_shuffle_epi8(sc, mask32(&*t.add(8))));
    let mut sumi = _mm256_setzero_si256();
    for j in 0..4 {
        let q = ld(x.add(16 + 32 * j));
        let lo = _mm256_and_si256(q, m4);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4);
        let p0 = _mm256_maddubs_epi16(lo, ld(y.add(4 + 64 * j)));
        let p1 = _mm256_maddubs_epi16(hi, ld(y.add(36 + 64 * j)));
        let p0 = _mm256_madd_epi16(p0, _mm256_shuffle_epi8(sc, mask32(&*t.add(2 * j))));
        let p1 = _mm256_madd_epi16(p1, _mm256_shuffle_epi8(sc, mask32(&*t.add(2 * j + 1))));
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
    }
    let (d, dmin) = k45_dmin(x, y);
    let v = _mm256_fnmadd_ps(
        dmin,
        _mm256_cvtepi32_ps(summs),
        _mm256_mul_ps(d, _mm256_cvtepi32_ps(sumi)),
    );
    _mm256_add_ps(acc, v)
}

/// [`step_q4_k`] for two blocks at once, their instructions interleaved group by group (each
/// block's operations and their order unchanged).
#[inline(always)]
unsafe fn step2_q4_k(
    x: [*const u8; 2],
    y: [*const u8; 2],
    acc: [__m256; 2],
    sc: [__m256i; 2],
    t: *const [u8; 32],
) -> (__m256, __m256) {
    let m4 = _mm256_set1_epi8(0x0f);
    let mut sumi = [_mm256_setzero_si256(); 2];
    for j in 0..4 {
        for b in 0..2 {
            let q = ld(x[b].add(16 + 32 * j));
            let lo = _mm256_and_si256(q, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4);
            let p0 = _mm256_maddubs_epi16(lo, ld(y[b].add(4 + 64 * j)));
            let p1 = _mm256_maddubs_epi16(hi, ld(y[b].add(36 + 64 * j)));
            let p0 = _mm256_madd_epi16(p0, _mm256_shuffle_epi8(sc[b], mask32(&*t.add(2 * j))));
            let p1 = _mm256_madd_epi16(p1, _mm256_shuffle_epi8(sc[b], mask32(&*t.add(2 * j + 1))));
            sumi[b] = _mm256_add_epi32(sumi[b], _mm256_add_epi32(p0, p1));
        }
    }
    let mut out = acc;
    for b in 0..2 {
        let summs = _mm256_madd_epi16(
            ld(y[b].add(260)),
            _mm256_shuffle_epi8(sc[b], mask32(&*t.add(8))),
        );
        let (d, dmin) = k45_dmin(x[b], y[b]);
        let v = _mm256_fnmadd_ps(
            dmin,
            _mm256_cvtepi32_ps(summs),
            _mm256_mul_ps(d, _mm256_cvtepi32_ps(sumi[b])),
        );
        out[b] = _mm256_add_ps(acc[b], v);
    }
    (out[0], out[1])
}

/// Q4_K · Q8_K: two accumulator chains (blocks 2k and 2k + 1), each block's scales unpacked
/// one pair of blocks ahead (the unpack is a chain of dependent shuffles; started early it is
/// ready when the block's group products need it).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q4_k(w: &[u8], a: &[u8]) -> f32 {
    let nb = w.len() / 144;
    if nb == 0 {
        return 0.0;
    }
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let t = k45_masks();
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let pd = prefetch_distance();
    let mut nx = pf_start(wp, pd);
    // Scales of blocks i and i + 1 (clamped to the last block: read, never used).
    let sc_of = |i: usize| k45_scales(wp.add(144 * i.min(nb - 1) + 4));
    let (mut s0, mut s1) = (sc_of(0), sc_of(1));
    let mut i = 0;
    while i + 2 <= nb {
        pf_to(&mut nx, wp.wrapping_add(144 * (i + 2) + pd));
        let (n0, n1) = (sc_of(i + 2), sc_of(i + 3));
        (a0, a1) = step2_q4_k(
            [wp.add(144 * i), wp.add(144 * (i + 1))],
            [ap.add(Q8K * i), ap.add(Q8K * (i + 1))],
            [a0, a1],
            [s0, s1],
            t,
        );
        (s0, s1) = (n0, n1);
        i += 2;
    }
    if i < nb {
        a0 = step_q4_k(wp.add(144 * i), ap.add(Q8K * i), a0, s0, t);
    }
    hsum(_mm256_add_ps(a0, a1))
}

/// Q5_K · Q8_K.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q5_k(w: &[u8], a: &[u8]) -> f32 {
    let nb = w.len() / 176;
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let m4 = _mm256_set1_epi8(0x0f);
    let m16 = _mm256_set1_epi8(0x10);
    if nb == 0 {
        return 0.0;
    }
    let mut acc = _mm256_setzero_ps();
    let pd = prefetch_distance();
    let mut nx = pf_start(wp, pd);
    let t = k45_masks();
    // Each block's scales are unpacked one block ahead (clamped to the last block).
    let mut sc = k45_scales(wp.add(4));
    for i in 0..nb {
        pf_to(&mut nx, wp.wrapping_add(176 * (i + 1) + pd));
        let (x, y) = (wp.add(176 * i), ap.add(Q8K * i));
        let next = k45_scales(wp.add(176 * (i + 1).min(nb - 1) + 4));
        let summs = _mm256_madd_epi16(ld(y.add(260)), _mm256_shuffle_epi8(sc, mask32(&*t.add(8))));
        let hbits = ld(x.add(16));
        let mut sumi = _mm256_setzero_si256();
        for j in 0..4 {
            let q = ld(x.add(48 + 32 * j));
            let h = _mm256_srl_epi16(hbits, _mm_cvtsi32_si128(2 * j as i32));
            let lo = _mm256_or_si256(
                _mm256_and_si256(q, m4),
                _mm256_and_si256(_mm256_slli_epi16::<4>(h), m16),
            );
            let hi = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4),
                _mm256_and_si256(_mm256_slli_epi16::<3>(h), m16),
            );
            let p0 = _mm256_maddubs_epi16(lo, ld(y.add(4 + 64 * j)));
            let p1 = _mm256_maddubs_epi16(hi, ld(y.add(36 + 64 * j)));
            let p0 = _mm256_madd_epi16(p0, _mm256_shuffle_epi8(sc, mask32(&*t.add(2 * j))));
            let p1 = _mm256_madd_epi16(p1, _mm256_shuffle_epi8(sc, mask32(&*t.add(2 * j + 1))));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        let (d, dmin) = k45_dmin(x, y);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        acc = _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(summs), acc);
        sc = next;
    }
    hsum(acc)
}

/// The four 32-quant groups (0..64, unsigned) of one half of a Q6_K block from its low bits
/// `ql0`, `ql1` and high bits `qh`.
#[inline(always)]
unsafe fn q6k_quants(ql0: __m256i, ql1: __m256i, qh: __m256i) -> [__m256i; 4] {
    let m4 = _mm256_set1_epi8(0x0f);
    let m3 = _mm256_set1_epi8(0x30);
    let part =
        |l: __m256i, h: __m256i| _mm256_or_si256(_mm256_and_si256(l, m4), _mm256_and_si256(h, m3));
    [
        part(ql0, _mm256_slli_epi16::<4>(qh)),
        part(ql1, _mm256_slli_epi16::<2>(qh)),
        part(_mm256_srli_epi16::<4>(ql0), qh),
        part(_mm256_srli_epi16::<4>(ql1), _mm256_srli_epi16::<2>(qh)),
    ]
}

/// One Q6_K block · one Q8_K block: `d · Σ` of the exact integer sum (quants taken unsigned,
/// 0..64, and the −32 folded into the group sums).
#[inline(always)]
unsafe fn block_q6_k(x: *const u8, y: *const u8) -> f32 {
    let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(x.add(192).cast()));
    let corr = _mm256_madd_epi16(ld(y.add(260)), sc16);
    let s_a = _mm256_permute2x128_si256::<0x00>(sc16, sc16);
    let s_b = _mm256_permute2x128_si256::<0x11>(sc16, sc16);
    let mut sumi = _mm256_setzero_si256();
    for h in 0..2 {
        let ql0 = ld(x.add(64 * h));
        let ql1 = ld(x.add(64 * h + 32));
        let qh = ld(x.add(128 + 32 * h));
        let s = if h == 0 { s_a } else { s_b };
        let v = q6k_quants(ql0, ql1, qh);
        for (k, v) in v.into_iter().enumerate() {
            let p = _mm256_maddubs_epi16(v, ld(y.add(4 + 128 * h + 32 * k)));
            let scl = _mm256_shuffle_epi8(s, pick16(2 * k, 2 * k + 1));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scl));
        }
    }
    sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32::<5>(corr));
    // The lanes hold the −32 offsets' corrections apart from the products they cancel, so
    // they are summed as integers (exact) before the one float step, as the scalar
    // reference does: in f32 lanes the cancelling parts overflowed to +inf and −inf (NaN)
    // for large scales (a fuzz finding, fuzz/regressions/vec_dot/q6k-avx2-lanes-overflow).
    let d = f16_end(x.add(208)) * q8k_d(y);
    d * hsum_i32(sumi) as f32
}

/// Q6_K · Q8_K.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q6_k(w: &[u8], a: &[u8]) -> f32 {
    let nb = w.len() / 210;
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let mut acc = 0f32;
    let pd = prefetch_distance();
    let mut nx = pf_start(wp, pd);
    for i in 0..nb {
        pf_to(&mut nx, wp.wrapping_add(210 * (i + 1) + pd));
        acc += block_q6_k(wp.add(210 * i), ap.add(Q8K * i));
    }
    acc
}

// ---------------------------------------------------------------------------------------
// Dequantization (bit-identical to the scalar reference: plain multiplies and adds)

/// F16 row to f32.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dequant_f16(src: &[u8], dst: &mut [f32]) {
    let n = dst.len();
    let mut i = 0;
    while i + 8 <= n {
        _mm256_storeu_ps(dst.as_mut_ptr().add(i), load_f16(src.as_ptr().add(2 * i)));
        i += 8;
    }
    crate::formats::f16::dequantize(&src[2 * i..], &mut dst[i..]);
}

/// BF16 row to f32.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dequant_bf16(src: &[u8], dst: &mut [f32]) {
    let n = dst.len();
    let mut i = 0;
    while i + 8 <= n {
        _mm256_storeu_ps(dst.as_mut_ptr().add(i), load_bf16(src.as_ptr().add(2 * i)));
        i += 8;
    }
    crate::formats::bf16::dequantize(&src[2 * i..], &mut dst[i..]);
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn i8x32_to_f32(v: __m256i, out: *mut f32, d: __m256) {
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256::<1>(v);
    let parts = [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)];
    for (k, p) in parts.into_iter().enumerate() {
        let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(p));
        _mm256_storeu_ps(out.add(8 * k), _mm256_mul_ps(f, d));
    }
}

/// Q8_0 row to f32.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dequant_q8_0(src: &[u8], dst: &mut [f32]) {
    for i in 0..src.len() / 34 {
        let x = src.as_ptr().add(34 * i);
        i8x32_to_f32(
            ld(x.add(2)),
            dst.as_mut_ptr().add(QK * i),
            _mm256_set1_ps(f16_at(x)),
        );
    }
}

/// Q4_0 row to f32.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dequant_q4_0(src: &[u8], dst: &mut [f32]) {
    for i in 0..src.len() / 18 {
        let x = src.as_ptr().add(18 * i);
        let q = _mm256_sub_epi8(nibbles32(x.add(2)), _mm256_set1_epi8(8));
        i8x32_to_f32(q, dst.as_mut_ptr().add(QK * i), _mm256_set1_ps(f16_at(x)));
    }
}

/// `d · q − m` for 32 unsigned bytes, written to `out`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn u8x32_affine(v: __m256i, out: *mut f32, d: __m256, m: __m256) {
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256::<1>(v);
    let parts = [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)];
    for (k, p) in parts.into_iter().enumerate() {
        let f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(p));
        _mm256_storeu_ps(out.add(8 * k), _mm256_sub_ps(_mm256_mul_ps(d, f), m));
    }
}

/// Q4_K row to f32.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dequant_q4_k(src: &[u8], dst: &mut [f32]) {
    let m4 = _mm256_set1_epi8(0x0f);
    for i in 0..src.len() / 144 {
        let x = src.as_ptr().add(144 * i);
        let raw: [u8; 12] = rd(x.add(4).cast());
        let (sc, mn) = crate::blocks::kquant_scales_mins(&raw);
        let (d, dmin) = (f16_at(x), f16_at(x.add(2)));
        let out = dst.as_mut_ptr().add(QK_K * i);
        for j in 0..4 {
            let q = ld(x.add(16 + 32 * j));
            for (k, v) in [
                _mm256_and_si256(q, m4),
                _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4),
            ]
            .into_iter()
            .enumerate()
            {
                let g = 2 * j + k;
                let dl = _mm256_set1_ps(d * sc[g] as f32);
                let ml = _mm256_set1_ps(dmin * mn[g] as f32);
                u8x32_affine(v, out.add(32 * g), dl, ml);
            }
        }
    }
}

/// Q6_K row to f32.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dequant_q6_k(src: &[u8], dst: &mut [f32]) {
    let c32 = _mm256_set1_epi8(32);
    for i in 0..src.len() / 210 {
        let x = src.as_ptr().add(210 * i);
        let d = f16_end(x.add(208));
        let out = dst.as_mut_ptr().add(QK_K * i);
        for h in 0..2 {
            let ql0 = ld(x.add(64 * h));
            let ql1 = ld(x.add(64 * h + 32));
            let qh = ld(x.add(128 + 32 * h));
            let v = q6k_quants(ql0, ql1, qh);
            for (k, v) in v.into_iter().enumerate() {
                let v = _mm256_sub_epi8(v, c32);
                let o = out.add(128 * h + 32 * k);
                // Two groups of 16 with their own scale: (d · sc) · q.
                let s0 = *x.add(192 + 8 * h + 2 * k) as i8;
                let s1 = *x.add(192 + 8 * h + 2 * k + 1) as i8;
                let lo = _mm256_castsi256_si128(v);
                let hi = _mm256_extracti128_si256::<1>(v);
                let parts = [
                    (lo, s0),
                    (_mm_srli_si128::<8>(lo), s0),
                    (hi, s1),
                    (_mm_srli_si128::<8>(hi), s1),
                ];
                for (p, (bytes, s)) in parts.into_iter().enumerate() {
                    let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
                    let ds = _mm256_set1_ps(d * s as f32);
                    _mm256_storeu_ps(o.add(8 * p), _mm256_mul_ps(ds, f));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Activation quantizers (bit-identical to the scalar reference)

/// C's `roundf` on 8 lanes: truncate, then step away from zero when the dropped fraction is
/// at least one half (`x − trunc(x)` is exact).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn round_away(x: __m256) -> __m256 {
    let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(x);
    let f = _mm256_sub_ps(x, t);
    let absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let half = _mm256_cmp_ps::<_CMP_GE_OQ>(_mm256_and_ps(f, absmask), _mm256_set1_ps(0.5));
    let one = _mm256_or_ps(_mm256_set1_ps(1.0), _mm256_andnot_ps(absmask, x));
    _mm256_add_ps(t, _mm256_and_ps(half, one))
}

/// Quantizes 32 floats at `x` to Q8_0-style quants at `q`; returns (d, Σq).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_block(x: *const f32, q: *mut u8) -> (f32, i32) {
    let absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let v = [
        _mm256_loadu_ps(x),
        _mm256_loadu_ps(x.add(8)),
        _mm256_loadu_ps(x.add(16)),
        _mm256_loadu_ps(x.add(24)),
    ];
    let m = _mm256_max_ps(
        _mm256_max_ps(_mm256_and_ps(v[0], absmask), _mm256_and_ps(v[1], absmask)),
        _mm256_max_ps(_mm256_and_ps(v[2], absmask), _mm256_and_ps(v[3], absmask)),
    );
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_movehdup_ps(m));
    let amax = _mm_cvtss_f32(m);
    let d = amax / 127.0;
    let id = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
    let i: [__m256i; 4] =
        core::array::from_fn(|k| _mm256_cvttps_epi32(round_away(_mm256_mul_ps(v[k], id))));
    let s = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
    let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
    let s = _mm_hadd_epi32(s, s);
    let s = _mm_cvtsi128_si32(_mm_hadd_epi32(s, s));
    let p16 = [
        _mm256_packs_epi32(i[0], i[1]),
        _mm256_packs_epi32(i[2], i[3]),
    ];
    let p8 = _mm256_packs_epi16(p16[0], p16[1]);
    // The packs work per 128-bit lane: restore element order.
    let p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(q.cast(), p8);
    (d, s)
}

/// Quantizes a row to Q8_0 (same bytes as [`crate::formats::q8_0::quantize_row_ref`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_q8_0(x: &[f32], dst: &mut [u8]) {
    for (b, xs) in dst.chunks_exact_mut(34).zip(x.chunks_exact(QK)) {
        let (d, _) = q8_block(xs.as_ptr(), b.as_mut_ptr().add(2));
        b[..2].copy_from_slice(&crate::num::f16_numpy(d));
    }
}

/// Quantizes a row to Q8_K (same bytes as [`crate::formats::q8_k::quantize_row_ref`]): per
/// block of 256 the largest magnitude by vector max, the first element that has it (its sign
/// sets the scale's), `x·(−127/max)` rounded to nearest even by `vcvtps2dq` (the default
/// rounding mode, as ggml's `nearest_int`), capped at 127, packed to bytes; the 16 sums of 16
/// quants from the packed bytes (`vpmaddubsw` / `vpmaddwd` with ones, then `vphaddd`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_q8_k(x: &[f32], dst: &mut [u8]) {
    let absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    for (b, xs) in dst.chunks_exact_mut(292).zip(x.chunks_exact(256)) {
        let xp = xs.as_ptr();
        // `max(|v|, m)`: a NaN lane leaves `m` as it is, as the reference's `>` skips it.
        let mut m = _mm256_setzero_ps();
        for k in 0..32 {
            m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(xp.add(8 * k)), absmask), m);
        }
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
        if amax == 0.0 {
            b.fill(0);
            continue;
        }
        let am = _mm256_set1_ps(amax);
        let mut max = 0f32;
        for k in 0..32 {
            let v = _mm256_and_ps(_mm256_loadu_ps(xp.add(8 * k)), absmask);
            let e = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(v, am));
            if e != 0 {
                max = xs[8 * k + e.trailing_zeros() as usize];
                break;
            }
        }
        let iscale = -127.0 / max;
        let is = _mm256_set1_ps(iscale);
        let c127 = _mm256_set1_epi32(127);
        let bp = b.as_mut_ptr();
        let (ones8, ones16) = (_mm256_set1_epi8(1), _mm256_set1_epi16(1));
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let mut sums = [_mm256_setzero_si256(); 8];
        for (g, sg) in sums.iter_mut().enumerate() {
            let i: [__m256i; 4] = core::array::from_fn(|k| {
                let v = _mm256_mul_ps(is, _mm256_loadu_ps(xp.add(32 * g + 8 * k)));
                _mm256_min_epi32(_mm256_cvtps_epi32(v), c127)
            });
            let p8 = _mm256_packs_epi16(
                _mm256_packs_epi32(i[0], i[1]),
                _mm256_packs_epi32(i[2], i[3]),
            );
            // The packs work per 128-bit lane: restore element order.
            let p8 = _mm256_permutevar8x32_epi32(p8, order);
            _mm256_storeu_si256(bp.add(4 + 32 * g).cast(), p8);
            // Lane l: Σ of quants 4l .. 4l + 4 of these 32 (|q| ≤ 128: exact in i16).
            *sg = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, p8), ones16);
        }
        // `sums[b]`'s low 128-bit lane sums group 2b of 16 quants, its high lane group 2b + 1.
        // Two `vphaddd` of blocks 2g, 2g + 1 leave per 128-bit lane [Σ of block 2g's half,
        // Σ of block 2g + 1's half, ..]: low lane groups 4g, 4g + 2, high lane 4g + 1, 4g + 3.
        for g in 0..4 {
            let h = _mm256_hadd_epi32(sums[2 * g], sums[2 * g + 1]);
            let h = _mm256_hadd_epi32(h, h);
            let lo = _mm256_castsi256_si128(h);
            let hi = _mm256_extracti128_si256::<1>(h);
            let grp = |v: __m128i, k: i32| -> [u8; 2] {
                (match k {
                    0 => _mm_extract_epi32::<0>(v),
                    _ => _mm_extract_epi32::<1>(v),
                } as i16)
                    .to_le_bytes()
            };
            // Groups 4g, 4g + 1, 4g + 2, 4g + 3.
            for (j, v) in [grp(lo, 0), grp(hi, 0), grp(lo, 1), grp(hi, 1)]
                .iter()
                .enumerate()
            {
                core::ptr::copy_nonoverlapping(v.as_ptr(), bp.add(260 + 2 * (4 * g + j)), 2);
            }
        }
        core::ptr::copy_nonoverlapping((1.0 / iscale).to_le_bytes().as_ptr(), bp, 4);
    }
}

/// Quantizes a row to Q8_1 (same bytes as [`crate::formats::q8_1::quantize_row_ref`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_q8_1(x: &[f32], dst: &mut [u8]) {
    for (b, xs) in dst.chunks_exact_mut(36).zip(x.chunks_exact(QK)) {
        let (d, s) = q8_block(xs.as_ptr(), b.as_mut_ptr().add(4));
        b[..2].copy_from_slice(&crate::num::f16_ggml(d));
        b[2..4].copy_from_slice(&crate::num::f16_ggml(s as f32 * d));
    }
}
