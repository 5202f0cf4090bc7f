//! An SVG bar chart: delivered Mpps per frame size per backend, with
//! min-max error bars. Hand-written SVG, no dependencies.

use std::fmt::Write as _;

use crate::report::Report;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 400.0;
const MARGIN_LEFT: f64 = 64.0;
const MARGIN_BOTTOM: f64 = 56.0;
const MARGIN_TOP: f64 = 40.0;
const COLORS: [(&str, &str); 2] = [("xbridge", "#2b6cb0"), ("kernel", "#c05621")];

/// Renders `report` as an SVG document.
pub fn svg(report: &Report) -> String {
    let mut groups: Vec<(String, usize)> = Vec::new();
    for result in &report.results {
        let key = (result.case.clone(), result.frame_size);
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    let top = report
        .results
        .iter()
        .map(|r| r.delivered_mpps.max)
        .fold(0.0f64, f64::max)
        .max(0.001);
    let scale_top = nice_ceiling(top);
    let plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let plot_width = WIDTH - MARGIN_LEFT - 16.0;
    let y = |value: f64| MARGIN_TOP + plot_height * (1.0 - value / scale_top);
    let group_width = plot_width / groups.len().max(1) as f64;
    let bar_width = group_width / 3.0;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">Delivered Mpps by frame size (median, min-max bars; {} pairs)</text>"#,
        WIDTH / 2.0,
        report.config.pairs
    );
    for step in 0..=4 {
        let value = scale_top * step as f64 / 4.0;
        let _ = writeln!(
            out,
            r##"<line x1="{MARGIN_LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{value:.2}</text>"##,
            WIDTH - 16.0,
            MARGIN_LEFT - 6.0,
            y(value) + 4.0,
            y = y(value)
        );
    }
    let _ = writeln!(
        out,
        r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">Mpps</text>"#,
        MARGIN_TOP + plot_height / 2.0
    );
    for (index, (case, size)) in groups.iter().enumerate() {
        let left = MARGIN_LEFT + group_width * index as f64;
        for (slot, (backend, color)) in COLORS.iter().enumerate() {
            let Some(result) = report
                .results
                .iter()
                .find(|r| &r.case == case && r.frame_size == *size && r.backend == *backend)
            else {
                continue;
            };
            let x = left + bar_width * (0.5 + slot as f64);
            let spread = result.delivered_mpps;
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{backend} {case} {size} B: {:.3} Mpps</title></rect>"#,
                y(spread.median),
                bar_width * 0.9,
                (y(0.0) - y(spread.median)).max(0.0),
                spread.median
            );
            let middle = x + bar_width * 0.45;
            let _ = writeln!(
                out,
                r#"<line x1="{middle:.1}" x2="{middle:.1}" y1="{:.1}" y2="{:.1}" stroke="black"/><line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="black"/><line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="black"/>"#,
                y(spread.min),
                y(spread.max),
                middle - 5.0,
                middle + 5.0,
                y(spread.min),
                y(spread.min),
                middle - 5.0,
                middle + 5.0,
                y(spread.max),
                y(spread.max)
            );
        }
        let label = if case == "untagged" {
            format!("{size} B")
        } else {
            format!("{size} B {case}")
        };
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            left + group_width / 2.0,
            HEIGHT - MARGIN_BOTTOM + 18.0
        );
    }
    for (slot, (backend, color)) in COLORS.iter().enumerate() {
        let x = MARGIN_LEFT + 160.0 * slot as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{:.1}" width="12" height="12" fill="{color}"/><text x="{}" y="{:.1}">{backend}</text>"#,
            HEIGHT - 22.0,
            x + 18.0,
            HEIGHT - 12.0
        );
    }
    out.push_str("</svg>\n");
    out
}

/// A round number at or above `value` for the axis top.
fn nice_ceiling(value: f64) -> f64 {
    let magnitude = 10f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= value {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_ceiling(0.73), 1.0);
        assert_eq!(nice_ceiling(1.7), 2.0);
        assert_eq!(nice_ceiling(2.2), 2.5);
        assert_eq!(nice_ceiling(31.0), 50.0);
    }
}
