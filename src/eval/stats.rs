//! The per-position quantities of an evaluation (log-softmax, negative log-likelihood, the
//! baseline's compact record, KL-divergence) and their aggregates (llama-perplexity's PPL and its
//! uncertainty, KLD mean / median / percentiles, top-1 agreement, RMS Δp, drift buckets).
//!
//! Everything is computed in f64 from the f32 logits, one position at a time; aggregates are summed
//! in position order, so the results do not depend on how positions were spread over threads.

use serde::Serialize;

/// `max_i z_i` with its first index, and `ln Σ_i exp(z_i − max)` (summed in f64).
#[derive(Clone, Copy, Debug)]
pub struct LogSumExp {
    /// The largest logit.
    pub max: f64,
    /// Index of the first largest logit (llama.cpp's and gq's argmax).
    pub argmax: usize,
    /// `Σ_i exp(z_i − max)`.
    pub sum: f64,
}

impl LogSumExp {
    /// Of one row of logits.
    pub fn of(z: &[f32]) -> LogSumExp {
        let mut argmax = 0;
        for (i, &v) in z.iter().enumerate() {
            if v > z[argmax] {
                argmax = i;
            }
        }
        let max = z[argmax] as f64;
        let sum = z.iter().map(|&v| (v as f64 - max).exp()).sum();
        LogSumExp { max, argmax, sum }
    }

    /// `ln Σ_i exp(z_i)`.
    pub fn lse(&self) -> f64 {
        self.max + self.sum.ln()
    }

    /// `ln softmax(z)_i` for a logit `z_i` of the same row.
    pub fn log_prob(&self, z_i: f32) -> f64 {
        z_i as f64 - self.lse()
    }
}

/// What gq keeps of the baseline's distribution at one position (the baseline cache's record):
/// the negative log-likelihood of the token that follows, the most likely tokens with their
/// log-probabilities (most likely first; the first is the baseline's top-1) until the mass of the
/// others is at most the tolerance (or a cap on their number is reached), and that mass.
#[derive(Clone, Debug, PartialEq)]
pub struct BaseRecord {
    /// `−ln p_base(next token)`.
    pub nll: f32,
    /// `Σ p_base` over the tokens not listed (0 when every token is listed).
    pub tail: f64,
    /// The listed token ids, by decreasing probability (ties: lower id first).
    pub ids: Vec<u32>,
    /// `ln p_base` of each listed token.
    pub log_probs: Vec<f32>,
}

/// How much of the baseline's distribution a record lists.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecordSpec {
    /// List tokens until the unlisted mass is at most this.
    pub tail: f64,
    /// List at most this many tokens.
    pub max_tokens: usize,
}

impl Default for RecordSpec {
    fn default() -> Self {
        RecordSpec {
            tail: 1e-3,
            max_tokens: 8192,
        }
    }
}

impl BaseRecord {
    /// The record of baseline logits `z` at a position followed by `next`.
    pub fn from_logits(z: &[f32], next: u32, spec: RecordSpec) -> BaseRecord {
        let v = z.len();
        let kmax = spec.max_tokens.clamp(1, v);
        let l = LogSumExp::of(z);
        let lse = l.lse();
        let by = |a: &u32, b: &u32| z[*b as usize].total_cmp(&z[*a as usize]).then(a.cmp(b));
        let all: Vec<u32> = (0..v as u32).collect();
        // Candidates: the k most likely, k growing until they hold enough mass.
        let mut k = kmax.min(64);
        let (idx, n) = loop {
            let mut top = all.clone();
            if k < v {
                top.select_nth_unstable_by(k - 1, by);
                top.truncate(k);
            }
            top.sort_unstable_by(by);
            let mut listed = 0.0;
            let mut n = top.len();
            for (j, &i) in top.iter().enumerate() {
                listed += (z[i as usize] as f64 - l.max).exp();
                if (l.sum - listed) / l.sum <= spec.tail {
                    n = j + 1;
                    break;
                }
            }
            if n < top.len() || k == kmax {
                break (top, n);
            }
            k = (4 * k).min(kmax);
        };
        let ids: Vec<u32> = idx[..n].to_vec();
        let head: f64 = ids
            .iter()
            .map(|&i| (z[i as usize] as f64 - l.max).exp())
            .sum();
        let tail = if n == v {
            0.0
        } else {
            ((l.sum - head) / l.sum).max(0.0)
        };
        BaseRecord {
            nll: (lse - z[next as usize] as f64) as f32,
            tail,
            log_probs: ids
                .iter()
                .map(|&i| (z[i as usize] as f64 - lse) as f32)
                .collect(),
            ids,
        }
    }

    /// The baseline's most likely token.
    pub fn top1(&self) -> u32 {
        self.ids[0]
    }
}

/// The numbers of one scored position.
#[derive(Clone, Copy, Debug, Default)]
pub struct PosStat {
    /// Position in the context (0 is the chunk's BOS).
    pub pos: usize,
    /// `−ln p(next token)` under the evaluated model.
    pub nll: f64,
    /// The evaluated model's most likely token.
    pub top1: u32,
    /// Against a baseline: its `−ln p_base(next token)`.
    pub nll_base: f64,
    /// KL(P_base ‖ P) from the baseline's record.
    pub kld: f64,
    /// KL(P_base ‖ P) over the whole vocabulary (only when the baseline's full logits were at hand).
    pub kld_exact: Option<f64>,
    /// `p(next) − p_base(next)`.
    pub p_diff: f64,
    /// Whether both models' most likely tokens are the same.
    pub same_top: bool,
}

/// The evaluated model's numbers at a position whose logits are `z`, followed by `next`.
pub fn score(pos: usize, z: &[f32], next: u32) -> (PosStat, LogSumExp) {
    let l = LogSumExp::of(z);
    let nll = -l.log_prob(z[next as usize]);
    (
        PosStat {
            pos,
            nll,
            top1: l.argmax as u32,
            ..PosStat::default()
        },
        l,
    )
}

/// Adds the comparison with the baseline's record `b` to `s` (model logits `z`, their `l`).
///
/// KL(P_base ‖ P) = Σ_listed p_b,i (ln p_b,i − ln p_i) + r ln(r / q_tail), where r is the
/// baseline's unlisted mass and q_tail the model's mass on the same unlisted tokens: the exact
/// divergence between the two distributions with the unlisted tokens merged into one outcome.
/// It equals the full KLD when every token is listed, and is never above it otherwise (merging
/// outcomes cannot increase a divergence); the shortfall is r · KL(tail_base ‖ tail_model) of the
/// renormalized tails.
pub fn compare(s: &mut PosStat, z: &[f32], l: &LogSumExp, b: &BaseRecord) {
    let lse = l.lse();
    let mut kld = 0.0;
    let mut listed_q = 0.0;
    for (&i, &lp) in b.ids.iter().zip(&b.log_probs) {
        let lq = z[i as usize] as f64 - lse;
        let lp = lp as f64;
        kld += lp.exp() * (lp - lq);
        listed_q += (z[i as usize] as f64 - l.max).exp();
    }
    if b.tail > 0.0 {
        let q_tail = ((l.sum - listed_q) / l.sum).max(f64::MIN_POSITIVE);
        kld += b.tail * (b.tail.ln() - q_tail.ln());
    }
    s.kld = kld;
    s.nll_base = b.nll as f64;
    s.p_diff = (-s.nll).exp() - (-s.nll_base).exp();
    s.same_top = s.top1 == b.top1();
}

/// KL(P_base ‖ P) over the whole vocabulary, from both rows of logits.
pub fn kld_exact(base: &[f32], z: &[f32]) -> f64 {
    let (lb, lq) = (LogSumExp::of(base), LogSumExp::of(z));
    let (eb, eq) = (lb.lse(), lq.lse());
    base.iter()
        .zip(z)
        .map(|(&b, &q)| {
            let lp = b as f64 - eb;
            lp.exp() * (lp - (q as f64 - eq))
        })
        .sum()
}

/// Mean and standard error of the mean, as llama-perplexity's `mean_and_uncertainty` computes
/// them (`sqrt((Σx²/n − mean²) / (n − 1))`, 0 when not positive or n ≤ 10).
pub fn mean_and_uncertainty(sum: f64, sum2: f64, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let f = sum / n as f64;
    let df = sum2 / n as f64 - f * f;
    let df = if df > 0.0 && n > 10 {
        (df / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    (f, df)
}

/// llama-perplexity's percentile of sorted values: linear interpolation at `fraction · (n − 1)`.
pub fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    if fraction <= 0.0 {
        return sorted[0];
    }
    if fraction >= 1.0 {
        return sorted[sorted.len() - 1];
    }
    let p = fraction * (sorted.len() - 1) as f64;
    let ip = p as usize;
    let w = p - ip as f64;
    (1.0 - w) * sorted[ip] + w * sorted[(ip + 1).min(sorted.len() - 1)]
}

/// llama-perplexity's median: the middle value, or the mean of the two middle values.
pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        f64::NAN
    } else if n.is_multiple_of(2) {
        0.5 * (sorted[n / 2] + sorted[n / 2 - 1])
    } else {
        sorted[n / 2]
    }
}

/// Perplexity of a set of positions: `exp(mean nll)` and llama-perplexity's uncertainty
/// (`ppl · sqrt((mean(nll²) − mean²) / (n − 1))`).
pub fn perplexity(stats: &[PosStat]) -> (f64, f64) {
    let n = stats.len();
    let (s, s2) = stats
        .iter()
        .fold((0.0, 0.0), |(a, b), p| (a + p.nll, b + p.nll * p.nll));
    let (m, u) = mean_and_uncertainty(s, s2, n);
    let ppl = m.exp();
    (ppl, ppl * u)
}

/// The comparison with a baseline over a set of positions.
#[derive(Clone, Debug, Serialize)]
pub struct KldSummary {
    /// Perplexity of the baseline on the same positions.
    pub ppl_base: f64,
    /// Its uncertainty.
    pub ppl_base_stderr: f64,
    /// `ln(PPL / PPL_base)`.
    pub ln_ppl_ratio: f64,
    /// Mean KL(P_base ‖ P).
    pub kld_mean: f64,
    /// Its standard error.
    pub kld_mean_stderr: f64,
    /// Median KLD.
    pub kld_median: f64,
    /// 90th percentile of the KLD.
    pub kld_p90: f64,
    /// 99th percentile.
    pub kld_p99: f64,
    /// 99.9th percentile.
    pub kld_p999: f64,
    /// Largest KLD.
    pub kld_max: f64,
    /// Fraction of positions where both models' most likely tokens are the same.
    pub top1_agreement: f64,
    /// Its standard error.
    pub top1_agreement_stderr: f64,
    /// Mean of `p(next) − p_base(next)`.
    pub mean_dp: f64,
    /// Root mean square of `p(next) − p_base(next)`.
    pub rms_dp: f64,
    /// Largest `|p(next) − p_base(next)|`.
    pub max_abs_dp: f64,
    /// Mean KLD over the whole vocabulary, when it was computed (`--kld-exact`).
    pub kld_mean_exact: Option<f64>,
    /// Largest per-position difference between the cached and the exact KLD, when computed.
    pub kld_cache_max_error: Option<f64>,
}

/// Summarizes positions that were compared with a baseline.
pub fn kld_summary(stats: &[PosStat]) -> KldSummary {
    let n = stats.len();
    let sum = |f: &dyn Fn(&PosStat) -> f64| stats.iter().map(f).sum::<f64>();
    let (kld_mean, kld_mean_stderr) =
        mean_and_uncertainty(sum(&|p| p.kld), sum(&|p| p.kld * p.kld), n);
    let (lb, lbu) = mean_and_uncertainty(sum(&|p| p.nll_base), sum(&|p| p.nll_base.powi(2)), n);
    let (lq, _) = mean_and_uncertainty(sum(&|p| p.nll), sum(&|p| p.nll.powi(2)), n);
    let mut klds: Vec<f64> = stats.iter().map(|p| p.kld).collect();
    klds.sort_by(f64::total_cmp);
    let same = stats.iter().filter(|p| p.same_top).count();
    let top1 = same as f64 / n.max(1) as f64;
    let top1_err = if n > 1 {
        (top1 * (1.0 - top1) / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let exact = stats.iter().all(|p| p.kld_exact.is_some()) && n > 0;
    KldSummary {
        ppl_base: lb.exp(),
        ppl_base_stderr: lb.exp() * lbu,
        ln_ppl_ratio: lq - lb,
        kld_mean,
        kld_mean_stderr,
        kld_median: median(&klds),
        kld_p90: percentile(&klds, 0.90),
        kld_p99: percentile(&klds, 0.99),
        kld_p999: percentile(&klds, 0.999),
        kld_max: klds.last().copied().unwrap_or(f64::NAN),
        top1_agreement: top1,
        top1_agreement_stderr: top1_err,
        mean_dp: sum(&|p| p.p_diff) / n.max(1) as f64,
        rms_dp: (sum(&|p| p.p_diff * p.p_diff) / n.max(1) as f64).sqrt(),
        max_abs_dp: stats.iter().fold(0.0, |m, p| m.max(p.p_diff.abs())),
        kld_mean_exact: exact.then(|| sum(&|p| p.kld_exact.unwrap()) / n as f64),
        kld_cache_max_error: exact.then(|| {
            stats
                .iter()
                .fold(0.0f64, |m, p| m.max((p.kld_exact.unwrap() - p.kld).abs()))
        }),
    }
}

/// One bucket of positions in the context: how the numbers drift along it.
#[derive(Clone, Debug, Serialize)]
pub struct DriftBucket {
    /// First position (0 is the chunk's BOS).
    pub first_pos: usize,
    /// Last position.
    pub last_pos: usize,
    /// Scored positions in the bucket (over all chunks).
    pub n: usize,
    /// Perplexity of these positions.
    pub ppl: f64,
    /// Mean KLD, against a baseline.
    pub kld_mean: Option<f64>,
    /// 99th percentile of the KLD.
    pub kld_p99: Option<f64>,
    /// Top-1 agreement.
    pub top1_agreement: Option<f64>,
    /// RMS of Δp.
    pub rms_dp: Option<f64>,
}

/// Splits the scored positions `first ..= last` into `n_buckets` ranges of (nearly) equal width
/// and summarizes each; `compared` says whether the stats hold baseline numbers.
pub fn drift(
    stats: &[PosStat],
    first: usize,
    last: usize,
    n_buckets: usize,
    compared: bool,
) -> Vec<DriftBucket> {
    let width = last + 1 - first;
    let nb = n_buckets.clamp(1, width);
    (0..nb)
        .map(|b| {
            let lo = first + b * width / nb;
            let hi = first + (b + 1) * width / nb - 1;
            let mine: Vec<PosStat> = stats
                .iter()
                .filter(|p| p.pos >= lo && p.pos <= hi)
                .copied()
                .collect();
            let (ppl, _) = perplexity(&mine);
            let k = compared.then(|| kld_summary(&mine));
            DriftBucket {
                first_pos: lo,
                last_pos: hi,
                n: mine.len(),
                ppl,
                kld_mean: k.as_ref().map(|k| k.kld_mean),
                kld_p99: k.as_ref().map(|k| k.kld_p99),
                top1_agreement: k.as_ref().map(|k| k.top1_agreement),
                rms_dp: k.as_ref().map(|k| k.rms_dp),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: usize, seed: u64) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..v)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x >> 11) as f64 / (1u64 << 53) as f64 * 12.0 - 6.0) as f32
            })
            .collect()
    }

    #[test]
    fn record_with_every_token_gives_the_exact_kld() {
        let (b, q) = (row(300, 1), row(300, 2));
        let every = RecordSpec {
            tail: 0.0,
            max_tokens: 300,
        };
        let rec = BaseRecord::from_logits(&b, 7, every);
        assert_eq!(rec.tail, 0.0);
        assert_eq!(rec.ids.len(), 300);
        let (mut s, l) = score(10, &q, 7);
        compare(&mut s, &q, &l, &rec);
        let exact = kld_exact(&b, &q);
        assert!(
            (s.kld - exact).abs() < 1e-6 * exact.max(1e-3),
            "{} {exact}",
            s.kld
        );
        assert!(exact > 0.0);
        // Same distribution: no divergence.
        let (mut s0, l0) = score(10, &b, 7);
        compare(&mut s0, &b, &l0, &rec);
        assert!(s0.kld.abs() < 1e-6, "{}", s0.kld);
        assert!(s0.same_top && s0.p_diff.abs() < 1e-6);
        assert!((s0.nll - s0.nll_base).abs() < 1e-5);
    }

    #[test]
    fn truncated_record_is_a_lower_bound_close_to_the_exact_kld() {
        let (b, q) = (row(1000, 3), row(1000, 4));
        // Sharpen the baseline so that the top tokens hold most of the mass.
        let b: Vec<f32> = b.iter().map(|&v| v * 3.0).collect();
        let q: Vec<f32> = b.iter().zip(&q).map(|(&x, &y)| x + 0.1 * y).collect();
        let exact = kld_exact(&b, &q);
        let mut prev = 0.0;
        for k in [1, 10, 50, 200, 1000] {
            let spec = RecordSpec {
                tail: 0.0,
                max_tokens: k,
            };
            let rec = BaseRecord::from_logits(&b, 3, spec);
            assert_eq!(rec.ids.len(), k);
            assert!(rec.log_probs.windows(2).all(|w| w[0] >= w[1]));
            let (mut s, l) = score(0, &q, 3);
            compare(&mut s, &q, &l, &rec);
            // (log-probabilities are stored in f32: equal up to that rounding)
            let tol = 1e-5 * exact;
            assert!(s.kld <= exact + tol, "k={k}: {} > {exact}", s.kld);
            assert!(s.kld + tol >= prev, "k={k}: not increasing");
            prev = s.kld;
        }
        assert!((prev - exact).abs() < 1e-5 * exact);
        // With a tolerance: the fewest tokens that leave at most that mass unlisted.
        for eps in [1e-1, 1e-2, 1e-3, 1e-4] {
            let spec = RecordSpec {
                tail: eps,
                max_tokens: 1000,
            };
            let rec = BaseRecord::from_logits(&b, 3, spec);
            assert!(rec.tail <= eps, "{eps}: {}", rec.tail);
            let n = rec.ids.len();
            let shorter = BaseRecord::from_logits(
                &b,
                3,
                RecordSpec {
                    tail: 0.0,
                    max_tokens: n - 1,
                },
            );
            assert!(shorter.tail > eps, "{eps}: {n} tokens are more than needed");
        }
    }

    #[test]
    fn top1_is_the_first_of_equal_logits() {
        let z = [1.0, 3.0, 3.0, 0.5];
        let spec = RecordSpec {
            tail: 0.0,
            max_tokens: 2,
        };
        let rec = BaseRecord::from_logits(&z, 0, spec);
        assert_eq!(rec.ids, vec![1, 2]);
        assert_eq!(LogSumExp::of(&z).argmax, 1);
    }

    #[test]
    fn percentiles_and_median_like_llama_perplexity() {
        let v: Vec<f64> = (0..11).map(|i| i as f64).collect();
        assert_eq!(percentile(&v, 0.99), 9.9);
        assert_eq!(percentile(&v, 0.5), 5.0);
        assert_eq!(median(&v), 5.0);
        assert_eq!(median(&v[..10]), 4.5);
        assert_eq!(percentile(&v, 1.0), 10.0);
    }

    #[test]
    fn drift_buckets_cover_the_scored_range() {
        let stats: Vec<PosStat> = (256..=510)
            .map(|p| PosStat {
                pos: p,
                nll: 1.0,
                ..Default::default()
            })
            .collect();
        let d = drift(&stats, 256, 510, 8, false);
        assert_eq!(d.len(), 8);
        assert_eq!(d[0].first_pos, 256);
        assert_eq!(d[7].last_pos, 510);
        assert!(d.windows(2).all(|w| w[0].last_pos + 1 == w[1].first_pos));
        assert_eq!(d.iter().map(|b| b.n).sum::<usize>(), 255);
        assert!((d[3].ppl - std::f64::consts::E).abs() < 1e-12);
    }
}
