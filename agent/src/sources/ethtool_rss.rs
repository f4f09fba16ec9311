//! RSS indirection table, hash key and hash function: ETHTOOL_MSG_RSS_GET over generic netlink, SIOCETHTOOL ETHTOOL_GRSSH as fallback, and the text of 'ethtool -x' for captured roots.
