//! AVX-512 kernels for cores with two 512-bit vector ports (Intel Sapphire / Emerald / Granite
//! Rapids): GEMV and GEMM kernels for Q4_K, Q6_K and Q8_0. A kernel takes one weight row, a
//! range of its blocks and `C` activation rows, and adds into per-column accumulators (C = 1
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
//!   by `Σ` per 32 quants (as f32, exact), so the min term is one multiply by `d_a` and one
//!   fused multiply-add of 8 lanes (`−dmin·m` prepared per weight block) into the same
//!   accumulator (`d_a·Σ` stored instead overflowed f32 for activations above ~10^34 where the
//!   scalar reference, which scales `dmin·d_a` first, does not: a fuzz finding,
//!   fuzz/regressions/vec_dot/q4k-intel-activation-group-sum-overflows);
//! - Q6_K: the `−32` offset enters the integer sum through one `vpdpwssd` of the group sums
//!   with `−32·scale`; the lanes then hold parts that cancel only in their total, so each
//!   block's sum is reduced to one integer before its float step (kept in f32 lanes, the parts
//!   overflowed or cancelled the result away: a fuzz finding);
//! - Q8_0: the activation is prepared once per call in a private layout (quants + 128, i.e.
//!   unsigned, contiguous; f32 block scales apart), so `vpdpbusd` takes activation × weight
//!   directly, with `−128·Σw` per lane (from one `vpdpbusd` on the weights) as the starting
//!   value: no sign tricks, no ±127 precondition, no activation inserts.
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
/// high). Kept in general-purpose registers on purpose: the vector ports are the bottleneck.
#[inline(always)]
fn k45_unpack(p: *const u8) -> (u64, u64) {
    // SAFETY: callers pass a pointer to the 12 scale bytes of a block.
    let (lo8, hi4) = unsafe { (rd(p.cast::<u64>()), rd(p.add(8).cast::<u32>()) as u64) };
    let lo = lo8 & 0x3f3f_3f3f_3f3f_3f3f;
    let t = hi4 | (hi4 >> 4) << 32;
    let hi = (t & 0x0f0f_0f0f_0f0f_0f0f) | ((lo8 >> 2) & 0x3030_3030_3030_3030);
    (lo, hi)
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
            let (lo, hi) = k45_unpack(x.add(4));
            let t = _mm512_zextsi128_si512(_mm_set_epi64x(hi as i64, lo as i64));
            let s01 = _mm512_permutexvar_epi8(s01i, t);
            let s23 = _mm512_permutexvar_epi8(s23i, t);
            // −dmin·m_j in lanes 0..8, zero above.
            let m32 = _mm256_permutexvar_epi8(mi, _mm512_castsi512_si256(t));
            let dm = f16x2(x);
            let negdmin = _mm256_sub_ps(_mm256_setzero_ps(), _mm256_broadcastss_ps(_mm_movehdup_ps(dm)));
            let u = _mm512_zextps256_ps512(_mm256_mul_ps(negdmin, _mm256_cvtepi32_ps(m32)));
            let d = _mm512_broadcastss_ps(dm);
            let q: [__m512i; 4] = core::array::from_fn(|j| {
                _mm512_gf2p8affine_epi64_epi8::<0>(bcast256(x.add(16 + 32 * j)), gf)
            });
            for c in 0..C {
                let y = ys[c].add(Q8K * i);
                let yq = y.add(4);
                let p: [__m512i; 4] =
                    core::array::from_fn(|j| _mm512_dpbusd_epi32(zero, q[j], ld512(yq.add(64 * j))));
                let sumi = _mm512_dpwssd_epi32(zero, _mm512_packs_epi32(p[0], p[1]), s01);
                let sumi = _mm512_dpwssd_epi32(sumi, _mm512_packs_epi32(p[2], p[3]), s23);
                let yd = _mm512_set1_ps(rd(y.cast::<f32>()));
                let dy = _mm512_mul_ps(d, yd);
                a[c] = _mm512_fmadd_ps(dy, _mm512_cvtepi32_ps(sumi), a[c]);
                let v = _mm512_zextps256_ps512(_mm256_loadu_ps(y.add(260).cast()));
                a[c] = _mm512_fmadd_ps(_mm512_mul_ps(u, yd), v, a[c]);
            }
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
// GEMV / GEMM drivers and the safe entry points (stored only in the table
// `x86::avx512_table` builds after detecting [`FEATURES`]; the table's callers check row and
// activation lengths).

/// A kernel of this module as a function pointer type.
type KernFn<const C: usize> =
    unsafe fn(*const u8, usize, usize, usize, [*const u8; C], &mut [Acc; C], usize);

/// Software prefetch distance of the GEMV weight stream in bytes (0: none), from
/// `GQ_KERNELS_PREFETCH` (read once; default [`PREFETCH_DEFAULT`]).
fn prefetch_distance() -> usize {
    static PF: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PF.get_or_init(|| {
        std::env::var("GQ_KERNELS_PREFETCH")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(PREFETCH_DEFAULT)
    })
}

/// Default GEMV prefetch distance, bytes (docs/kernels.md, "Intel": on the 16-core host one
/// thread's Q4_K GEMV went from 50 % to 83 % of the read bandwidth with 4 KiB, 16 threads from
/// 74 % to 89 %).
pub(crate) const PREFETCH_DEFAULT: usize = 4096;

/// Prefetches `N` cache lines from `x + pf` (nothing when `pf` is 0). Prefetches never fault,
/// so running past the end of the row is harmless.
#[inline(always)]
fn prefetch<const N: usize>(x: *const u8, pf: usize) {
    if pf != 0 {
        for k in 0..N {
            // SAFETY: a prefetch is a hint that cannot fault; the address is only formed with
            // wrapping arithmetic.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(x.wrapping_add(pf + 64 * k).cast()) };
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
