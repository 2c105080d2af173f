//! Charts as inline SVG, drawn on the server from the metrics' minute
//! ring: no chart library and nothing for the browser to fetch. Only
//! numbers and fixed labels go into the markup.

use std::fmt::Write as _;

/// One line of a chart: a value per slot, `None` where nothing is known.
pub struct Series {
    pub name: &'static str,
    /// CSS class of the line and its legend entry.
    pub class: &'static str,
    pub values: Vec<Option<f64>>,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 10.0;

/// A line chart of `series` over the slots of the last hour (oldest
/// left), with its largest value on the y axis in `unit`.
pub fn lines(title: &str, unit: &str, series: &[Series]) -> String {
    let slots = series.iter().map(|s| s.values.len()).max().unwrap_or(0).max(2);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0_f64, |a, &b| a.max(b))
        .max(1.0);
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| LEFT + plot_w * i as f64 / (slots - 1) as f64;
    let y = |v: f64| TOP + plot_h * (1.0 - v / max);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"#,
        escape(title)
    );
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" y1="{b}" x2="{r}" y2="{b}"/><line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{b}"/>"#,
        b = TOP + plot_h,
        r = LEFT + plot_w
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="end">{} {}</text><text x="{}" y="{}" text-anchor="end">0</text>"#,
        LEFT - 4.0,
        TOP + 10.0,
        trim(max),
        escape(unit),
        LEFT - 4.0,
        TOP + plot_h
    );
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="{h}">−60 min</text><text x="{r}" y="{h}" text-anchor="end">now</text>"#,
        h = HEIGHT - 6.0,
        r = LEFT + plot_w
    );
    for s in series {
        // A gap (None) ends one polyline and starts the next.
        let mut run: Vec<String> = Vec::new();
        for (i, v) in s.values.iter().chain([&None]).enumerate() {
            match v {
                Some(v) => run.push(format!("{:.1},{:.1}", x(i), y(*v))),
                None if !run.is_empty() => {
                    let _ = write!(svg, r#"<polyline class="{}" points="{}"/>"#, s.class, run.join(" "));
                    run.clear();
                }
                None => {}
            }
        }
    }
    svg.push_str("</svg>");
    let mut legend = String::from(r#"<p class="legend">"#);
    for s in series {
        let _ = write!(legend, r#"<span class="{}">━ {}</span> "#, s.class, escape(s.name));
    }
    legend.push_str("</p>");
    format!(
        "<figure><figcaption>{}</figcaption>{svg}{legend}</figure>",
        escape(title)
    )
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Escapes text for HTML (titles and units are ours, but stay safe).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_splits_a_line_and_the_axis_shows_the_largest_value() {
        let svg = lines(
            "Target vs current",
            "instances",
            &[Series {
                name: "current",
                class: "current",
                values: vec![Some(1.0), Some(2.0), None, Some(4.0)],
            }],
        );
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains(">4 instances<"), "{svg}");
        assert!(svg.contains("━ current"));
    }
}
