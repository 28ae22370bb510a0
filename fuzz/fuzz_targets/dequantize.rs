//! Every dequantizer on arbitrary bytes: each SIMD table this CPU runs must give the scalar
//! reference's f32s bit for bit (any NaN matches any NaN), and the format's own
//! `Format::dequantize_row` must agree with the dispatch table's.
//!
//! Input: one byte choosing the type, then the blocks (at most 64).
#![no_main]
use gq_fuzz::{implemented, same, scalar, simd_tables};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let types = implemented();
    let ty = types[sel as usize % types.len()];
    let bb = ty.block_bytes();
    let nb = (bytes.len() / bb).min(64);
    if nb == 0 {
        return;
    }
    let w = &bytes[..nb * bb];
    let n = nb * ty.block_size();
    let mut want = vec![0f32; n];
    scalar().dequantize_row(ty, w, &mut want);
    let mut via_format = vec![1f32; n];
    gq_kernels::format(ty)
        .expect("implemented")
        .dequantize_row(w, &mut via_format);
    for i in 0..n {
        assert!(same(via_format[i], want[i]), "{ty} element {i}");
    }
    for k in simd_tables() {
        let mut got = vec![2f32; n];
        k.dequantize_row(ty, w, &mut got);
        for i in 0..n {
            assert!(
                same(got[i], want[i]),
                "{} {ty} n={n} element {i}: {} ({:#x}) vs scalar {} ({:#x})",
                k.isa(),
                got[i],
                got[i].to_bits(),
                want[i],
                want[i].to_bits()
            );
        }
    }
});
