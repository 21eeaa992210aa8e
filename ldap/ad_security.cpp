#include "ldap/ad_security.hpp"

#include <algorithm>
#include <cstdint>

#include "common/crypto.hpp"

namespace pwresetd::ldap {
namespace {

// SECURITY_DESCRIPTOR control flag and ACE constants (MS-DTYP 2.4.6, 2.4.4.1, 2.4.4.3).
constexpr std::uint16_t se_dacl_present = 0x0004;
constexpr std::uint8_t access_allowed = 0x00;
constexpr std::uint8_t access_denied = 0x01;
constexpr std::uint8_t access_allowed_object = 0x05;
constexpr std::uint8_t access_denied_object = 0x06;
constexpr std::uint8_t inherit_only = 0x08;
constexpr std::uint32_t object_type_present = 0x1;
constexpr std::uint32_t inherited_object_type_present = 0x2;
// ADS_RIGHT_DS_CONTROL_ACCESS, and GENERIC_ALL (mapped to every right).
constexpr std::uint32_t right_ds_control_access = 0x100;
constexpr std::uint32_t generic_all = 0x10000000;

std::uint32_t le(std::string_view b, std::size_t at, std::size_t width) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < width; ++i) {
        v |= static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + i])) << (8 * i);
    }
    return v;
}

// The length of the SID at `at`, 0 when it does not fit.
std::size_t sid_length(std::string_view b, std::size_t at) {
    if (at + 8 > b.size()) {
        return 0;
    }
    const std::size_t n = 8 + 4 * static_cast<std::size_t>(static_cast<unsigned char>(b[at + 1]));
    return at + n <= b.size() ? n : 0;
}

}  // namespace

std::optional<std::string> sid_to_string(std::string_view b) {
    const std::size_t n = sid_length(b, 0);
    if (n == 0 || n != b.size() || b[0] != 1) {
        return std::nullopt;
    }
    std::uint64_t authority = 0;
    for (std::size_t i = 2; i < 8; ++i) {
        authority = (authority << 8U) | static_cast<unsigned char>(b[i]);  // big-endian
    }
    std::string out = "S-1-" + std::to_string(authority);
    for (std::size_t at = 8; at < n; at += 4) {
        out += "-" + std::to_string(le(b, at, 4));
    }
    return out;
}

std::optional<std::string> guid_to_bytes(std::string_view t) {
    if (t.size() != 36 || t[8] != '-' || t[13] != '-' || t[18] != '-' || t[23] != '-') {
        return std::nullopt;
    }
    std::string hex;
    for (const char c : t) {
        if (c != '-') {
            hex.push_back(c);
        }
    }
    const auto decoded = crypto::hex_decode(hex);
    if (!decoded || decoded->size() != 16) {
        return std::nullopt;
    }
    std::string bytes(decoded->begin(), decoded->end());
    // Data1 (4 bytes), Data2 and Data3 (2 each) are stored little-endian; Data4 as written.
    std::reverse(bytes.begin(), bytes.begin() + 4);
    std::reverse(bytes.begin() + 4, bytes.begin() + 6);
    std::reverse(bytes.begin() + 6, bytes.begin() + 8);
    return bytes;
}

access_decision control_access(std::string_view sd, std::string_view right,
                               const std::vector<std::string>& sids) {
    if (sd.size() < 20 || sd[0] != 1) {
        return access_decision::malformed;
    }
    const auto control = static_cast<std::uint16_t>(le(sd, 2, 2));
    const std::size_t dacl = le(sd, 16, 4);
    if ((control & se_dacl_present) == 0 || dacl == 0) {
        return access_decision::granted;  // NULL DACL: no access control at all
    }
    if (dacl + 8 > sd.size()) {
        return access_decision::malformed;
    }
    const std::size_t acl_size = le(sd, dacl + 2, 2);
    const std::size_t ace_count = le(sd, dacl + 4, 2);
    if (dacl + acl_size > sd.size()) {
        return access_decision::malformed;
    }
    const std::string_view acl = sd.substr(dacl, acl_size);
    std::size_t at = 8;
    for (std::size_t i = 0; i < ace_count; ++i) {
        if (at + 8 > acl.size()) {
            return access_decision::malformed;
        }
        const auto type = static_cast<std::uint8_t>(acl[at]);
        const auto flags = static_cast<std::uint8_t>(acl[at + 1]);
        const std::size_t size = le(acl, at + 2, 2);
        if (size < 8 || at + size > acl.size()) {
            return access_decision::malformed;
        }
        const std::string_view ace = acl.substr(at, size);
        at += size;
        if ((flags & inherit_only) != 0) {
            continue;
        }
        const bool object = type == access_allowed_object || type == access_denied_object;
        if (!object && type != access_allowed && type != access_denied) {
            continue;  // audit, callback and other ACE types grant nothing
        }
        const std::uint32_t mask = le(ace, 4, 4);
        std::size_t sid_at = 8;
        bool names_right = true;
        if (object) {
            if (ace.size() < 12) {
                return access_decision::malformed;
            }
            const std::uint32_t object_flags = le(ace, 8, 4);
            sid_at = 12;
            if ((object_flags & object_type_present) != 0) {
                if (ace.size() < sid_at + 16) {
                    return access_decision::malformed;
                }
                names_right = ace.substr(sid_at, 16) == right;
                sid_at += 16;
            }
            // The inherited object type only steered inheritance; on the object the ACE
            // applies as it stands.
            if ((object_flags & inherited_object_type_present) != 0) {
                sid_at += 16;
            }
        }
        const std::size_t sid_size = sid_length(ace, sid_at);
        if (sid_size == 0) {
            return access_decision::malformed;
        }
        if ((mask & (right_ds_control_access | generic_all)) == 0 || !names_right) {
            continue;
        }
        const std::string_view sid = ace.substr(sid_at, sid_size);
        if (std::find(sids.begin(), sids.end(), sid) == sids.end()) {
            continue;
        }
        return type == access_allowed || type == access_allowed_object ? access_decision::granted
                                                                       : access_decision::denied;
    }
    return access_decision::not_granted;
}

}  // namespace pwresetd::ldap
