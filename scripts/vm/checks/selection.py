"""Exact selection (issue 11), judged against the lab of checks/selection.sh.

Per forced hook (fexit, kprobe + kretprobe) and protocol, each socket's `selections`
must equal what the lab's socket received (UDP) or accepted (TCP), exactly:
- UDP: udp4_lib_lookup2() calls reuseport_select_sock() once per datagram and, with no
  connected socket in the group (reuseport_has_conns() false), delivers to its choice.
- TCP: a SYN reaches the listener lookup (inet_lhash2_lookup(), net/ipv4/
  inet_hashtables.c); a retransmitted SYN, the handshake's ACK and later segments find
  the request, full or TIME_WAIT socket in ehash first (__inet_lookup() tries
  __inet_lookup_established() before the listeners), so one selection per connection.
  Except for a lookup that races with a swap in ehash: inet_ehash_insert() (request
  socket -> child) and inet_twsk_hashdance() (socket -> TIME_WAIT) delete the old entry
  before adding the new one, so a lockless lookup between the two finds neither, falls
  through to the listeners (a selection, same 4-tuple so same hash and socket) and the
  listener answers the ACK with a reset (tcp_rcv_state_process(): TCP_LISTEN with ACK
  returns 1, tcp_v4_do_rcv() resets). Fixed upstream in late 2025 ("inet: Avoid ehash
  lookup race in inet_ehash_insert()", Fixes: 5e0724d027f0); the lab's connect-and-close
  at once makes it likely. The probe counts those apart (`non_syn`: the segment's TCP
  flags are not a bare SYN), so per socket `selections - non_syn` must equal its accepts
  exactly, and all `non_syn` together the resets the kernel sent in the window (Tcp
  OutRsts of /proc/net/snmp; nothing else in the lab sends one).
And every recorded hash must pick the socket's own slot by the kernel's rule:
reciprocal_scale(hash, num_socks) == the socket's position in the group, which is the
order the lab bound (UDP) or listened (TCP) it in: reuseport_add_sock() appends.
Last, with `[probes] duty = 0.5` the probe budget detaches and re-attaches the kprobe pair
every second: windows after a detach must count again.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from verdict import lab_counts, read, read_json  # noqa: E402

HOOKS = {
    "fexit": "fexit/reuseport_select_sock",
    "kprobe": "kprobe+kretprobe/reuseport_select_sock",
}
PORTS = {"udp": 7000, "tcp": 7100}


def reciprocal_scale(value, n):
    return (value * n) >> 32


def out_rsts(text):
    """Tcp OutRsts from /proc/net/snmp (a header line and a value line per protocol)."""
    rows = [line.split() for line in (text or "").splitlines() if line.startswith("Tcp:")]
    if len(rows) < 2 or "OutRsts" not in rows[0]:
        return None
    return int(rows[1][rows[0].index("OutRsts")])


def judge(c, out, snap):
    judge_exact(c, out)
    judge_duty(c, out)


def judge_exact(c, out):
    doctor = read_json(out, "doctor", {})
    plan = next((p for p in doctor.get("plan", []) if p["name"].startswith("selection")), None)
    if plan:
        c.note("doctor selection", ("will run: " if plan["will_run"] else "skipped: ") + plan["why"])
    for hook, name in HOOKS.items():
        try:
            report = read_json(out, f"selection_{hook}_snapshot", None)
        except ValueError:
            report = None
        lab = read(out, f"selection_{hook}_lab")
        if report is None:
            c.line(f"selection_{hook}", False, "no snapshot JSON")
            continue
        source = next((s for s in report.get("sources", []) if s["name"] == "ebpf_selection"), {})
        log = read(out, f"selection_{hook}_log") or ""
        used = name if f"exact reuseport selections from {name}" in log else None
        c.line(f"selection_{hook}_hook", source.get("ok") is True and used == name,
               f"path {used or 'none'}; source {source.get('status')} {source.get('error') or ''}".rstrip())
        groups = {g["protocol"]: g for g in report.get("reuseport_groups", []) if g["port"] == PORTS.get(g["protocol"])}
        checked, wrong, by_hash_short = 0, [], []
        for proto in ("udp", "tcp"):
            truth = lab_counts(lab, proto)
            group = groups.get(proto)
            if truth is None or group is None:
                c.line(f"selection_{hook}_{proto}", False, f"missing: lab={truth is not None} group={group is not None}")
                continue
            listeners = {l["inode"]: l for l in group["listeners"]}
            got = [listeners.get(ino, {}).get("selections", "absent") for ino in truth]
            non_syn = [(listeners.get(ino, {}).get("selection") or {}).get("non_syn", 0) for ino in truth]
            want = list(truth.values())
            steered = [g - n if isinstance(g, int) else g for g, n in zip(got, non_syn)]
            detail = f"selections {json.dumps(got)}"
            ok = steered == want
            if proto == "tcp":
                before = out_rsts(read(out, f"selection_{hook}_snmp_before"))
                after = out_rsts(read(out, f"selection_{hook}_snmp_after"))
                resets = None if before is None or after is None else after - before
                ok = ok and sum(non_syn) == resets
                detail += (f" - non_syn {json.dumps(non_syn)} = {json.dumps(steered)}, truth {json.dumps(want)} "
                           f"accepts; non-SYN selections {sum(non_syn)}, resets sent {resets}"
                           + (" (ACK/FIN that missed ehash during the request -> child swap, see checks/selection.py)"
                              if sum(non_syn) else ""))
            else:
                detail += f" truth {json.dumps(want)}" + (f" non_syn {json.dumps(non_syn)}" if any(non_syn) else "")
                ok = ok and not any(non_syn)
            c.line(f"selection_{hook}_{proto}", ok, detail)
            for slot, ino in enumerate(truth):
                sel = listeners.get(ino, {}).get("selection") or {}
                # A socket never chosen has no `selection` details: by_hash 0 then.
                if sel.get("by_hash", 0) != listeners.get(ino, {}).get("selections"):
                    by_hash_short.append(f"{proto}[{slot}] by_hash {sel.get('by_hash')}")
                if sel and sel.get("hash_index") != slot:
                    wrong.append(f"{proto}[{slot}] hash_index {sel.get('hash_index')}")
                n = sel.get("num_socks") or 0
                for h in sel.get("top_hashes", []):
                    checked += 1
                    if reciprocal_scale(h["hash"], n) != slot:
                        wrong.append(f"{proto}[{slot}] hash {h['hash']:#010x} -> slot {reciprocal_scale(h['hash'], n)} of {n}")
        c.line(f"selection_{hook}_hashes", checked > 0 and not wrong and not by_hash_short,
               f"{checked} recorded hashes each pick their socket's slot (reciprocal_scale(hash, 4) == lab order)"
               + (f"; wrong: {wrong[:4]}" if wrong else "") + (f"; not by hash: {by_hash_short[:4]}" if by_hash_short else ""))


def judge_duty(c, out):
    """`[probes] duty = 0.5` with the kprobe pair: windows after the first detach count
    again (the budget's re-attach works), and the estimates add up near the truth."""
    reports = []
    for line in (read(out, "selection_duty_run") or "").splitlines():
        if line.startswith("{"):
            try:
                reports.append(json.loads(line))
            except ValueError:
                pass
    truth = lab_counts(read(out, "selection_duty_lab"), "udp") or {}
    log = read(out, "selection_duty_log") or ""
    counted, shares, total = 0, [], 0
    for r in reports:
        share = (r.get("probe_sampling") or {}).get("attached_share")
        group = next((g for g in r.get("reuseport_groups", []) if g["protocol"] == "udp" and g["port"] == PORTS["udp"]), {})
        n = sum(l.get("selections") or 0 for l in group.get("listeners", []))
        total += n
        if share is not None:
            shares.append(round(share, 2))
            if n > 0 and share < 0.9:
                counted += 1
    refused = "probe budget: attaching selection" in log
    c.line("selection_duty_reattach", counted >= 2 and not refused,
           f"{counted} duty-cycled windows counted selections (attached shares {shares}); "
           f"estimate {total} for {sum(truth.values())} datagrams (not asserted: docs/configuration.md); "
           f"attach refusals logged: {refused}")
