//! The Gemma 4 text forward pass on the CPU: a [`Session`] holds the KV cache and runs batches of
//! tokens through every layer (prompt processing through the kernels' GEMM, one token at a time
//! for generation), returning the final logits (after soft-capping) at the positions asked for.
//!
//! Float weights meet exact f32 activations (`FloatAct::F32`, unless [`Model::float_act`] says
//! otherwise); quantized weights meet the type's Q8 activations, as in llama.cpp; gq's
//! TurboQuant weights meet the activation rotated with the file's seed
//! ([`gq_kernels::FloatAct::Rotated`], once per input: Q/K/V and gate/up share it, see
//! [`matmul_many`]) and quantized to int8. Work is split
//! over the kernels' spinning worker pool ([`gq_kernels::pool`], as many threads as the current
//! rayon pool has) by output rows, tokens or heads, never inside a sum, so results do not
//! depend on the thread count; a batch of n tokens gives the logits that n one-token calls give
//! within a stated bound (bit for bit where the kernels have no tiled GEMM: docs/runner.md,
//! "Precision and determinism").

use super::model::{Layer, Mat, Model, Moe};
use super::ops::{argmax, axpy, rms_norm, rms_norm_rows, rope_apply, rope_cos_sin, rope_inv_freq};
use anyhow::{bail, Result};
use gq_kernels::pool::{par_chunks_mut, rows_mut, rows_mut2};
use gq_kernels::{
    f32rows, gelu::gelu_tanh_mul, gemm_scratch_bytes, kernels, many_scratch_bytes, min_task_elems,
    min_task_rows, Weights,
};

/// Softmax of one head's scores in place (max subtracted, sum in f64). Weights below f32's
/// smallest normal number are set to zero: subnormal operands make every multiply-add with
/// them take a slow microcode path on x86 (a several-fold slowdown of the value rows where
/// scores spread widely), and each such term is below 1.2e-38·|v|, under half an ulp of any
/// output that is not itself that small, so dropping them changes no normal result.
fn softmax_weights(s: &mut [f32]) {
    let mx = max_of(s);
    let mut sum = 0f64;
    for v in s.iter_mut() {
        let d = *v - mx;
        // Below this, exp is under f32's smallest normal: the weight becomes 0 below anyway,
        // and the f64 sum (≥ 1) cannot see it, so skipping the (slow, subnormal) exp changes
        // nothing.
        *v = if d < -87.5 { 0.0 } else { d.exp() };
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in s.iter_mut() {
        let w = *v * inv;
        *v = if w >= f32::MIN_POSITIVE { w } else { 0.0 };
    }
}

/// The largest of `s` as `s.iter().copied().fold(f32::NEG_INFINITY, f32::max)` gives it, taken
/// in eight lanes (one dependency chain per lane instead of one for all). `f32::max` is exact
/// and ignores NaN, so any order gives the same maximum, except that a tie of +0 and −0 may
/// give either; the softmax above only uses it in `v - mx`, which is the same for both.
fn max_of(s: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 8];
    let mut pieces = s.chunks_exact(8);
    for p in &mut pieces {
        for (a, &v) in m.iter_mut().zip(p) {
            *a = a.max(v);
        }
    }
    let mx = m.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    pieces.remainder().iter().copied().fold(mx, f32::max)
}

/// Elements per parallel piece of the MLP's `gelu(gate) · up`.
const GELU_CHUNK: usize = 8192;

/// `Y = X·Wᵀ` for `n = xs.len() / w.cols` activation rows (GEMV for one row, GEMM otherwise;
/// from 16 rows the GEMM may take the kernels' tiled path, which is within a stated bound of,
/// not bit-identical to, the GEMV: docs/runner.md, "Precision and determinism").
pub fn matmul(model: &Model, w: &Mat, xs: &[f32]) -> Vec<f32> {
    let mut ys = vec![0f32; xs.len() / w.cols * w.rows];
    matmul_into(model, w, xs, &mut ys);
    ys
}

/// [`matmul`] into `ys` (`n · w.rows` values, every one overwritten: the kernels assign each
/// output, so `ys` may hold anything, and the forward pass reuses its buffers).
pub fn matmul_into(model: &Model, w: &Mat, xs: &[f32], ys: &mut [f32]) {
    let n = xs.len() / w.cols;
    debug_assert_eq!(xs.len(), n * w.cols);
    assert_eq!(ys.len(), n * w.rows, "matmul_into: output length");
    // The kernels write every scratch byte they read, so the buffer is kept (per thread) from
    // call to call instead of being allocated and zeroed each time.
    let need = gemm_scratch_bytes(w.ty, w.cols, n);
    let mut scratch = SCRATCH.with(|c| c.take());
    if scratch.len() < need {
        scratch.resize(need, 0);
    }
    let k = kernels();
    let bytes = model.bytes(w);
    let act = model.file.act_for(w.ty, model.float_act);
    if n == 1 {
        k.gemv_as(w.ty, bytes, xs, ys, &mut scratch[..need], act);
    } else {
        k.gemm_as(
            w.ty,
            bytes,
            w.rows,
            w.cols,
            xs,
            ys,
            &mut scratch[..need],
            act,
        );
    }
    SCRATCH.with(|c| c.replace(scratch));
}

/// [`matmul`] of several matrices with the same columns on the same activations, `Y_i =
/// X·W_iᵀ` in the order given: the kernels prepare (quantize, rotate, lay out) the activations
/// once per group of matrices that take the same prepared form instead of once per matrix
/// ([`gq_kernels::Kernels::gemm_many`]); each result is bit-identical to [`matmul`]'s.
pub fn matmul_many(model: &Model, ws: &[&Mat], xs: &[f32]) -> Vec<Vec<f32>> {
    let Some(first) = ws.first() else {
        return Vec::new();
    };
    let n = xs.len() / first.cols;
    let mut out: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; n * w.rows]).collect();
    let mut ys: Vec<&mut [f32]> = out.iter_mut().map(|y| y.as_mut_slice()).collect();
    matmul_many_into(model, ws, xs, &mut ys);
    out
}

/// [`matmul_many`] into `ys` (`ys[i]`: `n · ws[i].rows` values, every one overwritten, as
/// [`matmul_into`]).
pub fn matmul_many_into(model: &Model, ws: &[&Mat], xs: &[f32], ys: &mut [&mut [f32]]) {
    let Some(first) = ws.first() else {
        return;
    };
    let cols = first.cols;
    assert!(
        ws.iter().all(|w| w.cols == cols),
        "matmul_many: column counts differ"
    );
    let n = xs.len() / cols;
    debug_assert_eq!(xs.len(), n * cols);
    let mats: Vec<Weights> = ws
        .iter()
        .map(|w| Weights {
            ty: w.ty,
            w: model.bytes(w),
            rows: w.rows,
            act: model.file.act_for(w.ty, model.float_act),
        })
        .collect();
    assert!(
        ys.len() == ws.len() && ws.iter().zip(ys.iter()).all(|(w, y)| y.len() == n * w.rows),
        "matmul_many_into: output lengths"
    );
    let need = many_scratch_bytes(&mats, cols, n);
    let mut scratch = SCRATCH.with(|c| c.take());
    if scratch.len() < need {
        scratch.resize(need, 0);
    }
    let k = kernels();
    if n == 1 {
        k.gemv_many(&mats, xs, ys, &mut scratch[..need]);
    } else {
        k.gemm_many(&mats, cols, xs, ys, &mut scratch[..need]);
    }
    SCRATCH.with(|c| c.replace(scratch));
}

/// The forward pass's activation buffers, kept by the [`Session`] from call to call (each
/// grown when a batch needs more; not kept past a call whose logits would take more room),
/// so that a layer's steps write into memory already allocated and touched instead of fresh
/// zeroed vectors. Every user overwrites what it reads
/// back (the attention output is zeroed per task before its sums), so no value depends on
/// what a buffer held.
#[derive(Default)]
struct Scratch {
    /// The residual stream `[n][hidden]`.
    x: Vec<f32>,
    /// The per-layer inputs `[n][n_layer][ple]`.
    ple: Vec<f32>,
    /// A normed copy of the residual stream.
    xn: Vec<f32>,
    /// Q, K, V projections.
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// The attention output (before the O projection).
    att: Vec<f32>,
    /// A matrix product added back to the residual stream (O, down, per-layer projection).
    o: Vec<f32>,
    /// The MLP's gate and up products (and the per-layer gate).
    g: Vec<f32>,
    u: Vec<f32>,
}

impl Scratch {
    /// Elements held by all the buffers.
    fn floats(&self) -> usize {
        [
            &self.x, &self.ple, &self.xn, &self.q, &self.k, &self.v, &self.att, &self.o, &self.g,
            &self.u,
        ]
        .iter()
        .map(|b| b.capacity())
        .sum()
    }
}

/// `n` elements of `buf` from its first 64-byte boundary (`buf` grows, zero-filled, when too
/// short; the caller overwrites them, see [`Scratch`]). On cache-line boundaries, each 16-row
/// tile that the tiled GEMM writes fills one line of its output instead of straddling two.
fn part(buf: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if buf.len() < n + 15 {
        buf.resize(n + 15, 0.0);
    }
    let o = lead(buf);
    &mut buf[o..o + n]
}

/// The same `n` elements of `buf` as [`part`] gave, read only.
fn part_ref(buf: &[f32], n: usize) -> &[f32] {
    let o = lead(buf);
    &buf[o..o + n]
}

/// Elements before the first 64-byte boundary of `buf` (at most 15).
fn lead(buf: &[f32]) -> usize {
    buf.as_ptr().align_offset(64).min(15)
}

thread_local! {
    /// [`matmul`]'s activation scratch, reused across calls on this thread.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// K and V of every position so far for one layer, `[pos][n_head_kv · head_dim]`, after the
/// K norm and RoPE / the V norm.
#[derive(Default, Clone)]
pub struct KvCache {
    k: Vec<f32>,
    v: Vec<f32>,
}

/// A sequence being evaluated: the model and its KV cache.
pub struct Session<'m> {
    model: &'m Model,
    cache: Vec<KvCache>,
    n_past: usize,
    inv_freq_swa: Vec<f32>,
    inv_freq_full: Vec<f32>,
    scratch: Scratch,
}

/// Cosine and sine tables of the batch's positions for one layer type, `[token][pair]`.
struct Rope {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl Rope {
    fn new(p0: usize, n: usize, inv_freq: &[f32]) -> Rope {
        let half = inv_freq.len();
        let (mut cos, mut sin) = (vec![0f32; n * half], vec![0f32; n * half]);
        // Row by row in parallel (each row's values depend on its position alone).
        rows_mut2(
            &mut cos,
            half,
            &mut sin,
            half,
            min_task_rows(4 * half),
            |t0, cb, sb| {
                for (j, (c, s)) in cb
                    .chunks_exact_mut(half.max(1))
                    .zip(sb.chunks_exact_mut(half.max(1)))
                    .enumerate()
                {
                    rope_cos_sin(p0 + t0 + j, inv_freq, c, s);
                }
            },
        );
        Rope { cos, sin, half }
    }

    /// Normalizes and rotates every head of `n` rows of `heads · head_dim` values.
    fn norm_rotate(&self, x: &mut [f32], head_dim: usize, norm: &[f32], eps: f32) {
        let per_tok = x.len() / (self.cos.len() / self.half);
        rows_mut(x, per_tok, min_task_rows(per_tok), |t0, blk| {
            // Every head normed (four at a time), then rotated: each head sees the same
            // operations as norm-then-rotate head by head.
            rms_norm_rows(blk, head_dim, Some(norm), eps);
            for (j, row) in blk.chunks_exact_mut(per_tok).enumerate() {
                let t = t0 + j;
                let (c, s) = (
                    &self.cos[t * self.half..(t + 1) * self.half],
                    &self.sin[t * self.half..(t + 1) * self.half],
                );
                for head in row.chunks_exact_mut(head_dim) {
                    rope_apply(head, c, s);
                }
            }
        });
    }
}

/// Per-token RMSNorm of `n` rows of `x`.
fn norm_rows(x: &[f32], width: usize, w: Option<&[f32]>, eps: f32) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    norm_rows_into(x, width, w, eps, &mut out);
    out
}

/// [`norm_rows`] into `out` (as long as `x`, every element overwritten).
fn norm_rows_into(x: &[f32], width: usize, w: Option<&[f32]>, eps: f32, out: &mut [f32]) {
    debug_assert_eq!(out.len(), x.len());
    rows_mut(out, width, min_task_rows(width), |r0, blk| {
        blk.copy_from_slice(&x[r0 * width..r0 * width + blk.len()]);
        rms_norm_rows(blk, width, w, eps);
    });
}

/// `x += norm(d)` row by row (`d` is normed in place).
fn add_normed(x: &mut [f32], d: &mut [f32], width: usize, w: &[f32], eps: f32) {
    rows_mut2(x, width, d, width, min_task_rows(width), |_, xb, db| {
        rms_norm_rows(db, width, Some(w), eps);
        for (a, b) in xb.iter_mut().zip(db.iter()) {
            *a += *b;
        }
    });
}

impl<'m> Session<'m> {
    /// An empty sequence.
    pub fn new(model: &'m Model) -> Session<'m> {
        let hp = &model.hp;
        Session {
            model,
            cache: vec![KvCache::default(); hp.n_layer],
            n_past: 0,
            inv_freq_swa: rope_inv_freq(hp.rope_base_swa, hp.head_dim_swa, None),
            inv_freq_full: rope_inv_freq(
                hp.rope_base_full,
                hp.head_dim_full,
                Some(&hp.rope_freq_factors_full),
            ),
            scratch: Scratch::default(),
        }
    }

    /// Tokens evaluated so far.
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    /// Forgets every token (keeps the allocations).
    pub fn clear(&mut self) {
        for c in &mut self.cache {
            c.k.clear();
            c.v.clear();
        }
        self.n_past = 0;
    }

    /// Runs `tokens` (at positions `n_past ..`) through the model and returns the logits of
    /// the batch rows listed in `want` (strictly increasing indices into `tokens`), one row of
    /// [`Model::n_vocab`] values each, concatenated.
    pub fn forward(&mut self, tokens: &[u32], want: &[usize]) -> Result<Vec<f32>> {
        let m = self.model;
        let hp = &m.hp;
        let n = tokens.len();
        if n == 0 {
            bail!("no tokens to evaluate");
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= m.n_embd_rows()) {
            bail!(
                "token id {t} is outside the vocabulary ({} rows)",
                m.n_embd_rows()
            );
        }
        if let Some(pg) = &m.ple {
            if let Some(&t) = tokens.iter().find(|&&t| t as usize >= pg.tok.rows) {
                bail!(
                    "token id {t} is outside the per-layer embedding table ({} rows)",
                    pg.tok.rows
                );
            }
        }
        if want.windows(2).any(|w| w[0] >= w[1]) || want.last().is_some_and(|&w| w >= n) {
            bail!("logit rows {want:?} are not increasing indices below {n}");
        }
        let p0 = self.n_past;
        let h = hp.hidden;
        let mut sc = std::mem::take(&mut self.scratch);
        let (mut x_buf, mut ple_buf) = (std::mem::take(&mut sc.x), std::mem::take(&mut sc.ple));
        let x = part(&mut x_buf, n * h);
        self.embed(tokens, x);
        let has_ple = self.ple_inputs(tokens, x, &mut ple_buf);
        let rope_swa = Rope::new(p0, n, &self.inv_freq_swa);
        let rope_full = Rope::new(p0, n, &self.inv_freq_full);
        for (il, layer) in m.layers.iter().enumerate() {
            let rope = if hp.swa[il] { &rope_swa } else { &rope_full };
            self.attention(il, layer, x, rope, p0, &mut sc);
            self.feed_forward(layer, x, &mut sc);
            if let (Some(pl), true) = (&layer.ple, has_ple) {
                let d = hp.ple_dim;
                let pin = part_ref(&ple_buf, n * hp.n_layer * d);
                let g = part(&mut sc.g, n * pl.gate.rows);
                matmul_into(m, &pl.gate, x, g);
                rows_mut(g, d, min_task_rows(d), |t0, blk| {
                    for (j, row) in blk.chunks_exact_mut(d).enumerate() {
                        gelu_tanh_mul(row, &pin[((t0 + j) * hp.n_layer + il) * d..][..d]);
                    }
                });
                let p = part(&mut sc.o, n * pl.proj.rows);
                matmul_into(m, &pl.proj, g, p);
                add_normed(x, p, h, &pl.post_norm, hp.rms_eps);
            }
            if layer.scalar != 1.0 {
                rows_mut(x, 1, min_task_elems(), |_, blk| {
                    blk.iter_mut().for_each(|v| *v *= layer.scalar)
                });
            }
        }
        self.n_past += n;
        let mut rows = Vec::with_capacity(want.len() * h);
        for &t in want {
            rows.extend_from_slice(&x[t * h..(t + 1) * h]);
        }
        (sc.x, sc.ple) = (x_buf, ple_buf);
        // Kept for the next call unless the logits would outweigh it (a large vocabulary: the
        // buffers would add to the peak of the output projection; they are dropped here).
        if want.len() * m.n_vocab() <= sc.floats() {
            self.scratch = sc;
        } else {
            drop(sc);
        }
        if rows.is_empty() {
            return Ok(rows);
        }
        let rows = norm_rows(&rows, h, Some(&m.output_norm), hp.rms_eps);
        let mut logits = matmul(m, &m.output, &rows);
        if let Some(c) = hp.softcap {
            rows_mut(&mut logits, 1, min_task_elems(), |_, blk| {
                gq_kernels::gelu::softcap(blk, c)
            });
        }
        Ok(logits)
    }

    /// Scaled token embeddings, `[n][hidden]`, into `x` (every element overwritten).
    fn embed(&self, tokens: &[u32], x: &mut [f32]) {
        let m = self.model;
        let h = m.hp.hidden;
        let scale = (h as f64).sqrt() as f32;
        let e = &m.tok_embd;
        let bytes = m.bytes(e);
        let rb =
            e.ty.row_bytes(h)
                .expect("checked when the model was loaded");
        debug_assert_eq!(x.len(), tokens.len() * h);
        rows_mut(x, h, min_task_rows(h), |r0, blk| {
            for (row, &t) in blk.chunks_exact_mut(h).zip(&tokens[r0..]) {
                let t = t as usize;
                m.file
                    .dequantize_row(e.ty, &bytes[t * rb..(t + 1) * rb], row);
                for v in row.iter_mut() {
                    *v *= scale;
                }
            }
        });
    }

    /// The per-layer inputs `[n][n_layer][ple]`: (RMSNorm(proj(x)·hidden^-½) + table[id]·√ple)·2^-½,
    /// into `out` (its first `n · n_layer · ple` elements); `false` (nothing written) for a
    /// model without them.
    fn ple_inputs(&self, tokens: &[u32], x: &[f32], out: &mut Vec<f32>) -> bool {
        let m = self.model;
        let hp = &m.hp;
        let Some(pg) = m.ple.as_ref() else {
            return false;
        };
        let d = hp.ple_dim;
        let w = hp.n_layer * d;
        let proj = part(out, x.len() / pg.model_proj.cols * pg.model_proj.rows);
        matmul_into(m, &pg.model_proj, x, proj);
        let proj_scale = (hp.hidden as f64).powf(-0.5) as f32;
        let tok_scale = (d as f64).sqrt() as f32;
        let in_scale = 0.5f64.sqrt() as f32;
        let bytes = m.bytes(&pg.tok);
        let rb = pg
            .tok
            .ty
            .row_bytes(w)
            .expect("checked when the model was loaded");
        rows_mut(proj, w, min_task_rows(w), |r0, blk| {
            let mut tok = vec![0f32; w];
            for (row, &t) in blk.chunks_exact_mut(w).zip(&tokens[r0..]) {
                let t = t as usize;
                m.file
                    .dequantize_row(pg.tok.ty, &bytes[t * rb..(t + 1) * rb], &mut tok);
                for v in row.iter_mut() {
                    *v *= proj_scale;
                }
                rms_norm_rows(row, d, Some(&pg.proj_norm), hp.rms_eps);
                for (slice, ts) in row.chunks_exact_mut(d).zip(tok.chunks_exact(d)) {
                    for (v, &e) in slice.iter_mut().zip(ts) {
                        *v = (*v + e * tok_scale) * in_scale;
                    }
                }
            }
        });
        true
    }

    /// `x += post_norm(attention(input_norm(x)))`, appending this batch's K/V to the cache.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &mut self,
        il: usize,
        layer: &Layer,
        x: &mut [f32],
        rope: &Rope,
        p0: usize,
        sc: &mut Scratch,
    ) {
        let m = self.model;
        let hp = &m.hp;
        let a = &layer.attn;
        let (h, hd, nh, nkv) = (hp.hidden, a.head_dim, hp.n_head, a.n_head_kv);
        let n = x.len() / h;
        let xn = part(&mut sc.xn, n * h);
        norm_rows_into(x, h, Some(&layer.attn_norm), hp.rms_eps, xn);
        // Q, K and V (those this layer has) read the same normed input: one call, so its
        // activations are prepared once.
        let mut mats = vec![&a.q];
        let (nq, k_len) = (n * a.q.rows, a.k.as_ref().map_or(0, |w| n * w.rows));
        let mut outs = vec![part(&mut sc.q, nq)];
        if let (Some(wk), Some(_)) = (&a.k, &a.k_norm) {
            mats.push(wk);
            outs.push(part(&mut sc.k, k_len));
            if let Some(wv) = &a.v {
                mats.push(wv);
                outs.push(part(&mut sc.v, n * wv.rows));
            }
        }
        matmul_many_into(m, &mats, xn, &mut outs);
        drop(outs);
        let q = part(&mut sc.q, nq);
        rope.norm_rotate(q, hd, &a.q_norm, hp.rms_eps);
        if let (Some(_), Some(kn)) = (&a.k, &a.k_norm) {
            let k = part(&mut sc.k, k_len);
            let v = match &a.v {
                Some(wv) => part(&mut sc.v, n * wv.rows),
                None => {
                    let v = part(&mut sc.v, k_len);
                    v.copy_from_slice(k);
                    v
                }
            };
            rope.norm_rotate(k, hd, kn, hp.rms_eps);
            rows_mut(v, hd, min_task_rows(hd), |_, blk| {
                rms_norm_rows(blk, hd, None, hp.rms_eps)
            });
            let c = &mut self.cache[il];
            debug_assert_eq!(c.k.len(), p0 * nkv * hd);
            c.k.extend_from_slice(k);
            c.v.extend_from_slice(v);
        }
        let q = part_ref(&sc.q, nq);
        let c = &self.cache[a.kv_source];
        let window = hp.swa[il].then_some(hp.sliding_window);
        let kv_dim = nkv * hd;
        let group = nh / nkv;
        let out = part(&mut sc.att, n * nh * hd);
        // A work item is the query heads of one KV group at one token: the group kernels load
        // each cached key / value row once for all of them. With too few items for the threads
        // (generation: one token) the group is split. Values never depend on the split: the
        // group kernels give every head the same bits as one head at a time.
        let mut sub = group;
        while sub % 2 == 0 && n * nh / sub < 4 * rayon::current_num_threads() {
            sub /= 2;
        }
        // Items per task: about min_task_elems() multiply-adds of the scores and the values.
        let keys = window.map_or(p0 + n.div_ceil(2), |w| (p0 + n.div_ceil(2)).min(w)) + 1;
        let per_item = 2 * sub * hd * keys;
        // Later tokens attend to more keys: many small tasks (claimed in turn by the threads)
        // keep the threads busy to the end.
        let items = n * nh / sub;
        let per_task = (min_task_elems() / per_item)
            .max(items.div_ceil(16 * rayon::current_num_threads()))
            .max(1);
        par_chunks_mut(out, per_task * sub * hd, |ti, blk| {
            // The value sums add into the output: it starts from zero.
            blk.fill(0.0);
            let mut s = Vec::new();
            for (j, o) in blk.chunks_exact_mut(sub * hd).enumerate() {
                let first = (ti * per_task + j) * sub;
                let (t, head) = (first / nh, first % nh);
                let g = head / group;
                let p = p0 + t;
                let lo = window.map_or(0, |w| (p + 1).saturating_sub(w));
                let nk = p + 1 - lo;
                let qs = &q[first * hd..(first + sub) * hd];
                let at = lo * kv_dim + g * hd;
                s.clear();
                s.resize(sub * nk, 0f32);
                f32rows::dot_rows_heads(qs, hd, &c.k[at..], kv_dim, &mut s);
                for sh in s.chunks_exact_mut(nk) {
                    softmax_weights(sh);
                }
                f32rows::weighted_rows_heads(o, hd, &s, &c.v[at..], kv_dim);
            }
        });
        let o = part(&mut sc.o, n * a.o.rows);
        matmul_into(m, &a.o, out, o);
        add_normed(x, o, h, &layer.post_attn_norm, hp.rms_eps);
    }

    /// `x += post_norm(mlp(norm(x)) [+ experts])`.
    fn feed_forward(&self, layer: &Layer, x: &mut [f32], sc: &mut Scratch) {
        let m = self.model;
        let hp = &m.hp;
        let h = hp.hidden;
        let n = x.len() / h;
        let xn = part(&mut sc.xn, n * h);
        norm_rows_into(x, h, Some(&layer.ffn_norm), hp.rms_eps, xn);
        let (gate, up, down) = (&layer.mlp.gate, &layer.mlp.up, &layer.mlp.down);
        let (g, u) = (part(&mut sc.g, n * gate.rows), part(&mut sc.u, n * up.rows));
        let d = part(&mut sc.o, n * down.rows);
        self.mlp(gate, up, down, xn, g, u, d);
        if let Some(moe) = &layer.moe {
            let e = self.experts(moe, x);
            rows_mut(d, h, min_task_rows(h), |r0, blk| {
                for (dr, er) in blk.chunks_exact_mut(h).zip(e[r0 * h..].chunks_exact(h)) {
                    rms_norm(dr, Some(&moe.post_norm_mlp), hp.rms_eps);
                    let mut er = er.to_vec();
                    rms_norm(&mut er, Some(&moe.post_norm_experts), hp.rms_eps);
                    for (a, b) in dr.iter_mut().zip(&er) {
                        *a += *b;
                    }
                }
            });
        }
        add_normed(x, d, h, &layer.post_ffn_norm, hp.rms_eps);
    }

    /// `d = down(gelu(gate(x)) · up(x))`, with `g` and `u` (of the gate's and up's output
    /// length) for the products in between; every element of the three is overwritten.
    #[allow(clippy::too_many_arguments)]
    fn mlp(
        &self,
        gate: &Mat,
        up: &Mat,
        down: &Mat,
        xs: &[f32],
        g: &mut [f32],
        u: &mut [f32],
        d: &mut [f32],
    ) {
        let m = self.model;
        // Gate and up read the same input: one call, activations prepared once.
        matmul_many_into(m, &[gate, up], xs, &mut [&mut *g, &mut *u]);
        let u = &*u;
        // Element-wise, in pieces of GELU_CHUNK whatever the split (a vector kernel's tail
        // elements always fall on the same positions).
        rows_mut(g, GELU_CHUNK, 1, |p0, blk| {
            for (j, gp) in blk.chunks_mut(GELU_CHUNK).enumerate() {
                let at = (p0 + j) * GELU_CHUNK;
                gelu_tanh_mul(gp, &u[at..at + gp.len()]);
            }
        });
        matmul_into(m, down, g, d);
    }

    /// The same with gate and up fused in one matrix (gate rows first), as experts store them.
    fn mlp_fused(&self, gate_up: &Mat, down: &Mat, xs: &[f32]) -> Vec<f32> {
        let m = self.model;
        let ff = gate_up.rows / 2;
        let y = matmul(m, gate_up, xs);
        let mut a = vec![0f32; y.len() / 2];
        rows_mut(&mut a, ff, min_task_rows(2 * ff), |r0, blk| {
            for (ar, yr) in blk
                .chunks_exact_mut(ff)
                .zip(y[r0 * 2 * ff..].chunks_exact(2 * ff))
            {
                ar.copy_from_slice(&yr[..ff]);
                gelu_tanh_mul(ar, &yr[ff..]);
            }
        });
        matmul(m, down, &a)
    }

    /// The routed experts' output for every token (before its post norm): router on
    /// RMSNorm(x)·scale·hidden^-½, softmax, top-k, renormalized, times the per-expert scale;
    /// experts on pre_norm(x); outputs summed in ascending expert order, as transformers does.
    fn experts(&self, moe: &Moe, x: &[f32]) -> Vec<f32> {
        let m = self.model;
        let hp = &m.hp;
        let h = hp.hidden;
        let n = x.len() / h;
        let n_exp = moe.router.rows;
        let k = hp.n_expert_used;
        let root = (h as f64).powf(-0.5) as f32;
        let mut rin = norm_rows(x, h, None, hp.rms_eps);
        rows_mut(&mut rin, h, min_task_rows(h), |_, blk| {
            for row in blk.chunks_exact_mut(h) {
                for (v, &s) in row.iter_mut().zip(&moe.router_scale) {
                    *v = *v * s * root;
                }
            }
        });
        let logits = matmul(m, &moe.router, &rin);
        // Per token: (expert, weight) for its top-k experts.
        let mut routes: Vec<Vec<(usize, f32)>> = vec![Vec::new(); n];
        let route = |l: &[f32]| -> Vec<(usize, f32)> {
            let mx = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = l.iter().map(|&z| (z - mx).exp()).collect();
            let sum: f32 = e.iter().sum();
            let p: Vec<f32> = e.iter().map(|&v| v / sum).collect();
            let mut idx: Vec<usize> = (0..n_exp).collect();
            idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
            idx.truncate(k);
            let tot: f32 = idx.iter().map(|&i| p[i]).sum();
            idx.iter()
                .map(|&i| (i, p[i] / tot * moe.expert_scale[i]))
                .collect()
        };
        rows_mut(&mut routes, 1, 1, |t0, blk| {
            for (j, r) in blk.iter_mut().enumerate() {
                *r = route(&logits[(t0 + j) * n_exp..(t0 + j + 1) * n_exp]);
            }
        });
        let xn = norm_rows(x, h, Some(&moe.pre_norm), hp.rms_eps);
        let mut out = vec![0f32; n * h];
        for e in 0..n_exp {
            let mine: Vec<(usize, f32)> = routes
                .iter()
                .enumerate()
                .filter_map(|(t, r)| r.iter().find(|(i, _)| *i == e).map(|&(_, w)| (t, w)))
                .collect();
            if mine.is_empty() {
                continue;
            }
            let mut xs = Vec::with_capacity(mine.len() * h);
            for &(t, _) in &mine {
                xs.extend_from_slice(&xn[t * h..(t + 1) * h]);
            }
            let y = self.mlp_fused(&moe.gate_up[e], &moe.down[e], &xs);
            for (j, &(t, w)) in mine.iter().enumerate() {
                axpy(&mut out[t * h..(t + 1) * h], w, &y[j * h..(j + 1) * h]);
            }
        }
        out
    }
}

/// Logits at `positions` (indices into `ids`) of one sequence, evaluated in batches of
/// `ubatch` tokens; one row of [`Model::n_vocab`] values per position, in the order given.
pub fn logits_at(
    model: &Model,
    ids: &[u32],
    positions: &[usize],
    ubatch: usize,
) -> Result<Vec<Vec<f32>>> {
    if let Some(&p) = positions.iter().find(|&&p| p >= ids.len()) {
        bail!("position {p} is past the {} input tokens", ids.len());
    }
    let mut sorted: Vec<usize> = positions.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let v = model.n_vocab();
    let mut s = Session::new(model);
    let mut got = std::collections::HashMap::new();
    for (c, chunk) in ids.chunks(ubatch.max(1)).enumerate() {
        let base = c * ubatch.max(1);
        let want: Vec<usize> = sorted
            .iter()
            .filter(|&&p| p >= base && p < base + chunk.len())
            .map(|&p| p - base)
            .collect();
        let l = s.forward(chunk, &want)?;
        for (i, &w) in want.iter().enumerate() {
            got.insert(base + w, l[i * v..(i + 1) * v].to_vec());
        }
    }
    Ok(positions.iter().map(|p| got[p].clone()).collect())
}

/// Greedy decoding: the `n_new` tokens that follow `prompt` when every step takes the most
/// likely token (the first on ties).
pub fn greedy(model: &Model, prompt: &[u32], n_new: usize) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        bail!("greedy decoding needs a prompt of at least one token");
    }
    let mut s = Session::new(model);
    let mut out = Vec::with_capacity(n_new);
    if n_new == 0 {
        return Ok(out);
    }
    let mut logits = s.forward(prompt, &[prompt.len() - 1])?;
    loop {
        let t = argmax(&logits) as u32;
        out.push(t);
        if out.len() == n_new {
            return Ok(out);
        }
        logits = s.forward(&[t], &[0])?;
    }
}
