//! Deletion receipts: signed by the node, verified against its key.

mod common;

use kuvert_gov::receipt::AuditHead;
use kuvert_gov::spec::AnalysisId;
use kuvert_gov::{Deleted, DeletionReceipt, GovError};

fn receipt(node_key: &kuvert_gov::PartyKey) -> DeletionReceipt {
    DeletionReceipt::sign_at(
        node_key,
        AnalysisId([9; 32]),
        "job-1",
        2,
        Deleted {
            tables: vec!["fk".into(), "ek".into()],
            intermediate_state: true,
            session_keys: true,
        },
        Some(AuditHead {
            records: 7,
            hash: "ab".repeat(32),
        }),
        "2027-01-15T08:00:00Z".into(),
    )
}

#[test]
fn receipt_verifies_with_the_nodes_key_only() {
    let node = common::key("node2", 20);
    let other = common::key("node1", 21);
    let r = receipt(&node);
    r.verify(&node.verifying_key()).unwrap();
    assert!(matches!(
        r.verify(&other.verifying_key()),
        Err(GovError::BadReceipt { node: 2, .. })
    ));
    // A receipt signed by another node but carrying node 2's public key in
    // its field still fails: the verifier's key counts, not the field.
    let mut forged = receipt(&other);
    forged.node_public_key = r.node_public_key.clone();
    assert!(forged.verify(&node.verifying_key()).is_err());
    // File round trip.
    let json = serde_json::to_string_pretty(&r).unwrap();
    let back: DeletionReceipt = serde_json::from_str(&json).unwrap();
    back.verify(&node.verifying_key()).unwrap();
}

type Change = Box<dyn Fn(&mut DeletionReceipt)>;

#[test]
fn every_field_is_signed() {
    let node = common::key("node2", 20);
    let vk = node.verifying_key();
    let r = receipt(&node);
    let changes: Vec<Change> = vec![
        Box::new(|r| r.analysis_id = AnalysisId([8; 32])),
        Box::new(|r| r.job.push('x')),
        Box::new(|r| r.node = 1),
        Box::new(|r| r.deleted.tables.pop().map(|_| ()).unwrap_or(())),
        Box::new(|r| r.deleted.intermediate_state = false),
        Box::new(|r| r.deleted.session_keys = false),
        Box::new(|r| r.time = "2027-01-16T08:00:00Z".into()),
        Box::new(|r| r.audit_head = None),
        Box::new(|r| r.audit_head.as_mut().unwrap().records = 6),
    ];
    for (i, c) in changes.iter().enumerate() {
        let mut bad = r.clone();
        c(&mut bad);
        assert_ne!(bad, r);
        assert!(bad.verify(&vk).is_err(), "change {i} went unnoticed");
    }
}
