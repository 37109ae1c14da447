//! The `aegis-gate` binary: parses nothing itself, hands the command line to the library.
//! Never: holds logic of its own; everything a test could want to reach lives in `aegis_gate`.

fn main() {
    let code = aegis_gate::cli::run(std::env::args_os().skip(1).collect());
    std::process::exit(code);
}
