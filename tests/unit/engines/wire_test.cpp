#include "engines/redis/wire.h"

#include <gtest/gtest.h>

#include "engines/redis/redis_conn.h"

namespace sb::engines::redis {
namespace {

TEST(RedisWire, PresenceValuesCarryAnyBytes) {
    broker::ClientInfo who{"c_ab_0_1", std::string("al\nice:\0x", 9), "{\"a\":\"1:2\"}"};
    const std::string v = encodePresence(true, "3fa2c1d0", who);
    EXPECT_EQ(v[0], '1');
    auto back = decodePresence(v);
    ASSERT_NE(back, nullptr);
    EXPECT_EQ(back->client_id, who.client_id);
    EXPECT_EQ(back->user, who.user);
    EXPECT_EQ(back->info_json, who.info_json);
    EXPECT_EQ(encodePresence(false, "n", who)[0], '0');
}

TEST(RedisWire, MalformedPresenceValuesAreRefused) {
    for (std::string_view bad :
         {"", "1node", "1node\n", "1n\n3:ab", "1n\n2:ab2:cd", "1n\nx:ab0:0:", "1n\n1:a1:b1:cextra",
          "1n\n99999999999999999999:a0:0:", "1n\n01:a0:0:"}) {
        EXPECT_EQ(decodePresence(bad), nullptr) << bad;
    }
    EXPECT_NE(decodePresence("1n\n1:a0:0:"), nullptr);
}

TEST(RedisWire, PublicationMessages) {
    auto p = parsePublication("e_1\n42\n1700000000000\n{\"x\":\"a\nb\"}");
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->epoch, "e_1");
    EXPECT_EQ(p->offset, 42u);
    EXPECT_EQ(p->time_ms, 1700000000000u);
    EXPECT_EQ(p->data, "{\"x\":\"a\nb\"}");  // data may hold newlines: it is the rest
    EXPECT_TRUE(parsePublication("e\n1\n2\n").has_value());  // empty data
    for (std::string_view bad : {"", "e_1", "e_1\n4", "e_1\n4\n5", "\n1\n2\nd", "e\nx\n2\nd",
                                 "e\n1\n-2\nd", "e\n\n2\nd"}) {
        EXPECT_FALSE(parsePublication(bad).has_value()) << bad;
    }
}

TEST(RedisWire, RepliesParseNestedAndInPieces) {
    const std::string bytes =
        "*2\r\n$4\r\ne_ab\r\n*2\r\n:7\r\n$-1\r\n+OK\r\n-ERR "
        "nope\r\n*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n"
        "$0\r\n\r\n";
    auto all = parseReplies(bytes);
    ASSERT_TRUE(all.has_value());
    ASSERT_EQ(all->size(), 4u);
    EXPECT_EQ((*all)[0].elements[0].str, "e_ab");
    EXPECT_EQ((*all)[0].elements[1].elements[0].integer, 7);
    EXPECT_EQ((*all)[0].elements[1].elements[1].type, Reply::Type::kNil);
    EXPECT_EQ((*all)[1].type, Reply::Type::kStatus);
    EXPECT_TRUE((*all)[2].isError());
    EXPECT_EQ((*all)[3].elements[2].str, "");
    // Every prefix parses to the complete replies it holds, never more, never an error.
    size_t last = 0;
    for (size_t cut = 0; cut <= bytes.size(); ++cut) {
        auto part = parseReplies(std::string_view(bytes).substr(0, cut));
        ASSERT_TRUE(part.has_value()) << cut;
        EXPECT_GE(part->size(), last);
        last = part->size();
    }
    EXPECT_EQ(last, 4u);
    EXPECT_FALSE(parseReplies("?bogus\r\n").has_value());
}

TEST(RedisWire, AnArrayHeaderDoesNotReserveWhatItClaims) {
    // hiredis's own reply objects would allocate 1.4 G element slots for this header (found by
    // fuzz/redis_wire_fuzz.cpp); ours grow with the elements that arrive.
    auto r = parseReplies("*1444444444\r\n*0\r\n:6\r\n");
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(r->empty());  // incomplete: two of 1,444,444,444 elements
    auto nested = parseReplies("*2\r\n*2147483647\r\n:1\r\n");
    ASSERT_TRUE(nested.has_value());
    EXPECT_TRUE(nested->empty());
}

TEST(RedisWire, CommandsAreRespArraysOfBulkStrings) {
    std::string out;
    encodeCommand(&out, {"SET", "k", std::string_view("a\r\nb", 4), ""});
    EXPECT_EQ(out, "*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n$0\r\n\r\n");
    auto back = parseReplies(out);  // an array of bulk strings is also a valid reply
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ((*back)[0].elements[2].str, "a\r\nb");
}

}  // namespace
}  // namespace sb::engines::redis
