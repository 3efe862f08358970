//! The fundamentals through the `train` binary: the 2-3-1 network trained by
//! autodiff and by hand, and the adding problem.

mod common;

/// The stdout of a successful `train` run.
fn train(args: &[&str]) -> String {
    let out = common::train(args);
    common::check(&out);
    common::stdout(&out)
}

/// The lines that report results (not the header, which names the method).
fn results(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| {
            l.starts_with("epoch") || l.starts_with("training") || l.starts_with("prediction")
        })
        .collect()
}

/// Every number in the result lines, in order.
fn numbers(stdout: &str) -> Vec<f64> {
    results(stdout)
        .iter()
        .flat_map(|l| l.split(|c: char| !(c.is_ascii_digit() || c == '.')))
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[test]
fn mlp_by_hand_and_by_autodiff_print_the_same_numbers() {
    for activation in ["sigmoid", "relu"] {
        let common = [
            "mlp",
            "--epochs",
            "60",
            "--log-every",
            "20",
            "--lr",
            "0.5",
            "--activation",
            activation,
        ];
        let auto = train(&common);
        let manual = train(&[&common[..], &["--manual"]].concat());
        assert!(manual.contains("hand-written"), "{manual}");
        let (auto_numbers, manual_numbers) = (numbers(&auto), numbers(&manual));
        assert_eq!(auto_numbers.len(), manual_numbers.len());
        assert_eq!(results(&auto).len(), 5, "{auto}");
        for (a, m) in auto_numbers.iter().zip(&manual_numbers) {
            assert!(
                (a - m).abs() < 1e-3,
                "{activation}: autodiff\n{auto}\nby hand\n{manual}"
            );
        }
        // x1 + x2 = 1.2 > 1: a network that learned anything says class 1.
        assert!(
            auto.contains("prediction for (0.5, 0.7)") && auto.contains("(class 1)"),
            "{auto}"
        );
    }
}

#[test]
fn lstm_beats_the_baseline_on_a_short_adding_problem() {
    let stdout = train(&[
        "adding",
        "--encoder",
        "lstm",
        "--seq-len",
        "10",
        "--steps",
        "1000",
        "--d-hidden",
        "32",
        "--eval-every",
        "250",
        "--test-size",
        "500",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let mse = json["test_mse"].as_f64().unwrap();
    assert!(
        mse < 0.05,
        "test MSE {mse} after 1000 steps; predicting 1 gives 0.167\n{stdout}"
    );
}

/// Nearly untrained, attention is nearly uniform, so the weight on the two
/// marked steps of 12 is about 2/12 (reading the values' channel instead of
/// the markers' would give about 1/2).
#[test]
fn adding_reports_the_attention_on_the_marked_steps() {
    let stdout = train(&[
        "adding",
        "--encoder",
        "lstm",
        "--attention",
        "--forget-bias",
        "0",
        "--seq-len",
        "12",
        "--steps",
        "1",
        "--lr",
        "1e-6",
        "--d-hidden",
        "8",
        "--test-size",
        "150",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let mass = json["attention_on_markers"].as_f64().unwrap();
    assert!((mass - 2.0 / 12.0).abs() < 0.03, "{mass}\n{stdout}");
    assert_eq!(json["forget_bias"].as_f64(), Some(0.0));
}

#[test]
fn adding_records_input_gradient_norms() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("g.csv");
    train(&[
        "adding",
        "--encoder",
        "rnn",
        "--seq-len",
        "12",
        "--steps",
        "2",
        "--d-hidden",
        "8",
        "--test-size",
        "20",
        "--grad-norms",
        csv.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "model,seq_len,phase,distance_from_end,grad_norm");
    assert_eq!(lines.len(), 1 + 2 * 12, "init and trained, 12 steps each");
    assert!(lines[1].starts_with("rnn,12,init,11,"));
    let norm: f64 = lines[12].rsplit(',').next().unwrap().parse().unwrap();
    assert!(norm > 0.0, "the last step's input must reach the loss");
}

#[test]
fn a_forget_bias_for_another_cell_is_an_error() {
    let out = common::train(&["adding", "--encoder", "gru", "--forget-bias", "0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = common::stderr(&out);
    assert!(
        err.contains("--forget-bias") && err.contains("lstm"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
