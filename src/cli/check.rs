//! `gq check`: evaluates a model against a baseline and checks quality thresholds. Exit status
//! 0 when every threshold holds, 1 when one fails, 2 on a usage or input error.

use super::Exit;
use crate::check::{self, JunitInfo, Metric, Outcome, Threshold};
use crate::eval::{self, cache, stats::RecordSpec, EvalText, FileEval, PplOptions};
use anyhow::{bail, Result};
use clap::Args;
use gq_kernels::FloatAct;
use std::path::PathBuf;

/// Arguments of `gq check`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("thresholds").required(true).multiple(true)
    .args(["max_kld", "max_kld_p99", "max_ppl_increase", "min_top1"])))]
pub struct CheckArgs {
    /// The model to check (GGUF file).
    pub model: PathBuf,
    /// The reference: a checkpoint directory or a GGUF file.
    #[arg(long, value_name = "CHECKPOINT_DIR|GGUF")]
    pub baseline: PathBuf,
    /// The text to evaluate on (UTF-8).
    #[arg(long, value_name = "FILE")]
    pub text: PathBuf,
    /// Context length: tokens per chunk (the second half of each chunk is scored).
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// Evaluate only the first N chunks.
    #[arg(long, value_name = "N")]
    pub chunks: Option<usize>,
    /// Largest allowed mean KLD (nats).
    #[arg(long, value_name = "X", value_parser = non_negative)]
    pub max_kld: Option<f64>,
    /// Largest allowed 99th percentile of the per-position KLD (nats).
    #[arg(long, value_name = "X", value_parser = non_negative)]
    pub max_kld_p99: Option<f64>,
    /// Largest allowed perplexity increase over the baseline, in percent (`2` or `2%`).
    #[arg(long, value_name = "P%", value_parser = percent)]
    pub max_ppl_increase: Option<f64>,
    /// Smallest allowed top-1 agreement with the baseline, a fraction in [0, 1].
    #[arg(long, value_name = "F", value_parser = fraction)]
    pub min_top1: Option<f64>,
    /// Print one JSON object (the verdict line goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Also write a JUnit XML report (one test case per threshold).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Directory of the baseline cache (default: as `gq ppl`).
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,
    /// Neither read nor write the baseline cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Threads (default: all cores). Results are identical for any value.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Multiply BF16 weights with BF16-rounded activations, as llama.cpp's CPU backend does.
    #[arg(long)]
    pub bf16_act: bool,
}

fn number(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if !v.is_finite() {
        return Err(format!("{s:?} is not a finite number"));
    }
    Ok(v)
}

fn non_negative(s: &str) -> std::result::Result<f64, String> {
    let v = number(s)?;
    if v < 0.0 {
        return Err(format!("{s} is negative"));
    }
    Ok(v)
}

fn percent(s: &str) -> std::result::Result<f64, String> {
    number(s.trim().strip_suffix('%').unwrap_or(s))
}

fn fraction(s: &str) -> std::result::Result<f64, String> {
    let v = number(s)?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{s} is not a fraction in [0, 1] (0.95 means 95 %)"));
    }
    Ok(v)
}

impl CheckArgs {
    fn thresholds(&self) -> Vec<Threshold> {
        [
            (Metric::KldMean, self.max_kld),
            (Metric::KldP99, self.max_kld_p99),
            (Metric::PplIncreasePct, self.max_ppl_increase),
            (Metric::Top1Agreement, self.min_top1),
        ]
        .into_iter()
        .filter_map(|(metric, l)| l.map(|limit| Threshold { metric, limit }))
        .collect()
    }

    fn junit_info(&self, seconds: f64, e: Option<&FileEval>) -> JunitInfo {
        let mut p = vec![
            (
                "model".to_string(),
                self.model.to_string_lossy().into_owned(),
            ),
            (
                "baseline".to_string(),
                self.baseline.to_string_lossy().into_owned(),
            ),
            ("text".to_string(), self.text.to_string_lossy().into_owned()),
            ("ctx".to_string(), self.ctx.to_string()),
        ];
        if let Some(e) = e {
            let r = &e.report;
            p.push(("chunks".into(), r.n_chunks.to_string()));
            p.push(("scored_tokens".into(), r.n_tokens.to_string()));
            p.push(("ppl".into(), r.ppl.to_string()));
            if let Some(k) = &r.kld {
                p.push(("ppl_base".into(), k.ppl_base.to_string()));
                p.push(("kld_mean".into(), k.kld_mean.to_string()));
                p.push(("kld_p99".into(), k.kld_p99.to_string()));
                p.push(("top1_agreement".into(), k.top1_agreement.to_string()));
            }
            p.push(("bpw".into(), e.bpw.to_string()));
            p.push(("file_bytes".into(), e.file_bytes.to_string()));
        }
        JunitInfo {
            suite: format!("gq check {}", self.model.display()),
            seconds,
            properties: p,
        }
    }
}

fn evaluate(a: &CheckArgs) -> Result<FileEval> {
    if !a.model.exists() {
        bail!("{}: no such file", a.model.display());
    }
    if !a.baseline.exists() {
        bail!("{}: no such file or directory", a.baseline.display());
    }
    let text = EvalText::read(&a.text)?;
    let opts = PplOptions {
        ctx: a.ctx,
        chunks: a.chunks,
        record: RecordSpec::default(),
        cache_dir: if a.no_cache {
            None
        } else {
            a.cache_dir.clone().or_else(cache::default_dir)
        },
        ..PplOptions::default()
    };
    let act = if a.bf16_act {
        FloatAct::Bf16
    } else {
        FloatAct::F32
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()?;
    let bar = super::ppl::progress_bar();
    let e =
        pool.install(|| eval::evaluate_file(&a.model, Some(&a.baseline), &text, act, &opts, &bar))?;
    bar.finish_and_clear();
    Ok(e)
}

/// Runs `gq check`: prints the verdict (or JSON), writes the JUnit report, and ends with an
/// [`Exit`] of status 1 (a threshold failed) or 2 (bad input).
pub fn run(a: CheckArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let thresholds = a.thresholds();
    let e = match evaluate(&a) {
        Ok(e) => e,
        Err(err) => {
            let message = format!("{err:#}");
            if let Some(j) = &a.junit {
                let xml =
                    check::junit_error(&a.junit_info(t0.elapsed().as_secs_f64(), None), &message);
                if let Err(w) = crate::atomic_file::write_bytes_atomic(j, xml.as_bytes()) {
                    eprintln!("error: {w:#}");
                }
            }
            return Err(Exit::new(2, message).into());
        }
    };
    let Some(k) = e.report.kld.as_ref() else {
        return Err(Exit::new(2, "no comparison with the baseline".into()).into());
    };
    let outcomes = check::judge(k, &thresholds);
    let verdict = check::verdict(&outcomes);
    let secs = t0.elapsed().as_secs_f64();
    if let Some(j) = &a.junit {
        let xml = check::junit(&a.junit_info(secs, Some(&e)), &outcomes);
        crate::atomic_file::write_bytes_atomic(j, xml.as_bytes())
            .map_err(|w| Exit::new(2, format!("{w:#}")))?;
    }
    let pass = outcomes.iter().all(|o| o.pass);
    if a.json {
        print_json(&a, &e, &outcomes, &verdict, pass, secs)?;
        eprintln!("{verdict}");
    } else {
        println!("{verdict}");
    }
    if pass {
        Ok(())
    } else {
        Err(Exit::new(1, String::new()).into())
    }
}

fn print_json(
    a: &CheckArgs,
    e: &FileEval,
    outcomes: &[Outcome],
    verdict: &str,
    pass: bool,
    secs: f64,
) -> Result<()> {
    let r = &e.report;
    let k = r.kld.as_ref();
    let out = serde_json::json!({
        "pass": pass,
        "verdict": verdict,
        "thresholds": outcomes,
        "model": a.model.to_string_lossy(),
        "baseline": a.baseline.to_string_lossy(),
        "text": a.text.to_string_lossy(),
        "ctx": r.ctx,
        "chunks": r.n_chunks,
        "n_tokens": r.n_tokens,
        "ppl": r.ppl,
        "ppl_stderr": r.ppl_stderr,
        "ppl_base": k.map(|k| k.ppl_base),
        "ppl_increase_pct": k.map(|k| Metric::PplIncreasePct.value(k)),
        "kld_mean": k.map(|k| k.kld_mean),
        "kld_p99": k.map(|k| k.kld_p99),
        "top1_agreement": k.map(|k| k.top1_agreement),
        "bpw": e.bpw,
        "file_bytes": e.file_bytes,
        "cache": r.cache,
        "seconds": secs,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
