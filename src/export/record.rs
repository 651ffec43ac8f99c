//! Recordings (`--record FILE`): one compact JSON line per poll with every figure the dashboard
//! keeps a history of, and a line whenever a finding opens, changes severity or closes, after
//! a versioned header. Totals and findings, never rows. Starting again with the same file goes
//! on where it stopped: the time sessiontop was down is a gap between samples, which the
//! readers ([`Recording::read`], `sessiontop report`) show as such.
//!
//! The dashboard never waits for the disk: lines go over a bounded channel to a thread of their
//! own, which drops what it cannot keep up with (and counts it). A file that grows past its cap
//! is rotated (`FILE` becomes `FILE.1`). A write that fails (a full disk, a file made
//! unwritable) stops the recording, and the dashboard says so; nothing else stops.
//!
//! Format, version 1 (one JSON object a line):
//! - header: `{"sessiontop_recording":1,"target":URL,"interval_ms":N,"started_at":MS}`, first
//!   in a file (again after each resume, as `"resumed_at"`);
//! - sample: `{"t":MS,"f":{NAME:VALUE,…}}`, with the names of [`crate::engine::history`];
//! - finding: `{"t":MS,"open":{"kind":K,"severity":S,"count":N,"summary":TEXT}}` or
//!   `{"t":MS,"close":K}`.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::changes::{Change, FindingLog};
use crate::engine::domain::{Finding, Millis};
use crate::engine::history::Histories;

/// The format version this build writes (and the newest it reads).
pub const FORMAT_VERSION: u64 = 1;
/// Lines waiting for the disk at most; beyond, new ones are dropped and counted.
const QUEUE: usize = 1024;
/// `--record-max-bytes` by default.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// What the recording thread reports back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecorderStatus {
    pub bytes: u64,
    pub dropped: u64,
    /// Why the recording stopped, once it has.
    pub failed: Option<String>,
}

/// The dashboard's side of a recording.
pub struct Recorder {
    tx: SyncSender<String>,
    /// Said by the thread when it has written everything and closed the file.
    done: Receiver<()>,
    status: Arc<Mutex<RecorderStatus>>,
    /// The newest time of each series already written.
    written: BTreeMap<String, Millis>,
    /// The findings open at the last sample.
    findings: FindingLog,
}

/// Why a recording cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot record to {path}: {reason}")]
    Open { path: String, reason: std::io::Error },
    #[error("cannot read the recording {path}: {reason}")]
    Read { path: String, reason: std::io::Error },
    #[error("{path} is not a sessiontop recording (its first line is not a recording header); choose another file")]
    NotARecording { path: String },
    #[error("{path} was recorded by a newer sessiontop (format {version}; this one writes {FORMAT_VERSION})")]
    Newer { path: String, version: u64 },
}

impl Recorder {
    /// Opens (or goes on with) the recording at `path`.
    pub fn open(
        path: &Path,
        target: &str,
        interval_ms: u64,
        max_bytes: u64,
        now: Millis,
    ) -> Result<Recorder, RecordError> {
        let shown = path.display().to_string();
        let existing = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if existing > 0 {
            let header = first_line(path).map_err(|reason| RecordError::Open { path: shown.clone(), reason })?;
            match serde_json::from_str::<Value>(&header).ok().and_then(|v| v["sessiontop_recording"].as_u64()) {
                None => return Err(RecordError::NotARecording { path: shown }),
                Some(v) if v > FORMAT_VERSION => return Err(RecordError::Newer { path: shown, version: v }),
                Some(_) => {}
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| RecordError::Open { path: shown.clone(), reason: e })?;
        let header = if existing > 0 {
            json!({"sessiontop_recording": FORMAT_VERSION, "target": target, "interval_ms": interval_ms, "resumed_at": now})
        } else {
            json!({"sessiontop_recording": FORMAT_VERSION, "target": target, "interval_ms": interval_ms, "started_at": now})
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(QUEUE);
        let (done_tx, done) = std::sync::mpsc::channel::<()>();
        let status = Arc::new(Mutex::new(RecorderStatus { bytes: existing, ..Default::default() }));
        let writer = Writer {
            path: path.to_path_buf(),
            file: std::io::BufWriter::new(file),
            bytes: existing,
            max_bytes: max_bytes.max(4096),
            header: header.clone(),
            status: status.clone(),
        };
        std::thread::Builder::new()
            .name("sessiontop-record".into())
            .spawn(move || {
                writer.run(rx);
                let _ = done_tx.send(());
            })
            .map_err(|e| RecordError::Open { path: shown, reason: e })?;
        let recorder = Recorder { tx, done, status, written: BTreeMap::new(), findings: FindingLog::default() };
        recorder.send(header.to_string());
        Ok(recorder)
    }

    fn send(&self, line: String) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if let Ok(mut s) = self.status.lock() {
                    s.dropped += 1;
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Ends the recording: the lines queued are written, waiting at most `within` for the
    /// disk (a quit never hangs on it).
    pub fn finish(self, within: std::time::Duration) -> RecorderStatus {
        let Recorder { tx, done, status, .. } = self;
        drop(tx);
        let _ = done.recv_timeout(within);
        status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The history a recording already holds, for going on with it: what the dashboard shows
    /// from the start, with a gap for the time it was not running. Its series count as written.
    pub fn resume(&mut self, path: &Path) -> Option<Histories> {
        let mut recording = Recording::read(path).ok()?;
        let last = recording.last?;
        for (name, h) in recording.history.iter() {
            if let Some((at, _)) = h.last() {
                self.written.insert(name.to_string(), at);
            }
        }
        recording.history.gap(last + 1);
        Some(recording.history)
    }

    pub fn status(&self) -> RecorderStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Writes what is new since the last call: the newest value of every series that has one,
    /// and the findings that opened, changed severity or closed.
    pub fn record(&mut self, history: &Histories, findings: &[Finding], now: Millis) {
        let mut figures = serde_json::Map::new();
        for (name, h) in history.iter() {
            if let Some((at, v)) = h.last()
                && self.written.get(name).is_none_or(|w| at > *w)
            {
                figures.insert(name.to_string(), json!(round(v)));
                self.written.insert(name.to_string(), at);
            }
        }
        if !figures.is_empty() {
            self.send(json!({"t": now, "f": figures}).to_string());
        }
        // A change of severity is written as the finding opening again, at its new one.
        for change in self.findings.changes(findings) {
            let line = match change {
                Change::Opened(f) | Change::Changed { finding: f, .. } => {
                    let opened = json!({"kind": f.kind.name(), "severity": f.severity.word(), "count": f.count, "summary": f.summary});
                    json!({"t": now, "open": opened})
                }
                Change::Closed(kind) => json!({"t": now, "close": kind}),
            };
            self.send(line.to_string());
        }
    }
}

/// Values as written: integers as integers, others to six significant figures.
fn round(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        json!(v as i64)
    } else {
        let digits = 6 - (v.abs().log10().floor() as i32 + 1);
        let scale = 10f64.powi(digits.clamp(0, 12));
        json!((v * scale).round() / scale)
    }
}

fn first_line(path: &Path) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut line = String::new();
    // A header is short; a file whose first line is not is not a recording.
    std::io::BufReader::new(file).take(4096).read_line(&mut line)?;
    Ok(line)
}

/// The recording thread: writes lines, rotates past the cap, stops at the first failure.
struct Writer {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    bytes: u64,
    max_bytes: u64,
    header: Value,
    status: Arc<Mutex<RecorderStatus>>,
}

impl Writer {
    fn run(mut self, rx: Receiver<String>) {
        while let Ok(line) = rx.recv() {
            if let Err(e) = self.write(&line) {
                if let Ok(mut s) = self.status.lock() {
                    s.failed = Some(format!("recording to {} stopped: {e}", self.path.display()));
                }
                return;
            }
        }
    }

    fn write(&mut self, line: &str) -> std::io::Result<()> {
        if self.bytes + line.len() as u64 + 1 > self.max_bytes && self.bytes > 0 {
            self.rotate()?;
        }
        self.file.write_all(line.as_bytes())?;
        self.file.write_all(b"\n")?;
        self.file.flush()?;
        self.bytes += line.len() as u64 + 1;
        if let Ok(mut s) = self.status.lock() {
            s.bytes = self.bytes;
        }
        Ok(())
    }

    /// `FILE` becomes `FILE.1` (replacing an older one) and a new `FILE` starts with a header.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        std::fs::rename(&self.path, &old)?;
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.file = std::io::BufWriter::new(file);
        self.bytes = 0;
        let mut header = self.header.clone();
        if let Some(h) = header.as_object_mut() {
            h.insert("rotated".into(), json!(true));
        }
        let text = header.to_string();
        self.file.write_all(text.as_bytes())?;
        self.file.write_all(b"\n")?;
        self.bytes += text.len() as u64 + 1;
        Ok(())
    }
}

/// A finding as a recording tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingEvent {
    pub at: Millis,
    pub kind: String,
    /// `None` when it closed.
    pub opened: Option<(String, u64, String)>,
}

/// A recording read back: every series, the findings as a timeline, the gaps.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub target: String,
    pub interval_ms: u64,
    pub first: Option<Millis>,
    pub last: Option<Millis>,
    pub samples: u64,
    pub history: Histories,
    /// Each figure's greatest value and when.
    pub peaks: BTreeMap<String, (f64, Millis)>,
    pub events: VecDeque<FindingEvent>,
    /// Times nothing was recorded: from, to.
    pub gaps: Vec<(Millis, Millis)>,
    /// Lines that could not be read.
    pub skipped: u64,
}

/// The longest line read back; sessiontop's own are a few KiB.
const MAX_LINE: usize = 1 << 20;

/// The most finding events and gaps a report keeps (the newest).
const EVENTS_KEPT: usize = 10_000;

impl Recording {
    /// Reads a recording (and its rotated predecessor `FILE.1`, when there is one).
    pub fn read(path: &Path) -> Result<Recording, RecordError> {
        let shown = path.display().to_string();
        let header = first_line(path).map_err(|reason| RecordError::Read { path: shown.clone(), reason })?;
        let version = serde_json::from_str::<Value>(&header).ok().and_then(|v| v["sessiontop_recording"].as_u64());
        match version {
            None => return Err(RecordError::NotARecording { path: shown }),
            Some(v) if v > FORMAT_VERSION => return Err(RecordError::Newer { path: shown, version: v }),
            Some(_) => {}
        }
        let mut r = Recording::default();
        let mut older = path.to_path_buf().into_os_string();
        older.push(".1");
        let older = PathBuf::from(older);
        for file in [older.as_path(), path] {
            let Ok(f) = std::fs::File::open(file) else { continue };
            let mut reader = std::io::BufReader::new(f);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = (&mut reader)
                    .take(MAX_LINE as u64 + 1)
                    .read_until(b'\n', &mut buf)
                    .map_err(|e| RecordError::Read { path: shown.clone(), reason: e })?;
                if n == 0 {
                    break;
                }
                if buf.last() != Some(&b'\n') && buf.len() > MAX_LINE {
                    // Far longer than any line sessiontop writes: skipped to its end.
                    r.skipped += 1;
                    let mut rest = Vec::new();
                    loop {
                        rest.clear();
                        let m = (&mut reader).take(1 << 16).read_until(b'\n', &mut rest).unwrap_or(0);
                        if m == 0 || rest.last() == Some(&b'\n') {
                            break;
                        }
                    }
                    continue;
                }
                match std::str::from_utf8(&buf) {
                    Ok(line) => r.take(line.trim_end()),
                    Err(_) => r.skipped += 1,
                }
            }
        }
        Ok(r)
    }

    fn take(&mut self, line: &str) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            self.skipped += 1;
            return;
        };
        if v.get("sessiontop_recording").is_some() {
            if let Some(t) = v["target"].as_str() {
                self.target = t.to_string();
            }
            if let Some(i) = v["interval_ms"].as_u64() {
                self.interval_ms = i;
            }
            return;
        }
        let Some(t) = v["t"].as_i64() else {
            self.skipped += 1;
            return;
        };
        if let Some(figures) = v["f"].as_object() {
            let allowed = (self.interval_ms.max(1000) * 3) as Millis;
            if let Some(last) = self.last
                && t - last > allowed
            {
                self.history.gap(last + self.interval_ms as Millis);
                self.gaps.push((last, t));
                if self.gaps.len() > EVENTS_KEPT {
                    self.gaps.remove(0);
                }
            }
            for (name, value) in figures {
                let Some(value) = value.as_f64() else { continue };
                self.history.record(name, t, Some(value));
                // Peaks of the series kept (their number is bounded), not of every name.
                if self.history.get(name).is_none() {
                    continue;
                }
                let peak = self.peaks.entry(name.clone()).or_insert((value, t));
                if value > peak.0 {
                    *peak = (value, t);
                }
            }
            self.samples += 1;
            self.first = Some(self.first.map_or(t, |f| f.min(t)));
            self.last = Some(self.last.map_or(t, |l| l.max(t)));
        } else if let Some(open) = v.get("open") {
            let event = FindingEvent {
                at: t,
                kind: open["kind"].as_str().unwrap_or("?").to_string(),
                opened: Some((
                    open["severity"].as_str().unwrap_or("?").to_string(),
                    open["count"].as_u64().unwrap_or(0),
                    open["summary"].as_str().unwrap_or("").to_string(),
                )),
            };
            self.push_event(event);
        } else if let Some(kind) = v["close"].as_str() {
            self.push_event(FindingEvent { at: t, kind: kind.to_string(), opened: None });
        } else {
            self.skipped += 1;
        }
    }

    fn push_event(&mut self, event: FindingEvent) {
        self.events.push_back(event);
        while self.events.len() > EVENTS_KEPT {
            self.events.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::domain::{Finding, FindingKind, Severity};

    fn finding(kind: FindingKind, severity: Severity, summary: &str) -> Finding {
        Finding { kind, severity, count: 1, summary: summary.into(), by_stage: Vec::new(), sample: Vec::new() }
    }

    const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

    #[test]
    fn a_recording_resumes_with_a_gap_and_reads_back_with_its_findings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.ndjson");
        let t0: Millis = 1_800_000_000_000;
        let mut h = Histories::default();
        let mut r = Recorder::open(&path, "redis://x", 1000, DEFAULT_MAX_BYTES, t0).unwrap();
        for i in 0..10 {
            let at = t0 + i * 1000;
            h.record("used_memory", at, Some(1000.0 + i as f64));
            h.record("uptime_seconds", at, Some(500.0 + i as f64));
            let findings =
                if i >= 5 { vec![finding(FindingKind::StaleLock, Severity::Warning, "<b>lock</b>")] } else { vec![] };
            r.record(&h, &findings, at);
        }
        r.record(&h, &[], t0 + 10_000);
        r.finish(WAIT);
        // Down for a minute; Redis restarted meanwhile.
        let t1 = t0 + 70_000;
        let mut r = Recorder::open(&path, "redis://x", 1000, DEFAULT_MAX_BYTES, t1).unwrap();
        // The dashboard goes on with the history it recorded, with a gap for the minute.
        let mut h = r.resume(&path).expect("a recording to go on with");
        assert_eq!(h.get("used_memory").unwrap().at(t0 + 9000, 2000).map(|p| p.mean), Some(1009.0));
        for i in 0..5 {
            let at = t1 + i * 1000;
            h.record("used_memory", at, Some(5000.0));
            h.record("uptime_seconds", at, Some(i as f64));
            r.record(&h, &[], at);
        }
        r.finish(WAIT);
        let rec = Recording::read(&path).unwrap();
        assert_eq!(rec.samples, 15);
        assert_eq!(rec.gaps, vec![(t0 + 9000, t1)]);
        assert_eq!(rec.peaks["used_memory"], (5000.0, t1));
        let kinds: Vec<(String, bool)> = rec.events.iter().map(|e| (e.kind.clone(), e.opened.is_some())).collect();
        assert_eq!(kinds, [("stale_lock".to_string(), true), ("stale_lock".to_string(), false)]);
        // Replayed: the lock is open between its two events, and the player finds them.
        let mut player = crate::dashboard::replay::Player::new(&rec).unwrap();
        let keymap = crate::dashboard::keymap::Keymap::default();
        let next_event =
            crossterm::event::KeyEvent::new(crossterm::event::KeyCode::Char('n'), crossterm::event::KeyModifiers::NONE);
        assert!(player.findings(&rec).is_empty());
        player.key(&keymap, &next_event, &rec);
        assert_eq!(player.now, t0 + 5000);
        assert_eq!(player.findings(&rec)[0].kind, FindingKind::StaleLock);
        player.key(&keymap, &next_event, &rec);
        assert!(player.findings(&rec).is_empty(), "closed at {}", player.now);
        let text = crate::headless::report::text(&rec, "rec.ndjson", 0);
        assert!(text.contains("gaps      1 (nothing heard)"), "{text}");
        assert!(text.contains("restarts  1"), "{text}");
        assert!(text.contains("warning  stale_lock (1): <b>lock</b>"), "{text}");
        let page = crate::headless::report::html(&rec, "rec.ndjson", 0);
        assert!(page.contains("&lt;b&gt;lock&lt;/b&gt;") && !page.contains("<b>lock"), "escaped");
        assert!(page.contains("<svg") && !page.contains("http://") && !page.contains("https://"), "self-contained");
        assert!(page.contains("<polyline"), "a line");
    }

    #[test]
    fn a_recording_past_its_cap_is_rotated_and_both_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.ndjson");
        let t0: Millis = 1_800_000_000_000;
        let mut h = Histories::default();
        let mut r = Recorder::open(&path, "redis://x", 1000, 4096, t0).unwrap();
        for i in 0..200 {
            let at = t0 + i * 1000;
            h.record("used_memory", at, Some(i as f64));
            r.record(&h, &[], at);
        }
        // Every sample is a line; the thread rotated at least once.
        let status = r.finish(WAIT);
        assert_eq!((status.failed, status.dropped), (None, 0));
        assert!(dir.path().join("rec.ndjson.1").exists());
        assert!(std::fs::metadata(&path).unwrap().len() <= 4096);
        let rec = Recording::read(&path).unwrap();
        assert!(rec.samples > 0 && rec.samples <= 200, "{}", rec.samples);
        assert!(rec.gaps.is_empty(), "the rotated file comes first: {:?}", rec.gaps);
    }

    #[test]
    fn a_full_disk_stops_the_recording_and_says_why() {
        let full = Path::new("/dev/full");
        if !full.exists() {
            return;
        }
        let r = Recorder::open(full, "redis://x", 1000, DEFAULT_MAX_BYTES, 0).unwrap();
        let why = r.finish(WAIT).failed.expect("a write to a full disk fails");
        assert!(why.contains("/dev/full") && why.contains("stopped"), "{why}");
    }

    #[test]
    fn files_that_are_not_recordings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, "hello\n").unwrap();
        assert!(matches!(
            Recorder::open(&other, "x", 1000, DEFAULT_MAX_BYTES, 0),
            Err(RecordError::NotARecording { .. })
        ));
        assert!(matches!(Recording::read(&other), Err(RecordError::NotARecording { .. })));
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "hello\n", "left as it was");
        let newer = dir.path().join("newer.ndjson");
        std::fs::write(&newer, "{\"sessiontop_recording\":99}\n").unwrap();
        assert!(matches!(Recording::read(&newer), Err(RecordError::Newer { version: 99, .. })));
    }
}
