//! Tensor formats: pure functions from rows of f32 to the bytes of a ggml (or gq) type and back.
//! No I/O, no threads, no model knowledge. These are the reference implementations that the
//! kernels are tested against.

mod float;
mod q8;

pub use float::{Bf16, F16, F32};
pub use q8::Q8_0;

use crate::gguf::GgmlType;

/// One tensor format: quantizes and dequantizes whole rows (a multiple of the block size).
pub trait Format: Sync + Send {
    /// The ggml type this format writes.
    fn ty(&self) -> GgmlType;
    /// Quantizes `src` (length a multiple of the block size) into `dst` (exactly its row bytes).
    fn quantize_row(&self, src: &[f32], dst: &mut [u8]);
    /// Dequantizes `src` (whole blocks) into `dst`.
    fn dequantize_row(&self, src: &[u8], dst: &mut [f32]);
}

/// The format implementation for a type, if gq can write it.
pub fn format_for(ty: GgmlType) -> Option<&'static dyn Format> {
    Some(match ty {
        GgmlType::F32 => &F32,
        GgmlType::F16 => &F16,
        GgmlType::BF16 => &Bf16,
        GgmlType::Q8_0 => &Q8_0,
        _ => return None,
    })
}

/// ggml's `roundf`: round half away from zero.
#[inline]
pub(crate) fn roundf(x: f32) -> f32 {
    x.round()
}
