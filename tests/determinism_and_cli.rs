//! Output bytes do not depend on the thread count; `gq inspect` agrees with gguf-py; `--dry-run`
//! writes nothing.

mod common;
use common::*;

/// Every type gq writes, from a checkpoint whose big tensors span several work chunks (so the
/// threads really split tensors): `--threads 1`, `2`, `4` and a second `4` run give the same bytes.
#[test]
fn same_bytes_for_any_thread_count_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    // 2048 × 512 embedding (4 work chunks of CHUNK_ELEMENTS = 2^18) and 1024 × 512 FFN matrices
    // (2 chunks).
    make_synthetic(
        &ckpt,
        &[
            "--layers",
            "2",
            "--hidden",
            "512",
            "--ff",
            "1024",
            "--heads",
            "2",
            "--head-dim",
            "64",
        ],
    );
    for ft in gq::gemma4::FileType::ALL {
        let ty = ft.name();
        let mut first: Option<Vec<u8>> = None;
        for (run, threads) in ["1", "2", "4", "4"].into_iter().enumerate() {
            let out = dir.path().join(format!("{ty}-{run}.gguf"));
            gq_ok(&[
                "quantize",
                ckpt.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--type",
                ty,
                "--threads",
                threads,
                "-q",
            ]);
            let bytes = std::fs::read(&out).unwrap();
            std::fs::remove_file(&out).unwrap();
            match &first {
                None => first = Some(bytes),
                Some(f) => assert!(
                    *f == bytes,
                    "{ty}: run {run} (--threads {threads}) differs from --threads 1"
                ),
            }
        }
    }
}

#[test]
fn inspect_json_matches_gguf_py() {
    let file = fixture("moe.ref").join("convert-q8_0.gguf");
    let o = gq_ok(&["inspect", file.to_str().unwrap(), "--json"]);
    let ours: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let py = python("gguf_table.py", &[&file], &[]);
    assert_py_ok(&py, "gguf_table.py");
    let theirs: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    let ours_t: Vec<serde_json::Value> = ours["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| serde_json::json!([t["name"], t["type"], t["shape"], t["offset"], t["bytes"]]))
        .collect();
    assert_eq!(serde_json::Value::Array(ours_t), theirs["tensors"]);
    let keys: Vec<&String> = ours["metadata"].as_object().unwrap().keys().collect();
    let want: Vec<String> = serde_json::from_value(theirs["keys"].clone()).unwrap();
    assert_eq!(keys, want.iter().collect::<Vec<_>>());
    // And the human-readable form lists every tensor.
    let text = String::from_utf8(gq_ok(&["inspect", file.to_str().unwrap()]).stdout).unwrap();
    assert!(
        text.contains("blk.1.ffn_gate_up_exps.weight") && text.contains("46 tensors"),
        "{text}"
    );
}

/// `gq inspect` opens files of types gq does not write (the whole type table is known), and
/// reads their tensor tables as gguf-py does.
#[test]
fn inspect_reads_types_gq_does_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("dense.ref").join("convert-bf16.gguf");
    for ty in [
        "IQ4_XS",
        "IQ4_NL",
        "IQ3_S",
        "TQ1_0",
        "TQ2_0",
        "Q1_0",
        "MXFP4_MOE",
    ] {
        let file = dir.path().join(format!("{ty}.gguf"));
        llama_quantize(&src, &file, ty, None);
        let o = gq_ok(&["inspect", file.to_str().unwrap(), "--json"]);
        let ours: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let py = python("gguf_table.py", &[&file], &[]);
        assert_py_ok(&py, "gguf_table.py");
        let theirs: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
        let ours_t: Vec<serde_json::Value> = ours["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| serde_json::json!([t["name"], t["type"], t["shape"], t["offset"], t["bytes"]]))
            .collect();
        assert_eq!(serde_json::Value::Array(ours_t), theirs["tensors"], "{ty}");
        let want = ty.trim_end_matches("_MOE");
        assert!(
            ours["tensors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["type"] == want),
            "{ty}: no {want} tensor in {}",
            file.display()
        );
    }
}

#[test]
fn dry_run_prints_plan_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.gguf");
    let o = gq_ok(&[
        "quantize",
        fixture("e2b").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        "Q8_0",
        "--dry-run",
    ]);
    let text = String::from_utf8(o.stdout).unwrap();
    // PLE projection rows of 16 are not a multiple of Q8_0's 32: F16, as the converter does.
    assert!(
        text.contains("blk.0.proj.weight") && text.contains("F16"),
        "{text}"
    );
    assert!(
        text.contains("skipped") && text.contains("vision/audio"),
        "{text}"
    );
    assert!(!out.exists());
}

#[test]
fn unknown_type_is_refused() {
    let o = gq(&[
        "quantize",
        fixture("moe").to_str().unwrap(),
        "-o",
        "/tmp/never.gguf",
        "--type",
        "Q9_9",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown --type \"Q9_9\""));
}

#[test]
fn bench_quantize_runs_both_tools_and_finds_identical_tensors() {
    llama_tool("llama-quantize");
    let work = tempfile::tempdir().unwrap();
    let o = gq_ok(&[
        "bench",
        "quantize",
        fixture("dense").to_str().unwrap(),
        "--type",
        "Q4_K_M",
        "--json",
        "--work-dir",
        work.path().to_str().unwrap(),
    ]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["identical_tensors"], true, "{r}");
    assert!(
        r["gq_seconds"].as_f64().unwrap() > 0.0
            && r["llama_quantize_seconds"].as_f64().unwrap() > 0.0
    );
}
