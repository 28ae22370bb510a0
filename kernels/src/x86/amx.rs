//! Intel AMX tiles in the register-tiled GEMM (`x86::tile`): the micro-kernel of the tiled loop
//! done with tile instructions, generically over [`Tiles`], which has two implementations:
//! [`Hw`] (inline `asm!`: `ldtilecfg`, `tileloadd`, `tilestored`, `tilezero`, `tdpbf16ps`,
//! `tdpbssd`, `tdpbsud`, `tilerelease`) and [`Emu`] (plain Rust, a model of exactly those
//! instructions, so that the driver is tested on CPUs without AMX).
//!
//! The tiled loop, the weight repack and the accumulator layout are `x86::tile`'s: per (tile of
//! 16 weight rows, K chunk) the weights are repacked to `[k/4][16 rows][4 bytes]` (u8 quants) or
//! `[k/2][16 rows][2 bf16]` (BF16), which **is** the B operand layout of the tile instructions
//! (K/4 or K/2 rows of 16 dwords, stride 64 bytes). The A operand is up to 16 token rows of the
//! prepared activations (their own row stride); the C tile is 16 tokens × 16 weight rows, which
//! is also the layout of the f32 accumulators per (row tile, token) of `x86::tile`. One
//! micro-kernel call takes 32 tokens (two token tiles): BF16 with two tiles of rows at once
//! (2 × 2 C tiles, tiles 0–3; A 4/5; B 6/7), the int8 formats with one tile of rows and their C
//! tiles double-buffered (0/1 for even groups, 2/3 for odd; A 4/5; B 6/7), so that the next
//! group's products are issued before this group's sums are stored and scaled.
//!
//! Numerics:
//! - BF16 × BF16 (`tdpbf16ps`): the C tiles are loaded from the f32 accumulators at the start of
//!   a K chunk and stored back at its end (exact), so every (row, token) is one f32 accumulator
//!   that `tdpbf16ps` adds the products to in k order. The instruction's rounding (per Intel's
//!   description: each BF16 product is exact in f32, added to the accumulator with round to
//!   nearest even, denormal inputs read as zero and denormal results flushed to zero, MXCSR
//!   ignored) is what [`Emu`] models; the hardware's internal order inside one instruction (32 k)
//!   is not specified beyond that, so the tests bound both against the scalar reference
//!   (`(n + 16)·2⁻²³·Σ|w·x|`) rather than against each other, except on data whose sums are exact.
//! - Int8 (Q4_K, Q6_K, Q8_0, TQT*): one `tdpbsud` (Q4_K: signed activations, unsigned 4-bit
//!   quants) or `tdpbssd` (the others, after their repacked quants are made signed: Q6_K `q − 32`,
//!   Q8_0 and TQ `q ^ 0x80`, which removes the bias terms the AVX-512 micro-kernel starts from)
//!   per group of the format (32 k; Q6_K 16 k), with K = the group. The int32 C tile is the
//!   exact group sum that the AVX-512 micro-kernel computes; it is stored and converted with the
//!   very same f32 steps in the same order (one `vfmadd` per group, the Q4_K min term, the
//!   activation scale), so these results are **bit-identical** to the AVX-512 tiled GEMM.
//!
//! In both cases a token's result depends only on its activation row and the weights: not on
//! the thread count, the other tokens of the batch or how they fall into tiles.
//!
//! Availability ([`hw_available`]): CPUID.(7,0):EDX AMX-TILE (24), AMX-INT8 (25), AMX-BF16 (22),
//! XCR0 bits 17/18 enabled by the OS, and Linux's `arch_prctl(ARCH_REQ_XCOMP_PERM,
//! XFEATURE_XTILEDATA)` granted (once per process); anything else means no AMX, and the GEMM
//! stays on AVX-512. By default only BF16 × BF16 takes AMX ([`DEFAULT_TYPES`]: the int8 kernels
//! measured slower than the AVX-512 tile on the host, docs/kernels.md); `GQ_AMX` changes that
//! ([`enabled_for`]: `0` off, `all`, or a list of types).

#![allow(clippy::missing_safety_doc)] // the trait's safety contract is stated once, on it

use super::tile::{Fmt, Kind};
use crate::GgmlType;
use core::arch::asm;
use core::arch::x86_64::*;
use core::ptr::read_unaligned as rd;

/// A tile configuration (`ldtilecfg`'s 64-byte memory operand, palette 1).
#[repr(C, align(64))]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Cfg {
    /// Palette: 1 (8 tiles of up to 16 rows × 64 bytes).
    pub palette: u8,
    /// Restart row (0).
    pub start_row: u8,
    reserved: [u8; 14],
    /// Bytes per row of tile `i`.
    pub colsb: [u16; 16],
    /// Rows of tile `i`.
    pub rows: [u8; 16],
}

impl Cfg {
    /// Palette 1 with every tile unconfigured (0 rows, 0 bytes).
    pub const fn new() -> Cfg {
        Cfg {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        }
    }

    /// Sets tile `t` to `rows` rows of `colsb` bytes.
    pub fn set(&mut self, t: usize, rows: usize, colsb: usize) {
        assert!(t < 8 && (1..=16).contains(&rows) && (1..=64).contains(&colsb));
        self.rows[t] = rows as u8;
        self.colsb[t] = colsb as u16;
    }
}

impl Default for Cfg {
    fn default() -> Cfg {
        Cfg::new()
    }
}

/// The AMX tile operations the GEMM uses. Tile numbers are const generics (`tmm0`–`tmm7`).
///
/// # Safety
/// For [`Hw`] the CPU must have AMX-TILE/INT8/BF16 with the OS permission granted
/// ([`hw_available`]); every operation but [`Tiles::config`] needs a configuration loaded, its
/// tiles' shapes must fit the operation (as the instruction requires) and pointers must cover
/// `rows` rows of `colsb` bytes at the given stride.
pub unsafe trait Tiles {
    /// `ldtilecfg`: loads the configuration and zeroes every tile.
    unsafe fn config(&mut self, c: &Cfg);
    /// `tilerelease`: back to the unconfigured state.
    unsafe fn release(&mut self);
    /// `tilezero tmmT`.
    unsafe fn zero<const T: u8>(&mut self);
    /// `tileloadd tmmT, [p + stride]`: `rows` rows of `colsb` bytes.
    unsafe fn load<const T: u8>(&mut self, p: *const u8, stride: usize);
    /// `tilestored [p + stride], tmmT`.
    unsafe fn store<const T: u8>(&mut self, p: *mut u8, stride: usize);
    /// `tdpbf16ps tmmC, tmmA, tmmB`: C (f32) += A (BF16 pairs) · B (BF16 pairs).
    unsafe fn dpbf16ps<const C: u8, const A: u8, const B: u8>(&mut self);
    /// `tdpbssd tmmC, tmmA, tmmB`: C (i32) += A (i8 quads) · B (i8 quads).
    unsafe fn dpbssd<const C: u8, const A: u8, const B: u8>(&mut self);
    /// `tdpbsud tmmC, tmmA, tmmB`: C (i32) += A (i8 quads) · B (u8 quads).
    unsafe fn dpbsud<const C: u8, const A: u8, const B: u8>(&mut self);
}

/// The hardware tiles (inline assembly).
pub struct Hw;

// SAFETY: the instructions are exactly the trait's; the caller's contract is the trait's.
unsafe impl Tiles for Hw {
    #[inline(always)]
    unsafe fn config(&mut self, c: &Cfg) {
        asm!("ldtilecfg [{}]", in(reg) c as *const Cfg, options(nostack, readonly));
    }
    #[inline(always)]
    unsafe fn release(&mut self) {
        asm!("tilerelease", options(nostack, nomem));
    }
    #[inline(always)]
    unsafe fn zero<const T: u8>(&mut self) {
        asm!("tilezero tmm{t}", t = const T, options(nostack, nomem));
    }
    #[inline(always)]
    unsafe fn load<const T: u8>(&mut self, p: *const u8, stride: usize) {
        asm!("tileloadd tmm{t}, [{p} + {s}*1]", t = const T, p = in(reg) p, s = in(reg) stride,
            options(nostack, readonly));
    }
    #[inline(always)]
    unsafe fn store<const T: u8>(&mut self, p: *mut u8, stride: usize) {
        asm!("tilestored [{p} + {s}*1], tmm{t}", t = const T, p = in(reg) p, s = in(reg) stride,
            options(nostack));
    }
    #[inline(always)]
    unsafe fn dpbf16ps<const C: u8, const A: u8, const B: u8>(&mut self) {
        asm!("tdpbf16ps tmm{c}, tmm{a}, tmm{b}", c = const C, a = const A, b = const B,
            options(nostack, nomem));
    }
    #[inline(always)]
    unsafe fn dpbssd<const C: u8, const A: u8, const B: u8>(&mut self) {
        asm!("tdpbssd tmm{c}, tmm{a}, tmm{b}", c = const C, a = const A, b = const B,
            options(nostack, nomem));
    }
    #[inline(always)]
    unsafe fn dpbsud<const C: u8, const A: u8, const B: u8>(&mut self) {
        asm!("tdpbsud tmm{c}, tmm{a}, tmm{b}", c = const C, a = const A, b = const B,
            options(nostack, nomem));
    }
}

/// A plain-Rust model of the tile instructions (palette 1: 8 tiles of 16 rows × 64 bytes).
/// Every operation checks what the instruction checks (#UD / #GP become panics): a loaded
/// configuration, palette 1, rows ≤ 16, bytes per row ≤ 64, and the operand shapes of the dot
/// products (C rows = A rows, A bytes per row = 4·B rows, C bytes per row = B bytes per row).
pub struct Emu {
    cfg: Option<Cfg>,
    t: [[[u8; 64]; 16]; 8],
}

impl Emu {
    /// Unconfigured tiles.
    pub fn new() -> Emu {
        Emu {
            cfg: None,
            t: [[[0; 64]; 16]; 8],
        }
    }

    fn shape(&self, t: u8) -> (usize, usize) {
        let c = self
            .cfg
            .as_ref()
            .expect("AMX: tile op without a configuration (#UD)");
        let (r, b) = (c.rows[t as usize] as usize, c.colsb[t as usize] as usize);
        assert!(r > 0 && b > 0, "AMX: tile {t} is not configured (#UD)");
        (r, b)
    }

    fn dword(&self, t: u8, r: usize, i: usize) -> [u8; 4] {
        self.t[t as usize][r][4 * i..4 * i + 4].try_into().unwrap()
    }

    /// The dot-product shape checks; returns (M, N dwords, K dwords).
    fn dp_shape(&self, c: u8, a: u8, b: u8) -> (usize, usize, usize) {
        let ((cr, cb), (ar, ab), (br, bb)) = (self.shape(c), self.shape(a), self.shape(b));
        assert!(
            c != a && c != b && a != b,
            "AMX: tile operands must differ (#UD)"
        );
        assert!(
            cr == ar && cb == bb && ab == 4 * br && cb % 4 == 0 && ab % 4 == 0,
            "AMX: operand shapes C {cr}x{cb}, A {ar}x{ab}, B {br}x{bb} do not fit (#UD)"
        );
        (cr, cb / 4, ab / 4)
    }

    /// Zeroes the bytes past `colsb` and the rows past `rows` of tile `t` (what every write does).
    fn zero_upper(&mut self, t: u8) {
        let (r, b) = self.shape(t);
        for (i, row) in self.t[t as usize].iter_mut().enumerate() {
            let from = if i < r { b } else { 0 };
            row[from..].fill(0);
        }
    }
}

impl Default for Emu {
    fn default() -> Emu {
        Emu::new()
    }
}

/// BF16 bits as f32, denormals read as zero (`tdpbf16ps`'s DAZ).
fn bf16_daz(b: u16) -> f32 {
    let v = f32::from_bits((b as u32) << 16);
    if v.is_subnormal() {
        0.0f32.copysign(v)
    } else {
        v
    }
}

/// f32 result with denormals flushed to zero (`tdpbf16ps`'s FTZ).
fn ftz(v: f32) -> f32 {
    if v.is_subnormal() {
        0.0f32.copysign(v)
    } else {
        v
    }
}

// SAFETY: a software model; pointers are the caller's, as for the hardware.
unsafe impl Tiles for Emu {
    unsafe fn config(&mut self, c: &Cfg) {
        assert_eq!(c.palette, 1, "AMX: palette {} (#GP)", c.palette);
        assert_eq!(c.start_row, 0, "AMX: start_row");
        for i in 0..8 {
            assert!(
                c.rows[i] <= 16 && c.colsb[i] <= 64 && (c.rows[i] == 0) == (c.colsb[i] == 0),
                "AMX: tile {i} config {}x{} (#GP)",
                c.rows[i],
                c.colsb[i]
            );
        }
        assert!(c.rows[8..].iter().all(|&r| r == 0) && c.colsb[8..].iter().all(|&b| b == 0));
        self.cfg = Some(*c);
        self.t = [[[0; 64]; 16]; 8];
    }
    unsafe fn release(&mut self) {
        self.cfg = None;
        self.t = [[[0; 64]; 16]; 8];
    }
    unsafe fn zero<const T: u8>(&mut self) {
        self.shape(T);
        self.t[T as usize] = [[0; 64]; 16];
    }
    unsafe fn load<const T: u8>(&mut self, p: *const u8, stride: usize) {
        let (r, b) = self.shape(T);
        for i in 0..r {
            core::ptr::copy_nonoverlapping(
                p.add(i * stride),
                self.t[T as usize][i].as_mut_ptr(),
                b,
            );
        }
        self.zero_upper(T);
    }
    unsafe fn store<const T: u8>(&mut self, p: *mut u8, stride: usize) {
        let (r, b) = self.shape(T);
        for i in 0..r {
            core::ptr::copy_nonoverlapping(self.t[T as usize][i].as_ptr(), p.add(i * stride), b);
        }
    }
    unsafe fn dpbf16ps<const C: u8, const A: u8, const B: u8>(&mut self) {
        let (m, n, k) = self.dp_shape(C, A, B);
        for mi in 0..m {
            for ki in 0..k {
                let a = self.dword(A, mi, ki);
                for ni in 0..n {
                    let b = self.dword(B, ki, ni);
                    let mut acc = f32::from_le_bytes(self.dword(C, mi, ni));
                    for h in 0..2 {
                        let x = bf16_daz(u16::from_le_bytes([a[2 * h], a[2 * h + 1]]));
                        let y = bf16_daz(u16::from_le_bytes([b[2 * h], b[2 * h + 1]]));
                        acc = ftz(acc + x * y);
                    }
                    self.t[C as usize][mi][4 * ni..4 * ni + 4].copy_from_slice(&acc.to_le_bytes());
                }
            }
        }
        self.zero_upper(C);
    }
    unsafe fn dpbssd<const C: u8, const A: u8, const B: u8>(&mut self) {
        self.dp_int::<C, A, B>(false);
    }
    unsafe fn dpbsud<const C: u8, const A: u8, const B: u8>(&mut self) {
        self.dp_int::<C, A, B>(true);
    }
}

impl Emu {
    /// `tdpbssd` / `tdpbsud` (`b_unsigned`): per dword, the four byte products summed exactly
    /// and added to C with 32-bit wrap-around.
    fn dp_int<const C: u8, const A: u8, const B: u8>(&mut self, b_unsigned: bool) {
        let (m, n, k) = self.dp_shape(C, A, B);
        for mi in 0..m {
            for ni in 0..n {
                let mut acc = i32::from_le_bytes(self.dword(C, mi, ni));
                for ki in 0..k {
                    let (a, b) = (self.dword(A, mi, ki), self.dword(B, ki, ni));
                    let s: i32 = (0..4)
                        .map(|i| {
                            let y = if b_unsigned {
                                b[i] as i32
                            } else {
                                b[i] as i8 as i32
                            };
                            a[i] as i8 as i32 * y
                        })
                        .sum();
                    acc = acc.wrapping_add(s);
                }
                self.t[C as usize][mi][4 * ni..4 * ni + 4].copy_from_slice(&acc.to_le_bytes());
            }
        }
        self.zero_upper(C);
    }
}

/// Whether this CPU and OS let this process use AMX-TILE, AMX-INT8 and AMX-BF16 (checked once;
/// the Linux permission is requested then).
pub fn hw_available() -> bool {
    static A: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *A.get_or_init(detect)
}

/// The weight types whose GEMM takes AMX by default (where [`hw_available`]): BF16 × BF16
/// activations only. On the 16-core host (2026-11-29, docs/kernels.md) the int8 kernels
/// measured slower than the AVX-512 tile (GEMM n = 512 and the runner's pp512), so they are
/// used only when asked for (`GQ_AMX=all` or a type list).
pub const DEFAULT_TYPES: &[GgmlType] = &[GgmlType::BF16];

/// Every weight type with an AMX kernel (`GQ_AMX=all`).
pub const ALL_TYPES: &[GgmlType] = &[
    GgmlType::BF16,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::Q8_0,
    GgmlType::TQT4_5,
    GgmlType::TQT3_375,
    GgmlType::TQT2_5,
];

/// Whether the GEMM of `ty` uses AMX by default: [`hw_available`] and `GQ_AMX` allows it
/// (unset or `1`: [`DEFAULT_TYPES`]; `0`: none; `all`: [`ALL_TYPES`]; else a comma-separated
/// list of type names, e.g. `bf16,q4_k`).
pub fn enabled_for(ty: GgmlType) -> bool {
    static E: std::sync::OnceLock<Vec<GgmlType>> = std::sync::OnceLock::new();
    let types = E.get_or_init(|| {
        if !hw_available() {
            return Vec::new();
        }
        match std::env::var("GQ_AMX").map(|v| v.trim().to_ascii_lowercase()) {
            Ok(v) if v == "0" => Vec::new(),
            Ok(v) if v == "all" => ALL_TYPES.to_vec(),
            Ok(v) if !v.is_empty() && v != "1" => ALL_TYPES
                .iter()
                .copied()
                .filter(|t| {
                    v.split(',')
                        .any(|n| n.trim() == t.name().to_ascii_lowercase())
                })
                .collect(),
            _ => DEFAULT_TYPES.to_vec(),
        }
    });
    types.contains(&ty)
}

/// A-operand prefetch into L1 ahead of the tile loads (`GQ_AMX_PF=0` turns it off, for A/B).
fn prefetch_on() -> bool {
    static P: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *P.get_or_init(|| std::env::var("GQ_AMX_PF").map_or(true, |v| v.trim() != "0"))
}

/// BF16 operand loads software-pipelined one unit ahead (`GQ_AMX_PIPE=0`: load each unit's
/// operands just before its products, for A/B).
fn pipelined() -> bool {
    static P: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *P.get_or_init(|| std::env::var("GQ_AMX_PIPE").map_or(true, |v| v.trim() != "0"))
}

/// Prefetches into L1 the bytes `[o, o + len)` of the `nt` token rows at `a` (stride `abr`).
/// They may lie past the end of the activations (the kernels look units ahead), so the
/// addresses are made with `wrapping_add`: a prefetch never faults, but `add` past the
/// allocation would be undefined behaviour.
#[inline(always)]
unsafe fn prefetch_rows(a: *const u8, abr: usize, nt: usize, o: usize, len: usize) {
    for m in 0..nt {
        let p = a.wrapping_add(m * abr + o);
        let mut l = 0;
        while l < len {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(l).cast());
            l += 64;
        }
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(len - 1).cast());
    }
}

fn detect() -> bool {
    // SAFETY: CPUID exists on every x86-64 CPU; XGETBV only runs when CPUID says OSXSAVE.
    let (leaf7, leaf1) = (__cpuid_count(7, 0), __cpuid(1));
    let bit = |r: u32, b: u32| r >> b & 1 == 1;
    if !(bit(leaf7.edx, 24) && bit(leaf7.edx, 25) && bit(leaf7.edx, 22)) {
        return false;
    }
    if !bit(leaf1.ecx, 27) {
        return false;
    }
    let (lo, _hi): (u32, u32);
    // SAFETY: OSXSAVE is set, so XGETBV with ECX = 0 is defined.
    unsafe {
        asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") _hi, options(nomem, nostack))
    };
    if lo >> 17 & 3 != 3 {
        return false;
    }
    request_permission()
}

#[cfg(target_os = "linux")]
fn request_permission() -> bool {
    const SYS_ARCH_PRCTL: usize = 158;
    const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
    const XFEATURE_XTILEDATA: usize = 18;
    let ret: isize;
    // SAFETY: the arch_prctl system call with these arguments only changes this process's
    // permission to use the tile data state; rcx and r11 are clobbered by `syscall`.
    unsafe {
        asm!("syscall", inlateout("rax") SYS_ARCH_PRCTL as isize => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM, in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _, lateout("r11") _, options(nostack))
    };
    ret == 0
}

#[cfg(not(target_os = "linux"))]
fn request_permission() -> bool {
    false
}

/// Whether `f` has an AMX micro-kernel.
pub(crate) fn supports(f: &Fmt) -> bool {
    f.kind != Kind::Float
}

/// Tokens per micro-kernel call: two token tiles of 16.
pub(crate) const TOKENS_PER_CALL: usize = 32;

/// Makes the repacked quants (`len` bytes at `q`) of the formats multiplied by `tdpbssd`
/// signed: Q6_K `q − 32`, Q8_0 and TQ `q ^ 0x80` (their bias terms are then zero).
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn make_signed(f: &Fmt, q: *mut u8, len: usize) {
    let op = |v: __m512i| match f.kind {
        Kind::Q6K => _mm512_sub_epi8(v, _mm512_set1_epi8(32)),
        Kind::Q80 | Kind::Tq => _mm512_xor_si512(v, _mm512_set1_epi8(-128)),
        _ => v,
    };
    if matches!(f.kind, Kind::Q6K | Kind::Q80 | Kind::Tq) {
        for o in (0..len).step_by(64) {
            let p = q.add(o).cast::<__m512i>();
            _mm512_storeu_si512(p, op(_mm512_loadu_si512(p)));
        }
    }
}

/// The AMX state of one GEMM call on one thread: the tiles and the configuration loaded.
pub(crate) struct Amx<'t, T: Tiles> {
    t: &'t mut T,
    cur: Option<Cfg>,
    /// Stored int32 C tiles (2 tiles of 16 tokens × 16 rows), two groups in flight.
    ibuf: [[[i32; 16]; 32]; 2],
    /// Per-token f32 block sums of the current unit (int8 formats).
    blk: [[f32; 16]; 32],
}

impl<'t, T: Tiles> Amx<'t, T> {
    /// Wraps `t` (nothing is configured yet).
    pub(crate) fn new(t: &'t mut T) -> Self {
        Amx {
            t,
            cur: None,
            ibuf: [[[0; 16]; 32]; 2],
            blk: [[0.0; 16]; 32],
        }
    }

    /// Loads `c` unless it is the configuration already loaded.
    unsafe fn ensure(&mut self, c: Cfg) {
        if self.cur != Some(c) {
            self.t.config(&c);
            self.cur = Some(c);
        }
    }

    /// Releases the tiles (end of the GEMM call).
    pub(crate) unsafe fn finish(&mut self) {
        if self.cur.take().is_some() {
            self.t.release();
        }
    }

    /// The micro-kernel: `nt` tokens (≤ [`TOKENS_PER_CALL`]) whose prepared activations for the
    /// chunk start at `a` (row stride `abr`), `ku` units of the repacked tile `w` (scales `s`),
    /// added into the f32 accumulators `acc` (16 per token, contiguous). BF16 may take a second
    /// tile of rows (`second`: its repacked weights and the offset of its accumulators from
    /// `acc`, in f32).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn kern(
        &mut self,
        f: &Fmt,
        w: *const u8,
        s: *const u8,
        ku: usize,
        a: *const u8,
        abr: usize,
        nt: usize,
        acc: *mut f32,
        second: Option<(*const u8, usize)>,
    ) {
        debug_assert!((1..=TOKENS_PER_CALL).contains(&nt));
        if f.kind == Kind::Bf16 {
            self.kern_bf16(w, ku, a, abr, nt, acc, second)
        } else {
            debug_assert!(second.is_none());
            self.kern_int(f, w, s, ku, a, abr, nt, acc)
        }
    }

    /// BF16, 2 × 2 C tiles (tokens i × row tiles h: C tile 2i + h), A tiles 4/5, B tiles 6/7
    /// (one per row tile), one `tdpbf16ps` per C tile and unit of 32 k; the C tiles are loaded
    /// from and stored back to the accumulators.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn kern_bf16(
        &mut self,
        w: *const u8,
        ku: usize,
        a: *const u8,
        abr: usize,
        nt: usize,
        acc: *mut f32,
        second: Option<(*const u8, usize)>,
    ) {
        let mut c = Cfg::new();
        for i in 0..2 {
            let r = nt.saturating_sub(16 * i).clamp(1, 16);
            c.set(2 * i, r, 64);
            c.set(2 * i + 1, r, 64);
            c.set(4 + i, r, 64);
        }
        c.set(6, 16, 64);
        c.set(7, 16, 64);
        self.ensure(c);
        let two_t = nt > 16;
        let (w1, off1) = second.unwrap_or((w, 0));
        let two_r = second.is_some();
        let t = &mut *self.t;
        let a1 = a.add(16 * abr);
        // C tile of token tile i, row tile h.
        let cp = |i: usize, h: usize| acc.add(256 * i + off1 * h).cast::<u8>();
        t.load::<0>(cp(0, 0), 64);
        if two_r {
            t.load::<1>(cp(0, 1), 64);
        }
        if two_t {
            t.load::<2>(cp(1, 0), 64);
            if two_r {
                t.load::<3>(cp(1, 1), 64);
            }
        }
        let pf = prefetch_on();
        if pipelined() {
            // Each tile's operand for unit u + 1 is loaded right after its last use in unit u,
            // so the loads overlap the remaining products of unit u.
            t.load::<6>(w, 64);
            t.load::<4>(a, abr);
            if two_r {
                t.load::<7>(w1, 64);
            }
            if two_t {
                t.load::<5>(a1, abr);
            }
            for u in 0..ku {
                if pf {
                    // The rows' unit two ahead (64 bytes each), so the A loads hit L1.
                    prefetch_rows(a, abr, nt, 64 * (u + 2), 64);
                }
                let nx = u + 1 < ku;
                t.dpbf16ps::<0, 4, 6>();
                if two_r {
                    t.dpbf16ps::<1, 4, 7>();
                }
                if nx {
                    t.load::<4>(a.add(64 * (u + 1)), abr);
                }
                if two_t {
                    t.dpbf16ps::<2, 5, 6>();
                }
                if nx {
                    t.load::<6>(w.add(1024 * (u + 1)), 64);
                }
                if two_t && two_r {
                    t.dpbf16ps::<3, 5, 7>();
                }
                if nx && two_t {
                    t.load::<5>(a1.add(64 * (u + 1)), abr);
                }
                if nx && two_r {
                    t.load::<7>(w1.add(1024 * (u + 1)), 64);
                }
            }
        } else {
            for u in 0..ku {
                if pf {
                    prefetch_rows(a, abr, nt, 64 * (u + 2), 64);
                }
                t.load::<6>(w.add(1024 * u), 64);
                t.load::<4>(a.add(64 * u), abr);
                t.dpbf16ps::<0, 4, 6>();
                if two_r {
                    t.load::<7>(w1.add(1024 * u), 64);
                    t.dpbf16ps::<1, 4, 7>();
                }
                if two_t {
                    t.load::<5>(a1.add(64 * u), abr);
                    t.dpbf16ps::<2, 5, 6>();
                    if two_r {
                        t.dpbf16ps::<3, 5, 7>();
                    }
                }
            }
        }
        t.store::<0>(cp(0, 0), 64);
        if two_r {
            t.store::<1>(cp(0, 1), 64);
        }
        if two_t {
            t.store::<2>(cp(1, 0), 64);
            if two_r {
                t.store::<3>(cp(1, 1), 64);
            }
        }
    }

    /// Int8 formats: per group, one tile dot product per token tile into C tiles 0/1 (even
    /// groups) or 2/3 (odd), A tiles 4/5, B tiles 6/7; the next group's products are issued
    /// before this group's C tiles are stored and folded into the f32 sums, as the AVX-512
    /// micro-kernel of the format does.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn kern_int(
        &mut self,
        f: &Fmt,
        w: *const u8,
        s: *const u8,
        ku: usize,
        a: *const u8,
        abr: usize,
        nt: usize,
        acc: *mut f32,
    ) {
        let (gk, ng) = match f.kind {
            Kind::Q6K | Kind::Q2K => (16, 16),
            Kind::Q80 | Kind::Q41 => (32, 1),
            _ => (32, 8),
        };
        let mut c = Cfg::new();
        for i in 0..2 {
            let r = nt.saturating_sub(16 * i).clamp(1, 16);
            c.set(i, r, 64);
            c.set(2 + i, r, 64);
            c.set(4 + i, r, gk);
        }
        c.set(6, gk / 4, 64);
        c.set(7, gk / 4, 64);
        self.ensure(c);
        let ntt = nt.div_ceil(16);
        let signed = !matches!(f.kind, Kind::Q4K | Kind::Q2K | Kind::Q41);
        let total = ku * ng;
        let upu = f.unit / 4 * 64; // repacked bytes per unit
        let issue = |t: &mut T, idx: usize| {
            let (u, g) = (idx / ng, idx % ng);
            let b = w.add(upu * u + gk / 4 * 64 * g);
            let ap = |i: usize| a.add(16 * i * abr + f.ab * u + gk * g);
            if idx.is_multiple_of(2) {
                group::<T, 0, 1, 6>(t, ntt, b, ap, abr, signed);
            } else {
                group::<T, 2, 3, 7>(t, ntt, b, ap, abr, signed);
            }
        };
        // Prefetch distance in units: at least 256 bytes of each token row ahead.
        let (pf, dist) = (prefetch_on(), 256usize.div_ceil(f.ab).max(1));
        if pf {
            prefetch_rows(a, abr, nt, 0, f.ab * dist.min(ku));
        }
        issue(self.t, 0);
        for idx in 0..total {
            if pf && idx % ng == 0 {
                prefetch_rows(a, abr, nt, f.ab * (idx / ng + dist), f.ab);
            }
            if idx + 1 < total {
                issue(self.t, idx + 1);
            }
            // Store this group's sums, then fold the previous group's (stored one step
            // earlier, so its loads do not wait for the tile stores).
            let ib = self.ibuf[idx % 2].as_mut_ptr().cast::<u8>();
            if idx.is_multiple_of(2) {
                self.t.store::<0>(ib, 64);
                if ntt > 1 {
                    self.t.store::<1>(ib.add(1024), 64);
                }
            } else {
                self.t.store::<2>(ib, 64);
                if ntt > 1 {
                    self.t.store::<3>(ib.add(1024), 64);
                }
            }
            if idx > 0 {
                let p = idx - 1;
                self.flush(f, s, p / ng, p % ng, ng, a, abr, nt, acc, p % 2);
            }
        }
        let p = total - 1;
        self.flush(f, s, p / ng, p % ng, ng, a, abr, nt, acc, p % 2);
    }

    /// Folds the stored group sums of group `g` of unit `u` into the f32 sums, with exactly the
    /// AVX-512 micro-kernel's steps (`x86::tile::kern_*`), and at the unit's last group into
    /// the accumulators.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn flush(
        &mut self,
        f: &Fmt,
        s: *const u8,
        u: usize,
        g: usize,
        ng: usize,
        a: *const u8,
        abr: usize,
        nt: usize,
        acc: *mut f32,
        buf: usize,
    ) {
        let su = s.add(f.sb * u);
        let au = |m: usize| a.add(m * abr + f.ab * u);
        let is =
            |m: usize| _mm512_cvtepi32_ps(_mm512_loadu_si512(self.ibuf[buf][m].as_ptr().cast()));
        let accp = |m: usize| acc.add(16 * m);
        match f.kind {
            Kind::Q4K | Kind::Q6K | Kind::Q2K => {
                let sg = _mm512_loadu_ps(su.add(64 * g).cast());
                for m in 0..nt {
                    let prev = if g == 0 {
                        _mm512_setzero_ps()
                    } else {
                        _mm512_loadu_ps(self.blk[m].as_ptr())
                    };
                    let b = _mm512_fmadd_ps(is(m), sg, prev);
                    _mm512_storeu_ps(self.blk[m].as_mut_ptr(), b);
                }
                if g + 1 < ng {
                    return;
                }
                if f.kind != Kind::Q6K {
                    // Mins: Q4_K 4 pairs of groups at 512, dmin at 768; Q2_K 8 at 1024, 1536.
                    let (np, mo, dmo) = if f.kind == Kind::Q4K {
                        (4, 512, 768)
                    } else {
                        (8, 1024, 1536)
                    };
                    let mut mv = [_mm512_setzero_si512(); 8];
                    for (p, v) in mv.iter_mut().enumerate().take(np) {
                        *v = _mm512_loadu_si512(su.add(mo + 64 * p).cast());
                    }
                    let dmin = _mm512_loadu_ps(su.add(dmo).cast());
                    for m in 0..nt {
                        let mut mi = _mm512_setzero_si512();
                        for (p, &v) in mv.iter().enumerate().take(np) {
                            let av = _mm512_set1_epi32(rd(au(m).add(260 + 4 * p).cast::<i32>()));
                            mi = _mm512_dpwssd_epi32(mi, v, av);
                        }
                        let blk = _mm512_loadu_ps(self.blk[m].as_ptr());
                        let b = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mi), dmin, blk);
                        let da = _mm512_set1_ps(rd(au(m).add(256).cast::<f32>()));
                        _mm512_storeu_ps(accp(m), _mm512_fmadd_ps(b, da, _mm512_loadu_ps(accp(m))));
                    }
                } else {
                    for m in 0..nt {
                        let blk = _mm512_loadu_ps(self.blk[m].as_ptr());
                        let da = _mm512_set1_ps(rd(au(m).add(256).cast::<f32>()));
                        _mm512_storeu_ps(
                            accp(m),
                            _mm512_fmadd_ps(blk, da, _mm512_loadu_ps(accp(m))),
                        );
                    }
                }
            }
            Kind::Q80 => {
                let dw = _mm512_loadu_ps(su.cast());
                for m in 0..nt {
                    let d = _mm512_mul_ps(dw, _mm512_set1_ps(rd(au(m).add(32).cast::<f32>())));
                    _mm512_storeu_ps(accp(m), _mm512_fmadd_ps(is(m), d, _mm512_loadu_ps(accp(m))));
                }
            }
            Kind::Q41 => {
                let (dw, mw) = (
                    _mm512_loadu_ps(su.cast()),
                    _mm512_loadu_ps(su.add(64).cast()),
                );
                for m in 0..nt {
                    let d = _mm512_mul_ps(dw, _mm512_set1_ps(rd(au(m).add(32).cast::<f32>())));
                    let t = _mm512_fmadd_ps(is(m), d, _mm512_loadu_ps(accp(m)));
                    let sa = _mm512_set1_ps(rd(au(m).add(36).cast::<f32>()));
                    _mm512_storeu_ps(accp(m), _mm512_fmadd_ps(mw, sa, t));
                }
            }
            Kind::Tq => {
                for m in 0..nt {
                    let sa = _mm512_set1_ps(rd(au(m).add(256 + 4 * g).cast::<f32>()));
                    let prev = if g == 0 {
                        _mm512_setzero_ps()
                    } else {
                        _mm512_loadu_ps(self.blk[m].as_ptr())
                    };
                    _mm512_storeu_ps(self.blk[m].as_mut_ptr(), _mm512_fmadd_ps(is(m), sa, prev));
                }
                if g + 1 < ng {
                    return;
                }
                let d = _mm512_loadu_ps(su.cast());
                for m in 0..nt {
                    let blk = _mm512_loadu_ps(self.blk[m].as_ptr());
                    _mm512_storeu_ps(accp(m), _mm512_fmadd_ps(blk, d, _mm512_loadu_ps(accp(m))));
                }
            }
            Kind::Bf16 | Kind::Float => unreachable!("not an int8 format"),
        }
    }
}

/// One int8 group for the token tiles: B (tile `B`) from `b`, then C_i = A_i · B.
#[inline(always)]
unsafe fn group<T: Tiles, const C0: u8, const C1: u8, const B: u8>(
    t: &mut T,
    ntt: usize,
    b: *const u8,
    ap: impl Fn(usize) -> *const u8,
    abr: usize,
    signed: bool,
) {
    t.load::<B>(b, 64);
    t.load::<4>(ap(0), abr);
    t.zero::<C0>();
    if signed {
        t.dpbssd::<C0, 4, B>();
    } else {
        t.dpbsud::<C0, 4, B>();
    }
    if ntt > 1 {
        t.load::<5>(ap(1), abr);
        t.zero::<C1>();
        if signed {
            t.dpbssd::<C1, 5, B>();
        } else {
            t.dpbsud::<C1, 5, B>();
        }
    }
}

#[cfg(test)]
mod tests {
    /// The A-operand prefetch of the int8 kernel looks `dist` units (Q8_0: 7 units of 40 bytes)
    /// past the unit it multiplies, so at the last chunk of the batch's last token row its
    /// addresses lie past the end of the activations (and of a scratch of
    /// `gemm_scratch_bytes`). Prefetching them is harmless, but making such a pointer with
    /// `add` is undefined behaviour (out-of-bounds pointer arithmetic); Miri checks it
    /// (scripts/miri.sh).
    #[test]
    fn prefetch_past_the_end_is_defined() {
        // Two token rows of one Q8_0 unit (40 bytes, padded to 64): the last unit's prefetch.
        let acts = [0u8; 2 * 64];
        // SAFETY: prefetches never fault; the pointer arithmetic is what is tested.
        unsafe { super::prefetch_rows(acts.as_ptr(), 64, 2, 7 * 40, 40) };
    }
}
