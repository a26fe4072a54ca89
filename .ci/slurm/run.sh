#!/usr/bin/env bash
# The SLURM profile on a real SLURM (CI, as root): start a one-node SLURM on localhost (start.sh), run the tiny
# config with the cluster command the README documents, run it locally with `--cores 2`, and compare the contract
# outputs (compare.py). Both runs work in copies of this checkout (its tracked and untracked files, with a link to
# its .venv), so neither touches this checkout's results/ or resources/.
#   SLURM_CI_WORK       where the two copies go (default: a new folder under /tmp, removed when the check passes or is
#                       stopped by CI's time limit, kept, for the logs, when it fails)
#   SLURM_CI_TOLERANCE  largest absolute difference allowed between the two runs (default 0: bitwise equal)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${SLURM_CI_WORK:-$(mktemp -d /tmp/smdown-slurm.XXXXXX)}"
# stopped by CI's time limit (SIGTERM to the group): not a failure, so its copies go as a passed check's do
[ -n "${SLURM_CI_WORK:-}" ] || trap 'rm -rf "$work"; exit 143' TERM
tolerance="${SLURM_CI_TOLERANCE:-0}"
config=.test/config.yaml
start=$SECONDS

bash "$root/.ci/slurm/start.sh"

copy() {  # copy DEST: this checkout's files (not its results, resources or .snakemake), .venv linked
    rm -rf "$1" && mkdir -p "$1"
    (cd "$root" && git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf -) |
        tar -xf - -C "$1"
    ln -sfn "$root/.venv" "$1/.venv"
}
copy "$work/slurm"
copy "$work/local"
run_name="$(cd "$work/local" && .venv/bin/python -c "import yaml; print(yaml.safe_load(open('$config'))['run'])")"

# The two runs at once: the SLURM run mostly waits (submission, status checks), so the local one fills the CPUs.
# The SLURM command is the README's, on the tiny config.
(
    cd "$work/slurm"
    t0=$SECONDS
    .venv/bin/snakemake --profile profiles/slurm --workflow-profile none --configfile "$config" >run.log 2>&1
    echo "$((SECONDS - t0))" >seconds
) &
slurm_pid=$!
(
    cd "$work/local"
    t0=$SECONDS
    .venv/bin/snakemake --cores 2 --configfile "$config" >run.log 2>&1
    echo "$((SECONDS - t0))" >seconds
) &
local_pid=$!
status=0
wait $local_pid || { echo "local run failed: $work/local/run.log" >&2; tail -n 40 "$work/local/run.log" >&2; status=1; }
wait $slurm_pid || { echo "SLURM run failed: $work/slurm/run.log" >&2; tail -n 60 "$work/slurm/run.log" >&2; status=1; }
[ $status -eq 0 ] || exit 1

jobs=$(grep -c "has been submitted with SLURM jobid" "$work/slurm/run.log" || true)
echo "SLURM run: $jobs jobs submitted to SLURM in $(cat "$work/slurm/seconds") s; local --cores 2 run (alongside):" \
    "$(cat "$work/local/seconds") s"
grep -E "^[0-9]+ of [0-9]+ steps" "$work/slurm/run.log" | tail -n 1
(cd "$root" && PYTHONPATH="$root" .venv/bin/python .ci/slurm/compare.py --tolerance "$tolerance" \
    "$work/slurm/results/$run_name" "$work/local/results/$run_name")
echo "SLURM check: $((SECONDS - start)) s in all"
# a passed check's copies (about 100 MB) go, so that repeated checks do not fill the disk; a given folder stays
[ -n "${SLURM_CI_WORK:-}" ] || rm -rf "$work"
