//! The config file: named targets (URL, credentials, layout, read-only), and defaults.
//!
//! Looked for at `--config FILE`, else `$XDG_CONFIG_HOME/sessiontop/config.toml`, else
//! `~/.config/sessiontop/config.toml`; a missing default file is not an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Target used when neither `--target` nor `--url` is given.
    pub default_target: Option<String>,
    /// Theme name or file, unless the target or `--theme` says otherwise.
    pub theme: Option<String>,
    /// Key bindings: action name to key presses (`quit = ["q", "ctrl-c"]`). `[keys]`, the
    /// table's old name, is read too.
    #[serde(default, alias = "keys")]
    pub bindings: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
}

/// One named target.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub url: String,
    pub user: Option<String>,
    /// Never put a password in the config; point at a file that holds it.
    pub password_file: Option<PathBuf>,
    pub db: Option<i64>,
    pub tls_ca: Option<PathBuf>,
    #[serde(default)]
    pub tls_insecure: bool,
    /// Refuse every write to this target, whatever the command line says.
    #[serde(default)]
    pub read_only: bool,
    /// `auto`, `trt`, `flask` or a layout file (`schema`, its old name, is read too).
    #[serde(alias = "schema")]
    pub layout: Option<String>,
    pub prefix: Option<String>,
    /// A theme for this target, so that production looks like production.
    pub theme: Option<String>,
}

/// Why the config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {reason}")]
    Read { path: String, reason: crate::util::local_file::LocalFileError },
    #[error("invalid config {path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("no target '{name}' in {path} (known: {known})")]
    UnknownTarget { name: String, path: String, known: String },
}

/// A loaded config and where it came from.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub config: Config,
    pub path: Option<PathBuf>,
}

impl Loaded {
    /// The target named `name`.
    pub fn target(&self, name: &str) -> Result<&TargetConfig, ConfigError> {
        self.config.targets.get(name).ok_or_else(|| ConfigError::UnknownTarget {
            name: name.to_string(),
            path: self.path.as_ref().map_or_else(|| "the config".into(), |p| p.display().to_string()),
            known: if self.config.targets.is_empty() {
                "none".into()
            } else {
                self.config.targets.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        })
    }
}

/// The default location of the config file.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("sessiontop").join("config.toml"))
}

/// Loads `explicit` (which must exist), else the default file if there is one.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match default_path().filter(|p| p.is_file()) {
            Some(p) => p,
            None => return Ok(Loaded::default()),
        },
    };
    let text = crate::util::local_file::read_text(&path, crate::util::local_file::TEXT_MAX_BYTES)
        .map_err(|reason| ConfigError::Read { path: path.display().to_string(), reason })?;
    let config: Config = toml::from_str(&text)
        .map_err(|e| ConfigError::Invalid { path: path.display().to_string(), reason: e.message().to_string() })?;
    Ok(Loaded { config, path: Some(path) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_unknown_names_are_listed() {
        let config: Config = toml::from_str(
            r#"
            default_target = "prod"
            [targets.prod]
            url = "rediss://ops@cache.example:6379"
            password_file = "/run/secrets/redis"
            read_only = true
            layout = "flask"
            prefix = "chatmrpt:"
            theme = "production"
            [targets.staging]
            url = "redis://staging:6379/0"
            "#,
        )
        .unwrap();
        let loaded = Loaded { config, path: Some("c.toml".into()) };
        assert!(loaded.target("prod").unwrap().read_only);
        let err = loaded.target("dev").unwrap_err().to_string();
        assert_eq!(err, "no target 'dev' in c.toml (known: prod, staging)");
        assert!(toml::from_str::<Config>("[targets.x]\nurl = \"redis://h\"\npassword = \"no\"\n").is_err());
    }
}
