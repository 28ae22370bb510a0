//! TurboQuant encoder throughput (wall µs per 256-block, one thread) against gq's Q4_K / Q6_K
//! quantizers on the same data: `cargo run --release -p gq-kernels --example tq_quant_bench --
//! [types] [isas]` (both comma-separated; isas default to the best one, e.g.
//! `TQT4_5,Q4_K scalar,avx2,avx512`). `TQB_REPS` sets the number of reps (default 30; more for
//! `perf record`).
use gq_kernels::formats::tq::{self, TqParams};
use gq_kernels::formats::tq_rotation::SplitMix64;
use gq_kernels::{format, GgmlType, Isa};
/// Monotonic wall time (ns). (`/proc/thread-self/schedstat` on-CPU time was tried: it only
/// advances at scheduling events, so short runs read 0.) The (ISA, type) cases alternate within
/// each rep, so a loaded machine slows them alike; the median ratio is the figure to quote.
fn cpu_ns() -> u64 {
    static T0: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    T0.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let types: Vec<GgmlType> = args
        .get(1)
        .map(|s| s.split(',').filter_map(GgmlType::parse).collect())
        .unwrap_or_else(|| vec![GgmlType::TQT4_5, GgmlType::Q4_K, GgmlType::Q6_K]);
    let isas: Vec<Isa> = args
        .get(2)
        .map(|s| s.split(',').filter_map(Isa::parse).collect())
        .unwrap_or_else(|| vec![Isa::best()]);
    let cases: Vec<(Isa, GgmlType)> = isas
        .iter()
        .flat_map(|&i| types.iter().map(move |&t| (i, t)))
        .collect();
    let (rows, n) = (64, 4096);
    let mut g = SplitMix64::new(1);
    let x: Vec<f32> = (0..rows * n)
        .map(|_| g.next_normal() as f32 * 0.02)
        .collect();
    let reps = std::env::var("TQB_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let mut best = vec![f64::MAX; cases.len()];
    let mut times = vec![Vec::new(); cases.len()];
    for _ in 0..reps {
        for (i, &(isa, ty)) in cases.iter().enumerate() {
            let rb = ty.row_bytes(n).unwrap();
            let mut y = vec![0u8; rows * rb];
            let t = cpu_ns();
            if ty.is_turboquant() {
                tq::quantize_rows(ty, &TqParams::default(), &x, n, None, &mut y, isa).unwrap();
            } else {
                let f = format(ty).unwrap();
                for (r, o) in x.chunks_exact(n).zip(y.chunks_exact_mut(rb)) {
                    f.quantize_row_imatrix_isa(r, None, o, isa);
                }
            }
            let dt = (cpu_ns() - t) as f64 * 1e-9;
            best[i] = best[i].min(dt);
            times[i].push(dt);
        }
    }
    let (i0, t0) = cases[0];
    for (i, (&(isa, ty), t)) in cases.iter().zip(best).enumerate() {
        // Median over reps of this case's time over the first case's in the same rep.
        let mut r: Vec<f64> = times[i].iter().zip(&times[0]).map(|(a, b)| a / b).collect();
        r.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{:6} {ty:8} {:6.2} µs/256-block (best of {reps}, cases alternating); median ratio to {i0} {t0}: {:.3}",
            isa.name(),
            t / (rows * n / 256) as f64 * 1e6,
            r[r.len() / 2]
        );
    }
}
