#!/usr/bin/python3
"""Integration: JWT authentication, access rules and private channels (docs/protocol.md
"connect", "refresh", "subscribe", "Authentication", "HTTP API", "Namespace options";
docs/security.md). Every token is made by python3-jwt (tests/support/tokens.py), an
implementation independent of the server, with keys generated for this run: two HS secrets,
an RSA 2048 and an EC P-256 key pair (public PEM files), a second P-256 key as a self-signed
certificate, and "other" keys the server never gets. One server per case, real sockets.

1. valid_tokens: HS256, RS256, ES256 (PEM public key) and ES256 (certificate) tokens, each
   given in `connect` (`token`), as `Authorization: Bearer` on the upgrade and as `?token=`:
   `connected` with `user` == sub (the `user` sent in connect is ignored) and `expires_in`
   == exp - now (within 5 s). The connect token wins over the upgrade's. Presence shows the
   subs and the token's `info` claim (an `info` sent in connect wins). With
   `require_exp = false` a token without exp connects, and `connected` has no `expires_in`.
2. refused_tokens: audience + issuer + leeway 2s configured, max_header_bytes raised so a
   9000-byte token reaches the token check. Each of: expired, nbf in the future, iat in the
   future, wrong / missing aud, wrong / missing iss, HS256/RS256/ES256 signed with other keys,
   `alg: none`, HS512 with the right secret, HS256 keyed with the RSA public key PEM
   (algorithm confusion; also against a server with only that RSA key), no exp, garbage,
   JSON nested 40 deep, a 9000-byte token. At the handshake (Authorization header; the
   expired one also as ?token=): 401, {"error":"invalid_token","message":...} naming the
   reason, `WWW-Authenticate: Bearer`. In `connect` (upgrade without token, an anonymous
   namespace exists): error `invalid_token` naming the reason, and the connection stays
   open (ping answered; a valid connect afterwards works). A valid token passes both.
3. rotation: two hmac_secrets: tokens with either verify; a JWKS file with an RSA and an EC
   key with kids: RS256/ES256 tokens with those kids verify; the same kid signed by another
   key and a third HS secret are refused (401 invalid_token).
4. sighup_rotation: the config's HS secret and JWKS key are replaced, SIGHUP; polled with a
   deadline until a new-secret token is accepted at the upgrade; then the new JWKS kid
   verifies, old-secret and old-kid tokens are refused (upgrade 401 and connect
   invalid_token), and a client connected with an old-secret token stays connected.
5. refresh (leeway 0s): A connects with a token expiring in 3 s (`channels` ["claimed:a"]),
   B with one expiring in 4 s. A's refresh with a 60 s token (same sub, `channels`
   ["claimed:b"]) → `refreshed` with expires_in ~60, and the claim is replaced (publish to
   claimed:b allowed, claimed:a refused). Refresh with bob's token → permission_denied, with
   an expired one or garbage → invalid_token, on an anonymous connection → permission_denied.
   B gets {"type":"disconnect","code":4005,"reason":"token expired","reconnect":true} as its
   last message, close 4005, not before its exp; A, whose first token expired a second
   before, still answers ping. B reconnects with a fresh token and resumes its session.
6. anonymous: auth on and no anonymous namespace: an upgrade without token → 401
   token_required; with ?token= it connects. With `anonymous = true` on `open`: a client
   without token connects (no `user` in the reply: the `user` it sent is ignored, and its
   join event and presence entry carry no user), may subscribe in `open`, gets
   permission_denied for subscribe and publish in another namespace; a token client in
   `open` shows up with its sub.
7. permissions: `news` (anonymous, allow_subscribe "authenticated", allow_publish /
   allow_presence / allow_history "claim"): a token with channels ["news:sports-*",
   "news:weather"] may publish, read presence and history in news:sports-1 and news:weather,
   not in news:politics, news:sportsfan or news:weather2 (permission_denied naming the
   rule); it may subscribe anywhere in news; a token without `channels` may subscribe but
   not publish; ["*"] may publish anywhere; an anonymous client may not subscribe.
8. private_channels (`private = true`): subscribe without a token, with a subscribe token
   for another channel, with one of another sub, also a subscribe token of alice's presented
   by bob → permission_denied; an expired one, one signed by another key → invalid_token;
   the right channel and sub → subscribed, publications arrive; a token without sub (ES256)
   → subscribed.
9. session_ownership: alice's session (with a channel) after she closes: an anonymous
   connect and bob's connect naming it get resumed:false and another session id; alice gets
   resumed:true with the channel. An anonymous session resumes for an anonymous connection,
   not for alice.
10. disconnect_user: two connections of alice, one of bob; POST /api/disconnect
   {"user":"alice"} → 200 {"result":"requested","clients":2}; both alice connections get
   disconnect 4003 (reconnect true) as their last message and close 4003; bob still
   answers; {"user":"nobody"} → 404 unknown_client.
11. secrets_not_logged: a server at --log-level debug sees refused handshakes (header and
   query token), a token connect and refresh, a bad connect token, API calls with the right
   and a wrong key. The log names the refusal reason ("token expired") but holds no token,
   no token signature, no HMAC secret and no API key; nor after a SIGHUP that replaces the
   secret and the API key (polled until a new-secret token is accepted); `check-config`
   prints the secrets as `<set>`.

  /usr/bin/python3 tests/integration/test_auth.py --server build/dev/switchboard
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from harness import Deadline, HarnessError, HttpResponse, Reporter, WSClient  # noqa: E402
from messaging import (API_KEY, SUBPROTOCOL, CheckFailed, Client, Server,  # noqa: E402
                       api_async, check, require_websockets, short, stop_all,
                       suite_arguments)
from regression import Cases, check_alive, server_log  # noqa: E402

require_websockets()

import websockets  # noqa: E402
import websockets.exceptions  # noqa: E402
from tokens import (TestKeys, b64url, b64url_json, claims, hmac_secret,  # noqa: E402
                    hs256_with_raw_key, mint, nested, now, padded_to, random_garbage,
                    unsigned_token)

AUDIENCE = "switchboard-tests"
ISSUER = "https://issuer.switchboard.test"
SUITE_BUDGET_S = 110.0   # the whole file stays under two minutes
CASE_TIMEOUT_S = 40.0

EXPIRED = {"type": "disconnect", "code": 4005, "reason": "token expired", "reconnect": True}
KICKED = {"type": "disconnect", "code": 4003, "reason": "disconnected by the server",
          "reconnect": True}


def toml_list(items) -> str:
    return "[" + ", ".join(json.dumps(str(i)) for i in items) + "]"


def auth_table(hmac=(), keys=(), jwks: str | None = None, **settings) -> str:
    """The [auth] table; settings are written as TOML values (str quoted, bool lowercase)."""
    lines = ["[auth]"]
    if hmac:
        lines.append(f"hmac_secrets = {toml_list(hmac)}")
    if keys:
        lines.append(f"public_key_files = {toml_list(keys)}")
    if jwks:
        lines.append(f"jwks_file = {json.dumps(jwks)}")
    for k, v in settings.items():
        lines.append(f"{k} = {str(v).lower() if isinstance(v, bool) else json.dumps(v)}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Upgrades with tokens


async def open_ws(server: Server, name: str, bearer: str | None = None,
                  query: str | None = None, timeout: float = 5.0) -> Client:
    """A messaging.Client whose upgrade carries a token (Authorization header and/or ?token=)."""
    url = server.ws_url + (f"?token={query}" if query is not None else "")
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else None
    try:
        ws = await asyncio.wait_for(websockets.connect(
            url, subprotocols=[SUBPROTOCOL], extra_headers=headers, ping_interval=None,
            max_size=None, max_queue=None, compression=None, open_timeout=timeout,
            close_timeout=3), timeout)
    except websockets.exceptions.InvalidStatusCode as e:
        raise CheckFailed(f"{name}: upgrade{' with a token' if bearer or query else ''} "
                          f"answered {e.status_code}, expected 101") from None
    return Client(ws, name)


def _handshake(server: Server, bearer: str | None, query: str | None) -> HttpResponse:
    c = WSClient(server.host, server.port, timeout=5.0)
    try:
        path = "/ws" + (f"?token={query}" if query is not None else "")
        extra = [("Authorization", f"Bearer {bearer}")] if bearer is not None else []
        return c.handshake(path=path, protocols=[SUBPROTOCOL], extra=extra,
                           expect_status=None)
    finally:
        c.close()


async def handshake(server: Server, bearer: str | None = None,
                    query: str | None = None) -> HttpResponse:
    """A raw upgrade request (so a refusal's status, headers and body can be read)."""
    try:
        return await asyncio.to_thread(_handshake, server, bearer, query)
    except (HarnessError, OSError) as e:
        raise CheckFailed(f"upgrade request: no HTTP response ({e})") from None


def refusal_problems(what: str, resp: HttpResponse, code: str, reason: str | None = None,
                     www: bool = True) -> list[str]:
    """What is wrong with an upgrade refusal, against 401 {"error":code,"message":...}."""
    body_text = resp.body.decode(errors="replace")
    if resp.status != 401:
        return [f"{what}: upgrade answered {resp.status} {resp.reason} {short(body_text, 160)}"
                f", expected 401 {code}"]
    out = []
    try:
        body = json.loads(body_text)
    except ValueError:
        return [f"{what}: 401 body is not JSON: {short(body_text, 160)}"]
    if not isinstance(body, dict) or body.get("error") != code:
        out.append(f"{what}: 401 body {short(body, 200)}, expected error {code}")
    elif reason is not None:
        msg = body.get("message")
        if not isinstance(msg, str) or not re.search(reason, msg, re.I):
            out.append(f"{what}: 401 message {msg!r} does not name the reason (/{reason}/)")
    if www:
        h = resp.header("www-authenticate")
        if not h or not h.lower().startswith("bearer"):
            out.append(f"{what}: 401 has WWW-Authenticate {h!r}, expected Bearer")
    return out


def error_problems(what: str, reply: dict, code: str, reason: str | None = None) -> list[str]:
    if reply.get("type") != "error" or reply.get("code") != code:
        return [f"{what} → {short(reply, 200)}, expected error {code}"]
    msg = reply.get("message")
    if reason is not None and (not isinstance(msg, str) or not re.search(reason, msg, re.I)):
        return [f"{what}: error {code} message {msg!r} does not name the reason (/{reason}/)"]
    return []


def expires_problems(what: str, reply: dict, exp: int) -> list[str]:
    """`expires_in` must be the seconds from now to exp (5 s of slack for a slow run)."""
    ei = reply.get("expires_in")
    left = exp - time.time()
    if not isinstance(ei, (int, float)) or isinstance(ei, bool) or not left - 5 <= ei <= left + 1:
        return [f"{what}: expires_in {ei!r}, expected about {left:.0f} (exp - now)"]
    return []


async def wait_accepted(server: Server, token: str, seconds: float, what: str):
    """After SIGHUP: polls upgrades carrying token until one is accepted (101)."""
    deadline = Deadline(seconds)
    while True:
        check_alive(server, f"waiting for {what} to be accepted")
        resp = await handshake(server, bearer=token)
        if resp.status == 101:
            return
        check(not deadline.expired(), f"{what} still answered {resp.status} {seconds:.0f} s "
              f"after SIGHUP (log: {server.proc.log_tail(400)!r})")
        await asyncio.sleep(0.05)  # polling the server's state after a signal, bounded


def full_log(server: Server) -> str:
    """Everything the server wrote: its stderr log file and its stdout lines."""
    return server_log(server) + "\n" + "\n".join(
        line.decode(errors="replace") for line in server.proc.stdout_lines)


def leak_problems(where: str, log: str, tokens: dict[str, str],
                  secrets_: dict[str, str]) -> list[str]:
    """Tokens (or their signatures) and secrets found in a log."""
    leaks = []
    for name, tok in tokens.items():
        if tok in log:
            leaks.append(f"the {name} token")
        elif tok.rsplit(".", 1)[1] in log:
            leaks.append(f"the {name} token's signature")
    leaks += [f"the {name}" for name, value in secrets_.items() if value in log]
    return [f"{where} contains {', '.join(leaks)}"] if leaks else []


class Suite(Cases):
    def __init__(self, binary: str, rep: Reporter, keys: TestKeys):
        super().__init__(binary, rep)
        self.k = keys

    # ------------------------------------------------------------------ 1. valid tokens
    async def case_valid_tokens(self):
        k = self.k
        cfg = (f'[api]\nkey = "{API_KEY}"\n\n' +
               auth_table([k.hs_secret], [k.rsa_pub_file, k.ec_pub_file, k.ec_cert_file]) +
               "\n[namespaces.pub]\nanonymous = true\n\n[namespaces.chat]\npresence = true\n")
        s = self.start(cfg, "valid")
        clients: list[Client] = []
        problems: list[str] = []
        try:
            kinds = (("HS256", "HS256", k.hs_secret, 600), ("RS256", "RS256", k.rsa, 900),
                     ("ES256", "ES256", k.ec, 1200), ("ES256-cert", "ES256", k.ec_cert_key, 1500))
            for label, alg, key, ttl in kinds:
                for via in ("connect", "header", "query"):
                    sub = f"{label.lower()}-{via}"
                    tok = mint(key, alg, sub=sub, ttl=ttl)
                    exp = json.loads(_payload(tok))["exp"]
                    try:
                        c = await open_ws(s, f"{label}/{via}",
                                          bearer=tok if via == "header" else None,
                                          query=tok if via == "query" else None)
                    except CheckFailed as e:
                        problems.append(str(e))
                        continue
                    clients.append(c)
                    req = {"type": "connect", "user": "mallory"}
                    if via == "connect":
                        req["token"] = tok
                    r = await c.request(req)
                    what = f"{label} token via {via}"
                    if r.get("type") != "connected":
                        problems.append(f"{what}: connect → {short(r, 200)}, expected connected")
                        continue
                    if r.get("user") != sub:
                        problems.append(f"{what}: connected user {r.get('user')!r}, expected "
                                        f"the sub {sub!r} (the user sent in connect is ignored)")
                    problems += expires_problems(what, r, exp)

            # The connect token wins over the upgrade's.
            c = await open_ws(s, "both", bearer=mint(k.hs_secret, sub="from-header"))
            clients.append(c)
            r = await c.request({"type": "connect", "token": mint(k.hs_secret, sub="from-connect")})
            if r.get("type") != "connected" or r.get("user") != "from-connect":
                problems.append(f"token on the upgrade (sub from-header) and in connect (sub "
                                f"from-connect) → {short(r, 200)}, expected user from-connect")

            # Presence: subs, the info claim, an explicit info winning over the claim.
            a = await open_ws(s, "presence-a",
                              bearer=mint(k.hs_secret, sub="alice", info={"role": "admin"}))
            b = await open_ws(s, "presence-b",
                              bearer=mint(k.rsa, "RS256", sub="bob", info={"role": "x"}))
            clients += [a, b]
            await a.connect(user="mallory")
            await b.connect(user="mallory", info={"avatar": "b.png"})
            await a.subscribe("chat:room")
            await b.subscribe("chat:room")
            r = await a.request({"type": "presence", "channel": "chat:room"})
            seen = sorted((e.get("user"), json.dumps(e.get("info"), sort_keys=True))
                          for e in r.get("clients", []))
            want = sorted([("alice", json.dumps({"role": "admin"})),
                           ("bob", json.dumps({"avatar": "b.png"}))])
            if r.get("type") != "presence" or seen != want:
                problems.append(f"presence chat:room → {short(r, 300)}: expected users alice "
                                "(info from the token's claim) and bob (the info sent in "
                                "connect), never the user 'mallory' sent in connect")
            check(not problems, "; ".join(problems))
            check_alive(s, "after the valid tokens")
        finally:
            await stop_all(clients)

        # require_exp = false: a token without exp is fine, and has no expires_in.
        s2 = self.start(auth_table([k.hs_secret], require_exp=False), "noexp")
        c = await open_ws(s2, "no-exp", bearer=mint(k.hs_secret, sub="forever", ttl=None))
        try:
            r = await c.request({"type": "connect"})
            check(r.get("type") == "connected" and r.get("user") == "forever" and
                  "expires_in" not in r,
                  f"require_exp = false, a token without exp → {short(r, 200)}, expected "
                  "connected with user forever and no expires_in")
        finally:
            await stop_all([c])

    # ------------------------------------------------------------------ 2. refused tokens
    def refused_list(self) -> list[tuple[str, str, str]]:
        k = self.k
        t = now()

        def good(key=k.hs_secret, alg="HS256", **kw):
            kw.setdefault("aud", AUDIENCE)
            kw.setdefault("iss", ISSUER)
            return mint(key, alg, sub="eve", **{n: v for n, v in kw.items() if v != "-"})

        payload = claims("eve", 600, aud=AUDIENCE, iss=ISSUER)
        junk_header = f"{b64url(b'{alg')}.{b64url_json(payload)}.{b64url(b'sig')}"
        return [
            ("expired", good(exp=t - 120, iat=t - 300), r"expire"),
            ("nbf in the future", good(nbf=t + 120), r"not.yet|nbf|before"),
            ("iat in the future", good(iat=t + 120), r"\biat\b|issued|future"),
            ("wrong audience", good(aud="another-service"), r"\baud|audience"),
            ("no audience", good(aud="-"), r"\baud|audience"),
            ("wrong issuer", good(iss="https://evil.example"), r"\biss\b|issuer"),
            ("no issuer", good(iss="-"), r"\biss\b|issuer"),
            ("HS256 signed with another secret", good(k.other_hs_secret), r"signature"),
            ("RS256 signed with another key", good(k.other_rsa, "RS256"), r"signature"),
            ("ES256 signed with another key", good(k.other_ec, "ES256"), r"signature"),
            ("alg none", unsigned_token(payload), r"\balg|none|algorithm"),
            ("HS512 with the right secret", good(k.hs_secret, "HS512"),
             r"\balg|HS512|algorithm"),
            ("HS256 keyed with the RSA public key PEM",
             hs256_with_raw_key(k.rsa_pub_pem, payload), r"signature|\balg|algorithm|key"),
            ("no exp", good(ttl=None), r"\bexp\b|expir"),
            ("garbage: not-a-jwt", "not-a-jwt", r"\w"),
            ("garbage: a.b.c", "a.b.c", r"\w"),
            ("garbage: random base64url segments",
             f"{random_garbage()}.{random_garbage()}.{random_garbage()}", r"\w"),
            ("garbage: header not JSON", junk_header, r"\w"),
            ("payload nested 40 deep", good(deep=nested(40)), r"\w"),
            ("9000-byte token", padded_to(k.hs_secret, 9000, sub="eve", aud=AUDIENCE,
                                          iss=ISSUER),
             r"malformed|large|long|size|bytes|KiB|limit|8192"),
        ]

    async def case_refused_tokens(self):
        k = self.k
        cfg = ('[server]\nmax_header_bytes = "32KiB"\n\n' +
               auth_table([k.hs_secret], [k.rsa_pub_file, k.ec_pub_file], audience=AUDIENCE,
                          issuer=ISSUER, leeway="2s") +
               "\n[namespaces.pub]\nanonymous = true\n")
        s = self.start(cfg, "refused")
        clients: list[Client] = []
        problems: list[str] = []
        try:
            valid = mint(k.hs_secret, sub="eve", aud=AUDIENCE, iss=ISSUER)
            resp = await handshake(s, bearer=valid)
            check(resp.status == 101, f"control: a valid token (aud and iss set) on the upgrade "
                  f"→ {resp.status} {short(resp.body.decode(errors='replace'), 200)}, "
                  "expected 101")
            c = await open_ws(s, "control")
            clients.append(c)
            r = await c.request({"type": "connect", "token": valid})
            check(r.get("type") == "connected" and r.get("user") == "eve",
                  f"control: a valid token in connect → {short(r, 200)}")

            refused = self.refused_list()
            for name, tok, reason in refused:
                resp = await handshake(s, bearer=tok)
                problems += refusal_problems(f"[{name}] upgrade", resp, "invalid_token", reason)
                c = await open_ws(s, name)
                clients.append(c)
                r = await c.request({"type": "connect", "token": tok})
                problems += error_problems(f"[{name}] connect", r, "invalid_token", reason)
                try:
                    await c.ping_ok()
                except CheckFailed as e:
                    problems.append(f"[{name}] after the refused connect: {e}")
            expired = refused[0][1]
            resp = await handshake(s, query=expired)
            problems += refusal_problems("[expired] upgrade with ?token=", resp,
                                         "invalid_token", r"expire")

            # A refused connect leaves the connection open and not connected: a good one works.
            c = clients[-1]
            if not c.closed.is_set():
                r = await c.request({"type": "connect", "token": valid})
                if r.get("type") != "connected" or r.get("user") != "eve":
                    problems.append(f"a valid connect after a refused one on the same "
                                    f"connection → {short(r, 200)}, expected connected")
            check_alive(s, "after the refused tokens")
        finally:
            await stop_all(clients)

        # The classic confusion target: a server with only the RSA public key.
        s2 = self.start(auth_table(keys=[k.rsa_pub_file]) +
                        "\n[namespaces.pub]\nanonymous = true\n", "rsa-only")
        c = None
        try:
            payload = claims("eve", 600)
            for label, key in (("PEM file bytes", k.rsa_pub_pem),
                               ("PEM without the final newline", k.rsa_pub_pem.rstrip())):
                tok = hs256_with_raw_key(key, payload)
                resp = await handshake(s2, bearer=tok)
                problems += refusal_problems(f"[RSA-only server, HS256 keyed with the {label}] "
                                             "upgrade", resp, "invalid_token")
                c = await open_ws(s2, "confusion")
                r = await c.request({"type": "connect", "token": tok})
                problems += error_problems(f"[RSA-only server, HS256 keyed with the {label}] "
                                           "connect", r, "invalid_token")
                await stop_all([c])
            resp = await handshake(s2, bearer=mint(k.rsa, "RS256", sub="eve"))
            if resp.status != 101:
                problems.append(f"control: RS256 token on the RSA-only server → {resp.status}")
        finally:
            await stop_all([c])
        check(not problems, "; ".join(problems))

    # ------------------------------------------------------------------ 3. rotation
    async def case_rotation(self):
        k = self.k
        jwks = k.write_jwks("rotation-jwks.json", [(k.rsa, "rsa-k1"), (k.ec, "ec-k1")])
        s = self.start(auth_table([k.hs_secret, k.hs_secret2], jwks=jwks), "rotation")
        problems: list[str] = []
        clients: list[Client] = []
        try:
            good = [("HS256 with the first secret", mint(k.hs_secret, sub="u1")),
                    ("HS256 with the second secret", mint(k.hs_secret2, sub="u2")),
                    ("RS256 with JWKS kid rsa-k1",
                     mint(k.rsa, "RS256", sub="u3", headers={"kid": "rsa-k1"})),
                    ("ES256 with JWKS kid ec-k1",
                     mint(k.ec, "ES256", sub="u4", headers={"kid": "ec-k1"}))]
            for i, (name, tok) in enumerate(good):
                try:
                    c = await open_ws(s, name, bearer=tok)
                except CheckFailed as e:
                    problems.append(str(e))
                    continue
                clients.append(c)
                r = await c.request({"type": "connect"})
                if r.get("type") != "connected" or r.get("user") != f"u{i + 1}":
                    problems.append(f"{name}: connect → {short(r, 200)}, expected user "
                                    f"u{i + 1}")
            bad = [("RS256 with kid rsa-k1 signed by another key",
                    mint(k.other_rsa, "RS256", sub="x", headers={"kid": "rsa-k1"})),
                   ("ES256 with kid ec-k1 signed by another key",
                    mint(k.other_ec, "ES256", sub="x", headers={"kid": "ec-k1"})),
                   ("HS256 with a secret not configured", mint(k.other_hs_secret, sub="x"))]
            for name, tok in bad:
                problems += refusal_problems(name, await handshake(s, bearer=tok),
                                             "invalid_token", r"signature|key|kid")
            check(not problems, "; ".join(problems))
        finally:
            await stop_all(clients)

    async def case_sighup_rotation(self):
        k = self.k
        old, new = hmac_secret(), hmac_secret()
        jwks_old = k.write_jwks("sighup-jwks-old.json", [(k.rsa, "rsa-old")])
        jwks_new = k.write_jwks("sighup-jwks-new.json", [(k.ec, "ec-new")])
        tail = "\n[namespaces.pub]\nanonymous = true\n\n[namespaces.chat]\n"
        s = self.start(auth_table([old], jwks=jwks_old) + tail, "sighup")
        x = None
        clients: list[Client] = []
        problems: list[str] = []
        try:
            x = await open_ws(s, "X (old secret)", bearer=mint(old, sub="xavier", ttl=600))
            r = await x.connect()
            check(r.get("user") == "xavier", f"X: connect → {short(r, 200)}")
            await x.subscribe("chat:keep")
            new_tok = mint(new, sub="nina")
            resp = await handshake(s, bearer=new_tok)
            check(resp.status == 401, f"before the reload a token with the new secret → "
                  f"{resp.status}, expected 401")

            with open(s.config_file.name, "w") as f:
                f.write(auth_table([new], jwks=jwks_new) + tail)
            s.proc.signal(signal.SIGHUP)
            await wait_accepted(s, new_tok, 10, "a token with the new secret")

            c = await open_ws(s, "new secret", bearer=new_tok)
            clients.append(c)
            r = await c.request({"type": "connect"})
            if r.get("type") != "connected" or r.get("user") != "nina":
                problems.append(f"new secret after SIGHUP: connect → {short(r, 200)}")
            resp = await handshake(s, bearer=mint(k.ec, "ES256", sub="n2",
                                                  headers={"kid": "ec-new"}))
            if resp.status != 101:
                problems.append(f"ES256 with the new JWKS kid ec-new after SIGHUP → "
                                f"{resp.status}, expected 101")
            for name, tok in (("old secret", mint(old, sub="olga")),
                              ("old JWKS kid rsa-old",
                               mint(k.rsa, "RS256", sub="olga", headers={"kid": "rsa-old"}))):
                problems += refusal_problems(f"{name} after SIGHUP: upgrade",
                                             await handshake(s, bearer=tok), "invalid_token")
                c = await open_ws(s, f"{name} in connect")
                clients.append(c)
                problems += error_problems(f"{name} after SIGHUP: connect",
                                           await c.request({"type": "connect", "token": tok}),
                                           "invalid_token")
            try:
                await x.ping_ok()
                if x.messages(type_="disconnect"):
                    problems.append(f"X got {x.messages(type_='disconnect')}")
            except CheckFailed as e:
                problems.append(f"the client connected with the old secret before the reload: "
                                f"{e}")
            check(not problems, "; ".join(problems))
        finally:
            await stop_all([x, *clients])

    # ------------------------------------------------------------------ 4. refresh
    async def case_refresh(self):
        k = self.k
        cfg = (f'[api]\nkey = "{API_KEY}"\n\n' + auth_table([k.hs_secret], leeway="0s") +
               '\n[namespaces.pub]\nanonymous = true\n\n[namespaces.claimed]\n'
               'allow_publish = "claim"\n')
        s = self.start(cfg, "refresh")
        a = b = b2 = anon = None
        problems: list[str] = []
        try:
            t = now()
            a_exp, b_exp = t + 3, t + 4
            a = await open_ws(s, "A")
            b = await open_ws(s, "B")
            r = await a.request({"type": "connect", "token": mint(
                k.hs_secret, sub="alice", ttl=None, exp=a_exp, channels=["claimed:a"])})
            check(r.get("type") == "connected", f"A: connect → {short(r, 200)}")
            problems += expires_problems("A's connected", r, a_exp)
            r = await b.request({"type": "connect", "token": mint(
                k.hs_secret, sub="bob", ttl=None, exp=b_exp)})
            check(r.get("type") == "connected", f"B: connect → {short(r, 200)}")
            b.session = r.get("session")

            r = await a.request({"type": "publish", "channel": "claimed:b", "data": 1})
            problems += error_problems("A (channels [claimed:a]) publish claimed:b", r,
                                       "permission_denied")
            fresh = mint(k.hs_secret, sub="alice", ttl=60, channels=["claimed:b"])
            fresh_exp = json.loads(_payload(fresh))["exp"]
            r = await a.request({"type": "refresh", "token": fresh})
            check(r.get("type") == "refreshed",
                  f"A: refresh with a 60 s token of the same sub → {short(r, 200)}, expected "
                  "refreshed (it was sent before the first token's exp)")
            problems += expires_problems("A's refreshed", r, fresh_exp)
            r = await a.request({"type": "publish", "channel": "claimed:b", "data": 2})
            if r.get("type") != "published":
                problems.append(f"after refreshing to channels [claimed:b], publish claimed:b "
                                f"→ {short(r, 200)}, expected published")
            r = await a.request({"type": "publish", "channel": "claimed:a", "data": 3})
            problems += error_problems("after refreshing to channels [claimed:b] (the claim is "
                                       "replaced), publish claimed:a", r, "permission_denied")
            for what, tok, code in (
                    ("refresh with bob's token", mint(k.hs_secret, sub="bob"),
                     "permission_denied"),
                    ("refresh with an expired token",
                     mint(k.hs_secret, sub="alice", ttl=None, exp=t - 60, iat=t - 120),
                     "invalid_token"),
                    ("refresh with garbage", "not-a-jwt", "invalid_token")):
                problems += error_problems(f"A: {what}",
                                           await a.request({"type": "refresh", "token": tok}),
                                           code)
            anon = await open_ws(s, "anonymous")
            r = await anon.request({"type": "connect"})
            check(r.get("type") == "connected", f"anonymous connect → {short(r, 200)}")
            problems += error_problems(
                "an anonymous connection's refresh",
                await anon.request({"type": "refresh", "token": mint(k.hs_secret, sub="z")}),
                "permission_denied")

            # B never refreshes: disconnect 4005 once its token expired (leeway 0s).
            try:
                code, reason = await b.wait_closed(b_exp - time.time() + 8)
            except CheckFailed:
                raise CheckFailed("; ".join(problems + [
                    f"B, whose token expired at {b_exp} (leeway 0s), was still open 8 s later "
                    f"(expected disconnect {EXPIRED} and close 4005)"])) from None
            closed_at = time.time()
            last = b.all[-1] if b.all else None
            if last != EXPIRED:
                problems.append(f"B's last message {short(last, 200)}, expected {EXPIRED}")
            if code != 4005:
                problems.append(f"B was closed {code} {reason!r}, expected 4005")
            if closed_at < b_exp - 0.5:
                problems.append(f"B was closed {b_exp - closed_at:.2f}s before its token's exp")

            # A's first token expired a second before B's: the refresh keeps A.
            try:
                await a.ping_ok()
            except CheckFailed as e:
                problems.append(f"A, refreshed before its first token's exp: {e}")
            if a.messages(type_="disconnect"):
                problems.append(f"A (refreshed) got {a.messages(type_='disconnect')}")

            # B reconnects with a fresh token: the session resumes.
            b2 = await open_ws(s, "B again", bearer=mint(k.hs_secret, sub="bob"))
            r = await b2.request({"type": "connect", "session": b.session})
            if r.get("type") != "connected" or r.get("resumed") is not True:
                problems.append(f"B reconnecting with a fresh token and its session → "
                                f"{short(r, 200)}, expected resumed:true")
            check(not problems, "; ".join(problems))
        finally:
            await stop_all([a, b, b2, anon])

    # ------------------------------------------------------------------ 5. anonymous
    async def case_anonymous(self):
        k = self.k
        s = self.start(auth_table([k.hs_secret]) + "\n[namespaces.chat]\n", "no-anon")
        problems: list[str] = []
        resp = await handshake(s)
        problems += refusal_problems("no anonymous namespace, an upgrade without token", resp,
                                     "token_required", www=False)
        if resp.status == 401 and not (resp.header("www-authenticate") or "").lower() \
                .startswith("bearer"):
            self.rep.note("the 401 token_required has no WWW-Authenticate: Bearer header "
                          "(RFC 7235 §3.1 says a 401 MUST have one; docs/protocol.md names it "
                          "only for invalid_token)")
        c = await open_ws(s, "query token", query=mint(k.hs_secret, sub="quinn"))
        try:
            r = await c.request({"type": "connect"})
            if r.get("type") != "connected" or r.get("user") != "quinn":
                problems.append(f"no anonymous namespace, ?token= upgrade: connect → "
                                f"{short(r, 200)}")
        finally:
            await stop_all([c])

        s2 = self.start(auth_table([k.hs_secret]) +
                        "\n[namespaces.open]\nanonymous = true\npresence = true\n"
                        "join_leave = true\n\n[namespaces.chat]\npresence = true\n", "anon")
        anon = tok = None
        try:
            anon = await open_ws(s2, "anonymous")
            r = await anon.request({"type": "connect", "user": "mallory", "info": {"k": 1}})
            check(r.get("type") == "connected", f"anonymous connect → {short(r, 200)}")
            anon.client_id = r.get("client")
            if r.get("user") not in (None, ""):
                problems.append(f"anonymous connected reply has user {r.get('user')!r} (the "
                                "user sent in connect must be ignored)")
            await anon.subscribe("open:lobby")
            j = await anon.expect(lambda m: m.get("type") == "join" and
                                  m.get("client") == anon.client_id, 5, "its own join")
            if j.get("user") not in (None, ""):
                problems.append(f"the anonymous client's join {short(j, 200)} carries a user")
            r = await anon.request({"type": "presence", "channel": "open:lobby"})
            users = [e.get("user") for e in r.get("clients", [])]
            if r.get("type") != "presence" or users not in ([None], [""]):
                problems.append(f"presence open:lobby with one anonymous subscriber → "
                                f"{short(r, 200)}, expected one entry without user")
            for req in ({"type": "subscribe", "channel": "chat:x"},
                        {"type": "publish", "channel": "chat:x", "data": 1}):
                problems += error_problems(f"anonymous {short(req)} (chat is not anonymous)",
                                           await anon.request(req), "permission_denied")
            tok = await open_ws(s2, "token", bearer=mint(k.hs_secret, sub="tara"))
            r = await tok.request({"type": "connect"})
            check(r.get("type") == "connected", f"token connect → {short(r, 200)}")
            tara = r.get("client")
            await tok.subscribe("open:lobby")
            j = await anon.expect(lambda m: m.get("type") == "join" and
                                  m.get("client") == tara, 5, "tara's join")
            if j.get("user") != "tara":
                problems.append(f"tara's join seen by the anonymous client {short(j, 200)}, "
                                "expected user tara")
            r = await tok.request({"type": "subscribe", "channel": "chat:x"})
            if r.get("type") != "subscribed":
                problems.append(f"token client subscribe chat:x → {short(r, 200)}")
            check(not problems, "; ".join(problems))
        finally:
            await stop_all([anon, tok])

    # ------------------------------------------------------------------ 6. permissions
    async def case_permissions(self):
        k = self.k
        cfg = (auth_table([k.hs_secret]) +
               '\n[namespaces.news]\nanonymous = true\npresence = true\nhistory_size = 10\n'
               'allow_subscribe = "authenticated"\nallow_publish = "claim"\n'
               'allow_presence = "claim"\nallow_history = "claim"\n')
        s = self.start(cfg, "permissions")
        problems: list[str] = []
        sports = plain = star = anon = None
        try:
            sports = await open_ws(s, "sports", bearer=mint(
                k.hs_secret, sub="sam", channels=["news:sports-*", "news:weather"]))
            plain = await open_ws(s, "plain", bearer=mint(k.hs_secret, sub="pat"))
            star = await open_ws(s, "star", bearer=mint(k.hs_secret, sub="stella",
                                                        channels=["*"]))
            anon = await open_ws(s, "anonymous")
            for c in (sports, plain, star, anon):
                await c.connect()

            for ch in ("news:sports-1", "news:politics"):
                r = await sports.request({"type": "subscribe", "channel": ch})
                if r.get("type") != "subscribed":
                    problems.append(f"sports: subscribe {ch} (allow_subscribe authenticated) "
                                    f"→ {short(r, 200)}")
            allowed = ("news:sports-1", "news:weather")
            refused = ("news:politics", "news:sportsfan", "news:weather2")
            for op, want in (("publish", "published"), ("presence", "presence"),
                             ("history", "history")):
                for ch in allowed + refused:
                    req = {"type": op, "channel": ch}
                    if op == "publish":
                        req["data"] = {"x": 1}
                    r = await sports.request(req)
                    what = f"channels [news:sports-*, news:weather]: {op} {ch}"
                    if ch in allowed:
                        if r.get("type") != want:
                            problems.append(f"{what} → {short(r, 200)}, expected {want}")
                    else:
                        problems += error_problems(what, r, "permission_denied", op)

            r = await plain.request({"type": "subscribe", "channel": "news:sports-1"})
            if r.get("type") != "subscribed":
                problems.append(f"no channels claim: subscribe news:sports-1 → {short(r, 200)}")
            problems += error_problems(
                "no channels claim: publish news:sports-1",
                await plain.request({"type": "publish", "channel": "news:sports-1", "data": 1}),
                "permission_denied", "publish")
            r = await star.request({"type": "publish", "channel": "news:politics", "data": 1})
            if r.get("type") != "published":
                problems.append(f"channels [*]: publish news:politics → {short(r, 200)}")
            problems += error_problems(
                "anonymous: subscribe news:sports-1 (allow_subscribe authenticated)",
                await anon.request({"type": "subscribe", "channel": "news:sports-1"}),
                "permission_denied", "subscribe")
            check(not problems, "; ".join(problems))
        finally:
            await stop_all([sports, plain, star, anon])

    # ------------------------------------------------------------------ 7. private channels
    async def case_private_channels(self):
        k = self.k
        cfg = (f'[api]\nkey = "{API_KEY}"\n\n' + auth_table([k.hs_secret], [k.ec_pub_file]) +
               "\n[namespaces.priv]\nprivate = true\n")
        s = self.start(cfg, "private")
        problems: list[str] = []
        alice = bob = None
        ch = "priv:room"
        try:
            alice = await open_ws(s, "alice", bearer=mint(k.hs_secret, sub="alice"))
            bob = await open_ws(s, "bob", bearer=mint(k.hs_secret, sub="bob"))
            await alice.connect()
            await bob.connect()
            t = now()
            cases = [
                ("no subscribe token", None, "permission_denied"),
                ("a subscribe token for priv:other",
                 mint(k.hs_secret, sub="alice", channel="priv:other"), "permission_denied"),
                ("a subscribe token of sub bob",
                 mint(k.hs_secret, sub="bob", channel=ch), "permission_denied"),
                ("an expired subscribe token",
                 mint(k.hs_secret, sub="alice", ttl=None, exp=t - 120, iat=t - 300,
                      channel=ch), "invalid_token"),
                ("a subscribe token signed by another key",
                 mint(k.other_hs_secret, sub="alice", channel=ch), "invalid_token"),
            ]
            for what, tok, code in cases:
                req = {"type": "subscribe", "channel": ch}
                if tok is not None:
                    req["token"] = tok
                problems += error_problems(f"alice: subscribe {ch} with {what}",
                                           await alice.request(req), code)
            alices = mint(k.hs_secret, sub="alice", channel=ch)
            problems += error_problems(
                f"bob: subscribe {ch} with alice's subscribe token",
                await bob.request({"type": "subscribe", "channel": ch, "token": alices}),
                "permission_denied")
            r = await alice.request({"type": "subscribe", "channel": ch, "token": alices})
            check(r.get("type") == "subscribed" and r.get("channel") == ch,
                  "; ".join(problems + [f"alice: subscribe {ch} with her subscribe token → "
                                        f"{short(r, 200)}, expected subscribed"]))
            status, out = await api_async(s, "publish", {"channel": ch, "data": "secret-1"})
            check(status == 200, f"POST /api/publish {ch} → {status} {short(out)}")
            await alice.expect(lambda m: m.get("type") == "message" and m.get("channel") == ch
                               and m.get("data") == "secret-1", 5, f"the publication on {ch}")
            if bob.messages(ch):
                problems.append(f"bob (refused) received {bob.messages(ch)}")
            r = await alice.request({"type": "subscribe", "channel": "priv:nosub",
                                     "token": mint(k.ec, "ES256", sub=None,
                                                   channel="priv:nosub")})
            if r.get("type") != "subscribed":
                problems.append(f"subscribe priv:nosub with an ES256 subscribe token without "
                                f"sub → {short(r, 200)}, expected subscribed")
            check(not problems, "; ".join(problems))
        finally:
            await stop_all([alice, bob])

    # ------------------------------------------------------------------ 8. session ownership
    async def case_session_ownership(self):
        k = self.k
        cfg = (auth_table([k.hs_secret]) + "\n[namespaces.pub]\nanonymous = true\n\n"
               "[namespaces.chat]\nhistory_size = 10\n")
        s = self.start(cfg, "ownership")
        problems: list[str] = []
        opened: list[Client] = []

        async def attempt(name, bearer, sid):
            c = await open_ws(s, name, bearer=bearer)
            opened.append(c)
            r = await c.request({"type": "connect", "session": sid})
            check(r.get("type") == "connected", f"{name}: connect with a session → "
                  f"{short(r, 200)}")
            return c, r

        try:
            alice = await open_ws(s, "alice", bearer=mint(k.hs_secret, sub="alice"))
            opened.append(alice)
            await alice.connect()
            sid = alice.session
            await alice.subscribe("chat:room")
            await alice.close()
            await alice.wait_closed(5)
            for name, bearer in (("anonymous", None), ("bob", mint(k.hs_secret, sub="bob"))):
                c, r = await attempt(name, bearer, sid)
                if r.get("resumed") is not False or r.get("session") in (None, sid):
                    problems.append(f"{name}: connect with alice's session → {short(r, 200)}, "
                                    "expected resumed:false and another session id")
                await c.close()
            c, r = await attempt("alice again", mint(k.hs_secret, sub="alice"), sid)
            chans = [e.get("channel") for e in r.get("channels") or []]
            if r.get("resumed") is not True or r.get("session") != sid or chans != ["chat:room"]:
                problems.append(f"alice: connect with her own session → {short(r, 200)}, "
                                "expected resumed:true, the same session, channels [chat:room]")

            anon = await open_ws(s, "anonymous owner")
            opened.append(anon)
            await anon.connect()
            asid = anon.session
            await anon.close()
            await anon.wait_closed(5)
            c, r = await attempt("alice with an anonymous session",
                                 mint(k.hs_secret, sub="alice"), asid)
            if r.get("resumed") is not False or r.get("session") == asid:
                problems.append(f"alice: connect with an anonymous session → {short(r, 200)}, "
                                "expected resumed:false and another session id")
            c, r = await attempt("another anonymous", None, asid)
            if r.get("resumed") is not True or r.get("session") != asid:
                problems.append(f"anonymous: connect with an anonymous session → "
                                f"{short(r, 200)}, expected resumed:true")
            check(not problems, "; ".join(problems))
        finally:
            await stop_all(opened)

    # ------------------------------------------------------------------ 9. /api/disconnect
    async def case_disconnect_user(self):
        k = self.k
        s = self.start(f'[api]\nkey = "{API_KEY}"\n\n' + auth_table([k.hs_secret]), "kick")
        clients: list[Client] = []
        problems: list[str] = []
        try:
            for name, sub in (("alice-1", "alice"), ("alice-2", "alice"), ("bob", "bob")):
                c = await open_ws(s, name, bearer=mint(k.hs_secret, sub=sub))
                clients.append(c)
                await c.connect()
            a1, a2, bob = clients
            status, out = await api_async(s, "disconnect", {"user": "alice"})
            check(status == 200 and isinstance(out, dict) and out.get("clients") == 2 and
                  out.get("result") == "requested",
                  f"POST /api/disconnect {{\"user\":\"alice\"}} → {status} {short(out)}, "
                  "expected 200 {\"result\":\"requested\",\"clients\":2}")
            for c in (a1, a2):
                try:
                    code, reason = await c.wait_closed(5)
                except CheckFailed as e:
                    problems.append(str(e))
                    continue
                last = c.all[-1] if c.all else None
                if last != KICKED:
                    problems.append(f"{c.name}: last message {short(last, 200)}, expected "
                                    f"{KICKED}")
                if code != 4003:
                    problems.append(f"{c.name}: closed {code} {reason!r}, expected 4003")
            try:
                await bob.ping_ok()
            except CheckFailed as e:
                problems.append(f"bob after alice was disconnected: {e}")
            status, out = await api_async(s, "disconnect", {"user": "nobody"})
            if status != 404 or not isinstance(out, dict) or out.get("error") != "unknown_client":
                problems.append(f"POST /api/disconnect {{\"user\":\"nobody\"}} → {status} "
                                f"{short(out)}, expected 404 unknown_client")
            check(not problems, "; ".join(problems))
        finally:
            await stop_all(clients)

    # ------------------------------------------------------------------ 10. secrets in logs
    async def case_secrets_not_logged(self):
        k = self.k
        secret = hmac_secret()
        api_key = hmac_secret(20)
        wrong_key = hmac_secret(20)

        def config(hs: str, key: str) -> str:
            return (f'[api]\nkey = "{key}"\n\n' + auth_table([hs], leeway="0s") +
                    "\n[namespaces.pub]\nanonymous = true\n")

        s = self.start(config(secret, api_key), "logs", log_level="debug")
        t = now()
        tokens = {
            "expired (header)": mint(secret, sub="lee", ttl=None, exp=t - 60, iat=t - 120),
            "expired (query)": mint(secret, sub="lee", ttl=None, exp=t - 61, iat=t - 120),
            "valid (header)": mint(secret, sub="lee", ttl=300),
            "valid (query)": mint(secret, sub="lee", ttl=301),
            "refresh": mint(secret, sub="lee", ttl=302),
            "bad signature (connect)": mint(k.other_hs_secret, sub="lee"),
        }
        clients: list[Client] = []
        try:
            resp = await handshake(s, bearer=tokens["expired (header)"])
            check(resp.status == 401, f"expired token on the upgrade → {resp.status}")
            resp = await handshake(s, query=tokens["expired (query)"])
            check(resp.status == 401, f"expired ?token= → {resp.status}")
            resp = await handshake(s, bearer=tokens["valid (header)"])
            check(resp.status == 101, f"valid token on the upgrade → {resp.status}")
            c = await open_ws(s, "query", query=tokens["valid (query)"])
            clients.append(c)
            await c.connect()
            r = await c.request({"type": "refresh", "token": tokens["refresh"]})
            check(r.get("type") == "refreshed", f"refresh → {short(r, 200)}")
            c2 = await open_ws(s, "bad")
            clients.append(c2)
            r = await c2.request({"type": "connect", "token": tokens["bad signature (connect)"]})
            check(r.get("code") == "invalid_token", f"bad connect token → {short(r, 200)}")
            status, _ = await api_async(s, "info", {}, key=api_key)
            check(status == 200, f"/api/info with the key → {status}")
            status, _ = await api_async(s, "info", {}, key=wrong_key)
            check(status == 401, f"/api/info with a wrong key → {status}")
            await c.ping_ok()

            deadline = Deadline(5)
            while "token expired" not in server_log(s):
                check(not deadline.expired(), "the refused handshakes' reason (\"token "
                      "expired\") is not in the debug log within 5 s; log tail: "
                      f"{s.proc.log_tail(600)!r}")
                await asyncio.sleep(0.05)  # polling the log file, bounded
            problems = leak_problems("the debug log", full_log(s), tokens,
                                     {"HMAC secret": secret, "API key": api_key,
                                      "wrong API key": wrong_key})

            # SIGHUP with a new secret and API key: the reload logs neither.
            secret2, api_key2 = hmac_secret(), hmac_secret(20)
            with open(s.config_file.name, "w") as f:
                f.write(config(secret2, api_key2))
            s.proc.signal(signal.SIGHUP)
            tok2 = mint(secret2, sub="lee")
            await wait_accepted(s, tok2, 10, "a token with the new secret")
            status, _ = await api_async(s, "info", {}, key=api_key2)
            if status != 200:
                problems.append(f"/api/info with the reloaded API key → {status}")
            problems += leak_problems("the debug log after SIGHUP", full_log(s),
                                      {"new-secret": tok2},
                                      {"new HMAC secret": secret2, "new API key": api_key2})

            out = await asyncio.to_thread(
                subprocess.run, [self.binary, "check-config", "--config", s.config_file.name],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
            text = out.stdout.decode(errors="replace")
            if out.returncode != 0:
                problems.append(f"check-config exited {out.returncode}: {text[-400:]}")
            elif secret2 in text or api_key2 in text or "<set>" not in text:
                problems.append("check-config prints a secret (expected <set>): " + short(
                    [ln for ln in text.splitlines() if secret2 in ln or api_key2 in ln], 400))
            check(not problems, "; ".join(problems))
        finally:
            await stop_all(clients)


def _payload(token: str) -> str:
    seg = token.split(".")[1]
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)).decode()


CASES = ("valid_tokens", "refused_tokens", "rotation", "sighup_rotation", "refresh",
         "anonymous", "permissions", "private_channels", "session_ownership",
         "disconnect_user", "secrets_not_logged")


async def main() -> int:
    args = suite_arguments(__doc__)
    rep = Reporter("integration.test_auth")
    budget = Deadline(SUITE_BUDGET_S)
    keys = TestKeys()
    try:
        suite = Suite(args.server, rep, keys)
        for name in CASES:
            if budget.remaining() < 5:
                rep.record(name, False, f"not run: the suite's {SUITE_BUDGET_S:.0f}s budget "
                           "is spent")
                continue
            await suite.run(name, timeout=min(CASE_TIMEOUT_S, budget.remaining()))
    finally:
        keys.cleanup()
    return rep.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
