mod cli;
mod failures;
mod fix;
mod pipeline;
mod rotation;
mod signal;
pub mod util;
