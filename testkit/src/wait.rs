//! The one bounded wait of the tests, and unique names.
//!
//! Every wait for a state change polls an attempt until it succeeds, for at most a bound: a hang
//! fails the test with what was awaited and what was last seen, and no wait asserts a duration.
//!
//! ```
//! use std::time::Duration;
//! use gpu_admission_testkit::Wait;
//!
//! let mut n = 0;
//! let got = Wait::new("n reaches 3", Duration::from_secs(5))
//!     .every(Duration::from_millis(1))
//!     .until(|| {
//!         n += 1;
//!         if n >= 3 { Ok(n) } else { Err(format!("n = {n}")) }
//!     });
//! assert_eq!(got, 3);
//! ```

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `<prefix>-<n>`, `n` unique in this process (a valid Kubernetes name for a valid prefix).
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// What one attempt of a [`Wait`] returns: `Ok`/`Some`/`true` ends the wait; `Err` says what was
/// seen instead.
pub trait Attempt<T> {
    fn into_result(self) -> Result<T, String>;
}

impl<T> Attempt<T> for Result<T, String> {
    fn into_result(self) -> Result<T, String> {
        self
    }
}

impl<T> Attempt<T> for Option<T> {
    fn into_result(self) -> Result<T, String> {
        self.ok_or_else(|| "not yet".to_string())
    }
}

impl Attempt<()> for bool {
    fn into_result(self) -> Result<(), String> {
        if self { Ok(()) } else { Err("not yet".into()) }
    }
}

/// A bounded poll: [`Wait::until`] (blocking), [`Wait::until_async`] (tokio), or
/// [`Wait::try_until`] for an error instead of a panic.
#[derive(Clone, Debug)]
pub struct Wait {
    what: String,
    bound: Duration,
    every: Duration,
}

impl Wait {
    /// Waits for `what` at most `bound`, trying every 100 ms.
    pub fn new(what: impl Into<String>, bound: Duration) -> Self {
        Wait {
            what: what.into(),
            bound,
            every: Duration::from_millis(100),
        }
    }

    /// The pause between attempts.
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    fn gave_up(&self, last: &str) -> String {
        format!("{}: not within {:?}; last seen:\n{last}", self.what, self.bound)
    }

    /// Tries until an attempt succeeds; after the bound, the error names what was awaited and
    /// the last attempt's answer.
    pub fn try_until<T, A: Attempt<T>>(&self, mut attempt: impl FnMut() -> A) -> Result<T, String> {
        let deadline = Instant::now() + self.bound;
        loop {
            match attempt().into_result() {
                Ok(v) => return Ok(v),
                Err(last) if Instant::now() >= deadline => return Err(self.gave_up(&last)),
                Err(_) => std::thread::sleep(self.every),
            }
        }
    }

    /// [`Wait::try_until`], panicking after the bound.
    #[track_caller]
    pub fn until<T, A: Attempt<T>>(&self, attempt: impl FnMut() -> A) -> T {
        self.try_until(attempt).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Wait::until`] for an async attempt (sleeps on the tokio timer).
    #[track_caller]
    pub fn until_async<T, A, F>(&self, mut attempt: impl FnMut() -> F) -> impl Future<Output = T>
    where
        A: Attempt<T>,
        F: Future<Output = A>,
    {
        let caller = std::panic::Location::caller();
        async move {
            let deadline = tokio::time::Instant::now() + self.bound;
            loop {
                match attempt().await.into_result() {
                    Ok(v) => return v,
                    Err(last) if tokio::time::Instant::now() >= deadline => {
                        panic!("{} (waited at {caller})", self.gave_up(&last))
                    }
                    Err(_) => tokio::time::sleep(self.every).await,
                }
            }
        }
    }
}
