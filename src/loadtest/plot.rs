//! `--plot FILE.svg`: throughput and request-latency percentiles over the stream phase.
//!
//! Plotters' SVG backend is used without its font features: text is written as SVG `<text>` elements that
//! the viewer renders with its own fonts, so no system font (and no fontconfig) is needed here. Label
//! placement uses plotters' built-in size estimate, which is close enough for axis labels.

use std::path::Path;

use plotters::prelude::*;

use super::stats::TimelinePoint;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Top highest value of `values`, with headroom, never zero (plotters needs a non-empty range).
fn upper(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.fold(0.0f64, f64::max);
    if max > 0.0 {
        max * 1.1
    } else {
        1.0
    }
}

/// Draws the timeline to an SVG file.
pub fn write_svg(path: &Path, title: &str, points: &[TimelinePoint]) -> Result<(), String> {
    let root = SVGBackend::new(path, (1000, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(360);
    let t_max = points.last().map_or(1.0, |p| p.t_s.max(1.0));

    let mut throughput = ChartBuilder::on(&top)
        .caption(format!("{title} — throughput"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(
            0f64..t_max,
            0f64..upper(points.iter().map(|p| p.messages_per_s)),
        )
        .map_err(err)?;
    throughput
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("messages/s")
        .draw()
        .map_err(err)?;
    throughput
        .draw_series(LineSeries::new(
            points.iter().map(|p| (p.t_s, p.messages_per_s)),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?;
    // Markers, so a run of one interval still shows its point.
    throughput
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.t_s, p.messages_per_s), 3, BLUE.filled())),
        )
        .map_err(err)?;

    let mut latency = ChartBuilder::on(&bottom)
        .caption("ingest request latency", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..t_max, 0f64..upper(points.iter().map(|p| p.p99_ms)))
        .map_err(err)?;
    latency
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("ms")
        .draw()
        .map_err(err)?;
    type Series = (&'static str, fn(&TimelinePoint) -> f64, RGBColor);
    let series: [Series; 3] = [
        ("p50", |p| p.p50_ms, GREEN),
        ("p90", |p| p.p90_ms, BLUE),
        ("p99", |p| p.p99_ms, RED),
    ];
    for (name, value, color) in series {
        latency
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.t_s, value(p))),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    latency
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_both_charts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.svg");
        let points: Vec<_> = (1..=5)
            .map(|i| TimelinePoint {
                t_s: i as f64,
                messages_per_s: 1000.0 * i as f64,
                p50_ms: 1.0,
                p90_ms: 2.0,
                p99_ms: 3.0 + i as f64,
                errors: 0,
            })
            .collect();
        write_svg(&path, "test", &points).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..50.min(svg.len())]);
        assert!(svg.contains("messages/s") && svg.contains("p99"));
        assert!(svg.matches("<polyline").count() >= 4, "one line per series");
        write_svg(&path, "empty", &[]).unwrap();
    }
}
