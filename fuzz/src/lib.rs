//! Helpers shared by gq's fuzz targets (docs/robustness.md lists the targets and how to run them).

use gq_kernels::{kernels_for, GgmlType, Isa, Kernels};

/// Separates the files of a multi-file input (index and shards, tokenizer.json and
/// tokenizer_config.json). Bytes that are not UTF-8, so JSON never contains them by accident.
pub const SEP: &[u8] = b"\xff\xfeGQFILE\xfe\xff";

/// Splits `data` at every [`SEP`].
///
/// Scans for SEP's first byte and compares the rest only there: comparing a slice at every
/// position calls `bcmp`, which libFuzzer intercepts (to learn the compared bytes), and that
/// interception was half of the safetensors and tokenizer_json targets' time.
pub fn split_files(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut from = 0;
    while let Some(j) = rest[from..].iter().position(|&b| b == SEP[0]) {
        let i = from + j;
        if rest.len() - i >= SEP.len() && rest[i + 1..i + SEP.len()] == SEP[1..] {
            out.push(&rest[..i]);
            rest = &rest[i + SEP.len()..];
            from = 0;
        } else {
            from = i + 1;
        }
    }
    out.push(rest);
    out
}

/// Joins files with [`SEP`] (for making seeds).
pub fn join_files(files: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(SEP);
        }
        out.extend_from_slice(f);
    }
    out
}

/// The types gq has an implementation (dequantizer) for.
pub fn implemented() -> Vec<GgmlType> {
    GgmlType::ALL
        .into_iter()
        .filter(|&t| gq_kernels::format(t).is_some())
        .collect()
}

/// The scalar table.
pub fn scalar() -> &'static Kernels {
    kernels_for(Isa::Scalar).expect("scalar table")
}

/// Every SIMD table this CPU runs.
pub fn simd_tables() -> Vec<&'static Kernels> {
    Isa::ALL
        .into_iter()
        .filter(|&i| i != Isa::Scalar)
        .filter_map(kernels_for)
        .collect()
}

/// Offsets of the f16 scale fields and of the (possibly negative) f16 min fields of a block,
/// as kernels/tests/simd_vs_scalar.rs uses them.
pub fn f16_fields(ty: GgmlType) -> (&'static [usize], &'static [usize]) {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => (&[0], &[]),
        GgmlType::Q4_1 | GgmlType::Q5_1 => (&[0], &[2]),
        GgmlType::Q2_K => (&[80], &[82]),
        GgmlType::Q3_K => (&[108], &[]),
        GgmlType::Q4_K | GgmlType::Q5_K => (&[0], &[2]),
        GgmlType::Q6_K => (&[208], &[]),
        _ => (&[], &[]),
    }
}

/// The bytes of an f16.
pub fn f16b(x: f32) -> [u8; 2] {
    gq_kernels::num::f16_numpy(x)
}

/// Bit-equality with every NaN equal to every other NaN.
pub fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// A deterministic byte source over the fuzz input (zeros once it runs out).
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    /// The next `n` bytes (fewer, zero-padded, at the end).
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        let k = n.min(self.0.len());
        let mut v = self.0[..k].to_vec();
        self.0 = &self.0[k..];
        v.resize(n, 0);
        v
    }
    /// A value of `v` chosen by the next byte.
    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.u8() as usize % v.len()]
    }
    /// Bytes left.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether no bytes are left.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast split gives what the obvious definition gives, separators at the ends, back to
    /// back, overlapping with their own first byte, and cut short included.
    #[test]
    fn split_files_matches_the_plain_definition() {
        fn plain(data: &[u8]) -> Vec<&[u8]> {
            let mut out = Vec::new();
            let mut rest = data;
            while let Some(i) = rest.windows(SEP.len()).position(|w| w == SEP) {
                out.push(&rest[..i]);
                rest = &rest[i + SEP.len()..];
            }
            out.push(rest);
            out
        }
        let cut = &SEP[..SEP.len() - 1];
        let pieces: [&[u8]; 6] = [b"", b"a", b"\xff", b"\xff\xff", cut, SEP];
        let mut n = 0;
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for d in pieces {
                        let data = [a, b, c, d].concat();
                        assert_eq!(split_files(&data), plain(&data), "{data:?}");
                        n += 1;
                    }
                }
            }
        }
        assert_eq!(n, 6 * 6 * 6 * 6);
        assert_eq!(
            split_files(&join_files(&[b"x", b"", b"yz"])),
            vec![&b"x"[..], b"", b"yz"]
        );
    }
}
