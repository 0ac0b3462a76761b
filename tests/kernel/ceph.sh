#!/usr/bin/env bash
# A one-node Ceph cluster on 127.0.0.1 for the RBD tests (recipe:
# /work/shared/reference/ceph-one-node.md): one monitor, one OSD, pool `rbd`, no mgr.
#
#   tests/kernel/ceph.sh up DIR      everything in DIR (ceph.conf, keyring, data, logs, pids)
#   tests/kernel/ceph.sh down DIR    stops the daemons and removes DIR
#
# STORE=memstore (default; loses its PGs when the OSD restarts) or bluestore (on a loop device
# over DIR/osd.img: bluestore cannot open a tmpfs file with O_DIRECT). MON_PORT (default 3300)
# and MON_PORT_V1 (6789) let two clusters run on one host. Lives in the repository, not in
# /tmp: the guest's /tmp is a fresh tmpfs.
set -euo pipefail
cmd=${1:?up or down}; D=${2:?directory}
STORE=${STORE:-memstore}
P2=${MON_PORT:-3300}; P1=${MON_PORT_V1:-6789}

down() {
    local n p i
    for n in osd.0 mon.a; do
        p=$(cat "$D/run/$n.pid" 2>/dev/null) || continue
        kill -CONT "$p" 2>/dev/null || continue
        kill "$p" 2>/dev/null || continue
        for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep .1; done
        kill -9 "$p" 2>/dev/null || :
    done
    if [[ -e $D/loopdev ]]; then losetup -d "$(cat "$D/loopdev")" 2>/dev/null || :; fi
    rm -rf "$D"
}

up() {
    local M="[v2:127.0.0.1:$P2,v1:127.0.0.1:$P1]" C="-c $D/ceph.conf" block=""
    mkdir -p "$D/run" "$D/log" "$D/mon.a" "$D/osd.0"
    local FSID OU; FSID=$(uuidgen); OU=$(uuidgen)
    if [[ $STORE == bluestore ]]; then
        truncate -s 4G "$D/osd.img"
        losetup -f --show "$D/osd.img" > "$D/loopdev"
        block="bluestore_block_path = $(cat "$D/loopdev")"
    fi
    cat > "$D/ceph.conf" <<EOF
[global]
fsid = $FSID
mon_host = $M
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
run_dir = $D/run
crash_dir = $D/run
pid_file = $D/run/\$name.pid
admin_socket = $D/run/\$name.asok
log_file = $D/log/\$name.log
mon_cluster_log_to_file = false
osd_pool_default_size = 1
mon_allow_pool_size_one = true
mon_data_avail_crit = 1
auth_allow_insecure_global_id_reclaim = false
[mon]
mon_data = $D/mon.\$id
paxos_propose_interval = 0.1
[osd]
osd_data = $D/osd.\$id
osd_objectstore = $STORE
bluestore_block_size = 4294967296
$block
osd_memory_target = 939524096
osd_op_num_shards = 1
[client]
keyring = $D/keyring
admin_socket =
log_file =
EOF
    g() { ceph-authtool --gen-print-key; }
    local KM KA KO; KM=$(g); KA=$(g); KO=$(g)
    (umask 077
     printf '[client.admin]\n\tkey = %s\n' "$KA" > "$D/keyring"
     printf '[osd.0]\n\tkey = %s\n' "$KO" > "$D/osd.0/keyring"
     printf '[mon.]\n\tkey = %s\n\tcaps mon = "allow *"\n[client.admin]\n\tkey = %s\n\tcaps mon = "allow *"\n\tcaps osd = "allow *"\n\tcaps mgr = "allow *"\n[osd.0]\n\tkey = %s\n\tcaps mon = "allow profile osd"\n\tcaps osd = "allow *"\n' \
         "$KM" "$KA" "$KO" > "$D/mon.keyring")
    monmaptool --create --fsid "$FSID" --addv a "$M" "$D/monmap" > /dev/null
    ceph-mon $C --mkfs -i a --monmap "$D/monmap" --keyring "$D/mon.keyring"
    ceph-mon $C -i a
    # = ceph osd new; ceph osd pool create (the ceph CLI costs seconds per call under TCG)
    /usr/bin/python3 - "$D/ceph.conf" "$OU" <<'PY'
import json, sys, rados
c = rados.Rados(conffile=sys.argv[1], conf={"client_mount_timeout": "60"}); c.connect()
for m in ({"prefix": "osd new", "uuid": sys.argv[2], "id": 0},
          {"prefix": "osd pool create", "pool": "rbd", "pg_num": 8}):
    r, _, err = c.mon_command(json.dumps(m), b"")
    if r: sys.exit(f"{m}: {r} {err}")
c.shutdown()
PY
    ceph-osd $C -i 0 --mkfs --osd-uuid "$OU" 2>> "$D/log/mkfs.log"
    ceph-osd $C -i 0
    timeout -k 5 120 rbd $C pool init rbd     # returns once the PGs are active
}

osd_restart() {
    # bluestore only: memstore loses its PGs when the OSD restarts
    local p; p=$(cat "$D/run/osd.0.pid")
    kill -CONT "$p" 2>/dev/null || :; kill "$p"
    while kill -0 "$p" 2>/dev/null; do sleep .1; done
    ceph-osd -c "$D/ceph.conf" -i 0
}

case $cmd in
    up) trap 'rc=$?; [[ $rc == 0 ]] || down; exit $rc' EXIT; up ;;
    down) down ;;
    osd-restart) osd_restart ;;
    *) echo "ceph.sh: up, down or osd-restart" >&2; exit 2 ;;
esac
