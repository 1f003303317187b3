//! Integration tests of the server: a real server on 127.0.0.1:0 with a temp SQLite file,
//! driven through the client crate and raw HTTP.

mod admin_api;
mod auth;
mod gateway;
mod harness;
mod interop;
mod oauth;
mod secrets;
mod tokens;
