//! Viewing bytes as blocks: every block struct is made only of byte arrays (f16 scales as
//! `[u8; 2]`, the f32 and i16 fields of Q8_K as little-endian bytes), so it has alignment 1 and
//! no padding, and any `&[u8]` of whole blocks can be viewed as a slice of blocks with
//! [`as_blocks`], whatever its alignment. The structs themselves live with their formats
//! (`crate::formats`) and are re-exported here for the SIMD kernels.

use core::mem::size_of;

pub use crate::formats::kquant::{
    kquant_scales_mins, kquant_scales_mins_words, q3k_scale_words, q3k_scales,
};
pub use crate::formats::q2_k::BlockQ2K;
pub use crate::formats::q3_k::BlockQ3K;
pub use crate::formats::q4_0::BlockQ4_0;
pub use crate::formats::q4_1::BlockQ4_1;
pub use crate::formats::q4_k::BlockQ4K;
pub use crate::formats::q5_0::BlockQ5_0;
pub use crate::formats::q5_1::BlockQ5_1;
pub use crate::formats::q5_k::BlockQ5K;
pub use crate::formats::q6_k::BlockQ6K;
pub use crate::formats::q8_0::BlockQ8_0;
pub use crate::formats::q8_1::BlockQ8_1;
pub use crate::formats::q8_k::BlockQ8K;
pub use crate::num::{QK, QK_K};

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

/// `pub fn $f(&self) -> f32` for each f16 field `$f` of a block struct.
macro_rules! f16_getters {
    ($t:ty: $($f:ident),*) => {
        impl $t {
            $(
                #[doc = concat!("`", stringify!($f), "` as f32.")]
                #[inline(always)]
                pub fn $f(&self) -> f32 { $crate::num::f16_to_f32(self.$f) }
            )*
        }
    };
}
pub(crate) use f16_getters;
