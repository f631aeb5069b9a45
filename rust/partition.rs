//! Scatter into many partitions without a TLB miss per element: each partition's next few
//! entries gather in a small buffer (in L1) and are copied to it together.

/// Entries gathered per partition before they are copied to it.
const WC: usize = 8;

/// Appends entries to `n` partitions, each keeping the order its entries were pushed in.
pub(crate) struct Partitioner<T> {
    out: Vec<Vec<T>>,
    wc: Vec<[T; WC]>,
    fill: Vec<u8>,
}

impl<T: Copy + Default> Partitioner<T> {
    /// `n` partitions, each with room for `cap` entries to start.
    pub(crate) fn new(n: usize, cap: usize) -> Self {
        Partitioner {
            out: (0..n).map(|_| Vec::with_capacity(cap)).collect(),
            wc: vec![[T::default(); WC]; n],
            fill: vec![0; n],
        }
    }

    /// Appends `e` to partition `p`.
    #[inline(always)]
    pub(crate) fn push(&mut self, p: usize, e: T) {
        let f = self.fill[p] as usize;
        self.wc[p][f] = e;
        if f + 1 == WC {
            self.out[p].extend_from_slice(&self.wc[p]);
            self.fill[p] = 0;
        } else {
            self.fill[p] += 1;
        }
    }

    /// The partitions, every entry in them.
    pub(crate) fn finish(mut self) -> Vec<Vec<T>> {
        for (p, o) in self.out.iter_mut().enumerate() {
            o.extend_from_slice(&self.wc[p][..self.fill[p] as usize]);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_lands_in_its_partition_in_order() {
        let mut p = Partitioner::new(3, 0);
        for i in 0..100u32 {
            p.push((i * 7 % 3) as usize, i);
        }
        let out = p.finish();
        for (k, part) in out.iter().enumerate() {
            let want: Vec<u32> = (0..100).filter(|i| (i * 7 % 3) as usize == k).collect();
            assert_eq!(part, &want);
        }
    }
}
