//! Rendezvous through a master endpoint: only rank 0's address is known in advance.

mod common;

use common::{TOKEN, config};
use ringdet_collective::{Communicator, ReduceOp};
use std::net::{IpAddr, Ipv4Addr, TcpListener};

#[test]
fn ranks_find_each_other_through_the_master() {
    let master = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let n = 4;
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|r| {
                s.spawn(move || {
                    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + r as u8 % 2));
                    let mut c =
                        Communicator::connect_via_master(master, ip, n, r, TOKEN, config())?;
                    assert_eq!(c.endpoints()[0], master);
                    assert_eq!(c.endpoints()[r].ip(), ip, "bound to the given IP");
                    let mut v = vec![r as i32; 33];
                    c.all_reduce(&mut v, ReduceOp::Sum)?;
                    Ok::<_, ringdet_collective::CommError>(v)
                })
            })
            .collect();
        for h in hs {
            assert_eq!(h.join().expect("rank").expect("ok"), vec![6; 33]);
        }
    });
}
