//! TLS of the instances: every server runs with `ssl = on` and accepts only TLS connections
//! authenticated with `scram-sha-256` ([`crate::manifests::PG_HBA_CONF`]).
//!
//! The certificate and key come from a Secret mounted read-only at [`MOUNT_PATH`] (mode 0640,
//! `root:<fsGroup>`, which PostgreSQL accepts for a key owned by root):
//! - by default the instance's own Secret, where [`crate::Manifests::instance_secret`] stores a
//!   self-signed certificate generated for the instance's Service names ([`server_names`]) when
//!   the volume is created. The Secret is created once ("already exists with our labels" is
//!   success), so a re-run never rotates a certificate already stored; a Secret without one (made
//!   by a version without TLS) gets one added;
//! - with [`crate::K8sConfig::tls_secret`], that `kubernetes.io/tls` Secret (e.g. one cert-manager
//!   issues) for every instance. **Every server pod then mounts the same private key**, and each
//!   instance's superuser can read it (`pg_read_file`, `COPY … PROGRAM`) and impersonate every
//!   other instance, even to `verify-full` clients when the certificate is a wildcard: only for
//!   installations whose instances all belong to one tenant ([`warn_if_shared_key`]).
//!
//! Clients connect with `sslmode=require` (what [`toygres_core::ConnectionInfo::ssl_mode`] says);
//! to verify the server too, use `sslmode=verify-full` with the certificate from the Secret as
//! `sslrootcert` (see `docs/azure-aks-tls.md`).

use crate::config::{K8sConfig, ServiceExposure};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams};
use std::collections::BTreeMap;
use std::fmt;
use toygres_core::{Error, InstanceSpec, Password, Result};

/// Secret key of the server certificate (PEM), as in a `kubernetes.io/tls` Secret.
pub const CERT_KEY: &str = "tls.crt";
/// Secret key of the server's private key (PEM), as in a `kubernetes.io/tls` Secret.
pub const KEY_KEY: &str = "tls.key";
/// Where the server pod mounts the certificate and key.
pub const MOUNT_PATH: &str = "/etc/toygres-tls";
/// The `sslmode` of the instances' connection strings.
pub const SSL_MODE: &str = "require";

/// What is logged (a warning) when [`K8sConfig::tls_secret`] is set.
pub const SHARED_KEY_WARNING: &str = "K8sConfig::tls_secret is set: every instance's server mounts the same \
     private key, which each instance's superuser can read (pg_read_file, COPY ... PROGRAM) to impersonate \
     every other instance, even to verify-full clients with a wildcard certificate; use it only when all \
     instances belong to one tenant, otherwise unset it to give each instance its own certificate";

/// Logs [`SHARED_KEY_WARNING`] as a warning when `config` names a shared [`K8sConfig::tls_secret`]
/// (for the executor's constructor, once per executor); returns whether it did.
pub fn warn_if_shared_key(config: &K8sConfig) -> bool {
    match &config.tls_secret {
        Some(secret) => {
            tracing::warn!(tls_secret = %secret, "{SHARED_KEY_WARNING}");
            true
        }
        None => false,
    }
}

/// The TLS lines of the instances' `postgresql.conf`.
pub(crate) fn postgresql_conf() -> String {
    format!("ssl = on\nssl_cert_file = '{MOUNT_PATH}/{CERT_KEY}'\nssl_key_file = '{MOUNT_PATH}/{KEY_KEY}'\n")
}

/// The Secret the server pod of `instance` mounts the certificate from: [`K8sConfig::tls_secret`]
/// when set, else the instance's own Secret.
pub fn secret_name(config: &K8sConfig, instance: &InstanceSpec) -> String {
    config.tls_secret.clone().unwrap_or_else(|| instance.resource_name())
}

/// The public DNS name of `instance`'s Service on Azure (`<dns_label>.<region>.cloudapp.azure.com`),
/// when it is a LoadBalancer with a region and the instance has a DNS label.
pub fn azure_dns_name(config: &K8sConfig, instance: &InstanceSpec) -> Option<String> {
    match (&config.exposure, &instance.dns_label) {
        (ServiceExposure::LoadBalancer { region: Some(region) }, Some(label)) => {
            Some(format!("{label}.{region}.cloudapp.azure.com"))
        }
        _ => None,
    }
}

/// The names a generated certificate of `instance` is valid for: its Service's in-cluster names
/// (`<name>`, `<name>.<namespace>`, `<name>.<namespace>.svc` and, with
/// [`K8sConfig::cluster_domain`], the full name) and its Azure DNS name when it has one. Not the
/// LoadBalancer's IP, which is unknown when the certificate is made: a client connecting by IP
/// verifies the certificate itself (`verify-ca`), not the name.
pub fn server_names(config: &K8sConfig, instance: &InstanceSpec) -> Vec<String> {
    let name = instance.resource_name();
    let namespace = &config.namespace;
    let mut names = vec![name.clone(), format!("{name}.{namespace}"), format!("{name}.{namespace}.svc")];
    let full = config.cluster_host(instance);
    if !names.contains(&full) {
        names.push(full);
    }
    names.extend(azure_dns_name(config, instance));
    names
}

/// A server certificate and its private key, both PEM. `Debug` never shows the key.
#[derive(Clone)]
pub struct ServerCertificate {
    /// The certificate (PEM): public, what clients may pin or trust.
    pub cert_pem: String,
    key_pem: Password,
}

impl fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCertificate").field("cert_pem", &self.cert_pem).field("key_pem", &"<redacted>").finish()
    }
}

impl ServerCertificate {
    /// A new self-signed certificate for `names` (DNS names; the first is also the common name)
    /// with a new ECDSA P-256 key, for TLS servers (extended key usage `serverAuth`). Each call
    /// makes a new key.
    pub fn self_signed(names: &[String]) -> Result<Self> {
        let fail = |e: rcgen::Error| {
            Error::backend_msg(crate::api::BACKEND, format!("cannot generate the instance's TLS certificate: {e}"))
        };
        let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(fail)?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(rcgen::DnType::CommonName, first.clone());
        }
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "toygres");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().map_err(fail)?;
        let cert = params.self_signed(&key).map_err(fail)?;
        Ok(Self { cert_pem: cert.pem(), key_pem: Password::new(key.serialize_pem()) })
    }

    /// The private key (PEM).
    pub fn key_pem(&self) -> &str {
        self.key_pem.expose()
    }

    /// The Secret entries [`CERT_KEY`] and [`KEY_KEY`].
    pub fn secret_data(&self) -> BTreeMap<String, ByteString> {
        BTreeMap::from([
            (CERT_KEY.to_string(), ByteString(self.cert_pem.as_bytes().to_vec())),
            (KEY_KEY.to_string(), ByteString(self.key_pem.expose().as_bytes().to_vec())),
        ])
    }
}

/// Adds the certificate of `rendered` (the instance's Secret as this version renders it) to
/// `stored` (the one in the cluster, as the create step returned it) when `stored` has none: a
/// Secret created by a version without TLS, whose instance's pod could not mount it. A stored
/// certificate is never replaced, and the stored password is kept.
pub(crate) async fn add_missing_certificate(api: &Api<Secret>, stored: Secret, rendered: &Secret) -> Result<()> {
    let stored_data = stored.data.unwrap_or_default();
    if stored_data.contains_key(CERT_KEY) && stored_data.contains_key(KEY_KEY) {
        return Ok(());
    }
    let name = stored.metadata.name.clone().unwrap_or_default();
    let mut data = stored_data;
    for key in [CERT_KEY, KEY_KEY] {
        if let Some(value) = rendered.data.as_ref().and_then(|d| d.get(key)) {
            data.insert(key.to_string(), value.clone());
        }
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: stored.metadata.namespace,
            labels: stored.metadata.labels,
            ..ObjectMeta::default()
        },
        data: Some(data),
        type_: stored.type_,
        ..Secret::default()
    };
    api.patch(&name, &PatchParams::apply("toygres").force(), &Patch::Apply(&secret))
        .await
        .map_err(|e| crate::api::error(&format!("adding a TLS certificate to Secret {name}"), e))?;
    tracing::info!(secret = %name, "added a TLS certificate to an instance Secret made before TLS");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use toygres_core::{ImageType, InstanceId};

    fn instance(dns_label: Option<&str>) -> InstanceSpec {
        InstanceSpec {
            id: InstanceId::new(),
            name: "orders".into(),
            image_type: ImageType::Stock,
            pg_version: None,
            dns_label: dns_label.map(String::from),
        }
    }

    #[test]
    fn the_names_are_the_services() {
        let i = instance(Some("orders-db"));
        let name = i.resource_name();
        let config = K8sConfig {
            exposure: ServiceExposure::LoadBalancer { region: Some("westus2".into()) },
            ..K8sConfig::default()
        };
        assert_eq!(
            server_names(&config, &i),
            [
                name.clone(),
                format!("{name}.toygres"),
                format!("{name}.toygres.svc"),
                "orders-db.westus2.cloudapp.azure.com".to_string()
            ]
        );
        // No region or a ClusterIP Service: no public name; a cluster domain adds the full name.
        let no_region = K8sConfig { exposure: ServiceExposure::LoadBalancer { region: None }, ..K8sConfig::default() };
        assert_eq!(server_names(&no_region, &i).len(), 3);
        let cluster = K8sConfig {
            exposure: ServiceExposure::ClusterIp,
            cluster_domain: Some("cluster.local".into()),
            ..K8sConfig::default()
        };
        assert_eq!(server_names(&cluster, &i).last(), Some(&format!("{name}.toygres.svc.cluster.local")));
    }

    /// A writer into a shared buffer, for capturing what is logged.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_shared_tls_secret_is_warned_about() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let shared = K8sConfig { tls_secret: Some("toygres-tls".into()), ..K8sConfig::default() };
        tracing::subscriber::with_default(subscriber, || {
            assert!(!warn_if_shared_key(&K8sConfig::default()));
            assert!(warn_if_shared_key(&shared));
        });
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains("WARN") && log.contains("toygres-tls") && log.contains("same private key"), "{log}");
        assert!(log.contains("one tenant"), "{log}");
    }

    #[test]
    fn a_generated_certificate_holds_the_names_and_a_private_key() {
        let names = vec!["pg-x.toygres.svc".to_string(), "db.westus2.cloudapp.azure.com".to_string()];
        let cert = ServerCertificate::self_signed(&names).unwrap();
        assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"), "{}", cert.cert_pem);
        assert!(cert.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap();
        // The SANs are in the certificate as DNS names (DER IA5Strings).
        for name in &names {
            assert!(der.windows(name.len()).any(|w| w == name.as_bytes()), "{name} missing");
        }
        assert!(!format!("{cert:?}").contains("PRIVATE KEY"));
        let data = cert.secret_data();
        assert_eq!(data.keys().collect::<Vec<_>>(), [CERT_KEY, KEY_KEY]);
        // Each call makes a new key: the Secret, created once, is what keeps an instance's certificate.
        assert_ne!(ServerCertificate::self_signed(&names).unwrap().key_pem(), cert.key_pem());
    }
}
