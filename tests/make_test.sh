#!/usr/bin/env bash
# gate0: `make test` — every part runs, whatever failed before it; every failing part is named at the
# end; exit non-zero when any part failed.
#
#   tests/make_test.sh [PART...]     parts are Makefile targets (default: lint pytest test-matrix-others
#                                    test-directus)
#
# Each part is `make PART`; its own output goes to the terminal as it runs, then one line with its
# exit code and time. The closing line says which parts failed.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(lint pytest test-matrix-others test-directus)

describe() {
    case "$1" in
        lint) echo "lint (ruff, ansible-lint)" ;;
        pytest) echo "pytest (every test, the default lab)" ;;
        test-matrix-others) echo "the other PostgreSQL majors" ;;
        test-directus) echo "a real Directus 11.3.5 (installed once into .cache/directus)" ;;
        *) echo "$1" ;;
    esac
}

failed=() summary=() t_all=$(date +%s)
for part in "${parts[@]}"; do
    echo "gate0: make test: $(describe "$part") ..."
    t0=$(date +%s)
    ${MAKE:-make} --no-print-directory "$part"
    rc=$?
    secs=$(( $(date +%s) - t0 ))
    if [ "$rc" = 0 ]; then
        summary+=("$part ok (${secs}s)")
    else
        summary+=("$part FAILED, exit $rc (${secs}s)")
        failed+=("$part")
    fi
    echo "gate0: make test: $(describe "$part"): exit $rc in ${secs}s"
done

total=$(( $(date +%s) - t_all ))
echo "gate0: make test in ${total}s: ${summary[*]/%/;}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "gate0: make test FAILED: ${failed[*]}"
    exit 1
fi
echo "gate0: make test: every part passed"
