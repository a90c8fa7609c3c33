//! `kuvert pki ca init`, `request`, `sign` and `fingerprint` end to end: the
//! per-operator ceremony of docs/pki.md, with the refusals and exit codes.

use std::path::Path;
use std::process::{Command, Output};

fn kuvert(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kuvert"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn code(o: &Output) -> (i32, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

/// The value of the `fingerprint  <hex>` line.
fn printed_fingerprint(out: &str) -> String {
    let fp = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("fingerprint"))
        .unwrap_or_else(|| panic!("no fingerprint line in:\n{out}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(kuvert_net::pki::is_fingerprint(&fp), "{fp}");
    fp
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn one_operator_one_ca_ceremony() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();

    // The operator's CA, on its offline machine.
    let out = ok(&kuvert(
        d,
        &[
            "pki",
            "ca",
            "init",
            "--org",
            "Region Skane",
            "--out",
            "ca1",
            "--days",
            "730",
        ],
    ));
    assert!(out.contains("ca1/ca.key"), "{out}");
    assert!(out.contains("O=Region Skane"), "{out}");
    let ca_fp = printed_fingerprint(&out);
    assert_eq!(
        ok(&kuvert(d, &["pki", "fingerprint", "ca1/ca.crt"])).trim(),
        ca_fp
    );
    #[cfg(unix)]
    assert_eq!(mode(&d.join("ca1/ca.key")), 0o600);
    // A second init into the same directory is refused.
    let (c, msg) = code(&kuvert(
        d,
        &["pki", "ca", "init", "--org", "Region Skane", "--out", "ca1"],
    ));
    assert_eq!(c, 2, "{msg}");
    assert!(msg.contains("--force"), "{msg}");

    // Node 1's own machine: key and request.
    let out = ok(&kuvert(
        d,
        &[
            "pki",
            "request",
            "--node",
            "1",
            "--out",
            "node1",
            "--host",
            "n1.region.example",
            "--host",
            "10.1.2.3",
        ],
    ));
    let req_fp = printed_fingerprint(&out);
    assert!(
        out.contains("send node-1.csr to your operator's CA; never send node-1.key"),
        "{out}"
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&d.join("node1/node-1.key")), 0o600);
        assert_eq!(mode(&d.join("node1/node-1.csr")), 0o644);
    }

    // Only the .csr moves to the CA.
    std::fs::create_dir(d.join("inbox")).unwrap();
    std::fs::copy(d.join("node1/node-1.csr"), d.join("inbox/node-1.csr")).unwrap();

    // Signed as the wrong node: refused, nothing written.
    let (c, msg) = code(&kuvert(
        d,
        &[
            "pki",
            "sign",
            "--ca",
            "ca1",
            "--csr",
            "inbox/node-1.csr",
            "--node",
            "2",
        ],
    ));
    assert_eq!(c, 2, "{msg}");
    assert!(msg.contains("made for node 1"), "{msg}");
    assert!(!d.join("inbox/node-1.crt").exists());

    // Signed as node 1: default output next to the request.
    let out = ok(&kuvert(
        d,
        &[
            "pki",
            "sign",
            "--ca",
            "ca1",
            "--csr",
            "inbox/node-1.csr",
            "--node",
            "1",
        ],
    ));
    assert!(
        out.contains(&req_fp),
        "the request's fingerprint is shown:\n{out}"
    );
    assert!(out.contains("node-1, n1.region.example, 10.1.2.3"), "{out}");
    assert!(d.join("inbox/node-1.crt").exists());
    let fp = ok(&kuvert(d, &["pki", "fingerprint", "inbox/node-1.crt"]));
    assert_eq!(
        fp.trim(),
        req_fp,
        "the certificate carries the requested key"
    );
    // fingerprint of the request itself prints the same.
    let fp = ok(&kuvert(d, &["pki", "fingerprint", "node1/node-1.csr"]));
    assert_eq!(fp.trim(), req_fp);
    // Signing again needs --force.
    let (c, _) = code(&kuvert(
        d,
        &[
            "pki",
            "sign",
            "--ca",
            "ca1",
            "--csr",
            "inbox/node-1.csr",
            "--node",
            "1",
        ],
    ));
    assert_eq!(c, 2);

    // A party and the coordinator, same flow.
    let out = ok(&kuvert(
        d,
        &["pki", "request", "--party", "malmo-stad", "--out", "agency"],
    ));
    let party_fp = printed_fingerprint(&out);
    ok(&kuvert(
        d,
        &[
            "pki",
            "sign",
            "--ca",
            "ca1",
            "--csr",
            "agency/party-malmo-stad.csr",
            "--party",
            "malmo-stad",
            "--out",
            "malmo.crt",
            "--days",
            "90",
        ],
    ));
    assert_eq!(
        ok(&kuvert(d, &["pki", "fingerprint", "malmo.crt"])).trim(),
        party_fp
    );
    let (c, msg) = code(&kuvert(
        d,
        &["pki", "request", "--server", "--out", "coord"],
    ));
    assert_eq!(c, 2, "{msg}");
    assert!(msg.contains("--host"), "{msg}");
    ok(&kuvert(
        d,
        &[
            "pki",
            "request",
            "--server",
            "--out",
            "coord",
            "--host",
            "coord.example.org",
        ],
    ));
    ok(&kuvert(
        d,
        &[
            "pki",
            "sign",
            "--ca",
            "ca1",
            "--csr",
            "coord/server.csr",
            "--server",
        ],
    ));
    assert!(d.join("coord/server.crt").exists());

    // Beyond the CA's 730 days: refused with what to do.
    let (c, msg) = code(&kuvert(
        d,
        &[
            "pki",
            "sign",
            "--ca",
            "ca1",
            "--csr",
            "coord/server.csr",
            "--server",
            "--out",
            "long.crt",
            "--days",
            "1000",
        ],
    ));
    assert_eq!(c, 2, "{msg}");
    assert!(msg.contains("--days"), "{msg}");

    // A tampered request is refused.
    let pem = std::fs::read_to_string(d.join("inbox/node-1.csr")).unwrap();
    let lines: Vec<&str> = pem.lines().collect();
    let mut bad = lines.clone();
    let mid = lines.len() / 2;
    let flipped: String = lines[mid]
        .chars()
        .enumerate()
        .map(|(i, ch)| {
            if i == 10 {
                if ch == 'A' {
                    'B'
                } else {
                    'A'
                }
            } else {
                ch
            }
        })
        .collect();
    bad[mid] = &flipped;
    std::fs::write(d.join("inbox/bad.csr"), bad.join("\n") + "\n").unwrap();
    let (c, msg) = code(&kuvert(
        d,
        &[
            "pki",
            "sign",
            "--ca",
            "ca1",
            "--csr",
            "inbox/bad.csr",
            "--node",
            "1",
        ],
    ));
    assert_ne!(c, 0, "{msg}");
    assert!(!d.join("inbox/bad.crt").exists());

    // Exactly one role.
    let (c, _) = code(&kuvert(
        d,
        &["pki", "request", "--node", "1", "--server", "--out", "x"],
    ));
    assert_eq!(c, 2);
    let (c, _) = code(&kuvert(d, &["pki", "request", "--out", "x"]));
    assert_eq!(c, 2);
    assert!(!d.join("x").exists());
}

#[test]
fn help_teaches_who_keeps_what() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let help = ok(&kuvert(d, &["pki", "request", "--help"]));
    assert!(help.contains("never leaves this"), "{help}");
    let help = ok(&kuvert(d, &["pki", "ca", "init", "--help"]));
    assert!(help.contains("offline"), "{help}");
    let help = ok(&kuvert(d, &["pki", "init", "--help"]));
    assert!(help.contains("Development only"), "{help}");
    let help = ok(&kuvert(d, &["pki", "sign", "--help"]));
    assert!(help.contains("fingerprint"), "{help}");
}
