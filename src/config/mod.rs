//! The TOML configuration (SPEC §3): a serde model that rejects unknown keys,
//! and [`load`], which validates it into a [`Config`] whose every name,
//! address and path has been checked. Errors name the file, the key and the
//! reason, and all of them are reported at once.

mod raw;
mod types;
mod validate;

use std::fmt;
use std::path::Path;

pub use crate::model::WhenAllDown;
pub use raw::RawConfig;
pub use types::{
    CONTINENTS, Check, CheckId, CheckKind, Cluster, Config, DEFAULT_CAPACITY, Dnssec, Endpoint,
    EventKind, MapEntry, MapKey, Primary, Quorum, Region, Server, Service, Shed, Transfer,
    TsigAlgorithm, TsigKey, Webhook, Xdp, Zone, parse_map_key,
};
use validate::validate;

/// Most regions one service may list (keeps per-query ordering on the stack).
pub const MAX_SERVICE_REGIONS: usize = 64;
/// Most endpoints one region may have.
pub const MAX_REGION_ENDPOINTS: usize = 64;
/// Most addresses one answer may carry.
pub const MAX_ANSWERS: u32 = 16;

/// One problem found in the configuration or a file it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{file}: cannot read: {reason}")]
    Read {
        /// The file.
        file: String,
        /// The OS error.
        reason: String,
    },
    /// TOML syntax or type error.
    #[error("{file}:{line}:{column}: {key}{sep}{message}", sep = if key.is_empty() { "" } else { ": " })]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Dotted key path (may be empty).
        key: String,
        /// What the parser said.
        message: String,
    },
    /// A zone file problem.
    #[error("{0}")]
    Zone(#[from] crate::zone::ZoneError),
    /// A value that parses but is wrong.
    #[error("{file}: {key}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// Dotted key path, as an operator would write it.
        key: String,
        /// Why it is wrong.
        reason: String,
    },
}

/// All errors of one load, in the order they were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let display = path.display().to_string();
    let text = crate::os::read_input_text(path).map_err(|e| {
        ConfigErrors(vec![ConfigError::Read {
            file: display.clone(),
            reason: e.to_string(),
        }])
    })?;
    parse(&text, path)
}

/// Parses and validates configuration text; `path` names it in errors and
/// anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let raw = raw::parse(text, &file).map_err(|e| ConfigErrors(vec![e]))?;
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut c = validate(raw, path, &base)?;
    c.shared_text = shared_text(text);
    Ok(c)
}

/// The canonical form of what nodes share (see [`Config::shared_text`]).
fn shared_text(text: &str) -> String {
    match text.parse::<toml::Table>() {
        Ok(mut t) => {
            t.remove("server");
            t.remove("cluster");
            // webhooks change no answer, and may differ per node
            t.remove("notify");
            t.to_string()
        }
        Err(_) => text.to_string(),
    }
}

/// Parses TOML into the unvalidated model: syntax, types and unknown keys
/// only (for fragments, e.g. examples in the docs).
pub fn parse_raw(text: &str, file: &str) -> Result<RawConfig, ConfigError> {
    raw::parse(text, file)
}

/// Lowercases a DNS name and makes it fully qualified; `None` if it is not a
/// valid name.
pub fn normalize_name(name: &str) -> Option<String> {
    let mut n = name.trim().to_ascii_lowercase();
    if n.is_empty() {
        return None;
    }
    if !n.ends_with('.') {
        n.push('.');
    }
    if n == "." {
        return Some(n);
    }
    if n.len() > 254 {
        return None;
    }
    for label in n[..n.len() - 1].split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
        {
            return None;
        }
    }
    Some(n)
}

/// True if `name` equals `zone` or lies below it (both normalized).
pub fn in_zone(name: &str, zone: &str) -> bool {
    zone == "."
        || name == zone
        || (name.ends_with(zone) && name[..name.len() - zone.len()].ends_with('.'))
}

/// Quotes a TOML key segment the way an operator would write it.
pub fn key_segment(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        s.to_string()
    } else {
        format!("{s:?}")
    }
}

#[cfg(test)]
mod tests;
