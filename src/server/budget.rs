//! Bounded work: how many body bytes may be read and decoded at once, and by how many threads.
//!
//! A review's JSON parses into a tree many times its size (an 8 MiB array of zeros becomes about
//! 140 MB), so the bytes in flight are what bound memory. Every review takes permits for its
//! size (its `Content-Length`, or the body limit when it has none) *before* its body is read,
//! and holds them until its response is encoded. Small reviews (the usual few KiB) have a pool
//! of their own, so a queue of large ones never holds them up. Decoding and evaluation run on
//! blocking threads, never on the async I/O threads: the server keeps reading, writing and
//! answering `/readyz` while a large review is decoded. Large reviews decode on one core fewer
//! than the machine has (at least one), small ones on every core, so a small review always finds
//! a thread: bombs never take all of them.

use std::time::Duration;

use tokio::sync::{AcquireError, Semaphore, SemaphorePermit};

/// Reviews up to this size take their permits from the small pool.
pub const SMALL_MAX_BYTES: usize = 256 * 1024;
/// The small pool: this many bytes of small reviews in flight at once.
pub const SMALL_POOL_BYTES: usize = 4 * 1024 * 1024;

/// The permits of the process.
#[derive(Debug)]
pub struct Budget {
    large: Semaphore,
    large_bytes: usize,
    small: Semaphore,
    large_decoders: Semaphore,
    small_decoders: Semaphore,
}

/// Waited longer than the body timeout for permits: the server is busy with other reviews.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl Budget {
    /// `large_bytes`: body bytes of large reviews in flight at once (at least one body of
    /// `max_body_bytes`); `cores`: the machine's (see [`Budget::cores`]).
    pub fn new(large_bytes: usize, max_body_bytes: usize, cores: usize) -> Self {
        let large_bytes = large_bytes.max(max_body_bytes).clamp(1, u32::MAX as usize);
        Self {
            large: Semaphore::new(large_bytes),
            large_bytes,
            small: Semaphore::new(SMALL_POOL_BYTES),
            large_decoders: Semaphore::new(cores.saturating_sub(1).max(1)),
            small_decoders: Semaphore::new(cores.max(2)),
        }
    }

    /// The cores this process may use.
    pub fn cores() -> usize {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    }

    /// Permits for a body of `bytes`, waiting at most `wait`.
    pub async fn body(&self, bytes: usize, wait: Duration) -> Result<SemaphorePermit<'_>, Busy> {
        let (pool, cap) = if is_small(bytes) {
            (&self.small, SMALL_POOL_BYTES)
        } else {
            (&self.large, self.large_bytes)
        };
        let n = u32::try_from(bytes.clamp(1, cap)).unwrap_or(u32::MAX);
        within(wait, pool.acquire_many(n)).await
    }

    /// A decoding thread for a body of `bytes`, waiting at most `wait`.
    pub async fn decoder(&self, bytes: usize, wait: Duration) -> Result<SemaphorePermit<'_>, Busy> {
        let pool = if is_small(bytes) {
            &self.small_decoders
        } else {
            &self.large_decoders
        };
        within(wait, pool.acquire()).await
    }
}

/// Whether a review of `bytes` takes from the small pools.
fn is_small(bytes: usize) -> bool {
    bytes <= SMALL_MAX_BYTES
}

/// The permit `acquire` gives within `wait`, or [`Busy`].
async fn within<'a>(
    wait: Duration,
    acquire: impl Future<Output = Result<SemaphorePermit<'a>, AcquireError>>,
) -> Result<SemaphorePermit<'a>, Busy> {
    match tokio::time::timeout(wait, acquire).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(Busy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_large_review_waits_for_the_large_pool_and_small_ones_do_not() {
        let budget = Budget::new(8 << 20, 8 << 20, 2);
        let wait = Duration::from_millis(50);
        let large = budget.body(8 << 20, wait).await.expect("the first large one");
        // A second large one cannot have permits while the first holds them...
        assert_eq!(budget.body(1 << 20, wait).await.err(), Some(Busy));
        // ...but small ones still can, up to their own pool.
        let small: Vec<_> = (0..16).map(|_| budget.body(SMALL_MAX_BYTES, wait)).collect();
        let mut held = Vec::new();
        for s in small {
            held.push(s.await.expect("small pool"));
        }
        assert_eq!(budget.body(1, wait).await.err(), Some(Busy), "small pool full");
        drop(held);
        drop(large);
        assert!(budget.body(8 << 20, wait).await.is_ok());
        // A size over the pool never waits forever: it takes the whole pool.
        assert!(budget.body(usize::MAX, wait).await.is_ok());
    }

    #[tokio::test]
    async fn large_reviews_never_take_every_decoding_thread() {
        let budget = Budget::new(8 << 20, 8 << 20, 2);
        let wait = Duration::from_millis(50);
        let large = budget.decoder(8 << 20, wait).await.expect("one large decoder");
        assert_eq!(budget.decoder(1 << 20, wait).await.err(), Some(Busy));
        let (a, b) = (budget.decoder(1024, wait).await, budget.decoder(1024, wait).await);
        assert!(a.is_ok() && b.is_ok(), "small reviews keep their threads");
        drop(large);
    }
}
