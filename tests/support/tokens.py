"""Keys and JWTs for the auth suites (tests/integration/test_auth.py and any other suite that
needs tokens), made by an implementation independent of the server: python3-jwt (PyJWT) for
well-formed tokens, `cryptography` for keys, and hand-built compact JWS for tokens PyJWT
refuses to make on purpose (`alg: none`, HS256 "signed" with a PEM public key).

    keys = TestKeys()                 # fresh HS secrets, RSA 2048 and EC P-256 pairs, temp dir
    keys.hs_secret, keys.rsa_pub_file, keys.ec_pub_file, keys.ec_cert_file
    tok = mint(keys.hs_secret, "HS256", sub="alice", ttl=600, channels=["chat:*"])
    tok = mint(keys.rsa, "RS256", sub="bob", headers={"kid": "rsa-1"})
    no_exp = mint(keys.hs_secret, sub="carol", exp=None)          # None drops a claim
    keys.write_jwks("jwks.json", [(keys.rsa, "rsa-1"), (keys.ec, "ec-1")])
    bad = unsigned_token({"sub": "x", "exp": now() + 60})          # alg none, empty signature
    conf = hs256_with_raw_key(keys.rsa_pub_pem, {...})             # algorithm confusion
    keys.cleanup()

Nothing here listens, connects or sleeps. Python 3.11 + python3-jwt 2.6 + python3-cryptography.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def now() -> int:
    """Seconds since the epoch, as JWT time claims count them."""
    return int(time.time())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


# --------------------------------------------------------------------------------------------
# Keys


def hmac_secret(nbytes: int = 36) -> str:
    """A random HS256 secret, printable (TOML-safe), 2 * nbytes characters long (>= 32)."""
    return secrets.token_hex(nbytes)


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key) -> bytes:
    """SubjectPublicKeyInfo PEM (-----BEGIN PUBLIC KEY-----) of a private or public key."""
    pub = key.public_key() if hasattr(key, "public_key") else key
    return pub.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def self_signed_cert_pem(key, cn: str = "switchboard-token-issuer") -> bytes:
    """A self-signed X.509 certificate (valid from a day ago for a year) for key."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + _dt.timedelta(days=365))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def jwk(key, kid: str | None = None) -> dict:
    """The public JWK (RFC 7517/7518) of an RSA or P-256 key, with kid, alg and use."""
    pub = key.public_key() if hasattr(key, "public_key") else key
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        out = {"kty": "RSA", "alg": "RS256", "use": "sig",
               "n": b64url(nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")),
               "e": b64url(nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big"))}
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        nums = pub.public_numbers()
        out = {"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
               "x": b64url(nums.x.to_bytes(32, "big")), "y": b64url(nums.y.to_bytes(32, "big"))}
    else:
        raise TypeError(f"no JWK for {type(pub).__name__}")
    if kid is not None:
        out["kid"] = kid
    return out


class TestKeys:
    """One run's key material in a fresh temp directory: two HS secrets, an RSA 2048 and an EC
    P-256 key pair with their public PEM files, a second EC pair as a self-signed certificate,
    and "other" keys of each kind the server is never given (for wrong-key tokens)."""

    def __init__(self, directory: str | Path | None = None):
        self.dir = Path(directory or tempfile.mkdtemp(prefix="sb-keys-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hs_secret = hmac_secret()
        self.hs_secret2 = hmac_secret()
        self.other_hs_secret = hmac_secret()
        self.rsa = rsa_key()
        self.ec = ec_key()
        self.ec_cert_key = ec_key()
        self._other_rsa = None
        self.other_ec = ec_key()
        self.rsa_pub_pem = public_pem(self.rsa)
        self.rsa_pub_file = self.write("rsa_pub.pem", self.rsa_pub_pem)
        self.ec_pub_file = self.write("ec_pub.pem", public_pem(self.ec))
        self.ec_cert_file = self.write("ec_cert.pem", self_signed_cert_pem(self.ec_cert_key))

    @property
    def other_rsa(self) -> rsa.RSAPrivateKey:
        """An RSA key the server is never given (made on first use: RSA keys take a while)."""
        if self._other_rsa is None:
            self._other_rsa = rsa_key()
        return self._other_rsa

    def write(self, name: str, data: bytes | str) -> str:
        path = self.dir / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    def write_jwks(self, name: str, keys: list[tuple[object, str | None]]) -> str:
        """Writes {"keys":[...]} with the public JWK of each (key, kid); returns the path."""
        return self.write(name, json.dumps({"keys": [jwk(k, kid) for k, kid in keys]},
                                           indent=1))

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


# --------------------------------------------------------------------------------------------
# Tokens


def claims(sub: str | None = "alice", ttl: int | None = 600, **extra) -> dict:
    """A payload: sub, iat now, exp now + ttl, then extra; a claim given as None is left out
    (exp=None: a token that never expires; ttl=None does the same)."""
    t = now()
    out = {"sub": sub, "iat": t, "exp": None if ttl is None else t + ttl}
    out.update(extra)
    return {k: v for k, v in out.items() if v is not None}


def mint(key, alg: str = "HS256", sub: str | None = "alice", ttl: int | None = 600,
         headers: dict | None = None, **extra) -> str:
    """A JWT signed by PyJWT: key is an HS secret (str/bytes) or a private key object."""
    return jwt.encode(claims(sub, ttl, **extra), key, algorithm=alg, headers=headers)


def hs256_with_raw_key(key: bytes, payload: dict, header: dict | None = None) -> str:
    """HS256 over any bytes as the secret, PEM public keys included (PyJWT refuses those):
    the "algorithm confusion" token of an attacker who has the server's RSA public key."""
    head = b64url_json(header or {"alg": "HS256", "typ": "JWT"})
    body = b64url_json(payload)
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def unsigned_token(payload: dict, alg: str = "none") -> str:
    """`alg: none` in compact form: header.payload. with an empty signature."""
    return f"{b64url_json({'alg': alg, 'typ': 'JWT'})}.{b64url_json(payload)}."


def padded_to(key, size: int, alg: str = "HS256", **kw) -> str:
    """A validly signed token of at least `size` characters (a filler claim)."""
    fill = max(0, size * 3 // 4)
    tok = mint(key, alg, pad="x" * fill, **kw)
    while len(tok) < size:
        fill += size - len(tok)
        tok = mint(key, alg, pad="x" * fill, **kw)
    return tok


def nested(depth: int):
    """A JSON value nested depth levels deep: [[[...]]]."""
    v: object = 0
    for _ in range(depth):
        v = [v]
    return v


def random_garbage(n: int = 24) -> str:
    return b64url(os.urandom(n))
