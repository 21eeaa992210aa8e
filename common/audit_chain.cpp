#include "common/audit_chain.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cerrno>
#include <system_error>

#include "common/crypto.hpp"

namespace pwresetd::audit_chain {
namespace {

bool is_lower_hex_digest(std::string_view s) {
    return s.size() == genesis_prev.size() && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

enum class shape { garbled, unchained, chained };

shape inspect(std::string_view line, chained_line& out) {
    // The daemon writes field values as Boost.JSON serializes them, which copies bytes that
    // are not UTF-8 (from a directory or a header) as they are; the hash is over the bytes.
    boost::json::parse_options options;
    options.allow_invalid_utf8 = true;
    boost::system::error_code ec;
    const boost::json::value v = boost::json::parse(line, ec, {}, options);
    if (ec || !v.is_object()) {
        return shape::garbled;
    }
    const auto& o = v.get_object();
    const auto* seq = o.if_contains("seq");
    const auto* prev = o.if_contains("prev");
    if (seq == nullptr || prev == nullptr || !prev->is_string() ||
        !is_lower_hex_digest(prev->get_string())) {
        return shape::unchained;
    }
    if (seq->is_uint64()) {
        out.seq = seq->get_uint64();
    } else if (seq->is_int64() && seq->get_int64() >= 0) {
        out.seq = static_cast<std::uint64_t>(seq->get_int64());
    } else {
        return shape::unchained;
    }
    out.prev = prev->get_string();
    const auto* event = o.if_contains("event");
    out.event = event != nullptr && event->is_string() ? std::string(event->get_string()) : "";
    const auto* reason = o.if_contains("reason");
    out.reason = out.event == chain_event && reason != nullptr && reason->is_string()
                     ? std::string(reason->get_string())
                     : "";
    return shape::chained;
}

// The seq and prev of a line cut short after them: the daemon writes every line as
// {"time":"...","seq":N,"prev":"<64 hex>",... so a torn write that reached past prev still
// says which line came before it. nullopt when the bytes end before that.
std::optional<chained_line> cut_line_link(std::string_view line) {
    constexpr std::string_view time_key = R"({"time":")";
    constexpr std::string_view seq_key = R"(","seq":)";
    constexpr std::string_view prev_key = R"(,"prev":")";
    if (!line.starts_with(time_key)) {
        return std::nullopt;
    }
    const std::size_t time_end = line.find('"', time_key.size());
    if (time_end == std::string_view::npos || line.substr(time_end).find(seq_key) != 0) {
        return std::nullopt;
    }
    std::size_t at = time_end + seq_key.size();
    chained_line out;
    const std::size_t digits_begin = at;
    while (at < line.size() && line[at] >= '0' && line[at] <= '9' && at - digits_begin < 19) {
        out.seq = out.seq * 10 + static_cast<std::uint64_t>(line[at] - '0');
        ++at;
    }
    if (at == digits_begin || line.substr(at).find(prev_key) != 0) {
        return std::nullopt;
    }
    at += prev_key.size();
    const std::string_view prev = line.substr(at, genesis_prev.size());
    if (!is_lower_hex_digest(prev) || line.substr(at + prev.size(), 1) != "\"") {
        return std::nullopt;
    }
    out.prev = prev;
    return out;
}

// Calls fn(text, number, complete) for every line of `bytes` until fn returns false; the
// last line is incomplete when `bytes` does not end with "\n".
template <class Fn>
void for_each_line(std::string_view bytes, Fn&& fn) {
    std::uint64_t number = 0;
    std::size_t pos = 0;
    while (pos < bytes.size()) {
        const std::size_t nl = bytes.find('\n', pos);
        ++number;
        if (nl == std::string_view::npos) {
            fn(bytes.substr(pos), number, false);
            return;
        }
        if (!fn(bytes.substr(pos, nl - pos), number, true)) {
            return;
        }
        pos = nl + 1;
    }
}

struct line_at {
    std::size_t file = 0;
    std::uint64_t line = 0;
    std::string_view text;
    chained_line chain;
};

std::string where(std::span<const audit_text> files, std::size_t file, std::uint64_t line) {
    return files[file].name + ":" + std::to_string(line);
}

std::string lines_word(std::uint64_t n) {
    return std::to_string(n) + (n == 1 ? " line" : " lines");
}

// `cur` does not link to `prev` (the line before it in the files given): says what most
// likely happened. The hashes prove that something did; seq and a search for the line
// `cur` names only tell which kind of change it was.
chain_problem classify(std::span<const audit_text> files, const line_at& prev, const line_at& cur) {
    const bool across = prev.file != cur.file;
    const std::string cur_at = where(files, cur.file, cur.line);
    const std::string prev_at = where(files, prev.file, prev.line);

    // Which line does cur's prev name, and what follows it in the files given?
    struct found_line {
        std::size_t file = 0;
        std::uint64_t line = 0;
        std::uint64_t order = 0;
    };
    std::optional<found_line> named;
    std::optional<found_line> after_named;
    std::string_view after_named_text;
    std::uint64_t order = 0;
    std::uint64_t cur_order = 0;
    for (std::size_t f = 0; f < files.size(); ++f) {
        for_each_line(files[f].bytes, [&](std::string_view text, std::uint64_t n, bool complete) {
            ++order;
            if (f == cur.file && n == cur.line) {
                cur_order = order;
            }
            if (named && !after_named) {
                after_named = found_line{f, n, order};
                after_named_text = text;
            }
            if (complete && !named && line_hash(text) == cur.chain.prev) {
                named = found_line{f, n, order};
            }
            return true;
        });
    }
    if (named) {
        const std::string named_at = where(files, named->file, named->line);
        if (after_named && after_named->order != cur_order && after_named_text == cur.text) {
            return {problem_kind::duplicated, cur.file, cur.line,
                    cur_at + " repeats " + where(files, after_named->file, after_named->line) +
                        " (a copied line)"};
        }
        return {problem_kind::reordered, cur.file, cur.line,
                cur_at + " belongs right after " + named_at + " (its prev is that line's hash), " +
                    "not after " + prev_at +
                    (named->order > cur_order ? ", which comes later" : "") +
                    (across && named->file != prev.file ? ": files given out of order?" : "")};
    }
    if (across && cur.chain.seq <= prev.chain.seq) {
        return {problem_kind::reordered, cur.file, cur.line,
                files[cur.file].name + " starts at seq " + std::to_string(cur.chain.seq) +
                    ", not after seq " + std::to_string(prev.chain.seq) + " at the end of " +
                    files[prev.file].name + ": files given out of order?"};
    }
    if (cur.chain.prev == genesis_prev) {
        return {problem_kind::broken_link, cur.file, cur.line,
                across ? files[cur.file].name +
                             " starts a new trail (prev is zeros) instead of continuing " +
                             files[prev.file].name
                       : cur_at + " starts a new trail (prev is zeros) in the middle of the file"};
    }
    if (cur.chain.seq > prev.chain.seq + 1) {
        const std::uint64_t gap = cur.chain.seq - prev.chain.seq - 1;
        return {problem_kind::deleted, cur.file, cur.line,
                across ? lines_word(gap) + " missing between the end of " + files[prev.file].name +
                             " (" + prev_at + ") and " + cur_at + ": deleted from the end of " +
                             files[prev.file].name + ", or a file between them is missing"
                       : lines_word(gap) + " deleted between " + prev_at + " and " + cur_at +
                             " (seq jumps from " + std::to_string(prev.chain.seq) + " to " +
                             std::to_string(cur.chain.seq) + ")"};
    }
    if (cur.chain.seq == prev.chain.seq + 1) {
        return {problem_kind::edited, prev.file, prev.line,
                prev_at + " was changed after it was written: its hash is not the prev that " +
                    cur_at + " recorded (or that prev was changed)"};
    }
    return {problem_kind::reordered, cur.file, cur.line,
            "seq goes back from " + std::to_string(prev.chain.seq) + " at " + prev_at + " to " +
                std::to_string(cur.chain.seq) + " at " + cur_at};
}

}  // namespace

std::string line_hash(std::string_view line) {
    return crypto::sha256_hex(line);
}

std::string format_line(std::string_view time, std::uint64_t seq, std::string_view prev,
                        boost::json::object fields) {
    boost::json::object line;
    line.reserve(fields.size() + 3);
    line["time"] = time;
    line["seq"] = seq;
    line["prev"] = prev;
    for (auto& kv : fields) {
        if (kv.key() != "time" && kv.key() != "seq" && kv.key() != "prev") {
            line[kv.key()] = std::move(kv.value());
        }
    }
    return boost::json::serialize(line);
}

std::optional<chained_line> parse_line(std::string_view line) {
    chained_line out;
    if (inspect(line, out) != shape::chained) {
        return std::nullopt;
    }
    return out;
}

file_tail read_tail(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        throw std::system_error(errno, std::generic_category(), "fstat");
    }
    if (st.st_size == 0) {
        return {};
    }
    const auto read_at = [fd](char* out, std::size_t len, off_t offset) {
        while (len > 0) {
            const ssize_t n = ::pread(fd, out, len, offset);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                throw std::system_error(n < 0 ? errno : EIO, std::generic_category(), "pread");
            }
            out += n;
            len -= static_cast<std::size_t>(n);
            offset += n;
        }
    };
    char last = 0;
    read_at(&last, 1, st.st_size - 1);
    const bool complete = last == '\n';
    const off_t line_end = complete ? st.st_size - 1 : st.st_size;

    // Backwards in chunks to the "\n" before the last line (or the start of the file).
    constexpr std::size_t chunk = std::size_t{64} << 10U;
    std::vector<std::string> pieces;  // last piece first
    std::size_t collected = 0;
    off_t pos = line_end;
    while (pos > 0) {
        const auto len = static_cast<std::size_t>(std::min<off_t>(chunk, pos));
        pos -= static_cast<off_t>(len);
        std::string buf(len, '\0');
        read_at(buf.data(), len, pos);
        const std::size_t nl = buf.rfind('\n');
        if (nl != std::string::npos) {
            buf.erase(0, nl + 1);
            pos = 0;
        }
        collected += buf.size();
        pieces.push_back(std::move(buf));
        if (collected > max_tail_line) {
            return {file_tail::state::too_long, {}, 0, complete};
        }
    }
    std::string tail;
    tail.reserve(collected);
    for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
        tail += *it;
    }
    file_tail out;
    out.hash = line_hash(tail);
    out.ends_with_newline = complete;
    if (!complete) {
        out.what = file_tail::state::incomplete;
    } else if (const auto chained = parse_line(tail)) {
        out.what = file_tail::state::chained;
        out.seq = chained->seq;
    } else {
        out.what = file_tail::state::unchained;
    }
    return out;
}

std::string_view to_string(problem_kind kind) {
    switch (kind) {
        case problem_kind::garbled:
            return "garbled";
        case problem_kind::truncated:
            return "truncated";
        case problem_kind::unchained:
            return "unchained";
        case problem_kind::not_chain_start:
            return "not_chain_start";
        case problem_kind::edited:
            return "edited";
        case problem_kind::deleted:
            return "deleted";
        case problem_kind::reordered:
            return "reordered";
        case problem_kind::duplicated:
            return "duplicated";
        case problem_kind::broken_link:
            return "broken_link";
        case problem_kind::empty:
            return "empty";
    }
    return "unknown";
}

chain_report verify(std::span<const audit_text> files) {
    chain_report report;
    report.lines.assign(files.size(), 0);
    const auto note = [&report](chain_problem p) -> std::optional<std::size_t> {
        ++report.problem_count;
        if (report.problems.size() >= max_problems) {
            return std::nullopt;
        }
        report.problems.push_back(std::move(p));
        return report.problems.size() - 1;
    };
    std::optional<line_at> prev;  // the last chained line
    // The last line since `prev` that is not chained, and how many there were in a row.
    struct bad_line {
        std::string at;
        std::string hash;
        std::optional<std::size_t> problem;
    };
    std::optional<bad_line> bad;
    std::uint64_t bad_in_a_row = 0;

    for (std::size_t f = 0; f < files.size(); ++f) {
        for_each_line(files[f].bytes, [&](std::string_view text, std::uint64_t n, bool complete) {
            const std::string at = where(files, f, n);
            line_at cur{f, n, text, {}};
            std::optional<chain_problem> unusable;
            if (!complete) {
                unusable = chain_problem{problem_kind::truncated, f, n,
                                         at + " has no newline at the end: the line was cut "
                                              "short (a torn write, or a truncated copy)"};
            } else {
                switch (inspect(text, cur.chain)) {
                    case shape::garbled:
                        unusable = chain_problem{problem_kind::garbled, f, n,
                                                 at + " is not a JSON object" +
                                                     (text.empty() ? " (an empty line)" : "")};
                        break;
                    case shape::unchained:
                        unusable = chain_problem{problem_kind::unchained, f, n,
                                                 at + " has no valid seq and prev (written before "
                                                      "the chain existed, or edited)"};
                        break;
                    case shape::chained:
                        break;
                }
            }
            if (unusable) {
                // A line cut short after its prev still links to the line before it.
                const auto cut = unusable->kind == problem_kind::unchained || bad
                                     ? std::nullopt
                                     : cut_line_link(text);
                if (cut && prev && cut->prev == report.last.hash) {
                    unusable->detail += " (cut short after its prev, which links to " +
                                        where(files, prev->file, prev->line) + ")";
                }
                const auto index = note(std::move(*unusable));
                if (cut && prev && cut->prev != report.last.hash) {
                    note(classify(files, *prev, line_at{f, n, text, *cut}));
                }
                bad = bad_line{at, line_hash(text), index};
                ++bad_in_a_row;
                return true;
            }

            if (bad) {
                if (cur.chain.prev == bad->hash && cur.chain.event == chain_event) {
                    // The daemon's bridge: a chain record naming the bad line's bytes.
                    ++report.bridged_count;
                    if (bad->problem) {
                        auto& p = report.problems[*bad->problem];
                        p.bridged = true;
                        p.detail +=
                            "; bridged: " + at + ", a chain record" +
                            (cur.chain.reason.empty() ? "" : " (" + cur.chain.reason + ")") +
                            ", links to its bytes and the chain goes on from there";
                    }
                } else if (prev && cur.chain.prev == report.last.hash) {
                    // Inserted between two lines that still link: its own problem says it.
                } else if (prev && bad_in_a_row == 1 && cur.chain.seq == prev->chain.seq + 2) {
                    if (bad->problem) {
                        report.problems[*bad->problem].detail +=
                            "; " + at + " does not link to it: the line there was changed";
                    }
                } else if (prev) {
                    note(classify(files, *prev, cur));
                }
                bad.reset();
                bad_in_a_row = 0;
            } else if (prev && cur.chain.prev != report.last.hash) {
                note(classify(files, *prev, cur));
            }
            if (!prev) {
                if (report.problem_count == 0 && cur.chain.event != chain_event) {
                    note({problem_kind::not_chain_start, f, n,
                          at + " is not a chain record: lines were deleted from the start of " +
                              files[f].name + ", or it is not where the files begin"});
                }
                report.first_prev = cur.chain.prev;
            }
            // From here the chain is checked again, whatever came before.
            ++report.lines[f];
            ++report.total_lines;
            report.last = chain_head{cur.chain.seq, line_hash(text)};
            prev = std::move(cur);
            return true;
        });
    }
    if (report.problem_count == 0 && report.total_lines == 0) {
        note({problem_kind::empty, 0, 0,
              files.size() == 1 ? "no chain start: the file has no line, and an audit file "
                                  "begins with its chain record"
                                : "no chain start: none of the " + std::to_string(files.size()) +
                                      " files given has a line, and an audit file begins with "
                                      "its chain record"});
    }
    const auto verdict = std::find_if(report.problems.begin(), report.problems.end(),
                                      [](const chain_problem& p) { return !p.bridged; });
    if (verdict != report.problems.end()) {
        report.problem = *verdict;
    } else if (!report.problems.empty()) {
        report.problem = report.problems.front();
    }
    return report;
}

}  // namespace pwresetd::audit_chain
