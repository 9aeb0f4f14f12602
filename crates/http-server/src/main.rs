//! The `tessera` binary: the command line lives in [`http_server::cli`]; this only runs it.

/// mimalloc instead of glibc's malloc: fred allocates a 7.7 KB block for every command it
/// writes, past glibc's per-thread cache, so under glibc each takes the arena path (its locks
/// and consolidations); mimalloc serves such blocks from a per-thread heap. Built without
/// transparent huge pages, which would count whole 2 MiB pages as resident
/// (docs/PERFORMANCE.md#allocator).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    http_server::cli::main()
}
