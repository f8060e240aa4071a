//! Single-thread matvec throughput per backend and weight format, in bytes of
//! weights read per second (`Throughput::Bytes`), next to a read-bandwidth
//! baseline over a buffer of the same size, so each kernel can be quoted as a
//! fraction of what the memory system delivers at that working-set size.
//!
//! Shapes: 768×2048 (a small model's FFN matrix; its weights fit in L2 for
//! the quantized formats) and 4096×4096 (exceeds L2 in every format).
//!
//! The `matmul/` groups time the batched kernels (one matrix against 16 and
//! 64 inputs, as prompt processing and batch decoding see it) in
//! multiply-accumulates per second (`Throughput::Elements` = rows × cols ×
//! inputs), beside the loop of matvecs they replace.
//!
//! `cargo bench --bench kernels` (add `-- <filter>` to run a subset, e.g.
//! `-- q4_0`).

use aha_kernels::{backends, dtype, matmul, matvec, Activation, Batch, BatchScratch, BlockQ8_0, DType, MatOut, Matrix, PanelQ8, QK};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

/// (name, cols, rows): an MLP matrix of the 122M model (L2-sized), a 7B-sized
/// square, and an lm_head of 151936 x 1536 (Qwen2-1.5B; 230 MB at Q8_0, far past
/// any cache, so it measures what decode sees: DRAM bandwidth).
const SHAPES: [(&str, usize, usize); 3] =
    [("768x2048", 768, 2048), ("4096x4096", 4096, 4096), ("1536x151936", 1536, 151936)];

fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

/// Plain sum of u64 words, four accumulators: what the compiler makes of a
/// read loop for the baseline target (SSE2 on x86_64).
fn sum_u64(b: &[u8]) -> u64 {
    let words: &[u64] = as_u64s(b);
    let mut acc = [0u64; 4];
    let mut it = words.chunks_exact(4);
    for c in &mut it {
        for k in 0..4 {
            acc[k] = acc[k].wrapping_add(c[k]);
        }
    }
    acc.iter().fold(0, |a, &b| a.wrapping_add(b))
}

fn as_u64s(b: &[u8]) -> &[u64] {
    // The buffers are Vec<u8>s allocated by us, their length a multiple of 8;
    // realign via align_to and ignore any unaligned edges (none in practice).
    // SAFETY: every bit pattern is a valid u64; align_to handles alignment.
    let (_, mid, _) = unsafe { b.align_to::<u64>() };
    mid
}

/// AVX2 read loop, eight 32-byte loads in flight: the best this core reads.
#[cfg(target_arch = "x86_64")]
fn sum_avx2(b: &[u8]) -> Option<u64> {
    use std::arch::x86_64::*;
    #[target_feature(enable = "avx2")]
    fn inner(b: &[u8]) -> u64 {
        let mut acc = [_mm256_setzero_si256(); 8];
        let mut it = b.chunks_exact(256);
        for c in &mut it {
            for (k, a) in acc.iter_mut().enumerate() {
                // SAFETY: c[32k..32k + 32] is in bounds (c is 256 bytes); loadu needs no alignment.
                *a = _mm256_add_epi64(*a, unsafe {
                    _mm256_loadu_si256(c.as_ptr().add(32 * k).cast())
                });
            }
        }
        let mut s = _mm256_setzero_si256();
        for a in acc {
            s = _mm256_add_epi64(s, a);
        }
        let mut out = [0u64; 4];
        // SAFETY: `out` is 32 writable bytes.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), s) };
        out.iter().fold(0, |a, &b| a.wrapping_add(b))
    }
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected on this CPU.
        Some(unsafe { inner(b) })
    } else {
        None
    }
}

fn bench(c: &mut Criterion) {
    for (shape, cols, rows) in SHAPES {
        let wf = pseudo_random(rows * cols, 1);
        let x = pseudo_random(cols, 2);
        let mut xq = vec![BlockQ8_0::ZERO; cols / QK];
        aha_kernels::q8_0::scalar::quantize_row(&x, &mut xq);
        let mut out = vec![0.0f32; rows];

        let mut g = c.benchmark_group(format!("matvec/{shape}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));

        let mut sizes = Vec::new();
        for dt in [
            DType::F32,
            DType::F16,
            DType::BF16,
            DType::Q8_0,
            DType::Q4_0,
        ] {
            let mut data = vec![0u8; dt.row_bytes(cols).unwrap() * rows];
            dtype::quantize(dt, &wf, &mut data);
            let m = Matrix {
                dtype: dt,
                data: &data,
                rows,
                cols,
            };
            g.throughput(Throughput::Bytes(data.len() as u64));
            sizes.push(data.len());
            // Quantized formats: the integer path (Q8_0 activations), then the float path.
            let paths: &[(&str, bool)] = if dt.is_quantized() {
                &[("int", true), ("float", false)]
            } else {
                &[("", false)]
            };
            for &(path, int) in paths {
                let act = Activation {
                    x: &x,
                    q8: int.then_some(&xq[..]),
                };
                let name = if path.is_empty() {
                    dt.name().to_string()
                } else {
                    format!("{}_{path}", dt.name())
                };
                for k in backends() {
                    g.bench_function(BenchmarkId::new(&name, k.name), |b| {
                        b.iter(|| matvec(k, black_box(&m), black_box(&act), &mut out))
                    });
                }
            }
        }

        // Read bandwidth over buffers of the same sizes as the weights.
        sizes.sort_unstable();
        sizes.dedup();
        for size in sizes {
            let buf: Vec<u8> = (0..size).map(|i| i as u8).collect();
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_function(BenchmarkId::new("read_u64", size), |b| {
                b.iter(|| sum_u64(black_box(&buf)))
            });
            #[cfg(target_arch = "x86_64")]
            if sum_avx2(&buf).is_some() {
                g.bench_function(BenchmarkId::new("read_avx2", size), |b| {
                    b.iter(|| sum_avx2(black_box(&buf)))
                });
            }
        }
        g.finish();
    }
}

/// The batched kernels on the 122M model's FFN shape (2048 × 768), per
/// backend and format, against 16 and 64 inputs.
fn bench_matmul(c: &mut Criterion) {
    let (rows, cols) = (2048, 768);
    let wf = pseudo_random(rows * cols, 1);
    for n in [16, 64] {
        let x = pseudo_random(n * cols, 2);
        let mut g = c.benchmark_group(format!("matmul/{rows}x{cols}/n{n}"));
        g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
        g.throughput(Throughput::Elements((rows * cols * n) as u64));
        let mut out = vec![0.0f32; n * rows];
        for dt in DType::ALL {
            let mut data = vec![0u8; dt.row_bytes(cols).unwrap() * rows];
            dtype::quantize(dt, &wf, &mut data);
            let m = Matrix { dtype: dt, data: &data, rows, cols };
            let int = dt.is_quantized();
            for k in backends() {
                let mut q8 = vec![BlockQ8_0::ZERO; Batch::q8_len(n, cols)];
                let mut pq = vec![PanelQ8::ZERO; Batch::panel_q8_len(n, cols)];
                let mut pf = vec![0f32; Batch::panel_f32_len(n, cols)];
                let batch = Batch::prepare(k, &x, n, int, !int, BatchScratch { q8: &mut q8, panel_q8: &mut pq, panel_f32: &mut pf });
                g.bench_function(BenchmarkId::new(format!("{dt}/matmul"), k.name), |b| {
                    b.iter(|| matmul(k, black_box(&m), black_box(&batch), &mut MatOut::new(&mut out, n, rows, rows)))
                });
                let mut one = vec![0.0f32; rows];
                g.bench_function(BenchmarkId::new(format!("{dt}/matvec-loop"), k.name), |b| {
                    b.iter(|| {
                        for i in 0..n {
                            matvec(k, black_box(&m), &batch.get(i), &mut one);
                        }
                    })
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, bench, bench_matmul);
criterion_main!(benches);
