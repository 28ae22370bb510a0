//! f32 row operations for attention over a KV cache: a query dotted with many cached key rows
//! ([`dot_rows`]) and a weighted sum of cached value rows ([`weighted_rows`]). Rows are given
//! as one slice and a stride (a head's rows inside a cache of `n_kv_heads · head_dim` floats
//! per position). The ISA is [`crate::selected_isa`]'s: AVX-512 or AVX2 + FMA where the
//! kernels use them, else the portable code (which LLVM vectorises for the baseline target). Each result is
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
    #[cfg(target_arch = "x86_64")]
    if crate::selected_isa() == Isa::Avx2 {
        // SAFETY: AVX2 and FMA were detected (the AVX2 ISA requires both); extents checked.
        unsafe { crate::x86::f32rows_avx2::dot_rows(q, rows, stride, out) };
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
    #[cfg(target_arch = "x86_64")]
    if crate::selected_isa() == Isa::Avx2 {
        // SAFETY: as in `dot_rows`.
        unsafe { crate::x86::f32rows_avx2::weighted_rows(o, c, rows, stride) };
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

/// [`dot_rows`] for several query rows at once (the query heads of one KV group, which share
/// the key rows): `q` holds `heads` rows of `len`, and
/// `out[h·n + j] = q[h·len..][..len] · rows[j·stride..][..len]` for `n = out.len() / heads`.
/// Each key row is loaded once for up to eight heads; every result equals [`dot_rows`]'s bit
/// for bit (same order per result), so grouping never changes a value.
pub fn dot_rows_heads(q: &[f32], len: usize, rows: &[f32], stride: usize, out: &mut [f32]) {
    let heads = heads_of(q.len(), len, out.len());
    let n = out.len() / heads.max(1);
    check(n, len, stride, rows.len());
    #[cfg(target_arch = "x86_64")]
    if crate::selected_isa() == Isa::Avx512 {
        // SAFETY: AVX-512 was detected; the shapes and row extents were checked above.
        unsafe { crate::x86::f32rows::dot_rows_heads(q, len, rows, stride, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::selected_isa() == Isa::Avx2 {
        // SAFETY: AVX2 and FMA were detected; the shapes and row extents were checked above.
        unsafe { crate::x86::f32rows_avx2::dot_rows_heads(q, len, rows, stride, out) };
        return;
    }
    for h in 0..heads {
        dot_rows(&q[h * len..][..len], rows, stride, &mut out[h * n..][..n]);
    }
}

/// [`weighted_rows`] for several heads at once over the same value rows: `o` holds `heads`
/// outputs of `len`, `c` their `heads` weight rows of `n = c.len() / heads`, and
/// `o[h·len + i] = Σ_j c[h·n + j] · rows[j·stride + i]`. Each value row is loaded once for up to
/// eight heads; every output equals [`weighted_rows`]'s bit for bit.
pub fn weighted_rows_heads(o: &mut [f32], len: usize, c: &[f32], rows: &[f32], stride: usize) {
    let heads = heads_of(o.len(), len, c.len());
    let n = c.len() / heads.max(1);
    check(n, len, stride, rows.len());
    #[cfg(target_arch = "x86_64")]
    if crate::selected_isa() == Isa::Avx512 {
        // SAFETY: AVX-512 was detected; the shapes and row extents were checked above.
        unsafe { crate::x86::f32rows::weighted_rows_heads(o, len, c, rows, stride) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::selected_isa() == Isa::Avx2 {
        // SAFETY: AVX2 and FMA were detected; the shapes and row extents were checked above.
        unsafe { crate::x86::f32rows_avx2::weighted_rows_heads(o, len, c, rows, stride) };
        return;
    }
    for h in 0..heads {
        weighted_rows(&mut o[h * len..][..len], &c[h * n..][..n], rows, stride);
    }
}

/// The number of heads in `per_head_len · heads` floats, checking that `other` splits evenly.
fn heads_of(total: usize, len: usize, other: usize) -> usize {
    assert!(len > 0, "head length is zero");
    assert_eq!(
        total % len,
        0,
        "{total} floats are not whole heads of {len}"
    );
    let heads = total / len;
    assert!(
        heads > 0 && other.is_multiple_of(heads),
        "{other} results do not split over {heads} heads"
    );
    heads
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

    /// One implementation of the four row operations.
    struct Imp {
        name: &'static str,
        dot: fn(&[f32], &[f32], usize, &mut [f32]),
        weighted: fn(&mut [f32], &[f32], &[f32], usize),
        dot_heads: fn(&[f32], usize, &[f32], usize, &mut [f32]),
        weighted_heads: fn(&mut [f32], usize, &[f32], &[f32], usize),
    }

    /// The selected ISA's functions (the public ones), and on x86 the AVX2 bodies called
    /// directly where the CPU has AVX2 + FMA, so a machine that selects AVX-512 checks them
    /// too. `GQ_REQUIRE_ISAS` containing `avx2` makes a CPU without them fail.
    fn imps() -> Vec<Imp> {
        let mut v = vec![Imp {
            name: "selected",
            dot: dot_rows,
            weighted: weighted_rows,
            dot_heads: dot_rows_heads,
            weighted_heads: weighted_rows_heads,
        }];
        #[cfg(target_arch = "x86_64")]
        {
            let have = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            assert!(
                have || !std::env::var("GQ_REQUIRE_ISAS").is_ok_and(|r| r.contains("avx2")),
                "GQ_REQUIRE_ISAS asks for AVX2, which this CPU lacks"
            );
            if have {
                use crate::x86::f32rows_avx2 as a;
                // SAFETY (all four): AVX2 and FMA were detected just above; the tests give
                // row extents that fit, as the public wrappers check.
                v.push(Imp {
                    name: "avx2",
                    dot: |q, r, s, o| unsafe { a::dot_rows(q, r, s, o) },
                    weighted: |o, c, r, s| unsafe { a::weighted_rows(o, c, r, s) },
                    dot_heads: |q, l, r, s, o| unsafe { a::dot_rows_heads(q, l, r, s, o) },
                    weighted_heads: |o, l, c, r, s| unsafe {
                        a::weighted_rows_heads(o, l, c, r, s)
                    },
                });
            }
        }
        v
    }

    #[test]
    fn rows_match_f64_sums_on_odd_shapes() {
        for (imp, (len, n, stride)) in imps().iter().flat_map(|i| {
            [
                (256, 37, 512),
                (64, 1, 64),
                (33, 5, 40),
                (512, 9, 1024),
                (7, 3, 7),
                (100, 70, 128),
            ]
            .map(move |c| (i, c))
        }) {
            let name = imp.name;
            let q = data(len, 1);
            let rows = data((n - 1) * stride + len, 2);
            let mut out = vec![0f32; n];
            (imp.dot)(&q, &rows, stride, &mut out);
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
                    "{name}: dot {len} {j}"
                );
            }
            let c = data(n, 3);
            let mut o = vec![9f32; len];
            (imp.weighted)(&mut o, &c, &rows, stride);
            for (i, &v) in o.iter().enumerate() {
                let want: f64 = (0..n)
                    .map(|j| c[j] as f64 * rows[j * stride + i] as f64)
                    .sum();
                let mag: f64 = (0..n)
                    .map(|j| (c[j] as f64 * rows[j * stride + i] as f64).abs())
                    .sum();
                assert!(
                    (v as f64 - want).abs() <= n as f64 * 1.2e-7 * mag,
                    "{name}: weighted {len} {i}"
                );
            }
        }
    }

    #[test]
    fn heads_match_one_head_at_a_time_bit_for_bit() {
        for (imp, (heads, len, n, stride)) in imps().iter().flat_map(|i| {
            [
                (8, 256, 37usize, 256),
                (8, 512, 11, 1024),
                (7, 64, 9, 128),
                (2, 33, 13, 40),
                (1, 256, 5, 256),
                (16, 16, 4, 48),
                (4, 100, 70, 128),
                (8, 256, 0, 256),
                (3, 7, 1, 7),
                (5, 41, 6, 41),
            ]
            .map(move |c| (i, c))
        }) {
            let name = imp.name;
            let q = data(heads * len, 4);
            let rows = data(n.saturating_sub(1) * stride + len, 5);
            let mut out = vec![0f32; heads * n];
            (imp.dot_heads)(&q, len, &rows, stride, &mut out);
            let c = data(heads * n, 6);
            let mut o = vec![7f32; heads * len];
            (imp.weighted_heads)(&mut o, len, &c, &rows, stride);
            for h in 0..heads {
                let mut one = vec![0f32; n];
                (imp.dot)(&q[h * len..][..len], &rows, stride, &mut one);
                let got = &out[h * n..][..n];
                assert!(
                    one.iter().zip(got).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{name}: dot heads {heads} len {len} n {n}: head {h}"
                );
                let mut oh = vec![0f32; len];
                (imp.weighted)(&mut oh, &c[h * n..][..n], &rows, stride);
                let got = &o[h * len..][..len];
                assert!(
                    oh.iter().zip(got).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{name}: weighted heads {heads} len {len} n {n}: head {h}"
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
