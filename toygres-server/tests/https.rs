//! `toygres serve --tls-cert --tls-key`: the API answers over HTTPS with that certificate (a
//! client that trusts it gets the same answers as over HTTP), plain HTTP to the port gets
//! nothing, the sign-in page marks its cookie `Secure` there, and a bad key file stops the start.

mod support;

use support::{DataDir, Server, TOKEN};

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files in `dir`.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, reqwest::Certificate) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let trusted = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    (cert_file, key_file, trusted)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_answers_over_https_and_plain_http_gets_nothing() {
    let data = DataDir::new();
    let files = tempfile::tempdir().unwrap();
    let (cert, key, trusted) = certificate(files.path());
    let args = ["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
    let server = Server::start_with(&data, &args, Some(TOKEN));
    assert!(server.url.starts_with("https://"), "{}", server.url);

    let https = reqwest::Client::builder().add_root_certificate(trusted).build().unwrap();
    let health = https.get(format!("{}/healthz", server.url)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let listed = https.get(format!("{}/api/instances", server.url)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.json::<serde_json::Value>().await.unwrap(), serde_json::json!({ "items": [] }));
    let sign_in = https.get(format!("{}/sign-in.js", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(sign_in.contains("'; Secure'"), "the cookie is Secure over HTTPS: {sign_in}");

    let untrusting = reqwest::Client::new();
    assert!(untrusting.get(format!("{}/healthz", server.url)).send().await.is_err(), "an untrusted certificate");
    let plain = server.url.replacen("https://", "http://", 1);
    let answer = reqwest::Client::new().get(format!("{plain}/healthz")).send().await;
    assert!(answer.is_err(), "plain HTTP got an answer: {answer:?}");
    let again = https.get(format!("{}/healthz", server.url)).send().await.unwrap();
    assert_eq!(again.status(), 200, "a failed handshake does not stop the server");
}

#[test]
fn a_key_that_is_not_a_key_stops_the_start_with_a_clear_error() {
    let data = DataDir::new();
    let files = tempfile::tempdir().unwrap();
    let (cert, _, _) = certificate(files.path());
    let bad = files.path().join("bad.pem");
    std::fs::write(&bad, "not a key").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_toygres"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .args(["--tls-cert", cert.to_str().unwrap(), "--tls-key", bad.to_str().unwrap()])
        .env("TOYGRES_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tls-key") && stderr.contains("bad.pem"), "{stderr}");
}
