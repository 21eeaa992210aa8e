#pragma once
// Usernames as the services take them: the API's rules, and the one canonical form.

#include <string>
#include <string_view>

namespace pwresetd::daemon {

// Username rules of API.md: 1..256 bytes, no control characters. Empty when acceptable,
// else the reason.
std::string username_problem(std::string_view username);

// The one form of a username that lookups, counters, decoy keys and hints use, so that
// variants a directory treats as the same name are the same name here too, for real and
// made-up users alike (else a made-up name would show itself by counting "carol" and
// "ＣＡＲＯＬ" apart where the directory finds one account for both). RFC 4518 string
// preparation as directories apply it to names: characters mapped to nothing are dropped,
// those mapped to a space become one; letters are lower-cased one by one (so "İ" is "i", as
// slapd and AD compare it), then case-folded and NFKC-normalized (full-width and other
// compatibility forms, "ß" as "ss"); edge spaces are trimmed and runs of spaces become one.
// Bytes that are not UTF-8 are kept as they are.
std::string canonical_username(std::string_view username);

}  // namespace pwresetd::daemon
