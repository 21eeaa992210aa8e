#include "common/metrics.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace metrics = pwresetd::metrics;

namespace {

// The lines of an exposition that are not comments.
std::vector<std::string> sample_lines(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < text.size()) {
        const auto end = text.find('\n', start);
        const auto line = text.substr(start, end - start);
        if (!line.starts_with('#')) {
            out.push_back(line);
        }
        start = end + 1;
    }
    return out;
}

}  // namespace

TEST_CASE("exposition: HELP and TYPE per family, samples in label order", "[metrics]") {
    metrics::registry r;
    auto& requests = r.counters("app_requests_total", "Requests.", {"route", "status"});
    requests.with({"/v1/b", "200"}).inc(2);
    requests.with({"/v1/a", "404"}).inc();
    r.gauges("app_in_flight", "In flight.").with().set(3);
    CHECK(r.expose() ==
          "# HELP app_requests_total Requests.\n"
          "# TYPE app_requests_total counter\n"
          "app_requests_total{route=\"/v1/a\",status=\"404\"} 1\n"
          "app_requests_total{route=\"/v1/b\",status=\"200\"} 2\n"
          "# HELP app_in_flight In flight.\n"
          "# TYPE app_in_flight gauge\n"
          "app_in_flight 3\n");
}

TEST_CASE("exposition: label values and help text are escaped", "[metrics]") {
    metrics::registry r;
    r.counters("x_total", "Back\\slash and\nnewline \"quoted\".", {"v"}).with({"a\"b\\c\nd"}).inc();
    const auto text = r.expose();
    // HELP escapes backslash and newline only; a label value also the double quote.
    CHECK(text.find("# HELP x_total Back\\\\slash and\\nnewline \"quoted\".\n") !=
          std::string::npos);
    CHECK(text.find("x_total{v=\"a\\\"b\\\\c\\nd\"} 1\n") != std::string::npos);
    CHECK(metrics::escape_label_value("plain") == "plain");
}

TEST_CASE("histogram buckets are cumulative, +Inf equals the count", "[metrics]") {
    metrics::registry r;
    static constexpr std::array<double, 3> bounds{0.1, 0.5, 1.0};
    auto& h = r.histograms("op_seconds", "Op.", {"op"}, bounds).with({"search"});
    for (const double v : {0.05, 0.1, 0.3, 0.7, 2.0, 3.0}) {
        h.observe(v);
    }
    const auto s = h.read();
    CHECK(s.cumulative == std::vector<std::uint64_t>{2, 3, 4, 6});  // 0.1 is in le="0.1"
    CHECK(s.count == 6);
    CHECK(s.sum == Approx(6.15));
    const auto lines = sample_lines(r.expose());
    CHECK(lines == std::vector<std::string>{
                       "op_seconds_bucket{op=\"search\",le=\"0.1\"} 2",
                       "op_seconds_bucket{op=\"search\",le=\"0.5\"} 3",
                       "op_seconds_bucket{op=\"search\",le=\"1\"} 4",
                       "op_seconds_bucket{op=\"search\",le=\"+Inf\"} 6",
                       "op_seconds_sum{op=\"search\"} 6.15",
                       "op_seconds_count{op=\"search\"} 6",
                   });
    CHECK(r.value("op_seconds_bucket", {{"le", "+Inf"}, {"op", "search"}}) == 6);
}

TEST_CASE("values format as Prometheus reads them", "[metrics]") {
    CHECK(metrics::format_value(0) == "0");
    CHECK(metrics::format_value(1) == "1");
    CHECK(metrics::format_value(0.0025) == "0.0025");
    CHECK(metrics::format_value(1.5e12) == "1500000000000");  // integers in full
    CHECK(metrics::format_value(-3) == "-3");
    CHECK(metrics::format_value(1e300) == "1e+300");
    CHECK(metrics::format_value(std::numeric_limits<double>::infinity()) == "+Inf");
    CHECK(metrics::format_value(-std::numeric_limits<double>::infinity()) == "-Inf");
    CHECK(metrics::format_value(std::numeric_limits<double>::quiet_NaN()) == "NaN");
}

TEST_CASE("label sets: fixed names, counted values, bounded cardinality", "[metrics]") {
    metrics::registry r;
    auto& f = r.counters("c_total", "C.", {"a", "b"});
    CHECK_THROWS_AS(f.with({"only one"}), std::invalid_argument);
    auto& same = f.with({"x", "y"});
    CHECK(&same == &f.with({"x", "y"}));
    CHECK(&same != &f.with({"y", "x"}));
    for (std::size_t i = 0; i < metrics::family_base::max_children + 10; ++i) {
        f.with({"v" + std::to_string(i), "z"}).inc();
    }
    std::vector<metrics::sample> samples;
    f.collect(samples);
    // x/y, y/x, then v0..v509 up to max_children, then one "other" for v510..v521.
    CHECK(samples.size() == metrics::family_base::max_children + 1);
    CHECK(r.value("c_total", {{"a", "other"}, {"b", "other"}}) == 12);
    CHECK(r.value("c_total", {{"a", "v509"}, {"b", "z"}}) == 1);
    CHECK_FALSE(r.value("c_total", {{"a", "v510"}, {"b", "z"}}).has_value());
}

TEST_CASE("registration: names checked, the same definition shared", "[metrics]") {
    metrics::registry r;
    CHECK_THROWS_AS(r.counters("1bad", "x"), std::invalid_argument);
    CHECK_THROWS_AS(r.counters("bad-name", "x"), std::invalid_argument);
    CHECK_THROWS_AS(r.counters("ok_total", "x", {"__reserved"}), std::invalid_argument);
    CHECK_THROWS_AS(r.counters("ok_total", "x", {"a", "a"}), std::invalid_argument);
    CHECK_THROWS_AS(r.histograms("h_seconds", "x", {"le"}), std::invalid_argument);
    static constexpr std::array<double, 2> unordered{1.0, 0.5};
    CHECK_THROWS_AS(r.histograms("h2_seconds", "x", {}, unordered), std::invalid_argument);
    auto& a = r.counters("ok_total", "x", {"a"});
    CHECK(&a == &r.counters("ok_total", "x", {"a"}));
    CHECK_THROWS_AS(r.gauges("ok_total", "x", {"a"}), std::invalid_argument);
    CHECK_THROWS_AS(r.counters("ok_total", "x", {"b"}), std::invalid_argument);
    r.histograms("lat_seconds", "x", {});
    CHECK_THROWS_AS(r.counters("lat_seconds_count", "x"), std::invalid_argument);
}

TEST_CASE("updates from many threads are all counted", "[metrics]") {
    metrics::registry r;
    auto& c = r.counters("n_total", "N.", {"t"});
    auto& h = r.histograms("d_seconds", "D.", {});
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 10000; ++i) {
                c.with({t % 2 == 0 ? "even" : "odd"}).inc();
                h.with().observe(0.002);
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    CHECK(r.value("n_total", {{"t", "even"}}) == 20000);
    CHECK(r.value("n_total", {{"t", "odd"}}) == 20000);
    CHECK(r.value("d_seconds_count") == 40000);
    CHECK(r.value("d_seconds_bucket", {{"le", "0.0025"}}) == 40000);
    CHECK(r.value("d_seconds_bucket", {{"le", "0.001"}}) == 0);
}
