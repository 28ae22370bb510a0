//! The NEON intrinsics the kernels in [`super`] use: on aarch64 re-exported from
//! `core::arch::aarch64`; elsewhere implemented lane by lane in plain Rust with NEON's exact
//! semantics (`vfmaq_f32` fused, wrapping integer lanes), so that the same kernel source is
//! compiled and unit-tested on x86.
//!
//! Only baseline NEON (ARMv8.0-A, stable in `core::arch::aarch64`) is used: SDOT (`vdotq_s32`)
//! and the f16 conversions are still unstable intrinsics, so the kernels build the 8-bit dot
//! from `vmull_s8` + `vpaddlq_s16` + `vpaddq_s32` and convert f16 with integer operations.

#[cfg(target_arch = "aarch64")]
pub use core::arch::aarch64::{
    float32x4_t, int16x8_t, int32x4_t, int8x16_t, int8x8_t, uint16x4_t, uint16x8_t, uint32x4_t,
    uint8x16_t, uint8x8_t, vaddq_f32, vaddq_s32, vaddvq_f32, vandq_u32, vandq_u8, vbslq_u32,
    vceqq_u32, vcombine_u8, vcvtq_f32_s32, vdup_n_u8, vdupq_n_f32, vdupq_n_s32, vdupq_n_s8,
    vdupq_n_u32, vdupq_n_u8, vfmaq_f32, vget_high_s8, vget_low_s8, vget_low_u16, vld1q_f32,
    vld1q_s8, vld1q_u16, vld1q_u8, vmovl_u16, vmull_s8, vmulq_f32, vmulq_s32, vorrq_u32, vorrq_u8,
    vpaddlq_s16, vpaddq_s32, vreinterpretq_f32_u32, vreinterpretq_s8_u8, vreinterpretq_u32_f32,
    vshlq_n_u32, vshlq_n_u8, vshrq_n_u8, vsubq_s8, vtstq_u8,
};

#[cfg(not(target_arch = "aarch64"))]
pub use portable::*;

#[cfg(not(target_arch = "aarch64"))]
#[allow(non_camel_case_types, clippy::missing_safety_doc)]
mod portable {
    macro_rules! vty {
        ($($name:ident: [$t:ty; $n:expr];)*) => {$(
            /// A NEON vector type, lane by lane.
            #[derive(Clone, Copy, Debug, PartialEq)]
            pub struct $name(pub [$t; $n]);
        )*};
    }
    vty! {
        float32x4_t: [f32; 4];
        int32x4_t: [i32; 4];
        uint32x4_t: [u32; 4];
        int16x8_t: [i16; 8];
        uint16x8_t: [u16; 8];
        uint16x4_t: [u16; 4];
        int8x16_t: [i8; 16];
        int8x8_t: [i8; 8];
        uint8x16_t: [u8; 16];
        uint8x8_t: [u8; 8];
    }

    /// Lane-wise map of one or two vectors.
    macro_rules! lanes {
        ($out:ident, $n:expr, |$i:ident| $e:expr) => {
            $out(core::array::from_fn(|$i| $e))
        };
    }

    /// Loads 4 f32.
    pub unsafe fn vld1q_f32(p: *const f32) -> float32x4_t {
        float32x4_t(core::ptr::read_unaligned(p.cast()))
    }
    /// Loads 16 i8.
    pub unsafe fn vld1q_s8(p: *const i8) -> int8x16_t {
        int8x16_t(core::ptr::read_unaligned(p.cast()))
    }
    /// Loads 16 u8.
    pub unsafe fn vld1q_u8(p: *const u8) -> uint8x16_t {
        uint8x16_t(core::ptr::read_unaligned(p.cast()))
    }
    /// Loads 8 u16.
    pub unsafe fn vld1q_u16(p: *const u16) -> uint16x8_t {
        uint16x8_t(core::ptr::read_unaligned(p.cast()))
    }
    /// `a + b·c`, fused (one rounding), as FMLA.
    pub unsafe fn vfmaq_f32(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        lanes!(float32x4_t, 4, |i| b.0[i].mul_add(c.0[i], a.0[i]))
    }
    /// Lane-wise f32 add.
    pub unsafe fn vaddq_f32(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        lanes!(float32x4_t, 4, |i| a.0[i] + b.0[i])
    }
    /// Lane-wise i32 multiply (wrapping).
    pub unsafe fn vmulq_s32(a: int32x4_t, b: int32x4_t) -> int32x4_t {
        lanes!(int32x4_t, 4, |i| a.0[i].wrapping_mul(b.0[i]))
    }
    /// Lane-wise f32 multiply.
    pub unsafe fn vmulq_f32(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        lanes!(float32x4_t, 4, |i| a.0[i] * b.0[i])
    }
    /// Horizontal f32 add, as FADDP twice: `(a0 + a1) + (a2 + a3)`.
    pub unsafe fn vaddvq_f32(a: float32x4_t) -> f32 {
        (a.0[0] + a.0[1]) + (a.0[2] + a.0[3])
    }
    /// Wrapping i32 add.
    pub unsafe fn vaddq_s32(a: int32x4_t, b: int32x4_t) -> int32x4_t {
        lanes!(int32x4_t, 4, |i| a.0[i].wrapping_add(b.0[i]))
    }
    /// Broadcast f32.
    pub unsafe fn vdupq_n_f32(v: f32) -> float32x4_t {
        float32x4_t([v; 4])
    }
    /// Broadcast i32.
    pub unsafe fn vdupq_n_s32(v: i32) -> int32x4_t {
        int32x4_t([v; 4])
    }
    /// Broadcast u32.
    pub unsafe fn vdupq_n_u32(v: u32) -> uint32x4_t {
        uint32x4_t([v; 4])
    }
    /// Broadcast u8.
    pub unsafe fn vdupq_n_u8(v: u8) -> uint8x16_t {
        uint8x16_t([v; 16])
    }
    /// i32 → f32 (round to nearest).
    pub unsafe fn vcvtq_f32_s32(a: int32x4_t) -> float32x4_t {
        lanes!(float32x4_t, 4, |i| a.0[i] as f32)
    }
    /// Bitwise and (u32 lanes).
    pub unsafe fn vandq_u32(a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        lanes!(uint32x4_t, 4, |i| a.0[i] & b.0[i])
    }
    /// Bitwise or (u32 lanes).
    pub unsafe fn vorrq_u32(a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        lanes!(uint32x4_t, 4, |i| a.0[i] | b.0[i])
    }
    /// Bitwise and (u8 lanes).
    pub unsafe fn vandq_u8(a: uint8x16_t, b: uint8x16_t) -> uint8x16_t {
        lanes!(uint8x16_t, 16, |i| a.0[i] & b.0[i])
    }
    /// Lane-wise `a == b` as all-ones / zero.
    pub unsafe fn vceqq_u32(a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        lanes!(uint32x4_t, 4, |i| if a.0[i] == b.0[i] { !0 } else { 0 })
    }
    /// Bitwise select: bits of `b` where `m` is set, else of `c`.
    pub unsafe fn vbslq_u32(m: uint32x4_t, b: uint32x4_t, c: uint32x4_t) -> uint32x4_t {
        lanes!(uint32x4_t, 4, |i| (m.0[i] & b.0[i]) | (!m.0[i] & c.0[i]))
    }
    /// Shift left by `N` (u32 lanes).
    pub unsafe fn vshlq_n_u32<const N: i32>(a: uint32x4_t) -> uint32x4_t {
        lanes!(uint32x4_t, 4, |i| a.0[i] << N)
    }
    /// Logical shift right by `N` (u8 lanes).
    pub unsafe fn vshrq_n_u8<const N: i32>(a: uint8x16_t) -> uint8x16_t {
        lanes!(uint8x16_t, 16, |i| a.0[i] >> N)
    }
    /// Low 4 u16 lanes.
    pub unsafe fn vget_low_u16(a: uint16x8_t) -> uint16x4_t {
        lanes!(uint16x4_t, 4, |i| a.0[i])
    }
    /// High 4 u16 lanes.
    pub unsafe fn vget_high_u16(a: uint16x8_t) -> uint16x4_t {
        lanes!(uint16x4_t, 4, |i| a.0[i + 4])
    }
    /// Low 8 i8 lanes.
    pub unsafe fn vget_low_s8(a: int8x16_t) -> int8x8_t {
        lanes!(int8x8_t, 8, |i| a.0[i])
    }
    /// High 8 i8 lanes.
    pub unsafe fn vget_high_s8(a: int8x16_t) -> int8x8_t {
        lanes!(int8x8_t, 8, |i| a.0[i + 8])
    }
    /// Zero-extends u16 → u32.
    pub unsafe fn vmovl_u16(a: uint16x4_t) -> uint32x4_t {
        lanes!(uint32x4_t, 4, |i| a.0[i] as u32)
    }
    /// Widening multiply i8 × i8 → i16.
    pub unsafe fn vmull_s8(a: int8x8_t, b: int8x8_t) -> int16x8_t {
        lanes!(int16x8_t, 8, |i| a.0[i] as i16 * b.0[i] as i16)
    }
    /// Pairwise add, widening i16 → i32.
    pub unsafe fn vpaddlq_s16(a: int16x8_t) -> int32x4_t {
        lanes!(int32x4_t, 4, |i| a.0[2 * i] as i32 + a.0[2 * i + 1] as i32)
    }
    /// Pairwise add of the concatenation `a ‖ b` (wrapping).
    pub unsafe fn vpaddq_s32(a: int32x4_t, b: int32x4_t) -> int32x4_t {
        let c = [
            a.0[0], a.0[1], a.0[2], a.0[3], b.0[0], b.0[1], b.0[2], b.0[3],
        ];
        lanes!(int32x4_t, 4, |i| c[2 * i].wrapping_add(c[2 * i + 1]))
    }
    /// Bit cast u32 → f32 lanes.
    pub unsafe fn vreinterpretq_f32_u32(a: uint32x4_t) -> float32x4_t {
        lanes!(float32x4_t, 4, |i| f32::from_bits(a.0[i]))
    }
    /// Bit cast f32 → u32 lanes.
    pub unsafe fn vreinterpretq_u32_f32(a: float32x4_t) -> uint32x4_t {
        lanes!(uint32x4_t, 4, |i| a.0[i].to_bits())
    }
    /// Bit cast u8 → i8 lanes.
    pub unsafe fn vreinterpretq_s8_u8(a: uint8x16_t) -> int8x16_t {
        lanes!(int8x16_t, 16, |i| a.0[i] as i8)
    }
    /// Broadcast u8 (8 lanes).
    pub unsafe fn vdup_n_u8(v: u8) -> uint8x8_t {
        uint8x8_t([v; 8])
    }
    /// Broadcast i8.
    pub unsafe fn vdupq_n_s8(v: i8) -> int8x16_t {
        int8x16_t([v; 16])
    }
    /// `low ‖ high`.
    pub unsafe fn vcombine_u8(low: uint8x8_t, high: uint8x8_t) -> uint8x16_t {
        lanes!(uint8x16_t, 16, |i| if i < 8 {
            low.0[i]
        } else {
            high.0[i - 8]
        })
    }
    /// Bitwise or (u8 lanes).
    pub unsafe fn vorrq_u8(a: uint8x16_t, b: uint8x16_t) -> uint8x16_t {
        lanes!(uint8x16_t, 16, |i| a.0[i] | b.0[i])
    }
    /// Wrapping i8 subtract.
    pub unsafe fn vsubq_s8(a: int8x16_t, b: int8x16_t) -> int8x16_t {
        lanes!(int8x16_t, 16, |i| a.0[i].wrapping_sub(b.0[i]))
    }
    /// Bit test, as CMTST: all-ones where `a & b != 0`, else zero.
    pub unsafe fn vtstq_u8(a: uint8x16_t, b: uint8x16_t) -> uint8x16_t {
        lanes!(uint8x16_t, 16, |i| if a.0[i] & b.0[i] != 0 {
            0xff
        } else {
            0
        })
    }
    /// Shift left by `N` (u8 lanes; bits shifted out are lost).
    pub unsafe fn vshlq_n_u8<const N: i32>(a: uint8x16_t) -> uint8x16_t {
        lanes!(uint8x16_t, 16, |i| a.0[i] << N)
    }
}
