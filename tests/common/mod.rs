//! Shared helpers for gq's integration tests: paths to fixtures, the gq binary, and the
//! independent peers (gguf-py, llama.cpp). A missing peer fails the test with instructions.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture directory.
pub fn fixture(name: &str) -> PathBuf {
    root().join("fixtures").join(name)
}

/// Runs the gq binary.
pub fn gq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gq"))
        .args(args)
        .output()
        .expect("run gq")
}

/// Runs gq and panics with its stderr unless it succeeds.
pub fn gq_ok(args: &[&str]) -> Output {
    let o = gq(args);
    assert!(
        o.status.success(),
        "gq {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The peers' cache directory.
pub fn peers() -> PathBuf {
    std::env::var_os("GQ_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/gq-peers"))
}

/// A llama.cpp tool built by scripts/get_peers.sh.
pub fn llama_tool(name: &str) -> PathBuf {
    let p = peers().join("build/bin").join(name);
    assert!(
        p.is_file(),
        "{} not found: run `bash scripts/get_peers.sh` to build llama.cpp's tools from the \
         llama-cpp-python 0.3.36 sdist (set GQ_PEERS to use another cache)",
        p.display()
    );
    p
}

/// The llama.cpp source tree from the sdist.
pub fn llama_src() -> PathBuf {
    let p = peers().join("sdist/llama_cpp_python-0.3.36/vendor/llama.cpp");
    assert!(
        p.join("CMakeLists.txt").is_file(),
        "{} not found: run `bash scripts/get_peers.sh`",
        p.display()
    );
    p
}

/// Fails unless the installed gguf-py is the pinned 0.19.0 (its distribution version: the
/// package itself has no `__version__`). Checked once per test binary.
fn check_gguf_py() {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CHECKED.get_or_init(|| {
        let o = Command::new("python3")
            .args([
                "-c",
                "import importlib.metadata as m; print(m.version('gguf'))",
            ])
            .output()
            .expect("python3 not found: install Python 3 and `pip install gguf==0.19.0 numpy`");
        let v = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert!(
            o.status.success() && v == "0.19.0",
            "gguf-py 0.19.0 is required (found {v:?}; {}): run `pip install gguf==0.19.0 numpy` \
             (or scripts/get_peers.sh)",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    });
}

/// Runs one of the Python reference scripts in tests/py (needs gguf-py 0.19.0 and numpy).
pub fn python(script: &str, args: &[&Path], extra: &[&str]) -> Output {
    check_gguf_py();
    let o = Command::new("python3")
        .arg(root().join("tests/py").join(script))
        .args(args)
        .args(extra)
        .output()
        .expect("python3 not found: install Python 3 and `pip install gguf==0.19.0 numpy`");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("ModuleNotFoundError"),
        "{script}: a Python module is missing ({err}): run `pip install gguf==0.19.0 numpy` (or scripts/get_peers.sh)"
    );
    o
}

/// Asserts that a reference comparison script exited 0, showing its output otherwise.
pub fn assert_py_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs a comparison script (compare_gguf.py, gguf_manifest.py check) that ends with a summary
/// line `… N differences` and exits 0 when N is 0, 1 otherwise. Panics when the script did not
/// finish that way (a crash, an exception, a missing summary, or an exit code that contradicts
/// it), so that a broken comparison can never pass. Returns its stdout lines and N.
pub fn python_compare(script: &str, args: &[&Path], extra: &[&str]) -> (Vec<String>, usize) {
    let o = python(script, args, extra);
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<String> = out.lines().map(str::to_string).collect();
    let n = lines
        .last()
        .and_then(|l| l.strip_suffix(" differences"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<usize>().ok());
    let code = o.status.code();
    let consistent = match n {
        Some(0) => code == Some(0),
        Some(_) => code == Some(1),
        None => false,
    };
    assert!(
        consistent,
        "{script} did not finish its comparison (exit {code:?}, last line {:?}):\n{out}{}",
        lines.last(),
        String::from_utf8_lossy(&o.stderr)
    );
    (lines, n.unwrap())
}

/// [`python_compare`] that must find no difference: panics with the differences otherwise.
pub fn assert_no_differences(script: &str, args: &[&Path], extra: &[&str], what: &str) {
    let (lines, n) = python_compare(script, args, extra);
    assert_eq!(n, 0, "{what}:\n{}", lines.join("\n"));
}

/// Dequantizes every tensor of `file` (types in `types` only) with gguf-py (tests/py/
/// gguf_dequant.py) and with the scalar reference and every SIMD table this CPU runs; panics on
/// the first value whose bits differ. Returns the SIMD ISAs compared (once per tensor) and the
/// number of tensors compared.
pub fn dequant_vs_gguf_py(
    file: &Path,
    out_dir: &Path,
    types: &[gq::gguf::GgmlType],
) -> (Vec<gq_kernels::Isa>, usize) {
    use gq_kernels::{kernels_for, Isa};
    let o = python("gguf_dequant.py", &[file, out_dir], &[]);
    assert_py_ok(&o, "gguf_dequant.py");
    let g = gq::gguf::GgufFile::open(file).unwrap();
    let tables: Vec<_> = Isa::ALL.into_iter().filter_map(kernels_for).collect();
    let (mut exercised, mut n_tensors) = (Vec::new(), 0);
    for t in g.tensors.iter().filter(|t| types.contains(&t.ty)) {
        let reference = read_f32s(&out_dir.join(format!("{}.f32", t.name)));
        let n = t.dims.iter().product::<u64>() as usize;
        assert_eq!(reference.len(), n, "{} {}: gguf-py length", t.ty, t.name);
        for k in &tables {
            let mut ours = vec![f32::NAN; n];
            k.dequantize_row(t.ty, g.tensor_data(t), &mut ours);
            if let Some(i) = (0..n).find(|&i| ours[i].to_bits() != reference[i].to_bits()) {
                panic!(
                    "{} {} {}: element {i}: gq {} vs gguf-py {}",
                    k.isa(),
                    t.ty,
                    t.name,
                    ours[i],
                    reference[i]
                );
            }
            exercised.push(k.isa());
        }
        n_tensors += 1;
    }
    (exercised, n_tensors)
}

/// Copies a fixture into a fresh temp dir (for tests that corrupt it).
pub fn copy_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join(name);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(fixture(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    (tmp, dst)
}

/// Runs llama.cpp's `llama-quantize --pure [--imatrix FILE] IN OUT TYPE` and panics with its
/// output unless it succeeds.
pub fn llama_quantize(input: &Path, output: &Path, ty: &str, imatrix: Option<&Path>) {
    let mut cmd = Command::new(llama_tool("llama-quantize"));
    cmd.arg("--pure");
    if let Some(m) = imatrix {
        cmd.arg("--imatrix").arg(m);
    }
    let o = cmd
        .arg(input)
        .arg(output)
        .arg(ty)
        .output()
        .expect("run llama-quantize");
    assert!(
        o.status.success(),
        "llama-quantize {ty} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Reads a little-endian f32 file.
pub fn read_f32s(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Parses llama.cpp's legacy importance-matrix file: per tensor name, the summed squared
/// activations divided by the call count (what llama-quantize passes to the quantizers).
pub fn read_legacy_imatrix(path: &Path) -> std::collections::HashMap<String, Vec<f32>> {
    let b = std::fs::read(path).unwrap();
    let mut at = 0;
    let i32_at = |at: &mut usize| {
        let v = i32::from_le_bytes(b[*at..*at + 4].try_into().unwrap());
        *at += 4;
        v
    };
    let n = i32_at(&mut at);
    let mut out = std::collections::HashMap::new();
    for _ in 0..n {
        let len = i32_at(&mut at) as usize;
        let name = String::from_utf8(b[at..at + len].to_vec()).unwrap();
        at += len;
        let ncall = i32_at(&mut at) as f32;
        let nval = i32_at(&mut at) as usize;
        let vals = b[at..at + 4 * nval]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) / ncall)
            .collect();
        at += 4 * nval;
        out.insert(name, vals);
    }
    out
}

/// Runs llama-perplexity on `model` over `text` with context `ctx` (2 threads) and returns the
/// final PPL with llama.cpp's four decimals.
///
/// llama.cpp's logger is asynchronous and can drop the last lines at exit (common/log.cpp warns
/// about it), more often on a loaded machine. The final PPL is read from the "Final estimate"
/// line, or else from the running value after the last chunk ("[N]x.xxxx," with N the chunk
/// count announced at the start, the same number with the same formatting); a run that lost
/// both is repeated, at most ten times.
pub fn llama_perplexity(model: &Path, text: &Path, ctx: usize) -> String {
    let mut last = String::new();
    for _ in 0..10 {
        let c = ctx.to_string();
        let o = Command::new(llama_tool("llama-perplexity"))
            .args(["-m", model.to_str().unwrap(), "-f", text.to_str().unwrap()])
            .args(["-c", &c, "-b", &c, "-t", "2"])
            .output()
            .unwrap();
        let log =
            String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "llama-perplexity failed on {}:\n{log}",
            model.display()
        );
        if let Some(f) = log
            .lines()
            .find_map(|l| l.split("Final estimate: PPL = ").nth(1))
        {
            return f.split_whitespace().next().unwrap().to_string();
        }
        let n_chunks = log
            .lines()
            .find_map(|l| l.split("calculating perplexity over ").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<usize>().ok());
        let running = log.lines().find(|l| l.starts_with("[1]"));
        if let (Some(n), Some(line)) = (n_chunks, running) {
            let tag = format!("[{n}]");
            if let Some(v) = line.split(&tag).nth(1).and_then(|r| r.split(',').next()) {
                if line.contains(&format!("{tag}{v},")) {
                    return v.to_string();
                }
            }
        }
        last = log;
    }
    panic!(
        "no final perplexity from llama-perplexity for {} in 10 runs:\n{last}",
        model.display()
    );
}

/// Converts fixture (or checkpoint directory) `src` with `gq quantize --type ty -q` to
/// `dir/NAME-TY.gguf` and returns that path.
pub fn gq_convert(src: &Path, ty: &str, dir: &Path) -> PathBuf {
    let name = src.file_name().unwrap().to_string_lossy();
    let out = dir.join(format!("{name}-{ty}.gguf"));
    gq_ok(&[
        "quantize",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        ty,
        "-q",
    ]);
    out
}

/// Writes a synthetic Gemma 4 checkpoint with scripts/make_synthetic.py (`args` are its options).
pub fn make_synthetic(dir: &Path, args: &[&str]) {
    let o = Command::new("python3")
        .arg(root().join("scripts/make_synthetic.py"))
        .arg(dir)
        .args(args)
        .output()
        .expect("python3 not found");
    assert!(
        o.status.success(),
        "make_synthetic.py: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// llama-quantize's type argument and the tensor type it gives every matrix under `--pure`.
pub const PURE_TYPES: [(&str, gq::gguf::GgmlType); 9] = [
    ("Q4_0", gq::gguf::GgmlType::Q4_0),
    ("Q4_1", gq::gguf::GgmlType::Q4_1),
    ("Q5_0", gq::gguf::GgmlType::Q5_0),
    ("Q5_1", gq::gguf::GgmlType::Q5_1),
    ("Q2_K", gq::gguf::GgmlType::Q2_K),
    ("Q3_K_S", gq::gguf::GgmlType::Q3_K),
    ("Q4_K_S", gq::gguf::GgmlType::Q4_K),
    ("Q5_K_S", gq::gguf::GgmlType::Q5_K),
    ("Q6_K", gq::gguf::GgmlType::Q6_K),
];

/// A synthetic checkpoint that takes gq a few seconds to quantize to Q4_K_M on one thread.
pub fn slow_checkpoint(work: &Path) -> PathBuf {
    let ckpt = work.join("synthetic");
    make_synthetic(
        &ckpt,
        &[
            "--layers",
            "12",
            "--hidden",
            "512",
            "--ff",
            "2048",
            "--heads",
            "4",
            "--head-dim",
            "64",
        ],
    );
    ckpt
}
