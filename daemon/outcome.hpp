#pragma once
// What a service call can end in, independent of HTTP. The API layer maps a failure code to
// its status and error string (API.md) in one table; services never see HTTP.
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "ldap/directory.hpp"

namespace pwresetd::daemon {

enum class failure_code {
    bad_request,
    invalid_code,
    locked,
    verification_required,
    password_rejected,
    reset_expired,
    enrollment_expired,
    invalid_credentials,
    directory_unavailable,
    rate_limited,
    factor_proof_required,
    unlock_disabled,
    state_unavailable,
    internal,
};

// One reason a password is refused: an API rule code, the rule's number when it has one, and
// the directory's own words (shown for directory_policy).
struct violation {
    std::string rule;
    std::optional<std::int64_t> value;
    std::string detail;
};

struct failure {
    failure_code code = failure_code::internal;
    std::string detail;                 // bad_request: which field and why (no secrets)
    std::int64_t retry_after = 0;       // locked, rate_limited
    int remaining_methods = 0;          // verification_required
    std::vector<violation> violations;  // password_rejected
};

template <class T>
using outcome = std::variant<T, failure>;

inline failure fail(failure_code code, std::string detail = {}) {
    failure f;
    f.code = code;
    f.detail = std::move(detail);
    return f;
}

// Who is asking, for logs and the audit trail.
struct request_context {
    std::string request_id;
    std::string client;     // the authenticated portal's configured name
    std::string remote_ip;  // the end user's address (X-Forwarded-For from trusted clients)
};

}  // namespace pwresetd::daemon
