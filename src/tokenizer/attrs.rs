//! Token attributes as llama.cpp derives them when it loads a vocabulary: from the GGUF token
//! types, then adjusted by token text (end-of-generation markers become control tokens, and so
//! on). They decide which tokens are cut out of text before BPE, which ones decoding hides, and
//! which ones end generation.

use rustc_hash::FxHashSet;
use std::collections::BTreeSet;

/// A token's attribute flags (llama.cpp's `llama_token_attr` bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenAttrs(pub u32);

impl TokenAttrs {
    /// No attribute (llama.cpp's UNDEFINED).
    pub const UNDEFINED: u32 = 0;
    /// The unknown token.
    pub const UNKNOWN: u32 = 1 << 0;
    /// An unused slot.
    pub const UNUSED: u32 = 1 << 1;
    /// An ordinary token.
    pub const NORMAL: u32 = 1 << 2;
    /// A control token: hidden when decoding, matched in text only when special tokens are
    /// parsed.
    pub const CONTROL: u32 = 1 << 3;
    /// A user-defined token: always matched in text and always shown.
    pub const USER_DEFINED: u32 = 1 << 4;
    /// A byte-fallback token `<0xXX>`.
    pub const BYTE: u32 = 1 << 5;

    /// Whether any of `flags` is set.
    pub fn has(self, flags: u32) -> bool {
        self.0 & flags != 0
    }

    /// The attributes a GGUF token type (`tokenizer.ggml.token_type`) starts with.
    pub fn from_type(ty: i32) -> TokenAttrs {
        TokenAttrs(match ty {
            1 => Self::NORMAL,
            2 => Self::UNKNOWN,
            3 => Self::CONTROL,
            4 => Self::USER_DEFINED,
            5 => Self::UNUSED,
            6 => Self::BYTE,
            _ => Self::UNDEFINED,
        })
    }
}

/// Texts llama.cpp recognises, when no id for them is in the metadata, as end of turn, end of
/// message and the fill-in-the-middle markers; it takes the first one it meets of each group and
/// makes it a control token.
const FIRST_OF: [&[&str]; 8] = [
    &[
        "<|eot_id|>",
        "<|im_end|>",
        "<|end|>",
        "<end_of_turn>",
        "<|endoftext|>",
        "<|end_of_text|>",
        "<EOT>",
        "_<EOT>",
        "[EOT]",
        "<｜end▁of▁sentence｜>",
        "<end_of_utterance>",
    ],
    &["<|eom_id|>"],
    &[
        "<|fim_prefix|>",
        "<fim-prefix>",
        "<fim_prefix>",
        "<｜fim▁begin｜>",
        "<PRE>",
        "▁<PRE>",
        "<|code_prefix|>",
        "<|prefix|>",
    ],
    &[
        "<|fim_suffix|>",
        "<fim-suffix>",
        "<fim_suffix>",
        "<｜fim▁hole｜>",
        "<SUF>",
        "▁<SUF>",
        "<|code_suffix|>",
        "<|suffix|>",
    ],
    &[
        "<|fim_middle|>",
        "<fim-middle>",
        "<fim_middle>",
        "<｜fim▁end｜>",
        "<MID>",
        "▁<MID>",
        "<|code_middle|>",
        "<|middle|>",
    ],
    &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
    &[
        "<|fim_repo|>",
        "<|repo_name|>",
        "<fim-repo>",
        "<REPO>",
        "<reponame>",
    ],
    &["<|file_sep|>"],
];

/// Texts that end generation (llama.cpp's list); each one found becomes a control token.
const EOG: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Attributes after llama.cpp's load-time adjustments, and the end-of-generation token set.
///
/// `types` are the GGUF token types; `eos` the end-of-sequence id. llama.cpp walks a hash map
/// for the "first of" groups, so which of two candidates of one group it picks is unspecified;
/// here it is the lower id (no Gemma 4 vocabulary has two).
pub(crate) fn llama_attrs(
    tokens: &[String],
    types: &[i32],
    eos: Option<u32>,
) -> (Vec<TokenAttrs>, BTreeSet<u32>) {
    const RENDERED: [&str; 4] = ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"];
    let mut attrs: Vec<TokenAttrs> = types.iter().map(|&t| TokenAttrs::from_type(t)).collect();
    attrs.resize(tokens.len(), TokenAttrs(TokenAttrs::NORMAL));
    // One pass over the vocabulary for every text any rule below looks at.
    let wanted: FxHashSet<&str> = FIRST_OF
        .iter()
        .flat_map(|g| g.iter())
        .chain(EOG)
        .chain(&RENDERED)
        .chain(&["<|plamo:eos|>"])
        .copied()
        .collect();
    let hits: Vec<(u32, &str)> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| wanted.contains(t.as_str()))
        .map(|(i, t)| (i as u32, t.as_str()))
        .collect();
    let mut eog = BTreeSet::new();

    // Recognised by text: the first member of each group found.
    for (g, group) in FIRST_OF.iter().enumerate() {
        if let Some(&(id, _)) = hits.iter().find(|(_, t)| group.contains(t)) {
            attrs[id as usize].0 |= TokenAttrs::CONTROL;
            // The fill-in-the-middle pad, repo and file separator markers also end generation.
            if g >= 5 {
                eog.insert(id);
            }
        }
    }
    // Control tokens named "unused" are unused.
    for (t, a) in tokens.iter().zip(attrs.iter_mut()) {
        if a.has(TokenAttrs::CONTROL) && t.contains("unused") {
            a.0 |= TokenAttrs::UNUSED;
        }
    }
    for &(id, t) in &hits {
        if EOG.contains(&t) {
            eog.insert(id);
            attrs[id as usize].0 |= TokenAttrs::CONTROL;
        }
    }
    // gpt-oss markers are always rendered.
    for &(id, t) in &hits {
        if RENDERED.contains(&t) {
            attrs[id as usize] = TokenAttrs(TokenAttrs::USER_DEFINED);
        }
    }
    if let Some(e) = eos {
        eog.insert(e);
    }
    let find = |eog: &BTreeSet<u32>, text: &str| {
        eog.iter()
            .copied()
            .find(|&i| tokens.get(i as usize).is_some_and(|t| t == text))
    };
    let has = |eog: &BTreeSet<u32>, text: &str| find(eog, text).is_some();
    // With "<|return|>" and "<|call|>" (or "<|calls|>" and "<|flush|>"), "<|end|>" is not an end.
    if let Some(end) = find(&eog, "<|end|>") {
        let call = has(&eog, "<|call|>") || has(&eog, "<|calls|>");
        if call && (has(&eog, "<|return|>") || has(&eog, "<|flush|>")) {
            eog.remove(&end);
            attrs[end as usize] = TokenAttrs(TokenAttrs::USER_DEFINED);
        }
    }
    // Gemma 4 has an ordinary "</s>".
    if has(&eog, "<|tool_response>") || has(&eog, "<|plamo:eos|>") {
        if let Some(s) = find(&eog, "</s>") {
            eog.remove(&s);
            attrs[s as usize] = TokenAttrs(TokenAttrs::NORMAL);
        }
    }
    (attrs, eog)
}
