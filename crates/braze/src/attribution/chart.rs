//! The report's chart, as SVG: click rate by position and item source above open, click and
//! conversion rates by block and stage, both as grouped bars. Drawn with `plotters`' SVG
//! backend alone, in the load-test chart's style (text as SVG `<text>`, no font library).

use super::report::Report;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Width of the chart, pixels.
const WIDTH: u32 = 1000;
/// Height of the chart, pixels.
const HEIGHT: u32 = 760;
/// Size of axis labels and legend text (plotters' units).
const LABEL: i32 = 15;
/// Longest category label, characters.
const LABEL_CHARS: usize = 22;

/// Drawing the chart failed (plotters reported an error while laying it out).
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// plotters could not draw an element; holds its message.
    #[error("drawing the chart: {0}")]
    Draw(String),
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for ChartError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        Self::Draw(e.to_string())
    }
}

/// Bars grouped by category: one series per colour, a value (percent) or a gap per category.
struct Groups {
    categories: Vec<String>,
    series: Vec<(String, RGBColor, Vec<Option<f64>>)>,
}

/// The SVG chart of `report`. Panels without data show a "no data" note.
pub fn svg(report: &Report) -> Result<String, ChartError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let title = format!(
            "Attribution: {} sendtime sends, {} h window",
            report.sendtime.sends, report.settings.window_hours
        );
        let body = root.titled(&title, ("sans-serif", 24))?;
        let (_, body_height) = body.dim_in_pixel();
        let (top, bottom) = body.split_vertically(body_height / 2);
        bars(
            &root,
            &top,
            "click rate by position and item source (unique clicks / sends showing)",
            &by_position(report),
        )?;
        bars(
            &root,
            &bottom,
            "rates by block / stage (of sends)",
            &by_stage(report),
        )?;
        root.present()?;
    }
    Ok(out)
}

/// A colour per item source, the same in every chart.
fn source_color(source: &str) -> RGBColor {
    match source {
        "personalized" => RGBColor(31, 119, 180),
        "category_popular" => RGBColor(255, 127, 14),
        "popular" => RGBColor(150, 150, 150),
        "cart" => RGBColor(44, 160, 44),
        "history" => RGBColor(148, 103, 189),
        _ => RGBColor(214, 39, 40),
    }
}

fn percent(n: u64, d: Option<u64>) -> Option<f64> {
    d.filter(|d| *d > 0).map(|d| 100.0 * n as f64 / d as f64)
}

fn by_position(report: &Report) -> Groups {
    let known: Vec<_> = report
        .by_position
        .iter()
        .filter_map(|p| p.position.map(|n| (n, p)))
        .collect();
    let series = report
        .by_item_source
        .iter()
        .map(|s| {
            let name = s.source.clone().unwrap_or_else(|| "(not recorded)".into());
            let values = known
                .iter()
                .map(|(_, p)| {
                    p.by_source
                        .iter()
                        .find(|b| b.source == s.source)
                        .and_then(|b| percent(b.items.unique_clicks, b.items.shown))
                })
                .collect();
            (name.clone(), source_color(&name), values)
        })
        .collect();
    Groups {
        categories: known.iter().map(|(n, _)| format!("#{n}")).collect(),
        series,
    }
}

fn by_stage(report: &Report) -> Groups {
    let rows = &report.by_stage;
    let rate = |f: fn(&super::report::Row) -> u64| -> Vec<Option<f64>> {
        rows.iter()
            .map(|r| percent(f(&r.row), Some(r.row.sends)))
            .collect()
    };
    Groups {
        categories: rows
            .iter()
            .map(|r| {
                let block = r.block.as_deref().unwrap_or("?");
                match r.stage.as_deref() {
                    Some(stage) => format!("{block}/{stage}"),
                    None => block.to_owned(),
                }
            })
            .collect(),
        series: vec![
            (
                "unique opens".into(),
                RGBColor(31, 119, 180),
                rate(|r| r.unique_opens),
            ),
            (
                "unique clicks".into(),
                RGBColor(255, 127, 14),
                rate(|r| r.unique_clicks),
            ),
            (
                "conversions".into(),
                RGBColor(44, 160, 44),
                rate(|r| r.conversions),
            ),
        ],
    }
}

/// One panel of grouped bars on `area`; category names are written under the axis on `root`
/// (outside the plotting area, which clips).
fn bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    groups: &Groups,
) -> Result<(), ChartError>
where
    DB::ErrorType: 'static,
{
    let n = groups.categories.len().max(1);
    let high = groups
        .series
        .iter()
        .flat_map(|(_, _, v)| v.iter().flatten())
        .fold(0.0_f64, |a, b| a.max(*b));
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 19))
        .margin(10)
        .x_label_area_size(34)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n as f64, 0.0..(high * 1.15).max(1.0))?;
    chart
        .configure_mesh()
        .y_desc("%")
        .label_style(("sans-serif", LABEL))
        .axis_desc_style(("sans-serif", LABEL))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .disable_x_mesh()
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let width = 0.8 / groups.series.len().max(1) as f64;
    for (j, (name, color, values)) in groups.series.iter().enumerate() {
        let color = *color;
        let rects = values.iter().enumerate().filter_map(|(i, v)| {
            let left = i as f64 + 0.1 + j as f64 * width;
            v.map(|v| Rectangle::new([(left, 0.0), (left + width, v)], color.filled()))
        });
        chart
            .draw_series(rects)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        // The value over each bar, so a 0 % bar still reads as data, not a gap.
        let value_style = ("sans-serif", 12)
            .into_font()
            .color(&BLACK.mix(0.8))
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        let values = values.iter().enumerate().filter_map(|(i, v)| {
            let middle = i as f64 + 0.1 + (j as f64 + 0.5) * width;
            v.map(|v| Text::new(format!("{v:.0}%"), (middle, v), value_style.clone()))
        });
        chart.draw_series(values)?;
    }
    if groups.categories.is_empty() {
        let (w, h) = area.dim_in_pixel();
        let style = ("sans-serif", 18)
            .into_font()
            .color(&BLACK.mix(0.6))
            .pos(Pos::new(HPos::Center, VPos::Center));
        area.draw(&Text::new("no data", (w as i32 / 2, h as i32 / 2), style))?;
        return Ok(());
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", LABEL))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    let style = ("sans-serif", LABEL)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (i, name) in groups.categories.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        let mut label: String = name.chars().take(LABEL_CHARS).collect();
        if name.chars().count() > LABEL_CHARS {
            label.push('…');
        }
        root.draw(&Text::new(label, (x, y + 6), style.clone()))?;
    }
    Ok(())
}
