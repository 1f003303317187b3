//! End-to-end tests of the real `tessera` binary: a server process on 127.0.0.1:0 with a temp
//! SQLite file, driven by CLI invocations.

mod audit;
mod authtest;
mod durability;
mod harness;
mod pipeline;
mod scan;
mod workflow;
