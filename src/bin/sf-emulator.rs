//! `sf-emulator`: a local Salesforce API emulator for tests, benchmarks and the demo. The code is
//! the `sf-emulator` crate (crates/sf-emulator); the binary is declared here so that the service's
//! tests and benchmarks run the same build of it (`CARGO_BIN_EXE_sf-emulator`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sf_emulator::cli::run().await
}
