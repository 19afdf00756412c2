//! The collectives on typed slices: each builds a schedule for this rank and runs it.

use crate::comm::Communicator;
use crate::dtype::{Element, ReduceOp};
use crate::error::{CommError, Result};
use crate::schedule::{self, Buf};
use crate::wire::frame::Kind;
use std::ops::Range;

fn reducer<T: Element>(op: ReduceOp) -> impl Fn(&mut [u8], &[u8]) {
    move |dst: &mut [u8], src: &[u8]| {
        // Buffers are element-aligned by construction; an empty one may carry a dangling pointer.
        if let (Ok(d), Ok(s)) = (
            bytemuck::try_cast_slice_mut(dst),
            bytemuck::try_cast_slice(src),
        ) {
            T::reduce(d, s, op)
        }
    }
}

fn no_reduce(_: &mut [u8], _: &[u8]) {}

mod host;

impl Communicator {
    /// Reduces `data` element-wise over all ranks; every rank ends with the same result.
    ///
    /// Buffers up to `config.small_bytes` are all-gathered whole and reduced locally in rank order
    /// (`n - 1` steps); larger ones go through a pipelined reduce-scatter + all-gather ring. Either
    /// way the order of additions depends only on the world size and length, so `f32` sums are
    /// bit-identical from run to run. All ranks must pass the same length.
    pub fn all_reduce<T: Element>(&mut self, data: &mut [T], op: ReduceOp) -> Result<()> {
        let op_id = self.begin(Kind::AllReduce)?;
        let _in_op = crate::progress::enter(Kind::AllReduce, op_id);
        if self.hier.is_some() {
            self.hier_all_reduce(data, op, op_id)?;
        } else {
            self.flat_all_reduce(data, op, op_id, self.world_size, self.rank)?;
        }
        if op == ReduceOp::Avg {
            T::divide(data, self.world_size);
        }
        Ok(())
    }

    /// All-reduce over the links in `self.right`/`self.left` among `n` ranks where we are `r`.
    fn flat_all_reduce<T: Element>(
        &mut self,
        data: &mut [T],
        op: ReduceOp,
        op_id: u64,
        n: usize,
        r: usize,
    ) -> Result<()> {
        if n < 2 || data.is_empty() {
            return Ok(());
        }
        let elem = size_of::<T>();
        let bytes = std::mem::size_of_val(data);
        let (seg, lag) = (self.config.segment_bytes, self.config.ring_lag.max(1));
        if bytes <= self.config.small_bytes {
            let blocks: Vec<Range<usize>> = (0..n).map(|i| i * bytes..(i + 1) * bytes).collect();
            let plan = schedule::ring_all_gather(r, n, &blocks, Buf::Scratch, seg, elem, lag);
            self.scratch_mut(n * bytes)[blocks[r].clone()]
                .copy_from_slice(bytemuck::cast_slice(data));
            self.run_plan(Kind::AllReduce, op_id, &plan, &mut [], &no_reduce)?;
            let gathered: &[T] =
                bytemuck::cast_slice(&bytemuck::cast_slice::<u64, u8>(&self.scratch)[..n * bytes]);
            let len = data.len();
            data.copy_from_slice(&gathered[..len]);
            for i in 1..n {
                T::reduce(data, &gathered[i * len..(i + 1) * len], op);
            }
            return Ok(());
        }
        if n == self.world_size
            && !self.pairs.is_empty()
            && bytes < self.config.halving_doubling_max_bytes
        {
            return self.halving_doubling(data, op, op_id);
        }
        let plan = schedule::ring_all_reduce(r, n, data.len(), elem, seg, true, lag);
        self.run_plan(
            Kind::AllReduce,
            op_id,
            &plan,
            bytemuck::cast_slice_mut(data),
            &reducer::<T>(op),
        )
    }

    /// Large all-reduce by recursive halving and doubling over the partner links.
    fn halving_doubling<T: Element>(
        &mut self,
        data: &mut [T],
        op: ReduceOp,
        op_id: u64,
    ) -> Result<()> {
        let steps = schedule::halving_doubling(
            self.rank,
            self.world_size,
            data.len(),
            size_of::<T>(),
            self.config.segment_bytes,
        );
        let reduce = reducer::<T>(op);
        for (bit, plan) in steps {
            if bit >= self.pairs.len() {
                return Err(CommError::Local(format!("no partner link for bit {bit}")));
            }
            // The ring links wait in the pair slot meanwhile, so a failure still reaches them.
            self.swap_pair(bit);
            let res = self.run_plan(
                Kind::AllReduce,
                op_id,
                &plan,
                bytemuck::cast_slice_mut(data),
                &reduce,
            );
            self.swap_pair(bit);
            res?;
        }
        Ok(())
    }

    fn swap_pair(&mut self, bit: usize) {
        let (send, recv) = &mut self.pairs[bit];
        std::mem::swap(&mut self.right, send);
        std::mem::swap(&mut self.left, recv);
    }

    /// Copies `data` of rank `root` into `data` of every rank (all ranks pass the same length).
    pub fn broadcast<T: Element>(&mut self, data: &mut [T], root: usize) -> Result<()> {
        if root >= self.world_size {
            return Err(CommError::Invalid(format!(
                "broadcast root {root} in a world of {}",
                self.world_size
            )));
        }
        let op_id = self.begin(Kind::Broadcast)?;
        let _in_op = crate::progress::enter(Kind::Broadcast, op_id);
        let (elem, bytes) = (size_of::<T>(), std::mem::size_of_val(data));
        let plan = schedule::ring_broadcast(
            self.rank,
            self.world_size,
            root,
            bytes,
            self.config.segment_bytes,
            elem,
        );
        self.run_plan(
            Kind::Broadcast,
            op_id,
            &plan,
            bytemuck::cast_slice_mut(data),
            &no_reduce,
        )
    }

    /// Gathers every rank's `mine` (lengths may differ between ranks): returns one vector per
    /// rank, in rank order, identical on every rank.
    pub fn all_gather<T: Element>(&mut self, mine: &[T]) -> Result<Vec<Vec<T>>> {
        let (n, r, elem) = (self.world_size, self.rank, size_of::<T>());
        let (seg, lag) = (self.config.segment_bytes, self.config.ring_lag.max(1));
        let op_id = self.begin(Kind::Lengths)?;
        let _in_op = crate::progress::enter(Kind::Lengths, op_id);
        let len_blocks: Vec<Range<usize>> = (0..n).map(|i| i * 8..(i + 1) * 8).collect();
        self.scratch_mut(8 * n)[r * 8..(r + 1) * 8]
            .copy_from_slice(&(mine.len() as u64).to_le_bytes());
        let plan = schedule::ring_all_gather(r, n, &len_blocks, Buf::Scratch, seg, 8, lag);
        self.run_plan(Kind::Lengths, op_id, &plan, &mut [], &no_reduce)?;
        let lens: Vec<u64> = bytemuck::cast_slice::<u64, u8>(&self.scratch)[..8 * n]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        let total: u128 = lens.iter().map(|&l| l as u128 * elem as u128).sum();
        if total > self.config.max_gather_bytes as u128 {
            return Err(CommError::Invalid(format!(
                "all_gather #{op_id}: ranks announced {total} bytes in all (lengths {lens:?}), above max_gather_bytes = {}",
                self.config.max_gather_bytes
            )));
        }
        let mut out = vec![T::zeroed(); (total as usize) / elem.max(1)];
        let mut blocks = Vec::with_capacity(n);
        let mut start = 0;
        for &l in &lens {
            let end = start + l as usize * elem;
            blocks.push(start..end);
            start = end;
        }
        bytemuck::cast_slice_mut::<T, u8>(&mut out)[blocks[r].clone()]
            .copy_from_slice(bytemuck::cast_slice(mine));
        let op_id = self.begin(Kind::AllGather)?;
        let _in_op = crate::progress::enter(Kind::AllGather, op_id);
        let plan = schedule::ring_all_gather(r, n, &blocks, Buf::Data, seg, elem, lag);
        self.run_plan(
            Kind::AllGather,
            op_id,
            &plan,
            bytemuck::cast_slice_mut(&mut out),
            &no_reduce,
        )?;
        let mut rest = out.as_slice();
        Ok(lens
            .iter()
            .map(|&l| {
                let (head, tail) = rest.split_at(l as usize);
                rest = tail;
                head.to_vec()
            })
            .collect())
    }

    /// Reduces `data` over all ranks but leaves each rank only its own part: on return,
    /// `data[range]` holds the reduced chunk `range` (chunk `rank` of `world_size` nearly equal
    /// chunks); the rest of `data` holds partial sums.
    pub fn reduce_scatter<T: Element>(
        &mut self,
        data: &mut [T],
        op: ReduceOp,
    ) -> Result<Range<usize>> {
        let op_id = self.begin(Kind::ReduceScatter)?;
        let _in_op = crate::progress::enter(Kind::ReduceScatter, op_id);
        let (n, r) = (self.world_size, self.rank);
        let mine = schedule::chunks(data.len(), n)[r].clone();
        let plan = schedule::ring_all_reduce(
            r,
            n,
            data.len(),
            size_of::<T>(),
            self.config.segment_bytes,
            false,
            self.config.ring_lag.max(1),
        );
        self.run_plan(
            Kind::ReduceScatter,
            op_id,
            &plan,
            bytemuck::cast_slice_mut(data),
            &reducer::<T>(op),
        )?;
        if op == ReduceOp::Avg {
            T::divide(&mut data[mine.clone()], n);
        }
        Ok(mine)
    }

    /// Returns once every rank has called `barrier`.
    pub fn barrier(&mut self) -> Result<()> {
        let op_id = self.begin(Kind::Barrier)?;
        let _in_op = crate::progress::enter(Kind::Barrier, op_id);
        let (n, r) = (self.world_size, self.rank);
        let blocks: Vec<Range<usize>> = (0..n).map(|i| i..i + 1).collect();
        self.scratch_mut(n)[r] = 1;
        let plan =
            schedule::ring_all_gather(r, n, &blocks, Buf::Scratch, self.config.segment_bytes, 1, 1);
        self.run_plan(Kind::Barrier, op_id, &plan, &mut [], &no_reduce)
    }
}
