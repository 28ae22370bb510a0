//! Tensor formats: pure functions from rows of f32 to the bytes of a ggml (or gq) type and back.
//! No I/O, no threads, no model knowledge. These are the reference implementations that the
//! kernels are tested against.

mod float;
mod isa;
pub mod kquants;
pub mod legacy;
mod num;
mod q8;
mod search;
mod simd;

pub use float::{Bf16, F16, F32};
pub use isa::Isa;
pub use kquants::{Q2_K, Q3_K, Q4_K, Q5_K, Q6_K};
pub use legacy::{Q4_0, Q4_1, Q5_0, Q5_1};
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
    /// Quantizes one whole row as ggml's `ggml_quantize_chunk` does with an importance matrix:
    /// `imatrix` is that row's importance (`src.len()` values, one per column) or `None`. With
    /// `None` this is exactly [`Format::quantize_row`]; formats without a weighted path (the
    /// float types, Q8_0) ignore the weights, as ggml does.
    fn quantize_row_imatrix(&self, src: &[f32], imatrix: Option<&[f32]>, dst: &mut [u8]) {
        let _ = imatrix;
        self.quantize_row(src, dst)
    }
    /// [`Format::quantize_row_imatrix`] on the instruction set `isa` (or the best one below
    /// it that the CPU has) instead of [`Isa::current`]. Every instruction set gives the same
    /// bytes; formats without a vector path ignore `isa`.
    fn quantize_row_imatrix_isa(
        &self,
        src: &[f32],
        imatrix: Option<&[f32]>,
        dst: &mut [u8],
        isa: Isa,
    ) {
        let _ = isa;
        self.quantize_row_imatrix(src, imatrix, dst)
    }
}

/// The format implementation for a type, if gq can write it.
pub fn format_for(ty: GgmlType) -> Option<&'static dyn Format> {
    Some(match ty {
        GgmlType::F32 => &F32,
        GgmlType::F16 => &F16,
        GgmlType::BF16 => &Bf16,
        GgmlType::Q8_0 => &Q8_0,
        GgmlType::Q4_0 => &Q4_0,
        GgmlType::Q4_1 => &Q4_1,
        GgmlType::Q5_0 => &Q5_0,
        GgmlType::Q5_1 => &Q5_1,
        GgmlType::Q2_K => &Q2_K,
        GgmlType::Q3_K => &Q3_K,
        GgmlType::Q4_K => &Q4_K,
        GgmlType::Q5_K => &Q5_K,
        GgmlType::Q6_K => &Q6_K,
        _ => return None,
    })
}

/// ggml's `roundf`: round half away from zero.
#[inline]
pub(crate) fn roundf(x: f32) -> f32 {
    x.round()
}

/// Byte offsets of the f16 scale fields inside one block of a quantized type.
fn scale_offsets(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        _ => &[],
    }
}

/// ggml's `ggml_validate_row_data` for the block types gq writes: every f16 scale and min is
/// finite. llama-quantize refuses rows that fail it ("quantized data validation failed").
pub fn validate_row(ty: GgmlType, bytes: &[u8]) -> bool {
    let offs = scale_offsets(ty);
    if offs.is_empty() {
        return true;
    }
    bytes.chunks_exact(ty.block_bytes()).all(|b| {
        offs.iter()
            .all(|&o| half::f16::from_le_bytes([b[o], b[o + 1]]).is_finite())
    })
}

#[cfg(test)]
mod validate_tests {
    use super::*;

    #[test]
    fn infinite_scale_is_caught() {
        let mut block = [0u8; 144];
        assert!(validate_row(GgmlType::Q4_K, &block));
        block[2..4].copy_from_slice(&half::f16::NEG_INFINITY.to_le_bytes());
        assert!(!validate_row(GgmlType::Q4_K, &block));
        let mut q6 = [0u8; 210];
        q6[208..210].copy_from_slice(&half::f16::NAN.to_le_bytes());
        assert!(!validate_row(GgmlType::Q6_K, &q6));
    }
}
