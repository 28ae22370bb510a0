//! `gq check`: Q8_0 passes against the checkpoint, Q2_K fails thresholds that Q8_0 meets (exit 1,
//! the verdict and the JUnit failures name the metric), bad input exits 2. The JUnit files are
//! read with an XML parser (roxmltree). Two chunks of 128 tokens keep it short.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const CTX: &str = "128";
const CHUNKS: &str = "2";

/// The trained fixture as Q8_0 and Q2_K files, made once per test binary, and a cache dir.
fn files() -> &'static (tempfile::TempDir, PathBuf, PathBuf) {
    static F: OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> = OnceLock::new();
    F.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let q8 = gq_convert(&fixture("trained"), "q8_0", d.path());
        let q2 = gq_convert(&fixture("trained"), "q2_k", d.path());
        (d, q8, q2)
    })
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `gq check MODEL --baseline trained` with the test's text, context, chunks and cache, plus
/// `extra`.
fn check(model: &Path, extra: &[&str]) -> std::process::Output {
    let (d, _, _) = files();
    let cache = d.path().join("cache");
    let text = fixture("trained").join("eval.txt");
    let base = fixture("trained");
    let mut args = vec![
        "check",
        s(model),
        "--baseline",
        s(&base),
        "--text",
        s(&text),
        "--ctx",
        CTX,
        "--chunks",
        CHUNKS,
        "--cache-dir",
        s(&cache),
    ];
    args.extend_from_slice(extra);
    gq(&args)
}

/// The JUnit file's test cases: (name, failure message if failed), after checking the counts
/// the root and the suite declare against the cases themselves.
fn junit_cases(path: &Path) -> Vec<(String, Option<String>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 1);
    let cases: Vec<(String, Option<String>)> = suites[0]
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|c| {
            let f = c
                .children()
                .find(|n| n.has_tag_name("failure") || n.has_tag_name("error"));
            (
                c.attribute("name").unwrap().to_string(),
                f.map(|f| f.attribute("message").unwrap().to_string()),
            )
        })
        .collect();
    let failed = cases.iter().filter(|c| c.1.is_some()).count();
    for node in [root, suites[0]] {
        assert_eq!(node.attribute("tests").unwrap(), cases.len().to_string());
        let declared: usize = node
            .attribute("failures")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            + node.attribute("errors").unwrap().parse::<usize>().unwrap();
        assert_eq!(declared, failed);
    }
    cases
}

#[test]
fn q8_0_passes_against_the_checkpoint() {
    let (d, q8, _) = files();
    let junit = d.path().join("q8.xml");
    let o = check(
        q8,
        &[
            "--max-kld",
            "0.01",
            "--max-kld-p99",
            "0.05",
            "--max-ppl-increase",
            "2%",
            "--min-top1",
            "0.9",
            "--junit",
            s(&junit),
            "--json",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["pass"], true);
    assert!(j["kld_mean"].as_f64().unwrap() < 0.01, "{j}");
    assert!(
        err.lines().any(|l| l.starts_with("PASS: kld_mean")),
        "{err}"
    );
    let cases = junit_cases(&junit);
    assert_eq!(cases.len(), 4);
    assert!(cases.iter().all(|c| c.1.is_none()), "{cases:?}");
}

#[test]
fn q2_k_fails_a_threshold_q8_0_meets() {
    let (d, _, q2) = files();
    let junit = d.path().join("q2.xml");
    let o = check(
        q2,
        &[
            "--max-kld",
            "0.01",
            "--min-top1",
            "0.9",
            "--max-ppl-increase",
            "1000",
            "--junit",
            s(&junit),
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let verdict: Vec<&str> = out.lines().collect();
    assert_eq!(verdict.len(), 1, "{out}");
    assert!(verdict[0].starts_with("FAIL: kld_mean "), "{out}");
    assert!(verdict[0].contains("> max 0.01 (--max-kld)"), "{out}");
    assert!(verdict[0].contains("top1_agreement "), "{out}");
    assert!(!verdict[0].contains("ppl_increase_pct"), "{out}");

    // The value in the verdict is gq ppl's for the same file, text and chunks.
    let text = fixture("trained").join("eval.txt");
    let cache = d.path().join("cache");
    let p = gq_ok(&[
        "ppl",
        s(q2),
        "--baseline",
        s(&fixture("trained")),
        "--text",
        s(&text),
        "--ctx",
        CTX,
        "--chunks",
        CHUNKS,
        "--cache-dir",
        s(&cache),
        "--json",
    ]);
    let p: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
    let kld = p["kld_mean"].as_f64().unwrap();
    assert!(kld > 0.01, "Q2_K's KLD {kld} should exceed the limit");
    let shown: f64 = verdict[0]
        .strip_prefix("FAIL: kld_mean ")
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((shown - kld).abs() <= 1e-3 * kld, "{shown} vs {kld}");

    let cases = junit_cases(&junit);
    assert_eq!(cases.len(), 3);
    let failed: Vec<&(String, Option<String>)> = cases.iter().filter(|c| c.1.is_some()).collect();
    assert_eq!(failed.len(), 2, "{cases:?}");
    assert!(failed[0].0.starts_with("kld_mean <= 0.01"), "{cases:?}");
    assert!(failed[0].1.as_ref().unwrap().contains("--max-kld"));
    assert!(failed[1].1.as_ref().unwrap().starts_with("top1_agreement "));
}

#[test]
fn bad_input_exits_2() {
    let (d, q8, _) = files();
    let missing = d.path().join("missing.gguf");
    let junit = d.path().join("bad.xml");
    let o = check(&missing, &["--max-kld", "0.1", "--junit", s(&junit)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.gguf"));
    let cases = junit_cases(&junit);
    assert_eq!(cases.len(), 1);
    assert!(cases[0].1.as_ref().unwrap().contains("missing.gguf"));

    let o = gq(&[
        "check",
        s(q8),
        "--baseline",
        s(&fixture("trained")),
        "--text",
        s(&d.path().join("no-text.txt")),
        "--max-kld",
        "0.1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-text.txt"));
    // Usage errors: no threshold, a top-1 limit that is not a fraction.
    assert_eq!(check(q8, &[]).status.code(), Some(2));
    assert_eq!(check(q8, &["--min-top1", "95"]).status.code(), Some(2));
}
