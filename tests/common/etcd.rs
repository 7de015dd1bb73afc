//! A real etcd cluster on loopback for the cluster tests: Debian's
//! `etcd-server` (`.ci/run` installs it), one process per member, free
//! ports, a scratch data directory each; members can be killed and
//! started again.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One member.
struct Member {
    name: String,
    client: String,
    peer: String,
    data: PathBuf,
    child: Option<Child>,
}

/// A running etcd cluster.
pub struct Etcd {
    members: Vec<Member>,
    initial: String,
    token: String,
}

/// `n` distinct free ports, none handed out before in this process: the
/// listeners are held until all are picked (a port closed at once can be
/// the kernel's next pick, which once gave two members the same port),
/// and tests starting clusters at the same time never share one.
fn free_ports(n: usize) -> Vec<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = l.local_addr().expect("its address").port();
        if !given.contains(&port) {
            given.push(port);
            ports.push(port);
        }
        held.push(l);
    }
    ports
}

/// The etcd binary, if installed.
pub fn etcd_binary() -> Option<PathBuf> {
    ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

impl Etcd {
    /// Starts `n` members and waits until the cluster answers; `None`
    /// (the caller skips, saying why) when etcd is not installed.
    pub fn start(n: usize, name: &str) -> Option<Etcd> {
        etcd_binary()?;
        let dir = super::scratch(&format!("etcd-{name}"));
        let ports = free_ports(2 * n);
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: format!("http://127.0.0.1:{}", ports[2 * i]),
                peer: format!("http://127.0.0.1:{}", ports[2 * i + 1]),
                data: dir.join(format!("m{i}")),
                child: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut e = Etcd {
            members,
            initial,
            token: format!("signpost-test-{name}-{}", std::process::id()),
        };
        for i in 0..n {
            e.spawn(i, "new");
        }
        e.wait_healthy(Duration::from_secs(30));
        Some(e)
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let bin = etcd_binary().expect("etcd");
        let m = &mut self.members[i];
        let log = std::fs::File::create(m.data.with_extension("log")).expect("etcd log file");
        let child = Command::new(bin)
            .args([
                "--name",
                &m.name,
                "--data-dir",
                &m.data.display().to_string(),
                "--listen-client-urls",
                &m.client,
                "--advertise-client-urls",
                &m.client,
                "--listen-peer-urls",
                &m.peer,
                "--initial-advertise-peer-urls",
                &m.peer,
                "--initial-cluster",
                &self.initial,
                "--initial-cluster-state",
                state,
                "--initial-cluster-token",
                &self.token,
                "--logger",
                "zap",
                "--log-level",
                "error",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        m.child = Some(child);
    }

    /// The first member's client URL.
    pub fn client_url(&self) -> String {
        self.members[0].client.clone()
    }

    /// Client URLs, as a TOML array.
    pub fn toml_endpoints(&self) -> String {
        let urls: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("\"{}\"", m.client))
            .collect();
        format!("[{}]", urls.join(", "))
    }

    /// Kills member `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again with its data.
    pub fn revive(&mut self, i: usize) {
        if self.members[i].child.is_none() {
            self.spawn(i, "existing");
        }
    }

    /// How many members it has.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// Client URL of member `i`.
    pub fn member_url(&self, i: usize) -> String {
        self.members[i].client.clone()
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) to member `i`: a member that
    /// hangs, neither dead nor answering.
    pub fn pause(&self, i: usize, stop: bool) {
        if let Some(c) = &self.members[i].child {
            let sig = if stop { libc::SIGSTOP } else { libc::SIGCONT };
            // SAFETY: a signal to our own child process
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// Writes `count` verdicts of a node long gone (`ghost`), about 11 KiB
    /// each, under `prefix`: 520 make 5.7 MB, more than one gRPC response
    /// may carry. Returns how many keys the prefix holds then.
    pub fn put_ghost_verdicts(&self, prefix: &str, count: usize) -> i64 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let mut c = etcd_client::Client::connect([self.member_url(0)], None)
                .await
                .expect("connect to etcd");
            let reason = "x".repeat(11 * 1024);
            // ten puts of 11 KiB per transaction: below etcd's 1.5 MiB request limit
            for batch in 0..count.div_ceil(10) {
                let ops: Vec<etcd_client::TxnOp> = (0..10.min(count - 10 * batch))
                    .map(|i| {
                        let v = serde_json::json!({
                            "healthy": false,
                            "reason": reason,
                            "since": "2026-01-01T00:00:00Z",
                        });
                        etcd_client::TxnOp::put(
                            format!("{prefix}/health/ghost/http:%2F%2F192.0.2.{batch}:{i}"),
                            v.to_string(),
                            None,
                        )
                    })
                    .collect();
                c.txn(etcd_client::Txn::new().and_then(ops))
                    .await
                    .expect("fill etcd");
            }
            c.get(
                format!("{prefix}/"),
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_count_only(),
                ),
            )
            .await
            .expect("count")
            .count()
        })
    }

    /// Kills every member.
    pub fn kill_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    /// Starts every member again and waits for a healthy cluster.
    pub fn revive_all(&mut self) {
        for i in 0..self.members.len() {
            self.revive(i);
        }
        self.wait_healthy(Duration::from_secs(30));
    }

    /// Waits until a running member reports a healthy cluster (a leader).
    pub fn wait_healthy(&self, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            for m in self.members.iter().filter(|m| m.child.is_some()) {
                if let Some((200, body)) = super::try_http("GET", &format!("{}/health", m.client))
                    && body.contains("\"health\":\"true\"")
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("etcd did not become healthy within {limit:?}");
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill_all();
        // etcd preallocates its WAL: hundreds of MB per cluster left in
        // /tmp would fill the disk over a few runs
        for m in &self.members {
            let _ = std::fs::remove_dir_all(&m.data);
        }
    }
}
