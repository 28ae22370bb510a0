//! x86-64 SIMD kernels and their dispatch tables.

pub mod amx;
pub mod avx2;
pub mod avx512;
pub mod avx512bf16;
pub(crate) mod f32rows;
pub(crate) mod f32rows_avx2;
pub(crate) mod gelu;
pub mod intel;
pub(crate) mod tile;
pub(crate) mod tile_avx2;
pub(crate) mod tq_act;
pub mod tq_avx2;
pub mod tq_avx512;
pub(crate) mod tq_encode;
pub(crate) mod tq_encode_avx2;
pub(crate) mod vector_avx2;
pub(crate) mod vector_avx512;

use crate::dispatch::{Kernels, Tune};
use crate::isa::Isa;
use crate::GgmlType;

/// Mask of the first `left` 32-bit lanes of a 512-bit register, or all 16 for `left ≥ 16` (a
/// loop's masked tail).
#[inline(always)]
pub(crate) fn mask16(left: usize) -> core::arch::x86_64::__mmask16 {
    if left >= 16 {
        !0
    } else {
        (1u16 << left) - 1
    }
}

/// Software prefetch for the two-row dots, which walk consecutive rows `r`, `r + 1` of a
/// contiguous matrix (`p1 = p0 + rb`) and then `r + 2`, `r + 3`: the line `off` bytes ahead of
/// each stream, where a target past the end of its own row skips one more row (the partner's,
/// which the other stream is reading), so that both rows of the next pair start warm. A
/// prefetch cannot fault; the addresses are formed with wrapping arithmetic.
#[inline(always)]
pub(crate) fn prefetch_pair(p0: *const u8, p1: *const u8, off: usize, rb: usize) {
    use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    let o = if off >= rb { off + rb } else { off };
    // SAFETY: prefetches are hints and never fault.
    unsafe {
        _mm_prefetch::<_MM_HINT_T0>(p0.wrapping_add(o).cast());
        _mm_prefetch::<_MM_HINT_T0>(p1.wrapping_add(o).cast());
    }
}

/// Safe wrappers around the `unsafe` SIMD kernels. They are only reachable through the tables
/// built below, which the dispatcher creates after checking the CPU features.
macro_rules! wrap {
    ($($name:ident: dot $path:path;)*) => {$(
        fn $name(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: this wrapper is only stored in a table that `dispatch` builds after
            // detecting the kernel's CPU features, and `Kernels::vec_dot` checked that `w` and
            // `a` hold whole rows of the same length.
            unsafe { $path(w, a) }
        }
    )*};
    ($($name:ident: dequant $path:path;)*) => {$(
        fn $name(src: &[u8], dst: &mut [f32]) {
            // SAFETY: as for the dot wrappers; `Kernels::dequantize_row` checked the lengths.
            unsafe { $path(src, dst) }
        }
    )*};
}

wrap! {
    a2_f32: dot avx2::dot_f32;
    a2_f16: dot avx2::dot_f16;
    a2_bf16: dot avx2::dot_bf16;
    a2_q4_0: dot avx2::dot_q4_0;
    a2_q4_1: dot avx2::dot_q4_1;
    a2_q5_0: dot avx2::dot_q5_0;
    a2_q5_1: dot avx2::dot_q5_1;
    a2_q8_0: dot avx2::dot_q8_0;
    a2_q2_k: dot avx2::dot_q2_k;
    a2_q3_k: dot avx2::dot_q3_k;
    a2_q4_k: dot avx2::dot_q4_k;
    a2_q5_k: dot avx2::dot_q5_k;
    a2_q6_k: dot avx2::dot_q6_k;
    a5_f32: dot avx512::dot_f32;
    a5_f16: dot avx512::dot_f16;
    a5_bf16: dot avx512::dot_bf16;
    a5_q4_0: dot avx512::dot_q4_0::<0>;
    a5_q4_1: dot avx512::dot_q4_1::<0>;
    a5_q5_0: dot avx512::dot_q5_0::<0>;
    a5_q5_1: dot avx512::dot_q5_1::<0>;
    a5_q8_0: dot avx512::dot_q8_0;
    a5_q2_k: dot avx512::dot_q2_k::<0>;
    a5_q3_k: dot avx512::dot_q3_k::<0>;
    a5_q4_k: dot avx512::dot_q4_k;
    a5_q5_k: dot avx512::dot_q5_k::<0>;
    a5_q6_k: dot avx512::dot_q6_k;
}

macro_rules! wrap2 {
    ($($name:ident: $path:path;)*) => {$(
        fn $name(w0: &[u8], w1: &[u8], a: &[u8]) -> [f32; 2] {
            // SAFETY: as for the dot wrappers; the GEMV checked that both rows and `a` have
            // the lengths of one row.
            unsafe { $path(w0, w1, a) }
        }
    )*};
}

wrap2! {
    a2_f32x2: avx2::dot2_f32;
    a2_f16x2: avx2::dot2_f16;
    a2_bf16x2: avx2::dot2_bf16;
    a5_f32x2: avx512::dot2_f32::<0>;
    a5_f16x2: avx512::dot2_f16::<0>;
    a5_bf16x2: avx512::dot2_bf16::<0>;
    i5_f32x2: avx512::dot2_f32::<{ intel::PREFETCH_T0 }>;
    i5_f16x2: avx512::dot2_f16::<{ intel::PREFETCH_T0 }>;
    i5_bf16x2: avx512::dot2_bf16::<{ intel::PREFETCH_T0 }>;
}

macro_rules! wrap_tq {
    ($($name:ident: $path:path;)*) => {$(
        fn $name(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: only stored in the AVX-512 table when `tq_avx512::available()` (VBMI,
            // BMI2) holds on top of the table's own features; `Kernels::vec_dot` / the GEMV
            // checked that `w` is whole rows and `a` the matching prepared activation.
            unsafe { $path(w, a) }
        }
    )*};
}

wrap! {
    a2_tqt4_5: dot tq_avx2::dot_tqt4_5;
    a2_tqt3_375: dot tq_avx2::dot_tqt3_375;
    a2_tqt2_5: dot tq_avx2::dot_tqt2_5;
    a2_tqj4_5: dot tq_avx2::dot_tqj4_5;
    a2_tqj3_375: dot tq_avx2::dot_tqj3_375;
    a2_tqj2_5: dot tq_avx2::dot_tqj2_5;
}

wrap_tq! {
    a5_tqt4_5: tq_avx512::dot_tqt4_5;
    a5_tqt3_375: tq_avx512::dot_tqt3_375;
    a5_tqt2_5: tq_avx512::dot_tqt2_5;
    a5_tqj4_5: tq_avx512::dot_tqj4_5;
    a5_tqj3_375: tq_avx512::dot_tqj3_375;
    a5_tqj2_5: tq_avx512::dot_tqj2_5;
    i5_tqt4_5: tq_avx512::dot_tqt4_5_pf;
    i5_tqt3_375: tq_avx512::dot_tqt3_375_pf;
    i5_tqt2_5: tq_avx512::dot_tqt2_5_pf;
    i5_tqj4_5: tq_avx512::dot_tqj4_5_pf;
    i5_tqj3_375: tq_avx512::dot_tqj3_375_pf;
    i5_tqj2_5: tq_avx512::dot_tqj2_5_pf;
}

macro_rules! wrap_tq_gemm {
    ($($name:ident: $path:path;)*) => {$(
        fn $name(w: &[u8], rb: usize, acts: &[u8], ab: usize, put: &mut dyn FnMut(usize, usize, f32)) {
            // SAFETY: as for `wrap_tq`; `Kernels::gemm_as` checked that `w` is whole rows of
            // `rb` bytes and `acts` whole prepared activations of `ab` bytes.
            unsafe { $path(w, rb, acts, ab, put) }
        }
    )*};
}

wrap_tq_gemm! {
    a5_tqt4_5_gemm: tq_avx512::gemm_tqt4_5;
    a5_tqt3_375_gemm: tq_avx512::gemm_tqt3_375;
    a5_tqt2_5_gemm: tq_avx512::gemm_tqt2_5;
}

macro_rules! wrap_tq2_gemm {
    ($($name:ident: $path:path;)*) => {$(
        fn $name(w: &[u8], rb: usize, acts: &[u8], ab: usize, put: &mut dyn FnMut(usize, usize, f32)) {
            // SAFETY: only stored in tables built after detecting AVX2 and FMA (the kernel
            // checks BMI2 itself); `Kernels::gemm_as` checked that `w` is whole rows of `rb`
            // bytes and `acts` whole prepared activations of `ab` bytes.
            unsafe { $path(w, rb, acts, ab, put) }
        }
    )*};
}

wrap_tq2_gemm! {
    a2_tqt4_5_gemm: tq_avx2::gemm_tqt4_5;
    a2_tqt3_375_gemm: tq_avx2::gemm_tqt3_375;
    a2_tqt2_5_gemm: tq_avx2::gemm_tqt2_5;
    a2_tqj4_5_gemm: tq_avx2::gemm_tqj4_5;
    a2_tqj3_375_gemm: tq_avx2::gemm_tqj3_375;
    a2_tqj2_5_gemm: tq_avx2::gemm_tqj2_5;
}

fn bf_dot(w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: only stored in a table built after detecting AVX-512 F/BW and AVX512_BF16 (see
    // `avx512_table`); `Kernels::vec_dot` / the GEMV pass a BF16 row as long as `w`.
    unsafe { avx512bf16::dot_bf16_bf16(w, a) }
}

fn bf_dot2(w0: &[u8], w1: &[u8], a: &[u8]) -> [f32; 2] {
    // SAFETY: as for `bf_dot`; the GEMV passes two rows and an activation of one row's length.
    unsafe { avx512bf16::dot2_bf16_bf16::<0>(w0, w1, a) }
}

fn bf_dot2_pf(w0: &[u8], w1: &[u8], a: &[u8]) -> [f32; 2] {
    // SAFETY: as for `bf_dot2`.
    unsafe { avx512bf16::dot2_bf16_bf16::<{ intel::PREFETCH_T0 }>(w0, w1, a) }
}

wrap! {
    dq2_f16: dequant avx2::dequant_f16;
    dq2_bf16: dequant avx2::dequant_bf16;
    dq2_q8_0: dequant avx2::dequant_q8_0;
    dq2_q4_0: dequant avx2::dequant_q4_0;
    dq2_q4_k: dequant avx2::dequant_q4_k;
    dq2_q6_k: dequant avx2::dequant_q6_k;
}

fn q2_q8_0(x: &[f32], dst: &mut [u8]) {
    // SAFETY: only stored in tables built after detecting AVX2/FMA/F16C; `quantize_row`
    // checked that `dst` holds exactly the blocks of `x`.
    unsafe { avx2::quantize_q8_0(x, dst) }
}

fn q2_q8_k(x: &[f32], dst: &mut [u8]) {
    // SAFETY: as for `q2_q8_0`.
    unsafe { avx2::quantize_q8_k(x, dst) }
}

fn q2_q8_1(x: &[f32], dst: &mut [u8]) {
    // SAFETY: as for `q2_q8_0`.
    unsafe { avx2::quantize_q8_1(x, dst) }
}

/// The AVX2 table: every dot product in AVX2, dequantizers in AVX2 where written (F16, BF16,
/// Q8_0, Q4_0, Q4_K, Q6_K) and scalar otherwise.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
pub(crate) unsafe fn avx2_table() -> Kernels {
    let mut k = Kernels::scalar_table();
    k.isa = Isa::Avx2;
    for (t, f) in [
        (GgmlType::F32, a2_f32 as crate::dispatch::DotFn),
        (GgmlType::F16, a2_f16),
        (GgmlType::BF16, a2_bf16),
        (GgmlType::Q4_0, a2_q4_0),
        (GgmlType::Q4_1, a2_q4_1),
        (GgmlType::Q5_0, a2_q5_0),
        (GgmlType::Q5_1, a2_q5_1),
        (GgmlType::Q8_0, a2_q8_0),
        (GgmlType::Q2_K, a2_q2_k),
        (GgmlType::Q3_K, a2_q3_k),
        (GgmlType::Q4_K, a2_q4_k),
        (GgmlType::Q5_K, a2_q5_k),
        (GgmlType::Q6_K, a2_q6_k),
        (GgmlType::TQT4_5, a2_tqt4_5),
        (GgmlType::TQT3_375, a2_tqt3_375),
        (GgmlType::TQT2_5, a2_tqt2_5),
        (GgmlType::TQJ4_5, a2_tqj4_5),
        (GgmlType::TQJ3_375, a2_tqj3_375),
        (GgmlType::TQJ2_5, a2_tqj2_5),
    ] {
        k.dot[t.index()] = Some(f);
    }
    for (t, f) in [
        (GgmlType::F32, a2_f32x2 as crate::dispatch::Dot2Fn),
        (GgmlType::F16, a2_f16x2),
        (GgmlType::BF16, a2_bf16x2),
    ] {
        k.dot2[t.index()] = Some(f);
    }
    for (t, f) in [
        (GgmlType::F16, dq2_f16 as crate::dispatch::DequantFn),
        (GgmlType::BF16, dq2_bf16),
        (GgmlType::Q8_0, dq2_q8_0),
        (GgmlType::Q4_0, dq2_q4_0),
        (GgmlType::Q4_K, dq2_q4_k),
        (GgmlType::Q6_K, dq2_q6_k),
    ] {
        k.dequant[t.index()] = Some(f);
    }
    k.quantize[GgmlType::Q8_0.index()] = Some(q2_q8_0);
    k.quantize[GgmlType::Q8_1.index()] = Some(q2_q8_1);
    k.quantize[GgmlType::Q8_K.index()] = Some(q2_q8_k);
    // The trellis types: a GEMM that decodes each row once per column block (bit-identical to
    // the dot products).
    for (t, gemm) in [
        (GgmlType::TQT4_5, a2_tqt4_5_gemm as crate::dispatch::GemmFn),
        (GgmlType::TQT3_375, a2_tqt3_375_gemm),
        (GgmlType::TQT2_5, a2_tqt2_5_gemm),
        (GgmlType::TQJ4_5, a2_tqj4_5_gemm),
        (GgmlType::TQJ3_375, a2_tqj3_375_gemm),
        (GgmlType::TQJ2_5, a2_tqj2_5_gemm),
    ] {
        k.rows[t.index()] = Some(crate::dispatch::RowKernels {
            act: crate::dispatch::ActLayout::Natural,
            gemv: k.dot[t.index()].expect("set above"),
            gemm,
            path: "tq: dot GEMV (B = 256: pdep fields, vpshufb tables); GEMM: rows decoded once per column block",
        });
    }
    k
}

fn q5_q8_k(x: &[f32], dst: &mut [u8]) {
    // SAFETY: only stored in the AVX-512 tables (built after detection); `quantize_row`
    // checked that `dst` holds exactly the blocks of `x`.
    unsafe { avx512::quantize_q8_k(x, dst) }
}

/// The AVX-512 table: the AVX2 table with 512-bit dot products for every weight type, and (where the CPU has AVX512_BF16) `vdpbf16ps` for BF16 weights × BF16
/// activations. With [`Tune::Intel`], Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q2_K…Q6_K take the row
/// kernels of `intel.rs` (GEMV, GEMM and `vec_dot`).
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI as well as AVX2, FMA and F16C; for
/// [`Tune::Intel`] also GFNI and AVX512_VBMI.
pub(crate) unsafe fn avx512_table(tune: Tune) -> Kernels {
    // SAFETY: AVX-512 CPUs that pass the caller's check also have AVX2, FMA and F16C (the
    // caller checks those too).
    let mut k = unsafe { avx2_table() };
    k.isa = Isa::Avx512;
    for (t, f) in [
        (GgmlType::F32, a5_f32 as crate::dispatch::DotFn),
        (GgmlType::F16, a5_f16),
        (GgmlType::BF16, a5_bf16),
        (GgmlType::Q4_0, a5_q4_0),
        (GgmlType::Q4_1, a5_q4_1),
        (GgmlType::Q5_0, a5_q5_0),
        (GgmlType::Q5_1, a5_q5_1),
        (GgmlType::Q8_0, a5_q8_0),
        (GgmlType::Q2_K, a5_q2_k),
        (GgmlType::Q3_K, a5_q3_k),
        (GgmlType::Q4_K, a5_q4_k),
        (GgmlType::Q5_K, a5_q5_k),
        (GgmlType::Q6_K, a5_q6_k),
    ] {
        k.dot[t.index()] = Some(f);
    }
    for (t, f) in [
        (GgmlType::F32, a5_f32x2 as crate::dispatch::Dot2Fn),
        (GgmlType::F16, a5_f16x2),
        (GgmlType::BF16, a5_bf16x2),
    ] {
        k.dot2[t.index()] = Some(f);
    }
    if tq_avx512::available() {
        // The AVX2 table's TQ row kernels give way to the AVX-512 ones (TQJ: the dot products).
        for t in GgmlType::ALL.iter().filter(|t| t.is_turboquant()) {
            k.rows[t.index()] = None;
        }
        // The Intel table's dot products prefetch the weight stream (same results).
        let intel = tune == Tune::Intel;
        for (t, f, fp) in [
            (
                GgmlType::TQT4_5,
                a5_tqt4_5 as crate::dispatch::DotFn,
                i5_tqt4_5 as crate::dispatch::DotFn,
            ),
            (GgmlType::TQT3_375, a5_tqt3_375, i5_tqt3_375),
            (GgmlType::TQT2_5, a5_tqt2_5, i5_tqt2_5),
            (GgmlType::TQJ4_5, a5_tqj4_5, i5_tqj4_5),
            (GgmlType::TQJ3_375, a5_tqj3_375, i5_tqj3_375),
            (GgmlType::TQJ2_5, a5_tqj2_5, i5_tqj2_5),
        ] {
            k.dot[t.index()] = Some(if intel { fp } else { f });
        }
        // The trellis types without QJL signs: a GEMM that decodes each row once per column
        // block (bit-identical to the dot products).
        for (t, gemm) in [
            (GgmlType::TQT4_5, a5_tqt4_5_gemm as crate::dispatch::GemmFn),
            (GgmlType::TQT3_375, a5_tqt3_375_gemm),
            (GgmlType::TQT2_5, a5_tqt2_5_gemm),
        ] {
            k.rows[t.index()] = Some(crate::dispatch::RowKernels {
                act: crate::dispatch::ActLayout::Natural,
                gemv: k.dot[t.index()].expect("set above"),
                gemm,
                path: if intel {
                    "tq: dot GEMV (prefetch 4 KiB); GEMM n >= 16: tiled (x86::tile), else rows decoded once to int8"
                } else {
                    "tq: dot GEMV; GEMM n >= 16: tiled (x86::tile), else rows decoded once to int8"
                },
            });
        }
    }
    if is_x86_feature_detected!("avx512bf16") {
        k.bf16_dot = bf_dot;
        k.bf16_dot2 = Some(bf_dot2);
        k.bf16_native = true;
    }
    k.quantize[GgmlType::Q8_K.index()] = Some(q5_q8_k);
    k.tune = Some(tune);
    if tune == Tune::Intel {
        // The same two-row float kernels with software prefetch (bit-identical results).
        for (t, f) in [
            (GgmlType::F32, i5_f32x2 as crate::dispatch::Dot2Fn),
            (GgmlType::F16, i5_f16x2),
            (GgmlType::BF16, i5_bf16x2),
        ] {
            k.dot2[t.index()] = Some(f);
        }
        if k.bf16_native {
            k.bf16_dot2 = Some(bf_dot2_pf);
        }
        use crate::dispatch::{ActLayout, RowKernels};
        for (t, act, gemv, gemm, dot, path) in [
            (
                GgmlType::Q4_K,
                ActLayout::Q8KV,
                intel::q4_k_gemv as crate::dispatch::Row1Fn,
                intel::q4_k_gemm as crate::dispatch::GemmFn,
                intel::q4_k_dot as crate::dispatch::DotFn,
                "q4_k: gfni nibbles, vpdpbusd+vpackssdw+vpdpwssd, f32 mins",
            ),
            (
                GgmlType::Q6_K,
                ActLayout::Natural,
                intel::q6_k_gemv,
                intel::q6_k_gemm,
                intel::q6_k_gemv,
                "q6_k: gfni bits, vpdpbusd+vpackssdw+vpdpwssd",
            ),
            (
                GgmlType::Q2_K,
                ActLayout::Natural,
                intel::q2_k_gemv,
                intel::q2_k_gemm,
                intel::q2_k_gemv,
                "q2_k: gfni 2-bit fields, vpdpbusd+vpackssdw+vpdpwssd",
            ),
            (
                GgmlType::Q3_K,
                ActLayout::Q8K3,
                intel::q3_k_gemv,
                intel::q3_k_gemm,
                intel::q3_k_dot,
                "q3_k: ternlog+gfni 3-bit values, -4 in the activation, vpdpbusd+vpackssdw+vpdpwssd",
            ),
            (
                GgmlType::Q5_K,
                ActLayout::Q8KV,
                intel::q5_k_gemv,
                intel::q5_k_gemm,
                intel::q5_k_dot,
                "q5_k: gfni nibbles and fifth bits, vpdpbusd+vpackssdw+vpdpwssd, f32 mins",
            ),
            (
                GgmlType::Q4_0,
                ActLayout::Q8Lanes(8),
                intel::q4_0_gemv,
                intel::q4_0_gemm,
                intel::q4_0_dot,
                "q4_0: gfni nibbles, vpdpbusd from -8·Σa in the activation",
            ),
            (
                GgmlType::Q4_1,
                ActLayout::Q8Lanes(0),
                intel::q4_1_gemv,
                intel::q4_1_gemm,
                intel::q4_1_dot,
                "q4_1: gfni nibbles, vpdpbusd, m·s in f32",
            ),
            (
                GgmlType::Q5_0,
                ActLayout::Q8Lanes(16),
                intel::q5_0_gemv,
                intel::q5_0_gemm,
                intel::q5_0_dot,
                "q5_0: gfni nibbles, kmovq+masked vpaddb fifth bits, vpdpbusd from -16·Σa in the activation",
            ),
            (
                GgmlType::Q5_1,
                ActLayout::Q8Lanes(0),
                intel::q5_1_gemv,
                intel::q5_1_gemm,
                intel::q5_1_dot,
                "q5_1: gfni nibbles, kmovq+masked vpaddb fifth bits, vpdpbusd, m·s in f32",
            ),
            (
                GgmlType::Q8_0,
                ActLayout::Q8_0Biased,
                intel::q8_0_gemv,
                intel::q8_0_gemm,
                intel::q8_0_dot,
                "q8_0: biased unsigned activations, vpdpbusd",
            ),
        ] {
            k.rows[t.index()] = Some(RowKernels {
                act,
                gemv,
                gemm,
                path,
            });
            k.dot[t.index()] = Some(dot);
        }
    }
    k
}

/// Whether the CPU has what the [`Tune::Intel`] table needs beyond [`has_avx512`].
pub(crate) fn has_intel_extras() -> bool {
    has_avx512() && is_x86_feature_detected!("gfni") && is_x86_feature_detected!("avx512vbmi")
}

/// Whether the CPU has what [`avx2_table`] needs.
pub(crate) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// Whether the CPU has what [`avx512_table`] needs.
pub(crate) fn has_avx512() -> bool {
    has_avx2()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
        // Every AVX-512 CPU has it; the TQ encoder's state walks use it.
        && is_x86_feature_detected!("bmi2")
}
