//! Writes a synthetic Gemma 4 Hugging Face checkpoint of real size for benches and scale tests:
//! the real tensor names (`model.language_model.*`), BF16 data, the real `config.json` keys and
//! the sharded layout (`model-0000X-of-0000N.safetensors` + `model.safetensors.index.json`).
//! Weights are random (uniform, std 0.02 for matrices, 0.5..1.5 for norms and layer scalars), so
//! the runner produces finite logits. Tensors are streamed in 4 MiB pieces: memory stays bounded
//! whatever the size. Shards are written as `*.partial` and renamed when complete.
//!
//! ```text
//! cargo run --release --example synthetic_checkpoint -- --shape e2b|31b --layers N --out DIR \
//!     [--shard-bytes B] [--seed S] [--vocab V]
//! ```
//!
//! Shapes (the real models' widths; `--layers` sets the depth):
//! - `31b`: hidden 5376, FFN 21504, 32 query heads, sliding layers 16 KV heads of 256,
//!   global layers 4 KV heads of 512 with K = V, 5 sliding : 1 global, window 1024, no PLE.
//! - `e2b`: hidden 1536, FFN 6144 (double-wide in KV-shared layers), 8 query heads, 1 KV head,
//!   head 256 (global 512), 4 sliding : 1 global, window 512, PLE width 256, the last 20/35 of
//!   the layers KV-shared.
//!
//! The vocabulary is 262 144 (`--vocab`); the tokenizer is fixtures/tokenizer-2048 with its BPE
//! vocabulary padded by unreachable `<unused_N>` tokens up to the model's vocabulary, so the
//! embedding and output matrices have their real size after conversion.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Layer widths of one shape.
struct Shape {
    hidden: usize,
    ff: usize,
    heads: usize,
    kv_swa: usize,
    kv_full: usize,
    hd_swa: usize,
    hd_full: usize,
    /// One global layer every `period` layers.
    period: usize,
    window: usize,
    ple: usize,
    k_eq_v: bool,
    double_wide: bool,
    /// KV-shared fraction of the depth (numerator, denominator).
    shared: (usize, usize),
}

fn shape(name: &str) -> Result<Shape> {
    Ok(match name {
        "31b" => Shape {
            hidden: 5376,
            ff: 21504,
            heads: 32,
            kv_swa: 16,
            kv_full: 4,
            hd_swa: 256,
            hd_full: 512,
            period: 6,
            window: 1024,
            ple: 0,
            k_eq_v: true,
            double_wide: false,
            shared: (0, 1),
        },
        "e2b" => Shape {
            hidden: 1536,
            ff: 6144,
            heads: 8,
            kv_swa: 1,
            kv_full: 1,
            hd_swa: 256,
            hd_full: 512,
            period: 5,
            window: 512,
            ple: 256,
            k_eq_v: false,
            double_wide: true,
            shared: (20, 35),
        },
        _ => bail!("unknown --shape {name:?} (e2b or 31b)"),
    })
}

struct Args {
    shape: String,
    layers: usize,
    out: PathBuf,
    shard_bytes: u64,
    seed: u64,
    vocab: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        shape: String::new(),
        layers: 0,
        out: PathBuf::new(),
        shard_bytes: 5_000_000_000,
        seed: 0,
        vocab: 262_144,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--shape" => a.shape = v,
            "--layers" => a.layers = v.parse().context("--layers")?,
            "--out" => a.out = v.into(),
            "--shard-bytes" => a.shard_bytes = v.parse().context("--shard-bytes")?,
            "--seed" => a.seed = v.parse().context("--seed")?,
            "--vocab" => a.vocab = v.parse().context("--vocab")?,
            _ => bail!("unknown argument {k}"),
        }
    }
    if a.shape.is_empty() || a.layers == 0 || a.out.as_os_str().is_empty() {
        bail!("usage: synthetic_checkpoint --shape e2b|31b --layers N --out DIR [--shard-bytes B] [--seed S] [--vocab V]");
    }
    Ok(a)
}

/// How a tensor's values are drawn.
#[derive(Clone, Copy)]
enum Init {
    /// Uniform with standard deviation 0.02.
    Matrix,
    /// Uniform in 0.5..1.5.
    Scale,
}

struct Tensor {
    name: String,
    shape: Vec<usize>,
    init: Init,
}

impl Tensor {
    fn bytes(&self) -> u64 {
        self.shape.iter().product::<usize>() as u64 * 2
    }
}

fn layer_types(s: &Shape, n: usize) -> Vec<bool> {
    // true = global; the last layer is always global, as in the real models.
    (0..n)
        .map(|i| (i + 1) % s.period == 0 || i + 1 == n)
        .collect()
}

/// Number of KV-shared layers: the shape's fraction of the depth, leaving at least one global
/// and one sliding layer that own their K/V.
fn kv_shared(s: &Shape, global: &[bool]) -> usize {
    let n = global.len();
    let mut k = n * s.shared.0 / s.shared.1;
    while k > 0 {
        let own = &global[..n - k];
        if own.iter().any(|&g| g) && own.iter().any(|&g| !g) {
            break;
        }
        k -= 1;
    }
    k
}

fn tensors(s: &Shape, global: &[bool], n_shared: usize, vocab: usize) -> Vec<Tensor> {
    let n = global.len();
    let h = s.hidden;
    let p = "model.language_model.";
    let mut t = Vec::new();
    let mut add =
        |name: String, shape: Vec<usize>, init: Init| t.push(Tensor { name, shape, init });
    add(
        format!("{p}embed_tokens.weight"),
        vec![vocab, h],
        Init::Matrix,
    );
    if s.ple > 0 {
        add(
            format!("{p}embed_tokens_per_layer.weight"),
            vec![vocab, n * s.ple],
            Init::Matrix,
        );
        add(
            format!("{p}per_layer_model_projection.weight"),
            vec![n * s.ple, h],
            Init::Matrix,
        );
        add(
            format!("{p}per_layer_projection_norm.weight"),
            vec![s.ple],
            Init::Scale,
        );
    }
    for (i, &g) in global.iter().enumerate() {
        let l = format!("{p}layers.{i}.");
        let (d, kv) = if g {
            (s.hd_full, s.kv_full)
        } else {
            (s.hd_swa, s.kv_swa)
        };
        let shared = i >= n - n_shared;
        let ff = if shared && s.double_wide {
            2 * s.ff
        } else {
            s.ff
        };
        for norm in [
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
        ] {
            add(format!("{l}{norm}.weight"), vec![h], Init::Scale);
        }
        add(format!("{l}layer_scalar"), vec![1], Init::Scale);
        add(
            format!("{l}self_attn.q_proj.weight"),
            vec![s.heads * d, h],
            Init::Matrix,
        );
        add(format!("{l}self_attn.q_norm.weight"), vec![d], Init::Scale);
        if !shared {
            add(
                format!("{l}self_attn.k_proj.weight"),
                vec![kv * d, h],
                Init::Matrix,
            );
            add(format!("{l}self_attn.k_norm.weight"), vec![d], Init::Scale);
            if !(g && s.k_eq_v) {
                add(
                    format!("{l}self_attn.v_proj.weight"),
                    vec![kv * d, h],
                    Init::Matrix,
                );
            }
        }
        add(
            format!("{l}self_attn.o_proj.weight"),
            vec![h, s.heads * d],
            Init::Matrix,
        );
        add(
            format!("{l}mlp.gate_proj.weight"),
            vec![ff, h],
            Init::Matrix,
        );
        add(format!("{l}mlp.up_proj.weight"), vec![ff, h], Init::Matrix);
        add(
            format!("{l}mlp.down_proj.weight"),
            vec![h, ff],
            Init::Matrix,
        );
        if s.ple > 0 {
            add(
                format!("{l}per_layer_input_gate.weight"),
                vec![s.ple, h],
                Init::Matrix,
            );
            add(
                format!("{l}per_layer_projection.weight"),
                vec![h, s.ple],
                Init::Matrix,
            );
            add(
                format!("{l}post_per_layer_input_norm.weight"),
                vec![h],
                Init::Scale,
            );
        }
    }
    add(format!("{p}norm.weight"), vec![h], Init::Scale);
    t
}

fn config(s: &Shape, global: &[bool], n_shared: usize, vocab: usize) -> Value {
    let types: Vec<&str> = global
        .iter()
        .map(|&g| {
            if g {
                "full_attention"
            } else {
                "sliding_attention"
            }
        })
        .collect();
    let text = json!({
        "attention_bias": false,
        "attention_dropout": 0.0,
        "attention_k_eq_v": s.k_eq_v,
        "bos_token_id": 2,
        "enable_moe_block": false,
        "eos_token_id": 1,
        "final_logit_softcapping": 30.0,
        "global_head_dim": s.hd_full,
        "head_dim": s.hd_swa,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": s.hidden,
        "hidden_size_per_layer_input": s.ple,
        "initializer_range": 0.02,
        "intermediate_size": s.ff,
        "layer_types": types,
        "max_position_embeddings": 131072,
        "model_type": "gemma4_text",
        "moe_intermediate_size": null,
        "num_attention_heads": s.heads,
        "num_experts": null,
        "num_global_key_value_heads": s.kv_full,
        "num_hidden_layers": global.len(),
        "num_key_value_heads": s.kv_swa,
        "num_kv_shared_layers": n_shared,
        "pad_token_id": 0,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {
            "full_attention": {"partial_rotary_factor": 0.25, "rope_theta": 1000000.0, "rope_type": "proportional"},
            "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"}
        },
        "sliding_window": s.window,
        "tie_word_embeddings": true,
        "top_k_experts": null,
        "use_cache": true,
        "use_double_wide_mlp": s.double_wide,
        "vocab_size": vocab,
        "vocab_size_per_layer_input": vocab
    });
    json!({
        "architectures": ["Gemma4ForConditionalGeneration"],
        "audio_config": null,
        "dtype": "bfloat16",
        "model_type": "gemma4",
        "text_config": text,
        "tie_word_embeddings": true,
        "transformers_version": "5.17.0",
        "vision_config": null
    })
}

/// splitmix64: a small, fast generator; good enough for random weights.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Writes `n` BF16 values drawn by `init`, 4 MiB at a time.
fn write_values(w: &mut impl Write, n: usize, init: Init, rng: &mut Rng) -> Result<()> {
    // Uniform on [-a, a] has std a / sqrt(3).
    let (lo, width) = match init {
        Init::Matrix => (-0.02 * 3f32.sqrt(), 0.04 * 3f32.sqrt()),
        Init::Scale => (0.5, 1.0),
    };
    const CHUNK: usize = 1 << 21;
    let mut buf = vec![0u8; CHUNK.min(n) * 2];
    let mut left = n;
    while left > 0 {
        let m = CHUNK.min(left);
        for pair in buf[..m * 2].chunks_exact_mut(8) {
            let r = rng.next();
            for (k, b) in pair.chunks_exact_mut(2).enumerate() {
                let u = ((r >> (16 * k)) & 0xFFFF) as f32 * (1.0 / 65536.0);
                let v = half::bf16::from_f32(lo + width * u);
                b.copy_from_slice(&v.to_le_bytes());
            }
        }
        let tail = (m * 2) % 8;
        if tail > 0 {
            let r = rng.next();
            let start = m * 2 - tail;
            for (k, b) in buf[start..m * 2].chunks_exact_mut(2).enumerate() {
                let u = ((r >> (16 * k)) & 0xFFFF) as f32 * (1.0 / 65536.0);
                b.copy_from_slice(&half::bf16::from_f32(lo + width * u).to_le_bytes());
            }
        }
        w.write_all(&buf[..m * 2])?;
        left -= m;
    }
    Ok(())
}

fn write_shard(path: &Path, ts: &[&Tensor], rng: &mut Rng) -> Result<u64> {
    let mut header = Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut off = 0u64;
    for t in ts {
        header.insert(
            t.name.clone(),
            json!({"dtype": "BF16", "shape": t.shape, "data_offsets": [off, off + t.bytes()]}),
        );
        off += t.bytes();
    }
    let mut h = serde_json::to_vec(&Value::Object(header))?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let partial = path.with_extension("safetensors.partial");
    let mut w = BufWriter::with_capacity(1 << 22, File::create(&partial)?);
    w.write_all(&(h.len() as u64).to_le_bytes())?;
    w.write_all(&h)?;
    for t in ts {
        write_values(&mut w, t.shape.iter().product(), t.init, rng)?;
    }
    w.into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
        .with_context(|| format!("writing {}", partial.display()))?;
    fs::rename(&partial, path)?;
    Ok(off)
}

/// The fixture tokenizer with its BPE vocabulary padded to `vocab` entries.
fn write_tokenizer(src: &Path, out: &Path, vocab: usize) -> Result<()> {
    let text = fs::read_to_string(src.join("tokenizer.json"))
        .with_context(|| format!("reading {}", src.join("tokenizer.json").display()))?;
    let mut tok: Value = serde_json::from_str(&text)?;
    let v = tok["model"]["vocab"]
        .as_object_mut()
        .context("tokenizer.json: no model.vocab")?;
    let mut next = v.values().filter_map(|x| x.as_u64()).max().unwrap_or(0) as usize + 1;
    if next > vocab {
        bail!("the fixture tokenizer has {next} tokens, more than --vocab {vocab}");
    }
    while next < vocab {
        v.insert(format!("<unused_{next}>"), json!(next));
        next += 1;
    }
    fs::write(out.join("tokenizer.json"), serde_json::to_vec(&tok)?)?;
    for f in ["tokenizer_config.json", "chat_template.jinja"] {
        fs::copy(src.join(f), out.join(f)).with_context(|| format!("copying {f}"))?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let s = shape(&a.shape)?;
    let global = layer_types(&s, a.layers);
    let n_shared = kv_shared(&s, &global);
    let ts = tensors(&s, &global, n_shared, a.vocab);
    let total: u64 = ts.iter().map(Tensor::bytes).sum();
    let params = total / 2;
    eprintln!(
        "{} layers ({} global, {n_shared} KV-shared), {:.2} B parameters, {:.2} GB",
        a.layers,
        global.iter().filter(|&&g| g).count(),
        params as f64 / 1e9,
        total as f64 / 1e9
    );
    let mut shards: Vec<Vec<&Tensor>> = vec![vec![]];
    let mut size = 0u64;
    for t in &ts {
        if size > 0 && size + t.bytes() > a.shard_bytes {
            shards.push(vec![]);
            size = 0;
        }
        shards.last_mut().unwrap().push(t);
        size += t.bytes();
    }
    fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    write_tokenizer(&root.join("fixtures/tokenizer-2048"), &a.out, a.vocab)?;
    let mut rng = Rng(a.seed);
    let mut weight_map = Map::new();
    let n = shards.len();
    for (i, shard) in shards.iter().enumerate() {
        let fname = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        let bytes = write_shard(&a.out.join(&fname), shard, &mut rng)?;
        for t in shard {
            weight_map.insert(t.name.clone(), json!(fname));
        }
        eprintln!("{fname}: {:.2} GB", bytes as f64 / 1e9);
    }
    let index = json!({"metadata": {"total_parameters": params, "total_size": total}, "weight_map": weight_map});
    fs::write(
        a.out.join("model.safetensors.index.json"),
        serde_json::to_string_pretty(&index)?,
    )?;
    let cfg = config(&s, &global, n_shared, a.vocab);
    fs::write(
        a.out.join("config.json"),
        serde_json::to_string_pretty(&cfg)?,
    )?;
    fs::write(
        a.out.join("generation_config.json"),
        serde_json::to_string_pretty(
            &json!({"bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0}),
        )?,
    )?;
    eprintln!(
        "{}: {:.2} GB in {n} shards",
        a.out.display(),
        total as f64 / 1e9
    );
    Ok(())
}
