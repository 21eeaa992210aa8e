#pragma once
// Process-wide metrics in the Prometheus text exposition format 0.0.4: counters, gauges and
// histograms with fixed buckets, each a family with label names fixed at registration.
//
// What a caller can rely on:
// - Updating a metric is a few relaxed atomic operations; finding a labelled child takes a
//   shared lock and a map lookup (hold on to the reference where the labels are known in
//   advance: a child lives as long as its registry).
// - Label cardinality is bounded: a family keeps at most max_children label sets, later ones
//   all land in one child whose every label value is "other". Label values must come from
//   a fixed vocabulary (a route pattern, an outcome, a configured URI), never from a request
//   (a username, an address, free text).
// - registry::global() lives as long as the process, so metrics survive reloads (SIGHUP).
// - Registering a name twice returns the same family when the type, help, label names (and
//   buckets) agree, and throws std::invalid_argument otherwise, as it does for an invalid
//   metric or label name.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace pwresetd::metrics {

class counter {
public:
    void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
    [[nodiscard]] std::uint64_t value() const noexcept {
        return value_.load(std::memory_order_relaxed);
    }

private:
    std::atomic<std::uint64_t> value_{0};
};

class gauge {
public:
    void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
    void add(double d) noexcept { value_.fetch_add(d, std::memory_order_relaxed); }
    void inc() noexcept { add(1); }
    void dec() noexcept { add(-1); }
    [[nodiscard]] double value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> value_{0};
};

// Buckets are upper bounds, ascending and finite; +Inf is implicit.
class histogram {
public:
    explicit histogram(std::span<const double> bounds);
    void observe(double v) noexcept;

    struct snapshot {
        std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf (== count)
        double sum = 0;
        std::uint64_t count = 0;
    };
    [[nodiscard]] snapshot read() const;

private:
    std::span<const double> bounds_;                        // owned by the family
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // per bucket, not cumulative
    std::atomic<double> sum_{0};
};

// Observes the time from construction to destruction, in seconds.
class scoped_timer {
public:
    explicit scoped_timer(histogram& h) : histogram_(h) {}
    scoped_timer(const scoped_timer&) = delete;
    scoped_timer& operator=(const scoped_timer&) = delete;
    ~scoped_timer() {
        histogram_.observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    }

private:
    histogram& histogram_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Latencies of network calls: 1 ms to 10 s.
inline constexpr std::array<double, 13> latency_buckets{
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0};

using label_pairs = std::vector<std::pair<std::string, std::string>>;

// One exposed value: a counter or gauge, or one line of a histogram (_bucket, _sum, _count).
struct sample {
    std::string name;
    label_pairs labels;
    double value = 0;
};

enum class kind { counter, gauge, histogram };

class family_base {
public:
    family_base(std::string name, std::string help, std::vector<std::string> label_names,
                kind type);
    family_base(const family_base&) = delete;
    family_base& operator=(const family_base&) = delete;
    virtual ~family_base() = default;

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] const std::string& help() const noexcept { return help_; }
    [[nodiscard]] const std::vector<std::string>& label_names() const noexcept {
        return label_names_;
    }
    [[nodiscard]] kind type() const noexcept { return type_; }
    // Its samples, label sets in lexicographic order.
    virtual void collect(std::vector<sample>& out) const = 0;

    static constexpr std::size_t max_children = 512;

protected:
    // The label values `values` stand for: as given, or all "other" past max_children; throws
    // std::invalid_argument when their number differs from the label names'.
    [[nodiscard]] std::vector<std::string> key_for(std::initializer_list<std::string_view> values,
                                                   std::size_t children) const;
    [[nodiscard]] label_pairs pairs(const std::vector<std::string>& values) const;

private:
    std::string name_;
    std::string help_;
    std::vector<std::string> label_names_;
    kind type_;
};

template <class Metric>
class family final : public family_base {
public:
    family(std::string name, std::string help, std::vector<std::string> label_names, kind type,
           std::vector<double> bounds = {})
        : family_base(std::move(name), std::move(help), std::move(label_names), type),
          bounds_(std::move(bounds)) {}

    // The child for these label values (in the order of the label names), made on first use.
    Metric& with(std::initializer_list<std::string_view> values = {}) {
        {
            const std::shared_lock lock(mutex_);
            if (auto* found = find(values)) {
                return *found;
            }
        }
        const std::unique_lock lock(mutex_);
        auto key = key_for(values, children_.size());
        auto& slot = children_[std::move(key)];
        if (!slot) {
            if constexpr (std::is_same_v<Metric, histogram>) {
                slot = std::make_unique<Metric>(bounds_);
            } else {
                slot = std::make_unique<Metric>();
            }
        }
        return *slot;
    }

    [[nodiscard]] const std::vector<double>& bounds() const noexcept { return bounds_; }
    void collect(std::vector<sample>& out) const override;

private:
    // Label values compared as given, without building a key (the lookup on every update).
    struct key_less {
        using is_transparent = void;
        template <class A, class B>
        bool operator()(const A& a, const B& b) const {
            return std::lexicographical_compare(
                a.begin(), a.end(), b.begin(), b.end(),
                [](std::string_view x, std::string_view y) { return x < y; });
        }
    };

    Metric* find(std::initializer_list<std::string_view> values) const {
        const auto it = children_.find(values);
        return it == children_.end() ? nullptr : it->second.get();
    }

    std::vector<double> bounds_;
    mutable std::shared_mutex mutex_;
    std::map<std::vector<std::string>, std::unique_ptr<Metric>, key_less> children_;
};

template <>
void family<counter>::collect(std::vector<sample>& out) const;
template <>
void family<gauge>::collect(std::vector<sample>& out) const;
template <>
void family<histogram>::collect(std::vector<sample>& out) const;

using counter_family = family<counter>;
using gauge_family = family<gauge>;
using histogram_family = family<histogram>;

class registry {
public:
    registry() = default;
    registry(const registry&) = delete;
    registry& operator=(const registry&) = delete;

    // The process's registry: what the daemon exposes and `pwresetctl status` reports.
    static registry& global();

    counter_family& counters(std::string name, std::string help,
                             std::vector<std::string> label_names = {});
    gauge_family& gauges(std::string name, std::string help,
                         std::vector<std::string> label_names = {});
    histogram_family& histograms(std::string name, std::string help,
                                 std::vector<std::string> label_names,
                                 std::span<const double> bounds = latency_buckets);

    // Every sample, families in registration order.
    [[nodiscard]] std::vector<sample> collect() const;
    // One sample's value by its exposed name and exact label set (any order), if present.
    [[nodiscard]] std::optional<double> value(std::string_view name,
                                              const label_pairs& labels = {}) const;
    // The text exposition format 0.0.4 (Content-Type: text/plain; version=0.0.4).
    [[nodiscard]] std::string expose() const;

private:
    family_base* find(std::string_view name) const;
    template <class F>
    F& add(std::unique_ptr<F> made);

    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<family_base>> families_;
};

// Exposition helpers, exposed for tests.
std::string escape_help(std::string_view text);         // \ and newline
std::string escape_label_value(std::string_view text);  // \, " and newline
std::string format_value(double v);                     // shortest round trip, +Inf, NaN
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);

}  // namespace pwresetd::metrics
