//! gq's TurboQuant types on the trained fixture (docs/turboquant.md §14): the ~4.5-bit type's
//! weight error against Q4_K's on every linear tensor, the same bytes for any thread count (and
//! with or without `--report`, which encodes whole chunks instead of pieces), and
//! the runner evaluating TQ files. The formats' own properties (codebooks, MSE against theory,
//! QJL unbiasedness, rotation, test vectors) are tested in kernels/src/formats/tq*.rs.
//!
//! Q4_K's errors come from gq's Q4_K files, which are byte-identical to llama-quantize's
//! (tests/llama_quantize_equality.rs), with `--report` errors equal to gguf-py's dequantizer
//! (tests/report.rs).

mod common;
use common::*;
use std::collections::HashMap;
use std::path::Path;

/// `gq quantize --report` of the trained fixture: name → (type, relative MSE).
fn report(dir: &Path, ty: &str, extra: &[&str]) -> HashMap<String, (String, f64)> {
    let out = dir.join(format!("{ty}.gguf"));
    let rep = dir.join(format!("{ty}.json"));
    let src = fixture("trained");
    let mut args = vec![
        "quantize",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        ty,
        "--report",
        rep.to_str().unwrap(),
        "-q",
    ];
    args.extend(extra);
    gq_ok(&args);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rep).unwrap()).unwrap();
    v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                (
                    t["type"].as_str().unwrap().to_string(),
                    t["rel_mse"].as_f64().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn tqt4_5_weight_error_is_below_q4_k_on_every_linear_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let q4 = report(dir.path(), "Q4_K_M", &["--pure"]);
    let tq = report(dir.path(), "TQT4_5", &[]);
    let (mut n, mut e_q4, mut e_tq) = (0, 0.0, 0.0);
    for (name, (ty, q4_mse)) in &q4 {
        if ty != "Q4_K" {
            continue;
        }
        let (tq_ty, tq_mse) = &tq[name];
        assert_eq!(tq_ty, "TQT4_5", "{name}");
        assert!(
            tq_mse < q4_mse,
            "{name}: TQT4_5 relative MSE {tq_mse:.6} >= Q4_K {q4_mse:.6}"
        );
        n += 1;
        e_q4 += q4_mse;
        e_tq += tq_mse;
    }
    // 6 layers × 9 matrices less one attn_v (a layer without v_proj), token_embd,
    // per_layer_token_embd (per_layer_model_proj stays BF16 in both, as llama-quantize keeps it).
    assert_eq!(n, 55, "linear tensors compared");
    eprintln!(
        "{n} tensors: mean relative MSE TQT4_5 {:.5}, Q4_K {:.5}",
        e_tq / n as f64,
        e_q4 / n as f64
    );
}

#[test]
fn tq_files_have_the_same_bytes_for_any_thread_count_and_run_in_gq_ppl() {
    let dir = tempfile::tempdir().unwrap();
    let trained = fixture("trained");
    let mut made = HashMap::new();
    for ty in ["TQT4_5_M", "TQT2_5", "TQJ3_375", "TQP3_4375"] {
        let mut files = Vec::new();
        for threads in ["1", "2"] {
            let out = dir.path().join(format!("{ty}-{threads}.gguf"));
            gq_ok(&[
                "quantize",
                trained.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--type",
                ty,
                "--threads",
                threads,
                "-q",
            ]);
            files.push(std::fs::read(&out).unwrap());
            made.insert(ty, out);
        }
        assert!(files[0] == files[1], "{ty}: --threads 1 and 2 differ");
        // With --report a chunk is encoded in one call; without, a piece of rows at a time
        // (src/pipeline.rs, convert_tq_pieces): the same bytes.
        let out = dir.path().join(format!("{ty}-report.gguf"));
        let rep = dir.path().join(format!("{ty}-report.json"));
        gq_ok(&[
            "quantize",
            trained.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--type",
            ty,
            "--report",
            rep.to_str().unwrap(),
            "-q",
        ]);
        assert!(
            std::fs::read(&out).unwrap() == files[0],
            "{ty}: the pieces' bytes differ from the whole chunks'"
        );
    }
    // The runner evaluates TQ files: the same numbers for any thread count, and KLDs against
    // the BF16 model ordered by bits (a wrong rotation or table gives KLDs of order 1).
    let bf16 = gq_convert(&trained, "bf16", dir.path());
    let text = trained.join("eval.txt");
    let ppl = |model: &Path, threads: &str| -> serde_json::Value {
        let o = gq_ok(&[
            "ppl",
            model.to_str().unwrap(),
            "--text",
            text.to_str().unwrap(),
            "--chunks",
            "2",
            "--baseline",
            bf16.to_str().unwrap(),
            "--no-cache",
            "--threads",
            threads,
            "--json",
        ]);
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let a = ppl(&made["TQT4_5_M"], "1");
    let b = ppl(&made["TQT4_5_M"], "2");
    for k in ["ppl", "kld_mean", "kld_p99", "top1_agreement"] {
        assert_eq!(a[k], b[k], "TQT4_5_M: {k} depends on the thread count");
    }
    let lo = ppl(&made["TQT2_5"], "2");
    let (k45, k25) = (
        a["kld_mean"].as_f64().unwrap(),
        lo["kld_mean"].as_f64().unwrap(),
    );
    eprintln!("2 chunks: KLD TQT4_5_M {k45:.5}, TQT2_5 {k25:.5}");
    assert!(
        k45 > 0.0 && k45 < 0.03,
        "TQT4_5_M KLD {k45} (Q4_K_M: 0.011)"
    );
    assert!(k25 > 2.0 * k45 && k25 < 0.3, "TQT2_5 KLD {k25}");
}
