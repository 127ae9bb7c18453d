#!/usr/bin/env python3
"""The /admin dashboard's access rules through the real binary: off by default (404 saying how
to turn it on, /admin/ws refused too); with a password, every data call and /admin/ws need the
session cookie (401 without, or with a forged or logged-out one), a wrong password is 401, the
cookie is HttpOnly, SameSite=Strict, Path=/admin with a Max-Age (and Secure over TLS), requests
from another Origin are refused (403), the disconnect call takes JSON only, the brute-force brake
answers 429 after a burst of failures even for the right password, logout ends the session and
closes its open /admin/ws (4401), and a SIGHUP with a new password ends every login."""
import argparse
import http.client
import json
import os
import signal
import ssl
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
from tls_ca import TestCA  # noqa: E402

passed = failed = 0
PASSWORD = "an admin password for tests"


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print(f"PASS {what}")
    else:
        failed += 1
        print(f"FAIL {what}")


def start(server, *flags, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(env_extra or {})
    argv = [server, "serve", "--host", "127.0.0.1", "--port", "0", "--threads", "2",
            "--log-level", "warn", *flags]
    return harness.ServerProcess(argv, name="admin", env=env)


def request(port, method, path, body=None, headers=None, tls_ctx=None):
    if tls_ctx is not None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=tls_ctx)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = dict(headers or {})
    if isinstance(body, str):
        body = body.encode()
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read().decode(errors="replace")
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, data,
           [v for k, v in r.getheaders() if k.lower() == "set-cookie"])
    conn.close()
    return out


def login(port, password, tls_ctx=None, origin=None):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if origin:
        headers["Origin"] = origin
    return request(port, "POST", "/admin/login",
                   "password=" + password.replace(" ", "+"), headers, tls_ctx)


def token_of(set_cookies):
    for c in set_cookies:
        if c.startswith("sb_admin="):
            return c.split(";", 1)[0][len("sb_admin="):]
    return None


def ws_status(port, cookie=None, origin=None):
    ws = harness.WSClient("127.0.0.1", port)
    extra = [("Cookie", f"sb_admin={cookie}")] if cookie else []
    try:
        resp = ws.handshake("/admin/ws", origin=origin, extra=extra, expect_status=None)
        return resp.status, ws
    except harness.HarnessError:
        return None, ws


def run_off(server):
    with start(server) as s:
        st, _, body, _ = request(s.port, "GET", "/admin")
        check(st == 404 and "[admin] password" in body and "SWITCHBOARD_ADMIN_PASSWORD" in body,
              f"off by default: GET /admin 404 saying how to turn it on ({st})")
        st, _, _, _ = login(s.port, "")
        check(st == 404, f"off: POST /admin/login 404 ({st})")
        st, _, _, _ = request(s.port, "GET", "/admin/admin.css")
        check(st == 404, f"off: assets 404 ({st})")
        st, _, _, _ = request(s.port, "GET", "/admin/api/config")
        check(st == 404, f"off: /admin/api/config 404 ({st})")
        st, ws = ws_status(s.port)
        check(st == 404, f"off: /admin/ws refused 404 ({st})")
        ws.sock.close()


def run_on(server):
    with start(server, env_extra={"SWITCHBOARD_ADMIN_PASSWORD": PASSWORD}) as s:
        p = s.port
        origin = f"http://127.0.0.1:{p}"
        st, h, body, _ = request(p, "GET", "/admin")
        check(st == 200 and 'action="/admin/login"' in body, "GET /admin: the login form")
        check(h.get("cache-control") == "no-store" and h.get("x-frame-options") == "DENY"
              and "frame-ancestors 'none'" in h.get("content-security-policy", ""),
              "pages: no-store, not framable, CSP")
        for path in ("/admin/api/config", "/admin/api/channels", "/admin/api/channel?name=x"):
            st, _, _, _ = request(p, "GET", path)
            check(st == 401, f"{path} without the cookie: 401 ({st})")
        st, _, _, _ = request(p, "GET", "/admin/api/config",
                              headers={"Cookie": "sb_admin=" + "0" * 64})
        check(st == 401, f"a forged cookie: 401 ({st})")
        st, _, _, _ = request(p, "POST", "/admin/api/disconnect", '{"client":"c_0_1"}',
                              {"Content-Type": "application/json"})
        check(st == 401, f"disconnect without the cookie: 401 ({st})")
        st, ws = ws_status(p, origin=origin)
        check(st == 401, f"/admin/ws without the cookie: 401 ({st})")
        ws.sock.close()

        st, _, body, cookies = login(p, "wrong", origin=origin)
        check(st == 401 and "Wrong password." in body and not cookies,
              f"wrong password: 401, the form says so, no cookie ({st})")
        st, _, _, _ = login(p, PASSWORD, origin="http://evil.example")
        check(st == 403, f"login from another Origin: 403 ({st})")
        st, _, _, _ = request(p, "POST", "/admin/logout",
                              headers={"Origin": "https://admin.example", "Host": "backend:1",
                                       "X-Forwarded-Host": "admin.example"})
        check(st == 303, f"behind a proxy rewriting Host, X-Forwarded-Host is the page's host ({st})")
        st, h, _, cookies = login(p, PASSWORD, origin=origin)
        tok = token_of(cookies)
        check(st == 303 and h.get("location") == "/admin" and tok,
              f"right password: 303 to /admin with a cookie ({st})")
        attrs = [a.strip() for a in cookies[0].split(";")[1:]] if cookies else []
        check("HttpOnly" in attrs and "SameSite=Strict" in attrs and "Path=/admin" in attrs
              and f"Max-Age={8 * 3600}" in attrs and "Secure" not in attrs,
              f"cookie attributes over plain HTTP: {attrs}")
        check(len(tok or "") == 64, "the session token is 32 random bytes in hex")
        jar = {"Cookie": f"sb_admin={tok}"}

        st, _, body, _ = request(p, "GET", "/admin", headers=jar)
        check(st == 200 and 'id="live-state"' in body, "with the cookie, /admin is the dashboard")
        st, _, body, _ = request(p, "GET", "/admin/api/config", headers=jar)
        check(st == 200 and 'admin.password = "<set>"' in body and PASSWORD not in body,
              "the configuration, the password redacted")
        st, _, body, _ = request(p, "GET", "/admin/api/channels?q=", headers=jar)
        check(st == 200 and json.loads(body)["total"] >= 0, f"channels with the cookie ({st})")
        st, _, body, _ = request(p, "GET", "/admin/api/channel?name=chat:nobody", headers=jar)
        d = json.loads(body) if st == 200 else {}
        check(st == 200 and d.get("presence") == [] and d.get("history") == [],
              f"an empty channel: no presence, no history ({st} {body[:200]})")
        st, _, body, _ = request(p, "POST", "/admin/api/disconnect", '{"client":"c_0_99"}',
                                 {**jar, "Content-Type": "text/plain"})
        check(st == 415, f"disconnect takes JSON only ({st})")
        st, _, _, _ = request(p, "POST", "/admin/api/disconnect", '{"client":"c_0_99"}',
                              {**jar, "Content-Type": "application/json",
                               "Origin": "http://evil.example"})
        check(st == 403, f"disconnect from another Origin: 403 ({st})")
        st, _, body, _ = request(p, "POST", "/admin/api/disconnect", '{"client":"c_0_99"}',
                                 {**jar, "Content-Type": "application/json", "Origin": origin})
        check(st == 404 and "c_0_99" in body, f"disconnect of an unknown client: 404 ({st})")

        st, ws = ws_status(p, cookie=tok, origin="http://evil.example")
        check(st == 403, f"/admin/ws from another Origin: 403 ({st})")
        ws.sock.close()
        st, ws = ws_status(p, cookie=tok, origin=origin)
        check(st == 101, f"/admin/ws with the cookie: 101 ({st})")
        kinds = []
        deadline = time.monotonic() + 5
        while "snapshot" not in kinds and time.monotonic() < deadline:
            f = ws.recv_frame(timeout=5)
            if f.opcode == 1:
                kinds.append(json.loads(f.payload)["type"])
        check(kinds[:1] == ["history"] and "snapshot" in kinds,
              f"/admin/ws: the history, then a snapshot within a second or two ({kinds})")

        st, h, _, cookies = request(p, "POST", "/admin/logout", headers={**jar, "Origin": origin})
        check(st == 303 and cookies and "Max-Age=0" in cookies[0], f"logout clears the cookie ({st})")
        st, _, _, _ = request(p, "GET", "/admin/api/config", headers=jar)
        check(st == 401, f"after logout the old cookie: 401 ({st})")
        code = None
        deadline = time.monotonic() + 5
        while code is None and time.monotonic() < deadline:
            f = ws.recv_frame(timeout=5)
            if f.opcode == 8:
                code = f.close_code()
        check(code == 4401, f"the open /admin/ws of that session closes with 4401 ({code})")
        ws.sock.close()

        # The brake: a burst of failures, then 429 for everyone, the right password included.
        time.sleep(2.2)  # the earlier wrong password's token back
        statuses = [login(p, f"guess {i}", origin=origin)[0] for i in range(5)]
        check(statuses == [401] * 5, f"five wrong passwords: 401 each ({statuses})")
        st, h, body, cookies = login(p, PASSWORD, origin=origin)
        check(st == 429 and "Too many failed logins" in body and h.get("retry-after")
              and not cookies, f"then 429 with Retry-After, even for the right password ({st})")
        time.sleep(2.2)
        st, _, _, cookies = login(p, PASSWORD, origin=origin)
        check(st == 303 and token_of(cookies), f"after the refill the right password works ({st})")


def run_tls(server):
    ca = TestCA()
    try:
        cert = ca.issue("server")
        ctx = ssl.create_default_context(cafile=ca.cert)
        with start(server, "--tls-cert", cert.chain, "--tls-key", cert.key,
                   env_extra={"SWITCHBOARD_ADMIN_PASSWORD": PASSWORD}) as s:
            st, _, _, cookies = login(s.port, PASSWORD, tls_ctx=ctx)
            attrs = [a.strip() for a in cookies[0].split(";")[1:]] if cookies else []
            check(st == 303 and "Secure" in attrs and "HttpOnly" in attrs,
                  f"over TLS the cookie is Secure too ({st} {attrs})")
    finally:
        ca.cleanup()


def run_reload(server):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "sb.toml")
        with open(path, "w") as f:
            f.write(f'[admin]\npassword = "{PASSWORD}"\nsession_ttl = "2m"\n')
        with start(server, "--config", path) as s:
            st, _, _, cookies = login(s.port, PASSWORD)
            tok = token_of(cookies)
            attrs = [a.strip() for a in cookies[0].split(";")[1:]] if cookies else []
            check(st == 303 and "Max-Age=120" in attrs, f"admin.session_ttl sets Max-Age ({attrs})")
            with open(path, "w") as f:
                f.write('[admin]\npassword = "a brand new admin password"\n')
            s.signal(signal.SIGHUP)
            ok = False
            deadline = time.monotonic() + 10
            while not ok and time.monotonic() < deadline:
                st, _, _, _ = request(s.port, "GET", "/admin/api/config",
                                      headers={"Cookie": f"sb_admin={tok}"})
                ok = st == 401
                time.sleep(0.1)
            check(ok, "SIGHUP with a new password ends every login")
            st, _, _, _ = login(s.port, PASSWORD)
            check(st == 401, f"the old password no longer works ({st})")
            st, _, _, cookies = login(s.port, "a brand new admin password")
            check(st == 303 and token_of(cookies), f"the new one does ({st})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    args = ap.parse_args()
    for part in (run_off, run_on, run_tls, run_reload):
        try:
            part(args.server)
        except Exception as e:  # one failing part must not hide the others
            check(False, f"{part.__name__}: {type(e).__name__}: {e}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
