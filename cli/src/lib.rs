//! The parts of the `hnet-gpt` command line that its tests use directly: the Python sandbox, HumanEval and the
//! Hub client.

pub mod hub;
pub mod humaneval;
pub mod sandbox;
