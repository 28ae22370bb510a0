//! Q2_K: sixteen sub-blocks of 16 with 4-bit scales and mins, `x ≈ d·sc·q - dmin·m`, q in 0..=3.

#![allow(clippy::needless_range_loop)] // index arithmetic mirrors the bit layouts

use super::kquant::{level_2bit, pack_2bit};
use super::q8_k::BlockQ8K;
use super::search::{make_qkx_quants, make_qp_quants, AffineSearch};
use super::{ggml_quantizer, Format};
use crate::blocks::{as_blocks, f16_getters};
use crate::num::QK_K;
use crate::num::{f16_at, nearest_int, put_f16};
use crate::types::GgmlType;
use crate::vector::rows::RowKernel;
use crate::vector::search::{self, Batch};
use crate::vector::{Kind, Simd};

/// Block: 16 bytes of scales (low nibble) and mins (high nibble), 64 bytes of 2-bit levels,
/// f16 d, f16 dmin.
const BYTES: usize = 84;
const QS: usize = QK_K / 16;
const D: usize = QS + QK_K / 4;
const _: () = assert!(BYTES == D + 2 + 2);

/// Q2_K block: 16 groups of 16, `d · (sc & 15) · q − dmin · (sc >> 4)`, q in 0..4.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ2K {
    /// Per group: low nibble scale, high nibble min.
    pub scales: [u8; QK_K / 16],
    /// 2-bit quants: byte `32·h + l` holds elements `128·h + 32·s + l` in bits `2s..2s+2`.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale for the scales (f16).
    pub d: [u8; 2],
    /// Super-block scale for the mins (f16).
    pub dmin: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<BlockQ2K>() == BYTES);
f16_getters!(BlockQ2K: d, dmin);

/// The Q2_K format.
pub(crate) const FORMAT: Format = Format {
    ty: GgmlType::Q2_K,
    quantize_ref: quantize_row_ref,
    quantize: ggml_quantizer!(quantize_row_ref, weighted: quantize_row_impl, vector: Kind::Q2K),
    dequantize,
    dot: Some(dot),
    scale_offsets: &[80, 82],
};

/// The effective scale `d·sc` and offset `dmin·m` of sub-block `j` of a block whose d, dmin
/// and scales are stored.
#[inline]
fn sub_block_dm(y: &[u8], j: usize) -> (f32, f32) {
    let (d_all, dmin_all) = (f16_at(y, D), f16_at(y, D + 2));
    (d_all * (y[j] & 0x0f) as f32, dmin_all * (y[j] >> 4) as f32)
}

/// Final levels from the stored d, dmin and 4-bit scales, as both paths end.
fn requantize(x: &[f32], y: &[u8], l: &mut [u8; QK_K]) {
    for j in 0..QK_K / 16 {
        let (d, dm) = sub_block_dm(y, j);
        if d == 0.0 {
            continue;
        }
        for i in 0..16 {
            l[16 * j + i] = nearest_int((x[16 * j + i] + dm) / d).clamp(0, 3) as u8;
        }
    }
}

/// Search settings of the reference path (`make_qkx2_quants`, mean absolute error).
const REF_SEARCH: AffineSearch = AffineSearch {
    nmax: 3,
    rmin: -0.5,
    rdelta: 0.1,
    nstep: 15,
    use_mad: true,
};

/// Search settings of the weighted path (`make_qkx3_quants`).
const IMPL_SEARCH: AffineSearch = AffineSearch {
    nmax: 3,
    rmin: -0.9,
    rdelta: 0.05,
    nstep: 36,
    use_mad: false,
};

/// The reference path after the search: 4-bit scales and mins relative to the largest, d and
/// dmin, into `y`.
fn store_scales_ref(scales: &[f32], mins: &[f32], y: &mut [u8]) {
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for j in 0..QK_K / 16 {
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    if max_scale > 0.0 {
        let iscale = 15.0 / max_scale;
        for j in 0..QK_K / 16 {
            y[j] = nearest_int(iscale * scales[j]) as u8;
        }
        put_f16(y, D, max_scale / 15.0);
    } else {
        y[..QS].fill(0);
        put_f16(y, D, 0.0);
    }
    if max_min > 0.0 {
        let iscale = 15.0 / max_min;
        for j in 0..QK_K / 16 {
            y[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
        }
        put_f16(y, D + 2, max_min / 15.0);
    } else {
        put_f16(y, D + 2, 0.0);
    }
}

/// The weighted path after the search: scales and mins quantized by `make_qp_quants` under
/// the sub-block weight sums `sw`, d and dmin, into `y`.
fn store_scales_impl(scales: &[f32], mins: &[f32], sw: &[f32], y: &mut [u8]) {
    let (mut ls, mut lm) = ([0u8; 16], [0u8; 16]);
    let dm = make_qp_quants(15, &scales[..16], &mut ls, &sw[..16]);
    let mm = make_qp_quants(15, &mins[..16], &mut lm, &sw[..16]);
    put_f16(y, D, dm);
    put_f16(y, D + 2, mm);
    for j in 0..QK_K / 16 {
        y[j] = ls[j] | (lm[j] << 4);
    }
}

/// σ² of the weighted path: the mean square of the super-block.
fn sigma2_impl(x: &[f32]) -> f32 {
    let mut sumx2 = 0f32;
    for &v in x {
        sumx2 += v * v;
    }
    sumx2 / QK_K as f32
}

/// `quantize_row_q2_K_ref`: the path ggml takes without an importance row.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(BYTES)) {
        let mut l = [0u8; QK_K];
        let mut aux = [0u8; 16];
        let (mut scales, mut mins) = ([0f32; 16], [0f32; 16]);
        for j in 0..QK_K / 16 {
            let xs = &x[16 * j..16 * j + 16];
            let weights: [f32; 16] = std::array::from_fn(|i| xs[i].abs());
            (scales[j], mins[j]) =
                make_qkx_quants(&REF_SEARCH, xs, Some(&weights), &mut l[16 * j..], &mut aux);
        }
        store_scales_ref(&scales, &mins, y);
        requantize(x, y, &mut l);
        pack_2bit(&l, &mut y[QS..D]);
    }
}

/// `quantize_row_q2_K_impl`: the path ggml takes with an importance row `qw` (ggml has no
/// unweighted variant of it).
pub fn quantize_row_impl(src: &[f32], qw: &[f32], dst: &mut [u8]) {
    let blocks = src.chunks_exact(QK_K).zip(qw.chunks_exact(QK_K));
    for ((x, qw), y) in blocks.zip(dst.chunks_exact_mut(BYTES)) {
        let mut l = [0u8; QK_K];
        let mut aux = [0u8; 16];
        let (mut scales, mut mins, mut sw) = ([0f32; 16], [0f32; 16], [0f32; 16]);
        let sigma2 = sigma2_impl(x);
        for j in 0..QK_K / 16 {
            let xs = &x[16 * j..16 * j + 16];
            let weight: [f32; 16] =
                std::array::from_fn(|i| qw[16 * j + i] * (sigma2 + xs[i] * xs[i]).sqrt());
            for w in weight {
                sw[j] += w;
            }
            (scales[j], mins[j]) =
                make_qkx_quants(&IMPL_SEARCH, xs, Some(&weight), &mut l[16 * j..], &mut aux);
        }
        store_scales_impl(&scales, &mins, &sw, y);
        requantize(x, y, &mut l);
        pack_2bit(&l, &mut y[QS..D]);
    }
}

/// The vector path of Q2_K ([`crate::vector`]): one lane per sub-block of 16.
pub(crate) struct Q2Rows;

impl RowKernel for Q2Rows {
    const SUB: usize = 16;
    const BYTES: usize = BYTES;

    #[inline(always)]
    unsafe fn batch<S: Simd, const N: usize>(
        &self,
        b: &mut Batch,
        x: &[f32],
        qw: Option<&[f32]>,
        y: &mut [u8],
    ) {
        let count = x.len() / QK_K;
        b.reset(16, N * S::LANES);
        assert!(count * 16 <= b.nl && y.len() == count * BYTES);
        b.load_x::<S>(x);
        match qw {
            None => {
                search::weights_abs::<S, N>(b);
                search::qkx::<S, N, true>(&REF_SEARCH, b);
                for (s, y) in y.chunks_exact_mut(BYTES).enumerate() {
                    store_scales_ref(&b.scale[16 * s..], &b.min[16 * s..], y);
                }
            }
            Some(q) => {
                b.load_w::<S>(q);
                for s in 0..count {
                    let sigma2 = sigma2_impl(&x[s * QK_K..(s + 1) * QK_K]);
                    b.aux[16 * s..16 * s + 16].fill(sigma2);
                }
                search::weights_imatrix::<S, N>(b);
                search::weight_sums::<S, N>(b);
                search::qkx::<S, N, false>(&IMPL_SEARCH, b);
                for (s, y) in y.chunks_exact_mut(BYTES).enumerate() {
                    let r = 16 * s..16 * s + 16;
                    store_scales_impl(&b.scale[r.clone()], &b.min[r.clone()], &b.aux[r], y);
                }
            }
        }
        b.scale.fill(0.0);
        for (s, y) in y.chunks_exact(BYTES).enumerate() {
            for j in 0..16 {
                (b.scale[16 * s + j], b.min[16 * s + j]) = sub_block_dm(y, j);
            }
        }
        search::requantize_affine::<S, N>(3, b);
        b.levels_to_rows::<S>();
        for (s, y) in y.chunks_exact_mut(BYTES).enumerate() {
            pack_2bit(b.row_levels(s), &mut y[QS..D]);
        }
    }
}

/// Q2_K to f32.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ2K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let (d, dmin) = (b.d(), b.dmin());
        for i in 0..QK_K {
            // Element i: half h, shift s, byte l; group of 16 is i / 16.
            let (h, s, l) = (i / 128, (i % 128) / 32, i % 32);
            let sc = b.scales[i / 16];
            let q = level_2bit(&b.qs, h, s, l);
            let dl = d * (sc & 0x0f) as f32;
            let ml = dmin * (sc >> 4) as f32;
            y[i] = dl * q as f32 - ml;
        }
    }
}

/// Q2_K weights · Q8_K activations: exact integer group sums, the mins through Q8_K's group
/// sums, scaled per super-block.
pub fn dot(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ2K>(w)
        .iter()
        .zip(as_blocks::<BlockQ8K>(a))
    {
        let mut isum = 0i32;
        let mut summs = 0i32;
        for g in 0..16 {
            let mut gs = 0i32;
            for i in 16 * g..16 * g + 16 {
                let (h, sh, l) = (i / 128, (i % 128) / 32, i % 32);
                gs += level_2bit(&x.qs, h, sh, l) as i32 * y.qs[i] as i32;
            }
            isum += (x.scales[g] & 0x0f) as i32 * gs;
            summs += (x.scales[g] >> 4) as i32 * y.bsum(g) as i32;
        }
        let yd = y.d();
        s += (yd * x.d()) * isum as f32 - (yd * x.dmin()) * summs as f32;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::GgmlType;

    #[test]
    fn layout() {
        assert_eq!(GgmlType::Q2_K.block_bytes(), BYTES);
    }

    #[test]
    fn scales_follow_element_order() {
        // Sub-block j is constant (j + 1)/10: a scale read from the wrong byte is off by 0.1 or more.
        let x: Vec<f32> = (0..QK_K).map(|i| (i / 16 + 1) as f32 * 0.1).collect();
        let mut b = [0u8; BYTES];
        FORMAT.quantize_row(&x, &mut b);
        let mut y = [0f32; QK_K];
        FORMAT.dequantize_row(&b, &mut y);
        for (i, (a, b)) in x.iter().zip(y).enumerate() {
            assert!((a - b).abs() < 0.06, "element {i}: {b} vs {a}");
        }
    }
}
