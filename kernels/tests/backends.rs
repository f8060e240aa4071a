//! Every SIMD backend this CPU runs, checked entry by entry against the scalar
//! reference on random inputs of many lengths (tails included).
//!
//! Tolerances: float reductions may differ from the reference only by the
//! order of their f32 sums, so |a − b| ≤ tol·Σ|terms|; integer-path dots are
//! exact inside a block, so only the per-block f32 scale multiply and sum may
//! differ; element-wise kernels that use no FMA are bit-identical.

use aha_kernels::{backends, q4_0, scalar, BlockQ4_0, BlockQ8_0, Kernels, QK};
use half::{bf16, f16};

mod common;
use common::Rng;

fn simd() -> Vec<&'static Kernels> {
    let v: Vec<_> = backends().filter(|k| k.name != "scalar").collect();
    eprintln!(
        "SIMD backends on this CPU: {:?}",
        v.iter().map(|k| k.name).collect::<Vec<_>>()
    );
    v
}

fn f32_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}
fn f16_bytes(x: &[f32]) -> Vec<u8> {
    x.iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect()
}
fn bf16_bytes(x: &[f32]) -> Vec<u8> {
    x.iter()
        .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
        .collect()
}
fn from_f16(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(2)
        .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect()
}
fn from_bf16(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(2)
        .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect()
}

#[track_caller]
fn close(got: f32, want: f32, mag: f32, tol: f32, what: &str) {
    let err = (got - want).abs();
    assert!(
        err <= tol * mag + 1e-30,
        "{what}: got {got}, want {want}, |diff| {err} > {tol}·{mag}"
    );
}

/// Lengths: every one up to 70 (all tails of every vector width), then some larger ones.
fn lengths() -> impl Iterator<Item = usize> {
    // Under Miri (~1000x slower) the lengths around each tail and block
    // boundary, not every length: scripts/miri.sh has a time budget.
    let (short, long): (usize, &[usize]) =
        if cfg!(miri) { (40, &[63, 64, 65, 127, 128, 129, 257]) } else { (70, &[95, 100, 127, 128, 129, 255, 257, 768, 1000, 4099]) };
    (0..=short).chain(long.iter().copied())
}

#[test]
fn float_dots() {
    let mut rng = Rng(1);
    for k in simd() {
        for n in lengths() {
            let w = rng.vec(n, 2.0);
            let x = rng.vec(n, 3.0);
            let mag = |w: &[f32]| w.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum::<f32>();

            let wb = f32_bytes(&w);
            let m = mag(&w);
            close(
                (k.dot_f32)(&wb, &x),
                (scalar().dot_f32)(&wb, &x),
                m,
                1e-5,
                &format!("{} dot_f32 n={n}", k.name),
            );
            close(
                (k.dot_f32_f32)(&w, &x),
                (scalar().dot_f32_f32)(&w, &x),
                m,
                1e-5,
                &format!("{} dot_f32_f32 n={n}", k.name),
            );

            let hb = f16_bytes(&w);
            let m = mag(&from_f16(&hb));
            close(
                (k.dot_f16)(&hb, &x),
                (scalar().dot_f16)(&hb, &x),
                m,
                1e-5,
                &format!("{} dot_f16 n={n}", k.name),
            );

            let bb = bf16_bytes(&w);
            let m = mag(&from_bf16(&bb));
            close(
                (k.dot_bf16)(&bb, &x),
                (scalar().dot_bf16)(&bb, &x),
                m,
                1e-5,
                &format!("{} dot_bf16 n={n}", k.name),
            );
        }
    }
}

/// Weights read at every alignment, as from a file mapped at any offset.
#[test]
fn float_dots_unaligned() {
    let mut rng = Rng(2);
    for k in simd() {
        let n = 77;
        let x = rng.vec(n, 1.0);
        let w = rng.vec(n, 1.0);
        for off in 0..8 {
            let mut buf = vec![0u8; off];
            buf.extend(f32_bytes(&w));
            let m: f32 = w.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum();
            close(
                (k.dot_f32)(&buf[off..], &x),
                (scalar().dot_f32)(&buf[off..], &x),
                m,
                1e-5,
                k.name,
            );
            let mut buf = vec![0u8; off];
            buf.extend(f16_bytes(&w));
            close(
                (k.dot_f16)(&buf[off..], &x),
                (scalar().dot_f16)(&buf[off..], &x),
                m,
                1e-3,
                k.name,
            );
        }
    }
}

#[test]
fn float_matvecs() {
    let mut rng = Rng(3);
    for k in simd() {
        for cols in [1, 7, 8, 31, 32, 33, 64, 100, 768] {
            for rows in [0, 1, 2, 3, 4, 5, 7, 8, 17] {
                let w = rng.vec(rows * cols, 1.0);
                let x = rng.vec(cols, 1.0);
                type Mv = fn(&[u8], &[f32], &mut [f32]);
                let cases: [(&str, Vec<u8>, Mv, Mv, usize); 3] = [
                    ("f32", f32_bytes(&w), k.matvec_f32, scalar().matvec_f32, 4),
                    ("f16", f16_bytes(&w), k.matvec_f16, scalar().matvec_f16, 2),
                    (
                        "bf16",
                        bf16_bytes(&w),
                        k.matvec_bf16,
                        scalar().matvec_bf16,
                        2,
                    ),
                ];
                for (name, wb, mv, mv_ref, bpe) in cases {
                    let mut got = vec![f32::NAN; rows];
                    let mut want = vec![f32::NAN; rows];
                    mv(&wb, &x, &mut got);
                    mv_ref(&wb, &x, &mut want);
                    for r in 0..rows {
                        let row = &wb[r * cols * bpe..(r + 1) * cols * bpe];
                        let m = (scalar().dot_f32_f32)(
                            &x.iter().map(|v| v.abs()).collect::<Vec<_>>(),
                            &match name {
                                "f32" => w[r * cols..(r + 1) * cols].to_vec(),
                                "f16" => from_f16(row),
                                _ => from_bf16(row),
                            }
                            .iter()
                            .map(|v| v.abs())
                            .collect::<Vec<_>>(),
                        );
                        close(
                            got[r],
                            want[r],
                            m,
                            1e-5,
                            &format!("{} matvec_{name} {rows}x{cols} row {r}", k.name),
                        );
                    }
                }
            }
        }
    }
}

fn random_q8(rng: &mut Rng, nb: usize, full_range: bool) -> Vec<BlockQ8_0> {
    (0..nb)
        .map(|_| {
            let d = f16::from_f32(rng.f32().abs() * 0.05 + 1e-4).to_le_bytes();
            let mut qs = [0i8; QK];
            for q in &mut qs {
                *q = if full_range {
                    rng.byte() as i8
                } else {
                    ((rng.byte() % 255) as i16 - 127) as i8
                };
            }
            BlockQ8_0 { d, qs }
        })
        .collect()
}

fn random_q4(rng: &mut Rng, nb: usize) -> Vec<BlockQ4_0> {
    (0..nb)
        .map(|_| {
            let sign = if rng.byte() & 1 == 0 { 1.0 } else { -1.0 };
            let d = f16::from_f32(sign * (rng.f32().abs() * 0.05 + 1e-4)).to_le_bytes();
            let mut qs = [0u8; QK / 2];
            qs.iter_mut().for_each(|q| *q = rng.byte());
            BlockQ4_0 { d, qs }
        })
        .collect()
}

/// Σ_blocks |d_w·d_x|·Σ|q_w·q_x|, in f64: a bound on every partial sum an
/// integer-path dot forms in f32 (the i32 partial sums are exact; the
/// backends differ only in how they split a block's sum across lanes before
/// the scale multiply, and in the order they add the f32 terms).
fn q_mag(w_scales: &[f32], w_codes: &[[i32; QK]], x: &[BlockQ8_0]) -> f32 {
    let mut m = 0.0f64;
    for ((dw, c), b) in w_scales.iter().zip(w_codes).zip(x) {
        let s: i64 = c
            .iter()
            .zip(&b.qs)
            .map(|(&p, &q)| (p * q as i32).abs() as i64)
            .sum();
        m += (s as f64 * *dw as f64 * b.scale() as f64).abs();
    }
    m as f32
}
fn q8_parts(w: &[BlockQ8_0]) -> (Vec<f32>, Vec<[i32; QK]>) {
    (
        w.iter().map(|b| b.scale()).collect(),
        w.iter().map(|b| b.qs.map(|q| q as i32)).collect(),
    )
}
fn q4_parts(w: &[BlockQ4_0]) -> (Vec<f32>, Vec<[i32; QK]>) {
    (
        w.iter().map(|b| b.scale()).collect(),
        w.iter().map(|b| b.codes().map(|c| c as i32 - 8)).collect(),
    )
}

/// The activations the integer path sees: quantized (in range −127..=127), or
/// raw bytes over the whole i8 range (the SIMD kernels are exact for both).
fn activations(rng: &mut Rng, k: &Kernels, nb: usize, raw: bool) -> (Vec<f32>, Vec<BlockQ8_0>) {
    let x = rng.vec(nb * QK, 4.0);
    let q = if raw {
        random_q8(rng, nb, true)
    } else {
        let mut q = vec![BlockQ8_0::ZERO; nb];
        (k.quantize_q8_0)(&x, &mut q);
        q
    };
    (x, q)
}

#[test]
fn quantize_q8_0_bit_identical() {
    let mut rng = Rng(4);
    for k in simd() {
        for nb in 0..=40 {
            for scale in [1e-30f32, 1e-6, 1.0, 1e3, 1e30] {
                let mut x = rng.vec(nb * QK, scale);
                if nb > 2 {
                    // A zero block, and a block of exact ties (d = 1).
                    x[..QK].fill(0.0);
                    for (i, v) in x[QK..2 * QK].iter_mut().enumerate() {
                        *v = (i as f32 - 16.0) * 3.0 + 0.5;
                    }
                    x[2 * QK - 1] = 127.0;
                }
                let mut got = vec![BlockQ8_0::ZERO; nb];
                let mut want = vec![BlockQ8_0::ZERO; nb];
                (k.quantize_q8_0)(&x, &mut got);
                (scalar().quantize_q8_0)(&x, &mut want);
                assert_eq!(got, want, "{} quantize_q8_0 nb={nb} scale={scale}", k.name);
            }
        }
        // Edge inputs: subnormal scales, infinities, NaN; the scalar `as i8` semantics hold.
        for special in [
            1e-40f32,
            -1e-39,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            -f32::MAX,
        ] {
            let mut x = rng.vec(2 * QK, 1e-38);
            x[5] = special;
            x[QK + 3] = special;
            x[QK + 4] = 0.0;
            let mut got = vec![BlockQ8_0::ZERO; 2];
            let mut want = vec![BlockQ8_0::ZERO; 2];
            (k.quantize_q8_0)(&x, &mut got);
            (scalar().quantize_q8_0)(&x, &mut want);
            assert_eq!(got, want, "{} quantize_q8_0 special {special}", k.name);
        }
    }
}

#[test]
fn integer_dots() {
    let mut rng = Rng(5);
    for k in simd() {
        for nb in 0..=40 {
            for raw in [false, true] {
                let (_, xq) = activations(&mut rng, k, nb, raw);
                let tol = 4.0 * f32::EPSILON * (nb as f32 + 8.0);

                let w = random_q8(&mut rng, nb, true);
                let (s, c) = q8_parts(&w);
                close(
                    (k.dot_q8_0_q8_0)(&w, &xq),
                    (scalar().dot_q8_0_q8_0)(&w, &xq),
                    q_mag(&s, &c, &xq),
                    tol,
                    &format!("{} dot_q8_0_q8_0 nb={nb} raw={raw}", k.name),
                );

                let w = random_q4(&mut rng, nb);
                let (s, c) = q4_parts(&w);
                close(
                    (k.dot_q4_0_q8_0)(&w, &xq),
                    (scalar().dot_q4_0_q8_0)(&w, &xq),
                    q_mag(&s, &c, &xq),
                    tol,
                    &format!("{} dot_q4_0_q8_0 nb={nb} raw={raw}", k.name),
                );
            }
        }
    }
}

/// All-extreme blocks: −128·−128 and 127·−128 products everywhere, where a
/// `vpmaddubsw`/sign trick would saturate or wrap.
#[test]
fn integer_dots_extremes() {
    for k in simd() {
        for (wq, xq) in [
            (-128i8, -128i8),
            (-128, 127),
            (127, -128),
            (127, 127),
            (-128, 0),
        ] {
            for nb in [1, 2, 3, 8] {
                let w = vec![
                    BlockQ8_0 {
                        d: f16::from_f32(0.5).to_le_bytes(),
                        qs: [wq; QK]
                    };
                    nb
                ];
                let x = vec![
                    BlockQ8_0 {
                        d: f16::from_f32(0.25).to_le_bytes(),
                        qs: [xq; QK]
                    };
                    nb
                ];
                let want = nb as f32 * 32.0 * wq as f32 * xq as f32 * 0.125;
                assert_eq!((k.dot_q8_0_q8_0)(&w, &x), want, "{} q8 {wq}·{xq}", k.name);
                let mut out = vec![0.0; 5];
                let wm: Vec<_> = (0..5).flat_map(|_| w.iter().copied()).collect();
                (k.matvec_q8_0)(&wm, &x, &mut out);
                assert_eq!(out, vec![want; 5], "{} matvec_q8_0 {wq}·{xq}", k.name);
                for code in [0u8, 15] {
                    let w4 = vec![
                        BlockQ4_0 {
                            d: f16::from_f32(0.5).to_le_bytes(),
                            qs: [code | code << 4; 16]
                        };
                        nb
                    ];
                    let want = nb as f32 * 32.0 * (code as f32 - 8.0) * xq as f32 * 0.125;
                    assert_eq!(
                        (k.dot_q4_0_q8_0)(&w4, &x),
                        want,
                        "{} q4 {code}·{xq}",
                        k.name
                    );
                }
            }
        }
    }
}

#[test]
fn integer_matvecs() {
    let mut rng = Rng(6);
    for k in simd() {
        for nb in [1, 2, 3, 5, 8, 24] {
            for rows in [0, 1, 2, 3, 4, 5, 7, 8, 9, 17] {
                for raw in [false, true] {
                    let (_, xq) = activations(&mut rng, k, nb, raw);
                    let tol = 4.0 * f32::EPSILON * (nb as f32 + 8.0);

                    let w = random_q8(&mut rng, rows * nb, true);
                    let mut got = vec![f32::NAN; rows];
                    (k.matvec_q8_0)(&w, &xq, &mut got);
                    for (r, row) in w.chunks_exact(nb).enumerate() {
                        let (s, c) = q8_parts(row);
                        close(
                            got[r],
                            (scalar().dot_q8_0_q8_0)(row, &xq),
                            q_mag(&s, &c, &xq),
                            tol,
                            &format!("{} matvec_q8_0 {rows}x{nb} row {r}", k.name),
                        );
                    }

                    let w = random_q4(&mut rng, rows * nb);
                    let mut got = vec![f32::NAN; rows];
                    (k.matvec_q4_0)(&w, &xq, &mut got);
                    for (r, row) in w.chunks_exact(nb).enumerate() {
                        let (s, c) = q4_parts(row);
                        close(
                            got[r],
                            (scalar().dot_q4_0_q8_0)(row, &xq),
                            q_mag(&s, &c, &xq),
                            tol,
                            &format!("{} matvec_q4_0 {rows}x{nb} row {r}", k.name),
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn quantized_float_dots() {
    let mut rng = Rng(7);
    for k in simd() {
        for nb in 0..=40 {
            let x = rng.vec(nb * QK, 3.0);
            let w = random_q8(&mut rng, nb, true);
            let mut wf = vec![0.0; nb * QK];
            aha_kernels::q8_0::scalar::dequantize_row(&w, &mut wf);
            let m: f32 = wf.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum();
            close(
                (k.dot_q8_0_f32)(&w, &x),
                (scalar().dot_q8_0_f32)(&w, &x),
                m,
                1e-5,
                &format!("{} dot_q8_0_f32 nb={nb}", k.name),
            );

            let w = random_q4(&mut rng, nb);
            q4_0::scalar::dequantize_row(&w, &mut wf);
            let m: f32 = wf.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum();
            close(
                (k.dot_q4_0_f32)(&w, &x),
                (scalar().dot_q4_0_f32)(&w, &x),
                m,
                1e-5,
                &format!("{} dot_q4_0_f32 nb={nb}", k.name),
            );
        }
    }
}

#[test]
fn axpy() {
    let mut rng = Rng(8);
    for k in simd() {
        for n in lengths() {
            let a = rng.f32() * 2.0;
            let x = rng.vec(n, 1.0);
            let y0 = rng.vec(n, 1.0);
            let (mut got, mut want) = (y0.clone(), y0.clone());
            (k.axpy_f32)(a, &x, &mut got);
            (scalar().axpy_f32)(a, &x, &mut want);
            for i in 0..n {
                close(
                    got[i],
                    want[i],
                    y0[i].abs() + (a * x[i]).abs(),
                    2.0 * f32::EPSILON,
                    &format!("{} axpy_f32 n={n}", k.name),
                );
            }
            let xb = f16_bytes(&x);
            let (mut got, mut want) = (y0.clone(), y0.clone());
            (k.axpy_f16)(a, &xb, &mut got);
            (scalar().axpy_f16)(a, &xb, &mut want);
            for i in 0..n {
                close(
                    got[i],
                    want[i],
                    y0[i].abs() + (a * x[i]).abs(),
                    4.0 * f32::EPSILON,
                    &format!("{} axpy_f16 n={n}", k.name),
                );
            }
        }
    }
}

/// Attention's runs over a cache (rows `stride` apart, head widths with every
/// tail): each backend's scores equal its own dot per key to the bit, and
/// the scalar reference's within the dots' tolerance; its mix equals its own
/// loop of axpys to the bit, and the reference's as axpy does.
#[test]
fn attention_runs() {
    let mut rng = Rng(21);
    let widths: &[usize] = if cfg!(miri) { &[1, 8, 9, 40] } else { &[1, 3, 7, 8, 9, 12, 16, 31, 32, 33, 40, 64, 72, 128] };
    for k in backends() {
        for &hd in widths {
            for span in [0, 1, 2, 5, 17] {
                let stride = hd + 5;
                let (q, keys, w) = (rng.vec(hd, 1.0), rng.vec(span * stride + hd, 1.0), rng.vec(span, 1.0));
                let (kb, scale) = (f16_bytes(&keys), 0.125);
                let what = |f: &str| format!("{} {f} hd={hd} span={span}", k.name);
                let mut got = vec![0.0; span];
                (k.scores_f32)(&q, &keys, stride, scale, &mut got);
                let mut got16 = vec![0.0; span];
                (k.scores_f16)(&q, &kb, stride, scale, &mut got16);
                for t in 0..span {
                    let (key, key16) = (&keys[t * stride..t * stride + hd], &kb[2 * t * stride..2 * (t * stride + hd)]);
                    assert_eq!(got[t].to_bits(), (scale * (k.dot_f32_f32)(&q, key)).to_bits(), "{}", what("scores_f32"));
                    assert_eq!(got16[t].to_bits(), (scale * (k.dot_f16)(key16, &q)).to_bits(), "{}", what("scores_f16"));
                    let mag = scale * q.iter().zip(key).map(|(a, b)| (a * b).abs()).sum::<f32>();
                    close(got[t], scale * (scalar().dot_f32_f32)(&q, key), mag, 1e-5, &what("scores_f32"));
                }
                let out0 = rng.vec(hd, 1.0);
                for f16 in [false, true] {
                    let (mut got, mut want, mut reference) = (out0.clone(), out0.clone(), out0.clone());
                    if f16 {
                        (k.mix_f16)(&w, &kb, stride, &mut got);
                    } else {
                        (k.mix_f32)(&w, &keys, stride, &mut got);
                    }
                    for (t, &a) in w.iter().enumerate() {
                        let at = t * stride;
                        if f16 {
                            (k.axpy_f16)(a, &kb[2 * at..2 * (at + hd)], &mut want);
                            (scalar().axpy_f16)(a, &kb[2 * at..2 * (at + hd)], &mut reference);
                        } else {
                            (k.axpy_f32)(a, &keys[at..at + hd], &mut want);
                            (scalar().axpy_f32)(a, &keys[at..at + hd], &mut reference);
                        }
                    }
                    let name = if f16 { "mix_f16" } else { "mix_f32" };
                    for i in 0..hd {
                        assert_eq!(got[i].to_bits(), want[i].to_bits(), "{} i={i}", what(name));
                        let mag = out0[i].abs() + w.iter().enumerate().map(|(t, a)| (a * keys[t * stride + i]).abs()).sum::<f32>();
                        close(got[i], reference[i], mag, 4.0 * f32::EPSILON * (span as f32).max(1.0), &what(name));
                    }
                }
            }
        }
    }
}

#[test]
fn rmsnorm() {
    let mut rng = Rng(9);
    for k in simd() {
        for n in lengths().filter(|&n| n > 0) {
            let x = rng.vec(n, 5.0);
            let w = f32_bytes(&rng.vec(n, 2.0));
            let (mut got, mut want) = (vec![0.0; n], vec![0.0; n]);
            (k.rmsnorm)(&mut got, &x, &w, 1e-6);
            (scalar().rmsnorm)(&mut want, &x, &w, 1e-6);
            for i in 0..n {
                close(
                    got[i],
                    want[i],
                    want[i].abs(),
                    1e-5,
                    &format!("{} rmsnorm n={n} i={i}", k.name),
                );
            }
        }
    }
}

#[test]
fn softmax() {
    let mut rng = Rng(10);
    for k in simd() {
        for n in lengths().filter(|&n| n > 0) {
            for scale in [1.0f32, 10.0, 100.0] {
                let x = rng.vec(n, scale);
                let (mut got, mut want) = (x.clone(), x.clone());
                (k.softmax)(&mut got);
                (scalar().softmax)(&mut want);
                for i in 0..n {
                    // Relative to each probability, plus an absolute floor far
                    // below anything that matters (exp of the very negative).
                    close(
                        got[i],
                        want[i],
                        want[i],
                        1e-5,
                        &format!("{} softmax n={n} i={i} x={}", k.name, x[i]),
                    );
                }
                let s: f32 = got.iter().sum();
                assert!((s - 1.0).abs() < 1e-4, "{} softmax sums to {s}", k.name);
            }
        }
        // -inf entries (masked positions) give exactly 0.
        let mut x = vec![
            0.5,
            f32::NEG_INFINITY,
            1.0,
            f32::NEG_INFINITY,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            2.0,
        ];
        (k.softmax)(&mut x);
        assert_eq!((x[1], x[3]), (0.0, 0.0), "{}", k.name);
    }
}

#[test]
fn swiglu() {
    let mut rng = Rng(11);
    for k in simd() {
        for n in lengths() {
            for scale in [1.0f32, 8.0, 120.0] {
                let g = rng.vec(n, scale);
                let u = rng.vec(n, 2.0);
                let (mut got, mut want) = (g.clone(), g.clone());
                (k.swiglu)(&mut got, &u);
                (scalar().swiglu)(&mut want, &u);
                for i in 0..n {
                    close(
                        got[i],
                        want[i],
                        want[i].abs(),
                        1e-5,
                        &format!("{} swiglu g={} u={}", k.name, g[i], u[i]),
                    );
                }
            }
        }
    }
}

#[test]
fn add_bias() {
    let mut rng = Rng(12);
    for k in simd() {
        for n in lengths() {
            let y = rng.vec(n, 1.0);
            let b = f32_bytes(&rng.vec(n, 1.0));
            let (mut got, mut want) = (y.clone(), y.clone());
            (k.add_bias)(&mut got, &b);
            (scalar().add_bias)(&mut want, &b);
            assert_eq!(got, want, "{} add_bias n={n}", k.name);
        }
    }
}

#[test]
fn rope() {
    let mut rng = Rng(13);
    for k in simd() {
        for head_dim in [2, 4, 8, 16, 24, 32, 48, 64, 80, 128, 256] {
            for heads in [1, 2, 3, 14] {
                for pos in [0, 1, 17, 4095] {
                    let mut cos = vec![0.0; head_dim / 2];
                    let mut sin = vec![0.0; head_dim / 2];
                    aha_kernels::rope::cos_sin(pos, head_dim, 10000.0, &mut cos, &mut sin);
                    let x = rng.vec(heads * head_dim, 3.0);
                    let (mut got, mut want) = (x.clone(), x.clone());
                    (k.rope)(&mut got, head_dim, &cos, &sin);
                    (scalar().rope)(&mut want, head_dim, &cos, &sin);
                    let h = head_dim / 2;
                    for i in 0..x.len() {
                        let (j, o) = (i % head_dim, i - i % head_dim);
                        let m = x[o + j % h].abs() + x[o + h + j % h].abs();
                        close(
                            got[i],
                            want[i],
                            m,
                            2.0 * f32::EPSILON,
                            &format!("{} rope d={head_dim} i={i}", k.name),
                        );
                    }
                }
            }
        }
    }
}

/// The tables are complete: every backend is named, and `best()` is one of them.
#[test]
fn backends_are_listed() {
    let names: Vec<_> = backends().map(|k| k.name).collect();
    assert_eq!(names[0], "scalar");
    assert!(names.contains(&aha_kernels::best().name));
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
    {
        assert!(names.contains(&"avx2"));
    }
    #[cfg(target_arch = "aarch64")]
    assert!(names.contains(&"neon"));
}
