//! llama.cpp's file types (`enum llama_ftype`): what `--type` names, what `general.file_type`
//! records, and the base tensor type each one starts the mixture rules from; and gq's own
//! TurboQuant file types (docs/turboquant.md), whose `general.file_type` values (4300 and up)
//! are outside llama.cpp's `llama_ftype` range (0–41, and 1024 for "guessed").

use gq_kernels::GgmlType;

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
    /// Every quantizable matrix TQT4_5 (gq only).
    TQT4_5,
    /// Every quantizable matrix TQT3_375 (gq only).
    TQT3_375,
    /// Every quantizable matrix TQT2_5 (gq only).
    TQT2_5,
    /// Every quantizable matrix TQJ4_5 (gq only).
    TQJ4_5,
    /// Every quantizable matrix TQJ3_375 (gq only).
    TQJ3_375,
    /// Every quantizable matrix TQJ2_5 (gq only).
    TQJ2_5,
    /// Every quantizable matrix TQP4_5 (gq only, experimental).
    TQP4_5,
    /// Every quantizable matrix TQP3_4375 (gq only, experimental).
    TQP3_4375,
    /// Every quantizable matrix TQP2_5 (gq only, experimental).
    TQP2_5,
    /// TQT4_5 with sensitive tensors at more bits (gq only; rules in `mixture.rs`).
    TQT4_5_M,
    /// TQT3_375 with sensitive tensors at more bits (gq only).
    TQT3_375_M,
    /// TQT2_5 with sensitive tensors at more bits (gq only).
    TQT2_5_M,
}

impl FileType {
    /// Every file type gq writes.
    pub const ALL: [FileType; 29] = [
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
        FileType::TQT4_5,
        FileType::TQT3_375,
        FileType::TQT2_5,
        FileType::TQJ4_5,
        FileType::TQJ3_375,
        FileType::TQJ2_5,
        FileType::TQP4_5,
        FileType::TQP3_4375,
        FileType::TQP2_5,
        FileType::TQT4_5_M,
        FileType::TQT3_375_M,
        FileType::TQT2_5_M,
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
            FileType::TQT4_5 => 4300,
            FileType::TQT3_375 => 4301,
            FileType::TQT2_5 => 4302,
            FileType::TQJ4_5 => 4303,
            FileType::TQJ3_375 => 4304,
            FileType::TQJ2_5 => 4305,
            FileType::TQP4_5 => 4310,
            FileType::TQP3_4375 => 4311,
            FileType::TQP2_5 => 4312,
            FileType::TQT4_5_M => 4320,
            FileType::TQT3_375_M => 4321,
            FileType::TQT2_5_M => 4322,
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
            FileType::TQT4_5 => "TQT4_5",
            FileType::TQT3_375 => "TQT3_375",
            FileType::TQT2_5 => "TQT2_5",
            FileType::TQJ4_5 => "TQJ4_5",
            FileType::TQJ3_375 => "TQJ3_375",
            FileType::TQJ2_5 => "TQJ2_5",
            FileType::TQP4_5 => "TQP4_5",
            FileType::TQP3_4375 => "TQP3_4375",
            FileType::TQP2_5 => "TQP2_5",
            FileType::TQT4_5_M => "TQT4_5_M",
            FileType::TQT3_375_M => "TQT3_375_M",
            FileType::TQT2_5_M => "TQT2_5_M",
        }
    }

    /// The file type with `general.file_type` value `id`.
    pub fn from_id(id: u32) -> Option<FileType> {
        Self::ALL.into_iter().find(|t| t.id() == id)
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
            FileType::TQT4_5 | FileType::TQT4_5_M => GgmlType::TQT4_5,
            FileType::TQT3_375 | FileType::TQT3_375_M => GgmlType::TQT3_375,
            FileType::TQT2_5 | FileType::TQT2_5_M => GgmlType::TQT2_5,
            FileType::TQJ4_5 => GgmlType::TQJ4_5,
            FileType::TQJ3_375 => GgmlType::TQJ3_375,
            FileType::TQJ2_5 => GgmlType::TQJ2_5,
            FileType::TQP4_5 => GgmlType::TQP4_5,
            FileType::TQP3_4375 => GgmlType::TQP3_4375,
            FileType::TQP2_5 => GgmlType::TQP2_5,
        }
    }

    /// Whether this is one of gq's TurboQuant file types (llama.cpp and Ollama cannot load
    /// such a file).
    pub fn is_turboquant(self) -> bool {
        self.base_type().is_turboquant()
    }

    /// Whether this TurboQuant file type applies mixture rules (the `_M` types); the plain
    /// TurboQuant types give every quantizable matrix the base type.
    pub fn is_tq_mixture(self) -> bool {
        matches!(
            self,
            FileType::TQT4_5_M | FileType::TQT3_375_M | FileType::TQT2_5_M
        )
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
