//! Stress tests of the spinning worker pool (`gq_kernels::pool`): every task of every step runs
//! exactly once, over many tiny steps with task counts 0, 1, 2, … and more than the threads, with
//! workers that spin, park at once or park between steps; nested calls, concurrent callers,
//! panics (which must reach the caller, after which the pool keeps working) and dropping pools.

mod common;
use common::rng::Rng;
use gq_kernels::pool::{par_chunks_mut, par_for, rows_mut, rows_mut2, Pool};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

/// Turns a hang (a lost wake-up, a deadlock) into a failure: aborts the test process if it is
/// still running after five minutes (every test here takes seconds, also in debug builds).
fn watchdog() {
    static W: std::sync::Once = std::sync::Once::new();
    W.call_once(|| {
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_secs(300));
            eprintln!("pool_stress: still running after 300 s: a step never finished (hang)");
            std::process::abort();
        });
    });
}

/// Runs `steps` steps of random task counts (below `max_n`, 0 and 1 included) on `p` and checks
/// that every index ran exactly once in each.
fn check_steps(p: &Pool, steps: usize, max_n: u64, seed: u64, pause_every: usize) {
    let mut rng = Rng(seed);
    let hits: Vec<AtomicU32> = (0..max_n).map(|_| AtomicU32::new(0)).collect();
    for s in 0..steps {
        let n = match s % 7 {
            0 => 0,
            1 => 1,
            2 => p.threads(),
            _ => rng.below(max_n) as usize,
        };
        let sum = AtomicUsize::new(0);
        p.run(n, &|i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
            sum.fetch_add(i + 1, Ordering::Relaxed);
        });
        assert_eq!(
            sum.load(Ordering::Relaxed),
            n * (n + 1) / 2,
            "step {s}, n {n}"
        );
        for (i, h) in hits.iter().enumerate() {
            let want = u32::from(i < n);
            assert_eq!(
                h.swap(0, Ordering::Relaxed),
                want,
                "step {s}, n {n}, task {i}"
            );
        }
        if pause_every > 0 && s % pause_every == 0 {
            // Long enough for workers with a short spin to park.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

#[test]
fn every_task_once_spinning_and_parking() {
    watchdog();
    for threads in [1, 2, 3, 4, 8] {
        for (spin, pause) in [(1_000_000, 0), (0, 0), (50, 13), (0, 5)] {
            let p = Pool::new(
                threads,
                Duration::from_micros(spin),
                Duration::from_micros(spin / 3),
            );
            assert_eq!(p.threads(), threads);
            check_steps(&p, 3000, 40, 0x9e37 + threads as u64 * 7 + spin, pause);
        }
    }
}

#[test]
fn long_runs_of_small_steps_then_wide_steps() {
    watchdog();
    // Long runs of two-task steps (only worker 0 is needed; the others see the steps, and
    // park after the spin time once the pauses come), then steps that need every worker.
    let p = Pool::new(8, Duration::from_micros(30), Duration::from_micros(10));
    for round in 0..60 {
        for _ in 0..(50 + round * 7) {
            let sum = AtomicUsize::new(0);
            p.run(2, &|i| {
                sum.fetch_add(i + 1, Ordering::Relaxed);
            });
            assert_eq!(sum.load(Ordering::Relaxed), 3);
        }
        if round % 3 == 0 {
            std::thread::sleep(Duration::from_micros(100));
        }
        check_steps(&p, 7, 24, round as u64, 0);
    }
}

#[test]
fn nested_calls_run_inline() {
    watchdog();
    let p = Pool::new(4, Duration::from_micros(100), Duration::from_micros(10));
    let total = AtomicUsize::new(0);
    for n in 0..20 {
        total.store(0, Ordering::Relaxed);
        p.run(n, &|_| {
            // The same pool and the shared pools, from inside a task: both run inline.
            p.run(3, &|j| {
                total.fetch_add(j + 1, Ordering::Relaxed);
            });
            par_for(2, |j| {
                total.fetch_add(10 * (j + 1), Ordering::Relaxed);
            });
        });
        assert_eq!(total.load(Ordering::Relaxed), n * (6 + 30));
    }
}

#[test]
fn concurrent_callers_share_one_pool() {
    watchdog();
    let p = Pool::new(3, Duration::from_micros(20), Duration::ZERO);
    std::thread::scope(|s| {
        for c in 0..3u64 {
            let p = &p;
            s.spawn(move || check_steps(p, 1500, 24, 77 + c, 0));
        }
    });
}

#[test]
fn panics_reach_the_caller_and_the_pool_survives() {
    watchdog();
    for threads in [2, 4] {
        let p = Pool::new(
            threads,
            Duration::from_micros(100),
            Duration::from_micros(50),
        );
        for step in 0..200 {
            let n = 2 + step % 9;
            let bad = step % n;
            let ran = AtomicUsize::new(0);
            let r = catch_unwind(AssertUnwindSafe(|| {
                p.run(n, &|i| {
                    ran.fetch_add(1, Ordering::Relaxed);
                    if i == bad {
                        panic!("task {i} fails");
                    }
                })
            }));
            let msg = r.expect_err("the panic was lost");
            let msg = msg
                .downcast_ref::<String>()
                .expect("a formatted panic message");
            assert_eq!(msg, &format!("task {bad} fails"));
            // Every task still ran (a panic does not cancel the others).
            assert_eq!(ran.load(Ordering::Relaxed), n);
            check_steps(&p, 5, 16, step as u64, 0);
        }
    }
}

#[test]
fn pools_start_and_stop() {
    watchdog();
    for i in 0..50 {
        let spin = Duration::from_micros((i % 3) as u64 * 50);
        let p = Pool::new(1 + i % 5, spin, spin / 2);
        check_steps(&p, 20, 12, i as u64, 0);
        if i % 2 == 0 {
            std::thread::sleep(Duration::from_micros(300));
        }
    }
}

#[test]
fn shared_pools_follow_rayon_thread_count() {
    watchdog();
    for threads in [1, 2, 3, 5] {
        let tp = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        tp.install(|| {
            let seen = Mutex::new(std::collections::HashSet::new());
            for n in 0..300usize {
                let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                par_for(n, |i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                    seen.lock().unwrap().insert(std::thread::current().id());
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "n {n}");
            }
            // Never more threads than asked for.
            assert!(seen.lock().unwrap().len() <= threads);
        });
    }
}

use std::sync::Mutex;

#[test]
fn chunk_helpers_cover_every_element_once() {
    watchdog();
    let tp = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    tp.install(|| {
        for len in [0usize, 1, 5, 64, 1000, 4097] {
            for chunk in [1usize, 3, 64, 5000] {
                let mut x = vec![0u32; len];
                par_chunks_mut(&mut x, chunk, |i, p| {
                    for (j, v) in p.iter_mut().enumerate() {
                        *v += (i * chunk + j) as u32 + 1;
                    }
                });
                assert!(x.iter().enumerate().all(|(i, &v)| v == i as u32 + 1));
            }
            for (width, min_rows) in [(1usize, 1usize), (4, 2), (16, 100)] {
                let rows = len / width;
                let mut a = vec![0u32; rows * width];
                let mut b = vec![0u64; rows * 2];
                rows_mut(&mut a, width, min_rows, |r0, blk| {
                    for (j, row) in blk.chunks_exact_mut(width).enumerate() {
                        row.iter_mut().for_each(|v| *v += (r0 + j) as u32 + 1);
                    }
                });
                rows_mut2(&mut a, width, &mut b, 2, min_rows, |r0, ab, bb| {
                    assert_eq!(ab.len() / width, bb.len() / 2);
                    for (j, row) in bb.chunks_exact_mut(2).enumerate() {
                        row[0] += (r0 + j) as u64 + 1;
                        row[1] = ab[j * width] as u64;
                    }
                });
                for r in 0..rows {
                    assert!(a[r * width..(r + 1) * width]
                        .iter()
                        .all(|&v| v == r as u32 + 1));
                    assert_eq!(b[2 * r], r as u64 + 1);
                    assert_eq!(b[2 * r + 1], r as u64 + 1);
                }
            }
        }
    });
}
