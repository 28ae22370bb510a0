//! Q8_0: blocks of 32 int8 with one f16 scale `d = amax / 127`. Both a weight type (the
//! converter's `--outtype q8_0`) and the activation type of Q4_0, Q5_0 and Q8_0.

use super::{unweighted, Format};
use crate::blocks::{as_blocks, as_blocks_mut};
use crate::num::{f16_numpy, f16_to_f32, QK};
use crate::types::GgmlType;

/// Q8_0 block: `d · q`, q an i8.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_0 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Quants.
    pub qs: [i8; QK],
}
const _: () = assert!(core::mem::size_of::<BlockQ8_0>() == 34);

impl BlockQ8_0 {
    /// The scale.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_to_f32(self.d)
    }
}

/// The Q8_0 format.
pub(crate) const FORMAT: Format = Format {
    ty: GgmlType::Q8_0,
    quantize_ref: quantize_row_ref,
    quantize: unweighted!(quantize_row_ref),
    dequantize,
    dot: Some(dot),
    scale_offsets: &[0],
};

/// Scale of a 32-element block: `(amax / 127, 1 / d or 0)`.
#[inline(always)]
pub(crate) fn scale(x: &[f32]) -> (f32, f32) {
    let amax = x
        .iter()
        .fold(0f32, |m, v| if v.abs() > m { v.abs() } else { m });
    let d = amax / 127.0;
    (d, if d != 0.0 { 1.0 / d } else { 0.0 })
}

/// Quantizes `x` (a multiple of 32 long): `d = amax / 127`, `q = round(x / d)` (half away
/// from zero). Same bytes as ggml's `quantize_row_q8_0_ref` and gguf-py's numpy quantizer.
pub fn quantize_row_ref(x: &[f32], dst: &mut [u8]) {
    for (y, x) in as_blocks_mut::<BlockQ8_0>(dst)
        .iter_mut()
        .zip(x.chunks_exact(QK))
    {
        let (d, id) = scale(x);
        y.d = f16_numpy(d);
        for (q, &v) in y.qs.iter_mut().zip(x) {
            *q = (v * id).round() as i8;
        }
    }
}

/// Q8_0 to f32.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ8_0>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = b.d();
        for (o, &q) in y.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}

/// Q8_0 weights · Q8_0 activations: exact integer block sums, scaled and summed in block order.
pub fn dot(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ8_0>(w)
        .iter()
        .zip(as_blocks::<BlockQ8_0>(a))
    {
        let sumi: i32 =
            x.qs.iter()
                .zip(&y.qs)
                .map(|(&p, &q)| p as i32 * q as i32)
                .sum();
        s += (x.d() * y.d()) * sumi as f32;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_block() {
        let mut x = [0f32; 32];
        for (i, v) in x.iter_mut().enumerate() {
            *v = i as f32 - 16.0;
        }
        let mut b = [0u8; 34];
        FORMAT.quantize_row(&x, &mut b);
        // amax 16 -> d = 16/127; -16 maps to -127, 15 to round(15*127/16) = round(119.06) = 119.
        assert_eq!(b[2] as i8, -127);
        assert_eq!(b[33] as i8, 119);
        let mut back = [0f32; 32];
        FORMAT.dequantize_row(&b, &mut back);
        for (a, b) in x.iter().zip(back) {
            assert!((a - b).abs() <= 16.0 / 127.0 / 2.0 + 1e-3);
        }
    }

    #[test]
    fn zero_block_has_zero_scale() {
        let mut b = [0xffu8; 34];
        FORMAT.quantize_row(&[0.0; 32], &mut b);
        assert!(b.iter().all(|&v| v == 0));
    }
}
