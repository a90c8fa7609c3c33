//! A serving `kuvert demo` as the harness of the service tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

pub const KUVERT: &str = env!("CARGO_BIN_EXE_kuvert");

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub struct Demo {
    pub child: Child,
    /// Standard output up to "Serving the console".
    pub out: Vec<String>,
    /// Standard error so far (the commands the demo printed, node logs'
    /// paths, ...), filled by a thread.
    pub err: Arc<Mutex<Vec<String>>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    /// The console's base URL.
    pub fn url(&self) -> String {
        self.out
            .iter()
            .find_map(|l| l.trim().strip_prefix("console"))
            .and_then(|l| l.split_whitespace().next())
            .expect("console URL")
            .trim_end_matches('/')
            .to_string()
    }

    /// The demo analysis' id.
    pub fn id(&self) -> String {
        self.out
            .iter()
            .find_map(|l| l.strip_prefix("analysis  "))
            .expect("analysis id")
            .trim()
            .to_string()
    }

    /// The arguments after `kuvert` of the first command line the demo
    /// printed that starts with `prefix` (e.g. "coordinator").
    pub fn printed_command(&self, prefix: &str) -> Vec<String> {
        let err = self.err.lock().unwrap();
        let line = err
            .iter()
            .filter_map(|l| l.trim().strip_prefix("$ kuvert "))
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("the demo printed no `kuvert {prefix}` line"))
            .to_string();
        line.split_whitespace().map(str::to_string).collect()
    }
}

/// Start `kuvert demo --serve` and read its stdout until it serves.
pub fn start_demo(dir: &Path, rows: usize) -> Demo {
    let mut child = Command::new(KUVERT)
        .args(["demo", "--serve", "--rows", &rows.to_string(), "--data-dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let err = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&err);
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(l);
        }
    });
    let mut out = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) => {
                let serving = l.starts_with("Serving the console");
                out.push(l);
                if serving {
                    break;
                }
            }
            _ => {
                let _ = child.wait();
                std::thread::sleep(std::time::Duration::from_millis(200));
                panic!(
                    "the demo ended before serving:\n{}\n{}",
                    out.join("\n"),
                    err.lock().unwrap().join("\n")
                );
            }
        }
    }
    Demo { child, out, err }
}
