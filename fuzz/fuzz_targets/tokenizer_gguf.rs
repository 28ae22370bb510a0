//! Tokenizer loading from a GGUF's `tokenizer.ggml.*` keys ([`gq::tokenizer::Tokenizer::from_gguf`]),
//! then one encode and decode. No input may panic, hang or allocate from a claim.
//!
//! Input: the GGUF file.
#![no_main]
use gq::gguf::GgufFile;
use gq::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = GgufFile::from_bytes("fuzz.gguf", data.to_vec()) else {
        return;
    };
    let Ok(t) = Tokenizer::from_gguf(&f) else {
        return;
    };
    let ids = t.encode("Hello world!\n\n  <start_of_turn>x ü 😀", true);
    let _ = t.decode(&ids);
    let _ = t.eog_ids();
});
