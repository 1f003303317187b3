//! End-to-end tests of the real `tessera` binary: a server process on 127.0.0.1:0 with a temp
//! SQLite file (or several replicas on one PostgreSQL), driven by CLI invocations and HTTP.

mod audit;
mod authtest;
mod durability;
mod harness;
mod pipeline;
mod replicas;
mod scan;
mod workflow;
