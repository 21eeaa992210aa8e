#include "policy/password_policy.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include "common/log.hpp"
#include "common/secret.hpp"
#include "common/text.hpp"
#include "policy/banned_list.hpp"
#include "policy/breached_set.hpp"
#include "policy/normalize.hpp"

namespace pwresetd::policy {

struct password_policy::banned_index {
    banned_list list;
};

namespace {

constexpr std::size_t min_name_part = 4;
constexpr std::u32string_view name_separators = U" \t.-_,@";

// Code points of the password, wiped when they go out of scope.
class wiped_text {
public:
    explicit wiped_text(std::vector<char32_t> text) : text_(std::move(text)) {}
    wiped_text(const wiped_text&) = delete;
    wiped_text& operator=(const wiped_text&) = delete;
    ~wiped_text() { wipe(text_.data(), text_.capacity() * sizeof(char32_t)); }
    [[nodiscard]] std::span<char32_t> span() noexcept { return text_; }
    [[nodiscard]] std::span<const char32_t> span() const noexcept { return text_; }
    [[nodiscard]] std::u32string_view view() const noexcept { return {text_.data(), text_.size()}; }

private:
    std::vector<char32_t> text_;
};

// "alice" of "alice@example.test" and of "EXAMPLE\alice".
std::string_view account_part(std::string_view username) {
    if (const auto slash = username.rfind('\\'); slash != std::string_view::npos) {
        username.remove_prefix(slash + 1);
    }
    if (const auto at = username.find('@'); at != std::string_view::npos) {
        username = username.substr(0, at);
    }
    return username;
}

// The normalized parts of a name of at least min_name_part code points; with `whole`, the
// whole name too. Split before normalizing: '@' is a separator and also normalizes to 'a'.
std::vector<std::u32string> name_parts(std::string_view name, bool whole) {
    std::vector<std::u32string> parts;
    auto decoded = text::decode_utf8(name);
    if (!decoded) {
        return parts;
    }
    const std::u32string_view all(decoded->data(), decoded->size());
    const auto keep = [&parts](std::u32string_view part) {
        if (part.size() >= min_name_part) {
            std::u32string p(part);
            normalize(p);
            parts.push_back(std::move(p));
        }
    };
    if (whole) {
        keep(all);
    }
    std::size_t start = 0;
    while (start <= all.size()) {
        const auto end = std::min(all.find_first_of(name_separators, start), all.size());
        if (!whole || end - start != all.size()) {
            keep(all.substr(start, end - start));
        }
        start = end + 1;
    }
    return parts;
}

bool contains_any(std::u32string_view normalized, const std::vector<std::u32string>& parts) {
    for (const auto& p : parts) {
        if (normalized.find(p) != std::u32string_view::npos) {
            return true;
        }
    }
    return false;
}

int count_classes(std::span<const char32_t> text) {
    std::array<bool, 4> seen{};
    for (const char32_t c : text) {
        seen[static_cast<std::size_t>(classify(c))] = true;
    }
    int n = 0;
    for (const bool s : seen) {
        n += s ? 1 : 0;
    }
    return n;
}

void validate(const settings& s) {
    if (s.min_length < 1 || s.max_length < s.min_length) {
        throw policy_error("policy: min_length must be at least 1 and at most max_length");
    }
    if (s.character_classes < 0 || s.character_classes > 4) {
        throw policy_error("policy: character_classes must be 0..4");
    }
    if (s.banned_score_threshold < 1) {
        throw policy_error("policy: banned_score_threshold must be at least 1");
    }
}

}  // namespace

password_policy::password_policy(settings s) : settings_(std::move(s)) {
    validate(settings_);
    if (!settings_.banned_words_file.empty()) {
        const auto started = std::chrono::steady_clock::now();
        banned_ = std::make_unique<banned_index>(
            banned_index{banned_list::load(settings_.banned_words_file)});
        const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - started);
        const auto& st = banned_->list.stats();
        log::info("policy.banned_list_loaded",
                  {{"file", settings_.banned_words_file.string()},
                   {"terms", st.terms},
                   {"lines", st.lines},
                   {"duplicates", st.duplicates},
                   {"too_short", st.too_short},
                   {"too_long", st.too_long},
                   {"invalid_utf8", st.invalid_utf8},
                   {"index_bytes", std::uint64_t{banned_->list.index_bytes()}},
                   {"load_ms", std::int64_t{elapsed.count()}}});
        if (st.terms == 0) {
            log::warning("policy.banned_list_empty",
                         {{"file", settings_.banned_words_file.string()}});
        }
    }
    if (!settings_.breached_hashes_file.empty()) {
        breached_ = breached_set::open(settings_.breached_hashes_file);
    }
}

password_policy::~password_policy() = default;

std::vector<violation> password_policy::check(std::string_view password, const context& ctx) const {
    auto decoded = text::decode_utf8(password);
    if (!decoded) {
        throw std::invalid_argument("password_policy::check: the password is not UTF-8");
    }
    wiped_text folded(std::move(*decoded));
    const std::size_t length = folded.span().size();
    const int classes = count_classes(folded.span());
    fold_case(folded.span());
    wiped_text normalized(std::vector<char32_t>(folded.span().begin(), folded.span().end()));
    normalize(normalized.span());

    std::vector<violation> out;
    if (length < settings_.min_length) {
        out.push_back({"min_length", static_cast<std::int64_t>(settings_.min_length)});
    }
    if (length > settings_.max_length) {
        out.push_back({"max_length", static_cast<std::int64_t>(settings_.max_length)});
    }
    if (settings_.character_classes > 0 && classes < settings_.character_classes) {
        out.push_back({"character_classes", settings_.character_classes});
    }
    if (settings_.reject_username) {
        if (!ctx.username.empty() &&
            contains_any(normalized.view(), name_parts(account_part(ctx.username), true))) {
            out.push_back({"contains_username", std::nullopt});
        }
        if (!ctx.display_name.empty() &&
            contains_any(normalized.view(), name_parts(ctx.display_name, false))) {
            out.push_back({"contains_name", std::nullopt});
        }
    }
    // Over max_length the password is refused anyway; the banned scan is skipped so that an
    // oversized request costs no more than a normal one.
    if (length <= settings_.max_length &&
        evaluate_banned(banned_ ? &banned_->list : nullptr, folded.span(), normalized.span(),
                        static_cast<std::size_t>(settings_.banned_score_threshold))
            .refused) {
        out.push_back({"banned", std::nullopt});
    }
    if (breached_ && breached_->contains_password(password)) {
        out.push_back({"breached", std::nullopt});
    }
    return out;
}

std::vector<rule_info> password_policy::rules() const {
    std::vector<rule_info> out;
    out.push_back({"min_length", static_cast<std::int64_t>(settings_.min_length)});
    out.push_back({"max_length", static_cast<std::int64_t>(settings_.max_length)});
    if (settings_.character_classes > 0) {
        out.push_back({"character_classes", settings_.character_classes});
    }
    if (settings_.reject_username) {
        out.push_back({"contains_username", std::nullopt});
        out.push_back({"contains_name", std::nullopt});
    }
    // Runs are always scored, with or without a banned words list.
    out.push_back({"banned", std::nullopt});
    if (breached_) {
        out.push_back({"breached", std::nullopt});
    }
    return out;
}

}  // namespace pwresetd::policy
