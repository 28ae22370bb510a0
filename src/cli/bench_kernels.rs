//! `gq bench kernels`: memory read bandwidth and GEMV throughput per weight type on a matrix much
//! larger than the caches, for one or several thread counts; (when llama.cpp's
//! `test-backend-ops` is available) ggml's MUL_MAT on the same GEMV shape; and with `--gemm`
//! the matrix product at n = 512 (prompt processing) against ggml's MUL_MAT, in GFLOP/s and as
//! a fraction of the core's peak.
//!
//! Buffers are anonymous mappings with transparent huge pages requested, so that the bandwidth
//! probe and the GEMVs see the same paging. Every figure is the best of `reps` timed runs after
//! a warm-up (STREAM's convention); medians are kept in the report.

use anyhow::{anyhow, bail, Context, Result};
use gq_kernels::bench::{
    fill_random_weights, fill_stream_buffer, time_gemm, time_gemv, time_read, Timing,
};
use gq_kernels::{kernels, GgmlType};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// What to measure.
#[derive(Clone, Debug)]
pub struct KernelBenchOptions {
    /// Weight types (default: every type GEMV supports, gq's TurboQuant types included).
    pub types: Vec<GgmlType>,
    /// Thread counts for the bandwidth probe and the large GEMVs (one table each).
    pub threads: Vec<usize>,
    /// Size of the bandwidth buffer and of each weight matrix, MiB.
    pub size_mib: usize,
    /// Row length of the large matrices.
    pub cols: usize,
    /// Timed runs per measurement (best is reported).
    pub reps: usize,
    /// Run ggml's `test-backend-ops` when found.
    pub ggml: bool,
    /// Also measure the GEMM (n = [`GEMM_N`]) against ggml.
    pub gemm: bool,
    /// Skip the GEMV tables (and ggml's GEMV), e.g. to measure only the GEMM.
    pub no_gemv: bool,
}

impl Default for KernelBenchOptions {
    fn default() -> Self {
        KernelBenchOptions {
            types: GgmlType::WEIGHTS
                .into_iter()
                .chain(GgmlType::TURBOQUANT)
                .collect(),
            threads: vec![2],
            size_mib: 384,
            cols: 4096,
            reps: 10,
            ggml: true,
            gemm: false,
            no_gemv: false,
        }
    }
}

/// GEMV results for one type at one thread count.
#[derive(Clone, Debug, Serialize)]
pub struct TypeResult {
    /// ggml's type name.
    pub ty: String,
    /// Threads of the GEMV and of the alternated bandwidth probe.
    pub threads: usize,
    /// Rows of the large matrix.
    pub rows: usize,
    /// Columns of the large matrix.
    pub cols: usize,
    /// Weight bytes of the large matrix.
    pub weight_bytes: usize,
    /// Weight bytes read per second (best run), GB/s.
    pub gbps: f64,
    /// Same for the median run.
    pub median_gbps: f64,
    /// Read bandwidth (best run) measured in alternation with this type's GEMV runs, GB/s.
    pub bandwidth_gbps: f64,
    /// `gbps` over `bandwidth_gbps`.
    pub ratio_to_bandwidth: f64,
}

/// gq and ggml on ggml's perf shape (m × k weights, n = 1), same thread count.
#[derive(Clone, Debug, Serialize)]
pub struct GgmlComparison {
    /// Rows of the weight matrix (ggml's m).
    pub m: usize,
    /// Row length (ggml's k).
    pub k: usize,
    /// Threads both ran with.
    pub threads: usize,
    /// gq, weight GB/s (best run).
    pub gq_gbps: f64,
    /// gq, weight GB/s from the median run.
    pub gq_median_gbps: f64,
    /// ggml, weight GB/s from its mean time per run.
    pub ggml_gbps: Option<f64>,
    /// `gq_median_gbps / ggml_gbps`: gq's typical run against ggml's mean (not gq's best run,
    /// which a noisy machine favours).
    pub ratio: Option<f64>,
    /// ggml's µs per run.
    pub ggml_us: Option<f64>,
}

/// The GEMV table at one thread count.
#[derive(Clone, Debug, Serialize)]
pub struct ThreadsRun {
    /// Threads.
    pub threads: usize,
    /// Read bandwidth, GB/s (best of all probes at this thread count).
    pub bandwidth_gbps: f64,
    /// Median of the first probe's runs, GB/s.
    pub bandwidth_median_gbps: f64,
    /// Per type.
    pub results: Vec<TypeResult>,
}

/// gq's GEMM and ggml's MUL_MAT at n = [`GEMM_N`] for one type.
#[derive(Clone, Debug, Serialize)]
pub struct GemmResult {
    /// ggml's type name.
    pub ty: String,
    /// gq's code path.
    pub path: String,
    /// Threads of the comparison (ggml's count).
    pub threads: usize,
    /// gq, GFLOP/s (best run; activation quantization included).
    pub gq_gflops: f64,
    /// `gq_gflops` over `threads` × the core's peak ([`gq_kernels::bench::peak_ops_per_cycle`]
    /// × the measured clock).
    pub gq_frac_peak: f64,
    /// ggml, GFLOP/s (its mean time per run), when it ran.
    pub ggml_gflops: Option<f64>,
    /// `gq_gflops / ggml_gflops`.
    pub ratio: Option<f64>,
    /// What the peak assumes.
    pub peak: String,
    /// gq at the largest thread count of `--threads` (when different from `threads`).
    pub gq_max_threads: Option<(usize, f64)>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct KernelBenchReport {
    /// CPU model name.
    pub cpu: String,
    /// CPU vendor string.
    pub vendor: String,
    /// Logical CPUs the process may run on.
    pub cpus: usize,
    /// Kernel table in use (`avx512/intel`, …).
    pub kernels: String,
    /// Clock measured while vector code runs, GHz.
    pub vector_clock_ghz: f64,
    /// The GEMV path per type.
    pub paths: Vec<(String, String)>,
    /// Buffer / matrix size, MiB.
    pub size_mib: usize,
    /// One GEMV table per thread count.
    pub runs: Vec<ThreadsRun>,
    /// ggml comparison on its GEMV shape, per type.
    pub ggml_gemv: Vec<(String, GgmlComparison)>,
    /// GEMM n = 512 against ggml, per type (with `--gemm`).
    pub gemm: Vec<GemmResult>,
    /// The `test-backend-ops` binary used, if any.
    pub ggml_binary: Option<PathBuf>,
    /// Why ggml did not run, if it did not.
    pub ggml_note: Option<String>,
}

/// ggml's perf-test GEMV shape (`test_mul_mat(type, f32, m = 4096, n = 1, k = 14336)`).
pub const GGML_M: usize = 4096;
/// See [`GGML_M`].
pub const GGML_K: usize = 14336;
/// The GEMM batch of ggml's perf tests (`n = 512`, same m and k).
pub const GEMM_N: usize = 512;

/// An anonymous mapping with huge pages requested (plain pages if the kernel says no).
fn huge_buffer(bytes: usize) -> Result<memmap2::MmapMut> {
    let m = memmap2::MmapOptions::new()
        .len(bytes.max(1))
        .map_anon()
        .with_context(|| format!("mapping {bytes} bytes"))?;
    #[cfg(target_os = "linux")]
    let _ = m.advise(memmap2::Advice::HugePage);
    Ok(m)
}

fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| anyhow!("thread pool: {e}"))
}

/// Best and median of a list of seconds.
fn timing(mut t: Vec<f64>) -> Timing {
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Timing {
        best: t[0],
        median: t[t.len() / 2],
    }
}

/// Times a GEMV of the weights `w` (`cols` columns of `ty`) in `pool`, alternating each run
/// with a full read of `stream` (so that both see the same machine load); returns the GEMV
/// timing and the read timing.
pub fn gemv_and_read_timing(
    pool: &rayon::ThreadPool,
    stream: &[u64],
    ty: GgmlType,
    w: &[u8],
    cols: usize,
    reps: usize,
) -> (Timing, Timing) {
    let k = kernels();
    let rows = w.len() / ty.row_bytes(cols).expect("whole blocks");
    let x: Vec<f32> = (0..cols)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let mut y = vec![0f32; rows];
    let mut scratch = vec![0u8; gq_kernels::gemv_scratch_bytes(ty, cols)];
    let (mut tg, mut tr) = (Vec::new(), Vec::new());
    pool.install(|| {
        k.gemv(ty, w, &x, &mut y, &mut scratch);
        std::hint::black_box(gq_kernels::stream::par_sum_u64(stream));
        for _ in 0..reps.max(1) {
            let s = Instant::now();
            std::hint::black_box(gq_kernels::stream::par_sum_u64(stream));
            tr.push(s.elapsed().as_secs_f64());
            let s = Instant::now();
            k.gemv(ty, w, &x, &mut y, &mut scratch);
            std::hint::black_box(&y);
            tg.push(s.elapsed().as_secs_f64());
        }
    });
    (timing(tg), timing(tr))
}

/// Times a GEMV of `rows × cols` random weights of `ty` in `pool`.
pub fn gemv_timing(
    pool: &rayon::ThreadPool,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    reps: usize,
) -> Result<(usize, Timing)> {
    let bytes = ty
        .row_bytes(cols)
        .ok_or_else(|| anyhow!("{ty}: {cols} columns are not whole blocks"))?
        * rows;
    let mut w = huge_buffer(bytes)?;
    fill_random_weights(ty, &mut w[..bytes], 0x9e37_79b9_7f4a_7c15);
    let k = kernels();
    Ok((
        bytes,
        pool.install(|| time_gemv(k, ty, &w[..bytes], cols, reps)),
    ))
}

/// ggml's name of a type ("q4_K", "bf16").
pub fn ggml_type_name(ty: GgmlType) -> String {
    ty.ggml_name().to_string()
}

/// Where `test-backend-ops` is expected: `$GQ_PEERS/build/bin` (default `~/.cache/gq-peers`).
pub fn ggml_binary() -> PathBuf {
    let peers = std::env::var_os("GQ_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/gq-peers")
        });
    peers.join("build/bin/test-backend-ops")
}

/// Threads `test-backend-ops` gives the CPU backend: half the hardware threads, at least 1.
pub fn ggml_threads() -> usize {
    (std::thread::available_parallelism().map_or(1, |n| n.get()) / 2).max(1)
}

/// Runs ggml's MUL_MAT perf test for `ty` on the [`GGML_M`] × [`GGML_K`] weights with `n`
/// activation rows and returns its µs per run.
pub fn run_ggml(bin: &Path, ty: GgmlType, n: usize) -> Result<f64> {
    let filter = format!(
        "type_a={},type_b=f32,m={GGML_M},n={n},k={GGML_K},",
        ggml_type_name(ty)
    );
    let out = Command::new(bin)
        .args(["perf", "-o", "MUL_MAT", "-b", "CPU", "-p", &filter])
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_ggml_us(&text, &ggml_type_name(ty), n).ok_or_else(|| {
        anyhow!(
            "no MUL_MAT timing for {ty} in test-backend-ops output:\n{}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Extracts µs/run for `type_a=<name>,…,n=<n>` from test-backend-ops' console output.
pub fn parse_ggml_us(text: &str, name: &str, n: usize) -> Option<f64> {
    let key = format!("MUL_MAT(type_a={name},");
    let nk = format!(",n={n},");
    text.lines()
        .filter(|l| l.contains(&key) && l.contains(&nk))
        .find_map(|l| {
            let before = &l[..l.find(" us/run")?];
            let num = before
                .rsplit(|c: char| c.is_whitespace() || c == '-')
                .find(|s| !s.is_empty())?;
            num.parse().ok()
        })
}

/// Logical CPUs this process may run on.
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs the benchmark; `progress` gets one line per step (for a terminal).
pub fn run_kernel_bench(
    opts: &KernelBenchOptions,
    mut progress: impl FnMut(&str),
) -> Result<KernelBenchReport> {
    if opts
        .types
        .iter()
        .any(|t| !GgmlType::WEIGHTS.contains(t) && !t.is_turboquant())
    {
        bail!(
            "GEMV takes weight types only: {:?}",
            GgmlType::WEIGHTS.map(|t| t.name())
        );
    }
    if opts.no_gemv && !opts.gemm {
        bail!("--no-gemv leaves nothing to measure without --gemm");
    }
    if opts.threads.is_empty() || opts.threads.contains(&0) {
        bail!("--threads needs positive thread counts");
    }
    let k = kernels();
    let bytes = opts.size_mib << 20;
    let clock = gq_kernels::bench::vector_clock_ghz();
    progress(&format!(
        "cpu: {} ({}), {} CPUs; kernels {}; vector clock {clock:.2} GHz",
        gq_kernels::cpu_model(),
        gq_kernels::cpu_vendor(),
        cpus(),
        k.name()
    ));
    let mut sm = huge_buffer(bytes)?;
    // SAFETY: the mapping is page-aligned (so u64-aligned) and any bytes are valid u64s;
    // align_to_mut only reinterprets the aligned middle part.
    let (_, stream, _) = unsafe { sm.align_to_mut::<u64>() };
    fill_stream_buffer(stream);
    let stream = &*stream;

    let bin = ggml_binary();
    let (ggml_bin, ggml_note) = if !opts.ggml {
        (
            None,
            Some("ggml comparison disabled (--no-ggml)".to_string()),
        )
    } else if bin.is_file() {
        (Some(bin), None)
    } else {
        (
            None,
            Some(format!(
                "{} not found: run scripts/get_peers.sh (or set GQ_PEERS)",
                bin.display()
            )),
        )
    };
    let gt = ggml_threads();
    let ggml_pool = pool(gt)?;

    // One matrix per type, filled once and reused for every thread count.
    let mut runs: Vec<ThreadsRun> = opts
        .threads
        .iter()
        .map(|&t| ThreadsRun {
            threads: t,
            bandwidth_gbps: 0.0,
            bandwidth_median_gbps: 0.0,
            results: Vec::new(),
        })
        .collect();
    let gemv_types: &[GgmlType] = if opts.no_gemv { &[] } else { &opts.types };
    for (ri, &t) in opts.threads.iter().enumerate() {
        if opts.no_gemv {
            break;
        }
        let p = pool(t)?;
        let bw0 = p.install(|| time_read(stream, opts.reps));
        runs[ri].bandwidth_gbps = bw0.gbps(bytes);
        runs[ri].bandwidth_median_gbps = bytes as f64 / bw0.median / 1e9;
        progress(&format!(
            "{t} threads: read bandwidth {:.2} GB/s",
            bw0.gbps(bytes)
        ));
    }
    let mut ggml_gemv = Vec::new();
    for &ty in gemv_types {
        let rb = ty
            .row_bytes(opts.cols)
            .ok_or_else(|| anyhow!("{ty}: {} columns are not whole blocks", opts.cols))?;
        let rows = (bytes / rb).max(1);
        let wb = rb * rows;
        let mut w = huge_buffer(wb)?;
        fill_random_weights(ty, &mut w[..wb], 0x9e37_79b9_7f4a_7c15);
        for (ri, &t) in opts.threads.iter().enumerate() {
            progress(&format!(
                "{ty}: GEMV {rows} × {}, {t} threads, alternating with reads",
                opts.cols
            ));
            let p = pool(t)?;
            let (tg, tr) = gemv_and_read_timing(&p, stream, ty, &w[..wb], opts.cols, opts.reps);
            let bw = tr.gbps(bytes);
            progress(&format!(
                "{ty}: {t} threads: {:.2} GB/s, bw {bw:.2} GB/s, {:.1} %bw",
                tg.gbps(wb),
                100.0 * tg.gbps(wb) / bw
            ));
            let run = &mut runs[ri];
            run.bandwidth_gbps = run.bandwidth_gbps.max(bw);
            run.results.push(TypeResult {
                ty: ty.name().to_string(),
                threads: t,
                rows,
                cols: opts.cols,
                weight_bytes: wb,
                gbps: tg.gbps(wb),
                median_gbps: wb as f64 / tg.median / 1e9,
                bandwidth_gbps: bw,
                ratio_to_bandwidth: tg.gbps(wb) / bw,
            });
        }
        drop(w);
        // ggml has no TurboQuant types to compare with.
        if let Some(bin) = ggml_bin.as_ref().filter(|_| ty.is_ggml()) {
            progress(&format!(
                "{ty}: gq and ggml on {GGML_M} × {GGML_K}, {gt} thread(s)"
            ));
            let (gb, gqt) = gemv_timing(&ggml_pool, ty, GGML_M, GGML_K, opts.reps * 5)?;
            let us = match run_ggml(bin, ty, 1) {
                Ok(us) => Some(us),
                Err(e) => {
                    progress(&format!("{ty}: ggml failed: {e:#}"));
                    None
                }
            };
            let ggml_gbps = us.map(|us| gb as f64 / (us * 1e-6) / 1e9);
            let gq_gbps = gqt.gbps(gb);
            let gq_median_gbps = gb as f64 / gqt.median / 1e9;
            progress(&format!(
                "{ty}: GEMV {gt} thread(s): gq {gq_gbps:.2} (median {gq_median_gbps:.2}) GB/s, ggml {:?} GB/s",
                ggml_gbps
            ));
            ggml_gemv.push((
                ty.name().to_string(),
                GgmlComparison {
                    m: GGML_M,
                    k: GGML_K,
                    threads: gt,
                    gq_gbps,
                    gq_median_gbps,
                    ggml_gbps,
                    ratio: ggml_gbps.map(|g| gq_median_gbps / g),
                    ggml_us: us,
                },
            ));
        }
    }
    let mut gemm = Vec::new();
    if opts.gemm {
        let tmax = *opts.threads.iter().max().unwrap_or(&gt);
        for &ty in &opts.types {
            let rb = ty.row_bytes(GGML_K).expect("whole blocks");
            let wb = rb * GGML_M;
            let mut w = huge_buffer(wb)?;
            fill_random_weights(ty, &mut w[..wb], 0x5851_f42d_4c95_7f2d);
            let flops = 2.0 * (GGML_M * GGML_K * GEMM_N) as f64;
            progress(&format!(
                "{ty}: GEMM {GGML_M} × {GGML_K} · n = {GEMM_N}, {gt} thread(s)"
            ));
            let reps = 3;
            let t = ggml_pool.install(|| time_gemm(k, ty, &w[..wb], GGML_K, GEMM_N, reps));
            let gq_gflops = flops / t.best / 1e9;
            let gq_max_threads = if tmax != gt {
                let p = pool(tmax)?;
                let t = p.install(|| time_gemm(k, ty, &w[..wb], GGML_K, GEMM_N, reps));
                Some((tmax, flops / t.best / 1e9))
            } else {
                None
            };
            drop(w);
            let ggml_gflops = match &ggml_bin {
                Some(bin) if ty.is_ggml() => match run_ggml(bin, ty, GEMM_N) {
                    Ok(us) => Some(flops / (us * 1e-6) / 1e9),
                    Err(e) => {
                        progress(&format!("{ty}: ggml failed: {e:#}"));
                        None
                    }
                },
                _ => None,
            };
            progress(&format!(
                "{ty}: GEMM {gt} thread(s): gq {gq_gflops:.1} GFLOP/s, ggml {ggml_gflops:?}; max threads {gq_max_threads:?}"
            ));
            let amx = k.gemm_uses_amx(
                ty,
                GGML_K,
                GEMM_N,
                k.default_act(ty),
                gq_kernels::amx_default(ty),
            );
            let (ops, what) = if amx {
                gq_kernels::bench::amx_peak_ops_per_cycle(ty)
            } else {
                gq_kernels::bench::peak_ops_per_cycle(k, ty)
            };
            let peak = ops * clock * gt as f64;
            gemm.push(GemmResult {
                ty: ty.name().to_string(),
                path: if k.gemm_is_tiled(ty, GGML_K, GEMM_N, k.default_act(ty)) {
                    format!("{}; GEMM: tiled ({})", k.path(ty), amx_note(amx))
                } else {
                    k.path(ty)
                },
                threads: gt,
                gq_gflops,
                gq_frac_peak: if peak > 0.0 { gq_gflops / peak } else { 0.0 },
                ggml_gflops,
                ratio: ggml_gflops.map(|g| gq_gflops / g),
                peak: format!("{ops} ops/cycle/core ({what}) × {clock:.2} GHz × {gt} thread(s)"),
                gq_max_threads,
            });
        }
    }
    Ok(KernelBenchReport {
        cpu: gq_kernels::cpu_model(),
        vendor: gq_kernels::cpu_vendor(),
        cpus: cpus(),
        kernels: k.name(),
        vector_clock_ghz: clock,
        paths: opts
            .types
            .iter()
            .map(|&t| {
                let tiled = opts.gemm && k.gemm_is_tiled(t, GGML_K, GEMM_N, k.default_act(t));
                let gemm = if tiled {
                    let amx = k.gemm_uses_amx(
                        t,
                        GGML_K,
                        GEMM_N,
                        k.default_act(t),
                        gq_kernels::amx_default(t),
                    );
                    format!("; GEMM n=512: tiled ({})", amx_note(amx))
                } else {
                    String::new()
                };
                (t.name().to_string(), format!("{}{gemm}", k.path(t)))
            })
            .collect(),
        size_mib: opts.size_mib,
        runs: if opts.no_gemv { Vec::new() } else { runs },
        ggml_gemv,
        gemm,
        ggml_binary: ggml_bin,
        ggml_note,
    })
}

/// How the tiled GEMM runs: AMX tiles, or AVX-512 lanes = rows (saying why not AMX).
fn amx_note(amx: bool) -> &'static str {
    if amx {
        "AMX tiles"
    } else if gq_kernels::amx_available() {
        "lanes = rows; AMX not used for this type (GQ_AMX, or no AMX kernel)"
    } else {
        "lanes = rows; no AMX on this CPU/OS"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_test_backend_ops_line() {
        let out = "  MUL_MAT(type_a=q4_K,type_b=f32,m=4096,n=1,k=14336,bs=[1,1],nr=[1,1],per=[0,1,2,3],k_v=0,o=1,src_overlap=0,m_v=0,pad=0):                345 runs -  3239.35 us/run - 117.44 MFLOP/run - \x1b[1;34m 36.25 GFLOPS\x1b[0m\n";
        assert_eq!(parse_ggml_us(out, "q4_K", 1), Some(3239.35));
        assert_eq!(parse_ggml_us(out, "q4_K", 512), None);
        assert_eq!(parse_ggml_us(out, "q8_0", 1), None);
        assert_eq!(ggml_type_name(GgmlType::Q4_K), "q4_K");
        assert_eq!(ggml_type_name(GgmlType::BF16), "bf16");
        assert_eq!(ggml_type_name(GgmlType::Q8_0), "q8_0");
    }
}
