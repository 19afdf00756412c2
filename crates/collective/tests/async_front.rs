//! The asynchronous front end: buckets submitted from the training thread complete in order on
//! the communication thread; a failure fails the running and every pending bucket.

mod common;

use common::{TOKEN, config, listeners};
use ringdet_collective::{CommError, Communicator, ReduceOp};

#[test]
fn buckets_complete_in_submission_order() {
    let n = 3;
    let (ls, eps) = listeners(&["127.0.0.1"], n);
    std::thread::scope(|s| {
        for (r, l) in ls.into_iter().enumerate() {
            let eps = &eps;
            s.spawn(move || {
                let comm = Communicator::from_listener(l, r, eps, TOKEN, config()).expect("join");
                let a = comm.into_async();
                let handles: Vec<_> = (0..12)
                    .map(|b| a.submit(vec![(b * 10 + r) as f32; 1000 + b * 5000], ReduceOp::Sum))
                    .collect();
                for (b, h) in handles.into_iter().enumerate() {
                    let got = h.wait().expect("bucket");
                    let want = (0..n).map(|q| (b * 10 + q) as f32).sum::<f32>();
                    assert_eq!(got.len(), 1000 + b * 5000);
                    assert!(got.iter().all(|&x| x == want), "bucket {b}");
                }
                let g = a
                    .run(|c| c.all_gather(&[c.rank() as i32]))
                    .wait()
                    .expect("gather");
                assert_eq!(g, vec![vec![0], vec![1], vec![2]]);
            });
        }
    });
}

#[test]
fn a_failure_fails_every_pending_bucket() {
    let (ls, eps) = listeners(&["127.0.0.1"], 2);
    std::thread::scope(|s| {
        for (r, l) in ls.into_iter().enumerate() {
            let eps = &eps;
            s.spawn(move || {
                let comm = Communicator::from_listener(l, r, eps, TOKEN, config()).expect("join");
                if r == 1 {
                    // Rank 1 takes part in one bucket and then leaves.
                    let a = comm.into_async();
                    a.submit(vec![1i64; 200_000], ReduceOp::Sum)
                        .wait()
                        .expect("first");
                    return;
                }
                let a = comm.into_async();
                let handles: Vec<_> = (0..5)
                    .map(|_| a.submit(vec![1i64; 200_000], ReduceOp::Sum))
                    .collect();
                let results: Vec<_> = handles.into_iter().map(|h| h.wait()).collect();
                assert!(results[0].is_ok());
                for res in &results[1..] {
                    let e = res.as_ref().expect_err("pending buckets fail");
                    assert_eq!(e.failed_rank(), Some(1), "{e}");
                }
                let after = a.submit(vec![0f32; 4], ReduceOp::Sum).wait();
                assert!(matches!(after, Err(CommError::Peer { .. })), "{after:?}");
            });
        }
    });
}

#[test]
fn abort_from_the_training_thread() {
    let (ls, eps) = listeners(&["127.0.0.1"], 2);
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    let rx = std::sync::Mutex::new(rx);
    std::thread::scope(|s| {
        for (r, l) in ls.into_iter().enumerate() {
            let (eps, rx, tx) = (&eps, &rx, tx.clone());
            s.spawn(move || {
                let comm = Communicator::from_listener(l, r, eps, TOKEN, config()).expect("join");
                if r == 1 {
                    let _ = rx.lock().map(|g| g.recv());
                    return;
                }
                let a = comm.into_async();
                let h = a.submit(vec![0f32; 1 << 16], ReduceOp::Sum);
                std::thread::sleep(std::time::Duration::from_millis(100));
                a.abort();
                assert!(matches!(h.wait(), Err(CommError::Aborted { .. })));
                let _ = tx.send(());
            });
        }
    });
}
