//! Repository tasks that are not part of the gateway binary.
//!
//! ```sh
//! cargo run -p xtask -- validate-deploy [DIR]   # DIR defaults to the repository's deploy/
//! ```
//!
//! `validate-deploy` checks the deployment files against the gateway's contract (see
//! `deploy.rs`); `.ci/validate-deploy.sh` runs it after the schema, lint and promtool checks.
//! Exit status: 0 when the files agree, 1 when a problem was found (one line each), 2 on usage.

mod deploy;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["validate-deploy"] => validate_deploy(deploy::deploy_dir()),
        ["validate-deploy", dir] => validate_deploy(PathBuf::from(dir)),
        _ => {
            eprintln!("usage: cargo run -p xtask -- validate-deploy [DIR]");
            ExitCode::from(2)
        }
    }
}

fn validate_deploy(dir: PathBuf) -> ExitCode {
    let contract = match deploy::Contract::of_the_gateway() {
        Ok(contract) => contract,
        Err(error) => {
            eprintln!("validate-deploy: {error}");
            return ExitCode::FAILURE;
        }
    };
    let problems = deploy::check_deploy_tree(&dir, &contract);
    if problems.is_empty() {
        println!(
            "    ok: {} agrees with the gateway ({} environment variables, {} metrics, ports {} and {}, forward-auth {})",
            dir.display(),
            contract.variables.len(),
            contract.metrics.len(),
            contract.listen,
            contract.admin_listen,
            contract.forward_auth_path
        );
        ExitCode::SUCCESS
    } else {
        for problem in &problems {
            eprintln!("    PROBLEM {problem}");
        }
        eprintln!(
            "validate-deploy: {} problem(s): {} disagrees with the gateway",
            problems.len(),
            dir.display()
        );
        ExitCode::FAILURE
    }
}
