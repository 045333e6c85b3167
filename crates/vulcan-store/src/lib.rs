//! Storage adapters for every one of Vulcan's store ports ([`vulcan_domain::WorkloadStore`],
//! [`vulcan_domain::LogStore`], [`vulcan_domain::StatsStore`],
//! [`vulcan_domain::BenchmarkStore`], [`vulcan_domain::FunctionStore`],
//! [`vulcan_domain::ScheduleStore`], [`vulcan_domain::SecretStore`],
//! [`vulcan_domain::AccessStore`], [`vulcan_domain::NodeStore`],
//! [`vulcan_domain::ImageIndex`], [`vulcan_domain::SandboxStore`]) and the cluster's [`vulcan_domain::SignalBus`]. One file
//! per port under `src/sqlite/` and `src/postgres/`.
//!
//! [`SqliteStore`] is the embedded default: one file, WAL journal, versioned migrations.
//! [`PgStore`] is the cluster's: PostgreSQL shared by every node, with LISTEN/NOTIFY for
//! the signals between them. Both keep counters beside the rows (for everyone and per
//! tenant) updated in the same transaction as every status change, so stats and list
//! totals cost the same with ten rows or a million; both apply the same admission rules
//! inside the transaction that records a workload. One contract suite
//! (`tests/contract.rs`) runs against both.

mod admission;
mod followups;
mod functions;
mod histogram;
mod housekeeping;
mod images;
mod postgres;
mod queues;
mod sandboxes;
mod schedules;
mod specs;
mod sqlite;
mod stats;
#[cfg(feature = "testing")]
pub mod testing;

pub use histogram::DurationHistogram;
pub use postgres::PgStore;
pub(crate) use schedules::trigger_of;
pub use sqlite::SqliteStore;
