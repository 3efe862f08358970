//! The process's thread policy on the CPU backends: Burn's operations on
//! one thread, the LSTM kernel's matmuls on every core in a pool of its own.

/// The kernel's threads: one per core, in a pool of its own, so that its
/// matmuls use every core whatever the global rayon pool (the one Burn's CPU
/// backends run their operations on) is set to. The binaries give that one a
/// single thread: waking a second thread for each of Burn's many small
/// operations costs more than it saves (`docs/perf/README.md`).
pub(crate) fn pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(kernel_threads())
            .thread_name(|i| format!("lstm-kernel-{i}"))
            .build()
            .expect("starting the LSTM kernel's thread pool")
    })
}

/// Gives the global rayon pool, on which Burn's ndarray and flex backends
/// run their operations, a single thread, unless `RAYON_NUM_THREADS` sets it;
/// the LSTM kernel keeps one thread per core in its own pool. For binaries,
/// at start-up: on the 2-core development machine this made every bench case
/// faster (a training step at batch 32 × 64 from 69 to 46 ms), because most
/// of Burn's operations on these models are too small to pay for waking a
/// second thread (`docs/perf/README.md`). Does nothing if the global pool
/// has already started.
pub fn configure_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // An error means the pool is already running; it is left as it is.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build_global();
    }
}

/// How many threads the CPU LSTM kernel runs its matmuls on: one per core.
/// Asked once: `available_parallelism` reads the cgroup files on every call,
/// which at a few microseconds is more than a batch-1 step's whole matmul.
pub fn kernel_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
