//! Q2_K: sixteen sub-blocks of 16 with 4-bit scales and mins, `x ≈ d·sc·q - dmin·m`, q in 0..=3.

use super::{check, level_2bit, pack_2bit, QK_K};
use crate::gguf::GgmlType;
use crate::quant::num::{f16_at, nearest_int, put_f16};
use crate::quant::search::{make_qkx_quants, make_qp_quants, AffineSearch};
use crate::quant::Format;

/// Block: 16 bytes of scales (low nibble) and mins (high nibble), 64 bytes of 2-bit levels,
/// f16 d, f16 dmin.
const BYTES: usize = 84;
const QS: usize = QK_K / 16;
const D: usize = QS + QK_K / 4;
const _: () = assert!(BYTES == D + 2 + 2);

/// 2-bit k-quant (ggml's `block_q2_K`).
#[allow(non_camel_case_types)]
pub struct Q2_K;

/// Final levels from the stored d, dmin and 4-bit scales, as both paths end.
fn requantize(x: &[f32], y: &[u8], l: &mut [u8; QK_K]) {
    let (d_all, dmin_all) = (f16_at(y, D), f16_at(y, D + 2));
    for j in 0..QK_K / 16 {
        let d = d_all * (y[j] & 0x0f) as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * (y[j] >> 4) as f32;
        for i in 0..16 {
            l[16 * j + i] = nearest_int((x[16 * j + i] + dm) / d).clamp(0, 3) as u8;
        }
    }
}

impl Q2_K {
    /// `quantize_row_q2_K_ref`: the path ggml takes without an importance row.
    pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
        let search = AffineSearch {
            nmax: 3,
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: true,
        };
        for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(BYTES)) {
            let mut l = [0u8; QK_K];
            let mut aux = [0u8; 16];
            let (mut scales, mut mins) = ([0f32; 16], [0f32; 16]);
            let (mut max_scale, mut max_min) = (0f32, 0f32);
            for j in 0..QK_K / 16 {
                let xs = &x[16 * j..16 * j + 16];
                let weights: [f32; 16] = std::array::from_fn(|i| xs[i].abs());
                (scales[j], mins[j]) =
                    make_qkx_quants(&search, xs, Some(&weights), &mut l[16 * j..], &mut aux);
                if scales[j] > max_scale {
                    max_scale = scales[j];
                }
                if mins[j] > max_min {
                    max_min = mins[j];
                }
            }
            if max_scale > 0.0 {
                let iscale = 15.0 / max_scale;
                for j in 0..QK_K / 16 {
                    y[j] = nearest_int(iscale * scales[j]) as u8;
                }
                put_f16(y, D, max_scale / 15.0);
            } else {
                y[..QS].fill(0);
                put_f16(y, D, 0.0);
            }
            if max_min > 0.0 {
                let iscale = 15.0 / max_min;
                for j in 0..QK_K / 16 {
                    y[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
                }
                put_f16(y, D + 2, max_min / 15.0);
            } else {
                put_f16(y, D + 2, 0.0);
            }
            requantize(x, y, &mut l);
            pack_2bit(&l, &mut y[QS..D]);
        }
    }

    /// `quantize_row_q2_K_impl`: the path ggml takes with an importance row `qw` (ggml has no
    /// unweighted variant of it).
    pub fn quantize_row_impl(src: &[f32], qw: &[f32], dst: &mut [u8]) {
        let search = AffineSearch {
            nmax: 3,
            rmin: -0.9,
            rdelta: 0.05,
            nstep: 36,
            use_mad: false,
        };
        let blocks = src.chunks_exact(QK_K).zip(qw.chunks_exact(QK_K));
        for ((x, qw), y) in blocks.zip(dst.chunks_exact_mut(BYTES)) {
            let mut l = [0u8; QK_K];
            let mut aux = [0u8; 16];
            let (mut scales, mut mins, mut sw) = ([0f32; 16], [0f32; 16], [0f32; 16]);
            let mut sumx2 = 0f32;
            for &v in x {
                sumx2 += v * v;
            }
            let sigma2 = sumx2 / QK_K as f32;
            for j in 0..QK_K / 16 {
                let xs = &x[16 * j..16 * j + 16];
                let weight: [f32; 16] =
                    std::array::from_fn(|i| qw[16 * j + i] * (sigma2 + xs[i] * xs[i]).sqrt());
                for w in weight {
                    sw[j] += w;
                }
                (scales[j], mins[j]) =
                    make_qkx_quants(&search, xs, Some(&weight), &mut l[16 * j..], &mut aux);
            }
            let (mut ls, mut lm) = ([0u8; 16], [0u8; 16]);
            let dm = make_qp_quants(15, &scales, &mut ls, &sw);
            let mm = make_qp_quants(15, &mins, &mut lm, &sw);
            put_f16(y, D, dm);
            put_f16(y, D + 2, mm);
            for j in 0..QK_K / 16 {
                y[j] = ls[j] | (lm[j] << 4);
            }
            requantize(x, y, &mut l);
            pack_2bit(&l, &mut y[QS..D]);
        }
    }
}

impl Format for Q2_K {
    fn ty(&self) -> GgmlType {
        GgmlType::Q2_K
    }

    fn quantize_row(&self, src: &[f32], dst: &mut [u8]) {
        self.quantize_row_imatrix(src, None, dst)
    }

    fn quantize_row_imatrix(&self, src: &[f32], imatrix: Option<&[f32]>, dst: &mut [u8]) {
        check(src, imatrix, dst, BYTES);
        match imatrix {
            None => Q2_K::quantize_row_ref(src, dst),
            Some(qw) => Q2_K::quantize_row_impl(src, qw, dst),
        }
    }

    fn dequantize_row(&self, src: &[u8], dst: &mut [f32]) {
        for (b, y) in src.chunks_exact(BYTES).zip(dst.chunks_exact_mut(QK_K)) {
            let (d, min) = (f16_at(b, D), f16_at(b, D + 2));
            // Element 128·h + 32·s + 16·k + i uses scale byte 8·h + 2·s + k.
            for (e, v) in y.iter_mut().enumerate() {
                let (h, s, k, i) = (e / 128, e / 32 % 4, e / 16 % 2, e % 16);
                let sc = b[8 * h + 2 * s + k];
                let (dl, ml) = (d * (sc & 0x0f) as f32, min * (sc >> 4) as f32);
                *v = dl * level_2bit(&b[QS..D], h, s, 16 * k + i) as f32 - ml;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(GgmlType::Q2_K.block_bytes(), BYTES);
    }

    #[test]
    fn scales_follow_element_order() {
        // Sub-block j is constant (j + 1)/10: a scale read from the wrong byte is off by 0.1 or more.
        let x: Vec<f32> = (0..QK_K).map(|i| (i / 16 + 1) as f32 * 0.1).collect();
        let mut b = [0u8; BYTES];
        Q2_K.quantize_row(&x, &mut b);
        let mut y = [0f32; QK_K];
        Q2_K.dequantize_row(&b, &mut y);
        for (i, (a, b)) in x.iter().zip(y).enumerate() {
            assert!((a - b).abs() < 0.06, "element {i}: {b} vs {a}");
        }
    }
}
