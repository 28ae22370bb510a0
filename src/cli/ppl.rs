//! `gq ppl`: perplexity of a model on a text, and its drift from a baseline (KLD, top-1
//! agreement, Δp, by position in the context), in llama-perplexity's convention.

use crate::eval::stats::RecordSpec;
use crate::eval::{self, cache, Baseline, PplOptions, PplReport};
use crate::gemma4::Model;
use crate::tokenizer::Tokenizer;
use anyhow::{Context, Result};
use clap::Args;
use gq_kernels::FloatAct;
use std::path::PathBuf;

/// Arguments of `gq ppl`.
#[derive(Args, Debug)]
pub struct PplArgs {
    /// The model: a GGUF file or a checkpoint directory.
    pub model: PathBuf,
    /// The text to evaluate (UTF-8; one final newline is dropped, as llama-perplexity -f does).
    #[arg(long, value_name = "FILE")]
    pub text: PathBuf,
    /// Context length: tokens per chunk (the second half of each chunk is scored).
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// Compare with this model (GGUF or checkpoint): KLD, top-1 agreement, Δp, drift.
    #[arg(long, value_name = "MODEL")]
    pub baseline: Option<PathBuf>,
    /// Evaluate only the first N chunks.
    #[arg(long, value_name = "N")]
    pub chunks: Option<usize>,
    /// Threads (default: all cores). Results are identical for any value.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Tokens per forward batch (the logits buffer holds at most this many rows).
    #[arg(long, default_value_t = 512)]
    pub ubatch: usize,
    /// Buckets of the drift-versus-position table.
    #[arg(long, default_value_t = 8)]
    pub drift_buckets: usize,
    /// The baseline cache lists, per position, the baseline's most likely tokens until the
    /// probability of the others is at most this (kept as one total).
    #[arg(long, default_value_t = 1e-3, value_name = "MASS")]
    pub kld_tail: f64,
    /// … and at most this many tokens per position.
    #[arg(long, default_value_t = 8192, value_name = "N")]
    pub kld_max_tokens: usize,
    /// Directory of the baseline cache (default: $GQ_CACHE_DIR, $XDG_CACHE_HOME/gq or
    /// ~/.cache/gq, then baselines/).
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,
    /// Neither read nor write the baseline cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Also compute the KLD over the whole vocabulary from the baseline's full logits (runs the
    /// baseline; no cache), to check the cached records.
    #[arg(long, requires = "baseline")]
    pub kld_exact: bool,
    /// Multiply BF16 weights (of the model and the baseline) with activations rounded to BF16,
    /// as llama.cpp's CPU backend does, instead of exact f32 activations.
    #[arg(long)]
    pub bf16_act: bool,
}

pub(super) fn progress_bar() -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} tokens {per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Runs `gq ppl`.
pub fn run(a: PplArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let bytes = std::fs::read(&a.text).with_context(|| format!("{}", a.text.display()))?;
    let text = std::str::from_utf8(&bytes)
        .with_context(|| format!("{}: not UTF-8 text", a.text.display()))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()
        .context("cannot start the thread pool")?;
    let act = if a.bf16_act {
        FloatAct::Bf16
    } else {
        FloatAct::F32
    };
    let mut model = Model::open(&a.model)?;
    model.float_act = act;
    let tok = Tokenizer::open(&a.model)?;
    let tokens = eval::text_tokens(&tok, text);
    let bos = tok.add_bos().then(|| tok.bos()).flatten();
    let opts = PplOptions {
        ctx: a.ctx,
        chunks: a.chunks,
        ubatch: a.ubatch,
        drift_buckets: a.drift_buckets,
        record: RecordSpec {
            tail: a.kld_tail,
            max_tokens: a.kld_max_tokens,
        },
        cache_dir: if a.no_cache {
            None
        } else {
            a.cache_dir.clone().or_else(cache::default_dir)
        },
        kld_exact: a.kld_exact,
    };
    let base_path = a.baseline.clone();
    let open = || -> Result<Model> {
        let mut m = Model::open(base_path.as_ref().unwrap())?;
        m.float_act = act;
        Ok(m)
    };
    let base_tokens = || -> Result<Vec<u32>> {
        let t = Tokenizer::open(base_path.as_ref().unwrap())?;
        Ok(eval::text_tokens(&t, text))
    };
    let baseline = a.baseline.as_ref().map(|p| Baseline {
        path: p,
        float_act: act,
        open: &open,
        tokens: &base_tokens,
    });
    let bar = progress_bar();
    let r = pool
        .install(|| {
            eval::evaluate(
                &model,
                &tokens,
                text.as_bytes(),
                bos,
                baseline.as_ref(),
                &opts,
                &bar,
            )
        })
        .with_context(|| format!("{}", a.model.display()))?;
    bar.finish_and_clear();
    let (data_bytes, n_weights) = model.file.data_bytes_and_weights();
    let bpw = data_bytes as f64 * 8.0 / n_weights.max(1) as f64;
    let file_bytes = model.file.file_bytes();
    let secs = t0.elapsed().as_secs_f64();
    if a.json {
        print_json(&a, &r, bpw, file_bytes, n_weights, secs)?;
    } else {
        print_text(&a, &r, bpw, file_bytes, secs);
    }
    Ok(())
}

fn print_json(
    a: &PplArgs,
    r: &PplReport,
    bpw: f64,
    file_bytes: u64,
    n_weights: u64,
    secs: f64,
) -> Result<()> {
    use serde_json::json;
    let k = r.kld.as_ref();
    let out = json!({
        "model": a.model.to_string_lossy(),
        "text": a.text.to_string_lossy(),
        "baseline": a.baseline.as_ref().map(|p| p.to_string_lossy()),
        "ctx": r.ctx,
        "chunks": r.n_chunks,
        "n_text_tokens": r.n_text_tokens,
        "n_tokens": r.n_tokens,
        "ppl": r.ppl,
        "ppl_stderr": r.ppl_stderr,
        "ppl_base": k.map(|k| k.ppl_base),
        "kld_mean": k.map(|k| k.kld_mean),
        "kld_mean_stderr": k.map(|k| k.kld_mean_stderr),
        "kld_median": k.map(|k| k.kld_median),
        "kld_p99": k.map(|k| k.kld_p99),
        "kld_max": k.map(|k| k.kld_max),
        "top1_agreement": k.map(|k| k.top1_agreement),
        "rms_dp": k.map(|k| k.rms_dp),
        "bpw": bpw,
        "file_bytes": file_bytes,
        "n_weights": n_weights,
        "kld": k,
        "bf16_act": a.bf16_act,
        "drift": r.drift,
        "cache": r.cache,
        "seconds": secs,
        "peak_rss_bytes": crate::pipeline::peak_rss_bytes(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn print_text(a: &PplArgs, r: &PplReport, bpw: f64, file_bytes: u64, secs: f64) {
    println!(
        "{}: {:.2} MiB, {bpw:.3} bits per weight",
        a.model.display(),
        file_bytes as f64 / (1u64 << 20) as f64
    );
    println!(
        "{}: {} tokens; {} chunks of {}, {} scored tokens (positions {}-{} of each chunk)",
        a.text.display(),
        r.n_text_tokens,
        r.n_chunks,
        r.ctx,
        r.n_tokens,
        r.ctx / 2,
        r.ctx - 2
    );
    println!("PPL = {:.4} +/- {:.5}", r.ppl, r.ppl_stderr);
    if let (Some(k), Some(b)) = (&r.kld, &a.baseline) {
        println!();
        println!("against {}:", b.display());
        println!(
            "  PPL(base)       {:.4} +/- {:.5}   ln(PPL/PPL(base)) {:.6}",
            k.ppl_base, k.ppl_base_stderr, k.ln_ppl_ratio
        );
        println!(
            "  KLD mean        {:.6} +/- {:.6}",
            k.kld_mean, k.kld_mean_stderr
        );
        println!(
            "  KLD median      {:.6}   p90 {:.6}   p99 {:.6}   p99.9 {:.6}   max {:.6}",
            k.kld_median, k.kld_p90, k.kld_p99, k.kld_p999, k.kld_max
        );
        println!(
            "  same top-1      {:.3} +/- {:.3} %",
            100.0 * k.top1_agreement,
            100.0 * k.top1_agreement_stderr
        );
        println!(
            "  RMS Δp          {:.3} %   mean Δp {:.3} %   max |Δp| {:.3} %",
            100.0 * k.rms_dp,
            100.0 * k.mean_dp,
            100.0 * k.max_abs_dp
        );
        if let (Some(e), Some(m)) = (k.kld_mean_exact, k.kld_cache_max_error) {
            println!(
                "  KLD mean over the whole vocabulary {e:.6} (from the records: {:.6}; largest \
                 per-position difference {m:.2e})",
                k.kld_mean
            );
        }
        if let Some(c) = &r.cache {
            println!(
                "  baseline records {:.1} tokens per position on average, unlisted mass mean \
                 {:.2e} max {:.2e}",
                c.listed_mean, c.tail_mass_mean, c.tail_mass_max
            );
            if let Some(p) = &c.path {
                println!(
                    "  baseline cache  {} ({}, {:.2} MiB)",
                    p.display(),
                    if c.hit { "read" } else { "written" },
                    c.file_bytes as f64 / (1u64 << 20) as f64,
                );
            }
            if let Some(why) = &c.replaced {
                println!("  (replaced an unusable cache file: {why})");
            }
        }
    }
    println!();
    println!("drift along the context (all chunks, scored positions):");
    if r.kld.is_some() {
        println!(
            "  {:>11}  {:>6}  {:>9}  {:>10}  {:>10}  {:>7}  {:>7}",
            "positions", "tokens", "PPL", "KLD mean", "KLD p99", "top-1 %", "RMS Δp %"
        );
        for b in &r.drift {
            println!(
                "  {:>5}-{:<5}  {:>6}  {:>9.4}  {:>10.6}  {:>10.6}  {:>7.3}  {:>7.3}",
                b.first_pos,
                b.last_pos,
                b.n,
                b.ppl,
                b.kld_mean.unwrap_or(f64::NAN),
                b.kld_p99.unwrap_or(f64::NAN),
                100.0 * b.top1_agreement.unwrap_or(f64::NAN),
                100.0 * b.rms_dp.unwrap_or(f64::NAN)
            );
        }
    } else {
        println!("  {:>11}  {:>6}  {:>9}", "positions", "tokens", "PPL");
        for b in &r.drift {
            println!(
                "  {:>5}-{:<5}  {:>6}  {:>9.4}",
                b.first_pos, b.last_pos, b.n, b.ppl
            );
        }
    }
    let rss = crate::pipeline::peak_rss_bytes()
        .map(|b| format!(", peak RSS {:.1} MiB", b as f64 / (1u64 << 20) as f64))
        .unwrap_or_default();
    eprintln!("{secs:.1} s{rss}");
}
