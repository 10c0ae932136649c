//! Prometheus text exposition of the server's figures (`/metrics`).

use super::ProcessInfo;
use crate::server::Server;
use crate::time::Now;

impl Server {
    /// Prometheus text exposition (format 0.0.4). Names follow Prometheus
    /// conventions: `natrix_` prefix, base units, `_total` on counters.
    pub(super) fn metrics(&self, now: Now, p: &ProcessInfo) -> String {
        let c = self.stats.counters;
        let info = format!(
            "{{server_id=\"{}\",server_name=\"{}\",version=\"{}\",compatible_with=\"{}\"}}",
            self.info.server_id,
            self.info.server_name,
            crate::VERSION,
            self.info.version
        );
        let acc = "{account=\"$G\"}";
        // (name, type, help, labels, value): one sample each.
        #[rustfmt::skip]
        let samples: [(&str, &str, &str, &str, f64); 15] = [
            ("natrix_info", "gauge", "Server identity; always 1.",
             &info, 1.0),
            ("natrix_connections", "gauge", "Client connections open now.",
             "", self.open_conns as f64),
            ("natrix_connections_total", "counter", "Client connections accepted since start.",
             "", self.stats.total_connections as f64),
            ("natrix_subscriptions", "gauge", "Subscriptions now.",
             "", self.subs.len() as f64),
            ("natrix_in_messages_total", "counter", "Messages received from clients.",
             "", c.in_msgs as f64),
            ("natrix_out_messages_total", "counter", "Messages delivered to clients.",
             "", c.out_msgs as f64),
            ("natrix_in_bytes_total", "counter", "Payload bytes received from clients.",
             "", c.in_bytes as f64),
            ("natrix_out_bytes_total", "counter", "Payload bytes delivered to clients.",
             "", c.out_bytes as f64),
            ("natrix_slow_consumers_total", "counter", "Connections closed as slow consumers.",
             "", self.stats.slow_consumers as f64),
            ("natrix_account_connections", "gauge", "Client connections open now, per account.",
             acc, self.open_conns as f64),
            ("natrix_account_in_messages_total", "counter", "Messages received, per account.",
             acc, c.in_msgs as f64),
            ("natrix_account_out_messages_total", "counter", "Messages delivered, per account.",
             acc, c.out_msgs as f64),
            ("natrix_uptime_seconds", "gauge", "Seconds since the server started.",
             "", now.instant.since(self.start_instant).as_secs_f64()),
            ("natrix_resident_memory_bytes", "gauge", "Resident memory of the process.",
             "", p.mem_bytes as f64),
            ("natrix_cpu_percent", "gauge", "CPU use since start, percent of one core.",
             "", p.cpu_percent),
        ];
        let mut out = String::new();
        for (name, kind, help, labels, value) in samples {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            out.push_str(&format!("{name}{labels} {value}\n"));
        }
        out
    }
}
