//! From the command line and the config file to what the program runs with. The one place where
//! flags, config and environment meet, so their precedence is decided once.
//!
//! What the whole run shares (how often and how hard to collect, the metrics listener, the
//! recording, key bindings, the table's size, the deploy baseline, the default theme) is the
//! [`Setup`]'s, once; what differs by target (where it is, its layout, its writer, its theme)
//! is each [`TargetSetup`]'s.

use std::sync::Arc;
use std::time::Duration;

use crate::cli::Global;
use crate::collect::census::CensusOptions;
use crate::collect::stages::WatchOptions;
use crate::collect::write::{AuditLog, Writer};
use crate::collect::{CollectOptions, Collector, DEFAULT_CENSUS_PAUSE, DEFAULT_PAGE_SIZE, LayoutSpec};
use crate::config::{self, ConfigError, Loaded};
use crate::conn::pace::Budget;
use crate::conn::target::{DEFAULT_URL, Target, TargetError, TargetSpec};
use crate::conn::topology::{AddressMap, KindChoice, Topology, TopologySpec};
use crate::engine::domain::TargetInfo;
use crate::engine::layout::{Choice, Overrides};
use crate::engine::model::ModelSettings;
use crate::engine::msg::Update;

/// One target the run watches.
#[derive(Debug, Clone)]
pub struct TargetSetup {
    pub target: Target,
    pub info: TargetInfo,
    /// `--layout` (or the config target's), with the prefix and stage field given beside it.
    pub layout: LayoutSpec,
    pub writer: Writer,
    /// The theme's name or file: `--theme`, the target's, the config's, else `default`.
    pub theme: String,
    /// What kind of target it is, where its announced nodes are, its sentinels, and where
    /// sessions are read from.
    pub topology: TopologySpec,
}

/// Everything a command needs to run: the targets, and what the run shares.
#[derive(Debug)]
pub struct Setup {
    /// In the order given (`--url` first, then `--target`); one when none or one is given.
    pub targets: Vec<TargetSetup>,
    pub collect: CollectOptions,
    pub lifetime_s: Option<i64>,
    pub stalled_after_s: i64,
    /// The config's `[bindings]` table.
    pub bindings: std::collections::BTreeMap<String, Vec<String>>,
    /// Things worth saying once before running (a password typed where `ps` shows it).
    pub warnings: Vec<String>,
    /// `--max-rows`: sessions the dashboard's table keeps, for each target.
    pub max_rows: usize,
    /// `--budget`, when given.
    pub budget: Option<Budget>,
    /// `--metrics-listen`: where the dashboard serves its figures for Prometheus.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `--baseline`: the deploy the panels count changes from.
    pub baseline: Option<crate::cli::Baseline>,
    /// `--record` and `--record-max-bytes`.
    pub record: Option<(std::path::PathBuf, u64)>,
    /// `--watch-process`: patterns of the host's processes to count.
    pub watch_processes: Vec<String>,
}

/// Why the program cannot start with these settings.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("invalid --layout in the config: {0}")]
    Layout(#[from] crate::engine::layout::ChoiceError),
    #[error(
        "{0} targets given (--url, --target): several are watched side by side by the dashboard; a command takes one"
    )]
    Several(usize),
    #[error("--node-address-map: {0}")]
    AddressMap(#[from] crate::conn::topology::AddressMapError),
    #[error(transparent)]
    SentinelUrl(#[from] crate::conn::sentinel::SentinelUrlError),
    #[error("--sentinel: '{0}' is not HOST:PORT")]
    Sentinel(String),
    #[error("cannot read --sentinel-password-file {path}: {reason}")]
    SentinelPassword { path: String, reason: crate::util::local_file::LocalFileError },
}

impl Setup {
    /// Builds the setup, with a target for each `--url` and `--target` given (each may be
    /// repeated), or the one that `$REDIS_URL`, the config's `default_target` or
    /// [`DEFAULT_URL`] names.
    pub fn new(global: &Global) -> Result<Setup, SetupError> {
        let loaded = config::load(global.config.as_deref())?;
        let mut targets = Vec::new();
        let mut warnings = Vec::new();
        if global.url.len() + global.target.len() <= 1 {
            targets.push(target_setup(global, &loaded, &mut warnings)?);
        } else {
            for spec in &global.url {
                let one = Global { url: vec![spec.clone()], target: Vec::new(), ..global.clone() };
                targets.push(target_setup(&one, &loaded, &mut warnings)?);
            }
            for name in &global.target {
                let one = Global { url: Vec::new(), target: vec![name.clone()], ..global.clone() };
                targets.push(target_setup(&one, &loaded, &mut warnings)?);
            }
        }
        Ok(Setup {
            targets,
            collect: CollectOptions {
                poll_interval: global.poll_interval.max(Duration::from_millis(200)),
                census_pause: DEFAULT_CENSUS_PAUSE,
                census: CensusOptions {
                    scan_count: global.scan_count as usize,
                    max_value_bytes: global.max_value_bytes,
                    thresholds: global.thresholds.thresholds(),
                },
                page_size: DEFAULT_PAGE_SIZE,
                watch: WatchOptions {
                    stalled_after_s: global.stalled_after.as_secs() as i64,
                    lifetime_s: global.session_lifetime.map(|d| d.as_secs() as i64),
                    active_window_s: global.thresholds.thresholds().active_window_s,
                    arrivals_window_s: global.thresholds.thresholds().arrivals_window_s,
                    flow_window_s: global.thresholds.thresholds().flow_window_s,
                    baseline: global.baseline.map(|b| b.millis(crate::collect::now_millis())),
                },
            },
            lifetime_s: global.session_lifetime.map(|d| d.as_secs() as i64),
            stalled_after_s: global.stalled_after.as_secs() as i64,
            bindings: loaded.config.bindings.clone(),
            warnings,
            max_rows: global.max_rows,
            budget: global.budget,
            metrics_listen: global.metrics_listen,
            baseline: global.baseline,
            record: global.record.clone().map(|p| (p, global.record_max_bytes)),
            watch_processes: global.watch_process.clone(),
        })
    }

    /// The one target of a command: several are refused.
    pub fn one(&self) -> Result<&TargetSetup, SetupError> {
        match self.targets.as_slice() {
            [one] => Ok(one),
            several => Err(SetupError::Several(several.len())),
        }
    }

    /// The first target: the one a command runs on, the one a recording records.
    pub fn first(&self) -> &TargetSetup {
        // `new` makes at least one target, and nothing removes them.
        &self.targets[0]
    }

    /// The budget in force: `--budget`, else the dashboard's or the one-shot commands' default.
    pub fn budget(&self, dashboard: bool) -> Budget {
        self.budget.unwrap_or(Budget::Share(if dashboard {
            crate::conn::pace::DEFAULT_DASHBOARD_SHARE
        } else {
            crate::conn::pace::DEFAULT_ONE_SHOT_SHARE
        }))
    }

    /// A target's nodes as known before connecting, each paced by the budget in force.
    pub fn topology(&self, target: &TargetSetup, dashboard: bool) -> Arc<Topology> {
        Arc::new(Topology::with(&target.target, self.budget(dashboard), target.topology.clone()))
    }

    /// Starts the dashboard's collectors on `target` with `options` (the setup's own, or
    /// faster ones in tests), paced by the dashboard's budget.
    pub fn spawn_collectors_for(
        &self,
        target: &TargetSetup,
        options: CollectOptions,
    ) -> (Collector, tokio::sync::mpsc::UnboundedReceiver<Update>) {
        crate::collect::spawn(self.topology(target, true), target.layout.clone(), options, target.writer.clone())
    }

    /// Target `i` watched: its model (going on with `resumed`, a recording's history, when it
    /// is the first), its collectors, and a task that hands their updates on to `tagged` with
    /// its index, as the dashboard's tabs and `serve` watch every target.
    pub fn watch_target(
        &self,
        i: usize,
        resumed: &mut Option<crate::engine::history::Histories>,
        tagged: &tokio::sync::mpsc::UnboundedSender<(usize, crate::engine::msg::Update)>,
    ) -> (crate::engine::model::Model, Collector, tokio::task::JoinHandle<()>) {
        let now = crate::collect::now_millis();
        let target = &self.targets[i];
        let mut model = crate::engine::model::Model::new(target.info.clone(), self.model_settings(), now);
        model.baseline = self.baseline.map(|b| b.millis(now));
        if let Some(history) = resumed.take().filter(|_| i == 0) {
            model.history = history;
        }
        let (collector, mut own) = self.spawn_collectors_for(target, self.collect.clone());
        let tx = tagged.clone();
        let forwarder = tokio::spawn(async move {
            while let Some(u) = own.recv().await {
                if tx.send((i, u)).is_err() {
                    break;
                }
            }
        });
        (model, collector, forwarder)
    }

    /// [`Setup::spawn_collectors_for`] the first target.
    pub fn spawn_collectors(
        &self,
        options: CollectOptions,
    ) -> (Collector, tokio::sync::mpsc::UnboundedReceiver<Update>) {
        self.spawn_collectors_for(self.first(), options)
    }

    /// What `--record` asks to record (of the first target), for [`Exports::start`].
    ///
    /// [`Exports::start`]: crate::export::exports::Exports::start
    pub fn recording(&self) -> Option<crate::export::exports::Recording<'_>> {
        self.record.as_ref().map(|(path, max_bytes)| crate::export::exports::Recording {
            path,
            max_bytes: *max_bytes,
            url: &self.first().info.url,
            interval_ms: self.collect.poll_interval.as_millis() as u64,
        })
    }

    /// The model settings the command line gives; the layout's own (idle rule, final and
    /// ordered stages) arrive with [`crate::engine::msg::Update::Layout`].
    pub fn model_settings(&self) -> ModelSettings {
        ModelSettings {
            lifetime_s: self.lifetime_s,
            stalled_after_s: self.stalled_after_s,
            thresholds: self.collect.census.thresholds,
            poll_interval_ms: self.collect.poll_interval.as_millis() as i64,
            ..ModelSettings::default()
        }
    }
}

/// One target's setup. Precedence for the URL: `--url`, the `--target`'s, `$REDIS_URL`, the
/// config's `default_target`, then [`DEFAULT_URL`]. A target marked read-only stays read-only
/// whatever the flags say.
fn target_setup(global: &Global, loaded: &Loaded, warnings: &mut Vec<String>) -> Result<TargetSetup, SetupError> {
    let env_url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    let (url_name, given_url) = match global.url.first() {
        Some(spec) => {
            let (name, url) = crate::cli::split_named_url(spec);
            (name.map(str::to_string), Some(url.to_string()))
        }
        None => (None, None),
    };
    let named = match (global.target.first(), &given_url, &env_url) {
        (Some(name), _, _) => Some(name.clone()),
        (None, None, None) => loaded.config.default_target.clone(),
        _ => None,
    };
    let target_config = match &named {
        Some(name) => Some(loaded.target(name)?.clone()),
        None => None,
    };
    let tc = target_config.clone().unwrap_or_default();
    let url = given_url
        .clone()
        .or_else(|| target_config.as_ref().map(|t| t.url.clone()))
        .or(env_url)
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let (url, topology) = topology_spec(global, url)?;
    let spec = TargetSpec {
        name: named.clone(),
        url,
        user: global.user.clone().or(tc.user),
        password_file: global.password_file.clone().or(tc.password_file),
        env_password: std::env::var("REDISCLI_AUTH").ok(),
        db: global.db.or(tc.db),
        tls_ca: global.tls_ca.clone().or(tc.tls_ca),
        tls_insecure: global.tls_insecure || tc.tls_insecure,
        connect_timeout: Some(global.connect_timeout),
        response_timeout: Some(global.response_timeout),
    };
    let target = Target::from_spec(&spec)?;
    let read_only = global.read_only || tc.read_only;
    let choice = match (&global.layout, &tc.layout) {
        (Choice::Auto, Some(configured)) => configured.parse()?,
        (given, _) => given.clone(),
    };
    let overrides = Overrides { prefix: global.prefix.clone().or(tc.prefix), stage_field: global.stage_field.clone() };
    let audit =
        global.audit_log.clone().or_else(AuditLog::default_path).unwrap_or_else(|| "sessiontop-audit.log".into());
    let writer = Writer::new(read_only, AuditLog::new(audit), target.redacted_url());
    let info = TargetInfo { url: target.redacted_url().to_string(), name: url_name.or(named), read_only };
    let theme =
        global.theme.clone().or(tc.theme).or_else(|| loaded.config.theme.clone()).unwrap_or_else(|| "default".into());
    if given_url.as_deref().is_some_and(crate::conn::target::has_password) {
        warnings.push(
            "the password in --url is visible to other users of this machine (ps); use --password-file or $REDISCLI_AUTH"
                .to_string(),
        );
    }
    Ok(TargetSetup { target, info, layout: LayoutSpec { choice, overrides }, writer, theme, topology })
}

/// What the flags and the URL say of the target's kind: a `redis+sentinel://` URL (or
/// `--sentinel` with `--master`) becomes the data nodes' URL and the sentinels to ask.
fn topology_spec(global: &Global, url: String) -> Result<(String, TopologySpec), SetupError> {
    let mut spec = TopologySpec {
        choice: if global.cluster { KindChoice::Cluster } else { KindChoice::Detect },
        address_map: AddressMap::parse(&global.node_address_map)?,
        sentinel: None,
        read_from: global.read_from,
        replica_max_lag: global.replica_max_lag,
    };
    let auth = match (&global.sentinel_user, &global.sentinel_password_file) {
        (None, None) => None,
        (user, file) => {
            let password = match file {
                Some(path) => crate::util::local_file::read_text(path, crate::util::local_file::PASSWORD_MAX_BYTES)
                    .map_err(|reason| SetupError::SentinelPassword { path: path.display().to_string(), reason })?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
                None => String::new(),
            };
            Some((user.clone(), password))
        }
    };
    if let Some(parsed) = crate::conn::sentinel::parse_url(&url) {
        let parsed = parsed?;
        spec.sentinel =
            Some(crate::conn::sentinel::SentinelSpec { sentinels: parsed.sentinels, master: parsed.master, auth });
        return Ok((parsed.data_url, spec));
    }
    if let Some(master) = &global.master
        && !global.sentinel.is_empty()
    {
        let sentinels = global
            .sentinel
            .iter()
            .map(|s| crate::conn::target::split_host_port(s).ok_or_else(|| SetupError::Sentinel(s.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        spec.sentinel = Some(crate::conn::sentinel::SentinelSpec { sentinels, master: master.clone(), auth });
    }
    Ok((url, spec))
}
