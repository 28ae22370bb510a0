//! `gq bench`: performance measurements. The measuring lives in `bench_kernels.rs`.

use super::bench_kernels::{run_kernel_bench, KernelBenchOptions, KernelBenchReport};
use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use gq_kernels::GgmlType;

/// Arguments of `gq bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub what: BenchWhat,
}

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchWhat {
    /// gq quantize (safetensors -> TYPE) against llama-quantize (BF16 GGUF -> TYPE) on the same
    /// threads, and optionally against convert_hf_to_gguf.py + llama-quantize.
    Quantize(super::bench_quantize::QuantizeBenchArgs),
    /// Memory read bandwidth and GEMV weight throughput per type, with ggml's MUL_MAT on the
    /// same GEMV shape when llama.cpp's test-backend-ops is built (scripts/get_peers.sh).
    Kernels {
        /// Weight type(s), comma-separated or repeated (default: all GEMV types).
        #[arg(short = 't', long = "type", value_name = "TYPE", value_delimiter = ',')]
        types: Vec<String>,
        /// Threads for the bandwidth probe and the large GEMVs.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Size of the bandwidth buffer and of each weight matrix, MiB.
        #[arg(long, default_value_t = 384)]
        size_mib: usize,
        /// Timed runs per measurement (the best is reported).
        #[arg(long, default_value_t = 10)]
        reps: usize,
        /// Skip ggml's test-backend-ops.
        #[arg(long)]
        no_ggml: bool,
        /// Machine-readable JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `gq bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    match args.what {
        BenchWhat::Quantize(a) => super::bench_quantize::run(a),
        BenchWhat::Kernels {
            types,
            threads,
            size_mib,
            reps,
            no_ggml,
            json,
        } => {
            let mut opts = KernelBenchOptions {
                threads,
                size_mib,
                reps,
                ggml: !no_ggml,
                ..Default::default()
            };
            if !types.is_empty() {
                opts.types = types
                    .iter()
                    .map(|s| {
                        GgmlType::parse(s)
                            .filter(|t| GgmlType::WEIGHTS.contains(t) || t.is_turboquant())
                            .ok_or_else(|| anyhow!("unknown or non-weight --type {s:?}"))
                    })
                    .collect::<Result<_>>()?;
            }
            let report = run_kernel_bench(&opts, |line| {
                if !json {
                    eprintln!("{line}");
                }
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_table(&report);
            }
            Ok(())
        }
    }
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.prec$}"))
}

fn print_table(r: &KernelBenchReport) {
    println!(
        "kernels: {}, {} threads; read bandwidth {:.2} GB/s (best of all probes; first probe's median {:.2}); {} MiB per matrix",
        r.isa, r.threads, r.bandwidth_gbps, r.bandwidth_median_gbps, r.size_mib
    );
    println!("GB/s = weight bytes / best GEMV time; bw = reads alternated with that type's GEMVs; %bw = GB/s / bw");
    let gt = r.results.iter().find_map(|t| t.ggml.as_ref());
    if let Some(g) = gt {
        println!(
            "ggml column: test-backend-ops MUL_MAT m={} k={} n=1 ({} thread(s)) against gq on the same shape and threads",
            g.m, g.k, g.threads
        );
    }
    println!(
        "{:<5} {:>8} {:>8} {:>8} {:>8} {:>7} | {:>8} {:>9} {:>7}",
        "type", "rows", "GB/s", "median", "bw GB/s", "%bw", "gq GB/s", "ggml GB/s", "gq/ggml"
    );
    for t in &r.results {
        let g = t.ggml.as_ref();
        println!(
            "{:<5} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>6.1}% | {:>8} {:>9} {:>7}",
            t.ty,
            t.rows,
            t.gbps,
            t.median_gbps,
            t.bandwidth_gbps,
            100.0 * t.ratio_to_bandwidth,
            opt(g.map(|g| g.gq_gbps), 2),
            opt(g.and_then(|g| g.ggml_gbps), 2),
            opt(g.and_then(|g| g.ratio), 2),
        );
    }
    if let Some(n) = &r.ggml_note {
        println!("note: {n}");
    }
}
