//! Q5_K: 5-bit k-quant (ggml's `block_q5_K`): eight sub-blocks of 32 with 6-bit scales
//! and mins, `x ≈ d·sc·q − dmin·m`, q in 0..32. The scale machinery is shared with
//! Q4_K (`k45.rs`).

#![allow(clippy::needless_range_loop)] // index arithmetic mirrors the bit layouts

use super::k45::{self, Pack, Variant, SCALES, SCALES_BYTES};
use super::kquant::kquant_scales_mins;
use super::q8_k::BlockQ8K;
use super::search::AffineSearch;
use super::{ggml_quantizer, Format};
use crate::blocks::{as_blocks, f16_getters};
use crate::num::QK_K;
use crate::types::GgmlType;
use crate::vector::Kind;

const BYTES: usize = 176;

/// Q5_K block: Q4_K plus a fifth bit per element.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ5K {
    /// Super-block scale for the scales (f16).
    pub d: [u8; 2],
    /// Super-block scale for the mins (f16).
    pub dmin: [u8; 2],
    /// 8 scales and 8 mins, 6 bits each.
    pub scales: [u8; 12],
    /// Fifth bits: bit g of byte l belongs to element `32·g + l`.
    pub qh: [u8; QK_K / 8],
    /// Low nibbles, laid out as in Q4_K.
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(core::mem::size_of::<BlockQ5K>() == BYTES);
f16_getters!(BlockQ5K: d, dmin);

/// The Q5_K format.
pub(crate) const FORMAT: Format = Format {
    ty: GgmlType::Q5_K,
    quantize_ref: quantize_row_ref,
    quantize: ggml_quantizer!(quantize_row_ref, weighted_opt: quantize_row_impl, vector: Kind::Q5K),
    dequantize,
    dot: Some(dot),
    scale_offsets: &[0, 2],
};

const VARIANT: Variant = Variant {
    nmax: 31,
    ref_search: AffineSearch {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    },
    clamp_impl_scales: true,
};

/// Q5_K's level packing: nibbles as Q4_K, fifth bits of pair `j` in bits `2j`, `2j + 1`.
/// (Levels are at most 31, so ggml's `if (l > 15) { l -= 16; set bit }` is bit 4 and the low
/// nibble.)
#[inline]
fn pack(l: &[u8; QK_K], y: &mut [u8]) {
    let (qh, qs) = y[SCALES + SCALES_BYTES..].split_at_mut(QK_K / 8);
    let qh: &mut [u8; 32] = qh.try_into().unwrap();
    let qs: &mut [u8; 128] = qs.try_into().unwrap();
    let mut h = [0u8; 32];
    for j in 0..QK_K / 64 {
        for i in 0..32 {
            let (l1, l2) = (l[64 * j + i], l[64 * j + i + 32]);
            debug_assert!(l1 < 32 && l2 < 32);
            h[i] |= ((l1 >> 4) << (2 * j)) | ((l2 >> 4) << (2 * j + 1));
            qs[32 * j + i] = (l1 & 0x0f) | ((l2 & 0x0f) << 4);
        }
    }
    *qh = h;
}

const PACK: Pack = pack;

/// `quantize_row_q5_K_ref`: the path ggml takes without an importance row.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    k45::quantize_rows_ref(&VARIANT, BYTES, PACK, src, dst)
}

/// `quantize_row_q5_K_impl` with an importance row, or with `None` (its unweighted
/// variant, which ggml itself never reaches through `quantize_q5_K`).
pub fn quantize_row_impl(src: &[f32], qw: Option<&[f32]>, dst: &mut [u8]) {
    k45::quantize_rows_impl(&VARIANT, BYTES, PACK, src, qw, dst)
}

/// The vector path of Q5_K ([`crate::vector`]): one lane per sub-block of 32.
pub(crate) struct Q5Rows;

k45::k45_rows!(Q5Rows);

/// Q5_K to f32.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ5K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let (d, dmin) = (b.d(), b.dmin());
        let (sc, mn) = kquant_scales_mins(&b.scales);
        for j in 0..4 {
            let (d1, m1) = (d * sc[2 * j] as f32, dmin * mn[2 * j] as f32);
            let (d2, m2) = (d * sc[2 * j + 1] as f32, dmin * mn[2 * j + 1] as f32);
            for l in 0..32 {
                let q = b.qs[32 * j + l];
                let h = b.qh[l] >> (2 * j);
                let q1 = (q & 0x0f) + (h & 1) * 16;
                let q2 = (q >> 4) + ((h >> 1) & 1) * 16;
                y[64 * j + l] = d1 * q1 as f32 - m1;
                y[64 * j + 32 + l] = d2 * q2 as f32 - m2;
            }
        }
    }
}

/// Q5_K weights · Q8_K activations: exact integer sums per sub-block, the mins through Q8_K's
/// group sums, scaled per super-block.
pub fn dot(w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0f32;
    for (x, y) in as_blocks::<BlockQ5K>(w)
        .iter()
        .zip(as_blocks::<BlockQ8K>(a))
    {
        let (isum, summs) = k45::dot_sums(&x.scales, y, |i| {
            let b = x.qs[32 * (i / 64) + i % 32];
            let lo = if i % 64 < 32 { b & 0x0f } else { b >> 4 };
            let hi = (x.qh[i % 32] >> (i / 32)) & 1;
            (lo | (hi << 4)) as i32
        });
        let yd = y.d();
        s += (x.d() * yd) * isum as f32 - (x.dmin() * yd) * summs as f32;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(GgmlType::Q5_K.block_bytes(), BYTES);
        assert_eq!(SCALES + SCALES_BYTES, 16);
    }
}
