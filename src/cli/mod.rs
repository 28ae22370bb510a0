//! Command-line parsing and printing. The work happens in the library.

mod inspect;

use crate::gguf::FileType;
use crate::pipeline::{self, Options};
use anyhow::{anyhow, Result};
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
    Quantize {
        /// Checkpoint directory: config.json, model.safetensors or shards + index, tokenizer files.
        checkpoint: PathBuf,
        /// Output GGUF file (written to a temp file beside it and renamed when complete).
        #[arg(short, long)]
        output: PathBuf,
        /// Output type, as llama-quantize names it: F32, F16, BF16, Q8_0 (case-insensitive).
        #[arg(
            short = 't',
            long = "type",
            value_name = "TYPE",
            default_value = "BF16"
        )]
        ty: String,
        /// Worker threads (default: all cores). The output is byte-identical for any value.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// No progress bar and no summary.
        #[arg(short, long)]
        quiet: bool,
        /// Write NaN/Inf weights into quantized tensors instead of refusing.
        #[arg(long)]
        allow_nonfinite: bool,
        /// Print the plan (every output tensor's name, type, shape, size) and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print a GGUF file's metadata and tensor table (like gguf-py's gguf_dump), or a checkpoint
    /// directory's config and tensors.
    Inspect {
        /// A .gguf file or a checkpoint directory.
        path: PathBuf,
        /// Machine-readable JSON output.
        #[arg(long)]
        json: bool,
    },
}

fn parse_type(s: &str) -> Result<FileType> {
    FileType::parse(s)
        .ok_or_else(|| anyhow!("unknown --type {s:?}: gq writes F32, F16, BF16 and Q8_0"))
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Quantize {
            checkpoint,
            output,
            ty,
            threads,
            quiet,
            allow_nonfinite,
            dry_run,
        } => {
            let ft = parse_type(&ty)?;
            if dry_run {
                let (_, plan) = pipeline::open_and_plan(&checkpoint, ft)?;
                inspect::print_plan(&plan);
                return Ok(());
            }
            let opts = Options {
                threads,
                progress: !quiet,
                allow_nonfinite,
            };
            let s = pipeline::quantize(&checkpoint, &output, ft, &opts)?;
            for w in &s.warnings {
                eprintln!("warning: {w}");
            }
            if !quiet {
                let mb = s.bytes_in as f64 / 1e6;
                println!(
                    "wrote {}: {} tensors ({} vision/audio tensors skipped), {:.1} MB in -> {:.1} MB out, {:.3} bits/weight, {:.2} s, {:.0} MB/s, peak RSS {} MB",
                    s.path.display(),
                    s.n_tensors,
                    s.skipped,
                    mb,
                    s.bytes_out as f64 / 1e6,
                    s.bits_per_weight(),
                    s.seconds,
                    mb / s.seconds.max(1e-9),
                    s.peak_rss_bytes.map_or("?".to_string(), |b| format!("{:.0}", b as f64 / 1e6))
                );
            }
            Ok(())
        }
        Command::Inspect { path, json } => inspect::run(&path, json),
    }
}
