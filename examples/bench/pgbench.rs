//! Loading a pgbench database into a bench's source instance (shared by the benches through
//! `#[path]`).

use std::time::Instant;
use toygres_core::Password;
use toygres_local::cluster::process::run;
use toygres_local::LocalCluster;

/// Creates `database` in `cluster` and loads pgbench's tables at `scale` into it, printing how
/// long the load took.
pub async fn load(
    cluster: &LocalCluster,
    password: &Password,
    database: &str,
    scale: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut create = cluster.client("createdb", password);
    create.arg(database);
    run(create, "createdb", &[password.expose()]).await?;
    let mut init = cluster.client("pgbench", password);
    init.args(["--initialize", "--quiet", "--scale"]).arg(scale.to_string()).arg(database);
    let started = Instant::now();
    run(init, "pgbench --initialize", &[password.expose()]).await?;
    println!("  pgbench scale {scale} loaded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
