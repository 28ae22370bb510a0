//! Shared helpers of the kernels' integration tests.
#![allow(dead_code)]

pub mod isas;
