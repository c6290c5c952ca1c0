//! [`RetryPolicy`]: attempts, exponential backoff and a per-attempt timeout.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;

/// How often and how long to try an operation.
///
/// ```
/// use std::time::Duration;
/// use toygres_core::RetryPolicy;
/// let p = RetryPolicy::new(5).with_timeout(Duration::from_secs(120));
/// assert_eq!(p, RetryPolicy::connection_test());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Limit of one attempt.
    pub timeout: Duration,
    /// Wait after the first failure.
    pub initial_backoff: Duration,
    /// Upper bound of the wait, which doubles after each failure.
    pub max_backoff: Duration,
}

/// The outcome of [`RetryPolicy::run`] when every attempt failed.
#[derive(Debug)]
pub struct RetryExhausted {
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error (a timeout becomes [`Error::Timeout`]).
    pub last_error: Error,
}

impl RetryPolicy {
    /// `attempts` tries, 30 s each, backoff 1 s doubling up to 30 s.
    pub fn new(attempts: u32) -> Self {
        Self {
            attempts: attempts.max(1),
            timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }

    /// The connection test's default: 5 attempts of 120 s each. Cloud load-balancer DNS can take
    /// 60–90 s to propagate, so a 60 s limit fails healthy instances.
    pub fn connection_test() -> Self {
        Self::new(5).with_timeout(Duration::from_secs(120))
    }

    /// Sets the per-attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the first backoff and its cap.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// The wait after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// Runs `op` (given the 1-based attempt number) until it succeeds or the attempts run out.
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> std::result::Result<T, RetryExhausted>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut last_error = None;
        for attempt in 1..=self.attempts {
            let error = match tokio::time::timeout(self.timeout, op(attempt)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => e,
                Err(_) => Error::Timeout { step: what.to_string(), after: self.timeout },
            };
            tracing::warn!(attempt, attempts = self.attempts, error = %error, "{what} failed");
            last_error = Some(error);
            if attempt < self.attempts {
                tokio::time::sleep(self.backoff(attempt)).await;
            }
        }
        Err(RetryExhausted { attempts: self.attempts, last_error: last_error.expect("at least one attempt") })
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new(3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn retries_with_backoff_until_success() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let p = RetryPolicy::new(5).with_backoff(Duration::from_secs(2), Duration::from_secs(5));
        let out = p
            .run("op", |n| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 4 {
                        Err(Error::backend_msg("test", "not yet"))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(out, 4);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // backoffs: 2 + 4 + 5 (capped)
        assert_eq!(start.elapsed(), Duration::from_secs(11));
    }

    #[tokio::test(start_paused = true)]
    async fn each_attempt_times_out() {
        let start = Instant::now();
        let p = RetryPolicy::connection_test().with_backoff(Duration::ZERO, Duration::ZERO);
        let err = p
            .run("hang", |_| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(err.attempts, 5);
        assert!(matches!(err.last_error, Error::Timeout { .. }));
        assert_eq!(start.elapsed(), Duration::from_secs(600));
    }
}
