//! Perplexity and the comparison with a baseline, in llama-perplexity's convention:
//!
//! - the text is tokenized whole, with BOS first when the tokenizer adds one and special tokens
//!   written in the text taken as plain text (`common_tokenize(…, add_special = true,
//!   parse_special = false)`), after dropping one final newline (what `llama-perplexity -f`
//!   does when it reads the file);
//! - it is cut into `n_tokens / ctx` non-overlapping chunks of `ctx` tokens (at least two are
//!   needed; `--chunks` takes the first N), the rest is not evaluated;
//! - each chunk is evaluated from an empty cache with its first token replaced by BOS;
//! - only the second half is scored: the logits at positions `ctx/2 ..= ctx−2` predict the tokens
//!   at `ctx/2+1 ..= ctx−1` (`ctx − 1 − ctx/2` tokens per chunk);
//! - PPL = exp(mean NLL), its uncertainty `PPL · sqrt((mean(NLL²) − mean²)/(n−1))`.
//!
//! Against a baseline, the statistics of `llama-perplexity --kl-divergence` (see [`stats`]), with
//! the baseline kept in a compact cache ([`cache`]) and the drift along the context in buckets.
//!
//! [`stats`]: super::stats
//! [`cache`]: super::cache

use super::cache::{CacheKey, CacheReader, CacheWriter, Miss};
use super::stats::{self, BaseRecord, DriftBucket, KldSummary, PosStat, RecordSpec};
use crate::gemma4::{Model, Session};
use crate::tokenizer::{EncodeOptions, Tokenizer};
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// The tokens llama-perplexity evaluates for `text` (one final newline dropped, BOS as the
/// tokenizer adds it, special tokens in the text not parsed).
pub fn text_tokens(tok: &Tokenizer, text: &str) -> Vec<u32> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    tok.encode_with(
        text,
        EncodeOptions {
            add_bos: tok.add_bos(),
            parse_special: false,
        },
    )
}

/// How the tokens are cut into chunks.
#[derive(Clone, Copy, Debug)]
pub struct Chunks {
    /// Context length (tokens per chunk).
    pub ctx: usize,
    /// Chunks evaluated.
    pub n_chunks: usize,
    /// First scored position (`ctx / 2`).
    pub first: usize,
    /// The token that replaces each chunk's first token, if any.
    pub bos: Option<u32>,
}

impl Chunks {
    /// llama-perplexity's chunks of `n_tokens` tokens: at least `2 · ctx` tokens, `n_tokens / ctx`
    /// chunks, or `chunks` of them.
    pub fn new(
        n_tokens: usize,
        ctx: usize,
        chunks: Option<usize>,
        bos: Option<u32>,
    ) -> Result<Chunks> {
        if ctx < 4 {
            bail!("--ctx {ctx}: the context must be at least 4 tokens");
        }
        if n_tokens < 2 * ctx {
            bail!(
                "the text tokenizes to {n_tokens} tokens; a context of {ctx} needs at least {} \
                 (two chunks, as llama-perplexity requires)",
                2 * ctx
            );
        }
        let max = n_tokens / ctx;
        let n_chunks = match chunks {
            Some(0) => bail!("--chunks 0: nothing to evaluate"),
            Some(c) => c.min(max),
            None => max,
        };
        Ok(Chunks {
            ctx,
            n_chunks,
            first: ctx / 2,
            bos,
        })
    }

    /// Last scored position (`ctx − 2`).
    pub fn last(&self) -> usize {
        self.ctx - 2
    }

    /// Scored positions per chunk.
    pub fn scored(&self) -> usize {
        self.ctx - 1 - self.first
    }

    /// The input of chunk `c`: its tokens with BOS first.
    pub fn input(&self, tokens: &[u32], c: usize) -> Vec<u32> {
        let mut t = tokens[c * self.ctx..(c + 1) * self.ctx].to_vec();
        if let Some(b) = self.bos {
            t[0] = b;
        }
        t
    }

    /// The token that follows scored position `pos` of chunk `c`.
    pub fn next(&self, tokens: &[u32], c: usize, pos: usize) -> u32 {
        tokens[c * self.ctx + pos + 1]
    }
}

/// Runs `model` over one chunk's input in batches of `ubatch` tokens (the last token is not
/// needed: nothing is scored after it) and hands the logits of the scored positions to
/// `on_rows(first position, rows)`, batch by batch. `tick(n)` is told of every `n` tokens done.
pub fn chunk_logits(
    session: &mut Session<'_>,
    input: &[u32],
    first: usize,
    ubatch: usize,
    tick: &dyn Fn(u64),
    mut on_rows: impl FnMut(usize, &[f32]) -> Result<()>,
) -> Result<()> {
    session.clear();
    let end = input.len() - 1;
    let mut p0 = 0;
    while p0 < end {
        if crate::pipeline::INTERRUPTED.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        let p1 = (p0 + ubatch.max(1)).min(end);
        let want: Vec<usize> = (p0.max(first)..p1).map(|p| p - p0).collect();
        let rows = session.forward(&input[p0..p1], &want)?;
        if !want.is_empty() {
            on_rows(p0 + want[0], &rows)?;
        }
        tick((p1 - p0) as u64);
        p0 = p1;
    }
    Ok(())
}

/// Options of an evaluation.
#[derive(Clone, Debug)]
pub struct PplOptions {
    /// Context length.
    pub ctx: usize,
    /// At most this many chunks.
    pub chunks: Option<usize>,
    /// Tokens per forward batch (bounds the logits buffer to `ubatch · vocab` floats).
    pub ubatch: usize,
    /// Buckets of the drift table.
    pub drift_buckets: usize,
    /// How much of the baseline's distribution each cached record lists.
    pub record: RecordSpec,
    /// Where baseline records are cached (`None`: not cached).
    pub cache_dir: Option<PathBuf>,
    /// Also compute the KLD over the whole vocabulary from the baseline's full logits (the
    /// baseline is run, the cache neither read nor written).
    pub kld_exact: bool,
}

impl Default for PplOptions {
    fn default() -> Self {
        PplOptions {
            ctx: 512,
            chunks: None,
            ubatch: 512,
            drift_buckets: 8,
            record: RecordSpec::default(),
            cache_dir: None,
            kld_exact: false,
        }
    }
}

/// The baseline of a comparison.
pub struct Baseline<'a> {
    /// Its path (identity of the cache key).
    pub path: &'a Path,
    /// What its BF16 weights are multiplied with (part of the cache key).
    pub float_act: gq_kernels::FloatAct,
    /// Opens the model when its logits are needed (not on a cache hit).
    pub open: &'a (dyn Fn() -> Result<Model> + Sync),
    /// Its tokenizer's tokens for the same text (must equal the evaluated model's).
    pub tokens: &'a (dyn Fn() -> Result<Vec<u32>> + Sync),
}

/// What happened with the baseline cache.
#[derive(Clone, Debug, Serialize)]
pub struct CacheInfo {
    /// The cache file.
    pub path: Option<PathBuf>,
    /// Whether it was read (true) or the baseline was run (false).
    pub hit: bool,
    /// Why an existing file was not used.
    pub replaced: Option<String>,
    /// The records' tolerance and cap.
    pub record_tail: f64,
    /// The cap on listed tokens.
    pub record_max_tokens: usize,
    /// Size of the cache file (0 when none was read or written).
    pub file_bytes: u64,
    /// Mean number of tokens listed per position.
    pub listed_mean: f64,
    /// Mean baseline probability mass outside the listed tokens.
    pub tail_mass_mean: f64,
    /// Largest such mass.
    pub tail_mass_max: f64,
}

/// The result of `gq ppl`.
#[derive(Clone, Debug, Serialize)]
pub struct PplReport {
    /// Tokens of the whole text.
    pub n_text_tokens: usize,
    /// Context length.
    pub ctx: usize,
    /// Chunks evaluated.
    pub n_chunks: usize,
    /// Scored tokens.
    pub n_tokens: usize,
    /// Perplexity.
    pub ppl: f64,
    /// Its uncertainty (llama-perplexity's).
    pub ppl_stderr: f64,
    /// The comparison with the baseline.
    pub kld: Option<KldSummary>,
    /// Drift along the context.
    pub drift: Vec<DriftBucket>,
    /// The baseline cache.
    pub cache: Option<CacheInfo>,
    /// Every scored position (not printed).
    #[serde(skip)]
    pub positions: Vec<PosStat>,
}

/// Evaluates `model` on `tokens` (from [`text_tokens`]; `text` is the text they came from, for
/// the cache key), against `baseline` when given. Progress goes to `bar` in tokens.
pub fn evaluate(
    model: &Model,
    tokens: &[u32],
    text: &[u8],
    bos: Option<u32>,
    baseline: Option<&Baseline<'_>>,
    opts: &PplOptions,
    bar: &ProgressBar,
) -> Result<PplReport> {
    let ch = Chunks::new(tokens.len(), opts.ctx, opts.chunks, bos)?;
    let v = model.n_vocab();
    let spec = opts.record;
    let used = &tokens[..ch.n_chunks * ch.ctx];
    let tick = |n: u64| bar.inc(n);

    // The baseline: from the cache, or run (and cached).
    let mut reader = None;
    let mut writer = None;
    let mut base_model = None;
    let mut cache = None;
    if let Some(b) = baseline {
        let key = CacheKey::new(b.path, text, ch.ctx, ch.n_chunks, ch.scored(), spec, v)?
            .with("baseline_float_act", format!("{:?}", b.float_act));
        let mut replaced = None;
        if let (Some(dir), false) = (&opts.cache_dir, opts.kld_exact) {
            match CacheReader::open(dir, &key, used) {
                Ok(r) => reader = Some(r),
                Err(Miss::Absent) => {}
                Err(Miss::Unusable(why)) => replaced = Some(why),
            }
        }
        if reader.is_none() {
            let bt = (b.tokens)()?;
            if bt != tokens {
                bail!(
                    "{}: the baseline tokenizes the text differently from the evaluated model \
                     (KLD needs the same tokens)",
                    b.path.display()
                );
            }
            let m = (b.open)()?;
            if m.n_vocab() != v {
                bail!(
                    "{}: the baseline has {} logits per position, the evaluated model {v}",
                    b.path.display(),
                    m.n_vocab()
                );
            }
            base_model = Some(m);
            if let (Some(dir), false) = (&opts.cache_dir, opts.kld_exact) {
                writer = Some(CacheWriter::create(dir, &key, used)?);
            }
        }
        cache = Some(CacheInfo {
            path: reader.as_ref().map(|r| r.path.clone()).or_else(|| {
                opts.cache_dir
                    .as_ref()
                    .filter(|_| !opts.kld_exact)
                    .map(|d| d.join(key.file_name()))
            }),
            hit: reader.is_some(),
            replaced,
            record_tail: spec.tail,
            record_max_tokens: spec.max_tokens,
            file_bytes: reader.as_ref().map_or(0, |r| r.file_bytes()),
            listed_mean: 0.0,
            tail_mass_mean: 0.0,
            tail_mass_max: 0.0,
        });
    }
    let passes = 1 + u64::from(base_model.is_some());
    bar.set_length(passes * (ch.n_chunks * (ch.ctx - 1)) as u64);

    let mut stats: Vec<PosStat> = Vec::with_capacity(ch.n_chunks * ch.scored());
    let (mut tail_sum, mut tail_max, mut listed) = (0.0f64, 0.0f64, 0usize);
    let mut session = Session::new(model);
    let mut base_session = base_model.as_ref().map(Session::new);
    for c in 0..ch.n_chunks {
        let input = ch.input(tokens, c);
        let mut records: Vec<BaseRecord> = Vec::new();
        let mut base_rows: Vec<f32> = Vec::new();
        if let Some(bs) = base_session.as_mut() {
            chunk_logits(bs, &input, ch.first, opts.ubatch, &tick, |p0, rows| {
                let recs: Vec<BaseRecord> = rows
                    .par_chunks(v)
                    .enumerate()
                    .map(|(i, row)| BaseRecord::from_logits(row, ch.next(tokens, c, p0 + i), spec))
                    .collect();
                if let Some(w) = writer.as_mut() {
                    for r in &recs {
                        w.push(r)?;
                    }
                }
                records.extend(recs);
                if opts.kld_exact {
                    base_rows.extend_from_slice(rows);
                }
                Ok(())
            })
            .with_context(|| format!("{}", baseline.unwrap().path.display()))?;
        } else if let Some(r) = reader.as_mut() {
            records = r.chunk_records(c)?;
        }
        for r in &records {
            listed += r.ids.len();
            tail_sum += r.tail;
            tail_max = tail_max.max(r.tail);
        }
        chunk_logits(
            &mut session,
            &input,
            ch.first,
            opts.ubatch,
            &tick,
            |p0, rows| {
                let j0 = p0 - ch.first;
                let got: Vec<PosStat> = rows
                    .par_chunks(v)
                    .enumerate()
                    .map(|(i, z)| {
                        let pos = p0 + i;
                        let (mut s, l) = stats::score(pos, z, ch.next(tokens, c, pos));
                        if let Some(b) = records.get(j0 + i) {
                            stats::compare(&mut s, z, &l, b);
                            if opts.kld_exact {
                                let j = j0 + i;
                                s.kld_exact =
                                    Some(stats::kld_exact(&base_rows[j * v..(j + 1) * v], z));
                            }
                        }
                        s
                    })
                    .collect();
                stats.extend(got);
                Ok(())
            },
        )?;
        let (ppl, _) = stats::perplexity(&stats);
        bar.set_message(format!("chunk {}/{} PPL {ppl:.4}", c + 1, ch.n_chunks));
    }
    let written = match writer {
        Some(w) => Some(w.finish()?.1),
        None => None,
    };
    let compared = baseline.is_some();
    let (ppl, ppl_stderr) = stats::perplexity(&stats);
    if let Some(ci) = cache.as_mut() {
        if let Some(b) = written {
            ci.file_bytes = b;
        }
        ci.listed_mean = listed as f64 / stats.len().max(1) as f64;
        ci.tail_mass_mean = tail_sum / stats.len().max(1) as f64;
        ci.tail_mass_max = tail_max;
    }
    Ok(PplReport {
        n_text_tokens: tokens.len(),
        ctx: ch.ctx,
        n_chunks: ch.n_chunks,
        n_tokens: stats.len(),
        ppl,
        ppl_stderr,
        kld: compared.then(|| stats::kld_summary(&stats)),
        drift: stats::drift(&stats, ch.first, ch.last(), opts.drift_buckets, compared),
        cache,
        positions: stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_like_llama_perplexity() {
        let c = Chunks::new(62886, 512, None, Some(2)).unwrap();
        assert_eq!(
            (c.n_chunks, c.first, c.scored(), c.last()),
            (122, 256, 255, 510)
        );
        assert_eq!(Chunks::new(62886, 512, Some(4), None).unwrap().n_chunks, 4);
        assert_eq!(
            Chunks::new(62886, 512, Some(400), None).unwrap().n_chunks,
            122
        );
        assert_eq!(Chunks::new(62886, 4096, None, None).unwrap().scored(), 2047);
        assert!(Chunks::new(1023, 512, None, None).is_err());
        let toks: Vec<u32> = (10..30).collect();
        let c = Chunks::new(toks.len(), 8, None, Some(2)).unwrap();
        assert_eq!(c.input(&toks, 1), vec![2, 19, 20, 21, 22, 23, 24, 25]);
        assert_eq!(c.next(&toks, 1, 4), 23);
    }
}
