//! `bench-ceiling --listen 127.0.0.1:PORT`: a bare hyper server that answers every request
//! with 200, an empty body, `x-auth-user-id: 42` and a fresh `x-request-id` — the headers
//! `tessera` sends for a valid token, without verifying anything. What it serves is the HTTP
//! limit of the machine, the ceiling every other row of `cargo xtask bench` is a fraction of.

use anyhow::Result;
use hyper::StatusCode;

const USAGE: &str = "bench-ceiling --listen 127.0.0.1:PORT";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen = bench::listen_address(&args, USAGE)?;
    bench::runtime()?.block_on(bench::serve(listen, |_request| async { bench::answer(StatusCode::OK, Some("42")) }))
}
