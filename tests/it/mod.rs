mod cli;
mod failures;
mod pipeline;
mod rotation;
mod signal;
pub mod util;
