//! The HTTP layer: error mapping, extractors, and one module of routes per resource.

pub mod error;
pub mod extract;
pub mod routes;
