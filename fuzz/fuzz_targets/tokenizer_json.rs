//! Tokenizer loading from Hugging Face files ([`gq::tokenizer::Vocab::from_json`], what
//! `Vocab::load` does after reading the files), then the tokenizer built from it (merge table,
//! special tokens), one encode and decode, and the GGUF keys it writes. No input may panic,
//! hang or allocate from a claim.
//!
//! Input: tokenizer.json, tokenizer_config.json, config.json and the chat template, separated by
//! `gq_fuzz::SEP` (missing or unparsable ones are absent).
#![no_main]
use gq::gguf::Metadata;
use gq::tokenizer::{Tokenizer, Vocab};
use gq_fuzz::split_files;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let files = split_files(data);
    let Ok(tj) = gq::json::parse(files[0]) else {
        return;
    };
    let json = |i: usize| files.get(i).and_then(|f| gq::json::parse(f).ok());
    let (tc, cfg) = (json(1), json(2));
    let template = files
        .get(3)
        .map(|t| String::from_utf8_lossy(t).into_owned());
    let Ok(v) = Vocab::from_json(
        std::path::Path::new("fuzz"),
        &tj,
        tc.as_ref(),
        cfg.as_ref(),
        || Ok(template),
    ) else {
        return;
    };
    let mut meta = Metadata::new();
    v.write(&mut meta);
    let Ok(t) = Tokenizer::from_vocab(&v, "fuzz".into()) else {
        return;
    };
    let ids = t.encode("Hello world!\n\n  <start_of_turn>x ü 😀", true);
    let _ = t.decode(&ids);
});
