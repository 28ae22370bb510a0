//! AVX-512 and AVX2 bodies of [`crate::gelu`]: the f32 expression `0.5·x·(1 + tanh(u))` with
//! `tanh(|u|)` evaluated in f64 lanes and rounded once to f32.
//!
//! `tanh(a)`, `a = min(|u|, 20)` (tanh(20) rounds to 1 in f32, as every larger value does):
//! - `a < 1/8`: the odd Taylor series to `a¹¹` (the first term left out is below 1e-13·a);
//! - else `1 − 2/(e^{2a} + 1)`, with `e^{2a} = 2^k · p(r)`, `k = round(2a/ln 2)`,
//!   `r = 2a − k·ln 2` (|r| ≤ ln 2 / 2) and `p` the Taylor polynomial of `exp` to `r¹¹`
//!   (remainder below 1e-14 relative). No division by a small number, no overflow: e ≤ e⁴⁰.
//!
//! The sign of `u` is put back on the f32 result, and the rest is done in f32 with separate
//! multiplies and adds in PyTorch's order, so that only `tanh` is rounded differently.

use core::arch::x86_64::*;

use crate::gelu::{BETA, KAPPA};

/// Coefficients of tanh's odd Taylor series after the linear term: a³, a⁵, …, a¹¹.
const TANH_TAYLOR: [f64; 5] = [
    -1.0 / 3.0,
    2.0 / 15.0,
    -17.0 / 315.0,
    62.0 / 2835.0,
    -1382.0 / 155_925.0,
];
/// Below this |u|, the Taylor series; above, the exponential form.
const SMALL: f64 = 0.125;
/// |u| is clamped here (tanh rounds to 1 in f32 well before).
const CLAMP: f32 = 20.0;

/// 1/n! for n = 11 down to 0: Horner's order for `exp`'s Taylor polynomial.
const EXP_TAYLOR: [f64; 12] = {
    let mut c = [0f64; 12];
    let mut f = 1f64;
    let mut n = 0;
    while n < 12 {
        if n > 0 {
            f *= n as f64;
        }
        c[11 - n] = 1.0 / f;
        n += 1;
    }
    c
};

/// tanh of 8 non-negative f64 lanes (≤ [`CLAMP`]).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tanh_pos_pd512(a: __m512d) -> __m512d {
    // Exponential branch.
    let v = _mm512_add_pd(a, a);
    let k = _mm512_roundscale_pd::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_pd(v, _mm512_set1_pd(core::f64::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_pd(k, _mm512_set1_pd(core::f64::consts::LN_2), v);
    let mut p = _mm512_set1_pd(EXP_TAYLOR[0]);
    for &c in &EXP_TAYLOR[1..] {
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c));
    }
    let e = _mm512_scalef_pd(p, k);
    let one = _mm512_set1_pd(1.0);
    let big = _mm512_sub_pd(
        one,
        _mm512_div_pd(_mm512_set1_pd(2.0), _mm512_add_pd(e, one)),
    );
    // Taylor branch.
    let a2 = _mm512_mul_pd(a, a);
    let mut q = _mm512_set1_pd(TANH_TAYLOR[4]);
    for &c in TANH_TAYLOR[..4].iter().rev() {
        q = _mm512_fmadd_pd(q, a2, _mm512_set1_pd(c));
    }
    let small = _mm512_fmadd_pd(_mm512_mul_pd(q, a2), a, a);
    let is_small = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(a, _mm512_set1_pd(SMALL));
    _mm512_mask_blend_pd(is_small, big, small)
}

/// tanh of 16 f32 lanes: |u| clamped to [`CLAMP`] (operand order that keeps NaN), tanh in f64
/// lanes ([`tanh_pos_pd512`]) rounded once to f32, the sign of `u` put back.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tanh_ps512(u: __m512) -> __m512 {
    let sign = _mm512_set1_epi32(i32::MIN);
    let au = _mm512_min_ps(
        _mm512_set1_ps(CLAMP),
        _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(u))),
    );
    let lo = tanh_pos_pd512(_mm512_cvtps_pd(_mm512_castps512_ps256(au)));
    let hi = tanh_pos_pd512(_mm512_cvtps_pd(_mm256_castpd_ps(
        _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(au)),
    )));
    let t = _mm512_insertf64x4::<1>(
        _mm512_castpd256_pd512(_mm256_castps_pd(_mm512_cvtpd_ps(lo))),
        _mm256_castps_pd(_mm512_cvtpd_ps(hi)),
    );
    _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castpd_si512(t),
        _mm512_and_si512(_mm512_castps_si512(u), sign),
    ))
}

/// `a[i] = gelu(a[i]) · b[i]`, 16 lanes at a time, a masked tail.
///
/// # Safety
/// The CPU has AVX-512 F; `a.len() == b.len()`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn gelu_mul_avx512(a: &mut [f32], b: &[f32]) {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let (ap, bp) = (a.as_mut_ptr(), b.as_ptr());
    let mut i = 0;
    while i < n {
        let m = super::mask16(n - i);
        let x = _mm512_maskz_loadu_ps(m, ap.add(i));
        let y = _mm512_maskz_loadu_ps(m, bp.add(i));
        let x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
        let u = _mm512_mul_ps(
            _mm512_set1_ps(BETA),
            _mm512_add_ps(x, _mm512_mul_ps(_mm512_set1_ps(KAPPA), x3)),
        );
        let t = tanh_ps512(u);
        let g = _mm512_mul_ps(
            _mm512_mul_ps(_mm512_set1_ps(0.5), x),
            _mm512_add_ps(_mm512_set1_ps(1.0), t),
        );
        _mm512_mask_storeu_ps(ap.add(i), m, _mm512_mul_ps(g, y));
        i += 16;
    }
}

/// tanh of 4 non-negative f64 lanes (≤ [`CLAMP`]).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tanh_pos_pd256(a: __m256d) -> __m256d {
    let v = _mm256_add_pd(a, a);
    let k = _mm256_round_pd::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_pd(
        v,
        _mm256_set1_pd(core::f64::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_pd(k, _mm256_set1_pd(core::f64::consts::LN_2), v);
    let mut p = _mm256_set1_pd(EXP_TAYLOR[0]);
    for &c in &EXP_TAYLOR[1..] {
        p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(c));
    }
    // 2^k from its exponent bits (0 ≤ k ≤ 58).
    let ki = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k));
    let two_k = _mm256_castsi256_pd(_mm256_slli_epi64::<52>(_mm256_add_epi64(
        ki,
        _mm256_set1_epi64x(1023),
    )));
    let e = _mm256_mul_pd(p, two_k);
    let one = _mm256_set1_pd(1.0);
    let big = _mm256_sub_pd(
        one,
        _mm256_div_pd(_mm256_set1_pd(2.0), _mm256_add_pd(e, one)),
    );
    let a2 = _mm256_mul_pd(a, a);
    let mut q = _mm256_set1_pd(TANH_TAYLOR[4]);
    for &c in TANH_TAYLOR[..4].iter().rev() {
        q = _mm256_fmadd_pd(q, a2, _mm256_set1_pd(c));
    }
    let small = _mm256_fmadd_pd(_mm256_mul_pd(q, a2), a, a);
    let is_small = _mm256_cmp_pd::<_CMP_LT_OQ>(a, _mm256_set1_pd(SMALL));
    _mm256_blendv_pd(big, small, is_small)
}

/// tanh of 8 f32 lanes: [`tanh_ps512`] on AVX2.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tanh_ps256(u: __m256) -> __m256 {
    let sign = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
    let au = _mm256_min_ps(_mm256_set1_ps(CLAMP), _mm256_andnot_ps(sign, u));
    let lo = tanh_pos_pd256(_mm256_cvtps_pd(_mm256_castps256_ps128(au)));
    let hi = tanh_pos_pd256(_mm256_cvtps_pd(_mm256_extractf128_ps::<1>(au)));
    let t = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
    _mm256_or_ps(t, _mm256_and_ps(u, sign))
}

/// `a[i] = gelu(a[i]) · b[i]`, 8 lanes at a time, the tail through a stack copy.
///
/// # Safety
/// The CPU has AVX2 and FMA; `a.len() == b.len()`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn gelu_mul_avx2(a: &mut [f32], b: &[f32]) {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let mut i = 0;
    while i + 8 <= n {
        gelu8_avx2(a.as_mut_ptr().add(i), b.as_ptr().add(i));
        i += 8;
    }
    if i < n {
        let (mut ta, mut tb) = ([0f32; 8], [0f32; 8]);
        ta[..n - i].copy_from_slice(&a[i..]);
        tb[..n - i].copy_from_slice(&b[i..]);
        gelu8_avx2(ta.as_mut_ptr(), tb.as_ptr());
        a[i..].copy_from_slice(&ta[..n - i]);
    }
}

/// Eight lanes of [`gelu_mul_avx2`].
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu8_avx2(ap: *mut f32, bp: *const f32) {
    let x = _mm256_loadu_ps(ap);
    let y = _mm256_loadu_ps(bp);
    let x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    let u = _mm256_mul_ps(
        _mm256_set1_ps(BETA),
        _mm256_add_ps(x, _mm256_mul_ps(_mm256_set1_ps(KAPPA), x3)),
    );
    let t = tanh_ps256(u);
    let g = _mm256_mul_ps(
        _mm256_mul_ps(_mm256_set1_ps(0.5), x),
        _mm256_add_ps(_mm256_set1_ps(1.0), t),
    );
    _mm256_storeu_ps(ap, _mm256_mul_ps(g, y));
}

/// `x[i] = cap · tanh(x[i] / cap)`, 16 lanes at a time, a masked tail. `|u|` is clamped with
/// the NaN-propagating operand order, so NaN stays NaN and ±∞ gives ±cap.
///
/// # Safety
/// The CPU has AVX-512 F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn softcap_avx512(x: &mut [f32], cap: f32) {
    let n = x.len();
    let p = x.as_mut_ptr();
    let c = _mm512_set1_ps(cap);
    let mut i = 0;
    while i < n {
        let m = super::mask16(n - i);
        let u = _mm512_div_ps(_mm512_maskz_loadu_ps(m, p.add(i)), c);
        let t = tanh_ps512(u);
        _mm512_mask_storeu_ps(p.add(i), m, _mm512_mul_ps(t, c));
        i += 16;
    }
}

/// `x[i] = cap · tanh(x[i] / cap)`, 8 lanes at a time, the tail through a stack copy.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn softcap_avx2(x: &mut [f32], cap: f32) {
    let n = x.len();
    let mut i = 0;
    while i + 8 <= n {
        softcap8_avx2(x.as_mut_ptr().add(i), cap);
        i += 8;
    }
    if i < n {
        let mut t = [0f32; 8];
        t[..n - i].copy_from_slice(&x[i..]);
        softcap8_avx2(t.as_mut_ptr(), cap);
        x[i..].copy_from_slice(&t[..n - i]);
    }
}

/// Eight lanes of [`softcap_avx2`].
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn softcap8_avx2(p: *mut f32, cap: f32) {
    let c = _mm256_set1_ps(cap);
    let u = _mm256_div_ps(_mm256_loadu_ps(p), c);
    let t = tanh_ps256(u);
    _mm256_storeu_ps(p, _mm256_mul_ps(t, c));
}
