//! The rest of the bad-input catalogue, through the CLI: JSON bombs and deep nesting in config and
//! tokenizer files, duplicate keys, absurd sizes, 0-byte files, directories where files belong,
//! symbolic link loops, read-only outputs, SIGTERM and kill -9 in the middle of a write, and the
//! permissions of a finished file. Each failure is one error line naming the file, exit 1, no
//! panic, no output file (nor temp file), in under a second.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `gq quantize DIR -o OUT/out.gguf --type f16`; checks the failure contract and returns the
/// error line.
fn quantize_fails(dir: &Path) -> String {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("out.gguf");
    let e = fails(&[
        "quantize",
        dir.to_str().unwrap(),
        "-o",
        target.to_str().unwrap(),
        "--type",
        "f16",
    ]);
    assert!(!target.exists(), "output file left behind");
    let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert!(left.is_empty(), "files left: {left:?}");
    e
}

fn fails(args: &[&str]) -> String {
    let t = Instant::now();
    let o = gq(args);
    let took = t.elapsed();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "gq {args:?}: {err}");
    assert!(!err.contains("panicked"), "gq {args:?} panicked: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "gq {args:?}: want one line, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(took < Duration::from_secs(1), "gq {args:?} took {took:?}");
    lines[0].to_string()
}

fn moe() -> (tempfile::TempDir, PathBuf) {
    copy_fixture("moe")
}

#[test]
fn deep_nesting_in_config_and_tokenizer() {
    for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        let (_t, d) = moe();
        // A million nested arrays: a stack overflow for a naive recursive parser.
        let deep = format!(
            "{{\"a\": {}{}}}",
            "[".repeat(1_000_000),
            "]".repeat(1_000_000)
        );
        std::fs::write(d.join(file), deep).unwrap();
        let e = quantize_fails(&d);
        assert!(
            e.contains(file) && e.contains("invalid JSON") && e.contains("recursion limit"),
            "{file}: {e}"
        );
    }
}

#[test]
fn json_bombs() {
    // Larger than any real config: refused before it is read.
    let (_t, d) = moe();
    let f = std::fs::File::create(d.join("config.json")).unwrap();
    f.set_len(64 << 20).unwrap();
    let e = quantize_fails(&d);
    assert!(
        e.contains("config.json") && e.contains("more than the 16777216"),
        "{e}"
    );
    // Duplicate keys: which value would a tool use?
    let (_t, d) = moe();
    let p = d.join("config.json");
    let c = std::fs::read_to_string(&p).unwrap();
    let c = c.replacen('{', "{\"hidden_size\": 9999, ", 1);
    std::fs::write(&p, c).unwrap();
    let e = quantize_fails(&d);
    assert!(
        e.contains("config.json") && e.contains("duplicate key \"hidden_size\""),
        "{e}"
    );
    // A number too big for any integer, and a float that is not finite in f32.
    for (key, v) in [
        ("hidden_size", "1e400"),
        ("num_hidden_layers", "18446744073709551616"),
        ("rms_norm_eps", "1e-60"),
        ("hidden_size", "-64"),
        ("hidden_size", "4294967360"),
    ] {
        let (_t, d) = moe();
        let p = d.join("config.json");
        let mut v0: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let text = serde_json::to_string(&{
            v0[key] = serde_json::Value::Null;
            v0
        })
        .unwrap()
        .replace(&format!("\"{key}\":null"), &format!("\"{key}\":{v}"));
        std::fs::write(&p, text).unwrap();
        let e = quantize_fails(&d);
        assert!(e.contains("config.json"), "{key}={v}: {e}");
    }
}

#[test]
fn config_contradicting_the_checkpoint() {
    for (key, v, tensor) in [
        ("num_attention_heads", 4, "self_attn."),
        ("head_dim", 16, "self_attn."),
        ("num_key_value_heads", 1, "self_attn.k_proj.weight"),
        ("intermediate_size", 128, "mlp."),
        ("vocab_size", 1024, "embed_tokens.weight"),
        ("num_experts", 8, ""),
        ("moe_intermediate_size", 64, "experts."),
        ("hidden_size", 128, ""),
    ] {
        let (_t, d) = moe();
        let p = d.join("config.json");
        let mut c: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        c[key] = v.into();
        std::fs::write(&p, serde_json::to_string(&c).unwrap()).unwrap();
        let e = quantize_fails(&d);
        assert!(
            e.contains("config.json") && e.contains(key) && e.contains(tensor),
            "{key}={v}: {e}"
        );
        // The runner refuses it the same way.
        let e = fails(&["logits", d.to_str().unwrap(), "--ids", "2,3"]);
        assert!(e.contains(key), "logits, {key}={v}: {e}");
    }
}

#[test]
fn tokenizer_files() {
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let (t, d) = moe();
        let p = d.join("tokenizer.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
        (t, d)
    };
    // Two tokens with one id.
    let (_t, d) = edit(&|v| v["model"]["vocab"]["<bos>"] = 5.into());
    let e = quantize_fails(&d);
    assert!(
        e.contains("tokenizer.json") && e.contains("both have id 5"),
        "{e}"
    );
    // An added token far beyond the vocabulary.
    let (_t, d) = edit(&|v| {
        v["added_tokens"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"id": 1u64 << 40, "content": "<far>"}))
    });
    let e = quantize_fails(&d);
    assert!(e.contains("tokenizer.json") && e.contains("<far>"), "{e}");
    // A negative id.
    let (_t, d) = edit(&|v| v["model"]["vocab"]["<bos>"] = (-1).into());
    let e = quantize_fails(&d);
    assert!(
        e.contains("tokenizer.json") && e.contains("no integer id"),
        "{e}"
    );
}

#[test]
fn empty_files() {
    for file in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
    ] {
        let (_t, d) = moe();
        std::fs::write(d.join(file), b"").unwrap();
        let e = quantize_fails(&d);
        assert!(e.contains(file), "{file}: {e}");
    }
    let (_t, d) = copy_fixture("dense");
    std::fs::write(d.join("model.safetensors.index.json"), b"").unwrap();
    let e = quantize_fails(&d);
    assert!(e.contains("model.safetensors.index.json"), "{e}");
    // An empty imatrix.
    let m = tempfile::NamedTempFile::new().unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = fails(&[
        "quantize",
        fixture("moe").to_str().unwrap(),
        "-o",
        out.path().join("o.gguf").to_str().unwrap(),
        "--type",
        "q4_k_m",
        "--imatrix",
        m.path().to_str().unwrap(),
    ]);
    assert!(e.contains(m.path().to_str().unwrap()), "{e}");
}

#[test]
fn directories_where_files_belong() {
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        let (_t, d) = moe();
        std::fs::remove_file(d.join(file)).unwrap();
        std::fs::create_dir(d.join(file)).unwrap();
        let e = quantize_fails(&d);
        assert!(e.contains(file) && e.contains("directory"), "{file}: {e}");
    }
    // The checkpoint is a file; the output is a directory.
    let f = fixture("moe").join("config.json");
    let e = quantize_fails(&f);
    assert!(e.contains("not a directory"), "{e}");
    let out = tempfile::tempdir().unwrap();
    let e = fails(&[
        "quantize",
        fixture("moe").to_str().unwrap(),
        "-o",
        out.path().to_str().unwrap(),
        "--type",
        "f16",
    ]);
    assert!(e.contains("is a directory"), "{e}");
}

#[test]
fn symlink_loops() {
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        let (_t, d) = moe();
        std::fs::remove_file(d.join(file)).unwrap();
        std::os::unix::fs::symlink(d.join(file), d.join(file)).unwrap();
        let e = quantize_fails(&d);
        assert!(
            e.contains(file) && e.contains("symbolic links"),
            "{file}: {e}"
        );
    }
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("out.gguf");
    std::os::unix::fs::symlink(&target, &target).unwrap();
    let e = fails(&[
        "quantize",
        fixture("moe").to_str().unwrap(),
        "-o",
        target.to_str().unwrap(),
        "--type",
        "f16",
    ]);
    assert!(e.contains("out.gguf") && e.contains("symbolic link"), "{e}");
}

#[test]
fn read_only_output() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("out.gguf");
    std::fs::write(&target, b"keep me").unwrap();
    let mut p = std::fs::metadata(&target).unwrap().permissions();
    p.set_readonly(true);
    std::fs::set_permissions(&target, p).unwrap();
    let e = fails(&[
        "quantize",
        fixture("moe").to_str().unwrap(),
        "-o",
        target.to_str().unwrap(),
        "--type",
        "f16",
    ]);
    assert!(e.contains("out.gguf") && e.contains("read-only"), "{e}");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);
    // logits --out into a read-only file, too.
    let e = fails(&[
        "logits",
        fixture("moe").to_str().unwrap(),
        "--ids",
        "2,3",
        "--out",
        target.to_str().unwrap(),
    ]);
    assert!(e.contains("read-only"), "{e}");
}

#[test]
fn finished_files_get_umask_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let out = tempfile::tempdir().unwrap();
    let g = out.path().join("out.gguf");
    let n = out.path().join("out.npy");
    let r = out.path().join("report.csv");
    let m = out.path().join("out.Modelfile");
    // Under umask 027 the files must be 0640 (a temp file's 0600 would fail this): the GGUF, its
    // report and Modelfile, and logits --out.
    let script = format!(
        "umask 027 && {gq} quantize {src} -o {g} --type q8_0 -q --report {r} --modelfile \
         && {gq} logits {src} --ids 2,3 --out {n}",
        gq = env!("CARGO_BIN_EXE_gq"),
        src = fixture("moe").display(),
        g = g.display(),
        r = r.display(),
        n = n.display()
    );
    let o = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 4);
    for f in [&g, &n, &r, &m] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{}: mode {mode:o}", f.display());
    }
}

fn start_quantize(ckpt: &Path, target: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_gq"))
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
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until a temp file appears in `dir` (the write has started).
fn wait_for_temp(dir: &Path) -> PathBuf {
    let t = Instant::now();
    loop {
        if let Some(e) = std::fs::read_dir(dir).unwrap().flatten().next() {
            return e.path();
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no temp file appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_and_kill_9_mid_write() {
    let work = tempfile::tempdir().unwrap();
    let ckpt = slow_checkpoint(work.path());
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("out.gguf");

    // SIGTERM: stops with "interrupted", removes its temp file.
    let child = start_quantize(&ckpt, &target);
    wait_for_temp(out.path());
    std::thread::sleep(Duration::from_millis(200));
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "finished before SIGTERM");
    assert!(
        err.contains("interrupted") && !err.contains("panicked"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);

    // kill -9: the temp file stays, named for the process and the target.
    let mut child = start_quantize(&ckpt, &target);
    let temp = wait_for_temp(out.path());
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    let name = temp.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.starts_with(".out.gguf.gq-tmp-") && name.contains(&child.id().to_string()),
        "{name}"
    );
    assert!(temp.exists() && !target.exists());
    // The next run in that directory removes it and says so.
    let o = gq_ok(&[
        "quantize",
        fixture("moe").to_str().unwrap(),
        "-o",
        out.path().join("other.gguf").to_str().unwrap(),
        "--type",
        "f16",
        "-q",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&name) && err.contains("left by an interrupted gq run"),
        "{err}"
    );
    let left: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["other.gguf"]);
}
