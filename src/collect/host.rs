//! The machine sessiontop runs on: its CPU, memory and load, the processes each
//! `--watch-process` pattern matches, and sessiontop's own CPU and memory. A room of its own,
//! sampled on its own tick whatever any Redis link does: when Redis is away is when an on-call
//! engineer most needs to see whether the application's host is alive.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::engine::msg::Update;

/// Samples the host every `interval` and sends what it saw as [`Update::Host`] and
/// [`Update::OwnProcess`]; ends when the receiver is dropped. Where the platform gives sysinfo
/// nothing to read, nothing is sent.
pub fn spawn(patterns: Vec<String>, interval: Duration) -> (JoinHandle<()>, mpsc::UnboundedReceiver<Update>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut host = Host::new(patterns);
        let mut own = OwnProcess::new();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Some(update) = own.as_mut().and_then(OwnProcess::sample)
                && tx.send(update).is_err()
            {
                return;
            }
            if let Some(host) = host.as_mut()
                && tx.send(Update::Host(Box::new(host.sample()))).is_err()
            {
                return;
            }
        }
    });
    (task, rx)
}

/// Samples sessiontop's own CPU and memory (sysinfo), so the engineer can see what watching costs.
struct OwnProcess {
    system: sysinfo::System,
    pid: sysinfo::Pid,
}

impl OwnProcess {
    fn new() -> Option<OwnProcess> {
        Some(OwnProcess { system: sysinfo::System::new().ok()?, pid: sysinfo::get_current_pid().ok()? })
    }

    fn sample(&mut self) -> Option<Update> {
        let refresh = sysinfo::ProcessRefreshKind::nothing().with_cpu().with_memory();
        self.system.refresh_processes_specifics(sysinfo::ProcessesToUpdate::Some(&[self.pid]), true, refresh);
        let process = self.system.process(self.pid)?;
        Some(Update::OwnProcess { cpu_percent: process.cpu_usage(), rss_bytes: process.memory() })
    }
}

/// The machine sessiontop runs on (CPU, memory, load) and the processes each
/// `--watch-process` pattern matches (by name or command line; threads and sessiontop itself
/// are not counted).
pub struct Host {
    system: sysinfo::System,
    patterns: Vec<String>,
    own: Option<sysinfo::Pid>,
}

impl Host {
    pub fn new(patterns: Vec<String>) -> Option<Host> {
        Some(Host { system: sysinfo::System::new().ok()?, patterns, own: sysinfo::get_current_pid().ok() })
    }

    pub fn sample(&mut self) -> crate::engine::domain::HostStats {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let load = sysinfo::System::load_average().ok().map(|l| [l.one, l.five, l.fifteen]);
        let mut processes: Vec<crate::engine::domain::WatchedProcesses> = self
            .patterns
            .iter()
            .map(|p| crate::engine::domain::WatchedProcesses { pattern: p.clone(), ..Default::default() })
            .collect();
        if !self.patterns.is_empty() {
            let refresh = sysinfo::ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .with_cmd(sysinfo::UpdateKind::OnlyIfNotSet);
            self.system.refresh_processes_specifics(sysinfo::ProcessesToUpdate::All, true, refresh);
            for (pid, process) in self.system.processes() {
                if Some(*pid) == self.own || process.thread_kind().is_some() {
                    continue;
                }
                let name = process.name().to_string_lossy();
                let cmd = process.cmd().iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
                for watched in processes.iter_mut() {
                    if name.contains(watched.pattern.as_str()) || cmd.contains(watched.pattern.as_str()) {
                        watched.count += 1;
                        watched.rss_bytes += process.memory();
                        watched.cpu_percent += process.cpu_usage();
                    }
                }
            }
        }
        crate::engine::domain::HostStats {
            cpu_percent: self.system.global_cpu_usage(),
            memory_used_bytes: self.system.used_memory(),
            memory_total_bytes: self.system.total_memory(),
            load,
            processes,
        }
    }
}
