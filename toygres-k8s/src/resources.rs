//! [`Resources`]: requests and limits of every container toygres renders, and what is derived from
//! them so the processes inside fit their limits.
//!
//! Every container gets a CPU request (and a CPU limit when one is configured), a memory request
//! equal to its memory limit (no overcommit: the kubelet neither OOM-kills nor evicts a container
//! below its request first) and an ephemeral-storage request and limit. Three roles:
//!
//! | role | containers | default |
//! |---|---|---|
//! | [`Resources::server`] | the instance's `postgres` | 250m CPU, 1Gi memory, 256Mi/1Gi ephemeral |
//! | [`Resources::job_postgres`] | the jobs' PostgreSQL containers: `dump`, `load`, `prepare` | 250m CPU, 1Gi memory, 256Mi/1Gi ephemeral |
//! | [`Resources::job_toolbox`] | the jobs' toolbox containers: `upload`, `fetch` | 250m CPU, 1Gi memory, 256Mi/1Gi ephemeral |
//!
//! Derived from the limits:
//! - **azcopy** (toolbox containers): `AZCOPY_BUFFER_GB` is a quarter of the memory limit
//!   ([`azcopy_buffer_bytes`]; azcopy's own default is 0.5 GiB per CPU *of the node*, up to 16 GiB,
//!   whatever the container's limit), and `AZCOPY_CONCURRENCY_VALUE` one connection per 16 MiB block
//!   that buffer holds, between 4 and 64 ([`azcopy_concurrency`]; azcopy's default is 16 per CPU of
//!   the node, up to 300). A blob store's own concurrency (`AzcopySettings::concurrency`) wins; its
//!   own buffer size never does. `zstd` runs as many threads as the container has CPUs
//!   ([`threads`]), not one per CPU of the node.
//! - **The load server** (the restore's `load` container): `maintenance_work_mem` is a quarter of the
//!   memory limit, at most 2 GiB ([`maintenance_work_mem_mb`]): one index is built at a time
//!   (`pg_restore` runs one connection), so the server needs `shared_buffers` (128 MB) plus one
//!   `maintenance_work_mem`, and `pg_restore`, `psql` and the page cache share the rest.

use crate::manifests::container;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::EnvVar;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use toygres_core::{Error, Result};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// The block size the concurrency is derived for: toygres-azure's default `block_size_mb`.
const BLOCK: u64 = 16 * MIB;

/// Requests and limits of one container, as Kubernetes quantities. A field left out of a
/// configuration file takes its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerResources {
    /// CPU request, e.g. `"250m"`.
    pub cpu: String,
    /// CPU limit (`None`, the default: none, so the container is never throttled while the node
    /// has idle CPU; set it when a namespace quota on `limits.cpu` requires one).
    pub cpu_limit: Option<String>,
    /// Memory request and limit (the same, so the container is not overcommitted), e.g. `"1Gi"`.
    /// At least 256Mi.
    pub memory: String,
    /// Ephemeral-storage request (container log, emptyDir scratch space), e.g. `"256Mi"`.
    pub ephemeral_storage: String,
    /// Ephemeral-storage limit, at least 512Mi: the container's scratch emptyDirs are sized from it.
    pub ephemeral_storage_limit: String,
}

impl Default for ContainerResources {
    fn default() -> Self {
        Self {
            cpu: "250m".into(),
            cpu_limit: None,
            memory: "1Gi".into(),
            ephemeral_storage: "256Mi".into(),
            ephemeral_storage_limit: "1Gi".into(),
        }
    }
}

/// Requests and limits per role (see the [module docs](self)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// The instance's PostgreSQL server.
    #[serde(default)]
    pub server: ContainerResources,
    /// The jobs' PostgreSQL containers (`dump`, `load`, `prepare`).
    #[serde(default)]
    pub job_postgres: ContainerResources,
    /// The jobs' toolbox containers (`upload`, `fetch`), which run azcopy.
    #[serde(default)]
    pub job_toolbox: ContainerResources,
}

/// `quantity` in bytes: a Kubernetes quantity such as `1Gi`, `512Mi`, `1.5G` or `1000000`.
pub fn bytes(quantity: &str) -> Option<u64> {
    const SUFFIXES: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (number, factor) =
        SUFFIXES.iter().find_map(|(s, f)| quantity.strip_suffix(s).map(|n| (n, *f))).unwrap_or((quantity, 1.0));
    let value = number_value(number)? * factor;
    (value.is_finite() && value >= 1.0).then_some(value as u64)
}

/// `quantity` in millicores: `250m`, `0.5`, `2`.
pub fn millicores(quantity: &str) -> Option<u64> {
    let value = match quantity.strip_suffix('m') {
        Some(milli) => number_value(milli)?,
        None => number_value(quantity)? * 1000.0,
    };
    (value.is_finite() && value >= 1.0).then_some(value as u64)
}

fn number_value(number: &str) -> Option<f64> {
    let plain = !number.is_empty() && number.chars().all(|c| c.is_ascii_digit() || c == '.');
    plain.then(|| number.parse::<f64>().ok()).flatten()
}

impl ContainerResources {
    /// Checks the quantities; `role` names the setting in the error.
    pub fn validate(&self, role: &'static str) -> Result<()> {
        let bad = |what: String| Error::InvalidRequest { field: role, reason: what };
        let mem = bytes(&self.memory).ok_or_else(|| bad(format!("memory {:?} is not a quantity", self.memory)))?;
        if mem < 256 * MIB {
            return Err(bad(format!("memory {:?} is below 256Mi", self.memory)));
        }
        let cpu = millicores(&self.cpu).ok_or_else(|| bad(format!("cpu {:?} is not a quantity", self.cpu)))?;
        if let Some(limit) = &self.cpu_limit {
            let limit = millicores(limit).ok_or_else(|| bad(format!("cpu_limit {limit:?} is not a quantity")))?;
            if limit < cpu {
                return Err(bad(format!("cpu_limit {:?} is below the cpu request", self.cpu_limit)));
            }
        }
        let eph = |q: &str| bytes(q).ok_or_else(|| bad(format!("ephemeral storage {q:?} is not a quantity")));
        let (request, limit) = (eph(&self.ephemeral_storage)?, eph(&self.ephemeral_storage_limit)?);
        if limit < 512 * MIB || limit < request {
            return Err(bad(format!(
                "ephemeral_storage_limit {:?} must be at least 512Mi and the request",
                self.ephemeral_storage_limit
            )));
        }
        Ok(())
    }

    /// The container's `resources`: requests, and limits of memory (= its request), ephemeral
    /// storage and, if set, CPU.
    pub fn requirements(&self) -> Value {
        let mut limits = json!({"memory": self.memory, "ephemeral-storage": self.ephemeral_storage_limit});
        if let Some(cpu) = &self.cpu_limit {
            limits["cpu"] = json!(cpu);
        }
        json!({
            "requests": {"cpu": self.cpu, "memory": self.memory, "ephemeral-storage": self.ephemeral_storage},
            "limits": limits,
        })
    }

    /// The memory limit in bytes (256 MiB for a quantity [`ContainerResources::validate`] refuses).
    pub fn memory_bytes(&self) -> u64 {
        bytes(&self.memory).unwrap_or(256 * MIB)
    }

    /// `sizeLimit` of the container's scratch emptyDir (`/tmp`): a quarter of its ephemeral-storage
    /// limit, in MiB, so the pod's emptyDirs and logs stay within the sum of its containers' limits.
    pub fn scratch_size(&self) -> String {
        let limit = bytes(&self.ephemeral_storage_limit).unwrap_or(512 * MIB);
        format!("{}Mi", (limit / 4 / MIB).max(64))
    }
}

/// `AZCOPY_BUFFER_GB` of a container whose memory limit is `limit` bytes: a quarter of it (azcopy
/// uses more than the buffer: its slice pool and the HTTP connections).
pub fn azcopy_buffer_bytes(limit: u64) -> u64 {
    limit / 4
}

/// `AZCOPY_CONCURRENCY_VALUE` for a buffer of `buffer` bytes: one connection per 16 MiB block it
/// holds, between 4 and 64.
pub fn azcopy_concurrency(buffer: u64) -> u64 {
    (buffer / BLOCK).clamp(4, 64)
}

/// `maintenance_work_mem` of the load server in MB, for a memory limit of `limit` bytes.
pub fn maintenance_work_mem_mb(limit: u64) -> u64 {
    (limit / 4 / MIB).clamp(16, 2048)
}

/// Threads of a container's multi-threaded tools (`zstd -T`): its CPU limit, or else its request,
/// rounded up, between 1 and 8.
pub fn threads(resources: &ContainerResources) -> u64 {
    let cpu = resources.cpu_limit.as_deref().unwrap_or(&resources.cpu);
    millicores(cpu).unwrap_or(1000).div_ceil(1000).clamp(1, 8)
}

fn var(name: &str, value: String) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value), value_from: None }
}

/// Sets the toolbox container `name` of `job` up for its limits: `AZCOPY_BUFFER_GB` (replacing a
/// transfer's own), `AZCOPY_CONCURRENCY_VALUE` (unless the transfer sets it) and
/// `TOYGRES_THREADS`.
pub(crate) fn tune_toolbox(job: &mut Job, name: &str, resources: &ContainerResources) -> Result<()> {
    let env = container(job, name)?.env.get_or_insert_with(Vec::new);
    env.retain(|e| e.name != "AZCOPY_BUFFER_GB");
    let buffer = azcopy_buffer_bytes(resources.memory_bytes());
    let gb = (buffer as f64 / GIB as f64 * 1000.0).floor() / 1000.0;
    env.push(var("AZCOPY_BUFFER_GB", format!("{gb}")));
    if !env.iter().any(|e| e.name == "AZCOPY_CONCURRENCY_VALUE") {
        env.push(var("AZCOPY_CONCURRENCY_VALUE", azcopy_concurrency(buffer).to_string()));
    }
    env.push(var("TOYGRES_THREADS", threads(resources).to_string()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse() {
        assert_eq!(bytes("1Gi"), Some(GIB));
        assert_eq!(bytes("512Mi"), Some(512 * MIB));
        assert_eq!(bytes("1.5G"), Some(1_500_000_000));
        assert_eq!(bytes("1000"), Some(1000));
        for bad in ["", "Gi", "1 Gi", "-1Gi", "1Qi", "1e3"] {
            assert_eq!(bytes(bad), None, "{bad}");
        }
        assert_eq!(millicores("250m"), Some(250));
        assert_eq!(millicores("0.5"), Some(500));
        assert_eq!(millicores("2"), Some(2000));
        assert_eq!(millicores("lots"), None);
    }

    #[test]
    fn derived_settings_follow_the_limits() {
        assert_eq!(azcopy_buffer_bytes(GIB), 256 * MIB);
        assert_eq!(azcopy_concurrency(256 * MIB), 16);
        assert_eq!(azcopy_concurrency(64 * MIB), 4);
        assert_eq!(azcopy_concurrency(16 * GIB), 64);
        assert_eq!(maintenance_work_mem_mb(GIB), 256);
        assert_eq!(maintenance_work_mem_mb(64 * GIB), 2048);
        let mut r = ContainerResources::default();
        assert_eq!(threads(&r), 1);
        r.cpu_limit = Some("2500m".into());
        assert_eq!(threads(&r), 3);
        assert_eq!(r.scratch_size(), "256Mi");
    }

    #[test]
    fn a_configuration_names_only_what_it_changes() {
        let resources: Resources = serde_json::from_str(r#"{"server": {"memory": "8Gi"}}"#).unwrap();
        assert_eq!(resources.server, ContainerResources { memory: "8Gi".into(), ..Default::default() });
        assert_eq!(resources.job_toolbox, ContainerResources::default());
    }

    #[test]
    fn bad_resources_are_refused() {
        let ok = ContainerResources::default();
        ok.validate("resources.server").unwrap();
        for bad in [
            ContainerResources { memory: "128Mi".into(), ..ok.clone() },
            ContainerResources { cpu: "lots".into(), ..ok.clone() },
            ContainerResources { cpu_limit: Some("100m".into()), ..ok.clone() },
            ContainerResources { ephemeral_storage_limit: "100Mi".into(), ..ok.clone() },
            ContainerResources { ephemeral_storage: "2Gi".into(), ..ok.clone() },
        ] {
            assert!(matches!(bad.validate("x"), Err(Error::InvalidRequest { field: "x", .. })), "{bad:?}");
        }
    }
}
