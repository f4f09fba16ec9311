"""Judges checks/ages.sh: ingress ages at every packet and the probes' fallbacks, against the
lab's counts (what each socket of the 4-socket UDP and TCP groups read or accepted).

Runs (each an agent's snapshot): klisten (per-listener events forced onto the kprobe on
sock_def_readable), auto (the agent's pick), tp (UDP reads forced onto the sock_recv_length
/ sk_data_ready pair) on one traffic; kread (UDP reads and listener events both on their
kprobes) alone on a second. Per run: the hooks each probe reports (the sources' `hook`),
each UDP socket's aged reads (`ingress_age_samples`) against the datagrams it read, the
locality counts, and the read side's program runs per datagram (logged by the agent while
the guest had kernel.bpf_stats_enabled on). Listener events are compared with the lab as
verdict.py compares the main run's.
"""
import re

import verdict

# Run -> the lab section of its traffic.
RUNS = {"klisten": "ages_lab", "auto": "ages_lab", "tp": "ages_lab", "kread": "ages_lab2"}
# The read side's UDP programs of each hook (probes/bpf/rx.bpf.c).
UDP_READ_PROGRAMS = ("rx_consume_udp", "rx_consume_udp_kprobe", "rx_recv_length", "rx_data_ready")


def source(snap, name):
    return next((s for s in snap.get("sources", []) if s["name"] == name), {})


def program_runs(log):
    """{program: (runs, recursion misses) in the window} from the agent's
    `program rx/NAME: N runs, T ns, M missed` lines."""
    return {m.group(1): (int(m.group(2)), int(m.group(3)))
            for m in re.finditer(r"program (\S+): (\d+) runs, \d+ ns, (\d+) missed", log or "")}


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
    doctor = verdict.read_json(out, "doctor", {})
    for plan in doctor.get("plan", []):
        if plan["name"] in ("listener_events", "rx (queues, flows, ages)"):
            c.note(f"doctor plan {plan['name']}", ("will run: " if plan["will_run"] else "skipped: ") + plan["why"])
    for run, lab_section in RUNS.items():
        lab = verdict.read(out, lab_section)
        udp_truth = verdict.lab_counts(lab, "udp")
        tcp_truth = verdict.lab_counts(lab, "tcp")
        report = verdict.read_json(out, f"ages_{run}", None)
        log = verdict.read(out, f"ages_{run}_log") or ""
        if udp_truth is None or report is None:
            c.line(f"ages_{run}_report", False, f"lab counts {udp_truth is not None}, snapshot JSON {report is not None}")
            continue
        datagrams = sum(udp_truth.values())
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
        if run == "klisten":
            c.line("ages_klisten_hook", listener_src.get("hook") == "kprobe/sock_def_readable",
                   f"listener_events {listener_src.get('hook')} ({listener_src.get('error')})")
            listener_line(c, "ages_klisten_listener_events_udp", udp, udp_truth)
            if tcp_truth is not None and "tcp" in groups:
                listener_line(c, "ages_klisten_listener_events_tcp", groups["tcp"], tcp_truth)
            else:
                c.line("ages_klisten_listener_events_tcp", False, f"lab tcp {tcp_truth is not None}, group {'tcp' in groups}")
        if run == "kread":
            c.line("ages_kread_hooks", listener_src.get("hook") == "kprobe/sock_def_readable"
                   and ages_src.get("hook") == "kprobe/skb_consume_udp",
                   f"listener_events {listener_src.get('hook')} ({listener_src.get('error')}), "
                   f"udp reads {ages_src.get('hook')} ({ages_src.get('error')})")
            # Both on kprobes: a datagram queued by a softirq that interrupted the read
            # kprobe on the same CPU finds a kprobe running and its own is skipped
            # (kprobe_ftrace_handler(), arch/x86/kernel/kprobes/ftrace.c: kprobe_running()
            # -> nmissed; trace_call_bpf()'s bpf_prog_active guard likewise), before any
            # BPF program runs, so no program counter sees it. Never more events than
            # datagrams; the shortfall is reported.
            events = [next((l.get("events") for l in udp["listeners"] if l["inode"] == ino), None) for ino in udp_truth]
            missed = runs.get("listener_events/sk_data_ready_kprobe", (0, 0))[1]
            got = sum(e for e in events if isinstance(e, int))
            detail = (f"events {events} truth {list(udp_truth.values())}: {datagrams - got} short "
                      f"(likely kprobes skipped while the read kprobe ran on their CPU: klisten, read side on "
                      f"fentry, has none; program misses {missed})")
            c.note("ages_kread_listener_events_udp", detail)
            c.line("ages_kread_listener_events_udp_never_over",
                   all(isinstance(e, int) and e <= t for e, t in zip(events, udp_truth.values())), detail)
        samples = [next((l.get("ingress_age_samples") for l in udp["listeners"] if l["inode"] == ino), "absent")
                   for ino in udp_truth]
        other = [next((l.get("ingress_age_other_cpu") for l in udp["listeners"] if l["inode"] == ino), "absent")
                 for ino in udp_truth]
        # Exact: every datagram read was stamped at netif_receive_skb and aged once at its
        # read. Only two stamps of unread datagrams hashing to one of the 65536 ingress slots
        # (rx.h), or a read kprobe skipped (its misses), can lose one; a shortfall says how
        # many and the read programs' misses.
        want = list(udp_truth.values())
        short = sum(w - s for w, s in zip(want, samples) if isinstance(s, int))
        read_missed = sum(m for p, (_, m) in runs.items() if p.split("/")[-1] in UDP_READ_PROGRAMS)
        detail = (f"aged reads {samples} datagrams read {want} via {ages_src.get('hook')}"
                  + (f" ({short} fewer; read programs skipped {read_missed})" if samples != want else ""))
        if run == "tp":
            # The pair the hooks above replace, measured for comparison: it pairs a read
            # with the queue head seen at the previous one (rx.bpf.c), which can slip.
            c.note("ages_tp_udp_per_socket", detail)
        elif run == "kread":
            # Both on kprobes, the read side shares the listener kprobe's exposure to the
            # kprobe layer's skip (see above; one read of 4520 went unaged on 6.12 once,
            # with no program miss counted): never more than read, the shortfall reported.
            c.note("ages_kread_udp_per_socket", detail)
            c.line("ages_kread_udp_per_socket_never_over",
                   all(isinstance(s, int) and s <= w for s, w in zip(samples, want)), detail)
        else:
            c.line(f"ages_{run}_udp_per_socket", samples == want, detail)
        ratio = udp["indices"].get("locality_miss_ratio")
        c.line(f"ages_{run}_locality", ratio is not None and all(isinstance(o, int) for o in other)
               and all(o <= s for o, s in zip(other, samples) if isinstance(s, int)),
               f"read on another CPU {other} of {samples}; group locality_miss_ratio {ratio}")
        # skb_copy_datagram_iovec (TCP reads) loads with the UDP hook or no ages at all.
        c.line(f"ages_{run}_tcp_read_hook_loaded", "rx/rx_copy_dgram" in runs,
               "tp_btf/skb_copy_datagram_iovec loaded" if "rx/rx_copy_dgram" in runs else f"programs {sorted(runs)}")
        read_programs = sorted(p for p in runs if p.split("/")[-1] in UDP_READ_PROGRAMS)
        udp_runs = sum(runs[p][0] for p in read_programs)
        per = f"{udp_runs / datagrams:.2f}" if datagrams else "n/a"
        c.note(f"ages_{run}_read_runs_per_datagram",
               f"{per} ({udp_runs} runs of {read_programs} for {datagrams} datagrams read)"
               if runs else "no program runs logged (bpf_stats_enabled off?)")
