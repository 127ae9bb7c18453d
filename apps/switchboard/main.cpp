// The switchboard binary: subcommand dispatch only; every subcommand lives in a library.
#include <cstdio>
#include <cstring>
#include <string_view>

#include "bench/cli.h"
#include "server/serve.h"

namespace {

void printHelp() {
    std::puts(
        "usage: switchboard <command> [flags]\n"
        "\n"
        "commands:\n"
        "  serve         run the server (default: port 8080, in-process broker)\n"
        "  bench         load-test a WebSocket server (connect, echo, fanout, ramp)\n"
        "  check-config  validate settings (--config FILE, env, flags), print the effective ones\n"
        "  version       print the version\n"
        "\n"
        "Run 'switchboard <command> --help' for the flags of a command.");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        printHelp();
        return 2;
    }
    std::string_view cmd = argv[1];
    if (cmd == "serve") {
        return sb::server::runServe(argc - 2, argv + 2);
    }
    if (cmd == "bench") {
        return sb::bench::runBench(argc - 2, argv + 2);
    }
    if (cmd == "check-config") {
        return sb::server::runCheckConfig(argc - 2, argv + 2);
    }
    if (cmd == "version" || cmd == "--version") {
        std::puts("switchboard " SB_VERSION);
        return 0;
    }
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
        printHelp();
        return 0;
    }
    std::fprintf(stderr, "switchboard: unknown command '%s' (try: switchboard --help)\n", argv[1]);
    return 2;
}
