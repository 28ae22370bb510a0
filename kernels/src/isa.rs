//! The instruction sets gq's formats have code for, and which one runs.
//!
//! One choice covers everything: the block quantizers' vector paths (same bytes as the scalar
//! reference on every ISA) and the dot / dequantize / GEMV kernels. [`Isa::selected`] is the best
//! one this CPU runs, unless the environment variable `GQ_ISA` (`scalar`, `avx2`, `avx512`,
//! `neon`) names another.

use std::sync::OnceLock;

/// An instruction set the formats are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust: the reference every other path is tested against.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL/VNNI (with AVX2, FMA, F16C).
    Avx512,
    /// aarch64 baseline NEON (dot products; scalar dequantizers and quantizers).
    Neon,
}

/// The environment variable that overrides [`Isa::selected`].
pub const ISA_ENV: &str = "GQ_ISA";

impl Isa {
    /// Every ISA, from the most portable.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon];

    /// Lower-case name, as `GQ_ISA` spells it.
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

    /// Whether this CPU can run the ISA's code.
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

    /// The ISAs this CPU can run, from the most portable.
    pub fn available_all() -> Vec<Isa> {
        Self::ALL.into_iter().filter(|i| i.available()).collect()
    }

    /// The fastest ISA this CPU runs.
    pub fn best() -> Isa {
        *Self::available_all().last().unwrap_or(&Isa::Scalar)
    }

    /// This ISA if the CPU runs it, else the best one below it that it does.
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

    /// The ISA gq runs: `GQ_ISA` if it names one this CPU runs (an unknown name, or one the
    /// CPU lacks, falls back to the best with a warning on stderr), else the best. Read once
    /// per process.
    pub fn selected() -> Isa {
        static SEL: OnceLock<Isa> = OnceLock::new();
        *SEL.get_or_init(|| {
            let best = Isa::best();
            match std::env::var(ISA_ENV) {
                Ok(v) if !v.trim().is_empty() => match Isa::parse(&v) {
                    Some(i) if i.available() => i,
                    Some(i) => {
                        eprintln!("gq: {ISA_ENV}={i} is not supported by this CPU; using {best}");
                        best
                    }
                    None => {
                        eprintln!(
                            "gq: unknown {ISA_ENV}={v:?} (scalar|avx2|avx512|neon); using {best}"
                        );
                        best
                    }
                },
                _ => best,
            }
        })
    }
}

impl core::fmt::Display for Isa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
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
        assert_eq!(Isa::parse("sse2"), None);
        assert!(Isa::Scalar.available());
        assert!(Isa::best().available());
        assert!(Isa::Avx512.or_available().available());
        assert!(Isa::selected().available());
    }
}
