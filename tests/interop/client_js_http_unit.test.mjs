// The JS client's unit tests of the HTTP transports (sse, polling) and of the upgrade back to
// WebSocket (clients/js/test/http_transports.test.mjs: fake EventSource, fetch and clock, no
// server), run by ctest with the interop tier. Also: `npm test -w @switchboard/client`.
import '../../clients/js/test/http_transports.test.mjs';
