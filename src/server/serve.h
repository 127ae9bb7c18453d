// `switchboard serve`: flags → ServerOptions and routes, then App::run. The default routes:
// /echo (WebSocket echo, for conformance tools), /healthz, /readyz and the demo page at /.
#pragma once

namespace sb::server {

int runServe(int argc, char** argv);
void printServeHelp();

}  // namespace sb::server
