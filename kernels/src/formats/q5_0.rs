//! Q5_0: 32 weights `d·(q − 16)`, q in 0..32, one f16 scale (ggml's `block_q5_0`).

#![allow(clippy::needless_range_loop)] // index arithmetic mirrors the bit layouts

use super::legacy::{inverse, pack_nibbles, q5_high, q5_values, signed_max, RowWeights};
use super::q8_0::BlockQ8_0;
use super::search::make_qx_quants;
use super::{ggml_quantizer, Format};
use crate::blocks::{as_blocks, f16_getters};
use crate::num::{f16_ggml, trunc_i32, QK};
use crate::types::GgmlType;

const BYTES: usize = 22;

/// Q5_0 block: `d · (q − 16)`, q in 0..32; bit j of `qh` is the fifth bit of element j.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockQ5_0 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Fifth bits, a little-endian u32.
    pub qh: [u8; 4],
    /// Low nibbles, laid out as in Q4_0.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(core::mem::size_of::<BlockQ5_0>() == 22);
f16_getters!(BlockQ5_0: d);

/// The Q5_0 format.
pub(crate) const FORMAT: Format = Format {
    ty: GgmlType::Q5_0,
    quantize_ref: quantize_row_ref,
    quantize: ggml_quantizer!(quantize_row_ref, weighted: quantize_row_impl),
    dequantize,
    dot: Some(dot),
    scale_offsets: &[0],
};

/// `quantize_row_q5_0_ref`: the path ggml takes without an importance row.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BYTES)) {
        let d = signed_max(x) / -16.0;
        let id = inverse(d);
        y[..2].copy_from_slice(&f16_ggml(d));
        let l: [u8; QK] =
            std::array::from_fn(|j| (trunc_i32(x[j] * id + 16.5) as i8).min(31) as u8);
        let qh = pack_nibbles(&l, &mut y[6..]);
        y[2..6].copy_from_slice(&qh.to_le_bytes());
    }
}

/// `quantize_row_q5_0_impl` with an importance row (one whole row and its weights).
pub fn quantize_row_impl(src: &[f32], qw: &[f32], dst: &mut [u8]) {
    let rw = RowWeights::new(src);
    let blocks = src.chunks_exact(QK).zip(qw.chunks_exact(QK));
    for ((xb, qb), y) in blocks.zip(dst.chunks_exact_mut(BYTES)) {
        let mut l = [0i8; QK];
        let d = make_qx_quants(16, xb, &mut l, Some(&rw.block(xb, qb)));
        y[..2].copy_from_slice(&f16_ggml(d));
        let qh = pack_nibbles(&l.map(|v| v as u8), &mut y[6..]);
        y[2..6].copy_from_slice(&qh.to_le_bytes());
    }
}

/// Q5_0 to f32.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ5_0>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = b.d();
        for j in 0..QK / 2 {
            let (h0, h1) = q5_high(b.qh, j);
            y[j] = (((b.qs[j] & 0x0f) | h0) as i32 - 16) as f32 * d;
            y[j + QK / 2] = (((b.qs[j] >> 4) | h1) as i32 - 16) as f32 * d;
        }
    }
}

/// Q5_0 weights · Q8_0 activations: exact integer block sums, scaled and summed in block order.
pub fn dot(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ5_0>(w)
        .iter()
        .zip(as_blocks::<BlockQ8_0>(a))
    {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let (lo, hi) = q5_values(&x.qs, x.qh, j);
            sumi += (lo - 16) * y.qs[j] as i32 + (hi - 16) * y.qs[j + QK / 2] as i32;
        }
        s += (x.d() * y.d()) * sumi as f32;
    }
    s
}
