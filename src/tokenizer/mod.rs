//! Gemma 4's tokenizer: reading Hugging Face tokenizer files and writing them as GGUF keys
//! ([`Vocab`]), encoding text to token ids and decoding ids to text ([`Tokenizer`],
//! [`StreamDecoder`]), and rendering the checkpoint's chat template ([`ChatTemplate`]).
//!
//! The encoder is llama.cpp's `gemma4` tokenizer (SentencePiece-style BPE over raw UTF-8) written
//! anew: spaces become "▁", the text is split into runs of newlines and runs of anything else,
//! each run is merged by rank, symbols that are not tokens fall back to `<0xXX>` byte tokens, and
//! special tokens are cut out of the text first, longest first. docs/tokenizer.md says why it is
//! not the `tokenizers` crate, and what was measured.

mod attrs;
mod chat;
mod decode;
mod encode;
mod vocab;

pub use attrs::TokenAttrs;
pub use chat::{ChatMessage, ChatTemplate};
pub use decode::StreamDecoder;
pub use encode::{EncodeOptions, Tokenizer};
pub use vocab::{TokenType, Vocab, VISIBLE_TOKENS};
