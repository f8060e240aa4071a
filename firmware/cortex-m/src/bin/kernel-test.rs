//! The DSP kernels (`aha_kernels::arm`) against the scalar reference on the
//! Cortex-M4F itself (QEMU's mps2-an386 in the tests): integer dots and
//! matvecs for Q8_0 and Q4_0 weights on pseudo-random blocks (the extreme
//! codes included), every length from 0 to 40 blocks and every byte
//! alignment of the weights. The results must be bit-identical: the block
//! sums are exact integers, scaled and added in the reference's order.
//! Prints one `[aha] kernel test:` line and exits with status 0 or 1.
#![no_std]
#![no_main]

use aha_kernels::{BlockQ4_0, BlockQ8_0, Kernels, QK};
use core::fmt::Write;
use cortex_m_rt::entry;
use cortex_m_semihosting::hio;

#[allow(dead_code)]
#[path = "../board.rs"]
mod board;

/// SplitMix64, as the kernels' host tests use.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An f16 scale of either sign, as little-endian bytes: normal (2^-10
    /// .. 2^9), or one time in eight subnormal or zero.
    fn scale(&mut self) -> [u8; 2] {
        let r = self.next();
        let exponent = if r.is_multiple_of(8) { 0 } else { 5 + ((r >> 8) % 20) as u16 };
        let bits = ((r >> 32) as u16 & 0x83FF) | (exponent << 10);
        bits.to_le_bytes()
    }

    /// A code byte; one in four is an extreme (−128, 127, 0x00, 0xFF).
    fn byte(&mut self) -> u8 {
        let r = self.next();
        match r % 8 {
            0 => [0x80, 0x7F, 0x00, 0xFF][(r >> 8) as usize % 4],
            _ => (r >> 16) as u8,
        }
    }
}

const MAX_BLOCKS: usize = 40;
const ROWS: usize = 3;

#[entry]
fn main() -> ! {
    // Weights as bytes (read at offsets 0..4 to test every alignment), one activation row.
    static mut W_BYTES: [u8; ROWS * MAX_BLOCKS * 34 + 4] = [0; ROWS * MAX_BLOCKS * 34 + 4];
    static mut X: [BlockQ8_0; MAX_BLOCKS] = [BlockQ8_0::ZERO; MAX_BLOCKS];

    let Ok(mut out) = hio::hstdout() else { board::exit(false) };
    let Some(dsp) = aha_kernels::table::by_name("dsp") else {
        let _ = writeln!(out, "[aha] kernel test: no dsp backend in this build");
        board::exit(false)
    };
    let scalar = aha_kernels::scalar();
    let mut rng = Rng(5);
    let (mut cases, mut failures) = (0u32, 0u32);
    for nb in 0..=MAX_BLOCKS {
        for offset in 0..4 {
            for b in W_BYTES.iter_mut() {
                *b = rng.byte();
            }
            for x in X[..nb].iter_mut() {
                x.d = rng.scale();
                for q in x.qs.iter_mut() {
                    *q = rng.byte() as i8;
                }
            }
            let x = &X[..nb];
            // Sane scales in the weights too (random bytes may be NaN or inf).
            let q8_len = ROWS * nb * core::mem::size_of::<BlockQ8_0>();
            let q4_len = ROWS * nb * core::mem::size_of::<BlockQ4_0>();
            for at in (0..q8_len).step_by(34) {
                let d = rng.scale();
                W_BYTES[offset + at..offset + at + 2].copy_from_slice(&d);
            }
            let w8: &[BlockQ8_0] = bytemuck::cast_slice(&W_BYTES[offset..offset + q8_len]);
            failures += compare(&mut out, "q8_0", nb, offset, scalar, dsp, |k, y| {
                y[0] = (k.dot_q8_0_q8_0)(&w8[..nb], x);
                if nb > 0 {
                    (k.matvec_q8_0)(w8, x, &mut y[1..]);
                }
            });
            for at in (0..q4_len).step_by(18) {
                let d = rng.scale();
                W_BYTES[offset + at..offset + at + 2].copy_from_slice(&d);
            }
            let w4: &[BlockQ4_0] = bytemuck::cast_slice(&W_BYTES[offset..offset + q4_len]);
            failures += compare(&mut out, "q4_0", nb, offset, scalar, dsp, |k, y| {
                y[0] = (k.dot_q4_0_q8_0)(&w4[..nb], x);
                if nb > 0 {
                    (k.matvec_q4_0)(w4, x, &mut y[1..]);
                }
            });
            cases += 2;
        }
    }
    let ok = failures == 0;
    let _ = writeln!(
        out,
        "[aha] kernel test: dsp vs scalar, {cases} cases (Q8_0 and Q4_0 dots and {ROWS}-row matvecs, 0..={MAX_BLOCKS} blocks of {QK}, 4 alignments): {}",
        if ok { "bit-identical" } else { "MISMATCH" }
    );
    board::exit(ok)
}

/// Runs `f` with both backends; 1 (after printing) if any output differs in any bit.
fn compare(
    out: &mut impl Write,
    what: &str,
    nb: usize,
    offset: usize,
    scalar: &'static Kernels,
    dsp: &'static Kernels,
    f: impl Fn(&'static Kernels, &mut [f32]),
) -> u32 {
    let (mut want, mut got) = ([0f32; ROWS + 1], [0f32; ROWS + 1]);
    f(scalar, &mut want);
    f(dsp, &mut got);
    if want.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()) {
        return 0;
    }
    let _ = writeln!(out, "[aha] {what}, {nb} blocks, offset {offset}: scalar {want:?}, dsp {got:?}");
    1
}
