//! Q5_1: 32 weights `d·q + m`, q in 0..32, f16 scale and min (ggml's `block_q5_1`).

#![allow(clippy::needless_range_loop)] // index arithmetic mirrors the bit layouts

use super::legacy::{affine, inverse, min_max, pack_nibbles, q5_high, q5_values, RowWeights};
use super::q8_1::BlockQ8_1;
use super::search::make_qkx_quants;
use super::{ggml_quantizer, Format};
use crate::blocks::{as_blocks, f16_getters};
use crate::num::{f16_ggml, trunc_i32, QK};
use crate::types::GgmlType;

const BYTES: usize = 24;

/// Q5_1 block: `d · q + m`, q in 0..32.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockQ5_1 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Minimum (f16).
    pub m: [u8; 2],
    /// Fifth bits, a little-endian u32.
    pub qh: [u8; 4],
    /// Low nibbles.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(core::mem::size_of::<BlockQ5_1>() == 24);
f16_getters!(BlockQ5_1: d, m);

/// The Q5_1 format.
pub(crate) const FORMAT: Format = Format {
    ty: GgmlType::Q5_1,
    quantize_ref: quantize_row_ref,
    quantize: ggml_quantizer!(quantize_row_ref, weighted: quantize_row_impl),
    dequantize,
    dot: Some(dot),
    scale_offsets: &[0, 2],
};

/// `quantize_row_q5_1_ref`: the path ggml takes without an importance row.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BYTES)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse(d);
        y[..2].copy_from_slice(&f16_ggml(d));
        y[2..4].copy_from_slice(&f16_ggml(min));
        let l: [u8; QK] = std::array::from_fn(|j| trunc_i32((x[j] - min) * id + 0.5) as u8);
        let qh = pack_nibbles(&l, &mut y[8..]);
        y[4..8].copy_from_slice(&qh.to_le_bytes());
    }
}

/// `quantize_row_q5_1_impl` with an importance row (one whole row and its weights).
pub fn quantize_row_impl(src: &[f32], qw: &[f32], dst: &mut [u8]) {
    let rw = RowWeights::new(src);
    let blocks = src.chunks_exact(QK).zip(qw.chunks_exact(QK));
    for ((xb, qb), y) in blocks.zip(dst.chunks_exact_mut(BYTES)) {
        let (mut l, mut aux) = ([0u8; QK], [0u8; QK]);
        let (d, min) = make_qkx_quants(&affine(31), xb, Some(&rw.block(xb, qb)), &mut l, &mut aux);
        y[..2].copy_from_slice(&f16_ggml(d));
        y[2..4].copy_from_slice(&f16_ggml(-min));
        let qh = pack_nibbles(&l, &mut y[8..]);
        y[4..8].copy_from_slice(&qh.to_le_bytes());
    }
}

/// Q5_1 to f32.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ5_1>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let (d, m) = (b.d(), b.m());
        for j in 0..QK / 2 {
            let (h0, h1) = q5_high(b.qh, j);
            y[j] = ((b.qs[j] & 0x0f) | h0) as f32 * d + m;
            y[j + QK / 2] = ((b.qs[j] >> 4) | h1) as f32 * d + m;
        }
    }
}

/// Q5_1 weights · Q8_1 activations: exact integer block sums plus the min term.
pub fn dot(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ5_1>(w)
        .iter()
        .zip(as_blocks::<BlockQ8_1>(a))
    {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let (lo, hi) = q5_values(&x.qs, x.qh, j);
            sumi += lo * y.qs[j] as i32 + hi * y.qs[j + QK / 2] as i32;
        }
        s += (x.d() * y.d()) * sumi as f32 + x.m() * y.s();
    }
    s
}
