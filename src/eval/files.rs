//! One model file against a baseline on a text file, from paths: what `gq check` and `gq sweep`
//! run (the same evaluation as `gq ppl --baseline`, with the baseline cache).

use super::ppl::{evaluate, text_tokens, Baseline, PplOptions, PplReport};
use crate::gemma4::Model;
use crate::tokenizer::Tokenizer;
use anyhow::{Context, Result};
use gq_kernels::FloatAct;
use indicatif::ProgressBar;
use std::path::{Path, PathBuf};

/// A text to evaluate on, read and checked once.
#[derive(Clone, Debug)]
pub struct EvalText {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its contents (UTF-8).
    pub text: String,
}

impl EvalText {
    /// Reads `path` (must be UTF-8).
    pub fn read(path: &Path) -> Result<EvalText> {
        let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))?;
        Ok(EvalText {
            path: path.to_path_buf(),
            text,
        })
    }
}

/// The result of evaluating one file.
#[derive(Clone, Debug)]
pub struct FileEval {
    /// The evaluation (with the KLD summary when a baseline was given).
    pub report: PplReport,
    /// Bits per weight of the tensor data.
    pub bpw: f64,
    /// Size of the file (a checkpoint: its tensor files).
    pub file_bytes: u64,
    /// Weights in the file.
    pub n_weights: u64,
}

/// Evaluates the model at `model` (GGUF or checkpoint) on `text`, against `baseline` when given,
/// with `act` for BF16 weights of both. Progress goes to `bar` in tokens.
pub fn evaluate_file(
    model: &Path,
    baseline: Option<&Path>,
    text: &EvalText,
    act: FloatAct,
    opts: &PplOptions,
    bar: &ProgressBar,
) -> Result<FileEval> {
    let mut m = Model::open(model)?;
    m.float_act = act;
    let tok = Tokenizer::open(model)?;
    let tokens = text_tokens(&tok, &text.text);
    let bos = tok.add_bos().then(|| tok.bos()).flatten();
    let open = || -> Result<Model> {
        let mut b = Model::open(baseline.expect("a baseline"))?;
        b.float_act = act;
        Ok(b)
    };
    let base_tokens = || -> Result<Vec<u32>> {
        let t = Tokenizer::open(baseline.expect("a baseline"))?;
        Ok(text_tokens(&t, &text.text))
    };
    let base = baseline.map(|p| Baseline {
        path: p,
        float_act: act,
        open: &open,
        tokens: &base_tokens,
    });
    let report = evaluate(
        &m,
        &tokens,
        text.text.as_bytes(),
        bos,
        base.as_ref(),
        opts,
        bar,
    )
    .with_context(|| format!("{}", model.display()))?;
    let (data_bytes, n_weights) = m.file.data_bytes_and_weights();
    Ok(FileEval {
        report,
        bpw: data_bytes as f64 * 8.0 / n_weights.max(1) as f64,
        file_bytes: m.file.file_bytes(),
        n_weights,
    })
}
