#pragma once
// Delivery of one-time codes: email through SMTP (libcurl) and SMS through an HTTPS
// webhook that receives a JSON body {"to": ..., "text": ...}. <curl/curl.h> appears only
// in factors/delivery.cpp.
//
// The courier is asynchronous: send_email()/send_sms() only queue the message and return
// at once, so an HTTP reply never waits for (and its timing never depends on) a mail server
// or an SMS gateway. Worker threads deliver; each outcome is logged with the message's
// `reference` (the request id) and a masked destination, never the text (it holds a code).
//
// TLS is always verified: smtps:// is TLS from the first byte; smtp:// upgrades with
// STARTTLS and, by default (require_tls), refuses to send when the server does not offer
// it; with require_tls: false it goes on in clear (warned about at start);
// the webhook must be https://. `ca_file` replaces the system CA store when set.
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "common/secret.hpp"

namespace pwresetd::factors {

struct mail_settings {
    std::string smtp_url;     // smtp://host[:port] or smtps://host[:port]
    std::string from;         // envelope sender and From: header
    std::string ca_file;      // optional; absolute path
    bool require_tls = true;  // plain SMTP only with an explicit require_tls: false
    std::string username;     // optional SMTP AUTH
    secret password;
    int timeout_ms = 10000;  // connect + whole transfer, per attempt
    int retries = 2;         // extra attempts after a failure
};

struct sms_settings {
    std::string webhook_url;  // https://
    std::string ca_file;      // optional; absolute path
    secret bearer_token;      // optional: "Authorization: Bearer <token>"
    int timeout_ms = 5000;    // per attempt
    int retries = 2;          // extra attempts after a failure (5xx, timeout, refused)
};

struct email_message {
    std::string to;  // a plain address, as found in the directory
    std::string subject;
    secret body;  // UTF-8 text/plain; holds the code
    std::string reference;
};

struct sms_message {
    std::string to;  // as found in the directory
    secret text;     // holds the code
    std::string reference;
};

struct delivery_result {
    bool ok = false;
    int attempts = 0;
    std::string error;  // what went wrong, for the log: never the message text
};

// One synchronous delivery (with its retries); blocks for up to
// (retries + 1) * timeout_ms plus back-off (200 ms, 400 ms, ... at most 2 s). Used by the
// courier's threads and by tests. Unsafe input is refused with attempts == 0 and no
// connection. What another try cannot fix is not retried: a certificate error, missing
// STARTTLS, a refused login, an SMTP 5yz reply, an HTTP 4xx other than 429. With a
// username, smtp:// requires STARTTLS (credentials never go in clear).
delivery_result send_email_now(const mail_settings& settings, const email_message& message);
delivery_result send_sms_now(const sms_settings& settings, const sms_message& message);

// An address or number unsafe to hand to SMTP or to put in a header (CR, LF, NUL, "<>",
// more than one '@', ...): the reason, or empty when acceptable.
std::string email_address_problem(std::string_view address);

// The pieces of send_email_now()/send_sms_now(), exposed for unit tests.
namespace detail {

// The whole RFC 5322 message handed to SMTP: headers (Date, From, To, Subject, Message-ID,
// MIME-Version, Content-Type text/plain; charset=utf-8, Content-Transfer-Encoding base64,
// Auto-Submitted: auto-generated), a blank line, and the body in base64 lines of 76
// characters. Bare LF in the body becomes CRLF first (RFC 2045 canonical text). Every line
// ends in CRLF. The caller has checked the addresses and the subject.
secret build_mail(std::string_view from, const email_message& message, std::string_view date,
                  std::string_view message_id);
// The Subject: value: as is when it is short printable ASCII, else RFC 2047 encoded words
// (=?UTF-8?B?...?=, never splitting a UTF-8 sequence), folded onto continuation lines.
std::string encode_subject(std::string_view subject);
// "Tue, 04 Mar 2025 09:05:00 +0000" (RFC 5322 section 3.3, always UTC, no locale).
std::string mail_date(std::int64_t unix_seconds);
// {"to":"...","text":"..."} with JSON string escaping; the buffer is wiped on destruction.
secret sms_json(const sms_message& message);
// Destinations as the log shows them: "a***@e***" and "***67".
std::string log_mask_email(std::string_view address);
std::string log_mask_phone(std::string_view number);

}  // namespace detail

class courier {
public:
    // Disabled channels are nullopt. `workers` threads deliver; at most `max_queued`
    // messages wait (more are dropped and logged: a flood must not grow memory). With 0
    // workers nothing is delivered (tests use it to fill the queue).
    courier(std::optional<mail_settings> mail, std::optional<sms_settings> sms,
            std::size_t workers = 2, std::size_t max_queued = 1000);
    ~courier();  // stop()
    courier(const courier&) = delete;
    courier& operator=(const courier&) = delete;

    // Queue a message; false (and nothing queued) when the channel is disabled, the
    // queue is full, or the courier is stopping.
    bool send_email(email_message message);
    bool send_sms(sms_message message);

    // Stops accepting, lets the workers finish what is queued for up to `drain_ms`, then
    // drops the rest (logged) and joins the threads, which first finish the delivery they
    // are in (at most (retries + 1) * timeout_ms plus back-off). Idempotent.
    void stop(int drain_ms = 5000);

private:
    struct job {
        std::variant<email_message, sms_message> message;
    };
    void run();
    void deliver(const job& j) const;
    bool enqueue(job work);  // false when stopping or full

    std::optional<mail_settings> mail_;
    std::optional<sms_settings> sms_;
    std::size_t max_queued_;
    std::mutex mutex_;
    std::condition_variable wake_;  // a job was queued, or stopping
    std::condition_variable idle_;  // the queue became empty
    std::deque<job> queue_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace pwresetd::factors
