//! The crafted-GGUF catalogue: every broken header field, through `gq inspect` (the runner,
//! imatrix and tokenizer use the same reader; a few go through them too). Each must give one
//! clear error line naming the file and the field, a non-zero exit, no panic, in under a second.

mod common;
use common::*;
use gq::gguf::{
    layout_tensors, GgmlType, GgufFile, GgufWriter, MetaValue, Metadata, PlannedTensor,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Runs gq and checks the failure contract; returns the error line.
fn fails(args: &[&str]) -> String {
    let t = Instant::now();
    let o = gq(args);
    let took = t.elapsed();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success(),
        "gq {args:?} should fail; stderr: {err}"
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "gq {args:?}: exit code; stderr: {err}"
    );
    assert!(!err.contains("panicked"), "gq {args:?} panicked: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "gq {args:?}: want one error line, got:\n{err}"
    );
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(
        took < Duration::from_secs(1),
        "gq {args:?} took {took:?} to refuse bad input"
    );
    lines[0].to_string()
}

/// Writes `bytes` to a temp file and runs `gq inspect` on it; the error must name the file.
fn inspect_fails(bytes: &[u8]) -> String {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.gguf");
    std::fs::write(&p, bytes).unwrap();
    let e = fails(&["inspect", p.to_str().unwrap()]);
    assert!(e.contains(p.to_str().unwrap()), "names the file: {e}");
    e
}

/// Byte offsets of the fields of the file [`good`] makes.
struct Layout {
    bytes: Vec<u8>,
    /// (field, offset) in file order.
    fields: Vec<(&'static str, usize)>,
}

impl Layout {
    fn at(&self, field: &str) -> usize {
        self.fields
            .iter()
            .find(|(f, _)| *f == field)
            .unwrap_or_else(|| panic!("no field {field}"))
            .1
    }
    fn with(&self, field: &str, value: &[u8]) -> Vec<u8> {
        let mut b = self.bytes.clone();
        let at = self.at(field);
        b[at..at + value.len()].copy_from_slice(value);
        b
    }
}

/// A valid file made by gq's writer: two keys (a string and a u32 array) and two tensors
/// (F32 [8, 2] and Q8_0 [32]), with the offset of every header field.
fn good() -> Layout {
    let mut meta = Metadata::new();
    meta.set("general.name", MetaValue::Str("tiny".into()));
    meta.set(
        "x.list",
        MetaValue::Array(gq::gguf::MetaArray::U32(vec![1, 2, 3])),
    );
    let mut tensors = vec![
        PlannedTensor {
            name: "a.weight".into(),
            dims: vec![8, 2],
            ty: GgmlType::F32,
            offset: 0,
        },
        PlannedTensor {
            name: "b.weight".into(),
            dims: vec![32],
            ty: GgmlType::Q8_0,
            offset: 0,
        },
    ];
    layout_tensors(&mut tensors, 32);
    let mut w = GgufWriter::new(Vec::new(), &meta, tensors.clone()).unwrap();
    for t in &tensors {
        w.write_tensor_data(&vec![0x11; t.n_bytes() as usize])
            .unwrap();
    }
    let bytes = w.finish().unwrap();
    // magic 0, version 4, n_tensors 8, n_kv 16; key 0 at 24.
    let mut f = vec![
        ("magic", 0),
        ("version", 4),
        ("n_tensors", 8),
        ("n_kv", 16),
        ("key0.len", 24),
        ("key0", 32),
    ];
    let mut p = 32 + "general.name".len();
    f.push(("key0.type", p));
    f.push(("key0.value.len", p + 4));
    f.push(("key0.value", p + 12));
    p += 12 + 4;
    f.push(("key1.len", p));
    p += 8 + "x.list".len();
    f.push(("key1.type", p));
    f.push(("key1.elem_type", p + 4));
    f.push(("key1.count", p + 8));
    f.push(("key1.values", p + 16));
    p += 16 + 12;
    for (i, t) in tensors.iter().enumerate() {
        let tag = |s: &str| -> &'static str { Box::leak(format!("t{i}.{s}").into_boxed_str()) };
        f.push((tag("name.len"), p));
        f.push((tag("name"), p + 8));
        p += 8 + t.name.len();
        f.push((tag("n_dims"), p));
        p += 4;
        for j in 0..t.dims.len() {
            f.push((tag(&format!("dims{j}")), p + 8 * j));
        }
        p += 8 * t.dims.len();
        f.push((tag("type"), p));
        f.push((tag("offset"), p + 4));
        p += 12;
    }
    f.push(("padding", p));
    let data_start = p.div_ceil(32) * 32;
    f.push(("data", data_start));
    f.push(("t1.data", data_start + 64));
    let l = Layout { bytes, fields: f };
    // The layout is right: the file reads, and the fields hold what was written.
    let g = GgufFile::from_bytes("good", l.bytes.clone()).unwrap();
    assert_eq!(g.data_start as usize, data_start);
    assert_eq!(&l.bytes[l.at("key0")..l.at("key0") + 12], b"general.name");
    assert_eq!(&l.bytes[l.at("t1.name")..l.at("t1.name") + 8], b"b.weight");
    assert_eq!(l.bytes[l.at("t1.type")], GgmlType::Q8_0.id() as u8);
    l
}

#[test]
fn the_good_file_reads() {
    let l = good();
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("good.gguf");
    std::fs::write(&p, &l.bytes).unwrap();
    gq_ok(&["inspect", p.to_str().unwrap()]);
}

#[test]
fn bad_magic_and_versions() {
    let l = good();
    let e = inspect_fails(&l.with("magic", b"GGUG"));
    assert!(e.contains("not a GGUF file (bad magic)"), "{e}");
    for v in [0u32, 1, 4, u32::MAX] {
        let e = inspect_fails(&l.with("version", &v.to_le_bytes()));
        assert!(e.contains(&format!("unsupported GGUF version {v}")), "{e}");
    }
    let e = inspect_fails(&l.with("version", &3u32.to_be_bytes()));
    assert!(e.contains("big-endian"), "{e}");
}

#[test]
fn absurd_counts() {
    let l = good();
    for (field, v) in [
        ("n_tensors", u64::MAX),
        ("n_tensors", 1 << 40),
        ("n_kv", u64::MAX),
        ("n_kv", 1 << 33),
    ] {
        let e = inspect_fails(&l.with(field, &v.to_le_bytes()));
        assert!(e.contains("cannot fit"), "{field}={v}: {e}");
    }
    // A count a little too large runs out of bytes, with the entry named (entry 2 then reads the
    // first tensor info as a key/value, so the reader may stop there or at tensor info 0).
    let e = inspect_fails(&l.with("n_kv", &3u64.to_le_bytes()));
    assert!(
        e.contains("metadata entry 2") || e.contains("tensor info 0"),
        "{e}"
    );
    let e = inspect_fails(&l.with("n_tensors", &3u64.to_le_bytes()));
    assert!(e.contains("tensor info 2") || e.contains("tensor "), "{e}");
}

#[test]
fn string_and_array_lengths() {
    let l = good();
    for v in [u64::MAX, 1 << 62, 100_000] {
        let e = inspect_fails(&l.with("key0.len", &v.to_le_bytes()));
        assert!(
            e.contains("metadata entry 0: key: length") && e.contains("past the end"),
            "{e}"
        );
        let e = inspect_fails(&l.with("key0.value.len", &v.to_le_bytes()));
        assert!(
            e.contains("metadata key general.name: value: length"),
            "{e}"
        );
        let e = inspect_fails(&l.with("key1.count", &v.to_le_bytes()));
        assert!(
            e.contains("metadata key x.list: value: array length"),
            "{e}"
        );
        let e = inspect_fails(&l.with("t0.name.len", &v.to_le_bytes()));
        assert!(e.contains("tensor info 0: name: length"), "{e}");
    }
    let e = inspect_fails(&l.with("key0", b"\xff"));
    assert!(e.contains("not UTF-8"), "{e}");
}

#[test]
fn unknown_types() {
    let l = good();
    let e = inspect_fails(&l.with("key0.type", &13u32.to_le_bytes()));
    assert!(
        e.contains("metadata key general.name: value: unknown value type 13"),
        "{e}"
    );
    let e = inspect_fails(&l.with("key1.elem_type", &9u32.to_le_bytes()));
    assert!(e.contains("nested arrays"), "{e}");
    let e = inspect_fails(&l.with("key1.elem_type", &77u32.to_le_bytes()));
    assert!(e.contains("unknown array element type 77"), "{e}");
    for id in [4u32, 31, 36, 1000] {
        let e = inspect_fails(&l.with("t1.type", &id.to_le_bytes()));
        assert!(
            e.contains(&format!("tensor b.weight: type: unknown ggml type id {id}")),
            "{e}"
        );
    }
}

#[test]
fn dims() {
    let l = good();
    for nd in [0u32, 5, u32::MAX] {
        let e = inspect_fails(&l.with("t0.n_dims", &nd.to_le_bytes()));
        assert!(e.contains(&format!("tensor a.weight: n_dims: {nd}")), "{e}");
    }
    // The product of dims overflows u64.
    let e = inspect_fails(&l.with("t0.dims1", &(1u64 << 62).to_le_bytes()));
    assert!(
        e.contains("tensor a.weight: dims") && e.contains("overflows"),
        "{e}"
    );
    let e = inspect_fails(&l.with("t0.dims0", &(1u64 << 61).to_le_bytes()));
    assert!(
        e.contains("tensor a.weight: dims") && e.contains("overflows"),
        "{e}"
    );
    // Negative as int64 (ggml's type).
    let e = inspect_fails(&l.with("t0.dims0", &(-8i64).to_le_bytes()));
    assert!(e.contains("dims[0]") && e.contains("negative"), "{e}");
    // A row that is not whole blocks.
    let e = inspect_fails(&l.with("t1.dims0", &33u64.to_le_bytes()));
    assert!(
        e.contains("tensor b.weight: dims[0]: row of 33 is not a multiple of Q8_0's block of 32"),
        "{e}"
    );
    // Bigger than the file.
    let e = inspect_fails(&l.with("t0.dims1", &1000u64.to_le_bytes()));
    assert!(
        e.contains("tensor a.weight: offset") && e.contains("past the end"),
        "{e}"
    );
}

#[test]
fn offsets() {
    let l = good();
    // offset + size wraps around u64.
    let e = inspect_fails(&l.with("t1.offset", &(u64::MAX - 31).to_le_bytes()));
    assert!(
        e.contains("tensor b.weight: offset") && e.contains("overflows"),
        "{e}"
    );
    let e = inspect_fails(&l.with("t1.offset", &(1u64 << 63).to_le_bytes()));
    assert!(e.contains("tensor b.weight: offset"), "{e}");
    // Misaligned.
    let e = inspect_fails(&l.with("t1.offset", &40u64.to_le_bytes()));
    assert!(
        e.contains("tensor b.weight: offset: 40 is not aligned to 32"),
        "{e}"
    );
    // Overlapping: b starts inside a.
    let e = inspect_fails(&l.with("t1.offset", &32u64.to_le_bytes()));
    assert!(
        e.contains("tensor b.weight: offset") && e.contains("overlaps tensor a.weight"),
        "{e}"
    );
}

#[test]
fn duplicates() {
    let l = good();
    // Rename b.weight to a.weight (same length).
    let e = inspect_fails(&l.with("t1.name", b"a.weight"));
    assert!(e.contains("tensor a.weight: appears twice"), "{e}");
    // Rename x.list's key to general.name would change lengths; build one with two equal keys.
    let mut b = l.bytes[..l.at("key1.len")].to_vec();
    b[16..24].copy_from_slice(&2u64.to_le_bytes());
    b.extend_from_slice(&l.bytes[l.at("key0.len")..l.at("key1.len")]);
    b.extend_from_slice(&l.bytes[l.at("t0.name.len")..]);
    let e = inspect_fails(&b);
    assert!(
        e.contains("metadata key general.name: appears twice"),
        "{e}"
    );
}

#[test]
fn alignment_key() {
    let mut meta = Metadata::new();
    meta.set("general.alignment", MetaValue::U32(48));
    // The writer refuses it too; write the header by hand: no tensors, one key.
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&17u64.to_le_bytes());
    b.extend_from_slice(b"general.alignment");
    b.extend_from_slice(&4u32.to_le_bytes());
    b.extend_from_slice(&48u32.to_le_bytes());
    let e = inspect_fails(&b);
    assert!(
        e.contains("general.alignment: 48 is not a power of two"),
        "{e}"
    );
    assert!(GgufWriter::new(Vec::new(), &meta, vec![]).is_err());
}

#[test]
fn truncation_at_every_field() {
    let l = good();
    // Through the CLI: a cut inside each field.
    for (field, at) in &l.fields {
        let cut = at + 1;
        let e = inspect_fails(&l.bytes[..cut.min(l.bytes.len() - 1)]);
        assert!(
            e.contains("truncated")
                || e.contains("past the end")
                || e.contains("not a GGUF file")
                || e.contains("cannot fit"),
            "cut in {field} at {cut}: {e}"
        );
    }
    // In-process: every length short of the last tensor's end (the padding after it is
    // optional).
    for n in 0..l.at("t1.data") + 34 {
        let e = GgufFile::from_bytes("cut.gguf", l.bytes[..n].to_vec())
            .err()
            .unwrap_or_else(|| panic!("a file cut to {n} bytes was accepted"));
        assert!(e.to_string().starts_with("cut.gguf: "), "{e}");
    }
}

#[test]
fn empty_file_directory_and_symlink_loop() {
    let d = tempfile::tempdir().unwrap();
    let empty = d.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    let e = fails(&["inspect", empty.to_str().unwrap()]);
    assert!(e.contains("empty.gguf") && e.contains("empty"), "{e}");
    let a = d.path().join("loop-a.gguf");
    let b = d.path().join("loop-b.gguf");
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let e = fails(&["inspect", a.to_str().unwrap()]);
    assert!(
        e.contains("loop-a.gguf") && e.contains("symbolic links"),
        "{e}"
    );
    // The runner, on a directory that is not a checkpoint and on the loop.
    let e = fails(&["logits", d.path().to_str().unwrap(), "--ids", "1"]);
    assert!(e.contains("config.json"), "{e}");
    let e = fails(&["logits", a.to_str().unwrap(), "--ids", "1"]);
    assert!(e.contains("loop-a.gguf"), "{e}");
}

/// A copy of a fixture GGUF with one tensor offset changed (found by name).
fn with_offset(src: &Path, tensor: &str, f: impl Fn(u64) -> u64) -> (tempfile::TempDir, PathBuf) {
    let g = GgufFile::open(src).unwrap();
    let mut b = std::fs::read(src).unwrap();
    // The tensor info: name, n_dims, dims, type, offset.
    let needle = [&(tensor.len() as u64).to_le_bytes()[..], tensor.as_bytes()].concat();
    let at = b
        .windows(needle.len())
        .position(|w| w == &needle[..])
        .unwrap();
    let t = g.tensor(tensor).unwrap();
    let off_at = at + needle.len() + 4 + 8 * t.dims.len() + 4;
    assert_eq!(
        u64::from_le_bytes(b[off_at..off_at + 8].try_into().unwrap()),
        t.offset
    );
    b[off_at..off_at + 8].copy_from_slice(&f(t.offset).to_le_bytes());
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("model.gguf");
    std::fs::write(&p, b).unwrap();
    (d, p)
}

#[test]
fn runner_tokenizer_and_imatrix_refuse_the_same_files() {
    let src = fixture("moe.ref").join("convert-q8_0.gguf");
    // Overlapping tensors in a real model file: logits, tokenize and --imatrix all refuse it.
    let (_d, p) = with_offset(&src, "blk.0.ffn_up.weight", |_| 0);
    let ps = p.to_str().unwrap();
    for args in [
        vec!["logits", ps, "--ids", "2,3"],
        vec!["tokenize", ps, "-p", "hello"],
        vec!["inspect", ps, "--json"],
    ] {
        let e = fails(&args);
        assert!(
            e.contains(ps) && e.contains("blk.0.ffn_up.weight") && e.contains("overlaps"),
            "{args:?}: {e}"
        );
    }
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("out.gguf");
    let e = fails(&[
        "quantize",
        fixture("moe").to_str().unwrap(),
        "-o",
        target.to_str().unwrap(),
        "--type",
        "q4_k_m",
        "--imatrix",
        ps,
    ]);
    assert!(e.contains(ps) && e.contains("overlaps"), "{e}");
    assert!(!target.exists());
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

/// Fuzz finding (2026-11-29, `gguf` target): a GGUF whose `gemma4.attention.sliding_window` is 0
/// loaded, and its sliding-window layers then saw no key at all and panicked in the attention.
/// The runner now refuses it while reading the hyper-parameters (config.json already had to
/// give a positive window). Reproducer: fuzz/regressions/gguf/.
#[test]
fn zero_sliding_window_is_refused() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions/gguf/sliding-window-zero-attention-chunk-panic");
    let err = fails(&["logits", f.to_str().unwrap(), "--ids", "0,1"]);
    assert!(err.contains("sliding-window-zero"), "names the file: {err}");
    assert!(
        err.contains("gemma4.attention.sliding_window is 0"),
        "{err}"
    );
}
