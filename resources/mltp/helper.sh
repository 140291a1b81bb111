#!/bin/sh
# Runs one verb of the mltp helper for the Jenkins steps, which load this file
# with libraryResource and run it with constant shell text: values arrive only
# in the environment, never in the script, so nothing is quoted or injected.
#
# Reads:
#   MLTP_VERB        one of the verbs below (anything else: exit 2)
#   MLTP             the helper's path (written by install.sh)
#   MLTP_REPO        the model repo (the workspace)
#   MLTP_ERROR_FILE  where the helper writes a failure's one-line reason;
#                    removed first, so an old reason is never read again
#   MLTP_INFO_FILE   validate and fetch-model: the key=value facts the step reads
# Every other option travels as MLTP_* variables that the helper reads itself.
set -u

verb=${MLTP_VERB:-}
case $verb in
    validate | sync | deploy | publish | start | wait | stop | run | resume | prune | trigger-install | \
        models | approve | reject | fetch-model) ;;
    *)
        printf 'mltp: helper.sh: unknown verb "%s" (validate, sync, deploy, publish, start, wait, stop, run, resume, prune, trigger-install, models, approve, reject, fetch-model)\n' "$verb" >&2
        exit 2
        ;;
esac
: "${MLTP:?the helper path MLTP is not set}" "${MLTP_REPO:?the model repo MLTP_REPO is not set}"
if [ -n "${MLTP_ERROR_FILE:-}" ]; then
    rm -f -- "$MLTP_ERROR_FILE" || exit 1
fi
case $verb in
    validate | fetch-model)
        if [ -n "${MLTP_INFO_FILE:-}" ]; then
            rm -f -- "$MLTP_INFO_FILE" || exit 1
        fi
        exec "$MLTP" "$verb" "$MLTP_REPO"
        ;;
    run) exec "$MLTP" run --local "$MLTP_REPO" ;;
    prune) exec "$MLTP" prune --yes "$MLTP_REPO" ;;
    trigger-install) exec "$MLTP" trigger install "$MLTP_REPO" ;;
    *) exec "$MLTP" "$verb" "$MLTP_REPO" ;;
esac
