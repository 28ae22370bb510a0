//! `gq check`: quality thresholds on the comparison of a model with its baseline, the one-line
//! verdict, and the JUnit XML report CI systems read.
//!
//! Each threshold is one metric of [`KldSummary`] (or the perplexity increase derived from it)
//! with a limit; the check passes when every threshold holds. A value that is not a number (an
//! evaluation that produced NaN) fails its threshold.

use crate::eval::stats::KldSummary;
use serde::Serialize;

/// A metric a threshold can bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Mean KL(P_base ‖ P) over the scored positions (nats); bounded above by `--max-kld`.
    KldMean,
    /// 99th percentile of the per-position KLD (nats); bounded above by `--max-kld-p99`.
    KldP99,
    /// `100 · (PPL / PPL_base − 1)`, in percent; bounded above by `--max-ppl-increase`.
    PplIncreasePct,
    /// Fraction of positions where both models' most likely tokens agree; bounded below by
    /// `--min-top1`.
    Top1Agreement,
}

impl Metric {
    /// The metric's name in the verdict, JSON and JUnit output.
    pub fn name(self) -> &'static str {
        match self {
            Metric::KldMean => "kld_mean",
            Metric::KldP99 => "kld_p99",
            Metric::PplIncreasePct => "ppl_increase_pct",
            Metric::Top1Agreement => "top1_agreement",
        }
    }

    /// The command-line option that sets its limit.
    pub fn flag(self) -> &'static str {
        match self {
            Metric::KldMean => "--max-kld",
            Metric::KldP99 => "--max-kld-p99",
            Metric::PplIncreasePct => "--max-ppl-increase",
            Metric::Top1Agreement => "--min-top1",
        }
    }

    /// Whether the limit is a minimum (the value must be at least the limit) rather than a
    /// maximum.
    pub fn is_minimum(self) -> bool {
        matches!(self, Metric::Top1Agreement)
    }

    /// The metric's value in a comparison.
    pub fn value(self, k: &KldSummary) -> f64 {
        match self {
            Metric::KldMean => k.kld_mean,
            Metric::KldP99 => k.kld_p99,
            Metric::PplIncreasePct => 100.0 * k.ln_ppl_ratio.exp_m1(),
            Metric::Top1Agreement => k.top1_agreement,
        }
    }
}

/// One threshold: a metric and its limit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Threshold {
    /// What is bounded.
    pub metric: Metric,
    /// The limit (a maximum, or a minimum for [`Metric::is_minimum`]).
    pub limit: f64,
}

/// A threshold checked against a value.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Outcome {
    /// The threshold.
    #[serde(flatten)]
    pub threshold: Threshold,
    /// The measured value.
    pub value: f64,
    /// Whether the value is within the limit (false for NaN).
    pub pass: bool,
}

impl Outcome {
    /// `kld_mean <= 0.01` (what the threshold requires).
    pub fn requirement(&self) -> String {
        let t = self.threshold;
        let op = if t.metric.is_minimum() { ">=" } else { "<=" };
        format!("{} {op} {}", t.metric.name(), t.limit)
    }

    /// A sentence saying how the value compares with the limit.
    pub fn message(&self) -> String {
        let t = self.threshold;
        let (op, word) = match (self.pass, t.metric.is_minimum()) {
            (true, false) => ("<=", "max"),
            (true, true) => (">=", "min"),
            (false, false) => (">", "max"),
            (false, true) => ("<", "min"),
        };
        let op = if self.value.is_nan() {
            "is NaN, not within"
        } else {
            op
        };
        format!(
            "{} {} {op} {word} {} ({})",
            t.metric.name(),
            num(self.value),
            t.limit,
            t.metric.flag()
        )
    }
}

/// A number for people: four significant digits, scientific notation when small or large.
pub fn num(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 {
        "0".to_string()
    } else if (1e-3..1e5).contains(&a) {
        let digits = if a >= 1.0 {
            3usize.saturating_sub(a.log10().floor() as usize)
        } else {
            (3 - a.log10().floor() as i64).max(0) as usize
        };
        format!("{x:.digits$}")
    } else {
        format!("{x:.3e}")
    }
}

/// Checks every threshold against the comparison `k`.
pub fn judge(k: &KldSummary, thresholds: &[Threshold]) -> Vec<Outcome> {
    thresholds
        .iter()
        .map(|&t| {
            let value = t.metric.value(k);
            let pass = if t.metric.is_minimum() {
                value >= t.limit
            } else {
                value <= t.limit
            };
            Outcome {
                threshold: t,
                value,
                pass,
            }
        })
        .collect()
}

/// The one-line verdict: `PASS: …` listing every threshold, or `FAIL: …` naming each failing
/// metric with its value and limit.
pub fn verdict(outcomes: &[Outcome]) -> String {
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.pass)
        .map(Outcome::message)
        .collect();
    if failed.is_empty() {
        let all: Vec<String> = outcomes.iter().map(Outcome::message).collect();
        format!("PASS: {}", all.join("; "))
    } else {
        format!(
            "FAIL: {} ({} of {} thresholds failed)",
            failed.join("; "),
            failed.len(),
            outcomes.len()
        )
    }
}

/// Escapes text for XML attribute values and character data (characters XML 1.0 cannot hold
/// become U+FFFD).
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// What a JUnit report holds besides the outcomes.
#[derive(Clone, Debug, Default)]
pub struct JunitInfo {
    /// The test suite's name (the checked model).
    pub suite: String,
    /// Seconds the check took.
    pub seconds: f64,
    /// Name/value pairs listed as the suite's properties (paths, settings, measured values).
    pub properties: Vec<(String, String)>,
}

fn junit_head(out: &mut String, info: &JunitInfo, tests: usize, failures: usize, errors: usize) {
    let suite = xml_escape(&info.suite);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"gq check\" tests=\"{tests}\" failures=\"{failures}\" \
         errors=\"{errors}\" time=\"{:.3}\">\n",
        info.seconds
    ));
    out.push_str(&format!(
        "  <testsuite name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" \
         errors=\"{errors}\" skipped=\"0\" time=\"{:.3}\">\n",
        info.seconds
    ));
    if !info.properties.is_empty() {
        out.push_str("    <properties>\n");
        for (k, v) in &info.properties {
            out.push_str(&format!(
                "      <property name=\"{}\" value=\"{}\"/>\n",
                xml_escape(k),
                xml_escape(v)
            ));
        }
        out.push_str("    </properties>\n");
    }
}

fn junit_tail(out: &mut String) {
    out.push_str("  </testsuite>\n</testsuites>\n");
}

/// JUnit XML with one test case per threshold; a failing threshold has a `<failure>` whose
/// message names the metric, its value and the limit.
pub fn junit(info: &JunitInfo, outcomes: &[Outcome]) -> String {
    let failures = outcomes.iter().filter(|o| !o.pass).count();
    let mut out = String::new();
    junit_head(&mut out, info, outcomes.len(), failures, 0);
    for o in outcomes {
        let name = xml_escape(&o.requirement());
        if o.pass {
            out.push_str(&format!(
                "    <testcase classname=\"gq.check\" name=\"{name}\" time=\"0\">\n      \
                 <system-out>{}</system-out>\n    </testcase>\n",
                xml_escape(&o.message())
            ));
        } else {
            let msg = xml_escape(&o.message());
            out.push_str(&format!(
                "    <testcase classname=\"gq.check\" name=\"{name}\" time=\"0\">\n      \
                 <failure type=\"threshold\" message=\"{msg}\">{msg}</failure>\n    </testcase>\n"
            ));
        }
    }
    junit_tail(&mut out);
    out
}

/// JUnit XML for a check that could not run (bad input): one test case with an `<error>`.
pub fn junit_error(info: &JunitInfo, message: &str) -> String {
    let mut out = String::new();
    junit_head(&mut out, info, 1, 0, 1);
    let msg = xml_escape(message);
    out.push_str(&format!(
        "    <testcase classname=\"gq.check\" name=\"evaluation\" time=\"0\">\n      \
         <error type=\"input\" message=\"{msg}\">{msg}</error>\n    </testcase>\n"
    ));
    junit_tail(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(kld: f64, p99: f64, ln_ratio: f64, top1: f64) -> KldSummary {
        KldSummary {
            ppl_base: 10.0,
            ppl_base_stderr: 0.1,
            ln_ppl_ratio: ln_ratio,
            kld_mean: kld,
            kld_mean_stderr: 0.0,
            kld_median: kld,
            kld_p90: p99,
            kld_p99: p99,
            kld_p999: p99,
            kld_max: p99,
            top1_agreement: top1,
            top1_agreement_stderr: 0.0,
            mean_dp: 0.0,
            rms_dp: 0.0,
            max_abs_dp: 0.0,
            kld_mean_exact: None,
            kld_cache_max_error: None,
        }
    }

    #[test]
    fn thresholds_pass_and_fail_at_the_limit() {
        let k = summary(0.02, 0.5, (1.05f64).ln(), 0.9);
        let t = |metric, limit| Threshold { metric, limit };
        let o = judge(
            &k,
            &[
                t(Metric::KldMean, 0.02),
                t(Metric::KldP99, 0.4),
                t(Metric::PplIncreasePct, 4.0),
                t(Metric::Top1Agreement, 0.9),
                t(Metric::Top1Agreement, 0.95),
            ],
        );
        let pass: Vec<bool> = o.iter().map(|o| o.pass).collect();
        assert_eq!(pass, [true, false, false, true, false]);
        assert!((o[2].value - 5.0).abs() < 1e-9);
        let v = verdict(&o);
        assert!(
            v.starts_with("FAIL: kld_p99 0.5000 > max 0.4 (--max-kld-p99)"),
            "{v}"
        );
        assert!(
            v.contains("top1_agreement 0.9000 < min 0.95 (--min-top1)"),
            "{v}"
        );
        assert!(v.ends_with("(3 of 5 thresholds failed)"), "{v}");
        assert!(verdict(&o[..1]).starts_with("PASS: kld_mean"));
        let nan = judge(
            &summary(f64::NAN, 0.0, 0.0, 1.0),
            &[t(Metric::KldMean, 1.0)],
        );
        assert!(!nan[0].pass);
    }

    #[test]
    fn numbers_and_escapes() {
        assert_eq!(num(0.000482), "4.820e-4");
        assert_eq!(num(0.0123456), "0.01235");
        assert_eq!(num(53.4532), "53.45");
        assert_eq!(num(0.0), "0");
        assert_eq!(
            xml_escape("a<b & \"c\"\u{1}"),
            "a&lt;b &amp; &quot;c&quot;\u{FFFD}"
        );
    }
}
