// JWT (JWS compact serialization, RFC 7515/7519) verification for connection and subscription
// tokens: HS256, RS256 and ES256 against a set of configured keys, then the registered claims
// against a policy. Pure: no I/O and no clock; all cryptography is OpenSSL's EVP.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace sb::auth {

// Tokens longer than this are refused before anything is decoded.
inline constexpr size_t kMaxTokenBytes = 8192;
// Deepest JSON nesting accepted in a header or payload (the top-level object is level 1).
inline constexpr size_t kMaxJsonDepth = 16;
// The "info" claim's minified JSON may be at most this long.
inline constexpr size_t kMaxInfoBytes = 1024;
// A token without a kid is tried against at most this many keys of its algorithm.
inline constexpr size_t kMaxKeysTried = 8;

// Why a token was refused.
enum class JwtError : uint8_t {
    kMalformed,       // not three base64url parts, bad base64url, header or payload not a JSON
                      // object, duplicate header/claim names, nesting too deep, or too large
    kUnsupportedAlg,  // alg missing, not a string, "none", or not HS256/RS256/ES256; or a
                      // `crit` header (we understand no extensions)
    kNoKey,           // no configured key for this alg (or for its kid)
    kBadSignature,
    kExpired,         // now > exp + leeway
    kNotYetValid,     // now < nbf - leeway
    kIssuedInFuture,  // iat > now + leeway
    kBadAudience,     // policy.audience set and not in aud (string or array)
    kBadIssuer,       // policy.issuer set and iss differs
    kMissingExp,      // policy.require_exp and no exp
    kBadClaims,       // a claim of the wrong JSON type or out of range (exp not a number, sub not
                      // a string, info over kMaxInfoBytes, ...)
};

// A short English sentence fragment ("token expired"), for error messages to clients and logs.
std::string_view describe(JwtError e);
// A stable snake_case name ("token_expired", "bad_signature", "unsupported_alg"), for metrics
// and machine-readable errors.
std::string_view code(JwtError e);

enum class Alg : uint8_t { kHS256, kRS256, kES256 };

// The claims of a verified token. Numeric dates are seconds since the epoch (a fractional
// NumericDate is rounded down); 0 = absent.
struct Claims {
    std::string sub;  // user id ("" if absent)
    int64_t exp = 0;
    int64_t nbf = 0;
    int64_t iat = 0;
    std::string iss;
    std::vector<std::string> aud;  // a string aud becomes one element
    std::string channel;           // "channel" claim (subscribe tokens for private channels)
    // "channels" claim: channel patterns this user may use (see permissions.h). Absent: empty
    // and has_channels = false; an empty array: empty and has_channels = true.
    std::vector<std::string> channels;
    bool has_channels = false;
    // "info" claim (any JSON value, null included) re-serialized minified, "" if absent.
    std::string info_json;
    std::string kid;  // header kid, "" if none
    Alg alg = Alg::kHS256;
};

struct VerifyPolicy {
    std::string audience;    // required in aud when non-empty
    std::string issuer;      // must equal iss when non-empty
    uint32_t leeway_s = 30;  // clock skew allowed on exp/nbf/iat
    bool require_exp = false;
};

class KeySet;
namespace detail {
struct Key;  // one loaded key; defined in jwt.cpp
}

// Verifies a compact JWS token and returns its claims. The header is parsed first (alg, kid,
// crit), then the signature is checked, and only then is the payload parsed: nothing in an
// unverified payload is looked at. Claim checks, in order: types (kBadClaims), require_exp,
// exp, nbf, iat, issuer, audience; the first failure is returned.
//
// Key choice: a token with a kid is checked against the keys of its alg with that kid; if no
// key of the set has that kid, against the keys of its alg loaded without a kid (a PEM file or
// secret not bound to a kid). A token without a kid is checked against the first kMaxKeysTried
// keys of its alg. Keys are typed by algorithm, so an HS256 token is never checked with an RSA
// or EC key (algorithm confusion), and vice versa.
//
// Pure and bounded: no I/O, no clock (now_s is seconds since the epoch); tokens over
// kMaxTokenBytes are kMalformed before decoding; JSON nested deeper than kMaxJsonDepth is
// kMalformed. Thread-safe: any number of threads may verify against the same KeySet (one JSON
// parser per thread is kept between calls). Leaves the thread's OpenSSL error queue as it
// found it.
base::Expected<Claims, JwtError> verifyJwt(std::string_view token, const KeySet& keys,
                                           const VerifyPolicy& policy, int64_t now_s);

// The keys tokens may be signed with. Several keys per algorithm are allowed (rotation, see
// verifyJwt for how one is chosen). A key is typed by algorithm: an HS256 secret is never used
// for RS256/ES256 and a public key never as an HMAC secret, which is what defeats algorithm
// confusion (an HS256 token MACed with the RSA public key's PEM text is refused).
//
// Loading is not thread-safe; once loaded the set is immutable and may be shared between
// threads (e.g. as shared_ptr<const KeySet>). Move-only: it owns its OpenSSL keys. A failed
// add* call leaves the set as it was.
class KeySet {
public:
    KeySet();
    ~KeySet();
    KeySet(KeySet&&) noexcept;
    KeySet& operator=(KeySet&&) noexcept;

    // An HS256 shared secret: raw bytes, at least 32 of them (RFC 7518 §3.2).
    base::Result<void> addHmacSecret(std::string secret, std::string kid = {});
    // A PEM public key: SubjectPublicKeyInfo ("BEGIN PUBLIC KEY") or an X.509 certificate
    // ("BEGIN CERTIFICATE"; its public key is taken, the certificate itself is not checked).
    // RSA of 2048 to 8192 bits becomes an RS256 key, EC P-256 an ES256 key; anything else is an
    // error that names the problem.
    base::Result<void> addPublicKeyPem(std::string_view pem, std::string kid = {});
    // A JWKS document (RFC 7517): {"keys":[...]} with kty RSA (n, e), EC (crv P-256, x, y) or
    // oct (k), each with its kid if it has one. Skipped: keys whose "use" is not "sig", whose
    // "key_ops" lacks "verify", whose "alg" is not the one we would use with that key, and keys
    // of other types or curves. A usable-looking key that is broken (bad base64url, RSA under
    // 2048 bits, a point not on the curve, a short secret) is an error. Returns how many keys
    // were added; an error if the JSON is invalid or no key was usable (then none is added).
    base::Result<size_t> addJwks(std::string_view json);

    size_t size() const;
    bool empty() const;

private:
    friend base::Expected<Claims, JwtError> verifyJwt(std::string_view token, const KeySet& keys,
                                                      const VerifyPolicy& policy, int64_t now_s);

    std::vector<detail::Key> keys_;
};

}  // namespace sb::auth
