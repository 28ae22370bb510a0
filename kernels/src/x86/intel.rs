//! AVX-512 kernels for cores with two 512-bit vector ports (Intel Sapphire / Emerald / Granite
//! Rapids): GEMV and GEMM kernels for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q2_K … Q6_K. A kernel takes
//! one weight row, a range of its blocks and `C` activation rows, and adds into per-column
//! accumulators (C = 1
//! for GEMV; C = 8 for GEMM, which walks K in chunks of [`KB`] blocks over tiles of [`TR`]
//! rows so that weights and activations are reused from L1). Every column sees exactly the same
//! instructions in the same block order, so a GEMM column is bit-identical to the GEMV of that
//! column, whatever the tiling or thread count. (From 16 columns `Kernels::gemm` takes the
//! register-tiled path of `x86/tile.rs` instead, which does not keep that property.)
//!
//! Why these exist (docs/kernels.md, "Intel"): while 512-bit instructions are in flight, an
//! Intel core issues vector work on two ports only (port 1's vector ALU is fused into port 0),
//! and shuffles / permutes / lane inserts all go to port 5. The kernels in `avx512.rs` were
//! written for Zen 5 (four full-width pipes); on Intel they are port-bound at roughly twice
//! the cycles per block of what the multiply work needs. These kernels spend fewer port-0/5
//! micro-ops per block:
//!
//! - nibbles: one `vgf2p8affineqb` (GFNI) per 64 quants, with a different bit matrix per
//!   qword, extracts the low nibbles into one half and the high nibbles into the other half
//!   of a register loaded by a (free) 256-bit broadcast, so the activations are plain 64-byte
//!   loads in their natural order (no `vinserti64x4`);
//! - scales: `vpdpbusd` sums 4 products per i32 lane (they fit in i16), `vpackssdw` packs two
//!   such registers, and one `vpdpwssd` applies the sub-block scales to both: two scale
//!   multiplies and two scale vectors (`vpermb`) per Q4_K block instead of four of each;
//! - Q4_K mins: the activation is prepared once per call as Q8_K with its group sums replaced
//!   by `Σ` per 32 quants (as f32, exact), so the min term is `m·Σ` per 32 quants (exact in
//!   f32) times `−dmin·d_a`, one fused multiply-add of 8 lanes into the same accumulator. Both
//!   earlier orders overflowed f32 where the scalar reference, which scales `dmin·d_a` first,
//!   does not (fuzz findings: `d_a·Σ` stored in the activation,
//!   fuzz/regressions/vec_dot/q4k-intel-activation-group-sum-overflows; `(−dmin·m)·d_a`,
//!   fuzz/regressions/vec_dot/q4k-intel-min-times-activation-scale-overflows);
//! - Q6_K: the `−32` offset enters the integer sum through one `vpdpwssd` of the group sums
//!   with `−32·scale`; the lanes then hold parts that cancel only in their total, so each
//!   block's sum is reduced to one integer before its float step (kept in f32 lanes, the parts
//!   overflowed or cancelled the result away: a fuzz finding);
//! - Q2_K / Q3_K: 2-bit fields (and Q3_K's high bits, merged by one `vpternlogq` per 64
//!   quants) come out of one `vgf2p8affineqb` per 64 quants, two shifts per broadcast 32-byte
//!   half; Q3_K's −4 enters as the start value of `vpdpbusd`, prepared once per call in the
//!   activation ("Q8_K-3": `−4·Σ` per four quants), so every lane is an exact partial sum;
//!   its 6-bit scales are unpacked with four xmm operations (GFNI, `vpmultishiftqb`);
//! - Q8_0: the activation is prepared once per call in a private layout (quants + 128, i.e.
//!   unsigned, contiguous; f32 block scales apart), so `vpdpbusd` takes activation × weight
//!   directly, with `−128·Σw` per lane (from one `vpdpbusd` on the weights) as the starting
//!   value: no sign tricks, no ±127 precondition, no activation inserts;
//! - Q4_0 / Q4_1 / Q5_0 / Q5_1: per pair of blocks one `vinserti64x4` of two broadcast `qs`
//!   loads and one `vgf2p8affineqb` (low nibbles in 128-bit lanes 0 and 2, high nibbles in 1
//!   and 3: both blocks' quants in natural order), for the Q5 types one `kmovq` of both `qh`
//!   words and one masked `vpaddb` of 16; the quants stay unsigned and meet the signed
//!   activation quants in `vpdpbusd`; the −8 / −16 offset of Q4_0 / Q5_0 is the start value
//!   of that `vpdpbusd`, prepared once per call in the activation ("Q8 lanes": `−off·Σ` per four
//!   quants, so every lane is an exact partial sum); Q4_1 / Q5_1 take `m·s` as one f32
//!   multiply per four blocks into separate lanes of the second accumulator.
//!
//! Integer sums are exact, so results match the scalar reference within the stated bounds (Q6_K
//! bit for bit);
//! the float accumulation (16 lanes, fused multiply-add, lanes reduced at the end) is the same
//! for GEMV, GEMM and [`crate::Kernels::vec_dot`] on this table.
//!
//! Every function is `unsafe`: the CPU must have [`FEATURES`], and slices must hold whole
//! rows of the lengths the callers check.

#![allow(clippy::needless_range_loop)] // register arrays indexed in step with columns

use super::avx2::f16x2;
use core::arch::x86_64::*;
use core::ptr::read_unaligned as rd;

/// The `target_feature` list of this module.
pub const FEATURES: &str = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,gfni,avx2,fma,f16c";

macro_rules! intel {
    ($($item:item)*) => {$(
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,gfni,avx2,fma,f16c")]
        $item
    )*};
}

/// GF(2) bit matrix (one qword) for `vgf2p8affineqb`: output bit k is the parity of
/// `x & byte[7 − k]`. Low nibble: bits 0..4 of x, high bits zero.
const GF_LO: i64 = 0x0102_0408_0000_0000;
/// High nibble moved down: bits 4..8 of x as bits 0..4.
const GF_HI: i64 = 0x1020_4080_0000_0000;
/// Q6_K high bits: qh bits (0, 1) → bits (4, 5).
const GF_QH0: i64 = 0x0000_0000_0102_0000;
/// qh bits (2, 3) → bits (4, 5).
const GF_QH2: i64 = 0x0000_0000_0408_0000;
/// qh bits (4, 5) → bits (4, 5).
const GF_QH4: i64 = 0x0000_0000_1020_0000;
/// qh bits (6, 7) → bits (4, 5).
const GF_QH6: i64 = 0x0000_0000_4080_0000;

/// A register whose low four qwords hold matrix `lo` and high four `hi`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,gfni,avx2,fma,f16c")]
unsafe fn gf_halves(lo: i64, hi: i64) -> __m512i {
    _mm512_set_epi64(hi, hi, hi, hi, lo, lo, lo, lo)
}

/// Four f16 given as the low 64 bits of `v`, as four f32 lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,gfni,avx2,fma,f16c")]
unsafe fn f16x4(v: u64) -> __m128 {
    let out: __m128;
    // SAFETY: as for `avx2::f16x2`.
    unsafe {
        core::arch::asm!(
            "vmovq {x}, {v}",
            "vcvtph2ps {x}, {x}",
            v = in(reg) v,
            x = out(xmm_reg) out,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// A register-only accumulate instruction `acc ← acc ∘ (a, b)` as one `asm!` instruction, so
/// that LLVM keeps that exact instruction and its accumulator register.
macro_rules! acc_insn {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $insn:literal) => {
        $(#[$doc])*
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,gfni,avx2,fma,f16c")]
        unsafe fn $name(acc: $ty, a: $ty, b: $ty) -> $ty {
            let mut acc = acc;
            // SAFETY: an AVX-512 F / VNNI register instruction available under this
            // function's features.
            unsafe {
                core::arch::asm!(
                    concat!($insn, " {acc}, {a}, {b}"),
                    acc = inout(zmm_reg) acc,
                    a = in(zmm_reg) a,
                    b = in(zmm_reg) b,
                    options(pure, nomem, nostack, preserves_flags)
                );
            }
            acc
        }
    };
}

acc_insn!(
    /// `vpdpwssd` as one instruction: LLVM otherwise splits some into `vpmaddwd` + `vpaddd`
    /// (two vector micro-ops instead of one).
    dpwssd, __m512i, "vpdpwssd"
);
acc_insn!(
    /// `acc + a·b` (`vfmadd231ps`, fused), computed in the accumulator's register: LLVM
    /// otherwise picks the form that overwrites a product operand and copies it back (one more
    /// vector micro-op per block).
    fma231, __m512, "vfmadd231ps"
);

/// f32 lane `idx` (an index vector, the lane in every dword) of `v` in every lane: one
/// `vpermps` (LLVM otherwise emits a shuffle and a broadcast).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,gfni,avx2,fma,f16c")]
unsafe fn bcast_lane(v: __m128, idx: __m512i) -> __m512 {
    let out: __m512;
    // SAFETY: an AVX-512 F register instruction available under this function's features.
    unsafe {
        core::arch::asm!(
            "vpermps {o}, {i}, {v}",
            o = lateout(zmm_reg) out,
            i = in(zmm_reg) idx,
            v = in(zmm_reg) _mm512_castps128_ps512(v),
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,gfni,avx2,fma,f16c")]
unsafe fn bcast256(p: *const u8) -> __m512i {
    _mm512_broadcast_i64x4(_mm256_loadu_si256(p.cast()))
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,gfni,avx2,fma,f16c")]
unsafe fn ld512(p: *const u8) -> __m512i {
    _mm512_loadu_si512(p.cast())
}

/// `vpermb` index bytes that put byte `src(l)` into the low byte of i16 lane `l` and byte 63 (a
/// zero of the zero-extended source) into its high byte.
const fn spread(src: [u8; 32]) -> [u8; 64] {
    let mut out = [63u8; 64];
    let mut l = 0;
    while l < 32 {
        out[2 * l] = src[l];
        l += 1;
    }
    out
}

/// Byte of the unpacked Q4_K scales ([`k45_unpack`]) holding scale `j` (`min`: min `j`).
const fn k45_byte(j: u8, min: bool) -> u8 {
    (j / 4) * 8 + if min { 4 } else { 0 } + j % 4
}

/// i16 lane → byte of Q4_K sub-block scale after `vpackssdw` of two `vpdpbusd` results of
/// chunks `a` and `b` (chunk j = sub-blocks 2j in the low and 2j + 1 in the high 256 bits): per
/// 128-bit lane L, four lanes from chunk a then four from chunk b.
const fn q4k_pack_map(a: u8, b: u8) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut l = 0;
    while l < 32 {
        let lane128 = l / 8;
        let hi = (lane128 >= 2) as u8;
        out[l] = k45_byte(if l % 8 < 4 { 2 * a + hi } else { 2 * b + hi }, false);
        l += 1;
    }
    out
}

static Q4K_S01: [u8; 64] = spread(q4k_pack_map(0, 1));
static Q4K_S23: [u8; 64] = spread(q4k_pack_map(2, 3));
static Q4K_MIN: [u8; 32] = q4k_min_map();

/// Q4_K / Q5_K packed scales (12 bytes at `p`) unpacked with 64-bit integer operations into
/// (scales 0..4, mins 0..4, scales 4..8, mins 4..8) as bytes 0..16 of the result pair (low,
/// high) ([`crate::blocks::kquant_scales_mins_words`]). Kept in general-purpose registers on
/// purpose: the vector ports are the bottleneck.
#[inline(always)]
fn k45_unpack(p: *const u8) -> (u64, u64) {
    // SAFETY: callers pass a pointer to the 12 scale bytes of a block.
    crate::blocks::kquant_scales_mins_words(unsafe { &rd(p.cast::<[u8; 12]>()) })
}

/// Q8_K: f32 scale at 0, quants at 4, 16 i16 group sums at 260.
const Q8K: usize = 292;

/// Blocks per K-chunk of the GEMM (a multiple of 4, the Q8_0 step).
pub(crate) const KB: usize = 8;
/// Weight rows per GEMM tile.
pub(crate) const TR: usize = 8;
/// Activation columns per GEMM kernel call.
pub(crate) const TC: usize = 8;

/// Per-column accumulators (two registers; kernels that need one leave the second at zero).
pub(crate) type Acc = [__m512; 2];

/// The result of a column's accumulators (the same reduction for GEMV and GEMM).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,gfni,avx2,fma,f16c")]
unsafe fn finish(a: Acc) -> f32 {
    _mm512_reduce_add_ps(_mm512_add_ps(a[0], a[1]))
}

/// Q4_K's activation layout "Q8_K-v": a Q8_K block whose 16 i16 group sums (bytes 260..292)
/// are replaced by 8 f32 `bsum[2j] + bsum[2j+1]` (exact), one per 32 quants.
pub(crate) fn q8_k_to_v(blocks: &mut [u8]) {
    for b in blocks.chunks_exact_mut(Q8K) {
        let bs = |g: usize| i16::from_le_bytes([b[260 + 2 * g], b[261 + 2 * g]]) as i32;
        let v: [f32; 8] = core::array::from_fn(|j| (bs(2 * j) + bs(2 * j + 1)) as f32);
        for (j, x) in v.iter().enumerate() {
            b[260 + 4 * j..264 + 4 * j].copy_from_slice(&x.to_le_bytes());
        }
    }
}

/// One Q4_K / Q5_K superblock at `x` (block `i`) · the `C` Q8_K-v activation rows `ys`, added
/// to the accumulators `a`: the scales and mins (shared layout) and the per-column products
/// (same instructions in both kernels); `$quant` is the closure that unpacks the 64 quants
/// `j` (0..4) as u8, the only step where the two formats differ.
macro_rules! k45_block {
    ($x:ident, $i:ident, $ys:ident, $a:ident, ($s01i:ident, $s23i:ident, $mi:ident, $zero:ident), $quant:expr) => {{
        let (lo, hi) = k45_unpack($x.add(4));
        let t = _mm512_zextsi128_si512(_mm_set_epi64x(hi as i64, lo as i64));
        let s01 = _mm512_permutexvar_epi8($s01i, t);
        let s23 = _mm512_permutexvar_epi8($s23i, t);
        // m_j in lanes 0..8 (f32, exact), zero above; −dmin broadcast.
        let m32 = _mm256_permutexvar_epi8($mi, _mm512_castsi512_si256(t));
        let mf = _mm512_zextps256_ps512(_mm256_cvtepi32_ps(m32));
        let dm = f16x2($x);
        let negdmin = _mm512_sub_ps(
            _mm512_setzero_ps(),
            _mm512_broadcastss_ps(_mm_movehdup_ps(dm)),
        );
        let d = _mm512_broadcastss_ps(dm);
        let q: [__m512i; 4] = core::array::from_fn($quant);
        for c in 0..C {
            let y = $ys[c].add(Q8K * $i);
            let yq = y.add(4);
            let p: [__m512i; 4] =
                core::array::from_fn(|j| _mm512_dpbusd_epi32($zero, q[j], ld512(yq.add(64 * j))));
            let sumi = _mm512_dpwssd_epi32($zero, _mm512_packs_epi32(p[0], p[1]), s01);
            let sumi = _mm512_dpwssd_epi32(sumi, _mm512_packs_epi32(p[2], p[3]), s23);
            let yd = _mm512_set1_ps(rd(y.cast::<f32>()));
            let dy = _mm512_mul_ps(d, yd);
            $a[c] = _mm512_fmadd_ps(dy, _mm512_cvtepi32_ps(sumi), $a[c]);
            // (−dmin·d_a)·(m_j·Σ_j): m_j·Σ_j is exact (|·| < 2^18), and dmin meets d_a
            // first as in the scalar reference. Scaling −dmin·m by d_a first overflowed f32
            // for d_a near 10^36 where the reference stays finite (a fuzz finding,
            // fuzz/regressions/vec_dot/q4k-intel-min-times-activation-scale-overflows).
            let v = _mm512_zextps256_ps512(_mm256_loadu_ps(y.add(260).cast()));
            $a[c] = _mm512_fmadd_ps(_mm512_mul_ps(negdmin, yd), _mm512_mul_ps(mf, v), $a[c]);
        }
    }};
}

intel! {
    /// Q4_K blocks `i0..i1` of the row at `w` · `C` Q8_K-v activation rows, added into `acc`.
    #[inline]
    pub(crate) unsafe fn q4_k<const C: usize>(w: *const u8, i0: usize, i1: usize, _nb: usize, ys: [*const u8; C], acc: &mut [Acc; C], pf: usize) {
        let gf = gf_halves(GF_LO, GF_HI);
        let s01i = ld512(Q4K_S01.as_ptr());
        let s23i = ld512(Q4K_S23.as_ptr());
        let mi = _mm256_loadu_si256(Q4K_MIN.as_ptr().cast());
        let zero = _mm512_setzero_si512();
        let mut a: [__m512; C] = core::array::from_fn(|c| acc[c][0]);
        for i in i0..i1 {
            let x = w.add(144 * i);
            prefetch::<3>(x, pf);
            k45_block!(x, i, ys, a, (s01i, s23i, mi, zero), |j| {
                _mm512_gf2p8affine_epi64_epi8::<0>(bcast256(x.add(16 + 32 * j)), gf)
            });
        }
        for c in 0..C {
            acc[c][0] = a[c];
        }
    }
}

/// Q5_K fifth bits: `qh` bit k moved to bit 4.
const GF_Q5H: [i64; 8] = {
    let mut out = [0i64; 8];
    let mut k = 0;
    while k < 8 {
        out[k] = gf_bits([NB, NB, NB, NB, k as u8, NB, NB, NB]);
        k += 1;
    }
    out
};

intel! {
    /// Q5_K blocks `i0..i1` · `C` Q8_K-v activation rows: Q4_K's kernel with the fifth bits
    /// put into bit 4 by one `vgf2p8affineqb` of the broadcast `qh` (bit 2j in the low, 2j + 1 in
    /// the high 256 bits) and one `vpor` per 64 quants.
    #[inline]
    pub(crate) unsafe fn q5_k<const C: usize>(w: *const u8, i0: usize, i1: usize, _nb: usize, ys: [*const u8; C], acc: &mut [Acc; C], pf: usize) {
        let gf = gf_halves(GF_LO, GF_HI);
        let gfh: [__m512i; 4] = core::array::from_fn(|j| gf_halves(GF_Q5H[2 * j], GF_Q5H[2 * j + 1]));
        let s01i = ld512(Q4K_S01.as_ptr());
        let s23i = ld512(Q4K_S23.as_ptr());
        let mi = _mm256_loadu_si256(Q4K_MIN.as_ptr().cast());
        let zero = _mm512_setzero_si512();
        let mut a: [__m512; C] = core::array::from_fn(|c| acc[c][0]);
        for i in i0..i1 {
            let x = w.add(176 * i);
            prefetch::<3>(x, pf);
            let qh = bcast256(x.add(16));
            k45_block!(x, i, ys, a, (s01i, s23i, mi, zero), |j| {
                let n = _mm512_gf2p8affine_epi64_epi8::<0>(bcast256(x.add(48 + 32 * j)), gf);
                _mm512_or_si512(n, _mm512_gf2p8affine_epi64_epi8::<0>(qh, gfh[j]))
            });
        }
        for c in 0..C {
            acc[c][0] = a[c];
        }
    }
}

/// Q4_K mins: dword lane j takes min j (bytes 1..4 of each dword from byte 31, a zero).
const fn q4k_min_map() -> [u8; 32] {
    let mut out = [31u8; 32];
    let mut j = 0;
    while j < 8 {
        out[4 * j] = k45_byte(j as u8, true);
        j += 1;
    }
    out
}

/// i16 lane → Q6_K scale index (of the 8 in a half) after `vpackssdw` of the `vpdpbusd`
/// results of the half's low register (quants 0..64: scales 0..4) and high register (quants
/// 64..128: scales 4..8): per 128-bit lane L, four lanes from the low register (its 16 quants
/// 16L.. → scale L) then four from the high one (scale 4 + L).
const fn q6k_pack_map(half: u8) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut l = 0;
    while l < 32 {
        let lane128 = (l / 8) as u8;
        out[l] = 8 * half + if l % 8 < 4 { lane128 } else { 4 + lane128 };
        l += 1;
    }
    out
}

/// i16 lanes → words for `vpermw` (Q6_K scales are signed: widened once, then permuted).
const fn words(src: [u8; 32]) -> [u16; 32] {
    let mut out = [0u16; 32];
    let mut l = 0;
    while l < 32 {
        out[l] = src[l] as u16;
        l += 1;
    }
    out
}

static Q6K_S0: [u16; 32] = words(q6k_pack_map(0));
static Q6K_S1: [u16; 32] = words(q6k_pack_map(1));

intel! {
    /// Q6_K blocks `i0..i1` · `C` Q8_K rows: quants unsigned (0..64); the −32 enters as
    /// `Σ bsum·(−32·scale)` through one `vpdpwssd` on the group sums; each block's integer sum
    /// is reduced to one number before its float step (lane 0 of the accumulator).
    #[inline]
    pub(crate) unsafe fn q6_k<const C: usize>(w: *const u8, i0: usize, i1: usize, _nb: usize, ys: [*const u8; C], acc: &mut [Acc; C], pf: usize) {
        let m4 = _mm512_set1_epi8(0x0f);
        let gf_hi = _mm512_set1_epi64(GF_HI);
        let gf12 = gf_halves(GF_QH0, GF_QH2);
        let gf34 = gf_halves(GF_QH4, GF_QH6);
        let si = [ld512(Q6K_S0.as_ptr().cast()), ld512(Q6K_S1.as_ptr().cast())];
        let zero = _mm512_setzero_si512();
        let mut a: [__m512; C] = core::array::from_fn(|c| acc[c][0]);
        for i in i0..i1 {
            let x = w.add(210 * i);
            prefetch::<4>(x, pf);
            let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(x.add(192).cast()));
            let s512 = _mm512_castsi256_si512(sc16);
            let s = [_mm512_permutexvar_epi16(si[0], s512), _mm512_permutexvar_epi16(si[1], s512)];
            let corr = _mm512_zextsi256_si512(_mm256_slli_epi16::<5>(_mm256_sub_epi16(_mm256_setzero_si256(), sc16)));
            let mut q = [zero; 4];
            for h in 0..2 {
                let ql = ld512(x.add(64 * h));
                let qh = bcast256(x.add(128 + 32 * h));
                let h12 = _mm512_gf2p8affine_epi64_epi8::<0>(qh, gf12);
                let h34 = _mm512_gf2p8affine_epi64_epi8::<0>(qh, gf34);
                q[2 * h] = _mm512_ternarylogic_epi64::<0xEA>(ql, m4, h12);
                q[2 * h + 1] = _mm512_or_si512(_mm512_gf2p8affine_epi64_epi8::<0>(ql, gf_hi), h34);
            }
            let d = _mm_cvtss_f32(_mm_movehdup_ps(f16x2(x.add(206))));
            for c in 0..C {
                let y = ys[c].add(Q8K * i);
                let yq = y.add(4);
                let bs = _mm512_zextsi256_si512(_mm256_loadu_si256(y.add(260).cast()));
                let mut sumi = _mm512_dpwssd_epi32(zero, bs, corr);
                for h in 0..2 {
                    let p0 = _mm512_dpbusd_epi32(zero, q[2 * h], ld512(yq.add(128 * h)));
                    let p1 = _mm512_dpbusd_epi32(zero, q[2 * h + 1], ld512(yq.add(128 * h + 64)));
                    sumi = _mm512_dpwssd_epi32(sumi, _mm512_packs_epi32(p0, p1), s[h]);
                }
                // The lanes hold the −32 corrections apart from the products they cancel, so
                // the block's integer sum is reduced exactly and takes the scalar reference's
                // one float step in lane 0 (f32 lanes overflowed to +inf and −inf, or lost the
                // result to cancellation: a fuzz finding, fuzz/regressions/vec_dot/q6k-*).
                let dy = d * rd(y.cast::<f32>());
                let v = dy * _mm512_reduce_add_epi32(sumi) as f32;
                a[c] = _mm512_add_ps(a[c], _mm512_zextps128_ps512(_mm_set_ss(v)));
            }
        }
        for c in 0..C {
            acc[c][0] = a[c];
        }
    }
}

/// A `vgf2p8affineqb` bit matrix (one qword): output bit k is input bit `src[k]`, or zero
/// where `src[k]` is [`NB`].
const fn gf_bits(src: [u8; 8]) -> i64 {
    let mut m = 0u64;
    let mut k = 0;
    while k < 8 {
        if src[k] < 8 {
            m |= (1u64 << src[k]) << (8 * (7 - k));
        }
        k += 1;
    }
    m as i64
}

/// "No input bit" in [`gf_bits`].
const NB: u8 = 8;
/// The two 2-bit fields at bits (0, 1) and (2, 3) moved to bits (0, 1): Q2_K shifts 0 and 1.
const GF_Q2_0: i64 = gf_bits([0, 1, NB, NB, NB, NB, NB, NB]);
/// Q2_K shift 1: bits (2, 3) → (0, 1).
const GF_Q2_1: i64 = gf_bits([2, 3, NB, NB, NB, NB, NB, NB]);
/// Q2_K shift 2: bits (4, 5) → (0, 1).
const GF_Q2_2: i64 = gf_bits([4, 5, NB, NB, NB, NB, NB, NB]);
/// Q2_K shift 3: bits (6, 7) → (0, 1).
const GF_Q2_3: i64 = gf_bits([6, 7, NB, NB, NB, NB, NB, NB]);
/// Nibble swap (Q3_K's high-bit mask, see [`q3_k`]).
const GF_SWAP: i64 = gf_bits([4, 5, 6, 7, 0, 1, 2, 3]);
/// Q3_K value `low | 4·high` from a merged byte with the low bits at (0, 1) and the high bit at 4.
const GF_Q3_A0: i64 = gf_bits([0, 1, 4, NB, NB, NB, NB, NB]);
/// Low bits at (2, 3), high bit at 5.
const GF_Q3_A1: i64 = gf_bits([2, 3, 5, NB, NB, NB, NB, NB]);
/// Low bits at (4, 5), high bit at 2.
const GF_Q3_B0: i64 = gf_bits([4, 5, 2, NB, NB, NB, NB, NB]);
/// Low bits at (6, 7), high bit at 3.
const GF_Q3_B1: i64 = gf_bits([6, 7, 3, NB, NB, NB, NB, NB]);

/// i16 lane → group (16 quants) after `vpackssdw` of the `vpdpbusd` results of quants
/// `64a .. 64a + 64` and `64b .. 64b + 64` in natural order (128-bit lane L of each holds group
/// `4a + L` resp. `4b + L`): per 128-bit lane, four lanes from the first, four from the second.
const fn k16_pack_map(a: u8, b: u8) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut l = 0;
    while l < 32 {
        let lane128 = (l / 8) as u8;
        out[l] = if l % 8 < 4 { 4 * a } else { 4 * b } + lane128;
        l += 1;
    }
    out
}

/// `vpermb` index bytes that put byte `src(l)` into the high byte of i16 lane `l` and byte 63
/// (a zero) into its low byte: the lane is `256·src` as a signed i16.
const fn spread_hi(src: [u8; 32]) -> [u8; 64] {
    let mut out = [63u8; 64];
    let mut l = 0;
    while l < 32 {
        out[2 * l + 1] = src[l];
        l += 1;
    }
    out
}

static K16_S01: [u8; 64] = spread(k16_pack_map(0, 1));
static K16_S23: [u8; 64] = spread(k16_pack_map(2, 3));
static Q3K_S01: [u8; 64] = spread_hi(k16_pack_map(0, 1));
static Q3K_S23: [u8; 64] = spread_hi(k16_pack_map(2, 3));

intel! {
    /// Q2_K blocks `i0..i1` · `C` Q8_K rows (natural layout). Quants (0..4) come out of one
    /// `vgf2p8affineqb` per 64 (two shifts of a broadcast 32-byte half, one per 256-bit half,
    /// so the activations are plain loads in natural order); `vpdpbusd` → `vpackssdw` →
    /// `vpdpwssd` applies the 16 group scales with two scale vectors (`vpermb`); the mins meet
    /// the Q8_K group sums in one `vpmaddwd`, accumulated (negated, times `dmin·d_a`) in the
    /// second accumulator.
    #[inline]
    pub(crate) unsafe fn q2_k<const C: usize>(w: *const u8, i0: usize, i1: usize, _nb: usize, ys: [*const u8; C], acc: &mut [Acc; C], pf: usize) {
        let g01 = gf_halves(GF_Q2_0, GF_Q2_1);
        let g23 = gf_halves(GF_Q2_2, GF_Q2_3);
        let m4 = _mm_set1_epi8(0x0f);
        let s01i = ld512(K16_S01.as_ptr());
        let s23i = ld512(K16_S23.as_ptr());
        let one = _mm512_set1_epi32(1);
        let zero = _mm512_setzero_si512();
        let mut a0: [__m512; C] = core::array::from_fn(|c| acc[c][0]);
        let mut a1: [__m512; C] = core::array::from_fn(|c| acc[c][1]);
        for i in i0..i1 {
            let x = w.add(84 * i);
            prefetch::<2>(x, pf);
            let raw = _mm_loadu_si128(x.cast());
            let t = _mm512_zextsi128_si512(_mm_and_si128(raw, m4));
            let s01 = _mm512_permutexvar_epi8(s01i, t);
            let s23 = _mm512_permutexvar_epi8(s23i, t);
            let mn = _mm256_srli_epi16::<4>(_mm256_cvtepu8_epi16(raw));
            let (h0, h1) = (bcast256(x.add(16)), bcast256(x.add(48)));
            let q = [
                _mm512_gf2p8affine_epi64_epi8::<0>(h0, g01),
                _mm512_gf2p8affine_epi64_epi8::<0>(h0, g23),
                _mm512_gf2p8affine_epi64_epi8::<0>(h1, g01),
                _mm512_gf2p8affine_epi64_epi8::<0>(h1, g23),
            ];
            // [d, −dmin] (the f16 sign bit flipped: an exact negation).
            let dm = f16x4((rd(x.add(80).cast::<u32>()) ^ 0x8000_0000) as u64);
            for c in 0..C {
                let y = ys[c].add(Q8K * i);
                let yq = y.add(4);
                let p: [__m512i; 4] =
                    core::array::from_fn(|j| _mm512_dpbusd_epi32(zero, q[j], ld512(yq.add(64 * j))));
                let sumi = dpwssd(zero, _mm512_packs_epi32(p[0], p[1]), s01);
                let sumi = dpwssd(sumi, _mm512_packs_epi32(p[2], p[3]), s23);
                let summs = _mm256_madd_epi16(_mm256_loadu_si256(y.add(260).cast()), mn);
                // [d·d_a, −dmin·d_a], as the scalar reference scales each part.
                let dd = _mm_mul_ps(dm, _mm_set1_ps(rd(y.cast::<f32>())));
                a0[c] = fma231(a0[c], _mm512_broadcastss_ps(dd), _mm512_cvtepi32_ps(sumi));
                let dmin = bcast_lane(dd, one);
                a1[c] = fma231(a1[c], dmin, _mm512_cvtepi32_ps(_mm512_zextsi256_si512(summs)));
            }
        }
        for c in 0..C {
            acc[c] = [a0[c], a1[c]];
        }
    }
}

/// Q3_K's activation layout "Q8_K-3" for a row of `nb` blocks: per block 256 quants (i8,
/// natural order), then 64 i32 `−4·Σ` of each four quants (the start value of the `vpdpbusd`
/// that meets them, so that every lane holds a true partial sum of `(q − 4)·a`): [`Q8K3`]
/// bytes per block; then the `nb` f32 block scales. 516 bytes per block in all.
pub(crate) const Q8K3: usize = 512;

/// Bytes of the Q8_K-3 activation of `nb` blocks.
pub(crate) const fn q8_k3_bytes(nb: usize) -> usize {
    (Q8K3 + 4) * nb
}

/// One natural Q8_K block (`src`, 292 bytes) to block `b` of a Q8_K-3 row of `nb` blocks.
fn q8_k_block_to_3(src: &[u8], dst: &mut [u8], b: usize, nb: usize) {
    let d = &mut dst[Q8K3 * b..Q8K3 * (b + 1)];
    d[..256].copy_from_slice(&src[4..260]);
    for j in 0..64 {
        let s: i32 = src[4 + 4 * j..8 + 4 * j]
            .iter()
            .map(|&v| v as i8 as i32)
            .sum();
        d[256 + 4 * j..260 + 4 * j].copy_from_slice(&(-4 * s).to_le_bytes());
    }
    let at = Q8K3 * nb + 4 * b;
    dst[at..at + 4].copy_from_slice(&src[..4]);
}

/// Natural Q8_K blocks (`src`) to the Q8_K-3 layout (`dst`, [`q8_k3_bytes`]).
pub(crate) fn q8_k_to_3(src: &[u8], dst: &mut [u8]) {
    let nb = src.len() / Q8K;
    for (b, s) in src.chunks_exact(Q8K).enumerate() {
        q8_k_block_to_3(s, dst, b, nb);
    }
}

/// [`q8_k_to_3`] in place: `buf` holds [`q8_k3_bytes`] bytes, the natural Q8_K blocks in its
/// first 292 bytes per block (converted from the last block down: block `b`'s output starts at
/// or after the end of natural block `b − 1`, so no input is overwritten before it is read).
pub(crate) fn q8_k_to_3_in_place(buf: &mut [u8]) {
    let nb = buf.len() / (Q8K3 + 4);
    let mut tmp = [0u8; Q8K];
    for b in (0..nb).rev() {
        tmp.copy_from_slice(&buf[Q8K * b..Q8K * (b + 1)]);
        q8_k_block_to_3(&tmp, buf, b, nb);
    }
}

/// Q3_K scales, low nibbles: qword 0 keeps bits 0..4 of each byte (scales 0..8), qword 1
/// moves bits 4..8 down (scales 8..16).
const GF_Q3S_LO: i64 = gf_bits([0, 1, 2, 3, NB, NB, NB, NB]);
/// See [`GF_Q3S_LO`].
const GF_Q3S_HI: i64 = gf_bits([4, 5, 6, 7, NB, NB, NB, NB]);
/// `x − 32` for a 6-bit `x` (bits 0..4 low, bits 4, 5 high; bits 6, 7 ignored) as an i8: bits
/// 0..5 kept, bit 5 inverted and copied into bits 6, 7 (the XOR constant 0xe0 inverts them).
const GF_Q3S_M32: i64 = gf_bits([0, 1, 2, 3, 4, 5, 5, 5]);

/// `vpmultishiftqb` control: byte j takes 8 bits of the dword `b[8..12]` (broadcast) starting 4
/// bits below scale j's high pair (`b[8 + j % 4]` bits `2·(j / 4)`), so the pair lands in bits
/// 4, 5 (offsets wrap around the qword).
const fn q3s_hi_ctrl() -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut j = 0;
    while j < 16 {
        out[j] = ((8 * (j % 4) + 2 * (j / 4) + 64 - 4) % 64) as u8;
        j += 1;
    }
    out
}

static Q3S_HI: [u8; 16] = q3s_hi_ctrl();

intel! {
    /// Q3_K blocks `i0..i1` · `C` Q8_K-3 rows ([`Q8K3`]). The 3-bit quants (`low | 4·high`,
    /// 0..8) take three vector operations per 64 plus one per block: a `vpternlogq` bit select
    /// merges, into one byte, two shifts' low bits from the `qs` half and their high bits from
    /// the `hmask` byte (as it is, or nibble-swapped by one `vgf2p8affineqb` where the bits would
    /// collide), and one `vgf2p8affineqb` per 64 quants extracts the two values (a different bit
    /// matrix per 256-bit half). `vpdpbusd` starts from the activation's `−4·Σ` per lane, so
    /// every lane holds an exact partial sum of `(q − 4)·a` (no parts that cancel only in total:
    /// fuzz/regressions/vec_dot/q3k-avx512-lanes-cancel-in-f32); `vpackssdw` → `vpdpwssd`
    /// applies `256·(scale − 32)` (a `vpermb` into the high bytes, so no sign extension), and
    /// one `vpsrad` removes the 256 exactly.
    #[inline]
    pub(crate) unsafe fn q3_k<const C: usize>(w: *const u8, i0: usize, i1: usize, nb: usize, ys: [*const u8; C], acc: &mut [Acc; C], pf: usize) {
        let ga = gf_halves(GF_Q3_A0, GF_Q3_A1);
        let gb = gf_halves(GF_Q3_B0, GF_Q3_B1);
        let swap = _mm512_set1_epi64(GF_SWAP);
        let m4 = _mm512_set1_epi8(0x0f);
        let s01i = ld512(Q3K_S01.as_ptr());
        let s23i = ld512(Q3K_S23.as_ptr());
        let gsl = _mm_set_epi64x(GF_Q3S_HI, GF_Q3S_LO);
        let gm32 = _mm_set1_epi64x(GF_Q3S_M32);
        let shc = _mm_loadu_si128(Q3S_HI.as_ptr().cast());
        let m4x = _mm_set1_epi8(0x0f);
        let zero = _mm512_setzero_si512();
        let dys: [*const f32; C] = core::array::from_fn(|c| ys[c].add(Q8K3 * nb).cast::<f32>());
        let mut a: [__m512; C] = core::array::from_fn(|c| acc[c][0]);
        for i in i0..i1 {
            let x = w.add(110 * i);
            prefetch::<2>(x, pf);
            // The 16 scales minus 32 as i8, in four vector operations (unpacking them in
            // general registers cost ~30 integer micro-ops, some on ports 0 and 5).
            let lo = _mm_gf2p8affine_epi64_epi8::<0>(_mm_castpd_si128(_mm_loaddup_pd(x.add(96).cast())), gsl);
            let hi = _mm_multishift_epi64_epi8(shc, _mm_set1_epi32(rd(x.add(104).cast::<i32>())));
            let sc = _mm_ternarylogic_epi64::<0xE4>(lo, hi, m4x);
            let t = _mm512_zextsi128_si512(_mm_gf2p8affine_epi64_epi8::<0xE0>(sc, gm32));
            let s01 = _mm512_permutexvar_epi8(s01i, t);
            let s23 = _mm512_permutexvar_epi8(s23i, t);
            let hm = bcast256(x);
            let hs = _mm512_gf2p8affine_epi64_epi8::<0>(hm, swap);
            let (q0, q1) = (bcast256(x.add(32)), bcast256(x.add(64)));
            // m4 ? first : second, bit by bit.
            let c0 = _mm512_ternarylogic_epi64::<0xE4>(q0, hs, m4);
            let c1 = _mm512_ternarylogic_epi64::<0xE4>(hm, q0, m4);
            let c2 = _mm512_ternarylogic_epi64::<0xE4>(q1, hm, m4);
            let c3 = _mm512_ternarylogic_epi64::<0xE4>(hs, q1, m4);
            let q = [
                _mm512_gf2p8affine_epi64_epi8::<0>(c0, ga),
                _mm512_gf2p8affine_epi64_epi8::<0>(c1, gb),
                _mm512_gf2p8affine_epi64_epi8::<0>(c2, ga),
                _mm512_gf2p8affine_epi64_epi8::<0>(c3, gb),
            ];
            let d = _mm_cvtss_f32(f16x4(rd(x.add(108).cast::<u16>()) as u64));
            for c in 0..C {
                let y = ys[c].add(Q8K3 * i);
                let p: [__m512i; 4] = core::array::from_fn(|j| {
                    _mm512_dpbusd_epi32(ld512(y.add(256 + 64 * j)), q[j], ld512(y.add(64 * j)))
                });
                let sumi = dpwssd(zero, _mm512_packs_epi32(p[0], p[1]), s01);
                let sumi = dpwssd(sumi, _mm512_packs_epi32(p[2], p[3]), s23);
                let sumi = _mm512_srai_epi32::<8>(sumi);
                // d·d_a first, as in the scalar reference.
                let dy = _mm512_set1_ps(d * rd(dys[c].add(i)));
                a[c] = fma231(a[c], dy, _mm512_cvtepi32_ps(sumi));
            }
        }
        for c in 0..C {
            acc[c][0] = a[c];
        }
    }
}

// ---------------------------------------------------------------------------------------
// Q8_0 with the private activation layout "Q8_0 biased": for a row of nb blocks, nb·32 bytes
// of quants + 128 (u8, contiguous), then nb f32 block scales.

/// Bytes of the biased Q8_0 activation of `nb` blocks.
pub(crate) const fn q8_0b_bytes(nb: usize) -> usize {
    36 * nb
}

/// Natural Q8_0 activation blocks (`src`, 34 bytes each) to the biased layout (`dst`).
pub(crate) fn q8_0_to_biased(src: &[u8], dst: &mut [u8]) {
    let nb = src.len() / 34;
    let (q, s) = dst[..36 * nb].split_at_mut(32 * nb);
    for (b, blk) in src.chunks_exact(34).enumerate() {
        for (o, &v) in q[32 * b..32 * b + 32].iter_mut().zip(&blk[2..]) {
            *o = v ^ 0x80;
        }
        let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
        s[4 * b..4 * b + 4].copy_from_slice(&d.to_le_bytes());
    }
}

intel! {
    /// `−128·Σ` of each 4 weight quants (i32 lanes), the start of a biased `vpdpbusd`.
    #[inline]
    unsafe fn q8_0_bias(wq: __m512i) -> __m512i {
        let s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(-128), wq);
        _mm512_sub_epi32(_mm512_setzero_si512(), s)
    }

    /// Quants of weight blocks at `x` and `x + 34` in the two halves.
    #[inline]
    unsafe fn q8_0_wq2(x: *const u8) -> __m512i {
        _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_loadu_si256(x.add(2).cast())),
            _mm256_loadu_si256(x.add(36).cast()),
        )
    }

    /// Q8_0 blocks `i0..i1` (`i0` a multiple of 4) of a row of `nb` · `C` biased Q8_0 rows:
    /// four blocks per step into the two accumulators, then a pair into the first, then a
    /// last odd block in the low half.
    #[inline]
    pub(crate) unsafe fn q8_0<const C: usize>(w: *const u8, i0: usize, i1: usize, nb: usize, ys: [*const u8; C], acc: &mut [Acc; C], pf: usize) {
        let lo8 = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        let hi8 = _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2);
        let mut a0: [__m512; C] = core::array::from_fn(|c| acc[c][0]);
        let mut a1: [__m512; C] = core::array::from_fn(|c| acc[c][1]);
        let scales: [*const f32; C] = core::array::from_fn(|c| ys[c].add(32 * nb).cast::<f32>());
        let mut i = i0;
        while i + 4 <= i1 {
            let x = w.add(34 * i);
            prefetch::<3>(x, pf);
            let w01 = q8_0_wq2(x);
            let w23 = q8_0_wq2(x.add(68));
            let (b01, b23) = (q8_0_bias(w01), q8_0_bias(w23));
            let dw = rd(x.cast::<u16>()) as u64
                | (rd(x.add(34).cast::<u16>()) as u64) << 16
                | (rd(x.add(68).cast::<u16>()) as u64) << 32
                | (rd(x.add(102).cast::<u16>()) as u64) << 48;
            let dw = f16x4(dw);
            for c in 0..C {
                let yq = ys[c].add(32 * i);
                let d = _mm512_castps128_ps512(_mm_mul_ps(dw, _mm_loadu_ps(scales[c].add(i))));
                let p01 = _mm512_dpbusd_epi32(b01, ld512(yq), w01);
                let p23 = _mm512_dpbusd_epi32(b23, ld512(yq.add(64)), w23);
                a0[c] = _mm512_fmadd_ps(_mm512_permutexvar_ps(lo8, d), _mm512_cvtepi32_ps(p01), a0[c]);
                a1[c] = _mm512_fmadd_ps(_mm512_permutexvar_ps(hi8, d), _mm512_cvtepi32_ps(p23), a1[c]);
            }
            i += 4;
        }
        while i < i1 {
            // A pair, or a last single block in the low half (high lanes stay zero).
            let x = w.add(34 * i);
            let two = i + 2 <= i1;
            let (w01, dw, m) = if two {
                let dw = rd(x.cast::<u16>()) as u64 | (rd(x.add(34).cast::<u16>()) as u64) << 16;
                (q8_0_wq2(x), dw, !0u64)
            } else {
                let q = _mm512_castsi256_si512(_mm256_loadu_si256(x.add(2).cast()));
                (_mm512_inserti64x4::<1>(q, _mm256_setzero_si256()), rd(x.cast::<u16>()) as u64, 0xffff_ffff)
            };
            let b01 = q8_0_bias(w01);
            let dw = f16x4(dw);
            for c in 0..C {
                let yq = ys[c].add(32 * i);
                let sv = if two {
                    _mm_castsi128_ps(_mm_loadl_epi64(scales[c].add(i).cast()))
                } else {
                    _mm_load_ss(scales[c].add(i))
                };
                let d = _mm512_castps128_ps512(_mm_mul_ps(dw, sv));
                let p01 = _mm512_dpbusd_epi32(b01, _mm512_maskz_loadu_epi8(m, yq.cast()), w01);
                a0[c] = _mm512_fmadd_ps(_mm512_permutexvar_ps(lo8, d), _mm512_cvtepi32_ps(p01), a0[c]);
            }
            i += if two { 2 } else { 1 };
        }
        for c in 0..C {
            acc[c] = [a0[c], a1[c]];
        }
    }
}

// ---------------------------------------------------------------------------------------
// Q4_0 / Q4_1 / Q5_0 / Q5_1 with the private activation layout "Q8 lanes": for a row of nb
// blocks, nb·32 bytes of quants (signed, contiguous); then for the Q8_0 types (weights with an
// offset, Q4_0: 8, Q5_0: 16) nb·8 i32 `−off·Σ` of each four quants and nb f32 block scales;
// for Q8_1 (Q4_1, Q5_1) nb pairs of f32 (d, s). The weights stay unsigned (0..16 / 0..32),
// so `vpdpbusd` multiplies them with the signed activations directly and the offset is the
// start value of that `vpdpbusd` (no second `vpdpbusd`, every lane an exact partial sum).

/// Bytes of the "Q8 lanes" activation of `nb` blocks: 68 per block for a Q8_0 source with a
/// weight offset (`off` 8 or 16), 40 for a Q8_1 source (`off` 0).
pub(crate) const fn q8_lanes_bytes(nb: usize, off: u8) -> usize {
    if off == 0 {
        40 * nb
    } else {
        68 * nb
    }
}

/// Natural activation block `blk` (Q8_0, 34 bytes, when `off` > 0; Q8_1, 36 bytes, when `off`
/// is 0) as block `b` of a "Q8 lanes" row of `nb` blocks in `dst`.
pub(crate) fn q8_lanes_block(blk: &[u8], b: usize, nb: usize, off: u8, dst: &mut [u8]) {
    let f16 = |i: usize| half::f16::from_le_bytes([blk[i], blk[i + 1]]).to_f32();
    if off == 0 {
        dst[32 * b..32 * b + 32].copy_from_slice(&blk[4..36]);
        let s = &mut dst[32 * nb + 8 * b..32 * nb + 8 * b + 8];
        s[..4].copy_from_slice(&f16(0).to_le_bytes());
        s[4..].copy_from_slice(&f16(2).to_le_bytes());
    } else {
        let q = &blk[2..34];
        dst[32 * b..32 * b + 32].copy_from_slice(q);
        for l in 0..8 {
            let s: i32 = q[4 * l..4 * l + 4].iter().map(|&v| v as i8 as i32).sum();
            let at = 32 * nb + 32 * b + 4 * l;
            dst[at..at + 4].copy_from_slice(&(-(off as i32) * s).to_le_bytes());
        }
        dst[64 * nb + 4 * b..64 * nb + 4 * b + 4].copy_from_slice(&f16(0).to_le_bytes());
    }
}

/// A natural Q8_0 (`off` > 0) or Q8_1 (`off` 0) row `src` as a "Q8 lanes" row in `dst`.
pub(crate) fn q8_to_lanes(src: &[u8], off: u8, dst: &mut [u8]) {
    let bb = if off == 0 { 36 } else { 34 };
    let nb = src.len() / bb;
    for (b, blk) in src.chunks_exact(bb).enumerate() {
        q8_lanes_block(blk, b, nb, off, dst);
    }
}

/// Per 128-bit lane: low nibbles (lanes 0, 2) and high nibbles (lanes 1, 3) of the 16 `qs`
/// bytes broadcast to both lanes of a block's 256-bit half.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,gfni,avx2,fma,f16c")]
unsafe fn gf_lanes() -> __m512i {
    _mm512_set_epi64(GF_HI, GF_HI, GF_LO, GF_LO, GF_HI, GF_HI, GF_LO, GF_LO)
}

intel! {
    /// The 64 unsigned quants (0..16, with `QH` 0..32) of the legacy blocks at `x` (low 256
    /// bits, elements in order) and `x + BW` (high 256 bits; zero unless `two`): one
    /// `vinserti64x4` of two broadcast `qs` loads, one `vgf2p8affineqb`, and for the Q5 types
    /// one `kmovq` of both `qh` words and one masked `vpaddb` of 16.
    #[inline]
    unsafe fn legacy_q2<const BW: usize, const QS: usize, const QH: usize>(x: *const u8, two: bool, gf: __m512i, sixteen: __m512i) -> __m512i {
        let b = |p: *const u8| _mm256_broadcastsi128_si256(_mm_loadu_si128(p.cast()));
        let hi = if two { b(x.add(BW + QS)) } else { _mm256_setzero_si256() };
        let v = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(b(x.add(QS))), hi);
        let q = _mm512_gf2p8affine_epi64_epi8::<0>(v, gf);
        if QH == 0 {
            return q;
        }
        let h0 = rd(x.add(QH).cast::<u32>()) as u64;
        let h = if two { h0 | (rd(x.add(BW + QH).cast::<u32>()) as u64) << 32 } else { h0 };
        _mm512_mask_add_epi8(q, _cvtu64_mask64(h), q, sixteen)
    }

    /// Legacy blocks `i0..i1` (`i0` a multiple of 4) of a row of `nb` · `C` "Q8 lanes" rows:
    /// `BW` bytes per block, `qs` at `QS`, `qh` at `QH` (0: none, Q4), `OFF`: the activation
    /// holds the `vpdpbusd` start values (Q4_0 / Q5_0), `MIN`: the block has a min `m` (f16 at
    /// byte 2) whose `m·s` is added to lanes 1, 3, 5, 7 of the second accumulator (Q4_1 /
    /// Q5_1). Four blocks per step into the two accumulators, then a pair, then a single
    /// block into the first, as in [`q8_0`].
    #[inline]
    unsafe fn legacy<const C: usize, const BW: usize, const QS: usize, const QH: usize, const OFF: bool, const MIN: bool>(w: *const u8, i0: usize, i1: usize, nb: usize, ys: [*const u8; C], acc: &mut [Acc; C], pf: usize) {
        // Scale lanes: [d0·da0, d1·da1, d2·da2, d3·da3] (MIN: with m·s between them).
        let (l0, l1, l2, l3) = if MIN { (0, 2, 4, 6) } else { (0, 1, 2, 3) };
        let lo8 = _mm512_set_epi32(l1, l1, l1, l1, l1, l1, l1, l1, l0, l0, l0, l0, l0, l0, l0, l0);
        let hi8 = _mm512_set_epi32(l3, l3, l3, l3, l3, l3, l3, l3, l2, l2, l2, l2, l2, l2, l2, l2);
        let gf = gf_lanes();
        let sixteen = _mm512_set1_epi8(16);
        let zero = _mm512_setzero_si512();
        let mut a0: [__m512; C] = core::array::from_fn(|c| acc[c][0]);
        let mut a1: [__m512; C] = core::array::from_fn(|c| acc[c][1]);
        // Per column: start values (OFF) and f32 scales.
        let starts: [*const u8; C] = core::array::from_fn(|c| ys[c].add(32 * nb));
        let scales: [*const f32; C] =
            core::array::from_fn(|c| ys[c].add(if MIN { 32 * nb } else { 64 * nb }).cast::<f32>());
        let mut i = i0;
        while i + 4 <= i1 {
            let x = w.add(BW * i);
            prefetch::<2>(x, pf);
            let q01 = legacy_q2::<BW, QS, QH>(x, true, gf, sixteen);
            let q23 = legacy_q2::<BW, QS, QH>(x.add(2 * BW), true, gf, sixteen);
            let dw = if MIN {
                let dm = |k: usize| rd(x.add(k * BW).cast::<u32>()) as u64;
                let lo = dm(0) | dm(1) << 32;
                let hi = dm(2) | dm(3) << 32;
                _mm256_cvtph_ps(_mm_set_epi64x(hi as i64, lo as i64))
            } else {
                let dw = rd(x.cast::<u16>()) as u64
                    | (rd(x.add(BW).cast::<u16>()) as u64) << 16
                    | (rd(x.add(2 * BW).cast::<u16>()) as u64) << 32
                    | (rd(x.add(3 * BW).cast::<u16>()) as u64) << 48;
                _mm256_castps128_ps256(f16x4(dw))
            };
            for c in 0..C {
                let yq = ys[c].add(32 * i);
                let (s01, s23) = if OFF {
                    (ld512(starts[c].add(32 * i)), ld512(starts[c].add(32 * i + 64)))
                } else {
                    (zero, zero)
                };
                let p01 = _mm512_dpbusd_epi32(s01, q01, ld512(yq));
                let p23 = _mm512_dpbusd_epi32(s23, q23, ld512(yq.add(64)));
                let d = if MIN {
                    // [d0·da0, m0·s0, …, d3·da3, m3·s3]: the m·s products go to lanes 1, 3, 5, 7.
                    let d = _mm512_zextps256_ps512(_mm256_mul_ps(dw, _mm256_loadu_ps(scales[c].add(2 * i))));
                    a1[c] = _mm512_mask_add_ps(a1[c], 0xaa, a1[c], d);
                    d
                } else {
                    _mm512_castps128_ps512(_mm_mul_ps(_mm256_castps256_ps128(dw), _mm_loadu_ps(scales[c].add(i))))
                };
                a0[c] = fma231(a0[c], _mm512_permutexvar_ps(lo8, d), _mm512_cvtepi32_ps(p01));
                a1[c] = fma231(a1[c], _mm512_permutexvar_ps(hi8, d), _mm512_cvtepi32_ps(p23));
            }
            i += 4;
        }
        while i < i1 {
            // A pair, or a last single block in the low half (high lanes stay zero).
            let x = w.add(BW * i);
            let two = i + 2 <= i1;
            let q01 = legacy_q2::<BW, QS, QH>(x, two, gf, sixteen);
            let m: u64 = if two { !0 } else { 0xffff_ffff };
            let dw = if MIN {
                let dm = |k: usize| rd(x.add(k * BW).cast::<u32>()) as u64;
                f16x4(if two { dm(0) | dm(1) << 32 } else { dm(0) })
            } else {
                let d0 = rd(x.cast::<u16>()) as u64;
                f16x4(if two { d0 | (rd(x.add(BW).cast::<u16>()) as u64) << 16 } else { d0 })
            };
            for c in 0..C {
                let yq = ys[c].add(32 * i);
                let s01 = if OFF {
                    _mm512_maskz_loadu_epi8(m, starts[c].add(32 * i).cast())
                } else {
                    zero
                };
                let p01 = _mm512_dpbusd_epi32(s01, q01, _mm512_maskz_loadu_epi8(m, yq.cast()));
                let d = if MIN {
                    let sv = if two {
                        _mm_loadu_ps(scales[c].add(2 * i))
                    } else {
                        _mm_castsi128_ps(_mm_loadl_epi64(scales[c].add(2 * i).cast()))
                    };
                    let d = _mm512_zextps128_ps512(_mm_mul_ps(dw, sv));
                    a1[c] = _mm512_mask_add_ps(a1[c], 0x0a, a1[c], d);
                    d
                } else {
                    let sv = if two {
                        _mm_castsi128_ps(_mm_loadl_epi64(scales[c].add(i).cast()))
                    } else {
                        _mm_load_ss(scales[c].add(i))
                    };
                    _mm512_zextps128_ps512(_mm_mul_ps(dw, sv))
                };
                a0[c] = fma231(a0[c], _mm512_permutexvar_ps(lo8, d), _mm512_cvtepi32_ps(p01));
            }
            i += if two { 2 } else { 1 };
        }
        for c in 0..C {
            acc[c] = [a0[c], a1[c]];
        }
    }

    /// Q4_0 blocks `i0..i1` · `C` "Q8 lanes" rows (offset 8).
    #[inline]
    pub(crate) unsafe fn q4_0<const C: usize>(w: *const u8, i0: usize, i1: usize, nb: usize, ys: [*const u8; C], acc: &mut [Acc; C], pf: usize) {
        legacy::<C, 18, 2, 0, true, false>(w, i0, i1, nb, ys, acc, pf)
    }

    /// Q4_1 blocks `i0..i1` · `C` "Q8 lanes" rows (Q8_1 source).
    #[inline]
    pub(crate) unsafe fn q4_1<const C: usize>(w: *const u8, i0: usize, i1: usize, nb: usize, ys: [*const u8; C], acc: &mut [Acc; C], pf: usize) {
        legacy::<C, 20, 4, 0, false, true>(w, i0, i1, nb, ys, acc, pf)
    }

    /// Q5_0 blocks `i0..i1` · `C` "Q8 lanes" rows (offset 16).
    #[inline]
    pub(crate) unsafe fn q5_0<const C: usize>(w: *const u8, i0: usize, i1: usize, nb: usize, ys: [*const u8; C], acc: &mut [Acc; C], pf: usize) {
        legacy::<C, 22, 6, 2, true, false>(w, i0, i1, nb, ys, acc, pf)
    }

    /// Q5_1 blocks `i0..i1` · `C` "Q8 lanes" rows (Q8_1 source).
    #[inline]
    pub(crate) unsafe fn q5_1<const C: usize>(w: *const u8, i0: usize, i1: usize, nb: usize, ys: [*const u8; C], acc: &mut [Acc; C], pf: usize) {
        legacy::<C, 24, 8, 4, false, true>(w, i0, i1, nb, ys, acc, pf)
    }
}

// ---------------------------------------------------------------------------------------
// GEMV / GEMM drivers and the safe entry points (stored only in the table
// `x86::avx512_table` builds after detecting [`FEATURES`]; the table's callers check row and
// activation lengths).

/// A kernel of this module as a function pointer type.
type KernFn<const C: usize> =
    unsafe fn(*const u8, usize, usize, usize, [*const u8; C], &mut [Acc; C], usize);

/// Software prefetch distance of the GEMV weight stream in bytes (0: none), from
/// `GQ_KERNELS_PREFETCH` (read once; default [`PREFETCH_DEFAULT`]). See [`prefetch`] for the
/// two distances it sets.
fn prefetch_distance() -> usize {
    static PF: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PF.get_or_init(|| {
        std::env::var("GQ_KERNELS_PREFETCH")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(PREFETCH_DEFAULT)
    })
}

/// Default GEMV prefetch distance, bytes (docs/kernels.md, "Intel", points 3 and 7: one
/// thread's Q4_K GEMV went from 50 % to 83 % of the read bandwidth with one T0 prefetch
/// 4 KiB ahead, and to 88–91 % with the two-level prefetch of [`prefetch`] at 8 KiB).
pub(crate) const PREFETCH_DEFAULT: usize = 8192;

/// Prefetch distance, bytes, of the float and TurboQuant dots on the Intel table: one T0
/// prefetch per line this far ahead (their one-thread GEMVs reach 95–100 % of the read
/// bandwidth with it on the 2-vCPU Xeon; TurboQuant's is bound by its decode there).
pub(crate) const PREFETCH_T0: usize = 4096;

/// Prefetches `N` cache lines from `x + pf` into L2 (hint T2) and the same `N` lines from
/// `x + pf / 4` into L1 (hint T0); nothing when `pf` is 0. One level alone leaves a single
/// core below its read bandwidth on Intel: a T0 prefetch holds one of the core's few L1
/// fill buffers for the whole memory latency, so far-ahead T0 prefetches cap the lines in
/// flight, and near ones come too late; the far T2 prefetch brings the line to L2 and the near
/// T0 one then only waits for L2. Prefetches never fault, so running past the end of the row
/// is harmless.
#[inline(always)]
fn prefetch<const N: usize>(x: *const u8, pf: usize) {
    if pf != 0 {
        let far = x.wrapping_add(pf);
        let near = x.wrapping_add(pf / 4);
        for k in 0..N {
            // SAFETY: a prefetch is a hint that cannot fault; the addresses are only formed
            // with wrapping arithmetic.
            unsafe {
                _mm_prefetch::<_MM_HINT_T2>(far.wrapping_add(64 * k).cast());
                _mm_prefetch::<_MM_HINT_T0>(near.wrapping_add(64 * k).cast());
            }
        }
    }
}

/// One weight row · one activation row.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,gfni,avx2,fma,f16c")]
unsafe fn gemv_row(k: KernFn<1>, w: &[u8], nb: usize, a: &[u8]) -> f32 {
    let mut acc = [[_mm512_setzero_ps(); 2]; 1];
    k(
        w.as_ptr(),
        0,
        nb,
        nb,
        [a.as_ptr()],
        &mut acc,
        prefetch_distance(),
    );
    finish(acc[0])
}

/// Rows `w` (`rb` bytes each, `nb` blocks) · activations `acts` (`n` rows of `ab` bytes):
/// `put(r, j, y)` receives every result. Columns are taken in blocks whose activations fit in
/// L2 (at most [`COL_BLOCK_BYTES`]); within a block, tiles of [`TR`] rows × [`TC`] columns walk
/// K in chunks of [`KB`] blocks (the tile's weights then come from L1/L2 for every column group
/// of the block, the activation chunk from L1 for every row of the tile); columns left over
/// (n mod TC) take the one-column kernel.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,gfni,avx2,fma,f16c")]
unsafe fn gemm_rows(
    k1: KernFn<1>,
    k8: KernFn<TC>,
    w: &[u8],
    rb: usize,
    nb: usize,
    acts: &[u8],
    ab: usize,
    put: &mut dyn FnMut(usize, usize, f32),
) {
    let rows = w.len() / rb;
    let n = acts.len() / ab;
    let zero = [_mm512_setzero_ps(); 2];
    let ntc = n / TC * TC;
    let (kb, cbb) = gemm_blocking();
    let cb = ((cbb / ab.max(1)) / TC).max(1) * TC;
    let mut jb = 0;
    while jb < ntc {
        let je = (jb + cb).min(ntc);
        let mut r0 = 0;
        while r0 < rows {
            let r1 = (r0 + TR).min(rows);
            let mut j0 = jb;
            while j0 < je {
                let ys: [*const u8; TC] =
                    core::array::from_fn(|c| acts.as_ptr().add((j0 + c) * ab));
                let mut acc = [[zero; TC]; TR];
                let mut i = 0;
                while i < nb {
                    let i1 = (i + kb).min(nb);
                    for r in r0..r1 {
                        k8(w.as_ptr().add(r * rb), i, i1, nb, ys, &mut acc[r - r0], 0);
                    }
                    i = i1;
                }
                for r in r0..r1 {
                    for c in 0..TC {
                        put(r, j0 + c, finish(acc[r - r0][c]));
                    }
                }
                j0 += TC;
            }
            r0 = r1;
        }
        jb = je;
    }
    for j in ntc..n {
        let a = &acts[j * ab..(j + 1) * ab];
        for r in 0..rows {
            put(r, j, gemv_row(k1, &w[r * rb..(r + 1) * rb], nb, a));
        }
    }
}

/// Activation bytes per GEMM column block (fits in L2 with the row tile).
const COL_BLOCK_BYTES: usize = 768 << 10;

/// The GEMM's K chunk (blocks, a multiple of 4) and column-block bytes: [`KB`] and
/// [`COL_BLOCK_BYTES`] unless `GQ_GEMM_KB` / `GQ_GEMM_CB_KIB` say otherwise (for tuning runs;
/// results do not depend on them).
fn gemm_blocking() -> (usize, usize) {
    static B: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();
    *B.get_or_init(|| {
        let get = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
        };
        let kb = get("GQ_GEMM_KB").map_or(KB, |v| (v.max(4) / 4) * 4);
        let cb = get("GQ_GEMM_CB_KIB").map_or(COL_BLOCK_BYTES, |v| v.max(1) << 10);
        (kb, cb)
    })
}

/// GEMV and GEMM entry points of one weight type.
macro_rules! entries {
    ($gemv:ident, $gemm:ident, $kern:ident, $wb:expr) => {
        pub(crate) fn $gemv(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: see the section comment: features detected, lengths checked by callers.
            unsafe { gemv_row($kern::<1>, w, w.len() / $wb, a) }
        }
        pub(crate) fn $gemm(
            w: &[u8],
            rb: usize,
            acts: &[u8],
            ab: usize,
            put: &mut dyn FnMut(usize, usize, f32),
        ) {
            // SAFETY: as above.
            unsafe { gemm_rows($kern::<1>, $kern::<TC>, w, rb, rb / $wb, acts, ab, put) }
        }
    };
}

entries!(q4_k_gemv, q4_k_gemm, q4_k, 144);
entries!(q6_k_gemv, q6_k_gemm, q6_k, 210);
entries!(q8_0_gemv, q8_0_gemm, q8_0, 34);
entries!(q2_k_gemv, q2_k_gemm, q2_k, 84);
entries!(q3_k_gemv, q3_k_gemm, q3_k, 110);
entries!(q5_k_gemv, q5_k_gemm, q5_k, 176);
entries!(q4_0_gemv, q4_0_gemm, q4_0, 18);
entries!(q4_1_gemv, q4_1_gemm, q4_1, 20);
entries!(q5_0_gemv, q5_0_gemm, q5_0, 22);
entries!(q5_1_gemv, q5_1_gemm, q5_1, 24);

/// Legacy weights · natural Q8_0 / Q8_1 activation (`Kernels::vec_dot`): converts to "Q8
/// lanes" (`off` as for [`q8_lanes_bytes`]) and runs `gemv`, so the result is bit-identical
/// to the GEMV's.
fn lanes_dot(w: &[u8], a: &[u8], off: u8, gemv: fn(&[u8], &[u8]) -> f32) -> f32 {
    let nb = a.len() / if off == 0 { 36 } else { 34 };
    let mut v = vec![0u8; q8_lanes_bytes(nb, off)];
    q8_to_lanes(a, off, &mut v);
    gemv(w, &v)
}

/// Q4_0 · natural Q8_0 activation (`Kernels::vec_dot`), bit-identical to the GEMV.
pub(crate) fn q4_0_dot(w: &[u8], a: &[u8]) -> f32 {
    lanes_dot(w, a, 8, q4_0_gemv)
}

/// Q4_1 · natural Q8_1 activation (`Kernels::vec_dot`), bit-identical to the GEMV.
pub(crate) fn q4_1_dot(w: &[u8], a: &[u8]) -> f32 {
    lanes_dot(w, a, 0, q4_1_gemv)
}

/// Q5_0 · natural Q8_0 activation (`Kernels::vec_dot`), bit-identical to the GEMV.
pub(crate) fn q5_0_dot(w: &[u8], a: &[u8]) -> f32 {
    lanes_dot(w, a, 16, q5_0_gemv)
}

/// Q5_1 · natural Q8_1 activation (`Kernels::vec_dot`), bit-identical to the GEMV.
pub(crate) fn q5_1_dot(w: &[u8], a: &[u8]) -> f32 {
    lanes_dot(w, a, 0, q5_1_gemv)
}

/// Q5_K · natural Q8_K activation (`Kernels::vec_dot`): converts to Q8_K-v and runs the GEMV
/// kernel, so the result is bit-identical to the GEMV's.
pub(crate) fn q5_k_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut v = a.to_vec();
    q8_k_to_v(&mut v);
    q5_k_gemv(w, &v)
}

/// Q3_K · natural Q8_K activation (`Kernels::vec_dot`): converts to Q8_K-3 and runs the GEMV
/// kernel, so the result is bit-identical to the GEMV's.
pub(crate) fn q3_k_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut v = vec![0u8; q8_k3_bytes(a.len() / Q8K)];
    q8_k_to_3(a, &mut v);
    q3_k_gemv(w, &v)
}

/// Q4_K · natural Q8_K activation (`Kernels::vec_dot`): converts to Q8_K-v and runs the GEMV
/// kernel, so the result is bit-identical to the GEMV's.
pub(crate) fn q4_k_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut v = a.to_vec();
    q8_k_to_v(&mut v);
    q4_k_gemv(w, &v)
}

/// Q8_0 · natural Q8_0 activation (`Kernels::vec_dot`): converts to the biased layout and
/// runs the GEMV kernel, so the result is bit-identical to the GEMV's.
pub(crate) fn q8_0_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut b = vec![0u8; q8_0b_bytes(a.len() / 34)];
    q8_0_to_biased(a, &mut b);
    q8_0_gemv(w, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Q8_K-3 conversion in place equals the one between buffers, and holds the quants,
    /// `−4·Σ` per four quants and the scale where [`q3_k`] reads them.
    #[test]
    fn q8_k_to_3_layout() {
        let nb = 3;
        let mut seed = 0x1234_5678_9abc_def0u64;
        let natural: Vec<u8> = (0..nb * Q8K)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let mut out = vec![0u8; q8_k3_bytes(nb)];
        q8_k_to_3(&natural, &mut out);
        let mut inplace = vec![0u8; q8_k3_bytes(nb)];
        inplace[..nb * Q8K].copy_from_slice(&natural);
        q8_k_to_3_in_place(&mut inplace);
        assert_eq!(out, inplace);
        for b in 0..nb {
            let (s, d) = (&natural[Q8K * b..], &out[Q8K3 * b..]);
            assert_eq!(&d[..256], &s[4..260]);
            assert_eq!(&out[Q8K3 * nb + 4 * b..][..4], &s[..4]);
            for j in 0..64 {
                let want: i32 = -4 * (0..4).map(|t| s[4 + 4 * j + t] as i8 as i32).sum::<i32>();
                let got = i32::from_le_bytes(d[256 + 4 * j..260 + 4 * j].try_into().unwrap());
                assert_eq!(got, want, "block {b} lane {j}");
            }
        }
    }
}
