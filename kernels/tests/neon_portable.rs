//! The NEON kernels (`gq_kernels::neon`), compiled here against the portable intrinsics, against
//! the scalar reference: quantized types within `(nb + 4)·2⁻²¹·Σ|terms|` (integer parts exact,
//! float accumulation order differs), float types within `(n + 16)·2⁻²³·Σ|w·x|`; the F16
//! widening is checked bit for bit on all 65536 values.

use gq_kernels::bench::random_weights;
use gq_kernels::{kernels_for, neon, GgmlType, Isa};

fn xs(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let v = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
            v as f32 / (1u32 << 23) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

type Kernel = unsafe fn(&[u8], &[u8]) -> f32;

fn check(ty: GgmlType, f: Kernel, cols: &[usize]) {
    let s = kernels_for(Isa::Scalar).unwrap();
    for (t, &n) in cols.iter().enumerate() {
        let w = random_weights(ty, 1, n, 17 + t as u64);
        let x = xs(n, 99 + t as u32);
        let mut scratch = vec![0u8; gq_kernels::gemv_scratch_bytes(ty, n)];
        let a = s
            .prepare_activation_as(ty, &x, &mut scratch, gq_kernels::FloatAct::F32)
            .to_vec();
        let want = s.vec_dot(ty, &w, &a) as f64;
        // SAFETY: whole rows of matching lengths, as `vec_dot` checked for the scalar call.
        let got = unsafe { f(&w, &a) } as f64;
        let mut deq = vec![0f32; n];
        s.dequantize_row(ty, &w, &mut deq);
        let mag: f64 = deq
            .iter()
            .zip(&x)
            .map(|(w, x)| (*w as f64 * *x as f64).abs())
            .sum();
        let bound = if ty.is_float() {
            (n as f64 + 16.0) * 2f64.powi(-23) * mag
        } else {
            // Activation quantization scales |a| by up to 127/max; the mins add as much again.
            ((n / ty.block_size()) as f64 + 4.0) * 2f64.powi(-21) * 4.0 * (mag + 1.0)
        };
        assert!(
            (got - want).abs() <= bound,
            "{ty} n={n}: neon {got} vs scalar {want}, bound {bound}"
        );
    }
}

#[test]
fn neon_float_dots_match_scalar() {
    let cols = [1, 3, 4, 15, 16, 17, 64, 257, 1000, 4099];
    check(GgmlType::F32, neon::dot_f32, &cols);
    check(GgmlType::F16, neon::dot_f16, &cols);
    check(GgmlType::BF16, neon::dot_bf16, &cols);
}

#[test]
fn neon_quant_dots_match_scalar() {
    check(GgmlType::Q8_0, neon::dot_q8_0, &[32, 64, 96, 32 * 31, 4096]);
    check(GgmlType::Q4_K, neon::dot_q4_k, &[256, 512, 256 * 7, 4096]);
}

#[test]
fn neon_q8_0_and_q4_k_bit_exact_on_exact_data() {
    // Power-of-two scales and tiny activations: every intermediate is exact, so the NEON and
    // scalar sums must agree bit for bit (an integer-part bug shows as a difference).
    let s = kernels_for(Isa::Scalar).unwrap();
    for (ty, f) in [
        (GgmlType::Q8_0, neon::dot_q8_0 as Kernel),
        (GgmlType::Q4_K, neon::dot_q4_k),
    ] {
        let n = 1024;
        let mut w = random_weights(ty, 1, n, 5);
        let x: Vec<f32> = (0..n).map(|i| ((i % 7) as f32 - 3.0) / 4.0).collect();
        let one = half::f16::from_f32(0.5).to_le_bytes();
        let bb = ty.block_bytes();
        for blk in w.chunks_exact_mut(bb) {
            match ty {
                GgmlType::Q8_0 => blk[..2].copy_from_slice(&one),
                _ => {
                    blk[..2].copy_from_slice(&one);
                    blk[2..4].copy_from_slice(&half::f16::from_f32(0.25).to_le_bytes());
                }
            }
        }
        let mut scratch = vec![0u8; gq_kernels::gemv_scratch_bytes(ty, n)];
        let a = if ty == GgmlType::Q8_0 {
            s.prepare_activation(ty, &x, &mut scratch).to_vec()
        } else {
            // Q8_K built directly: d = ½, quants in −3..3, block sums of 16.
            let mut a = Vec::new();
            for b in 0..n / 256 {
                a.extend_from_slice(&0.5f32.to_le_bytes());
                let q: Vec<i8> = (0..256).map(|i| ((i * 5 + b) % 7) as i8 - 3).collect();
                a.extend(q.iter().map(|&v| v as u8));
                for g in q.chunks_exact(16) {
                    let sum: i16 = g.iter().map(|&v| v as i16).sum();
                    a.extend_from_slice(&sum.to_le_bytes());
                }
            }
            a
        };
        // SAFETY: whole rows of matching lengths.
        let got = unsafe { f(&w, &a) };
        assert_eq!(got.to_bits(), s.vec_dot(ty, &w, &a).to_bits(), "{ty}");
    }
}

#[test]
fn neon_f16_widening_exact() {
    // Every f16 bit pattern through the F16 kernel with a one-hot activation.
    let s = kernels_for(Isa::Scalar).unwrap();
    let a = bytes(&[1.0, 0.0, 0.0, 0.0]);
    for h in 0..=u16::MAX {
        let w: Vec<u8> = [h, 0, 0, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
        // SAFETY: 4 f16 weights, 4 f32 activations.
        let got = unsafe { neon::dot_f16(&w, &a) };
        let want = half::f16::from_bits(h).to_f32();
        if want.is_nan() {
            assert!(got.is_nan(), "{h:#06x}");
        } else {
            assert_eq!(got.to_bits(), (want + 0.0 * 0.0).to_bits(), "{h:#06x}");
            assert_eq!(got, s.vec_dot(GgmlType::F16, &w, &a), "{h:#06x}");
        }
    }
}

/// An activation row of `ty` (Q8_0, Q8_1 or Q8_K) built directly: scale ½, quants in −3..=3,
/// sums consistent (so every intermediate of a dot with power-of-two weight scales is exact).
fn exact_act(ty: GgmlType, n: usize) -> Vec<u8> {
    let mut a = Vec::new();
    let bs = ty.block_size();
    for b in 0..n / bs {
        let q: Vec<i8> = (0..bs).map(|i| ((i * 5 + b) % 7) as i8 - 3).collect();
        let sum: i32 = q.iter().map(|&v| v as i32).sum();
        let half = half::f16::from_f32(0.5).to_le_bytes();
        match ty {
            GgmlType::Q8_0 => a.extend_from_slice(&half),
            GgmlType::Q8_1 => {
                a.extend_from_slice(&half);
                a.extend_from_slice(&half::f16::from_f32(0.5 * sum as f32).to_le_bytes());
            }
            _ => a.extend_from_slice(&0.5f32.to_le_bytes()),
        }
        a.extend(q.iter().map(|&v| v as u8));
        if ty == GgmlType::Q8_K {
            for g in q.chunks_exact(16) {
                let s: i16 = g.iter().map(|&v| v as i16).sum();
                a.extend_from_slice(&s.to_le_bytes());
            }
        }
    }
    assert_eq!(a.len(), ty.row_bytes(n).unwrap());
    a
}

/// Sets every f16 block scale of `w` (byte offsets `offs` in each block) to ½ or ¼.
fn exact_weights(ty: GgmlType, n: usize, offs: &[usize]) -> Vec<u8> {
    let mut w = random_weights(ty, 1, n, 5);
    for blk in w.chunks_exact_mut(ty.block_bytes()) {
        for (k, &o) in offs.iter().enumerate() {
            let v = if k == 0 { 0.5 } else { 0.25 };
            blk[o..o + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
        }
    }
    w
}

fn check_exact(ty: GgmlType, f: Kernel, offs: &[usize]) {
    let s = kernels_for(Isa::Scalar).unwrap();
    let n = 1024;
    let w = exact_weights(ty, n, offs);
    let a = exact_act(ty.vec_dot_type().unwrap(), n);
    // SAFETY: whole rows of matching lengths.
    let got = unsafe { f(&w, &a) };
    let want = s.vec_dot(ty, &w, &a);
    assert_eq!(
        got.to_bits(),
        want.to_bits(),
        "{ty}: neon {got} vs scalar {want}"
    );
}

#[test]
fn neon_32_element_dots() {
    let cols = [32, 64, 96, 32 * 31, 4096];
    check(GgmlType::Q4_0, neon::dot_q4_0, &cols);
    check(GgmlType::Q4_1, neon::dot_q4_1, &cols);
    check(GgmlType::Q5_0, neon::dot_q5_0, &cols);
    check(GgmlType::Q5_1, neon::dot_q5_1, &cols);
    check_exact(GgmlType::Q4_0, neon::dot_q4_0, &[0]);
    check_exact(GgmlType::Q4_1, neon::dot_q4_1, &[0, 2]);
    check_exact(GgmlType::Q5_0, neon::dot_q5_0, &[0]);
    check_exact(GgmlType::Q5_1, neon::dot_q5_1, &[0, 2]);
}

#[test]
fn neon_k_quant_dots() {
    let cols = [256, 512, 256 * 7, 4096];
    for (ty, f, offs) in [
        (GgmlType::Q6_K, neon::dot_q6_k as Kernel, &[208usize][..]),
        (GgmlType::Q5_K, neon::dot_q5_k, &[0, 2][..]),
        (GgmlType::Q2_K, neon::dot_q2_k, &[80, 82][..]),
        (GgmlType::Q3_K, neon::dot_q3_k, &[108][..]),
    ] {
        check(ty, f, &cols);
        check_exact(ty, f, offs);
    }
}

#[test]
fn neon_table_uses_the_neon_dots() {
    // The table `kernels_for(Isa::Neon)` holds on aarch64, here over the portable intrinsics.
    let k = neon::table();
    assert_eq!(k.isa(), Isa::Neon);
    assert_eq!(
        kernels_for(Isa::Neon).is_some(),
        cfg!(target_arch = "aarch64")
    );
    let s = kernels_for(Isa::Scalar).unwrap();
    for ty in GgmlType::WEIGHTS {
        let n = 512;
        let (rows, w) = (3, random_weights(ty, 3, n, 11));
        let x = xs(n, 7);
        let mut scratch = vec![0u8; gq_kernels::gemv_scratch_bytes(ty, n)];
        let a = s.prepare_activation(ty, &x, &mut scratch).to_vec();
        let rb = ty.row_bytes(n).unwrap();
        let mut y = vec![0f32; rows];
        k.gemv(ty, &w, &x, &mut y, &mut scratch);
        for r in 0..rows {
            let want = k.vec_dot(ty, &w[r * rb..(r + 1) * rb], &a);
            assert_eq!(y[r].to_bits(), want.to_bits(), "{ty} row {r}");
            let diff = (want - s.vec_dot(ty, &w[r * rb..(r + 1) * rb], &a)).abs();
            assert!(diff <= 1e-3 * (1.0 + want.abs()), "{ty}: neon {want}");
        }
    }
}
