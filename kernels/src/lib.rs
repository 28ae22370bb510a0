//! gq's compute kernels: dequantization, dot products, GEMV and small-batch GEMM for every
//! ggml format gq reads (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K … Q6_K), with a
//! scalar reference and AVX2 / AVX-512 paths picked at run time (see [`dispatch`]).
//!
//! Quantized weights are multiplied the way ggml does it: the activation row is quantized to
//! the weight type's [`QType::vec_dot_type`] (Q8_0, Q8_1 or Q8_K) and each block's integer dot
//! product is exact; float weights take f32 activations, except that GEMV/GEMM round the
//! activations to BF16 for BF16 weights where the CPU has AVX512_BF16 (see [`FloatAct`]).
//!
//! ```
//! use gq_kernels::{kernels, QType};
//! let k = kernels();
//! let (rows, cols) = (4, 64);
//! let w = vec![0u8; QType::Q8_0.row_bytes(cols) * rows];
//! let x = vec![1.0f32; cols];
//! let mut y = vec![0f32; rows];
//! let mut scratch = vec![0u8; gq_kernels::gemv_scratch_bytes(QType::Q8_0, cols)];
//! k.gemv(QType::Q8_0, &w, &x, &mut y, &mut scratch);
//! assert_eq!(y, [0.0; 4]);
//! ```

pub mod bench;
pub mod blocks;
pub mod dispatch;
pub mod gemv;
pub mod neon;
pub mod scalar;
pub mod stream;
mod types;
#[cfg(target_arch = "x86_64")]
pub mod x86;

pub use dispatch::{act_bytes, kernels, kernels_for, selected_isa, FloatAct, Isa, Kernels};
pub use gemv::{gemm_scratch_bytes, gemv_scratch_bytes};
pub use types::QType;

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
