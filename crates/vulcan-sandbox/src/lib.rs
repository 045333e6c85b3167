//! What every Vulcan sandbox shares, written once:
//!
//! - [`cgroup`]: a workload's memory and process bounds on cgroup v1 or v2, and what the
//!   kernel counted (OOM kills, refused forks) — used by the isolate and gvisor backends on
//!   the host and by the guest agent inside a microVM;
//! - [`archive`]: the rules for unpacking a tar archive (an image layer or a workload's
//!   `code_archive`) so that nothing lands outside its root, with a size budget;
//! - [`beneath`]: reading a file a sandbox wrote without following any link it planted;
//! - [`image_user`]: an image's process (argv, user) as its configuration says;
//! - [`capture`]: a program's output split into bounded lines, the first bytes of stdout
//!   kept as the output, the last bytes of stderr kept for an error message;
//! - [`pty`]: terminals for processes that run on one;
//! - `files` (feature `files`): a sandbox's files reached from the host through its root,
//!   every path resolved inside that root;
//! - `instances` (feature `instances`): pools of warm instances of deployed functions;
//! - `network` (feature `network`): a workload's network namespace, the nftables rules
//!   that hold it to its egress policy, and its own resolver.
//!
//! Without that feature it depends on no async runtime: the guest agent is a small static
//! binary.

pub mod archive;
pub mod beneath;
pub mod capture;
pub mod cgroup;
pub mod disk;
#[cfg(feature = "files")]
pub mod files;
pub mod image_user;
pub mod inotify;
#[cfg(feature = "instances")]
pub mod instances;
#[cfg(feature = "network")]
pub mod network;
pub mod paths;
pub mod pty;
#[cfg(feature = "files")]
pub mod watch;
