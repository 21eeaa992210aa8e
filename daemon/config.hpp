#pragma once
// The configuration file (CONFIG.md is the contract for key names). load_config() reads
// and validates one YAML file and reports every problem at once, each as
// `FILE:LINE:COLUMN: key.path: message`. Paths in the result are absolute (relative ones
// are taken from the config file's folder); secrets are read from files or from systemd
// credentials ($CREDENTIALS_DIRECTORY) and one trailing newline is stripped.
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/log.hpp"
#include "daemon/certificate_subject.hpp"
#include "factors/delivery.hpp"
#include "factors/totp.hpp"
#include "ldap/directory.hpp"
#include "policy/password_policy.hpp"

namespace pwresetd::daemon {

struct listen_endpoint {
    enum class kind { https, unix_socket } type = kind::https;
    std::string host;  // https: IP literal or host name ("127.0.0.1", "::1")
    std::uint16_t port = 0;
    std::filesystem::path socket_path;  // unix
    std::string text;                   // as written in the file, for logs
};

// metrics_listen: where GET /metrics is served. Plain http only on a loopback address;
// https (the tls: certificate) always with client certificates verified against
// metrics_client_ca (extension).
struct metrics_settings {
    bool tls = false;
    std::string host;  // an IP literal for http (127.0.0.0/8, ::1)
    std::uint16_t port = 0;
    std::string text;  // as written in the file
    std::optional<std::filesystem::path> client_ca;
};

struct tls_settings {
    std::filesystem::path certificate;
    std::filesystem::path private_key;
    // PEM CA certificate(s): when set, clients are asked for a certificate, which must chain
    // to one of these (each is a trust anchor, an intermediate too) and be valid now.
    std::optional<std::filesystem::path> client_ca;
};

struct client_settings {
    std::string name;
    // At least one of the two; a client with both must present both (client_auth.hpp).
    std::optional<std::array<unsigned char, 32>> api_key_sha256;
    std::optional<certificate_name> certificate_subject;
    std::vector<std::string> scopes;  // subset of reset, change, enroll, check
};

struct totp_settings {
    bool enabled = true;
    std::string issuer = "pwresetd";
    factors::totp_params params;
};

// factors.email / factors.sms: a code sent to the address or number in the directory.
struct code_factor_settings {
    bool enabled = false;  // a block without `enabled:` is enabled; no block: disabled
    int code_ttl_s = 600;
    int code_digits = 6;  // extension: 6..10
};

struct email_factor_settings : code_factor_settings {
    // extension: the mail domain most users' addresses are in; decoy hints show it
    // (factors/decoy_hints.hpp). Empty: the domain of mail.from.
    std::string hint_domain;
};

struct sms_factor_settings : code_factor_settings {
    factors::sms_settings webhook;  // webhook_url, bearer token, ca_file, timeout, retries
    // extension: "+46" turns national numbers (070...) into +4670... and shapes hints
    std::string country_code;
};

struct factor_settings {
    int required = 1;
    std::vector<std::string> two_methods_groups;  // group DNs: members always need 2
    bool totp_when_enrolled = true;
    int codes_per_destination_per_hour = 5;
    totp_settings totp;
    email_factor_settings email;
    sms_factor_settings sms;
    // The enabled methods in the order the file lists them (totp, email, sms by default).
    std::vector<std::string> order{"totp"};
};

struct limit_settings {
    int verify_failures = 5;
    int lockout_s = 900;
    int per_ip_per_minute = 30;
    int reset_ttl_s = 900;
    std::size_t max_body_bytes = 16384;
    int header_timeout_s = 10;
    int max_connections = 10000;  // concurrent client connections; beyond: closed at accept
};

struct state_settings {
    std::string backend = "sqlite";
    std::filesystem::path path = "/var/lib/pwresetd/state.db";
    std::string redis_url;
    secret redis_password;  // extension: redis_password_file / redis_password_credential
};

// admin_socket (pwresetctl's Unix socket) and the extension admin_group.
struct admin_settings {
    std::optional<std::filesystem::path> socket;  // absent: no admin socket
    std::string group;                            // empty: the daemon's own group
};

struct config {
    std::filesystem::path source;  // the file that was read
    std::vector<listen_endpoint> listen;
    std::optional<metrics_settings> metrics;
    tls_settings tls;
    std::vector<client_settings> clients;
    // One entry for a `directory:` block; one per block of a `directories:` list (routed
    // by the username's domain, the first one for bare names).
    std::vector<ldap::directory_settings> directories;
    policy::settings policy;
    factor_settings factors;
    std::optional<factors::mail_settings> mail;  // `mail:`; needed by factors.email
    limit_settings limits;
    state_settings state;
    std::filesystem::path secrets_key_file = "/var/lib/pwresetd/secret.key";
    std::filesystem::path audit_file = "/var/log/pwresetd/audit.jsonl";
    log::level log_level = log::level::info;
    admin_settings admin;
    std::vector<std::string> warnings;  // e.g. a secret file readable by group/other
};

// Thrown by load_config with every error found, one message per entry.
class config_error : public std::runtime_error {
public:
    explicit config_error(std::vector<std::string> errors);
    [[nodiscard]] const std::vector<std::string>& errors() const noexcept { return errors_; }

private:
    std::vector<std::string> errors_;
};

// Parses and validates; also opens every referenced file (certificate, key, CA, secret
// files) so a missing file is reported now, not at the first request.
config load_config(const std::filesystem::path& file);

// Only `admin_socket` of a config file (made absolute like load_config does), without
// validating the rest: pwresetctl reads it, and may not be allowed to read the secrets the
// file names. nullopt when the key is absent; config_error when the file cannot be read or
// the value is not a string.
std::optional<std::filesystem::path> admin_socket_of(const std::filesystem::path& file);

}  // namespace pwresetd::daemon
