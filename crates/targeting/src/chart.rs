//! The gain chart as SVG: share of opens captured against share of the audience sent, one
//! line per ranking, with the headline share of opens marked.

use crate::gain::{GainCurve, HEADLINE_SHARE};
use plotters::prelude::*;

/// Draws `curves` into an SVG document, titled `title`.
pub fn gain_svg(curves: &[GainCurve], title: &str) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..100f64, 0f64..100f64)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("audience sent (%)")
            .y_desc("opens of a full send captured (%)")
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                [
                    (0.0, 100.0 * HEADLINE_SHARE),
                    (100.0, 100.0 * HEADLINE_SHARE),
                ],
                ShapeStyle::from(&BLACK.mix(0.3)).stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label(format!("{:.0} % of opens", 100.0 * HEADLINE_SHARE))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.3)));
        let colors = [RED, BLUE, RGBColor(120, 120, 120), RGBColor(0, 150, 70)];
        for (curve, color) in curves.iter().zip(colors.iter().cycle()) {
            let color = *color;
            let label = format!(
                "{} — {:.1} % of opens at 50 % sent",
                curve.name,
                100.0 * curve.opens_at(0.5)
            );
            chart
                .draw_series(LineSeries::new(
                    curve.points.iter().map(|(x, y)| (100.0 * x, 100.0 * y)),
                    ShapeStyle::from(&color).stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(
                        [(x, y), (x + 20, y)],
                        ShapeStyle::from(&color).stroke_width(2),
                    )
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}
