//! Every simulation integration test in one executable: one link instead
//! of one per file.

mod cluster;
mod sim;
mod storage;
