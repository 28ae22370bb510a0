//! What `gq sweep` records: one result per type (written to `types/<TYPE>.json` as soon as the
//! type is done, which is what makes a sweep resumable), and the whole sweep as `results.json`
//! and `results.md`. docs/sweep.md documents the schema.

use crate::check::num;
use crate::eval::FileEval;
use serde::{Deserialize, Serialize};

/// Schema name and version of `results.json`.
pub const SCHEMA: &str = "gq-sweep/1";
/// Schema name and version of a per-type file `types/<TYPE>.json`.
pub const TYPE_SCHEMA: &str = "gq-sweep-type/1";

/// What a result depends on besides its type: a finished type is reused only when these are
/// equal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The checkpoint (the baseline): canonical path and its files' sizes and modification
    /// times.
    pub checkpoint: serde_json::Value,
    /// The text file as given.
    pub text: String,
    /// Its length in bytes.
    pub text_bytes: u64,
    /// FNV-1a 64 of its bytes (hex).
    pub text_fnv1a64: String,
    /// Context length (tokens per chunk).
    pub ctx: usize,
    /// Chunks evaluated.
    pub chunks: usize,
    /// Scored tokens (`chunks · (ctx − 1 − ctx/2)`).
    pub n_tokens: usize,
    /// Baseline records' unlisted-mass tolerance.
    pub kld_tail: f64,
    /// Baseline records' cap on listed tokens.
    pub kld_max_tokens: usize,
    /// Buckets of the drift along the context.
    pub drift_buckets: usize,
    /// Activations for BF16 weights ("F32" or "Bf16").
    pub float_act: String,
}

/// The drift of one type in one range of positions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftPoint {
    /// First position of the range (0 is the chunk's BOS).
    pub first_pos: usize,
    /// Last position.
    pub last_pos: usize,
    /// Scored positions in the range, over all chunks.
    pub n: usize,
    /// Perplexity of these positions.
    pub ppl: f64,
    /// Mean KLD.
    pub kld_mean: f64,
    /// 99th percentile of the KLD.
    pub kld_p99: f64,
    /// Top-1 agreement.
    pub top1_agreement: f64,
}

/// The result of one type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TypeResult {
    /// The file type, as llama.cpp names it (`Q4_K_M`).
    pub file_type: String,
    /// Bits per weight of the tensor data.
    pub bpw: f64,
    /// Size of the GGUF file in bytes.
    pub file_bytes: u64,
    /// Weights in the file.
    pub n_weights: u64,
    /// Perplexity.
    pub ppl: f64,
    /// Its uncertainty (llama-perplexity's).
    pub ppl_stderr: f64,
    /// Perplexity of the baseline on the same positions.
    pub ppl_base: f64,
    /// Its uncertainty.
    pub ppl_base_stderr: f64,
    /// `100 · (PPL / PPL_base − 1)`.
    pub ppl_increase_pct: f64,
    /// Mean KL(P_base ‖ P), nats.
    pub kld_mean: f64,
    /// Its standard error.
    pub kld_mean_stderr: f64,
    /// Median KLD.
    pub kld_median: f64,
    /// 99th percentile of the KLD.
    pub kld_p99: f64,
    /// Largest KLD.
    pub kld_max: f64,
    /// Fraction of positions with the same most likely token as the baseline.
    pub top1_agreement: f64,
    /// Its standard error.
    pub top1_agreement_stderr: f64,
    /// RMS of `p(next) − p_base(next)`.
    pub rms_dp: f64,
    /// Drift along the context.
    pub drift: Vec<DriftPoint>,
    /// Seconds spent quantizing.
    pub quantize_seconds: f64,
    /// Seconds spent evaluating.
    pub eval_seconds: f64,
    /// The GGUF file, when kept (`--keep-files`).
    pub file: Option<String>,
}

impl TypeResult {
    /// The result of an evaluation against the baseline (`None` when it has no comparison).
    pub fn new(file_type: &str, e: &FileEval) -> Option<TypeResult> {
        let k = e.report.kld.as_ref()?;
        let nan = f64::NAN;
        Some(TypeResult {
            file_type: file_type.to_string(),
            bpw: e.bpw,
            file_bytes: e.file_bytes,
            n_weights: e.n_weights,
            ppl: e.report.ppl,
            ppl_stderr: e.report.ppl_stderr,
            ppl_base: k.ppl_base,
            ppl_base_stderr: k.ppl_base_stderr,
            ppl_increase_pct: 100.0 * k.ln_ppl_ratio.exp_m1(),
            kld_mean: k.kld_mean,
            kld_mean_stderr: k.kld_mean_stderr,
            kld_median: k.kld_median,
            kld_p99: k.kld_p99,
            kld_max: k.kld_max,
            top1_agreement: k.top1_agreement,
            top1_agreement_stderr: k.top1_agreement_stderr,
            rms_dp: k.rms_dp,
            drift: e
                .report
                .drift
                .iter()
                .map(|b| DriftPoint {
                    first_pos: b.first_pos,
                    last_pos: b.last_pos,
                    n: b.n,
                    ppl: b.ppl,
                    kld_mean: b.kld_mean.unwrap_or(nan),
                    kld_p99: b.kld_p99.unwrap_or(nan),
                    top1_agreement: b.top1_agreement.unwrap_or(nan),
                })
                .collect(),
            quantize_seconds: 0.0,
            eval_seconds: 0.0,
            file: None,
        })
    }
}

/// A per-type file: the settings it was made with and the result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TypeFile {
    /// [`TYPE_SCHEMA`].
    pub schema: String,
    /// What the result depends on.
    pub settings: Settings,
    /// The result.
    pub result: TypeResult,
}

/// The baseline's numbers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BaselineInfo {
    /// The checkpoint directory as given.
    pub path: String,
    /// Its perplexity on the scored positions.
    pub ppl: f64,
    /// Its uncertainty.
    pub ppl_stderr: f64,
}

/// `results.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepResults {
    /// [`SCHEMA`].
    pub schema: String,
    /// The gq version that wrote it.
    pub gq_version: String,
    /// What every result depends on.
    pub settings: Settings,
    /// The baseline.
    pub baseline: BaselineInfo,
    /// One result per type, smallest file first.
    pub results: Vec<TypeResult>,
}

/// `results.md`: the settings and one table row per type, smallest file first.
pub fn markdown(r: &SweepResults) -> String {
    let s = &r.settings;
    let mut out = String::new();
    out.push_str("# gq sweep\n\n");
    out.push_str(&format!(
        "Baseline `{}` (PPL {} ± {}), text `{}` ({} bytes), {} chunks of {} tokens, {} scored \
         tokens. KLD in nats against the baseline; ΔPPL relative to the baseline's PPL on the \
         same tokens; top-1: share of positions with the baseline's most likely token.\n\n",
        r.baseline.path,
        num(r.baseline.ppl),
        num(r.baseline.ppl_stderr),
        s.text,
        s.text_bytes,
        s.chunks,
        s.ctx,
        s.n_tokens
    ));
    out.push_str(
        "| type | bpw | file bytes | PPL | ΔPPL % | KLD mean | KLD p99 | top-1 % |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for t in &r.results {
        out.push_str(&format!(
            "| {} | {:.3} | {} | {:.4} ± {:.4} | {:+.3} | {:.3e} ± {:.1e} | {:.3e} | {:.2} ± {:.2} |\n",
            t.file_type,
            t.bpw,
            t.file_bytes,
            t.ppl,
            t.ppl_stderr,
            t.ppl_increase_pct,
            t.kld_mean,
            t.kld_mean_stderr,
            t.kld_p99,
            100.0 * t.top1_agreement,
            100.0 * t.top1_agreement_stderr
        ));
    }
    out
}
