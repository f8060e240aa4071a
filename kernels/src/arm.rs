//! 32-bit Arm backend for microcontrollers with the DSP extension (SIMD32:
//! ARMv7E-M, i.e. Cortex-M4 and M7, and ARMv8-M Mainline cores that have it,
//! such as the M33 and M55): the integer dot products, two 8-bit products
//! per `smlad`.
//!
//! Rust's DSP intrinsics (`core::arch::arm::__smlad`, `__sxtb16`) are
//! unstable, and so is `cfg(target_feature = "dsp")` on Arm, so the two
//! instructions are issued by inline `asm!` and the backend is switched on
//! by the crate's `dsp` feature (the firmware enables it); on a core without
//! the extension the assembler rejects them, so a wrong choice fails the
//! build, not the board.
//!
//! Per 4 elements: one word load from each operand, `sxtb16` to widen the
//! even and the odd bytes to 16 bits, two `smlad`; per block, the two f16
//! scales widened by an exact multiply. The block sums are exact
//! i32, scaled and added in the scalar reference's order, so the results are
//! bit-identical to it (`firmware/cortex-m`'s kernel test checks this on the
//! emulated Cortex-M4). Everything else is the scalar backend.

use crate::table::rows_of;
use crate::{BlockQ4_0, BlockQ8_0, Kernels, QK};
use core::arch::asm;

/// The DSP backend (this build enables it with the `dsp` feature).
pub fn dsp() -> Option<&'static Kernels> {
    Some(&DSP)
}

static DSP: Kernels = Kernels {
    name: "dsp",
    dot_q8_0_q8_0,
    dot_q4_0_q8_0,
    matvec_q8_0: rows_of!(dot_q8_0_q8_0, BlockQ8_0, BlockQ8_0, |n: usize| n),
    matvec_q4_0: rows_of!(dot_q4_0_q8_0, BlockQ4_0, BlockQ8_0, |n: usize| n),
    ..crate::table::SCALAR
};

/// Bytes 0 and 2 of `x`, sign-extended to the two halfwords.
#[inline(always)]
fn sxtb16(x: u32) -> u32 {
    let r;
    // SAFETY: a register-to-register instruction of the DSP extension, which
    // this module is compiled only for; no memory, stack or flags touched.
    unsafe { asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags)) };
    r
}

/// Bytes 1 and 3 of `x`, sign-extended to the two halfwords.
#[inline(always)]
fn sxtb16_ror8(x: u32) -> u32 {
    let r;
    // SAFETY: as `sxtb16`.
    unsafe { asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags)) };
    r
}

/// acc + a.lo·b.lo + a.hi·b.hi (signed halfwords).
#[inline(always)]
fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let r;
    // SAFETY: a register-to-register instruction of the DSP extension. It
    // may set the sticky Q flag on overflow, which nothing here reads (and a
    // block's sum, at most 32·128·128 = 2^19, cannot overflow).
    unsafe {
        asm!("smlad {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack))
    };
    r
}

/// Σ of the 4 signed-byte products of two words.
#[inline(always)]
fn dot4(w: u32, x: u32, acc: i32) -> i32 {
    smlad(sxtb16_ror8(w), sxtb16_ror8(x), smlad(sxtb16(w), sxtb16(x), acc))
}

/// An f16 scale (little-endian bytes) to f32, exactly, in a few
/// instructions (`half`'s portable conversion takes ~20 on this core): the
/// exponent and mantissa shifted into f32 position are the value times
/// 2^-112 (normals and subnormals alike), undone by one exact multiply, as
/// the NEON backend's `h2f`. Infinities and NaN take the portable path.
#[inline(always)]
fn f16_to_f32(d: [u8; 2]) -> f32 {
    let h = u16::from_le_bytes(d);
    let magnitude = (h & 0x7FFF) as u32;
    if magnitude >= 0x7C00 {
        return half::f16::from_bits(h).to_f32();
    }
    let value = f32::from_bits(magnitude << 13) * f32::from_bits(0x7780_0000); // 2^112
    f32::from_bits(value.to_bits() | ((h as u32 & 0x8000) << 16))
}

#[inline(always)]
fn word(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

#[inline(always)]
fn word_i8(b: &[i8; QK], i: usize) -> u32 {
    u32::from_le_bytes([b[i] as u8, b[i + 1] as u8, b[i + 2] as u8, b[i + 3] as u8])
}

/// Four 4-bit codes (one per byte, 0..=15) minus 8, as signed bytes, without
/// borrows between bytes: set each byte's top bit, subtract 8, flip it back.
#[inline(always)]
fn centred(codes: u32) -> u32 {
    ((codes | 0x8080_8080) - 0x0808_0808) ^ 0x8080_8080
}

/// Q8_0 · Q8_0: Σ_blocks d_w·d_x·Σ q_w·q_x, as `q8_0::scalar::dot_q8_0`.
fn dot_q8_0_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    debug_assert_eq!(w.len(), x.len());
    let mut sum = 0.0f32;
    for (a, b) in w.iter().zip(x) {
        let mut isum = 0i32;
        for i in (0..QK).step_by(4) {
            isum = dot4(word_i8(&a.qs, i), word_i8(&b.qs, i), isum);
        }
        sum += isum as f32 * (f16_to_f32(a.d) * f16_to_f32(b.d));
    }
    sum
}

/// Q4_0 · Q8_0, as `q4_0::scalar::dot_q8_0`: byte j's low nibble is element
/// j, its high nibble element j + 16.
fn dot_q4_0_q8_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    debug_assert_eq!(w.len(), x.len());
    let mut sum = 0.0f32;
    for (a, b) in w.iter().zip(x) {
        let mut isum = 0i32;
        for i in (0..QK / 2).step_by(4) {
            let v = word(&a.qs, i);
            isum = dot4(centred(v & 0x0F0F_0F0F), word_i8(&b.qs, i), isum);
            isum = dot4(centred((v >> 4) & 0x0F0F_0F0F), word_i8(&b.qs, i + QK / 2), isum);
        }
        sum += isum as f32 * (f16_to_f32(a.d) * f16_to_f32(b.d));
    }
    sum
}
