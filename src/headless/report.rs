//! `sessiontop report FILE [--html OUT]`: what a recording saw, for a post-deploy review: its
//! span, the gaps (sessiontop or Redis not heard from) and Redis restarts, each figure's peak and
//! when, the findings as a timeline, and the sessions per stage over time. `--html` writes the
//! same as one self-contained page with inline SVG charts (no script, no external URL).

use std::fmt::Write as _;

use crate::engine::domain::Millis;
use crate::engine::history::{FIGURES, GROUPS, STAGE_PREFIX, Unit, Window};
use crate::export::record::Recording;
use crate::util::text;

/// Findings listed in a text report at most (the newest); the HTML lists them all.
const TEXT_EVENTS: usize = 200;
/// Points a chart's line has at most.
const CHART_POINTS: usize = 600;
/// Columns of the per-stage table.
const STAGE_COLUMNS: usize = 6;

/// A time as a report prints it, in `offset_s` from UTC: `2026-12-02 14:03:05`.
fn when(at: Millis, offset_s: i32) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .zip(chrono::FixedOffset::east_opt(offset_s))
        .map(|(t, o)| t.with_timezone(&o).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| at.to_string())
}

fn value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Bytes => text::human_bytes(v.max(0.0) as u64),
        Unit::Count => text::grouped(v.max(0.0).round() as u64),
        Unit::PerSecond => format!("{v:.1}/s"),
        Unit::Share => format!("{:.1}%", v * 100.0),
        Unit::Ratio => format!("{v:.2}"),
    }
}

/// Redis restarts the recording shows: times its uptime went back.
fn restarts(r: &Recording) -> Vec<Millis> {
    let Some(h) = r.history.get(crate::engine::history::UPTIME) else { return Vec::new() };
    let (Some(first), Some(last)) = (r.first, r.last) else { return Vec::new() };
    let w = h.window(first, last, Millis::MAX / 4, usize::MAX);
    let points: Vec<_> = w.runs.iter().flatten().collect();
    points.windows(2).filter(|p| p[1].min < p[0].max).map(|p| p[1].at).collect()
}

/// A stage and its counts at the table's times (`None` where nothing was heard).
type StageRow = (String, Vec<Option<f64>>);

/// The per-stage counts at `STAGE_COLUMNS` times across the recording.
fn stage_table(r: &Recording) -> (Vec<Millis>, Vec<StageRow>) {
    let (Some(first), Some(last)) = (r.first, r.last) else { return (Vec::new(), Vec::new()) };
    let times: Vec<Millis> = (0..STAGE_COLUMNS)
        .map(|i| first + (last - first) * i as Millis / (STAGE_COLUMNS as Millis - 1).max(1))
        .collect();
    let rows = r
        .history
        .with_prefix(STAGE_PREFIX)
        .map(|(name, h)| {
            let values = times.iter().map(|t| h.at(*t, Millis::MAX / 4).map(|p| p.mean)).collect();
            (name[STAGE_PREFIX.len()..].to_string(), values)
        })
        .collect();
    (times, rows)
}

/// The report as text.
pub fn text(r: &Recording, file: &str, offset_s: i32) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "sessiontop report: {}", text::escape_str(file));
    let _ = writeln!(out, "target    {}", text::escape_str(&r.target));
    match (r.first, r.last) {
        (Some(first), Some(last)) => {
            let _ = writeln!(
                out,
                "span      {} → {} ({}), {} samples every {}",
                when(first, offset_s),
                when(last, offset_s),
                text::human_duration((last - first) / 1000),
                text::grouped(r.samples),
                text::human_duration((r.interval_ms / 1000).max(1) as i64)
            );
        }
        _ => {
            let _ = writeln!(out, "span      no samples");
        }
    }
    if r.gaps.is_empty() {
        let _ = writeln!(out, "gaps      none");
    } else {
        let listed: Vec<String> = r
            .gaps
            .iter()
            .take(20)
            .map(|(from, to)| {
                format!(
                    "{} → {} ({})",
                    when(*from, offset_s),
                    when(*to, offset_s),
                    text::human_duration((to - from) / 1000)
                )
            })
            .collect();
        let more = if r.gaps.len() > 20 { format!(", and {} more", r.gaps.len() - 20) } else { String::new() };
        let _ = writeln!(out, "gaps      {} (nothing heard): {}{more}", r.gaps.len(), listed.join("; "));
    }
    let restarted = restarts(r);
    if restarted.is_empty() {
        let _ = writeln!(out, "restarts  none seen");
    } else {
        let at: Vec<String> = restarted.iter().map(|t| when(*t, offset_s)).collect();
        let _ = writeln!(out, "restarts  {} (Redis's uptime went back): {}", restarted.len(), at.join(", "));
    }
    let _ = writeln!(out, "\npeaks");
    for f in FIGURES {
        if let Some((v, at)) = r.peaks.get(f.name) {
            let _ = writeln!(out, "  {:<22} {:>14}  at {}", f.label, value(f.unit, *v), when(*at, offset_s));
        }
    }
    let _ = writeln!(out, "\nfindings ({} events)", r.events.len());
    let skip = r.events.len().saturating_sub(TEXT_EVENTS);
    if skip > 0 {
        let _ = writeln!(out, "  … {skip} earlier events left out (the HTML lists them all)");
    }
    for e in r.events.iter().skip(skip) {
        match &e.opened {
            Some((severity, count, summary)) => {
                let _ = writeln!(
                    out,
                    "  {}  {:<8} {} ({}): {}",
                    when(e.at, offset_s),
                    severity,
                    text::escape_str(&e.kind),
                    text::grouped(*count),
                    text::clip(&text::escape_str(summary), 160)
                );
            }
            None => {
                let _ = writeln!(out, "  {}  closed   {}", when(e.at, offset_s), text::escape_str(&e.kind));
            }
        }
    }
    let (times, rows) = stage_table(r);
    if !rows.is_empty() {
        let width = rows.iter().map(|(s, _)| text::escape_str(s).chars().count()).max().unwrap_or(5).clamp(5, 32);
        let _ = writeln!(out, "\nsessions per stage");
        let head: Vec<String> = times.iter().map(|t| format!("{:>8}", &when(*t, offset_s)[11..16])).collect();
        let _ = writeln!(out, "  {:<width$} {}", "stage", head.join(" "));
        for (stage, values) in rows {
            let cells: Vec<String> =
                values.iter().map(|v| format!("{:>8}", v.map_or("–".into(), |v| value(Unit::Count, v)))).collect();
            let _ = writeln!(out, "  {:<width$} {}", text::clip(&text::escape_str(&stage), width), cells.join(" "));
        }
    }
    if r.skipped > 0 {
        let _ = writeln!(out, "\n{} lines could not be read and were skipped", text::grouped(r.skipped));
    }
    out
}

/// Text for HTML: `&`, `<`, `>` and quotes escaped (after the terminal escaping of control
/// characters, so nothing from Redis reaches the page raw).
fn h(s: &str) -> String {
    text::escape_str(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Colours of the lines in a chart, in turn.
const COLOURS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// One chart as inline SVG: each series a polyline per run (broken at gaps).
fn svg_chart(title: &str, unit: Unit, series: &[(String, Window)], from: Millis, to: Millis, offset_s: i32) -> String {
    let (w, hgt, left, bottom) = (760.0, 200.0, 70.0, 24.0);
    let (lo, hi) = series
        .iter()
        .filter_map(|(_, win)| win.bounds())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (l, h)| (a.min(l), b.max(h)));
    let mut out = String::new();
    let _ = write!(out, "<figure><figcaption>{}</figcaption>", h(title));
    if !lo.is_finite() {
        out.push_str("<p class=\"none\">nothing recorded</p></figure>");
        return out;
    }
    let lo = if unit == Unit::Ratio { lo } else { lo.min(0.0) };
    let hi = if (hi - lo).abs() < f64::EPSILON { lo + 1.0 } else { hi };
    let span = (to - from).max(1) as f64;
    let x = |at: Millis| left + (at - from) as f64 / span * (w - left - 10.0);
    let y = |v: f64| 10.0 + (hi - v) / (hi - lo) * (hgt - bottom - 10.0);
    let _ = write!(out, "<svg viewBox=\"0 0 {w} {hgt}\" width=\"{w}\" height=\"{hgt}\" role=\"img\">");
    let _ = write!(
        out,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/>",
        hgt - bottom,
        w - 10.0,
        hgt - bottom
    );
    for (v, label) in [(lo, value(unit, lo)), (hi, value(unit, hi))] {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y(v) + 4.0,
            h(&label)
        );
    }
    for (at, anchor) in [(from, "start"), (to, "end")] {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" class=\"axis\" text-anchor=\"{anchor}\">{}</text>",
            x(at),
            hgt - 6.0,
            h(&when(at, offset_s))
        );
    }
    for (i, (name, win)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        for run in &win.runs {
            if let [p] = run.as_slice() {
                // A lone sample between gaps: a dot, since a line of one point is not drawn.
                let _ =
                    write!(out, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{colour}\"/>", x(p.at), y(p.mean));
                continue;
            }
            let points: Vec<String> = run.iter().map(|p| format!("{:.1},{:.1}", x(p.at), y(p.mean))).collect();
            let _ = write!(
                out,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"><title>{}</title></polyline>",
                points.join(" "),
                h(name)
            );
        }
    }
    out.push_str("</svg>");
    if series.len() > 1 {
        out.push_str("<p class=\"legend\">");
        for (i, (name, _)) in series.iter().enumerate() {
            let _ = write!(out, "<span style=\"color:{}\">■</span> {} ", COLOURS[i % COLOURS.len()], h(name));
        }
        out.push_str("</p>");
    }
    out.push_str("</figure>");
    out
}

/// The report as one self-contained HTML page.
pub fn html(r: &Recording, file: &str, offset_s: i32) -> String {
    let mut out = String::with_capacity(64 << 10);
    out.push_str(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>sessiontop report</title><style>\
         body{font-family:system-ui,sans-serif;margin:2em;max-width:820px;color:#222}\
         pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}\
         figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.3em}\
         .axis{font-size:11px;fill:#555}.legend{font-size:12px}.none{color:#888}\
         table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;text-align:right}td:first-child,th:first-child{text-align:left}\
         </style></head><body>",
    );
    let _ = write!(out, "<h1>sessiontop report</h1><p>{} · {}</p>", h(file), h(&r.target));
    let _ = write!(out, "<pre>{}</pre>", h(&text(r, file, offset_s)));
    if let (Some(first), Some(last)) = (r.first, r.last) {
        let step = (r.interval_ms.max(1000) * 3) as Millis;
        // A series breaks where its samples are much further apart than usual (a census pass
        // comes every few polls, a poll every interval).
        let of = |hst: &crate::engine::history::History| {
            hst.window(first, last, (hst.typical_step() * 3).max(step), CHART_POINTS)
        };
        let window = |name: &str| r.history.get(name).map(of);
        for f in FIGURES {
            let mut series: Vec<(String, Window)> =
                window(f.name).into_iter().map(|w| (f.label.to_string(), w)).collect();
            if series.is_empty() {
                continue;
            }
            if f.name == crate::engine::history::USED_MEMORY
                && let Some(max) =
                    window(crate::engine::history::MAXMEMORY).filter(|w| w.bounds().is_some_and(|(_, hi)| hi > 0.0))
            {
                series.push(("maxmemory".into(), max));
            }
            out.push_str(&svg_chart(f.label, f.unit, &series, first, last, offset_s));
        }
        for (label, prefix, unit) in GROUPS {
            let series: Vec<(String, Window)> = r
                .history
                .with_prefix(prefix)
                .take(COLOURS.len())
                .map(|(name, hst)| (name[prefix.len()..].to_string(), of(hst)))
                .collect();
            if !series.is_empty() {
                out.push_str(&svg_chart(label, unit, &series, first, last, offset_s));
            }
        }
    }
    out.push_str(
        "<h2>Findings</h2><table><tr><th>when</th><th>what</th><th>finding</th><th>count</th><th>summary</th></tr>",
    );
    for e in &r.events {
        match &e.opened {
            Some((severity, count, summary)) => {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
                    h(&when(e.at, offset_s)),
                    h(severity),
                    h(&e.kind),
                    count,
                    h(summary)
                );
            }
            None => {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>closed</td><td>{}</td><td></td><td></td></tr>",
                    h(&when(e.at, offset_s)),
                    h(&e.kind)
                );
            }
        }
    }
    out.push_str("</table></body></html>\n");
    out
}
