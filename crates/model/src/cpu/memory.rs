//! The binaries' memory policy: mimalloc keeps the memory a step frees for
//! the next step instead of handing it back to the kernel.

/// mimalloc's `mi_option_purge_delay`: how many milliseconds freed memory
/// waits before it is returned to the kernel (−1: never). The sys crate
/// does not name it; it is the 16th option of `mi_option_e` in both of the
/// versions it bundles (`include/mimalloc.h`): 1,000 ms by default in v3,
/// the one linked here, 10 in v2.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc (the binaries' global allocator) never to return freed
/// memory to the kernel. A training step frees and allocates the same tens
/// of megabytes every few milliseconds (the embedding's gradient alone is
/// 10 MB at 20,000 × 128); with mimalloc's default purging much of it
/// went back and was faulted and zeroed in again on the next step: 26,000
/// page faults against 300 in one bench run of the batch-32 training step,
/// which took 15.2–19.0 ms against 14.0–14.5 without purging
/// (docs/perf/README.md). The price is a process that holds its peak memory
/// until it exits. For binaries, at start-up; does nothing where mimalloc is
/// linked but not the global allocator.
pub fn keep_freed_memory() {
    // SAFETY: sets one integer option; called at start-up, before the
    // process has other threads (mimalloc's options are not thread safe).
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option set is the one whose default is v3's purge delay,
    /// 1,000 ms (the neighbouring options default to 1 and 0), and it reads
    /// back as −1 afterwards.
    #[test]
    fn the_purge_delay_is_the_option_set() {
        // SAFETY: reads one integer option.
        let before = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        keep_freed_memory();
        let after = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        assert_eq!((before, after), (1000, -1));
    }
}
