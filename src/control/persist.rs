//! The `[server] state` file: the drains, kept across restarts (SPEC §5).
//! JSON, written atomically (a temporary file in the same directory,
//! flushed, then renamed over the old one) by one writer task, so the
//! control loop never waits on a disk. A missing or unreadable file is
//! logged and ignored: the node starts with no drains rather than not at
//! all.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::view::{DrainKey, DrainRecord};

/// The file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    /// Format version (1).
    pub version: u32,
    /// Region drains by name.
    #[serde(default)]
    pub regions: BTreeMap<String, DrainRecord>,
    /// Endpoint drains by address.
    #[serde(default)]
    pub endpoints: BTreeMap<String, DrainRecord>,
}

impl Saved {
    /// From drain records.
    pub fn from_records(r: &BTreeMap<DrainKey, DrainRecord>) -> Saved {
        let mut s = Saved {
            version: 1,
            ..Saved::default()
        };
        for (k, v) in r {
            match k {
                DrainKey::Region(n) => {
                    s.regions.insert(n.clone(), v.clone());
                }
                DrainKey::Endpoint(a) => {
                    s.endpoints.insert(a.to_string(), v.clone());
                }
            }
        }
        s
    }

    /// As drain records; entries that do not parse are skipped.
    pub fn records(&self) -> BTreeMap<DrainKey, DrainRecord> {
        let mut out = BTreeMap::new();
        for (n, v) in &self.regions {
            out.insert(DrainKey::Region(n.clone()), v.clone());
        }
        for (a, v) in &self.endpoints {
            match a.parse() {
                Ok(ip) => {
                    out.insert(DrainKey::Endpoint(ip), v.clone());
                }
                Err(_) => tracing::warn!("state file: {a:?} is not an address; skipped"),
            }
        }
        out
    }
}

/// Reads the state file; `None` (logged) when it is missing or unusable.
pub fn load(path: &Path) -> Option<Saved> {
    let text = match crate::os::read_input(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(
                "state file {} does not exist yet; no drains to restore",
                path.display()
            );
            return None;
        }
        Err(e) => {
            tracing::warn!(
                "state file {}: cannot read ({e}); starting without its drains",
                path.display()
            );
            return None;
        }
    };
    match serde_json::from_slice::<Saved>(&text) {
        Ok(s) if s.version == 1 => Some(s),
        Ok(s) => {
            tracing::warn!(
                "state file {}: unknown version {}; starting without its drains",
                path.display(),
                s.version
            );
            None
        }
        Err(e) => {
            tracing::warn!(
                "state file {} is not valid ({e}); starting without its drains",
                path.display()
            );
            None
        }
    }
}

/// Writes `s` to `path` atomically.
pub fn save(path: &Path, s: &Saved) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "state".into());
    let tmp: PathBuf = dir.unwrap_or(Path::new(".")).join(format!(".{name}.tmp"));
    let mut body = serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?;
    body.push(b'\n');
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(d) = dir
        && let Ok(f) = std::fs::File::open(d)
        && let Err(e) = f.sync_all()
    {
        tracing::debug!("state file directory sync: {e}");
    }
    Ok(())
}

/// Starts the writer: every new value sent on the returned channel is
/// written (the latest wins when writes fall behind).
pub fn writer(path: PathBuf, initial: Saved) -> watch::Sender<Saved> {
    let (tx, mut rx) = watch::channel(initial);
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let s = rx.borrow_and_update().clone();
            let p = path.clone();
            match tokio::task::spawn_blocking(move || save(&p, &s)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(
                    "cannot write the state file {}: {e}; drains will not survive a restart",
                    path.display()
                ),
                Err(e) => tracing::error!("state file writer: {e}"),
            }
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let dir = std::env::temp_dir().join(format!("signpost-persist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("signpost.state");
        let mut r = BTreeMap::new();
        r.insert(
            DrainKey::Region("eu-west".into()),
            DrainRecord {
                until: None,
                at: "2026-12-04T10:00:00Z".into(),
                node: "ns1".into(),
            },
        );
        r.insert(
            DrainKey::Endpoint("2001:db8::1".parse().unwrap()),
            DrainRecord {
                until: Some("2026-12-04T11:00:00Z".into()),
                at: "2026-12-04T10:00:00Z".into(),
                node: "ns1".into(),
            },
        );
        save(&path, &Saved::from_records(&r)).unwrap();
        assert_eq!(load(&path).unwrap().records(), r);
        for garbage in [&b"{not json"[..], b"", b"{\"version\":7}", b"\x00\xff"] {
            std::fs::write(&path, garbage).unwrap();
            assert!(load(&path).is_none());
        }
        assert!(load(&dir.join("missing")).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
