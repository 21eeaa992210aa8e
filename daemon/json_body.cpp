#include "daemon/json_body.hpp"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/memory_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/storage_ptr.hpp>

#include <cmath>
#include <new>
#include <unordered_set>
#include <vector>

#include "common/secret.hpp"

namespace pwresetd::daemon {
namespace json = boost::json;
namespace {

// Request bodies carry passwords and codes. Parsing into memory that is wiped on release
// keeps them from lingering in freed heap blocks.
// Boost.JSON 1.81 may free a block with another alignment than it asked for (ASan:
// new-delete-type-mismatch), so every block uses the default new alignment, which covers
// everything Boost.JSON stores.
class wiping_resource final : public json::memory_resource {
    void* do_allocate(std::size_t n, std::size_t align) override {
        if (align > __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
            throw std::bad_alloc();
        }
        return ::operator new(n);
    }
    void do_deallocate(void* p, std::size_t n, std::size_t /*align*/) override {
        wipe(p, n);
        ::operator delete(p);
    }
    [[nodiscard]] bool do_is_equal(const json::memory_resource& other) const noexcept override {
        return this == &other;
    }
};

// A SAX pass that only looks at keys: refuses a second occurrence of a key in one object.
// Values are never copied (they may be passwords).
class duplicate_key_check {
public:
    static constexpr std::size_t max_object_size = 1024;
    static constexpr std::size_t max_array_size = 1024;
    static constexpr std::size_t max_key_size = 1024;
    static constexpr std::size_t max_string_size = std::size_t(-1);

    bool duplicate = false;
    bool out_of_range = false;

    bool on_document_begin(boost::system::error_code&) { return true; }
    bool on_document_end(boost::system::error_code&) { return true; }
    bool on_object_begin(boost::system::error_code&) {
        objects_.emplace_back();
        return true;
    }
    bool on_object_end(std::size_t, boost::system::error_code&) {
        objects_.pop_back();
        return true;
    }
    bool on_array_begin(boost::system::error_code&) { return true; }
    bool on_array_end(std::size_t, boost::system::error_code&) { return true; }
    bool on_key_part(json::string_view part, std::size_t, boost::system::error_code&) {
        key_.append(part.data(), part.size());
        return true;
    }
    bool on_key(json::string_view part, std::size_t, boost::system::error_code& ec) {
        key_.append(part.data(), part.size());
        if (!objects_.back().insert(key_).second) {
            duplicate = true;
            ec = json::error::syntax;  // stops the parse; reported as a duplicate key
            return false;
        }
        key_.clear();
        return true;
    }
    bool on_string_part(json::string_view, std::size_t, boost::system::error_code&) { return true; }
    bool on_string(json::string_view, std::size_t, boost::system::error_code&) { return true; }
    bool on_number_part(json::string_view, boost::system::error_code&) { return true; }
    bool on_int64(std::int64_t, json::string_view, boost::system::error_code&) { return true; }
    bool on_uint64(std::uint64_t, json::string_view, boost::system::error_code&) { return true; }
    bool on_double(double d, json::string_view, boost::system::error_code& ec) {
        if (!std::isfinite(d)) {  // 1e999 would parse as infinity, which JSON cannot say
            out_of_range = true;
            ec = json::error::exponent_overflow;
            return false;
        }
        return true;
    }
    bool on_bool(bool, boost::system::error_code&) { return true; }
    bool on_null(boost::system::error_code&) { return true; }
    bool on_comment_part(json::string_view, boost::system::error_code&) { return true; }
    bool on_comment(json::string_view, boost::system::error_code&) { return true; }

private:
    std::vector<std::unordered_set<std::string>> objects_;
    std::string key_;
};

}  // namespace

decoded_body decode_body(std::string_view body) {
    decoded_body out;
    {
        json::basic_parser<duplicate_key_check> checker(json::parse_options{});
        boost::system::error_code ec;
        checker.write_some(false, body.data(), body.size(), ec);
        if (checker.handler().duplicate) {
            out.problem = "the body has a duplicate key";
            return out;
        }
        if (checker.handler().out_of_range) {
            out.problem = "the body has a number out of range";
            return out;
        }
        if (ec) {
            out.problem = "the body is not valid JSON";
            return out;
        }
    }
    const json::storage_ptr storage = json::make_shared_resource<wiping_resource>();
    boost::system::error_code ec;
    json::value doc = json::parse(body, ec, storage);
    if (ec) {
        out.problem = "the body is not valid JSON";
        return out;
    }
    if (!doc.is_object()) {
        out.problem = "the body must be a JSON object";
        return out;
    }
    out.value = std::move(doc);
    return out;
}

std::optional<std::string_view> field_reader::string(std::string_view key) {
    const auto* v = obj.if_contains(key);
    if (v == nullptr) {
        note("missing field '" + std::string(key) + "'");
        return std::nullopt;
    }
    if (!v->is_string()) {
        note("field '" + std::string(key) + "' must be a string");
        return std::nullopt;
    }
    const auto& s = v->get_string();
    return std::string_view(s.data(), s.size());
}

bool field_reader::optional_string(std::string_view key, std::optional<std::string_view>& out) {
    if (!obj.contains(key)) {
        return true;
    }
    out = string(key);
    return out.has_value();
}

void field_reader::note(std::string p) {
    if (problem.empty()) {
        problem = std::move(p);
    }
}

}  // namespace pwresetd::daemon
