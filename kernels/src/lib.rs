//! gq's formats crate: every tensor format gq reads or writes, in one place.
//!
//! - [`GgmlType`]: the one type table (every ggml id, its names and block geometry).
//! - [`formats`]: one file per format with its block layout, reference quantizer (plain and
//!   importance-weighted), dequantizer and scalar dot product, and the registry
//!   [`formats::format`] from a type to its implementation.
//! - [`Isa`]: the one choice of instruction set (`GQ_ISA`), for the quantizers' vector paths
//!   ([`vector`]) and the kernels ([`dispatch`]: dequantize, dot, GEMV and GEMM in scalar,
//!   AVX2, AVX-512 and NEON code, picked at run time).
//!
//! Quantized weights are multiplied the way ggml does it: the activation row is quantized to
//! the weight type's [`GgmlType::vec_dot_type`] (Q8_0, Q8_1 or Q8_K) and each block's integer
//! dot product is exact; float weights take f32 activations, except that GEMV/GEMM round the
//! activations to BF16 for BF16 weights where the CPU has AVX512_BF16 (see [`FloatAct`]).
//!
//! No I/O, no model knowledge: formats know no model.
//!
//! ```
//! use gq_kernels::{kernels, GgmlType};
//! let k = kernels();
//! let (rows, cols) = (4, 64);
//! let w = vec![0u8; GgmlType::Q8_0.row_bytes(cols).unwrap() * rows];
//! let x = vec![1.0f32; cols];
//! let mut y = vec![0f32; rows];
//! let mut scratch = vec![0u8; gq_kernels::gemv_scratch_bytes(GgmlType::Q8_0, cols)];
//! k.gemv(GgmlType::Q8_0, &w, &x, &mut y, &mut scratch);
//! assert_eq!(y, [0.0; 4]);
//! ```

pub mod bench;
pub mod blocks;
pub mod dispatch;
pub mod f32rows;
pub mod formats;
pub mod gelu;
pub mod gemv;
pub mod isa;
pub mod neon;
pub mod num;
pub mod pool;
pub mod stream;
mod types;
pub mod vector;
#[cfg(target_arch = "x86_64")]
pub mod x86;

pub use dispatch::{
    act_bytes, all_tables, cpu_model, cpu_vendor, default_tune, kernels, kernels_for,
    kernels_tuned, selected_isa, FloatAct, Kernels, Tune,
};
pub use formats::tq::TqParams;
pub use formats::{format, Format};
pub use gemv::{
    amx_available, amx_default, gemm_min_rows, gemm_scratch_bytes, gemv_scratch_bytes,
    many_scratch_bytes, min_task_bytes, min_task_elems, min_task_macs, min_task_rows, AmxMode,
    Weights, GEMM_TILE_MIN_N,
};
pub use isa::Isa;
pub use types::GgmlType;
