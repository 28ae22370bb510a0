//! Quick GEMM check: `cargo run --release -p gq-kernels --example gemmbench -- [types] [threads]
//! [n] [rows] [reps]` (k = 14336; `GQ_GEMM=rows|tile` picks the path). GFLOP/s of the best of
//! `reps` runs (default 5; more picks quieter moments on a shared machine).
use gq_kernels::bench::random_weights;
use gq_kernels::{kernels, GgmlType};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let types: Vec<GgmlType> = args
        .get(1)
        .map(|s| s.split(',').filter_map(GgmlType::parse).collect())
        .unwrap_or_else(|| vec![GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0]);
    let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(512);
    let rows: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let reps: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(5);
    let cols = 14336;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let k = kernels();
    pool.install(|| {
        for ty in types {
            let w = random_weights(ty, rows, cols, 1);
            let xs: Vec<f32> = (0..n * cols)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let mut ys = vec![0f32; n * rows];
            let mut scratch = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, n)];
            let (mut best_wall, mut best_cpu) = (f64::MAX, f64::MAX);
            for _ in 0..reps {
                let (c0, t0) = (cpu_ns(), std::time::Instant::now());
                k.gemm(ty, &w, rows, cols, &xs, &mut ys, &mut scratch);
                best_wall = best_wall.min(t0.elapsed().as_secs_f64());
                best_cpu = best_cpu.min((cpu_ns() - c0) as f64 / 1e9 / threads as f64);
            }
            let gf = |t: f64| 2.0 * (rows * cols * n) as f64 / t / 1e9;
            println!(
                "{ty:5} {} n={n} rows={rows} threads={threads} tiled={}: {:7.1} GFLOP/s wall, {:7.1} per CPU-second/thread",
                k.name(),
                k.gemm_is_tiled(ty, cols, n, k.default_act(ty)),
                gf(best_wall),
                gf(best_cpu)
            );
        }
    });
}

/// CPU time of every thread of this process, ns (/proc/self/task/*/schedstat).
fn cpu_ns() -> u64 {
    let mut t = 0;
    for e in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(s) = std::fs::read_to_string(e.path().join("schedstat")) {
            t += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    t
}
