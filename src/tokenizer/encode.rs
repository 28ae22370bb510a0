//! [`Tokenizer`]: built from a checkpoint's tokenizer files or from a GGUF's `tokenizer.ggml.*`
//! keys, and text → token ids exactly as llama.cpp's `gemma4` tokenizer does it.

use super::attrs::{llama_attrs, TokenAttrs};
use super::vocab::Vocab;
use crate::gguf::{GgufFile, MetaArray, MetaValue};
use anyhow::{anyhow, bail, Result};
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::path::Path;

/// "No symbol id": a character that is neither a token nor part of any merge.
const NONE: u32 = u32::MAX;

/// How [`Tokenizer::encode_with`] treats the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Put the BOS token first.
    pub add_bos: bool,
    /// Match control tokens written in the text (`<|turn>`, `<bos>`, …) as single tokens, as
    /// Hugging Face always does and llama.cpp does with `parse_special`. User-defined tokens
    /// (`<|channel>`, `<|"|>`, …) are matched either way.
    pub parse_special: bool,
}

/// Gemma 4's tokenizer (llama.cpp's `gemma4` model): encode, decode, special ids, chat template.
///
/// Build it with [`Tokenizer::from_checkpoint`] or [`Tokenizer::from_gguf`]; both give the same
/// ids for the same vocabulary.
pub struct Tokenizer {
    pub(super) tokens: Vec<String>,
    pub(super) attrs: Vec<TokenAttrs>,
    token_to_id: FxHashMap<String, u32>,
    /// Merge parts and results that are not tokens get symbol ids from `tokens.len()` up.
    extra_symbols: FxHashMap<String, u32>,
    /// (left symbol << 32 | right symbol) → (rank, merged symbol).
    merges: FxHashMap<u64, (u32, u32)>,
    ascii_ids: [u32; 128],
    byte_ids: [u32; 256],
    /// Tokens cut out of the text before BPE, longest first.
    special: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    eog: BTreeSet<u32>,
    pub(super) named_specials: Vec<(&'static str, String)>,
    add_bos: bool,
    chat_template: Option<String>,
    source: String,
}

/// What both constructors read.
struct Parts<'a, M: Iterator<Item = &'a [u8]>> {
    source: String,
    tokens: Vec<String>,
    types: Vec<i32>,
    merges: M,
    /// (type, id) for bos/eos/unk/pad/mask/… as in the GGUF keys.
    special_ids: Vec<(&'static str, u32)>,
    chat_template: Option<String>,
}

impl Tokenizer {
    /// The tokenizer of a GGUF file or of a checkpoint directory.
    pub fn open(path: &Path) -> Result<Tokenizer> {
        if path.is_dir() {
            Self::from_checkpoint(path)
        } else {
            Self::from_gguf(&GgufFile::open(path)?)
        }
    }

    /// Reads a checkpoint directory's `tokenizer.json`, `tokenizer_config.json` (and
    /// `config.json`, chat template file), typed as llama.cpp's converter types them.
    pub fn from_checkpoint(dir: &Path) -> Result<Tokenizer> {
        let Vocab {
            tokens,
            types,
            merges,
            special_ids,
            chat_template,
            ..
        } = Vocab::load(dir)?;
        Self::build(Parts {
            source: dir.join("tokenizer.json").display().to_string(),
            tokens,
            types: types.iter().map(|t| *t as i32).collect(),
            merges: merges.iter().map(|m| m.as_bytes()),
            special_ids,
            chat_template,
        })
    }

    /// Builds the tokenizer from a [`Vocab`] read from Hugging Face files (`source` names the
    /// file in error messages).
    pub fn from_vocab(v: &Vocab, source: String) -> Result<Tokenizer> {
        Self::build(Parts {
            source,
            tokens: v.tokens.clone(),
            types: v.types.iter().map(|t| *t as i32).collect(),
            merges: v.merges.iter().map(|m| m.as_bytes()),
            special_ids: v.special_ids.clone(),
            chat_template: v.chat_template.clone(),
        })
    }

    /// Reads the `tokenizer.ggml.*` keys (and `tokenizer.chat_template`) of a GGUF file whose
    /// tokenizer model is `gemma4`.
    pub fn from_gguf(g: &GgufFile) -> Result<Tokenizer> {
        let source = g.path.display().to_string();
        let meta = &g.metadata;
        let model = meta.get("tokenizer.ggml.model").and_then(MetaValue::as_str);
        if model != Some("gemma4") {
            bail!(
                "{source}: tokenizer.ggml.model is {model:?}; gq encodes only llama.cpp's \
                 \"gemma4\" tokenizer (Gemma 4's BPE)"
            );
        }
        let strings = |key: &str| match meta.get(key) {
            Some(MetaValue::Array(MetaArray::Str(v))) => Ok(v),
            _ => Err(anyhow!(
                "{source}: {key} is missing or not an array of strings"
            )),
        };
        let tokens = strings("tokenizer.ggml.tokens")?
            .iter()
            .enumerate()
            .map(|(i, t)| {
                String::from_utf8(t.clone())
                    .map_err(|_| anyhow!("{source}: token {i} is not UTF-8"))
            })
            .collect::<Result<Vec<_>>>()?;
        let types = match meta.get("tokenizer.ggml.token_type") {
            None => vec![1; tokens.len()],
            Some(MetaValue::Array(MetaArray::I32(t))) if t.len() >= tokens.len() => t.clone(),
            Some(_) => bail!(
                "{source}: tokenizer.ggml.token_type is not an i32 array of {} entries",
                tokens.len()
            ),
        };
        let merges = strings("tokenizer.ggml.merges")?;
        let mut special_ids = Vec::new();
        for (typ, key) in [
            ("bos", "bos"),
            ("eos", "eos"),
            ("unk", "unknown"),
            ("sep", "seperator"),
            ("pad", "padding"),
            ("mask", "mask"),
        ] {
            let v = meta.get(&format!("tokenizer.ggml.{key}_token_id"));
            // llama.cpp ignores an id outside the vocabulary (with a warning).
            if let Some(id) = v
                .and_then(MetaValue::as_u64)
                .filter(|&i| i < tokens.len() as u64)
            {
                special_ids.push((typ, id as u32));
            }
        }
        Self::build(Parts {
            source,
            tokens,
            types,
            merges: merges.iter().map(|m| m.as_slice()),
            special_ids,
            chat_template: meta
                .get("tokenizer.chat_template")
                .and_then(MetaValue::as_str)
                .map(str::to_string),
        })
    }

    fn build<'a, M: Iterator<Item = &'a [u8]>>(p: Parts<'a, M>) -> Result<Tokenizer> {
        let source = p.source;
        let mut tokens = p.tokens;
        let n = tokens.len();
        if n == 0 || n >= NONE as usize / 2 {
            bail!("{source}: vocabulary of {n} tokens");
        }
        // llama.cpp renames empty tokens and refuses duplicates.
        for (i, t) in tokens.iter_mut().enumerate() {
            if t.is_empty() {
                *t = format!("[EMPTY_{i}]");
            }
        }
        let mut token_to_id: FxHashMap<String, u32> = FxHashMap::default();
        token_to_id.reserve(n);
        for (i, t) in tokens.iter().enumerate() {
            if let Some(j) = token_to_id.insert(t.clone(), i as u32) {
                bail!("{source}: token {t:?} appears twice (ids {j} and {i})");
            }
        }
        let id_of = |typ: &str| p.special_ids.iter().find(|(t, _)| *t == typ).map(|x| x.1);
        let (attrs, eog) = llama_attrs(&tokens, &p.types, id_of("eos"));

        // Merges: "left right", split at the first space after the first byte; rank = index.
        // Every string a merge names gets a symbol id, tokens keeping their own. First, in
        // parallel, the merges whose parts and result are all tokens (all of them, in Gemma 4's
        // vocabulary); then, in rank order, the rest, giving the other strings new ids.
        let merge_list: Vec<&[u8]> = p.merges.collect();
        // Each merge can add at most three symbols; their ids must stay below NONE.
        if merge_list
            .len()
            .checked_mul(3)
            .and_then(|m| m.checked_add(n))
            .is_none_or(|m| m >= NONE as usize)
        {
            bail!(
                "{source}: {} merges for {n} tokens are more than symbol ids can number",
                merge_list.len()
            );
        }
        let split = |m: &'a [u8]| -> Option<(&'a [u8], &'a [u8])> {
            let sp = m.iter().skip(1).position(|&b| b == b' ')? + 1;
            Some((&m[..sp], &m[sp + 1..]))
        };
        let token = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|s| token_to_id.get(s));
        let resolved: Vec<Option<(u32, u32, u32)>> = merge_list
            .par_iter()
            .map_init(Vec::new, |joined: &mut Vec<u8>, m| {
                let (l, r) = split(m)?;
                joined.clear();
                joined.extend_from_slice(l);
                joined.extend_from_slice(r);
                Some((*token(l)?, *token(r)?, *token(joined)?))
            })
            .collect();
        let mut extra_symbols: FxHashMap<String, u32> = FxHashMap::default();
        let mut merges: FxHashMap<u64, (u32, u32)> = FxHashMap::default();
        merges.reserve(merge_list.len());
        let symbol = |s: &str, extra: &mut FxHashMap<String, u32>| -> u32 {
            if let Some(&id) = token_to_id.get(s) {
                return id;
            }
            let next = (n + extra.len()) as u32;
            *extra.entry(s.to_string()).or_insert(next)
        };
        for (rank, (m, known)) in merge_list.iter().zip(&resolved).enumerate() {
            let (li, ri, res) = match *known {
                Some(ids) => ids,
                None => {
                    let Some((l, r)) = split(m) else {
                        continue; // llama.cpp keys it as ("", ""), which never matches
                    };
                    let utf8 = |b| {
                        std::str::from_utf8(b)
                            .map_err(|_| anyhow!("{source}: merge {rank} is not UTF-8"))
                    };
                    let (l, r) = (utf8(l)?, utf8(r)?);
                    let li = symbol(l, &mut extra_symbols);
                    let ri = symbol(r, &mut extra_symbols);
                    let res = symbol(&format!("{l}{r}"), &mut extra_symbols);
                    (li, ri, res)
                }
            };
            // The first occurrence of a pair keeps its rank.
            merges
                .entry(((li as u64) << 32) | ri as u64)
                .or_insert((rank as u32, res));
        }
        if n + extra_symbols.len() >= NONE as usize {
            bail!("{source}: too many merge symbols");
        }

        let mut ascii_ids = [NONE; 128];
        for (c, slot) in ascii_ids.iter_mut().enumerate() {
            let s = (c as u8 as char).to_string();
            *slot = token_to_id
                .get(&s)
                .or_else(|| extra_symbols.get(&s))
                .copied()
                .unwrap_or(NONE);
        }
        let mut byte_ids = [NONE; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            *slot = token_to_id
                .get(&format!("<0x{b:02X}>"))
                .copied()
                .unwrap_or(NONE);
        }
        let mut special: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                attrs[i as usize]
                    .has(TokenAttrs::CONTROL | TokenAttrs::USER_DEFINED | TokenAttrs::UNKNOWN)
            })
            .collect();
        special.sort_by_key(|&i| Reverse(tokens[i as usize].len()));

        let text_of = |typ: &str| id_of(typ).map(|i| tokens[i as usize].clone());
        let named_specials = ["bos", "eos", "unk", "sep", "pad", "mask"]
            .iter()
            .filter_map(|&t| text_of(t).map(|s| (t, s)))
            .map(|(t, s)| {
                let key: &'static str = match t {
                    "bos" => "bos_token",
                    "eos" => "eos_token",
                    "unk" => "unk_token",
                    "sep" => "sep_token",
                    "pad" => "pad_token",
                    _ => "mask_token",
                };
                (key, s)
            })
            .collect();
        Ok(Tokenizer {
            named_specials,
            bos: id_of("bos"),
            eos: id_of("eos"),
            eog,
            tokens,
            attrs,
            token_to_id,
            extra_symbols,
            merges,
            ascii_ids,
            byte_ids,
            special,
            // llama.cpp always adds BOS for gemma4, whatever the file says.
            add_bos: true,
            chat_template: p.chat_template,
            source,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }

    /// The BOS token id.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The EOS token id.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether `id` ends generation (EOS, `<turn|>`, `<|tool_response>`, … as llama.cpp sets).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// The end-of-generation ids, ascending.
    pub fn eog_ids(&self) -> Vec<u32> {
        self.eog.iter().copied().collect()
    }

    /// Whether the model wants BOS before a prompt (always, for Gemma 4).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// A token's text as stored in the vocabulary ("▁the", "<0x0A>", "<|turn>").
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// A token's llama.cpp attributes.
    pub fn token_attrs(&self, id: u32) -> Option<TokenAttrs> {
        self.attrs.get(id as usize).copied()
    }

    /// The id of the token whose text is `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    /// The chat template source, if the checkpoint or file has one.
    pub fn chat_template_source(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// Where the vocabulary was read from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Encodes `text`, matching special tokens written in it (Hugging Face's default), with
    /// BOS first when `add_bos`.
    pub fn encode(&self, text: &str, add_bos: bool) -> Vec<u32> {
        self.encode_with(
            text,
            EncodeOptions {
                add_bos,
                parse_special: true,
            },
        )
    }

    /// Encodes `text` with explicit options (llama.cpp's `llama_tokenize(add_special,
    /// parse_special)` for this tokenizer).
    pub fn encode_with(&self, text: &str, opts: EncodeOptions) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if opts.add_bos {
            out.extend(self.bos);
        }
        let mut ws = Workspace::default();
        for frag in self.partition(text, opts.parse_special) {
            match frag {
                Frag::Token(id) => out.push(id),
                Frag::Text(s, e) => self.encode_text(&text[s..e], &mut ws, &mut out),
            }
        }
        out
    }

    /// Cuts special tokens out of the text: each special token in turn, longest first, is found
    /// in every stretch of text not yet cut (llama.cpp's `tokenizer_st_partition`).
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Frag> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut frags = vec![Frag::Text(0, text.len())];
        let mut next = Vec::new();
        for &id in &self.special {
            let a = self.attrs[id as usize];
            if !parse_special && a.has(TokenAttrs::CONTROL | TokenAttrs::UNKNOWN) {
                continue;
            }
            let pat = self.tokens[id as usize].as_str();
            if !text.contains(pat) {
                continue;
            }
            next.clear();
            for f in &frags {
                let (mut s, e) = match *f {
                    Frag::Text(s, e) => (s, e),
                    t => {
                        next.push(t);
                        continue;
                    }
                };
                while let Some(p) = text[s..e].find(pat) {
                    if p > 0 {
                        next.push(Frag::Text(s, s + p));
                    }
                    next.push(Frag::Token(id));
                    s += p + pat.len();
                }
                if s < e {
                    next.push(Frag::Text(s, e));
                }
            }
            std::mem::swap(&mut frags, &mut next);
        }
        frags
    }

    /// Spaces → "▁", then each run of newlines and each run of other characters through BPE.
    fn encode_text(&self, text: &str, ws: &mut Workspace, out: &mut Vec<u32>) {
        ws.escaped.clear();
        for (i, part) in text.split(' ').enumerate() {
            if i > 0 {
                ws.escaped.push('▁');
            }
            ws.escaped.push_str(part);
        }
        let escaped = std::mem::take(&mut ws.escaped);
        let b = escaped.as_bytes();
        let mut start = 0;
        while start < b.len() {
            let nl = b[start] == b'\n';
            let len = b[start..]
                .iter()
                .position(|&c| (c == b'\n') != nl)
                .unwrap_or(b.len() - start);
            self.bpe_word(&escaped[start..start + len], nl, ws, out);
            start += len;
        }
        ws.escaped = escaped;
    }

    fn symbol_id(&self, s: &str) -> u32 {
        if s.len() == 1 {
            return self.ascii_ids[s.as_bytes()[0] as usize];
        }
        match self.token_to_id.get(s) {
            Some(&id) => id,
            None => self.extra_symbols.get(s).copied().unwrap_or(NONE),
        }
    }

    /// Merges one word's characters by rank (lowest first; leftmost among equals) and emits the
    /// tokens, falling back to byte tokens for a symbol that is not a token.
    fn bpe_word(&self, word: &str, newlines: bool, ws: &mut Workspace, out: &mut Vec<u32>) {
        // A run of newlines that is itself a token stays whole (llama.cpp's Gemma 4 fix).
        if newlines {
            if let Some(&id) = self.token_to_id.get(word) {
                out.push(id);
                return;
            }
        }
        let syms = &mut ws.syms;
        syms.clear();
        ws.heap.clear();
        for (i, c) in word.char_indices() {
            let len = c.len_utf8();
            let k = syms.len() as i32;
            syms.push(Sym {
                start: i as u32,
                len: len as u32,
                id: self.symbol_id(&word[i..i + len]),
                prev: k - 1,
                next: if i + len == word.len() { -1 } else { k + 1 },
            });
        }
        for i in 1..syms.len() {
            self.push_bigram(&ws.syms, &mut ws.heap, i as i32 - 1, i as i32);
        }
        while let Some(Reverse((_, l, r, lid, rid, res))) = ws.heap.pop() {
            let (l, r) = (l as usize, r as usize);
            let syms = &mut ws.syms;
            if syms[l].len == 0 || syms[r].len == 0 || syms[l].id != lid || syms[r].id != rid {
                continue; // stale: one side has changed since the pair was queued
            }
            syms[l].len += syms[r].len;
            syms[l].id = res;
            syms[r].len = 0;
            let after = syms[r].next;
            syms[l].next = after;
            if after >= 0 {
                syms[after as usize].prev = l as i32;
            }
            let before = syms[l].prev;
            self.push_bigram(&ws.syms, &mut ws.heap, before, l as i32);
            self.push_bigram(&ws.syms, &mut ws.heap, l as i32, after);
        }
        let n = self.tokens.len() as u32;
        let mut i = 0i32;
        while i >= 0 && !ws.syms.is_empty() {
            let s = &ws.syms[i as usize];
            if s.id < n {
                out.push(s.id);
            } else {
                let bytes = &word.as_bytes()[s.start as usize..(s.start + s.len) as usize];
                out.extend(
                    bytes
                        .iter()
                        .map(|&b| self.byte_ids[b as usize])
                        .filter(|&id| id != NONE),
                );
            }
            i = s.next;
        }
    }

    fn push_bigram(&self, syms: &[Sym], heap: &mut BinaryHeap<Reverse<Bigram>>, l: i32, r: i32) {
        if l < 0 || r < 0 {
            return;
        }
        let (a, b) = (syms[l as usize].id, syms[r as usize].id);
        if a == NONE || b == NONE {
            return;
        }
        if let Some(&(rank, res)) = self.merges.get(&(((a as u64) << 32) | b as u64)) {
            heap.push(Reverse((rank, l as u32, r as u32, a, b, res)));
        }
    }
}

/// (rank, left, right, left id, right id, merged id): ordered by rank, then leftmost.
type Bigram = (u32, u32, u32, u32, u32, u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frag {
    /// A byte range of the input still to be tokenized.
    Text(usize, usize),
    /// A special token cut out of it.
    Token(u32),
}

#[derive(Clone, Copy)]
struct Sym {
    start: u32,
    len: u32,
    id: u32,
    prev: i32,
    next: i32,
}

#[derive(Default)]
struct Workspace {
    escaped: String,
    syms: Vec<Sym>,
    heap: BinaryHeap<Reverse<Bigram>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::TokenType;

    /// A vocabulary of the 256 byte tokens, then `extra` (text, type), with `merges`.
    fn tok(extra: &[(&str, TokenType)], merges: &[&str]) -> Tokenizer {
        let mut tokens = vec!["<pad>".to_string(), "<eos>".into(), "<bos>".into()];
        let mut types = vec![TokenType::Control; 3];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(TokenType::Byte);
        }
        for (t, ty) in extra {
            tokens.push(t.to_string());
            types.push(*ty);
        }
        let v = Vocab {
            n_vocab_real: tokens.len(),
            tokens,
            types,
            merges: merges.iter().map(|m| m.to_string()).collect(),
            special_ids: vec![("pad", 0), ("eos", 1), ("bos", 2)],
            add_special: vec![],
            chat_template: None,
        };
        Tokenizer::from_vocab(&v, "test".into()).unwrap()
    }

    fn texts(t: &Tokenizer, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&i| t.token_text(i).unwrap().to_string())
            .collect()
    }

    const N: TokenType = TokenType::Normal;

    #[test]
    fn equal_ranks_merge_leftmost_first() {
        let t = tok(&[("a", N), ("aa", N)], &["a a"]);
        assert_eq!(texts(&t, &t.encode("aaa", false)), ["aa", "a"]);
        assert_eq!(texts(&t, &t.encode("aaaa", false)), ["aa", "aa"]);
    }

    #[test]
    fn lower_rank_wins_and_spaces_become_blocks() {
        let t = tok(
            &[("▁", N), ("a", N), ("b", N), ("▁a", N), ("ab", N)],
            &["a b", "▁ a"],
        );
        // "▁ab": "a b" (rank 0) before "▁ a" (rank 1).
        assert_eq!(texts(&t, &t.encode(" ab", false)), ["▁", "ab"]);
        assert_eq!(texts(&t, &t.encode(" a", true)), ["<bos>", "▁a"]);
    }

    #[test]
    fn merge_results_that_are_not_tokens_fall_back_to_bytes() {
        // "x y" makes a symbol "xy" that is no token; "xy z" makes the token "xyz".
        let t = tok(
            &[("x", N), ("y", N), ("z", N), ("xyz", N)],
            &["x y", "xy z"],
        );
        assert_eq!(texts(&t, &t.encode("xyz", false)), ["xyz"]);
        assert_eq!(texts(&t, &t.encode("xy", false)), ["<0x78>", "<0x79>"]);
        // A character that is no token: its UTF-8 bytes.
        assert_eq!(texts(&t, &t.encode("é", false)), ["<0xC3>", "<0xA9>"]);
    }

    #[test]
    fn newline_runs_that_are_tokens_stay_whole() {
        let t = tok(&[("\n", N), ("\n\n\n", N), ("a", N)], &[]);
        assert_eq!(
            texts(&t, &t.encode("a\n\n\na", false)),
            ["a", "\n\n\n", "a"]
        );
        assert_eq!(texts(&t, &t.encode("\n\n", false)), ["\n", "\n"]);
    }

    #[test]
    fn special_tokens_longest_first_and_by_kind() {
        let t = tok(
            &[
                ("x", N),
                ("a", N),
                ("b", N),
                ("c", N),
                ("xa", TokenType::Control),
                ("abc", TokenType::Control),
                ("<u>", TokenType::UserDefined),
            ],
            &[],
        );
        // llama.cpp cuts the longest special token out first, wherever it is.
        assert_eq!(texts(&t, &t.encode("xabc", false)), ["x", "abc"]);
        assert_eq!(texts(&t, &t.encode("xab", false)), ["xa", "b"]);
        let plain = EncodeOptions {
            add_bos: false,
            parse_special: false,
        };
        // Without parse_special only user-defined tokens are matched.
        assert_eq!(texts(&t, &t.encode_with("xa<u>", plain)), ["x", "a", "<u>"]);
        assert_eq!(
            texts(&t, &t.encode_with("<bos>", plain)).len(),
            5,
            "<bos> as text is five characters"
        );
        assert_eq!(t.encode("<bos>", false), [2]);
    }

    #[test]
    fn decode_hides_control_tokens_and_streams_utf8() {
        let t = tok(&[("▁hi", N), ("<u>", TokenType::UserDefined)], &[]);
        let u = t.token_id("<u>").unwrap();
        let hi = t.token_id("▁hi").unwrap();
        let byte = |b: u8| t.token_id(&format!("<0x{b:02X}>")).unwrap();
        let ids = [2, hi, u, byte(0xC3), byte(0xA9), 1];
        assert_eq!(t.decode(&ids), " hi<u>é");
        assert_eq!(t.decode_with(&ids, true), "<bos> hi<u>é<eos>");
        let mut s = t.stream_decoder(false);
        let parts: Vec<String> = ids.iter().map(|&i| s.push(i)).collect();
        assert_eq!(parts, ["", " hi", "<u>", "", "é", ""]);
        // An invalid byte becomes U+FFFD; an unfinished character is flushed as one.
        let mut s = t.stream_decoder(false);
        assert_eq!(s.push(byte(0xFF)), "\u{FFFD}");
        assert_eq!(s.push(byte(0xE2)), "");
        assert_eq!(s.finish(), "\u{FFFD}");
        assert_eq!(t.decode(&[byte(0xFF), byte(0xE2)]), "\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn end_of_generation_tokens_follow_llama_cpp() {
        let t = tok(
            &[
                ("<turn|>", TokenType::Control),
                ("<|tool_response>", TokenType::UserDefined),
                ("</s>", N),
            ],
            &[],
        );
        let id = |s: &str| t.token_id(s).unwrap();
        assert_eq!(t.eog_ids(), [1, id("<turn|>"), id("<|tool_response>")]);
        // "<|tool_response>" becomes a control token too: hidden when decoding.
        assert!(t
            .token_attrs(id("<|tool_response>"))
            .unwrap()
            .has(TokenAttrs::CONTROL));
        assert_eq!(t.decode(&[id("<|tool_response>"), id("</s>")]), "</s>");
    }

    #[test]
    fn duplicate_tokens_are_refused() {
        let v = Vocab {
            tokens: vec!["a".into(), "a".into()],
            types: vec![N, N],
            merges: vec![],
            special_ids: vec![],
            add_special: vec![],
            chat_template: None,
            n_vocab_real: 2,
        };
        let e = Tokenizer::from_vocab(&v, "dup.json".into()).err().unwrap();
        assert!(e.to_string().contains("dup.json"), "{e}");
    }
}
