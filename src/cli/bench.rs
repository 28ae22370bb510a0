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
    /// The runner's prompt processing (pp) and generation (tg) tokens/s on a model, and with
    /// --peer llama.cpp's llama-bench on the same file and threads, with the ratios.
    Run(super::bench_run::RunBenchArgs),
    /// gq quantize (safetensors -> TYPE) against llama-quantize (BF16 GGUF -> TYPE) on the same
    /// threads, and optionally against convert_hf_to_gguf.py + llama-quantize.
    Quantize(super::bench_quantize::QuantizeBenchArgs),
    /// CPU, kernel paths, memory read bandwidth and GEMV weight throughput per type (per thread
    /// count), with ggml's MUL_MAT on the same GEMV shape when llama.cpp's test-backend-ops is
    /// built (scripts/get_peers.sh); `--gemm` adds the n = 512 matrix product against ggml.
    Kernels {
        /// Weight type(s), comma-separated or repeated (default: all GEMV types).
        #[arg(short = 't', long = "type", value_name = "TYPE", value_delimiter = ',')]
        types: Vec<String>,
        /// Thread counts for the bandwidth probe and the large GEMVs, comma-separated (one
        /// table each, e.g. 1,2,4,8,16).
        #[arg(long, value_delimiter = ',', default_value = "2")]
        threads: Vec<usize>,
        /// Size of the bandwidth buffer and of each weight matrix, MiB.
        #[arg(long, default_value_t = 384)]
        size_mib: usize,
        /// Timed runs per measurement (the best is reported).
        #[arg(long, default_value_t = 10)]
        reps: usize,
        /// Skip ggml's test-backend-ops.
        #[arg(long)]
        no_ggml: bool,
        /// Also measure the GEMM at n = 512 (4096 × 14336 weights) against ggml's MUL_MAT.
        #[arg(long)]
        gemm: bool,
        /// Skip the GEMV tables (with --gemm: measure only the GEMM).
        #[arg(long)]
        no_gemv: bool,
        /// Machine-readable JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `gq bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    match args.what {
        BenchWhat::Quantize(a) => super::bench_quantize::run(a),
        BenchWhat::Run(a) => super::bench_run::run(a),
        BenchWhat::Kernels {
            types,
            threads,
            size_mib,
            reps,
            no_ggml,
            gemm,
            no_gemv,
            json,
        } => {
            let mut opts = KernelBenchOptions {
                threads,
                size_mib,
                reps,
                ggml: !no_ggml,
                gemm,
                no_gemv,
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
        "cpu: {} ({}), {} CPUs; kernels {}; clock while vector code runs {:.2} GHz; {} MiB per matrix",
        r.cpu, r.vendor, r.cpus, r.kernels, r.vector_clock_ghz, r.size_mib
    );
    println!("paths:");
    for (t, p) in &r.paths {
        println!("  {t:<5} {p}");
    }
    println!("GB/s = weight bytes / best GEMV time; bw = reads alternated with that type's GEMVs; %bw = GB/s / bw");
    for run in &r.runs {
        println!(
            "-- {} threads: read bandwidth {:.2} GB/s (best of all probes; first probe's median {:.2})",
            run.threads, run.bandwidth_gbps, run.bandwidth_median_gbps
        );
        println!(
            "{:<5} {:>8} {:>8} {:>8} {:>8} {:>7}",
            "type", "rows", "GB/s", "median", "bw GB/s", "%bw"
        );
        for t in &run.results {
            println!(
                "{:<5} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>6.1}%",
                t.ty,
                t.rows,
                t.gbps,
                t.median_gbps,
                t.bandwidth_gbps,
                100.0 * t.ratio_to_bandwidth,
            );
        }
    }
    if let Some((_, g)) = r.ggml_gemv.first() {
        println!(
            "-- GEMV vs ggml: test-backend-ops MUL_MAT m={} k={} n=1 ({} thread(s)) against gq on the same shape and threads",
            g.m, g.k, g.threads
        );
        println!(
            "{:<5} {:>8} {:>10} {:>9} {:>7}",
            "type", "gq GB/s", "gq median", "ggml GB/s", "gq/ggml"
        );
        for (t, g) in &r.ggml_gemv {
            println!(
                "{:<5} {:>8.2} {:>10.2} {:>9} {:>7}",
                t,
                g.gq_gbps,
                g.gq_median_gbps,
                opt(g.ggml_gbps, 2),
                opt(g.ratio, 2)
            );
        }
        println!("gq/ggml = gq's median run / ggml's mean time per run (test-backend-ops)");
    }
    if let Some(g0) = r.gemm.first() {
        println!(
            "-- GEMM m=4096 k=14336 n=512, {} thread(s) (ggml's count); % peak = GFLOP/s / peak (peak per type below)",
            g0.threads
        );
        println!(
            "{:<5} {:>9} {:>7} {:>10} {:>7} {:>14}",
            "type", "gq GFLOP/s", "% peak", "ggml GFLOP/s", "gq/ggml", "gq, max threads"
        );
        for g in &r.gemm {
            println!(
                "{:<5} {:>9.1} {:>6.1}% {:>10} {:>7} {:>14}",
                g.ty,
                g.gq_gflops,
                100.0 * g.gq_frac_peak,
                opt(g.ggml_gflops, 1),
                opt(g.ratio, 2),
                g.gq_max_threads
                    .map_or("-".to_string(), |(t, v)| format!("{v:.1} ({t} thr)")),
            );
        }
        for g in &r.gemm {
            println!("  {} peak: {}", g.ty, g.peak);
        }
    }
    if let Some(n) = &r.ggml_note {
        println!("note: {n}");
    }
}
