#include <catch2/catch.hpp>
#include <string>

#include "ldap/directory.hpp"

using namespace std::string_literals;
using pwresetd::ldap::escape_dn_value;
using pwresetd::ldap::escape_filter_value;
using pwresetd::ldap::expand_user_filter;

TEST_CASE("escape_filter_value follows RFC 4515", "[ldap][escape]") {
    // RFC 4515 section 4 examples.
    CHECK(escape_filter_value("Parens R Us (for all your parenthetical needs)") ==
          "Parens R Us \\28for all your parenthetical needs\\29");
    CHECK(escape_filter_value("*") == "\\2a");
    CHECK(escape_filter_value("C:\\MyFile") == "C:\\5cMyFile");
    CHECK(escape_filter_value("\0\0\0\4"s) == "\\00\\00\\00\x04");
    CHECK(escape_filter_value("a)(uid=*") == "a\\29\\28uid=\\2a");
    CHECK(escape_filter_value("plain-user.name_1@example.test") ==
          "plain-user.name_1@example.test");
    CHECK(escape_filter_value("").empty());
}

TEST_CASE("escape_filter_value leaves non-ASCII bytes as they are", "[ldap][escape]") {
    // "Lučić", "ÅÄÖ", "日本": UTF-8 is a valid assertion value as is.
    CHECK(escape_filter_value("Lu\xc4\x8di\xc4\x87") == "Lu\xc4\x8di\xc4\x87");
    CHECK(escape_filter_value("\xc3\x85\xc3\x84\xc3\x96*") == "\xc3\x85\xc3\x84\xc3\x96\\2a");
    CHECK(escape_filter_value("\xe6\x97\xa5\xe6\x9c\xac") == "\xe6\x97\xa5\xe6\x9c\xac");
    CHECK(escape_filter_value("\xff\xfe") == "\xff\xfe");
}

TEST_CASE("escape_dn_value follows RFC 4514", "[ldap][escape]") {
    // RFC 4514 section 4 examples (values only).
    CHECK(escape_dn_value("Sales, Engineering") == "Sales\\, Engineering");
    CHECK(escape_dn_value("Before+After") == "Before\\+After");
    CHECK(escape_dn_value("Lu\xc4\x8di\xc4\x87") == "Lu\xc4\x8di\xc4\x87");
    CHECK(escape_dn_value("James \"Jim\" Smith, III") == "James \\\"Jim\\\" Smith\\, III");
    CHECK(escape_dn_value("a;b<c>d=e\\f") == "a\\;b\\<c\\>d\\=e\\\\f");
    CHECK(escape_dn_value("#hash") == "\\#hash");
    CHECK(escape_dn_value("in#side") == "in#side");
    CHECK(escape_dn_value(" lead and trail ") == "\\ lead and trail\\ ");
    CHECK(escape_dn_value("in side") == "in side");
    CHECK(escape_dn_value(" ") == "\\ ");
    CHECK(escape_dn_value("nul\0x"s) == "nul\\00x");
    CHECK(escape_dn_value("").empty());
}

TEST_CASE("expand_user_filter escapes every {username}", "[ldap][escape]") {
    CHECK(expand_user_filter("(uid={username})", "alice") == "(uid=alice)");
    CHECK(expand_user_filter("(|(uid={username})(mail={username}))", "a*") ==
          "(|(uid=a\\2a)(mail=a\\2a))");
    CHECK(expand_user_filter("(&(objectClass=user)(sAMAccountName={username}))", "alice)(uid=*") ==
          "(&(objectClass=user)(sAMAccountName=alice\\29\\28uid=\\2a))");
    CHECK(expand_user_filter("(uid={username})", "*") == "(uid=\\2a)");
    CHECK(expand_user_filter("(uid={username})", "\\") == "(uid=\\5c)");
    CHECK(expand_user_filter("(uid={username})", "x\0y"s) == "(uid=x\\00y)");
    // The value is inserted once per placeholder, never re-scanned for "{username}".
    CHECK(expand_user_filter("(uid={username})", "{username}") == "(uid={username})");
    CHECK(expand_user_filter("(uid={user})", "bob") == "(uid={user})");
    CHECK(expand_user_filter("{username}{username}", "()") == "\\28\\29\\28\\29");
}
