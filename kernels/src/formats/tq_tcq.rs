//! The TurboQuant trellis types: `TQT4_5`, `TQT3_375`, `TQT2_5` (MSE codes) and `TQJ4_5`,
//! `TQJ3_375`, `TQJ2_5` (codes + 1-bit QJL residual signs). Normative spec:
//! docs/turboquant.md §5–§10; shared parts in [`super::tq`].
//!
//! Each column block of `B` weights (rotated, [`super::tq_rotation`]) stores one scale byte `e`
//! (`d = scale_of(e)`), and its `B/2` coordinate pairs `(u[2p], u[2p+1])` by 2-D trellis-coded
//! quantization: pair `p` takes a point of a 4-fold symmetric 2-D Lloyd–Max code (tables in
//! [`super::tq_tables`], int8 in units of 1/32), split into 4 subsets; an 8-state trellis
//! chooses which subsets are allowed, so one branch bit per pair doubles the code at no rate
//! cost. Pair `p` stores its branch bit `b_p` and a field `f_p = q | mx << (w−3) | my << (w−2)`
//! of `w − 1` bits (`w` the pair width). With `z_p = 2·(b_p ⊕ b_{p−2} ⊕ b_{p−3}) + b_{p−1}`
//! (`b_{−1} = b_{−2} = b_{−3} = 0`) the table entry is `k = f_p ⊕ (z_p << (w−3))` and the pair
//! decodes to `d · ((−1)^mx · X_k, (−1)^my · Y_k)`.
//!
//! Block layout: `[e] [g, m sign bits: TQJ only] [B/2 branch bits] [fields]`, bit fields LSB
//! first. The last `n_lo` pairs of a `TQT*` block use the next narrower code so that the block
//! has exactly the type's bits per weight.

// Index loops over pairs and bit planes read better than iterator chains here.
#![allow(clippy::needless_range_loop)]

use super::tq::{
    act_scale, rho_of, scale_code_of_rms, scale_of, BitReader, TqError, TqParams, MAX_RMS,
};
use super::tq_rotation::{block_sign_bits, rotate_block, unrotate_block, QJL_SEED_XOR};
use super::tq_trellis::{book, next_state, subset, viterbi, Coded, Nn};
use super::Format;
use crate::isa::Isa;
use crate::types::GgmlType;

/// One trellis type's layout parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcqSpec {
    /// The type.
    pub ty: GgmlType,
    /// Whether the type carries QJL residual signs (`TQJ*`).
    pub qjl: bool,
    /// Bits per weight × 64 (288 = 4.5, 216 = 3.375, 160 = 2.5).
    pub bpw64: usize,
    /// Width in bits of the ordinary ("hi") pairs.
    pub hi: u32,
    /// Width of the last `n_lo` pairs of a block (`TQT*`).
    pub lo: u32,
    /// Smallest column block the layout allows.
    pub min_block: usize,
}

/// The six trellis types.
pub const SPECS: [TcqSpec; 6] = [
    TcqSpec {
        ty: GgmlType::TQT4_5,
        qjl: false,
        bpw64: 288,
        hi: 9,
        lo: 8,
        min_block: 32,
    },
    TcqSpec {
        ty: GgmlType::TQT3_375,
        qjl: false,
        bpw64: 216,
        hi: 7,
        lo: 6,
        min_block: 64,
    },
    TcqSpec {
        ty: GgmlType::TQT2_5,
        qjl: false,
        bpw64: 160,
        hi: 5,
        lo: 4,
        min_block: 32,
    },
    TcqSpec {
        ty: GgmlType::TQJ4_5,
        qjl: true,
        bpw64: 288,
        hi: 7,
        lo: 7,
        min_block: 32,
    },
    TcqSpec {
        ty: GgmlType::TQJ3_375,
        qjl: true,
        bpw64: 216,
        hi: 5,
        lo: 5,
        min_block: 64,
    },
    TcqSpec {
        ty: GgmlType::TQJ2_5,
        qjl: true,
        bpw64: 160,
        hi: 3,
        lo: 3,
        min_block: 32,
    },
];

/// The spec of a trellis type.
pub fn spec(ty: GgmlType) -> &'static TcqSpec {
    SPECS
        .iter()
        .find(|s| s.ty == ty)
        .unwrap_or_else(|| panic!("{ty} is not a TurboQuant trellis type"))
}

impl TcqSpec {
    /// Bits per weight, all overheads counted.
    pub fn bpw(&self) -> f64 {
        self.bpw64 as f64 / 64.0
    }
    /// Bytes of one block of `b` weights.
    pub fn block_bytes(&self, b: usize) -> usize {
        self.bpw64 * b / 512
    }
    /// QJL sign bits per block (0 for the MSE types).
    pub fn qjl_m(&self, b: usize) -> usize {
        match (self.qjl, self.bpw64) {
            (false, _) => 0,
            (true, 216) => 7 * b / 8 - 16,
            (true, _) => b - 16,
        }
    }
    /// Narrow ("lo") pairs at the end of each block.
    pub fn n_lo(&self, b: usize) -> usize {
        match (self.qjl, self.bpw64) {
            (true, _) => 0,
            (false, 216) => 8 + b / 8,
            (false, _) => 8,
        }
    }
    /// Bytes before the bit stream: `e`, and for TQJ `g` and the sign bits.
    pub fn header_bytes(&self, b: usize) -> usize {
        if self.qjl {
            2 + self.qjl_m(b) / 8
        } else {
            1
        }
    }
    /// Width in bits of pair `p` of a block of `b`.
    #[inline]
    pub fn pair_bits(&self, b: usize, p: usize) -> u32 {
        if p >= b / 2 - self.n_lo(b) {
            self.lo
        } else {
            self.hi
        }
    }
}

/// `√(π/2)` as the formats use it (f32 bits 0x3FA06C99).
pub const QJL_K: f32 = 1.253_314_1;

/// The QJL coefficient of a block: `c = K·B·32·d·ρ(g)/m` (f32, left to right).
#[inline]
pub fn qjl_coef(b: usize, m: usize, d: f32, g: u8) -> f32 {
    QJL_K * b as f32 * 32.0 * d * rho_of(g) / m as f32
}

// ------------------------------------------------------------------------------------------------
// Decoding.

/// The signed integer values (table units) of the pairs of one block: `out[2p]`, `out[2p+1]` =
/// `(±X_k, ±Y_k)`. Returns the scale byte.
pub fn decode_ints(s: &TcqSpec, b: usize, blk: &[u8], out: &mut [i8]) -> u8 {
    let np = b / 2;
    let hdr = s.header_bytes(b);
    let mut r = BitReader::new(&blk[hdr..]);
    let mut branch = [0u8; 128];
    for v in branch.iter_mut().take(np) {
        *v = r.get(1) as u8;
    }
    let mut st = 0usize;
    for p in 0..np {
        let w = s.pair_bits(b, p);
        let bp = branch[p] as usize;
        let z = subset(st, bp) as u32;
        st = next_state(st, bp);
        let f = r.get(w - 1);
        let k = (f ^ (z << (w - 3))) as usize;
        let q = super::tq_tables::pair_table(w)[k];
        out[2 * p] = if (f >> (w - 3)) & 1 == 1 { -q[0] } else { q[0] };
        out[2 * p + 1] = if (f >> (w - 2)) & 1 == 1 { -q[1] } else { q[1] };
    }
    blk[0]
}

/// Decodes one block into the rotated domain (`out`, `b` values): the pairs, and for TQJ the
/// QJL residual estimate `c · Tᵀσ` (`qjl_signs`: the block's QJL sign bits).
pub fn decode_block(s: &TcqSpec, b: usize, blk: &[u8], qjl_signs: &[u64; 4], out: &mut [f32]) {
    let e = blk[0];
    if e == 0 {
        out.fill(0.0);
        return;
    }
    let d = scale_of(e);
    let mut ints = [0i8; 256];
    decode_ints(s, b, blk, &mut ints);
    for (o, &q) in out.iter_mut().zip(&ints[..b]) {
        *o = q as f32 * d;
    }
    if s.qjl && blk[1] != 0 {
        let m = s.qjl_m(b);
        let c = qjl_coef(b, m, d, blk[1]);
        let mut t = [0f32; 256];
        for (i, ti) in t.iter_mut().take(m).enumerate() {
            *ti = if (blk[2 + i / 8] >> (i % 8)) & 1 == 1 {
                -c
            } else {
                c
            };
        }
        // Tᵀt with T = H·D'/√B: t ← D'·(H·t/√B).
        unrotate_block(&mut t[..b], qjl_signs);
        for (o, v) in out.iter_mut().zip(&t[..b]) {
            *o += v;
        }
    }
}

/// Dequantizes one row (`dst.len()` weights, column blocks of `b`).
pub fn dequantize_row(ty: GgmlType, params: &TqParams, b: usize, src: &[u8], dst: &mut [f32]) {
    let s = spec(ty);
    let bb = s.block_bytes(b);
    for (j, (x, y)) in src
        .chunks_exact(bb)
        .zip(dst.chunks_exact_mut(b))
        .enumerate()
    {
        let qs = if s.qjl {
            block_sign_bits(params.seed ^ QJL_SEED_XOR, j as u64, b)
        } else {
            [0; 4]
        };
        decode_block(s, b, x, &qs, y);
        unrotate_block(y, &block_sign_bits(params.seed, j as u64, b));
    }
}

// ------------------------------------------------------------------------------------------------
// The scalar dot product (the reference of the SIMD kernels).

/// Weight row of `ty` · prepared activation ([`super::tq::prepare_activation`]): per block
/// `d · Σ_g s_g · Σ_{i∈g} q_i a_i` over the groups `g` of 32 coordinates (exact integer sums),
/// plus for TQJ `c · Σ_g s'_g · Σ_{i∈g, i<m} σ_i t_i` over the QJL half.
pub fn dot(ty: GgmlType, w: &[u8], a: &[u8]) -> f32 {
    let s = spec(ty);
    let n = w.len() * 512 / s.bpw64;
    let b = super::tq::block_for(ty, n).expect("whole rows");
    let bb = s.block_bytes(b);
    let one = n + n / 8;
    let (am, aq) = a.split_at(one);
    let mut ints = [0i8; 256];
    let mut total = 0f32;
    for (j, blk) in w.chunks_exact(bb).enumerate() {
        let e = decode_ints(s, b, blk, &mut ints);
        if e == 0 {
            continue;
        }
        let d = scale_of(e);
        let mut acc = 0f32;
        for g in 0..b / 32 {
            let c0 = j * b + 32 * g;
            let mut isum = 0i32;
            for k in 0..32 {
                let av = am[super::tq::act_pos(n, c0 + k)] as i8;
                isum += ints[32 * g + k] as i32 * av as i32;
            }
            acc += isum as f32 * act_scale(am, n, c0 / 32);
        }
        total += d * acc;
        if s.qjl && blk[1] != 0 {
            let m = s.qjl_m(b);
            let mut sacc = 0f32;
            for g in 0..m.div_ceil(32) {
                let c0 = j * b + 32 * g;
                let mut isum = 0i32;
                for k in 0..32.min(m - 32 * g) {
                    let i = 32 * g + k;
                    let tv = aq[super::tq::act_pos(n, c0 + k)] as i8 as i32;
                    isum += if (blk[2 + i / 8] >> (i % 8)) & 1 == 1 {
                        -tv
                    } else {
                        tv
                    };
                }
                sacc += isum as f32 * act_scale(aq, n, c0 / 32);
            }
            total += qjl_coef(b, m, d, blk[1]) * sacc;
        }
    }
    total
}

// ------------------------------------------------------------------------------------------------
// Encoding (informative: docs/turboquant.md §12).

/// Per-block encoder scratch.
pub(crate) struct Scratch {
    v: Vec<f32>,
    coded: Vec<Coded>,
    best: Vec<Coded>,
    nn: Nn,
    recon: Vec<f32>,
}

impl Scratch {
    pub(crate) fn new(b: usize) -> Self {
        Scratch {
            v: vec![0.0; b],
            coded: vec![Coded::default(); b / 2],
            best: vec![Coded::default(); b / 2],
            nn: Nn::new(b / 2),
            recon: vec![0.0; b],
        }
    }
}

/// Reconstruction (rotated domain) of coded pairs with multiplier `d`.
pub(crate) fn reconstruct(s: &TcqSpec, b: usize, d: f32, coded: &[Coded], out: &mut [f32]) {
    for (p, c) in coded.iter().enumerate() {
        let q = book(s.pair_bits(b, p)).pts[c.k as usize];
        out[2 * p] = if c.mirror & 1 == 1 { -q[0] } else { q[0] } * d;
        out[2 * p + 1] = if c.mirror & 2 == 2 { -q[1] } else { q[1] } * d;
    }
}

/// Importance of one block for the scale choice: the importance of each column, the block's
/// original weights and its rotation signs (the error is measured in the original domain).
pub(crate) struct Weighting<'a> {
    pub(crate) imp: &'a [f32],
    pub(crate) orig: &'a [f32],
    pub(crate) signs: &'a [u64; 4],
}

/// Energy `Σ u²` of a rotated block in the encoder's fixed order: 16 partial sums (sum `j`
/// adds `u[j]², u[j+16]², …` in order), then `t[j] = s[j] + s[j+8]`, `t[j] + t[j+4]`,
/// `+ [j+2]`, `+ [j+1]` (the order a 16-lane vector gives).
pub(crate) fn energy16(u: &[f32]) -> f32 {
    let mut s = [0f32; 16];
    for c in u.chunks_exact(16) {
        for (a, v) in s.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    fold16(s)
}

/// [`energy16`]'s final sum of its 16 partial sums, in its fixed order (halves added pairwise:
/// `s[j] += s[j + h]` for h = 8, 4, 2, 1), which the vector encoders reproduce.
pub(crate) fn fold16(mut s: [f32; 16]) -> f32 {
    let mut h = 8;
    while h > 0 {
        for j in 0..h {
            s[j] += s[j + h];
        }
        h /= 2;
    }
    s[0]
}

/// The scale codes the encoder tries for a block of energy `energy`: the code nearest to the
/// RMS and the one below, those within 1..=255 (none for a zero block).
pub(crate) fn scale_candidates(energy: f32, b: usize) -> ([u8; 2], usize) {
    let mut out = [0u8; 2];
    let mut k = 0;
    if energy > 0.0 {
        let e0 = scale_code_of_rms((energy / b as f32).sqrt());
        for e in [e0, e0 - 1] {
            if (1..=255).contains(&e) {
                out[k] = e as u8;
                k += 1;
            }
        }
    }
    (out, k)
}

/// The error of the zero block: `Σ u²` (the block's energy), or with importance `Σ imp·x²`.
pub(crate) fn zero_error(energy: f32, weights: &Option<Weighting>) -> f32 {
    match weights {
        None => energy,
        Some(w) => w.imp.iter().zip(w.orig).map(|(a, x)| a * x * x).sum(),
    }
}

/// The error of coded pairs with scale code `e`: the search's squared error `t` (table units)
/// times `d²`, or with importance the weighted error of the reconstruction in the original
/// domain (`recon`: scratch of `b` values).
pub(crate) fn candidate_error(
    s: &TcqSpec,
    b: usize,
    e: u8,
    t: f32,
    coded: &[Coded],
    weights: &Option<Weighting>,
    recon: &mut [f32],
) -> f32 {
    let d = scale_of(e);
    match weights {
        None => t * d * d,
        Some(w) => {
            reconstruct(s, b, d, coded, recon);
            unrotate_block(recon, w.signs);
            w.imp
                .iter()
                .zip(w.orig)
                .zip(recon.iter())
                .map(|((a, x), y)| a * (x - y) * (x - y))
                .sum()
        }
    }
}

/// Packs the lo pairs' fields `q | mirror << (w − 3)` (`w − 1 = s.lo − 1` bits each, LSB
/// first, §8) of `coded` into `fields` from its first byte: the tail of a block whose hi fields
/// are whole bytes (`TQT4_5`), written by the vector encoders.
pub(crate) fn pack_lo_fields(s: &TcqSpec, coded: &[Coded], fields: &mut [u8]) {
    let bits = s.lo;
    let qm = (1u32 << (bits - 3)) - 1;
    let fm = (1u64 << (bits - 1)) - 1;
    let (mut acc, mut nacc, mut pos) = (0u64, 0u32, 0);
    for c in coded {
        let v = (c.k as u32 & qm) | (c.mirror as u32) << (bits - 3);
        acc |= (v as u64 & fm) << nacc;
        nacc += bits - 1;
        while nacc >= 8 {
            fields[pos] = acc as u8;
            pos += 1;
            acc >>= 8;
            nacc -= 8;
        }
    }
    if nacc > 0 {
        fields[pos] = acc as u8;
    }
}

/// Writes a block: scale byte `e` (0: zero block), for TQJ the residual norm and sign bits of
/// `u − reconstruction`, then the branch bits and fields of `coded`.
pub(crate) fn write_block(
    s: &TcqSpec,
    b: usize,
    e: u8,
    coded: &[Coded],
    u: &[f32],
    qjl_signs: &[u64; 4],
    dst: &mut [u8],
) {
    let np = b / 2;
    dst.fill(0);
    dst[0] = e;
    if e == 0 {
        return;
    }
    let d = scale_of(e);
    let hdr = s.header_bytes(b);
    if s.qjl {
        let m = s.qjl_m(b);
        let mut r = [0f32; 256];
        reconstruct(s, b, d, coded, &mut r[..b]);
        for i in 0..b {
            r[i] = u[i] - r[i];
        }
        let rn = r[..b].iter().map(|x| x * x).sum::<f32>().sqrt();
        let rho = rn / (32.0 * d * (b as f32).sqrt());
        let g = if rn > 0.0 {
            (16.0 * rho.log2() + 255.0).round().clamp(1.0, 255.0) as u8
        } else {
            0
        };
        dst[1] = g;
        if g > 0 {
            rotate_block(&mut r[..b], qjl_signs);
            for (i, t) in r.iter().take(m).enumerate() {
                if *t < 0.0 {
                    dst[2 + i / 8] |= 1 << (i % 8);
                }
            }
        }
    }
    // Branch bits: one per pair, LSB first.
    let (_, rest) = dst.split_at_mut(hdr);
    let (br, fields) = rest.split_at_mut(b / 16);
    for (byte, cs) in br.iter_mut().zip(coded[..np].chunks_exact(8)) {
        *byte = cs
            .iter()
            .enumerate()
            .fold(0u8, |a, (i, c)| a | (c.branch & 1) << i);
    }
    // Fields, LSB first: a 64-bit accumulator flushed 32 bits at a time (every flushed word
    // lies inside the block: the fields fill it exactly).
    let first_lo = np - s.n_lo(b);
    let (mut acc, mut nacc, mut pos) = (0u64, 0u32, 0usize);
    for (range, bits) in [(0..first_lo, s.hi), (first_lo..np, s.lo)] {
        let qmask = (1u32 << (bits - 3)) - 1;
        let fmask = (1u64 << (bits - 1)) - 1;
        for c in &coded[range] {
            let v = (c.k as u32 & qmask) | (c.mirror as u32) << (bits - 3);
            acc |= (v as u64 & fmask) << nacc;
            nacc += bits - 1;
            if nacc >= 32 {
                fields[pos..pos + 4].copy_from_slice(&(acc as u32).to_le_bytes());
                pos += 4;
                acc >>= 32;
                nacc -= 32;
            }
        }
    }
    while nacc > 0 {
        fields[pos] = acc as u8;
        pos += 1;
        acc >>= 8;
        nacc = nacc.saturating_sub(8);
    }
    debug_assert_eq!(hdr * 8 + b / 2 + 8 * pos, 8 * s.block_bytes(b));
}

/// Encodes one rotated block `u` (`b` values) into `dst` (`block_bytes(b)` bytes): the scalar
/// reference of the encoder (informative: docs/turboquant.md §12).
pub(crate) fn encode_block(
    s: &TcqSpec,
    b: usize,
    u: &[f32],
    weights: Option<Weighting>,
    qjl_signs: &[u64; 4],
    sc: &mut Scratch,
    dst: &mut [u8],
) {
    let energy = energy16(u);
    let np = b / 2;
    let books = |p: usize| book(s.pair_bits(b, p));
    let mut best_e = 0u8;
    let mut best_err = zero_error(energy, &weights);
    let (cands, nc) = scale_candidates(energy, b);
    for &e in &cands[..nc] {
        let d = scale_of(e);
        for i in 0..b {
            sc.v[i] = u[i] / d;
        }
        let t = viterbi(&sc.v, &books, &mut sc.nn, &mut sc.coded);
        let err = candidate_error(s, b, e, t, &sc.coded, &weights, &mut sc.recon);
        if err < best_err {
            best_err = err;
            best_e = e;
            sc.best.copy_from_slice(&sc.coded[..np]);
        }
    }
    write_block(s, b, best_e, &sc.best, u, qjl_signs, dst);
}

/// `Err(OutOfRange)` when the RMS of a rotated block of `b` values with energy `energy`
/// ([`energy16`]; the rotation keeps the energy) is above [`MAX_RMS`] or not finite.
#[inline]
pub(crate) fn check_range(energy: f32, b: usize, index: usize) -> Result<(), TqError> {
    let rms = (energy / b as f32).sqrt();
    if rms > MAX_RMS || !rms.is_finite() {
        return Err(TqError::OutOfRange { index, rms });
    }
    Ok(())
}

/// The index of the first non-finite value of `x`: a branch-free check per 256 values (which
/// the compiler vectorizes), the exact position only where one is found.
fn first_non_finite(x: &[f32]) -> Option<usize> {
    x.chunks(256).enumerate().find_map(|(c, ch)| {
        let ok = ch.iter().fold(true, |a, v| a & v.is_finite());
        (!ok).then(|| {
            256 * c
                + ch.iter()
                    .position(|v| !v.is_finite())
                    .expect("one is there")
        })
    })
}

/// The ISA whose trellis encoder [`super::tq::quantize_rows`] runs when asked for `isa` (an
/// ISA the CPU has): AVX-512 and AVX2 have vector paths (the scalar path's bytes), the others
/// run the scalar reference.
pub fn encoder_isa(isa: Isa) -> Isa {
    match isa {
        Isa::Avx512 | Isa::Avx2 if cfg!(target_arch = "x86_64") => isa,
        _ => Isa::Scalar,
    }
}

/// Quantizes rows of `n` weights in column blocks of `b` (see [`super::tq::quantize_rows`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn quantize_rows(
    ty: GgmlType,
    params: &TqParams,
    b: usize,
    src: &[f32],
    n: usize,
    imatrix: Option<&[f32]>,
    dst: &mut [u8],
    isa: Isa,
) -> Result<(), TqError> {
    let s = spec(ty);
    let bb = s.block_bytes(b);
    let rb = bb * (n / b);
    if let Some(i) = first_non_finite(src) {
        return Err(TqError::NonFinite { index: i % n });
    }
    let nb = n / b;
    let rot: Vec<[u64; 4]> = (0..nb)
        .map(|j| block_sign_bits(params.seed, j as u64, b))
        .collect();
    let qjl: Vec<[u64; 4]> = (0..nb)
        .map(|j| {
            if s.qjl {
                block_sign_bits(params.seed ^ QJL_SEED_XOR, j as u64, b)
            } else {
                [0; 4]
            }
        })
        .collect();
    #[cfg(target_arch = "x86_64")]
    match encoder_isa(isa) {
        // SAFETY: callers pass `Isa::or_available`, so the CPU has AVX-512 F/BW/VL (and AVX2, BMI2: `has_avx512`).
        Isa::Avx512 => {
            return unsafe {
                crate::x86::tq_encode::quantize_rows(s, b, src, n, imatrix, dst, &rot, &qjl)
            }
        }
        // SAFETY: as above, the CPU has AVX2.
        Isa::Avx2 => {
            return unsafe {
                crate::x86::tq_encode_avx2::quantize_rows(s, b, src, n, imatrix, dst, &rot, &qjl)
            }
        }
        _ => {}
    }
    let _ = isa;
    let mut sc = Scratch::new(b);
    let mut u = vec![0f32; b];
    for (row, out) in src.chunks_exact(n).zip(dst.chunks_exact_mut(rb)) {
        for (j, (x, y)) in row
            .chunks_exact(b)
            .zip(out.chunks_exact_mut(bb))
            .enumerate()
        {
            u.copy_from_slice(x);
            rotate_block(&mut u, &rot[j]);
            check_range(energy16(&u), b, j * b)?;
            let w = imatrix.map(|q| Weighting {
                imp: &q[j * b..(j + 1) * b],
                orig: x,
                signs: &rot[j],
            });
            encode_block(s, b, &u, w, &qjl[j], &mut sc, y);
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Registry entries (default parameters; see `super::tq` for the seeded API).

macro_rules! tcq_format {
    ($name:ident, $ty:expr) => {
        /// Registry entry (the default seed; files are read through `formats::tq`).
        pub(crate) const $name: Format = Format {
            ty: $ty,
            quantize_ref: {
                fn q(src: &[f32], dst: &mut [u8]) {
                    super::tq::quantize_rows(
                        $ty,
                        &TqParams::default(),
                        src,
                        src.len(),
                        None,
                        dst,
                        Isa::Scalar,
                    )
                    .unwrap_or_else(|e| panic!("{}: {e}", $ty))
                }
                q
            },
            quantize: {
                fn q(src: &[f32], imatrix: Option<&[f32]>, dst: &mut [u8], isa: Isa) {
                    super::tq::quantize_rows(
                        $ty,
                        &TqParams::default(),
                        src,
                        src.len(),
                        imatrix,
                        dst,
                        isa,
                    )
                    .unwrap_or_else(|e| panic!("{}: {e}", $ty))
                }
                q
            },
            dequantize: {
                fn dq(src: &[u8], dst: &mut [f32]) {
                    super::tq::dequantize_row($ty, &TqParams::default(), src, dst)
                }
                dq
            },
            dot: Some({
                fn d(w: &[u8], a: &[u8]) -> f32 {
                    dot($ty, w, a)
                }
                d
            }),
            scale_offsets: &[],
        };
    };
}

tcq_format!(FORMAT_TQT4_5, GgmlType::TQT4_5);
tcq_format!(FORMAT_TQT3_375, GgmlType::TQT3_375);
tcq_format!(FORMAT_TQT2_5, GgmlType::TQT2_5);
tcq_format!(FORMAT_TQJ4_5, GgmlType::TQJ4_5);
tcq_format!(FORMAT_TQJ3_375, GgmlType::TQJ3_375);
tcq_format!(FORMAT_TQJ2_5, GgmlType::TQJ2_5);

#[cfg(test)]
mod tests {
    #[test]
    fn first_non_finite_finds_the_first_one() {
        let mut x = vec![1.0f32; 1000];
        assert_eq!(super::first_non_finite(&x), None);
        assert_eq!(super::first_non_finite(&[]), None);
        for (i, v) in [
            (0usize, f32::NAN),
            (255, f32::INFINITY),
            (256, f32::NEG_INFINITY),
            (999, -f32::NAN),
        ] {
            let mut y = x.clone();
            y[i] = v;
            y[999] = f32::NAN;
            assert_eq!(super::first_non_finite(&y), Some(i));
        }
        x[700] = f32::MAX;
        x[701] = f32::MIN_POSITIVE / 2.0;
        assert_eq!(super::first_non_finite(&x), None);
    }

    use super::super::tq::{self, prepare_activation};
    use super::super::tq_rotation::SplitMix64;
    use super::*;

    fn gaussian(n: usize, seed: u64, sigma: f32) -> Vec<f32> {
        let mut g = SplitMix64::new(seed);
        (0..n).map(|_| g.next_normal() as f32 * sigma).collect()
    }

    fn rel_mse(a: &[f32], b: &[f32]) -> f64 {
        let e: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
        e / a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>()
    }

    fn quant(ty: GgmlType, p: &TqParams, w: &[f32], isa: Isa) -> Vec<u8> {
        let mut q = vec![0u8; ty.row_bytes(w.len()).unwrap()];
        tq::quantize_rows(ty, p, w, w.len(), None, &mut q, isa).unwrap();
        q
    }

    fn dequant(ty: GgmlType, p: &TqParams, q: &[u8], n: usize) -> Vec<f32> {
        let mut y = vec![0f32; n];
        tq::dequantize_row(ty, p, q, &mut y);
        y
    }

    fn fnv1a(b: &[u8]) -> u64 {
        b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
            (h ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    /// docs/turboquant.md §13: 512 weights `f32(0.02·N_i)`, N_i the Box–Muller normals of
    /// SplitMix64(7), default seed. (type, bytes, first 12 bytes, FNV-1a-64, y[0..3], Σy²).
    /// One test vector: type, bytes, first 12 bytes (hex), FNV-1a-64, y[0..3], Σy².
    type Vector = (GgmlType, usize, &'static str, u64, [f32; 3], f64);

    const VECTORS: [Vector; 6] = [
        (
            GgmlType::TQT4_5,
            288,
            "73c7eb6de6af07624d941185",
            0x18f5d9f67f0b75a6,
            [0.019629896, -0.03633114, 0.00023745839],
            2.086815551e-1,
        ),
        (
            GgmlType::TQT3_375,
            216,
            "72d189a765e00c6f61e679f4",
            0xb010dfa2e067abb9,
            [0.016839359, -0.039848305, 0.00036291778],
            2.106249831e-1,
        ),
        (
            GgmlType::TQT2_5,
            160,
            "72477a7430642408ad35b0d0",
            0x5297627ec26b23a9,
            [0.020795155, -0.028779335, -0.0006895419],
            2.009858367e-1,
        ),
        (
            GgmlType::TQJ4_5,
            288,
            "72cced8a8b2e1614d24b65a3",
            0x54a940070ae95672,
            [0.021551013, -0.036629364, 0.00012935232],
            2.081002107e-1,
        ),
        (
            GgmlType::TQJ3_375,
            216,
            "72dce91c637a0002c2fb5da2",
            0xb7db966d024e96fc,
            [0.028882924, -0.035771754, 0.0036806362],
            2.121401927e-1,
        ),
        (
            GgmlType::TQJ2_5,
            160,
            "72ec0e99fd242447c855807b",
            0x88f4594b4b9f8933,
            [0.026535757, -0.04206553, -0.0028923843],
            2.353663012e-1,
        ),
    ];

    const TQT4_5_BYTES: &str = "
        73c7eb6de6af07624d9411857f66a4f2451d63d3cc5dc7c11e8c8519eb9a0744d5a25381cfdd0de09ff3978ee9e7494b
        2846d6cc8a41cc66c298d3d183c967a397c78b5597baab9682d732d1cb8b5a484a85900dd1ce72a60a1a018fef85d789
        8fd62522c8f4e52b84278b0e84d8627009d30217d6025dc6a58f05c5c82ac392ea82910699ac8b8dab30b13c403cd734
        72ac51422e56d07a2aa44b843d8051271c70ced71a9265ef05dbde2e5ecd3d16c6cba74af5ef834740c7a69581efd9b3
        5f1d9d8753d1bac0d6a4e0ca9a2660aa9d839a6f512315d085a78a3a816aa99dc09cda8655127199b8d99846501126db
        039e68104288604921125f8b63c70995379122acdd942f15d74701c7cbca44289dc3d979c4e4420eb04e174cf4c414d0";
    const TQJ2_5_BYTES: &str = "
        72ec0e99fd242447c855807b791bfa10b446ba213d2683641a8622c631f10104d8a2d5bbfdac2876ab5e5c98337c55b0
        f42dca5ae2b3eb16bdddfea79ba8f356c227e0afc3cf8917c7b4e2ec8aba391e72eb89afa3f8ca9d2d81857b163dbdc9
        653695483ad8bbf61bc9d97ade07a0e73ccae880f8021b923292edf88a36d6ca3d364fc3db53296f68f3bea44a908a21
        7ea45b3056176427e2d2d187de8f1ec2";

    fn vector_row() -> Vec<f32> {
        let mut g = SplitMix64::new(7);
        (0..512).map(|_| (0.02 * g.next_normal()) as f32).collect()
    }

    #[test]
    fn spec_test_vectors_decode() {
        // Decoder side (normative): the committed bytes decode to the committed values.
        let p = TqParams::default();
        for (ty, hexbytes) in [
            (GgmlType::TQT4_5, TQT4_5_BYTES),
            (GgmlType::TQJ2_5, TQJ2_5_BYTES),
        ] {
            let q = unhex(hexbytes);
            let v = VECTORS.iter().find(|v| v.0 == ty).unwrap();
            assert_eq!(q.len(), v.1);
            assert_eq!(fnv1a(&q), v.3, "{ty}");
            let y = dequant(ty, &p, &q, 512);
            assert_eq!(&y[..3], &v.4, "{ty}");
            let s: f64 = y.iter().map(|x| (*x as f64).powi(2)).sum();
            assert!((s / v.5 - 1.0).abs() < 1e-8, "{ty}: {s}");
        }
    }

    #[test]
    fn spec_test_vectors_encode() {
        // Encoder side (the reference encoder of §12, scalar and vector paths).
        let p = TqParams::default();
        let w = vector_row();
        for (ty, len, first, h, y3, s2) in VECTORS {
            for isa in [
                Isa::Scalar,
                Isa::Avx2.or_available(),
                Isa::Avx512.or_available(),
            ] {
                let q = quant(ty, &p, &w, isa);
                assert_eq!(q.len(), len);
                assert_eq!(hex(&q[..12]), first, "{ty} {isa}");
                assert_eq!(fnv1a(&q), h, "{ty} {isa}");
                let y = dequant(ty, &p, &q, 512);
                assert_eq!(&y[..3], &y3, "{ty}");
                let s: f64 = y.iter().map(|x| (*x as f64).powi(2)).sum();
                assert!((s / s2 - 1.0).abs() < 1e-8, "{ty}: {s}");
            }
        }
        assert_eq!(
            hex(&quant(GgmlType::TQT4_5, &p, &w, Isa::Scalar)),
            TQT4_5_BYTES.split_whitespace().collect::<String>()
        );
    }

    #[test]
    fn layouts_have_the_stated_size() {
        for s in SPECS {
            for b in [32usize, 64, 128, 256] {
                if b < s.min_block {
                    continue;
                }
                let mut bits = 8 * s.header_bytes(b) + b / 2;
                for p in 0..b / 2 {
                    bits += s.pair_bits(b, p) as usize - 1;
                }
                assert_eq!(bits, s.bpw64 * b / 64, "{} B={b}", s.ty);
                assert_eq!(s.qjl_m(b) % 8, 0);
                assert_eq!(
                    s.ty.row_bytes(b),
                    Some(s.block_bytes(b)),
                    "{}: ggml table",
                    s.ty
                );
            }
            assert_eq!(s.bpw(), s.ty.bits_per_weight());
        }
        assert_eq!(QJL_K, (std::f32::consts::PI / 2.0).sqrt());
        assert_eq!(QJL_K.to_bits(), 0x3FA0_6C99);
    }

    #[test]
    fn dot_matches_dequantized_row_and_is_deterministic() {
        let p = TqParams { seed: 12345 };
        for s in SPECS {
            for n in [256usize, 768, 192, 96] {
                if tq::block_for(s.ty, n).is_none() {
                    continue;
                }
                let w = gaussian(n, 5 + n as u64, 0.02);
                let q = quant(s.ty, &p, &w, Isa::Scalar);
                assert_eq!(q, quant(s.ty, &p, &w, Isa::Scalar), "{}", s.ty);
                let y = dequant(s.ty, &p, &q, n);
                let x = gaussian(n, 9, 1.0);
                let mut a = vec![0u8; tq::act_bytes(s.ty, n).unwrap()];
                prepare_activation(s.ty, &p, &x, &mut a);
                let exact: f64 = y.iter().zip(&x).map(|(u, v)| *u as f64 * *v as f64).sum();
                let mag: f64 = y
                    .iter()
                    .zip(&x)
                    .map(|(u, v)| (*u as f64 * *v as f64).abs())
                    .sum();
                let got = dot(s.ty, &q, &a) as f64;
                // The activation is int8 per 32 after rotation: relative error ~1/(127·√12) per
                // coordinate, so the dot is within a few 1e-3 of the magnitude.
                assert!(
                    (got - exact).abs() < 1e-2 * mag,
                    "{} n={n}: {got} vs {exact} (magnitude {mag})",
                    s.ty
                );
            }
        }
    }

    #[test]
    fn mse_on_gaussian_rows_beats_kquants_and_respects_shannon() {
        // Independent references: llama.cpp's Q4_K / Q3_K / Q2_K on i.i.d. Gaussian rows of 5376
        // (ggml_quantize_chunk + gguf-py dequantize, research report): 0.005100, 0.022846,
        // 0.087886. The TQ types must be at least 30 % better at equal or smaller size, and
        // above the Gaussian rate–distortion bound 2^(-2R).
        let p = TqParams::default();
        for (ty, kq) in [
            (GgmlType::TQT4_5, 0.005100),
            (GgmlType::TQT3_375, 0.022846),
            (GgmlType::TQT2_5, 0.087886),
        ] {
            let n = 256 * 32;
            let w = gaussian(n, 11, 0.02);
            let y = dequant(ty, &p, &quant(ty, &p, &w, Isa::Avx512.or_available()), n);
            let e = rel_mse(&w, &y);
            assert!(e < 0.7 * kq, "{ty}: {e} vs {kq}");
            assert!(
                e > (-2.0 * ty.bits_per_weight()).exp2(),
                "{ty}: {e} below Shannon"
            );
        }
    }

    #[test]
    fn qjl_types_are_unbiased_over_seeds_and_mse_types_shrink() {
        // E_seed[ŵ] − w along w: zero for TQJ (within 4 s.e.), negative (≈ −MSE) for TQT.
        let n = 256;
        let w = gaussian(n, 21, 0.02);
        let ww: f64 = w.iter().map(|x| (*x as f64).powi(2)).sum();
        for (ty, unbiased) in [
            (GgmlType::TQJ4_5, true),
            (GgmlType::TQJ2_5, true),
            (GgmlType::TQT3_375, false),
            (GgmlType::TQT2_5, false),
        ] {
            let seeds = 200;
            let a: Vec<f64> = (0..seeds)
                .map(|s| {
                    let p = TqParams { seed: 5000 + s };
                    let y = dequant(ty, &p, &quant(ty, &p, &w, Isa::Avx512.or_available()), n);
                    w.iter()
                        .zip(&y)
                        .map(|(x, v)| *x as f64 * (v - x) as f64)
                        .sum::<f64>()
                        / ww
                })
                .collect();
            let k = seeds as f64;
            let mean = a.iter().sum::<f64>() / k;
            let se = (a.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k * (k - 1.0))).sqrt();
            if unbiased {
                assert!(mean.abs() < 4.0 * se, "{ty}: {mean} ± {se}");
            } else {
                assert!(mean < -4.0 * se, "{ty}: {mean} ± {se}");
            }
        }
    }

    #[test]
    fn imatrix_scale_choice_lowers_the_weighted_error() {
        let p = TqParams::default();
        let n = 256 * 16;
        let w = gaussian(n, 31, 0.02);
        let mut g = SplitMix64::new(4);
        let imat: Vec<f32> = (0..n).map(|_| (g.next_normal() as f32).exp()).collect();
        for ty in [GgmlType::TQT4_5, GgmlType::TQT2_5] {
            let q0 = quant(ty, &p, &w, Isa::Scalar);
            let mut q1 = vec![0u8; q0.len()];
            tq::quantize_rows(ty, &p, &w, n, Some(&imat), &mut q1, Isa::Scalar).unwrap();
            let werr = |q: &[u8]| -> f64 {
                let y = dequant(ty, &p, q, n);
                (0..n)
                    .map(|i| imat[i] as f64 * ((w[i] - y[i]) as f64).powi(2))
                    .sum()
            };
            assert!(werr(&q1) < werr(&q0), "{ty}");
        }
    }

    #[test]
    fn degenerate_blocks_and_errors() {
        let p = TqParams::default();
        for s in SPECS {
            let n = 256;
            let zero = quant(s.ty, &p, &[0.0; 256], Isa::Scalar);
            assert!(dequant(s.ty, &p, &zero, n).iter().all(|v| *v == 0.0));
            let mut w = vec![1e-7f32; n];
            w[3] = 1000.0;
            let y = dequant(s.ty, &p, &quant(s.ty, &p, &w, Isa::Scalar), n);
            assert!(y.iter().all(|v| v.is_finite()));
            assert!(rel_mse(&w, &y) < 0.2, "{}", s.ty);
            let tiny = vec![1e-9f32; n];
            let y = dequant(s.ty, &p, &quant(s.ty, &p, &tiny, Isa::Scalar), n);
            assert!(y.iter().all(|v| v.is_finite() && v.abs() < 1e-6));
            let mut q = vec![0u8; s.ty.row_bytes(n).unwrap()];
            w[7] = f32::NAN;
            assert_eq!(
                tq::quantize_row(s.ty, &p, &w, None, &mut q),
                Err(TqError::NonFinite { index: 7 })
            );
            let mut w3 = vec![0.5f32; 3 * n];
            w3[n + 300 % n] = f32::NEG_INFINITY;
            w3[2 * n + 9] = f32::NAN;
            let mut q3 = vec![0u8; 3 * s.ty.row_bytes(n).unwrap()];
            assert_eq!(
                tq::quantize_rows(s.ty, &p, &w3, n, None, &mut q3, Isa::Scalar),
                Err(TqError::NonFinite { index: 300 % n }),
                "the first non-finite value, as an index in its row"
            );
            assert!(matches!(
                tq::quantize_row(s.ty, &p, &[60000.0; 256], None, &mut q),
                Err(TqError::OutOfRange { .. })
            ));
            let mut q = vec![0u8; 50];
            assert!(matches!(
                tq::quantize_row(s.ty, &p, &[0.0; 100], None, &mut q),
                Err(TqError::RowLength { .. })
            ));
        }
    }

    #[test]
    fn the_seed_matters_and_files_decode_with_their_own() {
        let w = gaussian(512, 3, 0.02);
        let (p1, p2) = (TqParams { seed: 1 }, TqParams { seed: 2 });
        let q1 = quant(GgmlType::TQT4_5, &p1, &w, Isa::Scalar);
        let q2 = quant(GgmlType::TQT4_5, &p2, &w, Isa::Scalar);
        assert_ne!(q1, q2);
        let e1 = rel_mse(&w, &dequant(GgmlType::TQT4_5, &p1, &q1, 512));
        let wrong = rel_mse(&w, &dequant(GgmlType::TQT4_5, &p2, &q1, 512));
        assert!(e1 < 0.01 && wrong > 0.5, "{e1} {wrong}");
    }
}
