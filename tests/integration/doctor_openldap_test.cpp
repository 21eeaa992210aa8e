// `pwresetctl doctor` against a real slapd with ppolicy (tests/lab/openldap.sh), one lab per
// test binary: the delegated service account passes, svc-readonly (reads like it, writes
// nothing) is told what is missing and the olcAccess line that would grant it, and the
// sample entry is byte-for-byte the same, operational attributes included, afterwards.
#include <catch2/catch.hpp>
#include <string>

#include "integration/doctor_support.hpp"
#include "support/files.hpp"
#include "support/lab_fixture.hpp"
#include "support/net.hpp"
#include "support/temp_dir.hpp"

using namespace pwresetd::testing;

namespace {

lab_fixture& lab() {
    static lab_fixture instance("openldap.sh");
    return instance;
}

doctor_directory delegated() {
    const lab_fixture& l = lab();
    return {"openldap",
            {l["LAB_LDAPS_URI"]},
            l["LAB_CA"],
            l["LAB_SVC_DN"],
            l["LAB_SVC_PASSWORD_FILE"],
            l["LAB_USER_BASE"],
            "(&(objectClass=inetOrgPerson)(uid={username}))",
            "  force_change_at_next_logon: true\n"
            "  protected_groups: [\"cn=admins,ou=groups,dc=example,dc=test\"]\n"};
}

doctor_directory undelegated() {
    doctor_directory d = delegated();
    d.bind_dn = lab()["LAB_READONLY_DN"];
    d.password_file = lab()["LAB_READONLY_PASSWORD_FILE"];
    return d;
}

std::string alice_dn() {
    return "uid=alice," + lab()["LAB_USER_BASE"];
}

}  // namespace

TEST_CASE("doctor: the delegated service account has every right (exit 0)", "[doctor]") {
    const temp_dir dir("pwresetd-doctor");
    const auto config = write_doctor_config(dir.path(), "delegated", delegated());
    const std::string before = admin_snapshot(lab(), alice_dn());

    const doctor_run text = run_doctor(dir.path(), "-c " + shell_quote(config.string()));
    INFO(text.out << text.err);
    CHECK(text.exit_code == 0);
    CHECK(text.out.find("ok       write userPassword: granted") != std::string::npos);
    CHECK(text.out.find("ok       write pwdAccountLockedTime: granted") != std::string::npos);
    CHECK(text.out.find("ok       write pwdReset: granted") != std::string::npos);
    CHECK(text.out.find("summary: 0 problems") != std::string::npos);

    const doctor_run js =
        run_doctor(dir.path(), "-c " + shell_quote(config.string()) + " --user alice --json");
    INFO(js.out << js.err);
    REQUIRE(js.exit_code == 0);
    const auto checks = doctor_checks(js.out);
    CHECK(find_check(checks, "connect").at("status").as_string() == "ok");
    CHECK(find_check(checks, "bind").at("status").as_string() == "ok");
    CHECK(find_check(checks, "sample_user").at("subject").as_string() == alice_dn());
    for (const char* attribute : {"userPassword", "pwdAccountLockedTime", "pwdReset"}) {
        CHECK(find_check(checks, "write", attribute).at("status").as_string() == "ok");
    }
    CHECK(find_check(checks, "read", "mail").at("status").as_string() == "ok");
    CHECK(find_check(checks, "group", "cn=admins,ou=groups,dc=example,dc=test")
              .at("status")
              .as_string() == "ok");
    // The lab's certificate is made valid for 30 days at the lab's start: 29 or 30 whole
    // days are left, and the warning is given under 30.
    const auto cert = find_check(checks, "certificate");
    const auto days_left = cert.at("certificate").as_object().at("days_left").as_int64();
    CHECK((days_left == 29 || days_left == 30));
    CHECK(cert.at("status").as_string() == (days_left < 30 ? "warning" : "ok"));
    CHECK(cert.at("certificate").as_object().at("subject").as_string() == "CN=localhost");
    CHECK(cert.at("certificate").as_object().at("issuer").as_string() == "CN=pwresetd lab CA");

    const std::string after = admin_snapshot(lab(), alice_dn());
    CHECK(before.find("entryCSN:") != std::string::npos);
    CHECK(before.find("modifyTimestamp:") != std::string::npos);
    CHECK(after == before);
}

TEST_CASE("doctor: an account without write access is told what is missing (exit 1)", "[doctor]") {
    const temp_dir dir("pwresetd-doctor");
    const auto config = write_doctor_config(dir.path(), "readonly", undelegated());
    const std::string before = admin_snapshot(lab(), alice_dn());

    const doctor_run text =
        run_doctor(dir.path(), "-c " + shell_quote(config.string()) + " --user alice");
    INFO(text.out << text.err);
    CHECK(text.exit_code == 1);
    const std::string readonly_dn = lab()["LAB_READONLY_DN"];
    CHECK(text.out.find("problem  write userPassword: missing") != std::string::npos);
    CHECK(text.out.find("grant: olcAccess: {0}to dn.subtree=\"" + lab()["LAB_USER_BASE"] +
                        "\" attrs=userPassword by dn.exact=\"" + readonly_dn +
                        "\" =w by * break") != std::string::npos);
    CHECK(text.out.find("problem  write pwdAccountLockedTime: missing") != std::string::npos);
    CHECK(text.out.find("problem  write pwdReset: missing") != std::string::npos);
    // What it may do is still reported as fine.
    CHECK(text.out.find("ok       read mail") != std::string::npos);
    CHECK(text.out.find("summary: 3 problems") != std::string::npos);

    const doctor_run js =
        run_doctor(dir.path(), "-c " + shell_quote(config.string()) + " --user alice --json");
    REQUIRE(js.exit_code == 1);
    const auto doc = boost::json::parse(js.out).as_object();
    CHECK(doc.at("ok").as_bool() == false);
    CHECK(doc.at("problems").as_int64() == 3);
    const auto pw = find_check(doctor_checks(js.out), "write", "userPassword");
    CHECK(pw.at("status").as_string() == "problem");
    REQUIRE(pw.at("grant").as_array().size() == 1);
    CHECK(pw.at("grant").as_array().at(0).as_string().find("attrs=userPassword") !=
          std::string::npos);

    // The probes failed as slapd answered them: nothing written.
    CHECK(admin_snapshot(lab(), alice_dn()) == before);
    // The probe's verdict is the server's: the same account really cannot reset.
    write_file(dir / "new-password", "Alice-Doctor-Passw0rd-9");
    const int rc = run_shell(
        "env -u LDAPNOINIT LDAPTLS_REQCERT=demand LDAPTLS_CACERT=" + shell_quote(lab()["LAB_CA"]) +
        " ldappasswd -x -H " + shell_quote(lab()["LAB_LDAPS_URI"]) + " -D " +
        shell_quote(readonly_dn) + " -y " + shell_quote(lab()["LAB_READONLY_PASSWORD_FILE"]) +
        " -T " + shell_quote((dir / "new-password").string()) + " " + shell_quote(alice_dn()) +
        " >" + shell_quote((dir / "ldappasswd.out").string()) + " 2>&1");
    CHECK(rc != 0);
    CHECK(read_file(dir / "ldappasswd.out").find("Insufficient access (50)") != std::string::npos);
    CHECK(admin_snapshot(lab(), alice_dn()) == before);
}

TEST_CASE("doctor: no secret in the output, TLS failures and bad configs", "[doctor]") {
    const temp_dir dir("pwresetd-doctor");
    const std::string password = read_file(lab()["LAB_SVC_PASSWORD_FILE"]);
    REQUIRE(password.size() >= 12);

    SECTION("the bind password appears nowhere, with a good or a wrong password") {
        const auto good = write_doctor_config(dir.path(), "good", delegated());
        doctor_directory wrong = delegated();
        write_file(dir / "wrong-password", password + "-wrong");
        wrong.password_file = (dir / "wrong-password").string();
        const auto bad = write_doctor_config(dir.path(), "wrong", wrong);
        for (const auto& config : {good, bad}) {
            for (const char* format : {"", " --json"}) {
                const doctor_run r =
                    run_doctor(dir.path(), "-c " + shell_quote(config.string()) + format);
                CHECK(r.out.find(password) == std::string::npos);
                CHECK(r.err.find(password) == std::string::npos);
            }
        }
        const doctor_run r = run_doctor(dir.path(), "-c " + shell_quote(bad.string()));
        CHECK(r.exit_code == 1);
        CHECK(r.out.find("problem  bind: as " + lab()["LAB_SVC_DN"] + ": result 49") !=
              std::string::npos);
    }

    SECTION("a server certificate from another CA fails at TLS, whatever LDAPTLS_REQCERT") {
        doctor_directory other = delegated();
        other.ca_file = (dir / "other-ca.crt").string();
        REQUIRE(run_shell("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                          "-nodes -days 2 -subj /CN=another-ca -keyout " +
                          shell_quote((dir / "other-ca.key").string()) + " -out " +
                          shell_quote(other.ca_file) + " 2>/dev/null") == 0);
        const auto config = write_doctor_config(dir.path(), "other-ca", other);
        const doctor_run r = run_doctor(dir.path(), "-c " + shell_quote(config.string()));
        INFO(r.out << r.err);
        CHECK(r.exit_code == 1);
        CHECK(r.out.find("problem  connect: tls failed") != std::string::npos);
        CHECK(r.out.find("bind") == std::string::npos);  // nothing sent after a failed TLS
    }

    SECTION("every URI is checked on its own: a dead one is a problem, the next one passes") {
        doctor_directory two = delegated();
        two.uris.insert(two.uris.begin(), "ldaps://127.0.0.1:" + std::to_string(free_port()));
        const auto config = write_doctor_config(dir.path(), "two", two);
        const doctor_run r =
            run_doctor(dir.path(), "-c " + shell_quote(config.string()) + " --user alice --json");
        INFO(r.out << r.err);
        CHECK(r.exit_code == 1);
        const auto servers = boost::json::parse(r.out)
                                 .as_object()
                                 .at("directories")
                                 .as_array()
                                 .at(0)
                                 .as_object()
                                 .at("servers")
                                 .as_array();
        REQUIRE(servers.size() == 2);
        const auto& dead = servers.at(0).as_object();
        CHECK(dead.at("uri").as_string() == two.uris.at(0));
        REQUIRE(dead.at("checks").as_array().size() == 1);
        CHECK(dead.at("checks").as_array().at(0).as_object().at("status").as_string() == "problem");
        const auto& good = servers.at(1).as_object().at("checks").as_array();
        CHECK(find_check(good, "write", "userPassword").at("status").as_string() == "ok");
        CHECK(boost::json::parse(r.out).as_object().at("problems").as_int64() == 1);
    }

    SECTION("usage and unreadable configurations exit 2") {
        CHECK(run_doctor(dir.path(), "--no-such-option").exit_code == 2);
        CHECK(run_doctor(dir.path(), "-c " + shell_quote((dir / "missing.yaml").string()))
                  .exit_code == 2);
        write_file(dir / "broken.yaml", "directory: [\n");
        CHECK(
            run_doctor(dir.path(), "-c " + shell_quote((dir / "broken.yaml").string())).exit_code ==
            2);
    }

    SECTION("--user that does not exist is a problem") {
        const auto config = write_doctor_config(dir.path(), "good", delegated());
        const doctor_run r =
            run_doctor(dir.path(), "-c " + shell_quote(config.string()) + " --user nobody-here");
        CHECK(r.exit_code == 1);
        CHECK(r.out.find("problem  sample_user: no entry for \"nobody-here\"") !=
              std::string::npos);
    }
}

namespace {

// The `directory:` block of a written config as a `directories:` list of two blocks on the
// same lab: "corp" (domains corp.test) first, then "example" (domains example.test).
std::filesystem::path two_blocks(const std::filesystem::path& dir) {
    const auto single = write_doctor_config(dir, "single", delegated());
    const std::string text = read_file(single);
    const auto begin = text.find("directory:\n");
    const auto end = text.find("state:\n");
    REQUIRE(begin != std::string::npos);
    REQUIRE(end != std::string::npos);
    std::string block;
    for (std::size_t at = begin + 11; at < end;) {
        const auto nl = text.find('\n', at);
        block += "  " + text.substr(at, nl + 1 - at);
        at = nl + 1;
    }
    auto path = dir / "two-blocks.yaml";
    write_file(path, text.substr(0, begin) +
                         "directories:\n  - name: corp\n    domains: [corp.test]\n" + block +
                         "  - name: example\n    domains: [example.test]\n" + block +
                         text.substr(end));
    return path;
}

// The checks of the first server of directory block `index`.
boost::json::array block_checks(const std::string& json_text, std::size_t index) {
    return boost::json::parse(json_text)
        .as_object()
        .at("directories")
        .as_array()
        .at(index)
        .as_object()
        .at("servers")
        .as_array()
        .at(0)
        .as_object()
        .at("checks")
        .as_array();
}

}  // namespace

TEST_CASE("doctor --user resolves the name as the daemon does, and never falls back", "[doctor]") {
    const temp_dir dir("pwresetd-doctor-user");

    // Red-team finding 6 (operations 1): with a domain part on a block without `domains:`,
    // doctor dropped --user and checked the first entry the filter found (alice). The daemon
    // searches such a name whole: nobody here, and doctor must say so.
    SECTION("a block without domains: user@domain and DOMAIN\\user are searched whole") {
        const auto config = write_doctor_config(dir.path(), "plain", delegated());
        for (const std::string name : {"carol@example.test", "EXAMPLE\\carol"}) {
            const doctor_run r =
                run_doctor(dir.path(), "-c " + shell_quote(config.string()) + " --user " +
                                           shell_quote(name) + " --json");
            INFO(name << '\n' << r.out << r.err);
            CHECK(r.exit_code == 1);
            const auto sample = find_check(doctor_checks(r.out), "sample_user");
            CHECK(sample.at("status").as_string() == "problem");
            CHECK(sample.at("subject").as_string() == "");
            CHECK(std::string(sample.at("detail").as_string())
                      .starts_with("no entry for \"" + name + "\""));
            CHECK(r.out.find("uid=alice,") == std::string::npos);
        }
    }
    SECTION("several blocks: the block listing the domain, with the bare name") {
        const auto config = two_blocks(dir.path());
        const doctor_run r = run_doctor(
            dir.path(), "-c " + shell_quote(config.string()) + " --user carol@Example.TEST --json");
        INFO(r.out << r.err);
        const auto example = find_check(block_checks(r.out, 1), "sample_user");
        CHECK(example.at("status").as_string() == "ok");
        CHECK(example.at("subject").as_string() == "uid=carol," + lab()["LAB_USER_BASE"]);
        // The other block checks a sample of its own and says why.
        const auto corp = find_check(block_checks(r.out, 0), "sample_user");
        CHECK(std::string(corp.at("detail").as_string())
                  .starts_with("--user \"carol@Example.TEST\" is looked up in directory block "
                               "\"example\" (as \"carol\"), not here; checking rights on "));
    }
    SECTION("several blocks: a domain no block lists is searched whole in the first block") {
        const auto config = two_blocks(dir.path());
        const doctor_run r = run_doctor(
            dir.path(), "-c " + shell_quote(config.string()) + " --user carol@nowhere.test --json");
        INFO(r.out << r.err);
        CHECK(r.exit_code == 1);
        const auto corp = find_check(block_checks(r.out, 0), "sample_user");
        CHECK(corp.at("status").as_string() == "problem");
        CHECK(std::string(corp.at("detail").as_string())
                  .starts_with("no entry for \"carol@nowhere.test\""));
        const auto example = find_check(block_checks(r.out, 1), "sample_user");
        CHECK(std::string(example.at("detail").as_string())
                  .starts_with("--user \"carol@nowhere.test\" is looked up in directory block "
                               "\"corp\""));
    }
}
