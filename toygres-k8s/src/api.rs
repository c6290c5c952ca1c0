//! Idempotent API calls: create (an existing object with our labels is success), delete (absent is
//! success), delete everything matching a label selector, and error mapping.

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use toygres_core::{Error, Result};

/// Backend name in errors.
pub const BACKEND: &str = "kubernetes executor";

/// A kind the executor manages.
pub trait Kind:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned + 'static
{
}
impl<K> Kind for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + 'static
{
}

/// The HTTP status of an API error, if it is one.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Maps a kube error while `doing` something to a toygres error that says what to check.
pub fn error(doing: &str, e: kube::Error) -> Error {
    let hint = match status_code(&e) {
        Some(401) | Some(403) => "; grant the executor's service account the RBAC rules in toygres-k8s's docs",
        Some(404) => "; check that the namespace exists",
        Some(_) => "",
        None => "; check that the Kubernetes API server is reachable (KUBECONFIG or in-cluster config)",
    };
    Error::backend(BACKEND, format!("{doing}{hint}"), e)
}

fn kind_name<K: Kind>() -> String {
    K::kind(&()).to_string()
}

/// Creates `object`. If it already exists and `owned(existing)` holds, that is success (a re-run after
/// a crash); otherwise a name conflict error. Returns the object as the API server has it.
pub async fn create<K: Kind>(api: &Api<K>, object: &K, owned: impl Fn(&K) -> bool) -> Result<K> {
    let name = object.name_any();
    let kind = kind_name::<K>();
    match api.create(&PostParams::default(), object).await {
        Ok(created) => {
            tracing::info!(kind = %kind, name = %name, "created");
            Ok(created)
        }
        Err(e) if status_code(&e) == Some(409) => {
            let existing = api.get(&name).await.map_err(|e| error(&format!("reading existing {kind} {name}"), e))?;
            if existing.meta().deletion_timestamp.is_some() {
                // A terminating object is neither ours to reuse nor a conflict: the name frees up
                // once its finalizers and dependents are gone.
                Err(Error::backend_msg(BACKEND, format!("{kind} {name} is still being deleted; retry once it is gone")))
            } else if owned(&existing) {
                tracing::info!(kind = %kind, name = %name, "already exists");
                Ok(existing)
            } else {
                Err(Error::backend_msg(
                    BACKEND,
                    format!(
                        "{kind} {name} already exists but was not created by toygres for this object; \
                         delete or rename it, then retry"
                    ),
                ))
            }
        }
        Err(e) => Err(error(&format!("creating {kind} {name}"), e)),
    }
}

/// Applies `object` server-side (field manager `toygres`, taking over fields others set): the
/// object as we render it replaces the values of every field it sets. For objects derived entirely
/// from the instance's spec and the executor's configuration, whose re-application is safe.
pub async fn apply<K: Kind>(api: &Api<K>, object: &K) -> Result<K> {
    let name = object.name_any();
    let kind = kind_name::<K>();
    let applied = api
        .patch(&name, &PatchParams::apply("toygres").force(), &Patch::Apply(object))
        .await
        .map_err(|e| error(&format!("applying {kind} {name}"), e))?;
    tracing::info!(kind = %kind, name = %name, "applied");
    Ok(applied)
}

/// Deletes `name`; absent is success. Dependents (a Job's pods) are removed in the background.
pub async fn delete<K: Kind>(api: &Api<K>, name: &str) -> Result<()> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            tracing::info!(kind = %kind_name::<K>(), name, "deleted");
            Ok(())
        }
        Err(e) if status_code(&e) == Some(404) => Ok(()),
        Err(e) => Err(error(&format!("deleting {} {name}", kind_name::<K>()), e)),
    }
}

/// Lists the objects matching `selector`.
pub async fn list<K: Kind>(api: &Api<K>, selector: &str) -> Result<Vec<K>> {
    api.list(&ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .map_err(|e| error(&format!("listing {} with {selector}", kind_name::<K>()), e))
}

/// Deletes every object matching `selector` (one call per object: not every kind supports
/// deleting a collection).
pub async fn delete_labeled<K: Kind>(api: &Api<K>, selector: &str) -> Result<()> {
    for object in list(api, selector).await? {
        delete(api, &object.name_any()).await?;
    }
    Ok(())
}
