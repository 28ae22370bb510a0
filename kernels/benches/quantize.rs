//! Row quantization throughput per type and instruction set, in MB of f32 input per second:
//! a 4096 × 4096 matrix of BF16-rounded, roughly normal values (like a checkpoint's weights),
//! quantized row by row on one thread, as llama-quantize does per row.
//!
//! `cargo bench --bench quantize` (add `-- Q4_K` to filter). `GQ_BENCH_ROWS` sets the number of
//! rows (default 4096; fewer makes a quick run). `GQ_BENCH_CLOCK=cpu` times with the thread's
//! CPU clock instead of the wall clock (Linux), which other processes on a shared machine
//! disturb much less. `GQ_BENCH_IMATRIX=1` also times the weighted (importance matrix) path
//! of the k-quants.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gq_kernels::{format, GgmlType, Isa};
use std::time::{Duration, Instant};

/// The calling thread's CPU time (Linux `CLOCK_THREAD_CPUTIME_ID`).
#[cfg(target_os = "linux")]
fn thread_cpu_time() -> Duration {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: clock_gettime writes one timespec (two 64-bit fields on x86-64 and aarch64
    // Linux) to a valid pointer.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime failed");
    Duration::new(t.sec as u64, t.nsec as u32)
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_time() -> Duration {
    panic!("GQ_BENCH_CLOCK=cpu needs Linux")
}

const COLS: usize = 4096;

/// A matrix of `rows × COLS` BF16-rounded values, roughly normal with σ ≈ 0.02 (splitmix64).
fn matrix(rows: usize) -> Vec<f32> {
    let mut s = 0x1234_5678_u64;
    let mut unit = move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    (0..rows * COLS)
        .map(|_| {
            let v = (unit() + unit() + unit() + unit()) * 0.866 * 0.02;
            half::bf16::from_f32(v).to_f32()
        })
        .collect()
}

fn quantize(c: &mut Criterion) {
    let rows = std::env::var("GQ_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096usize);
    let cpu_clock = std::env::var("GQ_BENCH_CLOCK").is_ok_and(|v| v == "cpu");
    let x = matrix(rows);
    let types = [
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::Q3_K,
        GgmlType::Q2_K,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
    ];
    let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.available()).collect();
    let imatrix = std::env::var("GQ_BENCH_IMATRIX").is_ok_and(|v| v == "1");
    // A positive importance row, like an imatrix's mean squared activations.
    let importance: Vec<f32> = matrix(1).iter().map(|v| v * v * 2500.0 + 0.05).collect();
    for ty in types {
        let f = format(ty).unwrap();
        let row_bytes = ty.row_bytes(COLS).unwrap();
        let mut out = vec![0u8; rows * row_bytes];
        let weighted = imatrix && ty.block_size() == 256;
        for qw in std::iter::once(None).chain(weighted.then_some(Some(&importance[..]))) {
            let name = match qw {
                None => format!("quantize_row/{ty}"),
                Some(_) => format!("quantize_row_imatrix/{ty}"),
            };
            let mut g = c.benchmark_group(name);
            g.throughput(Throughput::BytesDecimal((x.len() * 4) as u64));
            g.sample_size(10);
            g.warm_up_time(Duration::from_millis(500));
            g.measurement_time(Duration::from_secs(3));
            for &isa in &isas {
                let mut run = || {
                    for (src, dst) in x.chunks_exact(COLS).zip(out.chunks_exact_mut(row_bytes)) {
                        f.quantize_row_imatrix_isa(src, qw, dst, isa);
                    }
                };
                g.bench_function(BenchmarkId::from_parameter(isa.name()), |b| {
                    b.iter_custom(|iters| {
                        let (t0, c0) = (Instant::now(), cpu_clock.then(thread_cpu_time));
                        for _ in 0..iters {
                            run();
                        }
                        match c0 {
                            Some(c0) => thread_cpu_time() - c0,
                            None => t0.elapsed(),
                        }
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, quantize);
criterion_main!(benches);
