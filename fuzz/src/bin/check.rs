//! Fuzz target `check` (see `src/targets.rs`): `scripts/fuzz.sh check SECONDS`.

#[allow(dead_code)] // each binary uses one target
#[path = "../targets.rs"]
mod targets;

fn main() {
    loop {
        honggfuzz::fuzz!(|data: &[u8]| { targets::check(data) });
    }
}
