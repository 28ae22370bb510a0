//! `gq quantize`: open → plan → execute → finish.
//!
//! Workers (rayon) convert row chunks of the tensors in plan order; a writer thread receives
//! finished windows of chunks through a bounded channel and writes them strictly in order. Memory
//! is bounded by the window size and the channel depth, not by the model. A chunk's bytes depend
//! only on its input rows, so the output does not depend on the thread count.

use crate::atomic_file::{check_interrupted, AtomicFile};
use crate::gemma4::mixture::QuantOptions;
use crate::gemma4::FileType;
use crate::gemma4::{self, Plan, Source, TextConfig};
use crate::gguf::{GgmlType, GgufWriter};
use crate::report::{ErrorSums, TensorReport};
use crate::safetensors::Checkpoint;
use crate::tokenizer::Vocab;
use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

/// Elements per work item. Large tensors are split into row chunks of about this size.
pub const CHUNK_ELEMENTS: usize = 1 << 18;

/// Set by the interrupt handler ([`crate::atomic_file::install_signal_handler`]); the pipeline
/// stops at the next window of chunks and removes its temp file.
pub use crate::atomic_file::INTERRUPTED;

/// Options of one conversion.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Worker threads (0 = all cores).
    pub threads: usize,
    /// Show a progress bar (only on a terminal).
    pub progress: bool,
    /// Write NaN/Inf values into quantized tensors instead of failing.
    pub allow_nonfinite: bool,
    /// llama-quantize's type options (overrides, --pure, imatrix).
    pub quant: QuantOptions,
    /// Measure each tensor's quantization error ([`Summary::report`]).
    pub report: bool,
}

/// What a finished conversion did.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Output path.
    pub path: PathBuf,
    /// Tensors written.
    pub n_tensors: usize,
    /// Weights written.
    pub n_weights: u64,
    /// Bytes of checkpoint tensors read.
    pub bytes_in: u64,
    /// Bytes of the output file.
    pub bytes_out: u64,
    /// Bytes of tensor data written.
    pub data_bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// Vision/audio tensors skipped.
    pub skipped: usize,
    /// Warnings (non-finite values kept in float tensors).
    pub warnings: Vec<String>,
    /// Peak resident memory of the process (VmHWM), when the OS reports it.
    pub peak_rss_bytes: Option<u64>,
    /// Per-tensor types, rules and errors, in file order (with [`Options::report`]).
    pub report: Vec<TensorReport>,
    /// The tensor types of the file that only gq reads (TurboQuant), sorted, each once: a
    /// non-empty list means llama.cpp and Ollama cannot load the file.
    pub gq_only_types: Vec<String>,
}

/// The process's peak resident set size (Linux `VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl Summary {
    /// Bits per weight of the tensor data.
    pub fn bits_per_weight(&self) -> f64 {
        self.data_bytes as f64 * 8.0 / self.n_weights.max(1) as f64
    }
}

/// Reads config, checkpoint and tokenizer and builds the plan (step 1 and 2).
pub fn open_and_plan(dir: &Path, ft: FileType, qopts: &QuantOptions) -> Result<(Checkpoint, Plan)> {
    check_dir(dir)?;
    let cfg = TextConfig::load(dir)?;
    let ckpt = Checkpoint::open(dir)?;
    gemma4::check::check_tensors(&cfg, &ckpt)?;
    let vocab = Vocab::load(dir)?;
    let name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into());
    let plan = gemma4::plan::build(&ckpt, &cfg, &vocab, ft, &name, qopts)?;
    Ok((ckpt, plan))
}

/// `dir` must be a directory (a file, a symbolic link loop or a missing path is named as such).
pub fn check_dir(dir: &Path) -> Result<()> {
    let m = std::fs::metadata(dir)
        .with_context(|| format!("{}: cannot open the checkpoint directory", dir.display()))?;
    if !m.is_dir() {
        bail!(
            "{}: not a directory (a checkpoint is a directory with config.json, safetensors and tokenizer files)",
            dir.display()
        );
    }
    Ok(())
}

/// One unit of work: elements `[first, first + n)` of plan tensor `tensor`.
#[derive(Clone, Copy)]
struct Chunk {
    tensor: usize,
    first: usize,
    n: usize,
}

fn chunks(plan: &Plan) -> Vec<Chunk> {
    let mut out = Vec::new();
    for (i, t) in plan.tensors.iter().enumerate() {
        let n_el = t.out.n_elements() as usize;
        let row = t.out.dims[0].max(1) as usize;
        let rows_per = (CHUNK_ELEMENTS / row).max(1);
        let mut first = 0;
        while first < n_el {
            let n = (rows_per * row).min(n_el - first);
            out.push(Chunk {
                tensor: i,
                first,
                n,
            });
            first += n;
        }
    }
    out
}

struct Done {
    bytes: Vec<u8>,
    nonfinite: usize,
    stats: Option<ErrorSums>,
}

fn convert(
    ckpt: &Checkpoint,
    plan: &Plan,
    c: Chunk,
    report: bool,
    tq: Option<&gq_kernels::TqParams>,
) -> Result<Done> {
    let t = &plan.tensors[c.tensor];
    // Elements [first, first + out.len()) of the tensor as f32.
    let read = |first: usize, out: &mut [f32]| -> Result<()> {
        match &t.source {
            Source::Values(v) => out.copy_from_slice(&v[first..first + out.len()]),
            Source::Checkpoint { index, .. } => {
                let r = &ckpt.tensors[*index];
                ckpt.read_f32(r, first, out).map_err(|e| {
                    anyhow!(
                        "{}: tensor {}: {e}",
                        ckpt.shards[r.shard].path.display(),
                        r.name
                    )
                })?;
            }
        }
        Ok(())
    };
    if t.out.ty.is_turboquant() && !report {
        return convert_tq_pieces(plan, c, tq, &read);
    }
    let mut vals = vec![0f32; c.n];
    read(c.first, &mut vals)?;
    let nonfinite = vals.iter().filter(|v| !v.is_finite()).count();
    let fmt = gq_kernels::format(t.out.ty)
        .ok_or_else(|| anyhow!("type {} is not supported yet", t.out.ty))?;
    let row = t.out.dims[0] as usize;
    let row_bytes = t
        .out
        .ty
        .row_bytes(row)
        .expect("row length checked by the plan");
    let mut bytes = vec![0u8; c.n / row * row_bytes];
    let rows_per_expert = t.out.dims.get(1).copied().unwrap_or(1).max(1) as usize;
    let first_row = c.first / row;
    if t.out.ty.is_turboquant() {
        let p = tq.expect("the plan writes gq.tq.* for TurboQuant tensors");
        if nonfinite > 0 {
            return Err(tq_nonfinite(t));
        }
        // All rows of the chunk in one call (the encoder batches blocks across rows), split
        // where the importance changes (one row of importance per expert).
        encode_tq_rows(t, p, &vals, (0, c.n / row), first_row, &mut bytes)?;
        let stats = if report {
            Some(ErrorSums::of_quantized_rows(
                &vals, t.out.ty, &bytes, row, tq,
            )?)
        } else {
            None
        };
        return Ok(Done {
            bytes,
            nonfinite,
            stats,
        });
    }
    for (r, (src, dst)) in vals
        .chunks_exact(row)
        .zip(bytes.chunks_exact_mut(row_bytes))
        .enumerate()
    {
        match &t.importance {
            Some(imp) => {
                let e = (first_row + r) / rows_per_expert;
                fmt.quantize_row_imatrix(src, Some(&imp[e * row..(e + 1) * row]), dst);
            }
            None => fmt.quantize_row(src, dst),
        }
    }
    if nonfinite == 0 && !fmt.validate_row(&bytes) {
        bail!(
            "tensor {} ({}): quantized data validation failed: a {} block scale is not finite \
             (llama-quantize refuses such rows too)",
            t.hf_name,
            t.out.name,
            t.out.ty
        );
    }
    let stats = if report {
        Some(ErrorSums::of_quantized(&vals, t.out.ty, &bytes)?)
    } else {
        None
    };
    Ok(Done {
        bytes,
        nonfinite,
        stats,
    })
}

/// The error for a TurboQuant tensor with NaN/Inf values (its types have no code for them).
fn tq_nonfinite(t: &gemma4::PlanTensor) -> anyhow::Error {
    anyhow!(
        "tensor {} ({}): non-finite values (NaN/Inf) cannot be stored in {} (it has no code for \
         them); choose another type for this tensor with --tensor-type",
        t.hf_name,
        t.out.name,
        t.out.ty
    )
}

/// Encodes rows `r0..r1` of a chunk (whose first row is row `first_row` of the tensor) to
/// `t`'s TurboQuant type: `vals` holds those rows' f32 values, `bytes` the chunk's output rows.
/// One call per run of rows with the same importance row (one per expert).
fn encode_tq_rows(
    t: &gemma4::PlanTensor,
    p: &gq_kernels::TqParams,
    vals: &[f32],
    (r0, r1): (usize, usize),
    first_row: usize,
    bytes: &mut [u8],
) -> Result<()> {
    let row = t.out.dims[0] as usize;
    let row_bytes = t
        .out
        .ty
        .row_bytes(row)
        .expect("row length checked by the plan");
    let rows_per_expert = t.out.dims.get(1).copied().unwrap_or(1).max(1) as usize;
    let mut r = r0;
    while r < r1 {
        let e = (first_row + r) / rows_per_expert;
        let end = ((e + 1) * rows_per_expert - first_row).min(r1);
        let imp = t.importance.as_ref().map(|i| &i[e * row..(e + 1) * row]);
        gq_kernels::formats::tq::quantize_rows(
            t.out.ty,
            p,
            &vals[(r - r0) * row..(end - r0) * row],
            row,
            imp,
            &mut bytes[r * row_bytes..end * row_bytes],
            gq_kernels::Isa::selected(),
        )
        .map_err(|e| anyhow!("tensor {} ({}): {e}", t.hf_name, t.out.name))?;
        r = end;
    }
    Ok(())
}

/// Elements per piece of a TurboQuant chunk that [`convert_tq_pieces`] reads and encodes at a
/// time (128 KiB of f32).
const TQ_PIECE_ELEMENTS: usize = 1 << 15;

/// A TurboQuant chunk without error statistics, read and encoded a piece of whole rows at a
/// time ([`TQ_PIECE_ELEMENTS`]): the f32 rows of a piece stay in the core's L2 cache beside the
/// encoder's candidate tables (a whole chunk's 1 MiB of f32 would evict them). The bytes are
/// those of one call over the chunk: a block's bytes depend only on its weights, the row's
/// seed and its importance row.
fn convert_tq_pieces(
    plan: &Plan,
    c: Chunk,
    tq: Option<&gq_kernels::TqParams>,
    read: &dyn Fn(usize, &mut [f32]) -> Result<()>,
) -> Result<Done> {
    let t = &plan.tensors[c.tensor];
    let p = tq.expect("the plan writes gq.tq.* for TurboQuant tensors");
    let row = t.out.dims[0] as usize;
    let row_bytes = t
        .out
        .ty
        .row_bytes(row)
        .expect("row length checked by the plan");
    let n_rows = c.n / row;
    let mut bytes = vec![0u8; n_rows * row_bytes];
    let first_row = c.first / row;
    let piece_rows = (TQ_PIECE_ELEMENTS / row).max(1);
    let mut vals = vec![0f32; piece_rows.min(n_rows) * row];
    let mut r0 = 0;
    while r0 < n_rows {
        let r1 = (r0 + piece_rows).min(n_rows);
        let vals = &mut vals[..(r1 - r0) * row];
        read(c.first + r0 * row, vals)?;
        if vals.iter().any(|v| !v.is_finite()) {
            return Err(tq_nonfinite(t));
        }
        encode_tq_rows(t, p, vals, (r0, r1), first_row, &mut bytes)?;
        r0 = r1;
    }
    Ok(Done {
        bytes,
        nonfinite: 0,
        stats: None,
    })
}

fn is_float(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

/// Converts the checkpoint in `dir` to `out` (steps 1 to 4).
pub fn quantize(dir: &Path, out: &Path, ft: FileType, opts: &Options) -> Result<Summary> {
    let start = Instant::now();
    let (ckpt, plan) = open_and_plan(dir, ft, &opts.quant)?;
    let tmp = AtomicFile::create(out)?;
    let wctx = || format!("{}: write failed", out.display());

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .context("cannot start worker threads")?;
    let work = chunks(&plan);
    let tq = plan.tq_params();
    let window = (pool.current_num_threads() * 4).max(4);
    let bar = progress_bar(opts.progress, plan.data_bytes);

    let file = tmp.file().try_clone().with_context(wctx)?;
    let tensors_out: Vec<_> = plan.tensors.iter().map(|t| t.out.clone()).collect();
    let mut writer = GgufWriter::new(
        BufWriter::with_capacity(1 << 22, file),
        &plan.metadata,
        tensors_out,
    )
    .with_context(wctx)?;
    let expected_len = writer.expected_len();
    let mut warnings = Vec::new();
    let mut reported = vec![false; plan.tensors.len()];
    let mut sums = vec![ErrorSums::default(); plan.tensors.len()];

    let (tx, rx) = sync_channel::<Vec<(Chunk, Done)>>(2);
    let result: Result<()> = std::thread::scope(|s| {
        let write_thread = s.spawn(move || -> Result<GgufWriter<BufWriter<std::fs::File>>> {
            for batch in rx {
                for (_, d) in batch {
                    writer.write_tensor_data(&d.bytes)?;
                }
            }
            Ok(writer)
        });
        let mut produce = || -> Result<()> {
            for win in work.chunks(window) {
                check_interrupted()?;
                let done: Vec<Result<Done>> = pool.install(|| {
                    win.par_iter()
                        .map(|&c| convert(&ckpt, &plan, c, opts.report, tq.as_ref()))
                        .collect()
                });
                let mut batch = Vec::with_capacity(win.len());
                for (c, d) in win.iter().zip(done) {
                    let d = d?;
                    let t = &plan.tensors[c.tensor];
                    if let Some(st) = &d.stats {
                        sums[c.tensor].add(st);
                    }
                    if d.nonfinite > 0 && !reported[c.tensor] {
                        reported[c.tensor] = true;
                        let msg = format!(
                            "tensor {} ({}): non-finite values (NaN/Inf)",
                            t.hf_name, t.out.name
                        );
                        if is_float(t.out.ty) {
                            warnings.push(format!("{msg}; kept as they are in {}", t.out.ty));
                        } else if !opts.allow_nonfinite {
                            bail!(
                                "{}: {msg} cannot be quantized to {}; pass --allow-nonfinite to write them anyway",
                                dir.display(),
                                t.out.ty
                            );
                        } else {
                            warnings.push(format!(
                                "{msg}; written to {} because of --allow-nonfinite",
                                t.out.ty
                            ));
                        }
                    }
                    bar.inc(d.bytes.len() as u64);
                    batch.push((*c, d));
                }
                for c in win {
                    if let Source::Checkpoint { index, .. } = plan.tensors[c.tensor].source {
                        ckpt.release(&ckpt.tensors[index], c.first, c.n);
                    }
                }
                if tx.send(batch).is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Ok(())
        };
        let produced = produce();
        drop(tx);
        let written = write_thread
            .join()
            .map_err(|_| anyhow!("writer thread panicked"))?;
        produced?;
        let w = written.with_context(wctx)?;
        let buf = w.finish().with_context(wctx)?;
        let f = buf
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(wctx)?;
        f.sync_all().with_context(wctx)?;
        Ok(())
    });
    bar.finish_and_clear();
    result?;
    let actual = tmp.file().metadata().with_context(wctx)?.len();
    if actual != expected_len {
        bail!(
            "{}: wrote {actual} bytes, expected {expected_len}",
            out.display()
        );
    }
    check_interrupted()?;
    tmp.commit()?;

    let bytes_in = plan
        .tensors
        .iter()
        .filter_map(|t| match t.source {
            Source::Checkpoint { index, .. } => {
                Some((ckpt.tensors[index].end - ckpt.tensors[index].start) as u64)
            }
            Source::Values(_) => None,
        })
        .sum();
    Ok(Summary {
        path: out.to_path_buf(),
        n_tensors: plan.tensors.len(),
        n_weights: plan.tensors.iter().map(|t| t.out.n_elements()).sum(),
        bytes_in,
        bytes_out: expected_len,
        data_bytes: plan.tensors.iter().map(|t| t.out.n_bytes()).sum(),
        seconds: start.elapsed().as_secs_f64(),
        skipped: plan.skipped.len(),
        warnings,
        peak_rss_bytes: peak_rss_bytes(),
        gq_only_types: {
            let mut v: Vec<String> = plan
                .tensors
                .iter()
                .filter(|t| !t.out.ty.is_ggml())
                .map(|t| t.out.ty.name().to_string())
                .collect();
            v.sort();
            v.dedup();
            v
        },
        report: if opts.report {
            plan.tensors
                .iter()
                .zip(&sums)
                .map(|(t, s)| {
                    TensorReport::new(&t.out.name, &t.out.dims, t.out.ty, t.rule.to_string(), s)
                })
                .collect()
        } else {
            Vec::new()
        },
    })
}

fn progress_bar(show: bool, total: u64) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !show || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Flushes stdout, ignoring errors (used by the CLI after printing).
pub fn flush_stdout() {
    let _ = std::io::stdout().flush();
}
