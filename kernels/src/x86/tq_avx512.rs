//! AVX-512 (F/BW/VL/VNNI + VBMI, BMI2) dot products of the TurboQuant trellis types with their
//! prepared activation ([`crate::formats::tq::prepare_activation`]): the weights are decoded in
//! registers, 64 pairs at a time, and never leave the rotated domain.
//!
//! Per 64 pairs (one chunk of 128 rotated coordinates): the subsets `z` of all pairs come from
//! the branch bits as two 64-bit masks (`z0 = b_{p−1}`, `z1 = b_p ⊕ b_{p−2} ⊕ b_{p−3}`); the
//! fields are unpacked to one byte per pair (`vpermb` + `vpmultishiftqb`); the table entry is
//! `k = f ⊕ (z << (w−3))` (two masked XORs); `|X_k|`, `|Y_k|` come from the int8 tables by
//! `vpermi2b` / `vpermb`; the sign bits of the field negate the activation bytes instead; and
//! `vpdpbusd` sums `|X|·(±a_even) + |Y|·(±a_odd)` in groups of 4 pairs, i.e. 8 coordinates, so
//! that 4 lanes make one group of 32 coordinates, scaled by its activation scale. The integer
//! sums are exact; only the float accumulation order differs from the scalar reference.
//!
//! Rows of 256-blocks of the types without QJL signs (every Gemma 4 matrix) take
//! [`dot_tcq256`]: the same values and float order (bit-identical), with the subsets from the
//! branch bits by `vpmultishiftqb` + `vgf2p8affineqb` instead of scalar masks and `kmov`s, no
//! per-block address arithmetic, two blocks per iteration and every constant in a register
//! (docs/turboquant.md §16). Rows whose column block is below 128 take the scalar reference.
//!
//! The GEMM of the types without QJL signs (prompt processing) decodes each row once per column
//! block to signed int8 and multiplies it with many biased activations (see the GEMM section);
//! its results are the dot product's bits. It runs below `GEMM_TILE_MIN_N` columns and for
//! column blocks under 256; otherwise the register-tiled GEMM (`x86::tile`) takes the rows,
//! unpacked by `tile_tqt4_5` and its siblings (not bit-identical to the dot product).

use crate::formats::tq::{block_for, scale_of};
use crate::formats::tq_tables::pair_table;
use crate::formats::tq_tcq::{qjl_coef, spec, TcqSpec};
use crate::GgmlType;
use core::arch::x86_64::*;
use std::sync::OnceLock;

/// The `target_feature` list of this module (the dispatcher checks each).
pub const FEATURES: &str = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,bmi2,avx2,fma";

/// Whether the CPU has [`FEATURES`] (beyond the AVX-512 table's own requirements).
pub fn available() -> bool {
    is_x86_feature_detected!("avx512vbmi") && is_x86_feature_detected!("bmi2")
}

/// Unpacking and lookup constants of one chunk of 64 pairs of a block.
#[derive(Clone, Debug)]
struct Shape {
    /// Byte offset of the chunk's first field from the start of the fields.
    off: usize,
    /// Mask of the field bytes to load.
    load: u64,
    /// Whether the fields need unpacking (not all 8 bits wide).
    unpack: bool,
    /// `vpermb` index: qword `k` gets the bytes of fields `8k … 8k+7`.
    idx: [u8; 64],
    /// `vpmultishiftqb` control: field `i` of a qword starts at bit `i·(w−1)`.
    shift: [u8; 64],
    /// `(1 << (w−1)) − 1` per lane.
    wmask: [u8; 64],
    /// `1 << (w−3)` (the x sign bit, XORed with `z0`) per lane.
    zb0: [u8; 64],
    /// `1 << (w−2)` (the y sign bit, XORed with `z1`) per lane.
    zb1: [u8; 64],
    /// Lanes that use the narrow ("lo") table.
    lo: u64,
}

fn shape(s: &TcqSpec, b: usize, t: usize) -> Shape {
    let np = b / 2;
    let mut at = vec![0usize; np + 1];
    for p in 0..np {
        at[p + 1] = at[p] + s.pair_bits(b, p) as usize - 1;
    }
    let p0 = 64 * t;
    let base = at[p0];
    debug_assert_eq!(base % 8, 0);
    let nbytes = (at[p0 + 64] - base) / 8;
    let mut sh = Shape {
        off: base / 8,
        load: if nbytes >= 64 {
            u64::MAX
        } else {
            (1u64 << nbytes) - 1
        },
        unpack: false,
        idx: [0; 64],
        shift: [0; 64],
        wmask: [0; 64],
        zb0: [0; 64],
        zb1: [0; 64],
        lo: 0,
    };
    for k in 0..8 {
        let p = p0 + 8 * k;
        let w = s.pair_bits(b, p);
        let gbyte = (at[p] - base) / 8;
        for i in 0..8 {
            let l = 8 * k + i;
            sh.idx[l] = (gbyte + i).min(63) as u8;
            sh.shift[l] = (i as u32 * (w - 1)) as u8;
            sh.wmask[l] = ((1u32 << (w - 1)) - 1) as u8;
            sh.zb0[l] = 1 << (w - 3);
            sh.zb1[l] = 1 << (w - 2);
            if w != s.hi {
                sh.lo |= 1 << l;
            }
        }
        if w != 9 {
            sh.unpack = true;
        }
    }
    sh
}

/// Per type: the chunk shapes for blocks of 128 and 256, and the tables (|X| and |Y| bytes of
/// the hi and lo pair codes, padded to 256 entries).
struct Prep {
    s128: [Shape; 1],
    s256: [Shape; 2],
    hi: ([u8; 256], [u8; 256]),
    lo: ([u8; 256], [u8; 256]),
    /// The constants of the 256-block GEMV ([`dot_tcq256`], [`dot_tcj256`]).
    fast: [Fast; 2],
    /// `scale_of(e)` for every scale byte.
    d: [f32; 256],
    /// |X| and |Y| of the hi table followed by the lo table at `2^(hi−1)` (used by
    /// [`dot_tcq256`] when both fit in 64 entries, [`merges`]: one lookup instead of two and a
    /// blend).
    mrg: ([u8; 256], [u8; 256]),
}

/// Constants of one chunk of 64 pairs of a 256-block for [`dot_tcq256`], which takes the
/// subsets `z` from the branch bits in vector registers: the branch-bit qword is broadcast,
/// `vpmultishiftqb` gives every pair `p` the byte `b_{p−3} b_{p−2} b_{p−1} b_p …` (LSB first)
/// and one `vgf2p8affineqb` turns it into `z0 << (w−3) | z1 << (w−2)`, since `z0 = b_{p−1}` and
/// `z1 = b_p ⊕ b_{p−2} ⊕ b_{p−3}` are linear over GF(2) (the matrix per qword, i.e. per 8
/// pairs of one width). The field bytes are read by one unmasked 64-byte load that ends inside
/// the block.
#[derive(Clone, Debug)]
struct Fast {
    /// Offset of the 64-byte field load from the block start.
    at: usize,
    /// `vpermb` index of the field bytes (the shape's, moved by the load offset).
    idx: [u8; 64],
    /// `vpmultishiftqb` control of the branch-bit window of each pair.
    win: [u8; 64],
    /// Bits of the window that exist (clears `b_{-1}, b_{-2}, b_{-3}` of the first chunk).
    keep: [u8; 64],
    /// `vgf2p8affineqb` matrices: window → `z0 << (w−3) | z1 << (w−2)`, per qword.
    aff: [u64; 8],
    /// `2^(hi−1)` on the lo pairs: their entry in [`Prep::mrg`].
    lob: [u8; 64],
}

fn fast(s: &TcqSpec, t: usize, sh: &Shape) -> Fast {
    // Header (scale byte; for QJL types also ρ and the sign bits), branch bits, fields.
    let fields = s.header_bytes(256) + 16 + sh.off;
    let bb = s.block_bytes(256);
    let at = fields.min(bb - 64);
    debug_assert!(sh.unpack || at == fields);
    let mut f = Fast {
        at,
        idx: [0; 64],
        win: [0; 64],
        keep: [0xff; 64],
        aff: [0; 8],
        lob: [0; 64],
    };
    for l in 0..64 {
        // Lane l of qword k holds field byte l mod 8 of its 8 fields; only the first w − 1
        // (the popcount of the field mask) carry field bits and must lie inside the load.
        debug_assert!(
            l % 8 >= sh.wmask[l].count_ones() as usize || sh.idx[l] as usize + fields - at <= 63,
            "field byte of lane {l} outside the 64-byte load"
        );
        f.idx[l] = (sh.idx[l] as usize + fields - at).min(63) as u8;
        // Chunk 0: one qword b_0..b_63 for every lane, the window of pair p starts at p − 3
        // (mod 64; the three bits before b_0 are cleared). Chunk 1: qwords 0..6 hold
        // b_56..b_119 (window at p + 5), qword 7 holds b_64..b_127 (window at p − 3).
        f.win[l] = if t == 0 {
            ((l + 61) % 64) as u8
        } else if l < 56 {
            (l + 5) as u8
        } else {
            (l - 3) as u8
        };
    }
    // Only the types that [`merges`] read `lob` (their `2^(hi−1)` fits a byte; a 9-bit hi
    // table's would not).
    if merges(s.hi, s.lo) {
        for l in 0..64 {
            if sh.lo >> l & 1 != 0 {
                f.lob[l] = 1 << (s.hi - 1);
            }
        }
    }
    if t == 0 {
        f.keep[0] = 0xf8;
        f.keep[1] = 0xfc;
        f.keep[2] = 0xfe;
    }
    for (q, a) in f.aff.iter_mut().enumerate() {
        // Output bit i is the parity of (matrix byte 7 − i) & input.
        let s0 = sh.zb0[8 * q].trailing_zeros() as usize;
        *a = (0x04u64 << (8 * (7 - s0))) | (0x0bu64 << (8 * (6 - s0)));
    }
    f
}

fn tables(w: u32) -> ([u8; 256], [u8; 256]) {
    let (mut x, mut y) = ([0u8; 256], [0u8; 256]);
    for (k, p) in pair_table(w).iter().enumerate() {
        x[k] = p[0] as u8;
        y[k] = p[1] as u8;
    }
    (x, y)
}

/// [`Prep::mrg`].
fn merged(s: &TcqSpec) -> ([u8; 256], [u8; 256]) {
    let (mut x, mut y) = ([0u8; 256], [0u8; 256]);
    let off = 1usize << (s.hi - 1);
    if merges(s.hi, s.lo) {
        for (k, p) in pair_table(s.hi).iter().enumerate() {
            (x[k], y[k]) = (p[0] as u8, p[1] as u8);
        }
        for (k, p) in pair_table(s.lo).iter().enumerate() {
            (x[off + k], y[off + k]) = (p[0] as u8, p[1] as u8);
        }
    }
    (x, y)
}

fn prep(ty: GgmlType) -> &'static Prep {
    static PREPS: [OnceLock<Prep>; 6] = [const { OnceLock::new() }; 6];
    let i = crate::formats::tq_tcq::SPECS
        .iter()
        .position(|s| s.ty == ty)
        .expect("a trellis type");
    PREPS[i].get_or_init(|| {
        let s = spec(ty);
        let s256 = [shape(s, 256, 0), shape(s, 256, 1)];
        let fast = [fast(s, 0, &s256[0]), fast(s, 1, &s256[1])];
        Prep {
            s128: [shape(s, 128, 0)],
            s256,
            hi: tables(s.hi),
            lo: tables(s.lo),
            fast,
            d: core::array::from_fn(|e| scale_of(e as u8)),
            mrg: merged(s),
        }
    })
}

#[inline(always)]
unsafe fn ld(p: &[u8; 64]) -> __m512i {
    _mm512_loadu_si512(p.as_ptr().cast())
}

/// The four table registers of a width-`w` table (`t[64i .. 64i + 64]`).
#[inline(always)]
unsafe fn regs(t: &[u8; 256]) -> [__m512i; 4] {
    [
        _mm512_loadu_si512(t.as_ptr().cast()),
        _mm512_loadu_si512(t.as_ptr().add(64).cast()),
        _mm512_loadu_si512(t.as_ptr().add(128).cast()),
        _mm512_loadu_si512(t.as_ptr().add(192).cast()),
    ]
}

/// Entry `k` (byte lanes) of a table of `2^(w−1)` entries held in `t`.
#[inline(always)]
unsafe fn lookup<const W: u32>(k: __m512i, t: &[__m512i; 4]) -> __m512i {
    if W == 9 {
        let lo = _mm512_permutex2var_epi8(t[0], k, t[1]);
        let hi = _mm512_permutex2var_epi8(t[2], k, t[3]);
        _mm512_mask_blend_epi8(_mm512_movepi8_mask(k), lo, hi)
    } else if W == 8 {
        _mm512_permutex2var_epi8(t[0], k, t[1])
    } else {
        _mm512_permutexvar_epi8(k, t[0])
    }
}

/// 4 f32 scales at `p` as lanes `4i … 4i+3` ← scale `i`.
#[inline(always)]
unsafe fn scales4(p: *const u8) -> __m512 {
    let idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_loadu_ps(p.cast())))
}

/// The table registers of a type: |X| and |Y| of the hi and lo pair codes.
struct Tabs {
    hx: [__m512i; 4],
    hy: [__m512i; 4],
    lx: [__m512i; 4],
    ly: [__m512i; 4],
}

#[inline(always)]
unsafe fn tabs(pr: &Prep) -> Tabs {
    Tabs {
        hx: regs(&pr.hi.0),
        hy: regs(&pr.hi.1),
        lx: regs(&pr.lo.0),
        ly: regs(&pr.lo.1),
    }
}

/// Decodes one chunk of 64 pairs: `(|X|, |Y|, x sign mask, y sign mask)` per pair (byte lane
/// `i` = pair `64t + i` of the block). `bw`: the chunk's 64 branch bits, `prev`: the previous
/// chunk's (0 for the first), `fields`: the block's first field byte. `F`: the chunk's shape
/// flags when known at compile time (bit 0: fields need unpacking, bit 1: some pairs use the lo
/// table), [`RT`] to read them from `sh`.
#[inline(always)]
unsafe fn decode_chunk<const HI: u32, const LO: u32, const F: u8>(
    sh: &Shape,
    bw: u64,
    prev: u64,
    fields: *const u8,
    tb: &Tabs,
) -> (__m512i, __m512i, u64, u64) {
    let z0 = (bw << 1) | (prev >> 63);
    let z1 = bw ^ ((bw << 2) | (prev >> 62)) ^ ((bw << 3) | (prev >> 61));
    let raw = _mm512_maskz_loadu_epi8(sh.load, fields.add(sh.off).cast());
    debug_assert!(F == RT || (F & 1 != 0) == sh.unpack && (F & 2 != 0) == (sh.lo != 0));
    let unpack = if F == RT { sh.unpack } else { F & 1 != 0 };
    let has_lo = if F == RT { sh.lo != 0 } else { F & 2 != 0 };
    let f = if unpack {
        let g = _mm512_permutexvar_epi8(ld(&sh.idx), raw);
        _mm512_and_si512(
            _mm512_multishift_epi64_epi8(ld(&sh.shift), g),
            ld(&sh.wmask),
        )
    } else {
        raw
    };
    let (zb0, zb1) = (ld(&sh.zb0), ld(&sh.zb1));
    let k = _mm512_ternarylogic_epi64::<0x96>(
        f,
        _mm512_maskz_mov_epi8(z0, zb0),
        _mm512_maskz_mov_epi8(z1, zb1),
    );
    let mx = _mm512_test_epi8_mask(f, zb0);
    let my = _mm512_test_epi8_mask(f, zb1);
    let mut x = lookup::<HI>(k, &tb.hx);
    let mut y = lookup::<HI>(k, &tb.hy);
    if LO != HI && has_lo {
        x = _mm512_mask_blend_epi8(sh.lo, x, lookup::<LO>(k, &tb.lx));
        y = _mm512_mask_blend_epi8(sh.lo, y, lookup::<LO>(k, &tb.ly));
    }
    (x, y, mx, my)
}

/// [`decode_chunk`]'s flags: read the shape at run time.
const RT: u8 = 0xff;

/// Software prefetches of `lines` cache lines from `x + PF` (none when `PF` is 0). Prefetches
/// never fault.
#[inline(always)]
fn prefetch<const PF: usize>(x: *const u8, lines: usize) {
    if PF > 0 {
        for l in 0..lines {
            // SAFETY: a prefetch is a hint that cannot fault; the address uses wrapping
            // arithmetic.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(x.wrapping_add(PF + 64 * l).cast()) };
        }
    }
}

/// The dot product of one row of a trellis type (hi width `HI`, lo width `LO`, QJL signs or
/// not) with its prepared activation; `PF`: software prefetch distance of the weight stream in
/// bytes (0: none).
///
/// # Safety
/// The CPU must have [`FEATURES`]; `w` is whole rows of the type and `a` its activation
/// (checked by `Kernels::vec_dot` / the GEMV).
/// What one chunk of the dot product reads besides the weights.
struct DotCtx<'a> {
    tb: &'a Tabs,
    /// Activation row.
    ap: *const u8,
    /// Row length.
    n: usize,
    /// Column block.
    b: usize,
    /// QJL signs per block.
    m: usize,
}

/// One chunk `t` of block `j` of the dot product: `bacc += isum · scales`, and for QJL types
/// `qacc` likewise.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn dot_chunk<const HI: u32, const LO: u32, const QJL: bool, const F: u8>(
    cx: &DotCtx,
    sh: &Shape,
    blk: *const u8,
    br: *const u8,
    j: usize,
    t: usize,
    prev: &mut u64,
    bacc: &mut __m512,
    qacc: &mut __m512,
) {
    let zero = _mm512_setzero_si512();
    let (ap, n, b) = (cx.ap, cx.n, cx.b);
    let bw = core::ptr::read_unaligned(br.add(8 * t).cast::<u64>());
    let (x, y, mx, my) = decode_chunk::<HI, LO, F>(sh, bw, *prev, br.add(b / 16), cx.tb);
    *prev = bw;
    let c = (j * b) / 128 + t;
    let ae = _mm512_loadu_si512(ap.add(128 * c).cast());
    let ao = _mm512_loadu_si512(ap.add(128 * c + 64).cast());
    let ae = _mm512_mask_sub_epi8(ae, mx, zero, ae);
    let ao = _mm512_mask_sub_epi8(ao, my, zero, ao);
    let isum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, x, ae), y, ao);
    *bacc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scales4(ap.add(n + 16 * c)), *bacc);
    if QJL {
        let ones = _mm512_set1_epi8(1);
        let sp = blk.add(2 + 16 * t);
        let w0 = core::ptr::read_unaligned(sp.cast::<u64>());
        let w1 = core::ptr::read_unaligned(sp.add(8).cast::<u64>());
        const EV: u64 = 0x5555_5555_5555_5555;
        const OD: u64 = 0xAAAA_AAAA_AAAA_AAAA;
        let neg_e = _pext_u64(w0, EV) | (_pext_u64(w1, EV) << 32);
        let neg_o = _pext_u64(w0, OD) | (_pext_u64(w1, OD) << 32);
        let lim = cx.m.saturating_sub(128 * t).min(128) / 2;
        let valid = if lim >= 64 {
            u64::MAX
        } else {
            (1u64 << lim) - 1
        };
        let q = ap.add(n + n / 8);
        let te = _mm512_maskz_loadu_epi8(valid, q.add(128 * c).cast());
        let to = _mm512_maskz_loadu_epi8(valid, q.add(128 * c + 64).cast());
        let te = _mm512_mask_sub_epi8(te, neg_e, zero, te);
        let to = _mm512_mask_sub_epi8(to, neg_o, zero, to);
        let qs = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, ones, te), ones, to);
        *qacc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(qs), scales4(q.add(n + 16 * c)), *qacc);
    }
}

/// The dot product of one row of a trellis type (hi width `HI`, lo width `LO`, QJL signs or
/// not) with its prepared activation; `PF`: software prefetch distance of the weight stream in
/// bytes (0: none); `F0`, `F1`: the shape flags of the two chunks of a 256-block
/// ([`decode_chunk`]; blocks of 128 read theirs at run time).
///
/// # Safety
/// The CPU must have [`FEATURES`]; `w` is whole rows of the type and `a` its activation
/// (checked by `Kernels::vec_dot` / the GEMV).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,bmi2,avx2,fma")]
unsafe fn dot_tcq<
    const HI: u32,
    const LO: u32,
    const QJL: bool,
    const PF: usize,
    const F0: u8,
    const F1: u8,
>(
    ty: GgmlType,
    w: &[u8],
    a: &[u8],
) -> f32 {
    let s = spec(ty);
    let n = w.len() * 512 / s.bpw64;
    // Rows of 256-blocks (B_max = 256 divides n: §3).
    const _: () = assert!(crate::formats::tq::TQ_MAX_BLOCK == 256);
    if n > 0 && n.is_multiple_of(256) && fast_available() {
        if QJL {
            return dot_tcj256::<HI, PF, F0, F1>(ty, w, a);
        }
        return dot_tcq256::<HI, LO, PF, F0, F1>(ty, w, a);
    }
    dot_tcq_loop::<HI, LO, QJL, PF, F0, F1>(ty, w, a)
}

/// [`dot_tcq`]'s generic loop (blocks of 128 and 256, any trellis type), which the 256-block
/// paths [`dot_tcq256`] and [`dot_tcj256`] reproduce bit for bit.
///
/// # Safety
/// As for [`dot_tcq`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,bmi2,avx2,fma")]
unsafe fn dot_tcq_loop<
    const HI: u32,
    const LO: u32,
    const QJL: bool,
    const PF: usize,
    const F0: u8,
    const F1: u8,
>(
    ty: GgmlType,
    w: &[u8],
    a: &[u8],
) -> f32 {
    let s = spec(ty);
    let n = w.len() * 512 / s.bpw64;
    let b = match block_for(ty, n) {
        Some(b) if b >= 128 => b,
        _ => return crate::formats::tq_tcq::dot(ty, w, a),
    };
    let pr = prep(ty);
    let bb = s.block_bytes(b);
    let lines = bb.div_ceil(64);
    let hdr = s.header_bytes(b);
    let tb = tabs(pr);
    let cx = DotCtx {
        tb: &tb,
        ap: a.as_ptr(),
        n,
        b,
        m: s.qjl_m(b),
    };
    let wp = w.as_ptr();
    let mut total = _mm512_setzero_ps();
    for j in 0..n / b {
        let blk = wp.add(j * bb);
        prefetch::<PF>(blk, lines);
        let e = *blk;
        if e == 0 {
            continue;
        }
        let br = blk.add(hdr);
        let mut prev = 0u64;
        let mut bacc = _mm512_setzero_ps();
        let mut qacc = _mm512_setzero_ps();
        if b == 256 {
            let (s0, s1) = (&pr.s256[0], &pr.s256[1]);
            dot_chunk::<HI, LO, QJL, F0>(&cx, s0, blk, br, j, 0, &mut prev, &mut bacc, &mut qacc);
            dot_chunk::<HI, LO, QJL, F1>(&cx, s1, blk, br, j, 1, &mut prev, &mut bacc, &mut qacc);
        } else {
            let s0 = &pr.s128[0];
            dot_chunk::<HI, LO, QJL, RT>(&cx, s0, blk, br, j, 0, &mut prev, &mut bacc, &mut qacc);
        }
        let d = scale_of(e);
        total = _mm512_fmadd_ps(bacc, _mm512_set1_ps(d), total);
        if QJL && *blk.add(1) != 0 {
            let coef = qjl_coef(b, cx.m, d, *blk.add(1));
            total = _mm512_fmadd_ps(qacc, _mm512_set1_ps(coef), total);
        }
    }
    _mm512_reduce_add_ps(total)
}

/// Whether [`dot_tcq256`] can run (GFNI and VBMI2 on top of [`FEATURES`]).
fn fast_available() -> bool {
    is_x86_feature_detected!("gfni") && is_x86_feature_detected!("avx512vbmi2")
}

/// The branch-bit windows → `z` bits of one chunk ([`Fast`]): `v` holds the branch qwords.
#[inline(always)]
unsafe fn z_bits(v: __m512i, win: __m512i, keep: Option<__m512i>, aff: __m512i) -> __m512i {
    let w = _mm512_multishift_epi64_epi8(win, v);
    let w = match keep {
        Some(k) => _mm512_and_si512(w, k),
        None => w,
    };
    _mm512_gf2p8affine_epi64_epi8::<0>(w, aff)
}

/// The per-chunk constants of [`dot_tcq256`] in registers.
struct ChunkRegs {
    idx: __m512i,
    shift: __m512i,
    wmask: __m512i,
    lob: __m512i,
    sb0: __m512i,
    sb1: __m512i,
    lo: u64,
}

#[inline(always)]
unsafe fn chunk_regs(f: &Fast, sh: &Shape) -> ChunkRegs {
    ChunkRegs {
        idx: ld(&f.idx),
        shift: ld(&sh.shift),
        wmask: ld(&sh.wmask),
        lob: ld(&f.lob),
        sb0: ld(&sh.zb0),
        sb1: ld(&sh.zb1),
        lo: sh.lo,
    }
}

/// Whether a type's hi and lo tables fit in one 64-entry `vpermb` table ([`Prep::mrg`];
/// `TQT2_5`). (`TQT3_375`'s 96 entries would need a `vpermt2b`, which costs two cycles of
/// port 5 on this core, no less than the two `vpermb` it replaces: measured slower.)
const fn merges(hi: u32, lo: u32) -> bool {
    hi <= 7 && (1 << (hi - 1)) + (1 << (lo - 1)) <= 64
}

/// One chunk of [`dot_tcq256`]: `(|X|, |Y|, x sign mask, y sign mask)` per pair, like
/// [`decode_chunk`] (the same values; `zb` from [`z_bits`]). `tb`: the hi and lo tables, or
/// for types that [`merges`], [`Prep::mrg`] in `hx`/`hy`.
#[inline(always)]
unsafe fn decode_fast<const HI: u32, const LO: u32, const F: u8>(
    raw: __m512i,
    zb: __m512i,
    c: &ChunkRegs,
    tb: &Tabs,
) -> (__m512i, __m512i, u64, u64) {
    let (k, f) = if F & 1 != 0 {
        let ms = _mm512_multishift_epi64_epi8(c.shift, _mm512_permutexvar_epi8(c.idx, raw));
        // (ms & wmask) ^ zb
        (_mm512_ternarylogic_epi64::<0x6a>(ms, c.wmask, zb), ms)
    } else {
        // Whole-byte fields of 9-bit pairs: `[q:6 | mx | my]`.
        (_mm512_xor_si512(raw, zb), raw)
    };
    // (`vpmovb2m` on port 0 instead of these port-5 tests, with the sign bits moved to bit 7
    // by one more `vgf2p8affineqb`, measured slower.)
    let (mx, my) = (
        _mm512_test_epi8_mask(f, c.sb0),
        _mm512_test_epi8_mask(f, c.sb1),
    );
    if merges(HI, LO) {
        let k = if F & 2 != 0 {
            _mm512_or_si512(k, c.lob)
        } else {
            k
        };
        let (x, y) = (
            _mm512_permutexvar_epi8(k, tb.hx[0]),
            _mm512_permutexvar_epi8(k, tb.hy[0]),
        );
        return (x, y, mx, my);
    }
    let mut x = lookup::<HI>(k, &tb.hx);
    let mut y = lookup::<HI>(k, &tb.hy);
    if LO != HI && F & 2 != 0 {
        x = _mm512_mask_blend_epi8(c.lo, x, lookup::<LO>(k, &tb.lx));
        y = _mm512_mask_blend_epi8(c.lo, y, lookup::<LO>(k, &tb.ly));
    }
    (x, y, mx, my)
}

/// What [`dot_tcq256`] and [`dot_tcj256`] keep in registers for a whole row: the tables, the
/// per-chunk constants ([`Fast`], [`ChunkRegs`]) and the field load offsets.
struct FastRegs {
    tb: Tabs,
    win: [__m512i; 2],
    keep0: __m512i,
    aff: [__m512i; 2],
    c: [ChunkRegs; 2],
    at: [usize; 2],
}

#[inline(always)]
unsafe fn fast_regs<const HI: u32, const LO: u32>(pr: &Prep) -> FastRegs {
    let tb = if merges(HI, LO) {
        let r = |t: &[u8; 256]| regs(t);
        Tabs {
            hx: r(&pr.mrg.0),
            hy: r(&pr.mrg.1),
            lx: r(&pr.lo.0),
            ly: r(&pr.lo.1),
        }
    } else {
        tabs(pr)
    };
    let (f0, f1) = (&pr.fast[0], &pr.fast[1]);
    FastRegs {
        tb,
        win: [ld(&f0.win), ld(&f1.win)],
        keep0: ld(&f0.keep),
        aff: [
            _mm512_loadu_si512(f0.aff.as_ptr().cast()),
            _mm512_loadu_si512(f1.aff.as_ptr().cast()),
        ],
        c: [chunk_regs(f0, &pr.s256[0]), chunk_regs(f1, &pr.s256[1])],
        at: [f0.at, f1.at],
    }
}

/// The `z` bits ([`z_bits`]) of both chunks of a 256-block whose branch bits start at `br`.
#[inline(always)]
unsafe fn block_z(br: *const u8, r: &FastRegs) -> [__m512i; 2] {
    // b_0..b_63 in every qword; b_56..b_119 in qwords 0..6 and b_64..b_127 in 7.
    let v0 = _mm512_set1_epi64(core::ptr::read_unaligned(br.cast::<i64>()));
    let vh = _mm512_set1_epi64(core::ptr::read_unaligned(br.add(8).cast::<i64>()));
    // Qwords 0..6: (b_64..b_127 : b_0..b_63) >> 56; qword 7 keeps b_64..b_127.
    let v1 = _mm512_mask_shrdi_epi64::<56>(vh, 0x7f, v0, vh);
    [
        z_bits(v0, r.win[0], Some(r.keep0), r.aff[0]),
        z_bits(v1, r.win[1], None, r.aff[1]),
    ]
}

/// [`dot_tcq`] for rows of 256-blocks of the trellis types without QJL signs: the same
/// integer sums per lane and the same float steps in the same order (so the same bits), with
/// the subsets `z` computed in vector registers ([`Fast`]), unmasked field loads, the block
/// multiplier from a table and every per-type constant in a register: about half the uops
/// of the generic loop per block.
///
/// # Safety
/// The CPU must have [`FEATURES`], GFNI and VBMI2; `w` is whole rows of 256-blocks of the
/// type and `a` its activation.
#[target_feature(
    enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,gfni,bmi2,avx2,fma"
)]
unsafe fn dot_tcq256<const HI: u32, const LO: u32, const PF: usize, const F0: u8, const F1: u8>(
    ty: GgmlType,
    w: &[u8],
    a: &[u8],
) -> f32 {
    let s = spec(ty);
    let bb = s.block_bytes(256);
    let nb = w.len() / bb;
    let n = 256 * nb;
    let pr = prep(ty);
    let r = fast_regs::<HI, LO>(pr);
    let sidx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    let zero = _mm512_setzero_si512();
    let lines = bb.div_ceil(64);
    let mut total = _mm512_setzero_ps();
    let mut blk = w.as_ptr();
    let mut ap = a.as_ptr();
    let mut sp = a.as_ptr().add(n);
    // One block: its `bacc` (the generic loop's order: 0 + i0·g0, then + i1·g1).
    let block = |blk: *const u8, ap: *const u8, sp: *const u8| {
        let [zb0, zb1] = block_z(blk.add(1), &r);
        let raw0 = _mm512_loadu_si512(blk.add(r.at[0]).cast());
        let raw1 = _mm512_loadu_si512(blk.add(r.at[1]).cast());
        let (x0, y0, mx0, my0) = decode_fast::<HI, LO, F0>(raw0, zb0, &r.c[0], &r.tb);
        let (x1, y1, mx1, my1) = decode_fast::<HI, LO, F1>(raw1, zb1, &r.c[1], &r.tb);
        let ae0 = _mm512_loadu_si512(ap.cast());
        let ao0 = _mm512_loadu_si512(ap.add(64).cast());
        let ae1 = _mm512_loadu_si512(ap.add(128).cast());
        let ao1 = _mm512_loadu_si512(ap.add(192).cast());
        let ae0 = _mm512_mask_sub_epi8(ae0, mx0, zero, ae0);
        let ao0 = _mm512_mask_sub_epi8(ao0, my0, zero, ao0);
        let ae1 = _mm512_mask_sub_epi8(ae1, mx1, zero, ae1);
        let ao1 = _mm512_mask_sub_epi8(ao1, my1, zero, ao1);
        let i0 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, x0, ae0), y0, ao0);
        let i1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, x1, ae1), y1, ao1);
        let g0 = _mm512_permutexvar_ps(sidx, _mm512_castps128_ps512(_mm_loadu_ps(sp.cast())));
        let g1 = _mm512_permutexvar_ps(
            sidx,
            _mm512_castps128_ps512(_mm_loadu_ps(sp.add(16).cast())),
        );
        let bacc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0), g0, _mm512_setzero_ps());
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1), g1, bacc)
    };
    // total += bacc·d, skipped for a zero block (the lanes keep `total`, as the generic loop's
    // `continue` does, even for a non-finite bacc).
    let add = |total: __m512, bacc: __m512, e: u8| {
        let keep: __mmask16 = if e != 0 { 0xffff } else { 0 };
        _mm512_mask3_fmadd_ps(bacc, _mm512_set1_ps(pr.d[e as usize]), total, keep)
    };
    let mut j = 0;
    while j + 2 <= nb {
        prefetch::<PF>(blk, 2 * lines);
        let (e0, e1) = (*blk, *blk.add(bb));
        let b0 = block(blk, ap, sp);
        let b1 = block(blk.add(bb), ap.add(256), sp.add(32));
        total = add(total, b0, e0);
        total = add(total, b1, e1);
        blk = blk.add(2 * bb);
        ap = ap.add(512);
        sp = sp.add(64);
        j += 2;
    }
    if j < nb {
        prefetch::<PF>(blk, lines);
        let e = *blk;
        total = add(total, block(blk, ap, sp), e);
    }
    _mm512_reduce_add_ps(total)
}

/// [`dot_tcq256`] for rows of 256-blocks of the trellis types with QJL signs (`TQJ*`, one pair
/// width, tables of at most 64 entries): the pairs decoded as there (subsets from the branch
/// bits in vector registers, one unmasked field load per chunk), the sign sums as in the
/// generic loop's [`dot_chunk`], and every float step in the generic loop's order, so the
/// results are the generic loop's bits.
///
/// # Safety
/// The CPU must have [`FEATURES`], GFNI and VBMI2; `w` is whole rows of 256-blocks of the
/// type and `a` its activation (both TQA8 rows).
#[target_feature(
    enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,gfni,bmi2,avx2,fma"
)]
unsafe fn dot_tcj256<const W: u32, const PF: usize, const F0: u8, const F1: u8>(
    ty: GgmlType,
    w: &[u8],
    a: &[u8],
) -> f32 {
    let s = spec(ty);
    // One table register per coordinate ([`merges`]); monomorphized for the other types too
    // (never called for them).
    debug_assert!(s.qjl && s.hi == W && s.lo == W && W <= 7);
    let bb = s.block_bytes(256);
    let hdr = s.header_bytes(256);
    let m = s.qjl_m(256);
    let nb = w.len() / bb;
    let n = 256 * nb;
    let pr = prep(ty);
    let r = fast_regs::<W, W>(pr);
    let zero = _mm512_setzero_si512();
    let ones = _mm512_set1_epi8(1);
    let lines = bb.div_ceil(64);
    // The QJL transform's TQA8 row follows the rotated activation's (n int8 + n/32 f32).
    let q = a.as_ptr().add(n + n / 8);
    let mut total = _mm512_setzero_ps();
    for j in 0..nb {
        let blk = w.as_ptr().add(j * bb);
        prefetch::<PF>(blk, lines);
        let e = *blk;
        if e == 0 {
            continue;
        }
        let zb = block_z(blk.add(hdr), &r);
        let mut bacc = _mm512_setzero_ps();
        let mut qacc = _mm512_setzero_ps();
        for (t, &at) in r.at.iter().enumerate() {
            let raw = _mm512_loadu_si512(blk.add(at).cast());
            let (x, y, mx, my) = if t == 0 {
                decode_fast::<W, W, F0>(raw, zb[0], &r.c[0], &r.tb)
            } else {
                decode_fast::<W, W, F1>(raw, zb[1], &r.c[1], &r.tb)
            };
            let c = 2 * j + t;
            let ap = a.as_ptr().add(128 * c);
            let ae = _mm512_loadu_si512(ap.cast());
            let ao = _mm512_loadu_si512(ap.add(64).cast());
            let ae = _mm512_mask_sub_epi8(ae, mx, zero, ae);
            let ao = _mm512_mask_sub_epi8(ao, my, zero, ao);
            let isum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, x, ae), y, ao);
            bacc = _mm512_fmadd_ps(
                _mm512_cvtepi32_ps(isum),
                scales4(a.as_ptr().add(n + 16 * c)),
                bacc,
            );
            // The sign sums of the generic loop ([`dot_chunk`]).
            let sp = blk.add(2 + 16 * t);
            let w0 = core::ptr::read_unaligned(sp.cast::<u64>());
            let w1 = core::ptr::read_unaligned(sp.add(8).cast::<u64>());
            const EV: u64 = 0x5555_5555_5555_5555;
            const OD: u64 = 0xAAAA_AAAA_AAAA_AAAA;
            let neg_e = _pext_u64(w0, EV) | (_pext_u64(w1, EV) << 32);
            let neg_o = _pext_u64(w0, OD) | (_pext_u64(w1, OD) << 32);
            let lim = m.saturating_sub(128 * t).min(128) / 2;
            let valid = if lim >= 64 {
                u64::MAX
            } else {
                (1u64 << lim) - 1
            };
            let te = _mm512_maskz_loadu_epi8(valid, q.add(128 * c).cast());
            let to = _mm512_maskz_loadu_epi8(valid, q.add(128 * c + 64).cast());
            let te = _mm512_mask_sub_epi8(te, neg_e, zero, te);
            let to = _mm512_mask_sub_epi8(to, neg_o, zero, to);
            let qs = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, ones, te), ones, to);
            qacc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(qs), scales4(q.add(n + 16 * c)), qacc);
        }
        let d = pr.d[e as usize];
        total = _mm512_fmadd_ps(bacc, _mm512_set1_ps(d), total);
        let g = *blk.add(1);
        if g != 0 {
            let coef = qjl_coef(256, m, d, g);
            total = _mm512_fmadd_ps(qacc, _mm512_set1_ps(coef), total);
        }
    }
    _mm512_reduce_add_ps(total)
}

// ------------------------------------------------------------------------------------------------
// GEMM (prompt processing): each weight row is decoded ONCE per column block into signed int8
// codes (`±|X|`, `±|Y|`, 128 bytes per chunk of 64 pairs) plus `−128·Σ` of each lane's 8 codes;
// the activations are biased to unsigned (`a + 128`) once per call, with their group scales
// expanded to one f32 per lane. Then `vpdpbusd(−128Σw, a + 128, w) = Σ a·w` gives the GEMV's
// exact integer per lane, and the float steps (per chunk `bacc += isum·scale`, per block
// `total += bacc·d`, the final reduction) are the GEMV's, in its order: every result is
// bit-identical to the GEMV's / `vec_dot`'s.

/// Rows per GEMM tile (decoded together, sharing each activation load).
const GR: usize = 4;
/// Columns per GEMM micro-kernel call.
const GC: usize = 2;
const _: () = assert!(
    GR == 4 && GC == 2,
    "gemm_tile reduces exactly 4 × 2 accumulators"
);
/// Bytes of prepared activations per column block (fits in L2 beside the decoded tile).
const GEMM_COL_BYTES: usize = 768 << 10;

/// Decodes row `w` (column block `b`, `nch` chunks of 64 pairs) into `out` (3 vectors per
/// chunk: x codes, y codes, −128·Σ per lane) and `ds` (the block multipliers `d`, 0 for a zero
/// block).
#[inline(always)]
unsafe fn decode_row<const HI: u32, const LO: u32>(
    s: &TcqSpec,
    shapes: &[Shape],
    tb: &Tabs,
    b: usize,
    w: *const u8,
    out: *mut __m512i,
    ds: &mut [f32],
) {
    let bb = s.block_bytes(b);
    let hdr = s.header_bytes(b);
    let zero = _mm512_setzero_si512();
    let bias = _mm512_set1_epi8(-128);
    let cpb = shapes.len();
    for (j, dj) in ds.iter_mut().enumerate() {
        let blk = w.add(j * bb);
        let e = *blk;
        *dj = scale_of(e);
        let o = out.add(3 * cpb * j);
        if e == 0 {
            for i in 0..3 * cpb {
                _mm512_store_si512(o.add(i).cast(), zero);
            }
            continue;
        }
        let br = blk.add(hdr);
        let fields = br.add(b / 16);
        let mut prev = 0u64;
        for (t, sh) in shapes.iter().enumerate() {
            let bw = core::ptr::read_unaligned(br.add(8 * t).cast::<u64>());
            let (x, y, mx, my) = decode_chunk::<HI, LO, RT>(sh, bw, prev, fields, tb);
            prev = bw;
            let wx = _mm512_mask_sub_epi8(x, mx, zero, x);
            let wy = _mm512_mask_sub_epi8(y, my, zero, y);
            let corr = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, bias, wx), bias, wy);
            _mm512_store_si512(o.add(3 * t).cast(), wx);
            _mm512_store_si512(o.add(3 * t + 1).cast(), wy);
            _mm512_store_si512(o.add(3 * t + 2).cast(), _mm512_sub_epi32(zero, corr));
        }
    }
}

/// `GR` decoded rows × `GC` prepared columns: `put(r, c, y)` for each.
// Index loops over the tile's rows and columns read better than zipped iterators here.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn gemm_tile(
    rows: *const __m512i,
    ds: &[f32],
    cols: [*const __m512i; GC],
    nch: usize,
    cpb: usize,
    out: &mut [[f32; GC]; GR],
) {
    let nblk = nch / cpb;
    let zps = _mm512_setzero_ps();
    let mut tot = [[zps; GC]; GR];
    for j in 0..nblk {
        let mut bacc = [[zps; GC]; GR];
        for t in 0..cpb {
            let c = j * cpb + t;
            let mut ae = [_mm512_setzero_si512(); GC];
            let mut ao = [_mm512_setzero_si512(); GC];
            let mut sc = [zps; GC];
            for k in 0..GC {
                let p = cols[k].add(3 * c);
                ae[k] = _mm512_load_si512(p.cast());
                ao[k] = _mm512_load_si512(p.add(1).cast());
                sc[k] = _mm512_load_ps(p.add(2).cast());
            }
            for r in 0..GR {
                let p = rows.add(3 * (r * nch + c));
                let wx = _mm512_load_si512(p.cast());
                let wy = _mm512_load_si512(p.add(1).cast());
                let nc = _mm512_load_si512(p.add(2).cast());
                for k in 0..GC {
                    let isum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(nc, ae[k], wx), ao[k], wy);
                    bacc[r][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), sc[k], bacc[r][k]);
                }
            }
        }
        for r in 0..GR {
            let d = ds[r * nblk + j];
            if d != 0.0 {
                let dv = _mm512_set1_ps(d);
                for k in 0..GC {
                    tot[r][k] = _mm512_fmadd_ps(bacc[r][k], dv, tot[r][k]);
                }
            }
        }
    }
    let v = reduce8([
        tot[0][0], tot[0][1], tot[1][0], tot[1][1], tot[2][0], tot[2][1], tot[3][0], tot[3][1],
    ]);
    let mut lanes = [0f32; 16];
    _mm512_storeu_ps(lanes.as_mut_ptr(), v);
    for (i, o) in out.iter_mut().flatten().enumerate() {
        *o = lanes[4 * (i % 4) + 2 * (i / 4)];
    }
}

/// `_mm512_reduce_add_ps` of 8 vectors at once, with its exact order of additions (halves of 8
/// lanes, then of 4, then of 2, then the last two lanes): result `i` in lane
/// `4·(i mod 4) + 2·(i div 4)`.
#[inline(always)]
unsafe fn reduce8(a: [__m512; 8]) -> __m512 {
    // s8[i] = a[i] + a[i + 8]: two vectors per register.
    let l1: [__m512; 4] = core::array::from_fn(|k| {
        let (x, y) = (a[2 * k], a[2 * k + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(x, y),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(x, y),
        )
    });
    // s4[i] = s8[i] + s8[i + 4]: 128-bit lane k of l2[h] = vector 4h + k.
    let l2: [__m512; 2] = core::array::from_fn(|h| {
        let (x, y) = (l1[2 * h], l1[2 * h + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y),
        )
    });
    // s2[i] = s4[i] + s4[i + 2]: lanes 4k, 4k+1 ← vector k; 4k+2, 4k+3 ← vector 4 + k.
    let l3 = _mm512_add_ps(
        _mm512_shuffle_ps::<0b01_00_01_00>(l2[0], l2[1]),
        _mm512_shuffle_ps::<0b11_10_11_10>(l2[0], l2[1]),
    );
    // s2[0] + s2[1].
    _mm512_add_ps(l3, _mm512_permute_ps::<0b10_11_00_01>(l3))
}

/// The GEMM of a trellis type without QJL signs: rows `w` (`rb` bytes each) · prepared
/// activations `acts` (`ab` bytes each), every result bit-identical to [`dot_tcq`]'s.
///
/// # Safety
/// As for [`dot_tcq`]; `w` is whole rows and `acts` whole prepared activations of them.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,bmi2,avx2,fma")]
unsafe fn gemm_tcq<const HI: u32, const LO: u32>(
    ty: GgmlType,
    w: &[u8],
    rb: usize,
    acts: &[u8],
    ab: usize,
    put: &mut dyn FnMut(usize, usize, f32),
) {
    let s = spec(ty);
    let rows = w.len() / rb;
    let ncol = acts.len() / ab;
    let n = rb * 512 / s.bpw64;
    let b = match block_for(ty, n) {
        Some(b) if b >= 128 => b,
        _ => {
            for r in 0..rows {
                for j in 0..ncol {
                    let v = dot_tcq::<HI, LO, false, 0, RT, RT>(
                        ty,
                        &w[r * rb..(r + 1) * rb],
                        &acts[j * ab..(j + 1) * ab],
                    );
                    put(r, j, v);
                }
            }
            return;
        }
    };
    let pr = prep(ty);
    let shapes: &[Shape] = if b == 256 { &pr.s256 } else { &pr.s128 };
    let cpb = shapes.len();
    let nch = n / 128;
    let nblk = n / b;
    let tb = tabs(pr);
    // Prepared columns (an even number: a zero column pads an odd count).
    let ncp = ncol.next_multiple_of(GC);
    let mut bufs = SCRATCH.take();
    let need = (ncp + GR) * 3 * nch;
    if bufs.len() < need {
        bufs = vec![_mm512_setzero_si512(); need];
    }
    let (colv, tile) = bufs.split_at_mut(ncp * 3 * nch);
    if ncp > ncol {
        colv[ncol * 3 * nch..].fill(_mm512_setzero_si512());
    }
    let flip = _mm512_set1_epi8(-128);
    for j in 0..ncol {
        let a = acts.as_ptr().add(j * ab);
        let o = colv.as_mut_ptr().add(j * 3 * nch);
        for c in 0..nch {
            let ae = _mm512_loadu_si512(a.add(128 * c).cast());
            let ao = _mm512_loadu_si512(a.add(128 * c + 64).cast());
            _mm512_store_si512(o.add(3 * c).cast(), _mm512_xor_si512(ae, flip));
            _mm512_store_si512(o.add(3 * c + 1).cast(), _mm512_xor_si512(ao, flip));
            _mm512_store_ps(o.add(3 * c + 2).cast(), scales4(a.add(n + 16 * c)));
        }
    }
    let mut ds = vec![0f32; GR * nblk];
    let cb = (GEMM_COL_BYTES / (192 * nch)).max(GC) / GC * GC;
    let mut out = [[0f32; GC]; GR];
    let mut jb = 0;
    while jb < ncp {
        let je = (jb + cb).min(ncp);
        let mut r0 = 0;
        while r0 < rows {
            let nr = (rows - r0).min(GR);
            for r in 0..GR {
                let o = tile.as_mut_ptr().add(r * 3 * nch);
                let d = &mut ds[r * nblk..(r + 1) * nblk];
                if r < nr {
                    decode_row::<HI, LO>(s, shapes, &tb, b, w.as_ptr().add((r0 + r) * rb), o, d);
                } else {
                    d.fill(0.0);
                }
            }
            let mut j = jb;
            while j < je {
                let cols: [*const __m512i; GC] =
                    core::array::from_fn(|k| colv.as_ptr().add((j + k) * 3 * nch));
                gemm_tile(tile.as_ptr(), &ds, cols, nch, cpb, &mut out);
                for (r, o) in out.iter().enumerate().take(nr) {
                    for (k, &v) in o.iter().enumerate() {
                        if j + k < ncol {
                            put(r0 + r, j + k, v);
                        }
                    }
                }
                j += GC;
            }
            r0 += GR;
        }
        jb = je;
    }
    SCRATCH.set(bufs);
}

thread_local! {
    /// The GEMM's prepared columns and decoded tile, kept per thread between calls (every
    /// element a call reads it writes first; stale values only reach padding rows, whose
    /// results are not used).
    static SCRATCH: core::cell::Cell<Vec<__m512i>> = const { core::cell::Cell::new(Vec::new()) };
}

macro_rules! dots {
    ($($name:ident, $pf_name:ident: $ty:expr, $hi:literal, $lo:literal, $qjl:literal, $f0:literal, $f1:literal;)*) => {$(
        /// The AVX-512 dot product of one row of this type with its prepared activation.
        ///
        /// # Safety
        /// The CPU must have [`FEATURES`]; the lengths are the caller's to check.
        pub(crate) unsafe fn $name(w: &[u8], a: &[u8]) -> f32 {
            dot_tcq::<$hi, $lo, $qjl, 0, $f0, $f1>($ty, w, a)
        }
        /// The same dot product with software prefetch of the weight stream (same results).
        ///
        /// # Safety
        /// As for the plain one.
        pub(crate) unsafe fn $pf_name(w: &[u8], a: &[u8]) -> f32 {
            dot_tcq::<$hi, $lo, $qjl, { super::intel::PREFETCH_T0 }, $f0, $f1>($ty, w, a)
        }
    )*};
}

// The shape flags of the two chunks of a 256-block (bit 0: unpack, bit 1: lo pairs; §1, §8):
// only TQT4_5's first chunk has whole-byte fields; the TQT types' second chunk holds the lo
// pairs (n_lo = 8, or 40 for 3_375 — all in the second chunk); TQJ types have one width.
dots! {
    dot_tqt4_5, dot_tqt4_5_pf: GgmlType::TQT4_5, 9, 8, false, 0, 3;
    dot_tqt3_375, dot_tqt3_375_pf: GgmlType::TQT3_375, 7, 6, false, 1, 3;
    dot_tqt2_5, dot_tqt2_5_pf: GgmlType::TQT2_5, 5, 4, false, 1, 3;
    dot_tqj4_5, dot_tqj4_5_pf: GgmlType::TQJ4_5, 7, 7, true, 1, 1;
    dot_tqj3_375, dot_tqj3_375_pf: GgmlType::TQJ3_375, 5, 5, true, 1, 1;
    dot_tqj2_5, dot_tqj2_5_pf: GgmlType::TQJ2_5, 3, 3, true, 1, 1;
}

macro_rules! gemms {
    ($($name:ident: $ty:expr, $hi:literal, $lo:literal;)*) => {$(
        /// The AVX-512 GEMM of this type (decode each row once per column block; results
        /// bit-identical to the dot product's).
        ///
        /// # Safety
        /// The CPU must have [`FEATURES`]; the lengths are the caller's to check.
        pub(crate) unsafe fn $name(
            w: &[u8],
            rb: usize,
            acts: &[u8],
            ab: usize,
            put: &mut dyn FnMut(usize, usize, f32),
        ) {
            gemm_tcq::<$hi, $lo>($ty, w, rb, acts, ab, put)
        }
    )*};
}

gemms! {
    gemm_tqt4_5: GgmlType::TQT4_5, 9, 8;
    gemm_tqt3_375: GgmlType::TQT3_375, 7, 6;
    gemm_tqt2_5: GgmlType::TQT2_5, 5, 4;
}

// ------------------------------------------------------------------------------------------------
// Unpacking for the register-tiled GEMM (`x86::tile`, lanes = rows): one 256-block of one row
// to 256 biased codes (`code + 128` as u8) in the tile's k order — per chunk `t` of 64 pairs and
// group `i` of 16 pairs (32 coordinates, one activation scale): the 16 x codes, then the 16 y
// codes — and the block multiplier `d` (0 for a zero block, whose codes are all 128).

/// Decodes one 256-block at `x` into `q` (256 u8, tile k order) and writes `d` as the f32 at
/// `s + 4·r`.
#[inline(always)]
unsafe fn unpack_tile<const HI: u32, const LO: u32, const F0: u8, const F1: u8>(
    ty: GgmlType,
    x: *const u8,
    q: *mut u8,
    s: *mut u8,
    r: usize,
) {
    let bias = _mm512_set1_epi8(-128);
    let e = *x;
    s.add(4 * r).cast::<f32>().write_unaligned(scale_of(e));
    if e == 0 {
        for i in 0..4 {
            _mm512_storeu_si512(q.add(64 * i).cast(), bias);
        }
        return;
    }
    let pr = prep(ty);
    let tb = tabs(pr);
    let br = x.add(spec(ty).header_bytes(256));
    let fields = br.add(16);
    let zero = _mm512_setzero_si512();
    // [x.l0, y.l0, x.l1, y.l1] and [x.l2, y.l2, x.l3, y.l3] (128-bit lanes of 16 pairs).
    let i0 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
    let i1 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    let b0 = core::ptr::read_unaligned(br.cast::<u64>());
    let b1 = core::ptr::read_unaligned(br.add(8).cast::<u64>());
    let chunks = [
        decode_chunk::<HI, LO, F0>(&pr.s256[0], b0, 0, fields, &tb),
        decode_chunk::<HI, LO, F1>(&pr.s256[1], b1, b0, fields, &tb),
    ];
    for (t, (cx, cy, mx, my)) in chunks.into_iter().enumerate() {
        let wx = _mm512_xor_si512(_mm512_mask_sub_epi8(cx, mx, zero, cx), bias);
        let wy = _mm512_xor_si512(_mm512_mask_sub_epi8(cy, my, zero, cy), bias);
        let o = q.add(128 * t);
        _mm512_storeu_si512(o.cast(), _mm512_permutex2var_epi64(wx, i0, wy));
        _mm512_storeu_si512(o.add(64).cast(), _mm512_permutex2var_epi64(wx, i1, wy));
    }
}

macro_rules! tile_unpacks {
    ($($name:ident: $ty:expr, $hi:literal, $lo:literal, $f0:literal, $f1:literal;)*) => {$(
        /// One 256-block of this type to the tiled GEMM's biased codes and block multiplier.
        ///
        /// # Safety
        /// The CPU must have [`FEATURES`]; `x` is a whole 256-block, `q` takes 256 bytes and
        /// `s + 4·r` an f32.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,bmi2,avx2,fma")]
        pub(crate) unsafe fn $name(x: *const u8, q: *mut u8, s: *mut u8, r: usize) {
            unpack_tile::<$hi, $lo, $f0, $f1>($ty, x, q, s, r)
        }
    )*};
}

tile_unpacks! {
    tile_tqt4_5: GgmlType::TQT4_5, 9, 8, 0, 3;
    tile_tqt3_375: GgmlType::TQT3_375, 7, 6, 1, 3;
    tile_tqt2_5: GgmlType::TQT2_5, 5, 4, 1, 3;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tq::{prepare_activation, quantize_row, TqParams};
    use crate::formats::tq_rotation::SplitMix64;

    /// The 256-block paths against the generic loop, bit for bit, on quantized Gaussian rows
    /// (QJL residuals included) with prepared Gaussian activations, for every trellis type.
    #[test]
    fn fast_paths_give_the_generic_loops_bits() {
        let have = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("avx512vbmi")
            && fast_available();
        if !have {
            let req = std::env::var("GQ_REQUIRE_ISAS").unwrap_or_default();
            assert!(
                !req.contains("avx512"),
                "GQ_REQUIRE_ISAS={req} but this CPU lacks AVX-512 VBMI/VBMI2/GFNI"
            );
            eprintln!("not run: this CPU has no AVX-512 VBMI/VBMI2/GFNI");
            return;
        }
        let p = TqParams { seed: 7 };
        let mut g = SplitMix64::new(3);
        macro_rules! check {
            ($($ty:expr, $hi:literal, $lo:literal, $qjl:literal, $f0:literal, $f1:literal;)*) => {$(
                for n in [256usize, 512, 2816] {
                    for _ in 0..3 {
                        let w: Vec<f32> = (0..n).map(|_| g.next_normal() as f32 * 0.03).collect();
                        let mut q = vec![0u8; $ty.row_bytes(n).unwrap()];
                        quantize_row($ty, &p, &w, None, &mut q).unwrap();
                        let x: Vec<f32> = (0..n).map(|_| g.next_normal() as f32 * 2.0).collect();
                        let mut a = vec![0u8; crate::formats::tq::act_bytes($ty, n).unwrap()];
                        prepare_activation($ty, &p, &x, &mut a);
                        // SAFETY: the features were detected above; whole rows.
                        let (fast, generic) = unsafe {
                            (
                                dot_tcq::<$hi, $lo, $qjl, 0, $f0, $f1>($ty, &q, &a),
                                dot_tcq_loop::<$hi, $lo, $qjl, 0, $f0, $f1>($ty, &q, &a),
                            )
                        };
                        assert_eq!(fast.to_bits(), generic.to_bits(), "{} n={n}", $ty);
                        if $qjl {
                            assert!(q.chunks_exact($ty.row_bytes(256).unwrap()).any(|b| b[1] != 0));
                        }
                    }
                }
            )*};
        }
        check! {
            GgmlType::TQT4_5, 9, 8, false, 0, 3;
            GgmlType::TQT3_375, 7, 6, false, 1, 3;
            GgmlType::TQT2_5, 5, 4, false, 1, 3;
            GgmlType::TQJ4_5, 7, 7, true, 1, 1;
            GgmlType::TQJ3_375, 5, 5, true, 1, 1;
            GgmlType::TQJ2_5, 3, 3, true, 1, 1;
        }
    }
}
