//! Everything gq knows about Gemma 4: its config, tensor names, GGUF metadata and the plan of a
//! conversion. The only module that knows what Gemma 4 is.

pub mod config;
mod file_type;
pub mod metadata;
pub mod mixture;
pub mod names;
pub mod plan;

pub use config::TextConfig;
pub use file_type::FileType;
pub use plan::{Plan, PlanTensor, Source};
