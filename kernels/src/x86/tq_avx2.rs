//! AVX2 dot products and GEMM of the TurboQuant trellis types with their prepared activation.
//!
//! Block size 256 (with BMI2, which every AVX2 CPU in practice has): the pairs are decoded in
//! vectors of 32, one chunk after the other. The fields come 8 at a time from one `pdep` (one
//! field per byte; TQT4_5's 8-bit hi fields by one vector load); the subsets `z` from the
//! branch bits as 64-bit masks (docs/turboquant.md §7), spread into byte masks. The table index
//! `k = f ⊕ z << (w − 3)` is never formed whole: its low nibble is the `vpshufb` index, its
//! bits 4… are `f` shifted to bit 7 with the subset masks XORed in; `|X_k|` and `|Y_k|` are
//! looked up with `vpshufb` (16 entries per shuffle; 32…256 entries: one shuffle per 16, table
//! pairs joined by the shuffle's own zeroing (bit 4 of `k` at the index's bit 7) and an OR, then
//! a `vpblendvb` tree on bits 5…, depth-first in `asm!` so that nothing spills), and the signs
//! are the fields' top two bits moved to bit 7 (`vpsignb` operands). The magnitudes meet the
//! activation as `vpmaddubsw(|x|, vpsignb(a, sign))`, summed by `vpmaddwd` per group of 32
//! coordinates (the bytes in the activation's even/odd layout). The QJL signs of the TQJ types are
//! split into the even/odd order by `pext`, turned into byte masks, and negate the second
//! activation row (`vpmaddubsw` against ones). The exact integer group sums are scaled and
//! added in the scalar reference's order (a batch of blocks' vector work first, then their
//! float sums), so every result is bit-identical to `formats::tq_tcq::dot`. The GEMM decodes
//! each row once per column block and multiplies the decoded row with every column of the
//! block (the same bits as the dot product per pair); from `GEMM_TILE_MIN_N` columns the TQT*
//! types of 256-blocks take the register-tiled GEMM instead (`x86::tile`, `x86::tile_avx2`),
//! whose unpackers `tile_tqt4_5` and siblings (end of this module) turn this decode into the
//! AVX-512 unpackers' tile bytes (not bit-identical to the dot product, as on AVX-512). Block
//! size 128 decodes each pair by scalar code into signed bytes (then `vpmaddubsw`); rows whose
//! column block is below 128 take the scalar reference.
//!
//! Tried and dropped: `vpgatherdd` of 8 decoded pairs (i16 x, y) from tables indexed by
//! `f | z << (w−1)` with `vpmaddwd` on the widened activation — one ymm gather measured ~22
//! cycles on the eleventh session's Zen 3 machine (AMD EPYC, 2 vCPU), and the kernel was slower
//! than the `vpshufb` decode at the same stage (in cache TQT4_5 133 against 116 ns per block,
//! TQT2_5 87 against 49). Also dropped (thirteenth session, same machine, docs/turboquant.md
//! §16): looking the pairs up by scalar code — byte indices from `pdep` of the fields and the
//! subsets, two pairs per `or` of two loads from pre-shifted `u32` tables (for widths ≤ 7 the
//! signed pair at `f | z << (w−1)`), stored one block ahead of the vector dot and split into
//! even/odd by one `vpshufb` and a 64-bit unpack — costs ≈ 42 ns per block at any width (~6
//! instructions per pair), the same as TQT4_5's whole `vpshufb` tree (TQT4_5 75.7 against 79.7
//! ns best in cache, TQT2_5 77 against 35); a hybrid (the last 32 pairs scalar) took the sum of
//! its parts, and a tree without `vpblendvb` (indices `k − 16i` saturated by `0x70`, results
//! ORed) was a wash. Sixteenth session (same machine, docs/turboquant.md §16): looking two
//! chunks up per table load (half the table loads, but the two trees' masks spill), the 8 lo
//! pairs of a mixed chunk by one lookup (x tables in the low lane, y in the high one, then
//! lane permutes) and the batch's float sums transposed into vectors were no faster.

// Index loops over groups read better than iterator chains here.
#![allow(clippy::needless_range_loop)]

use crate::formats::tq::{block_for, scale_of};
use crate::formats::tq_tables::pair_table;
use crate::formats::tq_tcq::{qjl_coef, spec, TcqSpec};
use crate::GgmlType;
use core::arch::x86_64::*;
use std::sync::OnceLock;

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

/// The dot product of one row of a trellis type with its prepared activation, any block size
/// from 128 on: pairs decoded by scalar code (the path of block sizes other than 256).
///
/// # Safety
/// The CPU must have AVX2 and FMA; `w` is whole rows of `ty` and `a` its activation.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_any(ty: GgmlType, w: &[u8], a: &[u8]) -> f32 {
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

// ------------------------------------------------------------------------------------------------
// Block size 256: a vector decode (fields by `pdep`, table lookups by `vpshufb`), the dot
// products, and a GEMM that decodes each row once per column block.

/// Pairs per block of 256.
const NP: usize = 128;

/// Whether the CPU has BMI2 (`pdep`/`pext`), which the block-256 path needs on top of AVX2.
#[inline]
fn has_bmi2() -> bool {
    std::arch::is_x86_feature_detected!("bmi2")
}

/// The magnitude tables of width `w` as `vpshufb` tables of 16 entries (in both lanes): the
/// `|X_k|` tables, then the `|Y_k|` tables, `max(2^(w−1) / 16, 1)` each.
fn mag_tables(w: u32) -> &'static [[u8; 32]] {
    static T: [OnceLock<Vec<[u8; 32]>>; 10] = [const { OnceLock::new() }; 10];
    T[w as usize].get_or_init(|| {
        let tab = pair_table(w);
        let nt = tab.len().div_ceil(16);
        let mut v = vec![[0u8; 32]; 2 * nt];
        for (k, q) in tab.iter().enumerate() {
            for c in 0..2 {
                let t = &mut v[c * nt + k / 16];
                t[k % 16] = q[c] as u8;
                t[16 + k % 16] = q[c] as u8;
            }
        }
        v
    })
}

/// The table index of 32 pairs of one width in the form the lookup takes, and their signs:
/// `lo` the index's low nibble (the `vpshufb` index), `m[i]` bit `4 + i` of the index at bit 7
/// (the `vpblendvb` masks), `sx` / `sy` the signs of x / y (bit 7 set: negative; never 0, so
/// `x = vpsignb(|x|, sx)` and `x·a = |x|·vpsignb(a, sx)`).
struct Idx {
    lo: __m256i,
    m: [__m256i; 4],
    sx: __m256i,
    sy: __m256i,
}

/// Each byte shifted left by `s` (bits 7 − s … 0 move up; only bit 7 and "non-zero" matter to
/// the callers): byte adds for small shifts, else a 16-bit shift (whose carries into the
/// neighbouring byte land below its bit `s`).
#[inline(always)]
unsafe fn shl_bytes(v: __m256i, s: u32) -> __m256i {
    match s {
        0 => v,
        1 => _mm256_add_epi8(v, v),
        2 | 3 => {
            let d = _mm256_add_epi8(v, v);
            let q = _mm256_add_epi8(d, d);
            if s == 3 {
                _mm256_add_epi8(q, q)
            } else {
                q
            }
        }
        _ => _mm256_sll_epi16(v, _mm_cvtsi32_si128(s as i32)),
    }
}

/// [`Idx`] of 32 pairs of width `W`: `f` their fields (one per byte), `m0` / `m1` the low /
/// high subset bits as byte masks (0xFF: set; pair `i` at byte `i`). The table index
/// `k = f ⊕ z << (W − 3)` is never formed whole: its bits 4 and up are `f` shifted to bit 7
/// with the subset masks XORed in, its low nibble `f`'s (with the subset bits below bit 4).
#[inline(always)]
unsafe fn index<const W: u32>(f: __m256i, m0: __m256i, m1: __m256i) -> Idx {
    let (b0, b1) = ((1u32 << (W - 3)) as u8 as i8, (2u32 << (W - 3)) as u8 as i8);
    let mut m = [_mm256_setzero_si256(); 4];
    for (i, mi) in m.iter_mut().enumerate() {
        let bit = 4 + i as u32;
        if bit > W - 2 {
            break;
        }
        let v = shl_bytes(f, 7 - bit);
        *mi = if bit == W - 3 {
            _mm256_xor_si256(v, m0)
        } else if bit == W - 2 {
            _mm256_xor_si256(v, m1)
        } else {
            v
        };
    }
    let mut lo = if W >= 6 {
        _mm256_and_si256(f, _mm256_set1_epi8(0x0F))
    } else {
        f
    };
    if W - 3 < 4 {
        lo = _mm256_xor_si256(lo, _mm256_and_si256(m0, _mm256_set1_epi8(b0)));
    }
    if W - 2 < 4 {
        lo = _mm256_xor_si256(lo, _mm256_and_si256(m1, _mm256_set1_epi8(b1)));
    }
    let one = _mm256_set1_epi8(1);
    Idx {
        lo,
        m,
        sx: _mm256_or_si256(shl_bytes(f, 10 - W), one),
        sy: _mm256_or_si256(shl_bytes(f, 9 - W), one),
    }
}

/// `nt` 16-entry tables at `t` (each in both lanes) looked up by the index whose low nibble is
/// `lo` and whose bits 4, 5, 6, 7 are bit 7 of `m[0]`, `m[1]`, `m[2]`, `m[3]`: per table one
/// load and one `vpshufb`. Tables `2i` and `2i + 1` are shuffled with bit 4 of the index at the
/// shuffle index's bit 7 (`c0`), and inverted (`c1`), so each gives zeros where the other
/// applies and an OR joins them; bits 5, 6, 7 select by a `vpblendvb` tree, blended as the
/// pairs come (depth-first, at most 5 vectors of its own live). Written as `asm!` so that the
/// compiler keeps this order (left to itself it shuffles ahead and spills the results to the
/// stack); not `pure`, so the lookups and [`keep`] stay in program order.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lookup(t: *const [u8; 32], nt: usize, lo: __m256i, m: &[__m256i; 4]) -> __m256i {
    if nt == 1 {
        return _mm256_shuffle_epi8(_mm256_loadu_si256(t.cast()), lo);
    }
    let hb = _mm256_set1_epi8(-128);
    let c0 = _mm256_or_si256(lo, _mm256_and_si256(m[0], hb));
    let c1 = _mm256_xor_si256(c0, hb);
    // One table pair into `d`: the table at byte `a` shuffled by `c0`, OR the one at `b` by `c1`.
    macro_rules! pair {
        ($d:literal, $a:literal, $b:literal) => {
            concat!(
                "vmovdqu {",
                $d,
                "}, ymmword ptr [{t} + ",
                $a,
                "]\n",
                "vpshufb {",
                $d,
                "}, {",
                $d,
                "}, {c0}\n",
                "vmovdqu {t0}, ymmword ptr [{t} + ",
                $b,
                "]\n",
                "vpshufb {t0}, {t0}, {c1}\n",
                "vpor {",
                $d,
                "}, {",
                $d,
                "}, {t0}\n"
            )
        };
    }
    // Four tables into `d` (`s` a scratch register): two pairs blended on bit 5 (`m1`).
    macro_rules! quad {
        ($d:literal, $s:literal, $a:literal, $b:literal, $c:literal, $e:literal) => {
            concat!(
                pair!($d, $a, $b),
                pair!($s, $c, $e),
                "vpblendvb {",
                $d,
                "}, {",
                $d,
                "}, {",
                $s,
                "}, {m1}\n"
            )
        };
    }
    let r: __m256i;
    match nt {
        2 => core::arch::asm!(
            pair!("r", 0, 32),
            t = in(reg) t,
            c0 = in(ymm_reg) c0,
            c1 = in(ymm_reg) c1,
            r = out(ymm_reg) r,
            t0 = out(ymm_reg) _,
            options(readonly, nostack, preserves_flags)
        ),
        4 => core::arch::asm!(
            quad!("r", "t1", 0, 32, 64, 96),
            t = in(reg) t,
            c0 = in(ymm_reg) c0,
            c1 = in(ymm_reg) c1,
            m1 = in(ymm_reg) m[1],
            r = out(ymm_reg) r,
            t0 = out(ymm_reg) _,
            t1 = out(ymm_reg) _,
            options(readonly, nostack, preserves_flags)
        ),
        8 => core::arch::asm!(
            quad!("r", "t1", 0, 32, 64, 96),
            quad!("t2", "t1", 128, 160, 192, 224),
            "vpblendvb {r}, {r}, {t2}, {m2}",
            t = in(reg) t,
            c0 = in(ymm_reg) c0,
            c1 = in(ymm_reg) c1,
            m1 = in(ymm_reg) m[1],
            m2 = in(ymm_reg) m[2],
            r = out(ymm_reg) r,
            t0 = out(ymm_reg) _,
            t1 = out(ymm_reg) _,
            t2 = out(ymm_reg) _,
            options(readonly, nostack, preserves_flags)
        ),
        _ => core::arch::asm!(
            quad!("r", "t1", 0, 32, 64, 96),
            quad!("t2", "t1", 128, 160, 192, 224),
            "vpblendvb {r}, {r}, {t2}, {m2}",
            quad!("t3", "t1", 256, 288, 320, 352),
            quad!("t2", "t1", 384, 416, 448, 480),
            "vpblendvb {t3}, {t3}, {t2}, {m2}",
            "vpblendvb {r}, {r}, {t3}, {m3}",
            t = in(reg) t,
            c0 = in(ymm_reg) c0,
            c1 = in(ymm_reg) c1,
            m1 = in(ymm_reg) m[1],
            m2 = in(ymm_reg) m[2],
            m3 = in(ymm_reg) m[3],
            r = out(ymm_reg) r,
            t0 = out(ymm_reg) _,
            t1 = out(ymm_reg) _,
            t2 = out(ymm_reg) _,
            t3 = out(ymm_reg) _,
            options(readonly, nostack, preserves_flags)
        ),
    }
    r
}

/// Decodes 32 pairs of width `W` from their [`Idx`] with the type's [`mag_tables`] `t`:
/// `[|x|, sx, |y|, sy]`.
#[inline(always)]
unsafe fn decode32<const W: u32>(t: *const [u8; 32], ix: &Idx) -> [__m256i; 4] {
    let nt = ((1usize << (W - 1)) / 16).max(1);
    let x = lookup(t, nt, ix.lo, &ix.m);
    let y = lookup(t.add(nt), nt, ix.lo, &ix.m);
    [x, ix.sx, y, ix.sy]
}

/// The block at byte `o` of the row `w` (`bb` bytes) as a pointer that may be read 8 bytes past
/// the block: into the row, or for the row's last block a zero-padded copy in `buf`.
#[inline(always)]
unsafe fn padded(w: &[u8], o: usize, bb: usize, buf: &mut [u8; 192]) -> *const u8 {
    if o + bb + 8 <= w.len() {
        w.as_ptr().add(o)
    } else {
        buf[..bb].copy_from_slice(&w[o..o + bb]);
        buf.as_ptr()
    }
}

/// Decodes the 128 pairs of the block at `blk`, 32 at a time: `sink(q, [|x|, sx, |y|, sy])`
/// for pairs `32q … 32q + 31` ([`decode32`]'s magnitudes and signs, the activation's even /
/// odd layout). The fields come 8 at a time from `pdep` (one byte each; the 8-bit fields of a
/// chunk of hi pairs by one vector load), the subsets `z` from the branch bits as 64-bit masks
/// spread into byte masks; the tables `th` (width `HI`) and `tl` (`LO`, the last `NLO` pairs)
/// are looked up by `vpshufb`. `END = 0`: the block is readable for 8 bytes past its end (see
/// [`padded`]); otherwise `END` is the block's length and nothing past it is read (an 8-byte
/// field read that would pass it is taken from the block's last 8 bytes and shifted: the same
/// bits, zeros past the block).
#[inline(always)]
unsafe fn decode256<const HI: u32, const LO: u32, const NLO: usize, const END: usize>(
    blk: *const u8,
    hdr: usize,
    th: *const [u8; 32],
    tl: *const [u8; 32],
    mut sink: impl FnMut(usize, [__m256i; 4]),
) {
    let b0 = rd::<END>(blk, hdr);
    let b1 = rd::<END>(blk, hdr + 8);
    // z0 = b << 1, z1 = b ⊕ b << 2 ⊕ b << 3 over the 128 branch bits (two words).
    let (z00, z10) = (b0 << 1, b0 ^ (b0 << 2) ^ (b0 << 3));
    let z01 = (b1 << 1) | (b0 >> 63);
    let z11 = b1 ^ ((b1 << 2) | (b0 >> 62)) ^ ((b1 << 3) | (b0 >> 61));
    let (z0, z1) = (z00 as u32, z10 as u32);
    sink(0, chunk::<HI, LO, NLO, END, 0>(blk, hdr, z0, z1, th, tl));
    let (z0, z1) = ((z00 >> 32) as u32, (z10 >> 32) as u32);
    sink(1, chunk::<HI, LO, NLO, END, 1>(blk, hdr, z0, z1, th, tl));
    let (z0, z1) = (z01 as u32, z11 as u32);
    sink(2, chunk::<HI, LO, NLO, END, 2>(blk, hdr, z0, z1, th, tl));
    let (z0, z1) = ((z01 >> 32) as u32, (z11 >> 32) as u32);
    sink(3, chunk::<HI, LO, NLO, END, 3>(blk, hdr, z0, z1, th, tl));
}

/// `p` unchanged, through an empty `asm!` the compiler cannot see into: so each chunk loads
/// its tables itself instead of the compiler keeping all of them across the block's chunks
/// and spilling them to the stack.
#[inline(always)]
fn opaque<T>(p: *const T) -> *const T {
    let mut a = p as usize;
    // SAFETY: an empty template; the address comes back as it went in.
    unsafe {
        core::arch::asm!("/* {0} */", inout(reg) a, options(nomem, nostack, preserves_flags))
    };
    a as *const T
}

/// 8 bytes of the block at `blk + at` (`END`: as for [`decode256`]).
#[inline(always)]
unsafe fn rd<const END: usize>(blk: *const u8, at: usize) -> u64 {
    if END != 0 && at + 8 > END {
        blk.add(END - 8).cast::<u64>().read_unaligned() >> (8 * (at + 8 - END))
    } else {
        blk.add(at).cast::<u64>().read_unaligned()
    }
}

/// Chunk `Q` (pairs `32Q … 32Q + 31`) of [`decode256`]: `z0` / `z1` its subset bits.
#[inline(always)]
unsafe fn chunk<
    const HI: u32,
    const LO: u32,
    const NLO: usize,
    const END: usize,
    const Q: usize,
>(
    blk: *const u8,
    hdr: usize,
    z0: u32,
    z1: u32,
    th: *const [u8; 32],
    tl: *const [u8; 32],
) -> [__m256i; 4] {
    let (th, tl) = (opaque(th), opaque(tl));
    let first_lo = NP - NLO;
    let n = (32 * Q + 32).saturating_sub(first_lo).min(32);
    let f = fields::<HI, LO, NLO, END>(blk, hdr, Q);
    let (m0, m1) = bytemasks(z0, z1);
    let h = (n < 32).then(|| decode32::<HI>(th, &index::<HI>(f, m0, m1)));
    let l = (n > 0).then(|| decode32::<LO>(tl, &index::<LO>(f, m0, m1)));
    mix(n, h, l)
}

/// The fields of chunk `q` (pairs `32q … 32q + 31`) of [`decode256`], one per byte.
#[inline(always)]
unsafe fn fields<const HI: u32, const LO: u32, const NLO: usize, const END: usize>(
    blk: *const u8,
    hdr: usize,
    q: usize,
) -> __m256i {
    let fo = hdr + NP / 8;
    let first_lo = NP - NLO;
    let (fh, fl) = ((HI - 1) as usize, (LO - 1) as usize);
    if 32 * q + 32 <= first_lo && fh == 8 {
        // Whole-byte fields: one load (within the block: a later chunk holds lo pairs, or the
        // fields end with the block's bytes).
        return _mm256_loadu_si256(blk.add(fo + 32 * q).cast());
    }
    let mut fb = [0u64; 4];
    for (i, fq) in fb.iter_mut().enumerate() {
        let p = 32 * q + 8 * i;
        let (fw, pos) = if p < first_lo {
            (fh, p * fh)
        } else {
            (fl, first_lo * fh + (p - first_lo) * fl)
        };
        // 8 fields of at most 8 bits: at most 57 bits past the byte start are needed unless
        // the fields are whole bytes (then `pos` is a multiple of 8).
        let raw = rd::<END>(blk, fo + pos / 8) >> (pos & 7);
        *fq = if fw == 8 {
            raw
        } else {
            _pdep_u64(raw, 0x0101_0101_0101_0101 * ((1u64 << fw) - 1))
        };
    }
    _mm256_setr_epi64x(fb[0] as i64, fb[1] as i64, fb[2] as i64, fb[3] as i64)
}

/// A chunk's decode from its hi and lo decodes: the last `n_lo` pairs (whole 64-bit lanes)
/// from `lo`.
#[inline(always)]
unsafe fn mix(n_lo: usize, hi: Option<[__m256i; 4]>, lo: Option<[__m256i; 4]>) -> [__m256i; 4] {
    match (hi, lo) {
        (Some(h), None) => h,
        (None, Some(l)) => l,
        (Some(h), Some(l)) => {
            let nh = (32 - n_lo) / 8;
            let v = [0, 1, 2, 3].map(|i| -((i >= nh) as i64));
            let m = _mm256_setr_epi64x(v[0], v[1], v[2], v[3]);
            [0, 1, 2, 3].map(|i| _mm256_blendv_epi8(h[i], l[i], m))
        }
        (None, None) => unreachable!(),
    }
}

/// The group sums of four vectors of two groups each (lanes 0..4, 4..8): `s[0]` groups 0, 1,
/// `s[1]` groups 2, 3, `s[2]` 4, 5, `s[3]` 6, 7; lane `g` of the result is group `g`.
#[inline(always)]
unsafe fn hsum4x2(s: &[__m256i; 4]) -> __m256i {
    let h01 = _mm256_hadd_epi32(s[0], s[1]);
    let h23 = _mm256_hadd_epi32(s[2], s[3]);
    let h = _mm256_hadd_epi32(h01, h23);
    _mm256_permutevar8x32_epi32(h, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// `Σ w[i]·a[i]` over 32 bytes, as 8 i32 lanes of 4 products each (lanes 0..4: bytes 0..16).
#[inline(always)]
unsafe fn dot32v(wv: __m256i, a: *const i8) -> __m256i {
    let av = _mm256_loadu_si256(a.cast());
    let p = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(av, wv));
    _mm256_madd_epi16(p, _mm256_set1_epi16(1))
}

/// The exact integer sums of the eight groups (32 coordinates) of one decoded block
/// ([`decode256`], signed bytes) with its activation `a` (two chunks of 128 de-interleaved
/// bytes).
#[inline(always)]
unsafe fn pair_groups(wv: &[__m256i; 8], a: *const i8) -> __m256i {
    let mut s = [_mm256_setzero_si256(); 4];
    for q in 0..4 {
        let base = a.add(128 * (q / 2) + 32 * (q % 2));
        s[q] = _mm256_add_epi32(dot32v(wv[2 * q], base), dot32v(wv[2 * q + 1], base.add(64)));
    }
    hsum4x2(&s)
}

/// The exact integer sums of the two groups of chunk `q` (32 pairs, [`decode32`]'s `[|x|, sx,
/// |y|, sy]`) with the block's activation `a`: `|x|·vpsignb(a, sx)` summed by `vpmaddubsw` /
/// `vpmaddwd` (lanes 0..4: the first group).
#[inline(always)]
unsafe fn chunk_dot(q: usize, d: [__m256i; 4], a: *const i8) -> __m256i {
    let base = a.add(128 * (q / 2) + 32 * (q % 2));
    let ax = _mm256_sign_epi8(_mm256_loadu_si256(base.cast()), d[1]);
    let ay = _mm256_sign_epi8(_mm256_loadu_si256(base.add(64).cast()), d[3]);
    let ones = _mm256_set1_epi16(1);
    _mm256_add_epi32(
        _mm256_madd_epi16(_mm256_maddubs_epi16(d[0], ax), ones),
        _mm256_madd_epi16(_mm256_maddubs_epi16(d[2], ay), ones),
    )
}

/// `v` unchanged, through an empty `asm!` ordered with the lookups' (see [`lookup`]): a chunk's
/// group sums are formed before the next chunk's lookups, not all at the end with every
/// decoded vector spilled until then.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn keep(mut v: __m256i) -> __m256i {
    core::arch::asm!("/* {0} */", inout(ymm_reg) v, options(nomem, nostack, preserves_flags));
    v
}

/// [`decode256`] into signed bytes: `out[2q]` / `out[2q + 1]` the x / y bytes of pairs
/// `32q … 32q + 31`.
#[inline(always)]
unsafe fn decode256_signed<const HI: u32, const LO: u32, const NLO: usize, const END: usize>(
    blk: *const u8,
    hdr: usize,
    th: *const [u8; 32],
    tl: *const [u8; 32],
    out: &mut [__m256i; 8],
) {
    decode256::<HI, LO, NLO, END>(blk, hdr, th, tl, |q, d| {
        out[2 * q] = _mm256_sign_epi8(d[0], d[1]);
        out[2 * q + 1] = _mm256_sign_epi8(d[2], d[3]);
    });
}

/// 32 bit masks → 32 bytes, 0xFF where the bit is set.
#[inline(always)]
unsafe fn bytemask(bits: u32) -> __m256i {
    spread_bits(_mm256_set1_epi32(bits as i32), spread_index())
}

/// The `vpshufb` index that puts byte `i / 8` of each lane's first 4 bytes at byte `i`.
#[inline(always)]
unsafe fn spread_index() -> __m256i {
    _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3,
        3, 3,
    )
}

/// Byte `i` of the result: 0xFF where bit `i mod 8` of byte `sh[i]` of `v` (in-lane) is set.
#[inline(always)]
unsafe fn spread_bits(v: __m256i, sh: __m256i) -> __m256i {
    let sel = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(v, sh), sel), sel)
}

/// [`bytemask`] of `lo` and of `hi`, from one broadcast of both.
#[inline(always)]
unsafe fn bytemasks(lo: u32, hi: u32) -> (__m256i, __m256i) {
    let v = _mm256_set1_epi64x((lo as u64 | (hi as u64) << 32) as i64);
    let sh = spread_index();
    (
        spread_bits(v, sh),
        spread_bits(v, _mm256_add_epi8(sh, _mm256_set1_epi8(4))),
    )
}

/// The QJL sign bits of the block at `blk` in the activation's de-interleaved order: per
/// chunk `c` of 128 coordinates `[negative even, negative odd]` (64 bits each; "negative": the
/// coordinate is below `m` and σ = −1).
#[inline(always)]
unsafe fn qjl_masks(blk: *const u8, m: usize) -> [[u64; 2]; 2] {
    const EV: u64 = 0x5555_5555_5555_5555;
    let mut r = [[0u64; 2]; 2];
    for (c, rc) in r.iter_mut().enumerate() {
        for h in 0..2 {
            let k = 2 * c + h;
            let valid = if m >= 64 * (k + 1) {
                !0
            } else if m <= 64 * k {
                0
            } else {
                (1u64 << (m - 64 * k)) - 1
            };
            let bits = blk.add(2 + 8 * k).cast::<u64>().read_unaligned() & valid;
            rc[0] |= _pext_u64(bits, EV) << (32 * h);
            rc[1] |= _pext_u64(bits, !EV) << (32 * h);
        }
    }
    r
}

/// How many of the 32 even (or odd) coordinates of half `h` of chunk `c` are below `m` (even):
/// the QJL signs there, zeros after.
#[inline(always)]
const fn valid_count(m: usize, c: usize, h: usize) -> usize {
    let v = m.saturating_sub(128 * c) / 2;
    let v = v.saturating_sub(32 * h);
    if v > 32 {
        32
    } else {
        v
    }
}

/// The byte mask of the first `cnt` of 32 bytes.
#[inline(always)]
unsafe fn first_bytes(cnt: usize) -> __m256i {
    let iota = _mm256_setr_epi8(
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
        25, 26, 27, 28, 29, 30, 31,
    );
    _mm256_cmpgt_epi8(_mm256_set1_epi8(cnt as i8), iota)
}

/// `Σ σ_i t_i` over 32 bytes `t`, 4 bytes per i32 lane: `neg` the bytes with σ = −1, the first
/// `cnt` bytes those with σ ≠ 0.
#[inline(always)]
unsafe fn sdot32(neg: u64, cnt: usize, t: *const i8) -> __m256i {
    if cnt == 0 {
        return _mm256_setzero_si256();
    }
    let nm = bytemask(neg as u32);
    let mut v = _mm256_loadu_si256(t.cast());
    if cnt < 32 {
        v = _mm256_and_si256(v, first_bytes(cnt));
    }
    let v = _mm256_sub_epi8(_mm256_xor_si256(v, nm), nm);
    _mm256_madd_epi16(
        _mm256_maddubs_epi16(_mm256_set1_epi8(1), v),
        _mm256_set1_epi16(1),
    )
}

/// The QJL group sums of one block from its sign masks ([`qjl_masks`]) and its second
/// activation row `t` (two chunks of 128 de-interleaved bytes); `m` sign bits.
#[inline(always)]
unsafe fn qjl_groups(mk: &[[u64; 2]; 2], m: usize, t: *const i8) -> __m256i {
    let mut s = [_mm256_setzero_si256(); 4];
    for c in 0..2 {
        let [ne, no] = mk[c];
        let (v0, v1) = (valid_count(m, c, 0), valid_count(m, c, 1));
        let tc = t.add(128 * c);
        s[2 * c] = _mm256_add_epi32(sdot32(ne, v0, tc), sdot32(no, v0, tc.add(64)));
        s[2 * c + 1] = _mm256_add_epi32(
            sdot32(ne >> 32, v1, tc.add(32)),
            sdot32(no >> 32, v1, tc.add(96)),
        );
    }
    hsum4x2(&s)
}

/// The QJL group sums from signs stored as bytes (±1, 0) in the activation's layout.
#[inline(always)]
unsafe fn qjl_groups_bytes(sg: *const i8, t: *const i8) -> __m256i {
    let mut s = [_mm256_setzero_si256(); 4];
    for c in 0..2 {
        let (e, od, tc) = (sg.add(128 * c), sg.add(128 * c + 64), t.add(128 * c));
        s[2 * c] = _mm256_add_epi32(dot32(e, tc), dot32(od, tc.add(64)));
        s[2 * c + 1] =
            _mm256_add_epi32(dot32(e.add(32), tc.add(32)), dot32(od.add(32), tc.add(96)));
    }
    hsum4x2(&s)
}

/// The per-row constants of the block-256 path of one type.
struct Row256 {
    n: usize,
    bb: usize,
    hdr: usize,
    m: usize,
    /// Byte offset of the second activation row (TQJ).
    one: usize,
}

impl Row256 {
    fn new(ty: GgmlType, rb: usize) -> Self {
        let s = spec(ty);
        let n = rb * 512 / s.bpw64;
        Row256 {
            n,
            bb: s.block_bytes(256),
            hdr: s.header_bytes(256),
            m: s.qjl_m(256),
            one: n + n / 8,
        }
    }
}

/// Blocks per batch: the vector work of a batch's blocks first (independent of each other),
/// then the float sums in the reference's order — so the sequential float chain of one block
/// does not hold up the decoding of the next.
const BATCH: usize = 8;

/// The products `sum_g · scale_g` of a batch's blocks (pair groups `p`, QJL groups `q`) and
/// their scale and QJL bytes.
struct Batch {
    p: [[f32; 8]; BATCH],
    q: [[f32; 8]; BATCH],
    eg: [(u8, u8); BATCH],
}

impl Batch {
    fn new() -> Self {
        Batch {
            p: [[0.0; 8]; BATCH],
            q: [[0.0; 8]; BATCH],
            eg: [(0, 0); BATCH],
        }
    }

    /// The group sums `g` (and `q`, TQJ with `gq ≠ 0`) of block `j` at slot `jj`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn put(
        &mut self,
        r: &Row256,
        a: &[u8],
        j: usize,
        jj: usize,
        e: u8,
        gq: u8,
        g: __m256i,
        q: __m256i,
    ) {
        self.eg[jj] = (e, gq);
        let sc = a.as_ptr().add(r.n + 32 * j);
        _mm256_storeu_ps(
            self.p[jj].as_mut_ptr(),
            _mm256_mul_ps(_mm256_cvtepi32_ps(g), _mm256_loadu_ps(sc.cast())),
        );
        if gq != 0 {
            let sc = a.as_ptr().add(r.one + r.n + 32 * j);
            _mm256_storeu_ps(
                self.q[jj].as_mut_ptr(),
                _mm256_mul_ps(_mm256_cvtepi32_ps(q), _mm256_loadu_ps(sc.cast())),
            );
        }
    }

    /// Adds the first `nb` slots to `total` in the reference's order: per block with `e ≠ 0`,
    /// `d · Σ_g` of the products from 0 left to right, then (`gq ≠ 0`) the QJL coefficient
    /// times the sum of the first `⌈m/32⌉` QJL products.
    #[inline(always)]
    fn finish(&self, mut total: f32, r: &Row256, nb: usize) -> f32 {
        for jj in 0..nb {
            let (e, gq) = self.eg[jj];
            if e == 0 {
                continue;
            }
            let d = scale_of(e);
            let mut acc = 0f32;
            for &v in &self.p[jj] {
                acc += v;
            }
            total += d * acc;
            if gq != 0 {
                let mut sacc = 0f32;
                for &v in &self.q[jj][..r.m.div_ceil(32)] {
                    sacc += v;
                }
                total += qjl_coef(256, r.m, d, gq) * sacc;
            }
        }
        total
    }
}

/// The dot product of one row (block size 256) with its prepared activation.
///
/// # Safety
/// The CPU must have AVX2, FMA and BMI2; `w` is whole rows of `ty` with block size 256 and `a`
/// its activation.
#[target_feature(enable = "avx2,fma,bmi2")]
unsafe fn dot256<
    const HI: u32,
    const LO: u32,
    const NLO: usize,
    const QJL: bool,
    const M: usize,
>(
    ty: GgmlType,
    w: &[u8],
    a: &[u8],
) -> f32 {
    let r = Row256::new(ty, w.len());
    let (th, tl) = (mag_tables(HI).as_ptr(), mag_tables(LO).as_ptr());
    let ap = a.as_ptr().cast::<i8>();
    let mut buf = [0u8; 192];
    let mut bt = Batch::new();
    let mut total = 0f32;
    let nblk = r.n / 256;
    let mut j0 = 0;
    while j0 < nblk {
        let nb = (nblk - j0).min(BATCH);
        for jj in 0..nb {
            let j = j0 + jj;
            let o = j * r.bb;
            let e = w[o];
            bt.eg[jj] = (0, 0);
            if e == 0 {
                continue;
            }
            let blk = padded(w, o, r.bb, &mut buf);
            let aj = ap.add(256 * j);
            let mut s = [_mm256_setzero_si256(); 4];
            decode256::<HI, LO, NLO, 0>(blk, r.hdr, th, tl, |q, d| {
                s[q] = keep(chunk_dot(q, d, aj))
            });
            let g = hsum4x2(&s);
            let gq = if QJL { w[o + 1] } else { 0 };
            let q = if gq != 0 {
                qjl_groups(&qjl_masks(blk, M), M, ap.add(r.one + 256 * j))
            } else {
                _mm256_setzero_si256()
            };
            bt.put(&r, a, j, jj, e, gq, g, q);
        }
        total = bt.finish(total, &r, nb);
        j0 += nb;
    }
    total
}

/// The GEMM of rows with block size 256: each row is decoded once per column block (the
/// columns whose activations fit in ~256 KiB), then multiplied with each column of the block;
/// every value bit-identical to [`dot256`] on its pair.
///
/// # Safety
/// As for [`dot256`]; `w` whole rows of `rb` bytes, `acts` whole activations of `ab` bytes.
#[target_feature(enable = "avx2,fma,bmi2")]
unsafe fn gemm256<
    const HI: u32,
    const LO: u32,
    const NLO: usize,
    const QJL: bool,
    const M: usize,
>(
    ty: GgmlType,
    w: &[u8],
    rb: usize,
    acts: &[u8],
    ab: usize,
    put: &mut dyn FnMut(usize, usize, f32),
) {
    let r = Row256::new(ty, rb);
    let rows = w.len() / rb;
    let ncol = acts.len() / ab;
    let nblk = r.n / 256;
    let (th, tl) = (mag_tables(HI).as_ptr(), mag_tables(LO).as_ptr());
    let cb = ((256 << 10) / ab.max(1)).clamp(1, 64);
    let mut dec = vec![[_mm256_setzero_si256(); 8]; nblk];
    let mut eg = vec![(0u8, 0u8); nblk];
    let mut sg = vec![0i8; if QJL { r.n } else { 0 }];
    let one = _mm256_set1_epi8(1);
    let mut buf = [0u8; 192];
    let mut bt = Batch::new();
    let mut j0 = 0;
    while j0 < ncol {
        let j1 = (j0 + cb).min(ncol);
        for (ri, row) in w.chunks_exact(rb).enumerate().take(rows) {
            for (j, (dj, egj)) in dec.iter_mut().zip(eg.iter_mut()).enumerate() {
                let o = j * r.bb;
                let e = row[o];
                let gq = if QJL && e != 0 { row[o + 1] } else { 0 };
                *egj = (e, gq);
                if e == 0 {
                    continue;
                }
                let blk = padded(row, o, r.bb, &mut buf);
                decode256_signed::<HI, LO, NLO, 0>(blk, r.hdr, th, tl, dj);
                if gq != 0 {
                    let mk = qjl_masks(blk, M);
                    for (c, nbs) in mk.iter().enumerate() {
                        let dst = sg.as_mut_ptr().add(256 * j + 128 * c);
                        for (k, nb) in nbs.iter().enumerate() {
                            for h in 0..2 {
                                let v = _mm256_or_si256(
                                    _mm256_and_si256(first_bytes(valid_count(M, c, h)), one),
                                    bytemask((nb >> (32 * h)) as u32),
                                );
                                _mm256_storeu_si256(dst.add(64 * k + 32 * h).cast(), v);
                            }
                        }
                    }
                }
            }
            for jc in j0..j1 {
                let a = &acts[jc * ab..(jc + 1) * ab];
                let ap = a.as_ptr().cast::<i8>();
                let mut total = 0f32;
                let mut b0 = 0;
                while b0 < nblk {
                    let nb = (nblk - b0).min(BATCH);
                    for jj in 0..nb {
                        let j = b0 + jj;
                        let (e, gq) = eg[j];
                        bt.eg[jj] = (0, 0);
                        if e == 0 {
                            continue;
                        }
                        let g = pair_groups(&dec[j], ap.add(256 * j));
                        let q = if gq != 0 {
                            qjl_groups_bytes(sg.as_ptr().add(256 * j), ap.add(r.one + 256 * j))
                        } else {
                            _mm256_setzero_si256()
                        };
                        bt.put(&r, a, j, jj, e, gq, g, q);
                    }
                    total = bt.finish(total, &r, nb);
                    b0 += nb;
                }
                put(ri, jc, total);
            }
        }
        j0 = j1;
    }
}

/// The generic GEMM: the dot product per (row, column) (block sizes other than 256, or no BMI2).
///
/// # Safety
/// As for [`dot_any`].
unsafe fn gemm_any(
    ty: GgmlType,
    w: &[u8],
    rb: usize,
    acts: &[u8],
    ab: usize,
    put: &mut dyn FnMut(usize, usize, f32),
) {
    for (r, row) in w.chunks_exact(rb).enumerate() {
        for (j, a) in acts.chunks_exact(ab).enumerate() {
            put(r, j, dot_any(ty, row, a));
        }
    }
}

macro_rules! dots {
    ($($name:ident, $gemm:ident: $ty:expr, $hi:literal, $lo:literal, $nlo:literal, $qjl:literal, $m:literal;)*) => {$(
        /// The AVX2 dot product of one row of this type with its prepared activation.
        ///
        /// # Safety
        /// The CPU must have AVX2 and FMA; the lengths are the caller's to check.
        pub(crate) unsafe fn $name(w: &[u8], a: &[u8]) -> f32 {
            let s = spec($ty);
            debug_assert!((s.hi, s.lo, s.n_lo(256), s.qjl, s.qjl_m(256)) == ($hi, $lo, $nlo, $qjl, $m));
            if block_for($ty, w.len() * 512 / s.bpw64) == Some(256) && has_bmi2() {
                dot256::<$hi, $lo, $nlo, $qjl, $m>($ty, w, a)
            } else {
                dot_any($ty, w, a)
            }
        }

        /// The AVX2 GEMM of rows of this type with prepared activations: rows of block size
        /// 256 are decoded once per column block.
        ///
        /// # Safety
        /// As for the dot product; `w` whole rows of `rb` bytes, `acts` whole activations of
        /// `ab` bytes.
        pub(crate) unsafe fn $gemm(
            w: &[u8],
            rb: usize,
            acts: &[u8],
            ab: usize,
            put: &mut dyn FnMut(usize, usize, f32),
        ) {
            let s = spec($ty);
            if block_for($ty, rb * 512 / s.bpw64) == Some(256) && has_bmi2() {
                gemm256::<$hi, $lo, $nlo, $qjl, $m>($ty, w, rb, acts, ab, put)
            } else {
                gemm_any($ty, w, rb, acts, ab, put)
            }
        }
    )*};
}

dots! {
    dot_tqt4_5, gemm_tqt4_5: GgmlType::TQT4_5, 9, 8, 8, false, 0;
    dot_tqt3_375, gemm_tqt3_375: GgmlType::TQT3_375, 7, 6, 40, false, 0;
    dot_tqt2_5, gemm_tqt2_5: GgmlType::TQT2_5, 5, 4, 8, false, 0;
    dot_tqj4_5, gemm_tqj4_5: GgmlType::TQJ4_5, 7, 7, 0, true, 240;
    dot_tqj3_375, gemm_tqj3_375: GgmlType::TQJ3_375, 5, 5, 0, true, 208;
    dot_tqj2_5, gemm_tqj2_5: GgmlType::TQJ2_5, 3, 3, 0, true, 240;
}

// ------------------------------------------------------------------------------------------------
// Unpacking for the register-tiled GEMM (`x86::tile`, lanes = rows) on AVX2: one 256-block of
// one row to the bytes `x86::tq_avx512`'s `tile_tqt4_5` and siblings write — 256 biased codes
// (`code + 128` as u8) in the tile's k order (per chunk of 64 pairs and group `i` of 16 pairs:
// the 16 x codes, then the 16 y codes) and the block multiplier `d` (0 for a zero block, whose
// codes are all 128) — from [`decode256`]'s signed bytes.

/// Decodes the 256-block at `x` (`BB` bytes, nothing past it read) into `q` (256 u8, tile k
/// order) and writes `d` as the f32 at `s + 4·r`.
#[inline(always)]
unsafe fn unpack_tile<const HI: u32, const LO: u32, const NLO: usize, const BB: usize>(
    x: *const u8,
    q: *mut u8,
    s: *mut u8,
    r: usize,
) {
    let bias = _mm256_set1_epi8(-128);
    let e = *x;
    s.add(4 * r).cast::<f32>().write_unaligned(scale_of(e));
    if e == 0 {
        for i in 0..8 {
            _mm256_storeu_si256(q.add(32 * i).cast(), bias);
        }
        return;
    }
    let (th, tl) = (mag_tables(HI).as_ptr(), mag_tables(LO).as_ptr());
    let mut v = [_mm256_setzero_si256(); 8];
    // The trellis types without QJL signs have a one-byte header (the scale byte).
    decode256_signed::<HI, LO, NLO, BB>(x, 1, th, tl, &mut v);
    // v[2k] / v[2k + 1]: x / y of pairs 32k … 32k + 31, 16 per 128-bit lane; the tile wants
    // per 16 pairs their x bytes, then their y bytes.
    for k in 0..4 {
        let (vx, vy) = (v[2 * k], v[2 * k + 1]);
        let lo = _mm256_permute2x128_si256::<0x20>(vx, vy);
        let hi = _mm256_permute2x128_si256::<0x31>(vx, vy);
        _mm256_storeu_si256(q.add(64 * k).cast(), _mm256_xor_si256(lo, bias));
        _mm256_storeu_si256(q.add(64 * k + 32).cast(), _mm256_xor_si256(hi, bias));
    }
}

macro_rules! tile_unpacks {
    ($($name:ident: $ty:expr, $hi:literal, $lo:literal, $nlo:literal, $bb:literal;)*) => {$(
        /// One 256-block of this type to the tiled GEMM's biased codes and block multiplier
        /// (the bytes of the AVX-512 unpacker of the same name).
        ///
        /// # Safety
        /// The CPU must have AVX2, FMA and BMI2; `x` is a whole 256-block, `q` takes 256 bytes
        /// and `s + 4·r` an f32.
        #[target_feature(enable = "avx2,fma,bmi2")]
        pub(crate) unsafe fn $name(x: *const u8, q: *mut u8, s: *mut u8, r: usize) {
            debug_assert!({
                let sp = spec($ty);
                (sp.hi, sp.lo, sp.n_lo(256), sp.qjl, sp.block_bytes(256)) == ($hi, $lo, $nlo, false, $bb)
            });
            unpack_tile::<$hi, $lo, $nlo, $bb>(x, q, s, r)
        }
    )*};
}

tile_unpacks! {
    tile_tqt4_5: GgmlType::TQT4_5, 9, 8, 8, 144;
    tile_tqt3_375: GgmlType::TQT3_375, 7, 6, 40, 108;
    tile_tqt2_5: GgmlType::TQT2_5, 5, 4, 8, 80;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tq_rotation::SplitMix64;

    /// The tile unpackers on random blocks (random fields and branch bits, one block in four
    /// zero): the scalar decoder's codes (`decode_block`) in the tile's k order, biased by 128,
    /// and the block multiplier; where the CPU has the AVX-512 TQ kernels, the same bytes as
    /// `tq_avx512`'s unpackers.
    #[test]
    fn tile_unpack_gives_the_scalar_codes_and_the_avx512_bytes() {
        if !(is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("bmi2"))
        {
            eprintln!("not run: this CPU has no AVX2/FMA/BMI2");
            return;
        }
        type Unpack = unsafe fn(*const u8, *mut u8, *mut u8, usize);
        let a5 = crate::x86::tq_avx512::available()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni");
        let cases: [(GgmlType, Unpack, Unpack); 3] = [
            (
                GgmlType::TQT4_5,
                tile_tqt4_5,
                crate::x86::tq_avx512::tile_tqt4_5,
            ),
            (
                GgmlType::TQT3_375,
                tile_tqt3_375,
                crate::x86::tq_avx512::tile_tqt3_375,
            ),
            (
                GgmlType::TQT2_5,
                tile_tqt2_5,
                crate::x86::tq_avx512::tile_tqt2_5,
            ),
        ];
        let mut g = SplitMix64::new(31);
        for (ty, unpack, unpack5) in cases {
            let sp = spec(ty);
            let bb = sp.block_bytes(256);
            for rep in 0..200 {
                let mut blk: Vec<u8> = (0..bb).map(|_| g.next_u64() as u8).collect();
                if rep % 4 == 0 {
                    blk[0] = 0;
                }
                let r = rep % 16;
                let (mut q, mut sc) = ([0u8; 256], [0u8; 64]);
                // SAFETY: the features were detected above; a whole block, 256 + 64 bytes out.
                unsafe { unpack(blk.as_ptr(), q.as_mut_ptr(), sc.as_mut_ptr(), r) };
                let d = f32::from_le_bytes(sc[4 * r..4 * r + 4].try_into().unwrap());
                assert_eq!(d.to_bits(), scale_of(blk[0]).to_bits(), "{ty} rep {rep}");
                let (mut xs, mut ys) = ([0i8; 128], [0i8; 128]);
                if blk[0] != 0 {
                    decode_block(sp, 256, &blk, &mut xs, &mut ys);
                }
                let mut want = [0u8; 256];
                for t in 0..2 {
                    for i in 0..4 {
                        for j in 0..16 {
                            let p = 64 * t + 16 * i + j;
                            want[128 * t + 32 * i + j] = xs[p] as u8 ^ 0x80;
                            want[128 * t + 32 * i + 16 + j] = ys[p] as u8 ^ 0x80;
                        }
                    }
                }
                assert_eq!(q, want, "{ty} rep {rep}: tile codes");
                if a5 {
                    let (mut q5, mut sc5) = ([0u8; 256], [0u8; 64]);
                    // SAFETY: `tq_avx512::available()` checked its features.
                    unsafe { unpack5(blk.as_ptr(), q5.as_mut_ptr(), sc5.as_mut_ptr(), r) };
                    assert_eq!(q, q5, "{ty} rep {rep}: AVX2 vs AVX-512 tile bytes");
                    assert_eq!(sc[4 * r..4 * r + 4], sc5[4 * r..4 * r + 4]);
                }
            }
        }
    }
}
