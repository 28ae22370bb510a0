//! GGUF v3 containers: metadata values, a validating reader and a streaming writer. Nothing
//! here knows about Gemma 4 or how tensors are quantized beyond their sizes (the type table,
//! [`GgmlType`], is the formats crate's).

mod reader;
pub mod turboquant;
mod value;
mod writer;

pub use gq_kernels::GgmlType;
pub use reader::{GgufFile, TensorInfo};
pub use value::{MetaArray, MetaValue, Metadata};
pub use writer::{layout_tensors, GgufWriter, PlannedTensor};

/// The GGUF magic, "GGUF" read as little-endian u32 bytes.
pub const MAGIC: &[u8; 4] = b"GGUF";
/// The GGUF version gq writes.
pub const VERSION: u32 = 3;
/// Default alignment of tensor data (`general.alignment` when absent).
pub const DEFAULT_ALIGNMENT: u64 = 32;
