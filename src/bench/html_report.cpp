// The --html report: one self-contained page (inline CSS and SVG, no scripts, no external
// resources) with the summary table and plots of latency percentiles and throughput over
// time, or per step for a ramp.
#include <cinttypes>
#include <cmath>
#include <string>
#include <vector>

#include "bench/report.h"

namespace sb::bench {

namespace {

std::string escapeHtml(std::string_view s) {
    std::string out;
    for (char ch : s) {
        switch (ch) {
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '&':
                out += "&amp;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += ch;
        }
    }
    return out;
}

struct Series {
    std::string name;
    std::string color;
    std::vector<std::pair<double, double>> points;
};

// A "nice" axis maximum (1, 2, 5 x 10^k) at or above v.
double niceCeil(double v) {
    if (v <= 0) {
        return 1;
    }
    const double p = std::pow(10.0, std::floor(std::log10(v)));
    for (double m : {1.0, 2.0, 5.0, 10.0}) {
        if (m * p >= v) {
            return m * p;
        }
    }
    return 10 * p;
}

std::string label(double v) {
    if (v == 0) {
        return "0";
    }
    if (std::fabs(v) >= 1e6) {
        return format("%gM", v / 1e6);
    }
    if (std::fabs(v) >= 1e4) {
        return format("%gk", v / 1e3);
    }
    return format("%g", v);
}

// An SVG line chart: linear axes from 0, five grid lines, a legend.
std::string lineChart(const std::string& title, const std::string& x_label,
                      const std::string& y_label, const std::vector<Series>& series) {
    constexpr double kW = 860;
    constexpr double kH = 300;
    constexpr double kLeft = 70;
    constexpr double kRight = 20;
    constexpr double kTop = 34;
    constexpr double kBottom = 44;
    double max_x = 0;
    double max_y = 0;
    for (const Series& s : series) {
        for (const auto& [x, y] : s.points) {
            max_x = std::max(max_x, x);
            max_y = std::max(max_y, y);
        }
    }
    max_x = max_x > 0 ? max_x : 1;
    max_y = niceCeil(max_y);
    const double pw = kW - kLeft - kRight;
    const double ph = kH - kTop - kBottom;
    auto px = [&](double x) { return kLeft + x / max_x * pw; };
    auto py = [&](double y) { return kTop + ph - y / max_y * ph; };
    std::string svg = format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
        "height=\"%.0f\" role=\"img\">",
        kW, kH, kW, kH);
    svg += format("<text x=\"%.0f\" y=\"20\" class=\"t\">", kLeft) + escapeHtml(title) + "</text>";
    for (int i = 0; i <= 5; ++i) {
        const double y = max_y * i / 5;
        svg += format("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"g\"/>", kLeft,
                      py(y), kLeft + pw, py(y));
        svg += format("<text x=\"%.1f\" y=\"%.1f\" class=\"a\" text-anchor=\"end\">", kLeft - 6,
                      py(y) + 4) +
               label(y) + "</text>";
        const double x = max_x * i / 5;
        svg += format("<text x=\"%.1f\" y=\"%.1f\" class=\"a\" text-anchor=\"middle\">", px(x),
                      kTop + ph + 16) +
               label(std::round(x * 100) / 100) + "</text>";
    }
    svg += format("<text x=\"%.1f\" y=\"%.1f\" class=\"a\" text-anchor=\"middle\">", kLeft + pw / 2,
                  kH - 6) +
           escapeHtml(x_label) + "</text>";
    svg += format(
               "<text x=\"14\" y=\"%.1f\" class=\"a\" transform=\"rotate(-90 14 %.1f)\" "
               "text-anchor=\"middle\">",
               kTop + ph / 2, kTop + ph / 2) +
           escapeHtml(y_label) + "</text>";
    double legend_x = kLeft + pw;
    for (auto it = series.rbegin(); it != series.rend(); ++it) {
        legend_x -= 12 + 8 * static_cast<double>(it->name.size()) + 16;
        svg += format("<rect x=\"%.1f\" y=\"10\" width=\"12\" height=\"12\" fill=\"%s\"/>",
                      legend_x, it->color.c_str());
        svg += format("<text x=\"%.1f\" y=\"20\" class=\"a\">", legend_x + 16) +
               escapeHtml(it->name) + "</text>";
    }
    for (const Series& s : series) {
        if (s.points.empty()) {
            continue;
        }
        std::string pts;
        for (const auto& [x, y] : s.points) {
            pts += format("%.1f,%.1f ", px(x), py(y));
        }
        svg += "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"" + s.color + "\" points=\"" +
               pts + "\"/>";
        if (s.points.size() == 1) {
            svg += format("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>",
                          px(s.points[0].first), py(s.points[0].second), s.color.c_str());
        }
    }
    svg += "</svg>";
    return svg;
}

std::string timelineCharts(const BenchResult& r) {
    const auto& samples = r.timeline.samples();
    const double interval_s = r.timeline.intervalMs() / 1000.0;
    Series p50{"p50", "#2b8a3e", {}};
    Series p95{"p95", "#e67700", {}};
    Series p99{"p99", "#c92a2a", {}};
    Series sent{"sent/s", "#1971c2", {}};
    Series recv{"received/s", "#2b8a3e", {}};
    Series open{"open connections", "#5f3dc4", {}};
    Series connects{"connects/s", "#e67700", {}};
    for (size_t i = 0; i < samples.size(); ++i) {
        const TimelineSample& s = samples[i];
        const double t = static_cast<double>(i + 1) * interval_s;  // end of the interval
        if (!s.latency.empty()) {
            p50.points.emplace_back(t, static_cast<double>(s.latency.percentile(50)) / 1e6);
            p95.points.emplace_back(t, static_cast<double>(s.latency.percentile(95)) / 1e6);
            p99.points.emplace_back(t, static_cast<double>(s.latency.percentile(99)) / 1e6);
        }
        sent.points.emplace_back(t, static_cast<double>(s.sent) / interval_s);
        recv.points.emplace_back(t, static_cast<double>(s.received) / interval_s);
        open.points.emplace_back(t, static_cast<double>(s.open));
        connects.points.emplace_back(t, static_cast<double>(s.connects) / interval_s);
    }
    std::string html;
    if (r.scenario != "connect") {
        html += lineChart("Latency percentiles per interval", "seconds", "ms", {p50, p95, p99});
        html += lineChart("Throughput", "seconds", "messages/s", {sent, recv});
    }
    html += lineChart("Connections", "seconds", "count", {open, connects});
    return html;
}

std::string rampCharts(const std::vector<RampStep>& steps) {
    Series p50{"p50", "#2b8a3e", {}};
    Series p95{"p95", "#e67700", {}};
    Series p99{"p99", "#c92a2a", {}};
    Series offered{"offered/s", "#1971c2", {}};
    Series answered{"answered/s", "#2b8a3e", {}};
    for (const RampStep& s : steps) {
        const double x = s.conns;
        const Histogram& h = s.result.latency_ns;
        p50.points.emplace_back(x, static_cast<double>(h.percentile(50)) / 1e6);
        p95.points.emplace_back(x, static_cast<double>(h.percentile(95)) / 1e6);
        p99.points.emplace_back(x, static_cast<double>(h.percentile(99)) / 1e6);
        offered.points.emplace_back(x, s.offered_per_s);
        const double secs = s.result.traffic_s;
        answered.points.emplace_back(
            x, secs > 0 ? static_cast<double>(s.result.counters.msgs_received) / secs : 0);
    }
    return lineChart("Latency per step", "connections", "ms", {p50, p95, p99}) +
           lineChart("Throughput per step", "connections", "messages/s", {offered, answered});
}

}  // namespace

std::string toHtml(const BenchOptions& o, const BenchResult& r,
                   const std::vector<RampStep>& steps) {
    std::string title = "switchboard bench " + (steps.empty() ? r.scenario : std::string("ramp"));
    std::string html =
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" +
        escapeHtml(title) +
        "</title><style>"
        "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#212529;max-width:900px}"
        "pre{background:#f1f3f5;padding:12px;overflow-x:auto;font-size:12px}"
        "svg{display:block;margin:16px 0;background:#fff;border:1px solid #dee2e6}"
        ".t{font:600 14px system-ui,sans-serif}.a{font:11px system-ui,sans-serif;fill:#495057}"
        ".g{stroke:#e9ecef}"
        "</style></head><body>\n<h1>" +
        escapeHtml(title) + "</h1>\n<p>Target <code>" + escapeHtml(o.url) + "</code></p>\n";
    if (steps.empty()) {
        html += "<pre>" + escapeHtml(formatTable(o, r)) + "</pre>\n";
        html += timelineCharts(r);
    } else {
        html += "<pre>" + escapeHtml(formatRampTable(o, steps)) + "</pre>\n";
        html += rampCharts(steps);
        html += "<h2>Last step over time</h2>\n" + timelineCharts(steps.back().result);
    }
    html +=
        "\n<p>Latency percentiles come from log-linear histograms (within 0.4 %); "
        "intervals of " +
        format("%u", r.timeline.intervalMs()) + " ms.</p>\n</body></html>\n";
    return html;
}

}  // namespace sb::bench
