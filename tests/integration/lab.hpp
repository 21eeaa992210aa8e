#pragma once
// What the tests against a real directory share (openldap_test.cpp, samba_test.cpp): file and
// shell helpers; lab_process, which starts a lab script (tests/lab/openldap.sh, samba.sh) in
// a temporary folder and always stops it and removes the folder, also when the test binary
// dies (a reaper waits for it); and lab_backend, the directory contract's fixture on a lab.
// Passwords go through 0600 files, never a command line.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ldap/directory.hpp"
#include "unit/ldap/directory_contract.hpp"

namespace pwresetd::testing {

namespace fs = std::filesystem;

inline std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

inline void write_private_file(const fs::path& path, std::string_view content) {
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << content;
    }
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
}

inline std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (const char c : s) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    return out + "'";
}

inline int run(const std::string& command) {
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A loopback port with nothing listening (bound, never listened on, then closed).
inline int closed_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return 9;  // discard: nothing listens there either
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

inline std::string dead_uri() {
    return "ldaps://127.0.0.1:" + std::to_string(closed_port());
}

inline std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
        ++n;
    }
    return n;
}

class lab_process {
public:
    // script: a file in tests/lab/ (found through PWRESETD_SOURCE_DIR, else the source
    // tree this binary was built from); hint: added to the error when the start fails.
    lab_process(const std::string& script, const std::string& folder_prefix,
                const std::string& hint) {
        const char* source = std::getenv("PWRESETD_SOURCE_DIR");
        script_ = (fs::path(source != nullptr ? source : PWRESETD_DEFAULT_SOURCE_DIR) / "tests" /
                   "lab" / script)
                      .string();
        std::string templ = (fs::temp_directory_path() / (folder_prefix + "-XXXXXX")).string();
        if (::mkdtemp(templ.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        dir_ = templ;
        run("nohup sh -c 'while kill -0 " + std::to_string(::getpid()) +
            " 2>/dev/null; do sleep 0.5; done; \"$0\" stop \"$1\"; rm -rf \"$1\"' " +
            shell_quote(script_) + " " + shell_quote(dir_.string()) + " >/dev/null 2>&1 &");
        const auto start = std::chrono::steady_clock::now();
        if (run(shell_quote(script_) + " start " + shell_quote(dir_.string()) + " >&2") != 0) {
            stop();
            throw std::runtime_error("tests/lab/" + script + " start failed" + hint);
        }
        start_seconds_ =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::istringstream lines(read_file(dir_ / "lab.env"));
        for (std::string line; std::getline(lines, line);) {
            const auto eq = line.find('=');
            if (eq != std::string::npos) {
                env_[line.substr(0, eq)] = line.substr(eq + 1);
            }
        }
        // Hostile environment for the rest of the run: libldap must ignore it (LDAPNOINIT,
        // explicit per-handle TLS options), or the wrong-CA tests would pass TLS. Child
        // ldap-utils run with "env -u LDAPNOINIT" and settings of their own.
        ::setenv("LDAPTLS_REQCERT", "never", 1);
        ::setenv("LDAPTLS_CACERT", env_.at("LAB_CA").c_str(), 1);
    }
    ~lab_process() { stop(); }
    lab_process(const lab_process&) = delete;
    lab_process& operator=(const lab_process&) = delete;

    const std::string& operator[](const std::string& key) const { return env_.at(key); }
    [[nodiscard]] const fs::path& dir() const { return dir_; }
    [[nodiscard]] double start_seconds() const { return start_seconds_; }

    // An ldap-utils command line against the lab's LDAPS URI, verifying its CA.
    [[nodiscard]] std::string ldap_tool(const std::string& tool) const {
        return "env -u LDAPNOINIT LDAPTLS_REQCERT=demand LDAPTLS_CACERT=" +
               shell_quote(env_.at("LAB_CA")) + " " + tool + " -x -o nettimeout=5 -H " +
               shell_quote(env_.at("LAB_LDAPS_URI"));
    }

    // Whether `tool ARGS` succeeds bound as dn with the password: an independent check.
    [[nodiscard]] bool binds_with(const std::string& tool, const std::string& dn,
                                  const std::string& password, const std::string& args) const {
        const fs::path file = dir_ / "check-password";
        write_private_file(file, password);
        const int rc = run(ldap_tool(tool) + " -D " + shell_quote(dn) + " -y " +
                           shell_quote(file.string()) + " " + args + " >/dev/null 2>&1");
        fs::remove(file);
        return rc == 0;
    }

    // The values of one attribute as the lab's administrator sees them ("attr: value"
    // lines).
    [[nodiscard]] std::string admin_read(const std::string& dn,
                                         const std::string& attribute) const {
        const fs::path out = dir_ / "admin-read.out";
        const int rc = run(ldap_tool("ldapsearch") + " -LLL -o ldif-wrap=no -D " +
                           shell_quote(env_.at("LAB_ADMIN_DN")) + " -y " +
                           shell_quote(env_.at("LAB_ADMIN_PASSWORD_FILE")) + " -s base -b " +
                           shell_quote(dn) + " '(objectClass=*)' " + shell_quote(attribute) +
                           " > " + shell_quote(out.string()) + " 2>/dev/null");
        if (rc != 0) {
            throw std::runtime_error("ldapsearch as the lab administrator failed");
        }
        std::string text = read_file(out);
        fs::remove(out);
        const auto first_line_end = text.find('\n');  // drop the "dn:" line
        return first_line_end == std::string::npos ? std::string()
                                                   : text.substr(first_line_end + 1);
    }

    // Applies LDIF change records (with changetype lines) as the lab's administrator. The
    // LDIF may hold passwords: it goes through a 0600 file.
    void admin_apply(const std::string& ldif) const {
        const fs::path file = dir_ / "admin-apply.ldif";
        write_private_file(file, ldif);
        const int rc = run(ldap_tool("ldapmodify") + " -D " + shell_quote(env_.at("LAB_ADMIN_DN")) +
                           " -y " + shell_quote(env_.at("LAB_ADMIN_PASSWORD_FILE")) + " -f " +
                           shell_quote(file.string()) + " >/dev/null 2>&1");
        fs::remove(file);
        if (rc != 0) {
            throw std::runtime_error("ldapmodify as the lab administrator failed");
        }
    }

private:
    void stop() noexcept {
        if (!script_.empty()) {
            run(shell_quote(script_) + " stop " + shell_quote(dir_.string()) + " >&2");
        }
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    fs::path dir_;
    std::string script_;
    std::map<std::string, std::string> env_;
    double start_seconds_ = 0;
};

// The directory contract's fixture (tests/unit/ldap/directory_contract.hpp) on a lab. Lab
// is a lab_process with
//   static Lab& get();    // the one lab of this test binary, started on first use
//   bool binds(const std::string& dn, const std::string& password) const;
//   // A new user with the contract's attributes (lab_backend::add_user):
//   void add_contract_user(const std::string& name, const std::string& password) const;
// and Settings makes the directory under test on it. Both lab scripts create dave
// (disabled) and erin (in the protected group) with these fixed passwords.
template <class Lab, ldap::directory_settings (*Settings)()>
struct lab_backend {
    lab_backend() : l(Lab::get()) {}
    std::unique_ptr<ldap::directory> open() { return ldap::make_directory(settings()); }
    std::unique_ptr<ldap::directory> open_down() {
        ldap::directory_settings s = settings();
        s.uris = {dead_uri()};
        s.timeout_ms = 1000;
        return ldap::make_directory(std::move(s));
    }
    std::string add_user(const std::string& password) {
        static int added = 0;
        std::string name = "contract-" + std::to_string(++added);
        l.add_contract_user(name, password);
        return name;
    }
    bool binds(const ldap::directory_user& user, const std::string& password) {
        return l.binds(user.dn, password);
    }
    static ldap::contract::known_user disabled_user() { return {"dave", "Dave-Old-Passw0rd!"}; }
    static ldap::contract::known_user protected_user() { return {"erin", "Erin-Old-Passw0rd!"}; }
    std::vector<std::string> secrets() {
        return {read_file(l["LAB_SVC_PASSWORD_FILE"]), read_file(l["LAB_ADMIN_PASSWORD_FILE"])};
    }
    [[nodiscard]] fs::path scratch() const { return l.dir(); }
    static ldap::directory_settings settings() { return Settings(); }
    std::string plain_uri() { return l["LAB_LDAP_URI"]; }

    const Lab& l;
};

}  // namespace pwresetd::testing
