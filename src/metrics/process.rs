//! The process metrics Prometheus clients conventionally export (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, ...), read from `/proc/self` at scrape time. Where `/proc` is
//! absent (not Linux) or a file cannot be read, that metric is left out of the scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// The kernel's USER_HZ, the unit of `/proc/<pid>/stat` times: 100 on every Linux ABI.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let read = |name: &str| std::fs::read_to_string(format!("/proc/self/{name}")).ok();
        if let Some(stat) = read("stat").as_deref().and_then(Stat::parse) {
            let cpu = ConstCounter::new((stat.utime + stat.stime) as f64 / TICKS_PER_SECOND);
            let m = encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent in seconds.",
                Some(&Unit::Seconds),
                cpu.metric_type(),
            )?;
            cpu.encode(m)?;
            let boot = std::fs::read_to_string("/proc/stat")
                .ok()
                .as_deref()
                .and_then(boot_time);
            if let Some(boot) = boot {
                let start = ConstGauge::new(boot as f64 + stat.start as f64 / TICKS_PER_SECOND);
                gauge(
                    &mut encoder,
                    "process_start_time",
                    "Start time of the process since the Unix epoch in seconds.",
                    Some(Unit::Seconds),
                    start,
                )?;
            }
        }
        if let Some(status) = read("status") {
            let kib = |key| field(&status, key).map(|kb| ConstGauge::new(kb.saturating_mul(1024)));
            if let Some(rss) = kib("VmRSS:") {
                let help = "Resident memory size in bytes.";
                gauge(
                    &mut encoder,
                    "process_resident_memory",
                    help,
                    Some(Unit::Bytes),
                    rss,
                )?;
            }
            if let Some(vm) = kib("VmSize:") {
                let help = "Virtual memory size in bytes.";
                gauge(
                    &mut encoder,
                    "process_virtual_memory",
                    help,
                    Some(Unit::Bytes),
                    vm,
                )?;
            }
            if let Some(threads) = field(&status, "Threads:") {
                let help = "Number of OS threads in the process.";
                gauge(
                    &mut encoder,
                    "process_threads",
                    help,
                    None,
                    ConstGauge::new(threads),
                )?;
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            let open = ConstGauge::new(fds.count() as u64);
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                open,
            )?;
        }
        if let Some(max) = read("limits").as_deref().and_then(max_open_files) {
            let help = "Maximum number of open file descriptors.";
            gauge(
                &mut encoder,
                "process_max_fds",
                help,
                None,
                ConstGauge::new(max),
            )?;
        }
        Ok(())
    }
}

fn gauge<N: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    value: ConstGauge<N>,
) -> Result<(), std::fmt::Error> {
    let m = encoder.encode_descriptor(name, help, unit.as_ref(), value.metric_type())?;
    value.encode(m)
}

/// The fields of `/proc/self/stat` used here, in clock ticks.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    utime: u64,
    stime: u64,
    /// Since boot.
    start: u64,
}

impl Stat {
    fn parse(text: &str) -> Option<Stat> {
        // The command name (field 2) may hold spaces and parentheses: count from its last ')'.
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `fields[0]` is field 3 (state); utime, stime and starttime are fields 14, 15 and 22.
        let at = |n: usize| fields.get(n - 3)?.parse().ok();
        Some(Stat {
            utime: at(14)?,
            stime: at(15)?,
            start: at(22)?,
        })
    }
}

/// `btime` of `/proc/stat`: boot time in seconds since the epoch.
fn boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The first number of the `key` line of `/proc/self/status` (`VmRSS:   1234 kB`).
fn field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix(key))?;
    line.split_whitespace().next()?.parse().ok()
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_open_files(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let text = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194304 1500 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 3000000 2000 18446744073709551615";
        assert_eq!(
            Stat::parse(text),
            Some(Stat {
                utime: 250,
                stime: 75,
                start: 123456
            })
        );
        assert_eq!(Stat::parse("4242 (x) S 1"), None);
    }

    #[test]
    fn status_limits_and_boot_time_fields() {
        let status = "Name:\tidm-sync\nVmSize:\t  123456 kB\nVmRSS:\t    2048 kB\nThreads:\t9\n";
        assert_eq!(field(status, "VmRSS:"), Some(2048));
        assert_eq!(field(status, "VmSize:"), Some(123_456));
        assert_eq!(field(status, "Threads:"), Some(9));
        assert_eq!(field(status, "VmSwap:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1764000000\nprocesses 9\n"),
            Some(1_764_000_000)
        );
    }
}
