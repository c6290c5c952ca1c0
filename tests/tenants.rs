//! Two tenants on one local executor (run as root, as the control plane runs): each instance's
//! server runs as an OS user of its own, so tenant A's superuser — who runs programs as A's
//! server's OS user — can neither read B's data files nor signal B's server; the OS user goes
//! with its instance.

#[path = "local/support.rs"]
mod support;
#[path = "local/world.rs"]
mod world;

use support::rt;
use toygres_core::Password;
use toygres_local::cluster::identity::instance_user_name;
use toygres_local::ServerUser;
use world::World;

/// Runs `sql` as the tenant; `Err` with PostgreSQL's message when it refuses.
async fn try_sql(client: &tokio_postgres::Client, sql: &str) -> Result<(), String> {
    client.batch_execute(sql).await.map_err(|e| e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().into()))
}

#[test]
fn a_tenant_reaches_neither_another_tenants_files_nor_its_server() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: instances get OS users of their own only when the control plane is root");
        return;
    }
    rt().block_on(async {
        let mut world = World::new();
        let (executor, t) = world.executor("tenants", None);
        let (pw_a, pw_b) = (Password::generate(), Password::generate());
        let a = executor.provision_source(&t, "tenant-a", &pw_a).await.unwrap();
        let b = executor.provision_source(&t, "tenant-b", &pw_b).await.unwrap();
        let (cluster_a, cluster_b) = (executor.cluster(&a.spec()).unwrap(), executor.cluster(&b.spec()).unwrap());
        let (user_a, user_b) = (cluster_a.server_user().clone(), cluster_b.server_user().clone());
        assert_eq!(user_a.name, instance_user_name(a.id));
        assert_ne!(user_a.uid, user_b.uid);
        assert_ne!(user_a.name, "postgres");

        let client = cluster_a.connect("postgres", &pw_a).await.unwrap();
        try_sql(&client, "CREATE TEMP TABLE c (l text); CREATE TEMP TABLE k (l text)").await.unwrap();
        let b_data = cluster_b.data_dir();
        let b_pid = cluster_b.postmaster_pid().expect("B runs");
        // B's data files, and B's password as the executor keeps it (`<instance>/secret`).
        let b_secret = cluster_b.dir().parent().unwrap().join("secret");
        assert!(b_secret.exists(), "{}", b_secret.display());
        let files = ["PG_VERSION", "postgresql.auto.conf", "global/pg_control"].map(|f| b_data.join(f));
        for file in files.iter().chain([&b_secret]) {
            let path = file.display().to_string();
            let read = try_sql(&client, &format!("SELECT pg_read_binary_file('{path}')")).await;
            assert!(read.as_ref().is_err_and(|e| e.contains("Permission denied")), "tenant A read {path}: {read:?}");
            let cat = try_sql(&client, &format!("COPY c FROM PROGRAM 'cat {path}'")).await;
            assert!(cat.as_ref().is_err_and(|e| e.contains("failed")), "tenant A's programs read {path}: {cat:?}");
        }
        let kill = try_sql(&client, &format!("COPY k FROM PROGRAM 'kill -9 {b_pid}'")).await;
        assert!(kill.as_ref().is_err_and(|e| e.contains("failed")), "tenant A signalled B's server: {kill:?}");
        let b_client = cluster_b.connect("postgres", &pw_b).await.unwrap();
        b_client.simple_query("SELECT 1").await.expect("B still serves");

        t.delete_instance(a.id).await.unwrap();
        assert!(ServerUser::resolve(&user_a.name).is_err(), "A's OS user outlived its instance");
        assert!(ServerUser::resolve(&user_b.name).is_ok(), "B's OS user stays with B");
    });
}
