//! Measure TlsTransport throughput on loopback: three nodes in one process
//! (one thread each), every round each node sends SIZE bytes to the next
//! node and receives as much from the previous one.
//!
//! ```sh
//! cargo run --release -p kuvert-net --example ring_throughput -- 64 10   # 64 MiB x 10 rounds
//! cargo run --release -p kuvert-net --example ring_throughput -- 8B 2000 # round latency
//! ```
//! Prints one JSON line per run on stdout.

use std::net::TcpListener;
use std::time::Instant;

use kuvert_mpc::transport::{next, prev, Incoming, Outgoing, Transport};
use kuvert_net::pki::{self, InitOptions};
use kuvert_net::tls::NodeTls;
use kuvert_net::{NetConfig, TlsTransport};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Size per round: "64" is 64 MiB, "8B" is 8 bytes (for round latency).
    let size = args.get(1).cloned().unwrap_or_else(|| "64".into());
    let len: usize = match size.strip_suffix('B') {
        Some(b) => b.parse().expect("size"),
        None => size.parse::<usize>().expect("size") << 20,
    };
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let chunk: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1 << 20);
    let dir = std::env::temp_dir().join(format!("kuvert-ring-throughput-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    pki::init(&dir, &InitOptions::default()).expect("pki");
    let ls: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs = [
        ls[0].local_addr().unwrap(),
        ls[1].local_addr().unwrap(),
        ls[2].local_addr().unwrap(),
    ];
    let secs: Vec<f64> = std::thread::scope(|s| {
        let hs: Vec<_> = ls
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let dir = dir.clone();
                s.spawn(move || {
                    let mut c = NetConfig::new(i, addrs, NodeTls::load(&dir, i).unwrap());
                    c.chunk_size = chunk;
                    let mut t = TlsTransport::connect_with_listener(c, l).unwrap();
                    let out = vec![i as u8; len];
                    let mut inc = vec![0u8; len];
                    // Warm-up round.
                    t.round(
                        &[Outgoing {
                            to: next(i),
                            data: &out,
                        }],
                        &mut [Incoming {
                            from: prev(i),
                            buf: &mut inc,
                        }],
                    )
                    .unwrap();
                    let start = Instant::now();
                    for _ in 0..rounds {
                        t.round(
                            &[Outgoing {
                                to: next(i),
                                data: &out,
                            }],
                            &mut [Incoming {
                                from: prev(i),
                                buf: &mut inc,
                            }],
                        )
                        .unwrap();
                    }
                    let el = start.elapsed().as_secs_f64();
                    assert!(inc.iter().all(|b| *b == prev(i) as u8));
                    el
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let worst = secs.iter().cloned().fold(0.0, f64::max);
    let per_node = (len * rounds) as f64 / worst / (1u64 << 20) as f64;
    let round_us = worst / rounds as f64 * 1e6;
    println!(
        "{{\"bytes_per_round\":{len},\"rounds\":{rounds},\"chunk_bytes\":{chunk},\"seconds\":{worst:.3},\"mib_per_s_per_node_each_way\":{per_node:.1},\"us_per_round\":{round_us:.1},\"cores\":{}}}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
