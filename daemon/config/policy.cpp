// policy: the password rules.
#include "daemon/config/sections.hpp"

namespace pwresetd::daemon::config_detail {

namespace {

constexpr auto policy_keys = std::to_array<key_spec>(
    {"min_length", "max_length", "character_classes", "reject_username", "banned_words_file",
     "breached_hashes_file", "banned_score_threshold"});

}  // namespace

void read_policy(const config_reader& in, config& cfg) {
    const auto m = in.section("policy", policy_keys);
    if (!m) {
        return;
    }
    report& r = in.r;
    auto& p = cfg.policy;
    // The length limits count Unicode code points; 4096 matches the request guard.
    read_int(r, *m, "min_length", 1, 4096, p.min_length);
    read_int(r, *m, "max_length", 1, 4096, p.max_length);
    if (p.max_length < p.min_length) {
        const auto f = m->get("max_length") ? m->get("max_length") : m->get("min_length");
        if (f) {
            r.error(f->value_mark(), f->path,
                    "max_length (" + std::to_string(p.max_length) + ") is below min_length (" +
                        std::to_string(p.min_length) + ")");
        }
    }
    read_int(r, *m, "character_classes", 0, 4, p.character_classes);
    read_bool(r, *m, "reject_username", p.reject_username);
    read_int(r, *m, "banned_score_threshold", 1, 100, p.banned_score_threshold);
    if (const auto f = m->get("banned_words_file")) {
        p.banned_words_file = in.read_readable_file(*f).value_or(std::filesystem::path());
    }
    if (const auto f = m->get("breached_hashes_file")) {
        p.breached_hashes_file = in.read_readable_file(*f).value_or(std::filesystem::path());
    }
}

}  // namespace pwresetd::daemon::config_detail
