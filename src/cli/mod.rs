//! Command-line parsing and printing. The work happens in the library.

mod bench;
mod bench_kernels;
mod bench_quantize;
mod bench_quantize_peers;
mod check;
mod generate;
pub(crate) mod inspect;
mod logits;
mod ppl;
mod quantize;
mod sweep;
mod tokenize;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// gq: Gemma 4 checkpoints to verified GGUF files.
#[derive(Parser, Debug)]
#[command(name = "gq", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// gq's commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Convert a Hugging Face Gemma 4 checkpoint directory to GGUF (like convert_hf_to_gguf.py
    /// followed by llama-quantize, in one streaming pass).
    Quantize(quantize::QuantizeArgs),
    /// Print a GGUF file's metadata and tensor table (like gguf-py's gguf_dump), or a checkpoint
    /// directory's config and tensors.
    Inspect {
        /// A .gguf file or a checkpoint directory.
        path: PathBuf,
        /// Machine-readable JSON output.
        #[arg(long)]
        json: bool,
        /// With a .gguf file: write per-tensor statistics against the checkpoint given by
        /// --checkpoint (type, rule, bits per weight, RMSE, relative MSE, cosine, max error) to
        /// FILE (CSV for a .csv name, JSON otherwise), as `gq quantize --report` does.
        #[arg(long, value_name = "FILE.json|FILE.csv", requires = "checkpoint")]
        report: Option<PathBuf>,
        /// The checkpoint directory the file was made from (for --report).
        #[arg(long, value_name = "DIR")]
        checkpoint: Option<PathBuf>,
    },
    /// The raw logits (after soft-capping) of a GGUF file or checkpoint at chosen positions of
    /// an input (`--ids 2,651,…` or `--text FILE`), as text, JSON or a .npy file.
    Logits(logits::LogitsArgs),
    /// Perplexity on a text in llama-perplexity's convention and, against a baseline model, KLD,
    /// top-1 agreement, Δp and their drift along the context.
    Ppl(ppl::PplArgs),
    /// Generate text (greedy or sampled, optionally with the chat template), streamed.
    Generate(generate::GenerateArgs),
    /// Tokenize text with a model's tokenizer (GGUF or checkpoint), as llama-tokenize does, or
    /// decode ids.
    Tokenize(tokenize::TokenizeArgs),
    /// Check a model against a baseline with quality thresholds (mean/p99 KLD, PPL increase,
    /// top-1 agreement): exit 0 when all hold, 1 when one fails, 2 on a usage or input error;
    /// optional JSON and JUnit XML output.
    Check(check::CheckArgs),
    /// Quantize a checkpoint to several types and evaluate each against it: results.md,
    /// results.json and plots (SVG, PNG); resumable.
    Sweep(sweep::SweepArgs),
    /// Measure performance: `gq bench kernels` (memory bandwidth, GEMV per type, ggml peer).
    Bench(bench::BenchArgs),
}

/// An error that ends the process with a chosen exit status (`gq check`'s 1 and 2); its
/// message, when not empty, is printed as `error: …`.
#[derive(Debug)]
pub struct Exit {
    /// The exit status.
    pub code: i32,
    /// What to print (nothing when the command already said it).
    pub message: String,
}

impl Exit {
    /// An exit with `code` and `message`.
    pub fn new(code: i32, message: String) -> Exit {
        Exit { code, message }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Quantize(args) => quantize::run(args),
        Command::Inspect {
            path,
            json,
            report: Some(report),
            checkpoint: Some(ckpt),
        } => {
            let _ = json;
            crate::report::write(&report, &crate::report::inspect_report(&path, &ckpt)?)
        }
        Command::Inspect { path, json, .. } => inspect::run(&path, json),
        Command::Bench(args) => bench::run(args),
        Command::Logits(args) => logits::run(args),
        Command::Ppl(args) => ppl::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Tokenize(args) => tokenize::run(args),
        Command::Check(args) => check::run(args),
        Command::Sweep(args) => sweep::run(args),
    }
}
