#include "server/auth_config.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace sb::server {

namespace {

// Key files are small; anything past 1 MiB is not a key file.
constexpr std::streamsize kMaxKeyFile = 1 << 20;

base::Result<std::string> readKeyFile(const std::string& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return base::fail(std::string(what) + " '" + path + "': " + std::strerror(errno));
    }
    std::string text(static_cast<size_t>(kMaxKeyFile) + 1, '\0');
    in.read(text.data(), kMaxKeyFile + 1);
    if (in.bad()) {
        return base::fail(std::string(what) + " '" + path + "': read error");
    }
    if (in.gcount() > kMaxKeyFile) {
        return base::fail(std::string(what) + " '" + path + "' is larger than 1 MiB");
    }
    text.resize(static_cast<size_t>(in.gcount()));
    return text;
}

}  // namespace

base::Result<messaging::AuthConfig> loadAuth(const messaging::AuthOptions& options) {
    messaging::AuthConfig out;
    out.policy.audience = options.audience;
    out.policy.issuer = options.issuer;
    out.policy.leeway_s = static_cast<uint32_t>(options.leeway_ms / 1000);
    out.policy.require_exp = options.require_exp;
    if (!options.enabled()) {
        return out;
    }
    auto keys = std::make_shared<auth::KeySet>();
    for (size_t i = 0; i < options.hmac_secrets.size(); ++i) {
        if (auto r = keys->addHmacSecret(options.hmac_secrets[i]); !r) {
            return base::fail("auth.hmac_secrets[" + std::to_string(i) + "]: " + r.error().message);
        }
    }
    for (const std::string& path : options.public_key_files) {
        auto pem = readKeyFile(path, "auth.public_key_files: cannot read");
        if (!pem) {
            return base::unexpected(pem.error());
        }
        if (auto r = keys->addPublicKeyPem(*pem); !r) {
            return base::fail("auth.public_key_files: '" + path + "': " + r.error().message);
        }
    }
    if (!options.jwks_file.empty()) {
        auto json = readKeyFile(options.jwks_file, "auth.jwks_file: cannot read");
        if (!json) {
            return base::unexpected(json.error());
        }
        if (auto r = keys->addJwks(*json); !r) {
            return base::fail("auth.jwks_file: '" + options.jwks_file + "': " + r.error().message);
        }
    }
    out.keys = std::move(keys);
    return out;
}

}  // namespace sb::server
