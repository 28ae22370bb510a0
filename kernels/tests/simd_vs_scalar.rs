//! Every SIMD kernel this CPU can run against the scalar reference, on random data with odd
//! sizes (1 block, a few, many; float rows with tails that are not a multiple of the vector
//! width; many rows for GEMV / GEMM).
//!
//! Bounds:
//! - dequantization: bit-exact (both sides do the same f32 multiplies and adds);
//! - quantized dot products with scales in {½, 1, 2} and small activations: bit-exact. Every
//!   intermediate is then a float with few significant bits, so any order of accumulation
//!   gives the same value and any difference is a bug in the integer part;
//! - quantized dot products on realistic data: `|simd − scalar| ≤ (nb + 4)·2⁻²¹·M`, where nb
//!   is the number of blocks and `M = Σ |scale part|·|a| + |min part|·|a|` over elements (the
//!   magnitude of what is summed): both sides round each block term a few times and
//!   accumulate in a different order;
//! - float dot products: exact for small-integer data, else `|simd − scalar| ≤
//!   (n + 16)·2⁻²³·Σ|w·x|` (the textbook bound on two summation orders of n terms);
//! - GEMV / GEMM: bit-identical to the same table's `vec_dot` per row, for any thread count;
//! - BF16 weights × BF16-rounded activations (`vdpbf16ps`): against an f64 sum of the exact
//!   products of the BF16 values, `≤ (n/16 + 16)·2⁻²³·Σ|w·x|` (each product is exact in f32; a
//!   lane adds n/16 of them, then 16 lanes and 4 accumulators are reduced); the f32 → BF16
//!   rounding is ggml's (ties to even) and checked against `half`.

use gq_kernels::blocks::{QK, QK_K};
mod common;
use common::rng::Rng;
use common::{isas, pools};
use gq_kernels::{act_bytes, gemv_scratch_bytes, kernels_for, FloatAct, GgmlType, Isa, Kernels};

fn f16b(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_bits().to_le_bytes()
}

/// Offsets of the f16 scale fields and of the (possibly negative) f16 min fields of a block.
fn f16_fields(ty: GgmlType) -> (&'static [usize], &'static [usize]) {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => (&[0], &[]),
        GgmlType::Q4_1 | GgmlType::Q5_1 => (&[0], &[2]),
        GgmlType::Q2_K => (&[80], &[82]),
        GgmlType::Q3_K => (&[108], &[]),
        GgmlType::Q4_K | GgmlType::Q5_K => (&[0], &[2]),
        GgmlType::Q6_K => (&[208], &[]),
        _ => (&[], &[]),
    }
}

/// Random weight bytes for `nb` blocks of `ty`: random quants, scales from `scale()`, and
/// Q8_0 quants kept in ±127 (what the quantizer makes; the SIMD sign trick needs it).
fn weights(
    rng: &mut Rng,
    ty: GgmlType,
    n: usize,
    scale: &mut dyn FnMut(&mut Rng) -> f32,
) -> Vec<u8> {
    if ty.is_float() {
        let mut out = Vec::with_capacity(n * ty.block_bytes());
        for _ in 0..n {
            let v = scale(rng) * rng.normal();
            match ty {
                GgmlType::F32 => out.extend_from_slice(&v.to_le_bytes()),
                GgmlType::F16 => out.extend_from_slice(&f16b(v)),
                _ => out.extend_from_slice(&((v.to_bits() >> 16) as u16).to_le_bytes()),
            }
        }
        return out;
    }
    let bb = ty.block_bytes();
    let nb = n / ty.block_size();
    let mut out: Vec<u8> = (0..nb * bb).map(|_| rng.next() as u8).collect();
    let (ds, ms) = f16_fields(ty);
    for b in out.chunks_exact_mut(bb) {
        for &o in ds {
            b[o..o + 2].copy_from_slice(&f16b(scale(rng)));
        }
        for &o in ms {
            let s = if rng.below(2) == 0 { -1.0 } else { 1.0 };
            b[o..o + 2].copy_from_slice(&f16b(s * scale(rng)));
        }
        if ty == GgmlType::Q8_0 {
            for q in &mut b[2..] {
                if *q == 0x80 {
                    *q = 0x81;
                }
            }
        }
    }
    out
}

/// An activation row for `ty` from realistic f32 data, quantized by the scalar reference.
fn activation(rng: &mut Rng, ty: GgmlType, n: usize) -> (Vec<f32>, Vec<u8>) {
    let x: Vec<f32> = (0..n).map(|_| rng.normal() * 3.0).collect();
    let k = kernels_for(Isa::Scalar).unwrap();
    let a = if ty.is_float() {
        x.iter().flat_map(|v| v.to_le_bytes()).collect()
    } else {
        let mut a = vec![0u8; act_bytes(ty, n)];
        k.quantize_row(ty.vec_dot_type().unwrap(), &x, &mut a);
        a
    };
    (x, a)
}

/// An activation row with small quants (±4) and scales in {½, 1, 2}: every float the dot
/// products make is exact.
fn exact_activation(rng: &mut Rng, ty: GgmlType, n: usize) -> Vec<u8> {
    let p2 = [0.5f32, 1.0, 2.0];
    match ty.vec_dot_type().unwrap() {
        GgmlType::F32 => (0..n)
            .flat_map(|_| ((rng.below(17) as f32 - 8.0) * rng.pick(&p2)).to_le_bytes())
            .collect(),
        GgmlType::Q8_0 | GgmlType::Q8_1 => {
            let bb = ty.vec_dot_type().unwrap().block_bytes();
            let off = bb - QK;
            let mut out = vec![0u8; n / QK * bb];
            for b in out.chunks_exact_mut(bb) {
                b[0..2].copy_from_slice(&f16b(rng.pick(&p2)));
                if off == 4 {
                    b[2..4].copy_from_slice(&f16b(rng.below(9) as f32 - 4.0));
                }
                for q in &mut b[off..] {
                    *q = (rng.below(9) as i8 - 4) as u8;
                }
            }
            out
        }
        _ => {
            let mut out = vec![0u8; n / QK_K * 292];
            for b in out.chunks_exact_mut(292) {
                b[0..4].copy_from_slice(&rng.pick(&p2).to_le_bytes());
                for q in &mut b[4..260] {
                    *q = (rng.below(9) as i8 - 4) as u8;
                }
                for g in 0..16 {
                    let s: i16 = b[4 + 16 * g..20 + 16 * g]
                        .iter()
                        .map(|&q| q as i8 as i16)
                        .sum();
                    b[260 + 2 * g..262 + 2 * g].copy_from_slice(&s.to_le_bytes());
                }
            }
            out
        }
    }
}

/// Lengths (in elements) to test for `ty`: one block, a few, an odd number of many.
fn lengths(ty: GgmlType) -> Vec<usize> {
    match ty.block_size() {
        1 => vec![1, 7, 16, 31, 64, 65, 100, 257, 1000, 4099],
        32 => vec![32, 64, 96, 224, 32 * 31, 32 * 128],
        _ => vec![256, 512, 768, 256 * 7, 256 * 16],
    }
}

/// The SIMD tables this CPU runs, for the test `what` (every test below compares each table
/// it gets on every type and length, so the tables returned are the paths exercised; see
/// `common/isas.rs` for what is said or required about the others).
fn simd_tables(what: &str) -> Vec<&'static Kernels> {
    // Every table: AVX2, both AVX-512 tunings (Zen and Intel kernels), NEON.
    let tables: Vec<&'static Kernels> = gq_kernels::all_tables()
        .into_iter()
        .filter(|k| k.isa() != Isa::Scalar)
        .collect();
    let isas: Vec<Isa> = tables.iter().map(|k| k.isa()).collect();
    isas::check_exercised(what, &isas);
    tables
}

/// The types with an implementation (dequantizer) in gq.
fn implemented() -> impl Iterator<Item = GgmlType> {
    GgmlType::ALL
        .into_iter()
        .filter(|&t| gq_kernels::format(t).is_some())
}

fn scalar() -> &'static Kernels {
    kernels_for(Isa::Scalar).unwrap()
}

#[test]
fn reports_isas() {
    let isas: Vec<_> = simd_tables("reports_isas")
        .iter()
        .map(|k| k.isa())
        .collect();
    eprintln!("SIMD tables tested on this CPU: {isas:?}");
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        assert!(isas.contains(&Isa::Avx2));
    }
}

#[test]
fn dequantize_bit_exact() {
    let mut rng = Rng(0x1234_5678);
    for k in simd_tables("dequantize_bit_exact") {
        for ty in implemented() {
            for n in lengths(ty) {
                let w = if ty == GgmlType::Q8_1 || ty == GgmlType::Q8_K {
                    activation(&mut rng, ty, n).1
                } else {
                    weights(&mut rng, ty, n, &mut |r| 0.001 + r.uniform() * 0.1)
                };
                let mut want = vec![0f32; n];
                let mut got = vec![1f32; n];
                scalar().dequantize_row(ty, &w, &mut want);
                k.dequantize_row(ty, &w, &mut got);
                for i in 0..n {
                    assert_eq!(
                        got[i].to_bits(),
                        want[i].to_bits(),
                        "{} {ty} n={n} element {i}: {} vs scalar {}",
                        k.isa(),
                        got[i],
                        want[i]
                    );
                }
            }
        }
    }
}

#[test]
fn dot_bit_exact_on_exact_data() {
    let mut rng = Rng(0xdead_beef);
    let p2 = [0.5f32, 1.0, 2.0];
    for k in simd_tables("dot_bit_exact_on_exact_data") {
        for ty in GgmlType::WEIGHTS {
            for n in lengths(ty) {
                for _ in 0..4 {
                    let w = if ty.is_float() {
                        // Small integers times ½, 1, 2.
                        let mut w = weights(&mut rng, ty, n, &mut |_| 0.0);
                        let bb = ty.block_bytes();
                        for c in w.chunks_exact_mut(bb) {
                            let v = (rng.below(17) as f32 - 8.0) * rng.pick(&p2);
                            match ty {
                                GgmlType::F32 => c.copy_from_slice(&v.to_le_bytes()),
                                GgmlType::F16 => c.copy_from_slice(&f16b(v)),
                                _ => c.copy_from_slice(&((v.to_bits() >> 16) as u16).to_le_bytes()),
                            }
                        }
                        w
                    } else {
                        weights(&mut rng, ty, n, &mut |r| r.pick(&p2))
                    };
                    let a = exact_activation(&mut rng, ty, n);
                    let want = scalar().vec_dot(ty, &w, &a);
                    let got = k.vec_dot(ty, &w, &a);
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{} {ty} n={n}: {got} vs scalar {want}",
                        k.isa()
                    );
                }
            }
        }
    }
}

/// Zeroes the f16 fields at `offs` in every block.
fn zero_fields(ty: GgmlType, w: &[u8], offs: &[usize]) -> Vec<u8> {
    let mut w = w.to_vec();
    for b in w.chunks_exact_mut(ty.block_bytes()) {
        for &o in offs {
            b[o] = 0;
            b[o + 1] = 0;
        }
    }
    w
}

/// `M` of the module docs: Σ (|scale part| + |min part|)·|a| in f64.
fn magnitude(ty: GgmlType, w: &[u8], a: &[u8], n: usize) -> f64 {
    let s = scalar();
    let mut av = vec![0f32; n];
    s.dequantize_row(ty.vec_dot_type().unwrap(), a, &mut av);
    let (ds, ms) = f16_fields(ty);
    let mut scale_part = vec![0f32; n];
    s.dequantize_row(ty, &zero_fields(ty, w, ms), &mut scale_part);
    let mut min_part = vec![0f32; n];
    if !ms.is_empty() {
        s.dequantize_row(ty, &zero_fields(ty, w, ds), &mut min_part);
    }
    (0..n)
        .map(|i| (scale_part[i].abs() as f64 + min_part[i].abs() as f64) * av[i].abs() as f64)
        .sum()
}

#[test]
fn dot_within_bound_on_realistic_data() {
    let mut rng = Rng(0x0bad_cafe);
    for k in simd_tables("dot_within_bound_on_realistic_data") {
        for ty in GgmlType::WEIGHTS {
            for n in lengths(ty) {
                for _ in 0..4 {
                    let w = weights(&mut rng, ty, n, &mut |r| 0.0005 + r.uniform() * 0.05);
                    let (_, a) = activation(&mut rng, ty, n);
                    let want = scalar().vec_dot(ty, &w, &a) as f64;
                    let got = k.vec_dot(ty, &w, &a) as f64;
                    let m = magnitude(ty, &w, &a, n);
                    let bound = if ty.is_float() {
                        (n as f64 + 16.0) * 2f64.powi(-23) * m
                    } else {
                        let nb = (n / ty.block_size()) as f64;
                        (nb + 4.0) * 2f64.powi(-21) * m
                    };
                    assert!(
                        (got - want).abs() <= bound,
                        "{} {ty} n={n}: {got} vs scalar {want}, |diff| {} > bound {bound}",
                        k.isa(),
                        (got - want).abs()
                    );
                }
            }
        }
    }
}

/// `Σ |w·a|` of a BF16 weight row and a BF16-rounded activation row (`cols` elements each):
/// the magnitude the BF16 × BF16 bounds scale with.
fn bf16_bf16_magnitude(w: &[u8], a: &[u8], cols: usize) -> f64 {
    let (mut wv, mut av) = (vec![0f32; cols], vec![0f32; cols]);
    scalar().dequantize_row(GgmlType::BF16, w, &mut wv);
    scalar().dequantize_row(GgmlType::BF16, a, &mut av);
    wv.iter()
        .zip(&av)
        .map(|(p, q)| (*p as f64 * *q as f64).abs())
        .sum()
}

#[test]
fn gemv_and_gemm_match_vec_dot_for_any_thread_count() {
    let mut rng = Rng(42);
    let pools = pools(&[1, 2, 3]);
    let mut tables = simd_tables("gemv_and_gemm_match_vec_dot_for_any_thread_count");
    tables.push(scalar());
    for k in tables {
        for ty in GgmlType::WEIGHTS {
            let cols = if ty.block_size() == QK_K { 512 } else { 96 };
            for rows in [1usize, 5, 67] {
                let w = weights(&mut rng, ty, rows * cols, &mut |r| {
                    0.001 + r.uniform() * 0.02
                });
                let rb = ty.row_bytes(cols).unwrap();
                let n = 3;
                let xs: Vec<f32> = (0..n * cols).map(|_| rng.normal()).collect();
                let mut scratch = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, n)];
                // Reference: vec_dot per (row, column).
                let mut want = vec![0f32; n * rows];
                for j in 0..n {
                    let x = &xs[j * cols..(j + 1) * cols];
                    let mut s1 = vec![0u8; gemv_scratch_bytes(ty, cols)];
                    let a = k.prepare_activation(ty, x, &mut s1).to_vec();
                    for r in 0..rows {
                        want[j * rows + r] = k.vec_dot(ty, &w[r * rb..(r + 1) * rb], &a);
                    }
                }
                for pool in &pools {
                    let mut ys = vec![f32::NAN; n * rows];
                    pool.install(|| k.gemm(ty, &w, rows, cols, &xs, &mut ys, &mut scratch));
                    assert_eq!(bits(&ys), bits(&want), "{} {ty} gemm rows={rows}", k.isa());
                    for j in 0..n {
                        let mut y = vec![f32::NAN; rows];
                        let x = &xs[j * cols..(j + 1) * cols];
                        pool.install(|| k.gemv(ty, &w, x, &mut y, &mut scratch));
                        assert_eq!(
                            bits(&y),
                            bits(&want[j * rows..(j + 1) * rows]),
                            "{} {ty} gemv rows={rows}",
                            k.isa()
                        );
                    }
                }
            }
        }
    }
}

/// GEMM against per-column GEMV (bit-identical, 1 and 3 threads) and against the scalar
/// reference (the realistic-data bound per output) on shapes that are not multiples of the
/// GEMM tiles (rows not a multiple of 8, blocks per row not a multiple of the 8-block K chunk,
/// columns not a multiple of 8).
#[test]
fn gemm_matches_gemv_and_scalar_on_odd_shapes() {
    let mut rng = Rng(0x6e6d);
    let pools = pools(&[1, 3]);
    let mut tables = simd_tables("gemm_matches_gemv_and_scalar_on_odd_shapes");
    tables.push(scalar());
    for k in tables {
        for ty in GgmlType::WEIGHTS {
            let bs = ty.block_size().max(16);
            for (rows, nb, n) in [(1usize, 1usize, 9usize), (9, 13, 11), (17, 3, 17)] {
                let cols = bs * nb;
                let w = weights(&mut rng, ty, rows * cols, &mut |r| {
                    0.001 + r.uniform() * 0.02
                });
                let rb = ty.row_bytes(cols).unwrap();
                let xs: Vec<f32> = (0..n * cols).map(|_| rng.normal() * 3.0).collect();
                let mut scratch = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, n)];
                // Per-column GEMV, the reference for bit-identity.
                let mut want = vec![0f32; n * rows];
                for j in 0..n {
                    let x = &xs[j * cols..(j + 1) * cols];
                    pools[0].install(|| {
                        k.gemv(ty, &w, x, &mut want[j * rows..(j + 1) * rows], &mut scratch)
                    });
                }
                // The tiled path (n ≥ GEMM_TILE_MIN_N) is checked against the scalar bound and
                // for thread-count independence instead (`tiled_gemm_*`).
                let tiled = k.gemm_is_tiled(ty, cols, n, k.default_act(ty));
                let mut first: Option<Vec<f32>> = None;
                for pool in &pools {
                    let mut ys = vec![f32::NAN; n * rows];
                    pool.install(|| k.gemm(ty, &w, rows, cols, &xs, &mut ys, &mut scratch));
                    let reference = if tiled {
                        first.get_or_insert(ys.clone())
                    } else {
                        &want
                    };
                    assert_eq!(
                        bits(&ys),
                        bits(reference),
                        "{} {ty} gemm rows={rows} cols={cols} n={n} threads={} (tiled: {tiled})",
                        k.name(),
                        pool.current_num_threads()
                    );
                }
                let mut outs = vec![("gemv", want.clone())];
                if let Some(t) = first {
                    outs.push(("tiled gemm", t));
                }
                // Against the scalar reference on the scalar table's activations.
                let s = scalar();
                for (what, want) in &outs {
                    for j in 0..n {
                        let x = &xs[j * cols..(j + 1) * cols];
                        let mut sa = vec![0u8; gemv_scratch_bytes(ty, cols)];
                        let act = k.default_act(ty);
                        let a = s.prepare_activation_as(ty, x, &mut sa, act).to_vec();
                        for r in 0..rows {
                            let wr = &w[r * rb..(r + 1) * rb];
                            let ref_v = s.vec_dot(ty, wr, &a) as f64;
                            let got = want[j * rows + r] as f64;
                            let bound = if ty.is_float() {
                                let m: f64 = if ty == GgmlType::BF16 && a.len() == wr.len() {
                                    bf16_bf16_magnitude(wr, &a, cols)
                                } else {
                                    magnitude(ty, wr, &a, cols)
                                };
                                (cols as f64 + 16.0) * 2f64.powi(-23) * m
                            } else {
                                (nb as f64 + 4.0) * 2f64.powi(-21) * magnitude(ty, wr, &a, cols)
                            };
                            assert!(
                            (got - ref_v).abs() <= bound,
                            "{} {ty} {what} rows={rows} cols={cols} n={n} (r={r}, j={j}): {got} vs scalar {ref_v}, bound {bound}",
                            k.name()
                        );
                        }
                    }
                }
            }
        }
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn gemv_approximates_f32_matmul() {
    // End to end: quantize f32 weights with a crude per-block Q8_0 and check y against an f64
    // product of the dequantized weights (catches row/column mix-ups in every table).
    let mut rng = Rng(7);
    let (rows, cols) = (33, 256);
    let wf: Vec<f32> = (0..rows * cols).map(|_| rng.normal()).collect();
    let x: Vec<f32> = (0..cols).map(|_| rng.normal()).collect();
    let s = scalar();
    let mut w = vec![0u8; GgmlType::Q8_0.row_bytes(cols).unwrap() * rows];
    for (src, dst) in wf
        .chunks_exact(cols)
        .zip(w.chunks_exact_mut(GgmlType::Q8_0.row_bytes(cols).unwrap()))
    {
        s.quantize_row(GgmlType::Q8_0, src, dst);
    }
    let mut deq = vec![0f32; rows * cols];
    s.dequantize_row(GgmlType::Q8_0, &w, &mut deq);
    let mut tables = simd_tables("gemv_approximates_f32_matmul");
    tables.push(s);
    for k in tables {
        let mut y = vec![0f32; rows];
        let mut scratch = vec![0u8; gemv_scratch_bytes(GgmlType::Q8_0, cols)];
        k.gemv(GgmlType::Q8_0, &w, &x, &mut y, &mut scratch);
        for r in 0..rows {
            let exact: f64 = (0..cols)
                .map(|c| deq[r * cols + c] as f64 * x[c] as f64)
                .sum();
            let norm: f64 = (0..cols)
                .map(|c| (deq[r * cols + c] as f64 * x[c] as f64).abs())
                .sum();
            assert!(
                (y[r] as f64 - exact).abs() <= 0.02 * norm,
                "{} row {r}: {} vs {exact}",
                k.isa(),
                y[r]
            );
        }
    }
}

#[test]
fn quantizers_known_values() {
    let s = scalar();
    // Q8_K: the first element of largest magnitude sets the sign of the scale.
    let mut x = [0f32; QK_K];
    x[3] = -2.0;
    x[10] = 2.0;
    x[20] = 1.0;
    x[21] = 0.5 * 2.0 / 127.0; // exactly half a step: rounds to even (0)
    let mut b = vec![0u8; 292];
    s.quantize_row(GgmlType::Q8_K, &x, &mut b);
    let d = f32::from_le_bytes(b[0..4].try_into().unwrap());
    assert_eq!(d, 1.0 / (-127.0 / -2.0));
    assert_eq!(b[4 + 3] as i8, -127);
    assert_eq!(b[4 + 10] as i8, 127);
    assert_eq!(b[4 + 20] as i8, 64); // 63.5 rounds to even
    assert_eq!(b[4 + 21] as i8, 0);
    let bs0 = i16::from_le_bytes([b[260], b[261]]);
    assert_eq!(bs0, -127 + 127);
    // A zero block: zero scale, quants and sums.
    let mut z = vec![0xffu8; 292];
    s.quantize_row(GgmlType::Q8_K, &[0.0; QK_K], &mut z);
    assert!(z.iter().all(|&v| v == 0));
    // Q8_0 / Q8_1: roundf (half away from zero) and Q8_1's sum.
    let mut x = [0f32; QK];
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = -2.5;
    let mut q0 = vec![0u8; 34];
    s.quantize_row(GgmlType::Q8_0, &x, &mut q0);
    assert_eq!((q0[2] as i8, q0[3] as i8, q0[4] as i8), (127, 3, -3));
    let mut q1 = vec![0u8; 36];
    s.quantize_row(GgmlType::Q8_1, &x, &mut q1);
    assert_eq!(q1[4..], q0[2..]);
    let sum = half::f16::from_le_bytes([q1[2], q1[3]]).to_f32();
    assert_eq!(sum, 127.0);
}

#[test]
fn isa_names_round_trip() {
    for i in Isa::ALL {
        assert_eq!(Isa::parse(i.name()), Some(i));
    }
    assert_eq!(Isa::parse("AVX512"), Some(Isa::Avx512));
    assert_eq!(Isa::parse("sse"), None);
    for t in GgmlType::ALL {
        assert_eq!(GgmlType::from_id(t.id()), Some(t));
        assert_eq!(GgmlType::parse(t.name()), Some(t));
    }
}

#[test]
fn scalar_dot_matches_dequantized_product() {
    // The scalar dot products against Σ dequant(w)·dequant(a) in f64 (the dequantizers are
    // checked against gguf-py by the root crate's tests/kernels_vs_gguf_py.rs). Q4_1 / Q5_1
    // use Q8_1's f16-rounded block sum for the min term, hence their looser bound.
    let mut rng = Rng(99);
    let s = scalar();
    for ty in GgmlType::WEIGHTS {
        for n in lengths(ty) {
            let w = weights(&mut rng, ty, n, &mut |r| 0.0005 + r.uniform() * 0.05);
            let (_, a) = activation(&mut rng, ty, n);
            let mut wd = vec![0f32; n];
            let mut ad = vec![0f32; n];
            s.dequantize_row(ty, &w, &mut wd);
            s.dequantize_row(ty.vec_dot_type().unwrap(), &a, &mut ad);
            let exact: f64 = wd.iter().zip(&ad).map(|(&p, &q)| p as f64 * q as f64).sum();
            let got = s.vec_dot(ty, &w, &a) as f64;
            let m = magnitude(ty, &w, &a, n);
            let rel = if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
                2e-3
            } else {
                2e-5
            };
            assert!(
                (got - exact).abs() <= rel * m + 1e-6,
                "{ty} n={n}: scalar dot {got} vs dequantized {exact} (M {m})"
            );
            assert!(m > 0.0, "{ty}: degenerate test data");
        }
    }
}

#[test]
fn activation_quantizers_bit_exact() {
    let mut rng = Rng(5);
    for k in simd_tables("activation_quantizers_bit_exact") {
        for ty in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K] {
            for n in [QK_K, 2 * QK_K, 8 * QK_K] {
                let mut x: Vec<f32> = (0..n).map(|_| rng.normal() * 10.0).collect();
                // Ties: values that land exactly on .5 steps, zero blocks, one-hot blocks.
                for v in &mut x[..QK] {
                    *v = (rng.below(255) as f32 - 127.0) * 0.5;
                }
                x[QK..2 * QK].fill(0.0);
                x[2 * QK..3 * QK].fill(0.0);
                x[2 * QK + 5] = -3.0;
                let mut want = vec![0u8; ty.row_bytes(n).unwrap()];
                let mut got = vec![0xffu8; ty.row_bytes(n).unwrap()];
                scalar().quantize_row(ty, &x, &mut want);
                k.quantize_row(ty, &x, &mut got);
                assert_eq!(got, want, "{} {ty} n={n}", k.isa());
            }
        }
    }
}

#[test]
fn f32_to_bf16_rounds_like_ggml() {
    use gq_kernels::num::f32_to_bf16;
    // Ties to even: 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷ → 1; 1 + 3·2⁻⁸ → 1 + 2⁻⁶.
    assert_eq!(f32_to_bf16(1.0 + 2f32.powi(-8)), 0x3f80);
    assert_eq!(f32_to_bf16(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
    assert_eq!(f32_to_bf16(-2.0), 0xc000);
    assert_eq!(f32_to_bf16(f32::INFINITY), 0x7f80);
    assert_eq!(f32_to_bf16(f32::MAX), 0x7f80); // rounds up to infinity, as ggml
    assert!(half::bf16::from_bits(f32_to_bf16(f32::NAN)).is_nan());
    let mut rng = Rng(99);
    for _ in 0..100_000 {
        let x = f32::from_bits(rng.next() as u32);
        if x.is_nan() {
            continue;
        }
        assert_eq!(f32_to_bf16(x), half::bf16::from_f32(x).to_bits(), "{x:e}");
    }
}

#[test]
fn bf16_activation_dot_within_bound() {
    let mut rng = Rng(1234);
    let mut tables = simd_tables("bf16_activation_dot_within_bound");
    tables.push(scalar());
    let ty = GgmlType::BF16;
    for k in tables {
        for n in lengths(ty).into_iter().chain([32, 127, 128, 129, 14336]) {
            let w: Vec<u8> = (0..n)
                .flat_map(|_| half::bf16::from_f32(rng.normal() * 0.05).to_le_bytes())
                .collect();
            let x: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            let mut scratch = vec![0u8; gemv_scratch_bytes(ty, n)];
            let a = k
                .prepare_activation_as(ty, &x, &mut scratch, FloatAct::Bf16)
                .to_vec();
            assert_eq!(a.len(), 2 * n);
            let bf =
                |b: &[u8], i: usize| half::bf16::from_le_bytes([b[2 * i], b[2 * i + 1]]).to_f64();
            let (mut want, mut mag) = (0f64, 0f64);
            for (i, &xi) in x.iter().enumerate() {
                assert_eq!(bf(&a, i), half::bf16::from_f32(xi).to_f64());
                want += bf(&w, i) * bf(&a, i);
                mag += (bf(&w, i) * bf(&a, i)).abs();
            }
            let got = k.vec_dot(ty, &w, &a) as f64;
            let bound = ((n / 16) as f64 + 16.0) * 2f64.powi(-23) * mag;
            assert!(
                (got - want).abs() <= bound,
                "{} BF16×BF16 n={n}: {got} vs {want}, bound {bound}",
                k.isa()
            );
            // And the BF16 rounding costs at most 2⁻⁸ relative per activation vs f32 activations.
            let exact: f64 = (0..n).map(|i| bf(&w, i) * x[i] as f64).sum();
            assert!((got - exact).abs() <= 2f64.powi(-8) * mag + bound);
            // GEMV with explicit formats: Bf16 equals vec_dot on the BF16 row, F32 equals
            // vec_dot on the f32 row.
            let rows = 3;
            let wm: Vec<u8> = w.iter().copied().cycle().take(rows * w.len()).collect();
            let mut y = vec![f32::NAN; rows];
            k.gemv_as(ty, &wm, &x, &mut y, &mut scratch, FloatAct::Bf16);
            assert_eq!(
                bits(&y),
                bits(&[got as f32; 3]),
                "{} gemv_as Bf16 n={n}",
                k.isa()
            );
            k.gemv_as(ty, &wm, &x, &mut y, &mut scratch, FloatAct::F32);
            let xb: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
            let f = k.vec_dot(ty, &w, &xb);
            assert_eq!(bits(&y), bits(&[f; 3]), "{} gemv_as F32 n={n}", k.isa());
        }
    }
}

#[test]
fn bf16_activation_is_default_where_native() {
    for k in simd_tables("bf16_activation_is_default_where_native") {
        let native = k.has_native_bf16_act();
        assert_eq!(
            native,
            k.isa() == Isa::Avx512 && std::is_x86_feature_detected!("avx512bf16")
        );
        let want = if native && std::env::var("GQ_KERNELS_BF16_ACT").as_deref() != Ok("0") {
            FloatAct::Bf16
        } else {
            FloatAct::F32
        };
        assert_eq!(k.default_act(GgmlType::BF16), want);
        assert_eq!(k.default_act(GgmlType::F16), FloatAct::F32);
    }
    assert_eq!(scalar().default_act(GgmlType::BF16), FloatAct::F32);
}

/// Q3_K's SIMD dots on any bytes with finite scales stay within the k-quants' bound of the
/// scalar reference, `(nb + 4)·2⁻²¹·Σ|w·a|` (the AVX2 one is bit-identical: it sums each block's
/// integer products exactly; the AVX-512 one keeps true per-lane partial sums). Fuzz finding:
/// f32 lanes that held the +4 offsets and their corrections apart lost later blocks to rounding
/// (fuzz/regressions/vec_dot/q3k-*-lanes-cancel-in-f32), far outside this bound.
#[test]
fn q3_k_dot_within_bound_on_any_bytes() {
    let name = "q3_k_dot_within_bound_on_any_bytes";
    bit_exact_on_any_bytes(
        GgmlType::Q3_K,
        0x0b3c_4d5e_6f70_8192,
        108,
        [1e-3, 1.0, 1e3, 1e6],
        Check::Bounded,
        name,
    );
}

/// What [`bit_exact_on_any_bytes`] asks of every SIMD table.
#[derive(Clone, Copy, PartialEq)]
enum Check {
    /// The scalar reference's bits, or NaN where it gives NaN.
    ExactOrBothNan,
    /// Within `(nb + 4)·2⁻²¹·Σ|w·a|` of the scalar reference.
    Bounded,
}

/// Random blocks of `ty` whose f16 scale at byte `d_at` is any finite value (subnormal to 65504,
/// either sign), dotted with normal activations times each of `scales` in turn: every SIMD
/// table must meet `check` against the scalar reference.
fn bit_exact_on_any_bytes(
    ty: GgmlType,
    seed: u64,
    d_at: usize,
    scales: [f32; 4],
    check: Check,
    name: &str,
) {
    let mut rng = Rng(seed);
    let tables = simd_tables(name);
    for trial in 0..400 {
        let nb = 1 + rng.below(12) as usize;
        let n = nb * QK_K;
        let mut w: Vec<u8> = (0..nb * ty.block_bytes())
            .map(|_| rng.next() as u8)
            .collect();
        for b in w.chunks_exact_mut(ty.block_bytes()) {
            let e = rng.below(31) as u16;
            let bits = (rng.below(2) as u16) << 15 | e << 10 | rng.below(1024) as u16;
            b[d_at..d_at + 2].copy_from_slice(&bits.to_le_bytes());
        }
        let scale = scales[trial % 4];
        let x: Vec<f32> = (0..n).map(|_| rng.normal() * scale).collect();
        let mut a = vec![0u8; act_bytes(ty, n)];
        scalar().quantize_row(GgmlType::Q8_K, &x, &mut a);
        let want = scalar().vec_dot(ty, &w, &a);
        let bound = if check == Check::Bounded {
            let (mut wf, mut af) = (vec![0f32; n], vec![0f32; n]);
            scalar().dequantize_row(ty, &w, &mut wf);
            scalar().dequantize_row(GgmlType::Q8_K, &a, &mut af);
            let m: f64 = wf
                .iter()
                .zip(&af)
                .map(|(p, q)| (*p as f64 * *q as f64).abs())
                .sum();
            (nb as f64 + 4.0) * 2f64.powi(-21) * m
        } else {
            0.0
        };
        for k in &tables {
            let got = k.vec_dot(ty, &w, &a);
            let ok = got.to_bits() == want.to_bits()
                || (check == Check::ExactOrBothNan && got.is_nan() && want.is_nan())
                || (check == Check::Bounded && (got as f64 - want as f64).abs() <= bound);
            assert!(
                ok,
                "{} {ty} trial {trial} n={n}: {got} vs scalar {want} (bound {bound})",
                k.isa()
            );
        }
    }
}

/// Q4_K with activations near f32's limit (Q8_K scale ~10^36) and a tiny `dmin`: the scalar
/// reference scales `dmin·d_a` first and stays finite; so must every SIMD table. Fuzz finding:
/// the Intel kernel stored `d_a·Σ` per 32 quants, which overflowed to infinity
/// (fuzz/regressions/vec_dot/q4k-intel-activation-group-sum-overflows).
#[test]
fn q4_k_dot_with_huge_activations_stays_finite() {
    let ty = GgmlType::Q4_K;
    let mut rng = Rng(0x4b4b_1234_5678_9abc);
    let tables = simd_tables("q4_k_dot_with_huge_activations_stays_finite");
    for trial in 0..50 {
        let nb = 1 + rng.below(4) as usize;
        let n = nb * QK_K;
        let mut w: Vec<u8> = (0..nb * ty.block_bytes())
            .map(|_| rng.next() as u8)
            .collect();
        for b in w.chunks_exact_mut(ty.block_bytes()) {
            b[0..2].copy_from_slice(&f16b(0.0)); // d
            b[2..4].copy_from_slice(&0x0100u16.to_le_bytes()); // dmin ≈ 1.5e-5
        }
        let x: Vec<f32> = (0..n).map(|_| rng.uniform() * 2.4e38).collect();
        let mut a = vec![0u8; act_bytes(ty, n)];
        scalar().quantize_row(GgmlType::Q8_K, &x, &mut a);
        let want = scalar().vec_dot(ty, &w, &a);
        assert!(want.is_finite(), "trial {trial}: scalar {want}");
        for k in &tables {
            let got = k.vec_dot(ty, &w, &a);
            assert!(
                (got - want).abs() <= want.abs() * 1e-5,
                "{} Q4_K trial {trial}: {got} vs scalar {want}",
                k.isa()
            );
        }
    }
}

/// Q4_K with an activation scale near 10^36 whose large values sit where the mins are zero and
/// zeros where the mins are large: the scalar reference multiplies `dmin·d_a` first and gives 0.
/// Fuzz finding: the Intel kernel scaled `−dmin·m` by `d_a` first, which overflowed to infinity
/// and times a zero group sum gave NaN
/// (fuzz/regressions/vec_dot/q4k-intel-min-times-activation-scale-overflows).
#[test]
fn q4_k_dot_min_terms_do_not_overflow() {
    let ty = GgmlType::Q4_K;
    let tables = simd_tables("q4_k_dot_min_terms_do_not_overflow");
    // d = dmin = −2.375; every scale byte 0xc0: sub-blocks 0..4 have scale and min 0, 4..8
    // scale 48 and min 60.
    let mut w = vec![0xc0u8; 16];
    w.extend((0..128).map(|i| (i * 37 + 11) as u8));
    let mut x = vec![0f32; QK_K];
    x[1] = -3.3e38;
    x[2] = 3.0e38;
    x[5] = 48.4;
    let mut a = vec![0u8; act_bytes(ty, QK_K)];
    scalar().quantize_row(GgmlType::Q8_K, &x, &mut a);
    let want = scalar().vec_dot(ty, &w, &a);
    assert_eq!(want, 0.0);
    for k in &tables {
        let got = k.vec_dot(ty, &w, &a);
        assert_eq!(got, want, "{} Q4_K: {got} vs scalar {want}", k.isa());
    }
}

/// Q6_K's SIMD dots reduce each block's integer sum exactly before the scalar reference's one
/// float step, so they equal scalar bit for bit on any bytes with finite scales, large ones
/// included. Fuzz finding: f32 lanes holding the −32 corrections apart from the products they
/// cancel overflowed to +inf and −inf (NaN) (fuzz/regressions/vec_dot/q6k-avx2-lanes-overflow).
#[test]
fn q6_k_dot_bit_exact_on_any_bytes() {
    let name = "q6_k_dot_bit_exact_on_any_bytes";
    bit_exact_on_any_bytes(
        GgmlType::Q6_K,
        0x6b6b_0fed_cba9_8765,
        208,
        [1e-3, 1.0, 1e6, 1e30],
        Check::ExactOrBothNan,
        name,
    );
}

/// GEMMs large enough to be split into several tasks (the guided row split of
/// `Kernels::gemm`, tasks claimed by whichever thread is free; rows not a multiple of the
/// tiles): bit-identical for 1, 3 and 4 threads, on the tiled path (n = 32) and the row path
/// (n = 8).
#[test]
fn split_gemm_same_bits_for_any_thread_count() {
    let mut rng = Rng(0x5b17);
    let pools = pools(&[1, 3, 4]);
    let mut tables = simd_tables("split_gemm_same_bits_for_any_thread_count");
    tables.push(scalar());
    for k in tables {
        for ty in [
            GgmlType::Q4_K,
            GgmlType::Q6_K,
            GgmlType::Q8_0,
            GgmlType::Q5_K,
        ] {
            let (rows, cols) = (300usize, 1024usize);
            let w = weights(&mut rng, ty, rows * cols, &mut |r| {
                0.001 + r.uniform() * 0.02
            });
            for n in [8usize, 32] {
                let xs: Vec<f32> = (0..n * cols).map(|_| rng.normal()).collect();
                let mut scratch = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, n)];
                let mut first: Option<Vec<f32>> = None;
                for pool in &pools {
                    let mut ys = vec![f32::NAN; n * rows];
                    pool.install(|| k.gemm(ty, &w, rows, cols, &xs, &mut ys, &mut scratch));
                    let want = first.get_or_insert(ys.clone());
                    assert_eq!(
                        bits(&ys),
                        bits(want),
                        "{} {ty} rows={rows} n={n} threads={}",
                        k.name(),
                        pool.current_num_threads()
                    );
                }
            }
        }
    }
}

/// The register-tiled GEMM (`Kernels::gemm` from `GEMM_TILE_MIN_N` columns on the AVX-512
/// tables, every k-quant, Q8_0, Q4_0, Q5_0, Q4_1, Q5_1 and the floats), which is not bit-identical to the GEMV: every output within
/// the scalar bound of `dot_within_bound_on_realistic_data`; bit-identical for 1, 2 and 3
/// threads; a column's result independent of the batch it is in (other columns, their order,
/// n, its position modulo the column tile, a subset). Shapes: rows not a multiple of 16, K of
/// one unit and across several K chunks, n at the threshold and not a multiple of 8.
#[test]
fn tiled_gemm_deterministic_and_within_scalar_bound() {
    let mut rng = Rng(0x711e);
    let pools = pools(&[1, 2, 3]);
    let m = gq_kernels::GEMM_TILE_MIN_N;
    let mut covered = 0;
    let mut exercised = Vec::new();
    let rows_forced = std::env::var("GQ_GEMM").is_ok_and(|v| v.trim() == "rows");
    for k in simd_tables("tiled_gemm_deterministic_and_within_scalar_bound") {
        for ty in [
            GgmlType::Q4_K,
            GgmlType::Q6_K,
            GgmlType::Q8_0,
            GgmlType::Q4_0,
            GgmlType::Q5_0,
            GgmlType::Q5_K,
            GgmlType::Q3_K,
            GgmlType::Q2_K,
            GgmlType::Q4_1,
            GgmlType::Q5_1,
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::BF16,
        ] {
            // K chunks: 4 superblocks (k-quants), 32 blocks (Q8_0, Q4_0, Q5_0), 512 (floats, which take
            // exact f32 activations here: BF16 too).
            let nbs: [usize; 3] = match ty.block_size() {
                32 => [1, 37, 13],
                1 => [32, 32 * 19, 32 * 3],
                _ => [1, 9, 5],
            };
            let mut acts = vec![FloatAct::F32];
            if ty == GgmlType::BF16 && k.has_native_bf16_act() {
                acts.push(FloatAct::Bf16);
            }
            for act in acts {
                for ((rows, n), nb) in [(5usize, m), (17, m + 3), (33, m + 11)]
                    .into_iter()
                    .zip(nbs)
                {
                    let cols = ty.block_size() * nb;
                    // The AVX2 table tiles every quantized type here (`x86::tile_avx2`):
                    // unless `GQ_GEMM=rows` forces the row path, not tiling them fails.
                    let must = k.isa() == Isa::Avx2 && !ty.is_float();
                    if !k.gemm_is_tiled(ty, cols, n, act) {
                        assert!(
                            !must || rows_forced,
                            "{} {ty}: the tiled GEMM was expected for cols={cols} n={n}",
                            k.name()
                        );
                        continue;
                    }
                    covered += 1;
                    exercised.push(k.isa());
                    let rb = ty.row_bytes(cols).unwrap();
                    let w = weights(&mut rng, ty, rows * cols, &mut |r| {
                        0.001 + r.uniform() * 0.02
                    });
                    let gemm = |pool: &rayon::ThreadPool, xs: &[f32]| {
                        let nn = xs.len() / cols;
                        let mut ys = vec![f32::NAN; nn * rows];
                        let mut scratch = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, nn)];
                        pool.install(|| {
                            k.gemm_as(ty, &w, rows, cols, xs, &mut ys, &mut scratch, act)
                        });
                        ys
                    };
                    let xs: Vec<f32> = (0..n * cols).map(|_| rng.normal() * 3.0).collect();
                    let ys = gemm(&pools[0], &xs);
                    for pool in &pools[1..] {
                        assert_eq!(
                            bits(&gemm(pool, &xs)),
                            bits(&ys),
                            "{} {ty} rows={rows} cols={cols} n={n} threads={}",
                            k.name(),
                            pool.current_num_threads()
                        );
                    }
                    // Another batch: 9 other columns first, then these in reverse order.
                    let extra = 9;
                    let mut xs2: Vec<f32> = (0..extra * cols).map(|_| rng.normal()).collect();
                    for j in (0..n).rev() {
                        xs2.extend_from_slice(&xs[j * cols..(j + 1) * cols]);
                    }
                    let ys2 = gemm(&pools[2], &xs2);
                    // A subset: the first `m` columns alone.
                    let ys3 = gemm(&pools[1], &xs[..m * cols]);
                    for j in 0..n {
                        let col = &ys[j * rows..(j + 1) * rows];
                        let j2 = extra + n - 1 - j;
                        assert_eq!(
                        bits(col),
                        bits(&ys2[j2 * rows..(j2 + 1) * rows]),
                        "{} {ty} rows={rows} cols={cols}: column {j} of {n} vs column {j2} of {}",
                        k.name(),
                        n + extra
                    );
                        if j < m {
                            assert_eq!(
                                bits(col),
                                bits(&ys3[j * rows..(j + 1) * rows]),
                                "{} {ty}: column {j} of {n} vs of {m}",
                                k.name()
                            );
                        }
                    }
                    // Against the scalar reference on the scalar table's activations.
                    let s = scalar();
                    for j in 0..n {
                        let mut sa = vec![0u8; gemv_scratch_bytes(ty, cols)];
                        let a = s
                            .prepare_activation_as(ty, &xs[j * cols..(j + 1) * cols], &mut sa, act)
                            .to_vec();
                        for r in 0..rows {
                            let wr = &w[r * rb..(r + 1) * rb];
                            let ref_v = s.vec_dot(ty, wr, &a) as f64;
                            let got = ys[j * rows + r] as f64;
                            let mag = if act == FloatAct::Bf16 {
                                bf16_bf16_magnitude(wr, &a, cols)
                            } else {
                                magnitude(ty, wr, &a, cols)
                            };
                            let bound = if ty.is_float() {
                                (cols as f64 + 16.0) * 2f64.powi(-23) * mag
                            } else {
                                (nb as f64 + 4.0) * 2f64.powi(-21) * mag
                            };
                            assert!(
                            (got - ref_v).abs() <= bound,
                            "{} {ty} rows={rows} cols={cols} n={n} (r={r}, j={j}): {got} vs scalar {ref_v}, bound {bound}",
                            k.name()
                        );
                        }
                    }
                }
            }
        }
    }
    // The tiled path exists on the AVX2 and AVX-512 tables; where there is none, say so
    // loudly (and fail where `GQ_REQUIRE_ISAS` names one, unless `GQ_GEMM=rows`).
    if covered == 0 {
        eprintln!(
            "tiled_gemm: this CPU has no AVX2 / AVX-512 table, the tiled GEMM is not exercised"
        );
    }
    if !rows_forced {
        isas::check_exercised_among(
            "tiled_gemm_deterministic_and_within_scalar_bound",
            &exercised,
            &[Isa::Avx2, Isa::Avx512],
        );
    }
}

/// The AVX2 tiled GEMM (`x86::tile_avx2`) computes the same integer group sums and the same
/// f32 steps in the same order as the AVX-512 tile, so on a CPU with both tables their results
/// are bit-identical, for every quantized type the AVX2 table tiles, TurboQuant TQT* included
/// (elsewhere: nothing to compare, said on stderr).
#[test]
fn avx2_tile_bits_equal_avx512_tile() {
    let tables: Vec<&'static Kernels> = gq_kernels::all_tables()
        .into_iter()
        .filter(|k| matches!(k.isa(), Isa::Avx2 | Isa::Avx512))
        .collect();
    let mut rng = Rng(0xa2a5);
    let mut compared = 0;
    for ty in [
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::Q3_K,
        GgmlType::Q2_K,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q5_0,
        GgmlType::Q4_1,
        GgmlType::Q5_1,
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
    ] {
        let (rows, n) = (21, gq_kernels::GEMM_TILE_MIN_N + 5);
        let cols = match ty.block_size() {
            // Floats: 45 units of 16 (two K chunks of the float tile).
            1 => 16 * 45,
            32 => 32 * 45,
            b => b * 6,
        };
        let w = weights(&mut rng, ty, rows * cols, &mut |r| {
            0.001 + r.uniform() * 0.02
        });
        let xs: Vec<f32> = (0..n * cols).map(|_| rng.normal() * 3.0).collect();
        let mut first: Option<(String, Vec<u32>)> = None;
        for k in &tables {
            if !k.gemm_is_tiled(ty, cols, n, FloatAct::F32) {
                continue;
            }
            let mut ys = vec![f32::NAN; n * rows];
            let mut scratch = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, n)];
            // f32 activations on every table (the AVX-512 tables' default for BF16 is the
            // BF16-rounded activation, which the AVX2 table has no tile for).
            k.gemm_as(
                ty,
                &w,
                rows,
                cols,
                &xs,
                &mut ys,
                &mut scratch,
                FloatAct::F32,
            );
            match &first {
                None => first = Some((k.name(), bits(&ys))),
                Some((name, b)) => {
                    assert_eq!(&bits(&ys), b, "{ty}: tiled GEMM of {} vs {name}", k.name());
                    compared += 1;
                }
            }
        }
    }
    // The TurboQuant trellis types without QJL signs (AVX2: `x86::tq_avx2`'s unpackers and
    // `x86::tile_avx2`'s kernel) on random blocks: random fields and branch bits, scale bytes
    // in the normal range, one block in five zero; 256-blocks over two K chunks, rows off the
    // tile, n ending on a single column.
    let p = gq_kernels::formats::tq::TqParams { seed: 17 };
    for ty in [GgmlType::TQT4_5, GgmlType::TQT3_375, GgmlType::TQT2_5] {
        let (rows, n, cols) = (21, gq_kernels::GEMM_TILE_MIN_N + 9, 256 * 6);
        let rb = ty.row_bytes(cols).unwrap();
        let bb = rb / 6;
        let mut w: Vec<u8> = (0..rows * rb).map(|_| rng.next() as u8).collect();
        for blk in w.chunks_exact_mut(bb) {
            blk[0] = if rng.below(5) == 0 {
                0
            } else {
                150 + rng.below(80) as u8
            };
        }
        let xs: Vec<f32> = (0..n * cols).map(|_| rng.normal() * 3.0).collect();
        let act = FloatAct::Rotated(p);
        let mut first: Option<(String, Vec<u32>)> = None;
        for k in &tables {
            if !k.gemm_is_tiled(ty, cols, n, act) {
                continue;
            }
            let mut ys = vec![f32::NAN; n * rows];
            let mut scratch = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, n)];
            k.gemm_as(ty, &w, rows, cols, &xs, &mut ys, &mut scratch, act);
            match &first {
                None => first = Some((k.name(), bits(&ys))),
                Some((name, b)) => {
                    assert_eq!(&bits(&ys), b, "{ty}: tiled GEMM of {} vs {name}", k.name());
                    compared += 1;
                }
            }
        }
    }
    if compared == 0 {
        eprintln!(
            "avx2_tile_bits_equal_avx512_tile: fewer than two tiled tables on this CPU, nothing compared"
        );
    }
}

/// Rows of 37 legacy blocks (more than the 16 blocks the GEMV quantizes at a time into the
/// Intel table's "Q8 lanes" layout): the GEMV (its own activation preparation) bit-identical
/// to `vec_dot` on the natural activation, and both within the realistic-data bound of the
/// scalar reference, on every table.
#[test]
fn legacy_gemv_matches_vec_dot_on_long_rows() {
    let mut rng = Rng(0x5eed_0037);
    let cols = 37 * QK;
    let rows = 3;
    for k in simd_tables("legacy_gemv_matches_vec_dot_on_long_rows") {
        for ty in [
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
        ] {
            let w = weights(&mut rng, ty, rows * cols, &mut |r| {
                0.001 + r.uniform() * 0.02
            });
            let rb = ty.row_bytes(cols).unwrap();
            let x: Vec<f32> = (0..cols).map(|_| rng.normal()).collect();
            let mut s = vec![0u8; gemv_scratch_bytes(ty, cols)];
            let a = k.prepare_activation(ty, &x, &mut s).to_vec();
            let mut y = vec![f32::NAN; rows];
            k.gemv(ty, &w, &x, &mut y, &mut s);
            for r in 0..rows {
                let wr = &w[r * rb..(r + 1) * rb];
                let want = k.vec_dot(ty, wr, &a);
                assert_eq!(y[r].to_bits(), want.to_bits(), "{} {ty} row {r}", k.isa());
                let exact = scalar().vec_dot(ty, wr, &a) as f64;
                let bound = (37.0 + 4.0) * 2f64.powi(-21) * magnitude(ty, wr, &a, cols);
                assert!(
                    (y[r] as f64 - exact).abs() <= bound,
                    "{} {ty} row {r}: {} vs scalar {exact} (bound {bound})",
                    k.isa(),
                    y[r]
                );
            }
        }
    }
}
