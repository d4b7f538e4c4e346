//! Running a command to completion with the given stdin.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

/// Runs `cmd` with `stdin` as its standard input (written from a thread, so that a large input
/// cannot deadlock against its output) and returns its output.
#[track_caller]
pub fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    let mut pipe = child.stdin.take().expect("stdin pipe");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // A command that exits without reading its input closes the pipe: not an error here.
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for the command");
    writer.join().expect("stdin writer");
    out
}
