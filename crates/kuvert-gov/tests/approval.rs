//! Approvals: what every node runs before it accepts a share. The attack
//! cases are the point: an altered spec, a forged signature, a key that is
//! not the spec's, a missing contributor.

mod common;

use kuvert_gov::approval::{approve_spec, sign_approval, ApprovalState};
use kuvert_gov::spec::Validation;
use kuvert_gov::{approval_status, verify_approvals, AnalysisSpec, Approval, GovError};

fn approvals(p: &common::Parties, spec: &AnalysisSpec) -> Vec<Approval> {
    let id = spec.id();
    vec![
        approve_spec(spec, &id, &p.fk).unwrap(),
        approve_spec(spec, &id, &p.kommun).unwrap(),
    ]
}

#[test]
fn all_contributors_approved_verifies() {
    let p = common::parties();
    let spec = common::spec(&p);
    let a = approvals(&p, &spec);
    assert_eq!(a[0].contributor, "fk");
    assert_eq!(a[1].contributor, "kommun");
    verify_approvals(&spec, &a).unwrap();
    let token = kuvert_gov::approval::approved(&spec, &a).unwrap();
    assert_eq!(token.id(), spec.id());
    assert!(kuvert_gov::approval::approved(&spec, &a[..1]).is_err());
    // Order does not matter.
    verify_approvals(&spec, &[a[1].clone(), a[0].clone()]).unwrap();
    // JSON round trip (the approval.json file).
    let json = serde_json::to_string(&a[0]).unwrap();
    let back: Approval = serde_json::from_str(&json).unwrap();
    assert_eq!(back, a[0]);
}

#[test]
fn altered_spec_gets_another_id_and_the_approvals_are_refused() {
    let p = common::parties();
    let spec = common::spec(&p);
    let a = approvals(&p, &spec);
    // The coordinator (or anyone) changes one character of the SQL that
    // goes to the control unit after both approved.
    let text =
        common::spec_text(&p).replace("SELECT DISTINCT f.pnr", "SELECT DISTINCT f.pnr, f.belopp");
    let altered = AnalysisSpec::parse(&text, "altered", Validation::Strict).unwrap();
    assert_ne!(altered.id(), spec.id());
    match verify_approvals(&altered, &a) {
        Err(GovError::ApprovalForOtherAnalysis {
            contributor,
            approved,
            expected,
        }) => {
            assert_eq!(contributor, "fk");
            assert_eq!(approved, spec.id().to_hex());
            assert_eq!(expected, altered.id().to_hex());
        }
        other => panic!("{other:?}"),
    }
    // Relabelling the approval with the new id breaks the signature.
    let mut relabelled = a.clone();
    for x in &mut relabelled {
        x.analysis_id = altered.id();
    }
    assert!(matches!(
        verify_approvals(&altered, &relabelled),
        Err(GovError::BadApprovalSignature { .. })
    ));
}

#[test]
fn forged_signature_is_refused() {
    let p = common::parties();
    let spec = common::spec(&p);
    let mut a = approvals(&p, &spec);
    // Flip one bit of the municipality's signature.
    let mut sig = a[1].signature.clone().into_bytes();
    sig[10] = if sig[10] == b'0' { b'1' } else { b'0' };
    a[1].signature = String::from_utf8(sig).unwrap();
    match verify_approvals(&spec, &a) {
        Err(GovError::BadApprovalSignature { contributor }) => assert_eq!(contributor, "kommun"),
        other => panic!("{other:?}"),
    }
    // Garbage and the fk signature copied over are refused too.
    a[1].signature = "zz".into();
    assert!(matches!(
        verify_approvals(&spec, &a),
        Err(GovError::BadApprovalSignature { .. })
    ));
    let good = approvals(&p, &spec);
    a[1].signature = good[0].signature.clone();
    assert!(matches!(
        verify_approvals(&spec, &a),
        Err(GovError::BadApprovalSignature { .. })
    ));
}

#[test]
fn key_that_is_not_the_specs_is_refused() {
    let p = common::parties();
    let spec = common::spec(&p);
    let id = spec.id();
    // The control unit (no contributor) signs in the municipality's name.
    let fake = sign_approval(&id, "kommun", &p.kontroll);
    let a = vec![approve_spec(&spec, &id, &p.fk).unwrap(), fake];
    match verify_approvals(&spec, &a) {
        Err(GovError::ApprovalKeyMismatch {
            contributor,
            given,
            expected,
        }) => {
            assert_eq!(contributor, "kommun");
            assert_eq!(given, p.kontroll.public().ed25519);
            assert_eq!(expected, p.kommun.public().ed25519);
        }
        other => panic!("{other:?}"),
    }
    // approve_spec refuses a key the spec does not name.
    assert!(matches!(
        approve_spec(&spec, &id, &p.kontroll),
        Err(GovError::UnknownContributor { .. })
    ));
}

#[test]
fn missing_unknown_and_duplicate_contributors_are_refused() {
    let p = common::parties();
    let spec = common::spec(&p);
    let a = approvals(&p, &spec);
    match verify_approvals(&spec, &a[..1]) {
        Err(GovError::MissingApprovals {
            missing,
            analysis_id,
        }) => {
            assert_eq!(missing, vec!["kommun".to_string()]);
            assert_eq!(analysis_id, spec.id().to_hex());
        }
        other => panic!("{other:?}"),
    }
    match verify_approvals(&spec, &[]) {
        Err(GovError::MissingApprovals { missing, .. }) => {
            assert_eq!(missing, vec!["fk", "kommun"])
        }
        other => panic!("{other:?}"),
    }
    let mut unknown = a.clone();
    unknown[1].contributor = "skatteverket".into();
    assert!(matches!(
        verify_approvals(&spec, &unknown),
        Err(GovError::UnknownContributor { contributor, .. }) if contributor == "skatteverket"
    ));
    let dup = vec![a[0].clone(), a[0].clone(), a[1].clone()];
    assert!(matches!(
        verify_approvals(&spec, &dup),
        Err(GovError::DuplicateApproval { contributor }) if contributor == "fk"
    ));
}

#[test]
fn approving_refuses_a_spec_whose_id_is_not_the_agreed_one() {
    let p = common::parties();
    let spec = common::spec(&p);
    let mut other = spec.clone();
    other.purpose.push_str(" And more.");
    match approve_spec(&other, &spec.id(), &p.fk) {
        Err(GovError::IdMismatch { given, actual }) => {
            assert_eq!(given, spec.id().to_hex());
            assert_eq!(actual, other.id().to_hex());
        }
        other => panic!("{}", other.is_ok()),
    }
}

#[test]
fn status_reports_each_contributor() {
    let p = common::parties();
    let spec = common::spec(&p);
    let mut a = approvals(&p, &spec);
    assert_eq!(
        approval_status(&spec, &a[..1]),
        vec![
            ("fk".to_string(), ApprovalState::Approved),
            ("kommun".to_string(), ApprovalState::Missing)
        ]
    );
    a[1].signature = a[0].signature.clone();
    let s = approval_status(&spec, &a);
    assert!(matches!(&s[1].1, ApprovalState::Invalid(why) if why.contains("invalid signature")));
}

#[test]
fn placeholder_specs_cannot_be_approved() {
    let p = common::parties();
    let t = kuvert_gov::templates::spec("overlapping-benefits").unwrap();
    assert!(matches!(
        approve_spec(&t, &t.id(), &p.fk),
        Err(GovError::Invalid { .. })
    ));
    assert!(matches!(
        verify_approvals(&t, &[]),
        Err(GovError::Invalid { .. })
    ));
}
