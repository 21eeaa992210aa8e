#pragma once
// `pwresetctl doctor [-c CONFIG] [--user NAME] [--json]`: checks, without the daemon and
// without changing anything in a directory, that every configured directory server can be
// reached over verified TLS, that the service account binds, finds users, and holds each
// right the configured mode needs; prints what is missing with the command that would grant
// it. Exit status: 0 all good (warnings allowed), 1 a problem found, 2 usage or a
// configuration that cannot be read. The bind password is never printed.
#include <span>

namespace pwresetd::ctl {

int doctor(std::span<char* const> args);

}  // namespace pwresetd::ctl
