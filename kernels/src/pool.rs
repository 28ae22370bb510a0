//! A persistent worker pool for short parallel steps: the GEMV/GEMM splits here and the
//! runner's per-row loops. A step hands `n` tasks (`f(0) .. f(n-1)`) to the calling thread and
//! the pool's workers, which claim task indices from one atomic counter; the call returns when
//! every task has finished. Idle workers watch a step counter for a bounded time
//! (`GQ_SPIN_US`, default [`DEFAULT_SPIN_US`] µs: the first `GQ_PURE_SPIN_US`, default
//! [`DEFAULT_PURE_SPIN_US`], with [`std::hint::spin_loop`], then yielding between looks) before
//! they park, so a step that follows another within that time reaches them in well under a
//! microsecond, where waking rayon's sleeping workers costs microseconds (a token of a small
//! model is dozens of microsecond-sized steps); an idle process burns no CPU beyond it.
//!
//! The thread count is rayon's: [`par_for`] uses a pool of `rayon::current_num_threads()`
//! threads (the caller and that many minus one workers, one pool per count, created on first
//! use and kept), so `ThreadPool::install` chooses it as before. Work is split by the callers
//! (output rows, tokens, heads); which thread runs a task never changes a value. A call made
//! inside a task runs its tasks on the calling thread; a call while another thread's step holds
//! the pool goes to rayon instead. A panic in a task is caught, the step finishes, and the panic
//! resumes on the calling thread.

use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

/// Microseconds an idle worker spins before it parks, unless `GQ_SPIN_US` says otherwise.
pub const DEFAULT_SPIN_US: u64 = 1000;

/// Microseconds an idle worker spins with `spin_loop` alone, unless `GQ_PURE_SPIN_US` says
/// otherwise; for the rest of its spin time it yields between looks at the step counter, which
/// costs a system call (well under a microsecond) when nothing else wants the CPU and lets
/// other threads run when something does.
pub const DEFAULT_PURE_SPIN_US: u64 = 50;

/// `spin_loop`s the caller makes while it waits for the workers' tasks before it yields
/// between looks (of the order of ten microseconds).
const CALLER_SPINS: u32 = 256;

/// A task body as the workers see it (the lifetime is erased while a step runs).
type Job<'a> = &'a (dyn Fn(usize) + Sync);

/// A value alone on its cache lines (two, for the adjacent-line prefetcher).
#[repr(align(128))]
struct Line<T>(T);

/// What the caller and the workers share.
struct Shared {
    /// Step number: bumped once per step; idle workers spin on it.
    step: Line<AtomicU64>,
    /// The current step's task count (high 32 bits) and next unclaimed index (low 32 bits).
    word: Line<AtomicU64>,
    /// Tasks of the current step not finished yet.
    pending: Line<AtomicUsize>,
    /// `*const Job` of the current step.
    job: AtomicPtr<()>,
    /// The first panic of the current step.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Per worker: parked or about to park (the caller unparks it).
    sleeping: Box<[Line<AtomicBool>]>,
    /// Set when the pool is dropped.
    stop: AtomicBool,
    /// How long an idle worker spins.
    spin: Duration,
    /// How much of that with `spin_loop` alone.
    pure: Duration,
}

thread_local! {
    /// Set while this thread runs a task of some pool: a nested call runs inline.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

/// Clears [`IN_TASK`] when dropped (also on unwinding).
struct InTask(bool);
impl InTask {
    fn enter() -> InTask {
        InTask(IN_TASK.with(|c| c.replace(true)))
    }
}
impl Drop for InTask {
    fn drop(&mut self) {
        let old = self.0;
        IN_TASK.with(|c| c.set(old));
    }
}

impl Shared {
    /// Claims and runs tasks of the current step until none is left. Safe to call at any time:
    /// an index is only run when it is below the task count packed with it, and then the step
    /// (with its job) stays alive until this task's `pending` decrement.
    fn work(&self) {
        let _g = InTask::enter();
        loop {
            let c = self.word.0.fetch_add(1, Ordering::AcqRel);
            let (n, i) = ((c >> 32) as usize, (c & 0xffff_ffff) as usize);
            if i >= n {
                return;
            }
            // SAFETY: a claimed index below n means the step that published this word has not
            // finished (its caller waits for `pending` to reach 0, and this task counts), so the
            // job pointer it stored before the word (acquired through the fetch_add above)
            // still points at the caller's live `Job`.
            let f: Job = unsafe { *(self.job.load(Ordering::Relaxed) as *const Job) };
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(i))) {
                let mut slot = self.panic.lock().unwrap_or_else(|e| e.into_inner());
                if slot.is_none() {
                    *slot = Some(p);
                }
            }
            self.pending.0.fetch_sub(1, Ordering::Release);
        }
    }
}

/// The loop of worker `w` (0-based; it is participant `w + 1`, the caller is 0).
fn worker(sh: Arc<Shared>, w: usize) {
    // The step count the pool started with: a worker that starts late still sees every step
    // (and the stop) that came before it.
    let mut seen = 0;
    loop {
        let mut s = sh.step.0.load(Ordering::Acquire);
        let mut t0 = Instant::now();
        let mut k = 0u32;
        let mut yielding = false;
        while s == seen {
            if yielding {
                // Past the pure spin: give the CPU to any other runnable thread (on a busy
                // machine, maybe the one holding this process's current task) between looks.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
            s = sh.step.0.load(Ordering::Acquire);
            k = k.wrapping_add(1);
            if s != seen || !(yielding || k.is_multiple_of(64)) {
                continue;
            }
            let e = t0.elapsed();
            yielding = e >= sh.pure;
            if e >= sh.spin {
                // Announce the sleep, then look once more: the caller bumps `step` before it
                // reads `sleeping` (both SeqCst), so either it sees the flag and unparks, or
                // this load sees the new step. An unpark that comes early is kept as the
                // thread's token and makes park() return at once.
                sh.sleeping[w].0.store(true, Ordering::SeqCst);
                if sh.step.0.load(Ordering::SeqCst) == seen {
                    std::thread::park();
                }
                sh.sleeping[w].0.store(false, Ordering::SeqCst);
                s = sh.step.0.load(Ordering::Acquire);
                t0 = Instant::now();
                yielding = false;
            }
        }
        seen = s;
        if sh.stop.load(Ordering::Acquire) {
            return;
        }
        // Only the first n - 1 workers take part in a step of n tasks.
        if ((sh.word.0.load(Ordering::Acquire) >> 32) as usize) > w + 1 {
            sh.work();
        }
    }
}

/// A pool of `threads - 1` spinning workers plus the calling thread (see the module docs).
pub struct Pool {
    sh: Arc<Shared>,
    threads: Vec<Thread>,
    handles: Vec<JoinHandle<()>>,
    /// Held by the thread whose step is running.
    busy: AtomicBool,
}

impl Pool {
    /// A pool for steps over `threads` threads (the caller and `threads - 1` workers, started
    /// now) whose idle workers spin for `spin` before they park, the first `pure` of it with
    /// `spin_loop` alone, then yielding between looks.
    pub fn new(threads: usize, spin: Duration, pure: Duration) -> Pool {
        let nw = threads.max(1) - 1;
        let sh = Arc::new(Shared {
            step: Line(AtomicU64::new(0)),
            word: Line(AtomicU64::new(0)),
            pending: Line(AtomicUsize::new(0)),
            job: AtomicPtr::new(std::ptr::null_mut()),
            panic: Mutex::new(None),
            sleeping: (0..nw).map(|_| Line(AtomicBool::new(false))).collect(),
            stop: AtomicBool::new(false),
            spin,
            pure,
        });
        let handles: Vec<JoinHandle<()>> = (0..nw)
            .map(|w| {
                let sh = Arc::clone(&sh);
                std::thread::Builder::new()
                    .name(format!("gq-pool-{threads}-{}", w + 1))
                    .spawn(move || worker(sh, w))
                    .expect("cannot start a worker thread")
            })
            .collect();
        let threads = handles.iter().map(|h| h.thread().clone()).collect();
        Pool {
            sh,
            threads,
            handles,
            busy: AtomicBool::new(false),
        }
    }

    /// Threads a step may use (the caller included).
    pub fn threads(&self) -> usize {
        self.threads.len() + 1
    }

    /// Runs `f(0) .. f(n-1)`, each exactly once, over the pool's threads (in any order, on any
    /// of them) and returns when all have finished; a panic in one of them resumes here after
    /// that. One task, a one-thread pool, or a call from inside a task runs on the calling
    /// thread; a call while another thread's step is running returns `false` without running
    /// anything (see [`Pool::run`]).
    pub fn try_run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) -> bool {
        if n == 0 {
            return true;
        }
        if n == 1 || self.threads.is_empty() || IN_TASK.with(Cell::get) {
            let _g = InTask::enter();
            (0..n).for_each(f);
            return true;
        }
        assert!(n < 1 << 31, "pool: {n} tasks in one step");
        if self
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        let sh = &*self.sh;
        // SAFETY (lifetime): the workers only dereference this pointer for claimed indices
        // below n, and this function returns only after all n tasks have finished.
        let job: Job = f;
        sh.job
            .store(&job as *const Job as *mut (), Ordering::Relaxed);
        sh.pending.0.store(n, Ordering::Relaxed);
        sh.word.0.store((n as u64) << 32, Ordering::Release);
        sh.step.0.fetch_add(1, Ordering::SeqCst);
        for w in 0..(n - 1).min(self.threads.len()) {
            if sh.sleeping[w].0.load(Ordering::SeqCst) {
                self.threads[w].unpark();
            }
        }
        sh.work();
        let mut k = 0u32;
        while sh.pending.0.load(Ordering::Acquire) != 0 {
            // Workers that claimed a task are running it; after a short spin, yield between
            // looks, so that a descheduled one gets the CPU back on a busy machine.
            if k < CALLER_SPINS {
                std::hint::spin_loop();
                k += 1;
            } else {
                std::thread::yield_now();
            }
        }
        let p = sh.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.busy.store(false, Ordering::Release);
        if let Some(p) = p {
            resume_unwind(p);
        }
        true
    }

    /// [`Pool::try_run`], running the tasks on the calling thread alone when another thread's
    /// step holds the pool.
    pub fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        if !self.try_run(n, f) {
            let _g = InTask::enter();
            (0..n).for_each(f);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.sh.stop.store(true, Ordering::Release);
        self.sh.step.0.fetch_add(1, Ordering::SeqCst);
        for t in &self.threads {
            t.unpark();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// Microseconds from the environment variable `name` (read once into `cell`), else `default`.
fn micros(cell: &'static OnceLock<u64>, name: &str, default: u64) -> Duration {
    Duration::from_micros(*cell.get_or_init(|| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(default)
    }))
}

/// How long idle workers of the shared pools spin before they park (`GQ_SPIN_US` µs, default
/// [`DEFAULT_SPIN_US`]; 0 parks at once).
pub fn spin_time() -> Duration {
    static C: OnceLock<u64> = OnceLock::new();
    micros(&C, "GQ_SPIN_US", DEFAULT_SPIN_US)
}

/// How much of [`spin_time`] is spent spinning without yielding (`GQ_PURE_SPIN_US` µs,
/// default [`DEFAULT_PURE_SPIN_US`]).
pub fn pure_spin_time() -> Duration {
    static C: OnceLock<u64> = OnceLock::new();
    micros(&C, "GQ_PURE_SPIN_US", DEFAULT_PURE_SPIN_US)
}

/// The shared pool of `threads` threads (created on first use, kept for the process).
pub fn shared(threads: usize) -> &'static Pool {
    thread_local! {
        static LAST: Cell<Option<&'static Pool>> = const { Cell::new(None) };
    }
    if let Some(p) = LAST
        .with(Cell::get)
        .filter(|p| p.threads() == threads.max(1))
    {
        return p;
    }
    static POOLS: Mutex<Vec<&'static Pool>> = Mutex::new(Vec::new());
    let mut v = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    let p = match v.iter().find(|p| p.threads() == threads.max(1)) {
        Some(p) => *p,
        None => {
            let p: &'static Pool =
                Box::leak(Box::new(Pool::new(threads, spin_time(), pure_spin_time())));
            v.push(p);
            p
        }
    };
    LAST.with(|c| c.set(Some(p)));
    p
}

/// Runs `f(0) .. f(n-1)` over the shared pool of `rayon::current_num_threads()` threads
/// ([`Pool::try_run`]); when another thread's step holds that pool, over rayon's current pool.
/// Either way each index runs exactly once and the call returns when all have finished.
pub fn par_for(n: usize, f: impl Fn(usize) + Sync) {
    if n <= 1 || IN_TASK.with(Cell::get) {
        (0..n).for_each(f);
        return;
    }
    let t = rayon::current_num_threads();
    if t <= 1 {
        (0..n).for_each(f);
        return;
    }
    if !shared(t).try_run(n, &f) {
        use rayon::prelude::*;
        (0..n).into_par_iter().for_each(&f);
    }
}

/// A mutable slice's pointer, shared by tasks that touch disjoint parts of it.
struct SyncSlice<T>(*mut T, usize);
// SAFETY: the helpers below hand each task a disjoint sub-slice, and the borrow of the slice
// outlives the step.
unsafe impl<T: Send> Sync for SyncSlice<T> {}

impl<T> SyncSlice<T> {
    /// Elements `r` of the slice.
    ///
    /// # Safety
    /// `r` is inside the slice and no other live reference overlaps it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn part(&self, r: core::ops::Range<usize>) -> &mut [T] {
        debug_assert!(r.start <= r.end && r.end <= self.1);
        core::slice::from_raw_parts_mut(self.0.add(r.start), r.end - r.start)
    }
}

/// Splits `x` into pieces of `chunk` elements (the last takes the rest) and runs
/// `f(piece index, piece)` for each, one piece per task ([`par_for`]).
pub fn par_chunks_mut<T: Send>(x: &mut [T], chunk: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let chunk = chunk.max(1);
    let n = x.len().div_ceil(chunk);
    let s = SyncSlice(x.as_mut_ptr(), x.len());
    par_for(n, |i| {
        let r = i * chunk..((i + 1) * chunk).min(s.1);
        // SAFETY: piece i's range is inside x and no other task's overlaps it.
        f(i, unsafe { s.part(r) })
    });
}

/// Tasks per thread for [`rows_mut`]: a few, so that a thread that got slower work (later
/// tokens' attention, a busy core) does not hold the step up.
const TASKS_PER_THREAD: usize = 4;

/// Rows per task for `rows` rows of which a task takes at least `min_rows`.
fn rows_per_task(rows: usize, min_rows: usize) -> usize {
    let t = rayon::current_num_threads().max(1);
    let tasks = (rows / min_rows.max(1)).clamp(1, TASKS_PER_THREAD * t);
    rows.div_ceil(tasks).max(1)
}

/// Element-wise work over the rows of `x` (rows of `width` elements): `f(first row, rows)`
/// for blocks of whole rows, in parallel, at least `min_rows` rows per block (fewer blocks
/// than that run on the calling thread alone).
pub fn rows_mut<T: Send>(
    x: &mut [T],
    width: usize,
    min_rows: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let width = width.max(1);
    let per = rows_per_task(x.len() / width, min_rows);
    par_chunks_mut(x, per * width, |i, blk| f(i * per, blk));
}

/// [`rows_mut`] over two arrays with the same number of rows (of `wa` and `wb` elements):
/// `f(first row, rows of a, rows of b)`.
pub fn rows_mut2<A: Send, B: Send>(
    a: &mut [A],
    wa: usize,
    b: &mut [B],
    wb: usize,
    min_rows: usize,
    f: impl Fn(usize, &mut [A], &mut [B]) + Sync,
) {
    let (wa, wb) = (wa.max(1), wb.max(1));
    let rows = a.len() / wa;
    assert_eq!(b.len() / wb, rows, "rows_mut2: row counts differ");
    let per = rows_per_task(rows, min_rows);
    let sb = SyncSlice(b.as_mut_ptr(), b.len());
    par_chunks_mut(a, per * wa, |i, blk| {
        let r0 = (i * per * wb).min(sb.1);
        let r1 = (r0 + per * wb).min(sb.1);
        // SAFETY: block i's rows of b are inside b and no other task's overlap them.
        f(i * per, blk, unsafe { sb.part(r0..r1) })
    });
}
