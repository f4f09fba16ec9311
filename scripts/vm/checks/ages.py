"""Judges checks/ages.sh: ingress ages at every packet and the probes' fallbacks, against the
lab's counts (what each socket of the 4-socket UDP and TCP groups read or accepted).

Per run (kprobe: both fallbacks forced; auto: the agent's pick; tp: the sock_recv_length /
sk_data_ready pair forced): the hooks each probe reports (the sources' `hook`), each UDP
socket's aged reads (`ingress_age_samples`) against the datagrams it read, the locality
counts, and the read side's program runs per datagram (logged by the agent while the guest
had kernel.bpf_stats_enabled on). The kprobe run also gives per-listener events from the
kprobe on sock_def_readable, compared with the lab as verdict.py compares the main run's.
"""
import re

import verdict

RUNS = ("kprobe", "auto", "tp")
# The read side's UDP programs of each hook (probes/bpf/rx.bpf.c).
UDP_READ_PROGRAMS = ("rx_consume_udp", "rx_consume_udp_kprobe", "rx_recv_length", "rx_data_ready")


def source(snap, name):
    return next((s for s in snap.get("sources", []) if s["name"] == name), {})


def program_runs(log):
    """{program: runs in the window} from the agent's `program rx/NAME: N runs` lines."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"program (\S+): (\d+) runs", log or "")}


def listener_line(c, name, group, truth):
    """Events per socket against the lab, as verdict.py judges them: UDP exact; a TCP
    listener may be one wakeup short of its accepts (tcp_child_process() skips the parent's
    sk_data_ready when the child is owned by a user), at most one per socket and 1% of the
    group; more events than accepts always fails."""
    events = [next((l.get("events") for l in group["listeners"] if l["inode"] == ino), "absent") for ino in truth]
    want = list(truth.values())
    detail = f"events {events} truth {want}"
    if events == want or group["protocol"] == "udp" or not all(isinstance(e, int) for e in events):
        c.line(name, events == want, detail)
        return
    short = [t - e for e, t in zip(events, want)]
    within = all(0 <= d <= 1 for d in short) and sum(short) <= max(1, sum(want) // 100)
    c.line(name, within, detail + (f" (not exact: {sum(short)} accept(s) without a listener wakeup)" if within else ""))


def judge(c, out, snap):
    lab = verdict.read(out, "ages_lab")
    udp_truth = verdict.lab_counts(lab, "udp")
    tcp_truth = verdict.lab_counts(lab, "tcp")
    if udp_truth is None:
        c.line("ages_lab", False, "no lab counts from checks/ages.sh")
        return
    datagrams = sum(udp_truth.values())
    doctor = verdict.read_json(out, "doctor", {})
    for plan in doctor.get("plan", []):
        if plan["name"] in ("listener_events", "rx (queues, flows, ages)"):
            c.note(f"doctor plan {plan['name']}", ("will run: " if plan["will_run"] else "skipped: ") + plan["why"])
    for run in RUNS:
        report = verdict.read_json(out, f"ages_{run}", None)
        log = verdict.read(out, f"ages_{run}_log") or ""
        if report is None:
            c.line(f"ages_{run}_report", False, "no snapshot JSON")
            continue
        listener_src = source(report, "ebpf_listener_events")
        ages_src = source(report, "ebpf_rx_socket_ages")
        c.note(f"ages_{run} hooks", f"listener_events {listener_src.get('hook') or listener_src.get('error')}; "
               f"udp reads {ages_src.get('hook') or ages_src.get('status')} {ages_src.get('error') or ''}".rstrip())
        groups = {g["protocol"]: g for g in report.get("reuseport_groups", []) if g["port"] in (7000, 7100)}
        udp = groups.get("udp")
        if udp is None:
            c.line(f"ages_{run}_group", False, "no UDP group 7000 in the report")
            continue
        runs = program_runs(log)
        if run == "tp" and ages_src.get("status") != "ok":
            # Below 6.3 the pair does not exist: the forced choice must say so, and the
            # ages must be null (not measured), never 0.
            ages = [l.get("ingress_age_samples") for l in udp["listeners"]]
            c.line("ages_tp_refused_reported", ages_src.get("status") == "unsupported"
                   and "sock_recv_length" in (ages_src.get("error") or "") and all(a is None for a in ages),
                   f"status {ages_src.get('status')}, ages {ages}: {(ages_src.get('error') or '')[:160]}")
            continue
        if run == "kprobe":
            c.line("ages_kprobe_hooks", listener_src.get("hook") == "kprobe/sock_def_readable"
                   and ages_src.get("hook") == "kprobe/skb_consume_udp",
                   f"listener_events {listener_src.get('hook')} ({listener_src.get('error')}), "
                   f"udp reads {ages_src.get('hook')} ({ages_src.get('error')})")
            listener_line(c, "ages_kprobe_listener_events_udp", udp, udp_truth)
            if tcp_truth is not None and "tcp" in groups:
                listener_line(c, "ages_kprobe_listener_events_tcp", groups["tcp"], tcp_truth)
            else:
                c.line("ages_kprobe_listener_events_tcp", False, f"lab tcp {tcp_truth is not None}, group {'tcp' in groups}")
        samples = [next((l.get("ingress_age_samples") for l in udp["listeners"] if l["inode"] == ino), "absent")
                   for ino in udp_truth]
        other = [next((l.get("ingress_age_other_cpu") for l in udp["listeners"] if l["inode"] == ino), "absent")
                 for ino in udp_truth]
        # Exact: every datagram read was stamped at netif_receive_skb and aged once at its
        # read. Only two stamps of unread datagrams hashing to one of the 65536 ingress slots
        # (rx.h) can lose one; a shortfall says how many.
        want = list(udp_truth.values())
        short = sum(w - s for w, s in zip(want, samples) if isinstance(s, int))
        c.line(f"ages_{run}_udp_per_socket", samples == want,
               f"aged reads {samples} datagrams read {want} via {ages_src.get('hook')}"
               + (f" ({short} fewer)" if samples != want and short > 0 else ""))
        ratio = udp["indices"].get("locality_miss_ratio")
        c.line(f"ages_{run}_locality", ratio is not None and all(isinstance(o, int) for o in other)
               and all(o <= s for o, s in zip(other, samples) if isinstance(s, int)),
               f"read on another CPU {other} of {samples}; group locality_miss_ratio {ratio}")
        # skb_copy_datagram_iovec (TCP reads) loads with the UDP hook or no ages at all.
        c.line(f"ages_{run}_tcp_read_hook_loaded", "rx/rx_copy_dgram" in runs,
               "tp_btf/skb_copy_datagram_iovec loaded" if "rx/rx_copy_dgram" in runs else f"programs {sorted(runs)}")
        udp_runs = sum(n for p, n in runs.items() if p.split("/")[-1] in UDP_READ_PROGRAMS)
        per = f"{udp_runs / datagrams:.2f}" if datagrams else "n/a"
        c.note(f"ages_{run}_read_runs_per_datagram",
               f"{per} ({udp_runs} runs of {sorted(p for p in runs if p.split('/')[-1] in UDP_READ_PROGRAMS)} "
               f"for {datagrams} datagrams read)" if runs else "no program runs logged (bpf_stats_enabled off?)")
