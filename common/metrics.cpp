#include "common/metrics.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>

namespace pwresetd::metrics {
namespace {

bool name_char(char c, bool first, bool colon) {
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    return letter || (colon && c == ':') || (!first && c >= '0' && c <= '9');
}

bool valid_name(std::string_view name, bool colon) {
    if (name.empty()) {
        return false;
    }
    for (std::size_t i = 0; i < name.size(); ++i) {
        if (!name_char(name[i], i == 0, colon)) {
            return false;
        }
    }
    return true;
}

void write_labels(std::string& out, const label_pairs& labels) {
    if (labels.empty()) {
        return;
    }
    out += '{';
    for (std::size_t i = 0; i < labels.size(); ++i) {
        out += i == 0 ? "" : ",";
        out += labels[i].first;
        out += "=\"";
        out += escape_label_value(labels[i].second);
        out += '"';
    }
    out += '}';
}

std::string_view type_name(kind k) {
    switch (k) {
        case kind::counter:
            return "counter";
        case kind::gauge:
            return "gauge";
        case kind::histogram:
            return "histogram";
    }
    return "untyped";
}

}  // namespace

std::string escape_help(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string escape_label_value(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string format_value(double v) {
    if (std::isnan(v)) {
        return "NaN";
    }
    if (std::isinf(v)) {
        return v > 0 ? "+Inf" : "-Inf";
    }
    std::array<char, 32> buffer{};
    // Counts print in full (1500000000000, not 1.5e+12) while a double holds them exactly.
    constexpr double exact = 9007199254740992.0;  // 2^53
    if (std::trunc(v) == v && std::fabs(v) < exact) {
        const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(),
                                             static_cast<std::int64_t>(v));
        return ec == std::errc() ? std::string(buffer.data(), end) : "NaN";
    }
    const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), v);
    if (ec != std::errc()) {
        return "NaN";
    }
    return {buffer.data(), end};
}

bool valid_metric_name(std::string_view name) {
    return valid_name(name, true);
}

bool valid_label_name(std::string_view name) {
    return valid_name(name, false) && !name.starts_with("__");
}

histogram::histogram(std::span<const double> bounds)
    : bounds_(bounds), counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size() + 1)) {}

void histogram::observe(double v) noexcept {
    if (std::isnan(v)) {
        return;  // would make the sum NaN for good
    }
    // The first bucket whose upper bound holds v (le: less than or equal).
    const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
    const auto index = static_cast<std::size_t>(it - bounds_.begin());
    counts_[index].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(v, std::memory_order_relaxed);
}

histogram::snapshot histogram::read() const {
    snapshot s;
    s.cumulative.reserve(bounds_.size() + 1);
    std::uint64_t running = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        running += counts_[i].load(std::memory_order_relaxed);
        s.cumulative.push_back(running);
    }
    s.count = running;  // the +Inf bucket, by construction
    s.sum = sum_.load(std::memory_order_relaxed);
    return s;
}

family_base::family_base(std::string name, std::string help, std::vector<std::string> label_names,
                         kind type)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      type_(type) {
    if (!valid_metric_name(name_)) {
        throw std::invalid_argument("metrics: invalid metric name '" + name_ + "'");
    }
    for (std::size_t i = 0; i < label_names_.size(); ++i) {
        const auto& label = label_names_[i];
        if (!valid_label_name(label) || (type_ == kind::histogram && label == "le")) {
            throw std::invalid_argument("metrics: " + name_ + ": invalid label name '" + label +
                                        "'");
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (label_names_[j] == label) {
                throw std::invalid_argument("metrics: " + name_ + ": label '" + label +
                                            "' given twice");
            }
        }
    }
}

std::vector<std::string> family_base::key_for(std::initializer_list<std::string_view> values,
                                              std::size_t children) const {
    if (values.size() != label_names_.size()) {
        throw std::invalid_argument("metrics: " + name_ + ": expected " +
                                    std::to_string(label_names_.size()) + " label values, got " +
                                    std::to_string(values.size()));
    }
    if (children >= max_children) {
        return std::vector<std::string>(values.size(), "other");
    }
    return {values.begin(), values.end()};
}

label_pairs family_base::pairs(const std::vector<std::string>& values) const {
    label_pairs out;
    out.reserve(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
        out.emplace_back(label_names_[i], values[i]);
    }
    return out;
}

template <>
void family<counter>::collect(std::vector<sample>& out) const {
    const std::shared_lock lock(mutex_);
    for (const auto& [key, child] : children_) {
        out.push_back({name(), pairs(key), static_cast<double>(child->value())});
    }
}

template <>
void family<gauge>::collect(std::vector<sample>& out) const {
    const std::shared_lock lock(mutex_);
    for (const auto& [key, child] : children_) {
        out.push_back({name(), pairs(key), child->value()});
    }
}

template <>
void family<histogram>::collect(std::vector<sample>& out) const {
    const std::shared_lock lock(mutex_);
    for (const auto& [key, child] : children_) {
        const auto s = child->read();
        const auto labels = pairs(key);
        for (std::size_t i = 0; i < s.cumulative.size(); ++i) {
            auto with_le = labels;
            with_le.emplace_back("le", i < bounds_.size() ? format_value(bounds_[i]) : "+Inf");
            out.push_back(
                {name() + "_bucket", std::move(with_le), static_cast<double>(s.cumulative[i])});
        }
        out.push_back({name() + "_sum", labels, s.sum});
        out.push_back({name() + "_count", labels, static_cast<double>(s.count)});
    }
}

registry& registry::global() {
    static registry* const instance = new registry();  // never destroyed: used until exit
    return *instance;
}

family_base* registry::find(std::string_view name) const {
    for (const auto& f : families_) {
        if (f->name() == name) {
            return f.get();
        }
    }
    return nullptr;
}

template <class F>
F& registry::add(std::unique_ptr<F> made) {
    const std::lock_guard lock(mutex_);
    for (const auto& f : families_) {
        // A histogram's _bucket/_sum/_count lines must not collide with another family.
        const auto clash = [](const family_base& a, const family_base& b) {
            if (a.type() != kind::histogram) {
                return false;
            }
            for (const char* suffix : {"_bucket", "_sum", "_count"}) {
                if (b.name() == a.name() + suffix) {
                    return true;
                }
            }
            return false;
        };
        if (clash(*f, *made) || clash(*made, *f)) {
            throw std::invalid_argument("metrics: " + made->name() + " collides with " + f->name());
        }
    }
    if (auto* existing = find(made->name())) {
        auto* same = dynamic_cast<F*>(existing);
        bool agrees = same != nullptr && existing->type() == made->type() &&
                      existing->help() == made->help() &&
                      existing->label_names() == made->label_names();
        if constexpr (std::is_same_v<F, histogram_family>) {
            agrees = agrees && same->bounds() == made->bounds();
        }
        if (!agrees) {
            throw std::invalid_argument("metrics: " + made->name() +
                                        " registered twice with different definitions");
        }
        return *same;
    }
    auto& out = *made;
    families_.push_back(std::move(made));
    return out;
}

counter_family& registry::counters(std::string name, std::string help,
                                   std::vector<std::string> label_names) {
    return add(std::make_unique<counter_family>(std::move(name), std::move(help),
                                                std::move(label_names), kind::counter));
}

gauge_family& registry::gauges(std::string name, std::string help,
                               std::vector<std::string> label_names) {
    return add(std::make_unique<gauge_family>(std::move(name), std::move(help),
                                              std::move(label_names), kind::gauge));
}

histogram_family& registry::histograms(std::string name, std::string help,
                                       std::vector<std::string> label_names,
                                       std::span<const double> bounds) {
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
            throw std::invalid_argument("metrics: " + name +
                                        ": buckets must be finite and strictly ascending");
        }
    }
    return add(std::make_unique<histogram_family>(
        std::move(name), std::move(help), std::move(label_names), kind::histogram,
        std::vector<double>(bounds.begin(), bounds.end())));
}

std::vector<sample> registry::collect() const {
    const std::lock_guard lock(mutex_);
    std::vector<sample> out;
    for (const auto& f : families_) {
        f->collect(out);
    }
    return out;
}

std::optional<double> registry::value(std::string_view name, const label_pairs& labels) const {
    auto wanted = labels;
    std::sort(wanted.begin(), wanted.end());
    for (auto& s : collect()) {
        if (s.name != name || s.labels.size() != wanted.size()) {
            continue;
        }
        std::sort(s.labels.begin(), s.labels.end());
        if (s.labels == wanted) {
            return s.value;
        }
    }
    return std::nullopt;
}

std::string registry::expose() const {
    const std::lock_guard lock(mutex_);
    std::string out;
    std::vector<sample> samples;
    for (const auto& f : families_) {
        out += "# HELP ";
        out += f->name();
        out += ' ';
        out += escape_help(f->help());
        out += "\n# TYPE ";
        out += f->name();
        out += ' ';
        out += type_name(f->type());
        out += '\n';
        samples.clear();
        f->collect(samples);
        for (const auto& s : samples) {
            out += s.name;
            write_labels(out, s.labels);
            out += ' ';
            out += format_value(s.value);
            out += '\n';
        }
    }
    return out;
}

}  // namespace pwresetd::metrics
