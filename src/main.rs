//! om-gateway's entry point: parse the command line, run the subcommand, map the result to an
//! exit code (0 success, 2 invalid configuration or arguments, 1 any other failure).

/// mimalloc instead of glibc malloc: +20–40 % requests/s through the gateway and ~15 % less
/// memory per cached token on the bench (BENCHMARKS.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(om_gateway::cli::main());
}
