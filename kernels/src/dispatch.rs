//! Runtime choice of kernels: one [`Kernels`] table per instruction set, picked by CPU feature
//! detection or by the environment variable `GQ_KERNELS_ISA=scalar|avx2|avx512|neon`.

use crate::scalar;
use crate::QType;
use std::sync::OnceLock;

/// Dequantizes whole blocks of one type into f32.
pub type DequantFn = fn(&[u8], &mut [f32]);
/// Dot product of a weight row with an activation row (of the weight type's
/// [`QType::vec_dot_type`]; little-endian f32 bytes for the float types).
pub type DotFn = fn(&[u8], &[u8]) -> f32;
/// Dot products of two weight rows with one activation row (bit-identical to two [`DotFn`]
/// calls; used by the GEMV where sharing the activation loads pays).
pub type Dot2Fn = fn(&[u8], &[u8], &[u8]) -> [f32; 2];
/// Quantizes f32 activations into blocks of an activation type.
pub type QuantizeFn = fn(&[f32], &mut [u8]);

/// An instruction set the kernels are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL/VNNI.
    Avx512,
    /// aarch64 baseline NEON (dot products; scalar dequantizers and activation quantizers).
    Neon,
}

impl Isa {
    /// Every ISA, from the most portable.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon];

    /// Lower-case name, as `GQ_KERNELS_ISA` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parses a name case-insensitively.
    pub fn parse(s: &str) -> Option<Isa> {
        Self::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether this CPU can run the ISA's kernels.
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            // NEON is part of the aarch64 baseline.
            Isa::Neon => cfg!(target_arch = "aarch64"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => crate::x86::has_avx2(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => crate::x86::has_avx512(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The ISAs this CPU can run.
    pub fn available_all() -> Vec<Isa> {
        Self::ALL.into_iter().filter(|i| i.available()).collect()
    }
}

impl core::fmt::Display for Isa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The activation format that float weights meet in [`Kernels::gemv`] / [`Kernels::gemm`].
///
/// Only BF16 weights have a BF16-activation path; for every other type both values mean the
/// type's usual activation ([`QType::vec_dot_type`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatAct {
    /// f32 activations as given (exact products; the reference semantics of [`Kernels::vec_dot`]).
    F32,
    /// Activations rounded to BF16 once per call (round to nearest even, like ggml's
    /// `GGML_FP32_TO_BF16`) and multiplied with `vdpbf16ps` where the CPU has AVX512_BF16 (what
    /// ggml does for BF16 weights): relative error of each activation ≤ 2⁻⁹, half the
    /// activation bytes, no weight conversion.
    Bf16,
}

/// The kernels of one instruction set, per type. Obtain one with [`kernels`] or
/// [`kernels_for`]; the methods check slice lengths and panic on mismatches.
pub struct Kernels {
    pub(crate) isa: Isa,
    pub(crate) dequant: [DequantFn; 15],
    pub(crate) dot: [Option<DotFn>; 15],
    pub(crate) dot2: [Option<Dot2Fn>; 15],
    pub(crate) quantize: [Option<QuantizeFn>; 15],
    /// BF16 weights · BF16 activations (scalar reference unless the CPU has AVX512_BF16).
    pub(crate) bf16_dot: DotFn,
    /// Two BF16 rows · BF16 activations, where a SIMD kernel exists.
    pub(crate) bf16_dot2: Option<Dot2Fn>,
    /// Whether `bf16_dot` is a native `vdpbf16ps` kernel.
    pub(crate) bf16_native: bool,
}

impl Kernels {
    /// The portable table.
    pub(crate) fn scalar_table() -> Kernels {
        use scalar::{dequant as dq, dot};
        let mut dequant = [dq::f32_row as DequantFn; 15];
        let mut dots: [Option<DotFn>; 15] = [None; 15];
        let mut quantize: [Option<QuantizeFn>; 15] = [None; 15];
        let table: [(QType, DequantFn, Option<DotFn>); 15] = [
            (QType::F32, dq::f32_row, Some(dot::f32_f32)),
            (QType::F16, dq::f16_row, Some(dot::f16_f32)),
            (QType::BF16, dq::bf16_row, Some(dot::bf16_f32)),
            (QType::Q4_0, dq::q4_0, Some(dot::q4_0_q8_0)),
            (QType::Q4_1, dq::q4_1, Some(dot::q4_1_q8_1)),
            (QType::Q5_0, dq::q5_0, Some(dot::q5_0_q8_0)),
            (QType::Q5_1, dq::q5_1, Some(dot::q5_1_q8_1)),
            (QType::Q8_0, dq::q8_0, Some(dot::q8_0_q8_0)),
            (QType::Q8_1, dq::q8_1, None),
            (QType::Q2_K, dq::q2_k, Some(dot::q2_k_q8_k)),
            (QType::Q3_K, dq::q3_k, Some(dot::q3_k_q8_k)),
            (QType::Q4_K, dq::q4_k, Some(dot::q4_k_q8_k)),
            (QType::Q5_K, dq::q5_k, Some(dot::q5_k_q8_k)),
            (QType::Q6_K, dq::q6_k, Some(dot::q6_k_q8_k)),
            (QType::Q8_K, dq::q8_k, None),
        ];
        for (t, d, v) in table {
            dequant[t.index()] = d;
            dots[t.index()] = v;
        }
        quantize[QType::Q8_0.index()] = Some(scalar::quantize::q8_0);
        quantize[QType::Q8_1.index()] = Some(scalar::quantize::q8_1);
        quantize[QType::Q8_K.index()] = Some(scalar::quantize::q8_k);
        Kernels {
            isa: Isa::Scalar,
            dequant,
            dot: dots,
            dot2: [None; 15],
            quantize,
            bf16_dot: dot::bf16_bf16,
            bf16_dot2: None,
            bf16_native: false,
        }
    }

    /// The instruction set of this table.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Dequantizes `src` (whole blocks of `ty`) into `dst` (`dst.len()` elements).
    pub fn dequantize_row(&self, ty: QType, src: &[u8], dst: &mut [f32]) {
        assert_eq!(
            src.len(),
            ty.row_bytes(dst.len()),
            "{ty}: dequantize_row sizes"
        );
        (self.dequant[ty.index()])(src, dst)
    }

    /// Quantizes f32 activations to `ty` (Q8_0, Q8_1 or Q8_K). Panics for other types.
    pub fn quantize_row(&self, ty: QType, x: &[f32], dst: &mut [u8]) {
        let f =
            self.quantize[ty.index()].unwrap_or_else(|| panic!("{ty} is not an activation type"));
        assert_eq!(dst.len(), ty.row_bytes(x.len()), "{ty}: quantize_row sizes");
        f(x, dst)
    }

    /// Whether this table multiplies BF16 weights with BF16 activations natively
    /// (`vdpbf16ps`, AVX512_BF16).
    pub fn has_native_bf16_act(&self) -> bool {
        self.bf16_native
    }

    /// The activation format [`Kernels::gemv`] and [`Kernels::gemm`] use for `ty`:
    /// [`FloatAct::Bf16`] for BF16 weights when this table has the native kernel (unless
    /// `GQ_KERNELS_BF16_ACT=0`), [`FloatAct::F32`] otherwise.
    pub fn default_act(&self, ty: QType) -> FloatAct {
        static ENV_OFF: OnceLock<bool> = OnceLock::new();
        let off = *ENV_OFF
            .get_or_init(|| std::env::var("GQ_KERNELS_BF16_ACT").is_ok_and(|v| v.trim() == "0"));
        if ty == QType::BF16 && self.bf16_native && !off {
            FloatAct::Bf16
        } else {
            FloatAct::F32
        }
    }

    /// Dot product of weight row `w` (type `ty`) with activation row `a` of type
    /// `ty.vec_dot_type()` (little-endian f32 bytes for the float types). For BF16 weights `a`
    /// may also be a BF16 row (as many bytes as `w`, from [`Kernels::prepare_activation_as`]
    /// with [`FloatAct::Bf16`]), which takes the BF16 × BF16 kernel.
    pub fn vec_dot(&self, ty: QType, w: &[u8], a: &[u8]) -> f32 {
        if ty == QType::BF16 && a.len() == w.len() {
            assert!(w.len().is_multiple_of(2), "BF16: odd row bytes");
            return (self.bf16_dot)(w, a);
        }
        self.check_dot(ty, w.len(), a.len());
        (self.dot_fn(ty))(w, a)
    }

    pub(crate) fn dot_fn(&self, ty: QType) -> DotFn {
        self.dot[ty.index()].unwrap_or_else(|| panic!("{ty} is not a weight type"))
    }

    pub(crate) fn check_dot(&self, ty: QType, w_len: usize, a_len: usize) {
        assert!(
            w_len.is_multiple_of(ty.block_bytes()),
            "{ty}: weight row is not whole blocks"
        );
        let n = w_len / ty.block_bytes() * ty.block_size();
        assert_eq!(a_len, act_bytes(ty, n), "{ty}: activation row length");
    }
}

/// Bytes of the activation row that a weight row of `n` elements of `ty` is dotted with.
pub fn act_bytes(ty: QType, n: usize) -> usize {
    ty.vec_dot_type().row_bytes(n)
}

static TABLES: [OnceLock<Option<Kernels>>; 4] = [
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
];

/// The kernels of `isa`, or `None` when this CPU cannot run them.
pub fn kernels_for(isa: Isa) -> Option<&'static Kernels> {
    TABLES[isa as usize]
        .get_or_init(|| match isa {
            Isa::Scalar => Some(Kernels::scalar_table()),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `available` checked AVX2, FMA and F16C.
            Isa::Avx2 if isa.available() => Some(unsafe { crate::x86::avx2_table() }),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `available` checked AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
            Isa::Avx512 if isa.available() => Some(unsafe { crate::x86::avx512_table() }),
            // Only on aarch64; the same table over the portable intrinsics is tested elsewhere.
            Isa::Neon if isa.available() => Some(crate::neon::table()),
            _ => None,
        })
        .as_ref()
}

/// The best ISA this CPU runs, or the one `GQ_KERNELS_ISA` names (an unknown name or one the
/// CPU lacks falls back to the best available, with a warning on stderr).
pub fn selected_isa() -> Isa {
    static SEL: OnceLock<Isa> = OnceLock::new();
    *SEL.get_or_init(|| {
        let best = *Isa::available_all().last().unwrap();
        match std::env::var("GQ_KERNELS_ISA") {
            Ok(v) if !v.is_empty() => match Isa::parse(&v) {
                Some(i) if i.available() => i,
                Some(i) => {
                    eprintln!("gq-kernels: GQ_KERNELS_ISA={i} is not supported by this CPU; using {best}");
                    best
                }
                None => {
                    eprintln!("gq-kernels: unknown GQ_KERNELS_ISA={v:?} (scalar|avx2|avx512|neon); using {best}");
                    best
                }
            },
            _ => best,
        }
    })
}

/// The kernels of [`selected_isa`].
pub fn kernels() -> &'static Kernels {
    kernels_for(selected_isa()).expect("selected ISA is available")
}
