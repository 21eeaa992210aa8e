// Fuzz target: Active Directory diagnostics (ldap/ad_result_map.hpp). Input: one byte, read
// as a signed LDAP result code (covers 0..127 and libldap's negative API errors), then the
// server's diagnostic text. Properties: ad_error_code answers exactly for 8 hex digits and
// a colon; a `data` code is at most 8 hex digits; a rejected write always has a reason and
// every write result a diagnostic that carries the server text; the hint comes from the
// same row as the status (a rejection or success has none).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "ldap/ad_result_map.hpp"

namespace {

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

std::uint32_t hex_of(std::string_view digits) {
    std::uint32_t v = 0;
    for (const char c : digits) {
        const auto d = static_cast<std::uint32_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        v = (v << 4U) | d;
    }
    return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace pwresetd::ldap;
    pwresetd::fuzz::input in(data, size);
    const int byte = in.byte();
    const int ldap_result = byte < 128 ? byte : byte - 256;  // -128..127
    const std::string_view text = in.rest_text();

    const auto code = ad_error_code(text);
    bool starts_with_code = text.size() >= 9 && text[8] == ':';
    for (std::size_t i = 0; starts_with_code && i < 8; ++i) {
        starts_with_code = is_hex(text[i]);
    }
    FUZZ_CHECK(code.has_value() == starts_with_code);
    if (code) {
        FUZZ_CHECK(*code == hex_of(text.substr(0, 8)));
    }

    const auto data_code = ad_bind_data_code(text);
    if (data_code) {
        FUZZ_CHECK(text.find("data ") != std::string_view::npos);
    }

    const write_result written = map_ad_write_result(ldap_result, text);
    FUZZ_CHECK(written.reason.has_value() == (written.status == write_status::rejected));
    if (written.reason) {
        FUZZ_CHECK(!written.reason->rule.empty());
    }
    FUZZ_CHECK(written.diagnostic.starts_with("result=" + std::to_string(ldap_result) + " ("));
    FUZZ_CHECK(written.diagnostic.ends_with(" text=" + std::string(text)));
    FUZZ_CHECK((written.status == write_status::ok) == (ldap_result == 0));

    const std::string_view hint = ad_write_hint(ldap_result, text);
    if (!hint.empty()) {
        FUZZ_CHECK(written.status == write_status::failed);
    }

    const bind_status bound = map_ad_bind_result(ldap_result, text);
    FUZZ_CHECK((bound == bind_status::ok) == (ldap_result == 0));
    if (ldap_result != 49 && ldap_result != 0) {
        FUZZ_CHECK(bound == bind_status::unavailable);
    }
    return 0;
}
