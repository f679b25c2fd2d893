//! The live demo (being written).

fn main() {}
