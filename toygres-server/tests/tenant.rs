//! A tenant — whoever holds an instance's password, and so runs SQL and programs as its server's
//! OS user — against a real `toygres serve` holding a catalog, a durable store, an image and job
//! logs: it reads none of the control plane's files or its environment, and the control plane
//! stays up. (What one tenant can reach of another's instance is issue 22's open part.)

mod support;

use support::{params, DataDir, Server, TOKEN};
use toygres_core::Password;

/// Runs `sql` as the tenant; `Err` with the server's message when PostgreSQL refuses.
async fn try_sql(client: &tokio_postgres::Client, sql: &str) -> Result<Vec<String>, String> {
    match client.simple_query(sql).await {
        Ok(messages) => Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                _ => None,
            })
            .collect()),
        Err(e) => Err(e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string())),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_reads_none_of_the_control_planes_files_or_environment() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let api = server.client();
    let password = Password::new("tenant-Pw-7a");
    let instance = api.running_instance("tenant-a", password.expose()).await;
    let image =
        api.create("/api/images", serde_json::json!({ "name": "tenant-image", "instance_id": instance["id"] })).await;
    let ready = api.settle(&format!("/api/images/{image}"), "creating", std::time::Duration::from_secs(300)).await;
    assert_eq!(ready["state"], "ready", "{ready}");

    let client = params(&instance).connect("postgres", &password).await.unwrap();
    try_sql(&client, "CREATE TEMP TABLE e (l text)").await.unwrap();
    let dir = data.path();
    let mut image_key = std::fs::read_dir(dir.join("image-keys")).unwrap().map(|e| e.unwrap().path());
    let image_key = image_key.find(|p| p.extension().is_some_and(|x| x == "key")).expect("an image key");
    let private = [
        dir.join("catalog.sqlite"),
        dir.join("catalog.key"),
        image_key,
        dir.join("durable.sqlite"),
        dir.join(format!("images/images/{image}/manifest.json")),
    ];
    for file in &private {
        assert!(file.exists(), "{} should exist for the test to mean something", file.display());
        let path = file.display().to_string().replace('\'', "''");
        let read = try_sql(&client, &format!("SELECT pg_read_binary_file('{path}')::text")).await;
        assert!(read.as_ref().is_err_and(|e| e.contains("Permission denied")), "{} read: {read:?}", file.display());
        let cat = try_sql(&client, &format!("COPY e FROM PROGRAM 'cat {path}'")).await;
        assert!(cat.as_ref().is_err_and(|e| e.contains("failed")), "cat read {}: {cat:?}", file.display());
    }
    // The images and the jobs' logs (a job's log lives there while it runs or after it failed).
    for private_dir in [dir.join("images"), dir.join("local/jobs"), dir.join("image-keys")] {
        assert!(private_dir.is_dir(), "{}", private_dir.display());
        let listed = try_sql(&client, &format!("COPY e FROM PROGRAM 'ls {}'", private_dir.display())).await;
        assert!(listed.as_ref().is_err_and(|e| e.contains("failed")), "{} listed: {listed:?}", private_dir.display());
    }

    try_sql(&client, "TRUNCATE e").await.unwrap();
    try_sql(&client, "COPY e FROM PROGRAM 'env'").await.unwrap();
    let env = try_sql(&client, "SELECT l FROM e").await.unwrap();
    assert!(!env.is_empty(), "the server's environment was read");
    assert!(env.iter().all(|l| !l.contains(TOKEN) && !l.starts_with("TOYGRES_")), "{env:?}");
    // The control plane's own process: its environment in /proc, and a signal to it.
    let control_plane = server.pid();
    let environ = try_sql(&client, &format!("SELECT pg_read_binary_file('/proc/{control_plane}/environ')::text")).await;
    assert!(environ.as_ref().is_err_and(|e| e.contains("Permission denied")), "environ read: {environ:?}");
    let cat = try_sql(&client, &format!("COPY e FROM PROGRAM 'cat /proc/{control_plane}/environ'")).await;
    assert!(cat.as_ref().is_err_and(|e| e.contains("failed")), "environ read by a program: {cat:?}");
    let kill = try_sql(&client, &format!("COPY e FROM PROGRAM 'kill -9 {control_plane}'")).await;
    assert!(kill.as_ref().is_err_and(|e| e.contains("failed")), "the control plane was signalled: {kill:?}");
    let lo = try_sql(&client, &format!("SELECT lo_import('{}')", data.path().join("catalog.key").display())).await;
    assert!(lo.as_ref().is_err_and(|e| e.contains("Permission denied")), "lo_import read the key: {lo:?}");
    assert_eq!(api.get("/healthz").await.status, 200, "the control plane is up");
}
