//! The learning rate of every step, as burn-train's Learner asks for it:
//! an [`LrSchedule`] (constant, cosine, exponential or a constant rate with
//! a linear cooldown, from `--lr-schedule`) over a run of known length. Its state is the step count, which the
//! checkpoints keep, so a resumed run continues the same curve.
//!
//! A cosine or a cooldown must know where the run ends. With `--epochs`
//! alone that is the last epoch; under a time budget it is the epochs the
//! budget holds, which only the machine can tell: the [`Horizon`] is fixed
//! once the first epoch has ended, from its time, and lowered after a later
//! one if the epochs so far took longer on average ([`crate::fit`]); it is
//! kept with the progress so that a resumed run follows the same curve.

use artifact::LrSchedule;
use burn::lr_scheduler::LrScheduler;
use burn::tensor::backend::Backend;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The epochs a schedule spans, shared between the scheduler, which reads
/// it at every step, and the loop that fixes it after the first epoch; 0
/// until fixed, and then the scheduler spans all the planned epochs.
#[derive(Debug, Clone, Default)]
pub struct Horizon(Arc<AtomicUsize>);

impl Horizon {
    /// The epochs fixed, or `planned` while none are.
    pub fn epochs(&self, planned: usize) -> usize {
        match self.0.load(Ordering::Relaxed) {
            0 => planned,
            fixed => fixed,
        }
    }

    /// The epochs fixed, if they are.
    pub fn fixed(&self) -> Option<usize> {
        Some(self.0.load(Ordering::Relaxed)).filter(|&epochs| epochs > 0)
    }

    pub fn fix(&self, epochs: usize) {
        self.0.store(epochs.max(1), Ordering::Relaxed);
    }
}

/// `schedule` from `lr`, counting steps.
#[derive(Debug, Clone)]
pub struct Scheduler {
    schedule: LrSchedule,
    lr: f64,
    steps_per_epoch: usize,
    /// The planned epochs, unless the horizon fixes fewer (the cosine
    /// reaches zero at their end).
    epochs: usize,
    horizon: Horizon,
    /// Steps taken so far.
    step: usize,
}

impl Scheduler {
    pub fn new(
        schedule: LrSchedule,
        lr: f64,
        steps_per_epoch: usize,
        epochs: usize,
        horizon: Horizon,
    ) -> Self {
        Self {
            schedule,
            lr,
            steps_per_epoch,
            epochs,
            horizon,
            step: 0,
        }
    }
}

/// The rate of `schedule` at `step` (0-based) of a run that starts at `lr`,
/// with `steps_per_epoch` steps per epoch and `total` steps planned.
pub fn lr_at(
    schedule: LrSchedule,
    lr: f64,
    step: usize,
    steps_per_epoch: usize,
    total: usize,
) -> f64 {
    match schedule {
        LrSchedule::Constant => lr,
        LrSchedule::Cosine => {
            let done = step.min(total) as f64 / total.max(1) as f64;
            0.5 * lr * (1.0 + (std::f64::consts::PI * done).cos())
        }
        LrSchedule::Exponential(g) => lr * g.powf(step as f64 / steps_per_epoch.max(1) as f64),
        LrSchedule::Cooldown(fraction) => {
            // The cooldown's steps, at least one: the rate of step `s` is
            // lr × (total − s) / cooling once `s` is among the last `cooling`.
            let cooling = ((fraction * total as f64).round() as usize).clamp(1, total.max(1));
            let left = total.saturating_sub(step);
            lr * (left.min(cooling) as f64 / cooling as f64)
        }
    }
}

impl LrScheduler for Scheduler {
    type Record<B: Backend> = usize;

    fn step(&mut self) -> f64 {
        let lr = lr_at(
            self.schedule,
            self.lr,
            self.step,
            self.steps_per_epoch,
            self.steps_per_epoch * self.horizon.epochs(self.epochs),
        );
        self.step += 1;
        lr
    }

    fn to_record<B: Backend>(&self) -> usize {
        self.step
    }

    fn load_record<B: Backend>(mut self, step: usize) -> Self {
        self.step = step;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    type B = burn::backend::NdArray;

    #[test]
    fn cosine_falls_from_the_rate_to_zero_and_exponential_by_its_factor_per_epoch() {
        let lr = 0.002;
        let cosine = LrSchedule::Cosine;
        assert_eq!(lr_at(cosine, lr, 0, 10, 100), lr);
        assert!((lr_at(cosine, lr, 50, 10, 100) - lr / 2.0).abs() < 1e-12);
        assert!(lr_at(cosine, lr, 99, 10, 100) < lr * 1e-3);
        let exp = LrSchedule::Exponential(0.5);
        assert!((lr_at(exp, lr, 10, 10, 100) - lr / 2.0).abs() < 1e-12);
        assert!((lr_at(exp, lr, 25, 10, 100) - lr / 2f64.powf(2.5)).abs() < 1e-12);
        assert_eq!(lr_at(LrSchedule::Constant, lr, 77, 10, 100), lr);
    }

    /// A cooldown of a quarter over 100 steps: the full rate for 75 steps,
    /// then a quarter less every 25/4 steps, down to zero at the end.
    #[test]
    fn a_cooldown_holds_the_rate_then_falls_in_a_line_to_zero() {
        let lr = 0.002;
        let cooldown = LrSchedule::Cooldown(0.25);
        let at = |step| lr_at(cooldown, lr, step, 10, 100);
        assert_eq!(at(0), lr);
        assert_eq!(at(75), lr, "the last full-rate step");
        assert!((at(76) - lr * 24.0 / 25.0).abs() < 1e-15);
        assert!((at(90) - lr * 10.0 / 25.0).abs() < 1e-15);
        assert!((at(99) - lr / 25.0).abs() < 1e-15);
        assert_eq!(at(100), 0.0);
        assert_eq!(at(150), 0.0, "past the end it stays at zero");
        let rates: Vec<f64> = (0..=100).map(at).collect();
        assert!(rates.windows(2).all(|w| w[1] <= w[0]), "never rises");
    }

    /// The steps follow the schedule's curve, and a scheduler restored from
    /// its record continues where the saved one was.
    #[test]
    fn steps_follow_the_curve_and_resume_where_they_were() {
        let mut scheduler = Scheduler::new(LrSchedule::Cosine, 0.01, 5, 4, Horizon::default());
        let first: Vec<f64> = (0..7).map(|_| scheduler.step()).collect();
        assert_eq!(first[0], 0.01);
        assert!(first.windows(2).all(|w| w[1] < w[0]), "{first:?}");
        let record = scheduler.to_record::<B>();
        let mut resumed = Scheduler::new(LrSchedule::Cosine, 0.01, 5, 4, Horizon::default())
            .load_record::<B>(record);
        for _ in 0..13 {
            assert_eq!(resumed.step(), scheduler.step());
        }
        assert!(
            scheduler.step() == 0.0,
            "past the planned steps the cosine stays at zero"
        );
    }

    /// A horizon fixed after the first epoch bends the rest of the curve:
    /// the steps already taken keep their rate, the cosine then reaches
    /// zero at the fixed epoch's end, not the planned one's.
    #[test]
    fn a_fixed_horizon_ends_the_cosine_there() {
        let horizon = Horizon::default();
        let mut scheduler = Scheduler::new(LrSchedule::Cosine, 0.01, 5, 10, horizon.clone());
        let planned: Vec<f64> = (0..5)
            .map(|step| lr_at(LrSchedule::Cosine, 0.01, step, 5, 50))
            .collect();
        let first: Vec<f64> = (0..5).map(|_| scheduler.step()).collect();
        assert_eq!(first, planned);
        assert_eq!(horizon.fixed(), None);
        horizon.fix(3);
        assert_eq!(horizon.epochs(10), 3);
        let rest: Vec<f64> = (0..10).map(|_| scheduler.step()).collect();
        assert_eq!(rest[0], lr_at(LrSchedule::Cosine, 0.01, 5, 5, 15));
        assert!(rest[9] < 0.01 * 0.02 && rest[9] > 0.0, "{rest:?}");
        assert_eq!(scheduler.step(), 0.0, "zero from the fixed horizon on");
    }
}
