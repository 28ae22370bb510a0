use super::{roundf, Format};
use crate::gguf::GgmlType;
use half::f16;

/// ggml's Q8_0: blocks of 32 int8 with one f16 scale `d = amax / 127`.
pub struct Q8_0;

const QK: usize = 32;

impl Format for Q8_0 {
    fn ty(&self) -> GgmlType {
        GgmlType::Q8_0
    }

    fn quantize_row(&self, src: &[f32], dst: &mut [u8]) {
        for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(34)) {
            let amax = x
                .iter()
                .fold(0f32, |m, v| if v.abs() > m { v.abs() } else { m });
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            y[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
            for (q, v) in y[2..].iter_mut().zip(x) {
                *q = roundf(v * id) as i8 as u8;
            }
        }
    }

    fn dequantize_row(&self, src: &[u8], dst: &mut [f32]) {
        for (y, x) in dst.chunks_exact_mut(QK).zip(src.chunks_exact(34)) {
            let d = f16::from_le_bytes([x[0], x[1]]).to_f32();
            for (o, q) in y.iter_mut().zip(&x[2..]) {
                *o = *q as i8 as f32 * d;
            }
        }
    }
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
        Q8_0.quantize_row(&x, &mut b);
        // amax 16 -> d = 16/127; -16 maps to -127, 15 to round(15*127/16) = round(119.06) = 119.
        assert_eq!(b[2] as i8, -127);
        assert_eq!(b[33] as i8, 119);
        let mut back = [0f32; 32];
        Q8_0.dequantize_row(&b, &mut back);
        for (a, b) in x.iter().zip(back) {
            assert!((a - b).abs() <= 16.0 / 127.0 / 2.0 + 1e-3);
        }
    }

    #[test]
    fn zero_block_has_zero_scale() {
        let mut b = [0xffu8; 34];
        Q8_0.quantize_row(&[0.0; 32], &mut b);
        assert!(b.iter().all(|&v| v == 0));
    }
}
