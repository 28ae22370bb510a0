#![warn(missing_docs)]
//! gq: turns Hugging Face Gemma 4 checkpoints into GGUF files that llama.cpp loads, in one
//! streaming pass with bounded memory.
//!
//! Data flows one way: containers ([`safetensors`], [`gguf`]) → plan ([`gemma4`]) → formats
//! (the `gq-kernels` crate, [`gq_kernels::formats`]) → containers, driven by [`pipeline`];
//! the runner ([`gemma4::forward`]) feeds [`eval`] (perplexity, KLD, generation); [`cli`] only
//! parses and prints.

pub mod atomic_file;
pub mod check;
pub mod cli;
pub mod eval;
pub mod gemma4;
pub mod gguf;
pub mod imatrix;
pub mod json;
pub mod modelfile;
pub mod npy;
pub mod pipeline;
pub mod report;
pub mod safetensors;
pub mod sweep;
pub mod tokenizer;
