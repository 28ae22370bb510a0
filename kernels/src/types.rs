//! The one table of tensor types: every type id ggml defines (`enum ggml_type` in ggml.h), with
//! its GGUF name, ggml's own name, block size and bytes per block, whether or not gq can write
//! or compute it. The GGUF reader, `gq inspect`, the writer and the kernels all use this table,
//! so any file llama.cpp writes can be opened and described.
//!
//! Whether gq has an implementation of a type is a separate question, answered by
//! [`crate::formats::format`].

use core::fmt;

macro_rules! ggml_types {
    ($( $(#[$doc:meta])* $v:ident = $id:literal, $ggml:literal, $bs:expr, $bytes:expr; )*) => {
        /// A tensor type, as GGUF files store it (`ggml_type`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(non_camel_case_types)]
        pub enum GgmlType {
            $( $(#[$doc])* $v, )*
        }

        impl GgmlType {
            /// Every type, in declaration order (ggml id order).
            pub const ALL: [GgmlType; Self::COUNT] = [$(GgmlType::$v),*];
            /// Number of types (the size of per-type tables).
            pub const COUNT: usize = [$(GgmlType::$v),*].len();

            /// ggml's numeric id, as stored in GGUF tensor infos.
            pub const fn id(self) -> u32 {
                match self { $(GgmlType::$v => $id,)* }
            }

            /// The GGUF / gguf-py name ("Q4_K", "IQ4_XS", "BF16").
            pub const fn name(self) -> &'static str {
                match self { $(GgmlType::$v => stringify!($v),)* }
            }

            /// ggml's `type_name` ("q4_K", "iq4_xs", "bf16"), as ggml's tools print it.
            pub const fn ggml_name(self) -> &'static str {
                match self { $(GgmlType::$v => $ggml,)* }
            }

            /// Elements per block (1 for the plain scalar types).
            pub const fn block_size(self) -> usize {
                match self { $(GgmlType::$v => $bs,)* }
            }

            /// Bytes per block (ggml's `type_size`).
            pub const fn block_bytes(self) -> usize {
                match self { $(GgmlType::$v => $bytes,)* }
            }
        }
    };
}

ggml_types! {
    /// 32-bit float.
    F32 = 0, "f32", 1, 4;
    /// IEEE half.
    F16 = 1, "f16", 1, 2;
    /// 4-bit, one f16 scale per 32.
    Q4_0 = 2, "q4_0", 32, 18;
    /// 4-bit, f16 scale and min per 32.
    Q4_1 = 3, "q4_1", 32, 20;
    /// 5-bit, one f16 scale per 32.
    Q5_0 = 6, "q5_0", 32, 22;
    /// 5-bit, f16 scale and min per 32.
    Q5_1 = 7, "q5_1", 32, 24;
    /// 8-bit, one f16 scale per 32.
    Q8_0 = 8, "q8_0", 32, 34;
    /// 8-bit with the scaled block sum (activation type of Q4_1 / Q5_1).
    Q8_1 = 9, "q8_1", 32, 36;
    /// 2-bit k-quant.
    Q2_K = 10, "q2_K", 256, 84;
    /// 3-bit k-quant.
    Q3_K = 11, "q3_K", 256, 110;
    /// 4-bit k-quant.
    Q4_K = 12, "q4_K", 256, 144;
    /// 5-bit k-quant.
    Q5_K = 13, "q5_K", 256, 176;
    /// 6-bit k-quant.
    Q6_K = 14, "q6_K", 256, 210;
    /// 8-bit k-quant (activation type of the k-quants).
    Q8_K = 15, "q8_K", 256, 292;
    /// 2.06-bit i-quant.
    IQ2_XXS = 16, "iq2_xxs", 256, 66;
    /// 2.31-bit i-quant.
    IQ2_XS = 17, "iq2_xs", 256, 74;
    /// 3.06-bit i-quant.
    IQ3_XXS = 18, "iq3_xxs", 256, 98;
    /// 1.56-bit i-quant.
    IQ1_S = 19, "iq1_s", 256, 50;
    /// 4.5-bit non-linear 32-blocks.
    IQ4_NL = 20, "iq4_nl", 32, 18;
    /// 3.44-bit i-quant.
    IQ3_S = 21, "iq3_s", 256, 110;
    /// 2.56-bit i-quant.
    IQ2_S = 22, "iq2_s", 256, 82;
    /// 4.25-bit non-linear super-blocks.
    IQ4_XS = 23, "iq4_xs", 256, 136;
    /// 8-bit integer.
    I8 = 24, "i8", 1, 1;
    /// 16-bit integer.
    I16 = 25, "i16", 1, 2;
    /// 32-bit integer.
    I32 = 26, "i32", 1, 4;
    /// 64-bit integer.
    I64 = 27, "i64", 1, 8;
    /// 64-bit float.
    F64 = 28, "f64", 1, 8;
    /// 1.75-bit i-quant.
    IQ1_M = 29, "iq1_m", 256, 56;
    /// bfloat16.
    BF16 = 30, "bf16", 1, 2;
    /// Ternary, 1.69 bits.
    TQ1_0 = 34, "tq1_0", 256, 54;
    /// Ternary, 2.06 bits.
    TQ2_0 = 35, "tq2_0", 256, 66;
    /// Microscaling FP4 (E2M1 with an E8M0 scale per 32).
    MXFP4 = 39, "mxfp4", 32, 17;
    /// NVIDIA FP4 (E2M1 with an E4M3 scale per 16, 4 per block).
    NVFP4 = 40, "nvfp4", 64, 36;
    /// 1-bit, f16 scale per 128.
    Q1_0 = 41, "q1_0", 128, 18;
    /// 2-bit, f16 scale per 64.
    Q2_0 = 42, "q2_0", 64, 18;
    /// gq's TurboQuant trellis type, 4.5 bits per weight (MSE codes; docs/turboquant.md).
    TQT4_5 = 4200, "tqt4_5", 32, 18;
    /// gq's TurboQuant trellis type, 3.375 bits per weight (MSE codes).
    TQT3_375 = 4201, "tqt3_375", 64, 27;
    /// gq's TurboQuant trellis type, 2.5 bits per weight (MSE codes).
    TQT2_5 = 4202, "tqt2_5", 32, 10;
    /// gq's TurboQuant trellis type with QJL residual signs, 4.5 bits per weight.
    TQJ4_5 = 4203, "tqj4_5", 32, 18;
    /// gq's TurboQuant trellis type with QJL residual signs, 3.375 bits per weight.
    TQJ3_375 = 4204, "tqj3_375", 64, 27;
    /// gq's TurboQuant trellis type with QJL residual signs, 2.5 bits per weight.
    TQJ2_5 = 4205, "tqj2_5", 32, 10;
    /// gq's TurboQuant PolarQuant type, 4.5 bits per weight (experimental).
    TQP4_5 = 4210, "tqp4_5", 256, 144;
    /// gq's TurboQuant PolarQuant type, 3.4375 bits per weight (experimental).
    TQP3_4375 = 4211, "tqp3_4375", 256, 110;
    /// gq's TurboQuant PolarQuant type, 2.5 bits per weight (experimental).
    TQP2_5 = 4212, "tqp2_5", 256, 80;
    /// The activation of the TurboQuant types: the rotated activation, int8 per 32 with an
    /// f32 scale (de-interleaved per 128; never stored in files).
    TQA8 = 4250, "tqa8", 32, 36;
}

impl GgmlType {
    /// The weight types gq reads and computes with (dequantize, dot, GEMV): everything the
    /// kernels have a dot product for.
    pub const WEIGHTS: [GgmlType; 13] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];

    /// gq's TurboQuant weight types (docs/turboquant.md): they load only in gq.
    pub const TURBOQUANT: [GgmlType; 9] = [
        GgmlType::TQT4_5,
        GgmlType::TQT3_375,
        GgmlType::TQT2_5,
        GgmlType::TQJ4_5,
        GgmlType::TQJ3_375,
        GgmlType::TQJ2_5,
        GgmlType::TQP4_5,
        GgmlType::TQP3_4375,
        GgmlType::TQP2_5,
    ];

    /// Whether this is one of gq's TurboQuant weight types ([`GgmlType::TURBOQUANT`]).
    pub const fn is_turboquant(self) -> bool {
        matches!(
            self,
            GgmlType::TQT4_5
                | GgmlType::TQT3_375
                | GgmlType::TQT2_5
                | GgmlType::TQJ4_5
                | GgmlType::TQJ3_375
                | GgmlType::TQJ2_5
                | GgmlType::TQP4_5
                | GgmlType::TQP3_4375
                | GgmlType::TQP2_5
        )
    }

    /// Whether this is a TurboQuant type with QJL residual signs (`TQJ*`).
    pub const fn is_tq_qjl(self) -> bool {
        matches!(
            self,
            GgmlType::TQJ4_5 | GgmlType::TQJ3_375 | GgmlType::TQJ2_5
        )
    }

    /// Whether this is a TurboQuant PolarQuant type (`TQP*`).
    pub const fn is_tq_polar(self) -> bool {
        matches!(
            self,
            GgmlType::TQP4_5 | GgmlType::TQP3_4375 | GgmlType::TQP2_5
        )
    }

    /// Whether llama.cpp / ggml know this type id (gq's own types are the TurboQuant ones and
    /// their activation type).
    pub const fn is_ggml(self) -> bool {
        !self.is_turboquant() && !matches!(self, GgmlType::TQA8)
    }

    /// The type with ggml id `id`, or `None` for ids ggml does not define (or has retired, such
    /// as 4, 5 and 31–33).
    pub fn from_id(id: u32) -> Option<GgmlType> {
        Self::ALL.iter().copied().find(|t| t.id() == id)
    }

    /// Parses a GGUF or ggml name case-insensitively ("q6_k", "BF16", "IQ4_XS").
    pub fn parse(s: &str) -> Option<GgmlType> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Position in per-type tables (declaration order, `< COUNT`).
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Bytes of a row of `n` elements, or `None` when `n` is not a multiple of the block size
    /// or the size overflows. Safe on any shape read from a file.
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        let bs = self.block_size();
        if !n.is_multiple_of(bs) {
            return None;
        }
        (n / bs).checked_mul(self.block_bytes())
    }

    /// Bytes of `n` elements as whole rows of `row` elements (a tensor of `n / row` rows), or
    /// `None` when `row` is 0 or not a multiple of the block size, `n` is not whole rows, or
    /// the size overflows.
    pub fn tensor_bytes(self, row: usize, n: usize) -> Option<usize> {
        if row == 0 || !n.is_multiple_of(row) {
            return None;
        }
        self.row_bytes(row)?.checked_mul(n / row)
    }

    /// Whether this is a plain float type (F32, F16, BF16).
    pub const fn is_float(self) -> bool {
        matches!(self, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
    }

    /// Whether the type is block-quantized (ggml's `ggml_is_quantized`).
    pub const fn is_quantized(self) -> bool {
        !matches!(
            self,
            GgmlType::F32
                | GgmlType::F16
                | GgmlType::BF16
                | GgmlType::F64
                | GgmlType::I8
                | GgmlType::I16
                | GgmlType::I32
                | GgmlType::I64
        )
    }

    /// The activation type a dot product with a row of this type takes (ggml's
    /// `vec_dot_type`): Q8_0 for Q4_0 / Q5_0 / Q8_0, Q8_1 for Q4_1 / Q5_1, Q8_K for the
    /// k-quants, F32 (unconverted activations) for the float types. `None` for the types gq
    /// has no dot product for.
    pub const fn vec_dot_type(self) -> Option<GgmlType> {
        Some(match self {
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => GgmlType::Q8_0,
            GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q8_1 => GgmlType::Q8_1,
            GgmlType::Q2_K
            | GgmlType::Q3_K
            | GgmlType::Q4_K
            | GgmlType::Q5_K
            | GgmlType::Q6_K
            | GgmlType::Q8_K => GgmlType::Q8_K,
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => GgmlType::F32,
            // TurboQuant: the rotated activation (two TQA8 rows for the TQJ types; see
            // `formats::tq::act_bytes`).
            t if t.is_turboquant() => GgmlType::TQA8,
            _ => return None,
        })
    }

    /// Bits per weight.
    pub fn bits_per_weight(self) -> f64 {
        self.block_bytes() as f64 * 8.0 / self.block_size() as f64
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_unique_and_round_trip() {
        for (i, &t) in GgmlType::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
            assert_eq!(GgmlType::parse(t.name()), Some(t));
            assert_eq!(GgmlType::parse(t.ggml_name()), Some(t));
        }
        for retired in [4, 5, 31, 32, 33, 36, 37, 38, 43, 1000, 4206, 4213] {
            assert_eq!(GgmlType::from_id(retired), None);
        }
    }

    #[test]
    fn row_bytes_is_checked() {
        assert_eq!(GgmlType::Q4_K.row_bytes(512), Some(288));
        assert_eq!(GgmlType::Q4_K.row_bytes(100), None);
        assert_eq!(GgmlType::F32.row_bytes(usize::MAX), None);
        assert_eq!(GgmlType::Q8_0.tensor_bytes(64, 128), Some(136));
        assert_eq!(GgmlType::Q8_0.tensor_bytes(0, 0), None);
        assert_eq!(GgmlType::Q8_0.tensor_bytes(64, 100), None);
        assert_eq!(GgmlType::IQ4_XS.bits_per_weight(), 4.25);
    }
}
