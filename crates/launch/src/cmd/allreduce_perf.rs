//! `ringdet allreduce-perf`: all-reduce bandwidth and latency per message size, in the style of
//! nccl-tests' `all_reduce_perf`, with results checked. Runs as one rank of a launched job
//! (`RINGDET_*` environment), or starts `--nproc N` local ranks on 127.0.0.1 through the
//! launcher library.

use anyhow::{Context, Result, bail};
use ringdet_collective::{Communicator, Config, DType, Element, ReduceOp, bf16, f16};
use ringdet_launch::{Plan, WorkerCommand};
use std::time::{Duration, Instant};

/// Arguments of `ringdet allreduce-perf`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Smallest message in bytes (suffixes K, M, G).
    #[arg(short = 'b', long = "minbytes", default_value = "4K", value_parser = parse_size)]
    pub min_bytes: usize,
    /// Largest message in bytes.
    #[arg(short = 'e', long = "maxbytes", default_value = "64M", value_parser = parse_size)]
    pub max_bytes: usize,
    /// Multiply the size by this factor between rows.
    #[arg(short = 'f', long = "stepfactor", default_value_t = 2)]
    pub factor: usize,
    /// Timed iterations per size.
    #[arg(short = 'n', long = "iters", default_value_t = 20)]
    pub iters: usize,
    /// Warm-up iterations per size.
    #[arg(short = 'w', long = "warmup_iters", default_value_t = 5)]
    pub warmup: usize,
    /// Element type: f32, f64, i32, i64, u8, bf16, f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Reduction: sum, avg, max, min.
    #[arg(long, default_value = "sum")]
    pub op: String,
    /// Start N local ranks on 127.0.0.1 (child processes of this binary, supervised by the
    /// launcher library).
    #[arg(long)]
    pub nproc: Option<usize>,
    /// One JSON object per size instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Frame payload size (pipelining granularity); default from the library or RINGDET_SEGMENT_BYTES.
    #[arg(long, value_parser = parse_size)]
    pub segment_bytes: Option<usize>,
    /// TCP streams per neighbour.
    #[arg(long)]
    pub streams: Option<usize>,
    /// All-reduces up to this size take the latency path.
    #[arg(long, value_parser = parse_size)]
    pub small_bytes: Option<usize>,
    /// Microseconds to poll before blocking.
    #[arg(long)]
    pub spin_us: Option<u64>,
    /// Use only the TCP ring, also between ranks of one host (by default ranks that share an
    /// IP reduce large buffers by reading each other's memory).
    #[arg(long)]
    pub no_hierarchical: bool,
}

fn parse_size(s: &str) -> std::result::Result<usize, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1usize << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>()
        .map(|n| n * mult)
        .map_err(|_| format!("{s:?} is not a size (e.g. 4096, 64K, 16M)"))
}

/// Runs the sweep as one rank of the job in the environment, or starts `--nproc` ranks.
pub fn run(args: Args) -> Result<()> {
    if let Some(n) = args.nproc {
        return run_local(n);
    }
    let dtype = DType::parse(&args.dtype)
        .with_context(|| format!("--dtype {}: unknown type", args.dtype))?;
    let op = match args.op.as_str() {
        "sum" => ReduceOp::Sum,
        "avg" => ReduceOp::Avg,
        "max" => ReduceOp::Max,
        "min" => ReduceOp::Min,
        other => bail!("--op {other}: expected sum, avg, max or min"),
    };
    if args.factor < 2 || args.min_bytes == 0 || args.min_bytes > args.max_bytes || args.iters == 0
    {
        bail!("need -f >= 2, 0 < -b <= -e and -n >= 1");
    }
    let mut config = ringdet_collective::env::config_from_env(Config::default())?;
    if let Some(v) = args.segment_bytes {
        config.segment_bytes = v;
    }
    if let Some(v) = args.streams {
        config.streams = v;
    }
    if let Some(v) = args.small_bytes {
        config.small_bytes = v;
    }
    if let Some(v) = args.spin_us {
        config.spin = Duration::from_micros(v);
    }
    config.hierarchical &= !args.no_hierarchical;
    let mut comm =
        Communicator::from_env_with(config).context("joining the job (rank variables)")?;
    match dtype {
        DType::F32 => sweep::<f32>(&mut comm, &args, op, |x| x as f32),
        DType::F64 => sweep::<f64>(&mut comm, &args, op, |x| x as f64),
        DType::I32 => sweep::<i32>(&mut comm, &args, op, |x| x as i32),
        DType::I64 => sweep::<i64>(&mut comm, &args, op, |x| x as i64),
        DType::U8 => sweep::<u8>(&mut comm, &args, op, |x| x as u8),
        DType::BF16 => sweep::<bf16>(&mut comm, &args, op, |x| bf16::from_f32(x as f32)),
        DType::F16 => sweep::<f16>(&mut comm, &args, op, |x| f16::from_f32(x as f32)),
    }
}

/// Small values whose sums stay exact in every type (u8 wraps consistently).
fn pattern(rank: usize, i: usize) -> u32 {
    ((rank * 3 + i) % 5) as u32
}

fn expected(op: ReduceOp, n: usize, i: usize) -> u32 {
    let vals = (0..n).map(|r| pattern(r, i));
    match op {
        ReduceOp::Sum => vals.sum(),
        ReduceOp::Avg => vals.sum::<u32>() / n as u32,
        ReduceOp::Max => vals.max().unwrap_or(0),
        ReduceOp::Min => vals.min().unwrap_or(0),
    }
}

fn sweep<T: Element>(
    comm: &mut Communicator,
    args: &Args,
    op: ReduceOp,
    conv: fn(u32) -> T,
) -> Result<()> {
    let (n, rank) = (comm.world_size(), comm.rank());
    let elem = size_of::<T>();
    if rank == 0 && !args.json {
        println!(
            "# ringdet allreduce-perf: {n} ranks, dtype {}, op {:?}, segment {} B, {} stream(s), small path <= {} B, large buffers inside a host: {}",
            T::DTYPE.name(),
            op,
            comm.config().segment_bytes,
            comm.config().streams,
            comm.config().small_bytes,
            comm.host_path()
        );
        println!(
            "{:>12} {:>12} {:>6} {:>11} {:>11} {:>9} {:>9} {:>7}",
            "size(B)", "count", "type", "time(us)", "median(us)", "algbw", "busbw", "#wrong"
        );
    }
    let mut bytes = args.min_bytes;
    while bytes <= args.max_bytes {
        let count = (bytes / elem).max(1);
        let size = count * elem;
        let mut buf: Vec<T> = (0..count).map(|i| conv(pattern(rank, i) % 2)).collect();
        for _ in 0..args.warmup {
            comm.all_reduce(&mut buf, op)?;
        }
        let mut times = vec![0f64; args.iters];
        for t in times.iter_mut() {
            let start = Instant::now();
            comm.all_reduce(&mut buf, op)?;
            *t = start.elapsed().as_secs_f64() * 1e6;
        }
        // Per-iteration time of the slowest rank.
        comm.all_reduce(&mut times, ReduceOp::Max)?;
        let mut check: Vec<T> = (0..count).map(|i| conv(pattern(rank, i))).collect();
        comm.all_reduce(&mut check, op)?;
        let wrong = check
            .iter()
            .enumerate()
            .filter(|&(i, x)| *x != conv(expected(op, n, i)))
            .count() as i64;
        let mut wrong_all = [wrong];
        comm.all_reduce(&mut wrong_all, ReduceOp::Sum)?;
        let wrong = wrong_all[0];
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let algbw = size as f64 / mean / 1e3;
        let busbw = algbw * 2.0 * (n as f64 - 1.0) / n as f64;
        if rank == 0 {
            if args.json {
                println!(
                    "{{\"bytes\":{size},\"count\":{count},\"dtype\":\"{}\",\"ranks\":{n},\"time_us\":{mean:.2},\"median_us\":{median:.2},\"algbw\":{algbw:.4},\"busbw\":{busbw:.4},\"wrong\":{wrong}}}",
                    T::DTYPE.name()
                );
            } else {
                println!(
                    "{size:>12} {count:>12} {:>6} {mean:>11.1} {median:>11.1} {algbw:>9.3} {busbw:>9.3} {wrong:>7}",
                    T::DTYPE.name()
                );
            }
        }
        if wrong > 0 {
            bail!("{wrong} wrong elements at {size} bytes");
        }
        bytes = bytes.saturating_mul(args.factor);
    }
    Ok(())
}

/// Starts `n` ranks of this command on 127.0.0.1 through the launcher library (the same
/// supervision as `ringdet launch`: a rank that fails stops the others) and waits for them.
/// Rank 0's output is shown as is; the logs stay in a temporary directory when a rank fails.
fn run_local(n: usize) -> Result<()> {
    let args: Vec<String> = {
        let mut v = Vec::new();
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            if a == "--nproc" {
                it.next();
            } else if !a.starts_with("--nproc=") {
                v.push(a);
            }
        }
        v
    };
    let cmd = WorkerCommand::this_binary(&args)?;
    let log_dir =
        std::env::temp_dir().join(format!("ringdet-allreduce-perf-{}", std::process::id()));
    let plan = Plan::local(n, &cmd, &log_dir).context("--nproc")?;
    let outcome = ringdet_launch::start(&plan, &cmd)?;
    if outcome.code == 0 {
        let _ = std::fs::remove_dir_all(&plan.log_dir);
        return Ok(());
    }
    std::process::exit(super::launch::report(&outcome));
}
