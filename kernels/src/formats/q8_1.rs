//! Q8_1: Q8_0 plus `s = d · Σ q` (f16), the activation type of Q4_1 and Q5_1 (their min
//! term needs the block sum). Never stored in files.

use super::{unweighted, Format};
use crate::blocks::{as_blocks, as_blocks_mut};
use crate::num::{f16_ggml, f16_to_f32, QK};
use crate::types::GgmlType;

/// Q8_1 block.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_1 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// `d` times the sum of the quants (f16).
    pub s: [u8; 2],
    /// Quants.
    pub qs: [i8; QK],
}
const _: () = assert!(core::mem::size_of::<BlockQ8_1>() == 36);

impl BlockQ8_1 {
    /// The scale.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_to_f32(self.d)
    }
    /// The scaled block sum.
    #[inline(always)]
    pub fn s(&self) -> f32 {
        f16_to_f32(self.s)
    }
}

/// The Q8_1 format (activation only: no dot product of its own).
pub(crate) const FORMAT: Format = Format {
    ty: GgmlType::Q8_1,
    quantize_ref: quantize_row_ref,
    quantize: unweighted!(quantize_row_ref),
    dequantize,
    dot: None,
    scale_offsets: &[],
};

/// ggml's `quantize_row_q8_1_ref`: Q8_0's quants plus the f16 of `Σq · d`.
pub fn quantize_row_ref(x: &[f32], dst: &mut [u8]) {
    for (y, x) in as_blocks_mut::<BlockQ8_1>(dst)
        .iter_mut()
        .zip(x.chunks_exact(QK))
    {
        let (d, id) = super::q8_0::scale(x);
        y.d = f16_ggml(d);
        let mut sum = 0i32;
        for (q, &v) in y.qs.iter_mut().zip(x) {
            *q = (v * id).round() as i8;
            sum += *q as i32;
        }
        y.s = f16_ggml(sum as f32 * d);
    }
}

/// Q8_1 to f32 (the sum field is not needed).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ8_1>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = b.d();
        for (o, &q) in y.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}
