//! Q6_K: sixteen sub-blocks of 16 with signed 8-bit scales, `x ≈ d·sc·q`, q in -32..=31.

use super::q8_k::BlockQ8K;
use super::search::make_qx_quants;
use super::{ggml_quantizer, Format};
use crate::blocks::{as_blocks, f16_getters};
use crate::num::QK_K;
use crate::num::{nearest_int, put_f16, GROUP_MAX_EPS};
use crate::types::GgmlType;
use crate::vector::rows::RowKernel;
use crate::vector::search::{self, Batch, MAX_LANES};
use crate::vector::{Kind, Simd};

/// Block: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 int8 scales, f16 d.
const BYTES: usize = 210;
const QH: usize = QK_K / 2;
const SCALES: usize = QH + QK_K / 4;
const D: usize = SCALES + QK_K / 16;
const _: () = assert!(BYTES == D + 2);

/// Q6_K block: 16 groups of 16, `d · sc · (q − 32)`, q in 0..64, i8 scales.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ6K {
    /// Low nibbles.
    pub ql: [u8; QK_K / 2],
    /// High 2 bits.
    pub qh: [u8; QK_K / 4],
    /// Group scales.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale (f16).
    pub d: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<BlockQ6K>() == BYTES);
f16_getters!(BlockQ6K: d);

/// The Q6_K format.
pub(crate) const FORMAT: Format = Format {
    ty: GgmlType::Q6_K,
    quantize_ref: quantize_row_ref,
    quantize: ggml_quantizer!(quantize_row_ref, weighted_opt: quantize_row_impl, vector: Kind::Q6K),
    dequantize,
    dot: Some(dot),
    scale_offsets: &[208],
};

/// One super-block of `quantize_row_q6_K_ref` (`qw` = None) or `quantize_row_q6_K_impl`.
fn block(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; 16];
    for j in 0..QK_K / 16 {
        let w = qw.map(|q| &q[16 * j..16 * j + 16]);
        scales[j] = make_qx_quants(32, &x[16 * j..16 * j + 16], &mut l[16 * j..], w);
    }
    let Some(d_all) = store_scales(&scales, y) else {
        return;
    };
    for j in 0..QK_K / 16 {
        let d = d_all * y[SCALES + j] as i8 as f32;
        if d == 0.0 {
            continue;
        }
        for i in 0..16 {
            l[16 * j + i] = (nearest_int(x[16 * j + i] / d).clamp(-32, 31) + 32) as i8;
        }
    }
    pack(&l.map(|v| v as u8), y);
}

/// After the search: the 8-bit sub-block scales relative to the largest and d into `y`,
/// returning d as stored; or, for a block whose scales are all (near) zero, all-zero bytes and
/// `None`.
fn store_scales(scales: &[f32], y: &mut [u8]) -> Option<f32> {
    let (mut max_scale, mut max_abs_scale) = (0f32, 0f32);
    for &s in &scales[..QK_K / 16] {
        if s.abs() > max_abs_scale {
            max_abs_scale = s.abs();
            max_scale = s;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        y.fill(0);
        return None;
    }
    let iscale = -128.0 / max_scale;
    let d_all = put_f16(y, D, 1.0 / iscale);
    for j in 0..QK_K / 16 {
        y[SCALES + j] = nearest_int(iscale * scales[j]).min(127) as u8;
    }
    Some(d_all)
}

/// Packs the levels (0..64): per 128 elements, the nibbles of e and e + 64 share a byte of 64,
/// the top bits of e, e + 32, e + 64, e + 96 share a byte of 32.
#[inline]
fn pack(l: &[u8; QK_K], y: &mut [u8]) {
    let (ql, rest) = y.split_at_mut(QH);
    let ql: &mut [u8; QK_K / 2] = ql.try_into().unwrap();
    let qh: &mut [u8; QK_K / 4] = (&mut rest[..QK_K / 4]).try_into().unwrap();
    for h in 0..QK_K / 128 {
        for i in 0..32 {
            let at = |k: usize| l[128 * h + 32 * k + i];
            let (a0, a1, a2, a3) = (at(0), at(1), at(2), at(3));
            ql[64 * h + i] = (a0 & 0x0f) | ((a2 & 0x0f) << 4);
            ql[64 * h + i + 32] = (a1 & 0x0f) | ((a3 & 0x0f) << 4);
            qh[32 * h + i] = (a0 >> 4) | ((a1 >> 4) << 2) | ((a2 >> 4) << 4) | ((a3 >> 4) << 6);
        }
    }
}

/// The vector path of Q6_K ([`crate::vector`]): one lane per sub-block of 16.
pub(crate) struct Q6Rows;

impl RowKernel for Q6Rows {
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
            Some(q) => b.load_w::<S>(q),
            None => search::weights_sq::<S, N>(b),
        }
        search::qx::<S, N>(32, b);
        let mut zero = [false; MAX_LANES / 16];
        for (s, y) in y.chunks_exact_mut(BYTES).enumerate() {
            let lanes = 16 * s..16 * s + 16;
            match store_scales(&b.scale[lanes.clone()], y) {
                Some(d_all) => {
                    for (j, d) in b.scale[lanes].iter_mut().enumerate() {
                        *d = d_all * y[SCALES + j] as i8 as f32;
                    }
                }
                None => zero[s] = true,
            }
        }
        search::requantize_symmetric::<S, N>(-32, 31, b);
        b.levels_to_rows::<S>();
        for (s, y) in y.chunks_exact_mut(BYTES).enumerate() {
            if !zero[s] {
                pack(b.row_levels(s), y);
            }
        }
    }
}

/// `quantize_row_q6_K_ref`: the path ggml takes without an importance row.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    quantize_row_impl(src, None, dst)
}

/// `quantize_row_q6_K_impl` with an importance row; with `None` it is the same computation
/// as the reference path (in ggml too).
pub fn quantize_row_impl(src: &[f32], qw: Option<&[f32]>, dst: &mut [u8]) {
    for (b, (x, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BYTES))
        .enumerate()
    {
        block(x, qw.map(|q| &q[QK_K * b..QK_K * (b + 1)]), y);
    }
}

/// The i8 value (−32..32) of Q6_K element `i` of a block.
#[inline(always)]
pub(crate) fn value(b: &BlockQ6K, i: usize) -> i32 {
    let (h, k, l) = (i / 128, (i % 128) / 32, i % 32);
    let ql = b.ql[64 * h + 32 * (k & 1) + l];
    let low = if k < 2 { ql & 0x0f } else { ql >> 4 };
    let high = (b.qh[32 * h + l] >> (2 * k)) & 3;
    (low | (high << 4)) as i32 - 32
}

/// Q6_K to f32.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ6K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = b.d();
        for (i, o) in y.iter_mut().enumerate() {
            *o = d * b.scales[i / 16] as f32 * value(b, i) as f32;
        }
    }
}

/// Q6_K weights · Q8_K activations: exact integer group sums, scaled per super-block.
pub fn dot(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ6K>(w)
        .iter()
        .zip(as_blocks::<BlockQ8K>(a))
    {
        let mut isum = 0i32;
        for g in 0..16 {
            let gs: i32 = (16 * g..16 * g + 16)
                .map(|i| value(x, i) * y.qs[i] as i32)
                .sum();
            isum += x.scales[g] as i32 * gs;
        }
        s += (x.d() * y.d()) * isum as f32;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::num::f16_at;
    use crate::types::GgmlType;

    #[test]
    fn layout() {
        assert_eq!(GgmlType::Q6_K.block_bytes(), BYTES);
    }

    #[test]
    fn tiny_block_is_all_zero_bytes() {
        let mut b = [0xffu8; BYTES];
        FORMAT.quantize_row(&[1e-20; QK_K], &mut b);
        assert!(b.iter().all(|&v| v == 0));
    }

    #[test]
    fn negative_max_grid_round_trips_exactly() {
        // Every sub-block starts with -0.5 (its signed max) and lies on the grid of 1/64: the
        // sub-block scales are +1/64, so ggml's d = -max_scale/128 is negative, with sc = -128.
        let x: Vec<f32> = (0..QK_K)
            .map(|e| {
                if e % 16 == 0 {
                    -0.5
                } else {
                    ((e * 29 % 64) as f32 - 32.0) / 64.0
                }
            })
            .collect();
        let mut b = [0u8; BYTES];
        FORMAT.quantize_row(&x, &mut b);
        assert_eq!(f16_at(&b, D), -1.0 / 8192.0);
        assert!(b[SCALES..D].iter().all(|&s| s as i8 == -128));
        let mut y = [0f32; QK_K];
        FORMAT.dequantize_row(&b, &mut y);
        assert_eq!(x, y);
    }
}
