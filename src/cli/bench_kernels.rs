//! `gq bench kernels`: memory read bandwidth, GEMV throughput per weight type on a matrix much
//! larger than the caches, and (when llama.cpp's `test-backend-ops` is available) ggml's
//! MUL_MAT on the same GEMV shape.
//!
//! Buffers are anonymous mappings with transparent huge pages requested, so that the bandwidth
//! probe and the GEMVs see the same paging. Every figure is the best of `reps` timed runs after
//! a warm-up (STREAM's convention); medians are kept in the report.

use anyhow::{anyhow, bail, Context, Result};
use gq_kernels::bench::{fill_random_weights, fill_stream_buffer, time_gemv, time_read, Timing};
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
    /// Threads for the bandwidth probe and the large GEMVs.
    pub threads: usize,
    /// Size of the bandwidth buffer and of each weight matrix, MiB.
    pub size_mib: usize,
    /// Row length of the large matrices.
    pub cols: usize,
    /// Timed runs per measurement (best is reported).
    pub reps: usize,
    /// Run ggml's `test-backend-ops` when found.
    pub ggml: bool,
}

impl Default for KernelBenchOptions {
    fn default() -> Self {
        KernelBenchOptions {
            types: GgmlType::WEIGHTS
                .into_iter()
                .chain(GgmlType::TURBOQUANT)
                .collect(),
            threads: 2,
            size_mib: 384,
            cols: 4096,
            reps: 10,
            ggml: true,
        }
    }
}

/// GEMV results for one type.
#[derive(Clone, Debug, Serialize)]
pub struct TypeResult {
    /// ggml's type name.
    pub ty: String,
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
    /// The comparison on ggml's GEMV shape, when ggml ran.
    pub ggml: Option<GgmlComparison>,
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
    /// ggml, weight GB/s from its mean time per run.
    pub ggml_gbps: Option<f64>,
    /// `gq_gbps / ggml_gbps`.
    pub ratio: Option<f64>,
    /// ggml's µs per run.
    pub ggml_us: Option<f64>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct KernelBenchReport {
    /// Kernel ISA in use.
    pub isa: String,
    /// Threads of the bandwidth probe and the large GEMVs.
    pub threads: usize,
    /// Buffer / matrix size, MiB.
    pub size_mib: usize,
    /// Read bandwidth, GB/s (best of all probes: the first and those alternated with GEMVs).
    pub bandwidth_gbps: f64,
    /// Median of the first probe's runs, GB/s.
    pub bandwidth_median_gbps: f64,
    /// Per type.
    pub results: Vec<TypeResult>,
    /// The `test-backend-ops` binary used, if any.
    pub ggml_binary: Option<PathBuf>,
    /// Why ggml did not run, if it did not.
    pub ggml_note: Option<String>,
}

/// ggml's perf-test GEMV shape (`test_mul_mat(type, f32, m = 4096, n = 1, k = 14336)`).
pub const GGML_M: usize = 4096;
/// See [`GGML_M`].
pub const GGML_K: usize = 14336;

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

/// Times a GEMV of `rows × cols` random weights of `ty` in `pool`, alternating each run with
/// a full read of `stream` (so that both see the same machine load); returns the weight bytes,
/// the GEMV timing and the read timing.
pub fn gemv_and_read_timing(
    pool: &rayon::ThreadPool,
    stream: &[u64],
    ty: GgmlType,
    rows: usize,
    cols: usize,
    reps: usize,
) -> Result<(usize, Timing, Timing)> {
    let bytes = ty
        .row_bytes(cols)
        .ok_or_else(|| anyhow!("{ty}: {cols} columns are not whole blocks"))?
        * rows;
    let mut w = huge_buffer(bytes)?;
    fill_random_weights(ty, &mut w[..bytes], 0x9e37_79b9_7f4a_7c15);
    let k = kernels();
    let w = &w[..bytes];
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
    Ok((bytes, timing(tg), timing(tr)))
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

/// Runs ggml's MUL_MAT perf test for `ty` on the [`GGML_M`] × [`GGML_K`] GEMV and returns its
/// µs per run.
pub fn run_ggml(bin: &Path, ty: GgmlType) -> Result<f64> {
    let filter = format!(
        "type_a={},type_b=f32,m={GGML_M},n=1,k={GGML_K},",
        ggml_type_name(ty)
    );
    let out = Command::new(bin)
        .args(["perf", "-o", "MUL_MAT", "-b", "CPU", "-p", &filter])
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_ggml_us(&text, &ggml_type_name(ty)).ok_or_else(|| {
        anyhow!(
            "no MUL_MAT timing for {ty} in test-backend-ops output:\n{}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Extracts µs/run for `type_a=<name>,…,n=1` from test-backend-ops' console output.
pub fn parse_ggml_us(text: &str, name: &str) -> Option<f64> {
    let key = format!("MUL_MAT(type_a={name},");
    text.lines()
        .filter(|l| l.contains(&key) && l.contains(",n=1,"))
        .find_map(|l| {
            let before = &l[..l.find(" us/run")?];
            let num = before
                .rsplit(|c: char| c.is_whitespace() || c == '-')
                .find(|s| !s.is_empty())?;
            num.parse().ok()
        })
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
    let bytes = opts.size_mib << 20;
    let main_pool = pool(opts.threads)?;
    progress(&format!(
        "read bandwidth: {} MiB, {} threads",
        opts.size_mib, opts.threads
    ));
    let mut sm = huge_buffer(bytes)?;
    // SAFETY: the mapping is page-aligned (so u64-aligned) and any bytes are valid u64s;
    // align_to_mut only reinterprets the aligned middle part.
    let (_, stream, _) = unsafe { sm.align_to_mut::<u64>() };
    fill_stream_buffer(stream);
    let stream = &*stream;
    let bw0 = main_pool.install(|| time_read(stream, opts.reps));

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

    let mut results = Vec::new();
    let mut bw_best = bw0.gbps(bytes);
    for &ty in &opts.types {
        let rows = (bytes
            / ty.row_bytes(opts.cols)
                .ok_or_else(|| anyhow!("{ty}: {} columns are not whole blocks", opts.cols))?)
        .max(1);
        progress(&format!(
            "{ty}: GEMV {rows} × {} alternating with reads",
            opts.cols
        ));
        let (wb, t, tr) = gemv_and_read_timing(&main_pool, stream, ty, rows, opts.cols, opts.reps)?;
        let bw = tr.gbps(bytes);
        bw_best = bw_best.max(bw);
        let ggml = match &ggml_bin {
            // ggml has no TurboQuant types to compare with.
            Some(bin) if ty.is_ggml() => {
                progress(&format!(
                    "{ty}: gq and ggml on {GGML_M} × {GGML_K}, {gt} thread(s)"
                ));
                let (gb, gqt) = gemv_timing(&ggml_pool, ty, GGML_M, GGML_K, opts.reps * 5)?;
                let us = match run_ggml(bin, ty) {
                    Ok(us) => Some(us),
                    Err(e) => {
                        progress(&format!("{ty}: ggml failed: {e:#}"));
                        None
                    }
                };
                let ggml_gbps = us.map(|us| gb as f64 / (us * 1e-6) / 1e9);
                let gq_gbps = gqt.gbps(gb);
                Some(GgmlComparison {
                    m: GGML_M,
                    k: GGML_K,
                    threads: gt,
                    gq_gbps,
                    ggml_gbps,
                    ratio: ggml_gbps.map(|g| gq_gbps / g),
                    ggml_us: us,
                })
            }
            _ => None,
        };
        results.push(TypeResult {
            ty: ty.name().to_string(),
            rows,
            cols: opts.cols,
            weight_bytes: wb,
            gbps: t.gbps(wb),
            median_gbps: wb as f64 / t.median / 1e9,
            bandwidth_gbps: bw,
            ratio_to_bandwidth: t.gbps(wb) / bw,
            ggml,
        });
    }
    let bw = bw_best;
    Ok(KernelBenchReport {
        isa: kernels().isa().name().to_string(),
        threads: opts.threads,
        size_mib: opts.size_mib,
        bandwidth_gbps: bw,
        bandwidth_median_gbps: bytes as f64 / bw0.median / 1e9,
        results,
        ggml_binary: ggml_bin,
        ggml_note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_test_backend_ops_line() {
        let out = "  MUL_MAT(type_a=q4_K,type_b=f32,m=4096,n=1,k=14336,bs=[1,1],nr=[1,1],per=[0,1,2,3],k_v=0,o=1,src_overlap=0,m_v=0,pad=0):                345 runs -  3239.35 us/run - 117.44 MFLOP/run - \x1b[1;34m 36.25 GFLOPS\x1b[0m\n";
        assert_eq!(parse_ggml_us(out, "q4_K"), Some(3239.35));
        assert_eq!(parse_ggml_us(out, "q8_0"), None);
        assert_eq!(ggml_type_name(GgmlType::Q4_K), "q4_K");
        assert_eq!(ggml_type_name(GgmlType::BF16), "bf16");
        assert_eq!(ggml_type_name(GgmlType::Q8_0), "q8_0");
    }
}
