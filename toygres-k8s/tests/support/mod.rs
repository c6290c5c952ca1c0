//! A fake Kubernetes API server behind kube's `Client` (a tower-test mock service): it keeps objects
//! in memory, answers create (409 when the name exists), get, list by label selector (`key=value`
//! and `key` terms), delete (404 when absent), server-side apply and pod logs, and records every
//! call.
#![allow(dead_code)]

pub mod events;
pub mod golden;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use toygres_core::testing::MockBlobStore;
use toygres_core::{CommandTransfer, Password, Transfer};
use toygres_k8s::{K8sConfig, K8sExecutor, ServiceExposure};

pub const NS: &str = "toygres";
pub const PASSWORD: &str = "Sup3r-S3cret-Pa55word";
pub const SAS: &str = "sv=2024-01-01&sig=SAS-S3CRET-TOKEN";
/// The client range of the tests' LoadBalancer configurations (`K8sConfig::validate` requires one).
pub const CLIENT_RANGE: &str = "203.0.113.0/24";
/// The data key of the encrypted job specs of these tests (64 hex digits).
pub const DATA_KEY_HEX: &str = "c4f1e5b20d9a7c3e8f6b1a0d2e4c6b8a9f7e5d3c1b0a29384756afbecd102938";

/// [`DATA_KEY_HEX`] as a data key.
pub fn data_key() -> toygres_core::envelope::DataKey {
    toygres_core::envelope::DataKey::from_hex(DATA_KEY_HEX).unwrap()
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    logs: BTreeMap<String, String>,
    calls: Vec<String>,
    bodies: Vec<(String, String)>,
    uids: u64,
}

/// The fake server's state, shared with the test.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn query(uri: &http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), decode(v))))
        .collect()
}

fn status(code: u16, reason: &str, message: String) -> (u16, Vec<u8>) {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code});
    (code, body.to_string().into_bytes())
}

/// Whether `object` has every `key=value` of a label selector, and every label a bare `key` term
/// names (whatever its value).
fn matches(object: &Value, selector: &str) -> bool {
    let labels = &object["metadata"]["labels"];
    selector.split(',').filter(|s| !s.is_empty()).all(|term| match term.split_once('=') {
        Some((k, v)) => labels[k].as_str() == Some(v),
        None => labels[term].is_string(),
    })
}

/// Whether `object` has every `a.b=value` of a field selector.
fn fields_match(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (path, v) = term.split_once('=').unwrap();
        path.split('.').fold(object, |o, key| &o[key]).as_str() == Some(v)
    })
}

impl FakeApi {
    /// A fake server and an executor talking to it (LoadBalancer exposure in `westus2`).
    pub fn executor(blobs: MockBlobStore) -> (FakeApi, K8sExecutor) {
        let config = K8sConfig {
            exposure: ServiceExposure::LoadBalancer { region: Some("westus2".into()) },
            job_service_account: Some("toygres-jobs".into()),
            load_balancer_source_ranges: vec![CLIENT_RANGE.into()],
            ..K8sConfig::default()
        };
        Self::executor_with(blobs, config)
    }

    /// A fake server and an executor with `config`.
    pub fn executor_with(blobs: MockBlobStore, config: K8sConfig) -> (FakeApi, K8sExecutor) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = FakeApi::default();
        let server = fake.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap();
                let (code, body, text) = server.handle(&parts.method, &parts.uri, &bytes);
                let mut response = Response::builder().status(StatusCode::from_u16(code).unwrap());
                response = response.header("content-type", if text { "text/plain" } else { "application/json" });
                respond.send_response(response.body(Body::from(body)).unwrap());
            }
        });
        let client = kube::Client::new(service, NS);
        let executor = K8sExecutor::new(client, config, Arc::new(blobs)).unwrap();
        (fake, executor)
    }

    fn handle(&self, method: &Method, uri: &http::Uri, body: &[u8]) -> (u16, Vec<u8>, bool) {
        let path = uri.path().to_string();
        let q = query(uri);
        let mut state = self.state.lock().unwrap();
        let mut call = format!("{method} {path}");
        if let Some(selector) = q.get("labelSelector") {
            call.push_str(&format!("?labelSelector={selector}"));
        }
        if let Some(selector) = q.get("fieldSelector") {
            call.push_str(&format!("?fieldSelector={selector}"));
        }
        if let Some(container) = q.get("container") {
            call.push_str(&format!("?container={container}"));
        }
        if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
            call.push_str("?watch=true");
        }
        state.calls.push(call);
        state.bodies.push((path.clone(), String::from_utf8_lossy(body).into_owned()));
        if path.ends_with("/log") {
            let key = format!("{}/{}", path.trim_end_matches("/log"), q.get("container").cloned().unwrap_or_default());
            return match state.logs.get(&key) {
                Some(text) => (200, text.clone().into_bytes(), true),
                None => {
                    let (c, b) = status(400, "BadRequest", "container is waiting to start".into());
                    (c, b, false)
                }
            };
        }
        let (code, out) = match *method {
            Method::POST => {
                let mut object: Value = serde_json::from_slice(body).unwrap();
                let key = format!("{path}/{}", object["metadata"]["name"].as_str().unwrap());
                // Like the API server, every created object gets a uid.
                state.uids += 1;
                object["metadata"]["uid"] = json!(format!("uid-{}", state.uids));
                match state.objects.entry(key) {
                    std::collections::btree_map::Entry::Occupied(e) => {
                        status(409, "AlreadyExists", format!("{} already exists", e.key()))
                    }
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(object.clone());
                        (201, object.to_string().into_bytes())
                    }
                }
            }
            Method::PATCH => {
                let object: Value = serde_json::from_slice(body).unwrap();
                state.objects.insert(path.clone(), object.clone());
                (200, object.to_string().into_bytes())
            }
            Method::GET if q.contains_key("labelSelector") || q.contains_key("fieldSelector") => {
                let prefix = format!("{path}/");
                let labels = q.get("labelSelector").cloned().unwrap_or_default();
                let fields = q.get("fieldSelector").cloned().unwrap_or_default();
                let items: Vec<&Value> = state
                    .objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                    .filter(|(_, o)| matches(o, &labels) && fields_match(o, &fields))
                    .map(|(_, o)| o)
                    .collect();
                let list =
                    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items});
                (200, list.to_string().into_bytes())
            }
            Method::GET => match state.objects.get(&path) {
                Some(object) => (200, object.to_string().into_bytes()),
                None => status(404, "NotFound", format!("{path} not found")),
            },
            Method::DELETE => match state.objects.remove(&path) {
                Some(object) => {
                    // The garbage collector, at once: the pods the object owned go with it.
                    let uid = object["metadata"]["uid"].clone();
                    let owned = |o: &Value| {
                        o["metadata"]["ownerReferences"].as_array().is_some_and(|r| r.iter().any(|r| r["uid"] == uid))
                    };
                    if !uid.is_null() {
                        state.objects.retain(|p, o| !(p.contains("/pods/") && owned(o)));
                    }
                    (200, object.to_string().into_bytes())
                }
                None => status(404, "NotFound", format!("{path} not found")),
            },
            _ => status(405, "MethodNotAllowed", format!("{method} not supported")),
        };
        (code, out, false)
    }

    /// Every call so far as `METHOD path[?labelSelector=..|?container=..]`, and forgets them.
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut self.state.lock().unwrap().calls)
    }

    /// Whether `call` (as [`FakeApi::take_calls`] shows it) was served, forgetting none.
    pub fn served(&self, call: &str) -> bool {
        self.state.lock().unwrap().calls.iter().any(|c| c == call)
    }

    /// Changes the object at `path` with `change`, if it exists; returns whether it did.
    pub fn modify(&self, path: &str, change: impl FnOnce(&mut Value)) -> bool {
        let mut state = self.state.lock().unwrap();
        state.objects.get_mut(path).map(change).is_some()
    }

    /// Every request body so far with its path.
    pub fn bodies(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().bodies.clone()
    }

    /// Stores `object` at `path` (a full object path).
    pub fn put(&self, path: &str, object: Value) {
        self.state.lock().unwrap().objects.insert(path.to_string(), object);
    }

    /// Removes the object at `path`.
    pub fn remove(&self, path: &str) {
        self.state.lock().unwrap().objects.remove(path);
    }

    /// The object at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    /// Paths of every stored object.
    pub fn paths(&self) -> Vec<String> {
        self.state.lock().unwrap().objects.keys().cloned().collect()
    }

    /// Sets the log of `container` of pod `pod`.
    pub fn set_log(&self, pod: &str, container: &str, text: &str) {
        let key = format!("/api/v1/namespaces/{NS}/pods/{pod}/{container}");
        self.state.lock().unwrap().logs.insert(key, text.to_string());
    }
}

/// Path of a core (v1) object.
pub fn core(resource: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{NS}/{resource}/{name}")
}

/// Path of a core (v1) collection.
pub fn core_all(resource: &str) -> String {
    format!("/api/v1/namespaces/{NS}/{resource}")
}

/// Path of a Job.
pub fn job(name: &str) -> String {
    format!("/apis/batch/v1/namespaces/{NS}/jobs/{name}")
}

/// An azcopy-like command transfer with a SAS query and a secret variable.
pub fn command_transfer() -> CommandTransfer {
    CommandTransfer {
        program: "azcopy".into(),
        login: Some(vec!["login".into(), "--login-type=workload".into()]),
        upload_from_stdin: vec!["copy".into(), "{url}".into(), "--from-to".into(), "PipeBlob".into()],
        download_to_stdout: vec!["copy".into(), "{url}".into(), "--from-to".into(), "BlobPipe".into()],
        base_url: "https://acct.blob.core.windows.net/images/images/x".into(),
        url_query: Some(Password::new(SAS)),
        env: vec![("AZCOPY_LOG_LOCATION".into(), "/tmp".into())],
        secret_env: vec![],
    }
}

/// A blob store mock whose transfer is [`command_transfer`].
pub fn blobs() -> MockBlobStore {
    let mut blobs = MockBlobStore::new();
    blobs.expect_describe().returning(|| "azure blob container images".into());
    blobs.expect_transfer().returning(|_| Transfer::Command(command_transfer()));
    blobs.expect_read().returning(|_, _| Err(toygres_core::Error::Corrupt("no image in this mock".into())));
    blobs
}

/// Stores a Warning event `reason: message` about `kind`/`name`, seen now.
pub fn warn(fake: &FakeApi, kind: &str, name: &str, reason: &str, message: &str) {
    let event_name = format!("{name}.{}", reason.to_lowercase());
    fake.put(
        &core("events", &event_name),
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": event_name, "namespace": NS},
               "involvedObject": {"kind": kind, "name": name, "namespace": NS},
               "type": "Warning", "reason": reason, "message": message, "lastTimestamp": events::now()}),
    );
}

/// The backup job of a new image of `source` in `format`, encrypted under `data_key` if any.
pub fn backup_spec(
    source: toygres_core::InstanceSpec,
    format: toygres_core::ImageFormat,
    data_key: Option<toygres_core::envelope::DataKey>,
) -> toygres_core::BackupJobSpec {
    let image = toygres_core::ImageId::new();
    toygres_core::BackupJobSpec {
        image_id: image,
        source,
        source_password: toygres_core::Password::new(PASSWORD),
        location: toygres_core::ImageLocation::for_image(image),
        image_type: toygres_core::ImageType::Stock,
        format,
        data_key,
        from_image: None,
    }
}

/// A restore job of a new image (an arbitrary checksum) into `instance`.
pub fn restore_spec(instance: &toygres_core::InstanceSpec) -> toygres_core::RestoreJobSpec {
    let image = toygres_core::ImageId::new();
    toygres_core::RestoreJobSpec {
        image_id: image,
        location: toygres_core::ImageLocation::for_image(image),
        checksum: format!("sha256:{}", "ab".repeat(32)),
        instance: instance.clone(),
        databases: None,
        data_key: None,
        recovery: None,
    }
}

/// A new instance named `restored` (PostgreSQL 16.4) with `dns_label`.
pub fn restored(dns_label: Option<&str>) -> toygres_core::InstanceSpec {
    toygres_core::InstanceSpec {
        id: toygres_core::InstanceId::new(),
        name: "restored".into(),
        image_type: toygres_core::ImageType::Stock,
        pg_version: Some("16.4".into()),
        dns_label: dns_label.map(str::to_string),
    }
}
