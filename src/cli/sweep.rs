//! `gq sweep`: arguments, the progress bar, one line per type.

use crate::eval::{cache, stats::RecordSpec, EvalText, PplOptions};
use crate::gemma4::FileType;
use crate::sweep::{self, Status, SweepOptions, TypeResult};
use anyhow::{anyhow, Result};
use clap::Args;
use gq_kernels::FloatAct;
use std::path::PathBuf;

/// Arguments of `gq sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Checkpoint directory: quantized to each type, and the baseline of every comparison.
    pub checkpoint: PathBuf,
    /// Types to make and evaluate, comma-separated (Q8_0,Q6_K,Q4_K_M,…).
    #[arg(long, value_name = "TYPE,…", value_delimiter = ',', required = true)]
    pub types: Vec<String>,
    /// The text to evaluate on (UTF-8).
    #[arg(long, value_name = "FILE")]
    pub text: PathBuf,
    /// Context length: tokens per chunk (the second half of each chunk is scored).
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// Evaluate only the first N chunks.
    #[arg(long, value_name = "N")]
    pub chunks: Option<usize>,
    /// Output directory: results.md, results.json, plots, types/ (finished types; a second run
    /// skips them).
    #[arg(long, value_name = "DIR", default_value = "sweep")]
    pub out: PathBuf,
    /// Keep the quantized files in the output directory.
    #[arg(long)]
    pub keep_files: bool,
    /// Buckets of the KLD-along-the-context plot.
    #[arg(long, default_value_t = 16)]
    pub drift_buckets: usize,
    /// Directory of the baseline cache (default: as `gq ppl`).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Threads (default: all cores). Results are identical for any value.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Multiply BF16 weights with BF16-rounded activations, as llama.cpp's CPU backend does.
    #[arg(long)]
    pub bf16_act: bool,
}

fn bar() -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} tokens, sweep eta {eta} | {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    bar
}

fn line(r: &TypeResult, s: Status) -> String {
    format!(
        "{:<7} {:>6.3} bpw {:>12} bytes  PPL {:>9.4} ({:+.3} %)  KLD mean {:.3e} p99 {:.3e}  \
         top-1 {:.2} %{}",
        r.file_type,
        r.bpw,
        r.file_bytes,
        r.ppl,
        r.ppl_increase_pct,
        r.kld_mean,
        r.kld_p99,
        100.0 * r.top1_agreement,
        if s == Status::Resumed {
            "  (finished earlier, skipped)"
        } else {
            ""
        }
    )
}

/// Runs `gq sweep`.
pub fn run(a: SweepArgs) -> Result<()> {
    let types = a
        .types
        .iter()
        .filter(|t| !t.trim().is_empty())
        .map(|t| {
            FileType::parse(t.trim()).ok_or_else(|| {
                let names: Vec<&str> = FileType::ALL.iter().map(|t| t.name()).collect();
                anyhow!(
                    "unknown type {t:?} in --types: gq writes {}",
                    names.join(", ")
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let o = SweepOptions {
        checkpoint: a.checkpoint.clone(),
        types,
        text: EvalText::read(&a.text)?,
        ppl: PplOptions {
            ctx: a.ctx,
            chunks: a.chunks,
            drift_buckets: a.drift_buckets,
            record: RecordSpec::default(),
            cache_dir: a.cache_dir.clone().or_else(cache::default_dir),
            ..PplOptions::default()
        },
        out: a.out.clone(),
        keep_files: a.keep_files,
        act: if a.bf16_act {
            FloatAct::Bf16
        } else {
            FloatAct::F32
        },
        threads: a.threads,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()?;
    let bar = bar();
    let s = pool.install(|| {
        sweep::run(&o, &bar, &mut |r, s| {
            let l = line(r, s);
            if bar.is_hidden() {
                println!("{l}");
            } else {
                bar.println(l);
            }
        })
    })?;
    bar.finish_and_clear();
    let done = s.status.iter().filter(|(_, s)| *s == Status::Done).count();
    println!(
        "{} types ({} evaluated now, {} finished earlier); baseline PPL {:.4}",
        s.status.len(),
        done,
        s.status.len() - done,
        s.results.baseline.ppl
    );
    for p in &s.written {
        println!("wrote {}", p.display());
    }
    Ok(())
}
