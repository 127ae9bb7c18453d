#include "config/toml.h"

#include <gtest/gtest.h>

namespace sb::config {
namespace {

TEST(Toml, TablesKeysAndValueTypes) {
    auto doc = parseToml(R"(# switchboard
[server]
port = 8080            # comment
host = "0.0.0.0"
threads = 0
ping_interval = '25s'
compression = true
ratio = 0.5
origins = ["https://a.example", "https://b.example",]

[namespaces.chat]
presence = true
"quoted key" = "x\ty\u00e9"
)");
    ASSERT_TRUE(doc.has_value()) << doc.error().message;
    EXPECT_EQ(std::get<int64_t>(doc->at("server.port").v), 8080);
    EXPECT_EQ(doc->at("server.port").line, 3);
    EXPECT_EQ(std::get<std::string>(doc->at("server.host").v), "0.0.0.0");
    EXPECT_EQ(std::get<std::string>(doc->at("server.ping_interval").v), "25s");
    EXPECT_TRUE(std::get<bool>(doc->at("server.compression").v));
    EXPECT_DOUBLE_EQ(std::get<double>(doc->at("server.ratio").v), 0.5);
    EXPECT_EQ(std::get<TomlArray>(doc->at("server.origins").v).size(), 2u);
    EXPECT_TRUE(std::get<bool>(doc->at("namespaces.chat.presence").v));
    EXPECT_EQ(doc->at("namespaces.chat.presence").line, 12);
    EXPECT_EQ(std::get<std::string>(doc->at("namespaces.chat.quoted key").v), "x\ty\xc3\xa9");
}

TEST(Toml, ErrorsNameTheLine) {
    struct Case {
        const char* text;
        const char* needle;
    };
    const Case cases[] = {
        {"a = 1\na = 2\n", "line 2: key 'a' is set twice"},
        {"[t]\n[t]\n", "line 2: table [t] is defined twice"},
        {"a = hello\n", "line 1: 'hello' is not a valid value"},
        {"a = \"open\n", "line 1: unterminated string"},
        {"a = {x = 1}\n", "inline tables are not supported"},
        {"[[arr]]\n", "arrays of tables"},
        {"a 1\n", "expected '='"},
        {"a = 1 b\n", "unexpected text after the value"},
        {"a = \"\\q\"\n", "unknown escape"},
        {"a = [1, 2\n", "expected ',' or ']'"},
    };
    for (const auto& c : cases) {
        auto doc = parseToml(c.text);
        ASSERT_FALSE(doc.has_value()) << c.text;
        EXPECT_NE(doc.error().message.find(c.needle), std::string::npos)
            << c.text << " → " << doc.error().message;
    }
}

}  // namespace
}  // namespace sb::config
