//! Q3_K: sixteen sub-blocks of 16 with signed 6-bit scales, `x ≈ d·sc·q`, q in -4..=3 stored
//! as two low bits plus a high bit in a separate mask.

#![allow(clippy::needless_range_loop)] // index arithmetic mirrors the bit layouts

use super::kquant::q3k_scales;
use super::kquant::{level_2bit, pack_2bit};
use super::q8_k::BlockQ8K;
use super::search::{make_q3_quants, make_qx_quants};
use super::{ggml_quantizer, Format};
use crate::blocks::{as_blocks, f16_getters};
use crate::num::QK_K;
use crate::num::{f16_at, nearest_int, put_f16};
use crate::types::GgmlType;
use crate::vector::rows::RowKernel;
use crate::vector::search::{self, Batch};
use crate::vector::{Kind, Simd};

/// Block: 32 bytes of high bits, 64 bytes of 2-bit levels, 12 bytes of 6-bit scales, f16 d.
const BYTES: usize = 110;
const QS: usize = QK_K / 8;
const SCALES: usize = QS + QK_K / 4;
const D: usize = SCALES + 12;
const _: () = assert!(BYTES == D + 2);

/// Q3_K block: 16 groups of 16, `d · (sc − 32) · (q − 4·!hbit)`, 6-bit scales packed in 12
/// bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ3K {
    /// High bits: bit `4h + s` of byte l is the high bit of element `128·h + 32·s + l`.
    pub hmask: [u8; QK_K / 8],
    /// Low 2 bits, laid out as in Q2_K.
    pub qs: [u8; QK_K / 4],
    /// 16 packed 6-bit scales.
    pub scales: [u8; 12],
    /// Super-block scale (f16).
    pub d: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<BlockQ3K>() == BYTES);
f16_getters!(BlockQ3K: d);

/// The Q3_K format.
pub(crate) const FORMAT: Format = Format {
    ty: GgmlType::Q3_K,
    quantize_ref: quantize_row_ref,
    quantize: ggml_quantizer!(quantize_row_ref, weighted_opt: quantize_row_impl, vector: Kind::Q3K),
    dequantize,
    dot: Some(dot),
    scale_offsets: &[108],
};

/// Packs sixteen 6-bit scales (0..=63, stored with a +32 offset): low nibbles in bytes 0..8
/// (sub-blocks 8..16 in the high halves), top two bits in bytes 8..12.
fn pack_scales(ls: &[u8; 16], s: &mut [u8]) {
    s.fill(0);
    for (j, &l) in ls.iter().enumerate() {
        if j < 8 {
            s[j] = l & 0x0f;
        } else {
            s[j - 8] |= (l & 0x0f) << 4;
        }
        s[j % 4 + 8] |= (l >> 4) << (2 * (j / 4));
    }
}

/// The effective scale of sub-block `j` of a block whose d and scales are stored.
#[inline]
fn sub_block_d(y: &[u8], j: usize) -> f32 {
    f16_at(y, D) * q3k_scales(y[SCALES..D].try_into().unwrap())[j] as f32
}

/// Final levels from the stored d and scales, then the high-bit mask and 2-bit packing.
fn finish(x: &[f32], y: &mut [u8], l: &mut [u8; QK_K]) {
    for j in 0..QK_K / 16 {
        let d = sub_block_d(y, j);
        if d == 0.0 {
            continue;
        }
        for i in 0..16 {
            l[16 * j + i] = (nearest_int(x[16 * j + i] / d).clamp(-4, 3) + 4) as u8;
        }
    }
    pack(l, y);
}

/// Packs the levels (0..8): element e's high bit goes to byte e % 32, bit e / 32; the low two
/// bits as [`pack_2bit`]. (ggml's `if (l > 3) { set bit; l -= 4 }` is bit 2 and the low bits,
/// since levels are below 8.)
#[inline]
fn pack(l: &mut [u8; QK_K], y: &mut [u8]) {
    let mut hmask = [0u8; 32];
    for (e, v) in l.iter_mut().enumerate() {
        debug_assert!(*v < 8);
        hmask[e % 32] |= (*v >> 2) << (e / 32);
        *v &= 3;
    }
    y[..QS].copy_from_slice(&hmask);
    pack_2bit(l, &mut y[QS..SCALES]);
}

/// The reference path after the search: 6-bit scales relative to the largest and d into `y`.
fn store_scales_ref(scales: &[f32], y: &mut [u8]) {
    let (mut max_scale, mut amax) = (0f32, 0f32);
    for &s in &scales[..QK_K / 16] {
        if s.abs() > amax {
            amax = s.abs();
            max_scale = s;
        }
    }
    if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        let ls: [u8; 16] = std::array::from_fn(|j| {
            ((nearest_int(iscale * scales[j]) as i8).clamp(-32, 31) + 32) as u8
        });
        pack_scales(&ls, &mut y[SCALES..D]);
        put_f16(y, D, 1.0 / iscale);
    } else {
        y[SCALES..D].fill(0);
        put_f16(y, D, 0.0);
    }
}

/// The weighted path after the search: scales quantized by `make_qx_quants` under the
/// sub-block weight sums `sw`, and d, into `y`.
fn store_scales_impl(scales: &[f32], sw: &[f32], y: &mut [u8]) {
    let mut ls = [0i8; 16];
    let d_block = make_qx_quants(32, &scales[..16], &mut ls, Some(&sw[..16]));
    pack_scales(&ls.map(|v| v as u8), &mut y[SCALES..D]);
    put_f16(y, D, d_block);
}

/// σ² of the weighted path: twice the mean square of the super-block.
fn sigma2_impl(x: &[f32]) -> f32 {
    let mut sumx2 = 0f32;
    for &v in x {
        sumx2 += v * v;
    }
    2.0 * sumx2 / QK_K as f32
}

/// `quantize_row_q3_K_ref`: the path ggml takes without an importance row.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(BYTES)) {
        let mut l8 = [0i8; QK_K];
        let mut scales = [0f32; 16];
        for j in 0..QK_K / 16 {
            scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l8[16 * j..]);
        }
        store_scales_ref(&scales, y);
        let mut l = l8.map(|v| v as u8);
        finish(x, y, &mut l);
    }
}

/// `quantize_row_q3_K_impl` with an importance row, or with `None` (its unweighted
/// variant, which ggml itself never reaches through `quantize_q3_K`).
pub fn quantize_row_impl(src: &[f32], qw: Option<&[f32]>, dst: &mut [u8]) {
    for (b, (x, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BYTES))
        .enumerate()
    {
        let mut l8 = [0i8; QK_K];
        let (mut scales, mut sw) = ([0f32; 16], [0f32; 16]);
        let sigma2 = sigma2_impl(x);
        for j in 0..QK_K / 16 {
            let xs = &x[16 * j..16 * j + 16];
            let weight: [f32; 16] = match qw {
                Some(q) => std::array::from_fn(|i| {
                    q[QK_K * b + 16 * j + i] * (sigma2 + xs[i] * xs[i]).sqrt()
                }),
                None => std::array::from_fn(|i| xs[i] * xs[i]),
            };
            let mut sumw = 0f32;
            for w in weight {
                sumw += w;
            }
            sw[j] = sumw;
            scales[j] = make_qx_quants(4, xs, &mut l8[16 * j..], Some(&weight));
        }
        store_scales_impl(&scales, &sw, y);
        let mut l = l8.map(|v| v as u8);
        finish(x, y, &mut l);
    }
}

/// The vector path of Q3_K ([`crate::vector`]): one lane per sub-block of 16.
pub(crate) struct Q3Rows;

impl RowKernel for Q3Rows {
    const SUB: usize = 16;
    const BYTES: usize = BYTES;

    #[inline(always)]
    unsafe fn batch<S: Simd, const N: usize>(
        &self,
        b: &mut Batch,
        x: &[f32],
        qw: Option<&[f32]>,
        y: &mut [u8],
    ) {
        let count = x.len() / QK_K;
        b.reset(16, N * S::LANES);
        assert!(count * 16 <= b.nl && y.len() == count * BYTES);
        b.load_x::<S>(x);
        match qw {
            None => {
                search::q3::<S, N>(4, b);
                for (s, y) in y.chunks_exact_mut(BYTES).enumerate() {
                    store_scales_ref(&b.scale[16 * s..], y);
                }
            }
            Some(q) => {
                b.load_w::<S>(q);
                for s in 0..count {
                    let sigma2 = sigma2_impl(&x[s * QK_K..(s + 1) * QK_K]);
                    b.aux[16 * s..16 * s + 16].fill(sigma2);
                }
                search::weights_imatrix::<S, N>(b);
                search::weight_sums::<S, N>(b);
                search::qx::<S, N>(4, b);
                for (s, y) in y.chunks_exact_mut(BYTES).enumerate() {
                    store_scales_impl(&b.scale[16 * s..], &b.aux[16 * s..], y);
                }
            }
        }
        b.scale.fill(0.0);
        for (s, y) in y.chunks_exact(BYTES).enumerate() {
            for j in 0..16 {
                b.scale[16 * s + j] = sub_block_d(y, j);
            }
        }
        search::requantize_symmetric::<S, N>(-4, 3, b);
        b.levels_to_rows::<S>();
        for (s, y) in y.chunks_exact_mut(BYTES).enumerate() {
            let mut l = *b.row_levels(s);
            pack(&mut l, y);
        }
    }
}

/// Q3_K to f32.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ3K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = b.d();
        let sc = q3k_scales(&b.scales);
        for i in 0..QK_K {
            let (h, s, l) = (i / 128, (i % 128) / 32, i % 32);
            let low = level_2bit(&b.qs, h, s, l) as i32;
            let high = (b.hmask[l] >> (4 * h + s)) & 1;
            let q = low - if high != 0 { 0 } else { 4 };
            let dl = d * sc[i / 16] as f32;
            y[i] = dl * q as f32;
        }
    }
}

/// Q3_K weights · Q8_K activations: exact integer group sums, scaled per super-block.
pub fn dot(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ3K>(w)
        .iter()
        .zip(as_blocks::<BlockQ8K>(a))
    {
        let sc = q3k_scales(&x.scales);
        let mut isum = 0i32;
        for (g, &scale) in sc.iter().enumerate() {
            let mut gs = 0i32;
            for i in 16 * g..16 * g + 16 {
                let (h, sh, l) = (i / 128, (i % 128) / 32, i % 32);
                let low = level_2bit(&x.qs, h, sh, l) as i32;
                let high = (x.hmask[l] >> (4 * h + sh)) & 1;
                gs += (low - if high != 0 { 0 } else { 4 }) * y.qs[i] as i32;
            }
            isum += scale as i32 * gs;
        }
        s += (x.d() * y.d()) * isum as f32;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::GgmlType;

    #[test]
    fn layout() {
        assert_eq!(GgmlType::Q3_K.block_bytes(), BYTES);
    }

    #[test]
    fn scale_packing_round_trips() {
        let ls: [u8; 16] = std::array::from_fn(|j| (j * 13 % 64) as u8);
        let mut s = [0xffu8; 12];
        pack_scales(&ls, &mut s);
        for (j, &l) in ls.iter().enumerate() {
            assert_eq!(q3k_scales(&s)[j], l as i8 - 32);
        }
    }

    #[test]
    fn high_bits_and_levels_round_trip() {
        // Values on the grid d·(-4..=3) with a different sub-block scale each come back exactly.
        let x: Vec<f32> = (0..QK_K)
            .map(|e| ((e * 5 % 8) as f32 - 4.0) * (1 + e / 16) as f32 / 16.0)
            .collect();
        let mut b = [0u8; BYTES];
        FORMAT.quantize_row(&x, &mut b);
        let mut y = [0f32; QK_K];
        FORMAT.dequantize_row(&b, &mut y);
        let err = x
            .iter()
            .zip(y)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 0.02, "{err}");
    }
}
