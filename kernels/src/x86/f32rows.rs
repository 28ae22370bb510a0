//! AVX-512 bodies of [`crate::f32rows`]: 16 lanes, fused multiply-add, masked tails (so any row
//! length takes the same code). Callers check the row extents and that AVX-512 F is present.

use core::arch::x86_64::*;

/// Mask of the first `n` (< 16) lanes, or all 16 when `n ≥ 16`.
#[inline(always)]
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// See [`crate::f32rows::dot_rows`]: four rows at a time (four independent accumulators).
///
/// # Safety
/// The CPU has AVX-512 F; `rows` holds `out.len()` rows of `q.len()` floats at `stride`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn dot_rows(q: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
    let len = q.len();
    let (qp, rp) = (q.as_ptr(), rows.as_ptr());
    let mut j = 0;
    while j + 4 <= out.len() {
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i < len {
            let m = lanes(len - i);
            let qv = _mm512_maskz_loadu_ps(m, qp.add(i));
            for (r, a) in acc.iter_mut().enumerate() {
                let kv = _mm512_maskz_loadu_ps(m, rp.add((j + r) * stride + i));
                *a = _mm512_fmadd_ps(qv, kv, *a);
            }
            i += 16;
        }
        for (r, a) in acc.iter().enumerate() {
            out[j + r] = _mm512_reduce_add_ps(*a);
        }
        j += 4;
    }
    while j < out.len() {
        let mut a = _mm512_setzero_ps();
        let mut i = 0;
        while i < len {
            let m = lanes(len - i);
            let qv = _mm512_maskz_loadu_ps(m, qp.add(i));
            a = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, rp.add(j * stride + i)), a);
            i += 16;
        }
        out[j] = _mm512_reduce_add_ps(a);
        j += 1;
    }
}

/// See [`crate::f32rows::weighted_rows`]: the output in pieces of up to eight registers (128
/// floats) held across all rows.
///
/// # Safety
/// The CPU has AVX-512 F; `rows` holds `c.len()` rows of `o.len()` floats at `stride`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn weighted_rows(o: &mut [f32], c: &[f32], rows: &[f32], stride: usize) {
    const R: usize = 8;
    let len = o.len();
    let (op, rp) = (o.as_mut_ptr(), rows.as_ptr());
    let mut i0 = 0;
    while i0 < len {
        let mut acc = [_mm512_setzero_ps(); R];
        for (j, &w) in c.iter().enumerate() {
            let wv = _mm512_set1_ps(w);
            let row = rp.add(j * stride + i0);
            for (r, a) in acc.iter_mut().enumerate() {
                let i = i0 + 16 * r;
                if i < len {
                    let v = _mm512_maskz_loadu_ps(lanes(len - i), row.add(16 * r));
                    *a = _mm512_fmadd_ps(wv, v, *a);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            let i = i0 + 16 * r;
            if i < len {
                _mm512_mask_storeu_ps(op.add(i), lanes(len - i), *a);
            }
        }
        i0 += 16 * R;
    }
}

/// One block of [`dot_rows_heads`]: `H` query rows (at `q`, `len` apart) against `K` key rows
/// starting at row `j`, results to `out[h·n + j + k]`. Per result the same order as
/// [`dot_rows`]: one accumulator over 16-lane pieces in increasing order, then one reduction.
///
/// # Safety
/// AVX-512 F; `q` holds `H·len` floats, `rp` rows `j..j+K` of `len` at `stride`, `out` `H·n`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn dot_block<const H: usize, const K: usize>(
    qp: *const f32,
    len: usize,
    rp: *const f32,
    stride: usize,
    j: usize,
    op: *mut f32,
    n: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); K]; H];
    let mut i = 0;
    while i < len {
        let m = lanes(len - i);
        let mut kv = [_mm512_setzero_ps(); K];
        for (k, v) in kv.iter_mut().enumerate() {
            *v = _mm512_maskz_loadu_ps(m, rp.add((j + k) * stride + i));
        }
        for (h, a) in acc.iter_mut().enumerate() {
            let qv = _mm512_maskz_loadu_ps(m, qp.add(h * len + i));
            for (k, ak) in a.iter_mut().enumerate() {
                *ak = _mm512_fmadd_ps(qv, kv[k], *ak);
            }
        }
        i += 16;
    }
    for (h, a) in acc.iter().enumerate() {
        for (k, ak) in a.iter().enumerate() {
            *op.add(h * n + j + k) = _mm512_reduce_add_ps(*ak);
        }
    }
}

/// All key rows for `H` query rows: blocks of `K` keys, then single keys.
///
/// # Safety
/// As [`dot_block`], for rows `0..n`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn dot_heads<const H: usize, const K: usize>(
    qp: *const f32,
    len: usize,
    rp: *const f32,
    stride: usize,
    op: *mut f32,
    n: usize,
) {
    let mut j = 0;
    while j + K <= n {
        dot_block::<H, K>(qp, len, rp, stride, j, op, n);
        j += K;
    }
    while j < n {
        dot_block::<H, 1>(qp, len, rp, stride, j, op, n);
        j += 1;
    }
}

/// See [`crate::f32rows::dot_rows_heads`]: up to eight query rows share each loaded key row;
/// every result is bit-identical to [`dot_rows`]'s for that query row.
///
/// # Safety
/// AVX-512 F; `q` holds `heads·len` floats, `rows` `n` rows of `len` at `stride`, and
/// `out.len() == heads·n`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn dot_rows_heads(
    q: &[f32],
    len: usize,
    rows: &[f32],
    stride: usize,
    out: &mut [f32],
) {
    let heads = q.len() / len.max(1);
    let n = out.len().checked_div(heads).unwrap_or(0);
    let (rp, op) = (rows.as_ptr(), out.as_mut_ptr());
    let mut h = 0;
    while h < heads {
        let (qp, o) = (q.as_ptr().add(h * len), op.add(h * n));
        let left = heads - h;
        h += if left >= 8 {
            dot_heads::<8, 3>(qp, len, rp, stride, o, n);
            8
        } else if left >= 4 {
            dot_heads::<4, 5>(qp, len, rp, stride, o, n);
            4
        } else if left >= 2 {
            dot_heads::<2, 8>(qp, len, rp, stride, o, n);
            2
        } else {
            dot_heads::<1, 4>(qp, len, rp, stride, o, n);
            1
        };
    }
}

/// Rows per key block of [`weighted_rows_heads`]: 32 rows of up to 256 floats stay in L1 while
/// every piece of the output runs over them.
const KEY_BLOCK: usize = 32;

/// One piece of [`weighted_rows_heads`]: outputs `i0 .. i0 + 16·R` of `H` heads over rows
/// `j0..j1`, from zero (`first`) or from what the previous key block stored. Per output the
/// same order as [`weighted_rows`]: FMAs from zero in increasing row order (storing and
/// reloading between blocks changes no bit). Lanes at or past `len` are masked off.
///
/// # Safety
/// AVX-512 F; `o` holds `H·len` floats, `c` `H·n`, `rp` `n ≥ j1` rows of `len` at `stride`,
/// `i0 < len`.
#[inline]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn weighted_piece<const H: usize, const R: usize>(
    op: *mut f32,
    len: usize,
    cp: *const f32,
    n: usize,
    rp: *const f32,
    stride: usize,
    i0: usize,
    (j0, j1): (usize, usize),
) {
    let mut m = [0 as __mmask16; R];
    for (r, mr) in m.iter_mut().enumerate() {
        let i = i0 + 16 * r;
        *mr = if i < len { lanes(len - i) } else { 0 };
    }
    let mut acc = [[_mm512_setzero_ps(); R]; H];
    if j0 > 0 {
        for (h, a) in acc.iter_mut().enumerate() {
            for (r, ar) in a.iter_mut().enumerate() {
                *ar = _mm512_maskz_loadu_ps(m[r], op.add(h * len).wrapping_add(i0 + 16 * r));
            }
        }
    }
    for j in j0..j1 {
        let row = rp.add(j * stride + i0);
        let mut v = [_mm512_setzero_ps(); R];
        for (r, vr) in v.iter_mut().enumerate() {
            // A lane mask of zero loads nothing (no fault past the end).
            *vr = _mm512_maskz_loadu_ps(m[r], row.wrapping_add(16 * r));
        }
        for (h, a) in acc.iter_mut().enumerate() {
            let wv = _mm512_set1_ps(*cp.add(h * n + j));
            for (r, ar) in a.iter_mut().enumerate() {
                *ar = _mm512_fmadd_ps(wv, v[r], *ar);
            }
        }
    }
    for (h, a) in acc.iter().enumerate() {
        for (r, ar) in a.iter().enumerate() {
            _mm512_mask_storeu_ps(op.add(h * len).wrapping_add(i0 + 16 * r), m[r], *ar);
        }
    }
}

/// All outputs of `H` heads: key blocks of [`KEY_BLOCK`] rows, and in each, pieces of `16·R`
/// floats; zero rows give zeros.
///
/// # Safety
/// As [`weighted_piece`].
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn weighted_heads<const H: usize, const R: usize>(
    op: *mut f32,
    len: usize,
    cp: *const f32,
    n: usize,
    rp: *const f32,
    stride: usize,
) {
    let mut j0 = 0;
    loop {
        let j1 = (j0 + KEY_BLOCK).min(n);
        let mut i0 = 0;
        while i0 < len {
            weighted_piece::<H, R>(op, len, cp, n, rp, stride, i0, (j0, j1));
            i0 += 16 * R;
        }
        if j1 >= n {
            break;
        }
        j0 = j1;
    }
}

/// See [`crate::f32rows::weighted_rows_heads`]: up to eight heads share each loaded value row;
/// every output is bit-identical to [`weighted_rows`]'s for that head.
///
/// # Safety
/// AVX-512 F; `o` holds `heads·len` floats, `c` `heads·n`, `rows` `n` rows of `len` at `stride`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn weighted_rows_heads(
    o: &mut [f32],
    len: usize,
    c: &[f32],
    rows: &[f32],
    stride: usize,
) {
    let heads = o.len() / len.max(1);
    let n = c.len().checked_div(heads).unwrap_or(0);
    let rp = rows.as_ptr();
    let mut h = 0;
    while h < heads {
        let (op, cp) = (o.as_mut_ptr().add(h * len), c.as_ptr().add(h * n));
        let left = heads - h;
        h += if left >= 8 {
            weighted_heads::<8, 2>(op, len, cp, n, rp, stride);
            8
        } else if left >= 4 {
            weighted_heads::<4, 4>(op, len, cp, n, rp, stride);
            4
        } else if left >= 2 {
            weighted_heads::<2, 8>(op, len, cp, n, rp, stride);
            2
        } else {
            weighted_heads::<1, 8>(op, len, cp, n, rp, stride);
            1
        };
    }
}
