#pragma once
// The daemon's wall clock: whole seconds since the Unix epoch (UTC). Code that decides with
// "now" takes a clock_fn, unix_now by default, so a test can hand it a clock of its own.
#include <cstdint>
#include <functional>

namespace pwresetd {

using clock_fn = std::function<std::int64_t()>;

std::int64_t unix_now();

}  // namespace pwresetd
