//! The scale searches of [`crate::formats::search`] with one sub-block per lane.
//!
//! Layout: a batch of `nl = N·LANES` sub-blocks of `n` elements is stored transposed, element
//! `i` of lane `j` at `[i·nl + j]`, so `N` registers hold element `i` of every lane. Each lane
//! performs the scalar function's f32 operations in the scalar order; a branch becomes a lane
//! mask and both sides are computed (the side not taken is discarded, so stray infinities and
//! NaNs there are harmless). `N` independent registers per step give the CPU independent
//! dependency chains.
//!
//! Where the scalar code copies a candidate's levels on an improvement, these kernels keep the
//! candidate's inverse scale and offset instead and recompute the levels at the end: the
//! levels are a pure function of them, so the bits are the same.
//!
//! `nearest_int` is emulated bit for bit (it returns garbage, deterministically, beyond 2²²);
//! where bounds computed per candidate show that every lane that matters stays within ±2²¹
//! and holds only finite values, the candidate's levels come from plain f32 rounding instead,
//! which is then the same value.

use super::Simd;
use crate::formats::search::AffineSearch;
use crate::num::{GROUP_MAX_EPS, QK_K};

/// Longest sub-block.
pub(crate) const MAX_N: usize = 32;
/// Most lanes in one batch (four 16-lane registers).
pub(crate) const MAX_LANES: usize = 64;

/// A transposed batch: `x` (and weights, levels) of up to [`MAX_LANES`] sub-blocks of up to
/// [`MAX_N`] elements.
pub(crate) struct Batch {
    /// Sub-block length.
    pub n: usize,
    /// Lanes in the batch (`N·LANES`).
    pub nl: usize,
    /// Values, `[i·nl + j]`.
    pub x: [f32; MAX_N * MAX_LANES],
    /// Weights (or importance before they are turned into weights), same layout.
    pub w: [f32; MAX_N * MAX_LANES],
    /// Levels, same layout.
    pub l: [i32; MAX_N * MAX_LANES],
    /// Levels in row order (sub-block `j`, element `i` at `[j·n + i]`), as bytes: see
    /// [`Batch::levels_to_rows`].
    pub rows: [u8; MAX_N * MAX_LANES],
    /// One value per lane: scale.
    pub scale: [f32; MAX_LANES],
    /// One value per lane: min (as returned, i.e. negated), or the second per-lane input.
    pub min: [f32; MAX_LANES],
    /// One value per lane: sum of weights, or another per-lane input.
    pub aux: [f32; MAX_LANES],
    /// Scratch for [`Batch::levels_to_rows`].
    tmp: [i32; MAX_N * MAX_LANES],
}

impl Batch {
    /// A zeroed batch (allocate one per thread and [`Batch::reset`] it per batch).
    pub(crate) fn new() -> Batch {
        Batch {
            n: 1,
            nl: 1,
            x: [0.0; MAX_N * MAX_LANES],
            w: [0.0; MAX_N * MAX_LANES],
            l: [0; MAX_N * MAX_LANES],
            rows: [0; MAX_N * MAX_LANES],
            scale: [0.0; MAX_LANES],
            min: [0.0; MAX_LANES],
            aux: [0.0; MAX_LANES],
            tmp: [0; MAX_N * MAX_LANES],
        }
    }

    /// Sets the geometry for the next batch: `nl` lanes of `n` elements.
    pub(crate) fn reset(&mut self, n: usize, nl: usize) {
        assert!(n <= MAX_N && nl <= MAX_LANES && n > 0 && nl > 0);
        (self.n, self.nl) = (n, nl);
    }

    /// Transposes `src` (whole sub-blocks, at most `nl` of them) into `dst`; the lanes past
    /// its end become zeros.
    #[inline(always)]
    unsafe fn transpose<S: Simd>(n: usize, nl: usize, src: &[f32], dst: &mut [f32]) {
        let used = src.len() / n;
        assert!(
            used <= nl
                && src.len() == used * n
                && nl.is_multiple_of(S::LANES)
                && n.is_multiple_of(S::LANES)
        );
        assert!(dst.len() >= n * nl);
        for first in (0..nl).step_by(S::LANES) {
            if first + S::LANES <= used {
                for c in (0..n).step_by(S::LANES) {
                    // SAFETY: the tile reads rows first..first + LANES (< used) of `src`,
                    // elements c..c + LANES (≤ n), and writes elements c..c + LANES of lanes
                    // first..first + LANES (≤ nl) of `dst`; all in bounds by the asserts.
                    S::transpose(
                        src.as_ptr().add(first * n + c),
                        n,
                        dst.as_mut_ptr().add(c * nl + first),
                        nl,
                    );
                }
            } else {
                for j in first..first + S::LANES {
                    for i in 0..n {
                        dst[i * nl + j] = if j < used { src[j * n + i] } else { 0.0 };
                    }
                }
            }
        }
    }

    /// Loads the values of consecutive sub-blocks (`src.len()` a multiple of `n`, at most `nl`
    /// sub-blocks; the remaining lanes are zero).
    ///
    /// # Safety
    /// `S`'s CPU feature must be present.
    #[inline(always)]
    pub(crate) unsafe fn load_x<S: Simd>(&mut self, src: &[f32]) {
        Self::transpose::<S>(self.n, self.nl, src, &mut self.x);
    }

    /// Loads per-element importance into [`Batch::w`], like [`Batch::load_x`].
    ///
    /// # Safety
    /// `S`'s CPU feature must be present.
    #[inline(always)]
    pub(crate) unsafe fn load_w<S: Simd>(&mut self, src: &[f32]) {
        Self::transpose::<S>(self.n, self.nl, src, &mut self.w);
    }

    /// Transposes the levels back to row order, as bytes (the low byte of each level, as C
    /// stores an int in a byte), into [`Batch::rows`]: the levels of the batch's super-block
    /// `s` are `rows[256·s..256·(s + 1)]`.
    ///
    /// # Safety
    /// `S`'s CPU feature must be present.
    #[inline(always)]
    pub(crate) unsafe fn levels_to_rows<S: Simd>(&mut self) {
        let (n, nl) = (self.n, self.nl);
        assert!(nl.is_multiple_of(S::LANES) && n.is_multiple_of(S::LANES));
        let src = self.l.as_ptr() as *const f32;
        let dst = self.tmp.as_mut_ptr() as *mut f32;
        for first in (0..nl).step_by(S::LANES) {
            for c in (0..n).step_by(S::LANES) {
                // SAFETY: reads elements c..c + LANES (≤ n) of lanes first..first + LANES
                // (≤ nl) and writes sub-blocks first..first + LANES, elements c..c + LANES:
                // both within the n·nl ≤ MAX_N·MAX_LANES values of the arrays.
                S::transpose(src.add(c * nl + first), nl, dst.add(first * n + c), n);
            }
        }
        for (r, &t) in self.rows[..n * nl].iter_mut().zip(&self.tmp[..n * nl]) {
            *r = t as u8;
        }
    }

    /// The levels of super-block `s` of the batch, after [`Batch::levels_to_rows`].
    pub(crate) fn row_levels(&self, s: usize) -> &[u8; QK_K] {
        self.rows[s * QK_K..(s + 1) * QK_K].try_into().unwrap()
    }
}

/// Pointer to element `i` of register `k` in a transposed array.
#[inline(always)]
fn at<S: Simd>(nl: usize, i: usize, k: usize) -> usize {
    i * nl + k * S::LANES
}

/// Loads register `k` of element `i` of a transposed array.
#[inline(always)]
unsafe fn ld<S: Simd>(p: *const f32, nl: usize, i: usize, k: usize) -> S::F {
    S::load(p.add(at::<S>(nl, i, k)))
}

/// `nearest_int(iscale·(x - min)).clamp(lo, hi)`.
#[inline(always)]
unsafe fn level_affine<S: Simd>(iscale: S::F, x: S::F, min: S::F, lo: S::I, hi: S::I) -> S::I {
    S::clamp_i(S::nearest_int(S::mul(iscale, S::sub(x, min))), lo, hi)
}

/// `nearest_int(iscale·x).clamp(lo, hi)`.
#[inline(always)]
unsafe fn level_sym<S: Simd>(iscale: S::F, x: S::F, lo: S::I, hi: S::I) -> S::I {
    S::clamp_i(S::nearest_int(S::mul(iscale, x)), lo, hi)
}

/// The error of a difference: absolute (`MAD`) or squared.
#[inline(always)]
unsafe fn err<S: Simd, const MAD: bool>(d: S::F) -> S::F {
    if MAD {
        S::abs(d)
    } else {
        S::mul(d, d)
    }
}

/// Checks the batch geometry the kernels rely on for their unchecked accesses.
#[inline(always)]
fn check<S: Simd, const N: usize>(b: &Batch) {
    assert!(b.nl == N * S::LANES && b.n <= MAX_N && b.nl <= MAX_LANES && b.n > 0);
}

/// Vertical weights `av_x + |x|` with `av_x = sqrt(Σx² / n)` of the lane's own sub-block
/// (`quantize_row_q4_K_ref`'s weights), into [`Batch::w`].
///
/// # Safety
/// `S`'s CPU feature must be present.
#[inline(always)]
pub(crate) unsafe fn weights_rms_abs<S: Simd, const N: usize>(b: &mut Batch) {
    check::<S, N>(b);
    let (n, nl) = (b.n, b.nl);
    let xp = b.x.as_ptr();
    let wp = b.w.as_mut_ptr();
    let mut s = [S::splat(0.0); N];
    for i in 0..n {
        for (k, s) in s.iter_mut().enumerate() {
            let x = S::load(xp.add(at::<S>(nl, i, k)));
            *s = S::add(*s, S::mul(x, x));
        }
    }
    let mut av = [S::splat(0.0); N];
    for k in 0..N {
        av[k] = S::sqrt(S::div(s[k], S::splat(n as f32)));
    }
    for i in 0..n {
        for (k, av) in av.iter().enumerate() {
            let x = S::load(xp.add(at::<S>(nl, i, k)));
            S::store(wp.add(at::<S>(nl, i, k)), S::add(*av, S::abs(x)));
        }
    }
}

/// Vertical weights `|x|` (`quantize_row_q2_K_ref`), into [`Batch::w`].
///
/// # Safety
/// `S`'s CPU feature must be present.
#[inline(always)]
pub(crate) unsafe fn weights_abs<S: Simd, const N: usize>(b: &mut Batch) {
    check::<S, N>(b);
    let len = b.n * b.nl;
    let xp = b.x.as_ptr();
    let wp = b.w.as_mut_ptr();
    for e in (0..len).step_by(S::LANES) {
        S::store(wp.add(e), S::abs(S::load(xp.add(e))));
    }
}

/// Vertical weights `x²` (`quantize_row_q6_K_ref`), into [`Batch::w`].
///
/// # Safety
/// `S`'s CPU feature must be present.
#[inline(always)]
pub(crate) unsafe fn weights_sq<S: Simd, const N: usize>(b: &mut Batch) {
    check::<S, N>(b);
    let len = b.n * b.nl;
    let xp = b.x.as_ptr();
    let wp = b.w.as_mut_ptr();
    for e in (0..len).step_by(S::LANES) {
        let x = S::load(xp.add(e));
        S::store(wp.add(e), S::mul(x, x));
    }
}

/// Vertical weights `q·sqrt(σ² + x²)` from the importance `q` in [`Batch::w`] and σ² per lane
/// in [`Batch::aux`], in place.
///
/// # Safety
/// `S`'s CPU feature must be present.
#[inline(always)]
pub(crate) unsafe fn weights_imatrix<S: Simd, const N: usize>(b: &mut Batch) {
    check::<S, N>(b);
    let (n, nl) = (b.n, b.nl);
    let xp = b.x.as_ptr();
    let wp = b.w.as_mut_ptr();
    for k in 0..N {
        let sigma2 = S::load(b.aux.as_ptr().add(k * S::LANES));
        for i in 0..n {
            let e = at::<S>(nl, i, k);
            let x = S::load(xp.add(e));
            let q = S::load(wp.add(e));
            S::store(wp.add(e), S::mul(q, S::sqrt(S::add(sigma2, S::mul(x, x)))));
        }
    }
}

/// Per-lane sums of the weights in element order (from zero), into [`Batch::aux`].
///
/// # Safety
/// `S`'s CPU feature must be present.
#[inline(always)]
pub(crate) unsafe fn weight_sums<S: Simd, const N: usize>(b: &mut Batch) {
    check::<S, N>(b);
    let (n, nl) = (b.n, b.nl);
    let wp = b.w.as_ptr();
    let mut s = [S::splat(0.0); N];
    for i in 0..n {
        for (k, s) in s.iter_mut().enumerate() {
            *s = S::add(*s, S::load(wp.add(at::<S>(nl, i, k))));
        }
    }
    for (k, s) in s.iter().enumerate() {
        S::store(b.aux.as_mut_ptr().add(k * S::LANES), *s);
    }
}

/// Three values of one type.
type Three<T> = (T, T, T);

/// Four values of one type.
type Four<T> = (T, T, T, T);

/// Largest magnitude of `iscale·x` for which the kernels round in f32 instead of emulating
/// `nearest_int` bit by bit (it is exact below 2²²).
const FAST_LIMIT: f32 = 2_097_152.0;

/// Whether `|v| <= FAST_LIMIT` (false for NaN).
#[inline(always)]
unsafe fn in_range<S: Simd>(v: S::F) -> S::M {
    S::le(S::abs(v), S::splat(FAST_LIMIT))
}

/// Per lane: whether every value of the lane is finite.
#[inline(always)]
unsafe fn all_finite<S: Simd, const N: usize>(b: &Batch) -> [S::M; N] {
    let mut ok = [S::splat_m(true); N];
    for i in 0..b.n {
        for (k, ok) in ok.iter_mut().enumerate() {
            let x = ld::<S>(b.x.as_ptr(), b.nl, i, k);
            *ok = S::and(*ok, S::le(S::abs(x), S::splat(f32::MAX)));
        }
    }
    ok
}

/// `clamp(nearest_int(v), lo, hi) as f32`, for `|v| <= FAST_LIMIT` when `FAST`: then
/// `v + 1.5·2²³` is exactly the rounded value plus 1.5·2²³, in [2²³, 2²⁴) where the bits grow
/// with the value, so the clamp works on the bits and one subtraction gives the level.
#[inline(always)]
unsafe fn level_f<S: Simd, const FAST: bool>(v: S::F, lo: f32, hi: f32) -> S::F {
    if FAST {
        const MAGIC_BITS: i32 = 0x4b40_0000;
        let magic = S::splat(12_582_912.0);
        let y = S::bits(S::add(v, magic));
        let lo = S::splat_i(MAGIC_BITS + lo as i32);
        let hi = S::splat_i(MAGIC_BITS + hi as i32);
        S::sub(S::from_bits(S::clamp_i(y, lo, hi)), magic)
    } else {
        S::to_f(S::clamp_i(
            S::nearest_int(v),
            S::splat_i(lo as i32),
            S::splat_i(hi as i32),
        ))
    }
}

/// The first pass of one `make_qkx_quants` candidate: the levels into `laux` and Σ w·l,
/// Σ w·l², Σ w·l·x.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn qkx_sums<S: Simd, const N: usize, const FAST: bool>(
    n: usize,
    nl: usize,
    xp: *const f32,
    wp: *const f32,
    iscale: &[S::F; N],
    min: &[S::F; N],
    nmax: i32,
    laux: &mut [[S::F; N]; MAX_N],
) -> Three<[S::F; N]> {
    let zero = S::splat(0.0);
    let (mut sum_l, mut sum_l2, mut sum_xl) = ([zero; N], [zero; N], [zero; N]);
    for (i, laux) in laux.iter_mut().enumerate().take(n) {
        for k in 0..N {
            let xi = ld::<S>(xp, nl, i, k);
            let l = level_f::<S, FAST>(S::mul(iscale[k], S::sub(xi, min[k])), 0.0, nmax as f32);
            laux[k] = l;
            let wl = S::mul(ld::<S>(wp, nl, i, k), l);
            sum_l[k] = S::add(sum_l[k], wl);
            sum_l2[k] = S::add(sum_l2[k], S::mul(wl, l));
            sum_xl[k] = S::add(sum_xl[k], S::mul(wl, xi));
        }
    }
    (sum_l, sum_l2, sum_xl)
}

/// `make_qkx_quants` per lane with the weights in [`Batch::w`]: scale into [`Batch::scale`],
/// the returned (negated) min into [`Batch::min`], levels into [`Batch::l`]. `MAD` is
/// `p.use_mad`.
///
/// # Safety
/// `S`'s CPU feature must be present.
#[inline(always)]
pub(crate) unsafe fn qkx<S: Simd, const N: usize, const MAD: bool>(
    p: &AffineSearch,
    b: &mut Batch,
) {
    check::<S, N>(b);
    assert_eq!(p.use_mad, MAD);
    let (n, nl) = (b.n, b.nl);
    let xp = b.x.as_ptr();
    let wp = b.w.as_ptr();
    let zero = S::splat(0.0);
    let zero_i = S::splat_i(0);
    let nmax_i = S::splat_i(p.nmax);
    let (mut min, mut max, mut sum_w, mut sum_x) = ([zero; N], [zero; N], [zero; N], [zero; N]);
    let finite = all_finite::<S, N>(b);
    for k in 0..N {
        let x0 = ld::<S>(xp, nl, 0, k);
        (min[k], max[k]) = (x0, x0);
        sum_w[k] = ld::<S>(wp, nl, 0, k);
        sum_x[k] = S::mul(sum_w[k], x0);
    }
    for i in 1..n {
        for k in 0..N {
            let (xi, wi) = (ld::<S>(xp, nl, i, k), ld::<S>(wp, nl, i, k));
            min[k] = S::min(xi, min[k]);
            max[k] = S::max(xi, max[k]);
            sum_w[k] = S::add(sum_w[k], wi);
            sum_x[k] = S::add(sum_x[k], S::mul(wi, xi));
        }
    }
    // The lane's smallest and largest values, which bound every `iscale·(x - min)`.
    let (x_lo, x_hi) = (min, max);
    let mut degenerate = [S::none(); N];
    let (mut min0, mut scale, mut best) = ([zero; N], [zero; N], [zero; N]);
    // The inverse scale and offset the current best levels were made with.
    let (mut best_is, mut best_lmin) = ([zero; N], [zero; N]);
    for k in 0..N {
        // `if min > 0 { min = 0 }` (keeps -0 and NaN).
        min[k] = S::min(zero, min[k]);
        degenerate[k] = S::le(max[k], min[k]);
        min0[k] = min[k];
        let iscale = S::div(S::splat(p.nmax as f32), S::sub(max[k], min[k]));
        scale[k] = S::div(S::splat(1.0), iscale);
        best_is[k] = iscale;
        best_lmin[k] = min[k];
    }
    for i in 0..n {
        for k in 0..N {
            let xi = ld::<S>(xp, nl, i, k);
            let l = S::to_f(level_affine::<S>(best_is[k], xi, min[k], zero_i, nmax_i));
            let d = S::sub(S::add(S::mul(scale[k], l), min[k]), xi);
            best[k] = S::add(best[k], S::mul(ld::<S>(wp, nl, i, k), err::<S, MAD>(d)));
        }
    }
    if p.nstep >= 1 {
        let mut laux = [[zero; N]; MAX_N];
        for is in 0..=p.nstep {
            let num = S::splat(p.rmin + p.rdelta * is as f32 + p.nmax as f32);
            let mut iscale = [zero; N];
            for k in 0..N {
                iscale[k] = S::div(num, S::sub(max[k], min[k]));
            }
            // Where every lane that matters stays within ±2²¹, nearest_int is plain rounding
            // and the float path gives the same levels.
            let mut exact = S::none();
            for k in 0..N {
                let lo = S::mul(iscale[k], S::sub(x_lo[k], min[k]));
                let hi = S::mul(iscale[k], S::sub(x_hi[k], min[k]));
                let ok = S::and(S::and(in_range::<S>(lo), in_range::<S>(hi)), finite[k]);
                exact = S::or(
                    exact,
                    S::andnot(S::andnot(S::splat_m(true), degenerate[k]), ok),
                );
            }
            let (sum_l, sum_l2, sum_xl) = if S::any(exact) {
                qkx_sums::<S, N, false>(n, nl, xp, wp, &iscale, &min, p.nmax, &mut laux)
            } else {
                qkx_sums::<S, N, true>(n, nl, xp, wp, &iscale, &min, p.nmax, &mut laux)
            };
            let mut dpos = [S::none(); N];
            let mut any = false;
            let (mut this_scale, mut this_min) = ([zero; N], [zero; N]);
            for k in 0..N {
                let d = S::sub(S::mul(sum_w[k], sum_l2[k]), S::mul(sum_l[k], sum_l[k]));
                dpos[k] = S::gt(d, zero);
                any |= S::any(dpos[k]);
                let ts = S::div(
                    S::sub(S::mul(sum_w[k], sum_xl[k]), S::mul(sum_x[k], sum_l[k])),
                    d,
                );
                let tm = S::div(
                    S::sub(S::mul(sum_l2[k], sum_x[k]), S::mul(sum_l[k], sum_xl[k])),
                    d,
                );
                let pos = S::gt(tm, zero);
                this_min[k] = S::select(pos, zero, tm);
                this_scale[k] = S::select(pos, S::div(sum_xl[k], sum_l2[k]), ts);
            }
            if !any {
                continue;
            }
            let mut cur = [zero; N];
            for (i, laux) in laux.iter().enumerate().take(n) {
                for k in 0..N {
                    let d = S::sub(
                        S::add(S::mul(this_scale[k], laux[k]), this_min[k]),
                        ld::<S>(xp, nl, i, k),
                    );
                    cur[k] = S::add(cur[k], S::mul(ld::<S>(wp, nl, i, k), err::<S, MAD>(d)));
                }
            }
            for k in 0..N {
                let better = S::and(dpos[k], S::lt(cur[k], best[k]));
                best[k] = S::select(better, cur[k], best[k]);
                scale[k] = S::select(better, this_scale[k], scale[k]);
                best_is[k] = S::select(better, iscale[k], best_is[k]);
                best_lmin[k] = S::select(better, min[k], best_lmin[k]);
                min[k] = S::select(better, this_min[k], min[k]);
            }
        }
    }
    let lp = b.l.as_mut_ptr();
    for i in 0..n {
        for k in 0..N {
            let l = level_affine::<S>(
                best_is[k],
                ld::<S>(xp, nl, i, k),
                best_lmin[k],
                zero_i,
                nmax_i,
            );
            S::store_i(
                lp.add(at::<S>(nl, i, k)),
                S::select_i(degenerate[k], zero_i, l),
            );
        }
    }
    for k in 0..N {
        let s = S::select(degenerate[k], zero, scale[k]);
        let m = S::neg(S::select(degenerate[k], min0[k], min[k]));
        S::store(b.scale.as_mut_ptr().add(k * S::LANES), s);
        S::store(b.min.as_mut_ptr().add(k * S::LANES), m);
    }
}

/// The signed element of largest magnitude per lane (first on ties), and whether the lane is
/// all (near) zero.
#[inline(always)]
unsafe fn signed_absmax<S: Simd, const N: usize>(b: &Batch) -> ([S::F; N], [S::M; N]) {
    let (n, nl) = (b.n, b.nl);
    let xp = b.x.as_ptr();
    let zero = S::splat(0.0);
    let (mut amax, mut max) = ([zero; N], [zero; N]);
    for i in 0..n {
        for k in 0..N {
            let x = S::load(xp.add(at::<S>(nl, i, k)));
            let a = S::abs(x);
            let m = S::gt(a, amax[k]);
            amax[k] = S::select(m, a, amax[k]);
            max[k] = S::select(m, x, max[k]);
        }
    }
    let mut zero_lane = [S::none(); N];
    for k in 0..N {
        zero_lane[k] = S::lt(amax[k], S::splat(GROUP_MAX_EPS));
    }
    (max, zero_lane)
}

/// `num / d` per lane.
#[inline(always)]
unsafe fn div_by<S: Simd, const N: usize>(num: f32, d: &[S::F; N]) -> [S::F; N] {
    let mut q = [S::splat(0.0); N];
    for k in 0..N {
        q[k] = S::div(S::splat(num), d[k]);
    }
    q
}

/// Σ w·x·l and Σ w·l² of `make_qx_quants` for two candidate inverse scales at once.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn qx_sums2<S: Simd, const N: usize, const FAST: bool>(
    n: usize,
    nl: usize,
    xp: *const f32,
    wp: *const f32,
    wxp: *const [S::F; N],
    lo: f32,
    hi: f32,
    is: [S::F; N],
    is2: [S::F; N],
) -> Four<[S::F; N]> {
    let zero = S::splat(0.0);
    let (mut lx, mut l2) = ([zero; N], [zero; N]);
    let (mut lx2, mut l22) = ([zero; N], [zero; N]);
    for i in 0..n {
        let wx = &*wxp.add(i);
        for k in 0..N {
            let (x, w) = (ld::<S>(xp, nl, i, k), ld::<S>(wp, nl, i, k));
            let l = level_f::<S, FAST>(S::mul(is[k], x), lo, hi);
            lx[k] = S::add(lx[k], S::mul(wx[k], l));
            l2[k] = S::add(l2[k], S::mul(S::mul(w, l), l));
            let l = level_f::<S, FAST>(S::mul(is2[k], x), lo, hi);
            lx2[k] = S::add(lx2[k], S::mul(wx[k], l));
            l22[k] = S::add(l22[k], S::mul(S::mul(w, l), l));
        }
    }
    (lx, l2, lx2, l22)
}

/// `make_qx_quants` per lane with the weights in [`Batch::w`]: scale into [`Batch::scale`],
/// levels (offset by `nmax`) into [`Batch::l`].
///
/// # Safety
/// `S`'s CPU feature must be present.
#[inline(always)]
pub(crate) unsafe fn qx<S: Simd, const N: usize>(nmax: i32, b: &mut Batch) {
    check::<S, N>(b);
    let (n, nl) = (b.n, b.nl);
    let (max, zero_lane) = signed_absmax::<S, N>(b);
    let finite = all_finite::<S, N>(b);
    let xp = b.x.as_ptr();
    let zero = S::splat(0.0);
    // w·x, the same product in every candidate.
    let mut wx = [[zero; N]; MAX_N];
    for (i, wx) in wx.iter_mut().enumerate().take(n) {
        for (k, wx) in wx.iter_mut().enumerate() {
            let e = at::<S>(nl, i, k);
            *wx = S::mul(S::load(b.w.as_ptr().add(e)), S::load(xp.add(e)));
        }
    }
    let wp = b.w.as_ptr();
    let lo = S::splat_i(-nmax);
    let hi = S::splat_i(nmax - 1);
    let wxp = wx.as_ptr();
    // The numerators of the candidate inverse scales: the first, then `is` = -9..=9 without 0.
    let mut nums = [-(nmax as f32); 19];
    for (c, is) in (-9..=9).filter(|&is| is != 0).enumerate() {
        nums[c + 1] = -(nmax as f32 + 0.1 * is as f32);
    }
    let (mut scale, mut best, mut best_is) = ([zero; N], [zero; N], [zero; N]);
    for c in (0..nums.len()).step_by(2) {
        let a = div_by::<S, N>(nums[c], &max);
        let b2 = div_by::<S, N>(nums[(c + 1).min(nums.len() - 1)], &max);
        // |iscale·x| <= |iscale·max| (max has the largest magnitude): see `qkx`.
        let mut exact = S::none();
        for k in 0..N {
            let ok = S::and(
                S::and(
                    in_range::<S>(S::mul(a[k], max[k])),
                    in_range::<S>(S::mul(b2[k], max[k])),
                ),
                finite[k],
            );
            exact = S::or(
                exact,
                S::andnot(S::andnot(S::splat_m(true), zero_lane[k]), ok),
            );
        }
        let (lo_f, hi_f) = (-nmax as f32, (nmax - 1) as f32);
        let (lx, l2, lx2, l22) = if S::any(exact) {
            qx_sums2::<S, N, false>(n, nl, xp, wp, wxp, lo_f, hi_f, a, b2)
        } else {
            qx_sums2::<S, N, true>(n, nl, xp, wp, wxp, lo_f, hi_f, a, b2)
        };
        let both = [(a, lx, l2), (b2, lx2, l22)];
        for (cc, (iscale, sumlx, suml2)) in both.into_iter().enumerate() {
            if c + cc >= nums.len() {
                break;
            }
            for k in 0..N {
                if c + cc == 0 {
                    let nz = S::ne(suml2[k], zero);
                    scale[k] = S::select(nz, S::div(sumlx[k], suml2[k]), zero);
                    best[k] = S::mul(scale[k], sumlx[k]);
                    best_is[k] = iscale[k];
                } else {
                    let better = S::and(
                        S::gt(suml2[k], zero),
                        S::gt(S::mul(sumlx[k], sumlx[k]), S::mul(best[k], suml2[k])),
                    );
                    scale[k] = S::select(better, S::div(sumlx[k], suml2[k]), scale[k]);
                    best[k] = S::select(better, S::mul(scale[k], sumlx[k]), best[k]);
                    best_is[k] = S::select(better, iscale[k], best_is[k]);
                }
            }
        }
    }
    let lp = b.l.as_mut_ptr();
    let off = S::splat_i(nmax);
    let zero_i = S::splat_i(0);
    for i in 0..n {
        for k in 0..N {
            let e = at::<S>(nl, i, k);
            let l = S::add_i(level_sym::<S>(best_is[k], S::load(xp.add(e)), lo, hi), off);
            S::store_i(lp.add(e), S::select_i(zero_lane[k], zero_i, l));
        }
    }
    for k in 0..N {
        let s = S::select(zero_lane[k], zero, scale[k]);
        S::store(b.scale.as_mut_ptr().add(k * S::LANES), s);
    }
}

/// `make_q3_quants` (x² weights, with the refinement passes) per lane: scale into
/// [`Batch::scale`], levels (offset by `nmax`) into [`Batch::l`].
///
/// # Safety
/// `S`'s CPU feature must be present.
#[inline(always)]
pub(crate) unsafe fn q3<S: Simd, const N: usize>(nmax: i32, b: &mut Batch) {
    check::<S, N>(b);
    let (n, nl) = (b.n, b.nl);
    let (max, zero_lane) = signed_absmax::<S, N>(b);
    let xp = b.x.as_ptr();
    let lp = b.l.as_mut_ptr();
    let zero = S::splat(0.0);
    let lo = S::splat_i(-nmax);
    let hi = S::splat_i(nmax - 1);
    let (mut sumlx, mut suml2) = ([zero; N], [zero; N]);
    for k in 0..N {
        let iscale = S::div(S::splat(-(nmax as f32)), max[k]);
        for i in 0..n {
            let e = at::<S>(nl, i, k);
            let x = S::load(xp.add(e));
            let l = S::clamp_i(S::nearest_int(S::mul(iscale, x)), lo, hi);
            S::store_i(lp.add(e), l);
            let w = S::mul(x, x);
            let lf = S::to_f(l);
            sumlx[k] = S::add(sumlx[k], S::mul(S::mul(w, x), lf));
            suml2[k] = S::add(suml2[k], S::mul(S::mul(w, lf), lf));
        }
    }
    for _ in 0..5 {
        let mut changed = [S::none(); N];
        for i in 0..n {
            for k in 0..N {
                let e = at::<S>(nl, i, k);
                let x = S::load(xp.add(e));
                let w = S::mul(x, x);
                let wx = S::mul(w, x);
                let li_i = S::load_i(lp.add(e));
                let li = S::to_f(li_i);
                let slx = S::sub(sumlx[k], S::mul(wx, li));
                let sl2 = S::sub(suml2[k], S::mul(S::mul(w, li), li));
                let new_l = S::clamp_i(S::nearest_int(S::div(S::mul(x, sl2), slx)), lo, hi);
                let nl_f = S::to_f(new_l);
                let slx2 = S::add(slx, S::mul(wx, nl_f));
                let sl22 = S::add(sl2, S::mul(S::mul(w, nl_f), nl_f));
                let better = S::gt(
                    S::mul(S::mul(slx2, slx2), suml2[k]),
                    S::mul(S::mul(sumlx[k], sumlx[k]), sl22),
                );
                let take = S::and(
                    S::and(S::gt(slx, zero), S::ne_i(new_l, li_i)),
                    S::and(S::gt(sl22, zero), better),
                );
                let take = S::andnot(take, zero_lane[k]);
                S::store_i(lp.add(e), S::select_i(take, new_l, li_i));
                sumlx[k] = S::select(take, slx2, sumlx[k]);
                suml2[k] = S::select(take, sl22, suml2[k]);
                changed[k] = S::or(changed[k], take);
            }
        }
        // A lane whose pass changed nothing would change nothing again: stopping it later
        // than the scalar code does is the same.
        let mut any = false;
        for c in changed {
            any |= S::any(c);
        }
        if !any {
            break;
        }
    }
    let off = S::splat_i(nmax);
    let zero_i = S::splat_i(0);
    for i in 0..n {
        for (k, &z) in zero_lane.iter().enumerate() {
            let e = at::<S>(nl, i, k);
            let l = S::add_i(S::load_i(lp.add(e)), off);
            S::store_i(lp.add(e), S::select_i(z, zero_i, l));
        }
    }
    for k in 0..N {
        let s = S::select(S::gt(suml2[k], zero), S::div(sumlx[k], suml2[k]), zero);
        let s = S::select(zero_lane[k], zero, s);
        S::store(b.scale.as_mut_ptr().add(k * S::LANES), s);
    }
}

/// Final levels of the affine types: `clamp(nearest_int((x + dm) / d), 0, nmax)` with `d` per
/// lane in [`Batch::scale`] and `dm` in [`Batch::min`]; lanes with `d == 0` keep their levels.
///
/// # Safety
/// `S`'s CPU feature must be present.
#[inline(always)]
pub(crate) unsafe fn requantize_affine<S: Simd, const N: usize>(nmax: i32, b: &mut Batch) {
    check::<S, N>(b);
    let (n, nl) = (b.n, b.nl);
    let xp = b.x.as_ptr();
    let lp = b.l.as_mut_ptr();
    let zero = S::splat(0.0);
    let (lo, hi) = (S::splat_i(0), S::splat_i(nmax));
    for k in 0..N {
        let d = S::load(b.scale.as_ptr().add(k * S::LANES));
        let dm = S::load(b.min.as_ptr().add(k * S::LANES));
        let keep = S::eq(d, zero);
        for i in 0..n {
            let e = at::<S>(nl, i, k);
            let l = S::clamp_i(
                S::nearest_int(S::div(S::add(S::load(xp.add(e)), dm), d)),
                lo,
                hi,
            );
            S::store_i(lp.add(e), S::select_i(keep, S::load_i(lp.add(e)), l));
        }
    }
}

/// Final levels of the symmetric types: `clamp(nearest_int(x / d), lo, hi) - lo` with `d` per
/// lane in [`Batch::scale`]; lanes with `d == 0` keep their levels.
///
/// # Safety
/// `S`'s CPU feature must be present.
#[inline(always)]
pub(crate) unsafe fn requantize_symmetric<S: Simd, const N: usize>(
    lo: i32,
    hi: i32,
    b: &mut Batch,
) {
    check::<S, N>(b);
    let (n, nl) = (b.n, b.nl);
    let xp = b.x.as_ptr();
    let lp = b.l.as_mut_ptr();
    let zero = S::splat(0.0);
    let (lo_v, hi_v, off) = (S::splat_i(lo), S::splat_i(hi), S::splat_i(-lo));
    for k in 0..N {
        let d = S::load(b.scale.as_ptr().add(k * S::LANES));
        let keep = S::eq(d, zero);
        for i in 0..n {
            let e = at::<S>(nl, i, k);
            let q = S::clamp_i(S::nearest_int(S::div(S::load(xp.add(e)), d)), lo_v, hi_v);
            let l = S::add_i(q, off);
            S::store_i(lp.add(e), S::select_i(keep, S::load_i(lp.add(e)), l));
        }
    }
}
