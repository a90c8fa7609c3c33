//! `kuvert analysis approve`: it shows what is approved (the approval
//! summary, with every output's SQL) and signs only on a yes: the answer y
//! on a terminal, or `--yes` together with the spec file the approver read
//! (`--spec FILE`, whose hash must be the id). Anything else signs and
//! sends nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;
use common::{start_demo, text, KUVERT};

use kuvert_gov::spec::{AnalysisSpec, SpecNode, Validation};
use kuvert_gov::PartyKey;

/// `kuvert ARGS` in `dir` with `stdin` as its standard input (`None`:
/// closed), never with a coordinator from the environment.
fn kuvert(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(KUVERT);
    c.current_dir(dir)
        .env_remove("KUVERT_COORDINATOR")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = c.spawn().unwrap();
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        // The command may refuse before reading: a broken pipe is fine.
        let _ = w.write_all(input.as_bytes());
    }
    child.wait_with_output().unwrap()
}

/// The overlapping-benefits template with fresh keys (written to
/// `DIR/NAME.key`), three nodes and a contact; `name` makes its id.
fn spec(dir: &Path, name: &str) -> AnalysisSpec {
    let mut s = kuvert_gov::templates::spec("overlapping-benefits").unwrap();
    s.name = name.into();
    let key = |who: &str| {
        let path = dir.join(format!("{who}.key"));
        if !path.exists() {
            PartyKey::generate(who).write(&path).unwrap();
        }
        PartyKey::load(&path).unwrap().public()
    };
    for c in &mut s.contributors {
        c.public_key = key(&c.id).ed25519;
    }
    for r in &mut s.recipients {
        r.kem_public_key = key(&r.id).kem.unwrap();
    }
    s.nodes = ['a', 'b', 'c']
        .iter()
        .enumerate()
        .map(|(i, c)| SpecNode {
            operator: format!("Nodoperatör {i}"),
            fingerprint: std::iter::repeat_n(*c, 64).collect(),
            endpoint: None,
        })
        .collect();
    s.contact = "mpc-analys@fk.example".into();
    s.validate(Validation::Strict).unwrap();
    s
}

/// Write `s` as TOML to DIR/FILE; its id.
fn write_spec(dir: &Path, file: &str, s: &AnalysisSpec) -> String {
    let text = toml::to_string(s).unwrap();
    let back = AnalysisSpec::parse(&text, file, Validation::Strict).unwrap();
    assert_eq!(back.id(), s.id());
    std::fs::write(dir.join(file), text).unwrap();
    s.id().to_hex()
}

/// Every output's SQL is in the printed summary.
fn shows_every_sql(o: &Output, s: &AnalysisSpec) {
    let t = text(o);
    for r in &s.recipients {
        for out in &r.outputs {
            assert!(t.contains(out.sql.trim()), "no SQL of {}:\n{t}", out.name);
        }
    }
    assert!(t.contains(&s.id().to_hex()), "{t}");
    assert!(t.contains(s.purpose.trim()), "{t}");
}

#[test]
fn offline_approval_is_signed_only_with_yes_and_the_spec_read() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = spec(d, "overlapping-benefits");
    let id = write_spec(d, "ob.toml", &s);
    let other = spec(d, "overlapping-benefits-2");
    let other_id = write_spec(d, "other.toml", &other);
    assert_ne!(id, other_id);
    let approve = |extra: &[&str], stdin: Option<&str>| {
        let mut args = vec![
            "analysis", "approve", &id, "--key", "fk.key", "--out", "fk.json",
        ];
        args.extend_from_slice(extra);
        kuvert(d, &args, stdin)
    };

    // No terminal to ask and no --yes: refused, after showing the summary.
    for stdin in [Some("n\n"), Some(""), Some("y\n"), None] {
        let o = approve(&["--spec", "ob.toml"], stdin);
        assert_eq!(o.status.code(), Some(2), "{stdin:?}: {}", text(&o));
        assert!(
            text(&o).contains("use --yes with --spec FILE"),
            "{}",
            text(&o)
        );
        assert!(text(&o).contains("not approved"), "{}", text(&o));
        shows_every_sql(&o, &s);
        assert!(o.stdout.is_empty(), "{stdin:?}");
        assert!(!d.join("fk.json").exists(), "{stdin:?}: signed");
    }
    // --yes without --spec: refused before anything is fetched or signed.
    let o = approve(&["--yes", "--coordinator", "http://127.0.0.1:9"], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--spec FILE"), "{}", text(&o));
    assert!(!d.join("fk.json").exists());
    // --yes with a spec of another id: refused.
    let o = approve(&["--yes", "--spec", "other.toml"], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("refusing to approve"), "{}", text(&o));
    assert!(!d.join("fk.json").exists());
    // A key that is no contributor's: refused, even with --yes.
    let o = kuvert(
        d,
        &[
            "analysis",
            "approve",
            &id,
            "--key",
            "kontroll.key",
            "--spec",
            "ob.toml",
            "--yes",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(o.stdout.is_empty());
    // --yes with the spec read: signed, after the summary.
    let o = approve(&["--yes", "--spec", "ob.toml"], None);
    assert!(o.status.success(), "{}", text(&o));
    shows_every_sql(&o, &s);
    let a = kuvert_gov::approval::load_approval(&d.join("fk.json")).unwrap();
    assert_eq!(a.analysis_id.to_hex(), id);
    assert_eq!(a.contributor, "fk");
    // Without --out, the approval goes to stdout and the summary to stderr.
    let o = kuvert(
        d,
        &[
            "analysis",
            "approve",
            &id,
            "--key",
            "kommun.key",
            "--spec",
            "ob.toml",
            "--yes",
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let kommun: kuvert_gov::Approval = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(kommun.contributor, "kommun");
    std::fs::write(d.join("kommun.json"), &o.stdout).unwrap();
    let v = kuvert(
        d,
        &[
            "analysis",
            "verify",
            "ob.toml",
            "--approvals",
            "fk.json,kommun.json",
        ],
        None,
    );
    assert!(v.status.success(), "{}", text(&v));
}

/// `script` (util-linux) runs the command on a pseudo-terminal, so that
/// the question is asked and the answer read; skipped where it is missing.
fn on_terminal(dir: &Path, args: &[&str], answer: &str) -> Option<Output> {
    let have = Command::new("script")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        eprintln!("skipped: no `script` to give the command a terminal");
        return None;
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let line = std::iter::once(KUVERT)
        .chain(args.iter().copied())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .current_dir(dir)
        .env_remove("KUVERT_COORDINATOR")
        .args(["-qefc", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = child.stdin.take().unwrap();
    // Answer once the question is on the terminal (the summary comes
    // first); `script` passes what it reads to the terminal.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _ = w.write_all(answer.as_bytes());
    let _ = w.flush();
    std::thread::sleep(std::time::Duration::from_millis(500));
    drop(w);
    let mut o = child.wait_with_output().unwrap();
    // The terminal writes each newline as CR LF.
    o.stdout = String::from_utf8_lossy(&o.stdout)
        .replace("\r\n", "\n")
        .into_bytes();
    Some(o)
}

#[test]
fn on_a_terminal_only_y_or_yes_signs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = spec(d, "overlapping-benefits");
    let id = write_spec(d, "ob.toml", &s);
    let args = [
        "analysis", "approve", &id, "--key", "fk.key", "--spec", "ob.toml", "--out", "fk.json",
    ];
    for answer in ["n\n", "\n", "yess\n"] {
        let Some(o) = on_terminal(d, &args, answer) else {
            return;
        };
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{answer:?}: {t}");
        assert!(
            t.contains(&format!("Approve analysis {id} as contributor fk? [y/N]")),
            "{t}"
        );
        assert!(t.contains("not approved"), "{t}");
        shows_every_sql(&o, &s);
        assert!(!d.join("fk.json").exists(), "{answer:?}: signed");
    }
    for answer in ["y\n", "YES\n"] {
        let _ = std::fs::remove_file(d.join("fk.json"));
        let o = on_terminal(d, &args, answer).unwrap();
        assert!(o.status.success(), "{answer:?}: {}", text(&o));
        let a = kuvert_gov::approval::load_approval(&d.join("fk.json")).unwrap();
        assert_eq!(a.analysis_id.to_hex(), id);
    }
}

/// The environment the demo tells its parties to set (`export
/// KUVERT_COORDINATOR=... KUVERT_PKI=...`, on stderr).
fn demo_env(demo: &common::Demo) -> Vec<(String, String)> {
    let err = demo.err.lock().unwrap();
    let line = err
        .iter()
        .find_map(|l| l.trim().strip_prefix("export "))
        .expect("the demo printed no `export` line");
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Whether the coordinator counts `who` as having approved `id`.
fn approved_at_coordinator(env: &[(String, String)], id: &str, who: &str) -> bool {
    let o = Command::new(KUVERT)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["status", id, "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["contributor"] == who)
        .map(|a| a["approved"] == true)
        .unwrap()
}

#[test]
fn online_approval_posts_nothing_without_yes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let demo = start_demo(&dir, 20);
    let mut env = demo_env(&demo);
    // Commands that name no party (submit, status) present fk's
    // certificate to the coordinator.
    env.push(("KUVERT_COORDINATOR_PARTY".into(), "fk".into()));
    let url = env
        .iter()
        .find(|(k, _)| k == "KUVERT_COORDINATOR")
        .map(|(_, v)| v.clone())
        .expect("KUVERT_COORDINATOR");
    let key = |who: &str| dir.join(format!("keys/{who}.key")).display().to_string();
    let online = |args: &[&str], stdin: Option<&str>| {
        let mut c = Command::new(KUVERT);
        c.envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(&dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = c.spawn().unwrap();
        if let Some(input) = stdin {
            let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
        }
        child.wait_with_output().unwrap()
    };

    // A new analysis: the demo's spec under another name.
    let demo_spec: PathBuf = dir.join("analysis.toml");
    let text_v = std::fs::read_to_string(&demo_spec).unwrap().replacen(
        "name = \"overlapping-benefits\"",
        "name = \"overlapping-benefits-approve\"",
        1,
    );
    let spec_v = dir.join("analysis-approve.toml");
    std::fs::write(&spec_v, &text_v).unwrap();
    let s = AnalysisSpec::parse(&text_v, "v", Validation::Strict).unwrap();
    let o = online(&["analysis", "submit", &spec_v.display().to_string()], None);
    assert!(o.status.success(), "{}", text(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(id, s.id().to_hex());
    let fk = key("fk");

    // No terminal, no --yes: the summary of the coordinator's copy, then
    // nothing signed or posted.
    for stdin in [Some("y\n"), Some("n\n"), None] {
        let o = online(&["analysis", "approve", &id, "--key", &fk], stdin);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains("use --yes with --spec FILE"));
        shows_every_sql(&o, &s);
        assert!(!approved_at_coordinator(&env, &id, "fk"));
    }
    // --yes without --spec, and with the spec of another id: refused.
    let o = online(&["analysis", "approve", &id, "--key", &fk, "--yes"], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let demo_spec = demo_spec.display().to_string();
    let o = online(
        &[
            "analysis", "approve", &id, "--key", &fk, "--yes", "--spec", &demo_spec,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("refusing to approve"), "{}", text(&o));
    assert!(!approved_at_coordinator(&env, &id, "fk"));
    // --offline with the right file: an approval file, nothing posted.
    let spec_v = spec_v.display().to_string();
    let o = online(
        &[
            "analysis",
            "approve",
            &id,
            "--key",
            &fk,
            "--yes",
            "--spec",
            &spec_v,
            "--offline",
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!approved_at_coordinator(&env, &id, "fk"));
    // --yes with the file read, its hash the id and the coordinator's
    // copy's too: signed and posted (the coordinator named by the flag).
    let o = Command::new(KUVERT)
        .envs(
            env.iter()
                .filter(|(k, _)| k != "KUVERT_COORDINATOR")
                .map(|(k, v)| (k, v)),
        )
        .env_remove("KUVERT_COORDINATOR")
        .args([
            "analysis",
            "approve",
            &id,
            "--key",
            &fk,
            "--yes",
            "--spec",
            &spec_v,
            "--coordinator",
            &url,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    shows_every_sql(&o, &s);
    assert!(
        text(&o).contains("still to approve: kommun"),
        "{}",
        text(&o)
    );
    assert!(approved_at_coordinator(&env, &id, "fk"));
    assert!(!approved_at_coordinator(&env, &id, "kommun"));
}

/// With `--federation FILE` (the operators' signed federation), approve
/// signs only a spec whose `[[nodes]]` are exactly the federation's nodes:
/// a spec naming another key for one node is refused before the summary,
/// and nothing is written.
#[test]
fn approve_with_a_federation_refuses_a_spec_naming_other_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let free = || kuvert_node::local::free_loopback_port().unwrap();
    let dep = kuvert_node::operators::setup(
        &d.join("ops"),
        &kuvert_node::operators::Plan {
            name: "approve-test".into(),
            operators: ["A", "B", "C"].map(String::from),
            mpc: [free(), free(), free()],
            api: [free(), free(), free()],
            parties: vec![],
            days: 30,
        },
    )
    .unwrap();
    let fed = dep.federation.to_str().unwrap().to_string();
    let mut good = spec(d, "federated");
    good.nodes = dep.spec_nodes().unwrap();
    let id = write_spec(d, "good.toml", &good);
    let o = kuvert(
        d,
        &[
            "analysis",
            "approve",
            &id,
            "--key",
            "fk.key",
            "--spec",
            "good.toml",
            "--yes",
            "--federation",
            &fed,
            "--out",
            "good.json",
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(d.join("good.json").exists());
    // Node 1 swapped for another key (an impostor the submitter chose).
    let mut bad = good.clone();
    bad.name = "impostor".into();
    bad.nodes[1].fingerprint = "e".repeat(64);
    let id = write_spec(d, "bad.toml", &bad);
    let o = kuvert(
        d,
        &[
            "analysis",
            "approve",
            &id,
            "--key",
            "fk.key",
            "--spec",
            "bad.toml",
            "--yes",
            "--federation",
            &fed,
            "--out",
            "bad.json",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("as node 1"), "{}", text(&o));
    assert!(text(&o).contains("nothing was signed"), "{}", text(&o));
    assert!(!d.join("bad.json").exists());
}
