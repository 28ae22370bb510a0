//! AVX2 dot products of the TurboQuant trellis types with their prepared activation. AVX2 has
//! no byte permutes over more than 16 entries, so each block's pairs are decoded by scalar code
//! (subsets from the branch bits as 64-bit masks, one table load per pair) into signed bytes in
//! the activation's layout; the products are then summed with `vpmaddubsw`/`vpmaddwd` per group
//! of 32 coordinates, and the group sums are scaled and added in the scalar reference's order,
//! so the result is bit-identical to it. Rows whose column block is below 128 take the scalar
//! reference.

// Index loops over groups read better than iterator chains here.
#![allow(clippy::needless_range_loop)]

use crate::formats::tq::{block_for, scale_of};
use crate::formats::tq_tables::pair_table;
use crate::formats::tq_tcq::{qjl_coef, spec, TcqSpec};
use crate::GgmlType;
use core::arch::x86_64::*;

/// The `target_feature` list of this module.
pub const FEATURES: &str = "avx2,fma";

/// Decodes one block's pairs into signed bytes: the x value of pair `p` at `xs[p]`, the y value
/// at `ys[p]`.
#[inline(always)]
fn decode_block(s: &TcqSpec, b: usize, blk: &[u8], xs: &mut [i8], ys: &mut [i8]) {
    let np = b / 2;
    let hdr = s.header_bytes(b);
    let br = &blk[hdr..hdr + b / 16];
    let fields = &blk[hdr + b / 16..];
    let (hi, lo) = (pair_table(s.hi), pair_table(s.lo));
    let first_lo = np - s.n_lo(b);
    let mut prev = 0u64;
    let mut pos = 0usize; // bit position in `fields`
    for t in 0..np.div_ceil(64) {
        let mut wb = [0u8; 8];
        let nb = (np - 64 * t).min(64) / 8;
        wb[..nb].copy_from_slice(&br[8 * t..8 * t + nb]);
        let bw = u64::from_le_bytes(wb);
        let z0 = (bw << 1) | (prev >> 63);
        let z1 = bw ^ ((bw << 2) | (prev >> 62)) ^ ((bw << 3) | (prev >> 61));
        prev = bw;
        for i in 0..(np - 64 * t).min(64) {
            let p = 64 * t + i;
            let (w, tab) = if p >= first_lo {
                (s.lo, lo)
            } else {
                (s.hi, hi)
            };
            let fw = w - 1;
            // The field: up to 8 bits at bit `pos` (two bytes read, within the block).
            let byte = pos >> 3;
            let two = fields[byte] as u32 | (*fields.get(byte + 1).unwrap_or(&0) as u32) << 8;
            let f = (two >> (pos & 7)) & ((1 << fw) - 1);
            pos += fw as usize;
            let z = (((z0 >> i) & 1) | ((z1 >> i) & 1) << 1) as u32;
            let k = (f ^ (z << (w - 3))) as usize;
            let q = tab[k];
            xs[p] = if (f >> (w - 3)) & 1 == 1 { -q[0] } else { q[0] };
            ys[p] = if (f >> (w - 2)) & 1 == 1 { -q[1] } else { q[1] };
        }
    }
}

/// `Σ w[i]·a[i]` over 32 bytes, as 8 i32 lanes of 4 products each (lanes 0..4: bytes 0..16).
#[inline(always)]
unsafe fn dot32(w: *const i8, a: *const i8) -> __m256i {
    let wv = _mm256_loadu_si256(w.cast());
    let av = _mm256_loadu_si256(a.cast());
    let p = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(av, wv));
    _mm256_madd_epi16(p, _mm256_set1_epi16(1))
}

/// The two halves' sums of 8 i32 lanes: lanes 0..4 and 4..8.
#[inline(always)]
unsafe fn halves(v: __m256i) -> (i32, i32) {
    let mut l = [0i32; 8];
    _mm256_storeu_si256(l.as_mut_ptr().cast(), v);
    (l[0] + l[1] + l[2] + l[3], l[4] + l[5] + l[6] + l[7])
}

/// The exact integer sums of one chunk of 128 coordinates, per group of 32: `ev`/`od` the
/// signed weight bytes of the even / odd coordinates (64 each), `a` the chunk's activation.
#[inline(always)]
unsafe fn chunk_groups(ev: *const i8, od: *const i8, a: *const i8) -> [i32; 4] {
    let s0 = _mm256_add_epi32(dot32(ev, a), dot32(od, a.add(64)));
    let s1 = _mm256_add_epi32(dot32(ev.add(32), a.add(32)), dot32(od.add(32), a.add(96)));
    let (g0, g1) = halves(s0);
    let (g2, g3) = halves(s1);
    [g0, g1, g2, g3]
}

#[inline(always)]
fn f32_at(a: &[u8], o: usize) -> f32 {
    f32::from_le_bytes([a[o], a[o + 1], a[o + 2], a[o + 3]])
}

/// The dot product of one row of a trellis type with its prepared activation.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `w` is whole rows of `ty` and `a` its activation.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_tcq(ty: GgmlType, w: &[u8], a: &[u8]) -> f32 {
    let s = spec(ty);
    let n = w.len() * 512 / s.bpw64;
    let b = match block_for(ty, n) {
        Some(b) if b >= 128 => b,
        _ => return crate::formats::tq_tcq::dot(ty, w, a),
    };
    let bb = s.block_bytes(b);
    let m = s.qjl_m(b);
    let one = n + n / 8;
    let ap = a.as_ptr().cast::<i8>();
    let mut xs = [0i8; 128];
    let mut ys = [0i8; 128];
    let mut sg = [0i8; 128];
    let mut total = 0f32;
    for (j, blk) in w.chunks_exact(bb).enumerate() {
        if blk[0] == 0 {
            continue;
        }
        decode_block(s, b, blk, &mut xs, &mut ys);
        let mut gsum = [0i32; 8];
        let mut qsum = [0i32; 8];
        let qjl = s.qjl && blk[1] != 0;
        for t in 0..b / 128 {
            let c = (j * b) / 128 + t;
            let g4 = chunk_groups(
                xs.as_ptr().add(64 * t),
                ys.as_ptr().add(64 * t),
                ap.add(128 * c),
            );
            gsum[4 * t..4 * t + 4].copy_from_slice(&g4);
            if qjl {
                // σ of the block's coordinates 128t … 128t + 127 (0 from m on), de-interleaved.
                for i in 0..128 {
                    let ci = 128 * t + i;
                    sg[(i & 1) * 64 + i / 2] = if ci >= m {
                        0
                    } else if (blk[2 + ci / 8] >> (ci % 8)) & 1 == 1 {
                        -1
                    } else {
                        1
                    };
                }
                let q4 = chunk_groups(sg.as_ptr(), sg.as_ptr().add(64), ap.add(one + 128 * c));
                qsum[4 * t..4 * t + 4].copy_from_slice(&q4);
            }
        }
        // The reference's order: groups in order, then the block scale.
        let g0 = (j * b) / 32;
        let mut acc = 0f32;
        for g in 0..b / 32 {
            acc += gsum[g] as f32 * f32_at(a, n + 4 * (g0 + g));
        }
        let d = scale_of(blk[0]);
        total += d * acc;
        if qjl {
            let mut sacc = 0f32;
            for g in 0..m.div_ceil(32) {
                sacc += qsum[g] as f32 * f32_at(a, one + n + 4 * (g0 + g));
            }
            total += qjl_coef(b, m, d, blk[1]) * sacc;
        }
    }
    total
}

macro_rules! dots {
    ($($name:ident: $ty:expr;)*) => {$(
        /// The AVX2 dot product of one row of this type with its prepared activation.
        ///
        /// # Safety
        /// The CPU must have AVX2 and FMA; the lengths are the caller's to check.
        pub(crate) unsafe fn $name(w: &[u8], a: &[u8]) -> f32 {
            dot_tcq($ty, w, a)
        }
    )*};
}

dots! {
    dot_tqt4_5: GgmlType::TQT4_5;
    dot_tqt3_375: GgmlType::TQT3_375;
    dot_tqt2_5: GgmlType::TQT2_5;
    dot_tqj4_5: GgmlType::TQJ4_5;
    dot_tqj3_375: GgmlType::TQJ3_375;
    dot_tqj2_5: GgmlType::TQJ2_5;
}
