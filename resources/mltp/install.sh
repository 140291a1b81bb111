#!/bin/sh
# Installs the mltp helper into a virtualenv cached on the agent; the Jenkins
# steps run it (libraryResource 'mltp/install.sh') and tests/helper/test_install_sh.py
# runs it with a real sh.
#
# The cache entry is keyed by what gets installed (the wheel and the lock, or the
# pip spec) and by the interpreter, so a second build on the agent installs
# nothing. A build happens in a fresh folder and is published with one `ln -s`,
# which is atomic: of two concurrent builds one wins and the other uses its entry.
# A cached entry is verified before use (verify-helper.py: the helper's files
# against the wheel's RECORD hashes, and the interpreter's start-up hooks); an
# entry that fails is removed and rebuilt, and the log says why.
#
# Reads:
#   MLTP_INSTALL_PYTHON        the agent's interpreter (Python 3.9+)
#   MLTP_INSTALL_WHEEL and MLTP_INSTALL_REQUIREMENTS   the bundled wheel and the
#                              hash-pinned lock of the mode, or
#   MLTP_INSTALL_PIP_SPEC      a pip requirement to install from a package index
#   MLTP_INSTALL_OUT           where to write the helper's path
#   MLTP_ERROR_FILE            where a failure's one-line reason goes
#   MLTP_CACHE_DIR             optional; default $XDG_CACHE_HOME/mltp or ~/.cache/mltp
#   MLTP_INSTALL_VERIFIER      optional; default verify-helper.py beside this script
# Exit status: 0, or 2 with the reason in MLTP_ERROR_FILE.
set -u

: "${MLTP_ERROR_FILE:=/dev/null}"
build=

fail() {
    printf '%s\n' "$1" > "$MLTP_ERROR_FILE"
    printf 'mltp install: %s\n' "$1" >&2
    if [ -n "$build" ]; then
        rm -rf -- "$build"
    fi
    exit 2
}

[ -n "${MLTP_INSTALL_OUT:-}" ] || fail "MLTP_INSTALL_OUT is not set"
rm -f -- "$MLTP_INSTALL_OUT" || exit 2
if [ "$MLTP_ERROR_FILE" != /dev/null ]; then
    rm -f -- "$MLTP_ERROR_FILE" || exit 2
fi
here=$(cd "$(dirname "$0")" && pwd) || fail "cannot find the folder of $0"
verifier=${MLTP_INSTALL_VERIFIER:-$here/verify-helper.py}
spec=${MLTP_INSTALL_PIP_SPEC:-}
wheel=${MLTP_INSTALL_WHEEL:-}
lock=${MLTP_INSTALL_REQUIREMENTS:-}
py=${MLTP_INSTALL_PYTHON:-python3}

# --------------------------------------------------------------- the interpreter
command -v "$py" > /dev/null 2>&1 ||
    fail "Python interpreter '$py' not found on this agent (the python option; Python 3.9+ is needed)"
# One start of the interpreter each for its version, the cache key and the
# verification: a cached helper costs a build well under a second.
version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2> /dev/null) ||
    fail "'$py' does not run as a Python interpreter (the python option)"
case $version in
    3.9 | 3.[1-9][0-9] | [4-9].*) ;;
    *) fail "'$py' is Python $version; the mltp helper needs Python 3.9 or newer (the python option)" ;;
esac
if [ -n "$spec" ]; then
    set -- spec "$spec"
else
    [ -f "$wheel" ] || fail "the helper wheel '$wheel' does not exist"
    [ -f "$lock" ] || fail "the helper's requirements '$lock' do not exist"
    [ -f "$verifier" ] || fail "the cache verifier '$verifier' does not exist"
    set -- file "$wheel" file "$lock"
fi

# --------------------------------------------------------------- the cache entry
key=$("$py" -I -c '
import hashlib, os, sys
h = hashlib.sha256()
h.update(os.path.realpath(sys.executable).encode() + b"|" + sys.version.encode() + b"|")
args = sys.argv[1:]
for i in range(0, len(args), 2):
    kind, value = args[i], args[i + 1]
    if kind == "file":
        with open(value, "rb") as handle:
            value = handle.read()
    else:
        value = value.encode()
    h.update(kind.encode() + b"|" + hashlib.sha256(value).hexdigest().encode() + b"|")
print(h.hexdigest()[:24])
' "$@") || fail "could not compute the helper's cache key"
cache=${MLTP_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/mltp}
venv=$cache/venv-$key

# Checks an installed entry. Prints the reason and returns non-zero when it is
# not the helper it claims to be.
verify() {
    if [ ! -x "$1/bin/mltp" ]; then
        echo "it has no bin/mltp"
        return 1
    fi
    if [ -n "$spec" ]; then
        "$py" -I "$verifier" "$1" 2>&1
    else
        "$py" -I "$verifier" "$1" "$wheel" 2>&1
    fi
}

# Takes a bad entry out of use: the link first (atomic), then its folder.
discard() {
    target=$(readlink "$venv" 2> /dev/null) || target=
    rm -f -- "$venv"
    case $target in
        "$cache"/build-*) rm -rf -- "$target" ;;
    esac
}

if [ -L "$venv" ] || [ -e "$venv" ]; then
    if problem=$(verify "$venv"); then
        echo "mltp helper: cached in $venv (verified)"
        printf '%s\n' "$venv/bin/mltp" > "$MLTP_INSTALL_OUT" || fail "cannot write $MLTP_INSTALL_OUT"
        exit 0
    fi
    echo "mltp helper: the cached helper in $venv failed verification ($problem); removing it and installing again"
    discard
fi

# --------------------------------------------------------------- a fresh build
"$py" -c 'import venv, ensurepip' > /dev/null 2>&1 ||
    fail "'$py' (Python $version) cannot create virtualenvs: its venv/ensurepip module is missing (on Debian/Ubuntu: apt-get install python3-venv, or python$version-venv)"
mkdir -p -- "$cache" || fail "cannot create the helper cache directory $cache"
# Builds left behind by a killed build (the agent lost, say) are older than a day.
find "$cache" -maxdepth 1 -name 'build-*' -mmin +1440 -exec rm -rf {} + 2> /dev/null
build=$(mktemp -d "$cache/build-$key.XXXXXX") || fail "cannot create a directory in $cache"
chmod 755 "$build"
echo "mltp helper: installing into $build (Python $version)"
vpip() {
    "$build/bin/python" -m pip --disable-pip-version-check --no-input --quiet "$@"
}
"$py" -m venv "$build" || fail "could not create a virtualenv with '$py' (on Debian/Ubuntu: apt-get install python3-venv)"
if [ -n "$spec" ]; then
    vpip install "$spec" || fail "pip could not install '$spec' (can the agent reach a package index?)"
else
    if grep -q '^[^#[:space:]]' "$lock"; then
        vpip install --require-hashes -r "$lock" ||
            fail "pip could not install the helper's pinned requirements (can the agent reach a package index? or set helperCommand)"
    fi
    vpip install --no-deps "$wheel" || fail "pip could not install the bundled helper wheel"
fi
problem=$(verify "$build") || fail "the freshly installed helper does not verify: $problem"
if ln -sn "$build" "$venv" 2> /dev/null; then
    echo "mltp helper: installed in $venv"
else
    rm -rf -- "$build"
    build=
    problem=$(verify "$venv") || fail "cannot publish the helper virtualenv at $venv: $problem"
    echo "mltp helper: another build installed it first: $venv"
fi
printf '%s\n' "$venv/bin/mltp" > "$MLTP_INSTALL_OUT" || fail "cannot write $MLTP_INSTALL_OUT"
