//! `gq bench run`: pp/tg tokens per second of the runner and, with `--peer`, of llama.cpp's
//! `llama-bench` on the same file and threads, alternated `--rounds` times; prints the ratios.
//! The measuring lives in `eval::bench`.

use crate::eval::bench::{llama_bench, measure, Speed};
use crate::gemma4::Model;
use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;

/// Arguments of `gq bench run`.
#[derive(Args, Debug)]
pub struct RunBenchArgs {
    /// The model: a GGUF file (or a checkpoint directory, without --peer).
    pub model: PathBuf,
    /// Prompt tokens of the pp test (0: skip).
    #[arg(long, default_value_t = 512)]
    pub pp: usize,
    /// Generated tokens of the tg test (0: skip).
    #[arg(long, default_value_t = 128)]
    pub tg: usize,
    /// Threads, for gq and llama-bench (default: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Timed runs per test and round (after one warm-up run).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// gq and llama-bench alternate this many times; samples are pooled.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Also run llama.cpp's llama-bench ($GQ_PEERS/build/bin, default ~/.cache/gq-peers).
    #[arg(long)]
    pub peer: bool,
    /// Multiply BF16 weights with activations rounded to BF16, as llama.cpp's CPU backend
    /// does, instead of exact f32 activations (the runner's default).
    #[arg(long)]
    pub bf16_act: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn pool(into: &mut Vec<Speed>, new: Vec<Speed>) {
    for s in new {
        match into.iter_mut().find(|t| t.test == s.test) {
            Some(t) => t.merge(&s),
            None => into.push(s),
        }
    }
}

/// Runs `gq bench run`.
pub fn run(a: RunBenchArgs) -> Result<()> {
    let threads = if a.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        a.threads
    };
    let tp = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start the thread pool")?;
    let mut model = Model::open(&a.model)?;
    if a.bf16_act {
        model.float_act = gq_kernels::FloatAct::Bf16;
    }
    let peers = std::env::var_os("GQ_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/gq-peers")
        });
    let bin = peers.join("build/bin/llama-bench");
    let (mut gq, mut ll) = (Vec::new(), Vec::new());
    for r in 0..a.rounds.max(1) {
        if !a.json {
            eprintln!("round {}: gq", r + 1);
        }
        pool(&mut gq, tp.install(|| measure(&model, a.pp, a.tg, a.reps))?);
        if a.peer {
            if !a.json {
                eprintln!("round {}: llama-bench", r + 1);
            }
            pool(
                &mut ll,
                llama_bench(&bin, &a.model, a.pp, a.tg, threads, a.reps)?,
            );
        }
    }
    let rows: Vec<_> = gq
        .iter()
        .map(|g| {
            let p = ll.iter().find(|p| p.test == g.test);
            json!({
                "test": g.test,
                "gq_ts": g.mean(), "gq_std": g.stddev(), "gq_samples": g.samples,
                "llama_ts": p.map(Speed::mean), "llama_std": p.map(Speed::stddev),
                "llama_samples": p.map(|p| &p.samples),
                "ratio": p.map(|p| g.mean() / p.mean()),
            })
        })
        .collect();
    let cpu = gq_kernels::cpu_model();
    if a.json {
        let o = json!({"model": a.model, "cpu": cpu, "threads": threads,
            "bf16_act": a.bf16_act, "results": rows});
        println!("{}", serde_json::to_string_pretty(&o)?);
        return Ok(());
    }
    let act = if a.bf16_act {
        " | BF16 activations"
    } else {
        ""
    };
    println!(
        "{} | cpu: {cpu} | {threads} threads{act}",
        a.model.display()
    );
    println!(
        "{:<8} {:>18} {:>18} {:>8}",
        "test", "gq t/s", "llama.cpp t/s", "gq/llama"
    );
    for g in &gq {
        let p = ll.iter().find(|p| p.test == g.test);
        println!(
            "{:<8} {:>18} {:>18} {:>8}",
            g.test,
            format!("{:.2} ± {:.2}", g.mean(), g.stddev()),
            p.map_or("-".into(), |p| format!(
                "{:.2} ± {:.2}",
                p.mean(),
                p.stddev()
            )),
            p.map_or("-".into(), |p| format!("{:.2}", g.mean() / p.mean())),
        );
    }
    Ok(())
}
