//! Every storage integration test in one executable: one link instead of
//! one per file (scripts/test builds these on 2 cores).

mod common;

mod bitflip;
mod crash;
mod exec;
mod meta;
mod model;
mod planted;
mod poison;
mod purity;
mod recover_bytes;
mod suite;
