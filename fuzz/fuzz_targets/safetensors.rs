//! The safetensors header and index reader ([`gq::safetensors::Checkpoint::from_memory`], the
//! same checks as `Checkpoint::open`): no input may panic, hang or allocate from a claim; an
//! accepted checkpoint's tensors must all be readable.
//!
//! Input: files separated by `gq_fuzz::SEP`. An empty first file means a single
//! `model.safetensors` (the second file); otherwise the first is `model.safetensors.index.json`
//! and the rest are the shards it names, in sorted order.
#![no_main]
use gq::safetensors::{dtype_size, Checkpoint};
use gq_fuzz::split_files;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let files = split_files(data);
    let ckpt = if files[0].is_empty() {
        let shard = files.get(1).copied().unwrap_or_default().to_vec();
        Checkpoint::from_memory("fuzz", None, vec![("model.safetensors".into(), shard)])
    } else {
        let names = match gq::safetensors::parse_index(std::path::Path::new("fuzz/index"), files[0])
        {
            Ok((names, _)) => names,
            Err(_) => return,
        };
        let shards = names
            .into_iter()
            .zip(files[1..].iter().map(|f| f.to_vec()))
            .collect();
        Checkpoint::from_memory("fuzz", Some(files[0]), shards)
    };
    let Ok(c) = ckpt else {
        return;
    };
    let mut total = 0u64;
    for t in &c.tensors {
        let b = c.bytes(t);
        assert_eq!(b.len(), t.end - t.start);
        assert_eq!(b.len(), (t.n_elements() * t.dtype.bitsize()).div_ceil(8));
        assert!(std::ptr::eq(c.get(&t.name).unwrap(), t));
        total += b.len() as u64;
        let es = dtype_size(t.dtype);
        let n = t.n_elements();
        if es > 0 && n > 0 {
            let mut out = vec![0f32; n.min(4096)];
            let _ = c.read_f32(t, n - out.len(), &mut out);
        }
    }
    assert_eq!(total, c.total_bytes());
});
