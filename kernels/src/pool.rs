//! A small thread pool for splitting matvec rows across cores (std only).
//!
//! A decode step runs ~8 matvecs per layer, each a few microseconds of work,
//! so the hand-off must cost far less than spawning a thread or a rayon join:
//! workers spin briefly on an epoch counter, then yield, then sleep on a
//! condition variable, and the caller works on the first share itself.

use crate::{matmul, matvec::matvec, Activation, Batch, Kernels, MatOut, Matrix};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

type Job = *const (dyn Fn(usize) + Sync);
/// Work on rows [start, end) of matrix j.
type RowsFn<'f> = dyn Fn(usize, usize, usize) + Sync + 'f;
/// Work on item `i` given its rows of two buffers.
pub type PairFn<'f> = dyn Fn(usize, &mut [f32], &mut [f32]) + Sync + 'f;

struct Shared {
    epoch: AtomicUsize,
    remaining: AtomicUsize,
    sleepers: AtomicUsize,
    shutdown: AtomicBool,
    job: UnsafeCell<Option<Job>>,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the thread in `ThreadPool::run` while no
// worker reads it (before the epoch is published, after all have finished),
// and read by workers only between those points; the epoch/remaining atomics
// order the accesses (Release on publish/finish, Acquire on observe).
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

use std::vec::Vec;

impl ThreadPool {
    /// A pool of `threads` threads in all, the caller's included (`threads - 1`
    /// workers are spawned; 0 or 1 means run everything on the caller). Where
    /// a worker cannot be spawned (wasm32-wasip1 has no threads; a process
    /// may hit its limit) the pool keeps the workers it has, down to none:
    /// [`ThreadPool::threads`] says how many it got.
    pub fn new(threads: usize) -> ThreadPool {
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            remaining: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            job: UnsafeCell::new(None),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..threads.max(1))
            .map(|index| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new().name(std::format!("aha-matvec-{index}")).spawn(move || worker(&shared, index))
            })
            .map_while(Result::ok)
            .collect();
        ThreadPool { shared, workers }
    }

    /// Threads in all, the caller's included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(i)` for every thread index `i` in `0..threads()`, `f(0)` on the
    /// caller, and returns when all have finished.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() {
            return f(0);
        }
        let s = &*self.shared;
        // SAFETY: no worker reads `job` now (the last run waited for all of
        // them); the pointer outlives its use because this function does not
        // return until `remaining` is 0.
        unsafe {
            let f: &'static (dyn Fn(usize) + Sync) = core::mem::transmute(f);
            *s.job.get() = Some(f as Job);
        }
        s.remaining.store(self.workers.len(), Relaxed);
        s.epoch.fetch_add(1, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        f(0);
        let mut spins = 0u32;
        while s.remaining.load(Acquire) != 0 {
            spins += 1;
            if spins < 1 << 14 {
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        // SAFETY: every worker has finished with the job.
        unsafe { *s.job.get() = None };
    }

    /// `out[r] = w[r]·x` with the rows split into one contiguous share per
    /// thread (shares are multiples of 16 rows so SIMD row-blocking holds).
    pub fn matvec(&self, k: &Kernels, w: &Matrix, act: &Activation, out: &mut [f32]) {
        self.matvecs(k, act, &mut [(w, out)]);
    }

    /// Several matvecs of one input (q/k/v, or gate/up) in one hand-off: their
    /// rows are treated as one range and split evenly across threads, so the
    /// threads meet once instead of once per matrix.
    pub fn matvecs(&self, k: &Kernels, act: &Activation, jobs: &mut [(&Matrix, &mut [f32])]) {
        let total: usize = jobs.iter().map(|(w, _)| w.rows).sum();
        if self.threads() == 1 || total < 64 {
            for (w, out) in jobs.iter_mut() {
                matvec(k, w, act, out);
            }
            return;
        }
        for (w, out) in jobs.iter() {
            assert_eq!(out.len(), w.rows, "output length must equal the matrix's rows");
        }
        assert!(jobs.len() <= 4, "at most 4 matrices per hand-off");
        // Shares of 16 rows keep the SIMD kernels' row blocks whole.
        let mut outs: [SendPtr; 4] = core::array::from_fn(|_| SendPtr(core::ptr::null_mut()));
        for (o, (_, out)) in outs.iter_mut().zip(jobs.iter_mut()) {
            o.0 = out.as_mut_ptr();
        }
        let ws: [Option<&Matrix>; 4] = core::array::from_fn(|j| jobs.get(j).map(|(w, _)| *w));
        self.split_rows(&ws, 16, &|j, start, end| {
            let Some(w) = ws[j] else { return };
            // SAFETY: `split_rows` hands each thread disjoint rows [start, end)
            // of an output of `w.rows` elements that outlives the call.
            let part = unsafe { core::slice::from_raw_parts_mut(outs[j].0.add(start), end - start) };
            matvec(k, &w.rows(start..end), act, part);
        });
    }

    /// Batched products of one batch of inputs, rows split across threads:
    /// job j's output is `n × rows` (input-major), `out[b·rows + r]`.
    pub fn matmuls(&self, k: &Kernels, batch: &Batch, jobs: &mut [(&Matrix, &mut [f32])]) {
        let n = batch.n;
        if self.threads() == 1 {
            for (w, out) in jobs.iter_mut() {
                matmul(k, w, batch, &mut MatOut::new(out, n, w.rows, w.rows));
            }
            return;
        }
        assert!(jobs.len() <= 4, "at most 4 matrices per hand-off");
        let ws: [Option<&Matrix>; 4] = core::array::from_fn(|j| jobs.get(j).map(|(w, _)| *w));
        let mut views: [Option<MatOut>; 4] = [None, None, None, None];
        for (v, (w, out)) in views.iter_mut().zip(jobs.iter_mut()) {
            *v = Some(MatOut::new(out, n, w.rows, w.rows));
        }
        // Shares of 12 rows: whole tiles of the backends' 1, 4 or 6 rows
        // (a finer split would only run more rows one at a time; a coarser
        // one, as 48 was, gave one thread 144 of o_proj's 256 rows).
        self.split_rows(&ws, 12, &|j, start, end| {
            let (Some(w), Some(view)) = (ws[j], views[j].as_ref()) else { return };
            // SAFETY: `split_rows` gives the threads disjoint row ranges, and
            // `views` is not used otherwise until they have all finished.
            let mut part = unsafe { view.rows_shared(start..end) };
            matmul(k, &w.rows(start..end), batch, &mut part);
        });
    }

    /// Treats the rows of up to 4 matrices as one range, splits it into one
    /// share per thread (a multiple of `align` rows), and runs
    /// `f(matrix index, start, end)` for each thread's rows of each matrix it
    /// touches. Distinct threads get disjoint row ranges.
    fn split_rows(&self, ws: &[Option<&Matrix>; 4], align: usize, f: &RowsFn) {
        let total: usize = ws.iter().flatten().map(|w| w.rows).sum();
        let share = total.div_ceil(self.threads()).next_multiple_of(align);
        self.run(&|t| {
            let (lo, hi) = ((t * share).min(total), ((t + 1) * share).min(total));
            let mut first = 0;
            for (j, w) in ws.iter().enumerate() {
                let Some(w) = w else { continue };
                let (start, end) = (lo.max(first) - first, hi.min(first + w.rows).saturating_sub(first));
                if start < end {
                    f(j, start, end);
                }
                first += w.rows;
            }
        });
    }

    /// Runs `f(i, &mut a[i·a_len..], &mut b[i·b_len..])` for every `i < n`,
    /// items split evenly across threads: disjoint mutable rows of two
    /// buffers per item (attention heads: scores and output).
    pub fn for_each_pair(&self, n: usize, a: &mut [f32], a_len: usize, b: &mut [f32], b_len: usize, f: &PairFn) {
        assert!(a.len() >= n * a_len && b.len() >= n * b_len, "buffers too short for {n} items");
        let threads = self.threads().min(n.max(1));
        if threads == 1 {
            for (i, (x, y)) in a.chunks_mut(a_len.max(1)).zip(b.chunks_mut(b_len.max(1))).take(n).enumerate() {
                f(i, x, y);
            }
            return;
        }
        let (pa, pb) = (SendPtr(a.as_mut_ptr()), SendPtr(b.as_mut_ptr()));
        // Items dealt round-robin: a prompt's tokens attend to ever longer
        // prefixes, so contiguous shares would give the last thread most of the work.
        self.run(&|t| {
            let (pa, pb) = (&pa, &pb);
            for i in (t..n).step_by(threads) {
                // SAFETY: item i owns rows [i·len, (i+1)·len) of each buffer,
                // disjoint across items and inside the buffers (asserted above),
                // which outlive `run`.
                let (x, y) = unsafe {
                    (
                        core::slice::from_raw_parts_mut(pa.0.add(i * a_len), a_len),
                        core::slice::from_raw_parts_mut(pb.0.add(i * b_len), b_len),
                    )
                };
                f(i, x, y);
            }
        });
    }
}

struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint sub-slices of buffers to pool threads.
unsafe impl Sync for SendPtr {}
unsafe impl Send for SendPtr {}

fn worker(s: &Shared, index: usize) {
    let mut seen = 0usize;
    loop {
        let mut spins = 0u32;
        loop {
            let e = s.epoch.load(Acquire);
            if e != seen {
                seen = e;
                break;
            }
            if s.shutdown.load(Acquire) {
                return;
            }
            spins += 1;
            if spins < 1 << 14 {
                core::hint::spin_loop();
            } else if spins < (1 << 14) + 256 {
                std::thread::yield_now();
            } else {
                let g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
                s.sleepers.fetch_add(1, SeqCst);
                let g = if s.epoch.load(SeqCst) == seen && !s.shutdown.load(SeqCst) {
                    s.wake.wait(g).unwrap_or_else(|e| e.into_inner())
                } else {
                    g
                };
                s.sleepers.fetch_sub(1, SeqCst);
                drop(g);
                spins = 0;
            }
        }
        if s.shutdown.load(Acquire) {
            return;
        }
        // SAFETY: the epoch was published after `job` was set, and `run`
        // keeps it alive until `remaining` reaches 0.
        if let Some(job) = unsafe { *s.job.get() } {
            unsafe { (*job)(index) };
        }
        s.remaining.fetch_sub(1, Release);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.shutdown.store(true, SeqCst);
        s.epoch.fetch_add(1, SeqCst);
        {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn every_thread_runs_once_per_call() {
        for threads in 1..=4 {
            let pool = ThreadPool::new(threads);
            // Fewer where the platform has no threads (wasm32-wasip1).
            let threads = pool.threads();
            for _ in 0..100 {
                let hits: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
                pool.run(&|t| {
                    hits[t].fetch_add(1, Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Relaxed) == 1));
            }
        }
    }

    #[test]
    fn pairs_are_disjoint_and_all_visited() {
        for threads in 1..=3 {
            let pool = ThreadPool::new(threads);
            let (mut a, mut b) = (vec![0.0f32; 7 * 3], vec![0.0f32; 7 * 2]);
            pool.for_each_pair(7, &mut a, 3, &mut b, 2, &|i, x, y| {
                x.fill(i as f32);
                y.fill(10.0 + i as f32);
            });
            for i in 0..7 {
                assert!(a[i * 3..i * 3 + 3].iter().all(|&v| v == i as f32));
                assert!(b[i * 2..i * 2 + 2].iter().all(|&v| v == 10.0 + i as f32));
            }
        }
    }

    #[test]
    fn threaded_matvec_equals_single_threaded() {
        let (rows, cols) = (301, 64);
        let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5).collect();
        let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        let x: Vec<f32> = (0..cols).map(|i| (i as f32).sin()).collect();
        let m = Matrix { dtype: crate::DType::F32, data: &bytes, rows, cols };
        let act = Activation { x: &x, q8: None };
        let mut want = vec![0.0; rows];
        matvec(crate::scalar(), &m, &act, &mut want);
        for threads in [2, 3] {
            let pool = ThreadPool::new(threads);
            let mut got = vec![0.0; rows];
            pool.matvec(crate::scalar(), &m, &act, &mut got);
            assert_eq!(want, got);
            // Three matrices in one hand-off: rows 0..100, 100..117, 117..301.
            let (a, b, c) = (m.rows(0..100), m.rows(100..117), m.rows(117..301));
            let (mut oa, mut ob, mut oc) = (vec![0.0; 100], vec![0.0; 17], vec![0.0; 184]);
            pool.matvecs(crate::scalar(), &act, &mut [(&a, &mut oa), (&b, &mut ob), (&c, &mut oc)]);
            assert_eq!([oa, ob, oc].concat(), want);
            // Batched: two inputs, two matrices.
            let x2: Vec<f32> = x.iter().chain(x.iter()).map(|v| v * 0.5).collect();
            let mut pf = vec![0.0; crate::Batch::panel_f32_len(2, cols)];
            let scratch = crate::BatchScratch { q8: &mut [], panel_q8: &mut [], panel_f32: &mut pf };
            let batch = crate::Batch::prepare(crate::scalar(), &x2, 2, false, true, scratch);
            let (mut o1, mut o2) = (vec![0.0; 2 * 100], vec![0.0; 2 * 201]);
            let (m1, m2) = (m.rows(0..100), m.rows(100..301));
            pool.matmuls(crate::scalar(), &batch, &mut [(&m1, &mut o1), (&m2, &mut o2)]);
            let half: Vec<f32> = x.iter().map(|v| v * 0.5).collect();
            let mut w1 = vec![0.0; rows];
            matvec(crate::scalar(), &m, &Activation { x: &half, q8: None }, &mut w1);
            for b in 0..2 {
                assert_eq!(&o1[b * 100..(b + 1) * 100], &w1[..100]);
                assert_eq!(&o2[b * 201..(b + 1) * 201], &w1[100..]);
            }
        }
    }
}
