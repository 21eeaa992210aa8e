// Fuzz target: request body decoding (daemon/api.hpp decode_body): the duplicate-key pass
// and the parse into wiping memory.
// Properties: never crashes; an accepted body is a JSON object without a duplicate key at
// any depth; serializing it and decoding again gives the same value (doubles within 1e-9).
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "daemon/api.hpp"
#include "fuzz_check.hpp"

namespace {

bool has_duplicate_key(const boost::json::value& v) {
    if (v.is_object()) {
        std::set<std::string_view> seen;
        for (const auto& kv : v.get_object()) {
            if (!seen.insert(std::string_view(kv.key().data(), kv.key().size())).second ||
                has_duplicate_key(kv.value())) {
                return true;
            }
        }
    } else if (v.is_array()) {
        for (const auto& e : v.get_array()) {
            if (has_duplicate_key(e)) {
                return true;
            }
        }
    }
    return false;
}

// Equal, but doubles only to within a relative 1e-9: Boost.JSON 1.81 parses numbers fast,
// not correctly rounded, so a double written and read back may move by a few ULPs.
bool same(const boost::json::value& a, const boost::json::value& b) {
    if (a.is_double() && b.is_double()) {
        const double x = a.get_double();
        const double y = b.get_double();
        return x == y || std::fabs(x - y) <= 1e-9 * std::max(std::fabs(x), std::fabs(y));
    }
    if (a.kind() != b.kind()) {
        return false;
    }
    if (a.is_object()) {
        const auto& ao = a.get_object();
        const auto& bo = b.get_object();
        if (ao.size() != bo.size()) {
            return false;
        }
        for (const auto& kv : ao) {
            const auto* other = bo.if_contains(kv.key());
            if (other == nullptr || !same(kv.value(), *other)) {
                return false;
            }
        }
        return true;
    }
    if (a.is_array()) {
        const auto& aa = a.get_array();
        const auto& ba = b.get_array();
        if (aa.size() != ba.size()) {
            return false;
        }
        for (std::size_t i = 0; i < aa.size(); ++i) {
            if (!same(aa[i], ba[i])) {
                return false;
            }
        }
        return true;
    }
    return a == b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);  // NOLINT
    const auto decoded = pwresetd::daemon::decode_body(body);
    if (!decoded.value) {
        FUZZ_CHECK(!decoded.problem.empty());
        return 0;
    }
    FUZZ_CHECK(decoded.value->is_object());
    FUZZ_CHECK(!has_duplicate_key(*decoded.value));
    const std::string again = boost::json::serialize(*decoded.value);
    const auto round = pwresetd::daemon::decode_body(again);
    FUZZ_CHECK(round.value.has_value());
    FUZZ_CHECK(same(*round.value, *decoded.value));
    return 0;
}
