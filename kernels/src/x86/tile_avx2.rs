//! The register-tiled GEMM's micro-kernels on AVX2 (no AVX-512, no VNNI): the formats, the
//! repacked tile `[k/4][16 rows][4 bytes]`, its scales and the prepared activations are
//! `x86::tile`'s ([`super::tile::fmt_avx2`] and [`super::tile::fmt_tq_avx2`] name these
//! kernels for them); only the multiply differs. A 16-row tile line is two 256-bit registers
//! (rows 0..8, 8..16).
//!
//! Without `vpdpbusd` the u8 × s8 product is `vpmaddubsw` (pairs of products summed into
//! **saturating** i16) followed by `vpmaddwd` with ones (pairs of i16 into i32). Each kind
//! sums as many `vpmaddubsw` results in i16 as cannot saturate, with activation quants
//! |a| ≤ 128 (Q8_K and Q8_0 quantizers give |a| ≤ 127):
//!
//! * Q4_K, Q4_1 (quants 0..15): one result ≤ 2·15·128 = 3840 per i16, 8 summed ≤ 30720;
//! * Q5_K, Q5_1 (0..31): 2·31·128 = 7936, 4 summed ≤ 31744;
//! * Q6_K, Q3_K (0..63): 2·63·128 = 16128, 2 summed ≤ 32256;
//! * Q2_K (0..3): 2·3·128 = 768, 4 (its group of 16) ≤ 3072;
//! * Q8_0, Q4_0, Q5_0 (tile bytes `w + 128`, w in −128..127): `vpmaddubsw` of the biased byte
//!   could saturate (2·255·128), so the kernel takes `w = byte ^ 0x80` back and multiplies
//!   `|w|` (≤ 128, unsigned) by `a` with the sign of `w` applied (`vpsignb`): one result
//!   ≤ 2·128·127 = 32512 (|a| ≤ 127), widened at once.
//! * TurboQuant TQT4_5 / TQT3_375 / TQT2_5 (tile bytes `code + 128`, |code| ≤ 125, 103 and 81
//!   for their widest tables, `x86::tq_avx2`'s unpackers; TQA8 activations |a| ≤ 127): as Q8_0,
//!   the signed code `byte ^ 0x80` as `|w|` against `sign(a, w)`, one result ≤ 2·125·127 =
//!   31750, widened at once (two could saturate). The xor/sub form of the sign (a negative-code
//!   mask shared by the columns, two cheap ops instead of `vpsignb`) measured ~25 % slower on
//!   Zen 3; 6 columns per group beat 4 and 3 (docs/turboquant.md §16, twelfth session).
//!
//! So every group's integer sum is the exact one the AVX-512 micro-kernels compute (their
//! bias terms `−128·Σa` / `−32·Σa` included where the tile is biased, not needed where the
//! weight is taken back signed), and the float steps per (row, column) are theirs in the same
//! order: the results are those of the AVX-512 tile (same integers, same f32 sequence),
//! deterministic for any thread count and independent of the other columns.
//!
//! Register budget (16 × 256-bit): per column two i32 (or i16) sums and two f32 block
//! accumulators, plus the two weight registers of a k step and the broadcast activation
//! dword; the [`super::tile::TC`]-column entry points run the kernels on groups of 2 to 4
//! columns (per kind, `NC`), re-reading the weights from L1 for each group. The float
//! kernel (F32 / F16 / BF16 weights, f32 activations) takes all 12 columns at once, one
//! accumulator each per half of the tile, the halves one after the other.
//!
//! Every function is `unsafe`: the CPU must have AVX2, FMA and F16C.

#![allow(clippy::needless_range_loop)] // register arrays indexed in step with columns

use super::tile::{TC, TQ_AB, TQ_SB};
use core::arch::x86_64::*;
use core::ptr::read_unaligned as rd;

macro_rules! a2 {
    ($($item:item)*) => {$(
        #[target_feature(enable = "avx2,fma,f16c")]
        $item
    )*};
}

a2! {
    /// The activation dword at `p`, broadcast.
    #[inline]
    unsafe fn bcast(p: *const u8) -> __m256i {
        _mm256_set1_epi32(rd(p.cast::<i32>()))
    }

    /// The formats with a min per group (Q4_K / Q5_K: 8 groups of `GS` = 32; Q2_K: 16 of 16),
    /// `x86::tile::kern_mins`' steps on the 8 rows of half `h` of the tile: per group its exact
    /// sum (`SPLIT` `vpmaddubsw` summed in i16 per `vpmaddwd`) and one f32 step with its scale,
    /// then the mins (`vpmaddwd` of the i16 pairs, exact) times `dmin`, then × the activation
    /// scale.
    #[inline]
    unsafe fn kern_mins<const C: usize, const GS: usize, const SPLIT: usize>(w: *const u8, s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        let (ng, np) = (256 / GS, 128 / GS);
        let (sb, ab) = (64 * (ng + np + 1), 260 + 4 * np);
        let ones = _mm256_set1_epi16(1);
        for u in 0..nu {
            let au: [*const u8; C] = core::array::from_fn(|c| a[c].add(ab * u));
            for h in 0..2 {
                let wu = w.add(4096 * u + 32 * h);
                let su = s.add(sb * u + 32 * h);
                let mut blk = [_mm256_setzero_ps(); C];
                for g in 0..ng {
                    let mut is = [_mm256_setzero_si256(); C];
                    for t0 in (0..GS / 4).step_by(SPLIT) {
                        let mut p = [_mm256_setzero_si256(); C];
                        for t in t0..t0 + SPLIT {
                            let wv = _mm256_loadu_si256(wu.add(64 * (GS / 4 * g + t)).cast());
                            for c in 0..C {
                                let av = bcast(au[c].add(GS * g + 4 * t));
                                p[c] = _mm256_add_epi16(p[c], _mm256_maddubs_epi16(wv, av));
                            }
                        }
                        for c in 0..C {
                            is[c] = _mm256_add_epi32(is[c], _mm256_madd_epi16(p[c], ones));
                        }
                    }
                    let sg = _mm256_loadu_ps(su.add(64 * g).cast());
                    for c in 0..C {
                        blk[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[c]), sg, blk[c]);
                    }
                }
                let mut mi = [_mm256_setzero_si256(); C];
                for p in 0..np {
                    let mv = _mm256_loadu_si256(su.add(64 * (ng + p)).cast());
                    for c in 0..C {
                        let av = bcast(au[c].add(260 + 4 * p));
                        mi[c] = _mm256_add_epi32(mi[c], _mm256_madd_epi16(mv, av));
                    }
                }
                let dmin = _mm256_loadu_ps(su.add(64 * (ng + np)).cast());
                for c in 0..C {
                    let b = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mi[c]), dmin, blk[c]);
                    let da = _mm256_set1_ps(rd(au[c].add(256).cast::<f32>()));
                    let o = acc.add(16 * c + 8 * h);
                    _mm256_storeu_ps(o, _mm256_fmadd_ps(b, da, _mm256_loadu_ps(o)));
                }
            }
        }
    }

    /// Q6_K / Q3_K on half `h` of the tile: 16 groups of 16, each starting from −32·Σa
    /// (exact), two pairs of `vpmaddubsw` summed in i16 and widened, one f32 step with the
    /// group's scale.
    #[inline]
    unsafe fn kern_q6k<const C: usize>(w: *const u8, s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        let ones = _mm256_set1_epi16(1);
        for u in 0..nu {
            let au: [*const u8; C] = core::array::from_fn(|c| a[c].add(324 * u));
            for h in 0..2 {
                let wu = w.add(4096 * u + 32 * h);
                let su = s.add(1024 * u + 32 * h);
                let mut blk = [_mm256_setzero_ps(); C];
                for g in 0..16 {
                    let mut is: [__m256i; C] = core::array::from_fn(|c| bcast(au[c].add(260 + 4 * g)));
                    for t in [0, 2] {
                        let w0 = _mm256_loadu_si256(wu.add(64 * (4 * g + t)).cast());
                        let w1 = _mm256_loadu_si256(wu.add(64 * (4 * g + t + 1)).cast());
                        for c in 0..C {
                            let a0 = bcast(au[c].add(16 * g + 4 * t));
                            let a1 = bcast(au[c].add(16 * g + 4 * t + 4));
                            let p = _mm256_add_epi16(_mm256_maddubs_epi16(w0, a0), _mm256_maddubs_epi16(w1, a1));
                            is[c] = _mm256_add_epi32(is[c], _mm256_madd_epi16(p, ones));
                        }
                    }
                    let sg = _mm256_loadu_ps(su.add(64 * g).cast());
                    for c in 0..C {
                        blk[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[c]), sg, blk[c]);
                    }
                }
                for c in 0..C {
                    let da = _mm256_set1_ps(rd(au[c].add(256).cast::<f32>()));
                    let o = acc.add(16 * c + 8 * h);
                    _mm256_storeu_ps(o, _mm256_fmadd_ps(blk[c], da, _mm256_loadu_ps(o)));
                }
            }
        }
    }

    /// Q8_0 / Q4_0 / Q5_0 on half `h` of the tile: per block, the signed weights
    /// `byte ^ 0x80`, 8 steps of `vpmaddubsw(|w|, sign(a, w))` widened at once, then one f32
    /// step with d_w·d_a.
    #[inline]
    unsafe fn kern_q80<const C: usize>(w: *const u8, s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        let ones = _mm256_set1_epi16(1);
        let flip = _mm256_set1_epi8(-128);
        for u in 0..nu {
            let au: [*const u8; C] = core::array::from_fn(|c| a[c].add(40 * u));
            for h in 0..2 {
                let wu = w.add(512 * u + 32 * h);
                let mut is = [_mm256_setzero_si256(); C];
                for t in 0..8 {
                    let sw = _mm256_xor_si256(_mm256_loadu_si256(wu.add(64 * t).cast()), flip);
                    let aw = _mm256_abs_epi8(sw);
                    for c in 0..C {
                        let av = bcast(au[c].add(4 * t));
                        let p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(av, sw));
                        is[c] = _mm256_add_epi32(is[c], _mm256_madd_epi16(p, ones));
                    }
                }
                let dw = _mm256_loadu_ps(s.add(64 * u + 32 * h).cast());
                for c in 0..C {
                    let d = _mm256_mul_ps(dw, _mm256_set1_ps(rd(au[c].add(32).cast::<f32>())));
                    let o = acc.add(16 * c + 8 * h);
                    _mm256_storeu_ps(o, _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[c]), d, _mm256_loadu_ps(o)));
                }
            }
        }
    }

    /// TurboQuant trellis types (TQT*) on half `h` of the tile: per group of 32 coordinates,
    /// the signed codes `byte ^ 0x80`, 8 steps of `vpmaddubsw(|w|, sign(a, w))` widened at
    /// once (the exact `Σ code·a`, which the AVX-512 kernel gets as `−128·Σa + Σ byte·a`), one
    /// f32 step with the group's activation scale; per 256-block one f32 step with the rows'
    /// block multipliers `d`.
    #[inline]
    unsafe fn kern_tq<const C: usize>(w: *const u8, s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        let ones = _mm256_set1_epi16(1);
        let flip = _mm256_set1_epi8(-128);
        for u in 0..nu {
            let au: [*const u8; C] = core::array::from_fn(|c| a[c].add(TQ_AB * u));
            for h in 0..2 {
                let wu = w.add(4096 * u + 32 * h);
                let mut blk = [_mm256_setzero_ps(); C];
                for g in 0..8 {
                    let mut is = [_mm256_setzero_si256(); C];
                    for t in 0..8 {
                        let sw = _mm256_xor_si256(_mm256_loadu_si256(wu.add(64 * (8 * g + t)).cast()), flip);
                        let aw = _mm256_abs_epi8(sw);
                        for c in 0..C {
                            let av = bcast(au[c].add(32 * g + 4 * t));
                            let p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(av, sw));
                            is[c] = _mm256_add_epi32(is[c], _mm256_madd_epi16(p, ones));
                        }
                    }
                    for c in 0..C {
                        let sa = _mm256_set1_ps(rd(au[c].add(256 + 4 * g).cast::<f32>()));
                        blk[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[c]), sa, blk[c]);
                    }
                }
                let d = _mm256_loadu_ps(s.add(TQ_SB * u + 32 * h).cast());
                for c in 0..C {
                    let o = acc.add(16 * c + 8 * h);
                    _mm256_storeu_ps(o, _mm256_fmadd_ps(blk[c], d, _mm256_loadu_ps(o)));
                }
            }
        }
    }

    /// Q4_1 / Q5_1 on half `h` of the tile: per block the quants' exact sum (`SPLIT`
    /// `vpmaddubsw` summed in i16 per `vpmaddwd`), then `d_w·d_a` times the sum and the min
    /// term `m·s_a`.
    #[inline]
    unsafe fn kern_q41<const C: usize, const SPLIT: usize>(w: *const u8, s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        let ones = _mm256_set1_epi16(1);
        for u in 0..nu {
            let au: [*const u8; C] = core::array::from_fn(|c| a[c].add(40 * u));
            for h in 0..2 {
                let wu = w.add(512 * u + 32 * h);
                let mut is = [_mm256_setzero_si256(); C];
                for t0 in (0..8).step_by(SPLIT) {
                    let mut p = [_mm256_setzero_si256(); C];
                    for t in t0..t0 + SPLIT {
                        let wv = _mm256_loadu_si256(wu.add(64 * t).cast());
                        for c in 0..C {
                            let av = bcast(au[c].add(4 * t));
                            p[c] = _mm256_add_epi16(p[c], _mm256_maddubs_epi16(wv, av));
                        }
                    }
                    for c in 0..C {
                        is[c] = _mm256_add_epi32(is[c], _mm256_madd_epi16(p[c], ones));
                    }
                }
                let dw = _mm256_loadu_ps(s.add(128 * u + 32 * h).cast());
                let mw = _mm256_loadu_ps(s.add(128 * u + 64 + 32 * h).cast());
                for c in 0..C {
                    let d = _mm256_mul_ps(dw, _mm256_set1_ps(rd(au[c].add(32).cast::<f32>())));
                    let o = acc.add(16 * c + 8 * h);
                    let t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[c]), d, _mm256_loadu_ps(o));
                    _mm256_storeu_ps(o, _mm256_fmadd_ps(mw, _mm256_set1_ps(rd(au[c].add(36).cast::<f32>())), t));
                }
            }
        }
    }
}

a2! {
    /// Float weights (F32 / F16 / BF16 repacked as f32 `[k][16 rows]`, f32 activations),
    /// `x86::tile::kern_f`'s steps on the 8 rows of each half of the tile: per k one
    /// `vfmadd` of the rows' weights and the broadcast activation of each column, in k order
    /// from the stored accumulator, so every lane's sequence is the AVX-512 kernel's.
    #[inline]
    unsafe fn kern_f<const C: usize>(w: *const u8, _s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        for h in 0..2 {
            let mut ac: [__m256; C] = core::array::from_fn(|c| _mm256_loadu_ps(acc.add(16 * c + 8 * h)));
            for u in 0..nu {
                let wu = w.add(1024 * u + 32 * h);
                for k in 0..16 {
                    let wv = _mm256_loadu_ps(wu.add(64 * k).cast());
                    for c in 0..C {
                        let x = _mm256_set1_ps(rd(a[c].add(64 * u + 4 * k).cast::<f32>()));
                        ac[c] = _mm256_fmadd_ps(wv, x, ac[c]);
                    }
                }
            }
            for c in 0..C {
                _mm256_storeu_ps(acc.add(16 * c + 8 * h), ac[c]);
            }
        }
    }
}

/// The [`TC`]-column and single-column entry points of a kernel `$k::<NC, ...>`: the
/// [`TC`] columns as `TC / NC` groups of `NC`.
macro_rules! entries {
    ($name:ident, $name1:ident, $nc:literal, $k:ident $(, $g:literal)*) => {
        a2! {
            #[doc = concat!("`", stringify!($k), "` on [`TC`] columns, ", stringify!($nc), " at a time.")]
            pub(crate) unsafe fn $name(w: *const u8, s: *const u8, nu: usize, a: [*const u8; TC], acc: *mut f32) {
                const { assert!(TC % $nc == 0) };
                for g in 0..TC / $nc {
                    let ag: [*const u8; $nc] = core::array::from_fn(|c| a[$nc * g + c]);
                    $k::<$nc $(, $g)*>(w, s, nu, ag, acc.add(16 * $nc * g));
                }
            }
            #[doc = concat!("`", stringify!($k), "` on one column.")]
            pub(crate) unsafe fn $name1(w: *const u8, s: *const u8, nu: usize, a: [*const u8; 1], acc: *mut f32) {
                $k::<1 $(, $g)*>(w, s, nu, a, acc)
            }
        }
    };
}
entries!(q4k_tc, q4k_1, 6, kern_mins, 32, 8);
entries!(q5k_tc, q5k_1, 4, kern_mins, 32, 4);
entries!(q2k_tc, q2k_1, 6, kern_mins, 16, 4);
entries!(q6k_tc, q6k_1, 4, kern_q6k);
entries!(q80_tc, q80_1, 6, kern_q80);
entries!(q41_tc, q41_1, 6, kern_q41, 8);
entries!(q51_tc, q51_1, 4, kern_q41, 4);
entries!(tq_tc, tq_1, 6, kern_tq);
entries!(f_tc, f_1, 12, kern_f);
