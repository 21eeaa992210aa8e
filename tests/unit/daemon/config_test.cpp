#include "daemon/config.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using pwresetd::daemon::config;
using pwresetd::daemon::config_error;
using pwresetd::daemon::listen_endpoint;
using pwresetd::daemon::load_config;

fs::path source_fixtures() {
    const char* root = std::getenv("PWRESETD_SOURCE_DIR");  // NOLINT(concurrency-mt-unsafe)
    if (root == nullptr) {
        throw std::runtime_error("PWRESETD_SOURCE_DIR is not set (run the test through ctest)");
    }
    return fs::path(root) / "tests" / "fixtures" / "config";
}

std::vector<std::string> errors_of(const fs::path& file) {
    try {
        (void)load_config(file);
    } catch (const config_error& e) {
        return e.errors();
    }
    FAIL("loaded without errors: " << file);
    return {};
}

// A private copy of the fixtures, for tests that change modes or add files.
class fixture_copy {
public:
    fixture_copy() {
        fs::copy(source_fixtures(), dir_.path(), fs::copy_options::recursive);
        // git keeps no modes but the executable bit: make the secrets private as an operator
        // would, so only tests that mean to see a mode warning see one.
        for (const char* name : {"bind-password", "tls/server.key", "tls/other.key"}) {
            chmod(name, fs::perms::owner_read | fs::perms::owner_write);
        }
    }

    [[nodiscard]] const fs::path& dir() const noexcept { return dir_.path(); }

    fs::path write(const std::string& name, std::string_view text) const {
        fs::path file = dir_ / name;
        std::ofstream out(file, std::ios::binary | std::ios::trunc);
        out << text;
        return file;
    }

    void chmod(const std::string& name, fs::perms mode) const {
        fs::permissions(dir_ / name, mode, fs::perm_options::replace);
    }

    // minimal.yaml with one exact text replaced, written under a new name.
    fs::path variant(const std::string& name, std::string_view from, std::string_view to) const {
        std::string text = pwresetd::testing::read_file(dir_ / "minimal.yaml");
        const auto at = text.find(from);
        REQUIRE(at != std::string::npos);
        text.replace(at, from.size(), to);
        return write(name, text);
    }

private:
    pwresetd::testing::temp_dir dir_{"pwresetd-config"};
};

class scoped_env {
public:
    scoped_env(const char* name, const std::optional<std::string>& value) : name_(name) {
        if (const char* old = std::getenv(name)) {  // NOLINT(concurrency-mt-unsafe)
            old_ = old;
        }
        set(value);
    }
    scoped_env(const scoped_env&) = delete;
    scoped_env& operator=(const scoped_env&) = delete;
    ~scoped_env() { set(old_); }

private:
    void set(const std::optional<std::string>& value) const {
        if (value) {
            ::setenv(name_, value->c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
        } else {
            ::unsetenv(name_);  // NOLINT(concurrency-mt-unsafe)
        }
    }

    const char* name_;
    std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("a full configuration loads with every value", "[config]") {
    const fixture_copy copy;
    const fs::path& d = copy.dir();
    const config c = load_config(d / "full.yaml");

    CHECK(c.source == d / "full.yaml");
    CHECK(c.warnings.empty());

    REQUIRE(c.listen.size() == 3);
    CHECK(c.listen[0].type == listen_endpoint::kind::https);
    CHECK(c.listen[0].host == "127.0.0.1");
    CHECK(c.listen[0].port == 8443);
    CHECK(c.listen[0].text == "https://127.0.0.1:8443");
    CHECK(c.listen[1].host == "::1");
    CHECK(c.listen[1].port == 8444);
    CHECK(c.listen[2].host == "pwreset.example.test");
    CHECK(c.listen[2].port == 443);

    CHECK(c.tls.certificate == d / "tls" / "server.crt");
    CHECK(c.tls.private_key == d / "tls" / "server.key");
    CHECK_FALSE(c.tls.client_ca.has_value());

    REQUIRE(c.clients.size() == 2);
    CHECK(c.clients[0].name == "intranet");
    REQUIRE(c.clients[0].api_key_sha256.has_value());
    const std::array<unsigned char, 32> sha256_of_test = {
        0x9f, 0x86, 0xd0, 0x81, 0x88, 0x4c, 0x7d, 0x65, 0x9a, 0x2f, 0xea,
        0xa0, 0xc5, 0x5a, 0xd0, 0x15, 0xa3, 0xbf, 0x4f, 0x1b, 0x2b, 0x0b,
        0x82, 0x2c, 0xd1, 0x5d, 0x6c, 0x15, 0xb0, 0xf0, 0x0a, 0x08};
    CHECK(*c.clients[0].api_key_sha256 == sha256_of_test);
    CHECK_FALSE(c.clients[0].certificate_subject.has_value());
    CHECK(c.clients[0].scopes == std::vector<std::string>{"reset", "change", "enroll", "check"});
    CHECK(c.clients[1].name == "kiosk");
    CHECK(c.clients[1].api_key_sha256.has_value());
    CHECK_FALSE(c.clients[1].certificate_subject.has_value());
    CHECK(c.clients[1].scopes == std::vector<std::string>{"check"});

    REQUIRE(c.directories.size() == 1);
    const auto& dir = c.directories[0];
    CHECK(dir.kind == pwresetd::ldap::directory_kind::active_directory);
    CHECK(dir.uris ==
          std::vector<std::string>{"ldap://dc1.example.test", "ldaps://dc2.example.test:636"});
    CHECK(dir.start_tls);
    CHECK(dir.ca_file == (d / "directory-ca.crt").string());
    CHECK(dir.bind_dn == "CN=svc-pwreset,OU=Services,DC=example,DC=test");
    CHECK(dir.bind_password.view() == "Bind-Secret 42");
    CHECK(dir.user_base == "DC=example,DC=test");
    CHECK(dir.user_filter == "(&(objectClass=user)(sAMAccountName={username}))");
    CHECK(dir.timeout_ms == 2500);
    CHECK(dir.pool_size == 8);
    CHECK(dir.attributes.email == "otherMail");
    CHECK(dir.attributes.phone == "telephoneNumber");
    CHECK(dir.attributes.display_name == "cn");
    CHECK(dir.password_write == pwresetd::ldap::password_write_mode::modify);
    CHECK_FALSE(dir.unlock_on_reset);
    CHECK(dir.force_change_at_next_logon);
    CHECK(dir.protected_groups ==
          std::vector<std::string>{"CN=Domain Admins,CN=Users,DC=example,DC=test",
                                   "CN=Enterprise Admins,CN=Users,DC=example,DC=test"});

    CHECK(c.policy.min_length == 14);
    CHECK(c.policy.max_length == 128);
    CHECK(c.policy.character_classes == 2);
    CHECK_FALSE(c.policy.reject_username);
    CHECK(c.policy.banned_words_file == d / "banned.txt");
    CHECK(c.policy.breached_hashes_file == d / "breached.bin");
    CHECK(c.policy.banned_score_threshold == 6);

    CHECK(c.factors.required == 2);
    CHECK(c.factors.two_methods_groups ==
          std::vector<std::string>{"CN=Tier0,OU=Groups,DC=example,DC=test"});
    CHECK(dir.two_methods_groups == c.factors.two_methods_groups);
    CHECK_FALSE(c.factors.totp_when_enrolled);
    CHECK(c.factors.codes_per_destination_per_hour == 3);
    // The order the file lists them in.
    CHECK(c.factors.order == std::vector<std::string>{"sms", "totp", "email"});
    CHECK(c.factors.email.enabled);
    CHECK(c.factors.email.code_ttl_s == 900);
    CHECK(c.factors.email.code_digits == 7);
    CHECK(c.factors.sms.enabled);
    CHECK(c.factors.sms.code_ttl_s == 300);
    CHECK(c.factors.sms.code_digits == 8);
    CHECK(c.factors.sms.country_code == "+46");
    CHECK(c.factors.sms.webhook.webhook_url == "https://sms-gw.example.test/send");
    CHECK(c.factors.sms.webhook.bearer_token.view() == "Bind-Secret 42");
    CHECK(c.factors.sms.webhook.ca_file == (d / "directory-ca.crt").string());
    CHECK(c.factors.sms.webhook.timeout_ms == 2000);
    CHECK(c.factors.sms.webhook.retries == 1);
    REQUIRE(c.mail.has_value());
    CHECK(c.mail->smtp_url == "smtps://mail.example.test:465");
    CHECK(c.mail->from == "pwreset@example.test");
    CHECK(c.mail->ca_file == (d / "directory-ca.crt").string());
    CHECK(c.mail->require_tls);
    CHECK(c.mail->username == "pwreset");
    CHECK(c.mail->password.view() == "Bind-Secret 42");
    CHECK(c.mail->timeout_ms == 3000);
    CHECK(c.mail->retries == 0);
    CHECK(c.factors.totp.enabled);
    CHECK(c.factors.totp.issuer == "Example Corp");
    CHECK(c.factors.totp.params.digits == 8);
    CHECK(c.factors.totp.params.period == 60);
    CHECK(c.factors.totp.params.skew_steps == 2);
    CHECK(c.factors.totp.params.algorithm == pwresetd::factors::totp_algorithm::sha256);

    CHECK(c.limits.verify_failures == 3);
    CHECK(c.limits.lockout_s == 600);
    CHECK(c.limits.per_ip_per_minute == 20);
    CHECK(c.limits.reset_ttl_s == 300);
    CHECK(c.limits.max_body_bytes == 8192);
    CHECK(c.limits.header_timeout_s == 5);

    CHECK(c.state.backend == "sqlite");
    CHECK(c.state.path == d / "state.db");
    CHECK(c.secrets_key_file == d / "secret.key");
    CHECK(c.audit_file == d / "audit.jsonl");
    CHECK(c.log_level == pwresetd::log::level::debug);
}

TEST_CASE("a minimal configuration gets the documented defaults", "[config]") {
    const fixture_copy copy;
    const config c = load_config(copy.dir() / "minimal.yaml");
    CHECK(c.warnings.empty());
    CHECK_FALSE(c.tls.client_ca.has_value());
    CHECK(c.directories.at(0).kind == pwresetd::ldap::directory_kind::openldap);
    CHECK_FALSE(c.directories.at(0).start_tls);
    CHECK(c.directories.at(0).timeout_ms == 5000);
    CHECK(c.directories.at(0).pool_size == 4);
    CHECK(c.directories.at(0).attributes.email == "mail");
    CHECK(c.directories.at(0).password_write == pwresetd::ldap::password_write_mode::exop);
    CHECK(c.directories.at(0).unlock_on_reset);
    CHECK_FALSE(c.directories.at(0).force_change_at_next_logon);
    CHECK(c.directories.at(0).protected_groups.empty());
    CHECK(c.factors.required == 1);
    CHECK(c.factors.two_methods_groups.empty());
    CHECK(c.factors.totp_when_enrolled);
    CHECK(c.factors.codes_per_destination_per_hour == 5);
    CHECK(c.factors.order == std::vector<std::string>{"totp"});
    CHECK_FALSE(c.factors.email.enabled);
    CHECK(c.factors.email.code_ttl_s == 600);
    CHECK(c.factors.email.code_digits == 6);
    CHECK_FALSE(c.factors.sms.enabled);
    CHECK_FALSE(c.mail.has_value());
    CHECK(c.state.redis_password.empty());
    CHECK(c.factors.totp.enabled);
    CHECK(c.factors.totp.issuer == "pwresetd");
    CHECK(c.factors.totp.params.digits == 6);
    CHECK(c.factors.totp.params.period == 30);
    CHECK(c.factors.totp.params.skew_steps == 1);
    CHECK(c.factors.totp.params.algorithm == pwresetd::factors::totp_algorithm::sha1);
    CHECK(c.limits.verify_failures == 5);
    CHECK(c.limits.lockout_s == 900);
    CHECK(c.limits.per_ip_per_minute == 30);
    CHECK(c.limits.reset_ttl_s == 900);
    CHECK(c.limits.max_body_bytes == 16384);
    CHECK(c.limits.header_timeout_s == 10);
    CHECK(c.limits.max_connections == 10000);
    CHECK(c.state.backend == "sqlite");
    CHECK(c.log_level == pwresetd::log::level::info);
}

TEST_CASE("each bad fixture reports exactly its errors, with line and column", "[config]") {
    struct bad_case {
        std::string file;
        std::vector<std::string> errors;  // after "FILE:"; {dir} is the fixtures folder
    };
    // Long messages are split into adjacent literals on purpose.
    // NOLINTBEGIN(bugprone-suspicious-missing-comma)
    const std::vector<bad_case> cases = {
        {"bad_unknown_key.yaml",
         {"7:3: tls.ocsp_stapling: unknown key", "13:3: directory: missing required key 'uris'",
          "14:3: directory.uri: unknown key (did you mean 'uris'?)",
          "26:1: limit: unknown key (did you mean 'limits'?)"}},
        {"bad_wrong_types.yaml",
         {"18:14: directory.start_tls: expected true or false, got 'yes'",
          "19:15: directory.timeout_ms: expected an integer in 100..300000, got the quoted "
          "string \"5000\"",
          "20:21: directory.protected_groups: expected a list, got the quoted string "
          "\"CN=Admins,DC=example,DC=test\"",
          "22:15: directory.attributes: expected a map, got a list",
          "30:20: limits.verify_failures: must be in 1..100, got 0",
          "31:14: limits.lockout_s: expected an integer in 1..604800, got '15m'",
          "32:6: log: expected a map, got 'debug'"}},
        {"bad_missing_required.yaml",
         {"8:5: clients[0]: missing required key 'scopes'",
          "11:3: directory: missing required key 'bind_dn'"}},
        {"bad_plain_ldap.yaml",
         {"13:38: directory.uris[1]: plain ldap:// needs start_tls: true",
          "13:65: directory.uris[2]: expected an ldaps:// or ldap:// URI, got "
          "'http://dc3.example.test'"}},
        {"bad_api_key.yaml",
         {"9:21: clients[0].api_key_sha256: expected 64 hexadecimal characters (the SHA-256 "
          "of the API key)"}},
        {"bad_duplicate_client.yaml",
         {"11:11: clients[1].name: duplicate client name 'intranet' (also clients[0])",
          "12:21: clients[1].api_key_sha256: same API key as clients[0]",
          "13:21: clients[1].scopes[1]: duplicate scope 'reset'",
          "13:28: clients[1].scopes[2]: expected one of reset, change, enroll, check, got "
          "'rest' (did you mean 'reset'?)"}},
        {"bad_not_yet_supported.yaml", {"26:1: notify: not supported by this version yet"}},
        {"bad_codes.yaml",
         {"21:14: state.redis_url: credentials never go in the URL; use redis_password_file",
          "22:3: state.redis_password: secrets are never written inline; use "
          "redis_password_file or redis_password_credential",
          "28:35: factors.codes_per_destination_per_hour: must be in 1..1000, got 0",
          "29:23: factors.email.code_ttl_s: must be in 5..86400, got 3",
          "29:39: factors.email.code_digits: must be in 6..10, got 4",
          "31:18: factors.sms.webhook_url: expected an https:// URL (the text holds a code)",
          "32:19: factors.sms.country_code: expected '+' and 1 to 3 digits, e.g. \"+46\"",
          "33:5: factors.sms.bearer_token: secrets are never written inline; use "
          "bearer_token_file or bearer_token_credential",
          "35:13: mail.smtp_url: expected an smtp:// or smtps:// URL, got "
          "'http://mail.example.test'",
          "36:9: mail.from: address contains a space or control character"}},
        {"bad_missing_file.yaml",
         {"5:3: tls.certificate: cannot open {dir}/tls/missing.crt: No such file or directory",
          "14:3: directory.ca_file: cannot open {dir}/tls: not a regular file",
          "20:3: state.path: folder {dir}/nowhere does not exist"}},
        {"bad_syntax.yaml", {"14:3: end of sequence flow not found"}},
        {"bad_listen.yaml",
         {"4:5: listen[1]: expected https://HOST:PORT or unix:/PATH, got "
          "'http://127.0.0.1:8080'",
          "5:5: listen[2]: needs a port: https://HOST:PORT",
          "6:5: listen[3]: an IPv6 address needs brackets: https://[ADDRESS]:PORT",
          "7:5: listen[4]: port must be a number in 1..65535, got '70000'",
          "8:5: listen[5]: '300.1.2.3' is not a valid IPv4 address",
          "9:5: listen[6]: 'bad_host' is not a valid host name or IP address",
          "10:5: listen[7]: expected unix:/PATH",
          "11:5: listen[8]: duplicate listener https://127.0.0.1:8443"}},
        {"bad_factors.yaml",
         {"26:13: factors.required: 2 methods required but only 1 enabled",
          "28:13: factors.totp.digits: must be 6 or 8, got 7",
          "29:13: factors.totp.period: must be in 10..120, got 5",
          "30:16: factors.totp.algorithm: expected one of SHA1, SHA256, SHA512, got 'sha1' "
          "(did you mean 'SHA1'?)",
          "32:19: limits.max_body_bytes: must be in 1024..10485760, got 100"}},
        {"bad_secrets.yaml",
         {"16:3: directory.bind_password: secrets are never written inline; use "
          "bind_password_file or bind_password_credential",
          "17:3: directory.bind_password_file: {dir}/empty-password is empty"}},
        {"bad_two_secret_sources.yaml",
         {"17:3: directory.bind_password_credential: use either bind_password_file or "
          "bind_password_credential, not both"}},
        {"bad_tls.yaml",
         {"5:3: tls.certificate: certificate /CN=future.example.test in {dir}/tls/future.crt "
          "is not valid before 2120-01-01 00:00 UTC",
          "6:3: tls.private_key: {dir}/tls/not-a-key.key holds no PEM private key (or one "
          "protected by a passphrase)",
          "14:3: directory.ca_file: {dir}/tls/not-a-certificate.crt holds no PEM certificate",
          "16:3: directory.bind_password_credential: $CREDENTIALS_DIRECTORY is not set "
          "(systemd sets it for LoadCredential= and SetCredentialEncrypted=)",
          "28:3: mail.ca_file: certificate /CN=expired.example.test in {dir}/tls/expired.crt "
          "expired on 2021-01-01 00:00 UTC"}},
        {"bad_tls_pair.yaml",
         {"6:3: tls.private_key: {dir}/tls/other.key does not match the certificate "
          "/CN=pwresetd.example.test in {dir}/tls/server.crt"}},
    };
    // NOLINTEND(bugprone-suspicious-missing-comma)
    const scoped_env no_credentials("CREDENTIALS_DIRECTORY", std::nullopt);
    const fs::path dir = source_fixtures();
    for (const auto& c : cases) {
        SECTION(c.file) {
            const fs::path file = dir / c.file;
            std::vector<std::string> expected;
            for (std::string e : c.errors) {
                for (auto at = e.find("{dir}"); at != std::string::npos; at = e.find("{dir}")) {
                    e.replace(at, 5, dir.string());
                }
                expected.push_back(file.string() + ":" + e);
            }
            CHECK(errors_of(file) == expected);
        }
    }
}

TEST_CASE("metrics_listen: plain http only on loopback, https only with client certificates",
          "[config]") {
    const fixture_copy copy;
    const std::string_view at = "tls:\n";
    const auto with = [&](const std::string& name, const std::string& lines) {
        return copy.variant(name, at, lines + "tls:\n");
    };
    SECTION("absent: no metrics listener") {
        CHECK_FALSE(load_config(copy.dir() / "minimal.yaml").metrics.has_value());
    }
    SECTION("http on IPv4 and IPv6 loopback") {
        const auto v4 = load_config(with("v4.yaml", "metrics_listen: \"http://127.0.0.2:9466\"\n"));
        REQUIRE(v4.metrics.has_value());
        CHECK_FALSE(v4.metrics->tls);
        CHECK(v4.metrics->host == "127.0.0.2");
        CHECK(v4.metrics->port == 9466);
        CHECK(v4.metrics->text == "http://127.0.0.2:9466");
        const auto v6 = load_config(with("v6.yaml", "metrics_listen: \"http://[::1]:9466\"\n"));
        REQUIRE(v6.metrics.has_value());
        CHECK(v6.metrics->host == "::1");
    }
    SECTION("https with metrics_client_ca") {
        const auto c = load_config(with("mtls.yaml",
                                        "metrics_listen: \"https://192.0.2.10:9466\"\n"
                                        "metrics_client_ca: tls/portal-ca.crt\n"));
        REQUIRE(c.metrics.has_value());
        CHECK(c.metrics->tls);
        CHECK(c.metrics->client_ca == copy.dir() / "tls/portal-ca.crt");
    }
    struct refused {
        std::string lines;
        std::string error;  // after "FILE:5:"
    };
    // NOLINTBEGIN(bugprone-suspicious-missing-comma)
    const std::vector<refused> cases = {
        {"metrics_listen: \"http://0.0.0.0:9466\"\n",
         "17: metrics_listen: plain http:// is allowed only on a loopback address (127.0.0.1, "
         "[::1]), got '0.0.0.0'; use https:// with metrics_client_ca"},
        {"metrics_listen: \"http://192.0.2.10:9466\"\n",
         "17: metrics_listen: plain http:// is allowed only on a loopback address (127.0.0.1, "
         "[::1]), got '192.0.2.10'; use https:// with metrics_client_ca"},
        {"metrics_listen: \"http://localhost:9466\"\n",
         "17: metrics_listen: plain http:// is allowed only on a loopback address (127.0.0.1, "
         "[::1]), got 'localhost'; use https:// with metrics_client_ca"},
        {"metrics_listen: \"http://[::]:9466\"\n",
         "17: metrics_listen: plain http:// is allowed only on a loopback address (127.0.0.1, "
         "[::1]), got '::'; use https:// with metrics_client_ca"},
        {"metrics_listen: \"https://127.0.0.1:9466\"\n",
         "17: metrics_listen: https:// needs client certificates: set metrics_client_ca to the "
         "CA that issued the scrapers' certificates"},
        {"metrics_listen: \"ftp://127.0.0.1:9466\"\n",
         "17: metrics_listen: expected http://127.0.0.1:PORT or https://HOST:PORT, got "
         "'ftp://127.0.0.1:9466'"},
        {"metrics_listen: \"http://127.0.0.1\"\n",
         "17: metrics_listen: needs a port: http://HOST:PORT"},
        {"metrics_listen: \"http://127.0.0.1:8443\"\n",
         "17: metrics_listen: the same address and port as a listen: entry"},
        {"metrics_client_ca: tls/portal-ca.crt\n",
         "20: metrics_client_ca: only used with an https:// metrics_listen"},
    };
    // NOLINTEND(bugprone-suspicious-missing-comma)
    for (std::size_t i = 0; i < cases.size(); ++i) {
        SECTION(cases[i].lines) {
            const auto file = with("bad" + std::to_string(i) + ".yaml", cases[i].lines);
            CHECK(errors_of(file) ==
                  std::vector<std::string>{file.string() + ":5:" + cases[i].error});
        }
    }
    SECTION("https: the client CA must exist") {
        const auto file = with("noca.yaml",
                               "metrics_listen: \"https://127.0.0.1:9466\"\n"
                               "metrics_client_ca: tls/missing-ca.crt\n");
        CHECK(errors_of(file) ==
              std::vector<std::string>{file.string() + ":6:1: metrics_client_ca: cannot open " +
                                       (copy.dir() / "tls/missing-ca.crt").string() +
                                       ": No such file or directory"});
    }
}

TEST_CASE("an inline secret is refused without repeating it", "[config]") {
    const fixture_copy copy;
    const auto mail = copy.variant("mail.yaml", "audit:\n",
                                   "mail:\n  smtp_url: \"smtp://127.0.0.1:2525\"\n"
                                   "  from: \"a@example.test\"\n  password: hunter2\naudit:\n");
    struct inline_case {
        fs::path file;
        std::vector<std::string> refusals;  // after "FILE:"
    };
    const std::vector<inline_case> cases = {
        {source_fixtures() / "bad_secrets.yaml",
         {"16:3: directory.bind_password: secrets are never written inline; use "
          "bind_password_file or bind_password_credential"}},
        {source_fixtures() / "bad_codes.yaml",
         {"22:3: state.redis_password: secrets are never written inline; use "
          "redis_password_file or redis_password_credential",
          "33:5: factors.sms.bearer_token: secrets are never written inline; use "
          "bearer_token_file or bearer_token_credential"}},
        {mail,
         {"27:3: mail.password: secrets are never written inline; use password_file or "
          "password_credential"}},
    };
    for (const auto& c : cases) {
        INFO(c.file);
        const auto errors = errors_of(c.file);
        for (const auto& refusal : c.refusals) {
            CHECK(std::count(errors.begin(), errors.end(), c.file.string() + ":" + refusal) == 1);
        }
        for (const auto& e : errors) {
            CHECK(e.find("hunter2") == std::string::npos);
            CHECK(e.find("t0ps3cret") == std::string::npos);
        }
    }
    // The inline password is the mail block's only mistake.
    CHECK(errors_of(mail).size() == 1);
}

TEST_CASE("config_error::what() lists every error, one per line", "[config]") {
    const fs::path file = source_fixtures() / "bad_missing_required.yaml";
    try {
        (void)load_config(file);
        FAIL("loaded");
    } catch (const config_error& e) {
        REQUIRE(e.errors().size() == 2);
        CHECK(std::string(e.what()) == e.errors()[0] + "\n" + e.errors()[1]);
    }
}

TEST_CASE("a config file that cannot be read", "[config]") {
    const fixture_copy copy;
    const fs::path missing = copy.dir() / "absent.yaml";
    CHECK(errors_of(missing) ==
          std::vector<std::string>{missing.string() + ": cannot read: No such file or directory"});
    CHECK(errors_of(copy.dir()) ==
          std::vector<std::string>{copy.dir().string() + ": cannot read: not a regular file"});
    // A FIFO is refused at once, never waited on.
    const fs::path fifo = copy.dir() / "config.fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    CHECK(errors_of(fifo) ==
          std::vector<std::string>{fifo.string() + ": cannot read: not a regular file"});
}

TEST_CASE("the shape of the document", "[config]") {
    const fixture_copy copy;
    SECTION("empty: every required top-level key is missing") {
        const auto file = copy.write("empty.yaml", "# nothing yet\n");
        const auto errors = errors_of(file);
        for (const char* key : {"listen", "clients", "directory"}) {
            const std::string expected =
                file.string() + ":1:1: missing required key '" + std::string(key) + "'";
            CHECK(std::count(errors.begin(), errors.end(), expected) == 1);
        }
    }
    SECTION("a list at the top") {
        const auto file = copy.write("list.yaml", "- listen\n- tls\n");
        CHECK(errors_of(file) ==
              std::vector<std::string>{file.string() +
                                       ":1:1: expected a map of settings at the top, got a list"});
    }
    SECTION("two documents") {
        const auto file = copy.variant("two.yaml", "file: audit.jsonl\n",
                                       "file: audit.jsonl\n---\nlog: {level: info}\n");
        CHECK(errors_of(file) ==
              std::vector<std::string>{file.string() + ":27:1: only one YAML document is allowed"});
    }
    // Found by tests/fuzz/fuzz_config: yaml-cpp 0.7's LoadAll never returned on these (one
    // more empty document at the same place each turn, in ever more memory).
    SECTION("a stray comma at the top") {
        const auto file = copy.write("comma.yaml", ",\n");
        CHECK(errors_of(file) == std::vector<std::string>{file.string() + ":1:1: unexpected ','"});
        const auto later = copy.write("comma2.yaml", "# the DN, cut\n,dc=example,dc=test\"\n");
        CHECK(errors_of(later) ==
              std::vector<std::string>{later.string() + ":2:1: unexpected ','"});
    }
    SECTION("an empty second document") {
        const auto file =
            copy.variant("empty2.yaml", "file: audit.jsonl\n", "file: audit.jsonl\n---\n");
        CHECK(errors_of(file) ==
              std::vector<std::string>{file.string() + ":26:1: only one YAML document is allowed"});
    }
    SECTION("a key given twice") {
        const auto file = copy.variant("twice.yaml", "  kind: openldap\n",
                                       "  kind: openldap\n  kind: active_directory\n");
        CHECK(errors_of(file) ==
              std::vector<std::string>{file.string() +
                                       ":14:3: directory.kind: duplicate key (first at line 13)"});
    }
    SECTION("unix listeners are refused until this version supports them") {
        const auto file =
            copy.variant("unix.yaml", "  - \"https://127.0.0.1:8443\"\n",
                         "  - \"https://127.0.0.1:8443\"\n  - \"unix:/run/pwresetd/api.sock\"\n");
        CHECK(errors_of(file) ==
              std::vector<std::string>{file.string() +
                                       ":5:5: listen[1]: unix socket listeners are not "
                                       "supported by this version yet"});
    }
    SECTION("default folders are checked too") {
        const auto file = copy.variant("defaults.yaml", "audit:\n  file: audit.jsonl\n", "");
        const auto errors = errors_of(file);
        if (!fs::is_directory("/var/log/pwresetd")) {
            CHECK(errors ==
                  std::vector<std::string>{
                      file.string() + ":3:1: audit.file: folder /var/log/pwresetd does not exist "
                                      "(the default)"});
        }
    }
}

TEST_CASE("tls.client_ca and clients[].certificate_subject", "[config][mtls]") {
    const fixture_copy copy;
    const std::string with_ca =
        "tls:\n  certificate: tls/server.crt\n  private_key: tls/server.key\n"
        "  client_ca: tls/portal-ca.crt\n";
    const std::string tls = "tls:\n  certificate: tls/server.crt\n  private_key: tls/server.key\n";
    const std::string client =
        "  - name: intranet\n"
        "    api_key_sha256: "
        "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n"
        "    scopes: [reset]\n";
    auto with = [&](const std::string& name, const std::string& tls_block,
                    const std::string& clients) {
        std::string text = pwresetd::testing::read_file(copy.dir() / "minimal.yaml");
        text.replace(text.find(tls), tls.size(), tls_block);
        text.replace(text.find(client), client.size(), clients);
        return copy.write(name, text);
    };
    SECTION("a certificate client, a key client and one with both") {
        const auto file = with("mtls.yaml", with_ca,
                               "  - name: by-dn\n"
                               "    certificate_subject: \"CN=portal.example.test, O=Example\"\n"
                               "    scopes: [reset]\n" +
                                   client +
                                   "  - name: both\n"
                                   "    api_key_sha256: \"" +
                                   std::string(64, 'a') +
                                   "\"\n"
                                   "    certificate_subject: \"DNS:portal.example.test\"\n"
                                   "    scopes: [check]\n");
        const config c = load_config(file);
        REQUIRE(c.tls.client_ca.has_value());
        CHECK(*c.tls.client_ca == copy.dir() / "tls" / "portal-ca.crt");
        REQUIRE(c.clients.size() == 3);
        REQUIRE(c.clients[0].certificate_subject.has_value());
        CHECK_FALSE(c.clients[0].api_key_sha256.has_value());
        CHECK(c.clients[0].certificate_subject->dn ==
              pwresetd::daemon::distinguished_name{{{"2.5.4.3", "portal.example.test"}},
                                                   {{"2.5.4.10", "Example"}}});
        CHECK_FALSE(c.clients[1].certificate_subject.has_value());
        REQUIRE(c.clients[2].certificate_subject.has_value());
        CHECK(c.clients[2].certificate_subject->type ==
              pwresetd::daemon::certificate_name::kind::dns_name);
        CHECK(c.clients[2].api_key_sha256.has_value());
    }
    SECTION("a subject without tls.client_ca, a bad one, the same one twice") {
        const auto file = with("bad.yaml", tls,
                               "  - name: a\n"
                               "    certificate_subject: \"CN=a;O=b\"\n"
                               "    scopes: [reset]\n"
                               "  - name: b\n"
                               "    certificate_subject: \"CN=portal,O=Example\"\n"
                               "    scopes: [reset]\n"
                               "  - name: c\n"
                               "    certificate_subject: \"cn = portal, o = Example\"\n"
                               "    scopes: [reset]\n");
        CHECK(errors_of(file) ==
              std::vector<std::string>{
                  file.string() + ":10:5: clients[0].certificate_subject: needs tls.client_ca "
                                  "(client certificates are verified only when it is set)",
                  file.string() + ":10:26: clients[0].certificate_subject: ';' in a value must "
                                  "be escaped as '\\;'",
                  file.string() + ":13:5: clients[1].certificate_subject: needs tls.client_ca "
                                  "(client certificates are verified only when it is set)",
                  file.string() + ":16:5: clients[2].certificate_subject: needs tls.client_ca "
                                  "(client certificates are verified only when it is set)",
                  file.string() + ":16:26: clients[2].certificate_subject: same certificate "
                                  "subject as clients[1]"});
    }
    SECTION("a client CA that has expired or is no certificate") {
        auto ca = [&](const std::string& name, const std::string& file) {
            return with(name, tls + "  client_ca: tls/" + file + "\n", client);
        };
        const auto expired = ca("expired.yaml", "expired.crt");
        const auto errors = errors_of(expired);
        REQUIRE(errors.size() == 1);
        CHECK(errors[0].find(":8:3: tls.client_ca: certificate /CN=expired.example.test") !=
              std::string::npos);
        CHECK(errors[0].find("expired on 2021-01-01") != std::string::npos);
        const auto garbage = ca("garbage.yaml", "not-a-certificate.crt");
        CHECK(errors_of(garbage) ==
              std::vector<std::string>{garbage.string() + ":8:3: tls.client_ca: " +
                                       (copy.dir() / "tls" / "not-a-certificate.crt").string() +
                                       " holds no PEM certificate"});
    }
}

TEST_CASE("limits.max_connections", "[config]") {
    const fixture_copy copy;
    const auto file =
        copy.variant("max.yaml", "audit:\n", "limits:\n  max_connections: 250\naudit:\n");
    CHECK(load_config(file).limits.max_connections == 250);
    const auto zero =
        copy.variant("zero.yaml", "audit:\n", "limits:\n  max_connections: 0\naudit:\n");
    const auto errors = errors_of(zero);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("limits.max_connections") != std::string::npos);
}

TEST_CASE("secrets.key_file must be private when it exists", "[config]") {
    const fixture_copy copy;
    const fs::path file = copy.dir() / "minimal.yaml";
    SECTION("missing: created at start, not an error") {
        CHECK_FALSE(fs::exists(copy.dir() / "secret.key"));
        CHECK(load_config(file).warnings.empty());
    }
    SECTION("0600 is accepted") {
        copy.write("secret.key", std::string(32, 'k'));
        copy.chmod("secret.key", fs::perms::owner_read | fs::perms::owner_write);
        CHECK(load_config(file).warnings.empty());
    }
    SECTION("what the daemon would refuse at start is refused now") {
        const auto errors_for = [&] {
            const auto errors = errors_of(file);
            REQUIRE(errors.size() == 1);
            CHECK(errors[0].find(":23:3: secrets.key_file: ") != std::string::npos);
            return errors[0];
        };
        copy.write("secret.key", std::string(33, 'k'));
        copy.chmod("secret.key", fs::perms::owner_read | fs::perms::owner_write);
        CHECK(errors_for().find("exactly 32 bytes (it has 33)") != std::string::npos);
        fs::remove(copy.dir() / "secret.key");
        fs::create_directory(copy.dir() / "secret.key");
        CHECK(errors_for().find("not a regular file") != std::string::npos);
        fs::remove(copy.dir() / "secret.key");
        REQUIRE(::mkfifo((copy.dir() / "secret.key").c_str(), 0600) == 0);
        CHECK(errors_for().find("not a regular file") != std::string::npos);
        fs::remove(copy.dir() / "secret.key");
        copy.write("real.key", std::string(32, 'k'));
        copy.chmod("real.key", fs::perms::owner_read | fs::perms::owner_write);
        fs::create_symlink(copy.dir() / "real.key", copy.dir() / "secret.key");
        CHECK(errors_for().find("symbolic link") != std::string::npos);
    }
    SECTION("readable by the group or others: an error naming the file") {
        copy.write("secret.key", std::string(32, 'k'));
        for (const auto extra : {fs::perms::group_read, fs::perms::others_read}) {
            copy.chmod("secret.key", fs::perms::owner_read | extra);
            const auto errors = errors_of(file);
            REQUIRE(errors.size() == 1);
            CHECK(errors[0].find(":23:3: secrets.key_file: ") != std::string::npos);
            CHECK(errors[0].find((copy.dir() / "secret.key").string()) != std::string::npos);
            CHECK(errors[0].find("chmod 600") != std::string::npos);
        }
    }
}

TEST_CASE("mail.require_tls defaults to true; false is warned about", "[config]") {
    const fixture_copy copy;
    const std::string mail =
        "mail:\n  smtp_url: \"smtp://127.0.0.1:2525\"\n  from: \"a@example.test\"\n";
    const auto strict = copy.variant("strict.yaml", "audit:\n", mail + "audit:\n");
    const config c = load_config(strict);
    REQUIRE(c.mail.has_value());
    CHECK(c.mail->require_tls);
    CHECK(c.warnings.empty());
    const auto plain =
        copy.variant("plain.yaml", "audit:\n", mail + "  require_tls: false\naudit:\n");
    const config p = load_config(plain);
    CHECK_FALSE(p.mail->require_tls);
    REQUIRE(p.warnings.size() == 1);
    CHECK(p.warnings[0].find("mail.require_tls") != std::string::npos);
    CHECK(p.warnings[0].find("in clear") != std::string::npos);
}

TEST_CASE("the bind password file", "[config]") {
    const fixture_copy copy;
    const fs::path file = copy.dir() / "minimal.yaml";
    const fs::path secret_file = copy.dir() / "bind-password";
    const std::string warning = file.string() +
                                ":17:3: directory.bind_password_file: " + secret_file.string() +
                                " is readable by group or others; chmod 600";

    SECTION("exactly one trailing newline is stripped") {
        copy.write("bind-password", "pw\r\n\n");
        CHECK(load_config(file).directories.at(0).bind_password.view() == "pw\r\n");
        copy.write("bind-password", "pw\r\n");
        CHECK(load_config(file).directories.at(0).bind_password.view() == "pw\r");
        copy.write("bind-password", "no newline");
        CHECK(load_config(file).directories.at(0).bind_password.view() == "no newline");
    }
    SECTION("a newline alone is an empty secret") {
        copy.write("bind-password", "\n");
        CHECK(errors_of(file) ==
              std::vector<std::string>{file.string() + ":17:3: directory.bind_password_file: " +
                                       secret_file.string() + " is empty"});
    }
    SECTION("mode 0600 gives no warning") {
        CHECK(load_config(file).warnings.empty());
    }
    SECTION("readable by the group: a warning") {
        copy.chmod("bind-password",
                   fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
        const config c = load_config(file);
        CHECK(c.warnings == std::vector<std::string>{warning});
        CHECK(c.directories.at(0).bind_password.view() == "Bind-Secret 42");
    }
    SECTION("readable by others: a warning") {
        copy.chmod("bind-password", fs::perms::owner_read | fs::perms::others_read);
        CHECK(load_config(file).warnings == std::vector<std::string>{warning});
    }
    SECTION("the secret never appears in a message") {
        copy.chmod("bind-password", fs::perms::owner_read | fs::perms::others_read);
        const auto errors = errors_of(copy.variant("bad.yaml", "kind: openldap", "kind: novell"));
        const auto warnings = load_config(file).warnings;
        for (const auto& text : {errors, warnings}) {
            for (const auto& line : text) {
                CHECK(line.find("Bind-Secret") == std::string::npos);
            }
        }
    }
}

TEST_CASE("the bind password from a systemd credential", "[config]") {
    const fixture_copy copy;
    fs::create_directory(copy.dir() / "credentials");
    copy.write("credentials/ldap-bind", "from-credential\n");
    const fs::path file = copy.variant("credential.yaml", "bind_password_file: bind-password",
                                       "bind_password_credential: ldap-bind");

    SECTION("read from $CREDENTIALS_DIRECTORY") {
        const scoped_env env("CREDENTIALS_DIRECTORY", (copy.dir() / "credentials").string());
        const config c = load_config(file);
        CHECK(c.directories.at(0).bind_password.view() == "from-credential");
        CHECK(c.warnings.empty());
    }
    SECTION("$CREDENTIALS_DIRECTORY unset") {
        const scoped_env env("CREDENTIALS_DIRECTORY", std::nullopt);
        CHECK(errors_of(file) ==
              std::vector<std::string>{file.string() +
                                       ":17:3: directory.bind_password_credential: "
                                       "$CREDENTIALS_DIRECTORY is not set (systemd sets it for "
                                       "LoadCredential= and SetCredentialEncrypted=)"});
    }
    SECTION("a credential that does not exist") {
        const scoped_env env("CREDENTIALS_DIRECTORY", (copy.dir() / "credentials").string());
        const fs::path other = copy.variant("other.yaml", "bind_password_file: bind-password",
                                            "bind_password_credential: other");
        CHECK(errors_of(other) ==
              std::vector<std::string>{
                  other.string() + ":17:3: directory.bind_password_credential: cannot open " +
                  (copy.dir() / "credentials" / "other").string() + ": No such file or directory"});
    }
    SECTION("a path is not a credential name") {
        const scoped_env env("CREDENTIALS_DIRECTORY", (copy.dir() / "credentials").string());
        const fs::path other = copy.variant("path.yaml", "bind_password_file: bind-password",
                                            "bind_password_credential: ../bind-password");
        CHECK(errors_of(other) ==
              std::vector<std::string>{other.string() +
                                       ":17:29: directory.bind_password_credential: expected a "
                                       "credential name, not a path"});
    }
}

TEST_CASE("the example etc/pwresetd.yaml is valid but for files of this machine", "[config]") {
    const fs::path example =
        source_fixtures().parent_path().parent_path().parent_path() / "etc" / "pwresetd.yaml";
    try {
        (void)load_config(example);
    } catch (const config_error& e) {
        for (const auto& error : e.errors()) {
            INFO(error);
            CHECK((error.find(": cannot open ") != std::string::npos ||
                   error.find(" does not exist") != std::string::npos));
        }
    }
}

TEST_CASE("several directories, routed by domain", "[config]") {
    const fixture_copy copy;
    const std::string single =
        "directory:\n"
        "  kind: openldap\n"
        "  uris: [\"ldaps://ldap.example.test\"]\n"
        "  ca_file: directory-ca.crt\n"
        "  bind_dn: \"cn=pwresetd,ou=services,dc=example,dc=test\"\n"
        "  bind_password_file: bind-password\n"
        "  user_base: \"ou=people,dc=example,dc=test\"\n"
        "  user_filter: \"(&(objectClass=inetOrgPerson)(uid={username}))\"\n";
    const std::string block =
        "    uris: [\"ldaps://dc1.corp.test\"]\n"
        "    ca_file: directory-ca.crt\n"
        "    bind_dn: \"CN=svc,DC=corp,DC=test\"\n"
        "    bind_password_file: bind-password\n"
        "    user_base: \"DC=corp,DC=test\"\n"
        "    user_filter: \"(sAMAccountName={username})\"\n";
    SECTION("a list of blocks with names and domains") {
        const auto file = copy.variant(
            "two.yaml", single,
            "directories:\n"
            "  - name: corp\n    domains: [corp.test, CORP]\n    kind: active_directory\n" +
                block + "    require_policy_hints: true\n    protect_admin_count: false\n" +
                "  - name: lab\n    domains: [lab.test]\n    kind: active_directory\n" + block);
        const config c = load_config(file);
        REQUIRE(c.directories.size() == 2);
        CHECK(c.directories[0].name == "corp");
        CHECK(c.directories[0].domains == std::vector<std::string>{"corp.test", "CORP"});
        CHECK(c.directories[0].require_policy_hints);
        CHECK_FALSE(c.directories[0].protect_admin_count);
        CHECK(c.directories[0].bind_password.view() == "Bind-Secret 42");
        CHECK(c.directories[1].name == "lab");
        CHECK_FALSE(c.directories[1].require_policy_hints);
        CHECK(c.directories[1].protect_admin_count);
    }
    SECTION("mistakes are named with their position") {
        const auto file = copy.variant(
            "bad.yaml", single,
            "directories:\n"
            "  - name: corp\n    domains: [corp.test]\n    kind: active_directory\n" +
                block + "  - name: corp\n    domains: [CORP.test]\n    kind: openldap\n" + block +
                "    protect_admin_count: true\n");
        CHECK(errors_of(file) ==
              std::vector<std::string>{
                  file.string() + ":22:11: directories[1].name: duplicate directory name "
                                  "'corp' (also directories[0].name)",
                  file.string() + ":23:14: directories[1].domains: domain 'CORP.test' is also "
                                  "listed in directories[0].domains",
                  file.string() + ":31:5: directories[1].protect_admin_count: only for kind: "
                                  "active_directory"});
    }
    SECTION("directory and directories together, or name in a single block") {
        const auto both = copy.variant("both.yaml", single,
                                       single + "directories:\n  - name: x\n    domains: [x]\n");
        CHECK(errors_of(both) == std::vector<std::string>{
                                     both.string() + ":20:1: directories: use either directory or "
                                                     "directories, not both"});
        const auto named =
            copy.variant("named.yaml", "  kind: openldap\n", "  kind: openldap\n  name: corp\n");
        CHECK(errors_of(named) == std::vector<std::string>{
                                      named.string() + ":14:3: directory.name: only in blocks of a "
                                                       "`directories:` list"});
    }
}

TEST_CASE("policy limits are checked", "[config]") {
    const fixture_copy copy;
    const auto file = copy.variant("policy.yaml", "state:\n",
                                   "policy:\n  min_length: 20\n  max_length: 10\n"
                                   "  character_classes: 5\n  banned_words_file: nope.txt\n"
                                   "state:\n");
    const auto errors = errors_of(file);
    REQUIRE(errors.size() == 3);
    CHECK(errors[0] ==
          file.string() + ":22:15: policy.max_length: max_length (10) is below min_length (20)");
    CHECK(errors[1] == file.string() + ":23:22: policy.character_classes: must be in 0..4, got 5");
    CHECK(errors[2].find(":24:3: policy.banned_words_file: ") != std::string::npos);
}

TEST_CASE("a user_filter over two attributes is warned about", "[config][security]") {
    const fixture_copy copy;
    const std::string one = "(&(objectClass=inetOrgPerson)(uid={username}))";
    const std::string two = "(&(objectClass=inetOrgPerson)(|(uid={username})(mail={username})))";
    CHECK(load_config(copy.dir() / "minimal.yaml").warnings.empty());
    const auto both = copy.variant("two.yaml", one, two);
    const config c = load_config(both);
    REQUIRE(c.warnings.size() == 1);
    CHECK(c.warnings[0].find("directory.user_filter: matches {username} in more than one "
                             "attribute") != std::string::npos);
    CHECK(c.directories.at(0).user_filter == two);  // a warning, not a refusal
}

TEST_CASE("admin_socket and admin_group", "[config]") {
    const fixture_copy copy;
    const std::string minimal = pwresetd::testing::read_file(copy.dir() / "minimal.yaml");
    SECTION("absent: no admin socket") {
        const config c = load_config(copy.dir() / "minimal.yaml");
        CHECK_FALSE(c.admin.socket.has_value());
        CHECK(c.admin.group.empty());
        CHECK_FALSE(pwresetd::daemon::admin_socket_of(copy.dir() / "minimal.yaml").has_value());
    }
    SECTION("a relative path is taken from the config file's folder") {
        const auto file = copy.write("admin.yaml", minimal +
                                                       "admin_socket: run/admin.sock\n"
                                                       "admin_group: root\n");
        const config c = load_config(file);
        REQUIRE(c.admin.socket.has_value());
        CHECK(*c.admin.socket == copy.dir() / "run" / "admin.sock");
        CHECK(c.admin.group == "root");
        CHECK(pwresetd::daemon::admin_socket_of(file) == c.admin.socket);
    }
    SECTION("mistakes") {
        const auto file =
            copy.write("bad.yaml", minimal + "admin_socket: /" + std::string(120, 'x') +
                                       "\nadmin_group: no-such-group-here\n");
        CHECK(errors_of(file) ==
              std::vector<std::string>{
                  file.string() +
                      ":26:15: admin_socket: a Unix socket path has at most 107 bytes, got 121",
                  file.string() + ":27:14: admin_group: no group named 'no-such-group-here'"});
        const auto lone = copy.write("lone.yaml", minimal + "admin_group: root\n");
        CHECK(errors_of(lone) ==
              std::vector<std::string>{lone.string() + ":26:1: admin_group: needs admin_socket"});
        const auto list = copy.write("list.yaml", minimal + "admin_socket: [a, b]\n");
        CHECK_THROWS_AS(pwresetd::daemon::admin_socket_of(list), config_error);
    }
}

TEST_CASE("TLS files: an encrypted key, a key others can read, an oversized certificate",
          "[config][security]") {
    const fixture_copy copy;

    SECTION("an encrypted key is an error at once, never a passphrase prompt") {
        EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
        REQUIRE(key != nullptr);
        BIO* out = BIO_new_file((copy.dir() / "tls/encrypted.key").c_str(), "w");
        REQUIRE(out != nullptr);
        static char passphrase[] = "fixture-passphrase";
        REQUIRE(PEM_write_bio_PrivateKey(
                    out, key, EVP_aes_256_cbc(), reinterpret_cast<unsigned char*>(passphrase),
                    static_cast<int>(sizeof passphrase - 1), nullptr, nullptr) == 1);
        BIO_free(out);
        EVP_PKEY_free(key);
        copy.chmod("tls/encrypted.key", fs::perms::owner_read | fs::perms::owner_write);
        const fs::path file = copy.variant("encrypted.yaml", "private_key: tls/server.key",
                                           "private_key: tls/encrypted.key");
        const auto errors = errors_of(file);
        REQUIRE(errors.size() == 1);
        CHECK(errors[0].find("tls.private_key: " + (copy.dir() / "tls/encrypted.key").string() +
                             " holds no PEM private key (or one protected by a passphrase)") !=
              std::string::npos);
    }
    SECTION("a private key others can read is a warning") {
        copy.chmod("tls/server.key",
                   fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
        const config c = load_config(copy.dir() / "minimal.yaml");
        REQUIRE(c.warnings.size() == 1);
        CHECK(c.warnings[0].find("tls.private_key: " + (copy.dir() / "tls/server.key").string() +
                                 " can be read by others (mode 0604); chmod o-rwx") !=
              std::string::npos);
    }
    SECTION("a certificate file over 1 MiB is not read") {
        copy.write("tls/huge.crt", std::string(std::size_t{2} * 1024 * 1024, 'A'));
        const fs::path file =
            copy.variant("huge.yaml", "certificate: tls/server.crt", "certificate: tls/huge.crt");
        const auto errors = errors_of(file);
        REQUIRE(errors.size() == 1);
        CHECK(errors[0].find("tls.certificate: " + (copy.dir() / "tls/huge.crt").string() +
                             " is larger than 1048576 bytes: not a PEM file") != std::string::npos);
    }
}
