//! `gq generate`: text from a model, greedy or sampled, streamed as it is decoded.

use super::logits::parse_ids;
use crate::eval::{self, generate::model_defaults, Stop};
use crate::gemma4::Model;
use crate::tokenizer::{ChatMessage, EncodeOptions, Tokenizer};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `gq generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The model: a GGUF file or a checkpoint directory.
    pub model: PathBuf,
    /// The prompt (BOS is put first when the tokenizer adds it).
    #[arg(short, long, conflicts_with = "ids")]
    pub prompt: Option<String>,
    /// The prompt as token ids, comma-separated (taken as given: BOS included if wanted).
    #[arg(long, value_name = "ID,ID,…")]
    pub ids: Option<String>,
    /// Tokens to generate at most (stops earlier at an end-of-generation token).
    #[arg(short = 'n', long, default_value_t = 128)]
    pub n_predict: usize,
    /// Temperature; 0 is greedy decoding (default: the model's generation settings, else 0).
    #[arg(long)]
    pub temp: Option<f32>,
    /// Sample only from the k most likely tokens (0: all; default: the model's setting).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Sample only from the most likely tokens up to this probability (default: the model's).
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Seed of the sampler's random generator.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Wrap the prompt as one user turn with the model's chat template (and the prompt for the
    /// model's turn).
    #[arg(long, conflicts_with = "ids")]
    pub chat: bool,
    /// Threads (default: all cores). Tokens are identical for any value.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print one JSON object at the end (prompt ids, generated ids, text, why it stopped)
    /// instead of streaming the text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `gq generate`.
pub fn run(a: GenerateArgs) -> Result<()> {
    let model = Model::open(&a.model)?;
    let tok = Tokenizer::open(&a.model)?;
    let prompt: Vec<u32> = match (&a.prompt, &a.ids) {
        (_, Some(ids)) => parse_ids(ids)?,
        (Some(p), None) => {
            let mut text = p.clone();
            let mut add_bos = tok.add_bos();
            if a.chat {
                text = tok.render_chat(&[ChatMessage::new("user", text)], true)?;
                let bos = tok.bos().and_then(|b| tok.token_text(b)).unwrap_or("");
                add_bos &= bos.is_empty() || !text.starts_with(bos);
            }
            tok.encode_with(
                &text,
                EncodeOptions {
                    add_bos,
                    parse_special: true,
                },
            )
        }
        (None, None) => bail!("give the prompt with --prompt TEXT (or --ids ID,ID,…)"),
    };
    if prompt.is_empty() {
        bail!("the prompt is empty");
    }
    let (mut cfg, from) = model_defaults(&model)?;
    let given = a.temp.is_some() || a.top_k.is_some() || a.top_p.is_some();
    if let Some(t) = a.temp {
        if !(t >= 0.0 && t.is_finite()) {
            bail!("--temp {t}: must be 0 or more");
        }
        cfg.temperature = t;
    }
    if let Some(k) = a.top_k {
        cfg.top_k = k;
    }
    if let Some(p) = a.top_p {
        if !(p > 0.0 && p <= 1.0) {
            bail!("--top-p {p}: must be in (0, 1]");
        }
        cfg.top_p = p;
    }
    cfg.seed = a.seed;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()
        .context("cannot start the thread pool")?;
    if cfg.temperature > 0.0 {
        eprintln!(
            "sampling: temperature {}, top-k {}, top-p {}, seed {} ({})",
            cfg.temperature,
            if cfg.top_k == 0 {
                "off".to_string()
            } else {
                cfg.top_k.to_string()
            },
            cfg.top_p,
            cfg.seed,
            if given {
                "command line over the model's settings: ".to_string() + &from
            } else {
                from
            }
        );
    } else {
        eprintln!("greedy decoding");
    }
    let mut sampler = eval::Sampler::new(cfg);
    let mut dec = tok.stream_decoder(false);
    let stdout = std::io::stdout();
    let t0 = std::time::Instant::now();
    let mut t_first = None;
    let is_eog = |t: u32| tok.is_eog(t);
    let (ids, stop) = pool
        .install(|| {
            eval::generate(&model, &prompt, a.n_predict, &mut sampler, &is_eog, |t| {
                if t_first.is_none() {
                    t_first = Some(t0.elapsed());
                }
                if !a.json {
                    let s = dec.push(t);
                    let mut o = stdout.lock();
                    // A closed stdout (`| head`) ends the generation.
                    return o.write_all(s.as_bytes()).and_then(|_| o.flush()).is_ok();
                }
                true
            })
        })
        .with_context(|| format!("{}", a.model.display()))?;
    let total = t0.elapsed();
    if a.json {
        let out = serde_json::json!({
            "prompt_ids": prompt,
            "ids": ids,
            "text": tok.decode_with(&ids, false),
            "stop": format!("{stop:?}"),
            "sampler": {
                "temperature": cfg.temperature, "top_k": cfg.top_k, "top_p": cfg.top_p, "seed": cfg.seed,
            },
        });
        println!("{out}");
    } else {
        let rest = dec.finish();
        let mut o = stdout.lock();
        let _ = o.write_all(rest.as_bytes());
        let _ = writeln!(o);
        let _ = o.flush();
    }
    let first = t_first.unwrap_or(total);
    let gen = ids.len().saturating_sub(1);
    let tg = if gen > 0 {
        format!(
            ", {:.1} tokens/s after the first",
            gen as f64 / (total - first).as_secs_f64().max(1e-9)
        )
    } else {
        String::new()
    };
    eprintln!(
        "{} prompt tokens, {} generated ({}), prompt + first token {:.2} s{tg}",
        prompt.len(),
        ids.len(),
        match stop {
            Stop::EndOfGeneration => "end of generation",
            Stop::Length => "length",
            Stop::Callback => "output closed",
        },
        first.as_secs_f64()
    );
    Ok(())
}
