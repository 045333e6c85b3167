//! Pooled processes with a network, per policy: a [`WarmPool`] whose processes each run in
//! a network of their own, opened for the policy before a job arrives, with the policy's
//! `--allow-net` for their Workers. A workload with a policy takes one of those as any
//! workload takes a pooled process (a fresh one, or one that served its tenant before with
//! the same policy), and pays nothing for its network at its start.
//!
//! Pools are kept for the last [`POLICIES`] policies (with their cap and heap) asked for
//! more than once; a workload with another starts a process of its own in a new network (as
//! every networked workload did before). A policy's second workload makes its pool (a policy
//! used once costs no processes made ahead for nothing), and the oldest pool goes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use vulcan_domain::NetworkPolicy;
use vulcan_sandbox::network::Egress;

use crate::pool::{PoolNetwork, WarmPool};
use crate::process::{DenoProcess, Launcher};

/// Policies a pool is kept for.
const POLICIES: usize = 2;

/// Fresh processes kept per policy.
const SIZE: usize = 4;

/// The most networks the pools hold at once: per policy, the fresh processes and those
/// kept for their tenants' next jobs (see [`WarmPool::give_back`]).
pub const MOST: usize = POLICIES * SIZE * 5;

/// What a pool's processes were made for; a workload uses one only if all of it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub policy: NetworkPolicy,
    pub cap_mbps: Option<u32>,
    pub heap_mb: u32,
}

pub struct NetworkedPools {
    egress: Arc<Egress>,
    launcher: Arc<Launcher>,
    /// Newest last.
    pools: Mutex<VecDeque<(Key, Arc<WarmPool>)>>,
    /// Policies asked for lately that have no pool, newest last.
    seen: Mutex<VecDeque<Key>>,
}

/// Policies without a pool remembered.
const SEEN: usize = 16;

impl NetworkedPools {
    pub fn new(egress: Arc<Egress>, launcher: Arc<Launcher>) -> Self {
        NetworkedPools {
            egress,
            launcher,
            pools: Mutex::default(),
            seen: Mutex::default(),
        }
    }

    fn pools(&self) -> std::sync::MutexGuard<'_, VecDeque<(Key, Arc<WarmPool>)>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pool for `key`, and whether it was there already (a new one has no process
    /// ready yet: its first job starts one of its own); none for a policy not asked for
    /// lately.
    pub fn pool_for(&self, key: &Key) -> Option<(Arc<WarmPool>, bool)> {
        let (pool, gone) = {
            let mut pools = self.pools();
            if let Some(at) = pools.iter().position(|(k, _)| k == key) {
                let found = pools.remove(at).expect("the position found");
                let pool = found.1.clone();
                pools.push_back(found);
                return Some((pool, true));
            }
            {
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                match seen.iter().position(|k| k == key) {
                    Some(at) => drop(seen.remove(at)),
                    None => {
                        seen.push_back(key.clone());
                        if seen.len() > SEEN {
                            seen.pop_front();
                        }
                        return None;
                    }
                }
            }
            let pool = WarmPool::with_network(
                self.launcher.clone(),
                SIZE,
                key.heap_mb,
                Some(PoolNetwork {
                    egress: self.egress.clone(),
                    policy: key.policy.clone(),
                    cap_mbps: key.cap_mbps,
                }),
            );
            pools.push_back((key.clone(), pool.clone()));
            let gone = (pools.len() > POLICIES).then(|| pools.pop_front());
            (pool, gone.flatten())
        };
        if let Some((_, old)) = gone {
            discard(old.close_taking());
        }
        Some((pool, false))
    }

    /// Closes every pool (at shutdown): their processes are killed and their networks
    /// removed before this returns.
    pub async fn close(&self) {
        let pools: Vec<_> = self.pools().drain(..).collect();
        let processes: Vec<DenoProcess> =
            pools.iter().flat_map(|(_, p)| p.close_taking()).collect();
        let _ = tokio::task::spawn_blocking(move || {
            for mut process in processes {
                let network = process.network.take();
                drop(process);
                if let Some(network) = network {
                    network.remove();
                }
            }
        })
        .await;
    }
}

/// Ends processes no pool wants; their networks go with them, off the caller's path.
fn discard(processes: Vec<DenoProcess>) {
    for process in processes {
        process.retire();
    }
}
