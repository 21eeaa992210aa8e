#pragma once
// `pwresetctl audit verify [--json] FILE...`: checks the audit trail's hash chain
// (common/audit_chain.hpp) over FILEs given oldest first, as one trail. Prints OK with the
// number of lines, or the first problem as FILE:LINE, what it is, and why.
// Exit status: 0 intact, 1 a problem found, 2 usage or a file that cannot be read.
#include <span>

namespace pwresetd::ctl {

int audit_verify(std::span<char* const> args);

}  // namespace pwresetd::ctl
