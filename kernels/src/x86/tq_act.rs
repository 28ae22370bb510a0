//! AVX-512 preparation of TurboQuant activations (docs/turboquant.md §4, §10): the rotation of
//! each column block (signs, Walsh–Hadamard butterflies, × 1/√B) and the TQA8 quantization
//! (int8 per group of 32, de-interleaved per 128), **bit-identical** to the scalar reference
//! ([`crate::formats::tq_rotation::rotate_row`], [`crate::formats::tq::quantize_act`]): every
//! butterfly is the same f32 `p + q` / `p − q`, the group maximum ignores NaN like `f32::max`,
//! the division and reciprocal are the scalar ones, rounding is half away from zero done
//! exactly (`trunc` + a ±1 step when the exact fraction is ≥ ½), NaN becomes 0 and the
//! conversion saturates like Rust's `as i8`. [`prepare_tile_256_avx2`] is the fused tile
//! preparation on AVX2 (the AVX2 table's tiled TQ GEMM), the same bytes.

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
    for (j, blk) in x.chunks_exact_mut(b).enumerate() {
        let signs = block_sign_bits(seed, j as u64, b);
        let p = blk.as_mut_ptr();
        if nv == 16 {
            // The common block: every loop below has constant bounds (registers, no spills).
            let v = rot256(p, &signs, k);
            for (i, vi) in v.iter().enumerate() {
                _mm512_storeu_ps(p.add(16 * i), *vi);
            }
            continue;
        }
        let mut v = [_mm512_setzero_ps(); 16];
        for (i, vi) in v.iter_mut().enumerate().take(nv) {
            *vi = in_register(p, i, &signs);
        }
        cross_butterflies(&mut v, nv, k);
        for (i, vi) in v.iter().enumerate().take(nv) {
            _mm512_storeu_ps(p.add(16 * i), *vi);
        }
    }
}

/// One 256-block at `p` rotated (signs, butterflies, × `k`) in registers: the same f32
/// operations in the same order as [`rotate_row`]'s general loop (same bits).
#[inline(always)]
unsafe fn rot256(p: *const f32, signs: &[u64; 4], k: __m512) -> [__m512; 16] {
    let mut v = [_mm512_setzero_ps(); 16];
    for (i, vi) in v.iter_mut().enumerate() {
        *vi = in_register(p, i, signs);
    }
    cross_butterflies(&mut v, 16, k);
    v
}

/// Register `i` of a block at `p`: its signs flipped, then the four in-register butterfly
/// stages ([`stage`]).
#[inline(always)]
pub(super) unsafe fn in_register(p: *const f32, i: usize, signs: &[u64; 4]) -> __m512 {
    let m = (signs[i / 4] >> (16 * (i % 4))) as u16;
    let raw = _mm512_castps_si512(_mm512_loadu_ps(p.add(16 * i)));
    let mut t = _mm512_castsi512_ps(_mm512_mask_xor_epi32(
        raw,
        m,
        raw,
        _mm512_set1_epi32(i32::MIN),
    ));
    t = stage(t, _mm512_permute_ps::<0b10_11_00_01>(t), 0xAAAA);
    t = stage(t, _mm512_permute_ps::<0b01_00_11_10>(t), 0xCCCC);
    t = stage(t, _mm512_shuffle_f32x4::<0b10_11_00_01>(t, t), 0xF0F0);
    stage(t, _mm512_shuffle_f32x4::<0b01_00_11_10>(t, t), 0xFF00)
}

/// The butterflies across the first `nv` registers of a block (register `i` with `i + m`, for
/// m = 1, 2, 4, … < nv: sum and difference), then the scale `k`: the part of the rotation that
/// [`rotate_row`], [`rot256`], [`rot256_for_act`] and the encoder's `tq_encode::rotate` share.
#[inline(always)]
pub(super) unsafe fn cross_butterflies(v: &mut [__m512; 16], nv: usize, k: __m512) {
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
    for vi in v.iter_mut().take(nv) {
        *vi = _mm512_mul_ps(*vi, k);
    }
}

/// One 256-block at `p` rotated in registers for [`prepare_tile_256`]: the butterflies of
/// [`rot256`], but each in-register stage is one `vfmadd` (`v·(±1) + s`: lanes without bit `h`
/// get `v + s`, lanes with it `s − v`, each exactly the one rounding of the scalar `+` / `−`,
/// so the same value; only a NaN's payload may differ, and NaN becomes 0 in TQA8). The TQ
/// encoder's 256-blocks take it too (`tq_encode::rotate`).
#[inline(always)]
pub(super) unsafe fn rot256_for_act(p: *const f32, signs: &[u64; 4], k: __m512) -> [__m512; 16] {
    let sign = _mm512_set1_epi32(i32::MIN);
    let pm = |m: u16| _mm512_mask_blend_ps(m, _mm512_set1_ps(1.0), _mm512_set1_ps(-1.0));
    let (s1, s2, s4, s8) = (pm(0xAAAA), pm(0xCCCC), pm(0xF0F0), pm(0xFF00));
    let mut v = [_mm512_setzero_ps(); 16];
    macro_rules! lane_stages {
        ($($i:literal)*) => {$(
            let m = (signs[$i / 4] >> (16 * ($i % 4))) as u16;
            let raw = _mm512_castps_si512(_mm512_loadu_ps(p.add(16 * $i)));
            let mut t = _mm512_castsi512_ps(_mm512_mask_xor_epi32(raw, m, raw, sign));
            t = _mm512_fmadd_ps(t, s1, _mm512_permute_ps::<0b10_11_00_01>(t));
            t = _mm512_fmadd_ps(t, s2, _mm512_permute_ps::<0b01_00_11_10>(t));
            t = _mm512_fmadd_ps(t, s4, _mm512_shuffle_f32x4::<0b10_11_00_01>(t, t));
            t = _mm512_fmadd_ps(t, s8, _mm512_shuffle_f32x4::<0b01_00_11_10>(t, t));
            v[$i] = t;
        )*};
    }
    lane_stages!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    cross_butterflies(&mut v, 16, k);
    v
}

/// Per-group reduction of 8 vectors of 16 lanes (`op` associative and commutative on the
/// values at hand: `max` of non-NaN floats, integer `+`): lane `g` of the result is the
/// reduction of `v[g]` (lanes 8–15 are copies). 24 operations instead of 8 horizontal folds.
#[inline(always)]
unsafe fn reduce8(v: [__m512; 8], op: impl Fn(__m512, __m512) -> __m512) -> __m512 {
    // Quarters: [a.q0 a.q1 b.q0 b.q1] op [a.q2 a.q3 b.q2 b.q3].
    let l1 = |a: __m512, b: __m512| {
        op(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
        )
    };
    let w = [
        l1(v[0], v[1]),
        l1(v[2], v[3]),
        l1(v[4], v[5]),
        l1(v[6], v[7]),
    ];
    // Quarters: [a.q0 a.q2 b.q0 b.q2] op [a.q1 a.q3 b.q1 b.q3]: quarter q holds v[q] (v[4 + q]).
    let l2 = |a: __m512, b: __m512| {
        op(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
        )
    };
    let (x0, x1) = (l2(w[0], w[1]), l2(w[2], w[3]));
    // Within each quarter: [x0.0 x0.1 x1.0 x1.1] op [x0.2 x0.3 x1.2 x1.3], then pairs.
    let y = op(
        _mm512_shuffle_ps::<0b01_00_01_00>(x0, x1),
        _mm512_shuffle_ps::<0b11_10_11_10>(x0, x1),
    );
    let z = op(y, _mm512_permute_ps::<0b10_11_00_01>(y));
    // Quarter q: lane 0 = v[q], lane 2 = v[4 + q].
    let idx = _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 0, 4, 8, 12, 2, 6, 10, 14);
    _mm512_permutexvar_ps(idx, z)
}

/// [`round_i8`]'s integers as int32 lanes (in [−128, 127]), in fewer operations: rounding half
/// away from zero as `trunc(q + copysign(½ − 2⁻²⁵, q))`, which gives the same integer for every
/// f32 `q` (for `|q| < 2²³` the sum reaches the next integer exactly when the fraction is ≥ ½ —
/// a fraction of ½ lands within 2⁻²⁵ of it and rounds there, a fraction below ½ is at least one
/// ulp of `q` short and stays below; beyond, `q` is an integer and the sum rounds back to it);
/// NaN lanes (by the ordered compare) become 0, the clamp to [−128, 127] happens before the
/// conversion (±Inf saturate). Tested against [`round_i8`] on every f32 near the half-integers.
#[inline(always)]
unsafe fn round_clamp_i32(q: __m512) -> __m512i {
    let ord = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(q, q);
    // (q & sign) | (½ − 2⁻²⁵)
    let c = _mm512_castsi512_ps(_mm512_ternarylogic_epi32::<0xEA>(
        _mm512_castps_si512(q),
        _mm512_set1_epi32(i32::MIN),
        _mm512_set1_epi32(0x3eff_ffff),
    ));
    let t = _mm512_add_ps(q, c);
    let t = _mm512_min_ps(
        _mm512_max_ps(t, _mm512_set1_ps(-128.0)),
        _mm512_set1_ps(127.0),
    );
    _mm512_maskz_cvttps_epi32(ord, t)
}

/// The TurboQuant GEMM's prepared activation (`x86::tile::prepare_tq`'s layout) of a row of
/// 256-blocks, straight from the f32 row in one pass: per block the rotation in registers, the
/// TQA8 quantization of each group of 32, its 16 even then 16 odd coordinates, its scale and
/// `−128·Σa`. The same bytes as [`crate::formats::tq::prepare_activation`] followed by
/// `prepare_tq` (tested), without their intermediate rows.
///
/// The rounding is [`round_clamp_i32`] (the same integers as [`round_i8`]).
///
/// # Safety
/// [`usable`] must hold; `x.len()` is a multiple of 256 and `dst` holds at least
/// `x.len() / 256 · 320` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx2,fma")]
pub(crate) unsafe fn prepare_tile_256(x: &[f32], seed: u64, dst: &mut [u8]) {
    const AB: usize = 320;
    debug_assert!(x.len().is_multiple_of(256) && dst.len() >= x.len() / 256 * AB);
    let k = _mm512_set1_ps(inv_sqrt(256));
    // Per group: output byte m < 16 is coordinate 2m, m ≥ 16 coordinate 2(m − 16) + 1; the
    // coordinates are the low bytes of the two int32 vectors (0–15 in the first, 16–31 in the
    // second: byte 4c, or 64 + 4(c − 16)).
    let eo: [u8; 64] = core::array::from_fn(|m| {
        let c = if m < 16 {
            2 * m
        } else {
            (2 * (m - 16) + 1) % 32
        };
        (if c < 16 { 4 * c } else { 64 + 4 * (c - 16) }) as u8
    });
    let ieo = _mm512_loadu_si512(eo.as_ptr().cast());
    let absmask = _mm512_set1_epi32(0x7fff_ffff);
    for (j, blk) in x.chunks_exact(256).enumerate() {
        let signs = block_sign_bits(seed, j as u64, 256);
        let v = rot256_for_act(blk.as_ptr(), &signs, k);
        let o = dst.as_mut_ptr().add(AB * j);
        // Per group max(|v0|, max(|v1|, 0)) per lane: `vmaxps` returns its second operand when
        // either is NaN, so NaN lanes are ignored as `f32::max` ignores them.
        let abs =
            |a: __m512| _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), absmask));
        let m: [__m512; 8] = core::array::from_fn(|g| {
            _mm512_max_ps(
                abs(v[2 * g + 1]),
                _mm512_max_ps(abs(v[2 * g]), _mm512_setzero_ps()),
            )
        });
        let am = _mm512_castps512_ps256(reduce8(m, |a, b| _mm512_max_ps(a, b)));
        // d = amax / 127 and 1/d (0 where d = 0): the scalar operations, correctly rounded in
        // either form.
        let d = _mm256_div_ps(am, _mm256_set1_ps(127.0));
        let nz = _mm256_cmp_ps_mask::<_CMP_NEQ_UQ>(d, _mm256_setzero_ps());
        let id = _mm256_maskz_div_ps(nz, _mm256_set1_ps(1.0), d);
        _mm256_storeu_ps(o.add(256).cast(), d);
        let mut ids = [0f32; 8];
        _mm256_storeu_ps(ids.as_mut_ptr(), id);
        let q8 = |a: __m512, idv: __m512| round_clamp_i32(_mm512_mul_ps(a, idv));
        let mut sums = [_mm512_setzero_ps(); 8];
        for g in 0..8 {
            let idv = _mm512_set1_ps(ids[g]);
            let (i0, i1) = (q8(v[2 * g], idv), q8(v[2 * g + 1], idv));
            let q = _mm512_permutex2var_epi8(i0, ieo, i1);
            _mm256_storeu_si256(o.add(32 * g).cast(), _mm512_castsi512_si256(q));
            sums[g] = _mm512_castsi512_ps(_mm512_add_epi32(i0, i1));
        }
        let s = reduce8(sums, |a, b| {
            _mm512_castsi512_ps(_mm512_add_epi32(
                _mm512_castps_si512(a),
                _mm512_castps_si512(b),
            ))
        });
        // −128·Σa
        let s = _mm256_sub_epi32(
            _mm256_setzero_si256(),
            _mm256_slli_epi32::<7>(_mm512_castsi512_si256(_mm512_castps_si512(s))),
        );
        _mm256_storeu_si256(o.add(288).cast(), s);
    }
}

/// [`round_clamp_i32`] on AVX2, 8 lanes: the same integers (the same `trunc(q + copysign(½ −
/// 2⁻²⁵, q))`, clamp to [−128, 127] and NaN → 0), i.e. Rust's `q.round() as i8` (tested on the
/// values of `short_rounding_equals_the_exact_one`).
#[inline(always)]
unsafe fn round_clamp_i32_avx2(q: __m256) -> __m256i {
    let ord = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_ORD_Q>(q, q));
    let c = _mm256_or_ps(
        _mm256_and_ps(q, _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN))),
        _mm256_castsi256_ps(_mm256_set1_epi32(0x3eff_ffff)),
    );
    let t = _mm256_add_ps(q, c);
    let t = _mm256_min_ps(
        _mm256_max_ps(t, _mm256_set1_ps(-128.0)),
        _mm256_set1_ps(127.0),
    );
    _mm256_and_si256(_mm256_cvttps_epi32(t), ord)
}

/// [`prepare_tile_256`] on AVX2 (FMA): the same bytes. Per 256-block, in three passes over a
/// 1 KiB aligned stack copy so that at most a few ymm values are live at a time (16 registers):
///
/// 1. per 64 coordinates (8 registers): the signs (the sign word's bits moved to bit 31 by a
///    variable shift), the three in-register butterfly stages (`vfmadd` of `v·(±1)` and the
///    swapped lanes, as in [`rot256_for_act`]) and the across-register stages of distance 1, 2
///    and 4 registers;
/// 2. per registers `i, i+8, i+16, i+24`: the stages of distance 8 and 16, × 1/16, and the
///    running NaN-ignoring maximum of each group of 32;
/// 3. per group: `d = amax/127` and `1/d` (eight groups at once), the rounded int8 (packed and
///    shuffled to the 16 even then 16 odd coordinates), `d` and `−128·Σa`.
///
/// Every coordinate sees the same f32 operations in the same order as in the scalar
/// reference; only the schedule differs.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `x.len()` is a multiple of 256 and `dst` holds at least
/// `x.len() / 256 · 320` bytes.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn prepare_tile_256_avx2(x: &[f32], seed: u64, dst: &mut [u8]) {
    const AB: usize = 320;
    debug_assert!(x.len().is_multiple_of(256) && dst.len() >= x.len() / 256 * AB);
    let k = _mm256_set1_ps(inv_sqrt(256));
    let pm = |a: f32, b: f32, c: f32, d: f32| _mm256_setr_ps(a, b, c, d, a, b, c, d);
    let s1 = pm(1.0, -1.0, 1.0, -1.0);
    let s2 = pm(1.0, 1.0, -1.0, -1.0);
    let s4 = _mm256_setr_ps(1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0);
    // Register r (mod 4) of a 32-bit half of a sign word: lane l's bit 8r + l goes to bit 31.
    let sh: [__m256i; 4] = core::array::from_fn(|r| {
        let c = |l: i32| 31 - 8 * r as i32 - l;
        _mm256_setr_epi32(c(0), c(1), c(2), c(3), c(4), c(5), c(6), c(7))
    });
    let sign = _mm256_set1_epi32(i32::MIN);
    let absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    // After the packs: lane 0 holds coordinates 0–3, 8–11, 16–19, 24–27 (dwords 0–3), lane 1
    // the others; this dword order restores 0…15 | 16…31, then the bytes go even | odd per lane.
    let dw = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let eo = _mm256_setr_epi8(
        0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5,
        7, 9, 11, 13, 15,
    );
    // Maximum of adjacent lane pairs of two vectors, per 128-bit lane (the `vhaddps`
    // pattern with `max`): [a0∨a1, a2∨a3, b0∨b1, b2∨b3].
    let hmax = |a: __m256, b: __m256| {
        _mm256_max_ps(
            _mm256_shuffle_ps::<0b10_00_10_00>(a, b),
            _mm256_shuffle_ps::<0b11_01_11_01>(a, b),
        )
    };
    let mut buf = [_mm256_setzero_ps(); 32];
    for (j, blk) in x.chunks_exact(256).enumerate() {
        let signs = block_sign_bits(seed, j as u64, 256);
        let p = blk.as_ptr();
        // Pass 1: registers 8q…8q+7 (sign word q).
        for (q, &w) in signs.iter().enumerate() {
            let half = [
                _mm256_set1_epi32(w as u32 as i32),
                _mm256_set1_epi32((w >> 32) as u32 as i32),
            ];
            let mut v: [__m256; 8] = core::array::from_fn(|r| {
                let flip = _mm256_and_si256(_mm256_sllv_epi32(half[r / 4], sh[r % 4]), sign);
                let raw = _mm256_castps_si256(_mm256_loadu_ps(p.add(64 * q + 8 * r)));
                let mut t = _mm256_castsi256_ps(_mm256_xor_si256(raw, flip));
                t = _mm256_fmadd_ps(t, s1, _mm256_permute_ps::<0b10_11_00_01>(t));
                t = _mm256_fmadd_ps(t, s2, _mm256_permute_ps::<0b01_00_11_10>(t));
                _mm256_fmadd_ps(t, s4, _mm256_permute2f128_ps::<0x01>(t, t))
            });
            for m in [1, 2, 4] {
                for i in 0..8 {
                    if i & m == 0 {
                        let (a, c) = (v[i], v[i + m]);
                        v[i] = _mm256_add_ps(a, c);
                        v[i + m] = _mm256_sub_ps(a, c);
                    }
                }
            }
            buf[8 * q..8 * q + 8].copy_from_slice(&v);
        }
        // Pass 2: the stages of distance 8 and 16 on registers i, i+8, i+16, i+24 (groups
        // i/4, 2 + i/4, 4 + i/4, 6 + i/4), × 1/16, and the group maxima: `vmaxps` returns its
        // second operand when either is NaN, so NaN lanes are ignored, as `f32::max` ignores
        // them in the scalar fold (the order does not matter: the maximum of values ≥ +0 is
        // exact).
        let mut half_max = [_mm256_setzero_ps(); 2];
        for (hh, hm) in half_max.iter_mut().enumerate() {
            let mut mx = [_mm256_setzero_ps(); 4];
            for i in 4 * hh..4 * hh + 4 {
                let (a, b) = (buf[i], buf[i + 8]);
                let (c, d) = (buf[i + 16], buf[i + 24]);
                let (a, b) = (_mm256_add_ps(a, b), _mm256_sub_ps(a, b));
                let (c, d) = (_mm256_add_ps(c, d), _mm256_sub_ps(c, d));
                let r = [
                    _mm256_add_ps(a, c),
                    _mm256_add_ps(b, d),
                    _mm256_sub_ps(a, c),
                    _mm256_sub_ps(b, d),
                ];
                for (t, (ri, mt)) in r.iter().zip(mx.iter_mut()).enumerate() {
                    let s = _mm256_mul_ps(*ri, k);
                    buf[i + 8 * t] = s;
                    *mt = _mm256_max_ps(_mm256_and_ps(s, absmask), *mt);
                }
            }
            // Per 128-bit lane: [m(hh), m(2 + hh), m(4 + hh), m(6 + hh)].
            *hm = hmax(hmax(mx[0], mx[1]), hmax(mx[2], mx[3]));
        }
        let am = _mm256_max_ps(
            _mm256_permute2f128_ps::<0x20>(half_max[0], half_max[1]),
            _mm256_permute2f128_ps::<0x31>(half_max[0], half_max[1]),
        );
        // Lanes [g0 g2 g4 g6 g1 g3 g5 g7] → [g0 … g7].
        let am = _mm256_permutevar8x32_ps(am, dw);
        // d = amax / 127 and 1/d (0 where d = 0; d is never NaN): the scalar operations,
        // correctly rounded in either form.
        let d = _mm256_div_ps(am, _mm256_set1_ps(127.0));
        let nz = _mm256_cmp_ps::<_CMP_NEQ_OQ>(d, _mm256_setzero_ps());
        let id = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0), d), nz);
        let o = dst.as_mut_ptr().add(AB * j);
        _mm256_storeu_ps(o.add(256).cast(), d);
        let mut ids = [0f32; 8];
        _mm256_storeu_ps(ids.as_mut_ptr(), id);
        // Pass 3: the int8 of each group and its integer sum (lane-pairwise sums, `vphaddd`).
        // (A loop, not `array::from_fn`: its closure was not inlined into this function.)
        let mut sums = [_mm256_setzero_si256(); 8];
        for (g, sg) in sums.iter_mut().enumerate() {
            let idv = _mm256_set1_ps(ids[g]);
            let r = &buf[4 * g..4 * g + 4];
            let q = [
                round_clamp_i32_avx2(_mm256_mul_ps(r[0], idv)),
                round_clamp_i32_avx2(_mm256_mul_ps(r[1], idv)),
                round_clamp_i32_avx2(_mm256_mul_ps(r[2], idv)),
                round_clamp_i32_avx2(_mm256_mul_ps(r[3], idv)),
            ];
            let b = _mm256_packs_epi16(
                _mm256_packs_epi32(q[0], q[1]),
                _mm256_packs_epi32(q[2], q[3]),
            );
            let b = _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(b, dw), eo);
            let b = _mm256_permute4x64_epi64::<0b11_01_10_00>(b);
            _mm256_storeu_si256(o.add(32 * g).cast(), b);
            *sg = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        }
        let h = |a: __m256i, b: __m256i| _mm256_hadd_epi32(a, b);
        let u0 = h(h(sums[0], sums[1]), h(sums[2], sums[3]));
        let u1 = h(h(sums[4], sums[5]), h(sums[6], sums[7]));
        let s = _mm256_add_epi32(
            _mm256_permute2x128_si256::<0x20>(u0, u1),
            _mm256_permute2x128_si256::<0x31>(u0, u1),
        );
        // −128·Σa
        let s = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32::<7>(s));
        _mm256_storeu_si256(o.add(288).cast(), s);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tq::{prepare_activation_ref, TqParams};
    use crate::formats::tq_rotation::SplitMix64;
    use crate::GgmlType;

    /// Every f32 within 64 ulps of each half-integer and integer of [−140, 140], ±0, ±Inf, NaNs,
    /// huge and subnormal values and a stride through all bit patterns, zero-padded to a
    /// multiple of `lanes`.
    fn rounding_probe_values(lanes: usize) -> Vec<f32> {
        let mut vals: Vec<f32> = vec![
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            1e-45,
            8388607.5,
            8388608.0,
            4194304.5,
        ];
        for h in -280i32..=280 {
            let c = (h as f32) * 0.5;
            for d in -64i32..=64 {
                let b = (c.to_bits() as i64 + d as i64).clamp(0, u32::MAX as i64) as u32;
                vals.push(f32::from_bits(b));
                vals.push(-f32::from_bits(b));
            }
        }
        vals.extend((0..u32::MAX / 9973).map(|i| f32::from_bits(i * 9973)));
        vals.resize(vals.len().next_multiple_of(lanes), 0.0);
        vals
    }

    /// The short rounding against the exact one on every f32 within 64 ulps of each
    /// half-integer and integer of [−140, 140], on ±0, ±Inf, NaNs, huge and subnormal values,
    /// and on a stride through all bit patterns.
    #[test]
    fn short_rounding_equals_the_exact_one() {
        if !usable() {
            eprintln!("skipped: this CPU has no AVX-512 VBMI (the fused path is not used here)");
            return;
        }
        let vals = rounding_probe_values(16);
        for c in vals.chunks_exact(16) {
            // SAFETY: `usable` holds (AVX-512 F/BW/VL).
            let (got, want) = unsafe {
                let q = _mm512_loadu_ps(c.as_ptr());
                (_mm512_cvtepi32_epi8(round_clamp_i32(q)), round_i8(q))
            };
            let (mut g, mut w) = ([0u8; 16], [0u8; 16]);
            // SAFETY: 16-byte stores into 16-byte arrays.
            unsafe {
                _mm_storeu_si128(g.as_mut_ptr().cast(), got);
                _mm_storeu_si128(w.as_mut_ptr().cast(), want);
            }
            assert_eq!(g, w, "{c:?}");
        }
    }

    /// The AVX2 rounding against Rust's `q.round() as i8` on the values of
    /// `short_rounding_equals_the_exact_one`.
    #[test]
    fn avx2_short_rounding_equals_the_scalar_one() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            eprintln!("skipped: this CPU has no AVX2");
            return;
        }
        let vals = rounding_probe_values(8);
        for c in vals.chunks_exact(8) {
            let mut got = [0i32; 8];
            // SAFETY: AVX2 detected; an 8-lane store into 8 i32.
            unsafe {
                let r = round_clamp_i32_avx2(_mm256_loadu_ps(c.as_ptr()));
                _mm256_storeu_si256(got.as_mut_ptr().cast(), r);
            }
            let want: Vec<i32> = c.iter().map(|q| q.round() as i8 as i32).collect();
            assert_eq!(got[..], want[..], "{c:?}");
        }
    }

    /// The fused preparation against the scalar reference (rotation + TQA8) laid out by
    /// `tile::prepare_tq`: same bytes, with NaN, ±Inf, zero groups, exact ties and huge values.
    #[test]
    fn fused_tile_preparation_gives_the_reference_bytes() {
        let a5 = usable();
        let a2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        if !a5 && !a2 {
            eprintln!("skipped: this CPU has neither AVX-512 VBMI nor AVX2 (no fused path)");
            return;
        }
        let mut g = SplitMix64::new(5);
        for (n, seed) in [(256usize, 1u64), (512, 7), (2816, 12), (4096, 0x5eed)] {
            for case in 0..6 {
                let mut x: Vec<f32> = (0..n).map(|_| g.next_normal() as f32).collect();
                match case {
                    1 => {
                        x[3] = f32::NAN;
                        x[n - 1] = f32::INFINITY;
                        x[n / 2] = f32::NEG_INFINITY;
                    }
                    2 => x[..256].fill(0.0),
                    3 => {
                        // Values whose rotated images are exact halves are hard to aim at;
                        // small integers give many exact ties after scaling by 127/amax.
                        for (i, v) in x.iter_mut().enumerate() {
                            *v = ((i % 7) as f32 - 3.0) * 0.5;
                        }
                    }
                    4 => {
                        for v in x.iter_mut().step_by(5) {
                            *v *= 3.0e37;
                        }
                    }
                    5 => {
                        for v in x.iter_mut() {
                            *v *= 1.0e-40;
                        }
                    }
                    _ => {}
                }
                let p = TqParams { seed };
                let ty = GgmlType::TQT4_5;
                let mut nat = vec![0u8; crate::formats::tq::act_bytes(ty, n).unwrap()];
                prepare_activation_ref(ty, &p, &x, &mut nat);
                let mut want = vec![0u8; n / 256 * 320];
                crate::x86::tile::prepare_tq(n, &nat, &mut want);
                if a5 {
                    let mut got = vec![0xAAu8; want.len()];
                    // SAFETY: `usable` holds; `n` is whole 256-blocks and `got` their bytes.
                    unsafe { prepare_tile_256(&x, seed, &mut got) };
                    assert_eq!(got, want, "n {n}, case {case}");
                }
                if a2 {
                    let mut got = vec![0xAAu8; want.len()];
                    // SAFETY: AVX2 and FMA detected; `n` is whole 256-blocks.
                    unsafe { prepare_tile_256_avx2(&x, seed, &mut got) };
                    assert_eq!(got, want, "AVX2: n {n}, case {case}");
                }
            }
        }
    }
}
