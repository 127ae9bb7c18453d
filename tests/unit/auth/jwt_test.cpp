// Tests of JWT verification (auth/jwt.h) against tokens made by an independent implementation
// (PyJWT, see data/make_vectors.py) with test-only keys from data/. The vectors carry fixed
// dates around kNow, which the tests pass as the clock, so they never go stale.
#include "auth/jwt.h"

#include <gtest/gtest.h>
#include <openssl/err.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace sb::auth {
namespace {

constexpr int64_t kNow = 1700000000;  // the vectors' clock (make_vectors.py NOW)

std::string dataFile(const std::string& name) {
    std::ifstream in(std::string(SB_SOURCE_DIR) + "/tests/unit/auth/data/" + name,
                     std::ios::binary);
    EXPECT_TRUE(in) << "missing test data file " << name;
    return {std::istreambuf_iterator<char>(in), {}};
}

const std::map<std::string, std::string>& vectors() {
    static const auto* map = [] {
        auto* m = new std::map<std::string, std::string>;
        std::istringstream in(dataFile("vectors.txt"));
        std::string line;
        while (std::getline(in, line)) {
            if (line.empty() || line[0] == '#') {
                continue;
            }
            const size_t space = line.find(' ');
            (*m)[line.substr(0, space)] = line.substr(space + 1);
        }
        return m;
    }();
    return *map;
}

std::string tok(const std::string& name) {
    const auto it = vectors().find(name);
    if (it == vectors().end()) {
        ADD_FAILURE() << "no vector named " << name;
        return {};
    }
    return it->second;
}

// The test-only keys of data/ (never used for anything else).
std::string hsSecret() {
    return dataFile("hs_secret.txt");
}
std::string hsOtherSecret() {
    return dataFile("hs_other_secret.txt");
}

KeySet standardKeys() {
    KeySet keys;
    EXPECT_TRUE(keys.addHmacSecret(hsSecret()).has_value());
    EXPECT_TRUE(keys.addPublicKeyPem(dataFile("rsa_public.pem")).has_value());
    EXPECT_TRUE(keys.addPublicKeyPem(dataFile("ec_public.pem")).has_value());
    return keys;
}

// A base64url encoder for building JWKs and tokens in tests (the verifier only decodes).
std::string b64url(std::string_view in) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (const char c : in) {
        acc = (acc << 8) | static_cast<unsigned char>(c);
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(kAlphabet[(acc >> bits) & 63]);
        }
    }
    if (bits > 0) {
        out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
    }
    return out;
}

base::Expected<Claims, JwtError> verify(const std::string& token, const KeySet& keys,
                                        const VerifyPolicy& policy = {}, int64_t now = kNow) {
    return verifyJwt(token, keys, policy, now);
}

// The error of a refused token; fails the test if it was accepted.
JwtError errorOf(const base::Expected<Claims, JwtError>& r) {
    if (r.has_value()) {
        ADD_FAILURE() << "token was accepted";
        return JwtError::kMalformed;
    }
    return r.error();
}

#define EXPECT_JWT_ERROR(expr, err) EXPECT_EQ(code(errorOf(expr)), code(err))

void expectFullClaims(const Claims& c, Alg alg) {
    EXPECT_EQ(c.sub, "user-42");
    EXPECT_EQ(c.iat, kNow - 60);
    EXPECT_EQ(c.nbf, kNow - 60);
    EXPECT_EQ(c.exp, kNow + 3600);
    EXPECT_EQ(c.iss, "https://issuer.test");
    EXPECT_EQ(c.aud, std::vector<std::string>{"switchboard"});
    EXPECT_EQ(c.channel, "private:room-1");
    EXPECT_TRUE(c.has_channels);
    EXPECT_EQ(c.channels, (std::vector<std::string>{"chat:*", "news"}));
    EXPECT_EQ(c.info_json, R"({"name":"Ann","tags":[1,2],"nested":{"ok":true}})");
    EXPECT_EQ(c.alg, alg);
}

// ---- Valid tokens ---------------------------------------------------------------------------

TEST(Jwt, ValidTokenOfEachAlgorithm) {
    const KeySet keys = standardKeys();
    VerifyPolicy policy;
    policy.audience = "switchboard";
    policy.issuer = "https://issuer.test";
    policy.require_exp = true;
    for (const auto& [name, alg] :
         {std::pair{"hs256_valid", Alg::kHS256}, std::pair{"rs256_valid", Alg::kRS256},
          std::pair{"es256_valid", Alg::kES256}}) {
        SCOPED_TRACE(name);
        const auto r = verify(tok(name), keys, policy);
        ASSERT_TRUE(r.has_value()) << code(r.error());
        expectFullClaims(*r, alg);
        EXPECT_EQ(r->kid, "");
    }
}

TEST(Jwt, ClaimsExtraction) {
    const KeySet keys = standardKeys();
    auto r = verify(tok("info_spaced"), keys);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->sub, "u");
    EXPECT_EQ(r->info_json, R"({"a":[1,2,3],"s":"x y"})");
    EXPECT_FALSE(r->has_channels);
    EXPECT_TRUE(r->channels.empty());
    EXPECT_EQ(r->exp, 0);
    EXPECT_TRUE(r->aud.empty());

    r = verify(tok("info_string"), keys);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->info_json, "\"hello\"");
    EXPECT_EQ(r->sub, "");

    r = verify(tok("escaped_keys"), keys);  // "s\u0075b" is "sub"; "Jos\u00e9" is UTF-8
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->sub, "Jos\xc3\xa9");
    EXPECT_TRUE(r->has_channels);
    EXPECT_TRUE(r->channels.empty());
    EXPECT_EQ(r->info_json, "");

    r = verify(tok("exp_float"), keys);  // 1700003600.75 rounds down
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->exp, 1700003600);
}

// ---- Dates ----------------------------------------------------------------------------------

TEST(Jwt, ExpiryWithLeewayOnBothSides) {
    const KeySet keys = standardKeys();
    VerifyPolicy policy;  // leeway 30 s
    EXPECT_TRUE(verify(tok("exp_only"), keys, policy, kNow).has_value());
    EXPECT_TRUE(verify(tok("exp_only"), keys, policy, kNow + 30).has_value());
    EXPECT_JWT_ERROR(verify(tok("exp_only"), keys, policy, kNow + 31), JwtError::kExpired);
    policy.leeway_s = 0;
    EXPECT_TRUE(verify(tok("exp_only"), keys, policy, kNow).has_value());
    EXPECT_JWT_ERROR(verify(tok("exp_only"), keys, policy, kNow + 1), JwtError::kExpired);
    // The full token expires at kNow + 3600.
    EXPECT_TRUE(verify(tok("rs256_valid"), keys, {}, kNow + 3630).has_value());
    EXPECT_JWT_ERROR(verify(tok("rs256_valid"), keys, {}, kNow + 3631), JwtError::kExpired);
}

TEST(Jwt, NotBeforeWithLeewayOnBothSides) {
    const KeySet keys = standardKeys();
    VerifyPolicy policy;
    EXPECT_TRUE(verify(tok("nbf_only"), keys, policy, kNow).has_value());
    EXPECT_TRUE(verify(tok("nbf_only"), keys, policy, kNow - 30).has_value());
    EXPECT_JWT_ERROR(verify(tok("nbf_only"), keys, policy, kNow - 31), JwtError::kNotYetValid);
    policy.leeway_s = 0;
    EXPECT_TRUE(verify(tok("nbf_only"), keys, policy, kNow).has_value());
    EXPECT_JWT_ERROR(verify(tok("nbf_only"), keys, policy, kNow - 1), JwtError::kNotYetValid);
}

TEST(Jwt, IssuedInTheFuture) {
    const KeySet keys = standardKeys();
    VerifyPolicy policy;
    EXPECT_TRUE(verify(tok("iat_only"), keys, policy, kNow - 30).has_value());
    EXPECT_JWT_ERROR(verify(tok("iat_only"), keys, policy, kNow - 31), JwtError::kIssuedInFuture);
    policy.leeway_s = 0;
    EXPECT_TRUE(verify(tok("iat_only"), keys, policy, kNow).has_value());
    EXPECT_JWT_ERROR(verify(tok("iat_only"), keys, policy, kNow - 1), JwtError::kIssuedInFuture);
}

TEST(Jwt, RequireExp) {
    const KeySet keys = standardKeys();
    VerifyPolicy policy;
    EXPECT_TRUE(verify(tok("no_exp"), keys, policy).has_value());
    policy.require_exp = true;
    EXPECT_JWT_ERROR(verify(tok("no_exp"), keys, policy), JwtError::kMissingExp);
    EXPECT_TRUE(verify(tok("exp_only"), keys, policy).has_value());
}

TEST(Jwt, ExtremeClockValuesDoNotOverflow) {
    const KeySet keys = standardKeys();
    VerifyPolicy policy;
    policy.leeway_s = UINT32_MAX;
    EXPECT_TRUE(verify(tok("exp_only"), keys, policy, kNow).has_value());
    EXPECT_JWT_ERROR(verify(tok("exp_only"), keys, policy, INT64_MAX), JwtError::kExpired);
    EXPECT_JWT_ERROR(verify(tok("nbf_only"), keys, policy, INT64_MIN), JwtError::kNotYetValid);
    EXPECT_TRUE(verify(tok("iat_only"), keys, policy, INT64_MAX).has_value());
}

// ---- Audience and issuer --------------------------------------------------------------------

TEST(Jwt, Audience) {
    const KeySet keys = standardKeys();
    VerifyPolicy policy;
    policy.audience = "switchboard";
    EXPECT_JWT_ERROR(verify(tok("aud_other"), keys, policy), JwtError::kBadAudience);
    EXPECT_JWT_ERROR(verify(tok("aud_array_other"), keys, policy), JwtError::kBadAudience);
    EXPECT_JWT_ERROR(verify(tok("no_exp"), keys, policy), JwtError::kBadAudience);  // no aud
    const auto r = verify(tok("aud_array"), keys, policy);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->aud, (std::vector<std::string>{"web", "switchboard"}));
    // Without an audience in the policy, aud is not checked.
    EXPECT_TRUE(verify(tok("aud_other"), keys, {}).has_value());
}

TEST(Jwt, Issuer) {
    const KeySet keys = standardKeys();
    VerifyPolicy policy;
    policy.issuer = "https://other.test";
    EXPECT_JWT_ERROR(verify(tok("hs256_valid"), keys, policy), JwtError::kBadIssuer);
    EXPECT_JWT_ERROR(verify(tok("no_exp"), keys, policy), JwtError::kBadIssuer);  // no iss
    EXPECT_TRUE(verify(tok("aud_other"), keys, policy).has_value());
    EXPECT_TRUE(verify(tok("hs256_valid"), keys, {}).has_value());
}

// ---- Keys -----------------------------------------------------------------------------------

TEST(Jwt, SignedByAnotherKey) {
    const KeySet keys = standardKeys();
    EXPECT_JWT_ERROR(verify(tok("hs256_other_key"), keys), JwtError::kBadSignature);
    EXPECT_JWT_ERROR(verify(tok("rs256_other_key"), keys), JwtError::kBadSignature);
    EXPECT_JWT_ERROR(verify(tok("es256_other_key"), keys), JwtError::kBadSignature);
    EXPECT_JWT_ERROR(verify(tok("es256_der_sig"), keys), JwtError::kBadSignature);
}

TEST(Jwt, NoKeyForTheAlgorithm) {
    KeySet hs_only;
    ASSERT_TRUE(hs_only.addHmacSecret(hsSecret()).has_value());
    EXPECT_JWT_ERROR(verify(tok("rs256_valid"), hs_only), JwtError::kNoKey);
    EXPECT_JWT_ERROR(verify(tok("es256_valid"), hs_only), JwtError::kNoKey);
    KeySet rsa_only;
    ASSERT_TRUE(rsa_only.addPublicKeyPem(dataFile("rsa_public.pem")).has_value());
    EXPECT_JWT_ERROR(verify(tok("es256_valid"), rsa_only), JwtError::kNoKey);
    EXPECT_JWT_ERROR(verify(tok("hs256_valid"), rsa_only), JwtError::kNoKey);
    EXPECT_JWT_ERROR(verify(tok("hs256_valid"), KeySet()), JwtError::kNoKey);
}

TEST(Jwt, AlgorithmConfusionIsRefused) {
    // An HS256 MAC keyed with the RSA public key's PEM text: the RSA key is never an HMAC key.
    KeySet rsa_only;
    ASSERT_TRUE(rsa_only.addPublicKeyPem(dataFile("rsa_public.pem")).has_value());
    KeySet cert_only;
    ASSERT_TRUE(cert_only.addPublicKeyPem(dataFile("rsa_cert.pem")).has_value());
    const KeySet all = standardKeys();
    for (const char* name : {"hs256_with_rsa_pem", "hs256_with_rsa_pem_trimmed"}) {
        SCOPED_TRACE(name);
        EXPECT_JWT_ERROR(verify(tok(name), rsa_only), JwtError::kNoKey);
        EXPECT_JWT_ERROR(verify(tok(name), cert_only), JwtError::kNoKey);
        EXPECT_JWT_ERROR(verify(tok(name), all), JwtError::kBadSignature);
    }
}

TEST(Jwt, UnsupportedAlgorithms) {
    const KeySet keys = standardKeys();
    for (const char* name : {"alg_none", "alg_none_with_sig", "alg_none_caps", "alg_missing",
                             "alg_number", "alg_hs512", "alg_rs384", "crit_header"}) {
        SCOPED_TRACE(name);
        EXPECT_JWT_ERROR(verify(tok(name), keys), JwtError::kUnsupportedAlg);
        EXPECT_JWT_ERROR(verify(tok(name), KeySet()), JwtError::kUnsupportedAlg);
    }
    // "none" with the signature part left out entirely is not even three parts.
    std::string two_parts = tok("alg_none");
    ASSERT_EQ(two_parts.back(), '.');
    two_parts.pop_back();
    EXPECT_JWT_ERROR(verify(two_parts, keys), JwtError::kMalformed);
}

TEST(Jwt, KidSelectionAndRotation) {
    KeySet keys;
    ASSERT_TRUE(keys.addHmacSecret(hsSecret(), "k1").has_value());
    ASSERT_TRUE(keys.addHmacSecret(hsOtherSecret(), "k2").has_value());
    EXPECT_EQ(keys.size(), 2u);
    // No kid: every HS256 key is tried.
    EXPECT_TRUE(verify(tok("hs256_other_key"), keys).has_value());
    EXPECT_TRUE(verify(tok("hs256_valid"), keys).has_value());
    // A kid: only the key with that kid.
    EXPECT_JWT_ERROR(verify(tok("hs256_other_kid_k1"), keys), JwtError::kBadSignature);
    const auto r = verify(tok("hs256_other_kid_k2"), keys);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->kid, "k2");
    // A kid no key has, and no key without a kid to fall back to.
    EXPECT_JWT_ERROR(verify(tok("hs256_kid_unknown"), keys), JwtError::kNoKey);
}

TEST(Jwt, UnknownKidFallsBackToKeysWithoutKid) {
    KeySet keys;
    ASSERT_TRUE(keys.addHmacSecret(hsOtherSecret(), "k2").has_value());
    ASSERT_TRUE(keys.addHmacSecret(hsSecret()).has_value());
    const auto r = verify(tok("hs256_kid_unknown"), keys);  // kid "nope", signed by hs_secret
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->kid, "nope");
    // kid "k1" is unknown here too, so only the unnamed key is tried, and it did not sign.
    EXPECT_JWT_ERROR(verify(tok("hs256_other_kid_k1"), keys), JwtError::kBadSignature);
    // A kid that names a key is never checked against the unnamed keys (the unnamed key here
    // did sign the token).
    KeySet named;
    ASSERT_TRUE(named.addHmacSecret(hsSecret(), "k1").has_value());
    ASSERT_TRUE(named.addHmacSecret(hsOtherSecret()).has_value());
    EXPECT_JWT_ERROR(verify(tok("hs256_other_kid_k1"), named), JwtError::kBadSignature);
}

TEST(Jwt, AtMostEightKeysAreTriedWithoutKid) {
    KeySet seven;
    KeySet eight;
    for (int i = 0; i < 8; ++i) {
        const std::string decoy(32, static_cast<char>('a' + i));
        if (i < 7) {
            ASSERT_TRUE(seven.addHmacSecret(decoy).has_value());
        }
        ASSERT_TRUE(eight.addHmacSecret(decoy).has_value());
    }
    ASSERT_TRUE(seven.addHmacSecret(hsSecret()).has_value());
    ASSERT_TRUE(eight.addHmacSecret(hsSecret()).has_value());
    EXPECT_TRUE(verify(tok("hs256_valid"), seven).has_value());
    EXPECT_JWT_ERROR(verify(tok("hs256_valid"), eight), JwtError::kBadSignature);
}

TEST(KeySet, HmacSecretLength) {
    KeySet keys;
    const auto r = keys.addHmacSecret(std::string(31, 'x'));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message, "HS256 secret shorter than 32 bytes");
    EXPECT_TRUE(keys.empty());
    EXPECT_TRUE(keys.addHmacSecret(std::string(32, 'x')).has_value());
    EXPECT_EQ(keys.size(), 1u);
}

TEST(KeySet, PemKeys) {
    KeySet keys;
    EXPECT_TRUE(keys.addPublicKeyPem(dataFile("rsa_public.pem")).has_value());
    EXPECT_TRUE(keys.addPublicKeyPem(dataFile("ec_public.pem")).has_value());
    EXPECT_EQ(keys.size(), 2u);

    KeySet from_cert;
    ASSERT_TRUE(from_cert.addPublicKeyPem(dataFile("rsa_cert.pem"), "cert").has_value());
    EXPECT_TRUE(verify(tok("rs256_valid"), from_cert).has_value());

    const auto error = [](std::string_view pem) {
        KeySet k;
        auto r = k.addPublicKeyPem(pem);
        EXPECT_TRUE(k.empty());
        return r.has_value() ? std::string("accepted") : r.error().message;
    };
    EXPECT_NE(error(dataFile("rsa1024_public.pem")).find("1024 bits"), std::string::npos);
    EXPECT_NE(error(dataFile("ec_p384_public.pem")).find("P-256"), std::string::npos);
    EXPECT_NE(error(dataFile("ed25519_public.pem")).find("unsupported key type"),
              std::string::npos);
    EXPECT_NE(error(dataFile("rsa_private.pem")).find("private key"), std::string::npos);
    EXPECT_NE(error("").find("not a PEM key"), std::string::npos);
    EXPECT_NE(error("hello").find("not a PEM key"), std::string::npos);
    EXPECT_NE(error("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                  .find("cannot parse the public key"),
              std::string::npos);
    EXPECT_NE(error("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                  .find("cannot parse the certificate"),
              std::string::npos);
    EXPECT_NE(error("-----BEGIN RSA PUBLIC KEY-----\n").find("unsupported PEM block"),
              std::string::npos);
}

TEST(KeySet, Jwks) {
    KeySet keys;
    const auto n = keys.addJwks(dataFile("jwks.json"));
    ASSERT_TRUE(n.has_value()) << n.error().message;
    // RSA, EC and oct; the enc, RS512, P-384 and Ed25519 keys are skipped.
    EXPECT_EQ(*n, 3u);
    EXPECT_EQ(keys.size(), 3u);
    for (const auto& [name, alg, kid] : {std::tuple{"rs256_kid_rsa1", Alg::kRS256, "rsa-1"},
                                         std::tuple{"es256_kid_ec1", Alg::kES256, "ec-1"},
                                         std::tuple{"hs256_kid_hs1", Alg::kHS256, "hs-1"}}) {
        SCOPED_TRACE(name);
        const auto r = verify(tok(name), keys);
        ASSERT_TRUE(r.has_value()) << code(r.error());
        EXPECT_EQ(r->alg, alg);
        EXPECT_EQ(r->kid, kid);
        expectFullClaims(*r, alg);
    }
    // Tokens without a kid are tried against the JWKS keys of their algorithm too.
    EXPECT_TRUE(verify(tok("rs256_valid"), keys).has_value());
    EXPECT_TRUE(verify(tok("es256_valid"), keys).has_value());
    EXPECT_TRUE(verify(tok("hs256_other_key"), keys).has_value());
    EXPECT_JWT_ERROR(verify(tok("hs256_valid"), keys), JwtError::kBadSignature);
    EXPECT_JWT_ERROR(verify(tok("rs256_other_key"), keys), JwtError::kBadSignature);
}

TEST(KeySet, JwksErrorsLeaveTheSetUnchanged) {
    KeySet keys;
    ASSERT_TRUE(keys.addHmacSecret(hsSecret()).has_value());
    const std::string secret = b64url(std::string(32, 's'));
    const std::string good =
        R"({"kty":"oct","k":")" + secret + R"("})";  // a good key before the broken one
    const auto error = [&](const std::string& json) {
        auto r = keys.addJwks(json);
        EXPECT_EQ(keys.size(), 1u) << json;
        return r.has_value() ? std::string("accepted") : r.error().message;
    };
    EXPECT_NE(error("").find("invalid JSON"), std::string::npos);
    EXPECT_NE(error("{\"keys\":[").find("invalid JSON"), std::string::npos);
    EXPECT_NE(error("[]").find("no \"keys\" array"), std::string::npos);
    EXPECT_NE(error(R"({"keys":5})").find("no \"keys\" array"), std::string::npos);
    EXPECT_NE(error(R"({"keys":[]})").find("no usable key"), std::string::npos);
    EXPECT_NE(error(R"({"keys":[{"kty":"OKP","crv":"Ed25519","x":"AA"}]})").find("no usable key"),
              std::string::npos);
    EXPECT_NE(error(R"({"keys":[{"kty":"oct","use":"enc","k":")" + secret + R"("}]})")
                  .find("no usable key"),
              std::string::npos);
    EXPECT_NE(error(R"({"keys":[{"kty":"oct","key_ops":["sign"],"k":")" + secret + R"("}]})")
                  .find("no usable key"),
              std::string::npos);
    EXPECT_NE(error(R"({"keys":[{"kty":"RSA","alg":"HS256","n":"AQAB","e":"AQAB"}]})")
                  .find("no usable key"),
              std::string::npos);
    EXPECT_NE(error("{\"keys\":[" + good + ",5]}").find("keys[1]: not an object"),
              std::string::npos);
    EXPECT_NE(error("{\"keys\":[" + good + R"(,{"kid":"r","kty":"RSA","e":"AQAB"}]})")
                  .find(R"(keys[1] (kid "r"): "n" is missing)"),
              std::string::npos);
    EXPECT_NE(error(R"({"keys":[{"kty":"oct","k":")" + b64url(std::string(31, 's')) + R"("}]})")
                  .find("shorter than 32 bytes"),
              std::string::npos);
    EXPECT_NE(error(R"({"keys":[{"kty":"oct","k":"AA=="}]})").find("not base64url"),
              std::string::npos);
    // An RSA modulus of 1024 bits, and one of 2048 bits with an exponent of 1.
    const std::string n1024 = b64url(std::string(128, '\xff'));
    const std::string n2048 = b64url(std::string(256, '\xff'));
    EXPECT_NE(
        error(R"({"keys":[{"kty":"RSA","n":")" + n1024 + R"(","e":"AQAB"}]})").find("1024 bits"),
        std::string::npos);
    EXPECT_NE(error(R"({"keys":[{"kty":"RSA","n":")" + n2048 + R"(","e":"AQ"}]})")
                  .find("invalid RSA public key"),
              std::string::npos);
    // A P-256 point that is not on the curve, and coordinates of the wrong size.
    const std::string x = b64url(std::string(32, '\x01'));
    const std::string y = b64url(std::string(32, '\x02'));
    EXPECT_NE(
        error(R"({"keys":[{"kty":"EC","crv":"P-256","x":")" + x + R"(","y":")" + y + R"("}]})"),
        "accepted");
    EXPECT_NE(error(R"({"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}]})").find("32 bytes"),
              std::string::npos);
    EXPECT_EQ(*keys.addJwks("{\"keys\":[" + good + "]}"), 1u);
    EXPECT_EQ(keys.size(), 2u);
}

TEST(KeySet, MoveKeepsTheKeys) {
    KeySet keys = standardKeys();
    KeySet moved(std::move(keys));
    EXPECT_EQ(moved.size(), 3u);
    EXPECT_TRUE(verify(tok("es256_valid"), moved).has_value());
    KeySet assigned;
    assigned = std::move(moved);
    EXPECT_TRUE(verify(tok("rs256_valid"), assigned).has_value());
}

// ---- Malformed tokens -----------------------------------------------------------------------

TEST(Jwt, MalformedStructure) {
    const KeySet keys = standardKeys();
    const std::string valid = tok("hs256_valid");
    const size_t dot1 = valid.find('.');
    const size_t dot2 = valid.find('.', dot1 + 1);
    std::vector<std::string> bad = {
        "",
        ".",
        "..",
        "...",
        "a.b",
        valid.substr(0, dot2),                              // two parts
        valid + ".AAAA",                                    // four parts
        valid + ".",                                        // four parts, the last empty
        "." + valid,                                        // four parts, the first empty
        valid.substr(0, dot1) + "=" + valid.substr(dot1),   // padding in the header
        valid + "=",                                        // padding in the signature
        valid.substr(0, dot2) + "==" + valid.substr(dot2),  // padding in the payload
        valid + " ",
        " " + valid,
        valid.substr(0, dot1 + 5) + "+" + valid.substr(dot1 + 6),  // base64, not base64url
        valid.substr(0, dot1 + 5) + "/" + valid.substr(dot1 + 6),
        valid.substr(0, dot1 + 5) + std::string(1, '\0') + valid.substr(dot1 + 6),
        valid.substr(0, dot1 + 5) + "\xc3\xa9" + valid.substr(dot1 + 7),
        valid.substr(0, dot2 + 1) + "A",  // signature of 4n+1 characters
        std::string(9000, 'a'),
        valid.substr(0, dot1) + "." + std::string(9000, 'a') + "." + valid.substr(dot2 + 1),
    };
    for (const char* name :
         {"header_not_json", "header_array", "header_dup_alg", "header_kid_number", "payload_array",
          "payload_not_json", "payload_dup_exp", "payload_trailing", "depth_17", "depth_100",
          "too_big"}) {
        bad.push_back(tok(name));
    }
    for (size_t i = 0; i < bad.size(); ++i) {
        SCOPED_TRACE(testing::Message() << "case " << i << ": " << bad[i].substr(0, 80));
        EXPECT_JWT_ERROR(verify(bad[i], keys), JwtError::kMalformed);
    }
}

TEST(Jwt, SizeAndDepthLimits) {
    const KeySet keys = standardKeys();
    const std::string big = tok("big_ok");
    ASSERT_LE(big.size(), kMaxTokenBytes);
    EXPECT_TRUE(verify(big, keys).has_value());
    EXPECT_GT(tok("too_big").size(), kMaxTokenBytes);
    EXPECT_TRUE(verify(tok("depth_16"), keys).has_value());
    EXPECT_JWT_ERROR(verify(tok("depth_17"), keys), JwtError::kMalformed);
    // One byte over the limit is refused before anything else is looked at.
    EXPECT_JWT_ERROR(verify(std::string(kMaxTokenBytes + 1, '.'), keys), JwtError::kMalformed);
}

TEST(Jwt, ClaimsOfTheWrongType) {
    const KeySet keys = standardKeys();
    for (const char* name : {"exp_string", "exp_null", "exp_huge_double", "exp_u64", "sub_number",
                             "iss_array", "aud_number", "aud_array_mixed", "channel_object",
                             "channels_string", "channels_mixed", "info_too_big"}) {
        SCOPED_TRACE(name);
        EXPECT_JWT_ERROR(verify(tok(name), keys), JwtError::kBadClaims);
    }
    // Numbers the JSON parser itself refuses (past double's range, or integers it cannot hold).
    for (const char* name : {"exp_bigint", "exp_1e400"}) {
        SCOPED_TRACE(name);
        const JwtError e = errorOf(verify(tok(name), keys));
        EXPECT_TRUE(e == JwtError::kMalformed || e == JwtError::kBadClaims) << code(e);
    }
}

// Every single-byte change of a valid token must fail: the signature covers the first two
// parts exactly, and base64url decoding is canonical, so no other spelling of the signature
// decodes to the same bytes.
TEST(Jwt, NoSingleByteChangeVerifies) {
    const KeySet keys = standardKeys();
    for (const char* name : {"hs256_valid", "rs256_valid", "es256_valid"}) {
        SCOPED_TRACE(name);
        const std::string valid = tok(name);
        ASSERT_TRUE(verify(valid, keys).has_value());
        size_t tried = 0;
        for (size_t i = 0; i < valid.size(); ++i) {
            for (const char repl :
                 {static_cast<char>(valid[i] ^ 1), static_cast<char>(valid[i] ^ 2), 'A', 'B', 'Q',
                  'g', 'w', '_', '.'}) {
                if (repl == valid[i]) {
                    continue;
                }
                std::string t = valid;
                t[i] = repl;
                ++tried;
                EXPECT_FALSE(verify(t, keys).has_value()) << "byte " << i << " -> " << repl;
            }
        }
        EXPECT_GT(tried, valid.size() * 7);
        // Dropping any one byte fails too.
        for (size_t i = 0; i < valid.size(); ++i) {
            std::string t = valid;
            t.erase(i, 1);
            EXPECT_FALSE(verify(t, keys).has_value()) << "without byte " << i;
        }
    }
}

// ---- Environment ----------------------------------------------------------------------------

TEST(Jwt, OpensslErrorQueueIsLeftAsFound) {
    const KeySet keys = standardKeys();
    ERR_clear_error();
    for (const char* name : {"rs256_other_key", "es256_other_key", "es256_der_sig"}) {
        EXPECT_FALSE(verify(tok(name), keys).has_value());
        EXPECT_EQ(ERR_peek_error(), 0u) << name;
    }
    // An entry that was already there stays.
    ERR_raise(ERR_LIB_USER, 42);
    const unsigned long before = ERR_peek_error();
    ASSERT_NE(before, 0u);
    EXPECT_FALSE(verify(tok("rs256_other_key"), keys).has_value());
    EXPECT_EQ(ERR_peek_last_error(), before);
    ERR_clear_error();
    KeySet k;
    EXPECT_FALSE(k.addPublicKeyPem(dataFile("ec_p384_public.pem")).has_value());
    EXPECT_FALSE(k.addPublicKeyPem("-----BEGIN PUBLIC KEY-----\nAA\n-----END PUBLIC KEY-----\n")
                     .has_value());
    EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(Jwt, ConcurrentVerificationWithOneKeySet) {
    const KeySet keys = standardKeys();
    const std::vector<std::string> tokens = {tok("hs256_valid"), tok("rs256_valid"),
                                             tok("es256_valid"), tok("payload_array")};
    std::atomic<int> ok{0};
    std::atomic<int> refused{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 100; ++i) {
                const auto r = verifyJwt(tokens[(t + i) % tokens.size()], keys, {}, kNow);
                (r.has_value() ? ok : refused).fetch_add(1);
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    EXPECT_EQ(ok.load(), 300);
    EXPECT_EQ(refused.load(), 100);
}

TEST(JwtError, CodesAndDescriptions) {
    EXPECT_EQ(code(JwtError::kExpired), "token_expired");
    EXPECT_EQ(code(JwtError::kBadSignature), "bad_signature");
    EXPECT_EQ(code(JwtError::kUnsupportedAlg), "unsupported_alg");
    EXPECT_EQ(describe(JwtError::kExpired), "token expired");
    std::vector<std::string_view> codes;
    for (int i = 0; i <= static_cast<int>(JwtError::kBadClaims); ++i) {
        const auto e = static_cast<JwtError>(i);
        EXPECT_FALSE(describe(e).empty());
        const std::string_view c = code(e);
        EXPECT_EQ(c.find_first_not_of("abcdefghijklmnopqrstuvwxyz_"), std::string_view::npos) << c;
        EXPECT_EQ(std::count(codes.begin(), codes.end(), c), 0) << c;
        codes.push_back(c);
    }
}

}  // namespace
}  // namespace sb::auth
