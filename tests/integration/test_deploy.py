#!/usr/bin/python3
"""Integration: the operator files in deploy/ match what the server exports.

1. metrics_exist: every `switchboard_*` metric named in deploy/prometheus-alerts.yml and
   deploy/grafana-dashboard.json is a family a running server exports on /metrics (histogram
   series by their _bucket/_sum/_count names; the cluster and TLS families, exported only with
   a shared engine or TLS, must be in the renderer's source), and every label value they select on for the
   fixed-label families (disconnect codes, handshake reasons, refusal reasons, recovery and
   resume results, transports) is one the server writes. A renamed metric fails here, not on
   an operator's dashboard.
2. files_parse: the dashboard is valid JSON with a Prometheus datasource variable and a query
   per panel; every alert rule has alert, expr, labels.severity and a summary; the systemd
   template runs `switchboard serve` with --handover-socket in its RuntimeDirectory.

  /usr/bin/python3 tests/integration/test_deploy.py --server build/release/switchboard
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import Reporter  # noqa: E402
from messaging import Server, check, metrics_async, run_case, suite_arguments  # noqa: E402

REPO = Path(__file__).resolve().parent.parent.parent
DEPLOY = REPO / "deploy"
NAME_RE = re.compile(r"\bswitchboard_[a-z_]+\b")
# label="value" or label=~"a|b" inside a selector of a switchboard_ metric
SELECTOR_RE = re.compile(r"(switchboard_[a-z_]+)\{([^}]*)\}")
MATCHER_RE = re.compile(r'(\w+)\s*(=~|=|!=|!~)\s*"([^"]*)"')
# Exported only with a shared engine (Redis, NATS) or with TLS: checked against the renderer's
# source instead of a memory-engine server's /metrics.
CONDITIONAL = {"switchboard_cluster_nodes", "switchboard_cluster_node_connections",
               "switchboard_engine_reconnects_total", "switchboard_tls_handshakes_total"}


def referenced_texts() -> list[str]:
    texts = [(DEPLOY / "prometheus-alerts.yml").read_text()]
    dash = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    for p in dash["panels"]:
        for t in p.get("targets", []):
            texts.append(t["expr"])
    return texts


class Suite:
    def __init__(self, binary: str):
        self.binary = binary

    async def case_metrics_exist(self):
        s = Server(self.binary, "", name="deploy", threads=2)
        try:
            m = await metrics_async(s)
        finally:
            s.close()
        families = set()
        label_values: dict[tuple[str, str], set[str]] = {}
        for key in m:
            name, _, labels = key.partition("{")
            families.add(name)
            for base in ("_bucket", "_sum", "_count"):
                if name.endswith(base):
                    families.add(name[: -len(base)])
            for lk, lv in re.findall(r'(\w+)="([^"]*)"', labels):
                label_values.setdefault((name, lk), set()).add(lv)
        renderer = (REPO / "src" / "server" / "metrics.cpp").read_text()
        missing = set()
        bad_values = []
        for text in referenced_texts():
            for name in NAME_RE.findall(text):
                if name in CONDITIONAL:
                    if name not in renderer:
                        missing.add(name)
                elif name not in families:
                    missing.add(name)
            for name, sel in SELECTOR_RE.findall(text):
                for label, op, value in MATCHER_RE.findall(sel):
                    known = label_values.get((name, label))
                    if known is None or label == "instance":
                        continue
                    wanted = value.split("|") if op in ("=~", "!~") else [value]
                    for v in wanted:
                        if v and not v.startswith("$") and v not in known:
                            bad_values.append(f"{name}{{{label}={v!r}}} (server writes {sorted(known)})")
        check(not missing, f"deploy files name metrics the server does not export: {sorted(missing)}")
        check(not bad_values, f"deploy files select label values the server never writes: {bad_values}")

    async def case_files_parse(self):
        dash = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
        check(any(v.get("type") == "datasource" and v.get("query") == "prometheus"
                  for v in dash["templating"]["list"]), "dashboard: no Prometheus datasource variable")
        check(dash["panels"] and all(p.get("targets") and all(t.get("expr") for t in p["targets"])
                                     for p in dash["panels"]), "dashboard: a panel without a query")
        rules = (DEPLOY / "prometheus-alerts.yml").read_text()
        blocks = re.split(r"\n\s+- alert: ", rules)[1:]
        check(len(blocks) >= 5, f"alert rules: {len(blocks)} found")
        for b in blocks:
            name = b.split("\n", 1)[0]
            check("expr:" in b and "severity:" in b and "summary:" in b,
                  f"alert {name}: needs expr, labels.severity and annotations.summary")
        unit = (DEPLOY / "switchboard@.service").read_text()
        check("switchboard serve" in unit and "--handover-socket /run/switchboard/" in unit and
              "RuntimeDirectory=switchboard" in unit and "RuntimeDirectoryPreserve=yes" in unit,
              "switchboard@.service: serve with --handover-socket in its preserved RuntimeDirectory")


async def main() -> int:
    args = suite_arguments(__doc__)
    rep = Reporter("integration.test_deploy")
    suite = Suite(args.server)
    for name in ("metrics_exist", "files_parse"):
        await run_case(rep, name, getattr(suite, "case_" + name), timeout=60)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
