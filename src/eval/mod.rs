//! Evaluation with the runner: perplexity and the comparison with a baseline in
//! llama-perplexity's convention ([`ppl`]), the per-position statistics ([`stats`]), the compact
//! baseline cache ([`cache`]), and text generation ([`generate`]). docs/eval.md describes the
//! conventions, the cache and what was measured against llama.cpp.

pub mod cache;
pub mod files;
pub mod generate;
pub mod ppl;
pub mod stats;

pub use files::{evaluate_file, EvalText, FileEval};
pub use generate::{generate, Sampler, SamplerConfig, Stop};
pub use ppl::{evaluate, text_tokens, Baseline, Chunks, PplOptions, PplReport};
