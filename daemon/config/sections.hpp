#pragma once
// One reader per block of CONFIG.md: each reads its block from the top-level map into the
// config, reports what is wrong and leaves the default where a value is absent or wrong.
// load_config calls them in the order of CONFIG.md.
#include "daemon/config.hpp"
#include "daemon/config/reader.hpp"

namespace pwresetd::daemon::config_detail {

void read_listen(const config_reader& in, config& cfg);     // listen.cpp
void read_tls(const config_reader& in, config& cfg);        // listen.cpp; after read_listen
void read_metrics(const config_reader& in, config& cfg);    // listen.cpp; after read_tls
void read_clients(const config_reader& in, config& cfg);    // clients.cpp; after read_tls
void read_directory(const config_reader& in, config& cfg);  // directory.cpp
void read_policy(const config_reader& in, config& cfg);     // policy.cpp
void read_mail(const config_reader& in, config& cfg);       // mail.cpp
void read_factors(const config_reader& in, config& cfg);    // factors.cpp; after mail, directory
void read_limits(const config_reader& in, config& cfg);     // limits.cpp
void read_state(const config_reader& in, config& cfg);      // state.cpp
void read_secrets(const config_reader& in, config& cfg);    // secrets.cpp (secrets.key_file)
void read_audit(const config_reader& in, config& cfg);      // logging.cpp
void read_log(const config_reader& in, config& cfg);        // logging.cpp
void read_admin(const config_reader& in, config& cfg);      // admin.cpp

}  // namespace pwresetd::daemon::config_detail
