//! `hnet-gpt plot RUN_DIR`: training and validation curves from `metrics.jsonl`, as SVG (plotters).

use std::path::Path;

use anyhow::{bail, Context, Result};
use plotters::prelude::*;

/// One named series of (step, value) points.
type Series = (&'static str, RGBColor, Vec<(f64, f64)>);

fn read_series(run: &Path) -> Result<Vec<serde_json::Value>> {
    let path = crate::run_dir::metrics_file(run);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

fn points(rows: &[serde_json::Value], kind: &str, key: &str) -> Vec<(f64, f64)> {
    rows.iter()
        .filter(|r| r["kind"] == kind)
        .filter_map(|r| Some((r["step"].as_f64()?, r[key].as_f64()?)))
        .filter(|(_, v)| v.is_finite())
        .collect()
}

pub(crate) fn draw(path: &Path, title: &str, y_label: &str, series: &[Series]) -> Result<()> {
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.2.iter().copied()).collect();
    if all.is_empty() {
        return Ok(());
    }
    let x_max = all.iter().map(|p| p.0).fold(1.0, f64::max);
    let (y_min, y_max) = all.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let pad = ((y_max - y_min) * 0.05).max(1e-3);
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, (y_min - pad)..(y_max + pad))?;
    chart.configure_mesh().x_desc("step").y_desc(y_label).draw()?;
    for (name, color, pts) in series {
        let color = *color;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        if pts.len() < 60 {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
    root.present()?;
    Ok(())
}

/// Writes `loss.svg` (train and validation loss) and, for chunking models, `chunks.svg` (mean chunk length).
pub fn plot_run(run: &Path) -> Result<()> {
    let rows = read_series(run)?;
    let train = points(&rows, "train", "loss");
    let valid = points(&rows, "valid", "loss");
    if train.is_empty() && valid.is_empty() {
        bail!("{} has no metrics yet", crate::run_dir::metrics_file(run).display());
    }
    let name = run.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let loss = run.join("loss.svg");
    draw(&loss, &format!("{name}: loss"), "cross-entropy (nats/token)", &[("train", BLUE, train), ("validation", RED, valid)])?;
    println!("wrote {}", loss.display());
    let chunks = points(&rows, "valid", "mean_chunk_tokens");
    if !chunks.is_empty() {
        let path = run.join("chunks.svg");
        draw(&path, &format!("{name}: mean chunk length"), "tokens per chunk", &[("validation", GREEN, chunks)])?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The comparison's plots: validation loss per architecture (mean over seeds) and chunk-length distributions.
pub fn compare_plots(out: &Path, rows: &[serde_json::Value]) -> Result<()> {
    let colors = [BLUE, RED, GREEN];
    let mut series = Vec::new();
    for (arch, color) in ["gpt2", "hnet", "hybrid"].into_iter().zip(colors) {
        let mut by_step: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
        for r in rows.iter().filter(|r| r["arch"] == arch) {
            // Runs are named relative to the comparison's directory.
            let run = out.join(r["run"].as_str().unwrap_or(""));
            for (step, loss) in points(&read_series(&run)?, "valid", "loss") {
                by_step.entry(step as u64).or_default().push(loss);
            }
        }
        let pts = by_step.into_iter().map(|(s, v)| (s as f64, v.iter().sum::<f64>() / v.len() as f64)).collect();
        series.push((arch, color, pts));
    }
    draw(&out.join("valid_loss.svg"), "validation loss (mean over seeds)", "cross-entropy (nats/token)", &series)?;
    // Chunk lengths: relative frequency of each length (1..=16, longer ones pooled at 16).
    let mut hist = Vec::new();
    for (arch, color) in ["hnet", "hybrid"].into_iter().zip([RED, GREEN]) {
        let lengths: Vec<usize> = rows
            .iter()
            .filter(|r| r["arch"] == arch)
            .flat_map(|r| r["eval"]["chunks"]["chunk_lengths"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_u64().map(|x| x as usize))
            .collect();
        if lengths.is_empty() {
            continue;
        }
        let total = lengths.len() as f64;
        let pts = (1..=16).map(|l| (l as f64, lengths.iter().filter(|&&x| x.min(16) == l).count() as f64 / total)).collect();
        hist.push((arch, color, pts));
    }
    if !hist.is_empty() {
        draw(&out.join("chunk_lengths.svg"), "chunk length distribution (16 = 16 or more)", "fraction of chunks", &hist)?;
    }
    Ok(())
}
