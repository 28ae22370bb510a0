//! `gq ppl` against llama-perplexity (same files, text, context and chunks), `gq generate`
//! against transformers' greedy tokens, and the baseline cache.
//!
//! The trained fixture's files come from `gq quantize` (byte-identical to the converter's and
//! llama-quantize's, tested elsewhere). Bounds (issue 11): PPL within 0.1 %; against the BF16
//! file, mean KLD within 2 % and top-1 agreement within 0.2 points of
//! `llama-perplexity --kl-divergence`. Few chunks here to keep the suite short;
//! scripts/ppl_vs_llama.py runs the whole text (docs/eval.md has its output).
//!
//! Two things the bounds account for (docs/eval.md measures both):
//! - llama.cpp multiplies BF16 weights with BF16-rounded activations; that rounding alone moves
//!   the BF16 baseline by a KLD of ~9e-6, which llama.cpp's Q8_0 KLD (2.7e-4) carries on top.
//!   The KLD comparisons run gq with `--bf16-act` (the same rounding); gq's default (exact f32
//!   activations) is 3 % below llama.cpp on Q8_0 for that reason.
//! - Two implementations of the same quantized file (gq's and llama.cpp's) disagree on the top-1
//!   token at up to 2 % of positions (their rounding differs before each Q8 activation
//!   quantization), so the top-1 agreement of a sample of n positions differs by noise of
//!   standard deviation up to 100·sqrt(0.02 / n) points: 0.31 at n = 2040. The 0.2-point bound
//!   holds on the whole text (31 110 positions, the script); here the bound is that or 3σ,
//!   whichever is larger.

mod common;
use common::*;

/// llama.cpp's default attention (flash attention on CPU) rounds Q, K and V to f16, which alone
/// moves the trained model's Q4_K_M PPL by 0.1 % over 4 chunks (41.673 vs 41.718 with f32
/// attention); gq keeps K and V in f32. The comparisons run llama.cpp's f32 attention path so
/// that the bounds measure the two implementations, not that rounding (docs/eval.md gives both).
const LLAMA_EXACT: [&str; 6] = ["-fa", "off", "-ctk", "f32", "-ctv", "f32"];
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn eval_text() -> PathBuf {
    fixture("trained").join("eval.txt")
}

/// The trained fixture as GGUF files of every type used here, made once per test binary.
fn files() -> &'static (tempfile::TempDir, Vec<(String, PathBuf)>) {
    static F: OnceLock<(tempfile::TempDir, Vec<(String, PathBuf)>)> = OnceLock::new();
    F.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let v = ["bf16", "q8_0", "q6_k", "q4_k_m", "q2_k"]
            .iter()
            .map(|t| (t.to_string(), gq_convert(&fixture("trained"), t, d.path())))
            .collect();
        (d, v)
    })
}

fn file(ty: &str) -> PathBuf {
    files().1.iter().find(|(t, _)| t == ty).unwrap().1.clone()
}

/// llama.cpp's logger writes from a thread the process does not wait for at exit, so the last
/// lines are often lost on a busy machine. A library preloaded into llama-perplexity whose
/// destructor sleeps 0.3 s gives that thread time to write (it changes nothing else). None when
/// there is no C compiler (the retries below still apply).
fn exit_shim() -> Option<&'static Path> {
    static SHIM: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
    SHIM.get_or_init(|| {
        let d = tempfile::tempdir().ok()?;
        let (src, so) = (d.path().join("w.c"), d.path().join("w.so"));
        std::fs::write(
            &src,
            "#include <unistd.h>\n__attribute__((destructor)) static void w(void) { usleep(300000); }\n",
        )
        .ok()?;
        let ok = Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&so)
            .arg(&src)
            .status()
            .ok()?
            .success();
        ok.then_some((d, so))
    })
    .as_ref()
    .map(|(_, p)| p.as_path())
}

/// Runs llama-perplexity until its log holds every pattern in `need` (at most 10 runs) and
/// returns the log.
fn llama_log(model: &Path, ctx: usize, chunks: usize, extra: &[&str], need: &[&str]) -> String {
    let c = ctx.to_string();
    let n = chunks.to_string();
    let mut last = String::new();
    for _ in 0..10 {
        let mut cmd = Command::new(llama_tool("llama-perplexity"));
        if let Some(shim) = exit_shim() {
            cmd.env("LD_PRELOAD", shim);
        }
        let o = cmd
            .args(["-m", model.to_str().unwrap()])
            .args(["-f", eval_text().to_str().unwrap()])
            .args(["-c", &c, "-b", &c, "-t", "2", "--chunks", &n])
            .args(LLAMA_EXACT)
            .args(extra)
            .output()
            .unwrap();
        let log =
            String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "llama-perplexity failed:\n{log}");
        if need.iter().all(|p| log.contains(p)) {
            return log;
        }
        last = log;
    }
    panic!("llama-perplexity lost its final lines in 10 runs:\n{last}");
}

/// The number after `label` in a llama-perplexity log.
fn after(log: &str, label: &str) -> f64 {
    let rest = log
        .split(label)
        .nth(1)
        .unwrap_or_else(|| panic!("{label:?} not in the log:\n{log}"));
    rest.trim_start_matches([' ', ':'])
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {label:?}"))
}

fn gq_ppl(model: &Path, ctx: usize, chunks: usize, extra: &[&str]) -> serde_json::Value {
    let (c, n) = (ctx.to_string(), chunks.to_string());
    let text = eval_text();
    let mut args = vec![
        "ppl",
        model.to_str().unwrap(),
        "--text",
        text.to_str().unwrap(),
    ];
    args.extend(["--ctx", c.as_str(), "--chunks", n.as_str(), "--json"]);
    args.extend(extra);
    serde_json::from_slice(&gq_ok(&args).stdout).unwrap()
}

fn f(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

#[test]
fn ppl_matches_llama_perplexity() {
    // Two implementations of a quantized file round differently before each Q8 activation
    // quantization, and a Q2_K model amplifies that: over the first 4 chunks gq and llama.cpp
    // differ by up to 0.2 % on Q2_K (and gq's own ISAs by 0.12 %), over 16 chunks by 0.016 %.
    // 16 chunks (4 080 scored tokens) keep the 0.1 % bound above that noise.
    const CHUNKS: usize = 16;
    for ty in ["bf16", "q8_0", "q6_k", "q4_k_m", "q2_k"] {
        let p = file(ty);
        let log = llama_log(&p, 512, CHUNKS, &[], &["Final estimate: PPL = "]);
        let want = after(&log, "Final estimate: PPL = ");
        let j = gq_ppl(&p, 512, CHUNKS, &["--threads", "2"]);
        let got = f(&j, "ppl");
        assert_eq!(j["n_tokens"], CHUNKS * 255);
        let rel = got / want - 1.0;
        println!(
            "{ty}: llama-perplexity {want:.4}, gq {got:.4} ({:+.4} %)",
            100.0 * rel
        );
        assert!(
            rel.abs() < 1e-3,
            "{ty}: PPL {got} vs llama-perplexity {want}"
        );
        // The uncertainty is llama-perplexity's formula on the same NLLs.
        let err = after(&log, &format!("PPL = {want:.4} +/- "));
        assert!(
            (f(&j, "ppl_stderr") / err - 1.0).abs() < 5e-3,
            "{ty}: stderr {} vs {err}",
            j["ppl_stderr"]
        );
    }
}

#[test]
fn kld_matches_llama_kl_divergence() {
    const CHUNKS: usize = 8;
    let bf16 = file("bf16");
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base.kld");
    llama_log(
        &bf16,
        512,
        CHUNKS,
        &["--kl-divergence-base", base.to_str().unwrap()],
        &["Final estimate"],
    );
    let cache = tmp.path().join("cache");
    let n = (CHUNKS * 255) as f64;
    let top1_bound = f64::max(0.2, 3.0 * 100.0 * (0.02 / n).sqrt());
    for ty in ["q8_0", "q4_k_m", "q2_k"] {
        let p = file(ty);
        let log = llama_log(
            &p,
            512,
            CHUNKS,
            &[
                "--kl-divergence-base",
                base.to_str().unwrap(),
                "--kl-divergence",
            ],
            &["Same top p"],
        );
        let (kld, top1) = (after(&log, "Mean    KLD:"), after(&log, "Same top p:"));
        let j = gq_ppl(
            &p,
            512,
            CHUNKS,
            &[
                "--baseline",
                bf16.to_str().unwrap(),
                "--cache-dir",
                cache.to_str().unwrap(),
                "--bf16-act",
            ],
        );
        let (g_kld, g_top1) = (f(&j, "kld_mean"), 100.0 * f(&j, "top1_agreement"));
        println!(
            "{ty}: KLD llama {kld:.6} gq {g_kld:.6} ({:+.2} %), top-1 llama {top1:.3} gq {g_top1:.3} %",
            100.0 * (g_kld / kld - 1.0)
        );
        assert!(
            (g_kld / kld - 1.0).abs() < 0.02,
            "{ty}: KLD {g_kld} vs llama {kld}"
        );
        assert!(
            (g_top1 - top1).abs() <= top1_bound,
            "{ty}: top-1 {g_top1} vs llama {top1} (bound {top1_bound:.2} points)"
        );
        let q_ppl = after(&log, "Mean PPL(Q)                   :");
        // PPL(Q) is compared in ppl_matches_llama_perplexity, without --bf16-act: the one BF16
        // tensor of the Q2_K file (per_layer_model_proj) with BF16-rounded input moves gq's Q2_K
        // PPL by 0.13 % here, away from llama.cpp's (docs/eval.md).
        let g_base = f(&j, "ppl_base");
        println!("{ty}: PPL(Q) llama {q_ppl:.4} gq {:.4}", f(&j, "ppl"));
        let b_ppl = after(&log, "Mean PPL(base)                :");
        assert!(
            (g_base / b_ppl - 1.0).abs() < 1e-3,
            "{ty}: baseline PPL {g_base} vs llama {b_ppl}"
        );
    }
}

#[test]
fn long_context_4096_matches_and_shows_the_drift_table() {
    // One chunk of 4096 (the trained model's maximum): 2047 scored positions, 2048 … 4094.
    let (bf16, q4) = (file("bf16"), file("q4_k_m"));
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base.kld");
    let blog = llama_log(
        &bf16,
        4096,
        1,
        &["--kl-divergence-base", base.to_str().unwrap()],
        &["Final estimate"],
    );
    let log = llama_log(
        &q4,
        4096,
        1,
        &[
            "--kl-divergence-base",
            base.to_str().unwrap(),
            "--kl-divergence",
        ],
        &["Same top p"],
    );
    let j = gq_ppl(
        &q4,
        4096,
        1,
        &[
            "--baseline",
            bf16.to_str().unwrap(),
            "--no-cache",
            "--bf16-act",
        ],
    );
    assert_eq!(j["n_tokens"], 2047);
    let ppl_base = after(&blog, "Final estimate: PPL = ");
    let ppl_q = after(&log, "Mean PPL(Q)                   :");
    let (kld, top1) = (after(&log, "Mean    KLD:"), after(&log, "Same top p:"));
    println!(
        "ctx 4096: PPL BF16 llama {ppl_base:.4} gq {:.4}; Q4_K_M llama {ppl_q:.4} gq {:.4}; \
         KLD llama {kld:.6} gq {:.6}; top-1 llama {top1:.3} gq {:.3}",
        f(&j, "ppl_base"),
        f(&j, "ppl"),
        f(&j, "kld_mean"),
        100.0 * f(&j, "top1_agreement")
    );
    assert!((f(&j, "ppl_base") / ppl_base - 1.0).abs() < 1e-3);
    // 1.5e-3, not 1e-3, for the quantized file at this length: the CPU paths of both tools
    // move it. On the AVX2-only Zen 3 (2026-11-30) llama.cpp gave 41.9796, gq's row GEMM
    // (`GQ_GEMM=rows`) 42.0081 (6.8e-4) and its tiled GEMM 42.0302 (1.2e-3), while the tiled
    // GEMM (bit-identical between the AVX2 and AVX-512 tables) passed 1e-3 against llama.cpp's
    // AVX-512 build; the KLD (2 %) and top-1 bounds below are the sharper checks.
    assert!((f(&j, "ppl") / ppl_q - 1.0).abs() < 1.5e-3);
    assert!((f(&j, "kld_mean") / kld - 1.0).abs() < 0.02);
    let top1_bound = f64::max(0.2, 3.0 * 100.0 * (0.02f64 / 2047.0).sqrt());
    assert!((100.0 * f(&j, "top1_agreement") - top1).abs() <= top1_bound);
    let drift = j["drift"].as_array().unwrap();
    assert_eq!(drift.len(), 8);
    assert_eq!(drift[0]["first_pos"], 2048);
    assert_eq!(drift[7]["last_pos"], 4094);
    let n: u64 = drift.iter().map(|b| b["n"].as_u64().unwrap()).sum();
    assert_eq!(n, 2047);
    for b in drift {
        assert!(b["kld_mean"].as_f64().unwrap() > 0.0);
        assert!(b["top1_agreement"].as_f64().unwrap() > 0.5);
    }
}

#[test]
fn cache_threads_and_exact_kld() {
    // Against the BF16 file, 2 chunks: the cache written by the first run is read by the
    // second, with the same numbers; 1 and 2 threads agree to the bit; the KLD from the cached
    // records is within the documented bound of the KLD over the whole vocabulary.
    let (bf16, q4) = (file("bf16"), file("q4_k_m"));
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("c");
    let cs = cache.to_str().unwrap();
    let b = bf16.to_str().unwrap();
    let first = gq_ppl(
        &q4,
        512,
        2,
        &["--baseline", b, "--cache-dir", cs, "--threads", "2"],
    );
    assert_eq!(first["cache"]["hit"], false);
    let names: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("base-") && names[0].ends_with(".gqbase"));
    let second = gq_ppl(
        &q4,
        512,
        2,
        &["--baseline", b, "--cache-dir", cs, "--threads", "1"],
    );
    assert_eq!(second["cache"]["hit"], true);
    for k in [
        "ppl",
        "ppl_stderr",
        "kld_mean",
        "kld_median",
        "kld_p99",
        "kld_max",
        "top1_agreement",
        "rms_dp",
        "ppl_base",
        "drift",
    ] {
        assert_eq!(
            first[k], second[k],
            "{k} differs between the run and the cached run"
        );
    }
    // The text output: the summary and the drift table, from the cache.
    let o = gq_ok(&[
        "ppl",
        q4.to_str().unwrap(),
        "--text",
        eval_text().to_str().unwrap(),
        "--chunks",
        "2",
        "--baseline",
        b,
        "--cache-dir",
        cs,
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "PPL = ",
        "KLD mean",
        "same top-1",
        "RMS Δp",
        "(read,",
        "drift along the context",
        "    256-286 ",
        "    479-510 ",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
    let exact = gq_ppl(&q4, 512, 2, &["--baseline", b, "--kld-exact"]);
    let (cached, full) = (f(&exact, "kld_mean"), f(&exact["kld"], "kld_mean_exact"));
    assert_eq!(cached, f(&first, "kld_mean"));
    let rel = cached / full - 1.0;
    println!("KLD from records {cached:.6}, over the whole vocabulary {full:.6} ({rel:+.4})");
    // Records leave at most 1e-3 of the baseline's mass unlisted; measured shortfall ≈ 1.5e-3.
    assert!((-5e-3..=0.0).contains(&rel), "{rel}");
    // A cache file for another text is not taken.
    let other = tmp.path().join("other.txt");
    let mut text = std::fs::read_to_string(eval_text()).unwrap();
    text.insert_str(0, "A different start. ");
    std::fs::write(&other, text).unwrap();
    let o = gq_ok(&[
        "ppl",
        q4.to_str().unwrap(),
        "--text",
        other.to_str().unwrap(),
        "--chunks",
        "2",
        "--baseline",
        b,
        "--cache-dir",
        cs,
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["cache"]["hit"], false);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
}

#[test]
fn ppl_json_is_the_same_for_one_and_two_threads() {
    // Model and baseline both evaluated (no cache) with 1 and then 2 threads: every field of
    // the JSON but the wall time and the peak RSS is identical.
    let (bf16, q4) = (file("bf16"), file("q4_k_m"));
    let b = bf16.to_str().unwrap();
    let run = |t: &str| {
        let mut j = gq_ppl(
            &q4,
            512,
            2,
            &["--baseline", b, "--no-cache", "--threads", t],
        );
        let o = j.as_object_mut().unwrap();
        for k in ["seconds", "peak_rss_bytes"] {
            assert!(o.remove(k).is_some(), "{k} missing");
        }
        j
    };
    let (one, two) = (run("1"), run("2"));
    assert!(one["kld_mean"].as_f64().unwrap() > 0.0);
    assert_eq!(one, two);
}

#[test]
fn interrupted_run_leaves_no_cache_file() {
    let (bf16, q4) = (file("bf16"), file("q4_k_m"));
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("c");
    let child = Command::new(env!("CARGO_BIN_EXE_gq"))
        .args(["ppl", q4.to_str().unwrap(), "--text"])
        .arg(eval_text())
        .args(["--baseline", bf16.to_str().unwrap(), "--cache-dir"])
        .arg(&cache)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the temporary cache file exists, then interrupt.
    let t0 = std::time::Instant::now();
    while std::fs::read_dir(&cache).map_or(0, |d| d.count()) == 0 {
        assert!(
            t0.elapsed().as_secs() < 60,
            "no temporary cache file appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "an interrupted run succeeded");
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    let left: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let q4 = file("q4_k_m");
    let tmp = tempfile::tempdir().unwrap();
    let short = tmp.path().join("short.txt");
    std::fs::write(&short, "only a few words").unwrap();
    let o = gq(&[
        "ppl",
        q4.to_str().unwrap(),
        "--text",
        short.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("needs at least 1024"), "{e}");
    // A baseline with another vocabulary.
    let o = gq(&[
        "ppl",
        q4.to_str().unwrap(),
        "--text",
        eval_text().to_str().unwrap(),
        "--chunks",
        "2",
        "--baseline",
        fixture("dense").to_str().unwrap(),
        "--no-cache",
    ]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("dense") && e.contains("differently"), "{e}");
}

fn reference_generation() -> (Vec<u32>, Vec<u32>) {
    let path = fixture("trained.ref").join("transformers-logits.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: the reference comes from scripts/reference_logits.py",
            path.display()
        )
    });
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let ids = |k: &str| -> Vec<u32> {
        st.tensor(k)
            .unwrap_or_else(|_| panic!("{k} missing in {}", path.display()))
            .data()
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as u32)
            .collect()
    };
    (ids("gen_prompt"), ids("gen_tokens"))
}

fn ids_arg(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

fn json_ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn generate_greedy_equals_transformers() {
    let (prompt, want) = reference_generation();
    assert_eq!(want.len(), 64);
    let model = fixture("trained");
    let m = model.to_str().unwrap();
    let p = ids_arg(&prompt);
    let o = gq_ok(&[
        "generate", m, "--ids", &p, "-n", "64", "--temp", "0", "--json",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json_ids(&j["prompt_ids"]), prompt);
    assert_eq!(
        json_ids(&j["ids"]),
        want,
        "greedy tokens differ from transformers'"
    );
    // Streamed: the text of the same tokens, as it is decoded.
    let o = gq_ok(&["generate", m, "--ids", &p, "-n", "64", "--temp", "0"]);
    let tok = gq::tokenizer::Tokenizer::open(&model).unwrap();
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        tok.decode_with(&want, false) + "\n"
    );
}

#[test]
fn generate_sampling_is_seeded_and_thread_independent() {
    let m = fixture("trained");
    let m = m.to_str().unwrap();
    let run = |seed: &str, threads: &str| {
        let o = gq_ok(&[
            "generate",
            m,
            "-p",
            "The",
            "-n",
            "24",
            "--temp",
            "1.0",
            "--top-k",
            "40",
            "--top-p",
            "0.95",
            "--seed",
            seed,
            "--threads",
            threads,
            "--json",
        ]);
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        json_ids(&j["ids"])
    };
    let a = run("1", "2");
    assert_eq!(a, run("1", "1"));
    assert_ne!(a, run("2", "2"));
    // Greedy is the default of a model without sampling settings.
    let o = gq_ok(&["generate", m, "-p", "The", "-n", "4"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("greedy"));
}

#[test]
fn generate_takes_sampling_defaults_from_generation_config() {
    let (_d, dir) = copy_fixture("trained");
    std::fs::write(
        dir.join("generation_config.json"),
        r#"{"do_sample": true, "temperature": 0.7, "top_k": 20, "top_p": 0.9, "eos_token_id": 1}"#,
    )
    .unwrap();
    let o = gq_ok(&["generate", dir.to_str().unwrap(), "-p", "The", "-n", "4"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("temperature 0.7, top-k 20, top-p 0.9, seed 0 (generation_config.json)"),
        "{e}"
    );
}

#[test]
fn generate_chat_uses_the_template() {
    let m = fixture("trained");
    let ms = m.to_str().unwrap();
    let o = gq_ok(&["generate", ms, "-p", "Hello", "--chat", "-n", "8", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let o = gq_ok(&["tokenize", ms, "-p", "Hello", "--chat", "--ids"]);
    let want: Vec<u32> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json_ids(&j["prompt_ids"]), want);
    let n = json_ids(&j["ids"]).len();
    assert!((1..=8).contains(&n));
}

#[test]
fn logits_from_text_equal_logits_from_its_ids() {
    let m = fixture("trained");
    let ms = m.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("t.txt");
    std::fs::write(&t, "Once upon a time, there was a small model.\n").unwrap();
    let from_text = gq_ok(&[
        "logits",
        ms,
        "--text",
        t.to_str().unwrap(),
        "--positions",
        "all",
        "--json",
    ]);
    let tok = gq::tokenizer::Tokenizer::open(&m).unwrap();
    let ids = tok.encode(&std::fs::read_to_string(&t).unwrap(), true);
    assert_eq!(ids[0], tok.bos().unwrap());
    let from_ids = gq_ok(&[
        "logits",
        ms,
        "--ids",
        &ids_arg(&ids),
        "--positions",
        "all",
        "--json",
    ]);
    assert_eq!(from_text.stdout, from_ids.stdout);
    let v: serde_json::Value = serde_json::from_slice(&from_text.stdout).unwrap();
    assert_eq!(v["positions"].as_array().unwrap().len(), ids.len());
}
