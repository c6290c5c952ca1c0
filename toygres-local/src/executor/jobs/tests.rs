//! The cross-process protocol: two registries over one directory (a `flock` belongs to an open
//! file, so they exclude each other like two processes do), and a real second process (this test
//! binary run again as [`replica_child`]) that runs, is cancelled, and is killed.

use super::files::{JobFiles, Status};
use super::*;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use toygres_core::{EventKind, InstanceId, ProgressEvent};

/// Tells this test binary, run again, to act as another replica: the jobs directory.
const CHILD_DIR: &str = "TOYGRES_TEST_REPLICA_DIR";
/// The instance whose restore job the child runs.
const CHILD_INSTANCE: &str = "TOYGRES_TEST_REPLICA_INSTANCE";
/// How long the child's job runs, in tenths of a second.
const CHILD_TENTHS: &str = "TOYGRES_TEST_REPLICA_TENTHS";

/// Bytes a test job moves per tenth of a second.
const STEP: u64 = 1000;

/// A job that moves [`STEP`] bytes every 100 ms for `tenths` tenths, then succeeds. `ran` is set
/// when it is started; `dropped` when it is dropped unfinished (aborted).
fn work(
    tenths: u64,
    ran: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
) -> impl FnOnce(JobCtx) -> futures::future::BoxFuture<'static, Result<()>> + Send {
    move |ctx| {
        // Called only when the job is started here.
        ran.store(true, Ordering::SeqCst);
        Box::pin(async move {
            struct Unfinished(Arc<AtomicBool>);
            impl Drop for Unfinished {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let guard = Unfinished(dropped);
            ctx.progress.set_total(tenths * STEP);
            for _ in 0..tenths {
                tokio::time::sleep(Duration::from_millis(100)).await;
                ctx.progress.add(STEP);
            }
            std::mem::forget(guard);
            Ok(())
        })
    }
}

fn flags() -> (Arc<AtomicBool>, Arc<AtomicBool>) {
    (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)))
}

/// Byte events heard, as `(done, total)`.
#[derive(Default)]
struct Heard(Mutex<Vec<(u64, Option<u64>)>>);

impl ProgressSink for Heard {
    fn emit(&self, event: &ProgressEvent) {
        if let EventKind::Bytes { done, total } = event.kind {
            self.0.lock().unwrap().push((done, total));
        }
    }
}

impl Heard {
    fn all(&self) -> Vec<(u64, Option<u64>)> {
        self.0.lock().unwrap().clone()
    }
}

/// The names of the files left in `dir`.
fn left(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    let mut names: Vec<String> = entries.map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state(dir: &std::path::Path, job: &JobRef) -> Option<State> {
    JobFiles::new(dir, &job.name).read_state().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_registry_follows_a_running_job_without_running_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Jobs::new(dir.path().into()), Jobs::new(dir.path().into()));
    let job = JobRef::restore(InstanceId::new());
    let (ran_a, _) = flags();
    a.start(&job, vec![], None, work(10, ran_a.clone(), flags().1)).await.unwrap();
    let (ran_b, _) = flags();
    b.start(&job, vec![], None, work(1, ran_b.clone(), flags().1)).await.unwrap();
    assert!(ran_a.load(Ordering::SeqCst) && !ran_b.load(Ordering::SeqCst), "started a second run");

    let heard = Arc::new(Heard::default());
    b.wait(&job, Duration::from_secs(30), heard.clone()).await.unwrap();
    let heard = heard.all();
    assert!(heard.iter().any(|(done, total)| *done > 0 && *done < 10 * STEP && *total == Some(10 * STEP)), "{heard:?}");
    assert_eq!(heard.last(), Some(&(10 * STEP, Some(10 * STEP))));
    assert!(heard.windows(2).all(|w| w[0].0 <= w[1].0), "bytes go forward: {heard:?}");

    // Succeeded: neither registry runs it again.
    b.start(&job, vec![], None, work(1, ran_b.clone(), flags().1)).await.unwrap();
    assert!(!ran_b.load(Ordering::SeqCst));
    let done = state(dir.path(), &job).unwrap();
    assert_eq!((done.status, done.pid, done.done), (Status::Succeeded, std::process::id(), 10 * STEP));
    assert!(a.logs(&job).unwrap().contains("succeeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_times_out_and_an_unknown_job_is_refused_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Jobs::new(dir.path().into()), Jobs::new(dir.path().into()));
    let job = JobRef::backup(toygres_core::ImageId::new());
    let unknown = b.wait(&job, Duration::from_secs(1), Arc::new(Heard::default())).await.unwrap_err();
    assert!(unknown.to_string().contains("no such job"), "{unknown}");
    a.start(&job, vec![], None, work(600, flags().0, flags().1)).await.unwrap();
    let timeout = b.wait(&job, Duration::from_millis(300), Arc::new(Heard::default())).await.unwrap_err();
    assert!(matches!(timeout, Error::Timeout { .. }), "{timeout}");
    b.delete(&job).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_elsewhere_cancels_the_job_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Jobs::new(dir.path().into()), Jobs::new(dir.path().into()));
    let job = JobRef::restore(InstanceId::new());
    let (ran, dropped) = flags();
    a.start(&job, vec!["s3cret".into()], None, work(600, ran, dropped.clone())).await.unwrap();
    let started = Instant::now();
    b.delete(&job).await.unwrap();
    assert!(dropped.load(Ordering::SeqCst), "the owner did not abort its job");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(left(dir.path()), Vec::<String>::new());
    assert!(a.wait(&job, Duration::from_secs(5), Arc::new(Heard::default())).await.is_err());
    // Deleting again, or what never existed, succeeds.
    b.delete(&job).await.unwrap();
    a.delete(&JobRef::restore(InstanceId::new())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_and_a_dead_owners_job_are_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Jobs::new(dir.path().into()), Jobs::new(dir.path().into()));
    let job = JobRef::restore(InstanceId::new());

    let secret = "pa55word".to_string();
    let failing = move |_: JobCtx| async move { Err(Error::backend_msg("test", format!("boom {secret}"))) };
    a.start(&job, vec!["pa55word".into()], None, failing).await.unwrap();
    let failed = b.wait(&job, Duration::from_secs(10), Arc::new(Heard::default())).await.unwrap_err();
    let Error::JobFailed { reason, .. } = &failed else { panic!("{failed}") };
    assert!(reason.contains("boom") && !reason.contains("pa55word"), "{reason}");
    let on_disk = std::fs::read_to_string(dir.path().join(format!("{}.state", job.name))).unwrap();
    assert!(on_disk.contains("boom") && !on_disk.contains("pa55word"), "{on_disk}");

    // A failed job is started again by whoever starts it.
    let (ran, _) = flags();
    b.start(&job, vec![], None, work(600, ran.clone(), flags().1)).await.unwrap();
    assert!(ran.load(Ordering::SeqCst));
    // Its owner "dies": its task ends without recording an outcome, and its lock is released.
    b.map.lock().unwrap().get(&job.name).unwrap().task.abort();
    let died = a.wait(&job, Duration::from_secs(10), Arc::new(Heard::default())).await.unwrap_err();
    assert!(died.is_transient() && died.to_string().contains("died"), "{died}");

    let (ran, _) = flags();
    a.start(&job, vec![], None, work(2, ran.clone(), flags().1)).await.unwrap();
    assert!(ran.load(Ordering::SeqCst), "the dead owner's job was not taken over");
    b.wait(&job, Duration::from_secs(10), Arc::new(Heard::default())).await.unwrap();
    assert!(a.logs(&job).unwrap().contains("taking job"), "{}", a.logs(&job).unwrap());
    a.delete(&job).await.unwrap();
    assert_eq!(left(dir.path()), Vec::<String>::new());
}

/// Another process running a job: this test binary, run again as [`replica_child`].
struct Replica(std::process::Child);

impl Replica {
    fn spawn(dir: &std::path::Path, instance: InstanceId, tenths: u64) -> Self {
        let test = format!("{}::replica_child", module_path!().split_once("::").unwrap().1);
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &test, "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir)
            .env(CHILD_INSTANCE, instance.to_string())
            .env(CHILD_TENTHS, tenths.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Self(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits until the replica runs `job` (its state names it).
    async fn running(&self, dir: &std::path::Path, job: &JobRef) {
        let pid = self.pid();
        until("the replica runs the job", || {
            state(dir, job).is_some_and(|s| s.pid == pid && s.status == Status::Running && s.done > 0)
        })
        .await;
    }

    /// Waits for the replica to exit; its output.
    async fn exit(mut self) -> String {
        until("the replica exits", || self.0.try_wait().unwrap().is_some()).await;
        let mut out = String::new();
        std::io::Read::read_to_string(self.0.stdout.as_mut().unwrap(), &mut out).unwrap();
        out
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The other replica: runs a job (when [`CHILD_DIR`] is set; otherwise a test that does
/// nothing) and waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let instance: InstanceId = std::env::var(CHILD_INSTANCE).unwrap().parse().unwrap();
    let tenths: u64 = std::env::var(CHILD_TENTHS).unwrap().parse().unwrap();
    let jobs = Jobs::new(dir.into());
    let job = JobRef::restore(instance);
    let (ran, _) = flags();
    jobs.start(&job, vec![], None, work(tenths, ran.clone(), flags().1)).await.unwrap();
    assert!(ran.load(Ordering::SeqCst), "the replica did not run the job");
    let outcome = jobs.wait(&job, Duration::from_secs(3600), Arc::new(Heard::default())).await;
    println!("replica outcome: {outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_runs_the_job_is_cancelled_and_dies() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let here = Jobs::new(dir.into());
    let instance = InstanceId::new();
    let job = JobRef::restore(instance);

    // (a) it runs there: a start here does not run it again; (b) a wait here follows it.
    let replica = Replica::spawn(dir, instance, 20);
    replica.running(dir, &job).await;
    let (ran, _) = flags();
    here.start(&job, vec![], None, work(1, ran.clone(), flags().1)).await.unwrap();
    assert!(!ran.load(Ordering::SeqCst), "started a second run beside the replica's");
    let heard = Arc::new(Heard::default());
    here.wait(&job, Duration::from_secs(60), heard.clone()).await.unwrap();
    let heard = heard.all();
    assert!(heard.iter().any(|(done, _)| *done > 0 && *done < 20 * STEP), "no progress heard: {heard:?}");
    assert_eq!(heard.last(), Some(&(20 * STEP, Some(20 * STEP))));
    let done = state(dir, &job).unwrap();
    assert_eq!((done.status, done.pid), (Status::Succeeded, replica.pid()));
    assert!(replica.exit().await.contains("replica outcome: Ok(())"));
    here.delete(&job).await.unwrap();

    // (c) a delete here aborts the job there, which releases the lock; nothing is left.
    let replica = Replica::spawn(dir, instance, 6000);
    replica.running(dir, &job).await;
    let started = Instant::now();
    here.delete(&job).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(left(dir), Vec::<String>::new());
    let out = replica.exit().await;
    assert!(out.contains(run::CANCELLED), "the replica's job was not cancelled: {out}");

    // (d) the replica dies mid-job: the wait here says so (transient), a start here takes over.
    let replica = Replica::spawn(dir, instance, 6000);
    replica.running(dir, &job).await;
    let waiting = {
        let (here, job) = (Jobs::new(dir.into()), job.clone());
        tokio::spawn(async move { here.wait(&job, Duration::from_secs(60), Arc::new(Heard::default())).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(replica.pid() as i32), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    let died = waiting.await.unwrap().unwrap_err();
    assert!(died.is_transient() && died.to_string().contains("died"), "{died}");
    drop(replica);
    let (ran, _) = flags();
    here.start(&job, vec![], None, work(2, ran.clone(), flags().1)).await.unwrap();
    assert!(ran.load(Ordering::SeqCst), "the dead replica's job was not taken over");
    here.wait(&job, Duration::from_secs(30), Arc::new(Heard::default())).await.unwrap();
    assert_eq!(state(dir, &job).unwrap().pid, std::process::id());
    here.delete(&job).await.unwrap();
    assert_eq!(left(dir), Vec::<String>::new());
}

/// A log holding bytes that are not UTF-8 (a program's message in another encoding) still shows
/// its tail, the bad bytes replaced.
#[test]
fn a_log_with_bytes_that_are_not_utf8_still_shows() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = Jobs::new(dir.path().into());
    let job = JobRef::restore(InstanceId::new());
    std::fs::write(jobs.files(&job).log(), b"started\npg_dump: error: r\xe9seau\n").unwrap();
    let tail = jobs.logs(&job).unwrap();
    assert!(tail.contains("started") && tail.contains("pg_dump: error: r\u{fffd}seau"), "{tail:?}");
}
