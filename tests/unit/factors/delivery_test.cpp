// The parts of factors/delivery.cpp that need no server: address and header checks, the
// message and JSON bodies, refusals that must happen before any connection, and the
// courier's queue. tests/integration/delivery_test.cpp covers real SMTP and HTTPS.
#include "factors/delivery.hpp"

#include <openssl/evp.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/text.hpp"
#include "support/stderr_capture.hpp"

using namespace pwresetd;
using namespace pwresetd::factors;
using pwresetd::testing::stderr_capture;

namespace {

// Named so that a failed CHECK prints the name, not the code.
constexpr std::string_view code_text = "Din kod är 493817. Den gäller i 10 minuter.";

std::string base64_decode(std::string_view in) {
    std::string clean;
    for (const char c : in) {
        if (c != '\r' && c != '\n') {
            clean += c;
        }
    }
    std::vector<unsigned char> out(clean.size() / 4 * 3 + 3);
    const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(clean.data()),
                                  static_cast<int>(clean.size()));
    REQUIRE(n >= 0);
    std::size_t size = static_cast<std::size_t>(n);
    // EVP_DecodeBlock counts the padding as zero bytes.
    if (clean.size() >= 1 && clean.back() == '=') {
        --size;
    }
    if (clean.size() >= 2 && clean[clean.size() - 2] == '=') {
        --size;
    }
    return {reinterpret_cast<const char*>(out.data()), size};
}

// The text of RFC 2047 encoded words (=?UTF-8?B?...?=) separated by folding white space.
std::string decode_encoded_words(std::string_view value) {
    std::string out;
    std::size_t pos = 0;
    while ((pos = value.find("=?UTF-8?B?", pos)) != std::string_view::npos) {
        const std::size_t start = pos + 10;
        const std::size_t end = value.find("?=", start);
        REQUIRE(end != std::string_view::npos);
        out += base64_decode(value.substr(start, end - start));
        pos = end + 2;
    }
    return out;
}

email_message mail_to(std::string to, std::string subject = "Your code") {
    email_message m;
    m.to = std::move(to);
    m.subject = std::move(subject);
    m.body = secret(code_text);
    m.reference = "req-1";
    return m;
}

sms_message sms_to(std::string to) {
    sms_message m;
    m.to = std::move(to);
    m.text = secret(code_text);
    m.reference = "req-2";
    return m;
}

// TEST-NET-1 (RFC 5737): never routed. A refusal must come before any attempt, so these
// tests do not wait for a timeout; attempts == 0 shows nothing was tried.
mail_settings unroutable_mail() {
    mail_settings s;
    s.smtp_url = "smtp://192.0.2.1:25";
    s.from = "noreply@example.test";
    s.timeout_ms = 200;
    s.retries = 0;
    return s;
}

sms_settings unroutable_sms() {
    sms_settings s;
    s.webhook_url = "https://192.0.2.1/sms";
    s.timeout_ms = 200;
    s.retries = 0;
    return s;
}

}  // namespace

TEST_CASE("email_address_problem accepts plain addresses only", "[delivery]") {
    for (const std::string_view good : {"alice@example.test", "a.b+tag@sub.example.test", "x@y",
                                        "o'brien@example.test", "first-last_1@ex-ample.test"}) {
        INFO(good);
        CHECK(email_address_problem(good).empty());
    }
    using namespace std::string_literals;
    for (const std::string& bad : {
             ""s,
             "alice"s,
             "alice@"s,
             "@example.test"s,
             "a@b@example.test"s,
             "alice@example.test\r\nBcc: eve@evil.test"s,
             "alice@example.test\n"s,
             "alice\0@example.test"s,
             "alice @example.test"s,
             "alice@example.test "s,
             "<alice@example.test>"s,
             "alice@example.test>"s,
             "Alice <alice@example.test>"s,
             "alice@example.test,eve@evil.test"s,
             "\"alice\"@example.test"s,
             "alice@[127.0.0.1]"s,
             "alice@exa_mple.test"s,
             "alice@.example.test"s,
             "alice@example.test."s,
             ".alice@example.test"s,
             "al..ice@example.test"s,
             "ålice@example.test"s,
             std::string(65, 'a') + "@example.test",
             "a@" + std::string(253, 'b'),
         }) {
        INFO(bad);
        CHECK_FALSE(email_address_problem(bad).empty());
    }
}

TEST_CASE("subjects are plain when short ASCII, else RFC 2047 encoded words", "[delivery]") {
    CHECK(detail::encode_subject("Your code") == "Your code");
    CHECK(detail::encode_subject("") == "");
    CHECK(detail::encode_subject(std::string(69, 'x')) == std::string(69, 'x'));

    const std::string swedish = "Återställ ditt lösenord – åäö ÅÄÖ";
    const std::string encoded = detail::encode_subject(swedish);
    CHECK(encoded.rfind("=?UTF-8?B?", 0) == 0);
    CHECK(decode_encoded_words(encoded) == swedish);

    // A subject that looks like an encoded word is encoded, so it reads back as typed.
    const std::string tricky = "=?UTF-8?B?SGk=?= hi";
    CHECK(decode_encoded_words(detail::encode_subject(tricky)) == tricky);

    // Long: several words, each at most 75 characters, none splitting a character.
    std::string long_subject;
    for (int i = 0; i < 40; ++i) {
        long_subject += "ö€";
    }
    const std::string folded = detail::encode_subject(long_subject);
    CHECK(decode_encoded_words(folded) == long_subject);
    std::size_t words = 0;
    std::size_t start = 0;
    for (;;) {
        const std::size_t end = folded.find("\r\n ", start);
        const std::string word = folded.substr(start, end - start);
        CHECK(word.size() <= 75);
        const std::string text = decode_encoded_words(word);
        // Every word alone is whole UTF-8.
        CHECK(pwresetd::text::is_valid_utf8(text));
        ++words;
        if (end == std::string::npos) {
            break;
        }
        start = end + 3;
    }
    CHECK(words > 2);
    CHECK(folded.find('\n') == folded.find("\r\n") + 1);
}

TEST_CASE("mail_date writes RFC 5322 dates in UTC", "[delivery]") {
    CHECK(detail::mail_date(0) == "Thu, 01 Jan 1970 00:00:00 +0000");
    CHECK(detail::mail_date(1741079100) == "Tue, 04 Mar 2025 09:05:00 +0000");
    CHECK(detail::mail_date(951782400) == "Tue, 29 Feb 2000 00:00:00 +0000");
}

TEST_CASE("build_mail writes the headers and a base64 body in CRLF lines", "[delivery]") {
    email_message m = mail_to("alice@example.test", "Återställ lösenord");
    const std::string body = "Hej Åsa!\nDin kod är 493817.\r\nHälsningar\n" + std::string(200, 'x');
    m.body = secret(body);
    const secret built = detail::build_mail(
        "noreply@example.test", m, "Tue, 04 Mar 2025 09:05:00 +0000", "<0011aabb@example.test>");
    const std::string mail(built.view());

    const auto split = mail.find("\r\n\r\n");
    REQUIRE(split != std::string::npos);
    const std::string head = mail.substr(0, split + 2);
    const std::string encoded = mail.substr(split + 4);
    CHECK(head ==
          "Date: Tue, 04 Mar 2025 09:05:00 +0000\r\n"
          "From: noreply@example.test\r\n"
          "To: alice@example.test\r\n"
          "Subject: " +
              detail::encode_subject("Återställ lösenord") +
              "\r\n"
              "Message-ID: <0011aabb@example.test>\r\n"
              "MIME-Version: 1.0\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n"
              "Content-Transfer-Encoding: base64\r\n"
              "Auto-Submitted: auto-generated\r\n");

    // Every line ends in CRLF, none is longer than 76 characters, and none is bare LF.
    for (std::size_t i = 0; i < mail.size(); ++i) {
        if (mail[i] == '\n') {
            REQUIRE(i > 0);
            CHECK(mail[i - 1] == '\r');
        }
    }
    CHECK(mail.substr(mail.size() - 2) == "\r\n");
    std::istringstream lines(encoded);
    for (std::string line; std::getline(lines, line);) {
        CHECK(line.size() <= 77);  // 76 + the '\r' getline leaves
    }
    // The code is not in the message in clear, and the body reads back in canonical form.
    CHECK(mail.find("493817") == std::string::npos);
    CHECK(base64_decode(encoded) ==
          "Hej Åsa!\r\nDin kod är 493817.\r\nHälsningar\r\n" + std::string(200, 'x'));
}

TEST_CASE("send_email_now refuses unsafe input before any connection", "[delivery]") {
    const mail_settings settings = unroutable_mail();
    for (const auto& [to, subject] : std::vector<std::pair<std::string, std::string>>{
             {"alice@example.test\r\nBcc: eve@evil.test", "Your code"},
             {"alice@example.test>\r\nRCPT TO:<eve@evil.test", "Your code"},
             {"a@b@example.test", "Your code"},
             {"alice@example.test", "Your code\r\nBcc: eve@evil.test"},
             {"alice@example.test", "Your code\nX-Evil: 1"},
             {"alice@example.test", std::string("Your code\0", 10)},
             {"alice@example.test", "bad UTF-8 \xC3("},
         }) {
        INFO(to << " / " << subject);
        const delivery_result r = send_email_now(settings, mail_to(to, subject));
        CHECK_FALSE(r.ok);
        CHECK(r.attempts == 0);
        CHECK_FALSE(r.error.empty());
        CHECK(r.error.find("493817") == std::string::npos);
    }

    mail_settings bad_from = unroutable_mail();
    bad_from.from = "noreply@example.test\r\nBcc: eve@evil.test";
    CHECK(send_email_now(bad_from, mail_to("alice@example.test")).attempts == 0);

    for (const std::string_view url :
         {"http://192.0.2.1/", "file:///etc/passwd", "", "smtpx://192.0.2.1", "192.0.2.1:25"}) {
        mail_settings s = unroutable_mail();
        s.smtp_url = url;
        const delivery_result r = send_email_now(s, mail_to("alice@example.test"));
        CHECK_FALSE(r.ok);
        CHECK(r.attempts == 0);
        CHECK(r.error.find("smtp://") != std::string::npos);
    }
}

TEST_CASE("send_sms_now refuses a webhook that is not https, before any connection", "[delivery]") {
    for (const std::string_view url : {"http://192.0.2.1/sms", "ftp://192.0.2.1/", "",
                                       "httpsx://192.0.2.1/", "//192.0.2.1/sms"}) {
        sms_settings s = unroutable_sms();
        s.webhook_url = url;
        const delivery_result r = send_sms_now(s, sms_to("+46701234567"));
        CHECK_FALSE(r.ok);
        CHECK(r.attempts == 0);
        CHECK(r.error.find("https://") != std::string::npos);
    }
    // A token or number that would break the request is refused too.
    sms_settings s = unroutable_sms();
    s.bearer_token = secret(std::string_view("tok\r\nX-Evil: 1"));
    CHECK(send_sms_now(s, sms_to("+46701234567")).attempts == 0);
    CHECK(send_sms_now(unroutable_sms(), sms_to("+4670\n1234567")).attempts == 0);
    CHECK(send_sms_now(unroutable_sms(), sms_to("")).attempts == 0);
}

TEST_CASE("sms_json is valid JSON that reads back exactly", "[delivery]") {
    sms_message m = sms_to("+46 70-123 45 67");
    const std::string text = "Kod: 493817 \"quoted\" back\\slash\nny rad\ttab \x01 åäö €";
    m.text = secret(text);
    const secret json = detail::sms_json(m);
    const boost::json::value v = boost::json::parse(json.view());
    REQUIRE(v.is_object());
    CHECK(v.as_object().size() == 2);
    CHECK(v.at("to").as_string() == "+46 70-123 45 67");
    CHECK(v.at("text").as_string() == text);
}

TEST_CASE("log masks keep one letter of each side of an email and 2 digits of a number",
          "[delivery]") {
    CHECK(detail::log_mask_email("alice@example.test") == "a***@e***");
    CHECK(detail::log_mask_email("nonsense") == "***");
    CHECK(detail::log_mask_email("") == "***");
    CHECK(detail::log_mask_phone("+46 70 123 45 67") == "***67");
    CHECK(detail::log_mask_phone("7") == "***");
}

TEST_CASE("the courier refuses disabled channels, a full queue and work after stop", "[delivery]") {
    SECTION("disabled channels") {
        courier c(std::nullopt, std::nullopt, 1, 10);
        CHECK_FALSE(c.send_email(mail_to("alice@example.test")));
        CHECK_FALSE(c.send_sms(sms_to("+46701234567")));
    }
    SECTION("a bounded queue, dropped (and logged without the text) at stop") {
        stderr_capture capture;
        {
            // No workers: nothing leaves the queue, so the bound is exact.
            courier c(unroutable_mail(), unroutable_sms(), 0, 2);
            CHECK(c.send_email(mail_to("alice@example.test")));
            CHECK(c.send_sms(sms_to("+46701234567")));
            CHECK_FALSE(c.send_email(mail_to("bob@example.test")));
            CHECK_FALSE(c.send_sms(sms_to("+46701234599")));
            c.stop(0);
            CHECK_FALSE(c.send_email(mail_to("alice@example.test")));
            CHECK_FALSE(c.send_sms(sms_to("+46701234567")));
            c.stop(0);  // idempotent
        }
        const std::string log = capture.text();
        CHECK(log.find("event=delivery.dropped reference=req-1 channel=email "
                       "destination=b***@e*** reason=queue_full") != std::string::npos);
        CHECK(log.find("event=delivery.dropped reference=req-2 channel=sms "
                       "destination=***99 reason=queue_full") != std::string::npos);
        CHECK(log.find("destination=a***@e*** reason=stopping") != std::string::npos);
        CHECK(log.find("destination=***67 reason=stopping") != std::string::npos);
        CHECK(log.find("493817") == std::string::npos);
        CHECK(log.find("alice") == std::string::npos);
    }
    SECTION("stop then destroy") {
        courier c(unroutable_mail(), std::nullopt, 2, 10);
        c.stop(0);
        CHECK_FALSE(c.send_email(mail_to("alice@example.test")));
    }
}
