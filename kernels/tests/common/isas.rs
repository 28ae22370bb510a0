//! Which SIMD paths a SIMD-vs-scalar test exercised. Paths the CPU lacks are not run: that is
//! said loudly on stderr, and where the environment variable `GQ_REQUIRE_ISAS` lists ISAs
//! (`.ci/run` sets it from /proc/cpuinfo, e.g. `avx2,avx512`) a missing one fails the test.

use gq_kernels::Isa;

/// Checks that `what` exercised every SIMD ISA it had to: warns about the ones this CPU lacks,
/// and panics when one named in `GQ_REQUIRE_ISAS` was not exercised. `exercised` lists each
/// ISA once per comparison made (so a path that compared nothing does not count).
pub fn check_exercised(what: &str, exercised: &[Isa]) {
    check_exercised_among(what, exercised, &[Isa::Avx2, Isa::Avx512, Isa::Neon]);
}

/// [`check_exercised`] for a path that only some SIMD ISAs have (`simd`, e.g. the x86-only
/// tiled GEMM): ISAs outside `simd` named in `GQ_REQUIRE_ISAS` are not required of it.
pub fn check_exercised_among(what: &str, exercised: &[Isa], simd: &[Isa]) {
    let counts: Vec<(Isa, usize)> = simd
        .iter()
        .map(|&i| (i, exercised.iter().filter(|&&e| e == i).count()))
        .collect();
    let missing: Vec<&str> = counts
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(i, _)| i.name())
        .collect();
    eprintln!("{what}: comparisons per SIMD path: {counts:?}");
    if !missing.is_empty() {
        eprintln!(
            "WARNING: {what}: SIMD paths NOT EXERCISED on this CPU: {} (not available here; \
             they are only tested on a CPU that has them)",
            missing.join(", ")
        );
    }
    if let Ok(req) = std::env::var("GQ_REQUIRE_ISAS") {
        // `amx` is not a kernel table: tests/amx.rs requires it.
        for name in req
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("amx"))
        {
            let isa = Isa::parse(name)
                .unwrap_or_else(|| panic!("GQ_REQUIRE_ISAS={req}: unknown ISA {name:?}"));
            if !simd.contains(&isa) {
                continue;
            }
            let n = counts.iter().find(|(i, _)| *i == isa).map_or(0, |c| c.1);
            assert!(
                n > 0,
                "{what}: the {isa} path was required (GQ_REQUIRE_ISAS={req}) but made no \
                 comparison on this machine"
            );
        }
    }
}
