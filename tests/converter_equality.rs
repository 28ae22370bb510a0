//! gq's GGUF equals llama.cpp's convert_hf_to_gguf.py output (committed beside each fixture) for
//! every fixture and type: same keys, value types and values (but general.name), same tensors,
//! shapes, types and bytes — checked with gguf-py as an independent reader.

mod common;
use common::*;

/// Keys gq deliberately writes differently: general.name is the checkpoint directory's name
/// verbatim, where the converter title-cases it through gguf-py's naming heuristics
/// (docs/compatibility.md).
const IGNORED: [&str; 2] = ["--ignore-key", "general.name"];

fn check(fixture_name: &str) {
    let out = tempfile::tempdir().unwrap();
    for ty in ["f32", "f16", "bf16", "q8_0"] {
        let ours = out.path().join(format!("{fixture_name}-{ty}.gguf"));
        gq_ok(&[
            "quantize",
            fixture(fixture_name).to_str().unwrap(),
            "-o",
            ours.to_str().unwrap(),
            "--type",
            ty,
            "-q",
        ]);
        let reference = fixture(&format!("{fixture_name}.ref")).join(format!("convert-{ty}.gguf"));
        assert_no_differences(
            "compare_gguf.py",
            &[&ours, &reference],
            &IGNORED,
            &format!("{fixture_name} {ty}: gq differs from convert_hf_to_gguf.py"),
        );
    }
}

#[test]
fn dense_31b_like_matches_converter() {
    check("dense");
}

#[test]
fn e2b_like_matches_converter() {
    check("e2b");
}

#[test]
fn moe_26b_a4b_like_matches_converter() {
    check("moe");
}
