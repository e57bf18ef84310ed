//! The agent desk's figures: the bundle's size compressed, the time from loading the page to the
//! first waiting call listed, and the delay from `RouteCall` (sent by a tonic client) to the call on
//! screen — the real binary over its own Redis, Debian's Chromium on the same machine.
//! `cargo bench --bench desk`.

#[path = "../tests/support/app.rs"]
pub mod app;
#[path = "../tests/support/binary.rs"]
pub mod binary;
#[path = "../tests/support/browser.rs"]
pub mod browser;
#[path = "../tests/support/ports.rs"]
pub mod ports;
#[path = "../tests/support/redis_server.rs"]
pub mod redis_server;
#[path = "../tests/support/served.rs"]
pub mod served;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use browser::Browser;
use served::Served;

const LOADS: usize = 10;
const CALLS: usize = 20;

fn gzipped(bytes: &[u8]) -> usize {
    let mut gzip = Command::new("gzip")
        .arg("-9c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip runs");
    gzip.stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("write");
    gzip.wait_with_output().expect("gzip output").stdout.len()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
        * 1000.0
}

/// Resolves, in the page, with the time (epoch ms) a row of a ticket not listed now appears.
const NEXT_ROW: &str = r##"(() => {
  const known = new Set([...document.querySelectorAll("#waiting tr[data-ticket]")].map((r) => r.dataset.ticket));
  window.nextRow = new Promise((resolve) => {
    const seen = () => {
      for (const r of document.querySelectorAll("#waiting tr[data-ticket]")) {
        if (!known.has(r.dataset.ticket)) { resolve(performance.timeOrigin + performance.now()); return true; }
      }
      return false;
    };
    const observer = new MutationObserver(() => seen() && observer.disconnect());
    observer.observe(document.body, { childList: true, subtree: true });
  });
  return true;
})()"##;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut total = 0;
    for file in ["index.html", "desk.js", "desk.css"] {
        let bytes = std::fs::read(format!("web/dist/{file}")).expect("the committed bundle");
        let compressed = gzipped(&bytes);
        total += compressed;
        println!(
            "bundle {file:<11} {:>7} bytes, {:>6} gzip -9",
            bytes.len(),
            compressed
        );
    }
    println!("bundle total              {total:>6} bytes gzip -9");

    let Some(served) = Served::start() else {
        eprintln!("no redis-server here: the browser figures need one");
        return;
    };
    let Some(mut browser) = Browser::start() else {
        return;
    };
    let token = app::dev_tokens()["tl-agent-1"].clone();
    browser.sign_in("agent", &served.url(""), &token);
    for n in 0..3 {
        served.route(&format!("bench-waiting-{n}"), "technical.plumbing.leak");
    }
    browser.wait_count("agent", "#waiting tr[data-ticket]", 3);

    let mut loads = Vec::new();
    for _ in 0..LOADS {
        browser.run(serde_json::json!({"op": "reload", "page": "agent"}));
        browser.wait_count("agent", "#waiting tr[data-ticket]", 3);
        let at = browser.evaluate(
            "agent",
            "performance.getEntriesByName('desk-first-list')[0]?.startTime ?? -1",
        );
        loads.push(at.as_f64().expect("the first-list mark"));
    }
    println!(
        "page load → first call listed: median {:.1} ms (min {:.1}, max {:.1}) over {LOADS} loads",
        median(loads.clone()),
        loads.iter().copied().fold(f64::MAX, f64::min),
        loads.iter().copied().fold(0.0, f64::max)
    );

    let mut delays = Vec::new();
    for n in 0..CALLS {
        browser.evaluate("agent", NEXT_ROW);
        let sent = epoch_ms();
        served.route(&format!("bench-live-{n}"), "technical.plumbing.leak");
        let shown = browser
            .evaluate("agent", "window.nextRow")
            .as_f64()
            .expect("a time");
        delays.push(shown - sent);
    }
    let mut sorted = delays.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "RouteCall → call on screen: median {:.1} ms (min {:.1}, max {:.1}) over {CALLS} calls",
        median(delays),
        sorted[0],
        sorted[CALLS - 1]
    );
}
