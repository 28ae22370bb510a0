//! GEMV (`Kernels::gemv`, the runner's path) on DRAM-resident weights of a given row length:
//! `cargo run --release -p gq-kernels --example gemv_rows -- TYPES COLS [MiB] [rounds]
//! [threads]`, e.g. `Q4_K,Q6_K 1536 256 9 2`. Prints GB/s best and median per type.
use gq_kernels::{kernels_for, GgmlType, Isa};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let types: Vec<GgmlType> = args[1].split(',').filter_map(GgmlType::parse).collect();
    let cols: usize = args[2].parse().unwrap();
    let mib: usize = args.get(3).map_or(256, |v| v.parse().unwrap());
    let rounds: usize = args.get(4).map_or(9, |v| v.parse().unwrap());
    let nt: usize = args.get(5).map_or(1, |v| v.parse().unwrap());
    let k = kernels_for(Isa::best()).expect("ISA");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(nt)
        .build()
        .unwrap();
    for ty in types {
        let rb = ty.row_bytes(cols).unwrap();
        let rows = (mib << 20) / rb;
        let w = gq_kernels::bench::random_weights(ty, rows, cols, 7);
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.1).sin()).collect();
        let mut y = vec![0f32; rows];
        let mut scratch = vec![0u8; gq_kernels::gemv_scratch_bytes(ty, cols)];
        let mut t = Vec::new();
        for _ in 0..rounds {
            let t0 = Instant::now();
            pool.install(|| k.gemv(ty, &w, &x, &mut y, &mut scratch));
            std::hint::black_box(&y);
            t.push(t0.elapsed().as_secs_f64());
        }
        t.sort_by(f64::total_cmp);
        let gb = (rows * rb) as f64 / 1e9;
        println!(
            "{ty:6} cols {cols} threads {nt}: best {:6.2} GB/s  median {:6.2} GB/s",
            gb / t[0],
            gb / t[t.len() / 2]
        );
    }
}
