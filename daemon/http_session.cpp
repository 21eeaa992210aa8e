#include "daemon/http_session.hpp"

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/ip/address.hpp>

#include <memory>

namespace pwresetd::daemon {
namespace http = boost::beast::http;

namespace {

std::string_view trim_spaces(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
        v.remove_prefix(1);
    }
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
        v.remove_suffix(1);
    }
    return v;
}

}  // namespace

std::string header_block_problem(std::string_view block) {
    // RFC 9112 5.2: a server rejects obs-fold with 400 (Beast would join the lines).
    for (std::size_t i = 0; i + 1 < block.size(); ++i) {
        if (block[i] == '\n' && (block[i + 1] == ' ' || block[i + 1] == '\t')) {
            return "obsolete line folding is not accepted";
        }
    }
    return {};
}

std::string framing_problem(const http::request_parser<http::string_body>& parser) {
    const auto& req = parser.get();
    const auto te = req.count(http::field::transfer_encoding);
    const auto cl = req.count(http::field::content_length);
    if (te > 1) {
        return "only one Transfer-Encoding header is accepted";
    }
    if (cl > 1) {
        return "only one Content-Length header is accepted";
    }
    if (te == 1) {
        // RFC 9112 6.3: anything but a final "chunked" cannot be framed by a server, and
        // reading it any other way is how requests are smuggled past a proxy.
        if (cl == 1) {
            return "Content-Length and Transfer-Encoding together are refused";
        }
        if (text::ascii_lower(trim_spaces(req[http::field::transfer_encoding])) != "chunked") {
            return "only Transfer-Encoding: chunked is accepted";
        }
    }
    return {};
}

bool is_json_media_type(std::string_view content_type) {
    // "application/json" with optional parameters (charset=utf-8), case-insensitive.
    const auto semi = content_type.find(';');
    return text::ascii_lower(trim_spaces(content_type.substr(0, semi))) == "application/json";
}

bool peer_still_trusted(SSL* ssl, SSL_CTX* trust) {
    X509* leaf = SSL_get0_peer_certificate(ssl);
    if (leaf == nullptr) {
        return false;
    }
    const std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> check(
        X509_STORE_CTX_new(), &X509_STORE_CTX_free);
    // The chain the client sent (without the leaf, on a server) as untrusted helpers.
    if (!check || X509_STORE_CTX_init(check.get(), SSL_CTX_get_cert_store(trust), leaf,
                                      SSL_get_peer_cert_chain(ssl)) != 1) {
        ERR_clear_error();
        return false;
    }
    // The purpose and parameters a server's handshake applies to a client certificate.
    X509_STORE_CTX_set_default(check.get(), "ssl_client");
    X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(check.get()), SSL_CTX_get0_param(trust));
    const bool trusted = X509_verify_cert(check.get()) == 1;
    ERR_clear_error();
    return trusted;
}

std::string last_forwarded_for(std::string_view header) {
    const auto comma = header.rfind(',');
    std::string_view last =
        trim_spaces(comma == std::string_view::npos ? header : header.substr(comma + 1));
    if (last.empty() || last.size() > 64 || text::has_control_characters(last)) {
        return {};
    }
    // "[2001:db8::1]:443" and "192.0.2.1:443" name the address with a port.
    if (last.front() == '[') {
        const auto close = last.find(']');
        if (close == std::string_view::npos) {
            return {};
        }
        last = last.substr(1, close - 1);
    } else if (const auto colon = last.find(':');
               colon != std::string_view::npos &&
               last.find(':', colon + 1) == std::string_view::npos) {
        last = last.substr(0, colon);
    }
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(std::string(last), ec);
    if (ec) {
        return {};  // not an address: not trusted as one
    }
    return address.to_string();
}

}  // namespace pwresetd::daemon
