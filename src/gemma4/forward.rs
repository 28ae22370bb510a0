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
use super::ops::{argmax, axpy, rms_norm, rms_norm_to, rope_apply, rope_cos_sin, rope_inv_freq};
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
    let mx = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
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

/// Elements per parallel piece of the MLP's `gelu(gate) · up`.
const GELU_CHUNK: usize = 8192;

/// `Y = X·Wᵀ` for `n = xs.len() / w.cols` activation rows (GEMV for one row, GEMM otherwise;
/// from 16 rows the GEMM may take the kernels' tiled path, which is within a stated bound of,
/// not bit-identical to, the GEMV: docs/runner.md, "Precision and determinism").
pub fn matmul(model: &Model, w: &Mat, xs: &[f32]) -> Vec<f32> {
    let n = xs.len() / w.cols;
    debug_assert_eq!(xs.len(), n * w.cols);
    let mut ys = vec![0f32; n * w.rows];
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
        k.gemv_as(w.ty, bytes, xs, &mut ys, &mut scratch[..need], act);
    } else {
        k.gemm_as(
            w.ty,
            bytes,
            w.rows,
            w.cols,
            xs,
            &mut ys,
            &mut scratch[..need],
            act,
        );
    }
    SCRATCH.with(|c| c.replace(scratch));
    ys
}

/// [`matmul`] of several matrices with the same columns on the same activations, `Y_i =
/// X·W_iᵀ` in the order given: the kernels prepare (quantize, rotate, lay out) the activations
/// once per group of matrices that take the same prepared form instead of once per matrix
/// ([`gq_kernels::Kernels::gemm_many`]); each result is bit-identical to [`matmul`]'s.
pub fn matmul_many(model: &Model, ws: &[&Mat], xs: &[f32]) -> Vec<Vec<f32>> {
    let Some(first) = ws.first() else {
        return Vec::new();
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
    let mut out: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; n * w.rows]).collect();
    let need = many_scratch_bytes(&mats, cols, n);
    let mut scratch = SCRATCH.with(|c| c.take());
    if scratch.len() < need {
        scratch.resize(need, 0);
    }
    let mut ys: Vec<&mut [f32]> = out.iter_mut().map(|y| y.as_mut_slice()).collect();
    let k = kernels();
    if n == 1 {
        k.gemv_many(&mats, xs, &mut ys, &mut scratch[..need]);
    } else {
        k.gemm_many(&mats, cols, xs, &mut ys, &mut scratch[..need]);
    }
    SCRATCH.with(|c| c.replace(scratch));
    out
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
        for t in 0..n {
            let r = t * half..(t + 1) * half;
            rope_cos_sin(p0 + t, inv_freq, &mut cos[r.clone()], &mut sin[r]);
        }
        Rope { cos, sin, half }
    }

    /// Normalizes and rotates every head of `n` rows of `heads · head_dim` values.
    fn norm_rotate(&self, x: &mut [f32], head_dim: usize, norm: &[f32], eps: f32) {
        let per_tok = x.len() / (self.cos.len() / self.half);
        rows_mut(x, per_tok, min_task_rows(per_tok), |t0, blk| {
            for (j, row) in blk.chunks_exact_mut(per_tok).enumerate() {
                let t = t0 + j;
                let (c, s) = (
                    &self.cos[t * self.half..(t + 1) * self.half],
                    &self.sin[t * self.half..(t + 1) * self.half],
                );
                for head in row.chunks_exact_mut(head_dim) {
                    rms_norm(head, Some(norm), eps);
                    rope_apply(head, c, s);
                }
            }
        });
    }
}

/// Per-token RMSNorm of `n` rows of `x`.
fn norm_rows(x: &[f32], width: usize, w: Option<&[f32]>, eps: f32) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    rows_mut(&mut out, width, min_task_rows(width), |r0, blk| {
        for (j, o) in blk.chunks_exact_mut(width).enumerate() {
            rms_norm_to(&x[(r0 + j) * width..(r0 + j + 1) * width], o, w, eps);
        }
    });
    out
}

/// `x += norm(d)` row by row.
fn add_normed(x: &mut [f32], mut d: Vec<f32>, width: usize, w: &[f32], eps: f32) {
    rows_mut2(
        x,
        width,
        &mut d,
        width,
        min_task_rows(width),
        |_, xb, db| {
            for (xr, dr) in xb.chunks_exact_mut(width).zip(db.chunks_exact_mut(width)) {
                rms_norm(dr, Some(w), eps);
                for (a, b) in xr.iter_mut().zip(dr.iter()) {
                    *a += *b;
                }
            }
        },
    );
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
        let mut x = self.embed(tokens);
        let ple_in = self.ple_inputs(tokens, &x);
        let rope_swa = Rope::new(p0, n, &self.inv_freq_swa);
        let rope_full = Rope::new(p0, n, &self.inv_freq_full);
        for (il, layer) in m.layers.iter().enumerate() {
            let rope = if hp.swa[il] { &rope_swa } else { &rope_full };
            self.attention(il, layer, &mut x, rope, p0);
            self.feed_forward(layer, &mut x);
            if let (Some(pl), Some(pin)) = (&layer.ple, &ple_in) {
                let d = hp.ple_dim;
                let mut g = matmul(m, &pl.gate, &x);
                rows_mut(&mut g, d, min_task_rows(d), |t0, blk| {
                    for (j, row) in blk.chunks_exact_mut(d).enumerate() {
                        gelu_tanh_mul(row, &pin[((t0 + j) * hp.n_layer + il) * d..][..d]);
                    }
                });
                let p = matmul(m, &pl.proj, &g);
                add_normed(&mut x, p, h, &pl.post_norm, hp.rms_eps);
            }
            if layer.scalar != 1.0 {
                rows_mut(&mut x, 1, min_task_elems(), |_, blk| {
                    blk.iter_mut().for_each(|v| *v *= layer.scalar)
                });
            }
        }
        self.n_past += n;
        let mut rows = Vec::with_capacity(want.len() * h);
        for &t in want {
            rows.extend_from_slice(&x[t * h..(t + 1) * h]);
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

    /// Scaled token embeddings, `[n][hidden]`.
    fn embed(&self, tokens: &[u32]) -> Vec<f32> {
        let m = self.model;
        let h = m.hp.hidden;
        let scale = (h as f64).sqrt() as f32;
        let e = &m.tok_embd;
        let bytes = m.bytes(e);
        let rb =
            e.ty.row_bytes(h)
                .expect("checked when the model was loaded");
        let mut x = vec![0f32; tokens.len() * h];
        rows_mut(&mut x, h, min_task_rows(h), |r0, blk| {
            for (row, &t) in blk.chunks_exact_mut(h).zip(&tokens[r0..]) {
                let t = t as usize;
                m.file
                    .dequantize_row(e.ty, &bytes[t * rb..(t + 1) * rb], row);
                for v in row.iter_mut() {
                    *v *= scale;
                }
            }
        });
        x
    }

    /// The per-layer inputs `[n][n_layer][ple]`: (RMSNorm(proj(x)·hidden^-½) + table[id]·√ple)·2^-½.
    fn ple_inputs(&self, tokens: &[u32], x: &[f32]) -> Option<Vec<f32>> {
        let m = self.model;
        let hp = &m.hp;
        let pg = m.ple.as_ref()?;
        let d = hp.ple_dim;
        let w = hp.n_layer * d;
        let mut proj = matmul(m, &pg.model_proj, x);
        let proj_scale = (hp.hidden as f64).powf(-0.5) as f32;
        let tok_scale = (d as f64).sqrt() as f32;
        let in_scale = 0.5f64.sqrt() as f32;
        let bytes = m.bytes(&pg.tok);
        let rb = pg
            .tok
            .ty
            .row_bytes(w)
            .expect("checked when the model was loaded");
        rows_mut(&mut proj, w, min_task_rows(w), |r0, blk| {
            let mut tok = vec![0f32; w];
            for (row, &t) in blk.chunks_exact_mut(w).zip(&tokens[r0..]) {
                let t = t as usize;
                m.file
                    .dequantize_row(pg.tok.ty, &bytes[t * rb..(t + 1) * rb], &mut tok);
                for v in row.iter_mut() {
                    *v *= proj_scale;
                }
                for (slice, ts) in row.chunks_exact_mut(d).zip(tok.chunks_exact(d)) {
                    rms_norm(slice, Some(&pg.proj_norm), hp.rms_eps);
                    for (v, &e) in slice.iter_mut().zip(ts) {
                        *v = (*v + e * tok_scale) * in_scale;
                    }
                }
            }
        });
        Some(proj)
    }

    /// `x += post_norm(attention(input_norm(x)))`, appending this batch's K/V to the cache.
    fn attention(&mut self, il: usize, layer: &Layer, x: &mut [f32], rope: &Rope, p0: usize) {
        let m = self.model;
        let hp = &m.hp;
        let a = &layer.attn;
        let (h, hd, nh, nkv) = (hp.hidden, a.head_dim, hp.n_head, a.n_head_kv);
        let n = x.len() / h;
        let xn = norm_rows(x, h, Some(&layer.attn_norm), hp.rms_eps);
        // Q, K and V (those this layer has) read the same normed input: one call, so its
        // activations are prepared once.
        let mut mats = vec![&a.q];
        if let (Some(wk), Some(_)) = (&a.k, &a.k_norm) {
            mats.push(wk);
            mats.extend(&a.v);
        }
        let mut qkv = matmul_many(m, &mats, &xn).into_iter();
        let mut q = qkv.next().expect("one output per matrix");
        rope.norm_rotate(&mut q, hd, &a.q_norm, hp.rms_eps);
        if let (Some(_), Some(kn)) = (&a.k, &a.k_norm) {
            let mut k = qkv.next().expect("one output per matrix");
            let mut v = match qkv.next() {
                Some(v) => v,
                None => k.clone(),
            };
            rope.norm_rotate(&mut k, hd, kn, hp.rms_eps);
            rows_mut(&mut v, hd, min_task_rows(hd), |_, blk| {
                blk.chunks_exact_mut(hd)
                    .for_each(|head| rms_norm(head, None, hp.rms_eps))
            });
            let c = &mut self.cache[il];
            debug_assert_eq!(c.k.len(), p0 * nkv * hd);
            c.k.extend_from_slice(&k);
            c.v.extend_from_slice(&v);
        }
        let c = &self.cache[a.kv_source];
        let window = hp.swa[il].then_some(hp.sliding_window);
        let kv_dim = nkv * hd;
        let group = nh / nkv;
        let mut out = vec![0f32; n * nh * hd];
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
        par_chunks_mut(&mut out, per_task * sub * hd, |ti, blk| {
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
        let o = matmul(m, &a.o, &out);
        add_normed(x, o, h, &layer.post_attn_norm, hp.rms_eps);
    }

    /// `x += post_norm(mlp(norm(x)) [+ experts])`.
    fn feed_forward(&self, layer: &Layer, x: &mut [f32]) {
        let m = self.model;
        let hp = &m.hp;
        let h = hp.hidden;
        let xn = norm_rows(x, h, Some(&layer.ffn_norm), hp.rms_eps);
        let mut d = self.mlp(&layer.mlp.gate, &layer.mlp.up, &layer.mlp.down, &xn);
        if let Some(moe) = &layer.moe {
            let e = self.experts(moe, x);
            rows_mut(&mut d, h, min_task_rows(h), |r0, blk| {
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

    /// `down(gelu(gate(x)) · up(x))`.
    fn mlp(&self, gate: &Mat, up: &Mat, down: &Mat, xs: &[f32]) -> Vec<f32> {
        let m = self.model;
        // Gate and up read the same input: one call, activations prepared once.
        let mut gu = matmul_many(m, &[gate, up], xs).into_iter();
        let (mut g, u) = (
            gu.next().expect("one output per matrix"),
            gu.next().expect("one output per matrix"),
        );
        // Element-wise, in pieces of GELU_CHUNK whatever the split (a vector kernel's tail
        // elements always fall on the same positions).
        rows_mut(&mut g, GELU_CHUNK, 1, |p0, blk| {
            for (j, gp) in blk.chunks_mut(GELU_CHUNK).enumerate() {
                let at = (p0 + j) * GELU_CHUNK;
                gelu_tanh_mul(gp, &u[at..at + gp.len()]);
            }
        });
        matmul(m, down, &g)
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
