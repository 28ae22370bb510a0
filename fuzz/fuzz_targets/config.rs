//! config.json → the Gemma 4 text config ([`gq::gemma4::TextConfig::from_json`]), then
//! everything built from it before any weight is read: the tensor list it implies, its check
//! against the tensor shapes of every fixture checkpoint, the runner's hyper-parameters and the
//! GGUF keys. No input may panic, hang or allocate from a claim.
//!
//! Input: the file's bytes.
#![no_main]
use gq::gemma4::{check::check_shapes, hparams::Hparams, metadata, plan, FileType, TextConfig};
use gq::gguf::Metadata;
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// (shard, name, shape) of every tensor of the fixtures, read once: from `$GQ_FUZZ_FIXTURES`
/// where set (a binary run on another machine, scripts/host_fuzz.sh), else from the checkout
/// it was built in.
fn fixtures() -> &'static Vec<Vec<(PathBuf, String, Vec<usize>)>> {
    static F: OnceLock<Vec<Vec<(PathBuf, String, Vec<usize>)>>> = OnceLock::new();
    F.get_or_init(|| {
        let root = std::env::var_os("GQ_FUZZ_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures"));
        ["dense", "moe", "e2b", "trained"]
            .iter()
            .map(|n| {
                let c = gq::safetensors::Checkpoint::open(root.join(n)).unwrap_or_else(|e| {
                    panic!("fixture {n} (set GQ_FUZZ_FIXTURES to the repo's fixtures/): {e:#}")
                });
                c.tensors
                    .iter()
                    .map(|t| {
                        (
                            c.shards[t.shard].path.clone(),
                            t.name.clone(),
                            t.shape.clone(),
                        )
                    })
                    .collect()
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = gq::json::parse(data) else {
        return;
    };
    let Ok(cfg) = TextConfig::from_json(&v) else {
        return;
    };
    let _ = plan::expected_tensors(&cfg);
    for f in fixtures() {
        let _ = check_shapes(
            &cfg,
            Path::new("config.json"),
            f.iter().map(|(p, n, s)| (p.as_path(), n.as_str(), &s[..])),
        );
    }
    let _ = cfg.n_rot_pairs_full();
    for il in 0..cfg.n_layer {
        let _ = cfg.n_ff_layer(il);
    }
    let _ = Hparams::from_config(&cfg);
    let mut meta = Metadata::new();
    metadata::hparams(&mut meta, &cfg, FileType::MOSTLY_Q8_0);
});
