//! Scatter into many partitions without a TLB miss per element: each partition's next cache
//! line of entries gathers in a small buffer (in L1) and is copied out whole, into the
//! partition's region of one buffer for all of them. On x86-64 the copy is a non-temporal store
//! (`movntdq`): the line goes to memory without being read first (a plain store would fetch each
//! destination line before overwriting all of it) and without evicting the small buffers; on
//! Linux the buffer asks for 2 MiB pages (`MADV_HUGEPAGE`), so that a few hundred regions
//! written at once do not each cost a TLB miss and a page fault every 4 KiB. Elsewhere: plain
//! copies and ordinary pages.

use std::mem::MaybeUninit;
use std::ops::Deref;
use std::sync::Arc;

/// Bytes of a cache line: the unit entries are copied out in.
const LINE: usize = 64;

/// One cache line of `N` entries (`N * size_of::<T>()` is exactly [`LINE`]: no padding).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line<T: Copy, const N: usize>([T; N]);

/// The lines of all partitions; a line is read only once written (see [`Lines`]).
struct Buffer<T: Copy, const N: usize>(Box<[MaybeUninit<Line<T, N>>]>);

/// A partition's entries in order (whole cache lines of a shared buffer, the last one possibly
/// filled in part), read as a slice.
pub(crate) struct Lines<T: Copy, const N: usize> {
    buf: Option<Arc<Buffer<T, N>>>,
    /// First line.
    start: usize,
    /// Entries.
    len: usize,
}

impl<T: Copy, const N: usize> Default for Lines<T, N> {
    fn default() -> Self {
        Lines {
            buf: None,
            start: 0,
            len: 0,
        }
    }
}

impl<T: Copy, const N: usize> Deref for Lines<T, N> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        let Some(buf) = &self.buf else {
            return &[];
        };
        let lines = &buf.0[self.start..self.start + self.len.div_ceil(N)];
        // SAFETY: `Line<T, N>` is `repr(C)` over `[T; N]` with no padding (`Partitioner::FITS`),
        // so these lines are `N` entries each in a row; `Partitioner::finish`, the only maker of
        // a `Lines` with a buffer, wrote every one of them in full before sharing the buffer,
        // which nothing writes again; `len` entries lie within them.
        unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<T>(), self.len) }
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
    buf: Box<[MaybeUninit<Line<T, N>>]>,
    /// Lines of each partition's region of `buf`.
    cap: usize,
    /// Lines written in each region.
    at: Vec<usize>,
    /// Lines past a full region, by partition.
    spill: Vec<Vec<Line<T, N>>>,
    wc: Vec<Line<T, N>>,
    fill: Vec<u8>,
}

impl<T: Copy + Default, const N: usize> Partitioner<T, N> {
    /// `N` entries of `T` are one whole cache line (a build error otherwise).
    const FITS: () = assert!(N * std::mem::size_of::<T>() == LINE && N.is_power_of_two());

    /// `n` partitions, each with a region for `cap` entries (more go to a spill vector, and the
    /// partitions are then copied together once at the end).
    pub(crate) fn new(n: usize, cap: usize) -> Self {
        let () = Self::FITS;
        let cap = cap.div_ceil(N).max(1);
        let mut buf = Box::new_uninit_slice(n * cap);
        advise_huge(buf.as_mut_ptr().cast::<u8>(), n * cap * LINE);
        Partitioner {
            buf,
            cap,
            at: vec![0; n],
            spill: (0..n).map(|_| Vec::new()).collect(),
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
            self.emit(p);
            self.fill[p] = 0;
        } else {
            self.fill[p] += 1;
        }
    }

    /// Copies partition `p`'s line buffer out: to the next line of its region, or past a full
    /// region to its spill vector.
    #[inline(always)]
    fn emit(&mut self, p: usize) {
        let k = self.at[p];
        if k < self.cap {
            stream(self.buf[p * self.cap + k].as_mut_ptr(), &self.wc[p]);
            self.at[p] = k + 1;
        } else {
            self.spill[p].push(self.wc[p]);
        }
    }

    /// The partitions, every entry in them.
    pub(crate) fn finish(mut self) -> Vec<Lines<T, N>> {
        let n = self.at.len();
        // the part-filled lines, last in their partitions
        for p in 0..n {
            if self.fill[p] > 0 {
                self.emit(p);
            }
        }
        fence();
        let len =
            |p: usize| (self.at[p] + self.spill[p].len()) * N - (N - usize::from(self.fill[p])) % N;
        let lens: Vec<usize> = (0..n).map(len).collect();
        let (buf, starts) = if self.spill.iter().all(Vec::is_empty) {
            (self.buf, (0..n).map(|p| p * self.cap).collect::<Vec<_>>())
        } else {
            // some region overflowed: every partition's lines copied together
            let total: usize = (0..n).map(|p| self.at[p] + self.spill[p].len()).sum();
            let mut out = Vec::with_capacity(total);
            let mut starts = Vec::with_capacity(n);
            for p in 0..n {
                starts.push(out.len());
                out.extend_from_slice(&self.buf[p * self.cap..p * self.cap + self.at[p]]);
                out.extend(self.spill[p].iter().map(|&l| MaybeUninit::new(l)));
            }
            (out.into_boxed_slice(), starts)
        };
        let buf = Arc::new(Buffer(buf));
        starts
            .into_iter()
            .zip(lens)
            .map(|(start, len)| Lines {
                buf: Some(Arc::clone(&buf)),
                start,
                len,
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
        // SAFETY: `dst` is a line of the buffer (valid for writes, aligned to 64) and `src` a
        // whole line (aligned to 64): every 16-byte piece is in bounds and aligned.
        unsafe { _mm_stream_si128(d.add(k), _mm_load_si128(s.add(k))) };
    }
}

/// Writes `src` to the line at `dst` (a plain copy where there is no non-temporal store).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn stream<T: Copy, const N: usize>(dst: *mut Line<T, N>, src: &Line<T, N>) {
    // SAFETY: `dst` is a line of the buffer, valid for writes and aligned.
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

/// Asks Linux to back the 2 MiB-aligned part of `len` bytes at `p` with huge pages (advice
/// only: the contents and their validity do not change; an error is ignored).
#[cfg(target_os = "linux")]
fn advise_huge(p: *mut u8, len: usize) {
    const HUGE: usize = 1 << 21;
    let start = (p as usize).next_multiple_of(HUGE);
    let end = (p as usize).saturating_add(len) / HUGE * HUGE;
    if end > start {
        // SAFETY: the range lies inside an allocation this caller owns; `MADV_HUGEPAGE` changes
        // how it is backed, never what it holds.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

/// No huge-page advice off Linux.
#[cfg(not(target_os = "linux"))]
fn advise_huge(_: *mut u8, _: usize) {}

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
    fn lines_read_as_slices() {
        let mut p = Partitioner::<u64, 8>::new(2, 0);
        for i in 0..19 {
            p.push(0, i);
        }
        let out = p.finish();
        assert_eq!(out[1].len(), 0);
        assert_eq!(&out[1][..], &[] as &[u64]);
        assert_eq!(&out[0][..], &(0..19).collect::<Vec<u64>>()[..]);
        assert_eq!(
            out[0].iter().copied().sum::<u64>(),
            (&out[0]).into_iter().sum::<u64>()
        );
        assert_eq!(Lines::<u64, 8>::default().len(), 0);
    }
}
