//! `gq logits`: the raw logits (after soft-capping) of a model at chosen positions of an input.

use crate::gemma4::{logits_at, Model};
use crate::tokenizer::Tokenizer;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `gq logits`.
#[derive(Args, Debug)]
pub struct LogitsArgs {
    /// A GGUF file or a checkpoint directory.
    pub model: PathBuf,
    /// The input as token ids, comma-separated (BOS included if wanted), e.g. `2,651,1234`.
    #[arg(long, value_name = "ID,ID,…")]
    pub ids: Option<String>,
    /// The input as a text file, taken as is (tokenized with the model's tokenizer, BOS first
    /// when it adds one, special tokens written in the text parsed).
    #[arg(long, value_name = "FILE", conflicts_with = "ids")]
    pub text: Option<PathBuf>,
    /// Which positions: `last`, `all`, or comma-separated indices (0 is the first token).
    #[arg(long, default_value = "last")]
    pub positions: String,
    /// Print `{"positions": […], "logits": [[…], …]}`.
    #[arg(long, conflicts_with = "out")]
    pub json: bool,
    /// Write the logits to a `.npy` file of shape [positions, vocab] (f32).
    #[arg(long, value_name = "FILE.npy")]
    pub out: Option<PathBuf>,
    /// Threads (default: all cores). The logits are bit-identical for any value.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Tokens per forward batch.
    #[arg(long, default_value_t = 512)]
    pub ubatch: usize,
    /// Multiply BF16 weights with activations rounded to BF16, as llama.cpp's CPU backend does,
    /// instead of exact f32 activations.
    #[arg(long)]
    pub bf16_act: bool,
}

/// Parses `2,651,1234`.
pub fn parse_ids(s: &str) -> Result<Vec<u32>> {
    let ids: Vec<u32> = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .map_err(|_| anyhow!("--ids: {t:?} is not a token id"))
        })
        .collect::<Result<_>>()?;
    if ids.is_empty() {
        bail!("--ids: no token ids given");
    }
    Ok(ids)
}

/// Parses `last`, `all` or `0,1,100` for an input of `n` tokens.
pub fn parse_positions(s: &str, n: usize) -> Result<Vec<usize>> {
    match s.trim() {
        "last" => Ok(vec![n - 1]),
        "all" => Ok((0..n).collect()),
        list => {
            let p: Vec<usize> = list
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| {
                    t.parse::<usize>()
                        .map_err(|_| anyhow!("--positions: {t:?} is not a position"))
                })
                .collect::<Result<_>>()?;
            if p.is_empty() {
                bail!("--positions: none given");
            }
            if let Some(&bad) = p.iter().find(|&&x| x >= n) {
                bail!("--positions: {bad} is past the {n} input tokens");
            }
            Ok(p)
        }
    }
}

/// Runs `gq logits`.
pub fn run(a: LogitsArgs) -> Result<()> {
    let ids = match (&a.ids, &a.text) {
        (Some(s), _) => parse_ids(s)?,
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("{}: cannot read as UTF-8 text", f.display()))?;
            let tok = Tokenizer::open(&a.model)?;
            let ids = tok.encode(&text, tok.add_bos());
            if ids.is_empty() {
                bail!("--text {}: no tokens", f.display());
            }
            ids
        }
        (None, None) => bail!("give the input with --ids ID,ID,… or --text FILE"),
    };
    let positions = parse_positions(&a.positions, ids.len())?;
    let mut model = Model::open(&a.model)?;
    if a.bf16_act {
        model.float_act = gq_kernels::FloatAct::Bf16;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()
        .context("cannot start the thread pool")?;
    let rows = pool
        .install(|| logits_at(&model, &ids, &positions, a.ubatch))
        .with_context(|| format!("{}", a.model.display()))?;
    let vocab = model.n_vocab();
    if a.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            positions: &'a [usize],
            logits: &'a [Vec<f32>],
        }
        let mut w = std::io::BufWriter::new(std::io::stdout().lock());
        serde_json::to_writer(
            &mut w,
            &Out {
                positions: &positions,
                logits: &rows,
            },
        )?;
        writeln!(w)?;
        w.flush()?;
    } else if let Some(out) = &a.out {
        let flat: Vec<f32> = rows.concat();
        crate::npy::write_f32(out, &[rows.len(), vocab], &flat)?;
        eprintln!(
            "wrote {} ({} positions × {vocab} f32)",
            out.display(),
            rows.len()
        );
    } else {
        for (p, row) in positions.iter().zip(&rows) {
            let mut idx: Vec<usize> = (0..row.len()).collect();
            idx.sort_by(|&x, &y| row[y].total_cmp(&row[x]).then(x.cmp(&y)));
            let top: Vec<String> = idx
                .iter()
                .take(5)
                .map(|&i| format!("{i} ({:.4})", row[i]))
                .collect();
            println!("position {p} (token {}): top {}", ids[*p], top.join(", "));
        }
    }
    Ok(())
}
