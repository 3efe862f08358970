//! `infer serve` over real HTTP: every endpoint, dynamic batching that does
//! not change an answer, the limits (413, 429, 504), JSON errors, and a
//! SIGTERM that lets the requests in flight finish.

mod common;

use common::{Server, make_artifact, make_lm_artifact};
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn post(server: &Server, path: &str, body: Value) -> (StatusCode, Value) {
    let response = client().post(server.url(path)).json(&body).send().unwrap();
    json_of(response)
}

fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text:?}"));
    (status, value)
}

/// An error answer: the status, and a JSON body whose message holds `expected`.
fn assert_error(answer: (StatusCode, Value), status: StatusCode, expected: &str) {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["status"], status.as_u16(), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(expected),
        "{expected:?} not in {message:?}"
    );
}

/// Server-sent events of a response read to its end: (event, data) pairs.
fn events(mut response: Response) -> Vec<(String, Value)> {
    let mut text = String::new();
    response.read_to_string(&mut text).unwrap();
    parse_events(&text)
}

fn parse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = Some(n.trim().to_string());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str(d.trim()).unwrap());
                }
            }
            Some((name?, data?))
        })
        .collect()
}

fn metric(metrics: &str, line_start: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(line_start))
        .unwrap_or_else(|| panic!("no {line_start} in\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

fn artifacts(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (mr, lm) = (tmp.join("mr"), tmp.join("lm"));
    make_artifact(&mr);
    make_lm_artifact(&lm);
    (mr, lm)
}

#[test]
fn serves_predictions_generations_models_health_metrics_and_the_page() {
    let tmp = tempfile::tempdir().unwrap();
    let (mr, lm) = artifacts(tmp.path());
    let server = Server::start(&[&mr, &lm], &[]);
    let http = client();

    let (status, health) = json_of(http.get(server.url("/health")).send().unwrap());
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ready");

    let (_, list) = json_of(http.get(server.url("/v1/models")).send().unwrap());
    let models = list["models"].as_array().unwrap();
    assert_eq!(models.len(), 2, "{list}");
    let classifier = models.iter().find(|m| m["name"] == "mr").unwrap();
    assert_eq!(classifier["kind"], "classifier");
    assert_eq!(classifier["labels"], json!(["neg", "pos"]));
    assert_eq!(classifier["config"]["max_seq_len"], 16);
    assert_eq!(classifier["metrics"]["test_accuracy"], 0.5);
    let language_model = models.iter().find(|m| m["name"] == "lm").unwrap();
    assert_eq!(language_model["kind"], "language-model");
    assert_eq!(language_model["endpoint"], "/v1/models/lm/generate");

    // The same numbers as the command line's --json.
    let texts = ["Charming and hilarious!", "", "a good film"];
    let (status, answer) = post(&server, "/v1/models/mr/classify", json!({ "texts": texts }));
    assert_eq!(status, StatusCode::OK, "{answer}");
    let predictions = answer["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 3);
    let cli = Command::new(env!("CARGO_BIN_EXE_infer"))
        .arg("--artifact-dir")
        .arg(&mr)
        .arg("--json")
        .args(texts)
        .output()
        .unwrap();
    assert!(cli.status.success());
    let cli: Vec<Value> = String::from_utf8(cli.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (served, cli) in predictions.iter().zip(&cli) {
        assert_eq!(served["label"], cli["label"]);
        for (i, label) in ["neg", "pos"].iter().enumerate() {
            let (a, b) = (
                served["probabilities"][label].as_f64().unwrap(),
                cli["probabilities"][i].as_f64().unwrap(),
            );
            assert!((a - b).abs() < 1e-6, "{label}: {a} vs {b}");
        }
        assert_eq!(served["attention"], cli["attention"]);
    }
    let tokens: Vec<&str> = predictions[0]["attention"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, ["Charming", "and", "hilarious", "!"]);

    // Longer than the model's 16 tokens: cut as the CLI cuts it.
    let long = vec!["good"; 40].join(" ");
    let (_, answer) = post(
        &server,
        "/v1/models/mr/classify",
        json!({ "texts": [long] }),
    );
    assert_eq!(
        answer["predictions"][0]["attention"]
            .as_array()
            .unwrap()
            .len(),
        16
    );

    // Generation: the seed decides the text, and it is the command line's text.
    let request = json!({"prompt": "ab", "max_chars": 60, "temperature": 1.0, "seed": 7});
    let (status, first) = post(&server, "/v1/models/lm/generate", request.clone());
    assert_eq!(status, StatusCode::OK, "{first}");
    let text = first["text"].as_str().unwrap();
    assert_eq!(text.chars().count(), 60);
    assert_eq!(first["seed"], 7);
    let (_, again) = post(&server, "/v1/models/lm/generate", request.clone());
    assert_eq!(again["text"], text);
    let cli = Command::new(env!("CARGO_BIN_EXE_infer"))
        .args([
            "generate",
            "--prompt",
            "ab",
            "--length",
            "60",
            "--temperature",
            "1",
        ])
        .args(["--seed", "7", "--artifact-dir"])
        .arg(&lm)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(cli.stdout).unwrap(),
        format!("ab{text}\n")
    );

    // Streamed: one event per character, then the whole text.
    let mut streamed = request.clone();
    streamed["stream"] = true.into();
    let response = http
        .post(server.url("/v1/models/lm/generate"))
        .json(&streamed)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = events(response);
    let (last, tokens) = events.split_last().unwrap();
    assert_eq!(last.0, "done");
    assert_eq!(last.1["text"], text);
    let joined: String = tokens
        .iter()
        .map(|(name, data)| {
            assert_eq!(name, "token");
            data["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(joined, text);

    let page = http.get(server.url("/")).send().unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().unwrap().contains("/v1/models"));

    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let classified = metric(
        &metrics,
        "infer_requests_total{endpoint=\"/v1/models/{name}/classify\",status=\"200\"}",
    );
    assert_eq!(classified, 2.0);
    assert_eq!(metric(&metrics, "infer_batch_texts_sum{model=\"mr\"}"), 4.0);
    assert_eq!(metric(&metrics, "infer_queue_depth{model=\"mr\"}"), 0.0);
    assert!(metrics.contains("infer_request_duration_seconds_bucket"));

    assert!(server.terminate().success());
}

#[test]
fn batched_answers_do_not_depend_on_their_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let (mr, _) = artifacts(tmp.path());
    // A long wait: requests sent together are sure to share a batch.
    let server = Server::start(&[&mr], &["--max-wait-ms", "400", "--max-batch", "64"]);
    let texts = [
        "a good film",
        "dull",
        "charming and hilarious , a good film with a bad and long plot",
        "unseen words only",
        "",
        "a bad film",
    ];
    let alone: Vec<Value> = texts
        .iter()
        .map(|t| post(&server, "/v1/models/mr/classify", json!({ "texts": [t] })).1)
        .collect();
    let together: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = texts
            .iter()
            .map(|t| {
                let server = &server;
                scope.spawn(move || {
                    post(server, "/v1/models/mr/classify", json!({ "texts": [t] })).1
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((text, a), b) in texts.iter().zip(&alone).zip(&together) {
        let (a, b) = (&a["predictions"][0], &b["predictions"][0]);
        assert_eq!(a["label"], b["label"], "{text:?}");
        for label in ["neg", "pos"] {
            let (p, q) = (
                a["probabilities"][label].as_f64().unwrap(),
                b["probabilities"][label].as_f64().unwrap(),
            );
            assert!(
                (p - q).abs() < 1e-5,
                "{text:?} {label}: {p} alone, {q} batched"
            );
        }
        let weights = |v: &Value| -> Vec<f64> {
            v["attention"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["weight"].as_f64().unwrap())
                .collect()
        };
        let (wa, wb) = (weights(a), weights(b));
        assert_eq!(wa.len(), wb.len());
        for (x, y) in wa.iter().zip(&wb) {
            assert!((x - y).abs() < 1e-5, "{text:?}: attention {wa:?} vs {wb:?}");
        }
    }
    // And they were batched: some batch held more than one request.
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let batches = metric(&metrics, "infer_batch_requests_count{model=\"mr\"}");
    let singles = metric(
        &metrics,
        "infer_batch_requests_bucket{model=\"mr\",le=\"1\"}",
    );
    assert!(
        singles < batches,
        "{singles} of {batches} batches held one request"
    );
    assert!(batches < (2 * texts.len()) as f64, "{batches} batches");
}

#[test]
fn bad_requests_get_json_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (mr, lm) = artifacts(tmp.path());
    let args = [
        "--body-limit",
        "2000",
        "--max-texts",
        "3",
        "--max-chars",
        "100",
    ];
    let server = Server::start(&[&mr, &lm], &args);
    let http = client();
    let raw = |path: &str, body: &str| {
        json_of(
            http.post(server.url(path))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .unwrap(),
        )
    };
    let classify = "/v1/models/mr/classify";
    let bad = StatusCode::BAD_REQUEST;
    assert_error(raw(classify, "{\"texts\": [\"a\""), bad, "EOF");
    assert_error(
        raw(classify, "{\"text\": [\"a\"]}"),
        bad,
        "unknown field `text`",
    );
    assert_error(raw(classify, "{\"texts\": \"a\"}"), bad, "invalid type");
    assert_error(raw(classify, "{}"), bad, "missing field `texts`");
    let plain = http.post(server.url(classify)).body("{}").send().unwrap();
    assert_error(
        json_of(plain),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Content-Type",
    );
    let huge = json!({ "texts": ["x".repeat(3000)] });
    assert_error(
        post(&server, classify, huge),
        StatusCode::PAYLOAD_TOO_LARGE,
        "",
    );
    let many = json!({ "texts": ["a", "b", "c", "d"] });
    assert_error(
        post(&server, classify, many),
        StatusCode::PAYLOAD_TOO_LARGE,
        "--max-texts",
    );
    let one = json!({ "texts": ["a"] });
    assert_error(
        post(&server, "/v1/models/nope/classify", one.clone()),
        StatusCode::NOT_FOUND,
        "nope",
    );
    assert_error(
        post(&server, "/v2/whatever", one.clone()),
        StatusCode::NOT_FOUND,
        "no such endpoint",
    );
    let get = json_of(http.get(server.url(classify)).send().unwrap());
    assert_error(get, StatusCode::METHOD_NOT_ALLOWED, "POST");
    assert_error(
        post(&server, "/v1/models/lm/classify", one),
        bad,
        "/v1/models/lm/generate",
    );

    let generate = "/v1/models/lm/generate";
    let prompt = |extra: Value| {
        let mut body = json!({ "prompt": "ab" });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        post(&server, generate, body)
    };
    assert_error(prompt(json!({"max_chars": 0})), bad, "max_chars");
    assert_error(prompt(json!({"max_chars": 101})), bad, "--max-chars");
    assert_error(prompt(json!({"temperature": -1.0})), bad, "temperature");
    assert_error(
        prompt(json!({"prompt": "zzz"})),
        bad,
        "no character the model knows",
    );
    assert_error(prompt(json!({"seed": -1})), bad, "seed");
    let (status, answer) = prompt(json!({"prompt": "azb", "max_chars": 3}));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["prompt"], "ab");
    assert_eq!(answer["skipped"], json!(["z"]));

    // Every error was counted.
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let errors: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("infer_errors_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(errors, 16.0, "{metrics}");
}

/// A streamed generation long enough to keep the worker busy for minutes,
/// once its first character has arrived.
fn busy(server: &Server, timeout: Duration) -> Response {
    let mut response = Client::builder()
        .timeout(timeout)
        .build()
        .unwrap()
        .post(server.url("/v1/models/lm/generate"))
        .json(&json!({"prompt": "ab", "max_chars": 1_000_000, "stream": true}))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut first = [0u8; 16];
    response.read_exact(&mut first).unwrap();
    assert!(first.starts_with(b"event: token"), "{first:?}");
    response
}

#[test]
fn a_full_queue_answers_429_and_a_slow_request_504() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, lm) = artifacts(tmp.path());
    let server = Server::start(&[&lm], &["--queue", "1", "--max-chars", "1000000"]);
    let running = busy(&server, Duration::from_secs(60));
    std::thread::scope(|scope| {
        // Waits in the queue behind the running generation...
        let queued = scope.spawn(|| {
            post(
                &server,
                "/v1/models/lm/generate",
                json!({"prompt": "a", "max_chars": 5}),
            )
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let metrics = client()
                .get(server.url("/metrics"))
                .send()
                .unwrap()
                .text()
                .unwrap();
            if metric(&metrics, "infer_queue_depth{model=\"lm\"}") == 1.0 {
                break;
            }
            assert!(Instant::now() < deadline, "the second request never queued");
            std::thread::sleep(Duration::from_millis(10));
        }
        // ...so a third finds the queue full.
        let third = post(&server, "/v1/models/lm/generate", json!({"prompt": "a"}));
        assert_error(third, StatusCode::TOO_MANY_REQUESTS, "full queue");
        // The reader of the running generation goes away: the worker stops
        // it and answers the queued request.
        drop(running);
        let (status, answer) = queued.join().unwrap();
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["text"].as_str().unwrap().chars().count(), 5);
    });

    let server = Server::start(&[&lm], &["--timeout-ms", "300", "--max-chars", "1000000"]);
    let start = Instant::now();
    let slow = post(
        &server,
        "/v1/models/lm/generate",
        json!({"prompt": "a", "max_chars": 1_000_000}),
    );
    assert_error(slow, StatusCode::GATEWAY_TIMEOUT, "--timeout-ms");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    // The worker has moved on: the next request is answered.
    let (status, _) = post(
        &server,
        "/v1/models/lm/generate",
        json!({"prompt": "a", "max_chars": 3}),
    );
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn sigterm_lets_requests_in_flight_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, lm) = artifacts(tmp.path());
    // Long enough (about a second) to be in flight when the signal comes.
    let server = Server::start(&[&lm], &["--max-chars", "20000"]);
    let mut response = client()
        .post(server.url("/v1/models/lm/generate"))
        .json(&json!({"prompt": "ab", "max_chars": 20000, "seed": 1, "stream": true}))
        .send()
        .unwrap();
    let mut first = [0u8; 16];
    response.read_exact(&mut first).unwrap();
    let pid = server.child.id().to_string();
    let terminated = std::thread::spawn(move || server.terminate());
    let mut rest = String::new();
    response.read_to_string(&mut rest).unwrap();
    let events = parse_events(&format!("{}{rest}", String::from_utf8_lossy(&first)));
    let (last, _) = events.split_last().unwrap();
    assert_eq!(
        last.0,
        "done",
        "pid {pid}: {:?}",
        &events[events.len().saturating_sub(3)..]
    );
    assert_eq!(last.1["text"].as_str().unwrap().chars().count(), 20000);
    assert!(terminated.join().unwrap().success());
}
