//! One module per resource of the API.

pub mod audit;
pub mod backends;
pub mod benchmarks;
pub mod code;
pub mod functions;
pub mod health;
pub mod images;
pub mod keys;
pub mod logs;
pub mod me;
pub mod nodes;
pub mod queues;
pub mod sandboxes;
pub mod schedules;
pub mod secrets;
pub mod stats;
pub mod tenants;
pub mod topics;
pub mod trigger;
pub mod volumes;
pub mod workloads;
pub mod ws;
