//! What the governed service costs at the nodes, phase by phase: three
//! in-process nodes on loopback (real TLS), the overlapping-benefits
//! template, two contributors with `ROWS` rows each, three recipients.
//!
//! ```sh
//! cargo run --release -p kuvert-node --example service_bench -- [ROWS]   # default 1000
//! ```
//!
//! Prints one JSON object per phase on stdout (milliseconds, and the run's
//! rounds and bytes per node), then the sizes of what each node keeps.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kuvert_data::{CsvOptions, Date, Schema};
use kuvert_gov::{sign_approval, AnalysisSpec, PartyKey, Validation};
use kuvert_node::client::Nodes;
use kuvert_node::config::NodeConfig;
use kuvert_node::server::Node;
use kuvert_node::wire::GovState;

fn pnr(n: usize) -> String {
    let (y, m, d, s) = (
        1940 + n % 60,
        1 + (n / 60) % 12,
        1 + (n / 720) % 28,
        n / 20160,
    );
    let nine = format!("{:02}{m:02}{d:02}{:03}", y % 100, s % 1000);
    let mut sum = 0;
    for (i, c) in nine.bytes().enumerate() {
        let mut v = (c - b'0') as u32 * if i % 2 == 0 { 2 } else { 1 };
        if v > 9 {
            v -= 9;
        }
        sum += v;
    }
    format!("{y}{}{}", &nine[2..], (10 - sum % 10) % 10)
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            total += if p.is_dir() {
                size(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            };
        }
    }
    total
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    let dir = tempfile::tempdir()?;
    let pki = dir.path().join("pki");
    kuvert_net::pki::init(
        &pki,
        &kuvert_net::pki::InitOptions {
            nodes: 3,
            parties: ["coordinator", "fk", "kommun", "kontroll"]
                .map(String::from)
                .to_vec(),
            validity_days: 30,
            force: false,
        },
    )?;
    kuvert_node::gov::ensure_signing_keys(&pki)?;
    let mpc = [free_port(), free_port(), free_port()];
    let addrs = [free_port(), free_port(), free_port()];
    let mut nodes: Vec<Arc<Node>> = Vec::new();
    for (i, listen) in addrs.iter().enumerate() {
        let path = dir.path().join(format!("node{i}.toml"));
        std::fs::write(
            &path,
            format!(
                "id = {i}\nlisten = \"{listen}\"\nnodes = [\"{}\", \"{}\", \"{}\"]\npki_dir = \"pki\"\ndata_dir = \"node{i}\"\nio_timeout_secs = 60\nconnect_timeout_secs = 30\ndev_mode = true\n",
                mpc[0], mpc[1], mpc[2]
            ),
        )?;
        let node = Node::new(NodeConfig::load(&path)?)?;
        let l = TcpListener::bind(listen)?;
        let n = Arc::clone(&node);
        std::thread::spawn(move || n.serve_on(l));
        nodes.push(node);
    }

    let (fk, kommun, kontroll) = (
        PartyKey::generate("fk"),
        PartyKey::generate("kommun"),
        PartyKey::generate("kontroll"),
    );
    let text = kuvert_gov::templates::get("overlapping-benefits")?
        .replace(
            "kem_public_key = \"placeholder:fk\"",
            &format!("kem_public_key = \"{}\"", fk.kem_public().unwrap().to_base64()),
        )
        .replace(
            "kem_public_key = \"placeholder:kommun\"",
            &format!("kem_public_key = \"{}\"", kommun.kem_public().unwrap().to_base64()),
        )
        .replace(
            "kem_public_key = \"placeholder:kontroll\"",
            &format!("kem_public_key = \"{}\"", kontroll.kem_public().unwrap().to_base64()),
        )
        .replace(
            "public_key = \"placeholder:fk\"",
            &format!("public_key = \"{}\"", fk.public().ed25519),
        )
        .replace(
            "public_key = \"placeholder:kommun\"",
            &format!("public_key = \"{}\"", kommun.public().ed25519),
        )
        .replace(
            "contact = \"placeholder: the analysis owner's functional mailbox, e.g. mpc-analys@myndighet.example\"",
            "contact = \"bench@example.org\"",
        );
    let spec = AnalysisSpec::parse(&text, "bench", Validation::Strict)?;
    let id = spec.id();
    let approvals = vec![
        sign_approval(&id, "fk", &fk),
        sign_approval(&id, "kommun", &kommun),
    ];

    // Inputs: every person once in each table; every other person overlaps.
    let opts = CsvOptions {
        delimiter: b',',
        today: Date {
            year: 2026,
            month: 11,
            day: 23,
        },
    };
    let mut fk_csv = "pnr,forman,fran,till,belopp\n".to_string();
    let mut ek_csv = "pnr,fran,till,belopp\n".to_string();
    for n in 0..rows {
        fk_csv += &format!(
            "{},sjukpenning,2025-03-01,2025-03-31,{}\n",
            pnr(n),
            1000 + n
        );
        let month = if n % 2 == 0 { 3 } else { 5 };
        ek_csv += &format!(
            "{},2025-{month:02}-10,2025-{month:02}-20,{}\n",
            pnr(n),
            2000 + n
        );
    }
    let fk_schema: Schema = "pnr:idnr,forman:text,fran:date,till:date,belopp:int".parse()?;
    let ek_schema: Schema = "pnr:idnr,fran:date,till:date,belopp:int".parse()?;
    let fk_table = kuvert_data::read_csv(fk_csv.as_bytes(), "fk.csv", &fk_schema, &opts)?;
    let ek_table = kuvert_data::read_csv(ek_csv.as_bytes(), "ek.csv", &ek_schema, &opts)?;

    let coord = Nodes::new(&pki, "coordinator", addrs)?;
    let phase = |name: &str, t: Instant| {
        println!(
            "{{\"phase\":\"{name}\",\"rows\":{rows},\"ms\":{:.1}}}",
            t.elapsed().as_secs_f64() * 1e3
        )
    };
    let t = Instant::now();
    coord.register(&text, &approvals)?;
    phase("register (3 nodes verify spec, approvals, plan outputs)", t);
    let t = Instant::now();
    Nodes::new(&pki, "fk", addrs)?.gov_upload(&id, "fk", &fk, "fk", &fk_table)?;
    phase("upload fk (share, sign, send, verify, store)", t);
    let t = Instant::now();
    Nodes::new(&pki, "kommun", addrs)?.gov_upload(&id, "kommun", &kommun, "ek", &ek_table)?;
    phase("upload ek", t);
    let t = Instant::now();
    coord.gov_run(&id)?;
    loop {
        let st: Vec<_> = (0..3)
            .map(|i| coord.gov_status(i, &id))
            .collect::<Result<_, _>>()?;
        if st.iter().all(|s| matches!(s.state, GovState::Done { .. })) {
            phase("run (agree, 2 outputs, seal, delete, sign)", t);
            for s in &st {
                let x = s.stats.expect("stats");
                println!(
                    "{{\"node\":{},\"rounds\":{},\"bytes_sent\":{},\"node_ms\":{},\"compute_ms\":{}}}",
                    s.node, x.rounds, x.bytes_sent, x.millis, x.compute_millis
                );
            }
            break;
        }
        if let Some(f) = st
            .iter()
            .find(|s| matches!(s.state, GovState::Failed { .. }))
        {
            return Err(format!("run failed: {:?}", f.state).into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    let out = Nodes::new(&pki, "kontroll", addrs)?.gov_fetch(&id, "kontroll", &kontroll)?;
    phase("fetch ids (3 boxes, open, reconstruct)", t);
    let ids = out[0].1.rows.len();
    let t = Instant::now();
    let out = Nodes::new(&pki, "fk", addrs)?.gov_fetch(&id, "fk", &fk)?;
    phase("fetch persons", t);
    let persons = out[0].1.to_csv_string()?;
    println!(
        "{{\"ids_rows\":{ids},\"persons\":{:?}}}",
        persons.lines().nth(1).unwrap_or("")
    );
    for i in 0..3 {
        let d = dir.path().join(format!("node{i}"));
        println!(
            "{{\"node\":{i},\"kept_bytes\":{},\"audit_bytes\":{}}}",
            size(&d),
            std::fs::metadata(d.join(format!("audit-node{i}.log")))?.len()
        );
    }
    for n in &nodes {
        n.shutdown();
    }
    Ok(())
}
