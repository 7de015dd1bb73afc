//! A webhook receiver on loopback (tests/notify, tests/cluster): a real HTTP/1.1 server that records
//! what it is sent, and on demand answers 500, hangs (reads the request
//! and never answers), or is down (its port closed).

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One request, as it came.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Header names lowercased.
    pub headers: BTreeMap<String, String>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Delivery {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// A header, if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Debug, Default)]
struct State {
    hang: bool,
    /// Answer 500 to this many more requests.
    fail_next: usize,
    /// Requests read, answered or not.
    attempts: usize,
    /// Requests answered 200, in order.
    got: Vec<Delivery>,
}

/// The receiver.
pub struct Receiver {
    /// Where it listens (the same address after `revive`).
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on a free loopback port and answers 200.
    pub fn start() -> Receiver {
        let mut r = Receiver {
            addr: "127.0.0.1:0".parse().unwrap(),
            state: Arc::default(),
            stop: Arc::default(),
            handle: None,
        };
        r.listen();
        r
    }

    /// A receiver whose port is closed until `revive`.
    pub fn down() -> Receiver {
        let mut r = Receiver::start();
        r.kill();
        r
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://{}/hooks/signpost", self.addr)
    }

    fn listen(&mut self) {
        let listener = TcpListener::bind(self.addr).expect("bind the receiver");
        self.addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        self.stop.store(false, Ordering::SeqCst);
        let (state, stop) = (self.state.clone(), self.stop.clone());
        self.handle = Some(std::thread::spawn(move || {
            // hung connections stay open until the receiver stops
            let mut hung = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        if let Some(s) = serve(s, &state) {
                            hung.push(s);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => panic!("receiver accept: {e}"),
                }
            }
        }));
    }

    /// Closes its port (connection refused from now on).
    pub fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }

    /// Listens again on the same port.
    pub fn revive(&mut self) {
        if self.handle.is_none() {
            self.listen();
        }
    }

    /// Reads requests and never answers them (true), or answers (false).
    pub fn hang(&self, on: bool) {
        self.state.lock().unwrap().hang = on;
    }

    /// Answers 500 to the next `n` requests.
    pub fn fail_next(&self, n: usize) {
        self.state.lock().unwrap().fail_next = n;
    }

    /// Requests read so far.
    pub fn attempts(&self) -> usize {
        self.state.lock().unwrap().attempts
    }

    /// Requests answered 200 so far, in order.
    pub fn got(&self) -> Vec<Delivery> {
        self.state.lock().unwrap().got.clone()
    }

    /// Waits until `n` requests were answered 200; panics after `limit`.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Delivery> {
        let start = Instant::now();
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            if start.elapsed() > limit {
                let bodies: Vec<String> = got
                    .iter()
                    .map(|d| String::from_utf8_lossy(&d.body).to_string())
                    .collect();
                panic!(
                    "{} of {n} deliveries within {limit:?} ({} attempts): {bodies:#?}",
                    got.len(),
                    self.attempts()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads one request and answers it as the state says; returns the
/// stream when it is to hang.
fn serve(mut s: TcpStream, state: &Mutex<State>) -> Option<TcpStream> {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let delivery = read_request(&mut s)?;
    let code = {
        let mut st = state.lock().unwrap();
        st.attempts += 1;
        if st.hang {
            return Some(s);
        }
        if st.fail_next > 0 {
            st.fail_next -= 1;
            "500 Internal Server Error"
        } else {
            st.got.push(delivery);
            "200 OK"
        }
    };
    let reply = format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    if let Err(e) = s.write_all(reply.as_bytes()) {
        eprintln!("receiver: cannot answer: {e}");
    }
    None
}

fn read_request(s: &mut TcpStream) -> Option<Delivery> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    assert!(
        request_line.starts_with("POST /hooks/signpost "),
        "{request_line}"
    );
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(len);
    Some(Delivery { headers, body })
}
