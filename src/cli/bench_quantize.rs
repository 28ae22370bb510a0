//! `gq bench quantize` arguments and output.

use super::bench_quantize_peers::{run_quantize_bench, QuantizeBenchOptions};
use crate::gemma4::FileType;
use anyhow::{anyhow, Result};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `gq bench quantize`.
#[derive(Args, Debug)]
pub struct QuantizeBenchArgs {
    /// Checkpoint directory (e.g. the synthetic one from scripts/make_synthetic.py).
    pub checkpoint: PathBuf,
    /// llama.cpp file type.
    #[arg(short = 't', long = "type", default_value = "Q4_K_M")]
    pub ty: String,
    /// Threads for both tools.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Timed runs of each tool; the fastest counts.
    #[arg(long, default_value_t = 1)]
    pub reps: usize,
    /// Python with torch + transformers: also time convert_hf_to_gguf.py + llama-quantize.
    #[arg(long, value_name = "PYTHON")]
    pub converter_python: Option<PathBuf>,
    /// Scratch directory.
    #[arg(long, default_value = "/tmp/gq-bench-quantize")]
    pub work_dir: PathBuf,
    /// Machine-readable JSON output.
    #[arg(long)]
    pub json: bool,
}

/// Runs `gq bench quantize`.
pub fn run(a: QuantizeBenchArgs) -> Result<()> {
    let peers = std::env::var_os("GQ_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/gq-peers")
        });
    let ty = FileType::parse(&a.ty).ok_or_else(|| anyhow!("unknown --type {:?}", a.ty))?;
    let llama_dir = peers.join("sdist/llama_cpp_python-0.3.36/vendor/llama.cpp");
    let o = QuantizeBenchOptions {
        checkpoint: a.checkpoint,
        ty,
        threads: a.threads,
        reps: a.reps,
        llama_quantize: peers.join("build/bin/llama-quantize"),
        converter: a.converter_python.map(|p| (llama_dir, p)),
        work_dir: a.work_dir,
    };
    let r = run_quantize_bench(&o)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "{} -> {}, {} threads, {:.0} MB of tensors",
        r.checkpoint, r.ty, r.threads, r.input_mb
    );
    println!(
        "  gq quantize (safetensors):    {:8.2} s  {:7.0} MB/s",
        r.gq_seconds,
        r.input_mb / r.gq_seconds
    );
    println!(
        "  llama-quantize (BF16 GGUF):   {:8.2} s  {:7.0} MB/s",
        r.llama_quantize_seconds,
        r.input_mb / r.llama_quantize_seconds
    );
    println!(
        "  gq / llama-quantize: {:.2}x faster; tensors {}",
        r.speedup,
        if r.identical_tensors {
            "identical"
        } else {
            "DIFFER"
        }
    );
    if let (Some(c), Some(e)) = (r.converter_seconds, r.end_to_end_speedup) {
        println!(
            "  convert_hf_to_gguf.py {:.2} s + llama-quantize {:.2} s vs gq {:.2} s: {:.2}x faster end to end",
            c, r.llama_quantize_seconds, r.gq_seconds, e
        );
    }
    Ok(())
}
