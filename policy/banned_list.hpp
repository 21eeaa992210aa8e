#pragma once
// The `banned` rule, evaluated the way Microsoft Entra Password Protection does ("How are
// passwords evaluated"): the password is normalized (normalize.hpp), every part of it within
// edit distance 1 of a banned term is found, and it is scored: each banned term used = 1
// point, each remaining character = 1 point; below the threshold it is refused.
//
// pwresetd adds repetitive and sequential runs to the same score, as if they were banned
// terms (find_runs), so "aaaa", "1234", "dcba" and "qwerty" cost the password points
// instead of refusing a long passphrase that merely contains one.
//
// A banned_list is immutable once built; every const member may be called from several
// threads at once.
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <istream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pwresetd::policy {

// Code point positions [begin, end) in a password.
struct text_span {
    std::uint32_t begin = 0;
    std::uint32_t end = 0;
    friend auto operator<=>(const text_span&, const text_span&) = default;
};

struct banned_load_stats {
    std::uint64_t lines = 0;
    std::uint64_t terms = 0;         // distinct normalized terms in the index
    std::uint64_t duplicates = 0;    // terms equal to an earlier one after normalization
    std::uint64_t too_short = 0;     // under banned_list::min_term_length after normalization
    std::uint64_t too_long = 0;      // over banned_list::max_term_length
    std::uint64_t invalid_utf8 = 0;  // lines skipped
};

class banned_list {
public:
    static constexpr std::size_t min_term_length = 4;   // code points, as Entra's custom list
    static constexpr std::size_t max_term_length = 64;  // code points

    banned_list();
    banned_list(banned_list&&) noexcept;
    banned_list& operator=(banned_list&&) noexcept;
    banned_list(const banned_list&) = delete;
    banned_list& operator=(const banned_list&) = delete;
    ~banned_list();

    // UTF-8, one term per line; surrounding spaces, tabs and CR are trimmed; blank lines and
    // lines whose first other character is '#' are skipped; a line that is not UTF-8 is
    // skipped and counted. Throws policy_error naming the file when it cannot be read.
    static banned_list load(const std::filesystem::path& file);
    static banned_list parse(std::istream& input);
    static banned_list from_terms(std::span<const std::string_view> terms);

    [[nodiscard]] std::size_t size() const noexcept { return offsets_.size() - 1; }
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
    [[nodiscard]] const banned_load_stats& stats() const noexcept { return stats_; }
    [[nodiscard]] std::size_t longest_term() const noexcept { return longest_; }
    // Heap bytes held by the terms and the index.
    [[nodiscard]] std::size_t index_bytes() const noexcept;
    [[nodiscard]] std::size_t index_entries() const noexcept { return entry_count_; }
    // Normalized term number i, UTF-8 (sorted order).
    [[nodiscard]] std::string_view term(std::size_t i) const noexcept;

    // True when `normalized` as a whole is within edit distance 1 of a term.
    [[nodiscard]] bool matches(std::span<const char32_t> normalized) const;
    // Every window of `normalized` within edit distance 1 of a term, sorted, once each. A
    // window that is a term plus one character at either edge is left out: that character
    // is not part of the term (Entra scores the "f" of "blankf" on its own). With
    // entra_score, the plain form of the rule (tests, diagnostics); evaluate_banned is the
    // fast one.
    [[nodiscard]] std::vector<text_span> find(std::span<const char32_t> normalized) const;

    // The windows of one password, start by start, for a search that looks only where it
    // needs to. Holds the password's prefix hashes, wiped on destruction.
    class window_finder {
    public:
        window_finder(const banned_list& list, std::span<const char32_t> normalized);
        window_finder(const window_finder&) = delete;
        window_finder& operator=(const window_finder&) = delete;
        ~window_finder();
        // Replaces `ends` with every end >= min_end of a window [begin, end) that find()
        // would return, ascending; with `reached`, leaves out the ends already reached for
        // `points` or fewer (reached[end] <= points), which the window cannot improve.
        void ends_from(std::size_t begin, std::size_t min_end, std::span<const std::size_t> reached,
                       std::size_t points, std::vector<std::uint32_t>& ends) const;

    private:
        [[nodiscard]] std::size_t longest_term_prefix(std::size_t begin) const;
        [[nodiscard]] std::size_t longest_term_suffix(std::size_t end) const;

        const banned_list& list_;
        std::span<const char32_t> text_;
        std::vector<std::uint64_t> prefix_;
        mutable std::vector<std::int16_t> suffix_;  // longest_term_suffix by end; -1: not yet
    };

private:
    struct build;
    struct lookup;
    [[nodiscard]] bool confirm(std::uint64_t id, std::span<const char32_t> window,
                               bool skip_edge_insertions) const;
    [[nodiscard]] std::size_t first_slot(std::uint64_t key) const noexcept;
    bool insert(std::uint64_t key, std::size_t position, std::size_t id,
                std::span<const char32_t> term);
    [[nodiscard]] bool scan(const lookup& l, std::span<const char32_t> text,
                            bool skip_edge_insertions) const;
    template <typename Emit>
    void window_lookups(std::span<const std::uint64_t> prefix, std::size_t begin,
                        std::size_t length, bool whole, std::size_t first_deletion,
                        std::size_t last_deletion, Emit&& emit) const;
    [[nodiscard]] std::size_t affix_word(std::uint64_t key) const noexcept;
    [[nodiscard]] const std::uint64_t* affix_block_of(std::uint64_t key) const noexcept;
    void add_affix(std::uint64_t key) noexcept;
    [[nodiscard]] bool has_affix(std::uint64_t key) const noexcept;
    [[nodiscard]] bool has_length(std::size_t n) const noexcept {
        return n < lengths_.size() && lengths_[n];
    }

    std::string blob_;                    // the normalized terms, UTF-8, back to back
    std::vector<std::uint32_t> offsets_;  // term i is blob_[offsets_[i], offsets_[i + 1])
    // Symmetric-delete index: the 64-bit hash of every term and of each of its 1-deletions
    // in an open-addressing table (linear probing, at most 5/8 full). tags_ holds 9 bits of
    // each hash and which deletion it is (0: none, k + 1: the code point at k), 0 for an
    // empty slot, so a lookup reads a cache line of tags and touches entries_ (the term id)
    // only for a slot that could match, to confirm against the term itself.
    std::vector<std::uint16_t> tags_;
    std::vector<std::uint32_t> entries_;
    std::size_t slot_count_ = 1;
    std::size_t entry_count_ = 0;
    // The texts that begin or end a term, in a blocked Bloom filter (one 64-byte block per
    // text). It only prunes lookups: a window can be within one edit of a term only if it
    // splits into a beginning and an end of terms around the edit. A false positive costs a
    // lookup, never a wrong answer.
    std::vector<std::uint64_t> affix_bits_;
    std::size_t affix_base_ = 0;  // the first word on a 64-byte boundary
    std::size_t affix_blocks_ = 1;
    std::bitset<max_term_length + 2> lengths_;  // term lengths present
    std::size_t longest_ = 0;
    banned_load_stats stats_;
};

// Runs of 4 or more code points, maximal, sorted, once each:
// - the same normalized character repeated ("aaaa", "!!!!", "0o0O" = "oooo");
// - ASCII digits or ASCII letters ascending or descending by one ("1234", "abcd", "dcba",
//   "9876"), case-insensitively;
// - neighbouring keys of one row of a QWERTY keyboard, left to right or right to left
//   ("qwerty", "asdf", "zxcvbn", "7890", "poiu", "lkjh"), the rows being 1234567890,
//   qwertyuiopå, asdfghjklöä and zxcvbnm (å, ö, ä: the Nordic layouts).
// Every part of a run that is at least 4 long is a run too. `folded` is the case-folded
// password, `normalized` the normalized one (same length).
[[nodiscard]] std::vector<text_span> find_runs(std::span<const char32_t> folded,
                                               std::span<const char32_t> normalized);

// The lowest score any choice of non-overlapping term windows and run parts gives a text
// of `length` code points: 1 point for each window or run part used, 1 for every character
// left over.
[[nodiscard]] std::size_t entra_score(std::size_t length, std::span<const text_span> terms,
                                      std::span<const text_span> runs);

struct banned_verdict {
    bool refused = false;
    // The Entra score when it is below the threshold; otherwise the threshold (the score
    // is at least that, and the search stopped there).
    std::size_t score = 0;
};

// The whole rule: refused when the score is below `threshold` and a banned term or run
// brought it there. `list` may be null (runs only). The search is the dynamic program of
// entra_score over positions, pruned: a start is looked at only when the points already
// spent plus a lower bound for the rest (characters outside runs, at most
// longest_term() + 1 per point) stay below the threshold, so a clean password costs a few
// starts' lookups, not all of them.
[[nodiscard]] banned_verdict evaluate_banned(const banned_list* list,
                                             std::span<const char32_t> folded,
                                             std::span<const char32_t> normalized,
                                             std::size_t threshold);

}  // namespace pwresetd::policy
