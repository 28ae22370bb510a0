//! Whole rows: batches of super-blocks through a type's vector kernel.

use super::search::Batch;
use super::Simd;
use crate::isa::Isa;
use crate::num::QK_K;
use std::cell::RefCell;

/// The k-quant types with a vector path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Q2_K.
    Q2K,
    /// Q3_K.
    Q3K,
    /// Q4_K.
    Q4K,
    /// Q5_K.
    Q5K,
    /// Q6_K.
    Q6K,
}

/// One type's vector path over a batch of whole super-blocks.
pub(crate) trait RowKernel {
    /// Elements per sub-block (one lane).
    const SUB: usize;
    /// Bytes per super-block.
    const BYTES: usize;

    /// Quantizes the super-blocks of `x` (at most `N·LANES·SUB / 256` of them) with their
    /// importance `qw` (ggml's weighted path) or without (its reference path) into `y`, in the
    /// scratch batch `b`.
    ///
    /// # Safety
    /// `S`'s CPU feature must be present.
    unsafe fn batch<S: Simd, const N: usize>(
        &self,
        b: &mut Batch,
        x: &[f32],
        qw: Option<&[f32]>,
        y: &mut [u8],
    );
}

/// Runs `k` over a row: batches of four registers of lanes (16-lane units only; 8-lane ones
/// have too few registers for that), then two, then one (or a partial two-register batch
/// where one register holds less than a super-block).
///
/// # Safety
/// `S`'s CPU feature must be present.
#[inline(always)]
pub(crate) unsafe fn drive<S: Simd, K: RowKernel>(
    k: &K,
    b: &mut Batch,
    src: &[f32],
    qw: Option<&[f32]>,
    dst: &mut [u8],
) {
    let nsb = src.len() / QK_K;
    assert_eq!(src.len(), nsb * QK_K);
    assert_eq!(dst.len(), nsb * K::BYTES);
    let one = S::LANES * K::SUB / QK_K;
    let two = 2 * S::LANES * K::SUB / QK_K;
    let four = 4 * S::LANES * K::SUB / QK_K;
    assert!(two >= 1);
    let mut s = 0;
    while s < nsb {
        let left = nsb - s;
        let (count, regs) = if S::LANES >= 16 && left >= four {
            (four, 4)
        } else if left >= two || one == 0 {
            (left.min(two), 2)
        } else {
            (left.min(one), 1)
        };
        let x = &src[s * QK_K..(s + count) * QK_K];
        let q = qw.map(|q| &q[s * QK_K..(s + count) * QK_K]);
        let y = &mut dst[s * K::BYTES..(s + count) * K::BYTES];
        match regs {
            4 => k.batch::<S, 4>(b, x, q, y),
            2 => k.batch::<S, 2>(b, x, q, y),
            _ => k.batch::<S, 1>(b, x, q, y),
        }
        s += count;
    }
}

/// The row quantizer of `kind`, generic over the vector unit.
///
/// # Safety
/// `S`'s CPU feature must be present.
#[inline(always)]
pub(crate) unsafe fn quantize_row<S: Simd>(
    kind: Kind,
    b: &mut Batch,
    src: &[f32],
    qw: Option<&[f32]>,
    dst: &mut [u8],
) {
    use crate::formats::{q2_k, q3_k, q4_k, q5_k, q6_k};
    match kind {
        Kind::Q2K => drive::<S, _>(&q2_k::Q2Rows, b, src, qw, dst),
        Kind::Q3K => drive::<S, _>(&q3_k::Q3Rows, b, src, qw, dst),
        Kind::Q4K => drive::<S, _>(&q4_k::Q4Rows, b, src, qw, dst),
        Kind::Q5K => drive::<S, _>(&q5_k::Q5Rows, b, src, qw, dst),
        Kind::Q6K => drive::<S, _>(&q6_k::Q6Rows, b, src, qw, dst),
    }
}

/// Quantizes a row of `kind` with the vector unit `isa` (ggml's weighted path when `qw` is
/// given, else its reference path), or the best one below it that this CPU has. Returns
/// false, writing nothing, when that is the scalar one.
pub(crate) fn quantize_row_isa(
    isa: Isa,
    kind: Kind,
    src: &[f32],
    qw: Option<&[f32]>,
    dst: &mut [u8],
) -> bool {
    thread_local! {
        /// Each thread's scratch batch, allocated once.
        static BATCH: RefCell<Box<Batch>> = RefCell::new(Box::new(Batch::new()));
    }
    let isa = isa.or_available();
    if isa == Isa::Scalar {
        return false;
    }
    BATCH.with(|b| {
        let b = &mut **b.borrow_mut();
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: AVX-512F was detected on this CPU (`or_available`).
                unsafe { crate::x86::vector_avx512::quantize_row(kind, b, src, qw, dst) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: AVX2 was detected on this CPU (`or_available`).
                unsafe { crate::x86::vector_avx2::quantize_row(kind, b, src, qw, dst) }
            }
            _ => unreachable!("{isa:?} is not available"),
        }
    });
    true
}
