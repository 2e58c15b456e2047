# Sourced by the MPI fault tests. Needs $lathe (the binary).
#
# kill_rank_1 JOB: SIGKILLs rank 1 of the `mpirun ... $lathe train` job whose mpirun has pid JOB
# and waits up to 60 s for mpirun to end. Sets kill_status (mpirun's exit status; empty if it
# still ran after 60 s) and kill_seconds (from the kill to the job's end). Returns 1 when rank
# 1's process is not found.
kill_rank_1() {
  local job="$1" pid rank1="" killed_at _
  for pid in $(pgrep -f "$lathe train"); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then
      rank1=$pid
    fi
  done
  [ -n "$rank1" ] || return 1
  killed_at=$(date +%s.%N)
  kill -KILL "$rank1"
  kill_status=""
  for _ in $(seq 1 600); do
    if ! kill -0 "$job" 2>/dev/null; then
      wait "$job"
      kill_status=$?
      break
    fi
    sleep 0.1
  done
  kill_seconds=$(awk -v s="$killed_at" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
}
