//! Every tensor format gq implements, one file each (one per family for gq's TurboQuant types,
//! `tq*.rs`, see [`tq`]): its block layout, scale packing, reference quantizer (plain and
//! importance-weighted), dequantizer and scalar dot product.
//! The scalar code here is the truth that the SIMD paths (in `x86/`, `neon/`, `vector/`) are
//! tested against.
//!
//! [`format`] is the one registry from a [`GgmlType`] to its implementation. The writer side
//! (gq's pipeline) quantizes through it; [`crate::dispatch`] builds its scalar table from it.
//!
//! # Adding a format
//! Write `formats/<name>.rs` with a `pub(crate) const FORMAT: Format`, add one line to
//! [`REGISTRY`] (and its id to [`GgmlType`] if it is new), and test it in that file. SIMD
//! paths are optional and go beside the others, behind the same [`Isa`].

pub mod bf16;
pub mod f16;
pub mod f32;
mod k45;
pub(crate) mod kquant;
mod legacy;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;
pub mod q8_1;
pub mod q8_k;
pub(crate) mod search;
pub mod tq;
pub mod tq_codebook;
pub mod tq_polar;
pub mod tq_rotation;
#[rustfmt::skip]
pub mod tq_tables;
pub mod tq_tcq;
pub(crate) mod tq_trellis;

use crate::isa::Isa;
use crate::types::GgmlType;

/// A row quantizer: `src` (whole blocks) with its optional importance row (one weight per
/// element) into `dst` (exactly its bytes), on the given ISA (or the best one below it that the
/// CPU has). Every ISA gives the same bytes.
pub type QuantizeFn = fn(src: &[f32], imatrix: Option<&[f32]>, dst: &mut [u8], isa: Isa);
/// A plain row quantizer (no importance, reference path).
pub type QuantizeRefFn = fn(src: &[f32], dst: &mut [u8]);
/// Dequantizes whole blocks into f32.
pub type DequantFn = fn(&[u8], &mut [f32]);
/// Dot product of a weight row with an activation row of the type's
/// [`GgmlType::vec_dot_type`] (little-endian f32 bytes for the float types).
pub type DotFn = fn(&[u8], &[u8]) -> f32;

/// One tensor format: everything gq knows about a type's bytes.
pub struct Format {
    /// The type.
    pub ty: GgmlType,
    /// The reference quantizer without importance (ggml's `quantize_row_*_ref`, or the
    /// converter's conversion for the float types).
    pub quantize_ref: QuantizeRefFn,
    /// The quantizer `ggml_quantize_chunk` runs: [`Format::quantize_ref`] without an
    /// importance row, the weighted path with one (types without one ignore it, as ggml does).
    pub quantize: QuantizeFn,
    /// The reference dequantizer.
    pub dequantize: DequantFn,
    /// The scalar dot product, for weight types (`None` for activation-only types).
    pub dot: Option<DotFn>,
    /// Byte offsets of the f16 scale fields in one block (checked by
    /// [`Format::validate_row`]).
    pub scale_offsets: &'static [usize],
}

/// Every format gq implements: one line each.
pub const REGISTRY: &[&Format] = &[
    &f32::FORMAT,
    &f16::FORMAT,
    &bf16::FORMAT,
    &q4_0::FORMAT,
    &q4_1::FORMAT,
    &q5_0::FORMAT,
    &q5_1::FORMAT,
    &q8_0::FORMAT,
    &q8_1::FORMAT,
    &q2_k::FORMAT,
    &q3_k::FORMAT,
    &q4_k::FORMAT,
    &q5_k::FORMAT,
    &q6_k::FORMAT,
    &q8_k::FORMAT,
    &tq_tcq::FORMAT_TQT4_5,
    &tq_tcq::FORMAT_TQT3_375,
    &tq_tcq::FORMAT_TQT2_5,
    &tq_tcq::FORMAT_TQJ4_5,
    &tq_tcq::FORMAT_TQJ3_375,
    &tq_tcq::FORMAT_TQJ2_5,
    &tq_polar::FORMAT_TQP4_5,
    &tq_polar::FORMAT_TQP3_4375,
    &tq_polar::FORMAT_TQP2_5,
    &tq::FORMAT_TQA8,
];

/// The implementation of `ty`, or `None` when gq cannot compute with that type.
pub fn format(ty: GgmlType) -> Option<&'static Format> {
    REGISTRY.iter().copied().find(|f| f.ty == ty)
}

impl Format {
    /// The type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    fn check(&self, n: usize, imatrix: Option<&[f32]>, dst: usize) {
        let bytes = self.ty.row_bytes(n).unwrap_or_else(|| {
            panic!(
                "{}: row length {n} is not a multiple of {}",
                self.ty,
                self.ty.block_size()
            )
        });
        assert_eq!(dst, bytes, "{}: destination is not one row", self.ty);
        if let Some(w) = imatrix {
            assert_eq!(
                w.len(),
                n,
                "{}: importance row length differs from the row",
                self.ty
            );
        }
    }

    /// Quantizes `src` (a multiple of the block size) into `dst` (exactly its bytes) with the
    /// reference path, on [`Isa::selected`].
    pub fn quantize_row(&self, src: &[f32], dst: &mut [u8]) {
        self.quantize_row_imatrix(src, None, dst)
    }

    /// Quantizes one whole row as ggml's `ggml_quantize_chunk` does, with `imatrix` the row's
    /// importance (one value per column) or `None`, on [`Isa::selected`].
    pub fn quantize_row_imatrix(&self, src: &[f32], imatrix: Option<&[f32]>, dst: &mut [u8]) {
        self.quantize_row_imatrix_isa(src, imatrix, dst, Isa::selected())
    }

    /// [`Format::quantize_row_imatrix`] on `isa` (or the best one below it that the CPU has).
    /// Every ISA gives the same bytes.
    pub fn quantize_row_imatrix_isa(
        &self,
        src: &[f32],
        imatrix: Option<&[f32]>,
        dst: &mut [u8],
        isa: Isa,
    ) {
        self.check(src.len(), imatrix, dst.len());
        (self.quantize)(src, imatrix, dst, isa)
    }

    /// Dequantizes `src` (whole blocks) into `dst` with the reference dequantizer.
    pub fn dequantize_row(&self, src: &[u8], dst: &mut [f32]) {
        self.check(dst.len(), None, src.len());
        (self.dequantize)(src, dst)
    }

    /// ggml's `ggml_validate_row_data` for this type: every f16 scale and min is finite.
    /// llama-quantize refuses rows that fail it ("quantized data validation failed").
    pub fn validate_row(&self, bytes: &[u8]) -> bool {
        if self.scale_offsets.is_empty() {
            return true;
        }
        bytes.chunks_exact(self.ty.block_bytes()).all(|b| {
            self.scale_offsets
                .iter()
                .all(|&o| crate::num::f16_to_f32([b[o], b[o + 1]]).is_finite())
        })
    }
}

/// The quantizer of a type without a weighted path: the importance row and the ISA are
/// ignored (as ggml ignores the importance of F32 / F16 / BF16 / Q8_0).
macro_rules! unweighted {
    ($quantize_ref:path) => {{
        fn quantize(src: &[f32], _imatrix: Option<&[f32]>, dst: &mut [u8], _isa: $crate::isa::Isa) {
            $quantize_ref(src, dst)
        }
        quantize
    }};
}
pub(crate) use unweighted;

/// The quantizer `ggml_quantize_chunk` runs for a type with a weighted path: `$ref`
/// (`fn(&[f32], &mut [u8])`) without an importance row, `$weighted` with one
/// (`fn(&[f32], &[f32], &mut [u8])`, or with `weighted_opt:` `fn(&[f32], Option<&[f32]>,
/// &mut [u8])`). With `vector: $kind`, the vector path of that kind is tried first on the
/// requested ISA (same bytes); otherwise the ISA is ignored.
macro_rules! ggml_quantizer {
    (@weighted $w:path, $src:ident, $qw:ident, $dst:ident) => { $w($src, $qw, $dst) };
    (@weighted_opt $w:path, $src:ident, $qw:ident, $dst:ident) => { $w($src, Some($qw), $dst) };
    ($ref:path, $how:ident: $w:path) => {{
        fn quantize(src: &[f32], imatrix: Option<&[f32]>, dst: &mut [u8], _isa: $crate::isa::Isa) {
            match imatrix {
                None => $ref(src, dst),
                Some(qw) => $crate::formats::ggml_quantizer!(@$how $w, src, qw, dst),
            }
        }
        quantize
    }};
    ($ref:path, $how:ident: $w:path, vector: $kind:expr) => {{
        fn quantize(src: &[f32], imatrix: Option<&[f32]>, dst: &mut [u8], isa: $crate::isa::Isa) {
            if !$crate::vector::quantize_row_isa(isa, $kind, src, imatrix, dst) {
                match imatrix {
                    None => $ref(src, dst),
                    Some(qw) => $crate::formats::ggml_quantizer!(@$how $w, src, qw, dst),
                }
            }
        }
        quantize
    }};
}
pub(crate) use ggml_quantizer;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_complete_and_consistent() {
        for (i, f) in REGISTRY.iter().enumerate() {
            assert_eq!(format(f.ty).map(|g| g.ty), Some(f.ty));
            assert!(REGISTRY[..i].iter().all(|g| g.ty != f.ty), "{} twice", f.ty);
            for &o in f.scale_offsets {
                assert!(o + 2 <= f.ty.block_bytes(), "{}", f.ty);
            }
            // Weight types have a dot product; its activation type has a format too.
            if let Some(act) = f.ty.vec_dot_type() {
                assert!(format(act).is_some(), "{}", f.ty);
            }
        }
        for t in GgmlType::WEIGHTS.into_iter().chain(GgmlType::TURBOQUANT) {
            assert!(format(t).is_some_and(|f| f.dot.is_some()), "{t}");
        }
        assert!(format(GgmlType::IQ4_XS).is_none());
    }

    #[test]
    fn infinite_scale_is_caught() {
        let mut block = [0u8; 144];
        let q4k = format(GgmlType::Q4_K).unwrap();
        assert!(q4k.validate_row(&block));
        block[2..4].copy_from_slice(&half::f16::NEG_INFINITY.to_le_bytes());
        assert!(!q4k.validate_row(&block));
        let mut q6 = [0u8; 210];
        q6[208..210].copy_from_slice(&half::f16::NAN.to_le_bytes());
        assert!(!format(GgmlType::Q6_K).unwrap().validate_row(&q6));
    }
}
