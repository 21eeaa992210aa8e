#include "ldap/ad_password.hpp"

#include <lber.h>

#include <memory>
#include <span>

#include "common/text.hpp"
#include "ldap/handles.hpp"

namespace pwresetd::ldap {
namespace {

void put_unit(std::vector<unsigned char>& out, char32_t unit) {
    out.push_back(static_cast<unsigned char>(unit & 0xFFU));
    out.push_back(static_cast<unsigned char>((unit >> 8U) & 0xFFU));
}

// Wipes a vector's whole allocation (not only its current size) when it goes out of scope.
template <typename T>
class wipe_on_exit {
public:
    explicit wipe_on_exit(std::vector<T>& v) : v_(v) {}
    ~wipe_on_exit() { wipe(v_.data(), v_.capacity() * sizeof(T)); }
    wipe_on_exit(const wipe_on_exit&) = delete;
    wipe_on_exit& operator=(const wipe_on_exit&) = delete;

private:
    std::vector<T>& v_;
};

// A BerElement built with ber_alloc_t owns its buffer: free both (handles.hpp's
// ber_deleter is for the ones ldap_first_attribute hands out, which do not).
struct owned_ber_deleter {
    void operator()(BerElement* b) const noexcept { ber_free(b, 1); }
};

}  // namespace

std::optional<secret> encode_unicode_pwd(std::string_view utf8) {
    // decode_utf8 reserves one code point per input byte up front, so its buffer never
    // reallocates and wiping it here leaves no copy behind.
    auto decoded = text::decode_utf8(utf8);
    if (!decoded) {
        return std::nullopt;
    }
    const wipe_on_exit wipe_points(*decoded);
    std::size_t units = 2;  // the two quotes
    for (const char32_t cp : *decoded) {
        units += cp > 0xFFFF ? 2 : 1;
    }
    std::vector<unsigned char> out;
    out.reserve(units * 2);  // exact: push_back never reallocates (no stray copies)
    const wipe_on_exit wipe_out(out);
    put_unit(out, U'"');
    for (const char32_t cp : *decoded) {
        if (cp > 0xFFFF) {
            // UTF-16 surrogate pair (RFC 2781 section 2.1).
            const char32_t v = cp - 0x10000;
            put_unit(out, 0xD800 + (v >> 10U));
            put_unit(out, 0xDC00 + (v & 0x3FFU));
        } else {
            put_unit(out, cp);
        }
    }
    put_unit(out, U'"');
    return secret(std::span<const unsigned char>(out.data(), out.size()));
}

std::vector<unsigned char> policy_hints_value() {
    const std::unique_ptr<BerElement, owned_ber_deleter> ber(ber_alloc_t(LBER_USE_DER));
    if (!ber || ber_printf(ber.get(), "{i}", ber_int_t{1}) == -1) {
        return {};
    }
    berval* raw = nullptr;
    if (ber_flatten(ber.get(), &raw) != 0 || raw == nullptr) {
        return {};
    }
    const berval_ptr flat(raw);
    const auto* bytes = reinterpret_cast<const unsigned char*>(flat->bv_val);
    return {bytes, bytes + flat->bv_len};
}

}  // namespace pwresetd::ldap
