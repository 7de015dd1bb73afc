//! The dashboard in a real browser (issue 9): headless Chromium driven
//! over WebDriver (Debian's `chromium` and `chromium-driver`, through the
//! fantoccini crate) loads the dashboard of `signpost demo`, finds every
//! region on the map and in the table, clicks Drain on eu-west, and the DNS
//! answers for Amsterdam move to us-east; then dials eu-west to 0 and back
//! with its dial control, schedules a drill and cancels it, schedules one
//! that starts and ends by itself, and shows the regions' catchments. A screenshot is saved in the test's output
//! directory. Skips, saying why, only where no browser is installed.

mod common;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{ClientBuilder, Locator};

const EU: &str = "193.0.6.0/24";
const WWW: &str = "www.example.test.";
const REGIONS: [&str; 4] = ["us-east", "eu-west", "ap-south", "sa-east"];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn is_eu_west(a: &[IpAddr]) -> bool {
    a.len() == 1 && (a[0] == ip("127.0.2.1") || a[0] == ip("127.0.2.2"))
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain(["/usr/bin".into(), "/usr/lib/chromium".into()]) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

struct Driver(Child);

impl Drop for Driver {
    /// Ends chromedriver and every browser process it started (a test
    /// that panics never closes its session, and killing chromedriver
    /// alone leaves Chromium running).
    fn drop(&mut self) {
        let mut tree = vec![self.0.id()];
        let mut i = 0;
        while i < tree.len() {
            tree.extend(children(tree[i]));
            i += 1;
        }
        for &pid in tree.iter().skip(1) {
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The processes whose parent is `pid` (from /proc).
fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|st| {
                    // after the command name in parentheses: state, then ppid
                    let rest = &st[st.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Clicks the element `css` finds, found anew until a click lands: the
/// table is rebuilt at every refresh, and a button found just before one
/// is gone by the click.
async fn click(c: &fantoccini::Client, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(b) = c.find(Locator::Css(css)).await
            && b.click().await.is_ok()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{css} is there to click");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fills the schedule form (start `secs` from now, in the browser's
/// local time, as its date field takes it; `dur` long) and submits it.
async fn schedule(c: &fantoccini::Client, secs: u64, dur: &str) {
    let set_start = format!(
        "const d = new Date(Date.now() + {secs} * 1000), p = (n) => String(n).padStart(2, '0');
         document.getElementById('schedule-at').value = d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());"
    );
    c.execute(&set_start, vec![]).await.expect("set the start");
    let field = c
        .find(Locator::Id("schedule-for"))
        .await
        .expect("for field");
    field.clear().await.expect("clear");
    field.send_keys(dur).await.expect("type the duration");
    click(c, "#schedule-add").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_drain_button_moves_dns_answers() {
    let (Some(chromium), Some(driver)) = (
        find(&["chromium", "chromium-browser", "google-chrome"]),
        find(&["chromedriver"]),
    ) else {
        println!(
            "SKIPPED: no Chromium and chromedriver here (apt-get install chromium chromium-driver); .ci/run installs them"
        );
        return;
    };
    // the demo, as a new user runs it (its lab's load balancers bind fixed
    // addresses; test binaries run one at a time, so tests/demo.rs is done)
    let s = Server::start_in(
        scratch("dashboard-browser"),
        &["demo", "--dns", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
    );
    let a = s.admin_url();
    wait_until(Duration::from_secs(20), || is_eu_west(&s.a(WWW, Some(EU))))
        .expect("Amsterdam is answered from eu-west once its probes pass");

    let port = free_port();
    let _driver = Driver(
        Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1100", "--no-proxy-server"],
        }),
    );
    // chromedriver takes a moment to listen
    let deadline = Instant::now() + Duration::from_secs(30);
    let c = loop {
        let http = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(http)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start a browser session: {e}"),
        }
    };

    c.goto(&format!("{a}/")).await.expect("open the dashboard");
    // every region, in the table and on the map
    for r in REGIONS {
        c.wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(&format!("tr.region[data-region='{r}']")))
            .await
            .unwrap_or_else(|e| panic!("row of {r}: {e}"));
        c.find(Locator::Css(&format!("#map circle[data-region='{r}']")))
            .await
            .unwrap_or_else(|e| panic!("map marker of {r}: {e}"));
    }
    let land = c
        .find_all(Locator::Css("#map path.land"))
        .await
        .expect("land");
    assert!(!land.is_empty(), "the vendored map is drawn");
    let state = c
        .find(Locator::Css("tr.region[data-region='eu-west'] td.state"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(state.starts_with("up"), "eu-west before: {state:?}");

    // drain eu-west with its button
    c.find(Locator::Css("button.drain[data-region='eu-west']"))
        .await
        .expect("drain button")
        .click()
        .await
        .expect("click");

    // the DNS answers of Amsterdam move
    wait_until(Duration::from_secs(10), || !is_eu_west(&s.a(WWW, Some(EU))))
        .expect("an EU client's answer moves off the drained region");
    assert_eq!(
        s.a(WWW, Some(EU)),
        vec![ip("127.0.1.1")],
        "to us-east, the next nearest"
    );
    // and the page shows it (next refresh)
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = c
            .find(Locator::Css("tr.region[data-region='eu-west'] td.state"))
            .await
            .expect("state cell")
            .text()
            .await
            .unwrap_or_default();
        if t.starts_with("drained") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page shows eu-west drained: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.find(Locator::Css("button.undrain[data-region='eu-west']"))
        .await
        .expect("the button turns into Undrain");
    let audit = get_json(&format!("{a}/v1/audit"));
    assert!(
        audit["audit"][0]["action"] == "drain" && audit["audit"][0]["target"] == "region eu-west",
        "{audit}"
    );

    // undrain with its button: Amsterdam comes back
    c.find(Locator::Css("button.undrain[data-region='eu-west']"))
        .await
        .expect("undrain button")
        .click()
        .await
        .expect("click");
    wait_until(Duration::from_secs(10), || is_eu_west(&s.a(WWW, Some(EU))))
        .expect("undrained: Amsterdam is answered from eu-west again");

    // the dial control: 0% keeps none of eu-west's clients
    let input = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("input.dial[data-region='eu-west']"))
        .await
        .expect("dial field");
    input.clear().await.expect("clear the field");
    input.send_keys("0").await.expect("type 0");
    click(&c, "button.dial-set[data-region='eu-west']").await;
    wait_until(Duration::from_secs(10), || {
        s.a(WWW, Some(EU)) == vec![ip("127.0.1.1")]
    })
    .expect("dialled to 0: Amsterdam goes to us-east");
    let st = get_json(&format!("{a}/v1/status"));
    let eu = st["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "eu-west")
        .unwrap()
        .clone();
    assert_eq!(eu["dial"], 0.0, "{eu}");
    assert_eq!(eu["drained"], false, "a dial is not a drain");
    click(&c, "button.dial-clear[data-region='eu-west']").await;
    wait_until(Duration::from_secs(10), || is_eu_west(&s.a(WWW, Some(EU))))
        .expect("the dial cleared: Amsterdam is answered from eu-west again");

    // the schedule: a drill an hour away is listed, then cancelled
    c.find(Locator::Css("#schedule-region option[value='eu-west']"))
        .await
        .expect("the form lists eu-west")
        .click()
        .await
        .expect("choose eu-west");
    schedule(&c, 3600, "30m").await;
    // the list is rebuilt at every refresh: read it, and click its
    // Cancel, as found at that moment
    let row_css = "#scheduled tr.scheduled[data-target='region eu-west']";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = match c.find(Locator::Css(row_css)).await {
            Ok(row) => row.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains("30m") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the schedule is listed: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        get_json(&format!("{a}/v1/status"))["scheduled"][0]["region"],
        "eu-west"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let clicked = match c
            .find(Locator::Css(&format!("{row_css} button.cancel")))
            .await
        {
            Ok(b) => b.click().await.is_ok(),
            Err(_) => false,
        };
        if clicked {
            break;
        }
        assert!(Instant::now() < deadline, "the Cancel button is clickable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until(Duration::from_secs(10), || {
        get_json(&format!("{a}/v1/status"))["scheduled"]
            .as_array()
            .is_some_and(Vec::is_empty)
    })
    .expect("cancelled");
    // a drill in 3 s for 3 s: it starts, then ends, by itself
    schedule(&c, 3, "3s").await;
    wait_until(Duration::from_secs(10), || {
        s.a(WWW, Some(EU)) == vec![ip("127.0.1.1")]
    })
    .expect("the drill starts: Amsterdam goes to us-east");
    wait_until(Duration::from_secs(10), || is_eu_west(&s.a(WWW, Some(EU))))
        .expect("and ends: Amsterdam comes back");

    // catchments on the map, with and without biases
    c.find(Locator::Css("#catchment-mode option[value='biased']"))
        .await
        .expect("catchment switch")
        .click()
        .await
        .expect("show catchments");
    let cells = c
        .find_all(Locator::Css("#catchments rect"))
        .await
        .expect("cells");
    assert!(
        cells.len() > 500,
        "the map is covered: {} cells",
        cells.len()
    );
    let mut owners = std::collections::BTreeSet::new();
    for r in REGIONS {
        if c.find(Locator::Css(&format!(
            "#catchments rect[data-region='{r}']"
        )))
        .await
        .is_ok()
        {
            owners.insert(r);
        }
    }
    assert_eq!(
        owners.len(),
        REGIONS.len(),
        "every region has a catchment: {owners:?}"
    );

    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dashboard-drained.png");
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {}", path.display());
    c.close().await.expect("close the session");
}
