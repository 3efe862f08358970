//! Refusing a model too large for this machine before allocating it: a
//! config (typed on the command line or read from an artifact) with a huge
//! size would otherwise hang in the allocator or get the process killed.

use anyhow::{Result, bail};

/// Bytes of memory the kernel says are available (Linux's `MemAvailable`),
/// or `None` where that cannot be read.
pub fn available_bytes() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// Bytes of memory a model of `params` parameters needs: 4 bytes each for
/// inference, 16 for training (the weights, their gradients and Adam's two
/// moments, all `f32`).
pub fn bytes_needed(params: f64, training: bool) -> f64 {
    params * if training { 16.0 } else { 4.0 }
}

/// Refuses `what`, a model of `params` parameters, when it cannot fit in
/// the memory available now.
pub fn check_fits(params: f64, training: bool, what: &str) -> Result<()> {
    let need = bytes_needed(params, training);
    let Some(available) = available_bytes() else {
        return Ok(());
    };
    if need > available {
        let (doing, why) = if training {
            ("training", " (weights, gradients and Adam's two moments)")
        } else {
            ("loading", "")
        };
        bail!(
            "{what} has {params:.3e} parameters: {doing} it needs at least {}{why}, and this machine has {} available",
            gigabytes(need),
            gigabytes(available)
        );
    }
    Ok(())
}

fn gigabytes(bytes: f64) -> String {
    format!("{:.1} GB", bytes / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_larger_than_memory_is_refused_with_what_it_needs() {
        if available_bytes().is_none() {
            return; // not Linux: nothing to compare with
        }
        let err = check_fits(1e15, true, "the model of these options").unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("the model of these options has 1.000e15 parameters"),
            "{message}"
        );
        assert!(message.contains("16000000.0 GB"), "{message}");
        assert!(check_fits(1000.0, true, "a small model").is_ok());
    }
}
