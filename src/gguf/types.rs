use std::fmt;

/// A ggml tensor type: its id in the GGUF file, block size and bytes per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// 4-bit, 32 per block, one scale.
    Q4_0,
    /// 4-bit, 32 per block, scale and min.
    Q4_1,
    /// 5-bit, 32 per block, one scale.
    Q5_0,
    /// 5-bit, 32 per block, scale and min.
    Q5_1,
    /// 8-bit, 32 per block, one f16 scale.
    Q8_0,
    /// 8-bit, 32 per block, scale and sum (activation type).
    Q8_1,
    /// 2-bit k-quant, 256 per super-block.
    Q2_K,
    /// 3-bit k-quant.
    Q3_K,
    /// 4-bit k-quant.
    Q4_K,
    /// 5-bit k-quant.
    Q5_K,
    /// 6-bit k-quant.
    Q6_K,
    /// 8-bit k-quant (activation type).
    Q8_K,
    /// bfloat16.
    BF16,
}

impl GgmlType {
    /// All types gq knows, for lookups by id or name.
    pub const ALL: [GgmlType; 15] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::Q8_K,
        GgmlType::BF16,
    ];

    /// The numeric id stored in GGUF tensor infos (ggml's `enum ggml_type`).
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q8_1 => 9,
            GgmlType::Q2_K => 10,
            GgmlType::Q3_K => 11,
            GgmlType::Q4_K => 12,
            GgmlType::Q5_K => 13,
            GgmlType::Q6_K => 14,
            GgmlType::Q8_K => 15,
            GgmlType::BF16 => 30,
        }
    }

    /// The type with this GGUF id, if gq knows it.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        Self::ALL.into_iter().find(|t| t.id() == id)
    }

    /// ggml's name of the type ("Q8_0", "BF16", ...).
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q8_1 => "Q8_1",
            GgmlType::Q2_K => "Q2_K",
            GgmlType::Q3_K => "Q3_K",
            GgmlType::Q4_K => "Q4_K",
            GgmlType::Q5_K => "Q5_K",
            GgmlType::Q6_K => "Q6_K",
            GgmlType::Q8_K => "Q8_K",
            GgmlType::BF16 => "BF16",
        }
    }

    /// Elements per block (1 for plain float types).
    pub fn block_size(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q8_0
            | GgmlType::Q8_1 => 32,
            _ => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => 18,
            GgmlType::Q4_1 => 20,
            GgmlType::Q5_0 => 22,
            GgmlType::Q5_1 => 24,
            GgmlType::Q8_0 => 34,
            GgmlType::Q8_1 => 36,
            GgmlType::Q2_K => 84,
            GgmlType::Q3_K => 110,
            GgmlType::Q4_K => 144,
            GgmlType::Q5_K => 176,
            GgmlType::Q6_K => 210,
            GgmlType::Q8_K => 292,
        }
    }

    /// Bytes of one row of `n` elements, or `None` when `n` is not a multiple of the block size.
    pub fn row_bytes(self, n: u64) -> Option<u64> {
        let bs = self.block_size() as u64;
        n.is_multiple_of(bs)
            .then(|| n / bs * self.block_bytes() as u64)
    }

    /// Bits per weight of the type.
    pub fn bits_per_weight(self) -> f64 {
        self.block_bytes() as f64 * 8.0 / self.block_size() as f64
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `general.file_type` values (llama.cpp's `enum llama_ftype`) for the file types gq writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum FileType {
    /// All tensors F32.
    ALL_F32,
    /// Matrices F16.
    MOSTLY_F16,
    /// Matrices BF16.
    MOSTLY_BF16,
    /// Matrices Q8_0.
    MOSTLY_Q8_0,
    /// Matrices Q4_0.
    MOSTLY_Q4_0,
    /// Matrices Q4_1.
    MOSTLY_Q4_1,
    /// Matrices Q5_0.
    MOSTLY_Q5_0,
    /// Matrices Q5_1.
    MOSTLY_Q5_1,
    /// Q2_K mixture.
    MOSTLY_Q2_K,
    /// Q3_K small mixture.
    MOSTLY_Q3_K_S,
    /// Q3_K medium mixture.
    MOSTLY_Q3_K_M,
    /// Q3_K large mixture.
    MOSTLY_Q3_K_L,
    /// Q4_K small mixture.
    MOSTLY_Q4_K_S,
    /// Q4_K medium mixture.
    MOSTLY_Q4_K_M,
    /// Q5_K small mixture.
    MOSTLY_Q5_K_S,
    /// Q5_K medium mixture.
    MOSTLY_Q5_K_M,
    /// Q6_K.
    MOSTLY_Q6_K,
}

impl FileType {
    /// Every file type gq writes.
    pub const ALL: [FileType; 17] = [
        FileType::ALL_F32,
        FileType::MOSTLY_F16,
        FileType::MOSTLY_BF16,
        FileType::MOSTLY_Q8_0,
        FileType::MOSTLY_Q4_0,
        FileType::MOSTLY_Q4_1,
        FileType::MOSTLY_Q5_0,
        FileType::MOSTLY_Q5_1,
        FileType::MOSTLY_Q2_K,
        FileType::MOSTLY_Q3_K_S,
        FileType::MOSTLY_Q3_K_M,
        FileType::MOSTLY_Q3_K_L,
        FileType::MOSTLY_Q4_K_S,
        FileType::MOSTLY_Q4_K_M,
        FileType::MOSTLY_Q5_K_S,
        FileType::MOSTLY_Q5_K_M,
        FileType::MOSTLY_Q6_K,
    ];

    /// The numeric value written to `general.file_type`.
    pub fn id(self) -> u32 {
        match self {
            FileType::ALL_F32 => 0,
            FileType::MOSTLY_F16 => 1,
            FileType::MOSTLY_Q4_0 => 2,
            FileType::MOSTLY_Q4_1 => 3,
            FileType::MOSTLY_Q8_0 => 7,
            FileType::MOSTLY_Q5_0 => 8,
            FileType::MOSTLY_Q5_1 => 9,
            FileType::MOSTLY_Q2_K => 10,
            FileType::MOSTLY_Q3_K_S => 11,
            FileType::MOSTLY_Q3_K_M => 12,
            FileType::MOSTLY_Q3_K_L => 13,
            FileType::MOSTLY_Q4_K_S => 14,
            FileType::MOSTLY_Q4_K_M => 15,
            FileType::MOSTLY_Q5_K_S => 16,
            FileType::MOSTLY_Q5_K_M => 17,
            FileType::MOSTLY_Q6_K => 18,
            FileType::MOSTLY_BF16 => 32,
        }
    }

    /// The user-facing name (as llama-quantize prints it).
    pub fn name(self) -> &'static str {
        match self {
            FileType::ALL_F32 => "F32",
            FileType::MOSTLY_F16 => "F16",
            FileType::MOSTLY_BF16 => "BF16",
            FileType::MOSTLY_Q8_0 => "Q8_0",
            FileType::MOSTLY_Q4_0 => "Q4_0",
            FileType::MOSTLY_Q4_1 => "Q4_1",
            FileType::MOSTLY_Q5_0 => "Q5_0",
            FileType::MOSTLY_Q5_1 => "Q5_1",
            FileType::MOSTLY_Q2_K => "Q2_K",
            FileType::MOSTLY_Q3_K_S => "Q3_K_S",
            FileType::MOSTLY_Q3_K_M => "Q3_K_M",
            FileType::MOSTLY_Q3_K_L => "Q3_K_L",
            FileType::MOSTLY_Q4_K_S => "Q4_K_S",
            FileType::MOSTLY_Q4_K_M => "Q4_K_M",
            FileType::MOSTLY_Q5_K_S => "Q5_K_S",
            FileType::MOSTLY_Q5_K_M => "Q5_K_M",
            FileType::MOSTLY_Q6_K => "Q6_K",
        }
    }

    /// Parses a type name case-insensitively ("q8_0", "Q4_K_M", ...).
    pub fn parse(s: &str) -> Option<FileType> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }

    /// The tensor type of the file's matrices before any per-tensor rule (llama.cpp's
    /// `llama_ftype_get_default_type`).
    pub fn base_type(self) -> GgmlType {
        match self {
            FileType::ALL_F32 => GgmlType::F32,
            FileType::MOSTLY_F16 => GgmlType::F16,
            FileType::MOSTLY_BF16 => GgmlType::BF16,
            FileType::MOSTLY_Q8_0 => GgmlType::Q8_0,
            FileType::MOSTLY_Q4_0 => GgmlType::Q4_0,
            FileType::MOSTLY_Q4_1 => GgmlType::Q4_1,
            FileType::MOSTLY_Q5_0 => GgmlType::Q5_0,
            FileType::MOSTLY_Q5_1 => GgmlType::Q5_1,
            FileType::MOSTLY_Q2_K => GgmlType::Q2_K,
            FileType::MOSTLY_Q3_K_S | FileType::MOSTLY_Q3_K_M | FileType::MOSTLY_Q3_K_L => {
                GgmlType::Q3_K
            }
            FileType::MOSTLY_Q4_K_S | FileType::MOSTLY_Q4_K_M => GgmlType::Q4_K,
            FileType::MOSTLY_Q5_K_S | FileType::MOSTLY_Q5_K_M => GgmlType::Q5_K,
            FileType::MOSTLY_Q6_K => GgmlType::Q6_K,
        }
    }

    /// True for the types llama.cpp's converter writes directly (F32, F16, BF16, Q8_0): gq
    /// reproduces `convert_hf_to_gguf.py --outtype`. The others reproduce `llama-quantize` run on
    /// the converter's output in the checkpoint's own float type.
    pub fn is_converter_type(self) -> bool {
        matches!(
            self,
            FileType::ALL_F32
                | FileType::MOSTLY_F16
                | FileType::MOSTLY_BF16
                | FileType::MOSTLY_Q8_0
        )
    }
}

impl GgmlType {
    /// Whether the type is a block-quantized type (ggml_is_quantized).
    pub fn is_quantized(self) -> bool {
        !matches!(self, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
    }

    /// Parses a ggml type name case-insensitively ("q6_k", "F16").
    pub fn parse(s: &str) -> Option<GgmlType> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }
}
