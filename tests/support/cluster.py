"""Multi-node helpers for the cluster suites (tests/cluster/): the shared broker (a
redis-server, or a nats-server with JetStream), N switchboard nodes sharing it ([broker]
engine = "redis" or "nats"), and HAProxy running deploy/haproxy.cfg itself (the file a user
copies; addresses come in through its environment variables).

Python 3.11 standard library only (plus messaging.py's python3-websockets client for /ws).
Every process is started by us and stopped by its PID (SIGTERM, then SIGKILL); nothing ever
signals a process by name. Ports come from the OS: nodes print theirs (--port 0), redis, nats
and haproxy get one found by binding port 0 and closing it. Waits poll with deadlines; no sleep is
a synchronization.
"""

from __future__ import annotations

import atexit
import errno
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Deadline, HarnessError, ServerProcess  # noqa: E402
from messaging import API_KEY  # noqa: E402

SUPPORT_DIR = Path(__file__).resolve().parent
REPO_ROOT = SUPPORT_DIR.parent.parent
HAPROXY_CFG = REPO_ROOT / "deploy" / "haproxy.cfg"

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
NATS_SERVER = shutil.which("nats-server") or "/usr/bin/nats-server"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


class ClusterError(HarnessError):
    """A helper could not bring a process up (or down) as asked; the message says why."""


# --------------------------------------------------------------------------------------------
# Bookkeeping: every process we start is stopped at exit even if a case forgets it


_LIVE: list = []


def _stop_everything():
    for p in list(_LIVE):
        try:
            p.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_stop_everything)


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port the OS just handed out (bound to 0, then closed), never the same one twice in a
    run (the OS may offer a port again at once: two listeners of ours on one port would share
    it under SO_REUSEPORT). Racy by nature: a caller that fails to bind it retries."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise ClusterError("no fresh port from the OS in 100 tries")


def _stop_pid(proc: subprocess.Popen, grace: float = 5.0):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _tail(path: str | Path, n: int = 1500) -> str:
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")
    except OSError:
        return ""


def missing_tools(engine: str = "redis") -> list[str]:
    """The external programs this suite needs with `engine` that are not installed (CI
    installs them)."""
    out = []
    if engine == "redis" and not os.access(REDIS_SERVER, os.X_OK):
        out.append("redis-server (apt-get install -y redis-server)")
    if engine == "nats" and not os.access(NATS_SERVER, os.X_OK):
        out.append("nats-server (apt-get install -y nats-server)")
    if not os.access(HAPROXY, os.X_OK):
        out.append("haproxy (apt-get install -y haproxy)")
    return out


# --------------------------------------------------------------------------------------------
# Redis


def _resp_encode(args) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
    return b"".join(out)


def _resp_read(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise ClusterError(f"redis error: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise ClusterError(f"unexpected RESP line {line!r}")


def redis_command(port: int, *args, timeout: float = 2.0):
    """One command on a fresh connection to 127.0.0.1:port; the decoded RESP reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(_resp_encode(args))
        with s.makefile("rb") as f:
            return _resp_read(f)


class Redis:
    """redis-server --port P --bind 127.0.0.1 --save "" --appendonly no --daemonize no: no
    persistence, so a restart comes back empty."""

    def __init__(self, workdir: str | Path, port: int | None = None, start_timeout: float = 10.0):
        self.workdir = Path(workdir)
        self.port = port
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / f"redis-{id(self):x}.log"
        self.starts = 0
        self.start()
        _LIVE.append(self)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, empty: bool = True):
        """Starts (or starts again, on the same port once one was chosen) and waits for PING.
        A fresh port is tried again if another process took it; the fixed port of a restart
        is retried until the deadline (the old instance's socket may linger a moment).
        Always empty (no persistence): empty=False cannot be honoured and is an error."""
        if not empty:
            raise ClusterError("this redis-server has no persistence: it can only start empty")
        if self.proc is not None and self.proc.poll() is None:
            raise ClusterError("redis is already running")
        fixed = self.port is not None
        deadline = Deadline(self.start_timeout)
        last = ""
        tries = 0
        while True:
            tries += 1
            if not fixed:
                self.port = free_port()
            self.starts += 1
            with open(self.log_path, "ab") as log:
                log.write(f"--- start #{self.starts} on port {self.port}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--daemonize", "no",
                     "--dir", str(self.workdir), "--logfile", ""],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True)
            while not deadline.expired() and self.proc.poll() is None:
                try:
                    # Ours, not another run's Redis that holds the port (ours then exits).
                    if redis_command(self.port, "PING", timeout=1) == "PONG" and \
                            self._server_pid() == self.proc.pid:
                        return
                except (OSError, ConnectionError, ClusterError):
                    pass
                time.sleep(0.02)  # polling period
            last = _tail(self.log_path, 600)
            if self.proc.poll() is None:
                _stop_pid(self.proc)
            if deadline.expired() or (not fixed and tries >= 3):
                break
            time.sleep(0.1)  # pause before binding again
        raise ClusterError(f"redis-server did not answer PING on port {self.port} within "
                           f"{self.start_timeout}s: {last}")

    def _server_pid(self) -> int | None:
        info = redis_command(self.port, "INFO", "server", timeout=1)
        for line in (info or b"").decode(errors="replace").splitlines():
            if line.startswith("process_id:"):
                return int(line.split(":", 1)[1])
        return None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM):
        """Stops it by PID (SIGTERM: it closes every client connection; SIGKILL: the kernel
        does) and waits for the exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if getattr(self, "paused", False):
            self.resume()
        os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def pause(self):
        """SIGSTOP: the process stays, its sockets stay open, nothing answers (a hung Redis or
        a network partition, as the nodes see it: no EOF, only timeouts)."""
        if self.running():
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.running():
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def restart_empty(self, sig: int = signal.SIGTERM):
        self.stop(sig)
        self.start()

    def unreachable_address(self, port: int) -> str:
        return f"127.0.0.1:{port}"

    def command(self, *args, timeout: float = 2.0):
        return redis_command(self.port, *args, timeout=timeout)

    def keys(self, pattern: str = "*") -> list[str]:
        """Every key (SCAN, never KEYS)."""
        out, cursor = [], b"0"
        while True:
            cursor, batch = self.command("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            out.extend(k.decode(errors="replace") for k in batch)
            if cursor in (b"0", 0, "0"):
                return out

    def pubsub_channels(self) -> list[str]:
        return [c.decode(errors="replace") for c in self.command("PUBSUB", "CHANNELS", "*")]

    def log_tail(self, n: int = 1500) -> str:
        return _tail(self.log_path, n)

    def close(self):
        self.stop()
        if self in _LIVE:
            _LIVE.remove(self)


# --------------------------------------------------------------------------------------------
# NATS (JetStream)


def _http_json(port: int, path: str, timeout: float = 2.0):
    """(status, parsed JSON or text) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def nats_info(port: int, timeout: float = 1.0) -> dict:
    """The INFO a nats-server sends first on a client connection (its server_name, jetstream,
    ...): who really listens on the port."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with s.makefile("rb") as f:
            line = f.readline()
    if not line.startswith(b"INFO "):
        raise ClusterError(f"not a NATS server on port {port}: {line[:80]!r}")
    return json.loads(line[5:])


class Nats:
    """nats-server -a 127.0.0.1 -p P -m M -js -sd STORE -n NAME: JetStream on a file store in
    the case's directory. start()/restart() keep the store (streams, KV buckets and their
    data survive, as on a real restart); start(empty=True)/restart_empty() wipe it first (a
    new server: every channel gets a new epoch). Ready means: the client port answers INFO
    with our server_name and jetstream, and GET /healthz on the monitoring port (which in
    2.9 also checks that JetStream and every stream recovered) is 200."""

    def __init__(self, workdir: str | Path, port: int | None = None,
                 start_timeout: float = 10.0):
        self.workdir = Path(workdir)
        self.port = port
        self.monitor_port: int | None = None
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.paused = False
        self.tag = f"{id(self):x}"
        self.store_dir = self.workdir / f"nats-{self.tag}-store"
        self.log_path = self.workdir / f"nats-{self.tag}.log"
        self.starts = 0
        self.server_name = ""
        self.start(empty=True)
        _LIVE.append(self)

    @property
    def address(self) -> str:
        """What broker.nats_url takes."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self, empty: bool = False):
        """Starts (or starts again, on the same ports once they were chosen) and waits until
        ready. empty=True wipes the store dir first. Fresh ports are tried again if another
        process took one; the fixed ports of a restart are retried until the deadline."""
        if self.running():
            raise ClusterError("nats-server is already running")
        if empty:
            shutil.rmtree(self.store_dir, ignore_errors=True)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        fixed = self.port is not None
        deadline = Deadline(self.start_timeout)
        last = ""
        tries = 0
        while True:
            tries += 1
            if not fixed:
                self.port = free_port()
            if self.monitor_port is None or (not fixed and tries > 1):
                self.monitor_port = free_port()
            self.starts += 1
            self.server_name = f"sbtest-{os.getpid()}-{self.tag}-{self.starts}"
            with open(self.log_path, "ab") as log:
                log.write(f"--- start #{self.starts} on port {self.port} (monitor "
                          f"{self.monitor_port}, store {self.store_dir}, "
                          f"{'empty' if empty else 'kept'})\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port),
                     "-m", str(self.monitor_port), "-js", "-sd", str(self.store_dir),
                     "-n", self.server_name],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True)
            self.paused = False
            while not deadline.expired() and self.proc.poll() is None:
                try:
                    info = nats_info(self.port)
                    if info.get("server_name") == self.server_name and info.get("jetstream"):
                        status, body = _http_json(self.monitor_port, "/healthz", timeout=1)
                        if status == 200:
                            return
                        last = f"/healthz {status} {str(body)[:200]}"
                except (OSError, ValueError, ClusterError):
                    pass
                time.sleep(0.02)  # polling period
            log = _tail(self.log_path, 4000)
            fatal = [ln for ln in log.splitlines() if "[FTL]" in ln or "[ERR]" in ln]
            last = (last + " " + (" | ".join(fatal[-3:]) if fatal else log[-600:])).strip()
            if self.proc.poll() is None:
                _stop_pid(self.proc)
            if deadline.expired() or (not fixed and tries >= 3):
                break
            time.sleep(0.1)  # pause before binding again
        raise ClusterError(f"nats-server did not become ready on port {self.port} (monitor "
                           f"{self.monitor_port}) within {self.start_timeout}s: {last}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM):
        """Stops it by PID (SIGTERM: it closes every client connection and flushes the store;
        SIGKILL: the kernel closes them) and waits for the exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.paused:
            self.resume()
        os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def pause(self):
        """SIGSTOP: the process stays, its sockets stay open, nothing answers."""
        if self.running():
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.running():
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def restart(self, sig: int = signal.SIGTERM):
        """Stop and start on the same ports with the same store: JetStream data survives."""
        self.stop(sig)
        self.start(empty=False)

    def restart_empty(self, sig: int = signal.SIGTERM):
        """Stop, wipe the store, start on the same ports: like a Redis that comes back empty."""
        self.stop(sig)
        self.start(empty=True)

    def unreachable_address(self, port: int) -> str:
        return f"nats://127.0.0.1:{port}"

    # ---- what the server holds (monitoring endpoint)
    def monitor(self, path: str, timeout: float = 2.0):
        status, out = _http_json(self.monitor_port, path, timeout)
        if status != 200 or not isinstance(out, dict):
            raise ClusterError(f"nats monitoring GET {path} → {status} {str(out)[:300]}")
        return out

    def streams(self) -> list[dict]:
        """Every JetStream stream (KV buckets are streams named KV_<bucket>): [{name,
        subjects, messages}]."""
        out = self.monitor("/jsz?accounts=true&streams=true&config=true")
        res = []
        for acc in out.get("account_details") or []:
            for st in acc.get("stream_detail") or []:
                cfg = st.get("config") or {}
                res.append({"name": st.get("name"), "subjects": cfg.get("subjects") or [],
                            "messages": (st.get("state") or {}).get("messages")})
        return res

    def client_subscriptions(self) -> list[str]:
        """The subjects every client connection subscribes to."""
        out = self.monitor("/connz?subs=true&limit=10000")
        return [s for c in out.get("connections") or [] for s in c.get("subscriptions_list")
                or []]

    def connections(self) -> int:
        return int(self.monitor("/connz").get("num_connections", 0))

    def log_tail(self, n: int = 1500) -> str:
        return _tail(self.log_path, n)

    def close(self):
        self.stop()
        if self in _LIVE:
            _LIVE.remove(self)


# --------------------------------------------------------------------------------------------
# Switchboard nodes


class Endpoint:
    """Where clients go: a node, or the balancer in front of them. messaging.Client.open and
    messaging.http_call need only host, port and ws_url."""

    def __init__(self, host: str, port: int, name: str):
        self.host, self.port, self.name = host, port, name

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    def __repr__(self):
        return f"<{self.name} {self.host}:{self.port}>"


def wait_for_binary(binary: str, seconds: float = 180.0):
    """The binary is rebuilt from time to time (briefly missing): wait for it to be back."""
    deadline = Deadline(seconds)
    while not os.access(binary, os.X_OK):
        if deadline.expired():
            raise ClusterError(f"{binary}: not an executable file for {seconds:.0f}s")
        time.sleep(0.5)  # polling period while someone else rebuilds it


def binary_help(binary: str) -> str:
    wait_for_binary(binary)
    for _ in range(20):
        try:
            r = subprocess.run([binary, "serve", "--help"], capture_output=True, timeout=30)
            return (r.stdout + r.stderr).decode(errors="replace")
        except OSError as e:  # ETXTBSY / ENOENT while the linker writes it
            if e.errno not in (errno.ETXTBSY, errno.ENOENT):
                raise
            time.sleep(0.5)  # polling period while it is being rewritten
    raise ClusterError(f"{binary} serve --help could not be run")


def has_redis_engine(binary: str) -> bool:
    return "redis" in binary_help(binary).lower()


def has_nats_engine(binary: str) -> bool:
    """`serve --help` lists the nats engine's own flag (the word alone could be "NATs")."""
    return "--nats-url" in binary_help(binary)


def has_engine(binary: str, engine: str) -> bool:
    return {"redis": has_redis_engine, "nats": has_nats_engine}[engine](binary)


def is_sanitized(binary: str) -> bool:
    wait_for_binary(binary)
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def broker_toml(engine: str, redis_address: str | None = None, prefix: str | None = None,
                node_ttl: str = "2s", node_name: str = "", extra: str = "") -> str:
    """The [broker] table of the contract (config keys broker.*). `redis_address` is the
    broker's address whatever the engine (for nats: broker.nats_url, nats://host:port)."""
    if engine == "memory":
        return "[broker]\nengine = \"memory\"\n"
    if engine not in ("redis", "nats"):
        raise ValueError(f"unknown engine {engine!r}")
    lines = ["[broker]", f'engine = "{engine}"']
    if redis_address:
        lines.append(f'{engine}_{"address" if engine == "redis" else "url"} = '
                     f'"{redis_address}"')
    if prefix:
        lines.append(f'{engine}_prefix = "{prefix}"')
    lines.append(f'node_ttl = "{node_ttl}"')
    lines.append(f'{engine}_timeout = "2s"')
    if node_name:
        lines.append(f'node_name = "{node_name}"')
    if extra:
        lines.append(extra.strip())
    return "\n".join(lines) + "\n"


class Node(Endpoint):
    """One switchboard process (serve --config FILE --host 127.0.0.1 --port 0)."""

    def __init__(self, binary: str, config: str, name: str, workdir: str | Path,
                 threads: int = 1, flags: tuple[str, ...] = (), log_level: str = "warn",
                 start_timeout: float = 20.0, env: dict | None = None):
        self.binary = binary
        self.config_path = Path(workdir) / f"{name}.toml"
        self.config_path.write_text(config)
        self.argv = [binary, "serve", "--config", str(self.config_path), "--host", "127.0.0.1",
                     "--port", "0", "--threads", str(threads), "--log-level", log_level, *flags]
        self.killed = False
        self.terminated = False
        self.proc = self._spawn(name, start_timeout, env)
        super().__init__(self.proc.host, self.proc.port, name)
        self.pid = self.proc.proc.pid
        _LIVE.append(self)

    def _spawn(self, name, start_timeout, env) -> ServerProcess:
        deadline = Deadline(180)
        while True:
            wait_for_binary(self.binary, max(1.0, deadline.remaining()))
            try:
                return ServerProcess(self.argv, name=name, start_timeout=start_timeout,
                                     env=env)
            except OSError as e:  # replaced while we exec'd it
                if e.errno not in (errno.ETXTBSY, errno.ENOENT, errno.EACCES) or \
                        deadline.expired():
                    raise
                time.sleep(0.5)  # polling period while it is being rewritten

    def alive(self) -> bool:
        return self.proc.alive()

    def kill9(self):
        """kill -9, by PID; waits for the exit."""
        self.killed = True
        self.proc.signal(signal.SIGKILL)
        self.proc.wait_exit(5)

    def terminate(self):
        """Sends SIGTERM (by PID) without waiting: stop(many) in parallel."""
        if not self.terminated:
            self.terminated = True
            self.proc.signal(signal.SIGTERM)

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, up to `grace` s for the exit, then SIGKILL. Returns the exit status of a
        SIGTERM we sent (None if it had to be killed, or was killed by us before)."""
        rc = None
        if self.proc.alive():
            self.terminate()   # once: a second SIGTERM may mean "now" to a server
            rc = self.proc.wait_exit(grace)
        elif not self.killed:
            rc = self.proc.proc.returncode
        if self.proc.alive():   # past the grace period
            self.proc.signal(signal.SIGKILL)
            self.proc.wait_exit(5)
        self.proc.close()   # closes the pipes and the log
        if self in _LIVE:
            _LIVE.remove(self)
        return rc

    def sanitizer_verdict(self) -> str:
        log = self.proc.log_tail(20000)
        return " | ".join(ln.strip()[:200] for ln in log.splitlines()
                          if "ERROR: AddressSanitizer" in ln or "ERROR: LeakSanitizer" in ln or
                          "runtime error:" in ln or ln.startswith("SUMMARY:"))[:800]

    def death(self) -> str | None:
        """None while it runs (or when we killed it); else how it ended, with the log tail."""
        rc = self.proc.proc.poll()
        if rc is None or self.killed:
            return None
        log = self.proc.log_tail(3000)
        verdict = [ln.strip()[:200] for ln in log.splitlines()
                   if "ERROR: AddressSanitizer" in ln or "runtime error:" in ln or
                   ln.startswith("SUMMARY:")]
        how = f"killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
        return (f"node {self.name} (pid {self.pid}) {how}: " +
                (" | ".join(verdict) if verdict else log[-600:].replace("\n", " / ")))

    def log_tail(self, n: int = 1500) -> str:
        return self.proc.log_tail(n)

    # ---- HTTP
    def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        finally:
            conn.close()

    def api(self, name: str, body: dict | None = None, timeout: float = 5.0):
        """(status, parsed JSON or text) of POST /api/NAME with the key."""
        return http_api(self, name, body, timeout)

    def info(self) -> dict:
        status, out = self.api("info")
        if status != 200 or not isinstance(out, dict):
            raise ClusterError(f"{self.name}: POST /api/info → {status} {str(out)[:300]}")
        return out


def http_api(ep: Endpoint, name: str, body: dict | None = None, timeout: float = 5.0):
    conn = http.client.HTTPConnection(ep.host, ep.port, timeout=timeout)
    try:
        data = json.dumps(body if body is not None else {}).encode()
        conn.request("POST", f"/api/{name}", body=data,
                     headers={"Authorization": f"apikey {API_KEY}",
                              "Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read().decode(errors="replace")
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw
    finally:
        conn.close()


class Publisher:
    """POST /api/publish over one keep-alive connection."""

    def __init__(self, ep: Endpoint, timeout: float = 5.0):
        self.ep = ep
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None
        self.served = 0   # requests answered on self.conn

    def publish(self, channel: str, data) -> tuple[int, object]:
        body = json.dumps({"channel": channel, "data": data}).encode()
        while True:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.ep.host, self.ep.port,
                                                       timeout=self.timeout)
                self.served = 0
            reused = self.served > 0
            try:
                self.conn.request("POST", "/api/publish", body=body,
                                  headers={"Authorization": f"apikey {API_KEY}",
                                           "Content-Type": "application/json"})
                resp = self.conn.getresponse()
                raw = resp.read().decode(errors="replace")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if reused:
                    # The server had closed the kept-alive connection while it was idle:
                    # once more on a fresh one. A fresh connection failing is reported.
                    continue
                raise
            self.served += 1
            try:
                return resp.status, json.loads(raw)
            except ValueError:
                return resp.status, raw

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# --------------------------------------------------------------------------------------------
# HAProxy (deploy/haproxy.cfg, unchanged)

# A second config file, test-only: a stats page to read the servers' health states from.
# HAProxy reads the files in order as one configuration, so this frontend inherits the
# deploy file's defaults.
# noreuseport: without it HAProxy binds with SO_REUSEPORT, and a port another run's HAProxy
# already holds would be shared silently instead of failing (and retried here).
_STATS_CFG = """\
global
    noreuseport

frontend sbtest_stats
    bind "${SB_TEST_STATS_BIND}"
    http-request set-log-level silent
    stats enable
    stats uri /stats
"""


class HAProxy(Endpoint):
    """haproxy -db -f deploy/haproxy.cfg -f <stats>, with SB_HAPROXY_BIND and SB_NODE1..3 in
    its environment. `haproxy -c` checks the same files first."""

    def __init__(self, backends: list[Endpoint], workdir: str | Path,
                 cfg: Path = HAPROXY_CFG, start_timeout: float = 10.0):
        if len(backends) != 3:
            raise ValueError("deploy/haproxy.cfg has three server lines (SB_NODE1..3)")
        self.workdir = Path(workdir)
        self.cfg = cfg
        self.stats_cfg = self.workdir / "haproxy-test-stats.cfg"
        self.stats_cfg.write_text(_STATS_CFG)
        self.log_path = self.workdir / f"haproxy-{id(self):x}.log"
        self.proc: subprocess.Popen | None = None
        last = ""
        for _ in range(3):  # a port taken between free_port() and haproxy's bind: again
            port, stats_port = free_port(), free_port()
            self.env = dict(os.environ)
            self.env.update({
                "SB_HAPROXY_BIND": f"127.0.0.1:{port}",
                "SB_TEST_STATS_BIND": f"127.0.0.1:{stats_port}",
            })
            for i, b in enumerate(backends, 1):
                self.env[f"SB_NODE{i}"] = f"{b.host}:{b.port}"
            argv = [HAPROXY, "-f", str(cfg), "-f", str(self.stats_cfg)]
            chk = subprocess.run([*argv[:1], "-c", *argv[1:]], env=self.env,
                                 capture_output=True, timeout=30)
            if chk.returncode != 0:
                raise ClusterError(f"haproxy -c -f {cfg}: exit {chk.returncode}: "
                                   f"{(chk.stdout + chk.stderr).decode(errors='replace')[-1500:]}")
            self.check_output = (chk.stdout + chk.stderr).decode(errors="replace")
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen([HAPROXY, "-db", *argv[1:]], env=self.env,
                                             stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            super().__init__("127.0.0.1", port, "haproxy")
            self.stats_port = stats_port
            deadline = Deadline(start_timeout)
            while not deadline.expired() and self.proc.poll() is None:
                try:
                    self.states()
                    _LIVE.append(self)
                    return
                except (OSError, ClusterError):
                    time.sleep(0.02)  # polling period
            last = _tail(self.log_path)
            if self.proc.poll() is None:
                _stop_pid(self.proc)
        raise ClusterError(f"haproxy did not come up: {last}")

    def stats_csv(self) -> list[dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.stats_port, timeout=2)
        try:
            conn.request("GET", "/stats;csv")
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
        finally:
            conn.close()
        if resp.status != 200:
            raise ClusterError(f"haproxy stats → {resp.status}")
        lines = [ln for ln in text.splitlines() if ln.strip()]
        header = lines[0].lstrip("# ").split(",")
        return [dict(zip(header, ln.split(","))) for ln in lines[1:]]

    def states(self) -> dict[str, str]:
        """{server name: status} of the backend's servers ("UP", "DOWN", "UP 1/2", ...)."""
        return {r["svname"]: r["status"] for r in self.stats_csv()
                if r.get("svname") not in ("FRONTEND", "BACKEND") and
                r.get("pxname") != "sbtest_stats"}

    def server_rows(self) -> dict[str, dict]:
        return {r["svname"]: r for r in self.stats_csv()
                if r.get("svname") not in ("FRONTEND", "BACKEND") and
                r.get("pxname") != "sbtest_stats"}

    def wait_states(self, want: dict[str, str], seconds: float) -> float:
        """Waits until every named server's status is exactly want[name]; returns the time
        it took."""
        t0 = time.monotonic()
        deadline = Deadline(seconds)
        last = {}
        while True:
            last = self.states()
            if all(last.get(k) == v for k, v in want.items()):
                return time.monotonic() - t0
            if deadline.expired():
                raise ClusterError(f"haproxy: servers {last} after {seconds}s, expected {want}")
            time.sleep(0.05)  # polling period of the stats page

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 1500) -> str:
        return _tail(self.log_path, n)

    def stop(self):
        if self.proc is not None:
            _stop_pid(self.proc)
        if self in _LIVE:
            _LIVE.remove(self)


# --------------------------------------------------------------------------------------------
# A run's scratch directory


class RunDir:
    """Configs, logs and the broker's data (redis --dir, nats store) of one suite run,
    removed at the end unless something failed (then its path is printed, to read the
    logs)."""

    def __init__(self, prefix: str = "sb-cluster-"):
        self.path = Path(tempfile.mkdtemp(prefix=prefix))

    def sub(self, name: str) -> Path:
        p = self.path / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def finish(self, keep: bool):
        if keep:
            print(f"logs kept in {self.path}", flush=True)
        else:
            shutil.rmtree(self.path, ignore_errors=True)
