//! Every dot-product kernel (and the GEMV / GEMM built on them) on arbitrary weight bytes:
//! each SIMD table this CPU runs against the scalar reference, with the bounds of
//! kernels/tests/simd_vs_scalar.rs.
//!
//! Input: a type byte, a mode byte, then bytes for the weights (at most 16 blocks, or 4096
//! floats) and the activations.
//! - mode even ("arbitrary"): the weight bytes as they are (any scale, NaN, Inf, any quant);
//!   activations are f32s from the input (any bit pattern), quantized to the type's activation
//!   type by the scalar quantizer (what gq's GEMV does). Where `M = Σ (|scale part| +
//!   |min part|)·|a|` is below `f32::MAX / 256`, `|simd − scalar| ≤ (nb + 4)·2⁻²¹·M` for the
//!   quantized types and `(n + 16)·2⁻²³·M` for the float types. Above that, within 8 bits of
//!   overflowing f32, the SIMD paths' intermediate sums (which add offsets such as Q3_K's
//!   `(q + 4)·a − 4·a` before subtracting) may overflow where the scalar sum does not, so only
//!   "no crash" is checked there (a NaN or infinity from such a row is what ggml gives too).
//!   Q4_1 / Q5_1 add `Σ |block min|·|stored block sum|` to `M` (Q8_1's sum is an f16 and can
//!   overflow alone). Identical results (infinities included, any NaN for any NaN) always pass.
//! - mode odd ("exact"): scales and mins in ±{½, 1, 2}, activations small integers times
//!   {½, 1, 2}: every intermediate is exact, so the results must be bit-identical.
//!
//! Both modes also check that GEMV and GEMM (1 and 2 threads) give each row's `vec_dot` bit for
//! bit, that the register-tiled GEMM (16 copies of the activation row; Q4_K, Q6_K, Q8_0, F32,
//! F16, BF16 on AVX-512) gives bit-identical columns within the bounds above of the scalar
//! reference, and for BF16 weights the BF16 × BF16 kernels against an f64 sum (bound
//! `(n/16 + 16)·2⁻²³·Σ|w·a|`, plus the products with a subnormal factor and a subnormal per
//! element: AVX512_BF16's `vdpbf16ps` treats subnormal inputs and results as zero).
#![no_main]
use gq_fuzz::{f16_fields, f16b, same, scalar, simd_tables, Bytes};
use gq_kernels::{gemm_scratch_bytes, gemv_scratch_bytes, FloatAct, GgmlType, Kernels};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const P2: [f32; 3] = [0.5, 1.0, 2.0];

fn pools() -> &'static [rayon::ThreadPool] {
    static P: OnceLock<Vec<rayon::ThreadPool>> = OnceLock::new();
    P.get_or_init(|| {
        [1, 2]
            .into_iter()
            .map(|t| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap()
            })
            .collect()
    })
}

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

/// `M`: Σ (|scale part| + |min part|)·|a| in f64.
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
    let per_element: f64 = (0..n)
        .map(|i| (scale_part[i].abs() as f64 + min_part[i].abs() as f64) * av[i].abs() as f64)
        .sum();
    // Q4_1 / Q5_1 multiply each block's min by Q8_1's stored block sum `s` (an f16, which can
    // overflow where the elements do not): that product is summed too.
    let stored_sums: f64 = if ty.vec_dot_type() == Some(GgmlType::Q8_1) {
        let f16 = |b: &[u8], o: usize| gq_kernels::num::f16_to_f32([b[o], b[o + 1]]).abs() as f64;
        w.chunks_exact(ty.block_bytes())
            .zip(a.chunks_exact(GgmlType::Q8_1.block_bytes()))
            .map(|(wb, ab)| f16(wb, 2) * f16(ab, 2))
            .sum()
    } else {
        0.0
    };
    per_element + stored_sums
}

fn float_bytes(ty: GgmlType, v: f32) -> Vec<u8> {
    match ty {
        GgmlType::F32 => v.to_le_bytes().to_vec(),
        GgmlType::F16 => f16b(v).to_vec(),
        _ => ((v.to_bits() >> 16) as u16).to_le_bytes().to_vec(),
    }
}

/// Exact-mode weights: quants from the input, scales and mins from ±{½, 1, 2}; float weights
/// small integers times {½, 1, 2}.
fn exact_weights(src: &mut Bytes, ty: GgmlType, nb: usize) -> Vec<u8> {
    if ty.is_float() {
        return (0..nb)
            .flat_map(|_| {
                let v = (src.u8() % 17) as f32 - 8.0;
                float_bytes(ty, v * src.pick(&P2))
            })
            .collect();
    }
    let bb = ty.block_bytes();
    let mut w = src.take(nb * bb);
    let (ds, ms) = f16_fields(ty);
    for b in w.chunks_exact_mut(bb) {
        for &o in ds {
            let x = P2[b[o] as usize % 3];
            b[o..o + 2].copy_from_slice(&f16b(x));
        }
        for &o in ms {
            let s = if b[o + 1] & 1 == 0 { -1.0 } else { 1.0 };
            let x = s * P2[b[o] as usize % 3];
            b[o..o + 2].copy_from_slice(&f16b(x));
        }
    }
    w
}

/// Exact-mode activations, as `exact_activation` in the kernels' tests builds them.
fn exact_activation(src: &mut Bytes, ty: GgmlType, n: usize) -> Vec<u8> {
    let at = ty.vec_dot_type().unwrap();
    let small = |src: &mut Bytes| ((src.u8() % 9) as i8 - 4) as u8;
    match at {
        GgmlType::F32 => (0..n)
            .flat_map(|_| {
                let v = ((src.u8() % 17) as f32 - 8.0) * src.pick(&P2);
                v.to_le_bytes()
            })
            .collect(),
        GgmlType::Q8_0 | GgmlType::Q8_1 => {
            let bb = at.block_bytes();
            let off = bb - 32;
            let mut out = vec![0u8; n / 32 * bb];
            for b in out.chunks_exact_mut(bb) {
                b[0..2].copy_from_slice(&f16b(src.pick(&P2)));
                if off == 4 {
                    b[2..4].copy_from_slice(&f16b((src.u8() % 9) as f32 - 4.0));
                }
                for q in &mut b[off..] {
                    *q = small(src);
                }
            }
            out
        }
        _ => {
            let mut out = vec![0u8; n / 256 * 292];
            for b in out.chunks_exact_mut(292) {
                b[0..4].copy_from_slice(&src.pick(&P2).to_le_bytes());
                for q in &mut b[4..260] {
                    *q = small(src);
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

/// f32 activations from the input's bytes (any bit pattern).
fn raw_f32s(src: &mut Bytes, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| f32::from_le_bytes(src.take(4).try_into().unwrap()))
        .collect()
}

/// GEMV / GEMM (1 and 2 threads) equal `vec_dot` of each row on `k`'s own activation row.
fn check_gemv(k: &Kernels, ty: GgmlType, w_row: &[u8], x: &[f32]) {
    let cols = x.len();
    let rows = 3;
    let w = rotated_rows(ty, w_row, rows);
    let mut s1 = vec![0u8; gemv_scratch_bytes(ty, cols)];
    let a = k.prepare_activation(ty, x, &mut s1).to_vec();
    let want: Vec<f32> = (0..rows)
        .map(|r| k.vec_dot(ty, &w[r * w_row.len()..(r + 1) * w_row.len()], &a))
        .collect();
    let xs: Vec<f32> = x.iter().chain(x.iter()).copied().collect();
    let mut scratch = vec![0u8; gemm_scratch_bytes(ty, cols, 2)];
    for pool in pools() {
        let mut y = vec![f32::NAN; rows];
        pool.install(|| k.gemv(ty, &w, x, &mut y, &mut scratch));
        for r in 0..rows {
            assert!(
                same(y[r], want[r]),
                "{} {ty} gemv row {r}: {} vs vec_dot {}",
                k.isa(),
                y[r],
                want[r]
            );
        }
        let mut ys = vec![f32::NAN; 2 * rows];
        pool.install(|| k.gemm(ty, &w, rows, cols, &xs, &mut ys, &mut scratch));
        for j in 0..2 {
            for r in 0..rows {
                let g = ys[j * rows + r];
                assert!(
                    same(g, want[r]),
                    "{} {ty} gemm {j},{r}: {g} vs vec_dot {}",
                    k.isa(),
                    want[r]
                );
            }
        }
    }
}

/// The bound on |SIMD − scalar| for a row of `nb` blocks (`n` elements) with `M = m`:
/// `(nb + 4)·2⁻²¹·M` for the quantized types, `(n + 16)·2⁻²³·M` for the float types, plus the
/// absolute error the scalar reference itself may carry from products that fall into f32's
/// subnormal range: it rounds `d_w·d_a` (and `dmin·d_a`) to f32 before multiplying by the
/// block's integer sum (below 2^25 in magnitude), so a subnormal scale product loses up to
/// 2^-150 · 2^25 per block; float types lose up to 2^-150 per product. Kernels that scale the
/// integer sum first are more accurate there (host fuzz finding
/// fuzz/regressions/vec_dot/q4k-subnormal-scale-products: the tiled Q4_K GEMM differed from the
/// reference by 5e-43 on a result of 1e-37 whose reference used `dmin·d_a` = 1e-41).
fn bound(ty: GgmlType, nb: usize, n: usize, m: f64) -> f64 {
    if ty.is_float() {
        (n as f64 + 16.0) * (2f64.powi(-23) * m + 2f64.powi(-149))
    } else {
        (nb as f64 + 4.0) * (2f64.powi(-21) * m + 2f64.powi(-124))
    }
}

/// `rows` weight rows, row r being `w_row` rotated by r blocks: different rows, same bytes.
fn rotated_rows(ty: GgmlType, w_row: &[u8], rows: usize) -> Vec<u8> {
    let bb = ty.block_bytes();
    let nb = w_row.len() / bb;
    let mut w = Vec::with_capacity(rows * w_row.len());
    for r in 0..rows {
        let s = (r % nb.max(1)) * bb;
        w.extend_from_slice(&w_row[s..]);
        w.extend_from_slice(&w_row[..s]);
    }
    w
}

/// The register-tiled GEMM (taken from `GEMM_TILE_MIN_N` columns, for the types it covers):
/// the same activation row in every column gives bit-identical columns (a column depends on
/// its own row only), and each row is within the bound of the scalar reference (the tiled
/// path is not bit-identical to `vec_dot`). Float weights take exact f32 activations here (the
/// runner's format), so BF16 is held to the float bound too.
fn check_tiled(k: &Kernels, ty: GgmlType, w_row: &[u8], x: &[f32]) {
    let n = gq_kernels::GEMM_TILE_MIN_N;
    let cols = x.len();
    // The activation quantizers take finite input only (docs/kernels.md), so rows with a NaN
    // or an infinity are checked for not crashing only. (Host fuzz run of 2026-11-29 05:40:
    // 117 such Q6_K inputs, where the AVX-512 Q8_K quantizer's group sums did not match its
    // quants; since the fourth session of that day it takes them from its stored quants, but
    // such input stays outside the quantizers' contract.)
    if !k.gemm_is_tiled(ty, cols, n, FloatAct::F32) || !x.iter().all(|v| v.is_finite()) {
        return;
    }
    let rows = 2;
    let nb = w_row.len() / ty.block_bytes();
    let w = rotated_rows(ty, w_row, rows);
    let xs: Vec<f32> = (0..n).flat_map(|_| x.iter().copied()).collect();
    let mut scratch = vec![0u8; gemm_scratch_bytes(ty, cols, n)];
    let mut ys = vec![f32::NAN; n * rows];
    pools()[1].install(|| {
        k.gemm_as(
            ty,
            &w,
            rows,
            cols,
            &xs,
            &mut ys,
            &mut scratch,
            FloatAct::F32,
        )
    });
    for j in 1..n {
        for r in 0..rows {
            assert!(
                same(ys[j * rows + r], ys[r]),
                "{} {ty} tiled gemm column {j} row {r}: {} vs column 0 {}",
                k.isa(),
                ys[j * rows + r],
                ys[r]
            );
        }
    }
    // The scalar dot on the activation row this table's quantizer made (what the GEMM
    // multiplies; NaN inputs, which the quantizers do not support, may quantize differently
    // per ISA).
    let s = scalar();
    let a: Vec<u8> = if ty.is_float() {
        x.iter().flat_map(|v| v.to_le_bytes()).collect()
    } else {
        let at = ty.vec_dot_type().unwrap();
        let mut a = vec![0u8; at.row_bytes(cols).unwrap()];
        k.quantize_row(at, x, &mut a);
        a
    };
    for r in 0..rows {
        let wr = &w[r * w_row.len()..(r + 1) * w_row.len()];
        let want = s.vec_dot(ty, wr, &a);
        let m = magnitude(ty, wr, &a, cols);
        // A non-finite reference where M is small overflowed in its own scale product
        // (`d_w·d_a` before the integer sum): the tiled path scales the sum first and may stay
        // finite (host fuzz run of 2026-11-29 05:40: 0 vs the reference's NaN from
        // (−184·−2.4e36)·0).
        if !(m.is_finite() && m < f32::MAX as f64 / 256.0) || same(ys[r], want) || !want.is_finite()
        {
            continue;
        }
        let bound = bound(ty, nb, cols, m);
        assert!(
            (ys[r] as f64 - want as f64).abs() <= bound,
            "{} {ty} tiled gemm row {r} n={cols}: {} vs scalar {want}, bound {bound} (M {m})",
            k.isa(),
            ys[r]
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut src = Bytes(data);
    let ty = src.pick(&GgmlType::WEIGHTS);
    let exact = src.u8() % 2 == 1;
    let bs = ty.block_size();
    let nb = if bs == 1 {
        let (hi, lo) = (src.u8() as usize, src.u8() as usize);
        1 + (hi * 256 + lo) % 4096
    } else {
        1 + src.u8() as usize % 16
    };
    let n = nb * bs;
    let tables = simd_tables();
    let s = scalar();
    if exact {
        let w = exact_weights(&mut src, ty, nb);
        let a = exact_activation(&mut src, ty, n);
        let want = s.vec_dot(ty, &w, &a);
        for k in &tables {
            let got = k.vec_dot(ty, &w, &a);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{} {ty} n={n} exact: {got} vs scalar {want}",
                k.isa()
            );
        }
        return;
    }
    let w = src.take(nb * ty.block_bytes());
    let x = raw_f32s(&mut src, n);
    let a: Vec<u8> = if ty.is_float() {
        x.iter().flat_map(|v| v.to_le_bytes()).collect()
    } else {
        let at = ty.vec_dot_type().unwrap();
        let mut a = vec![0u8; at.row_bytes(n).unwrap()];
        s.quantize_row(at, &x, &mut a);
        a
    };
    let want = s.vec_dot(ty, &w, &a);
    let m = magnitude(ty, &w, &a, n);
    let bounded = m.is_finite() && m < f32::MAX as f64 / 256.0;
    let bound = bound(ty, nb, n, m);
    for k in &tables {
        let got = k.vec_dot(ty, &w, &a);
        if bounded && !same(got, want) {
            assert!(
                (got as f64 - want as f64).abs() <= bound,
                "{} {ty} n={n}: {got} vs scalar {want}, |diff| {} > bound {bound} (M {m})",
                k.isa(),
                (got as f64 - want as f64).abs()
            );
        }
    }
    for k in tables.iter().copied().chain([s]) {
        check_gemv(k, ty, &w, &x);
    }
    for k in &tables {
        check_tiled(k, ty, &w, &x);
    }
    if ty == GgmlType::BF16 {
        // BF16 weights × BF16-rounded activations, every table against an f64 sum.
        let mut scratch = vec![0u8; 2 * n];
        let ab = s
            .prepare_activation_as(ty, &x, &mut scratch, FloatAct::Bf16)
            .to_vec();
        let bf = |b: &[u8], i: usize| {
            f32::from_bits((u16::from_le_bytes([b[2 * i], b[2 * i + 1]]) as u32) << 16) as f64
        };
        let (mut exact_sum, mut mag, mut flushed) = (0f64, 0f64, 0f64);
        let subnormal = |x: f64| x != 0.0 && x.abs() < f32::MIN_POSITIVE as f64;
        for i in 0..n {
            let p = bf(&w, i) * bf(&ab, i);
            exact_sum += p;
            mag += p.abs();
            if subnormal(bf(&w, i)) || subnormal(bf(&ab, i)) {
                flushed += p.abs();
            }
        }
        let ok = mag.is_finite() && mag < f32::MAX as f64 / 256.0;
        // vdpbf16ps treats subnormal inputs as zero and flushes subnormal results (Intel's
        // definition, whatever MXCSR says; ggml uses the same instruction): the products with a
        // subnormal factor, and a subnormal per step, may be lost.
        let bound = ((n / 16) as f64 + 16.0) * 2f64.powi(-23) * mag
            + flushed
            + (n as f64 + 16.0) * f32::MIN_POSITIVE as f64;
        for k in tables.iter().copied().chain([s]) {
            let got = k.vec_dot(ty, &w, &ab) as f64;
            if ok && got != exact_sum {
                assert!(
                    (got - exact_sum).abs() <= bound,
                    "{} BF16×BF16 n={n}: {got} vs {exact_sum}, bound {bound}",
                    k.isa()
                );
            }
        }
    }
});
