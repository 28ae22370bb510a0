//! gq's compute kernels. This crate grows the dequantize / dot / GEMV paths per format; for now
//! it holds the scalar row dot product that later SIMD paths are checked against.

/// Dot product of two f32 rows (scalar reference, sequential accumulation).
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_f32: rows of different length");
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn dot_small() {
        assert_eq!(super::dot_f32(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]), 32.0);
    }
}
