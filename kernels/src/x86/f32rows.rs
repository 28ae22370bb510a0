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
