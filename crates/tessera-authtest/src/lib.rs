//! Token-aware API testing: reads an OpenAPI 3.0/3.1 document and finds, per operation, how it
//! is secured and how to build a request that is otherwise well formed. The auth-fault matrix,
//! runner and reporters build on this (work in progress: see the README's roadmap).

pub mod matrix;
pub mod openapi;
pub mod report;
pub mod runner;
pub mod tokens;

pub use openapi::{Document, Operation, SpecError};
