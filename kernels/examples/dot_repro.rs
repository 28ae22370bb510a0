//! Replays a vec_dot fuzz input (fuzz/fuzz_targets/vec_dot.rs, arbitrary mode) and prints each
//! table's dot product: `cargo run --release -p gq-kernels --example dot_repro -- FILE`.
use gq_kernels::{all_tables, kernels_for, GgmlType, Isa};

fn main() {
    let path = std::env::args().nth(1).expect("usage: dot_repro FILE");
    let data = std::fs::read(&path).expect("read");
    let mut p = 0usize;
    let mut u8 = || {
        let b = data.get(p).copied().unwrap_or(0);
        p += 1;
        b
    };
    let ty = GgmlType::WEIGHTS[u8() as usize % GgmlType::WEIGHTS.len()];
    let mode = u8();
    let nb = 1 + u8() as usize % 16;
    let bb = ty.block_bytes();
    let w: Vec<u8> = (0..nb * bb).map(|_| u8()).collect();
    let n = nb * ty.block_size();
    let x: Vec<f32> = (0..n)
        .map(|_| f32::from_le_bytes([u8(), u8(), u8(), u8()]))
        .collect();
    println!("{ty} mode {mode} nb {nb}; x[..20] = {:?}", &x[..20.min(n)]);
    let s = kernels_for(Isa::Scalar).unwrap();
    let at = ty.vec_dot_type().unwrap();
    let mut a = vec![0u8; at.row_bytes(n).unwrap()];
    s.quantize_row(at, &x, &mut a);
    println!(
        "act d = {:?}; act bytes[..40] = {:02x?}",
        f32::from_le_bytes([a[0], a[1], a[2], a[3]]),
        &a[..40]
    );
    println!("w[..16] = {:02x?}", &w[..16]);
    println!("scalar: {}", s.vec_dot(ty, &w, &a));
    for k in all_tables() {
        let mut ak = vec![0u8; a.len()];
        k.quantize_row(at, &x, &mut ak);
        if ak != a {
            let i = ak.iter().zip(&a).position(|(p, q)| p != q).unwrap();
            println!(
                "  {:?} {at} quantizer differs from scalar at byte {i}: {:02x?} vs {:02x?}",
                k.isa(),
                &ak[i.saturating_sub(2)..i + 6],
                &a[i.saturating_sub(2)..i + 6]
            );
        }
        println!("{:?} {:?}: {}", k.isa(), k.path(ty), k.vec_dot(ty, &w, &a));
        let cols = n;
        if k.gemm_is_tiled(ty, cols, 16, gq_kernels::FloatAct::F32) {
            let xs: Vec<f32> = (0..16).flat_map(|_| x.iter().copied()).collect();
            let mut ys = vec![0f32; 16];
            let mut scratch = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, 16)];
            k.gemm_as(
                ty,
                &w,
                1,
                cols,
                &xs,
                &mut ys,
                &mut scratch,
                gq_kernels::FloatAct::F32,
            );
            println!("    tiled GEMM (16 columns): {}", ys[0]);
        }
    }
}
