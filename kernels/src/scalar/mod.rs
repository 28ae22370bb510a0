//! Portable scalar kernels: the reference every SIMD path is tested against, and the fallback
//! on CPUs without one.

pub mod dequant;
pub mod dot;
pub mod quantize;
