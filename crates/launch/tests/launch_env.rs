//! `ringdet launch` end to end on loopback: the worker environment on 2 hosts x 2 workers,
//! the job token, console prefixes and exit code 0.

mod common;

use common::*;
use std::collections::HashMap;

fn vars(log: &str) -> HashMap<String, String> {
    log.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn two_hosts_give_every_worker_its_rank_environment() {
    let dir = scratch("env");
    let port = 24100;
    let worker = [
        "sh",
        "-c",
        "env | sort; exec \"$0\" launch --print_worker_env",
        BIN,
    ];
    // Host 0 names GPUs relative to CUDA_VISIBLE_DEVICES (no GPU is touched); host 1 runs CPU workers.
    let gpu_env = [
        ("CUDA_VISIBLE_DEVICES", "5,7"),
        ("http_proxy", "http://proxy:3128"),
        ("RINGDET_SKIP_GPU_CHECK", "1"),
    ];
    let mut h0 = start_with(
        &dir,
        TWO_HOSTS,
        "127.0.0.1",
        port,
        &["--gpus", "7,5"],
        &worker,
        &gpu_env,
    );
    let mut h1 = start(
        &dir,
        TWO_HOSTS,
        "127.0.0.2",
        port,
        &["--nproc_per_node", "2"],
        &worker,
    );
    assert!(h0.wait(20.0).success(), "{}", h0.stderr());
    assert!(h1.wait(20.0).success(), "{}", h1.stderr());

    let endpoints = format!(
        "127.0.0.1:{port},127.0.0.1:{},127.0.0.2:{port},127.0.0.2:{}",
        port + 1,
        port + 1
    );
    let mut tokens = Vec::new();
    for rank in 0..4 {
        let launcher = if rank < 2 { &h0 } else { &h1 };
        let log = launcher.worker_log(rank);
        let env = vars(&log);
        let local = (rank % 2).to_string();
        let expect = [
            ("RINGDET_RANK", rank.to_string()),
            ("RINGDET_WORLD_SIZE", "4".into()),
            ("RINGDET_LOCAL_RANK", local.clone()),
            ("RINGDET_LOCAL_WORLD_SIZE", "2".into()),
            ("RINGDET_ENDPOINTS", endpoints.clone()),
            ("PADDLE_TRAINER_ID", rank.to_string()),
            ("PADDLE_TRAINERS_NUM", "4".into()),
            ("PADDLE_TRAINER_ENDPOINTS", endpoints.clone()),
            (
                "PADDLE_CURRENT_ENDPOINT",
                endpoints.split(',').nth(rank).unwrap().to_string(),
            ),
            ("RANK", rank.to_string()),
            ("WORLD_SIZE", "4".into()),
            ("LOCAL_RANK", local),
            ("LOCAL_WORLD_SIZE", "2".into()),
            ("MASTER_ADDR", "127.0.0.1".into()),
            ("MASTER_PORT", port.to_string()),
        ];
        for (name, value) in expect {
            assert_eq!(env.get(name), Some(&value), "{name} of rank {rank}:\n{log}");
        }
        assert!(
            !env.contains_key("http_proxy"),
            "proxy leaked to rank {rank}"
        );
        tokens.push(env["RINGDET_JOB_TOKEN"].clone());
        // The worker-side reader (`--print_worker_env`) sees the same.
        assert!(
            log.contains("source: Ringdet") && log.contains(&format!("\nrank: {rank}\n")),
            "{log}"
        );
        assert!(log.contains(&format!("endpoints: {endpoints}")), "{log}");
    }
    assert!(
        tokens[0].len() == 32 && tokens.iter().all(|t| *t == tokens[0]),
        "{tokens:?}"
    );
    let gpu0 = vars(&h0.worker_log(0));
    assert_eq!(
        (
            gpu0["FLAGS_selected_gpus"].as_str(),
            gpu0["RINGDET_DEVICE"].as_str()
        ),
        ("1", "cuda:1")
    );
    assert_eq!(vars(&h1.worker_log(3))["RINGDET_DEVICE"], "cpu");
    // Rank 0 on the console with a prefix; host 1 echoes its first worker, rank 2.
    assert!(
        h0.stdout().contains("[r0] RINGDET_RANK=0"),
        "{}",
        h0.stdout()
    );
    assert!(
        h1.stdout().contains("[r2] RINGDET_RANK=2"),
        "{}",
        h1.stdout()
    );
    let endpoints_log = std::fs::read_to_string(dir.join("log-127.0.0.1/endpoints.log")).unwrap();
    assert!(
        endpoints_log.contains(&format!("3 127.0.0.2:{}", port + 1)),
        "{endpoints_log}"
    );
}

#[test]
fn the_token_derives_from_the_users_secret() {
    let dir = scratch("token");
    let token_of = |job: &str, secret: &str, port: u16| {
        let env = [("RINGDET_JOB_SECRET", secret)];
        let extra = ["--job_id", job];
        let mut solo = start_with(
            &dir,
            "127.0.0.1",
            "127.0.0.1",
            port,
            &extra,
            &["sh", "-c", "echo T=$RINGDET_JOB_TOKEN"],
            &env,
        );
        assert!(solo.wait(10.0).success(), "{}", solo.stderr());
        vars(&solo.worker_log(0))["T"].clone()
    };
    let a = token_of("job", "s3cret", 24150);
    assert_eq!(a.len(), 32);
    assert_eq!(a, token_of("job", "s3cret", 24151));
    assert_ne!(a, token_of("job", "other", 24152));
    assert_ne!(a, token_of("job2", "s3cret", 24153));
}

#[test]
fn a_single_host_token_is_random_and_never_derived_from_the_job_id() {
    let dir = scratch("token-solo-random");
    let run = |port: u16| {
        let mut solo = start(
            &dir,
            "127.0.0.1",
            "127.0.0.1",
            port,
            &["--job_id", "public-name"],
            &["sh", "-c", "echo T=$RINGDET_JOB_TOKEN"],
        );
        assert!(solo.wait(10.0).success(), "{}", solo.stderr());
        assert!(
            !solo.stderr().contains("no job secret"),
            "{}",
            solo.stderr()
        );
        vars(&solo.worker_log(0))["T"].clone()
    };
    let (a, b) = (run(24160), run(24161));
    assert_eq!(a.len(), 32);
    assert_ne!(a, b, "two runs of the same job id got the same token");
    for secret in ["", "public-name", "default"] {
        assert_ne!(
            a,
            ringdet_launch::token::derive_token("public-name", secret.as_bytes())
        );
    }
}

#[test]
fn several_hosts_without_a_secret_are_warned() {
    let dir = scratch("token-no-secret-warning");
    let worker = ["sh", "-c", "echo T=$RINGDET_JOB_TOKEN"];
    let mut h0 = start(&dir, TWO_HOSTS, "127.0.0.1", 24170, &[], &worker);
    let mut h1 = start(&dir, TWO_HOSTS, "127.0.0.2", 24170, &[], &worker);
    assert!(h0.wait(20.0).success() && h1.wait(20.0).success());
    for launcher in [&h0, &h1] {
        let err = launcher.stderr();
        assert!(
            err.contains("warning: no job secret (RINGDET_JOB_SECRET or --job_secret_file)")
                && err.contains("derived from --job_id alone"),
            "{err}"
        );
    }
}

#[test]
fn a_missing_secret_file_is_created_by_the_first_host_and_read_by_the_others() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("token-secret-file");
    let secret_file = dir.join("shared").join("job.secret");
    std::fs::create_dir_all(secret_file.parent().unwrap()).unwrap();
    let flags = [
        "--job_secret_file",
        secret_file.to_str().unwrap(),
        "--job_id",
        "j",
    ];
    let worker = ["sh", "-c", "echo T=$RINGDET_JOB_TOKEN"];
    // The second host first: it waits for the file.
    let mut h1 = start(&dir, TWO_HOSTS, "127.0.0.2", 24180, &flags, &worker);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut h0 = start(&dir, TWO_HOSTS, "127.0.0.1", 24180, &flags, &worker);
    let (s0, s1) = (h0.wait(20.0), h1.wait(20.0));
    let (e0, e1) = (h0.stderr(), h1.stderr());
    assert!(s0.success() && s1.success(), "{e0}\n{e1}");
    assert!(
        !e0.contains("no job secret") && !e1.contains("no job secret"),
        "{e0}\n{e1}"
    );
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    let secret = secret.trim_end();
    assert_eq!(secret.len(), 64, "{secret}");
    let expected = ringdet_launch::token::derive_token("j", secret.as_bytes());
    assert_eq!(vars(&h0.worker_log(0))["T"], expected);
    assert_eq!(vars(&h1.worker_log(1))["T"], expected);
    // No temporary file is left beside it.
    let left: Vec<_> = std::fs::read_dir(secret_file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
}
