"""rss.flow_hash of eth0 in the main snapshot against `ethtool -n eth0 rx-flow-hash T`."""
import json

from verdict import read

# ethtool's lines (ethtool.c dump_rxfhash) and the letters of `ethtool -N … rx-flow-hash`.
LINES = [("L2DA", "m"), ("VLAN tag", "v"), ("L3 proto", "t"), ("IP SA", "s"), ("IP DA", "d"),
         ("L4 bytes 0 & 1", "f"), ("L4 bytes 2 & 3", "n")]


def letters(text):
    if text is None or "flow key" not in text:
        return None
    body = text.split("flow key:", 1)[1]
    return "".join(letter for line, letter in LINES if line in body)


def judge(c, out, snap):
    dev = next((d for d in snap.get("devices", []) if d["name"] == "eth0"), {})
    agent = (dev.get("rss") or {}).get("flow_hash")
    want = {t: letters(read(out, f"flow_hash_{t}")) for t in ("tcp4", "tcp6", "udp4", "udp6")}
    want = {t: v for t, v in want.items() if v is not None}
    c.line("rss_flow_hash", bool(want) and agent == want,
           f"agent {json.dumps(agent, sort_keys=True)} ethtool -n rx-flow-hash {json.dumps(want, sort_keys=True)}")
