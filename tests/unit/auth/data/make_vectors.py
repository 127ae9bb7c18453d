#!/usr/bin/python3
"""Regenerates the JWT test vectors of tests/unit/auth/ with an independent implementation.

Tokens are made by PyJWT (Debian python3-jwt 2.6, with python3-cryptography) from the test-only
keys in this folder, which were made once with the openssl CLI:

    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa_private.pem
    openssl pkey -in rsa_private.pem -pubout -out rsa_public.pem
    openssl req -x509 -new -key rsa_private.pem -subj /CN=switchboard-test -days 36500 \
        -out rsa_cert.pem
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec_private.pem
    openssl pkey -in ec_private.pem -pubout -out ec_public.pem
    (the same for rsa_other_* and ec_other_*; rsa1024_public.pem, ec_p384_public.pem and
    ed25519_public.pem are keys the verifier must refuse)
    openssl rand -hex 32 | tr -d '\\n' > hs_secret.txt     (and hs_other_secret.txt)

These keys protect nothing: they exist only for the tests. Tokens that PyJWT refuses to make
(an HS256 MAC keyed with an RSA public key, headers that are not JSON) are put together here
with Python's own hmac/base64 modules. Every token has fixed dates around NOW, and the tests
pass NOW as the clock, so the vectors never go stale.

Run from anywhere: /usr/bin/python3 tests/unit/auth/data/make_vectors.py
Writes vectors.txt (one "name token" per line) and jwks.json next to this script.
"""

import base64
import hashlib
import hmac
import json
import os

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = 1700000000  # the tests' now_s


def read(name):
    with open(os.path.join(HERE, name), "rb") as f:
        return f.read()


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


HS = read("hs_secret.txt")
HS_OTHER = read("hs_other_secret.txt")
RSA = read("rsa_private.pem")
RSA_OTHER = read("rsa_other_private.pem")
RSA_PUB = read("rsa_public.pem")
EC = read("ec_private.pem")
EC_OTHER = read("ec_other_private.pem")

FULL = {
    "sub": "user-42",
    "iat": NOW - 60,
    "nbf": NOW - 60,
    "exp": NOW + 3600,
    "iss": "https://issuer.test",
    "aud": "switchboard",
    "channel": "private:room-1",
    "channels": ["chat:*", "news"],
    "info": {"name": "Ann", "tags": [1, 2], "nested": {"ok": True}},
}

vectors = []


def add(name, token):
    vectors.append((name, token))


def raw_hs256(header_text, payload_text, key=HS):
    """A token whose parts are given as text, MACed with HMAC-SHA256 (stdlib, not PyJWT)."""
    signing_input = b64(header_text.encode()) + "." + b64(payload_text.encode())
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)


def hs_payload(payload_bytes, key=HS, headers=None):
    """PyJWT's JWS layer signs any payload bytes (arrays, odd JSON) that jwt.encode would not."""
    return jwt.api_jws.encode(payload_bytes, key, algorithm="HS256", headers=headers)


# Valid tokens of each algorithm, with and without a kid (the kid ones match jwks.json).
add("hs256_valid", jwt.encode(FULL, HS, algorithm="HS256"))
add("rs256_valid", jwt.encode(FULL, RSA, algorithm="RS256"))
add("es256_valid", jwt.encode(FULL, EC, algorithm="ES256"))
add("hs256_kid_hs1", jwt.encode(FULL, HS_OTHER, algorithm="HS256", headers={"kid": "hs-1"}))
add("rs256_kid_rsa1", jwt.encode(FULL, RSA, algorithm="RS256", headers={"kid": "rsa-1"}))
add("es256_kid_ec1", jwt.encode(FULL, EC, algorithm="ES256", headers={"kid": "ec-1"}))

# Signed by another key.
add("hs256_other_key", jwt.encode(FULL, HS_OTHER, algorithm="HS256"))
add("rs256_other_key", jwt.encode(FULL, RSA_OTHER, algorithm="RS256"))
add("es256_other_key", jwt.encode(FULL, EC_OTHER, algorithm="ES256"))
# Rotation: the other secret, named k1 (wrong name) or k2 (right name), or an unknown kid.
add("hs256_other_kid_k1", jwt.encode(FULL, HS_OTHER, algorithm="HS256", headers={"kid": "k1"}))
add("hs256_other_kid_k2", jwt.encode(FULL, HS_OTHER, algorithm="HS256", headers={"kid": "k2"}))
add("hs256_kid_unknown", jwt.encode(FULL, HS, algorithm="HS256", headers={"kid": "nope"}))

# Dates: one claim each, so that the tests move the clock around it.
add("exp_only", jwt.encode({"sub": "u", "exp": NOW}, HS, algorithm="HS256"))
add("nbf_only", jwt.encode({"sub": "u", "nbf": NOW}, HS, algorithm="HS256"))
add("iat_only", jwt.encode({"sub": "u", "iat": NOW}, HS, algorithm="HS256"))
add("no_exp", jwt.encode({"sub": "u"}, HS, algorithm="HS256"))
add("exp_float", hs_payload(b'{"exp":1700003600.75}'))

# Audience and issuer.
add("aud_other", jwt.encode({"aud": "other", "iss": "https://other.test"}, HS, algorithm="HS256"))
add("aud_array", jwt.encode({"aud": ["web", "switchboard"]}, HS, algorithm="HS256"))
add("aud_array_other", jwt.encode({"aud": ["web", "mobile"]}, HS, algorithm="HS256"))

# Algorithms that must never verify.
none_token = jwt.encode(FULL, None, algorithm="none")
add("alg_none", none_token)
add("alg_none_with_sig", none_token + dict(vectors)["hs256_valid"].split(".")[2])
add("alg_none_caps", raw_hs256('{"alg":"NONE","typ":"JWT"}', json.dumps(FULL)))
add("alg_missing", raw_hs256('{"typ":"JWT"}', json.dumps(FULL)))
add("alg_number", raw_hs256('{"alg":256}', json.dumps(FULL)))
add("alg_hs512", jwt.encode(FULL, HS, algorithm="HS512"))
add("alg_rs384", jwt.encode(FULL, RSA, algorithm="RS384"))
add("crit_header", jwt.encode(FULL, HS, algorithm="HS256", headers={"crit": ["exp"]}))
# Algorithm confusion: an HS256 MAC keyed with the RSA public key's PEM text (PyJWT refuses to
# make one, so it is done with hmac), with and without the PEM's final newline.
add("hs256_with_rsa_pem", raw_hs256('{"alg":"HS256","typ":"JWT"}', json.dumps(FULL), RSA_PUB))
add("hs256_with_rsa_pem_trimmed",
    raw_hs256('{"alg":"HS256","typ":"JWT"}', json.dumps(FULL), RSA_PUB.strip()))
# ES256 with an ASN.1 DER signature instead of JWS's raw r||s.
ec_key = serialization.load_pem_private_key(EC, password=None)
es_input = b64(b'{"alg":"ES256","typ":"JWT"}') + "." + b64(json.dumps(FULL).encode())
add("es256_der_sig", es_input + "." + b64(ec_key.sign(es_input.encode(), ec.ECDSA(hashes.SHA256()))))

# Malformed headers and payloads (signed, so that only the structure is wrong).
add("header_not_json", raw_hs256("not json", json.dumps(FULL)))
add("header_array", raw_hs256('["HS256"]', json.dumps(FULL)))
add("header_dup_alg", raw_hs256('{"alg":"none","alg":"HS256"}', json.dumps(FULL)))
add("header_kid_number", raw_hs256('{"alg":"HS256","kid":5}', json.dumps(FULL)))
add("payload_array", hs_payload(b"[1,2,3]"))
add("payload_not_json", hs_payload(b"hello"))
add("payload_dup_exp", hs_payload(b'{"exp":1,"exp":1800000000}'))
add("payload_trailing", hs_payload(b'{"sub":"u"} {}'))
add("depth_16", hs_payload(('{"a":' + "[" * 15 + "]" * 15 + "}").encode()))
add("depth_17", hs_payload(('{"a":' + "[" * 16 + "]" * 16 + "}").encode()))
add("depth_100", hs_payload(('{"a":' + "[" * 99 + "]" * 99 + "}").encode()))

# Claims of the wrong type or out of range.
add("exp_string", hs_payload(b'{"exp":"1700003600"}'))
add("exp_null", hs_payload(b'{"exp":null}'))
add("exp_huge_double", hs_payload(b'{"exp":1e300}'))
add("exp_u64", hs_payload(b'{"exp":18446744073709551615}'))
add("exp_bigint", hs_payload(b'{"exp":100000000000000000000000000}'))
add("exp_1e400", hs_payload(b'{"exp":1e400}'))
add("sub_number", hs_payload(b'{"sub":42}'))
add("iss_array", hs_payload(b'{"iss":["a"]}'))
add("aud_number", hs_payload(b'{"aud":5}'))
add("aud_array_mixed", hs_payload(b'{"aud":["switchboard",5]}'))
add("channel_object", hs_payload(b'{"channel":{}}'))
add("channels_string", hs_payload(b'{"channels":"chat:*"}'))
add("channels_mixed", hs_payload(b'{"channels":["chat:*",1]}'))
add("info_too_big", jwt.encode({"info": "x" * 1100}, HS, algorithm="HS256"))

# Claims extraction details.
add("info_spaced", hs_payload(b'{"sub":"u", "info" : { "a" : [1, 2 ,3], "s":"x y" } }'))
add("info_string", jwt.encode({"info": "hello"}, HS, algorithm="HS256"))
add("escaped_keys", hs_payload(b'{"s\\u0075b":"Jos\\u00e9","channels":[]}'))

# Size: just under and over kMaxTokenBytes (8192).
add("big_ok", jwt.encode({"sub": "u", "pad": "x" * 5900}, HS, algorithm="HS256"))
add("too_big", jwt.encode({"sub": "u", "pad": "x" * 6700}, HS, algorithm="HS256"))
assert 7800 < len(dict(vectors)["big_ok"]) <= 8192
assert len(dict(vectors)["too_big"]) > 9000

with open(os.path.join(HERE, "vectors.txt"), "w") as f:
    f.write("# Generated by make_vectors.py (PyJWT %s); now_s = %d. name token\n" %
            (jwt.__version__, NOW))
    for name, token in vectors:
        f.write("%s %s\n" % (name, token))


# The JWKS: the three keys above that tokens name by kid, plus keys that must be skipped.
def jwk(alg_cls, key, **extra):
    d = json.loads(alg_cls.to_jwk(key))
    d.update(extra)
    return d


def public(pem):
    return serialization.load_pem_private_key(pem, password=None).public_key()


jwks = {
    "keys": [
        jwk(RSAAlgorithm, public(RSA), kid="rsa-1", use="sig", alg="RS256"),
        jwk(ECAlgorithm, public(EC), kid="ec-1", use="sig", alg="ES256"),
        jwk(HMACAlgorithm, HS_OTHER, kid="hs-1", alg="HS256"),
        jwk(RSAAlgorithm, public(RSA_OTHER), kid="enc-1", use="enc"),
        jwk(RSAAlgorithm, public(RSA_OTHER), kid="rs512-1", alg="RS512"),
        jwk(ECAlgorithm, serialization.load_pem_public_key(read("ec_p384_public.pem")),
            kid="p384-1"),
        jwk(OKPAlgorithm, serialization.load_pem_public_key(read("ed25519_public.pem")),
            kid="ed-1"),
    ]
}
with open(os.path.join(HERE, "jwks.json"), "w") as f:
    json.dump(jwks, f, indent=2)
    f.write("\n")
print("wrote %d vectors and %d JWKS keys" % (len(vectors), len(jwks["keys"])))
