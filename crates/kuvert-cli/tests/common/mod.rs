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

    /// The environment the demo printed for the parties' commands (its
    /// `export K=V ...` line): the coordinator's URL and CA, the parties'
    /// PKI directory.
    pub fn env(&self) -> Vec<(String, String)> {
        let err = self.err.lock().unwrap();
        let line = err
            .iter()
            .find_map(|l| l.trim().strip_prefix("export "))
            .expect("the demo printed no `export` line")
            .to_string();
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// One variable of [`Demo::env`].
    pub fn var(&self, name: &str) -> String {
        self.env()
            .into_iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("the demo exported no {name}"))
            .1
    }

    /// The console token the demo printed (operator and auditor).
    pub fn token(&self) -> String {
        self.out
            .iter()
            .find_map(|l| l.trim().strip_prefix("token"))
            .expect("console token")
            .trim()
            .to_string()
    }

    /// A one-time console login link (minted with the demo's console
    /// token) that opens a session and goes on to `next` (a path).
    pub fn login_link(&self, next: &str) -> String {
        let roots =
            kuvert_net::pki::load_roots(Path::new(&self.var("KUVERT_COORDINATOR_CA"))).unwrap();
        let cfg = rustls::ClientConfig::builder_with_provider(kuvert_net::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let agent = ureq::AgentBuilder::new().tls_config(Arc::new(cfg)).build();
        let url = self.url();
        let body = agent
            .post(&format!("{url}/api/login-links"))
            .set("authorization", &format!("Bearer {}", self.token()))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let next: String = next
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        format!("{url}{}&next={next}", v["path"].as_str().unwrap())
    }

    /// The value after `flag` in the printed `kuvert coordinator` command.
    pub fn coordinator_flag(&self, flag: &str) -> String {
        let args = self.printed_command("coordinator");
        let i = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("the coordinator command has no {flag}"));
        args[i + 1].clone()
    }

    /// The arguments after `kuvert` of the first command line the demo
    /// printed that starts with `prefix` (e.g. "coordinator").
    pub fn printed_command(&self, prefix: &str) -> Vec<String> {
        let err = self.err.lock().unwrap();
        let line = err
            .iter()
            .filter_map(|l| l.trim().strip_prefix("$ kuvert "))
            // `coordinator --data-dir ...`, not `coordinator token ...`.
            .find(|l| {
                l.strip_prefix(prefix)
                    .is_some_and(|r| r.trim_start().starts_with("--"))
            })
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
