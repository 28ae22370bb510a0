//! Runtime choice of kernels: one [`Kernels`] table per instruction set, picked by CPU feature
//! detection or by the environment variable `GQ_ISA` ([`Isa::selected`]). The scalar table is
//! built from the format registry ([`crate::formats::REGISTRY`]); the SIMD tables start from it
//! and replace what they have faster code for.

pub use crate::formats::{DequantFn, DotFn};
use crate::isa::Isa;
use crate::GgmlType;
use std::sync::OnceLock;

const N: usize = GgmlType::COUNT;
/// Dot products of two weight rows with one activation row (bit-identical to two [`DotFn`]
/// calls; used by the GEMV where sharing the activation loads pays).
pub type Dot2Fn = fn(&[u8], &[u8], &[u8]) -> [f32; 2];
/// Quantizes f32 activations into blocks of an activation type.
pub type QuantizeFn = fn(&[f32], &mut [u8]);
/// One weight row · one activation row in the row kernels' layout ([`ActLayout`]).
pub(crate) type Row1Fn = fn(&[u8], &[u8]) -> f32;
/// Weight rows (`w`, `rb` bytes each) · activation rows (`acts`, `ab` bytes each), every
/// result to `put(row, column, value)`; each value bit-identical to [`Row1Fn`] on its pair.
pub(crate) type GemmFn = fn(&[u8], usize, &[u8], usize, &mut dyn FnMut(usize, usize, f32));

/// How the GEMV / GEMM of a table lays out a quantized activation row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ActLayout {
    /// The activation type's own blocks ([`GgmlType::vec_dot_type`]).
    Natural,
    /// Q8_0 quants + 128 (unsigned), contiguous, then the f32 block scales
    /// (`x86::intel`): 36 bytes per block.
    Q8_0Biased,
    /// Q8_K with the group sums replaced by 8 f32 `d·Σ` per 32 quants (`x86::intel`): 292
    /// bytes per block.
    Q8KV,
    /// Per block Q8_K quants and 64 i32 `−4·Σ` per four quants, then the f32 block scales
    /// (`x86::intel`, Q3_K): 516 bytes per block.
    Q8K3,
    /// "Q8 lanes" (`x86::intel`, Q4_0 / Q4_1 / Q5_0 / Q5_1): the quants (signed, contiguous),
    /// then for a Q8_0 source with weight offset `off` (8 or 16) the i32 `−off·Σ` of each four
    /// quants and the f32 block scales (68 bytes per block), for a Q8_1 source (`off` 0) the
    /// f32 pairs (d, s) (40 bytes per block).
    Q8Lanes(u8),
}

/// GEMV / GEMM row kernels of a weight type (where a table has them).
#[derive(Clone, Copy)]
pub(crate) struct RowKernels {
    /// Activation layout the kernels read.
    pub act: ActLayout,
    /// One activation row (GEMV).
    pub gemv: Row1Fn,
    /// Many rows × many activation rows (GEMM).
    pub gemm: GemmFn,
    /// What the bench prints as the path taken.
    pub path: &'static str,
}

/// Which AVX-512 kernels a table holds: both are correct on every AVX-512 CPU that has their
/// features; they differ in speed by microarchitecture (docs/kernels.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tune {
    /// The kernels written for Zen 5 (four full-width 512-bit pipes): `x86/avx512.rs`.
    Zen,
    /// Kernels for cores with two 512-bit ports (Intel): `x86/intel.rs` for Q4_0, Q4_1, Q5_0,
    /// Q5_1, Q8_0 and Q2_K…Q6_K (needs GFNI and AVX512_VBMI too), `x86/avx512.rs` for the rest.
    Intel,
}

/// The environment variable that forces a [`Tune`] (`zen` or `intel`).
pub const TUNE_ENV: &str = "GQ_KERNELS_TUNE";

/// The activation format that float weights meet in [`Kernels::gemv`] / [`Kernels::gemm`], and
/// the rotation that TurboQuant weights need ([`FloatAct::Rotated`]).
///
/// Only BF16 weights have a BF16-activation path; for every other non-TurboQuant type `F32` and
/// `Bf16` both mean the type's usual activation ([`GgmlType::vec_dot_type`]). TurboQuant weights
/// take only `Rotated`: the activation is rotated with the file's seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatAct {
    /// f32 activations as given (exact products; the reference semantics of [`Kernels::vec_dot`]).
    F32,
    /// Activations rounded to BF16 once per call (round to nearest even, like ggml's
    /// `GGML_FP32_TO_BF16`) and multiplied with `vdpbf16ps` where the CPU has AVX512_BF16 (what
    /// ggml does for BF16 weights): relative error of each activation ≤ 2⁻⁹, half the
    /// activation bytes, no weight conversion.
    Bf16,
    /// For TurboQuant weights ([`GgmlType::is_turboquant`]): the activation rotated block by
    /// block with these file parameters (`gq.tq.seed`) and quantized to [`GgmlType::TQA8`]
    /// ([`crate::formats::tq::prepare_activation`]), once per call. Other types ignore it.
    Rotated(crate::formats::tq::TqParams),
}

/// The kernels of one instruction set, per type. Obtain one with [`kernels`] or
/// [`kernels_for`]; the methods check slice lengths and panic on mismatches.
pub struct Kernels {
    pub(crate) isa: Isa,
    pub(crate) dequant: [Option<DequantFn>; N],
    pub(crate) dot: [Option<DotFn>; N],
    pub(crate) dot2: [Option<Dot2Fn>; N],
    pub(crate) quantize: [Option<QuantizeFn>; N],
    /// BF16 weights · BF16 activations (scalar reference unless the CPU has AVX512_BF16).
    pub(crate) bf16_dot: DotFn,
    /// Two BF16 rows · BF16 activations, where a SIMD kernel exists.
    pub(crate) bf16_dot2: Option<Dot2Fn>,
    /// Whether `bf16_dot` is a native `vdpbf16ps` kernel.
    pub(crate) bf16_native: bool,
    /// GEMV / GEMM row kernels, where the table has them.
    pub(crate) rows: [Option<RowKernels>; N],
    /// The AVX-512 tuning (None for other ISAs).
    pub(crate) tune: Option<Tune>,
}

impl Kernels {
    /// The portable table: every registered format's scalar dequantizer, dot product and (for
    /// the activation types) reference quantizer.
    pub(crate) fn scalar_table() -> Kernels {
        let mut k = Kernels {
            isa: Isa::Scalar,
            dequant: [None; N],
            dot: [None; N],
            dot2: [None; N],
            quantize: [None; N],
            bf16_dot: crate::formats::bf16::dot_bf16,
            bf16_dot2: None,
            bf16_native: false,
            rows: [None; N],
            tune: None,
        };
        for f in crate::formats::REGISTRY {
            let i = f.ty.index();
            k.dequant[i] = Some(f.dequantize);
            k.dot[i] = f.dot;
            if matches!(f.ty, GgmlType::Q8_0 | GgmlType::Q8_1 | GgmlType::Q8_K) {
                k.quantize[i] = Some(f.quantize_ref);
            }
        }
        k
    }

    /// The instruction set of this table.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The AVX-512 tuning of this table (`None` for other ISAs).
    pub fn tune(&self) -> Option<Tune> {
        self.tune
    }

    /// A short name of this table: `scalar`, `avx2`, `avx512/zen`, `avx512/intel`, `neon`.
    pub fn name(&self) -> String {
        match self.tune {
            Some(Tune::Zen) => format!("{}/zen", self.isa),
            Some(Tune::Intel) => format!("{}/intel", self.isa),
            None => self.isa.to_string(),
        }
    }

    /// The code path the GEMV of `ty` takes in this table (for benchmark reports), e.g.
    /// `avx512/intel q4_k (gfni+vnni, dpbusd+packssdw+dpwssd)`.
    pub fn path(&self, ty: GgmlType) -> String {
        if let Some(r) = self.rows[ty.index()] {
            return format!("{} {}", self.name(), r.path);
        }
        let act = if ty == GgmlType::BF16 && self.default_act(ty) == FloatAct::Bf16 {
            " (bf16 act, vdpbf16ps)"
        } else {
            ""
        };
        let two =
            if self.dot2[ty.index()].is_some() || (!act.is_empty() && self.bf16_dot2.is_some()) {
                " two-row"
            } else {
                ""
            };
        let pf = if self.tune == Some(Tune::Intel) {
            ", prefetch 4 KiB"
        } else {
            ""
        };
        format!("{} dot{two}{act}{pf}", self.name())
    }

    /// Dequantizes `src` (whole blocks of `ty`) into `dst` (`dst.len()` elements).
    /// Panics for types gq has no dequantizer for.
    pub fn dequantize_row(&self, ty: GgmlType, src: &[u8], dst: &mut [f32]) {
        assert_eq!(
            Some(src.len()),
            ty.row_bytes(dst.len()),
            "{ty}: dequantize_row sizes"
        );
        let f = self.dequant[ty.index()].unwrap_or_else(|| panic!("{ty}: no dequantizer"));
        f(src, dst)
    }

    /// Quantizes f32 activations to `ty` (Q8_0, Q8_1 or Q8_K). Panics for other types.
    pub fn quantize_row(&self, ty: GgmlType, x: &[f32], dst: &mut [u8]) {
        let f =
            self.quantize[ty.index()].unwrap_or_else(|| panic!("{ty} is not an activation type"));
        assert_eq!(
            Some(dst.len()),
            ty.row_bytes(x.len()),
            "{ty}: quantize_row sizes"
        );
        f(x, dst)
    }

    /// Whether this table multiplies BF16 weights with BF16 activations natively
    /// (`vdpbf16ps`, AVX512_BF16).
    pub fn has_native_bf16_act(&self) -> bool {
        self.bf16_native
    }

    /// The activation format [`Kernels::gemv`] and [`Kernels::gemm`] use for `ty`:
    /// [`FloatAct::Bf16`] for BF16 weights when this table has the native kernel (unless
    /// `GQ_KERNELS_BF16_ACT=0`), [`FloatAct::Rotated`] with the default seed for TurboQuant
    /// weights (files with another seed need [`Kernels::gemv_as`]), [`FloatAct::F32`] otherwise.
    pub fn default_act(&self, ty: GgmlType) -> FloatAct {
        if ty.is_turboquant() {
            return FloatAct::Rotated(crate::formats::tq::TqParams::default());
        }
        static ENV_OFF: OnceLock<bool> = OnceLock::new();
        let off = *ENV_OFF
            .get_or_init(|| std::env::var("GQ_KERNELS_BF16_ACT").is_ok_and(|v| v.trim() == "0"));
        if ty == GgmlType::BF16 && self.bf16_native && !off {
            FloatAct::Bf16
        } else {
            FloatAct::F32
        }
    }

    /// Dot product of weight row `w` (type `ty`) with activation row `a` of type
    /// `ty.vec_dot_type()` (little-endian f32 bytes for the float types). For BF16 weights `a`
    /// may also be a BF16 row (as many bytes as `w`, from [`Kernels::prepare_activation_as`]
    /// with [`FloatAct::Bf16`]), which takes the BF16 × BF16 kernel.
    pub fn vec_dot(&self, ty: GgmlType, w: &[u8], a: &[u8]) -> f32 {
        if ty == GgmlType::BF16 && a.len() == w.len() {
            assert!(w.len().is_multiple_of(2), "BF16: odd row bytes");
            return (self.bf16_dot)(w, a);
        }
        self.check_dot(ty, w.len(), a.len());
        (self.dot_fn(ty))(w, a)
    }

    pub(crate) fn dot_fn(&self, ty: GgmlType) -> DotFn {
        self.dot[ty.index()].unwrap_or_else(|| panic!("{ty} is not a weight type"))
    }

    pub(crate) fn check_dot(&self, ty: GgmlType, w_len: usize, a_len: usize) {
        assert!(
            w_len.is_multiple_of(ty.block_bytes()),
            "{ty}: weight row is not whole blocks"
        );
        let n = w_len / ty.block_bytes() * ty.block_size();
        assert_eq!(a_len, act_bytes(ty, n), "{ty}: activation row length");
    }
}

/// Bytes of the activation row that a weight row of `n` elements of `ty` is dotted with.
/// Panics for types without a dot product or `n` not a multiple of the block size.
pub fn act_bytes(ty: GgmlType, n: usize) -> usize {
    if ty.is_turboquant() {
        return crate::formats::tq::act_bytes(ty, n)
            .unwrap_or_else(|| panic!("{ty}: {n} is not whole blocks"));
    }
    act_type(ty)
        .row_bytes(n)
        .unwrap_or_else(|| panic!("{ty}: {n} is not whole blocks"))
}

/// The activation type of weight type `ty`; panics for types without a dot product.
pub(crate) fn act_type(ty: GgmlType) -> GgmlType {
    ty.vec_dot_type()
        .unwrap_or_else(|| panic!("{ty} is not a weight type"))
}

/// Bytes of a row of `n` elements of `ty`; panics when `n` is not whole blocks (kernel
/// arguments are the caller's, not a file's).
pub(crate) fn row_bytes(ty: GgmlType, n: usize) -> usize {
    ty.row_bytes(n)
        .unwrap_or_else(|| panic!("{ty}: row length {n} is not whole blocks"))
}

static TABLES: [OnceLock<Option<Kernels>>; 4] = [
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
];
static TUNED: [OnceLock<Option<Kernels>>; 2] = [OnceLock::new(), OnceLock::new()];

/// The kernels of `isa`, or `None` when this CPU cannot run them. For AVX-512 this is the
/// table of [`default_tune`].
pub fn kernels_for(isa: Isa) -> Option<&'static Kernels> {
    if isa == Isa::Avx512 {
        return kernels_tuned(default_tune());
    }
    TABLES[isa as usize]
        .get_or_init(|| match isa {
            Isa::Scalar => Some(Kernels::scalar_table()),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `available` checked AVX2, FMA and F16C.
            Isa::Avx2 if isa.available() => Some(unsafe { crate::x86::avx2_table() }),
            // Only on aarch64; the same table over the portable intrinsics is tested elsewhere.
            Isa::Neon if isa.available() => Some(crate::neon::table()),
            _ => None,
        })
        .as_ref()
}

/// The AVX-512 table with the given tuning, or `None` when this CPU cannot run it (no
/// AVX-512; for [`Tune::Intel`] also no GFNI or AVX512_VBMI).
pub fn kernels_tuned(tune: Tune) -> Option<&'static Kernels> {
    TUNED[tune as usize]
        .get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            if Isa::Avx512.available() && (tune == Tune::Zen || crate::x86::has_intel_extras()) {
                // SAFETY: checked AVX-512 F/BW/VL/VNNI, AVX2, FMA, F16C (and for the Intel
                // tuning GFNI and AVX512_VBMI) just above.
                return Some(unsafe { crate::x86::avx512_table(tune) });
            }
            None
        })
        .as_ref()
}

/// Every kernel table this CPU runs (scalar, AVX2, both AVX-512 tunings, NEON), for tests and
/// benchmarks.
pub fn all_tables() -> Vec<&'static Kernels> {
    let mut v: Vec<&'static Kernels> = [Isa::Scalar, Isa::Avx2, Isa::Neon]
        .into_iter()
        .filter_map(kernels_for)
        .collect();
    v.extend(
        [Tune::Zen, Tune::Intel]
            .into_iter()
            .filter_map(kernels_tuned),
    );
    v
}

/// The AVX-512 tuning used by default: `GQ_KERNELS_TUNE` if set (`zen` / `intel`), else
/// [`Tune::Intel`] on GenuineIntel CPUs that have its features and [`Tune::Zen`] otherwise.
pub fn default_tune() -> Tune {
    static T: OnceLock<Tune> = OnceLock::new();
    *T.get_or_init(|| {
        let intel_ok = {
            #[cfg(target_arch = "x86_64")]
            {
                crate::x86::has_intel_extras()
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                false
            }
        };
        match std::env::var(TUNE_ENV).map(|v| v.trim().to_ascii_lowercase()) {
            Ok(v) if v == "zen" => return Tune::Zen,
            Ok(v) if v == "intel" && intel_ok => return Tune::Intel,
            Ok(v) if !v.is_empty() => {
                eprintln!("gq: {TUNE_ENV}={v:?} is not zen|intel (or not supported here); using the default")
            }
            _ => {}
        }
        if intel_ok && cpu_vendor() == "GenuineIntel" {
            Tune::Intel
        } else {
            Tune::Zen
        }
    })
}

/// The CPU vendor string (`GenuineIntel`, `AuthenticAMD`, …; empty off x86).
pub fn cpu_vendor() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let r = core::arch::x86_64::__cpuid(0);
        let b: Vec<u8> = [r.ebx, r.edx, r.ecx]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        String::from_utf8_lossy(&b).into_owned()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        String::new()
    }
}

/// The CPU model name (`/proc/cpuinfo`'s `model name`, else CPUID's brand string).
pub fn cpu_model() -> String {
    if let Ok(s) = std::fs::read_to_string("/proc/cpuinfo") {
        if let Some(l) = s.lines().find(|l| l.starts_with("model name")) {
            if let Some((_, v)) = l.split_once(':') {
                return v.trim().to_string();
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        let mut b = Vec::new();
        for leaf in 0x8000_0002u32..=0x8000_0004 {
            let r = core::arch::x86_64::__cpuid(leaf);
            for v in [r.eax, r.ebx, r.ecx, r.edx] {
                b.extend(v.to_le_bytes());
            }
        }
        return String::from_utf8_lossy(&b)
            .trim_matches(char::from(0))
            .trim()
            .to_string();
    }
    #[allow(unreachable_code)]
    String::from("unknown")
}

/// The ISA the kernels run ([`Isa::selected`]: the best this CPU runs, or `GQ_ISA`).
pub fn selected_isa() -> Isa {
    Isa::selected()
}

/// The kernels of [`selected_isa`].
pub fn kernels() -> &'static Kernels {
    kernels_for(selected_isa()).expect("selected ISA is available")
}
