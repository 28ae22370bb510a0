//! Register-tiled GEMM for quantized weights on AVX-512 VNNI ("lanes = rows"), used by
//! [`crate::Kernels::gemm`] from [`crate::gemv::GEMM_TILE_MIN_N`] columns on both AVX-512 tables,
//! and on AVX2 for the quantized types ([`gemm_avx2`], [`fmt_avx2`], and [`fmt_tq_avx2`] for
//! the TurboQuant TQT* types, whose AVX2 unpackers in `x86::tq_avx2` write the AVX-512
//! unpackers' tile bytes: these layouts, loops and activations with the 256-bit micro-kernels
//! of `x86::tile_avx2`, whose results are this module's, see there).
//!
//! Per thread (a contiguous range of weight rows) the loops are: column block (the K chunk of
//! its activations stays in L2) → K chunk → tile of [`TR`] = 16 weight rows → **repack**
//! that (16 rows × chunk) into an L1 buffer → column tiles of [`TC`] columns → micro-kernel
//! (see [`gemm`]). The repacked weights are u8 quants laid out
//! `[k/4][16 rows][4 bytes]` (one 64-byte load = 16 rows × 4 consecutive k) plus per (group,
//! row) f32 scales; the micro-kernel multiplies such a register with a broadcast dword of 4
//! activation quants of one column (`vpdpbusd`), so the 16 i32 lanes are 16 rows of one
//! column and every (group, row) scale is applied once per column, not once per k lane.
//! Results per column are 16 contiguous f32 (no horizontal reduction).
//!
//! Numerics per (row, column): the activation is quantized exactly as for the GEMV (Q8_K for
//! Q4_K / Q6_K, Q8_0 for Q8_0), every group's integer sum is exact (bias and min terms folded
//! in integers), and the float steps are a fixed sequence per unit (one `vfmadd` per group,
//! one for the min term, one for the activation scale), in k order. A column's result depends
//! only on its activation row and the weights: not on the thread count, the number of
//! columns, the blocking or the other columns of the batch. It is **not** bit-identical to
//! the GEMV (whose lanes are k positions), only within the scalar bound.
//!
//! With Intel AMX (`x86::amx`, `AmxMode`), the same loops and repack feed tile instructions
//! instead of the micro-kernels below for BF16 × BF16 and the int8 formats; see that module for
//! its numerics (int8: bit-identical to this one).
//!
//! Every function is `unsafe`: the CPU must have AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C
//! (checked by the caller), except the unpackers, activation preparers, [`gemm_avx2`] and its
//! transpose, which need AVX2, FMA and F16C only; slices hold whole rows.

#![allow(clippy::needless_range_loop)] // register arrays indexed in step with columns

use super::amx::{self, Amx, Tiles};
use crate::GgmlType;
use core::arch::x86_64::*;
use core::ptr::read_unaligned as rd;

/// Weight rows per tile (the 16 lanes of a register).
pub const TR: usize = 16;
/// Columns per micro-kernel call.
pub const TC: usize = 12;

/// Which micro-kernel family a format has (the AMX kernels of `x86::amx` dispatch on it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// F32 / F16 / BF16 weights with f32 activations (no AMX kernel).
    Float,
    /// BF16 weights × BF16 activations, repacked `[k/2][16 rows][2 bf16]`.
    Bf16,
    /// Q4_K (u8 quants 0..15, mins).
    Q4K,
    /// Q6_K (u8 quants 0..63, bias 32).
    Q6K,
    /// Q2_K (u8 quants 0..3, 16 groups of 16 with scales and mins).
    Q2K,
    /// Q4_1 / Q5_1 (u8 quants, a min per block, Q8_1 activations).
    Q41,
    /// Q8_0 (u8 quants biased by 128).
    Q80,
    /// TurboQuant trellis types (u8 codes biased by 128).
    Tq,
}

/// How a weight format is repacked and multiplied.
#[derive(Clone, Copy)]
pub(crate) struct Fmt {
    /// Micro-kernel family.
    pub(super) kind: Kind,
    /// k elements per unit (one Q4_K / Q6_K superblock, one Q8_0 block).
    pub(super) unit: usize,
    /// Repacked bytes per unit of one row (u8 quants: `unit`; f32: `4·unit`).
    qb: usize,
    /// Default K chunk in units (the repacked tile of 16 rows stays in L1).
    kc: usize,
    /// Weight bytes per unit of one row.
    wb: usize,
    /// Prepared activation bytes per unit.
    pub(super) ab: usize,
    /// Scale bytes per unit of a tile (after the quants of the chunk).
    pub(super) sb: usize,
    /// Natural activation bytes per unit (Q8_K: 292, Q8_0: 34).
    nab: usize,
    /// Unpacks unit `u` of a row into `q` (`unit` u8 quants) and row `r`'s scales in `s`.
    unpack: unsafe fn(x: *const u8, q: *mut u8, s: *mut u8, r: usize),
    /// One natural activation unit to the prepared layout.
    act: fn(src: &[u8], dst: &mut [u8]),
    kern: unsafe fn(*const u8, *const u8, usize, [*const u8; TC], *mut f32),
    kern1: unsafe fn(*const u8, *const u8, usize, [*const u8; 1], *mut f32),
}

/// The tiled format of `ty`, if there is one.
pub(crate) fn fmt(ty: GgmlType) -> Option<&'static Fmt> {
    match ty {
        GgmlType::Q4_K => Some(&Q4K),
        GgmlType::Q5_K => Some(&Q5K),
        GgmlType::Q6_K => Some(&Q6K),
        GgmlType::Q3_K => Some(&Q3K),
        GgmlType::Q2_K => Some(&Q2K),
        GgmlType::Q8_0 => Some(&Q80),
        GgmlType::Q4_0 => Some(&Q40),
        GgmlType::Q5_0 => Some(&Q50),
        GgmlType::Q4_1 => Some(&Q41),
        GgmlType::Q5_1 => Some(&Q51),
        GgmlType::F32 => Some(&F32),
        GgmlType::F16 => Some(&F16),
        GgmlType::BF16 => Some(&BF16),
        _ => None,
    }
}

/// The tiled format of `ty` on AVX2 (no AVX-512): the same layouts as [`fmt`]'s with the
/// micro-kernels of `x86::tile_avx2` (the quantized types, and F32 / F16 / BF16 with f32
/// activations; TurboQuant is [`fmt_tq_avx2`]).
pub(crate) fn fmt_avx2(ty: GgmlType) -> Option<&'static Fmt> {
    match ty {
        GgmlType::Q4_K => Some(&A2_Q4K),
        GgmlType::Q5_K => Some(&A2_Q5K),
        GgmlType::Q6_K => Some(&A2_Q6K),
        GgmlType::Q3_K => Some(&A2_Q3K),
        GgmlType::Q2_K => Some(&A2_Q2K),
        GgmlType::Q8_0 => Some(&A2_Q80),
        GgmlType::Q4_0 => Some(&A2_Q40),
        GgmlType::Q5_0 => Some(&A2_Q50),
        GgmlType::Q4_1 => Some(&A2_Q41),
        GgmlType::Q5_1 => Some(&A2_Q51),
        GgmlType::F32 => Some(&A2_F32),
        GgmlType::F16 => Some(&A2_F16),
        GgmlType::BF16 => Some(&A2_BF16),
        _ => None,
    }
}

/// The tiled format of a TurboQuant trellis type without QJL signs (rows of whole 256-blocks;
/// the caller checks the block size and that the CPU has the TQ kernels' features).
pub(crate) fn fmt_tq(ty: GgmlType) -> Option<&'static Fmt> {
    match ty {
        GgmlType::TQT4_5 => Some(&TQT4_5),
        GgmlType::TQT3_375 => Some(&TQT3_375),
        GgmlType::TQT2_5 => Some(&TQT2_5),
        _ => None,
    }
}

/// The tiled format of a TurboQuant trellis type without QJL signs on AVX2 (no AVX-512):
/// [`fmt_tq`]'s layouts, tile bytes and results, with the AVX2 unpackers of `x86::tq_avx2`
/// and the micro-kernel of `x86::tile_avx2`; `None` without BMI2 (the unpackers' `pdep`).
/// The caller checks the block size.
pub(crate) fn fmt_tq_avx2(ty: GgmlType) -> Option<&'static Fmt> {
    if !std::arch::is_x86_feature_detected!("bmi2") {
        return None;
    }
    match ty {
        GgmlType::TQT4_5 => Some(&A2_TQT4_5),
        GgmlType::TQT3_375 => Some(&A2_TQT3_375),
        GgmlType::TQT2_5 => Some(&A2_TQT2_5),
        _ => None,
    }
}

/// Whether `f` multiplies f32 activations as they are (float weights).
pub(crate) fn is_float(f: &Fmt) -> bool {
    f.qb == 4 * f.unit
}

/// Whether `f` is BF16 weights × BF16 activations.
pub(crate) fn is_bf16_bf16(f: &Fmt) -> bool {
    core::ptr::eq(f, &BF16_BF16)
}

/// The k elements per unit of `f` (rows must be whole units to take the tiled path).
pub(crate) fn unit(f: &Fmt) -> usize {
    f.unit
}

/// Prepared activation bytes of one row of `cols` elements for `f`.
/// Rows are padded to whole 64-byte lines, so that with a 64-byte aligned base every row
/// starts a cache line (the AMX kernels load token rows as tiles).
pub(crate) fn act_row_bytes(f: &Fmt, cols: usize) -> usize {
    if is_float(f) {
        // f32 rows at an odd number of lines apart (no 4 KiB aliasing of the columns).
        crate::gemv::float_act_stride(cols)
    } else {
        (cols / f.unit * f.ab).next_multiple_of(64)
    }
}

/// Natural activation bytes of one row (what the activation quantizer writes).
pub(crate) fn natural_row_bytes(f: &Fmt, cols: usize) -> usize {
    cols / f.unit * f.nab
}

/// A TurboQuant activation (`TQA8` of a row of `n` rotated coordinates: `n` int8, stored
/// de-interleaved per 128 — even coordinates, then odd — then `n/32` f32 group scales) to the
/// tiled layout: per 256-block, 256 int8 in the unpacked weights' k order (per chunk of 128
/// and group `i` of 32 coordinates: the group's 16 even, then its 16 odd ones), the block's 8
/// group scales (f32), then `−128·Σa` of each group (i32).
pub(crate) fn prepare_tq(n: usize, src: &[u8], dst: &mut [u8]) {
    let (q, sc) = src.split_at(n);
    for (u, d) in dst.chunks_exact_mut(TQ_AB).take(n / 256).enumerate() {
        for t in 0..2 {
            let c = 2 * u + t;
            for i in 0..4 {
                let g = 4 * t + i;
                let o = 128 * t + 32 * i;
                d[o..o + 16].copy_from_slice(&q[128 * c + 16 * i..128 * c + 16 * i + 16]);
                d[o + 16..o + 32]
                    .copy_from_slice(&q[128 * c + 64 + 16 * i..128 * c + 64 + 16 * i + 16]);
                let sum: i32 = d[o..o + 32].iter().map(|&b| b as i8 as i32).sum();
                d[256 + 4 * g..260 + 4 * g]
                    .copy_from_slice(&sc[16 * c + 4 * i..16 * c + 4 * i + 4]);
                d[288 + 4 * g..292 + 4 * g].copy_from_slice(&(-128 * sum).to_le_bytes());
            }
        }
    }
}

/// Natural activation blocks (`src`) to the prepared layout (`dst`).
pub(crate) fn prepare(f: &Fmt, src: &[u8], dst: &mut [u8]) {
    for (s, d) in src.chunks_exact(f.nab).zip(dst.chunks_exact_mut(f.ab)) {
        (f.act)(s, d);
    }
}

/// The f16 at `p` as f32 (F16C; exact).
#[inline]
#[target_feature(enable = "f16c")]
fn f16(p: &[u8]) -> f32 {
    let v = u16::from_le_bytes([p[0], p[1]]) as i32;
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(v)))
}

fn i16_at(p: &[u8], g: usize) -> i32 {
    i16::from_le_bytes([p[2 * g], p[2 * g + 1]]) as i32
}

// ---------------------------------------------------------------------------------------
// Prepared activations. Q8_K-based (k-quants): quants (256 i8) at 0, d (f32) at 256, then
// extras: Q4_K 4 dwords of i16 pairs (Σ of groups 2p, 2p + 1 of 32 quants), Q6_K 16 i32
// (−32·Σ of each group of 16), Q2_K 8 dwords of i16 pairs (Σ of groups 2p, 2p + 1 of 16).
// Q8_0: quants (32 i8) at 0, d (f32) at 32, −128·Σq (i32) at 36.

fn act_q4k(s: &[u8], d: &mut [u8]) {
    d[..256].copy_from_slice(&s[4..260]);
    d[256..260].copy_from_slice(&s[..4]);
    let bs = &s[260..292];
    for p in 0..4 {
        let g0 = i16_at(bs, 4 * p) + i16_at(bs, 4 * p + 1);
        let g1 = i16_at(bs, 4 * p + 2) + i16_at(bs, 4 * p + 3);
        d[260 + 4 * p..262 + 4 * p].copy_from_slice(&(g0 as i16).to_le_bytes());
        d[262 + 4 * p..264 + 4 * p].copy_from_slice(&(g1 as i16).to_le_bytes());
    }
}

fn act_q6k(s: &[u8], d: &mut [u8]) {
    d[..256].copy_from_slice(&s[4..260]);
    d[256..260].copy_from_slice(&s[..4]);
    let bs = &s[260..292];
    for g in 0..16 {
        let v = -32 * i16_at(bs, g);
        d[260 + 4 * g..264 + 4 * g].copy_from_slice(&v.to_le_bytes());
    }
}

/// Q2_K: the Q8_K quants and scale, then its 16 group sums as they are (8 dwords of i16
/// pairs, groups 2p and 2p + 1).
fn act_q2k(s: &[u8], d: &mut [u8]) {
    d[..256].copy_from_slice(&s[4..260]);
    d[256..260].copy_from_slice(&s[..4]);
    d[260..292].copy_from_slice(&s[260..292]);
}

/// Q8_1 (Q4_1 / Q5_1): quants (32 i8) at 0, d (f32) at 32, s = d·Σq as stored (f16 → f32)
/// at 36.
fn act_q81(s: &[u8], d: &mut [u8]) {
    d[..32].copy_from_slice(&s[4..36]);
    let h = |i: usize| half::f16::from_le_bytes([s[i], s[i + 1]]).to_f32();
    d[32..36].copy_from_slice(&h(0).to_le_bytes());
    d[36..40].copy_from_slice(&h(2).to_le_bytes());
}

fn act_q80(s: &[u8], d: &mut [u8]) {
    d[..32].copy_from_slice(&s[2..34]);
    let da = half::f16::from_le_bytes([s[0], s[1]]).to_f32();
    d[32..36].copy_from_slice(&da.to_le_bytes());
    let sum: i32 = s[2..34].iter().map(|&b| b as i8 as i32).sum();
    d[36..40].copy_from_slice(&(-128 * sum).to_le_bytes());
}

// ---------------------------------------------------------------------------------------
// Weight unpacking: unit of one row → `unit` u8 quants and the row's lane of the scales.

/// Q4_K scale / min `j` of the 12 packed bytes.
fn q4k_scale_min(s: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Q4_K tile scales per unit: S [8 groups][16 rows] f32 (d·sc), M [4][16] i16 pairs (m of
/// groups 2p, 2p + 1), DMIN [16] f32.
const Q4K_SB: usize = 512 + 256 + 64;

/// Row `r`'s lane of a Q4_K / Q5_K unit's tile scales (the header they share: d, dmin and the
/// 12 packed scale/min bytes at `x`).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k45_scales(x: *const u8, s: *mut u8, r: usize) {
    let b = core::slice::from_raw_parts(x, 16);
    let (d, dmin) = (f16(&b[0..2]), f16(&b[2..4]));
    let mut m = [0u8; 8];
    for j in 0..8 {
        let (sc, mj) = q4k_scale_min(&b[4..16], j);
        m[j] = mj;
        s.add(4 * (16 * j + r))
            .cast::<f32>()
            .write_unaligned(d * sc as f32);
    }
    for p in 0..4 {
        let v = (m[2 * p] as u32) | (m[2 * p + 1] as u32) << 16;
        s.add(512 + 4 * (16 * p + r))
            .cast::<u32>()
            .write_unaligned(v);
    }
    s.add(768 + 4 * r).cast::<f32>().write_unaligned(dmin);
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_q4k(x: *const u8, q: *mut u8, s: *mut u8, r: usize) {
    k45_scales(x, s, r);
    let m4 = _mm256_set1_epi8(0x0f);
    for j in 0..4 {
        let v = _mm256_loadu_si256(x.add(16 + 32 * j).cast());
        _mm256_storeu_si256(q.add(64 * j).cast(), _mm256_and_si256(v, m4));
        _mm256_storeu_si256(
            q.add(64 * j + 32).cast(),
            _mm256_and_si256(_mm256_srli_epi16::<4>(v), m4),
        );
    }
}

/// Q5_K → Q4_K's tile (same scales and mins, [`unpack_q4k`]'s layout): the quants 0..31 (the
/// nibble plus the fifth bit of `qh`) as they are; Q4_K's micro-kernels and AMX path
/// (`vpdpbusd` / `tdpbsud` of u8 quants) do not assume 4 bits.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_q5k(x: *const u8, q: *mut u8, s: *mut u8, r: usize) {
    k45_scales(x, s, r);
    let (m4, sixteen) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi8(16));
    let qh = _mm256_loadu_si256(x.add(16).cast());
    // Quant 64j + l (l < 32) has its fifth bit in bit 2j of qh[l], quant 64j + 32 + l in 2j + 1.
    let fifth = |v: __m256i, bit: u32| add_where(v, qh, bit, sixteen);
    for j in 0..4 {
        let v = _mm256_loadu_si256(x.add(48 + 32 * j).cast());
        let lo = fifth(_mm256_and_si256(v, m4), 2 * j as u32);
        let hi = fifth(
            _mm256_and_si256(_mm256_srli_epi16::<4>(v), m4),
            2 * j as u32 + 1,
        );
        _mm256_storeu_si256(q.add(64 * j).cast(), lo);
        _mm256_storeu_si256(q.add(64 * j + 32).cast(), hi);
    }
}

/// Q2_K tile scales per unit: S [16 groups][16 rows] f32 (d·sc), M [8][16] i16 pairs (m of
/// groups 2p, 2p + 1), DMIN [16] f32.
const Q2K_SB: usize = 1024 + 512 + 64;

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_q2k(x: *const u8, q: *mut u8, s: *mut u8, r: usize) {
    let b = core::slice::from_raw_parts(x, 84);
    let (d, dmin) = (f16(&b[80..82]), f16(&b[82..84]));
    for g in 0..16 {
        s.add(4 * (16 * g + r))
            .cast::<f32>()
            .write_unaligned(d * (b[g] & 0x0f) as f32);
    }
    for p in 0..8 {
        let v = (b[2 * p] >> 4) as u32 | ((b[2 * p + 1] >> 4) as u32) << 16;
        s.add(1024 + 4 * (16 * p + r))
            .cast::<u32>()
            .write_unaligned(v);
    }
    s.add(1536 + 4 * r).cast::<f32>().write_unaligned(dmin);
    let m3 = _mm256_set1_epi8(3);
    for h in 0..2 {
        let qs = _mm256_loadu_si256(x.add(16 + 32 * h).cast());
        for j in 0..4 {
            // Quant 128h + 32j + l: bits 2j of qs[32h + l].
            let v = _mm256_and_si256(_mm256_srl_epi16(qs, _mm_cvtsi32_si128(2 * j as i32)), m3);
            _mm256_storeu_si256(q.add(128 * h + 32 * j).cast(), v);
        }
    }
}

/// Q6_K tile scales per unit: S [16 groups][16 rows] f32 (d·sc).
const Q6K_SB: usize = 1024;

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_q6k(x: *const u8, q: *mut u8, s: *mut u8, r: usize) {
    let b = core::slice::from_raw_parts(x, 210);
    let d = f16(&b[208..210]);
    for g in 0..16 {
        let sc = b[192 + g] as i8 as f32;
        s.add(4 * (16 * g + r))
            .cast::<f32>()
            .write_unaligned(d * sc);
    }
    let (m4, m30) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi8(0x30));
    for h in 0..2 {
        let ql0 = _mm256_loadu_si256(x.add(64 * h).cast());
        let ql1 = _mm256_loadu_si256(x.add(64 * h + 32).cast());
        let qh = _mm256_loadu_si256(x.add(128 + 32 * h).cast());
        let o = q.add(128 * h);
        let hi = |v: __m256i| _mm256_and_si256(v, m30);
        let lo = |v: __m256i| _mm256_and_si256(v, m4);
        let put = |k: usize, v: __m256i| _mm256_storeu_si256(o.add(k).cast(), v);
        put(0, _mm256_or_si256(lo(ql0), hi(_mm256_slli_epi16::<4>(qh))));
        put(32, _mm256_or_si256(lo(ql1), hi(_mm256_slli_epi16::<2>(qh))));
        put(64, _mm256_or_si256(lo(_mm256_srli_epi16::<4>(ql0)), hi(qh)));
        put(
            96,
            _mm256_or_si256(
                lo(_mm256_srli_epi16::<4>(ql1)),
                hi(_mm256_srli_epi16::<2>(qh)),
            ),
        );
    }
}

/// Q8_0 tile scales per unit: D [16 rows] f32.
const Q80_SB: usize = 64;

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_q80(x: *const u8, q: *mut u8, s: *mut u8, r: usize) {
    let b = core::slice::from_raw_parts(x, 34);
    s.add(4 * r).cast::<f32>().write_unaligned(f16(b));
    let v = _mm256_loadu_si256(x.add(2).cast());
    _mm256_storeu_si256(q.cast(), _mm256_xor_si256(v, _mm256_set1_epi8(-128)));
}

/// The 32 quants of a legacy block (Q4_0 … Q5_1) from its 16 nibble bytes at `p`: quant `i`
/// is the low nibble of byte `i`, quant `16 + i` the high one, plus 16 where bit `i` of `qh`
/// is set (the Q5 types' fifth bits; 0 for the Q4 types).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn legacy_quants(p: *const u8, qh: u32) -> __m256i {
    let v = _mm_loadu_si128(p.cast());
    let m = _mm_set1_epi8(0x0f);
    let lo = _mm_and_si128(v, m);
    let hi = _mm_and_si128(_mm_srli_epi16::<4>(v), m);
    let both = _mm256_set_m128i(hi, lo);
    // Byte i of `bits` is byte i / 8 of `qh`; it is tested against bit i % 8.
    let idx = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bits = _mm256_shuffle_epi8(_mm256_set1_epi32(qh as i32), idx);
    let m = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(bits, m), m);
    _mm256_add_epi8(both, _mm256_and_si256(set, _mm256_set1_epi8(16)))
}

/// `v + add` in the bytes where bit `bit` of `bits`' byte is set (AVX2; the fifth bits of
/// Q5_K, the high bits of Q3_K).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn add_where(v: __m256i, bits: __m256i, bit: u32, add: __m256i) -> __m256i {
    let m = _mm256_set1_epi8((1u32 << bit) as u8 as i8);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(bits, m), m);
    _mm256_add_epi8(v, _mm256_and_si256(set, add))
}

/// Q4_0 → the Q8_0 tile layout: quant `q` (0..15, weight `d·(q − 8)`) as the biased byte
/// `q − 8 + 128`, so Q8_0's micro-kernels (bias term `−128·Σa`) and AMX (`q ^ 0x80`) take it
/// as it is.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_q40(x: *const u8, q: *mut u8, s: *mut u8, r: usize) {
    let b = core::slice::from_raw_parts(x, 18);
    s.add(4 * r).cast::<f32>().write_unaligned(f16(b));
    let v = _mm256_add_epi8(legacy_quants(x.add(2), 0), _mm256_set1_epi8(120));
    _mm256_storeu_si256(q.cast(), v);
}

/// Q5_0 → the Q8_0 tile layout: quant `q` (0..31, weight `d·(q − 16)`) as `q − 16 + 128`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_q50(x: *const u8, q: *mut u8, s: *mut u8, r: usize) {
    let b = core::slice::from_raw_parts(x, 22);
    s.add(4 * r).cast::<f32>().write_unaligned(f16(b));
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let v = _mm256_add_epi8(legacy_quants(x.add(6), qh), _mm256_set1_epi8(112));
    _mm256_storeu_si256(q.cast(), v);
}

/// Q3_K → Q6_K's tile (16 groups of 16, scale `d·sc` per group, bias 32): the weight
/// `low − 4·(1 − high)` (−4..3) stored as `+ 32`, so Q6_K's micro-kernels (bias term
/// `−32·Σa` per group) and AMX path (`q − 32`) take it as it is.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_q3k(x: *const u8, q: *mut u8, s: *mut u8, r: usize) {
    let b = core::slice::from_raw_parts(x, 110);
    let d = f16(&b[108..110]);
    let sc = crate::formats::kquant::q3k_scales(b[96..108].try_into().unwrap());
    for (g, &v) in sc.iter().enumerate() {
        s.add(4 * (16 * g + r))
            .cast::<f32>()
            .write_unaligned(d * v as f32);
    }
    let (m3, base) = (_mm256_set1_epi8(3), _mm256_set1_epi8(28));
    let hm = _mm256_loadu_si256(x.cast());
    for h in 0..2 {
        let qs = _mm256_loadu_si256(x.add(32 + 32 * h).cast());
        for j in 0..4 {
            // Quant 128h + 32j + l: bits 2j of qs[32h + l], its high bit bit 4h + j of hmask[l].
            let low = _mm256_and_si256(_mm256_srl_epi16(qs, _mm_cvtsi32_si128(2 * j as i32)), m3);
            let v = _mm256_add_epi8(low, base);
            let v = add_where(v, hm, (4 * h + j) as u32, _mm256_set1_epi8(4));
            _mm256_storeu_si256(q.add(128 * h + 32 * j).cast(), v);
        }
    }
}

/// Q4_1 / Q5_1 tile scales per unit: D [16 rows] f32, M [16 rows] f32.
const Q41_SB: usize = 128;

/// Q4_1: quants 0..15 as they are (weight `d·q + m`), `d` and `m` per row.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_q41(x: *const u8, q: *mut u8, s: *mut u8, r: usize) {
    let b = core::slice::from_raw_parts(x, 20);
    s.add(4 * r).cast::<f32>().write_unaligned(f16(&b[0..2]));
    s.add(64 + 4 * r)
        .cast::<f32>()
        .write_unaligned(f16(&b[2..4]));
    _mm256_storeu_si256(q.cast(), legacy_quants(x.add(4), 0));
}

/// Q5_1: quants 0..31 (the nibble plus bit i of `qh` for quant i), `d` and `m` per row.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_q51(x: *const u8, q: *mut u8, s: *mut u8, r: usize) {
    let b = core::slice::from_raw_parts(x, 24);
    s.add(4 * r).cast::<f32>().write_unaligned(f16(&b[0..2]));
    s.add(64 + 4 * r)
        .cast::<f32>()
        .write_unaligned(f16(&b[2..4]));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    _mm256_storeu_si256(q.cast(), legacy_quants(x.add(8), qh));
}

// Float weights: 16 k per unit, repacked as f32 [k][16 rows]; activations are the f32 row.

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn unpack_f32(x: *const u8, q: *mut u8, _s: *mut u8, _r: usize) {
    _mm512_storeu_si512(q.cast(), _mm512_loadu_si512(x.cast()));
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn unpack_f16(x: *const u8, q: *mut u8, _s: *mut u8, _r: usize) {
    let v = _mm512_cvtph_ps(_mm256_loadu_si256(x.cast()));
    _mm512_storeu_ps(q.cast(), v);
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn unpack_bf16(x: *const u8, q: *mut u8, _s: *mut u8, _r: usize) {
    let v = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(x.cast())));
    _mm512_storeu_si512(q.cast(), v);
}

/// [`unpack_f32`] on AVX2.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_f32_avx2(x: *const u8, q: *mut u8, _s: *mut u8, _r: usize) {
    for h in 0..2 {
        _mm256_storeu_si256(
            q.add(32 * h).cast(),
            _mm256_loadu_si256(x.add(32 * h).cast()),
        );
    }
}

/// [`unpack_f16`] on AVX2 (F16C).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_f16_avx2(x: *const u8, q: *mut u8, _s: *mut u8, _r: usize) {
    for h in 0..2 {
        let v = _mm256_cvtph_ps(_mm_loadu_si128(x.add(16 * h).cast()));
        _mm256_storeu_ps(q.add(32 * h).cast(), v);
    }
}

/// [`unpack_bf16`] on AVX2.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_bf16_avx2(x: *const u8, q: *mut u8, _s: *mut u8, _r: usize) {
    for h in 0..2 {
        let v =
            _mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(x.add(16 * h).cast())));
        _mm256_storeu_si256(q.add(32 * h).cast(), v);
    }
}

fn act_none(_: &[u8], _: &mut [u8]) {
    unreachable!("float and TurboQuant weights prepare their activations elsewhere")
}

/// [`transpose16`] on AVX2: four 8 × 8 dword transposes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn transpose16_avx2(src: *const u8, stride: usize, dst: *mut u8) {
    for i0 in [0, 8] {
        for m0 in [0, 8] {
            let r: [__m256i; 8] = core::array::from_fn(|i| {
                _mm256_loadu_si256(src.add((i0 + i) * stride + 4 * m0).cast())
            });
            let t: [__m256i; 8] = core::array::from_fn(|i| {
                let (a, b) = (r[i & !1], r[i | 1]);
                if i & 1 == 0 {
                    _mm256_unpacklo_epi32(a, b)
                } else {
                    _mm256_unpackhi_epi32(a, b)
                }
            });
            // s[4q + m] (m < 4): rows 4q..4q+4 of dwords m (low lane) and m + 4 (high lane).
            let s: [__m256i; 8] = core::array::from_fn(|i| {
                let (q, m) = (i / 4, i % 4);
                let (a, b) = (t[4 * q + m / 2], t[4 * q + 2 + m / 2]);
                if m & 1 == 0 {
                    _mm256_unpacklo_epi64(a, b)
                } else {
                    _mm256_unpackhi_epi64(a, b)
                }
            });
            for m in 0..4 {
                let lo = _mm256_permute2x128_si256::<0x20>(s[m], s[4 + m]);
                let hi = _mm256_permute2x128_si256::<0x31>(s[m], s[4 + m]);
                _mm256_storeu_si256(dst.add(64 * (m0 + m) + 4 * i0).cast(), lo);
                _mm256_storeu_si256(dst.add(64 * (m0 + m + 4) + 4 * i0).cast(), hi);
            }
        }
    }
}

macro_rules! tile_fn {
    ($($item:item)*) => {$(
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        $item
    )*};
}

tile_fn! {
    /// 16 × 16 dwords: `src` rows (stride `stride` bytes) to `dst` columns (64 bytes each).
    #[inline]
    unsafe fn transpose16(src: *const u8, stride: usize, dst: *mut u8) {
        let r: [__m512i; 16] = core::array::from_fn(|i| _mm512_loadu_si512(src.add(i * stride).cast()));
        let mut t = [_mm512_setzero_si512(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
        }
        // s[4g + m]: rows 4g..4g+4 of column 4L + m in 128-bit lane L.
        let mut s = [_mm512_setzero_si512(); 16];
        for g in 0..4 {
            let (a, b, c, d) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
            s[4 * g] = _mm512_unpacklo_epi64(a, c);
            s[4 * g + 1] = _mm512_unpackhi_epi64(a, c);
            s[4 * g + 2] = _mm512_unpacklo_epi64(b, d);
            s[4 * g + 3] = _mm512_unpackhi_epi64(b, d);
        }
        for m in 0..4 {
            let (a, b, c, d) = (s[m], s[4 + m], s[8 + m], s[12 + m]);
            let p0 = _mm512_shuffle_i32x4::<0x44>(a, b);
            let p1 = _mm512_shuffle_i32x4::<0xEE>(a, b);
            let q0 = _mm512_shuffle_i32x4::<0x44>(c, d);
            let q1 = _mm512_shuffle_i32x4::<0xEE>(c, d);
            _mm512_storeu_si512(dst.add(64 * m).cast(), _mm512_shuffle_i32x4::<0x88>(p0, q0));
            _mm512_storeu_si512(dst.add(64 * (4 + m)).cast(), _mm512_shuffle_i32x4::<0xDD>(p0, q0));
            _mm512_storeu_si512(dst.add(64 * (8 + m)).cast(), _mm512_shuffle_i32x4::<0x88>(p1, q1));
            _mm512_storeu_si512(dst.add(64 * (12 + m)).cast(), _mm512_shuffle_i32x4::<0xDD>(p1, q1));
        }
    }

    /// The formats with a min per group (Q4_K: 8 groups of `GS` = 32; Q2_K: 16 of 16): per group
    /// `GS/4` `vpdpbusd` and one f32 step with its scale, then the mins as one exact `vpdpwssd`
    /// sum over the pairs of groups against the activation's group sums, times `dmin`, then ×
    /// the activation scale. Layouts from `GS`: scales `S [256/GS][16]` f32, mins
    /// `M [128/GS][16]` i16 pairs, `DMIN [16]` f32; activation quants, d, `128/GS` dwords of
    /// group-sum pairs.
    #[inline]
    unsafe fn kern_mins<const C: usize, const GS: usize>(w: *const u8, s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        let (ng, np) = (256 / GS, 128 / GS);
        let (sb, ab) = (64 * (ng + np + 1), 260 + 4 * np);
        for u in 0..nu {
            let wu = w.add(4096 * u);
            let su = s.add(sb * u);
            let au: [*const u8; C] = core::array::from_fn(|c| a[c].add(ab * u));
            let mut blk = [_mm512_setzero_ps(); C];
            for g in 0..ng {
                let mut is = [_mm512_setzero_si512(); C];
                for t in 0..GS / 4 {
                    let wv = _mm512_loadu_si512(wu.add(64 * (GS / 4 * g + t)).cast());
                    for c in 0..C {
                        let av = _mm512_set1_epi32(rd(au[c].add(GS * g + 4 * t).cast::<i32>()));
                        is[c] = _mm512_dpbusd_epi32(is[c], wv, av);
                    }
                }
                let sg = _mm512_loadu_ps(su.add(64 * g).cast());
                for c in 0..C {
                    blk[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[c]), sg, blk[c]);
                }
            }
            let mut mi = [_mm512_setzero_si512(); C];
            for p in 0..np {
                let mv = _mm512_loadu_si512(su.add(64 * (ng + p)).cast());
                for c in 0..C {
                    let av = _mm512_set1_epi32(rd(au[c].add(260 + 4 * p).cast::<i32>()));
                    mi[c] = _mm512_dpwssd_epi32(mi[c], mv, av);
                }
            }
            let dmin = _mm512_loadu_ps(su.add(64 * (ng + np)).cast());
            for c in 0..C {
                let b = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mi[c]), dmin, blk[c]);
                let p = acc.add(16 * c);
                _mm512_storeu_ps(p, _mm512_fmadd_ps(b, _mm512_set1_ps(rd(au[c].add(256).cast::<f32>())), _mm512_loadu_ps(p)));
            }
        }
    }

    /// Q4_K: [`kern_mins`] with 8 groups of 32.
    #[inline]
    unsafe fn kern_q4k<const C: usize>(w: *const u8, s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        kern_mins::<C, 32>(w, s, nu, a, acc)
    }

    /// Q6_K: 16 groups of 16, each starting from −32·Σa (exact), 4 `vpdpbusd`, one f32 step.
    #[inline]
    unsafe fn kern_q6k<const C: usize>(w: *const u8, s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        for u in 0..nu {
            let wu = w.add(4096 * u);
            let su = s.add(Q6K_SB * u);
            let au: [*const u8; C] = core::array::from_fn(|c| a[c].add(324 * u));
            let mut blk = [_mm512_setzero_ps(); C];
            for g in 0..16 {
                let mut is: [__m512i; C] =
                    core::array::from_fn(|c| _mm512_set1_epi32(rd(au[c].add(260 + 4 * g).cast::<i32>())));
                for t in 0..4 {
                    let wv = _mm512_loadu_si512(wu.add(64 * (4 * g + t)).cast());
                    for c in 0..C {
                        let av = _mm512_set1_epi32(rd(au[c].add(16 * g + 4 * t).cast::<i32>()));
                        is[c] = _mm512_dpbusd_epi32(is[c], wv, av);
                    }
                }
                let sg = _mm512_loadu_ps(su.add(64 * g).cast());
                for c in 0..C {
                    blk[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[c]), sg, blk[c]);
                }
            }
            for c in 0..C {
                let p = acc.add(16 * c);
                _mm512_storeu_ps(p, _mm512_fmadd_ps(blk[c], _mm512_set1_ps(rd(au[c].add(256).cast::<f32>())), _mm512_loadu_ps(p)));
            }
        }
    }

    /// Q2_K: [`kern_mins`] with 16 groups of 16.
    #[inline]
    unsafe fn kern_q2k<const C: usize>(w: *const u8, s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        kern_mins::<C, 16>(w, s, nu, a, acc)
    }

    /// TurboQuant trellis types: per group of 32 coordinates, −128·Σa (exact) + 8 `vpdpbusd`
    /// of the biased codes, one f32 step with the group's activation scale; per 256-block one
    /// f32 step with the rows' block multipliers `d`.
    #[inline]
    unsafe fn kern_tq<const C: usize>(w: *const u8, s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        for u in 0..nu {
            let wu = w.add(4096 * u);
            let au: [*const u8; C] = core::array::from_fn(|c| a[c].add(TQ_AB * u));
            let mut blk = [_mm512_setzero_ps(); C];
            for g in 0..8 {
                let mut is: [__m512i; C] =
                    core::array::from_fn(|c| _mm512_set1_epi32(rd(au[c].add(288 + 4 * g).cast::<i32>())));
                for t in 0..8 {
                    let wv = _mm512_loadu_si512(wu.add(64 * (8 * g + t)).cast());
                    for c in 0..C {
                        let av = _mm512_set1_epi32(rd(au[c].add(32 * g + 4 * t).cast::<i32>()));
                        is[c] = _mm512_dpbusd_epi32(is[c], wv, av);
                    }
                }
                for c in 0..C {
                    let sa = _mm512_set1_ps(rd(au[c].add(256 + 4 * g).cast::<f32>()));
                    blk[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[c]), sa, blk[c]);
                }
            }
            let d = _mm512_loadu_ps(s.add(TQ_SB * u).cast());
            for c in 0..C {
                let p = acc.add(16 * c);
                _mm512_storeu_ps(p, _mm512_fmadd_ps(blk[c], d, _mm512_loadu_ps(p)));
            }
        }
    }

    /// Q4_1 / Q5_1: per block 8 `vpdpbusd` of the quants, then `d_w·d_a` times the sum and
    /// the min term `m·s_a` (the scalar reference's two float terms).
    #[inline]
    unsafe fn kern_q41<const C: usize>(w: *const u8, s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        for u in 0..nu {
            let wu = w.add(512 * u);
            let au: [*const u8; C] = core::array::from_fn(|c| a[c].add(40 * u));
            let mut is = [_mm512_setzero_si512(); C];
            for t in 0..8 {
                let wv = _mm512_loadu_si512(wu.add(64 * t).cast());
                for c in 0..C {
                    let av = _mm512_set1_epi32(rd(au[c].add(4 * t).cast::<i32>()));
                    is[c] = _mm512_dpbusd_epi32(is[c], wv, av);
                }
            }
            let dw = _mm512_loadu_ps(s.add(Q41_SB * u).cast());
            let mw = _mm512_loadu_ps(s.add(Q41_SB * u + 64).cast());
            for c in 0..C {
                let d = _mm512_mul_ps(dw, _mm512_set1_ps(rd(au[c].add(32).cast::<f32>())));
                let p = acc.add(16 * c);
                let t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[c]), d, _mm512_loadu_ps(p));
                _mm512_storeu_ps(p, _mm512_fmadd_ps(mw, _mm512_set1_ps(rd(au[c].add(36).cast::<f32>())), t));
            }
        }
    }

    /// Q8_0: per block, −128·Σa (exact) + 8 `vpdpbusd` of the biased weights, then one f32
    /// step with d_w·d_a.
    #[inline]
    unsafe fn kern_q80<const C: usize>(w: *const u8, s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        for u in 0..nu {
            let wu = w.add(512 * u);
            let au: [*const u8; C] = core::array::from_fn(|c| a[c].add(40 * u));
            let mut is: [__m512i; C] =
                core::array::from_fn(|c| _mm512_set1_epi32(rd(au[c].add(36).cast::<i32>())));
            for t in 0..8 {
                let wv = _mm512_loadu_si512(wu.add(64 * t).cast());
                for c in 0..C {
                    let av = _mm512_set1_epi32(rd(au[c].add(4 * t).cast::<i32>()));
                    is[c] = _mm512_dpbusd_epi32(is[c], wv, av);
                }
            }
            let dw = _mm512_loadu_ps(s.add(Q80_SB * u).cast());
            for c in 0..C {
                let d = _mm512_mul_ps(dw, _mm512_set1_ps(rd(au[c].add(32).cast::<f32>())));
                let p = acc.add(16 * c);
                _mm512_storeu_ps(p, _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[c]), d, _mm512_loadu_ps(p)));
            }
        }
    }
}

tile_fn! {
    /// Float weights: per k, one 16-row f32 register times the broadcast activation of each
    /// column (`vfmadd` with a `{1to16}` operand), in k order.
    #[inline]
    unsafe fn kern_f<const C: usize>(w: *const u8, _s: *const u8, nu: usize, a: [*const u8; C], acc: *mut f32) {
        let mut ac: [__m512; C] = core::array::from_fn(|c| _mm512_loadu_ps(acc.add(16 * c)));
        for u in 0..nu {
            let wu = w.add(1024 * u);
            for k in 0..16 {
                let wv = _mm512_loadu_ps(wu.add(64 * k).cast());
                for c in 0..C {
                    let x = _mm512_set1_ps(rd(a[c].add(64 * u + 4 * k).cast::<f32>()));
                    ac[c] = _mm512_fmadd_ps(wv, x, ac[c]);
                }
            }
        }
        for c in 0..C {
            _mm512_storeu_ps(acc.add(16 * c), ac[c]);
        }
    }
}

/// BF16 weights × BF16 activations: per pair of k, one 16-row register of BF16 pairs times
/// the broadcast BF16 pair of each column (`vdpbf16ps`), in k order.
#[inline]
#[target_feature(enable = "avx512bf16,avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn kern_bf16<const C: usize>(
    w: *const u8,
    _s: *const u8,
    nu: usize,
    a: [*const u8; C],
    acc: *mut f32,
) {
    let bh = |v: __m512i| core::mem::transmute::<__m512i, __m512bh>(v);
    let mut ac: [__m512; C] = core::array::from_fn(|c| _mm512_loadu_ps(acc.add(16 * c)));
    for u in 0..nu {
        let wu = w.add(1024 * u);
        for j in 0..16 {
            let wv = bh(_mm512_loadu_si512(wu.add(64 * j).cast()));
            for c in 0..C {
                let x = bh(_mm512_set1_epi32(rd(a[c]
                    .add(64 * u + 4 * j)
                    .cast::<i32>())));
                ac[c] = _mm512_dpbf16_ps(ac[c], wv, x);
            }
        }
    }
    for c in 0..C {
        _mm512_storeu_ps(acc.add(16 * c), ac[c]);
    }
}

macro_rules! kern_entries {
    ($name:ident, $name1:ident, $k:ident) => {
        unsafe fn $name(w: *const u8, s: *const u8, nu: usize, a: [*const u8; TC], acc: *mut f32) {
            $k::<TC>(w, s, nu, a, acc)
        }
        unsafe fn $name1(w: *const u8, s: *const u8, nu: usize, a: [*const u8; 1], acc: *mut f32) {
            $k::<1>(w, s, nu, a, acc)
        }
    };
}
kern_entries!(q4k8, q4k1, kern_q4k);
kern_entries!(q6k8, q6k1, kern_q6k);
kern_entries!(q2k8, q2k1, kern_q2k);
kern_entries!(q808, q801, kern_q80);
kern_entries!(q418, q411, kern_q41);
kern_entries!(tq8, tq1, kern_tq);
kern_entries!(f8, f1, kern_f);
kern_entries!(bb8, bb1, kern_bf16);

/// BF16 rows as they are (their bytes are the BF16 pairs the kernel reads).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn unpack_raw64(x: *const u8, q: *mut u8, _s: *mut u8, _r: usize) {
    _mm512_storeu_si512(q.cast(), _mm512_loadu_si512(x.cast()));
}

/// BF16 weights × BF16 activations (`FloatAct::Bf16`, AVX512_BF16 only): 32 k per unit,
/// repacked `[k/2][16 rows][2 bf16]`; the activation is the BF16-rounded row.
static BF16_BF16: Fmt = Fmt {
    kind: Kind::Bf16,
    unit: 32,
    qb: 64,
    kc: 16,
    wb: 64,
    ab: 64,
    sb: 0,
    nab: 64,
    unpack: unpack_raw64,
    act: act_none,
    kern: bb8,
    kern1: bb1,
};

/// BF16 weights × BF16-rounded activations with f32 FMA: the activations rounded to BF16
/// and widened back to f32 (exact), so every product is the BF16 × BF16 product, exact in
/// f32, as with `vdpbf16ps`; used on the Intel table, where `vdpbf16ps` measured slower than
/// the FMA kernel (docs/kernels.md).
static BF16_FMA: Fmt = Fmt {
    wb: 32,
    unpack: unpack_bf16,
    ..FLOAT
};

/// The BF16 × BF16-activation format: `vdpbf16ps` (`native`, the caller checks AVX512_BF16)
/// or f32 FMA on the rounded activations.
pub(crate) fn bf16_bf16(native: bool) -> &'static Fmt {
    if native {
        &BF16_BF16
    } else {
        &BF16_FMA
    }
}

/// Whether `f` takes BF16-rounded activations widened to f32.
pub(crate) fn is_bf16_rounded_f32(f: &Fmt) -> bool {
    core::ptr::eq(f, &BF16_FMA)
}

const FLOAT: Fmt = Fmt {
    kind: Kind::Float,
    unit: 16,
    qb: 64,
    kc: 32,
    wb: 64,
    ab: 64,
    sb: 0,
    nab: 64,
    unpack: unpack_f32,
    act: act_none,
    kern: f8,
    kern1: f1,
};
static F32: Fmt = FLOAT;
static F16: Fmt = Fmt {
    wb: 32,
    unpack: unpack_f16,
    ..FLOAT
};
static BF16: Fmt = Fmt {
    wb: 32,
    unpack: unpack_bf16,
    ..FLOAT
};

static Q4K: Fmt = Fmt {
    kind: Kind::Q4K,
    unit: 256,
    qb: 256,
    kc: 4,
    wb: 144,
    ab: 276,
    sb: Q4K_SB,
    nab: 292,
    unpack: unpack_q4k,
    act: act_q4k,
    kern: q4k8,
    kern1: q4k1,
};
static Q6K: Fmt = Fmt {
    kind: Kind::Q6K,
    unit: 256,
    qb: 256,
    kc: 4,
    wb: 210,
    ab: 324,
    sb: Q6K_SB,
    nab: 292,
    unpack: unpack_q6k,
    act: act_q6k,
    kern: q6k8,
    kern1: q6k1,
};
/// Q5_K on Q4_K's micro-kernels ([`unpack_q5k`]).
static Q5K: Fmt = Fmt {
    wb: 176,
    unpack: unpack_q5k,
    ..Q4K
};
/// Q3_K on Q6_K's micro-kernels ([`unpack_q3k`]).
static Q3K: Fmt = Fmt {
    wb: 110,
    unpack: unpack_q3k,
    ..Q6K
};
static Q2K: Fmt = Fmt {
    kind: Kind::Q2K,
    unit: 256,
    qb: 256,
    kc: 4,
    wb: 84,
    ab: 292,
    sb: Q2K_SB,
    nab: 292,
    unpack: unpack_q2k,
    act: act_q2k,
    kern: q2k8,
    kern1: q2k1,
};
static Q41: Fmt = Fmt {
    kind: Kind::Q41,
    unit: 32,
    qb: 32,
    kc: 32,
    wb: 20,
    ab: 40,
    sb: Q41_SB,
    nab: 36,
    unpack: unpack_q41,
    act: act_q81,
    kern: q418,
    kern1: q411,
};
static Q51: Fmt = Fmt {
    wb: 24,
    unpack: unpack_q51,
    ..Q41
};
static Q80: Fmt = Fmt {
    kind: Kind::Q80,
    unit: 32,
    qb: 32,
    kc: 32,
    wb: 34,
    ab: 40,
    sb: Q80_SB,
    nab: 34,
    unpack: unpack_q80,
    act: act_q80,
    kern: q808,
    kern1: q801,
};
/// Q4_0 on Q8_0's micro-kernels (same activation, scales and bias term; [`unpack_q40`]).
static Q40: Fmt = Fmt {
    wb: 18,
    unpack: unpack_q40,
    ..Q80
};
/// Q5_0 on Q8_0's micro-kernels ([`unpack_q50`]).
static Q50: Fmt = Fmt {
    wb: 22,
    unpack: unpack_q50,
    ..Q80
};

// The AVX2 formats: each AVX-512 format's layouts with `x86::tile_avx2`'s micro-kernels.
use super::tile_avx2 as a2;
static A2_Q4K: Fmt = Fmt {
    kern: a2::q4k_tc,
    kern1: a2::q4k_1,
    ..Q4K
};
static A2_Q5K: Fmt = Fmt {
    kern: a2::q5k_tc,
    kern1: a2::q5k_1,
    ..Q5K
};
static A2_Q6K: Fmt = Fmt {
    kern: a2::q6k_tc,
    kern1: a2::q6k_1,
    ..Q6K
};
static A2_Q3K: Fmt = Fmt {
    kern: a2::q6k_tc,
    kern1: a2::q6k_1,
    ..Q3K
};
static A2_Q2K: Fmt = Fmt {
    kern: a2::q2k_tc,
    kern1: a2::q2k_1,
    ..Q2K
};
static A2_F32: Fmt = Fmt {
    unpack: unpack_f32_avx2,
    kern: a2::f_tc,
    kern1: a2::f_1,
    ..FLOAT
};
static A2_F16: Fmt = Fmt {
    wb: 32,
    unpack: unpack_f16_avx2,
    ..A2_F32
};
static A2_BF16: Fmt = Fmt {
    wb: 32,
    unpack: unpack_bf16_avx2,
    ..A2_F32
};
static A2_Q80: Fmt = Fmt {
    kern: a2::q80_tc,
    kern1: a2::q80_1,
    ..Q80
};
static A2_Q40: Fmt = Fmt {
    kern: a2::q80_tc,
    kern1: a2::q80_1,
    ..Q40
};
static A2_Q50: Fmt = Fmt {
    kern: a2::q80_tc,
    kern1: a2::q80_1,
    ..Q50
};
static A2_Q41: Fmt = Fmt {
    kern: a2::q41_tc,
    kern1: a2::q41_1,
    ..Q41
};
static A2_Q51: Fmt = Fmt {
    kern: a2::q51_tc,
    kern1: a2::q51_1,
    ..Q51
};

/// TurboQuant prepared activation bytes per 256-block: 256 int8, 8 f32 scales, 8 i32 biases.
pub(super) const TQ_AB: usize = 320;
/// TurboQuant tile scales per unit: D [16 rows] f32 (the block multipliers).
pub(super) const TQ_SB: usize = 64;

/// TurboQuant trellis types (without QJL signs), 256-blocks: the codes decoded once per
/// (column block, K chunk) into the tile (`x86::tq_avx512`), activations from [`prepare_tq`].
const TQ: Fmt = Fmt {
    kind: Kind::Tq,
    unit: 256,
    qb: 256,
    kc: 4,
    wb: 144,
    ab: TQ_AB,
    sb: TQ_SB,
    nab: 0,
    unpack: super::tq_avx512::tile_tqt4_5,
    act: act_none,
    kern: tq8,
    kern1: tq1,
};
static TQT4_5: Fmt = TQ;
static TQT3_375: Fmt = Fmt {
    wb: 108,
    unpack: super::tq_avx512::tile_tqt3_375,
    ..TQ
};
static TQT2_5: Fmt = Fmt {
    wb: 80,
    unpack: super::tq_avx512::tile_tqt2_5,
    ..TQ
};

// The AVX2 TurboQuant formats: the AVX2 unpackers of `x86::tq_avx2` (the same tile bytes as
// `x86::tq_avx512`'s) and `x86::tile_avx2`'s micro-kernel.
static A2_TQT4_5: Fmt = Fmt {
    unpack: super::tq_avx2::tile_tqt4_5,
    kern: a2::tq_tc,
    kern1: a2::tq_1,
    ..TQT4_5
};
static A2_TQT3_375: Fmt = Fmt {
    unpack: super::tq_avx2::tile_tqt3_375,
    kern: a2::tq_tc,
    kern1: a2::tq_1,
    ..TQT3_375
};
static A2_TQT2_5: Fmt = Fmt {
    unpack: super::tq_avx2::tile_tqt2_5,
    kern: a2::tq_tc,
    kern1: a2::tq_1,
    ..TQT2_5
};

/// Whether `f` is a TurboQuant format (activations from [`prepare_tq`]).
pub(crate) fn is_tq(f: &Fmt) -> bool {
    f.nab == 0 && f.ab == TQ_AB
}

/// Env-tunable blocking: (k elements per chunk, activation bytes per column block, prefetch
/// of the next repack's weights). Results do not depend on them. `GQ_TILE_KC` (k elements,
/// rounded to whole units; default 1024 k for quantized types, 512 for floats, so the
/// repacked tile of 16 rows stays in L1), `GQ_TILE_CB_KIB` (the activation chunk of a column
/// block, default 768 KiB, so it stays in L2), `GQ_TILE_PREFETCH=0` turns the prefetch off
/// (A/B).
fn blocking() -> (Option<usize>, usize, bool) {
    static B: std::sync::OnceLock<(Option<usize>, usize, bool)> = std::sync::OnceLock::new();
    *B.get_or_init(|| {
        let get = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
        };
        (
            get("GQ_TILE_KC").map(|v| v.max(32)),
            get("GQ_TILE_CB_KIB").unwrap_or(768).max(1) << 10,
            get("GQ_TILE_PREFETCH") != Some(0),
        )
    })
}

/// Rows `w` (`rb` bytes each, `cols` elements) · prepared activations `acts` (`n` rows of
/// [`act_row_bytes`]): the product of row `r` and column `j` is written to `out.at(j, r)`.
///
/// Loops: column block (its K chunk of activations fits L2) → K chunk of `kc` units → tile
/// of 16 rows, repacked once per (block, chunk), the next repack's weights prefetched while
/// it runs → column tiles of [`TC`] (a last partial tile of 2 or more columns padded to
/// [`TC`], a last single column alone) → micro-kernel, adding into f32 accumulators per
/// (tile, column) that persist across K chunks in memory. Each column sees the same
/// operations in the same order whatever the blocking, so the results do not depend on it.
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C; `w` and `acts` hold whole rows
/// of these lengths; `out` is valid for writes at every (column, row) of the product.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm<T: Tiles>(
    f: &Fmt,
    w: &[u8],
    rb: usize,
    cols: usize,
    acts: &[u8],
    n: usize,
    tiles: Option<&mut T>,
    out: Out,
) {
    drive::<T, true>(f, w, rb, cols, acts, n, tiles, out)
}

/// [`gemm`] on AVX2 (the same loops, repack and prepared activations; the 256-bit transpose
/// and `f`'s AVX2 micro-kernels of `x86::tile_avx2`, no AMX).
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C (and BMI2 for [`fmt_tq_avx2`]'s formats); `f` is one
/// of [`fmt_avx2`]'s or [`fmt_tq_avx2`]'s formats; `w` and `acts` hold whole rows of these
/// lengths; `out` is valid for writes at every (column, row) of the product.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn gemm_avx2(
    f: &Fmt,
    w: &[u8],
    rb: usize,
    cols: usize,
    acts: &[u8],
    n: usize,
    out: Out,
) {
    drive::<amx::Hw, false>(f, w, rb, cols, acts, n, None, out)
}

/// A 64-byte aligned line of the repacked tile and the accumulators.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Where [`gemm`] / [`gemm_avx2`] write their products: the value of (column `j`, row `r`)
/// goes to `ptr + j·ld + r` (the caller's output rows, one per activation row).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Out {
    /// The element of (column 0, row 0).
    pub ptr: *mut f32,
    /// Elements from one column's outputs to the next's.
    pub ld: usize,
}

impl Out {
    /// The element of column `j`, row `r`.
    fn at(self, j: usize, r: usize) -> *mut f32 {
        self.ptr.wrapping_add(j * self.ld + r)
    }
}

thread_local! {
    /// [`drive`]'s repack and accumulator lines, kept per thread from call to call (grown,
    /// zeroed, when a call needs more): every byte a call reads back it wrote first, except
    /// the stale lanes that only feed results never read (see `drive`).
    static LINES: core::cell::Cell<Vec<Line>> = const { core::cell::Cell::new(Vec::new()) };
}

/// Writes the final sums of one tile (`nr` rows from row `r0`; accumulators `acc`, 16 per
/// column from column `cs.start` on) for the block's columns `cs` (block column `c` is column
/// `j0 + c`) to `out`, a whole tile as two 256-bit moves.
///
/// # Safety
/// AVX is available (the callers enable AVX2); `acc` holds 16 values for every column of
/// `cs`; `out` is valid for writes at those columns' rows `r0 .. r0 + nr`.
#[inline(always)]
unsafe fn write_out(
    acc: *const f32,
    out: Out,
    j0: usize,
    r0: usize,
    nr: usize,
    cs: core::ops::Range<usize>,
) {
    let c0 = cs.start;
    for c in cs {
        let a = acc.add(16 * (c - c0));
        let o = out.at(j0 + c, r0);
        if nr == TR {
            _mm256_storeu_ps(o, _mm256_loadu_ps(a));
            _mm256_storeu_ps(o.add(8), _mm256_loadu_ps(a.add(8)));
        } else {
            core::ptr::copy_nonoverlapping(a, o, nr);
        }
    }
}

/// Sets the 16 accumulators of `C` columns at `acc` to +0.0 (256-bit stores: a `write_bytes`
/// of this size becomes a `memset` call).
///
/// # Safety
/// AVX is available (the callers enable AVX2); `acc` is valid for `16 · C` writes.
#[inline(always)]
unsafe fn zero_cols<const C: usize>(acc: *mut f32) {
    let z = _mm256_setzero_ps();
    for i in 0..2 * C {
        _mm256_storeu_ps(acc.add(8 * i), z);
    }
}

/// The loops of [`gemm`] (`Z`: the AVX-512 transpose and AMX, else the AVX2 transpose),
/// inlined into its two entry points, which set the target features.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn drive<T: Tiles, const Z: bool>(
    f: &Fmt,
    w: &[u8],
    rb: usize,
    cols: usize,
    acts: &[u8],
    n: usize,
    tiles: Option<&mut T>,
    out: Out,
) {
    // AMX (`tiles`, for the formats `x86::amx` has a kernel for): the same loops, the
    // micro-kernel on tiles.
    let mut amx = tiles.filter(|_| Z && amx::supports(f)).map(Amx::new);
    let per = amx.as_ref().map_or(TC, |_| amx::TOKENS_PER_CALL);
    let nr_all = w.len() / rb;
    let ntiles = nr_all.div_ceil(TR);
    let nu_all = cols / f.unit;
    let abr = act_row_bytes(f, cols);
    let (kck, cbb, pf) = blocking();
    let kc = kck.map_or(f.kc, |k| k / f.unit).clamp(1, nu_all.max(1));
    let nc = (cbb / (kc * f.ab)).max(TC).min(n);
    // Chunk quants rounded up to whole 64-byte transposes (Q8_0 odd chunks).
    let qrow = (kc * f.qb).div_ceil(64) * 64;
    let wbytes = qrow * TR;
    // AMX BF16 takes two tiles of rows per micro-kernel call (2 × 2 C tiles), repacked into
    // two buffers of `tsz` bytes.
    let step = if amx.is_some() && f.kind == Kind::Bf16 {
        2
    } else {
        1
    };
    let tsz = ((wbytes + kc * f.sb) / 64 + 1) * 64;
    // Accumulators per (tile, column), the columns padded to whole column tiles: a last
    // partial column tile of 2 or more columns runs the TC-column kernel, its missing columns
    // reading the block's last column and writing padding that is never read back (a
    // column's instructions do not depend on the other columns', so no result changes; one
    // latency-bound single-column call costs over half of a TC-column call).
    let ncp = nc.next_multiple_of(TC);
    // One per-thread buffer of lines (kept from call to call: no allocation and no zeroing per
    // call): the repacked tile(s), the unpacked quants, then the accumulators, 64-byte aligned
    // (AMX loads and stores them as C tiles). Zeroed when grown; a call zeroes every
    // accumulator before its first chunk and the repack writes every tile byte a kept result
    // reads. Without AMX and with K in one chunk (`single` below), one micro-kernel call's TC
    // columns of accumulators serve every call; else one set per (tile, column of the block).
    let one_chunk = amx.is_none() && kc >= nu_all;
    let n_acc = if one_chunk { TC } else { ntiles * ncp };
    let (n_tile, n_tmp) = (step * tsz / 64, qrow * TR / 64);
    let mut lines = LINES.with(|c| c.take());
    if lines.len() < n_tile + n_tmp + n_acc {
        lines.resize(n_tile + n_tmp + n_acc, Line([0; 64]));
    }
    let (tile, rest) = lines.split_at_mut(n_tile);
    let (tmp, acc_v) = rest.split_at_mut(n_tmp);
    let tp = tile.as_mut_ptr().cast::<u8>();
    let qp = tmp.as_mut_ptr().cast::<u8>();
    let accp = acc_v.as_mut_ptr().cast::<f32>();
    let mut j0 = 0;
    while j0 < n {
        let jn = nc.min(n - j0);
        let mut u0 = 0;
        while u0 < nu_all {
            let ku = kc.min(nu_all - u0);
            for t in (0..ntiles).step_by(step) {
                let here = step.min(ntiles - t);
                for h in 0..here {
                    let r0 = (t + h) * TR;
                    let nr = TR.min(nr_all - r0);
                    // Repack rows r0..r0+nr, units u0..u0+ku. Lanes are independent: rows past
                    // `nr` and k past the chunk hold stale bytes whose results are never read.
                    let (tp, sp) = (tp.add(h * tsz), tp.add(h * tsz + wbytes));
                    for r in 0..nr {
                        let row = w.as_ptr().add((r0 + r) * rb + u0 * f.wb);
                        for u in 0..ku {
                            (f.unpack)(
                                row.add(u * f.wb),
                                qp.add(r * qrow + u * f.qb),
                                sp.add(u * f.sb),
                                r,
                            );
                        }
                    }
                    for b in 0..(ku * f.qb).div_ceil(64) {
                        if Z {
                            transpose16(qp.add(64 * b), qrow, tp.add(1024 * b));
                        } else {
                            transpose16_avx2(qp.add(64 * b), qrow, tp.add(1024 * b));
                        }
                    }
                    if amx.is_some() {
                        amx::make_signed(f, tp, (ku * f.qb).div_ceil(64) * 1024);
                    }
                }
                let sp = tp.add(wbytes);
                // The block's accumulators start from zero at the first chunk and are final
                // after the last. Without AMX, each micro-kernel call's columns are zeroed just
                // before it and written out just after it (in L1 both times); AMX zeroes and
                // writes out these tiles as a whole.
                let (first, last) = (u0 == 0, u0 + ku == nu_all);
                // One chunk (all of K): each call's sums are final at once, so every call
                // (without AMX) uses the same first TC columns' accumulators, which stay in L1.
                let single = first && last;
                debug_assert!(single == one_chunk || amx.is_some());
                if first && amx.is_some() {
                    core::ptr::write_bytes(accp.add(t * 16 * ncp), 0, here * 16 * ncp);
                }
                let at = accp.wrapping_add(t * 16 * ncp);
                let nr_t = TR.min(nr_all - t * TR);
                // While this tile runs, prefetch the weights the next repack reads (the next
                // tile of this chunk, else the first of the next chunk or column block) into
                // L2, a few rows per micro-kernel call: the repack otherwise waits on DRAM.
                let next = if !pf {
                    None
                } else if t + step < ntiles {
                    Some((t + step, u0))
                } else if u0 + ku < nu_all {
                    Some((0, u0 + ku))
                } else {
                    (j0 + jn < n).then_some((0, 0))
                };
                let calls = jn.div_ceil(per);
                let mut call = 0;
                let mut prefetch = || {
                    if let Some((tn, un)) = next {
                        let nrn = (step * TR).min(nr_all - tn * TR);
                        let seg = kc.min(nu_all - un) * f.wb;
                        let per = nrn.div_ceil(calls);
                        for r in (call * per).min(nrn)..((call + 1) * per).min(nrn) {
                            let p = w.as_ptr().add((tn * TR + r) * rb + un * f.wb);
                            for o in (0..seg).step_by(64) {
                                _mm_prefetch::<_MM_HINT_T1>(p.add(o).cast());
                            }
                            _mm_prefetch::<_MM_HINT_T1>(p.add(seg - 1).cast());
                        }
                    }
                    call += 1;
                };
                let mut c0 = 0;
                if let Some(am) = amx.as_mut() {
                    while c0 < jn {
                        prefetch();
                        let nt = per.min(jn - c0);
                        let a = acts.as_ptr().add((j0 + c0) * abr + u0 * f.ab);
                        let second = (here == 2).then(|| (tp.add(tsz).cast_const(), 16 * ncp));
                        am.kern(f, tp, sp, ku, a, abr, nt, at.add(16 * c0), second);
                        c0 += nt;
                    }
                    if last {
                        for tt in t..t + here {
                            let nr = TR.min(nr_all - tt * TR);
                            write_out(accp.add(tt * 16 * ncp), out, j0, tt * TR, nr, 0..jn);
                        }
                    }
                }
                // (Only without AMX: the AMX loop above took every column.)
                while c0 + 1 < jn {
                    prefetch();
                    let a: [*const u8; TC] = core::array::from_fn(|c| {
                        let j = j0 + (c0 + c).min(jn - 1);
                        acts.as_ptr().add(j * abr + u0 * f.ab)
                    });
                    // The TC columns, padding included (c0 + TC ≤ ncp).
                    let ac = if single { accp } else { at.add(16 * c0) };
                    if first {
                        zero_cols::<TC>(ac);
                    }
                    (f.kern)(tp, sp, ku, a, ac);
                    if last {
                        write_out(ac, out, j0, t * TR, nr_t, c0..(c0 + TC).min(jn));
                    }
                    c0 += TC;
                }
                while c0 < jn {
                    prefetch();
                    let a = [acts.as_ptr().add((j0 + c0) * abr + u0 * f.ab)];
                    let ac = if single { accp } else { at.add(16 * c0) };
                    if first {
                        zero_cols::<1>(ac);
                    }
                    (f.kern1)(tp, sp, ku, a, ac);
                    if last {
                        write_out(ac, out, j0, t * TR, nr_t, c0..c0 + 1);
                    }
                    c0 += 1;
                }
            }
            u0 += ku;
        }
        j0 += jn;
    }
    if let Some(am) = amx.as_mut() {
        am.finish();
    }
    // Kept for the next call unless large (a huge matrix's multi-chunk accumulators would
    // otherwise stay allocated on every thread).
    if lines.len() <= KEEP_LINES {
        LINES.with(|c| c.set(lines));
    }
}

/// The most lines (of 64 bytes: 8 MiB) that [`drive`] keeps per thread between calls.
const KEEP_LINES: usize = (8 << 20) / 64;
