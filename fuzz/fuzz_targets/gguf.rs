//! The GGUF reader ([`gq::gguf::GgufFile::from_bytes`], the same checks as `GgufFile::open`) and
//! what `gq inspect` and the runner do with an accepted file: print every key, read every
//! tensor's bytes, dequantize the small ones, read the Gemma 4 hyper-parameters, build the model
//! and run two tokens through it. No input may panic, hang or allocate from a claim.
//!
//! Input: the file.
#![no_main]
use gq::gemma4::{logits_at, weights::WeightFile, Model};
use gq::gguf::GgufFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = GgufFile::from_bytes("fuzz.gguf", data.to_vec()) else {
        return;
    };
    for (k, v) in f.metadata.iter() {
        let _ = format!("{k} {} {v}", v.type_name());
    }
    let k = gq_kernels::kernels();
    for t in &f.tensors {
        let d = f.tensor_data(t);
        assert_eq!(d.len() as u64, t.n_bytes);
        let n: u64 = t.dims.iter().product();
        if gq_kernels::format(t.ty).is_some() && n <= 1 << 16 {
            let mut out = vec![0f32; n as usize];
            k.dequantize_row(t.ty, d, &mut out);
        }
    }
    let _ =
        gq::imatrix::Imatrix::from_gguf(GgufFile::from_bytes("fuzz.gguf", data.to_vec()).unwrap());
    let Ok((w, hp)) = WeightFile::from_gguf(f) else {
        return;
    };
    let Ok(m) = Model::from_weights(w, hp) else {
        return;
    };
    let ids: Vec<u32> = [0u32, 1]
        .iter()
        .map(|&i| i.min(m.n_embd_rows().saturating_sub(1) as u32))
        .collect();
    if m.n_embd_rows() > 0 {
        let _ = logits_at(&m, &ids, &[0, 1], 2);
    }
});
