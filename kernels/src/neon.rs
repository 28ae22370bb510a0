//! aarch64: the portable path for now.
//!
//! No aarch64 standard library is installed on the build machines (and rustup cannot fetch one
//! offline), so NEON kernels could be neither compiled nor tested here. On aarch64 the
//! dispatcher offers only [`crate::Isa::Scalar`], whose loops LLVM auto-vectorizes with NEON
//! for the float types. This module is where `std::arch::aarch64` kernels (SDOT for the 8-bit
//! products, `vcvt` for F16/BF16) will go, behind the same [`crate::Kernels`] table.

/// Whether NEON kernels are compiled in (not yet).
pub const NEON_KERNELS: bool = false;
