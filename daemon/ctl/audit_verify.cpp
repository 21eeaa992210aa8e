#include "daemon/ctl/audit_verify.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/audit_chain.hpp"

namespace pwresetd::ctl {
namespace {

constexpr int exit_ok = 0;
constexpr int exit_problem = 1;
constexpr int exit_usage = 2;

// A whole file, mapped read-only: audit files can be large and are read once, in order.
class mapped_file {
public:
    explicit mapped_file(const std::string& path) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            throw std::system_error(errno, std::generic_category());
        }
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            const int err = errno;
            ::close(fd);
            throw std::system_error(err, std::generic_category());
        }
        if (!S_ISREG(st.st_mode)) {
            ::close(fd);
            throw std::system_error(EINVAL, std::generic_category(), "not a regular file");
        }
        size_ = static_cast<std::size_t>(st.st_size);
        if (size_ > 0) {
            void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                const int err = errno;
                ::close(fd);
                throw std::system_error(err, std::generic_category());
            }
            map_ = p;
        }
        ::close(fd);
    }
    mapped_file(const mapped_file&) = delete;
    mapped_file& operator=(const mapped_file&) = delete;
    ~mapped_file() {
        if (map_ != nullptr) {
            ::munmap(map_, size_);
        }
    }
    [[nodiscard]] std::string_view bytes() const {
        return map_ == nullptr ? std::string_view()
                               : std::string_view(static_cast<const char*>(map_), size_);
    }

private:
    void* map_ = nullptr;
    std::size_t size_ = 0;
};

void usage(std::ostream& out) {
    out << "usage: pwresetctl audit verify [--json] FILE...\n"
           "  FILEs oldest first (audit.jsonl.2 audit.jsonl.1 audit.jsonl); decompress rotated\n"
           "  copies first. Exit status: 0 intact, 1 a problem found, 2 usage or unreadable.\n";
}

int fail_usage(std::string_view message) {
    std::cerr << "pwresetctl: audit verify: " << message << '\n';
    usage(std::cerr);
    return exit_usage;
}

}  // namespace

int audit_verify(std::span<char* const> args) {
    bool json = false;
    bool options_done = false;
    std::vector<std::string> names;
    for (const char* raw : args) {
        const std::string_view arg = raw;
        if (options_done || !arg.starts_with("-") || arg == "-") {
            names.emplace_back(arg);
        } else if (arg == "--") {
            options_done = true;
        } else if (arg == "--json") {
            json = true;
        } else if (arg == "-h" || arg == "--help") {
            usage(std::cout);
            return exit_ok;
        } else {
            return fail_usage("unknown option '" + std::string(arg) + "'");
        }
    }
    if (names.empty()) {
        return fail_usage("no FILE given");
    }

    std::vector<std::unique_ptr<mapped_file>> mapped;
    std::vector<audit_chain::audit_text> files;
    for (const auto& name : names) {
        try {
            mapped.push_back(std::make_unique<mapped_file>(name));
        } catch (const std::system_error& e) {
            const std::string why = e.code().message();
            if (json) {
                boost::json::object out{
                    {"ok", false}, {"error", "unreadable"}, {"file", name}, {"message", why}};
                std::cout << boost::json::serialize(out) << '\n';
            }
            std::cerr << "pwresetctl: audit verify: " << name << ": " << why << '\n';
            return exit_usage;
        }
        files.push_back({name, mapped.back()->bytes()});
    }

    const auto report = audit_chain::verify(files);
    if (report.problem) {
        const auto& p = *report.problem;
        const std::string& file = files[p.file].name;
        if (json) {
            boost::json::object out{
                {"ok", false},        {"file", file},
                {"line", p.line},     {"problem", audit_chain::to_string(p.kind)},
                {"detail", p.detail}, {"lines_checked", report.total_lines}};
            std::cout << boost::json::serialize(out) << '\n';
        } else {
            std::cout << file << ':' << p.line << ": " << audit_chain::to_string(p.kind) << ": "
                      << p.detail << '\n';
        }
        return exit_problem;
    }

    const bool begins = report.total_lines > 0 && report.first_prev == audit_chain::genesis_prev;
    if (json) {
        boost::json::array per_file;
        for (std::size_t i = 0; i < files.size(); ++i) {
            per_file.push_back(
                boost::json::object{{"file", files[i].name}, {"lines", report.lines[i]}});
        }
        boost::json::object out{{"ok", true},
                                {"lines", report.total_lines},
                                {"files", std::move(per_file)},
                                {"trail_begins", begins},
                                {"first_prev", report.first_prev},
                                {"last_seq", report.last.seq},
                                {"last_hash", report.total_lines > 0 ? report.last.hash : ""}};
        std::cout << boost::json::serialize(out) << '\n';
        return exit_ok;
    }
    std::cout << "OK: " << report.total_lines << (report.total_lines == 1 ? " line" : " lines")
              << " in " << files.size() << (files.size() == 1 ? " file" : " files")
              << ", chain intact\n";
    for (std::size_t i = 0; i < files.size(); ++i) {
        std::cout << "  " << files[i].name << ": " << report.lines[i] << " lines\n";
    }
    if (report.total_lines > 0) {
        std::cout << (begins ? "the trail begins here (prev is zeros)"
                             : "continues an earlier file not given (prev " +
                                   report.first_prev.substr(0, 16) + "...)")
                  << "\nlast line: seq " << report.last.seq << ", hash " << report.last.hash
                  << "\n";
    }
    return exit_ok;
}

}  // namespace pwresetd::ctl
