//! Groups of batch rows, each run on a thread of its own over the whole
//! sequence: how a batch is cut, how the groups run, and the order a padded
//! batch is packed in.

use super::*;

/// Runs `run(job, rows, parallel)` for each group's job: the only group on
/// this thread with the pool free for its products, or each on a thread of
/// its own with single-threaded products.
pub(super) fn run_groups<G: Send>(cut: Cut, jobs: Vec<G>, run: impl Fn(G, usize, bool) + Sync) {
    let jobs: Vec<(G, usize)> = jobs.into_iter().zip(cut.sizes()).collect();
    if jobs.len() == 1 {
        jobs.into_iter()
            .for_each(|(job, rows)| run(job, rows, true));
    } else {
        jobs.into_par_iter()
            .for_each(|(job, rows)| run(job, rows, false));
    }
}

/// How a batch is cut into groups of consecutive rows: `per_group` rows
/// each, the last group shorter, no group empty.
#[derive(Clone, Copy)]
pub(super) struct Cut {
    batch: usize,
    per_group: usize,
}

impl Cut {
    pub(super) fn new(batch: usize, groups: usize) -> Self {
        Self {
            batch,
            per_group: batch.div_ceil(groups.max(1)).max(1),
        }
    }

    pub(super) fn groups(self) -> usize {
        self.batch.div_ceil(self.per_group)
    }

    /// The rows of each group.
    pub(super) fn sizes(self) -> Vec<usize> {
        (0..self.groups())
            .map(|g| self.per_group.min(self.batch - g * self.per_group))
            .collect()
    }

    /// `buffer`, `width` values per row, cut into the groups' pieces.
    pub(super) fn rows<T>(self, buffer: &[T], width: usize) -> Vec<&[T]> {
        let mut rest = buffer;
        (0..self.groups())
            .map(|_| {
                let (piece, tail) = rest.split_at((self.per_group * width).min(rest.len()));
                rest = tail;
                piece
            })
            .collect()
    }

    /// [`rows`](Self::rows) for a buffer the groups write.
    pub(super) fn rows_mut(self, buffer: &mut [f32], width: usize) -> Vec<&mut [f32]> {
        let mut rest = buffer;
        (0..self.groups())
            .map(|_| {
                let taken = std::mem::take(&mut rest);
                let at = (self.per_group * width).min(taken.len());
                let (piece, tail) = taken.split_at_mut(at);
                rest = tail;
                piece
            })
            .collect()
    }

    /// The state mask `[B, H]` cut like the rows (`None` for every group
    /// without one).
    pub(super) fn mask(self, mask: Option<&[f32]>, h: usize) -> Vec<Option<&[f32]>> {
        match mask {
            Some(mask) => self.rows(mask, h).into_iter().map(Some).collect(),
            None => vec![None; self.groups()],
        }
    }
}

/// The rows of a padded batch in the order the groups of `cut` take them:
/// sorted longest first, then dealt one to each group in turn (skipping
/// full groups), each group's rows contiguous.
pub(super) fn packed_order(lengths: &[usize], cut: Cut) -> Vec<usize> {
    let mut sorted: Vec<usize> = (0..lengths.len()).collect();
    sorted.sort_by_key(|&row| std::cmp::Reverse(lengths[row]));
    let sizes = cut.sizes();
    let mut groups: Vec<Vec<usize>> = sizes.iter().map(|&n| Vec::with_capacity(n)).collect();
    let mut next = 0;
    for row in sorted {
        while groups[next].len() == sizes[next] {
            next = (next + 1) % groups.len();
        }
        groups[next].push(row);
        next = (next + 1) % groups.len();
    }
    groups.concat()
}

/// Groups of rows to run on separate threads: one per thread when a step
/// has at least `GROUP_GATES` gate values (2¹⁴: the classifier's batch of
/// 32 at H = 128 gained about 5% from two groups, in alternating bench
/// runs) and each group keeps at least `GROUP_ROWS` rows for gemm; else 1.
pub(super) fn row_groups(batch: usize, h: usize) -> usize {
    /// Fewer rows than this and gemm's per-call cost dominates its products.
    const GROUP_ROWS: usize = 16;
    const GROUP_GATES: usize = 1 << 14;
    let threads = crate::cpu::kernel_threads();
    if threads < 2 || batch * 4 * h < GROUP_GATES {
        return 1;
    }
    threads.min(batch / GROUP_ROWS).max(1)
}
