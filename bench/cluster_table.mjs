// The markdown tables of a cluster result (bench/results/cluster-*.json): written next to the
// result by cluster_summary.mjs and put into docs/benchmarks.md by report.mjs.
const NAME = { switchboard: 'Switchboard', socketio: 'Socket.IO' };
const f = (v, d = 1) => (v == null || !Number.isFinite(v) ? '—' : v.toFixed(d));
const int = (v) => (v == null ? '—' : Math.round(v).toLocaleString('en-US'));
const lat = (x, p) => f(x.latency_ms?.[p], 1);
const broker = (x) => {
  if (x.engine === 'memory') return 'none (memory engine)';
  return x.server === 'socketio' ? 'Redis (redis-adapter)' : 'Redis (engine)';
};

export function clusterMarkdown(d) {
  const p = d.params;
  let md = `Cluster bench ${d.date} (commit ${d.commit}${d.dirty ? ', dirty' : ''}), Redis ${d.redis_version}, ` +
           `${d.machine.nproc} cores, scale ${p.scale}\n\n`;
  md += `Load: ${int(p.conns)} subscribers over ${p.nodes} nodes, ${int(p.rooms)} rooms, ` +
        `1 publisher per room at 1 msg / ${p.interval}, ${p.duration_s} s, publishers ` +
        `${p.publish === 'spread' ? 'spread over the nodes' : 'on the first node'}\n\n`;
  md += '| server | broker | nodes | connections | p50 ms | p99 ms | max ms | deliveries/s | delivered / expected | lost | Redis CPU | nodes CPU | node RSS / conn | generator: busiest process, send lag p99 |\n';
  md += '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n';
  for (const x of d.rows.filter((y) => y.test === 'load')) {
    md += `| ${NAME[x.server] ?? x.server}${x.ok ? '' : ' (failed)'} | ${broker(x)} | ${x.nodes} | ${int(x.connections)}` +
          `${x.connects_failed ? ` (+${int(x.connects_failed)} failed)` : ''}` +
          `${x.drops ? `, ${int(x.drops)} dropped by a node` : ''} | ${lat(x, 'p50')} | ${lat(x, 'p99')} | ` +
          `${lat(x, 'max')} | ${int(x.deliveries_per_s)} | ${int(x.deliveries)} / ${int(x.expected)}` +
          // Sends a generator more than 1 s behind its schedule skipped: not offered, so not
          // expected either.
          `${x.sends_skipped ? ` (${int(x.sends_skipped)} publications skipped)` : ''} | ${int(x.lost)} | ` +
          `${f(x.redis_cpu_pct)} % | ${f(x.nodes_cpu_pct)} % | ${f(x.rss_per_conn_kib)} KiB | ` +
          `${x.generator_busiest_cpu == null ? '—' : `${f(x.generator_busiest_cpu * 100, 0)} %`}` +
          `${x.generator_busiest_cpu > 0.9 ? ' †' : ''}, ${f(x.send_lag_p99_ms)} ms |\n`;
  }
  if (d.rows.some((x) => x.test === 'load' && x.generator_busiest_cpu > 0.9)) {
    md += '\n† a generator process was busy over 90 % of the traffic phase: that row measures the generator as much as the servers\n';
  }
  if (d.fanout?.length) {
    md += `\nFan-out: 1 room × ${int(p.fan_subs)} subscribers, ${p.fan_msgs} publications, ` +
          `${p.fan_window} unacknowledged\n\n`;
    md += '| server | 1 node, no broker: deliveries/s | cluster: deliveries/s | cluster ÷ 1 node |\n|---|--:|--:|--:|\n';
    for (const x of d.fanout) {
      md += `| ${NAME[x.server] ?? x.server} | ${int(x.single_node_deliveries_per_s)} | ${int(x.cluster_deliveries_per_s)}` +
            ` (${x.cluster_nodes ?? '—'} nodes, ${x.cluster_engine ?? '—'}) | ${f(x.ratio, 2)} |\n`;
    }
    for (const x of d.rows.filter((y) => y.test === 'fanout' && (y.lost > 0 || !y.ok))) {
      md += `\n${NAME[x.server] ?? x.server}, ${x.nodes} node(s): lost ${int(x.lost)}${x.ok ? '' : ', failed'}\n`;
    }
  }
  return md;
}
