use super::Format;
use crate::gguf::GgmlType;
use half::{bf16, f16};

/// 32-bit float, stored as is.
pub struct F32;
/// IEEE half, round to nearest even (numpy's `astype(float16)`, ggml's `GGML_FP32_TO_FP16`).
pub struct F16;
/// bfloat16 as ggml makes it: NaN forced quiet, round to nearest even.
pub struct Bf16;

impl Format for F32 {
    fn ty(&self) -> GgmlType {
        GgmlType::F32
    }
    fn quantize_row(&self, src: &[f32], dst: &mut [u8]) {
        for (d, s) in dst.chunks_exact_mut(4).zip(src) {
            d.copy_from_slice(&s.to_le_bytes());
        }
    }
    fn dequantize_row(&self, src: &[u8], dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
            *d = f32::from_le_bytes(s.try_into().unwrap());
        }
    }
}

impl Format for F16 {
    fn ty(&self) -> GgmlType {
        GgmlType::F16
    }
    fn quantize_row(&self, src: &[f32], dst: &mut [u8]) {
        for (d, s) in dst.chunks_exact_mut(2).zip(src) {
            d.copy_from_slice(&f16::from_f32(*s).to_le_bytes());
        }
    }
    fn dequantize_row(&self, src: &[u8], dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
            *d = f16::from_le_bytes([s[0], s[1]]).to_f32();
        }
    }
}

/// ggml's `ggml_compute_fp32_to_bf16`.
#[inline]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u as u64 + (0x7fff + ((u >> 16) & 1)) as u64) >> 16) as u16
}

impl Format for Bf16 {
    fn ty(&self) -> GgmlType {
        GgmlType::BF16
    }
    fn quantize_row(&self, src: &[f32], dst: &mut [u8]) {
        for (d, s) in dst.chunks_exact_mut(2).zip(src) {
            d.copy_from_slice(&f32_to_bf16_bits(*s).to_le_bytes());
        }
    }
    fn dequantize_row(&self, src: &[u8], dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
            *d = bf16::from_le_bytes([s[0], s[1]]).to_f32();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_matches_ggml_rules() {
        // Exactly halfway between two bf16 values: ties to even.
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82);
        // Signalling NaN becomes quiet.
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x7f80_0001)), 0x7fc0);
        assert_eq!(f32_to_bf16_bits(f32::INFINITY), 0x7f80);
    }

    #[test]
    fn f16_round_trip_of_exact_values() {
        let xs = [0.0f32, -1.5, 65504.0, 6.1035156e-5, 5.9604645e-8];
        let mut b = vec![0u8; xs.len() * 2];
        F16.quantize_row(&xs, &mut b);
        let mut back = vec![0f32; xs.len()];
        F16.dequantize_row(&b, &mut back);
        assert_eq!(back, xs);
    }
}
