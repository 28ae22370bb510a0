//! `gq sweep`: quantizes a checkpoint to each of several types, evaluates every file against the
//! checkpoint itself on one text, and writes the table, the JSON and the plots.
//!
//! - Each type goes through the library pipeline ([`crate::pipeline::quantize`]) into the output
//!   directory, is evaluated with [`crate::eval::evaluate_file`], and is deleted unless kept.
//! - The baseline's distributions are computed once, by the first type evaluated, into the
//!   baseline cache ([`crate::eval::cache`]); every other type reads them from there.
//! - A finished type's result goes to `types/<TYPE>.json` (written through a temp file and
//!   renamed) before the next type starts; a later sweep with the same output directory and the
//!   same [`Settings`] reuses it instead of quantizing again.
//! - `results.json`, `results.md` ([`results`]) and the plots ([`plot`]) are written at the end,
//!   from every requested type's result.

pub mod plot;
pub mod results;

use crate::eval::cache::{model_identity, Fnv};
use crate::eval::{self, EvalText, PplOptions};
use crate::gemma4::FileType;
use crate::pipeline;
use crate::tokenizer::Tokenizer;
use anyhow::{anyhow, Context, Result};
use gq_kernels::FloatAct;
use indicatif::ProgressBar;
pub use results::{Settings, SweepResults, TypeResult};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What to sweep.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    /// The checkpoint directory (source of every file and the baseline).
    pub checkpoint: PathBuf,
    /// The types, in the order they are run.
    pub types: Vec<FileType>,
    /// The evaluation text.
    pub text: EvalText,
    /// Context, chunks, records, cache directory (the cache is what shares the baseline).
    pub ppl: PplOptions,
    /// Where results, plots and kept files go.
    pub out: PathBuf,
    /// Keep the quantized files (`<out>/<name>-<TYPE>.gguf`).
    pub keep_files: bool,
    /// Activations for BF16 weights.
    pub act: FloatAct,
    /// Quantization threads (0: all cores).
    pub threads: usize,
}

/// What happened to one type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Quantized and evaluated now.
    Done,
    /// Reused from an earlier sweep's `types/<TYPE>.json`.
    Resumed,
}

/// The outcome of a sweep.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// Everything written to `results.json`.
    pub results: SweepResults,
    /// Each requested type and what happened to it, in run order.
    pub status: Vec<(String, Status)>,
    /// Every file written (results, plots; per-type and kept files are not listed).
    pub written: Vec<PathBuf>,
}

/// The settings of a sweep (reads the checkpoint's tokenizer to count the chunks; fails early
/// when the text is too short for the context).
pub fn settings(o: &SweepOptions) -> Result<Settings> {
    let tok = Tokenizer::open(&o.checkpoint)?;
    let tokens = eval::text_tokens(&tok, &o.text.text);
    let ch = eval::Chunks::new(tokens.len(), o.ppl.ctx, o.ppl.chunks, None)
        .with_context(|| format!("{}", o.text.path.display()))?;
    Ok(Settings {
        checkpoint: model_identity(&o.checkpoint)?,
        text: o.text.path.to_string_lossy().into_owned(),
        text_bytes: o.text.text.len() as u64,
        text_fnv1a64: format!("{:016x}", Fnv::of(o.text.text.as_bytes())),
        ctx: ch.ctx,
        chunks: ch.n_chunks,
        n_tokens: ch.n_chunks * ch.scored(),
        kld_tail: o.ppl.record.tail,
        kld_max_tokens: o.ppl.record.max_tokens,
        drift_buckets: o.ppl.drift_buckets,
        float_act: format!("{:?}", o.act),
    })
}

fn type_file(out: &Path, ty: FileType) -> PathBuf {
    out.join("types").join(format!("{}.json", ty.name()))
}

/// An earlier result for `ty` made with the same settings, if there is one.
fn finished(out: &Path, ty: FileType, s: &Settings) -> Option<TypeResult> {
    let text = std::fs::read_to_string(type_file(out, ty)).ok()?;
    let f: results::TypeFile = serde_json::from_str(&text).ok()?;
    (f.schema == results::TYPE_SCHEMA && &f.settings == s && f.result.file_type == ty.name())
        .then_some(f.result)
}

/// Keeps a sweep-wide progress bar in step with the bar one evaluation reports to.
struct Ticker<'a> {
    bar: &'a ProgressBar,
    /// Tokens of the types already finished.
    done: u64,
    /// Expected tokens of one type (one pass over the chunks).
    per_type: u64,
}

impl Ticker<'_> {
    fn update(&self, sub: &ProgressBar, remaining: u64, label: &str, started: Instant) {
        let pos = sub.position();
        let len = sub.length().unwrap_or(0).max(self.per_type);
        self.bar
            .set_length(self.done + len + remaining * self.per_type);
        self.bar.set_position(self.done + pos);
        let eta = if pos > 0 {
            let s = started.elapsed().as_secs_f64() * (len - pos.min(len)) as f64 / pos as f64;
            format!("evaluating, {:.0} s left", s)
        } else {
            "quantizing".to_string()
        };
        self.bar.set_message(format!("{label}: {eta}"));
    }
}

/// Runs the sweep described by `o`, reporting to `bar` (tokens evaluated over the whole sweep,
/// the current type and its ETA in the message) and calling `on_type` after each type.
pub fn run(
    o: &SweepOptions,
    bar: &ProgressBar,
    on_type: &mut dyn FnMut(&TypeResult, Status),
) -> Result<Sweep> {
    std::fs::create_dir_all(o.out.join("types"))
        .with_context(|| format!("{}: cannot create the directory", o.out.display()))?;
    let settings = settings(o)?;
    let mut types = o.types.clone();
    let mut seen = std::collections::HashSet::new();
    types.retain(|t| seen.insert(*t));
    if types.is_empty() {
        anyhow::bail!("no types to sweep");
    }
    let name = std::fs::canonicalize(&o.checkpoint)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into());
    let per_type = (settings.chunks * (settings.ctx - 1)) as u64;
    let mut ticker = Ticker {
        bar,
        done: 0,
        per_type,
    };
    let previous: Vec<Option<TypeResult>> = types
        .iter()
        .map(|&t| finished(&o.out, t, &settings))
        .collect();
    let mut remaining = previous.iter().filter(|p| p.is_none()).count() as u64;
    bar.set_length(remaining * per_type);
    let mut out = Vec::new();
    let mut status = Vec::new();
    let n = types.len();
    for (i, (&ty, prev)) in types.iter().zip(previous).enumerate() {
        if let Some(r) = prev {
            on_type(&r, Status::Resumed);
            status.push((ty.name().to_string(), Status::Resumed));
            out.push(r);
            continue;
        }
        remaining -= 1;
        let label = format!("{} ({}/{n})", ty.name(), i + 1);
        let sub = ProgressBar::hidden();
        let started = Instant::now();
        let stop = AtomicBool::new(false);
        let result = std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    ticker.update(&sub, remaining, &label, started);
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
            let r = one_type(o, &name, ty, &sub);
            stop.store(true, Ordering::Relaxed);
            r
        });
        let r = result.with_context(|| format!("{}: {}", o.checkpoint.display(), ty.name()))?;
        let file = results::TypeFile {
            schema: results::TYPE_SCHEMA.into(),
            settings: settings.clone(),
            result: r.clone(),
        };
        crate::atomic_file::write_bytes_atomic(
            type_file(&o.out, ty),
            &serde_json::to_vec_pretty(&file).context("cannot encode the result")?,
        )?;
        ticker.done += sub.length().unwrap_or(0).max(sub.position());
        on_type(&r, Status::Done);
        status.push((ty.name().to_string(), Status::Done));
        out.push(r);
    }
    out.sort_by(|a, b| {
        a.file_bytes
            .cmp(&b.file_bytes)
            .then(a.file_type.cmp(&b.file_type))
    });
    let first = &out[0];
    let results = SweepResults {
        schema: results::SCHEMA.into(),
        gq_version: env!("CARGO_PKG_VERSION").into(),
        settings,
        baseline: results::BaselineInfo {
            path: o.checkpoint.to_string_lossy().into_owned(),
            ppl: first.ppl_base,
            ppl_stderr: first.ppl_base_stderr,
        },
        results: out,
    };
    let mut written = Vec::new();
    let p = o.out.join("results.json");
    let mut json = serde_json::to_vec_pretty(&results).context("cannot encode the results")?;
    json.push(b'\n');
    crate::atomic_file::write_bytes_atomic(&p, &json)?;
    written.push(p);
    let p = o.out.join("results.md");
    crate::atomic_file::write_bytes_atomic(&p, results::markdown(&results).as_bytes())?;
    written.push(p);
    written.extend(plot::write_plots(&o.out, &results)?);
    Ok(Sweep {
        results,
        status,
        written,
    })
}

/// Quantizes to `ty`, evaluates the file against the checkpoint, deletes it unless kept.
fn one_type(o: &SweepOptions, name: &str, ty: FileType, sub: &ProgressBar) -> Result<TypeResult> {
    let path = o.out.join(format!("{name}-{}.gguf", ty.name()));
    let t0 = Instant::now();
    let popts = pipeline::Options {
        threads: o.threads,
        ..Default::default()
    };
    pipeline::quantize(&o.checkpoint, &path, ty, &popts)?;
    let quantize_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let e = eval::evaluate_file(&path, Some(&o.checkpoint), &o.text, o.act, &o.ppl, sub);
    let e = match e {
        Ok(e) => e,
        Err(err) => {
            if !o.keep_files {
                let _ = std::fs::remove_file(&path);
            }
            return Err(err);
        }
    };
    let mut r = TypeResult::new(ty.name(), &e).ok_or_else(|| anyhow!("no comparison"))?;
    r.quantize_seconds = quantize_seconds;
    r.eval_seconds = t1.elapsed().as_secs_f64();
    if o.keep_files {
        r.file = Some(path.to_string_lossy().into_owned());
    } else {
        std::fs::remove_file(&path).with_context(|| format!("{}", path.display()))?;
    }
    Ok(r)
}
