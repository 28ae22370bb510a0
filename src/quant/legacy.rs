//! ggml's legacy 32-element block formats Q4_0, Q4_1, Q5_0 and Q5_1.
//!
//! Without an importance row, ggml's `quantize_q4_0` (and the others) run the reference
//! quantizer (`quantize_row_q4_0_ref`): one scale from the block's extreme values, levels by
//! truncating `x/d + offset`. With one they run `quantize_row_q4_0_impl`, a weighted scale
//! search whose weights also depend on the variance of the whole row.

use super::num::{f16_at, f16_bytes, trunc_i32};
use super::search::{make_qkx_quants, make_qx_quants, AffineSearch};
use super::Format;
use crate::gguf::GgmlType;

/// Elements per block of all four formats.
const QK: usize = 32;

/// Q4_0 block: f16 scale, then 16 bytes of nibbles (element j low, j + 16 high).
const Q4_0_BYTES: usize = 18;
const _: () = assert!(Q4_0_BYTES == 2 + QK / 2);
/// Q4_1 block: f16 scale, f16 min, then 16 bytes of nibbles.
const Q4_1_BYTES: usize = 20;
const _: () = assert!(Q4_1_BYTES == 2 + 2 + QK / 2);
/// Q5_0 block: f16 scale, 32 high bits (u32 LE, bit j for element j), 16 bytes of nibbles.
const Q5_0_BYTES: usize = 22;
const _: () = assert!(Q5_0_BYTES == 2 + 4 + QK / 2);
/// Q5_1 block: f16 scale, f16 min, 32 high bits, 16 bytes of nibbles.
const Q5_1_BYTES: usize = 24;
const _: () = assert!(Q5_1_BYTES == 2 + 2 + 4 + QK / 2);

/// 4-bit symmetric: `x ≈ d·(q - 8)`, d = (signed max) / -8.
pub struct Q4_0;
/// 4-bit affine: `x ≈ d·q + m`, d = (max - min) / 15.
pub struct Q4_1;
/// 5-bit symmetric: `x ≈ d·(q - 16)`, d = (signed max) / -16.
pub struct Q5_0;
/// 5-bit affine: `x ≈ d·q + m`, d = (max - min) / 31.
pub struct Q5_1;

/// Packs 32 levels as nibbles (low 4 bits) and returns the fifth bits as ggml's `qh` word.
fn pack_nibbles(l: &[u8; QK], qs: &mut [u8]) -> u32 {
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        qs[j] = (l[j] & 0x0f) | ((l[j + QK / 2] & 0x0f) << 4);
        qh |= ((l[j] as u32 & 0x10) >> 4) << j;
        qh |= ((l[j + QK / 2] as u32 & 0x10) >> 4) << (j + QK / 2);
    }
    qh
}

/// Reads back level `j` of a block: nibble plus, for the 5-bit formats, its high bit.
fn level(qs: &[u8], qh: u32, j: usize) -> i32 {
    let nib = if j < QK / 2 {
        qs[j] & 0x0f
    } else {
        qs[j - QK / 2] >> 4
    };
    nib as i32 | (((qh >> j) & 1) << 4) as i32
}

/// The signed element of largest magnitude (first on ties), as the symmetric formats use it.
fn signed_max(x: &[f32]) -> f32 {
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
fn min_max(x: &[f32]) -> (f32, f32) {
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
fn inverse(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// Per-element weights of the weighted legacy paths: `qw·sqrt(σ² + x²)`, σ² over the row.
struct RowWeights {
    sigma2: f32,
}

impl RowWeights {
    fn new(row: &[f32]) -> Self {
        let mut sum_x2 = 0f32;
        for &v in row {
            sum_x2 += v * v;
        }
        RowWeights {
            sigma2: sum_x2 / row.len() as f32,
        }
    }

    fn block(&self, xb: &[f32], qw: &[f32]) -> [f32; QK] {
        std::array::from_fn(|j| qw[j] * (self.sigma2 + xb[j] * xb[j]).sqrt())
    }
}

/// The affine search of the weighted Q4_1 / Q5_1 paths (`make_qkx3_quants`, 36 steps).
fn affine(nmax: i32) -> AffineSearch {
    AffineSearch {
        nmax,
        rmin: -0.9,
        rdelta: 0.05,
        nstep: 36,
        use_mad: false,
    }
}

fn check(src: &[f32], imatrix: Option<&[f32]>) {
    assert_eq!(
        src.len() % QK,
        0,
        "row length {} is not a multiple of {QK}",
        src.len()
    );
    if let Some(w) = imatrix {
        assert_eq!(
            w.len(),
            src.len(),
            "importance row length differs from the row"
        );
    }
}

impl Q4_0 {
    /// `quantize_row_q4_0_ref`: the path ggml takes without an importance row.
    pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
        for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(Q4_0_BYTES)) {
            let d = signed_max(x) / -8.0;
            let id = inverse(d);
            y[..2].copy_from_slice(&f16_bytes(d));
            for j in 0..QK / 2 {
                let q0 = (trunc_i32(x[j] * id + 8.5) as i8).min(15) as u8;
                let q1 = (trunc_i32(x[j + QK / 2] * id + 8.5) as i8).min(15) as u8;
                y[2 + j] = q0 | (q1 << 4);
            }
        }
    }

    /// `quantize_row_q4_0_impl` with an importance row (one whole row and its weights).
    pub fn quantize_row_impl(src: &[f32], qw: &[f32], dst: &mut [u8]) {
        let rw = RowWeights::new(src);
        let blocks = src.chunks_exact(QK).zip(qw.chunks_exact(QK));
        for ((xb, qb), y) in blocks.zip(dst.chunks_exact_mut(Q4_0_BYTES)) {
            let mut l = [0i8; QK];
            let d = make_qx_quants(8, xb, &mut l, Some(&rw.block(xb, qb)));
            y[..2].copy_from_slice(&f16_bytes(d));
            for j in 0..QK / 2 {
                y[2 + j] = l[j] as u8 | ((l[j + QK / 2] as u8) << 4);
            }
        }
    }
}

impl Q4_1 {
    /// `quantize_row_q4_1_ref`: the path ggml takes without an importance row.
    pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
        for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(Q4_1_BYTES)) {
            let (min, max) = min_max(x);
            let d = (max - min) / 15.0;
            let id = inverse(d);
            y[..2].copy_from_slice(&f16_bytes(d));
            y[2..4].copy_from_slice(&f16_bytes(min));
            for j in 0..QK / 2 {
                let q0 = (trunc_i32((x[j] - min) * id + 0.5) as i8).min(15) as u8;
                let q1 = (trunc_i32((x[j + QK / 2] - min) * id + 0.5) as i8).min(15) as u8;
                y[4 + j] = q0 | (q1 << 4);
            }
        }
    }

    /// `quantize_row_q4_1_impl` with an importance row (one whole row and its weights).
    pub fn quantize_row_impl(src: &[f32], qw: &[f32], dst: &mut [u8]) {
        let rw = RowWeights::new(src);
        let blocks = src.chunks_exact(QK).zip(qw.chunks_exact(QK));
        for ((xb, qb), y) in blocks.zip(dst.chunks_exact_mut(Q4_1_BYTES)) {
            let (mut l, mut aux) = ([0u8; QK], [0u8; QK]);
            let (d, min) =
                make_qkx_quants(&affine(15), xb, Some(&rw.block(xb, qb)), &mut l, &mut aux);
            y[..2].copy_from_slice(&f16_bytes(d));
            y[2..4].copy_from_slice(&f16_bytes(-min));
            for j in 0..QK / 2 {
                y[4 + j] = l[j] | (l[j + QK / 2] << 4);
            }
        }
    }
}

impl Q5_0 {
    /// `quantize_row_q5_0_ref`: the path ggml takes without an importance row.
    pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
        for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(Q5_0_BYTES)) {
            let d = signed_max(x) / -16.0;
            let id = inverse(d);
            y[..2].copy_from_slice(&f16_bytes(d));
            let l: [u8; QK] =
                std::array::from_fn(|j| (trunc_i32(x[j] * id + 16.5) as i8).min(31) as u8);
            let qh = pack_nibbles(&l, &mut y[6..]);
            y[2..6].copy_from_slice(&qh.to_le_bytes());
        }
    }

    /// `quantize_row_q5_0_impl` with an importance row (one whole row and its weights).
    pub fn quantize_row_impl(src: &[f32], qw: &[f32], dst: &mut [u8]) {
        let rw = RowWeights::new(src);
        let blocks = src.chunks_exact(QK).zip(qw.chunks_exact(QK));
        for ((xb, qb), y) in blocks.zip(dst.chunks_exact_mut(Q5_0_BYTES)) {
            let mut l = [0i8; QK];
            let d = make_qx_quants(16, xb, &mut l, Some(&rw.block(xb, qb)));
            y[..2].copy_from_slice(&f16_bytes(d));
            let qh = pack_nibbles(&l.map(|v| v as u8), &mut y[6..]);
            y[2..6].copy_from_slice(&qh.to_le_bytes());
        }
    }
}

impl Q5_1 {
    /// `quantize_row_q5_1_ref`: the path ggml takes without an importance row.
    pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
        for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(Q5_1_BYTES)) {
            let (min, max) = min_max(x);
            let d = (max - min) / 31.0;
            let id = inverse(d);
            y[..2].copy_from_slice(&f16_bytes(d));
            y[2..4].copy_from_slice(&f16_bytes(min));
            let l: [u8; QK] = std::array::from_fn(|j| trunc_i32((x[j] - min) * id + 0.5) as u8);
            let qh = pack_nibbles(&l, &mut y[8..]);
            y[4..8].copy_from_slice(&qh.to_le_bytes());
        }
    }

    /// `quantize_row_q5_1_impl` with an importance row (one whole row and its weights).
    pub fn quantize_row_impl(src: &[f32], qw: &[f32], dst: &mut [u8]) {
        let rw = RowWeights::new(src);
        let blocks = src.chunks_exact(QK).zip(qw.chunks_exact(QK));
        for ((xb, qb), y) in blocks.zip(dst.chunks_exact_mut(Q5_1_BYTES)) {
            let (mut l, mut aux) = ([0u8; QK], [0u8; QK]);
            let (d, min) =
                make_qkx_quants(&affine(31), xb, Some(&rw.block(xb, qb)), &mut l, &mut aux);
            y[..2].copy_from_slice(&f16_bytes(d));
            y[2..4].copy_from_slice(&f16_bytes(-min));
            let qh = pack_nibbles(&l, &mut y[8..]);
            y[4..8].copy_from_slice(&qh.to_le_bytes());
        }
    }
}

/// Implements [`Format`] for a legacy type: `quantize_row` is ggml's `quantize_*` without
/// weights (the reference path); with an importance row it takes the weighted path.
macro_rules! legacy_format {
    ($t:ident, $bytes:expr, $qs:expr, $qh:expr, $min:expr, $offset:expr) => {
        impl Format for $t {
            fn ty(&self) -> GgmlType {
                GgmlType::$t
            }

            fn quantize_row(&self, src: &[f32], dst: &mut [u8]) {
                self.quantize_row_imatrix(src, None, dst)
            }

            fn quantize_row_imatrix(&self, src: &[f32], imatrix: Option<&[f32]>, dst: &mut [u8]) {
                check(src, imatrix);
                assert_eq!(
                    dst.len(),
                    src.len() / QK * $bytes,
                    "destination is not one row"
                );
                match imatrix {
                    None => $t::quantize_row_ref(src, dst),
                    Some(qw) => $t::quantize_row_impl(src, qw, dst),
                }
            }

            fn dequantize_row(&self, src: &[u8], dst: &mut [f32]) {
                for (y, b) in dst.chunks_exact_mut(QK).zip(src.chunks_exact($bytes)) {
                    let d = f16_at(b, 0);
                    let has_min: Option<usize> = $min;
                    let m = has_min.map_or(0.0, |at| f16_at(b, at));
                    let qh_at: Option<usize> = $qh;
                    let qh = qh_at.map_or(0, |at| {
                        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
                    });
                    for (j, v) in y.iter_mut().enumerate() {
                        let q = level(&b[$qs..], qh, j) - $offset;
                        *v = if has_min.is_some() {
                            q as f32 * d + m
                        } else {
                            q as f32 * d
                        };
                    }
                }
            }
        }
    };
}

legacy_format!(Q4_0, Q4_0_BYTES, 2, None, None, 8);
legacy_format!(Q4_1, Q4_1_BYTES, 4, None, Some(2), 0);
legacy_format!(Q5_0, Q5_0_BYTES, 6, Some(2), None, 16);
legacy_format!(Q5_1, Q5_1_BYTES, 8, Some(4), Some(2), 0);

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> [&'static dyn Format; 4] {
        [&Q4_0, &Q4_1, &Q5_0, &Q5_1]
    }

    fn round_trip(f: &dyn Format, x: &[f32], w: Option<&[f32]>) -> Vec<f32> {
        let mut b = vec![0xa5u8; f.ty().row_bytes(x.len() as u64).unwrap() as usize];
        f.quantize_row_imatrix(x, w, &mut b);
        let mut y = vec![0f32; x.len()];
        f.dequantize_row(&b, &mut y);
        y
    }

    #[test]
    fn block_sizes_match_ggml_types() {
        for (f, n) in all()
            .into_iter()
            .zip([Q4_0_BYTES, Q4_1_BYTES, Q5_0_BYTES, Q5_1_BYTES])
        {
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
        let mut b = [0u8; Q4_0_BYTES];
        Q4_0.quantize_row(&x, &mut b);
        // max is -7.75, d = 7.75 / 8 > 0, and the most negative value is level 0 (= -8).
        assert_eq!(f16_at(&b, 0), half::f16::from_f32(7.75 / 8.0).to_f32());
        assert_eq!(b[2 + 15] >> 4, 0);
        let y = round_trip(&Q4_0, &x, None);
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
