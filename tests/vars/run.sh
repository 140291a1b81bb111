#!/usr/bin/env bash
# Runs the Groovy unit tests of vars/ with Groovy 2.4 (the version Jenkins runs
# pipelines with). Usage: bash tests/vars/run.sh [test-name-filter | -excluded-name-part]
# Last line of output: "N passed, N failed". Exit status non-zero on any failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if ! command -v groovy > /dev/null 2>&1; then
    echo "groovy not found: install it (Debian/Ubuntu: apt-get install -y groovy)" >&2
    echo "0 passed, 1 failed"
    exit 2
fi

# Groovy 2.4 runs on Java 8..17; prefer those over a newer JDK.
if [ -z "${JAVA_HOME:-}" ] || [ ! -x "${JAVA_HOME}/bin/java" ]; then
    JAVA_HOME=
    for candidate in /usr/lib/jvm/java-17-openjdk* /usr/lib/jvm/java-1.17* /usr/lib/jvm/temurin-17* \
                     /usr/lib/jvm/java-11-openjdk* /usr/lib/jvm/java-1.11* /usr/lib/jvm/temurin-11* \
                     /usr/lib/jvm/java-8-openjdk* /usr/lib/jvm/java-1.8* /usr/lib/jvm/*; do
        if [ -x "$candidate/bin/java" ]; then
            JAVA_HOME=$candidate
            break
        fi
    done
    if [ -z "$JAVA_HOME" ]; then
        echo "no JDK found under /usr/lib/jvm; set JAVA_HOME" >&2
        echo "0 passed, 1 failed"
        exit 2
    fi
    export JAVA_HOME
fi

cd "$root" || exit 2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
groovy -cp "$here/lib" "$here/run.groovy" "$root" "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
# If Groovy died before the summary (a compile error, say), still end with one.
if ! tail -n 1 "$out" | grep -Eq '^[0-9]+ passed, [0-9]+ failed$'; then
    echo "0 passed, 1 failed"
    [ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
