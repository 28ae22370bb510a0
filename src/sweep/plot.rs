//! The sweep's plots, each as SVG and PNG: bits per weight against mean KLD (the
//! rate–distortion curve, log scale), bits per weight against perplexity, and KLD along the
//! context per type.
//!
//! Text is drawn with DejaVu Sans from the `dejavu` crate, registered with plotters' `ab_glyph`
//! font backend, so that no system font (and no fontconfig) is needed and the PNGs look the same
//! on every machine.

use super::results::SweepResults;
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::{Path, PathBuf};

/// Size of every plot in pixels (PNG) or user units (SVG).
pub const SIZE: (u32, u32) = (1200, 760);

const FONT: &str = "sans-serif";
const PALETTE: [(u8, u8, u8); 12] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (90, 90, 90),
    (188, 189, 34),
    (23, 190, 207),
    (0, 0, 140),
    (140, 0, 0),
];

fn color(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

fn register_fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("cannot draw the plot: {e:?}")
}

/// A log-scale range around the positive values of `v` (at least one decade).
fn log_range(v: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = v
        .filter(|x| x.is_finite() && *x > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(l, h), x| (l.min(x), h.max(x)));
    if !lo.is_finite() {
        return 1e-6..1.0;
    }
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf((hi.log10() + 0.35).ceil()).max(lo * 10.0);
    lo..hi
}

fn sci(v: &f64) -> String {
    let e = v.log10().round() as i32;
    if (v / 10f64.powi(e) - 1.0).abs() < 1e-6 {
        format!("1e{e}")
    } else {
        format!("{v:.0e}")
    }
}

fn bpw_label(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn subtitle(r: &SweepResults) -> String {
    let s = &r.settings;
    let name = Path::new(&r.baseline.path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| r.baseline.path.clone());
    format!(
        "{name} vs its checkpoint, {} chunks of {} tokens ({} scored)",
        s.chunks, s.ctx, s.n_tokens
    )
}

fn bpw_range(r: &SweepResults) -> std::ops::Range<f64> {
    let lo = r
        .results
        .iter()
        .map(|t| t.bpw)
        .fold(f64::INFINITY, f64::min);
    let hi = r.results.iter().map(|t| t.bpw).fold(0.0, f64::max);
    if !lo.is_finite() {
        return 0.0..16.0;
    }
    let pad = ((hi - lo) * 0.08).max(0.5);
    (lo - pad).max(0.0)..hi + pad
}

/// Font size of the points' labels, in pixels.
const LABEL_PX: i32 = 19;

/// A pixel rectangle: left, top, right, bottom.
type Rect = (i32, i32, i32, i32);

fn overlaps(a: Rect, b: Rect) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// Places one label per point (pixel positions) so that no label covers another label or a
/// marker in `obstacles` and all stay inside `area`: the first free spot on rings of growing
/// distance around the point. Returns each label's top-left corner.
fn place_labels(
    points: &[(i32, i32)],
    names: &[&str],
    obstacles: &[(i32, i32)],
    area: Rect,
) -> Vec<(i32, i32)> {
    // DejaVu Sans averages about 0.62 em per character in these names.
    let width = |n: &str| (n.chars().count() as f64 * LABEL_PX as f64 * 0.62).ceil() as i32;
    let h = LABEL_PX + 2;
    let marks: Vec<Rect> = obstacles
        .iter()
        .chain(points)
        .map(|&(x, y)| (x - 7, y - 7, x + 7, y + 7))
        .collect();
    let mut placed: Vec<Rect> = Vec::new();
    let mut out = Vec::new();
    for (&(x, y), name) in points.iter().zip(names) {
        let w = width(name);
        let mut best = None;
        'rings: for ring in 0..12 {
            let d = 9 + 16 * ring;
            let candidates = [
                (x + d, y - h / 2),
                (x - d - w, y - h / 2),
                (x + d / 2, y - d - h),
                (x - w - d / 2, y + d),
                (x + d / 2, y + d),
                (x - w - d / 2, y - d - h),
            ];
            for (lx, ly) in candidates {
                let r = (lx - 2, ly - 2, lx + w + 2, ly + h + 2);
                let inside = r.0 >= area.0 && r.1 >= area.1 && r.2 <= area.2 && r.3 <= area.3;
                if inside
                    && !placed.iter().any(|&p| overlaps(p, r))
                    && !marks.iter().any(|&m| overlaps(m, r))
                {
                    best = Some((lx, ly));
                    break 'rings;
                }
            }
        }
        let (lx, ly) = best.unwrap_or((x + 9, y - h / 2));
        placed.push((lx - 2, ly - 2, lx + w + 2, ly + h + 2));
        out.push((lx, ly));
    }
    out
}

/// Draws the labels of `points` (data coordinates) where [`place_labels`] puts them, with a thin
/// leader line when a label sits away from its point.
fn draw_labels<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    root: &DrawingArea<DB, Shift>,
    chart: &ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    points: &[(f64, f64, &str)],
    obstacles: &[(f64, f64)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let px: Vec<(i32, i32)> = points
        .iter()
        .map(|p| chart.backend_coord(&(p.0, p.1)))
        .collect();
    let obs: Vec<(i32, i32)> = obstacles.iter().map(|p| chart.backend_coord(p)).collect();
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let area = (xr.start, yr.start, xr.end, yr.end);
    let names: Vec<&str> = points.iter().map(|p| p.2).collect();
    let at = place_labels(&px, &names, &obs, area);
    for ((&(x, y), &(lx, ly)), name) in px.iter().zip(&at).zip(&names) {
        let w = (name.chars().count() as f64 * LABEL_PX as f64 * 0.62) as i32;
        let (cx, cy) = (x.clamp(lx, lx + w), y.clamp(ly, ly + LABEL_PX));
        if (cx - x).pow(2) + (cy - y).pow(2) > 18 * 18 {
            root.draw(&PathElement::new(
                vec![(x, y), (cx, cy)],
                RGBColor(120, 120, 120),
            ))
            .map_err(err)?;
        }
        root.draw(&Text::new(name.to_string(), (lx, ly), (FONT, LABEL_PX)))
            .map_err(err)?;
    }
    Ok(())
}

fn rate_distortion<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &SweepResults,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let ys = r.results.iter().flat_map(|t| [t.kld_mean, t.kld_p99]);
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("Rate–distortion: KLD vs bits per weight — {}", subtitle(r)),
            (FONT, 24),
        )
        .margin(24)
        .x_label_area_size(70)
        .y_label_area_size(110)
        .build_cartesian_2d(bpw_range(r), log_range(ys).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("bits per weight (bpw)")
        .y_desc("KLD vs baseline (nats, log scale)")
        .axis_desc_style((FONT, 22))
        .label_style((FONT, 19))
        .y_label_formatter(&sci)
        .x_label_formatter(&bpw_label)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    let mut pts: Vec<(f64, f64, f64, &str)> = r
        .results
        .iter()
        .map(|t| (t.bpw, t.kld_mean, t.kld_p99, t.file_type.as_str()))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mean_c, p99_c) = (color(0), color(3));
    let pos = |v: f64| v.is_finite() && v > 0.0;
    chart
        .draw_series(LineSeries::new(
            pts.iter().filter(|p| pos(p.2)).map(|p| (p.0, p.2)),
            p99_c.stroke_width(2),
        ))
        .map_err(err)?
        .label("99th percentile of the KLD")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 30, y)], p99_c.stroke_width(3)));
    chart
        .draw_series(
            pts.iter()
                .filter(|p| pos(p.2))
                .map(|p| TriangleMarker::new((p.0, p.2), 7, p99_c.filled())),
        )
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            pts.iter().filter(|p| pos(p.1)).map(|p| (p.0, p.1)),
            mean_c.stroke_width(3),
        ))
        .map_err(err)?
        .label("mean KLD (labelled with the type)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 30, y)], mean_c.stroke_width(3)));
    chart
        .draw_series(
            pts.iter()
                .enumerate()
                .filter(|(_, p)| pos(p.1))
                .map(|(_, p)| Circle::new((p.0, p.1), 6, mean_c.filled())),
        )
        .map_err(err)?;
    legend(&mut chart)?;
    let labels: Vec<(f64, f64, &str)> = pts
        .iter()
        .filter(|p| pos(p.1))
        .map(|p| (p.0, p.1, p.3))
        .collect();
    let others: Vec<(f64, f64)> = pts
        .iter()
        .filter(|p| pos(p.2))
        .map(|p| (p.0, p.2))
        .collect();
    draw_labels(root, &chart, &labels, &others)
}

fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .margin(12)
        .legend_area_size(48)
        .label_font((FONT, 19))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

fn bpw_ppl<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &SweepResults) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let mut lo = r.baseline.ppl;
    let mut hi = r.baseline.ppl;
    for t in &r.results {
        lo = lo.min(t.ppl - t.ppl_stderr);
        hi = hi.max(t.ppl + t.ppl_stderr);
    }
    let pad = ((hi - lo) * 0.12).max(hi.abs() * 1e-3);
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("Perplexity vs bits per weight — {}", subtitle(r)),
            (FONT, 24),
        )
        .margin(24)
        .x_label_area_size(70)
        .y_label_area_size(110)
        .build_cartesian_2d(bpw_range(r), (lo - pad)..(hi + pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("bits per weight (bpw)")
        .y_desc("perplexity (lower is better)")
        .axis_desc_style((FONT, 22))
        .label_style((FONT, 19))
        .x_label_formatter(&bpw_label)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    let (base_c, c) = (color(7), color(0));
    let (x0, x1) = (bpw_range(r).start, bpw_range(r).end);
    let b = r.baseline.ppl;
    chart
        .draw_series(DashedLineSeries::new(
            [(x0, b), (x1, b)],
            10,
            6,
            base_c.stroke_width(2),
        ))
        .map_err(err)?
        .label(format!("baseline (checkpoint) PPL {b:.3}"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 30, y)], base_c.stroke_width(2)));
    let mut pts: Vec<_> = r.results.iter().collect();
    pts.sort_by(|a, b| a.bpw.total_cmp(&b.bpw));
    chart
        .draw_series(pts.iter().map(|t| {
            PathElement::new(
                vec![(t.bpw, t.ppl - t.ppl_stderr), (t.bpw, t.ppl + t.ppl_stderr)],
                c.mix(0.35).stroke_width(2),
            )
        }))
        .map_err(err)?
        .label("± PPL uncertainty (llama-perplexity's)")
        .legend(move |(x, y)| {
            PathElement::new(
                vec![(x + 15, y - 8), (x + 15, y + 8)],
                c.mix(0.35).stroke_width(2),
            )
        });
    chart
        .draw_series(LineSeries::new(
            pts.iter().map(|t| (t.bpw, t.ppl)),
            c.stroke_width(3),
        ))
        .map_err(err)?
        .label("quantized file PPL (labelled with the type)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 30, y)], c.stroke_width(3)));
    chart
        .draw_series(
            pts.iter()
                .map(|t| Circle::new((t.bpw, t.ppl), 6, c.filled())),
        )
        .map_err(err)?;
    legend(&mut chart)?;
    let labels: Vec<(f64, f64, &str)> = pts
        .iter()
        .map(|t| (t.bpw, t.ppl, t.file_type.as_str()))
        .collect();
    draw_labels(root, &chart, &labels, &[])
}

fn kld_by_position<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &SweepResults,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let (plot, side) = root.split_horizontally(SIZE.0 - 190);
    let ys = r
        .results
        .iter()
        .flat_map(|t| t.drift.iter().map(|d| d.kld_mean));
    let first = r
        .results
        .iter()
        .flat_map(|t| t.drift.first())
        .map(|d| d.first_pos)
        .min()
        .unwrap_or(0);
    let last = r
        .results
        .iter()
        .flat_map(|t| t.drift.last())
        .map(|d| d.last_pos)
        .max()
        .unwrap_or(1)
        .max(first + 1);
    let mut chart = ChartBuilder::on(&plot)
        .caption(
            format!("Mean KLD along the context — {}", subtitle(r)),
            (FONT, 22),
        )
        .margin(24)
        .x_label_area_size(70)
        .y_label_area_size(110)
        .build_cartesian_2d(first as f64..last as f64, log_range(ys).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("position in the context (tokens; the second half of each chunk is scored)")
        .y_desc("mean KLD vs baseline (nats, log scale)")
        .axis_desc_style((FONT, 20))
        .label_style((FONT, 19))
        .y_label_formatter(&sci)
        .x_label_formatter(&bpw_label)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    // Largest KLD first, so that the legend reads top to bottom like the lines.
    let mut types: Vec<_> = r.results.iter().collect();
    types.sort_by(|a, b| b.kld_mean.total_cmp(&a.kld_mean));
    for (i, t) in types.iter().enumerate() {
        let c = color(i);
        let pts: Vec<(f64, f64)> = t
            .drift
            .iter()
            .filter(|d| d.kld_mean.is_finite() && d.kld_mean > 0.0)
            .map(|d| ((d.first_pos + d.last_pos) as f64 / 2.0, d.kld_mean))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(3)))
            .map_err(err)?;
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(err)?;
    }
    // The legend, beside the plot so that it covers no line.
    side.draw(&Text::new(
        "type (bpw)",
        (8, 70),
        (FONT, 20).into_font().style(FontStyle::Bold),
    ))
    .map_err(err)?;
    for (i, t) in types.iter().enumerate() {
        let y = 108 + 30 * i as i32;
        let c = color(i);
        side.draw(&PathElement::new(vec![(8, y), (40, y)], c.stroke_width(4)))
            .map_err(err)?;
        side.draw(&Circle::new((24, y), 4, c.filled()))
            .map_err(err)?;
        side.draw(&Text::new(
            format!("{} ({:.2})", t.file_type, t.bpw),
            (48, y - 10),
            (FONT, 19),
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// The plots' file stems.
const PLOTS: [&str; 3] = ["rate_distortion", "ppl", "kld_by_position"];

fn draw<DB: DrawingBackend>(
    stem: &str,
    root: &DrawingArea<DB, Shift>,
    r: &SweepResults,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    match stem {
        "rate_distortion" => rate_distortion(root, r),
        "ppl" => bpw_ppl(root, r),
        _ => kld_by_position(root, r),
    }
}

/// Draws every plot of `r` into `dir` as `<stem>.svg` and `<stem>.png` (each written through a
/// temp file and renamed into place) and returns the paths.
pub fn write_plots(dir: &Path, r: &SweepResults) -> Result<Vec<PathBuf>> {
    register_fonts();
    let mut written = Vec::new();
    for stem in PLOTS {
        let mut text = String::new();
        {
            let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
            draw(stem, &root, r)?;
            root.present().map_err(err)?;
        }
        let p = dir.join(format!("{stem}.svg"));
        crate::atomic_file::write_bytes_atomic(&p, text.as_bytes())?;
        written.push(p);

        let (w, h) = SIZE;
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
            draw(stem, &root, r)?;
            root.present().map_err(err)?;
        }
        let p = dir.join(format!("{stem}.png"));
        crate::atomic_file::write_bytes_atomic(&p, &encode_png(&rgb, w, h)?)?;
        written.push(p);
    }
    Ok(written)
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Best);
        enc.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
        let mut wr = enc.write_header().map_err(err)?;
        wr.write_image_data(rgb).map_err(err)?;
        wr.finish().map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_do_not_overlap_each_other_or_the_points() {
        // Five points within a few pixels of each other, as k-quant types of similar size are.
        let pts = [(400, 300), (404, 303), (409, 301), (600, 500), (603, 498)];
        let names = ["Q5_K_S", "Q5_K_M", "Q5_1", "Q4_K_S", "Q4_K_M"];
        let at = place_labels(&pts, &names, &[], (100, 50, 1100, 700));
        let w = |n: &str| (n.chars().count() as f64 * LABEL_PX as f64 * 0.62).ceil() as i32;
        let rects: Vec<Rect> = at
            .iter()
            .zip(names)
            .map(|(&(x, y), n)| (x, y, x + w(n), y + LABEL_PX + 2))
            .collect();
        for (i, a) in rects.iter().enumerate() {
            for b in &rects[i + 1..] {
                assert!(!overlaps(*a, *b), "{a:?} {b:?}");
            }
            for &(x, y) in &pts {
                assert!(
                    !overlaps(*a, (x - 6, y - 6, x + 6, y + 6)),
                    "{a:?} covers ({x}, {y})"
                );
            }
            assert!(a.0 >= 100 && a.1 >= 50 && a.2 <= 1100 && a.3 <= 700);
        }
    }
}
