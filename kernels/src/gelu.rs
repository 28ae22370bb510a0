//! The tanh-approximated GELU of transformer MLPs, on whole rows, fused with the product by the
//! "up" projection: `a[i] = gelu(a[i]) · b[i]` ([`gelu_tanh_mul`]); and the other tanh of a
//! transformer, logit soft-capping `c · tanh(z / c)` ([`softcap`]).
//!
//! Every ISA evaluates the same f32 expression as PyTorch's `gelu(x, approximate="tanh")`:
//! `u = β·(x + κ·(x·x·x))`, `0.5·x·(1 + tanh(u))`, each step rounded to f32 in that order (no
//! fused multiply-adds), except `tanh(u)`, which is computed in f64 and rounded once to f32:
//! correctly rounded but for rare near-ties (f64 error below 1e-13 relative). PyTorch's own f32
//! `tanh` is within 1 ulp (Sleef on CPU, CUDA's `tanhf` within 2), so a result differs from
//! PyTorch's by at most `0.5·|x|·(ulp(tanh u) + ulp(1 + tanh u))` plus one ulp of the result:
//! ≤ 3e-7 relative for x ≥ 0; for x < 0 (where `1 + tanh(u)` cancels in f32 in both) ≤ |x|·2⁻²⁴
//! absolute plus one ulp of the result. NaN in gives NaN; +∞ gives +∞; −∞ gives NaN (−∞ · 0, as PyTorch).
//!
//! The vector paths ([`crate::selected_isa`]: AVX-512 or AVX2) agree with [`gelu_tanh`] (the
//! portable path, f64 `tanh` from the standard library) except where the two f64 tanh values
//! straddle an f32 rounding boundary: then by one ulp of `tanh(u)` (tested).

use crate::Isa;

/// √(2/π) in f32, as PyTorch's `kBeta`.
pub const BETA: f32 = 0.797_884_6;
/// The cubic coefficient 0.044715, as PyTorch's `kKappa`.
pub const KAPPA: f32 = 0.044715;

/// The tanh GELU of one value, portable: `0.5·x·(1 + tanh(u))` with `tanh` in f64.
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    let u = BETA * (x + KAPPA * (x * x * x));
    let t = (u as f64).tanh() as f32;
    0.5 * x * (1.0 + t)
}

/// `a[i] = gelu_tanh(a[i]) · b[i]` for every `i` (the MLP's gate activation times its up
/// projection), vectorised for the selected ISA. Panics when the lengths differ.
pub fn gelu_tanh_mul(a: &mut [f32], b: &[f32]) {
    assert_eq!(
        a.len(),
        b.len(),
        "gelu_tanh_mul: gate and up lengths differ"
    );
    gelu_tanh_mul_isa(crate::selected_isa(), a, b);
}

/// [`gelu_tanh_mul`] with a given ISA (falls back to the portable path where this CPU lacks it).
pub fn gelu_tanh_mul_isa(isa: Isa, a: &mut [f32], b: &[f32]) {
    assert_eq!(
        a.len(),
        b.len(),
        "gelu_tanh_mul: gate and up lengths differ"
    );
    #[cfg(target_arch = "x86_64")]
    match isa.or_available() {
        Isa::Avx512 => {
            // SAFETY: `or_available` returned AVX-512, so the CPU has AVX-512 F; lengths are equal.
            unsafe { crate::x86::gelu::gelu_mul_avx512(a, b) };
            return;
        }
        Isa::Avx2 => {
            // SAFETY: `or_available` returned AVX2, so the CPU has AVX2 and FMA; lengths are equal.
            unsafe { crate::x86::gelu::gelu_mul_avx2(a, b) };
            return;
        }
        _ => {}
    }
    let _ = isa;
    for (x, &y) in a.iter_mut().zip(b) {
        *x = gelu_tanh(*x) * y;
    }
}

/// Logit soft-capping of one value, portable: `cap · tanh(z / cap)`, the quotient rounded to
/// f32, `tanh` in f64 rounded once to f32, then the product (PyTorch's f32 expression with a
/// correctly rounded `tanh` but for rare near-ties). NaN stays NaN; ±∞ gives ±cap.
#[inline]
pub fn softcap_one(z: f32, cap: f32) -> f32 {
    (((z / cap) as f64).tanh() as f32) * cap
}

/// `x[i] = cap · tanh(x[i] / cap)` for every `i` ([`softcap_one`]), vectorised for the selected
/// ISA: the vector paths evaluate `tanh` as [`gelu_tanh_mul`] does (f64 lanes, rounded once), so
/// they agree with [`softcap_one`] except where two f64 tanh values straddle an f32 rounding
/// boundary: then by one ulp of `tanh` times `cap` (tested).
pub fn softcap(x: &mut [f32], cap: f32) {
    softcap_isa(crate::selected_isa(), x, cap);
}

/// [`softcap`] with a given ISA (falls back to the portable path where this CPU lacks it).
pub fn softcap_isa(isa: Isa, x: &mut [f32], cap: f32) {
    #[cfg(target_arch = "x86_64")]
    match isa.or_available() {
        Isa::Avx512 => {
            // SAFETY: `or_available` returned AVX-512, so the CPU has AVX-512 F.
            unsafe { crate::x86::gelu::softcap_avx512(x, cap) };
            return;
        }
        Isa::Avx2 => {
            // SAFETY: `or_available` returned AVX2, so the CPU has AVX2 and FMA.
            unsafe { crate::x86::gelu::softcap_avx2(x, cap) };
            return;
        }
        _ => {}
    }
    let _ = isa;
    for z in x {
        *z = softcap_one(*z, cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values covering the whole interesting range densely, both signs, plus the specials.
    fn inputs() -> Vec<f32> {
        let mut v: Vec<f32> = (-400_000..=400_000).map(|i| i as f32 * 3e-5).collect();
        // Every 997th f32 bit pattern: all magnitudes, subnormals and both signs.
        v.extend((0..u32::MAX / 997).map(|i| f32::from_bits(i * 997)));
        v.extend([
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-30,
            -1e-30,
            9.0,
            -9.0,
            11.3,
            -11.3,
            1e13,
            -1e13,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ]);
        v
    }

    /// The distance from |x| to the next f32 up.
    fn ulp(x: f32) -> f32 {
        let a = x.abs();
        f32::from_bits(a.to_bits() + 1) - a
    }

    #[test]
    fn vector_paths_match_portable() {
        let x = inputs();
        let ones = vec![1.0f32; x.len()];
        let want: Vec<f32> = x.iter().map(|&v| gelu_tanh(v)).collect();
        for isa in Isa::available_all() {
            let mut got = x.clone();
            gelu_tanh_mul_isa(isa, &mut got, &ones);
            let mut differ = 0usize;
            for ((&xi, &g), &w) in x.iter().zip(&got).zip(&want) {
                if g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()) {
                    continue;
                }
                differ += 1;
                // One ulp of tanh(u) ≤ 2^-23 (|tanh| ≤ 1), scaled by 0.5·|x|, plus one
                // rounding of the result.
                let bound = 0.5 * xi.abs() * f32::EPSILON + ulp(w);
                assert!(
                    (g - w).abs() <= bound,
                    "{isa:?}: gelu({xi:e}) = {g:e}, portable {w:e}"
                );
            }
            eprintln!(
                "{isa:?}: {differ} of {} differ from the portable path",
                x.len()
            );
            // Near-ties of two f64 evaluations: rare.
            assert!(
                differ * 100_000 < x.len(),
                "{isa:?}: {differ} of {} differ",
                x.len()
            );
        }
    }

    #[test]
    fn specials_and_tails() {
        for isa in Isa::available_all() {
            let mut a = [
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                0.0,
                -0.0,
                30.0,
                -30.0,
                1e13,
                -1e13,
                f32::MAX,
            ];
            let b = [1.0f32; 10];
            gelu_tanh_mul_isa(isa, &mut a, &b);
            assert!(a[0].is_nan(), "{isa:?}");
            assert_eq!(a[1], f32::INFINITY, "{isa:?}");
            assert!(a[2].is_nan(), "{isa:?}: −∞ · (1 + tanh) = −∞ · 0");
            assert_eq!(a[3], 0.0);
            assert_eq!(a[4], 0.0);
            assert_eq!(a[5], 30.0, "{isa:?}");
            assert_eq!(a[6], 0.0, "{isa:?}");
            assert_eq!(a[7], 1e13, "{isa:?}");
            assert_eq!(a[8], 0.0, "{isa:?}");
            assert_eq!(a[9], f32::MAX, "{isa:?}");
        }
    }

    /// Against the tanh GELU in f64 of the same f32 `u`: the bound stated in the module doc
    /// (x ≥ 0: relative; x < 0: absolute |x|·2⁻²⁴ plus relative).
    #[test]
    fn close_to_exact_tanh() {
        let mut x: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 6e-5).collect();
        x.extend([1e-20f32, -1e-20, 3e-8, -3e-8, 50.0, -50.0]);
        let ones = vec![1.0f32; x.len()];
        let mut got = x.clone();
        gelu_tanh_mul(&mut got, &ones);
        for (&xi, &g) in x.iter().zip(&got) {
            let u = BETA * (xi + KAPPA * (xi * xi * xi));
            let exact = 0.5 * xi as f64 * (1.0 + (u as f64).tanh());
            let err = (g as f64 - exact).abs();
            let bound = if xi >= 0.0 {
                1.2e-7 * exact.abs()
            } else {
                xi.abs() as f64 * 2f64.powi(-24) + 1.2e-7 * exact.abs()
            };
            assert!(err <= bound, "gelu({xi:e}) = {g:e}, exact {exact:e}");
        }
    }

    /// Against the same expression with f32 `tanh` from the C library (what the runner used
    /// before; like PyTorch's, within an ulp or two of tanh): the bound stated in the module doc.
    #[test]
    fn close_to_f32_tanh_expression() {
        let x: Vec<f32> = (-300_000..=300_000).map(|i| i as f32 * 4e-5).collect();
        let ones = vec![1.0f32; x.len()];
        let mut got = x.clone();
        gelu_tanh_mul(&mut got, &ones);
        let mut differ = 0usize;
        for (&xi, &g) in x.iter().zip(&got) {
            let u = BETA * (xi + KAPPA * (xi * xi * xi));
            let w = 0.5 * xi * (1.0 + u.tanh());
            if g != w {
                differ += 1;
            }
            // glibc's tanhf is within 2 ulp; the difference in t can move 1 + t by one of its
            // own ulps more.
            let t = u.tanh();
            let bound = 0.5 * xi.abs() * (2.0 * ulp(t) + ulp(1.0 + t)) + ulp(w);
            assert!(
                (g - w).abs() <= bound,
                "gelu({xi:e}) = {g:e}, f32 tanh gives {w:e}, bound {bound:e}"
            );
        }
        eprintln!(
            "{differ} of {} differ from the f32 tanh expression",
            x.len()
        );
    }

    #[test]
    fn product_and_tails_of_rows() {
        // Lengths around the vector widths: every tail length takes the masked / scalar end.
        for len in [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 - 20.0) * 0.37).collect();
            let b: Vec<f32> = (0..len).map(|i| 1.5 - i as f32 * 0.1).collect();
            for isa in Isa::available_all() {
                let mut got = a.clone();
                gelu_tanh_mul_isa(isa, &mut got, &b);
                for i in 0..len {
                    let w = gelu_tanh(a[i]) * b[i];
                    assert!(
                        (got[i] - w).abs() <= 2.0 * ulp(w) + 0.5 * a[i].abs() * f32::EPSILON,
                        "{isa:?} len {len} [{i}]: {} vs {w}",
                        got[i]
                    );
                }
            }
        }
    }

    #[test]
    fn softcap_vector_paths_match_portable() {
        let x = inputs();
        for cap in [30.0f32, 50.0, 1.0] {
            let want: Vec<f32> = x.iter().map(|&z| softcap_one(z, cap)).collect();
            for isa in Isa::available_all() {
                let mut got = x.clone();
                softcap_isa(isa, &mut got, cap);
                let mut differ = 0usize;
                for ((&z, &g), &w) in x.iter().zip(&got).zip(&want) {
                    if g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()) {
                        continue;
                    }
                    differ += 1;
                    // The neighbouring f32 of the portable tanh, times cap.
                    let t = ((z / cap) as f64).tanh() as f32;
                    let up = f32::from_bits(t.to_bits() + 1) * cap;
                    let down = f32::from_bits(t.to_bits().wrapping_sub(1)) * cap;
                    assert!(
                        g == up || g == down,
                        "{isa:?}: softcap({z:e}, {cap}) = {g:e}, portable {w:e}"
                    );
                }
                assert!(
                    differ * 100_000 < x.len(),
                    "{isa:?}: {differ} of {} differ",
                    x.len()
                );
            }
        }
    }

    #[test]
    fn softcap_specials_and_tails() {
        for isa in Isa::available_all() {
            for n in 0..40 {
                let mut a: Vec<f32> = (0..n).map(|i| i as f32 * 7.5 - 100.0).collect();
                let want: Vec<f32> = a.iter().map(|&z| softcap_one(z, 30.0)).collect();
                softcap_isa(isa, &mut a, 30.0);
                for (g, w) in a.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 30.0 * f32::EPSILON,
                        "{isa:?} n {n}: {g} vs {w}"
                    );
                }
            }
            let mut s = [
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                0.0,
                -0.0,
                f32::MAX,
                f32::MIN,
            ];
            softcap_isa(isa, &mut s, 30.0);
            assert!(s[0].is_nan(), "{isa:?}");
            assert_eq!(s[1], 30.0, "{isa:?}");
            assert_eq!(s[2], -30.0, "{isa:?}");
            assert_eq!(s[3].to_bits(), 0f32.to_bits(), "{isa:?}");
            assert_eq!(s[4].to_bits(), (-0f32).to_bits(), "{isa:?}");
            assert_eq!(s[5], 30.0, "{isa:?}");
            assert_eq!(s[6], -30.0, "{isa:?}");
        }
    }

    /// Against tanh in f64 of the same f32 quotient: within one rounding of tanh and one of
    /// the product.
    #[test]
    fn softcap_close_to_exact() {
        let x: Vec<f32> = (-300_000..=300_000).map(|i| i as f32 * 4e-4).collect();
        let mut got = x.clone();
        softcap(&mut got, 30.0);
        for (&z, &g) in x.iter().zip(&got) {
            let exact = 30.0 * ((z / 30.0) as f64).tanh();
            assert!(
                (g as f64 - exact).abs() <= 2.0 * f32::EPSILON as f64 * exact.abs() + 1e-45,
                "softcap({z:e}) = {g:e}, exact {exact:e}"
            );
        }
    }
}
