//! What Q4_K and Q5_K share: eight sub-blocks of 32 with 6-bit scales and mins,
//! `x ≈ d·sc·q − dmin·m`, and the same scale searches. They differ only in the level range
//! (4 or 5 bits), the search settings and the packing, given by a [`Variant`] and a [`Pack`]
//! in each type's file.

use super::kquant::kquant_scales_mins;
use super::q8_k::BlockQ8K;
use super::search::{make_qkx_quants, make_qp_quants, AffineSearch};
use crate::num::{f16_at, nearest_int, put_f16, QK_K};
use crate::vector::search::{self, Batch};
use crate::vector::Simd;

/// Bytes of the packed 6-bit scales and mins (ggml's `K_SCALE_SIZE`).
pub(super) const SCALES_BYTES: usize = 12;
/// Offset of the scales in both blocks (after d and dmin).
pub(super) const SCALES: usize = 4;

/// What distinguishes the two types in the shared code.
pub(super) struct Variant {
    /// Largest level.
    pub(super) nmax: i32,
    /// Search settings of the reference path (`make_qkx2_quants`).
    pub(super) ref_search: AffineSearch,
    /// Whether the weighted path clamps the 6-bit scales to 63 (Q5_K does, Q4_K does not).
    pub(super) clamp_impl_scales: bool,
}

/// Packs eight 6-bit scales and mins into ggml's 12-byte layout. Values above 63 keep their
/// low bits, as the C stores do.
pub(super) fn pack_scales(ls: &[u8; 8], lm: &[u8; 8], s: &mut [u8]) {
    for j in 0..8 {
        if j < 4 {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4);
            s[j - 4] |= (ls[j] >> 4) << 6;
            s[j] |= (lm[j] >> 4) << 6;
        }
    }
}

/// The effective scales `d·sc` and offsets `dmin·m` of the eight sub-blocks of a block whose
/// d, dmin and scales are stored.
#[inline]
pub(super) fn sub_block_dms(y: &[u8]) -> [(f32, f32); 8] {
    let (d_all, dmin_all) = (f16_at(y, 0), f16_at(y, 2));
    let (sc, m) = kquant_scales_mins(y[SCALES..SCALES + SCALES_BYTES].try_into().unwrap());
    std::array::from_fn(|j| (d_all * sc[j] as f32, dmin_all * m[j] as f32))
}

/// Final levels from the stored (rounded) d, dmin and 6-bit scales, as both paths end.
fn requantize(x: &[f32], y: &[u8], nmax: i32, l: &mut [u8; QK_K]) {
    for (j, (d, dm)) in sub_block_dms(y).into_iter().enumerate() {
        if d == 0.0 {
            continue;
        }
        for i in 0..32 {
            l[32 * j + i] = nearest_int((x[32 * j + i] + dm) / d).clamp(0, nmax) as u8;
        }
    }
}

/// The reference path after the search: 6-bit scales and mins relative to the largest, d and
/// dmin, into `y`.
fn store_scales_ref(scales: &[f32], mins: &[f32], y: &mut [u8]) {
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for j in 0..QK_K / 32 {
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let ls: [u8; 8] = std::array::from_fn(|j| (nearest_int(inv_scale * scales[j]) as u8).min(63));
    let lm: [u8; 8] = std::array::from_fn(|j| (nearest_int(inv_min * mins[j]) as u8).min(63));
    pack_scales(&ls, &lm, &mut y[SCALES..SCALES + SCALES_BYTES]);
    put_f16(y, 0, max_scale / 63.0);
    put_f16(y, 2, max_min / 63.0);
}

/// The weighted path after the search: scales and mins quantized by `make_qp_quants` under
/// the sub-block weight sums `sw`, d and dmin, into `y`.
pub(super) fn store_scales_impl(
    v: &Variant,
    scales: &[f32],
    mins: &[f32],
    sw: &[f32],
    y: &mut [u8],
) {
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    let d_block = make_qp_quants(63, &scales[..8], &mut ls, &sw[..8]);
    let m_block = make_qp_quants(63, &mins[..8], &mut lm, &sw[..8]);
    if v.clamp_impl_scales {
        ls = ls.map(|s| s.min(63));
        lm = lm.map(|m| m.min(63));
    }
    pack_scales(&ls, &lm, &mut y[SCALES..SCALES + SCALES_BYTES]);
    put_f16(y, 0, d_block);
    put_f16(y, 2, m_block);
}

/// σ² of the weighted path: twice the mean square of the super-block.
fn sigma2_impl(x: &[f32]) -> f32 {
    let mut sum_x2 = 0f32;
    for &v in x {
        sum_x2 += v * v;
    }
    2.0 * sum_x2 / QK_K as f32
}

/// `quantize_row_q4_K_ref` / `q5_K_ref` up to the packing of the levels, for one super-block:
/// writes d, dmin and the scales into `y` and returns the levels.
fn block_ref(v: &Variant, x: &[f32], y: &mut [u8]) -> [u8; QK_K] {
    let mut l = [0u8; QK_K];
    let mut aux = [0u8; 32];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    for j in 0..QK_K / 32 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let weights: [f32; 32] = std::array::from_fn(|i| av_x + xs[i].abs());
        (scales[j], mins[j]) = make_qkx_quants(
            &v.ref_search,
            xs,
            Some(&weights),
            &mut l[32 * j..],
            &mut aux,
        );
    }
    store_scales_ref(&scales, &mins, y);
    requantize(x, y, v.nmax, &mut l);
    l
}

/// `quantize_row_q4_K_impl` / `q5_K_impl` up to the packing of the levels, for one
/// super-block with its slice of the importance row (if any).
fn block_impl(v: &Variant, x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) -> [u8; QK_K] {
    let mut l = [0u8; QK_K];
    let mut aux = [0u8; 32];
    let (mut scales, mut mins, mut sw) = ([0f32; 8], [0f32; 8], [0f32; 8]);
    let sigma2 = sigma2_impl(x);
    let av_x = sigma2.sqrt();
    let search = impl_search(v);
    for j in 0..QK_K / 32 {
        let xs = &x[32 * j..32 * j + 32];
        let weights: [f32; 32] = match qw {
            Some(q) => std::array::from_fn(|i| q[32 * j + i] * (sigma2 + xs[i] * xs[i]).sqrt()),
            None => std::array::from_fn(|i| av_x + xs[i].abs()),
        };
        let mut sumw = 0f32;
        for w in weights {
            sumw += w;
        }
        sw[j] = sumw;
        (scales[j], mins[j]) =
            make_qkx_quants(&search, xs, Some(&weights), &mut l[32 * j..], &mut aux);
    }
    store_scales_impl(v, &scales, &mins, &sw, y);
    requantize(x, y, v.nmax, &mut l);
    l
}

/// The search settings of the weighted path (`make_qkx3_quants`).
fn impl_search(v: &Variant) -> AffineSearch {
    AffineSearch {
        nmax: v.nmax,
        rmin: -0.9,
        rdelta: 0.05,
        nstep: 36,
        use_mad: false,
    }
}

/// `quantize_row_q4_K_ref` / `q5_K_ref` over a whole row, `pack` placing the levels.
pub(super) fn quantize_rows_ref(
    v: &Variant,
    bytes: usize,
    pack: Pack,
    src: &[f32],
    dst: &mut [u8],
) {
    for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(bytes)) {
        let l = block_ref(v, x, y);
        pack(&l, y);
    }
}

/// `quantize_row_q4_K_impl` / `q5_K_impl` over a whole row with an importance row, or with
/// `None` (its unweighted variant, which ggml itself never reaches through `quantize_q4_K`).
pub(super) fn quantize_rows_impl(
    v: &Variant,
    bytes: usize,
    pack: Pack,
    src: &[f32],
    qw: Option<&[f32]>,
    dst: &mut [u8],
) {
    for (i, (x, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(bytes))
        .enumerate()
    {
        let l = block_impl(v, x, qw.map(|q| &q[i * QK_K..(i + 1) * QK_K]), y);
        pack(&l, y);
    }
}

/// The vector path of one of the two types (`$rows`), from the calling file's `BYTES`,
/// `VARIANT` and `PACK`: one lane per sub-block of 32.
macro_rules! k45_rows {
    ($rows:ident) => {
        impl $crate::vector::rows::RowKernel for $rows {
            const SUB: usize = 32;
            const BYTES: usize = BYTES;

            #[inline(always)]
            unsafe fn batch<S: $crate::vector::Simd, const N: usize>(
                &self,
                b: &mut $crate::vector::search::Batch,
                x: &[f32],
                qw: Option<&[f32]>,
                y: &mut [u8],
            ) {
                k45::batch::<S, N>(&VARIANT, BYTES, b, x, qw, y, PACK)
            }
        }
    };
}
pub(super) use k45_rows;

/// Places 256 levels into a block.
pub(super) type Pack = fn(&[u8; QK_K], &mut [u8]);

/// Both types' dot product with Q8_K: `q(i)` gives the unsigned quant of element i; returns
/// the integer sums of the scaled quants and of the mins.
#[inline(always)]
pub(super) fn dot_sums(scales: &[u8; 12], y: &BlockQ8K, q: impl Fn(usize) -> i32) -> (i32, i32) {
    let (sc, mn) = kquant_scales_mins(scales);
    let mut isum = 0i32;
    let mut summs = 0i32;
    for g in 0..8 {
        let gs: i32 = (32 * g..32 * g + 32).map(|i| q(i) * y.qs[i] as i32).sum();
        isum += sc[g] as i32 * gs;
        summs += mn[g] as i32 * (y.bsum(2 * g) as i32 + y.bsum(2 * g + 1) as i32);
    }
    (isum, summs)
}

/// One batch of super-blocks of Q4_K or Q5_K on the vector unit `S`, `N` registers of lanes
/// (one lane per sub-block of 32).
///
/// # Safety
/// `S`'s CPU feature must be present.
#[inline(always)]
pub(super) unsafe fn batch<S: Simd, const N: usize>(
    v: &Variant,
    bytes: usize,
    b: &mut Batch,
    x: &[f32],
    qw: Option<&[f32]>,
    y: &mut [u8],
    pack: Pack,
) {
    let count = x.len() / QK_K;
    b.reset(32, N * S::LANES);
    assert!(count * 8 <= b.nl && y.len() == count * bytes);
    b.load_x::<S>(x);
    match qw {
        None => {
            search::weights_rms_abs::<S, N>(b);
            search::qkx::<S, N, false>(&v.ref_search, b);
            for (s, y) in y.chunks_exact_mut(bytes).enumerate() {
                store_scales_ref(&b.scale[8 * s..], &b.min[8 * s..], y);
            }
        }
        Some(q) => {
            b.load_w::<S>(q);
            for s in 0..count {
                let sigma2 = sigma2_impl(&x[s * QK_K..(s + 1) * QK_K]);
                b.aux[8 * s..8 * s + 8].fill(sigma2);
            }
            search::weights_imatrix::<S, N>(b);
            search::weight_sums::<S, N>(b);
            search::qkx::<S, N, false>(&impl_search(v), b);
            for (s, y) in y.chunks_exact_mut(bytes).enumerate() {
                let r = 8 * s..8 * s + 8;
                store_scales_impl(v, &b.scale[r.clone()], &b.min[r.clone()], &b.aux[r], y);
            }
        }
    }
    b.scale.fill(0.0);
    for (s, y) in y.chunks_exact(bytes).enumerate() {
        for (j, dm) in sub_block_dms(y).into_iter().enumerate() {
            (b.scale[8 * s + j], b.min[8 * s + j]) = dm;
        }
    }
    search::requantize_affine::<S, N>(v.nmax, b);
    b.levels_to_rows::<S>();
    for (s, y) in y.chunks_exact_mut(bytes).enumerate() {
        pack(b.row_levels(s), y);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_packing_round_trips() {
        let ls = [0, 1, 62, 63, 5, 33, 17, 63];
        let lm = [63, 2, 0, 40, 63, 0, 31, 9];
        let mut s = [0u8; 12];
        pack_scales(&ls, &lm, &mut s);
        assert_eq!(kquant_scales_mins(&s), (ls, lm));
    }

    #[test]
    fn constant_positive_block_has_no_min() {
        let x = [0.75f32; QK_K];
        let mut b = [0u8; 144];
        super::super::q4_k::FORMAT.quantize_row(&x, &mut b);
        assert_eq!(f16_at(&b, 2), 0.0);
        let mut y = [0f32; QK_K];
        super::super::q4_k::FORMAT.dequantize_row(&b, &mut y);
        assert!(y.iter().all(|v| (v - 0.75).abs() < 1e-3), "{:?}", &y[..4]);
    }
}
