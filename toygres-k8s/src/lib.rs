//! # toygres-k8s
//!
//! A [`toygres_core::ClusterExecutor`] on Kubernetes (kube + k8s-openapi): instances are StatefulSets
//! on PVCs in one namespace (default `toygres`); images are taken and loaded by Jobs.
//!
//! ## Set-up
//! ```no_run
//! # async fn run(blobs: std::sync::Arc<dyn toygres_core::BlobStore>) -> toygres_core::Result<()> {
//! use toygres_k8s::{K8sConfig, K8sExecutor, ServiceExposure};
//! let config = K8sConfig {
//!     toolbox_image: "myregistry.azurecr.io/toygres-toolbox:1".into(),
//!     job_service_account: Some("toygres-jobs".into()),
//!     exposure: ServiceExposure::LoadBalancer { region: Some("westus2".into()) },
//!     // Who may connect (required with a LoadBalancer; docs/azure-aks-network.md).
//!     load_balancer_source_ranges: vec!["203.0.113.0/24".into()],
//!     ..K8sConfig::default()
//! };
//! // `blobs` is an Azure BlobStore (toygres-azure) whose transfer runs azcopy in the jobs.
//! let executor = K8sExecutor::from_env(config, blobs).await?;
//! # Ok(()) }
//! ```
//! - **Namespace** `toygres` (or [`K8sConfig::namespace`]) must exist.
//! - **Toolbox image** ([`K8sConfig::toolbox_image`]) for the containers that move bytes: bash, coreutils,
//!   sed, `zstd`, `jq`, the transfer program (`azcopy`) and **`toygres-seal`**, this crate's binary
//!   ([`K8sConfig::seal_program`], on `PATH` by default; build it with
//!   `cargo build --release -p toygres-k8s --bin toygres-seal` and copy it into the image, see
//!   [`sealing`] and `docs/azure-aks.md`). No PostgreSQL client: the backup job's `dump`
//!   container runs the **source's** PostgreSQL image ([`PostgresImages`]), so `pg_dump` (or
//!   `pg_basebackup`) is of its major
//!   (a newer one writes archives an older `pg_restore` refuses), and the restore job's `load` container
//!   runs the instance's, so extensions such as pg_durable are present when the dumps are loaded. The two
//!   containers of a job pod run side by side and pass the bytes through FIFOs in a shared emptyDir.
//! - **Pod Security**: every pod meets the "restricted" level (non-root, RuntimeDefault seccomp, no
//!   privilege escalation, no capabilities), mounts no service-account token
//!   (`automountServiceAccountToken: false`; the workload-identity webhook projects its own token,
//!   and only into the toolbox containers), runs on a read-only root filesystem with emptyDirs
//!   where it writes, and has requests and limits of CPU, memory and ephemeral storage
//!   ([`resources`]).
//! - **Workload identity** (AKS): a service account ([`K8sConfig::job_service_account`], required) annotated
//!   with `azure.workload.identity/client-id` of a managed identity federated with it and allowed to read
//!   and write the images container; the job pods carry `azure.workload.identity/use: "true"` and azcopy
//!   authenticates with `AZCOPY_AUTO_LOGIN_TYPE=WORKLOAD` (never `--identity`). The jobs never get the
//!   control plane's `AZURE_CLIENT_ID`/`AZURE_TENANT_ID` ([`transfer::WORKLOAD_IDENTITY_VARIABLES`]): the
//!   webhook sets them from the job service account, so the jobs may use their own identity.
//! - **RBAC** the executor's own identity needs in the namespace: the Role in the workspace's
//!   `deploy/20-control-plane.yaml`, which `tests/rbac.rs` checks grants exactly the calls the
//!   executor makes (every operation driven against the fake API server): `get, list, create,
//!   delete` (and `patch` on PVCs, Secrets and ConfigMaps) on persistentvolumeclaims, secrets, configmaps,
//!   services, statefulsets and jobs; `get, list` on pods, `get` on `pods/log`, `list` on
//!   events; and, only with clone images ([`K8sConfig::volume_snapshot_class`] set), `get, list,
//!   create, delete` on `snapshot.storage.k8s.io` volumesnapshots.
//!
//! ## The manifests
//! YAML templates in `templates/`, rendered by [`render`] (`{{key}}` placeholders take JSON values, so no
//! value can change a manifest's structure) and parsed into k8s-openapi types before they are sent
//! ([`Manifests`] renders them without any API call). Names derive from ids only:
//!
//! | object | name | from |
//! |---|---|---|
//! | PVC, Secret (`password`), ConfigMap, StatefulSet, Service | `pg-<instance-id>` | `create_volume`, `deploy_from_volume` |
//! | backup Job + its Secret (`PGPASSWORD`, transfer secrets, `data-key`) | `backup-<image-id>` | `start_backup_job` |
//! | restore Job + its Secret (transfer secrets, `data-key`) | `restore-<instance-id>` | `start_restore_job` |
//! | `VolumeSnapshot` of a clone image (label `toygres.io/component: clone`) | `snap-<image-id>` | `wait_for_job` of its backup |
//! | probe Job + its Secret (`password`, owned by the Job) of the in-cluster connection test ([`probe`]) | `probe-<digest of the address>` | `test_connection` with [`ConnectionTest::InCluster`] |
//!
//! Every object carries `app.kubernetes.io/managed-by: toygres` and `toygres.io/instance: <id>` (or
//! `toygres.io/image: <id>` for a backup), which `delete_instance` selects on; `list_instances` lists
//! the ids of the instance labels in the namespace, so `Toygres::reconcile` finds the instances
//! without a record. Passwords and SAS tokens reach pods only through `secretKeyRef`, an image's data
//! key only as a file mounted from the job's Secret; no other manifest holds them.
//!
//! The backup job dumps the source through its Service (`pg-<id>.<namespace>.svc:5432`, completed by the
//! pod's DNS search path whatever the cluster domain, so the source must be an instance this executor
//! deployed) with the password from the job's Secret, and writes image format 2 of
//! [`toygres_core::manifest`] (`templates/backup-dump.sh`, `templates/backup-upload.sh`). The restore job
//! checks the manifest against the catalog's checksum, then reads each object it loads once, streaming
//! it into `pg_restore` (nothing staged) while it hashes it, and checks it against the manifest at its
//! end (a plaintext image: verified whole first); only when every object checked out does it stop the
//! server cleanly and leave a marker, so a retried job converges. The control plane therefore reads
//! the manifest and sizes only ([`K8sExecutor`]'s `verifies_while_restoring`). A restore resumed
//! after its instance was deployed (a control-plane restart) starts and waits for no Job again: the
//! pipeline deploys only after the Job succeeded, and the server holds the volume ([`jobs`]). Stuck
//! pods fail their step with the reason ([`diagnose`]); the jobs' progress lines become `Bytes`
//! events ([`progress`]). `docs/azure-aks.md` is the AKS guide.
//!
//! **Encrypted images** ([`sealing`]): when the job spec carries the image's data key (the default
//! for new images), the job's Secret holds it as `data-key`, mounted as a file into the backup's
//! `upload` and the restore's `fetch` container only, whose environment says the image is encrypted
//! and where the key file is (never the key). The upload pipes every object through
//! `toygres-seal seal` before hashing and uploading it (the manifest's sizes and sha256 are those of
//! the stored bytes) and seals `manifest.json` last, so the catalog's checksum is that of the sealed
//! manifest. The fetch checks the stored manifest against the checksum, opens it, verifies every
//! object's stored bytes against it, then streams each through `toygres-seal open` (only
//! authenticated chunks reach `zstd`, `pg_restore` or `tar`; a failure fails the job, and the
//! volume is never marked restored). The format is [`toygres_core::envelope::object`]'s, so an
//! image taken by one executor restores on another; plaintext images restore as before. A job told
//! to encrypt without a usable key or program fails before it moves a byte.
//!
//! **Physical images** ([`toygres_core::ImageFormat::Physical`], [`physical`]): the backup job's `dump`
//! container runs `pg_basebackup -D - -Ft -X fetch -c fast` over a replication connection (the
//! instances' pg_hba allows one for `postgres`: [`manifests::PG_HBA_CONF`]) and the `upload` container
//! streams the tar through zstd and sha256 as `base-00.tar.zst` (`templates/backup-basebackup.sh`); a
//! source with `wal_level=minimal`, no WAL sender or tablespaces fails the job with the reason. The
//! restore job refuses another major than its server's, unpacks the tar into the empty data directory as
//! it reads it once (its checksum checked at its end, before anything is configured or marked) and has it
//! include the instance's
//! configuration; the server replays the archive's WAL when the StatefulSet starts it
//! (`templates/restore-unpack.sh`). A restore of some databases only, or onto an instance whose
//! image runs another major, is refused before the job exists ([`physical::check_restore`]).
//!
//! **Clone images** ([`toygres_core::ImageFormat::Clone`], [`clone`]): a CSI `VolumeSnapshot` of
//! the source's PVC in [`K8sConfig::volume_snapshot_class`], taken once the backup Job has
//! uploaded the roles and checkpointed the source, and awaited until ready; a restore replaces the
//! new instance's empty PVC by one provisioned from it and runs a one-container Job that applies
//! the instance's configuration (nothing is downloaded). `delete_image` deletes the snapshot (clones
//! keep their volumes) and `list_images` lists them for reconcile. Without a snapshot class, clone
//! images are refused with [`toygres_core::Error::UnsupportedFormat`].
#![warn(missing_docs)]

pub mod api;
pub mod clone;
pub mod config;
pub mod connect;
pub mod connection_test;
pub mod diagnose;
mod executor;
pub mod instance;
pub mod jobs;
pub mod manifests;
pub mod names;
pub mod network;
pub mod physical;
pub mod probe;
pub mod progress;
pub mod render;
pub mod resources;
pub mod sealing;
pub mod snapshot;
pub mod tls;
pub mod transfer;
pub mod volume;

pub use config::{ConnectionTest, K8sConfig, PostgresImages, ServiceExposure};
pub use executor::K8sExecutor;
pub use manifests::Manifests;
pub use resources::{ContainerResources, Resources};
