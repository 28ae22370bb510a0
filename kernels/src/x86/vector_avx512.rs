//! [`Simd`] on 16 lanes of AVX-512F.

use crate::vector::Simd;
use std::arch::x86_64::*;

/// AVX-512F, 16 lanes. Only [`quantize_row`] makes use of it, after checking the CPU.
#[derive(Clone, Copy)]
pub(crate) struct Avx512;

// SAFETY: every method uses AVX-512F instructions only; the trait's contract makes callers
// check the CPU (`Isa::Avx512.available()`) before reaching them.
unsafe impl Simd for Avx512 {
    const LANES: usize = 16;
    type F = __m512;
    type I = __m512i;
    type M = __mmask16;

    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn splat_i(x: i32) -> __m512i {
        _mm512_set1_epi32(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn load_i(p: *const i32) -> __m512i {
        _mm512_loadu_epi32(p)
    }
    #[inline(always)]
    unsafe fn store_i(p: *mut i32, v: __m512i) {
        _mm512_storeu_epi32(p, v)
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        _mm512_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        _mm512_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn div(a: __m512, b: __m512) -> __m512 {
        _mm512_div_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sqrt(a: __m512) -> __m512 {
        _mm512_sqrt_ps(a)
    }
    #[inline(always)]
    unsafe fn abs(a: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_and_si512(
            _mm512_castps_si512(a),
            _mm512_set1_epi32(0x7fff_ffff),
        ))
    }
    #[inline(always)]
    unsafe fn neg(a: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_xor_si512(
            _mm512_castps_si512(a),
            _mm512_set1_epi32(i32::MIN),
        ))
    }
    #[inline(always)]
    unsafe fn min(a: __m512, b: __m512) -> __m512 {
        // vminps returns its second operand unless the first is smaller.
        _mm512_min_ps(a, b)
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        _mm512_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn nearest_int(a: __m512) -> __m512i {
        let v = _mm512_castps_si512(_mm512_add_ps(a, _mm512_set1_ps(12_582_912.0)));
        _mm512_sub_epi32(
            _mm512_and_si512(v, _mm512_set1_epi32(0x007f_ffff)),
            _mm512_set1_epi32(0x0040_0000),
        )
    }
    #[inline(always)]
    unsafe fn clamp_i(a: __m512i, lo: __m512i, hi: __m512i) -> __m512i {
        _mm512_min_epi32(_mm512_max_epi32(a, lo), hi)
    }
    #[inline(always)]
    unsafe fn add_i(a: __m512i, b: __m512i) -> __m512i {
        _mm512_add_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn to_f(a: __m512i) -> __m512 {
        _mm512_cvtepi32_ps(a)
    }
    #[inline(always)]
    unsafe fn bits(a: __m512) -> __m512i {
        _mm512_castps_si512(a)
    }
    #[inline(always)]
    unsafe fn from_bits(a: __m512i) -> __m512 {
        _mm512_castsi512_ps(a)
    }
    #[inline(always)]
    unsafe fn lt(a: __m512, b: __m512) -> __mmask16 {
        _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b)
    }
    #[inline(always)]
    unsafe fn gt(a: __m512, b: __m512) -> __mmask16 {
        _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b)
    }
    #[inline(always)]
    unsafe fn le(a: __m512, b: __m512) -> __mmask16 {
        _mm512_cmp_ps_mask::<_CMP_LE_OQ>(a, b)
    }
    #[inline(always)]
    unsafe fn eq(a: __m512, b: __m512) -> __mmask16 {
        _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b)
    }
    #[inline(always)]
    unsafe fn ne(a: __m512, b: __m512) -> __mmask16 {
        _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(a, b)
    }
    #[inline(always)]
    unsafe fn ne_i(a: __m512i, b: __m512i) -> __mmask16 {
        _mm512_cmpneq_epi32_mask(a, b)
    }
    #[inline(always)]
    unsafe fn and(a: __mmask16, b: __mmask16) -> __mmask16 {
        a & b
    }
    #[inline(always)]
    unsafe fn or(a: __mmask16, b: __mmask16) -> __mmask16 {
        a | b
    }
    #[inline(always)]
    unsafe fn andnot(a: __mmask16, b: __mmask16) -> __mmask16 {
        a & !b
    }
    #[inline(always)]
    unsafe fn any(m: __mmask16) -> bool {
        m != 0
    }
    #[inline(always)]
    unsafe fn none() -> __mmask16 {
        0
    }
    #[inline(always)]
    unsafe fn splat_m(b: bool) -> __mmask16 {
        if b {
            0xffff
        } else {
            0
        }
    }
    #[inline(always)]
    unsafe fn select(m: __mmask16, a: __m512, b: __m512) -> __m512 {
        _mm512_mask_blend_ps(m, b, a)
    }
    #[inline(always)]
    unsafe fn select_i(m: __mmask16, a: __m512i, b: __m512i) -> __m512i {
        _mm512_mask_blend_epi32(m, b, a)
    }
    #[inline(always)]
    unsafe fn transpose(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
        let mut r = [_mm512_setzero_ps(); 16];
        for (i, r) in r.iter_mut().enumerate() {
            *r = _mm512_loadu_ps(src.add(i * src_stride));
        }
        // Within each 128-bit lane: pairs of rows interleaved by 32 bits, then by 64 bits, so
        // that u[4i + c] holds, in 128-bit lane q, column 4q + c of rows 4i..4i+4.
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let mut u = [_mm512_setzero_ps(); 16];
        for i in 0..4 {
            let (a0, a1, b0, b1) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
            u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(
                _mm512_castps_pd(a0),
                _mm512_castps_pd(b0),
            ));
            u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(
                _mm512_castps_pd(a0),
                _mm512_castps_pd(b0),
            ));
            u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(
                _mm512_castps_pd(a1),
                _mm512_castps_pd(b1),
            ));
            u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(
                _mm512_castps_pd(a1),
                _mm512_castps_pd(b1),
            ));
        }
        // A 4 × 4 transpose of 128-bit lanes among u[c], u[4 + c], u[8 + c], u[12 + c].
        for c in 0..4 {
            let s0 = _mm512_shuffle_f32x4::<0x44>(u[c], u[4 + c]);
            let s1 = _mm512_shuffle_f32x4::<0xee>(u[c], u[4 + c]);
            let s2 = _mm512_shuffle_f32x4::<0x44>(u[8 + c], u[12 + c]);
            let s3 = _mm512_shuffle_f32x4::<0xee>(u[8 + c], u[12 + c]);
            _mm512_storeu_ps(
                dst.add(c * dst_stride),
                _mm512_shuffle_f32x4::<0x88>(s0, s2),
            );
            _mm512_storeu_ps(
                dst.add((4 + c) * dst_stride),
                _mm512_shuffle_f32x4::<0xdd>(s0, s2),
            );
            _mm512_storeu_ps(
                dst.add((8 + c) * dst_stride),
                _mm512_shuffle_f32x4::<0x88>(s1, s3),
            );
            _mm512_storeu_ps(
                dst.add((12 + c) * dst_stride),
                _mm512_shuffle_f32x4::<0xdd>(s1, s3),
            );
        }
    }
}

/// [`crate::vector::rows::quantize_row`] compiled for AVX-512F.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn quantize_row(
    kind: crate::vector::Kind,
    b: &mut crate::vector::search::Batch,
    src: &[f32],
    qw: Option<&[f32]>,
    dst: &mut [u8],
) {
    crate::vector::rows::quantize_row::<Avx512>(kind, b, src, qw, dst)
}
