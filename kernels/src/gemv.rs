//! Matrix–vector (GEMV) and small-batch matrix–matrix (GEMM) products over a whole row-major
//! weight matrix given as bytes, split over the current thread count ([`crate::pool`]).
//!
//! The activations are quantized once per call into caller-provided scratch (the weight type's
//! [`GgmlType::vec_dot_type`]); F32 and F16 weights read the f32 activations directly, BF16
//! weights take them rounded to BF16 where the table has the native kernel
//! ([`Kernels::default_act`]). Nothing is allocated on the hot path.

use crate::dispatch::{
    act_bytes, act_type, row_bytes, ActLayout, Dot2Fn, DotFn, FloatAct, GemmFn, Kernels, Row1Fn,
};
use crate::pool::{par_chunks_mut, par_for, rows_mut};
use crate::GgmlType;

#[cfg(not(target_endian = "little"))]
compile_error!("gq-kernels reads f32 activations as little-endian bytes");

/// Scratch bytes [`Kernels::gemv`] needs for one activation row of `cols` elements (0 for F32
/// and F16, which use the f32 activations as they are; `2·cols` for BF16, whose activations
/// may be rounded to BF16; for quantized types the larger of the activation type's row and
/// the row kernels' private layout, e.g. 36 bytes per Q8_0 block).
pub fn gemv_scratch_bytes(ty: GgmlType, cols: usize) -> usize {
    if ty == GgmlType::BF16 {
        2 * cols
    } else if ty.is_float() {
        0
    } else {
        let natural = act_bytes(ty, cols);
        if act_type(ty) == GgmlType::Q8_0 {
            // The Intel table's biased Q8_0 (36 bytes per block) and "Q8 lanes" (68) layouts.
            natural.max(68 * (cols / 32))
        } else if act_type(ty) == GgmlType::Q8_1 {
            // The Intel table's "Q8 lanes" layout of a Q8_1 source (40 bytes per block).
            natural.max(40 * (cols / 32))
        } else if ty == GgmlType::Q3_K {
            // The Intel table's Q8_K-3 layout (516 bytes per block).
            natural.max(516 * (cols / 256))
        } else {
            natural
        }
    }
}

/// Bytes between two f32 activation rows of `cols` elements in the tiled GEMM of float
/// weights: `4·cols` rounded up to an odd number of 64-byte lines. The micro-kernels read one
/// float of each of 12 columns per k step; at a stride that is a multiple of 4 KiB (e.g. rows
/// of 14336 or 1024 floats) those 12 lines fall in one L1 set of 8 ways and evict each other
/// before their 16 floats are used (measured on Zen 3: the AVX2 float tile at ~30 % of its
/// FMA peak); an odd number of lines puts consecutive columns in consecutive sets.
pub(crate) fn float_act_stride(cols: usize) -> usize {
    let lines = (4 * cols).div_ceil(64);
    64 * (lines | 1)
}

/// Scratch bytes [`Kernels::gemm`] needs for `n` activation rows of `cols` elements.
pub fn gemm_scratch_bytes(ty: GgmlType, cols: usize, n: usize) -> usize {
    // The tiled GEMM's activation layouts (`x86::tile`): Q8_K quants + f32 scale + the group
    // sums it needs, Q8_0 quants + f32 scale + i32 bias.
    let tiled = match ty {
        // Float weights: the f32 activations (BF16 on the Intel table: rounded to BF16 and
        // widened) copied at [`float_act_stride`].
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => float_act_stride(cols),
        // Q5_K takes Q4_K's tile layout, Q3_K Q6_K's.
        GgmlType::Q4_K | GgmlType::Q5_K => cols / 256 * 276,
        GgmlType::Q6_K | GgmlType::Q3_K => cols / 256 * 324,
        GgmlType::Q2_K => cols / 256 * 292,
        // Q4_0 and Q5_0 take Q8_0's tile layout; Q4_1 / Q5_1 theirs is as large (quants, f32 d
        // and f32 s of their Q8_1 activation).
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q4_1 | GgmlType::Q5_1 => {
            cols / 32 * 40
        }
        // TQ trellis types: 256 int8 + 8 scales + 8 biases per 256-block.
        GgmlType::TQT4_5 | GgmlType::TQT3_375 | GgmlType::TQT2_5 => cols / 256 * 320,
        _ => 0,
    };
    // Tiled rows are padded to 64 bytes and start at a 64-byte aligned offset of the scratch.
    let tiled = if tiled > 0 {
        n * tiled.next_multiple_of(64) + 64
    } else {
        0
    };
    (n * gemv_scratch_bytes(ty, cols)).max(tiled)
}

/// Whether the register-tiled GEMM runs its micro-kernel on Intel AMX tiles (`x86::amx`):
/// BF16 × BF16 activations and the int8 formats (Q4_K, Q6_K, Q8_0, TQT*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmxMode {
    /// AVX-512 micro-kernels only.
    Off,
    /// The AMX driver on a plain-Rust model of the tile instructions (tests on CPUs without
    /// AMX; slow).
    Emu,
    /// The AMX driver on the hardware tiles ([`amx_available`] must hold).
    Hw,
}

/// Whether this CPU and OS let the process use AMX-TILE, AMX-INT8 and AMX-BF16 (CPUID, XCR0 and
/// Linux's permission request, done once).
pub fn amx_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::x86::amx::hw_available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The AMX mode [`Kernels::gemm`] uses for weights of type `ty`: [`AmxMode::Hw`] where
/// [`amx_available`] and `GQ_AMX` allows the type (unset or `1`: BF16 only, the type AMX
/// measured faster for, `x86::amx::DEFAULT_TYPES`; `all`: every type with an AMX kernel; `0`:
/// none; else a list such as `bf16,q4_k`), else [`AmxMode::Off`].
pub fn amx_default(ty: GgmlType) -> AmxMode {
    #[cfg(target_arch = "x86_64")]
    if crate::x86::amx::enabled_for(ty) {
        return AmxMode::Hw;
    }
    let _ = ty;
    AmxMode::Off
}

/// From this many columns [`Kernels::gemm`] takes the register-tiled path where the table has
/// one ([`Kernels::gemm_is_tiled`]); fewer columns cannot amortise its weight repacking.
pub const GEMM_TILE_MIN_N: usize = 16;

/// Which GEMM path `GQ_GEMM` asks for: `rows` (1: the GEMV-identical row kernels / dots),
/// `tile` (2: the register-tiled path for every n where the type has one), otherwise (0) the
/// tiled path from [`GEMM_TILE_MIN_N`] columns.
#[cfg(target_arch = "x86_64")]
fn gemm_mode() -> u8 {
    static M: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *M.get_or_init(
        || match std::env::var("GQ_GEMM").as_deref().map(str::trim) {
            Ok("rows") => 1,
            Ok("tile") => 2,
            _ => 0,
        },
    )
}

/// The f32 slice as its little-endian bytes.
fn f32_bytes(x: &[f32]) -> &[u8] {
    // SAFETY: u8 has alignment 1 and every f32 bit pattern is valid bytes; the length covers
    // exactly the borrowed f32s.
    unsafe { core::slice::from_raw_parts(x.as_ptr().cast::<u8>(), core::mem::size_of_val(x)) }
}

/// A tuning knob read once from the environment (`name`, a positive integer), else `default`.
fn knob(cell: &'static std::sync::OnceLock<usize>, name: &str, default: usize) -> usize {
    *cell.get_or_init(|| env_count(name).unwrap_or(default))
}

/// A positive count from the environment variable `name` (None when unset or not one).
fn env_count(name: &str) -> Option<usize> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&v| v > 0)
}

/// Least weight bytes per parallel task of a GEMV (`GQ_MIN_TASK_BYTES`, default 64 KiB):
/// smaller products run on fewer threads, a small one on the calling thread alone.
pub fn min_task_bytes() -> usize {
    static C: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    knob(&C, "GQ_MIN_TASK_BYTES", 64 << 10)
}

/// Least multiply-adds (weight rows × columns × activation rows) per parallel task of a GEMM
/// (`GQ_MIN_TASK_MACS`, default 2²⁰): small products run on fewer threads.
pub fn min_task_macs() -> usize {
    static C: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    knob(&C, "GQ_MIN_TASK_MACS", 1 << 20)
}

/// Least f32 elements per parallel task of element-wise work (activation quantization here,
/// the runner's norms, RoPE and the like: `GQ_MIN_TASK_ELEMS`, default 16384): small steps
/// run on fewer threads, one token's on the calling thread alone.
pub fn min_task_elems() -> usize {
    static C: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    knob(&C, "GQ_MIN_TASK_ELEMS", 1 << 14)
}

/// Least rows of `width` elements per parallel task of element-wise work
/// ([`min_task_elems`] elements, at least one row).
pub fn min_task_rows(width: usize) -> usize {
    (min_task_elems() / width.max(1)).max(1)
}

/// Least weight rows per parallel task of a GEMM before its activation rows are split too
/// (`GQ_GEMM_MIN_ROWS`, default 64).
pub fn gemm_min_rows() -> usize {
    static C: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    knob(&C, "GQ_GEMM_MIN_ROWS", 64)
}

/// GEMV tasks per thread for every matrix when the default rule is off: `GQ_GEMV_TASKS_PER_THREAD`
/// (a positive integer; 1 is one range per thread), else `None` (the default rule of
/// [`gemv_tasks`]). The pool hands tasks out as threads come free, so a thread on a slower
/// core (a busy sibling hyperthread, another tenant) takes fewer of them instead of holding
/// the whole GEMV up: on the 16-core host, where some virtual CPUs run vector code at half
/// speed at any time, 4 gave +13–24 % tg128 at 16 threads on an E2B-like model against 1
/// (docs/runner.md, "GEMV tasks per thread"). Results do not depend on it (each row is
/// computed whole by one task).
fn gemv_tasks_override() -> Option<usize> {
    static C: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *C.get_or_init(|| env_count("GQ_GEMV_TASKS_PER_THREAD"))
}

/// GEMV tasks per thread of the default rule for any matrix large enough ([`gemv_tasks`]).
const GEMV_TASKS_PER_THREAD: usize = 4;
/// GEMV tasks per thread of the default rule at most, for matrices whose tasks still hold
/// [`gemv_fine_task_bytes`] each ([`gemv_tasks`]).
const GEMV_MAX_TASKS_PER_THREAD: usize = 8;

/// Least weight bytes per task for a GEMV to be cut into more than
/// [`GEMV_TASKS_PER_THREAD`] tasks per thread (`GQ_GEMV_FINE_TASK_BYTES`, default 256 KiB;
/// see [`gemv_tasks`]).
fn gemv_fine_task_bytes() -> usize {
    static C: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    knob(&C, "GQ_GEMV_FINE_TASK_BYTES", 256 << 10)
}

/// How many tasks a GEMV of `rows` rows of `row_bytes` bytes is cut into on `threads`
/// threads, each task at least `min_rows` rows and `min_bytes` ([`min_task_bytes`]) of weights.
///
/// With `per_thread` (`GQ_GEMV_TASKS_PER_THREAD`): as many as fit, at most `per_thread` per
/// thread. Default rule (`per_thread` = `None`): [`GEMV_TASKS_PER_THREAD`] (4) per thread, as
/// many as fit; and more, up to [`GEMV_MAX_TASKS_PER_THREAD`] (8) per thread, where every task
/// still holds `fine_bytes` ([`gemv_fine_task_bytes`], 256 KiB) of weights (more than 4 per
/// thread from 16 MiB of weights at 16 threads, 2 MiB at 2 threads; all 8 from 32 MiB and
/// 4 MiB). So a large matrix (an output projection, ggml's 4096 × 14336 float GEMVs, a 31B
/// model's FFN) is cut finer, which lets threads on the 16-core host's slow virtual CPUs hold
/// the GEMV up for less time (host, tenth session: the float GEMVs ≥ 1.04× ggml in 15 of 15
/// type-rounds against 9 of 15 with 4 per thread, E2B-like tg128 +5 % at 16 threads and
/// +10 % at 8; docs/kernels.md), while a small model's matrices keep the task count they had
/// with 4 per thread (the trained fixture's at any thread count).
fn gemv_tasks(
    rows: usize,
    row_bytes: usize,
    min_rows: usize,
    threads: usize,
    per_thread: Option<usize>,
    min_bytes: usize,
    fine_bytes: usize,
) -> usize {
    let t = threads.max(1);
    let rb = row_bytes.max(1);
    let min = min_rows.max(min_bytes / rb).max(1);
    match per_thread {
        Some(k) => (rows / min).clamp(1, t * k.max(1)),
        None => {
            let base = (rows / min).clamp(1, t * GEMV_TASKS_PER_THREAD);
            let fine_min = min.max(fine_bytes / rb).max(1);
            base.max((rows / fine_min).min(t * GEMV_MAX_TASKS_PER_THREAD))
        }
    }
}

/// Splits `rows` into contiguous ranges of about equal size (the returned row count): as many
/// as [`gemv_tasks`] gives for the current rayon pool's threads, each a multiple of `align`
/// rows except the last.
fn row_ranges(rows: usize, row_bytes: usize, min_rows: usize, align: usize) -> usize {
    let tasks = gemv_tasks(
        rows,
        row_bytes,
        min_rows,
        rayon::current_num_threads(),
        gemv_tasks_override(),
        min_task_bytes(),
        gemv_fine_task_bytes(),
    );
    let chunk = rows.div_ceil(tasks).max(1);
    chunk.div_ceil(align) * align
}

/// Weight-row tasks per thread of a GEMM split into equal ranges (`GQ_GEMM_TASKS=N`; `1` is one
/// contiguous range per thread); unset (the default), the rows are split "guided" instead (see
/// [`GemmSplit`]).
fn gemm_even_tasks() -> Option<usize> {
    static C: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *C.get_or_init(|| env_count("GQ_GEMM_TASKS"))
}

/// The guided GEMM split's divisor (`GQ_GEMM_GUIDE`, default 2): each task takes
/// 1/(divisor·threads) of the rows not yet handed out.
fn gemm_guide() -> usize {
    static C: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    knob(&C, "GQ_GEMM_GUIDE", 2)
}

/// How a GEMM's work is cut into tasks: ranges of weight rows (`bounds`, each a multiple of
/// the alignment except the last) times blocks of `col_chunk` activation rows (a multiple of
/// [`GEMM_TILE_MIN_N`]; the last block takes the rest). Every output element is computed whole
/// by one task, so the split never changes a value.
///
/// The pool's threads claim tasks in index order from one counter, so a thread that runs
/// slower (on a virtual CPU that shares its core, or descheduled) simply takes fewer of them.
/// Where the rows allow one task per thread, they are split **guided**: each task takes
/// 1/(2·threads) ([`gemm_guide`]) of the rows not yet handed out (at least two alignment units and
/// [`min_task_macs`]), so the first tasks are large (each activation chunk is reused from L2
/// across many row tiles) and the last ones small (the threads finish close together). On the
/// 16-core host, where at any time some virtual CPUs run the `vpdpbusd` loop at half speed,
/// one equal range per thread left the GEMM waiting for the slowest (docs/kernels.md).
#[derive(Clone, Debug)]
struct GemmSplit {
    bounds: Vec<usize>,
    col_chunk: usize,
    col_tasks: usize,
}

impl GemmSplit {
    /// At least [`min_task_macs`] multiply-adds per task and as many threads as that allows:
    /// weight rows guided (above) where there are at least [`gemm_min_rows`] per thread,
    /// else equal row ranges (down to [`gemm_min_rows`]) and then activation rows, up to one
    /// task per thread.
    fn new(rows: usize, cols: usize, n: usize, align: usize) -> GemmSplit {
        let t = rayon::current_num_threads().max(1);
        let work = rows.saturating_mul(cols).saturating_mul(n);
        let tasks = (work / min_task_macs()).clamp(1, t);
        let per = gemm_min_rows().max(align);
        let rt = tasks.min(rows.div_ceil(per)).max(1);
        let even = |k: usize| {
            let chunk = rows.div_ceil(k.max(1)).div_ceil(align) * align;
            let mut b: Vec<usize> = (0..rows.max(1)).step_by(chunk.max(1)).collect();
            b.push(rows);
            b
        };
        if tasks > 1 && rt == tasks {
            let bounds = match gemm_even_tasks() {
                Some(k) => even((tasks * k).min(rows.div_ceil(per))),
                None => {
                    let row_work = cols.saturating_mul(n).max(1);
                    let least = (min_task_macs() / row_work).div_ceil(align).max(2) * align;
                    let mut b = vec![0];
                    let mut r = 0;
                    while r < rows {
                        let c = (rows - r).div_ceil(gemm_guide() * tasks).div_ceil(align) * align;
                        r = (r + c.max(least)).min(rows);
                        b.push(r);
                    }
                    b
                }
            };
            return GemmSplit {
                bounds,
                col_chunk: n,
                col_tasks: 1,
            };
        }
        let bounds = even(rt);
        let row_tasks = bounds.len() - 1;
        let col_tasks = (tasks / row_tasks).min(n / GEMM_TILE_MIN_N).max(1);
        let col_chunk = if col_tasks == 1 {
            n
        } else {
            n / col_tasks / GEMM_TILE_MIN_N * GEMM_TILE_MIN_N
        };
        GemmSplit {
            bounds,
            col_chunk,
            col_tasks,
        }
    }

    /// Number of tasks.
    fn tasks(&self) -> usize {
        (self.bounds.len() - 1) * self.col_tasks
    }

    /// Task `i`'s weight rows and activation rows.
    fn task(&self, i: usize, n: usize) -> (core::ops::Range<usize>, core::ops::Range<usize>) {
        let row_tasks = self.bounds.len() - 1;
        let (rc, cc) = (i % row_tasks, i / row_tasks);
        let j0 = cc * self.col_chunk;
        let j1 = if cc + 1 == self.col_tasks {
            n
        } else {
            j0 + self.col_chunk
        };
        (self.bounds[rc]..self.bounds[rc + 1], j0..j1)
    }
}

/// A raw output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
impl OutPtr {
    /// The element pointer (a method, so that closures capture the whole `Send` wrapper).
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

// SAFETY: every task writes a disjoint set of elements (its own rows), and the pointer outlives
// the parallel section, which joins before the borrow ends.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

/// What multiplies a weight row with prepared activations.
#[derive(Clone, Copy)]
enum RowOp {
    /// The row kernels of the table (`RowKernels`).
    Rows(Row1Fn, GemmFn),
    /// The table's dot product, with its two-row form where there is one.
    Dot(DotFn, Option<Dot2Fn>),
}

/// Which way a GEMM multiplies: the register-tiled product with its format and AMX mode, or
/// the row operation with its activation layout.
#[derive(Clone, Copy)]
enum GemmPath {
    /// The register-tiled GEMM (`x86::tile`).
    #[cfg(target_arch = "x86_64")]
    Tiled(&'static crate::x86::tile::Fmt, AmxMode),
    /// The row kernels / dots ([`RowOp`]) on activations in this layout.
    Rows(RowOp, ActLayout),
}

/// What a product's prepared activations depend on besides the activation rows: products with
/// equal keys read the same prepared bytes ([`Kernels::gemm_many`], [`Kernels::gemv_many`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum PrepKey {
    /// The f32 rows read as they are (float weights on the row path).
    InPlace,
    /// The row path: the activation type (a TurboQuant type: the weight type), format and
    /// layout of [`Kernels::prepare_into`].
    Rows(GgmlType, FloatAct, ActLayout),
    /// The tiled path of a non-TurboQuant format: the format's address, the weight type and
    /// the activation format.
    Tiled(usize, GgmlType, FloatAct),
    /// The tiled path of the TurboQuant types: the rotation.
    TiledTq(FloatAct),
}

/// One weight matrix of [`Kernels::gemm_many`] / [`Kernels::gemv_many`]: `rows` rows of type
/// `ty`, row-major in `w`, multiplied with activations of format `act` (as
/// [`Kernels::gemm_as`]'s `act_fmt`).
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a> {
    /// The weight type.
    pub ty: GgmlType,
    /// `rows` rows of the shared column count, row-major.
    pub w: &'a [u8],
    /// Number of rows (output values per activation row).
    pub rows: usize,
    /// The activation format for this matrix.
    pub act: FloatAct,
}

/// Scratch bytes [`Kernels::gemm_many`] needs for `n` activation rows of `cols` elements (and
/// [`Kernels::gemv_many`] for n = 1): the most any one matrix of `mats` needs
/// ([`gemm_scratch_bytes`]), since one group is prepared at a time.
pub fn many_scratch_bytes(mats: &[Weights<'_>], cols: usize, n: usize) -> usize {
    mats.iter()
        .map(|m| gemm_scratch_bytes(m.ty, cols, n))
        .max()
        .unwrap_or(0)
}

impl Kernels {
    /// The activation row [`Kernels::gemv`] dots `ty`'s rows with (format
    /// [`Kernels::default_act`]), for [`Kernels::vec_dot`].
    pub fn prepare_activation<'a>(
        &self,
        ty: GgmlType,
        x: &'a [f32],
        scratch: &'a mut [u8],
    ) -> &'a [u8] {
        self.prepare_activation_as(ty, x, scratch, self.default_act(ty))
    }

    /// Quantizes `x` to `ty`'s activation type in `scratch` (BF16 weights with
    /// [`FloatAct::Bf16`]: rounds it to BF16 there; other float types: borrows the f32 bytes of
    /// `x`) and returns the activation row for [`Kernels::vec_dot`].
    pub fn prepare_activation_as<'a>(
        &self,
        ty: GgmlType,
        x: &'a [f32],
        scratch: &'a mut [u8],
        act: FloatAct,
    ) -> &'a [u8] {
        if ty == GgmlType::BF16 && act == FloatAct::Bf16 {
            let n = 2 * x.len();
            assert!(
                scratch.len() >= n,
                "BF16: scratch of {} bytes < {n}",
                scratch.len()
            );
            let dst = &mut scratch[..n];
            crate::formats::bf16::quantize_row_ref(x, dst);
            return dst;
        }
        if ty.is_float() {
            return f32_bytes(x);
        }
        let n = act_bytes(ty, x.len());
        if ty.is_turboquant() {
            let FloatAct::Rotated(p) = act else {
                panic!("{ty}: TurboQuant weights need FloatAct::Rotated (the file's gq.tq.seed)")
            };
            assert!(
                scratch.len() >= n,
                "{ty}: scratch of {} bytes < {n}",
                scratch.len()
            );
            let dst = &mut scratch[..n];
            crate::formats::tq::prepare_activation(ty, &p, x, dst);
            return dst;
        }
        assert!(
            scratch.len() >= n,
            "{ty}: scratch of {} bytes < {n}",
            scratch.len()
        );
        let dst = &mut scratch[..n];
        self.quantize_row(act_type(ty), x, dst);
        dst
    }

    /// `y = W·x`: `w` holds `y.len()` rows of `x.len()` elements of type `ty`, row-major.
    /// `scratch` needs [`gemv_scratch_bytes`] bytes. Rows are split over as many threads as the
    /// current rayon pool has ([`crate::pool`]; use `ThreadPool::install` to choose the count). BF16 weights use
    /// [`Kernels::default_act`]; see [`Kernels::gemv_as`].
    pub fn gemv(&self, ty: GgmlType, w: &[u8], x: &[f32], y: &mut [f32], scratch: &mut [u8]) {
        self.gemv_as(ty, w, x, y, scratch, self.default_act(ty))
    }

    /// The dot kernels for `ty` with activations of format `act`.
    fn dots_for(&self, ty: GgmlType, act: FloatAct) -> (DotFn, Option<Dot2Fn>) {
        if ty == GgmlType::BF16 && act == FloatAct::Bf16 {
            (self.bf16_dot, self.bf16_dot2)
        } else {
            (self.dot_fn(ty), self.dot2[ty.index()])
        }
    }

    /// The row operation and activation layout of `ty` with activations of format `act`.
    fn row_op(&self, ty: GgmlType, act: FloatAct) -> (RowOp, ActLayout) {
        if ty == GgmlType::BF16 && act == FloatAct::Bf16 {
            return (
                RowOp::Dot(self.bf16_dot, self.bf16_dot2),
                ActLayout::Natural,
            );
        }
        match self.rows[ty.index()] {
            Some(r) => (RowOp::Rows(r.gemv, r.gemm), r.act),
            None => {
                let (d, d2) = self.dots_for(ty, act);
                (RowOp::Dot(d, d2), ActLayout::Natural)
            }
        }
    }

    /// Bytes of one prepared activation row of `cols` elements.
    fn act_row_bytes(ty: GgmlType, cols: usize, act: FloatAct, layout: ActLayout) -> usize {
        if ty == GgmlType::BF16 && act == FloatAct::Bf16 {
            2 * cols
        } else if ty.is_float() {
            4 * cols
        } else if layout == ActLayout::Q8_0Biased {
            36 * (cols / 32)
        } else if layout == ActLayout::Q8K3 {
            516 * (cols / 256)
        } else if let ActLayout::Q8Lanes(off) = layout {
            (if off == 0 { 40 } else { 68 }) * (cols / 32)
        } else {
            act_bytes(ty, cols)
        }
    }

    /// Prepares `x` into `dst` (exactly [`Self::act_row_bytes`] bytes) for the row operation.
    fn prepare_into(
        &self,
        ty: GgmlType,
        x: &[f32],
        dst: &mut [u8],
        act: FloatAct,
        layout: ActLayout,
    ) {
        if ty == GgmlType::BF16 && act == FloatAct::Bf16 {
            crate::formats::bf16::quantize_row_ref(x, dst);
        } else if ty.is_float() {
            dst.copy_from_slice(f32_bytes(x));
        } else if ty.is_turboquant() {
            self.prepare_activation_as(ty, x, dst, act);
        } else if layout == ActLayout::Q8_0Biased {
            let nb = x.len() / 32;
            let (q, s) = dst.split_at_mut(32 * nb);
            let mut blk = [0u8; 34];
            for (b, xs) in x.chunks_exact(32).enumerate() {
                self.quantize_row(GgmlType::Q8_0, xs, &mut blk);
                for (o, &v) in q[32 * b..32 * b + 32].iter_mut().zip(&blk[2..]) {
                    *o = v ^ 0x80;
                }
                let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                s[4 * b..4 * b + 4].copy_from_slice(&d.to_le_bytes());
            }
        } else if let ActLayout::Q8Lanes(off) = layout {
            // Quantized 16 blocks at a time on the stack, then moved into the lanes layout.
            let nb = x.len() / 32;
            let act = act_type(ty);
            let bb = act.block_bytes();
            let mut buf = [0u8; 16 * 36];
            for (c, xs) in x.chunks(16 * 32).enumerate() {
                let n = xs.len() / 32;
                self.quantize_row(act, xs, &mut buf[..n * bb]);
                #[cfg(target_arch = "x86_64")]
                for (j, blk) in buf[..n * bb].chunks_exact(bb).enumerate() {
                    crate::x86::intel::q8_lanes_block(blk, 16 * c + j, nb, off, dst);
                }
                #[cfg(not(target_arch = "x86_64"))]
                let _ = (off, nb);
            }
        } else if layout == ActLayout::Q8K3 {
            let natural = act_bytes(ty, x.len());
            self.quantize_row(act_type(ty), x, &mut dst[..natural]);
            #[cfg(target_arch = "x86_64")]
            crate::x86::intel::q8_k_to_3_in_place(dst);
        } else {
            self.quantize_row(act_type(ty), x, dst);
            if layout == ActLayout::Q8KV {
                #[cfg(target_arch = "x86_64")]
                crate::x86::intel::q8_k_to_v(dst);
            }
        }
    }

    /// [`Kernels::gemv`] with an explicit activation format for BF16 weights
    /// ([`FloatAct::F32`] gives the exact-activation reference semantics on every CPU;
    /// [`FloatAct::Bf16`] without AVX512_BF16 runs the portable BF16 × BF16 loop).
    pub fn gemv_as(
        &self,
        ty: GgmlType,
        w: &[u8],
        x: &[f32],
        y: &mut [f32],
        scratch: &mut [u8],
        act_fmt: FloatAct,
    ) {
        let rb = row_bytes(ty, x.len());
        assert_eq!(w.len(), rb * y.len(), "{ty}: weight bytes vs rows × cols");
        let (op, layout) = self.row_op(ty, act_fmt);
        let act = self.gemv_prepare(ty, x, scratch, act_fmt, layout);
        self.gemv_run(ty, op, layout, w, x.len(), act, y, act_fmt);
    }

    /// The activation row [`Kernels::gemv_as`] multiplies with: the f32 bytes of `x` for float
    /// weights with f32 activations, else `x` prepared into `scratch` for the row operation.
    fn gemv_prepare<'a>(
        &self,
        ty: GgmlType,
        x: &'a [f32],
        scratch: &'a mut [u8],
        act_fmt: FloatAct,
        layout: ActLayout,
    ) -> &'a [u8] {
        let float_act = ty.is_float() && !(ty == GgmlType::BF16 && act_fmt == FloatAct::Bf16);
        if float_act {
            return f32_bytes(x);
        }
        let ab = Self::act_row_bytes(ty, x.len(), act_fmt, layout);
        assert!(
            scratch.len() >= ab,
            "{ty}: scratch of {} bytes < {ab}",
            scratch.len()
        );
        let dst = &mut scratch[..ab];
        self.prepare_into(ty, x, dst, act_fmt, layout);
        dst
    }

    /// The GEMV's products with the prepared activation `act` ([`Self::gemv_prepare`]).
    #[allow(clippy::too_many_arguments)]
    fn gemv_run(
        &self,
        ty: GgmlType,
        op: RowOp,
        layout: ActLayout,
        w: &[u8],
        cols: usize,
        act: &[u8],
        y: &mut [f32],
        act_fmt: FloatAct,
    ) {
        let rb = row_bytes(ty, cols);
        if layout == ActLayout::Natural && !(ty == GgmlType::BF16 && act_fmt == FloatAct::Bf16) {
            self.check_dot(ty, rb, act.len());
        }
        if rb == 0 {
            y.fill(0.0);
            return;
        }
        let chunk = row_ranges(y.len(), rb, 8, 2);
        par_chunks_mut(y, chunk, |ci, ys| {
            let ws = &w[ci * chunk * rb..][..ys.len() * rb];
            match op {
                RowOp::Rows(k1, _) => {
                    for (o, row) in ys.iter_mut().zip(ws.chunks_exact(rb)) {
                        *o = k1(row, act);
                    }
                }
                RowOp::Dot(dot, dot2) => {
                    let mut r = 0;
                    if let Some(dot2) = dot2 {
                        while r + 2 <= ys.len() {
                            let [a, b] = dot2(
                                &ws[r * rb..(r + 1) * rb],
                                &ws[(r + 1) * rb..(r + 2) * rb],
                                act,
                            );
                            ys[r] = a;
                            ys[r + 1] = b;
                            r += 2;
                        }
                    }
                    for (o, row) in ys[r..].iter_mut().zip(ws[r * rb..].chunks_exact(rb)) {
                        *o = dot(row, act);
                    }
                }
            }
        });
    }

    /// The sharing key of the row path's preparation ([`Self::prepare_into`]): the f32 rows
    /// read in place; BF16 rounding; a TurboQuant type's own activation (its column block and
    /// QJL half depend on the type) with its rotation; else the activation type in `layout`
    /// (the format is ignored there).
    fn rows_key(ty: GgmlType, act: FloatAct, layout: ActLayout) -> PrepKey {
        if ty == GgmlType::BF16 && act == FloatAct::Bf16 {
            PrepKey::Rows(GgmlType::BF16, FloatAct::Bf16, layout)
        } else if ty.is_float() {
            PrepKey::InPlace
        } else if ty.is_turboquant() {
            PrepKey::Rows(ty, act, layout)
        } else {
            PrepKey::Rows(act_type(ty), FloatAct::F32, layout)
        }
    }

    /// [`Kernels::gemv_as`] of every matrix of `mats` with the same activation row `x`
    /// (`ys[i]` receives `mats[i].rows` values): the activation is prepared once per group of
    /// matrices that take the same prepared row (e.g. the same type and format), not once
    /// per matrix. Each `ys[i]` is bit-identical to `gemv_as(mats[i].ty, mats[i].w, x, ys[i],
    /// …, mats[i].act)`. `scratch` needs [`many_scratch_bytes`] bytes (n = 1).
    pub fn gemv_many(
        &self,
        mats: &[Weights<'_>],
        x: &[f32],
        ys: &mut [&mut [f32]],
        scratch: &mut [u8],
    ) {
        assert_eq!(mats.len(), ys.len(), "gemv_many: one output per matrix");
        for (m, y) in mats.iter().zip(ys.iter()) {
            let rb = row_bytes(m.ty, x.len());
            assert_eq!(y.len(), m.rows, "{}: output length vs rows", m.ty);
            assert_eq!(
                m.w.len(),
                rb * m.rows,
                "{}: weight bytes vs rows × cols",
                m.ty
            );
        }
        // Each matrix's row operation and sharing key, once.
        let plans: Vec<(RowOp, ActLayout, PrepKey)> = mats
            .iter()
            .map(|m| {
                let (op, layout) = self.row_op(m.ty, m.act);
                (op, layout, Self::rows_key(m.ty, m.act, layout))
            })
            .collect();
        for i in 0..mats.len() {
            let (_, layout, key) = plans[i];
            if plans[..i].iter().any(|p| p.2 == key) {
                continue;
            }
            let act = self.gemv_prepare(mats[i].ty, x, scratch, mats[i].act, layout);
            for ((m, y), &(op, layout, k)) in mats.iter().zip(ys.iter_mut()).zip(&plans).skip(i) {
                if k == key {
                    self.gemv_run(m.ty, op, layout, m.w, x.len(), act, y, m.act);
                }
            }
        }
    }

    /// Matrix product `Y = X·Wᵀ` (prompt processing): `xs` holds `n` activation rows of `cols`
    /// elements, `ys` receives `n` output rows of `rows` elements (`ys[j·rows + r]` = row r of W
    /// · row j of X), `w` is `rows × cols` of type `ty`. The activations are quantized once
    /// (in parallel); each thread takes a contiguous range of weight rows. From
    /// [`GEMM_TILE_MIN_N`] columns the AVX2 and AVX-512 tables run a register-tiled product
    /// for the types it covers ([`Kernels::gemm_is_tiled`]); otherwise, per block of columns that fits
    /// in L2, each row is read once and multiplied with several columns while it sits in L1.
    /// `scratch` needs [`gemm_scratch_bytes`] bytes.
    /// BF16 weights use [`Kernels::default_act`]; see [`Kernels::gemm_as`].
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        ty: GgmlType,
        w: &[u8],
        rows: usize,
        cols: usize,
        xs: &[f32],
        ys: &mut [f32],
        scratch: &mut [u8],
    ) {
        self.gemm_as(ty, w, rows, cols, xs, ys, scratch, self.default_act(ty))
    }

    /// [`Kernels::gemm`] with an explicit activation format for BF16 weights
    /// ([`FloatAct::F32`]: exact f32 activations on every CPU). Results are bit-identical for
    /// any thread count. On the row path row j of the result is bit-identical to
    /// [`Kernels::gemv_as`] of row j of `xs` with the same format; on the register-tiled path
    /// ([`Kernels::gemm_is_tiled`]) it is within the scalar bound of it and depends only on row
    /// j of `xs` and the weights (not on n ≥ [`GEMM_TILE_MIN_N`] or the other rows).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_as(
        &self,
        ty: GgmlType,
        w: &[u8],
        rows: usize,
        cols: usize,
        xs: &[f32],
        ys: &mut [f32],
        scratch: &mut [u8],
        act_fmt: FloatAct,
    ) {
        self.gemm_as_amx(ty, w, rows, cols, xs, ys, scratch, act_fmt, amx_default(ty))
    }

    /// [`Kernels::gemm_as`] with an explicit [`AmxMode`] (tests and A/B benchmarks; where the
    /// tiled path has no AMX kernel for the type or this table is not AVX-512, `amx` has no
    /// effect, see [`Kernels::gemm_uses_amx`]). AMX results are within the same bounds and as
    /// deterministic as the AVX-512 tiled path; for the int8 formats bit-identical to it.
    /// Panics for [`AmxMode::Hw`] where [`amx_available`] does not hold.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_as_amx(
        &self,
        ty: GgmlType,
        w: &[u8],
        rows: usize,
        cols: usize,
        xs: &[f32],
        ys: &mut [f32],
        scratch: &mut [u8],
        act_fmt: FloatAct,
        amx: AmxMode,
    ) {
        assert!(
            amx != AmxMode::Hw || amx_available(),
            "gemm: AmxMode::Hw on a CPU/OS without AMX"
        );
        let n = Self::gemm_check(ty, w, rows, cols, xs, ys.len());
        let path = self.gemm_path(ty, rows, cols, n, act_fmt, amx);
        let acts = self.gemm_prepare(&path, ty, cols, xs, scratch, act_fmt);
        self.gemm_run(&path, ty, w, rows, cols, acts, n, ys, act_fmt);
    }

    /// Checks the GEMM's slice lengths; returns n, the number of activation rows.
    fn gemm_check(
        ty: GgmlType,
        w: &[u8],
        rows: usize,
        cols: usize,
        xs: &[f32],
        ys_len: usize,
    ) -> usize {
        let rb = row_bytes(ty, cols);
        let n = xs.len().checked_div(cols).unwrap_or(0);
        assert_eq!(xs.len(), n * cols, "gemm: xs is not whole rows");
        assert_eq!(ys_len, n * rows, "gemm: ys length");
        assert_eq!(w.len(), rb * rows, "{ty}: weight bytes vs rows × cols");
        n
    }

    /// Which path [`Kernels::gemm_as_amx`] takes for these arguments.
    fn gemm_path(
        &self,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        n: usize,
        act_fmt: FloatAct,
        amx: AmxMode,
    ) -> GemmPath {
        #[cfg(target_arch = "x86_64")]
        if rows > 0 {
            if let Some(f) = self.tile_fmt(ty, cols, n, act_fmt, amx) {
                return GemmPath::Tiled(f, amx);
            }
        }
        let _ = (rows, n, amx);
        let (op, layout) = self.row_op(ty, act_fmt);
        GemmPath::Rows(op, layout)
    }

    /// What the prepared activations of `path` depend on besides the activation rows
    /// themselves: two matrices with equal keys can share one preparation
    /// ([`Kernels::gemm_many`]).
    fn gemm_key(path: &GemmPath, ty: GgmlType, act_fmt: FloatAct) -> PrepKey {
        match *path {
            #[cfg(target_arch = "x86_64")]
            GemmPath::Tiled(f, _) => {
                if crate::x86::tile::is_tq(f) {
                    // Rotated with the seed, quantized and laid out per 256-block: the same
                    // bytes for every TQ type of the tiled path (no QJL half, block 256).
                    PrepKey::TiledTq(act_fmt)
                } else {
                    PrepKey::Tiled(core::ptr::from_ref(f) as usize, ty, act_fmt)
                }
            }
            GemmPath::Rows(_, layout) => Self::rows_key(ty, act_fmt, layout),
        }
    }

    /// The GEMM's activations for `path`: the f32 bytes of `xs` where the row path reads them
    /// as they are, else `xs` prepared (in parallel) into `scratch`.
    fn gemm_prepare<'a>(
        &self,
        path: &GemmPath,
        ty: GgmlType,
        cols: usize,
        xs: &'a [f32],
        scratch: &'a mut [u8],
        act_fmt: FloatAct,
    ) -> &'a [u8] {
        let n = xs.len().checked_div(cols).unwrap_or(0);
        match *path {
            #[cfg(target_arch = "x86_64")]
            GemmPath::Tiled(f, _) => self.tiled_prepare(f, ty, cols, xs, scratch, act_fmt),
            GemmPath::Rows(_, layout) => {
                let float_act =
                    ty.is_float() && !(ty == GgmlType::BF16 && act_fmt == FloatAct::Bf16);
                if float_act {
                    return f32_bytes(xs);
                }
                let ab = Self::act_row_bytes(ty, cols, act_fmt, layout);
                assert!(scratch.len() >= n * ab, "{ty}: gemm scratch too small");
                let s = &mut scratch[..n * ab];
                if ab > 0 {
                    rows_mut(s, ab, min_task_rows(cols), |j0, blk| {
                        for (j, d) in blk.chunks_exact_mut(ab).enumerate() {
                            let x = &xs[(j0 + j) * cols..(j0 + j + 1) * cols];
                            self.prepare_into(ty, x, d, act_fmt, layout);
                        }
                    });
                }
                s
            }
        }
    }

    /// The GEMM's products of `w` with the `n` activation rows `acts` prepared by
    /// [`Self::gemm_prepare`] for `path`.
    #[allow(clippy::too_many_arguments)]
    fn gemm_run(
        &self,
        path: &GemmPath,
        ty: GgmlType,
        w: &[u8],
        rows: usize,
        cols: usize,
        acts: &[u8],
        n: usize,
        ys: &mut [f32],
        act_fmt: FloatAct,
    ) {
        let (op, layout) = match *path {
            #[cfg(target_arch = "x86_64")]
            GemmPath::Tiled(f, amx) => {
                return self.tiled_run(f, ty, w, rows, cols, acts, n, ys, amx);
            }
            GemmPath::Rows(op, layout) => (op, layout),
        };
        let rb = row_bytes(ty, cols);
        if rows == 0 || n == 0 {
            return;
        }
        let ab = acts.len() / n;
        if layout == ActLayout::Natural && !(ty == GgmlType::BF16 && act_fmt == FloatAct::Bf16) {
            self.check_dot(ty, rb, ab);
        }
        if rb == 0 {
            ys.fill(0.0);
            return;
        }
        let out = OutPtr(ys.as_mut_ptr());
        let sp = GemmSplit::new(rows, cols, n, 8);
        let run = |i: usize| {
            let (rr, jr) = sp.task(i, n);
            let (r0, jb) = (rr.start, jr.start);
            let ws = &w[rr.start * rb..rr.end * rb];
            let acts = &acts[jr.start * ab..jr.end * ab];
            let nj = jr.len();
            let mut put = |r: usize, j: usize, v: f32| {
                debug_assert!(r0 + r < rows && jb + j < n);
                // SAFETY: r0 + r < rows and jb + j < n, so (jb + j)·rows + r0 + r is inside
                // `ys`; each (column, row) is written by exactly one task (the one owning both).
                unsafe { *out.at((jb + j) * rows + r0 + r) = v };
            };
            match op {
                RowOp::Rows(_, gemm) => gemm(ws, rb, acts, ab, &mut put),
                RowOp::Dot(dot, _) => {
                    // Columns per block: their activations take at most ~512 KiB (L2).
                    let cb = ((512 << 10) / ab.max(1)).clamp(1, 256);
                    let mut j0 = 0;
                    while j0 < nj {
                        let j1 = (j0 + cb).min(nj);
                        for (r, row) in ws.chunks_exact(rb).enumerate() {
                            for j in j0..j1 {
                                put(r, j, dot(row, &acts[j * ab..(j + 1) * ab]));
                            }
                        }
                        j0 = j1;
                    }
                }
            }
        };
        par_for(sp.tasks(), run);
    }

    /// [`Kernels::gemm_as`] of every matrix of `mats` with the same `n` activation rows `xs`
    /// of `cols` elements (`ys[i]` receives `n · mats[i].rows` values, laid out as
    /// [`Kernels::gemm`]'s): the activations are prepared once per group of matrices that
    /// take the same prepared layout (the same tiled format or row layout, activation type and
    /// format; TurboQuant types of the tiled path share one whatever the type), not once per
    /// matrix; the matrices of other types are prepared separately. Each `ys[i]` is
    /// bit-identical to `gemm_as(mats[i].ty, mats[i].w, mats[i].rows, cols, xs, ys[i], …,
    /// mats[i].act)` for any thread count. `scratch` needs [`many_scratch_bytes`] bytes.
    pub fn gemm_many(
        &self,
        mats: &[Weights<'_>],
        cols: usize,
        xs: &[f32],
        ys: &mut [&mut [f32]],
        scratch: &mut [u8],
    ) {
        assert_eq!(mats.len(), ys.len(), "gemm_many: one output per matrix");
        let mut n = 0;
        for (m, y) in mats.iter().zip(ys.iter()) {
            n = Self::gemm_check(m.ty, m.w, m.rows, cols, xs, y.len());
        }
        // Each matrix's path and sharing key, once.
        let plans: Vec<(GemmPath, PrepKey)> = mats
            .iter()
            .map(|m| {
                let path = self.gemm_path(m.ty, m.rows, cols, n, m.act, amx_default(m.ty));
                (path, Self::gemm_key(&path, m.ty, m.act))
            })
            .collect();
        for i in 0..mats.len() {
            let (path, key) = plans[i];
            if plans[..i].iter().any(|p| p.1 == key) {
                continue;
            }
            let acts = self.gemm_prepare(&path, mats[i].ty, cols, xs, scratch, mats[i].act);
            for ((m, y), (p, k)) in mats.iter().zip(ys.iter_mut()).zip(&plans).skip(i) {
                if *k == key {
                    self.gemm_run(p, m.ty, m.w, m.rows, cols, acts, n, y, m.act);
                }
            }
        }
    }

    /// Whether [`Kernels::gemm_as`] of `ty` with `n` columns of `cols` elements and
    /// activation format `act` takes the register-tiled path: on the AVX2 table the
    /// quantized types Q2_K…Q6_K, Q8_0, Q4_0, Q5_0, Q4_1, Q5_1 and F32 / F16 / BF16 with f32
    /// activations (`x86::tile_avx2`, the same results as the AVX-512 tile's) when `cols` is a
    /// multiple of their unit, and with BMI2
    /// the TurboQuant `TQT*` types as on the AVX-512 tables (same results); on the AVX-512
    /// tables those, F32 / F16 / BF16 with f32 activations when `cols` is a multiple of 16, BF16 with
    /// [`FloatAct::Bf16`] where the table has AVX512_BF16 (Zen table: `vdpbf16ps`, `cols` a
    /// multiple of 32; Intel table: f32 FMA on the BF16-rounded activations, multiple of 16),
    /// the TurboQuant trellis types without QJL signs (`TQT*`) with [`FloatAct::Rotated`] when
    /// their column block is 256 and the CPU has the TQ kernels (VBMI, BMI2);
    /// n ≥ [`GEMM_TILE_MIN_N`] (`GQ_GEMM=rows`: never,
    /// `GQ_GEMM=tile`: from n = 1). Its columns are not bit-identical to the GEMV; see
    /// docs/kernels.md.
    pub fn gemm_is_tiled(&self, ty: GgmlType, cols: usize, n: usize, act: FloatAct) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.tile_fmt(ty, cols, n, act, amx_default(ty)).is_some()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (ty, cols, n, act);
            false
        }
    }

    /// Whether [`Kernels::gemm_as_amx`] with these arguments runs AMX tiles (emulated for
    /// [`AmxMode::Emu`]): the tiled path with a type AMX has a kernel for (BF16 with
    /// [`FloatAct::Bf16`] and `cols` a multiple of 32 where the table has AVX512_BF16; Q4_K,
    /// Q6_K, Q8_0, TQT*).
    pub fn gemm_uses_amx(
        &self,
        ty: GgmlType,
        cols: usize,
        n: usize,
        act: FloatAct,
        amx: AmxMode,
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            amx != AmxMode::Off
                && self.isa == crate::Isa::Avx512
                && self
                    .tile_fmt(ty, cols, n, act, amx)
                    .is_some_and(crate::x86::amx::supports)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (ty, cols, n, act, amx);
            false
        }
    }

    /// The tiled format [`Kernels::gemm_as`] uses, if any (see [`Kernels::gemm_is_tiled`]).
    #[cfg(target_arch = "x86_64")]
    fn tile_fmt(
        &self,
        ty: GgmlType,
        cols: usize,
        n: usize,
        act: FloatAct,
        amx: AmxMode,
    ) -> Option<&'static crate::x86::tile::Fmt> {
        let mode = gemm_mode();
        let min_n = if mode == 2 { 1 } else { GEMM_TILE_MIN_N };
        if mode == 1 || n < min_n || cols == 0 {
            return None;
        }
        match self.isa {
            crate::Isa::Avx512 => {}
            // AVX2: the quantized types' layouts with 256-bit micro-kernels (`x86::tile_avx2`).
            crate::Isa::Avx2 => {
                if ty.is_turboquant() {
                    // The TQ trellis types without QJL signs, rows of 256-blocks (the AVX2
                    // unpackers of `x86::tq_avx2`, which need BMI2 as the row kernels do).
                    let tq = crate::x86::tile::fmt_tq_avx2(ty)?;
                    let ok = matches!(act, FloatAct::Rotated(_))
                        && self.rows[ty.index()].is_some()
                        && crate::formats::tq::block_for(ty, cols) == Some(256);
                    return ok.then_some(tq);
                }
                if ty == GgmlType::BF16 && act == FloatAct::Bf16 {
                    // BF16-rounded activations: the row path (no AVX2 tile for them).
                    return None;
                }
                let f = crate::x86::tile::fmt_avx2(ty)?;
                return Some(f).filter(|f| cols.is_multiple_of(crate::x86::tile::unit(f)));
            }
            _ => return None,
        }
        let f = if ty == GgmlType::BF16 && act == FloatAct::Bf16 {
            if !self.bf16_native {
                return None;
            }
            // AMX multiplies the pair layout (`tdpbf16ps`) on either tuning, 32 k per unit.
            let amx_pairs = amx != AmxMode::Off && cols.is_multiple_of(32);
            crate::x86::tile::bf16_bf16(self.tune != Some(crate::Tune::Intel) || amx_pairs)
        } else if ty.is_turboquant() {
            // The TQ trellis types without QJL signs, rows of 256-blocks, where the table has
            // the AVX-512 TQ kernels (VBMI, BMI2: their row kernels are registered).
            let tq = crate::x86::tile::fmt_tq(ty)?;
            let ok = matches!(act, FloatAct::Rotated(_))
                && self.rows[ty.index()].is_some()
                && crate::formats::tq::block_for(ty, cols) == Some(256);
            return ok.then_some(tq);
        } else {
            crate::x86::tile::fmt(ty)?
        };
        Some(f).filter(|f| cols.is_multiple_of(crate::x86::tile::unit(f)))
    }

    /// The register-tiled GEMM's activations (`x86::tile`, AVX2 and AVX-512 tables): quantized
    /// as for the GEMV and put in the tile layout (in parallel), at a 64-byte aligned offset of
    /// `scratch`.
    #[cfg(target_arch = "x86_64")]
    fn tiled_prepare<'a>(
        &self,
        f: &crate::x86::tile::Fmt,
        ty: GgmlType,
        cols: usize,
        xs: &[f32],
        scratch: &'a mut [u8],
        act_fmt: FloatAct,
    ) -> &'a [u8] {
        use crate::x86::tile;
        let n = xs.len() / cols;
        // Prepared rows start on 64-byte lines (`gemm_scratch_bytes` has room for the offset).
        let off = scratch.as_ptr().align_offset(64).min(scratch.len());
        let scratch = &mut scratch[off..];
        if tile::is_float(f) {
            // The f32 rows at the padded stride of `tile::act_row_bytes` (see
            // `float_act_stride`; the padding is never read), for the Intel table's BF16 × BF16
            // format rounded to BF16 and widened back (exact).
            let rounded = tile::is_bf16_rounded_f32(f);
            let ab = tile::act_row_bytes(f, cols);
            assert!(scratch.len() >= n * ab, "{ty}: gemm scratch too small");
            let acts = &mut scratch[..n * ab];
            rows_mut(acts, ab, min_task_rows(cols), |j0, blk| {
                let mut tmp = vec![0u8; if rounded { 2 * cols } else { 0 }];
                for (j, d) in blk.chunks_exact_mut(ab).enumerate() {
                    let x = &xs[(j0 + j) * cols..(j0 + j + 1) * cols];
                    if rounded {
                        crate::formats::bf16::quantize_row_ref(x, &mut tmp);
                        for (o, b) in d.chunks_exact_mut(4).zip(tmp.chunks_exact(2)) {
                            o.copy_from_slice(&[0, 0, b[0], b[1]]);
                        }
                    } else {
                        d[..4 * cols].copy_from_slice(f32_bytes(x));
                    }
                }
            });
            acts
        } else if tile::is_bf16_bf16(f) {
            let ab = 2 * cols;
            assert!(scratch.len() >= n * ab, "{ty}: gemm scratch too small");
            let acts = &mut scratch[..n * ab];
            rows_mut(acts, ab, min_task_rows(cols), |j0, blk| {
                for (j, d) in blk.chunks_exact_mut(ab).enumerate() {
                    let x = &xs[(j0 + j) * cols..(j0 + j + 1) * cols];
                    crate::formats::bf16::quantize_row_ref(x, d);
                }
            });
            acts
        } else {
            // Quantized weights: each column's activation in the table's own format (TQ: rotated
            // and quantized as `act_fmt` says), then re-laid out for the tile.
            let tq = tile::is_tq(f);
            let ab = tile::act_row_bytes(f, cols);
            let nat = if tq {
                crate::formats::tq::act_bytes(ty, cols).expect("a TQ row length")
            } else {
                tile::natural_row_bytes(f, cols)
            };
            assert!(scratch.len() >= n * ab, "{ty}: gemm scratch too small");
            let acts = &mut scratch[..n * ab];
            // TQ on AVX-512 with VBMI (`tq_act::prepare_tile_256`) and on the AVX2 table
            // (`tq_act::prepare_tile_256_avx2`): rotation, quantization and tile layout in one
            // pass, the same bytes as the two steps below.
            type Prep = unsafe fn(&[f32], u64, &mut [u8]);
            let fused: Option<(u64, Prep)> = match act_fmt {
                FloatAct::Rotated(p) if tq && crate::x86::tq_act::usable() => {
                    Some((p.seed, crate::x86::tq_act::prepare_tile_256))
                }
                FloatAct::Rotated(p) if tq && self.isa == crate::Isa::Avx2 => {
                    Some((p.seed, crate::x86::tq_act::prepare_tile_256_avx2))
                }
                _ => None,
            };
            rows_mut(acts, ab, min_task_rows(cols), |j0, blk| {
                if let Some((seed, prep)) = fused {
                    for (j, d) in blk.chunks_exact_mut(ab).enumerate() {
                        let x = &xs[(j0 + j) * cols..(j0 + j + 1) * cols];
                        // SAFETY: `usable` checked the CPU features (AVX-512), else this is the
                        // AVX2 table (AVX2 and FMA detected when it was built); `cols` is whole
                        // 256-blocks (the tiled TQ format is only chosen for them) and `d`
                        // holds `cols / 256` prepared blocks.
                        unsafe { prep(x, seed, d) };
                    }
                    return;
                }
                let mut tmp = vec![0u8; nat];
                for (j, d) in blk.chunks_exact_mut(ab).enumerate() {
                    let x = &xs[(j0 + j) * cols..(j0 + j + 1) * cols];
                    if tq {
                        self.prepare_activation_as(ty, x, &mut tmp, act_fmt);
                        tile::prepare_tq(cols, &tmp, d);
                    } else {
                        self.quantize_row(act_type(ty), x, &mut tmp);
                        tile::prepare(f, &tmp, d);
                    }
                }
            });
            acts
        }
    }

    /// The register-tiled GEMM's products (`x86::tile`) with the `n` activation rows `acts`
    /// of [`Self::tiled_prepare`]: the tasks of [`GemmSplit`] (weight-row ranges starting on
    /// 16-row tiles, claimed by free threads).
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    fn tiled_run(
        &self,
        f: &crate::x86::tile::Fmt,
        ty: GgmlType,
        w: &[u8],
        rows: usize,
        cols: usize,
        acts: &[u8],
        n: usize,
        ys: &mut [f32],
        amx: AmxMode,
    ) {
        use crate::x86::{amx as tiles, tile};
        let rb = row_bytes(ty, cols);
        let out = OutPtr(ys.as_mut_ptr());
        let ab = acts.len() / n.max(1);
        let sp = GemmSplit::new(rows, cols, n, 16);
        let run = |i: usize| {
            let (rr, jr) = sp.task(i, n);
            let (r0, jb) = (rr.start, jr.start);
            let ws = &w[rr.start * rb..rr.end * rb];
            let acts = &acts[jr.start * ab..jr.end * ab];
            // Column jb + j, row r0 + r of this task goes to ys[(jb + j) * rows + r0 + r].
            let put = tile::Out {
                ptr: out.at(jb * rows + r0),
                ld: rows,
            };
            // SAFETY: this table is AVX-512 (F/BW/VL/VNNI, AVX2, FMA, F16C detected when it
            // was built) or AVX2 (AVX2, FMA, F16C; `f` from `fmt_avx2`, or from `fmt_tq_avx2`,
            // which checked BMI2), `ws` is whole rows of `rb` bytes and `acts` jr.len()
            // prepared rows; `put` addresses rows r0 .. rr.end ≤ rows of columns jb .. jr.end
            // ≤ n, inside `ys`, and each (column, row) is written by the one task owning both.
            // AMX: `Hw` only where `amx_available` (checked by `gemm_as_amx`), and only on the
            // AVX-512 tables.
            unsafe {
                if self.isa == crate::Isa::Avx2 {
                    return tile::gemm_avx2(f, ws, rb, cols, acts, jr.len(), put);
                }
                match amx {
                    AmxMode::Off => {
                        tile::gemm::<tiles::Hw>(f, ws, rb, cols, acts, jr.len(), None, put)
                    }
                    AmxMode::Hw => {
                        tile::gemm(f, ws, rb, cols, acts, jr.len(), Some(&mut tiles::Hw), put)
                    }
                    AmxMode::Emu => {
                        let mut e = Box::new(tiles::Emu::new());
                        tile::gemm(f, ws, rb, cols, acts, jr.len(), Some(&mut *e), put)
                    }
                }
            };
        };
        par_for(sp.tasks(), run);
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;

    /// Every split covers the rows exactly once, in order, with aligned range starts, and
    /// the guided split ends in small tasks.
    #[test]
    fn gemm_split_covers_rows() {
        for threads in [1, 2, 3, 8, 16] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                for (rows, cols, n, align) in [
                    (4096, 14336, 512, 16),
                    (262144, 1536, 512, 16),
                    (1536, 6144, 512, 16),
                    (100, 256, 64, 16),
                    (0, 256, 64, 8),
                    (37, 4096, 3, 8),
                    (512, 2048, 512, 16),
                ] {
                    let sp = GemmSplit::new(rows, cols, n, align);
                    let mut seen = vec![0u8; rows * n];
                    for i in 0..sp.tasks() {
                        let (rr, jr) = sp.task(i, n);
                        assert!(rr.start.is_multiple_of(align) && rr.end <= rows);
                        for r in rr.clone() {
                            for j in jr.clone() {
                                seen[r * n + j] += 1;
                            }
                        }
                    }
                    assert!(
                        seen.iter().all(|&c| c == 1),
                        "{rows}x{n}, {threads} threads"
                    );
                    if threads > 1 && rows >= 4096 {
                        let last = sp.bounds[sp.bounds.len() - 1] - sp.bounds[sp.bounds.len() - 2];
                        let first = sp.bounds[1];
                        assert!(sp.tasks() > 2 * threads && last < first, "{:?}", sp.bounds);
                    }
                }
            });
        }
    }

    const K64: usize = 64 << 10;
    const K256: usize = 256 << 10;

    #[test]
    fn gemv_tasks_override_is_the_old_rule() {
        // 384 MiB of 4096-column Q4_K rows (2304 bytes): k per thread, whatever the size.
        let (rows, rb) = ((384 << 20) / 2304, 2304);
        for (t, k) in [(1, 1), (2, 4), (16, 4), (16, 8), (8, 1)] {
            assert_eq!(gemv_tasks(rows, rb, 8, t, Some(k), K64, K256), t * k);
        }
        // Too small for that many: 64 KiB (and 8 rows) per task.
        assert_eq!(gemv_tasks(512, 144, 8, 16, Some(8), K64, K256), 1);
        assert_eq!(gemv_tasks(2048, 210, 8, 2, Some(8), K64, K256), 6);
    }

    #[test]
    fn gemv_tasks_default_is_finer_only_for_large_tasks() {
        // Large: 8 per thread (ggml's float shape at 8 threads, 235 MB of F32).
        assert_eq!(gemv_tasks(4096, 14336 * 4, 8, 8, None, K64, K256), 64);
        assert_eq!(gemv_tasks(4096, 14336 * 4, 8, 2, None, K64, K256), 16);
        // Between: as many tasks of 256 KiB as there are, from 4 up to 8 per thread.
        let rb = 864; // 1536 columns of Q4_K
        let rows = (24 << 20) / rb; // 24 MiB at 16 threads: 96 tasks of 256 KiB
        assert_eq!(
            gemv_tasks(rows, rb, 8, 16, None, K64, K256),
            rows / (K256 / rb)
        );
        // Small: what 4 per thread gives (an E2B FFN of 5.3 MB at 16 threads, the trained
        // fixture's 786 KB BF16 projection and 1 MB BF16 output at 2 threads).
        for (rows, rb, t) in [
            (6144, 864, 16),
            (6144, 864, 8),
            (1536, 512, 2),
            (2048, 512, 2),
        ] {
            assert_eq!(
                gemv_tasks(rows, rb, 8, t, None, K64, K256),
                gemv_tasks(rows, rb, 8, t, Some(4), K64, K256),
                "{rows} × {rb} B at {t} threads"
            );
        }
        // Never fewer than 4 per thread would give, never more than 8 per thread.
        for rows in [1, 7, 100, 5000, 100_000, 1_000_000] {
            for t in [1, 2, 5, 16] {
                let d = gemv_tasks(rows, 1000, 8, t, None, K64, K256);
                assert!(d >= gemv_tasks(rows, 1000, 8, t, Some(4), K64, K256));
                assert!(d <= gemv_tasks(rows, 1000, 8, t, Some(8), K64, K256).max(1));
            }
        }
    }

    /// A GEMV large enough for the finer default split (4 MiB of F32 rows, 8 MiB of F16: up
    /// to 8 tasks per thread at 2 and 3 threads) gives the same bits at every thread count.
    #[test]
    fn gemv_fine_split_is_thread_count_independent() {
        let k = crate::kernels();
        let cols = 1024;
        let x: Vec<f32> = (0..cols)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        for (ty, rows) in [(GgmlType::F32, 1027), (GgmlType::F16, 4093)] {
            let rb = row_bytes(ty, cols);
            let w: Vec<u8> = (0..rows * rb)
                .map(|i| match (ty, i % 2) {
                    // F16: a small exponent in the high byte, so every value is finite.
                    (GgmlType::F16, 1) => 0x30 | (i / 2 % 7) as u8,
                    _ => (i.wrapping_mul(2654435761) >> 13) as u8 & 0x3f,
                })
                .collect();
            let mut first: Option<Vec<u32>> = None;
            for threads in [1, 2, 3, 16] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                assert!(
                    threads == 1
                        || gemv_tasks(rows, rb, 8, threads, None, 64 << 10, 256 << 10)
                            > gemv_tasks(rows, rb, 8, threads, Some(4), 64 << 10, 256 << 10)
                        || threads == 16,
                    "{ty} {rows} rows at {threads} threads: not on the finer split"
                );
                let mut y = vec![f32::NAN; rows];
                pool.install(|| k.gemv(ty, &w, &x, &mut y, &mut []));
                let b: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
                assert!(y.iter().all(|v| v.is_finite()), "{ty}: non-finite output");
                match &first {
                    None => first = Some(b),
                    Some(f) => assert_eq!(&b, f, "{ty} {rows} rows at {threads} threads"),
                }
            }
        }
    }
}
