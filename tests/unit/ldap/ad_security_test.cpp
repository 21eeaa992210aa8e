// ldap/ad_security.cpp: SIDs, GUIDs and the control-access evaluation pwresetctl doctor
// uses for the Reset Password right. One real descriptor (Samba 4.17, CN=alice of the lab,
// DACL only, delegation to RID 1102 on OU=people inherited) and synthetic ones for order,
// deny, inherit-only and malformed input.
#include <openssl/evp.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "ldap/ad_security.hpp"
#include "support/files.hpp"

using namespace pwresetd::ldap;

namespace {

std::string base64_decode(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
        text.pop_back();
    }
    std::string out(text.size(), '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(text.data()),
                                  static_cast<int>(text.size()));
    REQUIRE(n >= 0);
    out.resize(static_cast<std::size_t>(n));
    while (text.ends_with('=')) {  // EVP_DecodeBlock counts the padding as zero bytes
        text.pop_back();
        out.pop_back();
    }
    return out;
}

// S-1-5-21-699894901-694472568-383056439-RID, the lab domain's SIDs.
std::string domain_sid(std::uint32_t rid) {
    std::string s = {1, 5, 0, 0, 0, 0, 0, 5};
    for (const std::uint32_t v : {21U, 699894901U, 694472568U, 383056439U, rid}) {
        for (int i = 0; i < 4; ++i) {
            s.push_back(static_cast<char>((v >> (8 * i)) & 0xffU));
        }
    }
    return s;
}

void put32(std::string& s, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) {
        s.push_back(static_cast<char>((v >> (8 * i)) & 0xffU));
    }
}

struct ace {
    std::uint8_t type;
    std::uint8_t flags;
    std::uint32_t mask;
    std::string object_type;  // empty: none
    std::string sid;
};

// A self-relative descriptor with only a DACL.
std::string descriptor(const std::vector<ace>& aces) {
    std::string acl;
    for (const auto& a : aces) {
        std::string body;
        put32(body, a.mask);
        const bool object = a.type == 5 || a.type == 6;
        if (object) {
            put32(body, a.object_type.empty() ? 0 : 1);
            body += a.object_type;
        }
        body += a.sid;
        const auto size = static_cast<std::uint16_t>(4 + body.size());
        acl += std::string{static_cast<char>(a.type), static_cast<char>(a.flags),
                           static_cast<char>(size & 0xff), static_cast<char>(size >> 8)} +
               body;
    }
    const auto acl_size = static_cast<std::uint16_t>(8 + acl.size());
    const auto count = static_cast<std::uint16_t>(aces.size());
    std::string sd = {1, 0, 0x04, static_cast<char>(0x80)};  // DACL present, self-relative
    put32(sd, 0);
    put32(sd, 0);
    put32(sd, 0);
    put32(sd, 20);
    sd += std::string{4,
                      0,
                      static_cast<char>(acl_size & 0xff),
                      static_cast<char>(acl_size >> 8),
                      static_cast<char>(count & 0xff),
                      static_cast<char>(count >> 8),
                      0,
                      0};
    return sd + acl;
}

const std::string reset = *guid_to_bytes(reset_password_right);
const std::string other_right = *guid_to_bytes("ab721a53-1e2f-11d0-9819-00aa0040529b");

}  // namespace

TEST_CASE("sid_to_string and guid_to_bytes", "[ad_security]") {
    CHECK(sid_to_string(domain_sid(1102)) == "S-1-5-21-699894901-694472568-383056439-1102");
    CHECK(sid_to_string(std::string{1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}) == "S-1-1-0");
    CHECK_FALSE(sid_to_string(std::string{1, 2, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0}));  // short
    CHECK_FALSE(sid_to_string(""));
    // MS-DTYP 2.3.4.2: Data1..3 little-endian.
    CHECK(*guid_to_bytes("00299570-246d-11d0-a768-00aa006e0529") ==
          std::string("\x70\x95\x29\x00\x6d\x24\xd0\x11\xa7\x68\x00\xaa\x00\x6e\x05\x29", 16));
    CHECK_FALSE(guid_to_bytes("00299570-246d-11d0-a768-00aa006e052"));
    CHECK_FALSE(guid_to_bytes("0029957g-246d-11d0-a768-00aa006e0529"));
}

TEST_CASE("control_access on Samba's descriptor of a delegated user", "[ad_security]") {
    const char* source = std::getenv("PWRESETD_SOURCE_DIR");
    const std::string sd = base64_decode(pwresetd::testing::read_file(
        std::string(source != nullptr ? source : PWRESETD_DEFAULT_SOURCE_DIR) +
        "/tests/fixtures/ad/alice-dacl.b64"));
    const std::string everyone = {1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    const std::string authenticated = {1, 1, 0, 0, 0, 0, 0, 5, 11, 0, 0, 0};
    // svc-pwreset (1102) holds the inherited (OA;CIID;CR;00299570-...;user;SID) ACE.
    CHECK(control_access(sd, reset, {domain_sid(1102), everyone, authenticated}) ==
          access_decision::granted);
    // svc-undelegated (1103) with Domain Users and the well-known groups: nothing grants it.
    CHECK(control_access(sd, reset, {domain_sid(1103), domain_sid(513), everyone, authenticated}) ==
          access_decision::not_granted);
    // Domain Admins (512) hold every right on the object (A;;...CR...;;;DA).
    CHECK(control_access(sd, reset, {domain_sid(1103), domain_sid(512)}) ==
          access_decision::granted);
    // Truncated: never a verdict.
    CHECK(control_access(sd.substr(0, sd.size() / 2), reset, {domain_sid(1102)}) ==
          access_decision::malformed);
}

TEST_CASE("control_access: order, deny, object types, inherit-only", "[ad_security]") {
    const std::string me = domain_sid(1102);
    const std::string them = domain_sid(1103);
    constexpr std::uint32_t cr = 0x100;
    constexpr std::uint32_t wp = 0x20;
    CHECK(control_access(descriptor({{5, 0, cr, reset, me}}), reset, {me}) ==
          access_decision::granted);
    CHECK(control_access(descriptor({{5, 0, cr, reset, them}}), reset, {me}) ==
          access_decision::not_granted);
    CHECK(control_access(descriptor({{5, 0, cr, other_right, me}}), reset, {me}) ==
          access_decision::not_granted);
    CHECK(control_access(descriptor({{5, 0, wp, reset, me}}), reset, {me}) ==
          access_decision::not_granted);
    // No object type: every control access right.
    CHECK(control_access(descriptor({{0, 0, cr, "", me}}), reset, {me}) ==
          access_decision::granted);
    // The first ACE that names the right decides.
    CHECK(control_access(descriptor({{6, 0, cr, reset, me}, {5, 0, cr, reset, me}}), reset, {me}) ==
          access_decision::denied);
    CHECK(control_access(descriptor({{5, 0, cr, reset, me}, {6, 0, cr, reset, me}}), reset, {me}) ==
          access_decision::granted);
    CHECK(control_access(descriptor({{1, 0, cr, "", me}, {5, 0, cr, reset, me}}), reset, {me}) ==
          access_decision::denied);
    // Inherit-only ACEs are for children, not for this object.
    CHECK(control_access(descriptor({{5, 0x08 | 0x02, cr, reset, me}}), reset, {me}) ==
          access_decision::not_granted);
    // No DACL at all grants everything (a NULL DACL).
    std::string null_dacl = descriptor({});
    null_dacl[2] = 0;
    CHECK(control_access(null_dacl, reset, {me}) == access_decision::granted);
    CHECK(control_access("", reset, {me}) == access_decision::malformed);
}
