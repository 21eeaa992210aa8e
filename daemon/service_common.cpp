#include "daemon/service_common.hpp"

#include <algorithm>

#include "common/crypto.hpp"
#include "daemon/daemon_metrics.hpp"
#include "factors/codes.hpp"
#include "factors/totp.hpp"

namespace pwresetd::daemon {
namespace {

// RFC 3062: an empty newPasswd asks the server to generate one; never send that.
constexpr std::size_t max_password_bytes = 4096;

}  // namespace

factor_keys derive_factor_keys(const secret& master) {
    return {factors::derive_key(master, "pwresetd one-time code hash v1"),
            factors::derive_key(master, "pwresetd recovery code hash v1"),
            factors::derive_key(master, "pwresetd destination hint v1")};
}

std::string id_hash(std::string_view id) {
    return crypto::sha256_hex(id);
}

std::optional<failure> policy_failure(const policy::password_policy& policy, const secret& password,
                                      std::string_view username, std::string_view display_name) {
    failure f = fail(failure_code::password_rejected);
    if (password.empty()) {
        f.violations.push_back(
            {"min_length", static_cast<std::int64_t>(policy.config().min_length), ""});
        return f;
    }
    if (password.size() > max_password_bytes) {
        f.violations.push_back(
            {"max_length", static_cast<std::int64_t>(policy.config().max_length), ""});
        return f;
    }
    for (auto& v : policy.check(password.view(), {username, display_name})) {
        f.violations.push_back({std::move(v.rule), v.value, ""});
    }
    if (f.violations.empty()) {
        return std::nullopt;
    }
    return f;
}

violation directory_violation(const ldap::write_result& written) {
    if (written.reason) {
        return {written.reason->rule, std::nullopt, written.reason->detail};
    }
    return {"directory_policy", std::nullopt, ""};
}

std::string new_opaque_id() {
    return crypto::base64url_encode(crypto::random_bytes(32));
}

bool plausible_opaque_id(std::string_view id) {
    if (id.size() < 22 || id.size() > 128) {
        return false;
    }
    return std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_';
    });
}

bool issued_opaque_id(std::string_view id) {
    // 32 bytes: ten groups of 3 make 40 characters, the last 2 bytes make 3 more.
    constexpr std::size_t issued_length = 43;
    if (id.size() != issued_length || !plausible_opaque_id(id)) {
        return false;
    }
    // The last character carries 4 bits and 2 zero bits: its alphabet index is a multiple of 4.
    static constexpr std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    return alphabet.find(id.back()) % 4 == 0;
}

bool issued_enrollment_id(std::string_view id) {
    if (id.size() == 44 && id.front() == 'r') {
        id.remove_prefix(1);
    }
    return issued_opaque_id(id);
}

std::string password_failure_key(std::string_view user_or_decoy_key) {
    return "password:" + std::string(user_or_decoy_key);
}

failure wrong_password_failure(const store::failure_reservation& slot, int limit,
                               std::int64_t now) {
    if (!slot.reserved || slot.count >= limit) {
        if (slot.reserved) {  // this failure is the one that locks
            daemon_metrics::get().lockouts.with({"password"}).inc();
        }
        // One message whatever locked the account (API.md "Change"), pointing to the reset.
        auto f = fail(failure_code::locked, "password");
        f.retry_after = std::max<std::int64_t>(1, slot.expires_at - now);
        return f;
    }
    return fail(failure_code::invalid_credentials);
}

bool accept_totp_code(store::state_store& store, const factors::totp_params& params,
                      std::string_view user_key, const secret& key, std::string_view code,
                      std::int64_t now) {
    const auto last_step = store.last_totp_step(user_key);
    const auto step = factors::totp_match(key, code, now, params, last_step);
    return step.has_value() && store.accept_totp_step(user_key, *step);
}

bool consume_recovery_code(store::state_store& store, const factor_keys& keys,
                           std::string_view user_key, std::string_view code) {
    const auto normalized = factors::normalize_recovery_code(code);
    const std::string hash = factors::code_hash(keys.recovery, "recovery:" + std::string(user_key),
                                                normalized ? normalized->view() : code);
    return store.consume_recovery_code(user_key, hash) && normalized.has_value();
}

std::vector<secret> issue_recovery_codes(store::state_store& store, const factor_keys& keys,
                                         std::string_view user_key) {
    std::vector<secret> codes;
    std::vector<std::string> hashes;
    for (int i = 0; i < factors::recovery_code_count; ++i) {
        codes.push_back(factors::generate_recovery_code());
        // Hashed in the canonical form a user's typing is normalized to.
        const auto canonical = factors::normalize_recovery_code(codes.back().view());
        hashes.push_back(factors::code_hash(keys.recovery, "recovery:" + std::string(user_key),
                                            canonical->view()));
    }
    store.set_recovery_codes(user_key, hashes);
    return codes;
}

std::string user_key_for(const ldap::directory_user& user) {
    return "user:" + user.id;
}

std::string decoy_key_for(const ldap::directory& directory, std::string_view username) {
    return "decoy:" + directory.lookup_key(username);
}

}  // namespace pwresetd::daemon
