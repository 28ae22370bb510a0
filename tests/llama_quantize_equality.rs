//! gq's llama.cpp file types equal what llama.cpp's `llama-quantize` (built from source) makes from
//! the converter's BF16 (or F32) GGUF of the same checkpoint: same keys and values (but
//! general.name), same per-tensor types, identical tensor bytes; also with an importance matrix
//! made by `llama-imatrix`, with type overrides, and in failure cases.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const TYPES: [&str; 13] = [
    "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M", "Q4_K_S", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "Q4_0",
    "Q4_1", "Q5_0", "Q5_1",
];

/// Runs llama-quantize with extra arguments (2 threads), panicking with its log on failure.
fn llama_quantize(input: &Path, output: &Path, ty: &str, extra: &[&str]) {
    let o = Command::new(llama_tool("llama-quantize"))
        .args(extra)
        .arg(input)
        .arg(output)
        .args([ty, "2"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "llama-quantize {ty} {extra:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The converter's GGUF in the checkpoint's own float type: llama-quantize's input.
fn converter_input(name: &str, work: &Path) -> PathBuf {
    match name {
        "e2b" => fixture("e2b.ref").join("convert-f32.gguf"),
        "trained" => {
            // The converter's BF16 of the trained model is stored as a gguf-py manifest; gq's BF16
            // is checked against it here first, then used as llama-quantize's input.
            let out = gq_convert(&fixture("trained"), "bf16", work);
            let manifest = fixture("trained.ref").join("convert-bf16.manifest.json");
            assert_no_differences(
                "gguf_manifest.py",
                &[Path::new("check"), &out, &manifest],
                &["--ignore-key", "general.name"],
                "gq BF16 of the trained fixture vs the converter's manifest",
            );
            out
        }
        n => fixture(&format!("{n}.ref")).join("convert-bf16.gguf"),
    }
}

/// Quantizes with gq and llama-quantize and compares the files; returns the comparison's lines.
fn compare(
    name: &str,
    input: &Path,
    work: &Path,
    ty: &str,
    gq_extra: &[&str],
    lq_extra: &[&str],
) -> Vec<String> {
    let tag = format!("{name}-{ty}-{}", gq_extra.len());
    let ours = work.join(format!("gq-{tag}.gguf"));
    let theirs = work.join(format!("lq-{tag}.gguf"));
    let src = fixture(name);
    let mut args = vec![
        "quantize",
        src.to_str().unwrap(),
        "-o",
        ours.to_str().unwrap(),
        "--type",
        ty,
        "-q",
    ];
    args.extend_from_slice(gq_extra);
    gq_ok(&args);
    llama_quantize(input, &theirs, ty, lq_extra);
    let (lines, _) = python_compare(
        "compare_gguf.py",
        &[&ours, &theirs],
        &["--ignore-key", "general.name"],
    );
    if name == "trained" && ty != "Q8_0" {
        // llama-quantize's input is gq's own BF16 here, so even general.name agrees: the whole
        // files, key order and tensor order included, must be the same bytes.
        assert!(
            std::fs::read(&ours).unwrap() == std::fs::read(&theirs).unwrap(),
            "{name} {ty} {gq_extra:?}: files differ"
        );
    }
    eprintln!(
        "{name} {ty} {gq_extra:?}: {}",
        lines.last().cloned().unwrap_or_default()
    );
    lines
}

fn all_types_match(name: &str) {
    let work = tempfile::tempdir().unwrap();
    let input = converter_input(name, work.path());
    for ty in TYPES {
        let lines = compare(name, &input, work.path(), ty, &[], &[]);
        assert!(
            lines.last().unwrap().ends_with(" 0 differences"),
            "{name} {ty}:\n{}",
            lines.join("\n")
        );
    }
    // Q8_0: gq --type Q8_0 is the converter's --outtype q8_0 (tests/converter_equality.rs). It
    // differs from llama-quantize's Q8_0 in exactly one place: llama-quantize leaves
    // per_layer_model_proj in the input's float type, the converter quantizes it.
    let lines = compare(name, &input, work.path(), "Q8_0", &[], &[]);
    let diffs: Vec<&String> = lines
        .iter()
        .filter(|l| !l.contains(" differences"))
        .collect();
    for d in &diffs {
        assert!(
            d.starts_with("tensor per_layer_model_proj.weight: type Q8_0 != reference"),
            "{name} Q8_0: {d}"
        );
    }
}

#[test]
fn dense_all_types_match_llama_quantize() {
    all_types_match("dense");
}

#[test]
fn e2b_all_types_match_llama_quantize() {
    all_types_match("e2b");
}

#[test]
fn moe_all_types_match_llama_quantize() {
    all_types_match("moe");
}

#[test]
fn trained_all_types_match_llama_quantize() {
    all_types_match("trained");
}

/// Makes an importance matrix with llama.cpp's llama-imatrix on the trained model's held-out text.
fn make_imatrix(model: &Path, out: &Path, format: &str) {
    let o = Command::new(llama_tool("llama-imatrix"))
        .args([
            "-m",
            model.to_str().unwrap(),
            "-f",
            fixture("trained").join("eval.txt").to_str().unwrap(),
        ])
        .args([
            "-c",
            "512",
            "--chunks",
            "6",
            "-t",
            "2",
            "--output-format",
            format,
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "llama-imatrix: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn imatrix_gguf_and_legacy_match_llama_quantize() {
    let work = tempfile::tempdir().unwrap();
    let input = converter_input("trained", work.path());
    for format in ["gguf", "dat"] {
        let m = work.path().join(format!("imatrix.{format}"));
        make_imatrix(&input, &m, format);
        let m = m.to_str().unwrap();
        for ty in TYPES {
            let lines = compare(
                "trained",
                &input,
                work.path(),
                ty,
                &["--imatrix", m],
                &["--imatrix", m],
            );
            assert!(
                lines.last().unwrap().ends_with(" 0 differences"),
                "{format} {ty}:\n{}",
                lines.join("\n")
            );
        }
    }
}

#[test]
fn type_overrides_match_llama_quantize() {
    let work = tempfile::tempdir().unwrap();
    let input = converter_input("trained", work.path());
    let over = [
        "--tensor-type",
        "attn_v=q8_0",
        "--tensor-type",
        "blk\\.1\\.ffn_down=Q4_0",
        "--token-embedding-type",
        "q4_k",
        "--output-tensor-type",
        "q5_k",
    ];
    let lines = compare("trained", &input, work.path(), "Q4_K_M", &over, &over);
    assert!(
        lines.last().unwrap().ends_with(" 0 differences"),
        "{}",
        lines.join("\n")
    );
    let pure = compare(
        "dense",
        &fixture("dense.ref").join("convert-bf16.gguf"),
        work.path(),
        "Q3_K_M",
        &["--pure"],
        &["--pure"],
    );
    assert!(
        pure.last().unwrap().ends_with(" 0 differences"),
        "{}",
        pure.join("\n")
    );
}

#[test]
fn nan_weights_fail_in_both_tools() {
    // A BF16 GGUF with a NaN weight: gq writes it (warning), llama-quantize and gq both refuse to
    // quantize it to Q4_K_M.
    let (_t, d) = copy_fixture("moe");
    let f = d.join("model.safetensors");
    let mut b = std::fs::read(&f).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let h: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    let start = h["model.layers.0.mlp.up_proj.weight"]["data_offsets"][0]
        .as_u64()
        .unwrap() as usize;
    b[8 + n + start..8 + n + start + 2].copy_from_slice(&0x7fc0u16.to_le_bytes());
    std::fs::write(&f, b).unwrap();
    let work = tempfile::tempdir().unwrap();
    let bf16 = work.path().join("nan-bf16.gguf");
    gq_ok(&[
        "quantize",
        d.to_str().unwrap(),
        "-o",
        bf16.to_str().unwrap(),
        "--type",
        "bf16",
        "-q",
    ]);
    let o = Command::new(llama_tool("llama-quantize"))
        .args([
            bf16.to_str().unwrap(),
            work.path().join("lq.gguf").to_str().unwrap(),
            "Q4_K_M",
            "2",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success(), "llama-quantize accepted NaN weights");
    let ours = work.path().join("gq.gguf");
    let o = gq(&[
        "quantize",
        d.to_str().unwrap(),
        "-o",
        ours.to_str().unwrap(),
        "--type",
        "Q4_K_M",
    ]);
    assert!(!o.status.success() && !ours.exists());
    assert!(String::from_utf8_lossy(&o.stderr).contains("blk.0.ffn_up.weight"));
}

#[test]
fn twelve_layer_model_visits_layers_like_llama_quantize() {
    // With 10 or more layers, llama-quantize's counters ("use more bits" layers) follow its
    // numeric layer order, not name order: a 12-layer checkpoint from scripts/make_synthetic.py.
    let work = tempfile::tempdir().unwrap();
    let ckpt = work.path().join("synthetic-12");
    make_synthetic(
        &ckpt,
        &[
            "--layers",
            "12",
            "--hidden",
            "256",
            "--ff",
            "256",
            "--heads",
            "2",
            "--head-dim",
            "64",
        ],
    );
    let bf16 = work.path().join("synthetic-bf16.gguf");
    gq_ok(&[
        "quantize",
        ckpt.to_str().unwrap(),
        "-o",
        bf16.to_str().unwrap(),
        "--type",
        "bf16",
        "-q",
    ]);
    for ty in ["Q4_K_M", "Q5_K_M", "Q3_K_M", "Q4_K_S", "Q2_K"] {
        let ours = work.path().join(format!("gq-{ty}.gguf"));
        let theirs = work.path().join(format!("lq-{ty}.gguf"));
        gq_ok(&[
            "quantize",
            ckpt.to_str().unwrap(),
            "-o",
            ours.to_str().unwrap(),
            "--type",
            ty,
            "-q",
        ]);
        llama_quantize(&bf16, &theirs, ty, &[]);
        assert_no_differences(
            "compare_gguf.py",
            &[&ours, &theirs],
            &[],
            &format!("12-layer synthetic {ty}"),
        );
    }
}
