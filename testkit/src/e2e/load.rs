//! Requests kept flowing through the API server while a test changes something under them (a
//! certificate rotation): one thread per sender, each calling its sender in a loop and keeping
//! every answer, until [`Load::finish`]. The test asserts on the answers.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::webhook::WAIT;
use crate::Wait;

/// Upper bound of requests per load thread (the loop stops earlier, when the test is done).
pub const MAX_REQUESTS: usize = 5_000;

/// Load threads and the answers they collected.
pub struct Load<T> {
    done: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    results: Arc<Mutex<Vec<T>>>,
    threads: Vec<JoinHandle<()>>,
}

impl<T: Send + 'static> Load<T> {
    /// One thread per sender, each calling it in a loop (at most [`MAX_REQUESTS`] times) until
    /// [`finish`](Self::finish).
    pub fn start<F>(senders: impl IntoIterator<Item = F>) -> Load<T>
    where
        F: FnMut() -> T + Send + 'static,
    {
        let done = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let results = Arc::new(Mutex::new(Vec::new()));
        let threads = senders
            .into_iter()
            .map(|mut send| {
                let (done, stop, results) = (done.clone(), stop.clone(), results.clone());
                std::thread::spawn(move || {
                    for _ in 0..MAX_REQUESTS {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let out = send();
                        results.lock().unwrap().push(out);
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        Load {
            done,
            stop,
            results,
            threads,
        }
    }

    /// Waits until `n` more requests have been answered; panics if every load thread ended.
    pub fn wait_for_more(&self, n: usize, during: &str) {
        let target = self.done.load(Ordering::SeqCst) + n;
        Wait::new(format!("requests flowing during {during}"), WAIT)
            .every(Duration::from_millis(20))
            .until(|| {
                assert!(
                    self.threads.iter().any(|t| !t.is_finished()),
                    "load threads ended during {during}"
                );
                self.done.load(Ordering::SeqCst) >= target
            });
    }

    /// Stops the threads; every answer, in the order they came.
    pub fn finish(self) -> Vec<T> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().expect("load thread panicked");
        }
        Arc::into_inner(self.results).expect("results").into_inner().unwrap()
    }
}
