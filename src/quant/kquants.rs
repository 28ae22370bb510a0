//! ggml's k-quants Q2_K … Q6_K: super-blocks of 256 elements split into sub-blocks of 16 or 32
//! with quantized per-sub-block scales (and mins).
//!
//! Each type has two quantizers, as in ggml:
//! - `quantize_row_ref` (`quantize_row_q4_K_ref` …), what `ggml_quantize_chunk` (and so
//!   llama-quantize) runs when there is no importance matrix;
//! - `quantize_row_impl` (`quantize_row_q4_K_impl` …), what it runs with an importance row: a
//!   weighted search whose weights come from the imatrix and the super-block's variance.
//!
//! [`Format::quantize_row`](crate::quant::Format::quantize_row) is the reference path;
//! [`Format::quantize_row_imatrix`](crate::quant::Format::quantize_row_imatrix) picks the
//! path the way ggml's `quantize_q4_K` does.

/// The [`Format`](crate::quant::Format) implementation the k-quants share: row checks, the
/// vector path when the CPU has one, else the type's `quantize_scalar`; dequantization by the
/// type's `dequantize`.
macro_rules! kquant_format {
    ($t:ident, $kind:expr, $bytes:expr) => {
        impl crate::quant::Format for $t {
            fn ty(&self) -> crate::gguf::GgmlType {
                crate::gguf::GgmlType::$t
            }

            fn quantize_row(&self, src: &[f32], dst: &mut [u8]) {
                self.quantize_row_imatrix(src, None, dst)
            }

            fn quantize_row_imatrix(&self, src: &[f32], imatrix: Option<&[f32]>, dst: &mut [u8]) {
                self.quantize_row_imatrix_isa(src, imatrix, dst, crate::quant::Isa::current())
            }

            fn quantize_row_imatrix_isa(
                &self,
                src: &[f32],
                imatrix: Option<&[f32]>,
                dst: &mut [u8],
                isa: crate::quant::Isa,
            ) {
                super::check(src, imatrix, dst, $bytes);
                if !crate::quant::simd::quantize_row_isa(isa, $kind, src, imatrix, dst) {
                    $t::quantize_scalar(src, imatrix, dst);
                }
            }

            fn dequantize_row(&self, src: &[u8], dst: &mut [f32]) {
                $t::dequantize(src, dst)
            }
        }
    };
}

mod q2_k;
mod q3_k;
mod q45_k;
mod q6_k;

pub use q2_k::Q2_K;
pub use q3_k::Q3_K;
pub use q45_k::{Q4_K, Q5_K};
pub use q6_k::Q6_K;

/// The vector paths' per-type batch kernels ([`crate::quant::simd`]).
pub(crate) mod vector {
    pub(crate) use super::q2_k::Q2Rows;
    pub(crate) use super::q3_k::Q3Rows;
    pub(crate) use super::q45_k::{Q4Rows, Q5Rows};
    pub(crate) use super::q6_k::Q6Rows;
}

use super::num::QK_K;

/// Checks a row, its importance row and its destination before quantizing.
fn check(src: &[f32], imatrix: Option<&[f32]>, dst: &[u8], block_bytes: usize) {
    assert_eq!(
        src.len() % QK_K,
        0,
        "row length {} is not a multiple of {QK_K}",
        src.len()
    );
    assert_eq!(
        dst.len(),
        src.len() / QK_K * block_bytes,
        "destination is not one row"
    );
    if let Some(w) = imatrix {
        assert_eq!(
            w.len(),
            src.len(),
            "importance row length differs from the row"
        );
    }
}

/// Packs 256 two-bit levels as Q2_K / Q3_K do: byte `32·h + l` holds elements
/// `128·h + l + 32·s` in bits `2s..2s+2`.
#[inline]
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8]) {
    let qs: &mut [u8; QK_K / 4] = qs.try_into().unwrap();
    for h in 0..QK_K / 128 {
        for i in 0..32 {
            let at = 128 * h + i;
            qs[32 * h + i] = l[at] | (l[at + 32] << 2) | (l[at + 64] << 4) | (l[at + 96] << 6);
        }
    }
}

/// The two-bit level of element `128·h + 32·s + i` (`s` = shift / 2) from [`pack_2bit`]'s layout.
fn level_2bit(qs: &[u8], h: usize, s: usize, i: usize) -> u8 {
    (qs[32 * h + i] >> (2 * s)) & 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::Format;

    /// Deterministic pseudo-random values (splitmix64) in [-1, 1).
    pub(crate) fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn all() -> [&'static dyn Format; 5] {
        [&Q2_K, &Q3_K, &Q4_K, &Q5_K, &Q6_K]
    }

    fn round_trip(f: &dyn Format, x: &[f32], w: Option<&[f32]>) -> Vec<f32> {
        let mut b = vec![0xa5u8; f.ty().row_bytes(x.len() as u64).unwrap() as usize];
        f.quantize_row_imatrix(x, w, &mut b);
        let mut y = vec![0f32; x.len()];
        f.dequantize_row(&b, &mut y);
        y
    }

    /// Root mean square error relative to the root mean square of `x`.
    fn rel_rmse(x: &[f32], y: &[f32]) -> f32 {
        let e: f32 = x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum();
        let s: f32 = x.iter().map(|a| a * a).sum();
        (e / s).sqrt()
    }

    /// Rough error budgets for uniform noise: about half a step of each type's grid.
    fn budget(f: &dyn Format) -> f32 {
        [0.45, 0.25, 0.12, 0.06, 0.03][f.ty().id() as usize - 10]
    }

    #[test]
    fn zero_super_block_dequantizes_to_zero() {
        for f in all() {
            for w in [None, Some(&[1.0f32; QK_K][..])] {
                let y = round_trip(f, &[0.0; QK_K], w);
                assert!(y.iter().all(|&v| v == 0.0), "{}", f.ty());
            }
        }
    }

    #[test]
    fn one_super_block_row_is_close() {
        let x = noise(QK_K, 1);
        let w: Vec<f32> = noise(QK_K, 2).iter().map(|v| v.abs() + 0.1).collect();
        for f in all() {
            for wt in [None, Some(&w[..])] {
                let e = rel_rmse(&x, &round_trip(f, &x, wt));
                assert!(e < budget(f), "{} weighted={}: {e}", f.ty(), wt.is_some());
            }
        }
    }

    #[test]
    fn negative_and_huge_values() {
        // All negative: the affine types need a min, the symmetric ones a negative max.
        let neg: Vec<f32> = noise(QK_K, 3).iter().map(|v| -1.5 - v).collect();
        for f in all() {
            let e = rel_rmse(&neg, &round_trip(f, &neg, None));
            assert!(e < budget(f), "{}: {e}", f.ty());
        }
        // One huge value in one sub-block: it survives, other sub-blocks keep their scales.
        let mut x = noise(2 * QK_K, 4);
        x[300] = 3.0e4;
        for f in all() {
            let y = round_trip(f, &x, None);
            assert!(
                (y[300] - 3.0e4).abs() < 3.0e4 * 0.1,
                "{}: {}",
                f.ty(),
                y[300]
            );
            let e = rel_rmse(&x[..QK_K], &y[..QK_K]);
            assert!(e < budget(f), "{}: first super-block {e}", f.ty());
        }
    }

    #[test]
    fn block_sizes_match_ggml_types() {
        for f in all() {
            assert_eq!(f.ty().block_size(), QK_K);
        }
    }
}
