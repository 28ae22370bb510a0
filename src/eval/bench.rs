//! Speed of the runner in llama-bench's terms: pp (one batch of `pp` prompt tokens from an
//! empty cache, logits of the last) and tg (`tg` tokens decoded one at a time from an empty
//! cache, logits of each), in tokens per second, one warm-up run then `reps` timed runs; and
//! llama.cpp's `llama-bench` on the same file and threads, parsed from its JSON.

use crate::gemma4::forward::Session;
use crate::gemma4::model::Model;
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// One test's throughput samples.
#[derive(Clone, Debug, Serialize)]
pub struct Speed {
    /// `pp512`, `tg128`, …
    pub test: String,
    /// Tokens per second of each timed run.
    pub samples: Vec<f64>,
}

impl Speed {
    /// Mean tokens per second.
    pub fn mean(&self) -> f64 {
        self.samples.iter().sum::<f64>() / self.samples.len().max(1) as f64
    }

    /// Sample standard deviation (0 for fewer than two runs).
    pub fn stddev(&self) -> f64 {
        let n = self.samples.len();
        if n < 2 {
            return 0.0;
        }
        let m = self.mean();
        (self.samples.iter().map(|s| (s - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    }

    /// Folds another measurement of the same test into this one.
    pub fn merge(&mut self, other: &Speed) {
        self.samples.extend_from_slice(&other.samples);
    }
}

/// Token ids for the benches: a fixed LCG sequence below `n_vocab` (like llama-bench's random
/// tokens, but the same every run).
pub fn bench_tokens(n: usize, n_vocab: usize) -> Vec<u32> {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 33) % n_vocab as u64) as u32
        })
        .collect()
}

/// Seconds to process `tokens` as one prompt batch from an empty cache.
fn time_pp(model: &Model, tokens: &[u32]) -> Result<f64> {
    let t0 = Instant::now();
    let mut s = Session::new(model);
    let l = s.forward(tokens, &[tokens.len() - 1])?;
    std::hint::black_box(l);
    Ok(t0.elapsed().as_secs_f64())
}

/// Seconds to decode `tokens` one at a time from an empty cache.
fn time_tg(model: &Model, tokens: &[u32]) -> Result<f64> {
    let t0 = Instant::now();
    let mut s = Session::new(model);
    for &t in tokens {
        let l = s.forward(&[t], &[0])?;
        std::hint::black_box(l);
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// Measures pp`pp` and tg`tg` (either may be 0 to skip it) on the current rayon pool: one
/// warm-up run each, then `reps` timed runs.
pub fn measure(model: &Model, pp: usize, tg: usize, reps: usize) -> Result<Vec<Speed>> {
    let v = model.n_vocab().min(model.n_embd_rows());
    let mut out = Vec::new();
    if pp > 0 {
        let toks = bench_tokens(pp, v);
        time_pp(model, &toks)?;
        let samples = (0..reps)
            .map(|_| time_pp(model, &toks).map(|s| pp as f64 / s))
            .collect::<Result<_>>()?;
        out.push(Speed {
            test: format!("pp{pp}"),
            samples,
        });
    }
    if tg > 0 {
        let toks = bench_tokens(tg, v);
        time_tg(model, &toks)?;
        let samples = (0..reps)
            .map(|_| time_tg(model, &toks).map(|s| tg as f64 / s))
            .collect::<Result<_>>()?;
        out.push(Speed {
            test: format!("tg{tg}"),
            samples,
        });
    }
    Ok(out)
}

/// Runs `llama-bench -m FILE -p pp -n tg -t threads -r reps -o json` and returns its samples.
pub fn llama_bench(
    bin: &Path,
    file: &Path,
    pp: usize,
    tg: usize,
    threads: usize,
    reps: usize,
) -> Result<Vec<Speed>> {
    if !bin.exists() {
        bail!(
            "{} not found: build llama.cpp's tools with `bash scripts/get_peers.sh`",
            bin.display()
        );
    }
    let out = Command::new(bin)
        .arg("-m")
        .arg(file)
        .args(["-p", &pp.to_string(), "-n", &tg.to_string()])
        .args(["-t", &threads.to_string(), "-r", &reps.to_string()])
        .args(["-o", "json"])
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    parse_llama_bench(&String::from_utf8_lossy(&out.stdout))
}

/// Parses llama-bench's `-o json` output (an array with `n_prompt`, `n_gen`, `samples_ts`).
pub fn parse_llama_bench(json: &str) -> Result<Vec<Speed>> {
    let v: serde_json::Value = serde_json::from_str(json).context("llama-bench JSON")?;
    let arr = v
        .as_array()
        .ok_or_else(|| anyhow!("llama-bench JSON is not an array"))?;
    arr.iter()
        .map(|r| {
            let get = |k: &str| {
                r.get(k)
                    .and_then(|x| x.as_u64())
                    .ok_or_else(|| anyhow!("llama-bench JSON: no {k}"))
            };
            let (np, ng) = (get("n_prompt")?, get("n_gen")?);
            let test = if ng == 0 {
                format!("pp{np}")
            } else if np == 0 {
                format!("tg{ng}")
            } else {
                format!("pp{np}+tg{ng}")
            };
            let samples = r
                .get("samples_ts")
                .and_then(|s| s.as_array())
                .ok_or_else(|| anyhow!("llama-bench JSON: no samples_ts"))?
                .iter()
                .map(|x| x.as_f64().ok_or_else(|| anyhow!("bad samples_ts")))
                .collect::<Result<_>>()?;
            Ok(Speed { test, samples })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_llama_bench_json() {
        let j = r#"[{"n_prompt": 512, "n_gen": 0, "samples_ts": [10.0, 12.0]},
                    {"n_prompt": 0, "n_gen": 128, "samples_ts": [5.0]}]"#;
        let s = parse_llama_bench(j).unwrap();
        assert_eq!(s[0].test, "pp512");
        assert_eq!(s[1].test, "tg128");
        assert!((s[0].mean() - 11.0).abs() < 1e-12);
        assert!((s[0].stddev() - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(s[1].stddev(), 0.0);
        assert!(parse_llama_bench(r#"[{"n_prompt": 1}]"#).is_err());
    }

    #[test]
    fn bench_tokens_stay_in_vocab() {
        let t = bench_tokens(1000, 7);
        assert!(t.iter().all(|&x| x < 7));
        assert!(t.iter().any(|&x| x != t[0]));
    }
}
