//! `gq sweep` on the trained fixture with two types, two chunks of 128 tokens: results.json's
//! fields agree with `gq ppl --json` on the kept files, a second run skips finished types, and
//! the plots decode as PNG and parse as SVG.

mod common;
use common::*;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn sweep(out: &Path, cache: &Path, types: &str, extra: &[&str]) -> String {
    let text = fixture("trained").join("eval.txt");
    let ckpt = fixture("trained");
    let mut args = vec![
        "sweep",
        s(&ckpt),
        "--types",
        types,
        "--text",
        s(&text),
        "--ctx",
        "128",
        "--chunks",
        "2",
        "--out",
        s(out),
        "--cache-dir",
        s(cache),
    ];
    args.extend_from_slice(extra);
    String::from_utf8_lossy(&gq_ok(&args).stdout).into_owned()
}

fn close(a: &serde_json::Value, b: &serde_json::Value, what: &str) {
    let (x, y) = (a.as_f64().unwrap(), b.as_f64().unwrap());
    assert!(
        (x - y).abs() <= 1e-12 * x.abs().max(1e-300),
        "{what}: sweep {x} vs gq ppl {y}"
    );
}

#[test]
fn sweep_results_resume_and_plots() {
    let d = tempfile::tempdir().unwrap();
    let (out, cache) = (d.path().join("sweep"), d.path().join("cache"));
    let first = sweep(&out, &cache, "Q8_0,Q2_K", &["--keep-files"]);
    assert!(
        first.contains("(2 evaluated now, 0 finished earlier)"),
        "{first}"
    );

    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(j["schema"], "gq-sweep/1");
    for f in ["ctx", "chunks", "n_tokens", "text_fnv1a64", "checkpoint"] {
        assert!(!j["settings"][f].is_null(), "settings.{f} missing");
    }
    let rows = j["results"].as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["file_type"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Q2_K", "Q8_0"], "sorted by size");
    let text = fixture("trained").join("eval.txt");
    for r in rows {
        let file = Path::new(r["file"].as_str().unwrap());
        assert_eq!(
            r["file_bytes"].as_u64().unwrap(),
            std::fs::metadata(file).unwrap().len()
        );
        let p = gq_ok(&[
            "ppl",
            s(file),
            "--baseline",
            s(&fixture("trained")),
            "--text",
            s(&text),
            "--ctx",
            "128",
            "--chunks",
            "2",
            "--cache-dir",
            s(&cache),
            "--json",
        ]);
        let p: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
        for f in [
            "ppl",
            "ppl_stderr",
            "ppl_base",
            "kld_mean",
            "kld_mean_stderr",
            "kld_median",
            "kld_p99",
            "kld_max",
            "top1_agreement",
            "rms_dp",
            "bpw",
        ] {
            close(&r[f], &p[f], f);
        }
        assert_eq!(r["n_weights"], p["n_weights"]);
        assert_eq!(j["settings"]["n_tokens"], p["n_tokens"]);
        let ratio = r["ppl"].as_f64().unwrap() / r["ppl_base"].as_f64().unwrap();
        assert!((r["ppl_increase_pct"].as_f64().unwrap() - 100.0 * (ratio - 1.0)).abs() < 1e-9);
        let drift = r["drift"].as_array().unwrap();
        assert_eq!(drift.len(), 16);
        let n: u64 = drift.iter().map(|b| b["n"].as_u64().unwrap()).sum();
        assert_eq!(Some(n), p["n_tokens"].as_u64());
    }
    let (q2, q8) = (&rows[0], &rows[1]);
    assert!(q2["kld_mean"].as_f64() > q8["kld_mean"].as_f64());

    // A second run: the finished types are skipped (their files stay byte-identical, timings
    // included), the new one is run and its file removed.
    let before = std::fs::read(out.join("types/Q8_0.json")).unwrap();
    let second = sweep(&out, &cache, "Q8_0,Q4_K_S,Q2_K", &[]);
    assert!(
        second.contains("(1 evaluated now, 2 finished earlier)"),
        "{second}"
    );
    assert_eq!(before, std::fs::read(out.join("types/Q8_0.json")).unwrap());
    assert!(!out.join("trained-Q4_K_S.gguf").exists());
    let j2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(j2["results"].as_array().unwrap().len(), 3);
    for stem in ["rate_distortion", "ppl", "kld_by_position"] {
        let png = std::fs::File::open(out.join(format!("{stem}.png"))).unwrap();
        let mut r = png::Decoder::new(std::io::BufReader::new(png))
            .read_info()
            .unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (1200, 760));
        let px = &buf[..info.buffer_size()];
        let colours: std::collections::HashSet<&[u8]> = px.chunks(3).collect();
        assert!(colours.len() > 20, "{stem}.png looks blank");
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let texts: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or("").to_string())
            .collect();
        assert!(
            texts.iter().any(|t| t.contains("Q8_0")),
            "{stem}: {texts:?}"
        );
        assert!(
            texts.iter().any(|t| t.contains("Q4_K_S")),
            "{stem}: {texts:?}"
        );
    }
    // Other settings: nothing is reused.
    let third = sweep(
        &d.path().join("sweep"),
        &cache,
        "Q8_0",
        &["--drift-buckets", "4"],
    );
    assert!(
        third.contains("(1 evaluated now, 0 finished earlier)"),
        "{third}"
    );
}
