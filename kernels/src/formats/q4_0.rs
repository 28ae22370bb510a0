//! Q4_0: 32 weights `d·(q − 8)`, q in 0..16, one f16 scale (ggml's `block_q4_0`).

#![allow(clippy::needless_range_loop)] // index arithmetic mirrors the bit layouts

use super::legacy::{inverse, signed_max, RowWeights};
use super::q8_0::BlockQ8_0;
use super::search::make_qx_quants;
use super::{ggml_quantizer, Format};
use crate::blocks::{as_blocks, f16_getters};
use crate::num::{f16_ggml, trunc_i32, QK};
use crate::types::GgmlType;

const BYTES: usize = 18;

/// Q4_0 block: `d · (q − 8)`, q in 0..16; `qs[j]` holds element j (low nibble) and j + 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockQ4_0 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Nibbles.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(core::mem::size_of::<BlockQ4_0>() == 18);
f16_getters!(BlockQ4_0: d);

/// The Q4_0 format.
pub(crate) const FORMAT: Format = Format {
    ty: GgmlType::Q4_0,
    quantize_ref: quantize_row_ref,
    quantize: ggml_quantizer!(quantize_row_ref, weighted: quantize_row_impl),
    dequantize,
    dot: Some(dot),
    scale_offsets: &[0],
};

/// `quantize_row_q4_0_ref`: the path ggml takes without an importance row.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BYTES)) {
        let d = signed_max(x) / -8.0;
        let id = inverse(d);
        y[..2].copy_from_slice(&f16_ggml(d));
        for j in 0..QK / 2 {
            let q0 = (trunc_i32(x[j] * id + 8.5) as i8).min(15) as u8;
            let q1 = (trunc_i32(x[j + QK / 2] * id + 8.5) as i8).min(15) as u8;
            y[2 + j] = q0 | (q1 << 4);
        }
    }
}

/// `quantize_row_q4_0_impl` with an importance row (one whole row and its weights).
pub fn quantize_row_impl(src: &[f32], qw: &[f32], dst: &mut [u8]) {
    let rw = RowWeights::new(src);
    let blocks = src.chunks_exact(QK).zip(qw.chunks_exact(QK));
    for ((xb, qb), y) in blocks.zip(dst.chunks_exact_mut(BYTES)) {
        let mut l = [0i8; QK];
        let d = make_qx_quants(8, xb, &mut l, Some(&rw.block(xb, qb)));
        y[..2].copy_from_slice(&f16_ggml(d));
        for j in 0..QK / 2 {
            y[2 + j] = l[j] as u8 | ((l[j + QK / 2] as u8) << 4);
        }
    }
}

/// Q4_0 to f32.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ4_0>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = b.d();
        for j in 0..QK / 2 {
            y[j] = ((b.qs[j] & 0x0f) as i32 - 8) as f32 * d;
            y[j + QK / 2] = ((b.qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// Q4_0 weights · Q8_0 activations: exact integer block sums, scaled and summed in block order.
pub fn dot(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ4_0>(w)
        .iter()
        .zip(as_blocks::<BlockQ8_0>(a))
    {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            sumi += ((x.qs[j] & 0x0f) as i32 - 8) * y.qs[j] as i32;
            sumi += ((x.qs[j] >> 4) as i32 - 8) * y.qs[j + QK / 2] as i32;
        }
        s += (x.d() * y.d()) * sumi as f32;
    }
    s
}
