//! The workload state machine: pending → running → completed | failed | killed,
//! and pending → failed | killed. Nothing leaves a terminal state.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a workload is in its life.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Killed,
}

/// A status change the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a workload cannot go from {from} to {to}")]
pub struct InvalidTransition {
    pub from: WorkloadStatus,
    pub to: WorkloadStatus,
}

impl WorkloadStatus {
    pub const ALL: [WorkloadStatus; 5] = [
        WorkloadStatus::Pending,
        WorkloadStatus::Running,
        WorkloadStatus::Completed,
        WorkloadStatus::Failed,
        WorkloadStatus::Killed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadStatus::Pending => "pending",
            WorkloadStatus::Running => "running",
            WorkloadStatus::Completed => "completed",
            WorkloadStatus::Failed => "failed",
            WorkloadStatus::Killed => "killed",
        }
    }

    /// True once the workload can change no more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            WorkloadStatus::Completed | WorkloadStatus::Failed | WorkloadStatus::Killed
        )
    }

    /// Whether the state machine allows going from `self` to `to`.
    pub fn can_become(self, to: WorkloadStatus) -> bool {
        use WorkloadStatus::*;
        matches!(
            (self, to),
            (Pending, Running | Failed | Killed) | (Running, Completed | Failed | Killed)
        )
    }

    /// Checks a transition, returning the new status or why it is refused.
    pub fn transition(self, to: WorkloadStatus) -> Result<WorkloadStatus, InvalidTransition> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(InvalidTransition { from: self, to })
        }
    }
}

impl fmt::Display for WorkloadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WorkloadStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WorkloadStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status {s:?}: expected one of pending, running, completed, failed, killed"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::WorkloadStatus::*;
    use super::*;

    #[test]
    fn exactly_the_documented_transitions_are_allowed() {
        let allowed = [
            (Pending, Running),
            (Pending, Failed),
            (Pending, Killed),
            (Running, Completed),
            (Running, Failed),
            (Running, Killed),
        ];
        for from in WorkloadStatus::ALL {
            for to in WorkloadStatus::ALL {
                let expected = allowed.contains(&(from, to));
                assert_eq!(from.can_become(to), expected, "{from} -> {to}");
                assert_eq!(from.transition(to).is_ok(), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn terminal_states_refuse_every_change_with_a_readable_error() {
        for from in [Completed, Failed, Killed] {
            assert!(from.is_terminal());
            for to in WorkloadStatus::ALL {
                let err = from.transition(to).unwrap_err();
                assert_eq!(
                    err.to_string(),
                    format!("a workload cannot go from {from} to {to}")
                );
            }
        }
        assert!(!Pending.is_terminal() && !Running.is_terminal());
    }
}
