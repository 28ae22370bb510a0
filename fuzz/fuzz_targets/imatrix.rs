//! Both importance-matrix readers: GGUF (`llama-imatrix --output-format gguf`) when the input
//! starts with the GGUF magic, the legacy `.dat` format otherwise. No input may panic, hang or
//! allocate from a claim; an accepted matrix has only finite values.
#![no_main]
use gq::gguf::GgufFile;
use gq::imatrix::Imatrix;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let m = if data.starts_with(b"GGUF") {
        let Ok(f) = GgufFile::from_bytes("fuzz.gguf", data.to_vec()) else {
            return;
        };
        Imatrix::from_gguf(f)
    } else {
        Imatrix::from_legacy(std::path::Path::new("fuzz.dat"), data)
    };
    if let Ok(m) = m {
        assert!(m.entries.values().flatten().all(|x| x.is_finite()));
        let _ = m.metadata();
    }
});
