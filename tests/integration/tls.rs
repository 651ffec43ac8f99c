//! rediss:// against a real TLS redis-server, with certificates made for the test.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use crate::common::*;

pub struct TlsFiles {
    _dir: tempfile::TempDir,
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

pub fn certificates() -> TlsFiles {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // A name and the usages OpenSSL wants of a CA (a cluster's nodes verify each other with it).
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "sessiontop test CA");
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let files = TlsFiles {
        ca: dir.path().join("ca.pem"),
        cert: dir.path().join("server.pem"),
        key: dir.path().join("server.key"),
        _dir: dir,
    };
    std::fs::write(&files.ca, ca.pem()).unwrap();
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    files
}

#[test]
fn rediss_with_a_ca_file_insecure_mode_and_an_untrusted_certificate() {
    let tls = certificates();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let server = server_with(&[
        "--tls-port",
        &port,
        "--tls-cert-file",
        tls.cert.to_str().unwrap(),
        "--tls-key-file",
        tls.key.to_str().unwrap(),
        "--tls-ca-cert-file",
        tls.ca.to_str().unwrap(),
        "--tls-auth-clients",
        "no",
    ]);
    let mut con = conn(&server);
    trt_turn(&mut con, "trt:", "u1", "1.1_goal_and_vision", now_epoch(), true);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("rediss://localhost:{port}");

    let snap = json(sessiontop(&url, &dir).args(["--tls-ca", tls.ca.to_str().unwrap(), "snapshot", "--json"]));
    assert_eq!(snap["sessions"]["total"], 1);
    let snap = json(sessiontop(&url, &dir).args(["--tls-insecure", "snapshot", "--json"]));
    assert_eq!(snap["sessions"]["total"], 1);

    let out = sessiontop(&url, &dir).args(["snapshot"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("certificate was not accepted") && stderr.contains("--tls-ca"), "{stderr}");

    // Plain redis:// to a TLS port is named as such, not a hang.
    let out = sessiontop(&format!("redis://localhost:{port}"), &dir)
        .args(["--response-timeout", "2s", "snapshot"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("use rediss://"), "a TLS port reached in plain text says so: {stderr}");
}
