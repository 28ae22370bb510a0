//! `gq quantize --report` and `gq inspect --report`: every tensor of a Q4_K_M file with the type
//! llama-quantize chose for it, the rule that chose it, and errors that equal an independent
//! computation with gguf-py's dequantizer.

mod common;
use common::*;
use std::collections::HashMap;

#[test]
fn q4_k_m_report_matches_llama_quantize_and_gguf_py() {
    let dir = tempfile::tempdir().unwrap();
    let trained = fixture("trained");
    // gq's BF16 of the trained fixture is byte-identical to the converter's (tests/trained_model.rs):
    // it is llama-quantize's input and the reference values.
    let bf16 = gq_convert(&trained, "bf16", dir.path());
    let ours = dir.path().join("ours.gguf");
    let report = dir.path().join("report.json");
    gq_ok(&[
        "quantize",
        trained.to_str().unwrap(),
        "-o",
        ours.to_str().unwrap(),
        "--type",
        "Q4_K_M",
        "--report",
        report.to_str().unwrap(),
        "-q",
    ]);
    let theirs = dir.path().join("theirs.gguf");
    let o = std::process::Command::new(llama_tool("llama-quantize"))
        .arg(&bf16)
        .arg(&theirs)
        .arg("Q4_K_M")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = python("gguf_table.py", &[&theirs], &[]);
    assert_py_ok(&table, "gguf_table.py");
    let table: serde_json::Value = serde_json::from_slice(&table.stdout).unwrap();
    let lq_types: HashMap<String, String> = table["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t[0].as_str().unwrap().into(), t[1].as_str().unwrap().into()))
        .collect();

    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let rows = rep["tensors"].as_array().unwrap();
    assert_eq!(rows.len(), lq_types.len(), "one row per tensor");
    let mut rules = std::collections::BTreeSet::new();
    for r in rows {
        let name = r["name"].as_str().unwrap();
        assert_eq!(
            Some(r["type"].as_str().unwrap()),
            lq_types.get(name).map(String::as_str),
            "{name}: type differs from llama-quantize's"
        );
        rules.insert(r["rule"].as_str().unwrap().to_string());
    }
    for want in [
        "base type",
        "not quantized (kept as converted)",
        "mixture: attn_v: more bits",
        "mixture: ffn_down: more bits",
        "mixture: output / tied embedding: Q6_K",
    ] {
        assert!(rules.contains(want), "no row with rule {want:?}: {rules:?}");
    }

    // A few tensors of each kind: gq's errors against gguf-py's, on llama-quantize's bytes (the
    // same bytes as gq's, tests/llama_quantize_equality.rs).
    let names = [
        "blk.0.attn_q.weight",
        "blk.2.attn_v.weight",
        "blk.3.ffn_down.weight",
        "token_embd.weight",
        "per_layer_token_embd.weight",
    ];
    let mut args: Vec<&std::path::Path> = vec![&theirs, &bf16];
    let paths: Vec<std::path::PathBuf> = names.iter().map(std::path::PathBuf::from).collect();
    args.extend(paths.iter().map(|p| p.as_path()));
    let o = python("tensor_error.py", &args, &[]);
    assert_py_ok(&o, "tensor_error.py");
    let want: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for name in names {
        let r = rows.iter().find(|r| r["name"] == name).unwrap();
        let w = &want[name];
        assert_eq!(r["type"], w["type"], "{name}");
        for k in ["rmse", "rel_mse", "max_abs_err"] {
            let (a, b) = (r[k].as_f64().unwrap(), w[k].as_f64().unwrap());
            assert!(b > 0.0, "{name} {k}: gguf-py gives {b}");
            assert!(
                (a - b).abs() <= 1e-9 * b,
                "{name} {k}: gq {a} vs gguf-py {b}"
            );
        }
    }

    // gq inspect --report on the finished file against the checkpoint gives the same report.
    let again = dir.path().join("again.json");
    gq_ok(&[
        "inspect",
        ours.to_str().unwrap(),
        "--report",
        again.to_str().unwrap(),
        "--checkpoint",
        trained.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&report).unwrap(),
        std::fs::read(&again).unwrap(),
        "inspect --report differs from quantize --report"
    );
}

#[test]
fn csv_report_has_a_row_per_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("e2b.gguf");
    let csv = dir.path().join("e2b.csv");
    gq_ok(&[
        "quantize",
        fixture("e2b").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        "Q4_K_M",
        "--report",
        csv.to_str().unwrap(),
        "-q",
    ]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "name,dims,type,rule,bits_per_weight,rmse,rel_mse,cosine,max_abs_err"
    );
    let g = gq::gguf::GgufFile::open(&out).unwrap();
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), g.tensors.len());
    // The e2b fixture's rows of 16 do not fit a k-quant block: its fallbacks are reported.
    assert!(rows.iter().any(|r| r.contains("fallback from")), "{text}");
}
