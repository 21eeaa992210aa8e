#pragma once
// The audit trail's hash chain: the one definition the daemon writes by (daemon/audit_log)
// and `pwresetctl audit verify` checks by.
//
// Every line of an audit file is one JSON object and a "\n", beginning
//   {"time":"<RFC 3339>","seq":N,"prev":"<64 lowercase hex>", ...the event's fields}
// `prev` is the SHA-256 of the previous line's exact bytes without its "\n" (that line as it
// stands in the file, its own `prev` included), so changing, removing or moving any line
// breaks the next line's `prev`. `seq` numbers the lines of the trail; it only names what
// broke (a gap is deleted lines), the hashes are the proof. The first line of every file is
// a chain record, {"event":"audit.chain", "reason":..., "previous_file":...} after the three
// fields above, whose `prev` is the hash of the previous file's last line, or 64 zeros
// where the trail begins.
#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pwresetd::audit_chain {

inline constexpr std::string_view genesis_prev =
    "0000000000000000000000000000000000000000000000000000000000000000";
inline constexpr std::string_view chain_event = "audit.chain";

// Lowercase hex SHA-256 of `line` (without its "\n").
std::string line_hash(std::string_view line);

// Where the chain stands after the last line written.
struct chain_head {
    std::uint64_t seq = 0;
    std::string hash{genesis_prev};
};

// One line without its "\n": time, seq, prev, then `fields` in their order. Fields named
// time, seq or prev are the chain's own and are dropped.
std::string format_line(std::string_view time, std::uint64_t seq, std::string_view prev,
                        boost::json::object fields);

// The chain fields of a line; nullopt when the line is not a JSON object with an unsigned
// `seq` and a `prev` of 64 lowercase hex digits.
struct chained_line {
    std::uint64_t seq = 0;
    std::string prev;
    std::string event;
    std::string reason;  // a chain record's reason; empty for other lines
};
std::optional<chained_line> parse_line(std::string_view line);

// What the end of an existing file says about where its chain stands.
struct file_tail {
    enum class state {
        empty,       // no bytes
        chained,     // the last line is complete and chained: continue from it
        unchained,   // the last line is complete but not chained (garbled, or pre-chain)
        incomplete,  // the file does not end with "\n" (a torn write)
        too_long,    // the last line is longer than max_tail_line: not read
    };
    state what = state::empty;
    std::string hash;       // line_hash of the last line's bytes (not for empty, too_long)
    std::uint64_t seq = 0;  // chained only
    bool ends_with_newline = true;
};
inline constexpr std::size_t max_tail_line = std::size_t{16} << 20U;
// Reads backwards from the end of the open file `fd` (pread; the offset is not used).
// Throws std::system_error when the file cannot be read.
file_tail read_tail(int fd);

// ---------------------------------------------------------------------------- verification
enum class problem_kind {
    garbled,          // not a JSON object (an empty line, a cut-off line glued to the next)
    truncated,        // the file's last line has no "\n": cut short
    unchained,        // JSON, but no valid seq/prev (written before the chain, or edited)
    not_chain_start,  // the first file does not begin with a chain record
    edited,           // a line's hash differs from the prev its successor recorded
    deleted,          // seq jumps: lines between two lines (or two files) are missing
    reordered,        // a line's prev names another line, or seq goes back
    duplicated,       // a line repeats an earlier one
    broken_link,      // a file does not continue the previous one (prev zeros or unknown)
    empty,            // no line in any file given: no chain start
};
std::string_view to_string(problem_kind kind);

struct audit_text {
    std::string name;
    std::string_view bytes;
};

struct chain_problem {
    problem_kind kind = problem_kind::garbled;
    std::size_t file = 0;    // index into the files given
    std::uint64_t line = 0;  // 1-based line in that file
    std::string detail;      // one sentence, names lines as FILE:LINE
    // A line that is not chained (garbled, truncated, unchained) and that the next chained
    // line, a chain record, links to by its hash: the daemon's bridge after a torn write or a
    // line from before the chain. The chain goes on from that record.
    bool bridged = false;
};

inline constexpr std::size_t max_problems = 1000;  // kept in chain_report::problems

struct chain_report {
    std::vector<std::uint64_t> lines;  // chained lines checked per file
    std::uint64_t total_lines = 0;
    std::string first_prev;  // prev of the trail's first line: zeros, or an earlier file's
    chain_head last;         // seq and hash of the last line checked
    // The verdict: the first problem that is not bridged, else the first bridged one.
    std::optional<chain_problem> problem;
    std::vector<chain_problem> problems;  // every problem in trail order, the first max_problems
    std::uint64_t problem_count = 0;      // all of them, also those beyond max_problems
    std::uint64_t bridged_count = 0;
    [[nodiscard]] bool only_bridged() const {
        return problem_count > 0 && bridged_count == problem_count;
    }
};

// Checks `files`, oldest first, as one trail. After a problem it goes on: from a chain
// record that bridges a bad line, else from the next chained line (the chain is checked from
// there), so a later problem is still found. Lines are bytes: a field that is not UTF-8 (the
// daemon writes what Boost.JSON serializes) is not a problem. Reads only the bytes given.
chain_report verify(std::span<const audit_text> files);

}  // namespace pwresetd::audit_chain
