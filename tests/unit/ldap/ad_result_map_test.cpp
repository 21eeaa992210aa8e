#include "ldap/ad_result_map.hpp"

#include <catch2/catch.hpp>
#include <string>

using namespace pwresetd::ldap;

namespace {

struct write_case {
    const char* server;  // who says this
    int result;
    const char* text;  // real texts: Samba 4.17 (lab) and Windows Server DCs
    write_status status;
    const char* rule;  // "" when not rejected
    const char* hint;  // a word the operator hint must contain ("" = no hint)
};

constexpr const char* windows_policy_detail =
    "the password does not meet the domain's length, complexity or history rules";

}  // namespace

TEST_CASE("map_ad_write_result: every row, Samba and Windows texts", "[ldap][ad_result_map]") {
    const write_case cases[] = {
        {"any", 0, "", write_status::ok, "", ""},
        // Policy refusals, Samba (reason named).
        {"samba", 19,
         "0000052D: Constraint violation - check_password_restrictions: the password is too "
         "short. It should be equal or longer than 10 characters!",
         write_status::rejected, "min_length", ""},
        {"samba", 19,
         "0000052D: Constraint violation - check_password_restrictions: the password does not "
         "meet the complexity criteria!",
         write_status::rejected, "complexity", ""},
        {"samba", 19,
         "0000052D: Constraint violation - check_password_restrictions: the password was "
         "already used (in history)!",
         write_status::rejected, "history", ""},
        {"samba", 19,
         "0000052D: Constraint violation - check_password_restrictions: the password was "
         "already used (previous password)!",
         write_status::rejected, "history", ""},
        {"samba", 19,
         "0000052D: Constraint violation - check_password_restrictions: password is too young "
         "to change!",
         write_status::rejected, "too_young", ""},
        {"samba", 19,
         "0000052D: Constraint violation - check_password_restrictions: the password doesn't "
         "fit due to a miscellaneous restriction!",
         write_status::rejected, "directory_policy", ""},
        {"samba", 19,
         "0000052D: Constraint violation - check_password_restrictions: password can't be "
         "changed on this account!",
         write_status::rejected, "directory_policy", ""},
        // Policy refusals, Windows (no reason: 52D covers them all).
        {"windows change", 19,
         "0000052D: AtrErr: DSID-03191083, #1:\n\t0: 0000052D: DSID-03191083, problem 1005 "
         "(CONSTRAINT_ATT_TYPE), data 0, Att 9005a (unicodePwd)\n",
         write_status::rejected, "directory_policy", ""},
        {"windows reset", 53,
         "0000052D: SvcErr: DSID-031A12D2, problem 5003 (WILL_NOT_PERFORM), data 0\n",
         write_status::rejected, "directory_policy", ""},
        {"windows reset", 53,
         "0000052D: SvcErr: DSID-03191083, problem 5003 (WILL_NOT_PERFORM), data 0",
         write_status::rejected, "directory_policy", ""},
        // Wrong current password on a change.
        {"samba", 19,
         "00000056: Constraint violation - check_password_restrictions: The old password "
         "specified doesn't match!",
         write_status::wrong_password, "", ""},
        {"windows", 19,
         "00000056: AtrErr: DSID-03190F80, #1:\n\t0: 00000056: DSID-03190F80, problem 1005 "
         "(CONSTRAINT_ATT_TYPE), data 0, Att 9005a (unicodePwd)\n",
         write_status::wrong_password, "", ""},
        // Locked account on a change.
        {"samba", 19,
         "00000775: Password change not permitted, account locked out! at "
         "../../source4/dsdb/samdb/ldb_modules/password_hash.c:3929:setup_io",
         write_status::locked, "", ""},
        {"windows", 19,
         "00000775: AtrErr: DSID-03190F80, #1:\n\t0: 00000775: DSID-03190F80, problem 1005 "
         "(CONSTRAINT_ATT_TYPE), data 0, Att 9005a (unicodePwd)\n",
         write_status::locked, "", ""},
        // Delegation missing.
        {"windows", 50,
         "00000005: SecErr: DSID-03152857, problem 4003 (INSUFF_ACCESS_RIGHTS), data 0\n",
         write_status::failed, "", "Reset Password"},
        {"windows", 50,
         "00002098: SecErr: DSID-03150F94, problem 4003 (INSUFF_ACCESS_RIGHTS), data 0\n",
         write_status::failed, "", "lockoutTime"},
        {"samba", 50, "error in module acl: insufficient access rights during LDB_MODIFY (50)",
         write_status::failed, "", "Reset Password"},
        // No encryption, or a malformed value.
        {"windows", 53,
         "0000001F: SvcErr: DSID-031A12D2, problem 5003 (WILL_NOT_PERFORM), data 0\n",
         write_status::failed, "", "encrypted"},
        {"samba", 8, "BindSimple: Transport encryption required.", write_status::failed, "",
         "encrypted"},
        {"any", 13, "", write_status::failed, "", "encrypted"},
        // Transient.
        {"any", 51, "", write_status::unavailable, "", ""},
        {"any", 52, "", write_status::unavailable, "", ""},
        {"libldap", -1, "Can't contact LDAP server", write_status::unavailable, "", ""},
        {"libldap", -11, "", write_status::unavailable, "", ""},
        {"libldap", -5, "no answer within timeout_ms", write_status::unavailable, "", ""},
        // Not the password's fault, not transient.
        {"samba", 19,
         "check_password_restrictions: You need to provide the old password in order to change "
         "it!",
         write_status::failed, "", ""},
        {"windows", 32,
         "0000208D: NameErr: DSID-03100241, problem 2001 (NO_OBJECT), data 0, best match of:\n\t"
         "'OU=people,DC=example,DC=test'\n",
         write_status::failed, "", ""},
        {"windows", 12,
         "00000057: LdapErr: DSID-0C090D8A, comment: Error processing control, data 0, v4563",
         write_status::failed, "", ""},
        {"windows", 21,
         "00000057: LdapErr: DSID-0C090C3E, comment: Error in attribute conversion operation, "
         "data 0, v4563",
         write_status::failed, "", ""},
        {"samba", 53, "", write_status::failed, "", ""},
        {"any", 16, "", write_status::failed, "", ""},
        {"any", 80, "", write_status::failed, "", ""},
    };
    for (const auto& c : cases) {
        INFO(c.server << " result=" << c.result << " text=" << c.text);
        const write_result r = map_ad_write_result(c.result, c.text);
        CHECK(r.status == c.status);
        CHECK_FALSE(r.unlocked);
        CHECK(r.diagnostic.find("result=" + std::to_string(c.result)) != std::string::npos);
        if (c.status == write_status::rejected) {
            REQUIRE(r.reason.has_value());
            CHECK(r.reason->rule == c.rule);
            if (std::string_view(c.server).rfind("windows", 0) == 0) {
                CHECK(r.reason->detail == windows_policy_detail);
            } else {
                CHECK(r.reason->detail == c.text);
            }
            CHECK(r.diagnostic.find("ad=0000052D") != std::string::npos);
        } else {
            CHECK_FALSE(r.reason.has_value());
        }
        const std::string_view hint = ad_write_hint(c.result, c.text);
        if (std::string_view(c.hint).empty()) {
            CHECK(hint.empty());
        } else {
            CHECK(hint.find(c.hint) != std::string_view::npos);
        }
    }
}

TEST_CASE("ad_error_code: the 8 hex digits before the colon", "[ldap][ad_result_map]") {
    CHECK(ad_error_code("0000052D: Constraint violation") == 0x52Du);
    CHECK(ad_error_code("0000052d: lower case") == 0x52Du);
    CHECK(ad_error_code("00000056: x") == 0x56u);
    CHECK(ad_error_code("80090308: LdapErr: DSID-0C09041C") == 0x80090308u);
    CHECK(ad_error_code("00000775:") == 0x775u);
    CHECK_FALSE(ad_error_code("").has_value());
    CHECK_FALSE(ad_error_code("52D: short").has_value());
    CHECK_FALSE(ad_error_code("0000052G: not hex").has_value());
    CHECK_FALSE(ad_error_code("0000052D no colon").has_value());
    CHECK_FALSE(ad_error_code("error in module acl: insufficient access").has_value());
}

TEST_CASE("ad_bind_data_code: the code after 'data'", "[ldap][ad_result_map]") {
    CHECK(ad_bind_data_code("80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext "
                            "error, data 52e, v4563") == 0x52Eu);
    CHECK(ad_bind_data_code("80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext "
                            "error, data 775, v1db1") == 0x775u);
    CHECK(ad_bind_data_code("..., data 773, v2580") == 0x773u);
    CHECK(ad_bind_data_code("..., data 52e") == 0x52Eu);
    CHECK_FALSE(ad_bind_data_code("").has_value());
    CHECK_FALSE(ad_bind_data_code("Invalid credentials").has_value());
    CHECK_FALSE(ad_bind_data_code("metadata 775, v1").has_value());
    CHECK_FALSE(ad_bind_data_code("data xyz, v1").has_value());
}

TEST_CASE("map_ad_bind_result: every data code", "[ldap][ad_result_map]") {
    struct bind_case {
        int result;
        const char* text;
        bind_status status;
    };
    const bind_case cases[] = {
        {0, "", bind_status::ok},
        // Windows Server 2016-2022 (v4563), 2012 R2 (v2580 / v3839), Samba 4.17 (v1db1).
        {49,
         "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 52e, v4563",
         bind_status::invalid_credentials},
        {49,
         "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1",
         bind_status::invalid_credentials},
        {49,
         "80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 525, v2580",
         bind_status::invalid_credentials},
        {49,
         "80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 530, v2580",
         bind_status::invalid_credentials},
        {49,
         "80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 531, v2580",
         bind_status::invalid_credentials},
        {49,
         "80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 532, v3839",
         bind_status::must_change},
        {49,
         "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 533, v1db1",
         bind_status::invalid_credentials},
        {49,
         "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 701, v4563",
         bind_status::invalid_credentials},
        {49,
         "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 773, v1db1",
         bind_status::must_change},
        {49,
         "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 773, v4563",
         bind_status::must_change},
        {49,
         "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 775, v1db1",
         bind_status::locked},
        {49,
         "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 775, v4563",
         bind_status::locked},
        {49, "", bind_status::invalid_credentials},
        {49, "80090308: LdapErr: DSID-0C09041C, data 999, v4563", bind_status::invalid_credentials},
        // Not a verdict on the password.
        {8, "BindSimple: Transport encryption required.", bind_status::unavailable},
        {51, "", bind_status::unavailable},
        {52, "", bind_status::unavailable},
        {53, "", bind_status::unavailable},
        {-1, "Can't contact LDAP server", bind_status::unavailable},
        {-5, "", bind_status::unavailable},
        {-11, "", bind_status::unavailable},
        {1, "", bind_status::unavailable},
    };
    for (const auto& c : cases) {
        INFO("result=" << c.result << " text=" << c.text);
        CHECK(map_ad_bind_result(c.result, c.text) == c.status);
    }
}
