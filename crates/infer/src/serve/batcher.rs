//! Dynamic batching: requests that reach a classifier within a few
//! milliseconds of each other run through the model as one batch.
//!
//! Each classifier has one worker thread, the only one that touches its
//! model (the async executor never runs a forward pass). Requests wait in a
//! bounded queue ([`super::queue`]). The worker takes the first waiting request, then
//! keeps taking more until the batch holds `max_batch` texts or `max_wait`
//! has passed since the first, runs them together and hands each request
//! its own rows. With no wait (the default) a batch is what queued while
//! the previous one ran: a lone request goes straight through, and under
//! load batches grow with the queue. The model masks padding, so a text's answer does not depend
//! on the texts it was batched with.

use super::metrics::Metrics;
use super::queue::{self, Refused, Waiting};
use artifact::{Classifier, Prediction};
use model::LstmBackend;
use prometheus::Histogram;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// When a batch is closed.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    /// At most this many texts go through the model at once.
    pub max_batch: usize,
    /// How long the first request of a batch waits for others to join it.
    pub max_wait: Duration,
    /// Requests that may wait for the worker; one more is refused.
    pub queue: usize,
}

/// The answer to one request: a prediction per text, or why there is none.
pub type Answer = Result<Vec<Prediction>, String>;

struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Answer>,
}

/// The sending side of one classifier's queue.
pub struct BatchQueue {
    sender: queue::Sender<Job>,
}

impl BatchQueue {
    /// Starts the worker thread that owns `classifier`.
    pub fn start<B: LstmBackend>(
        name: &str,
        classifier: Classifier<B>,
        policy: BatchPolicy,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let depth = metrics.queue_depth.with_label_values(&[name]);
        let (sender, waiting) = queue::bounded(policy.queue, depth);
        let worker = Worker {
            classifier,
            policy,
            batch_texts: metrics.batch_texts.with_label_values(&[name]),
            batch_requests: metrics.batch_requests.with_label_values(&[name]),
        };
        std::thread::Builder::new()
            .name(format!("classify-{name}"))
            .spawn(move || worker.run(waiting))?;
        Ok(Self { sender })
    }

    /// Queues `texts`; the receiver gets their predictions, in order.
    pub fn submit(&self, texts: Vec<String>) -> Result<oneshot::Receiver<Answer>, Refused> {
        let (reply, answer) = oneshot::channel();
        self.sender.push(Job { texts, reply })?;
        Ok(answer)
    }
}

struct Worker<B: LstmBackend> {
    classifier: Classifier<B>,
    policy: BatchPolicy,
    /// This model's series of the batch histograms, looked up once.
    batch_texts: Histogram,
    batch_requests: Histogram,
}

impl<B: LstmBackend> Worker<B> {
    /// Runs batches until every sender is gone (the server has stopped).
    fn run(self, queue: Waiting<Job>) {
        while let Some(first) = queue.next() {
            let jobs = self.gather(first, &queue);
            // A request whose handler gave up (timeout, client gone) is not
            // worth a forward pass.
            let jobs: Vec<Job> = jobs.into_iter().filter(|j| !j.reply.is_closed()).collect();
            if jobs.is_empty() {
                continue;
            }
            self.answer(jobs);
        }
    }

    /// `first` and the requests that join it before the batch is closed.
    fn gather(&self, first: Job, queue: &Waiting<Job>) -> Vec<Job> {
        let deadline = Instant::now() + self.policy.max_wait;
        let mut texts = first.texts.len();
        let mut jobs = vec![first];
        while texts < self.policy.max_batch {
            let Some(job) = queue.next_before(deadline) else {
                break;
            };
            texts += job.texts.len();
            jobs.push(job);
        }
        jobs
    }

    /// One forward pass (in chunks of `max_batch` texts when a single
    /// request is larger), each request answered with its own rows.
    fn answer(&self, jobs: Vec<Job>) {
        let texts: Vec<&str> = jobs
            .iter()
            .flat_map(|job| job.texts.iter().map(String::as_str))
            .collect();
        self.batch_texts.observe(texts.len() as f64);
        self.batch_requests.observe(jobs.len() as f64);
        // A panic inside the model answers this batch with an error and
        // leaves the worker serving the next one.
        let predicted = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.classifier.predict(&texts, self.policy.max_batch)
        }));
        match predicted {
            Ok(Ok(predictions)) => {
                let mut rows = predictions.into_iter();
                for job in jobs {
                    let mine = rows.by_ref().take(job.texts.len()).collect();
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Ok(Err(err)) => reply_all(jobs, &format!("{err:#}")),
            Err(panic) => reply_all(jobs, &format!("the model failed: {}", panic_text(&*panic))),
        }
    }
}

fn reply_all(jobs: Vec<Job>, message: &str) {
    for job in jobs {
        let _ = job.reply.send(Err(message.to_string()));
    }
}

/// A panic's message, when it has one.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}
