//! `gq quantize`: arguments and the closing summary.

use super::inspect;
use crate::gemma4::mixture::QuantOptions;
use crate::gemma4::FileType;
use crate::gguf::GgmlType;
use crate::pipeline::{self, Options};
use anyhow::{anyhow, Context, Result};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `gq quantize`.
#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// Checkpoint directory: config.json, model.safetensors or shards + index, tokenizer files.
    pub checkpoint: PathBuf,
    /// Output GGUF file (written to a temp file beside it and renamed when complete).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Output type, as llama.cpp names it (case-insensitive). F32, F16, BF16, Q8_0 are what
    /// convert_hf_to_gguf.py --outtype writes; Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q3_K_L
    /// Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K are what llama-quantize makes from the converter's file.
    /// gq's own TurboQuant types (docs/turboquant.md; such files load only in gq, not in
    /// llama.cpp or Ollama): TQT4_5 TQT3_375 TQT2_5 (rotation + trellis-coded 2-D Lloyd–Max
    /// codes, the recommended ones), TQJ4_5 TQJ3_375 TQJ2_5 (+ 1-bit QJL residual signs:
    /// inner-product unbiased), TQP4_5 TQP3_4375 TQP2_5 (PolarQuant, experimental) — every
    /// quantizable matrix of that type — and the mixtures TQT4_5_M TQT3_375_M TQT2_5_M
    /// (sensitive tensors at more bits, like llama.cpp's _M types). The number is the exact
    /// bits per weight of the type.
    #[arg(
        short = 't',
        long = "type",
        value_name = "TYPE",
        default_value = "BF16"
    )]
    pub ty: String,
    /// Worker threads (default: all cores). The output is byte-identical for any value.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// No progress bar and no summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Write NaN/Inf weights into quantized tensors instead of refusing.
    #[arg(long)]
    pub allow_nonfinite: bool,
    /// Print the plan (every output tensor's name, type, shape, size) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Override the type of tensors whose name matches a regex, e.g. `attn_v=q8_0` (repeatable;
    /// the first match wins), as llama-quantize's --tensor-type.
    #[arg(long = "tensor-type", value_name = "PATTERN=TYPE")]
    pub tensor_type: Vec<String>,
    /// Type of output.weight (llama-quantize's --output-tensor-type).
    #[arg(long, value_name = "TYPE")]
    pub output_tensor_type: Option<String>,
    /// Type of token_embd.weight / per_layer_token_embd.weight (--token-embedding-type).
    #[arg(long, value_name = "TYPE")]
    pub token_embedding_type: Option<String>,
    /// No mixture rules: every quantizable tensor gets the file type's base type (--pure).
    #[arg(long)]
    pub pure: bool,
    /// Importance matrix from llama-imatrix (GGUF or legacy .dat), used as llama-quantize does.
    #[arg(long, value_name = "FILE")]
    pub imatrix: Option<PathBuf>,
    /// Rotation seed of the TurboQuant types (written as gq.tq.seed; default 0x54515F47515F0001).
    #[arg(long, value_name = "U64", value_parser = parse_u64)]
    pub tq_seed: Option<u64>,
    /// Write per-tensor statistics (type, the rule that chose it, bits per weight, RMSE,
    /// relative MSE, cosine similarity, max error against the checkpoint) to FILE: CSV for a
    /// .csv name, JSON otherwise.
    #[arg(long, value_name = "FILE.json|FILE.csv")]
    pub report: Option<PathBuf>,
    /// Also write an Ollama Modelfile beside the output (OUTPUT with the extension .Modelfile):
    /// FROM the GGUF, TEMPLATE translated from the chat template, PARAMETER stop tokens and
    /// the generation config's sampling defaults (docs/ollama.md).
    #[arg(long)]
    pub modelfile: bool,
}

fn parse_u64(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    }
    .map_err(|e| format!("{s:?}: {e}"))
}

fn ggml_type(s: &str) -> Result<GgmlType> {
    GgmlType::parse(s).ok_or_else(|| anyhow!("unknown tensor type {s:?}"))
}

impl QuantizeArgs {
    fn quant_options(&self) -> Result<QuantOptions> {
        let imatrix = match &self.imatrix {
            Some(p) => Some(std::sync::Arc::new(crate::imatrix::Imatrix::load(p)?)),
            None => None,
        };
        let mut tensor_types = Vec::new();
        for spec in &self.tensor_type {
            let (pat, ty) = spec
                .split_once('=')
                .filter(|(p, t)| !p.is_empty() && !t.is_empty())
                .ok_or_else(|| anyhow!("--tensor-type {spec:?}: expected PATTERN=TYPE"))?;
            // llama-quantize lower-cases the pattern.
            let re = regex::Regex::new(&pat.to_lowercase())
                .with_context(|| format!("--tensor-type {spec:?}: bad pattern"))?;
            tensor_types.push((re, ggml_type(ty)?));
        }
        Ok(QuantOptions {
            tensor_types,
            output_type: self
                .output_tensor_type
                .as_deref()
                .map(ggml_type)
                .transpose()?,
            token_embedding_type: self
                .token_embedding_type
                .as_deref()
                .map(ggml_type)
                .transpose()?,
            pure: self.pure,
            has_imatrix: imatrix.is_some(),
            imatrix,
            tq_seed: self.tq_seed,
        })
    }
}

/// The Modelfile for `a.output`, from the checkpoint's tokenizer and generation config.
fn modelfile_text(a: &QuantizeArgs) -> Result<String> {
    let tok = crate::tokenizer::Tokenizer::from_checkpoint(&a.checkpoint)?;
    let gen_path = a.checkpoint.join("generation_config.json");
    let gen = match std::fs::read_to_string(&gen_path) {
        Ok(text) => Some(
            serde_json::from_str::<serde_json::Value>(&text)
                .with_context(|| format!("{}: not valid JSON", gen_path.display()))?,
        ),
        Err(_) => None,
    };
    let name = a
        .output
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a file name", a.output.display()))?
        .to_string_lossy();
    crate::modelfile::modelfile(&name, &tok, gen.as_ref())
        .with_context(|| format!("{}: cannot write a Modelfile", a.checkpoint.display()))
}

/// Runs `gq quantize`.
pub fn run(a: QuantizeArgs) -> Result<()> {
    let ft = FileType::parse(&a.ty).ok_or_else(|| {
        let names: Vec<&str> = FileType::ALL.iter().map(|t| t.name()).collect();
        anyhow!("unknown --type {:?}: gq writes {}", a.ty, names.join(", "))
    })?;
    let quant = a.quant_options()?;
    if a.dry_run {
        let (_, plan) = pipeline::open_and_plan(&a.checkpoint, ft, &quant)?;
        inspect::print_plan(&plan);
        return Ok(());
    }
    let opts = Options {
        threads: a.threads,
        progress: !a.quiet,
        allow_nonfinite: a.allow_nonfinite,
        quant,
        report: a.report.is_some(),
    };
    // The Modelfile is made first, so that a template that cannot be translated fails before
    // the conversion runs.
    let modelfile = if a.modelfile {
        Some(modelfile_text(&a)?)
    } else {
        None
    };
    let s = pipeline::quantize(&a.checkpoint, &a.output, ft, &opts)?;
    if !s.gq_only_types.is_empty() {
        eprintln!(
            "note: {} holds gq's own TurboQuant tensor types ({}): llama.cpp and Ollama cannot \
             load it; run it with gq (gq logits / gq ppl / gq generate)",
            s.path.display(),
            s.gq_only_types.join(", ")
        );
    }
    if let Some(text) = modelfile {
        let path = a.output.with_extension("Modelfile");
        crate::atomic_file::write_bytes_atomic(&path, text.as_bytes())?;
        if !a.quiet {
            println!(
                "wrote {} (ollama create NAME -f {})",
                path.display(),
                path.display()
            );
        }
    }
    if let Some(path) = &a.report {
        crate::report::write(path, &s.report)?;
    }
    for w in &s.warnings {
        eprintln!("warning: {w}");
    }
    if !a.quiet {
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
