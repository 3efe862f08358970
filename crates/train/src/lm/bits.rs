//! Bits per character, the language model's usual unit: a burn-train metric.

use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry,
    SerializedEntry,
};

/// The input of [`BitsPerCharMetric`]: a batch's mean loss in nats and its
/// number of characters.
pub struct BitsInput {
    pub nats: f64,
    pub chars: usize,
}

/// Cross-entropy in bits per character: the loss (nats) divided by ln 2.
#[derive(Clone)]
pub struct BitsPerCharMetric {
    name: MetricName,
    state: NumericMetricState,
}

impl Default for BitsPerCharMetric {
    fn default() -> Self {
        Self {
            name: MetricName::new("BitsPerChar".to_string()),
            state: NumericMetricState::default(),
        }
    }
}

impl Metric for BitsPerCharMetric {
    type Input = BitsInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, input: &BitsInput, _metadata: &MetricMetadata) -> SerializedEntry {
        self.state.update(
            input.nats / std::f64::consts::LN_2,
            input.chars,
            FormatOptions::new(self.name()).precision(3),
        )
    }

    fn clear(&mut self) {
        self.state.reset()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: Some("bits".to_string()),
            higher_is_better: false,
        }
        .into()
    }
}

impl Numeric for BitsPerCharMetric {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        self.state.running_value()
    }
}
