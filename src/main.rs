//! om-gateway's entry point: parse the command line, run the subcommand, map the result to an
//! exit code (0 success, 2 invalid configuration or arguments, 1 any other failure).

fn main() {
    std::process::exit(om_gateway::cli::main());
}
