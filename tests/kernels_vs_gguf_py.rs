//! gq's dequantizers against gguf-py's numpy `gguf.quants.dequantize`, bit for bit, for the
//! types llama-quantize writes that tests/quant_vs_llama_quantize.rs does not already cover
//! (F32, F16, BF16, Q8_0; the legacy and k-quant types are dequantized there, on the same
//! llama-quantize outputs its quantizers are compared with): llama-quantize (`--pure`) turns the
//! dense fixture into each type, tests/py/gguf_dequant.py dumps gguf-py's floats, and the scalar
//! reference and every SIMD table this CPU runs must give the same bits. Also checks the
//! activation quantizer for Q8_0 on every ISA against the Q8_0 format's reference quantizer.

mod common;
use common::*;

use gq_kernels::{kernels_for, GgmlType, Isa};

#[path = "../kernels/tests/common/isas.rs"]
mod isa_check;

/// llama-quantize type names and the tensor type they give with `--pure`.
const TYPES: [(&str, GgmlType); 4] = [
    ("F32", GgmlType::F32),
    ("F16", GgmlType::F16),
    ("BF16", GgmlType::BF16),
    ("Q8_0", GgmlType::Q8_0),
];

#[test]
fn dequantizers_match_gguf_py_for_float_types_and_q8_0() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("dense.ref").join("convert-bf16.gguf");
    let mut exercised = Vec::new();
    for (name, ty) in TYPES {
        let out = tmp.path().join(format!("{name}.gguf"));
        llama_quantize(&src, &out, name, None);
        let (isas, n) = dequant_vs_gguf_py(&out, &tmp.path().join(name), &[ty]);
        assert!(n > 0, "{name}: llama-quantize wrote no {ty} tensor");
        exercised.extend(isas);
        std::fs::remove_file(&out).unwrap();
    }
    isa_check::check_exercised("kernels_vs_gguf_py", &exercised);
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
