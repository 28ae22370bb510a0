//! Measurement helpers shared by the criterion benches and `gq bench kernels`: valid random
//! weight matrices, timed GEMV runs and a STREAM-style read-bandwidth probe.

use crate::{gemv_scratch_bytes, GgmlType, Kernels};
use std::time::Instant;

/// Best and median wall time of repeated runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Fastest run, seconds.
    pub best: f64,
    /// Median run, seconds.
    pub median: f64,
}

impl Timing {
    /// Times `reps` runs of `f` after one warm-up run.
    pub fn measure(reps: usize, mut f: impl FnMut()) -> Timing {
        f();
        let mut t: Vec<f64> = (0..reps.max(1))
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed().as_secs_f64()
            })
            .collect();
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        Timing {
            best: t[0],
            median: t[t.len() / 2],
        }
    }

    /// `bytes / best` in GB/s (10⁹ bytes per second).
    pub fn gbps(&self, bytes: usize) -> f64 {
        bytes as f64 / self.best / 1e9
    }
}

/// Offsets of the f16 scale fields in one block of `ty` (each set to a small positive value
/// by [`random_weights`]).
fn scale_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[],
    }
}

/// A `rows × cols` matrix of `ty` with random quants and finite, small scales (float types:
/// values in ±1). Deterministic for a seed.
pub fn random_weights(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let mut w = vec![0u8; ty.row_bytes(cols).expect("whole blocks") * rows];
    fill_random_weights(ty, &mut w, seed);
    w
}

/// Fills `w` (whole blocks of `ty`) like [`random_weights`].
pub fn fill_random_weights(ty: GgmlType, w: &mut [u8], seed: u64) {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for c in w.chunks_mut(8) {
        let v = next().to_le_bytes();
        c.copy_from_slice(&v[..c.len()]);
    }
    // Float weights: magnitudes in [2⁻⁸, 2) like real weights (random exponent bits would give
    // denormals, which cost Intel cores microcode assists that real models never trigger).
    let fix_float = |w: &mut [u8], esz: usize| {
        for c in w.chunks_exact_mut(esz) {
            let hi = c.len() - 1;
            let top = u16::from_le_bytes([c[hi - 1], c[hi]]);
            let top = if ty == GgmlType::F16 {
                // f16: exponent in bits 14..10; 2⁻⁸ .. 2⁻¹.
                (top & 0x83ff) | ((7 + ((top >> 10) & 7)) << 10)
            } else {
                // f32 / bf16: exponent in bits 14..7 of the top 16 bits; 2⁻⁸ .. 2⁻¹.
                (top & 0x807f) | ((119 + ((top >> 7) & 7)) << 7)
            };
            c[hi - 1..].copy_from_slice(&top.to_le_bytes());
        }
    };
    match ty {
        GgmlType::F32 => fix_float(w, 4),
        GgmlType::F16 | GgmlType::BF16 => fix_float(w, 2),
        _ => {
            let f16 = half::f16::from_f32(0.01).to_le_bytes();
            for b in w.chunks_exact_mut(ty.block_bytes()) {
                for &o in scale_fields(ty) {
                    b[o..o + 2].copy_from_slice(&f16);
                }
                if ty == GgmlType::Q8_0 {
                    for q in &mut b[2..] {
                        if *q == 0x80 {
                            *q = 0x81;
                        }
                    }
                }
            }
        }
    }
}

/// Times `y = W·x` for a `rows × cols` matrix `w` of `ty` in the current rayon pool.
pub fn time_gemv(k: &Kernels, ty: GgmlType, w: &[u8], cols: usize, reps: usize) -> Timing {
    let rows = w.len() / ty.row_bytes(cols).expect("whole blocks");
    let x: Vec<f32> = (0..cols)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let mut y = vec![0f32; rows];
    let mut scratch = vec![0u8; gemv_scratch_bytes(ty, cols)];
    Timing::measure(reps, || {
        k.gemv(ty, w, &x, &mut y, &mut scratch);
        std::hint::black_box(&y);
    })
}

/// Times a full read of `buf` (see [`crate::stream::par_sum_u64`]) in the current rayon pool.
pub fn time_read(buf: &[u64], reps: usize) -> Timing {
    Timing::measure(reps, || {
        std::hint::black_box(crate::stream::par_sum_u64(buf));
    })
}

/// A buffer of `bytes` (rounded down to u64s) with every page written.
pub fn stream_buffer(bytes: usize) -> Vec<u64> {
    (0..bytes / 8).map(|i| i as u64).collect()
}

/// Writes every u64 of `buf` (so that its pages are mapped before timing).
pub fn fill_stream_buffer(buf: &mut [u64]) {
    for (i, v) in buf.iter_mut().enumerate() {
        *v = i as u64;
    }
}

/// Times `Y = X·Wᵀ` ([`Kernels::gemm`]) for `n` activation rows and the `rows × cols` matrix
/// `w` of `ty` in the current rayon pool (activation quantization included, as in ggml's
/// MUL_MAT).
pub fn time_gemm(
    k: &Kernels,
    ty: GgmlType,
    w: &[u8],
    cols: usize,
    n: usize,
    reps: usize,
) -> Timing {
    let rows = w.len() / ty.row_bytes(cols).expect("whole blocks");
    let xs: Vec<f32> = (0..n * cols)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let mut ys = vec![0f32; n * rows];
    let mut scratch = vec![0u8; crate::gemm_scratch_bytes(ty, cols, n)];
    Timing::measure(reps, || {
        k.gemm(ty, w, rows, cols, &xs, &mut ys, &mut scratch);
        std::hint::black_box(&ys);
    })
}

/// The core clock while 512-bit (or, without AVX-512, 256-bit) vector code runs, GHz: a chain of
/// dependent vector integer adds (latency 1 cycle on every x86 core gq targets), best of many
/// short runs. 0 off x86-64.
pub fn vector_clock_ghz() -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        let chain = |n: u64| {
            if is_x86_feature_detected!("avx512f") {
                // SAFETY: AVX-512F detected; the asm only touches the named registers.
                unsafe { chain512(n) }
            } else if is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 detected.
                unsafe { chain256(n) }
            }
        };
        let mut best = 0f64;
        for _ in 0..30 {
            let n = 100_000u64;
            let s = Instant::now();
            chain(n);
            best = best.max(16.0 * n as f64 / s.elapsed().as_secs_f64() / 1e9);
        }
        best
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0.0
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn chain512(n: u64) {
    // SAFETY: register-only AVX-512F instructions and a counter; caller checked the feature.
    unsafe {
        core::arch::asm!(
            "vpxord zmm1, zmm1, zmm1",
            "2:",
            "vpaddd zmm0, zmm0, zmm1", "vpaddd zmm0, zmm0, zmm1", "vpaddd zmm0, zmm0, zmm1", "vpaddd zmm0, zmm0, zmm1",
            "vpaddd zmm0, zmm0, zmm1", "vpaddd zmm0, zmm0, zmm1", "vpaddd zmm0, zmm0, zmm1", "vpaddd zmm0, zmm0, zmm1",
            "vpaddd zmm0, zmm0, zmm1", "vpaddd zmm0, zmm0, zmm1", "vpaddd zmm0, zmm0, zmm1", "vpaddd zmm0, zmm0, zmm1",
            "vpaddd zmm0, zmm0, zmm1", "vpaddd zmm0, zmm0, zmm1", "vpaddd zmm0, zmm0, zmm1", "vpaddd zmm0, zmm0, zmm1",
            "sub {n}, 1",
            "jnz 2b",
            n = inout(reg) n => _,
            out("zmm0") _,
            out("zmm1") _,
            options(nostack)
        );
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn chain256(n: u64) {
    // SAFETY: register-only AVX2 instructions and a counter; caller checked the feature.
    unsafe {
        core::arch::asm!(
            "vpxor ymm1, ymm1, ymm1",
            "2:",
            "vpaddd ymm0, ymm0, ymm1", "vpaddd ymm0, ymm0, ymm1", "vpaddd ymm0, ymm0, ymm1", "vpaddd ymm0, ymm0, ymm1",
            "vpaddd ymm0, ymm0, ymm1", "vpaddd ymm0, ymm0, ymm1", "vpaddd ymm0, ymm0, ymm1", "vpaddd ymm0, ymm0, ymm1",
            "vpaddd ymm0, ymm0, ymm1", "vpaddd ymm0, ymm0, ymm1", "vpaddd ymm0, ymm0, ymm1", "vpaddd ymm0, ymm0, ymm1",
            "vpaddd ymm0, ymm0, ymm1", "vpaddd ymm0, ymm0, ymm1", "vpaddd ymm0, ymm0, ymm1", "vpaddd ymm0, ymm0, ymm1",
            "sub {n}, 1",
            "jnz 2b",
            n = inout(reg) n => _,
            out("ymm0") _,
            out("ymm1") _,
            options(nostack)
        );
    }
}

/// Peak multiply-add throughput of one core for the GEMM of `ty` on this table's ISA, in
/// operations (2 per multiply-add) per cycle, and what it assumes: int8 `vpdpbusd` (64
/// multiply-adds per 512-bit instruction, two per cycle) for quantized types, `vdpbf16ps` (32,
/// two per cycle) for BF16 with BF16 activations, f32 FMA (16, two per cycle) otherwise; AVX2
/// halves the widths (int8: `vpmaddubsw` ymm, 32 multiply-adds, two per cycle). For a GEMM that runs AMX tiles see [`amx_peak_ops_per_cycle`].
pub fn peak_ops_per_cycle(k: &Kernels, ty: GgmlType) -> (f64, &'static str) {
    let wide = k.isa() == crate::Isa::Avx512;
    let (per_insn, what) = if !ty.is_float() {
        (64.0, "int8 dot (vpdpbusd), 2/cycle")
    } else if ty == GgmlType::BF16 && k.default_act(ty) == crate::FloatAct::Bf16 {
        (32.0, "bf16 dot (vdpbf16ps), 2/cycle")
    } else {
        (16.0, "f32 FMA, 2/cycle")
    };
    let (per_insn, what) = match (wide, ty.is_float()) {
        (true, _) => (per_insn, what),
        // AVX2: `vpmaddubsw` ymm, 16 pairs of u8 × s8 products (32 multiply-adds).
        (false, false) => (32.0, "int8 pairs (vpmaddubsw ymm), 2/cycle"),
        (false, true) => (per_insn / 2.0, what),
    };
    (2.0 * 2.0 * per_insn, what)
}

/// Peak of one core's AMX unit in operations (2 per multiply-add) per cycle: `tdpbssd` /
/// `tdpbsud` 16·16·64 multiply-adds per 16 cycles (2048 ops/cycle) for the int8 formats,
/// `tdpbf16ps` 16·16·32 per 16 cycles (1024) for BF16 (Sapphire / Emerald Rapids).
pub fn amx_peak_ops_per_cycle(ty: GgmlType) -> (f64, &'static str) {
    if ty.is_float() {
        (1024.0, "AMX tdpbf16ps, 512 bf16 multiply-adds/cycle")
    } else {
        (2048.0, "AMX tdpbssd, 1024 int8 multiply-adds/cycle")
    }
}
