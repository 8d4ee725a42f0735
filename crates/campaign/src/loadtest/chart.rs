//! The chart of a run, as SVG for a person to look at: two panels over one x axis, seconds
//! since the start. The top one is latency per second, counted from each call's intended send
//! time (p50, p99 and max of the calls scheduled in that second); the bottom one is throughput
//! per second (calls scheduled, sent and answered). Seconds without a latency sample leave a
//! gap in the latency lines rather than a fall to zero.
//!
//! Drawn with `plotters`' SVG backend alone: text is written as SVG `<text>` and laid out by
//! estimate, so no font, font library or system library is needed.

use super::results::{Results, Second};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Width of the chart, pixels.
const WIDTH: u32 = 1000;
/// Height of the chart, pixels.
const HEIGHT: u32 = 720;
/// Size of axis labels and legend text (plotters' units).
const LABEL: i32 = 15;
/// Longest shape text kept in the title, characters.
const TITLE_SHAPE_CHARS: usize = 90;
/// Above this ratio of the largest to the smallest latency plotted, the latency axis is
/// logarithmic (so a p50 of a few ms stays visible under a max of seconds).
const LOG_SCALE_SPREAD: f64 = 100.0;
/// Timelines up to this many seconds get a marker on every point.
const MARKED_SECONDS: usize = 60;

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

/// The SVG chart of `results`: latency (p50, p99, max, ms from the intended send time) above
/// throughput (scheduled, sent, answered calls per second), both per second since the start.
/// An empty timeline gives the axes and a "no data" note.
pub fn svg(results: &Results) -> Result<String, ChartError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let body = root.titled(&title(results), ("sans-serif", 24))?;
        let (_, body_height) = body.dim_in_pixel();
        let (top, bottom) = body.split_vertically(body_height / 2);
        let timeline = &results.timeline;
        // One second at least, so an empty timeline still has a valid axis.
        let x_max = (timeline.len() as u64).max(1);
        latency_panel(&top, timeline, x_max)?;
        throughput_panel(&bottom, timeline, x_max)?;
        root.present()?;
    }
    Ok(out)
}

/// `shape — scale ×s, shards i/n`, the scale left out when it is 1.
fn title(results: &Results) -> String {
    let run = &results.run;
    let mut shape: String = run.shape.chars().take(TITLE_SHAPE_CHARS).collect();
    if run.shape.chars().count() > TITLE_SHAPE_CHARS {
        shape.push('…');
    }
    if shape.is_empty() {
        shape = "load test".into();
    }
    let mut parts = Vec::new();
    if run.scale.is_finite() && (run.scale - 1.0).abs() > 1e-9 {
        parts.push(format!("scale ×{}", run.scale));
    }
    if !run.shards.is_empty() {
        parts.push(format!("shards {}", run.shards));
    }
    if parts.is_empty() {
        shape
    } else {
        format!("{shape} — {}", parts.join(", "))
    }
}

/// One latency line: its name, colour and value for a second.
struct Metric {
    name: &'static str,
    color: RGBColor,
    value: fn(&Second) -> f64,
}

/// p50 under p99 under max.
const LATENCY: [Metric; 3] = [
    Metric {
        name: "p50",
        color: RGBColor(31, 119, 180),
        value: |s| s.latency.quantile_ms(0.5),
    },
    Metric {
        name: "p99",
        color: RGBColor(255, 127, 14),
        value: |s| s.latency.quantile_ms(0.99),
    },
    Metric {
        name: "max",
        color: RGBColor(214, 39, 40),
        value: |s| s.latency.max_ms(),
    },
];

/// Stretches of a line without gaps, each a list of (second, value) points.
type Runs = Vec<Vec<(u64, f64)>>;

/// Runs of consecutive seconds that have latency samples, as (second, value) points.
fn runs(timeline: &[Second], value: fn(&Second) -> f64) -> Runs {
    let mut runs: Runs = Vec::new();
    let mut current = Vec::new();
    for (i, s) in timeline.iter().enumerate() {
        if s.latency.count() > 0 {
            current.push((i as u64, value(s)));
        } else if !current.is_empty() {
            runs.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// The top panel. Linear from 0 unless the values spread over more than
/// [`LOG_SCALE_SPREAD`]×, then logarithmic.
fn latency_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    timeline: &[Second],
    x_max: u64,
) -> Result<(), ChartError>
where
    DB::ErrorType: 'static,
{
    let lines: Vec<(&Metric, Runs)> = LATENCY
        .iter()
        .map(|m| (m, runs(timeline, m.value)))
        .collect();
    let values = || {
        lines
            .iter()
            .flat_map(|(_, runs)| runs.iter().flatten().map(|(_, v)| *v))
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    let high = values().fold(0.0_f64, f64::max);
    let low = values().fold(f64::INFINITY, f64::min);
    let caption = "latency per second from the intended send time";
    if high > 0.0 && high / low > LOG_SCALE_SPREAD {
        let range = (low * 0.8..high * 1.25).log_scale();
        draw_latency(area, caption, "ms (log scale)", x_max, range, &lines)
    } else {
        let range = 0.0..(high * 1.1).max(1.0);
        draw_latency(area, caption, "ms", x_max, range, &lines)
    }
}

/// Draws the latency panel on the y axis `y`.
fn draw_latency<DB, Y>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    y_desc: &str,
    x_max: u64,
    y: Y,
    lines: &[(&Metric, Runs)],
) -> Result<(), ChartError>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 19))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0..x_max, y)?;
    chart
        .configure_mesh()
        .y_desc(y_desc)
        .label_style(("sans-serif", LABEL))
        .axis_desc_style(("sans-serif", LABEL))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let mut any = false;
    for (metric, runs) in lines {
        for (i, run) in runs.iter().enumerate() {
            let marked = run.len() == 1 || x_max as usize <= MARKED_SECONDS;
            let color = metric.color;
            let series =
                chart.draw_series(
                    LineSeries::new(run.iter().copied(), color.stroke_width(2))
                        .point_size(if marked { 3 } else { 0 }),
                )?;
            if i == 0 {
                series.label(metric.name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
            any = true;
        }
    }
    if any {
        legend(&mut chart)?;
    } else {
        no_data(area, "no data: no call has a latency")?;
    }
    Ok(())
}

/// One throughput line: its name, colour, width and calls in a second.
struct Flow {
    name: &'static str,
    color: RGBColor,
    width: u32,
    value: fn(&Second) -> u64,
}

/// Scheduled drawn wide and grey underneath: where sent and answered keep up, they cover it.
const THROUGHPUT: [Flow; 3] = [
    Flow {
        name: "scheduled",
        color: RGBColor(150, 150, 150),
        width: 4,
        value: |s| s.scheduled,
    },
    Flow {
        name: "sent",
        color: RGBColor(31, 119, 180),
        width: 2,
        value: |s| s.sent,
    },
    Flow {
        name: "answered",
        color: RGBColor(44, 160, 44),
        width: 2,
        value: |s| s.answered,
    },
];

/// The bottom panel: scheduled, sent and answered calls per second.
fn throughput_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    timeline: &[Second],
    x_max: u64,
) -> Result<(), ChartError>
where
    DB::ErrorType: 'static,
{
    let high = timeline
        .iter()
        .flat_map(|s| [s.scheduled, s.sent, s.answered])
        .max()
        .unwrap_or(0) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption("throughput per second", ("sans-serif", 19))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0..x_max, 0.0..(high * 1.1).max(1.0))?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("calls per second")
        .label_style(("sans-serif", LABEL))
        .axis_desc_style(("sans-serif", LABEL))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let marked = x_max as usize <= MARKED_SECONDS;
    for flow in &THROUGHPUT {
        let (color, width) = (flow.color, flow.width);
        let points = timeline
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u64, (flow.value)(s) as f64));
        chart
            .draw_series(
                LineSeries::new(points, color.stroke_width(width)).point_size(if marked {
                    3
                } else {
                    0
                }),
            )?
            .label(flow.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
            });
    }
    legend(&mut chart)?;
    if timeline.is_empty() {
        no_data(area, "no data: the timeline is empty")?;
    }
    Ok(())
}

/// The series labels, top left on a white box.
fn legend<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
) -> Result<(), ChartError>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", LABEL))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    Ok(())
}

/// A note in the middle of a panel that has nothing to plot.
fn no_data<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str) -> Result<(), ChartError>
where
    DB::ErrorType: 'static,
{
    let (w, h) = area.dim_in_pixel();
    let style = ("sans-serif", 18)
        .into_font()
        .color(&BLACK.mix(0.6))
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(text, (w as i32 / 2, h as i32 / 2), style))?;
    Ok(())
}

/// An axis label: thousands separators, decimals only below 10.
fn tick(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    if v.abs() >= 10.0 {
        crate::numbers::group(v)
    } else if v.abs() >= 1.0 {
        trim(format!("{v:.1}"))
    } else {
        trim(format!("{v:.2}"))
    }
}

/// `2.50` → `2.5`, `3.0` → `3`.
fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadtest::results::RunInfo;
    use std::time::Duration;

    fn second(scheduled: u64, sent: u64, answered: u64, ms: &[u64]) -> Second {
        let mut s = Second {
            scheduled,
            sent,
            answered,
            ..Second::default()
        };
        for m in ms {
            s.latency.record(Duration::from_millis(*m));
        }
        s
    }

    fn results(timeline: Vec<Second>, scale: f64) -> Results {
        Results {
            run: RunInfo {
                shape: "500/s for 1m, ramp to 5000/s over 2m".into(),
                scale,
                shards: "1/2".into(),
                ..RunInfo::default()
            },
            timeline,
            ..Results::default()
        }
    }

    /// The text of every `<text>` element.
    fn texts(svg: &str) -> Vec<&str> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| t.split_once('>'))
            .filter_map(|(_, rest)| rest.split_once("</text>"))
            .map(|(text, _)| text.trim())
            .collect()
    }

    #[test]
    fn the_chart_has_both_panels_every_series_and_the_title() {
        let timeline = vec![
            second(100, 100, 90, &[10, 12, 15, 40]),
            second(120, 118, 125, &[11, 13, 20, 300]),
            second(0, 0, 3, &[]),
            second(80, 80, 80, &[9, 10, 11]),
        ];
        let svg = svg(&results(timeline, 2.0)).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        let texts = texts(&svg);
        for text in [
            "500/s for 1m, ramp to 5000/s over 2m — scale ×2, shards 1/2",
            "latency per second from the intended send time",
            "ms",
            "throughput per second",
            "seconds since start",
            "calls per second",
            "p50",
            "p99",
            "max",
            "scheduled",
            "sent",
            "answered",
        ] {
            assert!(texts.contains(&text), "no {text:?} in {texts:?}");
        }
        assert!(svg.contains("<polyline"));
        assert!(!svg.contains("no data"));
    }

    #[test]
    fn scale_one_is_left_out_of_the_title_and_text_is_escaped() {
        let mut r = results(vec![second(1, 1, 1, &[5])], 1.0);
        r.run.shape = "campaign <a & b>".into();
        let svg = svg(&r).unwrap();
        assert!(svg.contains("campaign &lt;a &amp; b&gt; — shards 1/2"));
        assert!(!svg.contains("scale ×"));
    }

    #[test]
    fn an_empty_or_all_zero_timeline_draws_without_panicking() {
        let empty = svg(&results(Vec::new(), 1.0)).unwrap();
        assert!(empty.contains("<svg") && empty.contains("no data: the timeline is empty"));
        let zeros = svg(&results(vec![Second::default(); 5], 0.5)).unwrap();
        assert!(zeros.contains("<svg") && zeros.contains("no data: no call has a latency"));
        assert!(zeros.contains("scale ×0.5") && !zeros.contains("NaN"));
    }

    #[test]
    fn a_wide_spread_of_latencies_gets_a_log_axis() {
        let timeline = (0..120)
            .map(|i| second(10, 10, 10, &[2, 3, if i == 60 { 30_000 } else { 4 }]))
            .collect();
        let svg = svg(&results(timeline, 1.0)).unwrap();
        assert!(svg.contains("ms (log scale)"));
        let narrow = super::svg(&results(vec![second(1, 1, 1, &[5, 8])], 1.0)).unwrap();
        assert!(!narrow.contains("log scale"));
    }

    #[test]
    fn ticks_are_for_people() {
        assert_eq!(tick(1_234_567.0), "1,234,567");
        assert_eq!(tick(12.4), "12");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(0.0), "0");
    }

    /// Writes an example chart to look at: `cargo test -p sendtime-campaign example_chart --
    /// --ignored`, then open /tmp/example-chart.svg.
    #[test]
    #[ignore]
    fn example_chart() {
        let timeline = (0..180u64)
            .map(|t| {
                let rate = if t < 60 {
                    500
                } else if t < 120 {
                    500 + (t - 60) * 75
                } else {
                    5000
                };
                let slow = if (130..140).contains(&t) { 400 } else { 0 };
                let ms: Vec<u64> = (0..400)
                    .map(|i| 8 + i % 7 + if i % 40 == 0 { 25 } else { 0 } + slow * (i % 3) / 2)
                    .collect();
                let mut s = second(rate, rate, 0, &ms);
                s.latency
                    .record(Duration::from_millis(60 + (t * 37) % 90 + slow));
                s.answered = if (130..140).contains(&t) {
                    rate * 8 / 10
                } else {
                    rate
                };
                s
            })
            .collect();
        let svg = svg(&results(timeline, 1.0)).unwrap();
        std::fs::write("/tmp/example-chart.svg", svg).unwrap();
    }
}
