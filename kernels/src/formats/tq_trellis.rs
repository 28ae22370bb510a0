//! The encoder's search for the trellis types (informative: docs/turboquant.md §12): the
//! nearest point of each of the 4 subsets of a pair code to every coordinate pair (a grid of
//! candidate lists per table), and the Viterbi search of the 8-state trellis. The scalar path is
//! the reference; the AVX-512 path does exactly its arithmetic (no FMA, first-minimum ties) and
//! gives the same bytes.

// Index loops over the 4 subsets and the 8 trellis states read better than iterator chains.
#![allow(clippy::needless_range_loop)]

use super::tq_tables::pair_table;
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
    /// Their coordinates, for [`Book::cell_list`] (padded to a multiple of 16).
    xs: [Vec<f32>; 4],
    ys: [Vec<f32>; 4],
}

/// `max` as a compare-and-select (one `maxps`; the same value as `f32::max` for the non-NaN
/// inputs of [`Book::cell_list`], where only squares of the result are used).
#[inline(always)]
fn mx(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// `min` as a compare-and-select (see [`mx`]).
#[inline(always)]
fn mn(a: f32, b: f32) -> f32 {
    if a < b {
        a
    } else {
        b
    }
}

/// The values, then 1e6 up to a multiple of 16.
fn padded(v: impl Iterator<Item = f32>) -> Vec<f32> {
    let mut v: Vec<f32> = v.collect();
    v.resize(v.len().next_multiple_of(16), 1e6);
    v
}

/// The longest subset list (`2^(b+1) / 4` points at the widest table, b = 9).
const MAX_SUBSET: usize = 256;

impl Book {
    fn new(bits: u32) -> Book {
        let t = pair_table(bits);
        let per = 1usize << (bits - 3);
        let pts: Vec<[f32; 2]> = t.iter().map(|p| [p[0] as f32, p[1] as f32]).collect();
        // All mirror images, grouped by the subset they belong to in the folded plane (entry k
        // has label k / per; its mirror image by `mirror` is in subset label ^ mirror).
        let mut all: [Vec<Cand>; 4] = Default::default();
        for (k, p) in pts.iter().enumerate() {
            for mirror in 0..4u8 {
                let x = if mirror & 1 == 1 { -p[0] } else { p[0] };
                let y = if mirror & 2 == 2 { -p[1] } else { p[1] };
                all[((k / per) as u8 ^ mirror) as usize].push(Cand {
                    x,
                    y,
                    k: k as u16,
                    mirror,
                });
            }
        }
        let ncell = if bits >= 8 { 64 } else { 32 };
        let cw = EXTENT / ncell as f32;
        let mut book = Book {
            pts,
            cand: Vec::new(),
            width: 0,
            ncell,
            cell: cw,
            // Padded to whole vectors of 16 with far-away points (never the bound, never kept).
            xs: core::array::from_fn(|z| padded(all[z].iter().map(|c| c.x))),
            ys: core::array::from_fn(|z| padded(all[z].iter().map(|c| c.y))),
            all,
        };
        let lists = book.grid_lists(ncell);
        let width = lists.iter().map(|l| l.len()).max().unwrap();
        let dummy = Cand {
            x: 1e6,
            y: 1e6,
            k: 0,
            mirror: 0,
        };
        for l in &lists {
            book.cand.extend(
                l.iter()
                    .copied()
                    .chain(std::iter::repeat(dummy))
                    .take(width),
            );
        }
        book.width = width;
        book
    }

    /// [`Book::cell_list`] of every cell of an `ncell` × `ncell` grid over the folded quadrant
    /// `[0, EXTENT)²` and every folded subset, in the order (row `cy`, column `cx`, subset `z`).
    ///
    /// Two levels: the list of a block of [`COARSE`] × [`COARSE`] cells first (over all
    /// points), then each cell's list over that block list only. Same lists as the one-level
    /// search over all points (`lists_equal_the_one_level_search`): a point kept for a cell is
    /// within the cell's bound of it, hence within the (larger) block bound of the (larger)
    /// block, and the point giving the cell's bound is kept for the block too; every value
    /// compared is the same f32 of the same formula (every rounding step is monotone), and the
    /// block list keeps the order of `all`.
    /// Bands of coarse rows run on scoped OS threads (not rayon: this runs inside `OnceLock`
    /// initializers, and a rayon worker waiting here could steal a job that asks for the same
    /// table — a re-entrant initialization, i.e. a deadlock). The lists do not depend on each
    /// other and are concatenated in order: the same tables whatever the thread count.
    fn grid_lists(&self, ncell: usize) -> Vec<Vec<Cand>> {
        assert!(ncell.is_multiple_of(COARSE), "grid of {ncell} cells");
        let cw = EXTENT / ncell as f32;
        // The span of block c along one axis: its first cell's lower edge and its last cell's
        // upper edge, the same f32 values the cells use.
        let span = |c: usize| {
            let lo = (COARSE * c) as f32 * cw;
            let hi = (COARSE * c + COARSE - 1) as f32 * cw + cw;
            (lo, hi)
        };
        let ncoarse = ncell / COARSE;
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .clamp(1, 8);
        let band = ncoarse.div_ceil(threads);
        let coarse_row = |cr: usize| -> Vec<Vec<Cand>> {
            let (y0, y1) = span(cr);
            let sup: Vec<[Vec<Cand>; 4]> = (0..ncoarse)
                .map(|cc| {
                    let (x0, x1) = span(cc);
                    core::array::from_fn(|z| self.cell_list(z, x0, y0, x1, y1))
                })
                .collect();
            let mut out = Vec::with_capacity(COARSE * ncell * 4);
            for cy in COARSE * cr..COARSE * (cr + 1) {
                for cx in 0..ncell {
                    let (x0, y0) = (cx as f32 * cw, cy as f32 * cw);
                    for z in 0..4 {
                        let s = &sup[cx / COARSE][z];
                        out.push(cell_list_in(s, x0, y0, x0 + cw, y0 + cw));
                    }
                }
            }
            out
        };
        std::thread::scope(|sc| {
            let handles: Vec<_> = (0..ncoarse)
                .step_by(band)
                .map(|c0| {
                    let coarse_row = &coarse_row;
                    sc.spawn(move || {
                        (c0..(c0 + band).min(ncoarse))
                            .flat_map(coarse_row)
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("book table thread"))
                .collect()
        })
    }

    /// The candidates of folded subset `z` that can be nearest somewhere in the cell
    /// `[x0, x1] × [y0, y1]` (those whose smallest distance to the cell is at most the smallest
    /// farthest distance of any candidate), in the order of the subset's list. Branch-free
    /// passes over the coordinates (so that they vectorise) with exactly the f32 values of the
    /// plain formulas: `max(|x − x0|, |x − x1|)` for the farthest, `max(x0 − x, x − x1, 0)` for
    /// the nearest offset.
    fn cell_list(&self, z: usize, x0: f32, y0: f32, x1: f32, y1: f32) -> Vec<Cand> {
        let all = &self.all[z];
        let n = all.len();
        assert!(n <= MAX_SUBSET, "subset list longer than {MAX_SUBSET}");
        let (xs, ys) = (&self.xs[z], &self.ys[z]);
        let mut lanes = [f32::INFINITY; 16];
        let mut near = [0f32; MAX_SUBSET];
        for ((cx, cy), nr) in xs
            .chunks_exact(16)
            .zip(ys.chunks_exact(16))
            .zip(near.chunks_exact_mut(16))
        {
            for l in 0..16 {
                let (x, y) = (cx[l], cy[l]);
                let dx = mx((x - x0).abs(), (x - x1).abs());
                let dy = mx((y - y0).abs(), (y - y1).abs());
                lanes[l] = mn(lanes[l], dx * dx + dy * dy);
                let nx = mx(mx(x0 - x, x - x1), 0.0);
                let ny = mx(mx(y0 - y, y - y1), 0.0);
                nr[l] = nx * nx + ny * ny;
            }
        }
        // The minimum is exact in any order (no NaN here).
        let bound = lanes.into_iter().fold(f32::INFINITY, f32::min);
        let mut out = Vec::with_capacity(32);
        out.extend(
            all.iter()
                .zip(&near[..n])
                .filter(|(_, &d)| d <= bound)
                .map(|(c, _)| *c),
        );
        out
    }

    /// Nearest point of each folded subset to the folded point (ax, ay) (table units):
    /// `(distance², k, mirror)` per subset.
    #[inline]
    pub(crate) fn nearest4(&self, ax: f32, ay: f32) -> [(f32, u16, u8); 4] {
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

    /// Folded subset `z`'s whole candidate list (what [`Book::nearest4`] scans for a point
    /// outside the grid): its coordinates `x`, `y` (padded to a multiple of 16) and its length.
    pub(crate) fn far(&self, z: usize) -> (&[f32], &[f32], usize) {
        (&self.xs[z], &self.ys[z], self.all[z].len())
    }

    /// Entry and mirror of candidate `i` of [`Book::far`]`(z)`.
    pub(crate) fn far_entry(&self, z: usize, i: usize) -> (u16, u8) {
        let c = &self.all[z][i];
        (c.k, c.mirror)
    }
}

/// Cells per side of a block of the two-level list search in [`Book::new`].
const COARSE: usize = 8;

/// [`Book::cell_list`] over the candidates `cands` only (in their order): the same formulas,
/// scalar.
fn cell_list_in(cands: &[Cand], x0: f32, y0: f32, x1: f32, y1: f32) -> Vec<Cand> {
    let mut bound = f32::INFINITY;
    for c in cands {
        let dx = mx((c.x - x0).abs(), (c.x - x1).abs());
        let dy = mx((c.y - y0).abs(), (c.y - y1).abs());
        bound = mn(bound, dx * dx + dy * dy);
    }
    cands
        .iter()
        .filter(|c| {
            let nx = mx(mx(x0 - c.x, c.x - x1), 0.0);
            let ny = mx(mx(y0 - c.y, c.y - y1), 0.0);
            nx * nx + ny * ny <= bound
        })
        .copied()
        .collect()
}

pub(crate) fn book(bits: u32) -> &'static Book {
    static BOOKS: [OnceLock<Book>; 10] = [const { OnceLock::new() }; 10];
    BOOKS[bits as usize].get_or_init(|| Book::new(bits))
}

/// Test support for the vector encoders' far-point searches (`x86::tq_encode*`): checks
/// `search` against [`Book::nearest4`] on `pts` and, for every table, on points right of the
/// grid level with the midpoint of two candidates of a subset in one column (both at the same
/// distance, often the least: a tie that the first-minimum rule decides), bit for bit, and that
/// at least 50 searches had a tied minimum.
#[cfg(test)]
pub(crate) fn check_far_search(
    pts: &[(f32, f32)],
    search: impl Fn(&Book, f32, f32) -> [(f32, u16, u8); 4],
) {
    let mut ties = 0;
    for bits in 3..=9 {
        let bk = book(bits);
        let mut level = Vec::new();
        for z in 0..4 {
            let (xs, ys, n) = bk.far(z);
            for i in 0..n {
                for j in i + 1..n {
                    if xs[i] == xs[j] && ys[i] != ys[j] && level.len() < 64 * (z + 1) {
                        level.push((xs[i].abs() + 130.0, ((ys[i] + ys[j]) / 2.0).abs()));
                    }
                }
            }
        }
        for &(x, y) in pts.iter().chain(&level) {
            let got = search(bk, x, y);
            let want = bk.nearest4(x, y);
            for z in 0..4 {
                assert_eq!(
                    (got[z].0.to_bits(), got[z].1, got[z].2),
                    (want[z].0.to_bits(), want[z].1, want[z].2),
                    "{bits}-bit table, point ({x}, {y}), subset {z}"
                );
                let (xs, ys, n) = bk.far(z);
                let at_min = (0..n)
                    .filter(|&i| {
                        let (dx, dy) = (x - xs[i], y - ys[i]);
                        dx * dx + dy * dy == want[z].0
                    })
                    .count();
                ties += usize::from(at_min > 1);
            }
        }
    }
    assert!(ties >= 50, "only {ties} searches with a tied minimum");
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

/// One coded pair (`repr(C)`: the vector traceback writes it as the 32-bit word
/// `branch | mirror << 8 | k << 16`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Coded {
    pub(crate) branch: u8,
    /// Sign bits (mx | my << 1).
    pub(crate) mirror: u8,
    /// Table entry.
    pub(crate) k: u16,
}

/// Subset of the branch from state `s` with bit `b` (`SUB[s][b]`).
pub(crate) const SUB: [[u8; 2]; 8] = {
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
}

impl Nn {
    pub(crate) fn new(np: usize) -> Self {
        Nn {
            d: vec![[0.0; 4]; np],
            k: vec![[0; 4]; np],
            m: vec![[0; 4]; np],
            back: vec![0; np],
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
) -> f32 {
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

/// Cells per side of the vector encoder's grid ([`VLines`]).
pub(crate) const VCELLS: usize = 64;

/// The vector encoder's candidate lines of one pair table: a 64×64 grid of 2-unit cells over
/// the folded quadrant [0, 128)² (table units); per cell the candidates of each folded subset
/// that can be nearest somewhere in the cell (in the order of the scalar search's lists, padded
/// to 4 by repeating the last one), slot-major: `x[4s + z]`, `y[4s + z]` for slot `s`, subset
/// `z`, as f32 (the table's coordinates are integers in −127..=127: exact), and their table
/// entries and mirrors. A cell where some subset has more than 4 candidates (9 of 4096 cells of the
/// 9-bit table, 1 of the 8-bit one, none of the others) also has a line of 8 slots per subset
/// (`xy8`, `meta8`, at index `long[cell]`), and its 4-slot line is all NaN.
pub(crate) struct VLines {
    /// Per cell: the coordinates of its 16 lanes.
    pub(crate) xy: Vec<Line4>,
    /// Per cell and lane `4s + z`: `k | mirror << 8` (table entry, mirror) of the candidate.
    pub(crate) meta: Vec<[u16; 16]>,
    /// Per cell: the index of its 8-slot line, or −1 (i32, so that the vector search can
    /// gather it).
    pub(crate) long: Vec<i32>,

    /// Per cell: its 16 lanes' coordinates as bf16 in one 64-byte line ([`Line64`]; the AVX2
    /// encoder's copy: half of `xy`'s bytes, so that the 9-bit table's lines fit a 512 KiB L2;
    /// the AVX2 traceback reads `meta`). A long cell's coordinates here are zeros: all 16
    /// lanes then tie, which the search takes as its mark. A slot past the end of its subset's
    /// list holds [`PAD_FAR`] instead of the repeated last candidate, so that it never ties.
    pub(crate) packed: Vec<Line64>,

    /// 8-slot lines of the long cells: 32 x values, then 32 y values.
    pub(crate) xy8: Vec<Line8>,
    /// Per long cell and lane `4s + z`: (table entry, mirror).
    pub(crate) meta8: Vec<[(u8, u8); 32]>,
}

/// The coordinates of a cell's 16 candidate lanes: 16 x values, then 16 y values (64-byte
/// aligned: each half is one cache line and one aligned 512-bit load).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Line4(pub(crate) [f32; 32]);

/// A cell's 16 candidate lanes in one cache line: their x, then their y coordinates as bf16
/// (the upper half of the f32 bits; exact, the table's coordinates being integers in
/// −127..=127). Per coordinate, 32-bit word `j` (j < 8) holds lane `j` in its upper half and
/// lane `8 + j` in its lower half, so that one 256-bit load gives lanes 0..8 as f32 by a mask of
/// the upper halves and lanes 8..16 by a 16-bit left shift.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Line64 {
    /// x: u16 `2j` = lane `8 + j`, u16 `2j + 1` = lane `j`.
    pub(crate) x: [u16; 16],
    /// y, in the same order.
    pub(crate) y: [u16; 16],
}

/// The coordinates of a long cell's 32 candidate lanes: 32 x values, then 32 y values.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Line8(pub(crate) [f32; 64]);

/// The coordinates of [`VLines::packed`]'s padding slots (beyond the end of a subset's list):
/// −2^20 (exact in bf16). From a folded point of the grid ([0, 128)²) its squared distance is
/// at least 2^41, far above any real candidate's (below 2·255²), and finite: never the minimum.
const PAD_FAR: f32 = -1_048_576.0;

/// The [`VLines`] of the `bits`-bit pair table.
pub(crate) fn vlines(bits: u32) -> &'static VLines {
    static LINES: [OnceLock<VLines>; 10] = [const { OnceLock::new() }; 10];
    LINES[bits as usize].get_or_init(|| {
        let bk = book(bits);
        let n = VCELLS * VCELLS;
        let mut v = VLines {
            xy: Vec::with_capacity(n),
            meta: Vec::with_capacity(n),
            packed: Vec::with_capacity(n),
            long: Vec::with_capacity(n),
            xy8: Vec::new(),
            meta8: Vec::new(),
        };
        let grid = bk.grid_lists(VCELLS);
        for cy in 0..VCELLS {
            for cx in 0..VCELLS {
                let lists = &grid[4 * (cy * VCELLS + cx)..4 * (cy * VCELLS + cx + 1)];
                let line = |slots: usize, xy: &mut [f32], mm: &mut [(u8, u8)]| {
                    for (z, list) in lists.iter().enumerate() {
                        assert!(
                            list.len() <= 8,
                            "candidate list too long for the vector path"
                        );
                        for s in 0..slots {
                            let c = list[s.min(list.len() - 1)];
                            xy[4 * s + z] = c.x;
                            xy[4 * slots + 4 * s + z] = c.y;
                            mm[4 * s + z] = (c.k as u8, c.mirror);
                        }
                    }
                };
                let mut l = Line4([0.0; 32]);
                let mut mm = [(0u8, 0u8); 16];
                let long = lists.iter().any(|l| l.len() > 4);
                if long {
                    // No lane can be the minimum: the vector search sends the pair to the
                    // 8-slot line.
                    l.0 = [f32::NAN; 32];
                } else {
                    line(4, &mut l.0, &mut mm);
                }
                let meta = mm.map(|(k, m)| k as u16 | (m as u16) << 8);
                let mut pk = Line64 {
                    x: [0; 16],
                    y: [0; 16],
                };
                if !long {
                    let bf = |c: f32| {
                        // The table's coordinates are integers in −127..=127: bf16 is exact.
                        assert!(
                            c == c.trunc() && (c.abs() <= 127.0 || c == PAD_FAR),
                            "coordinate {c}"
                        );
                        assert!(c.to_bits() & 0xffff == 0);
                        (c.to_bits() >> 16) as u16
                    };
                    for lane in 0..16 {
                        let o = if lane < 8 {
                            2 * lane + 1
                        } else {
                            2 * (lane - 8)
                        };
                        // A slot past the end of its subset's list holds PAD_FAR, which is
                        // never nearest (so that a cell whose subsets each have one candidate
                        // does not tie all 16 lanes, the long cells' mark).
                        let (c, z) = (lane / 4, lane % 4);
                        if c < lists[z].len() {
                            pk.x[o] = bf(l.0[lane]);
                            pk.y[o] = bf(l.0[16 + lane]);
                        } else {
                            pk.x[o] = bf(PAD_FAR);
                            pk.y[o] = bf(PAD_FAR);
                        }
                    }
                }
                v.packed.push(pk);
                v.xy.push(l);
                v.meta.push(meta);
                if long {
                    let mut l8 = Line8([0.0; 64]);
                    let mut m8 = [(0u8, 0u8); 32];
                    line(8, &mut l8.0, &mut m8);
                    v.long.push(v.xy8.len() as i32);
                    v.xy8.push(l8);
                    v.meta8.push(m8);
                } else {
                    v.long.push(-1);
                }
            }
        }
        v
    })
}

#[cfg(test)]
mod tests {
    /// The two-level search of `Book::new` gives exactly the lists of the one-level search
    /// (every cell's list over all points), for every table width.
    #[test]
    fn lists_equal_the_one_level_search() {
        for bits in 3..=9 {
            let b = super::book(bits);
            let mut want = Vec::new();
            for cy in 0..b.ncell {
                for cx in 0..b.ncell {
                    let (x0, y0) = (cx as f32 * b.cell, cy as f32 * b.cell);
                    for z in 0..4 {
                        want.push(b.cell_list(z, x0, y0, x0 + b.cell, y0 + b.cell));
                    }
                }
            }
            assert_eq!(
                b.width,
                want.iter().map(|l| l.len()).max().unwrap(),
                "{bits} bits"
            );
            // The vector encoder's grid (64 × 64 cells for every width).
            let n = super::VCELLS;
            let cw = super::EXTENT / n as f32;
            let grid = b.grid_lists(n);
            let key = |c: &super::Cand| (c.x.to_bits(), c.y.to_bits(), c.k, c.mirror);
            for cy in 0..n {
                for cx in 0..n {
                    let (x0, y0) = (cx as f32 * cw, cy as f32 * cw);
                    for z in 0..4 {
                        let l = b.cell_list(z, x0, y0, x0 + cw, y0 + cw);
                        let g = &grid[4 * (cy * n + cx) + z];
                        let (l, g): (Vec<_>, Vec<_>) =
                            (l.iter().map(key).collect(), g.iter().map(key).collect());
                        assert_eq!(
                            g, l,
                            "{bits} bits, vector grid cell ({cx}, {cy}), subset {z}"
                        );
                    }
                }
            }
            for (i, l) in want.iter().enumerate() {
                let got = &b.cand[i * b.width..(i + 1) * b.width];
                for (j, c) in got.iter().enumerate() {
                    let key = |c: &super::Cand| (c.x.to_bits(), c.y.to_bits(), c.k, c.mirror);
                    if j < l.len() {
                        assert_eq!(key(c), key(&l[j]), "{bits} bits, list {i}, entry {j}");
                    } else {
                        assert_eq!(c.x, 1e6, "{bits} bits, list {i}: padding at {j}");
                    }
                }
            }
        }
    }
}
