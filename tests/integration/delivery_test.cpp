// Code delivery against real servers on loopback: an SMTP sink (tests/lab/smtp_sink.py,
// aiosmtpd) and an HTTPS webhook (tests/lab/webhook.py), started per test case in a
// temporary folder with throwaway certificates (openssl CLI) and always stopped. What
// arrived is read back from the files they write; what was logged is read from fd 2.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "factors/delivery.hpp"
#include "support/files.hpp"
#include "support/lab_fixture.hpp"
#include "support/net.hpp"
#include "support/shell.hpp"
#include "support/stderr_capture.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace pwresetd;
using namespace pwresetd::factors;
using namespace pwresetd::testing;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

// Named so that a failed CHECK prints the name, never the code.
constexpr std::string_view the_code = "493817";
constexpr std::string_view mail_body = "Hej Åsa!\r\nDin kod är 493817.\r\nÅÄÖ åäö\r\n";
constexpr std::string_view mail_subject = "Återställ ditt lösenord – kod för åäö ÅÄÖ";
constexpr std::string_view sms_text = "Din kod är 493817 \"citat\" \\ åäö";
constexpr std::string_view lab_token = "lab-token-7f3a9c21e5";
// Debian's python3, where python3-aiosmtpd lives (another python3 may come first on PATH).
constexpr const char* python = "/usr/bin/python3";

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
    const auto deadline = steady::now() + limit;
    while (steady::now() < deadline) {
        if (done()) {
            return true;
        }
        std::this_thread::sleep_for(20ms);
    }
    return done();
}

// Two throwaway CAs, each with a server certificate for 127.0.0.1 and localhost: "lab"
// is the one the client trusts, "other" is a stranger. Made once per run.
struct certificates {
    temp_dir dir{"pwresetd-delivery"};
    fs::path ca, cert, key;
    fs::path other_cert, other_key;

    certificates() {
        make("lab");
        make("other");
        ca = dir.path() / "lab-ca.crt";
        cert = dir.path() / "lab-server.crt";
        key = dir.path() / "lab-server.key";
        other_cert = dir.path() / "other-server.crt";
        other_key = dir.path() / "other-server.key";
    }

private:
    void make(const std::string& name) {
        const std::string d = shell_quote(dir.path().string()) + "/" + name;
        const std::string log = " 2>>" + shell_quote((dir.path() / "openssl.log").string());
        write_file(dir.path() / (name + "-server.ext"),
                   "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n");
        const std::string script =
            "set -e; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
            " -keyout " +
            d + "-ca.key -out " + d + "-ca.crt -days 2 -subj '/CN=pwresetd " + name +
            " CA' -addext basicConstraints=critical,CA:TRUE"
            " -addext keyUsage=critical,keyCertSign,cRLSign" +
            log +
            "; openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
            " -keyout " +
            d + "-server.key -out " + d + "-server.csr -subj /CN=localhost" + log +
            "; openssl x509 -req -in " + d + "-server.csr -CA " + d + "-ca.crt -CAkey " + d +
            "-ca.key -CAcreateserial -days 2 -extfile " + d + "-server.ext -out " + d +
            "-server.crt" + log;
        const int status = std::system(("bash -c " + shell_quote(script)).c_str());
        if (status != 0) {
            throw std::runtime_error("openssl failed: " + read_file(dir.path() / "openssl.log"));
        }
    }
};

certificates& certs() {
    static certificates instance;
    return instance;
}

// A lab script run by Debian's python3, stdout and stderr to DIR/NAME.log. It dies with
// the test process (PR_SET_PDEATHSIG) and is stopped (SIGTERM, then SIGKILL) by the
// destructor.
class lab_process {
public:
    lab_process(const fs::path& dir, const std::string& name, std::vector<std::string> args)
        : log_(dir / (name + ".log")) {
        const fs::path ready = dir / (name + ".ready");
        const fs::path script = lab_file(name + ".py");
        REQUIRE(fs::exists(script));
        args.insert(args.begin(), {python, script.string()});
        args.insert(args.end(),
                    {"--host", "127.0.0.1", "--port", "0", "--ready-file", ready.string()});
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        const std::string log = log_.string();

        const pid_t parent = ::getpid();
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) {
                ::_exit(127);
            }
            const int null = ::open("/dev/null", O_RDONLY);
            const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
            ::dup2(null, STDIN_FILENO);
            ::dup2(out, STDOUT_FILENO);
            ::dup2(out, STDERR_FILENO);
            ::execv(python, argv.data());
            ::_exit(127);
        }
        pid_ = pid;
        const bool up = wait_until(
            [&] {
                if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
                    pid_ = -1;
                    return true;
                }
                return fs::exists(ready);
            },
            20s);
        if (!up || pid_ < 0) {
            stop();
            FAIL(name << " did not start:\n" << read_file(log_));
        }
        port_ = std::stoi(read_file(ready));
    }
    lab_process(const lab_process&) = delete;
    lab_process& operator=(const lab_process&) = delete;
    ~lab_process() { stop(); }

    void stop() {
        if (pid_ <= 0) {
            return;
        }
        ::kill(pid_, SIGTERM);
        if (!wait_until([this] { return ::waitpid(pid_, nullptr, WNOHANG) == pid_; }, 5s)) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        pid_ = -1;
    }
    int port() const { return port_; }
    std::string log() const { return read_file(log_); }

private:
    fs::path log_;
    pid_t pid_ = -1;
    int port_ = 0;
};

std::vector<fs::path> files_with(const fs::path& dir, std::string_view extension) {
    std::vector<fs::path> out;
    if (!fs::exists(dir)) {
        return out;
    }
    for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (entry.path().extension() == extension && name.front() != '.') {
            out.push_back(entry.path());
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

json::value read_json(const fs::path& path) {
    return json::parse(read_file(path));
}

std::string str(const json::value& v) {
    return v.is_string() ? std::string(v.as_string()) : std::string("<not a string>");
}

class smtp_sink {
public:
    explicit smtp_sink(std::vector<std::string> extra = {}) {
        extra.insert(extra.begin(), {"--dir", mail_dir().string()});
        process_.emplace(dir_.path(), "smtp_sink", std::move(extra));
    }
    int port() const { return process_->port(); }
    std::string url(std::string_view scheme = "smtp") const {
        return std::string(scheme) + "://127.0.0.1:" + std::to_string(port());
    }
    fs::path mail_dir() const { return dir_.path() / "mail"; }
    std::vector<fs::path> messages() const { return files_with(mail_dir(), ".eml"); }
    static json::value sidecar(const fs::path& eml) {
        fs::path side = eml;
        return read_json(side.replace_extension(".json"));
    }
    std::string log() const { return process_->log(); }

private:
    temp_dir dir_{"pwresetd-delivery"};
    std::optional<lab_process> process_;
};

class webhook_lab {
public:
    explicit webhook_lab(std::vector<std::string> extra = {}, bool other_ca = false) {
        write_file(dir_.path() / "token", std::string(lab_token) + "\n");
        const auto& c = certs();
        extra.insert(extra.begin(), {"--dir", hook_dir().string(), "--cert",
                                     (other_ca ? c.other_cert : c.cert).string(), "--key",
                                     (other_ca ? c.other_key : c.key).string(), "--token-file",
                                     (dir_.path() / "token").string()});
        process_.emplace(dir_.path(), "webhook", std::move(extra));
    }
    std::string url() const {
        return "https://127.0.0.1:" + std::to_string(process_->port()) + "/sms";
    }
    fs::path hook_dir() const { return dir_.path() / "hook"; }
    std::vector<fs::path> accepted() const { return files_with(hook_dir(), ".json"); }
    // The status of every request, in order.
    std::vector<std::int64_t> statuses() const {
        std::vector<std::int64_t> out;
        std::istringstream lines(read_file(hook_dir() / "requests.jsonl"));
        for (std::string line; std::getline(lines, line);) {
            out.push_back(json::parse(line).at("status").as_int64());
        }
        return out;
    }

private:
    temp_dir dir_{"pwresetd-delivery"};
    std::optional<lab_process> process_;
};

std::size_t count(std::string_view haystack, std::string_view needle) {
    std::size_t n = 0;
    for (auto pos = haystack.find(needle); pos != std::string_view::npos;
         pos = haystack.find(needle, pos + 1)) {
        ++n;
    }
    return n;
}

mail_settings mail_for(const std::string& url) {
    mail_settings s;
    s.smtp_url = url;
    s.from = "noreply@example.test";
    s.timeout_ms = 5000;
    s.retries = 0;
    s.require_tls = false;  // the plain sink; the TLS cases below say what they need
    return s;
}

email_message code_mail(std::string to = "alice@example.test") {
    email_message m;
    m.to = std::move(to);
    m.subject = std::string(mail_subject);
    m.body = secret(mail_body);
    m.reference = "req-mail-1";
    return m;
}

sms_settings sms_for(const std::string& url) {
    sms_settings s;
    s.webhook_url = url;
    s.ca_file = certs().ca.string();
    s.bearer_token = secret(lab_token);
    s.timeout_ms = 5000;
    s.retries = 0;
    return s;
}

sms_message code_sms(std::string to = "+46701234567") {
    sms_message m;
    m.to = std::move(to);
    m.text = secret(sms_text);
    m.reference = "req-sms-1";
    return m;
}

}  // namespace

TEST_CASE("plain SMTP delivers a message that a mail reader decodes exactly", "[smtp]") {
    smtp_sink sink;
    const delivery_result r = send_email_now(mail_for(sink.url()), code_mail());
    INFO(r.error << "\n" << sink.log());
    REQUIRE(r.ok);
    CHECK(r.attempts == 1);
    CHECK(r.error.empty());

    const auto messages = sink.messages();
    REQUIRE(messages.size() == 1);
    const json::value meta = smtp_sink::sidecar(messages[0]);
    CHECK(str(meta.at("mail_from")) == "noreply@example.test");
    REQUIRE(meta.at("rcpt_tos").as_array().size() == 1);
    CHECK(str(meta.at("rcpt_tos").as_array()[0]) == "alice@example.test");
    CHECK_FALSE(meta.at("tls").as_bool());
    CHECK(meta.at("defects").as_array().empty());

    // Python's email package (policy=default) reads it back: UTF-8 subject and body exact.
    const json::value& h = meta.at("headers");
    CHECK(str(h.at("subject")) == mail_subject);
    CHECK(str(meta.at("body")) == mail_body);
    CHECK(str(h.at("from")) == "noreply@example.test");
    CHECK(str(h.at("to")) == "alice@example.test");
    CHECK(str(h.at("mime-version")) == "1.0");
    CHECK(str(h.at("auto-submitted")) == "auto-generated");
    CHECK(str(h.at("content-type")).find("text/plain") != std::string::npos);
    CHECK(str(h.at("content-type")).find("utf-8") != std::string::npos);
    CHECK(str(h.at("message-id")).ends_with("@example.test>"));
    CHECK_FALSE(str(h.at("date")).empty());

    // The raw message: RFC 2047 subject, base64 body, the code nowhere in clear.
    const std::string raw = read_file(messages[0]);
    CHECK(raw.find("\r\nSubject: =?UTF-8?B?") != std::string::npos);
    CHECK(raw.find("\r\nContent-Transfer-Encoding: base64\r\n") != std::string::npos);
    CHECK(raw.find("\r\nAuto-Submitted: auto-generated\r\n") != std::string::npos);
    CHECK(raw.find(the_code) == std::string::npos);
}

TEST_CASE("STARTTLS is used when offered, and the certificate is verified", "[smtp][tls]") {
    const auto& c = certs();
    SECTION("a server with a certificate from the trusted CA") {
        smtp_sink sink({"--tls-cert", c.cert.string(), "--tls-key", c.key.string()});
        mail_settings s = mail_for(sink.url());
        s.ca_file = c.ca.string();
        const delivery_result r = send_email_now(s, code_mail());
        INFO(r.error << "\n" << sink.log());
        REQUIRE(r.ok);
        const auto messages = sink.messages();
        REQUIRE(messages.size() == 1);
        const json::value meta = smtp_sink::sidecar(messages[0]);
        CHECK(meta.at("tls").as_bool());
        CHECK(meta.at("starttls").as_bool());
        const std::string version = str(meta.at("tls_version"));
        CHECK((version == "TLSv1.2" || version == "TLSv1.3"));
        CHECK(str(meta.at("body")) == mail_body);
    }
    SECTION("a server whose certificate comes from another CA: nothing is sent") {
        smtp_sink sink({"--tls-cert", c.other_cert.string(), "--tls-key", c.other_key.string()});
        mail_settings s = mail_for(sink.url());
        s.ca_file = c.ca.string();
        s.retries = 2;
        const delivery_result r = send_email_now(s, code_mail());
        INFO(r.error);
        CHECK_FALSE(r.ok);
        CHECK(r.attempts == 1);  // a certificate does not get better by retrying
        CHECK(r.error.find("certificate") != std::string::npos);
        CHECK(sink.messages().empty());
    }
    SECTION("without ca_file the system store does not know the lab CA") {
        smtp_sink sink({"--tls-cert", c.cert.string(), "--tls-key", c.key.string()});
        const delivery_result r = send_email_now(mail_for(sink.url()), code_mail());
        INFO(r.error);
        CHECK_FALSE(r.ok);
        CHECK(sink.messages().empty());
    }
}

TEST_CASE("require_tls refuses a server that does not offer STARTTLS", "[smtp][tls]") {
    smtp_sink sink;
    mail_settings s = mail_for(sink.url());
    // TLS is required unless the configuration says require_tls: false.
    s.require_tls = mail_settings{}.require_tls;
    REQUIRE(s.require_tls);
    s.retries = 2;
    const delivery_result r = send_email_now(s, code_mail());
    INFO(r.error);
    CHECK_FALSE(r.ok);
    CHECK(r.attempts == 1);
    CHECK_FALSE(r.error.empty());
    CHECK(sink.messages().empty());
}

TEST_CASE("smtps:// is TLS from the first byte", "[smtp][tls]") {
    const auto& c = certs();
    smtp_sink sink({"--smtps", "--tls-cert", c.cert.string(), "--tls-key", c.key.string()});
    mail_settings s = mail_for(sink.url("smtps"));
    s.ca_file = c.ca.string();
    const delivery_result r = send_email_now(s, code_mail());
    INFO(r.error << "\n" << sink.log());
    REQUIRE(r.ok);
    const auto messages = sink.messages();
    REQUIRE(messages.size() == 1);
    const json::value meta = smtp_sink::sidecar(messages[0]);
    CHECK(meta.at("tls").as_bool());
    CHECK_FALSE(meta.at("starttls").as_bool());
    CHECK(str(meta.at("headers").at("subject")) == mail_subject);
}

TEST_CASE("SMTP AUTH logs in over TLS; a wrong password is not retried", "[smtp][tls]") {
    const auto& c = certs();
    temp_dir dir{"pwresetd-delivery"};
    write_file(dir.path() / "auth", "relay-user:relay-Passw0rd-1\n");
    smtp_sink sink({"--tls-cert", c.cert.string(), "--tls-key", c.key.string(), "--auth-file",
                    (dir.path() / "auth").string()});
    mail_settings s = mail_for(sink.url());
    s.ca_file = c.ca.string();
    s.username = "relay-user";
    s.retries = 2;
    SECTION("right password") {
        s.password = secret(std::string_view("relay-Passw0rd-1"));
        const delivery_result r = send_email_now(s, code_mail());
        INFO(r.error << "\n" << sink.log());
        REQUIRE(r.ok);
        const auto messages = sink.messages();
        REQUIRE(messages.size() == 1);
        CHECK(str(smtp_sink::sidecar(messages[0]).at("auth_user")) == "relay-user");
    }
    SECTION("wrong password") {
        s.password = secret(std::string_view("wrong-Passw0rd-2"));
        const delivery_result r = send_email_now(s, code_mail());
        INFO(r.error);
        CHECK_FALSE(r.ok);
        CHECK(r.attempts == 1);
        CHECK(r.error.find("wrong-Passw0rd-2") == std::string::npos);
        CHECK(sink.messages().empty());
    }
}

TEST_CASE("nothing listening: failure after the retries, with a clear error", "[smtp]") {
    mail_settings s = mail_for("smtp://127.0.0.1:" + std::to_string(free_port()));
    s.retries = 2;
    s.timeout_ms = 2000;
    const auto start = steady::now();
    const delivery_result r = send_email_now(s, code_mail());
    const auto elapsed = steady::now() - start;
    INFO(r.error);
    CHECK_FALSE(r.ok);
    CHECK(r.attempts == 3);
    CHECK(r.error.find("connect") != std::string::npos);
    CHECK(r.error.find(the_code) == std::string::npos);
    CHECK(elapsed >= 600ms);  // back-off 200 ms + 400 ms
    CHECK(elapsed < 10s);
}

TEST_CASE("the webhook gets {to, text} as JSON with the bearer token", "[sms]") {
    webhook_lab hook;
    SECTION("right token") {
        const delivery_result r = send_sms_now(sms_for(hook.url()), code_sms());
        INFO(r.error);
        REQUIRE(r.ok);
        CHECK(r.attempts == 1);
        const auto accepted = hook.accepted();
        REQUIRE(accepted.size() == 1);
        const json::value record = read_json(accepted[0]);
        CHECK(str(record.at("auth")) == "ok");
        CHECK(str(record.at("content_type")) == "application/json");
        CHECK(str(record.at("path")) == "/sms");
        const json::object& body = record.at("body").as_object();
        CHECK(body.size() == 2);
        CHECK(str(body.at("to")) == "+46701234567");
        CHECK(str(body.at("text")) == sms_text);
    }
    SECTION("wrong token: 401, not retried") {
        sms_settings s = sms_for(hook.url());
        s.bearer_token = secret(std::string_view("not-the-token"));
        s.retries = 2;
        const delivery_result r = send_sms_now(s, code_sms());
        INFO(r.error);
        CHECK_FALSE(r.ok);
        CHECK(r.attempts == 1);
        CHECK(r.error.find("401") != std::string::npos);
        CHECK(hook.accepted().empty());
        CHECK(hook.statuses() == std::vector<std::int64_t>{401});
    }
    SECTION("no token: 401") {
        sms_settings s = sms_for(hook.url());
        s.bearer_token = secret();
        const delivery_result r = send_sms_now(s, code_sms());
        CHECK_FALSE(r.ok);
        CHECK(hook.statuses() == std::vector<std::int64_t>{401});
    }
}

TEST_CASE("the webhook is retried after 503 and delivered on the third attempt", "[sms]") {
    webhook_lab hook({"--fail-first", "2"});
    sms_settings s = sms_for(hook.url());
    s.retries = 2;
    const delivery_result r = send_sms_now(s, code_sms());
    INFO(r.error);
    REQUIRE(r.ok);
    CHECK(r.attempts == 3);
    CHECK(hook.statuses() == std::vector<std::int64_t>{503, 503, 200});
    CHECK(hook.accepted().size() == 1);

    SECTION("and gives up when the retries run out") {
        webhook_lab failing({"--fail-first", "5"});
        sms_settings f = sms_for(failing.url());
        f.retries = 1;
        const delivery_result bad = send_sms_now(f, code_sms());
        CHECK_FALSE(bad.ok);
        CHECK(bad.attempts == 2);
        CHECK(bad.error.find("503") != std::string::npos);
    }
}

TEST_CASE("a slow webhook fails within a bounded time", "[sms]") {
    webhook_lab hook({"--delay-ms", "4000"});
    sms_settings s = sms_for(hook.url());
    s.timeout_ms = 500;
    s.retries = 1;
    const auto start = steady::now();
    const delivery_result r = send_sms_now(s, code_sms());
    const auto elapsed = steady::now() - start;
    INFO(r.error);
    CHECK_FALSE(r.ok);
    CHECK(r.attempts == 2);
    CHECK(r.error.find("imeout") != std::string::npos);
    CHECK(elapsed < 3s);  // 2 × 500 ms + 200 ms back-off, and not the server's 4 s
}

TEST_CASE("the webhook certificate is verified", "[sms][tls]") {
    webhook_lab hook({}, true);
    sms_settings s = sms_for(hook.url());
    s.retries = 2;
    const delivery_result r = send_sms_now(s, code_sms());
    INFO(r.error);
    CHECK_FALSE(r.ok);
    CHECK(r.attempts == 1);
    CHECK(r.error.find("certificate") != std::string::npos);
    CHECK(hook.accepted().empty());
}

TEST_CASE("the courier delivers in the background, stop() drains, and the log has no code",
          "[courier]") {
    const auto& c = certs();
    // The sink waits 300 ms before it accepts each message: a send that waited for the
    // delivery would be seen.
    smtp_sink sink(
        {"--tls-cert", c.cert.string(), "--tls-key", c.key.string(), "--delay-ms", "300"});
    webhook_lab hook;
    mail_settings mail = mail_for(sink.url());
    mail.ca_file = c.ca.string();
    mail.require_tls = true;
    const int dead_port = free_port();

    std::string log;
    {
        stderr_capture capture;
        courier courier_(std::move(mail), sms_for(hook.url()), 1, 100);

        const auto start = steady::now();
        CHECK(courier_.send_email(code_mail()));
        CHECK(steady::now() - start < 100ms);
        CHECK(sink.messages().empty());
        CHECK(wait_until([&] { return sink.messages().size() == 1; }, 15s));

        // Queued behind each other on one worker; stop() lets them all finish.
        for (const char* to : {"bob@example.test", "carol@example.test", "dave@example.test"}) {
            CHECK(courier_.send_email(code_mail(to)));
        }
        CHECK(courier_.send_sms(code_sms("+46701234500")));
        CHECK(courier_.send_sms(code_sms("+46701234567")));
        courier_.stop(30000);
        CHECK(sink.messages().size() == 4);
        CHECK(hook.accepted().size() == 2);
        CHECK_FALSE(courier_.send_email(code_mail()));

        // A delivery that fails is logged with its error.
        mail_settings dead = mail_for("smtp://127.0.0.1:" + std::to_string(dead_port));
        courier failing(std::move(dead), std::nullopt, 1, 10);
        CHECK(failing.send_email(code_mail("erin@example.test")));
        failing.stop(10000);
        log = capture.text();
    }
    INFO(log);
    CHECK(count(log, "event=delivery.sent") == 6);
    CHECK(log.find("event=delivery.sent reference=req-mail-1 channel=email "
                   "destination=a***@e*** attempts=1") != std::string::npos);
    CHECK(log.find("event=delivery.sent reference=req-sms-1 channel=sms destination=***67 "
                   "attempts=1") != std::string::npos);
    CHECK(log.find("event=delivery.failed reference=req-mail-1 channel=email "
                   "destination=e***@e*** attempts=1 error=") != std::string::npos);
    CHECK(log.find("connect") != std::string::npos);
    // Never the code, the text, the token or a whole destination.
    CHECK(log.find(the_code) == std::string::npos);
    CHECK(log.find("Hej") == std::string::npos);
    CHECK(log.find(lab_token) == std::string::npos);
    CHECK(log.find("alice") == std::string::npos);
    CHECK(log.find("@example.test") == std::string::npos);
    CHECK(log.find("46701234567") == std::string::npos);
}
