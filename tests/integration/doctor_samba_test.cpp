// `pwresetctl doctor` against a real Samba AD domain controller (tests/lab/samba.sh), one lab
// per test binary, inside a private network namespace (tests/lab/in-netns.sh; ctest does
// that): svc-pwreset (Reset Password, write lockoutTime and pwdLastSet, delegated on
// OU=people) passes; svc-undelegated is told what is missing with the samba-tool and dsacls
// commands that would grant it; the sample entry, its security descriptor included, is
// byte-for-byte the same afterwards.
#include <catch2/catch.hpp>
#include <string>

#include "integration/doctor_support.hpp"
#include "support/files.hpp"
#include "support/lab_fixture.hpp"
#include "support/temp_dir.hpp"

using namespace pwresetd::testing;

namespace {

lab_fixture& lab() {
    static lab_fixture instance("samba.sh", "run this binary through tests/lab/in-netns.sh");
    return instance;
}

doctor_directory delegated() {
    const lab_fixture& l = lab();
    return {"active_directory",
            {l["LAB_LDAPS_URI"]},
            l["LAB_CA"],
            l["LAB_SVC_DN"],
            l["LAB_SVC_PASSWORD_FILE"],
            l["LAB_USER_BASE"],
            "(&(objectClass=user)(sAMAccountName={username}))",
            "  force_change_at_next_logon: true\n"
            "  protected_groups: [\"" +
                l["LAB_PROTECTED_GROUP"] + "\"]\n"};
}

doctor_directory undelegated() {
    doctor_directory d = delegated();
    d.bind_dn = lab()["LAB_UNDELEGATED_DN"];
    d.password_file = lab()["LAB_UNDELEGATED_PASSWORD_FILE"];
    return d;
}

std::string alice_dn() {
    return "CN=alice," + lab()["LAB_USER_BASE"];
}

std::string ldap_tool(const std::string& tool) {
    return "env -u LDAPNOINIT LDAPTLS_REQCERT=demand LDAPTLS_CACERT=" +
           shell_quote(lab()["LAB_CA"]) + " " + tool + " -x -o nettimeout=5 -H " +
           shell_quote(lab()["LAB_LDAPS_URI"]);
}

// An administrator-style reset of alice as svc-undelegated: replace unicodePwd with the
// quoted UTF-16LE password (given in base64). The exit status of ldapmodify; its output in
// `output`.
int reset_alice_as_undelegated(const std::filesystem::path& dir, const std::string& unicode_pwd,
                               std::string& output) {
    write_file(dir / "reset.ldif", "dn: " + alice_dn() +
                                       "\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: " +
                                       unicode_pwd + "\n-\n");
    const int rc =
        run_shell(ldap_tool("ldapmodify") + " -D " + shell_quote(lab()["LAB_UNDELEGATED_DN"]) +
                  " -y " + shell_quote(lab()["LAB_UNDELEGATED_PASSWORD_FILE"]) + " -f " +
                  shell_quote((dir / "reset.ldif").string()) + " >" +
                  shell_quote((dir / "reset.out").string()) + " 2>&1");
    output = read_file(dir / "reset.out");
    return rc;
}

}  // namespace

TEST_CASE("doctor (Samba): the delegated service account has every right (exit 0)", "[doctor]") {
    WARN("Samba lab ready in " << lab().start_seconds() << " s");
    const temp_dir dir("pwresetd-doctor");
    const auto config = write_doctor_config(dir.path(), "delegated", delegated());
    const std::string before = admin_snapshot(lab(), alice_dn(), "nTSecurityDescriptor");

    const doctor_run text =
        run_doctor(dir.path(), "-c " + shell_quote(config.string()) + " --user alice");
    INFO(text.out << text.err);
    CHECK(text.exit_code == 0);
    CHECK(text.out.find("ok       reset_right: granted") != std::string::npos);
    CHECK(text.out.find(lab()["LAB_SVC_SID"]) != std::string::npos);
    CHECK(text.out.find("ok       write lockoutTime: granted") != std::string::npos);
    CHECK(text.out.find("ok       write pwdLastSet: granted") != std::string::npos);
    CHECK(text.out.find("summary: 0 problems") != std::string::npos);

    const doctor_run js = run_doctor(dir.path(), "-c " + shell_quote(config.string()) + " --json");
    INFO(js.out << js.err);
    REQUIRE(js.exit_code == 0);
    const auto checks = doctor_checks(js.out);
    CHECK(find_check(checks, "connect").at("status").as_string() == "ok");
    CHECK(find_check(checks, "reset_right").at("status").as_string() == "ok");
    CHECK(find_check(checks, "group", lab()["LAB_PROTECTED_GROUP"]).at("status").as_string() ==
          "ok");
    CHECK(find_check(checks, "group_search").at("status").as_string() == "ok");
    CHECK(find_check(checks, "certificate").at("certificate").as_object().at("subject") ==
          "CN=dc1.example.test");

    const std::string after = admin_snapshot(lab(), alice_dn(), "nTSecurityDescriptor");
    CHECK(before.find("uSNChanged:") != std::string::npos);
    CHECK(before.find("nTSecurityDescriptor::") != std::string::npos);
    CHECK(after == before);
}

TEST_CASE("doctor (Samba): an account without the delegation is told what is missing (exit 1)",
          "[doctor]") {
    const temp_dir dir("pwresetd-doctor");
    const auto config = write_doctor_config(dir.path(), "undelegated", undelegated());
    const std::string before = admin_snapshot(lab(), alice_dn(), "nTSecurityDescriptor");

    const doctor_run text =
        run_doctor(dir.path(), "-c " + shell_quote(config.string()) + " --user alice");
    INFO(text.out << text.err);
    CHECK(text.exit_code == 1);
    CHECK(text.out.find("problem  reset_right: missing: no ACE grants Reset Password") !=
          std::string::npos);
    CHECK(text.out.find("problem  write lockoutTime: missing") != std::string::npos);
    CHECK(text.out.find("problem  write pwdLastSet: missing") != std::string::npos);
    CHECK(text.out.find("grant: dsacls \"" + lab()["LAB_USER_BASE"] +
                        "\" /I:S /G \"svc-undelegated@example.test:CA;Reset Password;user\"") !=
          std::string::npos);
    CHECK(text.out.find("summary: 3 problems") != std::string::npos);
    CHECK(text.out.find(read_file(lab()["LAB_UNDELEGATED_PASSWORD_FILE"])) == std::string::npos);

    const doctor_run js =
        run_doctor(dir.path(), "-c " + shell_quote(config.string()) + " --user alice --json");
    REQUIRE(js.exit_code == 1);
    const auto reset = find_check(doctor_checks(js.out), "reset_right");
    CHECK(reset.at("status").as_string() == "problem");
    REQUIRE(reset.at("grant").as_array().size() == 2);
    const std::string samba_tool(reset.at("grant").as_array().at(0).as_string());
    CHECK(samba_tool.starts_with("samba-tool dsacl set --objectdn=\"" + lab()["LAB_USER_BASE"] +
                                 "\" --sddl=\"(OA;CIIO;CR;00299570-246d-11d0-a768-00aa006e0529;"));

    // Nothing changed: not the entry, not its security descriptor.
    CHECK(admin_snapshot(lab(), alice_dn(), "nTSecurityDescriptor") == before);

    // The verdict is the DC's: a real reset by this account is refused.
    // "Alice-Refused-Passw0rd-6", quoted, UTF-16LE, base64.
    std::string output;
    CHECK(reset_alice_as_undelegated(
              dir.path(),
              "IgBBAGwAaQBjAGUALQBSAGUAZgB1AHMAZQBkAC0AUABhAHMAcwB3ADAAcgBkAC0ANgAiAA==", output) !=
          0);
    CHECK(output.find("Insufficient access (50)") != std::string::npos);

    // The printed samba-tool command, run on the DC as it says, grants the right: the next
    // doctor run finds it (and the reset right only: the two attributes stay missing).
    REQUIRE(run_shell(samba_tool + " -H " + shell_quote(lab()["LAB_DIR"] + "/private/sam.ldb") +
                      " -s " + shell_quote(lab()["LAB_DIR"] + "/etc/smb.conf") + " >" +
                      shell_quote((dir / "dsacl.log").string()) + " 2>&1") == 0);
    const doctor_run again =
        run_doctor(dir.path(), "-c " + shell_quote(config.string()) + " --user alice");
    INFO(again.out);
    CHECK(again.exit_code == 1);
    CHECK(again.out.find("ok       reset_right: granted") != std::string::npos);
    CHECK(again.out.find("summary: 2 problems") != std::string::npos);

    // And "granted" is true: the same reset now goes through, and alice binds with it.
    // "Alice-Granted-Passw0rd-7", quoted, UTF-16LE, base64.
    CHECK(reset_alice_as_undelegated(
              dir.path(),
              "IgBBAGwAaQBjAGUALQBHAHIAYQBuAHQAZQBkAC0AUABhAHMAcwB3ADAAcgBkAC0ANwAiAA==", output) ==
          0);
    write_file(dir / "alice-password", "Alice-Granted-Passw0rd-7");
    CHECK(run_shell(ldap_tool("ldapsearch") + " -D " + shell_quote(alice_dn()) + " -y " +
                    shell_quote((dir / "alice-password").string()) + " -s base -b " +
                    shell_quote(alice_dn()) + " dn >/dev/null 2>&1") == 0);
}
