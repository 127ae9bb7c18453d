#!/usr/bin/env python3
"""The config loader through the real binary: every invalid [namespaces.NAME] value, an
overflowing size and an overflowing duration are refused by both `check-config` and `serve`
(exit 2, the same message with FILE:LINE); a valid file passes check-config, which lists each
namespace option with its source line; messaging.max_message_size limits /ws; SIGHUP names a
restart-only setting that changed."""
import argparse
import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print(f"PASS {what}")
    else:
        failed += 1
        print(f"FAIL {what}")


def clean_env():
    """This environment without SWITCHBOARD_* variables (they are settings of the server)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}


def run(server, *args):
    """Runs a command that must exit by itself; a server that starts listening is a failure
    (the timeout kills it)."""
    try:
        p = subprocess.run([server, *args], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=30, env=clean_env())
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        return None, e.stdout or "", e.stderr or ""


def message(stderr, command):
    """The error after the "switchboard COMMAND: " prefix, from the line that has it."""
    prefix = f"switchboard {command}: "
    for line in stderr.splitlines():
        if line.startswith(prefix):
            return line[len(prefix):]
    return None


# (name, file text, line of the error, text the message must contain)
BAD = [
    ("string_for_bool", '[namespaces.chat]\npresence = "yes"\n', 2,
     'namespaces.chat.presence: "yes" is a string; expected true or false'),
    ("bad_delivery", '[namespaces.chat]\npresence = true\ndelivery = "exactly_once"\n', 3,
     'namespaces.chat.delivery: "exactly_once" is not valid; expected one of at_most_once, '
     'at_least_once'),
    ("bad_name", '[namespaces.chat]\n\n[namespaces.Chat]\npresence = true\n', 3,
     'namespaces.Chat: "Chat" is not a valid name; expected a name matching [a-z0-9_-]{1,64}'),
    ("negative", '[namespaces.chat]\nhistory_size = -5\n', 2,
     "namespaces.chat.history_size: -5 is negative; expected a non-negative integer"),
    ("bad_duration", '# comment\n[namespaces.chat]\nhistory_ttl = "forever"\n', 3,
     'namespaces.chat.history_ttl: "forever" is not a duration'),
    ("unknown_option", '[namespaces.chat]\npresense = true\n', 2,
     "unknown key 'namespaces.chat.presense' (did you mean namespaces.chat.presence?)"),
    ("size_overflow", '[websocket]\nmax_backlog = "99999999999999999999KiB"\n', 2,
     'websocket.max_backlog: "99999999999999999999KiB" is too large: the largest size is '
     '18446744073709551615 bytes'),
    ("size_overflow_gib", '[namespaces.chat]\nmax_data_bytes = "18446744073709551615GiB"\n', 2,
     'namespaces.chat.max_data_bytes: "18446744073709551615GiB" is too large'),
    ("duration_overflow", '[server]\nshutdown_timeout = "9999999999999999999h"\n', 2,
     'server.shutdown_timeout: "9999999999999999999h" is too large: the longest duration is '
     '18446744073709551615ms'),
    ("duration_past_field", '[websocket]\nping_interval = "2000h"\n', 2,
     'websocket.ping_interval: "2000h" is too large: the maximum is 4294967295ms'),
]

VALID = """\
[server]
host = "127.0.0.1"

[namespaces.chat]
presence = true
history_size = 100
history_ttl = "5m"

[namespaces.jobs]
delivery = "at_least_once"
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, text, line, needle in BAD:
            path = os.path.join(tmp, f"{name}.toml")
            with open(path, "w") as f:
                f.write(text)
            rc_check, _, err_check = run(args.server, "check-config", "--config", path)
            rc_serve, _, err_serve = run(args.server, "serve", "--config", path, "--host",
                                         "127.0.0.1", "--port", "0")
            m_check = message(err_check, "check-config")
            m_serve = message(err_serve, "serve")
            check(rc_check == 2, f"{name}: check-config exits 2 (got {rc_check})")
            check(rc_serve == 2, f"{name}: serve exits 2 (got {rc_serve})")
            check(m_check is not None and m_check.startswith(f"{path}:{line}: "),
                  f"{name}: check-config names {path}:{line} ({m_check!r})")
            check(m_check is not None and needle in m_check,
                  f"{name}: check-config says what is wrong ({m_check!r})")
            check(m_check is not None and m_check == m_serve,
                  f"{name}: serve prints the same message ({m_serve!r})")

        path = os.path.join(tmp, "valid.toml")
        with open(path, "w") as f:
            f.write(VALID)
        rc, out, err = run(args.server, "check-config", "--config", path)
        check(rc == 0, f"valid file: check-config exits 0 (got {rc}, {err.strip()!r})")
        lines = out.splitlines()
        presence = [ln for ln in lines if ln.startswith("namespaces.chat.presence = true")]
        check(len(presence) == 1 and presence[0].endswith(f"# {path}:5"),
              f"namespace option listed with its source line ({presence})")
        ttl = [ln for ln in lines if ln.startswith('namespaces.chat.history_ttl = "5m"')]
        check(len(ttl) == 1 and ttl[0].endswith(f"# {path}:7"), f"history_ttl source ({ttl})")
        derived = [ln for ln in lines if ln.startswith("namespaces.jobs.history_size = 1000")]
        check(len(derived) == 1, f"at_least_once namespace gets a history ({derived})")
        check(any(ln.startswith("# /ws max message size: 68KiB") for ln in lines),
              "derived /ws max message size printed")
        check(lines[-1:] == ["# configuration is valid"], "check-config says valid")
        # Credentials inside a URL setting are not printed (secret settings show "<set>").
        rc, out, err = run(args.server, "check-config", "--nats-url",
                           "nats://alice:hunter2@10.0.0.5:4222")
        check(rc == 0 and "hunter2" not in out and "alice" not in out and
              "nats://<redacted>@10.0.0.5:4222" in out,
              f"check-config redacts URL credentials: {[ln for ln in out.splitlines() if 'nats_url' in ln]}")

        # messaging.max_message_size is the /ws frame limit (close 1009 above it).
        small = os.path.join(tmp, "small.toml")
        with open(small, "w") as f:
            f.write('[server]\nhost = "127.0.0.1"\n[messaging]\nmax_message_size = "1KiB"\n')
        with harness.ServerProcess([args.server, "serve", "--config", small, "--port", "0",
                                    "--threads", "1"], "switchboard", env=clean_env()) as srv:
            protocols = ["switchboard.v1.json"]
            c = harness.connect(srv, path="/ws", protocols=protocols)
            try:
                c.send_message(harness.OP_TEXT, b'{"type":"ping","id":1,"pad":"' + b"z" * 900
                               + b'"}')
                reply = c.recv_message(timeout=5)
                check(b'"pong"' in reply.data, f"/ws: a 0.9 KiB message is read ({reply.data!r})")
                c.send_message(harness.OP_TEXT, b'{"type":"ping","id":2,"pad":"' + b"z" * 1100
                               + b'"}')
                f = c.expect_close(1009, timeout=5)
                check(f.close_code() == 1009, "/ws: above messaging.max_message_size → 1009")
            except harness.HarnessError as e:
                check(False, f"/ws frame limit from messaging.max_message_size: {e}")
            finally:
                c.close()

        # SIGHUP with a changed restart-only setting: logged by key, namespaces still applied.
        srv = harness.ServerProcess([args.server, "serve", "--config", path, "--port", "0",
                                     "--threads", "1"], "switchboard", env=clean_env())
        try:
            with open(path, "w") as f:
                f.write(VALID.replace('host = "127.0.0.1"', 'host = "127.0.0.1"\nthreads = 0\n'
                                      'max_connections = 10'))
            srv.signal(signal.SIGHUP)
            want = "server.max_connections changed: takes effect on restart"
            harness.wait_until(lambda: want in srv.log_tail(), 10, "restart-only log line")
            check(want in srv.log_tail(), "SIGHUP logs the restart-only key that changed")
            check("server.threads changed" not in srv.log_tail(),
                  "a flag that still overrides the file is not reported as changed")
            check(srv.alive(), "server still running after the reload")
        finally:
            srv.close()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
