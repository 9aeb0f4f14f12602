//! The `tessera` binary: the command line lives in [`http_server::cli`]; this only runs it.

fn main() -> std::process::ExitCode {
    http_server::cli::main()
}
