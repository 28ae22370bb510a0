//! gq's Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 quantizers against gguf-py's numpy versions of ggml's
//! reference quantizers (an independent implementation), byte for byte, on pseudo-random rows
//! with edge-case blocks. (gq's dequantizers are checked against gguf-py's in
//! tests/quant_vs_llama_quantize.rs and tests/kernels_vs_gguf_py.rs.)

mod common;
use common::*;

use gq::gguf::GgmlType;
use gq_kernels::format as format_for;
use std::path::Path;

/// splitmix64 values in [-1, 1).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Rows of 256 with one 32-block pattern each: noise at several magnitudes, zeros, one huge
/// value, all negative, constants, and values on half steps of the scale (rounding ties).
fn edge_rows() -> Vec<f32> {
    let base = noise(512 * 256, 7);
    let mut x = Vec::with_capacity(base.len());
    for (b, blk) in base.chunks_exact(32).enumerate() {
        let s = 10f32.powi(b as i32 % 7 - 4);
        for (j, &v) in blk.iter().enumerate() {
            x.push(match b % 9 {
                0 | 1 => v * s,
                2 => 0.0,
                3 => {
                    if j == b % 32 {
                        3.0e4 * v.signum()
                    } else {
                        v * 1e-3
                    }
                }
                4 => -v.abs() * s - s,
                5 => 0.37 * s,
                6 => ((v * 16.0).round() / 2.0) * s,
                7 => v * 1e-20,
                _ => v.abs() * s,
            });
        }
    }
    x
}

#[test]
fn legacy_quantizers_match_gguf_py() {
    let tmp = tempfile::tempdir().unwrap();
    let x = edge_rows();
    let input = tmp.path().join("rows.f32");
    std::fs::write(
        &input,
        x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
    ] {
        let out = tmp.path().join(format!("{ty}.bin"));
        let o = python(
            "quant_ref.py",
            &[
                Path::new("quantize"),
                Path::new(ty.name()),
                Path::new("256"),
                &input,
                &out,
            ],
            &[],
        );
        assert_py_ok(&o, "quant_ref.py quantize");
        let want = std::fs::read(&out).unwrap();
        let row_bytes = ty.row_bytes(256).unwrap();
        let mut ours = vec![0u8; x.len() / 256 * row_bytes];
        for (xr, yr) in x.chunks_exact(256).zip(ours.chunks_exact_mut(row_bytes)) {
            format_for(ty).unwrap().quantize_row(xr, yr);
        }
        assert_eq!(ours.len(), want.len(), "{ty}: length");
        let bb = ty.block_bytes();
        if let Some(b) =
            (0..want.len() / bb).find(|&b| ours[b * bb..(b + 1) * bb] != want[b * bb..(b + 1) * bb])
        {
            panic!(
                "{ty}: block {b} differs\n  gq:      {:02x?}\n  gguf-py: {:02x?}",
                &ours[b * bb..(b + 1) * bb],
                &want[b * bb..(b + 1) * bb]
            );
        }
        eprintln!("{ty}: {} blocks byte-identical to gguf-py", want.len() / bb);
    }
}
