//! Q4_1: 32 weights `d·q + m`, q in 0..16, f16 scale and min (ggml's `block_q4_1`).

#![allow(clippy::needless_range_loop)] // index arithmetic mirrors the bit layouts

use super::legacy::{affine, inverse, min_max, RowWeights};
use super::q8_1::BlockQ8_1;
use super::search::make_qkx_quants;
use super::{ggml_quantizer, Format};
use crate::blocks::{as_blocks, f16_getters};
use crate::num::{f16_ggml, trunc_i32, QK};
use crate::types::GgmlType;

const BYTES: usize = 20;

/// Q4_1 block: `d · q + m`, q in 0..16, nibbles laid out as in Q4_0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockQ4_1 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Minimum (f16).
    pub m: [u8; 2],
    /// Nibbles.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(core::mem::size_of::<BlockQ4_1>() == 20);
f16_getters!(BlockQ4_1: d, m);

/// The Q4_1 format.
pub(crate) const FORMAT: Format = Format {
    ty: GgmlType::Q4_1,
    quantize_ref: quantize_row_ref,
    quantize: ggml_quantizer!(quantize_row_ref, weighted: quantize_row_impl),
    dequantize,
    dot: Some(dot),
    scale_offsets: &[0, 2],
};

/// `quantize_row_q4_1_ref`: the path ggml takes without an importance row.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BYTES)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse(d);
        y[..2].copy_from_slice(&f16_ggml(d));
        y[2..4].copy_from_slice(&f16_ggml(min));
        for j in 0..QK / 2 {
            let q0 = (trunc_i32((x[j] - min) * id + 0.5) as i8).min(15) as u8;
            let q1 = (trunc_i32((x[j + QK / 2] - min) * id + 0.5) as i8).min(15) as u8;
            y[4 + j] = q0 | (q1 << 4);
        }
    }
}

/// `quantize_row_q4_1_impl` with an importance row (one whole row and its weights).
pub fn quantize_row_impl(src: &[f32], qw: &[f32], dst: &mut [u8]) {
    let rw = RowWeights::new(src);
    let blocks = src.chunks_exact(QK).zip(qw.chunks_exact(QK));
    for ((xb, qb), y) in blocks.zip(dst.chunks_exact_mut(BYTES)) {
        let (mut l, mut aux) = ([0u8; QK], [0u8; QK]);
        let (d, min) = make_qkx_quants(&affine(15), xb, Some(&rw.block(xb, qb)), &mut l, &mut aux);
        y[..2].copy_from_slice(&f16_ggml(d));
        y[2..4].copy_from_slice(&f16_ggml(-min));
        for j in 0..QK / 2 {
            y[4 + j] = l[j] | (l[j + QK / 2] << 4);
        }
    }
}

/// Q4_1 to f32.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ4_1>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let (d, m) = (b.d(), b.m());
        for j in 0..QK / 2 {
            y[j] = (b.qs[j] & 0x0f) as f32 * d + m;
            y[j + QK / 2] = (b.qs[j] >> 4) as f32 * d + m;
        }
    }
}

/// Q4_1 weights · Q8_1 activations: exact integer block sums plus the min term.
pub fn dot(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ4_1>(w)
        .iter()
        .zip(as_blocks::<BlockQ8_1>(a))
    {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            sumi += (x.qs[j] & 0x0f) as i32 * y.qs[j] as i32;
            sumi += (x.qs[j] >> 4) as i32 * y.qs[j + QK / 2] as i32;
        }
        s += (x.d() * y.d()) * sumi as f32 + x.m() * y.s();
    }
    s
}
