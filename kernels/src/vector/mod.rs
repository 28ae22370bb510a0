//! Vector paths of the k-quants, byte-identical to the scalar reference.
//!
//! ggml's scale searches run a chain of dependent f32 sums per sub-block (and, in
//! `make_qkx2_quants`, the chosen min of one candidate scale feeds the next candidate), so
//! neither the sums nor the candidates can be spread over lanes without changing bits. The
//! sub-blocks of a row, though, are independent: here every SIMD lane runs one sub-block,
//! doing exactly the scalar operations in the scalar order, with branches turned into lane
//! masks. Inputs are transposed first (element `i` of all lanes in one register).
//!
//! The kernels are written once, generic over [`Simd`], and instantiated inside
//! `#[target_feature]` functions so that the intrinsics inline (the [`Simd`] implementations
//! are in `x86/vector_avx2.rs` and `x86/vector_avx512.rs`).

pub(crate) mod rows;
pub(crate) mod search;

pub(crate) use rows::{quantize_row_isa, Kind};

/// Operations on `LANES` f32 (and i32) lanes, with the semantics of the scalar f32 code.
///
/// # Safety
/// Implementations use instructions of an optional CPU feature: every method may be called
/// only from code that runs on a CPU with that feature (and, to be fast, is compiled with it).
pub(crate) unsafe trait Simd: Copy {
    /// Lanes per register.
    const LANES: usize;
    /// f32 lanes.
    type F: Copy;
    /// i32 lanes.
    type I: Copy;
    /// A boolean per lane.
    type M: Copy;

    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self::F;
    /// All lanes `x`.
    unsafe fn splat_i(x: i32) -> Self::I;
    /// Loads `LANES` f32 (unaligned).
    unsafe fn load(p: *const f32) -> Self::F;
    /// Stores `LANES` f32 (unaligned).
    unsafe fn store(p: *mut f32, v: Self::F);
    /// Loads `LANES` i32 (unaligned).
    unsafe fn load_i(p: *const i32) -> Self::I;
    /// Stores `LANES` i32 (unaligned).
    unsafe fn store_i(p: *mut i32, v: Self::I);
    /// `a + b`.
    unsafe fn add(a: Self::F, b: Self::F) -> Self::F;
    /// `a - b`.
    unsafe fn sub(a: Self::F, b: Self::F) -> Self::F;
    /// `a * b`.
    unsafe fn mul(a: Self::F, b: Self::F) -> Self::F;
    /// `a / b`.
    unsafe fn div(a: Self::F, b: Self::F) -> Self::F;
    /// `a.sqrt()`.
    unsafe fn sqrt(a: Self::F) -> Self::F;
    /// `a.abs()` (clears the sign bit).
    unsafe fn abs(a: Self::F) -> Self::F;
    /// `-a` (flips the sign bit).
    unsafe fn neg(a: Self::F) -> Self::F;
    /// `if a < b { a } else { b }`.
    unsafe fn min(a: Self::F, b: Self::F) -> Self::F;
    /// `if a > b { a } else { b }`.
    unsafe fn max(a: Self::F, b: Self::F) -> Self::F;
    /// ggml's `nearest_int` ([`crate::num`]): the low mantissa bits of `a + 1.5·2²³`.
    unsafe fn nearest_int(a: Self::F) -> Self::I;
    /// `a.clamp(lo, hi)` (`lo <= hi`).
    unsafe fn clamp_i(a: Self::I, lo: Self::I, hi: Self::I) -> Self::I;
    /// `a + b` (wrapping).
    unsafe fn add_i(a: Self::I, b: Self::I) -> Self::I;
    /// `a as f32`.
    unsafe fn to_f(a: Self::I) -> Self::F;
    /// `a.to_bits() as i32`.
    unsafe fn bits(a: Self::F) -> Self::I;
    /// `f32::from_bits(a as u32)`.
    unsafe fn from_bits(a: Self::I) -> Self::F;
    /// `a < b`.
    unsafe fn lt(a: Self::F, b: Self::F) -> Self::M;
    /// `a > b`.
    unsafe fn gt(a: Self::F, b: Self::F) -> Self::M;
    /// `a <= b`.
    unsafe fn le(a: Self::F, b: Self::F) -> Self::M;
    /// `a == b`.
    unsafe fn eq(a: Self::F, b: Self::F) -> Self::M;
    /// `a != b` (true when either is NaN).
    unsafe fn ne(a: Self::F, b: Self::F) -> Self::M;
    /// `a != b` for i32 lanes.
    unsafe fn ne_i(a: Self::I, b: Self::I) -> Self::M;
    /// `a && b`.
    unsafe fn and(a: Self::M, b: Self::M) -> Self::M;
    /// `a || b`.
    unsafe fn or(a: Self::M, b: Self::M) -> Self::M;
    /// `a && !b`.
    unsafe fn andnot(a: Self::M, b: Self::M) -> Self::M;
    /// Whether any lane is true.
    unsafe fn any(m: Self::M) -> bool;
    /// No lane true.
    unsafe fn none() -> Self::M;
    /// Every lane `b`.
    unsafe fn splat_m(b: bool) -> Self::M;
    /// `if m { a } else { b }` per lane.
    unsafe fn select(m: Self::M, a: Self::F, b: Self::F) -> Self::F;
    /// `if m { a } else { b }` per lane.
    unsafe fn select_i(m: Self::M, a: Self::I, b: Self::I) -> Self::I;
    /// Transposes a `LANES × LANES` tile of 32-bit values: row `r` of `src` is `LANES`
    /// consecutive values at `src + r·src_stride`, and becomes column `r` of `dst`, whose row
    /// `c` is at `dst + c·dst_stride`. Pure data movement (bits are copied).
    unsafe fn transpose(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize);
}
