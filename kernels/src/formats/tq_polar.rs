//! The PolarQuant types `TQP4_5`, `TQP3_4375`, `TQP2_5` (Han et al., arXiv 2502.02617): the
//! other first stage the issue asks for, kept selectable for comparison; the trellis types
//! ([`super::tq_tcq`]) measure better at every width (docs/turboquant.md §11, §14).
//!
//! A rotated block of `B = 256` coordinates goes through a recursive polar transform: level 1
//! turns each pair `(u[2i], u[2i+1])` into a radius and an angle `θ ∈ [0, 2π)`; level `l >= 2`
//! turns each pair of level-`(l−1)` radii into a radius and an angle `ψ ∈ [0, π/2]`; level 8
//! leaves the block norm. After a random rotation θ is uniform and ψ at level `l` has density
//! `∝ sin(2ψ)^(2^(l−1) − 1)`, so each level is coded with the Lloyd–Max code of its law
//! ([`super::tq_codebook::polar_angles`], tables in [`super::tq_tables`]); only the block scale
//! is stored (the scale byte of the trellis types).
//!
//! Block layout: `[e][level-1 codes][level-2 codes]…[level-8 code]`, each code `bits[l]` wide,
//! packed LSB first. Decoding: `r = [1]`; for `l = 8 … 1`: `r' [2i] = r[i]·cos_l[c]`,
//! `r'[2i+1] = r[i]·sin_l[c]` (f32 products, cos/sin from the committed tables); then
//! `u = r · (512·d)`, `d = scale_of(e)`.

// Index loops over the 8 levels read better than iterator chains here.
#![allow(clippy::needless_range_loop)]

use super::tq::{act_pos, act_scale, scale_code_of_rms, scale_of, BitReader, BitWriter};
use super::tq::{TqError, TqParams, MAX_RMS};
use super::tq_rotation::{block_sign_bits, rotate_block, unrotate_block};
use super::tq_tables::polar_table;
use super::Format;
use crate::isa::Isa;
use crate::types::GgmlType;

/// Levels of the polar transform of a 256-block.
const LEVELS: usize = 8;
/// The block size of the polar types.
pub const BLOCK: usize = 256;

/// Bits per angle at levels 1..=8 of a polar type.
pub fn allocation(ty: GgmlType) -> [u32; LEVELS] {
    let i = match ty {
        GgmlType::TQP4_5 => 0,
        GgmlType::TQP3_4375 => 1,
        GgmlType::TQP2_5 => 2,
        _ => panic!("{ty} is not a PolarQuant type"),
    };
    super::tq_codebook::POLAR_ALLOCATIONS[i]
}

/// Bytes of one block of a polar type.
pub fn block_bytes(ty: GgmlType) -> usize {
    let a = allocation(ty);
    (8 + (0..LEVELS)
        .map(|l| a[l] as usize * (BLOCK >> (l + 1)))
        .sum::<usize>())
        / 8
}

/// The angle codes of one block, level-major (level 1 first: 128, 64, …, 1 codes).
fn read_codes(ty: GgmlType, blk: &[u8], codes: &mut [u32; BLOCK - 1]) {
    let a = allocation(ty);
    let mut r = BitReader::new(&blk[1..]);
    let mut k = 0;
    for l in 0..LEVELS {
        for _ in 0..BLOCK >> (l + 1) {
            codes[k] = if a[l] == 0 { 0 } else { r.get(a[l]) };
            k += 1;
        }
    }
}

/// Offset of level `l` (0-based) in the level-major code array.
fn level_start(l: usize) -> usize {
    (0..l).map(|i| BLOCK >> (i + 1)).sum()
}

/// The unit-radius reconstruction of a block's codes (f32, the normative order).
fn decode_unit(ty: GgmlType, codes: &[u32; BLOCK - 1], out: &mut [f32; BLOCK]) {
    let a = allocation(ty);
    let mut r = [0f32; BLOCK];
    let mut next = [0f32; BLOCK];
    r[0] = 1.0;
    for l in (0..LEVELS).rev() {
        let (_, cos, sin) = polar_table(l as u32 + 1, a[l]);
        let cnt = BLOCK >> (l + 1);
        let base = level_start(l);
        for i in 0..cnt {
            let c = codes[base + i] as usize;
            next[2 * i] = r[i] * f32::from_bits(cos[c]);
            next[2 * i + 1] = r[i] * f32::from_bits(sin[c]);
        }
        r[..2 * cnt].copy_from_slice(&next[..2 * cnt]);
    }
    *out = r;
}

/// Decodes one block into the rotated domain.
pub fn decode_block(ty: GgmlType, blk: &[u8], out: &mut [f32]) {
    if blk[0] == 0 {
        out.fill(0.0);
        return;
    }
    let big_d = scale_of(blk[0]) * 512.0;
    let mut codes = [0u32; BLOCK - 1];
    read_codes(ty, blk, &mut codes);
    let mut unit = [0f32; BLOCK];
    decode_unit(ty, &codes, &mut unit);
    for (o, v) in out.iter_mut().zip(unit) {
        *o = v * big_d;
    }
}

/// Dequantizes one row.
pub fn dequantize_row(ty: GgmlType, params: &TqParams, src: &[u8], dst: &mut [f32]) {
    let bb = block_bytes(ty);
    for (j, (x, y)) in src
        .chunks_exact(bb)
        .zip(dst.chunks_exact_mut(BLOCK))
        .enumerate()
    {
        decode_block(ty, x, y);
        unrotate_block(y, &block_sign_bits(params.seed, j as u64, BLOCK));
    }
}

/// Weight row · prepared [`GgmlType::TQA8`] activation: per block
/// `512·d · Σ_g s_g · Σ_{i∈g} unit_i · q_i` (f32, in order).
pub fn dot(ty: GgmlType, w: &[u8], a: &[u8]) -> f32 {
    let bb = block_bytes(ty);
    let n = w.len() / bb * BLOCK;
    let mut codes = [0u32; BLOCK - 1];
    let mut unit = [0f32; BLOCK];
    let mut total = 0f32;
    for (j, blk) in w.chunks_exact(bb).enumerate() {
        if blk[0] == 0 {
            continue;
        }
        read_codes(ty, blk, &mut codes);
        decode_unit(ty, &codes, &mut unit);
        let mut acc = 0f32;
        for g in 0..BLOCK / 32 {
            let c0 = j * BLOCK + 32 * g;
            let mut s = 0f32;
            for k in 0..32 {
                s += unit[32 * g + k] * a[act_pos(n, c0 + k)] as i8 as f32;
            }
            acc += s * act_scale(a, n, c0 / 32);
        }
        total += scale_of(blk[0]) * 512.0 * acc;
    }
    total
}

/// Angle codes of a rotated block: the nearest angle of each level's codebook (f64 angles).
fn encode_angles(ty: GgmlType, u: &[f32], codes: &mut [u32; BLOCK - 1]) {
    let a = allocation(ty);
    let mut r: Vec<f64> = u.iter().map(|&x| x as f64).collect();
    let mut k = 0;
    for l in 0..LEVELS {
        let (ang, _, _) = polar_table(l as u32 + 1, a[l]);
        let mut next = Vec::with_capacity(r.len() / 2);
        for i in 0..r.len() / 2 {
            let (x, y) = (r[2 * i], r[2 * i + 1]);
            next.push(x.hypot(y));
            let mut t = y.atan2(x);
            if l == 0 && t < 0.0 {
                t += std::f64::consts::TAU;
            }
            // Nearest level: the thresholds are the midpoints of neighbouring angles.
            let mut c = 0usize;
            while c + 1 < ang.len()
                && t >= 0.5 * (f64::from_bits(ang[c]) + f64::from_bits(ang[c + 1]))
            {
                c += 1;
            }
            codes[k] = c as u32;
            k += 1;
        }
        r = next;
    }
}

/// Quantizes one row (informative encoder: angles by nearest level in f64, then the scale code
/// among the three nearest to the least-squares scale that gives the least (importance-weighted)
/// squared error, the zero block competing).
pub fn quantize_row(
    ty: GgmlType,
    params: &TqParams,
    src: &[f32],
    imatrix: Option<&[f32]>,
    dst: &mut [u8],
) -> Result<(), TqError> {
    if let Some(i) = src.iter().position(|x| !x.is_finite()) {
        return Err(TqError::NonFinite { index: i });
    }
    let a = allocation(ty);
    let bb = block_bytes(ty);
    let mut codes = [0u32; BLOCK - 1];
    let mut unit = [0f32; BLOCK];
    let mut u = [0f32; BLOCK];
    let mut y = [0f32; BLOCK];
    for (j, (x, out)) in src
        .chunks_exact(BLOCK)
        .zip(dst.chunks_exact_mut(bb))
        .enumerate()
    {
        let rms = (x.iter().map(|v| v * v).sum::<f32>() / BLOCK as f32).sqrt();
        if rms > MAX_RMS || !rms.is_finite() {
            return Err(TqError::OutOfRange {
                index: j * BLOCK,
                rms,
            });
        }
        let signs = block_sign_bits(params.seed, j as u64, BLOCK);
        u.copy_from_slice(x);
        rotate_block(&mut u, &signs);
        out.fill(0);
        if rms == 0.0 {
            continue;
        }
        encode_angles(ty, &u, &mut codes);
        decode_unit(ty, &codes, &mut unit);
        let uc: f64 = u
            .iter()
            .zip(&unit)
            .map(|(p, q)| *p as f64 * *q as f64)
            .sum();
        let cc: f64 = unit.iter().map(|q| (*q as f64).powi(2)).sum();
        let err_of = |e: u8, y: &mut [f32; BLOCK]| -> f64 {
            let big_d = scale_of(e) * 512.0;
            match imatrix {
                None => u
                    .iter()
                    .zip(&unit)
                    .map(|(p, q)| ((p - q * big_d) as f64).powi(2))
                    .sum(),
                Some(w) => {
                    for (o, q) in y.iter_mut().zip(&unit) {
                        *o = q * big_d;
                    }
                    unrotate_block(y, &signs);
                    (0..BLOCK)
                        .map(|i| w[j * BLOCK + i] as f64 * ((x[i] - y[i]) as f64).powi(2))
                        .sum()
                }
            }
        };
        let mut best = (
            0u8,
            match imatrix {
                None => u.iter().map(|p| (*p as f64).powi(2)).sum::<f64>(),
                Some(w) => (0..BLOCK)
                    .map(|i| w[j * BLOCK + i] as f64 * (x[i] as f64).powi(2))
                    .sum(),
            },
        );
        if uc > 0.0 {
            let e0 = scale_code_of_rms((uc / cc / 16.0) as f32);
            for e in [e0 - 1, e0, e0 + 1] {
                if (1..=255).contains(&e) {
                    let err = err_of(e as u8, &mut y);
                    if err < best.1 {
                        best = (e as u8, err);
                    }
                }
            }
        }
        out[0] = best.0;
        if best.0 == 0 {
            continue;
        }
        let mut w = BitWriter::new(&mut out[1..]);
        let mut k = 0;
        for l in 0..LEVELS {
            for _ in 0..BLOCK >> (l + 1) {
                if a[l] > 0 {
                    w.put(codes[k], a[l]);
                }
                k += 1;
            }
        }
        debug_assert_eq!(8 + w.bits(), 8 * bb);
    }
    Ok(())
}

macro_rules! polar_format {
    ($name:ident, $ty:expr) => {
        /// Registry entry (the default seed; files are read through `formats::tq`).
        pub(crate) const $name: Format = Format {
            ty: $ty,
            quantize_ref: {
                fn q(src: &[f32], dst: &mut [u8]) {
                    quantize_row($ty, &TqParams::default(), src, None, dst)
                        .unwrap_or_else(|e| panic!("{}: {e}", $ty))
                }
                q
            },
            quantize: {
                fn q(src: &[f32], imatrix: Option<&[f32]>, dst: &mut [u8], _isa: Isa) {
                    quantize_row($ty, &TqParams::default(), src, imatrix, dst)
                        .unwrap_or_else(|e| panic!("{}: {e}", $ty))
                }
                q
            },
            dequantize: {
                fn dq(src: &[u8], dst: &mut [f32]) {
                    dequantize_row($ty, &TqParams::default(), src, dst)
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

polar_format!(FORMAT_TQP4_5, GgmlType::TQP4_5);
polar_format!(FORMAT_TQP3_4375, GgmlType::TQP3_4375);
polar_format!(FORMAT_TQP2_5, GgmlType::TQP2_5);

#[cfg(test)]
mod tests {
    use super::super::tq;
    use super::super::tq_rotation::SplitMix64;
    use super::*;

    fn gaussian(n: usize, seed: u64) -> Vec<f32> {
        let mut g = SplitMix64::new(seed);
        (0..n).map(|_| g.next_normal() as f32 * 0.02).collect()
    }

    #[test]
    fn layouts_have_the_stated_size() {
        for (ty, bytes) in [
            (GgmlType::TQP4_5, 144),
            (GgmlType::TQP3_4375, 110),
            (GgmlType::TQP2_5, 80),
        ] {
            assert_eq!(block_bytes(ty), bytes);
            assert_eq!(ty.row_bytes(256), Some(bytes));
        }
    }

    #[test]
    fn round_trip_mse_is_as_measured_and_dot_agrees() {
        // Research report (Gaussian blocks): 0.0063 at 4.5 bpw, 0.0248 at 3.4375, 0.092 at 2.5
        // — worse than the trellis types' 0.0031 / 0.0149 / 0.0475 at the same or fewer bits.
        let p = TqParams::default();
        let n = 256 * 24;
        let w = gaussian(n, 5);
        for (ty, lo, hi) in [
            (GgmlType::TQP4_5, 0.0055, 0.0072),
            (GgmlType::TQP3_4375, 0.021, 0.028),
            (GgmlType::TQP2_5, 0.08, 0.105),
        ] {
            let mut q = vec![0u8; ty.row_bytes(n).unwrap()];
            tq::quantize_row(ty, &p, &w, None, &mut q).unwrap();
            let mut y = vec![0f32; n];
            tq::dequantize_row(ty, &p, &q, &mut y);
            let e: f64 = w
                .iter()
                .zip(&y)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum();
            let mse = e / w.iter().map(|a| (*a as f64).powi(2)).sum::<f64>();
            assert!(mse > lo && mse < hi, "{ty}: {mse}");
            let x = gaussian(n, 77);
            let mut a = vec![0u8; tq::act_bytes(ty, n).unwrap()];
            tq::prepare_activation(ty, &p, &x, &mut a);
            let exact: f64 = y.iter().zip(&x).map(|(u, v)| *u as f64 * *v as f64).sum();
            let mag: f64 = y
                .iter()
                .zip(&x)
                .map(|(u, v)| (*u as f64 * *v as f64).abs())
                .sum();
            assert!((dot(ty, &q, &a) as f64 - exact).abs() < 1e-2 * mag, "{ty}");
        }
    }
}
