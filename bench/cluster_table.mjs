// The markdown tables of a cluster result (bench/results/cluster-*.json): written next to the
// result by cluster_summary.mjs and put into docs/benchmarks.md by report.mjs.
const NAME = { switchboard: 'Switchboard', 'switchboard-nats': 'Switchboard', socketio: 'Socket.IO' };
const f = (v, d = 1) => (v == null || !Number.isFinite(v) ? '—' : v.toFixed(d));
const int = (v) => (v == null ? '—' : Math.round(v).toLocaleString('en-US'));
const lat = (x, p) => f(x.latency_ms?.[p], 1);
const unit = (v, u) => (v == null || !Number.isFinite(v) ? '—' : `${f(v)} ${u}`);
// Results from before the NATS engine have no `broker` field: their cluster rows are on Redis.
const brokerOf = (x) => x.broker ?? (x.engine === 'memory' ? 'none' : 'redis');
const brokerCpu = (x) => (brokerOf(x) === 'none' ? null : x.broker_cpu_pct ?? x.redis_cpu_pct);
const broker = (x, d) => {
  const b = brokerOf(x);
  if (b === 'none') return x.server === 'socketio' ? 'none (in-memory adapter)' : 'none (memory engine)';
  if (b === 'nats') return `NATS JetStream (engine, ${d.nats_storage || 'file'} storage)`;
  return x.server === 'socketio' ? 'Redis (redis-adapter)' : 'Redis (engine)';
};
// The fan-out table's broker: what the cluster row ran on.
const clusterBroker = (x, d) => {
  if (x.cluster_engine == null) return '—';
  if (x.cluster_engine === 'memory') return 'none (memory engine)';
  if (x.cluster_engine === 'nats') return `NATS JetStream (engine, ${d.nats_storage || 'file'} storage)`;
  return x.server === 'socketio' ? 'Redis (redis-adapter)' : 'Redis (engine)';
};

export function clusterMarkdown(d) {
  const p = d.params;
  const nats = d.rows.some((x) => brokerOf(x) === 'nats');
  const redis = d.rows.some((x) => brokerOf(x) === 'redis');
  const brokers = [redis && d.redis_version ? `Redis ${d.redis_version}` : null,
                   nats ? `nats-server ${d.nats_version || '?'} (JetStream, ${d.nats_storage || 'file'} storage)` : null]
    .filter(Boolean).join(', ');
  let md = `Cluster bench ${d.date} (commit ${d.commit}${d.dirty ? ', dirty' : ''})${brokers ? `, ${brokers}` : ''}, ` +
           `${d.machine.nproc} cores, scale ${p.scale}\n\n`;
  const load = d.rows.filter((y) => y.test === 'load');
  if (load.length) {
    md += `Load: ${int(p.conns)} subscribers over ${p.nodes} nodes, ${int(p.rooms)} rooms, ` +
          `1 publisher per room at 1 msg / ${p.interval}, ${p.duration_s} s, publishers ` +
          `${p.publish === 'spread' ? 'spread over the nodes' : 'on the first node'}\n\n`;
    md += '| server | broker | nodes | connections | p50 ms | p99 ms | max ms | deliveries/s | delivered / expected | lost | broker CPU | nodes CPU | node RSS / conn | generator: busiest process, send lag p99 |\n';
    md += '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n';
    for (const x of load) {
      md += `| ${NAME[x.server] ?? x.server}${x.ok ? '' : ' (failed)'} | ${broker(x, d)} | ${x.nodes} | ${int(x.connections)}` +
            `${x.connects_failed ? ` (+${int(x.connects_failed)} failed)` : ''}` +
            `${x.drops ? `, ${int(x.drops)} dropped by a node` : ''} | ${lat(x, 'p50')} | ${lat(x, 'p99')} | ` +
            `${lat(x, 'max')} | ${int(x.deliveries_per_s)} | ${int(x.deliveries)} / ${int(x.expected)}` +
            // Sends a generator more than 1 s behind its schedule skipped: not offered, so not
            // expected either.
            `${x.sends_skipped ? ` (${int(x.sends_skipped)} publications skipped)` : ''} | ${int(x.lost)} | ` +
            `${unit(brokerCpu(x), '%')} | ${unit(x.nodes_cpu_pct, '%')} | ${unit(x.rss_per_conn_kib, 'KiB')} | ` +
            `${x.generator_busiest_cpu == null ? '—' : `${f(x.generator_busiest_cpu * 100, 0)} %`}` +
            `${x.generator_busiest_cpu > 0.9 ? ' †' : ''}, ${f(x.send_lag_p99_ms)} ms |\n`;
    }
    if (d.rows.some((x) => x.test === 'load' && x.generator_busiest_cpu > 0.9)) {
      md += '\n† a generator process was busy over 90 % of the traffic phase: that row measures the generator as much as the servers\n';
    }
  }
  if (d.fanout?.length) {
    md += `\nFan-out: 1 room × ${int(p.fan_subs)} subscribers, ${p.fan_msgs} publications, ` +
          `${p.fan_window} unacknowledged\n\n`;
    md += '| server | cluster broker | 1 node, no broker: deliveries/s | cluster: deliveries/s | cluster ÷ 1 node |\n|---|---|--:|--:|--:|\n';
    for (const x of d.fanout) {
      md += `| ${NAME[x.server] ?? x.server} | ${clusterBroker(x, d)} | ${int(x.single_node_deliveries_per_s)} | ` +
            `${int(x.cluster_deliveries_per_s)} (${x.cluster_nodes ?? '—'} nodes) | ${f(x.ratio, 2)} |\n`;
    }
    for (const x of d.rows.filter((y) => y.test === 'fanout' && (y.lost > 0 || !y.ok))) {
      md += `\n${NAME[x.server] ?? x.server}, ${broker(x, d)}, ${x.nodes} node(s): lost ${int(x.lost)}${x.ok ? '' : ', failed'}\n`;
    }
  }
  return md;
}
