// listen:, tls: and metrics_listen: (with metrics_client_ca).
#include <arpa/inet.h>
#include <sys/un.h>

#include <algorithm>
#include <charconv>

#include "daemon/config/sections.hpp"

namespace pwresetd::daemon::config_detail {

namespace {

namespace fs = std::filesystem;

constexpr auto tls_keys = std::to_array<key_spec>({"certificate", "private_key", "client_ca"});

std::optional<std::string> check_host(std::string_view host) {
    const std::string quoted = "'" + std::string(host) + "'";
    if (host.empty()) {
        return "needs a host: https://HOST:PORT";
    }
    if (host.find_first_not_of("0123456789.") == std::string_view::npos) {
        in_addr address{};
        if (::inet_pton(AF_INET, std::string(host).c_str(), &address) != 1) {
            return quoted + " is not a valid IPv4 address";
        }
        return std::nullopt;
    }
    // RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
    constexpr std::size_t max_name = 253;
    constexpr std::size_t max_label = 63;
    bool valid = host.size() <= max_name;
    std::size_t start = 0;
    while (valid && start <= host.size()) {
        const auto dot = std::min(host.find('.', start), host.size());
        const std::string_view label = host.substr(start, dot - start);
        valid = !label.empty() && label.size() <= max_label && label.front() != '-' &&
                label.back() != '-' &&
                label.find_first_not_of(
                    "abcdefghijklmnopqrstuvwxyz"
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == std::string_view::npos;
        start = dot + 1;
    }
    if (!valid) {
        return quoted + " is not a valid host name or IP address";
    }
    return std::nullopt;
}

// HOST:PORT or [IPv6]:PORT after "scheme://"; why not, or nullopt with host and port set.
std::optional<std::string> parse_host_port(std::string_view rest, std::string_view scheme,
                                           std::string& host_out, std::uint16_t& port_out) {
    const std::string form = std::string(scheme) + "://";
    std::string_view host;
    std::string_view port;
    if (rest.starts_with('[')) {
        const auto close = rest.find(']');
        if (close == std::string_view::npos) {
            return "'[' without ']' in an IPv6 address";
        }
        host = rest.substr(1, close - 1);
        const std::string_view after = rest.substr(close + 1);
        if (!after.starts_with(':')) {
            return "needs a port: " + form + "[ADDRESS]:PORT";
        }
        port = after.substr(1);
        in6_addr address{};
        if (::inet_pton(AF_INET6, std::string(host).c_str(), &address) != 1) {
            return "'" + std::string(host) + "' is not a valid IPv6 address";
        }
    } else {
        const auto colon = rest.rfind(':');
        if (colon == std::string_view::npos) {
            return "needs a port: " + form + "HOST:PORT";
        }
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            return "an IPv6 address needs brackets: " + form + "[ADDRESS]:PORT";
        }
        if (auto why = check_host(host)) {
            return why;
        }
    }
    unsigned value = 0;
    const auto [stop, err] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || err != std::errc() || stop != port.data() + port.size() || value < 1 ||
        value > 65535) {
        return "port must be a number in 1..65535, got '" + std::string(port) + "'";
    }
    host_out = host;
    port_out = static_cast<std::uint16_t>(value);
    return std::nullopt;
}

std::optional<listen_endpoint> parse_endpoint(const config_reader& in, const field& f,
                                              const std::string& text) {
    constexpr std::string_view unix_prefix = "unix:";
    constexpr std::string_view https_prefix = "https://";
    listen_endpoint e;
    e.text = text;
    const auto fail = [&](std::string_view message) {
        in.r.error(f.value_mark(), f.path, message);
        return std::nullopt;
    };
    if (text.starts_with(unix_prefix)) {
        const std::string socket = text.substr(unix_prefix.size());
        if (socket.empty()) {
            return fail("expected unix:/PATH");
        }

        return fail("unix socket listeners are not supported by this version yet");
        e.type = listen_endpoint::kind::unix_socket;
        e.socket_path = in.absolute(socket);
        constexpr std::size_t max_socket_path = sizeof(sockaddr_un::sun_path) - 1;
        if (e.socket_path.string().size() > max_socket_path) {
            return fail("socket path is longer than " + std::to_string(max_socket_path) + " bytes");
        }
        return e;
    }
    if (!text.starts_with(https_prefix)) {
        return fail("expected https://HOST:PORT or unix:/PATH, got '" + text + "'");
    }
    if (const auto why = parse_host_port(std::string_view(text).substr(https_prefix.size()),
                                         "https", e.host, e.port)) {
        return fail(*why);
    }
    return e;
}

bool is_loopback(const std::string& host) {
    in_addr v4{};
    if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
        return (ntohl(v4.s_addr) >> 24U) == 127U;  // 127.0.0.0/8
    }
    in6_addr v6{};
    return ::inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

}  // namespace

void read_listen(const config_reader& in, config& cfg) {
    const auto items = require_nonempty_list(in.r, in.top, "listen", "listener");
    if (!items) {
        return;
    }
    for (const auto& item : *items) {
        const auto text = as_string(in.r, item);
        if (!text) {
            continue;
        }
        const bool duplicate = std::any_of(cfg.listen.begin(), cfg.listen.end(),
                                           [&](const auto& e) { return e.text == *text; });
        if (duplicate) {
            in.r.error(item.value_mark(), item.path, "duplicate listener " + *text);
        } else if (auto endpoint = parse_endpoint(in, item, *text)) {
            cfg.listen.push_back(std::move(*endpoint));
        }
    }
}

void read_tls(const config_reader& in, config& cfg) {
    const bool needed = cfg.listen.empty() ||
                        std::any_of(cfg.listen.begin(), cfg.listen.end(),
                                    [](auto& e) { return e.type == listen_endpoint::kind::https; });
    if (!in.top.get("tls")) {
        if (needed) {
            in.r.error(in.top.mark(), in.top.path(),
                       "missing required key 'tls' (https listeners need a certificate "
                       "and a private key)");
        }
        return;
    }
    const auto m = in.section("tls", tls_keys);
    if (!m) {
        return;
    }
    const std::size_t errors_before = in.r.error_count();
    if (const auto f = m->require(in.r, "certificate")) {
        cfg.tls.certificate = in.read_certificates_file(*f).value_or(fs::path());
    }
    const auto key = m->require(in.r, "private_key");
    if (key) {
        cfg.tls.private_key = in.read_private_key_file(*key).value_or(fs::path());
    }
    // Only when both files were good: a mismatch on top of a broken file says nothing new.
    if (key && in.r.error_count() == errors_before && !cfg.tls.certificate.empty() &&
        !cfg.tls.private_key.empty()) {
        in.check_key_pair(cfg.tls.certificate, *key, cfg.tls.private_key);
    }
    if (const auto f = m->get("client_ca")) {
        cfg.tls.client_ca = in.read_certificates_file(*f);
    }
}

// metrics_listen and metrics_client_ca (extension). Plain http exposes the metrics to
// whoever can connect, so only on loopback; https must verify the scraper's certificate:
// the metrics name every route's traffic and the directory's health, which an outsider
// should not read.
void read_metrics(const config_reader& in, config& cfg) {
    const auto listen_field = in.top.get("metrics_listen");
    const auto ca_field = in.top.get("metrics_client_ca");
    if (!listen_field) {
        if (ca_field) {
            in.r.error(ca_field->value_mark(), ca_field->path,
                       "only used with an https:// metrics_listen");
        }
        return;
    }
    const auto text = as_string(in.r, *listen_field);
    if (!text) {
        return;
    }
    const auto fail = [&](std::string_view message) {
        in.r.error(listen_field->value_mark(), listen_field->path, message);
    };
    constexpr std::string_view http_prefix = "http://";
    constexpr std::string_view https_prefix = "https://";
    metrics_settings m;
    m.text = *text;
    std::string_view rest;
    if (text->starts_with(http_prefix)) {
        rest = std::string_view(*text).substr(http_prefix.size());
    } else if (text->starts_with(https_prefix)) {
        m.tls = true;
        rest = std::string_view(*text).substr(https_prefix.size());
    } else {
        return fail("expected http://127.0.0.1:PORT or https://HOST:PORT, got '" + *text + "'");
    }
    if (const auto why = parse_host_port(rest, m.tls ? "https" : "http", m.host, m.port)) {
        return fail(*why);
    }
    const bool duplicate = std::any_of(cfg.listen.begin(), cfg.listen.end(), [&](const auto& e) {
        return e.type == listen_endpoint::kind::https && e.host == m.host && e.port == m.port;
    });
    if (duplicate) {
        return fail("the same address and port as a listen: entry");
    }
    if (!m.tls) {
        if (!is_loopback(m.host)) {
            return fail(
                "plain http:// is allowed only on a loopback address (127.0.0.1, [::1]), "
                "got '" +
                m.host + "'; use https:// with metrics_client_ca");
        }
        if (ca_field) {
            in.r.error(ca_field->value_mark(), ca_field->path,
                       "only used with an https:// metrics_listen");
        }
    } else if (!ca_field) {
        return fail(
            "https:// needs client certificates: set metrics_client_ca to the CA that "
            "issued the scrapers' certificates");
    } else {
        m.client_ca = in.read_readable_file(*ca_field);
    }
    cfg.metrics = std::move(m);
}

}  // namespace pwresetd::daemon::config_detail
