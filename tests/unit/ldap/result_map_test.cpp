#include <catch2/catch.hpp>
#include <string>

#include "ldap/directory.hpp"
#include "ldap/result_map.hpp"

using namespace pwresetd::ldap;

namespace {

struct write_case {
    int result;
    int ppolicy;
    const char* text;  // real slapd 2.5 texts
    write_status status;
    const char* rule;  // "" when not rejected
};

}  // namespace

TEST_CASE("map_openldap_write_result: every row of the table", "[ldap][result_map]") {
    const write_case cases[] = {
        {0, -1, "", write_status::ok, ""},
        {0, 65535, "", write_status::ok, ""},
        {19, 6, "Password fails quality checking policy", write_status::rejected, "min_length"},
        {19, 8, "Password is in history of old passwords", write_status::rejected, "history"},
        {19, 5, "Password fails quality checking policy", write_status::rejected, "complexity"},
        {19, 7, "Password is too young to change", write_status::rejected, "too_young"},
        {19, 3, "User alteration of password is not allowed", write_status::rejected,
         "directory_policy"},
        {19, 4, "Must supply old password to be changed as well as new one", write_status::rejected,
         "directory_policy"},
        {19, 0, "", write_status::rejected, "directory_policy"},
        {19, 1, "", write_status::rejected, "directory_policy"},
        {19, 2, "", write_status::rejected, "directory_policy"},
        {19, -1, "some other constraint", write_status::rejected, "directory_policy"},
        {51, -1, "", write_status::unavailable, ""},
        {52, -1, "", write_status::unavailable, ""},
        {-1, -1, "Can't contact LDAP server", write_status::unavailable, ""},
        {-11, -1, "", write_status::unavailable, ""},
        {-5, -1, "no answer within timeout_ms", write_status::unavailable, ""},
        {16, -1, "modify/delete: userPassword: no such value", write_status::unavailable, ""},
        {53, -1, "shadow context; no update referral", write_status::failed, ""},
        {50, -1, "no write access to parent", write_status::failed, ""},
        {50, 3, "User alteration of password is not allowed", write_status::failed, ""},
        {32, -1, "", write_status::failed, ""},
        {10, -1, "", write_status::failed, ""},
        {80, -1, "", write_status::failed, ""},
    };
    for (const auto& c : cases) {
        INFO("result=" << c.result << " ppolicy=" << c.ppolicy);
        const write_result r = map_openldap_write_result(c.result, c.ppolicy, c.text);
        CHECK(r.status == c.status);
        CHECK_FALSE(r.unlocked);
        if (c.status == write_status::rejected) {
            REQUIRE(r.reason.has_value());
            CHECK(r.reason->rule == c.rule);
            CHECK(r.reason->detail == c.text);
        } else {
            CHECK_FALSE(r.reason.has_value());
        }
        CHECK(r.diagnostic.rfind("result=" + std::to_string(c.result) + " (", 0) == 0);
        CHECK(r.diagnostic.find(" ppolicy=" + std::to_string(c.ppolicy) + " text=" + c.text) !=
              std::string::npos);
    }
}

TEST_CASE("map_openldap_write_result: the diagnostic format", "[ldap][result_map]") {
    const write_result r =
        map_openldap_write_result(19, 6, "Password fails quality checking policy");
    CHECK(r.diagnostic ==
          "result=19 (Constraint violation) ppolicy=6 text=Password fails quality checking policy");
}

TEST_CASE("map_openldap_bind_result: every row of the table", "[ldap][result_map]") {
    CHECK(map_openldap_bind_result(0, -1) == bind_status::ok);
    CHECK(map_openldap_bind_result(49, -1) == bind_status::invalid_credentials);
    CHECK(map_openldap_bind_result(49, 1) == bind_status::locked);
    CHECK(map_openldap_bind_result(0, 2) == bind_status::must_change);
    CHECK(map_openldap_bind_result(49, 0) == bind_status::must_change);
    CHECK(map_openldap_bind_result(51, -1) == bind_status::unavailable);
    CHECK(map_openldap_bind_result(52, -1) == bind_status::unavailable);
    CHECK(map_openldap_bind_result(-1, -1) == bind_status::unavailable);
    CHECK(map_openldap_bind_result(-11, -1) == bind_status::unavailable);
    CHECK(map_openldap_bind_result(-5, -1) == bind_status::unavailable);
    // Not a verdict on the password: never "invalid credentials".
    CHECK(map_openldap_bind_result(53, -1) == bind_status::unavailable);
    CHECK(map_openldap_bind_result(80, -1) == bind_status::unavailable);
}
