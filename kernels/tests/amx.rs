//! The AMX tiles of the tiled GEMM (`gq_kernels::x86::amx`), on the plain-Rust model of the
//! instructions (`Emu`, every x86-64 CPU with AVX-512) and on the hardware (`Hw`, where the CPU
//! and OS have AMX; required when `GQ_REQUIRE_ISAS` names `amx`, reported loudly otherwise).
//!
//! - Tile instructions: `tdpbssd` / `tdpbsud` / `tdpbf16ps`, loads and stores of full and
//!   partial tiles, against definitions written here from Intel's description (integers and
//!   exactly representable BF16 sums: bit for bit; `Hw` also against `Emu` bit for bit there;
//!   random BF16: within the sum bound, and `Hw`'s difference to `Emu` is printed).
//! - GEMM: every k-quant, Q8_0, Q4_0, Q5_0, Q4_1, Q5_1 and TQT4_5 with AMX **bit-identical** to the AVX-512 tiled GEMM
//!   (which `simd_vs_scalar::tiled_gemm_deterministic_and_within_scalar_bound` and
//!   `tq_simd_vs_scalar` bound against the scalar reference); BF16 × BF16 activations within
//!   `(n + 16)·2⁻²³·Σ|w·x|` of the scalar reference (the bound of the other BF16 × BF16 paths);
//!   all bit-identical for 1, 2 and 3 threads and a column's result independent of the batch
//!   (other columns, their order, n, a subset). Shapes cover partial token tiles, several
//!   micro-kernel calls, rows not a multiple of 16 and several K chunks.
#![cfg(target_arch = "x86_64")]

mod common;
use common::pools;
use common::rng::Rng;
use gq_kernels::formats::tq;
use gq_kernels::x86::amx::{Cfg, Emu, Hw, Tiles};
use gq_kernels::{all_tables, amx_available, AmxMode, FloatAct, GgmlType, Isa, Kernels, TqParams};

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Whether the tests must run the hardware path (`GQ_REQUIRE_ISAS` names `amx`).
fn hw_required() -> bool {
    std::env::var("GQ_REQUIRE_ISAS")
        .is_ok_and(|v| v.split(',').any(|s| s.trim().eq_ignore_ascii_case("amx")))
}

/// The modes to test: `Emu` always, `Hw` where available (required by `GQ_REQUIRE_ISAS=…amx`).
fn modes(what: &str) -> Vec<AmxMode> {
    let mut m = vec![AmxMode::Emu];
    if amx_available() {
        m.push(AmxMode::Hw);
    } else {
        assert!(
            !hw_required(),
            "{what}: GQ_REQUIRE_ISAS requires amx, but this CPU/OS has no usable AMX \
             (CPUID AMX-TILE/INT8/BF16, XCR0 17/18, arch_prctl permission)"
        );
        eprintln!(
            "WARNING: {what}: AMX hardware NOT EXERCISED on this CPU (no usable AMX); only the \
             emulated tiles were tested"
        );
    }
    m
}

/// A tile's bytes as `rows` × `colsb`.
type Tile = Vec<Vec<u8>>;

/// The tile product a single-tile check runs.
#[derive(Clone, Copy, Debug)]
enum Op {
    Dpbssd,
    Dpbsud,
    Dpbf16ps,
}

/// Configures a fresh tile set with `cfg`, loads C (tile 0), A (1) and B (2) from `c0`, `a`
/// and `b` (64-byte rows), runs `op` into C and returns tiles 0..3 as stored.
fn run_tiles<T: Tiles>(t: &mut T, cfg: &Cfg, c0: &[u8], a: &[u8], b: &[u8], op: Op) -> [Tile; 3] {
    // SAFETY: the caller configures shapes that fit the operations; buffers cover them.
    unsafe {
        t.config(cfg);
        t.load::<0>(c0.as_ptr(), 64);
        t.load::<1>(a.as_ptr(), 64);
        t.load::<2>(b.as_ptr(), 64);
        match op {
            Op::Dpbssd => t.dpbssd::<0, 1, 2>(),
            Op::Dpbsud => t.dpbsud::<0, 1, 2>(),
            Op::Dpbf16ps => t.dpbf16ps::<0, 1, 2>(),
        }
        let out = core::array::from_fn(|i| {
            let (r, b) = (cfg.rows[i] as usize, cfg.colsb[i] as usize);
            // Sentinel past each row: a store must write exactly rows × colsb.
            let mut buf = vec![0xa5u8; 16 * 80];
            match i {
                0 => t.store::<0>(buf.as_mut_ptr(), 80),
                1 => t.store::<1>(buf.as_mut_ptr(), 80),
                _ => t.store::<2>(buf.as_mut_ptr(), 80),
            }
            for (k, &v) in buf.iter().enumerate() {
                let (row, col) = (k / 80, k % 80);
                if row >= r || col >= b {
                    assert_eq!(
                        v, 0xa5,
                        "tilestored wrote outside {r}x{b} at row {row} col {col}"
                    );
                }
            }
            (0..r)
                .map(|row| buf[80 * row..80 * row + b].to_vec())
                .collect()
        });
        t.release();
        out
    }
}

fn dword(t: &Tile, r: usize, i: usize) -> [u8; 4] {
    t[r][4 * i..4 * i + 4].try_into().unwrap()
}

fn show(t: &Tile) -> String {
    t.iter()
        .map(|r| format!("{r:02x?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Single-tile checks of each instruction on shapes (m, n dwords, k dwords), full and partial.
#[test]
fn amx_tile_instructions_match_their_definition() {
    let mut rng = Rng(0xa3c5);
    let mut hw_checked = 0;
    for mode in modes("amx_tile_instructions_match_their_definition") {
        for (m, n, k) in [
            (16, 16, 16),
            (5, 10, 6),
            (16, 16, 8),
            (3, 16, 4),
            (16, 7, 16),
        ] {
            let mut cfg = Cfg::new();
            cfg.set(0, m, 4 * n); // C
            cfg.set(1, m, 4 * k); // A
            cfg.set(2, k, 4 * n); // B
            let a: Vec<u8> = (0..16 * 64).map(|_| rng.next() as u8).collect();
            let b: Vec<u8> = (0..16 * 64).map(|_| rng.next() as u8).collect();
            let c0: Vec<u8> = (0..16 * 64).map(|_| rng.next() as u8).collect();
            for op in 0..2 {
                let o = [Op::Dpbssd, Op::Dpbsud][op];
                let got = if mode == AmxMode::Hw {
                    hw_checked += 1;
                    run_tiles(&mut Hw, &cfg, &c0, &a, &b, o)
                } else {
                    run_tiles(&mut Emu::new(), &cfg, &c0, &a, &b, o)
                };
                // The definition: C[i][j] += Σ_k Σ_{q<4} A[i][4k+q]·B[k][4j+q] (A signed; B
                // signed for tdpbssd, unsigned for tdpbsud), 32-bit wrap-around.
                for i in 0..m {
                    for j in 0..n {
                        let mut want =
                            i32::from_le_bytes(c0[64 * i + 4 * j..][..4].try_into().unwrap());
                        for kk in 0..k {
                            for q in 0..4 {
                                let x = a[64 * i + 4 * kk + q] as i8 as i32;
                                let yb = b[64 * kk + 4 * j + q];
                                let y = if op == 0 { yb as i8 as i32 } else { yb as i32 };
                                want = want.wrapping_add(x * y);
                            }
                        }
                        let g = i32::from_le_bytes(dword(&got[0], i, j));
                        assert_eq!(
                            g,
                            want,
                            "{mode:?} {} m={m} n={n} k={k} C[{i}][{j}]\nC tile:\n{}",
                            ["tdpbssd", "tdpbsud"][op],
                            show(&got[0])
                        );
                    }
                }
                // Loads of partial tiles keep exactly rows × colsb of the source.
                for i in 0..m {
                    assert_eq!(got[1][i], a[64 * i..64 * i + 4 * k], "{mode:?} A row {i}");
                }
                for i in 0..k {
                    assert_eq!(got[2][i], b[64 * i..64 * i + 4 * n], "{mode:?} B row {i}");
                }
            }
            // tdpbf16ps: small integers (every partial sum exact: bit for bit whatever the
            // order inside the instruction) and random normals (within the sum bound).
            for exact in [true, false] {
                let val = |rng: &mut Rng| -> f32 {
                    if exact {
                        (rng.next() % 17) as f32 - 8.0
                    } else {
                        rng.normal() * 2.0
                    }
                };
                let bf = |v: f32| half::bf16::from_f32(v).to_bits().to_le_bytes();
                let a: Vec<u8> = (0..16 * 32).flat_map(|_| bf(val(&mut rng))).collect();
                let b: Vec<u8> = (0..16 * 32).flat_map(|_| bf(val(&mut rng))).collect();
                let c0: Vec<u8> = (0..16 * 16)
                    .flat_map(|_| val(&mut rng).to_le_bytes())
                    .collect();
                let emu = run_tiles(&mut Emu::new(), &cfg, &c0, &a, &b, Op::Dpbf16ps);
                let got = if mode == AmxMode::Hw {
                    run_tiles(&mut Hw, &cfg, &c0, &a, &b, Op::Dpbf16ps)
                } else {
                    emu.clone()
                };
                let bfv = |p: &[u8], o: usize| {
                    half::bf16::from_le_bytes([p[o], p[o + 1]]).to_f32() as f64
                };
                let mut maxdiff = 0f64;
                for i in 0..m {
                    for j in 0..n {
                        let c = f32::from_le_bytes(c0[64 * i + 4 * j..][..4].try_into().unwrap());
                        let (mut want, mut mag) = (c as f64, (c as f64).abs());
                        for kk in 0..k {
                            for q in 0..2 {
                                let p = bfv(&a, 64 * i + 4 * kk + 2 * q)
                                    * bfv(&b, 64 * kk + 4 * j + 2 * q);
                                want += p;
                                mag += p.abs();
                            }
                        }
                        let g = f32::from_le_bytes(dword(&got[0], i, j)) as f64;
                        let e = f32::from_le_bytes(dword(&emu[0], i, j)) as f64;
                        maxdiff = maxdiff.max((g - e).abs() / mag.max(1e-30));
                        if exact {
                            assert_eq!(
                                g, want,
                                "{mode:?} tdpbf16ps exact m={m} n={n} k={k} C[{i}][{j}]\nC tile:\n{}",
                                show(&got[0])
                            );
                        } else {
                            let bound = (2.0 * k as f64 + 16.0) * 2f64.powi(-23) * mag;
                            assert!(
                                (g - want).abs() <= bound,
                                "{mode:?} tdpbf16ps m={m} n={n} k={k} C[{i}][{j}]: {g} vs {want}, bound {bound}"
                            );
                        }
                    }
                }
                if mode == AmxMode::Hw && !exact {
                    eprintln!(
                        "amx: tdpbf16ps hardware vs emulation, m={m} n={n} k={k}: max |hw − emu| / Σ|terms| = {maxdiff:.3e}{}",
                        if maxdiff == 0.0 { " (bit-identical)" } else { "" }
                    );
                }
            }
        }
    }
    if amx_available() {
        assert!(
            hw_checked > 0,
            "AMX is available but the hardware tiles were not checked"
        );
    }
}

/// The AVX-512 tables (both tunings) that have the tiled GEMM.
fn tiled_tables() -> Vec<&'static Kernels> {
    let v: Vec<_> = all_tables()
        .into_iter()
        .filter(|k| k.isa() == Isa::Avx512)
        .collect();
    if v.is_empty() {
        eprintln!("WARNING: amx: this CPU has no AVX-512 table; the AMX GEMM is NOT EXERCISED");
    }
    v
}

#[test]
fn amx_gemm_matches_avx512_tile_and_scalar_bound() {
    let mut rng = Rng(0xa3a3);
    let pools = pools(&[1, 2, 3]);
    let m = gq_kernels::GEMM_TILE_MIN_N;
    let tp = TqParams { seed: 12 };
    let mut count: Vec<(AmxMode, usize)> = Vec::new();
    let modes = modes("amx_gemm_matches_avx512_tile_and_scalar_bound");
    for k in tiled_tables() {
        for ty in [
            GgmlType::Q4_K,
            GgmlType::Q6_K,
            GgmlType::Q8_0,
            GgmlType::Q4_0,
            GgmlType::Q5_0,
            GgmlType::Q5_K,
            GgmlType::Q3_K,
            GgmlType::Q2_K,
            GgmlType::Q4_1,
            GgmlType::Q5_1,
            GgmlType::TQT4_5,
            GgmlType::BF16,
        ] {
            let act = match ty {
                GgmlType::BF16 => FloatAct::Bf16,
                GgmlType::TQT4_5 => FloatAct::Rotated(tp),
                _ => FloatAct::F32,
            };
            let unit = match ty {
                GgmlType::BF16 => 32,
                GgmlType::Q8_0
                | GgmlType::Q4_0
                | GgmlType::Q5_0
                | GgmlType::Q4_1
                | GgmlType::Q5_1 => 32,
                _ => 256,
            };
            // Units of K: one, across K chunks (BF16 16 units, Q8_0 32, others 4).
            let nbs: [usize; 3] = match ty {
                GgmlType::Q8_0
                | GgmlType::Q4_0
                | GgmlType::Q5_0
                | GgmlType::Q4_1
                | GgmlType::Q5_1 => [1, 37, 13],
                GgmlType::BF16 => [1, 37, 20],
                _ => [1, 9, 5],
            };
            // n: one whole token tile; 37 (a call of 32 tokens, then one of 5); 53 (32, then
            // 16 + 5). Rows: one partial tile; 17 and 33 (BF16: a pair of row tiles whose second
            // is partial; a pair and a last single tile).
            for ((rows, n), nb) in [(5usize, m), (17, 37), (33, 53)].into_iter().zip(nbs) {
                let cols = unit * nb;
                for &mode in &modes {
                    if !k.gemm_uses_amx(ty, cols, n, act, mode) {
                        assert!(
                            ty == GgmlType::BF16 && !k.has_native_bf16_act(),
                            "{} {ty} cols={cols} n={n}: no AMX path",
                            k.name()
                        );
                        continue;
                    }
                    let rb = ty.row_bytes(cols).unwrap();
                    let wf: Vec<f32> = (0..rows * cols)
                        .map(|_| rng.normal() * (0.001 + rng.uniform() * 0.02))
                        .collect();
                    let mut w = vec![0u8; rows * rb];
                    if ty == GgmlType::TQT4_5 {
                        tq::quantize_rows(ty, &tp, &wf, cols, None, &mut w, Isa::Scalar).unwrap();
                    } else {
                        let q = gq_kernels::format(ty).unwrap().quantize_ref;
                        for (src, dst) in wf.chunks_exact(cols).zip(w.chunks_exact_mut(rb)) {
                            q(src, dst);
                        }
                    }
                    let gemm = |pool: &rayon::ThreadPool, xs: &[f32], amx: AmxMode| {
                        let nn = xs.len() / cols;
                        let mut ys = vec![f32::NAN; nn * rows];
                        let mut scratch = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, nn)];
                        pool.install(|| {
                            k.gemm_as_amx(ty, &w, rows, cols, xs, &mut ys, &mut scratch, act, amx)
                        });
                        ys
                    };
                    let what = format!("{} {ty} {mode:?} rows={rows} cols={cols} n={n}", k.name());
                    let xs: Vec<f32> = (0..n * cols).map(|_| rng.normal() * 3.0).collect();
                    let ys = gemm(&pools[0], &xs, mode);
                    for pool in &pools[1..] {
                        assert_eq!(
                            bits(&gemm(pool, &xs, mode)),
                            bits(&ys),
                            "{what} threads={}",
                            pool.current_num_threads()
                        );
                    }
                    // Another batch: 9 other columns first, then these in reverse order; and
                    // the first `m` columns alone.
                    let extra = 9;
                    let mut xs2: Vec<f32> = (0..extra * cols).map(|_| rng.normal()).collect();
                    for j in (0..n).rev() {
                        xs2.extend_from_slice(&xs[j * cols..(j + 1) * cols]);
                    }
                    let ys2 = gemm(&pools[2], &xs2, mode);
                    let ys3 = gemm(&pools[1], &xs[..m * cols], mode);
                    for j in 0..n {
                        let col = bits(&ys[j * rows..(j + 1) * rows]);
                        let j2 = extra + n - 1 - j;
                        assert_eq!(
                            col,
                            bits(&ys2[j2 * rows..(j2 + 1) * rows]),
                            "{what}: column {j} vs {j2} of another batch"
                        );
                        if j < m {
                            assert_eq!(
                                col,
                                bits(&ys3[j * rows..(j + 1) * rows]),
                                "{what}: column {j} of {m}"
                            );
                        }
                    }
                    if ty == GgmlType::BF16 {
                        // Against the scalar BF16 × BF16 reference.
                        let s = gq_kernels::kernels_for(Isa::Scalar).unwrap();
                        for j in 0..n {
                            let mut sa = vec![0u8; 2 * cols];
                            let a = s
                                .prepare_activation_as(
                                    ty,
                                    &xs[j * cols..(j + 1) * cols],
                                    &mut sa,
                                    act,
                                )
                                .to_vec();
                            let mut av = vec![0f32; cols];
                            s.dequantize_row(ty, &a, &mut av);
                            for r in 0..rows {
                                let wr = &w[r * rb..(r + 1) * rb];
                                let mut wv = vec![0f32; cols];
                                s.dequantize_row(ty, wr, &mut wv);
                                let exact: f64 =
                                    wv.iter().zip(&av).map(|(p, q)| *p as f64 * *q as f64).sum();
                                let mag: f64 = wv
                                    .iter()
                                    .zip(&av)
                                    .map(|(p, q)| (*p as f64 * *q as f64).abs())
                                    .sum();
                                let got = ys[j * rows + r] as f64;
                                let bound = (cols as f64 + 16.0) * 2f64.powi(-23) * mag;
                                assert!(
                                    (got - exact).abs() <= bound,
                                    "{what} (r={r}, j={j}): {got} vs exact {exact}, bound {bound}"
                                );
                            }
                        }
                    } else {
                        // Bit-identical to the AVX-512 tiled GEMM.
                        let off = gemm(&pools[1], &xs, AmxMode::Off);
                        if bits(&off) != bits(&ys) {
                            let i = (0..ys.len())
                                .find(|&i| ys[i].to_bits() != off[i].to_bits())
                                .unwrap();
                            panic!(
                                "{what}: AMX differs from the AVX-512 tile at column {} row {}: {} vs {}",
                                i / rows,
                                i % rows,
                                ys[i],
                                off[i]
                            );
                        }
                    }
                    match count.iter_mut().find(|(md, _)| *md == mode) {
                        Some(c) => c.1 += 1,
                        None => count.push((mode, 1)),
                    }
                }
            }
        }
    }
    eprintln!("amx gemm: comparisons per mode: {count:?}");
    let hw = count
        .iter()
        .find(|(md, _)| *md == AmxMode::Hw)
        .map_or(0, |c| c.1);
    if amx_available() && !tiled_tables().is_empty() {
        assert!(
            hw > 0,
            "AMX is available but the hardware GEMM made no comparison"
        );
    }
}

/// Emulation and hardware agree on the whole GEMM: bit for bit for the int8 formats (both are
/// bit-identical to the AVX-512 tile), and for BF16 the largest difference is printed (the
/// order inside one `tdpbf16ps` is the hardware's).
#[test]
fn amx_hw_matches_emulation() {
    if !amx_available() {
        assert!(
            !hw_required(),
            "GQ_REQUIRE_ISAS requires amx, but this CPU/OS has no usable AMX"
        );
        eprintln!("WARNING: amx_hw_matches_emulation: AMX hardware NOT EXERCISED on this CPU");
        return;
    }
    let mut rng = Rng(0xe3e3);
    for k in tiled_tables() {
        let (rows, n, cols) = (40, 45, 1024);
        let xs: Vec<f32> = (0..n * cols).map(|_| rng.normal()).collect();
        for ty in [GgmlType::BF16, GgmlType::Q4_K] {
            let act = if ty == GgmlType::BF16 {
                FloatAct::Bf16
            } else {
                FloatAct::F32
            };
            if !k.gemm_uses_amx(ty, cols, n, act, AmxMode::Hw) {
                continue;
            }
            let rb = ty.row_bytes(cols).unwrap();
            let wf: Vec<f32> = (0..rows * cols).map(|_| rng.normal() * 0.02).collect();
            let mut w = vec![0u8; rows * rb];
            let q = gq_kernels::format(ty).unwrap().quantize_ref;
            for (src, dst) in wf.chunks_exact(cols).zip(w.chunks_exact_mut(rb)) {
                q(src, dst);
            }
            let run = |amx| {
                let mut ys = vec![0f32; n * rows];
                let mut scratch = vec![0u8; gq_kernels::gemm_scratch_bytes(ty, cols, n)];
                k.gemm_as_amx(ty, &w, rows, cols, &xs, &mut ys, &mut scratch, act, amx);
                ys
            };
            let (h, e) = (run(AmxMode::Hw), run(AmxMode::Emu));
            let same = h
                .iter()
                .zip(&e)
                .filter(|(a, b)| a.to_bits() == b.to_bits())
                .count();
            let maxrel = h
                .iter()
                .zip(&e)
                .map(|(a, b)| ((a - b).abs() / a.abs().max(b.abs()).max(1e-30)) as f64)
                .fold(0f64, f64::max);
            eprintln!(
                "amx: {} {ty} GEMM hw vs emu: {same}/{} bit-identical, max rel diff {maxrel:.3e}",
                k.name(),
                h.len()
            );
            if ty != GgmlType::BF16 {
                assert_eq!(
                    same,
                    h.len(),
                    "{} {ty}: hardware AMX differs from the emulation",
                    k.name()
                );
            }
        }
    }
}
