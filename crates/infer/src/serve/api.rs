//! The endpoints: JSON in, JSON out (and server-sent events for a streamed
//! generation). Every handler only checks the request and waits on a model's
//! queue; the models run on their own worker threads.

use super::State;
use super::error::ApiError;
use super::generation::{self, Event};
use super::models::{Handle, ModelInfo, Served};
use super::queue::Refused;
use crate::Sampling;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use axum::response::sse::{self, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures::Stream;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedReceiver;

type AppState = Extract<Arc<State>>;

/// The page: one self-contained file, compiled into the binary.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

/// 200 with `ready` while the server takes requests; 503 with `draining`
/// once it has been told to stop and is finishing what is in flight.
pub async fn health(Extract(state): AppState) -> Response {
    let models: Vec<&str> = state.models.keys().map(String::as_str).collect();
    if state.draining.load(Ordering::SeqCst) {
        let body = serde_json::json!({"status": "draining", "models": models});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    Json(serde_json::json!({"status": "ready", "models": models})).into_response()
}

pub async fn metrics(Extract(state): AppState) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}

#[derive(Serialize)]
pub struct ModelList {
    models: Vec<ModelInfo>,
}

pub async fn list_models(Extract(state): AppState) -> Json<ModelList> {
    Json(ModelList {
        models: state.models.values().map(|m| m.info.clone()).collect(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    texts: Vec<String>,
}

#[derive(Serialize)]
pub struct ClassifyResponse {
    model: String,
    predictions: Vec<TextPrediction>,
}

#[derive(Serialize)]
pub struct TextPrediction {
    label: String,
    /// The probability of every class, by its label.
    probabilities: BTreeMap<String, f32>,
    /// The tokens the model read (after truncation to the model's maximum
    /// length) and the attention weight of each.
    attention: Vec<artifact::TokenWeight>,
}

pub async fn classify(
    Extract(state): AppState,
    Path(name): Path<String>,
    body: Result<Json<ClassifyRequest>, JsonRejection>,
) -> Result<Json<ClassifyResponse>, ApiError> {
    let Json(request) = body?;
    let served = model(&state, &name)?;
    let Handle::Classifier(queue) = &served.handle else {
        return Err(wrong_endpoint(served, "classify"));
    };
    let limit = state.options.max_texts;
    if request.texts.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "texts: {} texts in one request; the limit is {limit} (--max-texts)",
                request.texts.len()
            ),
        ));
    }
    let answer = queue.submit(request.texts).map_err(|r| refused(r, &name))?;
    let predictions = match tokio::time::timeout(state.options.timeout, answer).await {
        Err(_) => return Err(timed_out(&state)),
        Ok(Err(_)) => return Err(stopped(&name)),
        Ok(Ok(Err(message))) => {
            return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message));
        }
        Ok(Ok(Ok(predictions))) => predictions,
    };
    Ok(Json(ClassifyResponse {
        model: name,
        predictions: predictions
            .into_iter()
            .map(|p| TextPrediction {
                label: p.label,
                probabilities: p.labels.into_iter().zip(p.probabilities).collect(),
                attention: p.attention,
            })
            .collect(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    prompt: String,
    /// 200 by default (or --max-chars when lower): well under a second on a CPU.
    max_chars: Option<usize>,
    /// As `infer generate --temperature`.
    #[serde(default = "default_temperature")]
    temperature: f32,
    /// 0 draws among every character.
    #[serde(default)]
    top_k: usize,
    /// Same seed, same text; without one the server draws a seed and says which.
    seed: Option<u64>,
    /// Server-sent events, one per character, instead of one JSON answer.
    #[serde(default)]
    stream: bool,
}

/// `infer generate`'s.
fn default_temperature() -> f32 {
    0.8
}

#[derive(Serialize)]
pub struct GenerateResponse {
    model: String,
    /// The prompt as the model read it (characters it never saw are skipped).
    prompt: String,
    /// The continuation, without the prompt.
    text: String,
    seed: u64,
    /// Characters of the prompt the model does not know, left out.
    skipped: Vec<char>,
}

pub async fn generate(
    Extract(state): AppState,
    Path(name): Path<String>,
    body: Result<Json<GenerateRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    let served = model(&state, &name)?;
    let Handle::LanguageModel { queue, vocab } = &served.handle else {
        return Err(wrong_endpoint(served, "generate"));
    };
    let limit = state.options.max_chars;
    let max_chars = request.max_chars.unwrap_or(limit.min(200));
    if max_chars == 0 || max_chars > limit {
        return Err(ApiError::bad_request(format!(
            "max_chars: {max_chars} is outside 1..={limit} (--max-chars)"
        )));
    }
    if !request.temperature.is_finite() || request.temperature < 0.0 {
        return Err(ApiError::bad_request(format!(
            "temperature: {} must be a finite number of at least 0",
            request.temperature
        )));
    }
    let (ids, skipped) = vocab.encode_lossy(&request.prompt);
    if ids.is_empty() {
        return Err(ApiError::bad_request(format!(
            "prompt: {:?} has no character the model knows (it knows {})",
            request.prompt,
            vocab.len()
        )));
    }
    let seed = request.seed.unwrap_or_else(rand::random);
    let prompt = vocab.decode(&ids);
    let events = queue
        .submit(generation::Request {
            prompt: ids,
            max_chars,
            sampling: Sampling {
                temperature: request.temperature,
                top_k: (request.top_k > 0).then_some(request.top_k),
            },
            seed,
            deadline: Instant::now() + state.options.timeout,
        })
        .map_err(|r| refused(r, &name))?;
    if request.stream {
        return Ok(Sse::new(event_stream(events))
            .keep_alive(sse::KeepAlive::default())
            .into_response());
    }
    let text = collect(events, &state, &name).await?;
    Ok(Json(GenerateResponse {
        model: name,
        prompt,
        text,
        seed,
        skipped,
    })
    .into_response())
}

/// The whole continuation of a generation that is not streamed.
async fn collect(
    mut events: UnboundedReceiver<Event>,
    state: &State,
    name: &str,
) -> Result<String, ApiError> {
    let mut text = String::new();
    loop {
        match events.recv().await {
            Some(Event::Char(c)) => text.push(c),
            Some(Event::Done) => return Ok(text),
            Some(Event::TimedOut) => return Err(timed_out(state)),
            Some(Event::Failed(message)) => {
                return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message));
            }
            None => return Err(stopped(name)),
        }
    }
}

/// Server-sent events: `token` with `{"text": c}` per character, then
/// `done` with the whole continuation, or `error` with a message.
fn event_stream(
    events: UnboundedReceiver<Event>,
) -> impl Stream<Item = Result<sse::Event, Infallible>> {
    let event = |name: &str, value: serde_json::Value| {
        sse::Event::default().event(name).data(value.to_string())
    };
    futures::stream::unfold(
        (events, String::new(), false),
        move |(mut events, mut text, ended)| async move {
            if ended {
                return None;
            }
            let error = |message: &str| event("error", serde_json::json!({ "message": message }));
            let (next, ended) = match events.recv().await {
                Some(Event::Char(c)) => {
                    text.push(c);
                    (event("token", serde_json::json!({ "text": c })), false)
                }
                Some(Event::Done) => (event("done", serde_json::json!({ "text": text })), true),
                Some(Event::TimedOut) => (
                    error("the generation ran past the request timeout (--timeout-ms)"),
                    true,
                ),
                Some(Event::Failed(message)) => (error(&message), true),
                None => (error("the model's worker stopped"), true),
            };
            Some((Ok(next), (events, text, ended)))
        },
    )
}

fn model<'a>(state: &'a State, name: &str) -> Result<&'a Served, ApiError> {
    state.models.get(name).ok_or_else(|| {
        let names: Vec<&str> = state.models.keys().map(String::as_str).collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no model named {name:?} (serving: {})", names.join(", ")),
        )
    })
}

fn wrong_endpoint(served: &Served, asked: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{} is a {}, which does not {asked}: POST {}",
        served.info.name, served.info.kind, served.info.endpoint
    ))
}

fn refused(refused: Refused, name: &str) -> ApiError {
    match refused {
        Refused::Full => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("model {name:?} has a full queue (--queue); retry later"),
        ),
        Refused::Stopped => stopped(name),
    }
}

fn stopped(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the worker of model {name:?} has stopped"),
    )
}

fn timed_out(state: &State) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!(
            "no answer within {} ms (--timeout-ms)",
            state.options.timeout.as_millis()
        ),
    )
}

pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint: GET /, /health, /metrics, /v1/models; POST /v1/models/NAME/classify or /generate",
    )
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed here: the /v1/models/NAME/… endpoints take POST, the others GET",
    )
}
