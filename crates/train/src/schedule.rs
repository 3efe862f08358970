//! The learning rate of every step, as burn-train's Learner asks for it:
//! an [`LrSchedule`] (constant, cosine or exponential, from `--lr-schedule`)
//! over a run of known length. Its state is the step count, which the
//! checkpoints keep, so a resumed run continues the same curve.

use artifact::LrSchedule;
use burn::lr_scheduler::LrScheduler;
use burn::tensor::backend::Backend;

/// `schedule` from `lr`, counting steps.
#[derive(Debug, Clone)]
pub struct Scheduler {
    schedule: LrSchedule,
    lr: f64,
    steps_per_epoch: usize,
    /// The steps of all the planned epochs (the cosine reaches zero there).
    total: usize,
    /// Steps taken so far.
    step: usize,
}

impl Scheduler {
    pub fn new(schedule: LrSchedule, lr: f64, steps_per_epoch: usize, epochs: usize) -> Self {
        Self {
            schedule,
            lr,
            steps_per_epoch,
            total: steps_per_epoch * epochs,
            step: 0,
        }
    }
}

impl LrScheduler for Scheduler {
    type Record<B: Backend> = usize;

    fn step(&mut self) -> f64 {
        let lr = self
            .schedule
            .lr_at(self.lr, self.step, self.steps_per_epoch, self.total);
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

    /// The steps follow the schedule's curve, and a scheduler restored from
    /// its record continues where the saved one was.
    #[test]
    fn steps_follow_the_curve_and_resume_where_they_were() {
        let mut scheduler = Scheduler::new(LrSchedule::Cosine, 0.01, 5, 4);
        let first: Vec<f64> = (0..7).map(|_| scheduler.step()).collect();
        assert_eq!(first[0], 0.01);
        assert!(first.windows(2).all(|w| w[1] < w[0]), "{first:?}");
        let record = scheduler.to_record::<B>();
        let mut resumed = Scheduler::new(LrSchedule::Cosine, 0.01, 5, 4).load_record::<B>(record);
        for _ in 0..13 {
            assert_eq!(resumed.step(), scheduler.step());
        }
        assert!(
            scheduler.step() == 0.0,
            "past the planned steps the cosine stays at zero"
        );
    }
}
