//! The instance Secret's certificate against the fake API server: created with the volume, kept
//! by a re-run (never rotated), added to a Secret made before TLS (its password kept), and never
//! generated with `K8sConfig::tls_secret`; an instance ConfigMap made before TLS gets this
//! version's configuration (`ssl = on`, `hostssl … scram-sha-256`).

mod support;

use serde_json::{json, Value};
use support::*;
use toygres_core::{ClusterExecutor, ImageType, InstanceId, InstanceSpec, Password};
use toygres_k8s::tls::{CERT_KEY, KEY_KEY};
use toygres_k8s::K8sConfig;

fn instance() -> InstanceSpec {
    InstanceSpec {
        id: InstanceId::new(),
        name: "orders".into(),
        image_type: ImageType::Stock,
        pg_version: Some("16.4".into()),
        dns_label: None,
    }
}

fn stored(fake: &FakeApi, i: &InstanceSpec) -> Value {
    fake.get(&core("secrets", &i.resource_name())).unwrap()
}

/// A Secret as a version without TLS created it: the password only.
fn pre_tls_secret(fake: &FakeApi, i: &InstanceSpec) {
    let labels = toygres_k8s::names::instance_labels(i.id, "postgres");
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": i.resource_name(), "namespace": NS, "labels": labels},
        "data": {"password": "b2xkLXBhc3N3b3Jk"}});
    fake.put(&core("secrets", &i.resource_name()), secret);
}

/// A ConfigMap as a version without TLS created it: no `ssl = on`, `host … md5` lines.
fn pre_tls_config_map(fake: &FakeApi, i: &InstanceSpec) {
    let labels = toygres_k8s::names::instance_labels(i.id, "postgres");
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": i.resource_name(), "namespace": NS, "labels": labels},
        "data": {"postgresql.conf": "listen_addresses = '*'\nport = 5432\n",
                 "pg_hba.conf": "local all all trust\nhost all all 0.0.0.0/0 md5\n", "initdb.sh": "true\n"}});
    fake.put(&core("configmaps", &i.resource_name()), config);
}

#[tokio::test]
async fn a_config_map_made_before_tls_gets_this_versions_configuration() {
    let (fake, executor) = FakeApi::executor(blobs());
    let i = instance();
    pre_tls_secret(&fake, &i);
    pre_tls_config_map(&fake, &i);
    executor.create_volume(&i, &Password::new(PASSWORD)).await.unwrap();
    let path = core("configmaps", &i.resource_name());
    let config = fake.get(&path).unwrap();
    let rendered = serde_json::to_value(executor.manifests().config_map(&i).unwrap()).unwrap();
    assert_eq!(config["data"], rendered["data"], "the stored ConfigMap is this version's");
    assert!(config["data"]["postgresql.conf"].as_str().unwrap().contains("ssl = on"), "{config}");
    assert!(!config["data"]["pg_hba.conf"].as_str().unwrap().contains("md5"), "{config}");
    assert_eq!(config["metadata"]["labels"]["toygres.io/instance"], json!(i.id.to_string()));
    let calls = fake.take_calls();
    assert!(calls.contains(&format!("PATCH {path}")), "{calls:?}");
    // Once it is current, a re-run changes nothing.
    executor.create_volume(&i, &Password::new(PASSWORD)).await.unwrap();
    assert!(!fake.take_calls().iter().any(|c| c.starts_with("PATCH")));
    assert_eq!(fake.get(&path).unwrap()["data"], rendered["data"]);
}

#[tokio::test]
async fn a_rerun_keeps_the_stored_certificate() {
    let (fake, executor) = FakeApi::executor(blobs());
    let i = instance();
    executor.create_volume(&i, &Password::new(PASSWORD)).await.unwrap();
    let first = stored(&fake, &i);
    assert!(first["data"][CERT_KEY].is_string() && first["data"][KEY_KEY].is_string(), "{first}");
    executor.create_volume(&i, &Password::new(PASSWORD)).await.unwrap();
    assert_eq!(stored(&fake, &i)["data"], first["data"], "a re-run rotates nothing");
    assert!(!fake.take_calls().iter().any(|c| c.starts_with("PATCH")));
}

#[tokio::test]
async fn a_secret_made_before_tls_gets_a_certificate_and_keeps_its_password() {
    let (fake, executor) = FakeApi::executor(blobs());
    let i = instance();
    pre_tls_secret(&fake, &i);
    executor.create_volume(&i, &Password::new(PASSWORD)).await.unwrap();
    let patched = stored(&fake, &i);
    assert_eq!(patched["data"]["password"], json!("b2xkLXBhc3N3b3Jk"), "the stored password stays");
    assert!(patched["data"][CERT_KEY].is_string() && patched["data"][KEY_KEY].is_string(), "{patched}");
    assert_eq!(patched["metadata"]["labels"]["toygres.io/instance"], json!(i.id.to_string()));
    let calls = fake.take_calls();
    assert_eq!(calls.iter().filter(|c| c.starts_with("PATCH")).count(), 1, "{calls:?}");
    // Once it has one, it keeps it.
    executor.create_volume(&i, &Password::new(PASSWORD)).await.unwrap();
    assert_eq!(stored(&fake, &i)["data"], patched["data"]);
}

#[tokio::test]
async fn with_a_configured_tls_secret_no_certificate_is_generated() {
    let config = K8sConfig {
        job_service_account: Some("toygres-jobs".into()),
        load_balancer_source_ranges: vec![CLIENT_RANGE.into()],
        tls_secret: Some("toygres-tls".into()),
        ..K8sConfig::default()
    };
    let (fake, executor) = FakeApi::executor_with(blobs(), config);
    let i = instance();
    pre_tls_secret(&fake, &i);
    executor.create_volume(&i, &Password::new(PASSWORD)).await.unwrap();
    assert!(stored(&fake, &i)["data"].get(CERT_KEY).is_none());
    let fresh = instance();
    executor.create_volume(&fresh, &Password::new(PASSWORD)).await.unwrap();
    assert_eq!(stored(&fake, &fresh)["data"].as_object().unwrap().keys().collect::<Vec<_>>(), ["password"]);
}
