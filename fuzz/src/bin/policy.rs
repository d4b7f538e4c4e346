//! Fuzz target `policy` (see `src/targets.rs`): `scripts/fuzz.sh policy SECONDS`.

#[allow(dead_code)] // each binary uses one target
#[path = "../targets.rs"]
mod targets;

fn main() {
    loop {
        honggfuzz::fuzz!(|data: &[u8]| { targets::policy(data) });
    }
}
