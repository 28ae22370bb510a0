//! Criterion benches: GEMV per weight type (4096 × 4096, current ISA, rayon's global pool) and
//! the dot product of one row. `cargo bench -p gq-kernels --bench gemv`; set GQ_ISA to
//! compare ISAs. `gq bench kernels` measures the large-matrix, bandwidth-bound case.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gq_kernels::bench::random_weights;
use gq_kernels::{gemv_scratch_bytes, kernels, GgmlType};

fn gemv(c: &mut Criterion) {
    let k = kernels();
    let (rows, cols) = (4096, 4096);
    let mut g = c.benchmark_group(format!("gemv_{}x{}_{}", rows, cols, k.isa()));
    g.sample_size(20);
    for ty in GgmlType::WEIGHTS {
        let w = random_weights(ty, rows, cols, 1);
        let x: Vec<f32> = (0..cols).map(|i| (i % 17) as f32 * 0.1 - 0.8).collect();
        let mut y = vec![0f32; rows];
        let mut scratch = vec![0u8; gemv_scratch_bytes(ty, cols)];
        g.throughput(Throughput::Bytes(w.len() as u64));
        g.bench_function(BenchmarkId::from_parameter(ty), |b| {
            b.iter(|| k.gemv(ty, &w, &x, &mut y, &mut scratch))
        });
    }
    g.finish();
}

fn dot(c: &mut Criterion) {
    let k = kernels();
    let cols = 4096;
    let mut g = c.benchmark_group(format!("vec_dot_{}_{}", cols, k.isa()));
    for ty in GgmlType::WEIGHTS {
        let w = random_weights(ty, 1, cols, 2);
        let x: Vec<f32> = (0..cols).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect();
        let mut scratch = vec![0u8; gemv_scratch_bytes(ty, cols)];
        let a = k.prepare_activation(ty, &x, &mut scratch).to_vec();
        g.throughput(Throughput::Bytes(w.len() as u64));
        g.bench_function(BenchmarkId::from_parameter(ty), |b| {
            b.iter(|| k.vec_dot(ty, std::hint::black_box(&w), &a))
        });
    }
    g.finish();
}

criterion_group!(benches, gemv, dot);
criterion_main!(benches);
