//! The cluster harness against a real PostgreSQL.

use toygres_core::Password;
use toygres_local::LocalCluster;

#[tokio::test]
async fn temporary_cluster_uses_the_password_and_cleans_up() {
    let password = Password::generate();
    let pg = LocalCluster::start_temporary(&password).await.unwrap();
    let client = pg.cluster().connect("postgres", &password).await.unwrap();
    let row = client.query_one("SELECT current_setting('listen_addresses'), current_user", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "127.0.0.1");
    assert_eq!(row.get::<_, String>(1), "postgres");
    let wrong = pg.cluster().connect("postgres", &Password::new("not-the-password")).await;
    assert!(wrong.is_err(), "a wrong password must be refused (scram-sha-256, not trust)");

    // Clients authenticate from the environment, not argv.
    let mut psql = pg.cluster().client("psql", &password);
    psql.args(["-Atc", "SELECT 40 + 2"]);
    let out = psql.output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");

    let (dir, pid) = (pg.cluster().dir().to_path_buf(), pg.cluster().postmaster_pid().unwrap());
    assert!(pg.cluster().is_running());
    drop(pg);
    assert!(!dir.exists(), "the temporary directory is removed");
    assert!(!toygres_local::cluster::process_alive(pid), "the postmaster is gone");
}

#[tokio::test]
async fn stop_and_start_again_are_idempotent() {
    let password = Password::generate();
    let pg = LocalCluster::start_temporary(&password).await.unwrap();
    let cluster = pg.cluster();
    cluster.start(&[]).await.unwrap();
    cluster.stop().await.unwrap();
    cluster.stop().await.unwrap();
    assert!(!cluster.is_running());
    cluster.start(toygres_local::cluster::LOAD_ONLY_SETTINGS).await.unwrap();
    cluster.wait_ready(std::time::Duration::from_secs(30)).await.unwrap();
    let client = cluster.connect("postgres", &password).await.unwrap();
    let fsync: String = client.query_one("SHOW fsync", &[]).await.unwrap().get(0);
    assert_eq!(fsync, "off");
}

#[tokio::test]
async fn a_cluster_in_a_deep_directory_listens_on_tcp_only() {
    use toygres_local::{cluster::ports::free_port, PgBinaries, ServerUser};
    let root = tempfile::tempdir().unwrap();
    toygres_local::cluster::set_mode(root.path(), 0o711).unwrap();
    // Deeper than a Unix socket path may be (107 bytes).
    let deep = root.path().join("a-rather-long-base-directory-name-for-instances").join("x".repeat(60));
    let cluster = LocalCluster::new(
        PgBinaries::discover(None).unwrap(),
        ServerUser::resolve("postgres").unwrap(),
        &deep,
        free_port().unwrap(),
    );
    assert_eq!(cluster.socket_setting(), "", "{}", deep.display());
    let password = Password::generate();
    cluster.init(&password).await.unwrap();
    cluster.start(&[]).await.unwrap();
    let client = cluster.connect("postgres", &password).await.unwrap();
    let sockets: String = client.query_one("SHOW unix_socket_directories", &[]).await.unwrap().get(0);
    assert_eq!(sockets, "");
    cluster.destroy().await.unwrap();
    assert!(!cluster.is_running());
}

/// A superuser runs programs as the server's OS user and reads the server's environment: it holds
/// nothing of the control plane's (here the test runner's CARGO_* variables stand for its token
/// and cloud keys), only the allowed variables and what PostgreSQL and toygres set for it.
#[tokio::test]
async fn the_server_inherits_nothing_of_the_control_planes_environment() {
    let leaked = std::env::vars().find(|(k, _)| k.starts_with("CARGO_")).expect("cargo sets CARGO_* for tests");
    let password = Password::generate();
    let pg = LocalCluster::start_temporary(&password).await.unwrap();
    let client = pg.cluster().connect("postgres", &password).await.unwrap();
    client.batch_execute("CREATE TEMP TABLE e (l text); COPY e FROM PROGRAM 'env'").await.unwrap();
    let env: Vec<String> = client.query("SELECT l FROM e", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    let names: Vec<&str> = env.iter().map(|l| l.split_once('=').map_or(l.as_str(), |(n, _)| n)).collect();
    assert!(!names.contains(&leaked.0.as_str()), "{} reached the server: {names:?}", leaked.0);
    // The postmaster sets the LC_* of its settings, PGDATA and its own paths; `sh` adds PWD.
    let lc = ["LC_COLLATE", "LC_CTYPE", "LC_MESSAGES", "LC_MONETARY", "LC_NUMERIC", "LC_TIME", "LC_ALL"];
    let server = ["PGDATA", "PG_GRANDPARENT_PID", "PGLOCALEDIR", "PGSYSCONFDIR", "PWD", "SHLVL", "_", "OLDPWD"];
    let set_for_it: Vec<&str> = lc.into_iter().chain(server).collect();
    for name in &names {
        let allowed = toygres_local::cluster::process::INHERITED_ENV.contains(name) || set_for_it.contains(name);
        assert!(allowed, "{name} reached the server's environment: {names:?}");
    }
}

/// `postmaster.pid` lies where the server (and so a tenant) can write. A planted `-1`, `1` or
/// another process's pid is never signalled by a stop: the process stays alive, and so does
/// everything else on the machine.
#[tokio::test]
async fn a_planted_pid_file_is_never_signalled() {
    let password = Password::generate();
    let pg = LocalCluster::start_temporary(&password).await.unwrap();
    let cluster = pg.cluster();
    let real = cluster.postmaster_pid().expect("the running server's own pid is trusted");
    assert!(real > 1 && cluster.is_running());
    let template = std::fs::read_to_string(cluster.data_dir().join("postmaster.pid")).unwrap();
    cluster.stop_immediate().await.unwrap();
    assert!(!cluster.is_running());

    let mut bystander = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    let bystander_pid = bystander.id() as i32;
    for planted in [-1, 1, bystander_pid] {
        let text = template.replacen(&real.to_string(), &planted.to_string(), 1);
        std::fs::write(cluster.data_dir().join("postmaster.pid"), text).unwrap();
        // Checked before any signal could be sent: a regression fails here, not by killing -1.
        assert_eq!(cluster.postmaster_pid(), None, "planted pid {planted} was trusted");
        cluster.stop_immediate().await.unwrap();
        cluster.kill_postmaster();
        assert!(bystander.try_wait().unwrap().is_none(), "pid {planted}: the bystander was killed");
    }
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}
