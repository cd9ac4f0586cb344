#!/usr/bin/env bash
# Nightly tickrec archive job: seals closed day files (WAL folded in; the query directory
# naming every tick), turns those older than OLDER_THAN into Parquet archives
# (FORMAT=sqlite-zst: .db.zst; queries keep reading them) and, when DELETE_OLDER_THAN is set,
# deletes days past retention.
# Idempotent: archived days are skipped, so running it twice does nothing the second time.
#
# Settings (environment):
#   TICKREC_BIN         tickrec binary                      (default: tickrec on PATH)
#   TICKREC_CONFIG      config file passed as --config      (optional)
#   TICK_DB_PATH        base folder of the day files        (optional; else the config's)
#   OLDER_THAN          archive days at least this old      (default: 7d)
#   FORMAT              parquet or sqlite-zst               (default: parquet)
#   LEVEL               zstd level of every column          (default: tickrec's own, see archive --help)
#   DELETE_OLDER_THAN   retention, e.g. 400d                (default: unset = keep everything)
#   LOCK_FILE           guards against overlapping runs     (default: /tmp/tickrec-archive.lock)
#
# Output: one timestamped log line per day archived, skipped or failed, then a summary.
# Exit codes for monitoring:
#   0   every due day archived (or nothing was due)
#   1   at least one day failed (the others were archived; failed days keep their original)
#   2   configuration or usage error (nothing done)
#   75  another run holds the lock (nothing done; try later)
set -uo pipefail

bin="${TICKREC_BIN:-tickrec}"
older="${OLDER_THAN:-7d}"
level="${LEVEL:-}"
format="${FORMAT:-parquet}"
lock="${LOCK_FILE:-/tmp/tickrec-archive.lock}"

log() { printf '%s tickrec-archive: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

if ! command -v "$bin" >/dev/null 2>&1; then
  log "error: tickrec binary not found: $bin"
  exit 2
fi

exec 9>"$lock" || { log "error: cannot open lock file $lock"; exit 2; }
if ! flock -n 9; then
  log "another archive run holds $lock; nothing done"
  exit 75
fi

common=()
[ -n "${TICKREC_CONFIG:-}" ] && common+=(--config "$TICKREC_CONFIG")

# Seal closed days first (the WAL folded into the file; files from before the query directory
# get packed directory rows), so that days not yet old enough to archive answer queries fast too.
log "seal: days older than 1d"
"$bin" "${common[@]}" seal --older-than 1d 2>&1 </dev/null | while IFS= read -r line; do log "$line"; done
seal_status=${PIPESTATUS[0]}

args=("${common[@]}")
args+=(archive --older-than "$older" --format "$format")
[ -n "$level" ] && args+=(--level "$level")
[ -n "${DELETE_OLDER_THAN:-}" ] && args+=(--delete-older-than "$DELETE_OLDER_THAN" --yes)

log "start: ${args[*]}"
"$bin" "${args[@]}" 2>&1 </dev/null | while IFS= read -r line; do log "$line"; done
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] && [ "$seal_status" -ne 0 ] && status=1
log "done: exit $status"
exit "$status"
