//! The encoder's search for the trellis types (informative: docs/turboquant.md §12): the
//! nearest point of each of the 4 subsets of a pair code to every coordinate pair (a grid of
//! candidate lists per table), and the Viterbi search of the 8-state trellis. The scalar path is
//! the reference; the AVX-512 path does exactly its arithmetic (no FMA, first-minimum ties) and
//! gives the same bytes.

// Index loops over the 4 subsets and the 8 trellis states read better than iterator chains.
#![allow(clippy::needless_range_loop)]

use super::tq_tables::pair_table;
use crate::isa::Isa;
use std::sync::OnceLock;

// ------------------------------------------------------------------------------------------------
// Tables prepared for the encoder.

/// Extent (table units) of the nearest-neighbour accelerator grid; cells are `128 / ncell`
/// wide with `ncell` = 64 for the two widest tables and 32 otherwise.
const EXTENT: f32 = 128.0;

/// A candidate of the folded nearest-neighbour search.
#[derive(Clone, Copy, Debug)]
struct Cand {
    x: f32,
    y: f32,
    k: u16,
    mirror: u8,
}

/// One pair table with its encoder accelerator.
pub(crate) struct Book {
    pub(crate) pts: Vec<[f32; 2]>,
    /// Candidates of every (cell, folded subset) list, each list padded to `width` entries with
    /// far-away dummies, so the search loops have a fixed trip count.
    cand: Vec<Cand>,
    /// Padded list length.
    width: usize,
    /// Grid cells per side and cell width.
    ncell: usize,
    cell: f32,
    /// All candidates per folded subset (fallback outside the grid).
    all: [Vec<Cand>; 4],
    /// Vector path: a 32×32 grid of 4-unit cells; per cell one 64-byte line holding the four
    /// subsets' candidate lists (same order as `all`, padded to 8 entries by repeating the last
    /// one), x bytes then y bytes (int8 table units).
    vlines: Vec<[i8; 64]>,
    /// Per cell and slot (32): table entry and mirror of the candidate.
    vmeta: Vec<[(u16, u8); 32]>,
}

impl Book {
    fn new(bits: u32) -> Book {
        // (bits also selects the grid resolution)
        let t = pair_table(bits);
        let per = 1usize << (bits - 3);
        let pts: Vec<[f32; 2]> = t.iter().map(|p| [p[0] as f32, p[1] as f32]).collect();
        let label: Vec<u8> = (0..pts.len()).map(|k| (k / per) as u8).collect(); // entry k has label k / per
                                                                                // All mirror images, grouped by the subset they belong to in the folded plane.
        let mut all: [Vec<Cand>; 4] = Default::default();
        for (k, p) in pts.iter().enumerate() {
            for mirror in 0..4u8 {
                let x = if mirror & 1 == 1 { -p[0] } else { p[0] };
                let y = if mirror & 2 == 2 { -p[1] } else { p[1] };
                all[(label[k] ^ mirror) as usize].push(Cand {
                    x,
                    y,
                    k: k as u16,
                    mirror,
                });
            }
        }
        let ncell = if bits >= 8 { 64 } else { 32 };
        let cw = EXTENT / ncell as f32;
        let mut lists: Vec<Vec<Cand>> = Vec::with_capacity(ncell * ncell * 4);
        for cy in 0..ncell {
            for cx in 0..ncell {
                let (x0, y0) = (cx as f32 * cw, cy as f32 * cw);
                let (x1, y1) = (x0 + cw, y0 + cw);
                for z in 0..4 {
                    // A point can be nearest somewhere in the cell only if its smallest distance to
                    // the cell is <= the smallest farthest-distance of any subset point.
                    let far = |c: &Cand| {
                        let dx = (c.x - x0).abs().max((c.x - x1).abs());
                        let dy = (c.y - y0).abs().max((c.y - y1).abs());
                        dx * dx + dy * dy
                    };
                    let near = |c: &Cand| {
                        let dx = if c.x < x0 {
                            x0 - c.x
                        } else if c.x > x1 {
                            c.x - x1
                        } else {
                            0.0
                        };
                        let dy = if c.y < y0 {
                            y0 - c.y
                        } else if c.y > y1 {
                            c.y - y1
                        } else {
                            0.0
                        };
                        dx * dx + dy * dy
                    };
                    let bound = all[z].iter().map(far).fold(f32::INFINITY, f32::min);
                    lists.push(
                        all[z]
                            .iter()
                            .filter(|c| near(c) <= bound)
                            .copied()
                            .collect(),
                    );
                }
            }
        }
        let width = lists.iter().map(|l| l.len()).max().unwrap();
        let dummy = Cand {
            x: 1e6,
            y: 1e6,
            k: 0,
            mirror: 0,
        };
        let mut cand = Vec::with_capacity(lists.len() * width);
        for l in &lists {
            cand.extend(
                l.iter()
                    .copied()
                    .chain(std::iter::repeat(dummy))
                    .take(width),
            );
        }
        // Vector-path grid (32×32 cells of 4 units); same candidate order as `all`, so the first
        // minimum is the same point as in the scalar search.
        let mut vlines = Vec::with_capacity(32 * 32);
        let mut vmeta = Vec::with_capacity(32 * 32);
        for cy in 0..32 {
            for cx in 0..32 {
                let (x0, y0) = (cx as f32 * 4.0, cy as f32 * 4.0);
                let (x1, y1) = (x0 + 4.0, y0 + 4.0);
                let mut line = [0i8; 64];
                let mut meta = [(0u16, 0u8); 32];
                for z in 0..4 {
                    let far = |c: &Cand| {
                        let dx = (c.x - x0).abs().max((c.x - x1).abs());
                        let dy = (c.y - y0).abs().max((c.y - y1).abs());
                        dx * dx + dy * dy
                    };
                    let near = |c: &Cand| {
                        let dx = if c.x < x0 {
                            x0 - c.x
                        } else if c.x > x1 {
                            c.x - x1
                        } else {
                            0.0
                        };
                        let dy = if c.y < y0 {
                            y0 - c.y
                        } else if c.y > y1 {
                            c.y - y1
                        } else {
                            0.0
                        };
                        dx * dx + dy * dy
                    };
                    let bound = all[z].iter().map(far).fold(f32::INFINITY, f32::min);
                    let l: Vec<Cand> = all[z]
                        .iter()
                        .filter(|c| near(c) <= bound)
                        .copied()
                        .collect();
                    assert!(l.len() <= 8, "candidate list too long for the vector path");
                    for slot in 0..8 {
                        // Padding repeats the list's last entry (never a strictly better minimum,
                        // and ties resolve to the earlier slot).
                        let c = l[slot.min(l.len() - 1)];
                        line[8 * z + slot] = c.x as i8;
                        line[32 + 8 * z + slot] = c.y as i8;
                        meta[8 * z + slot] = (c.k, c.mirror);
                    }
                }
                vlines.push(line);
                vmeta.push(meta);
            }
        }
        Book {
            pts,
            cand,
            width,
            ncell,
            cell: cw,
            all,
            vlines,
            vmeta,
        }
    }

    /// Nearest point of each folded subset to the folded point (ax, ay) (table units):
    /// `(distance², k, mirror)` per subset.
    #[inline]
    fn nearest4(&self, ax: f32, ay: f32) -> [(f32, u16, u8); 4] {
        let mut out = [(f32::INFINITY, 0u16, 0u8); 4];
        let inside = ax < EXTENT && ay < EXTENT;
        let cell = if inside {
            (ay / self.cell) as usize * self.ncell + (ax / self.cell) as usize
        } else {
            0
        };
        let w = self.width;
        for z in 0..4 {
            let list = if inside {
                &self.cand[(cell * 4 + z) * w..(cell * 4 + z + 1) * w]
            } else {
                &self.all[z][..]
            };
            let mut bd = f32::INFINITY;
            let mut bi = 0usize;
            for (i, c) in list.iter().enumerate() {
                let d = (ax - c.x) * (ax - c.x) + (ay - c.y) * (ay - c.y);
                let lt = d < bd;
                bd = if lt { d } else { bd };
                bi = if lt { i } else { bi };
            }
            out[z] = (bd, list[bi].k, list[bi].mirror);
        }
        out
    }
}

pub(crate) fn book(bits: u32) -> &'static Book {
    static BOOKS: [OnceLock<Book>; 10] = [const { OnceLock::new() }; 10];
    BOOKS[bits as usize].get_or_init(|| Book::new(bits))
}

// ------------------------------------------------------------------------------------------------
// Trellis.

/// Subset of pair `p` from state `s = b_{p-1} | b_{p-2} << 1 | b_{p-3} << 2` and branch bit `b`.
#[inline]
pub(crate) fn subset(s: usize, b: usize) -> usize {
    2 * (b ^ ((s >> 1) & 1) ^ ((s >> 2) & 1)) + (s & 1)
}

/// Next state after branch bit `b`.
#[inline]
pub(crate) fn next_state(s: usize, b: usize) -> usize {
    (b | (s << 1)) & 7
}

/// One coded pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Coded {
    pub(crate) branch: u8,
    /// Table entry.
    pub(crate) k: u16,
    /// Sign bits (mx | my << 1).
    pub(crate) mirror: u8,
}

/// Subset of the branch from state `s` with bit `b` (`SUB[s][b]`).
const SUB: [[u8; 2]; 8] = {
    let mut t = [[0u8; 2]; 8];
    let mut s = 0;
    while s < 8 {
        t[s][0] = (2 * ((s >> 1) & 1 ^ (s >> 2) & 1) + (s & 1)) as u8;
        t[s][1] = (2 * (1 ^ (s >> 1) & 1 ^ (s >> 2) & 1) + (s & 1)) as u8;
        s += 1;
    }
    t
};

/// Nearest points of the 4 subsets for every pair of a block.
pub(crate) struct Nn {
    d: Vec<[f32; 4]>,
    k: Vec<[u16; 4]>,
    m: Vec<[u8; 4]>,
    back: Vec<u8>,
    /// Vector path: grid cell of each pair (`u16::MAX`: entry/mirror are in `k`/`m`) and the
    /// candidate slot per subset (low 6 bits) with the fold (bits 6–7).
    cell: Vec<u16>,
    slot: Vec<[u8; 4]>,
}

impl Nn {
    pub(crate) fn new(np: usize) -> Self {
        Nn {
            d: vec![[0.0; 4]; np],
            k: vec![[0; 4]; np],
            m: vec![[0; 4]; np],
            back: vec![0; np],
            cell: vec![0; np],
            slot: vec![[0; 4]; np],
        }
    }
}

/// Viterbi search of the trellis for the normalised block `v` (table units). Returns the total
/// squared error (table units) and writes the coded pairs. `book_of(p)`: the table of pair `p`.
pub(crate) fn viterbi(
    v: &[f32],
    book_of: &dyn Fn(usize) -> &'static Book,
    nn: &mut Nn,
    out: &mut [Coded],
    isa: Isa,
) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // SAFETY: `isa` is only Avx512 when the CPU has it (callers pass
        // `Isa::or_available`), which includes AVX-512F and AVX2.
        return unsafe { simd::viterbi(v, book_of, nn, out) };
    }
    let _ = isa;
    viterbi_scalar(v, book_of, nn, out)
}

/// Scalar Viterbi (the reference the vector path must reproduce bit for bit).
fn viterbi_scalar(
    v: &[f32],
    book_of: &dyn Fn(usize) -> &'static Book,
    nn: &mut Nn,
    out: &mut [Coded],
) -> f32 {
    let np = v.len() / 2;
    for p in 0..np {
        let (x, y) = (v[2 * p], v[2 * p + 1]);
        let fold = (x.is_sign_negative() as usize) | ((y.is_sign_negative() as usize) << 1);
        let r = book_of(p).nearest4(x.abs(), y.abs());
        for (zf, &(d, k, m)) in r.iter().enumerate() {
            // Unfold: folded subset zf is true subset zf ^ fold; the mirror composes with the fold.
            nn.d[p][zf ^ fold] = d;
            nn.k[p][zf ^ fold] = k;
            nn.m[p][zf ^ fold] = m ^ fold as u8;
        }
    }
    // Forward pass: next state ns = (b | s << 1) & 7 has predecessors s = ns >> 1 and
    // (ns >> 1) | 4, both with branch bit b = ns & 1. Ties keep the smaller predecessor.
    let mut cost = [f32::INFINITY; 8];
    cost[0] = 0.0;
    for p in 0..np {
        let d = nn.d[p];
        let mut nc = [0f32; 8];
        let mut bits = 0u8;
        for ns in 0..8 {
            let (s0, s1, b) = (ns >> 1, (ns >> 1) | 4, ns & 1);
            let c0 = cost[s0] + d[SUB[s0][b] as usize];
            let c1 = cost[s1] + d[SUB[s1][b] as usize];
            if c1 < c0 {
                nc[ns] = c1;
                bits |= 1 << ns;
            } else {
                nc[ns] = c0;
            }
        }
        nn.back[p] = bits;
        cost = nc;
    }
    traceback(&cost, nn, out)
}

/// Best end state and traceback (shared by both paths).
fn traceback(cost: &[f32; 8], nn: &Nn, out: &mut [Coded]) -> f32 {
    let mut s = 0;
    for t in 1..8 {
        if cost[t] < cost[s] {
            s = t;
        }
    }
    let total = cost[s];
    for p in (0..out.len()).rev() {
        let ps = (s >> 1) | (((nn.back[p] >> s) & 1) as usize) << 2;
        let b = s & 1;
        let z = SUB[ps][b] as usize;
        out[p] = Coded {
            branch: b as u8,
            k: nn.k[p][z],
            mirror: nn.m[p][z],
        };
        s = ps;
    }
    total
}

/// AVX-512 encoder path (x86-64): the nearest-point search of every pair and the add-compare-
/// select of the trellis in vector registers, with exactly the scalar path's arithmetic (no FMA,
/// first-minimum tie breaks), so the bytes are identical.
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::*;
    use std::arch::x86_64::*;

    /// Lane-group minimum broadcast within groups of `1 << steps` lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn group_min(a: __m512, steps: u32) -> __m512 {
        let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let mut m = a;
        for k in 0..steps {
            let idx = _mm512_xor_si512(lane, _mm512_set1_epi32(1 << k));
            m = _mm512_min_ps(m, _mm512_permutexvar_ps(idx, m));
        }
        m
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn dist(ax: __m512, ay: __m512, px: __m512, py: __m512) -> __m512 {
        let dx = _mm512_sub_ps(ax, px);
        let dy = _mm512_sub_ps(ay, py);
        _mm512_add_ps(_mm512_mul_ps(dx, dx), _mm512_mul_ps(dy, dy))
    }

    #[target_feature(enable = "avx512f,avx2")]
    pub unsafe fn viterbi(
        v: &[f32],
        book_of: &dyn Fn(usize) -> &'static Book,
        nn: &mut Nn,
        out: &mut [Coded],
    ) -> f32 {
        let np = v.len() / 2;
        for p in 0..np {
            let (x, y) = (v[2 * p], v[2 * p + 1]);
            let fold = (x.is_sign_negative() as usize) | ((y.is_sign_negative() as usize) << 1);
            let bk = book_of(p);
            let (ax, ay) = (x.abs(), y.abs());
            if !(ax < EXTENT && ay < EXTENT) {
                let r = bk.nearest4(ax, ay);
                nn.cell[p] = u16::MAX;
                for (zf, &(d, k, m)) in r.iter().enumerate() {
                    nn.d[p][zf ^ fold] = d;
                    nn.k[p][zf ^ fold] = k;
                    nn.m[p][zf ^ fold] = m ^ fold as u8;
                }
                continue;
            }
            let cell = (ay / 4.0) as usize * 32 + (ax / 4.0) as usize;
            let line = bk.vlines[cell].as_ptr();
            let (vx, vy) = (_mm512_set1_ps(ax), _mm512_set1_ps(ay));
            let ld = |off: usize| {
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                    line.add(off) as *const __m128i
                )))
            };
            // subsets 0,1 in lanes 0..16 of d0; subsets 2,3 in d1
            let d0 = dist(vx, vy, ld(0), ld(32));
            let d1 = dist(vx, vy, ld(16), ld(48));
            let m0 = group_min(d0, 3);
            let m1 = group_min(d1, 3);
            let eq = (_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(d0, m0) as u32)
                | ((_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(d1, m1) as u32) << 16);
            let mins = [
                _mm512_cvtss_f32(m0),
                _mm_cvtss_f32(_mm512_extractf32x4_ps::<2>(m0)),
                _mm512_cvtss_f32(m1),
                _mm_cvtss_f32(_mm512_extractf32x4_ps::<2>(m1)),
            ];
            // Only the distance is needed by the forward pass; the candidate slot is resolved
            // to (entry, mirror) for the chosen subset in the traceback.
            nn.cell[p] = cell as u16;
            for zf in 0..4 {
                let slot = 8 * zf + ((eq >> (8 * zf)) & 0xff).trailing_zeros() as usize;
                nn.d[p][zf ^ fold] = mins[zf];
                nn.slot[p][zf ^ fold] = slot as u8 | (fold as u8) << 6;
            }
        }
        // Add-compare-select, 8 states in one register.
        let p0 = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
        let p1 = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
        let sub0 = _mm256_setr_epi32(
            SUB[0][0] as i32,
            SUB[0][1] as i32,
            SUB[1][0] as i32,
            SUB[1][1] as i32,
            SUB[2][0] as i32,
            SUB[2][1] as i32,
            SUB[3][0] as i32,
            SUB[3][1] as i32,
        );
        let sub1 = _mm256_setr_epi32(
            SUB[4][0] as i32,
            SUB[4][1] as i32,
            SUB[5][0] as i32,
            SUB[5][1] as i32,
            SUB[6][0] as i32,
            SUB[6][1] as i32,
            SUB[7][0] as i32,
            SUB[7][1] as i32,
        );
        let mut cost = _mm256_setr_ps(
            0.0,
            f32::INFINITY,
            f32::INFINITY,
            f32::INFINITY,
            f32::INFINITY,
            f32::INFINITY,
            f32::INFINITY,
            f32::INFINITY,
        );
        for p in 0..np {
            let dv = _mm256_castps128_ps256(_mm_loadu_ps(nn.d[p].as_ptr()));
            let c0 = _mm256_add_ps(
                _mm256_permutevar8x32_ps(cost, p0),
                _mm256_permutevar8x32_ps(dv, sub0),
            );
            let c1 = _mm256_add_ps(
                _mm256_permutevar8x32_ps(cost, p1),
                _mm256_permutevar8x32_ps(dv, sub1),
            );
            let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(c1, c0);
            cost = _mm256_blendv_ps(c0, c1, lt);
            nn.back[p] = _mm256_movemask_ps(lt) as u8;
        }
        let mut c = [0f32; 8];
        _mm256_storeu_ps(c.as_mut_ptr(), cost);
        // Traceback as in the scalar path, resolving the chosen subset's candidate slot.
        let mut s = 0;
        for t in 1..8 {
            if c[t] < c[s] {
                s = t;
            }
        }
        let total = c[s];
        for p in (0..np).rev() {
            let ps = (s >> 1) | (((nn.back[p] >> s) & 1) as usize) << 2;
            let b = s & 1;
            let z = SUB[ps][b] as usize;
            let (k, mirror) = if nn.cell[p] == u16::MAX {
                (nn.k[p][z], nn.m[p][z])
            } else {
                let sl = nn.slot[p][z];
                let (k, m) = book_of(p).vmeta[nn.cell[p] as usize][(sl & 63) as usize];
                (k, m ^ (sl >> 6))
            };
            out[p] = Coded {
                branch: b as u8,
                k,
                mirror,
            };
            s = ps;
        }
        total
    }
}
