//! llama-quantize's per-tensor type choice (`llama_tensor_get_type` in llama.cpp's
//! `src/llama-quant.cpp`) for the file types gq writes: which tensors are quantized, the
//! "use more bits" layers of the K-quant mixtures, the output / token-embedding rules, user
//! overrides, and the fallbacks when a row is not a multiple of the block size.
//!
//! llama-quantize visits tensors in name order (its weights map is sorted by name) and several
//! rules count tensors as they go, so the order matters and is reproduced here.

use super::FileType;
use crate::gguf::GgmlType;
use anyhow::{bail, Result};
use regex::Regex;

/// What llama-quantize knows about the model when it chooses types.
#[derive(Clone, Copy, Debug)]
pub struct ModelFacts {
    /// Number of layers (`n_layer_all`).
    pub n_layer: usize,
    /// Query heads per KV head in layer 0 (`hparams.n_gqa()`).
    pub n_gqa: usize,
    /// Number of experts (0 for dense models).
    pub n_expert: usize,
}

/// llama-quantize's options that change types.
#[derive(Clone, Debug, Default)]
pub struct QuantOptions {
    /// `--tensor-type PATTERN=TYPE`: the first pattern found in a tensor's name wins.
    pub tensor_types: Vec<(Regex, GgmlType)>,
    /// `--output-tensor-type`.
    pub output_type: Option<GgmlType>,
    /// `--token-embedding-type`.
    pub token_embedding_type: Option<GgmlType>,
    /// `--pure`: no mixture rules, every quantizable tensor gets the base type.
    pub pure: bool,
    /// An importance matrix is given (changes Q4_0 / Q5_0 ffn_down rules).
    pub has_imatrix: bool,
    /// The importance matrix (`--imatrix`).
    pub imatrix: Option<std::sync::Arc<crate::imatrix::Imatrix>>,
    /// The TurboQuant rotation seed (`--tq-seed`; `None`: the default seed).
    pub tq_seed: Option<u64>,
}

/// One tensor as llama-quantize sees it in its input file.
#[derive(Clone, Debug)]
pub struct TensorDesc {
    /// GGUF name.
    pub name: String,
    /// Dims in ggml order.
    pub dims: Vec<u64>,
    /// Type in the input file.
    pub cur: GgmlType,
}

/// Why a tensor got its type: the rule that decided it, for `gq quantize --report`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The converter's rule (`convert_hf_to_gguf.py`): F32 for norms, 1-D tensors, the router
    /// and non-`.weight` tensors, else the `--outtype`.
    Converter,
    /// The converter's F16 fallback where the row is not a multiple of the type's block.
    ConverterFallback,
    /// Not quantized by llama-quantize (`tensor_allows_quantization`): kept as converted.
    NotQuantized,
    /// The file type's base type.
    Base,
    /// A mixture rule of `llama_tensor_get_type` (described).
    Mixture(&'static str),
    /// `--tensor-type PATTERN=TYPE` (the pattern).
    Override(String),
    /// `--output-tensor-type`.
    OutputType,
    /// `--token-embedding-type`.
    TokenEmbeddingType,
    /// `--pure`: the base type for every quantizable tensor.
    Pure,
    /// `tensor_type_fallback`: the chosen type's block does not divide the row; the type that
    /// was chosen first and the rule that chose it.
    Fallback(GgmlType, Box<Rule>),
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Converter => f.write_str("converter"),
            Rule::ConverterFallback => f.write_str("converter fallback (row not whole blocks)"),
            Rule::NotQuantized => f.write_str("not quantized (kept as converted)"),
            Rule::Base => f.write_str("base type"),
            Rule::Mixture(why) => write!(f, "mixture: {why}"),
            Rule::Override(p) => write!(f, "override --tensor-type {p}"),
            Rule::OutputType => f.write_str("override --output-tensor-type"),
            Rule::TokenEmbeddingType => f.write_str("override --token-embedding-type"),
            Rule::Pure => f.write_str("--pure"),
            Rule::Fallback(t, r) => write!(f, "fallback from {t} ({r}): row not whole blocks"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Category {
    Output,
    TokenEmbd,
    AttnQkv,
    AttnKvB,
    AttnV,
    AttnK,
    AttnQ,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

fn category(name: &str) -> Category {
    use Category::*;
    if name == "output.weight" {
        Output
    } else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        TokenEmbd
    } else if name.contains("attn_qkv.weight") {
        AttnQkv
    } else if name.contains("attn_kv_b.weight") {
        AttnKvB
    } else if name.contains("attn_v.weight") {
        AttnV
    } else if name.contains("attn_k.weight") {
        AttnK
    } else if name.contains("attn_q.weight") {
        AttnQ
    } else if name.contains("attn_output.weight") {
        AttnOutput
    } else if name.contains("ffn_up") {
        FfnUp
    } else if name.contains("ffn_gate") {
        FfnGate
    } else if name.contains("ffn_down") {
        FfnDown
    } else {
        Other
    }
}

fn is_attn_v(c: Category) -> bool {
    matches!(c, Category::AttnV | Category::AttnQkv | Category::AttnKvB)
}

/// `tensor_allows_quantization`, for the tensors a Gemma 4 file can hold.
pub fn allows_quantization(name: &str, n_dims: usize) -> bool {
    n_dims >= 2
        && name.ends_with("weight")
        && !name.contains("_norm.weight")
        && !name.contains("ffn_gate_inp.weight")
        && !name.contains("altup")
        && !name.contains("laurel")
        && !name.contains("per_layer_model_proj")
        && !name.contains("ssm_conv1d")
        && !name.contains("attn_rel_b.weight")
}

fn use_more_bits(i: i64, n: i64) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

struct State<'a> {
    facts: ModelFacts,
    opts: &'a QuantOptions,
    ft: FileType,
    tied: bool,
    n_attn_v: i64,
    i_attn_v: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
}

impl State<'_> {
    fn layer_info(&self, counter: i64, name: &str) -> Result<(i64, i64)> {
        let n = self.facts.n_layer as i64;
        if self.facts.n_expert > 1 {
            let il = name
                .strip_prefix("blk.")
                .and_then(|r| r.split('.').next())
                .and_then(|d| d.parse::<i64>().ok());
            match il {
                Some(il) if (0..n).contains(&il) => return Ok((il, n)),
                Some(il) => bail!("bad layer {il} for tensor {name}: must be in [0, {n})"),
                None => bail!("failed to determine the layer of tensor {name}"),
            }
        }
        Ok((counter, n))
    }

    /// `llama_tensor_get_type_impl` for the non-IQ file types.
    fn mixture(
        &mut self,
        mut t: GgmlType,
        name: &str,
        ne0: u64,
        cat: Category,
    ) -> Result<(GgmlType, Option<&'static str>)> {
        use FileType as F;
        use GgmlType as G;
        let base = t;
        let mut why: Option<&'static str> = None;
        let ft = self.ft;
        let gqa = self.facts.n_gqa;
        let n_expert = self.facts.n_expert;
        if cat == Category::Output || (self.tied && cat == Category::TokenEmbd) {
            if let Some(o) = self.opts.output_type {
                t = o;
            } else if !ne0.is_multiple_of(t.block_size() as u64) {
                t = G::Q8_0;
                why = Some("output / tied embedding: Q8_0 (row not whole blocks)");
            } else if t != G::Q8_0 {
                t = G::Q6_K;
                why = Some("output / tied embedding: Q6_K");
            }
        } else if cat == Category::TokenEmbd {
            if let Some(e) = self.opts.token_embedding_type {
                t = e;
            }
        } else if is_attn_v(cat) {
            let i = self.i_attn_v;
            why = Some("attn_v: more bits");
            match ft {
                F::MOSTLY_Q2_K => t = if gqa >= 4 { G::Q4_K } else { G::Q3_K },
                F::MOSTLY_Q3_K_M => t = if i < 2 { G::Q5_K } else { G::Q4_K },
                F::MOSTLY_Q3_K_L => t = G::Q5_K,
                F::MOSTLY_Q4_K_M | F::MOSTLY_Q5_K_M if use_more_bits(i, self.n_attn_v) => {
                    t = G::Q6_K
                }
                F::MOSTLY_Q4_K_S if i < 4 => t = G::Q5_K,
                _ => {}
            }
            if n_expert == 8 {
                t = G::Q8_0;
                why = Some("attn_v of an 8-expert model: Q8_0");
            }
            self.i_attn_v += 1;
        } else if cat == Category::AttnK {
            if n_expert == 8 {
                t = G::Q8_0;
                why = Some("attn_k of an 8-expert model: Q8_0");
            }
        } else if cat == Category::FfnDown {
            let (il, n) = self.layer_info(self.i_ffn_down, name)?;
            why = Some("ffn_down: more bits");
            match ft {
                F::MOSTLY_Q2_K => t = G::Q3_K,
                F::MOSTLY_Q3_K_M => t = if il < n / 16 { G::Q5_K } else { G::Q4_K },
                F::MOSTLY_Q3_K_L => t = G::Q5_K,
                F::MOSTLY_Q4_K_M if use_more_bits(il, n) => t = G::Q6_K,
                F::MOSTLY_Q5_K_M if use_more_bits(il, n) => t = G::Q6_K,
                F::MOSTLY_Q4_K_S if il < n / 8 => t = G::Q5_K,
                F::MOSTLY_Q4_0 | F::MOSTLY_Q5_0 if self.opts.has_imatrix && il < n / 8 => {
                    t = if ft == F::MOSTLY_Q4_0 {
                        G::Q4_1
                    } else {
                        G::Q5_1
                    }
                }
                _ => {}
            }
            self.i_ffn_down += 1;
        } else if cat == Category::AttnOutput {
            why = Some("attn_output: more bits");
            if n_expert == 8 {
                if matches!(
                    ft,
                    F::MOSTLY_Q2_K
                        | F::MOSTLY_Q3_K_S
                        | F::MOSTLY_Q3_K_M
                        | F::MOSTLY_Q4_K_S
                        | F::MOSTLY_Q4_K_M
                ) {
                    t = G::Q5_K;
                }
            } else {
                match ft {
                    F::MOSTLY_Q2_K => t = G::Q3_K,
                    F::MOSTLY_Q3_K_M => t = G::Q4_K,
                    F::MOSTLY_Q3_K_L => t = G::Q5_K,
                    _ => {}
                }
            }
        } else if cat == Category::AttnQkv {
            why = Some("attn_qkv: more bits");
            match ft {
                F::MOSTLY_Q3_K_M | F::MOSTLY_Q3_K_L => t = G::Q4_K,
                F::MOSTLY_Q4_K_M => t = G::Q5_K,
                F::MOSTLY_Q5_K_M => t = G::Q6_K,
                _ => {}
            }
        } else if cat == Category::FfnGate {
            self.layer_info(self.i_ffn_gate, name)?;
            self.i_ffn_gate += 1;
        } else if cat == Category::FfnUp {
            self.layer_info(self.i_ffn_up, name)?;
            self.i_ffn_up += 1;
        }
        Ok((t, if t == base { None } else { why }))
    }
}

/// gq's TurboQuant `_M` mixtures: the base type everywhere except the tensors measured to be
/// sensitive (KLD against the BF16 model with `gq ppl --baseline`; docs/turboquant.md §15).
/// `layer` = (layer, layer count) of an ffn_down. Measured on the trained fixture (§14.3):
/// TQT4_5_M keeps Q4_K_M's Q6_K ffn_down on the more-bits layers but not its Q6_K attn_v (the
/// file is then smaller than Q4_K_M's), TQT3_375_M puts attn_k/attn_v/attn_output/ffn_down at
/// TQT4_5 (smaller than Q3_K_M's), TQT2_5_M attn_v/attn_output/ffn_down at TQT3_375 (not tuned
/// further; smaller than Q2_K's).
fn tq_mixture(
    ft: FileType,
    cat: Category,
    tied: bool,
    layer: (i64, i64),
) -> (GgmlType, Option<&'static str>) {
    use FileType as F;
    use GgmlType as G;
    let base = ft.base_type();
    let (il, n) = layer;
    let t = if cat == Category::Output || (tied && cat == Category::TokenEmbd) {
        (G::Q6_K, Some("TQ mixture: output / tied embedding Q6_K"))
    } else if is_attn_v(cat) {
        match ft {
            F::TQT3_375_M => (G::TQT4_5, Some("TQ mixture: attn_v TQT4_5")),
            F::TQT2_5_M => (G::TQT3_375, Some("TQ mixture: attn_v TQT3_375")),
            _ => (base, None),
        }
    } else if cat == Category::FfnDown {
        match ft {
            F::TQT4_5_M if use_more_bits(il, n) => (
                G::Q6_K,
                Some("TQ mixture: ffn_down Q6_K (more-bits layers)"),
            ),
            F::TQT3_375_M => (G::TQT4_5, Some("TQ mixture: ffn_down TQT4_5")),
            F::TQT2_5_M => (G::TQT3_375, Some("TQ mixture: ffn_down TQT3_375")),
            _ => (base, None),
        }
    } else if cat == Category::AttnK {
        match ft {
            F::TQT3_375_M => (G::TQT4_5, Some("TQ mixture: attn_k TQT4_5")),
            _ => (base, None),
        }
    } else if cat == Category::AttnOutput {
        match ft {
            F::TQT3_375_M => (G::TQT4_5, Some("TQ mixture: attn_output TQT4_5")),
            F::TQT2_5_M => (G::TQT3_375, Some("TQ mixture: attn_output TQT3_375")),
            _ => (base, None),
        }
    } else {
        (base, None)
    };
    if t.0 == base {
        (base, None)
    } else {
        t
    }
}

/// llama-quantize's visiting order (llama_model_loader's `weight_name_comparer`): by layer number
/// (tensors outside `blk.N.` first), then by name.
pub fn visit_key(name: &str) -> (i64, &str) {
    let layer = name
        .strip_prefix("blk.")
        .map(|r| r.bytes().take_while(u8::is_ascii_digit).count())
        .filter(|&n| n > 0)
        .and_then(|n| name[4..4 + n].parse().ok())
        .unwrap_or(-1);
    (layer, name)
}

/// `tensor_type_fallback`: a type whose block divides the row, or F16. For gq's TurboQuant
/// types: the next type of the family with a smaller block (TQT3_375 → TQT4_5, TQJ3_375 →
/// TQJ4_5, TQP* → the TQT type of the same width), then F16.
pub fn fallback(target: GgmlType, ne0: u64) -> Result<GgmlType> {
    use GgmlType as G;
    if ne0.is_multiple_of(target.block_size() as u64) {
        return Ok(target);
    }
    if target.is_turboquant() {
        let mut t = target;
        loop {
            t = match t {
                G::TQT3_375 => G::TQT4_5,
                G::TQJ3_375 => G::TQJ4_5,
                G::TQP4_5 => G::TQT4_5,
                G::TQP3_4375 => G::TQT3_375,
                G::TQP2_5 => G::TQT2_5,
                _ => return Ok(G::F16),
            };
            if ne0.is_multiple_of(t.block_size() as u64) {
                return Ok(t);
            }
        }
    }
    let ret = match target {
        G::Q2_K | G::Q3_K => G::Q4_0,
        G::Q4_K => G::Q5_0,
        G::Q5_K => G::Q5_1,
        G::Q6_K => G::Q8_0,
        t if t.block_size() <= 32 => t,
        t => bail!("no tensor type fallback is defined for type {t}"),
    };
    Ok(if !ne0.is_multiple_of(ret.block_size() as u64) {
        G::F16
    } else {
        ret
    })
}

/// The type llama-quantize gives each tensor (same order as `tensors`), with the rule that
/// chose it.
pub fn select_types(
    tensors: &[TensorDesc],
    ft: FileType,
    facts: ModelFacts,
    opts: &QuantOptions,
) -> Result<Vec<(GgmlType, Rule)>> {
    let default = ft.base_type();
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| visit_key(&tensors[a].name).cmp(&visit_key(&tensors[b].name)));
    let mut st = State {
        facts,
        opts,
        ft,
        tied: !tensors.iter().any(|t| t.name == "output.weight"),
        n_attn_v: tensors
            .iter()
            .filter(|t| is_attn_v(category(&t.name)))
            .count() as i64,
        i_attn_v: 0,
        i_ffn_down: 0,
        i_ffn_gate: 0,
        i_ffn_up: 0,
    };
    let mut out: Vec<(GgmlType, Rule)> = tensors
        .iter()
        .map(|t| (t.cur, Rule::NotQuantized))
        .collect();
    for i in order {
        let t = &tensors[i];
        if !allows_quantization(&t.name, t.dims.len()) {
            continue;
        }
        let cat = category(&t.name);
        if let (Some(e), Category::TokenEmbd) = (opts.token_embedding_type, cat) {
            let named = t.name == "per_layer_token_embd.weight"
                && opts.tensor_types.iter().any(|(re, _)| re.is_match(&t.name));
            if !named {
                out[i] = (e, Rule::TokenEmbeddingType);
                continue;
            }
        }
        if let (Some(o), Category::Output) = (opts.output_type, cat) {
            out[i] = (o, Rule::OutputType);
            continue;
        }
        let mut ty = default;
        let mut rule = Rule::Base;
        if default.is_quantized() {
            let manual = opts
                .tensor_types
                .iter()
                .find(|(re, _)| re.is_match(&t.name));
            if let Some((re, q)) = manual {
                ty = *q;
                rule = Rule::Override(format!("{}={q}", re.as_str()));
            } else if ft.is_turboquant() {
                // gq's own file types: the plain ones give every quantizable matrix the base
                // type (with fallbacks), the `_M` ones apply the TurboQuant mixture.
                if ft.is_tq_mixture() && !opts.pure {
                    let layer = if cat == Category::FfnDown {
                        let l = st.layer_info(st.i_ffn_down, &t.name)?;
                        st.i_ffn_down += 1;
                        l
                    } else {
                        (0, 1)
                    };
                    let (m, why) = tq_mixture(ft, cat, st.tied, layer);
                    if is_attn_v(cat) {
                        st.i_attn_v += 1;
                    }
                    ty = m;
                    rule = why.map_or(Rule::Base, Rule::Mixture);
                } else if opts.pure {
                    rule = Rule::Pure;
                }
            } else if !opts.pure {
                let (m, why) = st.mixture(ty, &t.name, t.dims[0], cat)?;
                ty = m;
                rule = match why {
                    Some(w) => Rule::Mixture(w),
                    None if ty != default => Rule::OutputType,
                    None => Rule::Base,
                };
            } else {
                rule = Rule::Pure;
            }
            let fb = fallback(ty, t.dims[0])?;
            if fb != ty {
                rule = Rule::Fallback(ty, Box::new(rule));
                ty = fb;
            }
        }
        out[i] = (ty, rule);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_layers_of_a_30_layer_model() {
        let picked: Vec<i64> = (0..30).filter(|&i| use_more_bits(i, 30)).collect();
        // n/8 = 3: layers 0..3, every third from 5, and the last 4 (>= 7*30/8 = 26).
        assert_eq!(
            picked,
            vec![0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]
        );
    }

    #[test]
    fn visits_layers_in_numeric_order() {
        let mut names = vec![
            "blk.10.attn_v.weight",
            "token_embd.weight",
            "blk.2.attn_v.weight",
            "blk.2.attn_k.weight",
        ];
        names.sort_by_key(|n| visit_key(n));
        assert_eq!(
            names,
            [
                "token_embd.weight",
                "blk.2.attn_k.weight",
                "blk.2.attn_v.weight",
                "blk.10.attn_v.weight"
            ]
        );
    }

    #[test]
    fn fallbacks_follow_llama_quantize() {
        assert_eq!(fallback(GgmlType::Q4_K, 96).unwrap(), GgmlType::Q5_0);
        assert_eq!(fallback(GgmlType::Q6_K, 64).unwrap(), GgmlType::Q8_0);
        assert_eq!(fallback(GgmlType::Q3_K, 16).unwrap(), GgmlType::F16);
        assert_eq!(fallback(GgmlType::Q8_0, 48).unwrap(), GgmlType::F16);
        assert_eq!(fallback(GgmlType::Q4_K, 512).unwrap(), GgmlType::Q4_K);
        assert_eq!(fallback(GgmlType::TQT4_5, 96).unwrap(), GgmlType::TQT4_5);
        assert_eq!(fallback(GgmlType::TQT3_375, 96).unwrap(), GgmlType::TQT4_5);
        assert_eq!(fallback(GgmlType::TQJ3_375, 32).unwrap(), GgmlType::TQJ4_5);
        assert_eq!(
            fallback(GgmlType::TQP3_4375, 192).unwrap(),
            GgmlType::TQT3_375
        );
        assert_eq!(
            fallback(GgmlType::TQP3_4375, 160).unwrap(),
            GgmlType::TQT4_5
        );
        assert_eq!(fallback(GgmlType::TQT2_5, 16).unwrap(), GgmlType::F16);
    }
}
