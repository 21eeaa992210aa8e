#pragma once
// A state store that times every call of the one it wraps: the histogram
// pwresetd_state_operation_duration_seconds{backend, operation} and, for calls that throw,
// pwresetd_state_errors_total{backend, operation}. Behaves exactly as the wrapped store
// (results and exceptions pass through).
#include <memory>
#include <string_view>

#include "store/state_store.hpp"

namespace pwresetd::store {

// `backend` names the wrapped store in the labels ("sqlite", "redis").
std::unique_ptr<state_store> with_timing(std::unique_ptr<state_store> inner,
                                         std::string_view backend);

}  // namespace pwresetd::store
