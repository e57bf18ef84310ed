//! A real browser for a test: Debian's Chromium driven by Playwright (`web/tests/driver.mjs`,
//! `playwright-core` from `web/node_modules`), one JSON command per line. When Node.js, the
//! driver's packages or Chromium are missing the test fails if `CI` is set, and is skipped with a
//! message otherwise.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Browser {
    /// Starts Chromium, or returns `None` (outside CI) when it cannot run here.
    pub fn start() -> Option<Browser> {
        let missing = if !std::path::Path::new("web/node_modules/playwright-core").exists() {
            Some("web/node_modules (run `npm ci` in web/)")
        } else if !std::path::Path::new("/usr/bin/chromium").exists() {
            Some("/usr/bin/chromium (Debian's chromium package)")
        } else {
            None
        };
        if let Some(what) = missing {
            assert!(
                std::env::var_os("CI").is_none(),
                "browser tests need {what}"
            );
            eprintln!("skipped: browser tests need {what}");
            return None;
        }
        let mut child = Command::new("node")
            .arg("web/tests/driver.mjs")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs the browser driver");
        let stdin = child.stdin.take().expect("driver stdin");
        let stdout = BufReader::new(child.stdout.take().expect("driver stdout"));
        Some(Browser {
            child,
            stdin,
            stdout,
        })
    }

    /// Runs one command (`{"op": …, "page": …}`), answering its value or the driver's error.
    pub fn try_run(&mut self, command: Value) -> Result<Value, String> {
        writeln!(self.stdin, "{command}").expect("write to the driver");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read from the driver");
        let answer: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("driver answered {line:?}: {e}"));
        if answer["ok"] == json!(true) {
            Ok(answer["value"].clone())
        } else {
            Err(answer["error"]
                .as_str()
                .unwrap_or("driver failed")
                .to_owned())
        }
    }

    /// Runs one command that must succeed.
    pub fn run(&mut self, command: Value) -> Value {
        let shown = command.to_string();
        self.try_run(command)
            .unwrap_or_else(|e| panic!("{shown}: {e}"))
    }

    /// The text of the first element `selector` matches, once it contains `contains`.
    pub fn wait(&mut self, page: &str, selector: &str, contains: &str) -> String {
        self.run(json!({"op": "wait", "page": page, "selector": selector, "contains": contains}))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Opens `url` as `page` and signs in with `token`, waiting for the live list.
    pub fn sign_in(&mut self, page: &str, url: &str, token: &str) {
        self.run(json!({"op": "open", "page": page, "url": url}));
        self.run(json!({"op": "fill", "page": page, "selector": "#token", "value": token}));
        self.click(page, "form.signin button[type=submit]");
        self.wait(page, "#link", "En direct");
    }

    /// Evaluates a script in the page, awaiting it when it is a promise.
    pub fn evaluate(&mut self, page: &str, script: &str) -> Value {
        self.run(json!({"op": "evaluate", "page": page, "script": script}))
    }

    pub fn click(&mut self, page: &str, selector: &str) {
        self.run(json!({"op": "click", "page": page, "selector": selector}));
    }

    pub fn count(&mut self, page: &str, selector: &str) -> u64 {
        self.run(json!({"op": "count", "page": page, "selector": selector}))
            .as_u64()
            .unwrap_or_default()
    }

    pub fn wait_count(&mut self, page: &str, selector: &str, count: u64) {
        self.run(json!({"op": "waitCount", "page": page, "selector": selector, "count": count}));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
