//! The regional transit ledger service: the command handler ([`ledger`]), the HTTP API
//! ([`http`]), projections and GraphQL ([`projection`], [`graphql`]), the ActiveMQ interconnection ([`broker`], [`gateway`] in, [`dispatch`] out),
//! the command line ([`cli`], with the signing tools in [`keys_cli`]), benchmarks ([`bench`]) and telemetry.
//! The binary in `main.rs` only parses flags and calls [`cli::run`].

pub mod bench;
pub mod bench_views;
pub mod broker;
pub mod cli;
pub mod dispatch;
pub mod gateway;
pub mod graphql;
pub mod http;
pub mod keys_cli;
pub mod ledger;
pub mod projection;
pub mod refusals;
pub mod snapshot;
pub mod telemetry;
