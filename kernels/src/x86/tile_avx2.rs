//! The register-tiled GEMM's micro-kernels on AVX2 (no AVX-512, no VNNI): the formats, the
//! repacked tile `[k/4][16 rows][4 bytes]`, its scales and the prepared activations are
//! `x86::tile`'s ([`super::tile::fmt_avx2`] names these kernels for them); only the multiply
//! differs. A 16-row tile line is two 256-bit registers (rows 0..8, 8..16).
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
//! columns (per kind, `NC`), re-reading the weights from L1 for each group.
//!
//! Every function is `unsafe`: the CPU must have AVX2, FMA and F16C.

#![allow(clippy::needless_range_loop)] // register arrays indexed in step with columns

use super::tile::TC;
use core::arch::x86_64::*;
use core::ptr::read_unaligned as rd;

macro_rules! a2 {
    ($($item:item)*) => {$(
        #[target_feature(enable = "avx2,fma,f16c")]
        $item
    )*};
}

a2! {
    /// The two halves (rows 0..8, 8..16) of the tile line at `p`.
    #[inline]
    unsafe fn line(p: *const u8) -> [__m256i; 2] {
        [_mm256_loadu_si256(p.cast()), _mm256_loadu_si256(p.add(32).cast())]
    }

    /// The activation dword at `p`, broadcast.
    #[inline]
    unsafe fn bcast(p: *const u8) -> __m256i {
        _mm256_set1_epi32(rd(p.cast::<i32>()))
    }

    /// `acc[c] = acc[c]·1 + blk[c]·d_a` into the 16 f32 of column `c` (the AVX-512 kernels'
    /// last step, `vfmadd(blk, d_a, acc)`).
    #[inline]
    unsafe fn store_fma<const C: usize>(blk: &[[__m256; 2]; C], da: [f32; C], acc: *mut f32) {
        for c in 0..C {
            let d = _mm256_set1_ps(da[c]);
            for h in 0..2 {
                let p = acc.add(16 * c + 8 * h);
                _mm256_storeu_ps(p, _mm256_fmadd_ps(blk[c][h], d, _mm256_loadu_ps(p)));
            }
        }
    }

    /// The formats with a min per group (Q4_K / Q5_K: 8 groups of `GS` = 32; Q2_K: 16 of 16),
    /// `x86::tile::kern_mins`' steps: per group its exact sum (`SPLIT` `vpmaddubsw` summed in
    /// i16 per `vpmaddwd`) and one f32 step with its scale, then the mins (`vpmaddwd` of the
    /// i16 pairs, exact) times `dmin`, then × the activation scale.
    #[inline]
    unsafe fn kern_mins<const C: usize, const GS: usize, const SPLIT: usize>(w: *const u8, s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        let (ng, np) = (256 / GS, 128 / GS);
        let (sb, ab) = (64 * (ng + np + 1), 260 + 4 * np);
        let ones = _mm256_set1_epi16(1);
        for u in 0..nu {
            let wu = w.add(4096 * u);
            let su = s.add(sb * u);
            let au: [*const u8; C] = core::array::from_fn(|c| a[c].add(ab * u));
            let mut blk = [[_mm256_setzero_ps(); 2]; C];
            for g in 0..ng {
                let mut is = [[_mm256_setzero_si256(); 2]; C];
                for t0 in (0..GS / 4).step_by(SPLIT) {
                    let mut p = [[_mm256_setzero_si256(); 2]; C];
                    for t in t0..t0 + SPLIT {
                        let wv = line(wu.add(64 * (GS / 4 * g + t)));
                        for c in 0..C {
                            let av = bcast(au[c].add(GS * g + 4 * t));
                            for h in 0..2 {
                                p[c][h] = _mm256_add_epi16(p[c][h], _mm256_maddubs_epi16(wv[h], av));
                            }
                        }
                    }
                    for c in 0..C {
                        for h in 0..2 {
                            is[c][h] = _mm256_add_epi32(is[c][h], _mm256_madd_epi16(p[c][h], ones));
                        }
                    }
                }
                for c in 0..C {
                    for h in 0..2 {
                        let sg = _mm256_loadu_ps(su.add(64 * g + 32 * h).cast());
                        blk[c][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[c][h]), sg, blk[c][h]);
                    }
                }
            }
            let mut mi = [[_mm256_setzero_si256(); 2]; C];
            for p in 0..np {
                let mv = line(su.add(64 * (ng + p)));
                for c in 0..C {
                    let av = bcast(au[c].add(260 + 4 * p));
                    for h in 0..2 {
                        mi[c][h] = _mm256_add_epi32(mi[c][h], _mm256_madd_epi16(mv[h], av));
                    }
                }
            }
            for h in 0..2 {
                let dmin = _mm256_loadu_ps(su.add(64 * (ng + np) + 32 * h).cast());
                for c in 0..C {
                    blk[c][h] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mi[c][h]), dmin, blk[c][h]);
                }
            }
            let da = core::array::from_fn(|c| rd(au[c].add(256).cast::<f32>()));
            store_fma(&blk, da, acc);
        }
    }

    /// Q6_K / Q3_K: 16 groups of 16, each starting from −32·Σa (exact), two pairs of
    /// `vpmaddubsw` summed in i16 and widened, one f32 step with the group's scale.
    #[inline]
    unsafe fn kern_q6k<const C: usize>(w: *const u8, s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        let ones = _mm256_set1_epi16(1);
        for u in 0..nu {
            let wu = w.add(4096 * u);
            let su = s.add(1024 * u);
            let au: [*const u8; C] = core::array::from_fn(|c| a[c].add(324 * u));
            let mut blk = [[_mm256_setzero_ps(); 2]; C];
            for g in 0..16 {
                let mut is: [[__m256i; 2]; C] = core::array::from_fn(|c| [bcast(au[c].add(260 + 4 * g)); 2]);
                for t in [0, 2] {
                    let w0 = line(wu.add(64 * (4 * g + t)));
                    let w1 = line(wu.add(64 * (4 * g + t + 1)));
                    for c in 0..C {
                        let a0 = bcast(au[c].add(16 * g + 4 * t));
                        let a1 = bcast(au[c].add(16 * g + 4 * t + 4));
                        for h in 0..2 {
                            let p = _mm256_add_epi16(_mm256_maddubs_epi16(w0[h], a0), _mm256_maddubs_epi16(w1[h], a1));
                            is[c][h] = _mm256_add_epi32(is[c][h], _mm256_madd_epi16(p, ones));
                        }
                    }
                }
                for c in 0..C {
                    for h in 0..2 {
                        let sg = _mm256_loadu_ps(su.add(64 * g + 32 * h).cast());
                        blk[c][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[c][h]), sg, blk[c][h]);
                    }
                }
            }
            let da = core::array::from_fn(|c| rd(au[c].add(256).cast::<f32>()));
            store_fma(&blk, da, acc);
        }
    }

    /// Q8_0 / Q4_0 / Q5_0: per block, the signed weights `byte ^ 0x80`, 8 steps of
    /// `vpmaddubsw(|w|, sign(a, w))` widened at once, then one f32 step with d_w·d_a.
    #[inline]
    unsafe fn kern_q80<const C: usize>(w: *const u8, s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        let ones = _mm256_set1_epi16(1);
        let flip = _mm256_set1_epi8(-128);
        for u in 0..nu {
            let wu = w.add(512 * u);
            let au: [*const u8; C] = core::array::from_fn(|c| a[c].add(40 * u));
            let mut is = [[_mm256_setzero_si256(); 2]; C];
            for t in 0..8 {
                let wv = line(wu.add(64 * t));
                let sw = [_mm256_xor_si256(wv[0], flip), _mm256_xor_si256(wv[1], flip)];
                let aw = [_mm256_abs_epi8(sw[0]), _mm256_abs_epi8(sw[1])];
                for c in 0..C {
                    let av = bcast(au[c].add(4 * t));
                    for h in 0..2 {
                        let p = _mm256_maddubs_epi16(aw[h], _mm256_sign_epi8(av, sw[h]));
                        is[c][h] = _mm256_add_epi32(is[c][h], _mm256_madd_epi16(p, ones));
                    }
                }
            }
            for h in 0..2 {
                let dw = _mm256_loadu_ps(s.add(64 * u + 32 * h).cast());
                for c in 0..C {
                    let d = _mm256_mul_ps(dw, _mm256_set1_ps(rd(au[c].add(32).cast::<f32>())));
                    let p = acc.add(16 * c + 8 * h);
                    _mm256_storeu_ps(p, _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[c][h]), d, _mm256_loadu_ps(p)));
                }
            }
        }
    }

    /// Q4_1 / Q5_1: per block the quants' exact sum (`SPLIT` `vpmaddubsw` summed in i16 per
    /// `vpmaddwd`), then `d_w·d_a` times the sum and the min term `m·s_a`.
    #[inline]
    unsafe fn kern_q41<const C: usize, const SPLIT: usize>(w: *const u8, s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        let ones = _mm256_set1_epi16(1);
        for u in 0..nu {
            let wu = w.add(512 * u);
            let au: [*const u8; C] = core::array::from_fn(|c| a[c].add(40 * u));
            let mut is = [[_mm256_setzero_si256(); 2]; C];
            for t0 in (0..8).step_by(SPLIT) {
                let mut p = [[_mm256_setzero_si256(); 2]; C];
                for t in t0..t0 + SPLIT {
                    let wv = line(wu.add(64 * t));
                    for c in 0..C {
                        let av = bcast(au[c].add(4 * t));
                        for h in 0..2 {
                            p[c][h] = _mm256_add_epi16(p[c][h], _mm256_maddubs_epi16(wv[h], av));
                        }
                    }
                }
                for c in 0..C {
                    for h in 0..2 {
                        is[c][h] = _mm256_add_epi32(is[c][h], _mm256_madd_epi16(p[c][h], ones));
                    }
                }
            }
            for h in 0..2 {
                let dw = _mm256_loadu_ps(s.add(128 * u + 32 * h).cast());
                let mw = _mm256_loadu_ps(s.add(128 * u + 64 + 32 * h).cast());
                for c in 0..C {
                    let d = _mm256_mul_ps(dw, _mm256_set1_ps(rd(au[c].add(32).cast::<f32>())));
                    let p = acc.add(16 * c + 8 * h);
                    let t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[c][h]), d, _mm256_loadu_ps(p));
                    _mm256_storeu_ps(p, _mm256_fmadd_ps(mw, _mm256_set1_ps(rd(au[c].add(36).cast::<f32>())), t));
                }
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
entries!(q4k_tc, q4k_1, 3, kern_mins, 32, 8);
entries!(q5k_tc, q5k_1, 2, kern_mins, 32, 4);
entries!(q2k_tc, q2k_1, 3, kern_mins, 16, 4);
entries!(q6k_tc, q6k_1, 2, kern_q6k);
entries!(q80_tc, q80_1, 4, kern_q80);
entries!(q41_tc, q41_1, 3, kern_q41, 8);
entries!(q51_tc, q51_1, 2, kern_q41, 4);
