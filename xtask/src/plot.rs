//! The experiments' PNG plots: line charts drawn with plotters, text through
//! ab_glyph with the system's DejaVu Sans (no C library).

use anyhow::{Context, Result};
use plotters::prelude::*;
use std::ops::Range;
use std::path::Path;

/// One line of a chart.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
    /// Stroke width in pixels.
    pub width: u32,
}

/// What a chart shows, beside its lines.
pub struct Chart<'a> {
    pub caption: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub x: Range<f64>,
    /// In the data's units, also for a log scale.
    pub y: Range<f64>,
    /// Plot log10 of y (for values spanning orders of magnitude).
    pub log_y: bool,
    pub legend: SeriesLabelPosition,
}

/// Draws `series` on `chart` into `png` (900 × 560).
pub fn draw(png: &Path, chart: &Chart, series: &[Series]) -> Result<()> {
    register_font()?;
    let y_of = |v: f64| if chart.log_y { v.log10() } else { v };
    let root = BitMapBackend::new(png, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut context = ChartBuilder::on(&root)
        .caption(chart.caption, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(if chart.log_y { 80 } else { 60 })
        .build_cartesian_2d(chart.x.clone(), y_of(chart.y.start)..y_of(chart.y.end))?;
    let log_label = |v: &f64| format!("1e{:.0}", v);
    let mut mesh = context.configure_mesh();
    mesh.x_desc(chart.x_desc).y_desc(chart.y_desc);
    if chart.log_y {
        mesh.y_label_formatter(&log_label);
    }
    mesh.draw()?;
    for line in series {
        let style = line.color.stroke_width(line.width);
        let points = line
            .points
            .iter()
            .filter(|(_, y)| !chart.log_y || *y > 0.0)
            .map(|&(x, y)| (x, y_of(y)));
        context
            .draw_series(LineSeries::new(points, style))?
            .label(line.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    context
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(chart.legend.clone())
        .draw()?;
    root.present()?;
    Ok(())
}

/// The points of per-epoch values, at epochs 1, 2, ….
pub fn per_epoch(values: &[f64]) -> Vec<(f64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as f64 + 1.0, v))
        .collect()
}

/// Plotters draws text with ab_glyph, which needs a font file: the system's DejaVu Sans.
fn register_font() -> Result<()> {
    static REGISTERED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if REGISTERED.get().is_some() {
        return Ok(());
    }
    let font = Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
    let bytes = std::fs::read(font).with_context(|| {
        format!(
            "the plot needs a font: {} (apt-get install fonts-dejavu-core)",
            font.display()
        )
    })?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(bytes.into_boxed_slice()),
    )
    .map_err(|_| anyhow::anyhow!("{} is not a usable font", font.display()))?;
    let _ = REGISTERED.set(());
    Ok(())
}
