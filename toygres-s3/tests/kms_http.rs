//! The AWS KMS client against a scripted local HTTP server: what it sends (signed, the secret
//! nowhere), retries, time limits and how failures read. Needs no emulator.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use toygres_core::envelope::{DataKey, KeyProvider, WrappedKey};
use toygres_core::{Error, ImageId};
use toygres_s3::kms::AwsKms;

const SECRET: &str = "fake-secret-Hn4";
const TOKEN: &str = "fake-token-Jw8";
const ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// One scripted answer.
enum Answer {
    /// Status and JSON body.
    Json(u16, String),
    /// Read the request, never answer.
    Hang,
}

/// A server answering each connection with the next answer; it records the raw requests.
struct Server {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

async fn read_request(tcp: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tcp.read(&mut buf).await.unwrap();
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .map_or(0, |v| v.parse::<usize>().unwrap());
            if data.len() >= end + 4 + length || n == 0 {
                return text;
            }
        } else if n == 0 {
            return text;
        }
    }
}

async fn serve(answers: Vec<Answer>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        for answer in answers {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let request = read_request(&mut tcp).await;
            seen.lock().unwrap().push(request);
            match answer {
                Answer::Json(status, body) => {
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.1\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    tcp.write_all(head.as_bytes()).await.unwrap();
                    tcp.write_all(body.as_bytes()).await.unwrap();
                }
                Answer::Hang => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            }
        }
    });
    Server { url, requests }
}

fn kms(url: &str) -> AwsKms {
    AwsKms::builder("alias/toygres")
        .region("eu-west-1")
        .endpoint(url)
        .credentials("AKIDTEST", SECRET)
        .session_token(TOKEN)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn described(state: &str) -> Answer {
    Answer::Json(
        200,
        format!(
            r#"{{"KeyMetadata":{{"Arn":"{ARN}","KeyState":"{state}","Enabled":true,"KeySpec":"SYMMETRIC_DEFAULT"}}}}"#
        ),
    )
}

fn reason(e: Error) -> String {
    match e {
        Error::KeyUnavailable { reason } => reason,
        other => panic!("expected KeyUnavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn signs_requests_retries_a_server_error_and_caches_the_arn() {
    let internal = Answer::Json(500, r#"{"__type":"KMSInternalException","message":"try again"}"#.into());
    let server = serve(vec![internal, described("Enabled")]).await;
    let kms = kms(&server.url);
    assert_eq!(kms.current_key_id().await.unwrap(), ARN);
    assert_eq!(kms.current_key_id().await.unwrap(), ARN, "the second answer comes from the cache");
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "one retry after the 500, nothing for the cached ARN");
    let request = requests[1].to_ascii_lowercase();
    assert!(request.starts_with("post / http/1.1\r\n"), "{request}");
    for header in [
        "x-amz-target: trentservice.describekey\r\n",
        "content-type: application/x-amz-json-1.1\r\n",
        "authorization: aws4-hmac-sha256 credential=akidtest/",
        "/eu-west-1/kms/aws4_request, signedheaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, signature=",
        &format!("x-amz-security-token: {}\r\n", TOKEN.to_ascii_lowercase()),
    ] {
        assert!(request.contains(header), "{header} missing in {request}");
    }
    assert!(requests[1].ends_with(r#"{"KeyId":"alias/toygres"}"#), "{}", requests[1]);
    assert!(requests.iter().all(|r| !r.contains(SECRET)), "the secret key is never sent");
}

#[tokio::test]
async fn access_denied_is_not_retried_and_says_what_to_allow() {
    let denied = format!(r#"{{"__type":"AccessDeniedException","message":"echoing {SECRET} for the test"}}"#);
    let server = serve(vec![Answer::Json(400, denied)]).await;
    let err = kms(&server.url).wrap(ImageId::new(), &DataKey::generate()).await.unwrap_err();
    let reason = reason(err);
    assert!(reason.contains("kms:DescribeKey") && reason.contains("AccessDeniedException"), "{reason}");
    assert!(!reason.contains(SECRET) && !reason.contains(TOKEN), "never the credentials: {reason}");
    assert_eq!(server.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_disabled_key_wraps_nothing() {
    let server = serve(vec![described("PendingDeletion")]).await;
    let reason = reason(kms(&server.url).wrap(ImageId::new(), &DataKey::generate()).await.unwrap_err());
    assert!(reason.contains("PendingDeletion") && reason.contains("cancel-key-deletion"), "{reason}");
    assert_eq!(server.requests.lock().unwrap().len(), 1, "no Encrypt after the refusal");
}

#[tokio::test]
async fn a_garbled_answer_is_key_unavailable() {
    let server = serve(vec![Answer::Json(200, "<html>not kms</html>".into())]).await;
    let reason = reason(kms(&server.url).current_key_id().await.unwrap_err());
    assert!(reason.contains("answered unexpectedly"), "{reason}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let server = serve(vec![Answer::Hang]).await;
    let kms = AwsKms::builder("k")
        .endpoint(&server.url)
        .credentials("AKIDTEST", SECRET)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let reason = reason(kms.current_key_id().await.unwrap_err());
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(reason.contains("did not answer in time"), "{reason}");
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_quickly() {
    // A port nothing listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let kms = kms(&format!("http://127.0.0.1:{port}"));
    let started = Instant::now();
    let reason = reason(kms.wrap(ImageId::new(), &DataKey::generate()).await.unwrap_err());
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(reason.contains("cannot reach AWS KMS") && reason.contains(&port.to_string()), "{reason}");
    assert!(!reason.contains(SECRET), "{reason}");
}

#[tokio::test]
async fn another_providers_key_is_refused_without_a_request() {
    let server = serve(vec![]).await;
    let wrapped =
        WrappedKey { provider: "local".into(), key_id: "20250101-000000-abcdef".into(), ciphertext: vec![1; 40] };
    let reason = reason(kms(&server.url).unwrap(ImageId::new(), &wrapped).await.unwrap_err());
    assert!(reason.contains("\"local\" provider") && reason.contains("AWS KMS key alias/toygres"), "{reason}");
    assert!(server.requests.lock().unwrap().is_empty());
}

#[test]
fn debug_and_describe_hide_the_secret() {
    let kms = kms("http://127.0.0.1:5000");
    for shown in [format!("{kms:?}"), format!("{kms:#?}"), kms.describe()] {
        assert!(!shown.contains(SECRET) && !shown.contains(TOKEN), "{shown}");
    }
    assert!(format!("{kms:?}").contains("AKIDTEST"));
    assert_eq!(kms.describe(), "AWS KMS key alias/toygres in eu-west-1 at http://127.0.0.1:5000/");
}
