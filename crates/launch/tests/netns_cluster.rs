//! `ringdet launch --ips` across real interfaces: scripts/netns-cluster.sh makes two network
//! namespaces behind a bridge (10.77.0.10 and 10.77.0.11, 1 Gbit/s each way), and each launcher
//! finds itself in `--ips` among its namespace's interfaces and meets the other across the bridge.
//! Where namespaces cannot be made (not root, no `ip netns`: the script exits 77) every test prints
//! `SKIP netns_cluster: <reason>` and passes. Every test checks that nothing is left behind: no
//! namespace, no process.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ringdet");

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/netns-cluster.sh")
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("netns-cluster")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// What one run of the script did.
struct Run {
    code: i32,
    output: String,
}

/// Runs the script with `args` and `sh -c <host_cmd>` on every host, in `dir`; the script's
/// processes and everything they start carry a marker variable, so that leftovers can be found.
/// Returns None (after printing SKIP) when the script says namespaces are unavailable here.
fn cluster(name: &str, dir: &Path, args: &[&str], host_cmd: &str) -> Option<Run> {
    let marker = format!("{name}-{}", std::process::id());
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .args(["--", "sh", "-c", host_cmd])
        .current_dir(dir)
        .env("RINGDET_BIN", BIN)
        .env("NETNS_CLUSTER_TEST_MARK", &marker)
        .output()
        .expect("run scripts/netns-cluster.sh");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let code = out.status.code().unwrap_or(-1);
    if code == 77 {
        let reason = output
            .lines()
            .find(|l| l.contains("cannot emulate"))
            .unwrap_or("netns-cluster.sh exited 77");
        println!("SKIP netns_cluster: {reason}");
        return None;
    }
    assert_nothing_left(&output, &marker);
    Some(Run { code, output })
}

/// No namespace of this run (named in the script's first line) and no process carrying the
/// marker is left.
fn assert_nothing_left(output: &str, marker: &str) {
    let prefix = output
        .split_whitespace()
        .find(|w| w.starts_with("rdns-") && w.ends_with("-br;"))
        .map(|w| w.trim_end_matches("br;").to_string());
    let prefix = prefix.unwrap_or_else(|| panic!("no namespace prefix in the output:\n{output}"));
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !list.lines().any(|l| l.starts_with(&prefix)),
        "namespaces {prefix}* left behind:\n{list}"
    );
    let needle = format!("NETNS_CLUSTER_TEST_MARK={marker}");
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|&b| b == 0)
            .any(|var| var == needle.as_bytes())
        {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            left.push(format!("{name}: {}", String::from_utf8_lossy(&cmdline)));
        }
    }
    assert!(left.is_empty(), "processes left behind: {left:?}\n{output}");
}

#[test]
fn allreduce_across_two_namespaces_through_launch_ips() {
    let dir = scratch("allreduce");
    let Some(run) = cluster(
        "allreduce",
        &dir,
        &["--hosts", "2", "--rate", "1gbit", "--timeout", "120"],
        "exec \"$RINGDET_BIN\" launch --ips \"$RINGDET_SIM_HOSTS\" --nproc_per_node 1 \
         --log_dir \"log/$RINGDET_SIM_HOST\" allreduce-perf -b 4K -e 256K -n 3 -w 1",
    ) else {
        return;
    };
    assert_eq!(run.code, 0, "{}", run.output);
    for host in ["[h0]", "[h1]"] {
        assert!(
            run.output
                .lines()
                .any(|l| l.starts_with(host) && l.contains("all workers finished successfully")),
            "{host} did not finish:\n{}",
            run.output
        );
    }
    // Rank 0 is on the first host and printed its table; the endpoints are the namespaces'.
    assert!(
        run.output.lines().any(|l| l
            .strip_prefix("[h0] [r0]")
            .is_some_and(|row| row.split_whitespace().next() == Some("262144"))),
        "{}",
        run.output
    );
    let endpoints = std::fs::read_to_string(dir.join("log/10.77.0.11/endpoints.log"))
        .expect("endpoints.log of the second host");
    assert!(
        endpoints.contains("0 10.77.0.10:") && endpoints.contains("1 10.77.0.11:"),
        "{endpoints}"
    );
}

#[test]
fn a_host_that_never_comes_up_is_named_after_the_start_deadline() {
    let dir = scratch("never-up");
    let Some(run) = cluster(
        "never-up",
        &dir,
        &["--hosts", "2", "--rate", "1gbit", "--timeout", "120"],
        "[ \"$RINGDET_SIM_INDEX\" = 1 ] && exit 0; \
         exec \"$RINGDET_BIN\" launch --ips \"$RINGDET_SIM_HOSTS\" --nproc_per_node 1 \
         --start_timeout 3 --log_dir \"log/$RINGDET_SIM_HOST\" -- true",
    ) else {
        return;
    };
    assert_eq!(run.code, 1, "{}", run.output);
    assert!(
        run.output.lines().any(|l| l.starts_with("[h0]")
            && l.contains("waiting for the launchers of 10.77.0.11 (node 1)")),
        "{}",
        run.output
    );
}

/// The hosts' command for the fault tests: an all-reduce long enough to be cut mid-way.
const ALLREDUCE_UNDER_FAULT: &str = "exec \"$RINGDET_BIN\" launch --ips \"$RINGDET_SIM_HOSTS\" \
     --nproc_per_node 1 --start_timeout 30 --log_dir \"log/$RINGDET_SIM_HOST\" \
     allreduce-perf -b 1M -e 64M -n 500";

/// 2 hosts at 1 Gbit/s, through the bridge or the relay, with `fault` (`KIND:HOST:AFTER_S`).
fn fault_run(name: &str, relay: bool, timeout: &str, fault: &str, host_cmd: &str) -> Option<Run> {
    let dir = scratch(name);
    let mut args = vec!["--hosts", "2", "--rate", "1gbit"];
    if relay {
        args.push("--relay");
    }
    args.extend(["--timeout", timeout, "--fault", fault]);
    cluster(name, &dir, &args, host_cmd)
}

/// After a partition of host 0: both launchers stopped on their own deadlines (exit 1, long
/// before --timeout, which would exit 124), each host with a cause.
fn assert_partition_stopped_everyone(run: &Run) {
    assert_eq!(run.code, 1, "{}", run.output);
    assert!(
        run.output.contains("fault: partition of host 0"),
        "{}",
        run.output
    );
    for host in ["[h0]", "[h1]"] {
        assert!(
            run.output.lines().any(|l| l.starts_with(host)
                && l.contains("ringdet launch: exit code 1")
                || l.starts_with(host) && l.contains("could not reach")
                || l.starts_with(host) && l.contains("timed out after")),
            "{host} did not stop with a cause:\n{}",
            run.output
        );
    }
}

/// After host 1's link went down: every host stopped naming the other's launcher as the root
/// cause (no heartbeat).
fn assert_link_down_named(run: &Run) {
    assert_eq!(run.code, 1, "{}", run.output);
    assert!(
        run.output.contains("fault: link-down of host 1"),
        "{}",
        run.output
    );
    for (host, other) in [("[h0]", "10.77.0.11"), ("[h1]", "10.77.0.10")] {
        assert!(
            run.output.lines().any(|l| l.starts_with(host)
                && l.contains("root cause")
                && l.contains(&format!("the launcher on host {other}"))
                && l.contains("no heartbeat")),
            "{host} did not name the lost host {other}:\n{}",
            run.output
        );
    }
}

#[test]
fn a_link_that_goes_down_mid_job_stops_every_host_with_the_cause() {
    let host_cmd = "exec \"$RINGDET_BIN\" launch --ips \"$RINGDET_SIM_HOSTS\" --nproc_per_node 1 \
         --log_dir \"log/$RINGDET_SIM_HOST\" -- sleep 100";
    let Some(run) = fault_run("link-down", false, "120", "link-down:1:2", host_cmd) else {
        return;
    };
    assert_link_down_named(&run);
}

#[test]
fn ctrl_c_stops_every_host_and_removes_the_namespaces() {
    let dir = scratch("ctrl-c");
    let marker = format!("ctrl-c-{}", std::process::id());
    let mut command = Command::new("bash");
    // A shell started with SIGINT ignored (a background job of a script) cannot trap it: give
    // the script the default disposition, as a terminal's Ctrl-C would find it.
    // SAFETY: signal(2) is async-signal-safe, as pre_exec requires.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = command
        .arg(script())
        .args(["--hosts", "2", "--rate", "1gbit", "--timeout", "120", "--"])
        .args([
            "sh",
            "-c",
            "exec \"$RINGDET_BIN\" launch --ips \"$RINGDET_SIM_HOSTS\" --nproc_per_node 1 \
             --log_dir \"log/$RINGDET_SIM_HOST\" -- sleep 100",
        ])
        .current_dir(&dir)
        .env("RINGDET_BIN", BIN)
        .env("NETNS_CLUSTER_TEST_MARK", &marker)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run scripts/netns-cluster.sh");
    let pid = child.id();
    let last_host = format!("rdns-{pid}-1");
    // Wait (bounded) until the last host runs its command, or the script gives up.
    let mut started = false;
    for _ in 0..1200 {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        let pids = Command::new("ip")
            .args(["netns", "pids", &last_host])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default();
        if !pids.is_empty() {
            started = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if started {
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
    }
    let out = child.wait_with_output().expect("wait for the script");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.code() == Some(77) {
        println!("SKIP netns_cluster: {}", output.trim());
        return;
    }
    assert!(started, "the hosts never started:\n{output}");
    assert_eq!(out.status.code(), Some(130), "{output}");
    assert!(
        output.contains("interrupted: stopping every host"),
        "{output}"
    );
    assert_nothing_left(&output, &marker);
}

#[test]
fn a_partition_during_an_all_reduce_hangs_nobody() {
    // Both launchers stop on their own deadlines (the heartbeat, or the start-up deadline on a
    // machine slow enough to be partitioned before the rendezvous).
    let fault = "partition:10.77.0.10:2";
    let Some(run) = fault_run("partition", false, "120", fault, ALLREDUCE_UNDER_FAULT) else {
        return;
    };
    assert_partition_stopped_everyone(&run);
}

fn tiny_training_setup(dir: &Path) -> PathBuf {
    let data = dir.join("shapes");
    let made = Command::new(BIN)
        .args(["make-dataset", "shapes", "--train", "16", "--val", "8"])
        .args(["--size", "64", "--seed", "1", "--out"])
        .arg(&data)
        .output()
        .expect("ringdet make-dataset");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let demo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/demo/ppyoloe_shapes_demo.yml")
        .canonicalize()
        .expect("the demo config");
    let config = dir.join("tiny.yml");
    std::fs::write(
        &config,
        format!(
            "_BASE_: ['{}']\nwidth_mult: 0.125\nlog_iter: 1\nepoch: 1\nsnapshot_epoch: 1\n\
             TrainDataset: {{dataset_dir: '{}'}}\n\
             EvalDataset: {{dataset_dir: '{}'}}\n\
             TrainReader:\n  batch_size: 2\n  batch_transforms:\n    \
             - BatchRandomResize: {{target_size: [64], random_size: True, random_interp: True, keep_ratio: False}}\n    \
             - NormalizeImage: {{mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], is_scale: True}}\n    \
             - Permute: {{}}\n    - PadGT: {{}}\n",
            demo.display(),
            data.display(),
            data.display()
        ),
    )
    .expect("write tiny.yml");
    config
}

#[test]
fn a_short_training_run_across_two_namespaces() {
    let dir = scratch("train");
    let config = tiny_training_setup(&dir);
    // 16 images, 2 ranks x 2: three steps (as in train_ranks.rs), every gradient bucket (0.25 MB, the first 0.05 MB)
    // crossing the bridge during backward.
    let host_cmd = format!(
        "exec \"$RINGDET_BIN\" launch --ips \"$RINGDET_SIM_HOSTS\" --nproc_per_node 1 \
         --log_dir \"log/$RINGDET_SIM_HOST\" tools/train.py -c {} \
         -o save_dir=out bucket_mb=0.25 first_bucket_mb=0.05",
        config.display()
    );
    let Some(run) = cluster(
        "train",
        &dir,
        &["--hosts", "2", "--rate", "1gbit", "--timeout", "240"],
        &host_cmd,
    ) else {
        return;
    };
    assert_eq!(run.code, 0, "{}", run.output);
    for host in ["[h0]", "[h1]"] {
        assert!(
            run.output
                .lines()
                .any(|l| l.starts_with(host) && l.contains("all workers finished successfully")),
            "{host} did not finish:\n{}",
            run.output
        );
    }
    // The hosts share this file system (the command must be the same on every host) and rank 0,
    // on the first host, writes the metrics: three steps with finite losses, trained on the
    // global batch of both hosts.
    let metrics = std::fs::read_to_string(dir.join("out/tiny/metrics.jsonl"))
        .unwrap_or_else(|e| panic!("metrics.jsonl of host 0: {e}\n{}", run.output));
    let steps: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .filter(|r: &serde_json::Value| r.get("loss").is_some())
        .collect();
    assert_eq!(steps.len(), 3, "{metrics}");
    for row in &steps {
        let loss = row["loss"].as_f64().expect("loss");
        assert!(loss.is_finite() && loss > 0.0, "{row}");
    }
    assert!(
        run.output.contains("global batch 4 (2 ranks x 2)"),
        "{}",
        run.output
    );
}

#[test]
fn the_scaling_simulation_runs_across_two_namespaces() {
    let dir = scratch("scaling-sim");
    // Very short (1/20 of a V100 step, one small-bucket case): what is checked is that the
    // replay runs over the bridge and rank 0 reports the case, not its figures.
    let Some(run) = cluster(
        "scaling-sim",
        &dir,
        &["--hosts", "2", "--rate", "1gbit", "--timeout", "120"],
        "exec \"$RINGDET_BIN\" launch --ips \"$RINGDET_SIM_HOSTS\" --nproc_per_node 1 \
         --log_dir \"log/$RINGDET_SIM_HOST\" scaling-sim --step-s 0.013 --bucket-mb 4 \
         --dtypes bf16 --overlap on --steps 2 --warmup 1 --link-gbit 1 --out results.jsonl",
    ) else {
        return;
    };
    assert_eq!(run.code, 0, "{}", run.output);
    let text = std::fs::read_to_string(dir.join("results.jsonl"))
        .unwrap_or_else(|e| panic!("results.jsonl: {e}\n{}", run.output));
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(rows.len(), 1, "{text}");
    let row = &rows[0];
    assert_eq!(row["kind"], "scaling-sim");
    assert_eq!(row["hosts"], 2);
    assert_eq!(row["dtype"], "bf16");
    assert_eq!(row["steps_s"].as_array().map(Vec::len), Some(2), "{row}");
    let eff = row["efficiency"].as_f64().expect("efficiency");
    assert!(eff > 0.0 && eff <= 1.0 + 1e-6, "{row}");
    assert!(row["buckets"].as_u64().is_some_and(|b| b >= 3), "{row}");
}

/// The TUN devices of this (root) namespace, to check that the relay's stay in the hosts'.
fn root_tuns() -> String {
    let out = Command::new("ip")
        .args(["tuntap", "show"])
        .output()
        .expect("ip tuntap show");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_all_reduce_through_the_relay_with_delay_and_loss_is_correct() {
    let dir = scratch("relay");
    let tuns_before = root_tuns();
    // `--relay`: the user-space relay even where netem exists (it is what is tested here).
    // 2 ms each way and 1 % of the packets lost, both ways; allreduce-perf checks every result.
    let Some(run) = cluster(
        "relay",
        &dir,
        &[
            "--hosts",
            "2",
            "--rate",
            "1gbit",
            "--delay",
            "2ms",
            "--loss",
            "1%",
            "--relay",
            "--timeout",
            "120",
        ],
        "exec \"$RINGDET_BIN\" launch --ips \"$RINGDET_SIM_HOSTS\" --nproc_per_node 1 \
         --log_dir \"log/$RINGDET_SIM_HOST\" allreduce-perf -b 4K -e 4M -f 4 -n 5 -w 1",
    ) else {
        return;
    };
    assert_eq!(run.code, 0, "{}", run.output);
    assert!(
        run.output.contains("delay 2ms, loss 1% (user-space relay"),
        "{}",
        run.output
    );
    // Rank 0's rows: every size up to 4 MiB, none wrong, and no all-reduce faster than one
    // one-way delay (2 ms; across the bridge a 4 KiB one takes ~0.1 ms).
    let rows: Vec<Vec<f64>> = run
        .output
        .lines()
        .filter_map(|l| l.strip_prefix("[h0] [r0]"))
        .map(|row| row.split_whitespace().collect::<Vec<_>>())
        .filter(|words| words.len() == 8 && words[2] == "f32")
        .map(|words| words.iter().filter_map(|w| w.parse().ok()).collect())
        .collect();
    assert_eq!(
        rows.iter().map(|r| r[0] as u64).collect::<Vec<_>>(),
        [4096, 16384, 65536, 262144, 1048576, 4194304],
        "{}",
        run.output
    );
    for row in &rows {
        assert_eq!(row[6], 0.0, "wrong elements: {row:?}\n{}", run.output);
        assert!(row[3] >= 1800.0, "median {} us < 2 ms: {row:?}", row[3]);
    }
    // The relay's account: packets dropped at random (about 1 % of those offered).
    let account = run
        .output
        .lines()
        .find(|l| l.contains("netsim-relay:") && l.contains("forwarded"))
        .unwrap_or_else(|| panic!("no account of the relay:\n{}", run.output));
    let lost: u64 = account
        .split_once("dropped ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{account}"));
    assert!(lost > 0, "{account}");
    assert_eq!(root_tuns(), tuns_before, "a TUN device was left here");
}

/// The relay's line for a fault: `fault KIND of ADDRESS from T s: N packets from or to it
/// dropped`; returns N.
fn relay_fault_drops(output: &str, kind: &str, addr: &str) -> u64 {
    let prefix = format!("netsim-relay: fault {kind} of {addr} from ");
    let line = output
        .lines()
        .find(|l| l.contains(&prefix))
        .unwrap_or_else(|| panic!("the relay did not account for the {kind}:\n{output}"));
    line.split_once(" s: ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn a_partition_through_the_relay_during_an_all_reduce_hangs_nobody() {
    let tuns_before = root_tuns();
    // As over the bridge, with the user-space relay as the switch: from 2 s on it drops every
    // packet from or to host 0, whose link stays up.
    let fault = "partition:10.77.0.10:2";
    let Some(run) = fault_run("relay-partition", true, "60", fault, ALLREDUCE_UNDER_FAULT) else {
        return;
    };
    assert_partition_stopped_everyone(&run);
    // The relay dropped what the hosts still sent each other (the ring's segments and
    // retransmissions, the heartbeats), and kept running to the end.
    assert!(
        relay_fault_drops(&run.output, "partition", "10.77.0.10") > 0,
        "{}",
        run.output
    );
    assert_eq!(root_tuns(), tuns_before, "a TUN device was left here");
}

#[test]
fn a_link_that_goes_down_through_the_relay_stops_every_host_with_the_cause() {
    let tuns_before = root_tuns();
    // As over the bridge, with the user-space relay as the switch: at 2 s host 1's eth0 loses
    // its carrier (as when the bridge side of its veth goes down) and the relay drops every
    // packet from or to it; the hosts are in an all-reduce.
    let fault = "link-down:1:2";
    let Some(run) = fault_run("relay-link-down", true, "60", fault, ALLREDUCE_UNDER_FAULT) else {
        return;
    };
    assert_link_down_named(&run);
    assert!(
        run.output
            .contains("netsim-relay: link-down of 10.77.0.11 (rdns-"),
        "the relay did not take the link down:\n{}",
        run.output
    );
    assert!(
        relay_fault_drops(&run.output, "link-down", "10.77.0.11") > 0,
        "{}",
        run.output
    );
    assert_eq!(root_tuns(), tuns_before, "a TUN device was left here");
}
