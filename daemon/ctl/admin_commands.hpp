#pragma once
// pwresetctl status, enroll, unenroll and unlock: each asks the daemon over the admin socket
// and prints its answer (or, with --json, the reply as it came). Exit status: 0 ok, 1 the
// daemon said no or reports a problem, 2 usage or no connection to the socket.
#include <span>

namespace pwresetd::ctl {

using arguments = std::span<char* const>;

int status_command(arguments args);
int enroll_command(arguments args);
int unenroll_command(arguments args);
int unlock_command(arguments args);

}  // namespace pwresetd::ctl
