//! Q8_K: the activation type of the k-quants: an f32 scale, 256 int8 quants and the sums of
//! each 16 (so the k-quants' mins cost one multiply per group). Never stored in files.

use super::{unweighted, Format};
use crate::blocks::{as_blocks, as_blocks_mut};
use crate::num::{nearest_int, QK_K};
use crate::types::GgmlType;

/// Q8_K block.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8K {
    /// Scale (little-endian f32).
    pub d: [u8; 4],
    /// Quants.
    pub qs: [i8; QK_K],
    /// Sum of each 16 quants (little-endian i16).
    pub bsums: [[u8; 2]; QK_K / 16],
}
const _: () = assert!(core::mem::size_of::<BlockQ8K>() == 292);

impl BlockQ8K {
    /// The scale.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f32::from_le_bytes(self.d)
    }
    /// Sum of quants `16·j .. 16·j + 16`.
    #[inline(always)]
    pub fn bsum(&self, j: usize) -> i16 {
        i16::from_le_bytes(self.bsums[j])
    }
}

/// The Q8_K format (activation only: no dot product of its own).
pub(crate) const FORMAT: Format = Format {
    ty: GgmlType::Q8_K,
    quantize_ref: quantize_row_ref,
    quantize: unweighted!(quantize_row_ref),
    dequantize,
    dot: None,
    scale_offsets: &[],
};

/// ggml's `quantize_row_q8_K_ref`: scale `−max/127` where `max` is the first element of
/// largest magnitude, quants rounded half to even, and the 16 group sums. An all-zero block gets
/// scale 0 and zero quants and sums (ggml leaves its sums unwritten).
pub fn quantize_row_ref(x: &[f32], dst: &mut [u8]) {
    for (y, x) in as_blocks_mut::<BlockQ8K>(dst)
        .iter_mut()
        .zip(x.chunks_exact(QK_K))
    {
        let mut amax = 0f32;
        let mut max = 0f32;
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            y.d = 0f32.to_le_bytes();
            y.qs = [0; QK_K];
            y.bsums = [[0; 2]; QK_K / 16];
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in y.qs.iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for j in 0..QK_K / 16 {
            let s: i32 = y.qs[16 * j..16 * j + 16].iter().map(|&q| q as i32).sum();
            y.bsums[j] = (s as i16).to_le_bytes();
        }
        y.d = (1.0 / iscale).to_le_bytes();
    }
}

/// Q8_K to f32.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ8K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = b.d();
        for (o, &q) in y.iter_mut().zip(&b.qs) {
            *o = d * q as f32;
        }
    }
}
