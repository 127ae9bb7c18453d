// The demo page served at `/`: a WebSocket echo console that works in any browser.
#pragma once

#include <string_view>

namespace sb::server {
extern const std::string_view kDemoPage;
}
