//! Tokenizer speed: loading the real Gemma 4 vocabulary (llama.cpp's
//! models/ggml-vocab-gemma-4.gguf, 262 144 tokens and 514 906 merges) and encoding the trained
//! fixture's held-out text (fixtures/trained/eval.txt, 174 KB) with it, in-process; then, end to
//! end in the same run, `gq tokenize` against llama.cpp's `llama-tokenize` (process start and
//! vocabulary load; then tokenizing the same 870 KB text, ids printed), printed as ratios.
//!
//! `cargo bench --bench tokenizer`. Needs the peers: `bash scripts/get_peers.sh`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gq::gguf::GgufFile;
use gq::tokenizer::Tokenizer;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn peers() -> PathBuf {
    std::env::var_os("GQ_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/gq-peers"))
}

fn need(p: PathBuf) -> PathBuf {
    assert!(
        p.exists(),
        "{} not found: run `bash scripts/get_peers.sh`",
        p.display()
    );
    p
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Median wall time of `runs` runs of a command (output discarded; must succeed).
fn median_run(cmd: &mut dyn FnMut() -> Command, runs: usize) -> Duration {
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let t0 = Instant::now();
            let st = cmd()
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
            t0.elapsed()
        })
        .collect();
    t.sort();
    t[runs / 2]
}

fn tokenizer(c: &mut Criterion) {
    let vocab = need(
        peers()
            .join("sdist/llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-gemma-4.gguf"),
    );
    let eval_path = root().join("fixtures/trained/eval.txt");
    let eval = std::fs::read_to_string(&eval_path).unwrap();

    let mut g = c.benchmark_group("tokenizer");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("load_gguf_262k", |b| {
        b.iter(|| Tokenizer::from_gguf(&GgufFile::open(&vocab).unwrap()).unwrap())
    });
    let g_file = GgufFile::open(&vocab).unwrap();
    g.bench_function("from_gguf_262k_parsed", |b| {
        b.iter(|| Tokenizer::from_gguf(&g_file).unwrap())
    });
    let tok = Tokenizer::from_gguf(&g_file).unwrap();
    g.throughput(Throughput::BytesDecimal(eval.len() as u64));
    g.bench_function("encode_eval_262k", |b| b.iter(|| tok.encode(&eval, false)));
    let ids = tok.encode(&eval, false);
    g.bench_function("decode_eval_262k", |b| b.iter(|| tok.decode(&ids)));
    let small = Tokenizer::from_checkpoint(&root().join("fixtures/trained")).unwrap();
    g.bench_function("encode_eval_2048", |b| {
        b.iter(|| small.encode(&eval, false))
    });
    g.finish();

    // End to end, same machine, same run: each tool started on a prompt of one character (start
    // + vocabulary load) and on eval.txt repeated 5 times (870 KB); the difference is the
    // tokenizing (and printing) of the text.
    let big = std::env::temp_dir().join(format!("gq-bench-eval5-{}.txt", std::process::id()));
    std::fs::write(&big, eval.repeat(5)).unwrap();
    let llama = need(peers().join("build/bin/llama-tokenize"));
    let gq_bin = Path::new(env!("CARGO_BIN_EXE_gq"));
    let runs = 7;
    let time = |tool: &str, text: Option<&Path>| {
        median_run(
            &mut || {
                let mut c;
                if tool == "llama" {
                    c = Command::new(&llama);
                    c.arg("-m").arg(&vocab).args(["--log-disable"]);
                } else {
                    c = Command::new(gq_bin);
                    c.arg("tokenize").arg(&vocab);
                }
                match text {
                    Some(f) => c.arg("-f").arg(f),
                    None => c.args(["-p", "x"]),
                };
                c.args(["--ids", "--no-bos"]);
                c
            },
            runs,
        )
    };
    let (l0, l1) = (time("llama", None), time("llama", Some(&big)));
    let (g0, g1) = (time("gq", None), time("gq", Some(&big)));
    let _ = std::fs::remove_file(&big);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mbs = |a: Duration, b: Duration| 5.0 * eval.len() as f64 / (b - a).as_secs_f64() / 1e6;
    println!("end to end, median of {runs} runs, 262 144-token vocabulary:");
    println!(
        "  start + load:             llama-tokenize {:6.0} ms   gq tokenize {:6.0} ms   gq {:.2}x faster",
        ms(l0),
        ms(g0),
        ms(l0) / ms(g0)
    );
    println!(
        "  + 870 KB text (ids out):  llama-tokenize {:6.0} ms   gq tokenize {:6.0} ms   gq {:.2}x faster",
        ms(l1),
        ms(g1),
        ms(l1) / ms(g1)
    );
    println!(
        "  tokenizing alone:         llama-tokenize {:6.1} MB/s  gq tokenize {:6.1} MB/s  gq {:.2}x faster",
        mbs(l0, l1),
        mbs(g0, g1),
        mbs(g0, g1) / mbs(l0, l1)
    );
}

criterion_group!(benches, tokenizer);
criterion_main!(benches);
