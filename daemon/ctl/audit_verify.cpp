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
#include <stdexcept>
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
constexpr int exit_bridged = 3;  // only lines the daemon bridged: the chain is otherwise intact

// A not-a-regular-file refusal, said as such (not as the EINVAL behind it).
struct not_regular : std::runtime_error {
    not_regular() : std::runtime_error("not a regular file") {}
};

// A whole file, mapped read-only: audit files can be large and are read once, in order.
class mapped_file {
public:
    explicit mapped_file(const std::string& path) {
        // O_NONBLOCK: opening a FIFO for reading would wait for a writer; it is refused below.
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
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
            throw not_regular();
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
           "  copies first. Exit status: 0 intact, 1 a problem found, 2 usage or unreadable,\n"
           "  3 only lines the daemon bridged (torn or unchained), the chain intact around them.\n";
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
        } catch (const std::exception& e) {
            const auto* sys = dynamic_cast<const std::system_error*>(&e);
            const std::string why = sys != nullptr ? sys->code().message() : e.what();
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
        const auto& verdict = *report.problem;
        const auto located = [&](const audit_chain::chain_problem& p) {
            return files[p.file].name + (p.line > 0 ? ":" + std::to_string(p.line) : "");
        };
        const int code = report.only_bridged() ? exit_bridged : exit_problem;
        if (json) {
            boost::json::array all;
            for (const auto& p : report.problems) {
                all.push_back(boost::json::object{{"file", files[p.file].name},
                                                  {"line", p.line},
                                                  {"problem", audit_chain::to_string(p.kind)},
                                                  {"bridged", p.bridged},
                                                  {"detail", p.detail}});
            }
            boost::json::object out{{"ok", false},
                                    {"file", files[verdict.file].name},
                                    {"line", verdict.line},
                                    {"problem", audit_chain::to_string(verdict.kind)},
                                    {"bridged", verdict.bridged},
                                    {"detail", verdict.detail},
                                    {"only_bridged", report.only_bridged()},
                                    {"problem_count", report.problem_count},
                                    {"problems", std::move(all)},
                                    {"lines_checked", report.total_lines}};
            std::cout << boost::json::serialize(out) << '\n';
            return code;
        }
        // The verdict first, then every other problem in trail order, then a summary.
        const auto print = [&](const audit_chain::chain_problem& p) {
            std::cout << located(p) << ": " << audit_chain::to_string(p.kind) << ": " << p.detail
                      << '\n';
        };
        print(verdict);
        for (const auto& p : report.problems) {
            if (p.file != verdict.file || p.line != verdict.line || p.kind != verdict.kind) {
                print(p);
            }
        }
        if (report.problem_count > report.problems.size()) {
            std::cout << "... and " << report.problem_count - report.problems.size()
                      << " more problems\n";
        }
        const std::string checked = std::to_string(report.total_lines) + " chained lines in " +
                                    std::to_string(files.size()) +
                                    (files.size() == 1 ? " file" : " files");
        if (report.only_bridged()) {
            std::cout << "BRIDGED: " << report.problem_count
                      << (report.problem_count == 1 ? " line" : " lines")
                      << " the daemon bridged with a chain record, no other problem (" << checked
                      << ")\n";
        } else {
            std::cout << report.problem_count
                      << (report.problem_count == 1 ? " problem" : " problems");
            if (report.bridged_count > 0) {
                std::cout << " (" << report.bridged_count << " bridged)";
            }
            std::cout << "; " << checked << '\n';
        }
        return code;
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
