//! Shared helpers of the kernels' integration tests.
#![allow(dead_code)]

pub mod isas;
pub mod rng;

/// One rayon pool per thread count.
pub fn pools(threads: &[usize]) -> Vec<rayon::ThreadPool> {
    threads
        .iter()
        .map(|&t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        })
        .collect()
}
