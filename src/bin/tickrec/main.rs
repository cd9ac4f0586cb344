//! `tickrec` binary: parse, run, report errors in exactly one place.

use std::process::ExitCode;

use clap::Parser;

mod bench;
mod cli;
mod demo;

fn main() -> ExitCode {
    let cli = crate::cli::Cli::parse();
    match crate::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`tickrec query ... | head`) means the reader has what it wanted.
            if err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("tickrec: {err:#}");
            ExitCode::from(2)
        }
    }
}
