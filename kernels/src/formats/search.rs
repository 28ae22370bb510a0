//! ggml's scale searches (`make_qx_quants`, `make_q3_quants`, `make_qkx2_quants` /
//! `make_qkx3_quants`, `make_qp_quants`), shared by the k-quants and the weighted legacy paths.
//! Every sum runs in the C order, in f32, so the chosen scales and levels are the same bits.

use crate::num::{nearest_int, GROUP_MAX_EPS};

/// The value and signed value of the element with the largest magnitude (first one on ties).
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    (amax, max)
}

/// Symmetric levels in `[0, 2·nmax)` (stored with the `nmax` offset) minimising the weighted
/// squared error, `make_qx_quants` with `rmse_type` 1: weights are `qw`, or x² without it.
/// Returns the scale.
pub(crate) fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [i8], qw: Option<&[f32]>) -> f32 {
    let n = x.len();
    let (amax, max) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let w = |i: usize| qw.map_or(x[i] * x[i], |q| q[i]);
    let level = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for (i, &xi) in x.iter().enumerate() {
            let l = level(iscale, xi) as f32;
            sumlx += w(i) * xi * l;
            suml2 += w(i) * l * l;
        }
        (sumlx, suml2)
    };
    let iscale = -(nmax as f32) / max;
    for i in 0..n {
        l_out[i] = (level(iscale, x[i]) + nmax) as i8;
    }
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for i in 0..n {
                l_out[i] = (level(iscale, x[i]) + nmax) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// `make_q3_quants` with `do_rmse`: levels in `[-nmax, nmax)` refined one element at a time
/// (up to five passes) under x² weights, stored with the `nmax` offset. Returns the scale.
pub(crate) fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let n = x.len();
    let (amax, max) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0f32, 0f32);
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l_out[i] = l as i8;
        let w = x[i] * x[i];
        sumlx += w * x[i] * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut changed = false;
        for i in 0..n {
            let w = x[i] * x[i];
            let li = l_out[i] as f32;
            let mut slx = sumlx - w * x[i] * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(x[i] * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != l_out[i] as i32 {
                    slx += w * x[i] * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l_out[i] = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    for l in &mut l_out[..n] {
        *l += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Parameters of the affine (scale and min) search.
pub(crate) struct AffineSearch {
    /// Largest level.
    pub nmax: i32,
    /// First offset added to `nmax` when trying other scales.
    pub rmin: f32,
    /// Step of that offset.
    pub rdelta: f32,
    /// Number of steps (`nstep + 1` scales are tried).
    pub nstep: i32,
    /// Absolute instead of squared error.
    pub use_mad: bool,
}

/// `make_qkx2_quants` (weights given) and `make_qkx3_quants` (weights given, or x² without them):
/// levels in `[0, nmax]` for `x ≈ scale·l - min` with `min ≥ 0`. Returns `(scale, min)`.
///
/// The two C functions differ only in `max == min` vs `max <= min` for the degenerate case;
/// after `min` is clamped to ≤ 0, `max < min` is impossible and both are false on NaN, so one
/// test serves both.
pub(crate) fn make_qkx_quants(
    p: &AffineSearch,
    x: &[f32],
    weights: Option<&[f32]>,
    l_out: &mut [u8],
    l_aux: &mut [u8],
) -> (f32, f32) {
    let n = x.len();
    let nmax = p.nmax;
    let w = |i: usize| weights.map_or(x[i] * x[i], |q| q[i]);
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = w(0);
    let mut sum_x = sum_w * x[0];
    for (i, &xi) in x.iter().enumerate().skip(1) {
        if xi < min {
            min = xi;
        }
        if xi > max {
            max = xi;
        }
        sum_w += w(i);
        sum_x += w(i) * xi;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max <= min {
        l_out[..n].fill(0);
        return (0.0, -min);
    }
    let err = |d: f32| if p.use_mad { d.abs() } else { d * d };
    let iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best = 0f32;
    for i in 0..n {
        l_out[i] = nearest_int(iscale * (x[i] - min)).clamp(0, nmax) as u8;
        best += w(i) * err(scale * l_out[i] as f32 + min - x[i]);
    }
    if p.nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=p.nstep {
        let iscale = (p.rmin + p.rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            l_aux[i] = l as u8;
            let l = l as f32;
            sum_l += w(i) * l;
            sum_l2 += w(i) * l * l;
            sum_xl += w(i) * l * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur = 0f32;
            for i in 0..n {
                cur += w(i) * err(this_scale * l_aux[i] as f32 + this_min - x[i]);
            }
            if cur < best {
                l_out[..n].copy_from_slice(&l_aux[..n]);
                best = cur;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// `make_qp_quants`: non-negative levels in `[0, nmax]` for non-negative `x` (the sub-block
/// scales or mins of a super-block) under weights `qw`, refined like `make_q3_quants`.
/// Levels are stored as C stores an `int` into a `uint8_t` (low byte). Returns the scale.
pub(crate) fn make_qp_quants(nmax: i32, x: &[f32], l_out: &mut [u8], qw: &[f32]) -> f32 {
    let n = x.len();
    let mut max = 0f32;
    for &v in x {
        max = if max > v { max } else { v };
    }
    if max < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let mut iscale = nmax as f32 / max;
    for i in 0..n {
        l_out[i] = nearest_int(iscale * x[i]) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0f32;
    for i in 0..n {
        let diff = x[i] - scale * l_out[i] as f32;
        best_mse += qw[i] * diff * diff;
    }
    for is in (-4..=4).filter(|&is| is != 0) {
        let iscale_is = (0.1 * is as f32 + nmax as f32) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0f32;
        for i in 0..n {
            let l = nearest_int(iscale_is * x[i]).min(nmax);
            let diff = x[i] - scale_is * l as f32;
            mse += qw[i] * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let (mut sumlx, mut suml2) = (0f32, 0f32);
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).min(nmax);
        l_out[i] = l as u8;
        let (w, l) = (qw[i], l as f32);
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for _ in 0..5 {
        let mut changed = false;
        for i in 0..n {
            let w = qw[i];
            let li = l_out[i] as f32;
            let mut slx = sumlx - w * x[i] * li;
            let mut sl2 = suml2 - w * li * li;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(x[i] * sl2 / slx).min(nmax);
                if new_l != l_out[i] as i32 {
                    slx += w * x[i] * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l_out[i] = new_l as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qx_zero_group_is_all_zero() {
        let mut l = [7i8; 16];
        assert_eq!(make_qx_quants(32, &[0.0; 16], &mut l, None), 0.0);
        assert!(l.iter().all(|&v| v == 0));
    }

    #[test]
    fn qx_levels_reconstruct_a_grid() {
        // Values already on a grid of step 0.5 come back exactly.
        let x: Vec<f32> = (0..16).map(|i| (i as f32 - 8.0) * 0.5).collect();
        let mut l = [0i8; 16];
        let d = make_qx_quants(8, &x, &mut l, None);
        for (v, q) in x.iter().zip(l) {
            assert!((d * (q as i32 - 8) as f32 - v).abs() < 1e-6, "{d} {q} {v}");
        }
    }

    #[test]
    fn affine_constant_group() {
        let p = AffineSearch {
            nmax: 15,
            rmin: -1.0,
            rdelta: 0.1,
            nstep: 20,
            use_mad: false,
        };
        let (mut l, mut aux) = ([9u8; 32], [0u8; 32]);
        // All equal and positive: min is clamped to 0 and the scale maps the value to 15.
        let (d, m) = make_qkx_quants(&p, &[2.0; 32], Some(&[1.0; 32]), &mut l, &mut aux);
        assert_eq!(m, -0.0);
        assert!(l.iter().all(|&q| (d * q as f32 - 2.0).abs() < 1e-6));
        // All equal and negative: max == min after clamping, everything zero, min = -x.
        let (d, m) = make_qkx_quants(&p, &[-2.0; 32], None, &mut l, &mut aux);
        assert_eq!((d, m), (0.0, 2.0));
        assert!(l.iter().all(|&q| q == 0));
    }

    #[test]
    fn qp_scales_of_zero_are_zero() {
        let mut l = [1u8; 8];
        assert_eq!(make_qp_quants(63, &[0.0; 8], &mut l, &[1.0; 8]), 0.0);
        assert_eq!(l, [0; 8]);
        let x = [1.0, 0.5, 0.25, 0.0, 1.0, 0.75, 0.5, 0.125];
        let d = make_qp_quants(63, &x, &mut l, &[1.0; 8]);
        for (v, q) in x.iter().zip(l) {
            assert!((d * q as f32 - v).abs() <= d * 0.5 + 1e-6);
        }
    }
}
