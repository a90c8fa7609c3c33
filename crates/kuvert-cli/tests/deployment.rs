//! docs/deployment.md, run: three operators as three directories, each with
//! its own CA and its node's key made "on the node" with `kuvert pki
//! request`, certificates by `kuvert pki sign`, the federation by `kuvert
//! federation entry|assemble|sign|verify|nodes`, then three production
//! `kuvert node` processes that pin each other by it. The commands are the
//! ones the page shows, with the page's flags.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kuvert_node::client::Nodes;
use kuvert_node::wire::{Request, Response};

const KUVERT: &str = env!("CARGO_BIN_EXE_kuvert");

fn kuvert(args: &[&str]) -> Output {
    let out = Command::new(KUVERT).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "kuvert {}: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
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
fn the_three_operator_setup_of_deployment_md_runs_and_the_nodes_pin_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let free = || kuvert_node::local::free_loopback_port().unwrap();
    let mpc: Vec<SocketAddr> = (0..3).map(|_| free()).collect();
    let api: Vec<SocketAddr> = (0..3).map(|_| free()).collect();
    let orgs = ["Operator A", "Operator B", "Operator C"];
    let mut entries = Vec::new();
    let mut fingerprints = Vec::new();
    for i in 0..3 {
        let ca = d.join(format!("ca-{i}"));
        let node = d.join(format!("node-{i}-machine"));
        let id = i.to_string();
        // 1. The operator's CA; the node's key and CSR on the node; the
        //    receipt key; the CA signs; the fingerprint.
        kuvert(&["pki", "ca", "init", "--org", orgs[i], "--out", s(&ca)]);
        kuvert(&[
            "pki",
            "request",
            "--node",
            &id,
            "--host",
            "localhost",
            "--host",
            "127.0.0.1",
            "--out",
            s(&node),
        ]);
        kuvert(&["federation", "keygen", "--id", &id, "--dir", s(&node)]);
        let csr = node.join(format!("node-{i}.csr"));
        let crt = node.join(format!("node-{i}.crt"));
        kuvert(&[
            "pki",
            "sign",
            "--ca",
            s(&ca),
            "--csr",
            s(&csr),
            "--node",
            &id,
            "--out",
            s(&crt),
        ]);
        assert!(!ca.join(format!("node-{i}.key")).exists());
        let fp = kuvert(&["pki", "fingerprint", s(&crt)]);
        let fp = String::from_utf8(fp.stdout).unwrap().trim().to_string();
        assert!(kuvert_net::pki::is_fingerprint(&fp), "{fp:?}");
        fingerprints.push(fp);
        // 2. The operator's federation entry.
        let entry = d.join(format!("entry-{i}.toml"));
        kuvert(&[
            "federation",
            "entry",
            "--id",
            &id,
            "--operator",
            orgs[i],
            "--mpc",
            &mpc[i].to_string(),
            "--api",
            &api[i].to_string(),
            "--ca",
            s(&ca.join("ca.crt")),
            "--cert",
            s(&crt),
            "--signing-pub",
            s(&node.join(format!("node-{i}.gov.pub"))),
            "--out",
            s(&entry),
        ]);
        entries.push(entry);
    }
    let fed = d.join("federation.toml");
    let out = kuvert(&[
        "federation",
        "assemble",
        "--name",
        "kuvert-test",
        "--out",
        s(&fed),
        s(&entries[0]),
        s(&entries[1]),
        s(&entries[2]),
    ]);
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    // Unsigned: verify fails and names the missing signature.
    let v = Command::new(KUVERT)
        .args(["federation", "verify", s(&fed)])
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&v.stderr).contains("node 0's signature is missing"));
    // Node 1's key cannot sign as node 0.
    let wrong = Command::new(KUVERT)
        .args(["federation", "sign", s(&fed), "--id", "0", "--key"])
        .arg(d.join("node-1-machine/node-1.gov.key"))
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    for i in 0..3 {
        kuvert(&[
            "federation",
            "sign",
            s(&fed),
            "--id",
            &i.to_string(),
            "--key",
            s(&d.join(format!("node-{i}-machine/node-{i}.gov.key"))),
        ]);
    }
    let v = String::from_utf8(kuvert(&["federation", "verify", s(&fed)]).stdout).unwrap();
    assert!(v.contains(&hash) && v.contains("all three verify"), "{v}");
    let nodes = String::from_utf8(kuvert(&["federation", "nodes", s(&fed)]).stdout).unwrap();
    for fp in &fingerprints {
        assert!(nodes.contains(fp), "{nodes}");
    }
    assert_eq!(nodes.matches("[[nodes]]").count(), 3, "{nodes}");

    // The agencies' CA and one party.
    let agencies = d.join("agencies");
    kuvert(&[
        "pki",
        "ca",
        "init",
        "--org",
        "The agencies",
        "--out",
        s(&agencies),
    ]);
    kuvert(&["pki", "request", "--party", "fk", "--out", s(&agencies)]);
    kuvert(&[
        "pki",
        "sign",
        "--ca",
        s(&agencies),
        "--csr",
        s(&agencies.join("party-fk.csr")),
        "--party",
        "fk",
        "--out",
        s(&agencies.join("party-fk.crt")),
    ]);

    // 5. Three production nodes.
    let mut kids = Kill(Vec::new());
    for (i, api_i) in api.iter().enumerate() {
        let node = d.join(format!("node-{i}-machine"));
        let cfg = node.join("node.toml");
        std::fs::write(
            &cfg,
            format!(
                "id = {i}\nlisten = \"{}\"\npki_dir = \".\"\nfederation = \"{}\"\n\
                 client_cas = [\"{}\"]\ndata_dir = \"data\"\n",
                api_i,
                s(&fed),
                s(&agencies.join("ca.crt"))
            ),
        )
        .unwrap();
        let log = std::fs::File::create(node.join("node.log")).unwrap();
        kids.0.push(
            Command::new(KUVERT)
                .args(["node", "--config", s(&cfg)])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
    let pins: [String; 3] = fingerprints.clone().try_into().unwrap();
    let fk = Nodes::pinned(
        &agencies,
        "fk",
        api.clone().try_into().unwrap(),
        pins,
        "the federation",
    )
    .unwrap();
    let t = Instant::now();
    for i in 0..3 {
        loop {
            match fk.connect(i) {
                Ok(mut c) => {
                    // A production node: governed requests answered, the
                    // ungoverned API refused.
                    let r = c.ask(&Request::Status { job: "j".into() }, &[]).unwrap().0;
                    match r {
                        Response::Error { message } => {
                            assert!(message.contains("governed"), "{message}")
                        }
                        other => panic!("node {i} served the ungoverned API: {other:?}"),
                    }
                    break;
                }
                Err(e) => {
                    assert!(
                        t.elapsed() < Duration::from_secs(30),
                        "node {i} did not come up: {e}\n{}",
                        std::fs::read_to_string(d.join(format!("node-{i}-machine/node.log")))
                            .unwrap_or_default()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    for i in 0..3 {
        let log = std::fs::read_to_string(d.join(format!("node-{i}-machine/node.log"))).unwrap();
        assert!(
            log.contains(&hash),
            "node {i} does not log its federation: {log}"
        );
    }
}
