//! The governed service end to end: `kuvert demo --serve` (coordinator and
//! three node processes), then, while it serves, the checks of issue 5:
//! - the recipients' answers equal SQLite's on the cleartext inputs (the
//!   demo itself compares and exits non-zero otherwise);
//! - no identity number or amount from `DIR/inputs` appears in any byte
//!   under the nodes' and the coordinator's directories, logs included;
//! - no share file remains; every deletion receipt verifies;
//! - a party that is not the recipient cannot fetch or open its result;
//! - a spec altered by the coordinator is refused by the parties' clients
//!   (the nodes' own refusal is tested in kuvert-node's tests/gov.rs);
//! - `kuvert audit verify` passes, and fails after one altered byte;
//! - the coordinator speaks only HTTPS and answers by role: `http://` is
//!   refused by the client, a party without the role gets a 403 that says
//!   what to do, no credentials a 401;
//! - the web console renders in headless Chromium over HTTPS after a login
//!   (a one-time login link; the coordinator's key pinned with
//!   `--ignore-certificate-errors-spki-list`; screenshots kept when
//!   `KUVERT_ARTIFACTS` names a directory; CI sets it and
//!   `KUVERT_REQUIRE_CHROMIUM=1`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{start_demo, text, KUVERT};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            files_under(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

/// Identity numbers (12 digits) and amounts (4 or more digits, so that they
/// do not occur by chance in hashes or ports) of the cleartext inputs.
fn secrets(inputs: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut ids, mut amounts) = (BTreeSet::new(), BTreeSet::new());
    for f in ["fk.csv", "ek.csv"] {
        let text = std::fs::read_to_string(inputs.join(f)).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        for l in lines {
            for (h, v) in header.iter().zip(l.split(',')) {
                match *h {
                    "pnr" => {
                        let digits: String = v.chars().filter(|c| c.is_ascii_digit()).collect();
                        assert_eq!(digits.len(), 12, "{v}");
                        ids.insert(digits);
                    }
                    "belopp" if v.trim_start_matches('-').len() >= 4 => {
                        amounts.insert(v.trim_start_matches('-').to_string());
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(ids.len() > 100 && amounts.len() > 50);
    (ids, amounts)
}

/// `needle` in `hay` as a whole number (not inside a longer run of digits
/// or hex letters).
fn contains_number(hay: &[u8], needle: &[u8]) -> bool {
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    hay.windows(needle.len()).enumerate().any(|(i, w)| {
        w == needle
            && (i == 0 || !alnum(hay[i - 1]))
            && hay.get(i + needle.len()).is_none_or(|&b| !alnum(b))
    })
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Standard base64 (for Chromium's SPKI pin list).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Headless Chromium that trusts exactly the coordinator's key (`pin`:
/// base64 SHA-256 of its SubjectPublicKeyInfo; Chromium honours the pin
/// list only with its own profile directory `profile`).
struct Chromium {
    browser: &'static str,
    pin: String,
    profile: PathBuf,
}

impl Chromium {
    fn run(&self, args: &[&str], url: &str) -> Output {
        Command::new(self.browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", self.profile.display()))
            .arg(format!(
                "--ignore-certificate-errors-spki-list={}",
                self.pin
            ))
            .args(args)
            .arg(url)
            .output()
            .unwrap()
    }
}

/// Every `PORT` written as `127.0.0.1:PORT` in these files.
fn loopback_ports(files: &[std::path::PathBuf]) -> std::collections::HashSet<String> {
    let mut ports = std::collections::HashSet::new();
    let pat = b"127.0.0.1:";
    for f in files {
        let bytes = std::fs::read(f).unwrap();
        let mut i = 0;
        while let Some(p) = bytes[i..].windows(pat.len()).position(|w| w == pat) {
            let start = i + p + pat.len();
            let end = start
                + bytes[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
            if end > start {
                ports.insert(String::from_utf8_lossy(&bytes[start..end]).into_owned());
            }
            i = start;
        }
    }
    ports
}

#[test]
fn demo_flow_security_checks_and_console() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let demo = start_demo(&dir, 300);
    let out = demo.out.join("\n");
    assert!(out.contains("same as SQLite"), "{out}");
    assert!(!out.contains("DIFFERS"), "{out}");
    assert!(out.contains("signature verified"), "{out}");
    assert!(out.contains("share files left at the nodes: 0"), "{out}");
    let url = demo.url();
    let id = demo.id();

    // 1. No cleartext input value under the nodes' and coordinator's dirs.
    let (ids, amounts) = secrets(&dir.join("inputs"));
    let mut files = Vec::new();
    for d in [
        "operators/operator-0/node",
        "operators/operator-1/node",
        "operators/operator-2/node",
        "coordinator",
    ] {
        files_under(&dir.join(d), &mut files);
    }
    assert!(files.iter().any(|f| f.ends_with("audit-coordinator.log")));
    assert!(files.iter().any(|f| f
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("audit-node")));
    // The nodes' and the coordinator's loopback ports (20000..32000) appear
    // in their configuration and logs as `127.0.0.1:PORT`; an amount that
    // happens to equal one is not a leak.
    let ports = loopback_ports(&files);
    let amounts: Vec<String> = amounts.into_iter().filter(|a| !ports.contains(a)).collect();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for v in ids.iter().chain(&amounts) {
            assert!(
                !contains_number(&bytes, v.as_bytes()),
                "{} contains the input value {v}",
                f.display()
            );
        }
        // Identity numbers as 64-bit little-endian words (how they are encoded).
        for v in &ids {
            let w = v.parse::<u64>().unwrap().to_le_bytes();
            assert!(
                !bytes.windows(8).any(|x| x == w),
                "{} holds an identity number as a word",
                f.display()
            );
        }
        // 2. No share files left.
        assert!(
            !f.to_string_lossy().ends_with(".shares"),
            "share file left: {}",
            f.display()
        );
    }

    // The demo's exports (the coordinator's URL and CA, the parties' PKI);
    // commands that name no party present fk's certificate.
    let exported = demo.env();
    let env = |c: &mut Command| {
        c.envs(exported.iter().map(|(k, v)| (k, v)))
            .env("KUVERT_COORDINATOR", &url)
            .env("KUVERT_COORDINATOR_PARTY", "fk");
    };
    let kuvert = |args: &[&str]| {
        let mut c = Command::new(KUVERT);
        env(&mut c);
        c.args(args).output().unwrap()
    };

    // 3. The recipient can fetch again; another party cannot.
    let keys = dir.join("keys");
    let k = |n: &str| keys.join(format!("{n}.key")).display().to_string();
    let ok = kuvert(&["result", &id, "--key", &k("kontroll")]);
    assert!(ok.status.success(), "{}", text(&ok));
    let want = std::fs::read_to_string(dir.join("results/kontroll.csv")).unwrap();
    assert_eq!(String::from_utf8_lossy(&ok.stdout), want);
    // fk's key is not kontroll's; under kontroll's TLS name it still
    // cannot open kontroll's boxes.
    let other = kuvert(&["result", &id, "--key", &k("fk"), "--as", "kontroll"]);
    let t = text(&other);
    assert!(
        !other.status.success() || !String::from_utf8_lossy(&other.stdout).contains(&want),
        "{t}"
    );
    // A party that is no recipient at all.
    let none = kuvert(&["result", &id, "--key", &k("kommun"), "--as", "fk"]);
    assert!(
        !String::from_utf8_lossy(&none.stdout).contains(want.lines().nth(1).unwrap_or("-")),
        "{}",
        text(&none)
    );

    // 4. Status shows verified receipts of all three nodes.
    let st = kuvert(&["status", &id]);
    let st_text = text(&st);
    assert!(st.status.success(), "{st_text}");
    assert_eq!(
        st_text.matches("signature verified").count(),
        3,
        "{st_text}"
    );

    // 5. The DPIA text from the coordinator.
    let d = kuvert(&["analysis", "describe", &id, "--format", "md"]);
    assert!(d.status.success(), "{}", text(&d));
    assert!(String::from_utf8_lossy(&d.stdout).contains("OSL"));

    // 5b. HTTPS only, and roles: `http://` is refused here; kommun may not
    // submit (403 with what to do); without any credentials, 401.
    let plain = url.replace("https://", "http://");
    let o = Command::new(KUVERT)
        .envs(exported.iter().map(|(k, v)| (k, v)))
        .env("KUVERT_COORDINATOR", &plain)
        .args(["status", &id])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("only HTTPS"), "{}", text(&o));
    let spec = dir.join("analysis.toml").display().to_string();
    let o = Command::new(KUVERT)
        .envs(exported.iter().map(|(k, v)| (k, v)))
        .env("KUVERT_COORDINATOR_PARTY", "kommun")
        .args(["analysis", "submit", &spec])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("party kommun has no role submitter") && t.contains("access file"),
        "{t}"
    );
    let o = Command::new(KUVERT)
        .env("KUVERT_COORDINATOR", &url)
        .env("KUVERT_COORDINATOR_CA", demo.var("KUVERT_COORDINATOR_CA"))
        .env_remove("KUVERT_PKI")
        .env_remove("KUVERT_COORDINATOR_TOKEN")
        .args(["status", &id])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("401"), "{}", text(&o));

    // 6. The web console in headless Chromium.
    match chromium() {
        None => {
            assert!(
                std::env::var_os("KUVERT_REQUIRE_CHROMIUM").is_none(),
                "KUVERT_REQUIRE_CHROMIUM is set but chromium is not installed"
            );
            eprintln!("skipped: chromium is not installed (Debian package `chromium`)");
        }
        Some(browser) => {
            let shots = std::env::var_os("KUVERT_ARTIFACTS")
                .map(PathBuf::from)
                .unwrap_or_else(|| tmp.path().join("shots"));
            std::fs::create_dir_all(&shots).unwrap();
            let cert = demo.coordinator_flag("--tls-cert");
            let leaf = kuvert_net::pki::load_certs(Path::new(&cert)).unwrap()[0].clone();
            let hex = kuvert_net::pki::spki_fingerprint(&leaf).unwrap();
            let digest: Vec<u8> = (0..32)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            let chrome = Chromium {
                browser,
                pin: base64(&digest),
                profile: tmp.path().join("chromium-profile"),
            };
            // Without a session: the login page, nothing of the analyses.
            let dom = chrome.run(&["--dump-dom"], &format!("{url}/?lang=en"));
            let html = String::from_utf8_lossy(&dom.stdout);
            assert!(
                html.contains("type=\"password\"") && !html.contains("id=\"analyses\""),
                "{}",
                text(&dom)
            );
            // Each page through a fresh one-time login link (the session
            // cookie is Secure, HttpOnly, SameSite=Strict).
            let pages = [
                (
                    "console-list-sv.png",
                    "/".to_string(),
                    vec!["analyses", "who"],
                ),
                (
                    "console-analysis-sv.png",
                    format!("/analyses/{id}"),
                    vec!["approvals", "nodes", "learns", "receipts", "audit"],
                ),
                (
                    "console-analysis-en.png",
                    format!("/analyses/{id}?lang=en"),
                    vec!["approvals", "receipts"],
                ),
                (
                    "console-templates-en.png",
                    "/templates?lang=en".to_string(),
                    vec![],
                ),
            ];
            for (shot, path, ids) in pages {
                let page = demo.login_link(&path);
                let dom = chrome.run(&["--dump-dom"], &page);
                let html = String::from_utf8_lossy(&dom.stdout);
                assert!(
                    dom.status.success() && html.contains("</html>"),
                    "{page}: {}",
                    text(&dom)
                );
                for want in ids {
                    assert!(
                        html.contains(&format!("id=\"{want}\"")),
                        "{page} lacks id={want}"
                    );
                }
                let file = shots.join(shot);
                let s = chrome.run(
                    &[
                        &format!("--screenshot={}", file.display()),
                        "--window-size=1280,1800",
                    ],
                    &demo.login_link(&path),
                );
                assert!(s.status.success(), "{}", text(&s));
                let png = std::fs::read(&file).unwrap();
                assert!(
                    png.starts_with(b"\x89PNG") && png.len() > 10_000,
                    "{}",
                    file.display()
                );
            }
            let dom = chrome.run(
                &["--dump-dom"],
                &demo.login_link(&format!("/analyses/{id}")),
            );
            let html = String::from_utf8_lossy(&dom.stdout);
            assert!(html.contains("Försäkringskassan"), "{html}");
            assert!(html.contains("lang=\"sv\""), "{html}");
        }
    }

    // 7. A coordinator that alters the spec it serves is caught by every
    // party's client before anything is signed, sent or opened.
    let db = rusqlite::Connection::open(dir.join("coordinator/coordinator.db")).unwrap();
    let n = db
        .execute(
            "UPDATE analyses SET spec_toml = replace(spec_toml, 'purpose = \"Find', 'purpose = \"Also find') WHERE id = ?1",
            [&id],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(db);
    for args in [
        vec!["result", &id, "--key", &k("kontroll")],
        vec!["analysis", "approve", &id, "--key", &k("fk")],
    ] {
        let o = kuvert(&args);
        assert!(!o.status.success(), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("altered"), "{args:?}: {}", text(&o));
        assert!(o.stdout.is_empty(), "{args:?}");
    }

    // 8. Stop the service; the audit chains verify, and one altered byte
    // is found.
    drop(demo);
    let v = Command::new(KUVERT)
        .args(["audit", "verify", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", text(&v));
    let log = dir.join("coordinator/audit-coordinator.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
    std::fs::write(&log, bytes).unwrap();
    let v = Command::new(KUVERT)
        .args(["audit", "verify", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!v.status.success(), "{}", text(&v));
}
