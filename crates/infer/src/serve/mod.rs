//! `infer serve`: trained artifacts behind HTTP, with axum on tokio.
//!
//! ```text
//! request ─▶ axum handler (checks the JSON) ─▶ the model's bounded queue ─▶ worker thread
//!                 ▲                                   (full: 429)            │ batch, forward
//!                 └──────────── answer (or 504 past --timeout-ms) ◀──────────┘
//! ```
//!
//! - [`models`]: the artifacts, each under a name, and what `/v1/models` says of them.
//! - [`queue`]: the bounded queue in front of every model's worker.
//! - [`batcher`]: a classifier's worker, with dynamic batching.
//! - [`generation`]: a language model's queue and worker, character by character.
//! - [`api`]: the endpoints and their JSON; [`error`]: every error as JSON.
//! - [`metrics`]: the Prometheus counters of `/metrics`.
//! - `page.html`: the web page at `/`, compiled into the binary.
//!
//! SIGTERM or Ctrl-C stops taking connections, lets the requests in flight
//! finish, and returns (the process exits 0).

mod api;
mod batcher;
mod error;
mod generation;
mod metrics;
mod models;
mod queue;

pub use batcher::BatchPolicy;
pub use models::ModelSource;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use metrics::Metrics;
use model::LstmBackend;
use models::Models;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Everything a server is told on its command line but the artifacts.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    /// 0 takes any free port; the address is printed either way.
    pub port: u16,
    pub batching: BatchPolicy,
    /// A request not answered by then gets 504 (a generation stops there).
    pub timeout: Duration,
    /// Bytes in a request body; more gets 413.
    pub body_limit: usize,
    /// Texts in one classify request; more gets 413.
    pub max_texts: usize,
    /// Characters one generate request may ask for.
    pub max_chars: usize,
}

/// What every handler sees.
pub struct State {
    models: Models,
    metrics: Arc<Metrics>,
    options: ServeOptions,
    /// Set by SIGTERM: `/health` says so while in-flight requests finish.
    draining: AtomicBool,
}

/// Loads every artifact, then serves until SIGTERM or Ctrl-C. The first
/// line on stdout is `listening on http://ADDRESS`.
pub fn serve<B: LstmBackend>(
    sources: &[ModelSource],
    options: ServeOptions,
    device: &B::Device,
) -> Result<()> {
    let metrics = Arc::new(Metrics::new());
    let models = models::load_all::<B>(sources, options.batching, &metrics, device)?;
    for model in models.values() {
        eprintln!(
            "serving {} ({}) at POST {}",
            model.info.name, model.info.kind, model.info.endpoint
        );
    }
    let state = Arc::new(State {
        models,
        metrics,
        options,
        draining: AtomicBool::new(false),
    });
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(state))
}

async fn run(state: Arc<State>) -> Result<()> {
    let address = (state.options.host.as_str(), state.options.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {}:{}", address.0, address.1))?;
    let local = listener.local_addr()?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{local}")?;
    stdout.flush()?;
    axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(stop_signal(state))
        .await
        .context("serving")?;
    eprintln!("stopped: every request in flight was answered");
    Ok(())
}

fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/", get(api::page))
        .route("/health", get(api::health))
        .route("/metrics", get(api::metrics))
        .route("/v1/models", get(api::list_models))
        .route("/v1/models/{name}/classify", post(api::classify))
        .route("/v1/models/{name}/generate", post(api::generate))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.options.body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

/// Counts every request by its route's template (so that model names and
/// unknown paths do not make a metric per URL), with its status and latency.
async fn count(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    request: Request,
    next: Next,
) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [endpoint.as_str(), status.as_str()];
    state.metrics.requests.with_label_values(&labels).inc();
    if response.status().as_u16() >= 400 {
        state.metrics.errors.with_label_values(&labels).inc();
    }
    state
        .metrics
        .latency
        .with_label_values(&[&endpoint])
        .observe(start.elapsed().as_secs_f64());
    response
}

/// Resolves on SIGTERM or Ctrl-C, after marking the server as draining.
async fn stop_signal(state: Arc<State>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    state.draining.store(true, Ordering::SeqCst);
    eprintln!("stopping: no new connections; finishing the requests in flight");
}
