#include "ldap/ad_password.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using namespace pwresetd;
using namespace pwresetd::ldap;

namespace {

using bytes = std::vector<unsigned char>;

bytes encoded(std::string_view utf8) {
    const auto value = encode_unicode_pwd(utf8);
    REQUIRE(value.has_value());
    return {value->bytes().begin(), value->bytes().end()};
}

}  // namespace

TEST_CASE("encode_unicode_pwd: quoted UTF-16LE, byte for byte", "[ldap][ad_password]") {
    // MS-ADTS 3.1.1.3.1.5: '"' + password + '"', UTF-16LE, no terminator.
    CHECK(encoded("abc") == bytes{0x22, 0, 'a', 0, 'b', 0, 'c', 0, 0x22, 0});
    CHECK(encoded("") == bytes{0x22, 0, 0x22, 0});
    CHECK(encoded("Passw0rd!") == bytes{0x22, 0,   'P', 0,   'a', 0,   's', 0,   's', 0,    'w',
                                        0,    '0', 0,   'r', 0,   'd', 0,   '!', 0,   0x22, 0});
    // A quote or backslash inside is data, not syntax: no escaping (AD strips only the
    // first and last quote).
    CHECK(encoded("a\"b\\c") == bytes{0x22, 0, 'a', 0, 0x22, 0, 'b', 0, 0x5C, 0, 'c', 0, 0x22, 0});
    CHECK(encoded("\"") == bytes{0x22, 0, 0x22, 0, 0x22, 0});
    // é U+00E9 (UTF-8 C3 A9), € U+20AC (E2 82 AC), ü U+00FC.
    CHECK(encoded("\xC3\xA9") == bytes{0x22, 0, 0xE9, 0x00, 0x22, 0});
    CHECK(encoded("\xE2\x82\xAC") == bytes{0x22, 0, 0xAC, 0x20, 0x22, 0});
    CHECK(encoded("p\xC3\xBC") == bytes{0x22, 0, 'p', 0, 0xFC, 0x00, 0x22, 0});
    // Outside the BMP: U+1F600 (F0 9F 98 80) -> surrogates D83D DE00.
    CHECK(encoded("\xF0\x9F\x98\x80") == bytes{0x22, 0, 0x3D, 0xD8, 0x00, 0xDE, 0x22, 0});
    // The highest code point, U+10FFFF -> DBFF DFFF; the lowest above the BMP, U+10000.
    CHECK(encoded("\xF4\x8F\xBF\xBF") == bytes{0x22, 0, 0xFF, 0xDB, 0xFF, 0xDF, 0x22, 0});
    CHECK(encoded("\xF0\x90\x80\x80") == bytes{0x22, 0, 0x00, 0xD8, 0x00, 0xDC, 0x22, 0});
    // U+FFFF stays one unit.
    CHECK(encoded("\xEF\xBF\xBF") == bytes{0x22, 0, 0xFF, 0xFF, 0x22, 0});
}

TEST_CASE("encode_unicode_pwd: no normalization, no truncation", "[ldap][ad_password]") {
    // e + COMBINING ACUTE ACCENT stays two code points (NFC would make it U+00E9).
    CHECK(encoded("e\xCC\x81") == bytes{0x22, 0, 'e', 0, 0x01, 0x03, 0x22, 0});
    // Full-width A (U+FF21) is not folded to A (NFKC would).
    CHECK(encoded("\xEF\xBC\xA1") == bytes{0x22, 0, 0x21, 0xFF, 0x22, 0});
    // Trailing spaces are kept.
    CHECK(encoded("a  ") == bytes{0x22, 0, 'a', 0, ' ', 0, ' ', 0, 0x22, 0});
    const std::string long_password(1000, 'x');
    const bytes b = encoded(long_password);
    CHECK(b.size() == std::size_t{2} * (1000 + 2));
    CHECK(b[std::size_t{2} * 1000] == 'x');
    CHECK(b[std::size_t{2} * 1001] == 0x22);
}

TEST_CASE("encode_unicode_pwd: invalid UTF-8 is refused", "[ldap][ad_password]") {
    for (const std::string_view bad : {
             std::string_view("\xC3"),              // truncated sequence
             std::string_view("abc\xC3"),           // truncated at the end
             std::string_view("\xC0\xAF"),          // overlong '/'
             std::string_view("\xE0\x80\xAF"),      // overlong
             std::string_view("\xED\xA0\x80"),      // a surrogate (U+D800) encoded directly
             std::string_view("\xED\xBF\xBF"),      // U+DFFF
             std::string_view("\xF4\x90\x80\x80"),  // above U+10FFFF
             std::string_view("\xFF"),              // never valid
             std::string_view("\x80"),              // a lone continuation byte
             std::string_view("a\xE9z"),            // Latin-1 é
         }) {
        INFO("input bytes: " << bad.size());
        CHECK_FALSE(encode_unicode_pwd(bad).has_value());
    }
}

TEST_CASE("policy_hints_value: DER of SEQUENCE { INTEGER 1 }", "[ldap][ad_password]") {
    // MS-ADTS 3.1.1.3.4.1.27: LDAP_SERVER_POLICY_HINTS value, Flags = 1.
    CHECK(policy_hints_value() == bytes{0x30, 0x03, 0x02, 0x01, 0x01});
    CHECK(policy_hints_oid == "1.2.840.113556.1.4.2239");
    CHECK(policy_hints_deprecated_oid == "1.2.840.113556.1.4.2066");
}
