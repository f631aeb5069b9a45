//! Scatter into many partitions without a TLB miss per element: each partition's next cache
//! line of entries gathers in a small buffer (in L1) and is copied out whole. On x86-64 the copy
//! is a non-temporal store (`movntdq`): the line goes to memory without being read first (a
//! plain store would fetch each destination line before overwriting all of it) and without
//! evicting the buffers from the cache. Elsewhere it is a plain copy.

use std::ops::{Deref, DerefMut};

/// Bytes of a cache line: the unit entries are copied out in.
const LINE: usize = 64;

/// One cache line of `N` entries (`N * size_of::<T>()` is exactly [`LINE`]: no padding).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line<T: Copy, const N: usize>([T; N]);

/// A partition's entries in order: whole cache lines, the last one possibly filled in part.
/// Reads (and writes) as a slice of entries.
pub(crate) struct Lines<T: Copy, const N: usize> {
    lines: Vec<Line<T, N>>,
    len: usize,
}

impl<T: Copy, const N: usize> Default for Lines<T, N> {
    fn default() -> Self {
        Lines {
            lines: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Copy, const N: usize> Deref for Lines<T, N> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `Line<T, N>` is `repr(C)` over `[T; N]` with no padding (checked by
        // `Partitioner::FITS`, the only maker of non-empty `Lines`), so the lines are
        // `N * lines.len()` initialised entries in a row, and `len` is at most that; an empty
        // vector's pointer is non-null and aligned to 64, so also to `T`.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T: Copy, const N: usize> DerefMut for Lines<T, N> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, through the unique borrow of `lines`.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<T>(), self.len) }
    }
}

impl<'a, T: Copy, const N: usize> IntoIterator for &'a Lines<T, N> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Appends entries of `T` to `n` partitions, each keeping the order its entries were pushed
/// in; `N` entries fill a cache line (`Partitioner::<u128, 4>`, `Partitioner::<u64, 8>`).
pub(crate) struct Partitioner<T: Copy, const N: usize> {
    out: Vec<Vec<Line<T, N>>>,
    wc: Vec<Line<T, N>>,
    fill: Vec<u8>,
}

impl<T: Copy + Default, const N: usize> Partitioner<T, N> {
    /// `N` entries of `T` are one whole cache line (a build error otherwise).
    const FITS: () = assert!(N * std::mem::size_of::<T>() == LINE && N.is_power_of_two());

    /// `n` partitions, each with room for `cap` entries to start.
    pub(crate) fn new(n: usize, cap: usize) -> Self {
        let () = Self::FITS;
        Partitioner {
            out: (0..n)
                .map(|_| Vec::with_capacity(cap.div_ceil(N)))
                .collect(),
            wc: vec![Line([T::default(); N]); n],
            fill: vec![0; n],
        }
    }

    /// Appends `e` to partition `p`.
    #[inline(always)]
    pub(crate) fn push(&mut self, p: usize, e: T) {
        let f = usize::from(self.fill[p]);
        self.wc[p].0[f & (N - 1)] = e;
        if f + 1 == N {
            let out = &mut self.out[p];
            if out.len() == out.capacity() {
                out.reserve(out.len().max(16));
            }
            let dst = out.spare_capacity_mut().as_mut_ptr().cast::<Line<T, N>>();
            stream(dst, &self.wc[p]);
            // SAFETY: the line after the last was just written in full (capacity reserved).
            unsafe { out.set_len(out.len() + 1) };
            self.fill[p] = 0;
        } else {
            self.fill[p] += 1;
        }
    }

    /// The partitions, every entry in them.
    pub(crate) fn finish(self) -> Vec<Lines<T, N>> {
        fence();
        self.out
            .into_iter()
            .zip(self.wc)
            .zip(self.fill)
            .map(|((mut lines, line), f)| {
                let len = lines.len() * N + usize::from(f);
                if f > 0 {
                    lines.push(line);
                }
                Lines { lines, len }
            })
            .collect()
    }
}

/// Writes `src` to the line at `dst` around the cache (x86-64: four 16-byte non-temporal
/// stores; SSE2 is part of x86-64).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn stream<T: Copy, const N: usize>(dst: *mut Line<T, N>, src: &Line<T, N>) {
    use std::arch::x86_64::{__m128i, _mm_load_si128, _mm_stream_si128};
    let s = (src as *const Line<T, N>).cast::<__m128i>();
    let d = dst.cast::<__m128i>();
    for k in 0..LINE / 16 {
        // SAFETY: `dst` is a line of spare vector capacity (valid for writes, aligned to 64) and
        // `src` a whole line (aligned to 64): both 16-byte pieces are in bounds and aligned.
        unsafe { _mm_stream_si128(d.add(k), _mm_load_si128(s.add(k))) };
    }
}

/// Writes `src` to the line at `dst` (a plain copy where there is no non-temporal store).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn stream<T: Copy, const N: usize>(dst: *mut Line<T, N>, src: &Line<T, N>) {
    // SAFETY: `dst` is a line of spare vector capacity, valid for writes and aligned.
    unsafe { dst.write(*src) };
}

/// Orders the non-temporal stores before whatever follows (another thread reading the lines).
#[inline]
fn fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `sfence` has no preconditions (SSE is part of x86-64).
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_lands_in_its_partition_in_order() {
        // partitions left empty, partly filled lines, whole lines, and growth past `cap`
        for (n, parts, cap) in [
            (0u32, 3, 0),
            (5, 3, 0),
            (100, 3, 0),
            (5000, 7, 4),
            (64, 1, 64),
        ] {
            let mut p = Partitioner::<u128, 4>::new(parts, cap);
            let mut q = Partitioner::<u64, 8>::new(parts, cap);
            for i in 0..n {
                p.push(
                    (i * 7 % parts as u32) as usize,
                    u128::from(i) << 70 | u128::from(i),
                );
                q.push((i * 7 % parts as u32) as usize, u64::from(i));
            }
            let (out, out8) = (p.finish(), q.finish());
            assert_eq!(out.len(), parts);
            for (k, (part, part8)) in out.iter().zip(&out8).enumerate() {
                let want: Vec<u32> = (0..n)
                    .filter(|i| (i * 7 % parts as u32) as usize == k)
                    .collect();
                let got: Vec<u32> = part.iter().map(|&e| e as u32).collect();
                assert_eq!(got, want);
                assert!(part.iter().all(|&e| e >> 70 == e & 0xffff_ffff));
                let got8: Vec<u32> = part8.iter().map(|&e| e as u32).collect();
                assert_eq!(got8, want);
            }
        }
    }

    #[test]
    fn lines_read_and_write_as_slices() {
        let mut p = Partitioner::<u64, 8>::new(2, 0);
        for i in 0..19 {
            p.push(0, i);
        }
        let mut out = p.finish();
        assert_eq!(out[1].len(), 0);
        assert_eq!(&out[1][..], &[] as &[u64]);
        out[0][18] = 100;
        out[0].iter_mut().take(2).for_each(|e| *e += 1);
        let want: Vec<u64> = (0..19)
            .map(|i| if i == 18 { 100 } else { i + u64::from(i < 2) })
            .collect();
        assert_eq!(&out[0][..], &want[..]);
        assert_eq!(Lines::<u64, 8>::default().len(), 0);
    }
}
