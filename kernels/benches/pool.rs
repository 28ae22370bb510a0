//! Criterion bench: the time of one parallel step of two tasks of about 2 µs each on two
//! threads, on the spinning pool (`gq_kernels::pool`) and on a rayon pool (timed inside it, as
//! the runner's steps ran): one thread alone needs about twice a task. With tasks of a few
//! nanoseconds both let the calling thread run everything, which says nothing about a hand-off.
//! `cargo bench -p gq-kernels --bench pool`.

use criterion::{criterion_group, criterion_main, Criterion};
use gq_kernels::pool::Pool;
use rayon::prelude::*;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// A task of about two microseconds of arithmetic.
fn task(i: usize) {
    let mut x = i as u64 + 1;
    for _ in 0..2000 {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    black_box(x);
}

fn step(c: &mut Criterion) {
    let mut g = c.benchmark_group("step_2x2us_2_threads");
    g.bench_function("one_thread", |b| b.iter(|| (0..2).for_each(task)));
    let spin = Pool::new(2, Duration::from_millis(1), Duration::from_micros(50));
    g.bench_function("pool", |b| b.iter(|| spin.run(2, &task)));
    let tp = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    g.bench_function("rayon", |b| {
        b.iter_custom(|iters| {
            tp.install(|| {
                let t = Instant::now();
                for _ in 0..iters {
                    (0..2usize).into_par_iter().for_each(task);
                }
                t.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, step);
criterion_main!(benches);
