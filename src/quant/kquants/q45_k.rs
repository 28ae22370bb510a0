//! Q4_K and Q5_K: eight sub-blocks of 32 with 6-bit scales and mins, `x ≈ d·sc·q - dmin·m`.
//! They differ only in the level range (4 or 5 bits), the search settings and the packing.

use super::QK_K;
use crate::quant::num::{f16_at, nearest_int, put_f16};
use crate::quant::search::{make_qkx_quants, make_qp_quants, AffineSearch};
use crate::quant::simd::rows::RowKernel;
use crate::quant::simd::search::{self, Batch};
use crate::quant::simd::Kind;
use crate::quant::simd::Simd;

/// Q4_K block: f16 d, f16 dmin, 12 bytes of scales and mins, 128 bytes of nibbles.
const Q4_K_BYTES: usize = 144;
const _: () = assert!(Q4_K_BYTES == 2 + 2 + SCALES_BYTES + QK_K / 2);
/// Q5_K block: f16 d, f16 dmin, 12 bytes of scales and mins, 32 bytes of fifth bits, 128 of
/// nibbles.
const Q5_K_BYTES: usize = 176;
const _: () = assert!(Q5_K_BYTES == 2 + 2 + SCALES_BYTES + QK_K / 8 + QK_K / 2);
/// Bytes of the packed 6-bit scales and mins (ggml's `K_SCALE_SIZE`).
const SCALES_BYTES: usize = 12;
/// Offset of the scales in both blocks.
const SCALES: usize = 4;

/// 4-bit k-quant (ggml's `block_q4_K`).
#[allow(non_camel_case_types)]
pub struct Q4_K;
/// 5-bit k-quant (ggml's `block_q5_K`).
#[allow(non_camel_case_types)]
pub struct Q5_K;

/// What distinguishes the two types in the shared code.
struct Variant {
    /// Largest level.
    nmax: i32,
    /// Search settings of the reference path (`make_qkx2_quants`).
    ref_search: AffineSearch,
    /// Whether the weighted path clamps the 6-bit scales to 63 (Q5_K does, Q4_K does not).
    clamp_impl_scales: bool,
}

const V4: Variant = Variant {
    nmax: 15,
    ref_search: AffineSearch {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    },
    clamp_impl_scales: false,
};
const V5: Variant = Variant {
    nmax: 31,
    ref_search: AffineSearch {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    },
    clamp_impl_scales: true,
};

/// Packs eight 6-bit scales and mins into ggml's 12-byte layout. Values above 63 keep their
/// low bits, as the C stores do.
fn pack_scales(ls: &[u8; 8], lm: &[u8; 8], s: &mut [u8]) {
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

/// ggml's `get_scale_min_k4`: scale and min of sub-block `j` from the 12-byte layout.
#[inline]
fn scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// The effective scale `d·sc` and offset `dmin·m` of sub-block `j` of a block whose d, dmin and
/// scales are stored.
#[inline]
fn sub_block_dm(y: &[u8], j: usize) -> (f32, f32) {
    let (d_all, dmin_all) = (f16_at(y, 0), f16_at(y, 2));
    let (sc, m) = scale_min(j, &y[SCALES..SCALES + SCALES_BYTES]);
    (d_all * sc as f32, dmin_all * m as f32)
}

/// Final levels from the stored (rounded) d, dmin and 6-bit scales, as both paths end.
fn requantize(x: &[f32], y: &[u8], nmax: i32, l: &mut [u8; QK_K]) {
    for j in 0..QK_K / 32 {
        let (d, dm) = sub_block_dm(y, j);
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
fn store_scales_impl(v: &Variant, scales: &[f32], mins: &[f32], sw: &[f32], y: &mut [u8]) {
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

/// Q4_K's level packing: 64 elements per 32 bytes, element `i` low nibble, `i + 32` high.
#[inline]
fn pack_q4(l: &[u8; QK_K], y: &mut [u8]) {
    let qs: &mut [u8; QK_K / 2] = (&mut y[SCALES + SCALES_BYTES..]).try_into().unwrap();
    for j in 0..QK_K / 64 {
        for i in 0..32 {
            qs[32 * j + i] = l[64 * j + i] | (l[64 * j + i + 32] << 4);
        }
    }
}

/// Q5_K's level packing: nibbles as Q4_K, fifth bits of pair `j` in bits `2j`, `2j + 1`.
/// (Levels are at most 31, so ggml's `if (l > 15) { l -= 16; set bit }` is bit 4 and the low
/// nibble.)
#[inline]
fn pack_q5(l: &[u8; QK_K], y: &mut [u8]) {
    let (qh, qs) = y[SCALES + SCALES_BYTES..].split_at_mut(QK_K / 8);
    let qh: &mut [u8; 32] = qh.try_into().unwrap();
    let qs: &mut [u8; 128] = qs.try_into().unwrap();
    let mut h = [0u8; 32];
    for j in 0..QK_K / 64 {
        for i in 0..32 {
            let (l1, l2) = (l[64 * j + i], l[64 * j + i + 32]);
            debug_assert!(l1 < 32 && l2 < 32);
            h[i] |= ((l1 >> 4) << (2 * j)) | ((l2 >> 4) << (2 * j + 1));
            qs[32 * j + i] = (l1 & 0x0f) | ((l2 & 0x0f) << 4);
        }
    }
    *qh = h;
}

/// The vector path of Q4_K ([`crate::quant::simd`]).
pub(crate) struct Q4Rows;
/// The vector path of Q5_K ([`crate::quant::simd`]).
pub(crate) struct Q5Rows;

/// One batch of super-blocks of Q4_K or Q5_K on the vector unit `S`, `N` registers of lanes
/// (one lane per sub-block of 32).
///
/// # Safety
/// `S`'s CPU feature must be present.
#[inline(always)]
unsafe fn batch<S: Simd, const N: usize>(
    v: &Variant,
    bytes: usize,
    b: &mut Batch,
    x: &[f32],
    qw: Option<&[f32]>,
    y: &mut [u8],
    pack: fn(&[u8; QK_K], &mut [u8]),
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
        for j in 0..8 {
            (b.scale[8 * s + j], b.min[8 * s + j]) = sub_block_dm(y, j);
        }
    }
    search::requantize_affine::<S, N>(v.nmax, b);
    b.levels_to_rows::<S>();
    for (s, y) in y.chunks_exact_mut(bytes).enumerate() {
        pack(b.row_levels(s), y);
    }
}

impl RowKernel for Q4Rows {
    const SUB: usize = 32;
    const BYTES: usize = Q4_K_BYTES;

    #[inline(always)]
    unsafe fn batch<S: Simd, const N: usize>(
        &self,
        b: &mut Batch,
        x: &[f32],
        qw: Option<&[f32]>,
        y: &mut [u8],
    ) {
        batch::<S, N>(&V4, Q4_K_BYTES, b, x, qw, y, pack_q4)
    }
}

impl RowKernel for Q5Rows {
    const SUB: usize = 32;
    const BYTES: usize = Q5_K_BYTES;

    #[inline(always)]
    unsafe fn batch<S: Simd, const N: usize>(
        &self,
        b: &mut Batch,
        x: &[f32],
        qw: Option<&[f32]>,
        y: &mut [u8],
    ) {
        batch::<S, N>(&V5, Q5_K_BYTES, b, x, qw, y, pack_q5)
    }
}

impl Q4_K {
    /// `quantize_row_q4_K_ref`: the path ggml takes without an importance row.
    pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
        for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(Q4_K_BYTES)) {
            let l = block_ref(&V4, x, y);
            pack_q4(&l, y);
        }
    }

    /// `quantize_row_q4_K_impl` with an importance row, or with `None` (its unweighted
    /// variant, which ggml itself never reaches through `quantize_q4_K`).
    pub fn quantize_row_impl(src: &[f32], qw: Option<&[f32]>, dst: &mut [u8]) {
        for (i, (x, y)) in src
            .chunks_exact(QK_K)
            .zip(dst.chunks_exact_mut(Q4_K_BYTES))
            .enumerate()
        {
            let l = block_impl(&V4, x, qw.map(|q| &q[i * QK_K..(i + 1) * QK_K]), y);
            pack_q4(&l, y);
        }
    }
}

impl Q5_K {
    /// `quantize_row_q5_K_ref`: the path ggml takes without an importance row.
    pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
        for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(Q5_K_BYTES)) {
            let l = block_ref(&V5, x, y);
            pack_q5(&l, y);
        }
    }

    /// `quantize_row_q5_K_impl` with an importance row, or with `None` (its unweighted
    /// variant, which ggml itself never reaches through `quantize_q5_K`).
    pub fn quantize_row_impl(src: &[f32], qw: Option<&[f32]>, dst: &mut [u8]) {
        for (i, (x, y)) in src
            .chunks_exact(QK_K)
            .zip(dst.chunks_exact_mut(Q5_K_BYTES))
            .enumerate()
        {
            let l = block_impl(&V5, x, qw.map(|q| &q[i * QK_K..(i + 1) * QK_K]), y);
            pack_q5(&l, y);
        }
    }
}

/// Shared dequantization: `d·sc·q - dmin·m` per sub-block of 32, `q` from `level(j, i)`.
fn dequantize(
    src: &[u8],
    dst: &mut [f32],
    bytes: usize,
    level: impl Fn(&[u8], usize, usize) -> u8,
) {
    for (b, y) in src.chunks_exact(bytes).zip(dst.chunks_exact_mut(QK_K)) {
        let (d, min) = (f16_at(b, 0), f16_at(b, 2));
        for j in 0..QK_K / 32 {
            let (sc, m) = scale_min(j, &b[SCALES..SCALES + SCALES_BYTES]);
            let (d1, m1) = (d * sc as f32, min * m as f32);
            for i in 0..32 {
                y[32 * j + i] = d1 * level(b, j, i) as f32 - m1;
            }
        }
    }
}

impl Q4_K {
    /// The scalar path ggml's `quantize_*` takes: `*_ref` without an importance row,
    /// `*_impl` with one.
    fn quantize_scalar(src: &[f32], imatrix: Option<&[f32]>, dst: &mut [u8]) {
        match imatrix {
            None => Q4_K::quantize_row_ref(src, dst),
            Some(_) => Q4_K::quantize_row_impl(src, imatrix, dst),
        }
    }

    fn dequantize(src: &[u8], dst: &mut [f32]) {
        dequantize(src, dst, Q4_K_BYTES, |b, j, i| {
            let q = b[SCALES + SCALES_BYTES + 32 * (j / 2) + i];
            if j % 2 == 0 {
                q & 0x0f
            } else {
                q >> 4
            }
        });
    }
}

kquant_format!(Q4_K, Kind::Q4K, Q4_K_BYTES);

impl Q5_K {
    /// The scalar path ggml's `quantize_*` takes: `*_ref` without an importance row,
    /// `*_impl` with one.
    fn quantize_scalar(src: &[f32], imatrix: Option<&[f32]>, dst: &mut [u8]) {
        match imatrix {
            None => Q5_K::quantize_row_ref(src, dst),
            Some(_) => Q5_K::quantize_row_impl(src, imatrix, dst),
        }
    }

    fn dequantize(src: &[u8], dst: &mut [f32]) {
        dequantize(src, dst, Q5_K_BYTES, |b, j, i| {
            let qh = b[SCALES + SCALES_BYTES + i];
            let q = b[SCALES + SCALES_BYTES + QK_K / 8 + 32 * (j / 2) + i];
            let nib = if j % 2 == 0 { q & 0x0f } else { q >> 4 };
            nib + if qh & (1 << j) != 0 { 16 } else { 0 }
        });
    }
}

kquant_format!(Q5_K, Kind::Q5K, Q5_K_BYTES);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgmlType;
    use crate::quant::Format;

    #[test]
    fn layouts() {
        assert_eq!(GgmlType::Q4_K.block_bytes(), Q4_K_BYTES);
        assert_eq!(GgmlType::Q5_K.block_bytes(), Q5_K_BYTES);
    }

    #[test]
    fn scale_packing_round_trips() {
        let ls = [0, 1, 62, 63, 5, 33, 17, 63];
        let lm = [63, 2, 0, 40, 63, 0, 31, 9];
        let mut s = [0u8; 12];
        pack_scales(&ls, &lm, &mut s);
        for j in 0..8 {
            assert_eq!(scale_min(j, &s), (ls[j], lm[j]));
        }
    }

    #[test]
    fn constant_positive_block_has_no_min() {
        let x = [0.75f32; QK_K];
        let mut b = [0u8; Q4_K_BYTES];
        Q4_K.quantize_row(&x, &mut b);
        assert_eq!(f16_at(&b, 2), 0.0);
        let mut y = [0f32; QK_K];
        Q4_K.dequantize_row(&b, &mut y);
        assert!(y.iter().all(|v| (v - 0.75).abs() < 1e-3), "{:?}", &y[..4]);
    }
}
