// `switchboard serve` and `switchboard check-config`: settings from defaults, --config FILE,
// SWITCHBOARD_* and flags (server/settings.h), then the App with the default routes:
// /echo (WebSocket echo, for conformance tools), /healthz, /readyz and the demo page at /.
#pragma once

namespace sb::server {

int runServe(int argc, char** argv);
int runCheckConfig(int argc, char** argv);

}  // namespace sb::server
