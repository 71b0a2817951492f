#!/usr/bin/env bash
# gate0: the module and playbook tests on several PostgreSQL majors, each against its own lab.
#
#   tests/matrix.sh [--skip-default] [--focus FILE] [MAJOR...]   (default: every major in
#                                                                 lab/pg-majors.txt)
#
# Majors run one after the other (the machine has 2 cores). The default major (Debian's server) runs
# the whole suite on the default lab; every other major runs, with GATE0_PG=MAJOR, against its own
# lab (lab/pg.sh: binaries installed when missing, .cache/lab/pgMAJOR, GATE0_LAB_PORT + offset),
# which the tests' lab fixture starts and stops. --focus FILE (pytest arguments, one a line) narrows
# what the other majors run; without it: the whole suite. They never run the lab test's second lab
# (its port, the major's port + 1, is the next major's). Each pytest run is bounded by MATRIX_TIMEOUT
# seconds (default 1800).
# Prints one summary line per major and a closing "matrix: N passed, N failed" line; exits non-zero
# when any major fails. Full pytest output per major: .cache/matrix/pgMAJOR.log.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1
PYTEST=pytest
[ -x .venv/bin/pytest ] && PYTEST=.venv/bin/pytest
LOGS=$REPO/.cache/matrix
mkdir -p "$LOGS"
TIMEOUT=${MATRIX_TIMEOUT:-1800}
SECOND_LAB=tests/test_lab.py::test_second_lab_from_nothing_idempotent_and_down

skip_default=false focus=()
while [ $# -gt 0 ]; do
    case "$1" in
        --skip-default) skip_default=true; shift ;;
        --focus) mapfile -t focus < <(grep -v -e '^#' -e '^[[:space:]]*$' "$2") || exit 2; shift 2 ;;
        *) break ;;
    esac
done
majors=("$@")
[ ${#majors[@]} -gt 0 ] || mapfile -t majors < <(lab/pg.sh majors)
default=$(lab/pg.sh default)

count() { # log kind -> the number pytest's closing line gives for that kind (0 when absent)
    local n
    n=$(tail -n 1 "$1" | grep -oE "[0-9]+ $2" | grep -oE '^[0-9]+' || true)
    echo "${n:-0}"
}

total_pass=0 total_fail=0 total_skip=0 failed_majors=() ran=0 t_all=$(date +%s)
for m in "${majors[@]}"; do
    log=$LOGS/pg$m.log
    args=()
    if [ "$m" = "$default" ]; then
        $skip_default && continue
        env=(env -u GATE0_PG)
    else
        env=(env GATE0_PG="$m")
        args=(--deselect "$SECOND_LAB" "${focus[@]}")
        # Install (when missing) before the clock starts: the figure is the tests' time.
        lab/pg.sh bin "$m" >/dev/null || { failed_majors+=("$m"); echo "matrix: PostgreSQL $m: no binaries"; continue; }
    fi
    version=$("${env[@]}" bash -c 'eval "$(lab/pg.sh env "${GATE0_PG:-$(lab/pg.sh default)}")"; "$GATE0_PG_BIN/postgres" --version' 2>/dev/null |
              grep -oE '[0-9]+(\.[0-9]+)+' | head -n 1)
    t0=$(date +%s) ran=$((ran + 1))
    "${env[@]}" timeout -k 30 "$TIMEOUT" "$PYTEST" -q -p no:cacheprovider "${args[@]}" > "$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - t0 ))
    pass=$(count "$log" passed) fail=$(( $(count "$log" failed) + $(count "$log" error) ))
    skip=$(count "$log" skipped)
    total_pass=$((total_pass + pass)) total_fail=$((total_fail + fail)) total_skip=$((total_skip + skip))
    if [ "$rc" = 0 ] && [ "$pass" -gt 0 ]; then
        verdict=ok
    else
        verdict="FAILED (pytest exit $rc)"
        [ "$rc" = 124 ] && verdict="FAILED (timed out after ${TIMEOUT}s)"
        failed_majors+=("$m")
        grep -E '^(FAILED|ERROR) ' "$log" | head -n 20 | sed 's/^/    /'
    fi
    echo "matrix: PostgreSQL $m (${version:-?}): $pass passed, $fail failed, $skip skipped in ${secs}s: $verdict"
done

echo "matrix: $ran majors in $(( $(date +%s) - t_all ))s; logs in ${LOGS#"$REPO"/}/"
if [ ${#failed_majors[@]} -gt 0 ]; then
    echo "matrix: failed on PostgreSQL ${failed_majors[*]}"
fi
echo "matrix: $total_pass passed, $total_fail failed, $total_skip skipped"
[ ${#failed_majors[@]} -eq 0 ]
