#include "factors/delivery.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

#include "common/clock.hpp"
#include "common/crypto.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"
#include "common/text.hpp"

namespace pwresetd::factors {
namespace {

// Scratch space for text that holds a code. Its capacity is fixed up front and never
// exceeded, so it never reallocates (a reallocation would leave a copy in freed memory),
// and it is wiped when it goes away.
class wiped_buffer {
public:
    explicit wiped_buffer(std::size_t capacity) { bytes_.reserve(capacity); }
    wiped_buffer(const wiped_buffer&) = delete;
    wiped_buffer& operator=(const wiped_buffer&) = delete;
    ~wiped_buffer() { wipe(bytes_.data(), bytes_.size()); }

    void push_back(char c) {
        if (bytes_.size() == bytes_.capacity()) {
            throw std::logic_error("delivery: scratch buffer too small");
        }
        bytes_.push_back(static_cast<unsigned char>(c));
    }
    void append(std::string_view text) {
        for (const char c : text) {
            push_back(c);
        }
    }
    [[nodiscard]] std::string_view view() const noexcept {
        return {reinterpret_cast<const char*>(bytes_.data()), bytes_.size()};
    }
    // Appends a NUL and returns the text as a C string, for curl options that take one.
    [[nodiscard]] const char* terminate() {
        push_back('\0');
        return reinterpret_cast<const char*>(bytes_.data());
    }
    [[nodiscard]] secret to_secret() const { return secret(std::span(bytes_)); }

private:
    std::vector<unsigned char> bytes_;
};

constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::size_t base64_length(std::size_t n) {
    return (n + 2) / 3 * 4;
}

// Calls put(char) for the base64 of `data` (RFC 4648 section 4, with padding).
template <typename Put>
void base64(std::span<const unsigned char> data, Put&& put) {
    std::size_t i = 0;
    for (; i + 3 <= data.size(); i += 3) {
        const unsigned v =
            (unsigned{data[i]} << 16U) | (unsigned{data[i + 1]} << 8U) | unsigned{data[i + 2]};
        put(base64_alphabet[(v >> 18U) & 0x3FU]);
        put(base64_alphabet[(v >> 12U) & 0x3FU]);
        put(base64_alphabet[(v >> 6U) & 0x3FU]);
        put(base64_alphabet[v & 0x3FU]);
    }
    const std::size_t rest = data.size() - i;
    if (rest == 0) {
        return;
    }
    unsigned v = unsigned{data[i]} << 16U;
    if (rest == 2) {
        v |= unsigned{data[i + 1]} << 8U;
    }
    put(base64_alphabet[(v >> 18U) & 0x3FU]);
    put(base64_alphabet[(v >> 12U) & 0x3FU]);
    put(rest == 2 ? base64_alphabet[(v >> 6U) & 0x3FU] : '=');
    put('=');
}

std::span<const unsigned char> bytes_of(std::string_view s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

bool printable_ascii(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7F; });
}

std::string subject_problem(std::string_view subject) {
    for (const char c : subject) {
        const auto u = static_cast<unsigned char>(c);
        if ((u < 0x20 && c != '\t') || u == 0x7F) {
            return "subject contains a control character (CR, LF, NUL, ...)";
        }
    }
    if (!text::is_valid_utf8(subject)) {
        return "subject is not valid UTF-8";
    }
    if (subject.size() > 900) {
        return "subject longer than 900 bytes";
    }
    return {};
}

std::string_view domain_of(std::string_view address) {
    const auto at = address.rfind('@');
    return at == std::string_view::npos ? std::string_view{} : address.substr(at + 1);
}

// RFC 5322 section 3.6.4: unique, with the sender's domain on the right.
std::string new_message_id(std::string_view from) {
    return "<" + crypto::hex_encode(crypto::random_bytes(16)) + "@" + std::string(domain_of(from)) +
           ">";
}

// 200 ms, 400 ms, 800 ms, ... at most 2 s: enough for a restarting relay or gateway,
// short enough that a courier thread is soon free again.
std::chrono::milliseconds backoff(int attempt) {
    const int shift = std::min(attempt - 1, 4);
    return std::min(std::chrono::milliseconds(200 << shift), std::chrono::milliseconds(2000));
}

// --- curl -------------------------------------------------------------------------------

void ensure_curl() {
    // curl_global_init is not thread-safe; every path to curl_easy_init passes here first.
    static std::once_flag once;
    std::call_once(once, [] {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            throw std::runtime_error("curl_global_init failed");
        }
    });
}

struct curl_deleter {
    void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); }
};
using curl_ptr = std::unique_ptr<CURL, curl_deleter>;

// Header and recipient lists; the strings are wiped before they are freed (one of them
// carries the bearer token).
struct slist_deleter {
    void operator()(curl_slist* list) const noexcept {
        for (curl_slist* node = list; node != nullptr; node = node->next) {
            if (node->data != nullptr) {
                wipe(node->data, std::strlen(node->data));
            }
        }
        curl_slist_free_all(list);
    }
};
using slist_ptr = std::unique_ptr<curl_slist, slist_deleter>;

void append(slist_ptr& list, const char* line) {
    curl_slist* grown = curl_slist_append(list.get(), line);
    if (grown == nullptr) {
        throw std::bad_alloc();
    }
    static_cast<void>(list.release());
    list.reset(grown);
}

struct upload {
    std::span<const unsigned char> data;
    std::size_t offset = 0;
};

std::size_t read_upload(char* buffer, std::size_t size, std::size_t items, void* user) {
    auto* up = static_cast<upload*>(user);
    const std::size_t n = std::min(size * items, up->data.size() - up->offset);
    std::memcpy(buffer, up->data.data() + up->offset, n);
    up->offset += n;
    return n;
}

// Response bodies are read and dropped: a gateway may echo the text (and so the code).
std::size_t discard(char*, std::size_t size, std::size_t items, void*) {
    return size * items;
}

struct attempt_outcome {
    bool ok = false;
    bool worth_retrying = false;
    std::string error;
};

void check(CURLcode code) {
    if (code != CURLE_OK) {
        throw std::runtime_error(std::string("curl_easy_setopt: ") + curl_easy_strerror(code));
    }
}

// What every transfer gets: verified TLS 1.2 or later, only the given protocols, no
// redirects, no proxy from the environment, no signals, bounded time.
void common_options(CURL* curl, const char* protocols, const std::string& ca_file, int timeout_ms,
                    char* error_buffer) {
    const long timeout = std::max(1L, static_cast<long>(timeout_ms));
    check(curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer));
    check(curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L));
    check(curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, protocols));
    check(curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, protocols));
    check(curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L));
    check(curl_easy_setopt(curl, CURLOPT_PROXY, ""));
    check(curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L));
    check(curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L));
    check(curl_easy_setopt(curl, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2));
    if (!ca_file.empty()) {
        check(curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file.c_str()));
        // Debian's libcurl also reads /etc/ssl/certs by default; ca_file replaces both.
        check(curl_easy_setopt(curl, CURLOPT_CAPATH, static_cast<char*>(nullptr)));
    }
    check(curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout));
    check(curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout));
    check(curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &discard));
}

std::string curl_error(CURLcode code, const char* error_buffer) {
    std::string out = curl_easy_strerror(code);
    if (error_buffer[0] != '\0') {
        out += ": ";
        out += error_buffer;
    }
    return out;
}

// Failures that may pass: the peer was unreachable, slow or dropped the connection.
// Certificate errors, refused logins and missing STARTTLS will not change by retrying.
bool transient(CURLcode code) {
    switch (code) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_WEIRD_SERVER_REPLY:
            return true;
        default:
            return false;
    }
}

bool starts_with_scheme(std::string_view url, std::string_view scheme) {
    if (url.size() < scheme.size()) {
        return false;
    }
    return text::ascii_lower(url.substr(0, scheme.size())) == scheme;
}

template <typename Attempt>
delivery_result with_retries(int retries, Attempt&& attempt) {
    delivery_result result;
    const int total = std::max(0, retries) + 1;
    for (int n = 1; n <= total; ++n) {
        result.attempts = n;
        attempt_outcome outcome = attempt();
        if (outcome.ok) {
            result.ok = true;
            result.error.clear();
            return result;
        }
        result.error = std::move(outcome.error);
        if (!outcome.worth_retrying || n == total) {
            break;
        }
        std::this_thread::sleep_for(backoff(n));
    }
    return result;
}

// --- SMTP -------------------------------------------------------------------------------

attempt_outcome smtp_attempt(const mail_settings& settings, std::string_view to,
                             const secret& mail) {
    curl_ptr curl(curl_easy_init());
    if (!curl) {
        return {false, false, "curl_easy_init failed"};
    }
    std::array<char, CURL_ERROR_SIZE> error_buffer{};
    common_options(curl.get(), "smtp,smtps", settings.ca_file, settings.timeout_ms,
                   error_buffer.data());

    const std::string url = settings.smtp_url;
    const std::string mail_from = "<" + settings.from + ">";
    slist_ptr recipients;
    append(recipients, ("<" + std::string(to) + ">").c_str());
    upload up{mail.bytes(), 0};

    check(curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str()));
    check(curl_easy_setopt(curl.get(), CURLOPT_MAIL_FROM, mail_from.c_str()));
    check(curl_easy_setopt(curl.get(), CURLOPT_MAIL_RCPT, recipients.get()));
    check(curl_easy_setopt(curl.get(), CURLOPT_UPLOAD, 1L));
    check(curl_easy_setopt(curl.get(), CURLOPT_READFUNCTION, &read_upload));
    check(curl_easy_setopt(curl.get(), CURLOPT_READDATA, &up));
    check(curl_easy_setopt(curl.get(), CURLOPT_INFILESIZE_LARGE,
                           static_cast<curl_off_t>(mail.size())));
    // smtps:// is TLS from the first byte whatever this says. On smtp://, TRY upgrades
    // with STARTTLS when the server offers it (RFC 3207) and ALL refuses to go on without
    // it. Credentials never travel in clear: a username implies ALL.
    const bool must_tls = settings.require_tls || !settings.username.empty();
    check(curl_easy_setopt(curl.get(), CURLOPT_USE_SSL,
                           static_cast<long>(must_tls ? CURLUSESSL_ALL : CURLUSESSL_TRY)));

    wiped_buffer password(settings.password.size() + 1);
    if (!settings.username.empty()) {
        password.append(settings.password.view());
        check(curl_easy_setopt(curl.get(), CURLOPT_USERNAME, settings.username.c_str()));
        check(curl_easy_setopt(curl.get(), CURLOPT_PASSWORD, password.terminate()));
    }

    const CURLcode code = curl_easy_perform(curl.get());
    long reply = 0;
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &reply);
    if (code == CURLE_OK) {
        return {true, false, {}};
    }
    attempt_outcome out;
    out.error = "smtp: " + curl_error(code, error_buffer.data());
    if (reply > 0) {
        out.error += " (last SMTP reply " + std::to_string(reply) + ")";
    }
    // RFC 5321 section 4.2.1: 5yz is permanent, 4yz is worth another try.
    if (reply >= 500) {
        out.worth_retrying = false;
    } else if (reply >= 400) {
        out.worth_retrying = true;
    } else {
        out.worth_retrying = transient(code);
    }
    return out;
}

// --- SMS webhook ------------------------------------------------------------------------

std::string token_problem(const secret& token) {
    for (const unsigned char u : token.bytes()) {
        if (u <= 0x20 || u >= 0x7F) {
            return "bearer token contains a space, control or non-ASCII character";
        }
    }
    return {};
}

attempt_outcome webhook_attempt(const sms_settings& settings, const secret& body) {
    curl_ptr curl(curl_easy_init());
    if (!curl) {
        return {false, false, "curl_easy_init failed"};
    }
    std::array<char, CURL_ERROR_SIZE> error_buffer{};
    common_options(curl.get(), "https", settings.ca_file, settings.timeout_ms, error_buffer.data());

    slist_ptr headers;
    append(headers, "Content-Type: application/json");
    append(headers, "Accept: application/json");
    append(headers, "Expect:");  // no 100-continue round trip
    if (!settings.bearer_token.empty()) {
        constexpr std::string_view prefix = "Authorization: Bearer ";
        wiped_buffer line(prefix.size() + settings.bearer_token.size() + 1);
        line.append(prefix);
        line.append(settings.bearer_token.view());
        append(headers, line.terminate());
    }

    check(curl_easy_setopt(curl.get(), CURLOPT_URL, settings.webhook_url.c_str()));
    check(curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers.get()));
    check(curl_easy_setopt(curl.get(), CURLOPT_POST, 1L));
    // POSTFIELDS (not COPYPOSTFIELDS): curl reads our wiped buffer instead of copying it.
    check(curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body.view().data()));
    check(curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE_LARGE,
                           static_cast<curl_off_t>(body.size())));

    const CURLcode code = curl_easy_perform(curl.get());
    if (code != CURLE_OK) {
        return {false, transient(code), "webhook: " + curl_error(code, error_buffer.data())};
    }
    long status = 0;
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
        return {true, false, {}};
    }
    // 429 and 5xx say "later"; any other answer will be the same next time.
    return {false, status == 429 || status >= 500,
            "webhook: answered HTTP " + std::to_string(status)};
}

// --- the courier's log lines --------------------------------------------------------------

std::string_view channel_of(const email_message&) {
    return "email";
}
std::string_view channel_of(const sms_message&) {
    return "sms";
}
std::string masked(const email_message& m) {
    return detail::log_mask_email(m.to);
}
std::string masked(const sms_message& m) {
    return detail::log_mask_phone(m.to);
}

metrics::counter_family& codes_sent() {
    static auto& family = metrics::registry::global().counters(
        "pwresetd_codes_sent_total",
        "Messages with a code that the mail server or SMS gateway accepted, by channel.",
        {"channel"});
    return family;
}

metrics::counter_family& delivery_failures() {
    static auto& family = metrics::registry::global().counters(
        "pwresetd_code_delivery_failures_total",
        "Messages with a code that were not delivered, by channel and reason (failed: refused "
        "or unreachable after the retries; queue_full; stopping: dropped at shutdown).",
        {"channel", "reason"});
    return family;
}

template <typename Message>
void log_dropped(const Message& m, std::string_view reason) {
    delivery_failures().with({channel_of(m), reason}).inc();
    log::warning("delivery.dropped", {{"reference", m.reference},
                                      {"channel", channel_of(m)},
                                      {"destination", masked(m)},
                                      {"reason", reason}});
}

}  // namespace

// --- public -----------------------------------------------------------------------------

std::string email_address_problem(std::string_view address) {
    if (address.empty()) {
        return "empty address";
    }
    if (address.size() > 254) {
        return "address longer than 254 characters";
    }
    for (const char c : address) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7F) {
            return "address contains a space or control character";
        }
        if (u >= 0x80) {
            return "address is not ASCII (SMTPUTF8 is not used)";
        }
        if (std::string_view("<>()[],;:\"\\").find(c) != std::string_view::npos) {
            return "address contains a character not allowed in a plain address";
        }
    }
    if (std::count(address.begin(), address.end(), '@') != 1) {
        return "address needs exactly one '@'";
    }
    const auto at = address.find('@');
    const std::string_view local = address.substr(0, at);
    const std::string_view domain = address.substr(at + 1);
    if (local.empty()) {
        return "address has an empty local part";
    }
    if (local.size() > 64) {
        return "local part longer than 64 characters";
    }
    if (domain.empty()) {
        return "address has an empty domain";
    }
    for (const std::string_view part : {local, domain}) {
        if (part.front() == '.' || part.back() == '.' ||
            part.find("..") != std::string_view::npos) {
            return "address has a misplaced '.'";
        }
    }
    for (const char c : domain) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '.';
        if (!ok) {
            return "domain contains a character other than letters, digits, '-' and '.'";
        }
    }
    return {};
}

namespace detail {

std::string encode_subject(std::string_view subject) {
    // "Subject: " plus 69 characters keeps the line within RFC 5322's 78. A plain subject
    // that happens to contain "=?" would be read as an encoded word: encode it too.
    if (subject.size() <= 69 && printable_ascii(subject) &&
        subject.find("=?") == std::string_view::npos) {
        return std::string(subject);
    }
    // RFC 2047: each encoded word at most 75 characters, whole characters only (section
    // 5 rule 3). 39 bytes → 52 base64 characters → 64-character words.
    constexpr std::size_t chunk = 39;
    std::string out;
    std::size_t pos = 0;
    const auto bytes = bytes_of(subject);
    while (pos < bytes.size()) {
        std::size_t end = std::min(pos + chunk, bytes.size());
        while (end < bytes.size() && end > pos + 1 && (bytes[end] & 0xC0U) == 0x80U) {
            --end;
        }
        if (!out.empty()) {
            out += "\r\n ";
        }
        out += "=?UTF-8?B?";
        base64(bytes.subspan(pos, end - pos), [&out](char c) { out.push_back(c); });
        out += "?=";
        pos = end;
    }
    return out;
}

std::string mail_date(std::int64_t unix_seconds) {
    static constexpr std::array<const char*, 7> days = {"Sun", "Mon", "Tue", "Wed",
                                                        "Thu", "Fri", "Sat"};
    static constexpr std::array<const char*, 12> months = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const auto t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    if (::gmtime_r(&t, &tm) == nullptr) {
        throw std::runtime_error("delivery: gmtime_r failed");
    }
    std::array<char, 64> buffer{};
    const int n =
        std::snprintf(buffer.data(), buffer.size(), "%s, %02d %s %04d %02d:%02d:%02d +0000",
                      days.at(static_cast<std::size_t>(tm.tm_wday)), tm.tm_mday,
                      months.at(static_cast<std::size_t>(tm.tm_mon)), tm.tm_year + 1900, tm.tm_hour,
                      tm.tm_min, tm.tm_sec);
    if (n <= 0 || static_cast<std::size_t>(n) >= buffer.size()) {
        throw std::runtime_error("delivery: date does not fit");
    }
    return {buffer.data(), static_cast<std::size_t>(n)};
}

secret build_mail(std::string_view from, const email_message& message, std::string_view date,
                  std::string_view message_id) {
    std::string headers;
    const auto header = [&headers](std::string_view name, std::string_view value) {
        headers += name;
        headers += ": ";
        headers += value;
        headers += "\r\n";
    };
    header("Date", date);
    header("From", from);
    header("To", message.to);
    header("Subject", encode_subject(message.subject));
    header("Message-ID", message_id);
    header("MIME-Version", "1.0");
    header("Content-Type", "text/plain; charset=utf-8");
    header("Content-Transfer-Encoding", "base64");
    // RFC 3834: no vacation replies or bounces-of-bounces to a code mail.
    header("Auto-Submitted", "auto-generated");
    headers += "\r\n";

    // RFC 2045 section 6.8: text is encoded in its canonical form, lines ending in CRLF.
    const std::string_view body = message.body.view();
    std::size_t bare_lf = 0;
    for (std::size_t i = 0; i < body.size(); ++i) {
        if (body[i] == '\n' && (i == 0 || body[i - 1] != '\r')) {
            ++bare_lf;
        }
    }
    wiped_buffer canonical(body.size() + bare_lf);
    for (std::size_t i = 0; i < body.size(); ++i) {
        if (body[i] == '\n' && (i == 0 || body[i - 1] != '\r')) {
            canonical.push_back('\r');
        }
        canonical.push_back(body[i]);
    }

    // RFC 2045 section 6.8: encoded lines of at most 76 characters.
    constexpr std::size_t line = 76;
    const std::size_t encoded = base64_length(canonical.view().size());
    const std::size_t lines = (encoded + line - 1) / line;
    wiped_buffer out(headers.size() + encoded + 2 * lines);
    out.append(headers);
    std::size_t column = 0;
    base64(bytes_of(canonical.view()), [&out, &column](char c) {
        out.push_back(c);
        if (++column == line) {
            out.append("\r\n");
            column = 0;
        }
    });
    if (column > 0) {
        out.append("\r\n");
    }
    return out.to_secret();
}

secret sms_json(const sms_message& message) {
    const std::string_view text = message.text.view();
    // Worst case every byte becomes \u00XX.
    wiped_buffer out(32 + 6 * (message.to.size() + text.size()));
    const auto string = [&out](std::string_view value) {
        static constexpr std::string_view hex = "0123456789abcdef";
        out.push_back('"');
        for (const char c : value) {
            const auto u = static_cast<unsigned char>(c);
            switch (c) {
                case '"':
                    out.append("\\\"");
                    break;
                case '\\':
                    out.append("\\\\");
                    break;
                case '\n':
                    out.append("\\n");
                    break;
                case '\r':
                    out.append("\\r");
                    break;
                case '\t':
                    out.append("\\t");
                    break;
                default:
                    if (u < 0x20) {
                        out.append("\\u00");
                        out.push_back(hex[u >> 4U]);
                        out.push_back(hex[u & 0x0FU]);
                    } else {
                        out.push_back(c);
                    }
            }
        }
        out.push_back('"');
    };
    out.append("{\"to\":");
    string(message.to);
    out.append(",\"text\":");
    string(text);
    out.push_back('}');
    return out.to_secret();
}

std::string log_mask_email(std::string_view address) {
    const auto at = address.rfind('@');
    if (at == std::string_view::npos || at == 0 || at + 1 >= address.size()) {
        return "***";
    }
    std::string out;
    out += address.front();
    out += "***@";
    out += address[at + 1];
    out += "***";
    return out;
}

std::string log_mask_phone(std::string_view number) {
    std::string digits;
    for (const char c : number) {
        if (c >= '0' && c <= '9') {
            digits += c;
        }
    }
    if (digits.size() < 2) {
        return "***";
    }
    return "***" + digits.substr(digits.size() - 2);
}

}  // namespace detail

delivery_result send_email_now(const mail_settings& settings, const email_message& message) {
    delivery_result refused;
    if (auto problem = email_address_problem(message.to); !problem.empty()) {
        refused.error = "recipient refused: " + problem;
        return refused;
    }
    if (auto problem = email_address_problem(settings.from); !problem.empty()) {
        refused.error = "sender refused: " + problem;
        return refused;
    }
    if (auto problem = subject_problem(message.subject); !problem.empty()) {
        refused.error = "refused: " + problem;
        return refused;
    }
    if (!text::is_valid_utf8(message.body.view())) {
        refused.error = "refused: body is not valid UTF-8";
        return refused;
    }
    if (!starts_with_scheme(settings.smtp_url, "smtp://") &&
        !starts_with_scheme(settings.smtp_url, "smtps://")) {
        refused.error = "refused: smtp_url must start with smtp:// or smtps://";
        return refused;
    }
    try {
        ensure_curl();
        const secret mail = detail::build_mail(
            settings.from, message, detail::mail_date(unix_now()), new_message_id(settings.from));
        // The same Message-ID on every attempt lets a relay that did get it drop a repeat.
        return with_retries(settings.retries,
                            [&] { return smtp_attempt(settings, message.to, mail); });
    } catch (const std::exception& e) {
        refused.error = std::string("smtp: ") + e.what();
        return refused;
    }
}

delivery_result send_sms_now(const sms_settings& settings, const sms_message& message) {
    delivery_result refused;
    if (!starts_with_scheme(settings.webhook_url, "https://")) {
        refused.error = "refused: webhook_url must start with https://";
        return refused;
    }
    if (message.to.empty() || message.to.size() > 64 || !printable_ascii(message.to)) {
        refused.error = "refused: destination number is empty, too long or not printable ASCII";
        return refused;
    }
    if (!text::is_valid_utf8(message.text.view())) {
        refused.error = "refused: text is not valid UTF-8";
        return refused;
    }
    if (auto problem = token_problem(settings.bearer_token); !problem.empty()) {
        refused.error = "refused: " + problem;
        return refused;
    }
    try {
        ensure_curl();
        const secret body = detail::sms_json(message);
        return with_retries(settings.retries, [&] { return webhook_attempt(settings, body); });
    } catch (const std::exception& e) {
        refused.error = std::string("webhook: ") + e.what();
        return refused;
    }
}

// --- courier ----------------------------------------------------------------------------

courier::courier(std::optional<mail_settings> mail, std::optional<sms_settings> sms,
                 std::size_t workers, std::size_t max_queued)
    : mail_(std::move(mail)), sms_(std::move(sms)), max_queued_(max_queued) {
    ensure_curl();  // before any thread exists
    // The enabled channels' series exist from the start, at 0.
    for (const auto& [enabled, channel] :
         {std::pair{mail_.has_value(), "email"}, std::pair{sms_.has_value(), "sms"}}) {
        if (enabled) {
            codes_sent().with({channel});
            for (const char* reason : {"failed", "queue_full", "stopping"}) {
                delivery_failures().with({channel, reason});
            }
        }
    }
    try {
        for (std::size_t i = 0; i < workers; ++i) {
            threads_.emplace_back([this] { run(); });
        }
    } catch (...) {
        stop(0);
        throw;
    }
}

courier::~courier() {
    stop();
}

bool courier::send_email(email_message message) {
    return mail_ && enqueue(job{std::move(message)});
}

bool courier::send_sms(sms_message message) {
    return sms_ && enqueue(job{std::move(message)});
}

bool courier::enqueue(job work) {
    std::unique_lock lock(mutex_);
    if (stopping_) {
        return false;
    }
    if (queue_.size() >= max_queued_) {
        lock.unlock();
        std::visit([](const auto& m) { log_dropped(m, "queue_full"); }, work.message);
        return false;
    }
    queue_.push_back(std::move(work));
    lock.unlock();
    wake_.notify_one();
    return true;
}

void courier::stop(int drain_ms) {
    std::vector<std::thread> threads;
    {
        std::unique_lock lock(mutex_);
        stopping_ = true;
        threads.swap(threads_);
        wake_.notify_all();
        if (!threads.empty()) {
            idle_.wait_for(lock, std::chrono::milliseconds(std::max(0, drain_ms)),
                           [this] { return queue_.empty(); });
        }
        for (const job& j : queue_) {
            std::visit([](const auto& m) { log_dropped(m, "stopping"); }, j.message);
        }
        queue_.clear();
    }
    wake_.notify_all();
    for (std::thread& t : threads) {
        t.join();
    }
}

void courier::run() {
    for (;;) {
        std::optional<job> next;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) {
                return;
            }
            next.emplace(std::move(queue_.front()));
            queue_.pop_front();
            if (queue_.empty()) {
                idle_.notify_all();
            }
        }
        try {
            deliver(*next);
        } catch (const std::exception& e) {
            log::error("delivery.exception", {{"error", e.what()}});
        }
    }
}

void courier::deliver(const job& j) const {
    std::visit(
        [this](const auto& m) {
            delivery_result result;
            if constexpr (std::is_same_v<std::decay_t<decltype(m)>, email_message>) {
                result = send_email_now(*mail_, m);
            } else {
                result = send_sms_now(*sms_, m);
            }
            if (result.ok) {
                codes_sent().with({channel_of(m)}).inc();
                log::info("delivery.sent", {{"reference", m.reference},
                                            {"channel", channel_of(m)},
                                            {"destination", masked(m)},
                                            {"attempts", result.attempts}});
            } else {
                delivery_failures().with({channel_of(m), "failed"}).inc();
                log::warning("delivery.failed", {{"reference", m.reference},
                                                 {"channel", channel_of(m)},
                                                 {"destination", masked(m)},
                                                 {"attempts", result.attempts},
                                                 {"error", result.error}});
            }
        },
        j.message);
}

}  // namespace pwresetd::factors
