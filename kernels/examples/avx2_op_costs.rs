//! Cycle costs of the AVX2 instruction sequences that bound gq's TurboQuant kernels on CPUs
//! without AVX-512 (docs/turboquant.md §16, docs/kernels.md "Remaining gaps"):
//! `cargo run --release -p gq-kernels --example avx2_op_costs`.
//!
//! Each figure is the throughput of a fixed instruction sequence in a loop (inline assembly,
//! independent iterations, data in L1), in core cycles at the clock measured by a chain of
//! dependent `add`s in the same run. From them it derives two bounds:
//! - the decode of a `TQT4_5` block by `vpshufb` lookups: its 120 hi pairs need 240 bytes from a
//!   256-entry table, i.e. 7.5 lookups of 32 bytes (the sequence of gq's AVX2 decode: 16
//!   `vpshufb`, table pairs joined by the shuffle's zeroing and `vpor`, 7 `vpblendvb`), and
//!   its 256 products need 8 dot steps (`vpsignb` + `vpmaddubsw` + `vpmaddwd` + `vpaddd`);
//!   nothing else of the decode (fields, trellis subsets, signs, the lo pairs, scales, the
//!   loop) is counted, so the real kernel is slower;
//! - the GEMM micro-kernel's cost per 32 products per column for a signed code (`vpsignb` +
//!   `vpmaddubsw` + `vpmaddwd` + `vpaddd`, as TurboQuant and Q8_0 need without VNNI) against an
//!   unsigned 4-bit code that accumulates in 16 bits (`vpmaddubsw` + `vpaddw`, as Q4_K).

#[cfg(target_arch = "x86_64")]
mod costs {
    use std::arch::asm;
    use std::time::Instant;

    const ITERS: u64 = 20_000_000;

    /// 64-byte aligned scratch for tables and operands.
    #[repr(align(64))]
    struct Buf([u8; 1024]);

    macro_rules! timed {
        ($t:expr, $k:expr, [$($line:literal),* $(,)?]) => {{
            let n: u64 = ITERS;
            let start = Instant::now();
            // SAFETY: the sequence reads at most 544 bytes from `t` and `k` (both point into
            // 1 KiB buffers), writes only the registers it declares, and uses AVX2 only,
            // checked by the caller.
            unsafe {
                asm!(
                    "vmovdqu ymm0, ymmword ptr [{k}]",
                    "vmovdqu ymm15, ymmword ptr [{k} + 32]",
                    "vpcmpeqw ymm1, ymm1, ymm1",
                    "vpsrlw ymm1, ymm1, 15",
                    "vmovdqu ymm2, ymmword ptr [{t}]",
                    "vmovdqu ymm3, ymmword ptr [{t} + 32]",
                    "2:",
                    $($line,)*
                    "dec {n}",
                    "jnz 2b",
                    "vzeroupper",
                    n = inout(reg) n => _,
                    t = in(reg) $t,
                    k = in(reg) $k,
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                    out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                    out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                    out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                    options(nostack),
                );
            }
            start.elapsed().as_secs_f64()
        }};
    }

    /// Core clock in GHz: a chain of dependent `add`s retires one per cycle.
    fn ghz() -> f64 {
        let (mut n, mut x) = (1_000_000_000u64, 0u64);
        let start = Instant::now();
        // SAFETY: general-purpose register arithmetic only.
        unsafe {
            asm!(
                "2:",
                "add {x}, 1",
                "add {x}, 1",
                "add {x}, 1",
                "add {x}, 1",
                "sub {n}, 4",
                "jnz 2b",
                n = inout(reg) n,
                x = inout(reg) x,
                options(nostack, nomem),
            );
        }
        std::hint::black_box((n, x));
        1.0 / start.elapsed().as_secs_f64()
    }

    /// One round of measurements: cycles per unit of each sequence.
    struct Round {
        ghz: f64,
        shuf: f64,
        blend: f64,
        maddubs: f64,
        maddwd: f64,
        lookup: f64,
        gemv_s8: f64,
        tile_s8: f64,
        tile_u4: f64,
    }

    fn round(t: *const u8, k: *const u8) -> Round {
        let ghz = ghz();
        let cyc = |secs: f64, per_iter: f64| secs * ghz * 1e9 / ITERS as f64 / per_iter;
        let shuf = cyc(
            timed!(
                t,
                k,
                [
                    "vpshufb ymm4, ymm2, ymm1",
                    "vpshufb ymm5, ymm2, ymm1",
                    "vpshufb ymm6, ymm2, ymm1",
                    "vpshufb ymm7, ymm2, ymm1",
                    "vpshufb ymm8, ymm2, ymm1",
                    "vpshufb ymm9, ymm2, ymm1",
                    "vpshufb ymm10, ymm2, ymm1",
                    "vpshufb ymm11, ymm2, ymm1",
                ]
            ),
            8.0,
        );
        let blend = cyc(
            timed!(
                t,
                k,
                [
                    "vpblendvb ymm4, ymm2, ymm3, ymm1",
                    "vpblendvb ymm5, ymm2, ymm3, ymm1",
                    "vpblendvb ymm6, ymm2, ymm3, ymm1",
                    "vpblendvb ymm7, ymm2, ymm3, ymm1",
                    "vpblendvb ymm8, ymm2, ymm3, ymm1",
                    "vpblendvb ymm9, ymm2, ymm3, ymm1",
                    "vpblendvb ymm10, ymm2, ymm3, ymm1",
                    "vpblendvb ymm11, ymm2, ymm3, ymm1",
                ]
            ),
            8.0,
        );
        let maddubs = cyc(
            timed!(
                t,
                k,
                [
                    "vpmaddubsw ymm4, ymm2, ymm3",
                    "vpmaddubsw ymm5, ymm2, ymm3",
                    "vpmaddubsw ymm6, ymm2, ymm3",
                    "vpmaddubsw ymm7, ymm2, ymm3",
                    "vpmaddubsw ymm8, ymm2, ymm3",
                    "vpmaddubsw ymm9, ymm2, ymm3",
                    "vpmaddubsw ymm10, ymm2, ymm3",
                    "vpmaddubsw ymm11, ymm2, ymm3",
                ]
            ),
            8.0,
        );
        let maddwd = cyc(
            timed!(
                t,
                k,
                [
                    "vpmaddwd ymm4, ymm2, ymm3",
                    "vpmaddwd ymm5, ymm2, ymm3",
                    "vpmaddwd ymm6, ymm2, ymm3",
                    "vpmaddwd ymm7, ymm2, ymm3",
                    "vpmaddwd ymm8, ymm2, ymm3",
                    "vpmaddwd ymm9, ymm2, ymm3",
                    "vpmaddwd ymm10, ymm2, ymm3",
                    "vpmaddwd ymm11, ymm2, ymm3",
                ]
            ),
            8.0,
        );
        // 32 bytes from a 256-entry table: the low nibble selects within 16 tables of 16
        // (`vpshufb`); bit 4 at the shuffle index's bit 7 (and inverted for the odd table)
        // zeroes one of each table pair, joined by `vpor`; bits 5..7 pick by a `vpblendvb`
        // tree built as it goes.
        let lookup = cyc(
            timed!(
                t,
                k,
                [
                    "vpand ymm1, ymm0, ymm15",
                    "vpsllw ymm12, ymm0, 3",
                    "vpand ymm12, ymm12, ymmword ptr [{k} + 512]",
                    "vpor ymm1, ymm1, ymm12",
                    "vpxor ymm12, ymm1, ymmword ptr [{k} + 512]",
                    "vpsllw ymm13, ymm0, 2",
                    "vpsllw ymm14, ymm0, 1",
                    "vmovdqu ymm2, ymmword ptr [{t} + 0]",
                    "vpshufb ymm2, ymm2, ymm1",
                    "vmovdqu ymm3, ymmword ptr [{t} + 32]",
                    "vpshufb ymm3, ymm3, ymm12",
                    "vpor ymm4, ymm2, ymm3",
                    "vmovdqu ymm2, ymmword ptr [{t} + 64]",
                    "vpshufb ymm2, ymm2, ymm1",
                    "vmovdqu ymm3, ymmword ptr [{t} + 96]",
                    "vpshufb ymm3, ymm3, ymm12",
                    "vpor ymm5, ymm2, ymm3",
                    "vpblendvb ymm6, ymm4, ymm5, ymm13",
                    "vmovdqu ymm2, ymmword ptr [{t} + 128]",
                    "vpshufb ymm2, ymm2, ymm1",
                    "vmovdqu ymm3, ymmword ptr [{t} + 160]",
                    "vpshufb ymm3, ymm3, ymm12",
                    "vpor ymm4, ymm2, ymm3",
                    "vmovdqu ymm2, ymmword ptr [{t} + 192]",
                    "vpshufb ymm2, ymm2, ymm1",
                    "vmovdqu ymm3, ymmword ptr [{t} + 224]",
                    "vpshufb ymm3, ymm3, ymm12",
                    "vpor ymm5, ymm2, ymm3",
                    "vpblendvb ymm7, ymm4, ymm5, ymm13",
                    "vpblendvb ymm8, ymm6, ymm7, ymm14",
                    "vmovdqu ymm2, ymmword ptr [{t} + 256]",
                    "vpshufb ymm2, ymm2, ymm1",
                    "vmovdqu ymm3, ymmword ptr [{t} + 288]",
                    "vpshufb ymm3, ymm3, ymm12",
                    "vpor ymm4, ymm2, ymm3",
                    "vmovdqu ymm2, ymmword ptr [{t} + 320]",
                    "vpshufb ymm2, ymm2, ymm1",
                    "vmovdqu ymm3, ymmword ptr [{t} + 352]",
                    "vpshufb ymm3, ymm3, ymm12",
                    "vpor ymm5, ymm2, ymm3",
                    "vpblendvb ymm6, ymm4, ymm5, ymm13",
                    "vmovdqu ymm2, ymmword ptr [{t} + 384]",
                    "vpshufb ymm2, ymm2, ymm1",
                    "vmovdqu ymm3, ymmword ptr [{t} + 416]",
                    "vpshufb ymm3, ymm3, ymm12",
                    "vpor ymm4, ymm2, ymm3",
                    "vmovdqu ymm2, ymmword ptr [{t} + 448]",
                    "vpshufb ymm2, ymm2, ymm1",
                    "vmovdqu ymm3, ymmword ptr [{t} + 480]",
                    "vpshufb ymm3, ymm3, ymm12",
                    "vpor ymm5, ymm2, ymm3",
                    "vpblendvb ymm7, ymm4, ymm5, ymm13",
                    "vpblendvb ymm9, ymm6, ymm7, ymm14",
                    "vpblendvb ymm10, ymm8, ymm9, ymm0",
                ]
            ),
            1.0,
        );
        // GEMV step, 32 products of decoded magnitudes |w| (unsigned) and int8 activations:
        // the weights' signs moved onto the activation (`vpsignb`), maddubs, madd with ones,
        // add (four accumulators).
        let gemv_s8 = cyc(
            timed!(
                t,
                k,
                [
                    "vmovdqu ymm2, ymmword ptr [{t} + 0]",
                    "vmovdqu ymm8, ymmword ptr [{k} + 64]",
                    "vpsignb ymm3, ymm8, ymmword ptr [{t} + 256]",
                    "vpmaddubsw ymm3, ymm2, ymm3",
                    "vpmaddwd ymm3, ymm3, ymm1",
                    "vpaddd ymm4, ymm4, ymm3",
                    "vmovdqu ymm2, ymmword ptr [{t} + 32]",
                    "vmovdqu ymm8, ymmword ptr [{k} + 96]",
                    "vpsignb ymm3, ymm8, ymmword ptr [{t} + 288]",
                    "vpmaddubsw ymm3, ymm2, ymm3",
                    "vpmaddwd ymm3, ymm3, ymm1",
                    "vpaddd ymm5, ymm5, ymm3",
                    "vmovdqu ymm2, ymmword ptr [{t} + 64]",
                    "vmovdqu ymm8, ymmword ptr [{k} + 128]",
                    "vpsignb ymm3, ymm8, ymmword ptr [{t} + 320]",
                    "vpmaddubsw ymm3, ymm2, ymm3",
                    "vpmaddwd ymm3, ymm3, ymm1",
                    "vpaddd ymm6, ymm6, ymm3",
                    "vmovdqu ymm2, ymmword ptr [{t} + 96]",
                    "vmovdqu ymm8, ymmword ptr [{k} + 160]",
                    "vpsignb ymm3, ymm8, ymmword ptr [{t} + 352]",
                    "vpmaddubsw ymm3, ymm2, ymm3",
                    "vpmaddwd ymm3, ymm3, ymm1",
                    "vpaddd ymm7, ymm7, ymm3",
                ]
            ),
            4.0,
        );
        // GEMM micro-kernel, one 8-row weight vector against 6 columns (broadcast 4 activation
        // bytes each): signed codes.
        let tile_s8 = cyc(
            timed!(
                t,
                k,
                [
                    "vpxor ymm8, ymm0, ymmword ptr [{t}]",
                    "vpabsb ymm9, ymm8",
                    "vpbroadcastd ymm3, dword ptr [{k} + 0]",
                    "vpsignb ymm3, ymm3, ymm8",
                    "vpmaddubsw ymm3, ymm9, ymm3",
                    "vpmaddwd ymm3, ymm3, ymm1",
                    "vpaddd ymm4, ymm4, ymm3",
                    "vpbroadcastd ymm3, dword ptr [{k} + 64]",
                    "vpsignb ymm3, ymm3, ymm8",
                    "vpmaddubsw ymm3, ymm9, ymm3",
                    "vpmaddwd ymm3, ymm3, ymm1",
                    "vpaddd ymm5, ymm5, ymm3",
                    "vpbroadcastd ymm3, dword ptr [{k} + 128]",
                    "vpsignb ymm3, ymm3, ymm8",
                    "vpmaddubsw ymm3, ymm9, ymm3",
                    "vpmaddwd ymm3, ymm3, ymm1",
                    "vpaddd ymm6, ymm6, ymm3",
                    "vpbroadcastd ymm3, dword ptr [{k} + 192]",
                    "vpsignb ymm3, ymm3, ymm8",
                    "vpmaddubsw ymm3, ymm9, ymm3",
                    "vpmaddwd ymm3, ymm3, ymm1",
                    "vpaddd ymm7, ymm7, ymm3",
                    "vpbroadcastd ymm3, dword ptr [{k} + 256]",
                    "vpsignb ymm3, ymm3, ymm8",
                    "vpmaddubsw ymm3, ymm9, ymm3",
                    "vpmaddwd ymm3, ymm3, ymm1",
                    "vpaddd ymm10, ymm10, ymm3",
                    "vpbroadcastd ymm3, dword ptr [{k} + 320]",
                    "vpsignb ymm3, ymm3, ymm8",
                    "vpmaddubsw ymm3, ymm9, ymm3",
                    "vpmaddwd ymm3, ymm3, ymm1",
                    "vpaddd ymm11, ymm11, ymm3",
                ]
            ),
            6.0,
        );
        // The same with unsigned 4-bit codes accumulated in 16 bits (Q4_K's pattern).
        let tile_u4 = cyc(
            timed!(
                t,
                k,
                [
                    "vmovdqu ymm9, ymmword ptr [{t}]",
                    "vpbroadcastd ymm3, dword ptr [{k} + 0]",
                    "vpmaddubsw ymm3, ymm9, ymm3",
                    "vpaddw ymm4, ymm4, ymm3",
                    "vpbroadcastd ymm3, dword ptr [{k} + 64]",
                    "vpmaddubsw ymm3, ymm9, ymm3",
                    "vpaddw ymm5, ymm5, ymm3",
                    "vpbroadcastd ymm3, dword ptr [{k} + 128]",
                    "vpmaddubsw ymm3, ymm9, ymm3",
                    "vpaddw ymm6, ymm6, ymm3",
                    "vpbroadcastd ymm3, dword ptr [{k} + 192]",
                    "vpmaddubsw ymm3, ymm9, ymm3",
                    "vpaddw ymm7, ymm7, ymm3",
                    "vpbroadcastd ymm3, dword ptr [{k} + 256]",
                    "vpmaddubsw ymm3, ymm9, ymm3",
                    "vpaddw ymm10, ymm10, ymm3",
                    "vpbroadcastd ymm3, dword ptr [{k} + 320]",
                    "vpmaddubsw ymm3, ymm9, ymm3",
                    "vpaddw ymm11, ymm11, ymm3",
                ]
            ),
            6.0,
        );
        Round {
            ghz,
            shuf,
            blend,
            maddubs,
            maddwd,
            lookup,
            gemv_s8,
            tile_s8,
            tile_u4,
        }
    }

    /// Runs three rounds and prints each, then the bounds from the best round.
    pub fn main() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("this CPU has no AVX2");
            std::process::exit(1);
        }
        let mut tables = Buf([0; 1024]);
        let mut acts = Buf([0; 1024]);
        for (i, b) in tables.0.iter_mut().enumerate() {
            *b = (i * 37 % 127) as u8;
        }
        for (i, b) in acts.0.iter_mut().enumerate() {
            *b = (i * 91 % 251) as u8;
        }
        // Bytes 32..64: the low-nibble mask; 512..544: bit 7 (the lookup's constants).
        acts.0[32..64].fill(0x0F);
        acts.0[512..544].fill(0x80);
        let (t, k) = (tables.0.as_ptr(), acts.0.as_ptr());
        println!("cycles per unit (AVX2, one thread, L1-resident operands)");
        println!(
            "{:>6} {:>8} {:>10} {:>8} {:>8} {:>11} {:>10} {:>10} {:>10}",
            "GHz",
            "vpshufb",
            "vpblendvb",
            "maddubs",
            "maddwd",
            "lookup256",
            "gemv s8",
            "tile s8",
            "tile u4"
        );
        let mut best: Option<Round> = None;
        for _ in 0..3 {
            let r = round(t, k);
            println!(
                "{:>6.3} {:>8.3} {:>10.3} {:>8.3} {:>8.3} {:>11.2} {:>10.3} {:>10.3} {:>10.3}",
                r.ghz,
                r.shuf,
                r.blend,
                r.maddubs,
                r.maddwd,
                r.lookup,
                r.gemv_s8,
                r.tile_s8,
                r.tile_u4
            );
            if best.as_ref().is_none_or(|b| r.lookup < b.lookup) {
                best = Some(r);
            }
        }
        let b = best.expect("three rounds ran");
        let cycles = 7.5 * b.lookup + 8.0 * b.gemv_s8;
        let ns = cycles / b.ghz;
        println!(
            "TQT4_5 GEMV lower bound by vpshufb lookups: 7.5 x {:.2} + 8 x {:.2} = {:.0} cycles \
             = {:.1} ns per 256-block at {:.2} GHz, so at most {:.1} GB/s of weights per core",
            b.lookup,
            b.gemv_s8,
            cycles,
            ns,
            b.ghz,
            144.0 / ns
        );
        println!(
            "GEMM micro-kernel per 32 products per column: signed {:.2} cycles, unsigned 4-bit \
             {:.2} ({:.2}x)",
            b.tile_s8,
            b.tile_u4,
            b.tile_s8 / b.tile_u4
        );
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    costs::main();
    #[cfg(not(target_arch = "x86_64"))]
    eprintln!("avx2_op_costs measures x86-64 instruction sequences only");
}
