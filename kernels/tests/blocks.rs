//! Byte-level checks of the Q8_0 and Q4_0 block formats against hand-computed
//! blocks, and the quantize∘dequantize fixed point, for the scalar reference
//! and every SIMD `quantize_q8_0` this CPU runs.

use aha_kernels::{backends, q4_0, q8_0, BlockQ4_0, BlockQ8_0, QK};

mod common;
use common::Rng;

fn q8_bytes(b: &BlockQ8_0) -> Vec<u8> {
    bytemuck::bytes_of(b).to_vec()
}

/// x = 0, 1, …, 31: amax 31, d = 31/127 (f16 0x33D0 = 125/512),
/// q = roundf(i·127/31). No element is near a tie.
#[test]
fn q8_0_block_of_0_to_31() {
    let x: Vec<f32> = (0..32).map(|i| i as f32).collect();
    #[rustfmt::skip]
    let want: [u8; 34] = [
        0xD0, 0x33,
        0, 4, 8, 12, 16, 20, 25, 29, 33, 37, 41, 45, 49, 53, 57, 61,
        66, 70, 74, 78, 82, 86, 90, 94, 98, 102, 107, 111, 115, 119, 123, 127,
    ];
    for k in backends() {
        let mut b = [BlockQ8_0::ZERO];
        (k.quantize_q8_0)(&x, &mut b);
        assert_eq!(q8_bytes(&b[0]), want, "{}", k.name);
    }
    let b: BlockQ8_0 = bytemuck::pod_read_unaligned(&want);
    let mut y = [0.0f32; 32];
    q8_0::scalar::dequantize_row(&[b], &mut y);
    let want_y: Vec<f32> = want[2..]
        .iter()
        .map(|&q| q as i8 as f32 * (125.0 / 512.0))
        .collect();
    assert_eq!(y.to_vec(), want_y);
    assert_eq!(y[1], 0.9765625);
    assert_eq!(y[31], 15875.0 / 512.0); // 127·125/512
}

/// x = 4(i − 16) + 0.5 with x[31] = −127: amax 127 so d = 1 (f16 0x3C00) and
/// every other element is a tie; roundf takes ties away from zero
/// (0.5 → 1, −63.5 → −64), where round-half-even would not.
#[test]
fn q8_0_block_of_ties() {
    let mut x: Vec<f32> = (0..32).map(|i| 4.0 * (i as f32 - 16.0) + 0.5).collect();
    x[31] = -127.0;
    #[rustfmt::skip]
    let want: [u8; 34] = [
        0x00, 0x3C,
        0xC0, 0xC4, 0xC8, 0xCC, 0xD0, 0xD4, 0xD8, 0xDC, 0xE0, 0xE4, 0xE8, 0xEC, 0xF0, 0xF4, 0xF8, 0xFC, // −64 … −4
        0x01, 0x05, 0x09, 0x0D, 0x11, 0x15, 0x19, 0x1D, 0x21, 0x25, 0x29, 0x2D, 0x31, 0x35, 0x39, // 1 … 57
        0x81, // −127
    ];
    for k in backends() {
        let mut b = [BlockQ8_0::ZERO];
        (k.quantize_q8_0)(&x, &mut b);
        assert_eq!(q8_bytes(&b[0]), want, "{}", k.name);
    }
    let b: BlockQ8_0 = bytemuck::pod_read_unaligned(&want);
    let mut y = [0.0f32; 32];
    q8_0::scalar::dequantize_row(&[b], &mut y);
    assert_eq!(y[0], -64.0);
    assert_eq!(y[15], -4.0);
    assert_eq!(y[16], 1.0);
    assert_eq!(y[30], 57.0);
    assert_eq!(y[31], -127.0);
}

/// x = i − 16: the value of largest magnitude is −16, so d = −16/−8 = 2
/// (f16 0x4000), codes = trunc((i − 16)/2 + 8.5) = ⌊(i + 1)/2⌋, capped at 15;
/// byte j = code j | code (j + 16) << 4.
#[test]
fn q4_0_block_of_minus_16_to_15() {
    let x: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
    #[rustfmt::skip]
    let want: [u8; 18] = [
        0x00, 0x40,
        0x80, 0x91, 0x91, 0xA2, 0xA2, 0xB3, 0xB3, 0xC4, 0xC4, 0xD5, 0xD5, 0xE6, 0xE6, 0xF7, 0xF7, 0xF8,
    ];
    let mut b = [BlockQ4_0 {
        d: [0; 2],
        qs: [0; 16],
    }];
    q4_0::scalar::quantize_row(&x, &mut b);
    assert_eq!(bytemuck::bytes_of(&b[0]), &want);
    let mut y = [0.0f32; 32];
    q4_0::scalar::dequantize_row(&b, &mut y);
    let want_y: Vec<f32> = (0..32)
        .map(|i: i32| (((i + 1) / 2).min(15) - 8) as f32 * 2.0)
        .collect();
    assert_eq!(y.to_vec(), want_y);
    assert_eq!(
        (y[0], y[1], y[2], y[15], y[16], y[30], y[31]),
        (-16.0, -14.0, -14.0, 0.0, 0.0, 14.0, 14.0)
    );
}

/// dequantize(quantize(w)) quantizes back to the same bytes.
#[test]
fn quantize_dequantize_fixed_point() {
    let mut rng = Rng(7);
    for nb in 1..=20 {
        let scale = [1e-3f32, 0.1, 1.0, 30.0, 1000.0][nb % 5];
        let x: Vec<f32> = (0..nb * QK).map(|_| rng.f32() * scale).collect();
        let mut y = vec![0.0f32; x.len()];

        let mut q = vec![BlockQ8_0::ZERO; nb];
        q8_0::scalar::quantize_row(&x, &mut q);
        q8_0::scalar::dequantize_row(&q, &mut y);
        for k in backends() {
            let mut q2 = vec![BlockQ8_0::ZERO; nb];
            (k.quantize_q8_0)(&y, &mut q2);
            assert_eq!(q, q2, "q8_0 fixed point, {} blocks, {}", nb, k.name);
        }

        let mut q = vec![
            BlockQ4_0 {
                d: [0; 2],
                qs: [0; 16]
            };
            nb
        ];
        q4_0::scalar::quantize_row(&x, &mut q);
        q4_0::scalar::dequantize_row(&q, &mut y);
        let mut q2 = q.clone();
        q2.iter_mut().for_each(|b| {
            *b = BlockQ4_0 {
                d: [0; 2],
                qs: [0; 16],
            }
        });
        q4_0::scalar::quantize_row(&y, &mut q2);
        assert_eq!(q, q2, "q4_0 fixed point, {} blocks", nb);
    }
}
