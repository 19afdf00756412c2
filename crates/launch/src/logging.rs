//! The binary's log subscriber: the libraries' `tracing` events on stderr in the plain form the
//! launcher has always printed (`ringdet launch: message`, `ringdet launch: warning: ...`),
//! filtered by `RINGDET_LOG`, else `RUST_LOG`, else `info` (e.g. `RINGDET_LOG=debug`).

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Variables read for the filter, first set wins.
const FILTER_VARS: [&str; 2] = ["RINGDET_LOG", "RUST_LOG"];

/// Installs the subscriber for the whole process (once, before any library logs).
pub fn install() {
    let (filter, bad) = match FILTER_VARS
        .iter()
        .find_map(|name| std::env::var(name).ok().map(|value| (*name, value)))
    {
        Some((name, value)) => match EnvFilter::try_new(&value) {
            Ok(filter) => (filter, None),
            Err(err) => (
                EnvFilter::new("info"),
                Some(format!("{name}={value:?}: {err}")),
            ),
        },
        None => (EnvFilter::new("info"), None),
    };
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: logs and captured stderr stay plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .event_format(Plain)
        .try_init();
    if installed.is_ok()
        && let Some(why) = bad
    {
        tracing::warn!("ignoring the log filter {why}; logging at info");
    }
}

/// `<who>: [warning: |debug: |trace: ]message key=value ...`, one event per line.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let crate_name = meta.target().split("::").next().unwrap_or_default();
        let who = match crate_name {
            "ringdet_launch" => "ringdet launch",
            "ringdet" | "ringdet_train" => "ringdet",
            other => other,
        };
        let level = match *meta.level() {
            Level::WARN => "warning: ",
            Level::DEBUG => "debug: ",
            Level::TRACE => "trace: ",
            _ => "",
        };
        write!(writer, "{who}: {level}")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
