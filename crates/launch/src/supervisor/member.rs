//! Another host's side of the job: it obeys the first host's `Abort` and `Final`, and stops on
//! its own when the first host's launcher is lost.

use super::{Role, Supervisor};
use crate::control::Msg;
use crate::events::now_ms;
use crate::failure::{Failure, FailureKind};

impl Supervisor {
    pub(super) fn on_coordinator_msg(&mut self, msg: Msg) -> Option<i32> {
        match msg {
            Msg::Abort { root_cause } => {
                if self.failures.is_empty() {
                    self.failures.push(root_cause);
                }
                self.begin_stop();
                None
            }
            Msg::Final { root_cause } => Some(self.finish(root_cause)),
            _ => None,
        }
    }

    pub(super) fn on_coordinator_lost(&mut self, detail: String) -> Option<i32> {
        self.coordinator_lost = true;
        let first_host = match &self.role {
            Role::Member { first_host, .. } => first_host.clone(),
            _ => return None,
        };
        if self.stop_reported {
            return Some(self.finish(self.root_guess()));
        }
        let failure = Failure {
            kind: FailureKind::LauncherLost { detail },
            host: first_host,
            node_rank: 0,
            time_ms: now_ms(),
            log: None,
            tail: vec![],
        };
        tracing::error!("{}", failure.summary());
        self.failures.push(failure);
        self.begin_stop();
        None
    }
}
