//! The restore's connection test: 5 attempts × 120 s by default, with backoff (paused time).

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio::time::Instant;
use toygres_core::*;

#[tokio::test(start_paused = true)]
async fn retries_until_the_instance_answers() {
    let fx = fixture(ImageType::Stock).await;
    let image = fx.ready_image(ImageType::Stock).await;
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let ex = restoring_executor_with(None, |ex| {
        ex.expect_test_connection().returning(move |_, _, _| {
            if counted.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(Error::backend_msg("mock executor", "connection refused"))
            } else {
                Ok(())
            }
        });
    });
    let start = Instant::now();
    let record = fx.toygres(ex).create_instance(OperationId::new(), restore_request(image.id)).await.unwrap();
    assert_eq!(record.state, InstanceState::Running);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(start.elapsed(), Duration::from_secs(1 + 2 + 4), "backoff doubles from 1 s");
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_five_attempts_of_120_seconds_and_cleans_up() {
    let fx = fixture(ImageType::Stock).await;
    let image = fx.ready_image(ImageType::Stock).await;
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let ex = restoring_executor_with(None, |ex| {
        // Each attempt times out (load-balancer DNS not propagated yet).
        ex.expect_test_connection().returning(move |_, _, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            Err(Error::Timeout { step: "connect".into(), after: Duration::from_secs(120) })
        });
        ex.expect_delete_instance().times(1).returning(|_| Ok(()));
    });
    let policy = RetryPolicy::connection_test();
    assert_eq!((policy.attempts, policy.timeout), (5, Duration::from_secs(120)));
    let start = Instant::now();
    let err = fx.toygres(ex).create_instance(OperationId::new(), restore_request(image.id)).await.unwrap_err();
    assert!(matches!(err, Error::ConnectionTest { attempts: 5, .. }), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(start.elapsed(), Duration::from_secs(1 + 2 + 4 + 8));
    let record = fx.catalog.get_instance_by_name("restored").await.unwrap();
    assert_eq!(record.state, InstanceState::Failed);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_attempt_is_cut_at_the_per_attempt_timeout() {
    let policy = RetryPolicy::connection_test();
    let start = Instant::now();
    let err = policy
        .run("connect", |_| async {
            std::future::pending::<()>().await;
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err.last_error, Error::Timeout { .. }));
    assert_eq!(start.elapsed(), Duration::from_secs(5 * 120 + 1 + 2 + 4 + 8));
}
