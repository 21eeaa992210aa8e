#include "common/crypto.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <set>

#include "support/temp_dir.hpp"

namespace crypto = pwresetd::crypto;
using pwresetd::secret;
using pwresetd::testing::temp_dir;

namespace {
std::span<const unsigned char> bytes(std::string_view s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}
}  // namespace

TEST_CASE("sha256 matches FIPS 180-2 vectors", "[crypto]") {
    CHECK(crypto::sha256_hex("abc") ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(crypto::sha256_hex("") ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("hex round trip and rejects bad input", "[crypto]") {
    const std::vector<unsigned char> data{0x00, 0x7f, 0x80, 0xff};
    CHECK(crypto::hex_encode(data) == "007f80ff");
    CHECK(crypto::hex_decode("007F80ff") == data);
    CHECK_FALSE(crypto::hex_decode("0").has_value());
    CHECK_FALSE(crypto::hex_decode("zz").has_value());
}

TEST_CASE("base64url follows RFC 4648 section 5 without padding", "[crypto]") {
    CHECK(crypto::base64url_encode(bytes("")) == "");
    CHECK(crypto::base64url_encode(bytes("f")) == "Zg");
    CHECK(crypto::base64url_encode(bytes("fo")) == "Zm8");
    CHECK(crypto::base64url_encode(bytes("foo")) == "Zm9v");
    CHECK(crypto::base64url_encode(bytes("foob")) == "Zm9vYg");
    const std::vector<unsigned char> high{0xfb, 0xff, 0xbf};
    CHECK(crypto::base64url_encode(high) == "-_-_");
}

TEST_CASE("random_bytes differ and random_below stays in range", "[crypto]") {
    CHECK(crypto::random_bytes(16) != crypto::random_bytes(16));
    std::set<std::uint32_t> seen;
    for (int i = 0; i < 2000; ++i) {
        const auto v = crypto::random_below(10);
        REQUIRE(v < 10);
        seen.insert(v);
    }
    CHECK(seen.size() == 10);
}

TEST_CASE("seal/open round trip, bound to key and context", "[crypto]") {
    const secret key(std::span<const unsigned char>(crypto::random_bytes(32)));
    const secret other(std::span<const unsigned char>(crypto::random_bytes(32)));
    const auto sealed = crypto::seal(key, bytes("JBSWY3DPEHPK3PXP"), "user-1");
    REQUIRE(sealed.size() == 12 + 16 + 16);
    auto opened = crypto::open(key, sealed, "user-1");
    REQUIRE(opened.has_value());
    CHECK(opened->view() == "JBSWY3DPEHPK3PXP");
    CHECK_FALSE(crypto::open(other, sealed, "user-1").has_value());
    CHECK_FALSE(crypto::open(key, sealed, "user-2").has_value());
    auto tampered = sealed;
    tampered[14] ^= 0x01;
    CHECK_FALSE(crypto::open(key, tampered, "user-1").has_value());
    CHECK_FALSE(crypto::open(key, std::span(sealed.data(), 20), "user-1").has_value());
    // Two seals of the same plaintext differ (fresh nonce).
    CHECK(crypto::seal(key, bytes("x"), "c") != crypto::seal(key, bytes("x"), "c"));
}

TEST_CASE("key file is created 0600 with 32 bytes and read back", "[crypto]") {
    const temp_dir dir("pwresetd-crypto");
    const auto path = dir / "secret.key";
    const secret first = crypto::load_or_create_key_file(path);
    REQUIRE(first.size() == 32);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    const secret second = crypto::load_or_create_key_file(path);
    CHECK(first.equals(second));

    std::ofstream(dir / "short.key") << "too short";
    std::filesystem::permissions(dir / "short.key", std::filesystem::perms::owner_read |
                                                        std::filesystem::perms::owner_write);
    CHECK_THROWS_WITH(crypto::load_or_create_key_file(dir / "short.key"),
                      Catch::Contains("exactly 32 bytes"));
    CHECK_THROWS_WITH(crypto::load_or_create_key_file(dir / "missing-dir" / "k"),
                      Catch::Contains("missing-dir"));
}

TEST_CASE("a key file that group or others can read is refused", "[crypto]") {
    const temp_dir dir("pwresetd-crypto");
    const auto path = dir / "secret.key";
    (void)crypto::load_or_create_key_file(path);
    for (const auto mode : {0640, 0604, 0660, 0610}) {
        INFO("mode " << std::oct << mode);
        REQUIRE(::chmod(path.c_str(), static_cast<mode_t>(mode)) == 0);
        CHECK_THROWS_WITH(
            crypto::load_or_create_key_file(path),
            Catch::Contains("accessible by group or others") && Catch::Contains("chmod 600"));
    }
    REQUIRE(::chmod(path.c_str(), 0600) == 0);
    CHECK(crypto::load_or_create_key_file(path).size() == 32);
    // A FIFO in its place fails at once instead of blocking the start (red team).
    const auto fifo = dir / "fifo.key";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    CHECK_THROWS_WITH(crypto::load_or_create_key_file(fifo), Catch::Contains("not a regular file"));
}
