//! Robustness of the governed service with real processes (a serving
//! `kuvert demo`: coordinator + three nodes over TLS):
//! - 20 analyses submitted, approved, uploaded and fetched concurrently all
//!   complete with SQLite's answers;
//! - the coordinator killed mid-job (after the approvals, before the data)
//!   and restarted loses no approval, and the job completes;
//! - a node that is down makes the upload fail with a message naming it and
//!   the coordinator report it (nothing hangs); once it is back, the same
//!   analysis completes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{start_demo, text, Demo, KUVERT};

const ANALYSIS: &str = "overlapping-benefits";

struct Env {
    url: String,
    dir: PathBuf,
    /// What the demo exported: the coordinator's URL and CA, the parties'
    /// PKI directory.
    vars: Vec<(String, String)>,
}

impl Env {
    fn kuvert(&self, args: &[&str]) -> Output {
        Command::new(KUVERT)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .env("KUVERT_COORDINATOR", &self.url)
            // Submit and status as fk (which may submit).
            .env("KUVERT_COORDINATOR_PARTY", "fk")
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.kuvert(args);
        assert!(o.status.success(), "kuvert {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    fn key(&self, party: &str) -> String {
        self.dir
            .join(format!("keys/{party}.key"))
            .display()
            .to_string()
    }

    /// A variant of the demo's spec (another name, so another id).
    fn spec_variant(&self, tag: &str) -> PathBuf {
        let text = std::fs::read_to_string(self.dir.join("analysis.toml")).unwrap();
        let text = text.replacen(
            "name = \"overlapping-benefits\"",
            &format!("name = \"overlapping-benefits-{tag}\""),
            1,
        );
        let p = self.dir.join(format!("analysis-{tag}.toml"));
        std::fs::write(&p, text).unwrap();
        p
    }

    fn submit_and_approve(&self, tag: &str) -> String {
        let spec = self.spec_variant(tag);
        let id = self
            .ok(&["analysis", "submit", &spec.display().to_string()])
            .trim()
            .to_string();
        // Non-interactive: --yes with the spec file read (its hash is id).
        let spec = spec.display().to_string();
        for c in ["fk", "kommun"] {
            self.ok(&[
                "analysis",
                "approve",
                &id,
                "--key",
                &self.key(c),
                "--spec",
                &spec,
                "--yes",
            ]);
        }
        id
    }

    fn inputs(&self, tag: &str, seed: u64) -> PathBuf {
        let d = self.dir.join(format!("inputs-{tag}"));
        kuvert_examples::gen::write_inputs(ANALYSIS, 40, seed, &d).unwrap();
        d
    }

    fn upload(&self, id: &str, inputs: &Path) -> Output {
        let fk = format!("fk={}", inputs.join("fk.csv").display());
        let ek = format!("ek={}", inputs.join("ek.csv").display());
        let a = self.kuvert(&["upload", id, "--table", &fk, "--key", &self.key("fk")]);
        if !a.status.success() {
            return a;
        }
        self.kuvert(&["upload", id, "--table", &ek, "--key", &self.key("kommun")])
    }

    fn state(&self, id: &str) -> (String, String) {
        let o = self.kuvert(&["status", id, "--json"]);
        if !o.status.success() {
            return ("unreachable".into(), text(&o));
        }
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        (s("state"), s("detail"))
    }

    fn wait_state(&self, id: &str, want: &str, limit: Duration) -> String {
        let t = Instant::now();
        loop {
            let (state, detail) = self.state(id);
            if state == want {
                return detail;
            }
            assert!(
                state != "failed" || want == "failed",
                "analysis {id} failed: {detail}"
            );
            assert!(
                t.elapsed() < limit,
                "analysis {id} is still {state} ({detail}) after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// kontroll's answer equals SQLite's on the cleartext inputs.
    fn check_result(&self, id: &str, inputs: &Path) {
        let got = self.ok(&["result", id, "--key", &self.key("kontroll")]);
        let want = kuvert_examples::sqlite::reference(ANALYSIS, "ids", inputs).unwrap();
        let mut got: Vec<String> = got.lines().skip(1).map(str::to_string).collect();
        let mut want: Vec<String> = want.rows.iter().map(|r| r.join(",")).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "analysis {id}");
    }
}

fn pkill(pattern: &str) {
    let o = Command::new("pkill")
        .args(["-KILL", "-f", pattern])
        .output()
        .unwrap();
    assert!(o.status.success(), "no process matches {pattern:?}");
}

fn spawn_kuvert(args: &[String], log: &Path) -> Child {
    Command::new(KUVERT)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

struct Kill(Vec<Child>);
impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn concurrent_analyses_coordinator_restart_and_node_down() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let demo: Demo = start_demo(&dir, 40);
    let env = Env {
        url: demo.url(),
        dir: dir.clone(),
        vars: demo.env(),
    };
    let mut restarted = Kill(Vec::new());

    // 1. Twenty analyses at once, each from its own thread.
    std::thread::scope(|s| {
        let env = &env;
        for i in 0..20u64 {
            s.spawn(move || {
                let tag = format!("c{i}");
                let id = env.submit_and_approve(&tag);
                let inputs = env.inputs(&tag, 100 + i);
                let up = env.upload(&id, &inputs);
                assert!(up.status.success(), "{}", text(&up));
                env.wait_state(&id, "done", Duration::from_secs(240));
                env.check_result(&id, &inputs);
            });
        }
    });

    // 2. The coordinator dies after the approvals, before the data.
    let id = env.submit_and_approve("restart");
    env.wait_state(&id, "registered", Duration::from_secs(30));
    let coord_args = demo.printed_command("coordinator");
    pkill(&format!(
        "coordinator --exit-with-parent --data-dir {}",
        dir.display()
    ));
    let (state, detail) = env.state(&id);
    assert_eq!(state, "unreachable", "{detail}");
    restarted.0.push(spawn_kuvert(
        &coord_args,
        &dir.join("coordinator/restarted.log"),
    ));
    let t = Instant::now();
    while env.state(&id).0 == "unreachable" {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the coordinator did not come back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = env.ok(&["status", &id]);
    assert_eq!(st.matches("approved").count(), 2, "{st}");
    let inputs = env.inputs("restart", 7);
    let up = env.upload(&id, &inputs);
    assert!(up.status.success(), "{}", text(&up));
    env.wait_state(&id, "done", Duration::from_secs(60));
    env.check_result(&id, &inputs);

    // 3. Node 2 is down: registration waits, the upload fails naming the
    // node, the status says so; nothing hangs.
    let node2 = dir.join("operators/operator-2/node/node.toml");
    pkill(&format!(
        "node --exit-with-parent --config {}",
        node2.display()
    ));
    let id = env.submit_and_approve("nodedown");
    let inputs = env.inputs("nodedown", 8);
    let t = Instant::now();
    let up = env.upload(&id, &inputs);
    assert!(t.elapsed() < Duration::from_secs(120));
    assert!(!up.status.success());
    assert!(text(&up).contains("node 2"), "{}", text(&up));
    let t = Instant::now();
    loop {
        let (state, detail) = env.state(&id);
        assert_ne!(state, "done");
        if detail.contains("node 2") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the coordinator does not report node 2: {state} {detail}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Node 2 is back (it reloads what it had); the upload is repeated and
    // the analysis completes.
    restarted.0.push(spawn_kuvert(
        &[
            "node".into(),
            "--config".into(),
            node2.display().to_string(),
        ],
        &dir.join("operators/operator-2/node/restarted.log"),
    ));
    let t = Instant::now();
    loop {
        let up = env.upload(&id, &inputs);
        if up.status.success() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "upload still fails after node 2 is back: {}",
            text(&up)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    env.wait_state(&id, "done", Duration::from_secs(60));
    env.check_result(&id, &inputs);
    drop(restarted);
    drop(demo);
}
