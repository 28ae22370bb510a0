//! Quick GEMV bandwidth check: `cargo run --release -p gq-kernels --example quickbench -- [MB] [threads] [types]`.
use gq_kernels::bench::{random_weights, stream_buffer, time_gemv, time_read};
use gq_kernels::{kernels, GgmlType};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mb: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
    let types: Vec<GgmlType> = args
        .get(3)
        .map(|s| s.split(',').filter_map(GgmlType::parse).collect())
        .unwrap_or_else(|| GgmlType::WEIGHTS.to_vec());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let k = kernels();
    pool.install(|| {
        let buf = stream_buffer(mb << 20);
        let bw = time_read(&buf, 10).gbps(buf.len() * 8);
        drop(buf);
        println!(
            "isa {} threads {threads} read bandwidth {bw:.2} GB/s",
            k.isa()
        );
        for ty in types {
            let cols = 4096;
            let rows = (mb << 20) / ty.row_bytes(cols).unwrap();
            let w = random_weights(ty, rows, cols, 1);
            let t = time_gemv(k, ty, &w, cols, 10);
            let g = t.gbps(w.len());
            println!("{ty:5} {g:7.2} GB/s  {:5.1}%", 100.0 * g / bw);
        }
    });
}
