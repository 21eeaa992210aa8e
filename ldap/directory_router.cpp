// Several `directories:` behind one ldap::directory (CONFIG.md): route by the username's
// domain, search with the bare name, and send every later call to the directory the user
// was found in.
#include <algorithm>
#include <stdexcept>

#include "common/text.hpp"
#include "ldap/directory_router.hpp"

namespace pwresetd::ldap {
namespace {

class directory_router final : public directory {
public:
    using backend = routed_directory;

    explicit directory_router(std::vector<backend> backends) : backends_(std::move(backends)) {}

    lookup_result find_user(std::string_view username) override {
        auto [target, bare] = route(username);
        auto result = target->impl->find_user(bare);
        if (result.user) {
            result.user->directory = target->name;
        }
        return result;
    }

    // The bare name first, so decoy hints start with its letter; a newline never stands in
    // a username (API.md forbids control characters).
    std::string lookup_key(std::string_view username) const override {
        auto [target, bare] = route(username);
        return bare + "\n" + target->name;
    }

    bind_status verify_password(const directory_user& user, const secret& password) override {
        return owner(user).verify_password(user, password);
    }

    write_result reset_password(const directory_user& user, const secret& new_password) override {
        return owner(user).reset_password(user, new_password);
    }

    write_result change_password(const directory_user& user, const secret& current,
                                 const secret& new_password) override {
        return owner(user).change_password(user, current, new_password);
    }

    bool ping() override {
        // Healthy only when every configured directory answers: a user of a dead one
        // cannot reset.
        return std::all_of(backends_.begin(), backends_.end(),
                           [](const backend& b) { return b.impl->ping(); });
    }

    std::vector<directory_status> probe_servers() override {
        std::vector<directory_status> out;
        for (const auto& b : backends_) {
            for (auto& status : b.impl->probe_servers()) {
                status.name = b.name;
                out.push_back(std::move(status));
            }
        }
        return out;
    }

    write_result unlock_account(const directory_user& user) override {
        return owner(user).unlock_account(user);
    }

    bool unlock_on_reset(const directory_user& user) const override {
        const auto b = std::find_if(backends_.begin(), backends_.end(),
                                    [&](const backend& x) { return x.name == user.directory; });
        // One backend is one `directories:` block: its setting is the user's.
        return b != backends_.end() && b->impl->any_unlock_on_reset();
    }

    bool any_unlock_on_reset() const override {
        return std::any_of(backends_.begin(), backends_.end(),
                           [](const backend& b) { return b.impl->any_unlock_on_reset(); });
    }

private:
    // The block whose domains list the username's domain, searched with the bare name; else
    // the first block with the name unchanged (it may be part of the name, e.g. a UPN the
    // first directory's filter matches).
    std::pair<const backend*, std::string> route(std::string_view username) const {
        auto [domain, bare] = split_domain(username);
        if (!domain.empty()) {
            const std::string wanted = text::ascii_lower(domain);
            for (const auto& b : backends_) {
                if (std::find(b.domains.begin(), b.domains.end(), wanted) != b.domains.end()) {
                    return {&b, std::move(bare)};
                }
            }
        }
        return {&backends_.front(), std::string(username)};
    }

    directory& owner(const directory_user& user) {
        for (const auto& b : backends_) {
            if (b.name == user.directory) {
                return *b.impl;
            }
        }
        throw std::logic_error("directory_router: user from an unknown directory");
    }

    std::vector<backend> backends_;
};

}  // namespace

std::pair<std::string, std::string> split_domain(std::string_view username) {
    if (const auto backslash = username.find('\\');
        backslash != std::string_view::npos && backslash > 0 && backslash + 1 < username.size()) {
        return {std::string(username.substr(0, backslash)),
                std::string(username.substr(backslash + 1))};
    }
    if (const auto at = username.rfind('@');
        at != std::string_view::npos && at > 0 && at + 1 < username.size()) {
        return {std::string(username.substr(at + 1)), std::string(username.substr(0, at))};
    }
    return {std::string(), std::string(username)};
}

std::unique_ptr<directory> make_router(std::vector<routed_directory> backends) {
    if (backends.empty()) {
        throw std::invalid_argument("directories: none configured");
    }
    for (auto& b : backends) {
        for (auto& d : b.domains) {
            d = text::ascii_lower(d);
        }
    }
    return std::make_unique<directory_router>(std::move(backends));
}

std::unique_ptr<directory> make_directories(std::vector<directory_settings> blocks) {
    if (blocks.empty()) {
        throw std::invalid_argument("directories: none configured");
    }
    if (blocks.size() == 1 && blocks.front().domains.empty()) {
        return make_directory(std::move(blocks.front()));
    }
    std::vector<routed_directory> backends;
    backends.reserve(blocks.size());
    for (auto& block : blocks) {
        routed_directory b;
        b.name = block.name;
        b.domains = block.domains;
        b.impl = make_directory(std::move(block));
        backends.push_back(std::move(b));
    }
    return make_router(std::move(backends));
}

}  // namespace pwresetd::ldap
