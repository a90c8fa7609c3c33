//! The deployment PKI on disk.

use std::path::PathBuf;

use kuvert_net::pki::{self, InitOptions, PeerIdentity, PkiError, PkiLayout};

fn tmp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("kuvert-pki-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn opts(parties: &[&str]) -> InitOptions {
    InitOptions {
        parties: parties.iter().map(|s| s.to_string()).collect(),
        ..InitOptions::default()
    }
}

#[test]
fn init_writes_every_file_with_its_mode_and_refuses_to_overwrite() {
    let dir = tmp("init");
    let written = pki::init(&dir, &opts(&["fk", "malmo-stad"])).unwrap();
    let l = PkiLayout::new(&dir);
    let expect = [
        (l.ca_cert(), false),
        (l.ca_key(), true),
        (l.node_cert(0), false),
        (l.node_key(0), true),
        (l.node_cert(1), false),
        (l.node_key(1), true),
        (l.node_cert(2), false),
        (l.node_key(2), true),
        (l.party_cert("fk"), false),
        (l.party_key("fk"), true),
        (l.party_cert("malmo-stad"), false),
        (l.party_key("malmo-stad"), true),
    ];
    assert_eq!(written.len(), expect.len());
    for (w, (path, secret)) in written.iter().zip(&expect) {
        assert_eq!(&w.path, path);
        assert_eq!(w.secret, *secret);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(
                mode,
                if *secret { 0o600 } else { 0o644 },
                "{}",
                path.display()
            );
        }
    }
    // Certificates say who they are.
    for i in 0..3 {
        let c = pki::load_certs(&l.node_cert(i)).unwrap();
        assert_eq!(pki::peer_identity(&c[0]).unwrap(), PeerIdentity::Node(i));
    }
    let c = pki::load_certs(&l.party_cert("malmo-stad")).unwrap();
    assert_eq!(
        pki::peer_identity(&c[0]).unwrap(),
        PeerIdentity::Party("malmo-stad".into())
    );

    assert!(matches!(
        pki::init(&dir, &opts(&[])),
        Err(PkiError::DirExists { .. })
    ));
    let again = pki::init(
        &dir,
        &InitOptions {
            force: true,
            ..opts(&[])
        },
    );
    assert!(again.is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_inputs_are_refused_before_writing() {
    let dir = tmp("bad");
    for bad in ["", "Fk", "a_b", "-fk", "node-9", &"x".repeat(64)] {
        assert!(
            matches!(
                pki::init(&dir, &opts(&[bad])),
                Err(PkiError::BadPartyName { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        pki::init(&dir, &opts(&["fk", "fk"])),
        Err(PkiError::BadPartyName { .. })
    ));
    let four = InitOptions {
        nodes: 4,
        ..opts(&[])
    };
    assert!(matches!(
        pki::init(&dir, &four),
        Err(PkiError::BadNodeCount(4))
    ));
    assert!(!dir.exists(), "nothing may be written for bad input");
}

#[test]
fn issue_rotates_one_key_under_the_same_ca() {
    let dir = tmp("issue");
    pki::init(&dir, &opts(&["fk"])).unwrap();
    let l = PkiLayout::new(&dir);
    let old = std::fs::read(l.node_key(1)).unwrap();
    assert!(matches!(
        pki::issue_node(&dir, 1, 30, false),
        Err(PkiError::FileExists { .. })
    ));
    pki::issue_node(&dir, 1, 30, true).unwrap();
    assert_ne!(std::fs::read(l.node_key(1)).unwrap(), old);
    pki::issue_party(&dir, "skv", 30, false).unwrap();
    assert!(matches!(
        pki::issue_node(&dir, 3, 30, false),
        Err(PkiError::BadNode(3))
    ));
    // The new certificates chain to the unchanged CA: a TLS server built
    // from the old CA accepts them (checked end to end in loopback.rs too).
    let roots = pki::load_roots(&l.ca_cert()).unwrap();
    let id = kuvert_net::Identity::load_node(&dir, 1).unwrap();
    let server = kuvert_net::tls::server_config(roots.clone(), &id).unwrap();
    let party = kuvert_net::tls::party_client_config(&dir, "skv").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        kuvert_net::tls::accept(tcp, &server, std::time::Duration::from_secs(5))
            .map(|(_, _, id)| id)
    });
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    kuvert_net::tls::connect(
        tcp,
        &party,
        kuvert_net::tls::node_server_name(1),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(
        t.join().unwrap().unwrap(),
        PeerIdentity::Party("skv".into())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
