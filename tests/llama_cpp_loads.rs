//! llama.cpp (built from source, scripts/get_peers.sh) loads every gq output and computes the same
//! perplexity on it as on the converter's file.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// Runs llama-perplexity and returns its per-chunk running PPL line and final estimate.
///
/// llama.cpp's logger is asynchronous and can drop the last lines at exit (common/log.cpp warns
/// about it): when the "Final estimate" line is missing from a successful run, it is run again,
/// at most three times.
fn perplexity(model: &Path, text: &Path) -> (String, String) {
    let mut last = String::new();
    for _ in 0..3 {
        let o = Command::new(llama_tool("llama-perplexity"))
            .args([
                "-m",
                model.to_str().unwrap(),
                "-f",
                text.to_str().unwrap(),
                "-c",
                "128",
                "-b",
                "128",
                "-t",
                "2",
            ])
            .output()
            .unwrap();
        let log =
            String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "llama-perplexity failed on {}:\n{log}",
            model.display()
        );
        let chunks = log
            .lines()
            .find(|l| l.starts_with("[1]"))
            .map(str::to_string);
        let fin = log
            .lines()
            .find_map(|l| l.split("Final estimate: ").nth(1))
            .map(str::to_string);
        if let (Some(c), Some(f)) = (chunks, fin) {
            return (c.trim().to_string(), f.trim().to_string());
        }
        last = log;
    }
    panic!(
        "no final perplexity from llama-perplexity for {} in 3 runs:\n{last}",
        model.display()
    );
}

#[test]
fn llama_perplexity_same_on_gq_and_converter_files() {
    let dir = tempfile::tempdir().unwrap();
    // A short public-domain text: the opening of Hamlet (Project Gutenberg).
    let text = fixture("tokenizer-512").join("sample.txt");
    for name in ["dense", "e2b", "moe"] {
        for ty in ["f32", "f16", "bf16", "q8_0"] {
            let ours = dir.path().join(format!("{name}-{ty}.gguf"));
            gq_ok(&[
                "quantize",
                fixture(name).to_str().unwrap(),
                "-o",
                ours.to_str().unwrap(),
                "--type",
                ty,
                "-q",
            ]);
            let reference = fixture(&format!("{name}.ref")).join(format!("convert-{ty}.gguf"));
            let (a, b) = (perplexity(&ours, &text), perplexity(&reference, &text));
            eprintln!("{name} {ty}: gq {} | converter {}", a.1, b.1);
            assert!(a.1.starts_with("PPL = "), "{}", a.1);
            assert_eq!(
                a, b,
                "{name} {ty}: llama-perplexity differs between gq's and the converter's file"
            );
        }
    }
}
