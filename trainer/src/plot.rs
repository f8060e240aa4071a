//! Charts of a training run (`aha plot`): reads a run folder's
//! `metrics.jsonl` (and `eval.jsonl` when there is one) and draws each chart as
//! a PNG and an SVG with plotters.
//!
//! The charts are those one watches in an R1-style run (docs/method.md, GRPO):
//! reward (mean and per reward function), accuracy (training, and eval pass@1),
//! the average length per response (DeepSeek-R1, Figure 3: it should grow as
//! the model learns to think longer), and KL and entropy. A run without a
//! `reward` key (pre-training, SFT) gets its loss and learning rate instead.
//! A chart whose series are all absent is skipped.
//!
//! Noisy series are drawn twice: the raw values faint, and over them an
//! exponential moving average ([`PlotOptions::smoothing`]), as TensorBoard
//! does; the x axis says so.
//!
//! Text in the PNGs is drawn with an embedded DejaVu Sans (`assets/`,
//! Bitstream Vera licence) through plotters' `ab_glyph` feature, so no system
//! font library (fontconfig, freetype) is needed; SVGs name `sans-serif` and
//! leave the font to the viewer.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

use crate::error::{at, Error, Result};
use crate::fsutil::write_atomic;
use crate::jsonl;

/// How the charts are drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotOptions {
    /// Weight `w` of the exponential moving average drawn over noisy series,
    /// `ema_t = w * ema_{t-1} + (1 - w) * x_t` (debiased at the start, as
    /// TensorBoard's smoothing). 0 draws the raw values only; must be in [0, 1).
    pub smoothing: f64,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions { smoothing: 0.9 }
    }
}

/// Draws the charts of the run in `run` into `out` (default `run/plots/`),
/// each as `<name>.png` and `<name>.svg`, with default options; returns the
/// paths written.
pub fn plot_run(run: &Path, out: Option<&Path>) -> Result<Vec<PathBuf>> {
    plot_run_with(run, out, &PlotOptions::default())
}

/// [`plot_run`] with explicit options.
pub fn plot_run_with(run: &Path, out: Option<&Path>, options: &PlotOptions) -> Result<Vec<PathBuf>> {
    if !(0.0..1.0).contains(&options.smoothing) {
        return Err(Error::Usage(format!("smoothing must be in [0, 1), got {}", options.smoothing)));
    }
    let metrics_path = run.join("metrics.jsonl");
    let metrics = read_log(&metrics_path)?;
    let eval_path = run.join("eval.jsonl");
    let eval = if eval_path.exists() { Some(read_log(&eval_path)?) } else { None };

    let charts = charts(&metrics, eval.as_ref());
    if charts.is_empty() {
        return Err(Error::file(
            &metrics_path,
            "nothing to plot: none of reward, rewards/*, accuracy, completion_length, kl, entropy, loss",
        ));
    }
    let dir = out.map_or_else(|| run.join("plots"), Path::to_path_buf);
    write_charts(&charts, &dir, options.smoothing)
}

/// Writes each chart as `<dir>/<name>.png` and `.svg`; returns the paths.
fn write_charts(charts: &[Chart], dir: &Path, smoothing: f64) -> Result<Vec<PathBuf>> {
    register_font()?;
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let mut written = Vec::with_capacity(2 * charts.len());
    for chart in charts {
        let png = dir.join(format!("{}.png", chart.name));
        write_atomic(&png, &render_png(chart, smoothing).map_err(at(&png))?)?;
        written.push(png);
        let svg = dir.join(format!("{}.svg", chart.name));
        write_atomic(&svg, render_svg(chart, smoothing).map_err(at(&svg))?.as_bytes())?;
        written.push(svg);
    }
    Ok(written)
}

/// One line of an x-y chart ([`plot_xy`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A chart of `series` against an axis other than the step (accuracy
/// against think budget, student against teacher, ...), drawn with a dot at
/// each point, as `<dir>/<name>.png` and `.svg`; returns the paths.
pub fn plot_xy(dir: &Path, name: &str, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<Vec<PathBuf>> {
    let marks = series.iter().enumerate().map(|(i, s)| Mark::dots(&s.label, color(i), &s.points)).collect();
    let mut panel = Panel::new(title, y_label, SeriesLabelPosition::LowerRight, marks)
        .ok_or_else(|| Error::Usage(format!("{name}: nothing to plot")))?;
    panel.x_label = Some(x_label.into());
    // Rates and accuracies on a fixed [0, 1] axis, so runs compare at a glance.
    panel.unit_interval = series.iter().flat_map(|s| &s.points).all(|&(_, y)| (0.0..=1.0).contains(&y));
    let chart = Chart { name: name.into(), panels: vec![panel] };
    write_charts(&[chart], dir, 0.0)
}

// ---------------------------------------------------------------------------
// Reading the logs

/// The numeric series of a JSONL log: for each key, `(step, value)` pairs in
/// step order.
#[derive(Debug, Default)]
struct Log {
    series: BTreeMap<String, Vec<(f64, f64)>>,
}

impl Log {
    fn get(&self, key: &str) -> &[(f64, f64)] {
        self.series.get(key).map_or(&[], Vec::as_slice)
    }
}

/// Values beyond this magnitude are treated as overflowed (like NaN): they
/// would make an axis span infinite.
const LARGEST: f64 = 1e300;

/// Reads a log whose every non-blank line is a JSON object with a numeric
/// `step`. Other keys with a finite number become series; `null`, NaN,
/// infinities and non-numeric values (strings, booleans, lists) are skipped
/// for that line. Python's `json` writes NaN and infinities as bare `NaN` /
/// `Infinity`, which are not JSON; they are read as `null`. A last line that
/// is still being written (a live run) is left out.
///
/// A step logged twice (a run resumed from an earlier checkpoint) keeps the
/// later line's value.
fn read_log(path: &Path) -> Result<Log> {
    let file = File::open(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let mut log = Log::default();
    let mut lines = 0;
    jsonl::read_lines(BufReader::new(file), path, jsonl::Tail::SkipIncomplete, |_, line| {
        let fields = jsonl::object(line)?;
        let step = match fields.get("step") {
            Some(v) => number(v).ok_or_else(|| format!("\"step\" is not a finite number: {v}"))?,
            None => return Err("no \"step\"".into()),
        };
        lines += 1;
        for (key, value) in &fields {
            if let (false, Some(v)) = (key == "step", number(value)) {
                log.series.entry(key.clone()).or_default().push((step, v));
            }
        }
        Ok(())
    })?;
    if lines == 0 {
        return Err(Error::file(path, "empty: no metrics logged yet"));
    }
    for points in log.series.values_mut() {
        // Stable: equal steps keep file order, and `dedup_by` then moves the
        // later value into the first one's place.
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = later.1;
            }
            same
        });
    }
    Ok(log)
}

/// A finite, not overflowed number, or `None`.
fn number(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.abs() <= LARGEST)
}

// ---------------------------------------------------------------------------
// What each chart shows

/// One image: one or more panels side by side.
#[derive(Debug)]
struct Chart {
    /// File stem: `reward`, `accuracy`, `length`, `kl_entropy`, `loss`.
    name: String,
    panels: Vec<Panel>,
}

/// One set of axes.
#[derive(Debug)]
struct Panel {
    title: String,
    y_label: String,
    /// `None`: the x axis is the training step.
    x_label: Option<String>,
    /// The y axis always covers [0, 1] (rates and accuracies), so that progress
    /// reads the same on every run.
    unit_interval: bool,
    legend: SeriesLabelPosition,
    marks: Vec<Mark>,
}

/// One legend entry of a panel.
#[derive(Debug)]
struct Mark {
    label: String,
    color: RGBColor,
    kind: MarkKind,
}

#[derive(Debug)]
enum MarkKind {
    /// A line through `(step, value)`; `smooth` ones get an EMA over a faint
    /// raw line.
    Line { points: Vec<(f64, f64)>, smooth: bool },
    /// A shaded band between `(step, low, high)`.
    Band { points: Vec<(f64, f64, f64)> },
    /// Sparse values (evaluations): a line with a dot at each.
    Dots { points: Vec<(f64, f64)> },
}

impl Mark {
    fn line(label: impl Into<String>, color: RGBColor, points: &[(f64, f64)], smooth: bool) -> Option<Mark> {
        (!points.is_empty()).then(|| Mark { label: label.into(), color, kind: MarkKind::Line { points: points.to_vec(), smooth } })
    }

    fn dots(label: &str, color: RGBColor, points: &[(f64, f64)]) -> Option<Mark> {
        (!points.is_empty()).then(|| Mark { label: label.into(), color, kind: MarkKind::Dots { points: points.to_vec() } })
    }

    /// A band over the steps where both `low` and `high` were logged.
    fn band(label: &str, color: RGBColor, low: &[(f64, f64)], high: &[(f64, f64)]) -> Option<Mark> {
        let mut points = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < low.len() && j < high.len() {
            let (a, b) = (low[i], high[j]);
            if a.0 < b.0 {
                i += 1;
            } else if b.0 < a.0 {
                j += 1;
            } else {
                points.push((a.0, a.1, b.1));
                i += 1;
                j += 1;
            }
        }
        (!points.is_empty()).then(|| Mark { label: label.into(), color, kind: MarkKind::Band { points } })
    }

    /// Every `(step, value)` the mark draws, for the axis ranges.
    fn extent(&self) -> Vec<(f64, f64)> {
        match &self.kind {
            MarkKind::Line { points, .. } | MarkKind::Dots { points } => points.clone(),
            MarkKind::Band { points } => points.iter().flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]).collect(),
        }
    }
}

impl Panel {
    fn new(title: &str, y_label: &str, legend: SeriesLabelPosition, marks: Vec<Option<Mark>>) -> Option<Panel> {
        let marks: Vec<Mark> = marks.into_iter().flatten().collect();
        (!marks.is_empty()).then(|| Panel { title: title.into(), y_label: y_label.into(), x_label: None, unit_interval: false, legend, marks })
    }
}

impl Chart {
    fn new(name: &str, panels: Vec<Option<Panel>>) -> Option<Chart> {
        let panels: Vec<Panel> = panels.into_iter().flatten().collect();
        (!panels.is_empty()).then(|| Chart { name: name.into(), panels })
    }
}

/// Colours of a panel's marks, in order (Tableau 10: distinct, and readable
/// by most colour-blind viewers).
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// The charts with something to show, in the order they are written.
fn charts(metrics: &Log, eval: Option<&Log>) -> Vec<Chart> {
    let mut charts = Vec::new();

    let mut rewards = vec![Mark::line("mean reward", color(0), metrics.get("reward"), true)];
    for (i, (key, points)) in metrics.series.iter().filter(|(k, _)| k.starts_with("rewards/")).enumerate() {
        rewards.push(Mark::line(&key["rewards/".len()..], color(i + 1), points, true));
    }
    let reward_panel = Panel::new("Reward during training", "reward", SeriesLabelPosition::LowerRight, rewards);
    charts.extend(Chart::new("reward", vec![reward_panel]));

    let eval_pass = eval.map_or(&[][..], |e| if e.get("pass_at_1").is_empty() { e.get("accuracy") } else { e.get("pass_at_1") });
    let accuracy_panel = Panel::new(
        "Accuracy during training",
        "fraction of samples",
        SeriesLabelPosition::LowerRight,
        vec![
            Mark::line("train accuracy", color(0), metrics.get("accuracy"), true),
            Mark::line("format rate", color(2), metrics.get("format_rate"), true),
            Mark::dots("eval pass@1", color(3), eval_pass),
        ],
    )
    .map(|p| Panel { unit_interval: true, ..p });
    charts.extend(Chart::new("accuracy", vec![accuracy_panel]));

    let (low, high) = (metrics.get("completion_length_min"), metrics.get("completion_length_max"));
    let spread = match Mark::band("min-max", color(0), low, high) {
        Some(band) => vec![Some(band)],
        None => vec![Mark::line("min", color(1), low, false), Mark::line("max", color(2), high, false)],
    };
    let mut length = spread;
    length.push(Mark::line("mean length", color(0), metrics.get("completion_length"), true));
    let length_panel = Panel::new("Average length per response during training", "tokens", SeriesLabelPosition::UpperLeft, length);
    charts.extend(Chart::new("length", vec![length_panel]));

    let kl = Panel::new(
        "KL divergence to the reference policy",
        "KL",
        SeriesLabelPosition::UpperLeft,
        vec![Mark::line("kl", color(0), metrics.get("kl"), true)],
    );
    let entropy = Panel::new(
        "Policy entropy",
        "mean token entropy",
        SeriesLabelPosition::UpperRight,
        vec![Mark::line("entropy", color(1), metrics.get("entropy"), true)],
    );
    charts.extend(Chart::new("kl_entropy", vec![kl, entropy]));

    if !metrics.series.contains_key("reward") {
        let loss = Panel::new(
            "Training loss",
            "cross-entropy",
            SeriesLabelPosition::UpperRight,
            vec![Mark::line("loss", color(0), metrics.get("loss"), true)],
        );
        let lr =
            Panel::new("Learning rate", "lr", SeriesLabelPosition::UpperRight, vec![Mark::line("lr", color(1), metrics.get("lr"), false)]);
        // The learning rate alone is not a loss chart.
        if loss.is_some() {
            charts.extend(Chart::new("loss", vec![loss, lr]));
        }
    }
    charts
}

// ---------------------------------------------------------------------------
// Drawing

/// The font family every text is drawn in; plotters' default.
const FAMILY: &str = "sans-serif";

/// DejaVu Sans 2.37, unmodified; its licence is beside it.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font with plotters' `ab_glyph` text renderer, once
/// per process (plotters keeps fonts in a global table; without it, drawing
/// any text fails).
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Usage("the embedded font (DejaVuSans.ttf) could not be loaded".into()))
    }
}

/// Pixels of one panel.
const PANEL_SIZE: (u32, u32) = (1000, 600);
/// Width of each panel when a chart has several.
const SIDE_BY_SIDE_WIDTH: u32 = 800;

fn image_size(chart: &Chart) -> (u32, u32) {
    match chart.panels.len() {
        0 | 1 => PANEL_SIZE,
        n => (SIDE_BY_SIDE_WIDTH * n as u32, PANEL_SIZE.1),
    }
}

/// Series longer than this are thinned before drawing (a million-step run
/// would otherwise give SVGs of tens of megabytes).
const MAX_POINTS: usize = 4000;
/// Series shorter than this are drawn raw: an EMA over a few points hides
/// more than it shows.
const MIN_SMOOTHED_POINTS: usize = 20;

fn render_png(chart: &Chart, smoothing: f64) -> std::result::Result<Vec<u8>, String> {
    let (w, h) = image_size(chart);
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw_chart(&root, chart, smoothing).map_err(|e| format!("cannot draw the chart: {e}"))?;
    }
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let encode = |encoder: png::Encoder<'_, &mut Vec<u8>>| -> std::result::Result<(), png::EncodingError> {
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&rgb)?;
        writer.finish()
    };
    encode(encoder).map_err(|e| format!("cannot encode the PNG: {e}"))?;
    Ok(png)
}

fn render_svg(chart: &Chart, smoothing: f64) -> std::result::Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, image_size(chart)).into_drawing_area();
        draw_chart(&root, chart, smoothing).map_err(|e| format!("cannot draw the chart: {e}"))?;
    }
    Ok(svg)
}

type DrawResult<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw_chart<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart, smoothing: f64) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    for (area, panel) in root.split_evenly((1, chart.panels.len())).iter().zip(&chart.panels) {
        draw_panel(area, panel, smoothing)?;
    }
    root.present()
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel, smoothing: f64) -> DrawResult<DB> {
    let extent: Vec<(f64, f64)> = panel.marks.iter().flat_map(Mark::extent).collect();
    let (x0, x1) = x_range(&extent);
    let (y0, y1) = y_range(&extent, panel.unit_interval);
    let smoothed = smoothing > 0.0
        && panel.marks.iter().any(|m| matches!(&m.kind, MarkKind::Line { points, smooth: true } if points.len() >= MIN_SMOOTHED_POINTS));
    let step = panel.x_label.as_deref().unwrap_or("step");
    let x_label = if smoothed { format!("{step}   (solid: EMA {smoothing} of the faint raw values)") } else { step.to_string() };

    let mut axes = ChartBuilder::on(area)
        .caption(&panel.title, (FAMILY, 24))
        .margin(12)
        .margin_right(28)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    axes.configure_mesh()
        .x_desc(x_label)
        .y_desc(&panel.y_label)
        .axis_desc_style((FAMILY, 17))
        .label_style((FAMILY, 15))
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;

    for mark in &panel.marks {
        let color = mark.color;
        let anno = match &mark.kind {
            MarkKind::Band { points } => {
                let points = thin_band(points);
                let upper = points.iter().map(|&(x, _, hi)| (x, hi));
                let outline: Vec<(f64, f64)> = upper.chain(points.iter().rev().map(|&(x, lo, _)| (x, lo))).collect();
                let anno = axes.draw_series(std::iter::once(Polygon::new(outline, color.mix(0.18).filled())))?;
                anno.label(&mark.label).legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 24, y + 6)], color.mix(0.18).filled()));
                continue;
            }
            MarkKind::Dots { points } => {
                let style = ShapeStyle { color: color.to_rgba(), filled: true, stroke_width: 2 };
                axes.draw_series(LineSeries::new(thin(points), style).point_size(4))?
            }
            MarkKind::Line { points, smooth } => {
                let points = if *smooth && smoothing > 0.0 && points.len() >= MIN_SMOOTHED_POINTS {
                    axes.draw_series(LineSeries::new(thin(points), color.mix(0.25).stroke_width(1)))?;
                    ema(points, smoothing)
                } else {
                    points.clone()
                };
                // A lone point draws no line: give it a dot.
                let dot = if points.len() == 1 { 4 } else { 0 };
                axes.draw_series(LineSeries::new(thin(&points), color.stroke_width(2)).point_size(dot))?
            }
        };
        anno.label(&mark.label).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
    }
    axes.configure_series_labels()
        .position(panel.legend.clone())
        .label_font((FAMILY, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
}

/// The steps covered (all finite), widened when there is a single one.
fn x_range(points: &[(f64, f64)]) -> (f64, f64) {
    if points.is_empty() {
        return (-1.0, 1.0);
    }
    let lo = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    if lo == hi {
        return (lo - 1.0, hi + 1.0);
    }
    (lo, hi)
}

/// The values covered (all finite, at most [`LARGEST`]), padded by 5% so no
/// line runs along a frame edge.
fn y_range(points: &[(f64, f64)], unit_interval: bool) -> (f64, f64) {
    let (mut lo, mut hi) = match points.is_empty() {
        true => (0.0, 0.0),
        false => (points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min), points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max)),
    };
    if unit_interval {
        (lo, hi) = (lo.min(0.0), hi.max(1.0));
    }
    if lo == hi {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo, hi) = (lo - d, hi + d);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// An axis label: short, without float noise (`0.30000000000000004`), and in
/// scientific notation for learning rates and large token counts.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The exponential moving average of `points`, debiased so that it starts at
/// the first value rather than at 0 (TensorBoard's "smoothing").
fn ema(points: &[(f64, f64)], weight: f64) -> Vec<(f64, f64)> {
    let mut average = 0.0;
    let mut decay = 1.0;
    points
        .iter()
        .map(|&(x, v)| {
            average = weight * average + (1.0 - weight) * v;
            decay *= weight;
            (x, average / (1.0 - decay))
        })
        .collect()
}

/// At most about [`MAX_POINTS`] points of `points`: the lowest and highest of
/// each run of consecutive points, in their order, so that spikes survive.
fn thin(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points.to_vec();
    }
    let bucket = points.len().div_ceil(MAX_POINTS / 2);
    let mut out = Vec::with_capacity(MAX_POINTS + 2);
    for run in points.chunks(bucket) {
        let lowest = (0..run.len()).min_by(|&a, &b| run[a].1.total_cmp(&run[b].1)).unwrap_or(0);
        let highest = (0..run.len()).max_by(|&a, &b| run[a].1.total_cmp(&run[b].1)).unwrap_or(0);
        let (first, second) = (lowest.min(highest), lowest.max(highest));
        out.push(run[first]);
        if second != first {
            out.push(run[second]);
        }
    }
    out
}

/// At most about [`MAX_POINTS`] / 2 points of a band: each run of consecutive
/// points becomes one spanning its lowest low and highest high.
fn thin_band(points: &[(f64, f64, f64)]) -> Vec<(f64, f64, f64)> {
    if points.len() <= MAX_POINTS / 2 {
        return points.to_vec();
    }
    let bucket = points.len().div_ceil(MAX_POINTS / 2);
    let merge = |run: &[(f64, f64, f64)]| {
        let low = run.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let high = run.iter().map(|p| p.2).fold(f64::NEG_INFINITY, f64::max);
        (run[0].0, low, high)
    };
    points.chunks(bucket).map(merge).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run folder holding `metrics.jsonl` (and `eval.jsonl` when given).
    fn run_dir(metrics: &str, eval: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("metrics.jsonl"), metrics).unwrap();
        if let Some(eval) = eval {
            std::fs::write(dir.path().join("eval.jsonl"), eval).unwrap();
        }
        dir
    }

    /// Deterministic noise in [-0.5, 0.5).
    fn noise(i: usize) -> f64 {
        ((i * 7919 + 13) % 101) as f64 / 101.0 - 0.5
    }

    /// `steps` lines of what a GRPO run logs: accuracy rising, lengths growing.
    fn grpo_metrics(steps: usize) -> String {
        let mut text = String::new();
        for i in 0..steps {
            let t = i as f64 / steps.max(1) as f64;
            let accuracy = (0.1 + 0.7 * t + 0.2 * noise(i)).clamp(0.0, 1.0);
            let format = (0.5 + 0.5 * t + 0.1 * noise(i + 1)).clamp(0.0, 1.0);
            let length = 40.0 + 200.0 * t + 30.0 * noise(i + 2);
            let line = serde_json::json!({
                "step": i + 1, "reward": accuracy + 0.5 * format, "reward_std": 0.3,
                "rewards/accuracy": accuracy, "rewards/format": format, "accuracy": accuracy,
                "format_rate": format, "completion_length": length, "completion_length_min": length * 0.4,
                "completion_length_max": length * 1.8, "truncated": 0.0, "reflection_rate": t,
                "kl": 0.02 * t + 0.005 * noise(i + 3), "clip_low": 0.0, "clip_high": 0.01,
                "entropy": 1.5 - t + 0.1 * noise(i + 4), "zero_variance_groups": 2, "gen_tokens_per_s": 900.0,
                "train_tokens_per_s": 3000.0, "step_time_s": 4.2, "lr": 1e-6, "grad_norm": 0.8, "loss": 0.01,
            });
            text.push_str(&format!("{line}\n"));
        }
        text
    }

    fn pretrain_metrics(steps: usize) -> String {
        (0..steps)
            .map(|i| {
                let loss = 8.0 * (-(i as f64) / 50.0).exp() + 1.5 + 0.2 * noise(i);
                let lr = 3e-4 * (i as f64 / 10.0).min(1.0);
                let line = serde_json::json!({
                    "step": i, "loss": loss, "lr": lr, "grad_norm": 1.1, "tokens": 4096,
                    "tokens_per_s": 12000.5, "elapsed_s": i as f64 * 0.3,
                });
                format!("{line}\n")
            })
            .collect()
    }

    fn file_names(paths: &[PathBuf]) -> Vec<String> {
        paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect()
    }

    /// Decodes a PNG we wrote; returns its size and RGB pixels.
    fn decode_png(path: &Path) -> ((u32, u32), Vec<u8>) {
        let bytes = std::fs::read(path).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{}: not a PNG", path.display());
        assert!(bytes.len() > 10_000, "{}: only {} bytes", path.display(), bytes.len());
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        pixels.truncate(info.buffer_size());
        ((info.width, info.height), pixels)
    }

    /// Dark pixels in the rows `rows` of an RGB image `width` wide.
    fn dark_pixels(pixels: &[u8], width: u32, rows: std::ops::Range<u32>) -> usize {
        let row_bytes = width as usize * 3;
        pixels[rows.start as usize * row_bytes..rows.end as usize * row_bytes].chunks(3).filter(|p| p.iter().all(|&c| c < 128)).count()
    }

    /// The texts of an SVG we wrote, trimmed.
    fn svg_texts(path: &Path) -> Vec<String> {
        let svg = std::fs::read_to_string(path).unwrap();
        assert!(svg.starts_with("<svg") || svg.contains("\n<svg"), "{}", path.display());
        svg.split("<text").skip(1).filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim().to_string())).collect()
    }

    fn assert_texts(path: &Path, wanted: &[&str]) {
        let texts = svg_texts(path);
        for want in wanted {
            assert!(texts.iter().any(|t| t == want), "{} lacks the text {want:?}; has {texts:?}", path.display());
        }
    }

    #[test]
    fn a_grpo_run_gets_reward_accuracy_length_and_kl_entropy_charts() {
        let eval = "{\"step\": 0, \"pass_at_1\": 0.05, \"samples\": 64}\n{\"step\": 50, \"pass_at_1\": 0.4}\n\
                    {\"step\": 100, \"pass_at_1\": 0.7, \"accuracy\": 0.7}\n";
        let run = run_dir(&grpo_metrics(100), Some(eval));
        let written = plot_run(run.path(), None).unwrap();
        let plots = run.path().join("plots");
        assert!(written.iter().all(|p| p.parent() == Some(&plots)));
        assert_eq!(
            file_names(&written),
            ["reward.png", "reward.svg", "accuracy.png", "accuracy.svg", "length.png", "length.svg"]
                .into_iter()
                .chain(["kl_entropy.png", "kl_entropy.svg"])
                .collect::<Vec<_>>()
        );
        for path in written.iter().filter(|p| p.extension().unwrap() == "png") {
            let ((w, h), pixels) = decode_png(path);
            let two_panels = path.ends_with("kl_entropy.png");
            assert_eq!((w, h), if two_panels { (1600, 600) } else { (1000, 600) });
            // The title sits alone above the axes: dark pixels there are text,
            // which proves the embedded font renders.
            assert!(dark_pixels(&pixels, w, 0..36) > 200, "{}: no title text", path.display());
        }
        let smoothed = "step   (solid: EMA 0.9 of the faint raw values)";
        assert_texts(&plots.join("reward.svg"), &["Reward during training", "mean reward", "accuracy", "format", "reward", smoothed]);
        assert_texts(
            &plots.join("accuracy.svg"),
            &["Accuracy during training", "train accuracy", "format rate", "eval pass@1", "fraction of samples"],
        );
        assert_texts(
            &plots.join("length.svg"),
            &["Average length per response during training", "mean length", "min-max", "tokens", smoothed],
        );
        assert_texts(
            &plots.join("kl_entropy.svg"),
            &["KL divergence to the reference policy", "Policy entropy", "kl", "entropy", "KL", "mean token entropy"],
        );
        // Rewards exist: a GRPO run's loss is not charted.
        assert!(!plots.join("loss.png").exists());
    }

    #[test]
    fn a_pre_training_run_gets_only_a_loss_chart_in_the_folder_asked_for() {
        let run = run_dir(&pretrain_metrics(200), None);
        let out = run.path().join("elsewhere/charts");
        let written = plot_run(run.path(), Some(&out)).unwrap();
        assert_eq!(written, vec![out.join("loss.png"), out.join("loss.svg")]);
        let ((w, h), pixels) = decode_png(&written[0]);
        assert_eq!((w, h), (1600, 600));
        assert!(dark_pixels(&pixels, w, 0..36) > 200);
        assert_texts(&written[1], &["Training loss", "Learning rate", "loss", "lr", "cross-entropy"]);
        assert!(!run.path().join("plots").exists());
        // No temporary files are left beside the charts.
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
    }

    #[test]
    fn a_missing_metrics_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        match plot_run(dir.path(), None).unwrap_err() {
            Error::File { path, .. } => assert_eq!(path, dir.path().join("metrics.jsonl")),
            other => panic!("expected a file error, got {other}"),
        }
        assert!(!dir.path().join("plots").exists());
    }

    #[test]
    fn an_empty_metrics_file_is_a_clear_error() {
        for text in ["", "\n  \n\n"] {
            let run = run_dir(text, None);
            let err = plot_run(run.path(), None).unwrap_err();
            assert!(matches!(&err, Error::File { path, .. } if path.ends_with("metrics.jsonl")), "{err}");
            assert!(err.to_string().contains("empty"), "{err}");
        }
    }

    #[test]
    fn a_bad_line_is_an_error_naming_file_and_line() {
        let good = "{\"step\": 1, \"loss\": 2.0}\n\n";
        for (bad, wanted) in [
            ("{\"step\": 3, \"loss\": }", "not JSON"),
            ("[1, 2]", "expected a JSON object"),
            ("{\"loss\": 1.0}", "no \"step\""),
            ("{\"step\": null, \"loss\": 1.0}", "\"step\""),
            ("{\"step\": \"three\"}", "\"step\""),
            ("{\"step\": 3, \"loss\": 1.0", "not JSON"),
        ] {
            let run = run_dir(&format!("{good}{bad}\n{good}"), None);
            match plot_run(run.path(), None).unwrap_err() {
                Error::Line { path, line, message } => {
                    assert_eq!(path, run.path().join("metrics.jsonl"));
                    assert_eq!(line, 3, "{bad}");
                    assert!(message.contains(wanted), "{bad}: {message}");
                }
                other => panic!("{bad}: expected a line error, got {other}"),
            }
        }
    }

    #[test]
    fn a_bad_eval_line_names_eval_jsonl() {
        let run = run_dir(&grpo_metrics(5), Some("{\"step\": 1, \"pass_at_1\": 0.5}\nnot json\n"));
        match plot_run(run.path(), None).unwrap_err() {
            Error::Line { path, line, .. } => {
                assert_eq!(path, run.path().join("eval.jsonl"));
                assert_eq!(line, 2);
            }
            other => panic!("expected a line error, got {other}"),
        }
    }

    #[test]
    fn invalid_utf8_is_a_line_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("metrics.jsonl"), b"{\"step\": 1, \"loss\": 1}\n{\"step\": 2, \"\xff\": 1}\n").unwrap();
        assert!(matches!(plot_run(dir.path(), None), Err(Error::Line { line: 2, .. })));
    }

    #[test]
    fn null_nan_and_infinite_values_are_skipped_for_their_series_only() {
        let text = "{\"step\": 1, \"loss\": 3.0, \"lr\": 0.001}\n\
                    {\"step\": 2, \"loss\": NaN, \"lr\": 0.001}\n\
                    {\"step\": 3, \"loss\": null, \"lr\": Infinity, \"kl\": -Infinity}\n\
                    {\"step\": 4, \"loss\": \"nan\", \"lr\": 0.001, \"note\": \"NaN is fine inside \\\"strings\\\"\"}\n\
                    {\"step\": 5, \"loss\": 1e308, \"lr\": true, \"tags\": [1, 2]}\n\
                    {\"step\": 6, \"loss\": 2.0, \"lr\": 0.002}\n";
        let run = run_dir(text, None);
        let log = read_log(&run.path().join("metrics.jsonl")).unwrap();
        assert_eq!(log.get("loss"), [(1.0, 3.0), (6.0, 2.0)]);
        assert_eq!(log.get("lr"), [(1.0, 0.001), (2.0, 0.001), (4.0, 0.001), (6.0, 0.002)]);
        assert!(log.get("kl").is_empty() && log.get("note").is_empty() && log.get("tags").is_empty());
        assert_eq!(file_names(&plot_run(run.path(), None).unwrap()), ["loss.png", "loss.svg"]);
    }

    #[test]
    fn bare_non_finite_tokens_become_null_outside_strings_only() {
        use crate::jsonl::non_finite_to_null;
        assert_eq!(non_finite_to_null("{\"a\": 1}"), "{\"a\": 1}");
        assert_eq!(
            non_finite_to_null("{\"NaN\": NaN, \"b\": [-Infinity,Infinity], \"c\": \"x\\\" NaN\"}"),
            "{\"NaN\": null, \"b\": [null,null], \"c\": \"x\\\" NaN\"}"
        );
        // Non-ASCII text passes through unchanged.
        assert_eq!(non_finite_to_null("{\"é\": NaN, \"ü\": \"Infinity ü\"}"), "{\"é\": null, \"ü\": \"Infinity ü\"}");
    }

    #[test]
    fn a_repeated_step_keeps_the_later_value_and_steps_are_sorted() {
        let text = "{\"step\": 1, \"loss\": 5.0}\n{\"step\": 2, \"loss\": 4.0}\n{\"step\": 3, \"loss\": 3.0}\n\
                    {\"step\": 2, \"loss\": 4.5}\n{\"step\": 3, \"loss\": 3.5}\n{\"step\": 4, \"loss\": 2.5}\n";
        let run = run_dir(text, None);
        let log = read_log(&run.path().join("metrics.jsonl")).unwrap();
        assert_eq!(log.get("loss"), [(1.0, 5.0), (2.0, 4.5), (3.0, 3.5), (4.0, 2.5)]);
    }

    #[test]
    fn a_run_with_no_known_metric_has_nothing_to_plot() {
        let run = run_dir("{\"step\": 1, \"tokens_per_s\": 5.0}\n", None);
        let err = plot_run(run.path(), None).unwrap_err();
        assert!(err.to_string().contains("nothing to plot"), "{err}");
    }

    #[test]
    fn degenerate_series_still_draw() {
        for text in [
            // One step; a constant; zeros; huge but finite values.
            "{\"step\": 7, \"reward\": 0.5, \"kl\": 0.0}\n",
            "{\"step\": 1, \"reward\": 1.0}\n{\"step\": 2, \"reward\": 1.0}\n",
            "{\"step\": 0, \"reward\": 0, \"accuracy\": 0}\n{\"step\": 0.5, \"reward\": 0, \"accuracy\": 0}\n",
            "{\"step\": 1, \"reward\": -1e299}\n{\"step\": 1e18, \"reward\": 1e299}\n",
            // A one-step band; a reward name that is markup.
            "{\"step\": 3, \"reward\": 1, \"completion_length\": 5, \"completion_length_min\": 2, \"completion_length_max\": 9}\n",
            "{\"step\": 3, \"reward\": 1, \"rewards/<b>&\": 1, \"rewards/\": 0}\n",
        ] {
            let run = run_dir(text, Some("{\"step\": 3, \"pass_at_1\": 0.5}\n"));
            let written = plot_run(run.path(), None).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(file_names(&written).contains(&"reward.png".to_string()), "{text}");
            assert!(written.iter().all(|p| std::fs::metadata(p).unwrap().len() > 1000), "{text}");
        }
        let run = run_dir("{\"step\": 3, \"reward\": 1, \"rewards/<b>&\": 1}\n", None);
        plot_run(run.path(), None).unwrap();
        assert_texts(&run.path().join("plots/reward.svg"), &["&lt;b&gt;&amp;"]);
    }

    #[test]
    fn only_some_length_statistics_draw_as_lines() {
        let text = "{\"step\": 1, \"completion_length\": 10, \"completion_length_max\": 30}\n\
                    {\"step\": 2, \"completion_length\": 12, \"completion_length_max\": 35}\n";
        let run = run_dir(text, None);
        assert_eq!(file_names(&plot_run(run.path(), None).unwrap()), ["length.png", "length.svg"]);
        let texts = svg_texts(&run.path().join("plots/length.svg"));
        assert!(texts.iter().any(|t| t == "max") && !texts.iter().any(|t| t == "min" || t == "min-max"), "{texts:?}");
    }

    #[test]
    fn smoothing_outside_zero_to_one_is_refused() {
        let run = run_dir(&grpo_metrics(30), None);
        for smoothing in [-0.1, 1.0, f64::NAN] {
            assert!(matches!(plot_run_with(run.path(), None, &PlotOptions { smoothing }), Err(Error::Usage(_))));
        }
        let raw = plot_run_with(run.path(), None, &PlotOptions { smoothing: 0.0 }).unwrap();
        assert!(svg_texts(&raw[1]).iter().all(|t| !t.contains("EMA")));
    }

    #[test]
    fn the_ema_starts_at_the_first_value_and_follows_a_step() {
        let flat: Vec<(f64, f64)> = (0..50).map(|i| (i as f64, 3.0)).collect();
        assert!(ema(&flat, 0.9).iter().all(|&(_, v)| (v - 3.0).abs() < 1e-12));
        let step: Vec<(f64, f64)> = (0..200).map(|i| (i as f64, if i < 100 { 0.0 } else { 1.0 })).collect();
        let smooth = ema(&step, 0.9);
        assert_eq!(smooth[99].1, 0.0);
        assert!(smooth[100].1 > 0.05 && smooth[100].1 < 0.2);
        assert!(smooth[199].1 > 0.999);
        assert_eq!(smooth.iter().map(|p| p.0).collect::<Vec<_>>(), step.iter().map(|p| p.0).collect::<Vec<_>>());
    }

    #[test]
    fn thinning_bounds_the_points_and_keeps_spikes_in_order() {
        let mut points: Vec<(f64, f64)> = (0..100_000).map(|i| (i as f64, noise(i))).collect();
        points[54_321].1 = 100.0;
        points[7].1 = -100.0;
        let thinned = thin(&points);
        assert!(thinned.len() <= MAX_POINTS + 2, "{}", thinned.len());
        assert!(thinned.contains(&(54_321.0, 100.0)) && thinned.contains(&(7.0, -100.0)));
        assert!(thinned.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(thin(&points[..10]), points[..10]);

        let band: Vec<(f64, f64, f64)> = (0..10_000).map(|i| (i as f64, -1.0 - noise(i), 1.0 + noise(i))).collect();
        let thinned = thin_band(&band);
        assert!(thinned.len() <= MAX_POINTS / 2);
        let lowest = band.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        assert_eq!(thinned.iter().map(|p| p.1).fold(f64::INFINITY, f64::min), lowest);
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(0.1 + 0.2), "0.3");
        assert_eq!(tick(1000.0), "1000");
        assert_eq!(tick(-2.5), "-2.5");
        assert_eq!(tick(3e-4), "3.0e-4");
        assert_eq!(tick(250_000.0), "2.5e5");
    }

    #[test]
    fn ranges_never_collapse() {
        assert_eq!(x_range(&[(5.0, 1.0)]), (4.0, 6.0));
        assert_eq!(x_range(&[]), (-1.0, 1.0));
        let (lo, hi) = y_range(&[(0.0, 2.0), (1.0, 2.0)], false);
        assert!(lo < 2.0 && hi > 2.0);
        let (lo, hi) = y_range(&[(0.0, 0.0)], false);
        assert!(lo < 0.0 && hi > 0.0);
        let (lo, hi) = y_range(&[(0.0, 0.4), (1.0, 0.6)], true);
        assert!(lo < 0.0 && hi > 1.0);
        let (lo, hi) = y_range(&[(0.0, -LARGEST), (1.0, LARGEST)], false);
        assert!(lo.is_finite() && hi.is_finite() && lo < hi);
    }
}
