//! Malicious mode checks the inputs too: shares whose two copies of a
//! component disagree (a contributor's broken upload, or a node that
//! altered its copy) stop a `--malicious` query at every node before
//! anything is computed, through real node processes.

use std::path::Path;

use kuvert_data::ShareKind;
use kuvert_node::local::{LocalCluster, CONTRIBUTOR};
use kuvert_node::wire::{Request, Response};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

#[test]
fn inconsistent_input_shares_stop_a_malicious_query_before_it_computes() {
    let cluster = LocalCluster::start(Path::new(env!("CARGO_BIN_EXE_kuvert"))).unwrap();
    let schema = "v:int".parse().unwrap();
    let table = kuvert_data::read_csv(
        "v\n1\n2\n3\n4\n".as_bytes(),
        "t.csv",
        &schema,
        &kuvert_data::CsvOptions::default(),
    )
    .unwrap();
    let mut shares = kuvert_data::share_table(
        &table,
        ShareKind::Arithmetic,
        &mut ChaCha20Rng::seed_from_u64(5),
    );
    // Node 1's copy of its first component differs from node 0's copy.
    shares[1].columns[0].a[0] ^= 1;
    let nodes = cluster.nodes(CONTRIBUTOR).unwrap();
    for (i, s) in shares.iter().enumerate() {
        let mut payload = Vec::new();
        for c in &s.columns {
            payload.extend(kuvert_node::wire::words_to_bytes(&c.a));
            payload.extend(kuvert_node::wire::words_to_bytes(&c.b));
        }
        let req = Request::Upload {
            job: "j".into(),
            table: "t".into(),
            schema: s.schema.to_compact(),
            rows: s.rows as u64,
        };
        let (resp, _) = nodes.connect(i).unwrap().ask(&req, &payload).unwrap();
        assert!(matches!(resp, Response::Ok { .. }), "node {i}: {resp:?}");
    }
    let e = match cluster.query_secure("j", "SELECT SUM(v) AS s FROM t", true, |_| {}) {
        Ok(_) => panic!("the inconsistent shares must stop the run"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("input shares do not agree"), "{e}");
    assert!(e.contains("nothing was computed or released"), "{e}");
}
