//! The moto server (`.ci/moto.sh`): S3 and AWS KMS on one port, for the tests of both.
#![allow(dead_code)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The moto server's URL, or `None` (after saying why) outside CI.
pub fn url() -> Option<String> {
    match std::env::var("TOYGRES_S3_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("TOYGRES_S3_URL is not set under CI; run `eval \"$(bash .ci/moto.sh)\"` first")
        }
        Err(_) => {
            eprintln!("skipped: TOYGRES_S3_URL is not set (eval \"$(bash .ci/moto.sh)\")");
            None
        }
    }
}

/// Sends one plain HTTP/1.1 request to moto (it does not check signatures) and returns its
/// status line and body.
async fn request(url: &str, head: &str, body: &str) -> (String, String) {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let mut tcp = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!("{head}Host: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

/// Creates `bucket` with a plain `PUT /<bucket>`.
pub async fn create_bucket(url: &str, bucket: &str) {
    let (status, body) = request(url, &format!("PUT /{bucket} HTTP/1.1\r\n"), "").await;
    assert!(status.starts_with("HTTP/1.1 200"), "creating bucket {bucket}: {status} {body}");
}

/// Calls KMS action `action` (e.g. `CreateKey`) with a JSON `body`; moto picks the service from
/// the credential scope of an unchecked `Authorization` header.
pub async fn kms(url: &str, action: &str, body: &str) -> serde_json::Value {
    let head = format!(
        "POST / HTTP/1.1\r\nX-Amz-Target: TrentService.{action}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/kms/aws4_request, \
         SignedHeaders=host, Signature=0\r\n"
    );
    let (status, body) = request(url, &head, body).await;
    assert!(status.starts_with("HTTP/1.1 200"), "KMS {action}: {status} {body}");
    serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
}
