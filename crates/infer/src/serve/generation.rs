//! Text generation behind HTTP: one worker thread per language model runs
//! one generation at a time, handing out each character as it is drawn.
//!
//! Like the classifiers', requests wait in a bounded queue
//! ([`super::queue`]). A generation stops early when its reader has gone (the
//! client closed the stream, or its handler timed out) or when its deadline
//! passes, so an abandoned request never holds the worker.

use super::batcher::panic_text;
use super::metrics::Metrics;
use super::queue::{self, Refused, Waiting};
use crate::{Generator, Sampling};
use model::LstmBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::time::Instant;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// One generation to run.
pub struct Request {
    /// The prompt's character ids (not empty).
    pub prompt: Vec<u32>,
    pub max_chars: usize,
    pub sampling: Sampling,
    pub seed: u64,
    /// Past this instant the generation stops with [`Event::TimedOut`].
    pub deadline: Instant,
}

/// What a generation hands out, in order: characters, then one of the others.
#[derive(Debug)]
pub enum Event {
    Char(char),
    Done,
    TimedOut,
    Failed(String),
}

struct Job {
    request: Request,
    events: UnboundedSender<Event>,
}

/// The sending side of one language model's queue.
pub struct GenerationQueue {
    sender: queue::Sender<Job>,
}

impl GenerationQueue {
    /// Starts the worker thread that owns `generator`.
    pub fn start<B: LstmBackend>(
        name: &str,
        generator: Generator<B>,
        capacity: usize,
        metrics: &Metrics,
    ) -> std::io::Result<Self> {
        let depth = metrics.queue_depth.with_label_values(&[name]);
        let (sender, waiting) = queue::bounded(capacity, depth);
        std::thread::Builder::new()
            .name(format!("generate-{name}"))
            .spawn(move || run(generator, waiting))?;
        Ok(Self { sender })
    }

    /// Queues a generation; the receiver gets its events as they happen.
    pub fn submit(&self, request: Request) -> Result<UnboundedReceiver<Event>, Refused> {
        let (events, receiver) = unbounded_channel();
        self.sender.push(Job { request, events })?;
        Ok(receiver)
    }
}

fn run<B: LstmBackend>(generator: Generator<B>, queue: Waiting<Job>) {
    while let Some(Job { request, events }) = queue.next() {
        if events.is_closed() {
            continue;
        }
        let mut timed_out = false;
        let mut rng = ChaCha8Rng::seed_from_u64(request.seed);
        let generated = std::panic::catch_unwind(AssertUnwindSafe(|| {
            generator.generate(
                &request.prompt,
                request.max_chars,
                request.sampling,
                &mut rng,
                |c| {
                    if Instant::now() > request.deadline {
                        timed_out = true;
                        return ControlFlow::Break(());
                    }
                    match events.send(Event::Char(c)) {
                        Ok(()) => ControlFlow::Continue(()),
                        // The reader has gone: stop drawing for nobody.
                        Err(_) => ControlFlow::Break(()),
                    }
                },
            )
        }));
        let last = match generated {
            Ok(Ok(_)) if timed_out => Event::TimedOut,
            Ok(Ok(_)) => Event::Done,
            Ok(Err(err)) => Event::Failed(format!("{err:#}")),
            Err(panic) => Event::Failed(format!("the model failed: {}", panic_text(&*panic))),
        };
        let _ = events.send(last);
    }
}
