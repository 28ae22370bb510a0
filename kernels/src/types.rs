//! The tensor types the kernels know, with ggml's ids and block geometry.

use crate::blocks::{QK, QK_K};

/// A ggml tensor type (weights or activations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum QType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// 4-bit, one scale per 32.
    Q4_0,
    /// 4-bit, scale and min per 32.
    Q4_1,
    /// 5-bit, one scale per 32.
    Q5_0,
    /// 5-bit, scale and min per 32.
    Q5_1,
    /// 8-bit, one scale per 32.
    Q8_0,
    /// 8-bit with block sums (activation type of Q4_1 / Q5_1).
    Q8_1,
    /// 2-bit k-quant.
    Q2_K,
    /// 3-bit k-quant.
    Q3_K,
    /// 4-bit k-quant.
    Q4_K,
    /// 5-bit k-quant.
    Q5_K,
    /// 6-bit k-quant.
    Q6_K,
    /// 8-bit k-quant (activation type of the k-quants).
    Q8_K,
}

impl QType {
    /// Every type, in ggml id order.
    pub const ALL: [QType; 15] = [
        QType::F32,
        QType::F16,
        QType::Q4_0,
        QType::Q4_1,
        QType::Q5_0,
        QType::Q5_1,
        QType::Q8_0,
        QType::Q8_1,
        QType::Q2_K,
        QType::Q3_K,
        QType::Q4_K,
        QType::Q5_K,
        QType::Q6_K,
        QType::Q8_K,
        QType::BF16,
    ];

    /// The weight types that [`crate::gemv`] accepts (all but the activation-only Q8_1 / Q8_K).
    pub const WEIGHTS: [QType; 13] = [
        QType::F32,
        QType::F16,
        QType::BF16,
        QType::Q4_0,
        QType::Q4_1,
        QType::Q5_0,
        QType::Q5_1,
        QType::Q8_0,
        QType::Q2_K,
        QType::Q3_K,
        QType::Q4_K,
        QType::Q5_K,
        QType::Q6_K,
    ];

    /// ggml's numeric id (`enum ggml_type`).
    pub fn id(self) -> u32 {
        match self {
            QType::F32 => 0,
            QType::F16 => 1,
            QType::Q4_0 => 2,
            QType::Q4_1 => 3,
            QType::Q5_0 => 6,
            QType::Q5_1 => 7,
            QType::Q8_0 => 8,
            QType::Q8_1 => 9,
            QType::Q2_K => 10,
            QType::Q3_K => 11,
            QType::Q4_K => 12,
            QType::Q5_K => 13,
            QType::Q6_K => 14,
            QType::Q8_K => 15,
            QType::BF16 => 30,
        }
    }

    /// The type with ggml id `id`.
    pub fn from_id(id: u32) -> Option<QType> {
        Self::ALL.into_iter().find(|t| t.id() == id)
    }

    /// ggml's name ("Q4_K", "BF16", …).
    pub fn name(self) -> &'static str {
        match self {
            QType::F32 => "F32",
            QType::F16 => "F16",
            QType::BF16 => "BF16",
            QType::Q4_0 => "Q4_0",
            QType::Q4_1 => "Q4_1",
            QType::Q5_0 => "Q5_0",
            QType::Q5_1 => "Q5_1",
            QType::Q8_0 => "Q8_0",
            QType::Q8_1 => "Q8_1",
            QType::Q2_K => "Q2_K",
            QType::Q3_K => "Q3_K",
            QType::Q4_K => "Q4_K",
            QType::Q5_K => "Q5_K",
            QType::Q6_K => "Q6_K",
            QType::Q8_K => "Q8_K",
        }
    }

    /// Parses a name case-insensitively.
    pub fn parse(s: &str) -> Option<QType> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }

    /// Elements per block (1 for the float types).
    pub fn block_size(self) -> usize {
        match self {
            QType::F32 | QType::F16 | QType::BF16 => 1,
            QType::Q4_0 | QType::Q4_1 | QType::Q5_0 | QType::Q5_1 | QType::Q8_0 | QType::Q8_1 => QK,
            _ => QK_K,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            QType::F32 => 4,
            QType::F16 | QType::BF16 => 2,
            QType::Q4_0 => 18,
            QType::Q4_1 => 20,
            QType::Q5_0 => 22,
            QType::Q5_1 => 24,
            QType::Q8_0 => 34,
            QType::Q8_1 => 36,
            QType::Q2_K => 84,
            QType::Q3_K => 110,
            QType::Q4_K => 144,
            QType::Q5_K => 176,
            QType::Q6_K => 210,
            QType::Q8_K => 292,
        }
    }

    /// Bytes of a row of `n` elements. Panics unless `n` is a multiple of the block size.
    pub fn row_bytes(self, n: usize) -> usize {
        assert!(
            n.is_multiple_of(self.block_size()),
            "{}: row length {n} is not a multiple of {}",
            self.name(),
            self.block_size()
        );
        n / self.block_size() * self.block_bytes()
    }

    /// The activation type the dot product of a row of this type takes (ggml's
    /// `vec_dot_type`): Q8_0 for Q4_0 / Q5_0 / Q8_0, Q8_1 for Q4_1 / Q5_1, Q8_K for the
    /// k-quants, and F32 (unconverted activations) for the float types.
    pub fn vec_dot_type(self) -> QType {
        match self {
            QType::Q4_0 | QType::Q5_0 | QType::Q8_0 => QType::Q8_0,
            QType::Q4_1 | QType::Q5_1 | QType::Q8_1 => QType::Q8_1,
            QType::Q2_K | QType::Q3_K | QType::Q4_K | QType::Q5_K | QType::Q6_K | QType::Q8_K => {
                QType::Q8_K
            }
            QType::F32 | QType::F16 | QType::BF16 => QType::F32,
        }
    }

    /// Position in the kernel tables (declaration order).
    #[inline]
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Whether this is a plain float type (F32, F16, BF16).
    pub fn is_float(self) -> bool {
        matches!(self, QType::F32 | QType::F16 | QType::BF16)
    }

    /// Bits per weight.
    pub fn bits_per_weight(self) -> f64 {
        self.block_bytes() as f64 * 8.0 / self.block_size() as f64
    }
}

impl core::fmt::Display for QType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
