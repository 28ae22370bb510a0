//! AVX-512 preparation of TurboQuant activations (docs/turboquant.md §4, §10): the rotation of
//! each column block (signs, Walsh–Hadamard butterflies, × 1/√B) and the TQA8 quantization
//! (int8 per group of 32, de-interleaved per 128), **bit-identical** to the scalar reference
//! ([`crate::formats::tq_rotation::rotate_row`], [`crate::formats::tq::quantize_act`]): every
//! butterfly is the same f32 `p + q` / `p − q`, the group maximum ignores NaN like `f32::max`,
//! the division and reciprocal are the scalar ones, rounding is half away from zero done
//! exactly (`trunc` + a ±1 step when the exact fraction is ≥ ½), NaN becomes 0 and the
//! conversion saturates like Rust's `as i8`.

use crate::formats::tq_rotation::{block_sign_bits, inv_sqrt};
use core::arch::x86_64::*;

/// Whether [`rotate_row`] / [`quantize_act`] may run: the selected ISA is AVX-512 and the CPU
/// has VBMI (the de-interleave uses `vpermt2b`).
pub(crate) fn usable() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        crate::Isa::selected() == crate::Isa::Avx512 && super::tq_avx512::available()
    })
}

/// One in-register butterfly stage of distance `h` < 16: lanes without bit `h` get
/// `x[i] + x[i+h]`, lanes with it `x[i−h] − x[i]`.
#[inline(always)]
unsafe fn stage(v: __m512, s: __m512, upper: __mmask16) -> __m512 {
    _mm512_mask_sub_ps(_mm512_add_ps(v, s), upper, s, v)
}

/// Rotates every column block (`b` = 16…256, a power of two) of `x` with `seed`, as
/// [`crate::formats::tq_rotation::rotate_row`] does (same bits).
///
/// # Safety
/// [`usable`] must hold; `x.len()` is a multiple of `b`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx2,fma")]
pub(crate) unsafe fn rotate_row(x: &mut [f32], b: usize, seed: u64) {
    debug_assert!(b.is_power_of_two() && (16..=256).contains(&b));
    let nv = b / 16;
    let k = _mm512_set1_ps(inv_sqrt(b));
    let sign = _mm512_set1_epi32(i32::MIN);
    for (j, blk) in x.chunks_exact_mut(b).enumerate() {
        let signs = block_sign_bits(seed, j as u64, b);
        let p = blk.as_mut_ptr();
        let mut v = [_mm512_setzero_ps(); 16];
        for (i, vi) in v.iter_mut().enumerate().take(nv) {
            let m = (signs[i / 4] >> (16 * (i % 4))) as u16;
            let raw = _mm512_castps_si512(_mm512_loadu_ps(p.add(16 * i)));
            let mut t = _mm512_castsi512_ps(_mm512_mask_xor_epi32(raw, m, raw, sign));
            t = stage(t, _mm512_permute_ps::<0b10_11_00_01>(t), 0xAAAA);
            t = stage(t, _mm512_permute_ps::<0b01_00_11_10>(t), 0xCCCC);
            t = stage(t, _mm512_shuffle_f32x4::<0b10_11_00_01>(t, t), 0xF0F0);
            t = stage(t, _mm512_shuffle_f32x4::<0b01_00_11_10>(t, t), 0xFF00);
            *vi = t;
        }
        let mut m = 1;
        while m < nv {
            for i in 0..nv {
                if i & m == 0 {
                    let (a, c) = (v[i], v[i + m]);
                    v[i] = _mm512_add_ps(a, c);
                    v[i + m] = _mm512_sub_ps(a, c);
                }
            }
            m *= 2;
        }
        for (i, vi) in v.iter().enumerate().take(nv) {
            _mm512_storeu_ps(p.add(16 * i), _mm512_mul_ps(*vi, k));
        }
    }
}

/// Rounds half away from zero exactly, NaN → 0, then saturates to int8 (Rust's
/// `f.round() as i8`), 16 lanes.
#[inline(always)]
unsafe fn round_i8(q: __m512) -> __m128i {
    let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(q);
    let frac = _mm512_sub_ps(q, t);
    let absmask = _mm512_set1_epi32(0x7fff_ffff);
    let afrac = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(frac), absmask));
    let step = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(afrac, _mm512_set1_ps(0.5));
    let one = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_andnot_si512(absmask, _mm512_castps_si512(q)),
        _mm512_castps_si512(_mm512_set1_ps(1.0)),
    ));
    let r = _mm512_mask_add_ps(t, step, t, one);
    let ord = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(r, r);
    let r = _mm512_maskz_mov_ps(ord, r);
    // Clamp before the conversion so that ±Inf and huge values saturate like `as i8`.
    let r = _mm512_min_ps(
        _mm512_max_ps(r, _mm512_set1_ps(-128.0)),
        _mm512_set1_ps(127.0),
    );
    _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(r))
}

/// [`crate::formats::tq::quantize_act`] for rows of a multiple of 128 coordinates (same
/// bytes).
///
/// # Safety
/// [`usable`] must hold; `x.len()` is a multiple of 128 and `dst` holds `x.len() · 9/8` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx2,fma")]
pub(crate) unsafe fn quantize_act(x: &[f32], dst: &mut [u8]) {
    let n = x.len();
    debug_assert!(n.is_multiple_of(128) && dst.len() == n + n / 8);
    let ev: [u8; 64] = core::array::from_fn(|i| (2 * i) as u8);
    let od: [u8; 64] = core::array::from_fn(|i| (2 * i + 1) as u8);
    let (iev, iod) = (
        _mm512_loadu_si512(ev.as_ptr().cast()),
        _mm512_loadu_si512(od.as_ptr().cast()),
    );
    let absmask = _mm512_set1_epi32(0x7fff_ffff);
    let xp = x.as_ptr();
    let (q, s) = dst.split_at_mut(n);
    for c in 0..n / 128 {
        let mut nat = [0u8; 128];
        for g in 0..4 {
            let p = xp.add(128 * c + 32 * g);
            let (v0, v1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
            let abs =
                |v: __m512| _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), absmask));
            // vmaxps returns its second operand when either is NaN: NaN lanes are ignored, as
            // `f32::max` ignores them in the scalar fold.
            let m = _mm512_max_ps(abs(v0), _mm512_setzero_ps());
            let m = _mm512_max_ps(abs(v1), m);
            let amax = _mm512_reduce_max_ps(m);
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let idv = _mm512_set1_ps(id);
            let b0 = round_i8(_mm512_mul_ps(v0, idv));
            let b1 = round_i8(_mm512_mul_ps(v1, idv));
            _mm_storeu_si128(nat.as_mut_ptr().add(32 * g).cast(), b0);
            _mm_storeu_si128(nat.as_mut_ptr().add(32 * g + 16).cast(), b1);
            let gi = 4 * c + g;
            s[4 * gi..4 * gi + 4].copy_from_slice(&d.to_le_bytes());
        }
        let lo = _mm512_loadu_si512(nat.as_ptr().cast());
        let hi = _mm512_loadu_si512(nat.as_ptr().add(64).cast());
        let o = q.as_mut_ptr().add(128 * c);
        _mm512_storeu_si512(o.cast(), _mm512_permutex2var_epi8(lo, iev, hi));
        _mm512_storeu_si512(o.add(64).cast(), _mm512_permutex2var_epi8(lo, iod, hi));
    }
}
