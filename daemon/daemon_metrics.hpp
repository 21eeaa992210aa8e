#pragma once
// The daemon's own metrics (the libraries register theirs: ldap/ directory operations and
// pool, store/ timed_store, factors/ courier), registered in metrics::registry::global()
// on first use with every label set they can take, so each series is exposed from the
// start and an update never inserts one. Label values come from fixed vocabularies: route
// patterns, outcome names, methods; never a username, an address or request text.
//
// Decoys: an outcome label may say "decoy" (the metrics are for operators only: loopback or
// mutual TLS), but counting is the same work for real and decoy requests and never changes
// a reply.
#include <string_view>

#include "common/metrics.hpp"

namespace pwresetd::daemon {

struct daemon_metrics {
    metrics::counter_family& requests;                // method, route, status
    metrics::counter_family& resets;                  // step, outcome
    metrics::counter_family& changes;                 // outcome
    metrics::counter_family& verify_failures;         // method
    metrics::counter_family& lockouts;                // kind
    metrics::counter_family& tls_handshake_failures;  // listener
    metrics::gauge_family& connections;               // listener
    metrics::gauge_family& in_flight;
    metrics::counter_family& reloads;   // outcome
    metrics::gauge_family& build_info;  // version
    metrics::gauge_family& start_time;

    static daemon_metrics& get();

    // One reply of the portal API; route "" when the request matched no route.
    void count_request(std::string_view method, std::string_view route, unsigned status);
};

}  // namespace pwresetd::daemon
