//! Text generation with the runner: greedy or sampled decoding, one token at a time, with the
//! tokens handed to a callback as soon as they are chosen (the CLI streams their text).
//!
//! The sampler follows transformers' order of logits processors for `do_sample=True`:
//! temperature (`z / T`), then top-k (keep the k largest; ties at the boundary are kept, as
//! `torch.topk`'s threshold keeps them), then top-p (keep the smallest set of most likely tokens
//! whose probability reaches p, always at least one), then one draw from the renormalized
//! distribution with a seeded generator (xoshiro256**, seeded through SplitMix64), so a seed
//! gives the same tokens on every machine and thread count. Temperature 0 is greedy decoding
//! (the first of equal largest logits).

use crate::gemma4::{Model, Session};
use anyhow::{bail, Result};

/// Sampling parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerConfig {
    /// Temperature; 0 means greedy.
    pub temperature: f32,
    /// Keep only the k most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the most likely tokens up to this cumulative probability (1: all).
    pub top_p: f32,
    /// Seed of the random generator.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// xoshiro256** (Blackman and Vigna), seeded with SplitMix64.
#[derive(Clone, Debug)]
pub struct Rng([u64; 4]);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in [0, 1), 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Picks tokens from logits.
#[derive(Clone, Debug)]
pub struct Sampler {
    cfg: SamplerConfig,
    rng: Rng,
}

impl Sampler {
    /// A sampler with its generator seeded.
    pub fn new(cfg: SamplerConfig) -> Sampler {
        Sampler {
            rng: Rng::new(cfg.seed),
            cfg,
        }
    }

    /// The tokens that may be drawn from `z` and their probabilities, most likely first (ties:
    /// lower id first), after temperature, top-k and top-p. Empty for greedy decoding.
    pub fn candidates(&self, z: &[f32]) -> Vec<(u32, f64)> {
        let c = &self.cfg;
        if c.temperature <= 0.0 {
            return Vec::new();
        }
        let t = c.temperature as f64;
        let mut idx: Vec<u32> = (0..z.len() as u32).collect();
        idx.sort_unstable_by(|&a, &b| z[b as usize].total_cmp(&z[a as usize]).then(a.cmp(&b)));
        if c.top_k > 0 && c.top_k < idx.len() {
            let kth = z[idx[c.top_k - 1] as usize];
            let keep = idx.iter().take_while(|&&i| z[i as usize] >= kth).count();
            idx.truncate(keep);
        }
        let m = z[idx[0] as usize] as f64 / t;
        let w: Vec<f64> = idx
            .iter()
            .map(|&i| (z[i as usize] as f64 / t - m).exp())
            .collect();
        let sum: f64 = w.iter().sum();
        let mut out: Vec<(u32, f64)> = idx.iter().zip(&w).map(|(&i, &e)| (i, e / sum)).collect();
        if c.top_p < 1.0 {
            let mut acc = 0.0;
            let mut keep = out.len();
            for (n, &(_, p)) in out.iter().enumerate() {
                acc += p;
                if acc >= c.top_p as f64 {
                    keep = n + 1;
                    break;
                }
            }
            out.truncate(keep.max(1));
            let s: f64 = out.iter().map(|x| x.1).sum();
            for x in &mut out {
                x.1 /= s;
            }
        }
        out
    }

    /// The next token.
    pub fn sample(&mut self, z: &[f32]) -> u32 {
        if self.cfg.temperature <= 0.0 {
            return crate::gemma4::ops::argmax(z) as u32;
        }
        let cand = self.candidates(z);
        let u = self.rng.uniform();
        let mut acc = 0.0;
        for &(i, p) in &cand {
            acc += p;
            if u < acc {
                return i;
            }
        }
        cand[cand.len() - 1].0
    }
}

/// The sampling parameters a model ships with: a checkpoint's `generation_config.json`
/// (`do_sample`, `temperature`, `top_k`, `top_p`; with `do_sample` and no `top_k`, transformers'
/// default 50), or a GGUF's `general.sampling.{temp,top_k,top_p}` keys. Greedy when the model
/// says nothing or `do_sample` is false. Returns the parameters and where they came from.
pub fn model_defaults(model: &Model) -> Result<(SamplerConfig, String)> {
    use crate::gemma4::weights::Source;
    use crate::gguf::MetaValue;
    let mut c = SamplerConfig::default();
    match &model.file.source {
        Source::Checkpoint(ck) => {
            let p = ck.dir.join("generation_config.json");
            let Ok(text) = std::fs::read_to_string(&p) else {
                return Ok((c, "none (no generation_config.json): greedy".into()));
            };
            let j: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            if j["do_sample"].as_bool() != Some(true) {
                return Ok((
                    c,
                    "generation_config.json (do_sample is not true): greedy".into(),
                ));
            }
            c.temperature = j["temperature"].as_f64().unwrap_or(1.0) as f32;
            c.top_k = j["top_k"].as_u64().unwrap_or(50) as usize;
            c.top_p = j["top_p"].as_f64().unwrap_or(1.0) as f32;
            Ok((c, "generation_config.json".into()))
        }
        Source::Gguf(g) => {
            let num = |k: &str| -> Option<f64> {
                match g.metadata.get(k)? {
                    MetaValue::F32(v) => Some(*v as f64),
                    MetaValue::F64(v) => Some(*v),
                    MetaValue::I32(v) => Some(*v as f64),
                    MetaValue::U32(v) => Some(*v as f64),
                    MetaValue::I64(v) => Some(*v as f64),
                    MetaValue::U64(v) => Some(*v as f64),
                    _ => None,
                }
            };
            let (t, k, p) = (
                num("general.sampling.temp"),
                num("general.sampling.top_k"),
                num("general.sampling.top_p"),
            );
            if t.is_none() && k.is_none() && p.is_none() {
                return Ok((c, "none (no general.sampling.* keys): greedy".into()));
            }
            c.temperature = t.unwrap_or(1.0) as f32;
            c.top_k = k.map_or(0, |k| k.max(0.0) as usize);
            c.top_p = p.unwrap_or(1.0) as f32;
            Ok((c, "the GGUF's general.sampling.* keys".into()))
        }
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// An end-of-generation token was produced (it is the last token returned).
    EndOfGeneration,
    /// The requested number of tokens was produced.
    Length,
    /// The callback asked to stop.
    Callback,
}

/// Generates up to `n` tokens after `prompt`, stopping after a token for which `is_eog` is true.
/// `on_token(id)` is called for each new token as soon as it is chosen; returning `false` stops.
/// Returns the new tokens and why it stopped.
pub fn generate(
    model: &Model,
    prompt: &[u32],
    n: usize,
    sampler: &mut Sampler,
    is_eog: &dyn Fn(u32) -> bool,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<(Vec<u32>, Stop)> {
    if prompt.is_empty() {
        bail!("generation needs a prompt of at least one token");
    }
    let mut s = Session::new(model);
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return Ok((out, Stop::Length));
    }
    let mut logits = s.forward(prompt, &[prompt.len() - 1])?;
    loop {
        let t = sampler.sample(&logits);
        out.push(t);
        if !on_token(t) {
            return Ok((out, Stop::Callback));
        }
        if is_eog(t) {
            return Ok((out, Stop::EndOfGeneration));
        }
        if out.len() == n {
            return Ok((out, Stop::Length));
        }
        logits = s.forward(&[t], &[0])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_xoshiro256starstar() {
        // Reference: the algorithm's published C code with state {1, 2, 3, 4}.
        let mut r = Rng([1, 2, 3, 4]);
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(got, vec![11520, 0, 1509978240]);
    }

    #[test]
    fn greedy_takes_the_first_largest() {
        let mut s = Sampler::new(SamplerConfig::default());
        assert_eq!(s.sample(&[0.0, 2.0, 2.0, 1.0]), 1);
    }

    #[test]
    fn top_k_and_top_p_filter() {
        let z = [3.0f32, 1.0, 2.0, 0.0, 2.0];
        let s = Sampler::new(SamplerConfig {
            temperature: 1.0,
            top_k: 2,
            ..Default::default()
        });
        // Ties at the k-th value are kept: 0, then 2 and 4 (equal).
        let c: Vec<u32> = s.candidates(&z).iter().map(|x| x.0).collect();
        assert_eq!(c, vec![0, 2, 4]);
        let s = Sampler::new(SamplerConfig {
            temperature: 1.0,
            top_p: 0.5,
            ..Default::default()
        });
        let c = s.candidates(&z);
        assert_eq!(c.len(), 1, "{c:?}"); // p(0) = 0.53 ≥ 0.5
        assert!((c[0].1 - 1.0).abs() < 1e-12);
        let s = Sampler::new(SamplerConfig {
            temperature: 0.5,
            ..Default::default()
        });
        let c = s.candidates(&z);
        let e = |x: f64| (x / 0.5).exp();
        let want = e(3.0) / (e(3.0) + e(1.0) + 2.0 * e(2.0) + e(0.0));
        assert!((c[0].1 - want).abs() < 1e-12);
    }

    #[test]
    fn sampling_is_seeded_and_follows_the_distribution() {
        let z = [0.0f32, (2.0f32).ln(), (3.0f32).ln()];
        let cfg = SamplerConfig {
            temperature: 1.0,
            seed: 7,
            ..Default::default()
        };
        let draw = |cfg| {
            let mut s = Sampler::new(cfg);
            (0..6000).map(|_| s.sample(&z)).collect::<Vec<u32>>()
        };
        let a = draw(cfg);
        assert_eq!(a, draw(cfg));
        assert_ne!(a, draw(SamplerConfig { seed: 8, ..cfg }));
        let mut counts = [0usize; 3];
        for &t in &a {
            counts[t as usize] += 1;
        }
        // Expected 1000, 2000, 3000 (binomial sd ≤ 39).
        for (c, want) in counts.iter().zip([1000.0, 2000.0, 3000.0]) {
            assert!((*c as f64 - want).abs() < 200.0, "{counts:?}");
        }
    }
}
