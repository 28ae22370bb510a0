//! The AVX-512 path of the TurboQuant trellis encoder: the scalar reference's arithmetic
//! ([`crate::formats::tq_tcq::encode_block`]) on batches of blocks, so the bytes are the same.
//!
//! - rotation: the Walsh–Hadamard butterflies of the reference, 16 coordinates per register
//!   (stages 1–8 in registers, 16–128 across registers), and its fixed-order energy sum;
//! - nearest points: per pair, the (up to) 4 candidates of each of the 4 folded subsets of
//!   its grid cell in one register (slot-major; f32 coordinates, subtracted straight from
//!   memory), exact f32 distances (no FMA), two pairs per step sharing the shuffles of the
//!   minimum over slots, the first minimum's slot from an equality mask, in a branch-free loop
//!   over all pairs; pairs outside the grid (known from the vector pass before it) and pairs
//!   in one of the few cells with longer lists (whose 4-slot line is all NaN, so their
//!   equality mask comes out empty) are redone afterwards, outside the grid by the scalar
//!   search; the minima are stored in folded order, both scale candidates of a pair side by
//!   side;
//! - trellis: the add-compare-select of up to 4 blocks in one loop, a block's two scale
//!   candidates in one 512-bit register (so that their shared fold picks the `vpermps` index
//!   that undoes it, and their minima are one load), the blocks' dependency chains
//!   overlapping; traceback only for the chosen candidate: the table-driven state walks of
//!   the batch's blocks in one loop (independent chains), then the subsets, the minimum's lane
//!   and the (entry, mirror) index 16 pairs per vector, one scalar load per pair;
//! - block writing: for `TQT4_5` (byte-wide hi fields) the branch bits and hi fields 16 pairs
//!   per vector, otherwise the reference's `write_block`.

// Index loops over pairs, lanes and chains read better than iterator chains here.
#![allow(clippy::needless_range_loop)]

use crate::formats::tq::scale_of;
use crate::formats::tq::TqError;
use crate::formats::tq_tcq::{
    candidate_error, check_range, pack_lo_fields, scale_candidates, write_block, zero_error,
    TcqSpec, Weighting,
};
use crate::formats::tq_trellis::{book, vlines, Book, Coded, VLines, SUB, VCELLS};
use core::arch::x86_64::*;

/// Blocks per batch (each with up to 2 scale candidates: at most 8 searches per batch).
const GROUP: usize = 4;

/// Pairs per search in the batch's shared arrays (the most a block has: B = 256).
const STRIDE: usize = 128;

/// One search (a block at one scale candidate). Search `h` (0 or 1) of block `j` of a batch
/// keeps its minimum distance per folded subset (`d[..][z]`: the minimum over the subset
/// `z ^ fold[p]`) at `d[2·(STRIDE·j + p) + h]`, so that both candidates of a pair are one
/// 32-byte load, and its trellis decisions at byte `2·(STRIDE·j + p) + h` of the decision
/// array (one 16-bit mask per block and pair); arrays shared by the batch, so that the
/// add-compare-select addresses them all from one base with constant offsets.
struct Chain {
    /// Sign bits of the pair (x: bit 0, y: bit 1).
    fold: Vec<u8>,
    /// Grid cell of the pair (with bit 15: the index of a long cell's 8-slot line), or
    /// `u16::MAX` when it is outside the grid.
    cell: Vec<u16>,
    /// The candidates (slot `s` of 4, folded subset `z`) at the minimum of the 4-slot search:
    /// bit `4s + z` of `e01[p]` for slots 0 and 1, bit `4(s − 2) + z` of `e23[p]` for slots 2
    /// and 3 (the two-pair search stores its two compare masks as they are: 16 bits each,
    /// pairs `p` and `p + 1`, no mask moves to general registers).
    e01: Vec<u8>,
    /// See `e01`.
    e23: Vec<u8>,
    /// For a pair in a long cell (8 slots, redone one by one): bit `4s + z` at the minimum.
    eq8: Vec<u32>,
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
            e01: vec![0; np],
            e23: vec![0; np],
            eq8: vec![0; np],
            fb: vec![[(0, 0); 4]; np],
            cost: [0.0; 8],
        }
    }
}

/// Rotates `x` (one block of `b`) into `out` with the reference's butterflies; returns the
/// energy in the reference's order ([`crate::formats::tq_tcq::energy16`]).
///
/// A 256-block stays in 16 registers and takes [`super::tq_act::rot256_for_act`]'s in-register
/// stages (one `vfmadd` by ±1 each instead of an add, a masked subtract: the same values; only
/// a NaN's payload could differ, and a block with a NaN fails its range check, so no byte of
/// the output changes).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn rotate(x: &[f32], signs: &[u64; 4], out: &mut [f32]) -> f32 {
    let b = x.len();
    let nr = b / 16;
    assert!(out.len() >= b && b.is_multiple_of(16) && nr <= 16);
    let kinv = _mm512_set1_ps(crate::formats::tq_rotation::inv_sqrt(b));
    let r = if nr == 16 {
        super::tq_act::rot256_for_act(x.as_ptr(), signs, kinv)
    } else {
        let mut r = [_mm512_setzero_ps(); 16];
        for (k, v) in r.iter_mut().enumerate().take(nr) {
            *v = super::tq_act::in_register(x.as_ptr(), k, signs);
        }
        super::tq_act::cross_butterflies(&mut r, nr, kinv);
        r
    };
    let mut acc = _mm512_setzero_ps();
    for (k, &v) in r.iter().enumerate().take(nr) {
        _mm512_storeu_ps(out.as_mut_ptr().add(16 * k), v);
        acc = _mm512_add_ps(acc, _mm512_mul_ps(v, v));
    }
    let mut s = [0f32; 16];
    _mm512_storeu_ps(s.as_mut_ptr(), acc);
    let mut h = 8;
    while h > 0 {
        for j in 0..h {
            s[j] += s[j + h];
        }
        h /= 2;
    }
    s[0]
}

/// The least |u| that [`div_fma`] is used for: 2^-60 (so the quotient, ≥ 2^-60 / 2^7 with the
/// scale codes' `d` < 2^7, its residual, a multiple of 2^(e_u − 47) where e_u ≥ −60 is u's
/// exponent, and every intermediate stay normal).
const DIV_FMA_MIN: f32 = 8.673_617e-19;
/// Bounds of a code's scale `d`: `scale_of(1)` ≥ 2^-25, `scale_of(255)` < 2^7.
const SCALE_MIN: f32 = 2.980_232_2e-8;
/// See [`SCALE_MIN`] (exclusive).
const SCALE_MAX: f32 = 128.0;

/// `u / d`, correctly rounded, without the divider: `q = u·r` with `r` = `1/d` rounded, the
/// residual `e = u − q·d` by an FMA (exact), then `q + e·r` by an FMA (Markstein's correction).
/// Valid, i.e. the bits of `vdivps`, for every `|u| ≥ 2^-60` ([`DIV_FMA_MIN`], no subnormal on
/// the way) and every scale `d` of a code: all steps commute with scaling `u` or `d` by a power
/// of two while nothing leaves the normal range, and `d = 2^(j/8)·2^k` (an [`EIGHTHS`] value
/// times a power of two), so the 8 × 2^23 pairs (significand of `u` in [1, 2), `d` an
/// [`EIGHTHS`] value) cover every case; `div_fma_is_the_division` checks all of them.
///
/// [`EIGHTHS`]: crate::formats::tq::EIGHTHS
#[inline]
#[target_feature(enable = "avx512f,fma")]
unsafe fn div_fma(u: __m512, d: __m512, r: __m512) -> __m512 {
    let q = _mm512_mul_ps(u, r);
    let e = _mm512_fnmadd_ps(q, d, u);
    _mm512_fmadd_ps(e, r, q)
}

/// The nearest-point search of one block `u` at scale `d` into `ch`; the per-subset minima
/// (folded order) of pair `p` go to `dm[2p]`.
///
/// Three passes: (1) per 16 pairs, `u / d`, the folds, the folded coordinates, the grid cells
/// (clamped into the grid) and which pairs are outside it; (2) every pair through the 4-slot line of
/// its cell, branch-free ([`search_lines`]); a long cell's 4-slot line is all NaN, so its pairs
/// come out with empty `e01`/`e23`; (3) the pairs outside the grid or in a long cell again,
/// overwriting what (2) wrote for them.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn search(s: &TcqSpec, b: usize, u: &[f32], d: f32, ch: &mut Chain, dm: &mut [[f32; 4]]) {
    let np = b / 2;
    assert!(dm.len() > 2 * (np - 1));
    let first_lo = np - s.n_lo(b);
    let (vh, vl): (&VLines, &VLines) = (vlines(s.hi), vlines(s.lo));
    let dv = _mm512_set1_ps(d);
    // `u / d` by `div_fma` where every |u| of 16 is at least 2^-60 (its proof's range), else
    // by `vdivps` (zeros, whose sign the correction step would lose, and tiny values).
    assert!(
        (SCALE_MIN..SCALE_MAX).contains(&d),
        "scale {d} outside the codes' range"
    );
    let rv = _mm512_set1_ps(1.0 / d);
    let small = _mm512_set1_ps(DIV_FMA_MIN);
    let ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let absm = _mm512_set1_epi32(0x7fff_ffff);
    let ext = _mm512_set1_ps(128.0);
    let half = _mm512_set1_ps(0.5);
    let last = _mm512_set1_epi32(VCELLS as i32 - 1);
    let mut ax = [0f32; 128];
    let mut ay = [0f32; 128];
    let mut cells = [0u32; 128];
    let mut slow = [0u16; 8];
    assert!(ch.fold.len() >= np && np <= 128 && np.is_multiple_of(16));
    for q in 0..np / 16 {
        let (ua, uc) = (
            _mm512_loadu_ps(u.as_ptr().add(32 * q)),
            _mm512_loadu_ps(u.as_ptr().add(32 * q + 16)),
        );
        let (a, c) = if _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_abs_ps(ua), small)
            & _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_abs_ps(uc), small)
            == 0xffff
        {
            (div_fma(ua, dv, rv), div_fma(uc, dv, rv))
        } else {
            (_mm512_div_ps(ua, dv), _mm512_div_ps(uc, dv))
        };
        let x = _mm512_permutex2var_ps(a, ev, c);
        let y = _mm512_permutex2var_ps(a, od, c);
        let xi = _mm512_castps_si512(x);
        let yi = _mm512_castps_si512(y);
        let fold = _mm512_or_si512(
            _mm512_srli_epi32::<31>(xi),
            _mm512_slli_epi32::<1>(_mm512_srli_epi32::<31>(yi)),
        );
        _mm_storeu_si128(
            ch.fold.as_mut_ptr().add(16 * q).cast(),
            _mm512_cvtepi32_epi8(fold),
        );
        let fx = _mm512_castsi512_ps(_mm512_and_si512(xi, absm));
        let fy = _mm512_castsi512_ps(_mm512_and_si512(yi, absm));
        _mm512_storeu_ps(ax.as_mut_ptr().add(16 * q), fx);
        _mm512_storeu_ps(ay.as_mut_ptr().add(16 * q), fy);
        let inside =
            _mm512_cmp_ps_mask::<_CMP_LT_OQ>(fx, ext) & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(fy, ext);
        // Cells of 2 units: 64 per side (clamped, so that a pair outside the grid reads some
        // line of it; the slow pass overwrites its results).
        let cx = _mm512_min_epu32(_mm512_cvttps_epi32(_mm512_mul_ps(fx, half)), last);
        let cy = _mm512_min_epu32(_mm512_cvttps_epi32(_mm512_mul_ps(fy, half)), last);
        let cell = _mm512_add_epi32(_mm512_slli_epi32::<6>(cy), cx);
        _mm512_storeu_si512(cells.as_mut_ptr().add(16 * q).cast(), cell);
        _mm256_storeu_si256(
            ch.cell.as_mut_ptr().add(16 * q).cast(),
            _mm512_cvtepi32_epi16(cell),
        );
        slow[q] = !inside;
    }
    search_lines(&ax, &ay, &cells, vh, 0..first_lo, ch, dm);
    search_lines(&ax, &ay, &cells, vl, first_lo..np, ch, dm);
    // A long cell's 4-slot line is all NaN: no lane equals the minimum, `e01` and `e23` are 0
    // (never so for a cell of the grid, whose distances are finite).
    for q in 0..np / 16 {
        let e = _mm_or_si128(
            _mm_loadu_si128(ch.e01.as_ptr().add(16 * q).cast()),
            _mm_loadu_si128(ch.e23.as_ptr().add(16 * q).cast()),
        );
        slow[q] |= _mm_testn_epi8_mask(e, e);
    }
    for q in 0..np / 16 {
        let mut m = slow[q];
        while m != 0 {
            let p = 16 * q + m.trailing_zeros() as usize;
            m &= m - 1;
            let (x, y) = (ax[p], ay[p]);
            if x >= 128.0 || y >= 128.0 {
                let r = nearest4_far(book(s.pair_bits(b, p)), x, y);
                for z in 0..4 {
                    dm[2 * p][z] = r[z].0;
                    ch.fb[p][z] = (r[z].1, r[z].2);
                }
                ch.cell[p] = u16::MAX;
                continue;
            }
            // A long cell: 8 slots (x of slots 0–3, 4–7, then y), lanes 4s + z of two
            // registers.
            let lines = if p < first_lo { vh } else { vl };
            let long = usize::try_from(lines.long[cells[p] as usize]).expect("a long cell");
            let (vx, vy) = (_mm512_set1_ps(x), _mm512_set1_ps(y));
            ch.cell[p] = 0x8000 | long as u16;
            let lp = lines.xy8[long].0.as_ptr();
            let dist8 = |o: usize| {
                let dx = _mm512_sub_ps(vx, _mm512_load_ps(lp.add(o)));
                let dy = _mm512_sub_ps(vy, _mm512_load_ps(lp.add(32 + o)));
                _mm512_add_ps(_mm512_mul_ps(dx, dx), _mm512_mul_ps(dy, dy))
            };
            let (d0, d1) = (dist8(0), dist8(16));
            let mut m8 = _mm512_min_ps(d0, d1);
            m8 = _mm512_min_ps(m8, _mm512_shuffle_f32x4::<0x4e>(m8, m8));
            m8 = _mm512_min_ps(m8, _mm512_shuffle_f32x4::<0xb1>(m8, m8));
            let e0 = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(d0, m8) as u32;
            let e1 = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(d1, m8) as u32;
            ch.eq8[p] = e0 | (e1 << 16);
            _mm_storeu_ps(dm[2 * p].as_mut_ptr(), _mm512_castps512_ps128(m8));
        }
    }
}

/// [`Book::nearest4`] of a folded point outside the grid (`x` or `y` ≥ 128), 16 candidates
/// per register: the same distances (`(x − cx)² + (y − cy)²`, no FMA), the first candidate of
/// least distance per subset, the same `(distance², entry, mirror)`. Two passes per subset:
/// the minimum (a NaN distance is never kept, as the reference's `d < best` never keeps one;
/// the minimum of non-NaN values is exact in any order), then the first lane equal to it.
/// When no distance is below infinity the reference keeps candidate 0 at infinity, and so does
/// this.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn nearest4_far(bk: &Book, x: f32, y: f32) -> [(f32, u16, u8); 4] {
    let (vx, vy) = (_mm512_set1_ps(x), _mm512_set1_ps(y));
    let inf = _mm512_set1_ps(f32::INFINITY);
    let mut out = [(f32::INFINITY, 0u16, 0u8); 4];
    for z in 0..4 {
        let (xs, ys, n) = bk.far(z);
        assert!(n > 0 && xs.len() >= n.next_multiple_of(16) && ys.len() >= xs.len());
        let nc = n.div_ceil(16);
        // Lanes of chunk c that are candidates (the last chunk's padding is not).
        let live = |c: usize| -> __mmask16 {
            let left = n - 16 * c;
            if left >= 16 {
                0xffff
            } else {
                ((1u32 << left) - 1) as __mmask16
            }
        };
        let dist = |c: usize| {
            // SAFETY: 16c + 15 < xs.len() ≤ ys.len() (asserted).
            let dx = _mm512_sub_ps(vx, _mm512_loadu_ps(xs.as_ptr().add(16 * c)));
            let dy = _mm512_sub_ps(vy, _mm512_loadu_ps(ys.as_ptr().add(16 * c)));
            _mm512_add_ps(_mm512_mul_ps(dx, dx), _mm512_mul_ps(dy, dy))
        };
        let mut m = inf;
        for c in 0..nc {
            // vminps(d, m) is d < m ? d : m: a NaN d leaves m.
            m = _mm512_mask_min_ps(m, live(c), dist(c), m);
        }
        let best = _mm512_reduce_min_ps(m);
        if best < f32::INFINITY {
            let vb = _mm512_set1_ps(best);
            for c in 0..nc {
                let eq = _mm512_mask_cmp_ps_mask::<_CMP_EQ_OQ>(live(c), dist(c), vb);
                if eq != 0 {
                    let (k, mirror) = bk.far_entry(z, 16 * c + eq.trailing_zeros() as usize);
                    out[z] = (best, k, mirror);
                    break;
                }
            }
        } else {
            let (k, mirror) = bk.far_entry(z, 0);
            out[z] = (f32::INFINITY, k, mirror);
        }
    }
    out
}

/// The 4-slot search of pairs `range` (folded coordinates `ax`, `ay`, grid cells `cells`, all
/// inside the grid) through `lines`: per pair the 16 candidates' exact distances (no FMA), the
/// minimum per folded subset by two shuffles, the lanes holding it (`e01`, `e23`), the minima (folded
/// order) stored at `dm[2p]`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn search_lines(
    ax: &[f32; 128],
    ay: &[f32; 128],
    cells: &[u32; 128],
    lines: &VLines,
    range: core::ops::Range<usize>,
    ch: &mut Chain,
    dm: &mut [[f32; 4]],
) {
    let n = range.end;
    assert!(n <= ch.e01.len() && n <= ch.e23.len() && (n == 0 || 2 * (n - 1) < dm.len()));
    assert!(lines.xy.len() >= VCELLS * VCELLS);
    let (e01, e23, dp) = (ch.e01.as_mut_ptr(), ch.e23.as_mut_ptr(), dm.as_mut_ptr());
    let xyp = lines.xy.as_ptr();
    let dist = |p: usize| {
        // SAFETY: (callers) p < n; cells are below 64 · 64 (clamped) and `xy` has that many
        // lines (asserted).
        let lp = xyp.add(*cells.get_unchecked(p) as usize).cast::<f32>();
        let vx = _mm512_set1_ps(*ax.get_unchecked(p));
        let vy = _mm512_set1_ps(*ay.get_unchecked(p));
        let dx = _mm512_sub_ps(vx, _mm512_load_ps(lp));
        let dy = _mm512_sub_ps(vy, _mm512_load_ps(lp.add(16)));
        _mm512_add_ps(_mm512_mul_ps(dx, dx), _mm512_mul_ps(dy, dy))
    };
    let mut p = range.start;
    // Two pairs per step share the minimum's shuffles: t1 = slots 0, 1 of pair a and of pair
    // b, t2 = their slots 2, 3; min(t1, t2), then the two halves of each pair's: every
    // 128-bit lane of pair a's half holds its 4 minima.
    while p + 2 <= n {
        // SAFETY: p + 1 < n ≤ the chain's lengths, 2(p + 1) < dm's (asserted).
        let (da, db) = (dist(p), dist(p + 1));
        let t1 = _mm512_shuffle_f32x4::<0x44>(da, db);
        let t2 = _mm512_shuffle_f32x4::<0xee>(da, db);
        let m = _mm512_min_ps(t1, t2);
        let m = _mm512_min_ps(m, _mm512_shuffle_f32x4::<0xb1>(m, m));
        // Bits 0–7 of each mask are pair a's, bits 8–15 pair b's: bytes p and p + 1.
        let k1 = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(t1, m);
        let k2 = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(t2, m);
        e01.add(p).cast::<u16>().write_unaligned(k1);
        e23.add(p).cast::<u16>().write_unaligned(k2);
        _mm_storeu_ps(dp.add(2 * p).cast(), _mm512_castps512_ps128(m));
        _mm_storeu_ps(dp.add(2 * p + 2).cast(), _mm512_extractf32x4_ps::<2>(m));
        p += 2;
    }
    if p < n {
        // SAFETY: as above, for the last pair.
        let d = dist(p);
        let mut m = _mm512_min_ps(d, _mm512_shuffle_f32x4::<0x4e>(d, d));
        m = _mm512_min_ps(m, _mm512_shuffle_f32x4::<0xb1>(m, m));
        let e = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(d, m);
        *e01.add(p) = e as u8;
        *e23.add(p) = (e >> 8) as u8;
        _mm_storeu_ps(dp.add(2 * p).cast(), _mm512_castps512_ps128(m));
    }
}

/// `vpermps` index of the add-compare-select's branch metrics, per fold `f` of the pair (the
/// same for both scale candidates of a block: the signs of `u`): lane `ns` of half `h` (`ns` =
/// the next state) reads the folded minimum of the true subset `SUB[s][ns & 1]` of its
/// predecessor `s` (`s = ns >> 1` in [`Idx::lo`], `(ns >> 1) | 4` in [`Idx::hi`]), i.e. lane
/// `4h + (SUB[s][ns & 1] ^ f)` of the pair's two 4-float minima.
#[repr(C, align(64))]
struct Idx {
    lo: [[i32; 16]; 4],
    hi: [[i32; 16]; 4],
}

static IDX: Idx = {
    let mut t = Idx {
        lo: [[0; 16]; 4],
        hi: [[0; 16]; 4],
    };
    let mut f = 0;
    while f < 4 {
        let mut k = 0;
        while k < 16 {
            let (h, ns) = (k / 8, k % 8);
            let lo = SUB[ns >> 1][ns & 1] as usize;
            let hi = SUB[(ns >> 1) | 4][ns & 1] as usize;
            t.lo[f][k] = (4 * h + (lo ^ f)) as i32;
            t.hi[f][k] = (4 * h + (hi ^ f)) as i32;
            k += 1;
        }
        f += 1;
    }
    t
};

/// Add-compare-select of the `M` blocks of a batch (both scale candidates of block `j` in one
/// 512-bit register: lanes 0–7 the states of candidate 0, lanes 8–15 those of candidate 1),
/// the registers interleaved so that their dependency chains overlap. The reference's
/// arithmetic per state: `c0 = cost[s0] + d[SUB[s0][b]]`, `c1 = cost[s1] + d[SUB[s1][b]]`,
/// `c1 < c0` picks `c1`. `d` (folded minima, two candidates per pair side by side), `fold`
/// (`STRIDE` per block) and `back` (one 16-bit decision mask per block and pair) are the
/// batch's arrays; a block with one candidate has its minima copied to the second slot by
/// the caller (those results are not used).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn acs<const M: usize>(
    chains: &mut [Chain],
    np: usize,
    d: &[[f32; 4]],
    fold: &[u8],
    back: &mut [u8],
) {
    assert!(np <= STRIDE && d.len() >= 2 * M * STRIDE && back.len() >= 2 * M * STRIDE);
    assert!(fold.len() >= M * STRIDE && chains.len() >= 2 * M);
    // Predecessors s0 = ns >> 1, s1 = (ns >> 1) | 4 of the next state ns, per half.
    let pc0 = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 8, 8, 9, 9, 10, 10, 11, 11);
    let pc1 = _mm512_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7, 12, 12, 13, 13, 14, 14, 15, 15);
    let inf = f32::INFINITY;
    let start = _mm512_setr_ps(
        0.0, inf, inf, inf, inf, inf, inf, inf, 0.0, inf, inf, inf, inf, inf, inf, inf,
    );
    let mut cost = [start; M];
    let (dp, fp, bp) = (d.as_ptr(), fold.as_ptr(), back.as_mut_ptr());
    let (lo, hi) = (IDX.lo.as_ptr(), IDX.hi.as_ptr());
    for p in 0..np {
        for j in 0..M {
            // SAFETY: j·STRIDE + p < M·STRIDE, so 2(j·STRIDE + p) + 1 < 2M·STRIDE ≤ the
            // lengths (asserted); a fold is below 4 (two sign bits).
            let a = j * STRIDE + p;
            let dv = _mm512_castps256_ps512(_mm256_loadu_ps(dp.add(2 * a).cast()));
            let f = *fp.add(a) as usize & 3;
            let i0 = _mm512_load_si512(lo.add(f).cast());
            let i1 = _mm512_load_si512(hi.add(f).cast());
            let c0 = _mm512_add_ps(
                _mm512_permutexvar_ps(pc0, cost[j]),
                _mm512_permutexvar_ps(i0, dv),
            );
            let c1 = _mm512_add_ps(
                _mm512_permutexvar_ps(pc1, cost[j]),
                _mm512_permutexvar_ps(i1, dv),
            );
            let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(c1, c0);
            // vminps(c1, c0) is `c1 < c0 ? c1 : c0` lane by lane (c0 when either is NaN): the
            // selection `lt` records, without a merge-masked move into a register of its own
            // (which cost a register copy per block and step).
            cost[j] = _mm512_min_ps(c1, c0);
            bp.add(2 * a).cast::<u16>().write_unaligned(lt);
        }
    }
    for j in 0..M {
        let mut c = [0f32; 16];
        _mm512_storeu_ps(c.as_mut_ptr(), cost[j]);
        chains[2 * j].cost.copy_from_slice(&c[..8]);
        chains[2 * j + 1].cost.copy_from_slice(&c[8..]);
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
/// byte `s` of `PRED[back]` is `8·ps` with `ps = (s >> 1) | ((back >> s) & 1) << 2`.
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

/// The state paths of `G` searches' best paths at once (`G` independent dependency chains
/// in one loop): `st[k][p + 1]` = 8 · (state after pair `p`), `st[k][0]` = 8 · (the state
/// before pair 0), for the search whose decision of pair `p` is `backs[k][2p]` and whose
/// path ends in state `best[k]`.
///
/// One step is the reference's `ps = (s >> 1) | ((back[p] >> s) & 1) << 2` with all 8
/// predecessors of pair `p` looked up first ([`PRED`], off the chain): a shift and a mask on
/// `8·s`.
#[inline(always)]
fn walk<const G: usize>(np: usize, backs: [&[u8]; G], best: [usize; G], st: &mut [[u8; 129]; G]) {
    assert!(np <= 128 && backs.iter().all(|b| b.len() > 2 * (np - 1)));
    assert!(best.iter().all(|&s| s < 8));
    let bp = backs.map(|b| b.as_ptr());
    let mut st8 = best.map(|s| 8 * s as u64);
    for p in (0..np).rev() {
        for k in 0..G {
            // SAFETY: p < np ≤ 128 < 129 and 2p < backs[k].len() (asserted); a back byte
            // indexes PRED's 256 words.
            unsafe {
                *st[k].get_unchecked_mut(p + 1) = st8[k] as u8;
                let back = *bp[k].add(2 * p) as usize;
                // st8 is 8·s ≤ 56: the shift is in range (with BMI2 one `shrx`).
                st8[k] = (*PRED.get_unchecked(back) >> st8[k]) & 0x38;
            }
        }
    }
    for k in 0..G {
        st[k][0] = st8[k] as u8;
    }
}

/// The coded pairs of a search's best path: [`walk`], then [`trace_states`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,bmi2")]
unsafe fn traceback(s: &TcqSpec, b: usize, ch: &Chain, back: &[u8], out: &mut [Coded]) {
    let mut st = [[0u8; 129]];
    walk::<1>(b / 2, [back], [best_state(&ch.cost).0], &mut st);
    trace_states(s, b, ch, &st[0], out);
}

/// The coded pairs of a search's best path from its states `st` ([`walk`]): the table
/// entries of the chosen subsets (independent per pair). Per 16 pairs in vectors: the
/// subsets from consecutive states, the lane of the chosen subset's minimum (the first set
/// bit of `eq` among the subset's lanes), the index of its (entry, mirror) in the cell's
/// line; one scalar load per pair; the [`Coded`] words put together and stored 16 at a time.
/// Pairs outside the grid or in a long cell are redone one by one.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn trace_states(s: &TcqSpec, b: usize, ch: &Chain, st: &[u8; 129], out: &mut [Coded]) {
    let np = b / 2;
    let first_lo = np - s.n_lo(b);
    let (vh, vl) = (vlines(s.hi), vlines(s.lo));
    assert!(np <= 128 && np.is_multiple_of(16));
    // zs[p] = z << 1 | b: with cur = the state after pair p and ps the one before it,
    // b = cur & 1 and z = SUB[ps][b] = 2·(b ^ cur>>2 ^ ps>>2) + (cur>>1 & 1).
    let mut zs = [0u8; 128];
    for q in 0..np / 16 {
        let cur = _mm_srli_epi16::<3>(_mm_loadu_si128(st.as_ptr().add(16 * q + 1).cast()));
        let ps = _mm_srli_epi16::<3>(_mm_loadu_si128(st.as_ptr().add(16 * q).cast()));
        let one = _mm_set1_epi8(1);
        let b0 = _mm_and_si128(cur, one);
        let x = _mm_and_si128(
            _mm_xor_si128(
                _mm_xor_si128(cur, _mm_srli_epi16::<2>(cur)),
                _mm_srli_epi16::<2>(ps),
            ),
            one,
        );
        let z1 = _mm_and_si128(_mm_srli_epi16::<1>(cur), one);
        let v = _mm_or_si128(
            _mm_or_si128(_mm_slli_epi16::<2>(x), _mm_slli_epi16::<1>(z1)),
            b0,
        );
        _mm_storeu_si128(zs.as_mut_ptr().add(16 * q).cast(), v);
    }
    let (fold, cell, fb) = (&ch.fold[..np], &ch.cell[..np], &ch.fb[..np]);
    let (e01, e23, eq8) = (&ch.e01[..np], &ch.e23[..np], &ch.eq8[..np]);
    let out = &mut out[..np];
    let mut special = [0u16; 8];
    let m4 = _mm512_set1_epi32(0x0011_0011);
    let f15 = _mm512_set1_epi32(15);
    let low12 = _mm512_set1_epi32(0xfff);
    let ff = _mm512_set1_epi32(0xff);
    let one = _mm512_set1_epi32(1);
    let (mh, ml) = (
        vh.meta.as_ptr().cast::<i32>(),
        vl.meta.as_ptr().cast::<i32>(),
    );
    assert!(vh.meta.len() >= VCELLS * VCELLS && vl.meta.len() >= VCELLS * VCELLS);
    for q in 0..np / 16 {
        let zb = _mm512_cvtepu8_epi32(_mm_loadu_si128(zs.as_ptr().add(16 * q).cast()));
        let f = _mm512_cvtepu8_epi32(_mm_loadu_si128(fold.as_ptr().add(16 * q).cast()));
        let zf = _mm512_xor_si512(_mm512_srli_epi32::<1>(zb), f);
        // Bit 4s + z (slots 0, 1) or 16 + 4(s − 2) + z (slots 2, 3) of a 32-bit word.
        let eq = _mm512_or_si512(
            _mm512_cvtepu8_epi32(_mm_loadu_si128(e01.as_ptr().add(16 * q).cast())),
            _mm512_slli_epi32::<16>(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                e23.as_ptr().add(16 * q).cast(),
            ))),
        );
        let e = _mm512_and_si512(_mm512_srlv_epi32(eq, zf), m4);
        // The lowest set bit as a power of two, its position from the f32 exponent (exact).
        let lowest = _mm512_and_si512(e, _mm512_sub_epi32(_mm512_setzero_si512(), e));
        let pos = _mm512_sub_epi32(
            _mm512_srli_epi32::<23>(_mm512_castps_si512(_mm512_cvtepi32_ps(lowest))),
            _mm512_set1_epi32(127),
        );
        // Bit 4s + z (slots 0, 1) or 16 + 4(s − 2) + z (slots 2, 3): the lane 4s + z.
        let lane = _mm512_or_si512(
            _mm512_and_si512(pos, _mm512_set1_epi32(7)),
            _mm512_and_si512(_mm512_srli_epi32::<1>(pos), _mm512_set1_epi32(8)),
        );
        let l = _mm512_and_si512(_mm512_add_epi32(lane, zf), f15);
        let c = _mm512_cvtepu16_epi32(_mm256_loadu_si256(cell.as_ptr().add(16 * q).cast()));
        special[q] = _mm512_test_epi32_mask(c, _mm512_set1_epi32(0x8000));
        // The meta word (u16) of cell c, lane l: u16 index 16c + l, i.e. the 32-bit word
        // 8c + l/2 of the same 32-byte line, its high half when l is odd (a 32-bit gather of
        // whole words: no read past the table).
        let ix = _mm512_or_si512(
            _mm512_slli_epi32::<3>(_mm512_and_si512(c, low12)),
            _mm512_srli_epi32::<1>(l),
        );
        // Pairs below first_lo take the hi table's lines, the others the lo table's.
        let nh = first_lo.saturating_sub(16 * q).min(16);
        let kh = ((1u32 << nh) - 1) as __mmask16;
        // SAFETY: a word index is a cell below 64 · 64 (masked) times 8 plus a half-lane
        // below 8, and both tables have 64 · 64 lines of 8 words (asserted above).
        let mut wd = _mm512_setzero_si512();
        if kh != 0 {
            wd = _mm512_mask_i32gather_epi32::<4>(wd, kh, ix, mh);
        }
        if kh != 0xffff {
            wd = _mm512_mask_i32gather_epi32::<4>(wd, !kh, ix, ml);
        }
        let km = _mm512_srlv_epi32(wd, _mm512_slli_epi32::<4>(_mm512_and_si512(l, one)));
        // Coded (repr(C)): branch | mirror << 8 | k << 16; the meta word is k | m << 8.
        let k = _mm512_and_si512(km, ff);
        let m = _mm512_and_si512(_mm512_xor_si512(_mm512_srli_epi32::<8>(km), f), ff);
        let w = _mm512_or_si512(
            _mm512_or_si512(_mm512_and_si512(zb, one), _mm512_slli_epi32::<8>(m)),
            _mm512_slli_epi32::<16>(k),
        );
        _mm512_storeu_si512(out.as_mut_ptr().add(16 * q).cast(), w);
    }
    for q in 0..np / 16 {
        let mut sm = special[q];
        while sm != 0 {
            let p = 16 * q + sm.trailing_zeros() as usize;
            sm &= sm - 1;
            let vlns = if p < first_lo { vh } else { vl };
            let z = (zs[p] >> 1) as usize;
            let f = fold[p];
            let zf = z ^ f as usize;
            let c = cell[p];
            let (k, m) = if c == u16::MAX {
                fb[p][zf]
            } else {
                let l = (eq8[p] & (0x1111_1111u32 << zf)).trailing_zeros() as usize;
                let (k, m) = vlns.meta8[(c & 0x7fff) as usize][l];
                (k as u16, m)
            };
            out[p] = Coded {
                branch: zs[p] & 1,
                k,
                mirror: m ^ f,
            };
        }
    }
}

/// [`write_block`] for a type without QJL whose hi fields are whole bytes (9-bit tables:
/// `TQT4_5`): the branch bits as one mask per 16 pairs, the hi fields as bytes
/// (`q | mx << 6 | my << 7`) 16 at a time, the lo fields through the same LSB-first
/// accumulator. The same bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn write_block_bytes(s: &TcqSpec, b: usize, e: u8, coded: &[Coded], dst: &mut [u8]) {
    let np = b / 2;
    dst.fill(0);
    dst[0] = e;
    if e == 0 {
        return;
    }
    assert!(s.hi == 9 && !s.qjl && coded.len() >= np && np.is_multiple_of(16));
    let hdr = s.header_bytes(b);
    let first_lo = np - s.n_lo(b);
    let (_, rest) = dst.split_at_mut(hdr);
    let (br, fields) = rest.split_at_mut(b / 16);
    assert!(br.len() == np / 8 && fields.len() >= first_lo);
    let cp = coded.as_ptr().cast::<__m512i>();
    let one = _mm512_set1_epi32(1);
    let qmask = _mm512_set1_epi32(63);
    let three = _mm512_set1_epi32(3);
    for q in 0..np / 16 {
        // Coded words: branch | mirror << 8 | k << 16 (repr(C)).
        let w = _mm512_loadu_si512(cp.add(q));
        let bits = _mm512_test_epi32_mask(w, one);
        br[2 * q..2 * q + 2].copy_from_slice(&bits.to_le_bytes());
        let v = _mm512_or_si512(
            _mm512_and_si512(_mm512_srli_epi32::<16>(w), qmask),
            _mm512_slli_epi32::<6>(_mm512_and_si512(_mm512_srli_epi32::<8>(w), three)),
        );
        let lanes = first_lo.saturating_sub(16 * q).min(16);
        if lanes > 0 {
            // SAFETY: the masked store writes bytes 16q .. 16q + lanes ≤ first_lo of `fields`.
            let mask = (((1u32 << lanes) - 1) & 0xffff) as u16;
            _mm512_mask_cvtepi32_storeu_epi8(fields.as_mut_ptr().add(16 * q).cast(), mask, v);
        }
    }
    pack_lo_fields(s, &coded[first_lo..np], &mut fields[first_lo..]);
}

/// [`crate::formats::tq_tcq::quantize_rows`] on AVX-512 (same bytes as the scalar path).
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL, AVX2, FMA and BMI2 (the state walks' `shrx`).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,bmi2,fma")]
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
    let mut us = vec![0f32; GROUP * b];
    // Chain 2i + h: block i of the batch at scale candidate h.
    let mut chains: Vec<Chain> = (0..2 * GROUP).map(|_| Chain::new(np)).collect();
    let mut coded = vec![Coded::default(); np];
    let mut best = vec![Coded::default(); np];
    let mut recon = vec![0f32; b];
    let mut dall = vec![[0f32; 4]; 2 * GROUP * STRIDE];
    let mut fall = vec![0u8; GROUP * STRIDE];
    let mut ball = vec![0u8; 2 * GROUP * STRIDE];
    let zeros = [0u8; 2 * STRIDE];
    let mut st = [[0u8; 129]; GROUP];
    assert!(np <= STRIDE);
    let mut g0 = 0;
    while g0 < total {
        let g = (total - g0).min(GROUP);
        // Rotate, check, choose the scale candidates, search.
        let mut cands = [([0u8; 2], 0usize); GROUP];
        let mut energy = [0f32; GROUP];
        for i in 0..g {
            let blk = g0 + i;
            let j = blk % nb;
            let x = &src[blk * b..(blk + 1) * b];
            let u = &mut us[i * b..(i + 1) * b];
            energy[i] = rotate(x, &rot[j], u);
            check_range(energy[i], b, j * b)?;
            cands[i] = scale_candidates(energy[i], b);
            let base = 2 * i * STRIDE;
            for h in 0..cands[i].1 {
                let dm = &mut dall[base + h..base + 2 * STRIDE];
                search(s, b, u, scale_of(cands[i].0[h]), &mut chains[2 * i + h], dm);
            }
            if cands[i].1 == 1 {
                for p in 0..np {
                    dall[base + 2 * p + 1] = dall[base + 2 * p];
                }
            }
            fall[i * STRIDE..i * STRIDE + np].copy_from_slice(&chains[2 * i].fold[..np]);
        }
        match g {
            1 => acs::<1>(&mut chains, np, &dall, &fall, &mut ball),
            2 => acs::<2>(&mut chains, np, &dall, &fall, &mut ball),
            3 => acs::<3>(&mut chains, np, &dall, &fall, &mut ball),
            _ => acs::<4>(&mut chains, np, &dall, &fall, &mut ball),
        }
        // Choose each block's scale.
        let mut chosen = [(0u8, usize::MAX); GROUP];
        for i in 0..g {
            let blk = g0 + i;
            let j = blk % nb;
            let x = &src[blk * b..(blk + 1) * b];
            let weights = imatrix.map(|q| Weighting {
                imp: &q[j * b..(j + 1) * b],
                orig: x,
                signs: &rot[j],
            });
            let mut best_e = 0u8;
            let mut best_err = zero_error(energy[i], &weights);
            let mut best_chain = usize::MAX;
            for h in 0..cands[i].1 {
                let c = 2 * i + h;
                let e = cands[i].0[h];
                let (_, t) = best_state(&chains[c].cost);
                let err = if weights.is_some() {
                    let bk = &ball[2 * i * STRIDE + h..];
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
            chosen[i] = (best_e, best_chain);
        }
        // The chosen paths' states, all blocks of the batch at once (a zero block walks a
        // dummy path).
        let mut backs = [&zeros[..]; GROUP];
        let mut ends = [0usize; GROUP];
        for i in 0..g {
            let c = chosen[i].1;
            if c != usize::MAX {
                backs[i] = &ball[2 * i * STRIDE + (c & 1)..];
                ends[i] = best_state(&chains[c].cost).0;
            }
        }
        walk::<GROUP>(np, backs, ends, &mut st);
        // Write the blocks.
        for i in 0..g {
            let blk = g0 + i;
            let j = blk % nb;
            let u = &us[i * b..(i + 1) * b];
            let (best_e, c) = chosen[i];
            if c != usize::MAX {
                trace_states(s, b, &chains[c], &st[i], &mut best);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tq_rotation::SplitMix64;
    use crate::Isa;

    /// [`div_fma`] gives `vdivps`'s bits: exhaustively for every significand of `u` in
    /// [1, 2) (both signs) against every [`crate::formats::tq::EIGHTHS`] value (the cases its
    /// scaling argument reduces everything to), then for random `u` from 2^-60 to 2^17 of
    /// either sign against every code's scale. Without the correction step (`u·r` alone) the
    /// first part fails.
    #[test]
    fn div_fma_is_the_division() {
        if !Isa::Avx512.available() {
            eprintln!("skipped: this CPU has no AVX-512 (the vector encoder is not used here)");
            return;
        }
        use crate::formats::tq::{scale_of, EIGHTHS};
        let check = |u: &[f32; 16], d: f32| {
            // SAFETY: the CPU has AVX-512 F and FMA (checked above).
            let got = unsafe {
                let mut o = [0f32; 16];
                let q = div_fma(
                    _mm512_loadu_ps(u.as_ptr()),
                    _mm512_set1_ps(d),
                    _mm512_set1_ps(1.0 / d),
                );
                _mm512_storeu_ps(o.as_mut_ptr(), q);
                o
            };
            for l in 0..16 {
                assert_eq!(got[l].to_bits(), (u[l] / d).to_bits(), "{} / {d}", u[l]);
            }
        };
        for &e8 in &EIGHTHS {
            let d = f32::from_bits(e8);
            for base in (0x3f80_0000u32..0x4000_0000).step_by(16) {
                let u: [f32; 16] = core::array::from_fn(|l| f32::from_bits(base + l as u32));
                check(&u, d);
                check(&u.map(|v| -v), d);
            }
        }
        let mut g = SplitMix64::new(11);
        for e in 1..=255u8 {
            let d = scale_of(e);
            assert!((SCALE_MIN..SCALE_MAX).contains(&d), "code {e}: scale {d}");
            for _ in 0..64 {
                let u: [f32; 16] = core::array::from_fn(|_| {
                    let r = g.next_u64();
                    let m = f32::from_bits(0x3f80_0000 | (r as u32 & 0x7f_ffff));
                    let k = ((r >> 32) as u32 % 78) as i32 - 60;
                    let v = m * crate::formats::tq::pow2(k);
                    if r >> 63 == 1 {
                        -v
                    } else {
                        v
                    }
                });
                assert!(u.iter().all(|v| v.abs() >= DIV_FMA_MIN));
                check(&u, d);
            }
        }
    }

    /// The vector search outside the grid gives the reference's `(distance², entry, mirror)`
    /// for every pair table: random far points, points on the grid's edge, far points with
    /// integer coordinates, points level with the midpoint of two candidates (ties at the
    /// minimum, counted: at least 50 must occur) and points so far away that every distance
    /// overflows to infinity (the reference keeps candidate 0 then).
    #[test]
    fn far_search_equals_the_reference() {
        if !Isa::Avx512.available() {
            assert!(
                !std::env::var("GQ_REQUIRE_ISAS").is_ok_and(|r| r.contains("avx512")),
                "GQ_REQUIRE_ISAS asks for AVX-512, which this CPU lacks"
            );
            eprintln!("skipped: this CPU has no AVX-512 (the vector encoder is not used here)");
            return;
        }
        let mut g = SplitMix64::new(7);
        let mut pts: Vec<(f32, f32)> = vec![
            (128.0, 0.0),
            (0.0, 128.0),
            (128.0, 128.0),
            (1e20, 3.0),
            (2.0, 3e19),
            (f32::MAX, f32::MAX),
        ];
        for i in 0..400 {
            let far = 128.0 + (g.next_u64() % 20_000) as f32 / 16.0;
            let near = (g.next_u64() % 4096) as f32 / 16.0;
            let (a, b) = if i % 4 == 3 {
                (far.round(), near.round())
            } else {
                (far, near)
            };
            pts.push(if i % 2 == 0 { (a, b) } else { (b, a) });
        }
        crate::formats::tq_trellis::check_far_search(&pts, |bk, x, y| {
            // SAFETY: the CPU has AVX-512 F/BW/VL and AVX2 (checked above).
            unsafe { nearest4_far(bk, x, y) }
        });
    }
}
