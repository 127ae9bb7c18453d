// The bench scenarios against a tiny in-test server built on our own sb::server::App: relays
// that drop, reorder or duplicate publications on purpose prove the fanout checks; an echo
// route that cuts replies short, one that kicks connections (4000) and a missing route prove
// the error accounting; the native protocol runs against the real messaging layer; and
// `--procs 2` forks two workers whose results merge to the same counts.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/delivery.h"
#include "bench/runner.h"
#include "bench/workers.h"
#include "server/app.h"
#include "server/messaging.h"
#include "server/metrics.h"

namespace sb::bench {
namespace {

using transport::WebSocket;

// A broadcast room: every message goes to every other member, with an optional fault.
struct Relay {
    enum class Fault { kNone, kDrop, kReorder, kDuplicate };
    Fault fault = Fault::kNone;
    std::vector<WebSocket*> members;
    struct Held {
        WebSocket* from;
        ws::Opcode op;
        std::string data;
    };
    std::map<uint32_t, Held> held;  // kReorder: per publisher, the even message held back

    void broadcast(WebSocket* from, ws::Opcode op, std::string_view data) {
        for (WebSocket* m : members) {
            if (m != from) {
                m->send(op, {reinterpret_cast<const uint8_t*>(data.data()), data.size()});
            }
        }
    }
    void onMessage(WebSocket& ws, ws::Opcode op, std::span<uint8_t> d) {
        std::string_view data(reinterpret_cast<const char*>(d.data()), d.size());
        Stamp s;
        const bool stamped = findStamp(data, &s);
        switch (fault) {
            case Fault::kNone:
                broadcast(&ws, op, data);
                return;
            case Fault::kDrop:  // every seq % 10 == 3 vanishes
                if (!stamped || s.seq % 10 != 3) {
                    broadcast(&ws, op, data);
                }
                return;
            case Fault::kReorder:  // each even seq goes out after the following odd one
                if (stamped && s.seq % 2 == 0) {
                    held[s.publisher] = Held{&ws, op, std::string(data)};
                    return;
                }
                broadcast(&ws, op, data);
                if (auto it = held.find(s.publisher); stamped && it != held.end()) {
                    broadcast(it->second.from, it->second.op, it->second.data);
                    held.erase(it);
                }
                return;
            case Fault::kDuplicate:  // every seq % 10 == 0 twice
                broadcast(&ws, op, data);
                if (stamped && s.seq % 10 == 0) {
                    broadcast(&ws, op, data);
                }
                return;
        }
    }
};

// The native protocol in miniature, with one fault: `connect` and `subscribe` are answered,
// a publish goes to every subscriber as a `message` of channel bench.0 whose offset skips one
// number after every publication with seq % 10 == 3 (the stream position check must see it).
struct FakeNative {
    std::vector<WebSocket*> subscribers;
    uint64_t offset = 0;

    static void sendText(WebSocket& ws, const std::string& s) {
        ws.send(ws::Opcode::kText, {reinterpret_cast<const uint8_t*>(s.data()), s.size()});
    }
    void onMessage(WebSocket& ws, std::string_view msg) {
        if (msg.find(R"("type":"connect")") != std::string_view::npos) {
            sendText(ws, R"({"type":"connected","id":"c","client":"x"})");
        } else if (msg.find(R"("type":"subscribe")") != std::string_view::npos) {
            subscribers.push_back(&ws);
            sendText(
                ws,
                R"({"type":"subscribed","id":"s","channel":"bench.0","epoch":"e1","offset":0})");
        } else if (msg.find(R"("type":"publish")") != std::string_view::npos) {
            Stamp s;
            const size_t data = msg.find("sb1:");
            if (data == std::string_view::npos || !findStamp(msg, &s)) {
                return;
            }
            const std::string_view payload = msg.substr(data, msg.rfind('"') - data);
            offset += 1;
            const std::string out =
                R"({"type":"message","channel":"bench.0","epoch":"e1","offset":)" +
                std::to_string(offset) + R"(,"data":")" + std::string(payload) + "\"}";
            for (WebSocket* sub : subscribers) {
                sendText(*sub, out);
            }
            if (s.seq % 10 == 3) {
                offset += 1;  // the fault: a position nobody receives
            }
            const size_t id = msg.find(R"("id":)");
            sendText(ws, R"({"type":"published","id":)" +
                             std::string(msg.substr(id + 5, msg.find(',', id) - id - 5)) + "}");
        }
    }
};

class TestServer {
public:
    // Messages a /kick connection has sent.
    struct Count final : transport::SocketData {
        int n = 0;
    };

    TestServer() : app_(options()) {
        server::WsRoute echo;
        echo.behavior.on_message = [](WebSocket& ws, ws::Opcode op, std::span<uint8_t> d) {
            ws.send(op, d);
        };
        app_.ws("/echo", echo);
        server::WsRoute shorter;
        shorter.behavior.on_message = [](WebSocket& ws, ws::Opcode op, std::span<uint8_t> d) {
            ws.send(op, d.subspan(0, d.size() / 2));
        };
        app_.ws("/short", shorter);
        server::WsRoute kick;
        kick.behavior.on_message = [this](WebSocket& ws, ws::Opcode op, std::span<uint8_t> d) {
            ws.send(op, d);
            if (ws.data<Count>() == nullptr) {
                ws.setData(std::make_unique<Count>());
            }
            const int n = ++ws.data<Count>()->n;
            if (n == 5 && kicked_ < 2) {
                ++kicked_;
                ws.end(4000, "kicked by the test");
            }
        };
        app_.ws("/kick", kick);
        // Echo routes that count the connections they got: which node a connection went to.
        for (size_t i = 0; i < opened_.size(); ++i) {
            server::WsRoute counted;
            counted.behavior.on_open = [this, i](WebSocket&) { ++opened_[i]; };
            counted.behavior.on_message = [](WebSocket& ws, ws::Opcode op, std::span<uint8_t> d) {
                ws.send(op, d);
            };
            app_.ws("/node/" + std::to_string(i), counted);
        }
        addRelay("/bcast/0", Relay::Fault::kNone);
        addRelay("/bcast/1", Relay::Fault::kNone);
        addRelay("/drop/0", Relay::Fault::kDrop);
        addRelay("/reorder/0", Relay::Fault::kReorder);
        addRelay("/dup/0", Relay::Fault::kDuplicate);
        server::WsRoute fake;
        fake.behavior.ping_interval_ms = 0;
        fake.behavior.idle_timeout_ms = 0;
        fake.behavior.on_close = [this](WebSocket& ws, uint16_t, std::string_view) {
            std::erase(fake_.subscribers, &ws);
        };
        fake.behavior.on_message = [this](WebSocket& ws, ws::Opcode, std::span<uint8_t> d) {
            fake_.onMessage(ws,
                            std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
        };
        app_.ws("/fake-native", std::move(fake));

        transport::WebSocketBehavior base;
        base.ping_interval_ms = 0;
        base.idle_timeout_ms = 0;
        messaging_ = std::make_unique<server::Messaging>(app_, messaging::Options{}, base,
                                                         ws::DeflateServerPolicy{.enabled = false});
        EXPECT_TRUE(app_.listen().has_value());
        messaging_->attach();
        thread_ = std::thread([this] { app_.run(); });
    }
    ~TestServer() {
        app_.stop();
        thread_.join();
    }
    std::string url(const std::string& path) const {
        return "ws://127.0.0.1:" + std::to_string(app_.port()) + path;
    }
    // Connections /node/<i> has accepted.
    int opened(size_t i) const { return opened_.at(i).load(); }

private:
    static server::ServerOptions options() {
        server::ServerOptions o;
        o.host = "127.0.0.1";
        o.port = 0;
        o.threads = 1;  // relays keep plain member lists: one loop
        o.handle_signals = false;
        o.print_listening = false;
        o.shutdown_timeout_ms = 1000;
        return o;
    }
    void addRelay(const std::string& path, Relay::Fault fault) {
        auto relay = std::make_unique<Relay>();
        relay->fault = fault;
        Relay* r = relay.get();
        relays_.push_back(std::move(relay));
        server::WsRoute route;
        route.behavior.ping_interval_ms = 0;
        route.behavior.idle_timeout_ms = 0;
        route.behavior.on_open = [r](WebSocket& ws) { r->members.push_back(&ws); };
        route.behavior.on_close = [r](WebSocket& ws, uint16_t, std::string_view) {
            std::erase(r->members, &ws);
        };
        route.behavior.on_message = [r](WebSocket& ws, ws::Opcode op, std::span<uint8_t> d) {
            r->onMessage(ws, op, d);
        };
        app_.ws(path, std::move(route));
    }

    server::App app_;
    FakeNative fake_;
    int kicked_ = 0;
    std::array<std::atomic<int>, 3> opened_{};
    std::vector<std::unique_ptr<Relay>> relays_;
    std::unique_ptr<server::Messaging> messaging_;
    std::thread thread_;
};

BenchOptions baseOptions(Scenario s, const std::string& url) {
    BenchOptions o;
    o.scenario = s;
    o.url = url;
    o.drain_s = 1;
    o.connect_timeout_ms = 5000;
    return o;
}

BenchResult run(const BenchOptions& o) {
    auto r = runScenario(o, nullptr, nullptr);
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return r ? std::move(*r) : BenchResult{};
}

// Plain fanout: 2 publishers x 50 messages into one room of 6 subscribers.
BenchOptions plainFanout(const std::string& url) {
    BenchOptions o = baseOptions(Scenario::kFanout, url);
    o.mode = Mode::kPlain;
    o.conns = 6;
    o.publishers = 2;
    o.rooms = 1;
    o.messages = 50;
    o.interval_ms = 2;
    o.size = 48;
    return o;
}

constexpr uint64_t kPlainExpected = 2 * 50 * 6;

TEST(BenchScenario, EchoCountsEveryRoundTrip) {
    TestServer server;
    BenchOptions o = baseOptions(Scenario::kEcho, server.url("/echo"));
    o.conns = 5;
    o.messages = 20;
    o.window = 3;
    BenchResult r = run(o);
    EXPECT_EQ(r.counters.connects_ok, 5u);
    EXPECT_EQ(r.counters.msgs_sent, 100u);
    EXPECT_EQ(r.counters.msgs_received, 100u);
    EXPECT_EQ(r.latency_ns.count(), 100u);
    EXPECT_EQ(r.connect_ns.count(), 5u);
    EXPECT_EQ(r.counters.unanswered, 0u);
    EXPECT_EQ(r.counters.closed_clean, 5u);
    EXPECT_TRUE(r.errors.empty());
    uint64_t timeline_received = 0;
    for (const TimelineSample& s : r.timeline.samples()) {
        timeline_received += s.received;
    }
    EXPECT_EQ(timeline_received, 100u);
}

TEST(BenchScenario, PacedEchoBoundedByDuration) {
    TestServer server;
    BenchOptions o = baseOptions(Scenario::kEcho, server.url("/echo"));
    o.conns = 4;
    o.duration_s = 0.5;
    o.interval_ms = 20;
    BenchResult r = run(o);
    EXPECT_GT(r.counters.msgs_sent, 0u);
    EXPECT_EQ(r.counters.msgs_received, r.counters.msgs_sent);
    EXPECT_LE(r.counters.msgs_sent, 4u * (500 / 20 + 2));  // never more than the pace allows
}

TEST(BenchScenario, ShortRepliesAreBad) {
    TestServer server;
    BenchOptions o = baseOptions(Scenario::kEcho, server.url("/short"));
    o.conns = 2;
    o.messages = 10;
    o.size = 40;
    BenchResult r = run(o);
    EXPECT_EQ(r.counters.bad_replies, 20u);
    EXPECT_EQ(r.errors.at("bad_reply"), 20u);
    EXPECT_EQ(r.latency_ns.count(), 0u);
}

TEST(BenchScenario, KickedConnectionsReconnectAndFinish) {
    TestServer server;
    BenchOptions o = baseOptions(Scenario::kEcho, server.url("/kick"));
    o.conns = 2;
    o.messages = 10;
    BenchResult r = run(o);
    EXPECT_EQ(r.counters.drops, 2u);
    EXPECT_EQ(r.counters.reconnects, 2u);
    EXPECT_EQ(r.errors.at("close_4000"), 2u);
    EXPECT_EQ(r.counters.msgs_sent, 20u);
    EXPECT_EQ(r.counters.msgs_received + r.counters.unanswered, 20u);
    EXPECT_EQ(r.counters.connects_ok, 4u);
    EXPECT_EQ(r.counters.closed_clean, 2u);
}

TEST(BenchScenario, HandshakeStatusAndRefusedAreErrorKinds) {
    TestServer server;
    BenchOptions o = baseOptions(Scenario::kConnect, server.url("/missing"));
    o.conns = 3;
    o.hold_s = 0;
    BenchResult r = run(o);
    EXPECT_EQ(r.counters.connects_failed, 3u);
    EXPECT_EQ(r.errors.at("handshake_status_404"), 3u);

    o.url = "ws://127.0.0.1:1/";  // nothing listens on port 1
    r = run(o);
    EXPECT_EQ(r.counters.connects_failed, 3u);
    EXPECT_EQ(r.errors.at("refused"), 3u);
}

TEST(BenchScenario, ConnectHoldsThenClosesCleanly) {
    TestServer server;
    BenchOptions o = baseOptions(Scenario::kConnect, server.url("/echo"));
    o.conns = 40;
    o.connect_rate = 400;  // ~0.1 s of ramp
    o.hold_s = 0.2;
    BenchResult r = run(o);
    EXPECT_EQ(r.counters.connects_ok, 40u);
    EXPECT_EQ(r.counters.open_peak, 40u);
    EXPECT_EQ(r.counters.closed_clean, 40u);
    EXPECT_EQ(r.connect_ns.count(), 40u);
    EXPECT_TRUE(r.errors.empty());
}

TEST(BenchScenario, FanoutThroughAFaithfulRelayIsExact) {
    TestServer server;
    BenchResult r = run(plainFanout(server.url("/bcast/0")));
    EXPECT_EQ(r.counters.expected, kPlainExpected);
    EXPECT_EQ(r.counters.deliveries, kPlainExpected);
    EXPECT_EQ(r.counters.lost, 0u);
    EXPECT_EQ(r.counters.duplicates, 0u);
    EXPECT_EQ(r.counters.out_of_order, 0u);
    EXPECT_EQ(r.latency_ns.count(), kPlainExpected);
    EXPECT_TRUE(r.errors.empty());
}

TEST(BenchScenario, FanoutDetectsLoss) {
    TestServer server;
    BenchResult r = run(plainFanout(server.url("/drop/0")));
    const uint64_t dropped = 2 * 5 * 6;  // 5 of 50 per publisher, to each of 6 subscribers
    EXPECT_EQ(r.counters.expected, kPlainExpected);
    EXPECT_EQ(r.counters.deliveries, kPlainExpected - dropped);
    EXPECT_EQ(r.counters.lost, dropped);
    EXPECT_EQ(r.counters.duplicates, 0u);
    EXPECT_EQ(r.counters.out_of_order, 0u);
}

TEST(BenchScenario, FanoutDetectsReorderingWithoutCallingItLoss) {
    TestServer server;
    BenchResult r = run(plainFanout(server.url("/reorder/0")));
    EXPECT_EQ(r.counters.deliveries, kPlainExpected);
    EXPECT_EQ(r.counters.lost, 0u);
    EXPECT_EQ(r.counters.duplicates, 0u);
    EXPECT_EQ(r.counters.out_of_order, 2u * 25 * 6);  // every even seq arrives late
}

TEST(BenchScenario, FanoutDetectsDuplicates) {
    TestServer server;
    BenchResult r = run(plainFanout(server.url("/dup/0")));
    EXPECT_EQ(r.counters.deliveries, kPlainExpected);
    EXPECT_EQ(r.counters.lost, 0u);
    EXPECT_EQ(r.counters.duplicates, 2u * 5 * 6);
    EXPECT_EQ(r.counters.out_of_order, 0u);
    EXPECT_EQ(r.counters.msgs_received, kPlainExpected + 2u * 5 * 6);
}

TEST(BenchScenario, PlainFanoutRoomsFromTheUrl) {
    TestServer server;
    BenchOptions o = plainFanout(server.url("/bcast/{room}"));
    o.rooms = 2;  // publisher 0 and subscribers 0,2,4 in room 0; the others in room 1
    BenchResult r = run(o);
    EXPECT_EQ(r.counters.expected, 50u * 3 + 50u * 3);
    EXPECT_EQ(r.counters.deliveries, r.counters.expected);
    EXPECT_EQ(r.counters.foreign, 0u);
}

TEST(BenchScenario, NativeFanoutAgainstTheMessagingLayer) {
    TestServer server;
    BenchOptions o = baseOptions(Scenario::kFanout, server.url("/ws"));
    o.mode = Mode::kNative;
    o.conns = 10;
    o.publishers = 2;
    o.rooms = 2;
    o.messages = 30;
    o.window = 4;  // as fast as the `published` acks come back
    BenchResult r = run(o);
    EXPECT_EQ(r.counters.connects_ok, 12u);
    EXPECT_EQ(r.counters.publishes_acked, 60u);
    EXPECT_EQ(r.counters.expected, 2u * 30 * 5);
    EXPECT_EQ(r.counters.deliveries, r.counters.expected);
    EXPECT_EQ(r.counters.lost + r.counters.duplicates + r.counters.out_of_order, 0u);
    EXPECT_TRUE(r.errors.empty());
}

TEST(BenchScenario, FanoutToStompSubscribers) {
    // Native publishers, subscribers over STOMP on the same /ws (docs/stomp.md): the same
    // channels ("bench.N", spelled /topic/default:bench.N), every delivery once and in order.
    TestServer server;
    BenchOptions o = baseOptions(Scenario::kFanout, server.url("/ws"));
    o.mode = Mode::kNative;
    o.transport = Transport::kStomp;
    o.conns = 10;
    o.publishers = 2;
    o.rooms = 2;
    o.messages = 30;
    o.window = 4;
    BenchResult r = run(o);
    EXPECT_EQ(r.counters.connects_ok, 12u);
    EXPECT_EQ(r.counters.publishes_acked, 60u);
    EXPECT_EQ(r.counters.expected, 2u * 30 * 5);
    EXPECT_EQ(r.counters.deliveries, r.counters.expected);
    EXPECT_EQ(r.counters.lost + r.counters.duplicates + r.counters.out_of_order, 0u);
    EXPECT_TRUE(r.errors.empty());
}

TEST(BenchScenario, NativeEchoUsesPingPong) {
    TestServer server;
    BenchOptions o = baseOptions(Scenario::kEcho, server.url("/ws"));
    o.mode = Mode::kNative;
    o.conns = 3;
    o.messages = 10;
    BenchResult r = run(o);
    EXPECT_EQ(r.counters.msgs_received, 30u);
    EXPECT_EQ(r.latency_ns.count(), 30u);
    EXPECT_TRUE(r.errors.empty());
}

TEST(BenchScenario, NativeErrorsAreCountedByCode) {
    TestServer server;
    BenchOptions o = baseOptions(Scenario::kFanout, server.url("/ws"));
    o.mode = Mode::kNative;
    o.conns = 2;
    o.publishers = 1;
    o.messages = 5;
    o.channel_prefix = "nosuchns:";  // unknown_namespace for subscribe and publish
    BenchResult r = run(o);
    EXPECT_EQ(r.errors.at("error_unknown_namespace"), 2u + 5u);
    EXPECT_EQ(r.counters.publishes_acked, 0u);
}

TEST(BenchScenario, ConnectionsSpreadRoundRobinOverUrls) {
    TestServer server;
    BenchOptions o = baseOptions(Scenario::kEcho, server.url("/node/0"));
    o.urls = {server.url("/node/0"), server.url("/node/1"), server.url("/node/2")};
    o.conns = 7;  // 0,3,6 -> node 0; 1,4 -> node 1; 2,5 -> node 2
    o.messages = 3;
    BenchResult r = run(o);
    EXPECT_EQ(r.counters.msgs_received, 21u);
    EXPECT_TRUE(r.errors.empty());
    EXPECT_EQ(server.opened(0), 3);
    EXPECT_EQ(server.opened(1), 2);
    EXPECT_EQ(server.opened(2), 2);
}

TEST(BenchScenario, PublishersGoToThePublishUrl) {
    TestServer server;
    // Plain fanout: subscribers over two relays' URLs would miss what is published on the
    // other, so both subscriber URLs name the relay the publishers use and the count proves
    // that no publisher went to the first --url (a counting echo route).
    BenchOptions o = plainFanout(server.url("/bcast/0"));
    o.urls = {server.url("/bcast/0"), server.url("/bcast/0?node=1")};
    o.publish_urls = {server.url("/bcast/0?publishers")};
    BenchResult r = run(o);
    EXPECT_EQ(r.counters.deliveries, kPlainExpected);
    EXPECT_EQ(r.counters.lost, 0u);
    EXPECT_TRUE(r.errors.empty());

    BenchOptions wrong = plainFanout(server.url("/node/0"));
    wrong.conns = 2;
    wrong.messages = 2;
    wrong.drain_s = 0.2;
    wrong.publish_urls = {server.url("/node/1")};
    BenchResult w = run(wrong);
    EXPECT_EQ(w.counters.deliveries, 0u);  // echo routes relay nothing to the subscribers
    EXPECT_EQ(server.opened(0), 2);        // the subscribers
    EXPECT_EQ(server.opened(1), 2);        // the 2 publishers, nowhere else
}

TEST(BenchScenario, NativeFanoutOverSeveralUrlsIsExact) {
    TestServer server;
    // Three "nodes" that are one server (the query string does not change the route): every
    // subscriber, wherever it connected, gets every publication of its room.
    BenchOptions o = baseOptions(Scenario::kFanout, server.url("/ws?n=0"));
    o.urls = {server.url("/ws?n=0"), server.url("/ws?n=1"), server.url("/ws?n=2")};
    o.publish_urls = {server.url("/ws?publishers")};
    o.mode = Mode::kNative;
    o.conns = 12;
    o.publishers = 2;
    o.rooms = 2;
    o.messages = 20;
    o.window = 4;
    BenchResult r = run(o);
    EXPECT_EQ(r.counters.connects_ok, 14u);
    EXPECT_EQ(r.counters.expected, 2u * 20 * 6);
    EXPECT_EQ(r.counters.deliveries, r.counters.expected);
    EXPECT_EQ(r.counters.lost + r.counters.duplicates + r.counters.out_of_order, 0u);
    EXPECT_TRUE(r.errors.empty());
}

TEST(BenchScenario, PacedPublishersOneMessagePerSecondPerRoom) {
    TestServer server;
    // The cluster bench's load in small: rooms = publishers, each paced at --interval; every
    // subscriber receives one message per interval from its room's publisher.
    BenchOptions o = baseOptions(Scenario::kFanout, server.url("/ws"));
    o.mode = Mode::kNative;
    o.conns = 40;
    o.publishers = 4;
    o.rooms = 4;
    o.interval_ms = 100;
    o.messages = 5;
    BenchResult r = run(o);
    EXPECT_EQ(r.counters.publishes_acked, 4u * 5);
    EXPECT_EQ(r.counters.expected, 40u * 5);
    EXPECT_EQ(r.counters.deliveries, r.counters.expected);
    EXPECT_EQ(r.counters.lost, 0u);
    EXPECT_TRUE(r.errors.empty());
}

TEST(BenchScenario, NativeFanoutChecksTheStreamPosition) {
    // Against the messaging layer every offset is the last + 1.
    TestServer server;
    BenchOptions o = baseOptions(Scenario::kFanout, server.url("/ws"));
    o.mode = Mode::kNative;
    o.conns = 4;
    o.messages = 50;
    o.window = 8;
    BenchResult r = run(o);
    EXPECT_EQ(r.counters.deliveries, 4u * 50);
    EXPECT_EQ(r.counters.offset_errors, 0u);
    EXPECT_TRUE(r.errors.empty());

    // A server that skips positions: 5 of 50 publications are followed by a missing offset,
    // seen by each of the 4 subscribers (but for the last one, seq 43: 4 holes each).
    o.url = server.url("/fake-native");
    o.urls.clear();
    o.window = 1;  // one publish at a time: the fake answers in order
    BenchResult f = run(o);
    EXPECT_EQ(f.counters.deliveries, 4u * 50);
    EXPECT_EQ(f.counters.lost, 0u);
    EXPECT_EQ(f.counters.offset_errors, 4u * 5);
    EXPECT_EQ(f.errors.at("offset_error"), 4u * 5);
}

TEST(BenchScenario, DeliveryFlowKeepsTheWindowOnTheSlowestSubscriber) {
    // Plain fanout without --interval: the window closes over deliveries (a broadcast server
    // acknowledges nothing); every publication reaches every subscriber.
    TestServer server;
    BenchOptions o = plainFanout(server.url("/bcast/0"));
    o.interval_ms = 0;
    o.flow = Flow::kDelivery;
    o.window = 4;
    o.messages = 200;
    BenchResult r = run(o);
    EXPECT_EQ(r.counters.msgs_sent, 2u * 200);
    EXPECT_EQ(r.counters.expected, 2u * 200 * 6);
    EXPECT_EQ(r.counters.deliveries, r.counters.expected);
    EXPECT_EQ(r.counters.lost + r.counters.duplicates + r.counters.out_of_order, 0u);
    EXPECT_TRUE(r.errors.empty());

    // Lost publications free their slots too (a later one resolves them): the run finishes
    // and reports the loss.
    BenchOptions d = o;
    d.url = server.url("/drop/0");
    BenchResult l = run(d);
    EXPECT_EQ(l.counters.msgs_sent, 2u * 200);
    EXPECT_EQ(l.counters.lost, 2u * 20 * 6);

    // Native: the same closed loop, the acks only counted.
    BenchOptions n = baseOptions(Scenario::kFanout, server.url("/ws"));
    n.mode = Mode::kNative;
    n.flow = Flow::kDelivery;
    n.conns = 5;
    n.messages = 100;
    n.window = 3;
    BenchResult nr = run(n);
    EXPECT_EQ(nr.counters.publishes_acked, 100u);
    EXPECT_EQ(nr.counters.deliveries, 5u * 100);
    EXPECT_TRUE(nr.errors.empty());
}

TEST(BenchScenario, MultiRoomPublisherServesEveryRoomInTurn) {
    // One native publisher for 4 rooms of 2 subscribers: 40 publications, 10 per room, each
    // room with a sequence of its own (no loss seen by any subscriber).
    TestServer server;
    BenchOptions o = baseOptions(Scenario::kFanout, server.url("/ws"));
    o.mode = Mode::kNative;
    o.conns = 8;
    o.publishers = 1;
    o.rooms = 4;
    o.multi_room = true;
    o.interval_ms = 1;
    o.messages = 40;
    BenchResult r = run(o);
    EXPECT_EQ(r.counters.publishes_acked, 40u);
    EXPECT_EQ(r.counters.expected, 8u * 10);
    EXPECT_EQ(r.counters.deliveries, r.counters.expected);
    EXPECT_EQ(r.counters.lost + r.counters.duplicates + r.counters.out_of_order, 0u);
    EXPECT_EQ(r.counters.foreign, 0u);
    EXPECT_TRUE(r.errors.empty());
}

TEST(BenchScenario, WarmupLeavesTheFirstPartOutOfTheWindow) {
    TestServer server;
    BenchOptions o = baseOptions(Scenario::kEcho, server.url("/echo"));
    o.conns = 2;
    o.window = 2;
    o.interval_ms = 5;
    o.warmup_s = 0.1;
    o.duration_s = 0.2;
    o.server_pid = static_cast<int>(getpid());
    BenchResult r = run(o);
    EXPECT_GT(r.window.s, 0);
    EXPECT_GT(r.window.received, 0u);
    EXPECT_LT(r.window.received, r.counters.msgs_received);  // the warm-up's replies are out
    EXPECT_LE(r.latency_ns.count(), r.counters.msgs_received);
    EXPECT_GE(r.window.server_cpu_s, 0);  // this process is the server here
    EXPECT_TRUE(r.errors.empty());
}

TEST(BenchScenario, InterruptStopsAndStillReports) {
    TestServer server;
    BenchOptions o = baseOptions(Scenario::kEcho, server.url("/echo"));
    o.conns = 3;
    o.duration_s = 30;
    o.interval_ms = 10;
    std::atomic<bool> stop{false};
    std::thread t([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        stop = true;
    });
    const auto start = std::chrono::steady_clock::now();
    auto r = runScenario(o, nullptr, &stop);
    t.join();
    ASSERT_TRUE(r);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
    EXPECT_TRUE(r->interrupted);
    EXPECT_EQ(r->counters.closed_clean, 3u);
    EXPECT_GT(r->counters.msgs_received, 0u);
}

// The server of a --procs test lives in a child process: forking the bench workers from a
// process that runs server threads could copy a lock another thread holds (the sanitizer's
// allocator, malloc) into the child, where nobody ever releases it. This process stays
// single-threaded; the child serves until its pipe to us closes.
class ServerProcess {
public:
    ServerProcess() {
        int port_pipe[2];
        int life_pipe[2];
        EXPECT_EQ(pipe(port_pipe), 0);
        EXPECT_EQ(pipe(life_pipe), 0);
        pid_ = fork();
        if (pid_ == 0) {
            ::close(port_pipe[0]);
            ::close(life_pipe[1]);
            {
                TestServer server;
                const std::string url = server.url("");
                ssize_t w = ::write(port_pipe[1], url.data(), url.size());
                ::close(port_pipe[1]);
                char c;
                while (w > 0 && ::read(life_pipe[0], &c, 1) > 0) {
                }
            }
            _exit(0);
        }
        ::close(port_pipe[1]);
        ::close(life_pipe[0]);
        life_ = life_pipe[1];
        char buf[128];
        ssize_t n = 0;
        while (n >= 0 && n < static_cast<ssize_t>(sizeof buf)) {
            ssize_t r = ::read(port_pipe[0], buf + n, sizeof buf - static_cast<size_t>(n));
            if (r <= 0) {
                break;
            }
            n += r;
        }
        ::close(port_pipe[0]);
        base_url_.assign(buf, n > 0 ? static_cast<size_t>(n) : 0);
    }
    ~ServerProcess() {
        ::close(life_);  // the child sees EOF, stops its server and exits
        int status = 0;
        waitpid(pid_, &status, 0);
    }
    std::string url(const std::string& path) const { return base_url_ + path; }

private:
    pid_t pid_ = -1;
    int life_ = -1;
    std::string base_url_;
};

TEST(BenchScenario, TwoProcessesMergeToTheSameCounts) {
    ServerProcess server;
    ASSERT_TRUE(server.url("").starts_with("ws://127.0.0.1:"));
    BenchOptions o = plainFanout(server.url("/bcast/0"));
    o.procs = 2;  // subscribers 0-2 and publisher 0 in one worker, the rest in the other
    BenchResult r = run(o);
    EXPECT_EQ(r.procs, 2u);
    EXPECT_EQ(r.counters.connects_ok, 8u);
    EXPECT_EQ(r.counters.expected, kPlainExpected);
    EXPECT_EQ(r.counters.deliveries, kPlainExpected);
    EXPECT_EQ(r.latency_ns.count(), kPlainExpected);
    EXPECT_EQ(r.counters.lost, 0u);
    EXPECT_TRUE(r.errors.empty());
}

TEST(BenchScenario, DeliveryFlowAcrossTwoProcesses) {
    // The window spans processes: the publisher's worker waits for the other worker's
    // subscribers through the shared board (and its eventfd).
    ServerProcess server;
    BenchOptions o = plainFanout(server.url("/bcast/0"));
    o.procs = 2;
    o.interval_ms = 0;
    o.flow = Flow::kDelivery;
    o.publishers = 1;
    o.window = 2;
    o.messages = 0;  // bounded by -d
    o.duration_s = 0.5;
    o.warmup_s = 0.1;
    BenchResult r = run(o);
    EXPECT_EQ(r.procs, 2u);
    EXPECT_GT(r.counters.msgs_sent, 0u);
    EXPECT_EQ(r.counters.deliveries, r.counters.expected);
    EXPECT_EQ(r.counters.lost + r.counters.duplicates + r.counters.out_of_order, 0u);
    // 0 with a stalled flow: the publisher sent its first window and was never let go on.
    EXPECT_GT(r.window.received, 0u)
        << "sent " << r.counters.msgs_sent << ", delivered " << r.counters.deliveries
        << ", expected " << r.counters.expected;
    EXPECT_TRUE(r.errors.empty());
}

}  // namespace
}  // namespace sb::bench
