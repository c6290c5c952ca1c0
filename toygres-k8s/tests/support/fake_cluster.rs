//! What a cluster does around the fake API server ([`FakeApi`]) that the executor only watches:
//! the job controller and the Jobs' containers, the kubelet of the servers, the garbage collector,
//! and a blob store in memory. For the executor conformance suite (`tests/executor_suite.rs`).
//!
//! - [`FakeCluster::run_job`] plays a Job's containers from the environment the executor gave
//!   them: a backup writes an image (objects, then the manifest, format 2) where its `upload`
//!   container's `TOYGRES_IMAGE_ID` says; a restore checks the stored manifest against its `fetch`
//!   container's `TOYGRES_IMAGE_CHECKSUM` and every object against the manifest, as
//!   `restore-fetch.sh` does. When the container is told the image is encrypted
//!   (`TOYGRES_ENCRYPTED=1`), it reads the data key as the kubelet would mount it (the file the
//!   container's `TOYGRES_DATA_KEY_FILE` names, from the volume of the Job's Secret's `data-key`):
//!   the backup seals every object and the manifest, the restore authenticates them; a key that
//!   is not mounted fails the Job, as `seal.sh` does. A pod of the Job logs the byte-moving container's progress line in
//!   the scripts' format; the Job completes once the executor has read that line (a job that runs
//!   while it is watched; at most [`READ_GRACE`] later), or fails at once with the script's error.
//!   A clone image's backup (its `upload` container told `TOYGRES_CLONE_NAME`) stores the roles and
//!   a manifest of format `clone`; a clone's restore Job (container `prepare`) succeeds when its PVC
//!   was provisioned from a ready `VolumeSnapshot`.
//! - [`FakeCluster::snapshot_controller`]: `VolumeSnapshot`s become ready (or fail).
//! - [`FakeCluster::run_server`]: the StatefulSet's pod becomes Ready and the Service gets a load
//!   balancer address.
//! - [`FakeCluster::left_of`]: the objects that still name an id, after the garbage collector has
//!   removed the pods whose owner is gone.
#![allow(dead_code)]

use crate::support::{command_transfer, core, job, FakeApi, NS};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use toygres_core::blob::StoredObject;
use toygres_core::envelope::{object, DataKey};
use toygres_core::manifest::{database_object_name, sha256_hex, DatabaseSql, ManifestDatabase, ManifestObject};
use toygres_core::manifest::{CloneKind, ManifestClone, FORMAT_VERSION, GLOBALS_NAME, MANIFEST_NAME};
use toygres_core::testing::MockBlobStore;
use toygres_core::{Error, ImageFormat, ImageId, ImageType, InstanceSpec, JobKind, JobRef, Manifest, Transfer};
use toygres_k8s::{sealing, K8sConfig, K8sExecutor};

/// The load balancer address the fake gives every Service (TEST-NET-3: nothing listens there).
pub const LOAD_BALANCER_IP: &str = "203.0.113.7";
/// How long a fake Job that moves bytes runs at most before it completes, read or not.
pub const READ_GRACE: Duration = Duration::from_secs(2);
/// The PostgreSQL version of the fake source.
pub const PG_VERSION: &str = "15.18";

/// Objects of the in-memory blob store by image and name.
type Objects = Arc<Mutex<BTreeMap<(ImageId, String), Vec<u8>>>>;

/// The fake API server and what runs around it.
#[derive(Clone)]
pub struct FakeCluster {
    pub api: FakeApi,
    objects: Objects,
}

impl FakeCluster {
    /// A fake cluster and an executor with `config` over it, its blob store in memory.
    pub fn start(config: K8sConfig) -> (FakeCluster, K8sExecutor) {
        let objects = Objects::default();
        let (api, executor) = FakeApi::executor_with(memory_blobs(objects.clone()), config);
        (FakeCluster { api, objects }, executor)
    }

    /// Another handle on the blob store the executor's jobs use.
    pub fn blobs(&self) -> MockBlobStore {
        memory_blobs(self.objects.clone())
    }

    /// Runs `job`'s containers to their end (nothing for a Job that is gone or finished).
    pub async fn run_job(&self, job_ref: &JobRef) {
        let path = job(&job_ref.name);
        let Some(object) = self.api.get(&path) else { return };
        if object["status"]["conditions"].as_array().is_some_and(|c| !c.is_empty()) {
            return;
        }
        let uid = object["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        let containers = object["spec"]["template"]["spec"]["containers"].clone();
        let env = |container: &str, name: &str| -> String {
            let all = containers.as_array().into_iter().flatten();
            let found =
                all.filter(|c| c["name"] == container).flat_map(|c| c["env"].as_array().cloned().unwrap_or_default());
            let value =
                found.into_iter().find(|e| e["name"] == name).and_then(|e| e["value"].as_str().map(String::from));
            value.unwrap_or_else(|| panic!("{}: container {container} has no {name}", job_ref.name))
        };
        let has = |container: &str| containers.as_array().into_iter().flatten().any(|c| c["name"] == container);
        let clone_of = |container: &str| {
            let all = containers.as_array().into_iter().flatten().filter(|c| c["name"] == container);
            let env: Vec<Value> = all.flat_map(|c| c["env"].as_array().cloned().unwrap_or_default()).collect();
            let var =
                |name: &str| env.iter().find(|e| e["name"] == name).and_then(|e| e["value"].as_str().map(String::from));
            var("TOYGRES_CLONE_NAME").map(|name| ManifestClone {
                kind: CloneKind::VolumeSnapshot,
                name,
                size: var("TOYGRES_CLONE_SIZE").and_then(|s| s.parse().ok()).unwrap_or(0),
                files: vec![],
                dirs: vec![],
            })
        };
        let (container, step, outcome) = match job_ref.kind {
            JobKind::Backup => ("upload", "backup-upload", {
                let key = self.mounted_key(&object, "upload");
                key.and_then(|key| {
                    let image = env("upload", "TOYGRES_IMAGE_ID");
                    self.backup(&image, &env("upload", "TOYGRES_IMAGE_TYPE"), key.as_ref(), clone_of("upload"))
                })
            }),
            JobKind::Restore if has("prepare") => ("prepare", "restore-clone", self.prepare_clone(&object)),
            JobKind::Restore => ("fetch", "restore-fetch", {
                let key = self.mounted_key(&object, "fetch");
                key.and_then(|key| {
                    let image = env("fetch", "TOYGRES_IMAGE_ID");
                    self.restore(&image, &env("fetch", "TOYGRES_IMAGE_CHECKSUM"), key.as_ref())
                })
            }),
        };
        let pod = format!("{}-fake0", job_ref.name);
        let names: Vec<Value> =
            containers.as_array().into_iter().flatten().map(|c| json!({"name": c["name"]})).collect();
        let labels = json!({"job-name": job_ref.name, "batch.kubernetes.io/controller-uid": uid});
        let owner = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": job_ref.name, "uid": uid}]);
        self.api.put(
            &core("pods", &pod),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": pod, "namespace": NS, "labels": labels, "ownerReferences": owner,
                                "creationTimestamp": "2026-12-01T08:00:00Z"},
                   "spec": {"containers": names}, "status": {"phase": "Running"}}),
        );
        match outcome {
            Err(message) => {
                self.api.set_log(&pod, container, &format!("08:00:01 {step}: ERROR: {message}\n"));
                let failed = json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                    "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
                self.api.modify(&path, |j| j["status"] = failed);
            }
            Ok(bytes) => {
                self.api.set_log(&pod, container, &format!("08:00:01 {step}: toygres-progress: {bytes} {bytes}\n"));
                let read = format!("GET {}/log?container={container}", core("pods", &pod));
                let api = self.api.clone();
                tokio::spawn(async move {
                    let done = json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]});
                    // Once the executor has read the progress line (at most READ_GRACE later: an
                    // executor that never reads it fails the suite's progress check, not its wait),
                    // unless the Job is gone meanwhile (deleted, or created again).
                    let deadline = tokio::time::Instant::now() + READ_GRACE;
                    while api.get(&path).is_some_and(|j| j["metadata"]["uid"] == uid.as_str()) {
                        if api.served(&read) || tokio::time::Instant::now() >= deadline {
                            api.modify(&path, |j| j["status"] = done);
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                });
            }
        }
    }

    /// The data key `container` of `job` reads, as the kubelet mounts it: `None` for a container
    /// not told the image is encrypted; an error (the job fails closed) when the key file the
    /// container names is not the mounted `data-key` of the Job's Secret.
    fn mounted_key(&self, job: &Value, container: &str) -> Result<Option<DataKey>, String> {
        let pod = &job["spec"]["template"]["spec"];
        let all = pod["containers"].as_array().cloned().unwrap_or_default();
        let c = all.iter().find(|c| c["name"] == container).ok_or_else(|| format!("no container {container}"))?;
        let var = |name: &str| {
            let env = c["env"].as_array().cloned().unwrap_or_default();
            env.iter().find(|e| e["name"] == name).and_then(|e| e["value"].as_str().map(String::from))
        };
        if var(sealing::ENCRYPTED_VAR).as_deref() != Some("1") {
            return Ok(None);
        }
        let missing = |why: &str| {
            format!("the image is encrypted but its key file is missing or unreadable ({why}); nothing was moved")
        };
        let file = var(sealing::KEY_FILE_VAR).ok_or_else(|| missing("no TOYGRES_DATA_KEY_FILE"))?;
        let (dir, item) = file.rsplit_once('/').ok_or_else(|| missing("not a path"))?;
        let mounts = c["volumeMounts"].as_array().cloned().unwrap_or_default();
        let mount = mounts.iter().find(|m| m["mountPath"] == dir).ok_or_else(|| missing("not mounted"))?;
        let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
        let volume = volumes.iter().find(|v| v["name"] == mount["name"]).ok_or_else(|| missing("no volume"))?;
        let secret_name = volume["secret"]["secretName"].as_str().ok_or_else(|| missing("not a Secret"))?;
        let items = volume["secret"]["items"].as_array().cloned().unwrap_or_default();
        let key = items.iter().find(|i| i["path"] == item).ok_or_else(|| missing("no such item"))?;
        let secret = self.api.get(&core("secrets", secret_name)).ok_or_else(|| missing("no Secret"))?;
        let data = secret["data"][key["key"].as_str().unwrap_or_default()].clone();
        let hex: k8s_openapi::ByteString = serde_json::from_value(data).map_err(|_| missing("no such key"))?;
        let hex = String::from_utf8(hex.0).map_err(|_| missing("not text"))?;
        DataKey::from_hex(&hex).map(Some).map_err(|e| format!("the key file does not hold a data key: {e}"))
    }

    /// The backup's containers: an image of the fake source, its bytes moved, every object and the
    /// manifest sealed under `key` when it has one.
    /// A clone image's backup (`clone`: what its `upload` container was told of the snapshot)
    /// stores the roles and a manifest of format `clone` naming it.
    fn backup(
        &self,
        image: &str,
        image_type: &str,
        key: Option<&DataKey>,
        clone: Option<ManifestClone>,
    ) -> Result<u64, String> {
        let image: ImageId = image.parse().map_err(|e| format!("TOYGRES_IMAGE_ID {image}: {e:?}"))?;
        let image_type: ImageType = serde_json::from_value(json!(image_type)).map_err(|e| e.to_string())?;
        let mut objects = self.objects.lock().unwrap();
        let mut store = |name: &str, plain: &[u8]| {
            let bytes = match key {
                Some(key) => object::seal_all(key, image, name, plain),
                None => plain.to_vec(),
            };
            let (size, sha256) = (bytes.len() as u64, sha256_hex(&bytes));
            objects.insert((image, name.to_string()), bytes);
            ManifestObject { name: name.into(), size, sha256, raw_size: Some(plain.len() as u64) }
        };
        let globals = store(GLOBALS_NAME, b"-- the roles of the fake source\n");
        let (databases, moved) = if clone.is_some() {
            (vec![], globals.size)
        } else {
            let dump = store(&database_object_name(0), b"-- a fake dump of database postgres\n");
            let moved = globals.size + dump.size;
            let database = ManifestDatabase {
                name: "postgres".into(),
                owner: "postgres".into(),
                object: dump,
                sql: DatabaseSql::default(),
                allow_connections: true,
            };
            (vec![database], moved)
        };
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            image_id: image,
            pg_version: PG_VERSION.into(),
            image_type,
            format: if clone.is_some() { ImageFormat::Clone } else { ImageFormat::Logical },
            compression: "zstd".into(),
            globals,
            databases,
            archives: vec![],
            created_at: "2026-12-01T08:00:00Z".parse().unwrap(),
            cluster_locale: None,
            dump_version: Some(PG_VERSION.into()),
            clone,
            wal: None,
        };
        objects.insert((image, MANIFEST_NAME.to_string()), manifest.stored_bytes(key));
        Ok(moved)
    }

    /// The restore's `fetch` container: verifies the image as `restore-fetch.sh` does, and opens
    /// every object under `key` when it has one, as its stream to the load does.
    fn restore(&self, image: &str, checksum: &str, key: Option<&DataKey>) -> Result<u64, String> {
        let image: ImageId = image.parse().map_err(|e| format!("TOYGRES_IMAGE_ID {image}: {e:?}"))?;
        let objects = self.objects.lock().unwrap();
        let stored = |name: &str| objects.get(&(image, name.to_string()));
        let incomplete = |name: &str| format!("image {image} is incomplete: {name} is missing");
        let bytes = stored(MANIFEST_NAME).ok_or_else(|| incomplete(MANIFEST_NAME))?;
        let actual = sha256_hex(bytes);
        if actual != checksum {
            return Err(format!(
                "image {image} is corrupted: manifest.json has checksum {actual}, expected {checksum}; restore from another image"
            ));
        }
        let manifest = Manifest::from_stored(image, bytes, key).map_err(|e| e.to_string())?;
        for entry in manifest.objects() {
            let bytes = stored(&entry.name).ok_or_else(|| incomplete(&entry.name))?;
            if sha256_hex(bytes) != entry.sha256 {
                return Err(format!("image {image} is corrupted: {} has another checksum", entry.name));
            }
        }
        if let Some(key) = key {
            for entry in manifest.objects() {
                let bytes = stored(&entry.name).ok_or_else(|| incomplete(&entry.name))?;
                object::open_all(key, image, &entry.name, bytes).map_err(|e| e.to_string())?;
            }
        }
        Ok(manifest.objects().map(|o| o.size).sum())
    }

    /// A clone restore's `prepare` container: its PVC must have been provisioned from a ready
    /// `VolumeSnapshot` (the fake CSI driver's rule); nothing is moved.
    fn prepare_clone(&self, job: &Value) -> Result<u64, String> {
        let volumes = job["spec"]["template"]["spec"]["volumes"].as_array().cloned().unwrap_or_default();
        let claim = volumes.iter().find_map(|v| v["persistentVolumeClaim"]["claimName"].as_str().map(String::from));
        let claim = claim.ok_or("the job mounts no PVC")?;
        let pvc = self.api.get(&core("persistentvolumeclaims", &claim)).ok_or(format!("no PVC {claim}"))?;
        let source = &pvc["spec"]["dataSource"];
        if source["kind"] != "VolumeSnapshot" || source["apiGroup"] != "snapshot.storage.k8s.io" {
            return Err(format!("PVC {claim} was not provisioned from a VolumeSnapshot: {source}"));
        }
        let name = source["name"].as_str().unwrap_or_default();
        let snapshot = self.api.get(&volume_snapshot(name)).ok_or(format!("VolumeSnapshot {name} does not exist"))?;
        if snapshot["status"]["readyToUse"] != true {
            return Err(format!("VolumeSnapshot {name} is not ready"));
        }
        Ok(0)
    }

    /// The snapshot controller, until the handle is aborted: every `VolumeSnapshot` without a
    /// status gets `status` (`{"readyToUse": true, "restoreSize": "20Gi"}`, or one with an error).
    pub fn snapshot_controller(&self, status: Value) -> tokio::task::JoinHandle<()> {
        let api = self.api.clone();
        tokio::spawn(async move {
            let prefix = format!("{}/", volume_snapshot(""));
            loop {
                for path in api.paths().into_iter().filter(|p| p.starts_with(&prefix)) {
                    api.modify(&path, |s| {
                        if s["status"].is_null() {
                            s["status"] = status.clone();
                        }
                    });
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    }

    /// The kubelet: the instance's server pod is Ready, its Service has a load balancer address.
    pub async fn run_server(&self, instance: &InstanceSpec) {
        let name = instance.resource_name();
        let Some(set) = self.api.get(&stateful_set(&name)) else { return };
        let pod = format!("{name}-0");
        let owner =
            json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name, "uid": set["metadata"]["uid"]}]);
        self.api.put(
            &core("pods", &pod),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": pod, "namespace": NS, "ownerReferences": owner,
                                "labels": set["spec"]["template"]["metadata"]["labels"]},
                   "spec": {"containers": [{"name": "postgres"}]},
                   "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        let address = json!({"loadBalancer": {"ingress": [{"ip": LOAD_BALANCER_IP}]}});
        self.api.modify(&core("services", &name), |s| s["status"] = address);
    }

    /// The garbage collector: removes every pod whose owner (a Job or StatefulSet with its uid)
    /// is gone.
    pub fn collect_garbage(&self) {
        let prefix = format!("{}/", crate::support::core_all("pods"));
        for path in self.api.paths().into_iter().filter(|p| p.starts_with(&prefix)) {
            let Some(pod) = self.api.get(&path) else { continue };
            let owner = &pod["metadata"]["ownerReferences"][0];
            let (Some(kind), Some(name)) = (owner["kind"].as_str(), owner["name"].as_str()) else { continue };
            let owner_path = match kind {
                "Job" => job(name),
                "StatefulSet" => stateful_set(name),
                _ => continue,
            };
            if self.api.get(&owner_path).is_none_or(|o| o["metadata"]["uid"] != owner["uid"]) {
                self.api.remove(&path);
            }
        }
    }

    /// Every object whose path holds `fragment` or that is labelled as `instance`'s, after garbage
    /// collection, sorted.
    pub fn left_of(&self, fragment: &str, instance: Option<&str>) -> Vec<String> {
        self.collect_garbage();
        let mut left: Vec<String> = self
            .api
            .paths()
            .into_iter()
            .filter(|p| {
                p.contains(fragment)
                    || instance.is_some_and(|id| {
                        self.api.get(p).is_some_and(|o| o["metadata"]["labels"]["toygres.io/instance"] == id)
                    })
            })
            .map(|p| format!("object {p}"))
            .collect();
        left.sort();
        left
    }
}

/// Path of a VolumeSnapshot.
pub fn volume_snapshot(name: &str) -> String {
    format!("/apis/snapshot.storage.k8s.io/v1/namespaces/{NS}/volumesnapshots/{name}").trim_end_matches('/').to_string()
}

/// Path of a StatefulSet.
pub fn stateful_set(name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{NS}/statefulsets/{name}")
}

/// A blob store over `objects` whose jobs run a command transfer (what the executor requires).
fn memory_blobs(objects: Objects) -> MockBlobStore {
    let mut blobs = MockBlobStore::new();
    blobs.expect_describe().returning(|| "fake blob store in memory".into());
    blobs.expect_transfer().returning(|_| Transfer::Command(command_transfer()));
    let o = objects.clone();
    blobs.expect_stat().returning(move |l| {
        let objects = o.lock().unwrap();
        let of_image = objects.iter().filter(|((id, _), _)| *id == l.image_id);
        Ok(of_image.map(|((_, name), b)| StoredObject { name: name.clone(), size: b.len() as u64 }).collect())
    });
    let o = objects.clone();
    blobs.expect_read().returning(move |l, name| {
        let objects = o.lock().unwrap();
        let found = objects.get(&(l.image_id, name.to_string())).cloned();
        let missing = || Error::ImageIncomplete { image: l.image_id, detail: format!("{name} is missing") };
        found.map(Into::into).ok_or_else(missing)
    });
    let o = objects.clone();
    blobs.expect_write().returning(move |l, name, bytes| {
        o.lock().unwrap().insert((l.image_id, name.to_string()), bytes.to_vec());
        Ok(())
    });
    let o = objects.clone();
    blobs.expect_delete().returning(move |l| {
        o.lock().unwrap().retain(|(id, _), _| *id != l.image_id);
        Ok(())
    });
    blobs.expect_list_images().returning(move || {
        let mut ids: Vec<ImageId> = objects.lock().unwrap().keys().map(|(id, _)| *id).collect();
        ids.dedup();
        Ok(ids)
    });
    blobs.expect_remove_staging().returning(|_| Ok(vec![]));
    blobs
}
