//! AWS Signature Version 4, as much of it as the KMS JSON API needs: one `POST` with a fixed
//! path, no query string, every header signed, the payload hashed.
//!
//! Written here on `hmac` and `sha2` (both already built for toygres-core) instead of pulling in
//! `aws-sigv4`, whose HTTP signing brings the smithy runtime crates along. The tests pin it to
//! AWS's published test-suite signatures and to signatures botocore computes for KMS requests.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The algorithm named in the `Authorization` header.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Who signs, and for which region and service.
pub(crate) struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lowercase hex of SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A header value as SigV4 canonicalizes it: trimmed, runs of spaces collapsed.
fn canonical_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Signer<'_> {
    /// The key of one day's requests: `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
    fn signing_key(&self, date: &str) -> [u8; 32] {
        let secret = zeroize::Zeroizing::new(format!("AWS4{}", self.secret_access_key));
        let k_date = hmac(secret.as_bytes(), date.as_bytes());
        let k_region = hmac(&k_date, self.region.as_bytes());
        let k_service = hmac(&k_region, self.service.as_bytes());
        hmac(&k_service, b"aws4_request")
    }

    /// The `Authorization` header value of a request. `headers` are every header to sign (names
    /// in any case; `host` and `x-amz-date` among them), `amz_date` the `x-amz-date` value
    /// (`YYYYMMDDTHHMMSSZ`), `query` the canonical query string (empty for KMS).
    pub(crate) fn authorization(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
        amz_date: &str,
    ) -> String {
        let mut canonical: Vec<(String, String)> =
            headers.iter().map(|(name, value)| (name.to_ascii_lowercase(), canonical_value(value))).collect();
        canonical.sort();
        let signed_headers = canonical.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(";");
        let header_block: String = canonical.iter().map(|(name, value)| format!("{name}:{value}\n")).collect();
        let request = format!("{method}\n{path}\n{query}\n{header_block}\n{signed_headers}\n{}", sha256_hex(payload));
        let date = amz_date.get(..8).unwrap_or(amz_date);
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let to_sign = format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", sha256_hex(request.as_bytes()));
        let signature = hex::encode(hmac(&self.signing_key(date), to_sign.as_bytes()));
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.access_key_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The credentials of AWS's SigV4 test suite and documentation examples.
    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20150830T123600Z";

    fn signer<'a>(region: &'a str, service: &'a str) -> Signer<'a> {
        Signer { access_key_id: AKID, secret_access_key: SECRET, region, service }
    }

    fn signature(authorization: &str) -> &str {
        authorization.rsplit_once("Signature=").unwrap().1
    }

    #[test]
    fn derives_the_documented_signing_key() {
        // The example of AWS's "Examples of how to derive a signing key for Signature Version 4".
        let key = signer("us-east-1", "iam").signing_key("20120215");
        assert_eq!(hex::encode(key), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
    }

    #[test]
    fn matches_the_aws_test_suite() {
        let s = signer("us-east-1", "service");
        let headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", DATE)];
        // get-vanilla
        let auth = s.authorization("GET", "/", "", &headers, b"", DATE);
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        // post-vanilla
        let auth = s.authorization("POST", "/", "", &headers, b"", DATE);
        assert_eq!(signature(&auth), "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
        // get-vanilla-query-order-key-case (the query given already canonical)
        let auth = s.authorization("GET", "/", "Param1=value1&Param2=value2", &headers, b"", DATE);
        assert_eq!(signature(&auth), "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
    }

    #[test]
    fn signs_kms_requests_as_botocore_does() {
        // Expected values computed with botocore's SigV4Auth (botocore in moto 5.2.5's venv) at
        // the same instant, for the requests this client sends.
        let kms = signer("eu-west-1", "kms");
        let token = "FQoGZXIvYXdzEXAMPLE/token+value==";
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("host", "kms.eu-west-1.amazonaws.com"),
            ("x-amz-date", DATE),
            ("x-amz-security-token", token),
            ("x-amz-target", "TrentService.DescribeKey"),
        ];
        let auth = kms.authorization("POST", "/", "", &headers, br#"{"KeyId":"alias/toygres"}"#, DATE);
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/kms/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, \
             Signature=b9b3376656a578d418b68adfaeaa36e756ba872c3da71fa22cdbe20e571bb234"
        );
        // A host with a port (an emulator) is signed with it; header order does not matter.
        let headers = [
            ("x-amz-target", "TrentService.Encrypt"),
            ("content-type", "application/x-amz-json-1.1"),
            ("host", "127.0.0.1:5000"),
            ("x-amz-date", DATE),
        ];
        let auth = signer("us-east-1", "kms").authorization("POST", "/", "", &headers, br#"{"KeyId":"k"}"#, DATE);
        assert_eq!(signature(&auth), "39b939f816a4991a24f42c84157e6dedaafe81655112e0d21a2d3f35f21b5e28");
        assert!(!auth.contains(SECRET));
    }

    #[test]
    fn canonical_values_are_trimmed_and_collapsed() {
        assert_eq!(canonical_value("  a   b  c "), "a b c");
    }
}
