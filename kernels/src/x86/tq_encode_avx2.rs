//! The AVX2 path of the TurboQuant trellis encoder: the scalar reference's arithmetic
//! ([`crate::formats::tq_tcq::encode_block`]) with 256-bit vectors, so the bytes are the same.
//! It mirrors the AVX-512 path ([`super::tq_encode`]) where AVX2 allows, with blends and
//! `movemask` in place of mask registers:
//!
//! - rotation: the Walsh–Hadamard butterflies of the reference, 8 coordinates per register
//!   (stages 1–4 in registers by permutes and blends, 8–128 across registers), then the scale
//!   and the reference's fixed-order energy sum (two 8-lane accumulators standing for the 16
//!   partial sums of [`crate::formats::tq_tcq::energy16`]);
//! - nearest points: `u / d`, the folds, folded coordinates and grid cells 8 pairs per vector;
//!   per pair the 16 candidate lanes of its cell's 4-slot line ([`VLines::packed`]: bf16
//!   coordinates, one 64-byte line per cell, prefetched [`PF`] pairs ahead) in two registers,
//!   exact f32 distances (no FMA), the minimum per folded subset by one `min` and a half swap,
//!   and the lanes holding it as one byte mask of the two compare masks packed (`vpackssdw`,
//!   `vpmovmskb`; written as two `vmovmskps`, LLVM merged them into seven uops); pairs outside
//!   the grid (scalar search) and in a long cell (its line ties all 16 lanes; then its 8-slot
//!   line, four registers) are redone afterwards, as on AVX-512;
//! - trellis: the add-compare-select of up to 8 searches (4 blocks × 2 scale candidates)
//!   interleaved, one search (8 states) per register, the decisions from `movemask`;
//!   traceback only for the chosen candidate: the state walk alone through a table, then
//!   8 pairs per vector (subsets, the minimum's lane, the (entry, mirror) index), one scalar
//!   load per pair;
//! - block writing: for `TQT4_5` (byte-wide hi fields) the hi fields as bytes, otherwise the
//!   reference's [`write_block`].

// Index loops over pairs, lanes and searches read better than iterator chains here.
#![allow(clippy::needless_range_loop)]

use crate::formats::tq::scale_of;
use crate::formats::tq::TqError;
use crate::formats::tq_rotation::inv_sqrt;
use crate::formats::tq_tcq::{
    candidate_error, check_range, fold16, pack_lo_fields, scale_candidates, write_block,
    zero_error, TcqSpec, Weighting,
};
use crate::formats::tq_trellis::{book, vlines, Book, Coded, VLines, SUB, VCELLS};
use core::arch::x86_64::*;

/// Blocks per batch (each with up to 2 scale candidates: at most 8 searches per batch).
const GROUP: usize = 4;

/// Pairs per search in the batch's shared arrays (the most a block has: B = 256).
const STRIDE: usize = 128;

/// `cell` value of a pair outside the grid.
const OUTSIDE: u32 = u32::MAX;

/// Bit of `cell` marking a long cell (the low bits are then the index of its 8-slot line).
const LONG: u32 = 0x8000_0000;

/// One search (a block at one scale candidate). Its minimum distance per folded subset is kept
/// in the batch's `d` array at `STRIDE·c + p` (the add-compare-select unfolds it), its trellis
/// decisions in `back`.
struct Chain {
    /// Sign bits of the pair (x: bit 0, y: bit 1).
    fold: Vec<u32>,
    /// Grid cell of the pair, [`LONG`] | the index of a long cell's 8-slot line, or
    /// [`OUTSIDE`].
    cell: Vec<u32>,
    /// Lanes `4s + z` (slot `s`, folded subset `z`) holding the subset's minimum.
    eq: Vec<u32>,
    /// For pairs outside the grid: (entry, mirror) per folded subset.
    fb: Vec<[(u16, u8); 4]>,
    /// Final path costs.
    cost: [f32; 8],
}

impl Chain {
    fn new(np: usize) -> Self {
        Chain {
            fold: vec![0; np],
            cell: vec![0; np],
            eq: vec![0; np],
            fb: vec![[(0, 0); 4]; np],
            cost: [0.0; 8],
        }
    }
}

/// One in-register butterfly stage: lanes whose bit is clear in `MASK` get `v + s`, the others
/// `s − v` (`s`: the partner lanes, the reference's `p + q` and `p − q`).
#[inline(always)]
unsafe fn stage<const MASK: i32>(v: __m256, s: __m256) -> __m256 {
    _mm256_blend_ps::<MASK>(_mm256_add_ps(v, s), _mm256_sub_ps(s, v))
}

/// Rotates `x` (one block of `b` ≤ 256) into `out` with the reference's butterflies; returns
/// the energy in the reference's order ([`crate::formats::tq_tcq::energy16`]).
#[target_feature(enable = "avx2")]
unsafe fn rotate(x: &[f32], signs: &[u64; 4], out: &mut [f32]) -> f32 {
    match x.len() {
        256 => rotate_n::<32>(x, signs, out),
        128 => rotate_n::<16>(x, signs, out),
        64 => rotate_n::<8>(x, signs, out),
        32 => rotate_n::<4>(x, signs, out),
        _ => rotate_n::<2>(x, signs, out),
    }
}

/// [`rotate`] of a block of `8 · NR` coordinates (`NR` a constant, so that the butterflies
/// across registers unroll with fixed partners), in three passes over `out` that keep at most
/// 8 registers of the block live: (A) per group of `G = min(NR, 8)` registers the sign flips,
/// the in-register stages and the stages across registers of distance 1…G/2; (B) per register
/// `j < G` of a group the stages of distance G…NR/2 across the groups; (C) the scale and the
/// energy in the reference's order. Every coordinate sees the reference's operations in its
/// order (a stage's butterflies are independent of each other), so the values are the same.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn rotate_n<const NR: usize>(x: &[f32], signs: &[u64; 4], out: &mut [f32]) -> f32 {
    let b = x.len();
    assert!(b == 8 * NR && (16..=256).contains(&b) && out.len() >= b);
    let g = NR.min(8);
    let sign = _mm256_set1_epi32(i32::MIN);
    let bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    let op = out.as_mut_ptr();
    // (A) The stages within a group of g registers.
    for g0 in (0..NR).step_by(g) {
        let mut r = [_mm256_setzero_ps(); 8];
        for (t, v) in r.iter_mut().enumerate().take(g) {
            let i = g0 + t;
            // Coordinate c takes the sign bit (signs[c / 64] >> (c % 64)) & 1.
            let m = _mm256_set1_epi32(((signs[i / 8] >> (8 * (i % 8))) & 0xff) as i32);
            let flip = _mm256_and_si256(_mm256_cmpeq_epi32(_mm256_and_si256(m, bit), bit), sign);
            // SAFETY: 8i + 8 ≤ b = x.len().
            let raw = _mm256_castps_si256(_mm256_loadu_ps(x.as_ptr().add(8 * i)));
            let mut v0 = _mm256_castsi256_ps(_mm256_xor_si256(raw, flip));
            v0 = stage::<0xAA>(v0, _mm256_permute_ps::<0b10_11_00_01>(v0));
            v0 = stage::<0xCC>(v0, _mm256_permute_ps::<0b01_00_11_10>(v0));
            v0 = stage::<0xF0>(v0, _mm256_permute2f128_ps::<0x01>(v0, v0));
            *v = v0;
        }
        let mut m = 1;
        while m < g {
            // The pairs (i, i + m) with bit m of i clear.
            for j in 0..g / 2 {
                let i = (j / m) * 2 * m + j % m;
                let (a, c) = (r[i], r[i + m]);
                r[i] = _mm256_add_ps(a, c);
                r[i + m] = _mm256_sub_ps(a, c);
            }
            m *= 2;
        }
        for t in 0..g {
            // SAFETY: 8(g0 + t) + 8 ≤ b ≤ out.len() (asserted).
            _mm256_storeu_ps(op.add(8 * (g0 + t)), r[t]);
        }
    }
    // (B) The stages across groups: registers j, j + g, j + 2g, … (at most 4 of them).
    let ng = NR / g;
    if ng > 1 {
        for j in 0..g {
            let mut r = [_mm256_setzero_ps(); 4];
            for t in 0..ng {
                // SAFETY: 8(j + g·t) + 8 ≤ 8·NR = b ≤ out.len().
                r[t] = _mm256_loadu_ps(op.add(8 * (j + g * t)));
            }
            let mut m = 1;
            while m < ng {
                for jj in 0..ng / 2 {
                    let i = (jj / m) * 2 * m + jj % m;
                    let (a, c) = (r[i], r[i + m]);
                    r[i] = _mm256_add_ps(a, c);
                    r[i + m] = _mm256_sub_ps(a, c);
                }
                m *= 2;
            }
            for t in 0..ng {
                // SAFETY: as above.
                _mm256_storeu_ps(op.add(8 * (j + g * t)), r[t]);
            }
        }
    }
    // (C) Partial sum j < 8 of the reference is lane j of `lo` (even registers), j ≥ 8 lane
    // j − 8 of `hi` (odd registers), each added in coordinate order.
    let k = _mm256_set1_ps(inv_sqrt(b));
    let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for i in 0..NR {
        // SAFETY: 8i + 8 ≤ b ≤ out.len() (asserted).
        let v = _mm256_mul_ps(_mm256_loadu_ps(op.add(8 * i)), k);
        _mm256_storeu_ps(op.add(8 * i), v);
        let sq = _mm256_mul_ps(v, v);
        if i % 2 == 0 {
            lo = _mm256_add_ps(lo, sq);
        } else {
            hi = _mm256_add_ps(hi, sq);
        }
    }
    let mut s = [0f32; 16];
    _mm256_storeu_ps(s.as_mut_ptr(), lo);
    _mm256_storeu_ps(s.as_mut_ptr().add(8), hi);
    fold16(s)
}

/// `vpermps` controls of the add-compare-select per fold `f` (x: bit 0, y: bit 1) of a pair:
/// `SUB_IDX[f][h]` lane `k` is `SUB[4h + k/2][k % 2] ^ f`, the folded subset of the true subset
/// that next state `k`'s predecessor `h` (lower, upper) takes: the search stores the minima per
/// folded subset, and `t ^ f` is the folded index of true subset `t`.
#[repr(C, align(32))]
struct SubIdx([[[i32; 8]; 2]; 4]);

static SUB_IDX: SubIdx = {
    let mut t = [[[0i32; 8]; 2]; 4];
    let mut f = 0;
    while f < 4 {
        let mut h = 0;
        while h < 2 {
            let mut k = 0;
            while k < 8 {
                t[f][h][k] = (SUB[4 * h + k / 2][k % 2] as usize ^ f) as i32;
                k += 1;
            }
            h += 1;
        }
        f += 1;
    }
    SubIdx(t)
};

/// The nearest-point search of one block `u` at scale `d` into `ch` and `dm` (per pair the
/// minimum distance of each folded subset).
///
/// Three passes: (1) per 8 pairs, `u / d`, the folds, the folded coordinates, the grid cells
/// (clamped into the grid) and which pairs are outside it; (2) every pair through the 4-slot
/// line of its cell ([`search_lines`], from the bf16 lines of [`VLines::packed`]); a long
/// cell's pairs come out with all 16 lanes tied (`eq` all ones); (3) the pairs outside the
/// grid or in a long cell again, overwriting what (2) wrote for them.
#[target_feature(enable = "avx2")]
unsafe fn search(s: &TcqSpec, b: usize, u: &[f32], d: f32, ch: &mut Chain, dm: &mut [[f32; 4]]) {
    let np = b / 2;
    assert!(dm.len() >= np && np <= 128 && np.is_multiple_of(8) && u.len() >= b);
    assert!(ch.fold.len() >= np && ch.cell.len() >= np && ch.eq.len() >= np);
    let first_lo = np - s.n_lo(b);
    let (vh, vl): (&VLines, &VLines) = (vlines(s.hi), vlines(s.lo));
    let dv = _mm256_set1_ps(d);
    let absm = _mm256_set1_epi32(0x7fff_ffff);
    let ext = _mm256_set1_ps(128.0);
    let half = _mm256_set1_ps(0.5);
    let last = _mm256_set1_epi32(VCELLS as i32 - 1);
    let mut ax = [0f32; 128];
    let mut ay = [0f32; 128];
    let mut slow = 0u128;
    for q in 0..np / 8 {
        // SAFETY: 16q + 16 ≤ 2·np = b ≤ u.len(); 8q + 8 ≤ np ≤ the arrays' lengths (asserted).
        let a = _mm256_div_ps(_mm256_loadu_ps(u.as_ptr().add(16 * q)), dv);
        let c = _mm256_div_ps(_mm256_loadu_ps(u.as_ptr().add(16 * q + 8)), dv);
        // Even (x) and odd (y) coordinates: [a0 a2 c0 c2 | a4 a6 c4 c6], then the 64-bit
        // quarters reordered 0, 2, 1, 3.
        let x = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
            _mm256_shuffle_ps::<0b10_00_10_00>(a, c),
        )));
        let y = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
            _mm256_shuffle_ps::<0b11_01_11_01>(a, c),
        )));
        let xi = _mm256_castps_si256(x);
        let yi = _mm256_castps_si256(y);
        let fold = _mm256_or_si256(
            _mm256_srli_epi32::<31>(xi),
            _mm256_slli_epi32::<1>(_mm256_srli_epi32::<31>(yi)),
        );
        _mm256_storeu_si256(ch.fold.as_mut_ptr().add(8 * q).cast(), fold);
        let fx = _mm256_castsi256_ps(_mm256_and_si256(xi, absm));
        let fy = _mm256_castsi256_ps(_mm256_and_si256(yi, absm));
        _mm256_storeu_ps(ax.as_mut_ptr().add(8 * q), fx);
        _mm256_storeu_ps(ay.as_mut_ptr().add(8 * q), fy);
        let inside = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_LT_OQ>(fx, ext),
            _mm256_cmp_ps::<_CMP_LT_OQ>(fy, ext),
        );
        slow |= ((!_mm256_movemask_ps(inside) & 0xff) as u128) << (8 * q);
        // Cells of 2 units: 64 per side (clamped, so that a pair outside the grid reads some
        // line of it; pass 3 overwrites its results).
        let cx = _mm256_min_epu32(_mm256_cvttps_epi32(_mm256_mul_ps(fx, half)), last);
        let cy = _mm256_min_epu32(_mm256_cvttps_epi32(_mm256_mul_ps(fy, half)), last);
        let cell = _mm256_add_epi32(_mm256_slli_epi32::<6>(cy), cx);
        _mm256_storeu_si256(ch.cell.as_mut_ptr().add(8 * q).cast(), cell);
    }
    search_lines(&ax, &ay, vh, 0..first_lo, ch, dm);
    search_lines(&ax, &ay, vl, first_lo..np, ch, dm);
    // A long cell's pairs have all 16 lanes tied (its bf16 line is zeros): `eq` all ones.
    // Another cell's pair with all lanes tied keeps what (2) wrote, which is its result.
    for q in 0..np / 8 {
        // SAFETY: 8q + 8 ≤ np ≤ ch.eq.len() (asserted).
        let eq = _mm256_loadu_si256(ch.eq.as_ptr().add(8 * q).cast());
        let z = _mm256_cmpeq_epi32(eq, _mm256_set1_epi32(-1));
        slow |= ((_mm256_movemask_ps(_mm256_castsi256_ps(z)) & 0xff) as u128) << (8 * q);
    }
    while slow != 0 {
        let p = slow.trailing_zeros() as usize;
        slow &= slow - 1;
        let (x, y) = (ax[p], ay[p]);
        if x >= 128.0 || y >= 128.0 {
            let r = nearest4_far(book(s.pair_bits(b, p)), x, y);
            for z in 0..4 {
                dm[p][z] = r[z].0;
                ch.fb[p][z] = (r[z].1, r[z].2);
            }
            ch.cell[p] = OUTSIDE;
            continue;
        }
        // A long cell: 8 slots (x of slots 0–7, then y), lanes 4s + z of four registers.
        let lines = if p < first_lo { vh } else { vl };
        let Ok(long) = usize::try_from(lines.long[ch.cell[p] as usize]) else {
            continue;
        };
        ch.cell[p] = LONG | long as u32;
        let (vx, vy) = (_mm256_set1_ps(x), _mm256_set1_ps(y));
        let lp = lines.xy8[long].0.as_ptr();
        let dist8 = |o: usize| {
            // SAFETY: o + 8 ≤ 32 and 32 + o + 8 ≤ 64, the line's length.
            let dx = _mm256_sub_ps(vx, _mm256_loadu_ps(lp.add(o)));
            let dy = _mm256_sub_ps(vy, _mm256_loadu_ps(lp.add(32 + o)));
            _mm256_add_ps(_mm256_mul_ps(dx, dx), _mm256_mul_ps(dy, dy))
        };
        let dd = [dist8(0), dist8(8), dist8(16), dist8(24)];
        let mut m = _mm256_min_ps(_mm256_min_ps(dd[0], dd[1]), _mm256_min_ps(dd[2], dd[3]));
        m = _mm256_min_ps(m, _mm256_permute2f128_ps::<0x01>(m, m));
        let mut eq = 0u32;
        for (k, dk) in dd.iter().enumerate() {
            let e = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(*dk, m)) as u32;
            eq |= e << (8 * k);
        }
        ch.eq[p] = eq;
        _mm_storeu_ps(dm[p].as_mut_ptr(), _mm256_castps256_ps128(m));
    }
}

/// How many pairs ahead [`search_lines`] prefetches a pair's line (the lines of a 9-bit table
/// fill half of Zen 3's L2: most reads miss L1).
const PF: usize = 16;

/// Bytes `0, 2, 1, 3` of each 32-bit lane (`vpshufb` control): the 4-slot search's equality
/// word ([`search_lines`]) has the bits of slots 0, 2, 1, 3 in its bytes 0–3; this puts them
/// in slot order.
const EQ_SLOT: [i8; 16] = [0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15];

/// The 4-slot search of pairs `range` (folded coordinates `ax`, `ay`, grid cells in
/// `ch.cell`, clamped into the grid) through `lines`: per pair the 16 candidates' exact
/// distances (no FMA) in two registers, the minimum per folded subset, the lanes holding it
/// (`eq`: lane `4s + z` as the bit pair `2·(4k + z)`, `k` the position of slot `s` in the
/// order 0, 2, 1, 3 that `vpackssdw` leaves), the minima stored in folded-subset order (the
/// add-compare-select's [`SUB_IDX`] unfolds them: no shuffle here).
#[inline(never)]
#[target_feature(enable = "avx2")]
unsafe fn search_lines(
    ax: &[f32; 128],
    ay: &[f32; 128],
    lines: &VLines,
    range: core::ops::Range<usize>,
    ch: &mut Chain,
    dm: &mut [[f32; 4]],
) {
    let n = range.end;
    assert!(n <= ch.eq.len() && n <= ch.cell.len() && n <= dm.len() && n <= ch.fold.len());
    let (eqp, dp, cellp) = (ch.eq.as_mut_ptr(), dm.as_mut_ptr(), ch.cell.as_ptr());
    assert!(lines.packed.len() >= VCELLS * VCELLS && lines.meta.len() >= VCELLS * VCELLS);
    let pkp = lines.packed.as_ptr();
    let mtp = lines.meta.as_ptr();
    let upper = _mm256_set1_epi32(0xffff_0000u32 as i32);
    // The first lines ahead of the loop; in it, the line of pair p + PF.
    for p in range.start..(range.start + PF).min(n) {
        // SAFETY: p < n ≤ the chain's lengths; cells are below 64 · 64 (asserted below).
        _mm_prefetch::<_MM_HINT_T0>(pkp.add(*cellp.add(p) as usize).cast());
        _mm_prefetch::<_MM_HINT_T0>(mtp.add(*cellp.add(p) as usize).cast());
    }
    for p in range {
        // SAFETY: p < n ≤ the chain's lengths (asserted); cells are below 64 · 64 (clamped)
        // and `packed` has that many 64-byte aligned lines (asserted); a fold is below 4.
        if p + PF < n {
            let c = *cellp.add(p + PF) as usize;
            _mm_prefetch::<_MM_HINT_T0>(pkp.add(c).cast());
            // The cell's (entry, mirror) words, which the traceback reads for the chosen
            // subset (one scalar load per pair, which would miss L2 there).
            _mm_prefetch::<_MM_HINT_T0>(mtp.add(c).cast());
        }
        let cell = *cellp.add(p) as usize;
        let lp = pkp.add(cell).cast::<__m256i>();
        // The 16 lanes' coordinates from bf16 (exact): lanes 0..8 in the upper halves of the
        // 32-bit words, lanes 8..16 in the lower ones ([`crate::formats::tq_trellis::Line64`]).
        let (xw, yw) = (_mm256_load_si256(lp), _mm256_load_si256(lp.add(1)));
        let vx = _mm256_set1_ps(*ax.get_unchecked(p));
        let vy = _mm256_set1_ps(*ay.get_unchecked(p));
        let dx0 = _mm256_sub_ps(vx, _mm256_castsi256_ps(_mm256_and_si256(xw, upper)));
        let dx1 = _mm256_sub_ps(vx, _mm256_castsi256_ps(_mm256_slli_epi32::<16>(xw)));
        let dy0 = _mm256_sub_ps(vy, _mm256_castsi256_ps(_mm256_and_si256(yw, upper)));
        let dy1 = _mm256_sub_ps(vy, _mm256_castsi256_ps(_mm256_slli_epi32::<16>(yw)));
        let d0 = _mm256_add_ps(_mm256_mul_ps(dx0, dx0), _mm256_mul_ps(dy0, dy0));
        let d1 = _mm256_add_ps(_mm256_mul_ps(dx1, dx1), _mm256_mul_ps(dy1, dy1));
        let mut m = _mm256_min_ps(d0, d1);
        m = _mm256_min_ps(m, _mm256_permute2f128_ps::<0x01>(m, m));
        // The two compare masks packed to 16-bit lanes, one byte mask: bit pair 2·(4k + z)
        // for block k = 0, 1, 2, 3 holding slots 0, 2, 1, 3 ([`EQ_SLOT`]).
        let e0 = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_EQ_OQ>(d0, m));
        let e1 = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_EQ_OQ>(d1, m));
        // A long cell's line (zeros) ties all lanes: `eq` all ones sends it to pass 3.
        *eqp.add(p) = _mm256_movemask_epi8(_mm256_packs_epi32(e0, e1)) as u32;
        _mm_storeu_ps(dp.add(p).cast(), _mm256_castps256_ps128(m));
    }
}

/// Add-compare-select of `M` searches over `np` pairs, one per register (8 states), the
/// searches interleaved so that their dependency chains overlap. The reference's arithmetic per
/// state: `c0 = cost[s0] + d[SUB[s0][b]]`, `c1 = cost[s1] + d[SUB[s1][b]]`, `c1 < c0` picks
/// `c1`. `d` and `back` are the batch's arrays ([`STRIDE`] per search).
#[target_feature(enable = "avx2")]
unsafe fn acs<const M: usize>(chains: &mut [Chain], np: usize, d: &[[f32; 4]], back: &mut [u8]) {
    assert!(np <= STRIDE && d.len() >= M * STRIDE && back.len() >= M * STRIDE);
    assert!(chains.len() >= M);
    // Predecessors s0 = ns >> 1, s1 = (ns >> 1) | 4 of the next state ns.
    let pc0 = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    let pc1 = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
    for j in 0..M {
        assert!(chains[j].fold.len() >= np);
    }
    let folds: [*const u32; M] = core::array::from_fn(|j| chains[j].fold.as_ptr());
    let sip = SUB_IDX.0.as_ptr();
    let inf = f32::INFINITY;
    let start = _mm256_setr_ps(0.0, inf, inf, inf, inf, inf, inf, inf);
    let mut cost = [start; M];
    let (dp, bp) = (d.as_ptr(), back.as_mut_ptr());
    for p in 0..np {
        for j in 0..M {
            // SAFETY: j·STRIDE + p < M·STRIDE ≤ the lengths (asserted).
            let a = j * STRIDE + p;
            // The pair's 4 folded subset minima in lanes 0–3 (the controls index only those),
            // its fold's controls (a fold is below 4; p < np ≤ the folds' lengths).
            let dv = _mm256_castps128_ps256(_mm_loadu_ps(dp.add(a).cast()));
            let sx = &*sip.add(*folds[j].add(p) as usize & 3);
            let sd0 = _mm256_load_si256(sx[0].as_ptr().cast());
            let sd1 = _mm256_load_si256(sx[1].as_ptr().cast());
            let c0 = _mm256_add_ps(
                _mm256_permutevar8x32_ps(cost[j], pc0),
                _mm256_permutevar8x32_ps(dv, sd0),
            );
            let c1 = _mm256_add_ps(
                _mm256_permutevar8x32_ps(cost[j], pc1),
                _mm256_permutevar8x32_ps(dv, sd1),
            );
            let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(c1, c0);
            cost[j] = _mm256_blendv_ps(c0, c1, lt);
            *bp.add(a) = _mm256_movemask_ps(lt) as u8;
        }
    }
    for j in 0..M {
        _mm256_storeu_ps(chains[j].cost.as_mut_ptr(), cost[j]);
    }
}

/// The first state of least final cost, and that cost.
fn best_state(cost: &[f32; 8]) -> (usize, f32) {
    let mut s = 0;
    for t in 1..8 {
        if cost[t] < cost[s] {
            s = t;
        }
    }
    (s, cost[s])
}

/// Per trellis decision byte `back` (bit `s`: state `s` came from its upper predecessor):
/// byte `s` of `PRED[back]` is `8·ps`, `ps = (s >> 1) | ((back >> s) & 1) << 2` the state
/// before.
static PRED: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut back = 0;
    while back < 256 {
        let mut s = 0;
        while s < 8 {
            let ps = (s >> 1) | ((back >> s) & 1) << 2;
            t[back] |= ((8 * ps) as u64) << (8 * s);
            s += 1;
        }
        back += 1;
    }
    t
};

/// The coded pairs of a search's best path: first the reference's state walk
/// `ps = (s >> 1) | ((back[p] >> s) & 1) << 2` alone (one shift and mask per pair on `8·s`,
/// [`PRED`]), then 8 pairs per vector (independent): the chosen subset `SUB[ps][s & 1]`, the
/// first lane of its folded subset holding the minimum (the first minimum in list order; the
/// lowest set bit's position from the f32 exponent, exact), the index of its (entry, mirror)
/// in the cell's line, one scalar load per pair, the [`Coded`] words stored 8 at a time. Pairs
/// outside the grid (the scalar search's (entry, mirror)) and in a long cell are redone one by
/// one.
#[target_feature(enable = "avx2")]
unsafe fn traceback(s: &TcqSpec, b: usize, ch: &Chain, back: &[u8], out: &mut [Coded]) {
    let np = b / 2;
    let first_lo = np - s.n_lo(b);
    let (vh, vl) = (vlines(s.hi), vlines(s.lo));
    let (best, _) = best_state(&ch.cost);
    let back = &back[..np];
    assert!(np <= 128 && np.is_multiple_of(8) && out.len() >= np);
    assert!(ch.fold.len() >= np && ch.cell.len() >= np && ch.eq.len() >= np);
    // st[p + 1] = 8 · (state after pair p), st[0] = 8 · (state before pair 0); 8 bytes of
    // slack for the vector loads.
    let mut st = [0u8; 144];
    let mut s8 = 8 * best as u64;
    for p in (0..np).rev() {
        st[p + 1] = s8 as u8;
        s8 = (PRED[back[p] as usize] >> s8) & 0x38;
    }
    st[0] = s8 as u8;
    let one = _mm256_set1_epi32(1);
    let m4 = _mm256_set1_epi32(0x0101_0101);
    let slot_order = _mm256_broadcastsi128_si256(_mm_loadu_si128(EQ_SLOT.as_ptr().cast()));
    let f15 = _mm256_set1_epi32(15);
    let bias = _mm256_set1_epi32(127);
    let mut idx = [0u32; 128];
    let mut zs = [0u32; 128];
    let mut special = 0u128;
    for q in 0..np / 8 {
        // SAFETY: 8q + 9 ≤ np + 1 < 144 bytes of `st`; 8q + 8 ≤ np ≤ the chain's lengths and
        // the local arrays' (asserted).
        let cur = _mm256_srli_epi32::<3>(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
            st.as_ptr().add(8 * q + 1).cast(),
        )));
        let ps = _mm256_srli_epi32::<3>(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
            st.as_ptr().add(8 * q).cast(),
        )));
        // z = SUB[ps][b] = 2·(b ^ ps>>1 ^ ps>>2) + (ps & 1), b = cur & 1.
        let br = _mm256_and_si256(cur, one);
        let hi = _mm256_and_si256(
            _mm256_xor_si256(
                _mm256_xor_si256(br, _mm256_srli_epi32::<1>(ps)),
                _mm256_srli_epi32::<2>(ps),
            ),
            one,
        );
        let z = _mm256_or_si256(_mm256_slli_epi32::<1>(hi), _mm256_and_si256(ps, one));
        let f = _mm256_loadu_si256(ch.fold.as_ptr().add(8 * q).cast());
        let zf = _mm256_xor_si256(z, f);
        _mm256_storeu_si256(
            zs.as_mut_ptr().add(8 * q).cast(),
            _mm256_or_si256(_mm256_slli_epi32::<1>(z), br),
        );
        // Byte k of e: whether slot k holds the minimum of folded subset zf.
        let eq = _mm256_loadu_si256(ch.eq.as_ptr().add(8 * q).cast());
        let e = _mm256_and_si256(_mm256_srlv_epi32(eq, _mm256_add_epi32(zf, zf)), m4);
        let e = _mm256_shuffle_epi8(e, slot_order);
        // The lowest set bit as a power of two, its position (8·slot) from the f32 exponent
        // (exact); the lane is 4·slot + zf.
        let lowest = _mm256_and_si256(e, _mm256_sub_epi32(_mm256_setzero_si256(), e));
        let pos = _mm256_sub_epi32(
            _mm256_srli_epi32::<23>(_mm256_castps_si256(_mm256_cvtepi32_ps(lowest))),
            bias,
        );
        let l = _mm256_and_si256(_mm256_add_epi32(_mm256_srli_epi32::<1>(pos), zf), f15);
        let c = _mm256_loadu_si256(ch.cell.as_ptr().add(8 * q).cast());
        // Long cells and pairs outside the grid have the top bit set.
        special |= ((_mm256_movemask_ps(_mm256_castsi256_ps(c)) & 0xff) as u128) << (8 * q);
        let ix = _mm256_or_si256(
            _mm256_slli_epi32::<4>(_mm256_and_si256(c, _mm256_set1_epi32(0xfff))),
            l,
        );
        _mm256_storeu_si256(idx.as_mut_ptr().add(8 * q).cast(), ix);
    }
    let mut km = [0u32; 128];
    for (range, lines) in [(0..first_lo, vh), (first_lo..np, vl)] {
        let mp = lines.meta.as_ptr();
        assert!(lines.meta.len() >= VCELLS * VCELLS);
        for p in range {
            // SAFETY: an index is a cell below 64 · 64 (masked) times 16 plus a lane below 16,
            // and `meta` has 64 · 64 cells with 16 words each (asserted).
            let i = idx[p] as usize;
            km[p] = (*mp.add(i >> 4))[i & 15] as u32;
        }
    }
    let ff = _mm256_set1_epi32(0xff);
    for q in 0..np / 8 {
        // SAFETY: as above; `Coded` is 4 bytes (`repr(C)`), 8q + 8 ≤ np ≤ out.len().
        let zb = _mm256_loadu_si256(zs.as_ptr().add(8 * q).cast());
        let f = _mm256_loadu_si256(ch.fold.as_ptr().add(8 * q).cast());
        let kmv = _mm256_loadu_si256(km.as_ptr().add(8 * q).cast());
        // Coded (repr(C)): branch | mirror << 8 | k << 16; the meta word is k | m << 8.
        let k = _mm256_and_si256(kmv, ff);
        let m = _mm256_xor_si256(_mm256_srli_epi32::<8>(kmv), f);
        let w = _mm256_or_si256(
            _mm256_or_si256(_mm256_and_si256(zb, one), _mm256_slli_epi32::<8>(m)),
            _mm256_slli_epi32::<16>(k),
        );
        _mm256_storeu_si256(out.as_mut_ptr().add(8 * q).cast(), w);
    }
    while special != 0 {
        let p = special.trailing_zeros() as usize;
        special &= special - 1;
        let lines = if p < first_lo { vh } else { vl };
        let z = (zs[p] >> 1) as usize;
        let f = ch.fold[p] as usize;
        let zf = z ^ f;
        let c = ch.cell[p];
        let (k, m) = if c == OUTSIDE {
            ch.fb[p][zf]
        } else {
            let l = (ch.eq[p] & (0x1111_1111u32 << zf)).trailing_zeros() as usize;
            let (k, m) = lines.meta8[(c & !LONG) as usize][l];
            (k as u16, m)
        };
        out[p] = Coded {
            branch: (zs[p] & 1) as u8,
            k,
            mirror: m ^ f as u8,
        };
    }
}

/// [`write_block`] for a type without QJL whose hi fields are whole bytes (9-bit tables:
/// `TQT4_5`): the hi fields stored as bytes `q | mx << 6 | my << 7`, the lo fields through the
/// same LSB-first accumulator. The same bytes.
fn write_block_bytes(s: &TcqSpec, b: usize, e: u8, coded: &[Coded], dst: &mut [u8]) {
    let np = b / 2;
    dst.fill(0);
    dst[0] = e;
    if e == 0 {
        return;
    }
    assert!(s.hi == 9 && !s.qjl && coded.len() >= np);
    let first_lo = np - s.n_lo(b);
    let (_, rest) = dst.split_at_mut(s.header_bytes(b));
    let (br, fields) = rest.split_at_mut(b / 16);
    for (byte, cs) in br.iter_mut().zip(coded[..np].chunks_exact(8)) {
        *byte = cs
            .iter()
            .enumerate()
            .fold(0u8, |a, (i, c)| a | (c.branch & 1) << i);
    }
    for (f, c) in fields[..first_lo].iter_mut().zip(&coded[..first_lo]) {
        *f = (c.k as u8 & 63) | (c.mirror & 3) << 6;
    }
    pack_lo_fields(s, &coded[first_lo..np], &mut fields[first_lo..]);
}

/// [`crate::formats::tq_tcq::quantize_rows`] on AVX2 (same bytes as the scalar path): blocks
/// `b` of 32…256 weights.
///
/// # Safety
/// The CPU must have AVX2.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn quantize_rows(
    s: &TcqSpec,
    b: usize,
    src: &[f32],
    n: usize,
    imatrix: Option<&[f32]>,
    dst: &mut [u8],
    rot: &[[u64; 4]],
    qjl: &[[u64; 4]],
) -> Result<(), TqError> {
    let np = b / 2;
    let nb = n / b;
    let bb = s.block_bytes(b);
    let total = src.len() / b;
    assert!(np <= STRIDE && np.is_multiple_of(8));
    let mut us = vec![0f32; GROUP * b];
    let mut chains: Vec<Chain> = (0..2 * GROUP).map(|_| Chain::new(np)).collect();
    let mut coded = vec![Coded::default(); np];
    let mut best = vec![Coded::default(); np];
    let mut recon = vec![0f32; b];
    let mut dall = vec![[0f32; 4]; 2 * GROUP * STRIDE];
    let mut ball = vec![0u8; 2 * GROUP * STRIDE];
    let mut g0 = 0;
    while g0 < total {
        let g = (total - g0).min(GROUP);
        // Rotate, check, choose the scale candidates, search.
        let mut cands = [([0u8; 2], 0usize); GROUP];
        let mut energy = [0f32; GROUP];
        let mut nch = 0;
        let mut owner = [(0usize, 0usize); 2 * GROUP];
        for i in 0..g {
            let blk = g0 + i;
            let j = blk % nb;
            let x = &src[blk * b..(blk + 1) * b];
            let u = &mut us[i * b..(i + 1) * b];
            energy[i] = rotate(x, &rot[j], u);
            check_range(energy[i], b, j * b)?;
            cands[i] = scale_candidates(energy[i], b);
            for c in 0..cands[i].1 {
                let dm = &mut dall[nch * STRIDE..(nch + 1) * STRIDE];
                search(s, b, u, scale_of(cands[i].0[c]), &mut chains[nch], dm);
                owner[nch] = (i, c);
                nch += 1;
            }
        }
        match nch {
            0 => {}
            1 => acs::<1>(&mut chains, np, &dall, &mut ball),
            2 => acs::<2>(&mut chains, np, &dall, &mut ball),
            3 => acs::<3>(&mut chains, np, &dall, &mut ball),
            4 => acs::<4>(&mut chains, np, &dall, &mut ball),
            5 => acs::<5>(&mut chains, np, &dall, &mut ball),
            6 => acs::<6>(&mut chains, np, &dall, &mut ball),
            7 => acs::<7>(&mut chains, np, &dall, &mut ball),
            _ => acs::<8>(&mut chains, np, &dall, &mut ball),
        }
        // Choose each block's scale and write it.
        for i in 0..g {
            let blk = g0 + i;
            let j = blk % nb;
            let u = &us[i * b..(i + 1) * b];
            let x = &src[blk * b..(blk + 1) * b];
            let weights = imatrix.map(|q| Weighting {
                imp: &q[j * b..(j + 1) * b],
                orig: x,
                signs: &rot[j],
            });
            let mut best_e = 0u8;
            let mut best_err = zero_error(energy[i], &weights);
            let mut best_chain = usize::MAX;
            for c in 0..nch {
                if owner[c].0 != i {
                    continue;
                }
                let e = cands[i].0[owner[c].1];
                let (_, t) = best_state(&chains[c].cost);
                let err = if weights.is_some() {
                    let bk = &ball[c * STRIDE..(c + 1) * STRIDE];
                    traceback(s, b, &chains[c], bk, &mut coded);
                    candidate_error(s, b, e, t, &coded, &weights, &mut recon)
                } else {
                    candidate_error(s, b, e, t, &[], &weights, &mut recon)
                };
                if err < best_err {
                    best_err = err;
                    best_e = e;
                    best_chain = c;
                }
            }
            if best_chain != usize::MAX {
                let bk = &ball[best_chain * STRIDE..(best_chain + 1) * STRIDE];
                traceback(s, b, &chains[best_chain], bk, &mut best);
            }
            let out = &mut dst[blk * bb..(blk + 1) * bb];
            if s.hi == 9 && !s.qjl {
                write_block_bytes(s, b, best_e, &best, out);
            } else {
                write_block(s, b, best_e, &best, u, &qjl[j], out);
            }
        }
        g0 += g;
    }
    Ok(())
}

/// [`Book::nearest4`] of a folded point outside the grid (`x` or `y` ≥ 128), 8 candidates per
/// register: the AVX-512 path's `nearest4_far` with 256-bit vectors (the same distances, no FMA;
/// the minimum over non-NaN distances, exact in any order, then the first candidate equal to
/// it; candidate 0 at infinity when no distance is finite). The lanes past the list's end (its
/// padding) are set to infinity before they count.
#[target_feature(enable = "avx2")]
unsafe fn nearest4_far(bk: &Book, x: f32, y: f32) -> [(f32, u16, u8); 4] {
    let (vx, vy) = (_mm256_set1_ps(x), _mm256_set1_ps(y));
    let inf = _mm256_set1_ps(f32::INFINITY);
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mut out = [(f32::INFINITY, 0u16, 0u8); 4];
    for z in 0..4 {
        let (xs, ys, n) = bk.far(z);
        assert!(n > 0 && xs.len() >= n.next_multiple_of(8) && ys.len() >= xs.len());
        let nc = n.div_ceil(8);
        // Lanes at or past the end of the list: all-ones where 8c + lane ≥ n.
        let past = |c: usize| {
            let left = _mm256_set1_epi32((n - 8 * c) as i32);
            _mm256_castsi256_ps(_mm256_cmpgt_epi32(
                _mm256_add_epi32(lane, _mm256_set1_epi32(1)),
                left,
            ))
        };
        let dist = |c: usize| {
            // SAFETY: 8c + 7 < xs.len() ≤ ys.len() (asserted).
            let dx = _mm256_sub_ps(vx, _mm256_loadu_ps(xs.as_ptr().add(8 * c)));
            let dy = _mm256_sub_ps(vy, _mm256_loadu_ps(ys.as_ptr().add(8 * c)));
            let d = _mm256_add_ps(_mm256_mul_ps(dx, dx), _mm256_mul_ps(dy, dy));
            _mm256_blendv_ps(d, inf, past(c))
        };
        let mut m = inf;
        for c in 0..nc {
            // vminps(d, m) is d < m ? d : m: a NaN d leaves m.
            m = _mm256_min_ps(dist(c), m);
        }
        let mut l = [0f32; 8];
        _mm256_storeu_ps(l.as_mut_ptr(), m);
        let best = l
            .iter()
            .fold(f32::INFINITY, |a, &v| if v < a { v } else { a });
        let (mut k, mut mirror) = bk.far_entry(z, 0);
        if best < f32::INFINITY {
            let vb = _mm256_set1_ps(best);
            for c in 0..nc {
                let eq = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(dist(c), vb));
                if eq != 0 {
                    (k, mirror) = bk.far_entry(z, 8 * c + eq.trailing_zeros() as usize);
                    break;
                }
            }
        }
        out[z] = (best, k, mirror);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Isa;

    /// The 256-bit search outside the grid gives the reference's `(distance², entry, mirror)`
    /// for every pair table: far points, the grid's edge, points level with the midpoint of
    /// two candidates (ties at the minimum; at least 50 counted) and overflowing distances.
    #[test]
    fn far_search_equals_the_reference() {
        if !Isa::Avx2.available() {
            assert!(
                !std::env::var("GQ_REQUIRE_ISAS").is_ok_and(|r| r.contains("avx2")),
                "GQ_REQUIRE_ISAS asks for AVX2, which this CPU lacks"
            );
            eprintln!("skipped: this CPU has no AVX2 (the vector encoder is not used here)");
            return;
        }
        let mut pts: Vec<(f32, f32)> = vec![
            (128.0, 0.0),
            (0.0, 128.0),
            (128.0, 128.0),
            (1e20, 3.0),
            (f32::MAX, f32::MAX),
        ];
        for i in 0..200u32 {
            let far = 128.0 + (i * 37 % 2000) as f32 / 8.0;
            let near = (i * 53 % 1024) as f32 / 8.0;
            pts.push(if i % 2 == 0 { (far, near) } else { (near, far) });
        }
        crate::formats::tq_trellis::check_far_search(&pts, |bk, x, y| {
            // SAFETY: the CPU has AVX2 (checked above).
            unsafe { nearest4_far(bk, x, y) }
        });
    }
}
