#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    gpu_admission::cli_main()
}
