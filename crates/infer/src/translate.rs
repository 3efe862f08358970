//! `infer translate`: sentences in, translations out, through
//! [`artifact::TranslationModel`] (the search is `model::translate`).
//! `--json` adds the pieces, the score and the attention matrix; `--plot`
//! draws that matrix as the alignment picture of Bahdanau et al. (2015),
//! figure 3; `--eval` scores a `source<TAB>target` file with BLEU and chrF
//! as sacreBLEU does.

use anyhow::{Context, Result, bail};
use artifact::args::{non_negative_f64, positive_usize};
use artifact::bleu::{Bleu, corpus_bleu};
use artifact::chrf::{CHRF_SIGNATURE, corpus_chrf};
use artifact::{Translation, TranslationModel};
use clap::Args;
use model::{LstmBackend, Seq2SeqModel};
use plotters::prelude::*;
use serde::Serialize;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct TranslateArgs {
    /// Sentences to translate. Without any (and without --eval), one sentence per line is read from stdin.
    pub texts: Vec<String>,
    /// The artifact directory written by `train translate`.
    #[arg(long, default_value = "artifacts/gettext-en-fr")]
    pub artifact_dir: PathBuf,
    /// Beam width; 1 is greedy search (at most 256).
    #[arg(long, default_value_t = 5, value_parser = beam_width)]
    pub beam: usize,
    /// Length normalization: hypotheses are ranked by log-probability / length^alpha (0 = none).
    #[arg(long, default_value_t = 1.0, value_parser = non_negative_f64)]
    pub alpha: f64,
    /// One JSON object per sentence: the translation, its pieces, its score
    /// and the attention matrix (target pieces × source pieces).
    #[arg(long)]
    pub json: bool,
    /// Draw the attention matrix of the (one) sentence as a PNG heatmap.
    #[arg(long, value_name = "FILE.png", conflicts_with = "eval")]
    pub plot: Option<PathBuf>,
    /// Translate the sources of a `source<TAB>target` file and score them
    /// against its targets: corpus BLEU and chrF, with their signatures.
    #[arg(long, value_name = "FILE", conflicts_with = "texts")]
    pub eval: Option<PathBuf>,
    /// Sentences searched at once.
    #[arg(long, default_value_t = 64, value_parser = positive_usize)]
    pub batch_size: usize,
}

/// A beam of 1 to 256: every step scores beam × vocabulary candidates per
/// sentence, and beams much wider than 10 are known to lower BLEU, not
/// raise it (Koehn & Knowles 2017).
fn beam_width(s: &str) -> Result<usize, String> {
    let beam = positive_usize(s)?;
    if beam > MAX_BEAM {
        return Err(format!("at most {MAX_BEAM}, got {beam}"));
    }
    Ok(beam)
}

const MAX_BEAM: usize = 256;

/// What `--eval` reports.
#[derive(Debug, Serialize)]
pub struct TranslationEval {
    pub file: PathBuf,
    pub sentences: usize,
    pub bleu: f64,
    /// sacreBLEU's line: `BLEU = 31.20 60.1/37.2/25.3/17.9 (BP = …)`.
    pub bleu_summary: String,
    pub bleu_signature: String,
    pub chrf: f64,
    pub chrf_signature: String,
    pub beam: usize,
    pub alpha: f64,
    pub sentences_per_second: f64,
}

pub fn run<B: LstmBackend>(args: &TranslateArgs, device: &B::Device) -> Result<()> {
    let model = TranslationModel::<B>::load(&args.artifact_dir, device)?;
    let search = model.search(args.beam, args.alpha);
    let mut out = std::io::stdout().lock();

    if let Some(path) = &args.eval {
        let pairs = data::read_pairs(path)?;
        let sources: Vec<&str> = pairs.iter().map(|p| p.source.as_str()).collect();
        let started = Instant::now();
        let translations = model.translate(&sources, &search, args.batch_size, device)?;
        let seconds = started.elapsed().as_secs_f64();
        let hypotheses: Vec<&str> = translations
            .iter()
            .map(|t| t.translation.as_str())
            .collect();
        let references: Vec<&str> = pairs.iter().map(|p| p.target.as_str()).collect();
        let bleu = corpus_bleu(&hypotheses, &references);
        let eval = TranslationEval {
            file: path.clone(),
            sentences: pairs.len(),
            bleu: bleu.score,
            bleu_summary: bleu.summary(),
            bleu_signature: Bleu::SIGNATURE.to_string(),
            chrf: corpus_chrf(&hypotheses, &references),
            chrf_signature: CHRF_SIGNATURE.to_string(),
            beam: args.beam,
            alpha: args.alpha,
            sentences_per_second: pairs.len() as f64 / seconds,
        };
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&eval)?)?;
        } else {
            writeln!(
                out,
                "{} sentences of {}, beam {} (alpha {}): {:.0} sentences/s",
                eval.sentences,
                path.display(),
                eval.beam,
                eval.alpha,
                eval.sentences_per_second
            )?;
            writeln!(out, "{}", eval.bleu_summary)?;
            writeln!(out, "BLEU signature: {}", eval.bleu_signature)?;
            writeln!(out, "chrF2 = {:.2}", eval.chrf)?;
            writeln!(out, "chrF signature: {}", eval.chrf_signature)?;
        }
        return Ok(());
    }

    let mut emit = |translation: &Translation| -> Result<()> {
        if args.json {
            writeln!(out, "{}", serde_json::to_string(translation)?)?;
        } else {
            writeln!(out, "{}", translation.translation)?;
        }
        out.flush()?;
        Ok(())
    };
    if let Some(png) = &args.plot {
        if args.texts.len() != 1 {
            bail!(
                "--plot draws the alignment of one sentence: give exactly one sentence (got {})",
                args.texts.len()
            );
        }
        match &model.model {
            Seq2SeqModel::Transformer(_) => bail!(
                "{} is a Transformer: its layers and heads each attend their own way, so there is no one alignment to plot",
                args.artifact_dir.display()
            ),
            Seq2SeqModel::Lstm(_) if model.model.attention_kind().is_none() => bail!(
                "{} has no attention (trained with --no-attention): there is no alignment to plot",
                args.artifact_dir.display()
            ),
            Seq2SeqModel::Lstm(_) => {}
        }
        let translation = model
            .translate(&[args.texts[0].as_str()], &search, 1, device)?
            .remove(0);
        if translation.source_tokens.is_empty() {
            bail!("--plot: the sentence is empty, so there is no alignment to plot");
        }
        plot_alignment(png, &translation)?;
        emit(&translation)?;
        eprintln!("alignment written to {}", png.display());
        return Ok(());
    }
    if !args.texts.is_empty() {
        let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
        for chunk in texts.chunks(args.batch_size) {
            for translation in model.translate(chunk, &search, args.batch_size, device)? {
                emit(&translation)?;
            }
        }
        return Ok(());
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("reading sentences from stdin, one per line (Ctrl-D to end)");
    }
    let mut lines = stdin.lock().lines();
    loop {
        let batch = lines
            .by_ref()
            .take(args.batch_size)
            .collect::<Result<Vec<_>, _>>()
            .context("reading stdin")?;
        if batch.is_empty() {
            return Ok(());
        }
        let texts: Vec<&str> = batch.iter().map(String::as_str).collect();
        for translation in model.translate(&texts, &search, args.batch_size, device)? {
            emit(&translation)?;
        }
    }
}

/// The system font the picture's labels are drawn in (plotters' ab_glyph
/// backend needs a TrueType file; no C library).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Draws `translation.attention` (target pieces down, source pieces across,
/// as Bahdanau et al. draw it transposed) in grey levels: white is 0, black
/// is 1.
pub fn plot_alignment(png: &Path, translation: &Translation) -> Result<()> {
    let font = std::fs::read(FONT).with_context(|| {
        format!("the plot needs a font: {FONT} (apt-get install fonts-dejavu-core)")
    })?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| anyhow::anyhow!("{FONT} is not a usable font"))?;
    let rows = &translation.target_tokens;
    let columns = &translation.source_tokens;
    let cell = 36u32;
    let margin_left = 30 + 9 * rows.iter().map(|t| t.chars().count()).max().unwrap_or(1) as u32;
    let margin_top = 30 + 9 * columns.iter().map(|t| t.chars().count()).max().unwrap_or(1) as u32;
    let size = (
        margin_left + cell * columns.len() as u32 + 20,
        margin_top + cell * rows.len() as u32 + 20,
    );
    let root = BitMapBackend::new(png, size).into_drawing_area();
    root.fill(&WHITE)?;
    let label = ("sans-serif", 16).into_font().color(&BLACK);
    let vertical = label.transform(FontTransform::Rotate270);
    for (j, piece) in columns.iter().enumerate() {
        let x = (margin_left + cell * j as u32 + cell / 2 - 8) as i32;
        root.draw(&Text::new(
            piece.clone(),
            (x, margin_top as i32 - 8),
            vertical.clone(),
        ))?;
    }
    for (i, piece) in rows.iter().enumerate() {
        let y = (margin_top + cell * i as u32 + cell / 2 - 8) as i32;
        root.draw(&Text::new(piece.clone(), (10, y), label.clone()))?;
        for (j, &weight) in translation.attention[i].iter().enumerate() {
            let level = (255.0 * (1.0 - weight.clamp(0.0, 1.0))).round() as u8;
            let (x0, y0) = (margin_left + cell * j as u32, margin_top + cell * i as u32);
            root.draw(&Rectangle::new(
                [
                    (x0 as i32, y0 as i32),
                    ((x0 + cell) as i32, (y0 + cell) as i32),
                ],
                RGBColor(level, level, level).filled(),
            ))?;
        }
    }
    root.present()
        .with_context(|| format!("cannot write {}", png.display()))?;
    Ok(())
}
