//! Shared activation preparation: `Kernels::gemm_many` / `gemv_many` give every matrix the
//! bits of a separate `gemm_as` / `gemv_as` call (same type and activation format), for every
//! table this CPU runs, every path (register-tiled GEMM, row GEMM, GEMV), several thread counts
//! and groups of one type (Q/K/V, gate/up) or of mixed types and rotations, with a scratch
//! buffer reused (stale) from call to call.

mod common;
use common::{isas, pools, rng::Rng};
use gq_kernels::formats::tq::{self, TqParams};
use gq_kernels::{
    all_tables, format, gemm_scratch_bytes, many_scratch_bytes, FloatAct, GgmlType, Isa, Kernels,
    Weights,
};

/// Row-major weights of `rows × cols` of `ty`: Gaussian-like values quantized by the type's
/// reference quantizer (TurboQuant with `p`'s rotation).
fn weights(rng: &mut Rng, ty: GgmlType, rows: usize, cols: usize, p: TqParams) -> Vec<u8> {
    let x: Vec<f32> = (0..rows * cols).map(|_| rng.normal() * 0.05).collect();
    let rb = ty.row_bytes(cols).unwrap();
    let mut w = vec![0u8; rows * rb];
    if ty.is_turboquant() {
        tq::quantize_rows(ty, &p, &x, cols, None, &mut w, Isa::Scalar).unwrap();
    } else {
        let f = format(ty).unwrap();
        for (src, dst) in x.chunks_exact(cols).zip(w.chunks_exact_mut(rb)) {
            f.quantize_row(src, dst);
        }
    }
    w
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// One matrix of a group: type, rows, activation format.
type Spec = (GgmlType, usize, FloatAct);

/// Runs the group `specs` on `n` activation rows of `cols` with one shared call and with
/// separate calls, on table `k` at each thread count; asserts the same bits. `scratch` is the
/// shared call's, kept from earlier groups (stale bytes).
fn check_group(
    k: &Kernels,
    rng: &mut Rng,
    specs: &[Spec],
    cols: usize,
    n: usize,
    scratch: &mut Vec<u8>,
    what: &str,
) {
    let ws: Vec<Vec<u8>> = specs
        .iter()
        .map(|&(ty, rows, act)| {
            let p = match act {
                FloatAct::Rotated(p) => p,
                _ => TqParams::default(),
            };
            weights(rng, ty, rows, cols, p)
        })
        .collect();
    let mats: Vec<Weights> = specs
        .iter()
        .zip(&ws)
        .map(|(&(ty, rows, act), w)| Weights { ty, w, rows, act })
        .collect();
    let xs: Vec<f32> = (0..n * cols).map(|_| rng.normal() * 2.0).collect();
    let need = many_scratch_bytes(&mats, cols, n);
    if scratch.len() < need {
        scratch.resize(need, 0xa5);
    }
    for pool in pools(&[1, 2, 3]) {
        let threads = pool.current_num_threads();
        pool.install(|| {
            // Separate calls, each on a fresh scratch.
            let mut want = Vec::new();
            let mut want1 = Vec::new();
            for m in &mats {
                let mut s = vec![0u8; gemm_scratch_bytes(m.ty, cols, n)];
                let mut y = vec![f32::NAN; n * m.rows];
                k.gemm_as(m.ty, m.w, m.rows, cols, &xs, &mut y, &mut s, m.act);
                want.push(bits(&y));
                let mut y1 = vec![f32::NAN; m.rows];
                k.gemv_as(m.ty, m.w, &xs[..cols], &mut y1, &mut s, m.act);
                want1.push(bits(&y1));
            }
            // One shared GEMM call.
            let mut out: Vec<Vec<f32>> = mats.iter().map(|m| vec![f32::NAN; n * m.rows]).collect();
            let mut ys: Vec<&mut [f32]> = out.iter_mut().map(|y| y.as_mut_slice()).collect();
            k.gemm_many(&mats, cols, &xs, &mut ys, &mut scratch[..need]);
            for (i, y) in out.iter().enumerate() {
                assert!(
                    bits(y) == want[i],
                    "{} {what}: gemm_many matrix {i} ({:?}) differs from gemm_as, n = {n}, \
                     {threads} threads",
                    k.name(),
                    specs[i]
                );
            }
            // One shared GEMV call on the first row.
            let need1 = many_scratch_bytes(&mats, cols, 1);
            let mut out: Vec<Vec<f32>> = mats.iter().map(|m| vec![f32::NAN; m.rows]).collect();
            let mut ys: Vec<&mut [f32]> = out.iter_mut().map(|y| y.as_mut_slice()).collect();
            k.gemv_many(&mats, &xs[..cols], &mut ys, &mut scratch[..need1]);
            for (i, y) in out.iter().enumerate() {
                assert!(
                    bits(y) == want1[i],
                    "{} {what}: gemv_many matrix {i} ({:?}) differs from gemv_as, {threads} \
                     threads",
                    k.name(),
                    specs[i]
                );
            }
        });
    }
}

const P1: TqParams = TqParams { seed: 0x5eed };
const P2: TqParams = TqParams { seed: 77 };

/// Groups of one type, as attention's Q/K/V (odd row counts) and the MLP's gate/up: every
/// type, n = 1 (row GEMM), 3, 17 and 33 (tiled where the table has it).
#[test]
fn same_type_groups_equal_separate_calls() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut exercised = Vec::new();
    let mut tiled = Vec::new();
    for k in all_tables() {
        let mut scratch = Vec::new();
        let types: [(GgmlType, FloatAct); 11] = [
            (GgmlType::Q4_K, FloatAct::F32),
            (GgmlType::Q6_K, FloatAct::F32),
            (GgmlType::Q8_0, FloatAct::F32),
            (GgmlType::Q4_0, FloatAct::F32),
            (GgmlType::F32, FloatAct::F32),
            (GgmlType::F16, FloatAct::F32),
            (GgmlType::BF16, FloatAct::F32),
            (GgmlType::BF16, FloatAct::Bf16),
            (GgmlType::TQT4_5, FloatAct::Rotated(P1)),
            (GgmlType::TQT3_375, FloatAct::Rotated(P1)),
            (GgmlType::TQJ4_5, FloatAct::Rotated(P2)),
        ];
        for (ty, act) in types {
            for cols in [512, 768] {
                for n in [1, 3, 17, 33] {
                    let qkv = [(ty, 53, act), (ty, 19, act), (ty, 19, act)];
                    check_group(k, &mut rng, &qkv, cols, n, &mut scratch, "q/k/v");
                    let gate_up = [(ty, 37, act), (ty, 37, act)];
                    check_group(k, &mut rng, &gate_up, cols, n, &mut scratch, "gate/up");
                    if k.gemm_is_tiled(ty, cols, n, act) {
                        tiled.push(k.isa());
                    }
                }
            }
            if k.isa() != Isa::Scalar {
                exercised.push(k.isa());
            }
        }
    }
    isas::check_exercised("shared activations, one type", &exercised);
    isas::check_exercised_among(
        "shared activations, tiled GEMM",
        &tiled,
        &[Isa::Avx2, Isa::Avx512],
    );
}

/// Mixed groups: TurboQuant types with two rotations, k-quants sharing Q8_K activations but
/// not a tile layout, float types with f32 and BF16 activations, in an order that interleaves
/// the groups.
#[test]
fn mixed_groups_equal_separate_calls() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut exercised = Vec::new();
    let r = FloatAct::Rotated(P1);
    let r2 = FloatAct::Rotated(P2);
    let mixed: [Spec; 12] = [
        (GgmlType::TQT4_5, 37, r),
        (GgmlType::Q6_K, 21, FloatAct::F32),
        (GgmlType::TQT3_375, 19, r),
        (GgmlType::Q4_K, 35, FloatAct::F32),
        (GgmlType::TQT4_5, 17, r2),
        (GgmlType::F32, 9, FloatAct::F32),
        (GgmlType::BF16, 23, FloatAct::Bf16),
        (GgmlType::BF16, 7, FloatAct::F32),
        (GgmlType::Q8_0, 33, FloatAct::F32),
        (GgmlType::TQJ4_5, 5, r),
        (GgmlType::Q4_K, 3, FloatAct::Rotated(P2)),
        (GgmlType::TQT4_5, 40, r),
    ];
    for k in all_tables() {
        let mut scratch = Vec::new();
        for cols in [256, 512, 1024] {
            for n in [1, 2, 16, 31] {
                check_group(k, &mut rng, &mixed, cols, n, &mut scratch, "mixed");
                // A type group split by another type in between, and the reverse order.
                let mut rev = mixed;
                rev.reverse();
                check_group(k, &mut rng, &rev, cols, n, &mut scratch, "mixed, reversed");
            }
        }
        if k.isa() != Isa::Scalar {
            exercised.push(k.isa());
        }
    }
    isas::check_exercised("shared activations, mixed types", &exercised);
}

/// No matrices, and matrices of no rows, beside others.
#[test]
fn empty_groups_and_matrices() {
    let k = gq_kernels::kernels();
    let mut rng = Rng(7);
    let mut ys: Vec<&mut [f32]> = Vec::new();
    k.gemm_many(&[], 256, &[0.0; 512], &mut ys, &mut []);
    k.gemv_many(&[], &[0.0; 256], &mut ys, &mut []);
    let mut scratch = Vec::new();
    let specs = [
        (GgmlType::Q4_K, 0, FloatAct::F32),
        (GgmlType::Q4_K, 17, FloatAct::F32),
        (GgmlType::TQT4_5, 0, FloatAct::Rotated(P1)),
        (GgmlType::TQT4_5, 16, FloatAct::Rotated(P1)),
    ];
    for n in [1, 16, 20] {
        check_group(k, &mut rng, &specs, 256, n, &mut scratch, "empty matrices");
    }
}
