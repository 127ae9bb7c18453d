// Turns the [auth] settings into what the messaging core verifies tokens with: reads the key
// files (PEM public keys, a JWKS) and builds the key set. Startup and SIGHUP run it; an error
// names the file and what is wrong with it.
#pragma once

#include "base/result.h"
#include "messaging/hub.h"
#include "messaging/options.h"

namespace sb::server {

base::Result<messaging::AuthConfig> loadAuth(const messaging::AuthOptions& options);

}  // namespace sb::server
