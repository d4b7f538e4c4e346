//! The benchmark and profiling programs of gpu-admission (BENCHMARKS.md), in `src/bin/`:
//!
//! - `benchkit`: `load` (HTTPS load, gpu-admission vs the floor server) and `check-bin` (the
//!   real `gpu-admission check` over a generated 10,000-object file); `scripts/bench.sh`.
//! - `floor`: the floor server, the least an HTTPS webhook built from the same crates can do.
//! - `e2e_bench`: the end-to-end benchmark through a real kube-apiserver; `scripts/bench-e2e.sh`.
//! - `review_loop`: one recorded review through the review path N times, for profilers.
//! - `bomb`: memory bombs against the release server (BENCHMARKS.md, "Bounded work").
//!
//! This library holds what they share: the load generator ([`load`]) and the processes they
//! start and watch ([`proc`]).

pub mod load;
pub mod proc;
