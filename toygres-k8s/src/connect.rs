//! The connection test: one `SELECT 1` as the superuser, over TLS (rustls).
//!
//! The connection's [`ConnectionInfo::ssl_mode`] says what is required: the Kubernetes executor's
//! instances say `require` (libpq's meaning: encrypted, or no connection), so a server that does
//! not do TLS fails the test. [`test_connection`] accepts any server certificate, as `require`
//! does: the instance's certificate is self-signed by default and the test has only the
//! connection's address. [`test_connection_with`] can pin the certificate the server must present
//! (the one in the instance's Secret), which also proves the server is the instance.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::config::SslMode;
use toygres_core::{ConnectionInfo, Error, Password, Result};

/// Which server certificates a connection test accepts.
#[derive(Debug, Clone, Default)]
pub enum ServerTrust {
    /// Any certificate (libpq's `sslmode=require`): the connection is encrypted, the server is not
    /// authenticated. The handshake's signatures are still checked.
    #[default]
    AnyCertificate,
    /// Only a server presenting one of these certificates (DER), e.g. the instance's own from its
    /// Secret.
    Pinned(Vec<CertificateDer<'static>>),
}

impl ServerTrust {
    /// Pins the certificates of `pem` (a Secret's `tls.crt`; with a chain, the server's own is
    /// its first).
    pub fn pinned_pem(pem: &str) -> Result<Self> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::InvalidRequest { field: "tls.crt", reason: format!("not PEM certificates: {e}") })?;
        if certs.is_empty() {
            return Err(Error::InvalidRequest { field: "tls.crt", reason: "holds no PEM certificate".into() });
        }
        Ok(Self::Pinned(certs))
    }
}

/// One connection attempt to `connection` (on its public DNS name when it has one, so the test also
/// proves the name resolves) with `password`, accepting any server certificate; the pipeline's
/// `RetryPolicy` retries it.
pub async fn test_connection(connection: &ConnectionInfo, password: &Password, timeout: Duration) -> Result<()> {
    test_connection_with(connection, password, timeout, &ServerTrust::AnyCertificate).await
}

/// [`test_connection`], accepting the server certificates `trust` names. The TLS mode is the
/// connection's `ssl_mode`: `disable` plaintext only; none or `prefer` TLS when the server offers
/// it (libpq's default); any other (`require`, `verify-ca`, `verify-full`) TLS or no connection.
pub async fn test_connection_with(
    connection: &ConnectionInfo,
    password: &Password,
    timeout: Duration,
    trust: &ServerTrust,
) -> Result<()> {
    let host = connection.dns_name.as_deref().unwrap_or(&connection.host);
    let mode = match connection.ssl_mode.as_deref() {
        Some("disable") => SslMode::Disable,
        None | Some("prefer") => SslMode::Prefer,
        Some(_) => SslMode::Require,
    };
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(connection.port)
        .user(&connection.user)
        .dbname(&connection.database)
        .password(password.expose())
        .connect_timeout(timeout)
        .ssl_mode(mode)
        .application_name("toygres-connection-test");
    let fail = |what: &str, e: tokio_postgres::Error| {
        let message = toygres_core::error::redact(&error_chain(&e), password.expose());
        let advice = if message.contains("does not support TLS") {
            "the server accepts no TLS connection: its ConfigMap's postgresql.conf must set ssl = on with a \
             certificate (an instance deployed before TLS: restore it again)"
        } else if message.contains("no pg_hba.conf entry") && message.contains("no encryption") {
            "the server refuses plaintext connections: connect with sslmode=require"
        } else if message.contains("certificate") || message.contains("TLS") {
            "the server's certificate is not the one expected: check the instance's Secret (tls.crt)"
        } else {
            "check the Service and the instance's logs"
        };
        Error::backend_msg(
            crate::api::BACKEND,
            format!("{what} {host}:{} failed: {message}; {advice}", connection.port),
        )
    };
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(client_config(trust)?);
    let (client, conn) = config.connect(tls).await.map_err(|e| fail("connecting to", e))?;
    let driver = tokio::spawn(conn);
    let result = client.simple_query("SELECT 1").await.map_err(|e| fail("SELECT 1 on", e));
    drop(client);
    let _ = driver.await;
    result.map(|_| ())
}

/// `e` and its causes (tokio-postgres says only "db error" or "error performing TLS handshake"; the
/// server's message or the TLS failure is the cause).
fn error_chain(e: &tokio_postgres::Error) -> String {
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        message.push_str(&format!(": {c}"));
        cause = c.source();
    }
    message
}

fn client_config(trust: &ServerTrust) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::backend(crate::api::BACKEND, "cannot set up TLS", e))?;
    let pinned = match trust {
        ServerTrust::AnyCertificate => None,
        ServerTrust::Pinned(certs) => Some(certs.clone()),
    };
    let verifier = Arc::new(Verifier { provider, pinned });
    Ok(builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth())
}

/// Accepts any certificate or only pinned ones; checks the handshake's signatures either way.
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    pinned: Option<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match &self.pinned {
            Some(pinned) if !pinned.iter().any(|c| c.as_ref() == end_entity.as_ref()) => {
                Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
