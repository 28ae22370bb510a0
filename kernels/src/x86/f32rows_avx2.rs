//! AVX2 + FMA bodies of [`crate::f32rows`]: 8 lanes, fused multiply-add, tails by
//! `vmaskmovps` (so any row length takes the same code). The same blocking as the AVX-512
//! bodies (`x86::f32rows`), narrowed to the 16 ymm registers. Callers check the row extents
//! and that AVX2 and FMA are present.

use core::arch::x86_64::*;

/// Eight set lanes then eight clear ones: a mask of the first `n ≤ 8` lanes starts at `8 − n`.
static MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// Mask of the first `n` (< 8) lanes, or all 8 when `n ≥ 8`.
///
/// # Safety
/// AVX2.
#[inline(always)]
unsafe fn lanes(n: usize) -> __m256i {
    _mm256_loadu_si256(MASKS.as_ptr().add(8 - n.min(8)) as *const __m256i)
}

/// The 8 floats at `p` (`full`) or its first lanes under the mask `m` (zeros elsewhere; masked
/// lanes are not read, so nothing past the row is touched).
#[inline(always)]
unsafe fn load(p: *const f32, full: bool, m: __m256i) -> __m256 {
    if full {
        _mm256_loadu_ps(p)
    } else {
        _mm256_maskload_ps(p, m)
    }
}

/// Stores the lanes of `v` under `m` (all when `full`) at `p`.
#[inline(always)]
unsafe fn store(p: *mut f32, full: bool, m: __m256i, v: __m256) {
    if full {
        _mm256_storeu_ps(p, v)
    } else {
        _mm256_maskstore_ps(p, m, v)
    }
}

/// The sum of the 8 lanes in one fixed order: halves, then pairs, then the last two.
#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// See [`crate::f32rows::dot_rows`]: four rows at a time (four independent accumulators).
///
/// # Safety
/// The CPU has AVX2 and FMA; `rows` holds `out.len()` rows of `q.len()` floats at `stride`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn dot_rows(q: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
    let len = q.len();
    let n = out.len();
    let (qp, rp, op) = (q.as_ptr(), rows.as_ptr(), out.as_mut_ptr());
    let mut j = 0;
    while j + 4 <= n {
        dot_block::<1, 4>(qp, len, rp, stride, j, op, n);
        j += 4;
    }
    while j < n {
        dot_block::<1, 1>(qp, len, rp, stride, j, op, n);
        j += 1;
    }
}

/// See [`crate::f32rows::weighted_rows`]: the output in pieces of up to eight registers (64
/// floats) held across all rows.
///
/// # Safety
/// The CPU has AVX2 and FMA; `rows` holds `c.len()` rows of `o.len()` floats at `stride`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn weighted_rows(o: &mut [f32], c: &[f32], rows: &[f32], stride: usize) {
    weighted_heads::<1, 8>(
        o.as_mut_ptr(),
        o.len(),
        c.as_ptr(),
        c.len(),
        rows.as_ptr(),
        stride,
    );
}

/// One block: `H` query rows (at `q`, `len` apart) against `K` key rows starting at row `j`,
/// results to `out[h·n + j + k]`. Per result one accumulator over 8-lane pieces in increasing
/// order, then [`hsum`] — the order of [`dot_rows`], whatever `H` and `K`.
///
/// # Safety
/// AVX2 + FMA; `q` holds `H·len` floats, `rp` rows `j..j+K` of `len` at `stride`, `out` `H·n`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_block<const H: usize, const K: usize>(
    qp: *const f32,
    len: usize,
    rp: *const f32,
    stride: usize,
    j: usize,
    op: *mut f32,
    n: usize,
) {
    let mut acc = [[_mm256_setzero_ps(); K]; H];
    // Only the last piece can be partial: `len mod 8` lanes.
    let m = lanes(len % 8);
    let mut i = 0;
    while i < len {
        let full = i + 8 <= len;
        let mut kv = [_mm256_setzero_ps(); K];
        for (k, v) in kv.iter_mut().enumerate() {
            *v = load(rp.add((j + k) * stride + i), full, m);
        }
        for (h, a) in acc.iter_mut().enumerate() {
            let qv = load(qp.add(h * len + i), full, m);
            for (k, ak) in a.iter_mut().enumerate() {
                *ak = _mm256_fmadd_ps(qv, kv[k], *ak);
            }
        }
        i += 8;
    }
    for (h, a) in acc.iter().enumerate() {
        for (k, ak) in a.iter().enumerate() {
            *op.add(h * n + j + k) = hsum(*ak);
        }
    }
}

/// All key rows for `H` query rows: blocks of `K` keys, then single keys.
///
/// # Safety
/// As [`dot_block`], for rows `0..n`.
#[inline]
#[target_feature(enable = "avx2,fma")]
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

/// See [`crate::f32rows::dot_rows_heads`]: up to four query rows share each loaded key row;
/// every result is bit-identical to [`dot_rows`]'s for that query row.
///
/// # Safety
/// AVX2 + FMA; `q` holds `heads·len` floats, `rows` `n` rows of `len` at `stride`, and
/// `out.len() == heads·n`.
#[target_feature(enable = "avx2,fma")]
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
        h += if left >= 4 {
            dot_heads::<4, 2>(qp, len, rp, stride, o, n);
            4
        } else if left >= 2 {
            dot_heads::<2, 4>(qp, len, rp, stride, o, n);
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

/// One piece: outputs `i0 .. i0 + 8·R` of `H` heads over rows `j0..j1`, from zero (`j0 = 0`)
/// or from what the previous key block stored. Per output the order of [`weighted_rows`]:
/// FMAs from zero in increasing row order (storing and reloading between blocks changes no
/// bit). Registers wholly past `len` are skipped; a partial one is masked.
///
/// # Safety
/// AVX2 + FMA; `o` holds `H·len` floats, `c` `H·n`, `rp` `n ≥ j1` rows of `len` at `stride`,
/// `i0 < len`.
#[inline]
#[target_feature(enable = "avx2,fma")]
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
    // Registers of this piece that hold output lanes, the last one partial when `len − i0`
    // is not a multiple of 8.
    let r_used = (len - i0).div_ceil(8).min(R);
    let full_last = i0 + 8 * r_used <= len;
    let m = lanes((len - i0) % 8);
    let full = |r: usize| r + 1 < r_used || full_last;
    let mut acc = [[_mm256_setzero_ps(); R]; H];
    if j0 > 0 {
        for (h, a) in acc.iter_mut().enumerate() {
            for (r, ar) in a.iter_mut().enumerate().take(r_used) {
                *ar = load(op.add(h * len + i0 + 8 * r), full(r), m);
            }
        }
    }
    for j in j0..j1 {
        let row = rp.add(j * stride + i0);
        let mut v = [_mm256_setzero_ps(); R];
        for (r, vr) in v.iter_mut().enumerate().take(r_used) {
            *vr = load(row.add(8 * r), full(r), m);
        }
        for (h, a) in acc.iter_mut().enumerate() {
            let wv = _mm256_set1_ps(*cp.add(h * n + j));
            for (r, ar) in a.iter_mut().enumerate().take(r_used) {
                *ar = _mm256_fmadd_ps(wv, v[r], *ar);
            }
        }
    }
    for (h, a) in acc.iter().enumerate() {
        for (r, ar) in a.iter().enumerate().take(r_used) {
            store(op.add(h * len + i0 + 8 * r), full(r), m, *ar);
        }
    }
}

/// All outputs of `H` heads: key blocks of [`KEY_BLOCK`] rows, and in each, pieces of `8·R`
/// floats; zero rows give zeros.
///
/// # Safety
/// As [`weighted_piece`].
#[inline]
#[target_feature(enable = "avx2,fma")]
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
            i0 += 8 * R;
        }
        if j1 >= n {
            break;
        }
        j0 = j1;
    }
}

/// See [`crate::f32rows::weighted_rows_heads`]: up to four heads share each loaded value row;
/// every output is bit-identical to [`weighted_rows`]'s for that head.
///
/// # Safety
/// AVX2 + FMA; `o` holds `heads·len` floats, `c` `heads·n`, `rows` `n` rows of `len` at
/// `stride`.
#[target_feature(enable = "avx2,fma")]
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
        h += if left >= 4 {
            weighted_heads::<4, 2>(op, len, cp, n, rp, stride);
            4
        } else if left >= 2 {
            weighted_heads::<2, 4>(op, len, cp, n, rp, stride);
            2
        } else {
            weighted_heads::<1, 8>(op, len, cp, n, rp, stride);
            1
        };
    }
}
