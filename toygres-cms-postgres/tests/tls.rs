//! TLS to the catalog (issue 13, defect 13) against real servers: one started with `ssl=on` and a
//! certificate for `localhost` signed by a CA this test makes, one without TLS. verify-full passes
//! with that CA and that name; another CA, or another name (127.0.0.1), is refused; `require`
//! against the server without TLS is refused; every error names the sslmode that failed.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use toygres_cms_postgres::{PostgresCatalog, PostgresCatalogConfig, RootCerts, SslMode};
use toygres_core::crypto::CatalogKey;
use toygres_core::Password;
use toygres_local::{LocalCluster, TempCluster};

/// A self-signed CA, written as PEM to `dir/<name>.pem`.
fn ca(dir: &Path, name: &str) -> (CertifiedIssuer<'static, KeyPair>, PathBuf) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, format!("toygres test CA {name}"));
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, issuer.pem()).unwrap();
    (issuer, path)
}

/// Turns TLS on in `server` with a certificate for `localhost` signed by `issuer`.
async fn enable_tls(server: &TempCluster, password: &Password, issuer: &CertifiedIssuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, issuer).unwrap();
    let cluster = server.cluster();
    let user = cluster.server_user();
    let data = cluster.data_dir();
    user.write_private_file(&data.join("server.crt"), cert.pem().as_bytes()).unwrap();
    user.write_private_file(&data.join("server.key"), key.serialize_pem().as_bytes()).unwrap();
    let client = cluster.connect("postgres", password).await.unwrap();
    client.batch_execute("ALTER SYSTEM SET ssl = on").await.unwrap();
    client.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let on: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(on, "on");
}

/// A catalog URL for `host` on `server`.
fn url(server: &TempCluster, password: &Password, host: &str, options: &str) -> String {
    format!("postgresql://postgres:{}@{host}:{}/postgres?{options}", password.expose(), server.cluster().port())
}

async fn connect(url: &str) -> toygres_core::Result<PostgresCatalog> {
    let config = PostgresCatalogConfig::from_url(url)?.schema(format!("cms_{}", uuid::Uuid::new_v4().simple()));
    PostgresCatalog::connect(config, CatalogKey::generate()).await
}

#[tokio::test]
async fn sslmodes_against_a_tls_server_and_a_plain_one() {
    let dir = tempfile::tempdir().unwrap();
    let (right, right_pem) = ca(dir.path(), "right");
    let (_wrong, wrong_pem) = ca(dir.path(), "wrong");
    let password = Password::generate();
    let tls = LocalCluster::start_temporary(&password).await.unwrap();
    enable_tls(&tls, &password, &right).await;
    let root = |pem: &Path| format!("sslrootcert={}", pem.display());

    // verify-full with the right CA and the certificate's name.
    let ok = connect(&url(&tls, &password, "localhost", &format!("sslmode=verify-full&{}", root(&right_pem)))).await;
    ok.expect("verify-full with the right CA and host name connects");
    // The session really is encrypted.
    let config = PostgresCatalogConfig::from_url(&url(&tls, &password, "localhost", "sslmode=verify-full"))
        .unwrap()
        .root_certs(RootCerts::File(right_pem.clone()));
    assert!(format!("{config:?}").contains("sslmode verify-full"));
    let raw = tls.cluster().connect("postgres", &password).await.unwrap();
    let catalog = PostgresCatalog::connect(config.schema("cms_ssl_check"), CatalogKey::generate()).await.unwrap();
    let encrypted: i64 = raw
        .query_one("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.client_addr IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(encrypted >= 1, "the catalog's connection uses TLS");
    drop(catalog);

    // A wrong CA is refused by verify-full and verify-ca; require does not check the certificate.
    for mode in ["verify-full", "verify-ca"] {
        let err = connect(&url(&tls, &password, "localhost", &format!("sslmode={mode}&{}", root(&wrong_pem))))
            .await
            .unwrap_err()
            .to_string();
        eprintln!("{mode}, wrong CA: {err}");
        assert!(err.contains(&format!("sslmode {mode}")) && !err.contains(password.expose()), "{mode}: {err}");
    }
    connect(&url(&tls, &password, "localhost", &format!("sslmode=require&{}", root(&wrong_pem)))).await.unwrap();

    // Another host name (the certificate names localhost only): verify-full refuses, verify-ca accepts.
    let err = connect(&url(&tls, &password, "127.0.0.1", &format!("sslmode=verify-full&{}", root(&right_pem))))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("sslmode verify-full") && err.to_lowercase().contains("name"), "{err}");
    connect(&url(&tls, &password, "127.0.0.1", &format!("sslmode=verify-ca&{}", root(&right_pem)))).await.unwrap();

    // A server without TLS: require refuses, prefer and disable connect.
    let plain = LocalCluster::start_temporary(&password).await.unwrap();
    let err = connect(&url(&plain, &password, "localhost", "sslmode=require")).await.unwrap_err().to_string();
    eprintln!("require, no TLS: {err}");
    assert!(err.contains("sslmode require"), "{err}");
    connect(&url(&plain, &password, "localhost", "sslmode=prefer")).await.unwrap();
    connect(&url(&plain, &password, "localhost", "sslmode=disable")).await.unwrap();
    let config = PostgresCatalogConfig::from_url(&url(&plain, &password, "localhost", "")).unwrap();
    let config = config.ssl_mode(SslMode::Disable).schema("cms_plain");
    PostgresCatalog::connect(config, CatalogKey::generate()).await.unwrap();
}
