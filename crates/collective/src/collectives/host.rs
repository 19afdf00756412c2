//! All-reduce when ranks share hosts: small buffers through shared-memory slots (one host),
//! large ones by direct reads inside each host, the rest through the host leader and
//! `/dev/shm`; host leaders run the TCP ring between hosts.

use super::reducer;
use crate::comm::Communicator;
use crate::dtype::{Element, ReduceOp};
use crate::error::Result;
use crate::hier::HostWait;
use crate::schedule;
use std::ops::Range;
use std::time::Instant;

impl Communicator {
    pub(super) fn hier_all_reduce<T: Element>(
        &mut self,
        data: &mut [T],
        op: ReduceOp,
        op_id: u64,
    ) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let Some(h) = &self.hier else {
            return Ok(());
        };
        let bytes = std::mem::size_of_val(data);
        let one_host = h.single_host();
        let shared = h.host_size() > 1;
        let direct = h.direct_reads && shared && bytes >= self.config.hier_direct_bytes;
        let slots = !direct && one_host && shared && h.fast_fits(bytes);
        if one_host && !direct && !slots {
            // One host and neither host path applies: the TCP ring among all ranks.
            return self.flat_all_reduce(data, op, op_id, self.world_size, self.rank);
        }
        let name = format!("all_reduce #{op_id}");
        let deadline = Instant::now() + self.config.data_timeout;
        let Some(mut h) = self.hier.take() else {
            return Ok(());
        };
        let result = (|| {
            if slots {
                // One host, a small buffer: shared-memory slots, no sockets.
                let reduce = reducer::<T>(op);
                let mut wait = self.host_wait(deadline);
                let bytes = bytemuck::cast_slice_mut(data);
                return h.fast_all_reduce(bytes, &reduce, &name, &mut wait);
            }
            if direct {
                let elem = size_of::<T>();
                let slices: Vec<Range<usize>> = schedule::chunks(data.len(), h.host_size())
                    .into_iter()
                    .map(|c| c.start * elem..c.end * elem)
                    .collect();
                let reduce = reducer::<T>(op);
                let mut wait = self.host_wait(deadline);
                let bytes = bytemuck::cast_slice_mut(data);
                h.direct_all_reduce(bytes, &slices, &reduce, &name, &mut wait)?;
                if one_host || !h.is_leader() {
                    return Ok(());
                }
                self.leader_ring(&mut h, data, op, op_id)?;
                let mut wait = self.host_wait(deadline);
                return h.share_result(&name, &mut wait);
            }
            if !h.is_leader() {
                h.publish(bytemuck::cast_slice(data), &name, op_id, deadline)?;
                return h.fetch(bytemuck::cast_slice_mut(data), &name, op_id, deadline);
            }
            h.gather(
                bytemuck::cast_slice_mut(data),
                &reducer::<T>(op),
                &name,
                op_id,
                deadline,
            )?;
            if !one_host {
                self.leader_ring(&mut h, data, op, op_id)?;
            }
            h.scatter(bytemuck::cast_slice(data), &name, op_id, deadline)
        })();
        self.hier = Some(h);
        // Tell everyone (the full ring, the host, the leader ring), even if the leader ring
        // already failed and reported inside `run_plan`.
        result.map_err(|e| self.fail(e, op_id, &[]))
    }

    /// What a rank checks while it waits for the other ranks of its host.
    fn host_wait(&mut self, deadline: Instant) -> HostWait<'_> {
        HostWait {
            aborted: &self.abort.flag,
            right: &mut self.right,
            left: &mut self.left,
            deadline,
        }
    }

    /// All-reduce among the host leaders over their own ring links (this rank is a leader).
    fn leader_ring<T: Element>(
        &mut self,
        h: &mut crate::hier::Hierarchy,
        data: &mut [T],
        op: ReduceOp,
        op_id: u64,
    ) -> Result<()> {
        let leaders = h.leaders();
        let r = leaders.iter().position(|&x| x == self.rank).unwrap_or(0);
        std::mem::swap(&mut self.right, &mut h.ring_right);
        std::mem::swap(&mut self.left, &mut h.ring_left);
        let res = self.flat_all_reduce(data, op, op_id, leaders.len(), r);
        std::mem::swap(&mut self.right, &mut h.ring_right);
        std::mem::swap(&mut self.left, &mut h.ring_left);
        res
    }
}
