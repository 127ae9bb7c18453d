# Helpers shared by the bench/run_*_bench.sh scripts (sourced, not run). They expect
# QUIET_MAX, QUIET_TIMEOUT and NOISE_MAX to be set by the script.

log() { printf '%s\n' "$*" >&2; }

abspath() { if [[ -z $1 || $1 == /* ]]; then printf '%s' "$1"; else printf '%s' "$PWD/$1"; fi; }

# Cores busy machine-wide over 0.3 s (all CPU time but idle and iowait), e.g. "0.42".
machine_busy() {
    local a b c f g h t0 t1
    read -r _ a b c _ _ f g h _ < /proc/stat; t0=$((a + b + c + f + g + h))
    sleep 0.3
    read -r _ a b c _ _ f g h _ < /proc/stat; t1=$((a + b + c + f + g + h))
    awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", d / hz / 0.3 }'
}

# Waits (at most QUIET_TIMEOUT s) until at most QUIET_MAX cores are busy, so a round does not
# start on top of another tenant's burst; runs anyway after that, saying so.
wait_quiet() {
    local start=$SECONDS busy warned=0
    ((QUIET_TIMEOUT > 0)) || return 0
    while :; do
        busy=$(machine_busy)
        if awk -v b="$busy" -v m="$QUIET_MAX" 'BEGIN { exit !(b <= m) }'; then return 0; fi
        if ((SECONDS - start >= QUIET_TIMEOUT)); then
            log "  machine still busy ($busy cores) after ${QUIET_TIMEOUT}s; running anyway"
            return 0
        fi
        if ((warned == 0)); then log "  waiting for the machine to go quiet ($busy cores busy)"; warned=1; fi
        sleep 1
    done
}

# A run whose generator waited for a CPU more than NOISE_MAX of its time is re-run.
is_noisy() { awk -v o="$1" -v n="$NOISE_MAX" 'BEGIN { exit !(o > n) }'; }

# The number after "KEY": in a one-line JSON record (-1 when absent).
field() { grep -oE "\"$2\":-?[0-9.]+" <<<"$1" | head -1 | grep -oE -- '-?[0-9.]+$' || echo -1; }

# Waits for the generator started as $GPID, at most RUN_TIMEOUT seconds (then stops it, by its
# PID); returns its exit status and clears GPID. LABEL prefixes the log line.
wait_generator() {  # LABEL
    local label=$1 status=0 deadline=$((SECONDS + RUN_TIMEOUT))
    while kill -0 "$GPID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$GPID" 2>/dev/null; then
        log "  ${label}generator still running after ${RUN_TIMEOUT}s; stopping it"
        kill -TERM "$GPID" 2>/dev/null || true
    fi
    wait "$GPID" || status=$?
    GPID=""
    return "$status"
}
