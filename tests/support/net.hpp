#pragma once
// Loopback ports for servers a test starts or for URIs that must find nobody listening.

namespace pwresetd::testing {

// A TCP port on 127.0.0.1 that was free a moment ago: bound to port 0, read back, closed.
// Nothing listens on it, but another process may take it before the caller does: a
// server started on it should be retried on a new port when it cannot bind.
// Throws std::system_error when no socket can be bound.
[[nodiscard]] int free_port();

}  // namespace pwresetd::testing
