#include "config/schema.h"

#include <gtest/gtest.h>

#include <map>

#include "config/units.h"

namespace sb::config {
namespace {

enum class Color : uint8_t { kRed, kGreen, kBlue };

struct Item {
    bool on = false;
    uint32_t count = 3;
    uint64_t ttl_ms = 1000;
    size_t bytes = 1024;
    Color color = Color::kRed;
};

struct Opts {
    std::string host = "localhost";
    uint16_t port = 8080;
    bool fast = true;
    size_t buffer = 64 << 10;
    uint32_t timeout_ms = 25'000;
    uint64_t ttl_ms = 0;
    std::vector<std::string> tags = {"a", "b"};
    Color color = Color::kGreen;
    base::LogLevel level = base::LogLevel::kInfo;
    uint32_t rate = 10;
    uint64_t big = 0;
    std::string secret;
    std::map<std::string, Item> items;
};

bool validItemName(std::string_view s) {
    return !s.empty() &&
           s.find_first_not_of("abcdefghijklmnopqrstuvwxyz") == std::string_view::npos;
}

const Schema<Opts>& schema() {
    static const Schema<Opts> kSchema = [] {
        Schema<Opts> s("APP_", "main");
        s.add(
            {.key = "main.host", .flag = "--host", .kind = Kind::kString, .help = "address"},
            [](auto& o) -> auto& { return o.host; });
        s.add(
            {.key = "main.port", .flag = "--port", .kind = Kind::kUint, .help = "port"},
            [](auto& o) -> auto& { return o.port; });
        s.add(
            {.key = "main.fast", .flag = "--fast", .kind = Kind::kBool, .help = "go fast"},
            [](auto& o) -> auto& { return o.fast; });
        s.add(
            {.key = "io.buffer", .flag = "--buffer", .kind = Kind::kSize, .help = "buffer"},
            [](auto& o) -> auto& { return o.buffer; });
        s.add(
            {.key = "io.timeout",
             .flag = "--timeout",
             .kind = Kind::kDuration,
             .help = "timeout",
             .derived = "twice the ttl"},
            [](auto& o) -> auto& { return o.timeout_ms; });
        s.add(
            {.key = "io.ttl", .kind = Kind::kDuration, .help = "ttl", .apply = Apply::kReload},
            [](auto& o) -> auto& { return o.ttl_ms; });
        s.add(
            {.key = "io.tags", .flag = "--tags", .kind = Kind::kList, .help = "tags"},
            [](auto& o) -> auto& { return o.tags; });
        s.add(
            {.key = "io.color",
             .flag = "--color",
             .kind = Kind::kEnum,
             .help = "color",
             .choices = {"red", "green", "blue"}},
            [](auto& o) -> auto& { return o.color; });
        s.add(
            {.key = "main.level",
             .flag = "--level",
             .kind = Kind::kLogLevel,
             .help = "level",
             .apply = Apply::kReload},
            [](auto& o) -> auto& { return o.level; });
        s.add(
            {.key = "io.rate", .flag = "--rate", .kind = Kind::kUint, .help = "rate", .min = 1},
            [](auto& o) -> auto& { return o.rate; });
        s.add(
            {.key = "io.big", .kind = Kind::kUint, .help = "big", .has_env = false},
            [](auto& o) -> auto& { return o.big; });
        s.add(
            {.key = "io.secret",
             .flag = "--secret",
             .kind = Kind::kString,
             .help = "secret",
             .secret = true},
            [](auto& o) -> auto& { return o.secret; });
        s.section(
             {.key = "items",
              .help = "items",
              .name_rule = "[a-z]+",
              .valid_name = &validItemName,
              .apply = Apply::kReload},
             [](auto& o) -> auto& { return o.items; })
            .add(
                {.key = "on", .kind = Kind::kBool, .help = "on"},
                [](auto& i) -> auto& { return i.on; })
            .add(
                {.key = "count", .kind = Kind::kUint, .help = "count"},
                [](auto& i) -> auto& { return i.count; })
            .add(
                {.key = "ttl", .kind = Kind::kDuration, .help = "ttl"},
                [](auto& i) -> auto& { return i.ttl_ms; })
            .add(
                {.key = "bytes", .kind = Kind::kSize, .help = "bytes"},
                [](auto& i) -> auto& { return i.bytes; })
            .add(
                {.key = "color",
                 .kind = Kind::kEnum,
                 .help = "color",
                 .choices = {"red", "green", "blue"}},
                [](auto& i) -> auto& { return i.color; });
        return s;
    }();
    return kSchema;
}

struct Loaded {
    Opts opts;
    Sources sources;
};

base::Result<Loaded> toml(std::string_view text) {
    Loaded l;
    auto r = schema().applyToml(&l.opts, &l.sources, text, "t.toml");
    if (!r) {
        return base::unexpected(r.error());
    }
    return l;
}

std::string tomlError(std::string_view text) {
    auto r = toml(text);
    return r ? "(loaded)" : r.error().message;
}

std::string flagsError(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    auto cmd = schema().parseCommandLine(static_cast<int>(argv.size()), argv.data());
    if (!cmd) {
        return cmd.error().message;
    }
    Loaded l;
    auto r = schema().applyFlags(&l.opts, &l.sources, *cmd);
    return r ? "(loaded)" : r.error().message;
}

TEST(Schema, DefaultsAreReadFromTheDefaultConstructedStruct) {
    const Opts d;
    EXPECT_EQ(std::get<uint64_t>(schema().defaultValue(*schema().find("main.port"))), d.port);
    EXPECT_EQ(std::get<std::string>(schema().defaultValue(*schema().find("io.color"))), "green");
    EXPECT_EQ(std::get<std::string>(schema().defaultValue(*schema().find("main.level"))), "info");
    EXPECT_EQ(std::get<std::vector<std::string>>(schema().defaultValue(*schema().find("io.tags"))),
              d.tags);
    const Section* items = schema().findSection("items");
    ASSERT_NE(items, nullptr);
    EXPECT_EQ(std::get<uint64_t>(schema().defaultValue(items->options[1])), Item{}.count);
    EXPECT_EQ(items->options[1].key, "items.*.count");
}

TEST(Schema, EnvNamesDropTheBareTable) {
    EXPECT_EQ(schema().find("main.port")->env, "APP_PORT");
    EXPECT_EQ(schema().find("io.buffer")->env, "APP_IO_BUFFER");
    EXPECT_EQ(schema().find("io.big")->env, "");
    EXPECT_EQ(schema().envName("main.level"), "APP_LEVEL");
}

TEST(Schema, RangesAreNarrowedToTheFieldType) {
    EXPECT_EQ(schema().find("main.port")->spec.max, 65535u);
    EXPECT_EQ(schema().find("io.timeout")->spec.max, UINT32_MAX);
    EXPECT_EQ(schema().find("io.rate")->spec.min, 1u);
    EXPECT_EQ(schema().find("io.big")->spec.max, UINT64_MAX);
}

TEST(Schema, TomlEveryKind) {
    auto l = toml(R"(
[main]
host = "example.org"
port = 9000
fast = false
level = "debug"
[io]
buffer = "16MiB"
timeout = "500ms"
ttl = 30            # an integer is seconds
tags = ["x", "y", "z"]
color = "blue"
rate = 1
big = 9223372036854775807
)");
    ASSERT_TRUE(l.has_value()) << l.error().message;
    EXPECT_EQ(l->opts.host, "example.org");
    EXPECT_EQ(l->opts.port, 9000);
    EXPECT_FALSE(l->opts.fast);
    EXPECT_EQ(l->opts.level, base::LogLevel::kDebug);
    EXPECT_EQ(l->opts.buffer, 16u << 20);
    EXPECT_EQ(l->opts.timeout_ms, 500u);
    EXPECT_EQ(l->opts.ttl_ms, 30'000u);
    EXPECT_EQ(l->opts.tags, (std::vector<std::string>{"x", "y", "z"}));
    EXPECT_EQ(l->opts.color, Color::kBlue);
    EXPECT_EQ(l->opts.rate, 1u);
    EXPECT_EQ(l->opts.big, uint64_t{INT64_MAX});
    EXPECT_EQ(l->sources.at("main.port"), "t.toml:4");
    EXPECT_EQ(l->sources.at("io.ttl"), "t.toml:10");
    EXPECT_FALSE(l->sources.contains("io.secret"));
}

TEST(Schema, TomlAlternativeSpellings) {
    auto l = toml("io.buffer = 4096\nio.tags = \"p, q ,,r\"\nmain = { port = 1 }\n");
    ASSERT_TRUE(l.has_value()) << l.error().message;
    EXPECT_EQ(l->opts.buffer, 4096u);
    EXPECT_EQ(l->opts.tags, (std::vector<std::string>{"p", "q", "r"}));
    EXPECT_EQ(l->opts.port, 1);
    l = toml("[io]\ntags = []\n");
    ASSERT_TRUE(l.has_value());
    EXPECT_TRUE(l->opts.tags.empty());
}

TEST(Schema, WrongTypesSayWhatIsExpected) {
    EXPECT_EQ(tomlError("[main]\nfast = \"yes\"\n"),
              "t.toml:2: main.fast: \"yes\" is a string; expected true or false");
    EXPECT_EQ(tomlError("[main]\nfast = 1\n"),
              "t.toml:2: main.fast: 1 is an integer; expected true or false");
    EXPECT_EQ(tomlError("[main]\nport = \"80\"\n"),
              "t.toml:2: main.port: \"80\" is a string; expected an integer from 0 to 65535");
    EXPECT_EQ(tomlError("[main]\nhost = 1.5\n"),
              "t.toml:2: main.host: the value is a float; expected a string");
    EXPECT_EQ(tomlError("[io]\ncolor = \"pink\"\n"),
              "t.toml:2: io.color: \"pink\" is not valid; expected one of red, green, blue");
    EXPECT_EQ(tomlError("[main]\nlevel = \"loud\"\n"),
              "t.toml:2: main.level: \"loud\" is not valid; expected one of trace, debug, info, "
              "warn, error, off");
    EXPECT_EQ(tomlError("[io]\ntags = [\"a\", 2]\n"),
              "t.toml:2: io.tags: item 2 is an integer; expected an array of strings (or one "
              "comma-separated string)");
    EXPECT_EQ(tomlError("[io]\nbuffer = true\n"),
              "t.toml:2: io.buffer: true is a boolean; expected a size: an integer (bytes) or a "
              "string such as \"64KiB\", \"16MiB\", \"1GiB\"");
    EXPECT_EQ(tomlError("[io]\ntimeout = 1979-05-27\n"),
              "t.toml:2: io.timeout: the value is a date; expected a duration: a string such as "
              "\"500ms\", \"25s\", \"2m\", \"1h\", or an integer (seconds)");
    EXPECT_EQ(tomlError("main = 5\n"), "t.toml:1: main: 5 is an integer; expected a table [main]");
    EXPECT_EQ(tomlError("[main.port]\n"),
              "t.toml:1: main.port: the value is a table; expected an integer from 0 to 65535");
}

TEST(Schema, RangesAndOverflow) {
    EXPECT_EQ(tomlError("[main]\nport = 65536\n"),
              "t.toml:2: main.port: 65536 is out of range; expected an integer from 0 to 65535");
    EXPECT_EQ(tomlError("[main]\nport = -1\n"),
              "t.toml:2: main.port: -1 is negative; expected an integer from 0 to 65535");
    EXPECT_EQ(tomlError("[io]\nrate = 0\n"),
              "t.toml:2: io.rate: 0 is out of range; expected an integer from 1 to 4294967295");
    EXPECT_EQ(tomlError("[io]\nrate = 4294967296\n"),
              "t.toml:2: io.rate: 4294967296 is out of range; expected an integer from 1 to "
              "4294967295");
    EXPECT_EQ(tomlError("[io]\nbig = -3\n"),
              "t.toml:2: io.big: -3 is negative; expected a non-negative integer");
    // Past 64 bits in TOML is a syntax error of toml++, with line and column.
    EXPECT_EQ(tomlError("[io]\nbig = 18446744073709551616\n").find("t.toml:2:"), 0u);
    // A duration that does not fit the field's 32 bits of milliseconds.
    EXPECT_EQ(tomlError("[io]\ntimeout = \"1200h\"\n"),
              "t.toml:2: io.timeout: \"1200h\" is too large: the maximum is 4294967295ms");
    EXPECT_EQ(tomlError("[io]\ntimeout = 4294968\n"),
              "t.toml:2: io.timeout: 4294968 is too large: the maximum is 4294967295ms");
    EXPECT_TRUE(toml("[io]\ntimeout = 4294967\n").has_value());
    // Overflow of the unit itself.
    EXPECT_EQ(tomlError("[io]\nbuffer = \"99999999999999999999KiB\"\n"),
              "t.toml:2: io.buffer: \"99999999999999999999KiB\" is too large: the largest size is "
              "18446744073709551615 bytes");
    EXPECT_EQ(tomlError("[io]\nbuffer = \"18446744073709551615GiB\"\n"),
              "t.toml:2: io.buffer: \"18446744073709551615GiB\" is too large: the largest size is "
              "18446744073709551615 bytes");
    EXPECT_EQ(tomlError("[io]\nttl = \"9999999999999999999h\"\n"),
              "t.toml:2: io.ttl: \"9999999999999999999h\" is too large: the longest duration is "
              "18446744073709551615ms");
    EXPECT_EQ(tomlError("[io]\nttl = 9223372036854775807\n"),
              "t.toml:2: io.ttl: 9223372036854775807 seconds is too large: the longest duration "
              "is 18446744073709551615ms");
    EXPECT_EQ(tomlError("[io]\nbuffer = -1\n"),
              "t.toml:2: io.buffer: -1 is negative; expected a size: an integer (bytes) or a "
              "string such as \"64KiB\", \"16MiB\", \"1GiB\"");
}

TEST(Schema, UnknownKeysSuggestTheClosest) {
    EXPECT_EQ(tomlError("[main]\n\nprot = 1\n"),
              "t.toml:3: unknown key 'main.prot' (did you mean main.port?)");
    EXPECT_EQ(tomlError("port = 1\n"), "t.toml:1: unknown key 'port' (did you mean main.port?)");
    EXPECT_EQ(tomlError("[elsewhere]\nx = 1\n"), "t.toml:1: unknown key 'elsewhere'");
    EXPECT_EQ(tomlError("[item.x]\n"), "t.toml:1: unknown key 'item' (did you mean items?)");
}

TEST(Schema, SyntaxErrorsHaveLineAndColumn) {
    EXPECT_EQ(tomlError("[main]\nport = 1\nport = 2\n").find("t.toml:3:"), 0u);
    EXPECT_EQ(tomlError("[main]\nhost = \"open\n").find("t.toml:2:"), 0u);
    EXPECT_EQ(tomlError("[main]\n[main]\n").find("t.toml:2:1: "), 0u);
    EXPECT_EQ(tomlError("\xff = 1\n").find("t.toml:1:1: "), 0u);  // not UTF-8
}

// toml++ 3.3's table of non-ASCII whitespace reaches __builtin_unreachable for these code points
// (marzer/tomlplusplus#190); found by config_fuzz ("\xd2\x8a"). Syntax errors, or values.
TEST(Schema, NonAsciiWhereWhitespaceMayBeIsASyntaxError) {
    for (std::string_view text : {"\xd2\x8a", "a = 1\xc2\xa7\n", "[main]\xc3\xa9\n",
                                  "[main]\nport = 1\xe3\x81\x82\n", "\xc2\xa7 = 1\n"}) {
        std::string e = tomlError(text);
        EXPECT_EQ(e.find("t.toml:"), 0u) << text << " → " << e;
    }
    auto l = toml("[main]\nhost = \"caf\xc3\xa9 \xd2\x8a \xe3\x81\x82\"\n");
    ASSERT_TRUE(l.has_value()) << l.error().message;
    EXPECT_EQ(l->opts.host, "caf\xc3\xa9 \xd2\x8a \xe3\x81\x82");
}

// toml++ 3.3 asserts a precondition of its key parser that these table headers break
// (marzer/tomlplusplus#301); found by config_fuzz ("[\x1c..."). An error, never an abort.
TEST(Schema, MalformedTableHeadersAreSyntaxErrors) {
    for (std::string_view text : {"[=\n", "[#]\n", "[[[1]]]\n", "[[=\n", "[[[]]\n",
                                  "[\x1cnamespaces.chat]\n", "[main]\n[ =]\n"}) {
        std::string e = tomlError(text);
        EXPECT_EQ(e.find("t.toml:"), 0u) << text;
        EXPECT_NE(e.find("expected bare key starting character"), std::string::npos)
            << text << " → " << e;
    }
}

TEST(Schema, SectionsAreTypedWithTheirLines) {
    auto l = toml(
        "[items.one]\non = true\ncount = 7\nttl = \"2m\"\nbytes = \"1KiB\"\n"
        "color = \"blue\"\n\n[items.two]\n");
    ASSERT_TRUE(l.has_value()) << l.error().message;
    ASSERT_EQ(l->opts.items.size(), 2u);
    const Item& one = l->opts.items.at("one");
    EXPECT_TRUE(one.on);
    EXPECT_EQ(one.count, 7u);
    EXPECT_EQ(one.ttl_ms, 120'000u);
    EXPECT_EQ(one.bytes, 1024u);
    EXPECT_EQ(one.color, Color::kBlue);
    EXPECT_EQ(l->opts.items.at("two").count, Item{}.count);
    EXPECT_EQ(l->sources.at("items.one"), "t.toml:1");
    EXPECT_EQ(l->sources.at("items.one.count"), "t.toml:3");
    EXPECT_EQ(l->sources.at("items.two"), "t.toml:8");
}

TEST(Schema, SectionErrorsNameFileLineKeyAndRule) {
    EXPECT_EQ(tomlError("\n[items.One]\n"),
              "t.toml:2: items.One: \"One\" is not a valid name; expected a name matching [a-z]+");
    EXPECT_EQ(tomlError("[items.one]\non = \"yes\"\n"),
              "t.toml:2: items.one.on: \"yes\" is a string; expected true or false");
    EXPECT_EQ(tomlError("[items.one]\ncolor = \"pink\"\n"),
              "t.toml:2: items.one.color: \"pink\" is not valid; expected one of red, green, blue");
    EXPECT_EQ(tomlError("[items.one]\ncount = -5\n"),
              "t.toml:2: items.one.count: -5 is negative; expected an integer from 0 to "
              "4294967295");
    EXPECT_EQ(tomlError("[items.one]\nttl = \"forever\"\n"),
              "t.toml:2: items.one.ttl: \"forever\" is not a duration; expected e.g. \"500ms\", "
              "\"25s\", \"2m\" or \"1h\"");
    EXPECT_EQ(tomlError("[items.one]\ncuont = 1\n"),
              "t.toml:2: unknown key 'items.one.cuont' (did you mean items.one.count?)");
    EXPECT_EQ(tomlError("[items]\none = 1\n"),
              "t.toml:2: items.one: 1 is an integer; expected a table [items.one]");
    EXPECT_EQ(tomlError("items = [1]\n"),
              "t.toml:1: items: the value is an array; expected [items.NAME] tables");
}

// toml++ keeps tables sorted by key; of several mistakes, the first in the file is reported.
TEST(Schema, TheFirstMistakeInTheFileIsReported) {
    EXPECT_EQ(tomlError("[main]\nprot = 1\n[items.one]\ncolor = \"pink\"\n"),
              "t.toml:2: unknown key 'main.prot' (did you mean main.port?)");
    EXPECT_EQ(tomlError("[items.one]\non = \"yes\"\ncolor = \"pink\"\n"),
              "t.toml:2: items.one.on: \"yes\" is a string; expected true or false");
    EXPECT_EQ(tomlError("[items.zed]\ncount = -1\n[items.One]\n"),
              "t.toml:2: items.zed.count: -1 is negative; expected an integer from 0 to "
              "4294967295");
    EXPECT_EQ(tomlError("[main]\nport = 1\nhost = 2\nfast = 3\n"),
              "t.toml:3: main.host: 2 is an integer; expected a string");
}

TEST(Schema, EnvironmentLayer) {
    char e1[] = "APP_PORT=9100";
    char e2[] = "APP_IO_TAGS=m, n";
    char e3[] = "PATH=/bin";
    char e4[] = "APP_FAST=false";
    char* envp[] = {e1, e2, e3, e4, nullptr};
    Loaded l;
    ASSERT_TRUE(schema().applyEnv(&l.opts, &l.sources, envp).has_value());
    EXPECT_EQ(l.opts.port, 9100);
    EXPECT_EQ(l.opts.tags, (std::vector<std::string>{"m", "n"}));
    EXPECT_FALSE(l.opts.fast);
    EXPECT_EQ(l.sources.at("main.port"), "env APP_PORT");
    ASSERT_TRUE(schema().applyEnv(&l.opts, &l.sources, nullptr).has_value());

    auto envError = [](const char* kv) {
        std::string copy(kv);
        char* envp1[] = {copy.data(), nullptr};
        Loaded x;
        auto r = schema().applyEnv(&x.opts, &x.sources, envp1);
        return r ? "(loaded)" : r.error().message;
    };
    EXPECT_EQ(envError("APP_PROT=1"), "env APP_PROT: unknown variable (did you mean APP_PORT?)");
    EXPECT_EQ(envError("APP_IO_BIG=1").find("env APP_IO_BIG: unknown variable"), 0u);  // no env
    EXPECT_EQ(envError("APP_ZZZZZZZZ=1"),
              "env APP_ZZZZZZZZ: unknown variable (APP_* variables name settings; see --help)");
    EXPECT_EQ(envError("APP_ITEMS_ONE_ON=true"),
              "env APP_ITEMS_ONE_ON: unknown variable ([items.NAME] tables come only from the "
              "config file)");
    EXPECT_EQ(envError("APP_PORT=70000"),
              "env APP_PORT: main.port: \"70000\" is out of range; expected an integer from 0 to "
              "65535");
    EXPECT_EQ(envError("APP_PORT=8o"),
              "env APP_PORT: main.port: \"8o\" is not an integer; expected an integer from 0 to "
              "65535");
    EXPECT_EQ(envError("APP_PORT=99999999999999999999"),
              "env APP_PORT: main.port: \"99999999999999999999\" is out of range; expected an "
              "integer from 0 to 65535");
    EXPECT_EQ(envError("APP_FAST=yes"),
              "env APP_FAST: main.fast: \"yes\" is not a boolean; expected true or false");
    EXPECT_EQ(envError("APP_IO_BUFFER=99999999999999999999KiB"),
              "env APP_IO_BUFFER: io.buffer: \"99999999999999999999KiB\" is too large: the "
              "largest size is 18446744073709551615 bytes");
    EXPECT_EQ(envError("APP_IO_COLOR=pink"),
              "env APP_IO_COLOR: io.color: \"pink\" is not valid; expected one of red, green, "
              "blue");
}

TEST(Schema, FlagsLayer) {
    std::vector<std::string> args = {"--port",   "1",      "--no-fast", "--buffer=2KiB",
                                     "--config", "f.toml", "--tags",    "u,v"};
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    auto cmd = schema().parseCommandLine(static_cast<int>(argv.size()), argv.data());
    ASSERT_TRUE(cmd.has_value()) << cmd.error().message;
    EXPECT_EQ(cmd->config_path, "f.toml");
    EXPECT_FALSE(cmd->help);
    Loaded l;
    ASSERT_TRUE(schema().applyFlags(&l.opts, &l.sources, *cmd).has_value());
    EXPECT_EQ(l.opts.port, 1);
    EXPECT_FALSE(l.opts.fast);
    EXPECT_EQ(l.opts.buffer, 2048u);
    EXPECT_EQ(l.opts.tags, (std::vector<std::string>{"u", "v"}));
    EXPECT_EQ(l.sources.at("main.fast"), "flag --no-fast");
    EXPECT_EQ(l.sources.at("io.buffer"), "flag --buffer");

    EXPECT_EQ(flagsError({"--fast=false"}), "(loaded)");
    EXPECT_EQ(flagsError({"--prot", "1"}), "unknown flag '--prot' (did you mean --port?)");
    EXPECT_EQ(flagsError({"--port"}), "flag --port: needs a value (an integer from 0 to 65535)");
    EXPECT_EQ(flagsError({"--port", "x"}),
              "flag --port: main.port: \"x\" is not an integer; expected an integer from 0 to "
              "65535");
    EXPECT_EQ(flagsError({"--no-port"}), "unknown flag '--no-port' (did you mean --port?)");
    EXPECT_EQ(flagsError({"--no-fast=1"}), "flag --no-fast: takes no value");
    EXPECT_EQ(flagsError({"--config"}), "flag --config: needs a file");
    EXPECT_EQ(flagsError({"stray"}),
              "unexpected argument 'stray' (settings are flags: --name value)");
    EXPECT_EQ(flagsError({"--timeout", "9999999999999999999h"}),
              "flag --timeout: io.timeout: \"9999999999999999999h\" is too large: the longest "
              "duration is 18446744073709551615ms");
    // --help wins over anything else, even errors.
    std::string h = "--help", bad = "--nope";
    char* hv[] = {bad.data(), h.data()};
    auto help = schema().parseCommandLine(2, hv);
    ASSERT_TRUE(help.has_value());
    EXPECT_TRUE(help->help);
}

TEST(Schema, LaterLayersWinAndKeepTheirSource) {
    Loaded l;
    ASSERT_TRUE(schema()
                    .applyToml(&l.opts, &l.sources,
                               "[main]\nport = 1\nhost = \"h\"\n[io]\nrate = 5\n", "f.toml")
                    .has_value());
    char e1[] = "APP_PORT=2";
    char e2[] = "APP_IO_RATE=6";
    char* envp[] = {e1, e2, nullptr};
    ASSERT_TRUE(schema().applyEnv(&l.opts, &l.sources, envp).has_value());
    std::string f = "--rate", v = "7";
    char* argv[] = {f.data(), v.data()};
    auto cmd = schema().parseCommandLine(2, argv);
    ASSERT_TRUE(cmd.has_value());
    ASSERT_TRUE(schema().applyFlags(&l.opts, &l.sources, *cmd).has_value());
    EXPECT_EQ(l.opts.host, "h");
    EXPECT_EQ(l.opts.port, 2);
    EXPECT_EQ(l.opts.rate, 7u);
    EXPECT_EQ(l.sources.at("main.host"), "f.toml:3");
    EXPECT_EQ(l.sources.at("main.port"), "env APP_PORT");
    EXPECT_EQ(l.sources.at("io.rate"), "flag --rate");
}

TEST(Schema, DescribeShowsValuesAndSources) {
    auto l = toml(
        "[main]\nport = 9000\n[io]\nsecret = \"hunter2\"\ntags = [\"q\\\"\"]\n"
        "[items.one]\ncount = 4\n");
    ASSERT_TRUE(l.has_value()) << l.error().message;
    l->opts.items["one"].ttl_ms = 5;  // changed after loading, as a normalize step would
    std::string d = schema().describe(l->opts, l->sources);
    EXPECT_NE(d.find("main.port = 9000"), std::string::npos) << d;
    EXPECT_NE(d.find("# t.toml:2\n"), std::string::npos) << d;
    EXPECT_NE(d.find("main.host = \"localhost\""), std::string::npos) << d;
    EXPECT_NE(d.find("io.buffer = \"64KiB\""), std::string::npos) << d;
    EXPECT_NE(d.find("io.timeout = \"25s\""), std::string::npos) << d;
    EXPECT_NE(d.find("# derived: twice the ttl\n"), std::string::npos) << d;
    EXPECT_NE(d.find("io.secret = \"<set>\""), std::string::npos) << d;
    EXPECT_EQ(d.find("hunter2"), std::string::npos) << d;
    EXPECT_NE(d.find("io.tags = [\"q\\\"\"]"), std::string::npos) << d;
    EXPECT_NE(d.find("io.color = \"green\""), std::string::npos) << d;
    EXPECT_NE(d.find("# [items.one] t.toml:6\n"), std::string::npos) << d;
    size_t count = d.find("items.one.count = 4");
    ASSERT_NE(count, std::string::npos) << d;
    EXPECT_NE(d.find("# t.toml:7\n", count), std::string::npos) << d;
    size_t ttl = d.find("items.one.ttl = \"5ms\"");
    ASSERT_NE(ttl, std::string::npos) << d;
    EXPECT_EQ(d.find("# derived\n", ttl), d.find('#', ttl)) << d;
    size_t on = d.find("items.one.on = false");
    ASSERT_NE(on, std::string::npos) << d;
    EXPECT_EQ(d.find("# default\n", on), d.find('#', on)) << d;
}

TEST(Schema, HelpPrintsDefaultsFromTheStruct) {
    std::string h = schema().help();
    EXPECT_NE(h.find("--port V"), std::string::npos) << h;
    EXPECT_NE(h.find("[main.port] integer 0..65535, env APP_PORT, default 8080, needs a restart"),
              std::string::npos)
        << h;
    EXPECT_NE(h.find("[io.buffer] size, env APP_IO_BUFFER, default 64KiB"), std::string::npos) << h;
    EXPECT_NE(h.find("default 25s (derived: twice the ttl)"), std::string::npos) << h;
    EXPECT_NE(h.find("[io.ttl] duration, env APP_IO_TTL, default 0s, applies on SIGHUP"),
              std::string::npos)
        << h;
    EXPECT_NE(h.find("[io.color] red|green|blue, env APP_IO_COLOR, default green"),
              std::string::npos)
        << h;
    EXPECT_NE(h.find("(no flag)"), std::string::npos) << h;
    EXPECT_NE(h.find("[io.big] integer, default 0"), std::string::npos) << h;
    EXPECT_NE(h.find("--fast "), std::string::npos) << h;
    EXPECT_EQ(h.find("--fast V"), std::string::npos) << h;
    EXPECT_NE(h.find("[items.NAME] tables"), std::string::npos) << h;
    EXPECT_NE(h.find("NAME is [a-z]+; applies on SIGHUP"), std::string::npos) << h;
    EXPECT_NE(h.find("integer 0..4294967295, default 3"), std::string::npos) << h;
    // Every setting's default is the formatted value of the default-constructed struct.
    const Opts d;
    for (const auto& s : schema().settings()) {
        EXPECT_NE(h.find("default " + SchemaBase::formatPlain(s, s.get(&d))), std::string::npos)
            << s.key;
    }
}

TEST(Schema, ChangedListsKeysOfOneApplyKind) {
    Opts a, b;
    b.port = 1;
    b.ttl_ms = 5;
    b.level = base::LogLevel::kError;
    b.items["x"].on = true;
    EXPECT_EQ(schema().changed(a, b, Apply::kRestart), std::vector<std::string>{"main.port"});
    EXPECT_EQ(schema().changed(a, b, Apply::kReload),
              (std::vector<std::string>{"io.ttl", "main.level", "items.x"}));
    a.items["x"];
    EXPECT_EQ(schema().changed(a, b, Apply::kReload),
              (std::vector<std::string>{"io.ttl", "main.level", "items.x.on"}));
    EXPECT_TRUE(schema().changed(a, a, Apply::kReload).empty());
}

TEST(Schema, EveryPrefixOfADocumentLoadsOrSaysWhy) {
    const std::string doc =
        "[main]\nport = 9000\nhost = \"a\\tb\"\n[io]\ntags = [\"x\", 'y']\nttl = \"2m\"\n"
        "[items.one]\non = true\ncolor = \"red\"\n";
    for (size_t n = 0; n <= doc.size(); ++n) {
        auto l = toml(std::string_view(doc).substr(0, n));
        if (!l) {
            EXPECT_EQ(l.error().message.find("t.toml:"), 0u) << n << ": " << l.error().message;
        }
    }
    ASSERT_TRUE(toml(doc).has_value());
}

}  // namespace
}  // namespace sb::config
