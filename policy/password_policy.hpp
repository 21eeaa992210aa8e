#pragma once
// pwresetd's own password policy (NIST SP 800-63B style): length in code points, optional
// character classes, the user's own name, an Entra-style banned list (normalized, fuzzy,
// scored), repetitive and sequential runs, and the offline breached-password set.
// Pure: everything is loaded at construction; check() does no I/O and is safe to call from
// several threads at once. Rule codes are API.md's; human messages are rendered by the
// caller from the code and value, in the caller's language.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pwresetd::policy {

struct settings {
    std::size_t min_length = 12;              // Unicode code points
    std::size_t max_length = 256;             // Unicode code points
    int character_classes = 0;                // 0..4 of lower / upper / digit / other
    bool reject_username = true;              // username and display-name parts of >= 4 characters
    std::filesystem::path banned_words_file;  // empty: none
    std::filesystem::path breached_hashes_file;  // empty: none
    int banned_score_threshold = 5;  // Entra: each banned term found = 1 point, each other
                                     // character = 1 point; below the threshold is refused
};

// Who the password is for; both optional (empty = rule not applied).
struct context {
    std::string_view username;
    std::string_view display_name;
};

struct violation {
    std::string rule;                   // min_length, max_length, character_classes,
                                        // contains_username, contains_name, banned, breached
    std::optional<std::int64_t> value;  // the rule's number (min_length: 12, ...)
};

struct rule_info {
    std::string rule;
    std::optional<std::int64_t> value;
};

// A policy file that cannot be used (missing, unreadable, truncated, corrupt, foreign).
class policy_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class breached_set;

class password_policy {
public:
    // Loads banned_words_file and maps breached_hashes_file; throws policy_error naming the
    // file and what is wrong with it.
    explicit password_policy(settings s);
    password_policy(const password_policy&) = delete;
    password_policy& operator=(const password_policy&) = delete;
    ~password_policy();

    // Every violation, in a stable order (the rules() order). `password` must be valid
    // UTF-8 (the API guarantees it); it is never copied beyond the call's stack.
    [[nodiscard]] std::vector<violation> check(std::string_view password,
                                               const context& ctx = {}) const;
    // The active rules, for GET /v1/policy.
    [[nodiscard]] std::vector<rule_info> rules() const;
    [[nodiscard]] const settings& config() const noexcept { return settings_; }

private:
    struct banned_index;
    settings settings_;
    std::unique_ptr<banned_index> banned_;
    std::unique_ptr<breached_set> breached_;
};

}  // namespace pwresetd::policy
