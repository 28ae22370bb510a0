//! Which instruction set the block quantizers run on.
//!
//! Every quantizer has a scalar reference path, a transcription of ggml's C. The k-quants also
//! have vector paths (AVX2, AVX-512) that give the same bytes: they run the same f32
//! operations in the same order per sub-block, with one SIMD lane per sub-block, so no sum is
//! reassociated. [`Isa::current`] picks the best one the CPU has, unless the environment
//! variable `GQ_QUANT_ISA` (`scalar`, `avx2` or `avx512`) asks for another.

use std::sync::OnceLock;

/// An instruction set for the block quantizers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain f32 code, the reference transcription of ggml's C.
    Scalar,
    /// 8 sub-blocks at a time in 256-bit registers (x86-64 with AVX2).
    Avx2,
    /// 16 sub-blocks at a time in 512-bit registers (x86-64 with AVX-512F).
    Avx512,
}

impl Isa {
    /// Every instruction set, scalar first.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    /// The name `GQ_QUANT_ISA` accepts for this instruction set.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parses a `GQ_QUANT_ISA` value (case-insensitive).
    pub fn parse(s: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether this CPU can run this instruction set.
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest instruction set this CPU can run.
    pub fn best() -> Isa {
        *Isa::ALL
            .iter()
            .rev()
            .find(|i| i.available())
            .unwrap_or(&Isa::Scalar)
    }

    /// The instruction set the quantizers use: `GQ_QUANT_ISA` if it names one this CPU can run
    /// (an unknown name or an unavailable one falls back, with a warning, to the best), else the
    /// best. Read once per process.
    pub fn current() -> Isa {
        static CURRENT: OnceLock<Isa> = OnceLock::new();
        *CURRENT.get_or_init(|| match std::env::var("GQ_QUANT_ISA") {
            Ok(v) if !v.trim().is_empty() => match Isa::parse(&v) {
                Some(isa) if isa.available() => isa,
                _ => {
                    let best = Isa::best();
                    eprintln!(
                        "gq: GQ_QUANT_ISA={v:?} is not an instruction set this CPU runs \
                         (scalar, avx2, avx512); using {}",
                        best.name()
                    );
                    best
                }
            },
            _ => Isa::best(),
        })
    }

    /// This instruction set if the CPU can run it, else the best one below it.
    pub fn or_available(self) -> Isa {
        let mut isa = self;
        while !isa.available() {
            isa = match isa {
                Isa::Avx512 => Isa::Avx2,
                _ => Isa::Scalar,
            };
        }
        isa
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(Isa::parse(isa.name()), Some(isa));
        }
        assert_eq!(Isa::parse(" AVX512 "), Some(Isa::Avx512));
        assert_eq!(Isa::parse("neon"), None);
        assert!(Isa::Scalar.available());
        assert!(Isa::best().available());
        assert!(Isa::Avx512.or_available().available());
    }
}
