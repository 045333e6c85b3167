//! Storage adapters for Vulcan's [`vulcan_domain::WorkloadStore`] port.
//!
//! [`SqliteStore`] is the embedded default: one file, WAL journal, versioned migrations.
//! Statistics are kept in counter tables updated in the same transaction as every status
//! change, so `GET /v1/stats` and list totals cost the same with ten rows or a million.

mod histogram;
mod migrations;
mod sqlite;

pub use histogram::DurationHistogram;
pub use sqlite::SqliteStore;
