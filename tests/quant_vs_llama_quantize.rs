//! gq's block quantizers produce the same bytes as llama.cpp's `llama-quantize --pure` for every
//! legacy and k-quant type, with and without an importance matrix: on the dense fixture's BF16
//! weights (converter output, all rows multiples of 256) and on adversarial F32 data written by
//! gguf-py (zero groups, lone huge values, all-negative groups, constants, half-step ties,
//! values below ggml's zero threshold, zero rows).
//!
//! With `--pure` llama-quantize gives every 2-D tensor (token_embd included) the requested type
//! and copies the 1-D F32 tensors (norms, rope_freqs, layer_output_scale) unchanged; the test
//! checks that too. The Q3_K_S / Q4_K_S / Q5_K_S file types are plain Q3_K / Q4_K / Q5_K under
//! `--pure`.
//!
//! The same llama-quantize outputs are dequantized with gguf-py (an independent reader) and
//! with gq's dequantizer on the scalar path and every SIMD table this CPU runs, bit for bit.

mod common;
use common::*;

use gq::gguf::{GgmlType, GgufFile};
use gq_kernels::format as format_for;
use std::collections::HashMap;
use std::path::Path;

#[path = "../kernels/tests/common/isas.rs"]
mod isa_check;

const TYPES: [(&str, GgmlType); 9] = PURE_TYPES;

/// The dense fixture's 2-D tensors: token_embd and 7 + 6 block matrices (blk.1 has no attn_v).
/// The stress inputs share its layout.
const DENSE_MATRICES: usize = 14;

fn dense() -> std::path::PathBuf {
    fixture("dense.ref").join("convert-bf16.gguf")
}

/// Quantizes `input` with llama-quantize to every type and compares each matrix with gq's
/// quantizer on the same f32 rows, and (with `dequant`) gq's dequantizers on every ISA with
/// gguf-py's on llama-quantize's bytes. Returns one line per type; panics listing every
/// mismatch.
fn check(input: &Path, imatrix: Option<&Path>, dequant: bool) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let src = GgufFile::open(input).unwrap();
    let weights: HashMap<String, Vec<f32>> = imatrix.map(read_legacy_imatrix).unwrap_or_default();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (arg, ty) in TYPES {
        let out = tmp.path().join(format!("{arg}.gguf"));
        llama_quantize(input, &out, arg, imatrix);
        if dequant {
            let (isas, n) = dequant_vs_gguf_py(&out, &tmp.path().join(arg), &[ty]);
            assert_eq!(n, DENSE_MATRICES, "{arg}: matrices dequantized");
            isa_check::check_exercised("quant_vs_llama_quantize dequant", &isas);
        }
        let q = GgufFile::open(&out).unwrap();
        assert_eq!(q.tensors.len(), src.tensors.len(), "{arg}: tensor count");
        let fmt = format_for(ty).unwrap();
        let (mut matrices, mut rows, mut weighted) = (0, 0, 0);
        for t in &src.tensors {
            let o = q
                .tensor(&t.name)
                .unwrap_or_else(|| panic!("{arg}: {} missing", t.name));
            assert_eq!(o.dims, t.dims, "{arg}: {} shape", t.name);
            if t.dims.len() < 2 {
                assert_eq!(
                    (o.ty, t.ty),
                    (GgmlType::F32, GgmlType::F32),
                    "{arg}: {} type",
                    t.name
                );
                assert_eq!(
                    q.tensor_data(o),
                    src.tensor_data(t),
                    "{arg}: {} not copied",
                    t.name
                );
                continue;
            }
            assert_eq!(o.ty, ty, "{arg}: {} type", t.name);
            let n = t.dims[0] as usize;
            let mut x = vec![0f32; t.dims.iter().product::<u64>() as usize];
            format_for(t.ty)
                .unwrap()
                .dequantize_row(src.tensor_data(t), &mut x);
            let imat = weights.get(&t.name).map(|w| &w[..]);
            if imatrix.is_some() {
                assert!(imat.is_some(), "{}: no importance row", t.name);
                weighted += 1;
            }
            let want = q.tensor_data(o);
            let row_bytes = ty.row_bytes(n).unwrap();
            let mut ours = vec![0u8; want.len()];
            for (xr, yr) in x.chunks_exact(n).zip(ours.chunks_exact_mut(row_bytes)) {
                fmt.quantize_row_imatrix(xr, imat, yr);
            }
            let bb = ty.block_bytes();
            let bad: Vec<usize> = (0..want.len() / bb)
                .filter(|&b| ours[b * bb..(b + 1) * bb] != want[b * bb..(b + 1) * bb])
                .collect();
            if !bad.is_empty() {
                let b = bad[0];
                failures.push(format!(
                    "{arg} {}: {} of {} blocks differ; first is block {b} (row {}):\n  gq:    {:02x?}\n  llama: {:02x?}",
                    t.name,
                    bad.len(),
                    want.len() / bb,
                    b * bb / row_bytes,
                    &ours[b * bb..(b + 1) * bb],
                    &want[b * bb..(b + 1) * bb],
                ));
            }
            matrices += 1;
            rows += x.len() / n;
        }
        report.push(format!(
            "{arg}: {matrices} tensors, {rows} rows, {weighted} with imatrix"
        ));
        assert_eq!(matrices, DENSE_MATRICES, "{arg}: every matrix is quantized");
    }
    assert!(
        failures.is_empty(),
        "gq differs from llama-quantize:\n{}",
        failures.join("\n")
    );
    report
}

/// Writes adversarial F32 data in the dense fixture's layout (see tests/py/quant_ref.py).
fn stress_input(dir: &Path, seed: &str) -> std::path::PathBuf {
    let p = dir.join(format!("stress-{seed}.gguf"));
    let o = python(
        "quant_ref.py",
        &[Path::new("stress"), &dense(), &p],
        &[seed],
    );
    assert_py_ok(&o, "quant_ref.py stress");
    p
}

/// Writes a legacy imatrix with random weights for every matrix of `input`.
fn imatrix_for(dir: &Path, input: &Path, seed: &str) -> std::path::PathBuf {
    let p = dir.join(format!("imatrix-{seed}.dat"));
    let o = python("quant_ref.py", &[Path::new("imatrix"), input, &p], &[seed]);
    assert_py_ok(&o, "quant_ref.py imatrix");
    p
}

#[test]
fn dense_fixture_matches_llama_quantize() {
    eprintln!("{}", check(&dense(), None, true).join("\n"));
}

#[test]
fn dense_fixture_with_imatrix_matches_llama_quantize() {
    let tmp = tempfile::tempdir().unwrap();
    let im = imatrix_for(tmp.path(), &dense(), "11");
    eprintln!("{}", check(&dense(), Some(&im), true).join("\n"));
}

#[test]
fn stress_data_matches_llama_quantize() {
    let tmp = tempfile::tempdir().unwrap();
    for seed in ["1", "2"] {
        let input = stress_input(tmp.path(), seed);
        eprintln!("{}", check(&input, None, seed == "1").join("\n"));
    }
}

#[test]
fn stress_data_with_imatrix_matches_llama_quantize() {
    let tmp = tempfile::tempdir().unwrap();
    for seed in ["3", "4"] {
        let input = stress_input(tmp.path(), seed);
        let im = imatrix_for(tmp.path(), &input, seed);
        eprintln!("{}", check(&input, Some(&im), seed == "3").join("\n"));
    }
}
