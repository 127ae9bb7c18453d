"""A throwaway certificate authority for the TLS suites, made with the openssl CLI.

    ca = TestCA()                                   # new CA in a fresh temp directory
    good = ca.issue("server")                       # CN=localhost, SAN DNS:localhost, IP:127.0.0.1
    other = ca.issue("server2", cn="localhost-2")   # another serial, another CN, same names
    old = ca.issue("expired", expired=True)         # valid 2020-01-01 .. 2020-01-02
    wrong = ca.issue("wrong", cn="wrong.example", dns=("wrong.example",), ips=())
    rogue = ca.self_signed("rogue")                 # not from the CA
    ctx = ssl.create_default_context(cafile=ca.cert)
    ...
    ca.cleanup()

Keys are EC P-256 (fast to make). Every certificate gets its own serial (`Cert.serial`, an int;
`Cert.serial_hex` is how `SSLSocket.getpeercert()["serialNumber"]` writes it). Certificates are
signed with `openssl ca`, so notBefore/notAfter are explicit: a valid certificate starts an
hour in the past (no clock-edge flakes), an expired one ended years ago. Python 3.11 stdlib
only; nothing here listens or connects.

  /usr/bin/python3 tests/support/tls_ca.py DIR     # makes the set above in DIR, for manual runs
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


class TlsCaError(RuntimeError):
    pass


def _run(*argv: str, stdin: bytes | None = None) -> bytes:
    r = subprocess.run([OPENSSL, *argv], input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    if r.returncode != 0:
        raise TlsCaError(f"openssl {' '.join(argv)} failed ({r.returncode}): "
                         f"{r.stderr.decode(errors='replace')[-800:]}")
    return r.stdout


def _gentime(t: _dt.datetime) -> str:
    return t.astimezone(_dt.timezone.utc).strftime("%Y%m%d%H%M%SZ")


def _san(dns, ips) -> str:
    names = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
    return ",".join(names)


@dataclass
class Cert:
    """One certificate and its key, as PEM files. `chain` is the file a server loads as its
    certificate chain (leaf first); for a leaf signed by the root it is the leaf alone."""

    name: str
    cert: str
    key: str
    serial: int
    cn: str

    @property
    def chain(self) -> str:
        return self.cert

    @property
    def serial_hex(self) -> str:
        """As `ssl.SSLSocket.getpeercert()` reports it: upper-case hex, even length."""
        h = f"{self.serial:X}"
        return h if len(h) % 2 == 0 else "0" + h

    def pem(self) -> bytes:
        return Path(self.cert).read_bytes()

    def key_pem(self) -> bytes:
        return Path(self.key).read_bytes()

    def der(self) -> bytes:
        return _run("x509", "-in", self.cert, "-outform", "der")

    def spki_sha256_b64(self) -> str:
        """base64(SHA-256(SubjectPublicKeyInfo)): Chromium's --ignore-certificate-errors-spki-list
        and HPKP's pin format; same as `openssl x509 -pubkey -noout | openssl pkey -pubin
        -outform der | openssl dgst -sha256 -binary | base64`."""
        pub = _run("x509", "-in", self.cert, "-pubkey", "-noout")
        der = _run("pkey", "-pubin", "-outform", "der", stdin=pub)
        return base64.b64encode(hashlib.sha256(der).digest()).decode()


class TestCA:
    """A root CA in a temp directory (or `directory`), and the certificates it issues."""

    __test__ = False  # not a pytest class, despite the name

    def __init__(self, directory: str | Path | None = None, name: str = "Switchboard test CA"):
        self._own_dir = directory is None
        self.dir = Path(tempfile.mkdtemp(prefix="sb-tls-ca-") if directory is None else directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert = str(self.dir / "ca.pem")
        self.key = str(self.dir / "ca.key")
        self._next_serial = 0x1000
        (self.dir / "index.txt").write_text("")
        (self.dir / "newcerts").mkdir(exist_ok=True)
        _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", self.key, "-out", self.cert, "-subj", f"/CN={name}",
             "-days", "30", "-set_serial", str(self._take_serial()),
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash")
        self._config = self.dir / "ca.cnf"
        self._config.write_text(
            "[ca]\ndefault_ca = test_ca\n"
            "[test_ca]\n"
            f"dir = {self.dir}\n"
            "database = $dir/index.txt\n"
            "new_certs_dir = $dir/newcerts\n"
            f"certificate = {self.cert}\n"
            f"private_key = {self.key}\n"
            "serial = $dir/serial\n"
            "default_md = sha256\n"
            "policy = policy_any\n"
            "unique_subject = no\n"
            "email_in_dn = no\n"
            "copy_extensions = none\n"
            "[policy_any]\ncommonName = supplied\n")

    def _take_serial(self) -> int:
        s = self._next_serial
        self._next_serial += 1
        return s

    def _keypair(self, stem: Path, cn: str) -> tuple[str, str]:
        key, csr = str(stem) + ".key", str(stem) + ".csr"
        _run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
        return key, csr

    def issue(self, name: str, cn: str = "localhost", dns=("localhost",), ips=("127.0.0.1",),
              days: int = 30, expired: bool = False) -> Cert:
        """A server certificate signed by this CA (serverAuth, SAN from dns and ips)."""
        stem = self.dir / name
        key, csr = self._keypair(stem, cn)
        serial = self._take_serial()
        (self.dir / "serial").write_text(f"{serial:X}\n")
        ext = self.dir / f"{name}.ext"
        lines = ["[v3]", "basicConstraints = critical,CA:FALSE",
                 "keyUsage = critical,digitalSignature",
                 "extendedKeyUsage = serverAuth",
                 "subjectKeyIdentifier = hash",
                 "authorityKeyIdentifier = keyid"]
        if dns or ips:
            lines.append(f"subjectAltName = {_san(dns, ips)}")
        ext.write_text("\n".join(lines) + "\n")
        now = _dt.datetime.now(_dt.timezone.utc)
        if expired:
            start = _dt.datetime(2020, 1, 1, tzinfo=_dt.timezone.utc)
            end = _dt.datetime(2020, 1, 2, tzinfo=_dt.timezone.utc)
        else:
            start = now - _dt.timedelta(hours=1)
            end = now + _dt.timedelta(days=days)
        cert = str(stem) + ".pem"
        _run("ca", "-batch", "-config", str(self._config), "-in", csr, "-out", cert, "-notext",
             "-startdate", _gentime(start), "-enddate", _gentime(end),
             "-extfile", str(ext), "-extensions", "v3")
        return Cert(name, cert, key, serial, cn)

    def self_signed(self, name: str, cn: str = "localhost", dns=("localhost",),
                    ips=("127.0.0.1",), days: int = 30) -> Cert:
        """A self-signed certificate for the same names, not issued by this CA."""
        stem = self.dir / name
        key, cert = str(stem) + ".key", str(stem) + ".pem"
        serial = self._take_serial()
        argv = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", cert, "-subj", f"/CN={cn}", "-days", str(days),
                "-set_serial", str(serial)]
        if dns or ips:
            argv += ["-addext", f"subjectAltName={_san(dns, ips)}"]
        _run(*argv)
        return Cert(name, cert, key, serial, cn)

    def cleanup(self):
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip())
        return 2
    ca = TestCA(argv[1])
    made = [ca.issue("server"), ca.issue("server2", cn="localhost-2"),
            ca.issue("expired", expired=True),
            ca.issue("wrong", cn="wrong.example", dns=("wrong.example",), ips=()),
            ca.self_signed("rogue")]
    print(f"CA {ca.cert} (key {ca.key})")
    for c in made:
        print(f"{c.name}: {c.cert} key {c.key} serial {c.serial_hex} CN={c.cn} "
              f"spki-sha256 {c.spki_sha256_b64()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
