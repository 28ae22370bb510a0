//! Block layouts of ggml's quantized types, byte for byte as in ggml-common.h.
//!
//! Every field is a byte array (f16 scales as `[u8; 2]`, the f32 and i16 fields of Q8_K as
//! little-endian bytes), so each struct has alignment 1 and no padding: any `&[u8]` of whole
//! blocks can be viewed as a slice of blocks with [`as_blocks`], whatever its alignment.

use core::mem::size_of;

/// Elements per block of the 32-element types (Q4_0 … Q8_1).
pub const QK: usize = 32;
/// Elements per super-block of the k-quants (ggml's `QK_K`).
pub const QK_K: usize = 256;

#[inline(always)]
fn f16_to_f32(b: [u8; 2]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes(b)).to_f32()
}

/// Q4_0: 32 weights `d · (q − 8)`, q in 0..16; `qs[j]` holds element j (low nibble) and j+16.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockQ4_0 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Nibbles.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_0>() == 18);

/// Q4_1: 32 weights `d · q + m`, q in 0..16.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockQ4_1 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Minimum (f16).
    pub m: [u8; 2],
    /// Nibbles, laid out as in Q4_0.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_1>() == 20);

/// Q5_0: 32 weights `d · (q − 16)`, q in 0..32; bit j of `qh` is the fifth bit of element j.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockQ5_0 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Fifth bits, a little-endian u32.
    pub qh: [u8; 4],
    /// Low nibbles, laid out as in Q4_0.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ5_0>() == 22);

/// Q5_1: 32 weights `d · q + m`, q in 0..32.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockQ5_1 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Minimum (f16).
    pub m: [u8; 2],
    /// Fifth bits, a little-endian u32.
    pub qh: [u8; 4],
    /// Low nibbles.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ5_1>() == 24);

/// Q8_0: 32 weights `d · q`, q an i8.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_0 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Quants.
    pub qs: [i8; QK],
}
const _: () = assert!(size_of::<BlockQ8_0>() == 34);

/// Q8_1 (activation type): Q8_0 plus `s = d · Σ q` (f16).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_1 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// `d` times the sum of the quants (f16).
    pub s: [u8; 2],
    /// Quants.
    pub qs: [i8; QK],
}
const _: () = assert!(size_of::<BlockQ8_1>() == 36);

/// Q2_K: 16 groups of 16, `d · (sc & 15) · q − dmin · (sc >> 4)`, q in 0..4.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ2K {
    /// Per group: low nibble scale, high nibble min.
    pub scales: [u8; QK_K / 16],
    /// 2-bit quants: byte `32·h + l` holds elements `128·h + 32·s + l` in bits `2s..2s+2`.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale for the scales (f16).
    pub d: [u8; 2],
    /// Super-block scale for the mins (f16).
    pub dmin: [u8; 2],
}
const _: () = assert!(size_of::<BlockQ2K>() == 84);

/// Q3_K: 16 groups of 16, `d · (sc − 32) · (q − 4·!hbit)`, 6-bit scales packed in 12 bytes.
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
const _: () = assert!(size_of::<BlockQ3K>() == 110);

/// Q4_K: 8 groups of 32, `d · sc · q − dmin · m`, 6-bit scales and mins packed in 12 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4K {
    /// Super-block scale for the scales (f16).
    pub d: [u8; 2],
    /// Super-block scale for the mins (f16).
    pub dmin: [u8; 2],
    /// 8 scales and 8 mins, 6 bits each.
    pub scales: [u8; 12],
    /// Nibbles: byte `32·j + l` holds element `64·j + l` (low) and `64·j + 32 + l` (high).
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ4K>() == 144);

/// Q5_K: Q4_K plus a fifth bit per element.
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
const _: () = assert!(size_of::<BlockQ5K>() == 176);

/// Q6_K: 16 groups of 16, `d · sc · (q − 32)`, q in 0..64, i8 scales.
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
const _: () = assert!(size_of::<BlockQ6K>() == 210);

/// Q8_K (activation type of the k-quants): f32 scale, 256 i8 quants, sums of each 16.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8K {
    /// Scale (little-endian f32).
    pub d: [u8; 4],
    /// Quants.
    pub qs: [i8; QK_K],
    /// Sum of each 16 quants (little-endian i16).
    pub bsums: [[u8; 2]; QK_K / 16],
}
const _: () = assert!(size_of::<BlockQ8K>() == 292);

/// A block struct made only of byte arrays (alignment 1, no padding, every bit pattern valid).
///
/// # Safety
/// Implementors must have alignment 1, no padding and no invalid bit patterns.
pub unsafe trait Block: Copy + 'static {
    /// Elements per block.
    const N: usize;
}

macro_rules! blocks {
    ($($t:ty => $n:expr),* $(,)?) => {$(
        // SAFETY: the struct is repr(C) and made only of u8/i8 arrays: alignment 1, no padding,
        // every bit pattern valid.
        unsafe impl Block for $t { const N: usize = $n; }
        const _: () = assert!(core::mem::align_of::<$t>() == 1);
    )*};
}
blocks!(
    BlockQ4_0 => QK, BlockQ4_1 => QK, BlockQ5_0 => QK, BlockQ5_1 => QK, BlockQ8_0 => QK,
    BlockQ8_1 => QK, BlockQ2K => QK_K, BlockQ3K => QK_K, BlockQ4K => QK_K, BlockQ5K => QK_K,
    BlockQ6K => QK_K, BlockQ8K => QK_K,
);

/// Views whole blocks of bytes as blocks. Panics when `bytes` is not a whole number of blocks.
pub fn as_blocks<B: Block>(bytes: &[u8]) -> &[B] {
    let sz = size_of::<B>();
    assert!(
        bytes.len().is_multiple_of(sz),
        "not a whole number of blocks"
    );
    // SAFETY: B has alignment 1 and no invalid bit patterns (the `Block` contract), and the
    // slice covers exactly bytes.len() / sz blocks of the borrowed memory.
    unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<B>(), bytes.len() / sz) }
}

/// Mutable view of whole blocks of bytes as blocks.
pub fn as_blocks_mut<B: Block>(bytes: &mut [u8]) -> &mut [B] {
    let sz = size_of::<B>();
    assert!(
        bytes.len().is_multiple_of(sz),
        "not a whole number of blocks"
    );
    // SAFETY: as in `as_blocks`; the borrow is exclusive.
    unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<B>(), bytes.len() / sz) }
}

macro_rules! f16_getters {
    ($t:ty: $($f:ident),*) => {
        impl $t {
            $(
                #[doc = concat!("`", stringify!($f), "` as f32.")]
                #[inline(always)]
                pub fn $f(&self) -> f32 { f16_to_f32(self.$f) }
            )*
        }
    };
}
f16_getters!(BlockQ4_0: d);
f16_getters!(BlockQ4_1: d, m);
f16_getters!(BlockQ5_0: d);
f16_getters!(BlockQ5_1: d, m);
f16_getters!(BlockQ8_0: d);
f16_getters!(BlockQ8_1: d, s);
f16_getters!(BlockQ2K: d, dmin);
f16_getters!(BlockQ3K: d);
f16_getters!(BlockQ4K: d, dmin);
f16_getters!(BlockQ5K: d, dmin);
f16_getters!(BlockQ6K: d);

impl BlockQ8K {
    /// The scale.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f32::from_le_bytes(self.d)
    }
    /// Sum of quants `16·j .. 16·j + 16`.
    #[inline(always)]
    pub fn bsum(&self, j: usize) -> i16 {
        i16::from_le_bytes(self.bsums[j])
    }
}

/// Unpacks the 8 six-bit scales and 8 six-bit mins of Q4_K / Q5_K (`scales[12]`).
#[inline(always)]
pub fn kquant_scales_mins(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..4 {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 0x0f) | ((s[j] >> 6) << 4);
        mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
    }
    (sc, mn)
}

/// Unpacks the 16 six-bit scales of Q3_K, already offset by −32: scale j has its low nibble
/// in byte `j mod 8` (low half for j < 8, high half after) and its top two bits in byte
/// `8 + j mod 4`, bits `2·(j / 4)`.
#[inline(always)]
pub fn q3k_scales(s: &[u8; 12]) -> [i8; 16] {
    let u = |k: usize| u32::from_le_bytes([s[4 * k], s[4 * k + 1], s[4 * k + 2], s[4 * k + 3]]);
    let (a0, a1, t) = (u(0), u(1), u(2));
    const LO: u32 = 0x0f0f_0f0f;
    const HI: u32 = 0x0303_0303;
    let words = [
        (a0 & LO) | ((t & HI) << 4),
        (a1 & LO) | (((t >> 2) & HI) << 4),
        ((a0 >> 4) & LO) | (((t >> 4) & HI) << 4),
        ((a1 >> 4) & LO) | (((t >> 6) & HI) << 4),
    ];
    let mut out = [0i8; 16];
    for (k, w) in words.iter().enumerate() {
        for (j, b) in w.to_le_bytes().into_iter().enumerate() {
            out[4 * k + j] = b as i8 - 32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q3k_scales_match_the_bit_layout() {
        let mut s = [0u8; 12];
        let mut x = 0x1234_5678_9abc_def0u64;
        for round in 0..200 {
            for b in &mut s {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if round == 0 {
                s = [0xff; 12];
            }
            let got = q3k_scales(&s);
            for j in 0..16 {
                let low = if j < 8 { s[j] & 0x0f } else { s[j - 8] >> 4 };
                let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
                assert_eq!(got[j], (low | (high << 4)) as i8 - 32, "scale {j} of {s:?}");
            }
        }
    }

    #[test]
    fn k45_scales_match_the_bit_layout() {
        let s: [u8; 12] = [
            0xc1, 0x82, 0x43, 0x04, 0xc5, 0x86, 0x47, 0x08, 0x9a, 0xbc, 0xde, 0xf0,
        ];
        let (sc, mn) = kquant_scales_mins(&s);
        assert_eq!(sc[0], 0x01);
        assert_eq!(mn[0], 0x05);
        // j = 4: low nibble of byte 8, top bits of byte 0; min: high nibble of byte 8, top bits of byte 4.
        assert_eq!(sc[4], 0x0a | (3 << 4));
        assert_eq!(mn[4], 0x09 | (3 << 4));
    }
}
