# The fields igb hashes per flow type, as ethtool prints them, for the agent's
# rss.flow_hash (ETHTOOL_GRXFH) in the main snapshot.
for t in tcp4 udp4 tcp6 udp6; do
    section "flow_hash_$t" ethtool -n eth0 rx-flow-hash "$t"
done
