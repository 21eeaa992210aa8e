// Fuzz target: request body decoding (daemon/api.hpp decode_body): the duplicate-key pass
// and the parse into wiping memory.
// Properties: never crashes; an accepted body is a JSON object without a duplicate key at
// any depth; serializing it and decoding again gives the same value.
#include <boost/json/serialize.hpp>

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
    FUZZ_CHECK(*round.value == *decoded.value);
    return 0;
}
