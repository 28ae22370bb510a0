//! What ggml's legacy 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1) share: nibble packing,
//! the extremes the reference quantizers take their scale from, and the row-variance weights of
//! the importance-weighted paths.
//!
//! Without an importance row, ggml's `quantize_q4_0` (and the others) run the reference
//! quantizer (`quantize_row_q4_0_ref`): one scale from the block's extreme values, levels by
//! truncating `x/d + offset`. With one they run `quantize_row_q4_0_impl`, a weighted scale
//! search whose weights also depend on the variance of the whole row.

use super::search::AffineSearch;
use crate::num::QK;

/// Packs 32 levels as nibbles (low 4 bits) and returns the fifth bits as ggml's `qh` word.
pub(super) fn pack_nibbles(l: &[u8; QK], qs: &mut [u8]) -> u32 {
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        qs[j] = (l[j] & 0x0f) | ((l[j + QK / 2] & 0x0f) << 4);
        qh |= ((l[j] as u32 & 0x10) >> 4) << j;
        qh |= ((l[j + QK / 2] as u32 & 0x10) >> 4) << (j + QK / 2);
    }
    qh
}

/// The signed element of largest magnitude (first on ties), as the symmetric formats use it.
pub(super) fn signed_max(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// Smallest and largest element, as the affine formats find them.
pub(super) fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// The reciprocal ggml multiplies by (zero for a zero scale).
pub(super) fn inverse(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// Per-element weights of the weighted legacy paths: `qw·sqrt(σ² + x²)`, σ² over the row.
pub(super) struct RowWeights {
    sigma2: f32,
}

impl RowWeights {
    pub(super) fn new(row: &[f32]) -> Self {
        let mut sum_x2 = 0f32;
        for &v in row {
            sum_x2 += v * v;
        }
        RowWeights {
            sigma2: sum_x2 / row.len() as f32,
        }
    }

    pub(super) fn block(&self, xb: &[f32], qw: &[f32]) -> [f32; QK] {
        std::array::from_fn(|j| qw[j] * (self.sigma2 + xb[j] * xb[j]).sqrt())
    }
}

/// The affine search of the weighted Q4_1 / Q5_1 paths (`make_qkx3_quants`, 36 steps).
pub(super) fn affine(nmax: i32) -> AffineSearch {
    AffineSearch {
        nmax,
        rmin: -0.9,
        rdelta: 0.05,
        nstep: 36,
        use_mad: false,
    }
}

/// The fifth bits of elements `j` and `j + 16` of a Q5 block, as 0 or 16.
#[inline(always)]
pub(super) fn q5_high(qh: [u8; 4], j: usize) -> (u8, u8) {
    let h = u32::from_le_bytes(qh);
    (((h >> j) & 1) as u8 * 16, ((h >> (j + 16)) & 1) as u8 * 16)
}

/// The 5-bit values of elements `j` and `j + 16` of a Q5 block.
#[inline(always)]
pub(super) fn q5_values(qs: &[u8; 16], qh: [u8; 4], j: usize) -> (i32, i32) {
    let (h0, h1) = q5_high(qh, j);
    ((qs[j] & 0x0f | h0) as i32, (qs[j] >> 4 | h1) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::Format;
    use crate::num::f16_at;
    use crate::types::GgmlType;

    fn all() -> [&'static Format; 4] {
        [
            &super::super::q4_0::FORMAT,
            &super::super::q4_1::FORMAT,
            &super::super::q5_0::FORMAT,
            &super::super::q5_1::FORMAT,
        ]
    }

    fn round_trip(f: &Format, x: &[f32], w: Option<&[f32]>) -> Vec<f32> {
        let mut b = vec![0xa5u8; f.ty().row_bytes(x.len()).unwrap()];
        f.quantize_row_imatrix(x, w, &mut b);
        let mut y = vec![0f32; x.len()];
        f.dequantize_row(&b, &mut y);
        y
    }

    #[test]
    fn block_sizes_match_ggml_types() {
        for (f, n) in all().into_iter().zip([18, 20, 22, 24]) {
            assert_eq!(f.ty().block_bytes(), n);
            assert_eq!(f.ty().block_size(), QK);
        }
    }

    #[test]
    fn zero_block_is_zero_bytes_and_values() {
        for f in all() {
            for w in [None, Some(&[1.0f32; QK][..])] {
                let mut b = vec![0xffu8; f.ty().block_bytes()];
                f.quantize_row_imatrix(&[0.0; QK], w, &mut b);
                let mut y = [1f32; QK];
                f.dequantize_row(&b, &mut y);
                assert_eq!(y, [0.0; QK], "{}", f.ty());
                // ggml's scale is ±0 (the symmetric types divide 0 by a negative number).
                assert_eq!(f16_at(&b, 0), 0.0, "{}", f.ty());
            }
        }
    }

    #[test]
    fn one_huge_value_is_kept_and_small_ones_vanish() {
        let mut x = [0.001f32; QK];
        x[7] = 1000.0;
        for f in all() {
            let y = round_trip(f, &x, None);
            assert!(
                (y[7] - 1000.0).abs() <= 1000.0 * 1e-3,
                "{}: {}",
                f.ty(),
                y[7]
            );
            assert!(
                y.iter().enumerate().all(|(i, v)| i == 7 || v.abs() < 70.0),
                "{}",
                f.ty()
            );
        }
    }

    #[test]
    fn negative_max_sets_the_sign_of_the_scale() {
        let x: Vec<f32> = (0..QK).map(|i| -(i as f32) / 4.0).collect();
        let mut b = [0u8; 18];
        super::super::q4_0::FORMAT.quantize_row(&x, &mut b);
        // max is -7.75, d = 7.75 / 8 > 0, and the most negative value is level 0 (= -8).
        assert_eq!(f16_at(&b, 0), half::f16::from_f32(7.75 / 8.0).to_f32());
        assert_eq!(b[2 + 15] >> 4, 0);
        let y = round_trip(&super::super::q4_0::FORMAT, &x, None);
        assert!((y[31] + 7.75).abs() < 1e-3);
        for f in all() {
            let y = round_trip(f, &x, None);
            // Half a step of each format's grid over the range [-7.75, 0], plus f16 rounding.
            let tol = match f.ty() {
                GgmlType::Q4_0 => 0.49,
                GgmlType::Q4_1 => 0.27,
                GgmlType::Q5_0 => 0.25,
                _ => 0.13,
            };
            assert!(
                x.iter().zip(&y).all(|(a, b)| (a - b).abs() <= tol),
                "{}: {y:?}",
                f.ty()
            );
        }
    }

    #[test]
    fn one_block_row_with_weights_is_close() {
        let x: Vec<f32> = (0..QK)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.01)
            .collect();
        let w: Vec<f32> = (0..QK).map(|i| 0.5 + (i % 3) as f32).collect();
        for f in all() {
            for wt in [None, Some(&w[..])] {
                let y = round_trip(f, &x, wt);
                let err = x
                    .iter()
                    .zip(&y)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    err <= 0.11 / 7.0 + 1e-3,
                    "{} {:?}: {err}",
                    f.ty(),
                    wt.is_some()
                );
            }
        }
    }
}
