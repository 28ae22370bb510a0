//! gq's TurboQuant types: every SIMD path this CPU runs against the scalar reference.
//!
//! - dot products with powers-of-two scales, small activations and no QJL residual: bit-exact
//!   (every intermediate is a float with few significant bits, so any summation order gives
//!   the same value and a difference is a bug in the integer part: decoding, signs, lanes);
//! - dot products on quantized Gaussian rows with their prepared activations (QJL residuals
//!   included): `|simd − scalar| ≤ 2⁻¹⁶·M`, `M = Σ|ŵ·x|`, far below one integer unit of any
//!   group, far above the rounding of two summation orders;
//! - GEMV / GEMM: bit-identical to the same table's `vec_dot` per row (with the seed passed as
//!   `FloatAct::Rotated`), except the register-tiled GEMM of the AVX2 and AVX-512 tables
//!   (TQT*, 256-blocks, from `GEMM_TILE_MIN_N` columns): within `2⁻¹⁶·M` of it,
//!   deterministic, batch-independent;
//! - the encoder's vector path: the scalar path's bytes.

mod common;
use common::{isas, pools};
use gq_kernels::formats::tq::{self, TqParams};
use gq_kernels::formats::tq_rotation::{block_sign_bits, unrotate_block, SplitMix64};
use gq_kernels::formats::tq_tcq;
use gq_kernels::{kernels_for, FloatAct, GgmlType, Isa};

const TRELLIS: [GgmlType; 6] = [
    GgmlType::TQT4_5,
    GgmlType::TQT3_375,
    GgmlType::TQT2_5,
    GgmlType::TQJ4_5,
    GgmlType::TQJ3_375,
    GgmlType::TQJ2_5,
];

/// Row lengths: column blocks of 256 (one and many), 128, 64 and 32 (scalar fallback inside the
/// SIMD kernels), and Gemma 4 widths.
const LENS: [usize; 8] = [256, 128, 384, 768, 192, 96, 2816, 5376];

fn simd_isas() -> Vec<Isa> {
    [Isa::Avx2, Isa::Avx512, Isa::Neon]
        .into_iter()
        .filter(|i| i.available())
        .collect()
}

fn gaussian(g: &mut SplitMix64, n: usize, sigma: f32) -> Vec<f32> {
    (0..n).map(|_| g.next_normal() as f32 * sigma).collect()
}

/// Random weight bytes with scale bytes of d ∈ {½, 1, 2} and no QJL residual.
fn exact_weights(g: &mut SplitMix64, ty: GgmlType, n: usize) -> Vec<u8> {
    let b = tq::block_for(ty, n).unwrap();
    let rb = ty.row_bytes(n).unwrap();
    let bb = rb / (n / b);
    let mut w: Vec<u8> = (0..rb).map(|_| g.next_u64() as u8).collect();
    for blk in w.chunks_exact_mut(bb) {
        blk[0] = [192u8, 200, 208, 0][(g.next_u64() % 4) as usize];
        if ty.is_tq_qjl() {
            blk[1] = 0;
        }
    }
    w
}

/// A TQA8 activation (twice for TQJ) with int8 values in [−2, 2] and scales in {½, 1}.
fn exact_act(g: &mut SplitMix64, ty: GgmlType, n: usize) -> Vec<u8> {
    let one = GgmlType::TQA8.row_bytes(n).unwrap();
    let mut a = vec![0u8; tq::act_bytes(ty, n).unwrap()];
    for half in a.chunks_exact_mut(one) {
        for q in &mut half[..n] {
            *q = ((g.next_u64() % 5) as i8 - 2) as u8;
        }
        for s in half[n..].chunks_exact_mut(4) {
            let v: f32 = if g.next_u64().is_multiple_of(2) {
                0.5
            } else {
                1.0
            };
            s.copy_from_slice(&v.to_le_bytes());
        }
    }
    a
}

#[test]
fn dot_products_are_bit_exact_on_exact_data() {
    let s = kernels_for(Isa::Scalar).unwrap();
    let mut g = SplitMix64::new(1);
    let mut exercised = Vec::new();
    for isa in simd_isas() {
        let k = kernels_for(isa).unwrap();
        for ty in TRELLIS {
            for n in LENS {
                if tq::block_for(ty, n).is_none() {
                    continue;
                }
                for _ in 0..4 {
                    let w = exact_weights(&mut g, ty, n);
                    let a = exact_act(&mut g, ty, n);
                    let want = s.vec_dot(ty, &w, &a);
                    let got = k.vec_dot(ty, &w, &a);
                    assert_eq!(got, want, "{isa} {ty} n={n}");
                    exercised.push(isa);
                }
            }
        }
    }
    isas::check_exercised("TurboQuant exact dot products", &exercised);
}

#[test]
fn dot_products_agree_on_quantized_rows() {
    let s = kernels_for(Isa::Scalar).unwrap();
    let p = TqParams { seed: 99 };
    let mut g = SplitMix64::new(2);
    let mut exercised = Vec::new();
    for ty in TRELLIS {
        for n in LENS {
            if tq::block_for(ty, n).is_none() {
                continue;
            }
            let w = gaussian(&mut g, n, 0.03);
            let mut q = vec![0u8; ty.row_bytes(n).unwrap()];
            tq::quantize_row(ty, &p, &w, None, &mut q).unwrap();
            let mut y = vec![0f32; n];
            tq::dequantize_row(ty, &p, &q, &mut y);
            let x = gaussian(&mut g, n, 2.0);
            let mut a = vec![0u8; tq::act_bytes(ty, n).unwrap()];
            tq::prepare_activation(ty, &p, &x, &mut a);
            let mag: f64 = y
                .iter()
                .zip(&x)
                .map(|(u, v)| (*u as f64 * *v as f64).abs())
                .sum();
            let want = s.vec_dot(ty, &q, &a);
            for isa in simd_isas() {
                let got = kernels_for(isa).unwrap().vec_dot(ty, &q, &a);
                assert!(
                    ((got - want) as f64).abs() <= mag * 2f64.powi(-16),
                    "{isa} {ty} n={n}: {got} vs {want} (magnitude {mag})"
                );
                exercised.push(isa);
            }
        }
    }
    isas::check_exercised("TurboQuant dot products on quantized rows", &exercised);
}

#[test]
fn gemv_and_gemm_equal_vec_dot_per_row_for_any_thread_count() {
    let p = TqParams { seed: 5 };
    let mut g = SplitMix64::new(3);
    let mut isas_all = vec![Isa::Scalar];
    isas_all.extend(simd_isas());
    let mut exercised = Vec::new();
    for isa in isas_all {
        let k = kernels_for(isa).unwrap();
        for ty in gq_kernels::GgmlType::TURBOQUANT {
            let (rows, cols) = (37, if ty.is_tq_polar() { 512 } else { 384 });
            let rb = ty.row_bytes(cols).unwrap();
            let wf = gaussian(&mut g, rows * cols, 0.02);
            let mut w = vec![0u8; rb * rows];
            tq::quantize_rows(ty, &p, &wf, cols, None, &mut w, Isa::Scalar).unwrap();
            let nx = 3;
            let xs = gaussian(&mut g, nx * cols, 1.0);
            let act = FloatAct::Rotated(p);
            let mut scratch = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, nx)];
            let mut want = vec![0f32; nx * rows];
            for j in 0..nx {
                let mut a = vec![0u8; tq::act_bytes(ty, cols).unwrap()];
                tq::prepare_activation(ty, &p, &xs[j * cols..(j + 1) * cols], &mut a);
                for r in 0..rows {
                    want[j * rows + r] = k.vec_dot(ty, &w[r * rb..(r + 1) * rb], &a);
                }
            }
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let mut y = vec![0f32; rows];
                    k.gemv_as(ty, &w, &xs[..cols], &mut y, &mut scratch, act);
                    assert_eq!(y, want[..rows], "{isa} {ty} GEMV, {threads} threads");
                    let mut ys = vec![0f32; nx * rows];
                    k.gemm_as(ty, &w, rows, cols, &xs, &mut ys, &mut scratch, act);
                    assert_eq!(ys, want, "{isa} {ty} GEMM, {threads} threads");
                });
            }
            if isa != Isa::Scalar {
                exercised.push(isa);
            }
        }
    }
    isas::check_exercised("TurboQuant GEMV/GEMM", &exercised);
}

/// The trellis GEMM's row path (rows decoded once per column block, tiles of 4 rows × 2
/// columns, column blocks of ~768 KiB of activations; below `GEMM_TILE_MIN_N` columns, or
/// column blocks under 256) and the GEMV: every shape class — blocks of 256 with lo pairs, 128, the scalar
/// fallback (32), row and column counts off the tile sizes, zero blocks — bit-identical to
/// `vec_dot` per element. From `GEMM_TILE_MIN_N` columns with 256-blocks the AVX-512 table
/// takes the register-tiled GEMM instead: see `tiled_gemm_within_bound_and_batch_independent`.
#[test]
fn gemm_equals_vec_dot_on_every_tile_shape() {
    let p = TqParams { seed: 11 };
    let mut g = SplitMix64::new(6);
    let mut exercised = Vec::new();
    let m = gq_kernels::GEMM_TILE_MIN_N;
    for isa in simd_isas() {
        let k = kernels_for(isa).unwrap();
        for ty in TRELLIS {
            for (rows, cols, nx) in [
                (13, 512, 5),
                (6, 2816, m - 1),
                (5, 384, 3),
                (3, 96, 4),
                (7, 384, m + 3),
                (9, 640, 2 * m + 1),
            ] {
                if tq::block_for(ty, cols).is_none() {
                    continue;
                }
                let act = FloatAct::Rotated(p);
                assert!(
                    !k.gemm_is_tiled(ty, cols, nx, act),
                    "{isa} {ty} {cols} n={nx}"
                );
                let rb = ty.row_bytes(cols).unwrap();
                let wf = gaussian(&mut g, rows * cols, 0.02);
                let mut w = vec![0u8; rb * rows];
                tq::quantize_rows(ty, &p, &wf, cols, None, &mut w, Isa::Scalar).unwrap();
                // Zero blocks: the first block of row 1, the whole of row 2.
                let b = tq::block_for(ty, cols).unwrap();
                let bb = rb / (cols / b);
                w[rb..rb + bb].fill(0);
                w[2 * rb..3 * rb].fill(0);
                let xs = gaussian(&mut g, nx * cols, 1.0);
                let mut want = vec![0f32; nx * rows];
                for j in 0..nx {
                    let mut a = vec![0u8; tq::act_bytes(ty, cols).unwrap()];
                    tq::prepare_activation(ty, &p, &xs[j * cols..(j + 1) * cols], &mut a);
                    for r in 0..rows {
                        want[j * rows + r] = k.vec_dot(ty, &w[r * rb..(r + 1) * rb], &a);
                    }
                }
                let mut scratch = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, nx)];
                for threads in [1, 2] {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let mut ys = vec![0f32; nx * rows];
                    pool.install(|| k.gemm_as(ty, &w, rows, cols, &xs, &mut ys, &mut scratch, act));
                    // The GEMV per column (zero blocks in one row, a zero row, odd row counts).
                    for j in 0..nx {
                        let mut y = vec![0f32; rows];
                        let x = &xs[j * cols..(j + 1) * cols];
                        pool.install(|| k.gemv_as(ty, &w, x, &mut y, &mut scratch, act));
                        for (r, (u, v)) in y.iter().zip(&want[j * rows..]).enumerate() {
                            assert_eq!(
                                u.to_bits(),
                                v.to_bits(),
                                "{isa} {ty} GEMV {rows}x{cols} column {j} threads={threads} row {r}"
                            );
                        }
                    }
                    for (i, (u, v)) in ys.iter().zip(&want).enumerate() {
                        assert_eq!(
                            u.to_bits(),
                            v.to_bits(),
                            "{isa} {ty} {rows}x{cols} n={nx} threads={threads} element {i}"
                        );
                    }
                }
                exercised.push(isa);
            }
        }
    }
    isas::check_exercised("TurboQuant GEMM tiles", &exercised);
}

/// The AVX2 kernels (vector decode of 256-blocks, scalar decode otherwise) are bit-identical to
/// the scalar reference on arbitrary bytes: random fields and branch bits, random QJL sign bits
/// and `g` bytes (TQJ), zero blocks, full-range int8 activations with random scales — so the
/// QJL sums and the float steps are checked bit for bit too, not only the integer part.
#[test]
fn avx2_dot_products_bit_identical_on_random_bytes() {
    if !Isa::Avx2.available() {
        return;
    }
    let s = kernels_for(Isa::Scalar).unwrap();
    let k = kernels_for(Isa::Avx2).unwrap();
    let mut g = SplitMix64::new(21);
    let mut exercised = Vec::new();
    for ty in TRELLIS {
        for n in LENS.into_iter().chain([512, 2560]) {
            let Some(b) = tq::block_for(ty, n) else {
                continue;
            };
            let rb = ty.row_bytes(n).unwrap();
            let bb = rb / (n / b);
            for rep in 0..6 {
                let mut w: Vec<u8> = (0..rb).map(|_| g.next_u64() as u8).collect();
                for blk in w.chunks_exact_mut(bb) {
                    // Scale bytes in the normal range; one block in four zero.
                    blk[0] = if g.next_u64().is_multiple_of(4) {
                        0
                    } else {
                        150 + (g.next_u64() % 80) as u8
                    };
                    if ty.is_tq_qjl() && rep % 3 == 0 {
                        blk[1] = 0;
                    }
                }
                let mut a = vec![0u8; tq::act_bytes(ty, n).unwrap()];
                let one = GgmlType::TQA8.row_bytes(n).unwrap();
                for half in a.chunks_exact_mut(one) {
                    for q in &mut half[..n] {
                        *q = ((g.next_u64() % 255) as i32 - 127) as i8 as u8;
                    }
                    for sc in half[n..].chunks_exact_mut(4) {
                        let v = (g.next_normal().abs() as f32 + 1e-3) * 0.01;
                        sc.copy_from_slice(&v.to_le_bytes());
                    }
                }
                let want = s.vec_dot(ty, &w, &a);
                let got = k.vec_dot(ty, &w, &a);
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{ty} n={n} rep {rep}: {got} vs {want}"
                );
                exercised.push(Isa::Avx2);
            }
        }
    }
    isas::check_exercised_among(
        "TurboQuant AVX2 dot products on random bytes",
        &exercised,
        &[Isa::Avx2],
    );
}

/// The GEMM of the row path over several column blocks (many columns: the AVX2 GEMM decodes
/// each row once per block of columns), every trellis type, 256-blocks and 128-blocks, zero
/// blocks: bit-identical to `vec_dot` per element wherever the table does not take the
/// register-tiled GEMM.
#[test]
fn row_gemm_over_many_columns_equals_vec_dot() {
    let p = TqParams { seed: 13 };
    let act = FloatAct::Rotated(p);
    let mut g = SplitMix64::new(22);
    let mut exercised = Vec::new();
    for isa in simd_isas() {
        let k = kernels_for(isa).unwrap();
        for ty in TRELLIS {
            // (2, 20480, 15): below the tile's column threshold, and with 23 KiB activations
            // two of the AVX2 row GEMM's column blocks (256 KiB each) for 256-blocks.
            for (rows, cols, nx) in [(3, 512, 150), (2, 384, 70), (2, 20480, 15)] {
                if tq::block_for(ty, cols).is_none() || k.gemm_is_tiled(ty, cols, nx, act) {
                    continue;
                }
                let rb = ty.row_bytes(cols).unwrap();
                let wf = gaussian(&mut g, rows * cols, 0.02);
                let mut w = vec![0u8; rb * rows];
                tq::quantize_rows(ty, &p, &wf, cols, None, &mut w, Isa::Scalar).unwrap();
                let b = tq::block_for(ty, cols).unwrap();
                w[rb..rb + rb / (cols / b)].fill(0);
                let xs = gaussian(&mut g, nx * cols, 1.0);
                let mut ys = vec![0f32; nx * rows];
                let mut scratch = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, nx)];
                k.gemm_as(ty, &w, rows, cols, &xs, &mut ys, &mut scratch, act);
                for j in 0..nx {
                    let mut a = vec![0u8; tq::act_bytes(ty, cols).unwrap()];
                    tq::prepare_activation(ty, &p, &xs[j * cols..(j + 1) * cols], &mut a);
                    for r in 0..rows {
                        let want = k.vec_dot(ty, &w[r * rb..(r + 1) * rb], &a);
                        assert_eq!(
                            ys[j * rows + r].to_bits(),
                            want.to_bits(),
                            "{isa} {ty} {rows}x{cols} n={nx} (r={r}, j={j})"
                        );
                    }
                }
                exercised.push(isa);
            }
        }
    }
    isas::check_exercised("TurboQuant row GEMM over many columns", &exercised);
}

/// The register-tiled GEMM of the trellis types without QJL signs (AVX2 table with BMI2 and
/// AVX-512 table, 256-blocks, from `GEMM_TILE_MIN_N` columns; the AVX2 tile gives the AVX-512
/// tile's bits, see `avx2_tile_bits_equal_avx512_tile` in simd_vs_scalar.rs), which is not
/// bit-identical to the GEMV (its lanes are rows, and
/// it sums the same exact group integers in another float order): every output within
/// `2⁻¹⁶·M` of `vec_dot` (`M = Σ|ŵ·x|` over the row, the bound of
/// `dot_products_agree_on_quantized_rows`, far below one integer unit of a group, so a decoding
/// or sign error cannot hide in it); zero blocks; bit-identical for 1, 2 and 3 threads; a
/// column's result independent of the batch (other columns, their order, n). Shapes: rows not a
/// multiple of 16, one 256-block and several K chunks (K chunk = 4 blocks), n at the threshold
/// and not a multiple of the column tile (a padded partial column tile; n = `m + 9` ends on
/// one column, the single-column micro-kernel).
#[test]
fn tiled_gemm_within_bound_and_batch_independent() {
    let p = TqParams { seed: 12 };
    let act = FloatAct::Rotated(p);
    let mut g = SplitMix64::new(9);
    let m = gq_kernels::GEMM_TILE_MIN_N;
    let mut exercised = Vec::new();
    let pools = pools(&[1, 2, 3]);
    for isa in simd_isas() {
        let k = kernels_for(isa).unwrap();
        for ty in [GgmlType::TQT4_5, GgmlType::TQT3_375, GgmlType::TQT2_5] {
            for (rows, cols, nx) in [
                (5, 256, m),
                (17, 2816, m + 3),
                (33, 1280, m + 11),
                (16, 512, m + 9),
            ] {
                if !k.gemm_is_tiled(ty, cols, nx, act) {
                    // The AVX2 table tiles them wherever the CPU has BMI2 (`x86::tile_avx2`),
                    // unless `GQ_GEMM=rows` forces the row path.
                    assert!(
                        isa != Isa::Avx2
                            || !std::arch::is_x86_feature_detected!("bmi2")
                            || std::env::var("GQ_GEMM").is_ok_and(|v| v.trim() == "rows"),
                        "{isa} {ty}: the tiled GEMM was expected for cols={cols} n={nx}"
                    );
                    continue;
                }
                let rb = ty.row_bytes(cols).unwrap();
                let wf = gaussian(&mut g, rows * cols, 0.02);
                let mut w = vec![0u8; rb * rows];
                tq::quantize_rows(ty, &p, &wf, cols, None, &mut w, Isa::Scalar).unwrap();
                // Zero blocks: the last block of row 0, the whole of row 1.
                w[rb - rb * 256 / cols..rb].fill(0);
                w[rb..2 * rb].fill(0);
                let mut wd = vec![0f32; rows * cols];
                for (q, y) in w.chunks_exact(rb).zip(wd.chunks_exact_mut(cols)) {
                    tq::dequantize_row(ty, &p, q, y);
                }
                let xs = gaussian(&mut g, nx * cols, 1.5);
                let gemm = |pool: &rayon::ThreadPool, xs: &[f32]| {
                    let n = xs.len() / cols;
                    let mut ys = vec![f32::NAN; n * rows];
                    let mut scratch = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, n)];
                    pool.install(|| k.gemm_as(ty, &w, rows, cols, xs, &mut ys, &mut scratch, act));
                    ys
                };
                let ys = gemm(&pools[0], &xs);
                for j in 0..nx {
                    let x = &xs[j * cols..(j + 1) * cols];
                    let mut a = vec![0u8; tq::act_bytes(ty, cols).unwrap()];
                    tq::prepare_activation(ty, &p, x, &mut a);
                    for r in 0..rows {
                        let want = k.vec_dot(ty, &w[r * rb..(r + 1) * rb], &a);
                        let mag: f64 = wd[r * cols..(r + 1) * cols]
                            .iter()
                            .zip(x)
                            .map(|(u, v)| (*u as f64 * *v as f64).abs())
                            .sum();
                        let got = ys[j * rows + r];
                        assert!(
                            ((got - want) as f64).abs() <= mag * 2f64.powi(-16),
                            "{isa} {ty} {rows}x{cols} n={nx} (r={r}, j={j}): {got} vs vec_dot {want} (magnitude {mag})"
                        );
                        if r == 1 {
                            assert_eq!(got, 0.0, "{isa} {ty}: a row of zero blocks");
                        }
                    }
                }
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                for pool in &pools[1..] {
                    assert_eq!(
                        bits(&gemm(pool, &xs)),
                        bits(&ys),
                        "{isa} {ty} {rows}x{cols} n={nx}"
                    );
                }
                // Another batch: 7 other columns first, then these in reverse order.
                let extra = 7;
                let mut xs2 = gaussian(&mut g, extra * cols, 1.0);
                for j in (0..nx).rev() {
                    xs2.extend_from_slice(&xs[j * cols..(j + 1) * cols]);
                }
                let ys2 = gemm(&pools[2], &xs2);
                for j in 0..nx {
                    let j2 = extra + nx - 1 - j;
                    assert_eq!(
                        bits(&ys[j * rows..(j + 1) * rows]),
                        bits(&ys2[j2 * rows..(j2 + 1) * rows]),
                        "{isa} {ty} {rows}x{cols}: column {j} of {nx} vs column {j2} of {}",
                        nx + extra
                    );
                }
                exercised.push(isa);
            }
        }
    }
    // The tiled TQ GEMM exists on the AVX2 (with BMI2) and AVX-512 tables.
    isas::check_exercised_among(
        "TurboQuant tiled GEMM",
        &exercised,
        &[Isa::Avx2, Isa::Avx512],
    );
}

/// The prepared activation (rotation + TQA8) on this CPU's fastest path equals the scalar
/// reference byte for byte, including zero groups, NaN, ±Inf, huge and tiny values (the
/// quantizer's exact halves are tested in `formats::tq`'s unit tests).
#[test]
fn prepared_activation_equals_the_scalar_reference() {
    let mut g = SplitMix64::new(8);
    for ty in [GgmlType::TQT4_5, GgmlType::TQJ4_5, GgmlType::TQT3_375] {
        for n in [128usize, 256, 384, 512, 768, 2816, 96, 192] {
            if tq::block_for(ty, n).is_none() {
                continue;
            }
            for case in 0..6 {
                let mut x = gaussian(&mut g, n, [1.0, 1e-30, 1e30, 3.0, 1.0, 0.5][case]);
                match case {
                    1 => x[..32].fill(0.0),
                    2 => x[3] = f32::NAN,
                    3 => x[n - 1] = f32::INFINITY,
                    4 => {
                        // Structured values (many equal magnitudes and ties after rotation).
                        for (i, v) in x.iter_mut().enumerate() {
                            *v = ((i % 61) as f32 - 30.0) * 0.5 + 0.25;
                        }
                    }
                    _ => {}
                }
                let mut want = vec![0u8; tq::act_bytes(ty, n).unwrap()];
                let mut got = want.clone();
                let p = TqParams { seed: 77 };
                tq::prepare_activation_ref(ty, &p, &x, &mut want);
                tq::prepare_activation(ty, &p, &x, &mut got);
                assert_eq!(got, want, "{ty} n={n} case {case}");
            }
        }
    }
}

#[test]
#[should_panic(expected = "FloatAct::Rotated")]
fn turboquant_weights_refuse_unrotated_activations() {
    let k = kernels_for(Isa::Scalar).unwrap();
    let w = vec![0u8; GgmlType::TQT4_5.row_bytes(256).unwrap()];
    let mut scratch = vec![0u8; gq_kernels::gemv_scratch_bytes(GgmlType::TQT4_5, 256)];
    let mut y = [0f32];
    k.gemv_as(
        GgmlType::TQT4_5,
        &w,
        &[0.0; 256],
        &mut y,
        &mut scratch,
        FloatAct::F32,
    );
}

#[test]
fn vector_encoder_gives_the_scalar_bytes() {
    let p = TqParams::default();
    let mut g = SplitMix64::new(4);
    let mut exercised = Vec::new();
    for isa in simd_isas() {
        for ty in TRELLIS {
            // Column blocks of 256 (many), 256, 128 (384: 3 blocks), 64 (192) and 32 (96,
            // 224: the types whose smallest block is 32), over several scales.
            for (n, sigma) in [
                (256 * 6, 0.02f32),
                (768, 1.0),
                (512, 300.0),
                (384, 0.02),
                (192, 0.05),
                (96, 0.02),
                (224, 3e-4),
            ] {
                let Some(b) = tq::block_for(ty, n) else {
                    continue;
                };
                let rows = 3;
                let mut w = gaussian(&mut g, rows * n, sigma);
                w[5] *= 40.0; // an outlier: pairs outside the search grid
                w[2 * n + b..2 * n + 2 * b].fill(0.0); // a zero block
                                                       // Row 1, block 0: a spike in the rotated domain (a rotated coordinate far above
                                                       // the block's RMS: pairs outside the search grid), on Gaussian noise.
                let mut spike = gaussian(&mut g, b, sigma);
                spike[3] += 2.0 * sigma * (b as f32).sqrt();
                unrotate_block(&mut spike, &block_sign_bits(p.seed, 0, b));
                w[n..n + b].copy_from_slice(&spike);
                let rb = ty.row_bytes(n).unwrap();
                let mut want = vec![0u8; rows * rb];
                tq::quantize_rows(ty, &p, &w, n, None, &mut want, Isa::Scalar).unwrap();
                let mut got = vec![0u8; rows * rb];
                tq::quantize_rows(ty, &p, &w, n, None, &mut got, isa).unwrap();
                assert_eq!(got, want, "{isa} {ty} n={n} sigma={sigma}");
                // Two importance rows: a periodic one and a log-normal one.
                let lognormal: Vec<f32> = (0..n).map(|_| (g.next_normal() as f32).exp()).collect();
                let periodic: Vec<f32> = (0..n).map(|i| 1.0 + (i % 7) as f32).collect();
                for imp in [&periodic, &lognormal] {
                    tq::quantize_rows(ty, &p, &w, n, Some(imp), &mut want, Isa::Scalar).unwrap();
                    tq::quantize_rows(ty, &p, &w, n, Some(imp), &mut got, isa).unwrap();
                    assert_eq!(got, want, "{isa} {ty} n={n} with importance");
                }
                exercised.push((isa, b));
            }
        }
    }
    exercised.sort();
    exercised.dedup();
    eprintln!("TurboQuant encoder: (ISA, block) compared: {exercised:?}");
    // Every x86 vector ISA this CPU has runs its own encoder (not the scalar fallback), and was
    // compared at every block size.
    for isa in [Isa::Avx2, Isa::Avx512] {
        if isa.available() {
            assert_eq!(tq_tcq::encoder_isa(isa), isa, "{isa} has a vector encoder");
            for b in [32, 64, 128, 256] {
                assert!(exercised.contains(&(isa, b)), "{isa} B={b} not compared");
            }
        }
    }
}

/// Blocks with one scale candidate (RMS at scale code 1: the code below is 0, not tried) and
/// with none (zero blocks) make odd and uneven numbers of searches per batch of 4 blocks: the
/// AVX-512 trellis pairs searches two per register, the AVX2 one runs 1–8 searches at once,
/// and both must still give the scalar bytes.
#[test]
fn vector_encoder_gives_the_scalar_bytes_for_odd_search_counts() {
    let tiny = 1.04e-6f32;
    assert_eq!(tq::scale_code_of_rms(tiny), 1, "a block with one candidate");
    let p = TqParams::default();
    let mut g = SplitMix64::new(5);
    let n = 1024;
    let mut exercised = Vec::new();
    for isa in simd_isas() {
        for ty in TRELLIS {
            let mut w = gaussian(&mut g, 3 * n, 0.02);
            // Row 0: one 1-candidate quarter; row 1: two; row 2: one and a zero quarter.
            for (row, quarters) in [(0, &[1usize][..]), (1, &[0, 2]), (2, &[3])] {
                for &q in quarters {
                    w[row * n + q * 256..row * n + (q + 1) * 256].fill(tiny);
                }
            }
            w[2 * n..2 * n + 256].fill(0.0);
            let rb = ty.row_bytes(n).unwrap();
            let mut want = vec![0u8; 3 * rb];
            tq::quantize_rows(ty, &p, &w, n, None, &mut want, Isa::Scalar).unwrap();
            let mut got = vec![0u8; 3 * rb];
            tq::quantize_rows(ty, &p, &w, n, None, &mut got, isa).unwrap();
            assert_eq!(got, want, "{isa} {ty}");
            exercised.push(isa);
        }
    }
    eprintln!("TurboQuant encoder, odd search counts: comparisons per ISA: {exercised:?}");
    for isa in [Isa::Avx2, Isa::Avx512] {
        if isa.available() {
            assert!(exercised.contains(&isa));
        }
    }
}
