//! `train compress` end to end: a small classifier trained for one short
//! epoch is quantized, pruned, shrunk and distilled; each compressed artifact loads
//! the way `infer` loads it and evaluates to the accuracy its metrics claim.

mod common;

use artifact::{Classifier, ClassifierMetrics};
use burn::backend::NdArray;
use common::{check, load, metrics, mr_dir, mr_split, train};
use model::{ParamCounts, Pooling};
use std::path::Path;

/// Loads `dir` as `infer` does and checks that its test accuracy and
/// parameter counts are the ones its metrics.json reports.
fn round_trip(dir: &Path) -> (Classifier<NdArray>, ClassifierMetrics) {
    let classifier = load(dir);
    let metrics = metrics(dir);
    let test = mr_split("test");
    let accuracy = classifier.evaluate(&test, 256).unwrap().accuracy;
    assert!(
        (accuracy - metrics.test_accuracy).abs() < 1e-9,
        "{}: evaluates to {accuracy}, metrics say {}",
        dir.display(),
        metrics.test_accuracy
    );
    let compression = metrics.compression.clone().expect("a compressed artifact");
    let counts = ParamCounts::of(classifier.model());
    assert_eq!(counts.total, compression.parameters);
    assert_eq!(counts.nonzero, compression.nonzero_parameters);
    (classifier, metrics)
}

#[test]
fn quantize_prune_and_distill_write_artifacts_that_infer_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let data = mr_dir();
    let data = data.to_str().unwrap();
    let teacher = tmp.path().join("teacher");
    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    check(&train(&[
        "--data-dir",
        data,
        "--artifact-dir",
        &path("teacher"),
        "--epochs",
        "1",
        "--limit",
        "640",
        "--d-embed",
        "32",
        "--d-hidden",
        "32",
    ]));
    let teacher_classifier = load(&teacher);
    assert_eq!(teacher_classifier.config.model.pooling(), Pooling::Concat);

    // int8: a quarter of the size, and nearly the same probabilities.
    check(&train(&[
        "compress",
        "quantize",
        "--from",
        &path("teacher"),
        "--to",
        &path("int8"),
        "--data-dir",
        data,
    ]));
    let (int8, _) = round_trip(&tmp.path().join("int8"));
    // It predicts through the int8 kernels (and its metrics were measured
    // through them: `round_trip` checked the accuracy).
    assert!(int8.runs_int8() && !teacher_classifier.runs_int8());
    let size = |dir: &str| {
        std::fs::metadata(tmp.path().join(dir).join("model.mpk"))
            .unwrap()
            .len()
    };
    assert!(
        (size("int8") as f64) < 0.3 * size("teacher") as f64,
        "int8 weights take {} bytes against {}",
        size("int8"),
        size("teacher")
    );
    let texts = ["a gorgeous , witty , seductive movie", "dull and lifeless"];
    let before = teacher_classifier.predict(&texts, 2).unwrap();
    let after = int8.predict(&texts, 2).unwrap();
    for (b, a) in before.iter().zip(&after) {
        let diff = (b.probabilities[0] - a.probabilities[0]).abs();
        assert!(diff < 0.02, "int8 moved a probability by {diff}");
    }

    // An int8 artifact is not compressed again.
    let again = train(&[
        "compress",
        "prune",
        "--from",
        &path("int8"),
        "--artifact-dir",
        &path("again"),
        "--data-dir",
        data,
    ]);
    assert_eq!(again.status.code(), Some(1));
    let message = String::from_utf8_lossy(&again.stderr);
    assert!(message.contains("holds int8 weights already"), "{message}");

    // Pruning to 50% in two rounds, each with two epochs of fine-tuning
    // taught by the unpruned model as well as the labels.
    check(&train(&[
        "compress",
        "prune",
        "--from",
        &path("teacher"),
        "--artifact-dir",
        &path("pruned"),
        "--data-dir",
        data,
        "--sparsity",
        "0.5",
        "--rounds",
        "2",
        "--epochs",
        "2",
        "--distill-alpha",
        "0.5",
        "--limit",
        "320",
    ]));
    let (_, pruned) = round_trip(&tmp.path().join("pruned"));
    // Both rounds trained: the second round's two epochs differ.
    let losses = &pruned.history.valid_loss;
    assert_eq!(losses.len(), 4, "{losses:?}");
    assert_ne!(losses[2], losses[3], "the second round did not train");
    let compression = pruned.compression.unwrap();
    let Some(artifact::CompressionSettings::Prune {
        weight_matrix_sparsity: matrix_sparsity,
        valid_accuracy_before_fine_tuning,
        distillation,
        ..
    }) = compression.settings
    else {
        panic!("pruning settings expected: {:?}", compression.settings);
    };
    assert_eq!(valid_accuracy_before_fine_tuning.len(), 2);
    assert_eq!(distillation, Some((4.0, 0.5)));
    assert!((matrix_sparsity - 0.5).abs() < 1e-3, "{matrix_sparsity}");
    // Biases are kept, so slightly under half of all parameters are zero.
    assert!(compression.sparsity > 0.45 && compression.sparsity < 0.5);

    // Structured pruning: half the embedding dimensions and half the
    // hidden units go, leaving a smaller dense model and a smaller file.
    check(&train(&[
        "compress",
        "shrink",
        "--from",
        &path("teacher"),
        "--artifact-dir",
        &path("shrunk"),
        "--data-dir",
        data,
        "--sparsity",
        "0.5",
        "--epochs",
        "1",
        "--limit",
        "320",
    ]));
    let (shrunk, metrics) = round_trip(&tmp.path().join("shrunk"));
    let model = &shrunk.config.model;
    assert_eq!((model.d_embed, model.d_hidden), (16, 16));
    let compression = metrics.compression.unwrap();
    assert_eq!(compression.nonzero_parameters, compression.parameters);
    let teacher_parameters = ParamCounts::of(teacher_classifier.model()).total;
    assert!(compression.parameters * 100 < teacher_parameters * 55);
    assert!(size("shrunk") * 100 < size("teacher") * 55);
    assert!(matches!(
        compression.settings,
        Some(artifact::CompressionSettings::Shrink {
            d_embed: (32, 16),
            d_hidden: (32, 16),
            ..
        })
    ));

    // A distilled student, and the same student on the labels alone.
    for (name, alpha) in [("student", "0.7"), ("alone", "0")] {
        check(&train(&[
            "compress",
            "distill",
            "--from",
            &path("teacher"),
            "--artifact-dir",
            &path(name),
            "--data-dir",
            data,
            "--epochs",
            "1",
            "--limit",
            "320",
            "--d-embed",
            "8",
            "--d-hidden",
            "8",
            "--alpha",
            alpha,
        ]));
        let (_, student) = round_trip(&tmp.path().join(name));
        // The teacher's architecture, smaller: the default's concat pooling too.
        assert_eq!(
            load(&tmp.path().join(name)).config.model.pooling(),
            Pooling::Concat
        );
        let compression = student.compression.unwrap();
        assert!(compression.parameters < ParamCounts::of(teacher_classifier.model()).total / 4);
    }

    // The report moved to infer: the old command says where.
    let out = train(&["compress", "report", &path("teacher")]);
    assert_eq!(out.status.code(), Some(1));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("infer -- report"), "{message}");
}

#[test]
fn bad_compress_options_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing");
    let missing = missing.to_str().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "compress",
                "quantize",
                "--from",
                missing,
                "--artifact-dir",
                missing,
            ],
            "--artifact-dir must differ from --from",
        ),
        (
            &[
                "compress",
                "prune",
                "--from",
                missing,
                "--artifact-dir",
                "x",
                "--sparsity",
                "1.5",
            ],
            "'--sparsity <SPARSITY>': must be in [0, 1)",
        ),
        (
            &[
                "compress",
                "distill",
                "--from",
                missing,
                "--artifact-dir",
                "x",
            ],
            "does not exist",
        ),
    ];
    for (args, message) in cases {
        let out = train(args);
        // 1 for an error of the run, 2 for one of the command line (clap's).
        assert!(matches!(out.status.code(), Some(1 | 2)), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
