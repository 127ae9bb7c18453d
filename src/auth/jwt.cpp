// JWT verification (jwt.h): strict base64url and JSON decoding of the three parts, key choice
// by alg and kid, signature check with OpenSSL EVP, then the claims. Key loading from PEM and
// JWKS builds typed EVP_PKEYs once; verification only reads them.
#include "auth/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sb::auth {

namespace dom = simdjson::dom;

namespace detail {

struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// A key is typed once, when loaded: verification never asks the key what it is.
struct Key {
    Alg alg = Alg::kHS256;
    std::string kid;
    std::string secret;  // HS256
    PkeyPtr pkey;        // RS256, ES256
};

}  // namespace detail

using detail::Key;
using detail::PkeyPtr;

namespace {

// ---- OpenSSL helpers ------------------------------------------------------------------------

struct BnFree {
    void operator()(BIGNUM* p) const { BN_free(p); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
struct MdCtxFree {
    void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct PkeyCtxFree {
    void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
struct BioFree {
    void operator()(BIO* p) const { BIO_free(p); }
};
struct X509Free {
    void operator()(X509* p) const { X509_free(p); }
};
struct EcdsaSigFree {
    void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};
struct ParamBldFree {
    void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
    void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};

// Verification runs on threads that also drive TLS, where a stale entry on the error queue
// makes the next SSL_get_error() misreport; whatever OpenSSL pushes while this object lives is
// dropped when it goes, and entries that were there before are kept.
class ErrorQueueScope {
public:
    ErrorQueueScope() { ERR_set_mark(); }
    ~ErrorQueueScope() { ERR_pop_to_mark(); }
    ErrorQueueScope(const ErrorQueueScope&) = delete;
    ErrorQueueScope& operator=(const ErrorQueueScope&) = delete;
};

// The reason of the newest error OpenSSL pushed, for load-time messages.
std::string lastOpensslError(const char* fallback) {
    const unsigned long code = ERR_peek_last_error();
    if (code == 0) {
        return fallback;
    }
    const char* reason = ERR_reason_error_string(code);
    if (reason != nullptr) {
        return reason;
    }
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    return buf;
}

// PEM blocks of public keys and certificates are never encrypted; refusing a passphrase also
// keeps OpenSSL from prompting on the terminal for one.
int noPassphrase(char*, int, int, void*) {
    return 0;
}

BnPtr toBignum(std::string_view bytes) {
    return BnPtr(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                           static_cast<int>(bytes.size()), nullptr));
}

// ---- base64url ------------------------------------------------------------------------------

constexpr std::array<int8_t, 256> makeBase64UrlTable() {
    std::array<int8_t, 256> t{};
    for (auto& v : t) {
        v = -1;
    }
    constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < kAlphabet.size(); ++i) {
        t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
    }
    return t;
}
constexpr std::array<int8_t, 256> kBase64Url = makeBase64UrlTable();

// Strict base64url without padding (RFC 7515 §2): only the 64 URL-safe characters, no '=', no
// whitespace, and the unused low bits of the last character must be zero. That last rule makes
// the encoding canonical: otherwise several spellings of one signature would all verify.
bool decodeBase64Url(std::string_view in, std::string* out) {
    out->clear();
    if (in.size() % 4 == 1) {
        return false;
    }
    out->reserve(in.size() / 4 * 3 + 2);
    uint32_t acc = 0;
    int bits = 0;
    for (const char c : in) {
        const int v = kBase64Url[static_cast<unsigned char>(c)];
        if (v < 0) {
            return false;
        }
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out->push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    return (acc & ((1u << bits) - 1)) == 0;
}

// ---- JSON -----------------------------------------------------------------------------------

// A container at nesting level > kMaxJsonDepth (root = 1) is refused. The parser runs with
// max_depth kMaxJsonDepth + 1, which lets through at most an empty container one level too
// deep; this walk catches that one case exactly.
bool depthWithin(dom::element e, size_t level) {
    const dom::element_type type = e.type();
    if (type != dom::element_type::ARRAY && type != dom::element_type::OBJECT) {
        return true;
    }
    if (level > kMaxJsonDepth) {
        return false;
    }
    if (type == dom::element_type::ARRAY) {
        dom::array arr;
        if (e.get_array().get(arr) != simdjson::SUCCESS) {
            return false;
        }
        for (dom::element child : arr) {
            if (!depthWithin(child, level + 1)) {
                return false;
            }
        }
        return true;
    }
    dom::object obj;
    if (e.get_object().get(obj) != simdjson::SUCCESS) {
        return false;
    }
    for (dom::key_value_pair field : obj) {
        if (!depthWithin(field.value, level + 1)) {
            return false;
        }
    }
    return true;
}

// One parser per thread, sized for the largest decoded part of a kMaxTokenBytes token, so
// verification allocates nothing for JSON after a thread's first token.
class PartParser {
public:
    // Parses `text`, which must be followed by SIMDJSON_PADDING readable bytes, as a JSON
    // object. *out is valid until the next call on this thread.
    bool parseObject(std::string_view text, dom::object* out) {
        if (!allocated_) {
            if (parser_.allocate(kMaxTokenBytes, kMaxJsonDepth + 1) != simdjson::SUCCESS) {
                return false;
            }
            allocated_ = true;
        }
        dom::element root;
        if (parser_.parse(text.data(), text.size(), false).get(root) != simdjson::SUCCESS) {
            return false;
        }
        return depthWithin(root, 1) && root.get_object().get(*out) == simdjson::SUCCESS;
    }

private:
    dom::parser parser_{kMaxTokenBytes};
    bool allocated_ = false;
};

PartParser& partParser() {
    thread_local PartParser parser;
    return parser;
}

// A decoded part, with the zero padding the JSON parser reads past its end.
bool decodeJsonPart(std::string_view in, std::string* out, std::string_view* json) {
    if (!decodeBase64Url(in, out)) {
        return false;
    }
    const size_t n = out->size();
    out->append(simdjson::SIMDJSON_PADDING, '\0');
    *json = std::string_view(out->data(), n);
    return true;
}

bool getString(dom::element e, std::string* out) {
    std::string_view v;
    if (e.get_string().get(v) != simdjson::SUCCESS) {
        return false;
    }
    out->assign(v);
    return true;
}

bool getStringArray(dom::element e, std::vector<std::string>* out) {
    dom::array arr;
    if (e.get_array().get(arr) != simdjson::SUCCESS) {
        return false;
    }
    for (dom::element item : arr) {
        std::string_view v;
        if (item.get_string().get(v) != simdjson::SUCCESS) {
            return false;
        }
        out->emplace_back(v);
    }
    return true;
}

// A NumericDate (RFC 7519 §2): any JSON number of seconds; a fraction is rounded down.
// Values outside int64 are refused rather than clamped.
bool getNumericDate(dom::element e, int64_t* out) {
    switch (e.type()) {
        case dom::element_type::INT64:
            return e.get_int64().get(*out) == simdjson::SUCCESS;
        case dom::element_type::DOUBLE: {
            double d = 0;
            if (e.get_double().get(d) != simdjson::SUCCESS) {
                return false;
            }
            // 2^63 is exact as a double; anything at or past it does not fit.
            constexpr double kLimit = 9223372036854775808.0;
            d = std::floor(d);
            if (!(d >= -kLimit && d < kLimit)) {
                return false;
            }
            *out = static_cast<int64_t>(d);
            return true;
        }
        default:  // UINT64 is only used above INT64_MAX
            return false;
    }
}

int64_t saturatingAdd(int64_t a, int64_t b) {
    int64_t r = 0;
    if (__builtin_add_overflow(a, b, &r)) {
        return b > 0 ? INT64_MAX : INT64_MIN;
    }
    return r;
}

// ---- Header ---------------------------------------------------------------------------------

struct Header {
    Alg alg = Alg::kHS256;
    std::string kid;
};

base::Expected<Header, JwtError> parseHeader(dom::object obj) {
    std::optional<dom::element> alg;
    std::optional<dom::element> kid;
    bool crit = false;
    for (dom::key_value_pair field : obj) {
        // RFC 7515 §5.2: duplicate names are refused rather than resolved, since two parsers
        // that resolve them differently would disagree on which algorithm a token uses.
        if (field.key == "alg") {
            if (alg) {
                return base::unexpected(JwtError::kMalformed);
            }
            alg = field.value;
        } else if (field.key == "kid") {
            if (kid) {
                return base::unexpected(JwtError::kMalformed);
            }
            kid = field.value;
        } else if (field.key == "crit") {
            crit = true;
        }
    }
    Header h;
    if (kid && !getString(*kid, &h.kid)) {
        return base::unexpected(JwtError::kMalformed);
    }
    // crit lists extensions the verifier must understand (RFC 7515 §4.1.11); we know none,
    // and b64=false (RFC 7797) would change what the signature covers.
    if (crit || !alg) {
        return base::unexpected(JwtError::kUnsupportedAlg);
    }
    std::string_view name;
    if (alg->get_string().get(name) != simdjson::SUCCESS) {
        return base::unexpected(JwtError::kUnsupportedAlg);
    }
    if (name == "HS256") {
        h.alg = Alg::kHS256;
    } else if (name == "RS256") {
        h.alg = Alg::kRS256;
    } else if (name == "ES256") {
        h.alg = Alg::kES256;
    } else {
        return base::unexpected(JwtError::kUnsupportedAlg);
    }
    return h;
}

// ---- Signatures -----------------------------------------------------------------------------

constexpr size_t kHs256Bytes = 32;
constexpr size_t kEs256Bytes = 64;  // r || s, 32 bytes each (RFC 7518 §3.4)

bool verifyHmac(const std::string& secret, std::string_view input, std::string_view sig) {
    if (sig.size() != kHs256Bytes) {
        return false;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
             reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
             &mac_len) == nullptr ||
        mac_len != kHs256Bytes) {
        return false;
    }
    return CRYPTO_memcmp(mac, sig.data(), kHs256Bytes) == 0;
}

bool digestVerify(EVP_PKEY* pkey, std::string_view input, const unsigned char* sig,
                  size_t sig_len) {
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestVerifyInit_ex(ctx.get(), nullptr, "SHA256", nullptr, nullptr, pkey,
                                        nullptr) != 1) {
        return false;
    }
    return EVP_DigestVerify(ctx.get(), sig, sig_len,
                            reinterpret_cast<const unsigned char*>(input.data()),
                            input.size()) == 1;
}

// JWS carries ECDSA signatures as fixed-size r || s; OpenSSL verifies the DER form.
bool verifyEs256(EVP_PKEY* pkey, std::string_view input, std::string_view sig) {
    if (sig.size() != kEs256Bytes) {
        return false;
    }
    BnPtr r = toBignum(sig.substr(0, kEs256Bytes / 2));
    BnPtr s = toBignum(sig.substr(kEs256Bytes / 2));
    std::unique_ptr<ECDSA_SIG, EcdsaSigFree> ecdsa(ECDSA_SIG_new());
    if (!r || !s || !ecdsa || ECDSA_SIG_set0(ecdsa.get(), r.get(), s.get()) != 1) {
        return false;
    }
    r.release();  // owned by ecdsa now
    s.release();
    unsigned char* der = nullptr;
    const int der_len = i2d_ECDSA_SIG(ecdsa.get(), &der);
    if (der_len <= 0) {
        return false;
    }
    const bool ok = digestVerify(pkey, input, der, static_cast<size_t>(der_len));
    OPENSSL_free(der);
    return ok;
}

// ---- Claims ---------------------------------------------------------------------------------

enum ClaimSlot : uint8_t {
    kClaimSub,
    kClaimExp,
    kClaimNbf,
    kClaimIat,
    kClaimIss,
    kClaimAud,
    kClaimChannel,
    kClaimChannels,
    kClaimInfo,
    kClaimCount
};

constexpr std::array<std::string_view, kClaimCount> kClaimNames = {
    "sub", "exp", "nbf", "iat", "iss", "aud", "channel", "channels", "info"};

// Fills *c from the payload object; returns which claims were present (bit per ClaimSlot).
base::Expected<uint32_t, JwtError> extractClaims(dom::object obj, Claims* c) {
    uint32_t seen = 0;
    for (dom::key_value_pair field : obj) {
        const auto it = std::find(kClaimNames.begin(), kClaimNames.end(), field.key);
        if (it == kClaimNames.end()) {
            continue;
        }
        const auto slot = static_cast<ClaimSlot>(it - kClaimNames.begin());
        const uint32_t bit = 1u << slot;
        if ((seen & bit) != 0) {  // RFC 7519 §4: refused, as for the header
            return base::unexpected(JwtError::kMalformed);
        }
        seen |= bit;
        const dom::element v = field.value;
        bool ok = false;
        switch (slot) {
            case kClaimSub:
                ok = getString(v, &c->sub);
                break;
            case kClaimExp:
                ok = getNumericDate(v, &c->exp);
                break;
            case kClaimNbf:
                ok = getNumericDate(v, &c->nbf);
                break;
            case kClaimIat:
                ok = getNumericDate(v, &c->iat);
                break;
            case kClaimIss:
                ok = getString(v, &c->iss);
                break;
            case kClaimAud:
                if (v.type() == dom::element_type::STRING) {
                    c->aud.emplace_back();
                    ok = getString(v, &c->aud.back());
                } else {
                    ok = getStringArray(v, &c->aud);
                }
                break;
            case kClaimChannel:
                ok = getString(v, &c->channel);
                break;
            case kClaimChannels:
                ok = getStringArray(v, &c->channels);
                c->has_channels = true;
                break;
            case kClaimInfo:
                c->info_json = simdjson::minify(v);
                ok = c->info_json.size() <= kMaxInfoBytes;
                break;
            case kClaimCount:
                break;
        }
        if (!ok) {
            return base::unexpected(JwtError::kBadClaims);
        }
    }
    return seen;
}

std::optional<JwtError> checkClaims(const Claims& c, uint32_t seen, const VerifyPolicy& policy,
                                    int64_t now_s) {
    const int64_t leeway = policy.leeway_s;
    const auto has = [seen](ClaimSlot s) { return (seen & (1u << s)) != 0; };
    if (policy.require_exp && !has(kClaimExp)) {
        return JwtError::kMissingExp;
    }
    if (has(kClaimExp) && now_s > saturatingAdd(c.exp, leeway)) {
        return JwtError::kExpired;
    }
    if (has(kClaimNbf) && now_s < saturatingAdd(c.nbf, -leeway)) {
        return JwtError::kNotYetValid;
    }
    if (has(kClaimIat) && c.iat > saturatingAdd(now_s, leeway)) {
        return JwtError::kIssuedInFuture;
    }
    if (!policy.issuer.empty() && c.iss != policy.issuer) {
        return JwtError::kBadIssuer;
    }
    if (!policy.audience.empty() &&
        std::find(c.aud.begin(), c.aud.end(), policy.audience) == c.aud.end()) {
        return JwtError::kBadAudience;
    }
    return std::nullopt;
}

// ---- Key loading ----------------------------------------------------------------------------

constexpr size_t kMinHmacSecretBytes = 32;
constexpr int kMinRsaBits = 2048;
constexpr int kMaxRsaBits = 8192;
// A public exponent past 64 bits only makes every verification slower (OpenSSL itself refuses
// them above 3072-bit moduli).
constexpr int kMaxRsaExponentBits = 64;

// Types a public key by the algorithm it may verify, after checking it is fit for it.
base::Result<Alg> classifyKey(EVP_PKEY* pkey) {
    const int id = EVP_PKEY_get_base_id(pkey);
    if (id == EVP_PKEY_RSA) {
        const int bits = EVP_PKEY_get_bits(pkey);
        if (bits < kMinRsaBits) {
            return base::fail("RSA key of " + std::to_string(bits) +
                              " bits: RS256 needs at least " + std::to_string(kMinRsaBits));
        }
        if (bits > kMaxRsaBits) {
            return base::fail("RSA key of " + std::to_string(bits) + " bits: at most " +
                              std::to_string(kMaxRsaBits) + " are supported");
        }
        BIGNUM* n_raw = nullptr;
        BIGNUM* e_raw = nullptr;
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n_raw);
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e_raw);
        const BnPtr n(n_raw);
        const BnPtr e(e_raw);
        if (!n || !e) {
            return base::fail("cannot read the RSA key's modulus and exponent");
        }
        // An exponent of 1 would make any "signature" equal to its own padded digest verify.
        if (!BN_is_odd(n.get()) || !BN_is_odd(e.get()) || BN_is_one(e.get()) ||
            BN_num_bits(e.get()) > kMaxRsaExponentBits) {
            return base::fail("invalid RSA public key (modulus or exponent)");
        }
        return Alg::kRS256;
    }
    if (id == EVP_PKEY_EC) {
        char group[64] = {};
        size_t len = 0;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &len) != 1) {
            return base::fail("EC key without a named curve: only P-256 (ES256) is supported");
        }
        const std::string_view name(group, len);
        if (name != "prime256v1" && name != "P-256") {
            return base::fail("EC key on curve " + std::string(name) +
                              ": only P-256 (ES256) is supported");
        }
        const PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
        if (!ctx || EVP_PKEY_public_check(ctx.get()) != 1) {
            return base::fail("invalid EC P-256 public key: " +
                              lastOpensslError("point check failed"));
        }
        return Alg::kES256;
    }
    if (id == EVP_PKEY_RSA_PSS) {
        return base::fail("RSA-PSS key: RS256 needs a plain RSA key (rsaEncryption)");
    }
    const char* type = EVP_PKEY_get0_type_name(pkey);
    return base::fail(std::string("unsupported key type ") + (type != nullptr ? type : "?") +
                      ": only RSA (RS256) and EC P-256 (ES256)");
}

// The label of the first PEM block ("PUBLIC KEY", "CERTIFICATE", ...), "" if there is none.
std::string_view firstPemLabel(std::string_view pem) {
    constexpr std::string_view kBegin = "-----BEGIN ";
    const size_t at = pem.find(kBegin);
    if (at == std::string_view::npos) {
        return {};
    }
    const size_t start = at + kBegin.size();
    const size_t end = pem.find("-----", start);
    if (end == std::string_view::npos) {
        return {};
    }
    return pem.substr(start, end - start);
}

base::Result<PkeyPtr> readPemPublicKey(std::string_view pem) {
    const std::string_view label = firstPemLabel(pem);
    if (label.empty()) {
        return base::fail("not a PEM key: no \"-----BEGIN ...-----\" line");
    }
    if (label.find("PRIVATE KEY") != std::string_view::npos) {
        return base::fail("this is a private key (BEGIN " + std::string(label) +
                          "): give the public key (openssl pkey -pubout)");
    }
    if (label != "PUBLIC KEY" && label != "CERTIFICATE") {
        return base::fail("unsupported PEM block \"BEGIN " + std::string(label) +
                          "\": expected \"BEGIN PUBLIC KEY\" or \"BEGIN CERTIFICATE\"");
    }
    if (pem.size() > static_cast<size_t>(INT_MAX)) {
        return base::fail("PEM text too large");
    }
    const std::unique_ptr<BIO, BioFree> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) {
        return base::fail("out of memory");
    }
    if (label == "CERTIFICATE") {
        const std::unique_ptr<X509, X509Free> cert(
            PEM_read_bio_X509(bio.get(), nullptr, &noPassphrase, nullptr));
        if (!cert) {
            return base::fail("cannot parse the certificate: " + lastOpensslError("invalid PEM"));
        }
        PkeyPtr key(X509_get_pubkey(cert.get()));
        if (!key) {
            return base::fail("cannot read the certificate's public key: " +
                              lastOpensslError("unsupported key"));
        }
        return key;
    }
    PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, &noPassphrase, nullptr));
    if (!key) {
        return base::fail("cannot parse the public key: " + lastOpensslError("invalid PEM"));
    }
    return key;
}

base::Result<PkeyPtr> pkeyFromParams(const char* type, OSSL_PARAM_BLD* bld) {
    const std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld));
    const PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* raw = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
        return base::fail(std::string("cannot build the ") + type +
                          " key: " + lastOpensslError("invalid parameters"));
    }
    return PkeyPtr(raw);
}

// ---- JWKS -----------------------------------------------------------------------------------

// A member that must be a string when present; absent leaves *out empty.
enum class Member : uint8_t { kAbsent, kPresent, kWrongType };

Member stringMember(dom::object obj, std::string_view name, std::string_view* out) {
    dom::element e;
    if (obj.at_key(name).get(e) != simdjson::SUCCESS) {
        return Member::kAbsent;
    }
    return e.get_string().get(*out) == simdjson::SUCCESS ? Member::kPresent : Member::kWrongType;
}

// A base64url member that must be there (n, e, x, y, k).
base::Result<std::string> binaryMember(dom::object obj, std::string_view name) {
    std::string_view text;
    const Member m = stringMember(obj, name, &text);
    if (m != Member::kPresent) {
        return base::fail("\"" + std::string(name) + "\" " +
                          (m == Member::kAbsent ? "is missing" : "is not a string"));
    }
    std::string bytes;
    if (!decodeBase64Url(text, &bytes)) {
        return base::fail("\"" + std::string(name) + "\" is not base64url");
    }
    if (bytes.empty()) {
        return base::fail("\"" + std::string(name) + "\" is empty");
    }
    return bytes;
}

base::Result<PkeyPtr> rsaFromJwk(dom::object obj) {
    auto n = binaryMember(obj, "n");
    if (!n) {
        return base::unexpected(n.error());
    }
    auto e = binaryMember(obj, "e");
    if (!e) {
        return base::unexpected(e.error());
    }
    const BnPtr n_bn = toBignum(*n);
    const BnPtr e_bn = toBignum(*e);
    const std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
    if (!n_bn || !e_bn || !bld ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n_bn.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e_bn.get()) != 1) {
        return base::fail("out of memory");
    }
    return pkeyFromParams("RSA", bld.get());
}

base::Result<PkeyPtr> ecFromJwk(dom::object obj) {
    auto x = binaryMember(obj, "x");
    if (!x) {
        return base::unexpected(x.error());
    }
    auto y = binaryMember(obj, "y");
    if (!y) {
        return base::unexpected(y.error());
    }
    // RFC 7518 §6.2.1.2: coordinates are the full 32 bytes, leading zeros included.
    if (x->size() != 32 || y->size() != 32) {
        return base::fail("P-256 coordinates must be 32 bytes each");
    }
    std::string point = "\x04" + *x + *y;  // uncompressed SEC1 point
    static constexpr char kGroup[] = "prime256v1";
    const std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
    if (!bld ||
        OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, kGroup, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1) {
        return base::fail("out of memory");
    }
    return pkeyFromParams("EC", bld.get());
}

enum class JwkOutcome : uint8_t { kAdded, kSkipped };

// One element of "keys": appends a Key to *out, skips it (not for us), or says why it is
// broken.
base::Result<JwkOutcome> parseJwk(dom::element element, std::vector<Key>* out) {
    dom::object obj;
    if (element.get_object().get(obj) != simdjson::SUCCESS) {
        return base::fail("not an object");
    }
    std::string_view kty;
    std::string_view use;
    std::string_view alg;
    std::string_view kid;
    if (stringMember(obj, "kty", &kty) != Member::kPresent) {
        return base::fail("no \"kty\" string");
    }
    if (stringMember(obj, "kid", &kid) == Member::kWrongType) {
        return base::fail("\"kid\" is not a string");
    }
    const Member use_m = stringMember(obj, "use", &use);
    if (use_m == Member::kWrongType || (use_m == Member::kPresent && use != "sig")) {
        return JwkOutcome::kSkipped;
    }
    dom::element ops;
    if (obj.at_key("key_ops").get(ops) == simdjson::SUCCESS) {
        bool verify = false;
        dom::array arr;
        if (ops.get_array().get(arr) == simdjson::SUCCESS) {
            for (dom::element op : arr) {
                std::string_view name;
                verify =
                    verify || (op.get_string().get(name) == simdjson::SUCCESS && name == "verify");
            }
        }
        if (!verify) {
            return JwkOutcome::kSkipped;
        }
    }
    // The algorithm follows from the key type; an "alg" naming another one (RS512 on an RSA
    // key, HS256 on an RSA key) means the key is meant for something we do not do.
    const Member alg_m = stringMember(obj, "alg", &alg);
    const auto algIs = [&](std::string_view want) {
        return alg_m == Member::kAbsent || (alg_m == Member::kPresent && alg == want);
    };
    Key key;
    key.kid.assign(kid);
    if (kty == "oct") {
        if (!algIs("HS256")) {
            return JwkOutcome::kSkipped;
        }
        auto k = binaryMember(obj, "k");
        if (!k) {
            return base::unexpected(k.error());
        }
        if (k->size() < kMinHmacSecretBytes) {
            return base::fail("HS256 secret shorter than 32 bytes");
        }
        key.alg = Alg::kHS256;
        key.secret = std::move(*k);
    } else if (kty == "RSA" || kty == "EC") {
        std::string_view crv;
        if (kty == "EC" && (stringMember(obj, "crv", &crv) != Member::kPresent || crv != "P-256" ||
                            !algIs("ES256"))) {
            return JwkOutcome::kSkipped;
        }
        if (kty == "RSA" && !algIs("RS256")) {
            return JwkOutcome::kSkipped;
        }
        auto pkey = kty == "RSA" ? rsaFromJwk(obj) : ecFromJwk(obj);
        if (!pkey) {
            return base::unexpected(pkey.error());
        }
        auto typed = classifyKey(pkey->get());
        if (!typed) {
            return base::unexpected(typed.error());
        }
        key.alg = *typed;
        key.pkey = std::move(*pkey);
    } else {
        return JwkOutcome::kSkipped;
    }
    out->push_back(std::move(key));
    return JwkOutcome::kAdded;
}

}  // namespace

// ---- KeySet ---------------------------------------------------------------------------------

KeySet::KeySet() = default;
KeySet::~KeySet() = default;
KeySet::KeySet(KeySet&&) noexcept = default;
KeySet& KeySet::operator=(KeySet&&) noexcept = default;

size_t KeySet::size() const {
    return keys_.size();
}

bool KeySet::empty() const {
    return keys_.empty();
}

base::Result<void> KeySet::addHmacSecret(std::string secret, std::string kid) {
    if (secret.size() < kMinHmacSecretBytes) {
        return base::fail("HS256 secret shorter than 32 bytes");
    }
    Key key;
    key.alg = Alg::kHS256;
    key.kid = std::move(kid);
    key.secret = std::move(secret);
    keys_.push_back(std::move(key));
    return {};
}

base::Result<void> KeySet::addPublicKeyPem(std::string_view pem, std::string kid) {
    const ErrorQueueScope errors;
    auto pkey = readPemPublicKey(pem);
    if (!pkey) {
        return base::unexpected(pkey.error());
    }
    auto alg = classifyKey(pkey->get());
    if (!alg) {
        return base::unexpected(alg.error());
    }
    Key key;
    key.alg = *alg;
    key.kid = std::move(kid);
    key.pkey = std::move(*pkey);
    keys_.push_back(std::move(key));
    return {};
}

base::Result<size_t> KeySet::addJwks(std::string_view json) {
    const ErrorQueueScope errors;
    dom::parser parser;
    dom::element root;
    if (const auto err = parser.parse(json.data(), json.size()).get(root)) {
        return base::fail(std::string("invalid JSON: ") + simdjson::error_message(err));
    }
    dom::object obj;
    dom::array keys;
    if (root.get_object().get(obj) != simdjson::SUCCESS ||
        obj.at_key("keys").get_array().get(keys) != simdjson::SUCCESS) {
        return base::fail("not a JWKS: no \"keys\" array");
    }
    std::vector<Key> added;
    size_t index = 0;
    size_t skipped = 0;
    for (dom::element element : keys) {
        auto outcome = parseJwk(element, &added);
        if (!outcome) {
            std::string where = "keys[" + std::to_string(index) + "]";
            std::string_view kid;
            dom::object o;
            if (element.get_object().get(o) == simdjson::SUCCESS &&
                stringMember(o, "kid", &kid) == Member::kPresent) {
                where += " (kid \"" + std::string(kid) + "\")";
            }
            return base::fail(where + ": " + outcome.error().message);
        }
        skipped += *outcome == JwkOutcome::kSkipped ? 1 : 0;
        ++index;
    }
    if (added.empty()) {
        return base::fail("no usable key in the JWKS (" + std::to_string(skipped) +
                          " skipped: only signing keys for HS256, RS256 and ES256 are used)");
    }
    const size_t n = added.size();
    keys_.insert(keys_.end(), std::make_move_iterator(added.begin()),
                 std::make_move_iterator(added.end()));
    return n;
}

// ---- Verification ---------------------------------------------------------------------------

base::Expected<Claims, JwtError> verifyJwt(std::string_view token, const KeySet& keys,
                                           const VerifyPolicy& policy, int64_t now_s) {
    if (token.empty() || token.size() > kMaxTokenBytes) {
        return base::unexpected(JwtError::kMalformed);
    }
    const size_t dot1 = token.find('.');
    const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
        return base::unexpected(JwtError::kMalformed);
    }
    // Per thread, so a verification allocates nothing once a thread has seen a large token.
    thread_local std::string header_buf;
    thread_local std::string payload_buf;
    thread_local std::string sig_buf;
    std::string_view header_json;
    std::string_view payload_json;
    if (!decodeJsonPart(token.substr(0, dot1), &header_buf, &header_json) ||
        !decodeJsonPart(token.substr(dot1 + 1, dot2 - dot1 - 1), &payload_buf, &payload_json) ||
        !decodeBase64Url(token.substr(dot2 + 1), &sig_buf)) {
        return base::unexpected(JwtError::kMalformed);
    }

    PartParser& parser = partParser();
    dom::object header_obj;
    if (!parser.parseObject(header_json, &header_obj)) {
        return base::unexpected(JwtError::kMalformed);
    }
    auto header = parseHeader(header_obj);
    if (!header) {
        return base::unexpected(header.error());
    }

    // Candidate keys: those named by the kid, else (no key has that kid, or no kid) those of
    // the alg not bound to another kid.
    std::array<const Key*, kMaxKeysTried> candidates{};
    size_t n_candidates = 0;
    bool kid_known = false;
    if (!header->kid.empty()) {
        for (const Key& k : keys.keys_) {
            if (k.kid == header->kid) {
                kid_known = true;
                if (k.alg == header->alg && n_candidates < kMaxKeysTried) {
                    candidates[n_candidates++] = &k;
                }
            }
        }
    }
    if (!kid_known) {
        for (const Key& k : keys.keys_) {
            if (k.alg == header->alg && (header->kid.empty() || k.kid.empty()) &&
                n_candidates < kMaxKeysTried) {
                candidates[n_candidates++] = &k;
            }
        }
    }
    if (n_candidates == 0) {
        return base::unexpected(JwtError::kNoKey);
    }

    const std::string_view signing_input = token.substr(0, dot2);
    const std::string_view sig = sig_buf;
    bool verified = false;
    {
        const ErrorQueueScope errors;
        for (size_t i = 0; i < n_candidates && !verified; ++i) {
            const Key& k = *candidates[i];
            switch (k.alg) {
                case Alg::kHS256:
                    verified = verifyHmac(k.secret, signing_input, sig);
                    break;
                case Alg::kRS256:
                    verified = digestVerify(k.pkey.get(), signing_input,
                                            reinterpret_cast<const unsigned char*>(sig.data()),
                                            sig.size());
                    break;
                case Alg::kES256:
                    verified = verifyEs256(k.pkey.get(), signing_input, sig);
                    break;
            }
        }
    }
    if (!verified) {
        return base::unexpected(JwtError::kBadSignature);
    }

    // Only now is the payload looked at.
    dom::object payload_obj;
    if (!parser.parseObject(payload_json, &payload_obj)) {
        return base::unexpected(JwtError::kMalformed);
    }
    Claims claims;
    auto seen = extractClaims(payload_obj, &claims);
    if (!seen) {
        return base::unexpected(seen.error());
    }
    if (const auto err = checkClaims(claims, *seen, policy, now_s)) {
        return base::unexpected(*err);
    }
    claims.kid = std::move(header->kid);
    claims.alg = header->alg;
    return claims;
}

std::string_view describe(JwtError e) {
    switch (e) {
        case JwtError::kMalformed:
            return "malformed token";
        case JwtError::kUnsupportedAlg:
            return "unsupported signing algorithm";
        case JwtError::kNoKey:
            return "no key for the token's algorithm or key id";
        case JwtError::kBadSignature:
            return "bad signature";
        case JwtError::kExpired:
            return "token expired";
        case JwtError::kNotYetValid:
            return "token not yet valid";
        case JwtError::kIssuedInFuture:
            return "token issued in the future";
        case JwtError::kBadAudience:
            return "audience not accepted";
        case JwtError::kBadIssuer:
            return "issuer not accepted";
        case JwtError::kMissingExp:
            return "token has no expiry";
        case JwtError::kBadClaims:
            return "claim of the wrong type or out of range";
    }
    return "invalid token";
}

std::string_view code(JwtError e) {
    switch (e) {
        case JwtError::kMalformed:
            return "malformed_token";
        case JwtError::kUnsupportedAlg:
            return "unsupported_alg";
        case JwtError::kNoKey:
            return "no_key";
        case JwtError::kBadSignature:
            return "bad_signature";
        case JwtError::kExpired:
            return "token_expired";
        case JwtError::kNotYetValid:
            return "token_not_yet_valid";
        case JwtError::kIssuedInFuture:
            return "issued_in_future";
        case JwtError::kBadAudience:
            return "bad_audience";
        case JwtError::kBadIssuer:
            return "bad_issuer";
        case JwtError::kMissingExp:
            return "missing_exp";
        case JwtError::kBadClaims:
            return "bad_claims";
    }
    return "invalid_token";
}

}  // namespace sb::auth
