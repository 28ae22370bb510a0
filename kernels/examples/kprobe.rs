//! Scratch probe: single-thread GEMV throughput in cache and from DRAM per type.
use gq_kernels::bench::random_weights;
use gq_kernels::{gemv_scratch_bytes, kernels, GgmlType};
use std::time::Instant;

fn best<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f();
    let mut b = f64::MAX;
    for _ in 0..reps {
        let s = Instant::now();
        f();
        b = b.min(s.elapsed().as_secs_f64());
    }
    b
}

/// Effective GHz for 512-bit work: 16 independent `vpandq zmm` per iteration (2 per cycle).
fn ghz() -> f64 {
    let mut b = 0f64;
    for _ in 0..50 {
        let n = 200_000u64;
        let s = Instant::now();
        unsafe {
            core::arch::asm!("2:",
                "vpandq zmm0, zmm30, zmm31","vpandq zmm1, zmm30, zmm31","vpandq zmm2, zmm30, zmm31","vpandq zmm3, zmm30, zmm31",
                "vpandq zmm4, zmm30, zmm31","vpandq zmm5, zmm30, zmm31","vpandq zmm6, zmm30, zmm31","vpandq zmm7, zmm30, zmm31",
                "vpandq zmm16, zmm30, zmm31","vpandq zmm17, zmm30, zmm31","vpandq zmm18, zmm30, zmm31","vpandq zmm19, zmm30, zmm31",
                "vpandq zmm20, zmm30, zmm31","vpandq zmm21, zmm30, zmm31","vpandq zmm22, zmm30, zmm31","vpandq zmm23, zmm30, zmm31",
                "sub {n}, 1", "jnz 2b", n = inout(reg) n => _, out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _,
                out("zmm4") _, out("zmm5") _, out("zmm6") _, out("zmm7") _, out("zmm16") _, out("zmm17") _, out("zmm18") _,
                out("zmm19") _, out("zmm20") _, out("zmm21") _, out("zmm22") _, out("zmm23") _, options(nostack));
        }
        b = b.max(n as f64 * 8.0 / s.elapsed().as_secs_f64() / 1e9);
    }
    b
}

fn main() {
    if let Ok(shape) = std::env::var("GEMMSHAPE") {
        let v: Vec<usize> = shape.split(',').map(|x| x.parse().unwrap()).collect();
        let (rows, cols, n) = (v[0], v[1], v[2]);
        let k = kernels();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        for t in std::env::args().nth(1).unwrap().split(',') {
            let ty = GgmlType::parse(t).unwrap();
            let w = random_weights(ty, rows, cols, 7);
            let xs: Vec<f32> = (0..n * cols).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            let mut ys = vec![0f32; n * rows];
            let mut sc = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, n)];
            let t = pool.install(|| best(20, || k.gemm(ty, &w, rows, cols, &xs, &mut ys, &mut sc)));
            println!("{ty} gemm {rows}x{cols} n={n} 1 thread: {:.1} GFLOP/s ({:.2} ms)", 2.0 * (rows * cols * n) as f64 / t / 1e9, t * 1e3);
        }
        return;
    }
    if std::env::var("GEMM512").is_ok() {
        let k = kernels();
        let rows: usize = std::env::var("GEMM512").unwrap().parse().unwrap_or(512);
        let (cols, n) = (14336usize, 512usize);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        for t in std::env::args().nth(1).unwrap().split(',') {
            let ty = GgmlType::parse(t).unwrap();
            let w = random_weights(ty, rows, cols, 7);
            let xs: Vec<f32> = (0..n * cols)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let mut ys = vec![0f32; n * rows];
            let mut sc = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, n)];
            let t = pool.install(|| best(10, || k.gemm(ty, &w, rows, cols, &xs, &mut ys, &mut sc)));
            println!(
                "{ty} gemm {rows}x{cols} n={n} 1 thread: {:.1} GFLOP/s",
                2.0 * (rows * cols * n) as f64 / t / 1e9
            );
        }
        return;
    }
    let g = ghz();
    println!("effective clock for 512-bit ops: {g:.2} GHz (2 vpandq/cycle)");
    let args: Vec<String> = std::env::args().collect();
    let types: Vec<GgmlType> = args
        .get(1)
        .map(|s| s.split(',').map(|t| GgmlType::parse(t).unwrap()).collect())
        .unwrap_or(GgmlType::WEIGHTS.to_vec());
    let kib: Vec<usize> = args
        .get(2)
        .map(|s| s.split(',').map(|t| t.parse().unwrap()).collect())
        .unwrap_or(vec![32, 1024, 262144]);
    let cols = 4096;
    let k = kernels();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        for &ty in &types {
            let rb = ty.row_bytes(cols).unwrap();
            let mut line = format!("{:5}", ty.name());
            for &kb in &kib {
                let rows = ((kb << 10) / rb).max(2);
                let w = random_weights(ty, rows, cols, 7);
                let x: Vec<f32> = (0..cols)
                    .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                    .collect();
                let mut y = vec![0f32; rows];
                let mut s = vec![0u8; gemv_scratch_bytes(ty, cols)];
                let reps = (((256usize << 20) / w.len()).clamp(5, 2000)) as usize;
                let t = best(reps, || k.gemv(ty, &w, &x, &mut y, &mut s));
                let act = k.prepare_activation(ty, &x, &mut s).to_vec();
                let td = best(reps, || {
                    for (o, r) in y.iter_mut().zip(w.chunks_exact(rb)) {
                        *o = k.vec_dot(ty, r, &act);
                    }
                    std::hint::black_box(&y);
                });
                let tq = best(reps, || {
                    std::hint::black_box(k.prepare_activation(ty, &x, &mut s));
                });
                line += &format!(
                    "  {kb:>6}KiB gemv {:6.2} dot {:6.2} GB/s ({:5.1} cyc/blk)",
                    w.len() as f64 / t / 1e9,
                    w.len() as f64 / td / 1e9,
                    g * 1e9 * t / (w.len() / ty.block_bytes()) as f64
                );
                if kb == kib[0] {
                    line += &format!(" (act {:.1}us)", tq * 1e6);
                }
                let n = 16;
                let xs: Vec<f32> = (0..n * cols)
                    .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                    .collect();
                let mut ys = vec![0f32; n * rows];
                let mut sc = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, n)];
                let tg = best(reps / 4 + 3, || {
                    k.gemm(ty, &w, rows, cols, &xs, &mut ys, &mut sc)
                });
                let flops = 2.0 * (rows * cols * n) as f64;
                line += &format!(
                    " | gemm n={n}: {:.1} GFLOP/s ({:.1} cyc/blk/col)",
                    flops / tg / 1e9,
                    g * 1e9 * tg / ((w.len() / ty.block_bytes()) * n) as f64
                );
            }
            println!("{line}");
        }
    });
}

#[allow(dead_code)]
pub fn gemm512() {}
