#!/usr/bin/env bash
# A private Samba AD domain controller (EXAMPLE.TEST, LDAPS + StartTLS) on loopback, in one
# folder, with a least-privilege service account.
#
#   tests/lab/samba.sh start DIR   provision and start it; writes DIR/lab.env (KEY=value)
#   tests/lab/samba.sh stop DIR    stop it (never fails when already stopped)
#
# Samba's ports (389/636/3268/3269) are fixed, so `start` refuses to run in the host's
# network namespace: wrap the caller with tests/lab/in-netns.sh.
#
# DIR/lab.env: LAB_DIR LAB_LDAP_URI LAB_LDAPS_URI LAB_CA LAB_BASE LAB_USER_BASE LAB_SVC_DN
# LAB_SVC_PASSWORD_FILE LAB_ADMIN_DN LAB_ADMIN_PASSWORD_FILE LAB_PROTECTED_GROUP LAB_PID, and
# LAB_UNDELEGATED_DN LAB_UNDELEGATED_PASSWORD_FILE (a service account without delegation),
# LAB_PASSWORD_DIR (one file per demo user), LAB_START_SECONDS.
#
# Users in OU=people (passwords fixed, in DIR/passwords/NAME): alice bob carol frank, dave
# (disabled), erin (in helpdesk-admins, itself in tier0: nested). frank has adminCount=1.
# gina is a direct member of mfa-two (OU=people; for two_methods_groups tests).
# Policy: history 5, min length 10, complexity on, min age 0, lockout after 3 bad binds.
# svc-pwreset (OU=services) is not an administrator: it gets the Reset Password extended
# right and write on lockoutTime and pwdLastSet, inherited by user objects of OU=people.
# Facts this relies on: docs/LAB.md (Samba section).
set -euo pipefail

readonly BASE="DC=example,DC=test"
readonly PEOPLE="OU=people,${BASE}"
readonly SERVICES="OU=services,${BASE}"
readonly SVC_DN="CN=svc-pwreset,${SERVICES}"
readonly UNDELEGATED_DN="CN=svc-undelegated,${SERVICES}"
readonly ADMIN_DN="CN=Administrator,CN=Users,${BASE}"
readonly PROTECTED_GROUP="CN=tier0,${PEOPLE}"

# Schema GUIDs (MS-ADTS / MS-ADA): the Reset Password control access right
# (User-Force-Change-Password), the lockoutTime and pwdLastSet attributes, the user class.
readonly RIGHT_RESET_PASSWORD="00299570-246d-11d0-a768-00aa006e0529"
readonly ATTR_LOCKOUT_TIME="28630ebf-41d5-11d1-a9c1-0000f80367c1"
readonly ATTR_PWD_LAST_SET="bf967a0a-0de6-11d0-a285-00aa003049e2"
readonly CLASS_USER="bf967aba-0de6-11d0-a285-00aa003049e2"

readonly LAB_NAME="samba.sh"
readonly LAB_PID_FILE="samba.pid"
readonly LAB_COMM="^samba"
readonly LAB_PACKAGES="samba-ad-dc samba-ad-provision ldap-utils openssl"
# shellcheck source=tests/lab/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# True when this shell runs in a network namespace other than the host's. /proc/1/ns/net
# is the host's; where it is unreadable (no CAP_SYS_PTRACE), in-netns.sh passes the id
# of the namespace it was started from.
in_private_netns() {
    local self host
    self=$(readlink /proc/self/ns/net 2>/dev/null) || return 1
    host=$(readlink /proc/1/ns/net 2>/dev/null) || host=${PWRESETD_HOST_NETNS:-}
    [[ -n "${host}" && "${self}" != "${host}" ]]
}

# A random password that meets AD complexity (upper, lower, digit, other).
complex_password_file() {
    random_password_file "$1" -X
}

make_certificates() {
    local dir=$1 tls="$1/private/tls"
    mkdir -p "${tls}"
    lab_certificates "${dir}" "${tls}/ca.pem" "${tls}/key.pem" "${tls}/cert.pem" \
        "pwresetd Samba lab CA" dc1.example.test "IP:127.0.0.1,DNS:dc1.example.test"
}

provision() {
    local dir=$1
    # Every path inside DIR (LAB.md); -s /dev/null so /etc/samba/smb.conf is not copied.
    samba-tool domain provision -s /dev/null --realm=EXAMPLE.TEST --domain=EXAMPLE \
        --server-role=dc --dns-backend=NONE --host-name=dc1 --host-ip=127.0.0.1 \
        --adminpass="$(cat "${dir}/admin-password")" --targetdir="${dir}" \
        --option="interfaces = 127.0.0.1" --option="bind interfaces only = yes" \
        --option="pid directory = ${dir}/run" --option="ncalrpc dir = ${dir}/run/ncalrpc" \
        --option="winbindd socket directory = ${dir}/run/winbindd" \
        --option="ntp signd socket directory = ${dir}/run/ntp_signd" \
        --option="usershare path = ${dir}/usershares" --option="log file = ${dir}/log.%m" \
        --option="panic action = " --option="ldb:nosync = true" \
        >"${dir}/provision.log" 2>&1 || die "provision failed: $(tail -n 20 "${dir}/provision.log")"
    # provision does not write every --option it is given: add the ones the tests need.
    # `old password allowed period = 0`: after a reset the old password must stop working
    # at once (the default keeps it valid for 60 minutes, LAB.md).
    sed -i -e '/^\[global\]/a\	old password allowed period = 0\n	ldb:nosync = true\n	server services = ldap' \
        "${dir}/etc/smb.conf"
    grep -q 'old password allowed period = 0' "${dir}/etc/smb.conf" ||
        die "could not set 'old password allowed period' in ${dir}/etc/smb.conf"
}

# Provisions DIR, or copies a provisioned template when PWRESETD_SAMBA_TEMPLATE_CACHE names
# a folder (opt-in: provisioning is most of the start time, ~5-9 s here, a copy ~0.2 s).
# The template is keyed by the Samba version and this script, made once (atomically, so
# parallel runs are safe), and holds only what provision writes, before any user exists;
# every lab still gets its own users, random passwords, certificates and delegation.
provision_or_copy() {
    local dir=$1 cache=${PWRESETD_SAMBA_TEMPLATE_CACHE:-}
    if [[ -z "${cache}" ]]; then
        complex_password_file "${dir}/admin-password"
        provision "${dir}"
        return
    fi
    mkdir -p "${cache}" || die "cannot create ${cache}"
    local key template tmp
    key=$({ samba --version; cat "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-16)
    template="${cache}/samba-${key}"
    if [[ ! -f "${template}/.complete" ]]; then
        tmp=$(mktemp -d "${cache}/.samba-${key}.XXXXXX")
        complex_password_file "${tmp}/admin-password"
        provision "${tmp}"
        printf '%s' "${tmp}" >"${tmp}/.provisioned-path"
        touch "${tmp}/.complete"
        mv -T "${tmp}" "${template}" 2>/dev/null || rm -rf "${tmp}"  # another run won
    fi
    cp -a "${template}/." "${dir}/"
    rm -f "${dir}/.complete"
    # The only absolute paths are in smb.conf (sam.ldb refers to its partitions relatively).
    local from conf
    from=$(cat "${dir}/.provisioned-path")
    conf=$(cat "${dir}/etc/smb.conf")
    printf '%s\n' "${conf//"${from}"/"${dir}"}" >"${dir}/etc/smb.conf"
    ! grep -qF "${from}" "${dir}/etc/smb.conf" || die "could not rewrite paths in smb.conf"
}

# Offline (before the first start), as the system: OUs, users, groups. Passwords are read
# from files, never from a command line. Prints the service account's SID.
populate() {
    local dir=$1
    /usr/bin/python3 - "${dir}" <<'EOF'
import sys
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB
from samba.ndr import ndr_unpack
from samba.dcerpc import security

d = sys.argv[1]
lp = LoadParm()
lp.load(d + "/etc/smb.conf")
db = SamDB(url=d + "/private/sam.ldb", session_info=system_session(), lp=lp)
base = str(db.domain_dn())
people = "OU=people," + base
services = "OU=services," + base
GLOBAL_SECURITY = str(-2147483646)  # GROUP_TYPE_ACCOUNT_GROUP | GROUP_TYPE_SECURITY_ENABLED
NORMAL, DISABLED = "512", "514"     # UF_NORMAL_ACCOUNT (| UF_ACCOUNTDISABLE)

def pw(path):
    with open(path, encoding="utf-8") as f:
        # MS-ADTS 3.1.1.3.1.5: the quoted password, UTF-16LE
        return ('"' + f.read() + '"').encode("utf-16-le")

db.transaction_start()
try:
    for ou in (people, services):
        db.add({"dn": ou, "objectClass": "organizationalUnit"})

    def user(parent, name, password_file, uac=NORMAL, **extra):
        msg = {"dn": "CN=%s,%s" % (name, parent), "objectClass": "user",
               "sAMAccountName": name, "userPrincipalName": name + "@example.test",
               "unicodePwd": pw(password_file), "userAccountControl": uac}
        msg.update(extra)
        db.add(msg)
        return msg["dn"]

    svc = user(services, "svc-pwreset", d + "/svc-password", description="pwresetd service account")
    user(services, "svc-undelegated", d + "/undelegated-password",
         description="a service account without delegation (tests)")
    p = d + "/passwords/"
    user(people, "alice", p + "alice", mail="alice@example.test", mobile="+46701234567",
         displayName="Alice Andersson", givenName="Alice", sn="Andersson")
    user(people, "bob", p + "bob", mail="bob@example.test", displayName="Bob Berg",
         givenName="Bob", sn="Berg")
    user(people, "carol", p + "carol", mail="carol@example.test", mobile="+46701234569",
         displayName="Carol Carlsson")
    user(people, "dave", p + "dave", uac=DISABLED, mail="dave@example.test",
         displayName="Dave Dahl")
    erin = user(people, "erin", p + "erin", mail="erin@example.test", displayName="Erin Ek")
    user(people, "frank", p + "frank", mail="frank@example.test", displayName="Frank Falk",
         adminCount="1")
    gina = user(people, "gina", p + "gina", mail="gina@example.test", displayName="Gina Grahn")
    helpdesk = "CN=helpdesk-admins," + people
    db.add({"dn": helpdesk, "objectClass": "group", "groupType": GLOBAL_SECURITY,
            "sAMAccountName": "helpdesk-admins", "member": erin})
    db.add({"dn": "CN=tier0," + people, "objectClass": "group", "groupType": GLOBAL_SECURITY,
            "sAMAccountName": "tier0", "member": helpdesk})
    db.add({"dn": "CN=mfa-two," + people, "objectClass": "group", "groupType": GLOBAL_SECURITY,
            "sAMAccountName": "mfa-two", "member": gina})
except Exception:
    db.transaction_cancel()
    raise
db.transaction_commit()

res = db.search(base=svc, scope=0, attrs=["objectSid"])
print(ndr_unpack(security.dom_sid, res[0]["objectSid"][0]))
EOF
}

# Polls until an LDAPS search of the RootDSE answers, ~20 s at most.
wait_ready() {
    local dir=$1 pid=$2 i
    for ((i = 0; i < 200; i++)); do
        if env -u LDAPNOINIT LDAPTLS_CACERT="${dir}/private/tls/ca.pem" LDAPTLS_REQCERT=demand \
            ldapsearch -x -H ldaps://127.0.0.1 -b "" -s base -o nettimeout=2 \
            defaultNamingContext >/dev/null 2>&1; then
            return 0
        fi
        alive "${pid}" || return 1
        sleep 0.1
    done
    return 1
}

# ldapsearch/ldapmodify as Administrator over LDAPS (password from its file).
admin_ldap() {
    local dir=$1 tool=$2
    shift 2
    env -u LDAPNOINIT LDAPTLS_CACERT="${dir}/private/tls/ca.pem" LDAPTLS_REQCERT=demand \
        "${tool}" -x -H ldaps://127.0.0.1 -D "${ADMIN_DN}" -y "${dir}/admin-password" "$@"
}

cmd_start() {
    local dir=$1
    local t0=${EPOCHREALTIME}
    in_private_netns || die "refusing to start: Samba's ports are fixed, run me in a private" \
        "network namespace (tests/lab/in-netns.sh $0 start DIR)"
    export PATH="${PATH}:/usr/sbin:/sbin"
    need samba samba-tool ldapsearch ldapmodify openssl setsid
    [[ -x /usr/bin/python3 ]] || die "/usr/bin/python3 missing"
    if ss -Hltn 2>/dev/null | grep -qE ':(389|636)\b'; then
        die "something already listens on port 389 or 636 in this namespace"
    fi
    mkdir -p "${dir}" || die "cannot create ${dir}"
    dir=$(cd "${dir}" && pwd)
    cmd_stop "${dir}"
    start_guard "${dir}"
    # Lab only: no fsync for Samba's tdb/ldb files (provision is disk-bound otherwise).
    export TDB_NO_FSYNC=1

    # Only ever empty a folder this script made (or an empty one).
    if [[ -n "$(ls -A "${dir}")" && ! -f "${dir}/.pwresetd-samba-lab" ]]; then
        die "${dir} is not empty and not a Samba lab folder"
    fi
    find "${dir}" -mindepth 1 -delete
    touch "${dir}/.pwresetd-samba-lab"
    (umask 077 && mkdir -p "${dir}/passwords" "${dir}/run")

    complex_password_file "${dir}/svc-password"
    complex_password_file "${dir}/undelegated-password"
    local name
    for name in alice bob carol dave erin frank gina; do
        fixed_password_file "${dir}/passwords/${name}" "${name^}-Old-Passw0rd!"
    done

    provision_or_copy "${dir}"
    local t_provision=${EPOCHREALTIME}
    make_certificates "${dir}" || die "openssl failed: $(cat "${dir}/openssl.log")"

    local svc_sid
    svc_sid=$(populate "${dir}" 2>"${dir}/populate.log") ||
        die "populating the directory failed: $(tail -n 20 "${dir}/populate.log")"
    [[ "${svc_sid}" == S-1-5-21-* ]] || die "no SID for svc-pwreset: ${svc_sid}"

    # Least-privilege delegation on OU=people, inherited by user objects only (CIIO + the
    # user class as inherited object type): Reset Password, write lockoutTime (unlock),
    # write pwdLastSet (must change at next logon). Reading users is allowed to
    # Authenticated Users by default; the Change Password right (for delete+add of
    # unicodePwd with the old password) is granted to Everyone by the user class default.
    local aces="(OA;CIIO;CR;${RIGHT_RESET_PASSWORD};${CLASS_USER};${svc_sid})"
    aces+="(OA;CIIO;WP;${ATTR_LOCKOUT_TIME};${CLASS_USER};${svc_sid})"
    aces+="(OA;CIIO;WP;${ATTR_PWD_LAST_SET};${CLASS_USER};${svc_sid})"
    samba-tool dsacl set -H "${dir}/private/sam.ldb" -s "${dir}/etc/smb.conf" \
        --objectdn="${PEOPLE}" --sddl="${aces}" >"${dir}/dsacl.log" 2>&1 ||
        die "samba-tool dsacl set failed: $(cat "${dir}/dsacl.log")"

    samba-tool domain passwordsettings set -H "${dir}/private/sam.ldb" -s "${dir}/etc/smb.conf" \
        --history-length=5 --min-pwd-length=10 --complexity=on --min-pwd-age=0 \
        --account-lockout-threshold=3 --account-lockout-duration=30 \
        --reset-account-lockout-after=30 >"${dir}/passwordsettings.log" 2>&1 ||
        die "samba-tool domain passwordsettings set failed: $(cat "${dir}/passwordsettings.log")"
    local t_setup=${EPOCHREALTIME}

    # One process (-M single), LDAP only, in its own session so a test's terminal signals
    # do not reach it; the pid is the samba process itself (no fork without job control).
    setsid samba -F --debug-stdout -M single -s "${dir}/etc/smb.conf" \
        --option='server services = ldap' </dev/null >"${dir}/samba.log" 2>&1 &
    local pid=$!
    echo "${pid}" >"${dir}/samba.pid"
    wait_ready "${dir}" "${pid}" ||
        die "samba (pid ${pid}) did not answer on ldaps://127.0.0.1 within 20 s: $(tail -n 20 "${dir}/samba.log")"
    local t_ready=${EPOCHREALTIME}

    # The delegation is inherited by the existing users (Samba propagates the OU's new
    # inheritable ACEs): check on alice, so a silent failure here is a lab error.
    admin_ldap "${dir}" ldapsearch -LLL -o ldif-wrap=no -s base -b "CN=alice,${PEOPLE}" \
        nTSecurityDescriptor >"${dir}/alice-sd.ldif" 2>&1 ||
        die "reading alice's security descriptor failed: $(cat "${dir}/alice-sd.ldif")"
    /usr/bin/python3 - "${dir}/alice-sd.ldif" >"${dir}/alice-sd.sddl" <<'EOF'
import base64, sys
from samba.dcerpc import security
from samba.ndr import ndr_unpack
for line in open(sys.argv[1]):
    if line.startswith("nTSecurityDescriptor:: "):
        raw = base64.b64decode(line.split(":: ", 1)[1])
        print(ndr_unpack(security.descriptor, raw).as_sddl())
EOF
    grep -qF "(OA;CIID;CR;${RIGHT_RESET_PASSWORD};${CLASS_USER};${svc_sid})" "${dir}/alice-sd.sddl" ||
        die "alice did not inherit the Reset Password delegation (see ${dir}/alice-sd.sddl)"

    local total
    total=$(awk -v a="${t0}" -v b="${t_ready}" 'BEGIN { printf "%.1f", b - a }')
    cat >"${dir}/lab.env.tmp" <<EOF
LAB_DIR=${dir}
LAB_LDAP_URI=ldap://127.0.0.1
LAB_LDAPS_URI=ldaps://127.0.0.1
LAB_CA=${dir}/private/tls/ca.pem
LAB_BASE=${BASE}
LAB_USER_BASE=${PEOPLE}
LAB_SVC_DN=${SVC_DN}
LAB_SVC_SID=${svc_sid}
LAB_SVC_PASSWORD_FILE=${dir}/svc-password
LAB_UNDELEGATED_DN=${UNDELEGATED_DN}
LAB_UNDELEGATED_PASSWORD_FILE=${dir}/undelegated-password
LAB_ADMIN_DN=${ADMIN_DN}
LAB_ADMIN_PASSWORD_FILE=${dir}/admin-password
LAB_PROTECTED_GROUP=${PROTECTED_GROUP}
LAB_PASSWORD_DIR=${dir}/passwords
LAB_START_SECONDS=${total}
LAB_PID=${pid}
EOF
    mv "${dir}/lab.env.tmp" "${dir}/lab.env"
    START_OK=1
    awk -v a="${t0}" -v p="${t_provision}" -v s="${t_setup}" -v r="${t_ready}" -v pid="${pid}" \
        -v env="${dir}/lab.env" 'BEGIN {
            printf "samba.sh: samba pid %s on ldaps://127.0.0.1 ldap://127.0.0.1 (%s): " \
                   "provision %.1f s, users+delegation+policy %.1f s, start %.1f s, total %.1f s\n",
                   pid, env, p - a, s - p, r - s, r - a }' >&2
}

lab_main "$@"
