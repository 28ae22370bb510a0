//! `gq bench quantize`: gq against llama.cpp on the same cores in one run. gq converts the
//! checkpoint (safetensors) straight to a llama.cpp type; llama-quantize converts the BF16 GGUF
//! of the same checkpoint (written by gq beforehand, byte-identical to the converter's) to the
//! same type with the same thread count. Optionally the whole two-step route
//! (`convert_hf_to_gguf.py` + `llama-quantize`) is timed too.

use crate::gemma4::FileType;
use crate::gguf::GgufFile;
use crate::pipeline::{self, Options};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// What to measure.
#[derive(Clone, Debug)]
pub struct QuantizeBenchOptions {
    /// Checkpoint directory.
    pub checkpoint: PathBuf,
    /// Target file type.
    pub ty: FileType,
    /// Threads for both tools.
    pub threads: usize,
    /// Timed runs of each tool (the fastest counts).
    pub reps: usize,
    /// llama-quantize binary.
    pub llama_quantize: PathBuf,
    /// llama.cpp tree and a Python with torch, for the end-to-end comparison.
    pub converter: Option<(PathBuf, PathBuf)>,
    /// Scratch directory for the files written.
    pub work_dir: PathBuf,
}

/// The measurements.
#[derive(Clone, Debug, Serialize)]
pub struct QuantizeBenchReport {
    /// Checkpoint measured.
    pub checkpoint: String,
    /// Target type.
    pub ty: String,
    /// Threads.
    pub threads: usize,
    /// Size of the checkpoint's tensors, MB.
    pub input_mb: f64,
    /// Best gq time, s.
    pub gq_seconds: f64,
    /// Best llama-quantize time, s.
    pub llama_quantize_seconds: f64,
    /// llama-quantize time / gq time.
    pub speedup: f64,
    /// Whether both outputs hold the same tensors with the same types and bytes.
    pub identical_tensors: bool,
    /// convert_hf_to_gguf.py (BF16) seconds, when measured.
    pub converter_seconds: Option<f64>,
    /// (converter + llama-quantize) / gq, when measured.
    pub end_to_end_speedup: Option<f64>,
}

fn best_of<F: FnMut() -> Result<()>>(reps: usize, mut f: F) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let o = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !o.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    Ok(())
}

/// True when both files hold the same tensor names, types, shapes and bytes.
pub fn same_tensors(a: &Path, b: &Path) -> Result<bool> {
    let (fa, fb) = (GgufFile::open(a)?, GgufFile::open(b)?);
    if fa.tensors.len() != fb.tensors.len() {
        return Ok(false);
    }
    for t in &fa.tensors {
        let Some(u) = fb.tensor(&t.name) else {
            return Ok(false);
        };
        if t.ty != u.ty || t.dims != u.dims || fa.tensor_data(t) != fb.tensor_data(u) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Runs the benchmark.
pub fn run_quantize_bench(o: &QuantizeBenchOptions) -> Result<QuantizeBenchReport> {
    if o.ty.is_converter_type() {
        bail!("gq bench quantize compares with llama-quantize: pick one of its types (Q4_K_M, Q6_K, ...)");
    }
    if !o.llama_quantize.is_file() {
        bail!(
            "{} not found: run scripts/get_peers.sh",
            o.llama_quantize.display()
        );
    }
    std::fs::create_dir_all(&o.work_dir)?;
    let bf16 = o.work_dir.join("bench-bf16.gguf");
    let ours = o.work_dir.join("bench-gq.gguf");
    let theirs = o.work_dir.join("bench-llama-quantize.gguf");
    let opts = |threads| Options {
        threads,
        ..Default::default()
    };
    let s = pipeline::quantize(&o.checkpoint, &bf16, FileType::MOSTLY_BF16, &opts(0))?;
    let input_mb = s.bytes_in as f64 / 1e6;
    let gq_seconds = best_of(o.reps, || {
        pipeline::quantize(&o.checkpoint, &ours, o.ty, &opts(o.threads)).map(|_| ())
    })?;
    let threads = o.threads.max(1).to_string();
    let llama_quantize_seconds = best_of(o.reps, || {
        run(
            Command::new(&o.llama_quantize)
                .arg(&bf16)
                .arg(&theirs)
                .arg(o.ty.name())
                .arg(&threads),
            "llama-quantize",
        )
    })?;
    let identical_tensors = same_tensors(&ours, &theirs)?;
    let (mut converter_seconds, mut end_to_end_speedup) = (None, None);
    if let Some((llama_dir, python)) = &o.converter {
        let conv = o.work_dir.join("bench-converter-bf16.gguf");
        let t = best_of(1, || {
            run(
                Command::new(python)
                    .env("PYTHONPATH", llama_dir.join("gguf-py"))
                    .arg(llama_dir.join("convert_hf_to_gguf.py"))
                    .arg(&o.checkpoint)
                    .args(["--outtype", "bf16", "--outfile"])
                    .arg(&conv),
                "convert_hf_to_gguf.py",
            )
        })?;
        converter_seconds = Some(t);
        end_to_end_speedup = Some((t + llama_quantize_seconds) / gq_seconds);
        let _ = std::fs::remove_file(conv);
    }
    for f in [&bf16, &ours, &theirs] {
        let _ = std::fs::remove_file(f);
    }
    Ok(QuantizeBenchReport {
        checkpoint: o.checkpoint.display().to_string(),
        ty: o.ty.name().to_string(),
        threads: o.threads,
        input_mb,
        gq_seconds,
        llama_quantize_seconds,
        speedup: llama_quantize_seconds / gq_seconds,
        identical_tensors,
        converter_seconds,
        end_to_end_speedup,
    })
}
