//! [`Simd`] on 8 lanes of AVX2.

use crate::vector::Simd;
use std::arch::x86_64::*;

/// AVX2, 8 lanes; masks are all-ones / all-zeros lanes. Only [`quantize_row`] makes use
/// of it, after checking the CPU.
#[derive(Clone, Copy)]
pub(crate) struct Avx2;

// SAFETY: every method uses AVX and AVX2 instructions only; the trait's contract makes callers
// check the CPU (`Isa::Avx2.available()`) before reaching them.
unsafe impl Simd for Avx2 {
    const LANES: usize = 8;
    type F = __m256;
    type I = __m256i;
    type M = __m256;

    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        _mm256_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn splat_i(x: i32) -> __m256i {
        _mm256_set1_epi32(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn load_i(p: *const i32) -> __m256i {
        _mm256_loadu_si256(p as *const __m256i)
    }
    #[inline(always)]
    unsafe fn store_i(p: *mut i32, v: __m256i) {
        _mm256_storeu_si256(p as *mut __m256i, v)
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        _mm256_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        _mm256_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn div(a: __m256, b: __m256) -> __m256 {
        _mm256_div_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sqrt(a: __m256) -> __m256 {
        _mm256_sqrt_ps(a)
    }
    #[inline(always)]
    unsafe fn abs(a: __m256) -> __m256 {
        _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff)))
    }
    #[inline(always)]
    unsafe fn neg(a: __m256) -> __m256 {
        _mm256_xor_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN)))
    }
    #[inline(always)]
    unsafe fn min(a: __m256, b: __m256) -> __m256 {
        // vminps returns its second operand unless the first is smaller.
        _mm256_min_ps(a, b)
    }
    #[inline(always)]
    unsafe fn max(a: __m256, b: __m256) -> __m256 {
        _mm256_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn nearest_int(a: __m256) -> __m256i {
        let v = _mm256_castps_si256(_mm256_add_ps(a, _mm256_set1_ps(12_582_912.0)));
        _mm256_sub_epi32(
            _mm256_and_si256(v, _mm256_set1_epi32(0x007f_ffff)),
            _mm256_set1_epi32(0x0040_0000),
        )
    }
    #[inline(always)]
    unsafe fn clamp_i(a: __m256i, lo: __m256i, hi: __m256i) -> __m256i {
        _mm256_min_epi32(_mm256_max_epi32(a, lo), hi)
    }
    #[inline(always)]
    unsafe fn add_i(a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn to_f(a: __m256i) -> __m256 {
        _mm256_cvtepi32_ps(a)
    }
    #[inline(always)]
    unsafe fn bits(a: __m256) -> __m256i {
        _mm256_castps_si256(a)
    }
    #[inline(always)]
    unsafe fn from_bits(a: __m256i) -> __m256 {
        _mm256_castsi256_ps(a)
    }
    #[inline(always)]
    unsafe fn lt(a: __m256, b: __m256) -> __m256 {
        _mm256_cmp_ps::<_CMP_LT_OQ>(a, b)
    }
    #[inline(always)]
    unsafe fn gt(a: __m256, b: __m256) -> __m256 {
        _mm256_cmp_ps::<_CMP_GT_OQ>(a, b)
    }
    #[inline(always)]
    unsafe fn le(a: __m256, b: __m256) -> __m256 {
        _mm256_cmp_ps::<_CMP_LE_OQ>(a, b)
    }
    #[inline(always)]
    unsafe fn eq(a: __m256, b: __m256) -> __m256 {
        _mm256_cmp_ps::<_CMP_EQ_OQ>(a, b)
    }
    #[inline(always)]
    unsafe fn ne(a: __m256, b: __m256) -> __m256 {
        _mm256_cmp_ps::<_CMP_NEQ_UQ>(a, b)
    }
    #[inline(always)]
    unsafe fn ne_i(a: __m256i, b: __m256i) -> __m256 {
        let eq = _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, b));
        _mm256_xor_ps(eq, _mm256_castsi256_ps(_mm256_set1_epi32(-1)))
    }
    #[inline(always)]
    unsafe fn and(a: __m256, b: __m256) -> __m256 {
        _mm256_and_ps(a, b)
    }
    #[inline(always)]
    unsafe fn or(a: __m256, b: __m256) -> __m256 {
        _mm256_or_ps(a, b)
    }
    #[inline(always)]
    unsafe fn andnot(a: __m256, b: __m256) -> __m256 {
        // vandnps computes (!first) & second.
        _mm256_andnot_ps(b, a)
    }
    #[inline(always)]
    unsafe fn any(m: __m256) -> bool {
        _mm256_movemask_ps(m) != 0
    }
    #[inline(always)]
    unsafe fn none() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat_m(b: bool) -> __m256 {
        _mm256_castsi256_ps(_mm256_set1_epi32(if b { -1 } else { 0 }))
    }
    #[inline(always)]
    unsafe fn select(m: __m256, a: __m256, b: __m256) -> __m256 {
        _mm256_blendv_ps(b, a, m)
    }
    #[inline(always)]
    unsafe fn select_i(m: __m256, a: __m256i, b: __m256i) -> __m256i {
        _mm256_castps_si256(_mm256_blendv_ps(
            _mm256_castsi256_ps(b),
            _mm256_castsi256_ps(a),
            m,
        ))
    }
    #[inline(always)]
    unsafe fn transpose(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
        let mut r = [_mm256_setzero_ps(); 8];
        for (i, r) in r.iter_mut().enumerate() {
            *r = _mm256_loadu_ps(src.add(i * src_stride));
        }
        // Within each 128-bit lane: u[4i + c] holds, in lane q, column 4q + c of rows 4i..4i+4.
        let mut t = [_mm256_setzero_ps(); 8];
        for i in 0..4 {
            t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let mut u = [_mm256_setzero_ps(); 8];
        for i in 0..2 {
            let (a0, a1, b0, b1) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
            u[4 * i] = _mm256_castpd_ps(_mm256_unpacklo_pd(
                _mm256_castps_pd(a0),
                _mm256_castps_pd(b0),
            ));
            u[4 * i + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(
                _mm256_castps_pd(a0),
                _mm256_castps_pd(b0),
            ));
            u[4 * i + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(
                _mm256_castps_pd(a1),
                _mm256_castps_pd(b1),
            ));
            u[4 * i + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(
                _mm256_castps_pd(a1),
                _mm256_castps_pd(b1),
            ));
        }
        for c in 0..4 {
            _mm256_storeu_ps(
                dst.add(c * dst_stride),
                _mm256_permute2f128_ps::<0x20>(u[c], u[4 + c]),
            );
            _mm256_storeu_ps(
                dst.add((4 + c) * dst_stride),
                _mm256_permute2f128_ps::<0x31>(u[c], u[4 + c]),
            );
        }
    }
}

/// [`crate::vector::rows::quantize_row`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn quantize_row(
    kind: crate::vector::Kind,
    b: &mut crate::vector::search::Batch,
    src: &[f32],
    qw: Option<&[f32]>,
    dst: &mut [u8],
) {
    crate::vector::rows::quantize_row::<Avx2>(kind, b, src, qw, dst)
}
