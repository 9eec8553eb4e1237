//! The regional transit ledger service: the command handler ([`ledger`]), the HTTP API and who may call it ([`auth`])
//! ([`http`]), projections and GraphQL ([`projection`], [`graphql`]), the ActiveMQ interconnection ([`broker`], [`gateway`] in, [`dispatch`] out),
//! the command line ([`cli`], with the signing tools in [`keys_cli`]), benchmarks ([`bench`]), telemetry and [`metrics`].
//! The binary in `main.rs` only parses flags and calls [`cli::run`].

pub mod auth;
pub mod bench;
pub mod bench_peer;
pub mod bench_views;
pub mod broker;
pub mod cli;
pub mod dispatch;
pub mod gateway;
pub mod graphql;
pub mod http;
pub mod keys_cli;
pub mod ledger;
pub mod metrics;
pub mod projection;
pub mod rate_limit;
pub mod refusals;
pub mod resident;
pub mod simulate;
pub mod snapshot;
pub mod telemetry;
