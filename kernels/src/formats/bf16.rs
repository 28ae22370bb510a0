//! BF16: bfloat16, rounded as ggml and gguf-py round ([`crate::num::f32_to_bf16`]).
//!
//! Besides the usual f32-activation dot product, BF16 weights can meet BF16 activations
//! ([`dot_bf16`], the reference of the `vdpbf16ps` kernels): every product of two BF16 values is
//! exact in f32.

use super::{unweighted, Format};
use crate::num::{bf16_to_f32, f32_at, f32_to_bf16, sum8};
use crate::types::GgmlType;

/// The BF16 format.
pub(crate) const FORMAT: Format = Format {
    ty: GgmlType::BF16,
    quantize_ref: quantize_row_ref,
    quantize: unweighted!(quantize_row_ref),
    dequantize,
    dot: Some(dot),
    scale_offsets: &[],
};

#[inline(always)]
fn at(b: &[u8], i: usize) -> f32 {
    bf16_to_f32(u16::from_le_bytes([b[2 * i], b[2 * i + 1]]))
}

/// f32 values to BF16 (also how activations are rounded for the BF16 × BF16 kernels, as
/// ggml's `ggml_fp32_to_bf16_row_ref`).
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    for (d, s) in dst.chunks_exact_mut(2).zip(src) {
        d.copy_from_slice(&f32_to_bf16(*s).to_le_bytes());
    }
}

/// BF16 to f32 (exact).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (i, o) in dst.iter_mut().enumerate().take(src.len() / 2) {
        *o = at(src, i);
    }
}

/// BF16 weights · f32 activations, in eight partial sums ([`crate::num::sum8`]'s order).
pub fn dot(w: &[u8], a: &[u8]) -> f32 {
    sum8(w.len() / 2, |i| at(w, i) * f32_at(a, i))
}

/// BF16 weights · BF16 activations, in eight partial sums ([`crate::num::sum8`]'s order).
pub fn dot_bf16(w: &[u8], a: &[u8]) -> f32 {
    sum8(w.len() / 2, |i| at(w, i) * at(a, i))
}
