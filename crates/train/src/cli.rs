//! The argument groups that several commands share, so that an option has
//! one name, one meaning and one range check everywhere (the value parsers
//! themselves are `artifact::args`, shared with `infer`).
//!
//! The vocabulary: an input dataset is `--data-dir DIR` (a directory of
//! splits) or `--data FILE` (one file); every command that writes an
//! artifact writes it to `--artifact-dir`; `--json` is a switch that prints
//! JSON instead of text; `--log-every` counts batches; `--seed` seeds
//! everything random; `--limit` keeps the first N training examples.

use artifact::args::positive_usize;
use artifact::{LrSchedule, Select};
use clap::Args;

/// How a classifier run batches, seeds, selects and stops.
#[derive(Args, Debug, Clone)]
pub struct FitArgs {
    #[arg(long, default_value_t = 32, value_parser = positive_usize)]
    pub batch_size: usize,
    /// How the learning rate moves from --lr over the run: constant, cosine
    /// (down to zero at the last planned epoch, or the last one --minutes
    /// holds), exponential:G (times G per epoch) or cooldown:F (constant,
    /// then a line down to zero over the last fraction F of the run).
    #[arg(long, default_value = "constant", value_parser = LrSchedule::parse)]
    pub lr_schedule: LrSchedule,
    /// Seeds the weights, dropout and the shuffling: same seed, same result on ndarray.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Which epoch's weights the artifact keeps: the lowest validation loss,
    /// the highest validation accuracy, or the last epoch.
    #[arg(long, value_enum, default_value_t = Select::Accuracy)]
    pub select: Select,
    /// Early stopping: stop when the --select metric has not improved for
    /// this many epochs (0 = never; needs --select loss or accuracy).
    #[arg(long, default_value_t = 0)]
    pub patience: usize,
    /// Checkpoint averaging: keep the mean of the weights of this many
    /// epochs ending at the selected one (1 = that epoch's weights alone).
    #[arg(long, default_value_t = 1, value_parser = positive_usize)]
    pub average: usize,
    /// Without a terminal, print a progress line every this many batches.
    #[arg(long, default_value_t = 50, value_parser = positive_usize)]
    pub log_every: usize,
    /// Use the first N training examples only (for smoke tests).
    #[arg(long, value_parser = positive_usize)]
    pub limit: Option<usize>,
    /// Continue the interrupted run of the same command and options (killed,
    /// Ctrl-C) after its last completed epoch, to the artifact the
    /// uninterrupted run would have written.
    #[arg(long)]
    pub resume: bool,
}
