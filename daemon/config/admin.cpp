// admin_socket and admin_group (extension): pwresetctl's Unix socket.
#include <grp.h>
#include <sys/un.h>

#include <vector>

#include "daemon/config/document.hpp"
#include "daemon/config/sections.hpp"

namespace pwresetd::daemon {
namespace config_detail {

namespace {

// sockaddr_un::sun_path holds 108 bytes with the terminating NUL.
constexpr std::size_t max_socket_path = sizeof(sockaddr_un::sun_path) - 1;

bool group_exists(const std::string& name) {
    group entry{};
    group* found = nullptr;
    std::vector<char> buffer(16384);
    return ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) == 0 &&
           found != nullptr;
}

}  // namespace

void read_admin(const config_reader& in, config& cfg) {
    const auto socket = in.top.get("admin_socket");
    if (socket) {
        if (auto path = in.read_path(*socket)) {
            if (path->string().size() > max_socket_path) {
                in.r.error(socket->value_mark(), socket->path,
                           "a Unix socket path has at most " + std::to_string(max_socket_path) +
                               " bytes, got " + std::to_string(path->string().size()));
            } else {
                cfg.admin.socket = std::move(*path);
            }
        }
    }
    if (const auto g = in.top.get("admin_group")) {
        if (auto name = as_string(in.r, *g)) {
            if (!socket) {
                in.r.error(g->key_mark, g->path, "needs admin_socket");
            } else if (!group_exists(*name)) {
                in.r.error(g->value_mark(), g->path, "no group named '" + *name + "'");
            } else {
                cfg.admin.group = std::move(*name);
            }
        }
    }
}

}  // namespace config_detail

std::optional<std::filesystem::path> admin_socket_of(const std::filesystem::path& file) {
    config_detail::report r(file.string());
    const YAML::Node root = config_detail::read_document(file, r);
    std::optional<std::filesystem::path> out;
    if (root.IsMap()) {
        if (const YAML::Node value = root["admin_socket"]) {
            if (value.IsScalar() && !value.Scalar().empty()) {
                const std::filesystem::path p(value.Scalar());
                out = (p.is_absolute() ? p : std::filesystem::absolute(file).parent_path() / p)
                          .lexically_normal();
            } else {
                r.error(value.Mark(), "admin_socket",
                        "expected a string, got " + config_detail::describe(value));
            }
        }
    }
    if (r.has_errors()) {
        throw config_error(r.take_errors());
    }
    return out;
}

}  // namespace pwresetd::daemon
