//! Cache-resident TurboQuant dot-product throughput (ns per 256-block, one thread):
//! `cargo run --release -p gq-kernels --example tq_dot_bench -- [types] [isa]` (row length
//! `TQ_BENCH_COLS`, default 4096).
use gq_kernels::formats::tq::{self, TqParams};
use gq_kernels::{kernels_for, GgmlType, Isa};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let types: Vec<GgmlType> = args
        .get(1)
        .map(|s| s.split(',').filter_map(GgmlType::parse).collect())
        .unwrap_or_else(|| vec![GgmlType::TQT4_5, GgmlType::Q4_K]);
    let isa = args
        .get(2)
        .and_then(|s| Isa::parse(s))
        .unwrap_or_else(Isa::best);
    let k = kernels_for(isa).expect("ISA available");
    let cols: usize = std::env::var("TQ_BENCH_COLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    let rows = 256 * 4096 / cols;
    let p = TqParams::default();
    for ty in types {
        let w = gq_kernels::bench::random_weights(ty, rows, cols, 7);
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.1).sin()).collect();
        let mut scratch = vec![0u8; gq_kernels::gemv_scratch_bytes(ty, cols)];
        let a = k
            .prepare_activation_as(ty, &x, &mut scratch, k.default_act(ty))
            .to_vec();
        let _ = &p;
        let _ = tq::block_for;
        let rb = ty.row_bytes(cols).unwrap();
        let mut best = f64::MAX;
        for _ in 0..20 {
            let t = Instant::now();
            let mut s = 0f32;
            for _ in 0..10 {
                for r in 0..rows {
                    s += k.vec_dot(ty, &w[r * rb..(r + 1) * rb], &a);
                }
            }
            std::hint::black_box(s);
            best = best.min(t.elapsed().as_secs_f64());
        }
        let blocks = (rows * cols / 256 * 10) as f64;
        println!(
            "{isa} {ty:8} {:6.2} ns/256-block  {:6.2} GB/s",
            best / blocks * 1e9,
            (rows * rb * 10) as f64 / best / 1e9
        );
    }
}
