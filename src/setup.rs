//! From the command line and the config file to what the program runs with: the target, the
//! layout choice, collection limits and the writer. The one place where flags, config and
//! environment meet, so their precedence is decided once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::conn::pace::{Budget, Pacer};

use crate::cli::Global;
use crate::collect::census::CensusOptions;
use crate::collect::write::{AuditLog, Writer};
use crate::collect::{CollectOptions, DEFAULT_CENSUS_PAUSE, DEFAULT_PAGE_SIZE};
use crate::config::{self, ConfigError};
use crate::conn::link::LoadCounter;
use crate::conn::target::{DEFAULT_URL, Target, TargetError, TargetSpec};
use crate::engine::domain::TargetInfo;
use crate::engine::layout::{Choice, Overrides};
use crate::engine::model::ModelSettings;

/// Everything a command needs to run.
#[derive(Debug)]
pub struct Setup {
    pub target: Target,
    pub target_info: TargetInfo,
    pub choice: Choice,
    pub overrides: Overrides,
    pub collect: CollectOptions,
    pub lifetime_s: Option<i64>,
    pub stalled_after_s: i64,
    pub writer: Writer,
    pub load: LoadCounter,
    /// The theme's name or file: `--theme`, the target's, the config's, else `default`.
    pub theme: String,
    /// The config's `[bindings]` table.
    pub bindings: std::collections::BTreeMap<String, Vec<String>>,
    /// Things worth saying once before running (a password typed where `ps` shows it).
    pub warnings: Vec<String>,
    /// `--max-rows`: sessions the dashboard's table keeps.
    pub max_rows: usize,
    /// `--budget`, when given.
    pub budget: Option<Budget>,
    /// `--metrics-listen`: where the dashboard serves its figures for Prometheus.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `--baseline`: the deploy the panels count changes from.
    pub baseline: Option<crate::cli::Baseline>,
    /// `--record` and `--record-max-bytes`.
    pub record: Option<(std::path::PathBuf, u64)>,
}

/// Why the program cannot start with these settings.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("invalid --layout in the config: {0}")]
    Layout(String),
    #[error(
        "{0} targets given (--url, --target): several are watched side by side by the dashboard; a command takes one"
    )]
    Several(usize),
}

impl Setup {
    /// A setup for each target given (`--url` and `--target`, each may be repeated), in the
    /// order given; one when none or one is.
    pub fn all(global: &Global) -> Result<Vec<Setup>, SetupError> {
        if global.url.len() + global.target.len() <= 1 {
            return Ok(vec![Setup::new(global)?]);
        }
        let mut out = Vec::new();
        for spec in &global.url {
            let one = Global { url: vec![spec.clone()], target: Vec::new(), ..global.clone() };
            out.push(Setup::new(&one)?);
        }
        for name in &global.target {
            let one = Global { url: Vec::new(), target: vec![name.clone()], ..global.clone() };
            out.push(Setup::new(&one)?);
        }
        Ok(out)
    }

    /// Builds the setup. Precedence for the URL: `--url`, the `--target`'s, `$REDIS_URL`, the
    /// config's `default_target`, then [`DEFAULT_URL`]. A target marked read-only stays
    /// read-only whatever the flags say.
    pub fn new(global: &Global) -> Result<Setup, SetupError> {
        let several = global.url.len() + global.target.len();
        if several > 1 {
            return Err(SetupError::Several(several));
        }
        let loaded = config::load(global.config.as_deref())?;
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
            (Choice::Auto, Some(configured)) => configured.parse().map_err(SetupError::Layout)?,
            (given, _) => given.clone(),
        };
        let overrides =
            Overrides { prefix: global.prefix.clone().or(tc.prefix), stage_field: global.stage_field.clone() };
        let collect = CollectOptions {
            poll_interval: global.poll_interval.max(Duration::from_millis(200)),
            census_pause: DEFAULT_CENSUS_PAUSE,
            census: CensusOptions {
                scan_count: global.scan_count as usize,
                max_value_bytes: global.max_value_bytes,
                thresholds: global.thresholds.thresholds(),
            },
            page_size: DEFAULT_PAGE_SIZE,
            watch_processes: global.watch_process.clone(),
        };
        let audit =
            global.audit_log.clone().or_else(AuditLog::default_path).unwrap_or_else(|| "sessiontop-audit.log".into());
        let writer = Writer::new(read_only, AuditLog::new(audit), target.redacted_url());
        let target_info = TargetInfo { url: target.redacted_url().to_string(), name: url_name.or(named), read_only };
        let theme = global
            .theme
            .clone()
            .or(tc.theme)
            .or_else(|| loaded.config.theme.clone())
            .unwrap_or_else(|| "default".to_string());
        let mut warnings = Vec::new();
        if given_url.as_deref().is_some_and(crate::conn::target::has_password) {
            warnings.push(
                "the password in --url is visible to other users of this machine (ps); use --password-file or $REDISCLI_AUTH"
                    .to_string(),
            );
        }
        Ok(Setup {
            warnings,
            max_rows: global.max_rows,
            metrics_listen: global.metrics_listen,
            baseline: global.baseline,
            record: global.record.clone().map(|p| (p, global.record_max_bytes)),
            budget: global.budget,
            target,
            target_info,
            choice,
            overrides,
            collect,
            lifetime_s: global.session_lifetime.map(|d| d.as_secs() as i64),
            stalled_after_s: global.stalled_after.as_secs() as i64,
            writer,
            load: LoadCounter::default(),
            theme,
            bindings: loaded.config.bindings.clone(),
        })
    }

    /// The budget in force: `--budget`, else the dashboard's or the one-shot commands' default.
    pub fn budget(&self, dashboard: bool) -> Budget {
        self.budget.unwrap_or(Budget::Share(if dashboard {
            crate::conn::pace::DEFAULT_DASHBOARD_SHARE
        } else {
            crate::conn::pace::DEFAULT_ONE_SHOT_SHARE
        }))
    }

    /// A pacer for this target, by the budget in force.
    pub fn pacer(&self, dashboard: bool) -> Arc<Mutex<Pacer>> {
        Pacer::shared(self.budget(dashboard))
    }

    /// Starts the dashboard's collectors on this target with `options` (the setup's own, or
    /// faster ones in tests), paced by the dashboard's budget.
    pub fn spawn_collectors(
        &self,
        options: CollectOptions,
    ) -> (crate::collect::Collector, tokio::sync::mpsc::UnboundedReceiver<crate::engine::msg::Update>) {
        crate::collect::spawn(
            self.target.clone(),
            self.choice.clone(),
            self.overrides.clone(),
            options,
            self.writer.clone(),
            self.load.clone(),
            self.pacer(true),
        )
    }

    /// The model settings the command line gives; the layout's own (idle rule, final and
    /// ordered stages) arrive with [`crate::engine::msg::Update::Layout`].
    pub fn model_settings(&self) -> ModelSettings {
        ModelSettings {
            lifetime_s: self.lifetime_s,
            stalled_after_s: self.stalled_after_s,
            thresholds: self.collect.census.thresholds,
            ..ModelSettings::default()
        }
    }
}
