//! F32: 32-bit floats, stored as they are (little-endian).

use super::{unweighted, Format};
use crate::num::{f32_at, sum8};
use crate::types::GgmlType;

/// The F32 format.
pub(crate) const FORMAT: Format = Format {
    ty: GgmlType::F32,
    quantize_ref: quantize_row_ref,
    quantize: unweighted!(quantize_row_ref),
    dequantize,
    dot: Some(dot),
    scale_offsets: &[],
};

/// f32 values to their little-endian bytes.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    for (d, s) in dst.chunks_exact_mut(4).zip(src) {
        d.copy_from_slice(&s.to_le_bytes());
    }
}

/// Little-endian bytes to f32.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (i, o) in dst.iter_mut().enumerate().take(src.len() / 4) {
        *o = f32_at(src, i);
    }
}

/// F32 weights · f32 activations, in eight partial sums ([`crate::num::sum8`]'s order; no
/// fused multiply-add).
pub fn dot(w: &[u8], a: &[u8]) -> f32 {
    sum8(w.len() / 4, |i| f32_at(w, i) * f32_at(a, i))
}
