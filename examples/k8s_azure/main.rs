//! Image and restore on a real Kubernetes cluster (AKS), with images in Azure Blob Storage.
//!
//! ```text
//! cargo run -p toygres-examples-k8s   # a binary of its own package: the local examples never build kube or Azure
//! ```
//!
//! Without the settings below it prints what it needs and exits successfully (CI compiles it, never runs it).
//!
//! ## Set-up
//! 1. A cluster reachable through `KUBECONFIG`, with a namespace (`TOYGRES_NAMESPACE`, default `toygres`)
//!    and the RBAC rules listed in the `toygres-k8s` crate docs for your identity.
//! 2. A storage account and container for images (`AZURE_STORAGE_ACCOUNT`, `AZURE_STORAGE_CONTAINER`,
//!    default `images`), and credentials for this program, as `toygres_azure::AzureBlobStoreBuilder::from_env`
//!    reads them: workload identity (`AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`),
//!    `AZURE_STORAGE_SAS_TOKEN` or `AZURE_STORAGE_ACCOUNT_KEY`.
//! 3. For the jobs (AKS workload identity): a service account in the namespace (`TOYGRES_JOB_SERVICE_ACCOUNT`)
//!    annotated `azure.workload.identity/client-id: <client id>`, a federated credential for
//!    `system:serviceaccount:<namespace>:<service account>` on that managed identity, and the role
//!    "Storage Blob Data Contributor" on the container. The job pods are labelled
//!    `azure.workload.identity/use: "true"` and log in with `azcopy login --login-type=workload`.
//! 4. `TOYGRES_TOOLBOX_IMAGE`: an image with bash, coreutils, zstd, jq, the PostgreSQL 15+ client and azcopy.
//! 5. `TOYGRES_CLIENT_CIDRS`: who may connect to the instances' load balancers, comma-separated CIDRs;
//!    at least the address this program connects from (e.g. `$(curl -s https://ifconfig.me)/32`),
//!    see `docs/azure-aks-network.md`.
//! 6. Optional: `AZURE_REGION` (for `<dns-label>.<region>.cloudapp.azure.com`), `TOYGRES_STORAGE_CLASS`.
//!
//! It creates a source instance (`postgres:15`, LoadBalancer), writes a table into it, images it,
//! restores a new instance from the image, checks the rows arrived, and deletes all of it.

use std::sync::Arc;
use std::time::Duration;
use toygres_azure::AzureBlobStoreBuilder;
use toygres_cms_sqlite::SqliteCatalog;
use toygres_core::crypto::CatalogKey;
use toygres_core::{
    BlobStore, ClusterExecutor, ConnectionInfo, CreateImageRequest, CreateInstanceRequest, EventKind, NewInstance,
    OperationId, Password, ProgressEvent, RetryPolicy, Toygres,
};
use toygres_k8s::{K8sConfig, K8sExecutor, ServiceExposure};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

const NEEDS: &str = "k8s_azure needs a cluster and Azure settings:\n  \
    KUBECONFIG                      kubeconfig of the cluster\n  \
    TOYGRES_TOOLBOX_IMAGE           toolbox image: bash, coreutils, zstd, jq, azcopy (no PostgreSQL client)\n  \
    AZURE_STORAGE_ACCOUNT           images account (AZURE_STORAGE_CONTAINER, default images)\n  \
    AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_FEDERATED_TOKEN_FILE, or AZURE_STORAGE_SAS_TOKEN, or AZURE_STORAGE_ACCOUNT_KEY\n  \
    TOYGRES_JOB_SERVICE_ACCOUNT     service account federated for workload identity (required)\n  \
    TOYGRES_CLIENT_CIDRS            CIDRs allowed to connect to the instances, this machine's included (required)\n  \
    TOYGRES_NAMESPACE, AZURE_REGION, TOYGRES_STORAGE_CLASS (optional)\n\
    See the set-up in examples/k8s_azure/main.rs.";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The Azure blob store from the environment, or `None` (with the reason printed) when it is not configured.
fn azure_blobs() -> BoxResult<Option<toygres_azure::AzureBlobStore>> {
    match AzureBlobStoreBuilder::from_env() {
        Ok(builder) => Ok(Some(builder.build()?)),
        Err(e) => {
            println!("{NEEDS}\n\nAzure: {e}");
            Ok(None)
        }
    }
}

fn config(toolbox_image: String) -> K8sConfig {
    K8sConfig {
        namespace: var("TOYGRES_NAMESPACE").unwrap_or_else(|| "toygres".into()),
        storage_class: var("TOYGRES_STORAGE_CLASS"),
        volume_size: "4Gi".into(),
        toolbox_image,
        exposure: ServiceExposure::LoadBalancer { region: var("AZURE_REGION") },
        job_service_account: var("TOYGRES_JOB_SERVICE_ACCOUNT"),
        load_balancer_source_ranges: var("TOYGRES_CLIENT_CIDRS")
            .map(|cidrs| cidrs.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect())
            .unwrap_or_default(),
        ..K8sConfig::default()
    }
}

fn progress(event: &ProgressEvent) {
    match &event.kind {
        EventKind::Finished { elapsed } => {
            println!("    {:<18} {:>8.1} s", event.phase.to_string(), elapsed.as_secs_f64())
        }
        EventKind::Failed { error } => println!("    {:<18} failed: {error}", event.phase.to_string()),
        _ => {}
    }
}

/// Runs `sql` on `connection` (retrying while the load balancer's address propagates); returns the
/// first column of the first row.
async fn query(connection: &ConnectionInfo, password: &Password, sql: &str) -> BoxResult<String> {
    let host = connection.dns_name.clone().unwrap_or_else(|| connection.host.clone());
    let policy = RetryPolicy::connection_test().with_timeout(Duration::from_secs(30));
    let rows = policy
        .run("query", |_| async {
            let mut config = tokio_postgres::Config::new();
            config.host(&host).port(connection.port).user(&connection.user).dbname(&connection.database);
            config.password(password.expose()).connect_timeout(Duration::from_secs(20));
            let (client, conn) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| toygres_core::Error::backend_msg("example", e.to_string()))?;
            tokio::spawn(conn);
            client.simple_query(sql).await.map_err(|e| toygres_core::Error::backend_msg("example", e.to_string()))
        })
        .await
        .map_err(|e| e.last_error)?;
    let value = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    });
    Ok(value.unwrap_or_default())
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let (Some(_), Some(toolbox)) = (var("KUBECONFIG"), var("TOYGRES_TOOLBOX_IMAGE")) else {
        println!("{NEEDS}");
        return Ok(());
    };
    let Some(azure) = azure_blobs()? else { return Ok(()) };
    azure.ensure_container().await?;
    let blobs: Arc<dyn BlobStore> = Arc::new(azure);
    let executor = K8sExecutor::from_env(config(toolbox), blobs.clone()).await?;
    let dir = tempfile::tempdir()?;
    let catalog = Arc::new(SqliteCatalog::open(dir.path().join("catalog.sqlite"), CatalogKey::generate())?);
    let keys = Arc::new(toygres_core::envelope::LocalKeys::open_or_create(dir.path().join("image-keys"))?);
    let t = Toygres::new(catalog, blobs, Arc::new(executor.clone()))
        .with_progress(Arc::new(progress))
        .with_image_keys(keys);

    let suffix = &OperationId::new().to_string()[..8];
    let password = Password::generate();
    println!("== source instance");
    let source = t
        .register_instance(OperationId::new(), {
            let mut new = NewInstance::existing(format!("k8s-demo-{suffix}"), password.clone());
            new.dns_label = Some(format!("k8s-demo-{suffix}"));
            new.pg_version = Some("15".into());
            new
        })
        .await?;
    let mut image_id = None;
    let mut restored_id = None;
    let outcome: BoxResult<()> = async {
        let source_spec = source.spec();
        executor.provision_empty(&source_spec, &password).await?;
        executor.wait_until_ready(&source_spec, Duration::from_secs(600)).await?;
        let connection = executor.connection_info(&source_spec).await?;
        println!("    {} at {}", source.name, connection.connection_string());
        query(&connection, &password, "CREATE TABLE demo AS SELECT g AS id FROM generate_series(1, 10000) g").await?;

        println!("== image");
        let request = CreateImageRequest::new(format!("k8s-demo-{suffix}"), source.id);
        let image = t.create_image(OperationId::new(), request).await?;
        image_id = Some(image.id);
        println!(
            "    image {} ready, {} bytes, {}",
            image.id,
            image.size_bytes.unwrap_or(0),
            image.checksum.unwrap_or_default()
        );

        println!("== restore");
        let mut request = CreateInstanceRequest::restore(format!("k8s-demo-{suffix}-copy"), image.id);
        request.dns_label = Some(format!("k8s-demo-{suffix}-copy"));
        let restored = t.create_instance(OperationId::new(), request).await?;
        restored_id = Some(restored.id);
        let connection = restored.connection.clone().ok_or("the restored instance has no connection info")?;
        let rows = query(&connection, &password, "SELECT count(*) FROM demo").await?;
        println!("    {} at {}: {rows} rows in demo", restored.name, connection.connection_string());
        if rows != "10000" {
            return Err(format!("expected 10000 rows in the restored instance, found {rows}").into());
        }
        Ok(())
    }
    .await;

    println!("== clean up");
    if let Some(id) = restored_id {
        t.delete_instance(id).await?;
    }
    t.delete_instance(source.id).await?;
    if let Some(id) = image_id {
        t.delete_image(id).await?;
    }
    outcome
}
