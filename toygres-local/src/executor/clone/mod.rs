//! Clone images ([`ImageFormat::Clone`]) on a reflink filesystem: an image is a consistent data
//! directory kept next to the instances, and a restore is a reflink clone of it
//! ([`crate::cluster::reflink::clone_tree`]): no data byte is read or copied, so restore-to-ready
//! does not grow with the image's size.
//!
//! Under the base directory, `clones/` (this process's, 0711: others may pass, not list) holds:
//! - `<image-id>/data/`: a ready clone image's data directory, recovered to consistency once and
//!   cleanly shut down, this process's (root's) and readable by nobody else. Instances cloned
//!   from it share its blocks copy-on-write: deleting it frees only what no clone shares, and
//!   writes on either side are never seen by the other.
//! - `<image-id>.partial/`: while the image is taken (`data/`, `log/`; the socket is in a short
//!   directory of its own under the temporary directory). A re-run after
//!   a crash, a failure and [`delete`] remove it, with the server recovering it and its OS user.
//!
//! Taking one: `pg_basebackup -Fp -X stream` of the source into `.partial/data`, then a server
//! started on it once, as an OS user of the image's own, on a private socket, with archiving
//! off, replays the WAL the backup holds and is stopped cleanly (a shutdown checkpoint). The
//! tree is given back to this process, listed and hashed ([`tree::inventory`], into the
//! manifest), and renamed into place. A restore checks the tree against the manifest (names,
//! sizes and modes; [`tree::verify`]) and clones it into the instance's volume for its own OS
//! user; the instance's own port and settings are applied as for a physical image.

mod tree;

use super::jobs::JobCtx;
use super::Inner;
use crate::cluster::identity::{ensure_user, image_user_name, remove_user};
use crate::cluster::reflink::{filesystem_of, supports_reflink};
use crate::cluster::{io_err, process, set_mode, LocalCluster, ServerUser};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use toygres_core::manifest::{CloneKind, ManifestClone};
use toygres_core::{Error, ImageFormat, ImageId, InstanceSpec, Manifest, Password, Result};

/// Settings of the one start that recovers a clone image: no TCP, and no WAL archived (the
/// source's `archive_command` must not see another cluster's WAL).
const RECOVERY_SETTINGS: &[(&str, &str)] =
    &[("listen_addresses", "''"), ("archive_mode", "off"), ("recovery_init_sync_method", "syncfs")];
/// How often the copy's progress is measured.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// The port in the recovering server's socket name (its socket directory is its own).
const RECOVERY_PORT: u16 = 5432;

fn clones_dir(inner: &Inner) -> PathBuf {
    inner.base_dir.join("clones")
}

/// Where the clone image `image` is kept: `<base>/clones/<image-id>` (its data directory is
/// `data/` below it).
pub(crate) fn store_dir(inner: &Inner, image: ImageId) -> PathBuf {
    clones_dir(inner).join(image.to_string())
}

/// The recovering server's socket directory: short (a socket path has at most 107 bytes, and
/// base directories can be deep), its user's alone, removed with `.partial`.
fn socket_dir(image: ImageId) -> PathBuf {
    std::env::temp_dir().join(format!("toygres-clone-{image}"))
}

fn partial_dir(inner: &Inner, image: ImageId) -> PathBuf {
    clones_dir(inner).join(format!("{image}.partial"))
}

/// Refuses, before anything is recorded, a source that cannot be cloned: what refuses a physical
/// image ([`super::physical::check_source`]), or a base directory without reflink
/// ([`Error::UnsupportedFormat`] naming its filesystem).
pub(crate) async fn check_source(inner: &Inner, source: &InstanceSpec, password: &Password) -> Result<()> {
    reflink_ready(inner)?;
    super::physical::check_source(inner, source, password).await
}

/// Creates `clones/` and checks that it can make reflink clones on the instances' filesystem.
fn reflink_ready(inner: &Inner) -> Result<()> {
    let (clones, instances) = (clones_dir(inner), inner.base_dir.join("instances"));
    crate::cluster::create_traversable_dir(&instances)?;
    crate::cluster::create_traversable_dir(&clones)?;
    let refuse = |reason: String| Error::UnsupportedFormat { format: ImageFormat::Clone, reason };
    if !supports_reflink(&clones)? {
        return Err(refuse(format!(
            "the executor's base directory {} is on {}, which cannot make reflink copies; put it on XFS made \
             with reflink=1 (mkfs.xfs's default) or on btrfs, or take a physical image",
            inner.base_dir.display(),
            filesystem_of(&clones)?
        )));
    }
    let dev =
        |p: &Path| std::fs::metadata(p).map(|m| m.dev()).map_err(|e| io_err(format!("reading {}", p.display()), e));
    if dev(&clones)? != dev(&instances)? {
        return Err(refuse(format!(
            "{} and {} are on different filesystems, and a reflink clone stays on one; mount one filesystem at {}",
            clones.display(),
            instances.display(),
            inner.base_dir.display()
        )));
    }
    Ok(())
}

/// Takes the clone image `image` of `source` (see the module docs) and returns what its manifest
/// says about it. Starts over from nothing: a re-run after a crash converges.
pub(crate) async fn take(
    inner: &Inner,
    image: ImageId,
    source: &LocalCluster,
    password: &Password,
    ctx: &JobCtx,
) -> Result<ManifestClone> {
    reflink_ready(inner)?;
    delete(inner, image).await?;
    let partial = partial_dir(inner, image);
    crate::cluster::create_traversable_dir(&partial)?;
    let user = recovery_user(inner, image, true).await?.expect("created");
    let cluster = LocalCluster::new(inner.bin.clone(), user.clone(), &partial, RECOVERY_PORT);
    ctx.log.line(&format!("pg_basebackup of instance {} into the clone store", source.port()));
    let mut copy = source.client("pg_basebackup", password);
    copy.arg("-D").arg(cluster.data_dir());
    copy.args(["-Fp", "-X", "stream", "-c", "fast", "--no-manifest", "--no-sync"]);
    let secrets = [password.expose()];
    let copying = process::run(copy, "pg_basebackup into the clone store", &secrets);
    with_progress(copying, &cluster.data_dir(), ctx).await?;

    ctx.log.line("recovering it to consistency once (start on a private socket, then a clean shutdown)");
    recover(&cluster, &user, own_user(inner), &socket_dir(image)).await?;
    let data = cluster.data_dir();
    for leftover in ["backup_label.old", "postmaster.opts"] {
        let _ = std::fs::remove_file(data.join(leftover));
    }
    let listed = data.clone();
    let tree = tokio::task::spawn_blocking(move || tree::inventory(&listed))
        .await
        .map_err(|e| Error::backend("local executor", "listing the clone", e))??;
    ctx.log.line(&format!("{} files, {} bytes hashed; publishing the clone", tree.files.len(), tree.size()));
    let store = store_dir(inner, image);
    std::fs::create_dir(&store).map_err(|e| io_err(format!("creating {}", store.display()), e))?;
    set_mode(&store, 0o700)?;
    std::fs::rename(&data, store.join("data")).map_err(|e| io_err(format!("moving {}", data.display()), e))?;
    remove_partial(inner, image).await?;
    sync_dir(&clones_dir(inner))?;
    let size = tree.size();
    Ok(ManifestClone { kind: CloneKind::Reflink, name: image.to_string(), size, files: tree.files, dirs: tree.dirs })
}

/// Runs `work` (the copy into `dir`) and reports the bytes `dir` holds as the job's progress
/// every [`PROGRESS_EVERY`].
async fn with_progress<T>(work: impl std::future::Future<Output = Result<T>>, dir: &Path, ctx: &JobCtx) -> Result<T> {
    tokio::pin!(work);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = tick.tick() => {
                let dir = dir.to_path_buf();
                if let Ok(Ok(bytes)) = tokio::task::spawn_blocking(move || tree::bytes_under(&dir)).await {
                    ctx.progress.advance_to(bytes);
                }
            }
        }
    }
}

/// Starts the server once on the backup in `cluster` (as `user`, on a private socket in
/// `socket_dir`: nobody else can connect), which replays its WAL to consistency, stops it cleanly,
/// kills whatever else still runs as `user` when it is the image's `own` (never the executor's
/// shared user), and gives the tree back to this process.
async fn recover(cluster: &LocalCluster, user: &ServerUser, own: bool, socket_dir: &Path) -> Result<()> {
    remove_all(socket_dir)?;
    user.create_owned_dir(socket_dir, 0o700)?;
    user.create_owned_dir(cluster.log_file().parent().expect("log dir"), 0o700)?;
    cluster.take_data_dir()?;
    let socket = format!("'{}'", socket_dir.display().to_string().replace('\'', "''"));
    let mut settings = RECOVERY_SETTINGS.to_vec();
    settings.push(("unix_socket_directories", socket.as_str()));
    let started = cluster.start(&settings).await;
    let stopped = cluster.stop().await;
    remove_all(socket_dir)?;
    started?;
    stopped?;
    if own {
        crate::cluster::identity::kill_processes_of(user.uid);
    }
    if user.switches() {
        ServerUser::resolve("root")?.take_tree(&cluster.data_dir())?;
    }
    set_mode(&cluster.data_dir(), 0o700)
}

/// Whether each clone image is recovered by an OS user of its own: when instances are isolated
/// (and this process is root, so it can switch users).
fn own_user(inner: &Inner) -> bool {
    inner.isolate && inner.user.switches()
}

/// The OS user recovering `image`: its own when instances are isolated (created when `create`,
/// otherwise only found), else the executor's. `None`: it has none (any more).
async fn recovery_user(inner: &Inner, image: ImageId, create: bool) -> Result<Option<ServerUser>> {
    if !own_user(inner) {
        return Ok(Some(inner.user.clone()));
    }
    let name = image_user_name(image);
    let found = tokio::task::spawn_blocking(move || match create {
        true => ensure_user(&name).map(Some),
        false => Ok(ServerUser::resolve(&name).ok()),
    });
    found.await.map_err(|e| Error::backend("local executor", "resolving the clone's OS user", e))?
}

/// Removes `.partial`: stops a server recovering in it, removes it and the image's OS user.
async fn remove_partial(inner: &Inner, image: ImageId) -> Result<()> {
    let partial = partial_dir(inner, image);
    if let Some(user) = recovery_user(inner, image, false).await? {
        let cluster = LocalCluster::new(inner.bin.clone(), user.clone(), &partial, RECOVERY_PORT);
        cluster.stop_immediate().await?;
        cluster.kill_postmaster();
        if own_user(inner) {
            crate::cluster::identity::kill_processes_of(user.uid);
            let name = user.name.clone();
            tokio::task::spawn_blocking(move || remove_user(&name))
                .await
                .map_err(|e| Error::backend("local executor", "removing the clone's OS user", e))??;
        }
    }
    remove_all(&socket_dir(image))?;
    remove_all(&partial)
}

/// For throw-away executors ([`super::LocalExecutor::discard_blocking`]): stops every server
/// still recovering a clone image and removes its OS user. Best effort.
pub(crate) fn discard_partials_blocking(inner: &Inner) {
    for image in list(inner) {
        let user = match own_user(inner) {
            true => ServerUser::resolve(&image_user_name(image)).ok(),
            false => Some(inner.user.clone()),
        };
        let Some(user) = user else { continue };
        LocalCluster::new(inner.bin.clone(), user.clone(), partial_dir(inner, image), RECOVERY_PORT).stop_blocking();
        if own_user(inner) {
            crate::cluster::identity::kill_processes_of(user.uid);
            if let Err(e) = remove_user(&user.name) {
                tracing::warn!(error = %e, "leaving a clone image's OS user behind");
            }
        }
    }
}

/// Removes everything kept of the clone image `image` (its data, or what an interrupted take
/// left). Instances cloned from it keep working. Idempotent.
pub(crate) async fn delete(inner: &Inner, image: ImageId) -> Result<()> {
    remove_partial(inner, image).await?;
    remove_all(&store_dir(inner, image))
}

/// Every image the clone store holds something of, ready or partial.
pub(crate) fn list(inner: &Inner) -> Vec<ImageId> {
    let Ok(entries) = std::fs::read_dir(clones_dir(inner)) else { return vec![] };
    let mut ids: Vec<ImageId> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".partial").unwrap_or(&name).parse().ok()
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Refuses, before anything is created, a clone image this executor cannot clone: its data is
/// not in this clone store (taken elsewhere, or deleted), or differs from its manifest (names,
/// sizes, modes: [`tree::verify`]). Both are [`Error::ImageIncomplete`]. Returns its data
/// directory.
pub(crate) async fn check_restorable(inner: &Inner, manifest: &Manifest) -> Result<PathBuf> {
    let image = manifest.image_id;
    let clone = manifest.clone.as_ref().filter(|c| c.kind == CloneKind::Reflink && c.name == image.to_string());
    let Some(clone) = clone else {
        let detail = "its manifest describes no reflink clone of it; it was taken by another executor".into();
        return Err(Error::ImageIncomplete { image, detail });
    };
    let src = store_dir(inner, image).join("data");
    if std::fs::symlink_metadata(&src).is_err() {
        let detail = format!(
            "its data is not at {}: a clone image lives on the machine that took it; restore it there, or \
             export it as a physical image",
            src.display()
        );
        return Err(Error::ImageIncomplete { image, detail });
    }
    let (checked, clone) = (src.clone(), clone.clone());
    tokio::task::spawn_blocking(move || tree::verify(image, &checked, &clone))
        .await
        .map_err(|e| Error::backend("local executor", "checking the clone", e))??;
    Ok(src)
}

/// Makes `cluster`'s new data directory a clone of the verified clone image `manifest` (checked
/// again: [`check_restorable`]) and points it at the instance's port and socket (see the module
/// docs).
pub(crate) async fn restore(inner: &Inner, cluster: &LocalCluster, manifest: &Manifest, ctx: &JobCtx) -> Result<()> {
    let src = check_restorable(inner, manifest).await?;
    let (target, from) = (cluster.clone(), src.clone());
    let stats = tokio::task::spawn_blocking(move || target.clone_data_from(&from))
        .await
        .map_err(|e| Error::backend("local executor", "cloning the data directory", e))??;
    ctx.log.line(&format!("cloned {} files ({} bytes shared, none copied)", stats.files, stats.bytes));
    cluster.write_conf()?;
    super::physical::drop_instance_owned_settings(&cluster.data_dir(), &ctx.log)?;
    cluster.sync_data()
}

fn remove_all(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(format!("removing {}", path.display()), e)),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    let f = std::fs::File::open(dir).map_err(|e| io_err(format!("opening {}", dir.display()), e))?;
    f.sync_all().map_err(|e| io_err(format!("syncing {}", dir.display()), e))
}
