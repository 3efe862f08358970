//! What `GET /metrics` reports, in Prometheus' text format: requests and
//! errors by endpoint and status, request latency, the size of every batch
//! the models ran, and how many requests wait in each model's queue.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Every answered request, by route template and status code.
    pub requests: IntCounterVec,
    /// The requests answered with a status of 400 or above.
    pub errors: IntCounterVec,
    /// Seconds from the request's arrival to its response's headers (for a
    /// stream, to its first byte).
    pub latency: HistogramVec,
    /// Texts in each batch a classifier ran.
    pub batch_texts: HistogramVec,
    /// Requests in each batch a classifier ran.
    pub batch_requests: HistogramVec,
    /// Requests accepted but not yet taken by their model's worker.
    pub queue_depth: IntGaugeVec,
}

/// Powers of two up to the largest batch a server would run.
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// From a tenth of a millisecond (a batch-1 prediction of a small model) to
/// ten seconds (the default timeout).
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("infer_requests_total", "HTTP requests answered"),
            &["endpoint", "status"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "infer_errors_total",
                "HTTP requests answered with an error status",
            ),
            &["endpoint", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "infer_request_duration_seconds",
                "Time from a request's arrival to its response",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["endpoint"],
        )
        .expect("valid metric");
        let batch_texts = HistogramVec::new(
            HistogramOpts::new("infer_batch_texts", "Texts in each batch a model ran")
                .buckets(BATCH_BUCKETS.to_vec()),
            &["model"],
        )
        .expect("valid metric");
        let batch_requests = HistogramVec::new(
            HistogramOpts::new(
                "infer_batch_requests",
                "Requests joined into each batch a model ran",
            )
            .buckets(BATCH_BUCKETS.to_vec()),
            &["model"],
        )
        .expect("valid metric");
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "infer_queue_depth",
                "Requests waiting for their model's worker",
            ),
            &["model"],
        )
        .expect("valid metric");
        for metric in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(latency.clone()),
            Box::new(batch_texts.clone()),
            Box::new(batch_requests.clone()),
            Box::new(queue_depth.clone()),
        ] {
            registry
                .register(metric)
                .expect("metric names are distinct");
        }
        Self {
            registry,
            requests,
            errors,
            latency,
            batch_texts,
            batch_requests,
            queue_depth,
        }
    }

    /// Every metric in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("writing to a Vec cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
