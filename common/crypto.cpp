#include "common/crypto.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>

namespace pwresetd::crypto {
namespace {

constexpr std::size_t nonce_size = 12;
constexpr std::size_t tag_size = 16;
constexpr std::size_t key_size = 32;

struct cipher_ctx_deleter {
    void operator()(EVP_CIPHER_CTX* ctx) const noexcept { EVP_CIPHER_CTX_free(ctx); }
};
using cipher_ctx_ptr = std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_deleter>;

int checked_int(std::size_t n) {
    if (n > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
        throw std::length_error("crypto: buffer too large");
    }
    return static_cast<int>(n);
}

struct fd_closer {
    int fd;
    ~fd_closer() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
};

}  // namespace

void random_fill(std::span<unsigned char> out) {
    if (!out.empty() && RAND_bytes(out.data(), checked_int(out.size())) != 1) {
        throw std::runtime_error("crypto: RAND_bytes failed");
    }
}

std::vector<unsigned char> random_bytes(std::size_t n) {
    std::vector<unsigned char> out(n);
    random_fill(out);
    return out;
}

std::uint32_t random_below(std::uint32_t bound) {
    if (bound == 0) {
        throw std::invalid_argument("crypto: random_below(0)");
    }
    // Rejection sampling: discard values in the incomplete last block.
    const std::uint32_t limit = std::numeric_limits<std::uint32_t>::max() -
                                (std::numeric_limits<std::uint32_t>::max() % bound);
    for (;;) {
        std::array<unsigned char, 4> b{};
        random_fill(b);
        const std::uint32_t v = (std::uint32_t{b[0]} << 24U) | (std::uint32_t{b[1]} << 16U) |
                                (std::uint32_t{b[2]} << 8U) | std::uint32_t{b[3]};
        if (v < limit) {
            return v % bound;
        }
    }
}

sha256_digest sha256(std::span<const unsigned char> data) {
    sha256_digest out{};
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 ||
        len != out.size()) {
        throw std::runtime_error("crypto: SHA-256 failed");
    }
    return out;
}

sha256_digest sha256(std::string_view data) {
    return sha256(std::span<const unsigned char>(
        reinterpret_cast<const unsigned char*>(data.data()), data.size()));
}

std::string sha256_hex(std::string_view data) {
    return hex_encode(sha256(data));
}

sha256_digest hmac_sha256(const secret& key, std::string_view data) {
    if (key.empty()) {
        throw std::runtime_error("hmac_sha256: empty key");
    }
    sha256_digest out{};
    unsigned int size = 0;
    if (HMAC(EVP_sha256(), key.bytes().data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(),
             &size) == nullptr ||
        size != out.size()) {
        throw std::runtime_error("hmac_sha256: HMAC failed");
    }
    return out;
}

std::string hex_encode(std::span<const unsigned char> data) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(data.size() * 2);
    for (const unsigned char c : data) {
        out.push_back(digits[c >> 4U]);
        out.push_back(digits[c & 0x0FU]);
    }
    return out;
}

std::optional<std::vector<unsigned char>> hex_decode(std::string_view hex) {
    if (hex.size() % 2 != 0) {
        return std::nullopt;
    }
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    };
    std::vector<unsigned char> out;
    out.reserve(hex.size() / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        const int hi = nibble(hex[i]);
        const int lo = nibble(hex[i + 1]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        out.push_back(static_cast<unsigned char>((hi << 4) | lo));
    }
    return out;
}

std::string base64url_encode(std::span<const unsigned char> data) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((data.size() * 4 + 2) / 3);
    std::size_t i = 0;
    for (; i + 3 <= data.size(); i += 3) {
        const std::uint32_t v =
            (std::uint32_t{data[i]} << 16U) | (std::uint32_t{data[i + 1]} << 8U) | data[i + 2];
        out.push_back(alphabet[(v >> 18U) & 63U]);
        out.push_back(alphabet[(v >> 12U) & 63U]);
        out.push_back(alphabet[(v >> 6U) & 63U]);
        out.push_back(alphabet[v & 63U]);
    }
    if (const std::size_t rest = data.size() - i; rest == 1) {
        const std::uint32_t v = std::uint32_t{data[i]} << 16U;
        out.push_back(alphabet[(v >> 18U) & 63U]);
        out.push_back(alphabet[(v >> 12U) & 63U]);
    } else if (rest == 2) {
        const std::uint32_t v =
            (std::uint32_t{data[i]} << 16U) | (std::uint32_t{data[i + 1]} << 8U);
        out.push_back(alphabet[(v >> 18U) & 63U]);
        out.push_back(alphabet[(v >> 12U) & 63U]);
        out.push_back(alphabet[(v >> 6U) & 63U]);
    }
    return out;
}

bool constant_time_equal(std::span<const unsigned char> a, std::span<const unsigned char> b) {
    if (a.size() != b.size()) {
        return false;
    }
    return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::vector<unsigned char> seal(const secret& key, std::span<const unsigned char> plaintext,
                                std::string_view context) {
    if (key.size() != key_size) {
        throw std::invalid_argument("crypto: AES-256-GCM key must be 32 bytes");
    }
    std::vector<unsigned char> out(nonce_size + plaintext.size() + tag_size);
    random_fill(std::span(out.data(), nonce_size));
    cipher_ctx_ptr ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    if (!ctx ||
        EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.bytes().data(), out.data()) !=
            1 ||
        EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                          reinterpret_cast<const unsigned char*>(context.data()),
                          checked_int(context.size())) != 1 ||
        EVP_EncryptUpdate(ctx.get(), out.data() + nonce_size, &len, plaintext.data(),
                          checked_int(plaintext.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), out.data() + nonce_size + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(tag_size),
                            out.data() + nonce_size + plaintext.size()) != 1) {
        throw std::runtime_error("crypto: AES-256-GCM encryption failed");
    }
    return out;
}

std::optional<secret> open(const secret& key, std::span<const unsigned char> sealed,
                           std::string_view context) {
    if (key.size() != key_size || sealed.size() < nonce_size + tag_size) {
        return std::nullopt;
    }
    const std::size_t ct_size = sealed.size() - nonce_size - tag_size;
    std::vector<unsigned char> plain(ct_size);
    std::array<unsigned char, tag_size> tag{};
    std::memcpy(tag.data(), sealed.data() + nonce_size + ct_size, tag_size);
    cipher_ctx_ptr ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    bool ok = ctx &&
              EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.bytes().data(),
                                 sealed.data()) == 1 &&
              EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                                reinterpret_cast<const unsigned char*>(context.data()),
                                checked_int(context.size())) == 1 &&
              EVP_DecryptUpdate(ctx.get(), plain.data(), &len, sealed.data() + nonce_size,
                                checked_int(ct_size)) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag_size),
                                  tag.data()) == 1;
    int final_len = 0;
    ok = ok && EVP_DecryptFinal_ex(ctx.get(), plain.data() + len, &final_len) == 1;
    std::optional<secret> result;
    if (ok) {
        result.emplace(std::span<const unsigned char>(plain.data(), plain.size()));
    }
    wipe(plain.data(), plain.size());
    return result;
}

secret load_or_create_key_file(const std::filesystem::path& path) {
    const std::string name = path.string();
    // O_NONBLOCK: a FIFO in its place must fail, not hang the start.
    int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT) {
        // Created exclusively so two nodes starting at once cannot both write a key.
        std::array<unsigned char, key_size> fresh{};
        random_fill(fresh);
        const int wfd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (wfd >= 0) {
            const fd_closer closer{wfd};
            const ssize_t written = ::write(wfd, fresh.data(), fresh.size());
            wipe(fresh.data(), fresh.size());
            if (written != static_cast<ssize_t>(key_size) || ::fsync(wfd) != 0) {
                ::unlink(name.c_str());
                throw std::runtime_error(
                    name + ": cannot write the new secret key: " + std::strerror(errno));
            }
        } else if (errno != EEXIST) {
            wipe(fresh.data(), fresh.size());
            throw std::runtime_error(name +
                                     ": cannot create the secret key: " + std::strerror(errno));
        }
        fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    }
    if (fd < 0) {
        throw std::runtime_error(name + ": cannot open the secret key: " + std::strerror(errno));
    }
    const fd_closer closer{fd};
    // The key unseals every TOTP secret and MACs every flow: like the bind password, a copy
    // that group or others can read is refused, not just warned about.
    struct stat info {};
    if (::fstat(fd, &info) != 0) {
        throw std::runtime_error(name + ": cannot stat the secret key: " + std::strerror(errno));
    }
    if (!S_ISREG(info.st_mode)) {
        throw std::runtime_error(name + ": the secret key is not a regular file");
    }
    if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        throw std::runtime_error(name +
                                 ": the secret key is accessible by group or others; "
                                 "chmod 600 " +
                                 name);
    }
    std::array<unsigned char, key_size + 1> buf{};
    std::size_t total = 0;
    while (total < buf.size()) {
        const ssize_t n = ::read(fd, buf.data() + total, buf.size() - total);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            wipe(buf.data(), buf.size());
            throw std::runtime_error(name +
                                     ": cannot read the secret key: " + std::strerror(errno));
        }
        if (n == 0) {
            break;
        }
        total += static_cast<std::size_t>(n);
    }
    if (total != key_size) {
        wipe(buf.data(), buf.size());
        throw std::runtime_error(name + ": the secret key must be exactly 32 bytes (found " +
                                 (total > key_size ? std::string("more") : std::to_string(total)) +
                                 ")");
    }
    secret key(std::span<const unsigned char>(buf.data(), key_size));
    wipe(buf.data(), buf.size());
    return key;
}

}  // namespace pwresetd::crypto
