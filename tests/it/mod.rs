mod cli;
mod failures;
mod fix;
mod legacy;
mod pipeline;
mod quickfix;
mod rotation;
mod signal;
pub mod util;
