//! TLS to the catalog database with rustls (no OpenSSL): libpq's `sslmode`s and root certificates
//! from a PEM file or the system store.

use crate::backend::BACKEND;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use toygres_core::{Error, Result};

/// libpq's `sslmode`, as far as a client without client certificates can honour it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, plain TCP otherwise; the certificate is not checked. libpq's
    /// default, and the default here.
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked (protects against eavesdropping only).
    Require,
    /// TLS with a certificate signed by a trusted root; any host name.
    VerifyCa,
    /// TLS with a certificate signed by a trusted root and valid for the host connected to. What
    /// a catalog on Azure Database for PostgreSQL should use (its roots are in the system store).
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::InvalidRequest {
                    field: "sslmode",
                    reason: format!("{other:?} is not one of disable, prefer, require, verify-ca, verify-full"),
                })
            }
        })
    }
}

/// Where the trusted root certificates of `verify-ca` and `verify-full` come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RootCerts {
    /// The operating system's store (default).
    #[default]
    System,
    /// A PEM file of one or more certificates (libpq's `sslrootcert`).
    File(PathBuf),
}

/// The rustls client configuration of `mode` (not called for [`SslMode::Disable`]).
pub(crate) fn client_config(mode: SslMode, roots: &RootCerts) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::backend(BACKEND, "cannot set up TLS", e))?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => Arc::new(Unverified(provider)),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(root_store(roots)?), provider)
                .build()
                .map_err(|e| Error::InvalidRequest { field: "sslrootcert", reason: format!("unusable roots: {e}") })?;
            if mode == SslMode::VerifyCa {
                Arc::new(AnyName(webpki))
            } else {
                webpki
            }
        }
    };
    Ok(builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth())
}

fn root_store(roots: &RootCerts) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    let bad = |reason: String| Error::InvalidRequest { field: "sslrootcert", reason };
    match roots {
        RootCerts::File(path) => {
            let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<std::result::Result<_, _>>())
                .map_err(|e| bad(format!("cannot read certificates from {}: {e}", path.display())))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(bad(format!("{} holds no usable certificate", path.display())));
            }
        }
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(bad(
                    "the system's certificate store is empty; install ca-certificates or name a root file".into(),
                ));
            }
        }
    }
    Ok(store)
}

/// `verify-ca`: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require`: any certificate (the handshake's signatures are still checked).
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Splits `sslmode` and `sslrootcert` off a connection URL or key/value string (tokio-postgres
/// knows neither `verify-ca`/`verify-full` nor `sslrootcert`); returns the rest and both values.
pub(crate) fn split_tls_options(url: &str) -> (String, Option<String>, Option<String>) {
    let (mut mode, mut root) = (None, None);
    let mut take = |key: &str, value: &str| match key {
        "sslmode" => {
            mode = Some(value.to_string());
            true
        }
        "sslrootcert" => {
            root = Some(value.to_string());
            true
        }
        _ => false,
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|kv| !kv.split_once('=').is_some_and(|(k, v)| take(k, &percent_decode(v))))
                    .collect();
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => url.to_string(),
        }
    } else {
        let kept: Vec<&str> = url
            .split_whitespace()
            .filter(|kv| !kv.split_once('=').is_some_and(|(k, v)| take(k.trim(), v.trim_matches('\''))))
            .collect();
        kept.join(" ")
    };
    (rest, mode, root)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()),
        ) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_are_split_off_urls_and_key_values() {
        let (rest, mode, root) = split_tls_options(
            "postgresql://u:p@db:5432/cms?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        );
        assert_eq!(rest, "postgresql://u:p@db:5432/cms?application_name=x");
        assert_eq!((mode.as_deref(), root.as_deref()), (Some("verify-full"), Some("/etc/ca.pem")));
        let (rest, mode, root) = split_tls_options("host=db user=u sslmode=verify-ca sslrootcert=/ca.pem dbname=cms");
        assert_eq!(rest, "host=db user=u dbname=cms");
        assert_eq!((mode.as_deref(), root.as_deref()), (Some("verify-ca"), Some("/ca.pem")));
        assert!("verify-everything".parse::<SslMode>().is_err());
    }
}
