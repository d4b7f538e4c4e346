//! Fuzz target `review` (see `src/targets.rs`): `scripts/fuzz.sh review SECONDS`.

#[allow(dead_code)] // each binary uses one target
#[path = "../targets.rs"]
mod targets;

fn main() {
    loop {
        honggfuzz::fuzz!(|data: &[u8]| { targets::review(data) });
    }
}
