// Fuzz target for JWT verification (auth/jwt.h). Input: a token, verified against a fixed key
// set of each algorithm (the test-only keys of tests/unit/auth/data/, so that the corpus's
// valid tokens reach the claims). Input that starts with '{' is also loaded as a JWKS, and
// "-----BEGIN" as a PEM key, into a fresh key set. Nothing may crash or leak; verification
// must be deterministic and leave the OpenSSL error queue empty.
#include <openssl/err.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "auth/jwt.h"

namespace {

namespace auth = sb::auth;

// Test-only keys (tests/unit/auth/data/): they protect nothing.
constexpr std::string_view kHsSecret =
    "1c824d22e4d7a25dea7f075e202a7a692f3769528ef482d6efb6ceb47c3ba78d";
constexpr std::string_view kRsaPublicPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA2DFErfHkd75CTP5xrVcV\n"
    "QZ3jqxpyHWCNDSNmeyNNxxY7nPmZ8H35xG8FFyttnzSCpL1Hc/usBXRlAr2p0t1e\n"
    "6gLHn0opCPJMebQPmJ+C/Oxxr1gjLZOEke/uuOwf3VSaWvETS8ST22Ogu4QbpKSh\n"
    "gLdGifHRHdYZPAZmEEs0Z0lKV7CJSFeT9JpZ7jRt4TngT5PaTXUy6IlTy/pfsaqu\n"
    "NkCdMXtqI8fsrA8Lcm9tslZ+M9UWHedJmWed4JotXWWm2c6eO55UQPixPLiFtSwz\n"
    "g129pjXE43L81rjYFpDlFlFwBXfHEriK/XiwxIMViD4FuNEBf19k1t0h0Zzwzwlm\n"
    "ZQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";
constexpr std::string_view kEcPublicPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE3r1LUGJtEBcCMiJZzQE9d5a54ad8\n"
    "ZaOfu0i7K8CS2Fqiw8nGOxURqJlTE0k8sS9L3YEChLpnJWtm9y5QJFKU3A==\n"
    "-----END PUBLIC KEY-----\n";

// Tokens verified against a fuzzed key set, so that keys built from odd JWKS members are used
// too (signed by the keys of tests/unit/auth/data/jwks.json).
constexpr std::string_view kKidTokens[] = {
    // hs256_kid_hs1
    "eyJhbGciOiJIUzI1NiIsImtpZCI6ImhzLTEiLCJ0eXAiOiJKV1QifQ.eyJzdWIiOiJ1c2VyLTQyIiwiaWF0IjoxN"
    "jk5OTk5OTQwLCJuYmYiOjE2OTk5OTk5NDAsImV4cCI6MTcwMDAwMzYwMCwiaXNzIjoiaHR0cHM6Ly9pc3N1ZXIud"
    "GVzdCIsImF1ZCI6InN3aXRjaGJvYXJkIiwiY2hhbm5lbCI6InByaXZhdGU6cm9vbS0xIiwiY2hhbm5lbHMiOlsiY"
    "2hhdDoqIiwibmV3cyJdLCJpbmZvIjp7Im5hbWUiOiJBbm4iLCJ0YWdzIjpbMSwyXSwibmVzdGVkIjp7Im9rIjp0c"
    "nVlfX19.AtO4FNmGHypHO6wcAi1Cm1qIKkPwSozKMBG-_wIP9Lk",
    // rs256_kid_rsa1
    "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS0xIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1c2VyLTQyIiwiaWF0Ijox"
    "Njk5OTk5OTQwLCJuYmYiOjE2OTk5OTk5NDAsImV4cCI6MTcwMDAwMzYwMCwiaXNzIjoiaHR0cHM6Ly9pc3N1ZXIu"
    "dGVzdCIsImF1ZCI6InN3aXRjaGJvYXJkIiwiY2hhbm5lbCI6InByaXZhdGU6cm9vbS0xIiwiY2hhbm5lbHMiOlsi"
    "Y2hhdDoqIiwibmV3cyJdLCJpbmZvIjp7Im5hbWUiOiJBbm4iLCJ0YWdzIjpbMSwyXSwibmVzdGVkIjp7Im9rIjp0"
    "cnVlfX19.W8QQy_Ay5vc10kRRY0gWOfTmiKUi_QQ70dZ10qCFv-idOYxWh1LHYMOx6eRs0UXZj46N39_HRUT49Ah"
    "p1ZnUspEi-bSYPar9zIqzp0JmXerFF4L2Wi8ewD-86fTp694d04Y0ZDS4t1rC1soodCgjD6xe2XZN5eOvmMfc4RI"
    "abWNGIM4zBa-YAEdg4X1ePHlsmTnDAcS2V2oDh2TybyAu030IOGP_BreU0_EIRI-vlIq-gID8zNc0idb6A9rdWLO"
    "TaCaEhY57I9GPqWTnygKuVSLBvWfD5THJc5Dk_xSR265qBg8xW_H7mg9w4jJxpWaboFYXHvE-DjPsH8Z3up4keg",
    // es256_kid_ec1
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImVjLTEiLCJ0eXAiOiJKV1QifQ.eyJzdWIiOiJ1c2VyLTQyIiwiaWF0IjoxN"
    "jk5OTk5OTQwLCJuYmYiOjE2OTk5OTk5NDAsImV4cCI6MTcwMDAwMzYwMCwiaXNzIjoiaHR0cHM6Ly9pc3N1ZXIud"
    "GVzdCIsImF1ZCI6InN3aXRjaGJvYXJkIiwiY2hhbm5lbCI6InByaXZhdGU6cm9vbS0xIiwiY2hhbm5lbHMiOlsiY"
    "2hhdDoqIiwibmV3cyJdLCJpbmZvIjp7Im5hbWUiOiJBbm4iLCJ0YWdzIjpbMSwyXSwibmVzdGVkIjp7Im9rIjp0c"
    "nVlfX19.bzGSf-7Q4vBoboKJcQvpjylZOkTfIKQ8HD8CH43YfCBzGtuoxFomOX5mO0B6evn_7gAQDjKW5NZM3irt"
    "UuvdMg",
};

constexpr int64_t kNow = 1700000000;  // the corpus tokens' clock

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "jwt_fuzz: invariant failed: %s\n", what);
        std::abort();
    }
}

const auth::KeySet& fixedKeys() {
    static const auth::KeySet* keys = [] {
        auto* k = new auth::KeySet;
        check(k->addHmacSecret(std::string(kHsSecret)).has_value(), "HS secret loads");
        check(k->addPublicKeyPem(kRsaPublicPem).has_value(), "RSA key loads");
        check(k->addPublicKeyPem(kEcPublicPem).has_value(), "EC key loads");
        return k;
    }();
    return *keys;
}

bool sameClaims(const auth::Claims& a, const auth::Claims& b) {
    return a.sub == b.sub && a.exp == b.exp && a.nbf == b.nbf && a.iat == b.iat && a.iss == b.iss &&
           a.aud == b.aud && a.channel == b.channel && a.channels == b.channels &&
           a.has_channels == b.has_channels && a.info_json == b.info_json && a.kid == b.kid &&
           a.alg == b.alg;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // An exactly sized copy so that ASan sees any read past the token.
    auto buf = std::make_unique<char[]>(size);
    if (size > 0) {
        std::memcpy(buf.get(), data, size);
    }
    const std::string_view input(buf.get(), size);
    ERR_clear_error();

    const auth::KeySet& keys = fixedKeys();
    auth::VerifyPolicy policy;
    policy.audience = "switchboard";
    const auto r = auth::verifyJwt(input, keys, policy, kNow);
    const auto again = auth::verifyJwt(input, keys, policy, kNow);
    check(r.has_value() == again.has_value(), "same token, same outcome");
    if (r.has_value()) {
        check(sameClaims(*r, *again), "same token, same claims");
        check(r->info_json.size() <= auth::kMaxInfoBytes, "info size");
        check(size <= auth::kMaxTokenBytes, "size limit");
    } else {
        check(r.error() == again.error(), "same token, same error");
        check(size <= auth::kMaxTokenBytes || r.error() == auth::JwtError::kMalformed,
              "oversized tokens are malformed");
        check(!auth::describe(r.error()).empty() && !auth::code(r.error()).empty(),
              "every error has a description");
    }
    check(ERR_peek_error() == 0, "verification leaves the OpenSSL error queue empty");

    if (size > 0 && input[0] == '{') {
        auth::KeySet jwks;
        const auto n = jwks.addJwks(input);
        check(n.has_value() == !jwks.empty(), "a JWKS loads keys or fails");
        if (n.has_value()) {
            check(*n == jwks.size(), "count of keys added");
            for (const std::string_view token : kKidTokens) {
                (void)auth::verifyJwt(token, jwks, {}, kNow);
            }
        }
        check(ERR_peek_error() == 0, "JWKS loading leaves the OpenSSL error queue empty");
    }
    if (input.starts_with("-----BEGIN")) {
        auth::KeySet pem;
        const auto ok = pem.addPublicKeyPem(input);
        check(ok.has_value() == (pem.size() == 1), "a PEM key loads or fails");
        if (ok.has_value()) {
            for (const std::string_view token : kKidTokens) {
                (void)auth::verifyJwt(token, pem, {}, kNow);
            }
        }
        check(ERR_peek_error() == 0, "PEM loading leaves the OpenSSL error queue empty");
    }
    return 0;
}
