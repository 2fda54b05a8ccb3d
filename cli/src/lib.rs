//! The parts of the `hnet-gpt` command line that its tests use directly: the Python sandbox, HumanEval, the
//! Hub client and the settings and checks of training over several nodes.

pub mod cluster;
pub mod hub;
pub mod humaneval;
pub mod sandbox;
