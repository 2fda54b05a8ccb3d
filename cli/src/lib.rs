//! The parts of the `hnet-gpt` command line that its tests use directly: the Python sandbox and HumanEval.

pub mod humaneval;
pub mod sandbox;
