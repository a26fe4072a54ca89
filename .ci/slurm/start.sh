#!/usr/bin/env bash
# Start a one-node SLURM on localhost (munged, slurmctld, slurmd; no accounting storage), as root, for CI.
# Installs Debian's slurm-wlm and munge if missing. Idempotent: returns at once if the node already answers.
#   SLURM_CI_CPUS   CPUs of the node (default 2, as the CI machine)
#   SLURM_CI_STATE  state, spool and log folder (default /var/spool/smdown-slurm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cpus="${SLURM_CI_CPUS:-2}"
state="${SLURM_CI_STATE:-/var/spool/smdown-slurm}"
host="$(hostname -s)"

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

if sinfo -h -o %t 2>/dev/null | grep -qxE 'idle|mix|alloc'; then
    echo "SLURM already up: $(sinfo -h -o '%N %c CPUs %t')"
    exit 0
fi

# munge: a key (the package usually made one), its run folder, the daemon as its own user
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
fi
for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.2; done
munge -n | unmunge >/dev/null

# slurm.conf from the template: this host, CPUs, 90 % of the memory
memory=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
mkdir -p /etc/slurm "$state/slurmctld" "$state/slurmd"
sed -e "s|@HOST@|$host|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEMORY@|$memory|g" -e "s|@STATE@|$state|g" \
    "$here/slurm.conf.in" >/etc/slurm/slurm.conf

slurmctld -c   # -c: a clean start (no jobs or node states from an earlier run)
slurmd
for _ in $(seq 60); do
    sinfo -h -o %t 2>/dev/null | grep -qx idle && break
    sleep 1
done
if ! sinfo -h -o %t | grep -qx idle; then
    echo "SLURM did not come up:" >&2
    sinfo >&2 || true
    tail -n 30 "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
    exit 1
fi
echo "SLURM up: $(sinfo -h -o '%N %c CPUs %m MB %t'); $(sbatch --version)"
