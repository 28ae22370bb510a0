//! DRAM-resident GEMV rows on one thread with the AVX2 dot products' prefetch distance swept,
//! alternated within one run: `cargo run --release -p gq-kernels --example pf_sweep --
//! TYPES DISTS [MiB] [rounds] [threads]` (e.g. `Q4_K,Q8_0 0,1024,2048 256 7 2`; threads
//! take contiguous halves). Prints GB/s best and
//! median per (type, distance).
use gq_kernels::{kernels_for, GgmlType, Isa};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let types: Vec<GgmlType> = args[1].split(',').filter_map(GgmlType::parse).collect();
    let dists: Vec<usize> = args[2].split(',').map(|v| v.parse().unwrap()).collect();
    let mib: usize = args.get(3).map_or(256, |v| v.parse().unwrap());
    let rounds: usize = args.get(4).map_or(7, |v| v.parse().unwrap());
    let nt: usize = args.get(5).map_or(1, |v| v.parse().unwrap());
    let k = kernels_for(Isa::Avx2).expect("AVX2");
    let cols = 14336;
    for ty in types {
        let rb = ty.row_bytes(cols).unwrap();
        let rows = (mib << 20) / rb;
        let w = gq_kernels::bench::random_weights(ty, rows, cols, 7);
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.1).sin()).collect();
        let mut scratch = vec![0u8; gq_kernels::gemv_scratch_bytes(ty, cols)];
        let a = k
            .prepare_activation_as(ty, &x, &mut scratch, k.default_act(ty))
            .to_vec();
        let mut t: Vec<Vec<f64>> = vec![Vec::new(); dists.len()];
        for _ in 0..rounds {
            for (j, &d) in dists.iter().enumerate() {
                gq_kernels::x86::avx2::set_prefetch_distance(d);
                let t0 = Instant::now();
                std::thread::scope(|sc| {
                    for th in 0..nt {
                        let (w, a, k) = (&w, &a, &k);
                        sc.spawn(move || {
                            let mut s = 0f32;
                            for r in rows * th / nt..rows * (th + 1) / nt {
                                s += k.vec_dot(ty, &w[r * rb..(r + 1) * rb], a);
                            }
                            std::hint::black_box(s);
                        });
                    }
                });
                t[j].push(t0.elapsed().as_secs_f64());
            }
        }
        for (j, &d) in dists.iter().enumerate() {
            let mut v = t[j].clone();
            v.sort_by(f64::total_cmp);
            let gb = (rows * rb) as f64 / 1e9;
            println!(
                "{ty:6} pf {d:5}: best {:6.2} GB/s  median {:6.2} GB/s",
                gb / v[0],
                gb / v[v.len() / 2]
            );
        }
    }
}
