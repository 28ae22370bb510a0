//! A config.json describing Gemma 4 26B-A4B produces, through gq's metadata code, every
//! `gemma4.*` key, value type and value of llama.cpp's `models/ggml-vocab-gemma-4.gguf`, which
//! llama.cpp's converter wrote from the real checkpoint.

mod common;
use common::*;
use gq::gemma4::FileType;
use gq::gemma4::{metadata, TextConfig};
use gq::gguf::{GgufWriter, Metadata};

#[test]
fn gemma4_keys_of_26b_a4b_match_llama_cpp_vocab_file() {
    let cfg = TextConfig::load(&fixture("configs/gemma-4-26b-a4b")).unwrap();
    let mut meta = Metadata::new();
    metadata::general(&mut meta, "gemma-4-26b-a4b", None);
    metadata::hparams(&mut meta, &cfg, FileType::MOSTLY_F16);
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("meta.gguf");
    let f = std::fs::File::create(&ours).unwrap();
    GgufWriter::new(f, &meta, vec![]).unwrap().finish().unwrap();
    let reference = llama_src().join("models/ggml-vocab-gemma-4.gguf");
    let o = python(
        "compare_gguf.py",
        &[&ours, &reference],
        &["--only-prefix", "gemma4."],
    );
    assert_py_ok(
        &o,
        "gq's gemma4.* keys differ from llama.cpp's 26B-A4B metadata",
    );
    // The comparison must have covered the whole key set, not an empty one.
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("23 reference keys"), "{text}");
}
