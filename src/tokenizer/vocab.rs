//! Hugging Face tokenizer files → `tokenizer.ggml.*` and `tokenizer.chat_template`, written as
//! llama.cpp's converter writes them for Gemma 4 (gguf-py's `LlamaHfVocab` + `SpecialVocab`,
//! then `Gemma4Model.set_vocab`'s overrides).

use crate::gguf::{MetaArray, MetaValue, Metadata};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// llama.cpp token types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum TokenType {
    /// Ordinary token.
    Normal = 1,
    /// Unknown token.
    Unknown = 2,
    /// Control token, never rendered.
    Control = 3,
    /// User-defined token, always rendered.
    UserDefined = 4,
    /// Unused.
    Unused = 5,
    /// Byte-fallback token `<0xXX>`.
    Byte = 6,
}

/// Tokens that Gemma 4's converter forces to USER_DEFINED so the chat parser can see them.
pub const VISIBLE_TOKENS: [&str; 7] = [
    "<|channel>",
    "<channel|>",
    "<|tool_call>",
    "<tool_call|>",
    "<|tool_response>",
    "<tool_response|>",
    "<|\"|>",
];

const SPECIAL_TYPES: [&str; 7] = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"];

/// The vocabulary as gq will write it.
#[derive(Clone, Debug)]
pub struct Vocab {
    /// Token texts by id.
    pub tokens: Vec<String>,
    /// Token types by id.
    pub types: Vec<TokenType>,
    /// BPE merges ("a b").
    pub merges: Vec<String>,
    /// Special token ids in the order they are written: (type, id).
    pub special_ids: Vec<(&'static str, u32)>,
    /// add_{type}_token flags in the order they are written.
    pub add_special: Vec<(&'static str, bool)>,
    /// The chat template, if any.
    pub chat_template: Option<String>,
    /// Rows of `embed_tokens` the converter keeps: `len(model.vocab) + len(added_tokens)`.
    pub n_vocab_real: usize,
}

fn read_json(path: &Path) -> Result<Value> {
    crate::json::read(path, crate::json::LARGE_LIMIT)
}

fn token_content(v: &Value) -> Option<&str> {
    v.as_str()
        .or_else(|| v.get("content").and_then(|c| c.as_str()))
}

impl Vocab {
    /// Reads `tokenizer.json`, `tokenizer_config.json`, `chat_template.jinja` and the special
    /// token ids in `config.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Vocab> {
        let tj = read_json(&dir.join("tokenizer.json"))?;
        let tc = optional_json(&dir.join("tokenizer_config.json"))?;
        let cfg = optional_json(&dir.join("config.json"))?;
        Self::from_json(dir, &tj, tc.as_ref(), cfg.as_ref(), || {
            read_template_file(dir)
        })
    }

    /// [`Vocab::load`] from the parsed files: `tokenizer.json`, `tokenizer_config.json` and
    /// `config.json` when present, and `template_file` reading the chat template file (called
    /// only when tokenizer_config.json has none). `dir` names the files in errors.
    pub fn from_json(
        dir: &Path,
        tj: &Value,
        tc: Option<&Value>,
        cfg: Option<&Value>,
        template_file: impl FnOnce() -> Result<Option<String>>,
    ) -> Result<Vocab> {
        let tj_path = dir.join("tokenizer.json");
        let fail = |m: String| anyhow!("{}: {m}", tj_path.display());
        let model = tj.get("model").ok_or_else(|| fail("no \"model\"".into()))?;
        let is_bpe = model.get("type").and_then(|t| t.as_str()) == Some("BPE");
        let byte_fallback = model.get("byte_fallback").and_then(|b| b.as_bool()) == Some(true);
        let seq_decoder = tj.pointer("/decoder/type").and_then(|t| t.as_str()) == Some("Sequence");
        if !(is_bpe && byte_fallback && seq_decoder) {
            bail!(
                "{}: not a BPE tokenizer with byte_fallback and a Sequence decoder (the kind Gemma 4 uses)",
                tj_path.display()
            );
        }
        let vocab = model
            .get("vocab")
            .and_then(|v| v.as_object())
            .ok_or_else(|| fail("model.vocab is not an object".into()))?;
        let n_base = vocab.len();
        let mut reverse: HashMap<u64, String> = HashMap::with_capacity(n_base);
        for (tok, id) in vocab {
            let id = id
                .as_u64()
                .ok_or_else(|| fail(format!("model.vocab: token {tok:?} has no integer id")))?;
            if let Some(other) = reverse.insert(id, tok.clone()) {
                bail!(
                    "{}: model.vocab: tokens {other:?} and {tok:?} both have id {id}",
                    tj_path.display()
                );
            }
        }
        let added: Vec<(u64, String)> = match tj.get("added_tokens") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let id = t.get("id").and_then(Value::as_u64);
                    let content = t.get("content").and_then(Value::as_str);
                    id.zip(content.map(str::to_string)).ok_or_else(|| {
                        fail(format!(
                            "added_tokens[{i}] has no integer \"id\" and string \"content\""
                        ))
                    })
                })
                .collect::<Result<_>>()?,
            Some(_) => bail!("{}: added_tokens is not a list", tj_path.display()),
        };
        let n_added_json = tj
            .get("added_tokens")
            .and_then(|a| a.as_array())
            .map_or(0, |a| a.len());
        let mut lookup: HashMap<&str, u64> = HashMap::new();
        for (tok, id) in vocab {
            lookup.insert(tok, id.as_u64().unwrap());
        }
        let mut added_ids: HashMap<u64, &str> = HashMap::new();
        for (id, c) in &added {
            if let Some(other) = added_ids.insert(*id, c).filter(|o| o != c) {
                bail!(
                    "{}: added_tokens: {other:?} and {c:?} both have id {id}",
                    tj_path.display()
                );
            }
            reverse.insert(*id, c.clone());
            lookup.insert(c, *id);
        }

        let tc_path = dir.join("tokenizer_config.json");
        let tc: Option<&Map<String, Value>> = match tc {
            Some(v) => Some(
                v.as_object()
                    .ok_or_else(|| anyhow!("{}: not a JSON object", tc_path.display()))?,
            ),
            None => None,
        };

        // transformers' all_special_tokens: the named special tokens, other `*_token` keys, and
        // extra (or legacy additional) special tokens.
        let mut special_strs: Vec<String> = Vec::new();
        if let Some(tc) = tc {
            for (key, v) in tc {
                if key.ends_with("_token") {
                    if let Some(s) = token_content(v) {
                        special_strs.push(s.to_string());
                    }
                }
            }
            let extra = tc
                .get("extra_special_tokens")
                .or_else(|| tc.get("additional_special_tokens"));
            match extra {
                Some(Value::Array(a)) => {
                    special_strs.extend(a.iter().filter_map(token_content).map(str::to_string))
                }
                Some(Value::Object(o)) => {
                    special_strs.extend(o.values().filter_map(token_content).map(str::to_string))
                }
                _ => {}
            }
        }
        let unk_id = tc
            .as_ref()
            .and_then(|tc| tc.get("unk_token"))
            .and_then(token_content)
            .and_then(|u| lookup.get(u).copied());
        let special_ids: BTreeSet<u64> = special_strs
            .iter()
            .filter_map(|s| lookup.get(s.as_str()).copied().or(unk_id))
            .collect();

        let added_beyond: Vec<&(u64, String)> = {
            let mut v: Vec<_> = added
                .iter()
                .filter(|(id, _)| *id >= n_base as u64)
                .collect();
            v.sort_by_key(|(id, _)| *id);
            v.dedup_by_key(|(id, _)| *id);
            v
        };
        // Tokens beyond the base vocabulary take the next ids, with no gaps: an id further on
        // would put every later token at the wrong id in the GGUF.
        for (k, (id, t)) in added_beyond.iter().enumerate() {
            if *id != (n_base + k) as u64 {
                bail!(
                    "{}: added token {t:?} has id {id}, but the vocabulary so far ends at {}",
                    tj_path.display(),
                    n_base + k
                );
            }
        }
        let mut tokens = Vec::with_capacity(n_base + added_beyond.len());
        let mut types = Vec::with_capacity(tokens.capacity());
        for id in 0..n_base as u64 {
            let t = reverse
                .get(&id)
                .ok_or_else(|| fail(format!("no token has id {id} (ids must be 0..{n_base})")))?;
            types.push(if is_byte_token(t) {
                TokenType::Byte
            } else if special_ids.contains(&id) {
                TokenType::Control
            } else {
                TokenType::Normal
            });
            tokens.push(t.clone());
        }
        for (id, t) in added_beyond {
            types.push(if special_ids.contains(id) {
                TokenType::Control
            } else {
                TokenType::UserDefined
            });
            tokens.push(t.clone());
        }
        for (t, ty) in tokens.iter().zip(types.iter_mut()) {
            if VISIBLE_TOKENS.contains(&t.as_str()) {
                *ty = TokenType::UserDefined;
            }
        }

        let merges = read_merges(model).map_err(fail)?;

        // gguf-py SpecialVocab: ids from tokenizer_config (looked up among added_tokens), then
        // config.json's *_token_id for the types still unset.
        let n_vocab = tokens.len() as u64;
        let mut ids: Vec<(&'static str, u32)> = Vec::new();
        let set_id = |ids: &mut Vec<(&'static str, u32)>, typ: &'static str, id: u64| {
            if id < n_vocab && !ids.iter().any(|(t, _)| *t == typ) {
                ids.push((typ, id as u32));
            }
        };
        let mut add_special: Vec<(&'static str, bool)> = Vec::new();
        if let Some(tc) = tc {
            if let Some(pp) = tj.get("post_processor").filter(|p| !p.is_null()) {
                post_processor_flags(pp, tc, &mut add_special);
            }
            for typ in SPECIAL_TYPES {
                if let Some(b) = tc
                    .get(&format!("add_{typ}_token"))
                    .and_then(|b| b.as_bool())
                {
                    if !add_special.iter().any(|(t, _)| *t == typ) {
                        add_special.push((typ, b));
                    }
                }
                if let Some(content) = tc.get(&format!("{typ}_token")).and_then(token_content) {
                    if let Some((id, _)) = added.iter().find(|(_, c)| c == content) {
                        set_id(&mut ids, typ, *id);
                    }
                }
            }
        }
        if let Some(cfg) = cfg {
            for typ in SPECIAL_TYPES {
                let key = format!("{typ}_token_id");
                let v = cfg
                    .get(&key)
                    .filter(|v| !v.is_null())
                    .or_else(|| cfg.pointer(&format!("/text_config/{key}")));
                if let Some(id) = v.and_then(|v| v.as_u64()) {
                    set_id(&mut ids, typ, id);
                }
            }
        }
        let chat_template = match tc {
            None => None,
            Some(tc) => match tc.get("chat_template") {
                Some(Value::String(s)) => Some(s.clone()),
                _ => template_file()?,
            },
        };
        Ok(Vocab {
            tokens,
            types,
            merges,
            special_ids: ids,
            add_special,
            chat_template,
            n_vocab_real: n_base + n_added_json,
        })
    }

    /// Writes the tokenizer keys in the converter's order.
    pub fn write(&self, meta: &mut Metadata) {
        meta.set("tokenizer.ggml.model", MetaValue::Str("gemma4".into()));
        meta.set(
            "tokenizer.ggml.tokens",
            MetaValue::Array(MetaArray::Str(
                self.tokens.iter().map(|t| t.as_bytes().to_vec()).collect(),
            )),
        );
        meta.set(
            "tokenizer.ggml.scores",
            MetaValue::Array(MetaArray::F32(vec![-1000.0; self.tokens.len()])),
        );
        meta.set(
            "tokenizer.ggml.token_type",
            MetaValue::Array(MetaArray::I32(
                self.types.iter().map(|t| *t as i32).collect(),
            )),
        );
        if !self.merges.is_empty() {
            meta.set(
                "tokenizer.ggml.merges",
                MetaValue::Array(MetaArray::Str(
                    self.merges.iter().map(|m| m.as_bytes().to_vec()).collect(),
                )),
            );
        }
        for (typ, id) in &self.special_ids {
            let key = match *typ {
                "unk" => "unknown",
                "sep" => "seperator",
                "pad" => "padding",
                t => t,
            };
            meta.set(
                format!("tokenizer.ggml.{key}_token_id"),
                MetaValue::U32(*id),
            );
        }
        for (typ, b) in &self.add_special {
            meta.set(
                format!("tokenizer.ggml.add_{typ}_token"),
                MetaValue::Bool(*b),
            );
        }
        if let Some(t) = &self.chat_template {
            meta.set("tokenizer.chat_template", MetaValue::Str(t.clone()));
        }
        meta.set("tokenizer.ggml.add_space_prefix", MetaValue::Bool(false));
        meta.set("tokenizer.ggml.add_bos_token", MetaValue::Bool(true));
    }
}

fn is_byte_token(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 6
        && t.starts_with("<0x")
        && t.ends_with('>')
        && b[3].is_ascii_hexdigit()
        && b[4].is_ascii_hexdigit()
}

fn read_merges(model: &Value) -> Result<Vec<String>, String> {
    let Some(list) = model.get("merges").and_then(|m| m.as_array()) else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|m| match m {
            Value::String(s) => Ok(s.clone()),
            Value::Array(pair) if pair.len() == 2 => {
                let part = |v: &Value| -> Result<String, String> {
                    let s = v.as_str().ok_or("merge part is not a string")?;
                    // gguf-py encodes spaces inside a merge part as U+0120.
                    Ok(s.chars()
                        .map(|c| if c == ' ' { '\u{120}' } else { c })
                        .collect())
                };
                Ok(format!("{} {}", part(&pair[0])?, part(&pair[1])?))
            }
            _ => Err("unknown merges format".to_string()),
        })
        .collect()
}

/// The subset of SpecialVocab's post-processor reading that decides add_bos / add_eos.
fn post_processor_flags(pp: &Value, tc: &Map<String, Value>, out: &mut Vec<(&'static str, bool)>) {
    let procs: Vec<&Value> = match pp.get("processors").and_then(|p| p.as_array()) {
        Some(a) => a.iter().collect(),
        None => vec![pp],
    };
    let named = |k: &str| tc.get(k).and_then(token_content).map(str::to_string);
    for p in procs {
        match p.get("type").and_then(|t| t.as_str()) {
            Some("ByteLevel") => {
                for typ in ["bos", "eos"] {
                    if !out.iter().any(|(t, _)| *t == typ) {
                        out.push((typ, false));
                    }
                }
            }
            Some("TemplateProcessing") => {
                let single = p
                    .get("single")
                    .and_then(|s| s.as_array())
                    .cloned()
                    .unwrap_or_default();
                if single.len() > 1 {
                    let sp = |v: &Value| {
                        v.pointer("/SpecialToken/id")
                            .and_then(|i| i.as_str())
                            .map(str::to_string)
                    };
                    if let Some(first) = sp(&single[0]) {
                        let is_bos = Some(&first) == named("bos_token").as_ref()
                            || Some(&first) == named("cls_token").as_ref();
                        upsert(out, "bos", is_bos);
                    }
                    if let Some(last) = sp(&single[single.len() - 1]) {
                        upsert(out, "eos", Some(&last) == named("eos_token").as_ref());
                    }
                }
            }
            _ => {}
        }
    }
}

fn upsert(out: &mut Vec<(&'static str, bool)>, typ: &'static str, v: bool) {
    match out.iter_mut().find(|(t, _)| *t == typ) {
        Some(e) => e.1 = v,
        None => out.push((typ, v)),
    }
}

/// The JSON file at `path`, or `None` when there is none (any other error, a symbolic link
/// loop for one, is reported).
fn optional_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("{}: cannot read: {e}", path.display())),
        Ok(_) => read_json(path).map(Some),
    }
}

fn read_template_file(dir: &Path) -> Result<Option<String>> {
    let jinja: PathBuf = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return Ok(Some(
            std::fs::read_to_string(&jinja)
                .with_context(|| format!("{}: cannot read", jinja.display()))?,
        ));
    }
    let json = dir.join("chat_template.json");
    if json.is_file() {
        return Ok(read_json(&json)?
            .get("chat_template")
            .and_then(|t| t.as_str())
            .map(str::to_string));
    }
    Ok(None)
}
