//! The element-wise pieces of the Gemma 4 forward pass, written to follow transformers' fp32
//! arithmetic (`Gemma4RMSNorm`, the rotary tables; `gelu_pytorch_tanh` is `gq_kernels::gelu`) closely. Every function
//! works on one token's row, so splitting rows over threads never changes a result.

/// Gemma 4's RMSNorm: `x · (mean(x²) + eps)^-½ · weight` (no `1 +` on the weight, unlike Gemma 3);
/// `weight = None` is the scale-free norm of V and of the router input. The mean of squares is
/// summed in f64 (closer to the exact value than any f32 order).
pub fn rms_norm(x: &mut [f32], weight: Option<&[f32]>, eps: f32) {
    let ss: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    rms_scale(x, ss, weight, eps);
}

/// [`rms_norm`] of every piece of `width` elements of `x` (`x.len()` a multiple of `width`),
/// with the same results as one call per piece: the sums of squares of four pieces are taken
/// together, in four independent chains (each piece's terms added in its own order, as
/// [`rms_norm`] does), so that they run at the adder's throughput instead of its latency.
pub fn rms_norm_rows(x: &mut [f32], width: usize, weight: Option<&[f32]>, eps: f32) {
    if width == 0 {
        return;
    }
    debug_assert_eq!(x.len() % width, 0);
    let mut quads = x.chunks_exact_mut(4 * width);
    for q in &mut quads {
        let (a, rest) = q.split_at_mut(width);
        let (b, rest) = rest.split_at_mut(width);
        let (c, d) = rest.split_at_mut(width);
        // Every term is a square (≥ +0), so starting from +0 gives the same sums as `sum`'s
        // start, whatever its sign.
        let mut ss = [0f64; 4];
        for (((&va, &vb), &vc), &vd) in a.iter().zip(&*b).zip(&*c).zip(&*d) {
            ss[0] += (va as f64) * (va as f64);
            ss[1] += (vb as f64) * (vb as f64);
            ss[2] += (vc as f64) * (vc as f64);
            ss[3] += (vd as f64) * (vd as f64);
        }
        rms_scale(a, ss[0], weight, eps);
        rms_scale(b, ss[1], weight, eps);
        rms_scale(c, ss[2], weight, eps);
        rms_scale(d, ss[3], weight, eps);
    }
    for piece in quads.into_remainder().chunks_exact_mut(width) {
        rms_norm(piece, weight, eps);
    }
}

/// The rest of [`rms_norm`] given the sum of squares `ss` of `x`.
#[inline]
fn rms_scale(x: &mut [f32], ss: f64, weight: Option<&[f32]>, eps: f32) {
    let ms = (ss / x.len() as f64) as f32 + eps;
    let r = (1.0 / (ms as f64).sqrt()) as f32;
    match weight {
        Some(w) => {
            for (v, &g) in x.iter_mut().zip(w) {
                *v = *v * r * g;
            }
        }
        None => {
            for v in x.iter_mut() {
                *v *= r;
            }
        }
    }
}

/// Inverse frequencies of one layer type's rotary embedding, for a head of `head_dim`:
/// `1 / base^(2i/head_dim) / factor[i]` in f32, as transformers builds `inv_freq` (a factor of
/// 1e30 leaves a pair effectively unrotated: "proportional" RoPE's zero frequencies, written the
/// way the GGUF's `rope_freqs.weight` writes them).
pub fn rope_inv_freq(base: f32, head_dim: usize, factors: Option<&[f32]>) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|i| {
            let e = (2 * i) as f32 / head_dim as f32;
            let p = (base as f64).powf(e as f64) as f32;
            let inv = 1.0f32 / p;
            match factors {
                Some(f) => inv / f[i],
                None => inv,
            }
        })
        .collect()
}

/// cos and sin of `pos · inv_freq[i]` for every pair (the angle rounded to f32 first, as the
/// reference computes it).
pub fn rope_cos_sin(pos: usize, inv_freq: &[f32], cos: &mut [f32], sin: &mut [f32]) {
    for (i, &f) in inv_freq.iter().enumerate() {
        let a = (pos as f32 * f) as f64;
        cos[i] = a.cos() as f32;
        sin[i] = a.sin() as f32;
    }
}

/// Rotates one head in place, NeoX style (pair i is elements i and i + head_dim/2), as
/// transformers' `rotate_half`.
#[inline]
pub fn rope_apply(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = x.len() / 2;
    let (a, b) = x.split_at_mut(half);
    for i in 0..half {
        let (x0, x1) = (a[i], b[i]);
        a[i] = x0 * cos[i] - x1 * sin[i];
        b[i] = x1 * cos[i] + x0 * sin[i];
    }
}

/// `y += w · x` over a row.
#[inline]
pub fn axpy(y: &mut [f32], w: f32, x: &[f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o += w * v;
    }
}

/// Index of the largest value (the first one on ties, as `torch.argmax`).
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_unit_rows() {
        let mut x = vec![2.0f32; 16];
        rms_norm(&mut x, None, 0.0);
        assert!(x.iter().all(|&v| (v - 1.0).abs() < 1e-7));
        let w: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let mut y = vec![-3.0f32; 16];
        rms_norm(&mut y, Some(&w), 0.0);
        assert!(y.iter().zip(&w).all(|(&v, &g)| (v + g).abs() < 1e-6));
    }

    /// Four pieces at a time give the bits of one piece at a time (widths with and without a
    /// remainder of pieces, values of widely different sizes, zeros, negative zero).
    #[test]
    fn rms_norm_rows_is_rms_norm_per_piece() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let u = (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            u * 2f32.powi((seed % 40) as i32 - 20)
        };
        for (width, pieces) in [(64, 9), (256, 4), (7, 3), (1, 5), (33, 8)] {
            let w: Vec<f32> = (0..width).map(|_| next()).collect();
            let mut x: Vec<f32> = (0..width * pieces).map(|_| next()).collect();
            x[0] = -0.0;
            if pieces > 4 {
                x[4 * width..5 * width].fill(0.0);
            }
            for weight in [None, Some(&w[..])] {
                let mut want = x.clone();
                want.chunks_exact_mut(width)
                    .for_each(|p| rms_norm(p, weight, 1e-6));
                let mut got = x.clone();
                rms_norm_rows(&mut got, width, weight, 1e-6);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "width {width}");
            }
        }
    }

    #[test]
    fn gelu_values() {
        use gq_kernels::gelu::gelu_tanh;
        // torch.nn.functional.gelu(torch.tensor([-1., 0.5, 3.]), approximate="tanh")
        let want = [-0.158_808, 0.345_714, 2.996_363_6];
        for (x, w) in [-1.0f32, 0.5, 3.0].iter().zip(want) {
            assert!((gelu_tanh(*x) - w).abs() < 1e-6, "{x}: {}", gelu_tanh(*x));
        }
    }

    #[test]
    fn rope_rotates_pairs_and_leaves_unrotated_pairs() {
        let f = rope_inv_freq(10000.0, 8, Some(&[1.0, 1.0, 1e30, 1e30]));
        assert_eq!(f[0], 1.0);
        assert!((f[1] - 0.1).abs() < 1e-8);
        let (mut c, mut s) = (vec![0f32; 4], vec![0f32; 4]);
        rope_cos_sin(3, &f, &mut c, &mut s);
        let mut x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        rope_apply(&mut x, &c, &s);
        let a = 3.0f64;
        assert!((x[0] as f64 - (a.cos() - 5.0 * a.sin())).abs() < 1e-6);
        assert!((x[4] as f64 - (5.0 * a.cos() + a.sin())).abs() < 1e-6);
        assert_eq!([x[2], x[3], x[6], x[7]], [3.0, 4.0, 7.0, 8.0]);
    }

    #[test]
    fn argmax_first_on_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
    }
}
