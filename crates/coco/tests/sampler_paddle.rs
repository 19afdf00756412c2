//! DistributedBatchSampler against PaddlePaddle's algorithm run with NumPy (fixture made by
//! fixtures/make_fixtures.py), plus the properties that make it safe for data parallelism.

use ringdet_coco::sampler::DistributedBatchSampler;
use serde_json::Value;

#[test]
fn batches_equal_paddle_for_every_rank_epoch_and_drop_last() {
    let doc: Value = serde_json::from_str(include_str!("fixtures/sampler_paddle.json")).unwrap();
    for case in doc["cases"].as_array().unwrap() {
        let get = |k: &str| case[k].as_u64().unwrap() as usize;
        let drop_last = case["drop_last"].as_bool().unwrap();
        let s = DistributedBatchSampler::new(
            get("n"),
            get("batch_size"),
            get("rank"),
            get("world_size"),
            true,
            drop_last,
        )
        .unwrap();
        let want: Vec<Vec<usize>> = serde_json::from_value(case["batches"].clone()).unwrap();
        assert_eq!(s.batches(get("epoch") as u32), want, "case {case}");
        assert_eq!(s.num_batches(), want.len());
    }
}

#[test]
fn shards_are_disjoint_cover_everything_and_shuffle_per_epoch() {
    let (n, bs, world) = (103, 4, 4);
    let per_rank: Vec<DistributedBatchSampler> = (0..world)
        .map(|r| DistributedBatchSampler::new(n, bs, r, world, true, false).unwrap())
        .collect();
    let mut seen = vec![0usize; n];
    for s in &per_rank {
        for i in s.rank_indices(3) {
            seen[i] += 1;
        }
    }
    // ceil(103/4)*4 = 104: one sample repeated as padding, none missing.
    assert!(seen.iter().all(|&c| c >= 1));
    assert_eq!(seen.iter().sum::<usize>(), 104);
    assert_ne!(per_rank[0].rank_indices(0), per_rank[0].rank_indices(1));
    let same_rank_counts: Vec<usize> = per_rank.iter().map(|s| s.batches(5).len()).collect();
    assert!(same_rank_counts.windows(2).all(|w| w[0] == w[1]));
}
