//! F16: IEEE half floats, converted as `convert_hf_to_gguf.py` converts (numpy's
//! `astype(float16)`, [`crate::num::f16_numpy`]).

use super::{unweighted, Format};
use crate::num::{f16_numpy, f16_to_f32, f32_at, sum8};
use crate::types::GgmlType;

/// The F16 format.
pub(crate) const FORMAT: Format = Format {
    ty: GgmlType::F16,
    quantize_ref: quantize_row_ref,
    quantize: unweighted!(quantize_row_ref),
    dequantize,
    dot: Some(dot),
    scale_offsets: &[],
};

/// f32 values to f16, round to nearest even (numpy's rules).
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    for (d, s) in dst.chunks_exact_mut(2).zip(src) {
        d.copy_from_slice(&f16_numpy(*s));
    }
}

/// f16 to f32 (exact).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (o, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *o = f16_to_f32([b[0], b[1]]);
    }
}

/// F16 weights · f32 activations, in eight partial sums ([`crate::num::sum8`]'s order).
pub fn dot(w: &[u8], a: &[u8]) -> f32 {
    sum8(w.len() / 2, |i| {
        f16_to_f32([w[2 * i], w[2 * i + 1]]) * f32_at(a, i)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_exact_values() {
        let xs = [0.0f32, -1.5, 65504.0, 6.1035156e-5, 5.9604645e-8];
        let mut b = vec![0u8; xs.len() * 2];
        quantize_row_ref(&xs, &mut b);
        let mut back = vec![0f32; xs.len()];
        dequantize(&b, &mut back);
        assert_eq!(back, xs);
    }
}
