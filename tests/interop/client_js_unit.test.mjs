// The JS client's unit tests (clients/js/test/, no server: a fake transport and clock), run by
// ctest with the interop tier. Also: `npm test -w @switchboard/client`.
import '../../clients/js/test/unit.test.mjs';
