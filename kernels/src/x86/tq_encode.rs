//! The AVX-512 path of the TurboQuant trellis encoder: the scalar reference's arithmetic
//! ([`crate::formats::tq_tcq::encode_block`]) on batches of blocks, so the bytes are the same.
//!
//! - rotation: the Walsh–Hadamard butterflies of the reference, 16 coordinates per register
//!   (stages 1–8 in registers, 16–128 across registers), and its fixed-order energy sum;
//! - nearest points: per pair, the (up to) 4 candidates of each of the 4 folded subsets of
//!   its grid cell in one register (slot-major, so that the minimum over slots is two
//!   shuffles), exact f32 distances (no FMA) and the first minimum's slot from an equality
//!   mask; pairs outside the grid or in one of its few cells with longer lists take the scalar
//!   search;
//!   the minima are stored in true-subset order (the fold undone here, not in the trellis);
//! - trellis: the add-compare-select of up to 8 searches (4 blocks × 2 scale candidates) in one
//!   loop, two searches per 512-bit register, so that their dependency chains overlap;
//!   traceback (a table-driven state walk) only for the chosen candidate.

// Index loops over pairs, lanes and chains read better than iterator chains here.
#![allow(clippy::needless_range_loop)]

use crate::formats::tq::scale_of;
use crate::formats::tq::TqError;
use crate::formats::tq_tcq::{
    candidate_error, check_range, scale_candidates, write_block, zero_error, TcqSpec, Weighting,
};
use crate::formats::tq_trellis::{book, vlines, Coded, VLines, SUB, VCELLS};
use core::arch::x86_64::*;

/// Blocks per batch (each with up to 2 scale candidates: at most 8 searches per batch).
const GROUP: usize = 4;

/// One search (a block at one scale candidate).
struct Chain {
    /// Minimum distance per (true, unfolded) subset: `d[p][t]` is the folded search's minimum
    /// of subset `t ^ fold[p]`.
    d: Vec<[f32; 4]>,
    /// Sign bits of the pair (x: bit 0, y: bit 1).
    fold: Vec<u8>,
    /// Grid cell of the pair (with bit 15: the index of a long cell's 8-slot line), or
    /// `u16::MAX` when it is outside the grid.
    cell: Vec<u16>,
    /// Lanes `4s + z` (slot `s` of 4, folded subset `z`) holding the minimum.
    eq: Vec<u32>,
    /// For pairs outside the grid: (entry, mirror) per folded subset.
    fb: Vec<[(u16, u8); 4]>,
    /// Trellis decisions.
    back: Vec<u8>,
    /// Final path costs.
    cost: [f32; 8],
}

impl Chain {
    fn new(np: usize) -> Self {
        Chain {
            d: vec![[0.0; 4]; np],
            fold: vec![0; np],
            cell: vec![0; np],
            eq: vec![0; np],
            fb: vec![[(0, 0); 4]; np],
            back: vec![0; np],
            cost: [0.0; 8],
        }
    }
}

/// Rotates `x` (one block of `b`) into `out` with the reference's butterflies; returns the
/// energy in the reference's order ([`crate::formats::tq_tcq::energy16`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn rotate(x: &[f32], signs: &[u64; 4], out: &mut [f32]) -> f32 {
    let b = x.len();
    let nr = b / 16;
    let mut r = [_mm512_setzero_ps(); 16];
    for (k, v) in r.iter_mut().enumerate().take(nr) {
        *v = super::tq_act::in_register(x.as_ptr(), k, signs);
    }
    let kinv = _mm512_set1_ps(crate::formats::tq_rotation::inv_sqrt(b));
    super::tq_act::cross_butterflies(&mut r, nr, kinv);
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

/// `vpermilps` controls `t ^ fold` (`t` = 0..4) per fold.
static UNFOLD: [[i32; 4]; 4] = [[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]];

/// Stores the per-subset minima of lanes 0–3 of `m` (folded subsets) in true-subset order:
/// `out[t] = m[t ^ fold]`.
#[inline]
#[target_feature(enable = "avx512f,avx512vl,avx")]
unsafe fn unfold(out: &mut [f32; 4], m: __m512, fold: u8) {
    let idx = _mm_loadu_si128(UNFOLD[fold as usize & 3].as_ptr().cast());
    let v = _mm_permutevar_ps(_mm512_castps512_ps128(m), idx);
    _mm_storeu_ps(out.as_mut_ptr(), v);
}

/// The nearest-point search of one block `u` at scale `d` into `ch`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,f16c")]
unsafe fn search(s: &TcqSpec, b: usize, u: &[f32], d: f32, ch: &mut Chain) {
    let np = b / 2;
    let first_lo = np - s.n_lo(b);
    let (vh, vl): (&VLines, &VLines) = (vlines(s.hi), vlines(s.lo));
    let dv = _mm512_set1_ps(d);
    let ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let absm = _mm512_set1_epi32(0x7fff_ffff);
    let ext = _mm512_set1_ps(128.0);
    let half = _mm512_set1_ps(0.5);
    let mut ax = [0f32; 128];
    let mut ay = [0f32; 128];
    let mut cells = [0i32; 128];
    let mut inside = [0u16; 8];
    for q in 0..np / 16 {
        let a = _mm512_div_ps(_mm512_loadu_ps(u.as_ptr().add(32 * q)), dv);
        let c = _mm512_div_ps(_mm512_loadu_ps(u.as_ptr().add(32 * q + 16)), dv);
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
        inside[q] =
            _mm512_cmp_ps_mask::<_CMP_LT_OQ>(fx, ext) & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(fy, ext);
        // Cells of 2 units: 64 per side.
        let cx = _mm512_cvttps_epi32(_mm512_mul_ps(fx, half));
        let cy = _mm512_cvttps_epi32(_mm512_mul_ps(fy, half));
        let cell = _mm512_add_epi32(_mm512_slli_epi32::<6>(cy), cx);
        _mm512_storeu_si512(cells.as_mut_ptr().add(16 * q).cast(), cell);
    }
    // Raw pointers for the hot loop (it keeps them in registers, with no bounds checks).
    let (eqp, cellp, dp, foldp) = (
        ch.eq.as_mut_ptr(),
        ch.cell.as_mut_ptr(),
        ch.d.as_mut_ptr(),
        ch.fold.as_ptr(),
    );
    assert!(ch.eq.len() >= np && ch.cell.len() >= np && ch.d.len() >= np && ch.fold.len() >= np);
    for (range, lines) in [(0..first_lo, vh), (first_lo..np, vl)] {
        let (xyp, longp) = (lines.xy.as_ptr(), lines.long.as_ptr());
        assert!(lines.xy.len() >= VCELLS * VCELLS && lines.long.len() >= VCELLS * VCELLS);
        for p in range {
            let (x, y) = (ax[p], ay[p]);
            let cell = cells[p] as usize;
            if (inside[p / 16] >> (p % 16)) & 1 == 1 {
                // SAFETY: inside the grid (0 ≤ x, y < 128), cell = 64·⌊y/2⌋ + ⌊x/2⌋ < 4096;
                // p < np, the length of the chain's arrays (asserted above).
                let long = *longp.add(cell);
                if long == u16::MAX {
                    let (vx, vy) = (_mm512_set1_ps(x), _mm512_set1_ps(y));
                    let lp = xyp.add(cell).cast::<u16>();
                    let dx = _mm512_sub_ps(vx, _mm512_cvtph_ps(_mm256_loadu_si256(lp.cast())));
                    let dy =
                        _mm512_sub_ps(vy, _mm512_cvtph_ps(_mm256_loadu_si256(lp.add(16).cast())));
                    let d = _mm512_add_ps(_mm512_mul_ps(dx, dx), _mm512_mul_ps(dy, dy));
                    let mut m = _mm512_min_ps(d, _mm512_shuffle_f32x4::<0x4e>(d, d));
                    m = _mm512_min_ps(m, _mm512_shuffle_f32x4::<0xb1>(m, m));
                    *cellp.add(p) = cell as u16;
                    *eqp.add(p) = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(d, m) as u32;
                    unfold(&mut *dp.add(p), m, *foldp.add(p));
                    continue;
                }
            }
            // The rare cases, through the same pointers (SAFETY: p < np as above; a long cell's
            // index is below `xy8.len()`).
            if (inside[p / 16] >> (p % 16)) & 1 == 0 {
                let w = s.pair_bits(b, p);
                let r = book(w).nearest4(x, y);
                let f = *foldp.add(p) as usize;
                for z in 0..4 {
                    (*dp.add(p))[z ^ f] = r[z].0;
                    ch.fb[p][z] = (r[z].1, r[z].2);
                }
                *cellp.add(p) = u16::MAX;
                continue;
            }
            // A long cell: 8 slots (x of slots 0–3, 4–7, then y), lanes 4s + z of two registers.
            let long = *longp.add(cell);
            let (vx, vy) = (_mm512_set1_ps(x), _mm512_set1_ps(y));
            *cellp.add(p) = 0x8000 | long;
            let lp = lines.xy8[long as usize].as_ptr();
            let dist8 = |o: usize| {
                let dx = _mm512_sub_ps(vx, _mm512_cvtph_ps(_mm256_loadu_si256(lp.add(o).cast())));
                let dy = _mm512_sub_ps(
                    vy,
                    _mm512_cvtph_ps(_mm256_loadu_si256(lp.add(32 + o).cast())),
                );
                _mm512_add_ps(_mm512_mul_ps(dx, dx), _mm512_mul_ps(dy, dy))
            };
            let (d0, d1) = (dist8(0), dist8(16));
            let mut m = _mm512_min_ps(d0, d1);
            m = _mm512_min_ps(m, _mm512_shuffle_f32x4::<0x4e>(m, m));
            m = _mm512_min_ps(m, _mm512_shuffle_f32x4::<0xb1>(m, m));
            let e0 = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(d0, m) as u32;
            let e1 = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(d1, m) as u32;
            *eqp.add(p) = e0 | (e1 << 16);
            unfold(&mut *dp.add(p), m, *foldp.add(p));
        }
    }
}

/// Add-compare-select of up to `2M` searches over `np` pairs, two per 512-bit register (lanes
/// 0–7: the states of search `2j`, lanes 8–15: those of search `2j + 1`), the registers
/// interleaved so that their dependency chains overlap. The reference's arithmetic per state:
/// `c0 = cost[s0] + d[SUB[s0][b]]`, `c1 = cost[s1] + d[SUB[s1][b]]`, `c1 < c0` picks `c1`.
/// A missing odd search repeats the previous one and writes its decisions to `spare`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn acs<const M: usize>(chains: &mut [Chain], nch: usize, np: usize, spare: &mut [u8]) {
    let sub = |hi: usize, half: i32| {
        let o = 4 * hi;
        let mut l = [0i32; 8];
        for k in 0..8 {
            l[k] = SUB[o + k / 2][k % 2] as i32 + half;
        }
        l
    };
    let both = |a: [i32; 8], b: [i32; 8]| {
        _mm512_setr_epi32(
            a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], b[0], b[1], b[2], b[3], b[4], b[5],
            b[6], b[7],
        )
    };
    // Predecessors s0 = ns >> 1, s1 = (ns >> 1) | 4 of the next state ns, per half.
    let pc0 = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 8, 8, 9, 9, 10, 10, 11, 11);
    let pc1 = _mm512_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7, 12, 12, 13, 13, 14, 14, 15, 15);
    let sd0 = both(sub(0, 0), sub(0, 8));
    let sd1 = both(sub(1, 0), sub(1, 8));
    let inf = f32::INFINITY;
    let start = _mm512_setr_ps(
        0.0, inf, inf, inf, inf, inf, inf, inf, 0.0, inf, inf, inf, inf, inf, inf, inf,
    );
    let mut cost = [start; M];
    let mut da = [core::ptr::null::<[f32; 4]>(); M];
    let mut db = [core::ptr::null::<[f32; 4]>(); M];
    let mut ba = [core::ptr::null_mut::<u8>(); M];
    let mut bb = [core::ptr::null_mut::<u8>(); M];
    for j in 0..M {
        da[j] = chains[2 * j].d.as_ptr();
        ba[j] = chains[2 * j].back.as_mut_ptr();
        if 2 * j + 1 < nch {
            db[j] = chains[2 * j + 1].d.as_ptr();
            bb[j] = chains[2 * j + 1].back.as_mut_ptr();
        } else {
            db[j] = da[j];
            bb[j] = spare.as_mut_ptr();
        }
    }
    for p in 0..np {
        for j in 0..M {
            // SAFETY: p < np, the length of every chain's arrays and of `spare`.
            let dv = _mm512_castps128_ps512(_mm_loadu_ps(da[j].add(p).cast()));
            let dv = _mm512_insertf32x4::<2>(dv, _mm_loadu_ps(db[j].add(p).cast()));
            let c0 = _mm512_add_ps(
                _mm512_permutexvar_ps(pc0, cost[j]),
                _mm512_permutexvar_ps(sd0, dv),
            );
            let c1 = _mm512_add_ps(
                _mm512_permutexvar_ps(pc1, cost[j]),
                _mm512_permutexvar_ps(sd1, dv),
            );
            let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(c1, c0);
            cost[j] = _mm512_mask_blend_ps(lt, c0, c1);
            *ba[j].add(p) = lt as u8;
            *bb[j].add(p) = (lt >> 8) as u8;
        }
    }
    for j in 0..M {
        let mut c = [0f32; 16];
        _mm512_storeu_ps(c.as_mut_ptr(), cost[j]);
        chains[2 * j].cost.copy_from_slice(&c[..8]);
        if 2 * j + 1 < nch {
            chains[2 * j + 1].cost.copy_from_slice(&c[8..]);
        }
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

/// The coded pairs of a search's best path: the state path first (a short dependency chain),
/// then the table entries of the chosen subsets (independent per pair).
///
/// The state walk is the reference's `ps = (s >> 1) | ((back[p] >> s) & 1) << 2` with all 8
/// predecessors of pair `p` looked up first ([`PRED`], off the chain), so that one step is a
/// shift and a mask on `8·s`.
fn traceback(s: &TcqSpec, b: usize, ch: &Chain, out: &mut [Coded]) {
    let np = b / 2;
    let first_lo = np - s.n_lo(b);
    let (vh, vl) = (vlines(s.hi), vlines(s.lo));
    let (st, _) = best_state(&ch.cost);
    let back = &ch.back[..np];
    let mut zs = [0u8; 128];
    let mut st8 = 8 * st as u64;
    for p in (0..np).rev() {
        let t = PRED[back[p] as usize];
        let ps8 = (t >> st8) & 0x38;
        let (cur, ps) = ((st8 >> 3) as usize, (ps8 >> 3) as usize);
        zs[p] = (SUB[ps][cur & 1] << 1) | (cur & 1) as u8;
        st8 = ps8;
    }
    let (fold, cell, eq, fb) = (&ch.fold[..np], &ch.cell[..np], &ch.eq[..np], &ch.fb[..np]);
    let out = &mut out[..np];
    for (range, vlns) in [(0..first_lo, vh), (first_lo..np, vl)] {
        let meta = vlns.meta.as_ptr();
        assert!(vlns.meta.len() >= VCELLS * VCELLS);
        for p in range {
            let z = (zs[p] >> 1) as usize;
            let f = fold[p];
            let zf = z ^ f as usize;
            let c = cell[p];
            let (k, m) = if c == u16::MAX {
                fb[p][zf]
            } else {
                let l = (eq[p] & (0x1111_1111u32 << zf)).trailing_zeros() as usize;
                let (k, m) = if c & 0x8000 != 0 {
                    vlns.meta8[(c & 0x7fff) as usize][l]
                } else {
                    // SAFETY: the search stores cells below 64 · 64 (the mask keeps any value
                    // there) and `meta` has that many lines (asserted above); l & 15 < 16.
                    unsafe {
                        *meta
                            .add((c & 0xfff) as usize)
                            .cast::<(u8, u8)>()
                            .add(l & 15)
                    }
                };
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

/// [`crate::formats::tq_tcq::quantize_rows`] on AVX-512 (same bytes as the scalar path).
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL and AVX2.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
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
    let mut chains: Vec<Chain> = (0..2 * GROUP).map(|_| Chain::new(np)).collect();
    let mut coded = vec![Coded::default(); np];
    let mut best = vec![Coded::default(); np];
    let mut recon = vec![0f32; b];
    let mut spare = vec![0u8; np];
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
                search(s, b, u, scale_of(cands[i].0[c]), &mut chains[nch]);
                owner[nch] = (i, c);
                nch += 1;
            }
        }
        match nch.div_ceil(2) {
            0 => {}
            1 => acs::<1>(&mut chains, nch, np, &mut spare),
            2 => acs::<2>(&mut chains, nch, np, &mut spare),
            3 => acs::<3>(&mut chains, nch, np, &mut spare),
            _ => acs::<4>(&mut chains, nch, np, &mut spare),
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
                    traceback(s, b, &chains[c], &mut coded);
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
                traceback(s, b, &chains[best_chain], &mut best);
            }
            write_block(
                s,
                b,
                best_e,
                &best,
                u,
                &qjl[j],
                &mut dst[blk * bb..(blk + 1) * bb],
            );
        }
        g0 += g;
    }
    Ok(())
}
