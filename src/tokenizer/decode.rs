//! Token ids → text: each token's piece as llama.cpp's `token_to_piece` gives it ("▁" → " ",
//! `<0xXX>` → that byte, control tokens hidden unless asked for), the bytes joined and read as
//! UTF-8. Unlike `llama_detokenize`, no spaces are "cleaned up" around punctuation, so decoding
//! what was encoded gives the text back.

use super::attrs::TokenAttrs;
use super::encode::Tokenizer;

impl Tokenizer {
    /// Appends token `id`'s bytes to `out`; control and unknown tokens only when `special`.
    pub fn push_piece(&self, id: u32, special: bool, out: &mut Vec<u8>) {
        let (Some(text), Some(a)) = (self.tokens.get(id as usize), self.attrs.get(id as usize))
        else {
            return;
        };
        if a.has(TokenAttrs::CONTROL | TokenAttrs::UNKNOWN) && !special {
            return;
        }
        if a.has(TokenAttrs::CONTROL | TokenAttrs::UNKNOWN | TokenAttrs::USER_DEFINED) {
            out.extend_from_slice(text.as_bytes());
        } else if a.has(TokenAttrs::NORMAL) {
            for (i, part) in text.split('▁').enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(part.as_bytes());
            }
        } else if a.has(TokenAttrs::BYTE) {
            if let Some(b) = text.get(3..5).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
            }
        }
    }

    /// Decodes ids to text, hiding control tokens (BOS, `<|turn>`, …). Byte sequences that are
    /// not UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        self.decode_with(ids, false)
    }

    /// Decodes ids to text; `special` shows control tokens as their text.
    pub fn decode_with(&self, ids: &[u32], special: bool) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            self.push_piece(id, special, &mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// A decoder for generation: feed ids one at a time, get text as soon as it is whole UTF-8.
    pub fn stream_decoder(&self, special: bool) -> StreamDecoder<'_> {
        StreamDecoder {
            tok: self,
            special,
            pending: Vec::new(),
        }
    }
}

/// Incremental decoding: [`StreamDecoder::push`] returns the text a new token completes,
/// holding back the first bytes of a character split across byte tokens. The pieces joined, with
/// [`StreamDecoder::finish`] last, equal [`Tokenizer::decode_with`] of all the ids.
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    special: bool,
    pending: Vec<u8>,
}

impl StreamDecoder<'_> {
    /// Adds one token; returns the text that is now complete (possibly empty).
    pub fn push(&mut self, id: u32) -> String {
        self.tok.push_piece(id, self.special, &mut self.pending);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap());
                    match e.error_len() {
                        // An incomplete character at the end: wait for its other bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Flushes what is held back (an unfinished character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}
