//! Three real `kuvert node` processes on loopback: contributors upload,
//! the nodes compute, the recipient reconstructs; refusals and a node killed
//! in the middle of a job.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const KUVERT: &str = env!("CARGO_BIN_EXE_kuvert");

fn free_port() -> SocketAddr {
    kuvert_node::local::free_loopback_port().unwrap()
}

struct Cluster {
    dir: tempfile::TempDir,
    client: [SocketAddr; 3],
    nodes: Vec<Option<Child>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.nodes.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let out = kuvert(&[
            "pki",
            "init",
            "--out",
            dir.path().join("pki").to_str().unwrap(),
            "--parties",
            "fk,kommun,kontroll",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let client = [free_port(), free_port(), free_port()];
        let mpc = [free_port(), free_port(), free_port()];
        for (i, listen) in client.iter().enumerate() {
            let cfg = format!(
                "id = {i}\nlisten = \"{listen}\"\nnodes = [\"{}\", \"{}\", \"{}\"]\npki_dir = \"pki\"\ndata_dir = \"node{i}\"\nio_timeout_secs = 5\nconnect_timeout_secs = 5\ndev_mode = true\n",
                mpc[0], mpc[1], mpc[2]
            );
            std::fs::write(dir.path().join(format!("node{i}.toml")), cfg).unwrap();
        }
        let mut c = Cluster {
            dir,
            client,
            nodes: vec![None, None, None],
        };
        for i in 0..3 {
            c.spawn(i);
        }
        c
    }

    fn spawn(&mut self, i: usize) {
        let child = Command::new(KUVERT)
            .args(["node", "--config"])
            .arg(self.dir.path().join(format!("node{i}.toml")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.nodes[i] = Some(child);
        // Wait until it accepts connections.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(self.client[i]).is_err() {
            assert!(Instant::now() < deadline, "node {i} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self, i: usize) {
        let mut c = self.nodes[i].take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn client_args(&self, party: &str) -> Vec<String> {
        vec![
            "--pki".into(),
            self.path("pki").display().to_string(),
            "--as".into(),
            party.into(),
            "--nodes".into(),
            self.client
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ]
    }

    /// Run `program` on job j1 for the recipient "kontroll" (started by
    /// "fk"), and return what the recipient's fetch printed.
    fn compute(&self, program: &str) -> String {
        let run = self.run(
            &[
                "job",
                "run",
                "--job",
                "j1",
                "--program",
                program,
                "--recipient",
                "kontroll",
            ],
            "fk",
        );
        assert!(run.status.success(), "{program}: {}", text(&run));
        let got = self.run(&["fetch", "--job", "j1"], "kontroll");
        assert!(got.status.success(), "{program}: {}", text(&got));
        String::from_utf8_lossy(&got.stdout).to_string()
    }

    fn run(&self, args: &[&str], party: &str) -> Output {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(self.client_args(party));
        Command::new(KUVERT).args(&all).output().unwrap()
    }
}

fn kuvert(args: &[&str]) -> Output {
    Command::new(KUVERT).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write_csv(path: &Path, rows: &[(&str, i64)]) {
    let mut s = String::from("pnr,belopp\n");
    for (p, b) in rows {
        s.push_str(&format!("{p},{b}\n"));
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn upload_compute_fetch_and_refusals() {
    let c = Cluster::start();
    let rows = [
        ("19121212-1212", 1200),
        ("811228-9874", -300),
        ("701063-2391", 45000),
        ("198112289874", 7),
    ];
    write_csv(&c.path("a.csv"), &rows);
    let table = format!("a={}", c.path("a.csv").display());
    let up = c.run(
        &[
            "upload",
            "--job",
            "j1",
            "--table",
            &table,
            "--schema",
            "pnr:idnr,belopp:int",
        ],
        "fk",
    );
    assert!(up.status.success(), "{}", text(&up));

    // Sum, for the control unit.
    let want: i64 = rows.iter().map(|r| r.1).sum();
    assert_eq!(
        c.compute("sum:a.belopp"),
        format!(
            "value
{want}
"
        )
    );

    // A SQL query as a job: the recipient's fetch prints the answer as CSV.
    let big: Vec<String> = {
        let mut v: Vec<&(&str, i64)> = rows.iter().filter(|r| r.1 > 0).collect();
        v.sort_by_key(|r| r.1);
        v.iter().map(|r| r.1.to_string()).collect()
    };
    assert_eq!(
        c.compute("query:SELECT belopp FROM a WHERE belopp > 0 ORDER BY belopp"),
        format!("belopp\n{}\n", big.join("\n"))
    );

    // Another party cannot fetch the recipient's result.
    let other = c.run(&["fetch", "--job", "j1"], "kommun");
    assert!(!other.status.success());
    assert!(
        text(&other).contains("is not the recipient"),
        "{}",
        text(&other)
    );

    // Count below a limit (exact signed comparison under MPC).
    let want = rows.iter().filter(|r| r.1 < 1000).count();
    assert_eq!(
        c.compute("count-below:a.belopp:1000"),
        format!(
            "value
{want}
"
        )
    );

    // A differentially private sum: clamped under MPC, noise added inside
    // the MPC by the three nodes. Within 6 standard deviations of the
    // clamped sum.
    let noisy: f64 = c
        .compute("noisy-sum:a.belopp:-1000:5000:4:0.000001")
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let clamped: i64 = rows.iter().map(|r| r.1.clamp(-1000, 5000)).sum();
    let sd = (1.5 * kuvert_node::exec::noise_variance(-1000, 5000, 4.0, 1e-6).unwrap()).sqrt();
    assert!(
        (noisy - clamped as f64).abs() < 6.0 * sd,
        "noisy {noisy}, clamped {clamped}, sd {sd}"
    );

    // A schema mismatch in the program is refused before anything runs.
    let bad = c.run(
        &[
            "job",
            "run",
            "--job",
            "j1",
            "--program",
            "sum:a.nope",
            "--recipient",
            "kontroll",
        ],
        "fk",
    );
    assert!(!bad.status.success());
    assert!(text(&bad).contains("no column \"nope\""), "{}", text(&bad));

    // Bad CSV: exit 2, file:line:column, and nothing reaches the nodes.
    std::fs::write(
        c.path("bad.csv"),
        "pnr,belopp\n19121212-1212,5\n19121212-1213,6\n",
    )
    .unwrap();
    let table = format!("b={}", c.path("bad.csv").display());
    let bad = c.run(
        &[
            "upload",
            "--job",
            "j2",
            "--table",
            &table,
            "--schema",
            "pnr:idnr,belopp:int",
        ],
        "kommun",
    );
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("bad.csv:3:1"), "{}", text(&bad));
    let st = c.run(&["job", "status", "--job", "j2"], "kommun");
    assert_eq!(text(&st).matches("unknown job").count(), 3, "{}", text(&st));

    // A party with a certificate from another CA is refused at the handshake.
    let other_pki = c.path("other-pki");
    let out = kuvert(&[
        "pki",
        "init",
        "--out",
        other_pki.to_str().unwrap(),
        "--parties",
        "fk",
    ]);
    assert!(out.status.success());
    let mut args: Vec<String> = [
        "job",
        "status",
        "--job",
        "j1",
        "--pki",
        other_pki.to_str().unwrap(),
        "--as",
        "fk",
        "--nodes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(
        c.client
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    let out = Command::new(KUVERT).args(&args).output().unwrap();
    assert!(
        text(&out).contains("unreachable") || !out.status.success(),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("done"), "{}", text(&out));

    // No cleartext identity number or amount in the nodes' directories.
    for i in 0..3 {
        for entry in walk(&c.path(&format!("node{i}"))) {
            let bytes = std::fs::read(&entry).unwrap();
            for needle in ["191212121212", "19121212-1212", "45000"] {
                assert!(
                    !contains(&bytes, needle.as_bytes()),
                    "{needle} found in {}",
                    entry.display()
                );
            }
        }
    }
}

#[test]
fn a_killed_node_stops_the_job_clearly_and_the_job_can_run_again() {
    let mut c = Cluster::start();
    // A long job: many rounds of multiplications.
    let args = [
        "job",
        "run",
        "--job",
        "soak",
        "--program",
        "soak:100000:1000",
        "--recipient",
        "kontroll",
    ];
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(c.client_args("fk"));
    let client = Command::new(KUVERT)
        .args(&all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = Instant::now();
    c.kill(2);
    let out = client.wait_with_output().unwrap();
    let took = killed_at.elapsed();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let msg = text(&out);
    assert!(msg.contains("node 2") || msg.contains("party 2"), "{msg}");
    // No result was released.
    let got = c.run(&["fetch", "--job", "soak"], "kontroll");
    assert!(!got.status.success());

    // Restart the node and run the same job again (short this time).
    c.spawn(2);
    let again = c.run(
        &[
            "job",
            "run",
            "--job",
            "soak",
            "--program",
            "soak:3:10",
            "--recipient",
            "kontroll",
        ],
        "fk",
    );
    assert!(again.status.success(), "{}", text(&again));
    let got = c.run(&["fetch", "--job", "soak"], "kontroll");
    assert_eq!(String::from_utf8_lossy(&got.stdout), "value\n10\n");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
