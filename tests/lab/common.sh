# shellcheck shell=bash
# What every lab script of tests/lab/ shares: messages, the start|stop command line, finding
# and stopping the server by its pid, passwords in 0600 files, a throwaway CA and server
# certificate, and the clean-up of a start that failed. Sourced, never run; the script sets
# first:
#   LAB_NAME       its name in messages ("openldap.sh")
#   LAB_PID_FILE   the server's pid file, relative to the lab folder ("slapd.pid")
#   LAB_COMM       an extended regex /proc/PID/comm of the server matches ("slapd")
#   LAB_PACKAGES   the Debian packages to name when a tool is missing
# and defines cmd_start DIR. It ends with `lab_main "$@"`.

die() {
    echo "${LAB_NAME}: error: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}

# The server's pid from lab.env (or the pid file), empty when unknown.
lab_pid() {
    local dir=$1 pid=""
    if [[ -f "${dir}/lab.env" ]]; then
        pid=$(sed -n 's/^LAB_PID=//p' "${dir}/lab.env" | tail -n1)
    fi
    if [[ -z "${pid}" && -f "${dir}/${LAB_PID_FILE}" ]]; then
        pid=$(tr -d '[:space:]' <"${dir}/${LAB_PID_FILE}")
    fi
    echo "${pid}"
}

# True while the process exists and is not a zombie (a server may linger as Z after SIGTERM
# when PID 1 does not reap).
alive() {
    local pid=$1 state
    [[ -n "${pid}" && -r "/proc/${pid}/stat" ]] || return 1
    state=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/${pid}/stat" 2>/dev/null) || return 1
    [[ "${state}" != "Z" ]]
}

# SIGTERM, up to 10 s, then SIGKILL.
stop_pid() {
    local pid=$1 i
    alive "${pid}" || return 0
    # Only signal our server: a stale pid may have been reused by something else.
    grep -qE "${LAB_COMM}" "/proc/${pid}/comm" 2>/dev/null || return 0
    kill -TERM "${pid}" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive "${pid}" || return 0
        sleep 0.1
    done
    kill -KILL "${pid}" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
        alive "${pid}" || return 0
        sleep 0.1
    done
    echo "${LAB_NAME}: warning: pid ${pid} did not exit" >&2
}

cmd_stop() {
    local dir=$1
    [[ -d "${dir}" ]] || return 0
    stop_pid "$(lab_pid "${dir}")"
    rm -f "${dir}/lab.env" "${dir:?}/${LAB_PID_FILE}"
}

need() {
    local tool
    for tool in "$@"; do
        command -v "${tool}" >/dev/null 2>&1 || [[ -x "/usr/sbin/${tool}" ]] ||
            die "${tool} not found (install ${LAB_PACKAGES})"
    done
}

# FILE (mode 0600, no newline) gets a random password, with SUFFIX appended.
random_password_file() {
    local file=$1 suffix=${2:-}
    (umask 077 && printf '%s' "Lab-$(openssl rand -hex 12)${suffix}" >"${file}")
}

fixed_password_file() {
    local file=$1 value=$2
    (umask 077 && printf '%s' "${value}" >"${file}")
}

# lab_certificates DIR CA_CERT SERVER_KEY SERVER_CERT CA_CN SERVER_CN SAN
# A P-256 CA and a server certificate it signs (serverAuth, SAN as given), valid 30 days.
# The CA key, the CSR and openssl's messages (openssl.log) stay in DIR.
lab_certificates() {
    local dir=$1 ca=$2 key=$3 cert=$4 ca_cn=$5 server_cn=$6 san=$7
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "${dir}/ca.key" -out "${ca}" -days 30 -subj "/CN=${ca_cn}" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>"${dir}/openssl.log"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "${key}" -out "${dir}/server.csr" -subj "/CN=${server_cn}" \
        2>>"${dir}/openssl.log"
    printf '%s\n' "subjectAltName=${san}" "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
        >"${dir}/server.ext"
    openssl x509 -req -in "${dir}/server.csr" -CA "${ca}" -CAkey "${dir}/ca.key" \
        -CAcreateserial -days 30 -extfile "${dir}/server.ext" -out "${cert}" \
        2>>"${dir}/openssl.log"
    # Servers refuse a key file readable by others.
    chmod 600 "${dir}/ca.key" "${key}"
}

# cmd_start calls `start_guard DIR` once DIR is known, and sets START_OK=1 when the lab
# is up: a start that fails on the way stops the server and keeps the files to look at.
START_DIR=""
START_OK=0
on_start_exit() {
    local rc=$?
    if [[ ${START_OK} -eq 0 && -n "${START_DIR}" ]]; then
        stop_pid "$(lab_pid "${START_DIR}")"
        rm -f "${START_DIR}/lab.env"
        echo "${LAB_NAME}: start failed (exit ${rc}); files kept in ${START_DIR}" >&2
        [[ ${rc} -eq 0 ]] && exit 1
    fi
}
start_guard() {
    START_DIR=$1
    trap on_start_exit EXIT
}

lab_main() {
    [[ $# -eq 2 ]] || usage
    case "$1" in
    start) cmd_start "$2" ;;
    stop) cmd_stop "$2" ;;
    *) usage ;;
    esac
}
