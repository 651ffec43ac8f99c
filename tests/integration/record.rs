//! `report` on recordings as `--record` writes them, and on files that are not recordings.

use crate::common::*;

/// A small recording: two runs of samples a minute apart, a finding opened and closed.
pub fn recording(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("deploy.ndjson");
    let t0: i64 = 1_796_220_000_000;
    let mut lines = vec![format!(
        r#"{{"sessiontop_recording":1,"target":"redis://prod:6379","interval_ms":2000,"started_at":{t0}}}"#
    )];
    for i in 0..30i64 {
        let t = t0 + i * 2000;
        lines.push(format!(
            r#"{{"t":{t},"f":{{"used_memory":{},"clients":{},"sessions":{},"stage:uploaded":{},"uptime_seconds":{}}}}}"#,
            1_000_000 + i * 1000,
            40 + i % 3,
            500 + i,
            100 + i,
            9000 + i * 2
        ));
    }
    lines.push(format!(
        r#"{{"t":{},"open":{{"kind":"stale_lock","severity":"warning","count":1,"summary":"the lock <script> has no TTL"}}}}"#,
        t0 + 10_000
    ));
    lines.push(format!(r#"{{"t":{},"close":"stale_lock"}}"#, t0 + 30_000));
    // sessiontop down for five minutes, Redis restarted meanwhile.
    let t1 = t0 + 360_000;
    lines.push(format!(
        r#"{{"sessiontop_recording":1,"target":"redis://prod:6379","interval_ms":2000,"resumed_at":{t1}}}"#
    ));
    for i in 0..30i64 {
        let t = t1 + i * 2000;
        lines.push(format!(
            r#"{{"t":{t},"f":{{"used_memory":2000000,"clients":44,"sessions":420,"uptime_seconds":{}}}}}"#,
            10 + i * 2
        ));
    }
    lines.push("not json at all".into());
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn a_report_tells_the_span_gaps_restarts_peaks_and_findings_and_writes_a_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = recording(&dir);
    let html = dir.path().join("report.html");
    // No Redis needed: the URL points nowhere.
    let out = sessiontop("redis://127.0.0.1:1", &dir)
        .args(["report", path.to_str().unwrap(), "--html", html.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("target    redis://prod:6379"), "{text}");
    assert!(text.contains("60 samples every 2s"), "{text}");
    assert!(text.contains("gaps      1 (nothing heard)") && text.contains("(5m02s)"), "{text}");
    assert!(text.contains("restarts  1 (Redis's uptime went back)"), "{text}");
    assert!(text.lines().any(|l| l.contains("used memory") && l.contains("1.91 MiB")), "{text}");
    assert!(text.contains("warning  stale_lock (1): the lock <script> has no TTL"), "{text}");
    assert!(text.contains("closed   stale_lock"), "{text}");
    assert!(text.contains("1 lines could not be read and were skipped"), "{text}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>") && page.contains("<svg"), "{page}");
    assert!(page.contains("&lt;script&gt;") && !page.contains("<script"), "no script, and the summary escaped");
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("src="), "self-contained");
    // The gap breaks the lines: more than one run in the memory chart.
    let memory = page.split("<figcaption>used memory</figcaption>").nth(1).unwrap().split("</figure>").next().unwrap();
    assert!(memory.matches("<polyline").count() >= 2, "{memory}");
}

#[test]
fn a_file_that_is_not_a_recording_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("notes.txt");
    std::fs::write(&other, "hello\n").unwrap();
    for (file, says) in
        [(other.clone(), "is not a sessiontop recording"), (dir.path().join("absent"), "cannot read the recording")]
    {
        let out = sessiontop("redis://127.0.0.1:1", &dir).args(["report", file.to_str().unwrap()]).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says) && err.lines().count() == 1, "{err}");
    }
}
