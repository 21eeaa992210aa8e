// Fuzz target: the daemon's real HTTP session (daemon/http_session.hpp) over an in-memory
// stream, with the input delivered in reads of 1..64 bytes (the first byte picks the read
// size): request lines, headers, framing, chunked bodies, pipelining, limits,
// authentication and routing, the JSON decoding of bodies. Routed requests go to a
// recording handler, so no directory or state is involved.
// Properties: the session never crashes, hangs or leaks a connection count; every reply
// it writes is an HTTP/1.1 response; nothing reaches the handler with a body over the
// limit; a refused framing is answered at most once per connection.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "support/http_session_driver.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    static pwresetd::testing::session_driver driver;
    const std::size_t chunk = 1 + (data[0] % 64);
    // Requests are more interesting with a valid key in them: "@KEY@" stands for it.
    std::string input(reinterpret_cast<const char*>(data + 1), size - 1);  // NOLINT
    for (auto at = input.find("@KEY@"); at != std::string::npos; at = input.find("@KEY@")) {
        input.replace(at, 5, pwresetd::testing::driver_api_key);
    }
    const std::size_t calls_before = driver.handler().calls().size();
    const std::string out = driver.run(input, chunk);
    FUZZ_CHECK(driver.open_connections() == 0);
    FUZZ_CHECK(out.empty() || out.starts_with("HTTP/1.1 "));
    const auto calls = driver.handler().calls();
    for (std::size_t i = calls_before; i < calls.size(); ++i) {
        FUZZ_CHECK(calls[i].size() <= 1024);  // driver_config's max_body_bytes
    }
    return 0;
}
