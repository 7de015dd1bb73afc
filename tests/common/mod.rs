//! Shared harness for the black-box tests: runs the real `signpost`
//! binary on 127.0.0.1:0, reads the bound ports from its log, and talks
//! real DNS (hickory-proto messages over UDP/TCP) and real HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};

pub mod etcd;
pub mod large;
pub mod mmdb;
pub mod tools;
pub mod webhook;

/// The demo GeoIP database shipped in the repository.
pub const GEOIP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/geoip/demo-city.mmdb");
/// The signpost binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_signpost");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("signpost-test-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A standard test zone for `example.test.`.
pub const ZONE: &str = r#"$ORIGIN example.test.
$TTL 300
@       IN SOA  ns1.example.test. hostmaster.example.test. 2026112201 3600 600 604800 60
        IN NS   ns1.example.test.
        IN MX   10 mail.example.test.
        IN TXT  "hello world"
ns1     IN A    127.0.0.1
mail    IN A    192.0.2.25
app     IN CNAME www
"#;

/// A running signpost process.
pub struct Server {
    child: Option<Child>,
    /// DNS address.
    pub dns: SocketAddr,
    /// Admin address, if configured.
    pub admin: Option<SocketAddr>,
    /// The scratch directory holding its config.
    pub dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Writes `signpost.toml` (and extra files) into a scratch dir and
    /// starts `signpost serve` on it.
    pub fn start(name: &str, config: &str, files: &[(&str, &str)]) -> Server {
        let dir = scratch(name);
        for (f, body) in files {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        std::fs::write(dir.join("signpost.toml"), config).unwrap();
        Server::start_in(dir, &["serve", "--config", "signpost.toml"])
    }

    /// Starts signpost with `args` in `dir` and waits for its listeners.
    pub fn start_in(dir: PathBuf, args: &[&str]) -> Server {
        Server::try_start_in(dir, args).unwrap_or_else(|(log, status)| {
            panic!("signpost did not start ({status:?}):\n{}", log.join("\n"))
        })
    }

    /// Like `start_in`, but returns the log and exit status on failure.
    pub fn try_start_in(
        dir: PathBuf,
        args: &[&str],
    ) -> Result<Server, (Vec<String>, Option<ExitStatus>)> {
        Server::try_start_limited(dir, args, None)
    }

    /// Like `start_in`, with the open-files limit (soft and hard) set to
    /// `nofile` for the process.
    pub fn start_limited(dir: PathBuf, args: &[&str], nofile: u64) -> Server {
        Server::try_start_limited(dir, args, Some(nofile)).unwrap_or_else(|(log, status)| {
            panic!("signpost did not start ({status:?}):\n{}", log.join("\n"))
        })
    }

    fn try_start_limited(
        dir: PathBuf,
        args: &[&str],
        nofile: Option<u64>,
    ) -> Result<Server, (Vec<String>, Option<ExitStatus>)> {
        let mut cmd = Command::new(BIN);
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit between fork and exec
            unsafe {
                cmd.pre_exec(move || {
                    let rl = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .args(args)
            .current_dir(&dir)
            .env("SIGNPOST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn signpost");
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(strip_ansi(&line));
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut dns, mut admin) = (None, None);
        loop {
            {
                let lines = log.lock().unwrap();
                for l in lines.iter() {
                    if let Some(a) = after(l, "dns listening on ") {
                        dns = a.parse().ok();
                    }
                    if let Some(a) = after(l, "admin listening on ") {
                        admin = a.parse().ok();
                    }
                }
            }
            let wants_admin = {
                let cfg = std::fs::read_to_string(dir.join("signpost.toml")).unwrap_or_default();
                cfg.lines().any(|l| l.trim_start().starts_with("admin")) || args.contains(&"demo")
            };
            if dns.is_some() && (admin.is_some() || !wants_admin) {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err((log.lock().unwrap().clone(), Some(status)));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err((log.lock().unwrap().clone(), None));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Server {
            child: Some(child),
            dns: dns.unwrap(),
            admin,
            dir,
            log,
        })
    }

    /// The log so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        unsafe {
            libc::kill(pid, sig);
        }
    }

    /// SIGTERM, and the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("signpost did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no goodbye (a crashed node).
    pub fn kill(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Is the process still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().unwrap().try_wait(), Ok(None))
    }

    /// Admin base URL.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin.expect("admin configured"))
    }

    /// One UDP query.
    pub fn udp(&self, msg: &Message) -> Message {
        udp_exchange(self.dns, &msg.to_vec().unwrap()).expect("a UDP reply")
    }

    /// One TCP query.
    pub fn tcp(&self, msg: &Message) -> Message {
        tcp_exchange(self.dns, &msg.to_vec().unwrap())
    }

    /// `A` query with optional ECS, over UDP; returns the addresses.
    pub fn a(&self, name: &str, ecs: Option<&str>) -> Vec<IpAddr> {
        addresses(&self.udp(&query(name, RecordType::A, ecs)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn after<'a>(line: &'a str, pat: &str) -> Option<&'a str> {
    let i = line.find(pat)?;
    line[i + pat.len()..].split_whitespace().next()
}

/// Removes terminal colour codes from a log line.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A query message; `ecs` like "193.0.6.0/24".
pub fn query(name: &str, t: RecordType, ecs: Option<&str>) -> Message {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if let Some(e) = ecs {
        let (a, p) = e.split_once('/').unwrap();
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(
                a.parse().unwrap(),
                p.parse().unwrap(),
                0,
            )));
        m.set_edns(edns);
    }
    m
}

/// A query with EDNS but no ECS.
pub fn query_edns(name: &str, t: RecordType) -> Message {
    let mut m = query(name, t, None);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    m.set_edns(edns);
    m
}

fn rand_id() -> u16 {
    (COUNTER.fetch_add(1, Ordering::SeqCst) as u16).wrapping_mul(7919) ^ (std::process::id() as u16)
}

/// Sends bytes over UDP and waits up to 2 s for a reply.
pub fn udp_exchange(addr: SocketAddr, bytes: &[u8]) -> Option<Message> {
    udp_raw(addr, bytes, Duration::from_secs(2))
        .map(|b| Message::from_vec(&b).expect("parsable reply"))
}

/// Sends bytes over UDP; the raw reply, if any arrives within `wait`.
pub fn udp_raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let bind = if addr.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let s = UdpSocket::bind(bind).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.send_to(bytes, addr).unwrap();
    let mut buf = [0u8; 65535];
    match s.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// One message over a fresh TCP connection.
pub fn tcp_exchange(addr: SocketAddr, bytes: &[u8]) -> Message {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    s.write_all(&out).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    Message::from_vec(&buf).unwrap()
}

/// A and AAAA addresses in the answer section.
pub fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// The ECS option of a response: (source prefix, scope prefix, address).
pub fn ecs_of(m: &Message) -> Option<(u8, u8, IpAddr)> {
    let e = m.edns.as_ref()?;
    match e.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some((s.source_prefix(), s.scope_prefix(), s.addr())),
        _ => None,
    }
}

/// Polls `f` every 50 ms until it returns true or `limit` passes; returns
/// the time it took.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Like [`http`], but `None` when the server cannot be reached.
pub fn try_http(method: &str, url: &str) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let host = rest.split('/').next()?;
    let addr: SocketAddr = host.parse().ok()?;
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    std::panic::catch_unwind(|| http(method, url, None)).ok()
}

/// A minimal HTTP/1.1 client: (status, body).
pub fn http(method: &str, url: &str, token: Option<&str>) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = TcpStream::connect(host).expect("connect to admin API");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = match text.find("\r\n\r\n") {
        Some(i) => text[i + 4..].to_string(),
        None => String::new(),
    };
    let body = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    (status, body)
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\r\n") {
        let n = usize::from_str_radix(rest[..i].trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        let start = i + 2;
        out.push_str(&rest[start..(start + n).min(rest.len())]);
        rest = &rest[(start + n + 2).min(rest.len())..];
    }
    out
}

/// GET returning parsed JSON.
pub fn get_json(url: &str) -> serde_json::Value {
    let (code, body) = http("GET", url, None);
    assert_eq!(code, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"))
}

/// What a fake load balancer does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LbMode {
    /// 200 "ok".
    Ok = 0,
    /// 503.
    Fail = 1,
    /// Accept the connection and never answer.
    Hang = 2,
}

/// A fake regional load balancer: a real HTTP server on a loopback address.
pub struct FakeLb {
    /// Where it listens.
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    /// Probes from these source addresses get 503 (one vantage point's view).
    refuse: Arc<Mutex<Vec<IpAddr>>>,
    /// An `X-Load` header to send, if any.
    load: Arc<Mutex<Option<String>>>,
    /// Milliseconds to wait before answering.
    delay_ms: Arc<AtomicUsize>,
    stop: Arc<AtomicU8>,
    hits: Arc<AtomicUsize>,
    /// When not empty, answers follow this pattern over and over (true:
    /// 200, false: 503), one step per request, instead of the mode.
    script: Arc<Mutex<(Vec<bool>, usize)>>,
    /// When each 200 or 503 was sent, and whether it was a 200.
    answered: Arc<Mutex<Vec<(Instant, bool)>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl FakeLb {
    /// Starts one on `ip:port` (port 0 picks one).
    pub fn start(addr: SocketAddr) -> FakeLb {
        let mode = Arc::new(AtomicU8::new(LbMode::Ok as u8));
        let mut lb = FakeLb {
            addr,
            mode,
            refuse: Arc::new(Mutex::new(Vec::new())),
            load: Arc::new(Mutex::new(None)),
            delay_ms: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicU8::new(0)),
            hits: Arc::new(AtomicUsize::new(0)),
            script: Arc::new(Mutex::new((Vec::new(), 0))),
            answered: Arc::new(Mutex::new(Vec::new())),
            handle: None,
        };
        lb.listen();
        lb
    }

    fn listen(&mut self) {
        let listener = TcpListener::bind(self.addr)
            .unwrap_or_else(|e| panic!("fake LB bind {}: {e}", self.addr));
        self.addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        self.stop.store(0, Ordering::SeqCst);
        let (mode, stop, hits) = (self.mode.clone(), self.stop.clone(), self.hits.clone());
        let refuse = self.refuse.clone();
        let (load, delay_ms) = (self.load.clone(), self.delay_ms.clone());
        let (script, answered) = (self.script.clone(), self.answered.clone());
        self.handle = Some(std::thread::spawn(move || {
            let mut hung = Vec::new();
            while stop.load(Ordering::SeqCst) == 0 {
                match listener.accept() {
                    Ok((mut s, peer)) => {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let mut m = mode.load(Ordering::SeqCst);
                        if refuse.lock().unwrap().contains(&peer.ip()) {
                            m = LbMode::Fail as u8;
                        }
                        {
                            let mut script = script.lock().unwrap();
                            let (steps, at) = &mut *script;
                            if !steps.is_empty() {
                                m = if steps[*at % steps.len()] {
                                    LbMode::Ok as u8
                                } else {
                                    LbMode::Fail as u8
                                };
                                *at += 1;
                            }
                        }
                        if m == LbMode::Hang as u8 {
                            hung.push(s);
                            continue;
                        }
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        let mut buf = [0u8; 2048];
                        let _ = s.read(&mut buf);
                        let (code, body) = if m == LbMode::Ok as u8 {
                            ("200 OK", "ok")
                        } else {
                            ("503 Service Unavailable", "down")
                        };
                        let delay = delay_ms.load(Ordering::SeqCst);
                        if delay > 0 {
                            std::thread::sleep(Duration::from_millis(delay as u64));
                        }
                        let load = load
                            .lock()
                            .unwrap()
                            .as_ref()
                            .map(|l| format!("X-Load: {l}\r\n"))
                            .unwrap_or_default();
                        let _ = write!(
                            s,
                            "HTTP/1.1 {code}\r\n{load}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        answered
                            .lock()
                            .unwrap()
                            .push((Instant::now(), m == LbMode::Ok as u8));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }

    /// Changes what it answers.
    pub fn set(&self, m: LbMode) {
        self.mode.store(m as u8, Ordering::SeqCst);
    }

    /// Answers 503 to requests from these source addresses (and as set
    /// by [`FakeLb::set`] to the others).
    pub fn fail_from(&self, sources: &[&str]) {
        *self.refuse.lock().unwrap() = sources.iter().map(|s| s.parse().unwrap()).collect();
    }

    /// The `X-Load` header it sends (`None`: no header).
    pub fn set_load(&self, v: Option<&str>) {
        *self.load.lock().unwrap() = v.map(str::to_string);
    }

    /// Waits this long before each answer.
    pub fn set_delay(&self, d: Duration) {
        self.delay_ms
            .store(d.as_millis() as usize, Ordering::SeqCst);
    }

    /// Answers by `pattern` from now on (true: 200, false: 503), one step
    /// per request, round and round; an empty pattern goes back to the
    /// mode.
    pub fn script(&self, pattern: &[bool]) {
        *self.script.lock().unwrap() = (pattern.to_vec(), 0);
    }

    /// When each answer was sent, and whether it was a 200.
    pub fn answered(&self) -> Vec<(Instant, bool)> {
        self.answered.lock().unwrap().clone()
    }

    /// Stops listening (connection refused from now on).
    pub fn kill(&mut self) {
        self.stop.store(1, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }

    /// Listens again on the same address.
    pub fn revive(&mut self) {
        if self.handle.is_none() {
            self.listen();
        }
    }

    /// Requests seen.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for FakeLb {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `body` to `path` atomically enough for a reload test.
pub fn write(path: &Path, body: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Runs the binary with `args` in `dir`; (exit code, stdout, stderr).
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("SIGNPOST_ADMIN_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn signpost");
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(out)) => (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        ),
        _ => {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            panic!("signpost {args:?} did not finish within 60 s");
        }
    }
}

/// A port free on 127.0.0.1 for both UDP and TCP (for a daemon that
/// must be told its port before it starts).
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// A TCP connection to `addr`, from the loopback address `src` when given.
pub fn tcp_connect_from(src: Option<IpAddr>, addr: SocketAddr) -> TcpStream {
    let Some(src) = src else {
        return TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    };
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    sock.bind(&SocketAddr::new(src, 0).into())
        .unwrap_or_else(|e| panic!("bind {src}: {e}"));
    sock.connect_timeout(&addr.into(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr} from {src}: {e}"));
    sock.into()
}

/// A zone transfer over TCP (from `src` when given): sends `request`
/// (an AXFR or IXFR query) and reads the answer's messages, raw, until
/// the stream is complete: an error RCODE, an IXFR answered with its SOA
/// alone, or a closing SOA equal to the opening one. Panics when the
/// stream stalls for 5 s or ends early.
pub fn tcp_transfer(src: Option<IpAddr>, addr: SocketAddr, request: &[u8]) -> Vec<Vec<u8>> {
    // a malformed request (a FORMERR test) counts as no IXFR
    let ixfr = Message::from_vec(request).is_ok_and(|req| {
        req.queries
            .first()
            .is_some_and(|q| q.query_type() == RecordType::IXFR)
    });
    let mut s = tcp_connect_from(src, addr);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = (request.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(request);
    s.write_all(&out).unwrap();
    let mut messages = Vec::new();
    let mut soas: Vec<u32> = Vec::new();
    let mut records = 0usize;
    let mut last_is_soa = false;
    loop {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap_or_else(|e| {
            panic!(
                "the transfer stream ended or stalled after {} messages: {e}",
                messages.len()
            )
        });
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).unwrap();
        let m = Message::from_vec(&buf).expect("a parsable transfer message");
        messages.push(buf);
        if m.metadata.response_code != hickory_proto::op::ResponseCode::NoError {
            return messages;
        }
        for r in &m.answers {
            records += 1;
            last_is_soa = false;
            if let RData::SOA(soa) = &r.data {
                soas.push(soa.serial);
                last_is_soa = true;
            }
        }
        if ixfr && records == 1 && soas.len() == 1 {
            return messages;
        }
        if soas.len() >= 2 && last_is_soa && soas.last() == soas.first() && records > 1 {
            return messages;
        }
    }
}
