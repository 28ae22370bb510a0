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
//! - trellis: the add-compare-select of up to 8 searches (4 blocks × 2 scale candidates) in one
//!   loop, so that their dependency chains overlap; traceback only for the chosen candidate.

// Index loops over pairs, lanes and chains read better than iterator chains here.
#![allow(clippy::needless_range_loop)]

use crate::formats::tq::scale_of;
use crate::formats::tq::TqError;
use crate::formats::tq_tcq::{
    candidate_error, check_range, scale_candidates, write_block, zero_error, TcqSpec, Weighting,
};
use crate::formats::tq_trellis::{book, vlines, Coded, VLines, SUB};
use core::arch::x86_64::*;

/// Blocks per batch (each with up to 2 scale candidates: at most 8 searches per batch).
const GROUP: usize = 4;

/// One search (a block at one scale candidate).
struct Chain {
    /// Minimum distance per folded subset.
    dfold: Vec<[f32; 4]>,
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
            dfold: vec![[0.0; 4]; np],
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
    let sign = _mm512_set1_epi32(i32::MIN);
    for k in 0..nr {
        let m = ((signs[k / 4] >> (16 * (k % 4))) & 0xffff) as u16;
        let v = _mm512_castps_si512(_mm512_loadu_ps(x.as_ptr().add(16 * k)));
        r[k] = _mm512_castsi512_ps(_mm512_mask_xor_epi32(v, m, v, sign));
    }
    // Stages h = 1, 2, 4, 8 inside each register: lanes with bit h clear get x[i] + x[i+h],
    // the others x[i−h] − x[i].
    let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for h in [1i32, 2, 4, 8] {
        let idx = _mm512_xor_si512(lane, _mm512_set1_epi32(h));
        let hi = _mm512_test_epi32_mask(lane, _mm512_set1_epi32(h));
        for v in r.iter_mut().take(nr) {
            let p = _mm512_permutexvar_ps(idx, *v);
            *v = _mm512_mask_blend_ps(hi, _mm512_add_ps(*v, p), _mm512_sub_ps(p, *v));
        }
    }
    // Stages 16 … b/2 across registers.
    let mut h = 1;
    while h < nr {
        for k in 0..nr {
            if k & h == 0 {
                let (p, q) = (r[k], r[k + h]);
                r[k] = _mm512_add_ps(p, q);
                r[k + h] = _mm512_sub_ps(p, q);
            }
        }
        h *= 2;
    }
    let kinv = _mm512_set1_ps(crate::formats::tq_rotation::inv_sqrt(b));
    let mut acc = _mm512_setzero_ps();
    for k in 0..nr {
        let v = _mm512_mul_ps(r[k], kinv);
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
    for p in 0..np {
        let (x, y) = (ax[p], ay[p]);
        let lines = if p >= first_lo { vl } else { vh };
        let cell = cells[p] as usize;
        if (inside[p / 16] >> (p % 16)) & 1 == 0 {
            let w = s.pair_bits(b, p);
            let r = book(w).nearest4(x, y);
            for z in 0..4 {
                ch.dfold[p][z] = r[z].0;
                ch.fb[p][z] = (r[z].1, r[z].2);
            }
            ch.cell[p] = u16::MAX;
            continue;
        }
        let (vx, vy) = (_mm512_set1_ps(x), _mm512_set1_ps(y));
        let dist = |lp: *const u16| {
            let dx = _mm512_sub_ps(vx, _mm512_cvtph_ps(_mm256_loadu_si256(lp.cast())));
            let dy = _mm512_sub_ps(vy, _mm512_cvtph_ps(_mm256_loadu_si256(lp.add(16).cast())));
            _mm512_add_ps(_mm512_mul_ps(dx, dx), _mm512_mul_ps(dy, dy))
        };
        let long = lines.long[cell];
        if long == u16::MAX {
            ch.cell[p] = cell as u16;
            let d = dist(lines.xy[cell].as_ptr());
            let mut m = _mm512_min_ps(d, _mm512_shuffle_f32x4::<0x4e>(d, d));
            m = _mm512_min_ps(m, _mm512_shuffle_f32x4::<0xb1>(m, m));
            ch.eq[p] = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(d, m) as u32;
            _mm_storeu_ps(ch.dfold[p].as_mut_ptr(), _mm512_castps512_ps128(m));
        } else {
            // A long cell: 8 slots (x of slots 0–3, 4–7, then y), lanes 4s + z of two registers.
            ch.cell[p] = 0x8000 | long;
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
            ch.eq[p] = e0 | (e1 << 16);
            _mm_storeu_ps(ch.dfold[p].as_mut_ptr(), _mm512_castps512_ps128(m));
        }
    }
}

/// Add-compare-select of `N` searches over `np` pairs, interleaved.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn acs<const N: usize>(chains: &mut [&mut Chain], np: usize) {
    let p0 = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    let p1 = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
    let sub = |hi: usize| {
        let s = |st: usize, b: usize| SUB[st][b] as i32;
        let o = 4 * hi;
        _mm256_setr_epi32(
            s(o, 0),
            s(o, 1),
            s(o + 1, 0),
            s(o + 1, 1),
            s(o + 2, 0),
            s(o + 2, 1),
            s(o + 3, 0),
            s(o + 3, 1),
        )
    };
    let (sub0, sub1) = (sub(0), sub(1));
    let inf = f32::INFINITY;
    let mut cost = [_mm256_setr_ps(0.0, inf, inf, inf, inf, inf, inf, inf); N];
    let mut dp = [core::ptr::null::<[f32; 4]>(); N];
    let mut fp = [core::ptr::null::<u8>(); N];
    let mut bp = [core::ptr::null_mut::<u8>(); N];
    for c in 0..N {
        dp[c] = chains[c].dfold.as_ptr();
        fp[c] = chains[c].fold.as_ptr();
        bp[c] = chains[c].back.as_mut_ptr();
    }
    for p in 0..np {
        for c in 0..N {
            // SAFETY: p < np, the length of every chain's arrays.
            let dv = _mm256_castps128_ps256(_mm_loadu_ps(dp[c].add(p).cast()));
            let f = _mm256_set1_epi32(*fp[c].add(p) as i32);
            let c0 = _mm256_add_ps(
                _mm256_permutevar8x32_ps(cost[c], p0),
                _mm256_permutevar8x32_ps(dv, _mm256_xor_si256(sub0, f)),
            );
            let c1 = _mm256_add_ps(
                _mm256_permutevar8x32_ps(cost[c], p1),
                _mm256_permutevar8x32_ps(dv, _mm256_xor_si256(sub1, f)),
            );
            let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(c1, c0);
            cost[c] = _mm256_blendv_ps(c0, c1, lt);
            *bp[c].add(p) = _mm256_movemask_ps(lt) as u8;
        }
    }
    for c in 0..N {
        _mm256_storeu_ps(chains[c].cost.as_mut_ptr(), cost[c]);
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

/// The coded pairs of a search's best path: the state path first (a short dependency chain),
/// then the table entries of the chosen subsets (independent per pair).
fn traceback(s: &TcqSpec, b: usize, ch: &Chain, out: &mut [Coded]) {
    let np = b / 2;
    let first_lo = np - s.n_lo(b);
    let (vh, vl) = (vlines(s.hi), vlines(s.lo));
    let (mut st, _) = best_state(&ch.cost);
    let mut zs = [0u8; 128];
    for p in (0..np).rev() {
        let ps = (st >> 1) | (((ch.back[p] >> st) & 1) as usize) << 2;
        zs[p] = (SUB[ps][st & 1] << 1) | (st & 1) as u8;
        st = ps;
    }
    for p in 0..np {
        let z = (zs[p] >> 1) as usize;
        let fold = ch.fold[p];
        let zf = z ^ fold as usize;
        let (k, m) = if ch.cell[p] == u16::MAX {
            ch.fb[p][zf]
        } else {
            let lanes = ch.eq[p] & (0x1111_1111u32 << zf);
            let l = lanes.trailing_zeros() as usize;
            let vlns = if p >= first_lo { vl } else { vh };
            let c = ch.cell[p];
            let (k, m) = if c & 0x8000 != 0 {
                vlns.meta8[(c & 0x7fff) as usize][l]
            } else {
                vlns.meta[c as usize][l]
            };
            (k as u16, m)
        };
        out[p] = Coded {
            branch: zs[p] & 1,
            k,
            mirror: m ^ fold,
        };
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
        {
            let mut refs: Vec<&mut Chain> = chains.iter_mut().take(nch).collect();
            match nch {
                0 => {}
                1 => acs::<1>(&mut refs, np),
                2 => acs::<2>(&mut refs, np),
                3 => acs::<3>(&mut refs, np),
                4 => acs::<4>(&mut refs, np),
                5 => acs::<5>(&mut refs, np),
                6 => acs::<6>(&mut refs, np),
                7 => acs::<7>(&mut refs, np),
                _ => acs::<8>(&mut refs, np),
            }
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
