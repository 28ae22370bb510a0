//! gq-kernels' dequantizers against gguf-py's numpy `gguf.quants.dequantize`, bit for bit, for
//! every llama.cpp type gq-kernels reads: llama-quantize (`--pure`) turns the dense fixture into
//! each type, tests/py/kernels_dequant.py dumps gguf-py's floats, and the scalar reference and
//! every SIMD table this CPU runs must give the same bits. Also checks the activation quantizer
//! for Q8_0 against gq's own Q8_0 block format (byte-identical to llama.cpp).

mod common;
use common::*;

use gq::gguf::GgufFile;
use gq_kernels::{kernels_for, GgmlType, Isa};
use std::path::Path;

/// llama-quantize type names and the tensor type they give with `--pure`.
const TYPES: [(&str, GgmlType); 13] = [
    ("F32", GgmlType::F32),
    ("F16", GgmlType::F16),
    ("BF16", GgmlType::BF16),
    ("Q4_0", GgmlType::Q4_0),
    ("Q4_1", GgmlType::Q4_1),
    ("Q5_0", GgmlType::Q5_0),
    ("Q5_1", GgmlType::Q5_1),
    ("Q8_0", GgmlType::Q8_0),
    ("Q2_K", GgmlType::Q2_K),
    ("Q3_K_S", GgmlType::Q3_K),
    ("Q4_K_S", GgmlType::Q4_K),
    ("Q5_K_S", GgmlType::Q5_K),
    ("Q6_K", GgmlType::Q6_K),
];

/// Compares every tensor of `file`; returns how many tensors of type `want` were seen.
fn compare(file: &Path, out_dir: &Path, want: GgmlType) -> usize {
    let o = python("kernels_dequant.py", &[file, out_dir], &[]);
    assert_py_ok(&o, "kernels_dequant.py");
    let g = GgufFile::open(file).unwrap();
    let isas: Vec<_> = Isa::ALL.into_iter().filter_map(kernels_for).collect();
    let mut seen = 0;
    for t in &g.tensors {
        let ty = GgmlType::from_id(t.ty.id()).expect("known type");
        seen += (ty == want) as usize;
        let reference = read_f32s(&out_dir.join(format!("{}.f32", t.name)));
        let n = t.dims.iter().product::<u64>() as usize;
        assert_eq!(reference.len(), n, "{} {}: gguf-py length", ty, t.name);
        for k in &isas {
            let mut ours = vec![f32::NAN; n];
            k.dequantize_row(ty, g.tensor_data(t), &mut ours);
            if let Some(i) = (0..n).find(|&i| ours[i].to_bits() != reference[i].to_bits()) {
                panic!(
                    "{} {ty} {}: element {i}: gq-kernels {} vs gguf-py {}",
                    k.isa(),
                    t.name,
                    ours[i],
                    reference[i]
                );
            }
        }
    }
    seen
}

#[test]
fn dequantizers_match_gguf_py_for_every_type() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("dense.ref").join("convert-bf16.gguf");
    for (name, ty) in TYPES {
        let out = tmp.path().join(format!("{name}.gguf"));
        llama_quantize(&src, &out, name, None);
        let n = compare(&out, &tmp.path().join(name), ty);
        assert!(n > 0, "{name}: llama-quantize wrote no {ty} tensor");
        std::fs::remove_file(&out).unwrap();
    }
}

#[test]
fn q8_0_activation_quantizer_matches_gq_format() {
    let mut x = vec![0f32; 32 * 40];
    let mut s = 0x1234_5678u32;
    for (i, v) in x.iter_mut().enumerate() {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *v = ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * (1 + i % 7) as f32;
        if i % 97 == 0 {
            *v = (i % 255) as f32 * 0.5 - 63.5; // half steps
        }
    }
    x[64..96].fill(0.0);
    let mut want = vec![0u8; GgmlType::Q8_0.row_bytes(x.len()).unwrap()];
    gq_kernels::format(GgmlType::Q8_0)
        .unwrap()
        .quantize_row(&x, &mut want);
    for k in Isa::ALL.into_iter().filter_map(kernels_for) {
        let mut got = vec![0u8; want.len()];
        k.quantize_row(GgmlType::Q8_0, &x, &mut got);
        assert_eq!(got, want, "{}: Q8_0 activation quantizer", k.isa());
    }
}
