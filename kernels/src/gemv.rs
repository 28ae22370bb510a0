//! Matrix–vector (GEMV) and small-batch matrix–matrix (GEMM) products over a whole row-major
//! weight matrix given as bytes, split over the current rayon pool.
//!
//! The activations are quantized once per call into caller-provided scratch (the weight type's
//! [`GgmlType::vec_dot_type`]); F32 and F16 weights read the f32 activations directly, BF16
//! weights take them rounded to BF16 where the table has the native kernel
//! ([`Kernels::default_act`]). Nothing is allocated on the hot path.

use crate::dispatch::{act_bytes, act_type, row_bytes, Dot2Fn, DotFn, FloatAct, Kernels};
use crate::GgmlType;
use rayon::prelude::*;

#[cfg(not(target_endian = "little"))]
compile_error!("gq-kernels reads f32 activations as little-endian bytes");

/// Scratch bytes [`Kernels::gemv`] needs for one activation row of `cols` elements (0 for F32
/// and F16, which use the f32 activations as they are; `2·cols` for BF16, whose activations
/// may be rounded to BF16).
pub fn gemv_scratch_bytes(ty: GgmlType, cols: usize) -> usize {
    if ty == GgmlType::BF16 {
        2 * cols
    } else if ty.is_float() {
        0
    } else {
        act_bytes(ty, cols)
    }
}

/// Scratch bytes [`Kernels::gemm`] needs for `n` activation rows of `cols` elements.
pub fn gemm_scratch_bytes(ty: GgmlType, cols: usize, n: usize) -> usize {
    n * gemv_scratch_bytes(ty, cols)
}

/// The f32 slice as its little-endian bytes.
fn f32_bytes(x: &[f32]) -> &[u8] {
    // SAFETY: u8 has alignment 1 and every f32 bit pattern is valid bytes; the length covers
    // exactly the borrowed f32s.
    unsafe { core::slice::from_raw_parts(x.as_ptr().cast::<u8>(), core::mem::size_of_val(x)) }
}

/// Rows per parallel task: about four tasks per thread, at least `min` rows.
fn chunk_rows(rows: usize, min: usize) -> usize {
    let tasks = 4 * rayon::current_num_threads();
    rows.div_ceil(tasks).max(min).max(1)
}

/// A raw output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
impl OutPtr {
    /// The element pointer (a method, so that closures capture the whole `Send` wrapper).
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

// SAFETY: every task writes a disjoint set of elements (its own rows), and the pointer outlives
// the parallel section, which joins before the borrow ends.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl Kernels {
    /// The activation row [`Kernels::gemv`] dots `ty`'s rows with (format
    /// [`Kernels::default_act`]), for [`Kernels::vec_dot`].
    pub fn prepare_activation<'a>(
        &self,
        ty: GgmlType,
        x: &'a [f32],
        scratch: &'a mut [u8],
    ) -> &'a [u8] {
        self.prepare_activation_as(ty, x, scratch, self.default_act(ty))
    }

    /// Quantizes `x` to `ty`'s activation type in `scratch` (BF16 weights with
    /// [`FloatAct::Bf16`]: rounds it to BF16 there; other float types: borrows the f32 bytes of
    /// `x`) and returns the activation row for [`Kernels::vec_dot`].
    pub fn prepare_activation_as<'a>(
        &self,
        ty: GgmlType,
        x: &'a [f32],
        scratch: &'a mut [u8],
        act: FloatAct,
    ) -> &'a [u8] {
        if ty == GgmlType::BF16 && act == FloatAct::Bf16 {
            let n = 2 * x.len();
            assert!(
                scratch.len() >= n,
                "BF16: scratch of {} bytes < {n}",
                scratch.len()
            );
            let dst = &mut scratch[..n];
            crate::formats::bf16::quantize_row_ref(x, dst);
            return dst;
        }
        if ty.is_float() {
            return f32_bytes(x);
        }
        let n = act_bytes(ty, x.len());
        if ty.is_turboquant() {
            let FloatAct::Rotated(p) = act else {
                panic!("{ty}: TurboQuant weights need FloatAct::Rotated (the file's gq.tq.seed)")
            };
            assert!(
                scratch.len() >= n,
                "{ty}: scratch of {} bytes < {n}",
                scratch.len()
            );
            let dst = &mut scratch[..n];
            crate::formats::tq::prepare_activation(ty, &p, x, dst);
            return dst;
        }
        assert!(
            scratch.len() >= n,
            "{ty}: scratch of {} bytes < {n}",
            scratch.len()
        );
        let dst = &mut scratch[..n];
        self.quantize_row(act_type(ty), x, dst);
        dst
    }

    /// `y = W·x`: `w` holds `y.len()` rows of `x.len()` elements of type `ty`, row-major.
    /// `scratch` needs [`gemv_scratch_bytes`] bytes. Rows are split over the current rayon
    /// pool (use `ThreadPool::install` to choose the thread count). BF16 weights use
    /// [`Kernels::default_act`]; see [`Kernels::gemv_as`].
    pub fn gemv(&self, ty: GgmlType, w: &[u8], x: &[f32], y: &mut [f32], scratch: &mut [u8]) {
        self.gemv_as(ty, w, x, y, scratch, self.default_act(ty))
    }

    /// The dot kernels for `ty` with activations of format `act`.
    fn dots_for(&self, ty: GgmlType, act: FloatAct) -> (DotFn, Option<Dot2Fn>) {
        if ty == GgmlType::BF16 && act == FloatAct::Bf16 {
            (self.bf16_dot, self.bf16_dot2)
        } else {
            (self.dot_fn(ty), self.dot2[ty.index()])
        }
    }

    /// [`Kernels::gemv`] with an explicit activation format for BF16 weights
    /// ([`FloatAct::F32`] gives the exact-activation reference semantics on every CPU;
    /// [`FloatAct::Bf16`] without AVX512_BF16 runs the portable BF16 × BF16 loop).
    pub fn gemv_as(
        &self,
        ty: GgmlType,
        w: &[u8],
        x: &[f32],
        y: &mut [f32],
        scratch: &mut [u8],
        act_fmt: FloatAct,
    ) {
        let rb = row_bytes(ty, x.len());
        assert_eq!(w.len(), rb * y.len(), "{ty}: weight bytes vs rows × cols");
        let act = self.prepare_activation_as(ty, x, scratch, act_fmt);
        let (dot, dot2) = self.dots_for(ty, act_fmt);
        if !(ty == GgmlType::BF16 && act_fmt == FloatAct::Bf16) {
            self.check_dot(ty, rb, act.len());
        }
        if rb == 0 {
            y.fill(0.0);
            return;
        }
        let chunk = chunk_rows(y.len(), 8);
        y.par_chunks_mut(chunk)
            .zip(w.par_chunks(chunk * rb))
            .for_each(|(ys, ws)| {
                let mut r = 0;
                if let Some(dot2) = dot2 {
                    while r + 2 <= ys.len() {
                        let [a, b] = dot2(
                            &ws[r * rb..(r + 1) * rb],
                            &ws[(r + 1) * rb..(r + 2) * rb],
                            act,
                        );
                        ys[r] = a;
                        ys[r + 1] = b;
                        r += 2;
                    }
                }
                for (o, row) in ys[r..].iter_mut().zip(ws[r * rb..].chunks_exact(rb)) {
                    *o = dot(row, act);
                }
            });
    }

    /// Small-batch product `Y = X·Wᵀ`: `xs` holds `n` activation rows of `cols` elements,
    /// `ys` receives `n` output rows of `rows` elements (`ys[j·rows + r]` = row r of W · row j
    /// of X), `w` is `rows × cols` of type `ty`. Each weight row is read once and dotted with
    /// all `n` activations while it is in L1. `scratch` needs [`gemm_scratch_bytes`] bytes.
    /// Meant for n ≤ 16; works for any n. BF16 weights use [`Kernels::default_act`]; see
    /// [`Kernels::gemm_as`].
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        ty: GgmlType,
        w: &[u8],
        rows: usize,
        cols: usize,
        xs: &[f32],
        ys: &mut [f32],
        scratch: &mut [u8],
    ) {
        self.gemm_as(ty, w, rows, cols, xs, ys, scratch, self.default_act(ty))
    }

    /// [`Kernels::gemm`] with an explicit activation format for BF16 weights
    /// ([`FloatAct::F32`]: exact f32 activations on every CPU). Row j of the result is
    /// bit-identical to [`Kernels::gemv_as`] of row j of `xs` with the same format.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_as(
        &self,
        ty: GgmlType,
        w: &[u8],
        rows: usize,
        cols: usize,
        xs: &[f32],
        ys: &mut [f32],
        scratch: &mut [u8],
        act_fmt: FloatAct,
    ) {
        let rb = row_bytes(ty, cols);
        let n = xs.len().checked_div(cols).unwrap_or(0);
        assert_eq!(xs.len(), n * cols, "gemm: xs is not whole rows");
        assert_eq!(ys.len(), n * rows, "gemm: ys length");
        assert_eq!(w.len(), rb * rows, "{ty}: weight bytes vs rows × cols");
        let bf16_act = ty == GgmlType::BF16 && act_fmt == FloatAct::Bf16;
        let ab = if bf16_act {
            2 * cols
        } else {
            act_bytes(ty, cols)
        };
        let acts: &[u8] = if ty.is_float() && !bf16_act {
            f32_bytes(xs)
        } else {
            assert!(scratch.len() >= n * ab, "{ty}: gemm scratch too small");
            let s = &mut scratch[..n * ab];
            for (x, d) in xs.chunks_exact(cols).zip(s.chunks_exact_mut(ab)) {
                if bf16_act {
                    crate::formats::bf16::quantize_row_ref(x, d);
                } else if ty.is_turboquant() {
                    self.prepare_activation_as(ty, x, d, act_fmt);
                } else {
                    self.quantize_row(act_type(ty), x, d);
                }
            }
            s
        };
        if rows == 0 || n == 0 {
            return;
        }
        if !bf16_act {
            self.check_dot(ty, rb, ab);
        }
        let (dot, _) = self.dots_for(ty, act_fmt);
        let out = OutPtr(ys.as_mut_ptr());
        let chunk = chunk_rows(rows, 4);
        w.par_chunks(chunk * rb).enumerate().for_each(|(c, ws)| {
            for (k, row) in ws.chunks_exact(rb).enumerate() {
                let r = c * chunk + k;
                for (j, a) in acts.chunks_exact(ab).enumerate() {
                    let v = dot(row, a);
                    // SAFETY: r < rows and j < n, so j·rows + r is inside `ys`; each (j, r) is
                    // written by exactly one task (the one owning row r).
                    unsafe { *out.at(j * rows + r) = v };
                }
            }
        });
    }
}
