//! The `xbridge` command line.
fn main() {}
