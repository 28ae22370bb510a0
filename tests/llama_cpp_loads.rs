//! llama.cpp (built from source, scripts/get_peers.sh) loads every gq output and computes the same
//! perplexity on it as on the converter's file.

mod common;
use common::*;

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
            let (a, b) = (
                llama_perplexity(&ours, &text, 128),
                llama_perplexity(&reference, &text, 128),
            );
            eprintln!("{name} {ty}: PPL gq {a} | converter {b}");
            assert!(a.parse::<f64>().unwrap() > 1.0, "{a}");
            assert_eq!(
                a, b,
                "{name} {ty}: llama-perplexity differs between gq's and the converter's file"
            );
        }
    }
}
