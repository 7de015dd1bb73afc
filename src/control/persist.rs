//! The `[server] state` file: the drains (scheduled ones too) and dials,
//! kept across restarts (SPEC §5, §11).
//! JSON, written atomically (a temporary file in the same directory,
//! flushed, then renamed over the old one) by one writer task, so the
//! control loop never waits on a disk, and a drain is acknowledged only
//! once its write succeeded. A missing file is a first start; a file that
//! exists but cannot be used stops the start (`serve --discard-state`
//! overrides), so drains never silently come back into answers.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::view::{DrainKey, DrainRecord};

/// The file's contents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// Region dials by name (absent when there is none, so that a file
    /// without dials reads the same to an older signpost).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dials: BTreeMap<String, DrainRecord>,
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
                DrainKey::Dial(n) => {
                    s.dials.insert(n.clone(), v.clone());
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
        for (n, v) in &self.dials {
            out.insert(DrainKey::Dial(n.clone()), v.clone());
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

/// Reads the state file: `Ok(None)` when it does not exist yet, `Err`
/// naming the file and the reason when it exists but cannot be used (a
/// start then stops, unless told to discard it: its drains would silently
/// come back into answers otherwise).
pub fn load(path: &Path) -> Result<Option<Saved>, String> {
    let text = match crate::os::read_input(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(
                "state file {} does not exist yet; no drains to restore",
                path.display()
            );
            return Ok(None);
        }
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    match serde_json::from_slice::<Saved>(&text) {
        Ok(s) if s.version == 1 => Ok(Some(s)),
        Ok(s) => Err(format!(
            "{}: unknown state file version {}",
            path.display(),
            s.version
        )),
        Err(e) => Err(format!("{}: not a valid state file ({e})", path.display())),
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

/// One write asked of the writer, and who waits for its outcome.
struct WriteRequest {
    saved: Saved,
    ack: Option<oneshot::Sender<Result<(), String>>>,
}

/// The state file's writer task: the control loop never waits on a disk.
pub struct Writer {
    tx: mpsc::UnboundedSender<WriteRequest>,
}

impl Writer {
    /// Starts the writer for `path`. Writes that queue up while one is
    /// under way are written once, as the newest, and all of them hear its
    /// outcome; failures count in `errors`.
    pub fn start(path: PathBuf, errors: Counter) -> Writer {
        let (tx, mut rx) = mpsc::unbounded_channel::<WriteRequest>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut acks = Vec::new();
                let mut saved = first.saved;
                acks.extend(first.ack);
                while let Ok(next) = rx.try_recv() {
                    saved = next.saved;
                    acks.extend(next.ack);
                }
                let p = path.clone();
                let r = match tokio::task::spawn_blocking(move || save(&p, &saved)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(format!(
                        "cannot write the state file {}: {e}",
                        path.display()
                    )),
                    Err(e) => Err(format!("state file writer: {e}")),
                };
                if let Err(e) = &r {
                    errors.inc();
                    tracing::error!("{e}; drains made meanwhile are not saved");
                }
                for ack in acks {
                    if ack.send(r.clone()).is_err() {
                        tracing::debug!("state file: nobody waits for the write");
                    }
                }
            }
        });
        Writer { tx }
    }

    /// Writes `saved`; `ack` hears whether it reached the disk.
    pub fn write(&self, saved: Saved, ack: Option<oneshot::Sender<Result<(), String>>>) {
        if self.tx.send(WriteRequest { saved, ack }).is_err() {
            tracing::debug!("state file writer is gone");
        }
    }
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
                starts: None,
                started: false,
                forced: false,
                value: None,
            },
        );
        r.insert(
            DrainKey::Endpoint("2001:db8::1".parse().unwrap()),
            DrainRecord {
                until: Some("2026-12-04T11:00:00Z".into()),
                at: "2026-12-04T10:00:00Z".into(),
                node: "ns1".into(),
                starts: None,
                started: false,
                forced: false,
                value: None,
            },
        );
        r.insert(
            DrainKey::Region("us-east".into()),
            DrainRecord {
                until: Some("2026-12-05T11:00:00Z".into()),
                at: "2026-12-04T10:00:00Z".into(),
                node: "ns1".into(),
                starts: Some("2026-12-05T10:00:00Z".into()),
                started: false,
                forced: false,
                value: None,
            },
        );
        r.insert(
            DrainKey::Dial("eu-west".into()),
            DrainRecord {
                until: None,
                at: "2026-12-04T10:00:00Z".into(),
                node: "ns1".into(),
                starts: None,
                started: false,
                forced: false,
                value: Some(0.25),
            },
        );
        save(&path, &Saved::from_records(&r)).unwrap();
        assert_eq!(load(&path).unwrap().unwrap().records(), r);
        for garbage in [&b"{not json"[..], b"", b"{\"version\":7}", b"\x00\xff"] {
            std::fs::write(&path, garbage).unwrap();
            let e = load(&path).unwrap_err();
            assert!(e.contains("signpost.state"), "names the file: {e}");
        }
        assert_eq!(load(&dir.join("missing")), Ok(None));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
