//! Everything gq knows about Gemma 4: its config, tensor names, GGUF metadata, the plan of a
//! conversion and the forward pass. The only module that knows what Gemma 4 is.

pub mod check;
pub mod config;
mod file_type;
pub mod forward;
pub mod hparams;
pub mod metadata;
pub mod mixture;
pub mod model;
pub mod names;
pub mod ops;
pub mod plan;
pub mod weights;

pub use config::TextConfig;
pub use file_type::FileType;
pub use forward::{greedy, logits_at, Session};
pub use model::Model;
pub use plan::{Plan, PlanTensor, Source};
