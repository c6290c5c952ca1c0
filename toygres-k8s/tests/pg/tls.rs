//! The instances' TLS in the script tests: the server certificate and key laid out as the server
//! pod's secret volume holds them.

use super::Postgres;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use toygres_k8s::tls::{ServerCertificate, CERT_KEY, KEY_KEY};

/// Writes a new self-signed certificate (for `localhost`) and its key into `dir` (created, the
/// server's to read) as the pod's secret volume holds them: owned by root, group postgres (the
/// pod's fsGroup), mode 0640, which PostgreSQL accepts for a key owned by root. The tests run as
/// root.
pub fn install_cert(pg: &Postgres, dir: &Path) -> ServerCertificate {
    let cert = ServerCertificate::self_signed(&["localhost".to_string()]).unwrap();
    let dir = pg.dir(dir);
    for (name, text) in [(CERT_KEY, cert.cert_pem.as_str()), (KEY_KEY, cert.key_pem())] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::os::unix::fs::chown(&path, Some(0), Some(pg.gid)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    cert
}
