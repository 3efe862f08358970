//! The web page in a real browser: headless Chromium loads `/` from a
//! running `infer serve`, submits a sentence through the page's form, and
//! the rendered DOM must show the label and every token shaded by its
//! attention weight; for a language model, the streamed continuation.
//!
//! Without Chromium the test says SKIPPED and passes, except under CI
//! (`CI` set), where `.ci/run` installs Debian's `chromium` and a missing
//! browser is a failure.

mod common;

use common::{Server, make_artifact, make_lm_artifact};
use std::path::PathBuf;
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

#[test]
fn the_page_shows_the_label_and_the_attention_of_each_token() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no Chromium under CI: install Debian's `chromium` (.ci/run does)"
        );
        eprintln!("SKIPPED: no chromium on PATH (apt-get install chromium, or set CHROMIUM)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mr");
    make_artifact(&dir);
    let lm = tmp.path().join("lm");
    make_lm_artifact(&lm);
    let server = Server::start(&[&dir, &lm], &[]);

    // The query fills the form and submits it, as a person would.
    let profile = tmp.path().join("chromium-profile");
    let render = |query: &str| {
        let output = Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                // Virtual time stands still while a fetch is pending, so the
                // DOM is dumped after the answer has been rendered.
                "--virtual-time-budget=15000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(server.url(&format!("/?{query}")))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let dom = render("model=mr&text=Charming%20and%20hilarious!");
    // The page asks for 300 characters and shows them after the prompt.
    let generated = render("model=lm&prompt=ab");
    drop(server);

    let label = between(&dom, "<span id=\"label\">", "</span>");
    assert!(
        label == "neg" || label == "pos",
        "label {label:?} in\n{dom}"
    );
    // Each token: <span class="token" title=… data-weight="0.2500" style="background-color: rgba(255, 140, 0, a);">token</span>
    let tokens: Vec<(String, f64, f64)> = dom
        .split("<span class=\"token\"")
        .skip(1)
        .map(|rest| {
            // This span only (the page's script, further on, spells the style too).
            let span = &rest[..rest.find("</span>").unwrap() + "</span>".len()];
            let weight: f64 = between(span, "data-weight=\"", "\"").parse().unwrap();
            let shade = between(span, "rgba(255, 140, 0, ", ")");
            // Chromium writes an alpha of 1 as plain rgb().
            let alpha = if shade.is_empty() {
                1.0
            } else {
                shade.parse().unwrap()
            };
            (between(span, ">", "</span>").to_string(), weight, alpha)
        })
        .collect();
    let words: Vec<&str> = tokens.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(words, ["Charming", "and", "hilarious", "!"], "{dom}");
    let total: f64 = tokens.iter().map(|(_, w, _)| w).sum();
    assert!((total - 1.0).abs() < 1e-3, "weights sum to {total}");
    let top = tokens.iter().map(|(_, w, _)| *w).fold(0.0, f64::max);
    for (token, weight, alpha) in &tokens {
        assert!(
            // Chromium keeps an alpha in 1/255 steps; the weights are shown to 4 places.
            (alpha - weight / top).abs() < 6e-3,
            "{token}: shade {alpha}, weight {weight} of {top}"
        );
    }

    let continuation = between(
        &generated,
        "<span class=\"prompt\">ab</span><span>",
        "</span>",
    );
    assert_eq!(continuation.chars().count(), 300, "{generated}");
    assert!(
        continuation.chars().all(|c| "abc .\n".contains(c)),
        "{continuation:?}"
    );
}

/// The text between the first `start` and the `end` after it ("" if absent).
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    text.split_once(start)
        .and_then(|(_, rest)| rest.split_once(end))
        .map_or("", |(inside, _)| inside)
}
