//! f32 row operations for attention over a KV cache: a query dotted with many cached key rows
//! ([`dot_rows`]) and a weighted sum of cached value rows ([`weighted_rows`]). Rows are given
//! as one slice and a stride (a head's rows inside a cache of `n_kv_heads · head_dim` floats
//! per position). The ISA is [`crate::selected_isa`]'s: AVX-512 where the kernels use it,
//! else the portable code (which LLVM vectorises for the baseline target). Each result is
//! computed in a fixed order for a given ISA, so it never depends on threads or batch.

use crate::Isa;

/// Checks that `n` rows of `len` floats at `stride` fit in `total` floats.
fn check(n: usize, len: usize, stride: usize, total: usize) {
    if n > 0 {
        let need = (n - 1)
            .checked_mul(stride)
            .and_then(|s| s.checked_add(len))
            .expect("row extent overflows");
        assert!(
            need <= total,
            "{n} rows of {len} at stride {stride} need {need} floats, have {total}"
        );
    }
}

/// `out[j] = q · rows[j·stride ..][..q.len()]` for every `j < out.len()`.
pub fn dot_rows(q: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
    check(out.len(), q.len(), stride, rows.len());
    #[cfg(target_arch = "x86_64")]
    if crate::selected_isa() == Isa::Avx512 {
        // SAFETY: AVX-512 was detected (an ISA is only selected when available); the extent
        // of every row was checked above.
        unsafe { crate::x86::f32rows::dot_rows(q, rows, stride, out) };
        return;
    }
    for (j, o) in out.iter_mut().enumerate() {
        *o = dot_ref(q, &rows[j * stride..j * stride + q.len()]);
    }
}

/// `o = Σ_j c[j] · rows[j·stride ..][..o.len()]` (`o` is overwritten; zero when `c` is empty).
pub fn weighted_rows(o: &mut [f32], c: &[f32], rows: &[f32], stride: usize) {
    check(c.len(), o.len(), stride, rows.len());
    #[cfg(target_arch = "x86_64")]
    if crate::selected_isa() == Isa::Avx512 {
        // SAFETY: as in `dot_rows`.
        unsafe { crate::x86::f32rows::weighted_rows(o, c, rows, stride) };
        return;
    }
    o.fill(0.0);
    let len = o.len();
    for (j, &w) in c.iter().enumerate() {
        for (y, &x) in o.iter_mut().zip(&rows[j * stride..j * stride + len]) {
            *y += w * x;
        }
    }
}

/// The portable dot product: eight partial sums in a fixed order.
pub fn dot_ref(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let n = a.len().min(b.len());
    let chunks = n / 8;
    for c in 0..chunks {
        for l in 0..8 {
            acc[l] += a[c * 8 + l] * b[c * 8 + l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for i in chunks * 8..n {
        s += a[i] * b[i];
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn rows_match_f64_sums_on_odd_shapes() {
        for (len, n, stride) in [
            (256, 37, 512),
            (64, 1, 64),
            (33, 5, 40),
            (512, 9, 1024),
            (7, 3, 7),
        ] {
            let q = data(len, 1);
            let rows = data((n - 1) * stride + len, 2);
            let mut out = vec![0f32; n];
            dot_rows(&q, &rows, stride, &mut out);
            for (j, &o) in out.iter().enumerate() {
                let r = &rows[j * stride..j * stride + len];
                let want: f64 = q.iter().zip(r).map(|(a, b)| *a as f64 * *b as f64).sum();
                let mag: f64 = q
                    .iter()
                    .zip(r)
                    .map(|(a, b)| (*a as f64 * *b as f64).abs())
                    .sum();
                assert!(
                    (o as f64 - want).abs() <= len as f64 * 1.2e-7 * mag,
                    "dot {len} {j}"
                );
            }
            let c = data(n, 3);
            let mut o = vec![9f32; len];
            weighted_rows(&mut o, &c, &rows, stride);
            for (i, &v) in o.iter().enumerate() {
                let want: f64 = (0..n)
                    .map(|j| c[j] as f64 * rows[j * stride + i] as f64)
                    .sum();
                let mag: f64 = (0..n)
                    .map(|j| (c[j] as f64 * rows[j * stride + i] as f64).abs())
                    .sum();
                assert!(
                    (v as f64 - want).abs() <= n as f64 * 1.2e-7 * mag,
                    "weighted {len} {i}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "rows of")]
    fn short_rows_panic() {
        let mut out = [0f32; 3];
        dot_rows(&[1.0; 8], &[0.0; 20], 8, &mut out);
    }
}
