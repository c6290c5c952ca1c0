//! Short-lived container SAS tokens signed with an account key, for azcopy in account-key and
//! emulator mode (service SAS, signed resource `c`, version 2020-12-06 string-to-sign).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use toygres_core::{Error, Password, Result};

/// SAS version whose string-to-sign [`container_sas`] builds.
const SAS_VERSION: &str = "2020-12-06";
/// Permissions azcopy needs to upload and download blobs: read, create, write, list.
const PERMISSIONS: &str = "rcwl";

/// A container SAS query string (`sv=…&sig=…`, no leading `?`) valid until `expiry`.
pub(crate) fn container_sas(account: &str, container: &str, key: &Password, expiry: DateTime<Utc>) -> Result<Password> {
    let key = STANDARD.decode(key.expose().trim()).map_err(|_| Error::InvalidRequest {
        field: "azure account key",
        reason: "is not valid base64; copy the key from the storage account's access keys".into(),
    })?;
    let se = expiry.to_rfc3339_opts(SecondsFormat::Secs, true);
    let resource = format!("/blob/{account}/{container}");
    // permissions, start, expiry, resource, identifier, IP, protocol, version, signed resource,
    // snapshot time, encryption scope, rscc, rscd, rsce, rscl, rsct.
    let fields = [PERMISSIONS, "", &se, &resource, "", "", "", SAS_VERSION, "c", "", "", "", "", "", "", ""];
    let signature = STANDARD.encode(hmac_sha256(&key, fields.join("\n").as_bytes()));
    Ok(Password::new(format!(
        "sv={SAS_VERSION}&se={}&sr=c&sp={PERMISSIONS}&sig={}",
        query_escape(&se),
        query_escape(&signature)
    )))
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// Percent-encodes what base64 and RFC 3339 put in a query value.
fn query_escape(value: &str) -> String {
    value.replace('%', "%25").replace('+', "%2B").replace('/', "%2F").replace('=', "%3D").replace(':', "%3A")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // Keys longer than a block are hashed first (RFC 4231 case 6).
        let long = hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First");
        let hex: String = long.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }

    #[test]
    fn sas_has_the_expected_fields_and_rejects_bad_keys() {
        let expiry = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap();
        let sas = container_sas("acct", "images", &Password::new(crate::config::EMULATOR_ACCOUNT_KEY), expiry).unwrap();
        let sas = sas.expose();
        assert!(sas.starts_with("sv=2020-12-06&se=2030-01-02T03%3A04%3A05Z&sr=c&sp=rcwl&sig="), "{sas}");
        assert!(!sas["sv=".len()..].contains(['+', '/', ' ']), "{sas}");
        let bad = container_sas("acct", "images", &Password::new("not base64!"), expiry).unwrap_err();
        assert!(!bad.to_string().contains("not base64!"), "{bad}");
    }
}
