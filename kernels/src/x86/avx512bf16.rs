//! AVX-512 BF16 kernels: BF16 weights · BF16 activations with `vdpbf16ps` (32 products per
//! instruction, summed pairwise into 16 f32 lanes), as ggml does for BF16 weights.
//!
//! The activation row is converted from f32 to BF16 once per GEMV
//! ([`crate::formats::bf16::quantize_row_ref`], round to nearest even like ggml's `GGML_FP32_TO_BF16`),
//! which halves the activation bytes streamed from L1/L2 per weight byte and needs no weight
//! conversion at all. Each product of two BF16 values is exact in f32; the instruction adds the
//! two products of a pair to the lane with f32 rounding and treats denormal inputs as zero
//! (so results differ from the scalar reference by the accumulation order and by denormals).
//!
//! Every function is `unsafe`: callers must make sure the CPU has AVX-512 F and BF16 and that
//! the slices have the lengths the row sizes imply (weights and activations `2·n` bytes).

use core::arch::x86_64::*;

/// 32 BF16 at `p` (masked: lanes outside `m` read as zero and are not accessed).
#[inline]
#[target_feature(enable = "avx512bf16,avx512f,avx512bw")]
unsafe fn ld(p: *const u8, m: __mmask32) -> __m512bh {
    // SAFETY: `__m512i` and `__m512bh` are both 64-byte plain vectors with no invalid bit
    // patterns; this only relabels the 32 loaded 16-bit lanes as BF16.
    unsafe { core::mem::transmute::<__m512i, __m512bh>(_mm512_maskz_loadu_epi16(m, p.cast())) }
}

/// Mask of the first `r` (< 32) 16-bit lanes, or all for `r ≥ 32`.
#[inline(always)]
fn tail_mask(r: usize) -> __mmask32 {
    if r >= 32 {
        !0
    } else {
        (1u32 << r) - 1
    }
}

/// BF16 weights · BF16 activations: 4 accumulators of 32 elements, masked tail.
///
/// # Safety
/// AVX-512 F/BW/BF16 must be available; `a.len() == w.len()`, both even.
#[target_feature(enable = "avx512bf16,avx512f,avx512bw")]
pub(crate) unsafe fn dot_bf16_bf16(w: &[u8], a: &[u8]) -> f32 {
    let n = w.len() / 2;
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 128 <= n {
        for (k, c) in acc.iter_mut().enumerate() {
            let j = 2 * (i + 32 * k);
            *c = _mm512_dpbf16_ps(*c, ld(wp.add(j), !0), ld(ap.add(j), !0));
        }
        i += 128;
    }
    while i < n {
        let m = tail_mask(n - i);
        acc[0] = _mm512_dpbf16_ps(acc[0], ld(wp.add(2 * i), m), ld(ap.add(2 * i), m));
        i += 32;
    }
    let v = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(v)
}

/// Two BF16 weight rows · the same BF16 activations (each activation load serves both rows);
/// bit-identical to two [`dot_bf16_bf16`] calls. `PF` > 0: software prefetch of both weight
/// rows `PF` bytes ahead ([`super::prefetch_pair`]; the Intel table; 0 compiles to the same code
/// as before).
///
/// # Safety
/// As for [`dot_bf16_bf16`], for both rows.
#[target_feature(enable = "avx512bf16,avx512f,avx512bw")]
pub(crate) unsafe fn dot2_bf16_bf16<const PF: usize>(w0: &[u8], w1: &[u8], a: &[u8]) -> [f32; 2] {
    let n = w0.len() / 2;
    let (p0, p1, ap) = (w0.as_ptr(), w1.as_ptr(), a.as_ptr());
    let mut c0 = [_mm512_setzero_ps(); 4];
    let mut c1 = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 128 <= n {
        if PF > 0 {
            for l in 0..4 {
                super::prefetch_pair(p0, p1, 2 * i + PF + 64 * l, w0.len());
            }
        }
        for k in 0..4 {
            let j = 2 * (i + 32 * k);
            let x = ld(ap.add(j), !0);
            c0[k] = _mm512_dpbf16_ps(c0[k], ld(p0.add(j), !0), x);
            c1[k] = _mm512_dpbf16_ps(c1[k], ld(p1.add(j), !0), x);
        }
        i += 128;
    }
    while i < n {
        let m = tail_mask(n - i);
        let x = ld(ap.add(2 * i), m);
        c0[0] = _mm512_dpbf16_ps(c0[0], ld(p0.add(2 * i), m), x);
        c1[0] = _mm512_dpbf16_ps(c1[0], ld(p1.add(2 * i), m), x);
        i += 32;
    }
    let r = |c: [__m512; 4]| {
        _mm512_reduce_add_ps(_mm512_add_ps(
            _mm512_add_ps(c[0], c[1]),
            _mm512_add_ps(c[2], c[3]),
        ))
    };
    [r(c0), r(c1)]
}
