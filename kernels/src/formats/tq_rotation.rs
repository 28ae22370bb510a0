//! The TurboQuant rotation: a seeded randomised Walsh–Hadamard transform per column block
//! (docs/turboquant.md §4), and the file-level parameters it depends on ([`TqParams`]).
//!
//! A row of `n` weights is cut into column blocks of `B` (a power of two, [`block_size`]).
//! Block `j` is rotated by `R_j = H_B · D_j / √B`: `D_j` the diagonal of random signs of block
//! `j`, `H_B` the Sylvester–Hadamard matrix (`H[i][k] = (-1)^popcount(i & k)`). The signs depend
//! on `(seed, j)` only — never on the row or the tensor — so a matmul rotates each activation
//! block once per call (`⟨w, x⟩ = Σ_j ⟨R_j w_j, R_j x_j⟩`) and tensors that read the same
//! activation share its rotation.
//!
//! Sign stream (normative): [`SplitMix64`] started from `seed ^ (0x9E3779B97F4A7C15 · (j + 1))`
//! (wrapping); output word `t` holds the signs of columns `64t … 64t + 63` of the block, bit `c`
//! (LSB first) set ⇔ column `64t + c` has sign −1. A block of 32 uses the low 32 bits of the
//! first word.

/// Version of the TurboQuant layouts this crate reads and writes (`gq.tq.version`).
pub const TQ_VERSION: u32 = 1;
/// Largest column block (`gq.tq.max_block`); version 1 requires 256.
pub const TQ_MAX_BLOCK: usize = 256;
/// The default rotation seed (`"TQ_GQ_"` and 1), written by gq unless told otherwise.
pub const TQ_DEFAULT_SEED: u64 = 0x5451_5F47_515F_0001;
/// XORed into the file seed to get the seed of the QJL transform of the `TQJ*` types.
pub const QJL_SEED_XOR: u64 = 0x514A_4C5F_5349_474E; // "QJL_SIGN"

/// File-level parameters of the TurboQuant types: what a decoder needs besides the bytes
/// (GGUF keys `gq.tq.seed`; `gq.tq.version` = [`TQ_VERSION`], `gq.tq.max_block` =
/// [`TQ_MAX_BLOCK`]). One seed per file, so every tensor that reads the same activation shares
/// its rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TqParams {
    /// Rotation seed (`gq.tq.seed`).
    pub seed: u64,
}

impl Default for TqParams {
    fn default() -> Self {
        TqParams {
            seed: TQ_DEFAULT_SEED,
        }
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): `state += 0x9E3779B97F4A7C15; z = state;
/// z = (z ^ z>>30)·0xBF58476D1CE4E5B9; z = (z ^ z>>27)·0x94D049BB133111EB; z ^ z>>31`, all
/// wrapping. Written out here so that the stream can never change with a dependency's version.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    /// Current state.
    pub state: u64,
}

impl SplitMix64 {
    /// A stream starting at `state`.
    pub fn new(state: u64) -> Self {
        Self { state }
    }

    /// Next 64-bit output.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform f64 in [0, 1) from the top 53 bits (test data only; no format uses it).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal by Box–Muller (test data only; no format uses it).
    pub fn next_normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Start state of the sign stream of column block `j` for `seed`.
#[inline]
pub fn block_stream_state(seed: u64, j: u64) -> u64 {
    seed ^ 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(j.wrapping_add(1))
}

/// The signs of column block `j` as bits (bit `c` of word `c / 64` set ⇔ sign −1), for blocks
/// of up to 256 columns (unused bits of a smaller block are zero).
#[inline]
pub fn block_sign_bits(seed: u64, j: u64, b: usize) -> [u64; 4] {
    debug_assert!(b.is_power_of_two() && (2..=256).contains(&b));
    let mut rng = SplitMix64::new(block_stream_state(seed, j));
    let mut out = [0u64; 4];
    for w in out.iter_mut().take(b.div_ceil(64)) {
        let v = rng.next_u64();
        *w = if b < 64 { v & ((1u64 << b) - 1) } else { v };
    }
    out
}

/// Flips the sign of element `c` of `x` where bit `c` of `signs` is set (exactly `x · (±1)`).
#[inline]
pub fn apply_signs(x: &mut [f32], signs: &[u64; 4]) {
    for (c, v) in x.iter_mut().enumerate() {
        let bit = ((signs[c >> 6] >> (c & 63)) & 1) as u32;
        *v = f32::from_bits(v.to_bits() ^ (bit << 31));
    }
}

/// In-place unnormalised fast Walsh–Hadamard transform (Sylvester order): stages `h = 1, 2, 4,
/// …`, each replacing `(x[i], x[i + h])` by `(x[i] + x[i + h], x[i] − x[i + h])`. `x.len()` is a
/// power of two. Every output is the same sequence of f32 operations in any implementation that
/// keeps the butterflies, so vectorised versions give the same bits.
pub fn fwht(x: &mut [f32]) {
    let n = x.len();
    debug_assert!(n.is_power_of_two());
    let mut h = 1;
    while h < n {
        for blk in x.chunks_exact_mut(2 * h) {
            let (lo, hi) = blk.split_at_mut(h);
            for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                let (p, q) = (*a, *b);
                *a = p + q;
                *b = p - q;
            }
        }
        h *= 2;
    }
}

/// `1 / √B` as the formats use it: `f32(1 / f32(√B))` (exact for B = 64 and 256).
#[inline]
pub fn inv_sqrt(b: usize) -> f32 {
    1.0 / (b as f32).sqrt()
}

/// Rotates one column block in place: `x ← H · (signs ⊙ x) · (1/√B)`.
pub fn rotate_block(x: &mut [f32], signs: &[u64; 4]) {
    apply_signs(x, signs);
    fwht(x);
    let k = inv_sqrt(x.len());
    for v in x.iter_mut() {
        *v *= k;
    }
}

/// Undoes [`rotate_block`]: `y ← signs ⊙ (H · y · (1/√B))`.
pub fn unrotate_block(y: &mut [f32], signs: &[u64; 4]) {
    fwht(y);
    let k = inv_sqrt(y.len());
    for v in y.iter_mut() {
        *v *= k;
    }
    apply_signs(y, signs);
}

/// The column block of rows of `n` weights: the largest power of two `<= max_block` that
/// divides `n`, or `None` when it would be below `min_block` (such rows cannot have the type).
pub fn block_size(n: usize, max_block: usize, min_block: usize) -> Option<usize> {
    let mut b = max_block;
    while b >= min_block && b > 0 {
        if n.is_multiple_of(b) {
            return Some(b);
        }
        b /= 2;
    }
    None
}

/// Rotates every column block of a row of `n = x.len()` in blocks of `b` with `seed`.
pub fn rotate_row(x: &mut [f32], b: usize, seed: u64) {
    for (j, blk) in x.chunks_exact_mut(b).enumerate() {
        rotate_block(blk, &block_sign_bits(seed, j as u64, b));
    }
}

/// Undoes [`rotate_row`].
pub fn unrotate_row(x: &mut [f32], b: usize, seed: u64) {
    for (j, blk) in x.chunks_exact_mut(b).enumerate() {
        unrotate_block(blk, &block_sign_bits(seed, j as u64, b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // The first outputs of SplitMix64 from state 0 (the algorithm's published test values).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn rotation_is_orthogonal() {
        for b in [32usize, 64, 128, 256] {
            let signs = block_sign_bits(7, 3, b);
            let imgs: Vec<Vec<f32>> = (0..b)
                .map(|i| {
                    let mut e = vec![0.0f32; b];
                    e[i] = 1.0;
                    rotate_block(&mut e, &signs);
                    e
                })
                .collect();
            for i in 0..b {
                for k in 0..b {
                    let d: f32 = imgs[i].iter().zip(&imgs[k]).map(|(a, c)| a * c).sum();
                    let want = if i == k { 1.0 } else { 0.0 };
                    assert!((d - want).abs() < 1e-5, "b={b} i={i} k={k} d={d}");
                }
            }
        }
    }

    #[test]
    fn round_trip_and_inner_products() {
        let n = 768;
        let mut g = SplitMix64::new(1);
        let w: Vec<f32> = (0..n).map(|_| g.next_normal() as f32).collect();
        let x: Vec<f32> = (0..n).map(|_| g.next_normal() as f32).collect();
        let (mut rw, mut rx) = (w.clone(), x.clone());
        rotate_row(&mut rw, 256, 42);
        rotate_row(&mut rx, 256, 42);
        let dot = |a: &[f32], b: &[f32]| -> f64 {
            a.iter().zip(b).map(|(p, q)| *p as f64 * *q as f64).sum()
        };
        let (d0, d1) = (dot(&w, &x), dot(&rw, &rx));
        assert!((d0 - d1).abs() < 1e-3 * (1.0 + d0.abs()));
        unrotate_row(&mut rw, 256, 42);
        for (a, b) in rw.iter().zip(&w) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn signs_depend_on_seed_and_block_only() {
        assert_eq!(block_sign_bits(5, 2, 256), block_sign_bits(5, 2, 256));
        assert_ne!(block_sign_bits(5, 2, 256), block_sign_bits(5, 3, 256));
        assert_ne!(block_sign_bits(5, 2, 256), block_sign_bits(6, 2, 256));
        // A block of 32 uses the low 32 bits of the same stream's first word.
        assert_eq!(
            block_sign_bits(5, 2, 32)[0],
            block_sign_bits(5, 2, 256)[0] & 0xffff_ffff
        );
        // The stream of block 0 of seed 0 is SplitMix64 from 0x9E3779B97F4A7C15.
        let mut r = SplitMix64::new(0x9E37_79B9_7F4A_7C15);
        assert_eq!(block_sign_bits(0, 0, 64)[0], r.next_u64());
    }

    #[test]
    fn block_choice() {
        assert_eq!(block_size(5376, 256, 32), Some(256));
        assert_eq!(block_size(2816, 256, 32), Some(256));
        assert_eq!(block_size(704, 256, 32), Some(64));
        assert_eq!(block_size(2112, 256, 64), Some(64));
        assert_eq!(block_size(96, 256, 64), None);
        assert_eq!(block_size(100, 256, 32), None);
    }
}
