//! Bad input gets one clear error line naming the file (and tensor), a non-zero exit, and no file
//! at the output path (nor a leftover temp file beside it).

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Runs `gq quantize DIR -o OUT/out.gguf --type TY [extra]` and checks the failure contract.
/// Returns the error line.
fn fails(dir: &Path, ty: &str, extra: &[&str]) -> String {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("out.gguf");
    let mut args = vec![
        "quantize",
        dir.to_str().unwrap(),
        "-o",
        target.to_str().unwrap(),
        "--type",
        ty,
    ];
    args.extend_from_slice(extra);
    let o = gq(&args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "gq should have failed; stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "want exactly one error line, got:\n{err}");
    assert!(!target.exists(), "output file left behind");
    let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "files left in the output directory: {left:?}"
    );
    lines[0].to_string()
}

/// Rewrites a safetensors file's JSON header with `f`, keeping the data section.
fn rewrite_header(path: &Path, f: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    f(header.as_object_mut().unwrap());
    let h = serde_json::to_vec(&header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
}

fn moe() -> (tempfile::TempDir, PathBuf) {
    copy_fixture("moe")
}

const T: &str = "model.layers.0.mlp.up_proj.weight";

#[test]
fn truncated_safetensors() {
    let (_t, d) = moe();
    let f = d.join("model.safetensors");
    let len = std::fs::metadata(&f).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let e = fails(&d, "q8_0", &[]);
    assert!(
        e.contains("model.safetensors") && e.contains("truncated") && e.contains("tensor "),
        "{e}"
    );
}

#[test]
fn corrupt_json_header() {
    let (_t, d) = moe();
    let f = d.join("model.safetensors");
    let mut b = std::fs::read(&f).unwrap();
    b[8..20].copy_from_slice(b"{\"garbage\":[");
    std::fs::write(&f, b).unwrap();
    let e = fails(&d, "q8_0", &[]);
    assert!(
        e.contains("model.safetensors") && e.contains("corrupt safetensors header"),
        "{e}"
    );
}

#[test]
fn header_offsets_out_of_bounds() {
    let (_t, d) = moe();
    rewrite_header(&d.join("model.safetensors"), |h| {
        let o = h[T]["data_offsets"].as_array().unwrap();
        let (s, e) = (o[0].as_u64().unwrap(), o[1].as_u64().unwrap());
        h.get_mut(T).unwrap()["data_offsets"] = serde_json::json!([s + 1_000_000, e + 1_000_000]);
    });
    let e = fails(&d, "q8_0", &[]);
    assert!(
        e.contains("model.safetensors") && e.contains(T) && e.contains("out of bounds"),
        "{e}"
    );
}

#[test]
fn header_offsets_overlap() {
    let (_t, d) = moe();
    rewrite_header(&d.join("model.safetensors"), |h| {
        let gate = h["model.layers.0.mlp.gate_proj.weight"]["data_offsets"].clone();
        h.get_mut(T).unwrap()["data_offsets"] = gate;
    });
    let e = fails(&d, "q8_0", &[]);
    assert!(
        e.contains("model.safetensors") && e.contains("overlap") && e.contains("mlp."),
        "{e}"
    );
}

#[test]
fn missing_shard_named_by_index() {
    let (_t, d) = copy_fixture("dense");
    std::fs::remove_file(d.join("model-00002-of-00003.safetensors")).unwrap();
    let e = fails(&d, "bf16", &[]);
    assert!(
        e.contains("model.safetensors.index.json")
            && e.contains("missing shard model-00002-of-00003.safetensors"),
        "{e}"
    );
    assert!(
        e.contains("model.layers."),
        "names a tensor in the shard: {e}"
    );
}

#[test]
fn unknown_dtype() {
    let (_t, d) = moe();
    rewrite_header(&d.join("model.safetensors"), |h| {
        h.get_mut(T).unwrap()["dtype"] = Value::String("Q9".into());
    });
    let e = fails(&d, "f16", &[]);
    assert!(
        e.contains("model.safetensors") && e.contains(T) && e.contains("unknown dtype \"Q9\""),
        "{e}"
    );
}

#[test]
fn dtype_gq_cannot_convert() {
    let (_t, d) = moe();
    // I16 has BF16's size, so the header stays consistent; gq must refuse to read it as floats.
    rewrite_header(&d.join("model.safetensors"), |h| {
        h.get_mut(T).unwrap()["dtype"] = Value::String("I16".into());
    });
    let e = fails(&d, "f16", &[]);
    assert!(e.contains(T) && e.contains("cannot be converted"), "{e}");
}

#[test]
fn unknown_architecture() {
    let (_t, d) = moe();
    let p = d.join("config.json");
    let c = std::fs::read_to_string(&p)
        .unwrap()
        .replace("Gemma4ForCausalLM", "LlamaForCausalLM");
    std::fs::write(&p, c).unwrap();
    let e = fails(&d, "f16", &[]);
    assert!(
        e.contains("config.json") && e.contains("unknown architecture \"LlamaForCausalLM\""),
        "{e}"
    );
}

#[test]
fn tensor_missing_from_checkpoint() {
    let (_t, d) = moe();
    rewrite_header(&d.join("model.safetensors"), |h| {
        h.remove(T);
    });
    let e = fails(&d, "f16", &[]);
    assert!(
        e.contains("lacks the tensor that becomes blk.0.ffn_up.weight"),
        "{e}"
    );
}

/// Sets element 5 of `T` to `bits` (a bf16 bit pattern).
fn poison(d: &Path, bits: u16) {
    let f = d.join("model.safetensors");
    let mut b = std::fs::read(&f).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let h: Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    let start = h[T]["data_offsets"][0].as_u64().unwrap() as usize;
    let at = 8 + n + start + 5 * 2;
    b[at..at + 2].copy_from_slice(&bits.to_le_bytes());
    std::fs::write(&f, b).unwrap();
}

#[test]
fn nan_weights_refused_for_quantized_types() {
    let (_t, d) = moe();
    poison(&d, 0x7fc0);
    let e = fails(&d, "q8_0", &[]);
    assert!(
        e.contains(T) && e.contains("blk.0.ffn_up.weight") && e.contains("--allow-nonfinite"),
        "{e}"
    );
}

#[test]
fn inf_weights_warned_for_float_types_and_allowed_on_request() {
    let (_t, d) = moe();
    poison(&d, 0x7f80);
    let out = tempfile::tempdir().unwrap();
    for (ty, extra) in [
        ("f16", None),
        ("bf16", None),
        ("f32", None),
        ("q8_0", Some("--allow-nonfinite")),
    ] {
        let target = out.path().join(format!("{ty}.gguf"));
        let mut args = vec![
            "quantize",
            d.to_str().unwrap(),
            "-o",
            target.to_str().unwrap(),
            "--type",
            ty,
            "-q",
        ];
        args.extend(extra);
        let o = gq_ok(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("warning:") && err.contains(T) && err.contains("non-finite"),
            "{ty}: {err}"
        );
        assert!(target.is_file());
    }
}

#[test]
fn output_directory_missing() {
    let o = gq(&[
        "quantize",
        fixture("moe").to_str().unwrap(),
        "-o",
        "/nonexistent-dir/x/out.gguf",
        "--type",
        "f16",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("/nonexistent-dir/x") && err.contains("cannot create the output file"),
        "{err}"
    );
}

#[test]
fn output_directory_not_writable() {
    // /proc refuses new files even to root, so this holds for any user.
    let o = gq(&[
        "quantize",
        fixture("moe").to_str().unwrap(),
        "-o",
        "/proc/gq-out.gguf",
        "--type",
        "f16",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.lines().filter(|l| l.starts_with("error:")).count() == 1 && err.contains("/proc"),
        "{err}"
    );
    assert!(!Path::new("/proc/gq-out.gguf").exists());
}

#[test]
fn disk_full() {
    // A 256 KiB tmpfs in a private mount namespace (unshare: root, or unprivileged user
    // namespaces) holds the start of the file but not all of the 600 KB F32 output.
    let mnt = tempfile::tempdir().unwrap();
    let m = mnt.path().to_str().unwrap();
    let script = format!(
        "mount -t tmpfs -o size=256k tmpfs {m} || exit 99; {gq} quantize {src} -o {m}/out.gguf --type f32 -q; rc=$?; ls -A {m}; exit $rc",
        gq = env!("CARGO_BIN_EXE_gq"),
        src = fixture("moe").display()
    );
    let o = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux)");
    let err = String::from_utf8_lossy(&o.stderr);
    let listing = String::from_utf8_lossy(&o.stdout);
    assert_ne!(
        o.status.code(),
        Some(99),
        "could not mount a tmpfs for the test: {err}"
    );
    assert!(!o.status.success(), "gq should fail on a full disk: {err}");
    assert!(
        err.contains("out.gguf") && err.contains("No space left on device"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    assert!(
        listing.trim().is_empty(),
        "files left on the full disk: {listing}"
    );
}

#[test]
fn empty_tensor() {
    let (_t, d) = moe();
    rewrite_header(&d.join("model.safetensors"), |h| {
        let start = h[T]["data_offsets"][0].clone();
        h.get_mut(T).unwrap()["shape"] = serde_json::json!([0, 64]);
        h.get_mut(T).unwrap()["data_offsets"] = serde_json::json!([start, start]);
    });
    let e = fails(&d, "q4_k_m", &[]);
    // config.json says what the shape must be, so the empty tensor is a contradiction.
    assert!(
        e.contains(T) && e.contains("shape [0, 64]") && e.contains("implies [64, 64]"),
        "{e}"
    );
}

#[test]
fn interrupt_leaves_no_output() {
    // A 12-layer synthetic checkpoint big enough that Q4_K_M takes a while; SIGINT (Ctrl-C) once
    // the output is being written must stop gq with an error and no file at the output path.
    let work = tempfile::tempdir().unwrap();
    let ckpt = slow_checkpoint(work.path());
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("out.gguf");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_gq"))
        .args([
            "quantize",
            ckpt.to_str().unwrap(),
            "-o",
            target.to_str().unwrap(),
            "--type",
            "Q4_K_M",
            "--threads",
            "1",
            "-q",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt as soon as gq has started writing (its temp file exists next to the target):
    // a fixed delay was too long for a release build, which finishes this checkpoint in well
    // under half a second.
    let t0 = std::time::Instant::now();
    while std::fs::read_dir(out.path()).unwrap().next().is_none()
        && t0.elapsed() < std::time::Duration::from_secs(60)
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "gq finished before the interrupt; make the checkpoint bigger"
    );
    assert!(err.contains("interrupted"), "{err}");
    assert!(!target.exists());
    let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
}
