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
            eprintln!("tickrec: {}", chain_text(&err));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, `: `-joined, each cause said once: several error types name
/// their source in their own text, and `{:#}` would repeat it.
fn chain_text(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}
