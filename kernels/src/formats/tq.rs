//! TurboQuant: gq's own weight types (normative spec: docs/turboquant.md). A row is cut into
//! column blocks of `B` (a power of two up to 256, the same for every row of a tensor:
//! [`block_for`]); each block is rotated by a seeded randomised Hadamard transform
//! ([`super::tq_rotation`]) and coded in the rotated domain with fixed codebooks:
//!
//! - `TQT4_5`, `TQT3_375`, `TQT2_5` (ids 4200–4202): 2-D Lloyd–Max pair codes with an 8-state
//!   trellis and one log-scale byte per block, MSE-optimal ([`super::tq_tcq`]);
//! - `TQJ4_5`, `TQJ3_375`, `TQJ2_5` (4203–4205): narrower pair codes plus 1-bit QJL signs of the
//!   residual, inner-product unbiased ([`super::tq_tcq`]);
//! - `TQP4_5`, `TQP3_4375`, `TQP2_5` (4210–4212): PolarQuant, the other first stage, kept
//!   selectable for comparison ([`super::tq_polar`]).
//!
//! The numbers in the names are the exact bits per weight, all overheads counted.
//!
//! # What a decoder needs besides the bytes
//! The rotation seed, a file-level parameter ([`TqParams`], GGUF key `gq.tq.seed`). Everything
//! that un-rotates or rotates takes it explicitly: [`quantize_row`], [`dequantize_row`] and
//! [`prepare_activation`] (which the GEMV/GEMM call through
//! [`crate::FloatAct::Rotated`]). The dot products work in the rotated domain on a prepared
//! activation and need no seed. The registry entries of the TQ types (the plain
//! [`super::Format`] function pointers, which have no parameter) use [`TqParams::default`],
//! the seed gq writes unless told otherwise; code that reads files uses the functions here.
//!
//! # Rows, not blocks
//! A TQ type's bytes per row depend on the row length only (`bpw · n / 8`), as ggml's type
//! tables require (block size 32, or 64 for the `3_375` types), but the column block `B` and
//! the rotation signs depend on the position in the row: TQ bytes must be decoded row by row.
//!
//! # Activations
//! Weight rows meet [`GgmlType::TQA8`] activations: the rotated activation, int8 per group of
//! 32 coordinates with an f32 scale, de-interleaved per 128 coordinates (the even coordinates,
//! then the odd ones: the two coordinates of a pair meet the two halves of a pair code). The
//! `TQJ*` types take two such rows back to back: the rotated activation, then its QJL transform.

pub use super::tq_rotation::{TqParams, TQ_DEFAULT_SEED, TQ_MAX_BLOCK, TQ_VERSION};
use super::Format;
use crate::isa::Isa;
use crate::types::GgmlType;

/// Why a row cannot be quantized to a TurboQuant type.
#[derive(Clone, Debug, PartialEq)]
pub enum TqError {
    /// The row length has no column block the type allows (`n` not a multiple of 32, or of 64
    /// for the `3_375` types, or of 256 for the `TQP*` types): the writer must pick another type.
    RowLength {
        /// Row length.
        n: usize,
        /// The type.
        ty: GgmlType,
    },
    /// A weight is NaN or infinite.
    NonFinite {
        /// Column of the first such weight.
        index: usize,
    },
    /// A block's RMS is above what the scale byte represents (3756).
    OutOfRange {
        /// First column of the block.
        index: usize,
        /// The block's RMS.
        rms: f32,
    },
}

impl std::error::Error for TqError {}

impl std::fmt::Display for TqError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TqError::RowLength { n, ty } => write!(
                f,
                "rows of {n} have no column block {ty} allows (a multiple of {}); use another type",
                ty.block_size()
            ),
            TqError::NonFinite { index } => {
                write!(f, "weight {index} of the row is not finite (NaN or Inf)")
            }
            TqError::OutOfRange { index, rms } => write!(
                f,
                "the block at column {index} has RMS {rms}, above the TurboQuant scale range (3756)"
            ),
        }
    }
}

/// The largest block RMS a scale byte represents (`32 · d(255)`, rounded down).
pub const MAX_RMS: f32 = 3756.0;

/// The column block of `ty` for rows of `n`, or `None` when the type cannot hold such rows.
pub fn block_for(ty: GgmlType, n: usize) -> Option<usize> {
    if !ty.is_turboquant() {
        return None;
    }
    if ty.is_tq_polar() {
        return (n > 0 && n.is_multiple_of(256)).then_some(256);
    }
    if n == 0 {
        return None;
    }
    super::tq_rotation::block_size(n, TQ_MAX_BLOCK, ty.block_size())
}

/// Quantizes one row of `ty` with `params` on [`Isa::selected`]. `imatrix`: the row's importance
/// (one value per column), used to choose each block's scale.
pub fn quantize_row(
    ty: GgmlType,
    params: &TqParams,
    src: &[f32],
    imatrix: Option<&[f32]>,
    dst: &mut [u8],
) -> Result<(), TqError> {
    quantize_rows(ty, params, src, src.len(), imatrix, dst, Isa::selected())
}

/// Quantizes whole rows of `n` weights (`src.len() / n` of them) into `dst` on `isa` (or the
/// best ISA below it the CPU has): the same bytes on every ISA and for any batching. `imatrix`
/// holds `n` importance values shared by every row.
pub fn quantize_rows(
    ty: GgmlType,
    params: &TqParams,
    src: &[f32],
    n: usize,
    imatrix: Option<&[f32]>,
    dst: &mut [u8],
    isa: Isa,
) -> Result<(), TqError> {
    assert!(ty.is_turboquant(), "{ty} is not a TurboQuant type");
    let b = block_for(ty, n).ok_or(TqError::RowLength { n, ty })?;
    let rb = ty.row_bytes(n).expect("block_for checked the row length");
    assert!(
        src.len().is_multiple_of(n) && dst.len() == src.len() / n * rb,
        "{ty}: quantize_rows sizes"
    );
    if let Some(w) = imatrix {
        assert_eq!(
            w.len(),
            n,
            "{ty}: importance row length differs from the row"
        );
    }
    if ty.is_tq_polar() {
        for (x, y) in src.chunks_exact(n).zip(dst.chunks_exact_mut(rb)) {
            super::tq_polar::quantize_row(ty, params, x, imatrix, y)?;
        }
        return Ok(());
    }
    super::tq_tcq::quantize_rows(ty, params, b, src, n, imatrix, dst, isa.or_available())
}

/// Dequantizes one row (`dst.len()` weights) of `ty` with `params`.
pub fn dequantize_row(ty: GgmlType, params: &TqParams, src: &[u8], dst: &mut [f32]) {
    let n = dst.len();
    let b = block_for(ty, n).unwrap_or_else(|| panic!("{ty}: no column block for rows of {n}"));
    assert_eq!(
        Some(src.len()),
        ty.row_bytes(n),
        "{ty}: dequantize_row sizes"
    );
    if ty.is_tq_polar() {
        super::tq_polar::dequantize_row(ty, params, src, dst)
    } else {
        super::tq_tcq::dequantize_row(ty, params, b, src, dst)
    }
}

/// Bytes of the activation row that rows of `n` weights of `ty` are dotted with: one
/// [`GgmlType::TQA8`] row, two for the `TQJ*` types.
pub fn act_bytes(ty: GgmlType, n: usize) -> Option<usize> {
    let one = GgmlType::TQA8.row_bytes(n)?;
    Some(if ty.is_tq_qjl() { 2 * one } else { one })
}

/// The activation for rows of `ty`: `x` rotated block by block with `params`' seed and
/// quantized to [`GgmlType::TQA8`] (for the `TQJ*` types followed by the QJL transform of the
/// rotated activation, also quantized). `dst` holds [`act_bytes`] bytes.
pub fn prepare_activation(ty: GgmlType, params: &TqParams, x: &[f32], dst: &mut [u8]) {
    let n = x.len();
    let b = block_for(ty, n).unwrap_or_else(|| panic!("{ty}: no column block for rows of {n}"));
    let one = GgmlType::TQA8
        .row_bytes(n)
        .expect("n is whole groups of 32");
    assert_eq!(Some(dst.len()), act_bytes(ty, n), "{ty}: activation size");
    let mut r = x.to_vec();
    rotate_fast(&mut r, b, params.seed);
    quantize_act_fast(&r, &mut dst[..one]);
    if ty.is_tq_qjl() {
        rotate_fast(&mut r, b, params.seed ^ super::tq_rotation::QJL_SEED_XOR);
        quantize_act_fast(&r, &mut dst[one..]);
    }
}

/// [`super::tq_rotation::rotate_row`] on the fastest path this CPU has (same bits).
fn rotate_fast(x: &mut [f32], b: usize, seed: u64) {
    #[cfg(target_arch = "x86_64")]
    if b >= 16 && crate::x86::tq_act::usable() {
        // SAFETY: `usable` checked the CPU features; `x` is whole blocks of `b` (the caller's
        // `block_for`).
        unsafe { crate::x86::tq_act::rotate_row(x, b, seed) };
        return;
    }
    super::tq_rotation::rotate_row(x, b, seed)
}

/// [`quantize_act`] on the fastest path this CPU has (same bytes).
fn quantize_act_fast(x: &[f32], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if x.len().is_multiple_of(128)
        && dst.len() == x.len() + x.len() / 8
        && crate::x86::tq_act::usable()
    {
        // SAFETY: `usable` checked the CPU features; the lengths are checked above.
        unsafe { crate::x86::tq_act::quantize_act(x, dst) };
        return;
    }
    quantize_act(x, dst)
}

/// [`prepare_activation`] with the scalar rotation and quantizer only (the reference the
/// vector path is tested against; the same bytes).
pub fn prepare_activation_ref(ty: GgmlType, params: &TqParams, x: &[f32], dst: &mut [u8]) {
    let n = x.len();
    let b = block_for(ty, n).unwrap_or_else(|| panic!("{ty}: no column block for rows of {n}"));
    let one = GgmlType::TQA8
        .row_bytes(n)
        .expect("n is whole groups of 32");
    assert_eq!(Some(dst.len()), act_bytes(ty, n), "{ty}: activation size");
    let mut r = x.to_vec();
    super::tq_rotation::rotate_row(&mut r, b, params.seed);
    quantize_act(&r, &mut dst[..one]);
    if ty.is_tq_qjl() {
        super::tq_rotation::rotate_row(&mut r, b, params.seed ^ super::tq_rotation::QJL_SEED_XOR);
        quantize_act(&r, &mut dst[one..]);
    }
}

// ------------------------------------------------------------------------------------------------
// Scale codes (docs/turboquant.md §5, §9).

/// `2^(k/8)`, k = 0..8, rounded to f32 (normative bit patterns).
pub const EIGHTHS: [u32; 8] = [
    0x3f800000, 0x3f8b95c2, 0x3f9837f0, 0x3fa5fed7, 0x3fb504f3, 0x3fc5672a, 0x3fd744fd, 0x3feac0c7,
];
/// `2^(k/16)`, k = 0..16, rounded to f32 (normative bit patterns).
pub const SIXTEENTHS: [u32; 16] = [
    0x3f800000, 0x3f85aac3, 0x3f8b95c2, 0x3f91c3d3, 0x3f9837f0, 0x3f9ef532, 0x3fa5fed7, 0x3fad583f,
    0x3fb504f3, 0x3fbd08a4, 0x3fc5672a, 0x3fce248c, 0x3fd744fd, 0x3fe0ccdf, 0x3feac0c7, 0x3ff5257d,
];

/// Exact power of two as f32 (`|k| < 127`).
#[inline]
pub(crate) fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

/// Scale byte → multiplier of the int8 table values: `d = 2^((e >> 3) − 25) · 2^((e & 7)/8)`
/// (`e = 0`: the block is zero). Exact in f32 given [`EIGHTHS`].
#[inline]
pub fn scale_of(e: u8) -> f32 {
    if e == 0 {
        return 0.0;
    }
    f32::from_bits(EIGHTHS[(e & 7) as usize]) * pow2((e >> 3) as i32 - 25)
}

/// Residual-norm byte of the `TQJ*` types: `ρ = 2^((g − 255)/16)` (`g = 0`: no residual).
#[inline]
pub fn rho_of(g: u8) -> f32 {
    if g == 0 {
        return 0.0;
    }
    let v = g as i32 - 255;
    f32::from_bits(SIXTEENTHS[v.rem_euclid(16) as usize]) * pow2(v.div_euclid(16))
}

/// The scale code nearest to a block RMS in the log domain: `round(8·log2(rms/32) + 200)`,
/// computed exactly from the f32's exponent and mantissa (thresholds `2^((k − ½)/8)`), or
/// `i32::MIN / 2` for `rms = 0` or subnormal.
pub fn scale_code_of_rms(rms: f32) -> i32 {
    let bits = rms.to_bits();
    let exp = ((bits >> 23) & 0xff) as i32;
    if exp == 0 || rms <= 0.0 {
        return i32::MIN / 2;
    }
    // rms = m · 2^E, m in [1, 2): 8·log2(rms/32) + 200 = 8E + 160 + 8·log2(m).
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000) as f64;
    let j = ROUND_THRESHOLDS.iter().filter(|&&t| m >= t).count() as i32;
    8 * (exp - 127) + 160 + j
}

/// `2^((k − ½)/8)` for k = 1..=8: the mantissas where `round(8·log2(m))` steps up.
const ROUND_THRESHOLDS: [f64; 8] = [
    1.044_273_782_427_413_8,
    1.138_788_634_756_691_6,
    1.241_857_812_073_484,
    1.354_255_546_936_892_7,
    1.476_826_145_939_499_3,
    1.610_490_331_949_254_3,
    1.756_252_160_373_299_5,
    1.915_206_561_397_147_4,
];

// ------------------------------------------------------------------------------------------------
// Bit packing (LSB first).

/// Writes fields LSB first into a byte slice.
pub(crate) struct BitWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
    acc: u64,
    nacc: u32,
}

impl<'a> BitWriter<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            acc: 0,
            nacc: 0,
        }
    }

    /// Appends the low `n` (<= 32) bits of `v`.
    #[inline]
    pub(crate) fn put(&mut self, v: u32, n: u32) {
        self.acc |= ((v as u64) & ((1u64 << n) - 1)) << self.nacc;
        self.nacc += n;
        while self.nacc >= 8 {
            self.buf[self.pos] = self.acc as u8;
            self.pos += 1;
            self.acc >>= 8;
            self.nacc -= 8;
        }
    }

    /// Bits written so far.
    pub(crate) fn bits(&self) -> usize {
        self.pos * 8 + self.nacc as usize
    }
}

/// Reads fields LSB first from a byte slice.
pub(crate) struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize,
    acc: u64,
    nacc: u32,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            acc: 0,
            nacc: 0,
        }
    }

    /// The next `n` (<= 32) bits.
    #[inline]
    pub(crate) fn get(&mut self, n: u32) -> u32 {
        while self.nacc < n {
            self.acc |= (self.buf[self.pos] as u64) << self.nacc;
            self.pos += 1;
            self.nacc += 8;
        }
        let v = (self.acc & ((1u64 << n) - 1)) as u32;
        self.acc >>= n;
        self.nacc -= n;
        v
    }
}

// ------------------------------------------------------------------------------------------------
// The activation format TQA8.

/// Position in a [`GgmlType::TQA8`] row of `n` of the int8 of coordinate `i`: per chunk of 128
/// coordinates (the last one possibly 32, 64 or 96), the even coordinates then the odd ones.
#[inline]
pub fn act_pos(n: usize, i: usize) -> usize {
    let c = i & !127;
    let half = (n - c).min(128) / 2;
    c + (i & 1) * half + ((i & 127) >> 1)
}

/// Quantizes an (already rotated) activation row to [`GgmlType::TQA8`]: per group of 32
/// coordinates `s = amax / 127`, `q = round(x / s)` (half away from zero) in the de-interleaved
/// order of [`act_pos`]; then the `n / 32` scales as little-endian f32.
pub fn quantize_act(x: &[f32], dst: &mut [u8]) {
    let n = x.len();
    assert!(n.is_multiple_of(32) && dst.len() == n + n / 8, "TQA8 sizes");
    let (q, s) = dst.split_at_mut(n);
    for (g, xs) in x.chunks_exact(32).enumerate() {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        for (k, &v) in xs.iter().enumerate() {
            q[act_pos(n, 32 * g + k)] = (v * id).round() as i8 as u8;
        }
        s[4 * g..4 * g + 4].copy_from_slice(&d.to_le_bytes());
    }
}

/// [`GgmlType::TQA8`] back to f32 in natural order (tests and reference dots).
pub fn dequantize_act(src: &[u8], dst: &mut [f32]) {
    let n = dst.len();
    assert_eq!(src.len(), n + n / 8, "TQA8 sizes");
    let (q, s) = src.split_at(n);
    for (i, o) in dst.iter_mut().enumerate() {
        let g = i / 32;
        let d = f32::from_le_bytes([s[4 * g], s[4 * g + 1], s[4 * g + 2], s[4 * g + 3]]);
        *o = q[act_pos(n, i)] as i8 as f32 * d;
    }
}

/// The scale of group `g` of a TQA8 row of `n`.
#[inline]
pub(crate) fn act_scale(a: &[u8], n: usize, g: usize) -> f32 {
    let o = n + 4 * g;
    f32::from_le_bytes([a[o], a[o + 1], a[o + 2], a[o + 3]])
}

fn tqa8_quantize(src: &[f32], _imatrix: Option<&[f32]>, dst: &mut [u8], _isa: Isa) {
    quantize_act(src, dst)
}

/// The TQA8 activation format (no dot product: an activation type only).
pub(crate) const FORMAT_TQA8: Format = Format {
    ty: GgmlType::TQA8,
    quantize_ref: quantize_act,
    quantize: tqa8_quantize,
    dequantize: dequantize_act,
    dot: None,
    scale_offsets: &[],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_codes_are_exact_powers() {
        for e in 1..=255u8 {
            let want = (e as f64 / 8.0 - 25.0).exp2();
            assert!((scale_of(e) as f64 / want - 1.0).abs() < 1e-7, "e={e}");
        }
        for g in 1..=255u8 {
            let want = ((g as f64 - 255.0) / 16.0).exp2();
            assert!((rho_of(g) as f64 / want - 1.0).abs() < 1e-7, "g={g}");
        }
        assert_eq!(scale_of(0), 0.0);
        assert_eq!(rho_of(0), 0.0);
        for (k, &t) in ROUND_THRESHOLDS.iter().enumerate() {
            assert!((t - ((k as f64 + 0.5) / 8.0).exp2()).abs() < 1e-15);
        }
    }

    #[test]
    fn scale_code_rounds_the_log() {
        let mut g = super::super::tq_rotation::SplitMix64::new(3);
        for _ in 0..20000 {
            let rms = ((g.next_f64() * 60.0 - 40.0).exp2()) as f32;
            let want = (8.0 * ((rms as f64 / 32.0).log2() + 25.0)).round() as i32;
            assert_eq!(scale_code_of_rms(rms), want, "{rms}");
        }
        assert_eq!(scale_code_of_rms(32.0), 200);
        assert!(scale_code_of_rms(0.0) < -1_000_000);
    }

    #[test]
    fn act_layout_is_a_permutation_and_round_trips() {
        for n in [32usize, 64, 96, 128, 160, 256, 352, 4096] {
            let mut seen = vec![false; n];
            for i in 0..n {
                let p = act_pos(n, i);
                assert!(!seen[p]);
                seen[p] = true;
            }
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            let mut a = vec![0u8; GgmlType::TQA8.row_bytes(n).unwrap()];
            quantize_act(&x, &mut a);
            let mut y = vec![0f32; n];
            dequantize_act(&a, &mut y);
            for (u, v) in x.iter().zip(&y) {
                assert!((u - v).abs() <= 3.0 / 127.0 * 0.5 + 1e-6);
            }
        }
    }

    #[test]
    fn fast_quantizer_gives_the_reference_bytes_on_ties() {
        // Each group's amax is 63.5 (d = ½, 1/d = 2) and the other values k/2 + ¼, so every
        // scaled value is an exact half: rounding half away from zero decides each byte.
        let n = 512;
        let mut x: Vec<f32> = (0..n)
            .map(|i| ((i % 61) as f32 - 30.0) * 0.5 + 0.25)
            .collect();
        for g in x.chunks_exact_mut(32) {
            g[5] = 63.5;
        }
        x[40] = f32::NAN;
        x[100] = -0.0;
        let mut want = vec![0u8; n + n / 8];
        let mut got = want.clone();
        quantize_act(&x, &mut want);
        quantize_act_fast(&x, &mut got);
        assert_eq!(got, want);
        assert_eq!(
            want[act_pos(n, 0)] as i8,
            -30,
            "−14.75·2 = −29.5 rounds away from zero"
        );
    }

    #[test]
    fn block_choice_per_family() {
        assert_eq!(block_for(GgmlType::TQT4_5, 5376), Some(256));
        assert_eq!(block_for(GgmlType::TQT4_5, 96), Some(32));
        assert_eq!(block_for(GgmlType::TQT3_375, 96), None);
        assert_eq!(block_for(GgmlType::TQT3_375, 704), Some(64));
        assert_eq!(block_for(GgmlType::TQP4_5, 704), None);
        assert_eq!(block_for(GgmlType::TQP4_5, 512), Some(256));
        assert_eq!(block_for(GgmlType::Q4_K, 512), None);
    }
}
