//! STREAM-style memory read bandwidth probe: a wrapping sum of every u64 of a buffer, split
//! over the current rayon pool in one contiguous piece per thread (as GEMV reads its rows).

use rayon::prelude::*;

#[inline(always)]
fn sum_body(x: &[u64]) -> u64 {
    let mut acc = [0u64; 16];
    let mut it = x.chunks_exact(16);
    for c in &mut it {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(*v);
        }
    }
    let tail = it.remainder().iter().fold(0u64, |s, v| s.wrapping_add(*v));
    acc.iter().fold(tail, |s, v| s.wrapping_add(*v))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sum_avx512(x: &[u64]) -> u64 {
    use core::arch::x86_64::*;
    let mut acc = [_mm512_setzero_si512(); 8];
    let mut it = x.chunks_exact(64);
    for c in &mut it {
        let p = c.as_ptr();
        for (k, a) in acc.iter_mut().enumerate() {
            *a = _mm512_add_epi64(*a, _mm512_loadu_si512(p.add(8 * k).cast()));
        }
    }
    let mut s = it.remainder().iter().fold(0u64, |s, v| s.wrapping_add(*v));
    for a in acc {
        s = s.wrapping_add(_mm512_reduce_add_epi64(a) as u64);
    }
    s
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_avx2(x: &[u64]) -> u64 {
    use core::arch::x86_64::*;
    let mut acc = [_mm256_setzero_si256(); 8];
    let mut it = x.chunks_exact(32);
    for c in &mut it {
        let p = c.as_ptr();
        for (k, a) in acc.iter_mut().enumerate() {
            *a = _mm256_add_epi64(*a, _mm256_loadu_si256(p.add(4 * k).cast()));
        }
    }
    let mut s = it.remainder().iter().fold(0u64, |s, v| s.wrapping_add(*v));
    for a in acc {
        let v: [u64; 4] = core::mem::transmute(a);
        s = v.iter().fold(s, |s, x| s.wrapping_add(*x));
    }
    s
}

/// Wrapping sum of `x` on one thread, with the widest vectors the CPU has.
pub fn sum_u64(x: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected just above.
            return unsafe { sum_avx512(x) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was detected just above.
            return unsafe { sum_avx2(x) };
        }
    }
    sum_body(x)
}

/// Wrapping sum of `x` over the current rayon pool, one contiguous piece per thread. Returns
/// the sum so that the reads cannot be optimized away.
pub fn par_sum_u64(x: &[u64]) -> u64 {
    let t = rayon::current_num_threads().max(1);
    let chunk = x.len().div_ceil(t).max(1);
    x.par_chunks(chunk)
        .map(sum_u64)
        .reduce(|| 0, |a, b| a.wrapping_add(b))
}
